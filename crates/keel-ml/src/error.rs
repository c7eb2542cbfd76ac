//! The one error type of `keel-ml`.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in `keel-ml`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The model as a whole is malformed (not protobuf, no graph, a
    /// dangling output…).
    #[error("invalid model: {0}")]
    Model(String),
    /// A node is malformed or failed at run time.
    #[error("node {node:?} ({op}): {message}")]
    Node {
        /// Node name (or `#index` when unnamed).
        node: String,
        /// Operator type.
        op: String,
        /// What is wrong.
        message: String,
    },
    /// The model uses an operator keel does not implement.
    #[error("node {node:?}: operator {domain}::{op} is not supported by keel's runtime")]
    UnsupportedOperator {
        /// Node name.
        node: String,
        /// Operator type.
        op: String,
        /// Operator domain.
        domain: String,
    },
    /// The inputs given to a model or a function do not fit.
    #[error("{0}")]
    Input(String),
    /// A user-written file (gates, params, MLmodel) has an error at a
    /// known place.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A data file is malformed.
    #[error("{}: {message}", file.display())]
    Data {
        /// The file.
        file: PathBuf,
        /// What is wrong (with the line when known).
        message: String,
    },
    /// Training could not proceed (no rows, one class only…).
    #[error("training: {0}")]
    Train(String),
    /// A wrapped error in a file's context.
    #[error("{}: {source}", file.display())]
    InFile {
        /// The file.
        file: PathBuf,
        /// The error.
        source: Box<Error>,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn in_file(self, file: &Path) -> Error {
        Error::InFile {
            file: file.to_path_buf(),
            source: Box::new(self),
        }
    }
}
