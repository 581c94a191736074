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
    /// The partition state object in the lake is not readable. The
    /// partition is not consumed until it is repaired.
    #[error("partition state {path} is corrupt: {reason}; see `gridstat lake repair-state` in docs/operations.md")]
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
    /// A segment write outlived its deadline (the store is unreachable or
    /// stalled): the worker gives up what it holds and takes its
    /// partitions over again, before the group would drop it.
    #[error(
        "writing a segment of {topic}/{partition} took over {seconds} s; giving up the partitions"
    )]
    WriteDeadline {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The deadline.
        seconds: f64,
    },
    /// Other owners kept moving the partition's state on while this worker
    /// tried to take it over.
    #[error("could not take {topic}/{partition} over: its state moved on {attempts} times")]
    Contended {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Attempts made.
        attempts: u32,
    },
    /// Another writer took the partition over while this one was writing
    /// it; this one committed nothing of its last segment.
    #[error("{topic}/{partition} was taken over by another writer (another process ingesting the same input?); this one stopped without committing its last segment")]
    Fenced {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// A file source's name was ingested before from a file with other
    /// content.
    #[error("{topic} was ingested before from a file whose first {len} bytes differ from this one's; give this file its own --source-id, or use the original file to resume")]
    OtherSource {
        /// The source's topic (`file:NAME`).
        topic: String,
        /// Bytes compared.
        len: u64,
    },
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
