//! Evaluation of a model on a table: metrics, curves, slices, fairness and
//! latency, in one serializable [`Evaluation`].

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::fairness::{fairness, Fairness};
use crate::metrics::{
    self, BinaryMetrics, CalibrationBin, MulticlassMetrics, RegressionMetrics, ThresholdPoint,
};
use crate::onnx::proto::DataType;
use crate::onnx::{IoType, Model, Tensor, TensorData, Value};
use crate::table::Table;
use crate::train::label_eq;
use crate::Error;

/// What the model predicted for a table.
#[derive(Clone, Debug, PartialEq)]
pub enum Predictions {
    /// Class probabilities, `n × classes.len()` row-major.
    Classification {
        /// Class labels in column order.
        classes: Vec<String>,
        /// Probabilities.
        probs: Vec<f64>,
    },
    /// One value per row.
    Regression(Vec<f64>),
}

/// Builds the model's inputs from `features` of `table`.
pub fn inputs(model: &Model, features: &[String], table: &Table) -> Result<Vec<Tensor>, Error> {
    let n = table.n_rows();
    let infos: Vec<_> = model.inputs().collect();
    if infos.len() == 1 {
        let (elem, width) = match &infos[0].ty {
            IoType::Tensor { elem, shape } => (*elem, shape.get(1).copied().flatten()),
            _ => (DataType::Float, None),
        };
        if let Some(w) = width {
            if w as usize != features.len() {
                return Err(Error::Input(format!(
                    "the model takes {w} features but {} were selected ({})",
                    features.len(),
                    features.join(", ")
                )));
            }
        }
        let cols: Vec<Vec<f64>> = features
            .iter()
            .map(|f| table.numeric(f))
            .collect::<Result<_, _>>()?;
        let mut x = Vec::with_capacity(n * cols.len());
        for r in 0..n {
            for c in &cols {
                x.push(c[r]);
            }
        }
        let data = match elem {
            DataType::Double => TensorData::F64(x),
            DataType::Int64 => TensorData::I64(x.iter().map(|&v| v as i64).collect()),
            _ => TensorData::F32(x.iter().map(|&v| v as f32).collect()),
        };
        return Ok(vec![Tensor {
            shape: vec![n, cols.len()],
            data,
        }]);
    }
    // One input per column (DataFrame-style exports): match by name.
    infos
        .iter()
        .map(|info| {
            let elem = match &info.ty {
                IoType::Tensor { elem, .. } => *elem,
                _ => DataType::Float,
            };
            let data = match elem {
                DataType::String => TensorData::Str(table.column(&info.name)?.to_vec()),
                DataType::Int64 => TensorData::I64(
                    table
                        .numeric(&info.name)?
                        .iter()
                        .map(|&v| v as i64)
                        .collect(),
                ),
                DataType::Double => TensorData::F64(table.numeric(&info.name)?),
                _ => TensorData::F32(
                    table
                        .numeric(&info.name)?
                        .iter()
                        .map(|&v| v as f32)
                        .collect(),
                ),
            };
            Ok(Tensor {
                shape: vec![n, 1],
                data,
            })
        })
        .collect()
}

/// Reads a model's outputs as predictions.
pub fn interpret(model: &Model, outputs: &[Value], n: usize) -> Result<Predictions, Error> {
    if let Some(classes) = model.class_labels() {
        let k = classes.len();
        for v in outputs {
            let (r, c, m) = v.to_matrix_f64().map_err(Error::Input)?;
            let float = matches!(v, Value::SeqMap { .. })
                || matches!(v, Value::Tensor(t) if matches!(t.data, TensorData::F32(_) | TensorData::F64(_)));
            if float && r == n && c == k && k >= 2 {
                return Ok(Predictions::Classification {
                    classes: classes.to_vec(),
                    probs: m,
                });
            }
        }
        return Err(Error::Model(format!(
            "the model is a classifier over {k} classes but no output holds [{n}, {k}] probabilities"
        )));
    }
    for v in outputs {
        if let Value::Tensor(t) = v {
            if matches!(t.data, TensorData::F32(_) | TensorData::F64(_)) && t.len() == n {
                return Ok(Predictions::Regression(t.to_f64().map_err(Error::Input)?));
            }
        }
    }
    Err(Error::Model(
        "no output of the model reads as probabilities or one value per row".into(),
    ))
}

