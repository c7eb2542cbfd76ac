//! The SQLite write lane: the tracking calls a client makes one after the
//! other (log a metric, create a run, end it) run synchronously on one
//! dedicated SQLite connection, on the thread that asked.
//!
//! Why not sqlx: sqlx runs each SQLite connection on its own thread, so
//! every statement is a round trip between a tokio worker and that thread,
//! and a log-metric made five of them (ping, lifecycle check, BEGIN, INSERT,
//! COMMIT). On these VMs waking an idle thread costs 0.1–0.3 ms, so a
//! sequential client paid over a millisecond per call in wake-ups alone.
//! Here a call takes the connection's mutex and runs all its statements
//! in place: no hand-off at all when nobody else is writing.
//!
//! Group commit by combining: a caller queues its job, then whoever holds
//! (or next takes) the connection runs every queued job in one transaction
//! with one commit (one fsync), each job under its own savepoint so that a
//! refused job rolls back alone. Replies are sent after the commit, so an
//! answered call is durable.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, TryLockError};
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Result, StoreError};
use crate::Durability;

/// A shared SQLite error: one failed COMMIT fails every job in it.
pub(crate) type SharedError = Arc<rusqlite::Error>;

/// Runs after the transaction of a job ends: `Ok` when it committed.
type Done = Box<dyn FnOnce(std::result::Result<(), SharedError>) + Send>;
/// A queued job: given the connection inside the group's transaction (or
/// the error that kept the transaction from starting) and whether it is
/// the group's only job, does its work and returns what to do once the
/// transaction ends, and whether the work failed.
type Job =
    Box<dyn FnOnce(std::result::Result<&Connection, SharedError>, bool) -> (Done, bool) + Send>;

/// One SQLite connection plus the queue of jobs waiting for it.
pub(crate) struct Lane {
    conn: Mutex<Connection>,
    /// Reads (`get` of a run) go here: in WAL mode they never wait for
    /// the writer, and they do not hold up the write queue.
    reader: Mutex<Connection>,
    queue: Mutex<Vec<Job>>,
    /// The DB file (its WAL is `<path>-wal`).
    path: PathBuf,
    /// [`Durability::Disk`]: every commit is fsynced (`synchronous=FULL`).
    disk: AtomicBool,
    /// Committed since the syncer's last fdatasync of the WAL.
    dirty: Arc<AtomicBool>,
    syncer: Once,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lane")
    }
}

/// Most jobs one transaction takes (their replies wait for its commit).
const MAX_JOBS_PER_COMMIT: usize = 512;

/// Transactions one caller runs for others before handing the queue on.
const MAX_ROUNDS_PER_CALLER: usize = 4;

/// How often the WAL is fdatasynced in [`Durability::Process`] mode: the
/// most a power cut can lose (as the prediction log's `write` mode).
const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// WAL size past which the syncer checkpoints it into the DB file (SQLite's
/// own automatic checkpoint is at 1,000 pages, i.e. about this).
const CHECKPOINT_WAL_BYTES: u64 = 4 << 20;

