//! Where job outputs, the run-cache and lineage go: three small traits and
//! a file-backed implementation of all three.
//!
//! The traits are the seam to keel's object store and metadata DB. The
//! contract for [`OutputStore`]: a file output's hash is BLAKE3 of its
//! bytes; a directory output's hash is BLAKE3 of
//! [`crate::hash::manifest_bytes`] of its manifest. A store that keeps the
//! manifest bytes as an object under that hash (and each file under its
//! own) can restore both.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use keel_core::ObjectHash;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hash::{self, Kind, PathHash};

/// Saves and restores job outputs by content.
pub trait OutputStore: Send + Sync {
    /// Stores the file or directory at `path` and returns its kind and hash.
    fn save(&self, path: &Path) -> Result<PathHash>;
    /// Recreates `out` at `dest`, replacing whatever is there.
    fn restore(&self, out: &PathHash, dest: &Path) -> Result<()>;
    /// Whether `out` can be restored.
    fn has(&self, out: &PathHash) -> Result<bool>;
}

/// A run-cache entry: what a job with this key produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The cache key (hex).
    pub key: String,
    /// The job instance that produced it.
    pub job: String,
    /// The run that produced it.
    pub run_id: String,
    /// Outs and metric files, path → content.
    pub outputs: Vec<OutputRecord>,
    /// When, in ms since the Unix epoch.
    pub created_at_ms: u64,
}

/// The run-cache: cache key → outputs, across all earlier runs.
pub trait RunCache: Send + Sync {
    /// The entry for `key`, if any run produced one.
    fn get(&self, key: &ObjectHash) -> Result<Option<CacheEntry>>;
    /// Records an entry (idempotent).
    fn put(&self, key: &ObjectHash, entry: &CacheEntry) -> Result<()>;
    /// A hint, at the start of a run: these jobs will look their keys up.
    /// A store may read their entries at once instead of one by one.
    fn prefetch(&self, _jobs: &[&str]) -> Result<()> {
        Ok(())
    }
}

/// A path with its content hash, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// Path relative to the project.
    pub path: String,
    /// Kind and hash.
    #[serde(flatten)]
    pub content: PathHash,
}

/// Lineage of one job instance in one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Instance name.
    pub name: String,
    /// Base job name.
    pub base: String,
    /// Stage.
    pub stage: String,
    /// `success`, `failed`, `allowed_failure`, `skipped`, `manual`, `canceled`.
    pub status: String,
    /// Whether the result came from the run-cache.
    pub cached: bool,
    /// The cache key (hex), for jobs with a `.keel` entry.
    pub cache_key: Option<String>,
    /// The script's exit code, when it ran.
    pub exit_code: Option<i32>,
    /// Attempts made (retries + 1), 0 when it did not run.
    pub attempts: u32,
    /// Start, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Wall time.
    pub duration_ms: u64,
    /// Resolved non-secret variables that identify the job.
    pub variables: BTreeMap<String, String>,
    /// Matrix variables of this instance.
    pub matrix: BTreeMap<String, String>,
    /// Param values.
    pub params: BTreeMap<String, serde_json::Value>,
    /// Deps and their hashes.
    pub inputs: Vec<OutputRecord>,
    /// Upstream job → artifacts digest.
    pub upstream: BTreeMap<String, String>,
    /// Outs and metric files and their hashes.
    pub outputs: Vec<OutputRecord>,
    /// Digest of the job's artifacts.
    pub artifacts_digest: Option<String>,
    /// When the artifacts expire (`expire_in`), ms since the Unix epoch.
    pub artifacts_expire_at_ms: Option<u64>,
    /// Numeric metrics read from the metric files, flattened (`a.b`).
    pub metrics: BTreeMap<String, f64>,
    /// The job log, relative to the project.
    pub log: Option<String>,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
}

/// Lineage of one pipeline run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineRecord {
    /// Run id (a UUIDv7: sorts by time).
    pub run_id: String,
    /// Pipeline file, relative to the project.
    pub file: String,
    /// Start, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// End, once finished.
    pub finished_at_ms: Option<u64>,
    /// `HEAD`, if in git.
    pub git_commit: Option<String>,
    /// Branch, if any.
    pub git_branch: Option<String>,
    /// Whether tracked files had uncommitted changes.
    pub git_dirty: bool,
    /// Pipeline-level variables (secrets removed).
    pub variables: BTreeMap<String, String>,
    /// `running`, `success`, `failed`, `canceled`, `not_created`.
    pub status: String,
    /// Jobs, as they finished.
    pub jobs: Vec<JobRecord>,
}

