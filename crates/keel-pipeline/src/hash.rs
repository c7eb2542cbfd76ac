//! Content hashes of files, directories and artifact sets, and the job
//! cache key.
//!
//! A file's hash is BLAKE3 of its bytes (the same as its object name in
//! keel's store). A directory's hash is BLAKE3 of its manifest: one line
//! `<x|-> <file hash> <relative path>` per file, sorted by path, so
//! renaming, editing or `chmod +x` changes it and mtimes do not.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use keel_core::ObjectHash;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::Artifacts;
use crate::error::{Error, Result};
use crate::glob::{self, Glob};

/// Whether a path is a file or a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file (or a symlink, hashed by its target's content).
    File,
    /// A directory, hashed by its manifest.
    Dir,
}

/// A path's kind and content hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathHash {
    /// File or directory.
    pub kind: Kind,
    /// The content hash.
    #[serde(with = "hex")]
    pub hash: ObjectHash,
}

/// Serde for [`ObjectHash`] as its 64-digit hex text.
mod hex {
    use keel_core::ObjectHash;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &ObjectHash, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(h)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectHash, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One file of a directory manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Path relative to the directory, `/`-separated.
    pub path: String,
    /// The file's hash.
    pub hash: ObjectHash,
    /// Whether any execute bit is set.
    pub executable: bool,
}

/// Hashes one file's bytes.
pub fn hash_file(path: &Path) -> io::Result<ObjectHash> {
    let mut h = blake3::Hasher::new();
    let len = fs::metadata(path)?.len();
    if len > 1 << 20 {
        h.update_mmap(path)?;
    } else {
        h.update(&fs::read(path)?);
    }
    Ok(ObjectHash::from_digest(h.finalize()))
}

fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

/// The files under `dir`, hashed in parallel, sorted by path.
pub fn manifest(dir: &Path) -> io::Result<Vec<ManifestEntry>> {
    let mut files: Vec<(String, PathBuf, bool)> = Vec::new();
    for e in walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
    {
        let e = e.map_err(io::Error::other)?;
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e
            .path()
            .strip_prefix(dir)
            .map_err(io::Error::other)?
            .to_string_lossy()
            .replace('\\', "/");
        let exec = is_executable(&e.metadata().map_err(io::Error::other)?);
        files.push((rel, e.path().to_path_buf(), exec));
    }
    let hashed: io::Result<Vec<ManifestEntry>> = files
        .into_par_iter()
        .map(|(path, full, executable)| {
            Ok(ManifestEntry {
                hash: hash_file(&full)?,
                path,
                executable,
            })
        })
        .collect();
    let mut v = hashed?;
    v.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(v)
}

/// The canonical bytes of a manifest (what a directory's hash is over).
pub fn manifest_bytes(entries: &[ManifestEntry]) -> Vec<u8> {
    let mut out = b"keel-dir-v1\n".to_vec();
    for e in entries {
        out.extend_from_slice(if e.executable { b"x " } else { b"- " });
        out.extend_from_slice(e.hash.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(e.path.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Parses [`manifest_bytes`] back.
pub fn parse_manifest(bytes: &[u8]) -> Option<Vec<ManifestEntry>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "keel-dir-v1" {
        return None;
    }
    lines
        .map(|l| {
            let (flag, rest) = l.split_once(' ')?;
            let (hash, path) = rest.split_once(' ')?;
            Some(ManifestEntry {
                path: path.to_string(),
                hash: hash.parse().ok()?,
                executable: flag == "x",
            })
        })
        .collect()
}

/// Hashes a file or directory; `None` when it does not exist.
pub fn hash_path(path: &Path) -> io::Result<Option<PathHash>> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        let m = manifest(path)?;
        Ok(Some(PathHash {
            kind: Kind::Dir,
            hash: ObjectHash::of_bytes(&manifest_bytes(&m)),
        }))
    } else {
        Ok(Some(PathHash {
            kind: Kind::File,
            hash: hash_file(path)?,
        }))
    }
}

/// Expands out/artifact patterns into existing paths relative to `root`
/// (globs matched against files and directories; plain paths kept when
/// they exist), sorted and deduplicated.
pub fn expand_patterns(root: &Path, patterns: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for p in patterns {
        let p = p.trim_start_matches("./").trim_end_matches('/');
        if glob::is_glob(p) {
            let g = Glob::new(p).ok_or_else(|| Error::Job {
                job: String::new(),
                message: format!("malformed glob {p:?}"),
            })?;
            out.extend(crate::config::walk_matches(root, &g));
        } else if root.join(p).exists() {
            out.push(p.to_string());
        }
    }
    out.sort();
    out.dedup();
    // Drop paths inside another listed directory.
    let dirs: Vec<String> = out
        .iter()
        .filter(|p| root.join(p).is_dir())
        .cloned()
        .collect();
    out.retain(|p| {
        !dirs
            .iter()
            .any(|d| p != d && p.starts_with(&format!("{d}/")))
    });
    Ok(out)
}

/// The digest of what a job hands downstream as artifacts: every file
/// matched by `paths` minus `exclude`, with its hash. `None` when the
/// job declares no artifacts.
pub fn artifacts_digest(root: &Path, a: &Artifacts) -> Result<Option<ObjectHash>> {
    if a.paths.is_empty() {
        return Ok(None);
    }
    let excludes: Vec<Glob> = a.exclude.iter().filter_map(|e| Glob::new(e)).collect();
    let mut files: Vec<String> = Vec::new();
    for p in expand_patterns(root, &a.paths)? {
        let full = root.join(&p);
        if full.is_dir() {
            for e in walkdir::WalkDir::new(&full)
                .follow_links(true)
                .into_iter()
                .flatten()
            {
                if e.file_type().is_file() {
                    if let Ok(rel) = e.path().strip_prefix(root) {
                        files.push(rel.to_string_lossy().replace('\\', "/"));
                    }
                }
            }
        } else {
            files.push(p);
        }
    }
    files.retain(|f| !excludes.iter().any(|g| g.is_match(f)));
    files.sort();
    files.dedup();
    let hashes: Vec<(String, ObjectHash)> = files
        .into_par_iter()
        .map(|f| {
            hash_file(&root.join(&f))
                .map(|h| (f.clone(), h))
                .map_err(|e| Error::io(root.join(&f), e))
        })
        .collect::<Result<_>>()?;
    let mut h = blake3::Hasher::new();
    h.update(b"keel-artifacts-v1\n");
    for (f, fh) in hashes {
        h.update(f.as_bytes());
        h.update(b"\0");
        h.update(fh.as_bytes());
    }
    Ok(Some(ObjectHash::from_digest(h.finalize())))
}

/// Everything that decides whether a job's result can be reused.
#[derive(Debug, Clone, Default)]
pub struct KeyInput<'a> {
    /// The instance name.
    pub job: &'a str,
    /// `before_script`, `script` and `after_script` lines, in order.
    pub script: Vec<&'a str>,
    /// Resolved non-secret, non-volatile variables, sorted.
    pub variables: &'a [(String, String)],
    /// Dep path → hash.
    pub deps: &'a [(String, PathHash)],
    /// Upstream job → artifacts digest.
    pub upstream: &'a [(String, ObjectHash)],
    /// Param key → value (JSON text).
    pub params: &'a [(String, String)],
    /// Declared outs and metrics (paths, not content).
    pub outs: &'a [String],
}

