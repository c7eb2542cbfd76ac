//! The executor on real bash pipelines.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keel_pipeline::exec::{
    CancelToken, ExecOptions, JobStatus, ManualJobs, PipelineStatus, RunSummary,
};
use keel_pipeline::store::{FileStore, RunHistory};

use crate::{plan_dir, run_dir, run_planned, write};

/// A project in `<tmp>/p`; scripts log to `<tmp>/ran.log` (outside the
/// project, so logging does not change any dep).
fn nested(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("p");
    for (path, text) in files {
        write(&p, path, text);
    }
    (t, p)
}

/// Which jobs ran their script since the last call (and clears the list).
fn ran(p: &Path) -> Vec<String> {
    let log = p.parent().unwrap().join("ran.log");
    let text = fs::read_to_string(&log).unwrap_or_default();
    let _ = fs::remove_file(&log);
    let mut v: Vec<String> = text.lines().map(str::to_string).collect();
    v.sort();
    v
}

fn status<'a>(s: &'a RunSummary, job: &str) -> (&'a JobStatus, bool) {
    let j = s
        .jobs
        .iter()
        .find(|j| j.name == job)
        .unwrap_or_else(|| panic!("no {job} in {:?}", s.jobs));
    (&j.status, j.cached)
}

fn opts() -> ExecOptions {
    ExecOptions::with_parallelism(2)
}

const CACHED: &str = r#"
.keel:
  params_file: params.yaml
  jobs:
    prep: {deps: [raw.txt], outs: [data/]}
    train: {deps: [data/], params: [train.lr], outs: [model.txt], metrics: [metrics.json]}
    report: {deps: [model.txt]}
stages: [a, b, c]
prep:
  stage: a
  script:
    - echo "$CI_JOB_NAME" >> ../ran.log
    - mkdir -p data/sub && cp raw.txt data/clean.txt && echo extra > data/sub/x
  artifacts: {paths: [data/]}
train:
  stage: b
  script:
    - echo "$CI_JOB_NAME" >> ../ran.log
    - (cat data/clean.txt; grep lr params.yaml) > model.txt
    - 'echo ''{"acc": {"train": 0.9}, "loss": 0.1}'' > metrics.json'
  artifacts: {paths: [model.txt]}
report:
  stage: c
  script:
    - echo "$CI_JOB_NAME" >> ../ran.log
side:
  stage: b
  needs: []
  script:
    - echo "$CI_JOB_NAME" >> ../ran.log
"#;

