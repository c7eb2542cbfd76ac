//! The Open Inference Protocol (KServe V2) wire format: request decoding,
//! including Triton's binary tensor extension (the default of
//! `tritonclient.http`), and response encoding.

use keel_ml::onnx::{Tensor, TensorData, Value};
use serde::Deserialize;
use serde_json::{json, Map, Value as J};

use crate::error::{Result, ServeError};
use crate::model::{tensor_json, ColType, ServedModel};

#[derive(Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<J>,
    #[serde(default)]
    parameters: Option<Map<String, J>>,
    inputs: Vec<InputTensor>,
    #[serde(default)]
    outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Deserialize)]
struct InputTensor {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Map<String, J>>,
    #[serde(default)]
    data: Option<J>,
}

#[derive(Deserialize)]
struct RequestedOutput {
    name: String,
    #[serde(default)]
    parameters: Option<Map<String, J>>,
}

/// A decoded inference request.
#[derive(Debug)]
pub struct Decoded {
    /// The request id, if the client sent one.
    pub id: Option<String>,
    /// Input tensors by name.
    pub inputs: Vec<(String, Tensor)>,
    /// Requested outputs (all when `None`), with whether each wants binary.
    pub outputs: Option<Vec<(String, bool)>>,
    /// Whether outputs default to binary (`binary_data_output`).
    pub binary_default: bool,
}

fn bool_param(p: &Option<Map<String, J>>, key: &str) -> Option<bool> {
    p.as_ref().and_then(|m| m.get(key)).and_then(J::as_bool)
}

/// Decodes a request body; `header_len` is the
/// `Inference-Header-Content-Length` header, when present.
pub fn decode(body: &[u8], header_len: Option<usize>) -> Result<Decoded> {
    let (json_part, mut binary) = match header_len {
        Some(n) if n <= body.len() => (&body[..n], &body[n..]),
        Some(n) => {
            return Err(ServeError::BadRequest(format!(
                "Inference-Header-Content-Length is {n} but the body has {} bytes",
                body.len()
            )))
        }
        None => (body, &[][..]),
    };
    let req: InferRequest = serde_json::from_slice(json_part)
        .map_err(|e| ServeError::BadRequest(format!("invalid inference request JSON: {e}")))?;
    let mut inputs = Vec::with_capacity(req.inputs.len());
    for t in req.inputs {
        let ty = ColType::from_v2(&t.datatype).ok_or_else(|| {
            ServeError::BadRequest(format!(
                "input '{}': unsupported datatype {} (keel takes BOOL, INT32, INT64, FP32, FP64, BYTES)",
                t.name, t.datatype
            ))
        })?;
        if t.shape.iter().any(|&d| d < 0) {
            return Err(ServeError::BadRequest(format!(
                "input '{}': negative dimension in shape {:?}",
                t.name, t.shape
            )));
        }
        let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        let count: usize = shape.iter().product();
        let size = t
            .parameters
            .as_ref()
            .and_then(|p| p.get("binary_data_size"))
            .and_then(J::as_u64);
        let data = match (size, t.data) {
            (Some(n), _) => {
                let n = n as usize;
                if n > binary.len() {
                    return Err(ServeError::BadRequest(format!(
                        "input '{}': binary_data_size {n} exceeds the {} bytes left in the body",
                        t.name,
                        binary.len()
                    )));
                }
                let (bytes, rest) = binary.split_at(n);
                binary = rest;
                from_binary(bytes, ty, count)
                    .map_err(|m| ServeError::BadRequest(format!("input '{}': {m}", t.name)))?
            }
            (None, Some(data)) => {
                let mut flat = Vec::with_capacity(count);
                flatten(&data, &mut flat);
                if flat.len() != count {
                    return Err(ServeError::BadRequest(format!(
                        "input '{}': shape {:?} needs {count} elements, data has {}",
                        t.name,
                        t.shape,
                        flat.len()
                    )));
                }
                from_json(&flat, ty)
                    .map_err(|m| ServeError::BadRequest(format!("input '{}': {m}", t.name)))?
            }
            (None, None) => {
                return Err(ServeError::BadRequest(format!(
                    "input '{}': no `data` and no `binary_data_size` parameter",
                    t.name
                )))
            }
        };
        inputs.push((t.name, Tensor { shape, data }));
    }
    if !binary.is_empty() {
        return Err(ServeError::BadRequest(format!(
            "{} bytes of binary data follow the JSON header but no input claims them",
            binary.len()
        )));
    }
    let binary_default = bool_param(&req.parameters, "binary_data_output").unwrap_or(false);
    let outputs = req.outputs.map(|os| {
        os.into_iter()
            .map(|o| {
                let b = bool_param(&o.parameters, "binary_data").unwrap_or(binary_default);
                (o.name, b)
            })
            .collect()
    });
    let id = req.id.map(|v| match v {
        J::String(s) => s,
        other => other.to_string(),
    });
    Ok(Decoded {
        id,
        inputs,
        outputs,
        binary_default,
    })
}

