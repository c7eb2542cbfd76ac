//! Evaluation metrics, defined as scikit-learn defines them (and tested
//! against it to 1e-9): classification from scores, regression, curves.
//!
//! Every function takes optional sample weights; `None` means weight 1.
//! Undefined values (ROC AUC with one class present) are `None`, not NaN.

use serde::Serialize;

/// Index of the first maximum.
pub(crate) fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

fn w(weights: Option<&[f64]>, i: usize) -> f64 {
    weights.map_or(1.0, |w| w[i])
}

/// Weighted confusion counts of a binary classifier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Confusion {
    /// True negatives.
    pub tn: f64,
    /// False positives.
    pub fp: f64,
    /// False negatives.
    pub fn_: f64,
    /// True positives.
    pub tp: f64,
}

impl Confusion {
    /// Counts from labels (1 = positive) and hard predictions.
    pub fn from_predictions(y: &[u8], pred: &[u8], weights: Option<&[f64]>) -> Confusion {
        let mut c = Confusion::default();
        for i in 0..y.len() {
            let wi = w(weights, i);
            match (y[i] != 0, pred[i] != 0) {
                (false, false) => c.tn += wi,
                (false, true) => c.fp += wi,
                (true, false) => c.fn_ += wi,
                (true, true) => c.tp += wi,
            }
        }
        c
    }

    /// `(tp + tn) / total`.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn_)
    }

    /// `tp / (tp + fp)`, 0 when nothing is predicted positive (sklearn's
    /// `zero_division` default).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// `tp / (tp + fn)` (true positive rate), 0 with no positives.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// `fp / (fp + tn)`, 0 with no negatives.
    pub fn fpr(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }

    /// Harmonic mean of precision and recall, 0 when both are 0.
    pub fn f1(&self) -> f64 {
        ratio(2.0 * self.tp, 2.0 * self.tp + self.fp + self.fn_)
    }

    /// Share predicted positive.
    pub fn selection_rate(&self) -> f64 {
        ratio(self.tp + self.fp, self.tp + self.tn + self.fp + self.fn_)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

/// Distinct-threshold cumulative counts, scores descending: for each
/// distinct score `t`, the weighted true and false positives among rows
/// scoring `>= t`.
fn cumulative(y: &[u8], score: &[f64], weights: Option<&[f64]>) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut order: Vec<usize> = (0..y.len()).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
    let (mut tps, mut fps, mut thr) = (Vec::new(), Vec::new(), Vec::new());
    let (mut tp, mut fp) = (0.0, 0.0);
    for (k, &i) in order.iter().enumerate() {
        let wi = w(weights, i);
        if y[i] != 0 {
            tp += wi;
        } else {
            fp += wi;
        }
        let last = k + 1 == order.len() || score[order[k + 1]] != score[i];
        if last {
            tps.push(tp);
            fps.push(fp);
            thr.push(score[i]);
        }
    }
    (tps, fps, thr)
}

/// ROC curve points `(fpr, tpr, threshold)`, starting at (0, 0, +inf).
pub fn roc_curve(y: &[u8], score: &[f64], weights: Option<&[f64]>) -> Vec<(f64, f64, f64)> {
    let (tps, fps, thr) = cumulative(y, score, weights);
    let (p, n) = (
        tps.last().copied().unwrap_or(0.0),
        fps.last().copied().unwrap_or(0.0),
    );
    let mut pts = vec![(0.0, 0.0, f64::INFINITY)];
    for k in 0..tps.len() {
        pts.push((ratio(fps[k], n), ratio(tps[k], p), thr[k]));
    }
    pts
}

/// Area under the ROC curve (trapezoids); `None` unless both classes are
/// present with positive weight.
pub fn roc_auc(y: &[u8], score: &[f64], weights: Option<&[f64]>) -> Option<f64> {
    let (tps, fps, _) = cumulative(y, score, weights);
    let (p, n) = (*tps.last()?, *fps.last()?);
    if p <= 0.0 || n <= 0.0 {
        return None;
    }
    let (mut area, mut px, mut py) = (0.0, 0.0, 0.0);
    for k in 0..tps.len() {
        let (x, yv) = (fps[k] / n, tps[k] / p);
        area += (x - px) * (yv + py) / 2.0;
        px = x;
        py = yv;
    }
    Some(area)
}

/// Average precision as scikit-learn computes it (`Σ (Rₖ − Rₖ₋₁) Pₖ`, no
/// interpolation); `None` with no positives.
pub fn average_precision(y: &[u8], score: &[f64], weights: Option<&[f64]>) -> Option<f64> {
    let (tps, fps, _) = cumulative(y, score, weights);
    let p = *tps.last()?;
    if p <= 0.0 {
        return None;
    }
    let (mut ap, mut prev_r) = (0.0, 0.0);
    for k in 0..tps.len() {
        let r = tps[k] / p;
        let prec = ratio(tps[k], tps[k] + fps[k]);
        ap += (r - prev_r) * prec;
        prev_r = r;
    }
    Some(ap)
}

