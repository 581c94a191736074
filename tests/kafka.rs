//! Against a real Kafka-protocol broker (enabled by GRIDSTAT_TEST_KAFKA,
//! which infra/test.sh sets after starting one): two ingest workers in one
//! group, one killed with SIGKILL mid-stream and restarted; afterwards every
//! produced message is in the lake or quarantine exactly as often as it was
//! produced, and the committed offsets equal the end offsets.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use gridstat_schemas::generate::{Expect, GenOptions, Generator};
use gridstat_schemas::Registry;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 6;

/// The broker tests run one at a time: tansu can stall a group whose
/// members come and go while another group rebalances.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn broker() -> Option<String> {
    std::env::var("GRIDSTAT_TEST_KAFKA").ok()
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// A worker process, killed when dropped (so a failing test leaves none behind).
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn worker(brokers: &str, topic: &str, group: &str, lake: &Path) -> Worker {
    Worker(
        Command::new(env!("CARGO_BIN_EXE_gridstat"))
            .args([
                "ingest",
                "--brokers",
                brokers,
                "--topics",
                topic,
                "--group",
                group,
                "--lake",
                lake.to_str().unwrap(),
            ])
            .args(["--flush-interval-ms", "500", "--max-segment-rows", "400"])
            .args([
                "-X",
                "session.timeout.ms=6000",
                "-X",
                "heartbeat.interval.ms=500",
            ])
            .env("GRIDSTAT_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

async fn produce(brokers: &str, topic: &str) -> Vec<gridstat_schemas::GeneratedMessage> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    let res = admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .unwrap();
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let registry = Registry::jiangmen();
    let opts = GenOptions {
        days: 3,
        scale: 0.003,
        duplicate_rate: 0.05,
        invalid_rate: 0.03,
        ..GenOptions::default()
    };
    let messages: Vec<_> = Generator::new(&registry, opts).collect();
    let mut pending = Vec::new();
    for m in &messages {
        let record = FutureRecord::to(topic)
            .key(m.key.as_bytes())
            .payload(&m.bytes)
            .timestamp(m.sent_at_ms);
        pending.push(producer.send(record, Duration::from_secs(10)));
    }
    for p in pending {
        p.await.unwrap();
    }
    messages
}

fn offsets(brokers: &str, topic: &str, group: &str) -> (Vec<i64>, Vec<i64>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let ends: Vec<i64> = (0..PARTITIONS)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .unwrap()
                .1
        })
        .collect();
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(5))
        .unwrap();
    let done: Vec<i64> = (0..PARTITIONS)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => 0,
            },
        )
        .collect();
    drop(committed);
    (done, ends)
}

async fn count(lake: &Path, sql: &str) -> Vec<RecordBatch> {
    let store: Arc<dyn object_store::ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(lake).unwrap());
    let ctx = gridstat_aggregate::tables::session(Arc::clone(&store));
    gridstat_aggregate::tables::register_all(&ctx, &store, &Registry::jiangmen())
        .await
        .unwrap();
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

fn strings(b: &RecordBatch, i: usize) -> arrow::array::StringArray {
    arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8)
        .unwrap()
        .as_string::<i32>()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_one_killed_nothing_lost_nothing_doubled() {
    let Some(brokers) = broker() else {
        eprintln!("skipped: set GRIDSTAT_TEST_KAFKA=HOST:PORT (infra/test.sh does)");
        return;
    };
    let _serial = SERIAL.lock().await;
    let topic = unique("visits");
    let group = unique("ingest");
    let lake = tempfile::tempdir().unwrap();
    let messages = produce(&brokers, &topic).await;

    let mut a = worker(&brokers, &topic, &group, lake.path());
    let b = worker(&brokers, &topic, &group, lake.path());
    // Let A write something, then kill it without warning and start it again.
    let started = Instant::now();
    while !lake.path().join("_ingest").exists() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    // Let the group settle on B (session timeout 6 s) before A comes back:
    // tansu can stall a group whose members come and go at the same time.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let a = worker(&brokers, &topic, &group, lake.path());

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (done, ends) = offsets(&brokers, &topic, &group);
        if done == ends {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "offsets never caught up: committed {done:?}, end {ends:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for mut w in [a, b] {
        Command::new("kill")
            .args(["-TERM", &w.0.id().to_string()])
            .status()
            .unwrap();
        let status = w.0.wait().unwrap();
        assert!(
            status.success(),
            "a worker stopped by SIGTERM exits 0: {status:?}"
        );
    }

    // Produced counts per submission id (a duplicate is produced twice).
    let mut produced: HashMap<String, i64> = HashMap::new();
    let mut invalid: HashMap<&str, i64> = HashMap::new();
    for m in &messages {
        match m.expect {
            Expect::Invalid(class) => *invalid.entry(class.as_str()).or_default() += 1,
            _ => {
                let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
                *produced
                    .entry(v["submission_id"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
    }
    let rows = count(lake.path(), "SELECT submission_id, COUNT(*) FROM (SELECT submission_id FROM raw_visits UNION ALL SELECT submission_id FROM raw_cases) GROUP BY submission_id").await;
    let mut in_lake: HashMap<String, i64> = HashMap::new();
    for b in &rows {
        let ids = strings(b, 0);
        let n = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            in_lake.insert(ids.value(i).to_string(), n.value(i));
        }
    }
    assert_eq!(
        in_lake.len(),
        produced.len(),
        "every valid submission is in the lake"
    );
    for (id, n) in &produced {
        assert_eq!(in_lake.get(id), Some(n), "{id} produced {n} times");
    }
    let rows = count(
        lake.path(),
        "SELECT error_class, COUNT(*) FROM quarantine GROUP BY error_class",
    )
    .await;
    let mut quarantined: HashMap<String, i64> = HashMap::new();
    for b in &rows {
        let c = strings(b, 0);
        let n = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            quarantined.insert(c.value(i).to_string(), n.value(i));
        }
    }
    let expected: HashMap<String, i64> = invalid
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(
        quarantined, expected,
        "every invalid message is quarantined with its class"
    );
}

/// `demo --brokers` (produce to Kafka, consume with a worker) and the
/// embedded source give byte-identical rollups for the same campaign.
#[test]
fn kafka_path_and_embedded_source_give_the_same_rollups() {
    let Some(brokers) = broker() else {
        eprintln!("skipped: set GRIDSTAT_TEST_KAFKA=HOST:PORT (infra/test.sh does)");
        return;
    };
    let _serial = SERIAL.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let seed = (std::process::id() % 1000).to_string();
    for (sub, extra) in [
        ("embedded", vec![]),
        ("kafka", vec!["--brokers", brokers.as_str()]),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_gridstat"))
            .args([
                "demo",
                "--dir",
                dir.path().join(sub).to_str().unwrap(),
                "--days",
                "3",
                "--scale",
                "0.005",
                "--seed",
                &seed,
            ])
            .args(extra)
            .env("GRIDSTAT_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sub}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for table in ["rollups/daily", "rollups/cumulative"] {
        let a = common::file_contents(&dir.path().join("embedded/lake").join(table));
        let b = common::file_contents(&dir.path().join("kafka/lake").join(table));
        assert!(!a.is_empty());
        assert_eq!(
            a, b,
            "{table} differs between the embedded source and Kafka"
        );
    }
}
