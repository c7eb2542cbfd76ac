//! Drift between a reference and a current dataset, computed exactly as
//! Evidently 0.7's default `DataDriftPreset` chooses and computes it.
//!
//! Per column: the column type is inferred from the current data
//! ([`ColumnKind::infer`]); NaN and ±inf are dropped from each side; the
//! test is chosen from the reference size `n_ref` and the number `k` of
//! distinct values in both samples together:
//!
//! | n_ref  | type                       | k     | test                 | drift if        |
//! |--------|----------------------------|-------|----------------------|-----------------|
//! | ≤ 1000 | numerical                  | > 5   | `ks` p-value         | p ≤ 0.05        |
//! | ≤ 1000 | numerical                  | 3..=5 | `chisquare` p-value  | p < 0.05        |
//! | ≤ 1000 | numerical or categorical   | ≤ 2   | `z` p-value          | p < 0.05        |
//! | ≤ 1000 | categorical                | > 2   | `chisquare` p-value  | p < 0.05        |
//! | > 1000 | numerical                  | > 5   | `wasserstein` normed | d ≥ 0.1         |
//! | > 1000 | numerical ≤ 5, categorical | any   | `jensenshannon`      | d ≥ 0.1         |
//!
//! The dataset drifts when the share of drifted columns is ≥ the drift
//! share (0.5). Text columns (Evidently trains a domain classifier on them)
//! and datetime columns are reported as skipped and left out of the share.
//!
//! Memory: categorical columns are reduced to value counts while
//! streaming; numerical columns keep their values (8 bytes per row), which
//! the exact KS and Wasserstein statistics need.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use arrow_array::{Array, RecordBatch};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::column::{ColumnKind, Physical, Values};
use crate::error::{DataError, Result};
use crate::read::{self, ReadOptions};
use crate::stats;

/// A drift test, named as Evidently names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    /// Two-sample Kolmogorov–Smirnov, p-value.
    #[serde(rename = "ks")]
    Ks,
    /// Pearson chi-square against reference proportions, p-value.
    #[serde(rename = "chisquare")]
    ChiSquare,
    /// Two-proportion Z-test, p-value.
    #[serde(rename = "z")]
    Z,
    /// Wasserstein distance normed by the reference std.
    #[serde(rename = "wasserstein")]
    Wasserstein,
    /// Jensen–Shannon distance.
    #[serde(rename = "jensenshannon")]
    JensenShannon,
    /// Population Stability Index.
    #[serde(rename = "psi")]
    Psi,
    /// Kullback–Leibler divergence.
    #[serde(rename = "kl_div")]
    KlDiv,
}

impl Method {
    /// All methods.
    pub const ALL: [Method; 7] = [
        Method::Ks,
        Method::ChiSquare,
        Method::Z,
        Method::Wasserstein,
        Method::JensenShannon,
        Method::Psi,
        Method::KlDiv,
    ];

