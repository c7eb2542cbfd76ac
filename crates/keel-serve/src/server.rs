//! The HTTP server: routes, the scoring path shared by both protocols,
//! canary/shadow routing, and the alias watcher that swaps models with no
//! downtime.
//!
//! **Swap:** the loaded model lives in an [`ArcSwap`]; a request takes one
//! `Arc` at its start and keeps it to the end, so a swap never disturbs a
//! request in flight (it finishes on the old version, which is freed when
//! its last request ends). The new version is fully loaded and compiled
//! before the swap; a failed load leaves the old version serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value as J};

use crate::error::{Result, ServeError};
use crate::metrics::{Gauge, Loaded, Protocol, Registry, VersionMetrics};
use crate::model::{Outcome, ServedModel};
use crate::predlog::{now_ms, LogConfig, LogRows, PredictionLog, Record};
use crate::resolve::Resolver;
use crate::{mlflow, v2};

/// Header naming the version that answered.
pub const VERSION_HEADER: &str = "x-keel-model-version";
/// Header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The model URI (the primary: answers requests).
    pub uri: String,
    /// A challenger URI (canary or shadow).
    pub challenger: Option<String>,
    /// Percent of requests the challenger answers (canary), 0–100.
    pub canary_percent: u8,
    /// Score every request with the challenger too, log it, never return it.
    pub shadow: bool,
    /// How often to re-resolve the URIs (alias moves, package changes).
    pub poll: Duration,
    /// The prediction log (none: not logged).
    pub log: Option<LogConfig>,
    /// The monitor's gauges file to export on `/metrics`.
    pub monitor_state: Option<PathBuf>,
}

impl ServeConfig {
    /// Serves `uri` alone, polling every 2 s, logging nowhere.
    pub fn new(uri: impl Into<String>) -> ServeConfig {
        ServeConfig {
            uri: uri.into(),
            challenger: None,
            canary_percent: 0,
            shadow: false,
            poll: Duration::from_secs(2),
            log: None,
            monitor_state: None,
        }
    }
}

/// A loaded version and its metric series.
pub struct Slot {
    /// The model.
    pub model: Arc<ServedModel>,
    /// Its series.
    pub metrics: Arc<VersionMetrics>,
}

/// Shared server state.
pub struct AppState {
    config: ServeConfig,
    resolver: Arc<dyn Resolver>,
    primary: ArcSwap<Slot>,
    challenger: ArcSwapOption<Slot>,
    /// The metrics registry.
    pub metrics: Arc<Registry>,
    log: Option<PredictionLog>,
}

fn load_slot(resolver: &dyn Resolver, uri: &str, metrics: &Registry) -> Result<Slot> {
    let r = resolver.resolve(uri)?;
    let model = ServedModel::load(&r.path, &r.name, &r.version)?;
    metrics.loads.fetch_add(1, Ordering::Relaxed);
    Ok(Slot {
        metrics: metrics.version(&model.name, &model.version),
        model: Arc::new(model),
    })
}

impl AppState {
    /// Resolves and loads the models and starts the prediction log. Fails
    /// (before serving anything) when the primary cannot be loaded.
    pub fn new(config: ServeConfig, resolver: Arc<dyn Resolver>) -> Result<Arc<AppState>> {
        let metrics = Arc::new(Registry::default());
        let primary = load_slot(resolver.as_ref(), &config.uri, &metrics)?;
        let challenger = match &config.challenger {
            Some(uri) => Some(Arc::new(load_slot(resolver.as_ref(), uri, &metrics)?)),
            None => None,
        };
        let log = match &config.log {
            Some(c) => Some(PredictionLog::start(c.clone(), metrics.clone())?),
            None => None,
        };
        Ok(Arc::new(AppState {
            config,
            resolver,
            primary: ArcSwap::from_pointee(primary),
            challenger: ArcSwapOption::new(challenger),
            metrics,
            log,
        }))
    }

    /// The primary model now.
    pub fn primary(&self) -> Arc<Slot> {
        self.primary.load_full()
    }

