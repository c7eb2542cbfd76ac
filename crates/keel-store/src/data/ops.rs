use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use keel_core::{DatasetPath, ObjectHash, Progress, Unit};

use crate::Durability;
use rayon::prelude::*;

use super::tree::{self, is_exec, load_tree, Entry, Kind, Pointer, StatCache};
use super::versions::{self, DatasetVersion, NewVersion};
use crate::error::{Result, StoreError};
use crate::objects::{LinkMode, Stored};
use crate::Store;

/// A dataset and, optionally, one of its versions: `PATH` or
/// `PATH@VERSION`.
#[derive(Debug, Clone)]
pub struct VersionRef {
    /// The dataset.
    pub path: DatasetPath,
    /// `3`, `v3`, `latest` or a hash prefix; `None` means the pointer's.
    pub version: Option<String>,
}

/// What `add` did.
#[derive(Debug, Clone)]
pub struct AddReport {
    /// The version now current.
    pub version: DatasetVersion,
    /// Whether a new version was recorded (false: same content as the
    /// latest).
    pub new_version: bool,
    /// Files whose bytes were read (the others were unchanged per the stat
    /// cache).
    pub hashed_files: u64,
    /// Objects written to the store (the others were already there).
    pub new_objects: u64,
    /// Bytes of the new objects.
    pub new_bytes: u64,
    /// Of `new_bytes`, those stored as copy-on-write clones of the files
    /// (no space used; see `LocalObjects::put_clone`).
    pub cloned_bytes: u64,
    /// Paths skipped, with why.
    pub skipped: Vec<(String, &'static str)>,
}

/// How a dataset in the workspace differs from its pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataChange {
    /// Same bytes as the pointer's version.
    UpToDate,
    /// Different: paths added, removed and modified (relative to the
    /// dataset).
    Changed {
        /// In the workspace, not in the version.
        added: Vec<String>,
        /// In the version, not in the workspace.
        removed: Vec<String>,
        /// In both, with other bytes.
        modified: Vec<String>,
    },
    /// The pointer exists but the data does not (`keel data checkout`).
    DataMissing,
    /// Data exists but no pointer (never added here).
    NoPointer,
}

/// A dataset's status.
#[derive(Debug, Clone)]
pub struct DatasetStatus {
    /// The dataset.
    pub path: DatasetPath,
    /// The pointer's version number, if there is a pointer.
    pub version: Option<i64>,
    /// The comparison.
    pub change: DataChange,
}

/// Files added, removed and modified between two versions.
#[derive(Debug, Clone, Default)]
pub struct DiffReport {
    /// Only in B.
    pub added: Vec<String>,
    /// Only in A.
    pub removed: Vec<String>,
    /// In both with different bytes.
    pub modified: Vec<String>,
    /// Files in both with the same bytes.
    pub unchanged: u64,
}

/// Options for `checkout`.
#[derive(Debug, Clone, Copy)]
pub struct CheckoutOptions {
    /// How files are placed.
    pub link: LinkMode,
    /// Delete workspace files that no stored version holds.
    pub force: bool,
}

/// What `checkout` did.
#[derive(Debug, Clone)]
pub struct CheckoutReport {
    /// The version now in the workspace.
    pub version: DatasetVersion,
    /// Files written.
    pub written: u64,
    /// Files already right.
    pub unchanged: u64,
    /// Files deleted (not part of the version).
    pub removed: u64,
}

