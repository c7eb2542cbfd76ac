//! keel's ONNX runtime for tabular models.
//!
//! A model is decoded with the hand-written `prost` messages in [`proto`],
//! then each node is compiled once into a kernel (attributes parsed and
//! checked at load time, so a bad model fails at load with the node and
//! operator named), and [`Model::run`] evaluates the nodes in order.
//!
//! Operators: the `ai.onnx.ml` set that scikit-learn exports use (see
//! [`SUPPORTED_OPS`]) and the standard operators such graphs contain. Tree
//! ensembles are evaluated over flat node arrays.
//!
//! **Architecture Invariant:** the runtime never panics on a model or an
//! input: every shape or attribute problem is an [`Error`](crate::Error).

pub mod build;
mod ml;
mod ops;
pub mod proto;
mod tensor;
mod tree;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use prost::Message;

pub use tensor::{MapKeys, Tensor, TensorData, Value};

use crate::Error;
use proto::{type_proto, AttributeProto, DataType, ModelProto, NodeProto};

/// Operators the runtime implements, as `(domain, op_type)`; the empty
/// domain is the default `ai.onnx` one.
pub const SUPPORTED_OPS: &[(&str, &str)] = &[
    ("ai.onnx.ml", "ArrayFeatureExtractor"),
    ("ai.onnx.ml", "Binarizer"),
    ("ai.onnx.ml", "FeatureVectorizer"),
    ("ai.onnx.ml", "Imputer"),
    ("ai.onnx.ml", "LabelEncoder"),
    ("ai.onnx.ml", "LinearClassifier"),
    ("ai.onnx.ml", "LinearRegressor"),
    ("ai.onnx.ml", "Normalizer"),
    ("ai.onnx.ml", "OneHotEncoder"),
    ("ai.onnx.ml", "Scaler"),
    ("ai.onnx.ml", "TreeEnsembleClassifier"),
    ("ai.onnx.ml", "TreeEnsembleRegressor"),
    ("ai.onnx.ml", "ZipMap"),
    ("", "Abs"),
    ("", "Add"),
    ("", "ArgMax"),
    ("", "Cast"),
    ("", "Concat"),
    ("", "Constant"),
    ("", "Div"),
    ("", "Exp"),
    ("", "Flatten"),
    ("", "Gather"),
    ("", "Gemm"),
    ("", "Identity"),
    ("", "Log"),
    ("", "MatMul"),
    ("", "Mul"),
    ("", "Neg"),
    ("", "Relu"),
    ("", "Reshape"),
    ("", "Sigmoid"),
    ("", "Softmax"),
    ("", "Sqrt"),
    ("", "Squeeze"),
    ("", "Sub"),
    ("", "Tanh"),
    ("", "Unsqueeze"),
];

/// A compiled operator: attributes parsed, ready to run on inputs.
pub(crate) trait Kernel: Send + Sync {
    /// Runs the operator. `inputs[i]` is `None` for an omitted optional
    /// input. Errors are plain messages; the caller adds node and operator.
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String>;
}

/// The element kind of a graph input or output.
#[derive(Clone, Debug, PartialEq)]
pub enum IoType {
    /// A tensor of this element type, with this shape (`None` for a
    /// symbolic or unknown dimension).
    Tensor {
        /// Element type.
        elem: DataType,
        /// Dimensions.
        shape: Vec<Option<i64>>,
    },
    /// A sequence of maps (a `ZipMap` output).
    SeqMap,
    /// Anything else (not produced by models keel runs).
    Other,
}

/// A graph input or output.
#[derive(Clone, Debug, PartialEq)]
pub struct IoInfo {
    /// Its name in the graph.
    pub name: String,
    /// Its declared type.
    pub ty: IoType,
}

struct Node {
    name: String,
    op: String,
    inputs: Vec<Option<usize>>,
    outputs: Vec<Option<usize>>,
    kernel: Box<dyn Kernel>,
}

/// A loaded, compiled ONNX model. `Send + Sync`: share one across threads.
pub struct Model {
    inputs: Vec<(IoInfo, usize)>,
    outputs: Vec<(IoInfo, usize)>,
    n_slots: usize,
    constants: Vec<(usize, Value)>,
    nodes: Vec<Node>,
    opsets: Vec<(String, i64)>,
    producer: String,
    metadata: Vec<(String, String)>,
    class_labels: Option<Vec<String>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("nodes", &self.nodes.len())
            .field("producer", &self.producer)
            .finish()
    }
}

