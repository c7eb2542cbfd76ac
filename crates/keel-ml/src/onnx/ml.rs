//! `ai.onnx.ml` operators (except the tree ensembles, in `tree.rs`).
//!
//! Semantics follow the ONNX-ML specification and, where it is vague
//! (binary classifiers with one score column, post transforms), what
//! onnxruntime does, because that is what exported models are tested
//! against by their producers.

use std::collections::HashMap;

use super::{tensor_input, Attrs, CompileError, Kernel, MapKeys, Tensor, TensorData, Value};

pub(crate) fn compile(op: &str, a: &Attrs<'_>) -> Result<Box<dyn Kernel>, CompileError> {
    Ok(match op {
        "LinearClassifier" => Box::new(LinearClassifier::new(a)?),
        "LinearRegressor" => Box::new(LinearRegressor::new(a)?),
        "Scaler" => Box::new(Scaler {
            offset: a.floats("offset"),
            scale: a.floats("scale"),
        }),
        "Normalizer" => Box::new(Normalizer::new(a)?),
        "Imputer" => Box::new(Imputer::new(a)?),
        "ZipMap" => Box::new(ZipMap::new(a)?),
        "ArrayFeatureExtractor" => Box::new(ArrayFeatureExtractor),
        "Binarizer" => Box::new(Binarizer {
            threshold: a.float("threshold", 0.0),
        }),
        "OneHotEncoder" => Box::new(OneHotEncoder::new(a)?),
        "LabelEncoder" => Box::new(LabelEncoder::new(a)?),
        "FeatureVectorizer" => Box::new(FeatureVectorizer {
            dims: a
                .ints("inputdimensions")
                .iter()
                .map(|&d| usize::try_from(d).map_err(|_| format!("negative input dimension {d}")))
                .collect::<Result<_, _>>()?,
        }),
        "TreeEnsembleClassifier" => Box::new(super::tree::TreeEnsemble::classifier(a)?),
        "TreeEnsembleRegressor" => Box::new(super::tree::TreeEnsemble::regressor(a)?),
        _ => return Err(CompileError::Unsupported),
    })
}

/// `post_transform` of classifiers and regressors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    pub(crate) fn parse(a: &Attrs<'_>) -> Result<PostTransform, String> {
        Ok(match a.string("post_transform", "NONE").as_str() {
            "NONE" => PostTransform::None,
            "LOGISTIC" => PostTransform::Logistic,
            "SOFTMAX" => PostTransform::Softmax,
            "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
            "PROBIT" => PostTransform::Probit,
            other => return Err(format!("unknown post_transform {other:?}")),
        })
    }

    /// Applies the transform to one row of two or more scores.
    pub(crate) fn apply_row(self, row: &mut [f64]) {
        match self {
            PostTransform::None => {}
            PostTransform::Logistic => row.iter_mut().for_each(|x| *x = logistic(*x)),
            PostTransform::Probit => row.iter_mut().for_each(|x| *x = probit(*x)),
            PostTransform::Softmax => softmax(row),
            PostTransform::SoftmaxZero => {
                let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for x in row.iter_mut() {
                    if x.abs() > 1e-7 {
                        *x = (*x - max).exp();
                        sum += *x;
                    } else {
                        *x *= (-max).exp();
                    }
                }
                row.iter_mut().for_each(|x| *x /= sum);
            }
        }
    }
}

pub(crate) fn logistic(x: f64) -> f64 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 {
        1.0 - v
    } else {
        v
    }
}

pub(crate) fn softmax(row: &mut [f64]) {
    let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    row.iter_mut().for_each(|x| *x /= sum);
}

