//! End-to-end tests of the `keel` binary: real processes, real files.

mod data;
mod demo;
mod quality;
mod tracking;
mod util;
