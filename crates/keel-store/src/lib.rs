//! keel's stores.
#![deny(missing_docs)]
