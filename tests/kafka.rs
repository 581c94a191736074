//! Against a real Kafka-protocol broker (enabled by GRIDSTAT_TEST_KAFKA,
//! which infra/test.sh sets after starting one):
//!
//! - two ingest workers in one group, one killed with SIGKILL mid-stream and
//!   restarted, with the lake on local disk and on a real S3 server;
//! - the S3 server stopped for 20 s mid-stream: no commits while it is down,
//!   nothing lost when it returns;
//! - scale-out: three workers on a 12-partition topic, a rolling restart of
//!   all three while producing, a fourth joining and one leaving;
//! - a zombie: a worker whose S3 connection stalls (a TCP proxy in the
//!   test holds its bytes) past its write deadline and the group's poll
//!   interval while a second worker takes over; when the stall ends its
//!   held writes arrive late;
//!
//! and afterwards every produced message is in the lake or quarantine
//! exactly as often as it was produced, and the committed offsets equal the
//! end offsets.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use gridstat_schemas::generate::Expect;
use gridstat_schemas::{GeneratedMessage, Registry};
use gridstat_testkit::campaign;
use gridstat_testkit::files::file_contents;
use object_store::ObjectStore;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

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

/// A child process, killed when dropped (so a failing test leaves none behind).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where the workers write: a local directory or a prefix in an S3 bucket.
#[derive(Debug, Clone)]
enum Lake {
    Local(PathBuf),
    S3 {
        endpoint: String,
        bucket: String,
        prefix: String,
    },
}

impl Lake {
    fn s3(endpoint: &str, bucket: &str) -> Lake {
        Lake::S3 {
            endpoint: endpoint.into(),
            bucket: bucket.into(),
            prefix: unique("lake"),
        }
    }

    /// The worker's lake arguments and environment.
    fn configure(&self, cmd: &mut Command) {
        match self {
            Lake::Local(path) => {
                cmd.args(["--lake", path.to_str().unwrap()]);
            }
            Lake::S3 {
                endpoint,
                bucket,
                prefix,
            } => {
                cmd.args(["--lake", &format!("s3://{bucket}/{prefix}")])
                    .args(["--s3-endpoint", endpoint, "--s3-allow-http"])
                    .env("AWS_ACCESS_KEY_ID", "testing")
                    .env("AWS_SECRET_ACCESS_KEY", "testing")
                    .env("AWS_REGION", "us-east-1");
            }
        }
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        match self {
            Lake::Local(path) => {
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(path).unwrap())
            }
            Lake::S3 {
                endpoint,
                bucket,
                prefix,
            } => {
                let s3 = object_store::aws::AmazonS3Builder::new()
                    .with_endpoint(endpoint)
                    .with_allow_http(true)
                    .with_region("us-east-1")
                    .with_bucket_name(bucket)
                    .with_access_key_id("testing")
                    .with_secret_access_key("testing")
                    .build()
                    .unwrap();
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str()))
            }
        }
    }
}

/// A worker process; `metrics_port` serves its /metrics.
fn worker(brokers: &str, topic: &str, group: &str, lake: &Lake, metrics_port: Option<u16>) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gridstat"));
    cmd.args([
        "ingest",
        "--brokers",
        brokers,
        "--topics",
        topic,
        "--group",
        group,
    ])
    .args(["--flush-interval-ms", "500", "--max-segment-rows", "400"])
    .args(["--unhealthy-after-ms", "5000"])
    .args([
        "-X",
        "session.timeout.ms=6000",
        "-X",
        "heartbeat.interval.ms=500",
    ])
    .env("GRIDSTAT_LOG", "warn")
    .stdout(Stdio::null());
    if let Some(port) = metrics_port {
        cmd.args(["--metrics-addr", &format!("127.0.0.1:{port}")]);
    }
    lake.configure(&mut cmd);
    Proc(cmd.spawn().unwrap())
}

/// SIGTERM: the worker drains, commits, leaves the group and exits 0.
fn stop(mut w: Proc) {
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

async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let res = admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .unwrap();
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
}

async fn produce(brokers: &str, topic: &str, messages: &[GeneratedMessage]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut pending = Vec::new();
    for m in messages {
        let record = FutureRecord::to(topic)
            .key(m.key.as_bytes())
            .payload(&m.bytes)
            .timestamp(m.sent_at_ms);
        pending.push(producer.send(record, Duration::from_secs(10)));
    }
    for p in pending {
        p.await.unwrap();
    }
}

