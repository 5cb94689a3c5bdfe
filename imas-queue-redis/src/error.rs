//! The queue's own errors: the driver's (whose kind says what failed), a bad
//! URL, and answers of a script that do not have the expected shape. Every one
//! converts into [`imas_core::Error`].

use imas_core::Error;

use crate::BACKEND;

/// What can go wrong in the Redis queue.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisQueueError {
    /// The driver or the server failed.
    #[error(transparent)]
    Driver(#[from] redis::RedisError),
    /// The connection string does not parse.
    #[error("not a Redis URL ({0})")]
    Url(#[source] redis::RedisError),
    /// A value of a script's answer is not of the expected type.
    #[error(transparent)]
    Value(#[from] redis::ParsingError),
    /// A script answered something of the wrong shape, or a stored job does not
    /// decode.
    #[error("{0}")]
    Reply(String),
    /// A job does not encode as JSON.
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
}

impl From<RedisQueueError> for Error {
    fn from(e: RedisQueueError) -> Self {
        match e {
            RedisQueueError::Url(_) => Error::config("url", e.to_string()),
            RedisQueueError::Encode(e) => Error::backend("serde_json", e),
            e => Error::backend(BACKEND, e),
        }
    }
}

/// A driver error as the core error.
pub(crate) fn err(e: redis::RedisError) -> Error {
    RedisQueueError::Driver(e).into()
}

/// An answer of the wrong shape as the core error.
pub(crate) fn reply(what: impl Into<String>) -> Error {
    RedisQueueError::Reply(what.into()).into()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use imas_core::Error;
    use imas_core::ports::{RetryPolicy, SystemClock};

    use crate::RedisQueue;

    /// The library names its own setting; the server names its variable.
    #[tokio::test]
    async fn a_bad_url_is_a_config_error_on_url() {
        let e = RedisQueue::connect(
            "localhost:6379",
            Arc::new(SystemClock),
            RetryPolicy::default(),
        )
        .await
        .expect_err("not a URL");
        assert!(
            matches!(&e, Error::Config { name, .. } if name == "url"),
            "{e}"
        );
        assert!(e.to_string().contains("not a Redis URL"), "{e}");
    }
}
