//! MLflow's scoring protocol (`POST /invocations`): JSON with exactly one
//! of `dataframe_split`, `dataframe_records`, `instances`, `inputs` (plus an
//! optional `params`), or CSV with a header row.

use std::fmt;

use keel_ml::onnx::Tensor;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value as J;

use crate::error::{Result, ServeError};
use crate::model::{Cell, Frame, RowsBuilder, ServedModel};

/// MLflow's message for a JSON body without exactly one known key.
pub const PROTOCOL_MESSAGE: &str = "Invalid input. The input must be a JSON dictionary with exactly one of the input fields \
{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}. Received dictionary with input fields: ";

/// The body's media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// `application/json` (or no Content-Type).
    Json,
    /// `text/csv`.
    Csv,
}

/// Checks `Content-Type` as MLflow does: `application/json` or `text/csv`,
/// the only parameter allowed being `charset=utf-8`; missing means JSON.
pub fn media(content_type: Option<&str>) -> Result<Media> {
    let Some(ct) = content_type else {
        return Ok(Media::Json);
    };
    let mut parts = ct.split(';').map(str::trim);
    let base = parts.next().unwrap_or("").to_ascii_lowercase();
    for p in parts.filter(|p| !p.is_empty()) {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        if !k.trim().eq_ignore_ascii_case("charset") {
            return Err(ServeError::UnsupportedMediaType(format!(
                "Unrecognized content type parameters: {}.",
                k.trim()
            )));
        }
        if !v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8") {
            return Err(ServeError::UnsupportedMediaType(format!(
                "The scoring server only supports UTF-8 (charset={})",
                v.trim()
            )));
        }
    }
    match base.as_str() {
        "application/json" => Ok(Media::Json),
        "text/csv" => Ok(Media::Csv),
        other => Err(ServeError::UnsupportedMediaType(format!(
            "This predictor only supports the following content types: Types: ['text/csv', 'application/json'], got '{other}'."
        ))),
    }
}

fn cell(v: &J, col: &str, row: usize) -> Result<Cell> {
    Ok(match v {
        J::Number(n) => Cell::Num(n.as_f64().unwrap_or(f64::NAN)),
        J::String(s) => Cell::Str(s.clone()),
        J::Bool(b) => Cell::Bool(*b),
        J::Null => Cell::Null,
        _ => {
            return Err(ServeError::BadRequest(format!(
                "column '{col}', row {row}: nested values are not supported (got {v})"
            )))
        }
    })
}

fn records(items: &[J], key: &str) -> Result<Frame> {
    let mut frame = Frame::default();
    for (r, item) in items.iter().enumerate() {
        let obj = item.as_object().ok_or_else(|| {
            ServeError::BadRequest(format!(
                "`{key}` row {r}: expected an object of column: value"
            ))
        })?;
        for (k, v) in obj {
            let c = match frame.columns.iter().position(|c| c == k) {
                Some(c) => c,
                None => {
                    frame.columns.push(k.clone());
                    frame.data.push(vec![Cell::Null; r]);
                    frame.columns.len() - 1
                }
            };
            frame.data[c].push(cell(v, k, r)?);
        }
        for col in &mut frame.data {
            if col.len() < r + 1 {
                col.push(Cell::Null);
            }
        }
    }
    Ok(frame)
}

fn rows(items: &[J], key: &str) -> Result<Vec<Vec<Cell>>> {
    items
        .iter()
        .enumerate()
        .map(|(r, row)| match row {
            J::Array(vals) => vals.iter().map(|v| cell(v, "?", r)).collect(),
            scalar => Ok(vec![cell(scalar, "?", r).map_err(|_| {
                ServeError::BadRequest(format!("`{key}` row {r}: expected a list of values"))
            })?]),
        })
        .collect()
}

