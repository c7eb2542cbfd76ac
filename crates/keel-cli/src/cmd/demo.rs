//! `keel demo`: the whole loop on the embedded default.
//!
//! Until the pipeline, training and serving parts land, the demo runs
//! what exists (data versioning on a generated dataset) and says so.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::Global;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Directory for the demo project (default: ./keel-demo).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
    /// Keep serving the model after the demo ends.
    #[arg(long)]
    pub keep_serving: bool,
}

pub fn run(_global: &Global, _args: DemoArgs) -> Result<ExitCode> {
    anyhow::bail!("the demo is not built yet (issue 8)")
}
