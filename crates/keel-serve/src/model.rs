//! A model as the server sees it: a loaded package, its signature (the
//! columns a request must carry, with their types), how columns map onto
//! graph inputs, and how outputs become predictions.
//!
//! Both protocols end here: MLflow requests arrive as a [`Frame`] (named
//! columns) and are turned into graph inputs by [`ServedModel::frame_inputs`];
//! Open Inference Protocol requests arrive as named tensors and are checked
//! by [`ServedModel::check_inputs`]. Either way the model runs once, in
//! [`ServedModel::predict`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_ml::onnx::proto::DataType;
use keel_ml::onnx::{IoType, Tensor, TensorData, Value};
use keel_ml::package::Package;

use crate::error::{Result, ServeError};
use crate::predlog::{csv_field, LogRows};

/// The element type of a signature column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColType {
    /// `float32`.
    F32,
    /// `float64`.
    F64,
    /// `int64`.
    I64,
    /// `int32`.
    I32,
    /// `bool`.
    Bool,
    /// `string`.
    Str,
}

impl ColType {
    fn of(dt: DataType) -> ColType {
        match dt {
            DataType::Double => ColType::F64,
            DataType::Int64 => ColType::I64,
            DataType::Int32 => ColType::I32,
            DataType::Bool => ColType::Bool,
            DataType::String => ColType::Str,
            _ => ColType::F32,
        }
    }

    /// The Open Inference Protocol datatype name.
    pub fn v2(self) -> &'static str {
        match self {
            ColType::F32 => "FP32",
            ColType::F64 => "FP64",
            ColType::I64 => "INT64",
            ColType::I32 => "INT32",
            ColType::Bool => "BOOL",
            ColType::Str => "BYTES",
        }
    }

    /// The MLflow signature type name.
    pub fn mlflow(self) -> &'static str {
        match self {
            ColType::F32 => "float",
            ColType::F64 => "double",
            ColType::I64 => "long",
            ColType::I32 => "integer",
            ColType::Bool => "boolean",
            ColType::Str => "string",
        }
    }

    /// Parses an Open Inference Protocol datatype name.
    pub fn from_v2(s: &str) -> Option<ColType> {
        Some(match s {
            "FP32" => ColType::F32,
            "FP64" => ColType::F64,
            "INT64" => ColType::I64,
            "INT32" => ColType::I32,
            "BOOL" => ColType::Bool,
            "BYTES" => ColType::Str,
            _ => return None,
        })
    }
}

/// A column of the model signature.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Its name in requests.
    pub name: String,
    /// Its element type.
    pub ty: ColType,
}

/// A graph input or output as the Open Inference Protocol describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    /// Name in the graph.
    pub name: String,
    /// Element type.
    pub ty: ColType,
    /// Dimensions, `-1` for a variable one.
    pub shape: Vec<i64>,
}

/// How signature columns map onto graph inputs.
#[derive(Clone, Debug, PartialEq)]
enum Layout {
    /// One `[N, F]` input; column `j` is its `j`-th feature.
    Matrix,
    /// One input per column, each `[N]` or `[N, 1]`.
    PerColumn,
}

/// One cell of a request frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// A JSON number or a numeric CSV field.
    Num(f64),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// A JSON `null` or an empty CSV field.
    Null,
}

/// A request as named columns (MLflow formats), column-major.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    /// Column names, as sent.
    pub columns: Vec<String>,
    /// `data[c][r]`: row `r` of column `c`.
    pub data: Vec<Vec<Cell>>,
}

impl Frame {
    /// Number of rows (0 when there are no columns).
    pub fn rows(&self) -> usize {
        self.data.first().map_or(0, Vec::len)
    }
}

/// The result of one model run.
#[derive(Debug)]
pub struct Outcome {
    /// The outputs, by name, in graph order.
    pub outputs: Vec<(String, Value)>,
    /// Rows scored.
    pub rows: usize,
    /// The predicted label (or value) per row, as text.
    pub labels: Vec<String>,
    /// The score per row: the positive-class probability for a binary
    /// classifier, the top probability for a multi-class one, the value for
    /// a regressor; `NaN` when there is none.
    pub scores: Vec<f64>,
    /// Time spent evaluating the model (synchronously, on one thread: this
    /// is the CPU time of the prediction).
    pub compute: Duration,
}

