//! The Kafka source: a consumer-group worker with manual commits.
//!
//! Lifecycle: `Consuming` until the shutdown future resolves, then
//! `Draining` (flush every segment, commit synchronously), then the consumer
//! is dropped, which leaves the group. Offsets are committed only for what
//! the engine reports durable (see `engine`).
//!
//! For demos and benchmarks it also creates topics ([`ensure_topics`]),
//! probes a group's lag ([`GroupLag`]) and produces a generated campaign
//! ([`produce`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::DateTime;
use gridstat_schemas::GeneratedMessage;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};

use crate::engine::{Commit, IngestEngine, SourceRecord};
use crate::error::{Error, Result};

/// How to reach Kafka.
#[derive(Debug, Clone)]
pub struct KafkaIngestConfig {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Consumer group id.
    pub group: String,
    /// Extra librdkafka settings (`-X key=value`), applied last.
    pub settings: Vec<(String, String)>,
}

/// One ownership change: assigned (true) or revoked, and the partitions.
type OwnershipChange = (bool, Vec<(String, i32)>);

/// Partition ownership changes, recorded by the rebalance callbacks and
/// applied by the worker loop between messages.
#[derive(Debug, Default)]
pub struct RebalanceLog {
    events: Mutex<Vec<OwnershipChange>>,
}

impl RebalanceLog {
    fn push(&self, assigned: bool, tpl: &TopicPartitionList) {
        let parts = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        self.events
            .lock()
            .expect("rebalance log")
            .push((assigned, parts));
    }

    fn take(&self) -> Vec<OwnershipChange> {
        std::mem::take(&mut *self.events.lock().expect("rebalance log"))
    }
}

/// The consumer's context: forwards rebalances to the worker loop and keeps
/// each partition's end offset from librdkafka's statistics (emitted every
/// `statistics.interval.ms`), for the commit-lag gauge.
#[derive(Debug, Default, Clone)]
pub struct WorkerContext {
    log: Arc<RebalanceLog>,
    end_offsets: Arc<Mutex<HashMap<(String, i32), i64>>>,
    /// Assigned partitions not consumed: their state cannot be read.
    blocked: Arc<Mutex<std::collections::HashSet<(String, i32)>>>,
}

impl ClientContext for WorkerContext {
    fn stats(&self, statistics: Statistics) {
        let mut ends = self.end_offsets.lock().expect("end offsets");
        for (name, topic) in statistics.topics {
            for (partition, p) in topic.partitions {
                if partition >= 0 && p.hi_offset >= 0 {
                    ends.insert((name.clone(), partition), p.hi_offset);
                }
            }
        }
    }
}

impl ConsumerContext for WorkerContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.log.push(false, tpl);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.log.push(true, tpl);
        }
    }
}

/// The consumer type the worker runs.
pub type WorkerConsumer = StreamConsumer<WorkerContext>;

impl KafkaIngestConfig {
    /// Create the consumer (must run inside a tokio runtime) and subscribe.
    pub fn build(&self) -> Result<WorkerConsumer> {
        if self.topics.is_empty() {
            return Err(Error::Config("no topics: pass --topics a,b".into()));
        }
        check_settings(&self.settings)?;
        check_topics(&self.topics)?;
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // Feeds the commit-lag gauge (see `WorkerContext`).
            .set("statistics.interval.ms", "5000");
        for (k, v) in &self.settings {
            cfg.set(k, v);
        }
        let consumer: WorkerConsumer =
            cfg.create_with_context(WorkerContext::default())
                .map_err(|source| Error::Kafka {
                    context: format!("creating a consumer for {}", self.brokers),
                    source,
                })?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|source| Error::Kafka {
            context: format!("subscribing to {topics:?}"),
            source,
        })?;
        Ok(consumer)
    }
}

