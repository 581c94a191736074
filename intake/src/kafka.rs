//! Where accepted submissions go: Kafka, through an idempotent producer
//! that waits for every in-sync replica (`acks=all`).
//!
//! [`SubmissionSink`] is the boundary; [`KafkaSink`] is the real one and
//! tests use a memory sink. A submission is acknowledged to the phone only
//! after the broker's delivery report, so a receipt always names a written
//! message.

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::error::{Error, Result};

/// One message to write.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition key (the grid id).
    pub key: &'a str,
    /// The message bytes, unchanged.
    pub payload: &'a [u8],
    /// Message timestamp: when the intake received it (epoch ms).
    pub timestamp_ms: i64,
}

/// Where a message was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// Why a message was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The producer's local queue is full: the client should slow down.
    #[error("the intake's queue to Kafka is full")]
    QueueFull,
    /// The broker is unreachable or did not confirm in time.
    #[error("Kafka did not confirm the write: {0}")]
    Unavailable(String),
}

/// A delivery report to wait for.
pub type DeliveryFuture = BoxFuture<'static, Result<Delivered, SinkError>>;

/// The boundary between the intake and the log it writes to.
pub trait SubmissionSink: Debug + Send + Sync {
    /// Queue one message; the future resolves with its delivery report.
    /// Messages queued one after another with the same key are written in
    /// that order.
    fn enqueue(&self, message: Outgoing<'_>) -> Result<DeliveryFuture, SinkError>;

    /// Whether the broker answered the last health probe; `Err` says why not.
    fn health(&self) -> Result<(), String>;
}

/// How to reach Kafka.
#[derive(Debug, Clone)]
pub struct KafkaSinkConfig {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// Topics that must exist (checked by the health probe).
    pub topics: Vec<String>,
    /// How long a message may wait for its delivery report before the
    /// request gets 503 (librdkafka's `message.timeout.ms`).
    pub delivery_timeout: Duration,
    /// How often the broker is probed for `/healthz`.
    pub probe_interval: Duration,
    /// Extra librdkafka settings (`-X key=value`), applied last.
    pub settings: Vec<(String, String)>,
}

/// Settings that would break "a receipt means written once, in order".
const REFUSED: &[(&str, &str)] = &[
    (
        "enable.idempotence",
        "receipts need the idempotent producer",
    ),
    ("acks", "receipts need acks=all"),
    ("request.required.acks", "receipts need acks=all"),
    ("message.timeout.ms", "set it with --delivery-timeout-ms"),
];

impl KafkaSinkConfig {
    /// Create the producer and start its health probe (inside a tokio runtime).
    pub fn build(&self) -> Result<KafkaSink> {
        if self.brokers.trim().is_empty() {
            return Err(Error::Config(
                "--brokers is empty: pass HOST:PORT[,…]".into(),
            ));
        }
        for (key, _) in &self.settings {
            if let Some((_, why)) = REFUSED.iter().find(|(k, _)| k == key) {
                return Err(Error::Config(format!(
                    "-X {key}=… is not allowed on the intake: {why}"
                )));
            }
        }
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                self.delivery_timeout.as_millis().max(1).to_string(),
            )
            .set("linger.ms", "5")
            .set("compression.type", "zstd")
            // A broker that comes back is found again within a second.
            .set("reconnect.backoff.max.ms", "1000")
            // Topics are created by operators with their partition counts;
            // a missing one fails /healthz instead of being made on the fly.
            .set("allow.auto.create.topics", "false");
        for (k, v) in &self.settings {
            cfg.set(k, v);
        }
        let producer: FutureProducer = cfg.create().map_err(|source| Error::Kafka {
            context: format!("creating a producer for {}", self.brokers),
            source,
        })?;
        let producer = Arc::new(RwLock::new(producer));
        let health = Arc::new(Health::default());
        tokio::spawn(probe_loop(
            Probe {
                producer: Arc::downgrade(&producer),
                config: cfg,
                topics: self.topics.clone(),
                interval: self.probe_interval,
                keep_old: self.delivery_timeout + Duration::from_secs(5),
            },
            Arc::clone(&health),
        ));
        Ok(KafkaSink { producer, health })
    }
}

