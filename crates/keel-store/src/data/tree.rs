//! What a dataset version contains: pointer files, manifests and the
//! workspace scan they are compared with.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use keel_core::{DatasetPath, ObjectHash};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::objects::LocalObjects;
use crate::project::write_atomic;

/// Whether a dataset is one file or a directory tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A single file; its version hash is the file's object hash.
    File,
    /// A directory; its version hash is the hash of its manifest object.
    Dir,
}

impl Kind {
    /// `"file"` or `"dir"`, as stored in the DB.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Kind> {
        match s {
            "file" => Some(Kind::File),
            "dir" => Some(Kind::Dir),
            _ => None,
        }
    }
}

/// One file of a dataset version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the dataset root, `/`-separated; empty for a
    /// single-file dataset.
    pub path: String,
    /// The object holding the file's bytes.
    pub hash: ObjectHash,
    /// Size in bytes.
    pub size: u64,
    /// Whether the file is executable.
    pub exec: bool,
}

#[derive(Deserialize)]
struct ManifestFile {
    keel_manifest: u32,
    entries: Vec<ManifestEntry>,
}

#[derive(Deserialize)]
struct ManifestEntry {
    p: String,
    h: String,
    s: u64,
    #[serde(default)]
    x: bool,
}

/// The serialized form of [`ManifestFile`], borrowing the entries instead
/// of copying 100,000 paths and hashes into strings first. The field order
/// and names are the format: the same entries must always give the same
/// bytes (a version's hash is its manifest's).
#[derive(Serialize)]
struct ManifestOut<'a> {
    keel_manifest: u32,
    entries: EntriesOut<'a>,
}

struct EntriesOut<'a>(&'a [Entry]);

#[derive(Serialize)]
struct EntryOut<'a> {
    p: &'a str,
    h: HexOut<'a>,
    s: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    x: bool,
}

struct HexOut<'a>(&'a ObjectHash);

impl Serialize for HexOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

impl Serialize for EntriesOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|e| EntryOut {
            p: &e.path,
            h: HexOut(&e.hash),
            s: e.size,
            x: e.exec,
        }))
    }
}

/// Serializes a directory's entries (sorted by path) as a manifest.
pub fn encode_manifest(entries: &[Entry]) -> Vec<u8> {
    let file = ManifestOut {
        keel_manifest: 1,
        entries: EntriesOut(entries),
    };
    let mut out = Vec::with_capacity(32 + entries.len() * 120);
    serde_json::to_writer(&mut out, &file).expect("a manifest always serializes");
    out
}

/// Parses a manifest object.
pub fn decode_manifest(hash: &ObjectHash, bytes: &[u8]) -> Result<Vec<Entry>> {
    let bad = |message: String| StoreError::Parse {
        path: PathBuf::from(format!("object {hash}")),
        line: None,
        message,
    };
    let file: ManifestFile =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a keel manifest: {e}")))?;
    if file.keel_manifest != 1 {
        return Err(bad(format!(
            "unsupported manifest version {}",
            file.keel_manifest
        )));
    }
    // A manifest may come from an untrusted remote: every path must stay
    // inside the dataset (relative, normalised, no `..`), appear once, and
    // not look like keel's own temporary files.
    let mut prev: Option<String> = None;
    file.entries
        .into_iter()
        .map(|e| {
            let hash = e.h.parse().map_err(|err| bad(format!("{err}")))?;
            DatasetPath::new(&e.p).map_err(|err| bad(format!("entry {err}")))?;
            if is_keel_temp(&e.p) {
                return Err(bad(format!("entry {:?} is a keel temporary name", e.p)));
            }
            if prev.as_deref().is_some_and(|p| p >= e.p.as_str()) {
                return Err(bad(format!("entry {:?} is out of order or repeated", e.p)));
            }
            prev = Some(e.p.clone());
            Ok(Entry {
                path: e.p,
                hash,
                size: e.s,
                exec: e.x,
            })
        })
        .collect()
}

/// The files of a version: its manifest for a directory, one entry for a
/// file.
pub fn load_tree(
    objects: &LocalObjects,
    kind: Kind,
    hash: &ObjectHash,
    size: u64,
) -> Result<Vec<Entry>> {
    match kind {
        Kind::File => Ok(vec![Entry {
            path: String::new(),
            hash: *hash,
            size,
            exec: false,
        }]),
        Kind::Dir => decode_manifest(hash, &objects.read(hash)?),
    }
}