/// `sqrt(2) * erfinv(2p - 1)`, with the same approximation of `erfinv`
/// onnxruntime uses (Winitzki's), so PROBIT outputs agree.
pub(crate) fn probit(p: f64) -> f64 {
    let x = 2.0 * p - 1.0;
    let sgn = if x < 0.0 { -1.0 } else { 1.0 };
    let y = (1.0 - x) * (1.0 + x);
    let log = y.ln();
    let v = 2.0 / (std::f64::consts::PI * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147 * log;
    let v3 = -v + (v * v - v2).sqrt();
    std::f64::consts::SQRT_2 * sgn * v3.sqrt()
}

/// Class labels of a classifier: integers or strings.
#[derive(Clone, Debug)]
pub(crate) enum Labels {
    Ints(Vec<i64>),
    Strs(Vec<String>),
}

impl Labels {
    pub(crate) fn parse(a: &Attrs<'_>, ints: &str, strs: &str) -> Labels {
        let s = a.strings(strs);
        if s.is_empty() {
            Labels::Ints(a.ints(ints))
        } else {
            Labels::Strs(s)
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Labels::Ints(v) => v.len(),
            Labels::Strs(v) => v.len(),
        }
    }

    /// Builds the label output from class indices; `usize::MAX` stands
    /// for the "negative" default (0 / "0") and `usize::MAX - 1` for the
    /// "positive" default (1 / "1") used when fewer than two labels exist.
    pub(crate) fn tensor(&self, idx: &[usize]) -> Tensor {
        let data = match self {
            Labels::Ints(v) => TensorData::I64(
                idx.iter()
                    .map(|&i| match i {
                        usize::MAX => 0,
                        i if i == usize::MAX - 1 => 1,
                        i => v[i],
                    })
                    .collect(),
            ),
            Labels::Strs(v) => TensorData::Str(
                idx.iter()
                    .map(|&i| match i {
                        usize::MAX => "0".to_string(),
                        i if i == usize::MAX - 1 => "1".to_string(),
                        i => v[i].clone(),
                    })
                    .collect(),
            ),
        };
        Tensor {
            shape: vec![idx.len()],
            data,
        }
    }
}

struct LinearClassifier {
    coef: Vec<f32>,
    intercepts: Vec<f32>,
    labels: Labels,
    post: PostTransform,
}

impl LinearClassifier {
    fn new(a: &Attrs<'_>) -> Result<Self, String> {
        let coef = a.floats("coefficients");
        if coef.is_empty() {
            return Err("attribute coefficients is missing".into());
        }
        let intercepts = a.floats("intercepts");
        let labels = Labels::parse(a, "classlabels_ints", "classlabels_strings");
        let classes = intercepts.len().max(1);
        if coef.len() % classes != 0 {
            return Err(format!(
                "{} coefficients do not divide into {classes} classes",
                coef.len()
            ));
        }
        if classes > 1 && labels.len() != classes {
            return Err(format!(
                "{classes} score columns but {} class labels",
                labels.len()
            ));
        }
        Ok(LinearClassifier {
            coef,
            intercepts,
            labels,
            post: PostTransform::parse(a)?,
        })
    }
}

fn linear_scores(
    x: &Tensor,
    coef: &[f32],
    intercepts: &[f32],
    targets: usize,
) -> Result<(usize, Vec<f64>), String> {
    let (n, f) = x.as_matrix_dims();
    if f * targets != coef.len() {
        return Err(format!(
            "input has {f} features but the coefficients are for {}",
            coef.len() / targets.max(1)
        ));
    }
    let xs = x.to_f32()?;
    let mut out = vec![0.0f64; n * targets];
    for r in 0..n {
        let row = &xs[r * f..(r + 1) * f];
        for t in 0..targets {
            let w = &coef[t * f..(t + 1) * f];
            let mut s = 0.0f64;
            for (a, b) in row.iter().zip(w) {
                s += f64::from(*a) * f64::from(*b);
            }
            out[r * targets + t] = s + intercepts.get(t).map_or(0.0, |&b| f64::from(b));
        }
    }
    Ok((n, out))
}

impl Kernel for LinearClassifier {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let classes = self.intercepts.len().max(1);
        let (n, mut scores) = linear_scores(x, &self.coef, &self.intercepts, classes)?;
        let two_labels = self.labels.len() == 2;
        let mut idx = Vec::with_capacity(n);
        let out_cols;
        if classes == 1 {
            for &s in &scores {
                idx.push(match (s > 0.0, two_labels) {
                    (true, true) => 1,
                    (false, true) => 0,
                    (true, false) => usize::MAX - 1,
                    (false, false) => usize::MAX,
                });
            }
            if self.post == PostTransform::Probit {
                scores.iter_mut().for_each(|s| *s = probit(*s));
                out_cols = 1;
            } else if two_labels {
                // onnxruntime writes [1 - s, s] with no other transform.
                scores = scores.iter().flat_map(|&s| [1.0 - s, s]).collect();
                out_cols = 2;
            } else {
                out_cols = 1;
            }
        } else {
            for row in scores.chunks(classes) {
                idx.push(argmax_first(row));
            }
            for row in scores.chunks_mut(classes) {
                self.post.apply_row(row);
            }
            out_cols = classes;
        }
        Ok(vec![
            Value::Tensor(self.labels.tensor(&idx)),
            Value::Tensor(Tensor {
                shape: vec![n, out_cols],
                data: TensorData::F32(scores.iter().map(|&x| x as f32).collect()),
            }),
        ])
    }
}

