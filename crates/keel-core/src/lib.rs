//! keel's shared vocabulary.
//!
//! This crate holds the identifiers and small domain types that every other
//! keel crate speaks: object hashes, dataset versions, and the like. It does
//! no I/O and knows nothing of SQL, HTTP or the file system layout.
//!
//! ```
//! use keel_core::ObjectHash;
//! let h = ObjectHash::of_bytes(b"hello");
//! assert_eq!(h, h.to_string().parse::<ObjectHash>()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod hash;
mod ids;
mod progress;

pub use hash::{ObjectHash, ParseHashError};
pub use ids::{DatasetPath, InvalidDatasetPath, VersionSeq};
pub use progress::{NoProgress, Progress, Unit};
