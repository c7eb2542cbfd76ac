//! `keel run`, `keel pipeline lint` and `keel exp show`: glue over
//! `keel_pipeline`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use keel_pipeline::exec::{
    self, CancelToken, Event, ExecOptions, JobStatus, ManualJobs, PipelineStatus,
};
use keel_pipeline::keelstore::KeelStore;
use keel_pipeline::store::{FileStore, OutputStore, RunCache, RunHistory, RunRecorder};

use super::{CheckFailed, Global};
use crate::output;

/// `keel run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The pipeline file.
    #[arg(default_value = ".gitlab-ci.yml", value_name = "FILE")]
    file: PathBuf,
    /// Jobs to run at once.
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = default_parallelism())]
    parallelism: usize,
    /// Run only this job (instance or base name) and what it needs; repeatable.
    #[arg(long = "job", value_name = "NAME")]
    only: Vec<String>,
    /// Also run `when: manual` jobs: all of them, or those named (repeatable).
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    manual: Vec<String>,
    /// Ignore the run-cache: run every script (results still fill the cache).
    #[arg(long)]
    force: bool,
    /// A pipeline variable, KEY=VALUE (highest precedence, as GitLab's); repeatable.
    #[arg(long = "var", value_name = "KEY=VALUE")]
    vars: Vec<String>,
}

fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// `keel pipeline …`.
#[derive(Subcommand, Debug)]
pub enum PipelineCommand {
    /// Check a pipeline file: YAML, GitLab keywords, needs DAG, .keel section.
    Lint {
        /// The pipeline file.
        #[arg(default_value = ".gitlab-ci.yml", value_name = "FILE")]
        file: PathBuf,
    },
}

/// `keel exp …`.
#[derive(Subcommand, Debug)]
pub enum ExpCommand {
    /// Params × metrics of recorded pipeline jobs, with a diff against a baseline.
    Show {
        /// Baseline run id (or a prefix); default: the last successful run on the default branch.
        #[arg(long, value_name = "RUN")]
        baseline: Option<String>,
        /// Show cached reruns too (by default each experiment appears once).
        #[arg(long)]
        all: bool,
    },
}

fn load(
    global: &Global,
    file: &std::path::Path,
    vars: &[(String, String)],
) -> anyhow::Result<keel_pipeline::pipeline::Pipeline> {
    let dir = global.cwd()?;
    let file = if file.is_absolute() {
        file.strip_prefix(&dir)
            .map(PathBuf::from)
            .unwrap_or_else(|_| file.to_path_buf())
    } else {
        file.to_path_buf()
    };
    let cfg = keel_pipeline::config::load(&dir, &file)?;
    let mut ctx = keel_pipeline::pipeline::RunContext::detect(&dir);
    ctx.variables = vars.to_vec();
    Ok(keel_pipeline::pipeline::plan(&cfg, &ctx)?)
}

