//! Standard `ai.onnx` operators that tabular-model graphs contain.

use super::{input, tensor_input, Attrs, CompileError, Kernel, Tensor, TensorData, Value};
use crate::onnx::proto::DataType;

pub(crate) fn compile(
    op: &str,
    a: &Attrs<'_>,
    opset: i64,
) -> Result<Box<dyn Kernel>, CompileError> {
    Ok(match op {
        "Identity" => Box::new(Identity),
        "Cast" => Box::new(Cast(
            DataType::try_from(a.int("to", 0) as i32)
                .map_err(|_| format!("unknown target type {}", a.int("to", 0)))?,
        )),
        "Constant" => Box::new(Constant(constant_value(a)?)),
        "Reshape" => Box::new(Reshape {
            allowzero: a.int("allowzero", 0) != 0,
        }),
        "Flatten" => Box::new(Flatten(a.int("axis", 1))),
        "Concat" => Box::new(Concat(a.int("axis", 0))),
        "Gather" => Box::new(Gather(a.int("axis", 0))),
        "MatMul" => Box::new(MatMul),
        "Gemm" => Box::new(Gemm {
            alpha: f64::from(a.float("alpha", 1.0)),
            beta: f64::from(a.float("beta", 1.0)),
            trans_a: a.int("transA", 0) != 0,
            trans_b: a.int("transB", 0) != 0,
        }),
        "Add" => Box::new(Binary(BinOp::Add)),
        "Sub" => Box::new(Binary(BinOp::Sub)),
        "Mul" => Box::new(Binary(BinOp::Mul)),
        "Div" => Box::new(Binary(BinOp::Div)),
        "Sigmoid" => Box::new(Unary(|x| 1.0 / (1.0 + (-x).exp()))),
        "Exp" => Box::new(Unary(f64::exp)),
        "Log" => Box::new(Unary(f64::ln)),
        "Abs" => Box::new(Unary(f64::abs)),
        "Neg" => Box::new(Unary(|x| -x)),
        "Sqrt" => Box::new(Unary(f64::sqrt)),
        "Relu" => Box::new(Unary(|x| x.max(0.0))),
        "Tanh" => Box::new(Unary(f64::tanh)),
        "Softmax" => Box::new(Softmax {
            axis: a.int("axis", if opset >= 13 { -1 } else { 1 }),
            legacy: opset < 13,
        }),
        "ArgMax" => Box::new(ArgMax {
            axis: a.int("axis", 0),
            keepdims: a.int("keepdims", 1) != 0,
            last: a.int("select_last_index", 0) != 0,
        }),
        "Squeeze" => Box::new(Squeeze(if a.has("axes") {
            Some(a.ints("axes"))
        } else {
            None
        })),
        "Unsqueeze" => Box::new(Unsqueeze(if a.has("axes") {
            Some(a.ints("axes"))
        } else {
            None
        })),
        _ => return Err(CompileError::Unsupported),
    })
}

fn constant_value(a: &Attrs<'_>) -> Result<Tensor, String> {
    if let Some(t) = a.tensor("value")? {
        return Ok(t);
    }
    if a.has("value_float") {
        return Ok(Tensor {
            shape: vec![],
            data: TensorData::F32(vec![a.float("value_float", 0.0)]),
        });
    }
    if a.has("value_int") {
        return Ok(Tensor {
            shape: vec![],
            data: TensorData::I64(vec![a.int("value_int", 0)]),
        });
    }
    if a.has("value_floats") {
        let v = a.floats("value_floats");
        return Ok(Tensor {
            shape: vec![v.len()],
            data: TensorData::F32(v),
        });
    }
    if a.has("value_ints") {
        let v = a.ints("value_ints");
        return Ok(Tensor {
            shape: vec![v.len()],
            data: TensorData::I64(v),
        });
    }
    Err("Constant needs a value, value_float(s) or value_int(s) attribute".into())
}

fn one(t: Tensor) -> Result<Vec<Value>, String> {
    Ok(vec![Value::Tensor(t)])
}

fn axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) {
        return Err(format!("axis {axis} out of range for rank {rank}"));
    }
    Ok(a as usize)
}

struct Identity;

impl Kernel for Identity {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        Ok(vec![input(inputs, 0)?.clone()])
    }
}

struct Constant(Tensor);

impl Kernel for Constant {
    fn run(&self, _: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        one(self.0.clone())
    }
}

struct Cast(DataType);