impl Model {
    /// Loads and compiles `model.onnx` from a file.
    pub fn load(path: &Path) -> Result<Model, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Model::from_bytes(&bytes).map_err(|e| e.in_file(path))
    }

    /// Decodes and compiles a model from its protobuf bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, Error> {
        let proto = ModelProto::decode(bytes).map_err(|e| {
            Error::Model(format!("not an ONNX model (protobuf decode failed: {e})"))
        })?;
        Model::from_proto(&proto)
    }

    /// Compiles a decoded model.
    pub fn from_proto(proto: &ModelProto) -> Result<Model, Error> {
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| Error::Model("the model has no graph".into()))?;
        let opsets: Vec<(String, i64)> = proto
            .opset_import
            .iter()
            .map(|o| (normalize_domain(&o.domain).to_string(), o.version))
            .collect();
        let mut slots: HashMap<String, usize> = HashMap::new();
        let slot = |name: &str, slots: &mut HashMap<String, usize>| -> usize {
            let n = slots.len();
            *slots.entry(name.to_string()).or_insert(n)
        };
        let mut constants = Vec::new();
        for init in &graph.initializer {
            let t = Tensor::from_proto(init)
                .map_err(|m| Error::Model(format!("initializer {:?}: {m}", init.name)))?;
            let id = slot(&init.name, &mut slots);
            constants.push((id, Value::Tensor(t)));
        }
        let mut defined: Vec<bool> = Vec::new();
        let mark = |defined: &mut Vec<bool>, id: usize| {
            if defined.len() <= id {
                defined.resize(id + 1, false);
            }
            defined[id] = true;
        };
        for (id, _) in &constants {
            mark(&mut defined, *id);
        }
        let mut inputs = Vec::new();
        for vi in &graph.input {
            let id = slot(&vi.name, &mut slots);
            if defined.get(id).copied().unwrap_or(false) {
                continue; // an initializer listed as input (IR < 4): a constant
            }
            mark(&mut defined, id);
            inputs.push((io_info(vi), id));
        }
        let mut nodes = Vec::with_capacity(graph.node.len());
        let mut class_labels = None;
        for (i, n) in graph.node.iter().enumerate() {
            if matches!(
                n.op_type.as_str(),
                "LinearClassifier" | "TreeEnsembleClassifier" | "ZipMap" | "SVMClassifier"
            ) {
                let a = Attrs(&n.attribute);
                let strs = a.strings("classlabels_strings");
                let ints: Vec<i64> = if a.has("classlabels_ints") {
                    a.ints("classlabels_ints")
                } else {
                    a.ints("classlabels_int64s")
                };
                if !strs.is_empty() {
                    class_labels = Some(strs);
                } else if !ints.is_empty() {
                    class_labels = Some(ints.iter().map(i64::to_string).collect());
                }
            }
            let name = if n.name.is_empty() {
                format!("#{i}")
            } else {
                n.name.clone()
            };
            let domain = normalize_domain(&n.domain);
            let opset = opsets
                .iter()
                .find(|(d, _)| d == domain)
                .map(|(_, v)| *v)
                .unwrap_or(if domain.is_empty() { 13 } else { 1 });
            let node_err = |message: String| Error::Node {
                node: name.clone(),
                op: n.op_type.clone(),
                message,
            };
            let mut ins = Vec::new();
            for inp in &n.input {
                if inp.is_empty() {
                    ins.push(None);
                    continue;
                }
                let id = slot(inp, &mut slots);
                if !defined.get(id).copied().unwrap_or(false) {
                    return Err(node_err(format!(
                        "input {inp:?} is not produced by any earlier node, initializer or graph input"
                    )));
                }
                ins.push(Some(id));
            }
            let mut outs = Vec::new();
            for out in &n.output {
                if out.is_empty() {
                    outs.push(None);
                    continue;
                }
                let id = slot(out, &mut slots);
                mark(&mut defined, id);
                outs.push(Some(id));
            }
            let kernel = compile(n, domain, opset).map_err(|e| match e {
                CompileError::Unsupported => Error::UnsupportedOperator {
                    node: name.clone(),
                    op: n.op_type.clone(),
                    domain: if domain.is_empty() {
                        "ai.onnx".to_string()
                    } else {
                        domain.to_string()
                    },
                },
                CompileError::Bad(m) => node_err(m),
            })?;
            nodes.push(Node {
                name,
                op: n.op_type.clone(),
                inputs: ins,
                outputs: outs,
                kernel,
            });
        }
        let mut outputs = Vec::new();
        for vi in &graph.output {
            let id = slot(&vi.name, &mut slots);
            if !defined.get(id).copied().unwrap_or(false) {
                return Err(Error::Model(format!(
                    "graph output {:?} is not produced by any node",
                    vi.name
                )));
            }
            outputs.push((io_info(vi), id));
        }
        Ok(Model {
            inputs,
            outputs,
            n_slots: slots.len(),
            constants,
            nodes,
            opsets,
            producer: format!("{} {}", proto.producer_name, proto.producer_version)
                .trim()
                .to_string(),
            metadata: proto
                .metadata_props
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect(),
            class_labels,
        })
    }

    /// The graph inputs (initializers excluded).
    pub fn inputs(&self) -> impl Iterator<Item = &IoInfo> {
        self.inputs.iter().map(|(i, _)| i)
    }

    /// The graph outputs.
    pub fn outputs(&self) -> impl Iterator<Item = &IoInfo> {
        self.outputs.iter().map(|(i, _)| i)
    }

    /// The `(domain, version)` opsets the model imports.
    pub fn opsets(&self) -> &[(String, i64)] {
        &self.opsets
    }

    /// `producer_name producer_version`.
    pub fn producer(&self) -> &str {
        &self.producer
    }

    /// `metadata_props`.
    pub fn metadata(&self) -> &[(String, String)] {
        &self.metadata
    }

    /// The class labels of the model's classifier node, in score-column
    /// order (`None` for a regressor).
    pub fn class_labels(&self) -> Option<&[String]> {
        self.class_labels.as_deref()
    }

    /// The operators of the graph, in node order.
    pub fn operators(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.op.as_str())
    }

    /// Runs the model on inputs given in graph-input order; returns the
    /// outputs in graph-output order.
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Value>, Error> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::Input(format!(
                "the model takes {} input(s) ({}), got {}",
                self.inputs.len(),
                self.inputs
                    .iter()
                    .map(|(i, _)| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                inputs.len()
            )));
        }
        let mut slots: Vec<Option<Cow<'_, Value>>> = vec![None; self.n_slots];
        for (id, v) in &self.constants {
            slots[*id] = Some(Cow::Borrowed(v));
        }
        for ((info, id), t) in self.inputs.iter().zip(inputs) {
            check_input(info, &t)?;
            slots[*id] = Some(Cow::Owned(Value::Tensor(t)));
        }
        for node in &self.nodes {
            let outs = {
                let args: Vec<Option<&Value>> = node
                    .inputs
                    .iter()
                    .map(|i| i.and_then(|i| slots[i].as_deref()))
                    .collect();
                node.kernel.run(&args).map_err(|message| Error::Node {
                    node: node.name.clone(),
                    op: node.op.clone(),
                    message,
                })?
            };
            for (slot, v) in node.outputs.iter().zip(outs) {
                if let Some(s) = slot {
                    slots[*s] = Some(Cow::Owned(v));
                }
            }
        }
        self.outputs
            .iter()
            .map(|(info, id)| {
                slots[*id]
                    .take()
                    .map(Cow::into_owned)
                    .ok_or_else(|| Error::Model(format!("output {:?} was not computed", info.name)))
            })
            .collect()
    }

    /// Runs the model on one named input; returns outputs by name.
    pub fn run_named(&self, inputs: Vec<(String, Tensor)>) -> Result<Vec<(String, Value)>, Error> {
        let mut by_name: HashMap<String, Tensor> = inputs.into_iter().collect();
        let mut ordered = Vec::new();
        for (info, _) in &self.inputs {
            ordered.push(
                by_name
                    .remove(&info.name)
                    .ok_or_else(|| Error::Input(format!("missing input {:?}", info.name)))?,
            );
        }
        let outs = self.run(ordered)?;
        Ok(self
            .outputs
            .iter()
            .map(|(i, _)| i.name.clone())
            .zip(outs)
            .collect())
    }
}

