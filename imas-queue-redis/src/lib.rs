//! Redis-backed durable notification queue for IMAS (work in progress: see the project issues).