    /// Re-resolves the URIs once; loads and swaps in any moved version.
    /// Returns whether anything changed.
    pub async fn refresh(self: &Arc<Self>) -> bool {
        let mut changed = false;
        let targets: Vec<(String, bool)> = std::iter::once((self.config.uri.clone(), true))
            .chain(self.config.challenger.clone().map(|c| (c, false)))
            .collect();
        for (uri, is_primary) in targets {
            let me = self.clone();
            let current = if is_primary {
                Some(self.primary.load_full())
            } else {
                self.challenger.load_full()
            };
            let res = tokio::task::spawn_blocking(move || -> Result<Option<Slot>> {
                let r = me.resolver.resolve(&uri)?;
                if current
                    .as_ref()
                    .is_some_and(|c| c.model.version == r.version && c.model.path == r.path)
                {
                    return Ok(None);
                }
                let model = ServedModel::load(&r.path, &r.name, &r.version)?;
                Ok(Some(Slot {
                    metrics: me.metrics.version(&model.name, &model.version),
                    model: Arc::new(model),
                }))
            })
            .await;
            match res {
                Ok(Ok(Some(slot))) => {
                    self.metrics.loads.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "keel serve: {} now {} version {} ({})",
                        if is_primary { "primary" } else { "challenger" },
                        slot.model.name,
                        slot.model.version,
                        slot.model.path.display()
                    );
                    if is_primary {
                        self.primary.store(Arc::new(slot));
                    } else {
                        self.challenger.store(Some(Arc::new(slot)));
                    }
                    changed = true;
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    self.metrics.load_failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("keel serve: keeping the current version: {e}");
                }
                Err(e) => {
                    self.metrics.load_failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("keel serve: keeping the current version: the load task failed: {e}");
                }
            }
        }
        changed
    }

    /// Polls the URIs forever (spawn it).
    pub async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.refresh().await;
        }
    }

    fn loaded(&self) -> Vec<Loaded> {
        let mut v = Vec::new();
        let p = self.primary.load();
        v.push(Loaded {
            role: "primary",
            model: p.model.name.clone(),
            version: p.model.version.clone(),
            load_seconds: p.model.load_seconds,
        });
        if let Some(c) = self.challenger.load_full() {
            v.push(Loaded {
                role: "challenger",
                model: c.model.name.clone(),
                version: c.model.version.clone(),
                load_seconds: c.model.load_seconds,
            });
        }
        v
    }

    fn monitor_gauges(&self) -> Vec<Gauge> {
        let Some(path) = &self.config.monitor_state else {
            return Vec::new();
        };
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<crate::monitor::State>(&b).ok())
            .map(|s| s.gauges)
            .unwrap_or_default()
    }

    /// Picks the slot that answers: the challenger for the canary share
    /// (or when the URL names its version), else the primary.
    fn route(&self, version: Option<&str>) -> Result<(Arc<Slot>, &'static str)> {
        let primary = self.primary.load_full();
        let challenger = self.challenger.load_full();
        if let Some(v) = version {
            if primary.model.version == v {
                return Ok((primary, "primary"));
            }
            if let Some(c) = challenger.filter(|c| c.model.version == v) {
                return Ok((c, "canary"));
            }
            return Err(ServeError::NotFound(format!(
                "Request for unknown model: '{}' version {v} is not found (serving version {})",
                primary.model.name, primary.model.version
            )));
        }
        if let Some(c) = challenger {
            if !self.config.shadow
                && self.config.canary_percent > 0
                && rand::random_range(0..100u8) < self.config.canary_percent
            {
                self.metrics.canary_requests.fetch_add(1, Ordering::Relaxed);
                return Ok((c, "canary"));
            }
        }
        Ok((primary, "primary"))
    }

    /// The scoring path both protocols share: route, build inputs, run,
    /// log (durably, before answering), count.
    async fn score<F>(
        &self,
        protocol: Protocol,
        request_id: &str,
        version: Option<&str>,
        build: F,
    ) -> std::result::Result<(Arc<Slot>, Outcome), (Option<Arc<Slot>>, ServeError)>
    where
        F: Fn(&ServedModel) -> Result<Vec<(String, keel_ml::onnx::Tensor)>>,
    {
        let start = Instant::now();
        let (slot, role) = self.route(version).map_err(|e| (None, e))?;
        let fail = |slot: &Arc<Slot>, e: ServeError| {
            slot.metrics.request(protocol, e.status());
            if let Some(log) = &self.log {
                log.append_detached(self.record(
                    slot,
                    request_id,
                    role,
                    protocol,
                    e.status(),
                    start,
                    None,
                    &[],
                ));
            }
            (Some(slot.clone()), e)
        };
        let inputs = match build(&slot.model) {
            Ok(i) => i,
            Err(e) => return Err(fail(&slot, e)),
        };
        let logged_inputs: Vec<keel_ml::onnx::Tensor> = if self.log.is_some() {
            inputs.iter().map(|(_, t)| t.clone()).collect()
        } else {
            Vec::new()
        };
        let shadow = self.shadow_slot(role);
        let shadow_inputs = shadow.as_ref().map(|s| build(&s.model));
        let outcome = match slot.model.predict(inputs) {
            Ok(o) => o,
            Err(e) => return Err(fail(&slot, e)),
        };
        if let Some(log) = &self.log {
            let rec = self.record(
                &slot,
                request_id,
                role,
                protocol,
                200,
                start,
                Some(&outcome),
                &logged_inputs,
            );
            if let Err(e) = log.append(rec).await {
                return Err(fail(&slot, e));
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        slot.metrics.request(protocol, 200);
        slot.metrics.predicted(
            elapsed,
            outcome.compute.as_secs_f64(),
            &outcome.labels,
            &outcome.scores,
        );
        if let (Some(s), Some(Ok(inputs))) = (shadow, shadow_inputs) {
            self.run_shadow(s, inputs, request_id.to_string(), protocol);
        }
        Ok((slot, outcome))
    }

    fn shadow_slot(&self, role: &str) -> Option<Arc<Slot>> {
        if self.config.shadow && role == "primary" {
            self.challenger.load_full()
        } else {
            None
        }
    }

    /// Scores the challenger off the response path and logs it as `shadow`.
    fn run_shadow(
        &self,
        slot: Arc<Slot>,
        inputs: Vec<(String, keel_ml::onnx::Tensor)>,
        request_id: String,
        protocol: Protocol,
    ) {
        self.metrics.shadow_requests.fetch_add(1, Ordering::Relaxed);
        let log = self.log.clone();
        let record_inputs: Vec<_> = inputs.iter().map(|(_, t)| t.clone()).collect();
        tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            let (status, outcome) = match slot.model.predict(inputs) {
                Ok(o) => (200, Some(o)),
                Err(e) => (e.status(), None),
            };
            if let Some(o) = &outcome {
                slot.metrics.predicted(
                    start.elapsed().as_secs_f64(),
                    o.compute.as_secs_f64(),
                    &o.labels,
                    &o.scores,
                );
            }
            slot.metrics.request(protocol, status);
            if let Some(log) = log {
                log.append_detached(make_record(
                    &slot,
                    &request_id,
                    "shadow",
                    protocol,
                    status,
                    start,
                    outcome.as_ref(),
                    &record_inputs,
                ));
            }
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        slot: &Slot,
        request_id: &str,
        role: &'static str,
        protocol: Protocol,
        status: u16,
        start: Instant,
        outcome: Option<&Outcome>,
        inputs: &[keel_ml::onnx::Tensor],
    ) -> Record {
        make_record(
            slot, request_id, role, protocol, status, start, outcome, inputs,
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn make_record(
    slot: &Slot,
    request_id: &str,
    role: &'static str,
    protocol: Protocol,
    status: u16,
    start: Instant,
    outcome: Option<&Outcome>,
    inputs: &[keel_ml::onnx::Tensor],
) -> Record {
    let rows = outcome.map_or_else(LogRows::default, |o| {
        slot.model.log_rows(inputs, &o.labels, &o.scores)
    });
    Record {
        request_id: request_id.to_string(),
        timestamp_ms: now_ms(),
        model: slot.model.name.clone(),
        version: slot.model.version.clone(),
        role,
        protocol: match protocol {
            Protocol::V2 => "v2",
            Protocol::Mlflow => "mlflow",
        },
        status,
        latency_seconds: start.elapsed().as_secs_f64(),
        cpu_seconds: outcome.map_or(0.0, |o| o.compute.as_secs_f64()),
        columns: slot.model.log_columns.clone(),
        rows,
    }
}

/// The router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v2/health/live", get(|| async { StatusCode::OK }))
        .route("/v2/health/ready", get(|| async { StatusCode::OK }))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{name}", get(model_metadata))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(model_metadata_v),
        )
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready_v),
        )
        .route("/v2/models/{name}/config", get(model_config))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_v))
        .route("/ping", get(ping))
        .route("/health", get(ping))
        .route("/version", get(version))
        .route("/invocations", post(invocations))
        .route("/feedback", post(feedback))
        .route("/metrics", get(metrics))
        .fallback(|| async { v2_error(&ServeError::NotFound("Not Found: no such route".into())) })
        .layer(DefaultBodyLimit::max(256 << 20))
        .with_state(state)
}

