//! `keel monitor`: evaluates windows of the prediction log and fires the
//! alert rules of `monitor.yaml`.
//!
//! Per window (the last `window` of log time, primary and canary rows):
//! drift of every feature and of the prediction score against the
//! reference data (the `keel-data` engine, Evidently's defaults), accuracy
//! from feedback labels joined by request id, latency p50/p99, error rate,
//! and cost per prediction (model CPU seconds per row). The results go to
//! the store (`keel_store::monitor`) and to a state file whose gauges the
//! server exports on `/metrics`.
//!
//! ```yaml
//! log: .keel/predictions        # the server's --log-dir
//! model: model                  # package: features, and reference predictions
//! reference: data/train.csv     # reference data (CSV/Parquet/Arrow)
//! window: 5m                    # s, m, h
//! min_rows: 30                  # fewer rows: drift is not computed
//! rules:
//!   - name: feature drift
//!     metric: drift_share       # see METRICS; drift_score.<feature> per feature
//!     comparison: ">="
//!     threshold: 0.5
//!     for: 1                    # consecutive windows before firing
//!     severity: critical        # info | warning | critical
//!     actions:
//!       - log
//!       - webhook: http://127.0.0.1:9000/alerts
//!       - pipeline: .gitlab-ci.yml   # `keel run` it: continuous training
//! ```

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use keel_data::drift::{drift_batches, DriftOptions, DriftReport};
use serde::{Deserialize, Serialize};

use crate::error::{Result, ServeError};
use crate::metrics::Gauge;
use crate::model::{Cell, Frame, ServedModel};
use crate::predlog::{now_ms, parse_csv, segments, PRED_FIXED};

/// Metrics a rule can name (plus `drift_score.<feature>`).
pub const METRICS: &[&str] = &[
    "rows",
    "requests",
    "error_rate",
    "latency_p50_seconds",
    "latency_p99_seconds",
    "cpu_seconds_per_prediction",
    "drift_share",
    "dataset_drift",
    "drifted_features",
    "prediction_drift_score",
    "prediction_drift",
    "accuracy",
    "feedback_rows",
];

/// An action of a rule: `log`, `{webhook: URL}` or `{pipeline: FILE}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "ActionYaml")]
pub enum Action {
    /// Print and append to `alerts.jsonl`.
    Log,
    /// POST the alert as JSON to this `http://` URL.
    Webhook(String),
    /// Run this pipeline file with `keel run`.
    Pipeline(String),
}

/// How an action is written in `monitor.yaml`. serde_yaml_ng reads a
/// plain externally tagged enum only from YAML tags (`!pipeline FILE`), not
/// from the one-key maps the documentation (and everyone) writes.
#[derive(Deserialize)]
#[serde(untagged)]
enum ActionYaml {
    Name(String),
    Map(BTreeMap<String, String>),
}

impl TryFrom<ActionYaml> for Action {
    type Error = String;

    fn try_from(a: ActionYaml) -> std::result::Result<Action, String> {
        const EXPECTED: &str = "expected `log`, `{webhook: URL}` or `{pipeline: FILE}`";
        match a {
            ActionYaml::Name(n) if n == "log" => Ok(Action::Log),
            ActionYaml::Name(n) => Err(format!("unknown action `{n}`: {EXPECTED}")),
            ActionYaml::Map(m) if m.len() == 1 => {
                let (k, v) = m.into_iter().next().unwrap_or_default();
                match k.as_str() {
                    "webhook" => Ok(Action::Webhook(v)),
                    "pipeline" => Ok(Action::Pipeline(v)),
                    _ => Err(format!("unknown action `{k}`: {EXPECTED}")),
                }
            }
            ActionYaml::Map(_) => Err(format!("an action has exactly one key: {EXPECTED}")),
        }
    }
}

/// One alert rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// The metric (see [`METRICS`]).
    pub metric: String,
    /// `>`, `>=`, `<`, `<=`, `==`, `!=`.
    #[serde(default = "default_cmp")]
    pub comparison: String,
    /// The threshold.
    pub threshold: f64,
    /// Consecutive windows the condition must hold before firing.
    #[serde(default = "one", rename = "for")]
    pub for_windows: u32,
    /// `info`, `warning` or `critical`.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// What to do when it fires.
    #[serde(default = "default_actions")]
    pub actions: Vec<Action>,
}

