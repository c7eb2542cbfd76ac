//! The executor: runs a planned [`Pipeline`]'s DAG.
//!
//! The scheduler runs on the calling thread; each started job gets a
//! scoped thread that first tries the run-cache (jobs with a `.keel`
//! entry), then runs `before_script` + `script` in one `bash -eo pipefail`
//! (or `sh -e`) process in its own process group, with retries and a
//! timeout, then `after_script` in a separate shell, as GitLab does. Output
//! lines go to the job's log under `.keel/runs/<run-id>/` and, prefixed by
//! the job name, to the [`Event`] sink. Cancelling (Ctrl-C) sends SIGTERM
//! to every running job's process group, then SIGKILL.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel_core::ObjectHash;
use rustix::process::{kill_process_group, Pid, Signal};

use crate::config::{AllowFailure, When};
use crate::error::{Error, Result};
use crate::hash::{self, KeyInput};
use crate::pipeline::{Job, Pipeline};
use crate::store::{
    CacheEntry, JobRecord, OutputRecord, OutputStore, PipelineRecord, RunCache, RunRecorder,
};
use crate::yaml;

/// Which `when: manual` jobs to run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ManualJobs {
    /// None (the default, as on GitLab until someone clicks).
    #[default]
    None,
    /// All of them.
    All,
    /// Those with these instance or base names.
    Named(Vec<String>),
}

/// How to run.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Jobs running at once (at least 1).
    pub parallelism: usize,
    /// Manual jobs to run.
    pub manual: ManualJobs,
    /// Run only these jobs (instance or base names) and what they need.
    pub only: Vec<String>,
    /// Ignore the run-cache (still record results into it).
    pub force: bool,
    /// The shell: `bash` when found, else `sh`.
    pub shell: Shell,
}

impl ExecOptions {
    /// `-j N`, everything else default.
    pub fn with_parallelism(n: usize) -> ExecOptions {
        ExecOptions {
            parallelism: n.max(1),
            manual: ManualJobs::None,
            only: Vec::new(),
            force: false,
            shell: Shell::detect(),
        }
    }
}

/// The shell jobs run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// `bash --noprofile --norc` with `set -eo pipefail` (GitLab's bash).
    Bash,
    /// POSIX `sh` with `set -e`.
    Sh,
}

impl Shell {
    /// `bash` if it is on `PATH`, else `sh`.
    pub fn detect() -> Shell {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("bash").is_file()));
        if found {
            Shell::Bash
        } else {
            Shell::Sh
        }
    }
}

/// A job's final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// The script succeeded, or the result was restored from the cache.
    Success,
    /// The script failed.
    Failed,
    /// The script failed, but `allow_failure` tolerates it.
    AllowedFailure,
    /// Not run: an upstream job failed, or an `on_failure` job had nothing to do.
    Skipped,
    /// A `when: manual` job nobody asked for.
    Manual,
    /// Stopped by Ctrl-C.
    Canceled,
}

impl JobStatus {
    /// The lower-case word used in records and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Success => "success",
            JobStatus::Failed => "failed",
            JobStatus::AllowedFailure => "allowed_failure",
            JobStatus::Skipped => "skipped",
            JobStatus::Manual => "manual",
            JobStatus::Canceled => "canceled",
        }
    }
}

/// One row of the final summary.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSummary {
    /// Instance name.
    pub name: String,
    /// Stage.
    pub stage: String,
    /// Outcome.
    pub status: JobStatus,
    /// Whether the run-cache supplied the result.
    pub cached: bool,
    /// Wall time.
    pub duration: Duration,
    /// The script's exit code, when it ran.
    pub exit_code: Option<i32>,
    /// Attempts (1 + retries), 0 when not run.
    pub attempts: u32,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// The job's log file.
    pub log: Option<PathBuf>,
}

/// The whole run's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineStatus {
    /// Every job succeeded, was cached, or was allowed to fail.
    Success,
    /// A job failed.
    Failed,
    /// Ctrl-C.
    Canceled,
    /// `workflow:rules` created no pipeline.
    NotCreated,
}

impl PipelineStatus {
    /// The lower-case word used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineStatus::Success => "success",
            PipelineStatus::Failed => "failed",
            PipelineStatus::Canceled => "canceled",
            PipelineStatus::NotCreated => "not_created",
        }
    }
}

/// What [`run`] returns for the CLI to render.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run id (also the log directory name).
    pub run_id: String,
    /// Outcome.
    pub status: PipelineStatus,
    /// Jobs in pipeline order (only those selected).
    pub jobs: Vec<JobSummary>,
    /// Wall time.
    pub duration: Duration,
    /// The lineage record written.
    pub record: PipelineRecord,
}

