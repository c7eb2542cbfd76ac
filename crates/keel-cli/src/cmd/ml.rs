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

use super::{CheckFailed, Global};

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
    /// A model package directory or a `.onnx` file.
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
    /// Baseline model package for no-regression gates (evaluated on the
    /// same data); default: the `no_regression.baseline` path if it exists.
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
    let (ev, _) = run_eval(g, &args.eval, &args.eval.model, &spec.sensitive_columns())?;
    let metrics = flat_metrics(&ev);
    let baseline_path = args.baseline.clone().or_else(|| {
        spec.no_regression
            .as_ref()
            .map(|n| PathBuf::from(&n.baseline))
            .filter(|p| resolve(g, p).exists())
    });
    let baseline: Option<BTreeMap<String, f64>> = match &baseline_path {
        Some(b) => Some(flat_metrics(
            &run_eval(g, &args.eval, b, &spec.sensitive_columns())?.0,
        )),
        None => None,
    };
    let report = gate(&spec, &metrics, baseline.as_ref());
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"gates": report, "metrics": metrics})
            )?
        );
    } else {
        print_report(&report);
    }
    if report.passed {
        Ok(ExitCode::SUCCESS)
    } else {
        let n = report.failures().count();
        Err(CheckFailed(format!("{n} gate(s) failed")).into())
    }
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
