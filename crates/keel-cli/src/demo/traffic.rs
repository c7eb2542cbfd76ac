//! Simulated production traffic: a client thread that scores batches of
//! transactions against `keel serve` over plain HTTP/1.1 (MLflow's
//! `/invocations` protocol) and counts every request that did not succeed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::fraud::{self, Transaction};

/// `Stats::phase` after the drift is injected (0: the baseline population).
pub const PHASE_DRIFTED: u8 = 1;

/// Counters shared with the demo.
#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub failed: AtomicU64,
    pub rows: AtomicU64,
    pub drifted_requests: AtomicU64,
    pub phase: AtomicU8,
    pub stop: AtomicBool,
    /// The first failure, for the summary.
    pub first_error: std::sync::Mutex<Option<String>>,
}

/// One HTTP/1.1 request; returns the status code and body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {:.80}", text)))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The MLflow `dataframe_split` payload for a batch.
pub fn payload(rows: &[Transaction]) -> String {
    let columns = serde_json::to_string(&fraud::feature_columns()).unwrap_or_default();
    let data: Vec<Vec<f64>> = rows.iter().map(Transaction::features).collect();
    format!(
        "{{\"dataframe_split\": {{\"columns\": {columns}, \"data\": {}}}}}",
        serde_json::to_string(&data).unwrap_or_default()
    )
}

/// Sends batches until `stats.stop`, cycling through `baseline` or
/// `drifted` rows depending on `stats.phase`.
pub fn run(
    addr: SocketAddr,
    baseline: Vec<Transaction>,
    drifted: Vec<Transaction>,
    stats: Arc<Stats>,
) {
    const BATCH: usize = 25;
    let (mut i, mut j) = (0usize, 0usize);
    while !stats.stop.load(Ordering::SeqCst) {
        let drift = stats.phase.load(Ordering::SeqCst) == PHASE_DRIFTED;
        let (rows, k) = if drift {
            (&drifted, &mut j)
        } else {
            (&baseline, &mut i)
        };
        if rows.is_empty() {
            break;
        }
        let start = *k % rows.len();
        let end = (start + BATCH).min(rows.len());
        *k = end;
        let body = payload(&rows[start..end]);
        stats.requests.fetch_add(1, Ordering::SeqCst);
        if drift {
            stats.drifted_requests.fetch_add(1, Ordering::SeqCst);
        }
        match http(addr, "POST", "/invocations", &body) {
            Ok((200, _)) => {
                stats.rows.fetch_add((end - start) as u64, Ordering::SeqCst);
            }
            other => {
                stats.failed.fetch_add(1, Ordering::SeqCst);
                let msg = match other {
                    Ok((code, body)) => format!("HTTP {code}: {:.200}", body),
                    Err(e) => e.to_string(),
                };
                let mut first = stats.first_error.lock().unwrap_or_else(|e| e.into_inner());
                if first.is_none() {
                    *first = Some(msg);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
