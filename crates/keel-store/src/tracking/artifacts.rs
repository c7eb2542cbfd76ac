//! Run and logged-model artifacts, stored as objects in the
//! content-addressed store, with a table mapping (owner, relative path) to
//! the object's hash and size.
//!
//! Artifact URIs are `mlflow-artifacts:/<exp>/<run_id>/artifacts/<path>`
//! and `mlflow-artifacts:/<exp>/models/<model_id>/artifacts/<path>`. Every
//! path from a request goes through [`validate::artifact_path`] and
//! [`resolve`]: no user-chosen location ever reaches the file system; reads
//! go through the object store by hash, and the object file is
//! canonicalized and checked to be inside the store before it is opened.

use std::path::{Path, PathBuf};

use keel_core::ObjectHash;

use super::error::{TrackingError, TrackingResult};
use super::util::col;
use super::{logged_models, runs, validate, Lifecycle};
use crate::db::now_ms;
use crate::{Store, StoreError};

/// Whose artifacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A run's artifacts.
    Run {
        /// The run's experiment.
        experiment_id: i64,
        /// The run.
        run_id: String,
    },
    /// A logged model's artifacts.
    Model {
        /// The model's experiment.
        experiment_id: i64,
        /// The model.
        model_id: String,
    },
}

impl Owner {
    /// The key rows are stored under.
    pub fn key(&self) -> &str {
        match self {
            Owner::Run { run_id, .. } => run_id,
            Owner::Model { model_id, .. } => model_id,
        }
    }

    /// The `mlflow-artifacts:/…` root URI.
    pub fn uri(&self) -> String {
        match self {
            Owner::Run {
                experiment_id,
                run_id,
            } => format!("mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"),
            Owner::Model {
                experiment_id,
                model_id,
            } => {
                format!("mlflow-artifacts:/{experiment_id}/models/{model_id}/artifacts")
            }
        }
    }
}

/// One listing entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the listed directory's owner root.
    pub path: String,
    /// A directory (then there is no size).
    pub is_dir: bool,
    /// Size in bytes, for files.
    pub size: Option<i64>,
}

/// Resolves the path part of an `mlflow-artifacts:/` URI (the storage key,
/// e.g. `1/<run>/artifacts/model/MLmodel`) to its owner and the normalised
/// path inside the owner's root. The owner must exist and belong to the
/// experiment named in the path.
pub async fn resolve(store: &Store, raw: &str) -> TrackingResult<(Owner, String)> {
    let norm = validate::artifact_path(raw)?;
    let segs: Vec<&str> = norm.split('/').collect();
    let bad = || {
        TrackingError::invalid(format!(
            "Invalid artifact path '{}': expected <experiment_id>/<run_id>/artifacts/… or \
             <experiment_id>/models/<model_id>/artifacts/…",
            raw.escape_debug()
        ))
    };
    let exp: i64 = segs.first().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let (owner, rest) = match segs.as_slice() {
        [_, "models", id, "artifacts", rest @ ..] => {
            let m = logged_models::get(store, id, false).await?;
            if m.experiment_id != exp {
                return Err(TrackingError::not_found(format!(
                    "Logged model '{id}' not found in experiment {exp}"
                )));
            }
            (
                Owner::Model {
                    experiment_id: exp,
                    model_id: m.model_id,
                },
                rest,
            )
        }
        [_, id, "artifacts", rest @ ..] => {
            let r = runs::get_info(store, id).await?;
            if r.experiment_id != exp {
                return Err(TrackingError::not_found(format!(
                    "Run '{id}' not found in experiment {exp}"
                )));
            }
            (
                Owner::Run {
                    experiment_id: exp,
                    run_id: r.run_id,
                },
                rest,
            )
        }
        _ => return Err(bad()),
    };
    Ok((owner, rest.join("/")))
}

