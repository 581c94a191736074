//! `gridstat-bench intake`: submissions per second and their latency
//! through `gridstat intake` with 64 simulated phones, side by side with a
//! bare rdkafka producer sending the same messages with the same keys to
//! the same broker, in one run.
//!
//! Three passes, each on topics of its own:
//!
//! 1. **bare producer**: idempotent, `acks=all`, with the intake's other
//!    producer settings (`linger.ms=5`, zstd); 64 senders, each waiting for
//!    its delivery report before its next message, as a phone waits for
//!    its receipt.
//! 2. **intake, max**: 64 simulated devices, each on its own HTTP/1.1
//!    connection, sending its reporter's messages one `POST
//!    /v1/submissions` at a time as soon as the previous answer came.
//! 3. **intake, half rate**: the same messages to a fresh intake process,
//!    offered at half the rate of pass 2 on a fixed schedule; latency is
//!    counted from each message's scheduled time, so a stall shows as
//!    queueing instead of delaying the senders.
//!
//! The intake is the `gridstat` binary next to this one, a process of its
//! own as operators run it: its peak RSS (VmHWM) and CPU time are its own,
//! and the load generator neither shares its runtime nor its allocator.
//! The devices are one per reporter and case handler of the messages, in
//! a device table in a temporary directory; 64 of them send at a time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use gridstat_intake::devices::{Area, DeviceTable};
use gridstat_intake::load::plan_devices;
use gridstat_schemas::generate::{Expect, GeneratedMessage, Generator, Stream};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::campaign::{load_registry, CampaignArgs};
use crate::gridstat::Gridstat;
use crate::harness::runtime;

#[derive(Debug, Args)]
pub(crate) struct IntakeArgs {
    /// Kafka bootstrap servers (a local broker: the run creates topics).
    #[arg(long)]
    brokers: String,
    #[command(flatten)]
    campaign: CampaignArgs,
    /// Simulated devices sending at the same time.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Messages each pass sends: the campaign's first valid first copies.
    #[arg(long, default_value_t = 30_000)]
    messages: usize,
    /// Partitions per topic.
    #[arg(long, default_value_t = 12)]
    partitions: i32,
}

/// One message as a device sends it.
struct Message {
    bytes: Bytes,
    key: String,
    stream: Stream,
}

/// A simulated phone: its token and its reporter's messages, in order.
struct Phone {
    token: HeaderValue,
    messages: Vec<Message>,
}

/// What one pass measured.
#[derive(Default)]
struct Pass {
    seconds: f64,
    /// Latency of each written message.
    latencies: Vec<Duration>,
    /// Messages not written, by HTTP status or Kafka error.
    failed: BTreeMap<String, u64>,
}

impl Pass {
    fn written(&self) -> usize {
        self.latencies.len()
    }

    fn rate(&self) -> f64 {
        self.written() as f64 / self.seconds
    }

    /// The `q` quantile of the latencies, in milliseconds.
    fn ms(&self, q: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let at = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
        sorted.get(at).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    }

    fn merge(&mut self, other: Pass) {
        self.latencies.extend(other.latencies);
        for (k, n) in other.failed {
            *self.failed.entry(k).or_default() += n;
        }
    }

    fn summary(&self) -> String {
        let failed = if self.failed.is_empty() {
            String::new()
        } else {
            format!("  NOT WRITTEN: {:?}", self.failed)
        };
        format!(
            "{:6.2} s  {:>7.0} msgs/s  p50 {:5.1} ms  p99 {:5.1} ms{failed}",
            self.seconds,
            self.rate(),
            self.ms(0.50),
            self.ms(0.99)
        )
    }
}

