//! Ingest: messages from Kafka (or an NDJSON file) → validated,
//! Hive-partitioned Parquet on object storage, with every rejected message
//! in quarantine and offsets committed only once the lake has them.
//!
//! # Layout
//!
//! - [`engine`]: the core every source drives (decode, segment, flush, commit);
//! - [`encode`]: pure routing, object names and Parquet encoding;
//! - [`store`]: lake I/O and the per-partition state objects;
//! - [`file`]: the embedded NDJSON source; [`kafka`]: the consumer-group worker;
//! - [`metrics`]: counters, gauges and a histogram in a `prometheus-client`
//!   registry, and their text exposition.
//!
//! ```
//! use gridstat_ingest::encode::{object_key, FileKey, Table};
//! let key = FileKey { table: Table::Cases, dt: chrono::NaiveDate::from_ymd_opt(2022, 11, 26).unwrap(), county: "440703".into() };
//! assert!(object_key(&key, "grid.cases.v1", 0, 42, 50, 1).as_ref().starts_with("raw/cases/dt=2022-11-26/county=440703/"));
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod config;
pub mod encode;
pub mod engine;
pub mod error;
pub mod file;
pub mod kafka;
pub mod metrics;
pub mod repair;
mod segment;
pub mod source;
pub mod store;

pub use config::IngestOptions;
pub use engine::{Commit, IngestEngine, SourceRecord};
pub use error::{Error, Result};
pub use metrics::IngestMetrics;
pub use store::LakeStore;
