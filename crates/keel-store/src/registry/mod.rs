//! The model registry: registered models, versions, tags, aliases (with
//! a who/when history, so an alias move can be rolled back), and MLflow's
//! legacy stages.
//!
//! A version's `source` must resolve to artifacts keel holds: a logged
//! model (`models:/<model_id>`) or a path inside a run's artifacts
//! (`runs:/<run_id>/<path>` or `mlflow-artifacts:/<exp>/<run_id>/artifacts/<path>`).
//! Never a local path, never another server.

use sqlx::any::AnyRow;

use crate::db::now_ms;
use crate::tracking::artifacts::{self, Owner};
use crate::tracking::search::{self, Kind, Target};
use crate::tracking::util::{col, is_unique_violation};
use crate::tracking::{
    logged_models, runs, validate, Actor, KeyValue, Page, TrackingError, TrackingResult,
};
use crate::Store;

/// A legacy stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `None`.
    None,
    /// `Staging`.
    Staging,
    /// `Production`.
    Production,
    /// `Archived`.
    Archived,
}

impl Stage {
    /// MLflow's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::None => "None",
            Stage::Staging => "Staging",
            Stage::Production => "Production",
            Stage::Archived => "Archived",
        }
    }

    /// Parses a stage, case-insensitively.
    pub fn parse(s: &str) -> TrackingResult<Stage> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "none" => Stage::None,
            "staging" => Stage::Staging,
            "production" => Stage::Production,
            "archived" => Stage::Archived,
            _ => {
                return Err(TrackingError::Invalid(format!(
                    "Invalid Model Version stage: {s}. Value must be one of None, Staging, Production, Archived."
                )))
            }
        })
    }
}

/// A registered model.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredModel {
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Creator.
    pub user_id: String,
    /// ms since the epoch.
    pub creation_timestamp: i64,
    /// ms since the epoch.
    pub last_updated_timestamp: i64,
    /// Tags.
    pub tags: Vec<KeyValue>,
    /// (alias, version).
    pub aliases: Vec<(String, i64)>,
    /// The latest version per stage.
    pub latest_versions: Vec<ModelVersion>,
}

/// A model version.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    /// Registered model name.
    pub name: String,
    /// 1, 2, …
    pub version: i64,
    /// The source as given (validated).
    pub source: String,
    /// The run it came from.
    pub run_id: Option<String>,
    /// The logged model it came from (MLflow 3).
    pub model_id: Option<String>,
    /// Always `READY` (keel validates synchronously).
    pub status: String,
    /// Legacy stage.
    pub current_stage: Stage,
    /// Description.
    pub description: String,
    /// Creator.
    pub user_id: String,
    /// Link to the run.
    pub run_link: String,
    /// The resolved `mlflow-artifacts:/…` URI of the version's files.
    pub storage: String,
    /// ms since the epoch.
    pub creation_timestamp: i64,
    /// ms since the epoch.
    pub last_updated_timestamp: i64,
    /// Tags.
    pub tags: Vec<KeyValue>,
    /// Aliases pointing at this version.
    pub aliases: Vec<String>,
}

/// One alias move.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasEvent {
    /// The alias.
    pub alias: String,
    /// 1, 2, … per (model, alias).
    pub seq: i64,
    /// The version it now points to (`None`: deleted).
    pub version: Option<i64>,
    /// The version it pointed to before.
    pub previous_version: Option<i64>,
    /// `set`, `delete`, `rollback`.
    pub action: String,
    /// Who.
    pub actor: String,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Free text (e.g. gate results).
    pub note: String,
}

fn err_model(name: &str) -> TrackingError {
    TrackingError::NotFound(format!("Registered Model with name={name} not found"))
}

fn parse_version(v: &str) -> TrackingResult<i64> {
    v.trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            TrackingError::Invalid(format!(
                "Parameter 'version' must be an integer, got '{v}'."
            ))
        })
}

/// Parses a version number given as text (the wire sends strings).
pub fn version_number(v: &str) -> TrackingResult<i64> {
    parse_version(v)
}