    /// Evidently's name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ks => "ks",
            Method::ChiSquare => "chisquare",
            Method::Z => "z",
            Method::Wasserstein => "wasserstein",
            Method::JensenShannon => "jensenshannon",
            Method::Psi => "psi",
            Method::KlDiv => "kl_div",
        }
    }

    /// Default threshold.
    pub fn default_threshold(self) -> f64 {
        match self {
            Method::Ks | Method::ChiSquare | Method::Z => 0.05,
            _ => 0.1,
        }
    }

    /// Whether the score is a p-value (drift when small) rather than a
    /// distance (drift when large).
    pub fn is_p_value(self) -> bool {
        matches!(self, Method::Ks | Method::ChiSquare | Method::Z)
    }

    /// The verdict for a score against a threshold (KS drifts on `p ≤ t`,
    /// the other p-value tests on `p < t`, distances on `d ≥ t`).
    pub fn drifted(self, score: f64, threshold: f64) -> bool {
        match self {
            Method::Ks => score <= threshold,
            Method::ChiSquare | Method::Z => score < threshold,
            _ => score >= threshold,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
                format!(
                    "unknown drift method `{s}` (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// Method and threshold for one column; `None` means Evidently's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnOverride {
    /// The test to run.
    #[serde(default)]
    pub method: Option<Method>,
    /// The threshold to compare the score with.
    #[serde(default)]
    pub threshold: Option<f64>,
}

/// What to compare and how.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftOptions {
    /// Columns to test (all columns of the current data when `None`).
    pub columns: Option<Vec<String>>,
    /// Dataset drift when the share of drifted columns is ≥ this.
    pub drift_share: f64,
    /// Method for every column without a per-column override.
    pub method: Option<Method>,
    /// Threshold for every column without a per-column override.
    pub threshold: Option<f64>,
    /// Per-column overrides.
    pub per_column: BTreeMap<String, ColumnOverride>,
}

impl DriftOptions {
    /// Evidently's `DataDriftPreset()` defaults: all columns, automatic
    /// method choice, drift share 0.5.
    pub fn evidently_defaults() -> DriftOptions {
        DriftOptions {
            columns: None,
            drift_share: 0.5,
            method: None,
            threshold: None,
            per_column: BTreeMap::new(),
        }
    }
}

/// A category key: numbers compare numerically, strings lexically
/// (booleans are the strings `False` < `True`, as Python sorts them).
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Key {
    Num(f64),
    Str(String),
}

impl Key {
    fn label(&self) -> String {
        match self {
            Key::Num(v) => crate::column::format_f64(*v),
            Key::Str(s) => s.clone(),
        }
    }
}

/// The values of one column gathered for drift.
#[derive(Debug, Clone)]
pub struct ColumnSample {
    name: String,
    physical: Physical,
    rows: u64,
    /// Nulls, NaN and ±inf (all dropped before testing).
    missing: u64,
    /// Numeric values (sorted once gathering is done).
    values: Vec<f64>,
    /// Value counts of string and boolean columns.
    counts: HashMap<String, u64>,
}

impl ColumnSample {
    fn new(name: String, physical: Physical) -> ColumnSample {
        ColumnSample {
            name,
            physical,
            rows: 0,
            missing: 0,
            values: Vec::new(),
            counts: HashMap::new(),
        }
    }

    fn is_numeric(&self) -> bool {
        matches!(self.physical, Physical::Integer | Physical::Float)
    }

    fn push(&mut self, values: &Values) {
        self.rows += values.len() as u64;
        match values {
            Values::Int(a) => {
                self.missing += a.null_count() as u64;
                self.values.extend(a.iter().flatten().map(|v| v as f64));
            }
            Values::Float(a) => {
                let before = self.values.len();
                self.values
                    .extend(a.iter().flatten().filter(|v| v.is_finite()));
                self.missing += (a.len() - (self.values.len() - before)) as u64;
            }
            Values::Str(a) => {
                for v in a.iter() {
                    match v {
                        Some(s) if !s.is_empty() => match self.counts.get_mut(s) {
                            Some(c) => *c += 1,
                            None => {
                                self.counts.insert(s.to_string(), 1);
                            }
                        },
                        _ => self.missing += 1,
                    }
                }
            }
            Values::Bool(a) => {
                self.missing += a.null_count() as u64;
                for v in a.iter().flatten() {
                    *self
                        .counts
                        .entry(if v { "True" } else { "False" }.to_string())
                        .or_default() += 1;
                }
            }
        }
    }

    fn finish(&mut self) {
        self.values
            .sort_unstable_by(|a, b| a.partial_cmp(b).expect("NaN were dropped"));
    }

    /// Non-missing values.
    pub fn count(&self) -> u64 {
        self.rows - self.missing
    }

    /// Distinct non-missing values.
    pub fn distinct(&self) -> u64 {
        if self.is_numeric() {
            distinct_sorted(&self.values) as u64
        } else {
            self.counts.len() as u64
        }
    }

    fn key_counts(&self) -> Vec<(Key, u64)> {
        if self.is_numeric() {
            let mut out: Vec<(Key, u64)> = Vec::new();
            for &v in &self.values {
                match out.last_mut() {
                    Some((Key::Num(last), c)) if *last == v => *c += 1,
                    _ => out.push((Key::Num(v), 1)),
                }
            }
            out
        } else {
            self.counts
                .iter()
                .map(|(k, c)| (Key::Str(k.clone()), *c))
                .collect()
        }
    }
}

fn distinct_sorted(v: &[f64]) -> usize {
    if v.is_empty() {
        return 0;
    }
    1 + v.windows(2).filter(|w| w[0] != w[1]).count()
}

/// Distinct values of two sorted samples together.
fn distinct_union_sorted(a: &[f64], b: &[f64]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    let mut last: Option<f64> = None;
    while i < a.len() || j < b.len() {
        let v = if j >= b.len() || (i < a.len() && a[i] <= b[j]) {
            i += 1;
            a[i - 1]
        } else {
            j += 1;
            b[j - 1]
        };
        if last != Some(v) {
            n += 1;
            last = Some(v);
        }
    }
    n
}

/// The columns of one dataset gathered for drift.
#[derive(Debug, Clone)]
pub struct Sample {
    rows: u64,
    columns: Vec<ColumnSample>,
}

impl Sample {
    /// Gathers the columns of a stream of batches (`columns` restricts
    /// which). Unsupported column types (lists, binary…) are left out.
    pub fn from_batches<I>(batches: I, columns: Option<&[String]>) -> Result<Sample>
    where
        I: IntoIterator<Item = Result<RecordBatch>>,
    {
        let mut sample: Option<Sample> = None;
        for batch in batches {
            let batch = batch?;
            let schema = batch.schema();
            let s = sample.get_or_insert_with(|| Sample {
                rows: 0,
                columns: schema
                    .fields()
                    .iter()
                    .filter(|f| columns.is_none_or(|c| c.iter().any(|n| n == f.name())))
                    .filter(|f| Physical::of(f.data_type()) != Physical::Other)
                    .map(|f| ColumnSample::new(f.name().clone(), Physical::of(f.data_type())))
                    .collect(),
            });
            s.rows += batch.num_rows() as u64;
            s.columns.par_iter_mut().try_for_each(|col| -> Result<()> {
                let array =
                    batch
                        .column_by_name(&col.name)
                        .ok_or_else(|| DataError::MissingColumn {
                            column: col.name.clone(),
                            source_name: "a later batch".into(),
                        })?;
                let values = Values::from_array(array).ok_or_else(|| DataError::Column {
                    column: col.name.clone(),
                    message: format!("unsupported type {}", array.data_type()),
                })?;
                col.push(&values);
                Ok(())
            })?;
        }
        let mut sample = sample.unwrap_or(Sample {
            rows: 0,
            columns: Vec::new(),
        });
        sample.columns.par_iter_mut().for_each(ColumnSample::finish);
        Ok(sample)
    }

    /// Gathers the columns of a file, streaming.
    pub fn from_path(path: &Path, columns: Option<&[String]>) -> Result<Sample> {
        let options = ReadOptions::new().with_columns(columns.map(|c| c.to_vec()));
        let reader = read::open(path, &options)?;
        Sample::from_batches(reader, columns)
    }

    /// Rows seen.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The gathered columns.
    pub fn columns(&self) -> &[ColumnSample] {
        &self.columns
    }

    fn column(&self, name: &str) -> Option<&ColumnSample> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Reference-vs-current distributions for the report's charts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Bin edges (numerical columns; `labels` is empty then).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<f64>,
    /// Category labels (categorical columns; `edges` is empty then).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Reference share per bin or category.
    pub reference: Vec<f64>,
    /// Current share per bin or category.
    pub current: Vec<f64>,
}

/// The drift result for one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDrift {
    /// Column name.
    pub column: String,
    /// Inferred type (from the current data).
    pub kind: ColumnKind,
    /// The test that ran (`None` when skipped).
    pub method: Option<Method>,
    /// Evidently's drift score: the p-value or the distance.
    #[serde(with = "crate::jsonf64")]
    pub score: f64,
    /// The raw statistic behind a p-value (KS D, χ², z); equals `score`
    /// for distances.
    #[serde(with = "crate::jsonf64")]
    pub statistic: f64,
    /// Threshold the score was compared with.
    #[serde(with = "crate::jsonf64")]
    pub threshold: f64,
    /// Verdict.
    pub drifted: bool,
    /// For KS: whether the exact distribution was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<bool>,
    /// Non-missing reference values.
    pub reference_count: u64,
    /// Non-missing current values.
    pub current_count: u64,
    /// Missing (null, NaN, ±inf) reference values.
    pub reference_missing: u64,
    /// Missing current values.
    pub current_missing: u64,
    /// Distinct values in both samples together.
    pub distinct: u64,
    /// Why the column was not tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Distributions for the charts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
}