/// Progress, delivered to the sink as it happens.
#[derive(Debug)]
pub enum Event<'a> {
    /// A job started (its cache check or script).
    JobStarted {
        /// Instance name.
        job: &'a str,
    },
    /// One line of a job's output.
    Output {
        /// Instance name.
        job: &'a str,
        /// The line, without its newline.
        line: &'a str,
    },
    /// A job is done.
    JobFinished(&'a JobSummary),
}

/// A handle that stops a run: every running job's process group gets
/// SIGTERM, then SIGKILL after a grace period; nothing new starts.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    inner: Arc<CancelInner>,
}

#[derive(Debug, Default)]
struct CancelInner {
    cancelled: AtomicBool,
    groups: Mutex<HashMap<u64, Pid>>,
}

impl CancelToken {
    /// A fresh token.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancels: signals every registered process group.
    pub fn cancel(&self) {
        let first = !self.inner.cancelled.swap(true, Ordering::SeqCst);
        let sig = if first { Signal::TERM } else { Signal::KILL };
        for pid in self
            .inner
            .groups
            .lock()
            .map(|g| g.values().copied().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let _ = kill_process_group(pid, sig);
        }
        if first {
            let inner = self.inner.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(3));
                let pids: Vec<Pid> = inner
                    .groups
                    .lock()
                    .map(|g| g.values().copied().collect())
                    .unwrap_or_default();
                for pid in pids {
                    let _ = kill_process_group(pid, Signal::KILL);
                }
            });
        }
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    fn register(&self, id: u64, pid: Pid) {
        if let Ok(mut g) = self.inner.groups.lock() {
            g.insert(id, pid);
        }
        if self.is_cancelled() {
            let _ = kill_process_group(pid, Signal::TERM);
        }
    }

    fn unregister(&self, id: u64) {
        if let Ok(mut g) = self.inner.groups.lock() {
            g.remove(&id);
        }
    }

    /// Cancels this token on Ctrl-C (SIGINT), SIGTERM or SIGHUP; a second
    /// signal kills.
    /// Spawns one background thread for the process's lifetime.
    pub fn cancel_on_ctrl_c(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Register before returning: a signal arriving between now and the
        // thread's first poll must not kill keel and orphan the jobs.
        let (mut int, mut term, mut hup) = rt.block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
                signal(SignalKind::hangup())?,
            ))
        })?;
        let token = self.clone();
        std::thread::Builder::new()
            .name("keel-signals".into())
            .spawn(move || {
                rt.block_on(async {
                    loop {
                        tokio::select! {
                            _ = int.recv() => token.cancel(),
                            _ = term.recv() => token.cancel(),
                            _ = hup.recv() => token.cancel(),
                        }
                    }
                })
            })?;
        Ok(())
    }
}

/// Everything a run talks to.
pub struct Runner<'a> {
    /// The planned pipeline.
    pub pipeline: &'a Pipeline,
    /// Where outs are saved and restored from.
    pub store: &'a dyn OutputStore,
    /// The run-cache.
    pub cache: &'a dyn RunCache,
    /// Lineage.
    pub recorder: &'a dyn RunRecorder,
    /// Progress sink (called from several threads).
    pub events: &'a (dyn Fn(&Event<'_>) + Sync),
    /// Cancellation.
    pub cancel: CancelToken,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn script_text(shell: Shell, lines: &[String]) -> String {
    let mut s = String::from(match shell {
        Shell::Bash => "set -eo pipefail\n",
        Shell::Sh => "set -e\n",
    });
    for l in lines {
        let shown = match l.split_once('\n') {
            Some((first, _)) => format!("$ {first} # collapsed multi-line command"),
            None => format!("$ {l}"),
        };
        s.push_str(&format!("printf '%s\\n' {}\n", shell_quote(&shown)));
        s.push_str(l);
        s.push('\n');
    }
    s
}

fn log_name(name: &str, used: &mut HashSet<String>) -> String {
    let mut base: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    while base.contains("__") {
        base = base.replace("__", "_");
    }
    let base = base.trim_matches('_').to_string();
    let mut candidate = base.clone();
    let mut i = 2;
    while !used.insert(candidate.clone()) {
        candidate = format!("{base}-{i}");
        i += 1;
    }
    format!("{candidate}.log")
}

