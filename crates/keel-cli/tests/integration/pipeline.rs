//! `keel run` in a `keel init` project (object store, SQLite lineage and
//! run-cache): a cached rerun executes no script and restores every out, a
//! changed dep reruns exactly the jobs downstream of it, every run is
//! recorded (cached jobs too), and `keel exp show` tabulates a 2x2 sweep.

use std::collections::BTreeSet;

use keel_pipeline::keelstore::KeelStore;
use keel_pipeline::store::RunHistory;
use keel_store::tracking::{experiments, runs, ViewType};
use keel_store::{Overrides, Store};

use crate::util::{git, sha256_tree, Env};

// Each script appends its job's name to ran.log (not an out), so the test
// sees which scripts executed.
const PIPELINE: &str = r#"
.keel:
  params_file: params.yaml
  jobs:
    prepare: {deps: [data/raw.txt], outs: [work/prep.txt]}
    train:
      deps: [work/prep.txt]
      params: [train.epochs]
      outs: ["models/m-${LR}-${OPT}.txt"]
      metrics: ["metrics/train-${LR}-${OPT}.json"]
    lint: {deps: [src/code.txt], outs: [work/lint.txt]}
stages: [prepare, train]
prepare:
  stage: prepare
  script:
    - echo prepare >> ran.log
    - mkdir -p work && tr a-z A-Z < data/raw.txt > work/prep.txt
lint:
  stage: prepare
  script:
    - echo lint >> ran.log
    - mkdir -p work && wc -c < src/code.txt > work/lint.txt
train:
  stage: train
  needs: [prepare]
  parallel:
    matrix:
      - LR: ["0.1", "0.2"]
        OPT: [adam, sgd]
  script:
    - echo "train $LR $OPT" >> ran.log
    - mkdir -p models metrics
    - cat work/prep.txt > "models/m-$LR-$OPT.txt"
    - echo "$LR $OPT" >> "models/m-$LR-$OPT.txt"
    - if [ "$OPT" = adam ]; then b=1; else b=0; fi
    - 'echo "{\"acc\": $LR$b}" > "metrics/train-$LR-$OPT.json"'
"#;

const TRAIN_JOBS: [&str; 4] = [
    "train: [0.1, adam]",
    "train: [0.1, sgd]",
    "train: [0.2, adam]",
    "train: [0.2, sgd]",
];

/// The scripts that ran since the last call (and forgets them).
fn take_ran(env: &Env) -> BTreeSet<String> {
    let p = env.path("ran.log");
    let text = std::fs::read_to_string(&p).unwrap_or_default();
    let _ = std::fs::remove_file(&p);
    text.lines().map(str::to_string).collect()
}

/// `keel run --json`: the run record, asserting success.
fn run(env: &Env) -> serde_json::Value {
    env.json(&["run", "-j", "2"])
}

