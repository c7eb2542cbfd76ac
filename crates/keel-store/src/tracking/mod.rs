//! Experiment tracking: experiments, runs, params, metrics, tags, dataset
//! inputs, MLflow 3 logged models and run artifacts.
//!
//! Every operation is one function here, called by both the HTTP server
//! (`keel-server`, which speaks MLflow's wire format) and the CLI. Nothing
//! here knows HTTP or JSON wire shapes: the types are plain values and the
//! errors are [`TrackingError`], which the server maps to MLflow error codes.
//!
//! Mutations run in one transaction each; [`runs::log_batch`] is the
//! primitive every `log-*` call goes through.

pub mod artifacts;
mod chunks;
mod error;
pub mod experiments;
pub mod logged_models;
pub mod runs;
pub mod schema;
pub mod search;
pub mod tokens;
pub(crate) mod util;
pub mod validate;

pub use error::{TrackingError, TrackingResult};

/// Whether an entity is live or soft-deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Visible in searches.
    Active,
    /// Soft-deleted; restorable.
    Deleted,
}

impl Lifecycle {
    /// MLflow's spelling (`active`, `deleted`).
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Active => "active",
            Lifecycle::Deleted => "deleted",
        }
    }

    pub(crate) fn parse(s: &str) -> Lifecycle {
        if s == "deleted" {
            Lifecycle::Deleted
        } else {
            Lifecycle::Active
        }
    }
}

/// Which entities a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewType {
    /// Only active entities (the default).
    #[default]
    ActiveOnly,
    /// Only soft-deleted entities.
    DeletedOnly,
    /// Both.
    All,
}

impl ViewType {
    /// Parses MLflow's names (`ACTIVE_ONLY`, `DELETED_ONLY`, `ALL`) or enum numbers.
    pub fn parse(s: &str) -> TrackingResult<ViewType> {
        match s {
            "ACTIVE_ONLY" | "1" | "" => Ok(ViewType::ActiveOnly),
            "DELETED_ONLY" | "2" => Ok(ViewType::DeletedOnly),
            "ALL" | "3" => Ok(ViewType::All),
            other => Err(TrackingError::invalid(format!(
                "Invalid view type {other:?}: expected ACTIVE_ONLY, DELETED_ONLY or ALL"
            ))),
        }
    }

    pub(crate) fn sql(self, column: &str) -> String {
        match self {
            ViewType::ActiveOnly => format!("{column} = 'active'"),
            ViewType::DeletedOnly => format!("{column} = 'deleted'"),
            ViewType::All => "1 = 1".to_string(),
        }
    }
}

/// A key/value tag or param.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

impl KeyValue {
    /// A pair.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// One metric point.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The metric's name.
    pub key: String,
    /// Its value (NaN and ±∞ allowed).
    pub value: f64,
    /// Client time, ms since the epoch.
    pub timestamp: i64,
    /// Training step (0 by default).
    pub step: i64,
    /// The logged model this point belongs to (MLflow 3).
    pub model_id: Option<String>,
    /// The dataset it was computed on.
    pub dataset_name: Option<String>,
    /// That dataset's digest.
    pub dataset_digest: Option<String>,
}

impl Metric {
    /// A summary value (a job's or an evaluation's final metric): step 0,
    /// tied to no logged model or dataset.
    pub fn summary(key: impl Into<String>, value: f64, timestamp: i64) -> Metric {
        Metric {
            key: key.into(),
            value,
            timestamp,
            step: 0,
            model_id: None,
            dataset_name: None,
            dataset_digest: None,
        }
    }
}

/// A page of results and the token for the next one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Opaque token for the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// Who performs an operation (recorded in history rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    /// The local OS user (CLI).
    pub fn local() -> Actor {
        Actor(std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
    }
}
