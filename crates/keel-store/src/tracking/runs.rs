//! Runs and everything logged to them: params, metrics (history and
//! latest values), tags, dataset inputs and model outputs.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::error::{TrackingError, TrackingResult};
use super::search::{self, Kind, Target};
use super::util::{col, decode_token, paginate, placeholders, Bind, Cols, Sql};
use super::{chunks, experiments};
use super::{validate, KeyValue, Lifecycle, Metric, Page, ViewType};
use crate::db::{now_ms, Backend};
use crate::Store;

/// The tag MLflow keeps in sync with the run's name.
pub const RUN_NAME_TAG: &str = "mlflow.runName";

/// A run's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// In progress.
    Running,
    /// Queued.
    Scheduled,
    /// Done.
    Finished,
    /// Failed.
    Failed,
    /// Killed.
    Killed,
}

impl RunStatus {
    /// MLflow's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Scheduled => "SCHEDULED",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }

    /// Parses MLflow's names or enum numbers.
    pub fn parse(s: &str) -> TrackingResult<RunStatus> {
        Ok(match s {
            "RUNNING" | "1" => RunStatus::Running,
            "SCHEDULED" | "2" => RunStatus::Scheduled,
            "FINISHED" | "3" => RunStatus::Finished,
            "FAILED" | "4" => RunStatus::Failed,
            "KILLED" | "5" => RunStatus::Killed,
            other => {
                return Err(TrackingError::invalid(format!(
                    "Invalid run status '{other}': expected RUNNING, SCHEDULED, FINISHED, FAILED or KILLED"
                )))
            }
        })
    }
}

/// A run's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// 32 hex digits.
    pub run_id: String,
    /// The experiment.
    pub experiment_id: i64,
    /// Display name.
    pub run_name: String,
    /// Who started it.
    pub user_id: String,
    /// Status.
    pub status: RunStatus,
    /// ms since the epoch.
    pub start_time: i64,
    /// ms since the epoch, once ended.
    pub end_time: Option<i64>,
    /// Active or deleted.
    pub lifecycle: Lifecycle,
}

impl RunInfo {
    /// `mlflow-artifacts:/<exp>/<run>/artifacts`.
    pub fn artifact_uri(&self) -> String {
        format!(
            "mlflow-artifacts:/{}/{}/artifacts",
            self.experiment_id, self.run_id
        )
    }
}

/// A dataset input of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInput {
    /// Dataset name.
    pub name: String,
    /// Dataset digest.
    pub digest: String,
    /// Source type (`local`, `http`, …).
    pub source_type: String,
    /// Source (JSON text, as sent).
    pub source: String,
    /// Schema (JSON text).
    pub schema: Option<String>,
    /// Profile (JSON text).
    pub profile: Option<String>,
    /// Input tags (`mlflow.data.context`, …).
    pub tags: Vec<KeyValue>,
}

/// A run with its data.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Metadata.
    pub info: RunInfo,
    /// Latest value per metric key.
    pub metrics: Vec<Metric>,
    /// Params.
    pub params: Vec<KeyValue>,
    /// Tags.
    pub tags: Vec<KeyValue>,
    /// Dataset inputs.
    pub dataset_inputs: Vec<DatasetInput>,
    /// Model inputs (logged-model ids).
    pub model_inputs: Vec<String>,
    /// Model outputs (logged-model id, step).
    pub model_outputs: Vec<(String, i64)>,
}

const ADJECTIVES: &[&str] = &[
    "able", "bold", "brave", "bright", "calm", "clever", "crisp", "eager", "fair", "gentle",
    "glad", "grand", "keen", "kind", "lucky", "merry", "neat", "nimble", "proud", "quick", "quiet",
    "sharp", "silent", "smart", "steady", "swift", "tidy", "vast", "warm", "wise",
];
const ANIMALS: &[&str] = &[
    "ant", "bass", "bat", "bear", "carp", "cat", "colt", "crab", "crow", "deer", "doe", "dove",
    "duck", "eel", "elk", "finch", "fox", "frog", "gnu", "hare", "hawk", "lamb", "lark", "mole",
    "moth", "newt", "owl", "ram", "seal", "slug", "snail", "swan", "toad", "trout", "wasp",
    "whale", "wolf", "wren", "yak",
];

fn generate_name(run_id: &str) -> String {
    let b = run_id.as_bytes();
    let n = |i: usize| b.get(i).copied().unwrap_or(0) as usize;
    format!(
        "{}-{}-{}",
        ADJECTIVES[(n(0) * 31 + n(1)) % ADJECTIVES.len()],
        ANIMALS[(n(2) * 31 + n(3)) % ANIMALS.len()],
        (n(4) * 7 + n(5) * 13 + n(6)) % 1000
    )
}

const INFO_COLUMNS: &str =
    "r.run_id, r.experiment_id, r.run_name, r.user_id, r.status, r.start_time, r.end_time, r.lifecycle_stage";

fn info_from_row(r: &impl Cols) -> TrackingResult<RunInfo> {
    Ok(RunInfo {
        run_id: r.cell("run_id")?,
        experiment_id: r.cell("experiment_id")?,
        run_name: r.cell("run_name")?,
        user_id: r.cell("user_id")?,
        status: RunStatus::parse(&r.cell::<String>("status")?)?,
        start_time: r.cell("start_time")?,
        end_time: r.cell("end_time")?,
        lifecycle: Lifecycle::parse(&r.cell::<String>("lifecycle_stage")?),
    })
}

/// Creates a run in `experiment_id` (which must be active).
pub async fn create(
    store: &Store,
    experiment_id: i64,
    user_id: &str,
    run_name: Option<&str>,
    start_time: Option<i64>,
    tags: &[KeyValue],
) -> TrackingResult<Run> {
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let tag_name = tags
        .iter()
        .find(|t| t.key == RUN_NAME_TAG)
        .map(|t| t.value.clone());
    let name = run_name
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .or(tag_name)
        .unwrap_or_else(|| generate_name(&run_id));
    validate::length("run_name", &name, validate::MAX_NAME)?;
    let mut all_tags: Vec<KeyValue> = tags
        .iter()
        .filter(|t| t.key != RUN_NAME_TAG)
        .cloned()
        .collect();
    all_tags.push(KeyValue::new(RUN_NAME_TAG, name.clone()));
    for t in &all_tags {
        validate::key("tag", &t.key)?;
    }
    let info = RunInfo {
        run_id,
        experiment_id,
        run_name: name,
        user_id: user_id.to_string(),
        status: RunStatus::Running,
        start_time: start_time.unwrap_or_else(now_ms),
        end_time: None,
        lifecycle: Lifecycle::Active,
    };
    let insert = insert_run_statement(&info);
    if let Some(lane) = store.db.lane() {
        return lane
            .run(move |c| {
                experiments::require_active(
                    experiment_id,
                    experiments::lifecycle_on(c, experiment_id)?,
                )?;
                insert
                    .execute_on(c)
                    .map_err(TrackingError::sqlite("creating run"))?;
                for sql in tag_statements(&info.run_id, &all_tags) {
                    sql.execute_on(c)
                        .map_err(TrackingError::sqlite("tagging run"))?;
                }
                Ok(new_run(info, &all_tags))
            })
            .await;
    }
    experiments::get_active(store, experiment_id).await?;
    let mut tx = store
        .db
        .pool()
        .begin()
        .await
        .map_err(TrackingError::db("creating run"))?;
    insert
        .query()
        .execute(&mut *tx)
        .await
        .map_err(TrackingError::db("creating run"))?;
    write_tags(&mut tx, &info.run_id, &all_tags).await?;
    tx.commit()
        .await
        .map_err(TrackingError::db("creating run"))?;
    get(store, &info.run_id).await
}