pub(crate) fn argmax_first(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate().skip(1) {
        if v > row[best] {
            best = i;
        }
    }
    best
}

struct LinearRegressor {
    coef: Vec<f32>,
    intercepts: Vec<f32>,
    targets: usize,
    post: PostTransform,
}

impl LinearRegressor {
    fn new(a: &Attrs<'_>) -> Result<Self, String> {
        let targets = usize::try_from(a.int("targets", 1))
            .ok()
            .filter(|&t| t > 0)
            .ok_or("attribute targets must be positive")?;
        let coef = a.floats("coefficients");
        if coef.is_empty() || coef.len() % targets != 0 {
            return Err(format!(
                "{} coefficients do not divide into {targets} targets",
                coef.len()
            ));
        }
        Ok(LinearRegressor {
            coef,
            intercepts: a.floats("intercepts"),
            targets,
            post: PostTransform::parse(a)?,
        })
    }
}

impl Kernel for LinearRegressor {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let (n, mut scores) = linear_scores(x, &self.coef, &self.intercepts, self.targets)?;
        if self.targets > 1 {
            for row in scores.chunks_mut(self.targets) {
                self.post.apply_row(row);
            }
        } else if self.post == PostTransform::Probit {
            scores.iter_mut().for_each(|s| *s = probit(*s));
        }
        Ok(vec![Value::Tensor(Tensor {
            shape: vec![n, self.targets],
            data: TensorData::F32(scores.iter().map(|&x| x as f32).collect()),
        })])
    }
}

struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

fn per_column<T: Copy>(v: &[T], j: usize, default: T) -> T {
    match v.len() {
        0 => default,
        1 => v[0],
        _ => v[j],
    }
}

impl Kernel for Scaler {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let (_, c) = x.as_matrix_dims();
        for (name, v) in [("offset", &self.offset), ("scale", &self.scale)] {
            if v.len() > 1 && v.len() != c {
                return Err(format!("{name} has {} values for {c} columns", v.len()));
            }
        }
        let c = c.max(1);
        let out: Vec<f32> = match &x.data {
            TensorData::F32(v) => v
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    let j = i % c;
                    (x - per_column(&self.offset, j, 0.0)) * per_column(&self.scale, j, 1.0)
                })
                .collect(),
            _ => x
                .to_f64()?
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    let j = i % c;
                    ((x - f64::from(per_column(&self.offset, j, 0.0)))
                        * f64::from(per_column(&self.scale, j, 1.0))) as f32
                })
                .collect(),
        };
        Ok(vec![Value::Tensor(Tensor {
            shape: x.shape.clone(),
            data: TensorData::F32(out),
        })])
    }
}

enum Norm {
    Max,
    L1,
    L2,
}

struct Normalizer(Norm);

impl Normalizer {
    fn new(a: &Attrs<'_>) -> Result<Self, String> {
        Ok(Normalizer(match a.string("norm", "MAX").as_str() {
            "MAX" => Norm::Max,
            "L1" => Norm::L1,
            "L2" => Norm::L2,
            other => return Err(format!("unknown norm {other:?}")),
        }))
    }
}

