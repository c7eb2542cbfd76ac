//! `keel train`, `keel evaluate`, `keel gate`: glue over `keel-ml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use keel_ml::evaluate::{evaluate, flat_metrics, EvalConfig, Evaluation, TaskMetrics};
use keel_ml::gates::{gate, GateReport, GateSpec, Status};
use keel_ml::package::{self, KeelMetadata, Package};
use keel_ml::table::Table;
use keel_ml::train::{self, Dataset, TrainParams};

use keel_serve::resolve::RegistryUri;
use keel_store::registry as reg;
use keel_store::tracking::{runs, validate, KeyValue, Metric, TrackingError};
use keel_store::Store;

use super::serve::registry;
use super::{block_on, CheckFailed, Global};

/// `keel train`: fit a built-in model on a CSV file and write an
/// MLflow-format model package.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training data (CSV with a header row).
    #[arg(long, value_name = "CSV")]
    data: PathBuf,
    /// The label column (binary).
    #[arg(long)]
    target: String,
    /// logistic_regression or gradient_boosting.
    #[arg(long, default_value = "gradient_boosting")]
    algorithm: String,
    /// Hyperparameters as YAML (`algorithm:` plus the algorithm's fields).
    #[arg(long, value_name = "YAML")]
    params: Option<PathBuf>,
    /// One hyperparameter, `name=value` (repeatable; overrides --params).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Feature columns, comma-separated (default: all but target/excluded).
    #[arg(long, value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// Columns that are not features (ids, sensitive attributes…).
    #[arg(long, value_delimiter = ',')]
    exclude: Vec<String>,
    /// Held-out data to evaluate on after training.
    #[arg(long, value_name = "CSV")]
    test: Option<PathBuf>,
    /// Where to write the model package.
    #[arg(long, short, default_value = "model")]
    out: PathBuf,
}

/// Options shared by `evaluate` and `gate`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A model package directory or a `.onnx` file (`keel gate` also takes
    /// models:/NAME/VERSION and models:/NAME@ALIAS).
    model: PathBuf,
    /// Evaluation data (CSV).
    data: PathBuf,
    /// The label column (default: the package's).
    #[arg(long)]
    target: Option<String>,
    /// Feature columns in model-input order (default: the package's).
    #[arg(long, value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// Report metrics per value of these columns.
    #[arg(long = "slice", value_delimiter = ',')]
    slices: Vec<String>,
    /// Sensitive columns for fairness metrics.
    #[arg(long, value_delimiter = ',')]
    sensitive: Vec<String>,
    /// Sample-weight column.
    #[arg(long)]
    weight: Option<String>,
    /// Decision threshold on the positive-class probability.
    #[arg(long)]
    threshold: Option<f64>,
    /// Flag fairness groups smaller than this.
    #[arg(long, default_value_t = 30)]
    min_group_size: usize,
}

/// `keel evaluate MODEL DATA`.
#[derive(Args, Debug)]
pub struct EvaluateArgs {
    #[command(flatten)]
    eval: EvalArgs,
    /// Write a self-contained HTML report here.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write the evaluation JSON here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// `keel gate MODEL DATA --gates gates.yaml`.
#[derive(Args, Debug)]
pub struct GateArgs {
    #[command(flatten)]
    eval: EvalArgs,
    /// The gates file.
    #[arg(long, value_name = "YAML")]
    gates: PathBuf,
    /// Baseline model for no-regression gates (evaluated on the same data):
    /// a package, models:/NAME/VERSION or models:/NAME@ALIAS; default: the
    /// gates file's `no_regression.baseline` (for a registered MODEL, a bare
    /// alias there means that alias of the same model).
    #[arg(long, value_name = "MODEL")]
    baseline: Option<PathBuf>,
}

fn resolve(g: &Global, p: &Path) -> PathBuf {
    match &g.chdir {
        Some(d) if p.is_relative() => d.join(p),
        _ => p.to_path_buf(),
    }
}

fn params_from(args: &TrainArgs, g: &Global) -> anyhow::Result<TrainParams> {
    let mut value: serde_json::Value = match &args.params {
        Some(p) => {
            let p = resolve(g, p);
            let text = std::fs::read_to_string(&p).with_context(|| p.display().to_string())?;
            let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).map_err(|e| {
                let (l, c) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
                anyhow::anyhow!("{}:{l}:{c}: {e}", p.display())
            })?;
            serde_json::to_value(v)?
        }
        None => serde_json::json!({}),
    };
    let obj = value
        .as_object_mut()
        .context("--params must be a YAML mapping")?;
    obj.entry("algorithm")
        .or_insert_with(|| serde_json::Value::String(args.algorithm.clone()));
    for kv in &args.set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv}: expected NAME=VALUE"))?;
        let v: serde_json::Value =
            serde_json::from_str(v).unwrap_or(serde_json::Value::String(v.into()));
        obj.insert(k.to_string(), v);
    }
    let algo = obj["algorithm"].as_str().unwrap_or_default().to_string();
    match algo.as_str() {
        "logistic_regression" | "gradient_boosting" => {}
        other => bail!("unknown algorithm {other:?} (logistic_regression, gradient_boosting)"),
    }
    serde_json::from_value(value).context("invalid hyperparameters")
}