/// One problem `fsck` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsckProblem {
    /// An object's bytes do not match its name.
    Corrupt {
        /// The object.
        hash: ObjectHash,
        /// What its bytes hash to now.
        actual: ObjectHash,
        /// `dataset@vN:file` for each use.
        used_by: Vec<String>,
    },
    /// An object could not be read (an I/O error), so it was not checked.
    Unreadable {
        /// The object.
        hash: ObjectHash,
        /// The error.
        message: String,
        /// `dataset@vN:file` for each use.
        used_by: Vec<String>,
    },
    /// A version references an object the store does not have.
    Missing {
        /// The object.
        hash: ObjectHash,
        /// `dataset@vN:file` for each use.
        used_by: Vec<String>,
    },
    /// A directory version's manifest cannot be read.
    BadManifest {
        /// `dataset@vN`.
        version: String,
        /// Why.
        message: String,
    },
    /// A pack's index cannot be read: the objects it names are missing
    /// (and reported as such) until it is restored.
    BadPackIndex {
        /// The index file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// What `fsck` checked and found.
#[derive(Debug, Clone, Default)]
pub struct FsckReport {
    /// Objects re-hashed.
    pub objects: u64,
    /// Their total bytes.
    pub bytes: u64,
    /// Dataset versions checked.
    pub versions: u64,
    /// Problems, worst first.
    pub problems: Vec<FsckProblem>,
    /// Corrupt objects moved to `.keel/quarantine/` (with `repair`).
    pub quarantined: u64,
    /// Damaged pack indexes rebuilt from their packs (with `repair`).
    pub rebuilt_indexes: u64,
    /// The objects those rebuilt indexes name.
    pub rebuilt_objects: u64,
    /// Leftover temporary files of interrupted writers (harmless).
    pub temp_files: u64,
}

/// Resolves a user path (relative to `cwd`) to a dataset path in the
/// project. A trailing `.keel` (the pointer) names its dataset.
pub fn resolve_ref(store: &Store, cwd: &Path, spec: &str) -> Result<VersionRef> {
    let (path, version) = match spec.rsplit_once('@') {
        Some((p, v)) if !v.is_empty() && !v.contains('/') => (p, Some(v.to_string())),
        _ => (spec, None),
    };
    // `data.keel` (the pointer) names the dataset `data`; `.keel` alone is
    // keel's own directory, refused below.
    let path = match path.strip_suffix(".keel") {
        Some(stem) if !stem.is_empty() && !stem.ends_with('/') => stem,
        _ => path,
    };
    let bad = |reason: &str| StoreError::InvalidPath {
        path: PathBuf::from(path),
        reason: reason.to_string(),
    };
    let abs = normalize(&cwd.join(path));
    let root = store.project.root();
    let rel = abs
        .strip_prefix(root)
        .map_err(|_| bad(&format!("outside the project ({})", root.display())))?;
    let rel = rel.to_string_lossy().replace('\\', "/");
    if rel.is_empty() {
        return Err(bad(
            "is the project root; add a file or directory inside it",
        ));
    }
    if rel == crate::project::KEEL_DIR
        || rel.starts_with(".keel/")
        || rel == ".git"
        || rel.starts_with(".git/")
    {
        return Err(bad("is keel's or git's own directory"));
    }
    let path = DatasetPath::new(&rel).map_err(|e| bad(&e.to_string()))?;
    Ok(VersionRef { path, version })
}

/// Lexically removes `.` and `..` (the path may not exist yet).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn git_info(root: &Path) -> Option<(String, bool)> {
    let out = Command::new("git")
        .args(["rev-parse", "--verify", "HEAD"])
        .current_dir(root)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(root)
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    Some((commit, dirty))
}

fn whoami() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Adds (or re-adds) a dataset: stores its files, records a version,
/// writes the pointer. [`Durability::Process`]; see [`add_with`].
pub async fn add(
    store: &Store,
    dataset: &DatasetPath,
    message: Option<&str>,
    progress: &dyn Progress,
) -> Result<AddReport> {
    add_with(store, dataset, message, Durability::Process, progress).await
}

