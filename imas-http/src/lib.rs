//! The IMAS HTTP API as an axum router (work in progress: see the project issues).