/// librdkafka settings that would break the guarantees, with the value
/// that breaks them (`None`: any value) and why.
const REFUSED_SETTINGS: &[(&str, Option<&str>, &str)] = &[
    (
        "enable.auto.commit",
        Some("true"),
        "offsets are committed only once their records are in the lake",
    ),
    (
        "auto.commit.enable",
        Some("true"),
        "offsets are committed only once their records are in the lake",
    ),
    (
        "enable.auto.offset.store",
        Some("true"),
        "offsets are stored only once their records are in the lake",
    ),
    (
        "isolation.level",
        Some("read_uncommitted"),
        "records of aborted transactions would be counted",
    ),
    ("group.id", None, "the group is set by --group"),
    (
        "enable.partition.eof",
        Some("true"),
        "the worker treats end-of-partition events as errors",
    ),
];

/// Refuse `-X` settings that would break exactly-once, naming the setting.
pub fn check_settings(settings: &[(String, String)]) -> Result<()> {
    for (key, value) in settings {
        let refused = REFUSED_SETTINGS.iter().find(|(k, bad, _)| {
            k == key && bad.is_none_or(|bad| value.trim().eq_ignore_ascii_case(bad))
        });
        if let Some((_, _, why)) = refused {
            return Err(Error::Config(format!("-X {key}={value} is refused: {why}")));
        }
    }
    Ok(())
}

/// Refuse topics whose partitions' states and files would share names in
/// the lake (names are [`topic_slug`]s: `a.b` and `a_b` are one), and
/// names taken by file sources (`file:NAME` is `file_NAME`).
pub fn check_topics(topics: &[String]) -> Result<()> {
    let mut seen: HashMap<String, &str> = HashMap::new();
    for topic in topics {
        let slug = gridstat_schemas::lake::topic_slug(topic);
        if slug.starts_with("file_") {
            return Err(Error::Config(format!(
                "topic {topic:?} is refused: its lake name {slug:?} is kept for file sources (`ingest --from`); rename the topic"
            )));
        }
        if let Some(other) = seen.insert(slug.clone(), topic) {
            if other != topic {
                return Err(Error::Config(format!(
                    "topics {other:?} and {topic:?} are refused together: both are {slug:?} in the lake, so their partitions would share offsets; rename one"
                )));
            }
        }
    }
    Ok(())
}

/// Check that a write deadline leaves the group time to spare: a worker
/// stalled in a write must give its partitions up well before the group
/// hands them on (`max.poll.interval.ms`, 300 s unless set).
pub fn check_write_deadline(settings: &[(String, String)], deadline: Duration) -> Result<()> {
    let poll = settings
        .iter()
        .find(|(k, _)| k == "max.poll.interval.ms")
        .map(|(_, v)| {
            v.trim().parse::<u64>().map_err(|_| {
                Error::Config(format!(
                    "-X max.poll.interval.ms={v}: expected milliseconds"
                ))
            })
        })
        .transpose()?
        .map_or(Duration::from_secs(300), Duration::from_millis);
    if deadline * 2 > poll {
        return Err(Error::Config(format!(
            "the write deadline ({} ms) must be at most half of max.poll.interval.ms ({} ms)",
            deadline.as_millis(),
            poll.as_millis()
        )));
    }
    Ok(())
}

fn commit(consumer: &WorkerConsumer, commits: &[Commit], mode: CommitMode) -> Result<()> {
    if commits.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for c in commits {
        tpl.add_partition_offset(&c.topic, c.partition, Offset::Offset(c.next_offset))
            .map_err(|source| Error::Kafka {
                context: "building the commit list".into(),
                source,
            })?;
    }
    consumer.commit(&tpl, mode).map_err(|source| Error::Kafka {
        context: "committing offsets".into(),
        source,
    })?;
    tracing::debug!(partitions = commits.len(), "Committed offsets.");
    Ok(())
}

/// Commit lag per owned partition: the end offset from the latest
/// statistics minus the offset durable in the lake.
fn update_commit_lag(consumer: &WorkerConsumer, engine: &IngestEngine) {
    let ends = consumer.context().end_offsets.lock().expect("end offsets");
    for (topic, partition, durable) in engine.durable_offsets() {
        if let Some(end) = ends.get(&(topic.to_string(), partition)) {
            engine
                .metrics()
                .set_commit_lag(&topic, partition, (end - durable).max(0));
        }
    }
}