/// Runs the model on the table.
pub fn predict(model: &Model, features: &[String], table: &Table) -> Result<Predictions, Error> {
    let outs = model.run(inputs(model, features, table)?)?;
    interpret(model, &outs, table.n_rows())
}

/// What to evaluate and how.
#[derive(Clone, Debug, Default)]
pub struct EvalConfig {
    /// The label column.
    pub target: String,
    /// Feature columns in model-input order (`None`: every column that is
    /// not the target, a weight, a slice or a sensitive column).
    pub features: Option<Vec<String>>,
    /// Columns to report per-value metrics for.
    pub slices: Vec<String>,
    /// Sensitive columns for fairness.
    pub sensitive: Vec<String>,
    /// Sample-weight column.
    pub weight: Option<String>,
    /// Binary decision threshold on the positive-class probability
    /// (`None`: 0.5).
    pub threshold: Option<f64>,
    /// Groups smaller than this are flagged in fairness reports.
    pub min_group_size: usize,
}

/// Task-specific metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum TaskMetrics {
    /// Two classes.
    Binary(BinaryMetrics),
    /// More than two classes.
    Multiclass(MulticlassMetrics),
    /// Regression.
    Regression(RegressionMetrics),
}

/// Metrics for the rows where a column has one value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SliceMetrics {
    /// The column.
    pub column: String,
    /// The value.
    pub value: String,
    /// The metrics on those rows.
    pub metrics: TaskMetrics,
}

/// Prediction latency.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Latency {
    /// Whole-table batch time divided by rows, µs.
    pub batch_us_per_row: f64,
    /// Median single-row call, µs.
    pub single_p50_us: f64,
    /// 95th percentile single-row call, µs.
    pub single_p95_us: f64,
    /// Single-row calls timed.
    pub single_calls: usize,
}

/// A full evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// Rows evaluated.
    pub n_rows: usize,
    /// Feature columns used.
    pub features: Vec<String>,
    /// Class labels (classifiers), the positive class last for binary.
    pub classes: Vec<String>,
    /// Overall metrics.
    pub metrics: TaskMetrics,
    /// ROC curve `(fpr, tpr, threshold)` (binary only).
    pub roc_curve: Vec<(f64, f64, f64)>,
    /// Reliability diagram, 10 uniform bins (binary only).
    pub calibration: Vec<CalibrationBin>,
    /// Metrics per threshold (binary only).
    pub threshold_curve: Vec<ThresholdPoint>,
    /// Per-slice metrics.
    pub slices: Vec<SliceMetrics>,
    /// Fairness per sensitive column (binary only).
    pub fairness: Vec<Fairness>,
    /// Latency.
    pub latency: Latency,
}

fn task_metrics(
    pred: &Predictions,
    truth: &Truth,
    rows: &[usize],
    weights: Option<&[f64]>,
    threshold: f64,
) -> TaskMetrics {
    let w: Option<Vec<f64>> = weights.map(|w| rows.iter().map(|&i| w[i]).collect());
    match (pred, truth) {
        (Predictions::Classification { probs, classes }, Truth::Classes(y)) => {
            let k = classes.len();
            let ys: Vec<usize> = rows.iter().map(|&i| y[i]).collect();
            if k == 2 {
                let yb: Vec<u8> = ys.iter().map(|&c| c as u8).collect();
                let p: Vec<f64> = rows.iter().map(|&i| probs[i * 2 + 1]).collect();
                TaskMetrics::Binary(metrics::binary(&yb, &p, threshold, w.as_deref()))
            } else {
                let pm: Vec<f64> = rows
                    .iter()
                    .flat_map(|&i| probs[i * k..(i + 1) * k].iter().copied())
                    .collect();
                TaskMetrics::Multiclass(metrics::multiclass(&ys, &pm, k, w.as_deref()))
            }
        }
        (Predictions::Regression(p), Truth::Values(y)) => {
            let ys: Vec<f64> = rows.iter().map(|&i| y[i]).collect();
            let ps: Vec<f64> = rows.iter().map(|&i| p[i]).collect();
            TaskMetrics::Regression(metrics::regression(&ys, &ps, w.as_deref()))
        }
        _ => unreachable!("truth is built to match the predictions"),
    }
}

