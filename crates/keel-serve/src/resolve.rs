//! Model URIs → package directories.
//!
//! The server asks a [`Resolver`] where a URI points *now*; it polls it to
//! notice an alias moving. [`LocalResolver`] handles package directories
//! (and bare `.onnx` files): their version is a content hash of the model
//! file, so replacing a package in place is also picked up. Registry URIs
//! (`models:/NAME@ALIAS`, `models:/NAME/VERSION`, `runs:/ID/model`) are
//! answered by whichever registry implementation is plugged in (see
//! [`RegistryLookup`]); the seam keeps this crate free of SQL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Result, ServeError};

/// Where a URI points at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The model name reported by the server.
    pub name: String,
    /// The version that answers (a registry version, or a content hash).
    pub version: String,
    /// The package directory (or `.onnx` file).
    pub path: PathBuf,
}

/// Resolves model URIs. Called from a blocking context, periodically.
pub trait Resolver: Send + Sync + 'static {
    /// Where `uri` points now.
    fn resolve(&self, uri: &str) -> Result<Resolved>;
}

/// A parsed registry URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryUri {
    /// `models:/NAME@ALIAS`.
    Alias {
        /// Registered model name.
        name: String,
        /// Alias.
        alias: String,
    },
    /// `models:/NAME/VERSION`.
    Version {
        /// Registered model name.
        name: String,
        /// Version number.
        version: String,
    },
    /// `runs:/RUN_ID/PATH`.
    Run {
        /// Run id.
        run_id: String,
        /// Artifact path inside the run.
        path: String,
    },
}

impl RegistryUri {
    /// Parses `models:/…` and `runs:/…`; `None` for anything else.
    pub fn parse(uri: &str) -> Option<RegistryUri> {
        if let Some(rest) = uri.strip_prefix("models:/") {
            if let Some((name, alias)) = rest.split_once('@') {
                return Some(RegistryUri::Alias {
                    name: name.to_string(),
                    alias: alias.to_string(),
                });
            }
            let (name, version) = rest.rsplit_once('/')?;
            return Some(RegistryUri::Version {
                name: name.to_string(),
                version: version.to_string(),
            });
        }
        let rest = uri.strip_prefix("runs:/")?;
        let (run_id, path) = rest.split_once('/').unwrap_or((rest, "model"));
        Some(RegistryUri::Run {
            run_id: run_id.to_string(),
            path: path.to_string(),
        })
    }
}

/// A registry: answers registry URIs with a package directory. The
/// tracking/registry store implements it; tests use an in-memory one.
pub trait RegistryLookup: Send + Sync + 'static {
    /// Where `uri` points now.
    fn lookup(&self, uri: &RegistryUri) -> Result<Resolved>;
}

/// Package directories, plus registry URIs through an optional registry.
#[derive(Clone, Default)]
pub struct LocalResolver {
    registry: Option<Arc<dyn RegistryLookup>>,
}

impl LocalResolver {
    /// Directories only.
    pub fn new() -> LocalResolver {
        LocalResolver { registry: None }
    }

    /// Directories, and registry URIs through `registry`.
    pub fn with_registry(registry: Arc<dyn RegistryLookup>) -> LocalResolver {
        LocalResolver {
            registry: Some(registry),
        }
    }
}

impl Resolver for LocalResolver {
    fn resolve(&self, uri: &str) -> Result<Resolved> {
        if let Some(reg) = RegistryUri::parse(uri) {
            return match &self.registry {
                Some(r) => r.lookup(&reg),
                None => Err(ServeError::Resolve {
                    uri: uri.to_string(),
                    message:
                        "no model registry is available in this build; serve a package directory \
                              (e.g. `keel serve ./model`)"
                            .into(),
                }),
            };
        }
        let path = Path::new(uri.strip_prefix("file://").unwrap_or(uri));
        package_version(path).map_err(|e| ServeError::Resolve {
            uri: uri.to_string(),
            message: e.to_string(),
        })
    }
}

/// Name and content version of a package directory or `.onnx` file: the
/// name is the directory's, the version the first 12 hex digits of the
/// BLAKE3 hash of the model file.
pub fn package_version(path: &Path) -> Result<Resolved> {
    let model_file = if path.is_dir() {
        path.join("model.onnx")
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&model_file).map_err(|e| ServeError::io(&model_file, e))?;
    let hash = blake3::hash(&bytes).to_hex();
    let name = path
        .canonicalize()
        .ok()
        .as_deref()
        .and_then(|p| p.file_stem())
        .and_then(|n| n.to_str())
        .unwrap_or("model")
        .to_string();
    Ok(Resolved {
        name,
        version: hash[..12].to_string(),
        path: path.to_path_buf(),
    })
}