impl Lane {
    /// Opens the lane's connection to the DB file at `path` (which the
    /// pool has created and set to WAL), with the pool's settings.
    pub(crate) fn open(path: &Path) -> Result<Lane> {
        let err = |source| StoreError::Sqlite {
            context: format!("opening {}", path.display()),
            source: Arc::new(source),
        };
        let reader = Connection::open(path).map_err(err)?;
        reader
            .execute_batch("PRAGMA query_only=ON; PRAGMA busy_timeout=10000;")
            .map_err(err)?;
        reader.set_prepared_statement_cache_capacity(32);
        let conn = Connection::open(path).map_err(err)?;
        // synchronous=NORMAL: a commit is written to the WAL (it survives
        // a kill) but not fsynced; see `Durability` and `set_durability`.
        // temp_store=MEMORY: each job runs under a savepoint, whose journal
        // of overwritten pages SQLite spills to a temporary file past
        // 64 KiB, i.e. on every large log-batch; it is bounded by the batch
        // limits, so it stays in memory. wal_autocheckpoint=0: a checkpoint
        // fsyncs, so in this mode the syncer thread runs them, not a commit.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
             PRAGMA foreign_keys=ON; \
             PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=0;",
        )
        .map_err(err)?;
        conn.busy_handler(Some(wait_for_writer)).map_err(err)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Lane {
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
            queue: Mutex::new(Vec::new()),
            path: path.to_path_buf(),
            disk: AtomicBool::new(false),
            dirty: Arc::new(AtomicBool::new(false)),
            syncer: Once::new(),
        })
    }

    /// Runs the reads in `f` on one snapshot of the DB, in place: a read
    /// in WAL mode never waits for a writer and does no I/O but page-cache
    /// reads, so it is CPU work like the rest of a handler. (Through
    /// `block_in_place` every read handed the worker's scheduler to another
    /// thread and back: on these VMs waking it cost more than the read.)
    ///
    /// For short reads (a run by id): they run on the write connection when
    /// it is idle. SQLite drops a connection's whole page cache when it
    /// finds that another connection changed the WAL, which for the reader
    /// is after every write: a run read right after its update re-read
    /// ~16 pages with a `pread` each. The writer's cache survives its own
    /// commits. Writes queued meanwhile are run afterwards, as when another
    /// caller holds the connection.
    pub(crate) fn read<R, E: From<StoreError>>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        match self.conn.try_lock() {
            Ok(conn) if conn.is_autocommit() => {
                let r = read_on(&conn, f);
                drop(conn);
                if !lock(&self.queue).is_empty() {
                    self.drive();
                }
                r
            }
            _ => self.read_scan(f),
        }
    }

    /// [`Lane::read`] for long reads (searches), always on the read-only
    /// connection, so that writes are never held up behind them.
    pub(crate) fn read_scan<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        read_on(&lock(&self.reader), f)
    }

    /// Chooses what an answered write survives (default: a kill).
    pub(crate) fn set_durability(&self, d: Durability) -> Result<()> {
        let disk = d == Durability::Disk;
        let conn = lock(&self.conn);
        // Disk: every commit fsyncs anyway, so it may checkpoint too.
        conn.execute_batch(if disk {
            "PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=1000"
        } else {
            "PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0"
        })
        .map_err(|e| sqlite_error("setting durability", Arc::new(e)))?;
        self.disk.store(disk, Ordering::Relaxed);
        Ok(())
    }

    /// After a commit that was not fsynced: makes sure the syncer runs.
    fn committed_unsynced(&self) {
        self.dirty.store(true, Ordering::Release);
        self.syncer.call_once(|| {
            let dirty = Arc::downgrade(&self.dirty);
            let db = self.path.clone();
            let mut wal = self.path.as_os_str().to_owned();
            wal.push("-wal");
            let wal = PathBuf::from(wal);
            // Detached: it ends once the lane (the only strong holder of
            // `dirty`) is gone.
            let _ = std::thread::Builder::new()
                .name("keel-wal-sync".into())
                .spawn(move || {
                    let mut file: Option<std::fs::File> = None;
                    let mut checkpointer: Option<Connection> = None;
                    loop {
                        std::thread::sleep(SYNC_INTERVAL);
                        let Some(dirty) = dirty.upgrade() else { return };
                        if !dirty.swap(false, Ordering::AcqRel) {
                            continue;
                        }
                        if file.is_none() {
                            file = std::fs::File::open(&wal).ok();
                        }
                        // fdatasync through any descriptor flushes the
                        // file's pages; a failure is retried next round.
                        if file.as_ref().is_some_and(|f| f.sync_data().is_err()) {
                            dirty.store(true, Ordering::Release);
                            file = None;
                        }
                        // The lane's commits do not checkpoint (that would
                        // fsync on a request's path): this thread does, on
                        // its own connection. PASSIVE waits for nobody; what
                        // it cannot copy now it copies next time.
                        let big =
                            std::fs::metadata(&wal).is_ok_and(|m| m.len() > CHECKPOINT_WAL_BYTES);
                        if big {
                            if checkpointer.is_none() {
                                checkpointer = Connection::open(&db).ok();
                            }
                            if let Some(c) = &checkpointer {
                                let _ = c.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
                            }
                        }
                    }
                });
        });
    }

    /// Runs `f` inside a transaction on the lane's connection, possibly
    /// grouped with other callers' jobs, and returns its result once the
    /// transaction has committed. An `Err` from `f` rolls back `f`'s
    /// writes only.
    pub(crate) async fn run<R, E, F>(self: &Arc<Self>, f: F) -> std::result::Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> std::result::Result<R, E> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<std::result::Result<R, E>>();
        let job: Job = Box::new(move |conn, alone| {
            let result = match conn {
                Err(e) => Err(E::from(sqlite_error("starting a transaction", e))),
                // Alone in its group, a failed job rolls the whole
                // transaction back: no savepoint needed.
                Ok(c) if alone => f(c),
                Ok(c) => in_savepoint(c, f),
            };
            let failed = result.is_err();
            let done: Done = Box::new(move |commit| {
                let result = match commit {
                    Ok(()) => result,
                    Err(e) => result.and(Err(E::from(sqlite_error("committing", e)))),
                };
                // The caller may have gone away (client disconnected).
                let _ = tx.send(result);
            });
            (done, failed)
        });
        lock(&self.queue).push(job);
        self.drive();
        rx.await.unwrap_or_else(|_| {
            Err(E::from(sqlite_error(
                "running a tracking write",
                Arc::new(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                    Some("abandoned: the caller running its group panicked".into()),
                )),
            )))
        })
    }

    /// Runs queued jobs until the queue is empty, unless another caller
    /// holds the connection (it will run them: it checks the queue again
    /// after letting the connection go). A caller runs at most
    /// [`MAX_ROUNDS_PER_CALLER`] transactions, then hands the rest to a
    /// blocking task, so that under sustained load its own response is not
    /// held up serving everyone else's.
    fn drive(self: &Arc<Self>) {
        loop {
            let conn = match self.conn.try_lock() {
                Ok(c) => c,
                // A job panicked while holding it; SQLite's own state is
                // still consistent (the transaction was abandoned).
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return,
            };
            let mut rounds = 0;
            let disk = self.disk.load(Ordering::Relaxed);
            let mut work = || loop {
                if rounds == MAX_ROUNDS_PER_CALLER {
                    break;
                }
                rounds += 1;
                let jobs: Vec<Job> = {
                    let mut q = lock(&self.queue);
                    let n = q.len().min(MAX_JOBS_PER_COMMIT);
                    q.drain(..n).collect()
                };
                if jobs.is_empty() {
                    break;
                }
                if run_group(&conn, jobs) && !disk {
                    self.committed_unsynced();
                }
            };
            // Without `Durability::Disk` a commit writes to the page cache
            // and neither fsyncs nor checkpoints (the syncer does both): it
            // runs in place, like the reads. With it, every commit waits for
            // the disk, and the worker's other tasks move elsewhere meanwhile.
            if disk {
                blocking(work);
            } else {
                work();
            }
            drop(conn);
            if lock(&self.queue).is_empty() {
                return;
            }
            if rounds == MAX_ROUNDS_PER_CALLER {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let lane = Arc::clone(self);
                    rt.spawn_blocking(move || lane.drive());
                    return;
                }
            }
        }
    }
}

