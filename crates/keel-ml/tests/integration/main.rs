//! keel-ml's integration tests: one binary, one module per concern.
//!
//! The Python-backed modules compare keel against scikit-learn, fairlearn
//! and onnxruntime by running the scripts in `tests/python/` with the
//! interpreter named by `KEEL_PYTHON` (see [`util::python`]).

mod util;

mod metric_parity;
mod onnx_parity;
mod trainers;
