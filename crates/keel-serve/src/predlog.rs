//! The prediction log: every request's inputs, outputs, latency, model
//! version and request id, appended to CSV segments.
//!
//! # Format
//!
//! A directory with `predictions/` and `feedback/`, each a sequence of CSV
//! segments named `seg-<first-ms, 15 digits>-<pid>-<n>.csv` (lexical order
//! is time order). Every segment starts with its header row:
//!
//! ```text
//! request_id,row,timestamp_ms,model,model_version,role,protocol,status,latency_seconds,cpu_seconds,<feature columns…>,prediction,score
//! request_id,row,timestamp_ms,label                                   (feedback)
//! ```
//!
//! One line per scored row (`row` is its index in the request); a failed
//! request is one line with its status and empty features. `role` is
//! `primary`, `canary` or `shadow`. A segment is closed (and a new one
//! opened) when it exceeds the size or age limit, when the feature columns
//! change (a new model version with another signature), and at startup.
//! Closed segments are plain CSV that `keel_data::read` reads as is.
//!
//! # Durability
//!
//! One [`Writer`] owns the open segments, behind a mutex. In the default
//! [`Durability::Write`] mode a request formats its record and `write`s it
//! in place, on its own thread, under that mutex (a few microseconds: no
//! hand-off to another thread and back, which cost more than the write
//! itself). In the other modes, and for feedback and records nobody waits
//! for, a writer thread drains everything queued (up to 4096 records),
//! writes it with one `write` under the mutex, `fdatasync`s outside it,
//! and only then completes the records' acknowledgements (group commit:
//! one fsync per batch, shared by every request that arrived meanwhile).
//!
//! A request is **acknowledged** when the server has sent its 2xx response.
//! The response waits for its record according to [`Durability`]:
//!
//! - [`Durability::Write`] (the default): released once the batch holding
//!   the record has been written to the log file, i.e. handed to the
//!   kernel. **Every acknowledged request is in the log after `kill -9`
//!   (or any crash) of the server process**: the page cache belongs to the
//!   kernel, not to the process. A syncer thread `fdatasync`s the open
//!   segments every [`SYNC_INTERVAL`], so a power cut or kernel crash can
//!   lose at most the last interval's acknowledged records.
//! - [`Durability::Fsync`]: released only after the batch is `fdatasync`ed,
//!   so acknowledged requests also survive a power cut (given a disk that
//!   honours fsync), at the cost of one fsync per batch on the request path.
//! - [`Durability::Async`]: responses do not wait; records of up to one
//!   batch (the last few milliseconds) can be lost even on a process crash.
//!
//! If the log cannot be written the request fails with 503 and is not
//! acknowledged. Feedback labels always wait for their `fdatasync`. A
//! segment is fsynced before it is closed.
//!
//! A crash can leave a partial last line (an unacknowledged batch cut
//! mid-write); the server truncates it at startup and readers here ignore
//! a line without its terminating newline.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, ServeError};
use crate::metrics::Registry;

/// Fixed leading columns of a prediction segment.
pub const PRED_FIXED: &[&str] = &[
    "request_id",
    "row",
    "timestamp_ms",
    "model",
    "model_version",
    "role",
    "protocol",
    "status",
    "latency_seconds",
    "cpu_seconds",
];
/// Columns of a feedback segment.
pub const FEEDBACK_COLUMNS: &[&str] = &["request_id", "row", "timestamp_ms", "label"];

/// When responses are released relative to the log's writes (see the
/// module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// A response waits until its record is written to the file (survives
    /// a crash of the process; fsynced within [`SYNC_INTERVAL`]).
    Write,
    /// A response waits until its record is fsynced (survives power loss).
    Fsync,
    /// Responses do not wait; a crash may lose the last batch.
    Async,
}