/// Runs `keel train`.
pub fn train(g: &Global, args: TrainArgs) -> anyhow::Result<ExitCode> {
    let params = params_from(&args, g)?;
    let table = Table::read_csv(&resolve(g, &args.data))?;
    let data = Dataset::from_table(
        &table,
        &args.target,
        args.features.as_deref(),
        &args.exclude,
    )?;
    let trained = train::train(&data, &params)?;
    let mut meta = KeelMetadata {
        features: trained.features.clone(),
        target: Some(args.target.clone()),
        classes: trained.classes.clone(),
        params: trained.params.flat().into_iter().collect(),
        training_dataset: Some(args.data.display().to_string()),
        ..Default::default()
    };
    let mut evaluation = None;
    if let Some(test) = &args.test {
        let t = Table::read_csv(&resolve(g, test))?;
        let model = keel_ml::onnx::Model::from_bytes(&trained.onnx)?;
        let ev = evaluate(
            &model,
            &t,
            &EvalConfig {
                target: args.target.clone(),
                features: Some(trained.features.clone()),
                ..Default::default()
            },
        )?;
        meta.evaluation = flat_metrics(&ev);
        evaluation = Some(ev);
    }
    let n_ex = table.n_rows().min(5);
    let example: Vec<Vec<f64>> = (0..n_ex)
        .map(|r| data.x[r * data.features.len()..(r + 1) * data.features.len()].to_vec())
        .map(|row| {
            row.into_iter()
                .map(|v| if v.is_nan() { 0.0 } else { v })
                .collect()
        })
        .collect();
    let out = resolve(g, &args.out);
    package::write(&out, &trained.onnx, &meta, &example)?;
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "model": out, "algorithm": params.algorithm(), "params": params,
                "features": trained.features, "classes": trained.classes,
                "train_seconds": trained.train_seconds, "rows": data.n_rows(),
                "evaluation": evaluation,
            }))?
        );
    } else {
        println!(
            "trained {} on {} rows × {} features in {:.2}s → {}",
            params.algorithm(),
            data.n_rows(),
            trained.features.len(),
            trained.train_seconds,
            out.display()
        );
        if let Some(ev) = &evaluation {
            print_metrics(ev);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_eval(
    g: &Global,
    a: &EvalArgs,
    model: &Path,
    extra_sensitive: &[String],
) -> anyhow::Result<(Evaluation, Package)> {
    let pkg = Package::load(&resolve(g, model))?;
    let table = Table::read_csv(&resolve(g, &a.data))?;
    let target = a
        .target
        .clone()
        .or_else(|| pkg.meta.target.clone())
        .context("no --target given and the package does not name its label column")?;
    let mut sensitive = a.sensitive.clone();
    for s in extra_sensitive {
        if !sensitive.contains(s) {
            sensitive.push(s.clone());
        }
    }
    let cfg = EvalConfig {
        target,
        features: a.features.clone().or_else(|| pkg.features()),
        slices: a.slices.clone(),
        sensitive,
        weight: a.weight.clone(),
        threshold: a.threshold,
        min_group_size: a.min_group_size,
    };
    let ev = evaluate(&pkg.model, &table, &cfg)
        .with_context(|| format!("evaluating {} on {}", model.display(), a.data.display()))?;
    Ok((ev, pkg))
}

fn print_metrics(ev: &Evaluation) {
    let task = match &ev.metrics {
        TaskMetrics::Binary(_) => "binary classification",
        TaskMetrics::Multiclass(_) => "multiclass classification",
        TaskMetrics::Regression(_) => "regression",
    };
    println!("{task}, {} rows", ev.n_rows);
    let flat = flat_metrics(ev);
    let width = flat.keys().map(String::len).max().unwrap_or(0);
    for (k, v) in &flat {
        println!("  {k:<width$}  {v:>12.4}");
    }
    for f in &ev.fairness {
        if !f.small_groups.is_empty() {
            println!(
                "  note: {}: groups below the minimum size: {}",
                f.column,
                f.small_groups.join(", ")
            );
        }
    }
}

/// Runs `keel evaluate`.
pub fn evaluate_cmd(g: &Global, args: EvaluateArgs) -> anyhow::Result<ExitCode> {
    let (ev, _) = run_eval(g, &args.eval, &args.eval.model, &[])?;
    if let Some(p) = &args.html {
        let p = resolve(g, p);
        let title = format!(
            "keel evaluation: {} on {}",
            args.eval.model.display(),
            args.eval.data.display()
        );
        std::fs::write(&p, keel_ml::report::html(&ev, &title))
            .with_context(|| p.display().to_string())?;
    }
    if let Some(p) = &args.out {
        let p = resolve(g, p);
        std::fs::write(&p, serde_json::to_vec_pretty(&ev)?)
            .with_context(|| p.display().to_string())?;
    }
    if g.json {
        println!("{}", serde_json::to_string_pretty(&ev)?);
    } else {
        print_metrics(&ev);
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `keel gate`: exit 0 when every gate passes, 1 when one fails.
pub fn gate_cmd(g: &Global, args: GateArgs) -> anyhow::Result<ExitCode> {
    let spec = GateSpec::load(&resolve(g, &args.gates))?;
    // One runtime for the whole command: the store's connections belong to
    // the runtime that opened them.
    block_on(gate_async(g, &args, &spec))
}

/// A registered version being gated or compared with.
struct Registered {
    version: reg::ModelVersion,
    dir: PathBuf,
}

/// `models:/NAME/VERSION` or `models:/NAME@ALIAS`; `None` for a path.
fn registry_uri(s: &str) -> anyhow::Result<Option<RegistryUri>> {
    match RegistryUri::parse(s) {
        None => Ok(None),
        Some(RegistryUri::Run { .. }) => bail!(
            "{s}: gate a package directory, a .onnx file, models:/NAME/VERSION or models:/NAME@ALIAS"
        ),
        Some(uri) => Ok(Some(uri)),
    }
}

/// Looks a registered version up (`None` when an alias is not set) and
/// materializes its package.
async fn lookup(store: &Store, uri: &RegistryUri) -> anyhow::Result<Option<Registered>> {
    let version = match uri {
        RegistryUri::Alias { name, alias } => match reg::get_by_alias(store, name, alias).await {
            Ok(v) => v,
            Err(TrackingError::NotFound(_)) => {
                reg::get_model(store, name).await?;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        },
        RegistryUri::Version { name, version } => {
            reg::get_version(store, name, reg::version_number(version)?).await?
        }
        RegistryUri::Run { .. } => unreachable!("registry_uri refuses runs:/"),
    };
    let dir = registry::version_dir(store, &registry::cache_dir(store), &version).await?;
    Ok(Some(Registered { version, dir }))
}

async fn gate_async(g: &Global, args: &GateArgs, spec: &GateSpec) -> anyhow::Result<ExitCode> {
    let model_arg = args.eval.model.to_string_lossy().into_owned();
    let explicit_baseline = args.baseline.is_some();
    let baseline_arg = match &args.baseline {
        Some(b) => Some(b.to_string_lossy().into_owned()),
        None => spec.no_regression.as_ref().map(|n| n.baseline.clone()),
    };
    let model_uri = registry_uri(&model_arg)?;
    let mut baseline_uri = match &baseline_arg {
        Some(b) => registry_uri(b)?,
        None => None,
    };
    // A bare alias (`baseline: production`) names an alias of the gated
    // model when that model is a registered one and no such path exists.
    if let (None, Some(b), Some(m)) = (&baseline_uri, &baseline_arg, &model_uri) {
        let name = match m {
            RegistryUri::Alias { name, .. } | RegistryUri::Version { name, .. } => name,
            RegistryUri::Run { .. } => unreachable!("registry_uri refuses runs:/"),
        };
        if !b.contains('/') && !resolve(g, Path::new(b)).exists() {
            baseline_uri = Some(RegistryUri::Alias {
                name: name.clone(),
                alias: b.clone(),
            });
        }
    }
    let store = if model_uri.is_some() || baseline_uri.is_some() {
        Some(Store::open(&g.cwd()?, &g.overrides()).await?)
    } else {
        None
    };
    let registered = match (&model_uri, &store) {
        (Some(uri), Some(store)) => Some(
            lookup(store, uri)
                .await?
                .with_context(|| format!("{model_arg}: the alias is not set"))?,
        ),
        _ => None,
    };
    let model_path = registered
        .as_ref()
        .map_or_else(|| args.eval.model.clone(), |r| r.dir.clone());
    let (ev, _) = run_eval(g, &args.eval, &model_path, &spec.sensitive_columns())?;
    let metrics = flat_metrics(&ev);
    let baseline_path = match (&baseline_uri, &store, &baseline_arg) {
        (Some(uri), Some(store), _) => lookup(store, uri).await?.map(|r| r.dir),
        (_, _, Some(b)) if explicit_baseline || resolve(g, Path::new(b)).exists() => {
            Some(PathBuf::from(b))
        }
        _ => None,
    };
    let baseline: Option<BTreeMap<String, f64>> = match &baseline_path {
        Some(b) => Some(flat_metrics(
            &run_eval(g, &args.eval, b, &spec.sensitive_columns())?.0,
        )),
        None => None,
    };
    let report = gate(spec, &metrics, baseline.as_ref());
    if let (Some(r), Some(store)) = (&registered, &store) {
        record_gates(store, &r.version, args, &metrics, &report)
            .await
            .with_context(|| {
                format!(
                    "recording the gate results on {} v{}",
                    r.version.name, r.version.version
                )
            })?;
    }
    if g.json {
        let model = registered
            .as_ref()
            .map(|r| serde_json::json!({"name": r.version.name, "version": r.version.version}));
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "gates": report, "metrics": metrics, "model": model,
                "baseline": baseline_path.as_ref().and(baseline_arg.as_ref()),
            }))?
        );
    } else {
        print_report(&report);
        if let Some(r) = &registered {
            println!(
                "recorded on {} v{} (tag {GATES_PASSED_TAG})",
                r.version.name, r.version.version
            );
        }
    }
    if report.passed {
        Ok(ExitCode::SUCCESS)
    } else {
        let n = report.failures().count();
        Err(CheckFailed(format!("{n} gate(s) failed")).into())
    }
}

/// Version tag saying whether the version's last `keel gate` passed
/// (`true`/`false`); `keel models promote` refuses a `false`.
pub const GATES_PASSED_TAG: &str = "keel.gates.passed";
/// Version tag with that gate run's report (JSON).
pub const GATES_REPORT_TAG: &str = "keel.gates.report";

/// Stores a gate run on the version: its metrics on the version's run (so
/// later no-regression checks and `promote --gates` see them), and the
/// outcome and report as version tags.
async fn record_gates(
    store: &Store,
    v: &reg::ModelVersion,
    args: &GateArgs,
    metrics: &BTreeMap<String, f64>,
    report: &GateReport,
) -> anyhow::Result<()> {
    if let Some(run_id) = &v.run_id {
        let now = keel_store::db::now_ms();
        let points: Vec<Metric> = metrics
            .iter()
            .map(|(k, &value)| Metric::summary(k.as_str(), value, now))
            .collect();
        for chunk in points.chunks(validate::MAX_BATCH_METRICS) {
            runs::log_batch(store, run_id, chunk, &[], &[]).await?;
        }
    }
    let detail = serde_json::json!({
        "passed": report.passed,
        "results": report.results,
        "gates_file": args.gates,
        "data": args.eval.data,
        "at_ms": keel_store::db::now_ms(),
    });
    for (key, value) in [
        (GATES_PASSED_TAG, report.passed.to_string()),
        (GATES_REPORT_TAG, detail.to_string()),
    ] {
        let tag = KeyValue {
            key: key.into(),
            value,
        };
        reg::set_version_tag(store, &v.name, v.version, &tag).await?;
    }
    Ok(())
}

fn print_report(r: &GateReport) {
    let width = r.results.iter().map(|x| x.metric.len()).max().unwrap_or(0);
    for x in &r.results {
        let mark = match x.status {
            Status::Passed => "pass",
            Status::Failed => "FAIL",
            Status::Skipped => "skip",
        };
        println!("{mark}  {:<13} {:<width$}  {}", x.kind, x.metric, x.message);
    }
    println!(
        "{}",
        if r.passed {
            "all gates passed"
        } else {
            "gates failed"
        }
    );
}