enum Truth {
    Classes(Vec<usize>),
    Values(Vec<f64>),
}

/// Evaluates `model` on `table`.
pub fn evaluate(model: &Model, table: &Table, cfg: &EvalConfig) -> Result<Evaluation, Error> {
    let n = table.n_rows();
    if n == 0 {
        return Err(Error::Input("the evaluation data has no rows".into()));
    }
    let features: Vec<String> = match &cfg.features {
        Some(f) => f.clone(),
        None => table
            .names()
            .iter()
            .filter(|c| {
                **c != cfg.target
                    && Some(*c) != cfg.weight.as_ref()
                    && !cfg.slices.contains(c)
                    && !cfg.sensitive.contains(c)
            })
            .cloned()
            .collect(),
    };
    let inputs = inputs(model, &features, table)?;
    let start = Instant::now();
    let outs = model.run(inputs.clone())?;
    let batch = start.elapsed().as_secs_f64();
    let pred = interpret(model, &outs, n)?;
    let latency = single_row_latency(model, &inputs, batch, n)?;
    let weights = match &cfg.weight {
        Some(c) => Some(table.numeric(c)?),
        None => None,
    };
    let labels = table.column(&cfg.target)?;
    let truth = match &pred {
        Predictions::Classification { classes, .. } => Truth::Classes(
            labels
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    classes
                        .iter()
                        .position(|c| label_eq(v, c))
                        .ok_or_else(|| Error::Data {
                            file: table.source().to_path_buf(),
                            message: format!(
                            "line {}: label {v:?} in {:?} is not one of the model's classes ({})",
                            i + 2,
                            cfg.target,
                            classes.join(", ")
                        ),
                        })
                })
                .collect::<Result<_, _>>()?,
        ),
        Predictions::Regression(_) => Truth::Values(table.numeric(&cfg.target)?),
    };
    let threshold = cfg.threshold.unwrap_or(0.5);
    let all: Vec<usize> = (0..n).collect();
    let w = weights.as_deref();
    let metrics = task_metrics(&pred, &truth, &all, w, threshold);
    let mut slices = Vec::new();
    for col in &cfg.slices {
        let vals = table.column(col)?;
        let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, v) in vals.iter().enumerate() {
            groups.entry(v.as_str()).or_default().push(i);
        }
        for (v, rows) in groups {
            slices.push(SliceMetrics {
                column: col.clone(),
                value: v.to_string(),
                metrics: task_metrics(&pred, &truth, &rows, w, threshold),
            });
        }
    }
    let (mut roc, mut cal, mut curve, mut fair) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut classes = Vec::new();
    if let (Predictions::Classification { probs, classes: c }, Truth::Classes(y)) = (&pred, &truth)
    {
        classes = c.clone();
        if c.len() == 2 {
            let yb: Vec<u8> = y.iter().map(|&c| c as u8).collect();
            let p: Vec<f64> = (0..n).map(|i| probs[i * 2 + 1]).collect();
            roc = downsample(metrics::roc_curve(&yb, &p, w), 200);
            cal = metrics::calibration(&yb, &p, 10);
            curve = metrics::threshold_curve(&yb, &p, w);
            let hard: Vec<u8> = p.iter().map(|&s| u8::from(s >= threshold)).collect();
            for col in &cfg.sensitive {
                let s = table.column(col)?;
                fair.push(fairness(col, &yb, &hard, s, w, cfg.min_group_size));
            }
        } else if !cfg.sensitive.is_empty() {
            return Err(Error::Input(
                "fairness metrics are defined for binary classifiers only".into(),
            ));
        }
    }
    Ok(Evaluation {
        n_rows: n,
        features,
        classes,
        metrics,
        roc_curve: roc,
        calibration: cal,
        threshold_curve: curve,
        slices,
        fairness: fair,
        latency,
    })
}