impl Durability {
    /// Parses the CLI spelling: `write`, `fsync` or `async`.
    pub fn parse(s: &str) -> Option<Durability> {
        match s {
            "write" => Some(Durability::Write),
            "fsync" => Some(Durability::Fsync),
            "async" => Some(Durability::Async),
            _ => None,
        }
    }
}

/// How often the syncer thread `fdatasync`s segments written in
/// [`Durability::Write`] mode: the most a power cut can lose.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// Where and how to write the log.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// The log directory.
    pub dir: PathBuf,
    /// Close a segment above this size.
    pub max_segment_bytes: u64,
    /// Close a segment older than this.
    pub max_segment_age: Duration,
    /// See [`Durability`].
    pub durability: Durability,
}

impl LogConfig {
    /// 64 MiB / 1 h segments, [`Durability::Write`].
    pub fn new(dir: impl Into<PathBuf>) -> LogConfig {
        LogConfig {
            dir: dir.into(),
            max_segment_bytes: 64 << 20,
            max_segment_age: Duration::from_secs(3600),
            durability: Durability::Write,
        }
    }
}

/// One request's record.
#[derive(Debug, Clone)]
pub struct Record {
    /// The request id (echoed in the response).
    pub request_id: String,
    /// Milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// Model name.
    pub model: String,
    /// Version that scored it.
    pub version: String,
    /// `primary`, `canary` or `shadow`.
    pub role: &'static str,
    /// `v2` or `mlflow`.
    pub protocol: &'static str,
    /// HTTP status.
    pub status: u16,
    /// Request latency.
    pub latency_seconds: f64,
    /// Model-evaluation CPU time.
    pub cpu_seconds: f64,
    /// Feature columns then `prediction`, `score` (shared per version).
    pub columns: Arc<[String]>,
    /// Per row: the CSV fields of `columns` (the feature values, then
    /// prediction and score); empty for a failed request.
    pub rows: LogRows,
}

/// The rows of a record, as CSV text: one buffer for all of them (a string
/// per row cost an allocation and a copy per row on 100-row requests).
#[derive(Debug, Clone, Default)]
pub struct LogRows {
    text: String,
    ends: Vec<usize>,
}

impl LogRows {
    /// Room for `rows` rows of about `row_bytes` each.
    pub fn with_capacity(rows: usize, row_bytes: usize) -> LogRows {
        LogRows {
            text: String::with_capacity(rows * row_bytes),
            ends: Vec::with_capacity(rows),
        }
    }

    /// The row being written: append its fields (comma-separated, quoted
    /// as needed by [`csv_field`]), then call [`LogRows::end_row`].
    pub fn current(&mut self) -> &mut String {
        &mut self.text
    }

    /// Ends the row being written.
    pub fn end_row(&mut self) {
        self.ends.push(self.text.len());
    }

    /// Rows ended so far.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when no row was ended.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The ended rows' text, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(a, &b)| &self.text[a..b])
    }
}

/// A ground-truth label for a logged request.
#[derive(Debug, Clone)]
pub struct Feedback {
    /// The request it is about.
    pub request_id: String,
    /// The row within the request (all rows when `None`).
    pub row: Option<usize>,
    /// The label.
    pub label: String,
    /// Milliseconds since the epoch.
    pub timestamp_ms: i64,
}

enum Msg {
    Pred(Record, Option<oneshot::Sender<bool>>),
    Feedback(Vec<Feedback>, Option<oneshot::Sender<bool>>),
}