fn default_cmp() -> String {
    ">".into()
}
fn one() -> u32 {
    1
}
fn default_severity() -> String {
    "warning".into()
}
fn default_actions() -> Vec<Action> {
    vec![Action::Log]
}

/// `monitor.yaml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// The prediction log directory.
    #[serde(default = "default_log")]
    pub log: PathBuf,
    /// The model package (features, reference predictions).
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// Reference data.
    #[serde(default)]
    pub reference: Option<PathBuf>,
    /// Window length (`30s`, `5m`, `1h`).
    #[serde(default = "default_window")]
    pub window: String,
    /// Minimum rows for drift.
    #[serde(default = "default_min_rows")]
    pub min_rows: usize,
    /// Rules.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

fn default_log() -> PathBuf {
    PathBuf::from(".keel/predictions")
}
fn default_window() -> String {
    "5m".into()
}
fn default_min_rows() -> usize {
    30
}

/// Parses `30s`, `5m`, `1h`, `250ms` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.trim().parse().ok()?;
    (v > 0.0).then(|| Duration::from_secs_f64(v * mult))
}

impl MonitorConfig {
    /// Reads and checks `monitor.yaml`; errors name the file, line and field.
    pub fn load(path: &Path) -> Result<MonitorConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| ServeError::io(path, e))?;
        MonitorConfig::parse(&text, path)
    }

    /// Parses and checks the text of `path`. Relative paths in it are
    /// resolved against the file's directory.
    pub fn parse(text: &str, path: &Path) -> Result<MonitorConfig> {
        let err = |line: usize, column: usize, message: String| ServeError::Config {
            file: path.to_path_buf(),
            line,
            column,
            message,
        };
        let mut c: MonitorConfig = serde_yaml_ng::from_str(text).map_err(|e| {
            let (l, col) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            err(l, col, e.to_string())
        })?;
        // Semantic checks: find the line of the offending field for the message.
        let line_of = |needle: &str, nth: usize| {
            text.lines()
                .enumerate()
                .filter(|(_, l)| l.contains(needle))
                .nth(nth)
                .map_or(0, |(i, _)| i + 1)
        };
        if parse_duration(&c.window).is_none() {
            return Err(err(
                line_of("window:", 0),
                0,
                format!(
                    "window: `{}` is not a duration (e.g. 30s, 5m, 1h)",
                    c.window
                ),
            ));
        }
        for (i, r) in c.rules.iter().enumerate() {
            let known =
                METRICS.contains(&r.metric.as_str()) || r.metric.starts_with("drift_score.");
            if !known {
                return Err(err(
                    line_of("metric:", i),
                    0,
                    format!("rules[{i}].metric: unknown metric `{}` (expected one of {}, or drift_score.<feature>)", r.metric, METRICS.join(", ")),
                ));
            }
            if ![">", ">=", "<", "<=", "==", "!="].contains(&r.comparison.as_str()) {
                return Err(err(
                    line_of("comparison:", 0).max(line_of(&r.comparison, 0)),
                    0,
                    format!(
                        "rules[{i}].comparison: `{}` is not one of >, >=, <, <=, ==, !=",
                        r.comparison
                    ),
                ));
            }
            if !["info", "warning", "critical"].contains(&r.severity.as_str()) {
                return Err(err(
                    line_of("severity:", 0),
                    0,
                    format!(
                        "rules[{i}].severity: `{}` is not info, warning or critical",
                        r.severity
                    ),
                ));
            }
            if r.for_windows == 0 {
                return Err(err(
                    line_of("for:", 0),
                    0,
                    format!("rules[{i}].for: must be at least 1"),
                ));
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut c.log);
        if let Some(m) = c.model.as_mut() {
            abs(m);
        }
        if let Some(r) = c.reference.as_mut() {
            abs(r);
        }
        for r in &mut c.rules {
            for a in &mut r.actions {
                if let Action::Pipeline(p) = a {
                    if Path::new(p).is_relative() {
                        *p = base.join(&*p).to_string_lossy().into_owned();
                    }
                }
            }
        }
        Ok(c)
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        parse_duration(&self.window).unwrap_or(Duration::from_secs(300))
    }
}

