//! Group fairness of a binary classifier, as fairlearn defines it
//! (`between_groups` method, tested against fairlearn to 1e-9).
//!
//! Per group the weighted confusion counts are kept, so an auditor can
//! recompute every rate; the disparities are derived from them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::metrics::Confusion;

/// One group of a sensitive column.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupStats {
    /// The group's value in the sensitive column.
    pub group: String,
    /// Rows in the group.
    pub n: usize,
    /// Weighted confusion counts.
    pub confusion: Confusion,
    /// `P[ŷ = 1 | group]`.
    pub selection_rate: f64,
    /// True positive rate (0 when the group has no positives, as fairlearn).
    pub tpr: f64,
    /// False positive rate (0 when the group has no negatives).
    pub fpr: f64,
    /// Accuracy within the group.
    pub accuracy: f64,
    /// Selection rate over the highest group's selection rate.
    pub impact_ratio: f64,
}

/// Fairness report for one sensitive column.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fairness {
    /// The sensitive column.
    pub column: String,
    /// Per-group statistics, groups in sorted order.
    pub groups: Vec<GroupStats>,
    /// max − min selection rate.
    pub demographic_parity_difference: f64,
    /// min / max selection rate (1 = parity; 0 when no group is selected).
    pub demographic_parity_ratio: f64,
    /// max − min true positive rate.
    pub equal_opportunity_difference: f64,
    /// max(TPR difference, FPR difference).
    pub equalized_odds_difference: f64,
    /// True when every group's impact ratio is at least 0.8 (29 CFR
    /// 1607.4(D)); a screen, not a verdict.
    pub four_fifths_rule: bool,
    /// Groups smaller than the minimum size asked for (reported, not
    /// counted as passing).
    pub small_groups: Vec<String>,
}

/// Computes [`Fairness`] for labels `y`, hard predictions `pred` (1 =
/// positive) and the sensitive value of each row.
pub fn fairness(
    column: &str,
    y: &[u8],
    pred: &[u8],
    sensitive: &[String],
    weights: Option<&[f64]>,
    min_group_size: usize,
) -> Fairness {
    let mut rows: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, g) in sensitive.iter().enumerate() {
        rows.entry(g.as_str()).or_default().push(i);
    }
    let mut groups: Vec<GroupStats> = rows
        .iter()
        .map(|(g, idx)| {
            let yy: Vec<u8> = idx.iter().map(|&i| y[i]).collect();
            let pp: Vec<u8> = idx.iter().map(|&i| pred[i]).collect();
            let ww: Option<Vec<f64>> = weights.map(|w| idx.iter().map(|&i| w[i]).collect());
            let c = Confusion::from_predictions(&yy, &pp, ww.as_deref());
            GroupStats {
                group: g.to_string(),
                n: idx.len(),
                confusion: c,
                selection_rate: c.selection_rate(),
                tpr: c.recall(),
                fpr: c.fpr(),
                accuracy: c.accuracy(),
                impact_ratio: 0.0,
            }
        })
        .collect();
    let spread = |f: fn(&GroupStats) -> f64| -> (f64, f64) {
        let v: Vec<f64> = groups.iter().map(f).collect();
        (
            v.iter().cloned().fold(f64::INFINITY, f64::min),
            v.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        )
    };
    let (smin, smax) = spread(|g| g.selection_rate);
    let (tmin, tmax) = spread(|g| g.tpr);
    let (fmin, fmax) = spread(|g| g.fpr);
    for g in &mut groups {
        g.impact_ratio = if smax > 0.0 {
            g.selection_rate / smax
        } else {
            0.0
        };
    }
    let dp_ratio = if smax > 0.0 { smin / smax } else { 0.0 };
    Fairness {
        column: column.to_string(),
        small_groups: groups
            .iter()
            .filter(|g| g.n < min_group_size)
            .map(|g| g.group.clone())
            .collect(),
        demographic_parity_difference: smax - smin,
        demographic_parity_ratio: dp_ratio,
        equal_opportunity_difference: tmax - tmin,
        equalized_odds_difference: (tmax - tmin).max(fmax - fmin),
        four_fifths_rule: dp_ratio >= 0.8,
        groups,
    }
}