/// The handle requests use; cheap to clone.
#[derive(Clone)]
pub struct PredictionLog {
    tx: mpsc::Sender<Msg>,
    durability: Durability,
    writer: Arc<Mutex<Writer>>,
    metrics: Arc<Registry>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl PredictionLog {
    /// Opens the log directory (repairing a torn tail left by a crash) and
    /// starts the writer thread.
    pub fn start(config: LogConfig, metrics: Arc<Registry>) -> Result<PredictionLog> {
        for sub in ["predictions", "feedback"] {
            let d = config.dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| ServeError::io(&d, e))?;
            for seg in segments(&d)? {
                repair_tail(&seg)?;
            }
        }
        let (tx, rx) = mpsc::channel(16_384);
        let durability = config.durability;
        let writer = Arc::new(Mutex::new(Writer::new(config)));
        let (w, m) = (writer.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("keel-predlog".into())
            .spawn(move || run(&w, &m, rx))
            .map_err(|e| ServeError::io("keel-predlog thread", e))?;
        Ok(PredictionLog {
            tx,
            durability,
            writer,
            metrics,
        })
    }

    /// Appends a record. Unless [`Durability::Async`], returns once it is
    /// written (or fsynced); an error means it is not (the request must not
    /// be acknowledged).
    pub async fn append(&self, record: Record) -> Result<()> {
        if self.durability == Durability::Write {
            // In place: a `write` of one record is cheaper than waking the
            // writer thread and being woken by it.
            let ok = land(&self.writer, &self.metrics, &[Msg::Pred(record, None)]);
            // This path never waits, so it counts against the task's
            // scheduling budget: a caller scoring in a loop without I/O
            // (in-process clients) still lets other tasks run.
            tokio::task::consume_budget().await;
            return match ok {
                true => Ok(()),
                false => Err(ServeError::LogUnavailable(
                    "writing the prediction log failed".into(),
                )),
            };
        }
        self.send(|ack| Msg::Pred(record, ack)).await
    }

    /// Appends feedback labels, durably (always waits for the fsync).
    pub async fn feedback(&self, items: Vec<Feedback>) -> Result<()> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Feedback(items, Some(ack)))
            .await
            .map_err(|_| ServeError::LogUnavailable("the writer stopped".into()))?;
        match done.await {
            Ok(true) => Ok(()),
            _ => Err(ServeError::LogUnavailable(
                "writing the feedback log failed".into(),
            )),
        }
    }

    /// Queues a record without waiting (shadow predictions).
    pub fn append_detached(&self, record: Record) {
        let _ = self.tx.try_send(Msg::Pred(record, None));
    }

    async fn send(&self, msg: impl FnOnce(Option<oneshot::Sender<bool>>) -> Msg) -> Result<()> {
        match self.durability {
            Durability::Async => self
                .tx
                .send(msg(None))
                .await
                .map_err(|_| ServeError::LogUnavailable("the writer stopped".into())),
            Durability::Write | Durability::Fsync => {
                let (ack, done) = oneshot::channel();
                self.tx
                    .send(msg(Some(ack)))
                    .await
                    .map_err(|_| ServeError::LogUnavailable("the writer stopped".into()))?;
                match done.await {
                    Ok(true) => Ok(()),
                    _ => Err(ServeError::LogUnavailable(
                        "writing the prediction log failed".into(),
                    )),
                }
            }
        }
    }
}

