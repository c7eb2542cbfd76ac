use std::fmt;

/// A tracked dataset's path, relative to the project root, with `/`
/// separators and no `.`/`..` components.
///
/// Keeping it relative (never absolute) is what lets clones of one
/// repository share a PostgreSQL metadata DB: the same dataset has the same
/// name on every machine.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatasetPath(String);

/// A path that cannot name a dataset.
#[derive(Debug, thiserror::Error)]
#[error("invalid dataset path {path:?}: {reason}")]
pub struct InvalidDatasetPath {
    path: String,
    reason: &'static str,
}

impl DatasetPath {
    /// Validates a relative, normalised path.
    pub fn new(path: &str) -> Result<DatasetPath, InvalidDatasetPath> {
        let bad = |reason| InvalidDatasetPath {
            path: path.to_string(),
            reason,
        };
        if path.is_empty() {
            return Err(bad("empty"));
        }
        if path.len() > 4096 {
            return Err(bad("longer than 4096 bytes"));
        }
        if path.starts_with('/') || path.contains('\\') {
            return Err(bad(
                "must be relative to the project root, with / separators",
            ));
        }
        if path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(bad("must not contain empty, '.' or '..' components"));
        }
        if path.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        Ok(DatasetPath(path.to_string()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatasetPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DatasetPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatasetPath({:?})", self.0)
    }
}

/// The per-dataset version number: 1 for the first `keel data add`, then 2, …
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionSeq(pub i64);

impl fmt::Display for VersionSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_paths_are_relative_and_normalised() {
        assert!(DatasetPath::new("data/raw").is_ok());
        for bad in ["", "/etc", "../x", "a/../b", "a//b", "a/./b", "a\\b", "a/"] {
            assert!(DatasetPath::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
