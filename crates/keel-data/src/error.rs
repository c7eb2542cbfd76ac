//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong in `keel-data`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file extension names no format keel reads.
    #[error("{0}: unknown data format (expected .csv, .parquet, .arrow/.ipc/.feather)")]
    UnknownFormat(PathBuf),
    /// The data could not be decoded (bad CSV row, corrupt Parquet, …).
    #[error("{path}: {message}")]
    Decode {
        /// The file, or `<memory>` for in-memory batches.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// A column named by the caller does not exist.
    #[error("column `{column}` not found in {source_name}")]
    MissingColumn {
        /// The column.
        column: String,
        /// Where it was looked for.
        source_name: String,
    },
    /// A column cannot be used for the requested computation.
    #[error("column `{column}`: {message}")]
    Column {
        /// The column.
        column: String,
        /// Why.
        message: String,
    },
    /// A contract file is malformed; names the file, line and field.
    #[error("{path}:{line}:{column}: {message}")]
    Contract {
        /// The contract file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong, starting with the field path.
        message: String,
    },
}

/// Shorthand for `Result<T, DataError>`.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
