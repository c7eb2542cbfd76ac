//! `keel fsck`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use keel_store::data::{self, FsckProblem};
use serde_json::json;

use super::{CheckFailed, Global};
use crate::output::Bars;

#[derive(Args, Debug)]
pub struct FsckArgs {
    /// Move corrupt objects to .keel/quarantine/ so that a re-add or pull
    /// can store the right bytes again, and rebuild damaged pack indexes
    /// from their packs.
    #[arg(long)]
    pub repair: bool,
}

pub fn run(global: &Global, args: FsckArgs) -> Result<ExitCode> {
    let store = global.store()?;
    let bars = Bars::new(global.json);
    let report = super::block_on(data::fsck(&store, args.repair, &bars))?;
    if global.json {
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| match p {
                FsckProblem::Corrupt { hash, actual, used_by } => {
                    json!({"kind": "corrupt", "object": hash.to_hex(), "actual": actual.to_hex(), "used_by": used_by})
                }
                FsckProblem::Missing { hash, used_by } => {
                    json!({"kind": "missing", "object": hash.to_hex(), "used_by": used_by})
                }
                FsckProblem::Unreadable { hash, message, used_by } => {
                    json!({"kind": "unreadable", "object": hash.to_hex(), "message": message, "used_by": used_by})
                }
                FsckProblem::BadManifest { version, message } => {
                    json!({"kind": "bad_manifest", "version": version, "message": message})
                }
                FsckProblem::BadPackIndex { path, message } => {
                    json!({"kind": "bad_pack_index", "path": path, "message": message})
                }
            })
            .collect();
        super::print_json(&json!({
            "objects": report.objects,
            "bytes": report.bytes,
            "versions": report.versions,
            "temp_files": report.temp_files,
            "quarantined": report.quarantined,
            "rebuilt_indexes": report.rebuilt_indexes,
            "rebuilt_objects": report.rebuilt_objects,
            "ok": report.problems.is_empty(),
            "problems": problems,
        }));
    } else {
        println!(
            "checked {} objects ({}) and {} dataset versions",
            report.objects,
            crate::output::bytes(report.bytes),
            report.versions
        );
        for p in &report.problems {
            match p {
                FsckProblem::Corrupt {
                    hash,
                    actual,
                    used_by,
                } => {
                    println!(
                        "CORRUPT  object {hash} (bytes hash to {})",
                        actual.short(16)
                    );
                    print_users(used_by);
                }
                FsckProblem::Missing { hash, used_by } => {
                    println!("MISSING  object {hash}");
                    print_users(used_by);
                }
                FsckProblem::Unreadable {
                    hash,
                    message,
                    used_by,
                } => {
                    println!("IO-ERROR object {hash}: {message}");
                    print_users(used_by);
                }
                FsckProblem::BadManifest { version, message } => {
                    println!("BAD      manifest of {version}: {message}");
                }
                FsckProblem::BadPackIndex { path, message } => {
                    println!("BAD      pack index {}: {message}", path.display());
                }
            }
        }
        if report.quarantined > 0 {
            println!(
                "moved {} corrupt object(s) to .keel/quarantine/; re-add or pull the datasets above",
                report.quarantined
            );
        }
        if report.rebuilt_indexes > 0 {
            println!(
                "rebuilt {} damaged pack index(es) from their packs, naming {} object(s) (old indexes kept in .keel/quarantine/)",
                report.rebuilt_indexes, report.rebuilt_objects
            );
        }
        if report.temp_files > 0 {
            println!(
                "note: {} temporary file(s) of interrupted commands in the store (harmless; removed by later adds)",
                report.temp_files
            );
        }
        if report.problems.is_empty() {
            println!("ok: every object matches its hash");
        }
    }
    if report.problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CheckFailed(format!("fsck found {} problem(s)", report.problems.len())).into())
    }
}

fn print_users(used_by: &[String]) {
    if used_by.is_empty() {
        println!("         (not used by any dataset version)");
    }
    for u in used_by.iter().take(10) {
        println!("         used by {u}");
    }
    if used_by.len() > 10 {
        println!("         … and {} more", used_by.len() - 10);
    }
}