/// The drift report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Reference rows.
    pub reference_rows: u64,
    /// Current rows.
    pub current_rows: u64,
    /// Columns tested (skipped ones excluded).
    pub tested_columns: usize,
    /// Columns that drifted.
    pub drifted_columns: usize,
    /// `drifted_columns / tested_columns`.
    #[serde(with = "crate::jsonf64")]
    pub share: f64,
    /// The share at or above which the dataset drifts.
    pub drift_share: f64,
    /// Verdict for the dataset.
    pub dataset_drift: bool,
    /// Per-column results, in the current data's column order.
    pub columns: Vec<ColumnDrift>,
}

impl DriftReport {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes")
    }

    /// A self-contained HTML page with per-column charts.
    pub fn to_html(&self) -> String {
        crate::html::drift_html(self)
    }
}

/// Drift between two files (streamed; see the module doc for memory).
pub fn drift_files(
    reference: &Path,
    current: &Path,
    options: &DriftOptions,
) -> Result<DriftReport> {
    let cols = options.columns.as_deref();
    let (r, c) = rayon::join(
        || Sample::from_path(reference, cols),
        || Sample::from_path(current, cols),
    );
    drift(&r?, &c?, options)
}

/// Drift between two sets of in-memory batches (e.g. windows of a
/// prediction log).
pub fn drift_batches(
    reference: &[RecordBatch],
    current: &[RecordBatch],
    options: &DriftOptions,
) -> Result<DriftReport> {
    let cols = options.columns.as_deref();
    let r = Sample::from_batches(reference.iter().cloned().map(Ok), cols)?;
    let c = Sample::from_batches(current.iter().cloned().map(Ok), cols)?;
    drift(&r, &c, options)
}

