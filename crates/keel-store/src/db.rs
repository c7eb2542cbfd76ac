//! The metadata DB: one schema on SQLite (embedded default) or PostgreSQL.

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use crate::error::{Result, StoreError};
use crate::migrations::{Migration, MIGRATIONS};

/// Which SQL engine is behind a [`Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite in WAL mode.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A connection pool to the metadata DB.
///
/// Queries use `$1`, `$2` placeholders, which both engines accept.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    url_for_display: String,
    /// SQLite files only: the connection tracking's hot path writes on.
    lane: Option<std::sync::Arc<crate::lane::Lane>>,
}

impl Db {
    /// Connects to `url` (`sqlite://PATH`, `postgres://…`) and applies any
    /// pending migrations.
    pub async fn open(url: &str) -> Result<Db> {
        let db = Db::connect(url).await?;
        db.migrate(MIGRATIONS).await?;
        Ok(db)
    }

    /// The SQLite URL for a DB file, created if missing.
    pub fn sqlite_url(path: &Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }

    /// Connects without migrating.
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let display = redact(url);
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedDbUrl { url: display });
        };
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        options = match backend {
            // SQLite allows one writer; a small pool avoids lock churn. WAL
            // lets readers proceed during a write; synchronous=FULL makes a
            // committed transaction survive power loss, not only a kill.
            Backend::Sqlite => options.max_connections(4).after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
                         PRAGMA foreign_keys=ON; PRAGMA busy_timeout=10000;",
                    )
                    .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => options.max_connections(16),
        };
        let pool = options
            .connect(url)
            .await
            .map_err(StoreError::db(format!("connecting to {display}")))?;
        let lane = match sqlite_file(url) {
            Some(path) if backend == Backend::Sqlite => {
                Some(std::sync::Arc::new(crate::lane::Lane::open(&path)?))
            }
            _ => None,
        };
        Ok(Db {
            pool,
            backend,
            url_for_display: display,
            lane,
        })
    }

    /// The pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The SQLite write lane, when this is a SQLite file.
    pub(crate) fn lane(&self) -> Option<&std::sync::Arc<crate::lane::Lane>> {
        self.lane.as_ref()
    }

    /// What the tracking writes of the SQLite lane survive once answered
    /// (default [`crate::Durability::Process`]); other writes are always
    /// fsynced.
    pub fn set_durability(&self, d: crate::Durability) -> Result<()> {
        match &self.lane {
            Some(lane) => lane.set_durability(d),
            None => Ok(()),
        }
    }

    /// Whether concurrent tracking writes are grouped into shared commits
    /// by the store itself (the SQLite lane); otherwise a caller with many
    /// concurrent writers should group them (`runs::log_batches`).
    pub fn groups_commits(&self) -> bool {
        self.lane.is_some()
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with any password removed.
    pub fn display_url(&self) -> &str {
        &self.url_for_display
    }

    /// Applies every migration in `migrations` not yet recorded.
    pub async fn migrate(&self, migrations: &[Migration]) -> Result<()> {
        // Every command opens the DB: when everything is applied already,
        // one read answers, instead of a transaction per migration.
        if let Ok(applied) = self.applied_migrations().await {
            refuse_newer(migrations, &applied)?;
            let up_to_date = migrations.iter().all(|m| {
                applied
                    .iter()
                    .any(|(c, v)| c == m.component && *v == m.version)
            });
            if up_to_date {
                return Ok(());
            }
        }
        self.pool
            .execute(
                "CREATE TABLE IF NOT EXISTS keel_migrations (
                    component TEXT NOT NULL,
                    version BIGINT NOT NULL,
                    name TEXT NOT NULL,
                    applied_at BIGINT NOT NULL,
                    PRIMARY KEY (component, version)
                )",
            )
            .await
            .map_err(StoreError::db("creating keel_migrations"))?;
        for m in migrations {
            self.apply(m).await?;
        }
        Ok(())
    }

    async fn apply(&self, m: &Migration) -> Result<()> {
        let ctx = || format!("migration {}/{} ({})", m.component, m.version, m.name);
        let mut tx = self.pool.begin().await.map_err(StoreError::db(ctx()))?;
        if self.backend == Backend::Postgres {
            // Two processes migrating at once must not both apply a step.
            sqlx::query("SELECT pg_advisory_xact_lock(7343209)")
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db(ctx()))?;
        }
        let done: Option<AnyRow> = sqlx::query(
            "SELECT version FROM keel_migrations WHERE component = $1 AND version = $2",
        )
        .bind(m.component)
        .bind(m.version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::db(ctx()))?;
        if done.is_some() {
            return Ok(());
        }
        let statements = match m.only {
            Some(only) if only != self.backend => Vec::new(),
            _ => split_statements(m.sql),
        };
        for stmt in statements {
            sqlx::query(sqlx::AssertSqlSafe(stmt))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db(ctx()))?;
        }
        sqlx::query(
            "INSERT INTO keel_migrations (component, version, name, applied_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(m.component)
        .bind(m.version)
        .bind(m.name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db(ctx()))?;
        tx.commit().await.map_err(StoreError::db(ctx()))?;
        Ok(())
    }

    /// The applied migrations, as `(component, version)` pairs.
    pub async fn applied_migrations(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT component, version FROM keel_migrations ORDER BY component, version",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db("listing migrations"))?;
        rows.iter().map(|r| Ok((get(r, 0)?, get(r, 1)?))).collect()
    }
}

/// Refuses a DB that a newer keel migrated further than `migrations` go
/// for one of their components: this binary would misread it (e.g. a keel
/// before tracking v4 does not see metric points stored in chunks).
fn refuse_newer(migrations: &[Migration], applied: &[(String, i64)]) -> Result<()> {
    for (component, version) in applied {
        let known = migrations
            .iter()
            .filter(|m| m.component == component)
            .map(|m| m.version)
            .max();
        if let Some(known) = known.filter(|k| version > k) {
            return Err(StoreError::SchemaTooNew {
                component: component.clone(),
                version: *version,
                known,
            });
        }
    }
    Ok(())
}

/// The file of a `sqlite:` URL (`sqlite://PATH?…`, `sqlite:PATH`); `None`
/// for in-memory DBs.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Reads column `i` of a row, mapping a type mismatch to a store error.
pub fn get<'r, T>(row: &'r AnyRow, i: usize) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(i)
        .map_err(StoreError::db(format!("reading column {i}")))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

fn split_statements(sql: &str) -> Vec<String> {
    sql.split(";\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches(';').to_string())
        .collect()
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