fn flatten<'a>(v: &'a J, out: &mut Vec<&'a J>) {
    match v {
        J::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

fn from_json(flat: &[&J], ty: ColType) -> std::result::Result<TensorData, String> {
    let num = |i: usize, v: &J| {
        v.as_f64().ok_or_else(|| {
            format!(
                "element {i} is {v}, expected a number for datatype {}",
                ty.v2()
            )
        })
    };
    Ok(match ty {
        ColType::F32 => TensorData::F32(
            flat.iter()
                .enumerate()
                .map(|(i, v)| num(i, v).map(|x| x as f32))
                .collect::<Result<_, _>>()?,
        ),
        ColType::F64 => TensorData::F64(
            flat.iter()
                .enumerate()
                .map(|(i, v)| num(i, v))
                .collect::<Result<_, _>>()?,
        ),
        ColType::I64 => TensorData::I64(
            flat.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_i64()
                        .ok_or_else(|| format!("element {i} is {v}, expected an integer"))
                })
                .collect::<Result<_, _>>()?,
        ),
        ColType::I32 => TensorData::I32(
            flat.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_i64()
                        .and_then(|x| i32::try_from(x).ok())
                        .ok_or_else(|| format!("element {i} is {v}, expected a 32-bit integer"))
                })
                .collect::<Result<_, _>>()?,
        ),
        ColType::Bool => TensorData::Bool(
            flat.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_bool()
                        .ok_or_else(|| format!("element {i} is {v}, expected true or false"))
                })
                .collect::<Result<_, _>>()?,
        ),
        ColType::Str => TensorData::Str(
            flat.iter()
                .map(|v| match v {
                    J::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        ),
    })
}

