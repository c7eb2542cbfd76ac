//! Experiments: create, get, search, rename, delete/restore, tags.

use sqlx::any::AnyRow;

use super::error::{TrackingError, TrackingResult};
use super::search::{self, Kind, Target};
use super::util::{col, is_unique_violation, placeholders};
use super::{validate, KeyValue, Lifecycle, Page, ViewType};
use crate::db::now_ms;
use crate::Store;

/// An experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// Integer id, as a string on the wire (`"0"` is `Default`).
    pub experiment_id: i64,
    /// Unique name.
    pub name: String,
    /// `mlflow-artifacts:/<id>`.
    pub artifact_location: String,
    /// Active or deleted.
    pub lifecycle: Lifecycle,
    /// ms since the epoch.
    pub creation_time: i64,
    /// ms since the epoch.
    pub last_update_time: i64,
    /// Tags.
    pub tags: Vec<KeyValue>,
}

/// The artifact root keel assigns to an experiment.
pub fn artifact_location(id: i64) -> String {
    format!("mlflow-artifacts:/{id}")
}

/// Parses an experiment id (`experiments/get?experiment_id=abc` is a 400).
pub fn parse_id(s: &str) -> TrackingResult<i64> {
    s.trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .ok_or_else(|| {
            TrackingError::invalid(format!(
                "Invalid value '{s}' for parameter 'experiment_id': must be an integer"
            ))
        })
}

fn from_row(r: &AnyRow) -> TrackingResult<Experiment> {
    let id: i64 = col(r, "experiment_id")?;
    Ok(Experiment {
        experiment_id: id,
        name: col(r, "name")?,
        artifact_location: artifact_location(id),
        lifecycle: Lifecycle::parse(&col::<String>(r, "lifecycle_stage")?),
        creation_time: col(r, "creation_time")?,
        last_update_time: col(r, "last_update_time")?,
        tags: Vec::new(),
    })
}

async fn tags(store: &Store, id: i64) -> TrackingResult<Vec<KeyValue>> {
    let rows =
        sqlx::query("SELECT key, value FROM experiment_tags WHERE experiment_id = $1 ORDER BY key")
            .bind(id)
            .fetch_all(store.db.pool())
            .await
            .map_err(TrackingError::db("reading experiment tags"))?;
    rows.iter()
        .map(|r| {
            Ok(KeyValue::new(
                col::<String>(r, "key")?,
                col::<String>(r, "value")?,
            ))
        })
        .collect()
}

const COLUMNS: &str = "experiment_id, name, lifecycle_stage, creation_time, last_update_time";

/// Creates an experiment. A user-chosen `artifact_location` is refused:
/// keel always stores artifacts under its own `mlflow-artifacts:/<id>` root.
pub async fn create(
    store: &Store,
    name: &str,
    artifact_location: Option<&str>,
    tags: &[KeyValue],
) -> TrackingResult<i64> {
    validate::name("Experiment", name)?;
    if let Some(loc) = artifact_location.filter(|l| !l.is_empty()) {
        return Err(TrackingError::invalid(format!(
            "Invalid artifact_location '{}': keel stores artifacts in its own object store and does not accept \
             user-chosen artifact locations",
            loc.escape_debug()
        )));
    }
    for t in tags {
        validate::key("tag", &t.key)?;
        validate::length(
            "experiment tag value",
            &t.value,
            validate::MAX_EXPERIMENT_TAG_VALUE,
        )?;
    }
    for attempt in 0..5 {
        let mut tx = store
            .db
            .pool()
            .begin()
            .await
            .map_err(TrackingError::db("creating experiment"))?;
        let now = now_ms();
        // The insert comes first so that SQLite takes the write lock before any read.
        let res = sqlx::query(
            "INSERT INTO experiments (experiment_id, name, lifecycle_stage, creation_time, last_update_time)
             SELECT COALESCE(MAX(experiment_id), 0) + 1, $1, 'active', $2, $2 FROM experiments",
        )
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                // PostgreSQL aborts a transaction at its first error: roll
                // it back and look outside it.
                let _ = tx.rollback().await;
                let exists = sqlx::query("SELECT 1 FROM experiments WHERE name = $1")
                    .bind(name)
                    .fetch_optional(store.db.pool())
                    .await
                    .map_err(TrackingError::db("creating experiment"))?
                    .is_some();
                if exists {
                    return Err(TrackingError::AlreadyExists(format!(
                        "Experiment '{name}' already exists."
                    )));
                }
                if attempt < 4 {
                    continue;
                }
                return Err(TrackingError::db("creating experiment")(e));
            }
            Err(e) => return Err(TrackingError::db("creating experiment")(e)),
        }
        let row = sqlx::query("SELECT experiment_id FROM experiments WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(TrackingError::db("creating experiment"))?;
        let id: i64 = col(&row, "experiment_id")?;
        for t in tags {
            sqlx::query(
                "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(&t.key)
            .bind(&t.value)
            .execute(&mut *tx)
            .await
            .map_err(TrackingError::db("tagging experiment"))?;
        }
        tx.commit()
            .await
            .map_err(TrackingError::db("creating experiment"))?;
        return Ok(id);
    }
    unreachable!("the loop returns")
}

