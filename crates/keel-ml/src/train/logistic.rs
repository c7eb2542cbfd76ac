//! Logistic regression: mean imputation, standardization, L2 penalty,
//! Newton's method with a backtracking line search.

#![allow(clippy::needless_range_loop)] // index-heavy numeric code

use serde::{Deserialize, Serialize};

use super::{label_attr, Dataset};
use crate::onnx::build::{self, Attr};
use crate::onnx::proto::{DataType, GraphProto};
use crate::Error;

/// Hyperparameters (scikit-learn's names and defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogisticRegressionParams {
    /// Inverse regularization strength: the loss is
    /// `C·Σ logloss + ½‖w‖²` (intercept not penalized).
    pub c: f64,
    /// Newton iterations at most.
    pub max_iter: usize,
    /// Stop when the largest gradient component is below this.
    pub tol: f64,
}

impl Default for LogisticRegressionParams {
    fn default() -> Self {
        LogisticRegressionParams {
            c: 1.0,
            max_iter: 100,
            tol: 1e-8,
        }
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Solves `a·x = b` for symmetric positive definite `a` (Cholesky).
fn solve_spd(a: &[f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i * n + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * n + i];
    }
    Some(x)
}

pub(super) fn train(d: &Dataset, p: &LogisticRegressionParams) -> Result<Vec<u8>, Error> {
    if p.c <= 0.0 || !p.c.is_finite() {
        return Err(Error::Train(format!("c must be positive, got {}", p.c)));
    }
    let f = d.features.len();
    let n = d.n_rows();
    // Mean imputation and standardization (population std, 1 if constant).
    let mut mean = vec![0.0; f];
    let mut cnt = vec![0usize; f];
    for r in 0..n {
        for j in 0..f {
            let v = d.x[r * f + j];
            if !v.is_nan() {
                mean[j] += v;
                cnt[j] += 1;
            }
        }
    }
    for j in 0..f {
        mean[j] = if cnt[j] > 0 {
            mean[j] / cnt[j] as f64
        } else {
            0.0
        };
    }
    let mut z = vec![0.0; n * (f + 1)];
    for r in 0..n {
        for j in 0..f {
            let v = d.x[r * f + j];
            z[r * (f + 1) + j] = if v.is_nan() { mean[j] } else { v };
        }
        z[r * (f + 1) + f] = 1.0;
    }
    let mut std = vec![0.0; f];
    for r in 0..n {
        for j in 0..f {
            std[j] += (z[r * (f + 1) + j] - mean[j]).powi(2);
        }
    }
    for j in 0..f {
        std[j] = (std[j] / n as f64).sqrt();
        if std[j] == 0.0 {
            std[j] = 1.0;
        }
    }
    for r in 0..n {
        for j in 0..f {
            let v = &mut z[r * (f + 1) + j];
            *v = (*v - mean[j]) / std[j];
        }
    }
    let m = f + 1;
    let loss = |w: &[f64]| -> f64 {
        let mut l = 0.0;
        for r in 0..n {
            let row = &z[r * m..(r + 1) * m];
            let s: f64 = row.iter().zip(w).map(|(a, b)| a * b).sum();
            // log(1 + e^s) - y s, computed stably.
            let sp = if s > 0.0 {
                s + (-s).exp().ln_1p()
            } else {
                s.exp().ln_1p()
            };
            l += sp - f64::from(d.y[r]) * s;
        }
        p.c * l + 0.5 * w[..f].iter().map(|v| v * v).sum::<f64>()
    };
    let mut w = vec![0.0; m];
    let mut cur = loss(&w);
    for _ in 0..p.max_iter {
        let mut g = vec![0.0; m];
        let mut h = vec![0.0; m * m];
        for r in 0..n {
            let row = &z[r * m..(r + 1) * m];
            let s: f64 = row.iter().zip(&w).map(|(a, b)| a * b).sum();
            let pr = sigmoid(s);
            let e = pr - f64::from(d.y[r]);
            let q = pr * (1.0 - pr);
            for i in 0..m {
                g[i] += p.c * e * row[i];
                let qi = p.c * q * row[i];
                for j in 0..=i {
                    h[i * m + j] += qi * row[j];
                }
            }
        }
        for i in 0..m {
            for j in 0..i {
                h[j * m + i] = h[i * m + j];
            }
        }
        for i in 0..f {
            g[i] += w[i];
            h[i * m + i] += 1.0;
        }
        if g.iter().map(|v| v.abs()).fold(0.0, f64::max) < p.tol {
            break;
        }
        // A tiny ridge keeps the Hessian definite when classes separate.
        for i in 0..m {
            h[i * m + i] += 1e-12;
        }
        let step =
            solve_spd(&h, &g, m).ok_or_else(|| Error::Train("the Hessian is singular".into()))?;
        let mut t = 1.0;
        loop {
            let cand: Vec<f64> = w.iter().zip(&step).map(|(a, b)| a - t * b).collect();
            let l = loss(&cand);
            if l <= cur || t < 1e-10 {
                w = cand;
                cur = l;
                break;
            }
            t *= 0.5;
        }
    }
    export(d, &mean, &std, &w)
}

fn export(d: &Dataset, mean: &[f64], std: &[f64], w: &[f64]) -> Result<Vec<u8>, Error> {
    let f = d.features.len();
    let coef: Vec<f32> = w[..f]
        .iter()
        .map(|&v| -v as f32)
        .chain(w[..f].iter().map(|&v| v as f32))
        .collect();
    let b = w[f] as f32;
    let (label_name, labels, label_type) = label_attr(&d.classes);
    let nodes = vec![
        build::node(
            "Imputer",
            "ai.onnx.ml",
            "impute",
            &["X"],
            &["imputed"],
            vec![
                (
                    "imputed_value_floats",
                    Attr::Floats(mean.iter().map(|&v| v as f32).collect()),
                ),
                ("replaced_value_float", Attr::Float(f32::NAN)),
            ],
        ),
        build::node(
            "Scaler",
            "ai.onnx.ml",
            "standardize",
            &["imputed"],
            &["scaled"],
            vec![
                (
                    "offset",
                    Attr::Floats(mean.iter().map(|&v| v as f32).collect()),
                ),
                (
                    "scale",
                    Attr::Floats(std.iter().map(|&v| (1.0 / v) as f32).collect()),
                ),
            ],
        ),
        build::node(
            "LinearClassifier",
            "ai.onnx.ml",
            "logistic_regression",
            &["scaled"],
            &["label", "probabilities"],
            vec![
                ("coefficients", Attr::Floats(coef)),
                ("intercepts", Attr::Floats(vec![-b, b])),
                (label_name, labels),
                ("multi_class", Attr::Int(0)),
                ("post_transform", Attr::Str("LOGISTIC".into())),
            ],
        ),
    ];
    let graph = GraphProto {
        node: nodes,
        name: "keel_logistic_regression".into(),
        input: vec![build::tensor_info(
            "X",
            DataType::Float,
            &[None, Some(f as i64)],
        )],
        output: vec![
            build::tensor_info("label", label_type, &[None]),
            build::tensor_info("probabilities", DataType::Float, &[None, Some(2)]),
        ],
        ..Default::default()
    };
    Ok(build::encode(&build::model(
        graph,
        vec![("features".into(), d.features.join(","))],
    )))
}