/// Drift between two gathered samples.
pub fn drift(reference: &Sample, current: &Sample, options: &DriftOptions) -> Result<DriftReport> {
    let names: Vec<String> = match &options.columns {
        Some(c) => c.clone(),
        None => current.columns.iter().map(|c| c.name.clone()).collect(),
    };
    let mut pairs = Vec::with_capacity(names.len());
    for name in &names {
        let cur = current
            .column(name)
            .ok_or_else(|| DataError::MissingColumn {
                column: name.clone(),
                source_name: "the current data".into(),
            })?;
        let rf = reference
            .column(name)
            .ok_or_else(|| DataError::MissingColumn {
                column: name.clone(),
                source_name: "the reference data".into(),
            })?;
        pairs.push((rf, cur));
    }
    let columns: Vec<ColumnDrift> = pairs
        .par_iter()
        .map(|(r, c)| column_drift(r, c, options))
        .collect::<Result<_>>()?;
    let tested = columns.iter().filter(|c| c.skipped.is_none()).count();
    let drifted = columns.iter().filter(|c| c.drifted).count();
    let share = if tested == 0 {
        0.0
    } else {
        drifted as f64 / tested as f64
    };
    Ok(DriftReport {
        reference_rows: reference.rows,
        current_rows: current.rows,
        tested_columns: tested,
        drifted_columns: drifted,
        share,
        drift_share: options.drift_share,
        dataset_drift: tested > 0 && share >= options.drift_share,
        columns,
    })
}

/// Evidently's `_get_default_stattest`.
pub fn default_method(kind: ColumnKind, n_ref: u64, distinct: u64) -> Option<Method> {
    match (kind, n_ref <= 1000) {
        (ColumnKind::Numerical, true) if distinct > 5 => Some(Method::Ks),
        (ColumnKind::Numerical, true) if distinct > 2 => Some(Method::ChiSquare),
        (ColumnKind::Numerical, true) => Some(Method::Z),
        (ColumnKind::Categorical, true) if distinct > 2 => Some(Method::ChiSquare),
        (ColumnKind::Categorical, true) => Some(Method::Z),
        (ColumnKind::Numerical, false) if distinct > 5 => Some(Method::Wasserstein),
        (ColumnKind::Numerical | ColumnKind::Categorical, false) => Some(Method::JensenShannon),
        _ => None,
    }
}

