//! The prediction log: every request's inputs, outputs, latency, model
//! version and request id, appended by one writer thread in batches.
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
//! The writer drains everything queued (up to 4096 records) and writes it
//! with one `write`; only then are the records' acknowledgements completed
//! (group commit: one `write` per batch, shared by every request that
//! arrived meanwhile).
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
use std::sync::Arc;
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
    /// prediction and score), comma-separated and quoted as needed; empty
    /// for a failed request.
    pub rows: Vec<String>,
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
        std::thread::Builder::new()
            .name("keel-predlog".into())
            .spawn(move || Writer::new(config, metrics).run(rx))
            .map_err(|e| ServeError::io("keel-predlog thread", e))?;
        Ok(PredictionLog { tx, durability })
    }

    /// Appends a record. Unless [`Durability::Async`], returns once it is
    /// written (or fsynced); an error means it is not (the request must not
    /// be acknowledged).
    pub async fn append(&self, record: Record) -> Result<()> {
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
    path: PathBuf,
    header: Option<Arc<[String]>>,
    bytes: u64,
    opened: Instant,
    buf: String,
}

struct Writer {
    config: LogConfig,
    metrics: Arc<Registry>,
    pred: Option<Segment>,
    feedback: Option<Segment>,
    seq: u64,
    /// Segments written since the syncer's last pass ([`Durability::Write`]).
    unsynced: Arc<Unsynced>,
}

/// The hand-off between the writer and the syncer thread.
#[derive(Default)]
struct Unsynced {
    files: std::sync::Mutex<Vec<Arc<File>>>,
    stop: std::sync::atomic::AtomicBool,
}

impl Unsynced {
    fn mark(&self, file: &Arc<File>) {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if !files.iter().any(|f| Arc::ptr_eq(f, file)) {
            files.push(file.clone());
        }
    }

    /// `fdatasync`s every file marked since the last pass.
    fn sync(&self, metrics: &Registry) {
        let files = std::mem::take(&mut *self.files.lock().unwrap_or_else(|e| e.into_inner()));
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

impl Writer {
    fn new(config: LogConfig, metrics: Arc<Registry>) -> Writer {
        Writer {
            config,
            metrics,
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
            path,
            header: cols,
            bytes: 0,
            opened: Instant::now(),
            buf: String::new(),
        };
        seg.buf.push_str(header);
        seg.buf.push('\n');
        Ok(seg)
    }

    fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        // The syncer bounds what a power cut can take when responses only
        // wait for the write; it never sits on the request path.
        let syncer = (self.config.durability == Durability::Write)
            .then(|| {
                let (unsynced, metrics) = (self.unsynced.clone(), self.metrics.clone());
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
            let start = Instant::now();
            let ok = self.write_batch(&batch).is_ok();
            self.metrics
                .log_write_seconds
                .add(start.elapsed().as_secs_f64());
            self.metrics.log_batches.fetch_add(1, Ordering::Relaxed);
            if !ok {
                self.metrics.log_errors.fetch_add(1, Ordering::Relaxed);
                // Start fresh segments after a failure.
                self.pred = None;
                self.feedback = None;
            }
            let mut n = 0;
            for m in batch.drain(..) {
                let ack = match m {
                    Msg::Pred(_, ack) => {
                        n += 1;
                        ack
                    }
                    Msg::Feedback(_, ack) => ack,
                };
                if let Some(a) = ack {
                    let _ = a.send(ok);
                }
            }
            if ok {
                self.metrics.log_records.fetch_add(n, Ordering::Relaxed);
            }
        }
        // Channel closed: flush what is open.
        if let Some(t) = syncer {
            self.unsynced.stop.store(true, Ordering::Release);
            t.thread().unpark();
            let _ = t.join();
        }
        for seg in [self.pred.as_mut(), self.feedback.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = seg.file.sync_data();
        }
    }

    fn write_batch(&mut self, batch: &[Msg]) -> std::io::Result<()> {
        let mut dirty_pred = false;
        let mut dirty_fb = false;
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
                            flush(&mut old, true)?;
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
        let durability = self.config.durability;
        if dirty_pred {
            if let Some(seg) = self.pred.as_mut() {
                flush(seg, durability != Durability::Write)?;
                if durability == Durability::Write {
                    self.unsynced.mark(&seg.file);
                }
            }
        }
        if dirty_fb {
            if let Some(seg) = self.feedback.as_mut() {
                flush(seg, true)?;
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
                    seg.file.sync_data()?;
                }
            }
        }
        Ok(())
    }
}

/// Writes the segment's buffer with one `write`, then `fdatasync`s when
/// `sync`.
fn flush(seg: &mut Segment, sync: bool) -> std::io::Result<()> {
    if seg.buf.is_empty() {
        return Ok(());
    }
    (&*seg.file).write_all(seg.buf.as_bytes())?;
    if sync {
        seg.file.sync_data()?;
    }
    seg.bytes += seg.buf.len() as u64;
    seg.buf.clear();
    let _ = &seg.path;
    Ok(())
}

fn format_record(out: &mut String, r: &Record) {
    use std::fmt::Write as _;
    let fixed = |out: &mut String, row: usize| {
        csv_field(out, &r.request_id);
        let _ = write!(out, ",{row},{},", r.timestamp_ms);
        csv_field(out, &r.model);
        out.push(',');
        csv_field(out, &r.version);
        let _ = write!(
            out,
            ",{},{},{},{},{}",
            r.role, r.protocol, r.status, r.latency_seconds, r.cpu_seconds
        );
    };
    if r.rows.is_empty() {
        fixed(out, 0);
        for _ in 0..r.columns.len() {
            out.push(',');
        }
        out.push('\n');
        return;
    }
    for (i, row) in r.rows.iter().enumerate() {
        fixed(out, i);
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
