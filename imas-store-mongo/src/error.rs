//! The store's own errors and their meaning for the engine: driver failures keep
//! the driver's error (its codes and labels say whether it is a duplicate key or
//! a retryable conflict), and every one converts into [`imas_core::Error`].

use imas_core::Error;
use mongodb::error::{
    ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT, WriteFailure,
};

use crate::BACKEND;

/// Duplicate key: a unique index refused the write.
const DUPLICATE_KEY: i32 = 11000;
/// WriteConflict: a concurrent transaction wrote the same document first.
const WRITE_CONFLICT: i32 = 112;

/// What can go wrong in the MongoDB store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MongoError {
    /// The driver or the server failed.
    #[error(transparent)]
    Driver(#[from] mongodb::error::Error),
    /// The connection string does not parse.
    #[error("not a MongoDB URL ({0})")]
    Url(#[source] mongodb::error::Error),
    /// A stored document does not decode into the model.
    #[error("unreadable document: {0}")]
    Unreadable(String),
    /// A notification intent does not encode as JSON.
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
}

impl From<MongoError> for Error {
    fn from(e: MongoError) -> Self {
        match e {
            MongoError::Url(_) => Error::config("url", e.to_string()),
            MongoError::Encode(e) => Error::backend("serde_json", e),
            e => Error::backend(BACKEND, e),
        }
    }
}

/// A driver error as the core error.
pub(crate) fn err(e: mongodb::error::Error) -> Error {
    MongoError::Driver(e).into()
}

/// A document field that does not decode, as the core error.
pub(crate) fn unreadable(what: impl std::fmt::Display) -> Error {
    MongoError::Unreadable(what.to_string()).into()
}

/// Whether a driver error is a unique-index violation (code 11000), from a
/// single write, a command or one of an `insertMany`'s writes.
pub(crate) fn is_duplicate(e: &mongodb::error::Error) -> bool {
    has_code(e, DUPLICATE_KEY)
}

fn has_code(e: &mongodb::error::Error, code: i32) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == code,
        ErrorKind::Command(c) => c.code == code,
        ErrorKind::InsertMany(m) => m.write_errors.iter().flatten().any(|w| w.code == code),
        _ => false,
    }
}

/// Whether a store error is a transaction that lost to a concurrent one and did
/// nothing: the server labels it `TransientTransactionError` (or answers
/// WriteConflict, code 112), and running it again is safe.
pub(crate) fn is_transient(e: &Error) -> bool {
    driver(e).is_some_and(|m| {
        m.contains_label(TRANSIENT_TRANSACTION_ERROR) || has_code(m, WRITE_CONFLICT)
    })
}

/// Whether a commit's outcome is unknown (`UnknownTransactionCommitResult`):
/// committing again is safe.
pub(crate) fn is_unknown_commit(e: &mongodb::error::Error) -> bool {
    e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
}

/// The driver error a core error carries, if any.
fn driver(e: &Error) -> Option<&mongodb::error::Error> {
    match e {
        Error::Backend { source, .. } => match source.downcast_ref::<MongoError>() {
            Some(MongoError::Driver(m)) => Some(m),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use imas_core::Error;

    use crate::MongoStore;

    /// The library names its own setting; the server names its variable.
    #[tokio::test]
    async fn a_bad_url_is_a_config_error_on_url() {
        let e = MongoStore::connect("localhost:27017")
            .await
            .expect_err("not a URL");
        assert!(
            matches!(&e, Error::Config { name, .. } if name == "url"),
            "{e}"
        );
        assert!(e.to_string().contains("not a MongoDB URL"), "{e}");
    }
}