#[test]
fn second_run_executes_no_script_and_restores_outs() {
    let (_t, p) = nested(&[
        (".gitlab-ci.yml", CACHED),
        ("raw.txt", "raw v1\n"),
        ("params.yaml", "train:\n  lr: 0.1\n  epochs: 3\n"),
        ("unrelated.txt", "x"),
    ]);
    let (s, _) = run_dir(&p, &opts());
    assert_eq!(s.status, PipelineStatus::Success, "{:?}", s.jobs);
    assert_eq!(ran(&p), ["prep", "report", "side", "train"]);
    assert!(s.jobs.iter().all(|j| !j.cached));
    let model_v1 = fs::read_to_string(p.join("model.txt")).unwrap();

    // Nothing changed; outs deleted: every .keel job is restored, not run.
    fs::remove_dir_all(p.join("data")).unwrap();
    fs::remove_file(p.join("model.txt")).unwrap();
    fs::write(p.join("metrics.json"), "{}").unwrap();
    let (s, _) = run_dir(&p, &opts());
    assert_eq!(ran(&p), ["side"], "jobs without a .keel entry always run");
    for j in ["prep", "train", "report"] {
        assert_eq!(status(&s, j), (&JobStatus::Success, true), "{j}");
    }
    assert_eq!(
        fs::read_to_string(p.join("data/clean.txt")).unwrap(),
        "raw v1\n"
    );
    assert_eq!(fs::read_to_string(p.join("data/sub/x")).unwrap(), "extra\n");
    assert_eq!(fs::read_to_string(p.join("model.txt")).unwrap(), model_v1);
    assert!(fs::read_to_string(p.join("metrics.json"))
        .unwrap()
        .contains("0.9"));
    let rec = s.record.jobs.iter().find(|j| j.name == "train").unwrap();
    assert_eq!(
        rec.metrics.get("acc.train"),
        Some(&0.9),
        "metrics are read on a hit too"
    );
    assert_eq!(rec.params.get("train.lr"), Some(&serde_json::json!(0.1)));

    // An unrelated file changes: still nothing reruns.
    fs::write(p.join("unrelated.txt"), "y").unwrap();
    run_dir(&p, &opts());
    assert_eq!(ran(&p), ["side"]);

    // A param changes: train and what follows rerun, prep does not.
    fs::write(p.join("params.yaml"), "train:\n  lr: 0.2\n  epochs: 3\n").unwrap();
    let (s, _) = run_dir(&p, &opts());
    assert_eq!(ran(&p), ["report", "side", "train"]);
    assert!(status(&s, "prep").1);

    // An unused param changes: nothing reruns.
    fs::write(p.join("params.yaml"), "train:\n  lr: 0.2\n  epochs: 4\n").unwrap();
    run_dir(&p, &opts());
    assert_eq!(ran(&p), ["side"]);

    // Back to lr 0.1: a key seen in an EARLIER run (not the last) is a hit.
    fs::write(p.join("params.yaml"), "train:\n  lr: 0.1\n  epochs: 3\n").unwrap();
    let (s, _) = run_dir(&p, &opts());
    assert_eq!(ran(&p), ["side"], "the run-cache spans all runs");
    assert!(status(&s, "train").1);
    assert_eq!(fs::read_to_string(p.join("model.txt")).unwrap(), model_v1);

    // The root dep changes: everything downstream reruns.
    fs::write(p.join("raw.txt"), "raw v2\n").unwrap();
    run_dir(&p, &opts());
    assert_eq!(ran(&p), ["prep", "report", "side", "train"]);

    // Every run was recorded, with per-job logs.
    let runs = FileStore::new(&p.join(".keel")).runs().unwrap();
    assert_eq!(runs.len(), 7);
    let last = runs.last().unwrap();
    assert_eq!(last.status, "success");
    let log = p.join(
        last.jobs
            .iter()
            .find(|j| j.name == "prep")
            .unwrap()
            .log
            .as_ref()
            .unwrap(),
    );
    assert!(fs::read_to_string(log)
        .unwrap()
        .contains("$ mkdir -p data/sub"));
}

#[test]
fn changing_one_dep_reruns_exactly_the_jobs_downstream_of_it() {
    let yaml = r#"
.keel:
  jobs:
    base: {deps: [base.txt], outs: [base.out]}
    left: {deps: [base.out, left.txt], outs: [left.out]}
    right: {deps: [base.out, right.txt], outs: [right.out]}
    join: {deps: [left.out, right.out], outs: [join.out]}
    after-right: {deps: [right.out], outs: [after.out]}
base: {stage: build, script: ['echo base >> ../ran.log', 'cat base.txt > base.out']}
left: {stage: test, needs: [base], script: ['echo left >> ../ran.log', 'cat base.out left.txt > left.out']}
right: {stage: test, needs: [base], script: ['echo right >> ../ran.log', 'cat base.out right.txt > right.out']}
join: {stage: deploy, needs: [left, right], script: ['echo join >> ../ran.log', 'cat left.out right.out > join.out']}
after-right: {stage: deploy, needs: [right], script: ['echo after-right >> ../ran.log', 'cat right.out > after.out']}
"#;
    let (_t, p) = nested(&[
        (".gitlab-ci.yml", yaml),
        ("base.txt", "b"),
        ("left.txt", "l"),
        ("right.txt", "r"),
    ]);
    run_dir(&p, &opts());
    assert_eq!(ran(&p).len(), 5);
    run_dir(&p, &opts());
    assert!(ran(&p).is_empty());
    fs::write(p.join("left.txt"), "l2").unwrap();
    let (s, _) = run_dir(&p, &opts());
    assert_eq!(ran(&p), ["join", "left"]);
    assert!(status(&s, "right").1 && status(&s, "after-right").1 && status(&s, "base").1);
    fs::write(p.join("right.txt"), "r2").unwrap();
    run_dir(&p, &opts());
    assert_eq!(ran(&p), ["after-right", "join", "right"]);
}

#[test]
fn upstream_artifacts_are_part_of_the_key() {
    // `gen` has no .keel entry (always runs); `use` is cached on its
    // artifacts' content, not on gen having run.
    let yaml = r#"
.keel:
  jobs:
    use: {outs: [used.txt]}
gen: {stage: build, script: ['cp src.txt gen.txt'], artifacts: {paths: [gen.txt]}}
use: {stage: test, script: ['echo use >> ../ran.log', 'cp gen.txt used.txt']}
"#;
    let (_t, p) = nested(&[(".gitlab-ci.yml", yaml), ("src.txt", "1")]);
    run_dir(&p, &opts());
    assert_eq!(ran(&p), ["use"]);
    run_dir(&p, &opts());
    assert!(ran(&p).is_empty());
    fs::write(p.join("src.txt"), "2").unwrap();
    run_dir(&p, &opts());
    assert_eq!(ran(&p), ["use"]);
}