pub(crate) fn cast(x: &Tensor, to: DataType) -> Result<Tensor, String> {
    let data = match to {
        DataType::Float => match &x.data {
            TensorData::Str(v) => TensorData::F32(
                v.iter()
                    .map(|s| {
                        s.trim()
                            .parse::<f32>()
                            .map_err(|_| format!("cannot cast {s:?} to float"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => TensorData::F32(x.to_f32()?),
        },
        DataType::Double => match &x.data {
            TensorData::Str(v) => TensorData::F64(
                v.iter()
                    .map(|s| {
                        s.trim()
                            .parse::<f64>()
                            .map_err(|_| format!("cannot cast {s:?} to double"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => TensorData::F64(x.to_f64()?),
        },
        DataType::Int64 => match &x.data {
            TensorData::Str(v) => TensorData::I64(
                v.iter()
                    .map(|s| {
                        s.trim()
                            .parse::<i64>()
                            .map_err(|_| format!("cannot cast {s:?} to int64"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => TensorData::I64(x.to_i64()?),
        },
        DataType::Int32 => TensorData::I32(x.to_i64()?.iter().map(|&v| v as i32).collect()),
        DataType::Bool => TensorData::Bool(x.to_f64()?.iter().map(|&v| v != 0.0).collect()),
        DataType::String => TensorData::Str(match &x.data {
            TensorData::Str(v) => v.clone(),
            TensorData::F32(v) => v.iter().map(|f| f.to_string()).collect(),
            TensorData::F64(v) => v.iter().map(|f| f.to_string()).collect(),
            TensorData::I64(v) => v.iter().map(|f| f.to_string()).collect(),
            TensorData::I32(v) => v.iter().map(|f| f.to_string()).collect(),
            TensorData::Bool(v) => v.iter().map(|f| f.to_string()).collect(),
        }),
        other => return Err(format!("cast to {other:?} is not supported")),
    };
    Ok(Tensor {
        shape: x.shape.clone(),
        data,
    })
}

impl Kernel for Cast {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        one(cast(tensor_input(inputs, 0)?, self.0)?)
    }
}

struct Reshape {
    allowzero: bool,
}

impl Kernel for Reshape {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let spec = tensor_input(inputs, 1)?.to_i64()?;
        let mut shape = Vec::with_capacity(spec.len());
        let mut infer = None;
        for (i, &d) in spec.iter().enumerate() {
            match d {
                -1 if infer.is_none() => {
                    infer = Some(i);
                    shape.push(1);
                }
                0 if !self.allowzero => shape.push(*x.shape.get(i).ok_or_else(|| {
                    format!("dimension 0 at {i} copies a missing input dimension")
                })?),
                d if d >= 0 => shape.push(d as usize),
                _ => return Err(format!("invalid target shape {spec:?}")),
            }
        }
        if let Some(i) = infer {
            let rest: usize = shape.iter().product();
            if rest == 0 || x.len() % rest != 0 {
                return Err(format!("cannot reshape {:?} to {spec:?}", x.shape));
            }
            shape[i] = x.len() / rest;
        }
        if shape.iter().product::<usize>() != x.len() {
            return Err(format!("cannot reshape {:?} to {spec:?}", x.shape));
        }
        one(Tensor {
            shape,
            data: x.data.clone(),
        })
    }
}

struct Flatten(i64);

impl Kernel for Flatten {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let r = x.shape.len() as i64;
        let a = if self.0 < 0 { self.0 + r } else { self.0 };
        if a < 0 || a > r {
            return Err(format!("axis {} out of range for rank {r}", self.0));
        }
        let outer: usize = x.shape[..a as usize].iter().product();
        one(Tensor {
            shape: vec![outer, x.len() / outer.max(1)],
            data: x.data.clone(),
        })
    }
}

struct Squeeze(Option<Vec<i64>>);

impl Kernel for Squeeze {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let axes = match (&self.0, inputs.get(1).copied().flatten()) {
            (Some(a), _) => Some(a.clone()),
            (None, Some(v)) => Some(v.as_tensor()?.to_i64()?),
            (None, None) => None,
        };
        let shape = match axes {
            None => x.shape.iter().copied().filter(|&d| d != 1).collect(),
            Some(axes) => {
                let axes: Vec<usize> = axes
                    .iter()
                    .map(|&a| axis(a, x.shape.len()))
                    .collect::<Result<_, _>>()?;
                x.shape
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !axes.contains(i))
                    .map(|(_, &d)| d)
                    .collect()
            }
        };
        one(Tensor {
            shape,
            data: x.data.clone(),
        })
    }
}

struct Unsqueeze(Option<Vec<i64>>);

impl Kernel for Unsqueeze {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let axes = match &self.0 {
            Some(a) => a.clone(),
            None => tensor_input(inputs, 1)?.to_i64()?,
        };
        let rank = x.shape.len() + axes.len();
        let mut axes: Vec<usize> = axes
            .iter()
            .map(|&a| axis(a, rank))
            .collect::<Result<_, _>>()?;
        axes.sort_unstable();
        let mut shape = x.shape.clone();
        for a in axes {
            shape.insert(a.min(shape.len()), 1);
        }
        one(Tensor {
            shape,
            data: x.data.clone(),
        })
    }
}

struct Concat(i64);

impl Kernel for Concat {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let ts: Vec<&Tensor> = (0..inputs.len())
            .map(|i| tensor_input(inputs, i))
            .collect::<Result<_, _>>()?;
        let first = ts.first().ok_or("no inputs")?;
        let rank = first.shape.len();
        let ax = axis(self.0, rank)?;
        let outer: usize = first.shape[..ax].iter().product();
        let mut shape = first.shape.clone();
        shape[ax] = 0;
        for t in &ts {
            if t.shape.len() != rank
                || t.shape[..ax] != first.shape[..ax]
                || t.shape[ax + 1..] != first.shape[ax + 1..]
            {
                return Err(format!(
                    "cannot concatenate shapes {:?} and {:?} on axis {ax}",
                    first.shape, t.shape
                ));
            }
            shape[ax] += t.shape[ax];
        }
        macro_rules! cat {
            ($variant:ident) => {{
                let mut out = Vec::with_capacity(shape.iter().product());
                for o in 0..outer {
                    for t in &ts {
                        let TensorData::$variant(v) = &t.data else {
                            return Err("inputs have different element types".into());
                        };
                        let block = v.len() / outer.max(1);
                        out.extend_from_slice(&v[o * block..(o + 1) * block]);
                    }
                }
                TensorData::$variant(out)
            }};
        }
        let data = match &first.data {
            TensorData::F32(_) => cat!(F32),
            TensorData::F64(_) => cat!(F64),
            TensorData::I64(_) => cat!(I64),
            TensorData::I32(_) => cat!(I32),
            TensorData::Bool(_) => cat!(Bool),
            TensorData::Str(_) => cat!(Str),
        };
        one(Tensor { shape, data })
    }
}

struct Gather(i64);

impl Kernel for Gather {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let it = tensor_input(inputs, 1)?;
        let ax = axis(self.0, x.shape.len())?;
        let n = x.shape[ax];
        let idx: Vec<usize> = it
            .to_i64()?
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + n as i64 } else { i };
                usize::try_from(j)
                    .ok()
                    .filter(|&j| j < n)
                    .ok_or_else(|| format!("index {i} out of range for axis of size {n}"))
            })
            .collect::<Result<_, _>>()?;
        let outer: usize = x.shape[..ax].iter().product();
        let inner: usize = x.shape[ax + 1..].iter().product();
        let mut shape = x.shape[..ax].to_vec();
        shape.extend_from_slice(&it.shape);
        shape.extend_from_slice(&x.shape[ax + 1..]);
        macro_rules! g {
            ($v:expr, $variant:ident) => {{
                let mut out = Vec::with_capacity(outer * idx.len() * inner);
                for o in 0..outer {
                    for &i in &idx {
                        let s = (o * n + i) * inner;
                        out.extend_from_slice(&$v[s..s + inner]);
                    }
                }
                TensorData::$variant(out)
            }};
        }
        let data = match &x.data {
            TensorData::F32(v) => g!(v, F32),
            TensorData::F64(v) => g!(v, F64),
            TensorData::I64(v) => g!(v, I64),
            TensorData::I32(v) => g!(v, I32),
            TensorData::Bool(v) => g!(v, Bool),
            TensorData::Str(v) => g!(v, Str),
        };
        one(Tensor { shape, data })
    }
}

/// Builds a float tensor of the same float type as `like`.
fn float_like(like: &Tensor, shape: Vec<usize>, v: Vec<f64>) -> Tensor {
    let data = match like.data {
        TensorData::F64(_) => TensorData::F64(v),
        _ => TensorData::F32(v.into_iter().map(|x| x as f32).collect()),
    };
    Tensor { shape, data }
}

fn matmul2(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = a[i * k + p];
            if x == 0.0 {
                continue;
            }
            let row = &b[p * n..(p + 1) * n];
            for (o, &y) in out[i * n..(i + 1) * n].iter_mut().zip(row) {
                *o += x * y;
            }
        }
    }
    out
}

struct MatMul;

impl Kernel for MatMul {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let a = tensor_input(inputs, 0)?;
        let b = tensor_input(inputs, 1)?;
        let (m, k, a_vec) = match a.shape.len() {
            1 => (1, a.shape[0], true),
            2 => (a.shape[0], a.shape[1], false),
            r => return Err(format!("MatMul of rank {r} inputs is not supported")),
        };
        let (k2, n, b_vec) = match b.shape.len() {
            1 => (b.shape[0], 1, true),
            2 => (b.shape[0], b.shape[1], false),
            r => return Err(format!("MatMul of rank {r} inputs is not supported")),
        };
        if k != k2 {
            return Err(format!("cannot multiply {:?} by {:?}", a.shape, b.shape));
        }
        let out = matmul2(&a.to_f64()?, &b.to_f64()?, m, k, n);
        let shape = match (a_vec, b_vec) {
            (true, true) => vec![],
            (true, false) => vec![n],
            (false, true) => vec![m],
            (false, false) => vec![m, n],
        };
        one(float_like(a, shape, out))
    }
}

struct Gemm {
    alpha: f64,
    beta: f64,
    trans_a: bool,
    trans_b: bool,
}

fn transpose(v: &[f64], r: usize, c: usize) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = v[i * c + j];
        }
    }
    out
}

