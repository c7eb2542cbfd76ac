//! keel's model server and monitor.
//!
//! - [`server`]: the HTTP server: the Open Inference Protocol V2 ([`v2`],
//!   including Triton's binary tensor extension), MLflow's scoring protocol
//!   ([`mlflow`]), `/metrics` ([`metrics`]), feedback, hot model swap,
//!   canary and shadow challengers.
//! - [`model`]: a loaded package as served: its signature and the mapping
//!   of request columns onto graph inputs (keel's own ONNX runtime).
//! - [`resolve`]: model URIs to package directories (the seam the registry
//!   plugs into).
//! - [`predlog`]: the prediction log (CSV segments, group-committed).
//! - [`monitor`]: drift, performance, latency and cost over windows of the
//!   log; alert rules (`monitor.yaml`) and their actions.
//!
//! **Architecture Invariant:** no SQL here: persistent results go through
//! `keel_store::monitor`. Wire formats stay in [`v2`], [`mlflow`] and
//! [`server`]; [`model`] knows no JSON.
//!
//! ```no_run
//! use std::sync::Arc;
//! use keel_serve::{resolve::LocalResolver, server::{AppState, ServeConfig}};
//! # async fn demo() -> Result<(), keel_serve::ServeError> {
//! let state = AppState::new(ServeConfig::new("./model"), Arc::new(LocalResolver::new()))?;
//! keel_serve::server::serve(state, "127.0.0.1:8080".parse().unwrap()).await?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod error;
pub mod metrics;
pub mod mlflow;
pub mod model;
pub mod monitor;
pub mod predlog;
pub mod resolve;
pub mod server;
pub mod v2;

pub use error::{Result, ServeError};