fn insert_run_statement(info: &RunInfo) -> Sql {
    let mut sql = Sql::new("");
    let ps = [
        sql.bind(Bind::Text(info.run_id.clone())),
        sql.bind(Bind::I64(info.experiment_id)),
        sql.bind(Bind::Text(info.run_name.clone())),
        sql.bind(Bind::Text(info.user_id.clone())),
        sql.bind(Bind::I64(info.start_time)),
    ];
    sql.text = format!(
        "INSERT INTO runs (run_id, experiment_id, run_name, user_id, status, start_time, end_time, lifecycle_stage)
         VALUES ({}, 'RUNNING', {}, NULL, 'active')",
        ps[..4].join(", "),
        ps[4]
    );
    sql
}

/// A run just created with `tags`, as [`get`] would read it back: tags
/// by key, the last value of a repeated key, values truncated.
fn new_run(info: RunInfo, tags: &[KeyValue]) -> Run {
    let tags: BTreeMap<&str, String> = tags
        .iter()
        .map(|t| {
            (
                t.key.as_str(),
                validate::truncate(&t.value, validate::MAX_TAG_VALUE),
            )
        })
        .collect();
    Run {
        info,
        metrics: Vec::new(),
        params: Vec::new(),
        tags: tags.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect(),
        dataset_inputs: Vec::new(),
        model_inputs: Vec::new(),
        model_outputs: Vec::new(),
    }
}

/// A run's info.
pub async fn get_info(store: &Store, run_id: &str) -> TrackingResult<RunInfo> {
    validate::id("run_id", run_id)?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {INFO_COLUMNS} FROM runs r WHERE r.run_id = $1"
    )))
    .bind(run_id)
    .fetch_optional(store.db.pool())
    .await
    .map_err(TrackingError::db("reading run"))?
    .ok_or_else(|| TrackingError::not_found(format!("Run with id={run_id} not found")))?;
    info_from_row(&row)
}

async fn get_active_info(store: &Store, run_id: &str) -> TrackingResult<RunInfo> {
    let info = get_info(store, run_id).await?;
    require_active(run_id, Some(info.lifecycle))?;
    Ok(info)
}

/// MLflow's errors for logging to a run that is missing (`None`) or deleted.
fn require_active(run_id: &str, lifecycle: Option<Lifecycle>) -> TrackingResult<()> {
    match lifecycle {
        None => Err(TrackingError::not_found(format!(
            "Run with id={run_id} not found"
        ))),
        Some(Lifecycle::Deleted) => Err(TrackingError::invalid(format!(
            "The run {run_id} must be in the 'active' state. Current state is deleted."
        ))),
        Some(Lifecycle::Active) => Ok(()),
    }
}

/// A run with its metrics, params, tags, inputs and outputs.
pub async fn get(store: &Store, run_id: &str) -> TrackingResult<Run> {
    if let Some(lane) = store.db.lane() {
        validate::id("run_id", run_id)?;
        return lane.read(|c| get_on(c, run_id));
    }
    let info = get_info(store, run_id).await?;
    let mut runs = hydrate(store, vec![info]).await?;
    let mut run = runs.pop().expect("one run in, one run out");
    for r in &sqlx::query(INPUTS_QUERY)
        .bind(run_id)
        .fetch_all(store.db.pool())
        .await
        .map_err(TrackingError::db("reading run inputs"))?
    {
        run.dataset_inputs.push(dataset_input_from_row(r)?);
    }
    for r in &sqlx::query(MODEL_IO_QUERY)
        .bind(run_id)
        .fetch_all(store.db.pool())
        .await
        .map_err(TrackingError::db("reading run models"))?
    {
        add_model_io(&mut run, r)?;
    }
    Ok(run)
}

/// [`get`] on the SQLite lane's read connection (one snapshot).
fn get_on(c: &rusqlite::Connection, run_id: &str) -> TrackingResult<Run> {
    let info = info_on(c, run_id)?;
    let mut run = hydrate_on(c, vec![info])?
        .pop()
        .expect("one run in, one run out");
    let by_run = |text: &str| {
        let mut sql = Sql::new(text);
        sql.binds.push(Bind::Text(run_id.to_string()));
        sql
    };
    run.dataset_inputs =
        by_run(INPUTS_QUERY).fetch_on(c, "reading run inputs", |r| dataset_input_from_row(r))?;
    by_run(MODEL_IO_QUERY).fetch_on(c, "reading run models", |r| add_model_io(&mut run, r))?;
    Ok(run)
}

const INPUTS_QUERY: &str =
    "SELECT dataset_name, dataset_digest, source_type, source, schema_json, profile, tags_json
     FROM run_inputs WHERE run_id = $1 ORDER BY dataset_name";

const MODEL_IO_QUERY: &str =
    "SELECT model_id, direction, step FROM run_model_io WHERE run_id = $1 ORDER BY model_id";

/// Params or tags (`table`) of the runs whose ids are bound at `ph`.
fn kv_query(table: &str, ph: &str) -> String {
    format!("SELECT run_id, key, value FROM {table} WHERE run_id IN ({ph}) ORDER BY key")
}

/// Latest metric values of the runs whose ids are bound at `ph`.
fn latest_query(ph: &str) -> String {
    format!(
        "SELECT run_id, key, value, is_nan, timestamp, step FROM latest_metrics WHERE run_id IN ({ph}) ORDER BY key"
    )
}

fn dataset_input_from_row(r: &impl Cols) -> TrackingResult<DatasetInput> {
    let tags: Vec<(String, String)> =
        serde_json::from_str(&r.cell::<String>("tags_json")?).unwrap_or_default();
    Ok(DatasetInput {
        name: r.cell("dataset_name")?,
        digest: r.cell("dataset_digest")?,
        source_type: r.cell("source_type")?,
        source: r.cell("source")?,
        schema: r.cell("schema_json")?,
        profile: r.cell("profile")?,
        tags: tags.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect(),
    })
}

