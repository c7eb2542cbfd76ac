//! keel's stores: the metadata DB, the object store, and data versioning.
//!
//! - [`db::Db`]: one SQL schema, versioned migrations, on SQLite (WAL, the
//!   embedded default) or PostgreSQL.
//! - [`objects::LocalObjects`]: the content-addressed (BLAKE3) object
//!   store of a project; [`objects::RemoteObjects`]: remotes (a directory
//!   or S3) through the `object_store` crate.
//! - [`data`]: datasets, their versions and pointer files.
//!
//! ```no_run
//! # async fn demo() -> Result<(), keel_store::StoreError> {
//! use keel_store::{Overrides, Store};
//! let store = Store::open(std::path::Path::new("."), &Overrides::default()).await?;
//! let ds = keel_core::DatasetPath::new("data/raw").unwrap();
//! let report = keel_store::data::add(&store, &ds, None, &keel_core::NoProgress).await?;
//! println!("{} is now {}", ds, report.version.seq);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod data;
pub mod db;
mod error;
mod lane;
pub mod migrations;
pub mod monitor;
pub mod objects;
pub mod profiles;
pub mod project;
pub mod registry;
pub mod tracking;

use std::path::Path;

pub use error::{Result, StoreError};
pub use project::{Overrides, Project};

/// What a write guarantees once keel reports it done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// It survives the process dying (a kill, a crash of keel): the bytes
    /// are handed to the OS before the answer. After a power loss or an
    /// OS crash, the last moments may be missing — but never half-written:
    /// a data version may name objects that never reached the disk (`keel
    /// fsck` reports them; re-adding the data stores them again), tracking
    /// may lose the last ~100 ms of logged values (the SQLite lane syncs
    /// its WAL that often). What DVC and git (loose objects) promise too.
    #[default]
    Process,
    /// Also across a power loss: flushed to the disk before the answer
    /// (`data add`: one `syncfs` before the version row is committed;
    /// tracking: an fsync per commit). Costs the time to reach the disk.
    Disk,
}

/// An open project: its configuration, metadata DB and object store.
#[derive(Debug, Clone)]
pub struct Store {
    /// The project on disk.
    pub project: Project,
    /// The metadata DB.
    pub db: db::Db,
    /// The local object store.
    pub objects: objects::LocalObjects,
}

impl Store {
    /// Opens the project containing `start`, migrating its DB if needed.
    pub async fn open(start: &Path, overrides: &Overrides) -> Result<Store> {
        let project = Project::discover(start)?;
        Store::from_project(project, overrides).await
    }

    /// Opens the stores of a known project.
    pub async fn from_project(project: Project, overrides: &Overrides) -> Result<Store> {
        let db = db::Db::open(&project.db_url(overrides)).await?;
        let objects = project.objects(overrides)?;
        Ok(Store {
            project,
            db,
            objects,
        })
    }
}