/// Binary log loss of positive-class probabilities, clipped to
/// `[ε, 1 − ε]` with ε the f64 machine epsilon (as scikit-learn does).
pub fn log_loss(y: &[u8], p: &[f64], weights: Option<&[f64]>) -> f64 {
    let eps = f64::EPSILON;
    let (mut s, mut tw) = (0.0, 0.0);
    for i in 0..y.len() {
        let q = p[i].clamp(eps, 1.0 - eps);
        let wi = w(weights, i);
        s -= wi * if y[i] != 0 { q.ln() } else { (1.0 - q).ln() };
        tw += wi;
    }
    ratio(s, tw)
}

/// Multiclass log loss: `probs` is `n × k` row-major, `y` class indices.
/// Rows are clipped and renormalized as scikit-learn does.
pub fn log_loss_multi(y: &[usize], probs: &[f64], k: usize, weights: Option<&[f64]>) -> f64 {
    let eps = f64::EPSILON;
    let (mut s, mut tw) = (0.0, 0.0);
    for i in 0..y.len() {
        let row = &probs[i * k..(i + 1) * k];
        let clipped: Vec<f64> = row.iter().map(|p| p.clamp(eps, 1.0 - eps)).collect();
        let sum: f64 = clipped.iter().sum();
        let wi = w(weights, i);
        s -= wi * (clipped[y[i]] / sum).ln();
        tw += wi;
    }
    ratio(s, tw)
}

/// A point of the per-threshold curve.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThresholdPoint {
    /// Predict positive when the score is `>=` this.
    pub threshold: f64,
    /// Precision at this threshold.
    pub precision: f64,
    /// Recall (TPR).
    pub recall: f64,
    /// False positive rate.
    pub fpr: f64,
    /// F1.
    pub f1: f64,
    /// Share predicted positive.
    pub selection_rate: f64,
}

/// Metrics at thresholds 0.00, 0.05, …, 1.00.
pub fn threshold_curve(y: &[u8], score: &[f64], weights: Option<&[f64]>) -> Vec<ThresholdPoint> {
    (0..=20)
        .map(|k| {
            let t = f64::from(k) / 20.0;
            let pred: Vec<u8> = score.iter().map(|&s| u8::from(s >= t)).collect();
            let c = Confusion::from_predictions(y, &pred, weights);
            ThresholdPoint {
                threshold: t,
                precision: c.precision(),
                recall: c.recall(),
                fpr: c.fpr(),
                f1: c.f1(),
                selection_rate: c.selection_rate(),
            }
        })
        .collect()
}

/// A calibration bin (uniform bins over [0, 1], empty bins omitted, as
/// `sklearn.calibration.calibration_curve(strategy="uniform")`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CalibrationBin {
    /// Mean predicted probability in the bin.
    pub mean_predicted: f64,
    /// Observed share of positives in the bin.
    pub fraction_positive: f64,
    /// Rows in the bin.
    pub count: usize,
}

/// Reliability diagram with `bins` uniform bins.
pub fn calibration(y: &[u8], p: &[f64], bins: usize) -> Vec<CalibrationBin> {
    let mut sum_p = vec![0.0; bins];
    let mut pos = vec![0.0; bins];
    let mut cnt = vec![0usize; bins];
    for i in 0..y.len() {
        // sklearn: np.searchsorted(bins[1:-1], p, side="right")
        let b = ((p[i] * bins as f64).floor() as usize).min(bins - 1);
        sum_p[b] += p[i];
        pos[b] += f64::from(y[i]);
        cnt[b] += 1;
    }
    (0..bins)
        .filter(|&b| cnt[b] > 0)
        .map(|b| CalibrationBin {
            mean_predicted: sum_p[b] / cnt[b] as f64,
            fraction_positive: pos[b] / cnt[b] as f64,
            count: cnt[b],
        })
        .collect()
}

/// Binary classification metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BinaryMetrics {
    /// Rows.
    pub n: usize,
    /// Decision threshold on the positive-class probability.
    pub threshold: f64,
    /// Accuracy.
    pub accuracy: f64,
    /// Precision of the positive class.
    pub precision: f64,
    /// Recall of the positive class.
    pub recall: f64,
    /// F1 of the positive class.
    pub f1: f64,
    /// ROC AUC (`None` when a class is absent).
    pub roc_auc: Option<f64>,
    /// Average precision (PR AUC), `None` with no positives.
    pub pr_auc: Option<f64>,
    /// Log loss.
    pub log_loss: f64,
    /// Weighted confusion counts.
    pub confusion: Confusion,
}

