//! A minimal `keel run` driver over the library, for benchmarks when the
//! full `keel` binary is not at hand:
//!
//! ```text
//! cargo run --release -p keel-pipeline --example keel-run -- -C DIR run -j 2
//! ```
//!
//! It accepts `-C DIR`, the word `run`, `-j N` and an optional FILE, runs
//! the pipeline with the file-backed store and prints the same closing
//! line as `keel run`.

use std::path::PathBuf;
use std::process::ExitCode;

use keel_pipeline::exec::{self, CancelToken, Event, ExecOptions, PipelineStatus};
use keel_pipeline::store::FileStore;

fn main() -> ExitCode {
    let mut dir = std::env::current_dir().expect("a working directory");
    let mut file = PathBuf::from(".gitlab-ci.yml");
    let mut jobs = 2;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-C" => dir = dir.join(args.next().expect("-C DIR")),
            "-j" => jobs = args.next().and_then(|n| n.parse().ok()).expect("-j N"),
            "run" => {}
            other => file = PathBuf::from(other),
        }
    }
    let cfg = match keel_pipeline::config::load(&dir, &file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let ctx = keel_pipeline::pipeline::RunContext::detect(&dir);
    let p = match keel_pipeline::pipeline::plan(&cfg, &ctx) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let store = FileStore::new(&dir.join(".keel"));
    let cancel = CancelToken::new();
    cancel.cancel_on_ctrl_c().expect("signal handlers");
    let sink = |e: &Event<'_>| {
        if let Event::Output { job, line } = e {
            println!("{job} │ {line}");
        }
    };
    let runner = exec::Runner {
        pipeline: &p,
        store: &store,
        cache: &store,
        recorder: &store,
        events: &sink,
        cancel,
    };
    let s = match exec::run(&runner, &ExecOptions::with_parallelism(jobs)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let cached = s.jobs.iter().filter(|j| j.cached).count();
    println!(
        "pipeline {} in {:.3}s ({} jobs, {cached} cached)",
        s.status.as_str(),
        s.duration.as_secs_f64(),
        s.jobs.len()
    );
    if s.status == PipelineStatus::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