async fn apply_rebalances(consumer: &WorkerConsumer, engine: &mut IngestEngine) -> Result<()> {
    let blocked = &consumer.context().blocked;
    for (assigned, parts) in consumer.context().log.take() {
        for (topic, partition) in parts {
            if !assigned {
                engine.revoke(&topic, partition);
                let was_blocked = blocked
                    .lock()
                    .expect("blocked partitions")
                    .remove(&(topic.clone(), partition));
                if was_blocked {
                    engine.metrics().partition_blocked(false);
                }
                continue;
            }
            match engine.assign(&topic, partition).await {
                Ok(_) => {}
                // One unreadable state must not stop the other partitions,
                // nor crash every worker the partition moves to.
                Err(e @ Error::CorruptState { .. }) => {
                    tracing::error!(topic, partition, error = %e, "Partition not consumed until its state is repaired.");
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition(&topic, partition);
                    consumer.pause(&tpl).map_err(kafka("pausing a partition"))?;
                    let newly = blocked
                        .lock()
                        .expect("blocked partitions")
                        .insert((topic.clone(), partition));
                    if newly {
                        engine.metrics().partition_blocked(true);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Give up every partition and rejoin the group: after a write outlived
/// its deadline, the worker cannot tell what of it landed. The next owner
/// of each partition (this worker or another) takes it over with a new
/// epoch, which fences whatever of the abandoned write still arrives.
async fn rejoin(consumer: &WorkerConsumer, engine: &mut IngestEngine, cause: &Error) -> Result<()> {
    tracing::warn!(error = %cause, "Giving up every partition and rejoining the group.");
    engine.reset();
    engine.metrics().rejoined();
    let subscribed = consumer
        .subscription()
        .map_err(kafka("reading the subscription"))?;
    let mut topics: Vec<String> = subscribed
        .elements()
        .iter()
        .map(|e| e.topic().to_string())
        .collect();
    topics.dedup();
    consumer.unsubscribe();
    drop(consumer.context().log.take());
    tokio::time::sleep(REJOIN_PAUSE).await;
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(kafka("subscribing again"))
}

/// After a write found its partition taken over: normally the group moved
/// it on and the revocation is on its way. If the group still assigns it to
/// this worker (another worker's late takeover fenced this one), nobody
/// would read it until the next rebalance: rejoin, so that its owner takes
/// it over again.
async fn settle_fenced(
    consumer: &WorkerConsumer,
    engine: &mut IngestEngine,
    fenced: &[(Arc<str>, i32)],
) -> Result<()> {
    apply_rebalances(consumer, engine).await?;
    let assignment = consumer
        .assignment()
        .map_err(kafka("reading the assignment"))?;
    let still_ours = fenced.iter().find(|(topic, partition)| {
        assignment
            .elements()
            .iter()
            .any(|e| e.topic() == &**topic && e.partition() == *partition)
    });
    if let Some((topic, partition)) = still_ours {
        let cause = Error::Fenced {
            topic: topic.to_string(),
            partition: *partition,
        };
        rejoin(consumer, engine, &cause).await?;
        engine.take_fenced();
    }
    Ok(())
}

/// How long a worker that gave its partitions up waits before rejoining.
const REJOIN_PAUSE: Duration = Duration::from_secs(1);

/// Consume until `shutdown` resolves; then flush, commit and return.
pub async fn run(
    consumer: WorkerConsumer,
    engine: &mut IngestEngine,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        let step = tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => on_tick(&consumer, engine).await,
            received = consumer.recv() => match received {
                Ok(msg) => on_message(&consumer, engine, &msg).await,
                Err(e) => {
                    tracing::warn!(error = %e, "Kafka receive failed; continuing.");
                    Ok(())
                }
            },
        };
        match step {
            Err(e @ Error::WriteDeadline { .. }) => rejoin(&consumer, engine, &e).await?,
            other => other?,
        }
        let fenced = engine.take_fenced();
        if !fenced.is_empty() {
            settle_fenced(&consumer, engine, &fenced).await?;
        }
    }
    tracing::info!("Draining: flushing segments and committing.");
    apply_rebalances(&consumer, engine).await?;
    let commits = engine.flush_all().await?;
    commit(&consumer, &commits, CommitMode::Sync)?;
    consumer.unsubscribe();
    Ok(())
}

async fn on_tick(consumer: &WorkerConsumer, engine: &mut IngestEngine) -> Result<()> {
    apply_rebalances(consumer, engine).await?;
    let commits = engine.tick(Instant::now()).await?;
    commit(consumer, &commits, CommitMode::Async)?;
    update_commit_lag(consumer, engine);
    Ok(())
}

async fn on_message(
    consumer: &WorkerConsumer,
    engine: &mut IngestEngine,
    msg: &rdkafka::message::BorrowedMessage<'_>,
) -> Result<()> {
    apply_rebalances(consumer, engine).await?;
    if !engine.owns(msg.topic(), msg.partition()) {
        return Ok(()); // revoked meanwhile: the next owner reads it again
    }
    let timestamp = msg
        .timestamp()
        .to_millis()
        .and_then(DateTime::from_timestamp_millis)
        .map(|t| t.with_timezone(&gridstat_schemas::time::shanghai()));
    let rec = SourceRecord {
        topic: msg.topic(),
        partition: msg.partition(),
        offset: msg.offset(),
        key: msg.key(),
        payload: msg.payload().unwrap_or(&[]),
        timestamp,
    };
    let commits = engine.push(rec, Instant::now()).await?;
    commit(consumer, &commits, CommitMode::Async)
}

/// A probe of one group's progress on some topics: one client, and the
/// topics' partitions read once, so that polling it does not load the
/// broker with a new connection and metadata requests each time.
pub struct GroupLag {
    consumer: BaseConsumer,
    partitions: TopicPartitionList,
}

impl GroupLag {
    /// Connect (without joining the group) and list the topics' partitions.
    pub fn new(
        brokers: &str,
        group: &str,
        topics: &[String],
        settings: &[(String, String)],
    ) -> Result<Self> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", brokers).set("group.id", group);
        for (k, v) in settings {
            cfg.set(k, v);
        }
        let consumer: BaseConsumer = cfg.create().map_err(kafka("creating a lag probe"))?;
        let mut partitions = TopicPartitionList::new();
        for topic in topics {
            let md = consumer
                .fetch_metadata(Some(topic), LAG_TIMEOUT)
                .map_err(kafka("reading topic metadata"))?;
            for t in md.topics() {
                for p in t.partitions() {
                    partitions.add_partition(topic, p.id());
                }
            }
        }
        Ok(Self {
            consumer,
            partitions,
        })
    }

    /// The group's committed offset per partition (0 where it has none),
    /// in one request.
    pub fn committed(&self) -> Result<Vec<(String, i32, i64)>> {
        let committed = self
            .consumer
            .committed_offsets(self.partitions.clone(), LAG_TIMEOUT)
            .map_err(kafka("reading committed offsets"))?;
        Ok(committed
            .elements()
            .iter()
            .map(|e| {
                let done = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                };
                (e.topic().to_string(), e.partition(), done)
            })
            .collect())
    }

    /// Per-partition lag: end offset − committed offset (one request per
    /// partition for its end offset).
    pub fn lag(&self) -> Result<Vec<(String, i32, i64)>> {
        self.committed()?
            .into_iter()
            .map(|(topic, partition, done)| {
                let (_, high) = self
                    .consumer
                    .fetch_watermarks(&topic, partition, LAG_TIMEOUT)
                    .map_err(kafka("reading end offsets"))?;
                Ok((topic, partition, high - done))
            })
            .collect()
    }
}

impl std::fmt::Debug for GroupLag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupLag")
            .field("partitions", &self.partitions.count())
            .finish_non_exhaustive()
    }
}