fn column_drift(r: &ColumnSample, c: &ColumnSample, options: &DriftOptions) -> Result<ColumnDrift> {
    let has_nulls = c.missing > 0 && c.physical == Physical::Integer;
    let kind = ColumnKind::infer(c.physical, c.distinct(), c.count(), has_nulls);
    let mut out = ColumnDrift {
        column: c.name.clone(),
        kind,
        method: None,
        score: f64::NAN,
        statistic: f64::NAN,
        threshold: f64::NAN,
        drifted: false,
        exact: None,
        reference_count: r.count(),
        current_count: c.count(),
        reference_missing: r.missing,
        current_missing: c.missing,
        distinct: 0,
        skipped: None,
        histogram: None,
    };
    let skip = |mut out: ColumnDrift, why: &str| {
        out.skipped = Some(why.to_string());
        Ok(out)
    };
    match kind {
        ColumnKind::Text => {
            return skip(
                out,
                "text column: Evidently's text drift (a domain classifier) is not implemented",
            )
        }
        ColumnKind::Datetime => return skip(out, "datetime columns are not drift-tested"),
        ColumnKind::Unknown => return skip(out, "column type unknown (empty or unsupported)"),
        ColumnKind::Numerical | ColumnKind::Categorical => {}
    }
    if r.count() == 0 {
        return skip(out, "no non-missing values in the reference data");
    }
    if c.count() == 0 {
        return skip(out, "no non-missing values in the current data");
    }
    if r.is_numeric() != c.is_numeric() {
        return Err(DataError::Column {
            column: c.name.clone(),
            message: "numeric in one dataset and not in the other".into(),
        });
    }
    let numeric = c.is_numeric();
    let distinct = if numeric {
        distinct_union_sorted(&r.values, &c.values) as u64
    } else {
        r.counts
            .keys()
            .chain(c.counts.keys().filter(|k| !r.counts.contains_key(*k)))
            .count() as u64
    };
    out.distinct = distinct;
    let over = options.per_column.get(&c.name);
    let method = over
        .and_then(|o| o.method)
        .or(options.method)
        .or_else(|| default_method(kind, r.count(), distinct))
        .expect("numerical and categorical columns always have a default");
    let threshold = over
        .and_then(|o| o.threshold)
        .or(options.threshold)
        .unwrap_or_else(|| method.default_threshold());
    let needs_numbers = matches!(method, Method::Ks | Method::Wasserstein);
    if needs_numbers && kind != ColumnKind::Numerical {
        return Err(DataError::Column {
            column: c.name.clone(),
            message: format!(
                "method `{method}` applies to numerical columns only (this one is {kind:?})"
            ),
        });
    }
    let (score, statistic) = match method {
        Method::Ks => {
            let ks = stats::ks_2samp(&r.values, &c.values);
            out.exact = Some(ks.exact);
            (ks.p_value, ks.statistic)
        }
        Method::Wasserstein => {
            let norm = stats::population_std(&r.values).max(0.001);
            let d = stats::wasserstein(&r.values, &c.values) / norm;
            (d, d)
        }
        Method::ChiSquare => {
            let (keys, rc, cc) = union_counts(r, c);
            let _ = keys;
            let k_norm = c.count() as f64 / r.count() as f64;
            let expected: Vec<f64> = rc.iter().map(|x| *x as f64 * k_norm).collect();
            let observed: Vec<f64> = cc.iter().map(|x| *x as f64).collect();
            let (stat, p) = stats::chisquare(&observed, &expected);
            (p, stat)
        }
        Method::Z => {
            let (keys, rc, cc) = union_counts(r, c);
            if r.distinct() == 1 && c.distinct() == 1 && keys.len() == 1 {
                (1.0, 0.0)
            } else {
                // Keys are sorted: "zero" is the smallest value.
                let n1 = r.count() as f64;
                let n2 = c.count() as f64;
                let (z, p) =
                    stats::proportions_z_test(n1 - rc[0] as f64, n1, n2 - cc[0] as f64, n2);
                (p, z)
            }
        }
        Method::JensenShannon | Method::Psi | Method::KlDiv => {
            let (mut rp, mut cp) = binned(r, c, kind);
            let v = match method {
                Method::JensenShannon => stats::jensen_shannon(&rp, &cp),
                Method::Psi => {
                    stats::fill_zeroes(&mut rp);
                    stats::fill_zeroes(&mut cp);
                    stats::psi(&rp, &cp)
                }
                _ => {
                    stats::fill_zeroes(&mut rp);
                    stats::fill_zeroes(&mut cp);
                    stats::kl_divergence(&rp, &cp)
                }
            };
            (v, v)
        }
    };
    out.method = Some(method);
    out.score = score;
    out.statistic = statistic;
    out.threshold = threshold;
    out.drifted = method.drifted(score, threshold);
    out.histogram = Some(chart(r, c, kind));
    Ok(out)
}

