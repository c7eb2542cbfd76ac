//! Numerical parity with Evidently 0.7 and scipy.
//!
//! Generates random datasets (several distributions, 50 to 1,000,000 rows,
//! ties, nulls, NaN, categorical columns with categories unseen in the
//! reference), writes them to Parquet, runs
//! `tests/python/drift_reference.py` under the interpreter named by
//! `KEEL_PYTHON`, and asserts that keel chooses the same test per column,
//! reaches the same verdicts, and computes every statistic (KS p-value and
//! D, chi-square, Z, Wasserstein, Jensen–Shannon, PSI, KL) within 1e-6
//! relative.
//!
//! Without `KEEL_PYTHON` the test fails when `CI` is set and is skipped
//! with a note otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use keel_data::drift::{drift, drift_files, ColumnOverride, DriftOptions, Method, Sample};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

fn python() -> Option<String> {
    match std::env::var("KEEL_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("KEEL_PYTHON is not set: CI must provide a Python with scipy and evidently");
            }
            eprintln!(
                "note: KEEL_PYTHON is not set; skipping the scipy/Evidently parity test \
                 (set it to a venv python with .ci/requirements.txt installed)"
            );
            None
        }
    }
}

struct Gen(StdRng);

impl Gen {
    fn normal(&mut self, mu: f64, sigma: f64) -> f64 {
        // Box–Muller.
        let u1: f64 = self.0.random::<f64>().max(1e-300);
        let u2: f64 = self.0.random();
        mu + sigma * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    fn uniform(&mut self) -> f64 {
        self.0.random()
    }
    fn chance(&mut self, p: f64) -> bool {
        self.0.random::<f64>() < p
    }
    fn pick<'a>(&mut self, items: &[&'a str], weights: &[f64]) -> &'a str {
        let total: f64 = weights.iter().sum();
        let mut x = self.uniform() * total;
        for (i, w) in items.iter().zip(weights) {
            if x < *w {
                return i;
            }
            x -= w;
        }
        items[items.len() - 1]
    }
}

/// One side of a case. `shift` perturbs the distributions of the current
/// side so that some columns drift and some do not.
fn dataset(g: &mut Gen, n: usize, shift: f64, current: bool, small: bool) -> RecordBatch {
    let normal: Vec<Option<f64>> = (0..n)
        .map(|_| {
            if g.chance(0.05) {
                None
            } else {
                Some(g.normal(shift, 1.0))
            }
        })
        .collect();
    let lognormal: Vec<f64> = (0..n)
        .map(|_| g.normal(0.0, 0.5 + shift * 0.2).exp())
        .collect();
    // Ties: a uniform rounded to one decimal, with a NaN now and then.
    let ties: Vec<f64> = (0..n)
        .map(|_| {
            if g.chance(0.02) {
                f64::NAN
            } else {
                ((g.uniform() * 3.0 + shift * 0.3) * 10.0).round() / 10.0
            }
        })
        .collect();
    let expo: Vec<f64> = (0..n)
        .map(|_| -(1.0 - g.uniform()).ln() * (1.0 + shift))
        .collect();
    // Integers with many values (numerical) and with nulls (float in pandas).
    let counts: Vec<i64> = (0..n)
        .map(|_| (g.normal(50.0 + shift * 5.0, 15.0)).round() as i64)
        .collect();
    let counts_null: Vec<Option<i64>> = (0..n)
        .map(|_| {
            if g.chance(0.1) {
                None
            } else {
                Some((g.uniform() * 40.0) as i64)
            }
        })
        .collect();
    // Few-valued numbers: 4 distinct floats (chi-square / JS on values).
    let few: Vec<f64> = (0..n)
        .map(|_| [0.5, 1.5, 2.5, 3.5][(g.uniform() * 4.0) as usize])
        .collect();
    // Low-cardinality integers: categorical.
    let level: Vec<i64> = (0..n)
        .map(|_| (g.uniform() * if shift > 0.0 { 6.0 } else { 5.0 }) as i64)
        .collect();
    // Binary flag: Z-test on small samples.
    let p_flag = 0.3 + shift * 0.1;
    let flag: Vec<i64> = (0..n).map(|_| i64::from(g.chance(p_flag))).collect();
    // Strings with an unseen category in the current data, and nulls.
    let cats = ["red", "green", "blue", "cyan"];
    let weights: &[f64] = if current {
        &[0.3, 0.3, 0.3, 0.1]
    } else {
        &[0.4, 0.3, 0.3, 0.0]
    };
    let color: Vec<Option<&str>> = (0..n)
        .map(|_| {
            if g.chance(0.03) {
                None
            } else {
                Some(g.pick(&cats, weights))
            }
        })
        .collect();
    let city: Vec<&str> = (0..n)
        .map(|_| {
            g.pick(
                &[
                    "paris", "lyon", "nice", "lille", "nantes", "brest", "metz", "pau",
                ],
                &[8.0, 4.0, 2.0, 2.0, 1.0, 1.0, 0.5, 0.5 + shift],
            )
        })
        .collect();
    let mut cols: Vec<(&str, ArrayRef)> = vec![
        ("normal", Arc::new(Float64Array::from(normal))),
        ("lognormal", Arc::new(Float64Array::from(lognormal))),
        ("ties", Arc::new(Float64Array::from(ties))),
        ("color", Arc::new(StringArray::from(color))),
    ];
    if !small {
        cols.extend([
            ("expo", Arc::new(Float64Array::from(expo)) as ArrayRef),
            ("counts", Arc::new(Int64Array::from(counts)) as ArrayRef),
            (
                "counts_null",
                Arc::new(Int64Array::from(counts_null)) as ArrayRef,
            ),
            ("few", Arc::new(Float64Array::from(few)) as ArrayRef),
            ("level", Arc::new(Int64Array::from(level)) as ArrayRef),
            ("flag", Arc::new(Int64Array::from(flag)) as ArrayRef),
            ("city", Arc::new(StringArray::from(city)) as ArrayRef),
        ]);
    }
    RecordBatch::try_from_iter(cols).unwrap()
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        Value::String(s) if s == "nan" => f64::NAN,
        other => panic!("not a number: {other}"),
    }
}

