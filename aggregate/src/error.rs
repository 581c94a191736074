//! Errors of the aggregate stage.

use thiserror::Error;

/// Why an aggregate run failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A query failed.
    #[error("query {step} failed")]
    Query {
        /// Which step.
        step: String,
        /// DataFusion's error.
        source: datafusion::error::DataFusionError,
    },
    /// The lake could not be read or written.
    #[error("lake I/O on {path} failed")]
    Store {
        /// The object or prefix.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// Encoding or decoding Parquet failed.
    #[error("Parquet encoding of {what} failed")]
    Parquet {
        /// What.
        what: String,
        /// The cause.
        source: parquet::errors::ParquetError,
    },
    /// Raw data is dated after the latest day a run accepts.
    #[error("raw data is dated {day}, after {latest}: {example} and {others} other file(s). Such messages are rejected at ingest against the real clock; find them with `gridstat sql \"SELECT source_topic, source_partition, source_offset FROM raw_visits WHERE dt > '{latest}'\"` and remove their files")]
    FutureDays {
        /// The latest day found.
        day: chrono::NaiveDate,
        /// The latest day accepted.
        latest: chrono::NaiveDate,
        /// One offending file.
        example: String,
        /// How many more.
        others: usize,
    },
    /// Another aggregate run holds the lake.
    #[error("another aggregate run holds the lake: {holder}, since {since}, until {until} (a run that died frees it when its lease ends)")]
    LeaseHeld {
        /// Who holds the lease.
        holder: String,
        /// Since when.
        since: String,
        /// When the lease ends unless renewed.
        until: String,
    },
    /// This run's lease ended and another run took the lake over; nothing
    /// of this run was recorded.
    #[error("the aggregate lease was taken over by {holder} after it ran out; this run recorded nothing")]
    LeaseLost {
        /// Who holds it now.
        holder: String,
    },
    /// The bookkeeping object is unreadable.
    #[error("aggregate state {path} is corrupt ({reason}); run with --all to rebuild it")]
    CorruptState {
        /// The object.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A local file could not be written.
    #[error("writing {path} failed")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A background task of the run failed or panicked (a bug).
    #[error("background work on {what} failed: {reason}")]
    Background {
        /// What it was doing.
        what: String,
        /// The task's failure.
        reason: String,
    },
    /// Arrow error (a bug).
    #[error("internal Arrow error")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn query(
    step: impl Into<String>,
) -> impl FnOnce(datafusion::error::DataFusionError) -> Error {
    let step = step.into();
    move |source| Error::Query { step, source }
}

/// The result of a task run in the background for `what` (encoding, a
/// write), or why it did not finish.
pub(crate) async fn joined<T>(task: tokio::task::JoinHandle<Result<T>>, what: &str) -> Result<T> {
    task.await.map_err(|e| Error::Background {
        what: what.into(),
        reason: e.to_string(),
    })?
}