/// Counts of every key of the union, keys sorted.
fn union_counts(r: &ColumnSample, c: &ColumnSample) -> (Vec<Key>, Vec<u64>, Vec<u64>) {
    let mut all: BTreeMap<KeyOrd, (u64, u64)> = BTreeMap::new();
    for (k, n) in r.key_counts() {
        all.entry(KeyOrd(k)).or_default().0 += n;
    }
    for (k, n) in c.key_counts() {
        all.entry(KeyOrd(k)).or_default().1 += n;
    }
    let mut keys = Vec::with_capacity(all.len());
    let mut rc = Vec::with_capacity(all.len());
    let mut cc = Vec::with_capacity(all.len());
    for (k, (a, b)) in all {
        keys.push(k.0);
        rc.push(a);
        cc.push(b);
    }
    (keys, rc, cc)
}

#[derive(Debug, Clone, PartialEq)]
struct KeyOrd(Key);
impl Eq for KeyOrd {}
impl PartialOrd for KeyOrd {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for KeyOrd {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (&self.0, &other.0) {
            (Key::Num(a), Key::Num(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (Key::Str(a), Key::Str(b)) => a.cmp(b),
            (Key::Num(_), Key::Str(_)) => Ordering::Less,
            (Key::Str(_), Key::Num(_)) => Ordering::Greater,
        }
    }
}

/// Evidently's `get_binned_data` without zero fill: Sturges bins over the
/// pooled sample for numerical columns with more than 20 distinct
/// reference values, else one bin per value of the union.
fn binned(r: &ColumnSample, c: &ColumnSample, kind: ColumnKind) -> (Vec<f64>, Vec<f64>) {
    let (nr, nc) = (r.count() as f64, c.count() as f64);
    if kind == ColumnKind::Numerical && r.is_numeric() && r.distinct() > 20 {
        let min = r.values[0].min(c.values[0]);
        let max = r.values[r.values.len() - 1].max(c.values[c.values.len() - 1]);
        let integer = r.physical == Physical::Integer
            && c.physical == Physical::Integer
            && r.missing == 0
            && c.missing == 0;
        let edges = stats::sturges_edges(min, max, r.values.len() + c.values.len(), integer);
        let rh = stats::histogram_sorted(&r.values, &edges);
        let ch = stats::histogram_sorted(&c.values, &edges);
        (
            rh.iter().map(|x| *x as f64 / nr).collect(),
            ch.iter().map(|x| *x as f64 / nc).collect(),
        )
    } else {
        let (_, rc, cc) = union_counts(r, c);
        (
            rc.iter().map(|x| *x as f64 / nr).collect(),
            cc.iter().map(|x| *x as f64 / nc).collect(),
        )
    }
}

/// Distributions for the report: Sturges bins (at most 40) over the pooled
/// range for numerical columns, the 20 most frequent categories otherwise.
fn chart(r: &ColumnSample, c: &ColumnSample, kind: ColumnKind) -> Histogram {
    let (nr, nc) = (r.count() as f64, c.count() as f64);
    if kind == ColumnKind::Numerical && r.is_numeric() {
        let min = r.values[0].min(c.values[0]);
        let max = r.values[r.values.len() - 1].max(c.values[c.values.len() - 1]);
        let n = r.values.len() + c.values.len();
        let mut edges = stats::sturges_edges(min, max, n, false);
        if edges.len() > 41 {
            edges = stats::linspace(edges[0], edges[edges.len() - 1], 41);
        }
        let rh = stats::histogram_sorted(&r.values, &edges);
        let ch = stats::histogram_sorted(&c.values, &edges);
        return Histogram {
            edges,
            labels: Vec::new(),
            reference: rh.iter().map(|x| *x as f64 / nr).collect(),
            current: ch.iter().map(|x| *x as f64 / nc).collect(),
        };
    }
    let (keys, rc, cc) = union_counts(r, c);
    let mut idx: Vec<usize> = (0..keys.len()).collect();
    idx.sort_by(|a, b| (rc[*b] + cc[*b]).cmp(&(rc[*a] + cc[*a])));
    idx.truncate(20);
    Histogram {
        edges: Vec::new(),
        labels: idx.iter().map(|i| keys[*i].label()).collect(),
        reference: idx.iter().map(|i| rc[*i] as f64 / nr).collect(),
        current: idx.iter().map(|i| cc[*i] as f64 / nc).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray};

    fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(cols).unwrap()
    }

