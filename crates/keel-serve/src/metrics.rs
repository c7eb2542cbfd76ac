//! Prometheus metrics, kept in atomics on the request path and rendered in
//! the text exposition format 0.0.4 on scrape.
//!
//! Every family has HELP and TYPE, counters end in `_total`, durations are
//! in seconds, histograms carry cumulative `le` buckets ending in `+Inf`
//! plus `_sum` and `_count` (`promtool check metrics` is clean on it).
//! Series per model version live in a [`VersionMetrics`] that the loaded
//! model holds, so the request path never looks a series up.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Latency buckets (seconds): 50 µs to 5 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
];
/// Batch-size buckets (rows per request).
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
/// Prediction-score buckets (probabilities; regressors should be read
/// from the prediction log instead).
pub const SCORE_BUCKETS: &[f64] = &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

/// An f64 stored in an `AtomicU64`.
#[derive(Debug, Default)]
pub struct AtomicF64(AtomicU64);

impl AtomicF64 {
    /// Adds `v`.
    pub fn add(&self, v: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((f64::from_bits(b) + v).to_bits())
            });
    }
    /// Sets `v`.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    /// Reads.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// A histogram with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum: AtomicF64,
}

impl Histogram {
    /// A histogram over `bounds` (ascending, `+Inf` implied).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicF64::default(),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let i = self.bounds.partition_point(|&b| b < v);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum.add(v);
    }

    /// Records many observations, touching each shared counter once: one
    /// atomic add per observation made the rows of one request contend
    /// for the same cache lines across the server's threads.
    pub fn observe_all(&self, vs: &[f64]) {
        if let [v] = vs {
            return self.observe(*v);
        }
        let mut counts = vec![0u64; self.counts.len()];
        let mut sum = 0.0;
        for &v in vs.iter().filter(|v| !v.is_nan()) {
            counts[self.bounds.partition_point(|&b| b < v)] += 1;
            sum += v;
        }
        for (shared, n) in self.counts.iter().zip(counts).filter(|(_, n)| *n > 0) {
            shared.fetch_add(n, Ordering::Relaxed);
        }
        if sum != 0.0 {
            self.sum.add(sum);
        }
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cum = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cum += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cum}");
        }
        cum += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cum}");
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), fmt(self.sum.get()));
        let _ = writeln!(out, "{name}_count{} {cum}", braces(labels));
    }
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Escapes a label value.
pub fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Which protocol a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Open Inference Protocol V2.
    V2 = 0,
    /// MLflow `/invocations`.
    Mlflow = 1,
}

const PROTOCOLS: [&str; 2] = ["v2", "mlflow"];
const CODES: [u16; 9] = [200, 400, 404, 405, 413, 415, 500, 503, 0];

fn code_index(code: u16) -> usize {
    CODES
        .iter()
        .position(|&c| c == code)
        .unwrap_or(CODES.len() - 1)
}

/// The series of one loaded model version.
#[derive(Debug)]
pub struct VersionMetrics {
    /// Model name.
    pub model: String,
    /// Version.
    pub version: String,
    requests: Vec<AtomicU64>,
    /// Request latency (seconds), successful requests.
    pub latency: Histogram,
    /// Rows per request.
    pub batch: Histogram,
    /// Predicted scores.
    pub score: Histogram,
    /// Model-evaluation seconds (CPU time of predictions).
    pub compute_seconds: AtomicF64,
    /// Rows predicted.
    pub rows: AtomicU64,
    classes: Mutex<BTreeMap<String, u64>>,
}

