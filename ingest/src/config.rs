//! Typed options of the ingest stage.

use std::time::Duration;

use gridstat_schemas::DecodeOptions;

/// The default write deadline: a third of librdkafka's default
/// `max.poll.interval.ms` (300 s).
pub const DEFAULT_WRITE_DEADLINE: Duration = Duration::from_secs(100);

/// How segments are cut, buffered and written.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// A partition's open segment is flushed at the latest this long after
    /// its first record arrived, even if no more messages come.
    pub flush_interval: Duration,
    /// A partition's segment is flushed when it holds this many records.
    pub max_segment_rows: usize,
    /// Global budget of buffered message bytes across all partitions; when
    /// exceeded, the largest segment is flushed.
    pub max_buffered_bytes: usize,
    /// Global budget of buffered records across all partitions.
    pub max_buffered_rows: usize,
    /// Raw bytes kept in quarantine per message; the rest is cut off.
    pub quarantine_raw_limit: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// zstd level of Parquet pages. Level 1 is the fastest, and on these
    /// dictionary-encoded pages also smaller than 3 (65.5 MB against 68.1 MB
    /// for 1.15M messages).
    pub zstd_level: i32,
    /// Decoder limits.
    pub decode: DecodeOptions,
    /// Threads that decode a batch of records, and that encode a
    /// segment's files (default: one per core).
    pub threads: usize,
    /// Who this worker is, recorded with the partitions it takes over.
    pub owner: String,
    /// Longest a segment write may take, retries included. Past it the
    /// worker gives its partitions up and takes them over again; it must be
    /// well under the group's `max.poll.interval.ms`, so that a stalled
    /// worker stops writing before the group hands its partitions on.
    pub write_deadline: Duration,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(60),
            max_segment_rows: 250_000,
            max_buffered_bytes: 128 * 1024 * 1024,
            max_buffered_rows: 500_000,
            quarantine_raw_limit: 4096,
            row_group_rows: 64 * 1024,
            zstd_level: 1,
            decode: DecodeOptions::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            owner: format!("pid-{}", std::process::id()),
            write_deadline: DEFAULT_WRITE_DEADLINE,
        }
    }
}
