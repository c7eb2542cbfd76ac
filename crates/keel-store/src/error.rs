use std::path::PathBuf;

use keel_core::ObjectHash;

/// Everything that can go wrong in keel's stores.
///
/// Each variant carries what a user needs to fix the problem: the file,
/// the object, the dataset. The CLI prints these as they are.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No `.keel/` directory in the start directory or any parent.
    #[error("not a keel project (no .keel/ in {start} or any parent); run `keel init` first")]
    NotAProject {
        /// Where the search started.
        start: PathBuf,
    },
    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What keel was doing ("reading", "creating", …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The metadata DB refused or failed a query.
    #[error("metadata DB: {context}: {source}")]
    Db {
        /// The operation that failed.
        context: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The SQLite write lane (tracking's hot path) failed a statement.
    #[error("metadata DB: {context}: {source}")]
    Sqlite {
        /// The operation that failed.
        context: String,
        /// SQLite's error (shared: one failed commit fails every call in it).
        source: std::sync::Arc<rusqlite::Error>,
    },
    /// A DB URL keel cannot use.
    #[error("unsupported DB URL {url:?}: expected sqlite://PATH or postgres://…")]
    UnsupportedDbUrl {
        /// The URL as given (credentials removed).
        url: String,
    },
    /// An object store URL keel cannot use.
    #[error("unsupported object store URL {url:?}: {reason}")]
    UnsupportedObjectsUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The `object_store` backend failed.
    #[error("object store {url}: {source}")]
    ObjectStore {
        /// Which store.
        url: String,
        /// The backend's error.
        source: object_store::Error,
    },
    /// The metadata DB was migrated by a newer keel than this one.
    #[error("the metadata DB was upgraded by a newer keel ({component} schema v{version}; this keel knows up to v{known}); upgrade keel to use it")]
    SchemaTooNew {
        /// The component (`tracking`, `data`, …).
        component: String,
        /// Its version in the DB.
        version: i64,
        /// The newest version this keel knows.
        known: i64,
    },
    /// A record in the metadata DB cannot be read back (damaged by hand or
    /// written by a newer keel).
    #[error("metadata DB: {what} is corrupt: {reason}")]
    CorruptRecord {
        /// Which record.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file keel reads (pointer, config, manifest) does not parse.
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// What was wrong and what was expected.
        message: String,
    },
    /// A path the user gave cannot be tracked.
    #[error("{path}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// No dataset is tracked at this path.
    #[error("{path} is not a tracked dataset (no {path}.keel pointer and no recorded version); add it with `keel data add {path}`")]
    DatasetNotFound {
        /// The dataset path.
        path: String,
    },
    /// A version reference that matches no version.
    #[error("dataset {path} has no version {spec:?} (see `keel data log {path}`)")]
    VersionNotFound {
        /// The dataset path.
        path: String,
        /// The version as given (`3`, `v3`, a hash prefix).
        spec: String,
    },
    /// A version reference matches several versions.
    #[error("version {spec:?} of {path} is ambiguous: it matches {count} versions")]
    AmbiguousVersion {
        /// The dataset path.
        path: String,
        /// The version as given.
        spec: String,
        /// How many versions matched.
        count: usize,
    },
    /// An object a dataset needs is not in the local store.
    #[error(
        "object {hash} ({file}) is not in the local object store; run `keel data pull {dataset}`"
    )]
    ObjectMissing {
        /// The missing object.
        hash: ObjectHash,
        /// The dataset that needs it.
        dataset: String,
        /// The file inside the dataset.
        file: String,
    },
    /// Objects a pull needs are not on the remote.
    #[error("{} object(s) missing on remote {remote}, first: {first} ({first_file}); push them from a machine that has them (`keel data push`)", count)]
    RemoteObjectMissing {
        /// The remote URL.
        remote: String,
        /// How many objects are missing.
        count: usize,
        /// The first missing object.
        first: ObjectHash,
        /// Dataset and file of the first missing object.
        first_file: String,
    },
    /// An object's bytes do not hash to its name.
    #[error("object {expected} is corrupt: its bytes hash to {actual}")]
    CorruptObject {
        /// The object's name.
        expected: ObjectHash,
        /// What its bytes hash to.
        actual: ObjectHash,
    },
    /// No remote given and none configured.
    #[error("no remote: pass --remote URL or set one with `keel data remote URL`")]
    NoRemote,
    /// A file changed while keel was storing it.
    #[error("{path} changed while it was being added; run the command again")]
    ChangedDuringAdd {
        /// The file.
        path: PathBuf,
    },
    /// Checkout would delete files whose content is stored nowhere.
    #[error("checkout would delete {count} file(s) in {dataset} that are not in any stored version, first: {first}; add them first or pass --force")]
    WouldLoseData {
        /// The dataset.
        dataset: String,
        /// How many files.
        count: usize,
        /// The first such file.
        first: String,
    },
}

impl StoreError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }

    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
        let context = context.into();
        move |source| StoreError::Db { context, source }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
