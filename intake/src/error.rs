//! The intake's errors, sorted by who must act.

use thiserror::Error;

/// What went wrong outside a single submission (a submission's own
/// problems are answered over HTTP, see [`crate::submit::Rejection`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is wrong; the message says which and how to fix it.
    #[error("{0}")]
    Config(String),
    /// The Kafka client failed.
    #[error("Kafka: {context}")]
    Kafka {
        /// What was being done.
        context: String,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
    /// The device table could not be read or written.
    #[error("device table {location}: {context}")]
    DeviceStore {
        /// Where the table is (path or URL).
        location: String,
        /// What was being done.
        context: &'static str,
        /// The store's error.
        source: object_store::Error,
    },
    /// The device table is not valid JSON of the expected shape.
    #[error("device table {location} is not a valid device table: fix or restore the file")]
    DeviceTableFormat {
        /// Where the table is.
        location: String,
        /// The parser's error (names line and column).
        source: serde_json::Error,
    },
    /// Another writer kept changing the device table.
    #[error("device table {location} changed under every one of {attempts} attempts to update it; try again")]
    DeviceTableBusy {
        /// Where the table is.
        location: String,
        /// Attempts made.
        attempts: u32,
    },
    /// An area code or grid id is not in the place registry.
    #[error("{flag} {code:?} is not in the place registry; see `gridstat registry export`")]
    UnknownArea {
        /// The flag that named it (`--grids`, `--village`, …).
        flag: &'static str,
        /// The code or grid id.
        code: String,
    },
    /// A device id that the table does not have.
    #[error("no device {id:?} in the device table; `gridstat devices list` shows them")]
    NoSuchDevice {
        /// The id asked for.
        id: String,
    },
    /// A device field that cannot be stored.
    #[error("{field}: {reason}")]
    InvalidDevice {
        /// The flag or field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The OS random number generator failed (tokens cannot be made).
    #[error("the operating system's random number generator failed")]
    Random,
}

/// The intake's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
