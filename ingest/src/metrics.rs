//! Ingest counters, rendered as Prometheus text. Summed in atomics, never
//! labelled by anything of high cardinality.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use gridstat_schemas::ErrorClass;

/// Counters of one ingest process.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    records_in: AtomicU64,
    bytes_in: AtomicU64,
    rows_written: AtomicU64,
    bytes_written: AtomicU64,
    flushes: AtomicU64,
    flush_micros: AtomicU64,
    quarantined: [AtomicU64; 12],
    commit_lag: Mutex<Vec<(String, i32, AtomicI64)>>,
    partitions_owned: AtomicU64,
}

impl IngestMetrics {
    pub(crate) fn record_in(&self, bytes: usize) {
        self.records_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn quarantined(&self, class: ErrorClass) {
        if let Some(i) = ErrorClass::ALL.iter().position(|c| *c == class) {
            self.quarantined[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn flushed(&self, rows: usize, bytes: usize, took: Duration) {
        self.rows_written.fetch_add(rows as u64, Ordering::Relaxed);
        self.bytes_written
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.flush_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Record a partition's commit lag (end offset − committed offset).
    pub fn set_commit_lag(&self, topic: &str, partition: i32, lag: i64) {
        let mut lags = self.commit_lag.lock().expect("metrics lock");
        match lags.iter().find(|(t, p, _)| t == topic && *p == partition) {
            Some((_, _, v)) => v.store(lag, Ordering::Relaxed),
            None => lags.push((topic.to_string(), partition, AtomicI64::new(lag))),
        }
    }

    pub(crate) fn set_partitions_owned(&self, n: usize) {
        self.partitions_owned.store(n as u64, Ordering::Relaxed);
    }

    /// Drop a partition's gauges when it is given up.
    pub(crate) fn forget_partition(&self, topic: &str, partition: i32) {
        self.commit_lag
            .lock()
            .expect("metrics lock")
            .retain(|(t, p, _)| !(t == topic && *p == partition));
    }

    /// Valid rows written so far.
    pub fn rows_written(&self) -> u64 {
        self.rows_written.load(Ordering::Relaxed)
    }

    /// Quarantined messages by class (classes with none left out).
    pub fn quarantined_by_class(&self) -> Vec<(ErrorClass, u64)> {
        ErrorClass::ALL
            .iter()
            .zip(&self.quarantined)
            .map(|(c, n)| (*c, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "gridstat_ingest_records_in_total",
            "Messages read from sources.",
            self.records_in.load(Ordering::Relaxed),
        );
        counter(
            "gridstat_ingest_bytes_in_total",
            "Message bytes read from sources.",
            self.bytes_in.load(Ordering::Relaxed),
        );
        counter(
            "gridstat_ingest_rows_written_total",
            "Valid rows written to raw tables.",
            self.rows_written.load(Ordering::Relaxed),
        );
        counter(
            "gridstat_ingest_bytes_written_total",
            "Parquet bytes written.",
            self.bytes_written.load(Ordering::Relaxed),
        );
        counter(
            "gridstat_ingest_flushes_total",
            "Segments flushed.",
            self.flushes.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP gridstat_ingest_flush_seconds_total Time spent flushing segments.\n# TYPE gridstat_ingest_flush_seconds_total counter\ngridstat_ingest_flush_seconds_total {:.6}",
            self.flush_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "# HELP gridstat_ingest_quarantined_total Messages quarantined, by error class.\n# TYPE gridstat_ingest_quarantined_total counter");
        for (c, n) in ErrorClass::ALL.iter().zip(&self.quarantined) {
            let _ = writeln!(
                out,
                "gridstat_ingest_quarantined_total{{class=\"{c}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP gridstat_ingest_partitions_owned Partitions this worker owns now.\n# TYPE gridstat_ingest_partitions_owned gauge\ngridstat_ingest_partitions_owned {}",
            self.partitions_owned.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP gridstat_ingest_commit_lag Messages not yet committed, per partition.\n# TYPE gridstat_ingest_commit_lag gauge");
        for (t, p, v) in self.commit_lag.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "gridstat_ingest_commit_lag{{topic=\"{t}\",partition=\"{p}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        out
    }
}
