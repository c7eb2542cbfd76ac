//! Validation gates and promotion through the real binary: a candidate
//! that passes, one that regresses against the model behind `production`,
//! and one that breaks a fairness limit, all trained by `keel train` and
//! gated on the same evaluation data. Exit codes, the JSON report (which
//! gate failed, by how much), and `keel models promote` refusing the
//! failing ones unless `--force`, which the alias history records.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::util::Env;

const GATES: &str = "\
thresholds:
  roc_auc: {min: 0.5}
no_regression:
  baseline: production
  metrics: [roc_auc]
  tolerance: 0.02
fairness:
  group:
    demographic_parity_ratio: {min: 0.8}
";

/// Rows of `x0..x3, group, group_b, y`: the label depends on x0..x2 and
/// on the group, while the x are independent of the group. A model that
/// does not see the group selects both groups at about the same rate; one
/// that does selects group b far more often (and ranks better).
fn csv(rng: &mut StdRng, n: usize) -> String {
    let mut s = String::from("x0,x1,x2,x3,group,group_b,y\n");
    for _ in 0..n {
        let x: Vec<f64> = (0..4).map(|_| normal(rng)).collect();
        let b = rng.random_bool(0.5);
        let z = 1.2 * x[0] - 1.0 * x[1] + 0.6 * x[2] + if b { 1.6 } else { 0.0 } - 0.8;
        let y = rng.random_bool(1.0 / (1.0 + (-z).exp()));
        s.push_str(&format!(
            "{:.5},{:.5},{:.5},{:.5},{},{},{}\n",
            x[0],
            x[1],
            x[2],
            x[3],
            if b { "b" } else { "a" },
            u8::from(b),
            u8::from(y)
        ));
    }
    s
}

