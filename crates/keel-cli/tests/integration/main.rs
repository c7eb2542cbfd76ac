//! End-to-end tests of the `keel` binary: real processes, real files.

mod data;
mod demo;
mod gates;
mod pipeline;
mod quality;
mod retrain;
mod serve;
mod tracking;
mod util;
