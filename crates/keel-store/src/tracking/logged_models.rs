//! MLflow 3 logged models: what `mlflow.<flavor>.log_model` creates.

use sqlx::any::AnyRow;

use super::error::{TrackingError, TrackingResult};
use super::search::{self, Kind, Target};
use super::util::{col, Bind};
use super::{experiments, runs, validate, KeyValue, Lifecycle, Metric, Page};
use crate::db::now_ms;
use crate::Store;

/// A logged model's upload state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelStatus {
    /// Created; artifacts being uploaded.
    Pending,
    /// Finalized.
    Ready,
    /// The upload failed.
    UploadFailed,
}

impl ModelStatus {
    /// MLflow's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelStatus::Pending => "LOGGED_MODEL_PENDING",
            ModelStatus::Ready => "LOGGED_MODEL_READY",
            ModelStatus::UploadFailed => "LOGGED_MODEL_UPLOAD_FAILED",
        }
    }

    /// Parses MLflow's names or enum numbers.
    pub fn parse(s: &str) -> TrackingResult<ModelStatus> {
        Ok(match s {
            "LOGGED_MODEL_PENDING" | "1" => ModelStatus::Pending,
            "LOGGED_MODEL_READY" | "2" => ModelStatus::Ready,
            "LOGGED_MODEL_UPLOAD_FAILED" | "3" => ModelStatus::UploadFailed,
            other => {
                return Err(TrackingError::invalid(format!(
                    "Invalid logged model status '{other}'"
                )))
            }
        })
    }
}

/// A logged model.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedModel {
    /// `m-<32 hex>`.
    pub model_id: String,
    /// Owning experiment.
    pub experiment_id: i64,
    /// Name (`model` by default in the client).
    pub name: String,
    /// Free-form type.
    pub model_type: Option<String>,
    /// The run that logged it.
    pub source_run_id: Option<String>,
    /// Upload state.
    pub status: ModelStatus,
    /// Active or deleted.
    pub lifecycle: Lifecycle,
    /// ms since the epoch.
    pub creation_timestamp: i64,
    /// ms since the epoch.
    pub last_updated_timestamp: i64,
    /// Tags.
    pub tags: Vec<KeyValue>,
    /// Params.
    pub params: Vec<KeyValue>,
    /// Metrics logged with this `model_id`.
    pub metrics: Vec<(String, Metric)>,
}

impl LoggedModel {
    /// `mlflow-artifacts:/<exp>/models/<id>/artifacts`.
    pub fn artifact_uri(&self) -> String {
        format!(
            "mlflow-artifacts:/{}/models/{}/artifacts",
            self.experiment_id, self.model_id
        )
    }
}

const COLUMNS: &str = "m.model_id, m.experiment_id, m.name, m.model_type, m.source_run_id, m.status, m.lifecycle_stage, \
                       m.creation_timestamp, m.last_updated_timestamp";

fn from_row(r: &AnyRow) -> TrackingResult<LoggedModel> {
    Ok(LoggedModel {
        model_id: col(r, "model_id")?,
        experiment_id: col(r, "experiment_id")?,
        name: col(r, "name")?,
        model_type: col(r, "model_type")?,
        source_run_id: col(r, "source_run_id")?,
        status: ModelStatus::parse(&col::<String>(r, "status")?)?,
        lifecycle: Lifecycle::parse(&col::<String>(r, "lifecycle_stage")?),
        creation_timestamp: col(r, "creation_timestamp")?,
        last_updated_timestamp: col(r, "last_updated_timestamp")?,
        tags: Vec::new(),
        params: Vec::new(),
        metrics: Vec::new(),
    })
}

async fn kv(store: &Store, table: &str, id: &str) -> TrackingResult<Vec<KeyValue>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT key, value FROM {table} WHERE model_id = $1 ORDER BY key"
    )))
    .bind(id)
    .fetch_all(store.db.pool())
    .await
    .map_err(TrackingError::db("reading logged model"))?;
    rows.iter()
        .map(|r| {
            Ok(KeyValue::new(
                col::<String>(r, "key")?,
                col::<String>(r, "value")?,
            ))
        })
        .collect()
}