/// [`add`] with a choice of durability.
pub async fn add_with(
    store: &Store,
    dataset: &DatasetPath,
    message: Option<&str>,
    durability: Durability,
    progress: &dyn Progress,
) -> Result<AddReport> {
    let root = store.project.root().to_path_buf();
    let abs = root.join(dataset.as_str());
    refuse_symlinked_parents(&root, dataset.as_str())?;
    let started = tree::now_ns();
    let scan = tree::scan(&abs)?.ok_or_else(|| StoreError::InvalidPath {
        path: abs.clone(),
        reason: "does not exist".into(),
    })?;
    let kind = if scan.is_dir { Kind::Dir } else { Kind::File };
    let objects = &store.objects;
    // Temporary files of writers killed more than an hour ago.
    let _ = objects.clean_tmp(Duration::from_secs(3600));
    let state = store.project.state_dir("stat")?;
    let mut cache = StatCache::load(&state, dataset);

    let total: u64 = scan.files.iter().map(|f| f.meta.len()).sum();
    progress.begin(&format!("adding {dataset}"), Some(total), Unit::Bytes);
    // Many new small files go into one pack (see `objects::pack`).
    let pack = objects.pack_writer();
    let hashed = AtomicU64::new(0);
    let new_objects = AtomicU64::new(0);
    let new_bytes = AtomicU64::new(0);
    let cloned_bytes = AtomicU64::new(0);
    let hashes: Vec<Result<ObjectHash>> = scan
        .files
        .par_iter()
        .map(|f| {
            let size = f.meta.len();
            if let Some(h) = cache.lookup(f).filter(|h| objects.contains_sized(h, size)) {
                progress.advance(size);
                return Ok(h);
            }
            let (h, stored) = pack.put_file(&f.abs, &f.meta)?;
            hashed.fetch_add(1, Ordering::Relaxed);
            if stored.is_new() {
                new_objects.fetch_add(1, Ordering::Relaxed);
                new_bytes.fetch_add(size, Ordering::Relaxed);
            }
            if stored == Stored::Cloned {
                cloned_bytes.fetch_add(size, Ordering::Relaxed);
            }
            progress.advance(size);
            Ok(h)
        })
        .collect();
    progress.end();
    let hashes: Vec<ObjectHash> = hashes.into_iter().collect::<Result<_>>()?;
    pack.finish()?;

    let mut entries = Vec::with_capacity(scan.files.len());
    for (f, h) in scan.files.iter().zip(hashes) {
        cache.insert(f, h);
        entries.push(Entry {
            path: f.rel.clone(),
            hash: h,
            size: f.meta.len(),
            exec: is_exec(&f.meta),
        });
    }
    let version_hash = match kind {
        Kind::File => entries[0].hash,
        Kind::Dir => {
            let (h, new) = objects.put_bytes(&tree::encode_manifest(&entries))?;
            if new {
                new_objects.fetch_add(1, Ordering::Relaxed);
            }
            h
        }
    };
    // Every object is complete and named before the row that names it is
    // committed; with `Disk`, also on the disk.
    if durability == Durability::Disk {
        objects.sync()?;
    }
    let user = whoami();
    let (version, new_version) = versions::record(
        &store.db,
        &NewVersion {
            path: dataset,
            hash: version_hash,
            kind,
            size: total,
            nfiles: entries.len() as u64,
            git: git_info(&root),
            created_by: &user,
            message,
        },
    )
    .await?;
    write_pointer(&root, &version)?;
    let keep: HashSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    cache.retain(|p| keep.contains(p));
    cache.save(&state, dataset, started)?;
    ignore_in_git(&root, dataset);
    Ok(AddReport {
        version,
        new_version,
        hashed_files: hashed.into_inner(),
        new_objects: new_objects.into_inner(),
        new_bytes: new_bytes.into_inner(),
        cloned_bytes: cloned_bytes.into_inner(),
        skipped: scan.skipped,
    })
}

fn write_pointer(root: &Path, v: &DatasetVersion) -> Result<()> {
    Pointer {
        path: v.path.to_string(),
        kind: v.kind,
        hash: v.hash.to_hex(),
        size: v.size,
        files: v.nfiles,
        version: v.seq.0,
    }
    .write(&Pointer::location(root, &v.path))
}