/// How long a lag probe waits for the broker.
const LAG_TIMEOUT: Duration = Duration::from_secs(10);

fn kafka(context: &str) -> impl FnOnce(KafkaError) -> Error {
    let context = context.to_string();
    move |source| Error::Kafka { context, source }
}

/// Per-partition lag of a group: end offset − committed offset (a probe of
/// its own; poll a [`GroupLag`] instead).
pub fn group_lag(
    brokers: &str,
    group: &str,
    topics: &[String],
    settings: &[(String, String)],
) -> Result<Vec<(String, i32, i64)>> {
    GroupLag::new(brokers, group, topics, settings)?.lag()
}

/// Create topics that do not exist yet. `settings` are librdkafka settings
/// (`-X key=value`), e.g. the same SASL/TLS settings as the consumer's.
pub async fn ensure_topics(
    brokers: &str,
    topics: &[String],
    partitions: i32,
    settings: &[(String, String)],
) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers);
    for (k, v) in settings {
        cfg.set(k, v);
    }
    let admin: AdminClient<DefaultClientContext> = cfg.create().map_err(|source| Error::Kafka {
        context: "creating an admin client".into(),
        source,
    })?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .map_err(|source| Error::Kafka {
            context: "creating topics".into(),
            source,
        })?;
    for r in results {
        match r {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(Error::Config(format!("creating topic {topic}: {code}")))
            }
        }
    }
    Ok(())
}