impl Kernel for Gemm {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let a = tensor_input(inputs, 0)?;
        let b = tensor_input(inputs, 1)?;
        if a.shape.len() != 2 || b.shape.len() != 2 {
            return Err(format!(
                "Gemm needs 2-D inputs, got {:?} and {:?}",
                a.shape, b.shape
            ));
        }
        let (mut av, mut bv) = (a.to_f64()?, b.to_f64()?);
        let (mut m, mut k) = (a.shape[0], a.shape[1]);
        if self.trans_a {
            av = transpose(&av, m, k);
            std::mem::swap(&mut m, &mut k);
        }
        let (mut k2, mut n) = (b.shape[0], b.shape[1]);
        if self.trans_b {
            bv = transpose(&bv, k2, n);
            std::mem::swap(&mut k2, &mut n);
        }
        if k != k2 {
            return Err(format!("cannot multiply {:?} by {:?}", a.shape, b.shape));
        }
        let mut out = matmul2(&av, &bv, m, k, n);
        out.iter_mut().for_each(|x| *x *= self.alpha);
        if let Some(c) = inputs.get(2).copied().flatten() {
            let c = c.as_tensor()?;
            let idx = broadcast_index(&c.shape, &[m, n])?;
            let cv = c.to_f64()?;
            for (o, i) in out.iter_mut().zip(idx) {
                *o += self.beta * cv[i];
            }
        }
        one(float_like(a, vec![m, n], out))
    }
}

