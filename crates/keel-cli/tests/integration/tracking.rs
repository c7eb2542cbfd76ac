//! `keel run` in a keel project: the pipeline is an MLflow experiment, each
//! executed job a tracking run that its script can log into with no
//! configuration (`MLFLOW_TRACKING_URI`, `MLFLOW_RUN_ID`).

use std::collections::BTreeMap;
use std::process::Command;

use keel_store::tracking::{experiments, runs};
use keel_store::{Overrides, Store};

use crate::util::{git, Env};

const PIPELINE: &str = r#"
.keel:
  params_file: params.yaml
  jobs:
    train: {params: [train.lr], metrics: [metrics.json]}
stages: [a, b]
train:
  stage: a
  parallel:
    matrix:
      - OPT: [adam]
  script:
    - 'echo "$MLFLOW_TRACKING_URI $MLFLOW_RUN_ID" > seen-train.txt'
    - 'echo ''{"acc": 0.75}'' > metrics.json'
broken:
  stage: b
  needs: []
  allow_failure: true
  script:
    - 'echo "$MLFLOW_RUN_ID" > seen-broken.txt'
    - exit 3
"#;

const PYTHON_JOB: &str = r#"
log:
  stage: b
  script:
    - '"$KEEL_PYTHON" -c "import mlflow; mlflow.log_metric(\"py_metric\", 1.5, step=2)"'
"#;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn kv(v: &[keel_store::tracking::KeyValue]) -> BTreeMap<String, String> {
    v.iter().map(|t| (t.key.clone(), t.value.clone())).collect()
}