/// Adds `/name` to the `.gitignore` next to the data, as DVC does, so the
/// bytes go to keel and only the pointer goes to git. Only inside a git
/// work tree; failures are not errors (it is a convenience).
fn ignore_in_git(root: &Path, dataset: &DatasetPath) {
    if !root.join(".git").exists() {
        return;
    }
    let abs = root.join(dataset.as_str());
    let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else {
        return;
    };
    let line = format!("/{}", name.to_string_lossy());
    let gi = dir.join(".gitignore");
    let existing = std::fs::read_to_string(&gi).unwrap_or_default();
    if existing.lines().any(|l| l.trim() == line) {
        return;
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&line);
    text.push('\n');
    let _ = crate::project::write_atomic(&gi, text.as_bytes());
}

/// Hashes what is in the workspace for a dataset, using (and refreshing)
/// the stat cache: its files sorted by path, as a manifest lists them.
/// `None` if nothing is there.
fn workspace_tree(store: &Store, dataset: &DatasetPath) -> Result<Option<Vec<Entry>>> {
    let abs = store.project.root().join(dataset.as_str());
    let started = tree::now_ns();
    let Some(scan) = tree::scan(&abs)? else {
        return Ok(None);
    };
    let state = store.project.state_dir("stat")?;
    let mut cache = StatCache::load(&state, dataset);
    let fresh = Mutex::new(Vec::new());
    let hashes: Vec<Result<ObjectHash>> = scan
        .files
        .par_iter()
        .map(|f| match cache.lookup(f) {
            Some(h) => Ok(h),
            None => {
                let h = crate::objects::hash_file(&f.abs)?;
                fresh
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((f.clone(), h));
                Ok(h)
            }
        })
        .collect();
    let mut entries = Vec::with_capacity(scan.files.len());
    for (f, h) in scan.files.iter().zip(hashes) {
        entries.push(Entry {
            path: f.rel.clone(),
            hash: h?,
            size: f.meta.len(),
            exec: is_exec(&f.meta),
        });
    }
    let fresh = fresh.into_inner().unwrap_or_else(|e| e.into_inner());
    if !fresh.is_empty() {
        for (f, h) in &fresh {
            cache.insert(f, *h);
        }
        // Only a cache: failing to save it costs speed, not correctness.
        let _ = cache.save(&state, dataset, started);
    }
    Ok(Some(entries))
}

/// Whether the workspace files are exactly the version's: the hash the
/// version would have if added now equals the pointer's. Saves reading and
/// parsing the manifest when nothing changed.
fn same_version(pointer: &Pointer, workspace: &[Entry]) -> bool {
    let hash = match (pointer.kind, workspace) {
        (Kind::File, [only]) if only.path.is_empty() => only.hash,
        (Kind::Dir, files) if files.iter().all(|e| !e.path.is_empty()) => {
            ObjectHash::of_bytes(&tree::encode_manifest(files))
        }
        _ => return false,
    };
    hash == pointer.object_hash()
}

fn compare(version: &[Entry], workspace: &BTreeMap<String, ObjectHash>) -> DiffReport {
    let old: BTreeMap<&str, ObjectHash> =
        version.iter().map(|e| (e.path.as_str(), e.hash)).collect();
    let mut d = DiffReport::default();
    for (p, h) in workspace {
        match old.get(p.as_str()) {
            None => d.added.push(p.clone()),
            Some(o) if o != h => d.modified.push(p.clone()),
            Some(_) => d.unchanged += 1,
        }
    }
    d.removed = old
        .keys()
        .filter(|p| !workspace.contains_key(**p))
        .map(|p| p.to_string())
        .collect();
    d
}

