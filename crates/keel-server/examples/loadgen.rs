//! A load generator for the tracking API's server-bound benchmark rows.
//!
//!     loadgen URL log-metric|log-batch CONNECTIONS SECONDS
//!     loadgen URL search 1 SECONDS EXPERIMENT_ID
//!
//! Creates one run per connection, then each connection posts
//! `runs/log-metric` (one point) or `runs/log-batch` (1000 points) in a
//! loop. Prints one JSON line: requests/s, metrics/s, errors.
//!
//! `search` repeats the search of the client row (`metrics.acc > 0.9`,
//! ordered by `metrics.acc DESC`, 100 runs) on an experiment the client row
//! filled, one request at a time, and prints the median latency: the
//! server's share of that row without the Python client's parsing.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, mode, conns, secs) = match args.as_slice() {
        [_, url, mode, conns, secs] => (url, mode, conns, secs),
        [_, url, mode, _, secs, exp] if mode == "search" => {
            search(url, secs.parse().expect("SECONDS"), exp).await;
            return;
        }
        _ => {
            eprintln!("usage: loadgen URL log-metric|log-batch CONNECTIONS SECONDS\n       loadgen URL search 1 SECONDS EXPERIMENT_ID");
            std::process::exit(2);
        }
    };
    let conns: usize = conns.parse().expect("CONNECTIONS");
    let secs: f64 = secs.parse().expect("SECONDS");
    let batch = mode == "log-batch";
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(conns)
        .build()
        .unwrap();
    let exp = {
        let r = http
            .post(format!("{url}/api/2.0/mlflow/experiments/create"))
            .header("content-type", "application/json")
            .body(json!({"name": format!("loadgen-{}", uuid::Uuid::new_v4().simple())}).to_string())
            .send()
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(json!({}));
        v["experiment_id"].as_str().unwrap_or("0").to_string()
    };
    let reqs = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (http, url, exp, reqs, errors) = (
            http.clone(),
            url.clone(),
            exp.clone(),
            reqs.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{url}/api/2.0/mlflow/runs/create"))
                .header("content-type", "application/json")
                .body(json!({"experiment_id": exp, "user_id": "loadgen"}).to_string())
                .send()
                .await
                .unwrap();
            let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(json!({}));
            let run = v["run"]["info"]["run_id"].as_str().unwrap_or("none").to_string();
            let mut step = 0i64;
            while Instant::now() < deadline {
                let (path, body) = if batch {
                    // Written directly: building 1,000 `json!` maps per request
                    // made the generator the bottleneck.
                    let ts = 1_700_000_000_000i64 + step;
                    let mut body = format!("{{\"run_id\": \"{run}\", \"metrics\": [");
                    for k in 0..1000i64 {
                        let sep = if k == 0 { "" } else { ", " };
                        let _ = write!(
                            body,
                            "{sep}{{\"key\": \"m{}\", \"value\": {k}.0, \"timestamp\": {ts}, \"step\": {}}}",
                            k % 10,
                            step * 1000 + k
                        );
                    }
                    body.push_str("]}");
                    ("log-batch", body)
                } else {
                    ("log-metric", json!({"run_id": run, "key": format!("c{c}"), "value": 0.5, "timestamp": 1_700_000_000_000i64 + step, "step": step}).to_string())
                };
                let r = http
                    .post(format!("{url}/api/2.0/mlflow/runs/{path}"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        reqs.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                step += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let el = start.elapsed().as_secs_f64();
    let n = reqs.load(Ordering::Relaxed) as f64;
    let per = if batch { 1000.0 } else { 1.0 };
    println!(
        "{}",
        json!({"mode": mode, "connections": conns, "seconds": el, "requests_per_s": n / el,
               "metrics_per_s": n * per / el, "errors": errors.load(Ordering::Relaxed)})
    );
}

async fn search(url: &str, secs: f64, exp: &str) {
    let http = reqwest::Client::new();
    let body = json!({"experiment_ids": [exp], "filter": "metrics.acc > 0.9",
                      "order_by": ["metrics.acc DESC"], "max_results": 100})
    .to_string();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (mut lat, mut errors) = (Vec::new(), 0u64);
    while Instant::now() < deadline {
        let t = Instant::now();
        let r = http
            .post(format!("{url}/api/2.0/mlflow/runs/search"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let ok = match r {
            Ok(r) if r.status().is_success() => {
                let v: Value = serde_json::from_slice(&r.bytes().await.unwrap_or_default())
                    .unwrap_or(json!({}));
                v["runs"].as_array().map_or(0, Vec::len) == 100
            }
            _ => false,
        };
        if ok {
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        } else {
            errors += 1;
        }
    }
    lat.sort_by(f64::total_cmp);
    let median = lat.get(lat.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "{}",
        json!({"mode": "search", "median_ms": median, "n": lat.len(), "errors": errors})
    );
}