fn add_model_io(run: &mut Run, r: &impl Cols) -> TrackingResult<()> {
    let id: String = r.cell("model_id")?;
    if r.cell::<String>("direction")? == "input" {
        run.model_inputs.push(id);
    } else {
        run.model_outputs.push((id, r.cell("step")?));
    }
    Ok(())
}

/// Loads metrics, params and tags for a list of runs, keeping their order.
async fn hydrate(store: &Store, infos: Vec<RunInfo>) -> TrackingResult<Vec<Run>> {
    let mut h = Hydrate::new(infos);
    for (sql, part) in h.statements() {
        for r in sql
            .query()
            .fetch_all(store.db.pool())
            .await
            .map_err(TrackingError::db(part.context()))?
        {
            h.add(part, &r)?;
        }
    }
    Ok(h.runs)
}

/// [`hydrate`] on a SQLite lane connection.
fn hydrate_on(c: &rusqlite::Connection, infos: Vec<RunInfo>) -> TrackingResult<Vec<Run>> {
    let mut h = Hydrate::new(infos);
    for (sql, part) in h.statements() {
        sql.fetch_on(c, part.context(), |r| h.add(part, r))?;
    }
    Ok(h.runs)
}

/// Runs being filled with their params, tags and latest metrics.
struct Hydrate {
    runs: Vec<Run>,
    index: HashMap<String, usize>,
}

#[derive(Clone, Copy)]
enum Part {
    Params,
    Tags,
    Metrics,
}

impl Part {
    fn context(self) -> &'static str {
        match self {
            Part::Params | Part::Tags => "reading run data",
            Part::Metrics => "reading run metrics",
        }
    }
}

impl Hydrate {
    fn new(infos: Vec<RunInfo>) -> Hydrate {
        let runs: Vec<Run> = infos.into_iter().map(|info| new_run(info, &[])).collect();
        let index = runs
            .iter()
            .enumerate()
            .map(|(i, r)| (r.info.run_id.clone(), i))
            .collect();
        Hydrate { runs, index }
    }

    /// The queries, 500 runs at a time.
    fn statements(&self) -> Vec<(Sql, Part)> {
        let mut out = Vec::new();
        for chunk in self.runs.chunks(500) {
            let ph = placeholders(0, chunk.len());
            for (text, part) in [
                (kv_query("run_params", &ph), Part::Params),
                (kv_query("run_tags", &ph), Part::Tags),
                (latest_query(&ph), Part::Metrics),
            ] {
                let mut sql = Sql::new(&text);
                sql.binds = chunk
                    .iter()
                    .map(|r| Bind::Text(r.info.run_id.clone()))
                    .collect();
                out.push((sql, part));
            }
        }
        out
    }

    /// Files one result row of a `part` query under its run.
    fn add(&mut self, part: Part, r: &impl Cols) -> TrackingResult<()> {
        let run_id: String = r.cell("run_id")?;
        let Some(&i) = self.index.get(&run_id) else {
            return Ok(());
        };
        let run = &mut self.runs[i];
        match part {
            Part::Params => run.params.push(KeyValue::new(
                r.cell::<String>("key")?,
                r.cell::<String>("value")?,
            )),
            Part::Tags => run.tags.push(KeyValue::new(
                r.cell::<String>("key")?,
                r.cell::<String>("value")?,
            )),
            Part::Metrics => run.metrics.push(metric_from_row(r, false)?),
        }
        Ok(())
    }
}

fn metric_from_row(r: &impl Cols, extra: bool) -> TrackingResult<Metric> {
    let is_nan: i64 = r.cell("is_nan")?;
    let value: f64 = r.cell("value")?;
    Ok(Metric {
        key: r.cell("key")?,
        value: if is_nan != 0 { f64::NAN } else { value },
        timestamp: r.cell("timestamp")?,
        step: r.cell("step")?,
        model_id: if extra { r.cell("model_id")? } else { None },
        dataset_name: if extra { r.cell("dataset_name")? } else { None },
        dataset_digest: if extra {
            r.cell("dataset_digest")?
        } else {
            None
        },
    })
}

/// Updates status, end time and/or name; returns the new info.
pub async fn update(
    store: &Store,
    run_id: &str,
    status: Option<RunStatus>,
    end_time: Option<i64>,
    run_name: Option<&str>,
) -> TrackingResult<RunInfo> {
    validate::id("run_id", run_id)?;
    let run_name = run_name.filter(|n| !n.is_empty()).map(str::to_string);
    if let Some(name) = &run_name {
        validate::length("run_name", name, validate::MAX_NAME)?;
    }
    // The new info, and the statements that write it.
    let change = move |mut info: RunInfo| {
        info.status = status.unwrap_or(info.status);
        info.end_time = end_time.or(info.end_time);
        let mut sql = Sql::new("");
        let ps = [
            sql.bind(Bind::Text(info.status.as_str().to_string())),
            sql.bind(Bind::OptI64(info.end_time)),
            sql.bind(Bind::Text(info.run_id.clone())),
        ];
        sql.text = format!(
            "UPDATE runs SET status = {}, end_time = {} WHERE run_id = {}",
            ps[0], ps[1], ps[2]
        );
        let mut statements = vec![sql];
        if let Some(name) = &run_name {
            info.run_name = name.clone();
            statements.extend(tag_statements(
                &info.run_id,
                &[KeyValue::new(RUN_NAME_TAG, name.clone())],
            ));
        }
        (info, statements)
    };
    if let Some(lane) = store.db.lane() {
        let run_id = run_id.to_string();
        return lane
            .run(move |c| {
                let info = info_on(c, &run_id)?;
                require_active(&run_id, Some(info.lifecycle))?;
                let (info, statements) = change(info);
                for sql in statements {
                    sql.execute_on(c)
                        .map_err(TrackingError::sqlite("updating run"))?;
                }
                Ok(info)
            })
            .await;
    }
    let info = get_active_info(store, run_id).await?;
    let (_, statements) = change(info);
    let mut tx = store
        .db
        .pool()
        .begin()
        .await
        .map_err(TrackingError::db("updating run"))?;
    execute_all(&mut tx, statements, "updating run").await?;
    tx.commit()
        .await
        .map_err(TrackingError::db("updating run"))?;
    get_info(store, run_id).await
}

/// [`get_info`] on a SQLite lane connection.
fn info_on(c: &rusqlite::Connection, run_id: &str) -> TrackingResult<RunInfo> {
    let mut sql = Sql::new("");
    let r = sql.bind(Bind::Text(run_id.to_string()));
    sql.text = format!("SELECT {INFO_COLUMNS} FROM runs r WHERE r.run_id = {r}");
    sql.fetch_on(c, "reading run", |row| info_from_row(row))?
        .pop()
        .ok_or_else(|| TrackingError::not_found(format!("Run with id={run_id} not found")))
}