/// Compares datasets in the workspace with their pointers. With no
/// datasets given: every dataset with a pointer file in the project.
pub async fn status(store: &Store, datasets: &[DatasetPath]) -> Result<Vec<DatasetStatus>> {
    let root = store.project.root();
    let targets: Vec<DatasetPath> = if datasets.is_empty() {
        find_pointers(root)
    } else {
        datasets.to_vec()
    };
    let mut out = Vec::new();
    for path in targets {
        let pointer = Pointer::read(&Pointer::location(root, &path))?;
        let ws = workspace_tree(store, &path)?;
        let change = match (&pointer, ws) {
            (None, None) => {
                return Err(StoreError::DatasetNotFound {
                    path: path.to_string(),
                })
            }
            (None, Some(_)) => DataChange::NoPointer,
            (Some(_), None) => DataChange::DataMissing,
            (Some(p), Some(entries)) if same_version(p, &entries) => DataChange::UpToDate,
            (Some(p), Some(entries)) => {
                let map: BTreeMap<String, ObjectHash> =
                    entries.into_iter().map(|e| (e.path, e.hash)).collect();
                // Without the manifest here (a pointer from a clone, nothing
                // pulled yet) every workspace file counts as unknown.
                let tree =
                    load_tree(&store.objects, p.kind, &p.object_hash(), p.size).unwrap_or_default();
                let d = compare(&tree, &map);
                if d.added.is_empty() && d.removed.is_empty() && d.modified.is_empty() {
                    DataChange::UpToDate
                } else {
                    DataChange::Changed {
                        added: d.added,
                        removed: d.removed,
                        modified: d.modified,
                    }
                }
            }
        };
        out.push(DatasetStatus {
            version: pointer.map(|p| p.version),
            path,
            change,
        });
    }
    Ok(out)
}

pub(crate) async fn version_of(store: &Store, r: &VersionRef) -> Result<DatasetVersion> {
    let all = versions::list(&store.db, &r.path).await?;
    let pointer = Pointer::read(&Pointer::location(store.project.root(), &r.path))?;
    match &r.version {
        Some(spec) => {
            // A pointer from another machine (a fresh clone with its own
            // DB) still names its own version.
            if let Some(p) = pointer
                .as_ref()
                .filter(|p| p.hash.starts_with(spec.as_str()) && spec.len() >= 4)
            {
                if !all.iter().any(|v| v.hash == p.object_hash()) {
                    return Ok(from_pointer(&r.path, p));
                }
            }
            if all.is_empty() {
                return Err(StoreError::DatasetNotFound {
                    path: r.path.to_string(),
                });
            }
            versions::resolve(&r.path, &all, spec).cloned()
        }
        None => match pointer {
            Some(p) => {
                let h = p.object_hash();
                Ok(all
                    .iter()
                    .rev()
                    .find(|v| v.hash == h)
                    .cloned()
                    .unwrap_or_else(|| from_pointer(&r.path, &p)))
            }
            None => all
                .last()
                .cloned()
                .ok_or_else(|| StoreError::DatasetNotFound {
                    path: r.path.to_string(),
                }),
        },
    }
}

/// A version known only from its pointer file (recorded in another
/// project's DB, e.g. before a `git clone`).
pub(crate) fn from_pointer(path: &DatasetPath, p: &Pointer) -> DatasetVersion {
    DatasetVersion {
        path: path.clone(),
        seq: keel_core::VersionSeq(p.version),
        hash: p.object_hash(),
        kind: p.kind,
        size: p.size,
        nfiles: p.files,
        git_commit: None,
        git_dirty: false,
        created_at_ms: 0,
        created_by: String::from("(from pointer file)"),
        message: None,
    }
}

/// Every dataset with a pointer file in the project, found by walking it
/// (skipping `.git`, `.keel` and the datasets' own directories).
pub(crate) fn find_pointers(root: &Path) -> Vec<DatasetPath> {
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            if e.depth() > 0 && e.file_type().is_dir() {
                if name == ".git" || name == crate::project::KEEL_DIR {
                    return false;
                }
                let mut ptr = e.path().as_os_str().to_owned();
                ptr.push(".keel");
                return !Path::new(&ptr).is_file();
            }
            true
        });
    for e in walker.flatten() {
        if !e.file_type().is_file() {
            continue;
        }
        let Ok(rel) = e.path().strip_prefix(root) else {
            continue;
        };
        let rel = rel.to_string_lossy();
        if let Some(ds) = rel
            .strip_suffix(".keel")
            .and_then(|d| DatasetPath::new(d).ok())
        {
            if matches!(Pointer::read(e.path()), Ok(Some(_))) {
                out.push(ds);
            }
        }
    }
    out
}