/// The last probe's result.
#[derive(Debug)]
struct Health {
    up: AtomicBool,
    detail: Mutex<String>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            up: AtomicBool::new(false),
            detail: Mutex::new("not probed yet".into()),
        }
    }
}

/// What the health probe needs.
struct Probe {
    producer: Weak<RwLock<FutureProducer>>,
    config: ClientConfig,
    topics: Vec<String>,
    interval: Duration,
    keep_old: Duration,
}

/// Probe the broker's metadata for the topics every interval while the
/// sink lives.
///
/// When the broker comes back after being unreachable (or the producer hit
/// a fatal error), the producer is replaced by a new one before any
/// submission is queued again: a broker that restarted may have lost the
/// old producer's sequence state, and a fresh producer id starts clean.
/// The old producer lives on for the delivery timeout, so the reports of
/// what it still holds arrive.
async fn probe_loop(probe: Probe, health: Arc<Health>) {
    let timeout = probe
        .interval
        .clamp(Duration::from_millis(500), Duration::from_secs(3));
    let mut was_up = false;
    let mut lost = false;
    loop {
        let Some(shared) = probe.producer.upgrade() else {
            return;
        };
        let current = shared.read().expect("producer lock").clone();
        let topics = probe.topics.clone();
        let result = tokio::task::spawn_blocking(move || {
            if let Some(fatal) = current.client().fatal_error() {
                return Err(format!("the producer failed: {fatal:?}"));
            }
            check_topics(&current, &topics, timeout)
        })
        .await
        .unwrap_or_else(|e| Err(format!("probe failed: {e}")));
        let fatal = matches!(&result, Err(d) if d.starts_with("the producer failed"));
        if fatal || (result.is_ok() && lost) {
            match probe.config.create::<FutureProducer>() {
                Ok(fresh) => {
                    let old =
                        std::mem::replace(&mut *shared.write().expect("producer lock"), fresh);
                    tracing::info!("Started a new Kafka producer.");
                    let keep = probe.keep_old;
                    tokio::spawn(async move {
                        tokio::time::sleep(keep).await;
                        let _ = tokio::task::spawn_blocking(move || drop(old)).await;
                    });
                    lost = false;
                }
                Err(error) => tracing::warn!(%error, "Could not start a new Kafka producer."),
            }
        }
        drop(shared);
        let up = result.is_ok() && !fatal;
        match &result {
            Ok(()) if !was_up => tracing::info!("Kafka is reachable."),
            Err(detail) if was_up => tracing::warn!(detail, "Kafka is unreachable."),
            _ => {}
        }
        if was_up && !up {
            lost = true;
        }
        was_up = up;
        *health.detail.lock().expect("health lock") = result.err().unwrap_or_default();
        health.up.store(up, Ordering::SeqCst);
        tokio::time::sleep(probe.interval).await;
    }
}

fn check_topics(
    producer: &FutureProducer,
    topics: &[String],
    timeout: Duration,
) -> Result<(), String> {
    for topic in topics {
        let metadata = producer
            .client()
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| format!("fetching metadata: {e}"))?;
        let ok = metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if !ok {
            return Err(format!("topic {topic} does not exist: create it first"));
        }
    }
    Ok(())
}

/// The Kafka sink.
#[derive(Clone)]
pub struct KafkaSink {
    producer: Arc<RwLock<FutureProducer>>,
    health: Arc<Health>,
}

impl Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("up", &self.health.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// Wait up to `limit` for everything queued to be delivered (at shutdown).
    pub fn flush(&self, limit: Duration) {
        let producer = self.producer.read().expect("producer lock").clone();
        if let Err(error) = producer.flush(limit) {
            tracing::warn!(%error, "Not every queued message was delivered before shutdown.");
        }
    }
}

