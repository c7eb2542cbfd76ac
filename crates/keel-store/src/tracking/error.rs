use crate::StoreError;

/// What can go wrong in tracking and registry operations.
///
/// Deliberately not `#[non_exhaustive]`: the server maps each variant to an
/// MLflow error code with an exhaustive `match`, so adding a variant is a
/// compile error there until it is mapped.
#[derive(Debug, thiserror::Error)]
pub enum TrackingError {
    /// The named entity does not exist (MLflow `RESOURCE_DOES_NOT_EXIST`).
    #[error("{0}")]
    NotFound(String),
    /// An entity with this name or id exists (MLflow `RESOURCE_ALREADY_EXISTS`).
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is malformed or violates a rule (MLflow
    /// `INVALID_PARAMETER_VALUE`): validation, bad filters, bad paths.
    #[error("{0}")]
    Invalid(String),
    /// Credentials missing or wrong (MLflow `UNAUTHENTICATED`).
    #[error("{0}")]
    Unauthenticated(String),
    /// The DB or object store failed: not the caller's fault.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TrackingError {
    pub(crate) fn invalid(msg: impl Into<String>) -> TrackingError {
        TrackingError::Invalid(msg.into())
    }

    pub(crate) fn not_found(msg: impl Into<String>) -> TrackingError {
        TrackingError::NotFound(msg.into())
    }

    /// For the SQLite lane's statements (see `crate::lane`).
    pub(crate) fn sqlite(context: &'static str) -> impl FnOnce(rusqlite::Error) -> TrackingError {
        move |source| {
            TrackingError::Store(StoreError::Sqlite {
                context: context.to_string(),
                source: std::sync::Arc::new(source),
            })
        }
    }

    pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> TrackingError {
        move |source| {
            TrackingError::Store(StoreError::Db {
                context: context.to_string(),
                source,
            })
        }
    }
}

/// Shorthand for tracking results.
pub type TrackingResult<T> = Result<T, TrackingError>;
