//! Ingest counters, rendered as Prometheus text. Summed in atomics, never
//! labelled by anything of high cardinality.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use gridstat_schemas::ErrorClass;

/// Upper bounds (seconds) of the flush-latency histogram's buckets. A flush
/// is one segment's Parquet encoding and PUTs; during a store outage it
/// includes the retries, hence the long tail.
const FLUSH_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Counters of one ingest process.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    records_in: AtomicU64,
    bytes_in: AtomicU64,
    rows_written: AtomicU64,
    bytes_written: AtomicU64,
    flushes: AtomicU64,
    flush_micros: AtomicU64,
    /// Flushes per latency bucket (not cumulative; `render` sums them).
    flush_buckets: [AtomicU64; FLUSH_BUCKETS.len()],
    quarantined: [AtomicU64; ErrorClass::ALL.len()],
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
        let seconds = took.as_secs_f64();
        if let Some(i) = FLUSH_BUCKETS.iter().position(|le| seconds <= *le) {
            self.flush_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
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
        self.render_flush_latency(&mut out);
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

    /// `gridstat_ingest_flush_seconds`, a Prometheus histogram: buckets
    /// cumulative, `+Inf` equal to the count of flushes.
    fn render_flush_latency(&self, out: &mut String) {
        let name = "gridstat_ingest_flush_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Latency of segment flushes (encoding and writes, retries included).\n# TYPE {name} histogram"
        );
        let mut below = 0;
        for (le, n) in FLUSH_BUCKETS.iter().zip(&self.flush_buckets) {
            below += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {below}");
        }
        let count = self.flushes.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.flush_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum:.6}\n{name}_count {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn renders_every_series_with_its_type() {
        let m = IngestMetrics::default();
        m.record_in(100);
        m.quarantined(ErrorClass::ALL[0]);
        m.set_commit_lag("grid.visits.v1", 3, 42);
        m.set_partitions_owned(2);
        m.flushed(10, 2_000, Duration::from_millis(30));
        let text = m.render();
        assert_eq!(value(&text, "gridstat_ingest_records_in_total"), 1.0);
        assert_eq!(value(&text, "gridstat_ingest_bytes_in_total"), 100.0);
        assert_eq!(value(&text, "gridstat_ingest_rows_written_total"), 10.0);
        assert_eq!(value(&text, "gridstat_ingest_bytes_written_total"), 2000.0);
        let class = format!(
            "gridstat_ingest_quarantined_total{{class=\"{}\"}}",
            ErrorClass::ALL[0]
        );
        assert_eq!(value(&text, &class), 1.0);
        let lag = "gridstat_ingest_commit_lag{topic=\"grid.visits.v1\",partition=\"3\"}";
        assert_eq!(value(&text, lag), 42.0);
        assert_eq!(value(&text, "gridstat_ingest_partitions_owned"), 2.0);
        // Every series has one TYPE line, before its samples.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let family = l.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| family.strip_suffix(s))
                .filter(|f| f.ends_with("_seconds"))
                .unwrap_or(family);
            let declared = format!("# TYPE {family} ");
            let at = text.find(&declared).unwrap_or_else(|| panic!("{l}"));
            assert!(at < text.find(l).unwrap(), "{l}");
            assert_eq!(text.matches(&declared).count(), 1, "{family}");
        }
        m.forget_partition("grid.visits.v1", 3);
        assert!(!m.render().contains("partition=\"3\""));
    }

    #[test]
    fn flush_latency_is_a_cumulative_histogram() {
        let m = IngestMetrics::default();
        for ms in [3, 30, 30, 400, 9_000, 200_000] {
            m.flushed(1, 1, Duration::from_millis(ms));
        }
        let text = m.render();
        let bucket = |le: &str| {
            value(
                &text,
                &format!("gridstat_ingest_flush_seconds_bucket{{le=\"{le}\"}}"),
            )
        };
        assert_eq!(bucket("0.005"), 1.0);
        assert_eq!(bucket("0.025"), 1.0);
        assert_eq!(bucket("0.05"), 3.0);
        assert_eq!(bucket("0.5"), 4.0);
        assert_eq!(bucket("10"), 5.0);
        assert_eq!(bucket("120"), 5.0);
        assert_eq!(bucket("+Inf"), 6.0);
        assert_eq!(value(&text, "gridstat_ingest_flush_seconds_count"), 6.0);
        assert_eq!(value(&text, "gridstat_ingest_flush_seconds_sum"), 209.463);
        assert!(text.contains("# TYPE gridstat_ingest_flush_seconds histogram"));
    }
}
