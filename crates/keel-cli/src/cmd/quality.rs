//! `keel data profile`, `keel data validate`, `keel drift`: data quality,
//! glue over `keel-data`. Exit code 1 when validation fails or the dataset
//! drifts, so a CI job can gate on it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use keel_data::drift::{ColumnOverride, DriftOptions, DriftReport, Method};
use keel_data::profile::{ColumnProfile, Profile, PROFILE_VERSION};
use keel_data::{Contract, ValidationReport};

use super::{block_on, CheckFailed, Global};

/// `keel data profile FILE`.
#[derive(clap::Args, Debug)]
pub struct ProfileArgs {
    /// A CSV, Parquet or Arrow IPC file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Recompute even when a profile of the same bytes is cached in the
    /// project.
    #[arg(long)]
    pub no_cache: bool,
}

/// `keel data validate DATA --contract C`.
#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// The data to validate (CSV, Parquet or Arrow IPC).
    #[arg(value_name = "DATA")]
    pub data: PathBuf,
    /// The contract (`*.contract.yaml`).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub contract: PathBuf,
    /// Also write a self-contained HTML report here.
    #[arg(long, value_name = "OUT")]
    pub html: Option<PathBuf>,
}

/// `keel drift --reference A --current B`.
#[derive(clap::Args, Debug)]
pub struct DriftArgs {
    /// The reference data (e.g. the training set).
    #[arg(long, value_name = "FILE")]
    pub reference: PathBuf,
    /// The current data (e.g. a window of production inputs).
    #[arg(long, value_name = "FILE")]
    pub current: PathBuf,
    /// Only these columns (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "COL")]
    pub columns: Vec<String>,
    /// One test for every column: ks, chisquare, z, wasserstein,
    /// jensenshannon, psi, kl_div (default: chosen per column as Evidently does).
    #[arg(long, value_name = "METHOD")]
    pub method: Option<Method>,
    /// One threshold for every column (default: the method's).
    #[arg(long, value_name = "T")]
    pub threshold: Option<f64>,
    /// Per-column test and threshold, e.g. `--column-method age=psi:0.2`.
    #[arg(long = "column-method", value_name = "COL=METHOD[:T]")]
    pub column_method: Vec<String>,
    /// Dataset drift when at least this share of columns drifts.
    #[arg(long, default_value_t = 0.5, value_name = "SHARE")]
    pub drift_share: f64,
    /// Also write a self-contained HTML report with per-column histograms.
    #[arg(long, value_name = "OUT")]
    pub html: Option<PathBuf>,
}

fn resolve(global: &Global, p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        global.cwd()?.join(p)
    })
}

