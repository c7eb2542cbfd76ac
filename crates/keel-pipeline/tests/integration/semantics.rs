//! GitLab semantics, checked on the planned pipeline.

use keel_pipeline::config::{AllowFailure, When};
use keel_pipeline::pipeline::Job;

use crate::{plan_dir, plan_with, plan_yaml, project};

fn env<'a>(j: &'a Job, name: &str) -> Option<&'a str> {
    j.env
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn job<'a>(p: &'a keel_pipeline::pipeline::Pipeline, name: &str) -> &'a Job {
    p.jobs.iter().find(|j| j.name == name).unwrap_or_else(|| {
        panic!(
            "no job {name:?} in {:?}",
            p.jobs.iter().map(|j| &j.name).collect::<Vec<_>>()
        )
    })
}

#[test]
fn matrix_and_parallel_instances_are_named_as_gitlab_names_them() {
    let (_d, p) = plan_yaml(
        "
train:
  parallel:
    matrix:
      - LR: [0.1, 0.01]
        OPT: [adam, sgd]
      - LR: '1'
        OPT: lbfgs
  script: [echo]
test:
  parallel: 3
  script: [echo]
",
    );
    let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "train: [0.1, adam]",
            "train: [0.1, sgd]",
            "train: [0.01, adam]",
            "train: [0.01, sgd]",
            "train: [1, lbfgs]",
            "test 1/3",
            "test 2/3",
            "test 3/3"
        ]
    );
    let t = job(&p, "train: [0.01, sgd]");
    assert_eq!(env(t, "LR"), Some("0.01"));
    assert_eq!(env(t, "OPT"), Some("sgd"));
    assert_eq!(env(t, "CI_NODE_INDEX"), Some("4"));
    assert_eq!(env(t, "CI_NODE_TOTAL"), Some("5"));
    assert_eq!(env(t, "CI_JOB_NAME"), Some("train: [0.01, sgd]"));
    assert_eq!(env(job(&p, "test 2/3"), "CI_NODE_INDEX"), Some("2"));
}

#[test]
fn predefined_variables_are_set_like_gitlab_with_gitlab_ci_false() {
    let (d, p) = plan_yaml("build-it:\n  stage: build\n  script: [echo]\n");
    let j = &p.jobs[0];
    assert_eq!(env(j, "CI"), Some("true"));
    assert_eq!(env(j, "GITLAB_CI"), Some("false"));
    assert_eq!(env(j, "CI_JOB_NAME"), Some("build-it"));
    assert_eq!(env(j, "CI_JOB_STAGE"), Some("build"));
    assert_eq!(env(j, "CI_PROJECT_DIR"), Some(d.path().to_str().unwrap()));
    assert_eq!(env(j, "CI_PIPELINE_SOURCE"), Some("push"));
    assert!(env(j, "CI_COMMIT_SHA").is_some_and(|s| s.len() == 40));
    assert!(env(j, "CI_PIPELINE_ID").is_some());
    assert_eq!(
        env(j, "CI_NODE_INDEX"),
        None,
        "only parallel jobs get CI_NODE_INDEX"
    );
}

#[test]
fn variables_follow_gitlab_precedence_and_expansion() {
    let (_d, p) = plan_yaml(
        r#"
variables:
  BASE: /data
  DIR: ${BASE}/raw
  WHO: global
  LITERAL: {value: "$BASE", expand: false}
  COST: "$$5"
j:
  variables:
    WHO: job
    OUT: $DIR/$CI_JOB_NAME
  script: [echo]
k:
  inherit:
    variables: [BASE]
  script: [echo]
"#,
    );
    let j = job(&p, "j");
    assert_eq!(env(j, "WHO"), Some("job"));
    assert_eq!(env(j, "DIR"), Some("/data/raw"));
    assert_eq!(env(j, "OUT"), Some("/data/raw/j"));
    assert_eq!(env(j, "LITERAL"), Some("$BASE"));
    assert_eq!(env(j, "COST"), Some("$5"));
    let k = job(&p, "k");
    assert_eq!(env(k, "BASE"), Some("/data"));
    assert_eq!(env(k, "WHO"), None, "inherit:variables limits globals");
    let (_d, p) = plan_yaml("variables: {A: yaml}\nj: {script: [echo]}\n");
    let _ = p;
    let d = project(&[(
        ".gitlab-ci.yml",
        "variables: {A: yaml}\nj: {script: [echo]}\n",
    )]);
    let p = plan_with(d.path(), &[("A", "cli")]).unwrap();
    assert_eq!(env(&p.jobs[0], "A"), Some("cli"), "pipeline variables win");
}