async fn kv(
    store: &Store,
    sql: &'static str,
    name: &str,
    version: Option<i64>,
) -> TrackingResult<Vec<KeyValue>> {
    let mut q = sqlx::query(sql).bind(name);
    if let Some(v) = version {
        q = q.bind(v);
    }
    let rows = q
        .fetch_all(store.db.pool())
        .await
        .map_err(TrackingError::db("reading registry tags"))?;
    rows.iter()
        .map(|r| {
            Ok(KeyValue::new(
                col::<String>(r, "key")?,
                col::<String>(r, "value")?,
            ))
        })
        .collect()
}

const RM_COLUMNS: &str =
    "m.name, m.description, m.user_id, m.creation_timestamp, m.last_updated_timestamp";
const MV_COLUMNS: &str = "v.name, v.version, v.source, v.run_id, v.model_id, v.status, v.current_stage, v.description, \
                          v.user_id, v.run_link, v.storage, v.creation_timestamp, v.last_updated_timestamp";

fn rm_from_row(r: &AnyRow) -> TrackingResult<RegisteredModel> {
    Ok(RegisteredModel {
        name: col(r, "name")?,
        description: col(r, "description")?,
        user_id: col(r, "user_id")?,
        creation_timestamp: col(r, "creation_timestamp")?,
        last_updated_timestamp: col(r, "last_updated_timestamp")?,
        tags: Vec::new(),
        aliases: Vec::new(),
        latest_versions: Vec::new(),
    })
}

fn mv_from_row(r: &AnyRow) -> TrackingResult<ModelVersion> {
    Ok(ModelVersion {
        name: col(r, "name")?,
        version: col(r, "version")?,
        source: col(r, "source")?,
        run_id: col(r, "run_id")?,
        model_id: col(r, "model_id")?,
        status: col(r, "status")?,
        current_stage: Stage::parse(&col::<String>(r, "current_stage")?)?,
        description: col(r, "description")?,
        user_id: col(r, "user_id")?,
        run_link: col(r, "run_link")?,
        storage: col(r, "storage")?,
        creation_timestamp: col(r, "creation_timestamp")?,
        last_updated_timestamp: col(r, "last_updated_timestamp")?,
        tags: Vec::new(),
        aliases: Vec::new(),
    })
}

async fn hydrate_rm(store: &Store, mut m: RegisteredModel) -> TrackingResult<RegisteredModel> {
    m.tags = kv(
        store,
        "SELECT key, value FROM registered_model_tags WHERE name = $1 ORDER BY key",
        &m.name,
        None,
    )
    .await?;
    let rows =
        sqlx::query("SELECT alias, version FROM model_aliases WHERE name = $1 ORDER BY alias")
            .bind(&m.name)
            .fetch_all(store.db.pool())
            .await
            .map_err(TrackingError::db("reading aliases"))?;
    m.aliases = rows
        .iter()
        .map(|r| Ok((col(r, "alias")?, col(r, "version")?)))
        .collect::<TrackingResult<_>>()?;
    m.latest_versions = latest_versions(store, &m.name, &[]).await?;
    Ok(m)
}

async fn hydrate_mv(store: &Store, mut v: ModelVersion) -> TrackingResult<ModelVersion> {
    v.tags = kv(
        store,
        "SELECT key, value FROM model_version_tags WHERE name = $1 AND version = $2 ORDER BY key",
        &v.name,
        Some(v.version),
    )
    .await?;
    let rows = sqlx::query(
        "SELECT alias FROM model_aliases WHERE name = $1 AND version = $2 ORDER BY alias",
    )
    .bind(&v.name)
    .bind(v.version)
    .fetch_all(store.db.pool())
    .await
    .map_err(TrackingError::db("reading aliases"))?;
    v.aliases = rows
        .iter()
        .map(|r| col(r, "alias"))
        .collect::<TrackingResult<_>>()?;
    Ok(v)
}