/// The versions of a dataset, oldest first.
pub async fn log(store: &Store, dataset: &DatasetPath) -> Result<Vec<DatasetVersion>> {
    let all = versions::list(&store.db, dataset).await?;
    if all.is_empty() {
        return Err(StoreError::DatasetNotFound {
            path: dataset.to_string(),
        });
    }
    Ok(all)
}

/// Files added, removed and modified from version `a` to version `b`.
pub async fn diff(
    store: &Store,
    a: &VersionRef,
    b: &VersionRef,
) -> Result<(DatasetVersion, DatasetVersion, DiffReport)> {
    let va = version_of(store, a).await?;
    let vb = version_of(store, b).await?;
    let ta = load_tree(&store.objects, va.kind, &va.hash, va.size)?;
    let tb = load_tree(&store.objects, vb.kind, &vb.hash, vb.size)?;
    let map_b: BTreeMap<String, ObjectHash> = tb.iter().map(|e| (e.path.clone(), e.hash)).collect();
    let d = compare(&ta, &map_b);
    Ok((va, vb, d))
}

/// Restores a dataset's bytes exactly as they were in a version, and
/// points the pointer at it.
pub async fn checkout(
    store: &Store,
    r: &VersionRef,
    options: CheckoutOptions,
    progress: &dyn Progress,
) -> Result<CheckoutReport> {
    let version = version_of(store, r).await?;
    let objects = &store.objects;
    let root = store.project.root();
    let abs = root.join(version.path.as_str());
    if version.kind == Kind::Dir && !objects.contains(&version.hash) {
        return Err(StoreError::ObjectMissing {
            hash: version.hash,
            dataset: version.path.to_string(),
            file: "(directory manifest)".into(),
        });
    }
    let tree = load_tree(objects, version.kind, &version.hash, version.size)?;
    // Check everything is here before touching the workspace.
    if let Some(e) = tree.iter().find(|e| !objects.contains(&e.hash)) {
        return Err(StoreError::ObjectMissing {
            hash: e.hash,
            dataset: version.path.to_string(),
            file: display_file(&version.path, &e.path),
        });
    }
    refuse_symlinked_parents(root, version.path.as_str())?;
    let mut current_map: BTreeMap<String, ObjectHash> = workspace_tree(store, &version.path)?
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.path, e.hash))
        .collect();
    // The shape changes (file <-> directory): clear the old shape first.
    let is_dir = abs.is_dir();
    let shape_change = abs.exists() && (is_dir != (version.kind == Kind::Dir));
    let wanted: HashSet<&str> = tree.iter().map(|e| e.path.as_str()).collect();
    let extras: Vec<String> = current_map
        .keys()
        .filter(|p| shape_change || !wanted.contains(p.as_str()))
        .cloned()
        .collect();
    let wanted_hash: HashMap<&str, ObjectHash> =
        tree.iter().map(|e| (e.path.as_str(), e.hash)).collect();
    if !options.force {
        // Files checkout would delete or overwrite whose bytes are stored
        // nowhere: an edit never added would be lost.
        let unsaved: Vec<&String> = current_map
            .iter()
            .filter(|(p, h)| {
                let touched = shape_change || wanted_hash.get(p.as_str()).is_none_or(|w| w != *h);
                touched && !objects.contains(h)
            })
            .map(|(p, _)| p)
            .collect();
        if let Some(first) = unsaved.first() {
            return Err(StoreError::WouldLoseData {
                dataset: version.path.to_string(),
                count: unsaved.len(),
                first: display_file(&version.path, first),
            });
        }
    }
    let mut removed = 0;
    for p in &extras {
        let file = if p.is_empty() {
            abs.clone()
        } else {
            abs.join(p)
        };
        std::fs::remove_file(&file).map_err(StoreError::io("removing", &file))?;
        current_map.remove(p);
        removed += 1;
    }
    if is_dir {
        // Directories emptied by the removals could stand where a file of
        // the version must go.
        remove_empty_dirs(&abs);
        if shape_change {
            let _ = std::fs::remove_dir(&abs);
        }
    }
    if version.kind == Kind::Dir {
        // A version's manifest may come from an untrusted remote: never
        // write through a symbolic link in the workspace.
        let mut checked = HashSet::new();
        for e in &tree {
            let mut dir = String::new();
            for part in e
                .path
                .split('/')
                .collect::<Vec<_>>()
                .iter()
                .rev()
                .skip(1)
                .rev()
            {
                if !dir.is_empty() {
                    dir.push('/');
                }
                dir.push_str(part);
                if checked.insert(dir.clone()) {
                    let p = abs.join(&dir);
                    if std::fs::symlink_metadata(&p).is_ok_and(|m| !m.is_dir()) {
                        return Err(StoreError::InvalidPath {
                            path: p,
                            reason: "is in the way of a directory of the version (a symbolic link or file); \
                                     move it away and check out again"
                                .into(),
                        });
                    }
                }
            }
        }
    }
    let todo: Vec<&Entry> = tree
        .iter()
        .filter(|e| current_map.get(&e.path) != Some(&e.hash))
        .collect();
    let unchanged = (tree.len() - todo.len()) as u64;
    progress.begin(
        &format!("checking out {}@{}", version.path, version.seq),
        Some(todo.iter().map(|e| e.size).sum()),
        Unit::Bytes,
    );
    todo.par_iter()
        .map(|e| {
            let dest = if e.path.is_empty() {
                abs.clone()
            } else {
                abs.join(&e.path)
            };
            objects.materialize(&e.hash, &dest, options.link, e.exec)?;
            progress.advance(e.size);
            Ok(())
        })
        .collect::<Result<Vec<()>>>()?;
    progress.end();
    if version.kind == Kind::Dir {
        std::fs::create_dir_all(&abs).map_err(StoreError::io("creating", &abs))?;
        remove_empty_dirs(&abs);
    }
    write_pointer(root, &version)?;
    // Refresh the stat cache for the files just written.
    let state = store.project.state_dir("stat")?;
    let mut cache = StatCache::load(&state, &version.path);
    if let Some(scan) = tree::scan(&abs)? {
        let by_path: HashMap<&str, ObjectHash> =
            tree.iter().map(|e| (e.path.as_str(), e.hash)).collect();
        for f in &scan.files {
            if let Some(h) = by_path.get(f.rel.as_str()) {
                cache.insert(f, *h);
            }
        }
        cache.retain(|p| by_path.contains_key(p));
        let _ = cache.save(&state, &version.path, tree::now_ns());
    }
    Ok(CheckoutReport {
        version,
        written: todo.len() as u64,
        unchanged,
        removed,
    })
}

