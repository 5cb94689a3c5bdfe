//! MongoDB store for IMAS (work in progress: see the project issues).