/// Creates a registered model; a duplicate name is `AlreadyExists`.
pub async fn create_model(
    store: &Store,
    name: &str,
    description: &str,
    tags: &[KeyValue],
    actor: &Actor,
) -> TrackingResult<RegisteredModel> {
    validate::name("Registered model", name)?;
    for t in tags {
        validate::key("tag", &t.key)?;
        validate::length("tag value", &t.value, validate::MAX_REGISTRY_TAG_VALUE)?;
    }
    let now = now_ms();
    let mut tx = store
        .db
        .pool()
        .begin()
        .await
        .map_err(TrackingError::db("creating registered model"))?;
    let res = sqlx::query(
        "INSERT INTO registered_models (name, description, user_id, creation_timestamp, last_updated_timestamp)
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(name)
    .bind(description)
    .bind(&actor.0)
    .bind(now)
    .execute(&mut *tx)
    .await;
    match res {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(TrackingError::AlreadyExists(format!(
                "Registered Model (name={name}) already exists."
            )))
        }
        Err(e) => return Err(TrackingError::db("creating registered model")(e)),
    }
    for t in tags {
        sqlx::query("INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(&t.key)
            .bind(&t.value)
            .execute(&mut *tx)
            .await
            .map_err(TrackingError::db("tagging registered model"))?;
    }
    tx.commit()
        .await
        .map_err(TrackingError::db("creating registered model"))?;
    get_model(store, name).await
}

/// Gets a registered model with its tags, aliases and latest versions.
pub async fn get_model(store: &Store, name: &str) -> TrackingResult<RegisteredModel> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RM_COLUMNS} FROM registered_models m WHERE m.name = $1"
    )))
    .bind(name)
    .fetch_optional(store.db.pool())
    .await
    .map_err(TrackingError::db("reading registered model"))?
    .ok_or_else(|| err_model(name))?;
    hydrate_rm(store, rm_from_row(&row)?).await
}

const RM_TARGET: Target = Target {
    what: "registered models",
    attributes: &[
        ("name", "m.name", Kind::Text),
        ("creation_timestamp", "m.creation_timestamp", Kind::Number),
        (
            "last_updated_timestamp",
            "m.last_updated_timestamp",
            Kind::Number,
        ),
        ("timestamp", "m.last_updated_timestamp", Kind::Number),
    ],
    tags: Some(("registered_model_tags", "name", "m.name")),
    params: None,
    metrics: None,
    datasets: None,
    ne_matches_missing: true,
};

/// Searches registered models (`name`, `tags.<k>`; default order `name ASC`).
pub async fn search_models(
    store: &Store,
    filter: &str,
    order_by: &[String],
    max_results: i64,
    page_token: Option<&str>,
) -> TrackingResult<Page<RegisteredModel>> {
    if !(1..=1000).contains(&max_results) {
        return Err(TrackingError::Invalid(format!(
            "Invalid value for max_results. It must be at most 1000, but got {max_results}"
        )));
    }
    let q = search::compile_page(
        store.db.backend(),
        &RM_TARGET,
        &format!("SELECT {RM_COLUMNS} FROM registered_models m"),
        |_| "1 = 1".to_string(),
        filter,
        order_by,
        "m.name ASC",
        max_results,
        page_token,
    )?;
    let page = q
        .fetch(store, "searching registered models", rm_from_row)
        .await?;
    let mut items = Vec::new();
    for m in page.items {
        items.push(hydrate_rm(store, m).await?);
    }
    Ok(Page {
        items,
        next_page_token: page.next_page_token,
    })
}

async fn touch_model(store: &Store, name: &str) -> TrackingResult<()> {
    sqlx::query("UPDATE registered_models SET last_updated_timestamp = $1 WHERE name = $2")
        .bind(now_ms())
        .bind(name)
        .execute(store.db.pool())
        .await
        .map_err(TrackingError::db("updating registered model"))?;
    Ok(())
}

/// Sets a registered model's description.
pub async fn update_model(
    store: &Store,
    name: &str,
    description: &str,
) -> TrackingResult<RegisteredModel> {
    get_model(store, name).await?;
    sqlx::query("UPDATE registered_models SET description = $1, last_updated_timestamp = $2 WHERE name = $3")
        .bind(description)
        .bind(now_ms())
        .bind(name)
        .execute(store.db.pool())
        .await
        .map_err(TrackingError::db("updating registered model"))?;
    get_model(store, name).await
}

/// Renames a registered model and everything that names it.
pub async fn rename_model(
    store: &Store,
    name: &str,
    new_name: &str,
) -> TrackingResult<RegisteredModel> {
    validate::name("Registered model", new_name)?;
    get_model(store, name).await?;
    let mut tx = store
        .db
        .pool()
        .begin()
        .await
        .map_err(TrackingError::db("renaming registered model"))?;
    let res = sqlx::query(
        "UPDATE registered_models SET name = $1, last_updated_timestamp = $2 WHERE name = $3",
    )
    .bind(new_name)
    .bind(now_ms())
    .bind(name)
    .execute(&mut *tx)
    .await;
    match res {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(TrackingError::AlreadyExists(format!(
                "Registered Model (name={new_name}) already exists."
            )))
        }
        Err(e) => return Err(TrackingError::db("renaming registered model")(e)),
    }
    for table in [
        "registered_model_tags",
        "model_versions",
        "model_version_tags",
        "model_aliases",
        "model_alias_history",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET name = $1 WHERE name = $2"
        )))
        .bind(new_name)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(TrackingError::db("renaming registered model"))?;
    }
    tx.commit()
        .await
        .map_err(TrackingError::db("renaming registered model"))?;
    get_model(store, new_name).await
}

