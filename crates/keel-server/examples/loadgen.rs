//! A load generator for the tracking API's server-bound benchmark rows.
//!
//!     loadgen URL log-metric|log-batch CONNECTIONS SECONDS
//!
//! Creates one run per connection, then each connection posts
//! `runs/log-metric` (one point) or `runs/log-batch` (1000 points) in a
//! loop. Prints one JSON line: requests/s, metrics/s, errors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, mode, conns, secs] = args.as_slice() else {
        eprintln!("usage: loadgen URL log-metric|log-batch CONNECTIONS SECONDS");
        std::process::exit(2);
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
                    let metrics: Vec<Value> = (0..1000)
                        .map(|k| json!({"key": format!("m{}", k % 10), "value": k as f64, "timestamp": 1_700_000_000_000i64 + step, "step": step * 1000 + k}))
                        .collect();
                    ("log-batch", json!({"run_id": run, "metrics": metrics}))
                } else {
                    ("log-metric", json!({"run_id": run, "key": format!("c{c}"), "value": 0.5, "timestamp": 1_700_000_000_000i64 + step, "step": step}))
                };
                let r = http
                    .post(format!("{url}/api/2.0/mlflow/runs/{path}"))
                    .header("content-type", "application/json")
                    .body(body.to_string())
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
