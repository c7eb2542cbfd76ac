//! The crate's error type, and its mapping onto HTTP statuses.

use std::path::PathBuf;

/// What can go wrong while serving or monitoring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The request is malformed or does not match the model signature
    /// (HTTP 400). The message names the field, column or tensor at fault.
    #[error("{0}")]
    BadRequest(String),
    /// A model, version or route that does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// A media type the endpoint does not accept (HTTP 415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The model URI cannot be resolved (unknown scheme, missing package,
    /// registry unavailable).
    #[error("cannot resolve model URI `{uri}`: {message}")]
    Resolve {
        /// The URI as given.
        uri: String,
        /// Why.
        message: String,
    },
    /// The package failed to load.
    #[error("loading the model package {path}: {source}")]
    Load {
        /// The package directory.
        path: PathBuf,
        /// The runtime's error.
        source: keel_ml::Error,
    },
    /// The model failed on an input that passed validation (HTTP 500).
    #[error("the model failed: {0}")]
    Model(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A configuration file is invalid; names the file, line and field.
    #[error("{file}:{line}:{column}: {message}")]
    Config {
        /// The file.
        file: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The data engine failed (reading the log, computing drift).
    #[error("{0}")]
    Data(#[from] keel_data::DataError),
    /// The metadata store failed.
    #[error("{0}")]
    Store(#[from] keel_store::StoreError),
    /// The prediction log is not accepting records (writer stopped).
    #[error("the prediction log is unavailable: {0}")]
    LogUnavailable(String),
}

impl ServeError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ServeError {
        ServeError::Io {
            path: path.into(),
            source,
        }
    }

    /// The HTTP status this error maps to: every problem with the request is
    /// a 4xx; only model failures on valid input and I/O are 5xx.
    pub fn status(&self) -> u16 {
        match self {
            ServeError::BadRequest(_) => 400,
            ServeError::NotFound(_) => 404,
            ServeError::UnsupportedMediaType(_) => 415,
            ServeError::LogUnavailable(_) => 503,
            _ => 500,
        }
    }
}

/// Shorthand.
pub type Result<T, E = ServeError> = std::result::Result<T, E>;
