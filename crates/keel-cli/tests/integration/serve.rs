//! `keel serve` as a process: SIGKILL under load loses no acknowledged
//! request, and `/metrics` passes `promtool check metrics` and is scraped by
//! a real Prometheus using the shipped `deploy/prometheus/prometheus.yml`.
//!
//! The helpers here (a keel-serve process, a plain HTTP/1.1 client, the
//! synthetic population) are shared with `retrain.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::{Array, Int64Array, StringArray};

use crate::util::Env;

/// A deterministic pseudo-random stream.
pub struct Lcg(pub u64);
impl Lcg {
    pub fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64) / ((1u64 << 53) as f64)
    }
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-12), self.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Rows of the synthetic population (`amount`, `age`, `hour`); `shift`
/// moves `amount` and `age` by that many standard deviations.
pub fn rows(n: usize, seed: u64, shift: f64) -> Vec<[f64; 3]> {
    let mut r = Lcg(seed);
    (0..n)
        .map(|_| {
            [
                ((50.0 + 20.0 * r.normal() + 20.0 * shift) * 100.0).round() / 100.0,
                ((40.0 + 10.0 * r.normal() + 10.0 * shift) * 100.0).round() / 100.0,
                (r.next() * 24.0).floor(),
            ]
        })
        .collect()
}

/// `amount,age,hour,label`; the label follows the features (with noise)
/// unless `random_labels`, when it is a coin flip (data nothing can learn).
pub fn labelled_csv(rows: &[[f64; 3]], seed: u64, random_labels: bool) -> String {
    let mut r = Lcg(seed);
    let mut s = String::from("amount,age,hour,label\n");
    for x in rows {
        let y = if random_labels {
            r.next() < 0.5
        } else {
            0.05 * (x[0] - 50.0) + 0.08 * (x[1] - 40.0) + r.normal() > 0.0
        };
        s.push_str(&format!("{},{},{},{}\n", x[0], x[1], x[2], u8::from(y)));
    }
    s
}

/// An MLflow `dataframe_split` body.
pub fn invocation(rows: &[[f64; 3]]) -> String {
    serde_json::json!({"dataframe_split": {"columns": ["amount", "age", "hour"], "data": rows}})
        .to_string()
}

/// Trains a logistic regression with `keel train` into `out`.
pub fn train(env: &Env, csv: &str, out: &str) {
    env.ok(&[
        "train",
        "--data",
        csv,
        "--target",
        "label",
        "--algorithm",
        "logistic_regression",
        "--out",
        out,
    ]);
}

/// A `keel serve` process on an ephemeral loopback port; killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `keel serve ARGS --port 0` and waits for its address.
    pub fn start(env: &Env, args: &[&str]) -> Server {
        Server::spawn(env, "serve", args)
    }

    /// Starts `keel COMMAND ARGS --host 127.0.0.1 --port 0` (`serve` or
    /// `server`) and waits for the address it announces.
    pub fn spawn(env: &Env, command: &str, args: &[&str]) -> Server {
        let mut all: Vec<&str> = vec![command];
        all.extend(args);
        all.extend(["--host", "127.0.0.1", "--port", "0"]);
        let mut child = env
            .cmd(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let buf = stderr.clone();
        // Drain stderr for the whole life of the process (a full pipe would
        // block the server); the line naming the address is announced.
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split(" on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.to_string());
                }
                buf.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("keel {all:?} did not start:\n{}", stderr.lock().unwrap());
            }
        };
        Server {
            child,
            addr,
            stderr,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A response.
pub struct Resp {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// A keep-alive HTTP/1.1 connection (enough HTTP for keel's responses,
/// which always carry Content-Length).
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> std::io::Result<Resp> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: keel\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.stream.write_all(req.as_bytes())?;
        let eof = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed");
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(eof());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not HTTP: {head:.80}")))?;
        let headers: BTreeMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| std::io::Error::other("no content-length"))?;
        let start = head_end + 4;
        while self.buf.len() < start + len {
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(eof());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&self.buf[start..start + len]).into_owned();
        self.buf.drain(..start + len);
        Ok(Resp {
            status,
            headers,
            body,
        })
    }
}

/// One request on a fresh connection.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Resp {
    Conn::open(addr)
        .and_then(|mut c| c.request(method, path, &[("content-type", "application/json")], body))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Polls `f` until it returns `Some` or `secs` pass.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs}s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every `(request_id, row)` of the prediction log with its status, read