/// Resolves and checks that the owner accepts writes (an active run).
pub async fn resolve_for_write(store: &Store, raw: &str) -> TrackingResult<(Owner, String)> {
    let (owner, rel) = resolve(store, raw).await?;
    if let Owner::Run { run_id, .. } = &owner {
        if runs::get_info(store, run_id).await?.lifecycle != Lifecycle::Active {
            return Err(TrackingError::invalid(format!(
                "The run {run_id} must be in the 'active' state."
            )));
        }
    }
    if rel.is_empty() {
        return Err(TrackingError::invalid(
            "An artifact upload needs a file name",
        ));
    }
    Ok((owner, rel))
}

/// Stores the file at `src` (a temporary file the caller wrote) as artifact
/// `rel` of `owner`, replacing any previous one.
pub async fn put_file(
    store: &Store,
    owner: &Owner,
    rel: &str,
    src: &Path,
) -> TrackingResult<ObjectHash> {
    let objects = store.objects.clone();
    let src = src.to_path_buf();
    let (hash, size) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
        let meta = std::fs::metadata(&src).map_err(|source| StoreError::Io {
            op: "reading",
            path: src.clone(),
            source,
        })?;
        let (h, _) = objects.put_file(&src, &meta)?;
        Ok((h, meta.len() as i64))
    })
    .await
    .map_err(|e| TrackingError::invalid(format!("artifact upload task failed: {e}")))??;
    record(store, owner, rel, &hash, size).await?;
    Ok(hash)
}

/// Stores `bytes` as artifact `rel` of `owner`.
pub async fn put_bytes(
    store: &Store,
    owner: &Owner,
    rel: &str,
    bytes: &[u8],
) -> TrackingResult<ObjectHash> {
    let (hash, _) = store.objects.put_bytes(bytes)?;
    record(store, owner, rel, &hash, bytes.len() as i64).await?;
    Ok(hash)
}

async fn record(
    store: &Store,
    owner: &Owner,
    rel: &str,
    hash: &ObjectHash,
    size: i64,
) -> TrackingResult<()> {
    sqlx::query(
        "INSERT INTO artifacts (owner, path, hash, size, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (owner, path) DO UPDATE SET hash = excluded.hash, size = excluded.size, created_at = excluded.created_at",
    )
    .bind(owner.key())
    .bind(rel)
    .bind(hash.to_hex())
    .bind(size)
    .bind(now_ms())
    .execute(store.db.pool())
    .await
    .map_err(TrackingError::db("recording artifact"))?;
    Ok(())
}

/// The object behind a file artifact, or `None` if there is no such file.
pub async fn lookup(
    store: &Store,
    owner: &Owner,
    rel: &str,
) -> TrackingResult<Option<(ObjectHash, i64)>> {
    let row = sqlx::query("SELECT hash, size FROM artifacts WHERE owner = $1 AND path = $2")
        .bind(owner.key())
        .bind(rel)
        .fetch_optional(store.db.pool())
        .await
        .map_err(TrackingError::db("reading artifact"))?;
    let Some(row) = row else { return Ok(None) };
    let hex: String = col(&row, "hash")?;
    let hash: ObjectHash = hex.parse().map_err(|_| {
        TrackingError::invalid(format!(
            "artifact row names a malformed object hash {hex:?}"
        ))
    })?;
    Ok(Some((hash, col(&row, "size")?)))
}

/// The on-disk path of an object, canonicalized and checked to lie inside
/// the object store (a symlink planted in the store cannot lead outside).
pub fn object_file(store: &Store, hash: &ObjectHash) -> TrackingResult<PathBuf> {
    let path = store.objects.path_of(hash);
    let root = path
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| TrackingError::invalid("object path has no parent"))?;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| {
            TrackingError::Store(StoreError::Io {
                op: "resolving",
                path: p,
                source,
            })
        }
    };
    let root = root.canonicalize().map_err(io(root))?;
    let real = path.canonicalize().map_err(io(&path))?;
    if !real.starts_with(&root) || !real.is_file() {
        return Err(TrackingError::invalid(format!(
            "object {hash} resolves outside the object store; refusing to read it"
        )));
    }
    Ok(real)
}

