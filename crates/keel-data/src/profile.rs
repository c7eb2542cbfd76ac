//! Column profiles in one streaming pass with bounded memory.
//!
//! Per column: physical type, inferred kind (Evidently's rules, see
//! [`ColumnKind::infer`]), count, nulls, distinct count, and by type:
//!
//! - numbers: min, max, mean, sample std (ddof = 1, as pandas
//!   `describe()`), zeros, NaN and ±inf counts, quantiles (1, 5, 25, 50, 75,
//!   95, 99 %) and a 20-bin equal-width histogram over [min, max];
//! - strings and dates: lexical min and max, string lengths;
//! - categorical and text columns: the 10 most frequent values.
//!
//! Exactness: distinct counts are exact up to 100 000 values, then
//! HyperLogLog (±0.81 % standard error); quantiles and the histogram are
//! exact up to 200 000 values, then from a KLL-style sketch whose rank error
//! is reported in [`NumericSummary::quantile_rank_error`]; top values are
//! exact while at most 1 000 distinct values were seen, then Misra–Gries
//! lower bounds ([`ColumnProfile::top_values_error`]). Memory per column is
//! a few MB at most, whatever the number of rows.
//!
//! Caching: a profile is a pure function of the file content and
//! [`PROFILE_VERSION`]; the caller keys its cache by the content hash and
//! this version.

use std::path::Path;

use arrow_array::{Array, RecordBatch};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::column::{ColumnKind, Physical, Values};
use crate::error::{DataError, Result};
use crate::read::{self, ReadOptions};
use crate::sketch::{hash64, DistinctCounter, FrequentItems, QuantileSketch};

/// Bumped whenever the profile's content or algorithms change, so cached
/// profiles can be recomputed.
pub const PROFILE_VERSION: u32 = 1;

/// Quantile levels reported.
pub const QUANTILES: [f64; 7] = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];

const TOP_VALUES: usize = 10;
const FREQUENT_CAPACITY: usize = 1_000;
const HISTOGRAM_BINS: usize = 20;

/// The profile of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// [`PROFILE_VERSION`] of the code that computed it.
    pub version: u32,
    /// Rows.
    pub rows: u64,
    /// One entry per column, in file order.
    pub columns: Vec<ColumnProfile>,
}

/// The profile of one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    /// Column name.
    pub name: String,
    /// The Arrow data type as read.
    pub data_type: String,
    /// Physical kind after normalization.
    pub physical: Physical,
    /// Inferred kind (Evidently's rules).
    pub kind: ColumnKind,
    /// Non-missing values.
    pub count: u64,
    /// Missing values (nulls, empty strings; NaN is counted separately).
    pub nulls: u64,
    /// Distinct non-missing values.
    pub distinct: u64,
    /// Whether `distinct` is exact (else HyperLogLog).
    pub distinct_exact: bool,
    /// Summary of numeric columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric: Option<NumericSummary>,
    /// Summary of string and date columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextSummary>,
    /// Most frequent values (categorical and text columns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_values: Vec<TopValue>,
    /// Each top-value count may be this much below the truth (0 = exact).
    #[serde(default)]
    pub top_values_error: u64,
}

/// Numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericSummary {
    /// Smallest finite value.
    #[serde(with = "crate::jsonf64")]
    pub min: f64,
    /// Largest finite value.
    #[serde(with = "crate::jsonf64")]
    pub max: f64,
    /// Mean of finite values.
    #[serde(with = "crate::jsonf64")]
    pub mean: f64,
    /// Sample standard deviation (ddof = 1) of finite values.
    #[serde(with = "crate::jsonf64")]
    pub std: f64,
    /// Values equal to zero.
    pub zeros: u64,
    /// NaN values.
    pub nan: u64,
    /// ±inf values.
    pub infinite: u64,
    /// `(level, value)` for each of [`QUANTILES`].
    pub quantiles: Vec<(f64, f64)>,
    /// Worst-case rank error of the quantiles and histogram as a fraction
    /// of the count (0 = exact).
    pub quantile_rank_error: f64,
    /// Equal-width histogram over [min, max].
    pub histogram: Histogram,
}

/// An equal-width histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// `bins + 1` edges.
    pub edges: Vec<f64>,
    /// Counts per bin (`[e_i, e_{i+1})`, last bin closed).
    pub counts: Vec<u64>,
}

/// Strings and dates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextSummary {
    /// Lexically smallest value (dates: earliest).
    pub min: String,
    /// Lexically largest value (dates: latest).
    pub max: String,
    /// Shortest length in characters.
    pub min_length: u64,
    /// Longest length in characters.
    pub max_length: u64,
    /// Mean length in characters.
    pub mean_length: f64,
}

/// A frequent value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopValue {
    /// The value, rendered.
    pub value: String,
    /// Its count (a lower bound when `top_values_error > 0`).
    pub count: u64,
}

impl Profile {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("profile serializes")
    }

    /// The profile of a column by name.
    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Profiles a file, streaming.
pub fn profile(path: &Path) -> Result<Profile> {
    let reader = read::open(path, &ReadOptions::new())?;
    profile_stream(reader)
}

