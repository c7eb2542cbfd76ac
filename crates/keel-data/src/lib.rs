//! keel's data-quality engine: streaming readers, profiles, contracts and
//! drift statistics.
//!
//! Three operations, each usable on files or on in-memory Arrow batches
//! (the monitor calls them on windows of the prediction log):
//!
//! - [`profile`]: per-column type, counts, nulls, distinct values, min, max,
//!   mean, std, quantiles, histogram and top values, in one streaming pass
//!   with bounded memory. A [`Profile`] serializes with serde so it can be
//!   stored next to a dataset version.
//! - [`validate`]: checks data against a `*.contract.yaml`
//!   ([`Contract`]); each check reports pass/fail, counts and examples.
//! - [`drift`]: per-column drift tests chosen and computed exactly as
//!   Evidently 0.7's default `DataDriftPreset` does ([`drift::drift_files`]).
//!
//! Nothing here does HTTP or touches models; reports render to JSON and to
//! self-contained HTML (inline SVG, no scripts, no network).
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{ArrayRef, Float64Array, RecordBatch};
//! use keel_data::drift::{drift_batches, DriftOptions, Method};
//!
//! let reference = RecordBatch::try_from_iter([(
//!     "x", Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])) as ArrayRef,
//! )])?;
//! let current = RecordBatch::try_from_iter([(
//!     "x", Arc::new(Float64Array::from(vec![4.0, 5.0, 6.0, 7.0, 8.0, 9.0])) as ArrayRef,
//! )])?;
//! let report = drift_batches(&[reference], &[current], &DriftOptions::evidently_defaults())?;
//! assert_eq!(report.columns[0].method, Some(Method::Ks));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod column;
pub mod contract;
mod csv;
pub mod drift;
mod error;
pub mod html;
mod jsonf64;
pub mod profile;
pub mod read;
pub mod sketch;
pub mod stats;

pub use arrow_array::RecordBatch;
pub use contract::{validate, Contract, ValidationReport};
pub use drift::{drift_batches, drift_files, DriftOptions, DriftReport};
pub use error::{DataError, Result};
pub use profile::{profile, Profile};