/// Computes [`BinaryMetrics`] from labels (1 = positive) and
/// positive-class probabilities.
pub fn binary(y: &[u8], p: &[f64], threshold: f64, weights: Option<&[f64]>) -> BinaryMetrics {
    let pred: Vec<u8> = p.iter().map(|&s| u8::from(s >= threshold)).collect();
    let c = Confusion::from_predictions(y, &pred, weights);
    BinaryMetrics {
        n: y.len(),
        threshold,
        accuracy: c.accuracy(),
        precision: c.precision(),
        recall: c.recall(),
        f1: c.f1(),
        roc_auc: roc_auc(y, p, weights),
        pr_auc: average_precision(y, p, weights),
        log_loss: log_loss(y, p, weights),
        confusion: c,
    }
}

/// Multiclass metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MulticlassMetrics {
    /// Rows.
    pub n: usize,
    /// Accuracy.
    pub accuracy: f64,
    /// Unweighted mean of per-class precision.
    pub precision_macro: f64,
    /// Unweighted mean of per-class recall.
    pub recall_macro: f64,
    /// Unweighted mean of per-class F1.
    pub f1_macro: f64,
    /// One-vs-rest macro ROC AUC (`None` if a class is absent).
    pub roc_auc_ovr: Option<f64>,
    /// Log loss.
    pub log_loss: f64,
    /// `confusion[true][predicted]`, weighted.
    pub confusion: Vec<Vec<f64>>,
}

/// Multiclass metrics from class indices and an `n × k` probability matrix
/// (prediction = argmax, first on ties).
pub fn multiclass(
    y: &[usize],
    probs: &[f64],
    k: usize,
    weights: Option<&[f64]>,
) -> MulticlassMetrics {
    let pred: Vec<usize> = probs.chunks(k).map(argmax).collect();
    let mut cm = vec![vec![0.0; k]; k];
    for i in 0..y.len() {
        cm[y[i]][pred[i]] += w(weights, i);
    }
    let total: f64 = cm.iter().flatten().sum();
    let correct: f64 = (0..k).map(|c| cm[c][c]).sum();
    // sklearn's macro average runs over labels present in y_true or y_pred.
    let present: Vec<usize> = (0..k)
        .filter(|&c| cm[c].iter().sum::<f64>() > 0.0 || (0..k).any(|r| cm[r][c] > 0.0))
        .collect();
    let (mut ps, mut rs, mut fs) = (0.0, 0.0, 0.0);
    for &c in &present {
        let tp = cm[c][c];
        let col: f64 = (0..k).map(|r| cm[r][c]).sum();
        let row: f64 = cm[c].iter().sum();
        ps += ratio(tp, col);
        rs += ratio(tp, row);
        fs += ratio(2.0 * tp, col + row);
    }
    let m = present.len().max(1) as f64;
    let auc = (0..k)
        .map(|c| {
            let yc: Vec<u8> = y.iter().map(|&v| u8::from(v == c)).collect();
            let sc: Vec<f64> = probs.chunks(k).map(|r| r[c]).collect();
            roc_auc(&yc, &sc, weights)
        })
        .collect::<Option<Vec<f64>>>()
        .map(|v| v.iter().sum::<f64>() / k as f64);
    MulticlassMetrics {
        n: y.len(),
        accuracy: ratio(correct, total),
        precision_macro: ps / m,
        recall_macro: rs / m,
        f1_macro: fs / m,
        roc_auc_ovr: auc,
        log_loss: log_loss_multi(y, probs, k, weights),
        confusion: cm,
    }
}

/// Regression metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegressionMetrics {
    /// Rows.
    pub n: usize,
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Coefficient of determination (1 when the target is constant and
    /// predicted exactly, 0 when constant and not, as sklearn).
    pub r2: f64,
    /// Mean absolute percentage error, as a fraction (sklearn: the
    /// denominator is `max(|y|, ε)`).
    pub mape: f64,
}

/// Computes [`RegressionMetrics`].
pub fn regression(y: &[f64], p: &[f64], weights: Option<&[f64]>) -> RegressionMetrics {
    let tw: f64 = (0..y.len()).map(|i| w(weights, i)).sum();
    let mean = (0..y.len()).map(|i| w(weights, i) * y[i]).sum::<f64>() / tw;
    let (mut se, mut ae, mut ape, mut ss) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..y.len() {
        let wi = w(weights, i);
        let d = y[i] - p[i];
        se += wi * d * d;
        ae += wi * d.abs();
        ape += wi * d.abs() / y[i].abs().max(f64::EPSILON);
        ss += wi * (y[i] - mean).powi(2);
    }
    let r2 = if ss == 0.0 {
        if se == 0.0 {
            1.0
        } else {
            0.0
        }
    } else {
        1.0 - se / ss
    };
    RegressionMetrics {
        n: y.len(),
        rmse: (se / tw).sqrt(),
        mae: ae / tw,
        r2,
        mape: ape / tw,
    }
}
