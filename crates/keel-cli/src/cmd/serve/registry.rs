//! `RegistryLookup` over keel-store's model registry: resolves
//! `models:/NAME@ALIAS`, `models:/NAME/VERSION` and `runs:/ID/PATH` to the
//! version's artifacts and materializes them (from the object store) into a
//! package directory under `.keel/serve-cache/`, cached per version.

use std::path::{Path, PathBuf};

use keel_serve::resolve::{RegistryLookup, RegistryUri, Resolved};
use keel_serve::{Result, ServeError};
use keel_store::registry as reg;
use keel_store::tracking::artifacts::{self, Owner};
use keel_store::tracking::runs;
use keel_store::Store;

/// The registry of one keel project. Store operations run on a runtime of
/// its own (on a dedicated thread), so `lookup` may be called from any
/// thread, inside or outside another runtime.
pub struct StoreRegistry {
    store: Store,
    handle: tokio::runtime::Handle,
    cache: PathBuf,
}

impl StoreRegistry {
    /// Opens the project containing `cwd`.
    pub fn open(cwd: &Path, overrides: &keel_store::Overrides) -> anyhow::Result<StoreRegistry> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let store = rt.block_on(Store::open(cwd, overrides))?;
        std::thread::Builder::new()
            .name("keel-registry".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))?;
        let cache = cache_dir(&store);
        Ok(StoreRegistry {
            store,
            handle,
            cache,
        })
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv()
            .map_err(|_| anyhow::anyhow!("the registry task stopped"))?
    }

    fn lookup_inner(&self, uri: &RegistryUri) -> anyhow::Result<Resolved> {
        let store = self.store.clone();
        let cache = self.cache.clone();
        let uri = uri.clone();
        self.run(async move {
            let v = match &uri {
                RegistryUri::Alias { name, alias } => {
                    reg::get_by_alias(&store, name, alias).await?
                }
                RegistryUri::Version { name, version } => {
                    reg::get_version(&store, name, reg::version_number(version)?).await?
                }
                RegistryUri::Run { run_id, path } => {
                    let r = runs::get_info(&store, run_id).await?;
                    let owner = Owner::Run {
                        experiment_id: r.experiment_id,
                        run_id: r.run_id.clone(),
                    };
                    let name = path.rsplit('/').next().unwrap_or("model").to_string();
                    let version = format!("run-{}", r.run_id);
                    let dir = cache.join(safe(&name)).join(safe(&version));
                    if !dir.join(".complete").exists() {
                        materialize(&store, &owner, path, &dir).await?;
                    }
                    return Ok(Resolved {
                        name,
                        version,
                        path: dir,
                    });
                }
            };
            Ok(Resolved {
                name: v.name.clone(),
                version: v.version.to_string(),
                path: version_dir(&store, &cache, &v).await?,
            })
        })
    }
}

/// The package directory of a registered version, materialized (once per
/// version) under `cache` (`.keel/serve-cache/` of the project).
pub(crate) async fn version_dir(
    store: &Store,
    cache: &Path,
    v: &reg::ModelVersion,
) -> anyhow::Result<PathBuf> {
    let dir = cache.join(safe(&v.name)).join(v.version.to_string());
    if !dir.join(".complete").exists() {
        let (owner, rel) = storage_owner(store, &v.storage).await?;
        materialize(store, &owner, &rel, &dir).await?;
    }
    Ok(dir)
}

/// The cache directory `version_dir` materializes into.
pub(crate) fn cache_dir(store: &Store) -> PathBuf {
    store.project.keel_dir().join("serve-cache")
}

/// The owner and relative path behind a version's `mlflow-artifacts:/` URI.
async fn storage_owner(store: &Store, storage: &str) -> anyhow::Result<(Owner, String)> {
    let key = storage
        .strip_prefix("mlflow-artifacts:/")
        .ok_or_else(|| anyhow::anyhow!("unexpected storage URI {storage}"))?;
    Ok(artifacts::resolve(store, key).await?)
}