/// Decodes a request body into graph inputs for `model`.
pub fn decode(model: &ServedModel, media: Media, body: &[u8]) -> Result<Vec<(String, Tensor)>> {
    match media {
        Media::Csv => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ServeError::BadRequest("the CSV body is not UTF-8".into()))?;
            let mut text = text.to_string();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            let (header, rows) = crate::predlog::parse_csv(&text);
            if header.is_empty() {
                return Err(ServeError::BadRequest(
                    "the CSV body has no header row".into(),
                ));
            }
            let mut frame = Frame {
                columns: header.clone(),
                data: vec![Vec::with_capacity(rows.len()); header.len()],
            };
            for (r, row) in rows.iter().enumerate() {
                if row.len() != header.len() {
                    return Err(ServeError::BadRequest(format!(
                        "CSV line {}: {} fields, the header has {}",
                        r + 2,
                        row.len(),
                        header.len()
                    )));
                }
                for (c, v) in row.iter().enumerate() {
                    frame.data[c].push(if v.is_empty() {
                        Cell::Null
                    } else {
                        Cell::Str(v.clone())
                    });
                }
            }
            model.frame_inputs(&frame)
        }
        Media::Json => {
            if let Some(inputs) = stream_rows(model, body) {
                return Ok(inputs);
            }
            let v: J = serde_json::from_slice(body)
                .map_err(|e| ServeError::BadRequest(format!("invalid JSON: {e}")))?;
            let obj = v.as_object().ok_or_else(|| {
                ServeError::BadRequest(format!(
                    "{PROTOCOL_MESSAGE}[] (the body is not a JSON object)"
                ))
            })?;
            let keys: Vec<&String> = obj
                .keys()
                .filter(|k| {
                    [
                        "dataframe_split",
                        "dataframe_records",
                        "instances",
                        "inputs",
                    ]
                    .contains(&k.as_str())
                })
                .collect();
            let unknown: Vec<&String> = obj
                .keys()
                .filter(|k| !keys.contains(k) && k.as_str() != "params")
                .collect();
            if keys.len() != 1 || !unknown.is_empty() {
                return Err(ServeError::BadRequest(format!(
                    "{PROTOCOL_MESSAGE}{:?}",
                    obj.keys().collect::<Vec<_>>()
                )));
            }
            let key = keys[0].as_str();
            let payload = &obj[key];
            match (key, payload) {
                ("dataframe_split", J::Object(split)) => {
                    let data = split.get("data").and_then(J::as_array).ok_or_else(|| {
                        ServeError::BadRequest(
                            "`dataframe_split` needs `data`: a list of rows".into(),
                        )
                    })?;
                    let r = rows(data, key)?;
                    match split.get("columns") {
                        None => model.rows_inputs(&r),
                        Some(J::Array(cols)) => {
                            let columns: Vec<String> = cols
                                .iter()
                                .map(|c| match c {
                                    J::String(s) => s.clone(),
                                    other => other.to_string(),
                                })
                                .collect();
                            let mut frame = Frame {
                                data: vec![Vec::with_capacity(r.len()); columns.len()],
                                columns,
                            };
                            for (i, row) in r.into_iter().enumerate() {
                                if row.len() != frame.columns.len() {
                                    return Err(ServeError::BadRequest(format!(
                                        "`dataframe_split` row {i} has {} values for {} columns",
                                        row.len(),
                                        frame.columns.len()
                                    )));
                                }
                                for (c, v) in row.into_iter().enumerate() {
                                    frame.data[c].push(v);
                                }
                            }
                            model.frame_inputs(&frame)
                        }
                        Some(_) => Err(ServeError::BadRequest(
                            "`dataframe_split.columns` must be a list of names".into(),
                        )),
                    }
                }
                ("dataframe_records", J::Array(items)) => model.frame_inputs(&records(items, key)?),
                ("instances" | "inputs", J::Array(items)) => {
                    if items.first().is_some_and(J::is_object) {
                        model.frame_inputs(&records(items, key)?)
                    } else {
                        model.rows_inputs(&rows(items, key)?)
                    }
                }
                ("inputs" | "instances", J::Object(cols)) => {
                    let mut frame = Frame::default();
                    for (name, values) in cols {
                        let vals = match values {
                            J::Array(v) => v
                                .iter()
                                .enumerate()
                                .map(|(r, x)| cell(x, name, r))
                                .collect::<Result<Vec<_>>>()?,
                            scalar => vec![cell(scalar, name, 0)?],
                        };
                        frame.columns.push(name.clone());
                        frame.data.push(vals);
                    }
                    let n = frame.rows();
                    if let Some(bad) = frame
                        .columns
                        .iter()
                        .zip(&frame.data)
                        .find(|(_, d)| d.len() != n)
                    {
                        return Err(ServeError::BadRequest(format!(
                            "`{key}` column '{}' has {} values, the first column has {n}",
                            bad.0,
                            bad.1.len()
                        )));
                    }
                    model.frame_inputs(&frame)
                }
                _ => Err(ServeError::BadRequest(format!(
                    "`{key}` has the wrong shape (got {payload})"
                ))),
            }
        }
    }
}