/// `f` on one snapshot: a read transaction around it.
fn read_on<R, E: From<StoreError>>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> std::result::Result<R, E>,
) -> std::result::Result<R, E> {
    let sql = |s: &str| exec(c, s).map_err(|e| E::from(sqlite_error("reading", Arc::new(e))));
    sql("BEGIN").and_then(|()| {
        let r = f(c);
        // A read transaction: COMMIT and ROLLBACK both just end it.
        sql("ROLLBACK").and(r)
    })
}

/// The write connection's busy handler: another connection (a CLI command,
/// the server's pool) holds the write lock. Commits run in place on a
/// runtime worker, so the wait, and only the wait, is announced to tokio.
/// Gives up after about 10 s, as `busy_timeout=10000` would.
fn wait_for_writer(tries: i32) -> bool {
    let ms = u64::try_from(tries.clamp(1, 10)).unwrap_or(10);
    blocking(|| std::thread::sleep(Duration::from_millis(ms)));
    tries < 1_010
}

/// Runs `work`, which blocks (an fsync, a wait for a lock), telling a multi-thread
/// tokio runtime so that it moves other tasks off this worker meanwhile.
fn blocking(work: impl FnOnce()) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// One transaction for `jobs`: BEGIN IMMEDIATE (take the write lock up
/// front, waiting out other writers), each job, COMMIT, then the replies.
/// A job alone in its group runs without a savepoint; when it fails, the
/// transaction is rolled back instead. Returns whether it committed.
fn run_group(conn: &Connection, jobs: Vec<Job>) -> bool {
    if !conn.is_autocommit() {
        // Left open by a job that panicked (its group never committed) or
        // by a ROLLBACK that failed: BEGIN would fail for every job.
        let _ = exec(conn, "ROLLBACK");
    }
    let begun = exec(conn, "BEGIN IMMEDIATE").map_err(Arc::new);
    let alone = jobs.len() == 1;
    let mut failed = false;
    let dones: Vec<Done> = jobs
        .into_iter()
        .map(|job| {
            let (done, f) = job(begun.as_ref().map(|()| conn).map_err(Arc::clone), alone);
            failed |= f;
            done
        })
        .collect();
    let committed = begun.and_then(|()| {
        if alone && failed {
            // Its failure is its answer; an error here (SQLite may have
            // rolled back already) changes nothing.
            let _ = exec(conn, "ROLLBACK");
            return Ok(false);
        }
        exec(conn, "COMMIT").map(|()| true).map_err(|e| {
            let _ = exec(conn, "ROLLBACK");
            Arc::new(e)
        })
    });
    let ok = committed.as_ref().is_ok_and(|&c| c);
    let outcome = committed.map(|_| ());
    for done in dones {
        done(outcome.clone());
    }
    ok
}