/// Profiles in-memory batches.
pub fn profile_batches(batches: &[RecordBatch]) -> Result<Profile> {
    profile_stream(batches.iter().cloned().map(Ok))
}

/// Profiles a stream of batches. Decoding (on a helper thread) overlaps
/// with the statistics (columns in parallel).
pub fn profile_stream<I>(batches: I) -> Result<Profile>
where
    I: IntoIterator<Item = Result<RecordBatch>>,
    I::IntoIter: Send,
{
    let iter = batches.into_iter();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<RecordBatch>>(2);
        scope.spawn(move || {
            for b in iter {
                if tx.send(b).is_err() {
                    break;
                }
            }
        });
        let mut accs: Option<Vec<Acc>> = None;
        let mut rows = 0u64;
        for batch in rx {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            let accs = accs.get_or_insert_with(|| {
                batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| {
                        Acc::new(
                            f.name().clone(),
                            f.data_type().to_string(),
                            Physical::of(f.data_type()),
                        )
                    })
                    .collect()
            });
            accs.par_iter_mut()
                .zip(batch.columns().par_iter())
                .try_for_each(|(acc, array)| {
                    if acc.physical == Physical::Other {
                        acc.rows += array.len() as u64;
                        acc.nulls += array.null_count() as u64;
                        return Ok(());
                    }
                    let values = Values::from_array(array).ok_or_else(|| DataError::Column {
                        column: acc.name.clone(),
                        message: format!("cannot read type {}", array.data_type()),
                    })?;
                    acc.push(&values);
                    Ok::<(), DataError>(())
                })?;
        }
        let columns = accs
            .unwrap_or_default()
            .into_par_iter()
            .map(Acc::finish)
            .collect();
        Ok(Profile {
            version: PROFILE_VERSION,
            rows,
            columns,
        })
    })
}

struct Acc {
    name: String,
    data_type: String,
    physical: Physical,
    rows: u64,
    nulls: u64,
    distinct: DistinctCounter,
    // numbers
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    zeros: u64,
    nan: u64,
    infinite: u64,
    quantiles: QuantileSketch,
    ints: FrequentItems<i64>,
    // strings
    strings: FrequentItems<String>,
    smin: Option<String>,
    smax: Option<String>,
    len_min: u64,
    len_max: u64,
    len_sum: u64,
}

impl Acc {
    fn new(name: String, data_type: String, physical: Physical) -> Acc {
        Acc {
            name,
            data_type,
            physical,
            rows: 0,
            nulls: 0,
            distinct: DistinctCounter::new(),
            n: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            zeros: 0,
            nan: 0,
            infinite: 0,
            quantiles: QuantileSketch::new(),
            ints: FrequentItems::new(FREQUENT_CAPACITY),
            strings: FrequentItems::new(FREQUENT_CAPACITY),
            smin: None,
            smax: None,
            len_min: u64::MAX,
            len_max: 0,
            len_sum: 0,
        }
    }

    fn number(&mut self, x: f64) {
        if x.is_nan() {
            self.nan += 1;
            return;
        }
        if x.is_infinite() {
            self.infinite += 1;
            return;
        }
        // Welford's update: numerically stable mean and variance.
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        if x == 0.0 {
            self.zeros += 1;
        }
        self.quantiles.insert(x);
    }

    fn string(&mut self, s: &str) {
        self.distinct.insert_hash(hash64(s));
        self.strings.insert(s);
        let len = s.chars().count() as u64;
        self.len_min = self.len_min.min(len);
        self.len_max = self.len_max.max(len);
        self.len_sum += len;
        if self.smin.as_deref().is_none_or(|m| s < m) {
            self.smin = Some(s.to_string());
        }
        if self.smax.as_deref().is_none_or(|m| s > m) {
            self.smax = Some(s.to_string());
        }
    }

    fn push(&mut self, values: &Values) {
        self.rows += values.len() as u64;
        match values {
            Values::Int(a) => {
                self.nulls += a.null_count() as u64;
                for v in a.iter().flatten() {
                    self.distinct.insert_hash(hash64(&v));
                    self.ints.insert(&v);
                    self.number(v as f64);
                }
            }
            Values::Float(a) => {
                self.nulls += a.null_count() as u64;
                for v in a.iter().flatten() {
                    if v.is_finite() {
                        // -0.0 and 0.0 are one value.
                        self.distinct.insert_hash(hash64(&(v + 0.0).to_bits()));
                    }
                    self.number(v);
                }
            }
            Values::Str(a) => {
                for v in a.iter() {
                    match v {
                        Some(s) if !s.is_empty() => self.string(s),
                        _ => self.nulls += 1,
                    }
                }
            }
            Values::Bool(a) => {
                self.nulls += a.null_count() as u64;
                for v in a.iter().flatten() {
                    self.string(if v { "True" } else { "False" });
                }
            }
        }
    }

