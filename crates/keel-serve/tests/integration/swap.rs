//! Alias moves under continuous load: zero failed requests, every response
//! names the version that answered, and both versions answer.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use keel_serve::resolve::{package_version, Resolved, Resolver};
use keel_serve::server::{AppState, ServeConfig, VERSION_HEADER};
use serde_json::json;

use crate::util::*;

/// An alias that tests move by hand (a registry stand-in).
struct Alias(Mutex<PathBuf>);

impl Resolver for Alias {
    fn resolve(&self, _uri: &str) -> keel_serve::Result<Resolved> {
        let p = self.0.lock().unwrap().clone();
        let mut r = package_version(&p)?;
        r.name = "fraud".into();
        Ok(r)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_moves_twice_under_load_without_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let a = make_package(&tmp.path().join("a"), 1.0);
    let b = make_package(&tmp.path().join("b"), 0.001);
    let alias = Arc::new(Alias(Mutex::new(a.clone())));
    let mut cfg = ServeConfig::new("models:/fraud@champion");
    cfg.log = Some(keel_serve::predlog::LogConfig::new(tmp.path().join("log")));
    let s = AppState::new(cfg, alias.clone()).unwrap();
    let va = package_version(&a).unwrap().version;
    let vb = package_version(&b).unwrap().version;
    assert_ne!(va, vb);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..8 {
        let (s, stop) = (s.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let body = if (c + i) % 2 == 0 {
                    json!({"instances": [[50, 40, 3]]}).to_string()
                } else {
                    json!({"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [50, 40, 3]}]}).to_string()
                };
                let path = if (c + i) % 2 == 0 { "/invocations" } else { "/v2/models/fraud/infer" };
                let r = call(&s, post(path, Some("application/json"), body)).await;
                assert_eq!(r.status, 200, "{}", r.text());
                let hv = r.headers[VERSION_HEADER].to_str().unwrap().to_string();
                let j = r.json();
                let bv = j.get("model_version").and_then(|v| v.as_str()).unwrap().to_string();
                assert_eq!(hv, bv);
                seen.push(hv);
            }
            seen
        }));
    }
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(300));
    pause().await;
    *alias.0.lock().unwrap() = b.clone();
    assert!(s.refresh().await);
    pause().await;
    *alias.0.lock().unwrap() = a.clone();
    assert!(s.refresh().await);
    pause().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    assert!(all.len() > 50, "only {} requests", all.len());
    assert!(all.iter().all(|v| *v == va || *v == vb));
    assert!(all.contains(&vb), "the moved alias never answered");
    assert_eq!(all.last().unwrap(), &va);
    assert_eq!(s.primary().model.version, va);
}