#[test]
fn extends_deep_merges_hashes_and_replaces_arrays_over_levels() {
    let (_d, p) = plan_yaml(
        "
.base:
  variables: {A: base, B: base}
  script: [echo base]
  artifacts: {paths: [a/], expire_in: 1 day}
.mid:
  extends: .base
  variables: {B: mid, C: mid}
  retry: 1
job:
  extends: [.mid]
  variables: {C: job}
  artifacts: {paths: [b/]}
  script: [echo job]
",
    );
    let j = job(&p, "job");
    assert_eq!(env(j, "A"), Some("base"));
    assert_eq!(env(j, "B"), Some("mid"));
    assert_eq!(env(j, "C"), Some("job"));
    assert_eq!(j.script, ["echo job"]);
    assert_eq!(j.artifacts.paths, ["b/"], "arrays are replaced");
    assert_eq!(
        j.artifacts.expire_in.as_deref(),
        Some("1 day"),
        "hashes are merged"
    );
    assert_eq!(j.retry.max, 1);
}

#[test]
fn anchors_merge_keys_and_reference_tags_resolve() {
    let (_d, p) = plan_yaml(
        "
.setup: &setup
  before_script: [echo setup]
  variables: {X: '1'}
.lib:
  script: [echo lib-a, echo lib-b]
j:
  <<: *setup
  script:
    - echo first
    - !reference [.lib, script]
",
    );
    let j = job(&p, "j");
    assert_eq!(j.before_script, ["echo setup"]);
    assert_eq!(j.script, ["echo first", "echo lib-a", "echo lib-b"]);
    assert_eq!(env(j, "X"), Some("1"));
}

#[test]
fn default_applies_unless_the_job_sets_or_opts_out() {
    let (_d, p) = plan_yaml(
        "
default:
  before_script: [echo default]
  timeout: 90m
  image: alpine
a: {script: [echo]}
b: {script: [echo], before_script: [echo own]}
c:
  script: [echo]
  inherit: {default: false}
",
    );
    assert_eq!(job(&p, "a").before_script, ["echo default"]);
    assert_eq!(job(&p, "a").timeout.unwrap().as_secs(), 5400);
    assert_eq!(job(&p, "b").before_script, ["echo own"]);
    assert!(job(&p, "c").before_script.is_empty());
    assert!(job(&p, "c").timeout.is_none());
    let ignored: Vec<_> = p
        .warnings
        .iter()
        .filter(|w| w.message.contains("`image`"))
        .collect();
    assert_eq!(
        ignored.len(),
        1,
        "ignored keys are reported once: {:?}",
        p.warnings
    );
}

#[test]
fn ignored_keys_are_accepted_and_reported_once() {
    let (_d, p) = plan_yaml(
        "
a: {script: [echo], tags: [gpu], environment: prod, interruptible: true}
b: {script: [echo], tags: [cpu], cache: {paths: [x/]}}
",
    );
    let tags = p
        .warnings
        .iter()
        .filter(|w| w.message.contains("`tags`"))
        .count();
    assert_eq!(tags, 1, "{:?}", p.warnings);
    assert!(p
        .warnings
        .iter()
        .any(|w| w.message.contains("`environment`")));
    assert!(p
        .warnings
        .iter()
        .any(|w| w.message.contains("`cache`") && w.pos.line == 3));
}