/// Numpy-style broadcast of two shapes.
fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}

/// For each element of `out` (row-major), the linear index into a tensor of
/// shape `shape` broadcast to it.
fn broadcast_index(shape: &[usize], out: &[usize]) -> Result<Vec<usize>, String> {
    let full = broadcast_shape(shape, out)?;
    if full != out {
        return Err(format!("shape {shape:?} does not broadcast to {out:?}"));
    }
    let r = out.len();
    let mut strides = vec![0usize; r];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        let oi = i + r - shape.len();
        strides[oi] = if shape[i] == 1 { 0 } else { s };
        s *= shape[i];
    }
    let total: usize = out.iter().product();
    let mut idx = Vec::with_capacity(total);
    let mut pos = vec![0usize; r];
    for _ in 0..total {
        idx.push(pos.iter().zip(&strides).map(|(p, s)| p * s).sum());
        for d in (0..r).rev() {
            pos[d] += 1;
            if pos[d] < out[d] {
                break;
            }
            pos[d] = 0;
        }
    }
    Ok(idx)
}

#[derive(Clone, Copy)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

struct Binary(BinOp);

impl Kernel for Binary {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let a = tensor_input(inputs, 0)?;
        let b = tensor_input(inputs, 1)?;
        let shape = broadcast_shape(&a.shape, &b.shape)?;
        let (ia, ib) = if a.shape == b.shape {
            let n = a.len();
            ((0..n).collect(), (0..n).collect())
        } else {
            (
                broadcast_index(&a.shape, &shape)?,
                broadcast_index(&b.shape, &shape)?,
            )
        };
        let op = self.0;
        macro_rules! apply {
            ($x:expr, $y:expr, $variant:ident, $div:expr) => {
                TensorData::$variant(
                    ia.iter()
                        .zip(&ib)
                        .map(|(&i, &j)| {
                            let (p, q) = ($x[i], $y[j]);
                            match op {
                                BinOp::Add => Ok(p + q),
                                BinOp::Sub => Ok(p - q),
                                BinOp::Mul => Ok(p * q),
                                BinOp::Div => $div(p, q),
                            }
                        })
                        .collect::<Result<_, String>>()?,
                )
            };
        }
        let data = match (&a.data, &b.data) {
            (TensorData::F32(x), TensorData::F32(y)) => {
                apply!(x, y, F32, |p: f32, q: f32| -> Result<f32, String> {
                    Ok(p / q)
                })
            }
            (TensorData::F64(x), TensorData::F64(y)) => {
                apply!(x, y, F64, |p: f64, q: f64| -> Result<f64, String> {
                    Ok(p / q)
                })
            }
            (TensorData::I64(x), TensorData::I64(y)) => {
                apply!(x, y, I64, |p: i64, q: i64| p
                    .checked_div(q)
                    .ok_or_else(|| "integer division by zero".to_string()))
            }
            (TensorData::I32(x), TensorData::I32(y)) => {
                apply!(x, y, I32, |p: i32, q: i32| p
                    .checked_div(q)
                    .ok_or_else(|| "integer division by zero".to_string()))
            }
            (x, y) => {
                return Err(format!(
                    "operands have types {} and {}; they must match",
                    x.type_name(),
                    y.type_name()
                ))
            }
        };
        one(Tensor { shape, data })
    }
}

