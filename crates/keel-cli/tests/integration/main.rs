//! End-to-end tests of the `keel` binary: real processes, real files.

mod data;
mod demo;
mod pipeline;
mod tracking;
mod util;
