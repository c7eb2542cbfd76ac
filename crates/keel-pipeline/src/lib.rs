//! keel's pipelines: run a `.gitlab-ci.yml` locally with DVC-like caching.
//!
//! The flow is: [`config::load`] parses the file (keeping every key's line
//! and column), merges `include: local`, resolves `!reference`, `extends`
//! and `default:`, and validates keys as GitLab does; [`pipeline::plan`]
//! evaluates `workflow:rules` and `rules`, expands `parallel` and
//! `parallel:matrix` into instances named as GitLab names them, resolves
//! variables and builds the DAG; [`exec::run`] runs the DAG with `-j N`
//! parallelism, each job a shell in its own process group, skipping jobs
//! whose cache key (script, variables, deps, upstream artifacts, params)
//! was seen in any earlier run and restoring their outs instead.
//!
//! Storage is behind traits ([`store::OutputStore`], [`store::RunCache`],
//! [`store::RunRecorder`]) so the same executor runs against keel's object
//! store and metadata DB ([`keelstore::KeelStore`]) or the file-backed
//! implementation ([`store::FileStore`]).
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join(".gitlab-ci.yml"), "
//! train:
//!   parallel:
//!     matrix:
//!       - {LR: ['0.1', '0.01'], OPT: [adam, sgd]}
//!   script: [echo $LR $OPT]
//! ")?;
//! let cfg = keel_pipeline::config::load(dir.path(), ".gitlab-ci.yml".as_ref())?;
//! let ctx = keel_pipeline::pipeline::RunContext::detect(dir.path());
//! let p = keel_pipeline::pipeline::plan(&cfg, &ctx)?;
//! assert_eq!(p.jobs[0].name, "train: [0.1, adam]");
//! assert_eq!(p.jobs.len(), 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod config;
pub mod duration;
mod error;
pub mod exec;
pub mod exp;
pub mod expr;
pub mod glob;
pub mod hash;
pub mod keelmeta;
pub mod keelstore;
pub mod pipeline;
pub mod store;
pub mod vars;
pub mod yaml;

pub use error::{Error, Pos, Result, Warning};

use std::path::Path;

/// Loads, validates and plans `file` in `project_dir`: everything
/// `keel pipeline lint` checks.
pub fn lint(project_dir: &Path, file: &Path) -> Result<pipeline::Pipeline> {
    let cfg = config::load(project_dir, file)?;
    let ctx = pipeline::RunContext::detect(project_dir);
    pipeline::plan(&cfg, &ctx)
}
