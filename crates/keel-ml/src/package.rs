//! Model packages: an MLflow-format model directory (`MLmodel` with the
//! `onnx` and `python_function` flavors, `model.onnx`, signature, input
//! example) plus keel's metadata in `keel.json`.
//!
//! A directory written by `mlflow.onnx.log_model` loads as is (keel's
//! metadata is then absent); a bare `model.onnx` file also loads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::onnx::{IoType, Model};
use crate::Error;

/// keel's metadata stored next to `MLmodel` as `keel.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeelMetadata {
    /// Feature columns in model-input order.
    pub features: Vec<String>,
    /// The label column.
    pub target: Option<String>,
    /// Class labels, in probability-column order.
    pub classes: Vec<String>,
    /// Algorithm and hyperparameters (built-in trainers).
    pub params: BTreeMap<String, String>,
    /// Dataset version the model was trained on (e.g. `train.csv@3`).
    pub training_dataset: Option<String>,
    /// Relative path of the reference profile for drift (written by
    /// keel-data), if any.
    pub reference_profile: Option<String>,
    /// Flat evaluation metrics at packaging time.
    pub evaluation: BTreeMap<String, f64>,
    /// Lineage: run id, pipeline, git commit, … as free key/values.
    pub lineage: BTreeMap<String, String>,
}

/// The parts of `MLmodel` keel reads.
#[derive(Clone, Debug, Default, Deserialize)]
struct MlModel {
    #[serde(default)]
    flavors: BTreeMap<String, serde_yaml_ng::Value>,
    #[serde(default)]
    signature: Option<Signature>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct Signature {
    #[serde(default)]
    inputs: Option<String>,
}

/// A loaded package.
#[derive(Debug)]
pub struct Package {
    /// The directory (or the `.onnx` file for a bare model).
    pub path: PathBuf,
    /// The compiled model.
    pub model: Model,
    /// keel metadata (defaults when the package has none).
    pub meta: KeelMetadata,
    /// Column names from an MLflow column-based signature, if any.
    pub signature_columns: Vec<String>,
}

impl Package {
    /// Loads a package directory or a bare `.onnx` file.
    pub fn load(path: &Path) -> Result<Package, Error> {
        if path.is_file() {
            return Ok(Package {
                path: path.to_path_buf(),
                model: Model::load(path)?,
                meta: KeelMetadata::default(),
                signature_columns: Vec::new(),
            });
        }
        let mlmodel = path.join("MLmodel");
        let text = std::fs::read_to_string(&mlmodel).map_err(|e| Error::io(&mlmodel, e))?;
        let ml: MlModel = serde_yaml_ng::from_str(&text).map_err(|e| yaml_error(&mlmodel, &e))?;
        let onnx = ml.flavors.get("onnx").ok_or_else(|| Error::Parse {
            file: mlmodel.clone(),
            line: 0,
            column: 0,
            message: format!(
                "flavors: no `onnx` flavor (found: {}); keel serves ONNX models",
                ml.flavors.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })?;
        let data = onnx
            .get("data")
            .and_then(|d| d.as_str())
            .unwrap_or("model.onnx");
        let model = Model::load(&path.join(data))?;
        let keel = path.join("keel.json");
        let meta = if keel.exists() {
            let bytes = std::fs::read(&keel).map_err(|e| Error::io(&keel, e))?;
            serde_json::from_slice(&bytes).map_err(|e| Error::Parse {
                file: keel.clone(),
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            })?
        } else {
            KeelMetadata::default()
        };
        let signature_columns = ml
            .signature
            .and_then(|s| s.inputs)
            .and_then(|s| serde_json::from_str::<Vec<serde_json::Value>>(&s).ok())
            .map(|v| {
                v.iter()
                    .filter(|c| c.get("type").and_then(|t| t.as_str()) != Some("tensor"))
                    .filter_map(|c| c.get("name").and_then(|n| n.as_str()).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Package {
            path: path.to_path_buf(),
            model,
            meta,
            signature_columns,
        })
    }

    /// Feature columns: keel metadata, else the MLflow column signature,
    /// else the model's `features` metadata property; `None` if unknown.
    pub fn features(&self) -> Option<Vec<String>> {
        if !self.meta.features.is_empty() {
            return Some(self.meta.features.clone());
        }
        if !self.signature_columns.is_empty() {
            return Some(self.signature_columns.clone());
        }
        self.model
            .metadata()
            .iter()
            .find(|(k, _)| k == "features")
            .map(|(_, v)| v.split(',').map(str::to_string).collect())
    }
}

pub(crate) fn yaml_error(file: &Path, e: &serde_yaml_ng::Error) -> Error {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    Error::Parse {
        file: file.to_path_buf(),
        line,
        column,
        message: e.to_string(),
    }
}

/// Writes a package directory: `MLmodel`, `model.onnx`, `input_example.json`,
/// `requirements.txt`, `python_env.yaml` and `keel.json`.
pub fn write(
    dir: &Path,
    onnx: &[u8],
    meta: &KeelMetadata,
    example: &[Vec<f64>],
) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let model = Model::from_bytes(onnx)?;
    let w = |name: &str, bytes: &[u8]| -> Result<(), Error> {
        let p = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &p).map_err(|e| Error::io(&p, e))
    };
    let tensor_spec = |info: &crate::onnx::IoInfo| -> serde_json::Value {
        let (dtype, shape) = match &info.ty {
            IoType::Tensor { elem, shape } => (
                match elem {
                    crate::onnx::proto::DataType::Double => "float64",
                    crate::onnx::proto::DataType::Int64 => "int64",
                    crate::onnx::proto::DataType::String => "str",
                    _ => "float32",
                },
                shape.iter().map(|d| d.unwrap_or(-1)).collect::<Vec<_>>(),
            ),
            _ => ("float32", vec![-1]),
        };
        serde_json::json!({"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}, "name": info.name})
    };
    let inputs: Vec<_> = model.inputs().map(tensor_spec).collect();
    let outputs: Vec<_> = model.outputs().map(tensor_spec).collect();
    let input_name = model
        .inputs()
        .next()
        .map_or("X".to_string(), |i| i.name.clone());
    let mlmodel = format!(
        "artifact_path: model\n\
         flavors:\n  onnx:\n    code: null\n    data: model.onnx\n    onnx_version: 1.17.0\n    providers:\n    - CPUExecutionProvider\n\
         \x20 python_function:\n    data: model.onnx\n    env:\n      virtualenv: python_env.yaml\n    loader_module: mlflow.onnx\n    python_version: 3.11.0\n\
         keel_version: {ver}\n\
         saved_input_example_info:\n  artifact_path: input_example.json\n  type: ndarray\n  format: tf-serving\n\
         signature:\n  inputs: '{inputs}'\n  outputs: '{outputs}'\n  params: null\n",
        ver = env!("CARGO_PKG_VERSION"),
        inputs = serde_json::to_string(&inputs).unwrap_or_default(),
        outputs = serde_json::to_string(&outputs).unwrap_or_default(),
    );
    w("model.onnx", onnx)?;
    w(
        "input_example.json",
        serde_json::json!({ "inputs": { input_name: example } })
            .to_string()
            .as_bytes(),
    )?;
    w("requirements.txt", b"mlflow\nonnx\nonnxruntime\n")?;
    w(
        "python_env.yaml",
        b"python: 3.11.0\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n",
    )?;
    w(
        "keel.json",
        serde_json::to_vec_pretty(meta)
            .unwrap_or_default()
            .as_slice(),
    )?;
    w("MLmodel", mlmodel.as_bytes())
}