/// `keel run`.
pub fn run(global: &Global, args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut vars = Vec::new();
    for v in &args.vars {
        let Some((k, val)) = v.split_once('=') else {
            bail!("--var {v:?}: expected KEY=VALUE");
        };
        vars.push((k.to_string(), val.to_string()));
    }
    let pipeline = load(global, &args.file, &vars)?;
    for w in &pipeline.warnings {
        eprintln!("{w}");
    }
    if !pipeline.created {
        eprintln!("keel: workflow:rules created no pipeline; nothing to run");
        return Ok(ExitCode::SUCCESS);
    }
    // keel's object store and metadata DB when in a keel project (`keel
    // init`), else plain files under .keel/ next to the pipeline.
    let keel = if keel_store::Project::discover(&pipeline.project_dir).is_ok() {
        Some(KeelStore::open(&pipeline.project_dir, &global.overrides())?)
    } else {
        None
    };
    let files = FileStore::new(&pipeline.project_dir.join(".keel"));
    let (store, cache, recorder): (&dyn OutputStore, &dyn RunCache, &dyn RunRecorder) = match &keel
    {
        Some(k) => (k, k, k),
        None => (&files, &files, &files),
    };
    // In a keel project, the tracking API serves on an ephemeral loopback
    // port while jobs run: they get MLFLOW_TRACKING_URI and MLFLOW_RUN_ID of
    // their own tracking run. It starts when the first job executes a
    // script, so a fully cached rerun does not pay for it.
    let server: Arc<Mutex<Option<keel_server::Server>>> = Arc::default();
    if let Some(ks) = &keel {
        let slot = server.clone();
        ks.set_tracking_server(Box::new(move |ks: &KeelStore| {
            let addr = "127.0.0.1:0"
                .parse()
                .map_err(|e| keel_pipeline::Error::Store(format!("loopback address: {e}")))?;
            let s = ks
                .block_on(keel_server::spawn(
                    ks.store().clone(),
                    addr,
                    keel_server::Config::loopback(),
                ))
                .map_err(|e| keel_pipeline::Error::Store(e.to_string()))?;
            let uri = format!("http://{}", s.addr);
            if let Ok(mut slot) = slot.lock() {
                *slot = Some(s);
            }
            Ok(uri)
        }));
    }
    // Whatever happens next, the server (if it started) stops when this
    // returns.
    let _server = ServerGuard {
        server: &server,
        store: keel.as_ref(),
    };
    let cancel = CancelToken::new();
    cancel
        .cancel_on_ctrl_c()
        .context("installing the Ctrl-C handler")?;
    let width = pipeline
        .jobs
        .iter()
        .map(|j| j.name.chars().count())
        .max()
        .unwrap_or(0)
        .min(32);
    // Job output goes to stdout, or stderr when stdout carries JSON.
    let out = Mutex::new(());
    let json = global.json;
    let sink = |e: &Event<'_>| {
        let _guard = out.lock();
        let line = match e {
            Event::JobStarted { job } => format!("{job:<width$} ▶ started"),
            Event::Output { job, line } => format!("{job:<width$} │ {line}"),
            Event::JobFinished(s) => {
                let what = match (s.status, s.cached) {
                    (JobStatus::Success, true) => "✓ cached, outs restored".to_string(),
                    (status, _) => format!(
                        "{} {}{}",
                        if status == JobStatus::Success {
                            "✓"
                        } else {
                            "•"
                        },
                        status.as_str(),
                        s.reason
                            .as_ref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    ),
                };
                format!(
                    "{:<width$} {what} in {:.2}s",
                    s.name,
                    s.duration.as_secs_f64()
                )
            }
        };
        if json {
            eprintln!("{line}");
        } else {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{line}");
        }
    };
    let manual = match args.manual.as_slice() {
        [] => ManualJobs::None,
        names if names.iter().any(String::is_empty) => ManualJobs::All,
        names => ManualJobs::Named(names.to_vec()),
    };
    let opts = ExecOptions {
        parallelism: args.parallelism.max(1),
        manual,
        only: args.only,
        force: args.force,
        shell: exec::Shell::detect(),
    };
    let runner = exec::Runner {
        pipeline: &pipeline,
        store,
        cache,
        recorder,
        events: &sink,
        cancel,
    };
    let summary = exec::run(&runner, &opts)?;
    if global.json {
        println!("{}", serde_json::to_string_pretty(&summary.record)?);
    } else {
        println!();
        let rows: Vec<Vec<String>> = summary
            .jobs
            .iter()
            .map(|j| {
                vec![
                    j.name.clone(),
                    j.stage.clone(),
                    j.status.as_str().to_string(),
                    if j.cached { "yes".into() } else { "no".into() },
                    format!("{:.2}s", j.duration.as_secs_f64()),
                ]
            })
            .collect();
        output::table(&["job", "stage", "status", "cached", "duration"], &rows);
        let cached = summary.jobs.iter().filter(|j| j.cached).count();
        println!(
            "\npipeline {} in {:.2}s ({} jobs, {cached} cached); run {} (logs in .keel/runs/{})",
            summary.status.as_str(),
            summary.duration.as_secs_f64(),
            summary.jobs.len(),
            summary.run_id,
            summary.run_id
        );
    }
    match summary.status {
        PipelineStatus::Success | PipelineStatus::NotCreated => Ok(ExitCode::SUCCESS),
        PipelineStatus::Failed => Err(CheckFailed("pipeline failed".into()).into()),
        PipelineStatus::Canceled => Err(CheckFailed("pipeline canceled".into()).into()),
    }
}

