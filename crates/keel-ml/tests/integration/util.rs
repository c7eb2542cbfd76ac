//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python interpreter for reference tests, from `KEEL_PYTHON`.
///
/// Unset: a failure under CI (`CI` set), otherwise a printed note and
/// `None` so a developer without the Python stack can still run the rest.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("KEEL_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("CI").is_some() => {
            panic!("KEEL_PYTHON is unset under CI: the reference tests need a Python with .ci/requirements.txt installed")
        }
        None => {
            eprintln!(
                "note: KEEL_PYTHON is unset; this reference test did not run \
                 (set KEEL_PYTHON to a Python with .ci/requirements.txt installed)"
            );
            None
        }
    }
}

/// Path of a script in `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// Runs `python script args…`, panicking with its stderr on failure.
pub fn run_py(python: &Path, name: &str, args: &[&Path]) -> String {
    let out = Command::new(python)
        .arg(script(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{name} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read json")).expect("parse json")
}

/// A `[rows, cols]` matrix from JSON (null → NaN).
pub fn matrix(v: &serde_json::Value) -> (usize, usize, Vec<f64>) {
    let rows = v.as_array().expect("rows");
    let cols = rows.first().map_or(0, |r| r.as_array().expect("row").len());
    let mut out = Vec::with_capacity(rows.len() * cols);
    for r in rows {
        for x in r.as_array().expect("row") {
            out.push(x.as_f64().unwrap_or(f64::NAN));
        }
    }
    (rows.len(), cols, out)
}
