//! `keel demo`: the whole loop on the embedded default, from one command.
//!
//! The demo drives the real `keel` binary as subprocesses
//! (`std::env::current_exe()`), so each step is exactly what a user would
//! type, and it leaves a project directory to keep exploring. A step whose
//! command this binary does not have yet is reported as "not available
//! yet" and the summary says so: nothing is faked.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};

use super::Global;
use crate::demo::{files, fraud, traffic};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Directory for the demo project (default: ./keel-demo).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep serving the model after the demo ends (until Ctrl-C).
    #[arg(long)]
    pub keep_serving: bool,
}

const TRAIN_ROWS: usize = 20_000;
const TRAFFIC_ROWS: usize = 5_000;

/// One step's outcome, as the summary reports it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Failed,
    NotAvailable,
    Skipped,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::NotAvailable => "not_available",
            Outcome::Skipped => "skipped",
        }
    }
}

struct Demo {
    exe: PathBuf,
    dir: PathBuf,
    json: bool,
    started: Instant,
    steps: Vec<Value>,
    n: usize,
}

/// A finished subprocess.
struct Ran {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    log: PathBuf,
}

impl Demo {
    fn say(&self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    fn step(&mut self, name: &str, outcome: Outcome, detail: &str) {
        self.steps
            .push(json!({"step": name, "status": outcome.as_str(), "detail": detail}));
        let t = self.started.elapsed().as_secs_f64();
        let mark = match outcome {
            Outcome::Ok => "✓",
            Outcome::Failed => "✗",
            Outcome::NotAvailable => "∅",
            Outcome::Skipped => "·",
        };
        let text = match outcome {
            Outcome::NotAvailable => format!("step {name}: not available yet ({detail})"),
            _ => format!("{name}: {detail}"),
        };
        self.say(&format!("  {mark} [{t:5.1}s] {text}"));
    }

    /// Whether this binary has the (sub)command: `keel <words> --help` succeeds.
    fn has(&self, words: &[&str]) -> bool {
        Command::new(&self.exe)
            .args(words)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn help(&self, words: &[&str]) -> String {
        Command::new(&self.exe)
            .args(words)
            .arg("--help")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(args).current_dir(&self.dir);
        // Job scripts call plain `keel`: this very binary.
        if let Some(bin) = self.exe.parent() {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut paths = vec![bin.to_path_buf()];
            paths.extend(std::env::split_paths(&path));
            if let Ok(p) = std::env::join_paths(paths) {
                c.env("PATH", p);
            }
        }
        c.env_remove("KEEL_DB").env_remove("KEEL_OBJECTS");
        c
    }

    /// Runs `keel ARGS` in the project, narrating the command line; output
    /// goes to a log file under `demo-logs/`.
    fn keel(&mut self, args: &[&str]) -> Result<Ran> {
        self.n += 1;
        let name = args.iter().take(2).copied().collect::<Vec<_>>().join("-");
        let log = self
            .dir
            .join("demo-logs")
            .join(format!("{:02}-{name}.log", self.n));
        self.say(&format!("    $ keel {}", args.join(" ")));
        let out = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .context("running keel")?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        std::fs::write(
            &log,
            format!(
                "$ keel {}\n{stdout}\n--- stderr ---\n{stderr}",
                args.join(" ")
            ),
        )?;
        Ok(Ran {
            ok: out.status.success(),
            code: out.status.code(),
            stdout,
            log: log.strip_prefix(&self.dir).unwrap_or(&log).to_path_buf(),
        })
    }
}

fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(path, text).with_context(|| path.display().to_string())
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The summary of one `keel run --json`.
fn pipeline_summary(ran: &Ran) -> Value {
    let rec: Value = serde_json::from_str(&ran.stdout).unwrap_or(Value::Null);
    let jobs = rec["jobs"].as_array().cloned().unwrap_or_default();
    let cacheable: Vec<&Value> = jobs.iter().filter(|j| !j["cache_key"].is_null()).collect();
    let cached: Vec<String> = jobs
        .iter()
        .filter(|j| j["cached"].as_bool() == Some(true))
        .filter_map(|j| j["name"].as_str().map(String::from))
        .collect();
    let ran_jobs: Vec<String> = jobs
        .iter()
        .filter(|j| j["cached"].as_bool() != Some(true))
        .map(|j| {
            format!(
                "{} ({})",
                j["name"].as_str().unwrap_or("?"),
                j["status"].as_str().unwrap_or("?")
            )
        })
        .collect();
    json!({
        "run_id": rec["run_id"],
        "status": rec["status"],
        "jobs": jobs.len(),
        "cacheable_jobs": cacheable.len(),
        "cached_jobs": cached,
        "ran_jobs": ran_jobs,
        "fully_cached": !cacheable.is_empty() && cacheable.iter().all(|j| j["cached"].as_bool() == Some(true)),
        "log": ran.log,
    })
}

fn read_json(path: &Path) -> Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

/// Finds the first value under one of `keys`, anywhere in `v`.
fn find_key<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    match v {
        Value::Object(m) => {
            for k in keys {
                if let Some(x) = m.get(*k) {
                    return Some(x);
                }
            }
            m.values().find_map(|x| find_key(x, keys))
        }
        Value::Array(a) => a.iter().find_map(|x| find_key(x, keys)),
        _ => None,
    }
}

/// Runs `keel drift` of `current` against the training split.
fn drift_check(d: &mut Demo, current: &str, html: &str) -> Result<Option<(bool, Value)>> {
    if !d.has(&["drift"]) {
        return Ok(None);
    }
    let cols = fraud::feature_columns().join(",");
    let ran = d.keel(&[
        "drift",
        "--reference",
        "data/prepared/train.csv",
        "--current",
        current,
        "--columns",
        &cols,
        "--html",
        html,
        "--json",
    ])?;
    let v: Value = serde_json::from_str(&ran.stdout).unwrap_or(Value::Null);
    if v.is_null() {
        anyhow::bail!(
            "keel drift failed (exit {:?}); see {}",
            ran.code,
            ran.log.display()
        );
    }
    let drifted = find_key(&v, &["dataset_drift", "drift_detected", "drifted"])
        .and_then(Value::as_bool)
        .unwrap_or(ran.code == Some(1));
    Ok(Some((drifted, v)))
}

/// Per-column drift scores, compactly, from `keel drift --json`.
fn drift_scores(v: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(cols) = find_key(v, &["columns"]).and_then(Value::as_array) {
        for c in cols {
            if let Some(name) = c["column"].as_str().or(c["name"].as_str()) {
                let score = find_key(c, &["score", "statistic", "p_value", "drift_score"]).cloned();
                out.insert(
                    name.to_string(),
                    json!({"score": score, "drifted": find_key(c, &["drifted", "drift_detected"]).cloned()}),
                );
            }
        }
    }
    Value::Object(out)
}

/// Starts `keel serve` on a loopback ephemeral port; `None` with a reason
/// when the command does not exist or does not come up.
fn start_server(d: &mut Demo) -> Result<std::result::Result<(Child, SocketAddr), String>> {
    if !d.has(&["serve"]) {
        return Ok(Err("`keel serve` is not in this binary".into()));
    }
    let help = d.help(&["serve"]);
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut args: Vec<String> = vec!["serve".into(), "deploy/production".into()];
    if help.contains("--addr") {
        args.extend(["--addr".into(), addr.to_string()]);
    } else if help.contains("--bind") {
        args.extend(["--bind".into(), addr.to_string()]);
    } else if help.contains("--listen") {
        args.extend(["--listen".into(), addr.to_string()]);
    } else if help.contains("--port") {
        args.extend(["--port".into(), port.to_string()]);
        if help.contains("--host") {
            args.extend(["--host".into(), "127.0.0.1".into()]);
        }
    } else {
        return Ok(Err(
            "`keel serve` has no --addr/--port flag the demo knows".into()
        ));
    }
    d.say(&format!("    $ keel {}", args.join(" ")));
    let log = std::fs::File::create(d.dir.join("demo-logs/serve.log"))?;
    let child = d
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(Err(format!(
                "keel serve exited ({status}); see demo-logs/serve.log"
            )));
        }
        if matches!(traffic::http(addr, "GET", "/ping", ""), Ok((200, _))) {
            return Ok(Ok((child, addr)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(Err(
        "keel serve did not answer /ping within 30s; see demo-logs/serve.log".into(),
    ))
}

/// Runs `keel demo`.
pub fn run(global: &Global, args: DemoArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let base = global.cwd()?;
    let dir = base.join(
        args.dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("keel-demo")),
    );
    std::fs::create_dir_all(dir.join("demo-logs"))?;
    // HTML reports (keel data validate, keel drift) go here.
    std::fs::create_dir_all(dir.join("quality"))?;
    let dir = dir.canonicalize()?;
    let mut d = Demo {
        exe: std::env::current_exe().context("locating the keel binary")?,
        dir: dir.clone(),
        json: global.json,
        started,
        steps: Vec::new(),
        n: 0,
    };
    let rerun = dir.join(".keel").exists();
    d.say(&format!(
        "keel demo in {}{}",
        dir.display(),
        if rerun {
            " (existing demo project: reusing it and its cache)"
        } else {
            ""
        }
    ));

    // 1. Data.
    d.say("\n1. Data: a seeded synthetic card-transaction dataset (fraud label, age group as the sensitive attribute)");
    let baseline = fraud::generate(TRAIN_ROWS, 1, fraud::Shift::Baseline, 0);
    let fraud_rate = baseline.iter().filter(|t| t.is_fraud).count() as f64 / baseline.len() as f64;
    write_if_changed(
        &dir.join("data/raw/transactions.csv"),
        &fraud::to_csv(&baseline),
    )?;
    write_if_changed(&dir.join("transactions.contract.yaml"), &files::contract())?;
    d.step(
        "generate",
        Outcome::Ok,
        &format!(
            "data/raw/transactions.csv: {TRAIN_ROWS} transactions, {:.1}% fraud (seed 1)",
            fraud_rate * 100.0
        ),
    );
    if rerun {
        d.step("init", Outcome::Skipped, "already a keel project");
    } else {
        let r = d.keel(&["init"])?;
        if !r.ok {
            d.step("init", Outcome::Failed, &format!("see {}", r.log.display()));
            anyhow::bail!("keel init failed; see {}", dir.join(&r.log).display());
        }
        d.step(
            "init",
            Outcome::Ok,
            ".keel/ holds the metadata DB and the object store",
        );
    }
    let r = d.keel(&["data", "add", "data/raw", "-m", "baseline transactions"])?;
    d.step(
        "data add",
        if r.ok { Outcome::Ok } else { Outcome::Failed },
        if r.ok {
            "data/raw versioned (content-addressed, BLAKE3)"
        } else {
            "failed; see the log"
        },
    );
    let mut validated = None;
    if d.has(&["data", "validate"]) {
        let r = d.keel(&[
            "data",
            "validate",
            "data/raw/transactions.csv",
            "--contract",
            "transactions.contract.yaml",
            "--html",
            "quality/validation.html",
        ])?;
        validated = Some(r.ok);
        d.step(
            "data validate",
            if r.ok { Outcome::Ok } else { Outcome::Failed },
            &if r.ok {
                "the data meets transactions.contract.yaml (quality/validation.html)".to_string()
            } else {
                format!("contract violations; see {}", r.log.display())
            },
        );
    } else {
        d.step(
            "data validate",
            Outcome::NotAvailable,
            "`keel data validate` is not in this binary",
        );
    }

    // 2. The pipeline.
    d.say("\n2. Pipeline: prepare → train (2×2 sweep) → evaluate → gate → deploy, from a generated .gitlab-ci.yml");
    let with_registry = d.has(&["models", "register"]);
    write_if_changed(&dir.join(".gitlab-ci.yml"), &files::pipeline(with_registry))?;
    write_if_changed(&dir.join("scripts/evaluate.sh"), files::EVALUATE_SH)?;
    write_if_changed(&dir.join("scripts/deploy.sh"), files::DEPLOY_SH)?;
    write_if_changed(&dir.join("gates.yaml"), files::GATES_YAML)?;
    write_if_changed(&dir.join("monitor.yaml"), files::MONITOR_YAML)?;
    if !with_registry {
        d.step(
            "register",
            Outcome::NotAvailable,
            "`keel models register` is not in this binary; the pipeline deploys by path",
        );
    }
    let mut runs = Vec::new();
    let r = d.keel(&["run", "--json"])?;
    let first = pipeline_summary(&r);
    let metrics_before = read_json(&dir.join("selected/metrics.json"));
    let gates_before = read_json(&dir.join("gate/gates.json"));
    narrate_run(&mut d, "pipeline", &r, &first, &metrics_before);
    runs.push(first.clone());
    if !r.ok {
        anyhow::bail!(
            "the pipeline failed; see {} and .keel/runs/",
            dir.join(&r.log).display()
        );
    }
    if with_registry {
        promote(&mut d, "champion");
    }

    // 3. Serving and traffic.
    d.say("\n3. Serving: keel serve deploy/production on a loopback port, with simulated traffic");
    let server = start_server(&mut d)?;
    let stats = Arc::new(traffic::Stats::default());
    let (mut child, client) = match server {
        Ok((child, addr)) => {
            d.step(
                "serve",
                Outcome::Ok,
                &format!("http://{addr} (MLflow /invocations, V2 /v2/models/…)"),
            );
            let base_traffic = fraud::generate(TRAFFIC_ROWS, 2, fraud::Shift::Baseline, 1_000_000);
            let drift_traffic = fraud::generate(TRAFFIC_ROWS, 3, fraud::Shift::Drifted, 2_000_000);
            let s = stats.clone();
            let h = std::thread::spawn(move || traffic::run(addr, base_traffic, drift_traffic, s));
            (Some(child), Some((addr, h)))
        }
        Err(why) => {
            d.step("serve", Outcome::NotAvailable, &why);
            (None, None)
        }
    };
    if client.is_some() {
        std::thread::sleep(Duration::from_secs(3));
        d.step(
            "traffic",
            Outcome::Ok,
            &format!(
                "{} requests so far, {} failed",
                stats.requests.load(Ordering::SeqCst),
                stats.failed.load(Ordering::SeqCst)
            ),
        );
    } else {
        d.step("traffic", Outcome::Skipped, "no server to send traffic to");
    }

    // 4. Drift.
    d.say("\n4. Drift: production shifts (merchant mix towards online/gaming, amounts × 1.8)");
    let live_base = fraud::generate(TRAFFIC_ROWS, 2, fraud::Shift::Baseline, 1_000_000);
    let live_drift = fraud::generate(TRAFFIC_ROWS, 3, fraud::Shift::Drifted, 2_000_000);
    write_if_changed(
        &dir.join("traffic/baseline.csv"),
        &fraud::to_csv(&live_base),
    )?;
    write_if_changed(
        &dir.join("traffic/drifted.csv"),
        &fraud::to_csv(&live_drift),
    )?;
    stats.phase.store(traffic::PHASE_DRIFTED, Ordering::SeqCst);
    if client.is_some() {
        std::thread::sleep(Duration::from_secs(3));
    }
    d.step(
        "inject drift",
        Outcome::Ok,
        "traffic now drawn from the drifted population (traffic/drifted.csv)",
    );
    let mut drift_before = Value::Null;
    let mut drift_after = Value::Null;
    let mut drift_detected = None;
    match drift_check(&mut d, "traffic/baseline.csv", "quality/drift-before.html") {
        Ok(Some((drifted, v))) => {
            drift_before = drift_scores(&v);
            d.step(
                "drift (before)",
                Outcome::Ok,
                &format!("baseline traffic vs training data: dataset drift = {drifted}"),
            );
        }
        Ok(None) => d.step(
            "drift",
            Outcome::NotAvailable,
            "`keel drift` is not in this binary",
        ),
        Err(e) => d.step("drift (before)", Outcome::Failed, &e.to_string()),
    }
    match drift_check(&mut d, "traffic/drifted.csv", "quality/drift-after.html") {
        Ok(Some((drifted, v))) => {
            drift_after = drift_scores(&v);
            drift_detected = Some(drifted);
            d.step(
                "drift (after)",
                Outcome::Ok,
                &format!("drifted traffic vs training data: dataset drift = {drifted} (quality/drift-after.html)"),
            );
        }
        Ok(None) => {}
        Err(e) => d.step("drift (after)", Outcome::Failed, &e.to_string()),
    }
    let mut alert_fired = false;
    let mut monitor_ran = false;
    if d.has(&["monitor"]) {
        monitor_ran = true;
        let r = d.keel(&["monitor", "--once", "--json"])?;
        let v: Value = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
        let fired = find_key(&v, &["alerts", "fired"]).map(|a| match a {
            Value::Array(x) => !x.is_empty(),
            Value::Bool(b) => *b,
            _ => false,
        });
        alert_fired = fired.unwrap_or(false);
        // The window's own drift verdict: the dataset drifted, or any feature did.
        let m = &v["metrics"];
        if m.is_object() {
            let window_drift = m["dataset_drift"].as_f64().is_some_and(|x| x >= 1.0)
                || m["drifted_features"].as_f64().is_some_and(|x| x > 0.0);
            drift_detected = Some(window_drift || drift_detected.unwrap_or(false));
        }
        d.step(
            "monitor",
            if v.is_null() {
                Outcome::Failed
            } else {
                Outcome::Ok
            },
            &format!(
                "keel monitor --once (monitor.yaml): drift share {}, alert fired = {alert_fired}; see {}",
                v["metrics"]["drift_share"],
                r.log.display()
            ),
        );
    } else {
        d.step(
            "monitor",
            Outcome::NotAvailable,
            "`keel monitor` is not in this binary, so no alert can fire",
        );
    }

    // 5. Retrain on fresh data.
    let mut retrained = false;
    let mut metrics_after = Value::Null;
    let mut gates_after = Value::Null;
    let mut promoted_version = None;
    if alert_fired || drift_detected == Some(true) {
        d.say(if alert_fired {
            "\n5. Retrain (the monitor's drift alert fired): fresh labelled data from the drifted population → the same pipeline"
        } else {
            "\n5. Retrain (keel drift detected drift): fresh labelled data from the drifted population → the same pipeline"
        });
        let fresh = fraud::generate(TRAIN_ROWS, 4, fraud::Shift::Drifted, 3_000_000);
        write_if_changed(
            &dir.join("data/raw/transactions.csv"),
            &fraud::to_csv(&fresh),
        )?;
        let r = d.keel(&[
            "data",
            "add",
            "data/raw",
            "-m",
            "fresh transactions after the drift",
        ])?;
        d.step(
            "data add",
            if r.ok { Outcome::Ok } else { Outcome::Failed },
            "a new version of data/raw (keel data log data/raw)",
        );
        let r = d.keel(&["run", "--json"])?;
        let second = pipeline_summary(&r);
        metrics_after = read_json(&dir.join("selected/metrics.json"));
        gates_after = read_json(&dir.join("gate/gates.json"));
        narrate_run(&mut d, "retrain pipeline", &r, &second, &metrics_after);
        retrained = r.ok;
        runs.push(second);
        if retrained && with_registry {
            promoted_version = promote(&mut d, "champion");
        }
    } else {
        d.say("\n5. Retrain");
        let why = if drift_detected.is_none() && !monitor_ran {
            "no drift check ran"
        } else {
            "no drift was detected and no alert fired"
        };
        d.step("retrain", Outcome::Skipped, why);
    }

    // 6. Traffic keeps flowing across the swap.
    let mut served_after = None;
    if let Some((addr, h)) = client {
        std::thread::sleep(Duration::from_secs(3));
        served_after = traffic::http(addr, "GET", "/version", "")
            .ok()
            .map(|(_, b)| b);
        stats.stop.store(true, Ordering::SeqCst);
        let _ = h.join();
    }
    let requests = stats.requests.load(Ordering::SeqCst);
    let failed = stats.failed.load(Ordering::SeqCst);
    if let Some(c) = child.as_mut() {
        d.step(
            "traffic",
            if failed == 0 {
                Outcome::Ok
            } else {
                Outcome::Failed
            },
            &format!(
                "{requests} requests ({} after the drift), {failed} failed{}",
                stats.drifted_requests.load(Ordering::SeqCst),
                stats
                    .first_error
                    .lock()
                    .map(|e| e
                        .clone()
                        .map(|e| format!("; first: {e}"))
                        .unwrap_or_default())
                    .unwrap_or_default()
            ),
        );
        if !args.keep_serving {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    // Summary.
    let deployed = std::fs::read_link(dir.join("deploy/production"))
        .ok()
        .map(|p| p.display().to_string());
    let gates_passed = if retrained {
        gates_after["gates"]["passed"].as_bool()
    } else {
        gates_before["gates"]["passed"].as_bool()
    };
    let seconds = started.elapsed().as_secs_f64();
    let summary = json!({
        "dir": dir,
        "rerun": rerun,
        "seconds": (seconds * 10.0).round() / 10.0,
        "steps": d.steps.clone(),
        "validated": validated,
        "pipeline_runs": runs,
        "first_pipeline_cached": first["fully_cached"],
        "metrics_before": metrics_before,
        "metrics_after": metrics_after,
        "drift_detected": drift_detected.unwrap_or(false),
        "drift_checked": drift_detected.is_some(),
        "drift_scores_before": drift_before,
        "drift_scores_after": drift_after,
        "alert_fired": alert_fired,
        "retrained": retrained,
        "gates_passed": gates_passed,
        "registered": with_registry,
        "promoted_version": promoted_version,
        "deployed": deployed,
        "served": child.is_some(),
        "served_version_after": served_after,
        "requests": if child.is_some() { json!(requests) } else { Value::Null },
        "failed_requests": if child.is_some() { json!(failed) } else { Value::Null },
        "reports": {
            "evaluation_html": "reports/eval-*.html",
            "validation_html": "quality/validation.html",
            "drift_html": ["quality/drift-before.html", "quality/drift-after.html"],
            "gates": "gate/gates.json",
            "logs": "demo-logs/",
            "pipeline_runs": ".keel/runs/",
        },
    });
    if global.json {
        super::print_json(&summary);
    } else {
        print_summary(&d, &summary);
    }
    if args.keep_serving {
        if let Some(mut c) = child {
            d.say("keel serve keeps running (Ctrl-C to stop)");
            let _ = c.wait();
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Points `alias` of fraud-detector at the version the pipeline's register
/// job just registered (`registry/register.json`); returns that version.
fn promote(d: &mut Demo, alias: &str) -> Option<i64> {
    let registered = read_json(&d.dir.join("registry/register.json"));
    let Some(version) = find_key(&registered, &["version"]).and_then(Value::as_i64) else {
        d.step(
            "promote",
            Outcome::Failed,
            "the register job wrote no version (registry/register.json)",
        );
        return None;
    };
    let v = version.to_string();
    match d.keel(&["models", "promote", "fraud-detector", &v, "--alias", alias]) {
        Ok(r) if r.ok => {
            d.step(
                "promote",
                Outcome::Ok,
                &format!("models:/fraud-detector@{alias} -> v{version}"),
            );
            Some(version)
        }
        Ok(r) => {
            d.step(
                "promote",
                Outcome::Failed,
                &format!("see {}", r.log.display()),
            );
            None
        }
        Err(e) => {
            d.step("promote", Outcome::Failed, &e.to_string());
            None
        }
    }
}

fn narrate_run(d: &mut Demo, name: &str, r: &Ran, s: &Value, metrics: &Value) {
    let cached = s["cached_jobs"].as_array().map_or(0, Vec::len);
    let detail = format!(
        "{} in run {}: {} jobs, {cached} of {} cacheable cached{}; best candidate {} (roc_auc {})",
        s["status"].as_str().unwrap_or("failed"),
        s["run_id"].as_str().unwrap_or("?"),
        s["jobs"],
        s["cacheable_jobs"],
        if s["fully_cached"].as_bool() == Some(true) {
            " — reused from the cache, nothing retrained"
        } else {
            ""
        },
        metrics["candidate"].as_str().unwrap_or("?"),
        metrics["roc_auc"]
            .as_f64()
            .map_or("?".into(), |v| format!("{v:.4}")),
    );
    d.step(
        name,
        if r.ok { Outcome::Ok } else { Outcome::Failed },
        &detail,
    );
}

fn print_summary(d: &Demo, s: &Value) {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\nSummary ({:.1}s)",
        s["seconds"].as_f64().unwrap_or(0.0)
    );
    for st in s["steps"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  {:<14} {}",
            st["status"].as_str().unwrap_or(""),
            st["step"].as_str().unwrap_or("")
        );
    }
    for (i, r) in s["pipeline_runs"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let _ = writeln!(
            o,
            "  pipeline run {}: {} — cached: {}",
            i + 1,
            r["status"].as_str().unwrap_or("?"),
            r["cached_jobs"]
                .as_array()
                .map_or("none".into(), |c| if c.is_empty() {
                    "none".to_string()
                } else {
                    c.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
        );
    }
    let _ = writeln!(
        o,
        "  roc_auc before/after retrain: {} / {}",
        s["metrics_before"]["roc_auc"], s["metrics_after"]["roc_auc"]
    );
    let _ = writeln!(
        o,
        "  drift detected: {}, alert fired: {}, retrained: {}, gates passed: {}, promoted version: {}, deployed: {}",
        s["drift_detected"], s["alert_fired"], s["retrained"], s["gates_passed"], s["promoted_version"], s["deployed"]
    );
    let _ = writeln!(
        o,
        "  requests: {}, failed: {}",
        s["requests"], s["failed_requests"]
    );
    let _ = writeln!(
        o,
        "\nReports in {}: reports/eval-*.html (evaluation), quality/*.html (validation, drift), gate/gates.json, demo-logs/",
        d.dir.display()
    );
    let _ = writeln!(
        o,
        "Try next (cd {}):\n  keel data log data/raw\n  keel exp show\n  keel run            # everything cached now\n  keel evaluate deploy/production data/prepared/test.csv --html eval.html\n  keel demo --dir {}   # again: the pipeline is reused from the cache",
        d.dir.display(),
        d.dir.display()
    );
    d.say(&o);
}
