//! Validation gates (`gates.yaml`): thresholds on any metric, no
//! regression against a baseline model's metrics, fairness limits.
//!
//! ```yaml
//! thresholds:
//!   roc_auc: {min: 0.80}
//!   log_loss: {max: 0.45}
//! no_regression:
//!   baseline: production        # an alias the caller resolves, or a package path
//!   metrics: [roc_auc, f1]
//!   tolerance: 0.01             # absolute
//! fairness:
//!   sex:
//!     demographic_parity_ratio: {min: 0.8}
//!     equalized_odds_difference: {max: 0.1}
//!     min_group_size: 30
//! ```
//!
//! Metric names are those of [`crate::evaluate::flat_metrics`]. [`gate`]
//! is a pure function of the metrics, so the CLI and registry promotion
//! call the same code.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A `{min, max}` bound.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bound {
    /// The metric must be `>=` this.
    pub min: Option<f64>,
    /// The metric must be `<=` this.
    pub max: Option<f64>,
}

/// No regression against a baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoRegression {
    /// Which baseline: a registry alias (resolved by the caller) or a path.
    pub baseline: String,
    /// Metrics that must not get worse.
    pub metrics: Vec<String>,
    /// Allowed worsening, absolute.
    #[serde(default)]
    pub tolerance: f64,
}

/// Limits for one sensitive column.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FairnessLimits {
    /// Bound on max − min selection rate.
    pub demographic_parity_difference: Option<Bound>,
    /// Bound on min / max selection rate (four-fifths rule: `min: 0.8`).
    pub demographic_parity_ratio: Option<Bound>,
    /// Bound on the TPR spread.
    pub equal_opportunity_difference: Option<Bound>,
    /// Bound on max(TPR spread, FPR spread).
    pub equalized_odds_difference: Option<Bound>,
    /// Every group must have at least this many rows.
    pub min_group_size: Option<usize>,
}

/// A parsed `gates.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    /// Bounds per metric name.
    #[serde(default)]
    pub thresholds: BTreeMap<String, Bound>,
    /// No-regression rule.
    #[serde(default)]
    pub no_regression: Option<NoRegression>,
    /// Fairness limits per sensitive column.
    #[serde(default)]
    pub fairness: BTreeMap<String, FairnessLimits>,
}

impl GateSpec {
    /// Reads `gates.yaml`; errors name the file, line, column and field.
    pub fn load(path: &Path) -> Result<GateSpec, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        GateSpec::parse(&text, path)
    }

    /// Parses YAML text (`path` is used in messages).
    pub fn parse(text: &str, path: &Path) -> Result<GateSpec, Error> {
        let spec: GateSpec =
            serde_yaml_ng::from_str(text).map_err(|e| crate::package::yaml_error(path, &e))?;
        for (m, b) in &spec.thresholds {
            if b.min.is_none() && b.max.is_none() {
                return Err(Error::Parse {
                    file: path.to_path_buf(),
                    line: line_of(text, m),
                    column: 0,
                    message: format!("thresholds.{m}: give `min`, `max` or both"),
                });
            }
        }
        Ok(spec)
    }

    /// The sensitive columns the spec needs fairness metrics for.
    pub fn sensitive_columns(&self) -> Vec<String> {
        self.fairness.keys().cloned().collect()
    }
}

fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(&format!("{key}:")))
        .map_or(0, |i| i + 1)
}

/// True for metrics where lower is better (losses, errors, disparities,
/// latencies).
pub fn lower_is_better(metric: &str) -> bool {
    let m = metric.rsplit('.').next().unwrap_or(metric);
    ["loss", "rmse", "mae", "mape", "difference", "_us", "error"]
        .iter()
        .any(|s| m.contains(s))
}

/// Outcome of one gate.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Within the limit.
    Passed,
    /// Outside the limit.
    Failed,
    /// Could not be checked and does not block (no baseline yet).
    Skipped,
}

/// One gate's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateResult {
    /// `threshold`, `no_regression` or `fairness`.
    pub kind: String,
    /// The metric checked.
    pub metric: String,
    /// Its value (`None` if not computed).
    pub actual: Option<f64>,
    /// The limit, as `>= x` or `<= x`.
    pub limit: String,
    /// How far past the limit (positive = failed by this much).
    pub shortfall: Option<f64>,
    /// Outcome.
    pub status: Status,
    /// A sentence for humans.
    pub message: String,
}

/// All gates' results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateReport {
    /// True when no gate failed.
    pub passed: bool,
    /// Per gate.
    pub results: Vec<GateResult>,
}

impl GateReport {
    /// The failed gates.
    pub fn failures(&self) -> impl Iterator<Item = &GateResult> {
        self.results.iter().filter(|r| r.status == Status::Failed)
    }
}

fn check(
    kind: &str,
    metric: &str,
    actual: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
) -> Vec<GateResult> {
    let mut out = Vec::new();
    for (limit, is_min) in [(min, true), (max, false)] {
        let Some(limit) = limit else { continue };
        let op = if is_min { ">=" } else { "<=" };
        let r = match actual {
            None => GateResult {
                kind: kind.into(),
                metric: metric.into(),
                actual: None,
                limit: format!("{op} {limit}"),
                shortfall: None,
                status: Status::Failed,
                message: format!(
                    "{metric} was not computed (check the metric name and the evaluation options)"
                ),
            },
            Some(a) => {
                let short = if is_min { limit - a } else { a - limit };
                let ok = short <= 0.0 && !a.is_nan();
                GateResult {
                    kind: kind.into(),
                    metric: metric.into(),
                    actual: Some(a),
                    limit: format!("{op} {limit}"),
                    shortfall: Some(short),
                    status: if ok { Status::Passed } else { Status::Failed },
                    message: if ok {
                        format!("{metric} = {a:.4} {op} {limit}")
                    } else {
                        format!("{metric} = {a:.4}, needs {op} {limit}: off by {short:.4}")
                    },
                }
            }
        };
        out.push(r);
    }
    out
}