fn from_binary(bytes: &[u8], ty: ColType, count: usize) -> std::result::Result<TensorData, String> {
    let need = |size: usize| {
        if bytes.len() == size * count {
            Ok(())
        } else {
            Err(format!(
                "{} bytes of binary data for {count} elements of {}",
                bytes.len(),
                ty.v2()
            ))
        }
    };
    Ok(match ty {
        ColType::F32 => {
            need(4)?;
            TensorData::F32(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        }
        ColType::F64 => {
            need(8)?;
            TensorData::F64(
                bytes
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
            )
        }
        ColType::I64 => {
            need(8)?;
            TensorData::I64(
                bytes
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
            )
        }
        ColType::I32 => {
            need(4)?;
            TensorData::I32(
                bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        }
        ColType::Bool => {
            need(1)?;
            TensorData::Bool(bytes.iter().map(|&b| b != 0).collect())
        }
        ColType::Str => {
            let mut out = Vec::with_capacity(count);
            let mut rest = bytes;
            while rest.len() >= 4 {
                let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if rest.len() < 4 + n {
                    return Err("a BYTES element runs past the binary data".into());
                }
                out.push(String::from_utf8_lossy(&rest[4..4 + n]).into_owned());
                rest = &rest[4 + n..];
            }
            if !rest.is_empty() || out.len() != count {
                return Err(format!(
                    "binary BYTES data holds {} elements, shape needs {count}",
                    out.len()
                ));
            }
            TensorData::Str(out)
        }
    })
}

/// An output tensor as sent back.
fn output_tensor(v: &Value) -> Tensor {
    match v {
        Value::Tensor(t) => t.clone(),
        seq @ Value::SeqMap { .. } => {
            let (r, c, m) = seq.to_matrix_f64().unwrap_or_default();
            Tensor {
                shape: vec![r, c],
                data: TensorData::F32(m.into_iter().map(|x| x as f32).collect()),
            }
        }
    }
}

fn v2_type(t: &Tensor) -> &'static str {
    match t.data {
        TensorData::F32(_) => "FP32",
        TensorData::F64(_) => "FP64",
        TensorData::I64(_) => "INT64",
        TensorData::I32(_) => "INT32",
        TensorData::Bool(_) => "BOOL",
        TensorData::Str(_) => "BYTES",
    }
}

fn to_binary(t: &Tensor) -> Vec<u8> {
    match &t.data {
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
        TensorData::Str(v) => v
            .iter()
            .flat_map(|s| (s.len() as u32).to_le_bytes().into_iter().chain(s.bytes()))
            .collect(),
    }
}

/// An encoded response: the body, and the JSON header length when binary
/// outputs follow it.
pub struct Encoded {
    /// The body.
    pub body: Vec<u8>,
    /// `Inference-Header-Content-Length`, when binary data follows.
    pub header_len: Option<usize>,
}

/// Encodes the response for `outputs`, honouring the requested outputs
/// and binary flags.
pub fn encode(
    model: &ServedModel,
    id: Option<&str>,
    outputs: &[(String, Value)],
    requested: Option<&[(String, bool)]>,
    binary_default: bool,
) -> Result<Encoded> {
    let selected: Vec<(&String, &Value, bool)> = match requested {
        None => outputs
            .iter()
            .map(|(n, v)| (n, v, binary_default))
            .collect(),
        Some(req) => req
            .iter()
            .map(|(name, bin)| {
                outputs
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(n, v)| (n, v, *bin))
                    .ok_or_else(|| {
                        ServeError::BadRequest(format!(
                            "unexpected inference output '{name}' for model '{}'; outputs are {}",
                            model.name,
                            model
                                .outputs
                                .iter()
                                .map(|o| format!("'{}'", o.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })
            })
            .collect::<Result<_>>()?,
    };
    let mut binary = Vec::new();
    let mut outs = Vec::with_capacity(selected.len());
    for (name, value, bin) in selected {
        let t = output_tensor(value);
        let mut o = json!({"name": name, "shape": t.shape, "datatype": v2_type(&t)});
        if bin {
            let bytes = to_binary(&t);
            o["parameters"] = json!({"binary_data_size": bytes.len()});
            binary.extend_from_slice(&bytes);
        } else {
            o["data"] = tensor_json(&t);
        }
        outs.push(o);
    }
    let mut resp =
        json!({"model_name": model.name, "model_version": model.version, "outputs": outs});
    if let Some(id) = id {
        resp["id"] = J::String(id.to_string());
    }
    let mut body = serde_json::to_vec(&resp).unwrap_or_default();
    if binary.is_empty() && !outs_have_binary(&resp) {
        return Ok(Encoded {
            body,
            header_len: None,
        });
    }
    let header_len = body.len();
    body.extend_from_slice(&binary);
    Ok(Encoded {
        body,
        header_len: Some(header_len),
    })
}

fn outs_have_binary(resp: &J) -> bool {
    resp["outputs"]
        .as_array()
        .is_some_and(|o| o.iter().any(|x| x.get("parameters").is_some()))
}

/// Model metadata (`GET /v2/models/{name}`).
pub fn metadata(model: &ServedModel) -> J {
    let t = |s: &crate::model::TensorSpec| json!({"name": s.name, "datatype": s.ty.v2(), "shape": s.shape});
    json!({
        "name": model.name,
        "versions": [model.version],
        "platform": "onnx_onnxv1",
        "inputs": model.inputs.iter().map(t).collect::<Vec<_>>(),
        "outputs": model.outputs.iter().map(t).collect::<Vec<_>>(),
    })
}