/// Stops the pipeline's tracking server when dropped (success, error,
/// cancel or panic alike).
struct ServerGuard<'a> {
    server: &'a Mutex<Option<keel_server::Server>>,
    store: Option<&'a KeelStore>,
}

impl Drop for ServerGuard<'_> {
    fn drop(&mut self) {
        let server = self.server.lock().ok().and_then(|mut s| s.take());
        if let (Some(server), Some(store)) = (server, self.store) {
            store.block_on(server.shutdown());
        }
    }
}

/// `keel pipeline …`.
pub fn pipeline(global: &Global, cmd: PipelineCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PipelineCommand::Lint { file } => {
            let p = load(global, &file, &[])?;
            for w in &p.warnings {
                eprintln!("{w}");
            }
            if global.json {
                let jobs: Vec<serde_json::Value> = p
                    .jobs
                    .iter()
                    .map(|j| {
                        serde_json::json!({
                            "name": j.name,
                            "stage": j.stage,
                            "needs": j.preds.iter().map(|&i| p.jobs[i].name.clone()).collect::<Vec<_>>(),
                            "cached": j.keel.is_some(),
                        })
                    })
                    .collect();
                let warnings: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"file": p.file.display().to_string(), "created": p.created, "jobs": jobs, "warnings": warnings})
                    )?
                );
            } else {
                println!(
                    "{}: ok: {} jobs in {} stages{}",
                    p.file.display(),
                    p.jobs.len(),
                    p.stages.len(),
                    if p.created {
                        ""
                    } else {
                        " (workflow:rules would create no pipeline)"
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `keel exp …`.
pub fn exp(global: &Global, cmd: ExpCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ExpCommand::Show { baseline, all } => {
            let dir = global.cwd()?;
            let runs = if keel_store::Project::discover(&dir).is_ok() {
                KeelStore::open(&dir, &global.overrides())?.runs()?
            } else {
                FileStore::new(&dir.join(".keel")).runs()?
            };
            let git = keel_pipeline::pipeline::GitInfo::detect(&dir);
            let t =
                keel_pipeline::exp::table(&runs, baseline.as_deref(), &git.default_branch, all)?;
            if global.json {
                let rows: Vec<serde_json::Value> = t
                    .rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "run_id": r.run_id, "job": r.job, "cached": r.cached,
                            "git_commit": r.git_commit, "params": r.params,
                            "metrics": r.metrics, "delta": r.delta,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"baseline": t.baseline, "params": t.params, "metrics": t.metrics, "rows": rows})
                    )?
                );
                return Ok(ExitCode::SUCCESS);
            }
            if t.rows.is_empty() {
                println!("no recorded jobs with params or metrics yet (keel run first)");
                return Ok(ExitCode::SUCCESS);
            }
            let mut headers: Vec<String> = vec!["run".into(), "job".into()];
            headers.extend(t.params.iter().cloned());
            for m in &t.metrics {
                headers.push(m.clone());
                if t.baseline.is_some() {
                    headers.push(format!("Δ {m}"));
                }
            }
            let rows: Vec<Vec<String>> = t
                .rows
                .iter()
                .map(|r| {
                    let mut row = vec![short_id(&r.run_id), r.job.clone()];
                    row.extend(
                        t.params
                            .iter()
                            .map(|p| r.params.get(p).cloned().unwrap_or_else(|| "-".into())),
                    );
                    for m in &t.metrics {
                        row.push(r.metrics.get(m).map_or("-".into(), |v| format!("{v:.4}")));
                        if t.baseline.is_some() {
                            row.push(r.delta.get(m).map_or("-".into(), |v| format!("{v:+.4}")));
                        }
                    }
                    row
                })
                .collect();
            let h: Vec<&str> = headers.iter().map(String::as_str).collect();
            output::table(&h, &rows);
            if let Some(b) = &t.baseline {
                println!("\nbaseline: run {b}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The random tail of a UUIDv7 run id (its head is a timestamp, the same
/// for runs made the same day); `--baseline` accepts it too.
fn short_id(id: &str) -> String {
    id.chars()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}
