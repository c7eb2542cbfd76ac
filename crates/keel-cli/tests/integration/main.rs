//! End-to-end tests of the `keel` binary: real processes, real files.

mod data;
mod demo;
mod gates;
mod retrain;
mod serve;
mod pipeline;
mod tracking;
mod util;
