use keel_store::db::Db;
use keel_store::migrations::{Migration, MIGRATIONS};

use crate::backends::{backends, fresh_db};

#[tokio::test]
async fn migrations_apply_once_and_are_recorded() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_db(backend, dir.path()).await;
        let db = Db::open(&url).await.unwrap();
        let applied = db.applied_migrations().await.unwrap();
        assert_eq!(applied.len(), MIGRATIONS.len(), "{backend:?}");
        // Re-opening applies nothing new and fails on nothing.
        let db = Db::open(&url).await.unwrap();
        assert_eq!(db.applied_migrations().await.unwrap(), applied);
        // A later migration of another component is applied on top.
        let extra = Migration {
            component: "test",
            version: 1,
            name: "extra",
            sql: "CREATE TABLE test_extra (id TEXT PRIMARY KEY, n BIGINT NOT NULL);\nCREATE INDEX test_extra_n ON test_extra (n);",
        };
        db.migrate(&[extra]).await.unwrap();
        db.migrate(&[extra]).await.unwrap();
        let after = db.applied_migrations().await.unwrap();
        assert_eq!(after.len(), applied.len() + 1);
        assert!(after.contains(&("test".to_string(), 1)));
    }
}

#[tokio::test]
async fn a_failing_migration_leaves_nothing_behind() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_db(backend, dir.path()).await;
        let db = Db::open(&url).await.unwrap();
        let broken = Migration {
            component: "broken",
            version: 1,
            name: "half",
            sql: "CREATE TABLE half_done (id TEXT);\nTHIS IS NOT SQL;",
        };
        assert!(db.migrate(&[broken]).await.is_err());
        assert!(!db
            .applied_migrations()
            .await
            .unwrap()
            .contains(&("broken".to_string(), 1)));
        // The transaction rolled back the first statement too (SQLite and
        // PostgreSQL both have transactional DDL), so a fixed migration
        // applies cleanly.
        let fixed = Migration {
            sql: "CREATE TABLE half_done (id TEXT)",
            ..broken
        };
        db.migrate(&[fixed]).await.unwrap();
    }
}

#[tokio::test]
async fn unsupported_urls_are_refused_clearly() {
    let err = Db::open("mysql://localhost/x")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unsupported DB URL"), "{err}");
}
