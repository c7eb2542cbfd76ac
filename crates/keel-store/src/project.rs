//! A keel project: a directory with `.keel/` in it, and its configuration.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::objects::LocalObjects;

/// The name of the project directory.
pub const KEEL_DIR: &str = ".keel";
const CONFIG: &str = "config.yaml";

/// `.keel/config.yaml`: what `keel init` was told, and the default remote.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Metadata DB URL; the project's SQLite file when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    /// Object store directory; `.keel/objects` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<String>,
    /// Default remote for `keel data push/pull`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// A project on disk.
#[derive(Debug, Clone)]
pub struct Project {
    root: PathBuf,
    config: Config,
}

/// Where a command asked for the DB and objects to be, overriding the
/// project configuration (`--db`, `KEEL_DB`, `--objects`, `KEEL_OBJECTS`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Metadata DB URL.
    pub db: Option<String>,
    /// Object store directory.
    pub objects: Option<String>,
}

impl Project {
    /// Creates `.keel/` in `root` (or reuses it). Returns the project and
    /// whether it was newly created.
    pub fn init(root: &Path, overrides: &Overrides) -> Result<(Project, bool)> {
        let root = root
            .canonicalize()
            .map_err(StoreError::io("opening", root))?;
        let dir = root.join(KEEL_DIR);
        let created = !dir.join(CONFIG).is_file();
        fs::create_dir_all(&dir).map_err(StoreError::io("creating", &dir))?;
        let config = if created {
            let config = Config {
                db: overrides.db.clone(),
                objects: overrides.objects.clone(),
                remote: None,
            };
            write_config(&dir.join(CONFIG), &config)?;
            // Everything under .keel/ is machine state, the config included:
            // it may hold a DB URL with credentials and machine paths, and a
            // config arriving with an untrusted clone must not redirect
            // keel's reads and writes.
            write_atomic(&dir.join(".gitignore"), b"*\n")?;
            config
        } else {
            read_config(&dir.join(CONFIG))?
        };
        let project = Project { root, config };
        project.objects(&Overrides::default())?;
        Ok((project, created))
    }

    /// Finds the project containing `start` (itself or a parent).
    pub fn discover(start: &Path) -> Result<Project> {
        let start = start
            .canonicalize()
            .map_err(StoreError::io("opening", start))?;
        let mut dir = Some(start.as_path());
        while let Some(d) = dir {
            let cfg = d.join(KEEL_DIR).join(CONFIG);
            if cfg.is_file() {
                let config = read_config(&cfg)?;
                return Ok(Project {
                    root: d.to_path_buf(),
                    config,
                });
            }
            dir = d.parent();
        }
        Err(StoreError::NotAProject { start })
    }

    /// The project root (the directory holding `.keel/`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `.keel/` itself.
    pub fn keel_dir(&self) -> PathBuf {
        self.root.join(KEEL_DIR)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The metadata DB URL: override, then config, then `.keel/keel.db`.
    pub fn db_url(&self, overrides: &Overrides) -> String {
        overrides
            .db
            .clone()
            .or_else(|| self.config.db.clone())
            .unwrap_or_else(|| Db::sqlite_url(&self.keel_dir().join("keel.db")))
    }

    /// Opens the local object store.
    pub fn objects(&self, overrides: &Overrides) -> Result<LocalObjects> {
        let dir = match overrides.objects.as_ref().or(self.config.objects.as_ref()) {
            Some(url) if url.contains("://") && !url.starts_with("file://") => {
                return Err(StoreError::UnsupportedObjectsUrl {
                    url: url.clone(),
                    reason:
                        "the local object store must be a directory; use s3:// URLs as a remote \
                             (`keel data push --remote s3://…`)"
                            .into(),
                })
            }
            Some(url) => {
                let p = PathBuf::from(url.trim_start_matches("file://"));
                if p.is_absolute() {
                    p
                } else {
                    self.root.join(p)
                }
            }
            None => self.keel_dir().join("objects"),
        };
        // The temporary directory lives inside the store so that renames
        // into place never cross a file-system boundary.
        LocalObjects::open(&dir, &dir.join("tmp"))
    }

    /// Sets the default remote and saves the configuration.
    pub fn set_remote(&mut self, url: Option<String>) -> Result<()> {
        self.config.remote = url;
        write_config(&self.keel_dir().join(CONFIG), &self.config)
    }

    /// A machine-local state directory (`.keel/state/<name>`), created.
    pub fn state_dir(&self, name: &str) -> Result<PathBuf> {
        let d = self.keel_dir().join("state").join(name);
        fs::create_dir_all(&d).map_err(StoreError::io("creating", &d))?;
        Ok(d)
    }
}

fn read_config(path: &Path) -> Result<Config> {
    let text = fs::read_to_string(path).map_err(StoreError::io("reading", path))?;
    if text.trim().is_empty() {
        return Ok(Config::default());
    }
    serde_yaml_ng::from_str(&text).map_err(|e| StoreError::Parse {
        path: path.to_path_buf(),
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })
}

fn write_config(path: &Path, config: &Config) -> Result<()> {
    let mut text = String::from("# keel project configuration (see README: \"Storage\")\n");
    let body = serde_yaml_ng::to_string(config).unwrap_or_default();
    if body.trim() != "{}" {
        text.push_str(&body);
    }
    write_atomic(path, text.as_bytes())
}

/// A new temporary name next to `path` (`.NAME.keel-tmp-UUID`), for a
/// file that is then renamed over it. Workspace scans skip such names.
pub(crate) fn tmp_beside(path: &Path) -> PathBuf {
    let parent = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent.join(format!(
        ".{name}.keel-tmp-{}",
        uuid::Uuid::new_v4().simple()
    ))
}

/// Writes a file atomically: a temporary file in the same directory,
/// flushed, then renamed over the target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = tmp_beside(path);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(StoreError::io("writing", path))
}
