//! SQLite and PostgreSQL stores for IMAS (work in progress: see the project issues).