/// Records pipeline runs and jobs (the lineage).
pub trait RunRecorder: Send + Sync {
    /// A run starts.
    fn begin_run(&self, run: &PipelineRecord) -> Result<()>;
    /// A job is about to run its script (not called for cached, skipped or
    /// manual jobs); returns extra environment for it (e.g.
    /// `MLFLOW_RUN_ID`). `job` is its record so far: name, matrix and the
    /// resolved `.keel` params are set.
    fn begin_job(&self, run_id: &str, job: &JobRecord) -> Result<Vec<(String, String)>>;
    /// A job finished (ran, was cached, skipped…).
    fn record_job(&self, run_id: &str, job: &JobRecord) -> Result<()>;
    /// The run finished; `run.jobs` holds every job.
    fn finish_run(&self, run: &PipelineRecord) -> Result<()>;
}

/// Reads recorded runs back (for `keel exp show`).
pub trait RunHistory {
    /// All recorded runs, oldest first.
    fn runs(&self) -> Result<Vec<PipelineRecord>>;
}

/// Output store, run-cache and recorder in plain files under a project's
/// `.keel/`: objects in `.keel/pipeline/objects/<2>/<62>`, cache entries
/// in `.keel/pipeline/cache/<2>/<62>.json`, runs in
/// `.keel/runs/<run-id>/run.json` (next to the job logs).
#[derive(Debug, Clone)]
pub struct FileStore {
    keel_dir: PathBuf,
}

fn store_err(path: &Path, e: io::Error) -> Error {
    Error::io(path, e)
}

/// Writes `bytes` to `path` atomically (temp file + rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| store_err(dir, e))?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let mut f = fs::File::create(&tmp).map_err(|e| store_err(&tmp, e))?;
    f.write_all(bytes).map_err(|e| store_err(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| store_err(path, e))
}

fn set_executable(path: &Path, exec: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if exec { 0o755 } else { 0o644 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| store_err(path, e))
}

/// Copies `src` to `dest` through a temp file, so `dest` is never half
/// written.
fn copy_atomic(src: &Path, dest: &Path, exec: bool) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| store_err(dir, e))?;
    let tmp = dir.join(format!(".keel-tmp-{}", uuid::Uuid::new_v4().simple()));
    fs::copy(src, &tmp).map_err(|e| store_err(src, e))?;
    set_executable(&tmp, exec)?;
    fs::rename(&tmp, dest).map_err(|e| store_err(dest, e))
}

impl FileStore {
    /// A store in `keel_dir` (a project's `.keel/`).
    pub fn new(keel_dir: &Path) -> FileStore {
        FileStore {
            keel_dir: keel_dir.to_path_buf(),
        }
    }

    fn object_path(&self, h: &ObjectHash) -> PathBuf {
        let hex = h.to_string();
        self.keel_dir
            .join("pipeline/objects")
            .join(&hex[..2])
            .join(&hex[2..])
    }

    fn put_file(&self, src: &Path, h: &ObjectHash) -> Result<()> {
        let dest = self.object_path(h);
        if !dest.exists() {
            copy_atomic(src, &dest, false)?;
        }
        Ok(())
    }

    fn run_file(&self, run_id: &str) -> PathBuf {
        self.keel_dir.join("runs").join(run_id).join("run.json")
    }
}

impl OutputStore for FileStore {
    fn save(&self, path: &Path) -> Result<PathHash> {
        let meta = fs::metadata(path).map_err(|e| store_err(path, e))?;
        if meta.is_dir() {
            let m = hash::manifest(path).map_err(|e| store_err(path, e))?;
            for e in &m {
                self.put_file(&path.join(&e.path), &e.hash)?;
            }
            let bytes = hash::manifest_bytes(&m);
            let h = ObjectHash::of_bytes(&bytes);
            let dest = self.object_path(&h);
            if !dest.exists() {
                write_atomic(&dest, &bytes)?;
            }
            Ok(PathHash {
                kind: Kind::Dir,
                hash: h,
            })
        } else {
            let h = hash::hash_file(path).map_err(|e| store_err(path, e))?;
            self.put_file(path, &h)?;
            Ok(PathHash {
                kind: Kind::File,
                hash: h,
            })
        }
    }

