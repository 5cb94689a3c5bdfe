//! The store's own errors, with the meaning the drivers give them by **code**:
//! unique violations (SQLite `SQLITE_CONSTRAINT_UNIQUE` / `PRIMARYKEY`,
//! PostgreSQL SQLSTATE 23505), foreign-key violations
//! (`SQLITE_CONSTRAINT_FOREIGNKEY`, 23503; what one means is the statement's
//! to say: [`Refused`]), retryable failures (`SQLITE_BUSY` /
//! `SQLITE_LOCKED`, 40001 serialization failure, 40P01 deadlock). Never from
//! message text. `From<SqlError> for imas_core::Error` gives the core's meaning.

use imas_core::error::{BoxError, Error};
use uuid::Uuid;

/// What a unique violation says is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Username,
    Email,
    /// An id or key (a primary key, an idempotency key).
    Record,
    /// A service's name (`services_name_key`).
    ServiceName,
    /// An integration's key hash (`integrations_key_hash_key`).
    IntegrationKey,
    /// The service's open alert with this dedup key (`alerts_open_dedup`).
    OpenAlert,
    /// The service's unresolved incident of this Alertmanager group
    /// (`incidents_open_group`).
    OpenGroup,
}

impl Taken {
    /// The text users read (the HTTP answers and the tests expect these).
    fn message(self) -> &'static str {
        match self {
            Taken::Username => "username already taken",
            Taken::Email => "email already registered",
            Taken::Record => "a record with this id or key already exists",
            Taken::ServiceName => "service name already taken",
            Taken::IntegrationKey => "an integration with this key already exists",
            Taken::OpenAlert => "an open alert with this dedup key exists",
            Taken::OpenGroup => "an unresolved incident of this alert group exists",
        }
    }

    /// From a PostgreSQL constraint or unique index name (the migrations name
    /// them).
    fn of_constraint(name: Option<&str>) -> Self {
        match name {
            Some("users_username_key") => Taken::Username,
            Some("users_email_key") => Taken::Email,
            Some("services_name_key") => Taken::ServiceName,
            Some("integrations_key_hash_key") => Taken::IntegrationKey,
            Some("alerts_open_dedup") => Taken::OpenAlert,
            Some("incidents_open_group") => Taken::OpenGroup,
            _ => Taken::Record,
        }
    }
}

/// What a foreign-key violation means for the statement that met it: the
/// only foreign key is `services.escalation_policy_id`, so a policy a service
/// uses cannot be deleted, and a service cannot name a policy that is gone,
/// even when the engine's own check raced another node's write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A statement that meets no foreign key.
    Unexpected,
    /// The delete of this escalation policy, which a service uses.
    PolicyInUse(Uuid),
    /// A service write naming this escalation policy, which does not exist.
    NoSuchPolicy(Uuid),
}

impl Refused {
    fn message(self) -> String {
        match self {
            Refused::Unexpected => "the write names a record that does not exist, or deletes one                                     that is still named"
                .to_string(),
            Refused::PolicyInUse(id) => format!(
                "escalation policy {id} is used by a service; give the service another policy                  (or none) first"
            ),
            Refused::NoSuchPolicy(id) => format!("escalation policy {id} does not exist"),
        }
    }
}

/// An error of the SQL store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SqlError {
    /// A unique constraint refused the write.
    #[error("{}", .0.message())]
    Unique(Taken),
    /// A foreign key refused the write.
    #[error("{}", .0.message())]
    ForeignKey(Refused),
    /// The database asks for the transaction to be tried again (busy,
    /// serialization failure, deadlock).
    #[error("{backend}: retryable failure: {source}")]
    Retryable {
        backend: &'static str,
        #[source]
        source: BoxError,
    },
    /// A setting the caller passed (the URL, the schema) is not usable.
    #[error("invalid {field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    /// A stored value that does not decode (a corrupt row).
    #[error("unreadable stored value: {what}")]
    Corrupt { backend: &'static str, what: String },
    /// Anything else the driver reported.
    #[error("{backend}: {source}")]
    Driver {
        backend: &'static str,
        #[source]
        source: BoxError,
    },
}

impl SqlError {
    pub(crate) fn config(field: &'static str, message: impl Into<String>) -> Self {
        SqlError::Config {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn corrupt(backend: &'static str, what: impl std::fmt::Display) -> Self {
        SqlError::Corrupt {
            backend,
            what: what.to_string(),
        }
    }

    pub(crate) fn driver(backend: &'static str, source: impl Into<BoxError>) -> Self {
        SqlError::Driver {
            backend,
            source: source.into(),
        }
    }

    /// A sqlx error, classified by its database error code.
    pub(crate) fn sqlx(backend: &'static str, e: sqlx::Error) -> Self {
        let Some(db) = e.as_database_error() else {
            return Self::driver(backend, e);
        };
        if db.is_unique_violation() {
            return SqlError::Unique(Taken::of_constraint(db.constraint()));
        }
        if db.is_foreign_key_violation() {
            return SqlError::ForeignKey(Refused::Unexpected);
        }
        let retryable = match db.code().as_deref() {
            Some("40001" | "40P01") => true,
            // SQLite reports its extended result code; the primary one is
            // the low byte (SQLITE_BUSY = 5, SQLITE_LOCKED = 6).
            Some(code) if backend == "sqlite" => {
                matches!(code.parse::<i32>().map(|c| c & 0xff), Ok(5 | 6))
            }
            _ => false,
        };
        if retryable {
            return SqlError::Retryable {
                backend,
                source: e.into(),
            };
        }
        Self::driver(backend, e)
    }

    /// A rusqlite error (the SQLite writer), classified by its extended code.
    #[cfg(feature = "sqlite")]
    pub(crate) fn rusqlite(e: rusqlite::Error) -> Self {
        use rusqlite::ffi;
        if let rusqlite::Error::SqliteFailure(failure, _) = &e {
            match failure.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    return SqlError::Unique(Taken::Record);
                }
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
                    return SqlError::ForeignKey(Refused::Unexpected);
                }
                _ if matches!(
                    failure.code,
                    ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked
                ) =>
                {
                    return SqlError::Retryable {
                        backend: "sqlite",
                        source: e.into(),
                    };
                }
                _ => {}
            }
        }
        Self::driver("sqlite", e)
    }

    /// A foreign-key violation given the meaning the statement that met it
    /// says (`refused`); any other error as it is.
    pub(crate) fn refused(self, refused: Refused) -> Self {
        match self {
            SqlError::ForeignKey(_) => SqlError::ForeignKey(refused),
            other => other,
        }
    }

    /// Whether SQLite said a UNIQUE constraint (not a primary key) refused it.
    #[cfg(feature = "sqlite")]
    pub(crate) fn is_sqlite_unique_column(e: &rusqlite::Error) -> bool {
        matches!(e, rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
    }
}

impl From<SqlError> for Error {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Unique(taken) => Error::conflict(taken.message()),
            SqlError::ForeignKey(refused) => Error::conflict(refused.message()),
            SqlError::Config { field, message } => Error::config(field, message),
            SqlError::Driver { backend, source } => Error::Backend { backend, source },
            SqlError::Retryable { backend, .. } | SqlError::Corrupt { backend, .. } => {
                Error::backend(backend, e)
            }
        }
    }
}
