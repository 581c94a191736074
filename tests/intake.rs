//! `gridstat intake`, `devices`, `load` and `schema export` as a user runs
//! them. The end-to-end test needs a Kafka-protocol broker
//! (GRIDSTAT_TEST_KAFKA, which infra/test.sh sets): phones → intake →
//! Kafka → ingest → aggregate, and every receipted submission is in the
//! curated tables exactly once.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use gridstat_schemas::Registry;
use object_store::ObjectStore;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

const PARTITIONS: i32 = 4;

fn gridstat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gridstat"))
        .args(args)
        .env("GRIDSTAT_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn schema_export_writes_both_schemas_and_the_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    ok(gridstat(&[
        "schema",
        "export",
        "--out",
        dir.path().to_str().unwrap(),
    ]));
    let openapi: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("openapi.json")).unwrap()).unwrap();
    let text = openapi.to_string();
    for file in [
        "gridstat.visit.v1.schema.json",
        "gridstat.case.v1.schema.json",
    ] {
        let schema: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("schemas").join(file)).unwrap())
                .unwrap();
        assert_eq!(schema["$id"], file);
        assert_eq!(schema["additionalProperties"], false);
        assert!(
            text.contains(&format!("\"schemas/{file}\"")),
            "openapi.json references {file}"
        );
    }
}

#[test]
fn devices_are_added_listed_and_revoked_without_storing_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("devices.json");
    let table_arg = table.to_str().unwrap();
    let registry = Registry::jiangmen();
    let grid = &registry.grids[0];
    let village = registry.villages[grid.village].code.clone();
    let mut added = Vec::new();
    for area in [
        vec!["--grids", grid.id.as_str()],
        vec!["--village", village.as_str()],
        vec!["--town", registry.towns[0].code.as_str()],
        vec!["--county", registry.counties[0].code.as_str()],
    ] {
        let mut args = vec![
            "devices",
            "--devices",
            table_arg,
            "add",
            "--reporter",
            "rp-7",
            "--json",
        ];
        args.extend(area);
        let device: Value = serde_json::from_str(&ok(gridstat(&args))).unwrap();
        let token = device["token"].as_str().unwrap().to_string();
        assert!(token.starts_with("gst_") && token.len() == 68, "{token}");
        added.push((device["id"].as_str().unwrap().to_string(), token));
    }
    let human = ok(gridstat(&[
        "devices",
        "--devices",
        table_arg,
        "add",
        "--reporter",
        "rp-8",
        "--county",
        "440703",
    ]));
    assert!(human.contains("Token (shown only now"), "{human}");
    let stored = std::fs::read_to_string(&table).unwrap();
    for (_, token) in &added {
        assert!(!stored.contains(&token[4..]), "the table holds no token");
    }
    let out = gridstat(&[
        "devices",
        "--devices",
        table_arg,
        "add",
        "--reporter",
        "rp-9",
        "--town",
        "440799999",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("--town \"440799999\" is not in the place registry"));

    ok(gridstat(&[
        "devices",
        "--devices",
        table_arg,
        "revoke",
        &added[0].0,
    ]));
    let listed = ok(gridstat(&[
        "devices",
        "--devices",
        table_arg,
        "list",
        "--json",
    ]));
    let rows: Vec<Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 5);
    assert!(rows[0]["revoked_at"].is_string());
    assert!(rows[1].get("revoked_at").is_none());
    assert!(!listed.contains("gst_"));
    let out = gridstat(&["devices", "--devices", table_arg, "revoke", "dev_nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no device \"dev_nope\""));
}