    fn restore(&self, out: &PathHash, dest: &Path) -> Result<()> {
        match out.kind {
            Kind::File => {
                if dest.is_dir() {
                    fs::remove_dir_all(dest).map_err(|e| store_err(dest, e))?;
                }
                copy_atomic(&self.object_path(&out.hash), dest, false)
            }
            Kind::Dir => {
                let mpath = self.object_path(&out.hash);
                let bytes = fs::read(&mpath).map_err(|e| store_err(&mpath, e))?;
                let m = hash::parse_manifest(&bytes).ok_or_else(|| {
                    Error::Store(format!("{} is not a directory manifest", out.hash))
                })?;
                if dest.is_dir() {
                    fs::remove_dir_all(dest).map_err(|e| store_err(dest, e))?;
                } else if dest.exists() {
                    fs::remove_file(dest).map_err(|e| store_err(dest, e))?;
                }
                fs::create_dir_all(dest).map_err(|e| store_err(dest, e))?;
                for e in m {
                    copy_atomic(
                        &self.object_path(&e.hash),
                        &dest.join(&e.path),
                        e.executable,
                    )?;
                }
                Ok(())
            }
        }
    }

    fn has(&self, out: &PathHash) -> Result<bool> {
        let p = self.object_path(&out.hash);
        if !p.exists() {
            return Ok(false);
        }
        if out.kind == Kind::Dir {
            let bytes = fs::read(&p).map_err(|e| store_err(&p, e))?;
            let Some(m) = hash::parse_manifest(&bytes) else {
                return Ok(false);
            };
            return Ok(m.iter().all(|e| self.object_path(&e.hash).exists()));
        }
        Ok(true)
    }
}

impl RunCache for FileStore {
    fn get(&self, key: &ObjectHash) -> Result<Option<CacheEntry>> {
        let hex = key.to_string();
        let p = self
            .keel_dir
            .join("pipeline/cache")
            .join(&hex[..2])
            .join(format!("{}.json", &hex[2..]));
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Store(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(store_err(&p, e)),
        }
    }

    fn put(&self, key: &ObjectHash, entry: &CacheEntry) -> Result<()> {
        let hex = key.to_string();
        let p = self
            .keel_dir
            .join("pipeline/cache")
            .join(&hex[..2])
            .join(format!("{}.json", &hex[2..]));
        let bytes = serde_json::to_vec_pretty(entry).map_err(|e| Error::Store(e.to_string()))?;
        write_atomic(&p, &bytes)
    }
}

impl RunRecorder for FileStore {
    fn begin_run(&self, run: &PipelineRecord) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(run).map_err(|e| Error::Store(e.to_string()))?;
        write_atomic(&self.run_file(&run.run_id), &bytes)
    }

    fn begin_job(&self, run_id: &str, job: &JobRecord) -> Result<Vec<(String, String)>> {
        Ok(vec![
            ("KEEL_RUN_ID".into(), run_id.to_string()),
            ("KEEL_JOB".into(), job.name.clone()),
        ])
    }

    fn record_job(&self, _run_id: &str, _job: &JobRecord) -> Result<()> {
        // The whole run is written once at the end: one file write per run
        // keeps a 100-job cached rerun cheap.
        Ok(())
    }

    fn finish_run(&self, run: &PipelineRecord) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(run).map_err(|e| Error::Store(e.to_string()))?;
        write_atomic(&self.run_file(&run.run_id), &bytes)
    }
}

impl RunHistory for FileStore {
    fn runs(&self) -> Result<Vec<PipelineRecord>> {
        let dir = self.keel_dir.join("runs");
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(store_err(&dir, e)),
        };
        for e in entries.flatten() {
            let p = e.path().join("run.json");
            if let Ok(b) = fs::read(&p) {
                let r: PipelineRecord = serde_json::from_slice(&b)
                    .map_err(|e| Error::Store(format!("{}: {e}", p.display())))?;
                out.push(r);
            }
        }
        out.sort_by(|a, b| (a.started_at_ms, &a.run_id).cmp(&(b.started_at_ms, &b.run_id)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trips_files_and_dirs() {
        let d = tempfile::tempdir().unwrap();
        let s = FileStore::new(&d.path().join(".keel"));
        fs::create_dir_all(d.path().join("m/sub")).unwrap();
        fs::write(d.path().join("m/a"), "aa").unwrap();
        fs::write(d.path().join("m/sub/b"), "bb").unwrap();
        fs::write(d.path().join("f"), "ff").unwrap();
        let dir = s.save(&d.path().join("m")).unwrap();
        let file = s.save(&d.path().join("f")).unwrap();
        assert_eq!(Some(dir), hash::hash_path(&d.path().join("m")).unwrap());
        assert!(s.has(&dir).unwrap() && s.has(&file).unwrap());
        fs::remove_dir_all(d.path().join("m")).unwrap();
        fs::write(d.path().join("f"), "changed").unwrap();
        s.restore(&dir, &d.path().join("m")).unwrap();
        s.restore(&file, &d.path().join("f")).unwrap();
        assert_eq!(fs::read_to_string(d.path().join("m/sub/b")).unwrap(), "bb");
        assert_eq!(fs::read_to_string(d.path().join("f")).unwrap(), "ff");
    }
}