    fn finish(self) -> ColumnProfile {
        let (distinct, distinct_exact) = self.distinct.estimate();
        let count = self.rows - self.nulls;
        let kind = ColumnKind::infer(self.physical, distinct, count, self.nulls > 0);
        let numeric = (matches!(self.physical, Physical::Integer | Physical::Float)).then(|| {
            let (min, max) = if self.n == 0 {
                (f64::NAN, f64::NAN)
            } else {
                (self.min, self.max)
            };
            let edges = if self.n == 0 {
                Vec::new()
            } else if min == max {
                vec![min - 0.5, max + 0.5]
            } else {
                crate::stats::linspace(min, max, HISTOGRAM_BINS + 1)
            };
            let counts = if edges.is_empty() {
                Vec::new()
            } else {
                self.quantiles.histogram(&edges)
            };
            NumericSummary {
                min,
                max,
                mean: if self.n == 0 { f64::NAN } else { self.mean },
                std: if self.n < 2 {
                    f64::NAN
                } else {
                    (self.m2 / (self.n - 1) as f64).sqrt()
                },
                zeros: self.zeros,
                nan: self.nan,
                infinite: self.infinite,
                quantiles: if self.n == 0 {
                    Vec::new()
                } else {
                    QUANTILES
                        .iter()
                        .copied()
                        .zip(self.quantiles.quantiles(&QUANTILES))
                        .collect()
                },
                quantile_rank_error: self.quantiles.rank_error_bound(),
                histogram: Histogram { edges, counts },
            }
        });
        let text = (matches!(
            self.physical,
            Physical::String | Physical::Datetime | Physical::Boolean
        ) && self.smin.is_some())
        .then(|| TextSummary {
            min: self.smin.clone().unwrap_or_default(),
            max: self.smax.clone().unwrap_or_default(),
            min_length: self.len_min,
            max_length: self.len_max,
            mean_length: self.len_sum as f64 / count.max(1) as f64,
        });
        let (top_values, top_values_error) = match (kind, self.physical) {
            (ColumnKind::Categorical | ColumnKind::Text, Physical::Integer) => (
                self.ints
                    .top(TOP_VALUES)
                    .into_iter()
                    .map(|(v, c)| TopValue {
                        value: v.to_string(),
                        count: c,
                    })
                    .collect(),
                self.ints.error_bound(),
            ),
            (ColumnKind::Categorical | ColumnKind::Text, _) => (
                self.strings
                    .top(TOP_VALUES)
                    .into_iter()
                    .map(|(v, c)| TopValue { value: v, count: c })
                    .collect(),
                self.strings.error_bound(),
            ),
            _ => (Vec::new(), 0),
        };
        ColumnProfile {
            name: self.name,
            data_type: self.data_type,
            physical: self.physical,
            kind,
            count,
            nulls: self.nulls,
            distinct,
            distinct_exact,
            numeric,
            text,
            top_values,
            top_values_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray};

    #[test]
    fn profile_of_a_small_batch() {
        let b = RecordBatch::try_from_iter([
            (
                "x",
                Arc::new(Float64Array::from(vec![
                    Some(1.0),
                    Some(2.0),
                    None,
                    Some(4.0),
                    Some(f64::NAN),
                ])) as ArrayRef,
            ),
            (
                "k",
                Arc::new(Int64Array::from(vec![1, 1, 2, 1, 3])) as ArrayRef,
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![
                    Some("bb"),
                    Some("a"),
                    Some(""),
                    None,
                    Some("bb"),
                ])) as ArrayRef,
            ),
        ])
        .unwrap();
        // Split in two batches to exercise the merge across batches.
        let p = profile_batches(&[b.slice(0, 2), b.slice(2, 3)]).unwrap();
        assert_eq!(p.rows, 5);
        let x = p.column("x").unwrap();
        assert_eq!(
            (x.count, x.nulls, x.distinct, x.kind),
            (4, 1, 3, ColumnKind::Numerical)
        );
        let n = x.numeric.as_ref().unwrap();
        assert_eq!((n.min, n.max, n.nan), (1.0, 4.0, 1));
        assert!((n.mean - 7.0 / 3.0).abs() < 1e-15);
        // Sample std of 1, 2, 4: sqrt(((4/3)² + (1/3)² + (5/3)²) / 2).
        assert!((n.std - (7.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert_eq!(n.quantiles[3], (0.5, 2.0));
        assert_eq!(n.histogram.counts.iter().sum::<u64>(), 3);
        let k = p.column("k").unwrap();
        assert_eq!(k.kind, ColumnKind::Categorical);
        assert_eq!(
            k.top_values[0],
            TopValue {
                value: "1".into(),
                count: 3
            }
        );
        let s = p.column("s").unwrap();
        assert_eq!((s.count, s.nulls, s.distinct), (3, 2, 2));
        let t = s.text.as_ref().unwrap();
        assert_eq!(
            (t.min.as_str(), t.max.as_str(), t.min_length, t.max_length),
            ("a", "bb", 1, 2)
        );
        assert_eq!(
            s.top_values[0],
            TopValue {
                value: "bb".into(),
                count: 2
            }
        );
        // Round trip through JSON (stored with dataset versions).
        let back: Profile = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(back.rows, p.rows);
        assert_eq!(back.columns.len(), 3);
    }
}