/// Writes every file under `rel` of `owner` into `dir` (atomically: a
/// temporary sibling renamed into place, marked complete).
async fn materialize(store: &Store, owner: &Owner, rel: &str, dir: &Path) -> anyhow::Result<()> {
    let files = artifacts::walk(store, owner, rel).await?;
    if files.is_empty() {
        anyhow::bail!("no artifacts under {}/{rel}", owner.uri());
    }
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("v")
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    for (path, _) in files {
        // A single-file source (rel is the file itself) lands under its name.
        let inner = if path == rel {
            path.rsplit('/').next().unwrap_or(&path).to_string()
        } else if rel.is_empty() {
            path.clone()
        } else {
            path[rel.len() + 1..].to_string()
        };
        if inner
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            anyhow::bail!("refusing artifact path {path:?}");
        }
        let bytes = artifacts::read(store, owner, &path)
            .await?
            .ok_or_else(|| anyhow::anyhow!("artifact {path} vanished"))?;
        let dst = tmp.join(&inner);
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(&dst, bytes)?;
    }
    std::fs::write(tmp.join(".complete"), b"")?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir)?;
    Ok(())
}

fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

impl RegistryLookup for StoreRegistry {
    fn lookup(&self, uri: &RegistryUri) -> Result<Resolved> {
        self.lookup_inner(uri).map_err(|e| ServeError::Resolve {
            uri: match uri {
                RegistryUri::Alias { name, alias } => format!("models:/{name}@{alias}"),
                RegistryUri::Version { name, version } => format!("models:/{name}/{version}"),
                RegistryUri::Run { run_id, path } => format!("runs:/{run_id}/{path}"),
            },
            message: format!("{e:#}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_store::tracking::{Actor, KeyValue};

    #[test]
    fn resolves_an_alias_to_a_materialized_package() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("proj");
        std::fs::create_dir_all(&root).unwrap();
        let overrides = keel_store::Overrides::default();
        keel_store::Project::init(&root, &overrides).unwrap();
        let pkg = tmp.path().join("pkg");
        std::fs::create_dir_all(pkg.join("sub")).unwrap();
        std::fs::write(pkg.join("model.onnx"), b"not really onnx").unwrap();
        std::fs::write(pkg.join("sub/meta.json"), b"{}").unwrap();

        let registry = StoreRegistry::open(&root, &overrides).unwrap();
        let store = registry.store.clone();
        let files = [
            ("model.onnx", pkg.join("model.onnx")),
            ("sub/meta.json", pkg.join("sub/meta.json")),
        ];
        registry
            .run(async move {
                let actor = Actor::local();
                let run = runs::create(
                    &store,
                    0,
                    "t",
                    Some("train"),
                    None,
                    &[KeyValue::new("k", "v")],
                )
                .await?;
                let owner = Owner::Run {
                    experiment_id: 0,
                    run_id: run.info.run_id.clone(),
                };
                for (rel, src) in &files {
                    artifacts::put_file(&store, &owner, &format!("model/{rel}"), src).await?;
                }
                reg::create_model(&store, "fraud", "", &[], &actor).await?;
                let source = format!("runs:/{}/model", run.info.run_id);
                let v =
                    reg::create_version(&store, "fraud", &source, None, None, &[], "", "", &actor)
                        .await?;
                reg::set_alias(&store, "fraud", "champion", v.version, &actor, "").await?;
                Ok(())
            })
            .unwrap();

        let uri = RegistryUri::parse("models:/fraud@champion").unwrap();
        let r = registry.lookup(&uri).unwrap();
        assert_eq!((r.name.as_str(), r.version.as_str()), ("fraud", "1"));
        assert!(
            r.path
                .starts_with(root.canonicalize().unwrap_or(root.clone()))
                || r.path.starts_with(&root)
        );
        assert_eq!(
            std::fs::read(r.path.join("model.onnx")).unwrap(),
            b"not really onnx"
        );
        assert_eq!(std::fs::read(r.path.join("sub/meta.json")).unwrap(), b"{}");
        // Cached: a second lookup answers the same directory.
        assert_eq!(registry.lookup(&uri).unwrap(), r);
        let by_version = registry
            .lookup(&RegistryUri::parse("models:/fraud/1").unwrap())
            .unwrap();
        assert_eq!(by_version.path, r.path);
        assert!(registry
            .lookup(&RegistryUri::parse("models:/fraud@nope").unwrap())
            .is_err());
    }
}