async fn hydrate(store: &Store, mut m: LoggedModel) -> TrackingResult<LoggedModel> {
    m.tags = kv(store, "logged_model_tags", &m.model_id).await?;
    m.params = kv(store, "logged_model_params", &m.model_id).await?;
    let rows = sqlx::query(
        "SELECT run_id, key, value, is_nan, timestamp, step, dataset_name, dataset_digest FROM run_metrics
         WHERE model_id = $1 ORDER BY key, step, timestamp",
    )
    .bind(&m.model_id)
    .fetch_all(store.db.pool())
    .await
    .map_err(TrackingError::db("reading logged model metrics"))?;
    for r in &rows {
        let is_nan: i64 = col(r, "is_nan")?;
        m.metrics.push((
            col(r, "run_id")?,
            Metric {
                key: col(r, "key")?,
                value: if is_nan != 0 {
                    f64::NAN
                } else {
                    col(r, "value")?
                },
                timestamp: col(r, "timestamp")?,
                step: col(r, "step")?,
                model_id: Some(m.model_id.clone()),
                dataset_name: col(r, "dataset_name")?,
                dataset_digest: col(r, "dataset_digest")?,
            },
        ));
    }
    Ok(m)
}

/// Creates a logged model (status `LOGGED_MODEL_PENDING`).
#[allow(clippy::too_many_arguments)]
pub async fn create(
    store: &Store,
    experiment_id: i64,
    name: Option<&str>,
    model_type: Option<&str>,
    source_run_id: Option<&str>,
    params: &[KeyValue],
    tags: &[KeyValue],
) -> TrackingResult<LoggedModel> {
    experiments::get_active(store, experiment_id).await?;
    if let Some(run_id) = source_run_id.filter(|r| !r.is_empty()) {
        let run = runs::get_info(store, run_id).await?;
        if run.experiment_id != experiment_id {
            return Err(TrackingError::invalid(format!(
                "Run {run_id} belongs to experiment {}, not {experiment_id}",
                run.experiment_id
            )));
        }
    }
    let model_id = format!("m-{}", uuid::Uuid::new_v4().simple());
    let name = name.filter(|n| !n.is_empty()).unwrap_or("model");
    validate::length("name", name, validate::MAX_NAME)?;
    for p in params.iter().chain(tags) {
        validate::key("key", &p.key)?;
    }
    let now = now_ms();
    let mut tx = store
        .db
        .pool()
        .begin()
        .await
        .map_err(TrackingError::db("creating logged model"))?;
    sqlx::query(
        "INSERT INTO logged_models (model_id, experiment_id, name, model_type, source_run_id, status, lifecycle_stage,
            creation_timestamp, last_updated_timestamp) VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7)",
    )
    .bind(&model_id)
    .bind(experiment_id)
    .bind(name)
    .bind(model_type.map(str::to_string))
    .bind(source_run_id.filter(|r| !r.is_empty()).map(str::to_string))
    .bind(ModelStatus::Pending.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(TrackingError::db("creating logged model"))?;
    for (table, items) in [("logged_model_params", params), ("logged_model_tags", tags)] {
        for p in items {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} (model_id, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value"
            )))
            .bind(&model_id)
            .bind(&p.key)
            .bind(&p.value)
            .execute(&mut *tx)
            .await
            .map_err(TrackingError::db("creating logged model"))?;
        }
    }
    tx.commit()
        .await
        .map_err(TrackingError::db("creating logged model"))?;
    get(store, &model_id, false).await
}

/// Gets a logged model.
pub async fn get(
    store: &Store,
    model_id: &str,
    allow_deleted: bool,
) -> TrackingResult<LoggedModel> {
    validate::id("model_id", model_id)?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM logged_models m WHERE m.model_id = $1"
    )))
    .bind(model_id)
    .fetch_optional(store.db.pool())
    .await
    .map_err(TrackingError::db("reading logged model"))?
    .ok_or_else(|| {
        TrackingError::not_found(format!("Logged model with ID '{model_id}' not found."))
    })?;
    let m = from_row(&row)?;
    if m.lifecycle == Lifecycle::Deleted && !allow_deleted {
        return Err(TrackingError::not_found(format!(
            "Logged model with ID '{model_id}' not found."
        )));
    }
    hydrate(store, m).await
}

/// Sets the upload state (`PATCH logged-models/{id}`).
pub async fn finalize(
    store: &Store,
    model_id: &str,
    status: ModelStatus,
) -> TrackingResult<LoggedModel> {
    get(store, model_id, false).await?;
    sqlx::query(
        "UPDATE logged_models SET status = $1, last_updated_timestamp = $2 WHERE model_id = $3",
    )
    .bind(status.as_str())
    .bind(now_ms())
    .bind(model_id)
    .execute(store.db.pool())
    .await
    .map_err(TrackingError::db("finalizing logged model"))?;
    get(store, model_id, false).await
}