impl SubmissionSink for KafkaSink {
    fn enqueue(&self, m: Outgoing<'_>) -> Result<DeliveryFuture, SinkError> {
        let record = FutureRecord::to(m.topic)
            .key(m.key)
            .payload(m.payload)
            .timestamp(m.timestamp_ms);
        let producer = self.producer.read().expect("producer lock").clone();
        let delivery = producer.send_result(record).map_err(|(e, _)| match e {
            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => SinkError::QueueFull,
            other => SinkError::Unavailable(other.to_string()),
        })?;
        Ok(async move {
            match delivery.await {
                Ok(Ok(d)) => Ok(Delivered {
                    partition: d.partition,
                    offset: d.offset,
                }),
                Ok(Err((e, _))) => Err(SinkError::Unavailable(e.to_string())),
                Err(_) => Err(SinkError::Unavailable("the producer was shut down".into())),
            }
        }
        .boxed())
    }

    fn health(&self) -> Result<(), String> {
        if self.health.up.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(self.health.detail.lock().expect("health lock").clone())
        }
    }
}

/// A sink in memory, for tests: every message is "written" at once, at the
/// next offset of partition 0, unless told to fail.
#[derive(Debug, Default)]
pub struct MemorySink {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    written: Vec<(String, String, Vec<u8>)>,
    failing: Option<SinkError>,
    delay: Option<Duration>,
}

impl MemorySink {
    /// Messages written: (topic, key, payload).
    pub fn written(&self) -> Vec<(String, String, Vec<u8>)> {
        self.state.lock().expect("memory sink").written.clone()
    }

    /// Fail every enqueue with `error` (or stop failing with `None`).
    pub fn fail_with(&self, error: Option<SinkError>) {
        self.state.lock().expect("memory sink").failing = error;
    }

    /// Hold each delivery report back for `delay`.
    pub fn delay_by(&self, delay: Duration) {
        self.state.lock().expect("memory sink").delay = Some(delay);
    }
}

impl SubmissionSink for MemorySink {
    fn enqueue(&self, m: Outgoing<'_>) -> Result<DeliveryFuture, SinkError> {
        let mut state = self.state.lock().expect("memory sink");
        if let Some(e) = &state.failing {
            return Err(e.clone());
        }
        state
            .written
            .push((m.topic.into(), m.key.into(), m.payload.to_vec()));
        let offset = state.written.len() as i64 - 1;
        let delay = state.delay;
        Ok(async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            Ok(Delivered {
                partition: 0,
                offset,
            })
        }
        .boxed())
    }

    fn health(&self) -> Result<(), String> {
        match &self.state.lock().expect("memory sink").failing {
            Some(SinkError::Unavailable(why)) => Err(why.clone()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(settings: &[(&str, &str)]) -> KafkaSinkConfig {
        KafkaSinkConfig {
            brokers: "127.0.0.1:9".into(),
            topics: vec!["v".into(), "c".into()],
            delivery_timeout: Duration::from_secs(1),
            probe_interval: Duration::from_secs(1),
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn settings_that_would_break_receipts_are_refused() {
        for (key, value) in [
            ("enable.idempotence", "false"),
            ("acks", "1"),
            ("request.required.acks", "0"),
            ("message.timeout.ms", "600000"),
        ] {
            let err = config(&[(key, value)]).build().unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        let err = KafkaSinkConfig {
            brokers: " ".into(),
            ..config(&[])
        }
        .build()
        .unwrap_err();
        assert!(err.to_string().contains("--brokers"), "{err}");
    }

    #[tokio::test]
    async fn a_memory_sink_writes_in_order_and_fails_on_demand() {
        let sink = MemorySink::default();
        let m = |payload: &'static [u8]| Outgoing {
            topic: "t",
            key: "g",
            payload,
            timestamp_ms: 0,
        };
        let a = sink.enqueue(m(b"a")).unwrap();
        let b = sink.enqueue(m(b"b")).unwrap();
        assert_eq!(a.await.unwrap().offset, 0);
        assert_eq!(b.await.unwrap().offset, 1);
        sink.fail_with(Some(SinkError::QueueFull));
        assert_eq!(sink.enqueue(m(b"c")).err(), Some(SinkError::QueueFull));
        assert!(sink.health().is_ok());
        assert_eq!(sink.written().len(), 2);
    }
}
