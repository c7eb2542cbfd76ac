//! The metadata schema, as versioned migrations.
//!
//! Each component (data versioning, pipelines, tracking…) owns its tables
//! and its own version sequence, so components evolve independently. A
//! migration is applied once, in a transaction, and recorded in
//! `keel_migrations`. The SQL is written once, in the subset SQLite and
//! PostgreSQL share: `TEXT`, `BIGINT`, `DOUBLE PRECISION`, no booleans
//! (0/1 in `BIGINT`), no auto-increment (ids are chosen by keel),
//! timestamps as milliseconds since the Unix epoch.

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The owning component, e.g. `"data"`.
    pub component: &'static str,
    /// 1, 2, … within the component; applied in this order.
    pub version: i64,
    /// A short description, recorded with the migration.
    pub name: &'static str,
    /// Statements separated by `;` at the end of a line.
    pub sql: &'static str,
}

/// Every migration keel knows, in application order per component.
pub const MIGRATIONS: &[Migration] = &[Migration {
    component: "data",
    version: 1,
    name: "datasets and versions",
    sql: "
CREATE TABLE datasets (
    path TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
CREATE TABLE dataset_versions (
    path TEXT NOT NULL REFERENCES datasets(path),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    size BIGINT NOT NULL,
    nfiles BIGINT NOT NULL,
    git_commit TEXT,
    git_dirty BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    message TEXT,
    PRIMARY KEY (path, seq)
);
CREATE INDEX dataset_versions_hash ON dataset_versions (hash);
",
},
    crate::tracking::schema::TRACKING_V1,
    crate::tracking::schema::REGISTRY_V1,
];