/// What the monitor persists between runs and the server exports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Consecutive breaching windows per rule.
    #[serde(default)]
    pub breaches: BTreeMap<String, u32>,
    /// The gauges of the last window.
    #[serde(default)]
    pub gauges: Vec<Gauge>,
}

/// One rule that fired.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fired {
    /// The rule.
    pub rule: String,
    /// Severity.
    pub severity: String,
    /// Metric.
    pub metric: String,
    /// Observed value.
    pub value: f64,
    /// Threshold.
    pub threshold: f64,
    /// Each action and its outcome.
    pub actions: Vec<(String, String)>,
}

/// The result of evaluating one window.
#[derive(Clone, Debug, Serialize)]
pub struct WindowReport {
    /// Model name (from the log).
    pub model: String,
    /// Versions seen in the window.
    pub versions: Vec<String>,
    /// Window start (ms).
    pub start_ms: i64,
    /// Window end (ms).
    pub end_ms: i64,
    /// Metric values (`drift_score.<feature>` included).
    pub metrics: BTreeMap<String, f64>,
    /// The feature drift report, when computed.
    pub drift: Option<DriftReport>,
    /// Rules that fired.
    pub fired: Vec<Fired>,
}

/// Rows of the log within a window.
#[derive(Debug, Default)]
struct LogWindow {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn read_window(dir: &Path, start: i64, end: i64) -> Result<LogWindow> {
    let mut out = LogWindow::default();
    for seg in segments(&dir.join("predictions"))? {
        let text = std::fs::read_to_string(&seg).map_err(|e| ServeError::io(&seg, e))?;
        let (header, rows) = parse_csv(&text);
        if header.len() < PRED_FIXED.len() {
            continue;
        }
        let ts = 2;
        let role = 5;
        let keep: Vec<Vec<String>> = rows
            .into_iter()
            .filter(|r| r.len() == header.len())
            .filter(|r| r[ts].parse::<i64>().is_ok_and(|t| t >= start && t < end))
            .filter(|r| r[role] != "shadow")
            .collect();
        if keep.is_empty() {
            continue;
        }
        if out.header.is_empty() {
            out.header = header;
        } else if out.header != header {
            // A new signature: the window keeps the latest schema only.
            out.rows.clear();
            out.header = header;
        }
        out.rows.extend(keep);
    }
    Ok(out)
}

fn read_feedback(dir: &Path) -> Result<BTreeMap<(String, String), String>> {
    let mut out = BTreeMap::new();
    for seg in segments(&dir.join("feedback"))? {
        let text = std::fs::read_to_string(&seg).map_err(|e| ServeError::io(&seg, e))?;
        let (_, rows) = parse_csv(&text);
        for r in rows.into_iter().filter(|r| r.len() == 4) {
            out.insert((r[0].clone(), r[1].clone()), r[3].clone());
        }
    }
    Ok(out)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A column of strings as an Arrow array: Float64 when every non-empty
/// value is a number, else Utf8 (empty strings are nulls).
fn column_array(values: &[&str]) -> ArrayRef {
    let nums: Option<Vec<Option<f64>>> = values
        .iter()
        .map(|v| {
            if v.is_empty() {
                Some(None)
            } else {
                v.parse::<f64>().ok().map(Some)
            }
        })
        .collect();
    match nums {
        Some(n) => Arc::new(Float64Array::from(n)),
        None => Arc::new(StringArray::from(
            values
                .iter()
                .map(|v| (!v.is_empty()).then_some(*v))
                .collect::<Vec<_>>(),
        )),
    }
}

/// Scores the reference data with the model: the reference distribution
/// of the prediction score.
fn reference_scores(model: &ServedModel, reference: &[RecordBatch]) -> Result<Vec<f64>> {
    let mut scores = Vec::new();
    for batch in reference {
        let mut frame = Frame::default();
        for c in &model.columns {
            let Some(arr) = batch.column_by_name(&c.name) else {
                return Err(ServeError::BadRequest(format!(
                    "the reference data has no column `{}`",
                    c.name
                )));
            };
            let vals = keel_data::column::Values::from_array(arr).ok_or_else(|| {
                ServeError::BadRequest(format!(
                    "reference column `{}` has an unsupported type",
                    c.name
                ))
            })?;
            let cells = (0..vals.len())
                .map(|i| match (&vals, vals.display(i)) {
                    (_, None) => Cell::Null,
                    (keel_data::column::Values::Str(_), Some(s)) => Cell::Str(s),
                    (keel_data::column::Values::Bool(a), Some(_)) => Cell::Bool(a.value(i)),
                    (_, Some(s)) => s.parse::<f64>().map_or(Cell::Str(s), Cell::Num),
                })
                .collect();
            frame.columns.push(c.name.clone());
            frame.data.push(cells);
        }
        if frame.rows() == 0 {
            continue;
        }
        let out = model.predict(model.frame_inputs(&frame)?)?;
        scores.extend(out.scores);
    }
    Ok(scores)
}

/// Runs a fired rule's actions; returns `(action, outcome)` pairs.
pub type ActionRunner<'a> = dyn FnMut(&Rule, f64) -> Vec<(String, String)> + 'a;

/// Evaluates the window ending at `end_ms`, updates `state`, and fires
/// rules (actions run through `act`).
pub fn evaluate(
    config: &MonitorConfig,
    end_ms: i64,
    state: &mut State,
    act: &mut ActionRunner<'_>,
) -> Result<WindowReport> {
    let start_ms = end_ms - config.window().as_millis() as i64;
    let win = read_window(&config.log, start_ms, end_ms)?;
    let col = |name: &str| win.header.iter().position(|h| h == name);
    let mut metrics = BTreeMap::new();
    let (i_rid, i_row, i_ver, i_status, i_lat, i_cpu) = (0, 1, 4, 7, 8, 9);
    let ok_rows: Vec<&Vec<String>> = win.rows.iter().filter(|r| r[i_status] == "200").collect();
    // Requests: first row of each request.
    let requests: Vec<&Vec<String>> = win.rows.iter().filter(|r| r[i_row] == "0").collect();
    let errors = requests.iter().filter(|r| r[i_status] != "200").count();
    metrics.insert("rows".into(), ok_rows.len() as f64);
    metrics.insert("requests".into(), requests.len() as f64);
    metrics.insert(
        "error_rate".into(),
        if requests.is_empty() {
            0.0
        } else {
            errors as f64 / requests.len() as f64
        },
    );
    let mut lat: Vec<f64> = requests
        .iter()
        .filter(|r| r[i_status] == "200")
        .filter_map(|r| r[i_lat].parse().ok())
        .collect();
    lat.sort_by(f64::total_cmp);
    metrics.insert("latency_p50_seconds".into(), quantile(&lat, 0.5));
    metrics.insert("latency_p99_seconds".into(), quantile(&lat, 0.99));
    let cpu: f64 = requests
        .iter()
        .filter(|r| r[i_status] == "200")
        .filter_map(|r| r[i_cpu].parse::<f64>().ok())
        .sum();
    metrics.insert(
        "cpu_seconds_per_prediction".into(),
        if ok_rows.is_empty() {
            f64::NAN
        } else {
            cpu / ok_rows.len() as f64
        },
    );
    // Performance from feedback.
    let feedback = read_feedback(&config.log)?;
    let (mut n_fb, mut correct) = (0usize, 0usize);
    if let Some(ip) = col("prediction") {
        for r in &ok_rows {
            let label = feedback
                .get(&(r[i_rid].clone(), r[i_row].clone()))
                .or_else(|| feedback.get(&(r[i_rid].clone(), String::new())));
            if let Some(l) = label {
                n_fb += 1;
                if keel_ml::train::label_eq(&r[ip], l) {
                    correct += 1;
                }
            }
        }
    }
    metrics.insert("feedback_rows".into(), n_fb as f64);
    metrics.insert(
        "accuracy".into(),
        if n_fb == 0 {
            f64::NAN
        } else {
            correct as f64 / n_fb as f64
        },
    );

    // Drift.
    let model = match &config.model {
        Some(m) => Some(ServedModel::load(m, "model", "reference")?),
        None => None,
    };
    let features: Vec<String> = match &model {
        Some(m) => m.columns.iter().map(|c| c.name.clone()).collect(),
        None => {
            let first = PRED_FIXED.len();
            let last = win.header.len().saturating_sub(2);
            win.header
                .get(first..last)
                .map(<[String]>::to_vec)
                .unwrap_or_default()
        }
    };
    let mut drift = None;
    if let (Some(reference), true) = (
        &config.reference,
        ok_rows.len() >= config.min_rows && !features.is_empty(),
    ) {
        let reference = keel_data::read::read_all(reference, &keel_data::read::ReadOptions::new())?;
        let mut cols: Vec<(String, ArrayRef)> = Vec::new();
        for f in &features {
            let Some(i) = col(f) else { continue };
            let vals: Vec<&str> = ok_rows.iter().map(|r| r[i].as_str()).collect();
            cols.push((f.clone(), column_array(&vals)));
        }
        let current =
            RecordBatch::try_from_iter(cols).map_err(|e| ServeError::Model(e.to_string()))?;
        let mut options = DriftOptions::evidently_defaults();
        options.columns = Some(features.clone());
        let report = drift_batches(&reference, &[current], &options)?;
        metrics.insert("drift_share".into(), report.share);
        metrics.insert(
            "dataset_drift".into(),
            f64::from(u8::from(report.dataset_drift)),
        );
        metrics.insert("drifted_features".into(), report.drifted_columns as f64);
        for c in &report.columns {
            metrics.insert(format!("drift_score.{}", c.column), c.score);
        }
        // Prediction drift: the logged scores vs the model's scores on the reference.
        if let (Some(m), Some(isc)) = (&model, col("score")) {
            let ref_scores = reference_scores(m, &reference)?;
            let cur: Vec<Option<f64>> = ok_rows.iter().map(|r| r[isc].parse().ok()).collect();
            let rb = RecordBatch::try_from_iter([(
                "score",
                Arc::new(Float64Array::from(ref_scores)) as ArrayRef,
            )])
            .map_err(|e| ServeError::Model(e.to_string()))?;
            let cb = RecordBatch::try_from_iter([(
                "score",
                Arc::new(Float64Array::from(cur)) as ArrayRef,
            )])
            .map_err(|e| ServeError::Model(e.to_string()))?;
            let pd = drift_batches(&[rb], &[cb], &DriftOptions::evidently_defaults())?;
            if let Some(c) = pd.columns.first() {
                metrics.insert("prediction_drift_score".into(), c.score);
                metrics.insert("prediction_drift".into(), f64::from(u8::from(c.drifted)));
            }
        }
        drift = Some(report);
    }
    let model_name = win
        .rows
        .first()
        .map_or_else(|| "unknown".to_string(), |r| r[3].clone());
    let mut versions: Vec<String> = win.rows.iter().map(|r| r[i_ver].clone()).collect();
    versions.sort();
    versions.dedup();

    // Rules.
    let mut fired = Vec::new();
    for rule in &config.rules {
        let Some(&value) = metrics.get(&rule.metric) else {
            state.breaches.insert(rule.name.clone(), 0);
            continue;
        };
        let hit = !value.is_nan()
            && match rule.comparison.as_str() {
                ">" => value > rule.threshold,
                ">=" => value >= rule.threshold,
                "<" => value < rule.threshold,
                "<=" => value <= rule.threshold,
                "==" => value == rule.threshold,
                _ => value != rule.threshold,
            };
        let n = state.breaches.entry(rule.name.clone()).or_insert(0);
        *n = if hit { *n + 1 } else { 0 };
        if hit && *n == rule.for_windows {
            let actions = act(rule, value);
            fired.push(Fired {
                rule: rule.name.clone(),
                severity: rule.severity.clone(),
                metric: rule.metric.clone(),
                value,
                threshold: rule.threshold,
                actions,
            });
        }
    }
    state.gauges = gauges(&model_name, &metrics, config, state);
    Ok(WindowReport {
        model: model_name,
        versions,
        start_ms,
        end_ms,
        metrics,
        drift,
        fired,
    })
}

fn gauges(
    model: &str,
    metrics: &BTreeMap<String, f64>,
    config: &MonitorConfig,
    state: &State,
) -> Vec<Gauge> {
    let mut out = Vec::new();
    let mut g = |name: &str, help: &str, labels: &[(&str, &str)], value: f64| {
        let mut l: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        l.insert("model".into(), model.to_string());
        out.push(Gauge {
            name: name.to_string(),
            help: help.to_string(),
            labels: l,
            value,
        });
    };
    for (k, v) in metrics {
        if let Some(f) = k.strip_prefix("drift_score.") {
            g("keel_monitor_feature_drift_score", "Drift score per feature in the last monitor window (p-value or distance, Evidently's method).", &[("feature", f)], *v);
        } else {
            let (name, help) = match k.as_str() {
                "rows" => ("keel_monitor_window_rows", "Rows scored in the last monitor window."),
                "requests" => ("keel_monitor_window_requests", "Requests in the last monitor window."),
                "error_rate" => ("keel_monitor_error_ratio", "Share of failed requests in the last monitor window."),
                "latency_p50_seconds" => ("keel_monitor_latency_p50_seconds", "Median request latency in the last monitor window."),
                "latency_p99_seconds" => ("keel_monitor_latency_p99_seconds", "99th percentile request latency in the last monitor window."),
                "cpu_seconds_per_prediction" => ("keel_monitor_cpu_seconds_per_prediction", "Model CPU seconds per predicted row in the last monitor window."),
                "drift_share" => ("keel_monitor_dataset_drift_share", "Share of drifted features in the last monitor window."),
                "dataset_drift" => ("keel_monitor_dataset_drift", "1 when the dataset drifted (share at or above the limit)."),
                "drifted_features" => ("keel_monitor_drifted_features", "Features that drifted in the last monitor window."),
                "prediction_drift_score" => ("keel_monitor_prediction_drift_score", "Drift score of the prediction score vs the model's scores on the reference data."),
                "prediction_drift" => ("keel_monitor_prediction_drift", "1 when the prediction score drifted."),
                "accuracy" => ("keel_monitor_accuracy", "Accuracy of the predictions that received feedback labels in the last window."),
                "feedback_rows" => ("keel_monitor_feedback_rows", "Rows with a feedback label in the last monitor window."),
                _ => continue,
            };
            g(name, help, &[], *v);
        }
    }
    for r in &config.rules {
        let n = state.breaches.get(&r.name).copied().unwrap_or(0);
        g(
            "keel_monitor_alert_firing",
            "1 while an alert rule's condition has held for its for-window.",
            &[("rule", &r.name), ("severity", &r.severity)],
            f64::from(u8::from(n >= r.for_windows)),
        );
    }
    out
}

/// Runs a rule's actions; returns each action and its outcome. `keel` is
/// the binary to start for `pipeline` actions (`keel run FILE`), in `cwd`.
pub async fn run_actions(
    rule: &Rule,
    value: f64,
    model: &str,
    keel: &Path,
    cwd: &Path,
    log_dir: &Path,
) -> Vec<(String, String)> {
    let alert = serde_json::json!({
        "rule": rule.name, "severity": rule.severity, "metric": rule.metric,
        "value": value, "threshold": rule.threshold, "comparison": rule.comparison,
        "model": model, "timestamp_ms": now_ms(),
    });
    let mut out = Vec::new();
    for a in &rule.actions {
        match a {
            Action::Log => {
                eprintln!(
                    "keel monitor: ALERT [{}] {}: {} = {value} {} {}",
                    rule.severity, rule.name, rule.metric, rule.comparison, rule.threshold
                );
                let dir = log_dir.join("monitor");
                let res = std::fs::create_dir_all(&dir).and_then(|()| {
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(dir.join("alerts.jsonl"))?;
                    writeln!(f, "{alert}")?;
                    f.sync_data()
                });
                out.push((
                    "log".into(),
                    res.map_or_else(|e| format!("failed: {e}"), |()| "ok".into()),
                ));
            }
            Action::Webhook(url) => {
                let res = reqwest::Client::new()
                    .post(url)
                    .header("content-type", "application/json")
                    .body(alert.to_string())
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                out.push((
                    format!("webhook {url}"),
                    match res {
                        Ok(r) => format!("HTTP {}", r.status().as_u16()),
                        Err(e) => format!("failed: {e}"),
                    },
                ));
            }
            Action::Pipeline(file) => {
                eprintln!(
                    "keel monitor: {}: starting `keel run {file}` (continuous training)",
                    rule.name
                );
                // The run's output goes to our stderr: our stdout is the
                // report (JSON with --json), which job lines would corrupt.
                let to_stderr = std::io::stderr()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_or_else(|_| std::process::Stdio::inherit(), Into::into);
                let status = tokio::process::Command::new(keel)
                    .arg("run")
                    .arg(file)
                    .current_dir(cwd)
                    .stdout(to_stderr)
                    .env("KEEL_ALERT_RULE", &rule.name)
                    .env("KEEL_ALERT_METRIC", &rule.metric)
                    .env("KEEL_ALERT_VALUE", value.to_string())
                    .status()
                    .await;
                out.push((
                    format!("pipeline {file}"),
                    match status {
                        Ok(s) if s.success() => "succeeded".into(),
                        Ok(s) => format!("failed ({s}): gates or jobs failed; nothing promoted"),
                        Err(e) => format!("could not start: {e}"),
                    },
                ));
            }
        }
    }
    out
}

/// Loads the state file (empty when missing).
pub fn load_state(path: &Path) -> State {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes the state file atomically.
pub fn save_state(path: &Path, state: &State) -> Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|e| ServeError::io(p, e))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state).unwrap_or_default())
        .map_err(|e| ServeError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ServeError::io(path, e))
}