pub(crate) fn run(registry_dir: Option<&Path>, args: IntakeArgs) -> anyhow::Result<()> {
    let gridstat = Gridstat::next_to_this_binary(registry_dir)?;
    let registry = load_registry(registry_dir)?;
    let opts = args.campaign.options()?;
    let messages: Vec<GeneratedMessage> = Generator::new(&registry, opts.clone())
        .filter(|m| m.expect == Expect::Valid)
        .take(args.messages)
        .collect();
    let dir = tempfile::tempdir()?;
    let devices = dir.path().join("devices.json");
    let phones = make_phones(&messages, &registry, &devices)?;
    let runtime = runtime()?;
    let tag = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let topics_of = |pass: &str| {
        vec![
            format!("gridstat-bench-{tag}.{pass}.visits"),
            format!("gridstat-bench-{tag}.{pass}.cases"),
        ]
    };
    let brokers = args.brokers.as_str();
    println!(
        "intake: {} messages (first copies of visits and case updates) from {} devices, {} sending at a time; {} partitions per topic, brokers {brokers}",
        messages.len(),
        phones.len(),
        args.concurrency,
        args.partitions
    );
    let phones = Arc::new(phones);

    let topics = topics_of("bare");
    runtime.block_on(gridstat_ingest::kafka::ensure_topics(
        brokers,
        &topics,
        args.partitions,
        &[],
    ))?;
    let bare = runtime.block_on(bare_pass(brokers, &topics, &phones, args.concurrency))?;
    println!("  bare rdkafka producer       {}", bare.summary());

    let server = Server {
        gridstat: &gridstat,
        brokers,
        devices: &devices,
        campaign_start: opts.start,
        partitions: args.partitions,
    };
    let (max, max_proc) =
        server.pass(&runtime, &topics_of("max"), &phones, args.concurrency, None)?;
    println!(
        "  gridstat intake, max        {}  {:.2}× bare  {}",
        max.summary(),
        max.rate() / bare.rate(),
        max_proc.summary(max.written())
    );
    let half = max.rate() / 2.0;
    let (paced, paced_proc) = server.pass(
        &runtime,
        &topics_of("half"),
        &phones,
        args.concurrency,
        Some(half),
    )?;
    println!(
        "  gridstat intake, half rate  {}  ({half:.0} msgs/s offered; latency from the scheduled send)  {}",
        paced.summary(),
        paced_proc.summary(paced.written())
    );
    let peak_rss_mib = max_proc.peak_rss_kib.max(paced_proc.peak_rss_kib) as f64 / 1024.0;
    println!("  peak RSS of the intake: {peak_rss_mib:.0} MiB");
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    let ratio = max.rate() / bare.rate();
    println!(
        "targets: throughput {ratio:.2}× bare (≥ {MIN_RATIO}×) {}; p99 at half rate {:.1} ms (< {MAX_P99_MS} ms) {}; peak RSS {peak_rss_mib:.0} MiB (< {MAX_RSS_MIB} MiB) {}",
        verdict(ratio >= MIN_RATIO),
        paced.ms(0.99),
        verdict(paced.ms(0.99) < MAX_P99_MS),
        verdict(peak_rss_mib < MAX_RSS_MIB),
    );
    Ok(())
}

/// The intake's targets: its throughput against the bare producer's, its
/// p99 latency at half its maximum rate, its peak resident memory.
const MIN_RATIO: f64 = 0.7;
const MAX_P99_MS: f64 = 50.0;
const MAX_RSS_MIB: f64 = 256.0;

/// One device per reporter and case handler of `messages`, written to a
/// new device table at `path`.
fn make_phones(
    messages: &[GeneratedMessage],
    registry: &gridstat_schemas::Registry,
    path: &Path,
) -> anyhow::Result<Vec<Phone>> {
    let now = chrono::Utc::now().with_timezone(&gridstat_schemas::time::shanghai());
    let mut table = DeviceTable::default();
    let mut phones = Vec::new();
    for plan in plan_devices(messages) {
        let (_, token) = table.add(
            &plan.reporter_id,
            Area::Grids(plan.grids.clone()),
            registry,
            now,
        )?;
        phones.push(Phone {
            token: HeaderValue::from_str(&format!("Bearer {}", token.expose()))?,
            messages: plan
                .messages
                .iter()
                .map(|&i| Message {
                    bytes: Bytes::copy_from_slice(&messages[i].bytes),
                    key: messages[i].key.clone(),
                    stream: messages[i].stream,
                })
                .collect(),
        });
    }
    std::fs::write(path, table.to_json()).with_context(|| format!("writing {}", path.display()))?;
    Ok(phones)
}

/// The phones not yet taken by a sender, and the schedule of a paced pass.
struct Work {
    phones: Arc<Vec<Phone>>,
    next_phone: AtomicU64,
    pacer: Option<Pacer>,
}

impl Work {
    fn new(phones: &Arc<Vec<Phone>>, rate: Option<f64>) -> Arc<Self> {
        Arc::new(Self {
            phones: Arc::clone(phones),
            next_phone: AtomicU64::new(0),
            pacer: rate.map(Pacer::new),
        })
    }

    fn take(&self) -> Option<&Phone> {
        let i = self.next_phone.fetch_add(1, Ordering::Relaxed);
        self.phones.get(usize::try_from(i).ok()?)
    }

    /// When the next message starts: now, or (paced) at its slot, waited for.
    async fn start(&self) -> Instant {
        match &self.pacer {
            None => Instant::now(),
            Some(p) => {
                let at = p.slot();
                tokio::time::sleep_until(at.into()).await;
                at
            }
        }
    }
}

/// Slots at a fixed rate from the pass's start, one per message, taken in
/// turn by whichever sender is free.
struct Pacer {
    start: Instant,
    interval: Duration,
    taken: AtomicU64,
}