/// with keel-data's reader.
fn read_log(dir: &Path) -> BTreeMap<(String, i64), i64> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir.join("predictions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    segs.sort();
    let mut out = BTreeMap::new();
    let cols = Some(vec!["request_id".into(), "row".into(), "status".into()]);
    for seg in segs {
        let opts = keel_data::read::ReadOptions::new().with_columns(cols.clone());
        let batches = keel_data::read::read_all(&seg, &opts)
            .unwrap_or_else(|e| panic!("{}: {e}", seg.display()));
        for b in batches {
            let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
            let (ids, rows, status) = (col("request_id"), col("row"), col("status"));
            let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
            let rows = rows.as_any().downcast_ref::<Int64Array>().unwrap();
            let status = status.as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                assert!(
                    !ids.is_null(i),
                    "{}: a record without a request id",
                    seg.display()
                );
                out.insert((ids.value(i).to_string(), rows.value(i)), status.value(i));
            }
        }
    }
    out
}

/// kill -9 in the middle of steady traffic: every request that got its 200
/// (the acknowledgement, see the README's durability guarantee) is in the
/// log afterwards with all its rows, read back by `keel_data::read`. The
/// default durability (`write`: answered once the record is in the file).
#[test]
fn sigkill_under_load_loses_no_acknowledged_request() {
    sigkill_under_load(&[]);
}

/// The same with `--log-durability fsync` (answered once fsynced).
#[test]
fn sigkill_under_load_loses_no_acknowledged_request_fsync() {
    sigkill_under_load(&["--log-durability", "fsync"]);
}