impl Kernel for Normalizer {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let (_, c) = x.as_matrix_dims();
        let mut v = x.to_f32()?;
        for row in v.chunks_mut(c.max(1)) {
            let d = match self.0 {
                Norm::Max => row.iter().cloned().fold(f32::MIN, f32::max),
                Norm::L1 => row.iter().map(|x| x.abs()).sum(),
                Norm::L2 => row.iter().map(|x| x * x).sum::<f32>().sqrt(),
            };
            if d != 0.0 {
                row.iter_mut().for_each(|x| *x /= d);
            }
        }
        Ok(vec![Value::Tensor(Tensor {
            shape: x.shape.clone(),
            data: TensorData::F32(v),
        })])
    }
}

struct Imputer {
    floats: Vec<f32>,
    ints: Vec<i64>,
    replaced_float: f32,
    replaced_int: i64,
}

impl Imputer {
    fn new(a: &Attrs<'_>) -> Result<Self, String> {
        let floats = a.floats("imputed_value_floats");
        let ints = a.ints("imputed_value_int64s");
        if floats.is_empty() && ints.is_empty() {
            return Err("needs imputed_value_floats or imputed_value_int64s".into());
        }
        Ok(Imputer {
            floats,
            ints,
            replaced_float: a.float("replaced_value_float", 0.0),
            replaced_int: a.int("replaced_value_int64", 0),
        })
    }
}

impl Kernel for Imputer {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let (_, c) = x.as_matrix_dims();
        let c = c.max(1);
        let check = |n: usize| {
            if n > 1 && n != c {
                Err(format!("{n} imputed values for {c} columns"))
            } else {
                Ok(())
            }
        };
        let data = match &x.data {
            TensorData::I64(v) => {
                check(self.ints.len())?;
                if self.ints.is_empty() {
                    return Err("int64 input but no imputed_value_int64s".into());
                }
                TensorData::I64(
                    v.iter()
                        .enumerate()
                        .map(|(i, &x)| {
                            if x == self.replaced_int {
                                per_column(&self.ints, i % c, 0)
                            } else {
                                x
                            }
                        })
                        .collect(),
                )
            }
            _ => {
                check(self.floats.len())?;
                if self.floats.is_empty() {
                    return Err("float input but no imputed_value_floats".into());
                }
                let nan = self.replaced_float.is_nan();
                TensorData::F32(
                    x.to_f32()?
                        .iter()
                        .enumerate()
                        .map(|(i, &x)| {
                            if (nan && x.is_nan()) || x == self.replaced_float {
                                per_column(&self.floats, i % c, 0.0)
                            } else {
                                x
                            }
                        })
                        .collect(),
                )
            }
        };
        Ok(vec![Value::Tensor(Tensor {
            shape: x.shape.clone(),
            data,
        })])
    }
}

struct ZipMap(MapKeys);

impl ZipMap {
    fn new(a: &Attrs<'_>) -> Result<Self, String> {
        match Labels::parse(a, "classlabels_int64s", "classlabels_strings") {
            Labels::Ints(v) if v.is_empty() => {
                Err("needs classlabels_int64s or classlabels_strings".into())
            }
            Labels::Ints(v) => Ok(ZipMap(MapKeys::I64(v))),
            Labels::Strs(v) => Ok(ZipMap(MapKeys::Str(v))),
        }
    }
}

impl Kernel for ZipMap {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let (_, c) = x.as_matrix_dims();
        let k = match &self.0 {
            MapKeys::I64(v) => v.len(),
            MapKeys::Str(v) => v.len(),
        };
        if c != k {
            return Err(format!("{c} score columns but {k} class labels"));
        }
        Ok(vec![Value::SeqMap {
            keys: self.0.clone(),
            values: x.to_f32()?,
        }])
    }
}

struct ArrayFeatureExtractor;

