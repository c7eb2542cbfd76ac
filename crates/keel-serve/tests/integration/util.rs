use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::Request;
use keel_ml::package::{self, KeelMetadata};
use keel_ml::train::{self, Dataset, LogisticRegressionParams, TrainParams};
use keel_serve::resolve::LocalResolver;
use keel_serve::server::{router, AppState, ServeConfig};
use tower::ServiceExt;

/// A deterministic pseudo-random stream (no dependency on rand's algorithms).
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

pub const FEATURES: [&str; 3] = ["amount", "age", "hour"];

/// Rows of the synthetic population; `shift` moves `amount` and `age`.
pub fn rows(n: usize, seed: u64, shift: f64) -> Vec<[f64; 3]> {
    let mut r = Lcg(seed);
    (0..n)
        .map(|_| {
            [
                50.0 + 20.0 * r.normal() + 40.0 * shift,
                40.0 + 10.0 * r.normal() + 15.0 * shift,
                (r.next() * 24.0).floor(),
            ]
        })
        .collect()
}

pub fn label(x: &[f64; 3], noise: f64) -> u8 {
    u8::from(0.05 * (x[0] - 50.0) + 0.08 * (x[1] - 40.0) + noise > 0.0)
}

/// Writes `data.csv` (features + label) and returns its path.
pub fn write_csv(path: &Path, rows: &[[f64; 3]], seed: u64) {
    let mut r = Lcg(seed);
    let mut s = String::from("amount,age,hour,label\n");
    for x in rows {
        s.push_str(&format!(
            "{},{},{},{}\n",
            x[0],
            x[1],
            x[2],
            label(x, r.normal())
        ));
    }
    std::fs::write(path, s).unwrap();
}

/// Trains a logistic regression on the synthetic population and writes a
/// package into `dir`; `c` varies the model (a different version).
pub fn make_package(dir: &Path, c: f64) -> PathBuf {
    let data = rows(600, 7, 0.0);
    let mut r = Lcg(11);
    let ds = Dataset {
        features: FEATURES.iter().map(|s| s.to_string()).collect(),
        x: data.iter().flat_map(|x| x.iter().copied()).collect(),
        y: data.iter().map(|x| label(x, r.normal())).collect(),
        classes: vec!["0".into(), "1".into()],
    };
    let params = TrainParams::LogisticRegression(LogisticRegressionParams {
        c,
        ..Default::default()
    });
    let m = train::train(&ds, &params).unwrap();
    let meta = KeelMetadata {
        features: m.features.clone(),
        target: Some("label".into()),
        classes: m.classes.clone(),
        ..Default::default()
    };
    package::write(dir, &m.onnx, &meta, &[data[0].to_vec()]).unwrap();
    dir.to_path_buf()
}

pub fn state(config: ServeConfig) -> Arc<AppState> {
    AppState::new(config, Arc::new(LocalResolver::new())).unwrap()
}

pub struct Resp {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn call(state: &Arc<AppState>, req: Request<Body>) -> Resp {
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

pub fn post(path: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::post(path);
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(body.into()).unwrap()
}

pub fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}
