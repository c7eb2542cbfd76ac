use keel_store::db::{Backend, Db};
use keel_store::migrations::{Migration, MIGRATIONS};
use sqlx::Row;

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
            only: None,
            sql: "CREATE TABLE test_extra (id TEXT PRIMARY KEY, n BIGINT NOT NULL);\nCREATE INDEX test_extra_n ON test_extra (n);",
        };
        db.migrate(&[extra]).await.unwrap();
        db.migrate(&[extra]).await.unwrap();
        let after = db.applied_migrations().await.unwrap();
        assert_eq!(after.len(), applied.len() + 1);
        assert!(after.contains(&("test".to_string(), 1)));
    }
}

/// A DB a newer keel migrated further is refused with a clear error, not
/// misread (a keel before tracking v4 would not see chunked metric points).
#[tokio::test]
async fn a_db_from_a_newer_keel_is_refused() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_db(backend, dir.path()).await;
        let db = Db::open(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO keel_migrations (component, version, name, applied_at) VALUES ('tracking', 99, 'future', 0)",
        )
        .execute(db.pool())
        .await
        .unwrap();
        let Err(e) = Db::open(&url).await else {
            panic!("{backend:?}: a DB from a newer keel was opened");
        };
        let e = e.to_string();
        assert!(
            e.contains("newer keel") && e.contains("tracking schema v99"),
            "{backend:?}: {e}"
        );
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
            only: None,
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

#[tokio::test]
async fn a_migration_for_one_engine_is_recorded_and_skipped_on_the_other() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_db(backend, dir.path()).await;
        let db = Db::open(&url).await.unwrap();
        let other = match db.backend() {
            Backend::Sqlite => Backend::Postgres,
            Backend::Postgres => Backend::Sqlite,
        };
        for (version, only) in [(1, Some(other)), (2, Some(db.backend()))] {
            let m = Migration {
                component: "engine_only",
                version,
                name: "engine specific",
                only,
                sql: "CREATE TABLE engine_only (id TEXT)",
            };
            db.migrate(&[m]).await.unwrap();
            assert!(db
                .applied_migrations()
                .await
                .unwrap()
                .contains(&("engine_only".to_string(), version)));
        }
        // Version 1 (the other engine's) created nothing, so version 2 (this
        // engine's) could create the table.
        sqlx::query("SELECT id FROM engine_only")
            .fetch_all(db.pool())
            .await
            .unwrap();
    }
}

/// An existing project's metric points survive the change of
/// `run_metrics`' layout (tracking v3, SQLite only) with every column.
#[tokio::test]
async fn metric_points_survive_the_clustered_table_migration() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_db(backend, dir.path()).await;
        let db = Db::connect(&url).await.unwrap();
        let before: Vec<Migration> = MIGRATIONS
            .iter()
            .copied()
            .filter(|m| !(m.component == "tracking" && m.version >= 3))
            .collect();
        db.migrate(&before).await.unwrap();
        let insert = "INSERT INTO run_metrics (run_id, key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        for (step, model) in [(0i64, None), (1, Some("m-1"))] {
            sqlx::query(insert)
                .bind("r1")
                .bind("loss")
                .bind(0.5 / (step + 1) as f64)
                .bind(0i64)
                .bind(1000 + step)
                .bind(step)
                .bind(model)
                .bind(Some("train"))
                .bind(Some("d1"))
                .execute(db.pool())
                .await
                .unwrap();
        }
        db.migrate(MIGRATIONS).await.unwrap();
        let rows = sqlx::query(
            "SELECT value, timestamp, step, model_id, dataset_name FROM run_metrics WHERE run_id = 'r1' AND key = 'loss' ORDER BY step",
        )
        .fetch_all(db.pool())
        .await
        .unwrap();
        type Point = (f64, i64, i64, Option<String>, Option<String>);
        let got: Vec<Point> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect();
        assert_eq!(
            got,
            vec![
                (0.5, 1000, 0, None, Some("train".into())),
                (0.25, 1001, 1, Some("m-1".into()), Some("train".into())),
            ],
            "{backend:?}"
        );
        // The index for a logged model's metrics is back.
        let by_model = sqlx::query("SELECT step FROM run_metrics WHERE model_id = 'm-1'")
            .fetch_all(db.pool())
            .await
            .unwrap();
        assert_eq!(by_model.len(), 1);
    }
}