/// Soft-deletes or restores a run.
pub async fn set_lifecycle(store: &Store, run_id: &str, to: Lifecycle) -> TrackingResult<()> {
    let info = get_info(store, run_id).await?;
    if to == Lifecycle::Active {
        experiments::get_active(store, info.experiment_id).await?;
    }
    sqlx::query("UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE run_id = $3")
        .bind(to.as_str())
        .bind((to == Lifecycle::Deleted).then(now_ms))
        .bind(run_id)
        .execute(store.db.pool())
        .await
        .map_err(TrackingError::db("deleting run"))?;
    Ok(())
}

/// One `log-batch` worth of data for a run.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The run.
    pub run_id: String,
    /// Metric points.
    pub metrics: Vec<Metric>,
    /// Params.
    pub params: Vec<KeyValue>,
    /// Tags.
    pub tags: Vec<KeyValue>,
}

/// Validates a batch (limits, keys, duplicate params); returns the params
/// with over-long values truncated.
fn check_batch(
    metrics: &[Metric],
    params: &[KeyValue],
    tags: &[KeyValue],
) -> TrackingResult<Vec<KeyValue>> {
    if metrics.len() > validate::MAX_BATCH_METRICS {
        return Err(TrackingError::invalid(format!(
            "A batch logging request can contain at most {} metrics. Got {} metrics. Please split up metrics \
             across multiple requests and try again.",
            validate::MAX_BATCH_METRICS,
            metrics.len()
        )));
    }
    if params.len() > validate::MAX_BATCH_PARAMS {
        return Err(TrackingError::invalid(format!(
            "A batch logging request can contain at most {} params. Got {} params. Please split up params \
             across multiple requests and try again.",
            validate::MAX_BATCH_PARAMS,
            params.len()
        )));
    }
    if tags.len() > validate::MAX_BATCH_TAGS {
        return Err(TrackingError::invalid(format!(
            "A batch logging request can contain at most {} tags. Got {} tags. Please split up tags \
             across multiple requests and try again.",
            validate::MAX_BATCH_TAGS,
            tags.len()
        )));
    }
    for m in metrics {
        validate::key("metric", &m.key)?;
        if m.timestamp < 0 {
            return Err(TrackingError::invalid(format!(
                "Metric '{}' has an invalid timestamp {}: it must be a non-negative integer",
                m.key, m.timestamp
            )));
        }
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for p in params {
        validate::key("param", &p.key)?;
        if let Some(prev) = seen.insert(&p.key, &p.value) {
            if prev != p.value {
                return Err(TrackingError::invalid(format!(
                    "Duplicate parameter keys have been submitted: '{}' with values '{prev}' and '{}'",
                    p.key, p.value
                )));
            }
        }
    }
    for t in tags {
        validate::key("tag", &t.key)?;
    }
    Ok(params
        .iter()
        .map(|p| {
            KeyValue::new(
                p.key.clone(),
                validate::truncate(&p.value, validate::MAX_PARAM_VALUE),
            )
        })
        .collect())
}

/// Rows per multi-row INSERT: 512 rows of 9 binds stay far below SQLite's
/// 32,766 and PostgreSQL's 65,535 bind limits.
const ROWS_PER_INSERT: usize = 512;

/// Splits `n` rows into statement sizes: full chunks of `max`, then the
/// remainder as descending powers of two. So only log2(max) + 1 distinct
/// SQL texts exist per table, and all of them stay in the connection's
/// prepared-statement cache instead of being re-parsed per batch size.
fn chunk_sizes(n: usize, max: usize) -> Vec<usize> {
    let mut out = vec![max; n / max];
    let rest = n % max;
    let mut bit = max.next_power_of_two();
    while bit > 0 {
        if rest & bit != 0 {
            out.push(bit);
        }
        bit >>= 1;
    }
    out
}

/// Inserts metric points of one or more runs, and raises each run's
/// latest value per key, in as few statements as the bind limits allow.
async fn write_metrics(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    items: &[(&str, &[Metric])],
) -> TrackingResult<()> {
    let statements = metric_statements(backend, items, &HashSet::new());
    execute_all(conn, statements, "logging metrics").await
}

/// Runs `statements` in order on `conn` (inside the caller's transaction).
async fn execute_all(
    conn: &mut sqlx::AnyConnection,
    statements: Vec<Sql>,
    context: &'static str,
) -> TrackingResult<()> {
    for sql in statements {
        sql.query()
            .execute(&mut *conn)
            .await
            .map_err(TrackingError::db(context))?;
    }
    Ok(())
}

/// The statements of [`write_metrics`]. The plain points of the
/// `(run, key)` pairs in `appended` are already stored (see
/// [`append_to_chunks`]): only their latest values are written.
fn metric_statements(
    backend: Backend,
    items: &[(&str, &[Metric])],
    appended: &HashSet<(&str, &str)>,
) -> Vec<Sql> {
    let mut out = Vec::new();
    let rows: Vec<(&str, &Metric)> = items
        .iter()
        .flat_map(|(run, ms)| ms.iter().map(move |m| (*run, m)))
        .collect();
    let split = |v: f64| if v.is_nan() { (0.0, 1i64) } else { (v, 0) };
    // Plain points: one chunk per (run, key), in first-seen order.
    let groups = group_in_order(
        rows.iter()
            .filter(|(run, m)| chunks::chunkable(m) && !appended.contains(&(*run, m.key.as_str()))),
        |&&(run, m)| ((run, m.key.as_str()), m),
    );
    out.extend(multi_row_inserts(
        backend,
        "INSERT INTO metric_chunks (run_id, key, points) VALUES ",
        &groups,
        "",
        |sql, ((run_id, key), points)| {
            vec![
                sql.bind(Bind::Text(run_id.to_string())),
                sql.bind(Bind::Text(key.to_string())),
                sql.bind(Bind::Blob(chunks::encode(points.iter().copied()))),
            ]
        },
    ));
    // Points bound to a model or dataset: one row each.
    let bound: Vec<(&str, &Metric)> = rows
        .iter()
        .copied()
        .filter(|(_, m)| !chunks::chunkable(m))
        .collect();
    let opt = |s: &Option<String>| Bind::OptText(s.clone().filter(|s| !s.is_empty()));
    out.extend(multi_row_inserts(
        backend,
        "INSERT INTO run_metrics (run_id, key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest) VALUES ",
        &bound,
        // A retried request repeats points exactly: keep the first copy.
        " ON CONFLICT DO NOTHING",
        |sql, (run_id, m)| {
            let (value, is_nan) = split(m.value);
            vec![
                sql.bind(Bind::Text(run_id.to_string())),
                sql.bind(Bind::Text(m.key.clone())),
                sql.bind(Bind::F64(value)),
                sql.bind(Bind::I64(is_nan)),
                sql.bind(Bind::I64(m.timestamp)),
                sql.bind(Bind::I64(m.step)),
                sql.bind(opt(&m.model_id)),
                sql.bind(opt(&m.dataset_name)),
                sql.bind(opt(&m.dataset_digest)),
            ]
        },
    ));
    // The latest value per (run, key): max by (step, timestamp, value). One
    // row per pair, because PostgreSQL refuses to upsert a row twice in one
    // statement.
    let mut latest: BTreeMap<(&str, &str), &Metric> = BTreeMap::new();
    for &(run, m) in &rows {
        let better = match latest.get(&(run, m.key.as_str())) {
            None => true,
            Some(cur) => {
                (m.step, m.timestamp, nan_low(m.value))
                    > (cur.step, cur.timestamp, nan_low(cur.value))
            }
        };
        if better {
            latest.insert((run, &m.key), m);
        }
    }
    let latest: Vec<((&str, &str), &Metric)> = latest.into_iter().collect();
    out.extend(multi_row_inserts(
        backend,
        "INSERT INTO latest_metrics (run_id, key, value, is_nan, timestamp, step) VALUES ",
        &latest,
        " ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, is_nan = excluded.is_nan,
             timestamp = excluded.timestamp, step = excluded.step
         WHERE excluded.step > latest_metrics.step
            OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp)
            OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp
                AND excluded.value > latest_metrics.value)",
        |sql, ((run_id, key), m)| {
            let (value, is_nan) = split(m.value);
            vec![
                sql.bind(Bind::Text(run_id.to_string())),
                sql.bind(Bind::Text(key.to_string())),
                sql.bind(Bind::F64(value)),
                sql.bind(Bind::I64(is_nan)),
                sql.bind(Bind::I64(m.timestamp)),
                sql.bind(Bind::I64(m.step)),
            ]
        },
    ));
    out
}

