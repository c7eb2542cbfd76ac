//! keel's HTTP API: an MLflow-compatible tracking, model-registry and
//! artifact server over keel's stores.
//!
//! The unmodified `mlflow` Python client (3.x) works against it: set
//! `MLFLOW_TRACKING_URI=http://127.0.0.1:5000`. Every handler parses the
//! request, calls one operation in `keel_store::tracking` or
//! `keel_store::registry` (the same ones the CLI calls), and renders
//! MLflow's JSON ([`wire`]). Errors are MLflow's `{"error_code", "message"}`
//! ([`error`]).
//!
//! [`app`] builds the router (tests drive it with `tower::ServiceExt::oneshot`);
//! [`spawn`] serves it on a socket, e.g. on an ephemeral loopback port for
//! the duration of a pipeline run.
//!
//! ```no_run
//! # async fn demo(store: keel_store::Store) -> std::io::Result<()> {
//! let server = keel_server::spawn(store, "127.0.0.1:0".parse().unwrap(), keel_server::Config::loopback()).await?;
//! println!("MLFLOW_TRACKING_URI=http://{}", server.addr);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod artifacts;
mod auth;
mod batch;
pub mod error;
mod registry;
pub mod req;
mod tracking;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{middleware, Json, Router};
use keel_store::Store;
use serde_json::json;

pub use auth::Config;
use error::ApiError;

/// The MLflow version whose API this server implements (`GET /version`).
pub const MLFLOW_API_VERSION: &str = "3.18.0";

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The stores.
    pub store: Store,
    /// Server configuration (auth, allowed hosts).
    pub config: Arc<Config>,
    /// Where uploads are spooled before they enter the object store.
    pub tmp_dir: PathBuf,
    tokens: Arc<auth::TokenCache>,
    /// PostgreSQL only: SQLite groups commits in the store's write lane.
    writer: Option<tokio::sync::mpsc::Sender<WriteJob>>,
}

type WriteJob = (
    keel_store::tracking::runs::Batch,
    tokio::sync::oneshot::Sender<keel_store::tracking::TrackingResult<()>>,
);

/// The most metric points one group commit carries.
const GROUP_METRICS: usize = 20_000;

/// Group commit on PostgreSQL: one task drains every pending log-* request
/// into one transaction (`runs::log_batches`), so concurrent clients share
/// a commit. (On SQLite, `runs::log_batch` groups them itself, without the
/// hand-off to this task.)
fn start_writer(store: Store) -> tokio::sync::mpsc::Sender<WriteJob> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<WriteJob>(4096);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut points = first.0.metrics.len();
            let mut jobs = vec![first];
            while points < GROUP_METRICS && jobs.len() < 512 {
                match rx.try_recv() {
                    Ok(j) => {
                        points += j.0.metrics.len();
                        jobs.push(j);
                    }
                    Err(_) => break,
                }
            }
            let (batches, replies): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
            let results = keel_store::tracking::runs::log_batches(&store, &batches).await;
            for (reply, r) in replies.into_iter().zip(results) {
                let _ = reply.send(r);
            }
        }
    });
    tx
}

impl AppState {
    /// Logs a batch, committed together with concurrent requests' batches.
    pub(crate) async fn log(
        &self,
        batch: keel_store::tracking::runs::Batch,
    ) -> error::ApiResult<()> {
        let Some(writer) = &self.writer else {
            let b = batch;
            keel_store::tracking::runs::log_batch(
                &self.store,
                &b.run_id,
                &b.metrics,
                &b.params,
                &b.tags,
            )
            .await?;
            return Ok(());
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        writer
            .send((batch, tx))
            .await
            .map_err(|_| ApiError::internal("the metrics writer stopped"))?;
        rx.await
            .map_err(|_| ApiError::internal("the metrics writer stopped"))??;
        Ok(())
    }
}

impl AppState {
    /// State for `store` with `config`; creates the upload spool directory
    /// and starts the group-commit writer (call inside a tokio runtime).
    pub fn new(store: Store, config: Config) -> std::io::Result<AppState> {
        let tmp_dir = store.project.keel_dir().join("tmp").join("server-uploads");
        std::fs::create_dir_all(&tmp_dir)?;
        Ok(AppState {
            config: Arc::new(config),
            tmp_dir,
            tokens: Arc::new(auth::TokenCache::default()),
            writer: (!store.db.groups_commits()).then(|| start_writer(store.clone())),
            store,
        })
    }
}

async fn not_found() -> ApiError {
    ApiError::no_endpoint("This API endpoint is not implemented by keel")
}

async fn server_info() -> impl IntoResponse {
    Json(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
        "presigned_upload_model_id_supported": false,
        "features_enabled": {"gateway": false},
    }))
}