#[test]
fn rules_decide_inclusion_when_allow_failure_and_variables() {
    let (_d, p) = plan_yaml(
        r#"
variables: {MODE: fast}
always-in:
  script: [echo]
  rules:
    - if: $GITLAB_CI == "false" && ($MODE == "fast" || $NOPE)
      variables: {PICKED: first}
    - when: never
never-in:
  script: [echo]
  rules:
    - if: $MODE =~ /^FAST$/i
      when: never
    - when: always
no-match:
  script: [echo]
  rules:
    - if: $MODE == "slow"
manual-rule:
  script: [echo]
  rules:
    - if: $CI_JOB_NAME == "manual-rule"
      when: manual
manual-job:
  script: [echo]
  when: manual
uses-job-var:
  variables: {FLAG: "on"}
  script: [echo]
  rules:
    - if: $FLAG
exists:
  script: [echo]
  rules:
    - exists: [nothing-here/*.txt]
    - if: $MODE != null
      when: on_failure
"#,
    );
    let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "always-in",
            "manual-rule",
            "manual-job",
            "uses-job-var",
            "exists"
        ]
    );
    let a = job(&p, "always-in");
    assert_eq!(env(a, "PICKED"), Some("first"));
    assert_eq!(job(&p, "manual-rule").when, When::Manual);
    assert_eq!(
        job(&p, "manual-rule").allow_failure,
        AllowFailure::Bool(false),
        "manual in rules blocks"
    );
    assert_eq!(
        job(&p, "manual-job").allow_failure,
        AllowFailure::Bool(true),
        "manual outside rules does not"
    );
    assert_eq!(job(&p, "exists").when, When::OnFailure);
}

#[test]
fn workflow_rules_can_stop_the_pipeline() {
    let yaml = "
workflow:
  rules:
    - if: $RUN == \"yes\"
      variables: {FROM_WORKFLOW: '1'}
j: {script: [echo]}
";
    let d = project(&[(".gitlab-ci.yml", yaml)]);
    let p = plan_dir(d.path()).unwrap();
    assert!(!p.created);
    assert!(p.jobs.is_empty());
    let p = plan_with(d.path(), &[("RUN", "yes")]).unwrap();
    assert!(p.created);
    assert_eq!(env(&p.jobs[0], "FROM_WORKFLOW"), Some("1"));
}

#[test]
fn needs_build_a_dag_and_stages_order_the_rest() {
    let (_d, p) = plan_yaml(
        "
stages: [prep, train, report]
prep: {stage: prep, script: [echo], artifacts: {paths: [d/]}}
lint: {stage: prep, script: [echo]}
train:
  stage: train
  needs: [prep]
  parallel: {matrix: [{LR: ['1', '2']}]}
  script: [echo]
eval:
  stage: report
  needs:
    - job: train
      parallel: {matrix: [{LR: '2'}]}
    - {job: prep, artifacts: false}
  script: [echo]
early: {stage: report, needs: [], script: [echo]}
summary: {stage: report, script: [echo], dependencies: [prep]}
",
    );
    let ix = |n: &str| p.index_of(n).unwrap();
    let names = |v: &[usize]| {
        v.iter()
            .map(|&i| p.jobs[i].name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&job(&p, "train: [1]").preds), ["prep"]);
    assert_eq!(names(&job(&p, "eval").preds), ["train: [2]", "prep"]);
    assert_eq!(names(&job(&p, "eval").artifact_sources), ["train: [2]"]);
    assert!(job(&p, "early").preds.is_empty());
    let s = job(&p, "summary");
    assert_eq!(s.preds.len(), 4, "no needs: every job of earlier stages");
    assert_eq!(
        s.artifact_sources,
        [ix("prep")],
        "dependencies limit artifacts"
    );
}

#[test]
fn include_local_merges_files_and_the_including_file_wins() {
    let d = project(&[
        (
            ".gitlab-ci.yml",
            "include:\n  - local: ci/common.yml\n  - ci/extra/*.yml\nvariables: {WHO: main}\nj: {extends: .tpl, script: [echo main]}\n",
        ),
        ("ci/common.yml", "variables: {WHO: common, ONLY_COMMON: '1'}\n.tpl: {before_script: [echo tpl]}\n"),
        ("ci/extra/x.yml", "extra-job: {script: [echo x]}\n"),
    ]);
    let p = plan_dir(d.path()).unwrap();
    let j = job(&p, "j");
    assert_eq!(env(j, "WHO"), Some("main"));
    assert_eq!(env(j, "ONLY_COMMON"), Some("1"));
    assert_eq!(j.before_script, ["echo tpl"]);
    assert!(p.index_of("extra-job").is_some());
}

#[test]
fn keel_entries_expand_per_matrix_instance_and_default_outs_to_artifacts() {
    let (_d, p) = plan_yaml(
        r#"
.keel:
  jobs:
    train:
      deps: [train.py]
      params: [train.epochs]
      outs: ["models/m-${LR}.bin"]
      metrics: ["metrics/$LR.json"]
    prep:
      deps: [raw/]
train:
  parallel: {matrix: [{LR: ['0.1', '0.2']}]}
  script: [echo]
prep:
  script: [echo]
  artifacts: {paths: [data/]}
"#,
    );
    let k = job(&p, "train: [0.2]").keel.clone().unwrap();
    assert_eq!(k.outs, ["models/m-0.2.bin"]);
    assert_eq!(k.metrics, ["metrics/0.2.json"]);
    assert_eq!(k.params, ["train.epochs"]);
    assert_eq!(job(&p, "prep").keel.clone().unwrap().outs, ["data/"]);
}

#[test]
fn the_seed_pipeline_plans_as_documented() {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed-pipeline");
    let p = plan_dir(&root).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "prepare",
            "train: [0.1, sgd]",
            "train: [0.1, momentum]",
            "train: [0.01, sgd]",
            "train: [0.01, momentum]",
            "test",
            "evaluate",
            "deploy"
        ]
    );
    assert_eq!(
        job(&p, "prepare").artifacts.expire_in.as_deref(),
        Some("1 week")
    );
    assert_eq!(
        job(&p, "evaluate").script[0],
        "$PYTHON --version",
        "!reference resolved"
    );
    assert!(p.warnings.iter().any(|w| w.message.contains("`image`")));
}

#[test]
fn only_and_except_select_jobs_by_ref_source_variables_and_changes() {
    let yaml = r#"
variables: {DEPLOY: "yes"}
named: {script: [echo], only: [main, /^release-.*$/]}
branches: {script: [echo], only: [branches]}
tags: {script: [echo], only: [tags]}
schedules: {script: [echo], only: [schedules]}
not-scheduled: {script: [echo], except: [schedules]}
any-variable: {script: [echo], only: {variables: [$NOPE, '$DEPLOY == "yes"']}}
refs-and-variables: {script: [echo], only: {refs: [main], variables: ['$DEPLOY == "no"']}}
except-variable: {script: [echo], except: {variables: [$DEPLOY]}}
except-any-key: {script: [echo], except: {refs: [nope], variables: [$DEPLOY]}}
changed: {script: [echo], only: {changes: [src/**/*]}}
unchanged: {script: [echo], only: {changes: [docs/*]}}
kube: {script: [echo], only: {kubernetes: active}}
"#;
    let d = project(&[(".gitlab-ci.yml", yaml), ("src/a.txt", "a")]);
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(d.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "init"]);
    // An uncommitted change under src/: `changes` sees it.
    std::fs::write(d.path().join("src/a.txt"), "changed").unwrap();
    let names = |p: &keel_pipeline::pipeline::Pipeline| -> Vec<String> {
        p.jobs.iter().map(|j| j.name.clone()).collect()
    };

    // A push to branch main.
    let p = plan_dir(d.path()).unwrap();
    assert_eq!(
        names(&p),
        [
            "named",
            "branches",
            "not-scheduled",
            "any-variable",
            "changed",
            "kube"
        ]
    );
    assert!(
        p.warnings
            .iter()
            .any(|w| w.message.contains("kube.only.kubernetes")),
        "{:?}",
        p.warnings
    );

    // A scheduled pipeline on a release ref (what GitLab would set).
    let p = plan_with(
        d.path(),
        &[
            ("CI_PIPELINE_SOURCE", "schedule"),
            ("CI_COMMIT_REF_NAME", "release-2"),
            ("DEPLOY", ""),
        ],
    )
    .unwrap();
    assert_eq!(
        names(&p),
        [
            "named",
            "branches",
            "schedules",
            "except-variable",
            "except-any-key",
            "changed",
            "kube"
        ]
    );
}
