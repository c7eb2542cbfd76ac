//! Domain values → MLflow's JSON shapes. The only place that knows them.

use keel_store::registry::{ModelVersion, RegisteredModel};
use keel_store::tracking::experiments::Experiment;
use keel_store::tracking::logged_models::LoggedModel;
use keel_store::tracking::runs::{Run, RunInfo};
use keel_store::tracking::{KeyValue, Metric};
use serde_json::{json, Map, Value};

/// A double as MLflow sends it: NaN and ±∞ as strings.
pub fn double(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v == f64::INFINITY {
        json!("Infinity")
    } else if v == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(v)
    }
}

/// `[{key, value}]`.
pub fn kvs(items: &[KeyValue]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|t| json!({"key": t.key, "value": t.value}))
            .collect(),
    )
}

/// A metric point.
pub fn metric(m: &Metric, run_id: Option<&str>) -> Value {
    let mut o = Map::new();
    o.insert("key".into(), json!(m.key));
    o.insert("value".into(), double(m.value));
    o.insert("timestamp".into(), json!(m.timestamp));
    o.insert("step".into(), json!(m.step));
    for (k, v) in [
        ("model_id", &m.model_id),
        ("dataset_name", &m.dataset_name),
        ("dataset_digest", &m.dataset_digest),
    ] {
        if let Some(v) = v {
            o.insert(k.into(), json!(v));
        }
    }
    if let Some(r) = run_id {
        o.insert("run_id".into(), json!(r));
    }
    Value::Object(o)
}

/// An experiment.
pub fn experiment(e: &Experiment) -> Value {
    json!({
        "experiment_id": e.experiment_id.to_string(),
        "name": e.name,
        "artifact_location": e.artifact_location,
        "lifecycle_stage": e.lifecycle.as_str(),
        "creation_time": e.creation_time,
        "last_update_time": e.last_update_time,
        "tags": kvs(&e.tags),
        "workspace": "default",
    })
}

/// A run's info.
pub fn run_info(i: &RunInfo) -> Value {
    let mut o = json!({
        "run_id": i.run_id,
        "run_uuid": i.run_id,
        "experiment_id": i.experiment_id.to_string(),
        "run_name": i.run_name,
        "user_id": i.user_id,
        "status": i.status.as_str(),
        "start_time": i.start_time,
        "artifact_uri": i.artifact_uri(),
        "lifecycle_stage": i.lifecycle.as_str(),
    });
    if let Some(end) = i.end_time {
        o["end_time"] = json!(end);
    }
    o
}

/// A run.
pub fn run(r: &Run) -> Value {
    let datasets: Vec<Value> = r
        .dataset_inputs
        .iter()
        .map(|d| {
            let mut ds = json!({"name": d.name, "digest": d.digest, "source_type": d.source_type, "source": d.source});
            if let Some(s) = &d.schema {
                ds["schema"] = json!(s);
            }
            if let Some(p) = &d.profile {
                ds["profile"] = json!(p);
            }
            json!({"tags": kvs(&d.tags), "dataset": ds})
        })
        .collect();
    json!({
        "info": run_info(&r.info),
        "data": {
            "metrics": r.metrics.iter().map(|m| metric(m, None)).collect::<Vec<_>>(),
            "params": kvs(&r.params),
            "tags": kvs(&r.tags),
        },
        "inputs": {
            "dataset_inputs": datasets,
            "model_inputs": r.model_inputs.iter().map(|m| json!({"model_id": m})).collect::<Vec<_>>(),
        },
        "outputs": {
            "model_outputs": r.model_outputs.iter().map(|(m, s)| json!({"model_id": m, "step": s})).collect::<Vec<_>>(),
        },
    })
}

/// A logged model.
pub fn logged_model(m: &LoggedModel) -> Value {
    let mut info = json!({
        "model_id": m.model_id,
        "experiment_id": m.experiment_id.to_string(),
        "name": m.name,
        "artifact_uri": m.artifact_uri(),
        "status": m.status.as_str(),
        "creation_timestamp_ms": m.creation_timestamp,
        "last_updated_timestamp_ms": m.last_updated_timestamp,
        "tags": kvs(&m.tags),
        "registrations": [],
    });
    if let Some(t) = &m.model_type {
        info["model_type"] = json!(t);
    }
    if let Some(r) = &m.source_run_id {
        info["source_run_id"] = json!(r);
    }
    json!({
        "info": info,
        "data": {
            "params": kvs(&m.params),
            "metrics": m.metrics.iter().map(|(run, x)| metric(x, Some(run))).collect::<Vec<_>>(),
        },
    })
}

/// A model version.
pub fn model_version(v: &ModelVersion) -> Value {
    let mut o = json!({
        "name": v.name,
        "version": v.version.to_string(),
        "source": v.source,
        "status": v.status,
        "current_stage": v.current_stage.as_str(),
        "description": v.description,
        "user_id": v.user_id,
        "run_link": v.run_link,
        "creation_timestamp": v.creation_timestamp,
        "last_updated_timestamp": v.last_updated_timestamp,
        "tags": kvs(&v.tags),
        "aliases": v.aliases,
    });
    if let Some(r) = &v.run_id {
        o["run_id"] = json!(r);
    }
    if let Some(m) = &v.model_id {
        o["model_id"] = json!(m);
    }
    o
}

/// A registered model.
pub fn registered_model(m: &RegisteredModel) -> Value {
    json!({
        "name": m.name,
        "description": m.description,
        "user_id": m.user_id,
        "creation_timestamp": m.creation_timestamp,
        "last_updated_timestamp": m.last_updated_timestamp,
        "tags": kvs(&m.tags),
        "aliases": m.aliases.iter().map(|(a, v)| json!({"alias": a, "version": v.to_string()})).collect::<Vec<_>>(),
        "latest_versions": m.latest_versions.iter().map(model_version).collect::<Vec<_>>(),
    })
}

/// Adds `next_page_token` when there is one.
pub fn with_token(mut v: Value, token: Option<String>) -> Value {
    if let Some(t) = token {
        v["next_page_token"] = json!(t);
    }
    v
}