/// The `PATH.keel` pointer file committed to git next to the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pointer {
    /// Dataset path relative to the project root.
    pub path: String,
    /// File or directory.
    pub kind: Kind,
    /// Version hash (file object or manifest).
    pub hash: String,
    /// Total bytes.
    pub size: u64,
    /// Number of files.
    pub files: u64,
    /// The version number this pointer was written for.
    pub version: i64,
}

impl Pointer {
    /// The pointer file for a dataset: `data/raw` → `data/raw.keel`.
    pub fn location(root: &Path, dataset: &DatasetPath) -> PathBuf {
        root.join(format!("{}.keel", dataset.as_str()))
    }

    /// Reads a pointer; `Ok(None)` if there is none.
    pub fn read(path: &Path) -> Result<Option<Pointer>> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("reading", path)(e)),
        };
        let p: Pointer = serde_yaml_ng::from_str(&text).map_err(|e| StoreError::Parse {
            path: path.to_path_buf(),
            line: e.location().map(|l| l.line()),
            message: format!("not a keel pointer file: {e}"),
        })?;
        p.hash
            .parse::<ObjectHash>()
            .map_err(|e| StoreError::Parse {
                path: path.to_path_buf(),
                line: None,
                message: format!("field `hash`: {e}"),
            })?;
        Ok(Some(p))
    }

    /// The version hash, parsed.
    pub fn object_hash(&self) -> ObjectHash {
        // Validated by `read` and by construction.
        self.hash
            .parse()
            .unwrap_or_else(|_| ObjectHash::of_bytes(b""))
    }

    /// Writes the pointer atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = String::from(
            "# keel dataset pointer: commit this file to git.\n\
             # `keel data checkout` restores the data it names; `keel data log` lists versions.\n",
        );
        text.push_str(&serde_yaml_ng::to_string(self).expect("a pointer always serializes"));
        write_atomic(path, text.as_bytes())
    }
}

/// A file found in the workspace.
#[derive(Debug, Clone)]
pub struct Found {
    /// Path relative to the dataset root (empty for a single file).
    pub rel: String,
    /// Absolute path.
    pub abs: PathBuf,
    /// Its metadata at scan time.
    pub meta: fs::Metadata,
}

/// What a workspace scan saw.
#[derive(Debug, Default)]
pub struct Scan {
    /// Whether the dataset is a directory (from the same `lstat` as the
    /// listing, so it cannot disagree with it).
    pub is_dir: bool,
    /// Regular files, sorted by relative path.
    pub files: Vec<Found>,
    /// Paths skipped (symlinks, sockets…), with why.
    pub skipped: Vec<(String, &'static str)>,
}

/// Lists the regular files of a dataset in the workspace. `Ok(None)` if
/// nothing is at `abs`.
///
/// Directories are listed in parallel, and each file is `lstat`ed relative
/// to its open directory (`statx` on the directory's descriptor), not by
/// its full path.
pub fn scan(abs: &Path) -> Result<Option<Scan>> {
    let meta = match fs::symlink_metadata(abs) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("reading", abs)(e)),
    };
    let mut scan = Scan {
        is_dir: meta.is_dir(),
        ..Scan::default()
    };
    if meta.is_file() {
        scan.files.push(Found {
            rel: String::new(),
            abs: abs.to_path_buf(),
            meta,
        });
        return Ok(Some(scan));
    }
    if !meta.is_dir() {
        return Err(StoreError::InvalidPath {
            path: abs.to_path_buf(),
            reason: "not a regular file or directory".into(),
        });
    }
    scan_dir(abs, "", &mut scan)?;
    // Sorted by the path string: the order manifests are written and
    // checked in.
    scan.files.par_sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    scan.skipped.sort();
    Ok(Some(scan))
}