/// Refuses a dataset path whose parent directories (inside the project)
/// include a symbolic link: keel would read or write outside the project.
fn refuse_symlinked_parents(root: &Path, rel: &str) -> Result<()> {
    let mut p = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        p.push(part);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(StoreError::InvalidPath {
                path: p,
                reason: "is a symbolic link; datasets must be inside the project".into(),
            });
        }
    }
    Ok(())
}

fn display_file(dataset: &DatasetPath, rel: &str) -> String {
    if rel.is_empty() {
        dataset.to_string()
    } else {
        format!("{dataset}/{rel}")
    }
}

/// Removes empty directories below `dir` (deepest first), keeping `dir`.
fn remove_empty_dirs(dir: &Path) {
    let mut dirs: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_dir())
        .map(|e| e.into_path())
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        let _ = std::fs::remove_dir(d);
    }
}

/// Re-hashes every object and checks that every version's objects exist.
/// With `repair`, corrupt objects are moved to `.keel/quarantine/` so
/// that a re-add or a pull can store the right bytes again.
pub async fn fsck(store: &Store, repair: bool, progress: &dyn Progress) -> Result<FsckReport> {
    let objects = &store.objects;
    let mut report = FsckReport::default();
    let all = versions::list_all(&store.db).await?;
    report.versions = all.len() as u64;
    // Who uses what, to name the datasets hit by a bad object.
    let mut users: HashMap<ObjectHash, Vec<String>> = HashMap::new();
    for v in &all {
        let label = format!("{}@{}", v.path, v.seq);
        if v.kind == Kind::Dir {
            users
                .entry(v.hash)
                .or_default()
                .push(format!("{label} (manifest)"));
            if !objects.contains(&v.hash) {
                continue;
            }
            match load_tree(objects, v.kind, &v.hash, v.size) {
                Ok(tree) => {
                    for e in tree {
                        users
                            .entry(e.hash)
                            .or_default()
                            .push(format!("{label}:{}", e.path));
                    }
                }
                Err(e) => report.problems.push(FsckProblem::BadManifest {
                    version: label,
                    message: e.to_string(),
                }),
            }
        } else {
            users.entry(v.hash).or_default().push(label);
        }
    }
    let quarantine = store.project.keel_dir().join("quarantine");
    for (path, message) in objects.bad_pack_indexes() {
        let message = if !repair {
            if message.starts_with("its pack:") {
                message
            } else {
                format!("{message} (`keel fsck --repair` rebuilds it from its pack)")
            }
        } else {
            match objects.rebuild_pack_index(&path, &quarantine) {
                Ok(n) => {
                    report.rebuilt_indexes += 1;
                    report.rebuilt_objects += n as u64;
                    continue;
                }
                Err(e) => format!("{message}; rebuilding it from its pack failed: {e}"),
            }
        };
        report
            .problems
            .push(FsckProblem::BadPackIndex { path, message });
    }
    let listed = objects.list()?;
    report.objects = listed.len() as u64;
    report.bytes = listed.iter().map(|(_, s)| s).sum();
    progress.begin("verifying objects", Some(report.bytes), Unit::Bytes);
    // Objects whose bytes do not match (`Ok(actual)`) or cannot be read.
    let bad: Vec<(ObjectHash, std::result::Result<ObjectHash, String>)> = listed
        .par_iter()
        .filter_map(|(h, size)| {
            let r = objects.verify(h);
            progress.advance(*size);
            match r {
                Ok(Some(actual)) => Some((*h, Ok(actual))),
                Ok(None) => None,
                Err(e) => Some((*h, Err(e.to_string()))),
            }
        })
        .collect();
    progress.end();
    let present: HashSet<ObjectHash> = listed.iter().map(|(h, _)| *h).collect();
    for (hash, checked) in bad {
        let used_by = users.get(&hash).cloned().unwrap_or_default();
        let actual = match checked {
            Ok(actual) => actual,
            // Not quarantined: the error may pass (permissions, a full
            // table of open files), and the bytes may be right.
            Err(message) => {
                report.problems.push(FsckProblem::Unreadable {
                    hash,
                    message,
                    used_by,
                });
                continue;
            }
        };
        if repair {
            let moved = objects.quarantine(&hash, &quarantine)?;
            report.quarantined += moved.len() as u64;
        }
        report.problems.push(FsckProblem::Corrupt {
            hash,
            actual,
            used_by,
        });
    }
    let mut missing: Vec<(&ObjectHash, &Vec<String>)> =
        users.iter().filter(|(h, _)| !present.contains(h)).collect();
    missing.sort();
    for (hash, used_by) in missing {
        report.problems.push(FsckProblem::Missing {
            hash: *hash,
            used_by: used_by.clone(),
        });
    }
    report.temp_files = objects.tmp_count() as u64;
    Ok(report)
}