    #[test]
    fn default_method_table() {
        use ColumnKind::*;
        assert_eq!(default_method(Numerical, 1000, 6), Some(Method::Ks));
        assert_eq!(default_method(Numerical, 1000, 5), Some(Method::ChiSquare));
        assert_eq!(default_method(Numerical, 1000, 2), Some(Method::Z));
        assert_eq!(
            default_method(Categorical, 1000, 3),
            Some(Method::ChiSquare)
        );
        assert_eq!(default_method(Categorical, 10, 2), Some(Method::Z));
        assert_eq!(
            default_method(Numerical, 1001, 6),
            Some(Method::Wasserstein)
        );
        assert_eq!(
            default_method(Numerical, 1001, 5),
            Some(Method::JensenShannon)
        );
        assert_eq!(
            default_method(Categorical, 5000, 50),
            Some(Method::JensenShannon)
        );
        assert_eq!(default_method(Text, 5000, 50), None);
    }

    #[test]
    fn identical_data_does_not_drift_and_shifted_data_does() {
        let x: Vec<f64> = (0..500).map(|i| (i as f64 * 0.37).sin()).collect();
        let shifted: Vec<f64> = x.iter().map(|v| v + 1.0).collect();
        let cat: Vec<&str> = (0..500).map(|i| ["a", "b", "c"][i % 3]).collect();
        let cat2: Vec<&str> = (0..500)
            .map(|i| if i % 5 == 0 { "a" } else { "c" })
            .collect();
        let r = batch(vec![
            ("x", Arc::new(Float64Array::from(x.clone())) as ArrayRef),
            ("c", Arc::new(StringArray::from(cat.clone())) as ArrayRef),
        ]);
        let same = drift_batches(
            std::slice::from_ref(&r),
            std::slice::from_ref(&r),
            &DriftOptions::evidently_defaults(),
        )
        .unwrap();
        assert!(!same.dataset_drift);
        assert_eq!(same.drifted_columns, 0);
        assert_eq!(same.columns[0].method, Some(Method::Ks));
        assert_eq!(same.columns[1].method, Some(Method::ChiSquare));
        assert_eq!(same.columns[0].score, 1.0);
        let c = batch(vec![
            ("x", Arc::new(Float64Array::from(shifted)) as ArrayRef),
            ("c", Arc::new(StringArray::from(cat2)) as ArrayRef),
        ]);
        let rep = drift_batches(&[r], &[c], &DriftOptions::evidently_defaults()).unwrap();
        assert!(rep.dataset_drift);
        assert_eq!(rep.drifted_columns, 2);
    }

    #[test]
    fn per_column_override_and_missing_column() {
        let r = batch(vec![(
            "n",
            Arc::new(Int64Array::from((0..2000).collect::<Vec<i64>>())) as ArrayRef,
        )]);
        let c = batch(vec![(
            "n",
            Arc::new(Int64Array::from((100..2100).collect::<Vec<i64>>())) as ArrayRef,
        )]);
        let mut o = DriftOptions::evidently_defaults();
        let rep = drift_batches(std::slice::from_ref(&r), std::slice::from_ref(&c), &o).unwrap();
        assert_eq!(rep.columns[0].method, Some(Method::Wasserstein));
        // W = 100 exactly; std of 0..2000 = sqrt((2000² − 1)/12).
        let expect = 100.0 / ((2000.0f64 * 2000.0 - 1.0) / 12.0).sqrt();
        assert!((rep.columns[0].score - expect).abs() < 1e-12);
        o.per_column.insert(
            "n".into(),
            ColumnOverride {
                method: Some(Method::Psi),
                threshold: Some(0.5),
            },
        );
        let rep = drift_batches(std::slice::from_ref(&r), std::slice::from_ref(&c), &o).unwrap();
        assert_eq!(rep.columns[0].method, Some(Method::Psi));
        assert_eq!(rep.columns[0].threshold, 0.5);
        o.columns = Some(vec!["nope".into()]);
        assert!(matches!(
            drift_batches(&[r], &[c], &o),
            Err(DataError::MissingColumn { .. })
        ));
    }
}
