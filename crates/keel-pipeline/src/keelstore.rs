//! The pipeline traits on keel's own stores: outs in the project's
//! content-addressed object store (`keel_store::objects`), the run-cache and
//! lineage in the metadata DB (component `pipeline` of
//! `keel_store::migrations`, SQLite or PostgreSQL).
//!
//! Directory outs are stored as one object per file plus the directory's
//! manifest ([`crate::hash::manifest_bytes`]) as an object of its own, so a
//! directory's hash is the same here as in [`crate::store::FileStore`].
//! The run and its job records are written in one transaction when the run
//! finishes, which keeps a fully cached 100-job rerun at one commit; a run
//! whose scripts execute gets its `running` row before the first script
//! starts, so an interrupted run leaves a trace.
//!
//! With a tracking server set ([`KeelStore::set_tracking_server`], started
//! on first use: a fully cached run never starts it), pipeline runs also
//! show up as MLflow experiments and runs: one experiment per pipeline file
//! (`pipeline:<file>`), one tracking run per executed job (named after the
//! job, tagged `keel.pipeline_run`, `keel.job`,
//! `mlflow.source.git.commit`, with its `.keel` params and matrix
//! variables as params). The job gets `MLFLOW_TRACKING_URI` and
//! `MLFLOW_RUN_ID`, so `mlflow.log_metric` in its script logs into its own
//! run; its `.keel` metrics are logged when it ends, and the run is
//! terminated FINISHED, FAILED or KILLED. Cached jobs do not run and get no
//! tracking run (the run that produced the cached result has it).

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::Mutex;

use keel_core::ObjectHash;
use keel_store::objects::LinkMode;
use keel_store::tracking::{self, experiments, runs, KeyValue, Metric, TrackingError};
use keel_store::{Overrides, Store};
use sqlx::Row;

use crate::error::{Error, Result};
use crate::hash::{self, Kind, PathHash};
use crate::store::{
    CacheEntry, JobRecord, OutputStore, PipelineRecord, RunCache, RunHistory, RunRecorder,
};

/// keel's stores behind the pipeline traits.
pub struct KeelStore {
    store: Store,
    rt: tokio::runtime::Runtime,
    tracking: Mutex<Tracking>,
    /// Run-cache entries read ahead by [`RunCache::prefetch`]: cache key →
    /// (job, run id, outputs JSON, created at). One query for a whole run
    /// instead of one per job.
    prefetched: Mutex<HashMap<String, (String, String, String, i64)>>,
    /// Runs begun whose `pipeline_runs` row is not written yet, by run id.
    /// Held (and the row written) by the first job that executes a script.
    pending: Mutex<HashMap<String, PipelineRecord>>,
}

/// Starts a tracking server on this store and returns its base URI
/// (`http://host:port`). Called at most once, when the first job executes.
pub type TrackingStarter = Box<dyn FnOnce(&KeelStore) -> Result<String> + Send>;

/// MLflow tracking state: the server (to start, started or failed), and per
/// pipeline run its experiment and the tracking run of each job that
/// started.
#[derive(Default)]
struct Tracking {
    starter: Option<TrackingStarter>,
    uri: Option<String>,
    /// Why the server could not start (every later job fails with it too).
    failed: Option<String>,
    /// Pipeline run id → (pipeline file, git commit), until its experiment
    /// is needed.
    files: HashMap<String, (String, Option<String>)>,
    /// Pipeline run id → (experiment id, git commit).
    runs: HashMap<String, (i64, Option<String>)>,
    /// (pipeline run id, job) → tracking run id.
    jobs: HashMap<(String, String), String>,
}

// Takes the error by value to serve as `.map_err(tracking_err)`.
#[allow(clippy::needless_pass_by_value)]
fn tracking_err(e: TrackingError) -> Error {
    Error::Store(format!("tracking: {e}"))
}