fn check_input(info: &IoInfo, t: &Tensor) -> Result<(), Error> {
    if let IoType::Tensor { shape, .. } = &info.ty {
        if !shape.is_empty() && shape.len() != t.shape.len() {
            return Err(Error::Input(format!(
                "input {:?} expects rank {} (shape {:?}), got shape {:?}",
                info.name,
                shape.len(),
                shape,
                t.shape
            )));
        }
        for (want, got) in shape.iter().zip(&t.shape) {
            if let Some(w) = want {
                if *w >= 0 && *w as usize != *got {
                    return Err(Error::Input(format!(
                        "input {:?} expects shape {:?}, got {:?}",
                        info.name, shape, t.shape
                    )));
                }
            }
        }
    }
    Ok(())
}

fn io_info(vi: &proto::ValueInfoProto) -> IoInfo {
    let ty = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => IoType::Tensor {
            elem: DataType::try_from(t.elem_type).unwrap_or(DataType::Undefined),
            shape: t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match &d.value {
                            Some(proto::tensor_shape_proto::dimension::Value::DimValue(v)) => {
                                Some(*v)
                            }
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        },
        Some(type_proto::Value::SequenceType(_)) => IoType::SeqMap,
        _ => IoType::Other,
    };
    IoInfo {
        name: vi.name.clone(),
        ty,
    }
}