fn normal(rng: &mut StdRng) -> f64 {
    let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// `keel gate … --json`: exit code and the parsed report.
fn gate(env: &Env, model: &str) -> (i32, Value) {
    let out = env.run(&["gate", model, "eval.csv", "--gates", "gates.yaml", "--json"]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "keel gate {model}: no JSON report ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

fn failures(report: &Value) -> Vec<&Value> {
    report["gates"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "failed")
        .collect()
}

fn production(env: &Env) -> Value {
    let show = env.json(&["models", "show", "churn"]);
    show["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| {
            v["aliases"]
                .as_array()
                .unwrap()
                .contains(&"production".into())
        })
        .map_or(Value::Null, |v| v["version"].clone())
}

#[test]
fn gates_pass_regress_and_break_fairness_and_promotion_follows() {
    let env = Env::new();
    env.ok(&["init"]);
    let mut rng = StdRng::seed_from_u64(7);
    env.write("train.csv", csv(&mut rng, 4000).as_bytes());
    env.write("eval.csv", csv(&mut rng, 3000).as_bytes());
    env.write("gates.yaml", GATES.as_bytes());
    let lr = ["--algorithm", "logistic_regression", "--target", "y"];
    for (out, features, extra) in [
        ("prod", "x0,x1,x2,x3", None),
        // The same features, regularised differently: about as good.
        ("good", "x0,x1,x2,x3", Some("c=0.05")),
        // Two weak features: ranks much worse than production.
        ("weak", "x2,x3", None),
        // Sees the group: better ranking, very different selection rates.
        ("biased", "x0,x1,x2,x3,group_b", None),
    ] {
        let mut args = vec!["train", "--data", "train.csv", "--features", features];
        args.extend(lr);
        args.extend(["--out", out]);
        if let Some(kv) = extra {
            args.extend(["--set", kv]);
        }
        env.ok(&args);
    }
    let register = |dir: &str| {
        env.json(&["models", "register", "churn", dir])["version"]
            .as_i64()
            .unwrap()
    };

    // Production: no baseline yet, so no-regression is skipped, not failed.
    assert_eq!(register("prod"), 1);
    let (code, v1) = gate(&env, "models:/churn/1");
    assert_eq!(code, 0, "{v1:#}");
    assert_eq!(v1["model"]["version"], 1);
    let skipped: Vec<_> = v1["gates"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "skipped")
        .collect();
    assert_eq!(skipped.len(), 1, "{v1:#}");
    assert_eq!(skipped[0]["kind"], "no_regression");
    env.ok(&["models", "promote", "churn", "1", "--alias", "production"]);
    assert_eq!(production(&env), 1);
    let base_auc = v1["metrics"]["roc_auc"].as_f64().unwrap();

    assert_eq!(register("good"), 2);
    assert_eq!(register("weak"), 3);
    assert_eq!(register("biased"), 4);

    // Passes: every gate, including no regression against production.
    let (code, good) = gate(&env, "models:/churn/2");
    assert_eq!(code, 0, "{good:#}");
    assert_eq!(good["gates"]["passed"], true);
    assert!(failures(&good).is_empty());
    let nr = good["gates"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "no_regression")
        .unwrap();
    assert_eq!(nr["status"], "passed", "{good:#}");
    assert_eq!(good["baseline"], "production");

    // Regresses: exactly the no-regression gate fails, by the ROC AUC
    // shortfall below production's minus the tolerance.
    let (code, weak) = gate(&env, "models:/churn/3");
    assert_eq!(code, 1, "{weak:#}");
    assert_eq!(weak["gates"]["passed"], false);
    let f = failures(&weak);
    assert_eq!(f.len(), 1, "{weak:#}");
    assert_eq!(f[0]["kind"], "no_regression");
    assert_eq!(f[0]["metric"], "roc_auc");
    let auc = weak["metrics"]["roc_auc"].as_f64().unwrap();
    let short = f[0]["shortfall"].as_f64().unwrap();
    assert!((short - (base_auc - 0.02 - auc)).abs() < 1e-12, "{weak:#}");
    assert!(short > 0.05, "a clear regression: {weak:#}");
    eprintln!("production roc_auc {base_auc:.4}; weak {auc:.4}, short by {short:.4}");
    let msg = f[0]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("off by {short:.4}")) && msg.contains("production"),
        "{msg}"
    );

    // Breaks the four-fifths rule: exactly the fairness gate fails.
    let (code, biased) = gate(&env, "models:/churn/4");
    assert_eq!(code, 1, "{biased:#}");
    let f = failures(&biased);
    assert_eq!(f.len(), 1, "{biased:#}");
    assert_eq!(f[0]["kind"], "fairness");
    let key = "fairness.group.demographic_parity_ratio";
    assert_eq!(f[0]["metric"], key);
    let ratio = biased["metrics"][key].as_f64().unwrap();
    assert!(ratio < 0.7, "{biased:#}");
    let short = f[0]["shortfall"].as_f64().unwrap();
    assert!((short - (0.8 - ratio)).abs() < 1e-12, "{biased:#}");
    eprintln!("biased demographic_parity_ratio {ratio:.4}, short by {short:.4}");
    assert!(biased["metrics"]["roc_auc"].as_f64().unwrap() > base_auc);

    // The human report names the failed gate and the margin too.
    let out = env.run(&[
        "gate",
        "models:/churn/4",
        "eval.csv",
        "--gates",
        "gates.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("FAIL")).unwrap();
    assert!(
        line.contains("fairness") && line.contains(key) && line.contains(&format!("{short:.4}")),
        "{text}"
    );

    // Promotion refuses both failing versions, from the recorded outcome
    // and from the gates file against the versions' recorded metrics.
    for args in [
        vec!["models", "promote", "churn", "3", "--alias", "production"],
        vec!["models", "promote", "churn", "4", "--alias", "production"],
        vec![
            "models",
            "promote",
            "churn",
            "3",
            "--alias",
            "production",
            "--gates",
            "gates.yaml",
        ],
        vec![
            "models",
            "promote",
            "churn",
            "4",
            "--alias",
            "production",
            "--gates",
            "gates.yaml",
        ],
    ] {
        let out = env.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("not promoted") && err.contains("--force"),
            "{err}"
        );
        assert!(err.contains("gate failed:"), "{err}");
        assert_eq!(production(&env), 1, "{args:?} moved the alias");
    }

    // --force promotes anyway, and the history says so and why.
    let forced = env.json(&[
        "models",
        "promote",
        "churn",
        "4",
        "--alias",
        "production",
        "--force",
    ]);
    assert_eq!(forced["promoted"], true);
    assert_eq!(production(&env), 4);
    let show = env.json(&["models", "show", "churn"]);
    let history = show["alias_history"].as_array().unwrap();
    let last = history.last().unwrap();
    assert_eq!(last["version"], 4);
    assert_eq!(last["previous_version"], 1);
    let note = last["note"].as_str().unwrap();
    assert!(
        note.contains("[forced]") && note.contains("FAILED") && note.contains(key),
        "{note}"
    );
    assert!(!last["actor"].as_str().unwrap().is_empty());

    // The passing version is promoted without force.
    let promoted = env.json(&["models", "promote", "churn", "2", "--alias", "production"]);
    assert_eq!(promoted["promoted"], true);
    assert_eq!(production(&env), 2);
    let show = env.json(&["models", "show", "churn"]);
    let last = show["alias_history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(
        last["note"].as_str().unwrap().contains("gates passed"),
        "{last:#}"
    );
}
