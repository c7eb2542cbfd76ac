//! The monitor's results: one row per evaluated window of the prediction
//! log, and one per alert that fired. Written by `keel monitor`
//! (`keel-serve`), which knows no SQL.

use crate::db::{now_ms, Db};
use crate::{Result, StoreError};

/// The `monitor` component's schema.
pub const MONITOR_V1: crate::migrations::Migration = crate::migrations::Migration {
    component: "monitor",
    version: 1,
    name: "monitor windows and alerts",
    only: None,
    sql: "
CREATE TABLE monitor_windows (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    window_end BIGINT NOT NULL,
    rows_scored BIGINT NOT NULL,
    metrics TEXT NOT NULL,
    drift TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX monitor_windows_end ON monitor_windows (model, window_end);
CREATE TABLE monitor_alerts (
    id TEXT PRIMARY KEY,
    window_id TEXT NOT NULL REFERENCES monitor_windows(id),
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    metric TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    actions TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
",
};

/// One evaluated window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRow {
    /// Unique id (chosen by the caller).
    pub id: String,
    /// The model name.
    pub model: String,
    /// Window start, ms since the epoch.
    pub window_start: i64,
    /// Window end, ms since the epoch.
    pub window_end: i64,
    /// Rows scored in the window.
    pub rows: i64,
    /// Metric values, as JSON.
    pub metrics_json: String,
    /// The drift report, as JSON.
    pub drift_json: Option<String>,
}

/// One fired alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    /// Unique id.
    pub id: String,
    /// The window it fired on.
    pub window_id: String,
    /// Rule name.
    pub rule: String,
    /// Severity.
    pub severity: String,
    /// Metric.
    pub metric: String,
    /// Observed value.
    pub value: f64,
    /// Threshold.
    pub threshold: f64,
    /// Actions taken and their outcomes, as JSON.
    pub actions_json: String,
}

/// Stores a window and the alerts that fired on it, in one transaction.
pub async fn record_window(db: &Db, window: &WindowRow, alerts: &[AlertRow]) -> Result<()> {
    let ctx = || format!("recording monitor window {}", window.id);
    let mut tx = db.pool().begin().await.map_err(StoreError::db(ctx()))?;
    let now = now_ms();
    sqlx::query(
        "INSERT INTO monitor_windows (id, model, window_start, window_end, rows_scored, metrics, drift, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&window.id)
    .bind(&window.model)
    .bind(window.window_start)
    .bind(window.window_end)
    .bind(window.rows)
    .bind(&window.metrics_json)
    .bind(window.drift_json.as_deref())
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::db(ctx()))?;
    for a in alerts {
        sqlx::query(
            "INSERT INTO monitor_alerts (id, window_id, rule, severity, metric, value, threshold, actions, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&a.id)
        .bind(&a.window_id)
        .bind(&a.rule)
        .bind(&a.severity)
        .bind(&a.metric)
        .bind(a.value)
        .bind(a.threshold)
        .bind(&a.actions_json)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db(ctx()))?;
    }
    tx.commit().await.map_err(StoreError::db(ctx()))
}

/// The most recent windows of `model`, newest first: `(id, window_end,
/// rows, metrics JSON)`.
pub async fn recent_windows(
    db: &Db,
    model: &str,
    limit: i64,
) -> Result<Vec<(String, i64, i64, String)>> {
    let rows = sqlx::query(
        "SELECT id, window_end, rows_scored, metrics FROM monitor_windows WHERE model = $1 \
         ORDER BY window_end DESC LIMIT $2",
    )
    .bind(model)
    .bind(limit)
    .fetch_all(db.pool())
    .await
    .map_err(StoreError::db("reading monitor windows"))?;
    rows.iter()
        .map(|r| {
            Ok((
                crate::db::get(r, 0)?,
                crate::db::get(r, 1)?,
                crate::db::get(r, 2)?,
                crate::db::get(r, 3)?,
            ))
        })
        .collect()
}

/// Alerts recorded for `model`'s windows, newest first: `(rule, severity,
/// metric, value)`.
pub async fn recent_alerts(
    db: &Db,
    model: &str,
    limit: i64,
) -> Result<Vec<(String, String, String, f64)>> {
    let rows = sqlx::query(
        "SELECT a.rule, a.severity, a.metric, a.value FROM monitor_alerts a \
         JOIN monitor_windows w ON w.id = a.window_id WHERE w.model = $1 \
         ORDER BY a.created_at DESC LIMIT $2",
    )
    .bind(model)
    .bind(limit)
    .fetch_all(db.pool())
    .await
    .map_err(StoreError::db("reading monitor alerts"))?;
    rows.iter()
        .map(|r| {
            Ok((
                crate::db::get(r, 0)?,
                crate::db::get(r, 1)?,
                crate::db::get(r, 2)?,
                crate::db::get(r, 3)?,
            ))
        })
        .collect()
}