fn json_response(status: u16, body: &J) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap_or_default()))
        .unwrap_or_default()
}

fn v2_error(e: &ServeError) -> Response<Body> {
    json_response(e.status(), &json!({"error": e.to_string()}))
}

fn with_version(mut resp: Response<Body>, slot: Option<&Slot>, request_id: &str) -> Response<Body> {
    if let Some(s) = slot {
        if let Ok(v) = HeaderValue::from_str(&s.model.version) {
            resp.headers_mut().insert(VERSION_HEADER, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

fn check_name(state: &AppState, name: &str) -> Result<Arc<Slot>> {
    let p = state.primary();
    if p.model.name == name
        || state
            .challenger
            .load()
            .as_ref()
            .is_some_and(|c| c.model.name == name)
    {
        Ok(p)
    } else {
        Err(ServeError::NotFound(format!(
            "Request for unknown model: '{name}' is not found (this server serves '{}')",
            p.model.name
        )))
    }
}

async fn server_metadata() -> Response<Body> {
    json_response(
        200,
        &json!({"name": "keel", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"]}),
    )
}

async fn model_metadata(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Response<Body> {
    match check_name(&s, &name) {
        Ok(p) => json_response(200, &v2::metadata(&p.model)),
        Err(e) => v2_error(&e),
    }
}

async fn model_metadata_v(
    State(s): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Response<Body> {
    match check_name(&s, &name).and_then(|_| s.route(Some(&version))) {
        Ok((slot, _)) => json_response(200, &v2::metadata(&slot.model)),
        Err(e) => v2_error(&e),
    }
}

async fn model_ready(State(s): State<Arc<AppState>>, Path(name): Path<String>) -> Response<Body> {
    match check_name(&s, &name) {
        Ok(_) => json_response(200, &json!({})),
        Err(e) => v2_error(&e),
    }
}

async fn model_ready_v(
    State(s): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Response<Body> {
    match check_name(&s, &name).and_then(|_| s.route(Some(&version))) {
        Ok(_) => json_response(200, &json!({})),
        Err(e) => v2_error(&e),
    }
}

async fn model_config(State(s): State<Arc<AppState>>, Path(name): Path<String>) -> Response<Body> {
    match check_name(&s, &name) {
        Ok(p) => {
            let t = |x: &crate::model::TensorSpec| json!({"name": x.name, "data_type": format!("TYPE_{}", x.ty.v2().replace("BYTES", "STRING")), "dims": x.shape});
            json_response(
                200,
                &json!({"name": p.model.name, "platform": "onnxruntime_onnx", "max_batch_size": 0,
                        "input": p.model.inputs.iter().map(t).collect::<Vec<_>>(),
                        "output": p.model.outputs.iter().map(t).collect::<Vec<_>>()}),
            )
        }
        Err(e) => v2_error(&e),
    }
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(new_request_id, str::to_string)
}

/// A fresh UUIDv7 request id. Its random bits come from `rand`'s
/// thread-local generator (seeded once from the OS), not from the
/// `getrandom` system call that `Uuid::now_v7` makes on every request.
fn new_request_id() -> String {
    uuid::Builder::from_unix_timestamp_millis(now_ms() as u64, &rand::random())
        .into_uuid()
        .to_string()
}

async fn infer(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    infer_inner(s, name, None, headers, body).await
}

async fn infer_v(
    State(s): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    infer_inner(s, name, Some(version), headers, body).await
}

async fn infer_inner(
    s: Arc<AppState>,
    name: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let header_rid = request_id(&headers);
    if let Err(e) = check_name(&s, &name) {
        s.primary().metrics.request(Protocol::V2, e.status());
        return with_version(v2_error(&e), None, &header_rid);
    }
    let header_len = headers
        .get("inference-header-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let decoded = match v2::decode(&body, header_len) {
        Ok(d) => d,
        Err(e) => {
            s.primary().metrics.request(Protocol::V2, e.status());
            return with_version(v2_error(&e), Some(&s.primary()), &header_rid);
        }
    };
    let rid = decoded.id.clone().unwrap_or(header_rid);
    let inputs = decoded.inputs;
    let result = s
        .score(Protocol::V2, &rid, version.as_deref(), |m| {
            m.check_inputs(inputs.clone())
        })
        .await;
    match result {
        Ok((slot, outcome)) => {
            match v2::encode(
                &slot.model,
                decoded.id.as_deref(),
                &outcome.outputs,
                decoded.outputs.as_deref(),
                decoded.binary_default,
            ) {
                Ok(enc) => {
                    let mut b = Response::builder().status(200);
                    b = match enc.header_len {
                        Some(n) => b
                            .header("content-type", "application/octet-stream")
                            .header("inference-header-content-length", n),
                        None => b.header("content-type", "application/json"),
                    };
                    with_version(
                        b.body(Body::from(enc.body)).unwrap_or_default(),
                        Some(&slot),
                        &rid,
                    )
                }
                Err(e) => with_version(v2_error(&e), Some(&slot), &rid),
            }
        }
        Err((slot, e)) => with_version(v2_error(&e), slot.as_deref(), &rid),
    }
}

async fn ping() -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from("\n"))
        .unwrap_or_default()
}

async fn version() -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(format!("keel {}", env!("CARGO_PKG_VERSION"))))
        .unwrap_or_default()
}

fn mlflow_error(e: &ServeError) -> Response<Body> {
    if let ServeError::UnsupportedMediaType(m) = e {
        return Response::builder()
            .status(415)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Body::from(m.clone()))
            .unwrap_or_default();
    }
    let code = match e.status() {
        400 => "BAD_REQUEST",
        404 => "RESOURCE_DOES_NOT_EXIST",
        503 => "TEMPORARILY_UNAVAILABLE",
        _ => "INTERNAL_ERROR",
    };
    json_response(
        e.status(),
        &json!({"error_code": code, "message": e.to_string()}),
    )
}

async fn invocations(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let rid = request_id(&headers);
    let media = match mlflow::media(headers.get("content-type").and_then(|v| v.to_str().ok())) {
        Ok(m) => m,
        Err(e) => {
            s.primary().metrics.request(Protocol::Mlflow, e.status());
            return with_version(mlflow_error(&e), Some(&s.primary()), &rid);
        }
    };
    match s
        .score(Protocol::Mlflow, &rid, None, |m| {
            mlflow::decode(m, media, &body)
        })
        .await
    {
        Ok((slot, outcome)) => {
            let body = json!({
                "predictions": slot.model.mlflow_predictions(&outcome),
                "model_version": slot.model.version,
                "request_id": rid,
            });
            with_version(json_response(200, &body), Some(&slot), &rid)
        }
        Err((slot, e)) => with_version(mlflow_error(&e), slot.as_deref(), &rid),
    }
}

/// `POST /feedback`: `{"request_id": "…", "label": …, "row": n?}` or a
/// list of those (or `{"labels": [...]}`); answered after the labels are
/// durably in the feedback log.
async fn feedback(State(s): State<Arc<AppState>>, body: Bytes) -> Response<Body> {
    let parse = || -> Result<Vec<crate::predlog::Feedback>> {
        let v: J = serde_json::from_slice(&body)
            .map_err(|e| ServeError::BadRequest(format!("invalid JSON: {e}")))?;
        let items = match &v {
            J::Array(a) => a.clone(),
            J::Object(o) if o.contains_key("labels") => o["labels"]
                .as_array()
                .cloned()
                .ok_or_else(|| ServeError::BadRequest("`labels` must be a list".into()))?,
            J::Object(_) => vec![v.clone()],
            _ => {
                return Err(ServeError::BadRequest(
                    "expected an object or a list of objects".into(),
                ))
            }
        };
        let ts = now_ms();
        items
            .iter()
            .enumerate()
            .map(|(i, it)| {
                let rid = it.get("request_id").and_then(J::as_str).ok_or_else(|| {
                    ServeError::BadRequest(format!("item {i}: `request_id` (a string) is required"))
                })?;
                let label = match it.get("label") {
                    Some(J::String(s)) => s.clone(),
                    Some(J::Number(n)) => n.to_string(),
                    Some(J::Bool(b)) => u8::from(*b).to_string(),
                    _ => {
                        return Err(ServeError::BadRequest(format!(
                            "item {i}: `label` (a string, number or boolean) is required"
                        )))
                    }
                };
                let row = match it.get("row") {
                    None | Some(J::Null) => None,
                    Some(r) => Some(r.as_u64().ok_or_else(|| {
                        ServeError::BadRequest(format!(
                            "item {i}: `row` must be a non-negative integer"
                        ))
                    })? as usize),
                };
                Ok(crate::predlog::Feedback {
                    request_id: rid.to_string(),
                    row,
                    label,
                    timestamp_ms: ts,
                })
            })
            .collect()
    };
    let items = match parse() {
        Ok(i) => i,
        Err(e) => return v2_error(&e),
    };
    let Some(log) = &s.log else {
        return v2_error(&ServeError::NotFound(
            "feedback needs the prediction log (start with --log-dir)".into(),
        ));
    };
    let n = items.len();
    match log.feedback(items).await {
        Ok(()) => {
            s.metrics.feedback.fetch_add(n as u64, Ordering::Relaxed);
            json_response(200, &json!({"accepted": n}))
        }
        Err(e) => v2_error(&e),
    }
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response<Body> {
    let text = s.metrics.render(&s.loaded(), &s.monitor_gauges());
    Response::builder()
        .status(200)
        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
        .body(Body::from(text))
        .unwrap_or_default()
}

/// Binds `addr`, starts the watcher, and serves until Ctrl-C/SIGTERM.
pub async fn serve(state: Arc<AppState>, addr: SocketAddr) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::io(format!("binding {addr}"), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::io("local address", e))?;
    let p = state.primary();
    eprintln!(
        "keel serve: {} version {} on http://{local} (Open Inference Protocol /v2, MLflow /invocations, /metrics)",
        p.model.name, p.model.version
    );
    let watcher = tokio::spawn(state.clone().watch());
    let app = router(state);
    // Without TCP_NODELAY a response written in more than one segment can
    // wait for the client's delayed ACK (~40 ms) on a keep-alive connection.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("installing a SIGTERM handler");
                tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
            }
            #[cfg(not(unix))]
            let _ = ctrl_c.await;
        })
        .await;
    watcher.abort();
    result.map_err(|e| ServeError::io("serving", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_request_ids_are_distinct_time_ordered_uuid_v7() {
        let before = now_ms() as u64;
        let ids: Vec<String> = (0..20_000).map(|_| new_request_id()).collect();
        let after = now_ms() as u64;
        let mut seen = std::collections::HashSet::new();
        for id in &ids {
            let u = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(u.get_version_num(), 7, "{id}");
            let (secs, nanos) = u.get_timestamp().expect("v7 has a timestamp").to_unix();
            let ms = secs * 1000 + u64::from(nanos) / 1_000_000;
            assert!(
                (before..=after).contains(&ms),
                "{id}: {ms} outside {before}..={after}"
            );
            assert!(seen.insert(u), "duplicate id {id}");
        }
    }
}
