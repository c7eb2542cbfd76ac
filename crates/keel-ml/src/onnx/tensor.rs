//! Dense tensors and the values that flow through a graph.

use super::proto::{DataType, TensorProto};

/// The element buffer of a [`Tensor`], row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// `tensor(float)`.
    F32(Vec<f32>),
    /// `tensor(double)`.
    F64(Vec<f64>),
    /// `tensor(int64)`.
    I64(Vec<i64>),
    /// `tensor(int32)`.
    I32(Vec<i32>),
    /// `tensor(bool)`.
    Bool(Vec<bool>),
    /// `tensor(string)`.
    Str(Vec<String>),
}

impl TensorData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::Bool(v) => v.len(),
            TensorData::Str(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ONNX name of the element type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            TensorData::F32(_) => "float",
            TensorData::F64(_) => "double",
            TensorData::I64(_) => "int64",
            TensorData::I32(_) => "int32",
            TensorData::Bool(_) => "bool",
            TensorData::Str(_) => "string",
        }
    }

    /// The ONNX `DataType` code.
    pub fn data_type(&self) -> DataType {
        match self {
            TensorData::F32(_) => DataType::Float,
            TensorData::F64(_) => DataType::Double,
            TensorData::I64(_) => DataType::Int64,
            TensorData::I32(_) => DataType::Int32,
            TensorData::Bool(_) => DataType::Bool,
            TensorData::Str(_) => DataType::String,
        }
    }
}

/// A dense tensor: a shape and a row-major buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions; empty for a scalar.
    pub shape: Vec<usize>,
    /// The elements.
    pub data: TensorData,
}