impl Kernel for ArrayFeatureExtractor {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let idx = tensor_input(inputs, 1)?.to_i64()?;
        let c = *x.shape.last().ok_or("input is a scalar")?;
        let idx: Vec<usize> = idx
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .filter(|&i| i < c)
                    .ok_or_else(|| format!("index {i} out of range for {c} columns"))
            })
            .collect::<Result<_, _>>()?;
        let rows = x.len() / c.max(1);
        let shape = if x.shape.len() == 1 {
            vec![1, idx.len()]
        } else {
            let mut s = x.shape.clone();
            *s.last_mut().expect("rank >= 1") = idx.len();
            s
        };
        let pick = |r: usize, k: usize| r * c + idx[k];
        macro_rules! gather {
            ($v:expr, $variant:ident) => {
                TensorData::$variant(
                    (0..rows)
                        .flat_map(|r| (0..idx.len()).map(move |k| (r, k)))
                        .map(|(r, k)| $v[pick(r, k)].clone())
                        .collect(),
                )
            };
        }
        let data = match &x.data {
            TensorData::F32(v) => gather!(v, F32),
            TensorData::F64(v) => gather!(v, F64),
            TensorData::I64(v) => gather!(v, I64),
            TensorData::I32(v) => gather!(v, I32),
            TensorData::Bool(v) => gather!(v, Bool),
            TensorData::Str(v) => gather!(v, Str),
        };
        Ok(vec![Value::Tensor(Tensor { shape, data })])
    }
}

struct Binarizer {
    threshold: f32,
}

impl Kernel for Binarizer {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let t = f64::from(self.threshold);
        let data = match &x.data {
            TensorData::F32(v) => TensorData::F32(
                v.iter()
                    .map(|&a| if a > self.threshold { 1.0 } else { 0.0 })
                    .collect(),
            ),
            TensorData::F64(v) => {
                TensorData::F64(v.iter().map(|&a| if a > t { 1.0 } else { 0.0 }).collect())
            }
            TensorData::I64(v) => {
                TensorData::I64(v.iter().map(|&a| i64::from(a as f64 > t)).collect())
            }
            TensorData::I32(v) => {
                TensorData::I32(v.iter().map(|&a| i32::from(f64::from(a) > t)).collect())
            }
            other => {
                return Err(format!(
                    "Binarizer does not take {} input",
                    other.type_name()
                ))
            }
        };
        Ok(vec![Value::Tensor(Tensor {
            shape: x.shape.clone(),
            data,
        })])
    }
}

struct OneHotEncoder {
    ints: HashMap<i64, usize>,
    strs: HashMap<String, usize>,
    n: usize,
    zeros: bool,
}

impl OneHotEncoder {
    fn new(a: &Attrs<'_>) -> Result<Self, String> {
        let ints = a.ints("cats_int64s");
        let strs = a.strings("cats_strings");
        if ints.is_empty() == strs.is_empty() {
            return Err("needs exactly one of cats_int64s and cats_strings".into());
        }
        Ok(OneHotEncoder {
            n: ints.len().max(strs.len()),
            ints: ints.iter().enumerate().map(|(i, &k)| (k, i)).collect(),
            strs: strs.into_iter().enumerate().map(|(i, k)| (k, i)).collect(),
            zeros: a.int("zeros", 1) != 0,
        })
    }
}

impl Kernel for OneHotEncoder {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let positions: Vec<Option<usize>> = match &x.data {
            TensorData::Str(v) => v.iter().map(|s| self.strs.get(s).copied()).collect(),
            _ => x
                .to_i64()?
                .iter()
                .map(|k| self.ints.get(k).copied())
                .collect(),
        };
        let mut out = vec![0.0f32; positions.len() * self.n];
        for (i, p) in positions.iter().enumerate() {
            match p {
                Some(p) => out[i * self.n + p] = 1.0,
                None if self.zeros => {}
                None => return Err(format!("value #{i} is not a known category")),
            }
        }
        let mut shape = x.shape.clone();
        shape.push(self.n);
        Ok(vec![Value::Tensor(Tensor {
            shape,
            data: TensorData::F32(out),
        })])
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Scalar {
    I(i64),
    F(f32),
    S(String),
}

struct LabelEncoder {
    map: Vec<(Scalar, Scalar)>,
    default: Scalar,
}

impl LabelEncoder {
    fn new(a: &Attrs<'_>) -> Result<Self, String> {
        let classes = a.strings("classes_strings");
        if !classes.is_empty() {
            // opset 1: string <-> int64 by position in classes_strings.
            let map = classes
                .into_iter()
                .enumerate()
                .map(|(i, s)| (Scalar::S(s), Scalar::I(i as i64)))
                .collect();
            return Ok(LabelEncoder {
                map,
                default: Scalar::I(a.int("default_int64", -1)),
            });
        }
        let keys: Vec<Scalar> = if a.has("keys_strings") {
            a.strings("keys_strings")
                .into_iter()
                .map(Scalar::S)
                .collect()
        } else if a.has("keys_int64s") {
            a.ints("keys_int64s").into_iter().map(Scalar::I).collect()
        } else {
            a.floats("keys_floats").into_iter().map(Scalar::F).collect()
        };
        let (values, default): (Vec<Scalar>, Scalar) = if a.has("values_strings") {
            (
                a.strings("values_strings")
                    .into_iter()
                    .map(Scalar::S)
                    .collect(),
                Scalar::S(a.string("default_string", "_Unused")),
            )
        } else if a.has("values_int64s") {
            (
                a.ints("values_int64s").into_iter().map(Scalar::I).collect(),
                Scalar::I(a.int("default_int64", -1)),
            )
        } else {
            (
                a.floats("values_floats")
                    .into_iter()
                    .map(Scalar::F)
                    .collect(),
                Scalar::F(a.float("default_float", -0.0)),
            )
        };
        if keys.len() != values.len() || keys.is_empty() {
            return Err(format!(
                "{} keys and {} values: they must be equal in number and not empty",
                keys.len(),
                values.len()
            ));
        }
        Ok(LabelEncoder {
            map: keys.into_iter().zip(values).collect(),
            default,
        })
    }

