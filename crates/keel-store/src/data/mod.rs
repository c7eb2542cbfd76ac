//! Data versioning: DVC-like datasets on keel's stores.
//!
//! `keel data add PATH` stores every file of `PATH` in the object store,
//! records a version in the metadata DB, and writes `PATH.keel`, a pointer
//! meant to be committed to git. The order of writes is what keeps the
//! stores consistent when a command is killed at any moment:
//!
//! 1. objects (each written unnamed and named only when complete),
//! 2. with [`Durability::Disk`], one `syncfs` so they are on the disk,
//! 3. the directory's manifest object (after the objects it names),
//! 4. the version row, in one transaction,
//! 5. the pointer file and the stat cache (atomic renames).
//!
//! A version row therefore never names an object that is not stored, and
//! re-running an interrupted add finishes it.

mod ops;
mod transfer;
pub(crate) mod tree;
pub mod versions;

pub use crate::Durability;
pub use ops::{
    add, add_with, checkout, diff, fsck, log, resolve_ref, status, AddReport, CheckoutOptions,
    CheckoutReport, DataChange, DatasetStatus, DiffReport, FsckProblem, FsckReport, VersionRef,
};
pub use transfer::{pull, push, TransferReport};
pub use tree::{Entry, Kind, Pointer};
pub use versions::DatasetVersion;