/// Checks `metrics` (and `baseline`'s, for no-regression) against `spec`.
pub fn gate(
    spec: &GateSpec,
    metrics: &BTreeMap<String, f64>,
    baseline: Option<&BTreeMap<String, f64>>,
) -> GateReport {
    let mut results = Vec::new();
    for (m, b) in &spec.thresholds {
        results.extend(check("threshold", m, metrics.get(m).copied(), b.min, b.max));
    }
    if let Some(nr) = &spec.no_regression {
        for m in &nr.metrics {
            let cur = metrics.get(m).copied();
            match baseline.map(|b| b.get(m).copied()) {
                None => results.push(GateResult {
                    kind: "no_regression".into(),
                    metric: m.clone(),
                    actual: cur,
                    limit: format!("vs {}", nr.baseline),
                    shortfall: None,
                    status: Status::Skipped,
                    message: format!(
                        "no baseline model {:?}: nothing to compare with",
                        nr.baseline
                    ),
                }),
                Some(base) => {
                    let (min, max) = match base {
                        Some(b) if lower_is_better(m) => (None, Some(b + nr.tolerance)),
                        Some(b) => (Some(b - nr.tolerance), None),
                        None => (None, None),
                    };
                    if base.is_none() {
                        results.push(GateResult {
                            kind: "no_regression".into(),
                            metric: m.clone(),
                            actual: cur,
                            limit: format!("vs {}", nr.baseline),
                            shortfall: None,
                            status: Status::Failed,
                            message: format!("the baseline has no {m}"),
                        });
                        continue;
                    }
                    for mut r in check("no_regression", m, cur, min, max) {
                        r.message = format!(
                            "{} (baseline {} = {:.4}, tolerance {})",
                            r.message,
                            nr.baseline,
                            base.unwrap_or(f64::NAN),
                            nr.tolerance
                        );
                        results.push(r);
                    }
                }
            }
        }
    }
    for (col, lim) in &spec.fairness {
        let p = format!("fairness.{col}.");
        for (name, b) in [
            (
                "demographic_parity_difference",
                &lim.demographic_parity_difference,
            ),
            ("demographic_parity_ratio", &lim.demographic_parity_ratio),
            (
                "equal_opportunity_difference",
                &lim.equal_opportunity_difference,
            ),
            ("equalized_odds_difference", &lim.equalized_odds_difference),
        ] {
            if let Some(b) = b {
                let key = format!("{p}{name}");
                results.extend(check(
                    "fairness",
                    &key,
                    metrics.get(&key).copied(),
                    b.min,
                    b.max,
                ));
            }
        }
        if let Some(n) = lim.min_group_size {
            let key = format!("{p}min_group_n");
            results.extend(check(
                "fairness",
                &key,
                metrics.get(&key).copied(),
                Some(n as f64),
                None,
            ));
        }
    }
    GateReport {
        passed: results.iter().all(|r| r.status != Status::Failed),
        results,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(v: &[(&str, f64)]) -> BTreeMap<String, f64> {
        v.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn threshold_regression_and_fairness() {
        let spec = GateSpec::parse(
            "thresholds:\n  roc_auc: {min: 0.8}\nno_regression:\n  baseline: production\n  metrics: [roc_auc, log_loss]\n  tolerance: 0.01\nfairness:\n  sex:\n    demographic_parity_ratio: {min: 0.8}\n",
            Path::new("gates.yaml"),
        )
        .unwrap();
        let base = m(&[("roc_auc", 0.90), ("log_loss", 0.30)]);
        let good = m(&[
            ("roc_auc", 0.895),
            ("log_loss", 0.305),
            ("fairness.sex.demographic_parity_ratio", 0.9),
        ]);
        assert!(gate(&spec, &good, Some(&base)).passed);
        let worse = m(&[
            ("roc_auc", 0.85),
            ("log_loss", 0.30),
            ("fairness.sex.demographic_parity_ratio", 0.9),
        ]);
        let r = gate(&spec, &worse, Some(&base));
        assert!(!r.passed);
        let f: Vec<_> = r.failures().collect();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, "no_regression");
        assert!((f[0].shortfall.unwrap() - 0.04).abs() < 1e-12);
        let unfair = m(&[
            ("roc_auc", 0.9),
            ("log_loss", 0.3),
            ("fairness.sex.demographic_parity_ratio", 0.7),
        ]);
        let r = gate(&spec, &unfair, None);
        assert!(!r.passed);
        assert!(r.results.iter().any(|x| x.status == Status::Skipped));
        assert_eq!(r.failures().next().unwrap().kind, "fairness");
    }

    #[test]
    fn parse_errors_name_line_and_field() {
        let e = GateSpec::parse("thresholds:\n  roc_auc: {mni: 0.8}\n", Path::new("g.yaml"))
            .unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("g.yaml:2:"), "{s}");
        assert!(s.contains("mni"), "{s}");
    }
}