impl Pacer {
    fn new(rate: f64) -> Self {
        Self {
            start: Instant::now(),
            interval: Duration::from_secs_f64(1.0 / rate.max(1.0)),
            taken: AtomicU64::new(0),
        }
    }

    fn slot(&self) -> Instant {
        let n = self.taken.fetch_add(1, Ordering::Relaxed);
        self.start + self.interval.mul_f64(n as f64)
    }
}

/// Run `sender` on `concurrency` tasks over `work` and merge what they measured.
async fn run_senders<F, Fut>(concurrency: usize, sender: F) -> anyhow::Result<Pass>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Pass>> + Send + 'static,
{
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        tasks.spawn(sender());
    }
    let mut total = Pass::default();
    while let Some(done) = tasks.join_next().await {
        total.merge(done??);
    }
    total.seconds = started.elapsed().as_secs_f64();
    Ok(total)
}

/// The intake's producer, without the intake: the settings of
/// `gridstat_intake::KafkaSinkConfig::build`.
fn bare_producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "15000")
        .set("linger.ms", "5")
        .set("compression.type", "zstd")
        .set("allow.auto.create.topics", "false")
        .create()
        .context("creating the bare producer")
}

async fn bare_pass(
    brokers: &str,
    topics: &[String],
    phones: &Arc<Vec<Phone>>,
    concurrency: usize,
) -> anyhow::Result<Pass> {
    let producer = bare_producer(brokers)?;
    let work = Work::new(phones, None);
    let topics = Arc::new(topics.to_vec());
    run_senders(concurrency, || {
        let (producer, work, topics) = (producer.clone(), Arc::clone(&work), Arc::clone(&topics));
        async move { produce_phones(&producer, &work, &topics).await }
    })
    .await
}

/// Send each taken phone's messages, one delivery report at a time.
async fn produce_phones(
    producer: &FutureProducer,
    work: &Work,
    topics: &[String],
) -> anyhow::Result<Pass> {
    let mut pass = Pass::default();
    while let Some(phone) = work.take() {
        for m in &phone.messages {
            let topic = match m.stream {
                Stream::Visits => &topics[0],
                Stream::Cases => &topics[1],
            };
            let started = work.start().await;
            let record = FutureRecord::to(topic)
                .key(m.key.as_str())
                .payload(&m.bytes[..])
                .timestamp(chrono::Utc::now().timestamp_millis());
            let outcome = match producer.send_result(record) {
                Ok(delivery) => match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(e.to_string()),
                    Err(_) => Err("canceled".to_string()),
                },
                Err((e, _)) => Err(e.to_string()),
            };
            match outcome {
                Ok(()) => pass.latencies.push(started.elapsed()),
                Err(e) => *pass.failed.entry(e).or_default() += 1,
            }
        }
    }
    Ok(pass)
}

/// How to start `gridstat intake` for a pass.
struct Server<'a> {
    gridstat: &'a Gridstat,
    brokers: &'a str,
    devices: &'a Path,
    campaign_start: chrono::NaiveDate,
    partitions: i32,
}

impl Server<'_> {
    /// A fresh intake on fresh `topics`, sent every phone's messages by
    /// `concurrency` senders (paced at `rate`, if given), then stopped.
    fn pass(
        &self,
        runtime: &tokio::runtime::Runtime,
        topics: &[String],
        phones: &Arc<Vec<Phone>>,
        concurrency: usize,
        rate: Option<f64>,
    ) -> anyhow::Result<(Pass, ProcessUse)> {
        runtime.block_on(gridstat_ingest::kafka::ensure_topics(
            self.brokers,
            topics,
            self.partitions,
            &[],
        ))?;
        let mut intake = self.start(topics)?;
        let addr = intake.addr;
        let measured = runtime.block_on(async {
            intake.wait_healthy().await?;
            let before = intake.usage();
            let work = Work::new(phones, rate);
            let pass = run_senders(concurrency, || {
                let work = Arc::clone(&work);
                async move { post_phones(addr, &work).await }
            })
            .await?;
            anyhow::Ok((pass, intake.usage().since(&before)))
        });
        intake.stop()?;
        measured
    }

    fn start(&self, topics: &[String]) -> anyhow::Result<IntakeProcess> {
        // A port the kernel just handed out and took back: free unless
        // something else grabs it in the next milliseconds.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let child = self
            .gridstat
            .command()
            .arg("intake")
            .args(["--brokers", self.brokers])
            .args(["--topics", &topics.join(",")])
            .args(["--listen", &addr.to_string()])
            .arg("--devices")
            .arg(self.devices)
            .args(["--campaign-start", &self.campaign_start.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .context("starting gridstat intake")?;
        Ok(IntakeProcess { child, addr })
    }
}

/// Send each taken phone's messages over one keep-alive connection, one
/// request at a time.
async fn post_phones(addr: SocketAddr, work: &Work) -> anyhow::Result<Pass> {
    let mut conn = Http::connect(addr).await?;
    let mut pass = Pass::default();
    while let Some(phone) = work.take() {
        for m in &phone.messages {
            let started = work.start().await;
            let status = conn
                .post("/v1/submissions", &phone.token, m.bytes.clone())
                .await?;
            if status == StatusCode::CREATED {
                pass.latencies.push(started.elapsed());
            } else {
                *pass.failed.entry(status.to_string()).or_default() += 1;
            }
        }
    }
    Ok(pass)
}

/// One HTTP/1.1 keep-alive connection to the intake.
struct Http {
    sender: SendRequest<Full<Bytes>>,
}

impl Http {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self { sender })
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> anyhow::Result<StatusCode> {
        let answer = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let status = response.status();
            // Read to the end, so that the connection takes the next request.
            response.into_body().collect().await?;
            anyhow::Ok(status)
        };
        tokio::time::timeout(Duration::from_secs(60), answer)
            .await
            .context("no answer from the intake within 60 s")?
    }

    async fn post(
        &mut self,
        path: &str,
        token: &HeaderValue,
        body: Bytes,
    ) -> anyhow::Result<StatusCode> {
        let request = Request::post(path)
            .header(HOST, "127.0.0.1")
            .header(AUTHORIZATION, token)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        self.send(request).await
    }

    async fn get(&mut self, path: &str) -> anyhow::Result<StatusCode> {
        let request = Request::get(path)
            .header(HOST, "127.0.0.1")
            .body(Full::new(Bytes::new()))?;
        self.send(request).await
    }
}

