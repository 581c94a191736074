//! Ingest counters in a `prometheus-client` registry, rendered as
//! Prometheus text or OpenMetrics. Never labelled by anything of high
//! cardinality: an error class, or a topic and partition this worker owns.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gridstat_schemas::ErrorClass;
use prometheus_client::encoding::{prometheus_text, text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Upper bounds (seconds) of the flush-latency histogram's buckets. A flush
/// is one segment's Parquet encoding and PUTs; during a store outage it
/// includes the retries, hence the long tail.
const FLUSH_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The text formats [`IngestMetrics::render`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// Prometheus text, version 0.0.4.
    PrometheusText,
    /// OpenMetrics 1.0 text: `_total` only on counter samples, a `# UNIT`
    /// line, `# EOF` at the end.
    OpenMetrics,
}

impl Exposition {
    /// The `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::PrometheusText => prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: i32,
}

/// Metrics of one ingest process.
#[derive(Debug)]
pub struct IngestMetrics {
    registry: Registry,
    records_in: Counter,
    bytes_in: Counter,
    rows_written: Counter,
    bytes_written: Counter,
    flushes: Counter,
    flush_seconds: Histogram,
    quarantined: Family<ClassLabel, Counter>,
    commit_lag: Family<PartitionLabels, Gauge>,
    partitions_owned: Gauge,
    partitions_blocked: Gauge,
    fenced: Counter,
    rejoins: Counter,
    /// Each owned partition's commit lag, for the health check.
    lag: Mutex<BTreeMap<(String, i32), i64>>,
    /// When a segment was last flushed and committed (or the worker started).
    progress: Mutex<Instant>,
    /// When the oldest segment write still in progress started.
    writing_since: Mutex<Option<Instant>>,
}

/// What `/healthz` says of a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Making progress, or nothing to do.
    Healthy,
    /// Messages wait, and no segment was written for this long.
    Stalled {
        /// Since the last flush.
        idle: Duration,
        /// Messages waiting over all owned partitions.
        lag: i64,
    },
    /// A segment write has been under way for this long (a store that
    /// does not answer).
    Writing {
        /// Since the write started.
        for_: Duration,
    },
}

impl Default for IngestMetrics {
    fn default() -> Self {
        let metrics = Self {
            registry: Registry::with_prefix("gridstat_ingest"),
            records_in: Counter::default(),
            bytes_in: Counter::default(),
            rows_written: Counter::default(),
            bytes_written: Counter::default(),
            flushes: Counter::default(),
            flush_seconds: Histogram::new(FLUSH_BUCKETS),
            quarantined: Family::default(),
            commit_lag: Family::default(),
            partitions_owned: Gauge::default(),
            partitions_blocked: Gauge::default(),
            fenced: Counter::default(),
            rejoins: Counter::default(),
            lag: Mutex::default(),
            progress: Mutex::new(Instant::now()),
            writing_since: Mutex::new(None),
        };
        // Every class is exposed from the start, at 0.
        for class in ErrorClass::ALL {
            let label = ClassLabel {
                class: class.as_str(),
            };
            drop(metrics.quarantined.get_or_create(&label));
        }
        metrics.registered()
    }
}