/// The device table in an S3 bucket (GRIDSTAT_TEST_S3_ENDPOINT, which
/// infra/test.sh sets), as intake replicas share it: added, listed, revoked.
#[test]
fn a_device_table_in_an_s3_bucket() {
    let Ok(endpoint) = std::env::var("GRIDSTAT_TEST_S3_ENDPOINT") else {
        eprintln!("skipped: set GRIDSTAT_TEST_S3_ENDPOINT (infra/test.sh does)");
        return;
    };
    let url = format!("s3://gridstat-test/{}/devices.json", unique("devices"));
    let command = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gridstat"));
        cmd.args([
            "devices",
            "--devices",
            &url,
            "--s3-endpoint",
            &endpoint,
            "--s3-allow-http",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("GRIDSTAT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd
    };
    for i in 0..6 {
        let reporter = format!("rp-{i}");
        let args = [
            "add",
            "--reporter",
            &reporter,
            "--county",
            "440703",
            "--json",
        ];
        ok(command(&args).output().unwrap());
    }
    let listed = ok(command(&["list", "--json"]).output().unwrap());
    let rows: Vec<Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut reporters: Vec<&str> = rows
        .iter()
        .map(|r| r["reporter_id"].as_str().unwrap())
        .collect();
    reporters.sort_unstable();
    assert_eq!(reporters, ["rp-0", "rp-1", "rp-2", "rp-3", "rp-4", "rp-5"]);
    let id = rows[0]["id"].as_str().unwrap();
    ok(command(&["revoke", id]).output().unwrap());
    let listed = ok(command(&["list", "--json"]).output().unwrap());
    assert_eq!(listed.matches("revoked_at").count(), 1, "{listed}");
}

/// A child process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stop(mut p: Proc) {
    Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status()
        .unwrap();
    let status = p.0.wait().unwrap();
    assert!(status.success(), "stopped by SIGTERM, exits 0: {status:?}");
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
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

/// Whether the group has committed every partition's end offset.
fn caught_up(brokers: &str, topics: &[String], group: &str) -> bool {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for t in topics {
        for p in 0..PARTITIONS {
            tpl.add_partition(t, p);
            ends.push(
                consumer
                    .fetch_watermarks(t, p, Duration::from_secs(5))
                    .unwrap()
                    .1,
            );
        }
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(5))
        .unwrap();
    let done: Vec<i64> = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .collect();
    drop(committed);
    done == ends
}

/// (key, count) rows of a query over the lake.
async fn counts(lake: &Path, sql: &str) -> HashMap<String, i64> {
    let store: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(lake).unwrap());
    let ctx = gridstat_aggregate::tables::session(Arc::clone(&store));
    gridstat_aggregate::tables::register_all(&ctx, &store, &Registry::jiangmen())
        .await
        .unwrap();
    let batches: Vec<RecordBatch> = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = HashMap::new();
    for b in &batches {
        let ids = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
        let ids = ids.as_string::<i32>();
        let n = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.insert(ids.value(i).to_string(), n.value(i));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_to_curated_tables_through_the_intake_exactly_once() {
    let Ok(brokers) = std::env::var("GRIDSTAT_TEST_KAFKA") else {
        eprintln!("skipped: set GRIDSTAT_TEST_KAFKA=HOST:PORT (infra/test.sh does)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let topics = vec![unique("visits"), unique("cases")];
    create_topics(&brokers, &topics).await;
    let devices = dir.path().join("devices.json");
    let lake = dir.path().join("lake");
    let port = free_port();
    let topics_arg = topics.join(",");
    let intake = Proc(
        Command::new(env!("CARGO_BIN_EXE_gridstat"))
            .args(["intake", "--brokers", &brokers, "--topics", &topics_arg])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--devices",
                devices.to_str().unwrap(),
                "--device-reload-ms",
                "300",
            ])
            .args(["--log-format", "json"])
            .env("GRIDSTAT_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);
    let report = dir.path().join("report.json");
    let load = tokio::task::spawn_blocking({
        let (devices, report) = (devices.clone(), report.clone());
        move || {
            gridstat(&[
                "load",
                "--url",
                &format!("http://127.0.0.1:{port}"),
                "--devices",
                devices.to_str().unwrap(),
                "--days",
                "2",
                "--scale",
                "0.003",
                "--duplicate-rate",
                "0.05",
                "--invalid-rate",
                "0.03",
                "--concurrency",
                "16",
                "--batch-size",
                "5",
                "--report",
                report.to_str().unwrap(),
            ])
        }
    })
    .await
    .unwrap();
    let summary = ok(load);
    assert!(summary.contains("0 given up"), "{summary}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let receipted: HashSet<String> = report["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["submission_id"].as_str().unwrap().to_string())
        .collect();
    assert!(receipted.len() > 500, "{}", receipted.len());
    assert!(
        report["replayed"].as_u64().unwrap() > 0,
        "resends got their receipts"
    );
    assert!(
        report["rejected"].as_object().unwrap().len() > 5,
        "{}",
        report["rejected"]
    );
    stop(intake);

    // Ingest what the intake wrote, then aggregate.
    let group = unique("ingest");
    let ingest = Proc(
        Command::new(env!("CARGO_BIN_EXE_gridstat"))
            .args([
                "ingest",
                "--brokers",
                &brokers,
                "--topics",
                &topics_arg,
                "--group",
                &group,
            ])
            .args([
                "--lake",
                lake.to_str().unwrap(),
                "--flush-interval-ms",
                "500",
            ])
            .env("GRIDSTAT_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (b, t, g) = (brokers.clone(), topics.clone(), group.clone());
        if tokio::task::spawn_blocking(move || caught_up(&b, &t, &g))
            .await
            .unwrap()
        {
            break;
        }
        assert!(Instant::now() < deadline, "ingest never caught up");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop(ingest);
    ok(gridstat(&["aggregate", "--lake", lake.to_str().unwrap()]));
    let curated = counts(
        &lake,
        "SELECT CAST(submission_id AS VARCHAR), COUNT(*) FROM (SELECT submission_id FROM curated_visits UNION ALL SELECT submission_id FROM curated_cases) GROUP BY 1",
    )
    .await;
    assert_eq!(
        curated.len(),
        receipted.len(),
        "curated holds the receipted submissions"
    );
    for id in &receipted {
        assert_eq!(curated.get(id), Some(&1), "{id} is curated exactly once");
    }
    let quarantined = counts(
        &lake,
        "SELECT CAST(error_class AS VARCHAR), COUNT(*) FROM quarantine GROUP BY 1",
    )
    .await;
    assert!(
        quarantined.is_empty(),
        "nothing invalid reached the lake: {quarantined:?}"
    );
}
