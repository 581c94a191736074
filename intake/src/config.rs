//! The intake's limits and settings.

use std::time::Duration;

use gridstat_schemas::DecodeOptions;

use crate::dedup;
use crate::store::DEFAULT_RELOAD_INTERVAL;

/// Default topic of visits (as ingest reads it).
pub const DEFAULT_VISITS_TOPIC: &str = "grid.visits.v1";
/// Default topic of case updates.
pub const DEFAULT_CASES_TOPIC: &str = "grid.cases.v1";

/// Everything the HTTP service needs besides its resources.
#[derive(Debug, Clone)]
pub struct IntakeOptions {
    /// Topic visits are written to.
    pub visits_topic: String,
    /// Topic case updates are written to.
    pub cases_topic: String,
    /// The decoder's options, as ingest uses them; the real clock is set
    /// per request. `max_message_bytes` is also the single-submission
    /// body limit.
    pub decode: DecodeOptions,
    /// Largest batch body, in bytes (413 past it).
    pub max_batch_bytes: usize,
    /// Most lines in one batch (413 past it).
    pub max_batch_lines: usize,
    /// Body bytes all requests may hold at once; a request that would pass
    /// it gets 429 instead of waiting, so memory stays bounded.
    pub max_inflight_bytes: usize,
    /// Open connections at once; further clients wait in the listen queue.
    pub max_connections: usize,
    /// A client must send its request headers within this time.
    pub header_timeout: Duration,
    /// A client must send its whole body within this time (408 after).
    pub body_timeout: Duration,
    /// `Retry-After` when Kafka is unavailable (503).
    pub retry_after_unavailable: Duration,
    /// `Retry-After` when the intake is overloaded (429).
    pub retry_after_overloaded: Duration,
    /// Submission ids remembered for idempotent resends.
    pub dedup_capacity: usize,
    /// How long a submission id is remembered.
    pub dedup_ttl: Duration,
    /// How often the device table is re-read.
    pub device_reload_interval: Duration,
}

impl Default for IntakeOptions {
    fn default() -> Self {
        Self {
            visits_topic: DEFAULT_VISITS_TOPIC.into(),
            cases_topic: DEFAULT_CASES_TOPIC.into(),
            decode: DecodeOptions::default(),
            max_batch_bytes: 1024 * 1024,
            max_batch_lines: 500,
            max_inflight_bytes: 64 * 1024 * 1024,
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            retry_after_unavailable: Duration::from_secs(5),
            retry_after_overloaded: Duration::from_secs(1),
            dedup_capacity: dedup::DEFAULT_CAPACITY,
            dedup_ttl: dedup::DEFAULT_TTL,
            device_reload_interval: DEFAULT_RELOAD_INTERVAL,
        }
    }
}
