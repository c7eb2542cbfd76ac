//! Continuous training end to end, on the real binaries: `keel serve
//! models:/fraud@champion` takes traffic, drift is injected into it, the
//! first `keel monitor --once` window that holds the drifted traffic fires
//! the alert, whose `pipeline:` action reruns the project's pipeline
//! (train → gate → register + promote). A retrained model that fails its
//! gate is not registered and the alias and the served version stay; one
//! that passes is promoted and the server switches to it by itself.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve::{invocation, labelled_csv, rows, train, wait_for, Conn, Server};
use crate::util::Env;

const PIPELINE: &str = r#"# Retraining on data/fresh.csv; the model is promoted only after its gate.
stages: [train, gate, promote]
train:
  stage: train
  script:
    - keel train --data data/fresh.csv --target label --algorithm logistic_regression --out candidate
gate:
  stage: gate
  needs: [train]
  script:
    - keel gate candidate data/fresh-test.csv --gates gates.yaml
promote:
  stage: promote
  needs: [gate]
  script:
    - sh promote.sh
"#;

const PROMOTE_SH: &str = r#"set -eu
keel models register fraud candidate --json > registered.json
v=$(sed -n 's/.*"version": *\([0-9][0-9]*\).*/\1/p' registered.json | head -n 1)
keel models promote fraud "$v" --alias champion
"#;

const MONITOR: &str = r#"log: .keel/predictions
model: v1
reference: data/reference.csv
window: 5s
min_rows: 200
rules:
  - name: feature drift
    metric: drift_share
    comparison: ">="
    threshold: 0.5
    for: 1
    severity: critical
    actions:
      - log
      - pipeline: .gitlab-ci.yml
"#;

/// The window length in `MONITOR`, plus a margin: waiting this long after
/// the last request leaves the next window without it.
const WINDOW: Duration = Duration::from_millis(5_500);

