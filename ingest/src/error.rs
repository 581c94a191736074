//! Errors of the ingest stage, sorted by who must act.

use object_store::path::Path;
use thiserror::Error;

/// Why ingest stopped.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// Writing an object failed; offsets were not committed, retry later.
    #[error("writing {path} to the lake failed")]
    Write {
        /// The object.
        path: Path,
        /// The store's error.
        source: object_store::Error,
    },
    /// Reading an object failed.
    #[error("reading {path} from the lake failed")]
    Read {
        /// The object.
        path: Path,
        /// The store's error.
        source: object_store::Error,
    },
    /// The partition state object in the lake is not readable.
    #[error("partition state {path} is corrupt: {reason}; delete it only after checking the segment files it names")]
    CorruptState {
        /// The object.
        path: Path,
        /// What is wrong.
        reason: String,
    },
    /// Encoding a batch failed (a bug).
    #[error("encoding {what} failed (internal error)")]
    Encode {
        /// What was encoded.
        what: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading the input failed.
    #[error("reading input {name} failed")]
    Input {
        /// The input.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A Kafka client error.
    #[error("Kafka: {context}")]
    Kafka {
        /// What was being done.
        context: String,
        /// The client error.
        source: rdkafka::error::KafkaError,
    },
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
