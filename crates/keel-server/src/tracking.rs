//! Experiments, runs, metrics and logged models.

use axum::extract::{Path, State};
use axum::Json;
use keel_store::tracking::experiments as exps;
use keel_store::tracking::logged_models::{self as lm, ModelStatus};
use keel_store::tracking::runs::{self, DatasetInput, RunStatus};
use keel_store::tracking::{KeyValue, Lifecycle, ViewType};
use serde_json::{json, Value};

use crate::batch::BatchBody;
use crate::error::{ApiError, ApiResult};
use crate::req::Req;
use crate::wire;
use crate::AppState;

type J = ApiResult<Json<Value>>;

fn ok() -> J {
    Ok(Json(json!({})))
}

fn exp_id(r: &Req, k: &str) -> ApiResult<i64> {
    Ok(exps::parse_id(&r.need(k)?)?)
}

fn max_results(r: &Req, default: i64) -> ApiResult<i64> {
    Ok(r.i64("max_results")?.unwrap_or(default))
}

fn view(r: &Req, k: &str) -> ApiResult<ViewType> {
    Ok(ViewType::parse(&r.str(k).unwrap_or_default())?)
}

pub async fn create_experiment(State(s): State<AppState>, r: Req) -> J {
    let name = r.need("name")?;
    let id = exps::create(
        &s.store,
        &name,
        r.str("artifact_location").as_deref(),
        &r.key_values("tags")?,
    )
    .await?;
    Ok(Json(json!({"experiment_id": id.to_string()})))
}

pub async fn get_experiment(State(s): State<AppState>, r: Req) -> J {
    let e = exps::get(&s.store, exp_id(&r, "experiment_id")?).await?;
    Ok(Json(json!({"experiment": wire::experiment(&e)})))
}

pub async fn get_experiment_by_name(State(s): State<AppState>, r: Req) -> J {
    let e = exps::get_by_name(&s.store, &r.need("experiment_name")?).await?;
    Ok(Json(json!({"experiment": wire::experiment(&e)})))
}

pub async fn search_experiments(State(s): State<AppState>, r: Req) -> J {
    let page = exps::search(
        &s.store,
        view(&r, "view_type")?,
        &r.str("filter").unwrap_or_default(),
        &r.strs("order_by"),
        max_results(&r, 1000)?,
        r.str("page_token").as_deref(),
    )
    .await?;
    let items: Vec<Value> = page.items.iter().map(wire::experiment).collect();
    Ok(Json(wire::with_token(
        json!({"experiments": items}),
        page.next_page_token,
    )))
}

pub async fn update_experiment(State(s): State<AppState>, r: Req) -> J {
    exps::rename(&s.store, exp_id(&r, "experiment_id")?, &r.need("new_name")?).await?;
    ok()
}

pub async fn delete_experiment(State(s): State<AppState>, r: Req) -> J {
    exps::set_lifecycle(&s.store, exp_id(&r, "experiment_id")?, Lifecycle::Deleted).await?;
    ok()
}

pub async fn restore_experiment(State(s): State<AppState>, r: Req) -> J {
    exps::set_lifecycle(&s.store, exp_id(&r, "experiment_id")?, Lifecycle::Active).await?;
    ok()
}

pub async fn set_experiment_tag(State(s): State<AppState>, r: Req) -> J {
    let tag = KeyValue::new(r.need("key")?, r.str("value").unwrap_or_default());
    exps::set_tag(&s.store, exp_id(&r, "experiment_id")?, &tag).await?;
    ok()
}

pub async fn delete_experiment_tag(State(s): State<AppState>, r: Req) -> J {
    exps::delete_tag(&s.store, exp_id(&r, "experiment_id")?, &r.need("key")?).await?;
    ok()
}

pub async fn create_run(State(s): State<AppState>, r: Req) -> J {
    let exp = match r.str("experiment_id").filter(|e| !e.is_empty()) {
        Some(e) => exps::parse_id(&e)?,
        None => 0,
    };
    let run = runs::create(
        &s.store,
        exp,
        &r.str("user_id").unwrap_or_default(),
        r.str("run_name").as_deref(),
        r.i64("start_time")?,
        &r.key_values("tags")?,
    )
    .await?;
    Ok(Json(json!({"run": wire::run(&run)})))
}