/// The state file of a log directory (the server reads the same path).
pub fn state_path(log_dir: &Path) -> PathBuf {
    log_dir.join("monitor").join("state.json")
}

/// One monitor pass: evaluate the window ending now, run the actions of
/// rules that fire, store the window (when `db` is given) and the state.
pub async fn run_once(
    config: &MonitorConfig,
    db: Option<&keel_store::db::Db>,
    keel: &Path,
    cwd: &Path,
) -> Result<WindowReport> {
    let spath = state_path(&config.log);
    let mut state = load_state(&spath);
    let mut pending: Vec<(Rule, f64)> = Vec::new();
    let mut report = evaluate(config, now_ms(), &mut state, &mut |rule, value| {
        pending.push((rule.clone(), value));
        Vec::new()
    })?;
    for (fired, (rule, value)) in report.fired.iter_mut().zip(pending) {
        fired.actions = run_actions(&rule, value, &report.model, keel, cwd, &config.log).await;
    }
    save_state(&spath, &state)?;
    if let Some(db) = db {
        let id = uuid::Uuid::now_v7().to_string();
        let metrics_json = serde_json::to_string(
            &report
                .metrics
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        if v.is_nan() {
                            serde_json::Value::Null
                        } else {
                            serde_json::json!(v)
                        },
                    )
                })
                .collect::<serde_json::Map<_, _>>(),
        )
        .unwrap_or_default();
        let window = keel_store::monitor::WindowRow {
            id: id.clone(),
            model: report.model.clone(),
            window_start: report.start_ms,
            window_end: report.end_ms,
            rows: report.metrics.get("rows").copied().unwrap_or(0.0) as i64,
            metrics_json,
            drift_json: report
                .drift
                .as_ref()
                .map(|d| serde_json::to_string(d).unwrap_or_default()),
        };
        let alerts: Vec<_> = report
            .fired
            .iter()
            .map(|f| keel_store::monitor::AlertRow {
                id: uuid::Uuid::now_v7().to_string(),
                window_id: id.clone(),
                rule: f.rule.clone(),
                severity: f.severity.clone(),
                metric: f.metric.clone(),
                value: f.value,
                threshold: f.threshold,
                actions_json: serde_json::to_string(&f.actions).unwrap_or_default(),
            })
            .collect();
        keel_store::monitor::record_window(db, &window, &alerts).await?;
    }
    Ok(report)
}