    fn lookup(&self, k: &Scalar) -> Scalar {
        self.map
            .iter()
            .find(|(key, _)| key == k)
            .map_or_else(|| self.default.clone(), |(_, v)| v.clone())
    }
}

impl Kernel for LabelEncoder {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let keys: Vec<Scalar> = match &x.data {
            TensorData::Str(v) => v.iter().cloned().map(Scalar::S).collect(),
            TensorData::I64(v) => v.iter().map(|&i| Scalar::I(i)).collect(),
            TensorData::F32(v) => v.iter().map(|&f| Scalar::F(f)).collect(),
            other => {
                return Err(format!(
                    "LabelEncoder does not take {} input",
                    other.type_name()
                ))
            }
        };
        let out: Vec<Scalar> = keys.iter().map(|k| self.lookup(k)).collect();
        let data = match &self.default {
            Scalar::S(_) => TensorData::Str(
                out.into_iter()
                    .map(|s| match s {
                        Scalar::S(s) => s,
                        _ => String::new(),
                    })
                    .collect(),
            ),
            Scalar::I(_) => TensorData::I64(
                out.into_iter()
                    .map(|s| match s {
                        Scalar::I(i) => i,
                        _ => 0,
                    })
                    .collect(),
            ),
            Scalar::F(_) => TensorData::F32(
                out.into_iter()
                    .map(|s| match s {
                        Scalar::F(f) => f,
                        _ => 0.0,
                    })
                    .collect(),
            ),
        };
        Ok(vec![Value::Tensor(Tensor {
            shape: x.shape.clone(),
            data,
        })])
    }
}

struct FeatureVectorizer {
    dims: Vec<usize>,
}

impl Kernel for FeatureVectorizer {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        if inputs.len() != self.dims.len() {
            return Err(format!(
                "{} inputs but inputdimensions lists {}",
                inputs.len(),
                self.dims.len()
            ));
        }
        let total: usize = self.dims.iter().sum();
        let mut mats = Vec::new();
        let mut rows = None;
        for i in 0..inputs.len() {
            let t = tensor_input(inputs, i)?;
            let (r, c) = t.as_matrix_dims();
            if *rows.get_or_insert(r) != r {
                return Err("inputs have different numbers of rows".into());
            }
            mats.push((c, t.to_f32()?));
        }
        let rows = rows.unwrap_or(0);
        let mut out = vec![0.0f32; rows * total];
        for r in 0..rows {
            let mut off = r * total;
            for ((c, m), &d) in mats.iter().zip(&self.dims) {
                let take = (*c).min(d);
                out[off..off + take].copy_from_slice(&m[r * c..r * c + take]);
                off += d;
            }
        }
        Ok(vec![Value::Tensor(Tensor {
            shape: vec![rows, total],
            data: TensorData::F32(out),
        })])
    }
}
