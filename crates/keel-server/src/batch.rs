//! The `runs/log-batch` body, decoded straight into a [`Batch`].
//!
//! The general extractor ([`Req`]) builds a `serde_json::Value` tree (a map
//! per metric point) and reads fields from it leniently; for a 1,000-point
//! batch that tree was half of the request's server time once points were
//! stored in chunks. This decoder reads the shape the MLflow client sends
//! (`run_id`, `metrics` with numeric fields, `params`, `tags`) with typed
//! serde structs instead. It answers only bodies it can take exactly as the
//! general path would; anything else (an array where an object belongs, a
//! number sent as a string, `null`, an empty key, no `run_id`, a query
//! string…) returns `None`, and the general path decodes the body and words
//! the error. Fields the general path does not read are ignored by both. So
//! there is one set of rules, and the test below holds the two to the same
//! answers.

use axum::extract::{FromRequest, Request};
use keel_store::tracking::runs::Batch;
use keel_store::tracking::{KeyValue, Metric};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::req::{Raw, Req};

/// The extractor of `runs/log-batch`.
pub struct BatchBody(pub Batch);

impl<S: Send + Sync> FromRequest<S> for BatchBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let raw = Raw::read(req).await?;
        if raw.query.is_none() {
            if let Some(b) = decode(&raw.body) {
                return Ok(BatchBody(b));
            }
        }
        general(Req::parse(raw)?).map(BatchBody)
    }
}

/// The general path: fields read leniently from the parsed request.
fn general(mut r: Req) -> ApiResult<Batch> {
    let metrics = r
        .take_objects("metrics")?
        .iter()
        .map(Req::metric)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Batch {
        run_id: r.run_id()?,
        metrics,
        params: r.key_values("params")?,
        tags: r.key_values("tags")?,
    })
}

// Fields the general path does not read are ignored here too (the
// fluent `mlflow.log_metrics` sends a `run_id` in every metric). A
// `run_uuid` is ignored as the general path ignores it when `run_id` is
// given; without `run_id` this decoder refuses the body.
#[derive(Deserialize)]
struct Body {
    run_id: String,
    #[serde(default)]
    metrics: Vec<Object<Point>>,
    #[serde(default)]
    params: Vec<Object<Pair>>,
    #[serde(default)]
    tags: Vec<Object<Pair>>,
}