/// Reads a file artifact whole.
pub async fn read(store: &Store, owner: &Owner, rel: &str) -> TrackingResult<Option<Vec<u8>>> {
    let Some((hash, _)) = lookup(store, owner, rel).await? else {
        return Ok(None);
    };
    let path = object_file(store, &hash)?;
    let bytes = tokio::fs::read(&path).await.map_err(|source| {
        TrackingError::Store(StoreError::Io {
            op: "reading",
            path,
            source,
        })
    })?;
    Ok(Some(bytes))
}

async fn under(store: &Store, owner: &Owner, dir: &str) -> TrackingResult<Vec<(String, i64)>> {
    let rows = if dir.is_empty() {
        sqlx::query("SELECT path, size FROM artifacts WHERE owner = $1 ORDER BY path")
            .bind(owner.key())
            .fetch_all(store.db.pool())
            .await
    } else {
        let prefix = format!("{dir}/");
        sqlx::query("SELECT path, size FROM artifacts WHERE owner = $1 AND SUBSTR(path, 1, CAST($2 AS INTEGER)) = $3 ORDER BY path")
            .bind(owner.key())
            .bind(prefix.chars().count() as i64)
            .bind(prefix)
            .fetch_all(store.db.pool())
            .await
    }
    .map_err(TrackingError::db("listing artifacts"))?;
    rows.iter()
        .map(|r| Ok((col(r, "path")?, col(r, "size")?)))
        .collect()
}

/// Lists the direct children of directory `dir` (MLflow semantics: a file
/// or a missing path lists as empty). Entry paths are relative to the
/// owner's root.
pub async fn list(store: &Store, owner: &Owner, dir: &str) -> TrackingResult<Vec<Entry>> {
    let mut out: Vec<Entry> = Vec::new();
    let skip = if dir.is_empty() { 0 } else { dir.len() + 1 };
    for (path, size) in under(store, owner, dir).await? {
        let rest = &path[skip..];
        match rest.split_once('/') {
            None => out.push(Entry {
                path: path.clone(),
                is_dir: false,
                size: Some(size),
            }),
            Some((first, _)) => {
                let p = if dir.is_empty() {
                    first.to_string()
                } else {
                    format!("{dir}/{first}")
                };
                if !out.iter().any(|e| e.is_dir && e.path == p) {
                    out.push(Entry {
                        path: p,
                        is_dir: true,
                        size: None,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Every file under `dir` (recursive), as (path, size).
pub async fn walk(store: &Store, owner: &Owner, dir: &str) -> TrackingResult<Vec<(String, i64)>> {
    under(store, owner, dir).await
}

/// Deletes a file artifact or a whole directory; returns how many files.
/// The objects stay (they are content-addressed and may be shared).
pub async fn delete(store: &Store, owner: &Owner, rel: &str) -> TrackingResult<u64> {
    if rel.is_empty() {
        let n = sqlx::query("DELETE FROM artifacts WHERE owner = $1")
            .bind(owner.key())
            .execute(store.db.pool())
            .await
            .map_err(TrackingError::db("deleting artifacts"))?
            .rows_affected();
        return Ok(n);
    }
    let prefix = format!("{rel}/");
    let n = sqlx::query("DELETE FROM artifacts WHERE owner = $1 AND (path = $2 OR SUBSTR(path, 1, CAST($3 AS INTEGER)) = $4)")
        .bind(owner.key())
        .bind(rel)
        .bind(prefix.chars().count() as i64)
        .bind(&prefix)
        .execute(store.db.pool())
        .await
        .map_err(TrackingError::db("deleting artifacts"))?
        .rows_affected();
    Ok(n)
}
