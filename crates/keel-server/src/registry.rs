//! The model registry.

use axum::extract::State;
use axum::{Extension, Json};
use keel_store::registry::{self as reg, Stage};
use keel_store::tracking::{Actor, KeyValue};
use serde_json::{json, Value};

use crate::error::ApiResult;
use crate::req::Req;
use crate::wire;
use crate::AppState;

type J = ApiResult<Json<Value>>;

fn ok() -> J {
    Ok(Json(json!({})))
}

fn version(r: &Req) -> ApiResult<i64> {
    Ok(reg::version_number(&r.need("version")?)?)
}

pub async fn create_model(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Req,
) -> J {
    let m = reg::create_model(
        &s.store,
        &r.need("name")?,
        &r.str("description").unwrap_or_default(),
        &r.key_values("tags")?,
        &actor,
    )
    .await?;
    Ok(Json(
        json!({"registered_model": wire::registered_model(&m)}),
    ))
}

pub async fn get_model(State(s): State<AppState>, r: Req) -> J {
    let m = reg::get_model(&s.store, &r.need("name")?).await?;
    Ok(Json(
        json!({"registered_model": wire::registered_model(&m)}),
    ))
}

pub async fn search_models(State(s): State<AppState>, r: Req) -> J {
    let page = reg::search_models(
        &s.store,
        &r.str("filter").unwrap_or_default(),
        &r.strs("order_by"),
        r.i64("max_results")?.unwrap_or(100),
        r.str("page_token").as_deref(),
    )
    .await?;
    let items: Vec<Value> = page.items.iter().map(wire::registered_model).collect();
    Ok(Json(wire::with_token(
        json!({"registered_models": items}),
        page.next_page_token,
    )))
}

pub async fn update_model(State(s): State<AppState>, r: Req) -> J {
    let m = reg::update_model(
        &s.store,
        &r.need("name")?,
        &r.str("description").unwrap_or_default(),
    )
    .await?;
    Ok(Json(
        json!({"registered_model": wire::registered_model(&m)}),
    ))
}

pub async fn rename_model(State(s): State<AppState>, r: Req) -> J {
    let m = reg::rename_model(&s.store, &r.need("name")?, &r.need("new_name")?).await?;
    Ok(Json(
        json!({"registered_model": wire::registered_model(&m)}),
    ))
}

pub async fn delete_model(State(s): State<AppState>, r: Req) -> J {
    reg::delete_model(&s.store, &r.need("name")?).await?;
    ok()
}

pub async fn latest_versions(State(s): State<AppState>, r: Req) -> J {
    let stages = r
        .strs("stages")
        .iter()
        .map(|st| Stage::parse(st))
        .collect::<Result<Vec<_>, _>>()?;
    let name = r.need("name")?;
    reg::get_model(&s.store, &name).await?;
    let vs = reg::latest_versions(&s.store, &name, &stages).await?;
    Ok(Json(
        json!({"model_versions": vs.iter().map(wire::model_version).collect::<Vec<_>>()}),
    ))
}

pub async fn set_model_tag(State(s): State<AppState>, r: Req) -> J {
    let t = KeyValue::new(r.need("key")?, r.str("value").unwrap_or_default());
    reg::set_model_tag(&s.store, &r.need("name")?, &t).await?;
    ok()
}

pub async fn delete_model_tag(State(s): State<AppState>, r: Req) -> J {
    reg::delete_model_tag(&s.store, &r.need("name")?, &r.need("key")?).await?;
    ok()
}

pub async fn set_alias(State(s): State<AppState>, Extension(actor): Extension<Actor>, r: Req) -> J {
    reg::set_alias(
        &s.store,
        &r.need("name")?,
        &r.need("alias")?,
        version(&r)?,
        &actor,
        "via the MLflow API",
    )
    .await?;
    ok()
}

pub async fn delete_alias(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Req,
) -> J {
    reg::delete_alias(&s.store, &r.need("name")?, &r.need("alias")?, &actor).await?;
    ok()
}

pub async fn get_by_alias(State(s): State<AppState>, r: Req) -> J {
    let v = reg::get_by_alias(&s.store, &r.need("name")?, &r.need("alias")?).await?;
    Ok(Json(json!({"model_version": wire::model_version(&v)})))
}

pub async fn create_version(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Req,
) -> J {
    let v = reg::create_version(
        &s.store,
        &r.need("name")?,
        &r.need("source")?,
        r.str("run_id").as_deref(),
        r.str("model_id").as_deref(),
        &r.key_values("tags")?,
        &r.str("run_link").unwrap_or_default(),
        &r.str("description").unwrap_or_default(),
        &actor,
    )
    .await?;
    Ok(Json(json!({"model_version": wire::model_version(&v)})))
}

pub async fn get_version(State(s): State<AppState>, r: Req) -> J {
    let v = reg::get_version(&s.store, &r.need("name")?, version(&r)?).await?;
    Ok(Json(json!({"model_version": wire::model_version(&v)})))
}

pub async fn update_version(State(s): State<AppState>, r: Req) -> J {
    let v = reg::update_version(
        &s.store,
        &r.need("name")?,
        version(&r)?,
        &r.str("description").unwrap_or_default(),
    )
    .await?;
    Ok(Json(json!({"model_version": wire::model_version(&v)})))
}

pub async fn transition_stage(State(s): State<AppState>, r: Req) -> J {
    let stage = Stage::parse(&r.need("stage")?)?;
    let v = reg::transition_stage(
        &s.store,
        &r.need("name")?,
        version(&r)?,
        stage,
        r.bool("archive_existing_versions"),
    )
    .await?;
    Ok(Json(json!({"model_version": wire::model_version(&v)})))
}

pub async fn delete_version(State(s): State<AppState>, r: Req) -> J {
    reg::delete_version(&s.store, &r.need("name")?, version(&r)?).await?;
    ok()
}

pub async fn search_versions(State(s): State<AppState>, r: Req) -> J {
    let page = reg::search_versions(
        &s.store,
        &r.str("filter").unwrap_or_default(),
        &r.strs("order_by"),
        r.i64("max_results")?.unwrap_or(10_000),
        r.str("page_token").as_deref(),
    )
    .await?;
    let items: Vec<Value> = page.items.iter().map(wire::model_version).collect();
    Ok(Json(wire::with_token(
        json!({"model_versions": items}),
        page.next_page_token,
    )))
}

pub async fn download_uri(State(s): State<AppState>, r: Req) -> J {
    let v = reg::get_version(&s.store, &r.need("name")?, version(&r)?).await?;
    Ok(Json(json!({"artifact_uri": v.storage})))
}

pub async fn set_version_tag(State(s): State<AppState>, r: Req) -> J {
    let t = KeyValue::new(r.need("key")?, r.str("value").unwrap_or_default());
    reg::set_version_tag(&s.store, &r.need("name")?, version(&r)?, &t).await?;
    ok()
}

pub async fn delete_version_tag(State(s): State<AppState>, r: Req) -> J {
    reg::delete_version_tag(&s.store, &r.need("name")?, version(&r)?, &r.need("key")?).await?;
    ok()
}