pub async fn get_run(State(s): State<AppState>, r: Req) -> J {
    let run = runs::get(&s.store, &r.run_id()?).await?;
    Ok(Json(json!({"run": wire::run(&run)})))
}

pub async fn update_run(State(s): State<AppState>, r: Req) -> J {
    let status = r
        .str("status")
        .filter(|s| !s.is_empty())
        .map(|s| RunStatus::parse(&s))
        .transpose()?;
    let info = runs::update(
        &s.store,
        &r.run_id()?,
        status,
        r.i64("end_time")?,
        r.str("run_name").as_deref(),
    )
    .await?;
    Ok(Json(json!({"run_info": wire::run_info(&info)})))
}

pub async fn delete_run(State(s): State<AppState>, r: Req) -> J {
    runs::set_lifecycle(&s.store, &r.run_id()?, Lifecycle::Deleted).await?;
    ok()
}

pub async fn restore_run(State(s): State<AppState>, r: Req) -> J {
    runs::set_lifecycle(&s.store, &r.run_id()?, Lifecycle::Active).await?;
    ok()
}

pub async fn search_runs(State(s): State<AppState>, r: Req) -> J {
    let ids = r
        .strs("experiment_ids")
        .iter()
        .map(|e| exps::parse_id(e))
        .collect::<Result<Vec<_>, _>>()?;
    let page = runs::search(
        &s.store,
        &ids,
        &r.str("filter").unwrap_or_default(),
        view(&r, "run_view_type")?,
        max_results(&r, 1000)?,
        &r.strs("order_by"),
        r.str("page_token").as_deref(),
    )
    .await?;
    let items: Vec<Value> = page.items.iter().map(wire::run).collect();
    Ok(Json(wire::with_token(
        json!({"runs": items}),
        page.next_page_token,
    )))
}

pub async fn log_metric(State(s): State<AppState>, r: Req) -> J {
    let m = r.metric()?;
    s.log(runs::Batch {
        run_id: r.run_id()?,
        metrics: vec![m],
        params: vec![],
        tags: vec![],
    })
    .await?;
    ok()
}

pub async fn log_param(State(s): State<AppState>, r: Req) -> J {
    let p = KeyValue::new(r.need("key")?, r.str("value").unwrap_or_default());
    s.log(runs::Batch {
        run_id: r.run_id()?,
        metrics: vec![],
        params: vec![p],
        tags: vec![],
    })
    .await?;
    ok()
}

pub async fn set_tag(State(s): State<AppState>, r: Req) -> J {
    let t = KeyValue::new(r.need("key")?, r.str("value").unwrap_or_default());
    s.log(runs::Batch {
        run_id: r.run_id()?,
        metrics: vec![],
        params: vec![],
        tags: vec![t],
    })
    .await?;
    ok()
}

pub async fn delete_tag(State(s): State<AppState>, r: Req) -> J {
    runs::delete_tag(&s.store, &r.run_id()?, &r.need("key")?).await?;
    ok()
}

pub async fn log_batch(State(s): State<AppState>, BatchBody(batch): BatchBody) -> J {
    s.log(batch).await?;
    ok()
}

pub async fn metric_history(State(s): State<AppState>, r: Req) -> J {
    let page = runs::metric_history(
        &s.store,
        &r.run_id()?,
        &r.need("metric_key")?,
        r.i64("max_results")?,
        r.str("page_token").as_deref(),
    )
    .await?;
    let items: Vec<Value> = page.items.iter().map(|m| wire::metric(m, None)).collect();
    Ok(Json(wire::with_token(
        json!({"metrics": items}),
        page.next_page_token,
    )))
}

