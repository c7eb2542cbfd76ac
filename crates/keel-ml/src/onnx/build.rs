//! Helpers to build ONNX models (used by keel's trainers to export).

use prost::Message;

use super::proto::{
    tensor_shape_proto, type_proto, AttributeProto, AttributeType, DataType, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

/// An attribute value for [`node`].
#[derive(Clone, Debug)]
pub enum Attr {
    /// `INT`.
    Int(i64),
    /// `FLOAT`.
    Float(f32),
    /// `STRING`.
    Str(String),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOATS`.
    Floats(Vec<f32>),
    /// `STRINGS`.
    Strs(Vec<String>),
}

/// One node: `op` in `domain` ("" for ai.onnx) with named attributes.
pub fn node(
    op: &str,
    domain: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<(&str, Attr)>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: name.to_string(),
        op_type: op.to_string(),
        domain: domain.to_string(),
        attribute: attrs
            .into_iter()
            .map(|(n, a)| {
                let mut p = AttributeProto {
                    name: n.to_string(),
                    ..Default::default()
                };
                let ty = match a {
                    Attr::Int(i) => {
                        p.i = i;
                        AttributeType::Int
                    }
                    Attr::Float(f) => {
                        p.f = f;
                        AttributeType::Float
                    }
                    Attr::Str(s) => {
                        p.s = s.into_bytes();
                        AttributeType::String
                    }
                    Attr::Ints(v) => {
                        p.ints = v;
                        AttributeType::Ints
                    }
                    Attr::Floats(v) => {
                        p.floats = v;
                        AttributeType::Floats
                    }
                    Attr::Strs(v) => {
                        p.strings = v.into_iter().map(String::into_bytes).collect();
                        AttributeType::Strings
                    }
                };
                p.r#type = ty as i32;
                p
            })
            .collect(),
        doc_string: String::new(),
    }
}

/// A tensor graph input/output; `None` dimensions are symbolic (`N`).
pub fn tensor_info(name: &str, elem: DataType, dims: &[Option<i64>]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| tensor_shape_proto::Dimension {
                            value: Some(match d {
                                Some(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                                None => tensor_shape_proto::dimension::Value::DimParam("N".into()),
                            }),
                            denotation: String::new(),
                        })
                        .collect(),
                }),
            })),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

/// A model around `graph`, importing ai.onnx opset 17 and ai.onnx.ml 3
/// (IR version 8, which onnxruntime ≥ 1.10 loads).
pub fn model(graph: GraphProto, metadata: Vec<(String, String)>) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            },
            OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 3,
            },
        ],
        producer_name: "keel".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: String::new(),
        model_version: 1,
        doc_string: String::new(),
        graph: Some(graph),
        metadata_props: metadata
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key, value })
            .collect(),
    }
}

/// Serializes a model to protobuf bytes.
pub fn encode(m: &ModelProto) -> Vec<u8> {
    m.encode_to_vec()
}
