use std::collections::HashSet;

use futures::{stream, StreamExt, TryStreamExt};
use keel_core::{ObjectHash, Progress, Unit};

use super::ops::{
    checkout, find_pointers, version_of, CheckoutOptions, CheckoutReport, VersionRef,
};
use super::tree::{decode_manifest, load_tree, Kind};
use super::versions::{self, DatasetVersion};
use crate::error::{Result, StoreError};
use crate::objects::RemoteObjects;
use crate::Store;

/// Parallel transfers: enough to hide S3 latency, few enough for a laptop.
const CONCURRENCY: usize = 8;

/// What a push or pull moved.
#[derive(Debug, Clone, Default)]
pub struct TransferReport {
    /// Objects transferred.
    pub transferred: u64,
    /// Bytes transferred.
    pub bytes: u64,
    /// Objects already on the other side.
    pub present: u64,
    /// Datasets checked out after a pull.
    pub checkouts: Vec<CheckoutReport>,
}

async fn select_versions(
    store: &Store,
    refs: &[VersionRef],
    all_versions: bool,
) -> Result<Vec<DatasetVersion>> {
    if refs.is_empty() && all_versions {
        return versions::list_all(&store.db).await;
    }
    let refs: Vec<VersionRef> = if refs.is_empty() {
        find_pointers(store.project.root())
            .into_iter()
            .map(|path| VersionRef {
                path,
                version: None,
            })
            .collect()
    } else {
        refs.to_vec()
    };
    let mut out = Vec::new();
    for r in &refs {
        if all_versions {
            let of_path = versions::list(&store.db, &r.path).await?;
            if of_path.is_empty() {
                return Err(StoreError::DatasetNotFound {
                    path: r.path.to_string(),
                });
            }
            out.extend(of_path);
        } else {
            out.push(version_of(store, r).await?);
        }
    }
    Ok(out)
}

/// Runs `op` on every object, `CONCURRENCY` at a time, advancing the
/// progress by each object's size; returns (objects, bytes).
async fn transfer_all<'a, F, Fut>(
    items: &'a [(ObjectHash, u64)],
    progress: &dyn Progress,
    op: F,
) -> Result<(u64, u64)>
where
    F: Fn(&'a ObjectHash) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let op = &op;
    stream::iter(items.iter().map(|(h, size)| async move {
        op(h).await?;
        progress.advance(*size);
        Ok::<_, StoreError>(*size)
    }))
    .buffer_unordered(CONCURRENCY)
    .try_fold((0u64, 0u64), |(n, b), size| {
        futures::future::ready(Ok((n + 1, b + size)))
    })
    .await
}

/// Uploads the objects of the selected versions that the remote lacks.
/// No refs: the versions the pointers in this checkout name.
pub async fn push(
    store: &Store,
    remote: &RemoteObjects,
    refs: &[VersionRef],
    all_versions: bool,
    progress: &dyn Progress,
) -> Result<TransferReport> {
    let chosen = select_versions(store, refs, all_versions).await?;
    let mut needed: Vec<(ObjectHash, u64)> = Vec::new();
    let mut seen = HashSet::new();
    for v in &chosen {
        if v.kind == Kind::Dir && seen.insert(v.hash) {
            needed.push((v.hash, 0));
        }
        for e in load_tree(&store.objects, v.kind, &v.hash, v.size)? {
            if !store.objects.contains(&e.hash) {
                return Err(StoreError::ObjectMissing {
                    hash: e.hash,
                    dataset: v.path.to_string(),
                    file: e.path,
                });
            }
            if seen.insert(e.hash) {
                needed.push((e.hash, e.size));
            }
        }
    }
    let on_remote = remote.list().await?;
    let todo: Vec<(ObjectHash, u64)> = needed
        .iter()
        .filter(|(h, _)| !on_remote.contains(h))
        .copied()
        .collect();
    let mut report = TransferReport {
        present: (needed.len() - todo.len()) as u64,
        ..TransferReport::default()
    };
    progress.begin(
        &format!("pushing to {}", remote.url()),
        Some(todo.iter().map(|(_, s)| s).sum()),
        Unit::Bytes,
    );
    let (n, bytes) = transfer_all(&todo, progress, |h| remote.upload(&store.objects, h)).await?;
    report.transferred += n;
    report.bytes += bytes;
    progress.end();
    Ok(report)
}

/// Downloads what the selected versions need from the remote, verifying
/// every object's hash, then checks them out.
pub async fn pull(
    store: &Store,
    remote: &RemoteObjects,
    refs: &[VersionRef],
    options: CheckoutOptions,
    progress: &dyn Progress,
) -> Result<TransferReport> {
    let chosen = select_versions(store, refs, false).await?;
    let on_remote = remote.list().await?;
    let mut report = TransferReport::default();
    // Manifests first: they say which file objects are needed.
    let mut needed: Vec<(ObjectHash, u64, String)> = Vec::new();
    let mut seen = HashSet::new();
    for v in &chosen {
        let entries = match v.kind {
            Kind::File => load_tree(&store.objects, v.kind, &v.hash, v.size)?,
            Kind::Dir => {
                if !store.objects.contains(&v.hash) {
                    if !on_remote.contains(&v.hash) {
                        return Err(StoreError::RemoteObjectMissing {
                            remote: remote.url().to_string(),
                            count: 1,
                            first: v.hash,
                            first_file: format!("{}@{} (directory manifest)", v.path, v.seq),
                        });
                    }
                    remote.download(&store.objects, &v.hash).await?;
                    report.transferred += 1;
                }
                decode_manifest(&v.hash, &store.objects.read(&v.hash)?)?
            }
        };
        for e in entries {
            if seen.insert(e.hash) && !store.objects.contains(&e.hash) {
                let file = if e.path.is_empty() {
                    v.path.to_string()
                } else {
                    format!("{}/{}", v.path, e.path)
                };
                needed.push((e.hash, e.size, file));
            }
        }
    }
    let absent: Vec<&(ObjectHash, u64, String)> = needed
        .iter()
        .filter(|(h, _, _)| !on_remote.contains(h))
        .collect();
    if let Some(first) = absent.first() {
        return Err(StoreError::RemoteObjectMissing {
            remote: remote.url().to_string(),
            count: absent.len(),
            first: first.0,
            first_file: first.2.clone(),
        });
    }
    progress.begin(
        &format!("pulling from {}", remote.url()),
        Some(needed.iter().map(|(_, s, _)| s).sum()),
        Unit::Bytes,
    );
    let items: Vec<(ObjectHash, u64)> = needed.iter().map(|(h, s, _)| (*h, *s)).collect();
    // Small objects go into a pack, as `data add` stores them; an
    // interrupted pull keeps the large ones only.
    let pack = store.objects.pack_writer();
    let (n, bytes) = transfer_all(&items, progress, |h| remote.download_to(&pack, h)).await?;
    pack.finish()?;
    report.transferred += n;
    report.bytes += bytes;
    progress.end();
    store.objects.sync()?;
    for v in &chosen {
        let r = VersionRef {
            path: v.path.clone(),
            version: Some(v.hash.to_hex()),
        };
        report
            .checkouts
            .push(checkout(store, &r, options, progress).await?);
    }
    Ok(report)
}