impl IngestMetrics {
    /// `self` with each metric in its registry. Counters are registered
    /// without `_total`, units without their suffix: the encoders add both.
    fn registered(mut self) -> Self {
        let r = &mut self.registry;
        let counters = [
            ("records_in", "Messages read from sources", &self.records_in),
            (
                "bytes_in",
                "Message bytes read from sources",
                &self.bytes_in,
            ),
            (
                "rows_written",
                "Valid rows written to raw tables",
                &self.rows_written,
            ),
            (
                "bytes_written",
                "Parquet bytes written",
                &self.bytes_written,
            ),
            ("flushes", "Segments flushed", &self.flushes),
            (
                "fenced",
                "Segment writes refused because another worker took the partition over",
                &self.fenced,
            ),
            (
                "rejoins",
                "Times the worker gave every partition up after a write outlived its deadline",
                &self.rejoins,
            ),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
        r.register_with_unit(
            "flush",
            "Latency of segment flushes (encoding and writes, retries included)",
            Unit::Seconds,
            self.flush_seconds.clone(),
        );
        r.register(
            "quarantined",
            "Messages quarantined, by error class",
            self.quarantined.clone(),
        );
        r.register(
            "partitions_owned",
            "Partitions this worker owns now",
            self.partitions_owned.clone(),
        );
        r.register(
            "commit_lag",
            "Messages not yet committed, per partition",
            self.commit_lag.clone(),
        );
        r.register(
            "partitions_blocked",
            "Assigned partitions not consumed because their state in the lake cannot be read",
            self.partitions_blocked.clone(),
        );
        self
    }

    /// When the oldest segment write still in progress started (`None`: none is).
    pub(crate) fn writing_since(&self, since: Option<Instant>) {
        *lock(&self.writing_since) = since;
    }

    pub(crate) fn fenced(&self) {
        self.fenced.inc();
    }

    pub(crate) fn rejoined(&self) {
        self.rejoins.inc();
    }

    /// Count a partition as blocked (`true`) or no longer blocked.
    pub(crate) fn partition_blocked(&self, blocked: bool) {
        if blocked {
            self.partitions_blocked.inc();
        } else {
            self.partitions_blocked.dec();
        }
    }

    /// The worker's health at `now`: stalled when messages wait (commit
    /// lag on an owned partition) and no segment was written for longer
    /// than `stall_after`.
    pub fn health(&self, now: Instant, stall_after: Duration) -> Health {
        if let Some(since) = *lock(&self.writing_since) {
            let for_ = now.saturating_duration_since(since);
            if for_ > stall_after {
                return Health::Writing { for_ };
            }
        }
        let lag: i64 = lock(&self.lag).values().sum();
        let idle = now.saturating_duration_since(*lock(&self.progress));
        if lag > 0 && idle > stall_after {
            Health::Stalled { idle, lag }
        } else {
            Health::Healthy
        }
    }

    pub(crate) fn record_in(&self, bytes: usize) {
        self.records_in.inc();
        self.bytes_in.inc_by(bytes as u64);
    }

    pub(crate) fn quarantined(&self, class: ErrorClass) {
        self.quarantined
            .get_or_create(&ClassLabel {
                class: class.as_str(),
            })
            .inc();
    }

    pub(crate) fn flushed(&self, rows: usize, bytes: usize, took: Duration) {
        self.rows_written.inc_by(rows as u64);
        self.bytes_written.inc_by(bytes as u64);
        self.flushes.inc();
        self.flush_seconds.observe(took.as_secs_f64());
        *lock(&self.progress) = Instant::now();
    }

    /// Record a partition's commit lag (end offset − committed offset).
    pub fn set_commit_lag(&self, topic: &str, partition: i32, lag: i64) {
        let labels = PartitionLabels {
            topic: topic.to_string(),
            partition,
        };
        self.commit_lag.get_or_create(&labels).set(lag);
        lock(&self.lag).insert((topic.to_string(), partition), lag);
    }

    pub(crate) fn set_partitions_owned(&self, n: usize) {
        self.partitions_owned.set(n as i64);
    }

    /// Drop a partition's gauges when it is given up.
    pub(crate) fn forget_partition(&self, topic: &str, partition: i32) {
        self.commit_lag.remove(&PartitionLabels {
            topic: topic.to_string(),
            partition,
        });
        lock(&self.lag).remove(&(topic.to_string(), partition));
    }

    /// Valid rows written so far.
    pub fn rows_written(&self) -> u64 {
        self.rows_written.get()
    }

    /// Quarantined messages by class (classes with none left out).
    pub fn quarantined_by_class(&self) -> Vec<(ErrorClass, u64)> {
        ErrorClass::ALL
            .iter()
            .map(|c| {
                let label = ClassLabel { class: c.as_str() };
                (*c, self.quarantined.get_or_create(&label).get())
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Every metric, in `format`.
    pub fn render(&self, format: Exposition) -> String {
        let mut out = String::new();
        let written = match format {
            Exposition::PrometheusText => prometheus_text::encode(&mut out, &self.registry),
            Exposition::OpenMetrics => text::encode(&mut out, &self.registry),
        };
        // Writing to a `String` cannot fail, nor can these metrics' encoders.
        written.expect("metrics encode into a String");
        out
    }
}

/// A lock whose data stays usable if a holder panicked (plain numbers).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_with_waiting_messages_and_no_flush_for_too_long_is_stalled() {
        let m = IngestMetrics::default();
        let start = Instant::now();
        let limit = Duration::from_secs(60);
        assert_eq!(
            m.health(start + Duration::from_secs(600), limit),
            Health::Healthy,
            "idle, nothing waits"
        );
        m.set_commit_lag("t", 0, 40);
        assert_eq!(
            m.health(start + Duration::from_secs(10), limit),
            Health::Healthy,
            "waiting, not for long"
        );
        assert!(matches!(
            m.health(start + Duration::from_secs(600), limit),
            Health::Stalled { lag: 40, .. }
        ));
        m.flushed(1, 1, Duration::from_millis(5));
        assert_eq!(
            m.health(Instant::now(), limit),
            Health::Healthy,
            "a flush is progress"
        );
        m.forget_partition("t", 0);
        assert_eq!(
            m.health(Instant::now() + Duration::from_secs(600), limit),
            Health::Healthy
        );
        // A write that does not return is a stall, lag or not.
        let started = Instant::now();
        m.writing_since(Some(started));
        assert!(matches!(
            m.health(started + Duration::from_secs(61), limit),
            Health::Writing { .. }
        ));
        m.writing_since(None);
        assert_eq!(
            m.health(started + Duration::from_secs(61), limit),
            Health::Healthy
        );
    }

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    }

    /// The family a sample line belongs to in `format`: OpenMetrics names
    /// counter families without `_total`; both name histogram families
    /// without `_bucket`, `_sum` and `_count`.
    fn family(sample: &str, format: Exposition) -> &str {
        let name = sample.split(['{', ' ']).next().unwrap();
        let histogram = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| f.ends_with("_seconds"));
        let counter = name.strip_suffix("_total");
        match (histogram, counter, format) {
            (Some(family), _, _) => family,
            (None, Some(family), Exposition::OpenMetrics) => family,
            _ => name,
        }
    }