/// Gets an experiment by id.
pub async fn get(store: &Store, id: i64) -> TrackingResult<Experiment> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM experiments WHERE experiment_id = $1"
    )))
    .bind(id)
    .fetch_optional(store.db.pool())
    .await
    .map_err(TrackingError::db("reading experiment"))?
    .ok_or_else(|| TrackingError::not_found(format!("No Experiment with id={id} exists")))?;
    let mut e = from_row(&row)?;
    e.tags = tags(store, id).await?;
    Ok(e)
}

/// Gets an experiment by name.
pub async fn get_by_name(store: &Store, name: &str) -> TrackingResult<Experiment> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM experiments WHERE name = $1"
    )))
    .bind(name)
    .fetch_optional(store.db.pool())
    .await
    .map_err(TrackingError::db("reading experiment"))?
    .ok_or_else(|| {
        TrackingError::not_found(format!("Could not find experiment with name '{name}'"))
    })?;
    let mut e = from_row(&row)?;
    e.tags = tags(store, e.experiment_id).await?;
    Ok(e)
}

/// An active experiment (writes to runs of deleted experiments are refused).
pub async fn get_active(store: &Store, id: i64) -> TrackingResult<Experiment> {
    let e = get(store, id).await?;
    require_active(id, Some(e.lifecycle))?;
    Ok(e)
}

/// MLflow's errors for writing into an experiment that is missing
/// (`None`) or deleted.
pub(crate) fn require_active(id: i64, lifecycle: Option<Lifecycle>) -> TrackingResult<()> {
    match lifecycle {
        None => Err(TrackingError::not_found(format!(
            "No Experiment with id={id} exists"
        ))),
        Some(Lifecycle::Deleted) => Err(TrackingError::invalid(format!(
            "The experiment {id} must be in the 'active' state. Current state is deleted."
        ))),
        Some(Lifecycle::Active) => Ok(()),
    }
}

/// An experiment's lifecycle, read on the SQLite lane's connection.
pub(crate) fn lifecycle_on(c: &rusqlite::Connection, id: i64) -> TrackingResult<Option<Lifecycle>> {
    let mut sql = super::util::Sql::new("");
    let e = sql.bind(super::util::Bind::I64(id));
    sql.text = format!("SELECT lifecycle_stage FROM experiments WHERE experiment_id = {e}");
    let rows = sql.fetch_on(c, "reading experiment", |row| {
        super::util::Cols::cell::<String>(row, "lifecycle_stage")
    })?;
    Ok(rows.first().map(|s| Lifecycle::parse(s)))
}

const TARGET: Target = Target {
    what: "experiments",
    attributes: &[
        ("name", "e.name", Kind::Text),
        ("experiment_id", "e.experiment_id", Kind::Number),
        ("creation_time", "e.creation_time", Kind::Number),
        ("last_update_time", "e.last_update_time", Kind::Number),
    ],
    tags: Some(("experiment_tags", "experiment_id", "e.experiment_id")),
    params: None,
    metrics: None,
    datasets: None,
    ne_matches_missing: false,
};