/// The common request `{"inputs": [[...], ...]}` (or `instances`) for a
/// one-input model, parsed straight into the model's input tensor: no
/// `serde_json::Value` tree, no cell per value. Any other body, and any
/// body this path would refuse, gives `None` and takes the general path,
/// which accepts the same bodies into the same tensors and words every
/// error; so this path only ever answers requests that succeed.
fn stream_rows(model: &ServedModel, body: &[u8]) -> Option<Vec<(String, Tensor)>> {
    let rows = model.rows_builder(0).ok()?;
    let mut de = serde_json::Deserializer::from_slice(body);
    let rows = de.deserialize_map(BodyVisitor(rows)).ok()?;
    de.end().ok()?;
    rows.finish().ok()
}

/// Fails the streaming parse; the general path then finds the real error.
fn refuse<E: de::Error>(e: ServeError) -> E {
    E::custom(e)
}

struct BodyVisitor<'m>(RowsBuilder<'m>);

impl<'de, 'm> Visitor<'de> for BodyVisitor<'m> {
    type Value = RowsBuilder<'m>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with one key, `inputs` or `instances`")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut rows = self.0;
        match map.next_key::<&str>()? {
            Some("inputs" | "instances") => map.next_value_seed(List {
                b: &mut rows,
                rows: true,
            })?,
            _ => return Err(de::Error::custom("not a bare list of rows")),
        }
        if map.next_key::<&str>()?.is_some() {
            return Err(de::Error::custom("more than one key"));
        }
        Ok(rows)
    }
}

/// A JSON list streamed into the builder: the list of rows (`rows`), or
/// one row, a list of scalars.
struct List<'b, 'm> {
    b: &'b mut RowsBuilder<'m>,
    rows: bool,
}

impl<'de> DeserializeSeed<'de> for List<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for List<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(if self.rows {
            "a list of rows"
        } else {
            "a list of values"
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        if self.rows {
            while seq
                .next_element_seed(List {
                    b: &mut *self.b,
                    rows: false,
                })?
                .is_some()
            {}
            return Ok(());
        }
        while let Some(ScalarCell(cell)) = seq.next_element()? {
            self.b.push(&cell).map_err(refuse)?;
        }
        self.b.end_row().map_err(refuse)
    }
}

/// A scalar JSON value as a [`Cell`], converted as [`cell`] converts a
/// parsed value; arrays and objects are refused.
struct ScalarCell(Cell);

impl<'de> de::Deserialize<'de> for ScalarCell {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = ScalarCell;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, string, boolean or null")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<ScalarCell, E> {
        Ok(ScalarCell(Cell::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<ScalarCell, E> {
        Ok(ScalarCell(Cell::Num(v as f64)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<ScalarCell, E> {
        Ok(ScalarCell(Cell::Num(v as f64)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<ScalarCell, E> {
        Ok(ScalarCell(Cell::Num(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<ScalarCell, E> {
        Ok(ScalarCell(Cell::Str(v.to_owned())))
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<ScalarCell, E> {
        Ok(ScalarCell(Cell::Null))
    }
}
