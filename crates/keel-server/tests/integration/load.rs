//! 64 concurrent HTTP clients log metrics for 30 s (`KEEL_LOAD_SECS` to
//! change): zero errors, and every acknowledged point is in the DB.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::store;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_lose_nothing() {
    let secs: u64 = std::env::var("KEEL_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path(), None).await;
    let server = keel_server::spawn(
        st.clone(),
        "127.0.0.1:0".parse().unwrap(),
        keel_server::Config::loopback(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}/api/2.0/mlflow/{path}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let resp = post(
        "runs/create",
        json!({"experiment_id": "0", "user_id": "load"}),
    )
    .await
    .unwrap();
    let v: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    let run = v["run"]["info"]["run_id"].as_str().unwrap().to_string();

    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for client in 0..64u64 {
        let (http, base, run, ok, errors) = (
            http.clone(),
            base.clone(),
            run.clone(),
            ok.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut step = 0i64;
            while Instant::now() < deadline {
                let body = json!({"run_id": run, "key": format!("c{client}"), "value": step as f64 * 0.5,
                                  "timestamp": 1_700_000_000_000i64 + step, "step": step});
                let r = http
                    .post(format!("{base}/api/2.0/mlflow/runs/log-metric"))
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        eprintln!("client {client}: HTTP {} {}", r.status(), r.text().await.unwrap_or_default());
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("client {client}: {e}");
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
    server.shutdown().await;
    let acked = ok.load(Ordering::Relaxed);
    // Read back through the history API (every page of every client's key).
    let mut stored = 0u64;
    for client in 0..64u64 {
        let key = format!("c{client}");
        let mut token: Option<String> = None;
        loop {
            let page =
                keel_store::tracking::runs::metric_history(&st, &run, &key, None, token.as_deref())
                    .await
                    .unwrap();
            stored += page.items.len() as u64;
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
    }
    eprintln!(
        "load: {acked} points acknowledged in {secs} s ({:.0}/s), {stored} stored",
        acked as f64 / secs as f64
    );
    assert_eq!(errors.load(Ordering::Relaxed), 0, "requests failed");
    assert_eq!(stored, acked, "acknowledged points missing from the DB");
    assert!(acked > 0);
}