fn sigkill_under_load(durability: &[&str]) {
    let env = Env::new();
    env.write(
        "train.csv",
        labelled_csv(&rows(500, 1, 0.0), 2, false).as_bytes(),
    );
    train(&env, "train.csv", "model");
    let args: Vec<&str> = ["model", "--log-dir", "log"]
        .into_iter()
        .chain(durability.iter().copied())
        .collect();
    let mut server = Server::start(&env, &args);
    let addr = server.addr;

    let traffic = rows(64, 3, 0.0);
    let stop = Arc::new(AtomicBool::new(false));
    let acked_total = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for t in 0..8 {
        let (stop, acked_total, in_flight, traffic) = (
            stop.clone(),
            acked_total.clone(),
            in_flight.clone(),
            traffic.clone(),
        );
        clients.push(std::thread::spawn(move || {
            // (request id, rows) of every 200 this client received.
            let mut acked: Vec<(String, usize)> = Vec::new();
            let mut error = None;
            let mut conn = Conn::open(addr).unwrap();
            for i in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let id = format!("t{t}-{i:06}");
                let n = if i % 4 == 0 { 5 } else { 1 };
                let k = (t * 7 + i) % (traffic.len() - n);
                let batch = &traffic[k..k + n];
                let (path, body) = if i % 2 == 0 {
                    ("/invocations", invocation(batch))
                } else {
                    let data: Vec<f64> = batch.iter().flatten().copied().collect();
                    (
                        "/v2/models/model/infer",
                        serde_json::json!({"inputs": [{"name": "X", "shape": [n, 3], "datatype": "FP32", "data": data}]})
                            .to_string(),
                    )
                };
                in_flight.fetch_add(1, Ordering::SeqCst);
                let r = conn.request(
                    "POST",
                    path,
                    &[("content-type", "application/json"), ("x-request-id", &id)],
                    &body,
                );
                in_flight.fetch_sub(1, Ordering::SeqCst);
                match r {
                    Ok(r) if r.status == 200 => {
                        assert_eq!(r.headers.get("x-request-id"), Some(&id));
                        acked.push((id, n));
                        acked_total.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => panic!("{path}: HTTP {} {}", r.status, r.body),
                    Err(e) => {
                        // The server is gone: this request was not acknowledged.
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
            (acked, error)
        }));
    }
    // Let the load run, then kill -9 while requests are in flight.
    wait_for(60, "200 acknowledged requests", || {
        (acked_total.load(Ordering::SeqCst) >= 200).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let in_flight_at_kill = in_flight.load(Ordering::SeqCst);
    server.kill9();
    let killed_at = Instant::now();
    let mut acked = Vec::new();
    let mut errors = 0;
    for c in clients {
        let (a, e) = c.join().unwrap();
        acked.extend(a);
        errors += usize::from(e.is_some());
    }
    stop.store(true, Ordering::SeqCst);
    assert!(
        killed_at.elapsed() < Duration::from_secs(35),
        "clients did not notice the kill"
    );
    assert_eq!(errors, 8, "every client saw the server die");
    eprintln!(
        "{} acknowledged requests, {in_flight_at_kill} in flight at the kill",
        acked.len()
    );

    // The restarted server repairs a torn last line and keeps logging.
    let server = Server::start(&env, &args);
    let after = Conn::open(server.addr).unwrap().request(
        "POST",
        "/invocations",
        &[
            ("content-type", "application/json"),
            ("x-request-id", "after-restart"),
        ],
        &invocation(&traffic[..1]),
    );
    assert_eq!(after.unwrap().status, 200, "{}", server.stderr());
    drop(server);

    let logged = read_log(&env.path("log"));
    let mut missing = BTreeSet::new();
    for (id, n) in &acked {
        for row in 0..*n as i64 {
            match logged.get(&(id.clone(), row)) {
                Some(200) => {}
                Some(s) => panic!("{id} row {row} logged with status {s}"),
                None => {
                    missing.insert(format!("{id} row {row}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged rows are not in the log, e.g. {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(logged.get(&("after-restart".to_string(), 0)), Some(&200));
}

/// A free loopback port (bound, then released for a child to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process stopped (SIGTERM, then SIGKILL) when dropped.
struct Stopped(Child);
impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("`{name}` is not on PATH: install the Debian package `prometheus` (scripts/test.sh does)")
    })
}

/// `/metrics` as served (after traffic, with the monitor's gauges in it)
/// passes `promtool check metrics`; a real Prometheus started with the
/// shipped `deploy/prometheus/prometheus.yml` scrapes it: `up` is 1 and the
/// keel series are queryable.
#[test]
fn metrics_pass_promtool_and_prometheus_scrapes_them() {
    let (promtool, prometheus) = (tool("promtool"), tool("prometheus"));
    let env = Env::new();
    env.write(
        "train.csv",
        labelled_csv(&rows(500, 1, 0.0), 2, false).as_bytes(),
    );
    train(&env, "train.csv", "model");
    let server = Server::start(&env, &["model", "--log-dir", "log"]);
    let traffic = rows(200, 5, 0.0);
    for chunk in traffic.chunks(10) {
        let r = http(server.addr, "POST", "/invocations", &invocation(chunk));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let bad = http(server.addr, "POST", "/invocations", "{\"nope\": 1}");
    assert_eq!(bad.status, 400);
    // The monitor's gauges are exported by the server too.
    env.write(
        "monitor.yaml",
        b"log: log\nmodel: model\nreference: train.csv\nwindow: 1m\nmin_rows: 30\n",
    );
    env.ok(&["monitor", "--once"]);

    let metrics = http(server.addr, "GET", "/metrics", "");
    assert_eq!(metrics.status, 200);
    for family in [
        "keel_inference_requests_total",
        "keel_inference_request_duration_seconds_bucket",
        "keel_prediction_log_records_total",
        "keel_model_info",
        "keel_monitor_",
    ] {
        assert!(
            metrics.body.contains(family),
            "no {family}:\n{}",
            metrics.body
        );
    }
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.body.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}"
    );

    // The shipped scrape config, pointed at this server, every second.
    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/prometheus/prometheus.yml"
    );
    let config = std::fs::read_to_string(shipped).unwrap();
    assert!(config.contains("127.0.0.1:8080") && config.contains("15s"));
    let config = config
        .replace("127.0.0.1:8080", &server.addr.to_string())
        .replace("15s", "1s");
    env.write("prometheus.yml", config.as_bytes());
    let out = Command::new(&promtool)
        .args(["check", "config"])
        .arg(env.path("prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check config:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let web: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = std::fs::File::create(env.path("prometheus.log")).unwrap();
    let _prom = Stopped(
        Command::new(&prometheus)
            .arg(format!(
                "--config.file={}",
                env.path("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                env.path("tsdb").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .current_dir(env.root())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let query = |q: &str| -> Option<Vec<serde_json::Value>> {
        let mut c = Conn::open(web).ok()?;
        let path = format!("/api/v1/query?query={q}");
        let r = c.request("GET", &path, &[], "").ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        (v["status"] == "success").then(|| v["data"]["result"].as_array().cloned())?
    };
    let prom_log = || std::fs::read_to_string(env.path("prometheus.log")).unwrap_or_default();
    let up = wait_for(90, "Prometheus scraping keel", || {
        query("up%7Bjob%3D%22keel-serve%22%7D")
            .and_then(|r| r.into_iter().next())
            .filter(|s| s["value"][1] == "1")
    });
    assert_eq!(up["metric"]["service"], "keel", "{up}\n{}", prom_log());
    let requests = wait_for(30, "keel_inference_requests_total in Prometheus", || {
        query("keel_inference_requests_total%7Bcode%3D%22200%22%7D")
            .and_then(|r| r.into_iter().next())
    });
    assert_eq!(requests["metric"]["model"], "model", "{requests}");
    assert_eq!(requests["value"][1], "20", "{requests}");
    let rows = query("keel_monitor_window_rows").unwrap_or_default();
    assert!(!rows.is_empty(), "the monitor gauges were not scraped");
}
