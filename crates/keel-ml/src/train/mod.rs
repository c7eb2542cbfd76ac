//! Built-in trainers for binary classification on tabular data, in pure
//! Rust, exporting standard ONNX (`ai.onnx.ml`) models.
//!
//! - [`LogisticRegressionParams`]: mean imputation, standardization, L2
//!   logistic regression fitted by Newton's method (the model of
//!   `make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression())`).
//! - [`GradientBoostingParams`]: histogram-based gradient-boosted trees with
//!   binary log loss, best-first growth and learned missing-value
//!   directions (the model of `HistGradientBoostingClassifier`).
//!
//! Both export a graph whose outputs are `label` (`[N]`) and
//! `probabilities` (`[N, 2]`), no `ZipMap`, loadable by onnxruntime and by
//! `mlflow.pyfunc` through the `onnx` flavor.

mod gbt;
mod logistic;

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::onnx::proto::DataType;
use crate::table::Table;
use crate::Error;

pub use gbt::GradientBoostingParams;
pub use logistic::LogisticRegressionParams;

/// Which algorithm, with its hyperparameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "snake_case")]
pub enum TrainParams {
    /// L2-regularized logistic regression.
    LogisticRegression(LogisticRegressionParams),
    /// Histogram gradient boosting.
    GradientBoosting(GradientBoostingParams),
}

impl TrainParams {
    /// The algorithm's short name.
    pub fn algorithm(&self) -> &'static str {
        match self {
            TrainParams::LogisticRegression(_) => "logistic_regression",
            TrainParams::GradientBoosting(_) => "gradient_boosting",
        }
    }

    /// Hyperparameters as flat `name → value` strings (for tracking).
    pub fn flat(&self) -> Vec<(String, String)> {
        let v = serde_json::to_value(self).unwrap_or_default();
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Training data: a numeric feature matrix and binary labels.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Feature names, in column order of `x`.
    pub features: Vec<String>,
    /// `n × features.len()` row-major; NaN marks a missing value.
    pub x: Vec<f64>,
    /// 1 for the positive class (`classes[1]`), 0 otherwise.
    pub y: Vec<u8>,
    /// The two class labels, sorted as scikit-learn sorts them.
    pub classes: Vec<String>,
}

impl Dataset {
    /// Rows.
    pub fn n_rows(&self) -> usize {
        self.y.len()
    }

    /// Builds a dataset from a table: `target` is the label column;
    /// features are `features` if given, else every other column not in
    /// `exclude`.
    pub fn from_table(
        table: &Table,
        target: &str,
        features: Option<&[String]>,
        exclude: &[String],
    ) -> Result<Dataset, Error> {
        let labels = table.column(target)?;
        let classes = sorted_classes(labels.iter().map(String::as_str));
        if classes.len() != 2 {
            return Err(Error::Train(format!(
                "target {target:?} has {} distinct value(s) ({}); the built-in trainers do binary classification",
                classes.len(),
                classes.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let features: Vec<String> = match features {
            Some(f) => f.to_vec(),
            None => table
                .names()
                .iter()
                .filter(|n| *n != target && !exclude.contains(n))
                .cloned()
                .collect(),
        };
        if features.is_empty() {
            return Err(Error::Train("no feature columns".into()));
        }
        let cols: Vec<Vec<f64>> = features
            .iter()
            .map(|f| table.numeric(f))
            .collect::<Result<_, _>>()?;
        let n = table.n_rows();
        let mut x = Vec::with_capacity(n * cols.len());
        for r in 0..n {
            for c in &cols {
                x.push(c[r]);
            }
        }
        let y = labels
            .iter()
            .map(|v| u8::from(label_eq(v, &classes[1])))
            .collect();
        Ok(Dataset {
            features,
            x,
            y,
            classes,
        })
    }
}

/// Distinct labels in scikit-learn's order: numeric when all are numbers.
pub fn sorted_classes<'a>(labels: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = labels.map(|s| s.trim().to_string()).collect();
    v.sort();
    v.dedup();
    let nums: Option<Vec<f64>> = v.iter().map(|s| s.parse::<f64>().ok()).collect();
    match nums {
        Some(mut n) => {
            n.sort_by(f64::total_cmp);
            n.dedup();
            n.iter().map(|x| format_label(*x)).collect()
        }
        None => v,
    }
}

fn format_label(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

/// Whether a data value equals a class label (numerically when both are
/// numbers, so "1", "1.0" and 1 agree).
pub fn label_eq(value: &str, label: &str) -> bool {
    let v = value.trim();
    if v == label {
        return true;
    }
    matches!((v.parse::<f64>(), label.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
}

/// A trained model and what it was trained on.
#[derive(Clone, Debug)]
pub struct TrainedModel {
    /// `model.onnx` bytes.
    pub onnx: Vec<u8>,
    /// Feature columns, in input order.
    pub features: Vec<String>,
    /// Class labels `[negative, positive]`.
    pub classes: Vec<String>,
    /// The hyperparameters used.
    pub params: TrainParams,
    /// Wall-clock training time.
    pub train_seconds: f64,
}

/// Trains a model.
pub fn train(data: &Dataset, params: &TrainParams) -> Result<TrainedModel, Error> {
    if data.n_rows() < 2 {
        return Err(Error::Train("need at least two rows".into()));
    }
    if data.y.iter().all(|&y| y == data.y[0]) {
        return Err(Error::Train("the training rows hold one class only".into()));
    }
    let start = Instant::now();
    let onnx = match params {
        TrainParams::LogisticRegression(p) => logistic::train(data, p)?,
        TrainParams::GradientBoosting(p) => gbt::train(data, p)?,
    };
    Ok(TrainedModel {
        onnx,
        features: data.features.clone(),
        classes: data.classes.clone(),
        params: params.clone(),
        train_seconds: start.elapsed().as_secs_f64(),
    })
}

/// The label attributes of an exported classifier: ints when every class
/// is an integer, else strings.
pub(crate) fn label_attr(classes: &[String]) -> (&'static str, crate::onnx::build::Attr, DataType) {
    use crate::onnx::build::Attr;
    let ints: Option<Vec<i64>> = classes.iter().map(|c| c.parse::<i64>().ok()).collect();
    match ints {
        Some(v) => ("classlabels_ints", Attr::Ints(v), DataType::Int64),
        None => (
            "classlabels_strings",
            Attr::Strs(classes.to_vec()),
            DataType::String,
        ),
    }
}