/// Deletes a registered model, its versions, tags and aliases (the alias
/// history is kept: it is an audit record).
pub async fn delete_model(store: &Store, name: &str) -> TrackingResult<()> {
    get_model(store, name).await?;
    let mut tx = store
        .db
        .pool()
        .begin()
        .await
        .map_err(TrackingError::db("deleting registered model"))?;
    for table in [
        "registered_models",
        "registered_model_tags",
        "model_versions",
        "model_version_tags",
        "model_aliases",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE name = $1"
        )))
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(TrackingError::db("deleting registered model"))?;
    }
    tx.commit()
        .await
        .map_err(TrackingError::db("deleting registered model"))
}

/// Sets a registered-model tag.
pub async fn set_model_tag(store: &Store, name: &str, tag: &KeyValue) -> TrackingResult<()> {
    validate::key("tag", &tag.key)?;
    validate::length("tag value", &tag.value, validate::MAX_REGISTRY_TAG_VALUE)?;
    get_model(store, name).await?;
    sqlx::query(
        "INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(&tag.key)
    .bind(&tag.value)
    .execute(store.db.pool())
    .await
    .map_err(TrackingError::db("tagging registered model"))?;
    touch_model(store, name).await
}

/// Deletes a registered-model tag.
pub async fn delete_model_tag(store: &Store, name: &str, key: &str) -> TrackingResult<()> {
    get_model(store, name).await?;
    let n = sqlx::query("DELETE FROM registered_model_tags WHERE name = $1 AND key = $2")
        .bind(name)
        .bind(key)
        .execute(store.db.pool())
        .await
        .map_err(TrackingError::db("deleting registered model tag"))?
        .rows_affected();
    if n == 0 {
        return Err(TrackingError::NotFound(format!(
            "Registered model tag with key={key} not found"
        )));
    }
    Ok(())
}

/// The latest version in each of `stages` (all stages when empty).
pub async fn latest_versions(
    store: &Store,
    name: &str,
    stages: &[Stage],
) -> TrackingResult<Vec<ModelVersion>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {MV_COLUMNS} FROM model_versions v WHERE v.name = $1 AND v.version = (
             SELECT MAX(w.version) FROM model_versions w WHERE w.name = v.name AND w.current_stage = v.current_stage)
         ORDER BY v.version"
    )))
    .bind(name)
    .fetch_all(store.db.pool())
    .await
    .map_err(TrackingError::db("reading latest versions"))?;
    let mut out = Vec::new();
    for r in &rows {
        let v = mv_from_row(r)?;
        if stages.is_empty() || stages.contains(&v.current_stage) {
            out.push(hydrate_mv(store, v).await?);
        }
    }
    Ok(out)
}