struct Unary(fn(f64) -> f64);

impl Kernel for Unary {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let data = match &x.data {
            TensorData::F32(v) => {
                TensorData::F32(v.iter().map(|&a| (self.0)(f64::from(a)) as f32).collect())
            }
            TensorData::F64(v) => TensorData::F64(v.iter().map(|&a| (self.0)(a)).collect()),
            other => return Err(format!("needs a float input, got {}", other.type_name())),
        };
        one(Tensor {
            shape: x.shape.clone(),
            data,
        })
    }
}

struct Softmax {
    axis: i64,
    legacy: bool,
}

impl Kernel for Softmax {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let ax = axis(self.axis, x.shape.len())?;
        let mut v = x.to_f64()?;
        let outer: usize = x.shape[..ax].iter().product();
        if self.legacy {
            // opset < 13: the input is flattened to [outer, rest].
            let inner = v.len() / outer.max(1);
            for row in v.chunks_mut(inner.max(1)) {
                super::ml::softmax(row);
            }
        } else {
            let n = x.shape[ax];
            let inner: usize = x.shape[ax + 1..].iter().product();
            let mut buf = vec![0.0; n];
            for o in 0..outer {
                for i in 0..inner {
                    for k in 0..n {
                        buf[k] = v[(o * n + k) * inner + i];
                    }
                    super::ml::softmax(&mut buf);
                    for k in 0..n {
                        v[(o * n + k) * inner + i] = buf[k];
                    }
                }
            }
        }
        one(float_like(x, x.shape.clone(), v))
    }
}

struct ArgMax {
    axis: i64,
    keepdims: bool,
    last: bool,
}

impl Kernel for ArgMax {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let ax = axis(self.axis, x.shape.len())?;
        let v = x.to_f64()?;
        let outer: usize = x.shape[..ax].iter().product();
        let n = x.shape[ax];
        let inner: usize = x.shape[ax + 1..].iter().product();
        let mut out = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let mut best = 0;
                for k in 1..n {
                    let (c, b) = (v[(o * n + k) * inner + i], v[(o * n + best) * inner + i]);
                    if c > b || (self.last && c == b) {
                        best = k;
                    }
                }
                out.push(best as i64);
            }
        }
        let mut shape = x.shape.clone();
        if self.keepdims {
            shape[ax] = 1;
        } else {
            shape.remove(ax);
        }
        one(Tensor {
            shape,
            data: TensorData::I64(out),
        })
    }
}
