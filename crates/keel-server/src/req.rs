//! The request extractor: MLflow GET calls send their fields as query
//! parameters (repeated keys for lists), everything else as a JSON body.
//! Both are merged into one map with lenient typed accessors, so a handler
//! reads `run_id` the same way whatever the method.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, Method};
use keel_store::tracking::{KeyValue, Metric};
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// The largest JSON body accepted by most endpoints (MLflow's log-batch limit).
pub const MAX_JSON: usize = 1 << 20;
/// The largest JSON body for `runs/log-inputs` (dataset profiles may be 16 MiB).
pub const MAX_JSON_INPUTS: usize = 34 << 20;

/// A request's fields.
#[derive(Debug, Default)]
pub struct Req(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Req {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        Req::parse(Raw::read(req).await?)
    }
}

/// A request's query string and body, read and checked (size, content
/// type) but not parsed.
pub(crate) struct Raw {
    pub query: Option<String>,
    pub body: Bytes,
}

impl Raw {
    pub(crate) async fn read(req: Request) -> ApiResult<Raw> {
        let limit = if req.uri().path().ends_with("/log-inputs") {
            MAX_JSON_INPUTS
        } else {
            MAX_JSON
        };
        let query = req.uri().query().map(str::to_string);
        let method = req.method().clone();
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                ApiError::invalid(format!(
                    "Request body too large or unreadable: the limit is {limit} bytes"
                ))
            })?;
        if !body.is_empty() {
            let is_json = content_type
                .as_deref()
                .is_none_or(|c| c.starts_with("application/json"));
            if !is_json && method != Method::GET {
                // Never echo the header back (reflected XSS, CVE-2023-6568).
                return Err(ApiError::bad_request(
                    "Bad Request. Content-Type must be application/json",
                ));
            }
        }
        Ok(Raw { query, body })
    }
}

impl Req {
    /// The fields of a read request: the JSON body's, then the query's.
    pub(crate) fn parse(raw: Raw) -> ApiResult<Req> {
        let mut map = Map::new();
        if !raw.body.is_empty() {
            match serde_json::from_slice::<Value>(&raw.body) {
                Ok(Value::Object(m)) => map = m,
                Ok(_) => {
                    return Err(ApiError::bad_request(
                        "The request body must be a JSON object",
                    ))
                }
                Err(e) => {
                    return Err(ApiError::bad_request(format!(
                        "Malformed JSON request body: {e}"
                    )))
                }
            }
        }
        if let Some(q) = raw.query {
            for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
                let v = Value::String(v.into_owned());
                match map.get_mut(k.as_ref()) {
                    Some(Value::Array(a)) => a.push(v),
                    Some(existing) => {
                        let prev = existing.take();
                        *existing = Value::Array(vec![prev, v]);
                    }
                    None => {
                        map.insert(k.into_owned(), v);
                    }
                }
            }
        }
        Ok(Req(map))
    }
}

fn scalar(v: &Value) -> Option<&Value> {
    match v {
        Value::Array(a) => a.first(),
        v => Some(v),
    }
}

impl Req {
    /// A string field (numbers and bools are rendered; `null` is absent).
    pub fn str(&self, k: &str) -> Option<String> {
        match scalar(self.0.get(k)?)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A required, non-empty string field.
    pub fn need(&self, k: &str) -> ApiResult<String> {
        self.str(k)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::missing(k))
    }

    /// The run id: `run_id`, or the legacy `run_uuid`.
    pub fn run_id(&self) -> ApiResult<String> {
        self.str("run_id")
            .filter(|s| !s.is_empty())
            .or_else(|| self.str("run_uuid").filter(|s| !s.is_empty()))
            .ok_or_else(|| ApiError::missing("run_id"))
    }