/// Where a version's files are: checks `source` against the run / logged
/// model it claims, and returns the `mlflow-artifacts:/` URI to serve.
pub async fn resolve_source(
    store: &Store,
    source: &str,
    run_id: Option<&str>,
    model_id: Option<&str>,
) -> TrackingResult<String> {
    let refuse = |why: &str| {
        TrackingError::Invalid(format!(
            "Invalid model version source '{}': {why}. The source must be models:/<model_id> of a logged model, \
             or runs:/<run_id>/<path> or mlflow-artifacts:/<experiment_id>/<run_id>/artifacts/<path> inside the \
             artifacts of the given run.",
            source.escape_debug()
        ))
    };
    if source.len() > 4096 || source.chars().any(char::is_control) {
        return Err(refuse("it is too long or contains control characters"));
    }
    let (owner, rel) = if let Some(id) = source.strip_prefix("models:/") {
        if id.contains('/') || validate::id("model_id", id).is_err() {
            return Err(refuse("not a logged-model id"));
        }
        if model_id.is_some_and(|m| !m.is_empty() && m != id) {
            return Err(refuse("it names a different logged model than model_id"));
        }
        let m = logged_models::get(store, id, false)
            .await
            .map_err(|_| refuse("no such logged model"))?;
        if let Some(r) = run_id.filter(|r| !r.is_empty()) {
            if m.source_run_id.as_deref() != Some(r) {
                return Err(refuse("the logged model was not produced by run_id"));
            }
        }
        (
            Owner::Model {
                experiment_id: m.experiment_id,
                model_id: m.model_id,
            },
            String::new(),
        )
    } else if let Some(rest) = source.strip_prefix("runs:/") {
        let (id, path) = rest.split_once('/').unwrap_or((rest, ""));
        if run_id.is_some_and(|r| !r.is_empty() && r != id) {
            return Err(refuse("it names a different run than run_id"));
        }
        let path = validate::artifact_path(path)
            .map_err(|_| refuse("the path is not a clean relative path"))?;
        let r = runs::get_info(store, id)
            .await
            .map_err(|_| refuse("no such run"))?;
        (
            Owner::Run {
                experiment_id: r.experiment_id,
                run_id: r.run_id,
            },
            path,
        )
    } else if let Some(rest) = source.strip_prefix("mlflow-artifacts:/") {
        if rest.starts_with('/') {
            return Err(refuse("a host in mlflow-artifacts:// URIs is not accepted"));
        }
        let (owner, rel) = artifacts::resolve(store, rest)
            .await
            .map_err(|_| refuse("it is not inside a run's or logged model's artifacts"))?;
        match &owner {
            Owner::Run { run_id: r, .. } => {
                if run_id.is_some_and(|want| !want.is_empty() && want != r) {
                    return Err(refuse("it is outside the artifacts of run_id"));
                }
            }
            Owner::Model { model_id: m, .. } => {
                if model_id.is_some_and(|want| !want.is_empty() && want != m) {
                    return Err(refuse("it names a different logged model than model_id"));
                }
            }
        }
        (owner, rel)
    } else {
        return Err(refuse(
            "only models:/, runs:/ and mlflow-artifacts:/ sources are accepted",
        ));
    };
    if artifacts::walk(store, &owner, &rel).await?.is_empty() {
        return Err(refuse("no artifacts exist there"));
    }
    Ok(if rel.is_empty() {
        owner.uri()
    } else {
        format!("{}/{rel}", owner.uri())
    })
}

/// Registers a new version of `name` (status `READY`).
#[allow(clippy::too_many_arguments)]
pub async fn create_version(
    store: &Store,
    name: &str,
    source: &str,
    run_id: Option<&str>,
    model_id: Option<&str>,
    tags: &[KeyValue],
    run_link: &str,
    description: &str,
    actor: &Actor,
) -> TrackingResult<ModelVersion> {
    get_model(store, name).await?;
    for t in tags {
        validate::key("tag", &t.key)?;
        validate::length("tag value", &t.value, validate::MAX_REGISTRY_TAG_VALUE)?;
    }
    let storage = resolve_source(store, source, run_id, model_id).await?;
    let run_id = run_id
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .or_else(|| {
            source
                .strip_prefix("runs:/")
                .map(|r| r.split('/').next().unwrap_or_default().to_string())
        });
    let model_id = model_id
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .or_else(|| source.strip_prefix("models:/").map(str::to_string));
    let run_id = match (&run_id, &model_id) {
        (None, Some(m)) => logged_models::get(store, m, false).await?.source_run_id,
        _ => run_id,
    };
    let now = now_ms();
    for _ in 0..5 {
        let mut tx = store
            .db
            .pool()
            .begin()
            .await
            .map_err(TrackingError::db("creating model version"))?;
        let res = sqlx::query(
            "INSERT INTO model_versions (name, version, source, run_id, model_id, status, current_stage, description,
                 user_id, run_link, storage, creation_timestamp, last_updated_timestamp)
             SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, 'READY', 'None', $5, $6, $7, $8, $9, $9
             FROM model_versions WHERE name = $1",
        )
        .bind(name)
        .bind(source)
        .bind(run_id.clone())
        .bind(model_id.clone())
        .bind(description)
        .bind(&actor.0)
        .bind(run_link)
        .bind(&storage)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => continue,
            Err(e) => return Err(TrackingError::db("creating model version")(e)),
        }
        let row = sqlx::query("SELECT MAX(version) AS v FROM model_versions WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(TrackingError::db("creating model version"))?;
        let version: i64 = col(&row, "v")?;
        for t in tags {
            sqlx::query("INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4)")
                .bind(name)
                .bind(version)
                .bind(&t.key)
                .bind(&t.value)
                .execute(&mut *tx)
                .await
                .map_err(TrackingError::db("tagging model version"))?;
        }
        sqlx::query("UPDATE registered_models SET last_updated_timestamp = $1 WHERE name = $2")
            .bind(now)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(TrackingError::db("creating model version"))?;
        tx.commit()
            .await
            .map_err(TrackingError::db("creating model version"))?;
        return get_version(store, name, version).await;
    }
    Err(TrackingError::Invalid(format!(
        "Too many concurrent registrations of {name}; retry"
    )))
}