fn write_html(path: &Path, html: &str) -> Result<()> {
    std::fs::write(path, html).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Renders rows as an aligned text table.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(w - c.chars().count()));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e7) {
        format!("{v:.3e}")
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// `keel data profile FILE`.
pub fn profile(global: &Global, args: ProfileArgs) -> Result<ExitCode> {
    let path = resolve(global, &args.file)?;
    let p = cached_profile(global, &path, args.no_cache)?;
    if global.json {
        println!("{}", p.to_json());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: {} rows, {} columns\n",
        args.file.display(),
        p.rows,
        p.columns.len()
    );
    let rows: Vec<Vec<String>> = p.columns.iter().map(profile_row).collect();
    print!(
        "{}",
        table(
            &[
                "column",
                "type",
                "kind",
                "count",
                "nulls",
                "distinct",
                "min",
                "max",
                "mean",
                "std",
                "median",
                "top values"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// The profile of `path`; inside a keel project, looked up in (and else
/// added to) the project's profiles by content hash and profiler version,
/// so the profile of a versioned file is computed once.
fn cached_profile(global: &Global, path: &Path, no_cache: bool) -> Result<Profile> {
    if no_cache {
        return Ok(keel_data::profile(path)?);
    }
    let store = match global.store() {
        Ok(store) => store,
        Err(e) => {
            // Outside a project there is nowhere to keep a cache; a
            // project whose DB cannot be opened only loses the cache.
            if !matches!(
                e.downcast_ref::<keel_store::StoreError>(),
                Some(keel_store::StoreError::NotAProject { .. })
            ) {
                eprintln!("warning: profile not cached: {e:#}");
            }
            return Ok(keel_data::profile(path)?);
        }
    };
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| Ok((m.len(), m.modified()?)))
            .with_context(|| format!("reading {}", p.display()))
    };
    let before = stamp(path)?;
    let hash = keel_store::objects::hash_file(path)?.to_hex();
    let version = i64::from(PROFILE_VERSION);
    if let Some(json) = block_on(keel_store::profiles::get(&store.db, &hash, version))? {
        // A row that no longer parses (an older layout under the same
        // version) is recomputed rather than trusted.
        if let Ok(p) = serde_json::from_str::<Profile>(&json) {
            eprintln!("{}: cached profile of {}", path.display(), &hash[..12]);
            return Ok(p);
        }
    }
    let p = keel_data::profile(path)?;
    // Bytes that changed while they were read are not what was hashed.
    if stamp(path)? == before {
        let json = serde_json::to_string(&p)?;
        block_on(keel_store::profiles::put(&store.db, &hash, version, &json))?;
    }
    Ok(p)
}

fn profile_row(c: &ColumnProfile) -> Vec<String> {
    let distinct = if c.distinct_exact {
        c.distinct.to_string()
    } else {
        format!("~{}", c.distinct)
    };
    let (min, max, mean, std, median) = match (&c.numeric, &c.text) {
        (Some(n), _) => (
            num(n.min),
            num(n.max),
            num(n.mean),
            num(n.std),
            n.quantiles
                .iter()
                .find(|q| q.0 == 0.5)
                .map_or("-".into(), |q| num(q.1)),
        ),
        (None, Some(t)) => (
            clip(&t.min, 16),
            clip(&t.max, 16),
            "-".into(),
            "-".into(),
            "-".into(),
        ),
        _ => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
    };
    let top: Vec<String> = c
        .top_values
        .iter()
        .take(3)
        .map(|t| format!("{} ({})", clip(&t.value, 12), t.count))
        .collect();
    vec![
        c.name.clone(),
        c.data_type.clone(),
        format!("{:?}", c.kind).to_lowercase(),
        c.count.to_string(),
        c.nulls.to_string(),
        distinct,
        min,
        max,
        mean,
        std,
        median,
        top.join(", "),
    ]
}

/// `keel data validate DATA --contract C`.
pub fn validate(global: &Global, args: ValidateArgs) -> Result<ExitCode> {
    let contract = Contract::from_path(&resolve(global, &args.contract)?)?;
    let report = keel_data::validate(&resolve(global, &args.data)?, &contract)?;
    if let Some(out) = &args.html {
        write_html(&resolve(global, out)?, &report.to_html())?;
    }
    if global.json {
        println!("{}", report.to_json());
    } else {
        print_validation(&report);
    }
    if report.success {
        Ok(ExitCode::SUCCESS)
    } else {
        let failed = report.evaluated - report.successful;
        Err(CheckFailed(format!(
            "validation failed: {failed} of {} checks failed",
            report.evaluated
        ))
        .into())
    }
}

fn print_validation(r: &ValidationReport) {
    println!("{} against {}: {} rows\n", r.data, r.contract, r.rows);
    let rows: Vec<Vec<String>> = r
        .checks
        .iter()
        .map(|c| {
            let mut detail = c.observed.clone().unwrap_or_default();
            if !c.examples.is_empty() {
                let ex: Vec<String> = c
                    .examples
                    .iter()
                    .take(5)
                    .map(|e| format!("{:?}", clip(e, 20)))
                    .collect();
                if !detail.is_empty() {
                    detail.push(' ');
                }
                detail.push_str(&format!("e.g. {}", ex.join(", ")));
            }
            vec![
                if c.success { "ok" } else { "FAIL" }.to_string(),
                c.column.clone().unwrap_or_else(|| "-".into()),
                c.check.clone(),
                c.expected.clone(),
                if c.success && c.unexpected_count == 0 {
                    String::new()
                } else {
                    format!(
                        "{} ({:.2}%)",
                        c.unexpected_count,
                        c.unexpected_fraction * 100.0
                    )
                },
                detail,
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["", "column", "check", "expected", "unexpected", "details"],
            &rows
        )
    );
    println!("\n{} of {} checks passed", r.successful, r.evaluated);
}

/// `keel drift --reference A --current B`.
pub fn drift(global: &Global, args: DriftArgs) -> Result<ExitCode> {
    let mut options = DriftOptions::evidently_defaults();
    if !args.columns.is_empty() {
        options.columns = Some(args.columns.clone());
    }
    options.method = args.method;
    options.threshold = args.threshold;
    options.drift_share = args.drift_share;
    for spec in &args.column_method {
        let Some((col, rest)) = spec.split_once('=') else {
            bail!("--column-method {spec}: expected COL=METHOD[:THRESHOLD]");
        };
        let (m, t) = match rest.split_once(':') {
            Some((m, t)) => (
                m,
                Some(
                    t.parse::<f64>()
                        .with_context(|| format!("--column-method {spec}: bad threshold"))?,
                ),
            ),
            None => (rest, None),
        };
        let method = if m.is_empty() {
            None
        } else {
            Some(m.parse::<Method>().map_err(anyhow::Error::msg)?)
        };
        options.per_column.insert(
            col.to_string(),
            ColumnOverride {
                method,
                threshold: t,
            },
        );
    }
    let report = keel_data::drift_files(
        &resolve(global, &args.reference)?,
        &resolve(global, &args.current)?,
        &options,
    )?;
    if let Some(out) = &args.html {
        write_html(&resolve(global, out)?, &report.to_html())?;
    }
    if global.json {
        println!("{}", report.to_json());
    } else {
        print_drift(&report);
    }
    if report.dataset_drift {
        Err(CheckFailed(format!(
            "dataset drift: {} of {} columns drifted",
            report.drifted_columns, report.tested_columns
        ))
        .into())
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

fn print_drift(r: &DriftReport) {
    println!(
        "reference {} rows, current {} rows\n",
        r.reference_rows, r.current_rows
    );
    let rows: Vec<Vec<String>> = r
        .columns
        .iter()
        .map(|c| {
            let verdict = match (&c.skipped, c.drifted) {
                (Some(why), _) => format!("skipped: {why}"),
                (None, true) => "DRIFT".into(),
                (None, false) => "ok".into(),
            };
            vec![
                c.column.clone(),
                format!("{:?}", c.kind).to_lowercase(),
                c.method.map_or("-".into(), |m| m.to_string()),
                num(c.score),
                num(c.threshold),
                verdict,
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["column", "kind", "test", "score", "threshold", "verdict"],
            &rows
        )
    );
    println!(
        "\n{} of {} columns drifted ({:.1}%): {}",
        r.drifted_columns,
        r.tested_columns,
        r.share * 100.0,
        if r.dataset_drift {
            "DATASET DRIFT"
        } else {
            "no dataset drift"
        }
    );
}