/// A running `gridstat intake`, killed if still running when dropped.
struct IntakeProcess {
    child: Child,
    addr: SocketAddr,
}

impl IntakeProcess {
    /// Until `/healthz` answers 200: Kafka reached, topics found.
    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("gridstat intake exited at start ({status})");
            }
            let healthy = match Http::connect(self.addr).await {
                Ok(mut conn) => conn.get("/healthz").await.ok() == Some(StatusCode::OK),
                Err(_) => false,
            };
            if healthy {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "gridstat intake at {} not healthy after 60 s",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn usage(&self) -> ProcessUse {
        ProcessUse::of(self.child.id())
    }

    /// SIGTERM, as Kubernetes stops it, and wait for its exit.
    fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let status = self.child.wait()?;
        anyhow::ensure!(status.success(), "gridstat intake exited with {status}");
        Ok(())
    }
}

impl Drop for IntakeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CPU time and peak resident memory of a process, from /proc.
#[derive(Debug, Default, Clone, Copy)]
struct ProcessUse {
    cpu_seconds: f64,
    peak_rss_kib: u64,
}

impl ProcessUse {
    fn of(pid: u32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let peak_rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        // utime and stime, fields 14 and 15, in USER_HZ (100 per second
        // on Linux); the name before them may hold spaces, so count from
        // its closing parenthesis.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Self {
            cpu_seconds: (ticks(11) + ticks(12)) as f64 / 100.0,
            peak_rss_kib,
        }
    }

    /// CPU used since `before`; the peak as now.
    fn since(&self, before: &ProcessUse) -> Self {
        Self {
            cpu_seconds: self.cpu_seconds - before.cpu_seconds,
            peak_rss_kib: self.peak_rss_kib,
        }
    }

    fn summary(&self, written: usize) -> String {
        format!(
            "intake CPU {:.1} s ({:.0} µs/msg), peak RSS {:.0} MiB",
            self.cpu_seconds,
            self.cpu_seconds * 1e6 / written.max(1) as f64,
            self.peak_rss_kib as f64 / 1024.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_rates_of_a_pass() {
        let pass = Pass {
            seconds: 2.0,
            latencies: (1..=100).rev().map(Duration::from_millis).collect(),
            failed: BTreeMap::new(),
        };
        assert_eq!(pass.rate(), 50.0);
        assert_eq!(pass.ms(0.50), 51.0);
        assert_eq!(pass.ms(0.99), 100.0);
        assert!(Pass::default().ms(0.5).is_nan());
    }

    #[test]
    fn paced_slots_are_evenly_spaced_from_the_start() {
        let pacer = Pacer::new(100.0);
        let first = pacer.slot();
        let third = {
            pacer.slot();
            pacer.slot()
        };
        assert_eq!(first, pacer.start);
        let apart = (third - first).as_secs_f64();
        assert!((apart - 0.020).abs() < 1e-6, "{apart}");
    }

    #[test]
    fn cpu_time_counts_from_after_the_process_name() {
        let me = ProcessUse::of(std::process::id());
        assert!(me.peak_rss_kib > 0);
        assert!(me.cpu_seconds >= 0.0);
    }
}
