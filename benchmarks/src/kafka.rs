//! `gridstat-bench kafka`: Kafka → lake throughput of 1, 2, 3… `gridstat
//! ingest` worker processes (the binary) in one group, against a bare
//! rdkafka consumer in this process that reads the same topics and
//! discards the messages, in the same run.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use gridstat_ingest::kafka::{ensure_topics, produce, GroupLag};
use gridstat_schemas::generate::{Generator, Stream};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};

use crate::campaign::{load_registry, CampaignArgs};
use crate::gridstat::Gridstat;
use crate::harness::runtime;

#[derive(Debug, Args)]
pub(crate) struct KafkaArgs {
    /// Kafka bootstrap servers (a local broker: the run creates topics).
    #[arg(long)]
    brokers: String,
    #[command(flatten)]
    campaign: CampaignArgs,
    /// Worker counts to measure, one run each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    workers: Vec<usize>,
    /// Partitions per topic.
    #[arg(long, default_value_t = 12)]
    partitions: i32,
}

/// A worker process, killed if still running when dropped.
struct WorkerProcess(Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Peak resident memory of a running process, from /proc (KiB).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub(crate) fn run(registry_dir: Option<&Path>, args: KafkaArgs) -> anyhow::Result<()> {
    let gridstat = Gridstat::next_to_this_binary(registry_dir)?;
    let registry = load_registry(registry_dir)?;
    let opts = args.campaign.options()?;
    let runtime = runtime()?;
    let tag = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let topics = vec![
        format!("gridstat-bench-{tag}.visits"),
        format!("gridstat-bench-{tag}.cases"),
    ];
    let brokers = args.brokers.as_str();
    runtime.block_on(ensure_topics(brokers, &topics, args.partitions, &[]))?;
    let started = Instant::now();
    let messages = Generator::new(&registry, opts).map(|m| {
        let topic = match m.stream {
            Stream::Visits => topics[0].clone(),
            Stream::Cases => topics[1].clone(),
        };
        (topic, m)
    });
    let n = runtime.block_on(produce(brokers, messages))?;
    println!(
        "kafka: {n} messages on {} topics × {} partitions (produced in {:.1} s)",
        topics.len(),
        args.partitions,
        started.elapsed().as_secs_f64()
    );

    let raw = runtime.block_on(raw_consume(brokers, &topics, &format!("raw-{tag}"), n))?;
    println!(
        "  bare rdkafka consumer      {raw:6.2} s  {:>9.0} msgs/s (reads and discards)",
        n as f64 / raw
    );
    for &k in &args.workers {
        let lake = tempfile::tempdir()?;
        let group = format!("ingest-{k}-{tag}");
        let probe = LagProbe::new(brokers, &group, &topics)?;
        let started = Instant::now();
        let workers: Vec<WorkerProcess> = (0..k)
            .map(|_| {
                gridstat
                    .command()
                    .args(["ingest", "--brokers", brokers, "--group", &group])
                    .args(["--topics", &topics.join(",")])
                    .args(["--flush-interval-ms", "1000"])
                    .arg("--lake")
                    .arg(lake.path())
                    .stdout(Stdio::null())
                    .spawn()
                    .map(WorkerProcess)
                    .context("starting a worker")
            })
            .collect::<anyhow::Result<_>>()?;
        let deadline = Instant::now() + Duration::from_secs(1800);
        let secs = loop {
            std::thread::sleep(Duration::from_millis(200));
            if probe.lag()? == 0 {
                break started.elapsed().as_secs_f64();
            }
            anyhow::ensure!(Instant::now() < deadline, "workers never caught up");
        };
        let rss = workers
            .iter()
            .filter_map(|w| peak_rss_kib(w.0.id()))
            .max()
            .unwrap_or(0);
        for mut w in workers {
            Command::new("kill")
                .args(["-TERM", &w.0.id().to_string()])
                .status()?;
            w.0.wait()?;
        }
        println!(
            "  gridstat ingest, {k} worker{} {secs:6.2} s  {:>9.0} msgs/s  {:.2}× raw  peak RSS {:.0} MiB per worker",
            if k == 1 { " " } else { "s" },
            n as f64 / secs,
            raw / secs,
            rss as f64 / 1024.0
        );
    }
    Ok(())
}

/// How far a group's commits are behind the end of the topics, with one
/// request per poll: the end offsets are read once (nothing is produced
/// meanwhile), so polling does not load the broker the workers are
/// measured against.
struct LagProbe {
    group: GroupLag,
    end_total: i64,
}

impl LagProbe {
    /// Before any worker starts: the group has committed nothing yet.
    fn new(brokers: &str, group: &str, topics: &[String]) -> anyhow::Result<Self> {
        let group = GroupLag::new(brokers, group, topics, &[])?;
        let end_total = group.lag()?.iter().map(|l| l.2).sum();
        Ok(Self { group, end_total })
    }

    /// Messages not yet committed by the group.
    fn lag(&self) -> anyhow::Result<i64> {
        let done: i64 = self.group.committed()?.iter().map(|c| c.2).sum();
        Ok(self.end_total - done)
    }
}

/// Seconds for a bare consumer in a fresh group to read `n` messages.
async fn raw_consume(brokers: &str, topics: &[String], group: &str, n: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the bare consumer")?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names)?;
    let mut seen = 0u64;
    while seen < n {
        let msg = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .context("the bare consumer got nothing for 60 s")??;
        std::hint::black_box(msg);
        seen += 1;
    }
    Ok(started.elapsed().as_secs_f64())
}