/// A param value as MLflow shows it: strings bare, the rest as JSON.
fn param_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The tracking run status for a job's final status.
fn run_status(job_status: &str) -> runs::RunStatus {
    match job_status {
        "success" => runs::RunStatus::Finished,
        "canceled" => runs::RunStatus::Killed,
        _ => runs::RunStatus::Failed,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The experiment named `name`, created (or restored) if need be.
async fn experiment_for(store: &Store, name: &str) -> std::result::Result<i64, TrackingError> {
    for _ in 0..3 {
        match experiments::get_by_name(store, name).await {
            Ok(e) => {
                if e.lifecycle != tracking::Lifecycle::Active {
                    experiments::set_lifecycle(store, e.experiment_id, tracking::Lifecycle::Active)
                        .await?;
                }
                return Ok(e.experiment_id);
            }
            Err(TrackingError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        match experiments::create(
            store,
            name,
            None,
            &[KeyValue::new("keel.source", "pipeline")],
        )
        .await
        {
            Ok(id) => return Ok(id),
            // Another keel created it meanwhile: read it again.
            Err(TrackingError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    experiments::get_by_name(store, name)
        .await
        .map(|e| e.experiment_id)
}

fn db_err(what: &str) -> impl Fn(sqlx::Error) -> Error + '_ {
    move |e| Error::Store(format!("{what}: {e}"))
}

// Takes the error by value to serve as `.map_err(store_err)`.
#[allow(clippy::needless_pass_by_value)]
fn store_err(e: keel_store::StoreError) -> Error {
    Error::Store(e.to_string())
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Store(e.to_string()))
}

/// A value bound into a multi-row INSERT.
enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(Option<i64>),
    Real(f64),
}

/// `INSERT INTO {table} VALUES (…), (…){tail}` for `rows` (all of one
/// width), in chunks of a few hundred binds.
async fn insert_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    tail: &str,
    rows: Vec<Vec<Arg>>,
) -> std::result::Result<(), sqlx::Error> {
    // SQLite looks bound parameters up by a linear scan, so a statement
    // with n binds costs O(n²): a few hundred per statement is the sweet
    // spot.
    const MAX_BINDS: usize = 240;
    let Some(width) = rows.first().map(Vec::len) else {
        return Ok(());
    };
    let per_chunk = (MAX_BINDS / width).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Arg>> = rows.by_ref().take(per_chunk).collect();
        let mut sql = format!("INSERT INTO {table} VALUES ");
        let mut n = 0;
        for (i, _) in chunk.iter().enumerate() {
            sql.push_str(if i == 0 { "(" } else { ", (" });
            for c in 0..width {
                n += 1;
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${n}"));
            }
            sql.push(')');
        }
        sql.push_str(tail);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for arg in chunk.into_iter().flatten() {
            q = match arg {
                Arg::Text(v) => q.bind(v),
                Arg::OptText(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
                Arg::Real(v) => q.bind(v),
            };
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

fn kind_str(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Dir => "dir",
    }
}

impl KeelStore {
    /// Opens the keel project containing `dir` (its DB migrated).
    pub fn open(dir: &Path, overrides: &Overrides) -> Result<KeelStore> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Error::io(dir, e))?;
        let store = rt
            .block_on(Store::open(dir, overrides))
            .map_err(store_err)?;
        Ok(KeelStore {
            store,
            rt,
            tracking: Mutex::new(Tracking::default()),
            prefetched: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// The underlying store (e.g. to serve the tracking API on it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `f` to completion on this store's runtime; tasks it spawns
    /// (a server) keep running on the runtime's worker afterwards.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Records executed jobs as MLflow runs too, and points them at the
    /// tracking server that `start` starts (on this same store) when the
    /// first job executes a script. A run whose jobs are all cached, skipped
    /// or manual never starts it.
    pub fn set_tracking_server(&self, start: TrackingStarter) {
        if let Ok(mut t) = self.tracking.lock() {
            t.starter = Some(start);
        }
    }

    /// The tracking server's URI and the run's experiment, starting the
    /// server and creating the experiment on first use; `None` without a
    /// tracking server. Jobs starting at once wait for one another here.
    fn tracking_for(&self, run_id: &str) -> Result<Option<(String, i64, Option<String>)>> {
        let mut t = self
            .tracking
            .lock()
            .map_err(|_| Error::Store("tracking state poisoned by a panic".into()))?;
        if let Some(e) = &t.failed {
            return Err(Error::Store(e.clone()));
        }
        if t.uri.is_none() {
            let Some(start) = t.starter.take() else {
                return Ok(None);
            };
            match start(self) {
                Ok(uri) => t.uri = Some(uri),
                Err(e) => {
                    let msg = format!("starting the tracking API for the pipeline's jobs: {e}");
                    t.failed = Some(msg.clone());
                    return Err(Error::Store(msg));
                }
            }
        }
        let uri = t.uri.clone().unwrap_or_default();
        if let Some((id, commit)) = t.runs.get(run_id) {
            return Ok(Some((uri, *id, commit.clone())));
        }
        let Some((file, commit)) = t.files.get(run_id).cloned() else {
            return Ok(None);
        };
        let id = self
            .rt
            .block_on(experiment_for(&self.store, &format!("pipeline:{file}")))
            .map_err(tracking_err)?;
        t.runs.insert(run_id.to_string(), (id, commit.clone()));
        Ok(Some((uri, id, commit)))
    }

    /// Writes the `running` row of a run begun but not yet recorded.
    fn record_run_start(&self, run_id: &str) -> Result<()> {
        let mut pending = self
            .pending
            .lock()
            .map_err(|_| Error::Store("run state poisoned by a panic".into()))?;
        // The lock is held while writing: a second job starting at once
        // waits, then finds the row written.
        let Some(run) = pending.get(run_id) else {
            return Ok(());
        };
        let pool = self.store.db.pool();
        self.rt
            .block_on(
                sqlx::query(
                    "INSERT INTO pipeline_runs (run_id, file, started_at, finished_at, git_commit,
                     git_branch, git_dirty, status, variables)
                     VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $8)",
                )
                .bind(run.run_id.clone())
                .bind(run.file.clone())
                .bind(run.started_at_ms as i64)
                .bind(run.git_commit.clone())
                .bind(run.git_branch.clone())
                .bind(i64::from(run.git_dirty))
                .bind(run.status.clone())
                .bind(json(&run.variables)?)
                .execute(pool),
            )
            .map_err(db_err("recording the pipeline run"))?;
        pending.remove(run_id);
        Ok(())
    }

    /// Logs a finished job's metrics and ends its tracking run, if it has one.
    fn end_tracking_run(&self, run_id: &str, job: &JobRecord) -> Result<()> {
        let Some(tracking_run) = self
            .tracking
            .lock()
            .ok()
            .and_then(|mut t| t.jobs.remove(&(run_id.to_string(), job.name.clone())))
        else {
            return Ok(());
        };
        let now = now_ms();
        let metrics: Vec<Metric> = job
            .metrics
            .iter()
            .map(|(k, v)| Metric::summary(k.as_str(), *v, now))
            .collect();
        self.rt
            .block_on(async {
                // The run ends even when a metric is refused (a key MLflow
                // does not accept): that error is reported after.
                let mut logged = Ok(());
                for chunk in metrics.chunks(500) {
                    logged = logged
                        .and(runs::log_batch(&self.store, &tracking_run, chunk, &[], &[]).await);
                }
                runs::update(
                    &self.store,
                    &tracking_run,
                    Some(run_status(&job.status)),
                    Some(now),
                    None,
                )
                .await?;
                logged
            })
            .map_err(tracking_err)
    }

    /// The project root.
    pub fn root(&self) -> &Path {
        self.store.project.root()
    }

    fn put(&self, path: &Path) -> Result<ObjectHash> {
        let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let (h, _) = self
            .store
            .objects
            .put_file(path, &meta)
            .map_err(store_err)?;
        Ok(h)
    }
}

impl OutputStore for KeelStore {
    fn save(&self, path: &Path) -> Result<PathHash> {
        let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !meta.is_dir() {
            return Ok(PathHash {
                kind: Kind::File,
                hash: self.put(path)?,
            });
        }
        let m = hash::manifest(path).map_err(|e| Error::io(path, e))?;
        for e in &m {
            let h = self.put(&path.join(&e.path))?;
            if h != e.hash {
                return Err(Error::Store(format!(
                    "{} changed while it was being saved",
                    path.join(&e.path).display()
                )));
            }
        }
        let (h, _) = self
            .store
            .objects
            .put_bytes(&hash::manifest_bytes(&m))
            .map_err(store_err)?;
        Ok(PathHash {
            kind: Kind::Dir,
            hash: h,
        })
    }

    fn restore(&self, out: &PathHash, dest: &Path) -> Result<()> {
        let objects = &self.store.objects;
        let clear = |p: &Path| -> Result<()> {
            if p.is_dir() {
                fs::remove_dir_all(p).map_err(|e| Error::io(p, e))?;
            } else if p.exists() {
                fs::remove_file(p).map_err(|e| Error::io(p, e))?;
            }
            Ok(())
        };
        match out.kind {
            Kind::File => {
                if dest.is_dir() {
                    clear(dest)?;
                }
                objects
                    .materialize(&out.hash, dest, LinkMode::Auto, false)
                    .map_err(store_err)
            }
            Kind::Dir => {
                let bytes = objects.read(&out.hash).map_err(store_err)?;
                let m = hash::parse_manifest(&bytes).ok_or_else(|| {
                    Error::Store(format!("object {} is not a directory manifest", out.hash))
                })?;
                clear(dest)?;
                fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
                for e in m {
                    objects
                        .materialize(&e.hash, &dest.join(&e.path), LinkMode::Auto, e.executable)
                        .map_err(store_err)?;
                }
                Ok(())
            }
        }
    }

    fn has(&self, out: &PathHash) -> Result<bool> {
        let objects = &self.store.objects;
        if !objects.contains(&out.hash) {
            return Ok(false);
        }
        if out.kind == Kind::Dir {
            let bytes = objects.read(&out.hash).map_err(store_err)?;
            let Some(m) = hash::parse_manifest(&bytes) else {
                return Ok(false);
            };
            return Ok(m.iter().all(|e| objects.contains(&e.hash)));
        }
        Ok(true)
    }
}

impl RunCache for KeelStore {
    fn prefetch(&self, jobs: &[&str]) -> Result<()> {
        let pool = self.store.db.pool();
        let mut found = HashMap::new();
        for chunk in jobs.chunks(200) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT cache_key, job, run_id, outputs, created_at FROM pipeline_cache
                 WHERE job IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for j in chunk {
                q = q.bind(j.to_string());
            }
            let rows = self
                .rt
                .block_on(q.fetch_all(pool))
                .map_err(db_err("reading the run-cache"))?;
            let err = db_err("reading the run-cache");
            for r in rows {
                found.insert(
                    r.try_get::<String, _>(0).map_err(&err)?,
                    (
                        r.try_get(1).map_err(&err)?,
                        r.try_get(2).map_err(&err)?,
                        r.try_get(3).map_err(&err)?,
                        r.try_get(4).map_err(&err)?,
                    ),
                );
            }
        }
        if let Ok(mut p) = self.prefetched.lock() {
            *p = found;
        }
        Ok(())
    }

    fn get(&self, key: &ObjectHash) -> Result<Option<CacheEntry>> {
        let hex = key.to_string();
        let ahead = self
            .prefetched
            .lock()
            .ok()
            .and_then(|p| p.get(&hex).cloned());
        if let Some((job, run_id, outputs, created_at)) = ahead {
            return Ok(Some(CacheEntry {
                key: hex,
                job,
                run_id,
                outputs: serde_json::from_str(&outputs).map_err(|e| Error::Store(e.to_string()))?,
                created_at_ms: created_at as u64,
            }));
        }
        // Not read ahead: an entry another job instance (or another run)
        // wrote, or no entry at all.
        let pool = self.store.db.pool();
        let row = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT job, run_id, outputs, created_at FROM pipeline_cache WHERE cache_key = $1",
                )
                .bind(key.to_string())
                .fetch_optional(pool),
            )
            .map_err(db_err("reading the run-cache"))?;
        let Some(row) = row else { return Ok(None) };
        let outputs: String = row.try_get(2).map_err(db_err("run-cache outputs"))?;
        Ok(Some(CacheEntry {
            key: key.to_string(),
            job: row.try_get(0).map_err(db_err("run-cache job"))?,
            run_id: row.try_get(1).map_err(db_err("run-cache run"))?,
            outputs: serde_json::from_str(&outputs).map_err(|e| Error::Store(e.to_string()))?,
            created_at_ms: row.try_get::<i64, _>(3).map_err(db_err("run-cache time"))? as u64,
        }))
    }

    fn put(&self, key: &ObjectHash, entry: &CacheEntry) -> Result<()> {
        let pool = self.store.db.pool();
        self.rt
            .block_on(
                sqlx::query(
                    "INSERT INTO pipeline_cache (cache_key, job, run_id, outputs, created_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (cache_key) DO NOTHING",
                )
                .bind(key.to_string())
                .bind(entry.job.clone())
                .bind(entry.run_id.clone())
                .bind(json(&entry.outputs)?)
                .bind(entry.created_at_ms as i64)
                .execute(pool),
            )
            .map_err(db_err("writing the run-cache"))?;
        Ok(())
    }
}

impl RunRecorder for KeelStore {
    fn begin_run(&self, run: &PipelineRecord) -> Result<()> {
        // Nothing is written yet: a fully cached run is recorded in one
        // transaction by finish_run; the first job that executes a script
        // writes the `running` row (record_run_start).
        let mut pending = self
            .pending
            .lock()
            .map_err(|_| Error::Store("run state poisoned by a panic".into()))?;
        pending.insert(run.run_id.clone(), run.clone());
        drop(pending);
        if let Ok(mut t) = self.tracking.lock() {
            t.files.insert(
                run.run_id.clone(),
                (run.file.clone(), run.git_commit.clone()),
            );
        }
        Ok(())
    }

    fn begin_job(&self, run_id: &str, job: &JobRecord) -> Result<Vec<(String, String)>> {
        let mut env = vec![
            ("KEEL_RUN_ID".into(), run_id.to_string()),
            ("KEEL_JOB".into(), job.name.clone()),
        ];
        self.record_run_start(run_id)?;
        let Some((uri, experiment_id, commit)) = self.tracking_for(run_id)? else {
            return Ok(env);
        };
        let mut tags = vec![
            KeyValue::new("keel.pipeline_run", run_id),
            KeyValue::new("keel.job", job.name.clone()),
            KeyValue::new("keel.job.base", job.base.clone()),
            KeyValue::new("keel.stage", job.stage.clone()),
            KeyValue::new("mlflow.user", tracking::Actor::local().0),
        ];
        if let Some(key) = &job.cache_key {
            tags.push(KeyValue::new("keel.cache_key", key.clone()));
        }
        if let Some(c) = commit {
            tags.push(KeyValue::new("mlflow.source.git.commit", c));
        }
        // Matrix variables first; a `.keel` param of the same name wins.
        let mut params: std::collections::BTreeMap<String, String> = job.matrix.clone();
        for (k, v) in &job.params {
            params.insert(k.clone(), param_text(v));
        }
        let params: Vec<KeyValue> = params
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        let tracking_run = self
            .rt
            .block_on(async {
                let run = runs::create(
                    &self.store,
                    experiment_id,
                    &tracking::Actor::local().0,
                    Some(&job.name),
                    None,
                    &tags,
                )
                .await?;
                for chunk in params.chunks(100) {
                    runs::log_batch(&self.store, &run.info.run_id, &[], chunk, &[]).await?;
                }
                Ok(run.info.run_id)
            })
            .map_err(tracking_err)?;
        if let Ok(mut t) = self.tracking.lock() {
            t.jobs
                .insert((run_id.to_string(), job.name.clone()), tracking_run.clone());
        }
        env.push(("MLFLOW_TRACKING_URI".into(), uri));
        env.push(("MLFLOW_RUN_ID".into(), tracking_run));
        Ok(env)
    }

    fn record_job(&self, run_id: &str, job: &JobRecord) -> Result<()> {
        // The lineage is written with the run, in one transaction (see
        // finish_run); only the job's tracking run ends here.
        self.end_tracking_run(run_id, job)
    }

    fn finish_run(&self, run: &PipelineRecord) -> Result<()> {
        // Tracking runs of jobs that never reported (a cancel) end too.
        let open: Vec<String> = self
            .tracking
            .lock()
            .map(|mut t| {
                t.runs.remove(&run.run_id);
                t.files.remove(&run.run_id);
                let keys: Vec<(String, String)> = t
                    .jobs
                    .keys()
                    .filter(|(r, _)| *r == run.run_id)
                    .cloned()
                    .collect();
                keys.into_iter().filter_map(|k| t.jobs.remove(&k)).collect()
            })
            .unwrap_or_default();
        for tracking_run in &open {
            let _ = self.rt.block_on(runs::update(
                &self.store,
                tracking_run,
                Some(runs::RunStatus::Killed),
                Some(now_ms()),
                None,
            ));
        }
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(&run.run_id);
        }
        let pool = self.store.db.pool();
        self.rt.block_on(async {
            let err = db_err("recording the pipeline's jobs");
            let mut tx = pool.begin().await.map_err(&err)?;
            // The row exists when a job executed (record_run_start).
            sqlx::query(
                "INSERT INTO pipeline_runs (run_id, file, started_at, finished_at, git_commit,
                 git_branch, git_dirty, status, variables)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (run_id) DO UPDATE
                 SET status = excluded.status, finished_at = excluded.finished_at",
            )
            .bind(run.run_id.clone())
            .bind(run.file.clone())
            .bind(run.started_at_ms as i64)
            .bind(run.finished_at_ms.map(|t| t as i64))
            .bind(run.git_commit.clone())
            .bind(run.git_branch.clone())
            .bind(i64::from(run.git_dirty))
            .bind(run.status.clone())
            .bind(json(&run.variables)?)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
            // Multi-row INSERTs: a 100-job run is a handful of statements,
            // not one per job, file and metric.
            let mut jobs = Vec::with_capacity(run.jobs.len());
            let mut files = Vec::new();
            let mut metrics = Vec::new();
            for j in &run.jobs {
                jobs.push(vec![
                    Arg::Text(run.run_id.clone()),
                    Arg::Text(j.name.clone()),
                    Arg::Text(j.base.clone()),
                    Arg::Text(j.stage.clone()),
                    Arg::Text(j.status.clone()),
                    Arg::Int(Some(i64::from(j.cached))),
                    Arg::OptText(j.cache_key.clone()),
                    Arg::Int(j.exit_code.map(i64::from)),
                    Arg::Int(Some(i64::from(j.attempts))),
                    Arg::Int(Some(j.started_at_ms as i64)),
                    Arg::Int(Some(j.duration_ms as i64)),
                    Arg::OptText(j.artifacts_digest.clone()),
                    Arg::Int(j.artifacts_expire_at_ms.map(|t| t as i64)),
                    Arg::OptText(j.log.clone()),
                    Arg::Text(json(j)?),
                ]);
                let io = j
                    .inputs
                    .iter()
                    .map(|f| ("in", f))
                    .chain(j.outputs.iter().map(|f| ("out", f)));
                for (dir, f) in io {
                    files.push(vec![
                        Arg::Text(run.run_id.clone()),
                        Arg::Text(j.name.clone()),
                        Arg::Text(dir.to_string()),
                        Arg::Text(f.path.clone()),
                        Arg::Text(kind_str(f.content.kind).to_string()),
                        Arg::Text(f.content.hash.to_string()),
                    ]);
                }
                for (name, value) in &j.metrics {
                    metrics.push(vec![
                        Arg::Text(run.run_id.clone()),
                        Arg::Text(j.name.clone()),
                        Arg::Text(name.clone()),
                        Arg::Real(*value),
                    ]);
                }
            }
            insert_rows(
                &mut tx,
                "pipeline_jobs (run_id, name, base, stage, status, cached, cache_key, exit_code,
                 attempts, started_at, duration_ms, artifacts_digest, artifacts_expire_at, log,
                 detail)",
                "",
                jobs,
            )
            .await
            .map_err(&err)?;
            insert_rows(
                &mut tx,
                "pipeline_job_files (run_id, job, direction, path, kind, hash)",
                " ON CONFLICT DO NOTHING",
                files,
            )
            .await
            .map_err(&err)?;
            insert_rows(
                &mut tx,
                "pipeline_job_metrics (run_id, job, name, value)",
                "",
                metrics,
            )
            .await
            .map_err(&err)?;
            tx.commit().await.map_err(&err)?;
            Ok(())
        })
    }
}