#[test]
fn a_2x2_matrix_runs_four_named_jobs_and_exp_show_tabulates_them() {
    let yaml = r#"
.keel:
  jobs:
    train:
      outs: ["models/m-${LR}-${OPT}.txt"]
      metrics: ["metrics/${LR}-${OPT}.json"]
train:
  parallel:
    matrix:
      - LR: ["0.1", "0.01"]
        OPT: [adam, sgd]
  script:
    - echo "$CI_JOB_NAME" >> ../ran.log
    - mkdir -p models metrics
    - echo "$LR $OPT $CI_NODE_INDEX/$CI_NODE_TOTAL" > models/m-$LR-$OPT.txt
    - 'echo "{\"score\": $LR}" > metrics/$LR-$OPT.json'
"#;
    let (_t, p) = nested(&[(".gitlab-ci.yml", yaml)]);
    let (s, _) = run_dir(&p, &opts());
    let names: Vec<&str> = s.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "train: [0.1, adam]",
            "train: [0.1, sgd]",
            "train: [0.01, adam]",
            "train: [0.01, sgd]"
        ]
    );
    assert_eq!(ran(&p).len(), 4);
    assert_eq!(
        fs::read_to_string(p.join("models/m-0.01-sgd.txt")).unwrap(),
        "0.01 sgd 4/4\n"
    );
    let (s2, _) = run_dir(&p, &opts());
    assert!(s2.jobs.iter().all(|j| j.cached));
    let runs = FileStore::new(&p.join(".keel")).runs().unwrap();
    let t = keel_pipeline::exp::table(&runs, Some(&s.run_id), "main", false).unwrap();
    assert_eq!(t.params, ["LR", "OPT"]);
    assert_eq!(t.metrics, ["score"]);
    assert_eq!(
        t.rows.len(),
        4,
        "a cached rerun is the same experiment: {:?}",
        t.rows
    );
    let row = t
        .rows
        .iter()
        .find(|r| r.job == "train: [0.01, adam]")
        .unwrap();
    assert_eq!(row.params["LR"], "0.01");
    assert_eq!(row.metrics["score"], 0.01);
    assert_eq!(row.delta["score"], 0.0);
    assert_eq!(
        keel_pipeline::exp::table(&runs, None, "main", true)
            .unwrap()
            .rows
            .len(),
        8
    );
}

#[test]
fn a_failure_stops_dependants_but_not_unrelated_branches() {
    let yaml = r#"
stages: [one, two]
bad: {stage: one, script: ['echo about to fail', 'exit 7', 'echo never']}
after-bad: {stage: two, needs: [bad], script: ['echo after-bad >> ../ran.log']}
cleanup: {stage: two, needs: [bad], when: on_failure, script: ['echo cleanup >> ../ran.log']}
always: {stage: two, needs: [bad], when: always, script: ['echo always >> ../ran.log']}
other: {stage: one, script: ['echo other >> ../ran.log']}
after-other: {stage: two, needs: [other], script: ['echo after-other >> ../ran.log']}
tolerated: {stage: one, script: ['exit 3'], allow_failure: {exit_codes: [3]}}
after-tolerated: {stage: two, needs: [tolerated], script: ['echo after-tolerated >> ../ran.log']}
"#;
    let (_t, p) = nested(&[(".gitlab-ci.yml", yaml)]);
    let (s, lines) = run_dir(&p, &opts());
    assert_eq!(s.status, PipelineStatus::Failed);
    assert_eq!(
        ran(&p),
        [
            "after-other",
            "after-tolerated",
            "always",
            "cleanup",
            "other"
        ]
    );
    let bad = s.jobs.iter().find(|j| j.name == "bad").unwrap();
    assert_eq!((bad.status, bad.exit_code), (JobStatus::Failed, Some(7)));
    assert_eq!(status(&s, "after-bad").0, &JobStatus::Skipped);
    assert_eq!(status(&s, "tolerated").0, &JobStatus::AllowedFailure);
    assert!(lines.contains(&"bad|about to fail".to_string()));
    assert!(lines.contains(&"bad|$ exit 7".to_string()));
    assert!(!lines.iter().any(|l| l == "bad|never"));
}