/// Within 1e-6 relative (exact equality for 0 and ±inf). The Z-test's
/// p-value is `2 (1 − Φ(|z|))` in Evidently, which cancels to multiples of
/// 2⁻⁵³ for |z| > 8: there an absolute 1e-15 is the meaningful bound.
fn agree(ours: f64, theirs: f64, method: &str) -> bool {
    if ours == theirs || (ours.is_nan() && theirs.is_nan()) {
        return true;
    }
    let diff = (ours - theirs).abs();
    if method == "z" && diff <= 1e-15 {
        return true;
    }
    diff <= 1e-6 * ours.abs().max(theirs.abs())
}

#[test]
fn drift_matches_evidently_and_scipy() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gen(StdRng::seed_from_u64(20_260_511));
    // (name, n_ref, n_cur, shift, small): sizes chosen to hit every branch
    // of the test choice and of the KS p-value (exact equal and unequal
    // sizes, asymptotic, Durbin / Pomeranz / Pelz–Good / Smirnov regions).
    let cases: &[(&str, usize, usize, f64, bool)] = &[
        ("n50_same", 50, 50, 0.0, false),
        ("n50_shift", 50, 73, 0.4, false),
        ("n300_shift", 300, 240, 0.15, false),
        ("n1000_same", 1000, 1000, 0.0, false),
        ("n1000_shift", 1000, 999, 0.2, false),
        ("n1001_shift", 1001, 700, 0.1, false),
        ("n5000_shift", 5000, 3000, 0.05, false),
        ("n12000_asymp", 12_000, 11_000, 0.03, false),
        ("n30000_same", 30_000, 20_000, 0.0, false),
        ("n1m_shift", 1_000_000, 1_000_000, 0.01, true),
    ];
    let mut manifest = Vec::new();
    let mut paths: BTreeMap<&str, (PathBuf, PathBuf)> = BTreeMap::new();
    for &(name, nr, nc, shift, small) in cases {
        let r = dataset(&mut g, nr, 0.0, false, small);
        let c = dataset(&mut g, nc, shift, true, small);
        let rp = dir.path().join(format!("{name}_ref.parquet"));
        let cp = dir.path().join(format!("{name}_cur.parquet"));
        write_parquet(&rp, &r);
        write_parquet(&cp, &c);
        manifest.push(serde_json::json!({"name": name, "reference": rp, "current": cp}));
        paths.insert(name, (rp, cp));
    }
    let manifest_path = dir.path().join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let out_path = dir.path().join("reference.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/drift_reference.py");
    let status = Command::new(&python)
        .arg(&script)
        .arg(&manifest_path)
        .arg(&out_path)
        .status()
        .unwrap();
    assert!(status.success(), "{python} {} failed", script.display());
    let expected: Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();

    let mut failures = Vec::new();
    let mut compared = 0usize;
    let mut chosen: BTreeMap<String, usize> = BTreeMap::new();
    for (name, (rp, cp)) in &paths {
        let exp = &expected[*name];
        let report = drift_files(rp, cp, &DriftOptions::evidently_defaults()).unwrap();
        let (rs, cs) = (
            Sample::from_path(rp, None).unwrap(),
            Sample::from_path(cp, None).unwrap(),
        );
        for col in &report.columns {
            let e = &exp["columns"][&col.column];
            assert!(
                e.is_object(),
                "{name}/{}: Evidently has no result",
                col.column
            );
            let method = col.method.map(|m| m.name()).unwrap_or("skipped");
            let ks_kind = match col.exact {
                Some(true) => "/exact",
                Some(false) => "/asymptotic",
                None => "",
            };
            *chosen.entry(format!("{method}{ks_kind}")).or_default() += 1;
            if method != e["method"].as_str().unwrap() {
                failures.push(format!(
                    "{name}/{}: method {method} vs {}",
                    col.column, e["method"]
                ));
                continue;
            }
            if col.drifted != e["drifted"].as_bool().unwrap() {
                failures.push(format!(
                    "{name}/{}: drifted {} vs {}",
                    col.column, col.drifted, e["drifted"]
                ));
            }
            if col.threshold != num(&e["threshold"]) {
                failures.push(format!(
                    "{name}/{}: threshold {} vs {}",
                    col.column, col.threshold, e["threshold"]
                ));
            }
            compared += 1;
            if !agree(col.score, num(&e["score"]), method) {
                failures.push(format!(
                    "{name}/{} {method}: {} vs {}",
                    col.column, col.score, e["score"]
                ));
            }
            // Every other applicable method, through per-column overrides.
            for (m, v) in e["extra"].as_object().unwrap() {
                if m == "ks_statistic" {
                    continue;
                }
                let method: Method = m.parse().unwrap();
                let mut o = DriftOptions::evidently_defaults();
                o.columns = Some(vec![col.column.clone()]);
                o.per_column.insert(
                    col.column.clone(),
                    ColumnOverride {
                        method: Some(method),
                        threshold: None,
                    },
                );
                let r = drift(&rs, &cs, &o).unwrap();
                let c = &r.columns[0];
                compared += 1;
                if !agree(c.score, num(v), m) {
                    failures.push(format!("{name}/{} {m}: {} vs {}", col.column, c.score, v));
                }
                if method == Method::Ks {
                    compared += 1;
                    let d = num(&e["extra"]["ks_statistic"]);
                    if !agree(c.statistic, d, "ks") {
                        failures.push(format!(
                            "{name}/{} ks D: {} vs {d}",
                            col.column, c.statistic
                        ));
                    }
                }
            }
        }
        let drifted = exp["count"].as_f64().unwrap() as usize;
        if report.drifted_columns != drifted
            || report.dataset_drift != exp["dataset_drift"].as_bool().unwrap()
        {
            failures.push(format!(
                "{name}: dataset {} drifted / {} vs {drifted} / {}",
                report.drifted_columns, report.dataset_drift, exp["dataset_drift"]
            ));
        }
    }
    eprintln!(
        "parity: {compared} values compared, {} disagreements; default methods: {chosen:?}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "disagreements with Evidently/scipy:\n{}",
        failures.join("\n")
    );
    assert!(compared > 300, "too few comparisons: {compared}");
}