/// Adds the files below `dir` (at `rel` in the dataset) to `out`,
/// listing its subdirectories in parallel.
fn scan_dir(dir: &Path, rel: &str, out: &mut Scan) -> Result<()> {
    let listing = fs::read_dir(dir).map_err(StoreError::io("listing", dir))?;
    let mut subdirs = Vec::new();
    for entry in listing {
        let entry = entry.map_err(StoreError::io("listing", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            // A lossy name would be restored under another name.
            out.skipped.push((
                join_rel(rel, &name.to_string_lossy()),
                "name is not valid UTF-8",
            ));
            continue;
        };
        let child = join_rel(rel, name);
        if name.contains('\\') {
            // Manifests use `/` paths and refuse backslashes (a Windows separator).
            out.skipped.push((child, "name contains a backslash"));
            continue;
        }
        let ft = entry
            .file_type()
            .map_err(|e| StoreError::io("reading", entry.path())(e))?;
        if ft.is_dir() {
            subdirs.push((entry.path(), child));
            continue;
        }
        if is_keel_temp(&child) {
            continue;
        }
        if !ft.is_file() {
            out.skipped.push((
                child,
                if ft.is_symlink() {
                    "symbolic link"
                } else {
                    "not a regular file"
                },
            ));
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Deleted since the listing: it is not part of the dataset.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io("reading", entry.path())(e)),
        };
        out.files.push(Found {
            rel: child,
            abs: entry.path(),
            meta,
        });
    }
    let below: Vec<Result<Scan>> = subdirs
        .into_par_iter()
        .map(|(path, rel)| {
            let mut sub = Scan::default();
            scan_dir(&path, &rel, &mut sub).map(|()| sub)
        })
        .collect();
    for sub in below {
        let sub = sub?;
        out.files.extend(sub.files);
        out.skipped.extend(sub.skipped);
    }
    Ok(())
}

