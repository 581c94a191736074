//! The front door for reporters' phones: an HTTP service that validates
//! each submission exactly as ingest will, checks it against the sending
//! device's credentials, and writes it to the Kafka topics ingest reads,
//! answering with a receipt only once Kafka has it.
//!
//! # Layout
//!
//! - [`server`]: the routes (`POST /v1/submissions`, `POST
//!   /v1/submissions/batch`, `/v1/openapi.json`, `/v1/schemas/…`,
//!   `/healthz`, `/metrics`) and the connection loop with its limits.
//! - [`submit`]: one submission's way: decode, authorise, claim, produce.
//! - [`devices`]: device tokens, areas and the device table (pure);
//!   [`store`]: the table in object storage and each replica's live view.
//! - [`dedup`]: idempotent resends (single flight per submission id).
//! - [`kafka`]: the [`SubmissionSink`](kafka::SubmissionSink) boundary and
//!   its idempotent Kafka producer.
//! - [`metrics`]: Prometheus metrics; [`config`]: limits and settings.
//! - [`load`]: simulated phones replaying a campaign against an intake.
//!
//! The crate depends on `gridstat-schemas` only among gridstat's crates; it
//! meets ingest in Kafka.
//!
//! ```
//! use gridstat_intake::devices::{Area, DeviceIndex, DeviceTable};
//! use gridstat_schemas::Registry;
//! let registry = Registry::jiangmen();
//! let mut table = DeviceTable::default();
//! let county = registry.counties[0].code.clone();
//! let now = chrono::Utc::now().fixed_offset();
//! let (device, token) = table.add("rp-0001", Area::County(county), &registry, now).unwrap();
//! let index = DeviceIndex::build(&table, &registry);
//! assert_eq!(index.authenticate(token.expose()).unwrap().device_id, device.id);
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod config;
pub mod dedup;
pub mod devices;
pub mod error;
pub mod kafka;
pub mod load;
pub mod metrics;
pub mod server;
pub mod store;
pub mod submit;

pub use config::IntakeOptions;
pub use dedup::Receipt;
pub use error::{Error, Result};
pub use kafka::{KafkaSink, KafkaSinkConfig, MemorySink, SubmissionSink};
pub use submit::{Intake, Outcome, Rejection};