/// A loaded model: the package plus what serving needs to know about it.
#[derive(Debug)]
pub struct ServedModel {
    /// The registered model name (or the package directory's name).
    pub name: String,
    /// The version that answers (registry version or content hash).
    pub version: String,
    /// Where the package was loaded from.
    pub path: PathBuf,
    /// The package.
    pub package: Package,
    /// The signature: what requests must carry.
    pub columns: Vec<Column>,
    /// Graph inputs.
    pub inputs: Vec<TensorSpec>,
    /// Graph outputs.
    pub outputs: Vec<TensorSpec>,
    /// Seconds the load took.
    pub load_seconds: f64,
    layout: Layout,
    label_output: usize,
    proba_output: Option<usize>,
    /// Column names for the prediction log, shared with every record.
    pub log_columns: Arc<[String]>,
}

fn spec(info: &keel_ml::onnx::IoInfo) -> TensorSpec {
    match &info.ty {
        IoType::Tensor { elem, shape } => TensorSpec {
            name: info.name.clone(),
            ty: ColType::of(*elem),
            shape: shape.iter().map(|d| d.unwrap_or(-1)).collect(),
        },
        // A ZipMap output is served as its [N, classes] probability matrix.
        _ => TensorSpec {
            name: info.name.clone(),
            ty: ColType::F32,
            shape: vec![-1, -1],
        },
    }
}

impl ServedModel {
    /// Loads the package at `path` as `name` version `version`.
    pub fn load(path: &Path, name: &str, version: &str) -> Result<ServedModel> {
        let start = Instant::now();
        let package = Package::load(path).map_err(|source| ServeError::Load {
            path: path.to_path_buf(),
            source,
        })?;
        let inputs: Vec<TensorSpec> = package.model.inputs().map(spec).collect();
        let outputs: Vec<TensorSpec> = package.model.outputs().map(spec).collect();
        let model_err = |m: String| ServeError::Load {
            path: path.to_path_buf(),
            source: keel_ml::Error::Model(m),
        };
        let (layout, columns) = match inputs.as_slice() {
            [] => return Err(model_err("the model has no inputs".into())),
            [one] => {
                let width = match one.shape.len() {
                    1 => 1,
                    _ => one.shape.get(1).copied().unwrap_or(-1),
                };
                let names = match package.features() {
                    Some(f) => f,
                    None if width > 0 => (0..width).map(|i| i.to_string()).collect(),
                    None => {
                        return Err(model_err(format!(
                            "input {:?} has a variable width and the package names no features \
                             (keel.json `features` or an MLflow column signature)",
                            one.name
                        )))
                    }
                };
                if width > 0 && names.len() as i64 != width {
                    return Err(model_err(format!(
                        "the package names {} features but input {:?} takes {width}",
                        names.len(),
                        one.name
                    )));
                }
                let cols: Vec<Column> = names
                    .into_iter()
                    .map(|name| Column { name, ty: one.ty })
                    .collect();
                (Layout::Matrix, cols)
            }
            many => {
                for i in many {
                    if i.shape.len() > 2 || i.shape.get(1).is_some_and(|&d| d != 1 && d != -1) {
                        return Err(model_err(format!(
                            "input {:?} has shape {:?}; keel serves one [N, F] input or one [N, 1] input per column",
                            i.name, i.shape
                        )));
                    }
                }
                let cols: Vec<Column> = many
                    .iter()
                    .map(|i| Column {
                        name: i.name.clone(),
                        ty: i.ty,
                    })
                    .collect();
                (Layout::PerColumn, cols)
            }
        };
        if outputs.is_empty() {
            return Err(model_err("the model has no outputs".into()));
        }
        let label_output = outputs
            .iter()
            .position(|o| o.shape.len() <= 1 || o.ty == ColType::I64 || o.ty == ColType::Str)
            .unwrap_or(0);
        let proba_output = outputs.iter().enumerate().position(|(i, o)| {
            i != label_output && o.shape.len() == 2 && matches!(o.ty, ColType::F32 | ColType::F64)
        });
        let mut log_columns: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        log_columns.push("prediction".into());
        log_columns.push("score".into());
        Ok(ServedModel {
            name: name.to_string(),
            version: version.to_string(),
            path: path.to_path_buf(),
            package,
            columns,
            inputs,
            outputs,
            load_seconds: start.elapsed().as_secs_f64(),
            layout,
            label_output,
            proba_output,
            log_columns: log_columns.into(),
        })
    }

