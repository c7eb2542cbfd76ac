//! `keel models list|show|register|promote|rollback`: the model registry,
//! through the same operations as the MLflow API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use keel_store::registry::{self as reg, ModelVersion};
use keel_store::tracking::{artifacts, runs, Actor};
use keel_store::Store;
use serde_json::json;

use super::ml::{GATES_PASSED_TAG, GATES_REPORT_TAG};
use super::{block_on, print_json, CheckFailed, Global};
use crate::output;

/// `keel models …`.
#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// List registered models with their aliases.
    List,
    /// Show a model's versions, aliases and alias history.
    Show {
        /// Registered model name.
        name: String,
    },
    /// Register a new version from a source (models:/<id>, runs:/<run>/<path>, mlflow-artifacts:/…,
    /// or a local package directory, uploaded as a new run's artifacts).
    Register {
        /// Registered model name (created if missing).
        name: String,
        /// Where the version's files are.
        source: String,
        /// The run the source belongs to.
        #[arg(long)]
        run_id: Option<String>,
    },
    /// Point an alias at a version, after checking gates.
    Promote {
        /// Registered model name.
        name: String,
        /// Version number (not `version`: clap reserves that id for `--version`).
        #[arg(value_name = "VERSION")]
        number: i64,
        /// The alias to move (e.g. champion).
        #[arg(long)]
        alias: String,
        /// A gates.yaml to check the version's run metrics against
        /// (no-regression compares with the alias's current version).
        /// Without it, the outcome of the version's last `keel gate` (a
        /// version tag) decides, if there is one.
        #[arg(long, value_name = "FILE")]
        gates: Option<PathBuf>,
        /// Promote even if gates fail (recorded in the history).
        #[arg(long)]
        force: bool,
    },
    /// Move an alias back to the version it pointed at before its last move.
    Rollback {
        /// Registered model name.
        name: String,
        /// The alias.
        #[arg(long)]
        alias: String,
    },
}

