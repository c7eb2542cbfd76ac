//! Real clients: `tritonclient.http` and MLflow-format requests compared
//! with onnxruntime, run by the interpreter in `KEEL_PYTHON`.

use std::path::PathBuf;
use std::process::Command;

use keel_serve::predlog::LogConfig;
use keel_serve::server::ServeConfig;

use crate::util::*;

fn python() -> Option<PathBuf> {
    match std::env::var_os("KEEL_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("CI").is_some() => {
            panic!("KEEL_PYTHON is not set (required when CI is set)")
        }
        None => {
            eprintln!("note: KEEL_PYTHON is not set; skipping the Python client test");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_and_mlflow_requests_match_onnxruntime() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let pkg = make_package(&tmp.path().join("fraud"), 1.0);
    let mut c = ServeConfig::new(pkg.to_string_lossy());
    c.log = Some(LogConfig::new(tmp.path().join("log")));
    let s = state(c);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    tokio::spawn(keel_serve::server::serve(s, addr));
    for _ in 0..50 {
        if std::net::TcpStream::connect(addr).is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/clients.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(py)
            .arg(script)
            .arg(addr.to_string())
            .arg(pkg.join("model.onnx"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("OK"), "{stdout}");
}
