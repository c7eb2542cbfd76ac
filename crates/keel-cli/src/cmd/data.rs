//! `keel data …`: versioned datasets.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Subcommand, ValueEnum};
use keel_store::data::{self, CheckoutOptions, DataChange, DatasetVersion, Durability, VersionRef};
use keel_store::objects::{LinkMode, RemoteObjects};
use keel_store::Store;
use serde_json::{json, Value};

use super::{block_on, print_json, Global};
use crate::output::{self, Bars};

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Profile a CSV/Parquet/Arrow file: types, nulls, distinct, quantiles, top values.
    Profile(super::quality::ProfileArgs),
    /// Check a data file against a contract (*.contract.yaml); exit 1 on failure.
    Validate(super::quality::ValidateArgs),
    /// Store files or directories and record a new version of each.
    Add {
        /// Files or directories (inside the project).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
        /// A note recorded with the version.
        #[arg(short, long)]
        message: Option<String>,
        /// Flush the new objects to the disk before recording the version, so
        /// that it survives a power loss too (default: survives a kill of
        /// keel; the kernel writes the bytes back within seconds).
        #[arg(long)]
        sync: bool,
    },
    /// Show datasets whose workspace bytes differ from their pointer.
    Status {
        /// Datasets to check (default: every tracked dataset with a pointer).
        #[arg(value_name = "PATH")]
        paths: Vec<String>,
    },
    /// Files added, removed and modified between two versions.
    Diff {
        /// PATH@VERSION (VERSION: 3, v3, latest, or a hash prefix).
        a: String,
        /// PATH@VERSION, or @VERSION for the same dataset as A.
        b: String,
    },
    /// The versions of a dataset.
    Log {
        /// The dataset.
        path: String,
    },
    /// Restore a dataset's exact bytes (PATH restores its pointer's version).
    Checkout {
        /// PATH or PATH@VERSION.
        #[arg(required = true, value_name = "PATH[@VERSION]")]
        refs: Vec<String>,
        /// How files are placed: auto (reflink, else copy), reflink,
        /// hardlink (read-only files), copy.
        #[arg(long, value_enum, default_value_t = Link::Auto)]
        link: Link,
        /// Delete workspace files that are in no stored version.
        #[arg(long)]
        force: bool,
    },
    /// Upload objects to a remote (a directory or s3://bucket/prefix).
    Push {
        /// Datasets (default: every pointer in this checkout).
        #[arg(value_name = "PATH[@VERSION]")]
        refs: Vec<String>,
        /// Remote URL (default: the configured remote).
        #[arg(long, env = "KEEL_REMOTE")]
        remote: Option<String>,
        /// Every version, not only the pointers' ones.
        #[arg(long)]
        all_versions: bool,
    },
    /// Download objects from a remote and check the datasets out.
    Pull {
        /// Datasets (default: every pointer in this checkout).
        #[arg(value_name = "PATH[@VERSION]")]
        refs: Vec<String>,
        /// Remote URL (default: the configured remote).
        #[arg(long, env = "KEEL_REMOTE")]
        remote: Option<String>,
        /// How files are placed (see `checkout`).
        #[arg(long, value_enum, default_value_t = Link::Auto)]
        link: Link,
    },
    /// Show or set the default remote.
    Remote {
        /// The new default remote URL.
        url: Option<String>,
        /// Forget the default remote.
        #[arg(long, conflicts_with = "url")]
        unset: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Link {
    Auto,
    Reflink,
    Hardlink,
    Copy,
}

impl From<Link> for LinkMode {
    fn from(l: Link) -> LinkMode {
        match l {
            Link::Auto => LinkMode::Auto,
            Link::Reflink => LinkMode::Reflink,
            Link::Hardlink => LinkMode::Hardlink,
            Link::Copy => LinkMode::Copy,
        }
    }
}

pub fn run(global: &Global, command: DataCommand) -> Result<ExitCode> {
    let command = match command {
        DataCommand::Profile(args) => return super::quality::profile(global, args),
        DataCommand::Validate(args) => return super::quality::validate(global, args),
        other => other,
    };
    let store = global.store()?;
    let cwd = global.cwd()?;
    let resolve = |s: &str| data::resolve_ref(&store, &cwd, s);
    let bars = Bars::new(global.json);
    match command {
        DataCommand::Profile(_) | DataCommand::Validate(_) => unreachable!("dispatched above"),
        DataCommand::Add {
            paths,
            message,
            sync,
        } => {
            let durability = if sync {
                Durability::Disk
            } else {
                Durability::Process
            };
            let mut out = Vec::new();
            for p in &paths {
                let r = resolve(p)?;
                if r.version.is_some() {
                    bail!("{p}: `add` takes a path, not PATH@VERSION");
                }
                let rep = block_on(data::add_with(
                    &store,
                    &r.path,
                    message.as_deref(),
                    durability,
                    &bars,
                ))?;
                for (path, why) in &rep.skipped {
                    eprintln!("warning: skipped {}/{path}: {why}", r.path);
                }
                if !global.json {
                    let v = &rep.version;
                    let cloned = if rep.cloned_bytes > 0 {
                        format!(", {} of it cloned", output::bytes(rep.cloned_bytes))
                    } else {
                        String::new()
                    };
                    println!(
                        "{} {} {}: {} file(s), {} ({} hashed, {} new object(s), {}{cloned}); pointer {}.keel",
                        if rep.new_version { "added" } else { "unchanged" },
                        v.path,
                        v.seq,
                        v.nfiles,
                        output::bytes(v.size),
                        rep.hashed_files,
                        rep.new_objects,
                        output::bytes(rep.new_bytes),
                        v.path,
                    );
                }
                out.push(json!({
                    "version": version_json(&rep.version),
                    "new_version": rep.new_version,
                    "hashed_files": rep.hashed_files,
                    "new_objects": rep.new_objects,
                    "new_bytes": rep.new_bytes,
                    "cloned_bytes": rep.cloned_bytes,
                }));
            }
            if global.json {
                print_json(&Value::Array(out));
            }
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Status { paths } => {
            let targets = paths
                .iter()
                .map(|p| resolve(p).map(|r| r.path))
                .collect::<Result<Vec<_>, _>>()?;
            let statuses = block_on(data::status(&store, &targets))?;
            let mut clean = true;
            let mut out = Vec::new();
            for s in &statuses {
                let (state, detail) = match &s.change {
                    DataChange::UpToDate => ("up to date", json!({})),
                    DataChange::Changed {
                        added,
                        removed,
                        modified,
                    } => {
                        clean = false;
                        if !global.json {
                            for p in added {
                                println!("  added:    {}", join(&s.path, p));
                            }
                            for p in removed {
                                println!("  removed:  {}", join(&s.path, p));
                            }
                            for p in modified {
                                println!("  modified: {}", join(&s.path, p));
                            }
                        }
                        (
                            "changed",
                            json!({"added": added, "removed": removed, "modified": modified}),
                        )
                    }
                    DataChange::DataMissing => {
                        clean = false;
                        ("data missing", json!({}))
                    }
                    DataChange::NoPointer => {
                        clean = false;
                        ("no pointer", json!({}))
                    }
                };
                if !global.json {
                    let v = s
                        .version
                        .map(|v| format!("v{v}"))
                        .unwrap_or_else(|| "-".into());
                    println!("{} ({v}): {state}", s.path);
                }
                out.push(json!({"path": s.path.as_str(), "version": s.version, "state": state, "changes": detail}));
            }
            if global.json {
                print_json(&json!({"clean": clean, "datasets": out}));
            } else if statuses.is_empty() {
                println!(
                    "no tracked datasets with a pointer here; add one with `keel data add PATH`"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Diff { a, b } => {
            let ra = resolve(&a)?;
            let rb = if let Some(v) = b.strip_prefix('@') {
                VersionRef {
                    path: ra.path.clone(),
                    version: Some(v.to_string()),
                }
            } else {
                resolve(&b)?
            };
            let (va, vb, d) = block_on(data::diff(&store, &ra, &rb))?;
            if global.json {
                print_json(&json!({
                    "a": version_json(&va), "b": version_json(&vb),
                    "added": d.added, "removed": d.removed, "modified": d.modified, "unchanged": d.unchanged,
                }));
            } else {
                println!("{}@{} → {}@{}", va.path, va.seq, vb.path, vb.seq);
                for p in &d.added {
                    println!("  added:    {p}");
                }
                for p in &d.removed {
                    println!("  removed:  {p}");
                }
                for p in &d.modified {
                    println!("  modified: {p}");
                }
                println!(
                    "{} added, {} removed, {} modified, {} unchanged",
                    d.added.len(),
                    d.removed.len(),
                    d.modified.len(),
                    d.unchanged
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Log { path } => {
            let r = resolve(&path)?;
            let versions = block_on(data::log(&store, &r.path))?;
            let current =
                data::Pointer::read(&data::Pointer::location(store.project.root(), &r.path))?
                    .map(|p| p.hash);
            if global.json {
                print_json(&Value::Array(versions.iter().map(version_json).collect()));
            } else {
                let rows: Vec<Vec<String>> = versions
                    .iter()
                    .rev()
                    .map(|v| {
                        let mark = if current.as_deref() == Some(v.hash.to_hex().as_str()) {
                            "*"
                        } else {
                            ""
                        };
                        vec![
                            format!("{}{mark}", v.seq),
                            v.hash.short(12),
                            v.nfiles.to_string(),
                            output::bytes(v.size),
                            v.git_commit
                                .as_deref()
                                .map(|c| {
                                    let short: String = c.chars().take(10).collect();
                                    format!("{short}{}", if v.git_dirty { "+" } else { "" })
                                })
                                .unwrap_or_else(|| "-".into()),
                            output::datetime(v.created_at_ms),
                            v.created_by.clone(),
                            v.message.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "version",
                        "hash",
                        "files",
                        "size",
                        "git",
                        "added (UTC)",
                        "by",
                        "message",
                    ],
                    &rows,
                );
                println!(
                    "* = the version {}.keel points at; + = uncommitted git changes",
                    r.path
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Checkout { refs, link, force } => {
            let options = CheckoutOptions {
                link: link.into(),
                force,
            };
            let mut out = Vec::new();
            for s in &refs {
                let r = resolve(s)?;
                let rep = block_on(data::checkout(&store, &r, options, &bars))?;
                if !global.json {
                    println!(
                        "{} is at {}: {} file(s) written, {} unchanged, {} removed",
                        rep.version.path, rep.version.seq, rep.written, rep.unchanged, rep.removed
                    );
                }
                out.push(
                    json!({"version": version_json(&rep.version), "written": rep.written,
                    "unchanged": rep.unchanged, "removed": rep.removed}),
                );
            }
            if global.json {
                print_json(&Value::Array(out));
            }
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Push {
            refs,
            remote,
            all_versions,
        } => {
            let remote = open_remote(&store, remote)?;
            let refs = refs
                .iter()
                .map(|s| resolve(s))
                .collect::<Result<Vec<_>, _>>()?;
            let rep = block_on(data::push(&store, &remote, &refs, all_versions, &bars))?;
            if global.json {
                print_json(
                    &json!({"remote": remote.url(), "uploaded": rep.transferred, "bytes": rep.bytes, "already_present": rep.present}),
                );
            } else {
                println!(
                    "pushed {} object(s) ({}) to {}; {} already there",
                    rep.transferred,
                    output::bytes(rep.bytes),
                    remote.url(),
                    rep.present
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Pull { refs, remote, link } => {
            let remote = open_remote(&store, remote)?;
            let refs = refs
                .iter()
                .map(|s| resolve(s))
                .collect::<Result<Vec<_>, _>>()?;
            let options = CheckoutOptions {
                link: link.into(),
                force: false,
            };
            let rep = block_on(data::pull(&store, &remote, &refs, options, &bars))?;
            if global.json {
                let cos: Vec<Value> = rep
                    .checkouts
                    .iter()
                    .map(|c| version_json(&c.version))
                    .collect();
                print_json(
                    &json!({"remote": remote.url(), "downloaded": rep.transferred, "bytes": rep.bytes, "checked_out": cos}),
                );
            } else {
                println!(
                    "pulled {} object(s) ({}) from {}",
                    rep.transferred,
                    output::bytes(rep.bytes),
                    remote.url()
                );
                for c in &rep.checkouts {
                    println!(
                        "{} is at {} ({} file(s) written)",
                        c.version.path, c.version.seq, c.written
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Remote { url, unset } => {
            let mut project = store.project.clone();
            if unset {
                project.set_remote(None)?;
            } else if let Some(u) = url {
                open_remote(&store, Some(u.clone()))?;
                project.set_remote(Some(u))?;
            }
            match &project.config().remote {
                Some(r) if global.json => print_json(&json!({"remote": r})),
                Some(r) => println!("default remote: {r}"),
                None if global.json => print_json(&json!({"remote": null})),
                None => println!("no default remote (set one with `keel data remote URL`)"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn join(dataset: &keel_core::DatasetPath, rel: &str) -> String {
    if rel.is_empty() {
        dataset.to_string()
    } else {
        format!("{dataset}/{rel}")
    }
}

fn open_remote(store: &Store, remote: Option<String>) -> Result<RemoteObjects> {
    let url = remote
        .or_else(|| store.project.config().remote.clone())
        .ok_or(keel_store::StoreError::NoRemote)?;
    // A relative directory is relative to the project root, whatever the
    // working directory.
    let url = if !url.contains("://") && !url.starts_with('/') {
        store
            .project
            .root()
            .join(&url)
            .to_string_lossy()
            .into_owned()
    } else {
        url
    };
    Ok(RemoteObjects::open(&url)?)
}

pub fn version_json(v: &DatasetVersion) -> Value {
    json!({
        "path": v.path.as_str(),
        "version": v.seq.0,
        "hash": v.hash.to_hex(),
        "kind": v.kind.as_str(),
        "size": v.size,
        "files": v.nfiles,
        "git_commit": v.git_commit,
        "git_dirty": v.git_dirty,
        "created_at_ms": v.created_at_ms,
        "created_by": v.created_by,
        "message": v.message,
    })
}