/// Gets a model version.
pub async fn get_version(store: &Store, name: &str, version: i64) -> TrackingResult<ModelVersion> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {MV_COLUMNS} FROM model_versions v WHERE v.name = $1 AND v.version = $2"
    )))
    .bind(name)
    .bind(version)
    .fetch_optional(store.db.pool())
    .await
    .map_err(TrackingError::db("reading model version"))?
    .ok_or_else(|| {
        TrackingError::NotFound(format!(
            "Model Version (name={name}, version={version}) not found"
        ))
    })?;
    hydrate_mv(store, mv_from_row(&row)?).await
}

/// Sets a version's description.
pub async fn update_version(
    store: &Store,
    name: &str,
    version: i64,
    description: &str,
) -> TrackingResult<ModelVersion> {
    get_version(store, name, version).await?;
    sqlx::query("UPDATE model_versions SET description = $1, last_updated_timestamp = $2 WHERE name = $3 AND version = $4")
        .bind(description)
        .bind(now_ms())
        .bind(name)
        .bind(version)
        .execute(store.db.pool())
        .await
        .map_err(TrackingError::db("updating model version"))?;
    get_version(store, name, version).await
}

/// Moves a version to a legacy stage, optionally archiving the versions
/// currently in that stage.
pub async fn transition_stage(
    store: &Store,
    name: &str,
    version: i64,
    stage: Stage,
    archive_existing: bool,
) -> TrackingResult<ModelVersion> {
    get_version(store, name, version).await?;
    let now = now_ms();
    let mut tx = store
        .db
        .pool()
        .begin()
        .await
        .map_err(TrackingError::db("transitioning stage"))?;
    if archive_existing && matches!(stage, Stage::Staging | Stage::Production) {
        sqlx::query(
            "UPDATE model_versions SET current_stage = 'Archived', last_updated_timestamp = $1
             WHERE name = $2 AND current_stage = $3 AND version <> $4",
        )
        .bind(now)
        .bind(name)
        .bind(stage.as_str())
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(TrackingError::db("transitioning stage"))?;
    }
    sqlx::query("UPDATE model_versions SET current_stage = $1, last_updated_timestamp = $2 WHERE name = $3 AND version = $4")
        .bind(stage.as_str())
        .bind(now)
        .bind(name)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(TrackingError::db("transitioning stage"))?;
    tx.commit()
        .await
        .map_err(TrackingError::db("transitioning stage"))?;
    get_version(store, name, version).await
}

/// Deletes a version, its tags and the aliases that point at it.
pub async fn delete_version(store: &Store, name: &str, version: i64) -> TrackingResult<()> {
    get_version(store, name, version).await?;
    let mut tx = store
        .db
        .pool()
        .begin()
        .await
        .map_err(TrackingError::db("deleting model version"))?;
    for table in ["model_versions", "model_version_tags", "model_aliases"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE name = $1 AND version = $2"
        )))
        .bind(name)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(TrackingError::db("deleting model version"))?;
    }
    tx.commit()
        .await
        .map_err(TrackingError::db("deleting model version"))
}