/// The segments of a log subdirectory, oldest first.
pub fn segments(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(ServeError::io(dir, e)),
    };
    for entry in rd {
        let entry = entry.map_err(|e| ServeError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("seg-") && name.ends_with(".csv") {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Truncates a segment after its last newline (a torn batch).
fn repair_tail(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| ServeError::io(path, e))?;
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| ServeError::io(path, e))?;
    f.set_len(keep as u64)
        .map_err(|e| ServeError::io(path, e))?;
    f.sync_all().map_err(|e| ServeError::io(path, e))
}

/// Appends a CSV field, quoted when needed.
pub fn csv_field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

struct Segment {
    /// Shared with the syncer thread in [`Durability::Write`] mode.
    file: Arc<File>,
    header: Option<Arc<[String]>>,
    bytes: u64,
    opened: Instant,
    buf: String,
}

/// The open segments; one per log, behind the [`PredictionLog`]'s mutex.
struct Writer {
    config: LogConfig,
    pred: Option<Segment>,
    feedback: Option<Segment>,
    seq: u64,
    /// Segments written since the syncer's last pass ([`Durability::Write`]).
    unsynced: Arc<Unsynced>,
}

/// The hand-off between the writers and the syncer thread.
#[derive(Default)]
struct Unsynced {
    files: Mutex<Vec<Arc<File>>>,
    stop: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Unsynced {
    fn mark(&self, file: &Arc<File>) {
        let mut files = lock(&self.files);
        if !files.iter().any(|f| Arc::ptr_eq(f, file)) {
            files.push(file.clone());
        }
    }

    /// `fdatasync`s every file marked since the last pass.
    fn sync(&self, metrics: &Registry) {
        let files = std::mem::take(&mut *lock(&self.files));
        for f in files {
            if f.sync_data().is_err() {
                metrics.log_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The syncer thread: one pass per [`SYNC_INTERVAL`] until stopped.
    fn run(self: Arc<Self>, metrics: Arc<Registry>) {
        while !self.stop.load(Ordering::Acquire) {
            std::thread::park_timeout(SYNC_INTERVAL);
            self.sync(&metrics);
        }
    }
}

/// Writes a batch under the writer's lock, `fdatasync`s what the mode
/// requires outside it (so in-place writers never wait for a disk flush),
/// and counts it. True when every record is as durable as the mode
/// promises.
fn land(writer: &Mutex<Writer>, metrics: &Registry, batch: &[Msg]) -> bool {
    let start = Instant::now();
    let written = lock(writer).write_batch(batch);
    let ok = match written {
        Ok(to_sync) => to_sync.iter().all(|f| f.sync_data().is_ok()),
        Err(_) => false,
    };
    metrics.log_write_seconds.add(start.elapsed().as_secs_f64());
    metrics.log_batches.fetch_add(1, Ordering::Relaxed);
    if ok {
        let n = batch.iter().filter(|m| matches!(m, Msg::Pred(..))).count();
        metrics.log_records.fetch_add(n as u64, Ordering::Relaxed);
    } else {
        metrics.log_errors.fetch_add(1, Ordering::Relaxed);
        // Start fresh segments after a failure.
        let mut w = lock(writer);
        w.pred = None;
        w.feedback = None;
    }
    ok
}

/// The writer thread: batches what is queued (records of the `fsync` and
/// `async` modes, feedback, detached records), lands each batch, then
/// completes its acknowledgements.
fn run(writer: &Mutex<Writer>, metrics: &Arc<Registry>, mut rx: mpsc::Receiver<Msg>) {
    // The syncer bounds what a power cut can take when responses only
    // wait for the write; it never sits on the request path.
    let (unsynced, durability) = {
        let w = lock(writer);
        (w.unsynced.clone(), w.config.durability)
    };
    let syncer = (durability == Durability::Write)
        .then(|| {
            let (unsynced, metrics) = (unsynced.clone(), metrics.clone());
            std::thread::Builder::new()
                .name("keel-predlog-sync".into())
                .spawn(move || unsynced.run(metrics))
                .ok()
        })
        .flatten();
    let mut batch = Vec::with_capacity(4096);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let ok = land(writer, metrics, &batch);
        for m in batch.drain(..) {
            let (Msg::Pred(_, ack) | Msg::Feedback(_, ack)) = m;
            if let Some(a) = ack {
                let _ = a.send(ok);
            }
        }
    }
    // Channel closed (every handle dropped): flush what is open.
    if let Some(t) = syncer {
        unsynced.stop.store(true, Ordering::Release);
        t.thread().unpark();
        let _ = t.join();
    }
    let w = lock(writer);
    for seg in [&w.pred, &w.feedback].into_iter().flatten() {
        let _ = seg.file.sync_data();
    }
}

impl Writer {
    fn new(config: LogConfig) -> Writer {
        Writer {
            config,
            pred: None,
            feedback: None,
            seq: 0,
            unsynced: Arc::default(),
        }
    }

    fn open(
        &mut self,
        sub: &str,
        header: &str,
        cols: Option<Arc<[String]>>,
    ) -> std::io::Result<Segment> {
        self.seq += 1;
        let path = self.config.dir.join(sub).join(format!(
            "seg-{:015}-{}-{}.csv",
            now_ms(),
            std::process::id(),
            self.seq
        ));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        // Make the new directory entry durable before records land in it.
        if let Some(parent) = path.parent() {
            File::open(parent)?.sync_all()?;
        }
        let mut seg = Segment {
            file: Arc::new(file),
            header: cols,
            bytes: 0,
            opened: Instant::now(),
            buf: String::new(),
        };
        seg.buf.push_str(header);
        seg.buf.push('\n');
        Ok(seg)
    }

    /// Formats and writes a batch (one `write` per segment touched);
    /// returns the files to `fdatasync` before the batch is acknowledged:
    /// the written segments unless in [`Durability::Write`] mode (the
    /// syncer's then), feedback always, and segments closed by rotation.
    fn write_batch(&mut self, batch: &[Msg]) -> std::io::Result<Vec<Arc<File>>> {
        let mut dirty_pred = false;
        let mut dirty_fb = false;
        let mut to_sync = Vec::new();
        for m in batch {
            match m {
                Msg::Pred(r, _) => {
                    let same = self
                        .pred
                        .as_ref()
                        .and_then(|s| s.header.as_ref())
                        .is_some_and(|h| Arc::ptr_eq(h, &r.columns) || **h == *r.columns);
                    if !same {
                        if let Some(mut old) = self.pred.take() {
                            write_buf(&mut old)?;
                            to_sync.push(old.file);
                        }
                        let mut header: Vec<String> =
                            PRED_FIXED.iter().map(|s| (*s).to_string()).collect();
                        header.extend(r.columns.iter().cloned());
                        let mut line = String::new();
                        for (i, h) in header.iter().enumerate() {
                            if i > 0 {
                                line.push(',');
                            }
                            csv_field(&mut line, h);
                        }
                        self.pred =
                            Some(self.open("predictions", &line, Some(r.columns.clone()))?);
                    }
                    let seg = self.pred.as_mut().expect("opened above");
                    format_record(&mut seg.buf, r);
                    dirty_pred = true;
                }
                Msg::Feedback(items, _) => {
                    if self.feedback.is_none() {
                        self.feedback =
                            Some(self.open("feedback", &FEEDBACK_COLUMNS.join(","), None)?);
                    }
                    let seg = self.feedback.as_mut().expect("opened above");
                    for f in items {
                        csv_field(&mut seg.buf, &f.request_id);
                        seg.buf.push(',');
                        if let Some(r) = f.row {
                            seg.buf.push_str(&r.to_string());
                        }
                        seg.buf.push_str(&format!(",{},", f.timestamp_ms));
                        csv_field(&mut seg.buf, &f.label);
                        seg.buf.push('\n');
                    }
                    dirty_fb = true;
                }
            }
        }
        if dirty_pred {
            if let Some(seg) = self.pred.as_mut() {
                write_buf(seg)?;
                if self.config.durability == Durability::Write {
                    self.unsynced.mark(&seg.file);
                } else {
                    to_sync.push(seg.file.clone());
                }
            }
        }
        if dirty_fb {
            if let Some(seg) = self.feedback.as_mut() {
                write_buf(seg)?;
                to_sync.push(seg.file.clone());
            }
        }
        let (max_b, max_age) = (self.config.max_segment_bytes, self.config.max_segment_age);
        for slot in [&mut self.pred, &mut self.feedback] {
            if slot
                .as_ref()
                .is_some_and(|s| s.bytes >= max_b || s.opened.elapsed() >= max_age)
            {
                // A closed segment is on disk whatever the mode.
                if let Some(seg) = slot.take() {
                    to_sync.push(seg.file);
                }
            }
        }
        Ok(to_sync)
    }
}

/// Writes the segment's buffer with one `write`.
fn write_buf(seg: &mut Segment) -> std::io::Result<()> {
    if seg.buf.is_empty() {
        return Ok(());
    }
    (&*seg.file).write_all(seg.buf.as_bytes())?;
    seg.bytes += seg.buf.len() as u64;
    seg.buf.clear();
    Ok(())
}

fn format_record(out: &mut String, r: &Record) {
    use std::fmt::Write as _;
    // Every line of a record repeats the request's fields around the row
    // index: format them once, not once per row (two float formats per
    // line were most of the log's cost on 100-row requests).
    let mut id = String::with_capacity(r.request_id.len());
    csv_field(&mut id, &r.request_id);
    let mut fixed = String::with_capacity(96);
    let _ = write!(fixed, ",{},", r.timestamp_ms);
    csv_field(&mut fixed, &r.model);
    fixed.push(',');
    csv_field(&mut fixed, &r.version);
    let _ = write!(
        fixed,
        ",{},{},{},{},{}",
        r.role, r.protocol, r.status, r.latency_seconds, r.cpu_seconds
    );
    let mut index = itoa::Buffer::new();
    let mut line = |out: &mut String, row: usize| {
        out.push_str(&id);
        out.push(',');
        out.push_str(index.format(row));
        out.push_str(&fixed);
    };
    if r.rows.is_empty() {
        line(out, 0);
        for _ in 0..r.columns.len() {
            out.push(',');
        }
        out.push('\n');
        return;
    }
    out.reserve(r.rows.text.len() + r.rows.len() * (id.len() + fixed.len() + 8));
    for (i, row) in r.rows.iter().enumerate() {
        line(out, i);
        out.push(',');
        out.push_str(row);
        out.push('\n');
    }
}

/// Parses CSV text written by this module: complete lines only (a torn
/// last line without its newline is ignored). Returns the header and rows.
pub fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = complete.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if rows.is_empty() {
        return (Vec::new(), rows);
    }
    let header = rows.remove(0);
    (header, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(rows: Vec<&str>) -> Record {
        Record {
            request_id: "id,1".into(),
            timestamp_ms: 1_700_000_000_123,
            model: "fraud".into(),
            version: "v\"2".into(),
            role: "primary",
            protocol: "mlflow",
            status: if rows.is_empty() { 400 } else { 200 },
            latency_seconds: 0.00125,
            cpu_seconds: 0.5,
            columns: vec!["a".to_string(), "prediction".into(), "score".into()].into(),
            rows: {
                let mut out = LogRows::default();
                for r in rows {
                    out.current().push_str(r);
                    out.end_row();
                }
                out
            },
        }
    }

    #[test]
    fn a_record_is_one_line_per_row_with_the_request_fields_on_each() {
        let mut out = String::new();
        format_record(&mut out, &record(vec!["1.5,yes,0.9", ",no,"]));
        format_record(&mut out, &record(Vec::new()));
        let fixed = r#"1700000000123,fraud,"v""2",primary,mlflow"#;
        assert_eq!(
            out,
            format!(
                "\"id,1\",0,{fixed},200,0.00125,0.5,1.5,yes,0.9\n\
                 \"id,1\",1,{fixed},200,0.00125,0.5,,no,\n\
                 \"id,1\",0,{fixed},400,0.00125,0.5,,,\n"
            )
        );
        // And it reads back field by field.
        let header = "request_id,row,timestamp_ms,model,model_version,role,protocol,status,latency_seconds,cpu_seconds,a,prediction,score\n";
        let (h, rows) = parse_csv(&format!("{header}{out}"));
        assert_eq!(h.len(), 13);
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.len() == 13));
        assert_eq!(rows[1][0], "id,1");
        assert_eq!(rows[1][1], "1");
        assert_eq!(rows[1][4], "v\"2");
        assert_eq!(rows[1][11], "no");
    }
}