pub async fn log_inputs(State(s): State<AppState>, r: Req) -> J {
    let mut datasets = Vec::new();
    for d in r.objects("datasets")? {
        let ds = d
            .object("dataset")
            .ok_or_else(|| ApiError::missing("dataset"))?;
        datasets.push(DatasetInput {
            name: ds.need("name")?,
            digest: ds.need("digest")?,
            source_type: ds.str("source_type").unwrap_or_default(),
            source: ds.str("source").unwrap_or_default(),
            schema: ds.str("schema"),
            profile: ds.str("profile"),
            tags: d.key_values("tags")?,
        });
    }
    let models = r
        .objects("models")?
        .iter()
        .map(|m| m.need("model_id"))
        .collect::<ApiResult<Vec<_>>>()?;
    runs::log_inputs(&s.store, &r.run_id()?, &datasets, &models).await?;
    ok()
}

pub async fn log_outputs(State(s): State<AppState>, r: Req) -> J {
    let models = r
        .objects("models")?
        .iter()
        .map(|m| Ok((m.need("model_id")?, m.i64("step")?.unwrap_or(0))))
        .collect::<ApiResult<Vec<_>>>()?;
    runs::log_outputs(&s.store, &r.run_id()?, &models).await?;
    ok()
}

pub async fn create_logged_model(State(s): State<AppState>, r: Req) -> J {
    let m = lm::create(
        &s.store,
        exp_id(&r, "experiment_id")?,
        r.str("name").as_deref(),
        r.str("model_type").as_deref(),
        r.str("source_run_id").as_deref(),
        &r.key_values("params")?,
        &r.key_values("tags")?,
    )
    .await?;
    Ok(Json(json!({"model": wire::logged_model(&m)})))
}

pub async fn get_logged_model(State(s): State<AppState>, Path(id): Path<String>, r: Req) -> J {
    let m = lm::get(&s.store, &id, r.bool("allow_deleted")).await?;
    Ok(Json(json!({"model": wire::logged_model(&m)})))
}

pub async fn finalize_logged_model(State(s): State<AppState>, Path(id): Path<String>, r: Req) -> J {
    let status = ModelStatus::parse(&r.need("status")?)?;
    let m = lm::finalize(&s.store, &id, status).await?;
    Ok(Json(json!({"model": wire::logged_model(&m)})))
}

pub async fn delete_logged_model(State(s): State<AppState>, Path(id): Path<String>) -> J {
    lm::delete(&s.store, &id).await?;
    ok()
}

pub async fn set_logged_model_tags(State(s): State<AppState>, Path(id): Path<String>, r: Req) -> J {
    lm::set_tags(&s.store, &id, &r.key_values("tags")?).await?;
    let m = lm::get(&s.store, &id, false).await?;
    Ok(Json(json!({"model": wire::logged_model(&m)})))
}

pub async fn delete_logged_model_tag(
    State(s): State<AppState>,
    Path((id, key)): Path<(String, String)>,
) -> J {
    lm::delete_tag(&s.store, &id, &key).await?;
    ok()
}

pub async fn log_logged_model_params(
    State(s): State<AppState>,
    Path(id): Path<String>,
    r: Req,
) -> J {
    lm::log_params(&s.store, &id, &r.key_values("params")?).await?;
    ok()
}

pub async fn search_logged_models(State(s): State<AppState>, r: Req) -> J {
    let ids = r
        .strs("experiment_ids")
        .iter()
        .map(|e| exps::parse_id(e))
        .collect::<Result<Vec<_>, _>>()?;
    let mut order = Vec::new();
    for o in r.objects("order_by")? {
        let field = o.need("field_name")?;
        let asc =
            o.0.get("ascending")
                .and_then(Value::as_bool)
                .unwrap_or(true);
        order.push(format!(
            "`{}` {}",
            field.replace('`', ""),
            if asc { "ASC" } else { "DESC" }
        ));
    }
    let page = lm::search(
        &s.store,
        &ids,
        &r.str("filter").unwrap_or_default(),
        &order,
        max_results(&r, 100)?,
        r.str("page_token").as_deref(),
    )
    .await?;
    let items: Vec<Value> = page.items.iter().map(wire::logged_model).collect();
    Ok(Json(wire::with_token(
        json!({"models": items}),
        page.next_page_token,
    )))
}
