//! The `keel` binary: argument parsing and glue only. Every operation lives
//! in a library crate so that the CLI and the HTTP server share one
//! implementation.

/// `print!`/`println!` that end keel quietly when its output is closed
/// (`keel data log | head`), where std's would panic. Defined before the
/// modules so that it shadows std's in all of them.
macro_rules! print {
    ($($arg:tt)*) => { $crate::output::print_out(format_args!($($arg)*)) };
}
macro_rules! println {
    () => { $crate::output::print_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::print_out(format_args!("{}\n", format_args!($($arg)*))) };
}

mod cmd;
mod demo;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// keel: an MLOps platform in one binary — versioned data, cached pipelines,
/// experiment tracking, validation, serving and monitoring.
#[derive(Parser, Debug)]
#[command(name = "keel", version, about, propagate_version = true)]
struct Cli {
    /// Run as if keel was started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    chdir: Option<PathBuf>,

    /// Metadata DB URL (sqlite://PATH or postgres://…); default: the project's.
    #[arg(long, global = true, env = "KEEL_DB", value_name = "URL")]
    db: Option<String>,

    /// Object store URL (a directory or s3://bucket/prefix); default: the project's.
    #[arg(long, global = true, env = "KEEL_OBJECTS", value_name = "URL")]
    objects: Option<String>,

    /// Machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a keel project (.keel/ with the metadata DB and object store).
    Init(cmd::init::InitArgs),
    /// Versioned datasets: add, status, diff, log, checkout, push, pull.
    #[command(subcommand)]
    Data(cmd::data::DataCommand),
    /// Re-hash every object and check every dataset version's references.
    Fsck(cmd::fsck::FsckArgs),
    /// Drift between a reference and a current dataset (Evidently's tests); exit 1 on dataset drift.
    Drift(cmd::quality::DriftArgs),
    /// Run the end-to-end demo of keel's loop.
    Demo(cmd::demo::DemoArgs),
    /// Train a built-in model (logistic regression, gradient boosting) into a model package.
    Train(cmd::ml::TrainArgs),
    /// Evaluate a model on data: metrics, slices, fairness, latency, HTML report.
    Evaluate(cmd::ml::EvaluateArgs),
    /// Check a model against gates.yaml (exit 1 when a gate fails).
    Gate(cmd::ml::GateArgs),
    /// Run a .gitlab-ci.yml locally: DAG, parallel jobs, cached results.
    Run(cmd::run::RunArgs),
    /// Pipeline tools: lint.
    #[command(subcommand)]
    Pipeline(cmd::run::PipelineCommand),
    /// Experiments: params × metrics across pipeline runs.
    #[command(subcommand)]
    Exp(cmd::run::ExpCommand),
    /// Serve a model: Open Inference Protocol V2, MLflow /invocations, /metrics, prediction log.
    Serve(cmd::serve::ServeArgs),
    /// Watch the prediction log: drift, performance, latency, cost; alerts and retraining.
    Monitor(cmd::serve::MonitorArgs),
    /// Serve the MLflow-compatible tracking, registry and artifact API.
    Server(cmd::server::ServerArgs),
    /// API tokens for `keel server`.
    #[command(subcommand)]
    Token(cmd::server::TokenCommand),
    /// The model registry: list, show, register, promote, rollback.
    #[command(subcommand)]
    Models(cmd::models::ModelsCommand),
}

// mimalloc's thread-local free lists: the servers' request paths make
// many small short-lived allocations, and glibc's malloc/free took ~15 %
// of `keel serve`'s CPU under load (+9-16 % requests/s measured with it).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let global = cmd::Global {
        chdir: cli.chdir,
        db: cli.db,
        objects: cli.objects,
        json: cli.json,
    };
    let result = match cli.command {
        Command::Init(args) => cmd::init::run(&global, args),
        Command::Data(args) => cmd::data::run(&global, args),
        Command::Fsck(args) => cmd::fsck::run(&global, args),
        Command::Drift(args) => cmd::quality::drift(&global, args),
        Command::Demo(args) => cmd::demo::run(&global, args),
        Command::Train(args) => cmd::ml::train(&global, args),
        Command::Evaluate(args) => cmd::ml::evaluate_cmd(&global, args),
        Command::Gate(args) => cmd::ml::gate_cmd(&global, args),
        Command::Run(args) => cmd::run::run(&global, args),
        Command::Pipeline(args) => cmd::run::pipeline(&global, args),
        Command::Exp(args) => cmd::run::exp(&global, args),
        Command::Serve(args) => cmd::serve::serve(&global, args),
        Command::Monitor(args) => cmd::serve::monitor(&global, args),
        Command::Server(args) => cmd::server::run(&global, args),
        Command::Token(args) => cmd::server::token(&global, args),
        Command::Models(args) => cmd::models::run(&global, args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            output::report_error(&err);
            ExitCode::from(cmd::exit_code(&err))
        }
    }
}