/// (committed, end) offsets per partition.
fn offsets(brokers: &str, topic: &str, group: &str, partitions: i32) -> (Vec<i64>, Vec<i64>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let ends: Vec<i64> = (0..partitions)
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
    let done: Vec<i64> = (0..partitions)
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

/// Wait until the group has committed every partition's end offset.
async fn wait_caught_up(brokers: &str, topic: &str, group: &str, partitions: i32, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let (done, ends) = offsets(brokers, topic, group, partitions);
        if done == ends {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "offsets never caught up: committed {done:?}, end {ends:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `sql` over the lake's committed files, as aggregate and `gridstat sql` read them.
async fn query(store: Arc<dyn ObjectStore>, sql: &str) -> Vec<RecordBatch> {
    let store = gridstat_aggregate::committed::CommittedFiles::wrap(store)
        .await
        .unwrap();
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

/// (key, count) rows of a query.
async fn counts(store: Arc<dyn ObjectStore>, sql: &str) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    for b in &query(store, sql).await {
        let keys = strings(b, 0);
        let n = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.insert(keys.value(i).to_string(), n.value(i));
        }
    }
    out
}

/// Every valid submission is in the lake exactly as often as it was
/// produced (a duplicate twice; none doubled by a replay), and every
/// invalid message is in quarantine with its class.
async fn assert_exactly_once(lake: &Lake, messages: &[GeneratedMessage]) {
    let mut produced: HashMap<String, i64> = HashMap::new();
    let mut invalid: HashMap<String, i64> = HashMap::new();
    for m in messages {
        match m.expect {
            Expect::Invalid(class) => *invalid.entry(class.as_str().into()).or_default() += 1,
            _ => {
                let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
                *produced
                    .entry(v["submission_id"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
    }
    let in_lake = counts(lake.store(), "SELECT submission_id, COUNT(*) FROM (SELECT submission_id FROM raw_visits UNION ALL SELECT submission_id FROM raw_cases) GROUP BY submission_id").await;
    assert_eq!(
        in_lake.len(),
        produced.len(),
        "every valid submission is in the lake"
    );
    for (id, n) in &produced {
        assert_eq!(in_lake.get(id), Some(n), "{id} produced {n} times");
    }
    let quarantined = counts(
        lake.store(),
        "SELECT error_class, COUNT(*) FROM quarantine GROUP BY error_class",
    )
    .await;
    assert_eq!(
        quarantined, invalid,
        "every invalid message is quarantined with its class"
    );
}

/// Two workers; one is killed without warning after the first write and
/// restarted; both are stopped with SIGTERM once everything is committed.
async fn kill_and_restart(brokers: &str, lake: &Lake) {
    const PARTITIONS: i32 = 6;
    let topic = unique("visits");
    let group = unique("ingest");
    create_topic(brokers, &topic, PARTITIONS).await;
    let messages = campaign::messages(campaign::faulty(3, 0.003));
    produce(brokers, &topic, &messages).await;

    let mut a = worker(brokers, &topic, &group, lake, None);
    let b = worker(brokers, &topic, &group, lake, None);
    // Let A or B write something, then kill A without warning and start it again.
    let started = Instant::now();
    loop {
        let (done, _) = offsets(brokers, &topic, &group, PARTITIONS);
        if done.iter().any(|o| *o > 0) || started.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    // Let the group settle on B (session timeout 6 s) before A comes back:
    // tansu can stall a group whose members come and go at the same time.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let a = worker(brokers, &topic, &group, lake, None);
    wait_caught_up(
        brokers,
        &topic,
        &group,
        PARTITIONS,
        Duration::from_secs(120),
    )
    .await;
    stop(a);
    stop(b);
    assert_exactly_once(lake, &messages).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_one_killed_nothing_lost_nothing_doubled() {
    let Some(brokers) = broker() else {
        eprintln!("skipped: set GRIDSTAT_TEST_KAFKA=HOST:PORT (infra/test.sh does)");
        return;
    };
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    kill_and_restart(&brokers, &Lake::Local(dir.path().to_path_buf())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_with_the_lake_on_s3() {
    let (Some(brokers), Ok(endpoint)) = (broker(), std::env::var("GRIDSTAT_TEST_S3_ENDPOINT"))
    else {
        eprintln!(
            "skipped: set GRIDSTAT_TEST_KAFKA and GRIDSTAT_TEST_S3_ENDPOINT (infra/test.sh does)"
        );
        return;
    };
    let _serial = SERIAL.lock().await;
    kill_and_restart(&brokers, &Lake::s3(&endpoint, "gridstat-test")).await;
}

/// An s3s-fs server of this test's own, so it can be stopped and restarted.
fn s3_server(binary: &str, root: &Path, port: u16) -> Proc {
    Proc(
        Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "testing", "--secret-key", "testing"])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_for_20_s_no_commits_nothing_lost() {
    let (Some(brokers), Ok(s3s)) = (broker(), std::env::var("GRIDSTAT_TEST_S3S_FS")) else {
        eprintln!("skipped: set GRIDSTAT_TEST_KAFKA and GRIDSTAT_TEST_S3S_FS (infra/test.sh does)");
        return;
    };
    let _serial = SERIAL.lock().await;
    const PARTITIONS: i32 = 4;
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("outage")).unwrap();
    let port = free_port();
    let server = s3_server(&s3s, root.path(), port);
    wait_for_port(port).await;
    let lake = Lake::s3(&format!("http://127.0.0.1:{port}"), "outage");
    let topic = unique("visits");
    let group = unique("ingest");
    create_topic(&brokers, &topic, PARTITIONS).await;
    let messages = campaign::messages(campaign::faulty(2, 0.003));
    let (before, during) = messages.split_at(messages.len() / 2);
    produce(&brokers, &topic, before).await;
    let ports = [free_port(), free_port()];
    let a = worker(&brokers, &topic, &group, &lake, Some(ports[0]));
    let b = worker(&brokers, &topic, &group, &lake, Some(ports[1]));
    wait_caught_up(
        &brokers,
        &topic,
        &group,
        PARTITIONS,
        Duration::from_secs(60),
    )
    .await;

    // The store goes away; new messages keep coming.
    drop(server);
    produce(&brokers, &topic, during).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (frozen, ends) = offsets(&brokers, &topic, &group, PARTITIONS);
    assert_ne!(frozen, ends, "new messages wait while the store is down");
    tokio::time::sleep(Duration::from_secs(18)).await;
    let (after, _) = offsets(&brokers, &topic, &group, PARTITIONS);
    assert_eq!(
        after, frozen,
        "no offset is committed while the store is down"
    );
    // Messages wait and nothing is written: the workers say so.
    let stalled = [healthz(ports[0]).await, healthz(ports[1]).await];
    assert!(
        stalled
            .iter()
            .any(|(status, body)| *status == 503 && body.contains("stalled")),
        "a stalled worker fails its health check: {stalled:?}"
    );

    // It comes back on the same folder: the workers catch up on their own.
    let _server = s3_server(&s3s, root.path(), port);
    wait_for_port(port).await;
    wait_caught_up(
        &brokers,
        &topic,
        &group,
        PARTITIONS,
        Duration::from_secs(90),
    )
    .await;
    for port in ports {
        assert_eq!(healthz(port).await.0, 200, "healthy again once caught up");
    }
    stop(a);
    stop(b);
    assert_exactly_once(&lake, &messages).await;
}

/// One worker's `/healthz`: status code and body.
async fn healthz(port: u16) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

/// One worker's `gridstat_ingest_partitions_owned`.
async fn partitions_owned(port: u16) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix("gridstat_ingest_partitions_owned "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no partitions gauge in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_rolling_restart_join_and_leave() {
    let Some(brokers) = broker() else {
        eprintln!("skipped: set GRIDSTAT_TEST_KAFKA=HOST:PORT (infra/test.sh does)");
        return;
    };
    let _serial = SERIAL.lock().await;
    const PARTITIONS: i32 = 12;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::Local(dir.path().to_path_buf());
    let topic = unique("visits");
    let group = unique("ingest");
    create_topic(&brokers, &topic, PARTITIONS).await;
    let messages = campaign::messages(campaign::faulty(4, 0.004));
    // Produce in slices the whole time the workers come and go.
    let producing = {
        let (brokers, topic, messages) = (brokers.clone(), topic.clone(), messages.clone());
        tokio::spawn(async move {
            for slice in messages.chunks(messages.len().div_ceil(40)) {
                produce(&brokers, &topic, slice).await;
                tokio::time::sleep(Duration::from_millis(750)).await;
            }
        })
    };
    let start = |port: u16| worker(&brokers, &topic, &group, &lake, Some(port));
    let mut workers: Vec<(u16, Proc)> = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        workers.push((port, start(port)));
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Rolling restart: one at a time, letting the group settle in between.
    for i in 0..3 {
        let (port, w) = workers.remove(0);
        stop(w);
        tokio::time::sleep(Duration::from_secs(4)).await;
        workers.push((port, start(port)));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            !producing.is_finished() || i > 0,
            "still producing during the restarts"
        );
    }
    // A fourth joins; then one of the first three leaves.
    let port = free_port();
    workers.push((port, start(port)));
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, leaving) = workers.remove(0);
    stop(leaving);
    producing.await.unwrap();
    wait_caught_up(
        &brokers,
        &topic,
        &group,
        PARTITIONS,
        Duration::from_secs(120),
    )
    .await;

    // Every partition is owned by one live worker, and each has some.
    let mut owned = Vec::new();
    for (port, _) in &workers {
        wait_for_port(*port).await;
        owned.push(partitions_owned(*port).await);
    }
    assert_eq!(owned.iter().sum::<u64>(), PARTITIONS as u64, "{owned:?}");
    assert!(
        owned.iter().all(|n| *n > 0),
        "spread over the live workers: {owned:?}"
    );
    for (_, w) in workers {
        stop(w);
    }
    assert_exactly_once(&lake, &messages).await;
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
        let a = file_contents(&dir.path().join("embedded/lake").join(table));
        let b = file_contents(&dir.path().join("kafka/lake").join(table));
        assert!(!a.is_empty());
        assert_eq!(
            a, b,
            "{table} differs between the embedded source and Kafka"
        );
    }
}

/// A TCP proxy to `127.0.0.1:upstream` that can stall: while `stalled`,
/// the bytes it receives in either direction are held, not forwarded, and
/// go on once the stall ends — as a network that drops a worker's
/// packets for a while and then delivers its retransmissions.
struct StallingProxy {
    port: u16,
    stalled: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl StallingProxy {
    async fn start(upstream: u16) -> StallingProxy {
        use std::sync::atomic::AtomicBool;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let task = {
            let stalled = Arc::clone(&stalled);
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        continue;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::spawn(Self::pipe(client_read, server_write, Arc::clone(&stalled)));
                    tokio::spawn(Self::pipe(server_read, client_write, Arc::clone(&stalled)));
                }
            })
        };
        StallingProxy {
            port,
            stalled,
            task,
        }
    }

    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        stalled: Arc<std::sync::atomic::AtomicBool>,
    ) {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            while stalled.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    }

    fn stall(&self, on: bool) {
        self.stalled.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Each partition's newest state (`next_offset` and epoch) in the lake.
async fn newest_states(store: &Arc<dyn ObjectStore>) -> HashMap<i32, (u64, i64, u64)> {
    use futures::TryStreamExt;
    use gridstat_schemas::lake::{PartitionState, StateObject};
    use object_store::ObjectStoreExt;
    let listed: Vec<object_store::ObjectMeta> = store
        .list(Some(&object_store::path::Path::from("_ingest")))
        .try_collect()
        .await
        .unwrap_or_default();
    let mut newest: HashMap<i32, (u64, object_store::path::Path)> = HashMap::new();
    for meta in listed {
        let Some(object) = StateObject::parse(meta.location.as_ref()) else {
            continue;
        };
        let seq = object.seq.unwrap_or(0);
        if newest.get(&object.partition).is_none_or(|(s, _)| seq > *s) {
            newest.insert(object.partition, (seq, meta.location));
        }
    }
    let mut out = HashMap::new();
    for (partition, (seq, path)) in newest {
        // Removed since the listing: a newer version exists; the next poll sees it.
        let Ok(got) = store.get(&path).await else {
            continue;
        };
        let state: PartitionState = serde_json::from_slice(&got.bytes().await.unwrap()).unwrap();
        out.insert(partition, (seq, state.next_offset, state.epoch));
    }
    out
}

/// A zombie: worker A's connection to S3 stalls (a TCP proxy holds its
/// bytes) while it is writing, past its write deadline and the group's
/// poll interval, and worker B takes its partitions over and goes on.
/// When the stall ends, A's held writes arrive late: none may overwrite
/// or roll back B's files or state. Afterwards every produced message is
/// in the lake's committed files exactly as often as it was produced, and
/// no partition's state ever went backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_worker_is_fenced_nothing_lost_nothing_doubled() {
    let (Some(brokers), Ok(s3s)) = (broker(), std::env::var("GRIDSTAT_TEST_S3S_FS")) else {
        eprintln!("skipped: set GRIDSTAT_TEST_KAFKA and GRIDSTAT_TEST_S3S_FS (infra/test.sh does)");
        return;
    };
    let _serial = SERIAL.lock().await;
    const PARTITIONS: i32 = 4;
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("zombie")).unwrap();
    let s3_port = free_port();
    let _server = s3_server(&s3s, root.path(), s3_port);
    wait_for_port(s3_port).await;
    let proxy = StallingProxy::start(s3_port).await;
    let direct = Lake::s3(&format!("http://127.0.0.1:{s3_port}"), "zombie");
    let Lake::S3 { prefix, .. } = &direct else {
        unreachable!()
    };
    let through_proxy = Lake::S3 {
        endpoint: format!("http://127.0.0.1:{}", proxy.port),
        bucket: "zombie".into(),
        prefix: prefix.clone(),
    };
    let topic = unique("visits");
    let group = unique("ingest");
    create_topic(&brokers, &topic, PARTITIONS).await;
    let messages = campaign::messages(campaign::faulty(3, 0.003));
    let (first, rest) = messages.split_at(messages.len() / 3);
    let (second, third) = rest.split_at(rest.len() / 2);

    // Every 200 ms: no partition's newest state version may go backwards.
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (store, watching) = (direct.store(), Arc::clone(&watching));
        tokio::spawn(async move {
            let mut seen: HashMap<i32, (u64, i64, u64)> = HashMap::new();
            let mut versions = 0usize;
            while watching.load(std::sync::atomic::Ordering::SeqCst) {
                for (partition, now) in newest_states(&store).await {
                    if let Some(before) = seen.get(&partition) {
                        assert!(
                            now.0 >= before.0 && now.1 >= before.1 && now.2 >= before.2,
                            "partition {partition}'s state went back from {before:?} to {now:?}"
                        );
                    }
                    versions += usize::from(seen.insert(partition, now) != Some(now));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            versions
        })
    };

    let zombie_log = root.path().join("a.log");
    let a = {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gridstat"));
        cmd.args([
            "ingest",
            "--brokers",
            &brokers,
            "--topics",
            &topic,
            "--group",
            &group,
        ])
        .args(["--flush-interval-ms", "500", "--max-segment-rows", "400"])
        .args(["--write-deadline-ms", "3000"])
        .args([
            "-X",
            "session.timeout.ms=6000",
            "-X",
            "heartbeat.interval.ms=500",
        ])
        .args(["-X", "max.poll.interval.ms=8000"])
        .env("GRIDSTAT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&zombie_log).unwrap());
        through_proxy.configure(&mut cmd);
        Proc(cmd.spawn().unwrap())
    };
    produce(&brokers, &topic, first).await;
    wait_caught_up(
        &brokers,
        &topic,
        &group,
        PARTITIONS,
        Duration::from_secs(60),
    )
    .await;

    // A's store stalls while new messages come: its next writes hang.
    proxy.stall(true);
    produce(&brokers, &topic, second).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b = worker(&brokers, &topic, &group, &direct, None);
    // B takes every partition over once the group drops A, and goes on.
    wait_caught_up(
        &brokers,
        &topic,
        &group,
        PARTITIONS,
        Duration::from_secs(120),
    )
    .await;
    produce(&brokers, &topic, third).await;
    wait_caught_up(
        &brokers,
        &topic,
        &group,
        PARTITIONS,
        Duration::from_secs(60),
    )
    .await;

    // The stall ends: A's held requests arrive, late.
    proxy.stall(false);
    tokio::time::sleep(Duration::from_secs(10)).await;
    wait_caught_up(
        &brokers,
        &topic,
        &group,
        PARTITIONS,
        Duration::from_secs(90),
    )
    .await;
    stop(b);
    stop(a);
    watching.store(false, std::sync::atomic::Ordering::SeqCst);
    let versions = watcher.await.unwrap();
    assert!(
        versions > PARTITIONS as usize,
        "the watcher saw the states move"
    );
    let log = std::fs::read_to_string(&zombie_log).unwrap();
    assert!(
        log.contains("rejoining the group") || log.contains("taken over by another worker"),
        "A noticed it lost its partitions: {log}"
    );
    // B's takeover moved every partition to a later epoch than A's first.
    let states = newest_states(&direct.store()).await;
    assert_eq!(states.len(), PARTITIONS as usize);
    assert!(
        states.values().all(|(_, _, epoch)| *epoch >= 2),
        "{states:?}"
    );
    assert_exactly_once(&direct, &messages).await;
}

/// A tansu broker of this test's own on `port`, storing in `dir`, so it
/// can be stopped and restarted with its topics, messages and offsets.
fn kafka_server(binary: &str, dir: &Path, port: u16) -> Proc {
    let url = format!("tcp://127.0.0.1:{port}");
    Proc(
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

/// One worker killed with SIGKILL five times in a row, each time restarted
/// at once, and then the broker itself stopped and restarted, all while
/// messages keep coming: nothing lost, nothing doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_kills_and_a_broker_restart_lose_nothing() {
    let Ok(tansu) = std::env::var("GRIDSTAT_TEST_TANSU") else {
        eprintln!("skipped: set GRIDSTAT_TEST_TANSU to a tansu binary (infra/test.sh does)");
        return;
    };
    let _serial = SERIAL.lock().await;
    const PARTITIONS: i32 = 4;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = kafka_server(&tansu, data.path(), port);
    wait_for_port(port).await;
    let brokers = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::Local(dir.path().to_path_buf());
    let topic = unique("visits");
    let group = unique("ingest");
    create_topic(&brokers, &topic, PARTITIONS).await;
    let messages = campaign::messages(campaign::faulty(3, 0.003));
    let slices: Vec<&[GeneratedMessage]> = messages.chunks(messages.len().div_ceil(8)).collect();
    produce(&brokers, &topic, slices[0]).await;
    let mut a = worker(&brokers, &topic, &group, &lake, None);
    let b = worker(&brokers, &topic, &group, &lake, None);
    for slice in &slices[1..6] {
        // Let the workers write something, then kill A without warning.
        let before = offsets(&brokers, &topic, &group, PARTITIONS).0;
        let started = Instant::now();
        while offsets(&brokers, &topic, &group, PARTITIONS).0 == before
            && started.elapsed() < Duration::from_secs(20)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        a.0.kill().unwrap();
        a.0.wait().unwrap();
        produce(&brokers, &topic, slice).await;
        a = worker(&brokers, &topic, &group, &lake, None);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // The broker goes down and comes back on its own data.
    drop(server);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _server = kafka_server(&tansu, data.path(), port);
    wait_for_port(port).await;
    for slice in &slices[6..] {
        produce(&brokers, &topic, slice).await;
    }
    wait_caught_up(
        &brokers,
        &topic,
        &group,
        PARTITIONS,
        Duration::from_secs(180),
    )
    .await;
    stop(a);
    stop(b);
    assert_exactly_once(&lake, &messages).await;
}

/// A partition whose state in the lake cannot be read stops only that
/// partition: the worker keeps consuming the others, and stays up (no
/// crash loop of every worker the partition moves to); once repaired
/// with `gridstat lake repair-state`, the partition catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_stops_its_partition_not_the_worker() {
    let Some(brokers) = broker() else {
        eprintln!("skipped: set GRIDSTAT_TEST_KAFKA=HOST:PORT (infra/test.sh does)");
        return;
    };
    let _serial = SERIAL.lock().await;
    const PARTITIONS: i32 = 3;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::Local(dir.path().to_path_buf());
    let topic = unique("visits");
    let group = unique("ingest");
    create_topic(&brokers, &topic, PARTITIONS).await;
    let state = dir
        .path()
        .join(gridstat_schemas::lake::partition_state_object(&topic, 0, 7));
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    std::fs::write(&state, b"{not a state").unwrap();
    let messages = campaign::messages(campaign::faulty(2, 0.002));
    produce(&brokers, &topic, &messages).await;
    let mut w = worker(&brokers, &topic, &group, &lake, None);
    // Partitions 1 and 2 catch up; 0 does not, and the worker lives on.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (done, ends) = offsets(&brokers, &topic, &group, PARTITIONS);
        if done[1..] == ends[1..] {
            assert_eq!(
                done[0], 0,
                "the partition with a corrupt state is not consumed"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the other partitions never caught up: {done:?} of {ends:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(w.0.try_wait().unwrap().is_none(), "the worker is still up");
    stop(w);
    let repair = Command::new(env!("CARGO_BIN_EXE_gridstat"))
        .args([
            "lake",
            "repair-state",
            "--lake",
            dir.path().to_str().unwrap(),
        ])
        .args(["--topic", &topic, "--partition", "0"])
        .output()
        .unwrap();
    assert!(
        repair.status.success(),
        "{}",
        String::from_utf8_lossy(&repair.stderr)
    );
    w = worker(&brokers, &topic, &group, &lake, None);
    wait_caught_up(
        &brokers,
        &topic,
        &group,
        PARTITIONS,
        Duration::from_secs(60),
    )
    .await;
    stop(w);
    assert_exactly_once(&lake, &messages).await;
}
