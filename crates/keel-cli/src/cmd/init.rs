//! `keel init`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use keel_store::{Project, Store};

use super::Global;

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Directory to make a keel project (default: the current directory).
    #[arg(value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

pub fn run(global: &Global, args: InitArgs) -> Result<ExitCode> {
    let base = global.cwd()?;
    let dir = args.dir.map(|d| base.join(d)).unwrap_or(base);
    std::fs::create_dir_all(&dir)?;
    let overrides = global.overrides();
    let (project, created) = Project::init(&dir, &overrides)?;
    let store = super::block_on(Store::from_project(project, &overrides))?;
    if global.json {
        super::print_json(&serde_json::json!({
            "root": store.project.root(),
            "created": created,
            "db": store.db.display_url(),
        }));
    } else if created {
        println!(
            "Initialised keel project in {} (metadata DB: {})",
            store.project.root().display(),
            store.db.display_url()
        );
        println!("Next: `keel data add PATH` to version a dataset.");
    } else {
        println!(
            "keel project already initialised in {}; schema is up to date.",
            store.project.root().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
