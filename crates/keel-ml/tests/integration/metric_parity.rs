//! Every metric equals scikit-learn / fairlearn within 1e-9 on random
//! predictions: ties, a slice where one class is absent, sample weights.

use keel_ml::{fairness, metrics};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::util::{python, read_json, run_py};

struct Case {
    y: Vec<u8>,
    p: Vec<f64>,
    w: Option<Vec<f64>>,
    s: Vec<String>,
    threshold: f64,
    ym: Vec<usize>,
    probs: Vec<f64>,
    yr: Vec<f64>,
    pr: Vec<f64>,
}

fn case(seed: u64, n: usize, ties: bool, weighted: bool) -> Case {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut y = Vec::new();
    let mut p = Vec::new();
    let mut s = Vec::new();
    for i in 0..n {
        // Group "c" holds only negatives: the absent-class slice.
        let g = ["a", "b", "c"][i % 3];
        let label = if g == "c" {
            0
        } else {
            u8::from(rng.random_bool(0.4))
        };
        let mut score: f64 = (0.35 * f64::from(label) + rng.random::<f64>() * 0.65).min(1.0);
        if ties {
            score = (score * 10.0).round() / 10.0;
        }
        y.push(label);
        p.push(score);
        s.push(g.to_string());
    }
    let w = weighted.then(|| (0..n).map(|_| rng.random_range(0.1..3.0)).collect());
    let k = 3;
    let ym: Vec<usize> = (0..n).map(|_| rng.random_range(0..k)).collect();
    let mut probs = Vec::new();
    for &c in &ym {
        let mut row: Vec<f64> = (0..k)
            .map(|j| rng.random::<f64>() + if j == c { 0.5 } else { 0.0 })
            .collect();
        if ties {
            row.iter_mut().for_each(|x| *x = (*x * 4.0).round() + 0.25);
        }
        let sum: f64 = row.iter().sum();
        row.iter_mut().for_each(|x| *x /= sum);
        probs.extend(row);
    }
    let yr: Vec<f64> = (0..n).map(|_| rng.random_range(1.0..100.0)).collect();
    let pr: Vec<f64> = yr
        .iter()
        .map(|v| v + rng.random_range(-10.0..10.0))
        .collect();
    Case {
        y,
        p,
        w,
        s,
        threshold: 0.5,
        ym,
        probs,
        yr,
        pr,
    }
}

fn close(name: &str, got: f64, want: &Value, errs: &mut Vec<String>) {
    let want = want
        .as_f64()
        .unwrap_or_else(|| panic!("{name}: reference missing: {want}"));
    if (got - want).abs() > 1e-9 {
        errs.push(format!("{name}: keel {got} vs reference {want}"));
    }
}