    /// Class labels of a classifier, in score-column order.
    pub fn classes(&self) -> Vec<String> {
        if !self.package.meta.classes.is_empty() {
            return self.package.meta.classes.clone();
        }
        self.package
            .model
            .class_labels()
            .map(<[String]>::to_vec)
            .unwrap_or_default()
    }

    /// Builds the graph inputs from named columns, checking names and types
    /// against the signature. Errors name the column and row at fault.
    pub fn frame_inputs(&self, frame: &Frame) -> Result<Vec<(String, Tensor)>> {
        let expected = || {
            self.columns
                .iter()
                .map(|c| format!("{} ({})", c.name, c.ty.mlflow()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let unknown: Vec<&str> = frame
            .columns
            .iter()
            .filter(|c| !self.columns.iter().any(|s| &s.name == *c))
            .map(String::as_str)
            .collect();
        let missing: Vec<&str> = self
            .columns
            .iter()
            .filter(|s| !frame.columns.contains(&s.name))
            .map(|s| s.name.as_str())
            .collect();
        if !missing.is_empty() || !unknown.is_empty() {
            let mut msg = String::new();
            if !missing.is_empty() {
                msg.push_str(&format!("Model is missing inputs {missing:?}"));
            }
            if !unknown.is_empty() {
                if !msg.is_empty() {
                    msg.push_str("; ");
                }
                msg.push_str(&format!("unknown columns {unknown:?}"));
            }
            return Err(ServeError::BadRequest(format!(
                "{msg}. The model takes: {}",
                expected()
            )));
        }
        let n = frame.rows();
        if n == 0 {
            return Err(ServeError::BadRequest("the request holds no rows".into()));
        }
        let col_of = |name: &str| {
            let i = frame.columns.iter().position(|c| c == name).unwrap_or(0);
            &frame.data[i]
        };
        match self.layout {
            Layout::Matrix => {
                let f = self.columns.len();
                let ty = self.columns[0].ty;
                let mut buf = Buf::new(ty, n * f);
                for r in 0..n {
                    for c in &self.columns {
                        buf.push(col_of(&c.name).get(r), &c.name, r)?;
                    }
                }
                Ok(vec![(
                    self.inputs[0].name.clone(),
                    buf.into_tensor(self.matrix_shape(n, f)),
                )])
            }
            Layout::PerColumn => self
                .columns
                .iter()
                .zip(&self.inputs)
                .map(|(c, spec)| {
                    let mut buf = Buf::new(c.ty, n);
                    for (r, cell) in col_of(&c.name).iter().enumerate() {
                        buf.push(Some(cell), &c.name, r)?;
                    }
                    let shape = if spec.shape.len() == 1 {
                        vec![n]
                    } else {
                        vec![n, 1]
                    };
                    Ok((spec.name.clone(), buf.into_tensor(shape)))
                })
                .collect(),
        }
    }

    /// Builds graph inputs from a bare tensor (MLflow `inputs`/`instances`
    /// given as a list of rows) for a one-input model.
    pub fn rows_inputs(&self, rows: &[Vec<Cell>]) -> Result<Vec<(String, Tensor)>> {
        let mut b = self.rows_builder(rows.len())?;
        for row in rows {
            for cell in row {
                b.push(cell)?;
            }
            b.end_row()?;
        }
        b.finish()
    }

    /// A [`RowsBuilder`] for about `rows` rows; refused unless the model
    /// takes one `[N, F]` input.
    pub fn rows_builder(&self, rows: usize) -> Result<RowsBuilder<'_>> {
        if self.layout != Layout::Matrix {
            return Err(ServeError::BadRequest(format!(
                "this model takes named columns ({}); send `dataframe_split`, `dataframe_records` or `inputs` as an object",
                self.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(RowsBuilder {
            model: self,
            buf: Buf::new(self.columns[0].ty, rows * self.columns.len()),
            rows: 0,
            col: 0,
        })
    }

    /// Checks named tensors (Open Inference Protocol) against the graph
    /// inputs: every input present, no unknown ones, element types
    /// compatible (numeric types are converted), fixed dimensions equal.
    pub fn check_inputs(&self, given: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>> {
        for (name, _) in &given {
            if !self.inputs.iter().any(|i| &i.name == name) {
                return Err(ServeError::BadRequest(format!(
                    "unexpected inference input '{name}' for model '{}'; the model takes {}",
                    self.name,
                    self.input_list()
                )));
            }
        }
        let mut by_name = given;
        let mut out = Vec::with_capacity(self.inputs.len());
        for spec in &self.inputs {
            let pos = by_name
                .iter()
                .position(|(n, _)| n == &spec.name)
                .ok_or_else(|| {
                    ServeError::BadRequest(format!(
                        "expected {} inputs but got {}; missing input '{}' ({})",
                        self.inputs.len(),
                        out.len() + by_name.len(),
                        spec.name,
                        self.input_list()
                    ))
                })?;
            let (name, t) = by_name.swap_remove(pos);
            let rank_ok = spec.shape.len() == t.shape.len()
                || (self.layout == Layout::PerColumn
                    && t.shape.len() == 1
                    && spec.shape.len() == 2);
            if !rank_ok {
                return Err(ServeError::BadRequest(format!(
                    "input '{name}': shape {:?} does not match the model's {:?}",
                    t.shape, spec.shape
                )));
            }
            if spec.shape.len() == t.shape.len() {
                for (d, (&want, &got)) in spec.shape.iter().zip(&t.shape).enumerate() {
                    if want >= 0 && want as usize != got {
                        return Err(ServeError::BadRequest(format!(
                            "input '{name}': dimension {d} is {got}, the model takes {want} (shape {:?})",
                            spec.shape
                        )));
                    }
                }
            }
            let t = coerce(t, spec.ty)
                .map_err(|m| ServeError::BadRequest(format!("input '{name}': {m}")))?;
            let t = if spec.shape.len() == 2 && t.shape.len() == 1 {
                let n = t.shape[0];
                Tensor {
                    shape: vec![n, 1],
                    ..t
                }
            } else {
                t
            };
            out.push((name, t));
        }
        Ok(out)
    }

    fn matrix_shape(&self, n: usize, f: usize) -> Vec<usize> {
        if self.inputs[0].shape.len() == 1 {
            vec![n]
        } else {
            vec![n, f]
        }
    }

    fn input_list(&self) -> String {
        self.inputs
            .iter()
            .map(|i| format!("'{}' {} {:?}", i.name, i.ty.v2(), i.shape))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Runs the model on checked inputs.
    pub fn predict(&self, inputs: Vec<(String, Tensor)>) -> Result<Outcome> {
        let rows = inputs
            .first()
            .map_or(0, |(_, t)| t.shape.first().copied().unwrap_or(1));
        let start = Instant::now();
        let outputs = self.package.model.run_named(inputs).map_err(|e| match e {
            keel_ml::Error::Input(m) => ServeError::BadRequest(m),
            other => ServeError::Model(other.to_string()),
        })?;
        let compute = start.elapsed();
        let labels = match &outputs[self.label_output].1 {
            Value::Tensor(t) => tensor_strings(t),
            v @ Value::SeqMap { .. } => {
                let (r, c, m) = v.to_matrix_f64().unwrap_or_default();
                (0..r)
                    .map(|i| argmax(&m[i * c..(i + 1) * c]).to_string())
                    .collect()
            }
        };
        let scores = match self.proba_output.map(|i| &outputs[i].1) {
            Some(v) => match v.to_matrix_f64() {
                Ok((r, 2, m)) => (0..r).map(|i| m[i * 2 + 1]).collect(),
                Ok((r, c, m)) if c > 0 => (0..r)
                    .map(|i| {
                        m[i * c..(i + 1) * c]
                            .iter()
                            .copied()
                            .fold(f64::NAN, f64::max)
                    })
                    .collect(),
                _ => vec![f64::NAN; labels.len()],
            },
            None => labels
                .iter()
                .map(|l| l.parse::<f64>().unwrap_or(f64::NAN))
                .collect(),
        };
        Ok(Outcome {
            outputs,
            rows,
            labels,
            scores,
            compute,
        })
    }

    /// The predictions MLflow's scoring server would return: the label (or
    /// value) output, one element per row.
    pub fn mlflow_predictions(&self, outcome: &Outcome) -> serde_json::Value {
        match &outcome.outputs[self.label_output].1 {
            Value::Tensor(t) => {
                let flat = tensor_json(t);
                match (t.shape.len(), flat) {
                    (2, serde_json::Value::Array(items)) if t.shape[1] != 1 => {
                        let w = t.shape[1].max(1);
                        serde_json::Value::Array(
                            items
                                .chunks(w)
                                .map(|c| serde_json::Value::Array(c.to_vec()))
                                .collect(),
                        )
                    }
                    (_, v) => v,
                }
            }
            Value::SeqMap { .. } => outcome
                .labels
                .iter()
                .map(|l| serde_json::Value::String(l.clone()))
                .collect(),
        }
    }

    /// Each row of a scored request as the CSV fields of a prediction-log
    /// line: the feature values, then the row's label and score (empty when
    /// missing or NaN), written straight into one buffer.
    pub fn log_rows(&self, inputs: &[Tensor], labels: &[String], scores: &[f64]) -> LogRows {
        let (n, width) = match self.layout {
            Layout::Matrix => inputs.first().map_or((0, 0), Tensor::as_matrix_dims),
            Layout::PerColumn => (
                inputs
                    .first()
                    .map_or(0, |t| t.shape.first().copied().unwrap_or(1)),
                inputs.len(),
            ),
        };
        let mut rows = LogRows::with_capacity(n, width * 10 + 24);
        let mut score = ryu::Buffer::new();
        for i in 0..n {
            let line = rows.current();
            for j in 0..width {
                if j > 0 {
                    line.push(',');
                }
                match self.layout {
                    Layout::Matrix => write_cell(line, &inputs[0], i * width + j),
                    Layout::PerColumn => write_cell(line, &inputs[j], i),
                }
            }
            line.push(',');
            csv_field(line, labels.get(i).map_or("", String::as_str));
            line.push(',');
            if let Some(s) = scores.get(i).filter(|s| !s.is_nan()) {
                line.push_str(score.format(*s));
            }
            rows.end_row();
        }
        rows
    }
}

/// Appends element `i` of `t` as a CSV field (empty for NaN or a missing
/// element). Floats are written at their own precision: an f32 `0.1` is
/// `0.1`, not its f64 widening `0.10000000149011612` (shortest round-trip
/// form, by `ryu`: `1.0`, `1e-7`; std's formatting was a fifth of the CPU
/// of 100-row requests).
pub fn write_cell(out: &mut String, t: &Tensor, i: usize) {
    match &t.data {
        TensorData::F32(v) => {
            if let Some(x) = v.get(i).filter(|x| !x.is_nan()) {
                out.push_str(ryu::Buffer::new().format(*x));
            }
        }
        TensorData::F64(v) => {
            if let Some(x) = v.get(i).filter(|x| !x.is_nan()) {
                out.push_str(ryu::Buffer::new().format(*x));
            }
        }
        TensorData::I64(v) => {
            if let Some(x) = v.get(i) {
                out.push_str(itoa::Buffer::new().format(*x));
            }
        }
        TensorData::I32(v) => {
            if let Some(x) = v.get(i) {
                out.push_str(itoa::Buffer::new().format(*x));
            }
        }
        TensorData::Bool(v) => {
            if let Some(x) = v.get(i) {
                out.push_str(if *x { "true" } else { "false" });
            }
        }
        TensorData::Str(v) => {
            if let Some(x) = v.get(i) {
                csv_field(out, x);
            }
        }
    }
}

fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}

/// Fills a one-input model's `[N, F]` matrix cell by cell, row by row,
/// with the checks of [`Buf::push`]: the one implementation behind rows
/// given as parsed JSON values and rows streamed from the request body.
pub struct RowsBuilder<'m> {
    model: &'m ServedModel,
    buf: Buf,
    rows: usize,
    /// Cells seen in the current row (past `F` they are only counted).
    col: usize,
}

impl RowsBuilder<'_> {
    /// Appends the next cell of the current row.
    pub fn push(&mut self, cell: &Cell) -> Result<()> {
        if let Some(c) = self.model.columns.get(self.col) {
            self.buf.push(Some(cell), &c.name, self.rows)?;
        }
        self.col += 1;
        Ok(())
    }

    /// Ends the current row: it must hold one value per feature.
    pub fn end_row(&mut self) -> Result<()> {
        let f = self.model.columns.len();
        if self.col != f {
            return Err(ServeError::BadRequest(format!(
                "row {} has {} values; the model takes {f} ({})",
                self.rows,
                self.col,
                self.model
                    .columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        self.rows += 1;
        self.col = 0;
        Ok(())
    }

    /// The graph input; at least one row is required.
    pub fn finish(self) -> Result<Vec<(String, Tensor)>> {
        if self.rows == 0 {
            return Err(ServeError::BadRequest("the request holds no rows".into()));
        }
        let m = self.model;
        Ok(vec![(
            m.inputs[0].name.clone(),
            self.buf
                .into_tensor(m.matrix_shape(self.rows, m.columns.len())),
        )])
    }
}

/// A typed buffer filled cell by cell.
enum Buf {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
    Str(Vec<String>),
}

impl Buf {
    fn new(ty: ColType, cap: usize) -> Buf {
        match ty {
            ColType::F32 => Buf::F32(Vec::with_capacity(cap)),
            ColType::F64 => Buf::F64(Vec::with_capacity(cap)),
            ColType::I64 => Buf::I64(Vec::with_capacity(cap)),
            ColType::I32 => Buf::I32(Vec::with_capacity(cap)),
            ColType::Bool => Buf::Bool(Vec::with_capacity(cap)),
            ColType::Str => Buf::Str(Vec::with_capacity(cap)),
        }
    }

    fn push(&mut self, cell: Option<&Cell>, col: &str, row: usize) -> Result<()> {
        let bad = |want: &str, got: &Cell| {
            ServeError::BadRequest(format!(
                "column '{col}', row {row}: expected {want}, got {}",
                match got {
                    Cell::Num(v) => format!("the number {v}"),
                    Cell::Str(s) => format!("the string {s:?}"),
                    Cell::Bool(b) => format!("the boolean {b}"),
                    Cell::Null => "null".into(),
                }
            ))
        };
        let cell = cell.unwrap_or(&Cell::Null);
        let num = |want: &str| -> Result<f64> {
            match cell {
                Cell::Num(v) => Ok(*v),
                Cell::Str(s) => s.trim().parse::<f64>().map_err(|_| bad(want, cell)),
                Cell::Bool(b) => Ok(f64::from(u8::from(*b))),
                Cell::Null => Err(bad(want, cell)),
            }
        };
        match self {
            // Missing floats are NaN, which imputers in the graph handle.
            Buf::F32(v) => v.push(if *cell == Cell::Null {
                f32::NAN
            } else {
                num("a number")? as f32
            }),
            Buf::F64(v) => v.push(if *cell == Cell::Null {
                f64::NAN
            } else {
                num("a number")?
            }),
            Buf::I64(v) => {
                let x = num("an integer")?;
                if x.fract() != 0.0 {
                    return Err(bad("an integer", cell));
                }
                v.push(x as i64);
            }
            Buf::I32(v) => {
                let x = num("an integer")?;
                if x.fract() != 0.0 || x.abs() > f64::from(i32::MAX) {
                    return Err(bad("a 32-bit integer", cell));
                }
                v.push(x as i32);
            }
            Buf::Bool(v) => v.push(match cell {
                Cell::Bool(b) => *b,
                Cell::Num(x) if *x == 0.0 || *x == 1.0 => *x == 1.0,
                Cell::Str(s) if s.eq_ignore_ascii_case("true") => true,
                Cell::Str(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return Err(bad("a boolean", cell)),
            }),
            Buf::Str(v) => v.push(match cell {
                Cell::Str(s) => s.clone(),
                Cell::Num(x) => x.to_string(),
                Cell::Bool(b) => b.to_string(),
                Cell::Null => return Err(bad("a string", cell)),
            }),
        }
        Ok(())
    }

    fn into_tensor(self, shape: Vec<usize>) -> Tensor {
        let data = match self {
            Buf::F32(v) => TensorData::F32(v),
            Buf::F64(v) => TensorData::F64(v),
            Buf::I64(v) => TensorData::I64(v),
            Buf::I32(v) => TensorData::I32(v),
            Buf::Bool(v) => TensorData::Bool(v),
            Buf::Str(v) => TensorData::Str(v),
        };
        Tensor { shape, data }
    }
}

/// Converts a tensor to the element type an input takes (numeric to
/// numeric only).
fn coerce(t: Tensor, ty: ColType) -> std::result::Result<Tensor, String> {
    let have = ColType::of(t.data.data_type());
    if have == ty {
        return Ok(t);
    }
    let numeric = |c: ColType| !matches!(c, ColType::Str);
    if !numeric(have) || !numeric(ty) {
        return Err(format!(
            "datatype {} given, the model takes {}",
            have.v2(),
            ty.v2()
        ));
    }
    let v = t.to_f64()?;
    let data = match ty {
        ColType::F32 => TensorData::F32(v.iter().map(|&x| x as f32).collect()),
        ColType::F64 => TensorData::F64(v),
        ColType::I64 => TensorData::I64(v.iter().map(|&x| x as i64).collect()),
        ColType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        ColType::Bool => TensorData::Bool(v.iter().map(|&x| x != 0.0).collect()),
        ColType::Str => unreachable!("checked above"),
    };
    Ok(Tensor {
        shape: t.shape,
        data,
    })
}

/// Every element as text (for the prediction log and labels).
pub fn tensor_strings(t: &Tensor) -> Vec<String> {
    match &t.data {
        TensorData::F32(v) => v.iter().map(|x| fmt_f64(f64::from(*x))).collect(),
        TensorData::F64(v) => v.iter().map(|x| fmt_f64(*x)).collect(),
        TensorData::I64(v) => v
            .iter()
            .map(|x| itoa::Buffer::new().format(*x).to_owned())
            .collect(),
        TensorData::I32(v) => v
            .iter()
            .map(|x| itoa::Buffer::new().format(*x).to_owned())
            .collect(),
        TensorData::Bool(v) => v.iter().map(bool::to_string).collect(),
        TensorData::Str(v) => v.clone(),
    }
}

fn fmt_f64(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else {
        x.to_string()
    }
}

/// The elements as a flat JSON array (`NaN` becomes `null`).
pub fn tensor_json(t: &Tensor) -> serde_json::Value {
    use serde_json::Value as J;
    let num = |x: f64| serde_json::Number::from_f64(x).map_or(J::Null, J::Number);
    J::Array(match &t.data {
        TensorData::F32(v) => v.iter().map(|&x| num(f64::from(x))).collect(),
        TensorData::F64(v) => v.iter().map(|&x| num(x)).collect(),
        TensorData::I64(v) => v.iter().map(|&x| J::from(x)).collect(),
        TensorData::I32(v) => v.iter().map(|&x| J::from(x)).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| J::Bool(x)).collect(),
        TensorData::Str(v) => v.iter().map(|x| J::String(x.clone())).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_floats_are_the_shortest_text_that_reads_back_exactly() {
        let xs = [0.1f32, 1.0, -2.5e-7, 3.4e38, f32::NAN, 123_456.79];
        let t = Tensor::from_f32(1, xs.len(), xs.to_vec());
        let cells: Vec<String> = (0..xs.len())
            .map(|i| {
                let mut s = String::new();
                write_cell(&mut s, &t, i);
                s
            })
            .collect();
        assert_eq!(cells[0], "0.1");
        assert_eq!(cells[4], "", "NaN is an empty cell");
        for (x, c) in xs.iter().zip(&cells).filter(|(x, _)| !x.is_nan()) {
            assert_eq!(c.parse::<f32>().unwrap().to_bits(), x.to_bits(), "{c}");
        }
        let mut s = String::new();
        write_cell(&mut s, &t, xs.len());
        assert_eq!(s, "", "an element past the end is an empty cell");
    }
}