/// Runs one parameterless statement (BEGIN, COMMIT, SAVEPOINT…) from the
/// connection's statement cache: `execute_batch` parsed it on every call.
fn exec(c: &Connection, sql: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs `f` under a savepoint, rolled back if `f` fails.
fn in_savepoint<R, E: From<StoreError>>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> std::result::Result<R, E>,
) -> std::result::Result<R, E> {
    let sql = |s: &str| exec(c, s).map_err(|e| E::from(sqlite_error("savepoint", Arc::new(e))));
    sql("SAVEPOINT job")?;
    match f(c) {
        Ok(v) => sql("RELEASE job").map(|()| v),
        Err(e) => {
            sql("ROLLBACK TO job")?;
            sql("RELEASE job")?;
            Err(e)
        }
    }
}

fn sqlite_error(context: &str, source: SharedError) -> StoreError {
    StoreError::Sqlite {
        context: context.to_string(),
        source,
    }
}

/// Locks `m`, ignoring poisoning: the data behind these mutexes (a queue,
/// a connection) stays valid if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_db(dir: &Path) -> (PathBuf, Connection) {
        let path = dir.join("t.db");
        let setup = Connection::open(&path).unwrap();
        setup
            .execute_batch(
                "PRAGMA journal_mode=WAL; CREATE TABLE t (n INTEGER PRIMARY KEY, pad BLOB)",
            )
            .unwrap();
        (path, setup)
    }

    fn insert(c: &Connection, n: i64, pad: usize) -> Result<()> {
        c.execute(
            "INSERT INTO t (n, pad) VALUES (?1, zeroblob(?2))",
            [n, pad as i64],
        )
        .map(|_| ())
        .map_err(|e| sqlite_error("test", Arc::new(e)))
    }

    /// Writes run in place on the worker; when another connection holds the
    /// write lock, the wait is handed to a blocking thread, so the only
    /// worker keeps running other tasks, and the write commits afterwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn waiting_for_another_writer_does_not_stall_the_worker() {
        let dir = tempfile::tempdir().unwrap();
        let (path, setup) = test_db(dir.path());
        let lane = Arc::new(Lane::open(&path).unwrap());
        setup.execute_batch("BEGIN IMMEDIATE").unwrap();
        let ticks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let ticker = {
            let ticks = Arc::clone(&ticks);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let write = {
            let lane = Arc::clone(&lane);
            tokio::spawn(async move { lane.run(|c| insert(c, 1, 0)).await })
        };
        // The test body runs on block_on's thread, not the worker.
        std::thread::sleep(Duration::from_millis(400));
        let during = ticks.load(Ordering::Relaxed);
        setup.execute_batch("COMMIT").unwrap();
        write.await.unwrap().unwrap();
        ticker.abort();
        assert!(during >= 5, "the worker stalled: {during} ticks in 400 ms");
        let count: i64 = setup
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 1);
    }

    /// Commits do not checkpoint in the default durability; the syncer
    /// thread does, once the WAL is past `CHECKPOINT_WAL_BYTES`, so the
    /// rows reach the DB file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_syncer_checkpoints_a_large_wal() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _setup) = test_db(dir.path());
        let lane = Arc::new(Lane::open(&path).unwrap());
        let rows = 2 * (CHECKPOINT_WAL_BYTES as usize) / 8192;
        for n in 0..rows {
            lane.run(move |c| insert(c, n as i64, 8192)).await.unwrap();
        }
        let db_len = || std::fs::metadata(&path).unwrap().len();
        assert!(db_len() < CHECKPOINT_WAL_BYTES, "a commit checkpointed");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while db_len() < CHECKPOINT_WAL_BYTES && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            db_len() >= CHECKPOINT_WAL_BYTES,
            "no checkpoint: {} bytes",
            db_len()
        );
    }

    /// More queued jobs than one caller may run: the caller stops after
    /// `MAX_ROUNDS_PER_CALLER` transactions and a blocking task finishes
    /// the queue; every job is answered and committed exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_queue_is_handed_on_and_every_job_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let setup = Connection::open(&path).unwrap();
        setup
            .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .unwrap();
        let lane = Arc::new(Lane::open(&path).unwrap());
        let n = MAX_JOBS_PER_COMMIT * (MAX_ROUNDS_PER_CALLER + 2) + 7;
        // Hold the connection so that every job queues up behind it.
        let held = lock(&lane.conn);
        let calls: Vec<_> = (0..n)
            .map(|i| {
                let lane = Arc::clone(&lane);
                tokio::spawn(async move {
                    lane.run(move |c| {
                        c.execute("INSERT INTO t (n) VALUES (?1)", [i as i64])
                            .map_err(|e| StoreError::Sqlite {
                                context: "test".into(),
                                source: Arc::new(e),
                            })
                            .map(|_| i)
                    })
                    .await
                })
            })
            .collect();
        drive_once_queued(&lane, held, n).await;
        // A job stranded in the queue would never be answered.
        for (i, c) in calls.into_iter().enumerate() {
            let answered = tokio::time::timeout(Duration::from_secs(60), c)
                .await
                .expect("every queued job is answered");
            assert_eq!(answered.unwrap().unwrap(), i);
        }
        let count: i64 = setup
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, n as i64);
    }

    /// A failed job's writes are undone, whether it ran alone (no
    /// savepoint: its transaction is rolled back) or in a group with
    /// other jobs (its savepoint is), and the others still commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_job_leaves_nothing_alone_or_in_a_group() {
        let dir = tempfile::tempdir().unwrap();
        let (path, setup) = test_db(dir.path());
        let lane = Arc::new(Lane::open(&path).unwrap());
        let failing = |n: i64| {
            move |c: &Connection| {
                insert(c, n, 0)?;
                // A duplicate primary key: the job fails after writing.
                insert(c, n, 0)
            }
        };
        assert!(lane.run(failing(1)).await.is_err());
        assert!(lock(&lane.conn).is_autocommit(), "the transaction ended");
        // A group: hold the connection while three jobs queue up.
        let held = lock(&lane.conn);
        let calls: Vec<_> = [(2, false), (3, true), (4, false)]
            .into_iter()
            .map(|(n, fail)| {
                let lane = Arc::clone(&lane);
                tokio::spawn(async move {
                    if fail {
                        lane.run(failing(n)).await
                    } else {
                        lane.run(move |c| insert(c, n, 0)).await
                    }
                })
            })
            .collect();
        drive_once_queued(&lane, held, 3).await;
        let mut answers = Vec::new();
        for c in calls {
            answers.push(c.await.unwrap().is_ok());
        }
        assert_eq!(answers, [true, false, true]);
        let mut st = setup.prepare("SELECT n FROM t ORDER BY n").unwrap();
        let rows: Vec<i64> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(rows, [2, 4]);
    }

    /// Waits until `n` jobs have queued behind the connection that `held`
    /// holds, lets it go, and drives the queue on a blocking thread. (The
    /// test body runs on block_on's thread, not a worker: the spawned calls
    /// queue up on the workers meanwhile.)
    async fn drive_once_queued(lane: &Arc<Lane>, held: MutexGuard<'_, Connection>, n: usize) {
        while lock(&lane.queue).len() < n {
            std::thread::sleep(Duration::from_millis(2));
        }
        drop(held);
        let driver = Arc::clone(lane);
        tokio::task::spawn_blocking(move || driver.drive())
            .await
            .unwrap();
    }

    /// A short read runs on the idle write connection and sees every
    /// committed write; a write queued while it runs (it found the
    /// connection busy) is committed by the reader afterwards, not
    /// stranded; a read while the connection is busy uses the reader.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_on_the_write_connection_runs_the_writes_queued_behind_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, setup) = test_db(dir.path());
        let lane = Arc::new(Lane::open(&path).unwrap());
        lane.run(|c| insert(c, 1, 0)).await.unwrap();
        let count = |c: &Connection| -> Result<i64> {
            c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .map_err(|e| sqlite_error("test", Arc::new(e)))
        };
        let mut write = None;
        let seen = lane
            .read(|c| {
                // On the write connection: the reader is query-only.
                assert!(c.execute("UPDATE t SET pad = NULL WHERE 0", []).is_ok());
                let l = Arc::clone(&lane);
                write = Some(tokio::spawn(
                    async move { l.run(|c| insert(c, 2, 0)).await },
                ));
                while lock(&lane.queue).is_empty() {
                    std::thread::sleep(Duration::from_millis(2));
                }
                count(c)
            })
            .unwrap();
        assert_eq!(seen, 1, "one snapshot: the queued write is not in it");
        tokio::time::timeout(Duration::from_secs(30), write.unwrap())
            .await
            .expect("the write queued behind the read is committed")
            .unwrap()
            .unwrap();
        assert_eq!(lane.read(count).unwrap(), 2);
        let held = lock(&lane.conn);
        let on_reader = lane.read(|c| {
            let refused = c.execute("UPDATE t SET pad = NULL WHERE 0", []).is_err();
            Ok::<_, StoreError>((refused, count(c)?))
        });
        drop(held);
        assert_eq!(on_reader.unwrap(), (true, 2), "busy: the query-only reader");
        drop(setup);
    }
}
