//! Record types, validation, Arrow schemas, the place registry and the
//! synthetic campaign generator shared by every gridstat stage.
//!
//! # Layout
//!
//! - [`record`]: the `gridstat.visit/1` and `gridstat.case/1` messages.
//! - [`decode`]: strict bytes → [`Submission`] decoding; [`error`]: why not.
//! - [`registry`]: city → county → town → village → grid, from CSV files;
//!   [`registry_build`] makes the shipped Jiangmen one.
//! - [`arrow_schema`]: the raw tables' Arrow schemas and batch builders;
//!   [`lake`]: where tables live.
//! - [`metrics`]: the catalogue of rollup metrics and the rollup schema.
//! - [`json_schema`]: the messages' JSON Schema, derived from [`record`].
//! - [`generate`]: a deterministic synthetic campaign.
//! - [`time`]: Asia/Shanghai local time.
//!
//! This crate does no I/O beyond reading registry files.
//!
//! ```
//! use gridstat_schemas::{decode_submission, DecodeOptions, Registry, ErrorClass};
//! let registry = Registry::jiangmen();
//! let err = decode_submission(b"{\"schema\":\"gridstat.visit/9\"}", &registry, &DecodeOptions::default(), None)
//!     .unwrap_err();
//! assert_eq!(err.class(), ErrorClass::UnknownSchema);
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod arrow_schema;
pub mod decode;
pub mod error;
mod fast_json;
pub mod generate;
pub mod json_schema;
pub mod lake;
pub mod metrics;
pub mod record;
pub mod registry;
pub mod registry_build;
pub mod time;

pub use decode::{decode_placed, decode_submission, DecodeOptions, Placed};
pub use error::{DecodeError, ErrorClass};
pub use generate::{Expect, GenOptions, GeneratedMessage, Generator, Stream};
pub use record::{CaseUpdate, Submission, Visit};
pub use registry::{Registry, RegistryError};
