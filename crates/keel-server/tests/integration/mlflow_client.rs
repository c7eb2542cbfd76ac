//! The unmodified `mlflow` client against a real keel server: the issue's
//! acceptance script (`tests/python/acceptance.py`). Needs `KEEL_PYTHON`
//! (a Python with `.ci/requirements.txt` installed); required when `CI` is set.

use std::path::PathBuf;
use std::process::Command;

use crate::common::{backends, store};

fn python() -> Option<String> {
    match std::env::var("KEEL_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but KEEL_PYTHON is not: the mlflow client tests would be skipped"
            );
            eprintln!("note: KEEL_PYTHON unset; skipping the mlflow client tests");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mlflow_client_passes_the_acceptance_script() {
    let Some(py) = python() else { return };
    for pg in backends() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), pg.as_deref()).await;
        let server = keel_server::spawn(
            st,
            "127.0.0.1:0".parse().unwrap(),
            keel_server::Config::loopback(),
        )
        .await
        .unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/acceptance.py");
        let uri = format!("http://{}", server.addr);
        let py = py.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(py)
                .arg(script)
                .env("MLFLOW_TRACKING_URI", uri)
                // One 5xx must fail the test, not stall it in retries.
                .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
                .env("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
                .env("GIT_PYTHON_REFRESH", "quiet")
                .current_dir(dir.path())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        server.shutdown().await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("OK"),
            "acceptance.py failed ({}):\n{stdout}\n{stderr}",
            if pg.is_some() { "PostgreSQL" } else { "SQLite" }
        );
    }
}