impl Tensor {
    /// A tensor from a shape and a buffer; fails if the sizes disagree.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor, String> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(format!(
                "shape {shape:?} holds {n} elements but the buffer has {}",
                data.len()
            ));
        }
        Ok(Tensor { shape, data })
    }

    /// A `[rows, cols]` float tensor.
    pub fn from_f32(rows: usize, cols: usize, data: Vec<f32>) -> Tensor {
        assert_eq!(rows * cols, data.len(), "buffer size");
        Tensor {
            shape: vec![rows, cols],
            data: TensorData::F32(data),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Rows and columns when the tensor is read as a matrix: `[N, C]`
    /// as is, `[C]` as one row, `[N, a, b…]` as `[N, a·b…]`.
    pub fn as_matrix_dims(&self) -> (usize, usize) {
        match self.shape.len() {
            0 => (1, 1),
            1 => (1, self.shape[0]),
            _ => (self.shape[0], self.shape[1..].iter().product()),
        }
    }

    /// The elements as `f64`, converting numeric types.
    pub fn to_f64(&self) -> Result<Vec<f64>, String> {
        Ok(match &self.data {
            TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::F64(v) => v.clone(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
            TensorData::Str(_) => return Err("expected a numeric tensor, got string".into()),
        })
    }

    /// The elements as `f32`, converting numeric types.
    pub fn to_f32(&self) -> Result<Vec<f32>, String> {
        Ok(match &self.data {
            TensorData::F32(v) => v.clone(),
            TensorData::F64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| f32::from(u8::from(x))).collect(),
            TensorData::Str(_) => return Err("expected a numeric tensor, got string".into()),
        })
    }

    /// The elements as `i64` (floats truncated toward zero).
    pub fn to_i64(&self) -> Result<Vec<i64>, String> {
        Ok(match &self.data {
            TensorData::F32(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::F64(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::I64(v) => v.clone(),
            TensorData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::Str(_) => return Err("expected a numeric tensor, got string".into()),
        })
    }

    /// Decodes an ONNX `TensorProto` (initializers, `Constant` values,
    /// tensor attributes).
    pub fn from_proto(t: &TensorProto) -> Result<Tensor, String> {
        if !t.external_data.is_empty() || t.data_location == 1 {
            return Err(format!(
                "tensor {:?} stores its data in an external file, which keel does not load",
                t.name
            ));
        }
        let shape = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
            .collect::<Result<Vec<_>, _>>()?;
        let n: usize = shape.iter().product();
        let raw = &t.raw_data;
        let dt = DataType::try_from(t.data_type).unwrap_or(DataType::Undefined);
        fn chunks<const W: usize, T>(raw: &[u8], f: fn([u8; W]) -> T) -> Vec<T> {
            raw.chunks_exact(W)
                .map(|c| f(c.try_into().expect("chunk width")))
                .collect()
        }
        let data = match dt {
            DataType::Float => TensorData::F32(if raw.is_empty() {
                t.float_data.clone()
            } else {
                chunks::<4, f32>(raw, f32::from_le_bytes)
            }),
            DataType::Double => TensorData::F64(if raw.is_empty() {
                t.double_data.clone()
            } else {
                chunks::<8, f64>(raw, f64::from_le_bytes)
            }),
            DataType::Int64 => TensorData::I64(if raw.is_empty() {
                t.int64_data.clone()
            } else {
                chunks::<8, i64>(raw, i64::from_le_bytes)
            }),
            DataType::Int32 => TensorData::I32(if raw.is_empty() {
                t.int32_data.clone()
            } else {
                chunks::<4, i32>(raw, i32::from_le_bytes)
            }),
            DataType::Int16 | DataType::Int8 | DataType::Uint8 | DataType::Uint16 => {
                // Small integer types: widen to int32 (their int32_data form).
                TensorData::I32(if raw.is_empty() {
                    t.int32_data.clone()
                } else {
                    match dt {
                        DataType::Int8 => raw.iter().map(|&b| i32::from(b as i8)).collect(),
                        DataType::Uint8 => raw.iter().map(|&b| i32::from(b)).collect(),
                        DataType::Int16 => {
                            chunks::<2, i32>(raw, |b| i32::from(i16::from_le_bytes(b)))
                        }
                        _ => chunks::<2, i32>(raw, |b| i32::from(u16::from_le_bytes(b))),
                    }
                })
            }
            DataType::Bool => TensorData::Bool(if raw.is_empty() {
                t.int32_data.iter().map(|&x| x != 0).collect()
            } else {
                raw.iter().map(|&b| b != 0).collect()
            }),
            DataType::String => TensorData::Str(
                t.string_data
                    .iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect(),
            ),
            other => {
                return Err(format!(
                    "tensor {:?} has element type {other:?}, which keel does not support",
                    t.name
                ))
            }
        };
        if data.len() != n {
            return Err(format!(
                "tensor {:?}: dims {:?} hold {n} elements but {} were stored",
                t.name,
                t.dims,
                data.len()
            ));
        }
        Ok(Tensor { shape, data })
    }

    /// Encodes as an ONNX `TensorProto` named `name` (numbers as
    /// little-endian `raw_data`, strings in `string_data`).
    pub fn to_proto(&self, name: &str) -> TensorProto {
        let mut t = TensorProto {
            dims: self.shape.iter().map(|&d| d as i64).collect(),
            data_type: self.data.data_type() as i32,
            name: name.to_string(),
            ..Default::default()
        };
        match &self.data {
            TensorData::F32(v) => t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::F64(v) => t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I64(v) => t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I32(v) => t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::Bool(v) => t.raw_data = v.iter().map(|&x| u8::from(x)).collect(),
            TensorData::Str(v) => t.string_data = v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        }
        t
    }
}

/// The keys of a `ZipMap` output.
#[derive(Clone, Debug, PartialEq)]
pub enum MapKeys {
    /// `map(int64, float)`.
    I64(Vec<i64>),
    /// `map(string, float)`.
    Str(Vec<String>),
}

/// A value flowing through a graph.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A dense tensor.
    Tensor(Tensor),
    /// A `seq(map(K, float))` as produced by `ZipMap`: one map per row,
    /// every map with the same keys. Stored as the key list plus a
    /// `[rows, keys]` matrix of values.
    SeqMap {
        /// The map keys (class labels), in column order.
        keys: MapKeys,
        /// `rows × keys.len()` values, row-major.
        values: Vec<f32>,
    },
}

impl Value {
    /// The tensor, or an error naming what it is instead.
    pub fn as_tensor(&self) -> Result<&Tensor, String> {
        match self {
            Value::Tensor(t) => Ok(t),
            Value::SeqMap { .. } => Err("expected a tensor, got seq(map)".into()),
        }
    }

    /// Reads the value as a `[rows, cols]` float matrix: a numeric tensor,
    /// or a `ZipMap` sequence of maps (its values, in key order).
    pub fn to_matrix_f64(&self) -> Result<(usize, usize, Vec<f64>), String> {
        match self {
            Value::Tensor(t) => {
                let (r, c) = t.as_matrix_dims();
                Ok((r, c, t.to_f64()?))
            }
            Value::SeqMap { keys, values } => {
                let c = match keys {
                    MapKeys::I64(k) => k.len(),
                    MapKeys::Str(k) => k.len(),
                };
                let r = values.len().checked_div(c).unwrap_or(0);
                Ok((r, c, values.iter().map(|&x| f64::from(x)).collect()))
            }
        }
    }
}