#[test]
fn retry_timeout_and_after_script() {
    let yaml = r#"
flaky:
  retry: 2
  script:
    - n=$(cat ../tries 2>/dev/null || echo 0); n=$((n+1)); echo $n > ../tries
    - test $n -ge 3
slow:
  timeout: 1s
  script: ['sleep 30']
  after_script: ['echo "after slow $CI_JOB_STATUS" >> ../ran.log']
post:
  script: ['export SECRET_LOCAL=1', 'exit 1']
  after_script: ['echo "after post $CI_JOB_STATUS [${SECRET_LOCAL:-}]" >> ../ran.log']
no-retry-for-this-code:
  retry: {max: 2, exit_codes: [9]}
  script: ['echo try >> ../ran.log', 'exit 4']
"#;
    let (_t, p) = nested(&[(".gitlab-ci.yml", yaml)]);
    let t0 = Instant::now();
    let (s, _) = run_dir(&p, &ExecOptions::with_parallelism(4));
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    let flaky = s.jobs.iter().find(|j| j.name == "flaky").unwrap();
    assert_eq!((flaky.status, flaky.attempts), (JobStatus::Success, 3));
    let slow = s.jobs.iter().find(|j| j.name == "slow").unwrap();
    assert_eq!(slow.status, JobStatus::Failed);
    assert!(
        slow.reason.as_deref().unwrap().contains("timed out"),
        "{slow:?}"
    );
    assert_eq!(
        ran(&p),
        ["after post failed []", "after slow failed", "try"]
    );
}

#[test]
fn manual_jobs_run_only_when_asked() {
    let yaml = r#"
deploy: {when: manual, script: ['echo deploy >> ../ran.log']}
build: {script: ['echo build >> ../ran.log']}
"#;
    let (_t, p) = nested(&[(".gitlab-ci.yml", yaml)]);
    let (s, _) = run_dir(&p, &opts());
    assert_eq!(ran(&p), ["build"]);
    assert_eq!(status(&s, "deploy").0, &JobStatus::Manual);
    assert_eq!(s.status, PipelineStatus::Success);
    let mut o = opts();
    o.manual = ManualJobs::Named(vec!["deploy".into()]);
    run_dir(&p, &o);
    assert_eq!(ran(&p), ["build", "deploy"]);
    let mut o = opts();
    o.only = vec!["build".into()];
    let (s, _) = run_dir(&p, &o);
    assert_eq!(s.jobs.len(), 1);
    assert_eq!(ran(&p), ["build"]);
}

#[test]
fn independent_jobs_run_in_parallel() {
    // Each job waits for the other to have started: only -j 2 can finish.
    let yaml = r#"
a: {script: ['touch ../a.started', 'for i in $(seq 100); do [ -f ../b.started ] && exit 0; sleep 0.05; done; exit 1']}
b: {script: ['touch ../b.started', 'for i in $(seq 100); do [ -f ../a.started ] && exit 0; sleep 0.05; done; exit 1']}
"#;
    let (_t, p) = nested(&[(".gitlab-ci.yml", yaml)]);
    let (s, _) = run_dir(&p, &ExecOptions::with_parallelism(2));
    assert_eq!(s.status, PipelineStatus::Success, "{:?}", s.jobs);
}