impl VersionMetrics {
    fn new(model: &str, version: &str) -> VersionMetrics {
        VersionMetrics {
            model: model.to_string(),
            version: version.to_string(),
            requests: (0..PROTOCOLS.len() * CODES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency: Histogram::new(LATENCY_BUCKETS),
            batch: Histogram::new(BATCH_BUCKETS),
            score: Histogram::new(SCORE_BUCKETS),
            compute_seconds: AtomicF64::default(),
            rows: AtomicU64::new(0),
            classes: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts one request.
    pub fn request(&self, protocol: Protocol, code: u16) {
        self.requests[protocol as usize * CODES.len() + code_index(code)]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Records a successful prediction.
    pub fn predicted(&self, seconds: f64, compute: f64, labels: &[String], scores: &[f64]) {
        self.latency.observe(seconds);
        self.batch.observe(labels.len() as f64);
        self.compute_seconds.add(compute);
        self.rows.fetch_add(labels.len() as u64, Ordering::Relaxed);
        self.score.observe_all(scores);
        // Class counts only for classifiers (few distinct labels).
        if let Ok(mut m) = self.classes.lock() {
            for l in labels {
                if let Some(c) = m.get_mut(l) {
                    *c += 1;
                } else if m.len() < 64 {
                    m.insert(l.clone(), 1);
                }
            }
        }
    }

    /// Requests counted for `code` over both protocols.
    pub fn requests_with(&self, code: u16) -> u64 {
        (0..PROTOCOLS.len())
            .map(|p| self.requests[p * CODES.len() + code_index(code)].load(Ordering::Relaxed))
            .sum()
    }
}

/// A gauge the monitor computed, exported by the server.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Gauge {
    /// Metric name (`keel_monitor_…`).
    pub name: String,
    /// HELP text.
    pub help: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value (NaN, e.g. accuracy without feedback, is `null` in JSON).
    #[serde(with = "nan_as_null")]
    pub value: f64,
}

/// JSON has no NaN: serde_json writes it as `null` and then refuses to read
/// `null` back as an f64, which made the server drop the monitor's whole
/// state file (and every `keel_monitor_*` gauge) whenever one value was NaN.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() {
            s.serialize_none()
        } else {
            s.serialize_f64(*v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// All of the server's metrics.
#[derive(Debug, Default)]
pub struct Registry {
    versions: RwLock<Vec<Arc<VersionMetrics>>>,
    /// Records appended to the prediction log.
    pub log_records: AtomicU64,
    /// Batches written (one fsync each).
    pub log_batches: AtomicU64,
    /// Write or fsync failures of the prediction log.
    pub log_errors: AtomicU64,
    /// Seconds spent in write + fsync.
    pub log_write_seconds: AtomicF64,
    /// Feedback labels received.
    pub feedback: AtomicU64,
    /// Model loads that succeeded.
    pub loads: AtomicU64,
    /// Model loads that failed (the old version kept serving).
    pub load_failures: AtomicU64,
    /// Requests routed to the challenger (canary).
    pub canary_requests: AtomicU64,
    /// Shadow predictions made.
    pub shadow_requests: AtomicU64,
}

/// What is loaded, for the info gauges.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// `primary` or `challenger`.
    pub role: &'static str,
    /// Model name.
    pub model: String,
    /// Version.
    pub version: String,
    /// Seconds the load took.
    pub load_seconds: f64,
}

impl Registry {
    /// The series of `model` `version` (created on first use).
    pub fn version(&self, model: &str, version: &str) -> Arc<VersionMetrics> {
        if let Ok(v) = self.versions.read() {
            if let Some(m) = v.iter().find(|m| m.model == model && m.version == version) {
                return m.clone();
            }
        }
        let mut v = self
            .versions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(m) = v.iter().find(|m| m.model == model && m.version == version) {
            return m.clone();
        }
        let m = Arc::new(VersionMetrics::new(model, version));
        v.push(m.clone());
        m
    }

    /// The exposition text.
    pub fn render(&self, loaded: &[Loaded], monitor: &[Gauge]) -> String {
        let versions = self.versions.read().map(|v| v.clone()).unwrap_or_default();
        let mut o = String::with_capacity(16 << 10);
        let head = |o: &mut String, name: &str, ty: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {ty}");
        };
        let vl = |m: &VersionMetrics| {
            format!(
                "model=\"{}\",version=\"{}\"",
                esc(&m.model),
                esc(&m.version)
            )
        };

        head(
            &mut o,
            "keel_inference_requests_total",
            "counter",
            "Inference requests by model version, protocol and HTTP status code.",
        );
        for m in &versions {
            for (p, proto) in PROTOCOLS.iter().enumerate() {
                for (c, code) in CODES.iter().enumerate() {
                    let n = m.requests[p * CODES.len() + c].load(Ordering::Relaxed);
                    if n > 0 {
                        let code = if *code == 0 {
                            "other".to_string()
                        } else {
                            code.to_string()
                        };
                        let _ = writeln!(o, "keel_inference_requests_total{{{},protocol=\"{proto}\",code=\"{code}\"}} {n}", vl(m));
                    }
                }
            }
        }
        head(&mut o, "keel_inference_request_duration_seconds", "histogram", "Latency of successful inference requests, from body received to response ready (includes the prediction-log commit).");
        for m in &versions {
            m.latency
                .render(&mut o, "keel_inference_request_duration_seconds", &vl(m));
        }
        head(
            &mut o,
            "keel_inference_batch_size",
            "histogram",
            "Rows per successful inference request.",
        );
        for m in &versions {
            m.batch.render(&mut o, "keel_inference_batch_size", &vl(m));
        }
        head(&mut o, "keel_prediction_score", "histogram", "Distribution of predicted scores (positive-class probability, top probability, or regression value).");
        for m in &versions {
            m.score.render(&mut o, "keel_prediction_score", &vl(m));
        }
        head(
            &mut o,
            "keel_predictions_total",
            "counter",
            "Rows predicted, by predicted label.",
        );
        for m in &versions {
            if let Ok(c) = m.classes.lock() {
                for (label, n) in c.iter() {
                    let _ = writeln!(
                        o,
                        "keel_predictions_total{{{},label=\"{}\"}} {n}",
                        vl(m),
                        esc(label)
                    );
                }
            }
        }
        head(
            &mut o,
            "keel_prediction_compute_seconds_total",
            "counter",
            "CPU time spent evaluating the model.",
        );
        for m in &versions {
            let _ = writeln!(
                o,
                "keel_prediction_compute_seconds_total{{{}}} {}",
                vl(m),
                fmt(m.compute_seconds.get())
            );
        }
        head(&mut o, "keel_model_info", "gauge", "The model versions loaded, by role (primary answers; challenger is the canary or shadow).");
        for l in loaded {
            let _ = writeln!(
                o,
                "keel_model_info{{model=\"{}\",version=\"{}\",role=\"{}\"}} 1",
                esc(&l.model),
                esc(&l.version),
                l.role
            );
        }
        head(
            &mut o,
            "keel_model_load_duration_seconds",
            "gauge",
            "Seconds the loaded version took to load.",
        );
        for l in loaded {
            let _ = writeln!(
                o,
                "keel_model_load_duration_seconds{{model=\"{}\",version=\"{}\",role=\"{}\"}} {}",
                esc(&l.model),
                esc(&l.version),
                l.role,
                fmt(l.load_seconds)
            );
        }
        let counters: [(&str, &str, u64); 7] = [
            (
                "keel_model_loads_total",
                "Model versions loaded (startup and swaps).",
                self.loads.load(Ordering::Relaxed),
            ),
            (
                "keel_model_load_failures_total",
                "Model loads that failed; the previous version kept serving.",
                self.load_failures.load(Ordering::Relaxed),
            ),
            (
                "keel_prediction_log_records_total",
                "Records committed to the prediction log.",
                self.log_records.load(Ordering::Relaxed),
            ),
            (
                "keel_prediction_log_batches_total",
                "Batches written to the prediction log (one fsync each).",
                self.log_batches.load(Ordering::Relaxed),
            ),
            (
                "keel_prediction_log_errors_total",
                "Prediction-log write or fsync failures.",
                self.log_errors.load(Ordering::Relaxed),
            ),
            (
                "keel_feedback_labels_total",
                "Ground-truth labels received on /feedback.",
                self.feedback.load(Ordering::Relaxed),
            ),
            (
                "keel_shadow_predictions_total",
                "Requests also scored by the shadow challenger.",
                self.shadow_requests.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            head(&mut o, name, "counter", help);
            let _ = writeln!(o, "{name} {v}");
        }
        head(
            &mut o,
            "keel_canary_requests_total",
            "counter",
            "Requests answered by the canary challenger.",
        );
        let _ = writeln!(
            o,
            "keel_canary_requests_total {}",
            self.canary_requests.load(Ordering::Relaxed)
        );
        head(
            &mut o,
            "keel_prediction_log_write_seconds_total",
            "counter",
            "Seconds spent writing and fsyncing the prediction log.",
        );
        let _ = writeln!(
            o,
            "keel_prediction_log_write_seconds_total {}",
            fmt(self.log_write_seconds.get())
        );
        if let Some((cpu, rss)) = process_stats() {
            head(
                &mut o,
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
            );
            let _ = writeln!(o, "process_cpu_seconds_total {}", fmt(cpu));
            head(
                &mut o,
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
            );
            let _ = writeln!(o, "process_resident_memory_bytes {rss}");
        }
        // Monitor gauges: grouped by name, one HELP/TYPE each.
        let mut names: Vec<&str> = monitor.iter().map(|g| g.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let mut first = true;
            for g in monitor.iter().filter(|g| g.name == name) {
                if first {
                    head(&mut o, name, "gauge", &g.help.replace('\n', " "));
                    first = false;
                }
                let labels: Vec<String> = g
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
                    .collect();
                let _ = writeln!(o, "{name}{} {}", braces(&labels.join(",")), fmt(g.value));
            }
        }
        o
    }
}

/// Process CPU seconds and resident bytes from `/proc/self/stat` (Linux).
fn process_stats() -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command: state is index 0 → utime is 11, stime 12, rss 21.
    let ticks = 100.0; // USER_HZ on Linux
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let rss: u64 = f.get(21)?.parse().ok()?;
    Some(((utime + stime) / ticks, rss * 4096))
}
