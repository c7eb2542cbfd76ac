//! One module per top-level command. Each parses nothing itself (clap did)
//! and calls one library operation, then renders its result.

pub mod data;
pub mod demo;
pub mod fsck;
pub mod init;
pub mod ml;
pub mod models;
pub mod quality;
pub mod run;
pub mod serve;
pub mod server;

use std::path::PathBuf;

/// Options that every command accepts.
#[derive(Debug, Clone)]
pub struct Global {
    pub chdir: Option<PathBuf>,
    pub db: Option<String>,
    pub objects: Option<String>,
    pub json: bool,
}

/// A failure that is an answer, not an error: a check ran and found
/// problems (fsck, validate, gate). Exit code 1, and the report was
/// already printed.
#[derive(Debug)]
pub struct CheckFailed(pub String);

impl std::fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckFailed {}

/// Exit codes: 0 success, 1 a check failed (fsck, validate, gate), 2 any
/// error (bad input, missing data, I/O).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<CheckFailed>().is_some() {
        1
    } else {
        2
    }
}

impl Global {
    /// The directory the command runs in (`-C DIR` or the process's).
    pub fn cwd(&self) -> anyhow::Result<PathBuf> {
        let cwd = std::env::current_dir()?;
        let dir = match &self.chdir {
            Some(d) => cwd.join(d),
            None => cwd,
        };
        dir.canonicalize()
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))
    }

    /// Where `--db`/`--objects` (or `KEEL_DB`/`KEEL_OBJECTS`) point.
    pub fn overrides(&self) -> keel_store::Overrides {
        keel_store::Overrides {
            db: self.db.clone(),
            objects: self.objects.clone(),
        }
    }

    /// Opens the project that contains the working directory.
    pub fn store(&self) -> anyhow::Result<keel_store::Store> {
        let cwd = self.cwd()?;
        Ok(block_on(keel_store::Store::open(&cwd, &self.overrides()))?)
    }
}

/// Runs a future to completion on a fresh multi-threaded runtime. The CLI
/// is synchronous; the stores are async because the server shares them.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
        .block_on(f)
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}