const MV_TARGET: Target = Target {
    what: "model versions",
    attributes: &[
        ("name", "v.name", Kind::Text),
        ("run_id", "v.run_id", Kind::Text),
        ("source_path", "v.source", Kind::Text),
        ("source", "v.source", Kind::Text),
        ("version_number", "v.version", Kind::Number),
        ("version", "v.version", Kind::Number),
        ("creation_timestamp", "v.creation_timestamp", Kind::Number),
        (
            "last_updated_timestamp",
            "v.last_updated_timestamp",
            Kind::Number,
        ),
        ("timestamp", "v.last_updated_timestamp", Kind::Number),
    ],
    tags: Some(("model_version_tags", "name, version", "v.name, v.version")),
    params: None,
    metrics: None,
    datasets: None,
    ne_matches_missing: true,
};

/// Searches versions (`name`, `run_id`, `source_path`, `version_number`, `tags.<k>`).
pub async fn search_versions(
    store: &Store,
    filter: &str,
    order_by: &[String],
    max_results: i64,
    page_token: Option<&str>,
) -> TrackingResult<Page<ModelVersion>> {
    if !(1..=200_000).contains(&max_results) {
        return Err(TrackingError::Invalid(format!(
            "Invalid value for max_results. It must be at most 200000, but got {max_results}"
        )));
    }
    let q = search::compile_page(
        store.db.backend(),
        &MV_TARGET,
        &format!("SELECT {MV_COLUMNS} FROM model_versions v"),
        |_| "1 = 1".to_string(),
        filter,
        order_by,
        "v.name ASC, v.version DESC",
        max_results,
        page_token,
    )?;
    let page = q
        .fetch(store, "searching model versions", mv_from_row)
        .await?;
    let mut items = Vec::new();
    for v in page.items {
        items.push(hydrate_mv(store, v).await?);
    }
    Ok(Page {
        items,
        next_page_token: page.next_page_token,
    })
}