/// The job cache key: BLAKE3 over a length-prefixed encoding of the input.
pub fn cache_key(k: &KeyInput<'_>) -> ObjectHash {
    let mut h = blake3::Hasher::new();
    let mut field = |tag: &str, parts: &[&[u8]]| {
        h.update(tag.as_bytes());
        for p in parts {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
        }
    };
    field("keel-job-v1", &[k.job.as_bytes()]);
    for s in &k.script {
        field("script", &[s.as_bytes()]);
    }
    for (n, v) in k.variables {
        field("var", &[n.as_bytes(), v.as_bytes()]);
    }
    for (p, ph) in k.deps {
        let kind: &[u8] = if ph.kind == Kind::Dir {
            b"dir"
        } else {
            b"file"
        };
        field("dep", &[p.as_bytes(), kind, ph.hash.as_bytes()]);
    }
    for (j, d) in k.upstream {
        field("upstream", &[j.as_bytes(), d.as_bytes()]);
    }
    for (p, v) in k.params {
        field("param", &[p.as_bytes(), v.as_bytes()]);
    }
    for o in k.outs {
        field("out", &[o.as_bytes()]);
    }
    ObjectHash::from_digest(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_hash_tracks_content_names_and_exec_bit() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("x/sub")).unwrap();
        fs::write(d.path().join("x/a"), "1").unwrap();
        fs::write(d.path().join("x/sub/b"), "2").unwrap();
        let h1 = hash_path(&d.path().join("x")).unwrap().unwrap();
        assert_eq!(h1.kind, Kind::Dir);
        fs::set_permissions(d.path().join("x/a"), fs::Permissions::from_mode(0o755)).unwrap();
        let h2 = hash_path(&d.path().join("x")).unwrap().unwrap();
        assert_ne!(h1, h2);
        fs::rename(d.path().join("x/sub/b"), d.path().join("x/sub/c")).unwrap();
        assert_ne!(h2, hash_path(&d.path().join("x")).unwrap().unwrap());
        let m = manifest(&d.path().join("x")).unwrap();
        assert_eq!(parse_manifest(&manifest_bytes(&m)).unwrap(), m);
        assert_eq!(hash_path(&d.path().join("nope")).unwrap(), None);
    }

    #[test]
    fn artifacts_digest_honours_exclude() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("out")).unwrap();
        fs::write(d.path().join("out/a.bin"), "1").unwrap();
        fs::write(d.path().join("out/tmp.log"), "x").unwrap();
        let a = Artifacts {
            paths: vec!["out/".into()],
            exclude: vec!["out/*.log".into()],
            ..Artifacts::default()
        };
        let d1 = artifacts_digest(d.path(), &a).unwrap().unwrap();
        fs::write(d.path().join("out/tmp.log"), "changed").unwrap();
        assert_eq!(d1, artifacts_digest(d.path(), &a).unwrap().unwrap());
        fs::write(d.path().join("out/a.bin"), "2").unwrap();
        assert_ne!(d1, artifacts_digest(d.path(), &a).unwrap().unwrap());
    }
}