/// `items` grouped by the key `split` gives each, groups in the order their
/// keys first appear.
fn group_in_order<I, K, V>(items: I, split: impl Fn(&I::Item) -> (K, V)) -> Vec<(K, Vec<V>)>
where
    I: Iterator,
    K: std::hash::Hash + Eq + Copy,
{
    let mut groups: Vec<(K, Vec<V>)> = Vec::new();
    let mut slot: HashMap<K, usize> = HashMap::new();
    for item in items {
        let (k, v) = split(&item);
        let i = *slot.entry(k).or_insert_with(|| {
            groups.push((k, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(v);
    }
    groups
}

/// `{head}(…), (…) {tail}` statements for `rows`, in [`chunk_sizes`]
/// pieces; `binds` binds one row's values and returns their placeholders.
fn multi_row_inserts<T>(
    backend: Backend,
    head: &str,
    rows: &[T],
    tail: &str,
    mut binds: impl FnMut(&mut Sql, &T) -> Vec<String>,
) -> Vec<Sql> {
    let mut out = Vec::new();
    let mut start = 0;
    for n in chunk_sizes(rows.len(), ROWS_PER_INSERT) {
        let mut sql = Sql::in_order(backend, head);
        for (i, row) in rows[start..start + n].iter().enumerate() {
            let ps = binds(&mut sql, row);
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.push(&ps.join(", "));
            sql.push(")");
        }
        sql.push(tail);
        out.push(sql);
        start += n;
    }
    out
}

/// Logs params; a param already logged with another value is refused.
async fn write_params(
    conn: &mut sqlx::AnyConnection,
    run_id: &str,
    params: &[KeyValue],
) -> TrackingResult<()> {
    for chunk in params.chunks(PARAMS_PER_INSERT) {
        let (insert, check) = param_statements(run_id, chunk);
        insert
            .query()
            .execute(&mut *conn)
            .await
            .map_err(TrackingError::db("logging params"))?;
        let mut stored = Vec::new();
        for row in check
            .query()
            .fetch_all(&mut *conn)
            .await
            .map_err(TrackingError::db("logging params"))?
        {
            stored.push((col(&row, "key")?, col(&row, "value")?));
        }
        check_params(run_id, chunk, stored)?;
    }
    Ok(())
}

const PARAMS_PER_INSERT: usize = 100;

/// For one chunk of params: the insert (existing keys kept) and the query
/// of the stored `(key, value)`s, for [`check_params`].
fn param_statements(run_id: &str, chunk: &[KeyValue]) -> (Sql, Sql) {
    let mut insert = Sql::new("INSERT INTO run_params (run_id, key, value) VALUES ");
    let mut rows = Vec::new();
    for p in chunk {
        let a = insert.bind(Bind::Text(run_id.to_string()));
        let b = insert.bind(Bind::Text(p.key.clone()));
        let c = insert.bind(Bind::Text(p.value.clone()));
        rows.push(format!("({a}, {b}, {c})"));
    }
    insert.push(&rows.join(", "));
    insert.push(" ON CONFLICT (run_id, key) DO NOTHING");
    let mut check = Sql::new("");
    let r = check.bind(Bind::Text(run_id.to_string()));
    let keys: Vec<String> = chunk
        .iter()
        .map(|p| check.bind(Bind::Text(p.key.clone())))
        .collect();
    check.text = format!(
        "SELECT key, value FROM run_params WHERE run_id = {r} AND key IN ({})",
        keys.join(", ")
    );
    (insert, check)
}

/// Refuses a param whose stored value differs from the one logged now.
fn check_params(
    run_id: &str,
    chunk: &[KeyValue],
    stored: Vec<(String, String)>,
) -> TrackingResult<()> {
    for (key, stored) in stored {
        let wanted = chunk
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
            .unwrap_or_default();
        if stored != wanted {
            return Err(TrackingError::invalid(format!(
                "Changing param values is not allowed. Param with key='{key}' was already logged with \
                 value='{stored}' for run ID='{run_id}'. Attempted logging new value '{wanted}'."
            )));
        }
    }
    Ok(())
}

/// Sets tags (the last value of a key wins); `mlflow.runName` renames the run.
async fn write_tags(
    conn: &mut sqlx::AnyConnection,
    run_id: &str,
    tags: &[KeyValue],
) -> TrackingResult<()> {
    execute_all(conn, tag_statements(run_id, tags), "setting tags").await
}

/// The statements of [`write_tags`].
fn tag_statements(run_id: &str, tags: &[KeyValue]) -> Vec<Sql> {
    let mut out = Vec::new();
    for t in tags {
        let value = validate::truncate(&t.value, validate::MAX_TAG_VALUE);
        let mut sql = Sql::new("");
        let (r, k, v) = (
            sql.bind(Bind::Text(run_id.to_string())),
            sql.bind(Bind::Text(t.key.clone())),
            sql.bind(Bind::Text(value.clone())),
        );
        sql.text = format!(
            "INSERT INTO run_tags (run_id, key, value) VALUES ({r}, {k}, {v})
             ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value"
        );
        out.push(sql);
        if t.key == RUN_NAME_TAG {
            let mut sql = Sql::new("");
            let (v, r) = (
                sql.bind(Bind::Text(value)),
                sql.bind(Bind::Text(run_id.to_string())),
            );
            sql.text = format!("UPDATE runs SET run_name = {v} WHERE run_id = {r}");
            out.push(sql);
        }
    }
    out
}

/// Writes a validated batch on `conn` (inside the caller's transaction).
async fn apply_batch(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    run_id: &str,
    metrics: &[Metric],
    params: &[KeyValue],
    tags: &[KeyValue],
) -> TrackingResult<()> {
    // Writes come before reads, so SQLite takes its write lock up front.
    write_metrics(conn, backend, &[(run_id, metrics)]).await?;
    write_params(conn, run_id, params).await?;
    write_tags(conn, run_id, tags).await
}

/// [`apply_batch`] on the SQLite lane's connection.
fn apply_batch_on(
    c: &rusqlite::Connection,
    run_id: &str,
    metrics: &[Metric],
    params: &[KeyValue],
    tags: &[KeyValue],
) -> TrackingResult<()> {
    let exec = |sql: &Sql, context| sql.execute_on(c).map_err(TrackingError::sqlite(context));
    let appended = append_to_chunks(c, run_id, metrics)?;
    for sql in metric_statements(Backend::Sqlite, &[(run_id, metrics)], &appended) {
        exec(&sql, "logging metrics")?;
    }
    for chunk in params.chunks(PARAMS_PER_INSERT) {
        let (insert, check) = param_statements(run_id, chunk);
        exec(&insert, "logging params")?;
        let stored = check.fetch_on(c, "logging params", |r| {
            Ok((r.cell("key")?, r.cell("value")?))
        })?;
        check_params(run_id, chunk, stored)?;
    }
    for sql in tag_statements(run_id, tags) {
        exec(&sql, "setting tags")?;
    }
    Ok(())
}

/// Most points of one key, and most keys, that a call may append to the
/// keys' last chunks instead of starting chunks of its own (a call with
/// many keys or points writes them in a few multi-row inserts instead).
const APPEND_MAX_POINTS: usize = 16;
const APPEND_MAX_KEYS: usize = 16;

/// Size up to which a chunk takes appended points (42 points): small
/// enough that a chunk stays on its B-tree page, next to its neighbours.
const APPEND_CHUNK_BYTES: usize = 1024;

/// Appends the plain points of the keys that this call logs only a few of
/// to each key's last chunk, while it is small; returns the `(run, key)`
/// pairs whose points were stored so. SQLite lane only.
///
/// Why: the mlflow client's `log_metric` sends one point per call. As a
/// chunk each, every point was a row plus an index entry (~150 bytes of
/// run id, key and headers for 24 bytes of point) and two B-tree pages
/// written to the WAL per call; appended, it is 24 bytes in a page that
/// the call writes anyway, and a history read decodes one chunk per ~42
/// points instead of one per point. The chunk layout does not change: a
/// chunk is its layout byte and then points, however many calls wrote them.
/// (The bytes are joined here, not with SQL's `||`, which works on text
/// and would lose a byte of an odd-length blob in a UTF-16 database.)
fn append_to_chunks<'a>(
    c: &rusqlite::Connection,
    run_id: &'a str,
    metrics: &'a [Metric],
) -> TrackingResult<HashSet<(&'a str, &'a str)>> {
    use rusqlite::OptionalExtension;
    let keys = group_in_order(metrics.iter().filter(|m| chunks::chunkable(m)), |m| {
        (m.key.as_str(), *m)
    });
    let mut appended = HashSet::new();
    if keys.len() > APPEND_MAX_KEYS {
        return Ok(appended);
    }
    let err = TrackingError::sqlite;
    for (key, points) in keys {
        if points.len() > APPEND_MAX_POINTS {
            continue;
        }
        let last: Option<(i64, Vec<u8>)> = c
            .prepare_cached(
                "SELECT rowid, points FROM metric_chunks WHERE run_id = ?1 AND key = ?2
                 ORDER BY rowid DESC LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(rusqlite::params![run_id, key], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(err("logging metrics"))?;
        let Some((rowid, mut blob)) = last else {
            continue;
        };
        let added = chunks::encode_points(points.iter().copied());
        if blob.len() + added.len() > APPEND_CHUNK_BYTES {
            continue;
        }
        blob.extend_from_slice(&added);
        c.prepare_cached("UPDATE metric_chunks SET points = ?1 WHERE rowid = ?2")
            .and_then(|mut st| st.execute(rusqlite::params![blob, rowid]))
            .map_err(err("logging metrics"))?;
        appended.insert((run_id, key));
    }
    Ok(appended)
}

/// A run's lifecycle, read on the SQLite lane's connection.
fn lifecycle_on(c: &rusqlite::Connection, run_id: &str) -> TrackingResult<Option<Lifecycle>> {
    let mut sql = Sql::new("");
    let r = sql.bind(Bind::Text(run_id.to_string()));
    sql.text = format!("SELECT lifecycle_stage FROM runs WHERE run_id = {r}");
    let rows = sql.fetch_on(c, "reading run", |row| {
        row.cell::<String>("lifecycle_stage")
    })?;
    Ok(rows.first().map(|s| Lifecycle::parse(s)))
}

/// Writes batches that cannot be refused (no params: metrics and tags only)
/// together: all their metric points go into shared multi-row statements.
async fn apply_infallible(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    batches: &[&Batch],
) -> TrackingResult<()> {
    let items: Vec<(&str, &[Metric])> = batches
        .iter()
        .filter(|b| !b.metrics.is_empty())
        .map(|b| (b.run_id.as_str(), b.metrics.as_slice()))
        .collect();
    write_metrics(conn, backend, &items).await?;
    for b in batches {
        write_tags(conn, &b.run_id, &b.tags).await?;
    }
    Ok(())
}

/// Logs metrics, params and tags to a run in one transaction: the
/// primitive under every `log-*` call.
///
/// Exact duplicate metric points (a retried request) are ignored. A param
/// may be re-logged with the same value; a different value is refused and
/// nothing of the batch is written.
pub async fn log_batch(
    store: &Store,
    run_id: &str,
    metrics: &[Metric],
    params: &[KeyValue],
    tags: &[KeyValue],
) -> TrackingResult<()> {
    let params = check_batch(metrics, params, tags)?;
    if let Some(lane) = store.db.lane() {
        validate::id("run_id", run_id)?;
        let (run_id, metrics, tags) = (run_id.to_string(), metrics.to_vec(), tags.to_vec());
        return lane
            .run(move |c| {
                require_active(&run_id, lifecycle_on(c, &run_id)?)?;
                apply_batch_on(c, &run_id, &metrics, &params, &tags)
            })
            .await;
    }
    get_active_info(store, run_id).await?;
    let mut tx = store
        .db
        .pool()
        .begin()
        .await
        .map_err(TrackingError::db("logging to run"))?;
    apply_batch(&mut tx, store.db.backend(), run_id, metrics, &params, tags).await?;
    tx.commit()
        .await
        .map_err(TrackingError::db("logging to run"))
}

/// The lifecycle of each of `run_ids` that exists, in one query per 500 ids.
async fn lifecycles(store: &Store, run_ids: &[&str]) -> TrackingResult<HashMap<String, Lifecycle>> {
    let mut out = HashMap::new();
    for chunk in run_ids.chunks(500) {
        let text = format!(
            "SELECT run_id, lifecycle_stage FROM runs WHERE run_id IN ({})",
            placeholders(0, chunk.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(text));
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q
            .fetch_all(store.db.pool())
            .await
            .map_err(TrackingError::db("reading runs"))?
        {
            out.insert(
                col::<String>(&r, "run_id")?,
                Lifecycle::parse(&col::<String>(&r, "lifecycle_stage")?),
            );
        }
    }
    Ok(out)
}

/// Applies many batches in one transaction (group commit: one fsync for
/// all of them). Batches with params (which a changed value refuses) each
/// run under a savepoint, so one bad batch fails alone; the others are
/// written together. Input order is kept. Results are in input order.
pub async fn log_batches(store: &Store, batches: &[Batch]) -> Vec<TrackingResult<()>> {
    let mut results: Vec<TrackingResult<()>> = Vec::with_capacity(batches.len());
    let mut checked: Vec<Option<Vec<KeyValue>>> = Vec::with_capacity(batches.len());
    for b in batches {
        match validate::id("run_id", &b.run_id)
            .and_then(|()| check_batch(&b.metrics, &b.params, &b.tags))
        {
            Ok(p) => {
                results.push(Ok(()));
                checked.push(Some(p));
            }
            Err(e) => {
                results.push(Err(e));
                checked.push(None);
            }
        }
    }
    let mut ids: Vec<&str> = batches
        .iter()
        .zip(&checked)
        .filter(|(_, c)| c.is_some())
        .map(|(b, _)| b.run_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return results;
    }
    let backend = store.db.backend();
    let outcome: TrackingResult<()> = async {
        let states = lifecycles(store, &ids).await?;
        for (i, b) in batches.iter().enumerate() {
            if checked[i].is_some() {
                if let Err(e) = require_active(&b.run_id, states.get(&b.run_id).copied()) {
                    results[i] = Err(e);
                    checked[i] = None;
                }
            }
        }
        let mut tx = store
            .db
            .pool()
            .begin()
            .await
            .map_err(TrackingError::db("logging to runs"))?;
        let mut group: Vec<&Batch> = Vec::new();
        for (i, b) in batches.iter().enumerate() {
            let Some(params) = &checked[i] else { continue };
            if params.is_empty() {
                group.push(b);
                continue;
            }
            apply_infallible(&mut tx, backend, &group).await?;
            group.clear();
            let mut sp = sqlx::Acquire::begin(&mut *tx)
                .await
                .map_err(TrackingError::db("logging to runs"))?;
            match apply_batch(&mut sp, backend, &b.run_id, &b.metrics, params, &b.tags).await {
                Ok(()) => sp
                    .commit()
                    .await
                    .map_err(TrackingError::db("logging to runs"))?,
                Err(e) => {
                    sp.rollback()
                        .await
                        .map_err(TrackingError::db("logging to runs"))?;
                    results[i] = Err(e);
                }
            }
        }
        apply_infallible(&mut tx, backend, &group).await?;
        tx.commit()
            .await
            .map_err(TrackingError::db("logging to runs"))
    }
    .await;
    if outcome.is_err() {
        // Nothing was committed: fall back to one transaction per batch.
        for (i, b) in batches.iter().enumerate() {
            if checked[i].is_some() && results[i].is_ok() {
                results[i] = log_batch(store, &b.run_id, &b.metrics, &b.params, &b.tags).await;
            }
        }
    }
    results
}

fn nan_low(v: f64) -> f64 {
    if v.is_nan() {
        f64::NEG_INFINITY
    } else {
        v
    }
}

/// Deletes a run tag.
pub async fn delete_tag(store: &Store, run_id: &str, key: &str) -> TrackingResult<()> {
    get_active_info(store, run_id).await?;
    let n = sqlx::query("DELETE FROM run_tags WHERE run_id = $1 AND key = $2")
        .bind(run_id)
        .bind(key)
        .execute(store.db.pool())
        .await
        .map_err(TrackingError::db("deleting tag"))?
        .rows_affected();
    if n == 0 {
        return Err(TrackingError::not_found(format!(
            "No tag with name: {key} in run with id {run_id}"
        )));
    }
    Ok(())
}

/// A page of a metric's history, ordered by (step, timestamp).
pub async fn metric_history(
    store: &Store,
    run_id: &str,
    key: &str,
    max_results: Option<i64>,
    page_token: Option<&str>,
) -> TrackingResult<Page<Metric>> {
    get_info(store, run_id).await?;
    // As MLflow's server: no `max_results`, the whole history (the client
    // sends 25,000 and follows the token; other clients may not).
    if let Some(n) = max_results.filter(|&n| n <= 0) {
        return Err(TrackingError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be a positive integer."
        )));
    }
    let offset = decode_token(page_token)?;
    // Points live in two places (see `chunks`), read in one statement (one
    // snapshot): rows first, so that a row's copy of a duplicated point is
    // the one kept.
    let rows = sqlx::query(
        "SELECT 0 AS part, key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest,
                NULL AS points
         FROM run_metrics WHERE run_id = $1 AND key = $2
         UNION ALL
         SELECT 1, key, 0, 0, 0, 0, NULL, NULL, NULL, points
         FROM metric_chunks WHERE run_id = $1 AND key = $2
         ORDER BY part",
    )
    .bind(run_id)
    .bind(key)
    .fetch_all(store.db.pool())
    .await
    .map_err(TrackingError::db("reading metric history"))?;
    let mut history = chunks::History::new(run_id, key);
    for r in &rows {
        match col::<Option<Vec<u8>>>(r, "points")? {
            None => history.add_row(metric_from_row(r, true)?)?,
            Some(blob) => history.add_chunk(&blob)?,
        }
    }
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let Some(limit) = max_results else {
        return Ok(Page {
            items: history.page(skip, usize::MAX),
            next_page_token: None,
        });
    };
    let take = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    Ok(paginate(history.page(skip, take), offset, limit))
}

/// Records dataset inputs and model inputs of a run.
pub async fn log_inputs(
    store: &Store,
    run_id: &str,
    datasets: &[DatasetInput],
    models: &[String],
) -> TrackingResult<()> {
    for d in datasets {
        validate::length("dataset name", &d.name, 500)?;
        validate::length("dataset digest", &d.digest, 36)?;
        validate::length("dataset source", &d.source, 65_535)?;
        validate::length("dataset schema", d.schema.as_deref().unwrap_or(""), 1 << 20)?;
        validate::length(
            "dataset profile",
            d.profile.as_deref().unwrap_or(""),
            16 << 20,
        )?;
        for t in &d.tags {
            validate::length("input tag key", &t.key, 255)?;
            validate::length("input tag value", &t.value, 500)?;
        }
    }
    for m in models {
        validate::id("model_id", m)?;
    }
    get_active_info(store, run_id).await?;
    let mut tx = store
        .db
        .pool()
        .begin()
        .await
        .map_err(TrackingError::db("logging inputs"))?;
    for d in datasets {
        let context = d
            .tags
            .iter()
            .find(|t| t.key == "mlflow.data.context")
            .map(|t| t.value.clone());
        let tags: Vec<(&str, &str)> = d
            .tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        sqlx::query(
            "INSERT INTO run_inputs (run_id, dataset_name, dataset_digest, source_type, source, schema_json, profile, context, tags_json)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (run_id, dataset_name, dataset_digest) DO UPDATE SET context = excluded.context, tags_json = excluded.tags_json",
        )
        .bind(run_id)
        .bind(&d.name)
        .bind(&d.digest)
        .bind(&d.source_type)
        .bind(&d.source)
        .bind(d.schema.clone())
        .bind(d.profile.clone())
        .bind(context)
        .bind(serde_json::to_string(&tags).unwrap_or_default())
        .execute(&mut *tx)
        .await
        .map_err(TrackingError::db("logging inputs"))?;
    }
    for m in models {
        sqlx::query(
            "INSERT INTO run_model_io (run_id, model_id, direction, step) VALUES ($1, $2, 'input', 0)
             ON CONFLICT (run_id, model_id, direction) DO NOTHING",
        )
        .bind(run_id)
        .bind(m)
        .execute(&mut *tx)
        .await
        .map_err(TrackingError::db("logging inputs"))?;
    }
    tx.commit()
        .await
        .map_err(TrackingError::db("logging inputs"))
}

/// Records the logged models a run produced (`runs/outputs`).
pub async fn log_outputs(
    store: &Store,
    run_id: &str,
    models: &[(String, i64)],
) -> TrackingResult<()> {
    for (m, _) in models {
        validate::id("model_id", m)?;
    }
    get_active_info(store, run_id).await?;
    let mut tx = store
        .db
        .pool()
        .begin()
        .await
        .map_err(TrackingError::db("logging outputs"))?;
    for (m, step) in models {
        sqlx::query(
            "INSERT INTO run_model_io (run_id, model_id, direction, step) VALUES ($1, $2, 'output', $3)
             ON CONFLICT (run_id, model_id, direction) DO UPDATE SET step = excluded.step",
        )
        .bind(run_id)
        .bind(m)
        .bind(*step)
        .execute(&mut *tx)
        .await
        .map_err(TrackingError::db("logging outputs"))?;
    }
    tx.commit()
        .await
        .map_err(TrackingError::db("logging outputs"))
}

const TARGET: Target = Target {
    what: "runs",
    attributes: &[
        ("run_id", "r.run_id", Kind::Text),
        ("run_name", "r.run_name", Kind::Text),
        ("run name", "r.run_name", Kind::Text),
        ("status", "r.status", Kind::Text),
        ("user_id", "r.user_id", Kind::Text),
        (
            "artifact_uri",
            "('mlflow-artifacts:/' || CAST(r.experiment_id AS TEXT) || '/' || r.run_id || '/artifacts')",
            Kind::Text,
        ),
        ("start_time", "r.start_time", Kind::Number),
        ("end_time", "r.end_time", Kind::Number),
        ("created", "r.start_time", Kind::Number),
    ],
    tags: Some(("run_tags", "run_id", "r.run_id")),
    params: Some(("run_params", "run_id", "r.run_id")),
    metrics: Some(("latest_metrics", "run_id", "r.run_id")),
    datasets: Some(("run_inputs", "run_id", "r.run_id")),
    ne_matches_missing: false,
};

/// The most runs one search page may return.
pub const MAX_SEARCH_RESULTS: i64 = 50_000;

/// Searches runs in `experiment_ids` with MLflow's filter and order-by grammar.
pub async fn search(
    store: &Store,
    experiment_ids: &[i64],
    filter: &str,
    view: ViewType,
    max_results: i64,
    order_by: &[String],
    page_token: Option<&str>,
) -> TrackingResult<Page<Run>> {
    if !(1..=MAX_SEARCH_RESULTS).contains(&max_results) {
        return Err(TrackingError::invalid(format!(
            "Invalid value {max_results} for parameter 'max_results' supplied. It must be at most {MAX_SEARCH_RESULTS}"
        )));
    }
    let q = search::compile_page(
        store.db.backend(),
        &TARGET,
        &format!("SELECT {INFO_COLUMNS} FROM runs r"),
        |sql| {
            let exps: Vec<String> = experiment_ids
                .iter()
                .map(|e| sql.bind(Bind::I64(*e)))
                .collect();
            format!(
                "r.experiment_id IN ({}) AND {}",
                exps.join(", "),
                view.sql("r.lifecycle_stage")
            )
        },
        filter,
        order_by,
        // After an explicit start_time term this one is a no-op.
        "r.start_time DESC, r.run_id ASC",
        max_results,
        page_token,
    )?;
    if experiment_ids.is_empty() {
        return Ok(Page {
            items: Vec::new(),
            next_page_token: None,
        });
    }
    if let Some(lane) = store.db.lane() {
        return lane.read_scan(|c| {
            let page = q.fetch_on(c, "searching runs", |r| info_from_row(r))?;
            Ok(Page {
                items: hydrate_on(c, page.items)?,
                next_page_token: page.next_page_token,
            })
        });
    }
    let page = q.fetch(store, "searching runs", info_from_row).await?;
    Ok(Page {
        items: hydrate(store, page.items).await?,
        next_page_token: page.next_page_token,
    })
}
