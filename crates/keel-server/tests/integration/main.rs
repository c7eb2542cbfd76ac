//! keel-server's integration tests: one binary.

mod common;

/// Handlers through `oneshot`: MLflow's codes and shapes.
mod api;
/// Every CVE shape from the reference, rejected, with nothing touched outside the store.
mod cve;
/// 64 concurrent clients logging metrics over real HTTP; every point counted.
mod load;
/// The unmodified `mlflow` client (needs `KEEL_PYTHON`).
mod mlflow_client;
