//! Helpers shared by gridstat's test binaries, and only by them: the
//! crates whose tests use it take it as a dev-dependency. It depends on
//! `gridstat-schemas` alone, never on a stage crate, so a stage's tests
//! can use it without depending on another stage.
//!
//! # Layout
//!
//! - [`campaign`]: generated campaigns with chosen options, as NDJSON;
//! - [`lake`]: a raw lake written as ingest lays it out, and tables and
//!   segment files read back from a lake;
//! - [`files`]: every file under a directory, with its bytes;
//! - [`figures`]: record batches as text with one figure per line, for
//!   golden snapshots.
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
//! use gridstat_testkit::figures::one_figure_per_line;
//! let level: ArrayRef = Arc::new(StringArray::from(vec!["city"]));
//! let visits: ArrayRef = Arc::new(Int64Array::from(vec![1544]));
//! let batch = RecordBatch::try_from_iter([("level", level), ("visits", visits)]).unwrap();
//! assert_eq!(one_figure_per_line(&[batch], &["level"]), "[level=city]\nvisits=1544\n\n");
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod campaign;
pub mod figures;
pub mod files;
pub mod lake;