/// Flattens numeric leaves of a metrics document into `a.b.c → value`.
pub fn flatten_metrics(v: &serde_json::Value, prefix: &str, out: &mut BTreeMap<String, f64>) {
    match v {
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                out.insert(prefix.to_string(), f);
            }
        }
        serde_json::Value::Bool(b) => {
            out.insert(prefix.to_string(), if *b { 1.0 } else { 0.0 });
        }
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_metrics(v, &key, out);
            }
        }
        _ => {}
    }
}

fn read_structured(path: &Path) -> std::result::Result<serde_json::Value, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Ok(v) = serde_json::from_str(&text) {
        return Ok(v);
    }
    let parsed = yaml::parse(&text, path).map_err(|e| e.to_string())?;
    Ok(parsed.documents[0].to_json())
}

fn lookup_param<'v>(root: &'v serde_json::Value, key: &str) -> Option<&'v serde_json::Value> {
    let mut cur = root;
    for part in key.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

/// What a finished job hands back to the scheduler.
struct Outcome {
    summary: JobSummary,
    record: JobRecord,
}

struct Shared<'a> {
    runner: &'a Runner<'a>,
    opts: &'a ExecOptions,
    run_id: String,
    run_dir: PathBuf,
    params: Option<std::result::Result<serde_json::Value, String>>,
}

enum Attempt {
    Exited(ExitStatus),
    TimedOut,
    Canceled,
    SpawnFailed(String),
}

