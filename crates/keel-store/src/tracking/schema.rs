//! The tracking and registry tables (components `tracking` and `registry`).

use crate::migrations::Migration;

/// Experiments, runs, metrics, params, tags, inputs, logged models, artifacts, API tokens.
pub const TRACKING_V1: Migration = Migration {
    component: "tracking",
    version: 1,
    name: "experiments, runs, metrics, logged models, artifacts, tokens",
    only: None,
    sql: "
CREATE TABLE experiments (
    experiment_id BIGINT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    lifecycle_stage TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    last_update_time BIGINT NOT NULL
);
CREATE TABLE experiment_tags (
    experiment_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    experiment_id BIGINT NOT NULL,
    run_name TEXT NOT NULL,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    start_time BIGINT NOT NULL,
    end_time BIGINT,
    lifecycle_stage TEXT NOT NULL,
    deleted_time BIGINT
);
CREATE INDEX runs_experiment ON runs (experiment_id, start_time);
CREATE TABLE run_params (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE run_tags (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE run_metrics (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    is_nan BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    step BIGINT NOT NULL,
    model_id TEXT,
    dataset_name TEXT,
    dataset_digest TEXT,
    PRIMARY KEY (run_id, key, timestamp, step, value, is_nan)
);
CREATE TABLE latest_metrics (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    is_nan BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    step BIGINT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX latest_metrics_key ON latest_metrics (key, value);
CREATE TABLE run_inputs (
    run_id TEXT NOT NULL,
    dataset_name TEXT NOT NULL,
    dataset_digest TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source TEXT NOT NULL,
    schema_json TEXT,
    profile TEXT,
    context TEXT,
    tags_json TEXT NOT NULL,
    PRIMARY KEY (run_id, dataset_name, dataset_digest)
);
CREATE TABLE run_model_io (
    run_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    step BIGINT NOT NULL,
    PRIMARY KEY (run_id, model_id, direction)
);
CREATE TABLE logged_models (
    model_id TEXT PRIMARY KEY,
    experiment_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    model_type TEXT,
    source_run_id TEXT,
    status TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    creation_timestamp BIGINT NOT NULL,
    last_updated_timestamp BIGINT NOT NULL
);
CREATE INDEX logged_models_run ON logged_models (source_run_id);
CREATE TABLE logged_model_params (
    model_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);
CREATE TABLE logged_model_tags (
    model_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);
CREATE TABLE artifacts (
    owner TEXT NOT NULL,
    path TEXT NOT NULL,
    hash TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (owner, path)
);
CREATE TABLE api_tokens (
    token_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
INSERT INTO experiments (experiment_id, name, lifecycle_stage, creation_time, last_update_time)
VALUES (0, 'Default', 'active', 0, 0);
",
};

/// Indexes for search: filters on tags and params find their rows by key
/// (not by probing every run), and the metric index covers the filter's
/// columns so matching run ids come from the index alone. Tag and param
/// values stay unindexed: PostgreSQL refuses btree entries over ~2.7 kB, and
/// MLflow allows 8,000-character values. A logged model's metrics were a
/// full scan of `run_metrics`; the partial index costs nothing for the
/// points that belong to no model (most of them).
pub const TRACKING_V2: Migration = Migration {
    component: "tracking",
    version: 2,
    name: "search indexes on tag, param and metric keys",
    only: None,
    sql: "
CREATE INDEX run_tags_key ON run_tags (key);
CREATE INDEX run_params_key ON run_params (key);
DROP INDEX latest_metrics_key;
CREATE INDEX latest_metrics_key_value ON latest_metrics (key, value, is_nan, run_id);
CREATE INDEX run_metrics_model ON run_metrics (model_id) WHERE model_id IS NOT NULL;
",
};

/// SQLite stores `run_metrics` clustered on its primary key. As a rowid
/// table every point was written twice (the row, then the primary-key
/// index holding every column again), and inserting metrics was most of a
/// log-batch's cost. PostgreSQL keeps its heap and index: it has no
/// clustered tables, and its heap insert is an append.
pub const TRACKING_V3: Migration = Migration {
    component: "tracking",
    version: 3,
    name: "run_metrics clustered on its key (SQLite)",
    only: Some(crate::db::Backend::Sqlite),
    sql: "
CREATE TABLE run_metrics_clustered (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    is_nan BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    step BIGINT NOT NULL,
    model_id TEXT,
    dataset_name TEXT,
    dataset_digest TEXT,
    PRIMARY KEY (run_id, key, timestamp, step, value, is_nan)
) WITHOUT ROWID;
INSERT INTO run_metrics_clustered
    SELECT run_id, key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest
    FROM run_metrics;
DROP TABLE run_metrics;
ALTER TABLE run_metrics_clustered RENAME TO run_metrics;
CREATE INDEX run_metrics_model ON run_metrics (model_id) WHERE model_id IS NOT NULL;
",
};

/// Metric points in chunks (see `tracking::chunks`): one row per key per
/// request, its points packed in a blob. Rows already in `run_metrics`
/// stay there and are read with the chunks. `BYTEA` is PostgreSQL's blob;
/// SQLite stores a blob as given under any declared type.
pub const TRACKING_V4: Migration = Migration {
    component: "tracking",
    version: 4,
    name: "metric points in chunks",
    only: None,
    sql: "
CREATE TABLE metric_chunks (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    points BYTEA NOT NULL
);
CREATE INDEX metric_chunks_run_key ON metric_chunks (run_id, key);
",
};

/// Registered models, versions, tags, aliases and the alias history.
pub const REGISTRY_V1: Migration = Migration {
    component: "registry",
    version: 1,
    name: "registered models, versions, aliases, alias history",
    only: None,
    sql: "
CREATE TABLE registered_models (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    user_id TEXT NOT NULL,
    creation_timestamp BIGINT NOT NULL,
    last_updated_timestamp BIGINT NOT NULL
);
CREATE TABLE registered_model_tags (
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
);
CREATE TABLE model_versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    source TEXT NOT NULL,
    run_id TEXT,
    model_id TEXT,
    status TEXT NOT NULL,
    current_stage TEXT NOT NULL,
    description TEXT NOT NULL,
    user_id TEXT NOT NULL,
    run_link TEXT NOT NULL,
    storage TEXT NOT NULL,
    creation_timestamp BIGINT NOT NULL,
    last_updated_timestamp BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE model_version_tags (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, version, key)
);
CREATE TABLE model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE model_alias_history (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    seq BIGINT NOT NULL,
    version BIGINT,
    previous_version BIGINT,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    note TEXT NOT NULL,
    PRIMARY KEY (name, alias, seq)
);
",
};