impl RunHistory for KeelStore {
    fn runs(&self) -> Result<Vec<PipelineRecord>> {
        let pool = self.store.db.pool();
        self.rt.block_on(async {
            let err = db_err("reading pipeline runs");
            let rows = sqlx::query(
                "SELECT run_id, file, started_at, finished_at, git_commit, git_branch, git_dirty,
                 status, variables FROM pipeline_runs ORDER BY started_at, run_id",
            )
            .fetch_all(pool)
            .await
            .map_err(&err)?;
            let mut runs = Vec::with_capacity(rows.len());
            for r in rows {
                let variables: String = r.try_get(8).map_err(&err)?;
                runs.push(PipelineRecord {
                    run_id: r.try_get(0).map_err(&err)?,
                    file: r.try_get(1).map_err(&err)?,
                    started_at_ms: r.try_get::<i64, _>(2).map_err(&err)? as u64,
                    finished_at_ms: r
                        .try_get::<Option<i64>, _>(3)
                        .map_err(&err)?
                        .map(|t| t as u64),
                    git_commit: r.try_get(4).map_err(&err)?,
                    git_branch: r.try_get(5).map_err(&err)?,
                    git_dirty: r.try_get::<i64, _>(6).map_err(&err)? != 0,
                    status: r.try_get(7).map_err(&err)?,
                    variables: serde_json::from_str(&variables)
                        .map_err(|e| Error::Store(e.to_string()))?,
                    jobs: Vec::new(),
                });
            }
            let jobs = sqlx::query("SELECT run_id, detail FROM pipeline_jobs ORDER BY started_at")
                .fetch_all(pool)
                .await
                .map_err(&err)?;
            for r in jobs {
                let run_id: String = r.try_get(0).map_err(&err)?;
                let detail: String = r.try_get(1).map_err(&err)?;
                let job: JobRecord =
                    serde_json::from_str(&detail).map_err(|e| Error::Store(e.to_string()))?;
                if let Some(run) = runs.iter_mut().find(|x| x.run_id == run_id) {
                    run.jobs.push(job);
                }
            }
            Ok(runs)
        })
    }
}