/// Runs `keel models …`.
pub fn run(g: &Global, cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    let store = g.store()?;
    block_on(async move {
        match cmd {
            ModelsCommand::List => list(g, &store).await,
            ModelsCommand::Show { name } => show(g, &store, &name).await,
            ModelsCommand::Register {
                name,
                source,
                run_id,
            } => register(g, &store, &name, &source, run_id).await,
            ModelsCommand::Promote {
                name,
                number: version,
                alias,
                gates,
                force,
            } => promote(g, &store, &name, version, &alias, gates, force).await,
            ModelsCommand::Rollback { name, alias } => {
                let (from, to) = reg::rollback(&store, &name, &alias, &Actor::local()).await?;
                if g.json {
                    print_json(&json!({"name": name, "alias": alias, "from": from, "to": to}));
                } else {
                    println!(
                        "{name}@{alias}: {} -> v{to}",
                        from.map_or("none".into(), |v| format!("v{v}"))
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

async fn list(g: &Global, store: &Store) -> anyhow::Result<ExitCode> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = reg::search_models(store, "", &[], 1000, token.as_deref()).await?;
        all.extend(page.items);
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    if g.json {
        let v: Vec<_> = all
            .iter()
            .map(|m| {
                json!({
                    "name": m.name,
                    "latest_version": m.latest_versions.iter().map(|v| v.version).max(),
                    "aliases": m.aliases.iter().map(|(a, v)| (a.clone(), *v)).collect::<BTreeMap<_, _>>(),
                    "last_updated": m.last_updated_timestamp,
                })
            })
            .collect();
        print_json(&json!(v));
    } else {
        let rows: Vec<Vec<String>> = all
            .iter()
            .map(|m| {
                vec![
                    m.name.clone(),
                    m.latest_versions
                        .iter()
                        .map(|v| v.version)
                        .max()
                        .map_or("-".into(), |v| format!("v{v}")),
                    m.aliases
                        .iter()
                        .map(|(a, v)| format!("{a}=v{v}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    output::datetime(m.last_updated_timestamp),
                ]
            })
            .collect();
        output::table(&["MODEL", "LATEST", "ALIASES", "UPDATED"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(g: &Global, store: &Store, name: &str) -> anyhow::Result<ExitCode> {
    let m = reg::get_model(store, name).await?;
    let versions = reg::search_versions(
        store,
        &format!("name = '{}'", name.replace('\'', "''")),
        &[],
        10_000,
        None,
    )
    .await?
    .items;
    let history = reg::alias_history(store, name).await?;
    if g.json {
        print_json(&json!({
            "name": m.name,
            "description": m.description,
            "versions": versions.iter().map(|v| json!({
                "version": v.version, "source": v.source, "run_id": v.run_id, "model_id": v.model_id,
                "stage": v.current_stage.as_str(), "aliases": v.aliases, "created": v.creation_timestamp,
            })).collect::<Vec<_>>(),
            "alias_history": history.iter().map(|e| json!({
                "alias": e.alias, "version": e.version, "previous_version": e.previous_version,
                "action": e.action, "actor": e.actor, "at_ms": e.at_ms, "note": e.note,
            })).collect::<Vec<_>>(),
        }));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}{}",
        m.name,
        if m.description.is_empty() {
            String::new()
        } else {
            format!(": {}", m.description)
        }
    );
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                format!("v{}", v.version),
                v.aliases.join(" "),
                v.current_stage.as_str().to_string(),
                v.source.clone(),
                output::datetime(v.creation_timestamp),
            ]
        })
        .collect();
    output::table(&["VERSION", "ALIASES", "STAGE", "SOURCE", "CREATED"], &rows);
    if !history.is_empty() {
        println!("\nalias history:");
        let rows: Vec<Vec<String>> = history
            .iter()
            .map(|e| {
                let v = |x: Option<i64>| x.map_or("-".into(), |v| format!("v{v}"));
                vec![
                    output::datetime(e.at_ms),
                    e.alias.clone(),
                    e.action.clone(),
                    format!("{} -> {}", v(e.previous_version), v(e.version)),
                    e.actor.clone(),
                    e.note.clone(),
                ]
            })
            .collect();
        output::table(&["WHEN", "ALIAS", "ACTION", "MOVE", "WHO", "NOTE"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}

async fn register(
    g: &Global,
    store: &Store,
    name: &str,
    source: &str,
    run_id: Option<String>,
) -> anyhow::Result<ExitCode> {
    let actor = Actor::local();
    match reg::create_model(store, name, "", &[], &actor).await {
        Ok(_) | Err(keel_store::tracking::TrackingError::AlreadyExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let local = g.cwd()?.join(source);
    let (source, run_id) = if !source.contains(":/") && local.is_dir() {
        let run = upload_dir(store, name, &local).await?;
        (format!("runs:/{run}/model"), Some(run))
    } else {
        (source.to_string(), run_id)
    };
    let source = source.as_str();
    let v = reg::create_version(
        store,
        name,
        source,
        run_id.as_deref(),
        None,
        &[],
        "",
        "",
        &actor,
    )
    .await?;
    if g.json {
        print_json(
            &json!({"name": v.name, "version": v.version, "source": v.source, "storage": v.storage}),
        );
    } else {
        println!("registered {} v{} from {}", v.name, v.version, v.source);
    }
    Ok(ExitCode::SUCCESS)
}

/// Uploads a local package directory as the `model/` artifacts of a new
/// run (in the default experiment); returns the run id.
async fn upload_dir(store: &Store, name: &str, dir: &std::path::Path) -> anyhow::Result<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let ty = e.file_type()?;
            if ty.is_dir() {
                stack.push(e.path());
            } else if ty.is_file() || e.path().is_file() {
                files.push(e.path());
            }
        }
    }
    anyhow::ensure!(!files.is_empty(), "{}: an empty directory", dir.display());
    let run = runs::create(
        store,
        0,
        &Actor::local().0,
        Some(&format!("register {name}")),
        None,
        &[],
    )
    .await?;
    let run_id = run.info.run_id;
    let owner = artifacts::Owner::Run {
        experiment_id: run.info.experiment_id,
        run_id: run_id.clone(),
    };
    for f in files {
        let rel = f.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
        artifacts::put_file(store, &owner, &format!("model/{rel}"), &f).await?;
    }
    runs::update(
        store,
        &run_id,
        Some(runs::RunStatus::Finished),
        Some(keel_store::db::now_ms()),
        None,
    )
    .await?;
    Ok(run_id)
}

/// The latest metrics of the run a version came from.
async fn version_metrics(store: &Store, v: &ModelVersion) -> anyhow::Result<BTreeMap<String, f64>> {
    let Some(run_id) = &v.run_id else {
        anyhow::bail!(
            "{} v{} has no run, so there are no metrics to gate on",
            v.name,
            v.version
        );
    };
    let run = runs::get(store, run_id).await?;
    Ok(run
        .metrics
        .iter()
        .map(|m| (m.key.clone(), m.value))
        .collect())
}

/// The gate outcome a promotion goes by.
struct Checked {
    passed: bool,
    /// The failed gates' messages.
    failed: Vec<String>,
    /// Where the outcome comes from, for the history note.
    source: String,
    report: serde_json::Value,
}

/// Checks `gates` against the version's run metrics (no regression
/// against the version `alias` points at now).
async fn check_gates(
    g: &Global,
    store: &Store,
    v: &ModelVersion,
    alias: &str,
    path: &std::path::Path,
) -> anyhow::Result<Checked> {
    let spec = keel_ml::gates::GateSpec::load(&g.cwd()?.join(path))?;
    let metrics = version_metrics(store, v).await?;
    let baseline = match reg::get_by_alias(store, &v.name, alias).await {
        Ok(cur) => Some(version_metrics(store, &cur).await?),
        Err(_) => None,
    };
    let report = keel_ml::gates::gate(&spec, &metrics, baseline.as_ref());
    Ok(Checked {
        passed: report.passed,
        failed: report.failures().map(|f| f.message.clone()).collect(),
        source: path.display().to_string(),
        report: serde_json::to_value(&report)?,
    })
}

/// The outcome the version's last `keel gate models:/NAME/VERSION …`
/// stored in its tags, if any.
fn recorded_gates(v: &ModelVersion) -> Option<Checked> {
    let tag = |key: &str| v.tags.iter().find(|t| t.key == key).map(|t| &t.value);
    let passed = tag(GATES_PASSED_TAG)? == "true";
    let report: serde_json::Value = tag(GATES_REPORT_TAG)
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let failed = report["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == "failed")
        .filter_map(|r| r["message"].as_str().map(String::from))
        .collect();
    Some(Checked {
        passed,
        failed,
        source: format!(
            "recorded by keel gate, {}",
            report["gates_file"].as_str().unwrap_or("?")
        ),
        report,
    })
}

async fn promote(
    g: &Global,
    store: &Store,
    name: &str,
    version: i64,
    alias: &str,
    gates: Option<PathBuf>,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let v = reg::get_version(store, name, version).await?;
    let checked = match gates {
        Some(path) => Some(check_gates(g, store, &v, alias, &path).await?),
        None => recorded_gates(&v),
    };
    let mut note = String::from("no gates checked");
    let mut report_json = serde_json::Value::Null;
    if let Some(c) = checked {
        note = if c.passed {
            format!("gates passed ({})", c.source)
        } else {
            format!(
                "gates FAILED ({}): {}{}",
                c.source,
                c.failed.join("; "),
                if force { " [forced]" } else { "" }
            )
        };
        report_json = c.report;
        if !c.passed && !force {
            if g.json {
                print_json(&json!({"promoted": false, "gates": report_json}));
            } else {
                for f in &c.failed {
                    eprintln!("gate failed: {f}");
                }
            }
            return Err(CheckFailed(format!(
                "{name} v{version} not promoted to @{alias}: {} gate(s) failed ({}); use --force to override",
                c.failed.len(),
                c.source
            ))
            .into());
        }
    }
    let prev = reg::set_alias(store, name, alias, version, &Actor::local(), &note).await?;
    if g.json {
        print_json(
            &json!({"promoted": true, "name": name, "alias": alias, "from": prev, "to": version, "gates": report_json}),
        );
    } else {
        println!(
            "{name}@{alias}: {} -> v{version} ({note})",
            prev.map_or("none".into(), |p| format!("v{p}"))
        );
    }
    Ok(ExitCode::SUCCESS)
}