#[test]
fn jobs_are_tracking_runs_their_scripts_can_log_into() {
    let env = Env::new();
    env.ok(&["init"]);
    let python = std::env::var("KEEL_PYTHON").ok().filter(|p| !p.is_empty());
    let mut yaml = PIPELINE.to_string();
    if python.is_some() {
        yaml.push_str(PYTHON_JOB);
    }
    env.write(".gitlab-ci.yml", yaml.as_bytes());
    env.write("params.yaml", b"train:\n  lr: 0.01\n");
    git(&env, &["init", "-q"]);
    git(&env, &["add", ".gitlab-ci.yml", "params.yaml"]);
    git(&env, &["commit", "-q", "-m", "pipeline"]);
    let head = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(env.root())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();

    let mut cmd = env.cmd(&["run", "--json"]);
    if let Some(p) = &python {
        cmd.env("KEEL_PYTHON", p);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "keel run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pipeline_run = summary["run_id"].as_str().unwrap().to_string();

    let seen = std::fs::read_to_string(env.path("seen-train.txt")).unwrap();
    let (uri, train_run) = seen.trim().split_once(' ').unwrap();
    assert!(uri.starts_with("http://127.0.0.1:"), "{seen}");
    assert_eq!(train_run.len(), 32, "{seen}");
    let broken_run = std::fs::read_to_string(env.path("seen-broken.txt")).unwrap();
    let broken_run = broken_run.trim();
    assert_ne!(broken_run, train_run);

    let rt = rt();
    let store = rt
        .block_on(Store::open(env.root(), &Overrides::default()))
        .unwrap();
    let exp = rt
        .block_on(experiments::get_by_name(&store, "pipeline:.gitlab-ci.yml"))
        .unwrap();

    let run = rt.block_on(runs::get(&store, train_run)).unwrap();
    assert_eq!(run.info.experiment_id, exp.experiment_id);
    assert_eq!(run.info.status, runs::RunStatus::Finished);
    assert!(run.info.end_time.is_some());
    assert_eq!(run.info.run_name, "train: [adam]");
    let tags = kv(&run.tags);
    assert_eq!(tags["keel.pipeline_run"], pipeline_run);
    assert_eq!(tags["keel.job"], "train: [adam]");
    assert_eq!(tags["mlflow.source.git.commit"], head);
    let params = kv(&run.params);
    assert_eq!(params["train.lr"], "0.01", "{params:?}");
    assert_eq!(params["OPT"], "adam", "{params:?}");
    let metrics: BTreeMap<String, f64> = run
        .metrics
        .iter()
        .map(|m| (m.key.clone(), m.value))
        .collect();
    assert_eq!(metrics.get("acc"), Some(&0.75), "{metrics:?}");

    let run = rt.block_on(runs::get(&store, broken_run)).unwrap();
    assert_eq!(run.info.status, runs::RunStatus::Failed);
    assert_eq!(kv(&run.tags)["keel.job"], "broken");

    if python.is_some() {
        let job = summary["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == "log")
            .unwrap();
        assert_eq!(job["status"], "success", "{job:#}");
        let page = rt
            .block_on(runs::search(
                &store,
                &[exp.experiment_id],
                "tags.`keel.job` = 'log'",
                keel_store::tracking::ViewType::ActiveOnly,
                10,
                &[],
                None,
            ))
            .unwrap();
        let run = &page.items[0];
        let m = run.metrics.iter().find(|m| m.key == "py_metric").unwrap();
        assert_eq!((m.value, m.step), (1.5, 2));
    }

    // A rerun: the cached job gets no new tracking run; the experiment is reused.
    env.ok(&["run"]);
    let again = rt
        .block_on(experiments::get_by_name(&store, "pipeline:.gitlab-ci.yml"))
        .unwrap();
    assert_eq!(again.experiment_id, exp.experiment_id);
}

/// kill -9 of `keel server` while clients log metrics: every log-metric
/// that got its 200 is in the store afterwards. Default durability: a
/// write is answered once it is in SQLite's WAL.
#[test]
fn sigkill_of_the_tracking_server_loses_no_acknowledged_metric() {
    sigkill_tracking_server(&[]);
}

/// The same with `--sync` (answered once fsynced).
#[test]
fn sigkill_of_the_tracking_server_loses_no_acknowledged_metric_sync() {
    sigkill_tracking_server(&["--sync"]);
}

fn sigkill_tracking_server(args: &[&str]) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use crate::serve::{http, wait_for, Conn, Server};

    let env = Env::new();
    env.ok(&["init"]);
    // The test's HTTP client names the host `keel`.
    let args: Vec<&str> = ["--allowed-host", "keel"]
        .iter()
        .chain(args)
        .copied()
        .collect();
    let mut server = Server::spawn(&env, "server", &args);
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let acked_total = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let created = http(addr, "POST", "/api/2.0/mlflow/runs/create", r#"{"experiment_id": "0"}"#);
            assert_eq!(created.status, 200, "{}", created.body);
            let v: serde_json::Value = serde_json::from_str(&created.body).unwrap();
            let run = v["run"]["info"]["run_id"].as_str().unwrap().to_string();
            let (stop, acked_total) = (stop.clone(), acked_total.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr).unwrap();
                let mut acked = Vec::new();
                for step in 0i64.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let body = serde_json::json!({"run_id": run, "key": "m", "value": step as f64, "timestamp": 1, "step": step});
                    match conn.request(
                        "POST",
                        "/api/2.0/mlflow/runs/log-metric",
                        &[("content-type", "application/json")],
                        &body.to_string(),
                    ) {
                        Ok(r) if r.status == 200 => {
                            acked.push(step);
                            acked_total.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => panic!("log-metric: HTTP {} {}", r.status, r.body),
                        // The server is gone: this one was not acknowledged.
                        Err(_) => break,
                    }
                }
                (run, acked)
            })
        })
        .collect();
    wait_for(60, "400 acknowledged log-metric calls", || {
        (acked_total.load(Ordering::SeqCst) >= 400).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    server.kill9();
    let results: Vec<(String, Vec<i64>)> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    stop.store(true, Ordering::SeqCst);

    let rt = rt();
    let store = rt
        .block_on(Store::open(env.root(), &Overrides::default()))
        .unwrap();
    let mut total = 0;
    for (run, acked) in &results {
        let history = rt
            .block_on(runs::metric_history(&store, run, "m", None, None))
            .unwrap();
        let stored: std::collections::BTreeSet<i64> =
            history.items.iter().map(|m| m.step).collect();
        let lost: Vec<&i64> = acked.iter().filter(|s| !stored.contains(s)).collect();
        assert!(
            lost.is_empty(),
            "run {run}: acknowledged steps lost: {lost:?}"
        );
        total += acked.len();
    }
    eprintln!("{total} acknowledged log-metric calls, all stored");
    assert!(total >= 400);
}