#[derive(Deserialize)]
struct Point {
    key: String,
    value: Value64,
    timestamp: i64,
    #[serde(default)]
    step: i64,
    model_id: Option<String>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

#[derive(Deserialize)]
struct Pair {
    key: String,
    value: Option<String>,
}

/// A struct read from a JSON object only. serde's derived `Deserialize`
/// also takes an array of the fields in order, which the general path
/// refuses.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A metric value: a JSON number, or MLflow's spelling of NaN and ±∞ (the
/// strings [`Req::f64`] takes without parsing).
struct Value64(f64);

impl<'de> Deserialize<'de> for Value64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Value64;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value64, E> {
                Ok(Value64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value64, E> {
                Ok(Value64(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value64, E> {
                Ok(Value64(v as f64))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Value64, E> {
                match s {
                    "NaN" | "nan" => Ok(Value64(f64::NAN)),
                    "Infinity" | "inf" => Ok(Value64(f64::INFINITY)),
                    "-Infinity" | "-inf" => Ok(Value64(f64::NEG_INFINITY)),
                    _ => Err(E::custom("another string")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The batch, if the body is one the general path would take as is.
fn decode(body: &[u8]) -> Option<Batch> {
    let Object(b): Object<Body> = serde_json::from_slice(body).ok()?;
    let named = |k: &str| !k.is_empty();
    let given = |s: Option<String>| s.filter(|s| !s.is_empty());
    if !named(&b.run_id)
        || !b.metrics.iter().all(|m| named(&m.0.key))
        || !b.params.iter().chain(&b.tags).all(|p| named(&p.0.key))
    {
        return None;
    }
    let pairs = |v: Vec<Object<Pair>>| -> Vec<KeyValue> {
        v.into_iter()
            .map(|Object(p)| KeyValue::new(p.key, p.value.unwrap_or_default()))
            .collect()
    };
    Some(Batch {
        run_id: b.run_id,
        metrics: b
            .metrics
            .into_iter()
            .map(|Object(m)| Metric {
                key: m.key,
                value: m.value.0,
                timestamp: m.timestamp,
                step: m.step,
                model_id: given(m.model_id),
                dataset_name: given(m.dataset_name),
                dataset_digest: given(m.dataset_digest),
            })
            .collect(),
        params: pairs(b.params),
        tags: pairs(b.tags),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(body: &str) -> (Option<String>, Result<String, String>) {
        let show = |b: &Batch| format!("{b:?}");
        let fast = decode(body.as_bytes()).as_ref().map(show);
        let raw = Raw {
            query: None,
            body: body.as_bytes().to_vec().into(),
        };
        let slow = Req::parse(raw)
            .and_then(general)
            .map(|b| show(&b))
            .map_err(|e| format!("{e:?}"));
        (fast, slow)
    }

    /// What the fast path answers is what the general path answers.
    #[test]
    fn the_fast_decoder_agrees_with_the_general_path() {
        let taken = [
            // What mlflow's client sends.
            r#"{"run_id": "abc", "metrics": [{"key": "m", "value": 0.5, "timestamp": 1700000000000, "step": 3},
                {"key": "n", "value": "NaN", "timestamp": 1, "step": 0}],
                "params": [{"key": "p", "value": "1"}], "tags": [{"key": "t", "value": "v"}]}"#,
            r#"{"run_id": "abc", "metrics": [], "params": [], "tags": []}"#,
            r#"{"run_id": "abc"}"#,
            r#"{"run_id": "r", "metrics": [{"key": "a", "value": 7, "timestamp": -5},
                {"key": "b", "value": -1e308, "timestamp": 0, "step": -2},
                {"key": "c", "value": "Infinity", "timestamp": 0}, {"key": "c", "value": "-inf", "timestamp": 0},
                {"key": "d", "value": 18446744073709551615, "timestamp": 9223372036854775807},
                {"key": "e\u00e9\n", "value": 0.1000000000000000055511151231257827, "timestamp": 1,
                 "model_id": "m-1", "dataset_name": "", "dataset_digest": null}]}"#,
            r#"{"run_id": "r", "tags": [{"key": "k"}, {"key": "k2", "value": null}, {"key": "k3", "value": ""}]}"#,
            // What `mlflow.log_metrics` sends: a run id in every metric.
            r#"{"run_id": "abc", "metrics": [{"key": "loss", "value": "NaN", "timestamp": 5, "step": 3, "run_id": "abc"}]}"#,
            // Fields the general path does not read, `run_uuid` next to `run_id`.
            r#"{"run_uuid": "old", "run_id": "new", "extra": [1, {"a": null}], "params": [{"key": "p", "value": "v", "x": 1}]}"#,
        ];
        for body in taken {
            let (fast, slow) = both(body);
            assert!(fast.is_some(), "the fast path refused {body}");
            assert_eq!(fast.as_deref(), slow.as_deref().ok(), "{body}");
        }
        let refused = [
            r#"{"run_uuid": "abc", "metrics": []}"#,
            r#"{"run_id": "", "metrics": []}"#,
            r#"{"run_id": 5}"#,
            r#"{"run_id": "r", "metrics": null}"#,
            r#"{"run_id": "r", "metrics": {"key": "m"}}"#,
            r#"{"run_id": "r", "metrics": [{"key": "m", "value": "0.5", "timestamp": 1}]}"#,
            r#"{"run_id": "r", "metrics": [{"key": "m", "value": "x", "timestamp": 1}]}"#,
            r#"{"run_id": "r", "metrics": [{"key": "m", "value": 1, "timestamp": "12"}]}"#,
            r#"{"run_id": "r", "metrics": [{"key": "m", "value": 1, "timestamp": 1.0}]}"#,
            r#"{"run_id": "r", "metrics": [{"key": "m", "value": 1, "timestamp": 9223372036854775808}]}"#,
            r#"{"run_id": "r", "metrics": [{"key": "m", "value": 1, "timestamp": null}]}"#,
            r#"{"run_id": "r", "metrics": [{"key": "m", "value": 1}]}"#,
            r#"{"run_id": "r", "metrics": [{"key": "m", "timestamp": 1}]}"#,
            r#"{"run_id": "r", "metrics": [{"key": "", "value": 1, "timestamp": 1}]}"#,
            r#"{"run_id": "r", "metrics": [{"key": "m", "value": 1, "timestamp": 1, "step": null}]}"#,
            // Arrays where objects belong (serde would read them as structs).
            r#"["r"]"#,
            r#"["r", [["m", 0.5, 7, 3]], [["k", "v"]], []]"#,
            r#"{"run_id": "r", "metrics": [["m", 1, 5]]}"#,
            r#"{"run_id": "r", "params": [["k", "v"]]}"#,
            r#"{"run_id": "r", "tags": [["k"]]}"#,
            r#"{"run_id": "r", "metrics": [{"key": "m", "value": 1, "timestamp": 1, "key": "n"}]}"#,
            r#"{"run_id": "r", "params": [{"key": "p", "value": 1}]}"#,
            r#"{"run_id": "r", "params": [{"value": "v"}]}"#,
            r#"{"run_id": "r", "tags": "[]"}"#,
            r#"{"run_id": "r"} trailing"#,
            r#"[1, 2]"#,
            r#"{"run_id": "r", "metrics": [{"key": "m", "value": 1, "timestamp": 1}], "#,
        ];
        for body in refused {
            let (fast, _) = both(body);
            assert!(fast.is_none(), "the fast path took {body}");
        }
    }
}
