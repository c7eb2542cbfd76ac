//! keel-pipeline's integration tests: one binary, one module per area.

mod errors; // malformed files: one clear error each, with line and column
mod run; // the executor on real bash pipelines: caching, DAG, failures
mod schema; // example pipelines against GitLab's CI JSON schema
mod semantics; // GitLab keyword semantics, planned without running

use std::path::Path;
use std::sync::Mutex;

use keel_pipeline::exec::{self, CancelToken, Event, ExecOptions, RunSummary};
use keel_pipeline::pipeline::{self, Pipeline, RunContext};
use keel_pipeline::store::FileStore;

/// A temporary project with these files.
pub fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        write(dir.path(), path, text);
    }
    dir
}

pub fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Loads and plans `.gitlab-ci.yml` in `dir`.
pub fn plan_dir(dir: &Path) -> keel_pipeline::Result<Pipeline> {
    plan_with(dir, &[])
}

pub fn plan_with(dir: &Path, vars: &[(&str, &str)]) -> keel_pipeline::Result<Pipeline> {
    let cfg = keel_pipeline::config::load(dir, Path::new(".gitlab-ci.yml"))?;
    let mut ctx = RunContext::detect(dir);
    ctx.variables = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    pipeline::plan(&cfg, &ctx)
}

/// Plans a one-file pipeline.
pub fn plan_yaml(yaml: &str) -> (tempfile::TempDir, Pipeline) {
    let dir = project(&[(".gitlab-ci.yml", yaml)]);
    let p = plan_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    (dir, p)
}

/// The error planning `yaml` gives.
pub fn error_of(yaml: &str) -> keel_pipeline::Error {
    let dir = project(&[(".gitlab-ci.yml", yaml)]);
    match plan_dir(dir.path()) {
        Ok(p) => panic!("expected an error, planned {} jobs", p.jobs.len()),
        Err(e) => e,
    }
}

/// Runs the pipeline in `dir` with the file-backed store; returns the
/// summary and every output line as `job|line`.
pub fn run_dir(dir: &Path, opts: &ExecOptions) -> (RunSummary, Vec<String>) {
    let p = plan_dir(dir).unwrap_or_else(|e| panic!("{e}"));
    run_planned(&p, opts, CancelToken::new())
}

pub fn run_planned(
    p: &Pipeline,
    opts: &ExecOptions,
    cancel: CancelToken,
) -> (RunSummary, Vec<String>) {
    let store = FileStore::new(&p.project_dir.join(".keel"));
    let lines = Mutex::new(Vec::new());
    let sink = |e: &Event<'_>| {
        if let Event::Output { job, line } = e {
            lines.lock().unwrap().push(format!("{job}|{line}"));
        }
    };
    let runner = exec::Runner {
        pipeline: p,
        store: &store,
        cache: &store,
        recorder: &store,
        events: &sink,
        cancel,
    };
    let s = exec::run(&runner, opts).unwrap_or_else(|e| panic!("{e}"));
    (s, lines.into_inner().unwrap())
}