/// Sets a version tag.
pub async fn set_version_tag(
    store: &Store,
    name: &str,
    version: i64,
    tag: &KeyValue,
) -> TrackingResult<()> {
    validate::key("tag", &tag.key)?;
    validate::length("tag value", &tag.value, validate::MAX_REGISTRY_TAG_VALUE)?;
    get_version(store, name, version).await?;
    sqlx::query(
        "INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(version)
    .bind(&tag.key)
    .bind(&tag.value)
    .execute(store.db.pool())
    .await
    .map_err(TrackingError::db("tagging model version"))?;
    Ok(())
}

/// Deletes a version tag.
pub async fn delete_version_tag(
    store: &Store,
    name: &str,
    version: i64,
    key: &str,
) -> TrackingResult<()> {
    get_version(store, name, version).await?;
    let n =
        sqlx::query("DELETE FROM model_version_tags WHERE name = $1 AND version = $2 AND key = $3")
            .bind(name)
            .bind(version)
            .bind(key)
            .execute(store.db.pool())
            .await
            .map_err(TrackingError::db("deleting model version tag"))?
            .rows_affected();
    if n == 0 {
        return Err(TrackingError::NotFound(format!(
            "Model version tag with key={key} not found"
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn record_alias(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    alias: &str,
    version: Option<i64>,
    previous: Option<i64>,
    action: &str,
    actor: &Actor,
    note: &str,
) -> TrackingResult<()> {
    sqlx::query(
        "INSERT INTO model_alias_history (name, alias, seq, version, previous_version, action, actor, at_ms, note)
         SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4, $5, $6, $7, $8 FROM model_alias_history
         WHERE name = $1 AND alias = $2",
    )
    .bind(name)
    .bind(alias)
    .bind(version)
    .bind(previous)
    .bind(action)
    .bind(&actor.0)
    .bind(now_ms())
    .bind(note)
    .execute(&mut **tx)
    .await
    .map_err(TrackingError::db("recording alias history"))?;
    Ok(())
}

async fn move_alias(
    store: &Store,
    name: &str,
    alias: &str,
    version: Option<i64>,
    action: &str,
    actor: &Actor,
    note: &str,
) -> TrackingResult<Option<i64>> {
    let mut tx = store
        .db
        .pool()
        .begin()
        .await
        .map_err(TrackingError::db("moving alias"))?;
    // A write first: SQLite then holds the write lock for the read below.
    sqlx::query("UPDATE registered_models SET last_updated_timestamp = $1 WHERE name = $2")
        .bind(now_ms())
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(TrackingError::db("moving alias"))?;
    let prev: Option<i64> =
        match sqlx::query("SELECT version FROM model_aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .fetch_optional(&mut *tx)
            .await
            .map_err(TrackingError::db("moving alias"))?
        {
            Some(r) => Some(col(&r, "version")?),
            None => None,
        };
    match version {
        Some(v) => {
            sqlx::query(
                "INSERT INTO model_aliases (name, alias, version) VALUES ($1, $2, $3)
                 ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
            )
            .bind(name)
            .bind(alias)
            .bind(v)
            .execute(&mut *tx)
            .await
            .map_err(TrackingError::db("moving alias"))?;
        }
        None => {
            sqlx::query("DELETE FROM model_aliases WHERE name = $1 AND alias = $2")
                .bind(name)
                .bind(alias)
                .execute(&mut *tx)
                .await
                .map_err(TrackingError::db("deleting alias"))?;
        }
    }
    record_alias(&mut tx, name, alias, version, prev, action, actor, note).await?;
    tx.commit()
        .await
        .map_err(TrackingError::db("moving alias"))?;
    Ok(prev)
}

/// Points `alias` at `version` (recorded in the alias history); returns the previous version.
pub async fn set_alias(
    store: &Store,
    name: &str,
    alias: &str,
    version: i64,
    actor: &Actor,
    note: &str,
) -> TrackingResult<Option<i64>> {
    validate::alias(alias)?;
    get_version(store, name, version).await?;
    move_alias(store, name, alias, Some(version), "set", actor, note).await
}

/// Removes an alias (recorded in the history).
pub async fn delete_alias(
    store: &Store,
    name: &str,
    alias: &str,
    actor: &Actor,
) -> TrackingResult<()> {
    get_model(store, name).await?;
    if get_by_alias(store, name, alias).await.is_err() {
        return Err(TrackingError::NotFound(format!(
            "Registered model alias {alias} not found."
        )));
    }
    move_alias(store, name, alias, None, "delete", actor, "").await?;
    Ok(())
}

/// The version an alias points at.
pub async fn get_by_alias(store: &Store, name: &str, alias: &str) -> TrackingResult<ModelVersion> {
    let row = sqlx::query("SELECT version FROM model_aliases WHERE name = $1 AND alias = $2")
        .bind(name)
        .bind(alias)
        .fetch_optional(store.db.pool())
        .await
        .map_err(TrackingError::db("reading alias"))?
        .ok_or_else(|| {
            TrackingError::NotFound(format!("Registered model alias {alias} not found."))
        })?;
    get_version(store, name, col(&row, "version")?).await
}

/// Every move of every alias of `name`, oldest first.
pub async fn alias_history(store: &Store, name: &str) -> TrackingResult<Vec<AliasEvent>> {
    let rows = sqlx::query(
        "SELECT alias, seq, version, previous_version, action, actor, at_ms, note FROM model_alias_history
         WHERE name = $1 ORDER BY at_ms, alias, seq",
    )
    .bind(name)
    .fetch_all(store.db.pool())
    .await
    .map_err(TrackingError::db("reading alias history"))?;
    rows.iter()
        .map(|r| {
            Ok(AliasEvent {
                alias: col(r, "alias")?,
                seq: col(r, "seq")?,
                version: col(r, "version")?,
                previous_version: col(r, "previous_version")?,
                action: col(r, "action")?,
                actor: col(r, "actor")?,
                at_ms: col(r, "at_ms")?,
                note: col(r, "note")?,
            })
        })
        .collect()
}

/// Moves `alias` back to the version it pointed at before its last move.
/// Returns (from, to).
pub async fn rollback(
    store: &Store,
    name: &str,
    alias: &str,
    actor: &Actor,
) -> TrackingResult<(Option<i64>, i64)> {
    get_model(store, name).await?;
    let last = alias_history(store, name)
        .await?
        .into_iter()
        .filter(|e| e.alias == alias)
        .max_by_key(|e| e.seq)
        .ok_or_else(|| {
            TrackingError::NotFound(format!("Alias {alias} of {name} has never been set"))
        })?;
    let Some(target) = last.previous_version else {
        return Err(TrackingError::Invalid(format!(
            "Alias {alias} of {name} has no previous version to roll back to"
        )));
    };
    get_version(store, name, target).await?;
    let from = move_alias(
        store,
        name,
        alias,
        Some(target),
        "rollback",
        actor,
        &format!("rollback of move #{}", last.seq),
    )
    .await?;
    Ok((from, target))
}