fn mlflow_routes() -> Router<AppState> {
    use registry as rg;
    use tracking as tr;
    Router::new()
        .route("/experiments/create", post(tr::create_experiment))
        .route("/experiments/get", get(tr::get_experiment))
        .route("/experiments/get-by-name", get(tr::get_experiment_by_name))
        .route(
            "/experiments/search",
            post(tr::search_experiments).get(tr::search_experiments),
        )
        .route("/experiments/update", post(tr::update_experiment))
        .route("/experiments/delete", post(tr::delete_experiment))
        .route("/experiments/restore", post(tr::restore_experiment))
        .route(
            "/experiments/set-experiment-tag",
            post(tr::set_experiment_tag),
        )
        .route(
            "/experiments/delete-experiment-tag",
            post(tr::delete_experiment_tag),
        )
        .route("/runs/create", post(tr::create_run))
        .route("/runs/get", get(tr::get_run))
        .route("/runs/update", post(tr::update_run))
        .route("/runs/delete", post(tr::delete_run))
        .route("/runs/restore", post(tr::restore_run))
        .route("/runs/search", post(tr::search_runs).get(tr::search_runs))
        .route("/runs/log-metric", post(tr::log_metric))
        .route("/runs/log-parameter", post(tr::log_param))
        .route("/runs/log-batch", post(tr::log_batch))
        .route("/runs/set-tag", post(tr::set_tag))
        .route("/runs/delete-tag", post(tr::delete_tag))
        .route("/runs/log-inputs", post(tr::log_inputs))
        .route("/runs/outputs", post(tr::log_outputs))
        .route("/metrics/get-history", get(tr::metric_history))
        .route("/artifacts/list", get(artifacts::list_legacy))
        .route("/logged-models", post(tr::create_logged_model))
        .route("/logged-models/search", post(tr::search_logged_models))
        .route(
            "/logged-models/{id}",
            get(tr::get_logged_model)
                .patch(tr::finalize_logged_model)
                .delete(tr::delete_logged_model),
        )
        .route(
            "/logged-models/{id}/tags",
            axum::routing::patch(tr::set_logged_model_tags),
        )
        .route(
            "/logged-models/{id}/tags/{key}",
            axum::routing::delete(tr::delete_logged_model_tag),
        )
        .route(
            "/logged-models/{id}/params",
            post(tr::log_logged_model_params),
        )
        .route("/registered-models/create", post(rg::create_model))
        .route("/registered-models/get", get(rg::get_model))
        .route("/registered-models/search", get(rg::search_models))
        .route(
            "/registered-models/update",
            axum::routing::patch(rg::update_model),
        )
        .route("/registered-models/rename", post(rg::rename_model))
        .route(
            "/registered-models/delete",
            axum::routing::delete(rg::delete_model),
        )
        .route(
            "/registered-models/get-latest-versions",
            post(rg::latest_versions).get(rg::latest_versions),
        )
        .route("/registered-models/set-tag", post(rg::set_model_tag))
        .route(
            "/registered-models/delete-tag",
            axum::routing::delete(rg::delete_model_tag),
        )
        .route(
            "/registered-models/alias",
            post(rg::set_alias)
                .get(rg::get_by_alias)
                .delete(rg::delete_alias),
        )
        .route("/model-versions/create", post(rg::create_version))
        .route("/model-versions/get", get(rg::get_version))
        .route(
            "/model-versions/update",
            axum::routing::patch(rg::update_version),
        )
        .route(
            "/model-versions/transition-stage",
            post(rg::transition_stage),
        )
        .route(
            "/model-versions/delete",
            axum::routing::delete(rg::delete_version),
        )
        .route("/model-versions/search", get(rg::search_versions))
        .route("/model-versions/get-download-uri", get(rg::download_uri))
        .route("/model-versions/set-tag", post(rg::set_version_tag))
        .route(
            "/model-versions/delete-tag",
            axum::routing::delete(rg::delete_version_tag),
        )
}

/// The whole API under `prefix` (`""`, or e.g. `/mlflow` when behind a
/// path-prefixing proxy).
pub fn app_with_prefix(state: AppState, prefix: &str) -> Router {
    let api = Router::new()
        .nest("/api/2.0/mlflow", mlflow_routes())
        .route("/api/2.0/mlflow-artifacts/artifacts", get(artifacts::list))
        .route(
            "/api/2.0/mlflow-artifacts/artifacts/{*path}",
            get(artifacts::download)
                .put(artifacts::upload)
                .delete(artifacts::delete),
        )
        .route(
            "/api/2.0/mlflow-artifacts/mpu/{*path}",
            post(artifacts::multipart),
        )
        .route("/api/3.0/mlflow/server-info", get(server_info))
        .route("/health", get(|| async { "OK" }))
        .route("/version", get(|| async { MLFLOW_API_VERSION }))
        .fallback(not_found)
        // Artifact uploads stream to disk with no cap; JSON bodies are
        // capped in `req::Req`.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), auth::guard))
        .with_state(state);
    if prefix.is_empty() || prefix == "/" {
        api
    } else {
        Router::new().nest(prefix, api).fallback(not_found)
    }
}

/// The whole API at the root.
pub fn app(state: AppState) -> Router {
    app_with_prefix(state, "")
}

/// A running server.
pub struct Server {
    /// The address it listens on (the real port when `:0` was asked).
    pub addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Stops accepting connections, lets in-flight requests finish, and waits.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}

/// Serves the API on `addr` in the current tokio runtime.
pub async fn spawn(store: Store, addr: SocketAddr, config: Config) -> std::io::Result<Server> {
    config.check_bind(&addr)?;
    let state = AppState::new(store, config)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    // Without TCP_NODELAY, a response hyper writes in two segments waits for
    // the client's delayed ACK (~40 ms on Linux) before the second goes out:
    // every call of a sequential client (the mlflow library) would pay it.
    // (It fails only on a socket the peer already closed: nothing to do.)
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let router = app(state);
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(Server {
        addr,
        shutdown: tx,
        task,
    })
}
