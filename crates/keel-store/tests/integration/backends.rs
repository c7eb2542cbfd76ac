use std::path::Path;

use keel_store::{Overrides, Project, Store};
use sqlx::Executor;

/// A backend to run a scenario on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backends available here. In CI (`CI` set) PostgreSQL is required:
/// a missing server fails the suite instead of silently skipping it.
pub fn backends() -> Vec<Backend> {
    match std::env::var("KEEL_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => vec![Backend::Sqlite, Backend::Postgres],
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but KEEL_TEST_POSTGRES is not: the PostgreSQL half of the store suite would be skipped"
            );
            eprintln!("note: KEEL_TEST_POSTGRES unset; running the store suite on SQLite only");
            vec![Backend::Sqlite]
        }
    }
}

/// A fresh database URL for one test.
pub async fn fresh_db(backend: Backend, dir: &Path) -> String {
    match backend {
        Backend::Sqlite => keel_store::db::Db::sqlite_url(&dir.join("test.db")),
        Backend::Postgres => {
            let admin = std::env::var("KEEL_TEST_POSTGRES").unwrap();
            let name = format!("keel_t_{}", uuid::Uuid::new_v4().simple());
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&admin)
                .await
                .expect("connect to KEEL_TEST_POSTGRES");
            pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .expect("create test database");
            pool.close().await;
            let mut url = url::Url::parse(&admin).unwrap();
            url.set_path(&format!("/{name}"));
            url.to_string()
        }
    }
}

/// A new project in `dir` on `backend`.
pub async fn project(backend: Backend, dir: &Path) -> Store {
    let db = fresh_db(backend, dir).await;
    let overrides = Overrides {
        db: Some(db),
        objects: None,
    };
    let (project, created) = Project::init(dir, &overrides).unwrap();
    assert!(created);
    Store::from_project(project, &Overrides::default())
        .await
        .unwrap()
}