async fn upsert(
    store: &Store,
    table: &str,
    model_id: &str,
    items: &[KeyValue],
) -> TrackingResult<()> {
    get(store, model_id, false).await?;
    let mut tx = store
        .db
        .pool()
        .begin()
        .await
        .map_err(TrackingError::db("updating logged model"))?;
    for t in items {
        validate::key("key", &t.key)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (model_id, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value"
        )))
        .bind(model_id)
        .bind(&t.key)
        .bind(&t.value)
        .execute(&mut *tx)
        .await
        .map_err(TrackingError::db("updating logged model"))?;
    }
    sqlx::query("UPDATE logged_models SET last_updated_timestamp = $1 WHERE model_id = $2")
        .bind(now_ms())
        .bind(model_id)
        .execute(&mut *tx)
        .await
        .map_err(TrackingError::db("updating logged model"))?;
    tx.commit()
        .await
        .map_err(TrackingError::db("updating logged model"))
}

/// Sets tags.
pub async fn set_tags(store: &Store, model_id: &str, tags: &[KeyValue]) -> TrackingResult<()> {
    upsert(store, "logged_model_tags", model_id, tags).await
}

/// Logs params.
pub async fn log_params(store: &Store, model_id: &str, params: &[KeyValue]) -> TrackingResult<()> {
    upsert(store, "logged_model_params", model_id, params).await
}

/// Deletes a tag.
pub async fn delete_tag(store: &Store, model_id: &str, key: &str) -> TrackingResult<()> {
    get(store, model_id, false).await?;
    let n = sqlx::query("DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2")
        .bind(model_id)
        .bind(key)
        .execute(store.db.pool())
        .await
        .map_err(TrackingError::db("deleting logged model tag"))?
        .rows_affected();
    if n == 0 {
        return Err(TrackingError::not_found(format!(
            "No tag with key '{key}' on logged model '{model_id}'"
        )));
    }
    Ok(())
}

/// Soft-deletes a logged model.
pub async fn delete(store: &Store, model_id: &str) -> TrackingResult<()> {
    get(store, model_id, false).await?;
    sqlx::query("UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp = $1 WHERE model_id = $2")
        .bind(now_ms())
        .bind(model_id)
        .execute(store.db.pool())
        .await
        .map_err(TrackingError::db("deleting logged model"))?;
    Ok(())
}

const TARGET: Target = Target {
    what: "logged models",
    attributes: &[
        ("name", "m.name", Kind::Text),
        ("model_id", "m.model_id", Kind::Text),
        ("model_type", "m.model_type", Kind::Text),
        ("status", "m.status", Kind::Text),
        ("source_run_id", "m.source_run_id", Kind::Text),
        ("creation_timestamp", "m.creation_timestamp", Kind::Number),
        ("creation_time", "m.creation_timestamp", Kind::Number),
        (
            "last_updated_timestamp",
            "m.last_updated_timestamp",
            Kind::Number,
        ),
    ],
    tags: Some(("logged_model_tags", "model_id", "m.model_id")),
    params: Some(("logged_model_params", "model_id", "m.model_id")),
    metrics: None,
    datasets: None,
    ne_matches_missing: false,
};

/// Searches logged models in `experiment_ids`.
pub async fn search(
    store: &Store,
    experiment_ids: &[i64],
    filter: &str,
    order_by: &[String],
    max_results: i64,
    page_token: Option<&str>,
) -> TrackingResult<Page<LoggedModel>> {
    if !(1..=50_000).contains(&max_results) {
        return Err(TrackingError::invalid(format!(
            "Invalid value {max_results} for parameter 'max_results': it must be between 1 and 50000"
        )));
    }
    let q = search::compile_page(
        store.db.backend(),
        &TARGET,
        &format!("SELECT {COLUMNS} FROM logged_models m"),
        |sql| {
            let exps: Vec<String> = experiment_ids
                .iter()
                .map(|e| sql.bind(Bind::I64(*e)))
                .collect();
            format!(
                "m.experiment_id IN ({}) AND m.lifecycle_stage = 'active'",
                exps.join(", ")
            )
        },
        filter,
        order_by,
        "m.creation_timestamp DESC, m.model_id ASC",
        max_results,
        page_token,
    )?;
    if experiment_ids.is_empty() {
        return Ok(Page {
            items: Vec::new(),
            next_page_token: None,
        });
    }
    let page = q.fetch(store, "searching logged models", from_row).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for m in page.items {
        items.push(hydrate(store, m).await?);
    }
    Ok(Page {
        items,
        next_page_token: page.next_page_token,
    })
}
