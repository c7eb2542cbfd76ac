use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use keel_store::{Overrides, Project, Store};
use serde_json::Value;
use tower::ServiceExt;

/// SQLite always; PostgreSQL too when `KEEL_TEST_POSTGRES` is set (required in CI).
pub fn backends() -> Vec<Option<String>> {
    match std::env::var("KEEL_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => vec![None, Some(url)],
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but KEEL_TEST_POSTGRES is not: the PostgreSQL half of the server suite would be skipped"
            );
            vec![None]
        }
    }
}

/// A fresh project in `dir` on SQLite or a fresh PostgreSQL database.
pub async fn store(dir: &Path, pg: Option<&str>) -> Store {
    let db = match pg {
        None => keel_store::db::Db::sqlite_url(&dir.join(".keel-test.db")),
        Some(admin) => {
            use sqlx::Executor;
            let name = format!("keel_s_{}", uuid_like());
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(admin)
                .await
                .expect("connect to KEEL_TEST_POSTGRES");
            pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .expect("create db");
            pool.close().await;
            let mut url = url::Url::parse(admin).unwrap();
            url.set_path(&format!("/{name}"));
            url.to_string()
        }
    };
    let overrides = Overrides {
        db: Some(db),
        objects: None,
    };
    let (project, _) = Project::init(dir, &overrides).unwrap();
    Store::from_project(project, &Overrides::default())
        .await
        .unwrap()
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{n:x}{}", std::process::id())
}

pub fn app(store: &Store) -> Router {
    keel_server::app(
        keel_server::AppState::new(store.clone(), keel_server::Config::loopback()).unwrap(),
    )
}

/// One request; the body is JSON (or `{}` / raw text when not JSON).
pub async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, bytes) = raw(
        app,
        method,
        uri,
        body.map(|b| b.to_string().into_bytes()),
        "application/json",
    )
    .await;
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

pub async fn raw(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<Vec<u8>>,
    ct: &str,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    if body.is_some() {
        req = req.header("content-type", ct);
    }
    let req = req
        .body(body.map(Body::from).unwrap_or_else(Body::empty))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

/// Creates an experiment and a run; returns (experiment id, run id).
pub async fn exp_and_run(app: &Router, name: &str) -> (String, String) {
    let (s, v) = call(
        app,
        "POST",
        "/api/2.0/mlflow/experiments/create",
        Some(serde_json::json!({"name": name})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let exp = v["experiment_id"].as_str().unwrap().to_string();
    let (s, v) = call(
        app,
        "POST",
        "/api/2.0/mlflow/runs/create",
        Some(serde_json::json!({"experiment_id": exp, "user_id": "t", "start_time": 1})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (
        exp,
        v["run"]["info"]["run_id"].as_str().unwrap().to_string(),
    )
}
