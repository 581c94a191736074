//! Against a real Kafka-protocol broker (GRIDSTAT_TEST_KAFKA=HOST:PORT):
//!
//! - a campaign sent by many concurrent devices, alone and in batches:
//!   every receipt names its message in Kafka, every valid submission is
//!   there exactly once, and nothing else is;
//! - the broker killed mid-run and restarted (a tansu of the test's own):
//!   503s while it is down, no receipt for an unwritten message, and once
//!   it is back the phones' retries complete.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridstat_intake::devices::Area;
use gridstat_intake::load::{self, LoadOptions, LoadReport, SimDevice};
use gridstat_intake::{IntakeOptions, KafkaSinkConfig, Receipt, SubmissionSink};
use gridstat_schemas::generate::Expect;
use gridstat_schemas::GeneratedMessage;
use gridstat_testkit::campaign;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use crate::harness::{fast_opts, Served};

/// The broker tests run one at a time (tansu on 2 cores).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PARTITIONS: i32 = 4;

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

async fn create_topics(brokers: &str, topics: &[String]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let new: Vec<_> = topics
        .iter()
        .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    let res = admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .unwrap();
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
}

/// Every message of `topics`: (topic, partition, offset) → (key, payload).
fn consume_all(brokers: &str, topics: &[String]) -> HashMap<(String, i32, i64), (String, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("check"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for t in topics {
        for p in 0..PARTITIONS {
            let (_, high) = consumer
                .fetch_watermarks(t, p, Duration::from_secs(10))
                .unwrap();
            if high > 0 {
                tpl.add_partition_offset(t, p, Offset::Beginning).unwrap();
                ends.insert((t.clone(), p), high);
            }
        }
    }
    let mut out = HashMap::new();
    if ends.is_empty() {
        return out;
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let total: i64 = ends.values().sum();
    while (out.len() as i64) < total {
        assert!(Instant::now() < deadline, "read {} of {total}", out.len());
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            let m = m.unwrap();
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            out.insert(
                (m.topic().to_string(), m.partition(), m.offset()),
                (key, m.payload().unwrap().to_vec()),
            );
        }
    }
    out
}

fn submission_id(bytes: &[u8]) -> String {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    v["submission_id"].as_str().unwrap().to_string()
}

/// An intake on `brokers` writing to fresh topics, with a device per
/// reporter of `messages`; returns it and the simulated devices.
async fn intake_with_devices(
    brokers: &str,
    messages: &[GeneratedMessage],
    opts: IntakeOptions,
    delivery_timeout: Duration,
) -> (Served, Vec<SimDevice>, Vec<String>) {
    let topics = vec![unique("visits"), unique("cases")];
    create_topics(brokers, &topics).await;
    let sink = KafkaSinkConfig {
        brokers: brokers.into(),
        topics: topics.clone(),
        delivery_timeout,
        probe_interval: Duration::from_millis(500),
        settings: vec![],
    }
    .build()
    .unwrap();
    let opts = IntakeOptions {
        visits_topic: topics[0].clone(),
        cases_topic: topics[1].clone(),
        ..opts
    };
    let sink: Arc<dyn SubmissionSink> = Arc::new(sink);
    let served = Served::start(Arc::clone(&sink), opts).await;
    served.wait_for(|| sink.health().is_ok()).await;
    let plans = load::plan_devices(messages);
    let now = chrono::Utc::now().fixed_offset();
    let registry = Arc::clone(&served.registry);
    let tokens = served
        .devices
        .update(|t| {
            plans
                .iter()
                .map(|p| {
                    t.add(&p.reporter_id, Area::Grids(p.grids.clone()), &registry, now)
                        .map(|x| x.1)
                })
                .collect::<gridstat_intake::Result<Vec<_>>>()
        })
        .await
        .unwrap();
    served
        .wait_for(|| served.auth.active() == plans.len())
        .await;
    let devices = plans
        .iter()
        .zip(tokens)
        .map(|(p, token)| SimDevice {
            token: token.expose().to_string(),
            messages: p
                .messages
                .iter()
                .map(|&i| Arc::from(messages[i].bytes.as_slice()))
                .collect(),
        })
        .collect();
    (served, devices, topics)
}

/// Every receipt names a message with its submission id; every valid
/// submission is receipted and in Kafka (exactly once when `exactly`),
/// keyed by its grid, and nothing else is in Kafka.
fn assert_in_kafka(
    brokers: &str,
    topics: &[String],
    messages: &[GeneratedMessage],
    receipts: &[Receipt],
    exactly: bool,
) {
    let in_kafka = consume_all(brokers, topics);
    for r in receipts {
        let (_, payload) = in_kafka
            .get(&(r.topic.clone(), r.partition, r.offset))
            .unwrap_or_else(|| panic!("receipt {r:?} names no message"));
        assert_eq!(submission_id(payload), r.submission_id, "receipt {r:?}");
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for ((topic, _, _), (key, payload)) in &in_kafka {
        let v: Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(v["grid_id"].as_str().unwrap(), key, "keyed by grid");
        let want_topic = if v["schema"] == "gridstat.visit/1" {
            &topics[0]
        } else {
            &topics[1]
        };
        assert_eq!(topic, want_topic);
        *counts.entry(submission_id(payload)).or_default() += 1;
    }
    let valid: Vec<String> = messages
        .iter()
        .filter(|m| m.expect == Expect::Valid)
        .map(|m| submission_id(&m.bytes))
        .collect();
    let receipted: std::collections::HashSet<&str> =
        receipts.iter().map(|r| r.submission_id.as_str()).collect();
    for id in &valid {
        assert!(receipted.contains(id.as_str()), "{id} was receipted");
        let n = counts.get(id).copied().unwrap_or(0);
        if exactly {
            assert_eq!(n, 1, "{id} is in Kafka exactly once");
        } else {
            assert!(n >= 1, "{id} is in Kafka");
        }
    }
    assert_eq!(
        counts.len(),
        valid.len(),
        "nothing but the valid submissions is in Kafka"
    );
}

fn invalid_by_class(messages: &[GeneratedMessage]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for m in messages {
        if let Expect::Invalid(class) = m.expect {
            *out.entry(class.as_str().to_string()).or_default() += 1;
        }
    }
    out
}

fn load_opts(served: &Served, concurrency: usize, batch_size: usize) -> LoadOptions {
    LoadOptions {
        url: format!("http://{}", served.addr),
        concurrency,
        batch_size,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(2),
        give_up_after: Duration::from_secs(120),
    }
}

fn merge(a: LoadReport, b: LoadReport) -> LoadReport {
    let mut out = a;
    out.sent += b.sent;
    out.accepted += b.accepted;
    out.replayed += b.replayed;
    out.retries += b.retries;
    out.gave_up += b.gave_up;
    out.receipts.extend(b.receipts);
    for (k, v) in b.rejected {
        *out.rejected.entry(k).or_default() += v;
    }
    for (k, v) in b.statuses {
        *out.statuses.entry(k).or_default() += v;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_from_many_devices_is_in_kafka_exactly_once() {
    let Some(brokers) = broker() else {
        eprintln!("skipped: set GRIDSTAT_TEST_KAFKA=HOST:PORT (infra/test.sh does)");
        return;
    };
    let _serial = SERIAL.lock().await;
    let messages = campaign::messages(campaign::faulty(3, 0.003));
    let (served, mut devices, topics) =
        intake_with_devices(&brokers, &messages, fast_opts(), Duration::from_secs(15)).await;
    // Half the phones send one message a request, half flush batches.
    let batched = devices.split_off(devices.len() / 2);
    let noop: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(|_| {});
    let client = reqwest::Client::new();
    let (a, b) = tokio::join!(
        load::run(
            client.clone(),
            devices,
            load_opts(&served, 24, 1),
            Arc::clone(&noop)
        ),
        load::run(client, batched, load_opts(&served, 8, 25), noop),
    );
    let report = merge(a, b);
    assert_eq!(report.gave_up, 0, "{report:?}");
    assert_eq!(report.sent as usize, messages.len());
    let valid = messages
        .iter()
        .filter(|m| m.expect == Expect::Valid)
        .count() as u64;
    let duplicates = messages
        .iter()
        .filter(|m| m.expect == Expect::Duplicate)
        .count() as u64;
    assert_eq!(report.accepted, valid, "{report:?}");
    assert_eq!(
        report.replayed, duplicates,
        "a resend gets the original receipt"
    );
    assert_eq!(report.rejected, invalid_by_class(&messages));
    assert_in_kafka(&brokers, &topics, &messages, &report.receipts, true);
}

/// A tansu broker of this test's own, on `port`, storing in `dir`.
struct Tansu(Child);

impl Tansu {
    fn start(binary: &PathBuf, dir: &std::path::Path, port: u16) -> Tansu {
        let url = format!("tcp://127.0.0.1:{port}");
        Tansu(
            Command::new(binary)
                .current_dir(dir)
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", "sqlite://tansu.db"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The tansu binary: GRIDSTAT_TEST_TANSU, the shared prebuilt copy, or
/// one on the PATH or in ~/.cargo/bin (where infra/test.sh finds it).
fn tansu_binary() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(p) = std::env::var("GRIDSTAT_TEST_TANSU") {
        candidates.push(p.into());
    }
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/bin/tansu"));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("tansu")));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/tansu"));
    }
    candidates.into_iter().find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_mid_run_503s_then_retries_complete() {
    let (Some(_), Some(binary)) = (broker(), tansu_binary()) else {
        eprintln!("skipped: set GRIDSTAT_TEST_KAFKA and have tansu (GRIDSTAT_TEST_TANSU, ../shared/bin, PATH)");
        return;
    };
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut tansu = Tansu::start(&binary, dir.path(), port);
    wait_for_port(port).await;
    let brokers = format!("127.0.0.1:{port}");
    let messages = campaign::messages(campaign::faulty(2, 0.003));
    let (served, devices, topics) =
        intake_with_devices(&brokers, &messages, fast_opts(), Duration::from_secs(3)).await;
    let settled = Arc::new(AtomicU64::new(0));
    let progress: Arc<dyn Fn(u64) + Send + Sync> = {
        let settled = Arc::clone(&settled);
        Arc::new(move |n| settled.store(n, Ordering::SeqCst))
    };
    let run = tokio::spawn(load::run(
        reqwest::Client::new(),
        devices,
        load_opts(&served, 8, 1),
        progress,
    ));
    let total = messages.len() as u64;
    while settled.load(Ordering::SeqCst) < total / 4 {
        assert!(!run.is_finished(), "the run outlasts the outage's start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Kill the broker without warning; keep it down for 8 s.
    drop(tansu);
    let at_kill = settled.load(Ordering::SeqCst);
    let client = reqwest::Client::new();
    let health = |client: reqwest::Client, url: String| async move {
        client.get(url).send().await.unwrap().status().as_u16()
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        health(client.clone(), served.url("/healthz")).await,
        503,
        "unhealthy while the broker is down"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = settled.load(Ordering::SeqCst);
    assert!(
        during < total,
        "messages wait while the broker is down ({at_kill} → {during} of {total})"
    );
    tansu = Tansu::start(&binary, dir.path(), port);
    wait_for_port(port).await;
    served
        .wait_for_async(|| {
            let (client, url) = (client.clone(), served.url("/healthz"));
            async move { health(client, url).await == 200 }
        })
        .await;
    let report = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the run completes once the broker is back")
        .unwrap();
    assert_eq!(report.gave_up, 0, "{report:?}");
    assert!(
        report.statuses.get(&503).copied().unwrap_or(0) > 0,
        "requests got 503 while the broker was down: {:?}",
        report.statuses
    );
    assert!(report.retries > 0);
    assert_eq!(report.rejected, invalid_by_class(&messages));
    // A write whose report was lost with the broker may be in Kafka twice
    // (curated data keeps one); every receipt names a written message.
    assert_in_kafka(&brokers, &topics, &messages, &report.receipts, false);
    drop(served);
    drop(tansu);
}