/// Most messages [`produce`] has in flight at once.
const MAX_IN_FLIGHT: usize = 10_000;

/// Produce generated messages, each as (topic, message), keyed by its grid
/// and stamped with its send time, with at most 10,000 in flight; returns
/// how many were produced. The phones' side, for demos and benchmarks.
pub async fn produce(
    brokers: &str,
    messages: impl IntoIterator<Item = (String, GeneratedMessage)>,
) -> Result<u64> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("compression.type", "zstd")
        .create()
        .map_err(kafka("creating a producer"))?;
    let mut inflight = std::collections::VecDeque::new();
    let mut n = 0;
    for (topic, m) in messages {
        let record = FutureRecord::to(&topic)
            .key(m.key.as_bytes())
            .payload(&m.bytes)
            .timestamp(m.sent_at_ms);
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| kafka("producing")(e))?;
        inflight.push_back(delivery);
        n += 1;
        if inflight.len() >= MAX_IN_FLIGHT {
            if let Some(d) = inflight.pop_front() {
                delivered(d).await?;
            }
        }
    }
    for d in inflight {
        delivered(d).await?;
    }
    Ok(n)
}

/// Wait for one message's delivery.
async fn delivered(delivery: DeliveryFuture) -> Result<()> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(kafka("producing")(e)),
        Err(_cancelled) => Err(kafka("producing")(KafkaError::Canceled)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_that_break_exactly_once_are_refused_by_name() {
        for (k, v) in [
            ("enable.auto.commit", "true"),
            ("enable.auto.offset.store", "TRUE"),
            ("isolation.level", "read_uncommitted"),
            ("group.id", "other"),
        ] {
            let err = check_settings(&settings(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("-X {k}={v}")), "{err}");
        }
        check_settings(&settings(&[
            ("enable.auto.commit", "false"),
            ("session.timeout.ms", "6000"),
        ]))
        .unwrap();
    }

    #[test]
    fn topics_that_would_share_lake_names_are_refused() {
        let topics = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        check_topics(&topics(&["grid.visits.v1", "grid.cases.v1"])).unwrap();
        let err = check_topics(&topics(&["grid.visits.v1", "grid_visits_v1"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("grid_visits_v1") && err.contains("rename"),
            "{err}"
        );
        let err = check_topics(&topics(&["file.visits"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("file sources"), "{err}");
    }

    #[test]
    fn the_write_deadline_must_be_under_half_the_poll_interval() {
        let deadline = Duration::from_secs(4);
        check_write_deadline(&settings(&[("max.poll.interval.ms", "10000")]), deadline).unwrap();
        assert!(
            check_write_deadline(&settings(&[("max.poll.interval.ms", "6000")]), deadline).is_err()
        );
        assert!(check_write_deadline(&[], Duration::from_secs(200)).is_err());
        assert!(
            check_write_deadline(&settings(&[("max.poll.interval.ms", "x")]), deadline).is_err()
        );
    }

    #[tokio::test]
    async fn ensure_topics_gives_the_admin_client_the_settings() {
        // A value librdkafka refuses fails the client before any broker is
        // contacted, so it proves the setting reached the client.
        let bad = settings(&[("security.protocol", "carrier-pigeon")]);
        let err = ensure_topics("127.0.0.1:9", &["t".into()], 1, &bad)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Kafka { context, source }
                if context.contains("admin client")
                    && source.to_string().contains("security.protocol")),
            "{err:?}"
        );
    }
}
