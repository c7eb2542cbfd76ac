//! One module per top-level command. Each parses nothing itself (clap did)
//! and calls one library operation, then renders its result.

pub mod data;
pub mod demo;
pub mod fsck;
pub mod init;

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
