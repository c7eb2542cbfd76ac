//! The pieces of `keel demo` that are not command glue: the synthetic
//! dataset, the generated project files, and the traffic client.

pub mod files;
pub mod fraud;
pub mod traffic;