fn join_rel(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

fn is_keel_temp(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.starts_with('.') && name.contains(".keel-tmp-")
}

/// Whether a file is executable by its owner.
pub fn is_exec(meta: &fs::Metadata) -> bool {
    meta.permissions().mode() & 0o100 != 0
}

/// Nanoseconds since the epoch of a file's modification time.
pub fn mtime_ns(meta: &fs::Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

/// The stat cache: for each file of a dataset, the (size, mtime, inode) it
/// had when it was last hashed. A file whose stat still matches is not
/// read again. Machine-local (inodes mean nothing elsewhere), so it lives
/// in `.keel/state/`, never in the shared DB.
///
/// The file is binary (see [`StatCache::save`]): loading 100,000 entries
/// must cost a few milliseconds, not a parse of decimal and hex text.
#[derive(Debug, Default)]
pub struct StatCache {
    written_ns: i128,
    entries: HashMap<String, CacheEntry>,
}

#[derive(Debug, Clone, Copy)]
struct CacheEntry {
    hash: ObjectHash,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

/// The first bytes of a stat cache file (format 3: binary).
const STAT_MAGIC: &[u8; 12] = b"keel-stat 3\n";
/// hash, size, mtime, ctime, inode, path length.
const STAT_FIXED: usize = 32 + 8 + 16 + 16 + 8 + 4;

/// Nanoseconds since the epoch of a file's status change time.
pub fn ctime_ns(meta: &fs::Metadata) -> i128 {
    i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec())
}

/// Now, in nanoseconds since the epoch: taken when a scan starts, it is
/// the reference time of the stat cache written from that scan.
pub fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// Splits `n` bytes off the front of `buf`.
fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Some(head)
}

fn take_array<const N: usize>(buf: &mut &[u8]) -> Option<[u8; N]> {
    take(buf, N)?.try_into().ok()
}

impl StatCache {
    fn file(state_dir: &Path, dataset: &DatasetPath) -> PathBuf {
        state_dir.join(ObjectHash::of_bytes(dataset.as_str().as_bytes()).short(32))
    }

    /// Loads a dataset's cache; empty if missing, unreadable or of an older
    /// format (it is only a cache: the files are hashed again).
    pub fn load(state_dir: &Path, dataset: &DatasetPath) -> StatCache {
        let Ok(bytes) = fs::read(Self::file(state_dir, dataset)) else {
            return StatCache::default();
        };
        Self::decode(&bytes).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Option<StatCache> {
        let mut buf = bytes.strip_prefix(STAT_MAGIC.as_slice())?;
        let written_ns = i128::from_le_bytes(take_array(&mut buf)?);
        let count = u64::from_le_bytes(take_array(&mut buf)?);
        // Bounded by what the file can hold, whatever the header says.
        let mut entries = HashMap::with_capacity((count as usize).min(buf.len() / STAT_FIXED));
        for _ in 0..count {
            let hash = ObjectHash::from_bytes(take_array(&mut buf)?);
            let size = u64::from_le_bytes(take_array(&mut buf)?);
            let mtime_ns = i128::from_le_bytes(take_array(&mut buf)?);
            let ctime_ns = i128::from_le_bytes(take_array(&mut buf)?);
            let ino = u64::from_le_bytes(take_array(&mut buf)?);
            let len = u32::from_le_bytes(take_array(&mut buf)?) as usize;
            let path = std::str::from_utf8(take(&mut buf, len)?).ok()?;
            entries.insert(
                path.to_string(),
                CacheEntry {
                    hash,
                    size,
                    mtime_ns,
                    ctime_ns,
                    ino,
                },
            );
        }
        buf.is_empty().then_some(StatCache {
            written_ns,
            entries,
        })
    }

    /// The cached hash of a file, if its stat (size, mtime, ctime, inode)
    /// is unchanged and it was not modified within a second before the scan
    /// that produced the entry started (the "racy git" case: an edit in
    /// the same clock tick as the hashing could keep size and mtime).
    /// ctime catches in-place rewrites that restore the mtime.
    pub fn lookup(&self, found: &Found) -> Option<ObjectHash> {
        let e = self.entries.get(&found.rel)?;
        let m = mtime_ns(&found.meta);
        let fresh = e.size == found.meta.len()
            && e.mtime_ns == m
            && e.ctime_ns == ctime_ns(&found.meta)
            && e.ino == found.meta.ino();
        let racy = m.max(e.ctime_ns) >= self.written_ns - 1_000_000_000;
        (fresh && !racy).then_some(e.hash)
    }

    /// Records a file's hash with its current stat.
    pub fn insert(&mut self, found: &Found, hash: ObjectHash) {
        self.entries.insert(
            found.rel.clone(),
            CacheEntry {
                hash,
                size: found.meta.len(),
                mtime_ns: mtime_ns(&found.meta),
                ctime_ns: ctime_ns(&found.meta),
                ino: found.meta.ino(),
            },
        );
    }

    /// Keeps only the given paths.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.entries.retain(|k, _| keep(k));
    }

    /// Saves the cache atomically. `scan_started_ns` is when the scan whose
    /// stats it holds began (see [`now_ns`]): entries modified close to or
    /// after it are not trusted later.
    ///
    /// Layout (little-endian): [`STAT_MAGIC`], the scan time (i128), the
    /// entry count (u64), then per entry the hash (32 bytes), size (u64),
    /// mtime and ctime (i128 ns), inode (u64), path length (u32) and path.
    pub fn save(
        &self,
        state_dir: &Path,
        dataset: &DatasetPath,
        scan_started_ns: i128,
    ) -> Result<()> {
        let paths: usize = self.entries.keys().map(String::len).sum();
        let mut out = Vec::with_capacity(40 + self.entries.len() * STAT_FIXED + paths);
        out.extend_from_slice(STAT_MAGIC);
        out.extend_from_slice(&scan_started_ns.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for (path, e) in &self.entries {
            out.extend_from_slice(e.hash.as_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            out.extend_from_slice(&e.mtime_ns.to_le_bytes());
            out.extend_from_slice(&e.ctime_ns.to_le_bytes());
            out.extend_from_slice(&e.ino.to_le_bytes());
            out.extend_from_slice(&(path.len() as u32).to_le_bytes());
            out.extend_from_slice(path.as_bytes());
        }
        write_atomic(&Self::file(state_dir, dataset), &out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest bytes are the version's identity: the encoding must not
    /// drift (field order, escaping, `x` only when set).
    #[test]
    fn manifest_bytes_are_stable() {
        let a = ObjectHash::of_bytes(b"a");
        let b = ObjectHash::of_bytes(b"b");
        let entries = vec![
            Entry {
                path: "d/\"q\" é\t.csv".into(),
                hash: a,
                size: 3,
                exec: false,
            },
            Entry {
                path: "run.sh".into(),
                hash: b,
                size: 0,
                exec: true,
            },
        ];
        let bytes = encode_manifest(&entries);
        let expected = format!(
            r#"{{"keel_manifest":1,"entries":[{{"p":"d/\"q\" é\t.csv","h":"{a}","s":3}},{{"p":"run.sh","h":"{b}","s":0,"x":true}}]}}"#
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
        assert_eq!(decode_manifest(&a, &bytes).unwrap(), entries);
    }
}
