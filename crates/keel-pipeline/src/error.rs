//! Errors and source positions.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A place in a pipeline file: the file, a 1-based line and a 1-based
/// column.
#[derive(Clone, PartialEq, Eq)]
pub struct Pos {
    /// The file, as given (relative to the project when it was found there).
    pub file: Arc<Path>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl Pos {
    /// A position in `file`.
    pub fn new(file: Arc<Path>, line: usize, col: usize) -> Pos {
        Pos { file, line, col }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

impl fmt::Debug for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Everything that can go wrong loading or running a pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file is not valid YAML (bad indentation, unclosed quote, …).
    #[error("{pos}: YAML syntax error: {message}")]
    Syntax {
        /// Where the parser stopped.
        pos: Pos,
        /// The parser's explanation.
        message: String,
    },
    /// The YAML is valid but the configuration is not: an unknown key, a
    /// value of the wrong type, a `needs` on an undefined job, a cycle, a
    /// bad matrix…
    #[error("{pos}: {key}: {message}")]
    Config {
        /// Where the offending key or value is.
        pos: Pos,
        /// The dotted key path, e.g. `train.needs`.
        key: String,
        /// What is wrong, in one sentence.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A job's declared input or output is unusable (a missing dep, an out
    /// the script did not produce, a param not in the params file).
    #[error("job {job:?}: {message}")]
    Job {
        /// The job instance name.
        job: String,
        /// What is wrong.
        message: String,
    },
    /// The output store or run recorder failed.
    #[error("store: {0}")]
    Store(String),
}

impl Error {
    pub(crate) fn config(pos: &Pos, key: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Config {
            pos: pos.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The position the error points at, if it has one.
    pub fn pos(&self) -> Option<&Pos> {
        match self {
            Error::Syntax { pos, .. } | Error::Config { pos, .. } => Some(pos),
            Error::Io { .. } | Error::Job { .. } | Error::Store(_) => None,
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Something keel accepted but will not honour locally, or a suspicious
/// construct. Reported once per key and file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where it is.
    pub pos: Pos,
    /// The message.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}", self.pos, self.message)
    }
}