    fn busy() -> IngestMetrics {
        let m = IngestMetrics::default();
        m.record_in(100);
        m.quarantined(ErrorClass::ALL[0]);
        m.set_commit_lag("grid.visits.v1", 3, 42);
        m.set_partitions_owned(2);
        m.flushed(10, 2_000, Duration::from_millis(30));
        m
    }

    #[test]
    fn renders_every_series_with_its_type() {
        let m = busy();
        for format in [Exposition::PrometheusText, Exposition::OpenMetrics] {
            let text = m.render(format);
            assert_eq!(value(&text, "gridstat_ingest_records_in_total"), 1.0);
            assert_eq!(value(&text, "gridstat_ingest_bytes_in_total"), 100.0);
            assert_eq!(value(&text, "gridstat_ingest_rows_written_total"), 10.0);
            assert_eq!(value(&text, "gridstat_ingest_bytes_written_total"), 2000.0);
            assert_eq!(value(&text, "gridstat_ingest_flushes_total"), 1.0);
            for (i, class) in ErrorClass::ALL.iter().enumerate() {
                let series = format!("gridstat_ingest_quarantined_total{{class=\"{class}\"}}");
                assert_eq!(value(&text, &series), if i == 0 { 1.0 } else { 0.0 });
            }
            let lag = "gridstat_ingest_commit_lag{topic=\"grid.visits.v1\",partition=\"3\"}";
            assert_eq!(value(&text, lag), 42.0);
            assert_eq!(value(&text, "gridstat_ingest_partitions_owned"), 2.0);
            // Every series appears once, after its family's one TYPE line.
            let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
            for l in &samples {
                let series = l.rsplit_once(' ').unwrap().0;
                let same = samples
                    .iter()
                    .filter(|s| s.rsplit_once(' ').unwrap().0 == series);
                assert_eq!(same.count(), 1, "{series}");
                let declared = format!("# TYPE {} ", family(l, format));
                let at = text.find(&declared).unwrap_or_else(|| panic!("{l}"));
                assert!(at < text.find(l).unwrap(), "{l}");
                assert_eq!(text.matches(&declared).count(), 1, "{declared}");
            }
            assert_eq!(value(&text, "gridstat_ingest_fenced_total"), 0.0);
            assert_eq!(value(&text, "gridstat_ingest_rejoins_total"), 0.0);
            assert_eq!(value(&text, "gridstat_ingest_partitions_blocked"), 0.0);
            assert_eq!(text.matches("# TYPE ").count(), 12, "{text}");
        }
        let open = m.render(Exposition::OpenMetrics);
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(open.contains("# TYPE gridstat_ingest_records_in counter\n"));
        assert!(open.contains("# UNIT gridstat_ingest_flush_seconds seconds\n"));
        let text = m.render(Exposition::PrometheusText);
        assert!(text.contains("# TYPE gridstat_ingest_records_in_total counter\n"));
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        m.forget_partition("grid.visits.v1", 3);
        assert!(!m
            .render(Exposition::PrometheusText)
            .contains("partition=\"3\""));
    }

    #[test]
    fn flush_latency_is_a_cumulative_histogram() {
        let m = IngestMetrics::default();
        for ms in [3, 30, 30, 400, 9_000, 200_000] {
            m.flushed(1, 1, Duration::from_millis(ms));
        }
        for format in [Exposition::PrometheusText, Exposition::OpenMetrics] {
            let text = m.render(format);
            let bucket = |le: &str| {
                value(
                    &text,
                    &format!("gridstat_ingest_flush_seconds_bucket{{le=\"{le}\"}}"),
                )
            };
            let le = |bound: f64| match format {
                Exposition::PrometheusText => bound.to_string(),
                Exposition::OpenMetrics => format!("{bound:?}"),
            };
            let expected = [1, 1, 1, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5];
            for (bound, below) in FLUSH_BUCKETS.iter().zip(expected) {
                assert_eq!(bucket(&le(*bound)), f64::from(below), "le={bound}\n{text}");
            }
            assert_eq!(bucket("+Inf"), 6.0);
            assert_eq!(value(&text, "gridstat_ingest_flush_seconds_count"), 6.0);
            let sum = value(&text, "gridstat_ingest_flush_seconds_sum");
            assert!((sum - 209.463).abs() < 1e-9, "{sum}");
            assert!(text.contains("# TYPE gridstat_ingest_flush_seconds histogram"));
        }
    }
}
