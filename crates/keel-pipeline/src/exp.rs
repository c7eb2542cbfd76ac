//! `keel exp show`: params × metrics across runs and matrix instances,
//! with a diff against a baseline run.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::store::PipelineRecord;

/// One experiment: a job instance's params (matrix variables included)
/// and metrics in one run.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpRow {
    /// The run.
    pub run_id: String,
    /// When the run started (ms since the Unix epoch).
    pub started_at_ms: u64,
    /// The git commit of the run.
    pub git_commit: Option<String>,
    /// Job instance name.
    pub job: String,
    /// Whether the result came from the run-cache.
    pub cached: bool,
    /// Matrix variables and `.keel` params.
    pub params: BTreeMap<String, String>,
    /// Metrics.
    pub metrics: BTreeMap<String, f64>,
    /// `metric - baseline metric` for the same job instance, where both exist.
    pub delta: BTreeMap<String, f64>,
}

/// The table.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpTable {
    /// The baseline run, if one was found.
    pub baseline: Option<String>,
    /// Param columns.
    pub params: Vec<String>,
    /// Metric columns.
    pub metrics: Vec<String>,
    /// Rows, newest run first.
    pub rows: Vec<ExpRow>,
}

/// Builds the table from recorded runs. `baseline` is a run id (or a
/// prefix or suffix of one); without it, the latest run on `default_branch`. Rows
/// whose cache key repeats an earlier row (a cached rerun) are shown once,
/// unless `all`.
pub fn table(
    runs: &[PipelineRecord],
    baseline: Option<&str>,
    default_branch: &str,
    all: bool,
) -> Result<ExpTable> {
    let base_run = match baseline {
        Some(b) => {
            let found: Vec<&PipelineRecord> = runs
                .iter()
                .filter(|r| r.run_id.starts_with(b) || r.run_id.ends_with(b))
                .collect();
            match found.as_slice() {
                [one] => Some(*one),
                [] => return Err(Error::Store(format!("no run {b:?}"))),
                _ => return Err(Error::Store(format!("{b:?} names several runs"))),
            }
        }
        None => runs
            .iter()
            .rev()
            .find(|r| r.git_branch.as_deref() == Some(default_branch) && r.status == "success"),
    };
    let base_metrics: BTreeMap<&str, &BTreeMap<String, f64>> = base_run
        .map(|r| {
            r.jobs
                .iter()
                .map(|j| (j.name.as_str(), &j.metrics))
                .collect()
        })
        .unwrap_or_default();
    let mut rows = Vec::new();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut pcols = BTreeSet::new();
    let mut mcols = BTreeSet::new();
    for r in runs.iter().rev() {
        for j in &r.jobs {
            if j.metrics.is_empty() && j.params.is_empty() && j.matrix.is_empty() {
                continue;
            }
            if j.status != "success" {
                continue;
            }
            if let Some(k) = &j.cache_key {
                if !all && !seen.insert((j.name.clone(), k.clone())) {
                    continue;
                }
            }
            let mut params: BTreeMap<String, String> = j.matrix.clone();
            for (k, v) in &j.params {
                params.insert(
                    k.clone(),
                    match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                );
            }
            let delta = base_metrics
                .get(j.name.as_str())
                .map(|b| {
                    j.metrics
                        .iter()
                        .filter_map(|(k, v)| b.get(k).map(|bv| (k.clone(), v - bv)))
                        .collect()
                })
                .unwrap_or_default();
            pcols.extend(params.keys().cloned());
            mcols.extend(j.metrics.keys().cloned());
            rows.push(ExpRow {
                run_id: r.run_id.clone(),
                started_at_ms: r.started_at_ms,
                git_commit: r.git_commit.clone(),
                job: j.name.clone(),
                cached: j.cached,
                params,
                metrics: j.metrics.clone(),
                delta,
            });
        }
    }
    Ok(ExpTable {
        baseline: base_run.map(|r| r.run_id.clone()),
        params: pcols.into_iter().collect(),
        metrics: mcols.into_iter().collect(),
        rows,
    })
}