#[test]
fn metrics_match_sklearn_and_fairlearn() {
    let Some(py) = python() else { return };
    let cases = [
        case(1, 500, false, false),
        case(2, 501, true, false),
        case(3, 499, false, true),
        case(4, 300, true, true),
    ];
    let input: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({
                "y": c.y, "p": c.p, "w": c.w, "s": c.s, "threshold": c.threshold,
                "multiclass": {"y": c.ym, "probs": c.probs, "k": 3},
                "regression": {"y": c.yr, "p": c.pr},
            })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("cases.json");
    let outp = dir.path().join("ref.json");
    std::fs::write(&inp, serde_json::to_vec(&input).unwrap()).unwrap();
    run_py(&py, "metrics_ref.py", &[&inp, &outp]);
    let refs = read_json(&outp);
    let mut errs = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let r = &refs[i];
        let w = c.w.as_deref();
        let m = metrics::binary(&c.y, &c.p, c.threshold, w);
        let tag = |s: &str| format!("case {i} {s}");
        close(&tag("accuracy"), m.accuracy, &r["accuracy"], &mut errs);
        close(&tag("precision"), m.precision, &r["precision"], &mut errs);
        close(&tag("recall"), m.recall, &r["recall"], &mut errs);
        close(&tag("f1"), m.f1, &r["f1"], &mut errs);
        close(
            &tag("roc_auc"),
            m.roc_auc.unwrap(),
            &r["roc_auc"],
            &mut errs,
        );
        close(&tag("pr_auc"), m.pr_auc.unwrap(), &r["pr_auc"], &mut errs);
        close(&tag("log_loss"), m.log_loss, &r["log_loss"], &mut errs);
        let cm = [
            m.confusion.tn,
            m.confusion.fp,
            m.confusion.fn_,
            m.confusion.tp,
        ];
        for (k, v) in cm.iter().enumerate() {
            close(
                &tag(&format!("confusion[{k}]")),
                *v,
                &r["confusion"][k],
                &mut errs,
            );
        }
        let pred: Vec<u8> = c.p.iter().map(|&p| u8::from(p >= c.threshold)).collect();
        let f = fairness::fairness("s", &c.y, &pred, &c.s, w, 0);
        close(
            &tag("dp_diff"),
            f.demographic_parity_difference,
            &r["dp_diff"],
            &mut errs,
        );
        close(
            &tag("dp_ratio"),
            f.demographic_parity_ratio,
            &r["dp_ratio"],
            &mut errs,
        );
        close(
            &tag("eo_diff"),
            f.equalized_odds_difference,
            &r["eo_diff"],
            &mut errs,
        );
        close(
            &tag("eopp_diff"),
            f.equal_opportunity_difference,
            &r["eopp_diff"],
            &mut errs,
        );
        for g in &f.groups {
            close(
                &tag(&format!("selection_rate[{}]", g.group)),
                g.selection_rate,
                &r["selection_rate_by_group"][&g.group],
                &mut errs,
            );
        }
        // Per-slice metrics, including the slice with no positives.
        for g in ["a", "b", "c"] {
            let idx: Vec<usize> = (0..c.y.len()).filter(|&j| c.s[j] == g).collect();
            let ys: Vec<u8> = idx.iter().map(|&j| c.y[j]).collect();
            let ps: Vec<f64> = idx.iter().map(|&j| c.p[j]).collect();
            let ws: Option<Vec<f64>> = w.map(|w| idx.iter().map(|&j| w[j]).collect());
            let sm = metrics::binary(&ys, &ps, c.threshold, ws.as_deref());
            let rs = &r["slices"][g];
            close(
                &tag(&format!("slice {g} accuracy")),
                sm.accuracy,
                &rs["accuracy"],
                &mut errs,
            );
            close(
                &tag(&format!("slice {g} recall")),
                sm.recall,
                &rs["recall"],
                &mut errs,
            );
            close(
                &tag(&format!("slice {g} precision")),
                sm.precision,
                &rs["precision"],
                &mut errs,
            );
            match (sm.roc_auc, rs.get("roc_auc")) {
                (Some(a), Some(b)) => close(&tag(&format!("slice {g} roc_auc")), a, b, &mut errs),
                (None, None) => {}
                (a, b) => errs.push(format!("slice {g}: roc_auc keel {a:?} vs reference {b:?}")),
            }
        }
        assert!(f.groups.iter().any(|g| g.group == "c" && g.tpr == 0.0));
        let mm = metrics::multiclass(&c.ym, &c.probs, 3, w);
        let rm = &r["multiclass"];
        close(&tag("mc accuracy"), mm.accuracy, &rm["accuracy"], &mut errs);
        close(
            &tag("mc precision_macro"),
            mm.precision_macro,
            &rm["precision_macro"],
            &mut errs,
        );
        close(
            &tag("mc recall_macro"),
            mm.recall_macro,
            &rm["recall_macro"],
            &mut errs,
        );
        close(&tag("mc f1_macro"), mm.f1_macro, &rm["f1_macro"], &mut errs);
        close(
            &tag("mc roc_auc_ovr"),
            mm.roc_auc_ovr.unwrap(),
            &rm["roc_auc_ovr"],
            &mut errs,
        );
        close(&tag("mc log_loss"), mm.log_loss, &rm["log_loss"], &mut errs);
        let rg = metrics::regression(&c.yr, &c.pr, w);
        let rr = &r["regression"];
        close(&tag("rmse"), rg.rmse, &rr["rmse"], &mut errs);
        close(&tag("mae"), rg.mae, &rr["mae"], &mut errs);
        close(&tag("r2"), rg.r2, &rr["r2"], &mut errs);
        close(&tag("mape"), rg.mape, &rr["mape"], &mut errs);
    }
    assert!(errs.is_empty(), "metric mismatches:\n{}", errs.join("\n"));
}
