//! keel's models.
//!
//! - [`onnx`]: a native runtime for tabular ONNX models (the `ai.onnx.ml`
//!   operators scikit-learn exports use, plus standard operators), with
//!   tree ensembles over flat node arrays.
//!
//! ```
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod error;
pub mod onnx;

pub use error::Error;
pub mod evaluate;
pub mod fairness;
pub mod gates;
pub mod metrics;
pub mod package;
pub mod report;
pub mod table;
pub mod train;