/// Searches experiments (`name`, `creation_time`, `last_update_time`, `tags.<k>`).
pub async fn search(
    store: &Store,
    view: ViewType,
    filter: &str,
    order_by: &[String],
    max_results: i64,
    page_token: Option<&str>,
) -> TrackingResult<Page<Experiment>> {
    if !(1..=50_000).contains(&max_results) {
        return Err(TrackingError::invalid(format!(
            "Invalid value {max_results} for parameter 'max_results' supplied. It must be at most 50000"
        )));
    }
    let q = search::compile_page(
        store.db.backend(),
        &TARGET,
        // Qualified: an order-by on a tag joins experiment_tags, which
        // also has an experiment_id column.
        "SELECT e.experiment_id, e.name, e.lifecycle_stage, e.creation_time, e.last_update_time \
         FROM experiments e",
        |_| view.sql("e.lifecycle_stage"),
        filter,
        order_by,
        "e.creation_time DESC, e.experiment_id ASC",
        max_results,
        page_token,
    )?;
    let mut page = q.fetch(store, "searching experiments", from_row).await?;
    // Tags for the whole page in one query per 500 experiments.
    let index: std::collections::HashMap<i64, usize> = page
        .items
        .iter()
        .enumerate()
        .map(|(i, e)| (e.experiment_id, i))
        .collect();
    let ids: Vec<i64> = page.items.iter().map(|e| e.experiment_id).collect();
    for chunk in ids.chunks(500) {
        let text = format!(
            "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN ({}) ORDER BY key",
            placeholders(0, chunk.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(text));
        for id in chunk {
            q = q.bind(*id);
        }
        for r in q
            .fetch_all(store.db.pool())
            .await
            .map_err(TrackingError::db("reading experiment tags"))?
        {
            let i = index[&col::<i64>(&r, "experiment_id")?];
            page.items[i].tags.push(KeyValue::new(
                col::<String>(&r, "key")?,
                col::<String>(&r, "value")?,
            ));
        }
    }
    Ok(page)
}

/// Renames an experiment.
pub async fn rename(store: &Store, id: i64, new_name: &str) -> TrackingResult<()> {
    validate::name("Experiment", new_name)?;
    get_active(store, id).await?;
    let res = sqlx::query(
        "UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3",
    )
    .bind(new_name)
    .bind(now_ms())
    .bind(id)
    .execute(store.db.pool())
    .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(TrackingError::AlreadyExists(format!(
            "Experiment '{new_name}' already exists."
        ))),
        Err(e) => Err(TrackingError::db("renaming experiment")(e)),
    }
}

/// Soft-deletes (or restores) an experiment and its runs.
pub async fn set_lifecycle(store: &Store, id: i64, to: Lifecycle) -> TrackingResult<()> {
    if id == 0 && to == Lifecycle::Deleted {
        return Err(TrackingError::invalid(
            "Cannot delete the default experiment '0'.",
        ));
    }
    get(store, id).await?;
    let now = now_ms();
    let mut tx = store
        .db
        .pool()
        .begin()
        .await
        .map_err(TrackingError::db("deleting experiment"))?;
    sqlx::query("UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE experiment_id = $3")
        .bind(to.as_str())
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(TrackingError::db("deleting experiment"))?;
    let deleted_time = (to == Lifecycle::Deleted).then_some(now);
    sqlx::query("UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE experiment_id = $3")
        .bind(to.as_str())
        .bind(deleted_time)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(TrackingError::db("deleting experiment runs"))?;
    tx.commit()
        .await
        .map_err(TrackingError::db("deleting experiment"))
}

/// Sets (upserts) an experiment tag.
pub async fn set_tag(store: &Store, id: i64, tag: &KeyValue) -> TrackingResult<()> {
    validate::key("tag", &tag.key)?;
    validate::length(
        "experiment tag value",
        &tag.value,
        validate::MAX_EXPERIMENT_TAG_VALUE,
    )?;
    get_active(store, id).await?;
    sqlx::query(
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
    )
    .bind(id)
    .bind(&tag.key)
    .bind(&tag.value)
    .execute(store.db.pool())
    .await
    .map_err(TrackingError::db("tagging experiment"))?;
    Ok(())
}

/// Deletes an experiment tag.
pub async fn delete_tag(store: &Store, id: i64, key: &str) -> TrackingResult<()> {
    get_active(store, id).await?;
    let n = sqlx::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
        .bind(id)
        .bind(key)
        .execute(store.db.pool())
        .await
        .map_err(TrackingError::db("deleting experiment tag"))?
        .rows_affected();
    if n == 0 {
        return Err(TrackingError::not_found(format!(
            "No tag with name: {key} in experiment with id {id}"
        )));
    }
    Ok(())
}