/// `keel monitor --once --json` with the binary's directory on PATH (the
/// pipeline's jobs call plain `keel`); its report and its stderr (where the
/// pipeline run tells what it did).
fn monitor_once(env: &Env) -> (Value, String) {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_keel"));
    let mut paths = vec![bin.parent().unwrap().to_path_buf()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let out = env
        .cmd(&["monitor", "--once", "--json"])
        .env("PATH", std::env::join_paths(paths).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keel monitor failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    (report, stderr)
}

/// Sends `traffic` in 20-row requests; returns the versions that answered.
fn send(server: &Server, traffic: &[[f64; 3]]) -> Vec<String> {
    let mut conn = Conn::open(server.addr).unwrap();
    traffic
        .chunks(20)
        .map(|chunk| {
            let r = conn
                .request(
                    "POST",
                    "/invocations",
                    &[("content-type", "application/json")],
                    &invocation(chunk),
                )
                .unwrap();
            assert_eq!(r.status, 200, "{}\n{}", r.body, server.stderr());
            r.headers["x-keel-model-version"].clone()
        })
        .collect()
}

/// (versions, the version `champion` points at).
fn registry(env: &Env) -> (Vec<i64>, Option<i64>) {
    let show = env.json(&["models", "show", "fraud"]);
    let versions = show["versions"].as_array().unwrap();
    let champion = versions
        .iter()
        .find(|v| {
            v["aliases"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "champion"))
        })
        .and_then(|v| v["version"].as_i64());
    let mut numbers: Vec<i64> = versions
        .iter()
        .filter_map(|v| v["version"].as_i64())
        .collect();
    numbers.sort_unstable();
    (numbers, champion)
}

/// The log of `job` in the newest pipeline run (`.keel/runs/<run-id>/`,
/// run ids sort by time).
fn last_job_log(env: &Env, job: &str) -> String {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(env.path(".keel/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join(format!("{job}.log")).exists())
        .collect();
    runs.sort();
    let last = runs.last().unwrap_or_else(|| panic!("no run of {job}"));
    std::fs::read_to_string(last.join(format!("{job}.log"))).unwrap()
}

fn pipeline_outcome(report: &Value) -> String {
    let fired = report["fired"].as_array().unwrap();
    assert_eq!(fired.len(), 1, "{report:#}");
    assert_eq!(fired[0]["rule"], "feature drift");
    let actions = fired[0]["actions"].as_array().unwrap();
    assert_eq!(actions[0], serde_json::json!(["log", "ok"]), "{report:#}");
    let pipeline = &actions[1];
    assert!(
        pipeline[0].as_str().unwrap().starts_with("pipeline "),
        "{report:#}"
    );
    pipeline[1].as_str().unwrap().to_string()
}

#[test]
fn drift_alert_reruns_the_pipeline_and_only_a_gated_model_is_promoted() {
    let env = Env::new();
    env.ok(&["init"]);
    env.write(
        "data/reference.csv",
        labelled_csv(&rows(2000, 10, 0.0), 11, false).as_bytes(),
    );
    train(&env, "data/reference.csv", "v1");
    env.ok(&["models", "register", "fraud", "v1"]);
    env.ok(&["models", "promote", "fraud", "1", "--alias", "champion"]);
    env.write("gates.yaml", b"thresholds:\n  roc_auc: {min: 0.75}\n");
    env.write(".gitlab-ci.yml", PIPELINE.as_bytes());
    env.write("promote.sh", PROMOTE_SH.as_bytes());
    env.write("monitor.yaml", MONITOR.as_bytes());
    let server = Server::start(&env, &["models:/fraud@champion", "--poll", "200ms"]);

    // Baseline traffic: the window is quiet.
    assert!(send(&server, &rows(1200, 20, 0.0)).iter().all(|v| v == "1"));
    let (quiet, _) = monitor_once(&env);
    assert!(
        quiet["metrics"]["rows"].as_f64().unwrap() >= 1200.0,
        "{quiet:#}"
    );
    assert!(
        quiet["metrics"]["drift_share"].as_f64().unwrap() < 0.5,
        "{quiet:#}"
    );
    assert_eq!(quiet["fired"], serde_json::json!([]), "{quiet:#}");

    // Drift, and fresh labelled data nothing can learn from: the alert
    // fires in the first window holding the drifted traffic, the pipeline
    // reruns, its gate fails, nothing is registered or promoted.
    std::thread::sleep(WINDOW);
    env.write(
        "data/fresh.csv",
        labelled_csv(&rows(2000, 30, 1.5), 31, true).as_bytes(),
    );
    env.write(
        "data/fresh-test.csv",
        labelled_csv(&rows(1000, 32, 1.5), 33, true).as_bytes(),
    );
    assert!(send(&server, &rows(1200, 40, 1.5)).iter().all(|v| v == "1"));
    let (drifted, said) = monitor_once(&env);
    assert!(
        drifted["metrics"]["drift_share"].as_f64().unwrap() >= 0.5,
        "{drifted:#}"
    );
    let outcome = pipeline_outcome(&drifted);
    assert!(
        outcome.starts_with("failed"),
        "{outcome}\n{drifted:#}\n{said}"
    );
    assert!(
        env.path("candidate/MLmodel").exists(),
        "the pipeline reran: a candidate was trained\n{said}"
    );
    let gate = last_job_log(&env, "gate");
    assert!(
        gate.contains("FAIL") && gate.contains("roc_auc"),
        "the gate failed it:\n{gate}"
    );
    assert!(
        !env.path("registered.json").exists(),
        "the promote job ran after a failed gate"
    );
    assert_eq!(registry(&env), (vec![1], Some(1)));
    // Longer than the server's poll: it still serves version 1.
    std::thread::sleep(Duration::from_secs(1));
    assert!(send(&server, &rows(40, 41, 1.5)).iter().all(|v| v == "1"));

    // A quiet window (no traffic) clears the rule, then the drift comes
    // back with learnable fresh data: this time the gate passes, version 2
    // is promoted, and the server switches to it by itself.
    std::thread::sleep(WINDOW);
    let (empty, _) = monitor_once(&env);
    assert_eq!(empty["fired"], serde_json::json!([]), "{empty:#}");
    env.write(
        "data/fresh.csv",
        labelled_csv(&rows(2000, 50, 1.5), 51, false).as_bytes(),
    );
    env.write(
        "data/fresh-test.csv",
        labelled_csv(&rows(1000, 52, 1.5), 53, false).as_bytes(),
    );
    assert!(send(&server, &rows(1200, 60, 1.5)).iter().all(|v| v == "1"));
    let (drifted, said) = monitor_once(&env);
    let outcome = pipeline_outcome(&drifted);
    assert_eq!(outcome, "succeeded", "{drifted:#}\n{said}");
    assert_eq!(registry(&env), (vec![1, 2], Some(2)));
    let start = Instant::now();
    wait_for(30, "the server to serve version 2", || {
        send(&server, &rows(20, 70, 1.5))
            .last()
            .filter(|v| *v == "2")
            .cloned()
    });
    eprintln!(
        "switched to version 2 {:?} after the promotion",
        start.elapsed()
    );
}