fn normalize_domain(d: &str) -> &str {
    if d == "ai.onnx" {
        ""
    } else {
        d
    }
}

pub(crate) enum CompileError {
    Unsupported,
    Bad(String),
}

impl From<String> for CompileError {
    fn from(s: String) -> Self {
        CompileError::Bad(s)
    }
}

fn compile(n: &NodeProto, domain: &str, opset: i64) -> Result<Box<dyn Kernel>, CompileError> {
    let a = Attrs(&n.attribute);
    match domain {
        "" => ops::compile(&n.op_type, &a, opset),
        "ai.onnx.ml" => ml::compile(&n.op_type, &a),
        _ => Err(CompileError::Unsupported),
    }
}

/// Typed access to a node's attributes.
pub(crate) struct Attrs<'a>(&'a [AttributeProto]);

impl Attrs<'_> {
    fn get(&self, name: &str) -> Option<&AttributeProto> {
        self.0.iter().find(|a| a.name == name)
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub(crate) fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map_or(default, |a| a.i)
    }

    pub(crate) fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).map_or(default, |a| a.f)
    }

    pub(crate) fn string(&self, name: &str, default: &str) -> String {
        self.get(name).map_or(default.to_string(), |a| {
            String::from_utf8_lossy(&a.s).into_owned()
        })
    }

    pub(crate) fn ints(&self, name: &str) -> Vec<i64> {
        self.get(name).map(|a| a.ints.clone()).unwrap_or_default()
    }

    pub(crate) fn floats(&self, name: &str) -> Vec<f32> {
        self.get(name).map(|a| a.floats.clone()).unwrap_or_default()
    }

    /// Floats from `name` or, failing that, the tensor attribute
    /// `name_as_tensor` (opset-3 double-precision variants).
    pub(crate) fn floats_or_tensor(&self, name: &str) -> Result<Vec<f64>, String> {
        if let Some(a) = self.get(name) {
            return Ok(a.floats.iter().map(|&x| f64::from(x)).collect());
        }
        match self.tensor(&format!("{name}_as_tensor"))? {
            Some(t) => t.to_f64(),
            None => Ok(Vec::new()),
        }
    }

    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|a| {
                a.strings
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn tensor(&self, name: &str) -> Result<Option<Tensor>, String> {
        match self.get(name).and_then(|a| a.t.as_ref()) {
            Some(t) => Tensor::from_proto(t)
                .map(Some)
                .map_err(|m| format!("attribute {name}: {m}")),
            None => Ok(None),
        }
    }
}

/// Takes input `i`, or reports it missing.
pub(crate) fn input<'a>(inputs: &[Option<&'a Value>], i: usize) -> Result<&'a Value, String> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| format!("input {i} is missing"))
}

/// Takes input `i` as a tensor.
pub(crate) fn tensor_input<'a>(
    inputs: &[Option<&'a Value>],
    i: usize,
) -> Result<&'a Tensor, String> {
    input(inputs, i)?.as_tensor()
}
