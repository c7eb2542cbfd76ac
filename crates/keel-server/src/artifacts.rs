//! The artifact proxy (`/api/2.0/mlflow-artifacts/artifacts`): uploads are
//! streamed to a temporary file and stored in the object store; downloads
//! are served from the object store by hash. Every path is confined by
//! `keel_store::tracking::artifacts::resolve`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;
use keel_store::tracking::{artifacts as art, TrackingError};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::error::{ApiError, ApiResult};
use crate::req::Req;
use crate::AppState;

/// Streams the request body into a temporary file, then stores it.
pub async fn upload(
    State(s): State<AppState>,
    Path(path): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let (owner, rel) = art::resolve_for_write(&s.store, &path).await?;
    let tmp = s
        .tmp_dir
        .join(format!("up-{}", uuid::Uuid::new_v4().simple()));
    let io = |e: std::io::Error| {
        ApiError::from(TrackingError::Store(keel_store::StoreError::Io {
            op: "writing upload",
            path: s.tmp_dir.clone(),
            source: e,
        }))
    };
    let result = async {
        let mut f = tokio::fs::File::create(&tmp).await.map_err(io)?;
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?;
            if let Ok(data) = frame.into_data() {
                f.write_all(&data).await.map_err(io)?;
            }
        }
        f.flush().await.map_err(io)?;
        drop(f);
        art::put_file(&s.store, &owner, &rel, &tmp)
            .await
            .map_err(ApiError::from)
    }
    .await;
    let _ = tokio::fs::remove_file(&tmp).await;
    result?;
    Ok(Json(json!({})))
}

/// Serves a file artifact; a missing one is a 404 (the client relies on it).
pub async fn download(State(s): State<AppState>, Path(path): Path<String>) -> ApiResult<Response> {
    let (owner, rel) = art::resolve(&s.store, &path).await?;
    let Some(bytes) = art::read(&s.store, &owner, &rel).await? else {
        return Err(ApiError::not_found(format!(
            "Artifact '{rel}' does not exist"
        )));
    };
    let mut resp = Response::new(Body::from(bytes));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("sandbox"),
    );
    Ok(resp)
}

/// Deletes a file or a directory of artifacts.
pub async fn delete(State(s): State<AppState>, Path(path): Path<String>) -> ApiResult<Json<Value>> {
    let (owner, rel) = art::resolve_for_write(&s.store, &path).await?;
    art::delete(&s.store, &owner, &rel).await?;
    Ok(Json(json!({})))
}

fn listing(entries: &[art::Entry]) -> Value {
    if entries.is_empty() {
        return json!({});
    }
    let files: Vec<Value> = entries
        .iter()
        .map(|e| {
            let base = e.path.rsplit('/').next().unwrap_or(&e.path);
            match e.size {
                Some(size) if !e.is_dir => {
                    json!({"path": base, "is_dir": false, "file_size": size})
                }
                _ => json!({"path": base, "is_dir": true}),
            }
        })
        .collect();
    json!({"files": files})
}

/// Lists a directory (`?path=`): basenames; a file or a missing path is `{}`.
pub async fn list(State(s): State<AppState>, r: Req) -> ApiResult<Json<Value>> {
    let path = r.str("path").unwrap_or_default();
    let (owner, rel) = match art::resolve(&s.store, &path).await {
        Ok(x) => x,
        Err(TrackingError::NotFound(_)) => return Ok(Json(json!({}))),
        Err(e) => return Err(e.into()),
    };
    Ok(Json(listing(&art::list(&s.store, &owner, &rel).await?)))
}

/// The legacy `GET /mlflow/artifacts/list?run_id=&path=`.
pub async fn list_legacy(State(s): State<AppState>, r: Req) -> ApiResult<Json<Value>> {
    let run = keel_store::tracking::runs::get_info(&s.store, &r.run_id()?).await?;
    let rel = keel_store::tracking::validate::artifact_path(&r.str("path").unwrap_or_default())?;
    let owner = art::Owner::Run {
        experiment_id: run.experiment_id,
        run_id: run.run_id.clone(),
    };
    let entries = art::list(&s.store, &owner, &rel).await?;
    let files: Vec<Value> = entries
        .iter()
        .map(|e| match e.size {
            Some(size) if !e.is_dir => json!({"path": e.path, "is_dir": false, "file_size": size}),
            _ => json!({"path": e.path, "is_dir": true}),
        })
        .collect();
    Ok(Json(json!({"root_uri": owner.uri(), "files": files})))
}

/// Multipart uploads are not offered (server-info says so too).
pub async fn multipart() -> Response {
    (
        StatusCode::NOT_IMPLEMENTED,
        Json(json!({
            "error_code": "NOT_IMPLEMENTED",
            "message": "Multipart upload is not supported for the current artifact repository",
        })),
    )
        .into_response()
}
