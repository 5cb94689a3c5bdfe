//! The one error type of IMAS. Variants carry meaning (the HTTP layer maps each to
//! a status code); anything a backend cannot express in those terms is `Backend`.

use crate::model::Status;

/// A boxed error from an adapter.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across IMAS.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in IMAS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The thing asked for does not exist (or the caller may not know it exists).
    #[error("{entity} not found")]
    NotFound {
        /// What kind of thing: `incident`, `user`, `notification`...
        entity: &'static str,
    },
    /// The change conflicts with the current state: a duplicate unique value, or
    /// a stale version.
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
    },
    /// The caller is authenticated but its role may not do this.
    #[error("forbidden: {message}")]
    Forbidden {
        /// What was refused.
        message: String,
    },
    /// Missing, malformed, expired or badly signed credentials.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// Why.
        message: String,
    },
    /// Bad input: which field, what was expected.
    #[error("invalid {field}: {message}")]
    Validation {
        /// The field at fault, in its JSON spelling.
        field: String,
        /// What was expected.
        message: String,
    },
    /// The lifecycle does not allow this status change.
    #[error("cannot change status from {from} to {to}")]
    InvalidTransition {
        /// Current status.
        from: Status,
        /// Requested status.
        to: Status,
    },
    /// A configuration value is unusable (e.g. a JWT secret shorter than 32 bytes).
    #[error("invalid configuration {name}: {message}")]
    Config {
        /// The setting.
        name: String,
        /// What was expected.
        message: String,
    },
    /// Too many attempts or requests: the caller may try again after
    /// `retry_after` (HTTP 429 with `Retry-After`).
    #[error("too many requests: {message}")]
    RateLimited {
        /// What was limited.
        message: String,
        /// When the caller may try again.
        retry_after: std::time::Duration,
    },
    /// The engine is momentarily out of capacity for this (e.g. the password
    /// hashing pool is full): HTTP 503 with `Retry-After`. Nothing was changed.
    #[error("unavailable: {message}")]
    Unavailable {
        /// What is out of capacity.
        message: String,
        /// When the caller may try again.
        retry_after: std::time::Duration,
    },
    /// A delivery that can never succeed, whatever the retries: an invalid
    /// recipient address, an SMTP server's permanent (5xx) rejection, a webhook
    /// answering 4xx other than 408 and 429. A [`crate::ports::Channel`] returns
    /// it so that the engine dead-letters the job at once instead of retrying.
    #[error("undeliverable through {channel}: {message}")]
    Undeliverable {
        /// The channel that refused.
        channel: &'static str,
        /// Why.
        message: String,
    },
    /// A store, queue or channel failed.
    #[error("{backend} error: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// A validation error for `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A conflict.
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict {
            message: message.into(),
        }
    }

    /// A refusal for the caller's role.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::Forbidden {
            message: message.into(),
        }
    }

    /// Bad credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Error::Unauthorized {
            message: message.into(),
        }
    }

    /// A rate limit was hit; try again after `retry_after`.
    pub fn rate_limited(message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        Error::RateLimited {
            message: message.into(),
            retry_after,
        }
    }

    /// Out of capacity for now; try again after `retry_after`.
    pub fn unavailable(message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        Error::Unavailable {
            message: message.into(),
            retry_after,
        }
    }

    /// A backend failure.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend,
            source: source.into(),
        }
    }

    /// A delivery through `channel` that retrying cannot fix.
    pub fn undeliverable(channel: &'static str, message: impl Into<String>) -> Self {
        Error::Undeliverable {
            channel,
            message: message.into(),
        }
    }

    /// Whether retrying cannot help ([`Error::Undeliverable`]).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::Undeliverable { .. })
    }

    /// A bad configuration value.
    pub fn config(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            name: name.into(),
            message: message.into(),
        }
    }
}