#[test]
fn cancel_kills_every_job_process_group() {
    let yaml = r#"
long:
  script:
    - sleep 60 & echo $! > ../bg.pid
    - sleep 60
other: {script: ['sleep 60']}
next: {stage: deploy, script: ['echo next >> ../ran.log']}
"#;
    let (_t, p) = nested(&[(".gitlab-ci.yml", yaml)]);
    let plan = plan_dir(&p).unwrap();
    let token = CancelToken::new();
    let t2 = token.clone();
    let pidfile = p.parent().unwrap().join("bg.pid");
    let pf = pidfile.clone();
    std::thread::spawn(move || {
        for _ in 0..200 {
            if pf.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        std::thread::sleep(Duration::from_millis(100));
        t2.cancel();
    });
    let t0 = Instant::now();
    let (s, _) = run_planned(&plan, &ExecOptions::with_parallelism(2), token);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert_eq!(s.status, PipelineStatus::Canceled);
    assert_eq!(status(&s, "long").0, &JobStatus::Canceled);
    assert_eq!(status(&s, "next").0, &JobStatus::Canceled);
    assert!(ran(&p).is_empty());
    let pid = fs::read_to_string(&pidfile).unwrap().trim().to_string();
    let gone = (0..80).any(|_| {
        let st = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let dead = st.is_empty() || st.contains(") Z");
        if !dead {
            std::thread::sleep(Duration::from_millis(50));
        }
        dead
    });
    assert!(gone, "background process {pid} survived the cancel");
}

#[test]
fn the_seed_pipeline_runs_then_is_fully_cached() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed-pipeline");
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("seed");
    for e in walkdir::WalkDir::new(&src) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().to_string());
        if matches!(
            top.as_deref(),
            Some(".keel" | "models" | "metrics" | "reports" | "deploy")
        ) || rel.starts_with("data/processed")
        {
            continue;
        }
        if e.file_type().is_dir() {
            fs::create_dir_all(p.join(rel)).unwrap();
        } else if !rel.to_string_lossy().contains("__pycache__") {
            fs::copy(e.path(), p.join(rel)).unwrap();
        }
    }
    let python = std::env::var("KEEL_PYTHON").unwrap_or_else(|_| "python3".into());
    let plan = crate::plan_with(&p, &[("PYTHON", &python)]).unwrap();
    let (s, lines) = run_planned(&plan, &opts(), CancelToken::new());
    assert_eq!(
        s.status,
        PipelineStatus::Success,
        "{:?}\n{}",
        s.jobs,
        lines.join("\n")
    );
    assert_eq!(s.jobs.len(), 8);
    assert!(p.join("deploy/model.json").exists());
    let (s, lines) = run_planned(&plan, &opts(), CancelToken::new());
    assert_eq!(s.status, PipelineStatus::Success, "{}", lines.join("\n"));
    let cached: Vec<&str> = s
        .jobs
        .iter()
        .filter(|j| j.cached)
        .map(|j| j.name.as_str())
        .collect();
    assert_eq!(cached.len(), 6, "prepare, 4 train, evaluate: {cached:?}");
}

#[test]
fn keel_store_backend_caches_restores_and_records_lineage() {
    use keel_pipeline::keelstore::KeelStore;
    use keel_pipeline::store::RunHistory;
    let (_t, p) = nested(&[
        (".gitlab-ci.yml", CACHED),
        ("raw.txt", "raw v1\n"),
        ("params.yaml", "train:\n  lr: 0.1\n"),
    ]);
    keel_store::Project::init(&p, &keel_store::Overrides::default()).unwrap();
    let plan = plan_dir(&p).unwrap();
    let run = |plan: &keel_pipeline::pipeline::Pipeline| {
        let store = KeelStore::open(&p, &keel_store::Overrides::default()).unwrap();
        let sink = |_: &keel_pipeline::exec::Event<'_>| {};
        let runner = keel_pipeline::exec::Runner {
            pipeline: plan,
            store: &store,
            cache: &store,
            recorder: &store,
            events: &sink,
            cancel: CancelToken::new(),
        };
        keel_pipeline::exec::run(&runner, &opts()).unwrap()
    };
    let s = run(&plan);
    assert_eq!(s.status, PipelineStatus::Success, "{:?}", s.jobs);
    assert_eq!(ran(&p), ["prep", "report", "side", "train"]);
    fs::remove_dir_all(p.join("data")).unwrap();
    fs::remove_file(p.join("model.txt")).unwrap();
    let s = run(&plan);
    assert_eq!(ran(&p), ["side"]);
    assert!(status(&s, "prep").1 && status(&s, "train").1 && status(&s, "report").1);
    assert_eq!(fs::read_to_string(p.join("data/sub/x")).unwrap(), "extra\n");
    assert!(fs::read_to_string(p.join("model.txt"))
        .unwrap()
        .starts_with("raw v1"));
    let runs = KeelStore::open(&p, &keel_store::Overrides::default())
        .unwrap()
        .runs()
        .unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].status, "success");
    let train = runs[1].jobs.iter().find(|j| j.name == "train").unwrap();
    assert!(train.cached);
    assert_eq!(train.metrics.get("loss"), Some(&0.1));
    assert_eq!(train.inputs[0].path, "data");
    assert_eq!(train.outputs.len(), 2, "model.txt and metrics.json");
    // The outs are objects in the project's store, named by content.
    let model_hash = train
        .outputs
        .iter()
        .find(|o| o.path == "model.txt")
        .unwrap()
        .content
        .hash;
    let obj = p
        .join(".keel/objects")
        .join(&model_hash.to_string()[..2])
        .join(&model_hash.to_string()[2..]);
    assert!(obj.is_file(), "{}", obj.display());
}