impl Shared<'_> {
    fn emit(&self, e: &Event<'_>) {
        (self.runner.events)(e)
    }

    /// Runs `lines` in one shell process in its own process group.
    fn shell(
        &self,
        job: &Job,
        id: u64,
        lines: &[String],
        extra_env: &[(String, String)],
        timeout: Option<Duration>,
        log: &Mutex<fs::File>,
    ) -> Attempt {
        let mut cmd = match self.opts.shell {
            Shell::Bash => {
                let mut c = Command::new("bash");
                c.args(["--noprofile", "--norc", "-c"]);
                c
            }
            Shell::Sh => {
                let mut c = Command::new("sh");
                c.arg("-c");
                c
            }
        };
        cmd.arg(script_text(self.opts.shell, lines))
            .current_dir(&self.runner.pipeline.project_dir)
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .envs(extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Attempt::SpawnFailed(format!("cannot start the shell: {e}")),
        };
        let pid = Pid::from_child(&child);
        self.runner.cancel.register(id, pid);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (tx, rx) = mpsc::channel();
        let status = std::thread::scope(|s| {
            let pump = |r: Box<dyn Read + Send>| {
                let mut reader = BufReader::new(r);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&buf);
                            let line = line.trim_end_matches(['\n', '\r']);
                            if let Ok(mut f) = log.lock() {
                                let _ = writeln!(f, "{line}");
                            }
                            self.emit(&Event::Output {
                                job: &job.name,
                                line,
                            });
                        }
                    }
                }
            };
            if let Some(o) = stdout {
                s.spawn(move || pump(Box::new(o)));
            }
            if let Some(e) = stderr {
                s.spawn(move || pump(Box::new(e)));
            }
            let waiter = s.spawn(move || {
                let st = child.wait();
                let _ = tx.send(());
                st
            });
            let mut outcome = None;
            let deadline = timeout.map(|t| Instant::now() + t);
            loop {
                let wait = deadline.map_or(Duration::from_millis(200), |d| {
                    d.saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(200))
                });
                match rx.recv_timeout(wait) {
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if deadline.is_some_and(|d| Instant::now() >= d) && outcome.is_none() {
                            outcome = Some(Attempt::TimedOut);
                            let _ = kill_process_group(pid, Signal::TERM);
                            let _ = rx.recv_timeout(Duration::from_secs(3));
                            let _ = kill_process_group(pid, Signal::KILL);
                            break;
                        }
                    }
                }
            }
            let st = waiter.join().ok().and_then(|r| r.ok());
            // Leftover background processes would keep the pipes open.
            let _ = kill_process_group(pid, Signal::KILL);
            match outcome {
                Some(o) => o,
                None if self.runner.cancel.is_cancelled() => Attempt::Canceled,
                None => match st {
                    Some(st) => Attempt::Exited(st),
                    None => Attempt::SpawnFailed("lost the job's process".into()),
                },
            }
        });
        self.runner.cancel.unregister(id);
        status
    }

    fn params_for(
        &self,
        job: &Job,
    ) -> std::result::Result<Vec<(String, serde_json::Value)>, String> {
        let Some(k) = &job.keel else {
            return Ok(Vec::new());
        };
        if k.params.is_empty() {
            return Ok(Vec::new());
        }
        let file = &self.runner.pipeline.keel.params_file;
        let root = match &self.params {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(e.clone()),
            None => return Err(format!("params file {file} not read")),
        };
        k.params
            .iter()
            .map(|p| {
                lookup_param(root, p)
                    .cloned()
                    .map(|v| (p.clone(), v))
                    .ok_or_else(|| format!("param {p:?} is not in {file}"))
            })
            .collect()
    }

    fn run_one(&self, idx: usize, sources: &[usize], log_file: &Path) -> Outcome {
        let p = self.runner.pipeline;
        let job = &p.jobs[idx];
        let root = &p.project_dir;
        let started = Instant::now();
        let started_at_ms = now_ms();
        self.emit(&Event::JobStarted { job: &job.name });
        let mut upstream: Vec<(String, ObjectHash)> = Vec::new();
        let mut upstream_err = None;
        for &s in sources {
            match hash::artifacts_digest(root, &p.jobs[s].artifacts) {
                Ok(Some(d)) => upstream.push((p.jobs[s].name.clone(), d)),
                Ok(None) => {}
                Err(e) => upstream_err = Some(format!("artifacts of {:?}: {e}", p.jobs[s].name)),
            }
        }
        let upstream = &upstream;
        let mut record = JobRecord {
            name: job.name.clone(),
            base: job.base.clone(),
            stage: job.stage.clone(),
            started_at_ms,
            variables: job.key_vars.iter().cloned().collect(),
            matrix: job.matrix.iter().cloned().collect(),
            upstream: upstream
                .iter()
                .map(|(j, d)| (j.clone(), d.to_string()))
                .collect(),
            log: log_file
                .strip_prefix(root)
                .ok()
                .map(|l| l.to_string_lossy().to_string()),
            ..JobRecord::default()
        };
        let log = match fs::File::create(log_file) {
            Ok(f) => Mutex::new(f),
            Err(e) => {
                return self.finish(
                    job,
                    record,
                    started,
                    JobStatus::Failed,
                    None,
                    0,
                    Some(format!("cannot create log: {e}")),
                    log_file,
                )
            }
        };
        if let Some(e) = upstream_err {
            return self.finish(
                job,
                record,
                started,
                JobStatus::Failed,
                None,
                0,
                Some(e),
                log_file,
            );
        }
        let fail = |record: JobRecord, msg: String| {
            if let Ok(mut f) = log.lock() {
                let _ = writeln!(f, "keel: {msg}");
            }
            self.emit(&Event::Output {
                job: &job.name,
                line: &format!("keel: {msg}"),
            });
            self.finish(
                job,
                record,
                started,
                JobStatus::Failed,
                None,
                0,
                Some(msg),
                log_file,
            )
        };

        // 1. The cache key, for jobs with a `.keel` entry.
        let mut key = None;
        if let Some(k) = &job.keel {
            let params = match self.params_for(job) {
                Ok(v) => v,
                Err(e) => return fail(record, e),
            };
            let mut deps = Vec::new();
            for d in &k.deps {
                let clean = d.trim_start_matches("./").trim_end_matches('/');
                match hash::hash_path(&root.join(clean)) {
                    Ok(Some(h)) => deps.push((clean.to_string(), h)),
                    Ok(None) => return fail(record, format!("dep {d:?} does not exist")),
                    Err(e) => return fail(record, format!("cannot hash dep {d:?}: {e}")),
                }
            }
            let params_text: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect();
            let outs: Vec<String> = k.outs.iter().chain(&k.metrics).cloned().collect();
            // Separators keep a line moved between sections from hashing
            // the same.
            let script: Vec<&str> = job
                .before_script
                .iter()
                .map(String::as_str)
                .chain(["\u{0}script"])
                .chain(job.script.iter().map(String::as_str))
                .chain(["\u{0}after_script"])
                .chain(job.after_script.iter().map(String::as_str))
                .collect();
            let input = KeyInput {
                job: &job.name,
                script,
                variables: &job.key_vars,
                deps: &deps,
                upstream,
                params: &params_text,
                outs: &outs,
            };
            let h = hash::cache_key(&input);
            record.cache_key = Some(h.to_string());
            record.params = params.into_iter().collect();
            record.inputs = deps
                .into_iter()
                .map(|(path, content)| OutputRecord { path, content })
                .collect();
            key = Some(h);

            // 2. The run-cache.
            if !self.opts.force {
                match self.try_restore(&h) {
                    Ok(Some(outputs)) => {
                        if let Ok(mut f) = log.lock() {
                            let _ = writeln!(
                                f,
                                "keel: cache hit {}; outs restored, script skipped",
                                h.short(12)
                            );
                        }
                        record.outputs = outputs;
                        return self.complete(job, record, started, log_file, true, None, 0);
                    }
                    Ok(None) => {}
                    Err(e) => return fail(record, format!("run-cache: {e}")),
                }
            }
        }

        // 3. Run the script, with retries.
        let extra_env = match self.runner.recorder.begin_job(&self.run_id, &record) {
            Ok(e) => e,
            Err(e) => return fail(record, format!("recorder: {e}")),
        };
        let lines: Vec<String> = job
            .before_script
            .iter()
            .chain(&job.script)
            .cloned()
            .collect();
        let mut attempts = 0;
        let id_base = (idx as u64) << 8;
        let (status, exit_code, reason) = loop {
            attempts += 1;
            let a = self.shell(
                job,
                id_base + attempts as u64,
                &lines,
                &extra_env,
                job.timeout,
                &log,
            );
            let (code, kind, reason) = match a {
                Attempt::Exited(st) if st.success() => break (JobStatus::Success, Some(0), None),
                Attempt::Exited(st) => {
                    let code = st.code();
                    let why = match code {
                        Some(c) => format!("exit code {c}"),
                        None => "killed by a signal".to_string(),
                    };
                    (code, "script_failure", why)
                }
                Attempt::TimedOut => (
                    None,
                    "stuck_or_timeout_failure",
                    format!("timed out after {:?}", job.timeout.unwrap_or_default()),
                ),
                Attempt::Canceled => {
                    break (JobStatus::Canceled, None, Some("canceled".to_string()))
                }
                Attempt::SpawnFailed(m) => (None, "runner_system_failure", m),
            };
            let r = &job.retry;
            let kind_ok = r.when.is_empty()
                || r.when.iter().any(|w| {
                    w == "always"
                        || w == kind
                        || (w == "unknown_failure" && kind == "script_failure")
                });
            let code_ok =
                r.exit_codes.is_empty() || code.is_some_and(|c| r.exit_codes.contains(&c));
            if attempts <= r.max && kind_ok && code_ok && !self.runner.cancel.is_cancelled() {
                let msg = format!("keel: {reason}; retrying ({attempts}/{})", r.max);
                if let Ok(mut f) = log.lock() {
                    let _ = writeln!(f, "{msg}");
                }
                self.emit(&Event::Output {
                    job: &job.name,
                    line: &msg,
                });
                continue;
            }
            let allowed = match &job.allow_failure {
                AllowFailure::Bool(b) => *b,
                AllowFailure::ExitCodes(codes) => code.is_some_and(|c| codes.contains(&c)),
            };
            break (
                if allowed {
                    JobStatus::AllowedFailure
                } else {
                    JobStatus::Failed
                },
                code,
                Some(reason),
            );
        };

        // 4. after_script: its own shell, 5 minutes, result ignored.
        if !job.after_script.is_empty() && status != JobStatus::Canceled {
            let mut env = extra_env.clone();
            env.push((
                "CI_JOB_STATUS".into(),
                if status == JobStatus::Success {
                    "success"
                } else {
                    "failed"
                }
                .into(),
            ));
            let _ = self.shell(
                job,
                id_base + 255,
                &job.after_script,
                &env,
                Some(Duration::from_secs(300)),
                &log,
            );
        }
        record.attempts = attempts;
        if status != JobStatus::Success {
            return self.finish(
                job, record, started, status, exit_code, attempts, reason, log_file,
            );
        }

        // 5. Save outs and metrics, fill the run-cache.
        if let (Some(k), Some(key)) = (&job.keel, key) {
            let mut outputs = Vec::new();
            for pattern in k.outs.iter().chain(&k.metrics) {
                let found = match hash::expand_patterns(root, std::slice::from_ref(pattern)) {
                    Ok(f) => f,
                    Err(e) => return fail(record, e.to_string()),
                };
                if found.is_empty() {
                    return fail(
                        record,
                        format!(
                            "the script succeeded but did not produce the declared out {pattern:?}"
                        ),
                    );
                }
                for path in found {
                    match self.runner.store.save(&root.join(&path)) {
                        Ok(content) => outputs.push(OutputRecord { path, content }),
                        Err(e) => return fail(record, format!("saving out {path:?}: {e}")),
                    }
                }
            }
            let entry = CacheEntry {
                key: key.to_string(),
                job: job.name.clone(),
                run_id: self.run_id.clone(),
                outputs: outputs.clone(),
                created_at_ms: now_ms(),
            };
            if let Err(e) = self.runner.cache.put(&key, &entry) {
                return fail(record, format!("run-cache: {e}"));
            }
            record.outputs = outputs;
        }
        self.complete(job, record, started, log_file, false, exit_code, attempts)
    }

    /// On a hit, makes the workspace hold the cached outs; `None` on a miss
    /// (or when the store lost an object).
    fn try_restore(&self, key: &ObjectHash) -> Result<Option<Vec<OutputRecord>>> {
        let Some(entry) = self.runner.cache.get(key)? else {
            return Ok(None);
        };
        for o in &entry.outputs {
            if !self.runner.store.has(&o.content)? {
                return Ok(None);
            }
        }
        let root = &self.runner.pipeline.project_dir;
        for o in &entry.outputs {
            let dest = root.join(&o.path);
            let current = hash::hash_path(&dest).map_err(|e| Error::io(&dest, e))?;
            if current != Some(o.content) {
                self.runner.store.restore(&o.content, &dest)?;
            }
        }
        Ok(Some(entry.outputs))
    }

    #[allow(clippy::too_many_arguments)]
    fn complete(
        &self,
        job: &Job,
        mut record: JobRecord,
        started: Instant,
        log_file: &Path,
        cached: bool,
        exit_code: Option<i32>,
        attempts: u32,
    ) -> Outcome {
        let root = &self.runner.pipeline.project_dir;
        if let Some(k) = &job.keel {
            for m in &k.metrics {
                match read_structured(&root.join(m)) {
                    Ok(v) => flatten_metrics(&v, "", &mut record.metrics),
                    Err(e) => {
                        return self.finish(
                            job,
                            record,
                            started,
                            JobStatus::Failed,
                            exit_code,
                            attempts,
                            Some(format!("metrics: {e}")),
                            log_file,
                        )
                    }
                }
            }
        }
        let digest = match hash::artifacts_digest(root, &job.artifacts) {
            Ok(d) => d,
            Err(e) => {
                return self.finish(
                    job,
                    record,
                    started,
                    JobStatus::Failed,
                    exit_code,
                    attempts,
                    Some(format!("artifacts: {e}")),
                    log_file,
                )
            }
        };
        record.artifacts_digest = digest.map(|d| d.to_string());
        record.artifacts_expire_at_ms = job
            .artifacts
            .expire_after
            .map(|d| record.started_at_ms + d.as_millis() as u64);
        let mut o = self.finish(
            job,
            record,
            started,
            JobStatus::Success,
            exit_code,
            attempts,
            None,
            log_file,
        );
        o.summary.cached = cached;
        o.record.cached = cached;
        o
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        job: &Job,
        mut record: JobRecord,
        started: Instant,
        status: JobStatus,
        exit_code: Option<i32>,
        attempts: u32,
        reason: Option<String>,
        log_file: &Path,
    ) -> Outcome {
        let duration = started.elapsed();
        record.status = status.as_str().to_string();
        record.exit_code = exit_code;
        record.attempts = attempts;
        record.duration_ms = duration.as_millis() as u64;
        record.reason = reason.clone();
        Outcome {
            summary: JobSummary {
                name: job.name.clone(),
                stage: job.stage.clone(),
                status,
                cached: false,
                duration,
                exit_code,
                attempts,
                reason,
                log: Some(log_file.to_path_buf()),
            },
            record,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Dependants may proceed.
    Ok,
    /// A hard failure here or upstream: `on_success` dependants skip,
    /// `on_failure` ones run.
    Failed,
    /// Neither (a blocking manual job, a cancel): dependants skip.
    Blocked,
}

/// Runs `runner.pipeline`.
pub fn run(runner: &Runner<'_>, opts: &ExecOptions) -> Result<RunSummary> {
    let p = runner.pipeline;
    let run_id = uuid::Uuid::now_v7().to_string();
    let run_dir = p.project_dir.join(".keel").join("runs").join(&run_id);
    fs::create_dir_all(&run_dir).map_err(|e| Error::io(&run_dir, e))?;
    let started = Instant::now();
    let mut record = PipelineRecord {
        run_id: run_id.clone(),
        file: p.file.to_string_lossy().to_string(),
        started_at_ms: now_ms(),
        finished_at_ms: None,
        git_commit: p.git.commit.clone(),
        git_branch: p.git.branch.clone(),
        git_dirty: p.git.dirty,
        variables: p.variables.iter().cloned().collect(),
        status: "running".into(),
        jobs: Vec::new(),
    };
    runner.recorder.begin_run(&record)?;

    // Which jobs take part.
    let n = p.jobs.len();
    let mut selected = vec![opts.only.is_empty(); n];
    if !opts.only.is_empty() {
        let mut stack: Vec<usize> = Vec::new();
        for name in &opts.only {
            let found: Vec<usize> = (0..n)
                .filter(|&i| p.jobs[i].name == *name || p.jobs[i].base == *name)
                .collect();
            if found.is_empty() {
                return Err(Error::Job {
                    job: name.clone(),
                    message: "no such job in this pipeline".into(),
                });
            }
            stack.extend(found);
        }
        while let Some(i) = stack.pop() {
            if !selected[i] {
                selected[i] = true;
                stack.extend(p.jobs[i].preds.iter().copied());
            }
        }
    }
    let manual_wanted = |j: &Job| match &opts.manual {
        ManualJobs::None => false,
        ManualJobs::All => true,
        ManualJobs::Named(names) => names.iter().any(|x| *x == j.name || *x == j.base),
    };
    if !opts.force {
        let cacheable: Vec<&str> = (0..n)
            .filter(|&i| selected[i] && p.jobs[i].keel.is_some())
            .map(|i| p.jobs[i].name.as_str())
            .collect();
        if !cacheable.is_empty() {
            runner.cache.prefetch(&cacheable)?;
        }
    }
    let needs_params = p
        .jobs
        .iter()
        .any(|j| j.keel.as_ref().is_some_and(|k| !k.params.is_empty()));
    let params = needs_params.then(|| read_structured(&p.project_dir.join(&p.keel.params_file)));
    let shared = Shared {
        runner,
        opts,
        run_id: run_id.clone(),
        run_dir,
        params,
    };

    let mut used_logs = HashSet::new();
    let log_files: Vec<PathBuf> = p
        .jobs
        .iter()
        .map(|j| shared.run_dir.join(log_name(&j.name, &mut used_logs)))
        .collect();
    let mut flow: Vec<Option<Flow>> = vec![None; n];
    let has_artifacts: Vec<bool> = p
        .jobs
        .iter()
        .map(|j| !j.artifacts.paths.is_empty())
        .collect();
    let mut summaries: Vec<Option<JobSummary>> = vec![None; n];
    let mut records: Vec<Option<JobRecord>> = vec![None; n];
    let mut running = 0usize;
    let mut started_set = vec![false; n];
    let (tx, rx) = mpsc::channel::<(usize, Outcome)>();

    std::thread::scope(|scope| {
        loop {
            // Start or settle everything that is ready.
            let mut progressed = true;
            while progressed {
                progressed = false;
                for i in 0..n {
                    if !selected[i] || started_set[i] || flow[i].is_some() {
                        continue;
                    }
                    let job = &p.jobs[i];
                    if job.preds.iter().any(|&d| selected[d] && flow[d].is_none()) {
                        continue;
                    }
                    let pred_flows: Vec<Flow> = job
                        .preds
                        .iter()
                        .filter(|&&d| selected[d])
                        .filter_map(|&d| flow[d])
                        .collect();
                    let all_ok = pred_flows.iter().all(|f| *f == Flow::Ok);
                    let any_failed = pred_flows.contains(&Flow::Failed);
                    let settle = |status: JobStatus, reason: &str| JobSummary {
                        name: job.name.clone(),
                        stage: job.stage.clone(),
                        status,
                        cached: false,
                        duration: Duration::ZERO,
                        exit_code: None,
                        attempts: 0,
                        reason: Some(reason.to_string()),
                        log: None,
                    };
                    let decision: std::result::Result<(), (JobSummary, Flow)> = if runner
                        .cancel
                        .is_cancelled()
                    {
                        Err((
                            settle(JobStatus::Canceled, "canceled before it started"),
                            Flow::Blocked,
                        ))
                    } else {
                        match job.when {
                            When::OnSuccess | When::Delayed => {
                                if all_ok {
                                    Ok(())
                                } else if any_failed {
                                    Err((
                                        settle(JobStatus::Skipped, "an upstream job failed"),
                                        Flow::Failed,
                                    ))
                                } else {
                                    Err((
                                        settle(JobStatus::Skipped, "an upstream job did not run"),
                                        Flow::Blocked,
                                    ))
                                }
                            }
                            When::OnFailure => {
                                if any_failed {
                                    Ok(())
                                } else {
                                    Err((
                                        settle(
                                            JobStatus::Skipped,
                                            "when: on_failure and nothing failed",
                                        ),
                                        Flow::Ok,
                                    ))
                                }
                            }
                            When::Always => Ok(()),
                            When::Manual => {
                                if !manual_wanted(job) {
                                    let blocking = job.allow_failure == AllowFailure::Bool(false);
                                    Err((
                                        settle(JobStatus::Manual, "manual job (run with --manual)"),
                                        if blocking { Flow::Blocked } else { Flow::Ok },
                                    ))
                                } else if all_ok {
                                    Ok(())
                                } else {
                                    Err((
                                        settle(
                                            JobStatus::Skipped,
                                            "an upstream job did not succeed",
                                        ),
                                        if any_failed {
                                            Flow::Failed
                                        } else {
                                            Flow::Blocked
                                        },
                                    ))
                                }
                            }
                            When::Never => {
                                Err((settle(JobStatus::Skipped, "when: never"), Flow::Ok))
                            }
                        }
                    };
                    match decision {
                        Err((summary, f)) => {
                            flow[i] = Some(f);
                            (runner.events)(&Event::JobFinished(&summary));
                            records[i] = Some(JobRecord {
                                name: job.name.clone(),
                                base: job.base.clone(),
                                stage: job.stage.clone(),
                                status: summary.status.as_str().to_string(),
                                started_at_ms: now_ms(),
                                variables: job.key_vars.iter().cloned().collect(),
                                matrix: job.matrix.iter().cloned().collect(),
                                reason: summary.reason.clone(),
                                ..JobRecord::default()
                            });
                            summaries[i] = Some(summary);
                            progressed = true;
                        }
                        Ok(()) => {
                            if running >= opts.parallelism {
                                continue;
                            }
                            // Artifacts of upstream jobs that succeeded; hashed
                            // in the job's thread when it starts, once every
                            // source is done writing.
                            let sources: Vec<usize> = job
                                .artifact_sources
                                .iter()
                                .copied()
                                .filter(|&s| {
                                    selected[s] && flow[s] == Some(Flow::Ok) && has_artifacts[s]
                                })
                                .collect();
                            started_set[i] = true;
                            running += 1;
                            let tx = tx.clone();
                            let shared = &shared;
                            let log = log_files[i].clone();
                            scope.spawn(move || {
                                let o = shared.run_one(i, &sources, &log);
                                let _ = tx.send((i, o));
                            });
                            progressed = true;
                        }
                    }
                }
            }
            if running == 0 {
                break;
            }
            let Ok((i, o)) = rx.recv() else { break };
            running -= 1;
            let f = match o.summary.status {
                JobStatus::Success | JobStatus::AllowedFailure => Flow::Ok,
                JobStatus::Failed => Flow::Failed,
                _ => Flow::Blocked,
            };
            flow[i] = Some(f);
            (runner.events)(&Event::JobFinished(&o.summary));
            let _ = runner.recorder.record_job(&run_id, &o.record);
            records[i] = Some(o.record);
            summaries[i] = Some(o.summary);
        }
    });

    let jobs: Vec<JobSummary> = summaries.into_iter().flatten().collect();
    let status = if runner.cancel.is_cancelled() {
        PipelineStatus::Canceled
    } else if jobs.iter().any(|j| j.status == JobStatus::Failed) {
        PipelineStatus::Failed
    } else {
        PipelineStatus::Success
    };
    record.jobs = records.into_iter().flatten().collect();
    record.status = status.as_str().into();
    record.finished_at_ms = Some(now_ms());
    runner.recorder.finish_run(&record)?;
    Ok(RunSummary {
        run_id,
        status,
        jobs,
        duration: started.elapsed(),
        record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_text_echoes_and_quotes() {
        let t = script_text(
            Shell::Bash,
            &["echo 'hi'".into(), "for i in 1 2\ndo echo $i; done".into()],
        );
        assert!(t.starts_with("set -eo pipefail\n"));
        assert!(t.contains("printf '%s\\n' '$ echo '\\''hi'\\'''\n"));
        assert!(t.contains("collapsed multi-line command"));
    }

    #[test]
    fn log_names_are_safe_and_unique() {
        let mut used = HashSet::new();
        assert_eq!(
            log_name("train: [0.1, adam]", &mut used),
            "train_0.1_adam.log"
        );
        assert_eq!(log_name("test 1/3", &mut used), "test_1_3.log");
        assert_eq!(log_name("test 1/3", &mut used), "test_1_3-2.log");
    }
}
