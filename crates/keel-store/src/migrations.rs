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
    /// Runs on this engine only (a storage layout the other lacks, such as
    /// SQLite's `WITHOUT ROWID`); on the other it is recorded as applied
    /// and does nothing, so version numbers stay one sequence.
    pub only: Option<crate::db::Backend>,
    /// Statements separated by `;` at the end of a line.
    pub sql: &'static str,
}

/// Every migration keel knows, in application order per component.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        component: "data",
        version: 1,
        name: "datasets and versions",
        only: None,
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
    crate::tracking::schema::TRACKING_V2,
    crate::tracking::schema::TRACKING_V3,
    crate::tracking::schema::TRACKING_V4,
    crate::tracking::schema::REGISTRY_V1,
    crate::monitor::MONITOR_V1,
    PIPELINE_V1,
    PIPELINE_V2,
    crate::profiles::PROFILES_V1,
];

/// The run-cache by job: `keel run` reads the entries of a pipeline's jobs
/// in one query when it starts.
pub const PIPELINE_V2: Migration = Migration {
    component: "pipeline",
    version: 2,
    name: "run-cache index by job",
    only: None,
    sql: "CREATE INDEX pipeline_cache_job ON pipeline_cache (job);",
};

/// keel-pipeline's lineage and run-cache: pipeline runs, their jobs (with
/// the full job record as JSON in `detail`), each job's input and output
/// files by content hash, its metrics, and the run-cache (cache key →
/// outputs, across all runs).
pub const PIPELINE_V1: Migration = Migration {
    component: "pipeline",
    version: 1,
    name: "pipeline runs, jobs, files, metrics and run-cache",
    only: None,
    sql: "
CREATE TABLE pipeline_runs (
    run_id TEXT PRIMARY KEY,
    file TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    git_commit TEXT,
    git_branch TEXT,
    git_dirty BIGINT NOT NULL,
    status TEXT NOT NULL,
    variables TEXT NOT NULL
);
CREATE TABLE pipeline_jobs (
    run_id TEXT NOT NULL REFERENCES pipeline_runs(run_id),
    name TEXT NOT NULL,
    base TEXT NOT NULL,
    stage TEXT NOT NULL,
    status TEXT NOT NULL,
    cached BIGINT NOT NULL,
    cache_key TEXT,
    exit_code BIGINT,
    attempts BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    artifacts_digest TEXT,
    artifacts_expire_at BIGINT,
    log TEXT,
    detail TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX pipeline_jobs_cache_key ON pipeline_jobs (cache_key);
CREATE TABLE pipeline_job_files (
    run_id TEXT NOT NULL,
    job TEXT NOT NULL,
    direction TEXT NOT NULL,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (run_id, job, direction, path)
);
CREATE INDEX pipeline_job_files_hash ON pipeline_job_files (hash);
CREATE TABLE pipeline_job_metrics (
    run_id TEXT NOT NULL,
    job TEXT NOT NULL,
    name TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, job, name)
);
CREATE TABLE pipeline_cache (
    cache_key TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    run_id TEXT NOT NULL,
    outputs TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
",
};