fn downsample<T: Clone>(v: Vec<T>, max: usize) -> Vec<T> {
    if v.len() <= max {
        return v;
    }
    let step = v.len() as f64 / max as f64;
    let mut out: Vec<T> = (0..max)
        .map(|k| v[(k as f64 * step) as usize].clone())
        .collect();
    out.push(v[v.len() - 1].clone());
    out
}

fn single_row_latency(
    model: &Model,
    inputs: &[Tensor],
    batch: f64,
    n: usize,
) -> Result<Latency, Error> {
    let calls = n.min(200);
    let mut times = Vec::with_capacity(calls);
    for r in 0..calls {
        let row: Vec<Tensor> = inputs.iter().map(|t| row_of(t, r, n)).collect();
        let s = Instant::now();
        model.run(row)?;
        times.push(s.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let q = |p: f64| {
        times
            .get(((times.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Ok(Latency {
        batch_us_per_row: batch * 1e6 / n as f64,
        single_p50_us: q(0.5),
        single_p95_us: q(0.95),
        single_calls: calls,
    })
}

fn row_of(t: &Tensor, r: usize, n: usize) -> Tensor {
    let w = t.len() / n.max(1);
    let mut shape = t.shape.clone();
    shape[0] = 1;
    let data = match &t.data {
        TensorData::F32(v) => TensorData::F32(v[r * w..(r + 1) * w].to_vec()),
        TensorData::F64(v) => TensorData::F64(v[r * w..(r + 1) * w].to_vec()),
        TensorData::I64(v) => TensorData::I64(v[r * w..(r + 1) * w].to_vec()),
        TensorData::I32(v) => TensorData::I32(v[r * w..(r + 1) * w].to_vec()),
        TensorData::Bool(v) => TensorData::Bool(v[r * w..(r + 1) * w].to_vec()),
        TensorData::Str(v) => TensorData::Str(v[r * w..(r + 1) * w].to_vec()),
    };
    Tensor { shape, data }
}

/// Every number of an evaluation under a flat dotted name, as gates and
/// trackers address them: `roc_auc`, `f1`, `slice.region=north.accuracy`,
/// `fairness.sex.demographic_parity_ratio`, `latency.single_p95_us`.
pub fn flat_metrics(e: &Evaluation) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    fn put(out: &mut BTreeMap<String, f64>, prefix: &str, m: &TaskMetrics) {
        let v = serde_json::to_value(m).unwrap_or_default();
        if let Some(obj) = v.as_object() {
            for (k, v) in obj {
                if let Some(x) = v.as_f64() {
                    if k != "n" && k != "threshold" {
                        out.insert(format!("{prefix}{k}"), x);
                    }
                }
            }
        }
    }
    put(&mut out, "", &e.metrics);
    for s in &e.slices {
        put(
            &mut out,
            &format!("slice.{}={}.", s.column, s.value),
            &s.metrics,
        );
    }
    for f in &e.fairness {
        let p = format!("fairness.{}.", f.column);
        out.insert(
            format!("{p}demographic_parity_difference"),
            f.demographic_parity_difference,
        );
        out.insert(
            format!("{p}demographic_parity_ratio"),
            f.demographic_parity_ratio,
        );
        out.insert(
            format!("{p}equal_opportunity_difference"),
            f.equal_opportunity_difference,
        );
        out.insert(
            format!("{p}equalized_odds_difference"),
            f.equalized_odds_difference,
        );
        out.insert(
            format!("{p}four_fifths_rule"),
            f64::from(u8::from(f.four_fifths_rule)),
        );
        out.insert(
            format!("{p}min_group_n"),
            f.groups.iter().map(|g| g.n).min().unwrap_or(0) as f64,
        );
    }
    out.insert(
        "latency.batch_us_per_row".into(),
        e.latency.batch_us_per_row,
    );
    out.insert("latency.single_p50_us".into(), e.latency.single_p50_us);
    out.insert("latency.single_p95_us".into(), e.latency.single_p95_us);
    out
}