    /// An integer field given as a number or a numeric string.
    pub fn i64(&self, k: &str) -> ApiResult<Option<i64>> {
        match self.0.get(k).and_then(scalar) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                        .map(|f| f as i64)
                })
                .map(Some)
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "Invalid value {n} for parameter '{k}' supplied: expected an integer"
                    ))
                }),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
                ApiError::invalid(format!(
                    "Invalid value '{s}' for parameter '{k}' supplied: expected an integer"
                ))
            }),
            Some(other) => Err(ApiError::invalid(format!(
                "Invalid value {other} for parameter '{k}': expected an integer"
            ))),
        }
    }

    /// A boolean field (`true`/`false`, as JSON or text).
    pub fn bool(&self, k: &str) -> bool {
        match self.0.get(k).and_then(scalar) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        }
    }

    /// A list of strings (a JSON array, repeated query keys, or one value).
    pub fn strs(&self, k: &str) -> Vec<String> {
        let one = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        match self.0.get(k) {
            Some(Value::Array(a)) => a.iter().filter_map(one).collect(),
            Some(v) => one(v).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// A list of objects.
    pub fn objects(&self, k: &str) -> ApiResult<Vec<Req>> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(Req(m.clone())),
                    _ => Err(ApiError::invalid(format!(
                        "Invalid value for parameter '{k}': expected a list of objects"
                    ))),
                })
                .collect(),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => Ok(vec![Req(m)]),
                _ => Err(ApiError::invalid(format!(
                    "Invalid value for parameter '{k}': expected a list of objects"
                ))),
            },
            Some(_) => Err(ApiError::invalid(format!(
                "Invalid value for parameter '{k}': expected a list"
            ))),
        }
    }

    /// A list of objects, moved out of the request (no copy of each object:
    /// a 1,000-point log-batch has 1,000 of them).
    pub fn take_objects(&mut self, k: &str) -> ApiResult<Vec<Req>> {
        match self.0.get_mut(k) {
            Some(Value::Array(a)) if a.iter().all(Value::is_object) => Ok(std::mem::take(a)
                .into_iter()
                .map(|v| match v {
                    Value::Object(m) => Req(m),
                    _ => Req::default(),
                })
                .collect()),
            _ => self.objects(k),
        }
    }

    /// A nested object.
    pub fn object(&self, k: &str) -> Option<Req> {
        match self.0.get(k) {
            Some(Value::Object(m)) => Some(Req(m.clone())),
            _ => None,
        }
    }

    /// `[{key, value}]` pairs; `key` is required.
    pub fn key_values(&self, k: &str) -> ApiResult<Vec<KeyValue>> {
        self.objects(k)?
            .iter()
            .map(|o| {
                Ok(KeyValue::new(
                    o.need("key")?,
                    o.str("value").unwrap_or_default(),
                ))
            })
            .collect()
    }

    /// A double, including MLflow's `"NaN"`, `"Infinity"`, `"-Infinity"`.
    pub fn f64(&self, k: &str) -> ApiResult<f64> {
        match self.0.get(k).and_then(scalar) {
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| ApiError::invalid(format!("Invalid value for '{k}'"))),
            Some(Value::String(s)) => match s.as_str() {
                "NaN" | "nan" => Ok(f64::NAN),
                "Infinity" | "inf" => Ok(f64::INFINITY),
                "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
                s => s.parse().map_err(|_| {
                    ApiError::invalid(format!(
                        "Invalid value '{s}' for parameter '{k}': expected a number"
                    ))
                }),
            },
            None | Some(Value::Null) => Err(ApiError::missing(k)),
            Some(other) => Err(ApiError::invalid(format!(
                "Invalid value {other} for parameter '{k}': expected a number"
            ))),
        }
    }

    /// A metric point (`key`, `value`, `timestamp` required; `step` 0 by default).
    pub fn metric(&self) -> ApiResult<Metric> {
        Ok(Metric {
            key: self.need("key")?,
            value: self.f64("value")?,
            timestamp: self
                .i64("timestamp")?
                .ok_or_else(|| ApiError::missing("timestamp"))?,
            step: self.i64("step")?.unwrap_or(0),
            model_id: self.str("model_id").filter(|s| !s.is_empty()),
            dataset_name: self.str("dataset_name").filter(|s| !s.is_empty()),
            dataset_digest: self.str("dataset_digest").filter(|s| !s.is_empty()),
        })
    }
}
