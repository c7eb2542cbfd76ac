//! `keel serve` and `keel monitor`: glue over `keel-serve`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use keel_serve::monitor::{self, MonitorConfig};
use keel_serve::predlog::{Durability, LogConfig};
use keel_serve::resolve::LocalResolver;
use keel_serve::server::{AppState, ServeConfig};

use super::Global;

pub(crate) mod registry;

/// `keel serve MODEL_URI`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// `models:/NAME@ALIAS`, `models:/NAME/VERSION`, `runs:/ID/model`, or a package directory.
    model_uri: String,
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Prediction-log directory (default: .keel/predictions in a project).
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Do not log predictions.
    #[arg(long, conflicts_with = "log_dir")]
    no_log: bool,
    /// When a response waits for its log record: `write` (written to the
    /// file: survives a crash of the server), `fsync` (on disk: survives a
    /// power cut), `async` (does not wait).
    #[arg(long, default_value = "write", value_parser = parse_durability)]
    log_durability: Durability,
    /// Close a log segment above this many MiB.
    #[arg(long, default_value_t = 64)]
    log_segment_mib: u64,
    /// Close a log segment older than this (e.g. 1h).
    #[arg(long, default_value = "1h")]
    log_segment_age: String,
    /// A challenger model URI (canary or shadow).
    #[arg(long, value_name = "URI")]
    challenger: Option<String>,
    /// Percent of requests the challenger answers.
    #[arg(long, default_value_t = 0, requires = "challenger", value_parser = clap::value_parser!(u8).range(0..=100))]
    canary_percent: u8,
    /// Score every request with the challenger too; log it, never return it.
    #[arg(long, requires = "challenger")]
    shadow: bool,
    /// How often to check the URIs for a new version (alias moves).
    #[arg(long, default_value = "2s")]
    poll: String,
}

/// `keel monitor`.
#[derive(Args, Debug)]
pub struct MonitorArgs {
    /// The monitor configuration.
    #[arg(long, short, default_value = "monitor.yaml")]
    config: PathBuf,
    /// Evaluate one window and exit (for cron and CI).
    #[arg(long)]
    once: bool,
    /// Time between windows in loop mode (default: the window length).
    #[arg(long)]
    interval: Option<String>,
}

pub fn serve(global: &Global, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let cwd = global.cwd()?;
    let mut config = ServeConfig::new(args.model_uri.clone());
    if !args.model_uri.contains(":/") {
        config.uri = cwd.join(&args.model_uri).to_string_lossy().into_owned();
    }
    config.challenger = args.challenger.map(|c| {
        if c.contains(":/") {
            c
        } else {
            cwd.join(c).to_string_lossy().into_owned()
        }
    });
    config.canary_percent = args.canary_percent;
    config.shadow = args.shadow;
    config.poll = monitor::parse_duration(&args.poll)
        .with_context(|| format!("--poll {}: not a duration", args.poll))?;
    let log_dir = match (args.no_log, args.log_dir) {
        (true, _) => None,
        (false, Some(d)) => Some(cwd.join(d)),
        (false, None) => keel_store::Project::discover(&cwd)
            .ok()
            .map(|p| p.keel_dir().join("predictions")),
    };
    if let Some(dir) = log_dir {
        let mut log = LogConfig::new(&dir);
        log.durability = args.log_durability;
        log.max_segment_bytes = args.log_segment_mib << 20;
        log.max_segment_age =
            monitor::parse_duration(&args.log_segment_age).with_context(|| {
                format!("--log-segment-age {}: not a duration", args.log_segment_age)
            })?;
        config.monitor_state = Some(monitor::state_path(&dir));
        eprintln!("keel serve: prediction log in {}", dir.display());
        config.log = Some(log);
    }
    let addr: std::net::SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("--host {} --port {}: not an address", args.host, args.port))?;
    let resolver =
        if uses_registry(&config.uri) || config.challenger.as_deref().is_some_and(uses_registry) {
            let reg = registry::StoreRegistry::open(&cwd, &global.overrides())
                .context("a models:/ or runs:/ URI needs a keel project (run `keel init`)")?;
            LocalResolver::with_registry(Arc::new(reg))
        } else {
            LocalResolver::new()
        };
    super::block_on(async move {
        let state = AppState::new(config, Arc::new(resolver))?;
        keel_serve::server::serve(state, addr).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn uses_registry(uri: &str) -> bool {
    keel_serve::resolve::RegistryUri::parse(uri).is_some()
}

pub fn monitor(global: &Global, args: MonitorArgs) -> anyhow::Result<ExitCode> {
    let cwd = global.cwd()?;
    let path = cwd.join(&args.config);
    let config = if !path.exists() && args.config == std::path::Path::new("monitor.yaml") {
        // No monitor.yaml: watch the project's log with no rules.
        let root = keel_store::Project::discover(&cwd)
            .map(|p| p.root().to_path_buf())
            .unwrap_or(cwd.clone());
        MonitorConfig::parse("log: .keel/predictions\n", &root.join("monitor.yaml"))?
    } else {
        MonitorConfig::load(&path)?
    };
    let keel = std::env::current_exe().context("locating the keel binary")?;
    let interval = match &args.interval {
        Some(i) => {
            monitor::parse_duration(i).with_context(|| format!("--interval {i}: not a duration"))?
        }
        None => config.window(),
    };
    let json = global.json;
    let overrides = global.overrides();
    super::block_on(async move {
        let store = keel_store::Store::open(&cwd, &overrides).await.ok();
        if store.is_none() {
            eprintln!("keel monitor: not in a keel project: windows are not stored (gauges and alerts still work)");
        }
        loop {
            let report =
                monitor::run_once(&config, store.as_ref().map(|s| &s.db), &keel, &cwd).await?;
            if json {
                super::print_json(&serde_json::to_value(&report)?);
            } else {
                let m = &report.metrics;
                let f = |k: &str| {
                    m.get(k).map_or("-".to_string(), |v| {
                        if v.is_nan() {
                            "-".into()
                        } else {
                            format!("{v:.4}")
                        }
                    })
                };
                println!(
                    "{} window {}..{}: rows {}, error rate {}, p99 {} s, drift share {}, prediction drift {}, accuracy {}, alerts fired {}",
                    report.model, report.start_ms, report.end_ms, f("rows"), f("error_rate"), f("latency_p99_seconds"),
                    f("drift_share"), f("prediction_drift_score"), f("accuracy"), report.fired.len()
                );
            }
            if args.once {
                return anyhow::Ok(());
            }
            tokio::time::sleep(interval).await;
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `--log-durability`: the spellings are [`Durability::parse`]'s.
fn parse_durability(s: &str) -> Result<Durability, String> {
    Durability::parse(s).ok_or_else(|| format!("expected write, fsync or async, not {s:?}"))
}