/// (job, cached) for every job of a run record.
fn cached_flags(record: &serde_json::Value) -> Vec<(String, bool)> {
    record["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            assert_eq!(j["status"], "success", "{j:#}");
            (
                j["name"].as_str().unwrap().to_string(),
                j["cached"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn cached_rerun_one_changed_dep_and_exp_show_in_a_keel_project() {
    let env = Env::new();
    env.ok(&["init"]);
    env.write(".gitlab-ci.yml", PIPELINE.as_bytes());
    env.write("params.yaml", b"train:\n  epochs: 3\n");
    env.write("data/raw.txt", b"some raw data\n");
    env.write("src/code.txt", b"fn main() {}\n");
    git(&env, &["init", "-q", "-b", "main"]);
    git(&env, &["add", "."]);
    git(&env, &["commit", "-q", "-m", "pipeline"]);

    // 1. Cold: every script runs.
    let first = run(&env);
    assert!(cached_flags(&first).iter().all(|(_, c)| !c), "{first:#}");
    let mut all = set(&["prepare", "lint"]);
    all.extend(TRAIN_JOBS.iter().map(|j| {
        let (lr, opt) = j["train: [".len()..j.len() - 1].split_once(", ").unwrap();
        format!("train {lr} {opt}")
    }));
    assert_eq!(take_ran(&env), all);
    let outs_before = (
        sha256_tree(&env.path("models")),
        sha256_tree(&env.path("metrics")),
        sha256_tree(&env.path("work")),
    );

    // 2. Nothing changed, outs deleted: no script runs, every out comes back.
    std::fs::remove_dir_all(env.path("models")).unwrap();
    std::fs::remove_dir_all(env.path("metrics")).unwrap();
    std::fs::remove_dir_all(env.path("work")).unwrap();
    let second = run(&env);
    assert!(cached_flags(&second).iter().all(|(_, c)| *c), "{second:#}");
    assert_eq!(take_ran(&env), BTreeSet::new());
    let outs_after = (
        sha256_tree(&env.path("models")),
        sha256_tree(&env.path("metrics")),
        sha256_tree(&env.path("work")),
    );
    assert_eq!(outs_after, outs_before);
    assert_eq!(outs_after.0.len(), 4);

    // 3. One dep changed: prepare and the four train instances downstream
    // of it rerun; lint does not.
    env.write("data/raw.txt", b"other raw data\n");
    let third = run(&env);
    let rerun: BTreeSet<String> = cached_flags(&third)
        .into_iter()
        .filter(|(_, c)| !c)
        .map(|(n, _)| n)
        .collect();
    let mut downstream = set(&["prepare"]);
    downstream.extend(TRAIN_JOBS.iter().map(|s| s.to_string()));
    assert_eq!(rerun, downstream);
    assert!(!take_ran(&env).contains("lint"));
    assert_eq!(
        std::fs::read_to_string(env.path("models/m-0.2-sgd.txt")).unwrap(),
        "OTHER RAW DATA\n0.2 sgd\n"
    );

    // 4. The lineage holds all three runs, cached jobs included.
    let ks = KeelStore::open(env.root(), &Overrides::default()).unwrap();
    let history = ks.runs().unwrap();
    let ids: Vec<&str> = history.iter().map(|r| r.run_id.as_str()).collect();
    let want: Vec<&str> = [&first, &second, &third]
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, want);
    for r in &history {
        assert_eq!(r.status, "success");
        assert_eq!(r.git_branch.as_deref(), Some("main"));
        assert!(r.finished_at_ms.is_some());
        assert_eq!(r.jobs.len(), 6, "{}", r.run_id);
    }
    let cached_in_second = history[1].jobs.iter().filter(|j| j.cached).count();
    assert_eq!(cached_in_second, 6);
    drop(ks);

    // Only executed jobs are tracking runs: 6 in the first run, 5 in the
    // third; the fully cached second run started no tracking server.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(Store::open(env.root(), &Overrides::default()))
        .unwrap();
    let exp = rt
        .block_on(experiments::get_by_name(&store, "pipeline:.gitlab-ci.yml"))
        .unwrap();
    let page = rt
        .block_on(runs::search(
            &store,
            &[exp.experiment_id],
            "",
            ViewType::ActiveOnly,
            100,
            &[],
            None,
        ))
        .unwrap();
    assert_eq!(page.items.len(), 11);

    // 5. exp show: the 2x2 sweep, params and metrics per instance. The third
    // run's train rows are new results; the baseline (the last successful
    // run on main) is the third run itself, so its deltas are 0.
    let t = env.json(&["exp", "show"]);
    let rows = t["rows"].as_array().unwrap();
    let third_id = third["run_id"].as_str().unwrap();
    let latest: Vec<&serde_json::Value> = rows.iter().filter(|r| r["run_id"] == third_id).collect();
    let names: BTreeSet<String> = latest
        .iter()
        .map(|r| r["job"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, TRAIN_JOBS.iter().map(|s| s.to_string()).collect());
    for r in &latest {
        let (lr, opt) = (
            r["params"]["LR"].as_str().unwrap(),
            r["params"]["OPT"].as_str().unwrap(),
        );
        assert_eq!(r["params"]["train.epochs"], "3", "{r:#}");
        let b = if opt == "adam" { "1" } else { "0" };
        let acc: f64 = format!("{lr}{b}").parse().unwrap();
        assert_eq!(r["metrics"]["acc"].as_f64(), Some(acc), "{r:#}");
        assert_eq!(r["delta"]["acc"].as_f64(), Some(0.0), "{r:#}");
    }
    assert!(t["params"].as_array().unwrap().iter().any(|p| p == "LR"));
    assert_eq!(t["metrics"], serde_json::json!(["acc"]));
    // The table form names the four instances too.
    let text = env.ok(&["exp", "show"]);
    for j in TRAIN_JOBS {
        assert!(text.contains(j), "{text}");
    }
}
