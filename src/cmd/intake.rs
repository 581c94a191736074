//! `gridstat intake`: the HTTP front door for reporters' phones, in front
//! of the Kafka topics ingest reads.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use gridstat_intake::{store, Intake, IntakeOptions, KafkaSinkConfig, SubmissionSink};

use super::devices::DevicesLocation;

#[derive(Debug, Args)]
pub(crate) struct IntakeArgs {
    /// Kafka bootstrap servers, `HOST:PORT[,…]` (required; also `brokers` in the config file's `[intake]` table).
    #[arg(long, env = "GRIDSTAT_BROKERS")]
    pub(crate) brokers: Option<String>,
    /// The visits topic and the case-updates topic, as ingest reads them.
    #[arg(
        long,
        env = "GRIDSTAT_TOPICS",
        value_delimiter = ',',
        default_value = "grid.visits.v1,grid.cases.v1"
    )]
    pub(crate) topics: Vec<String>,
    /// Address to serve HTTP on.
    #[arg(long, env = "GRIDSTAT_INTAKE_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    #[command(flatten)]
    pub(crate) devices: DevicesLocation,
    /// First day of the campaign: earlier visits are rejected (as ingest does).
    #[arg(long, default_value = "2022-11-25", env = "GRIDSTAT_CAMPAIGN_START")]
    pub(crate) campaign_start: chrono::NaiveDate,
    /// How long a submission may wait for Kafka's delivery report before it gets 503.
    #[arg(
        long,
        env = "GRIDSTAT_INTAKE_DELIVERY_TIMEOUT_MS",
        default_value_t = 15_000
    )]
    delivery_timeout_ms: u64,
    /// How often the device table is re-read (a replica that cannot for 3 intervals refuses submissions).
    #[arg(
        long,
        env = "GRIDSTAT_INTAKE_DEVICE_RELOAD_MS",
        default_value_t = store::DEFAULT_RELOAD_INTERVAL.as_millis() as u64
    )]
    device_reload_ms: u64,
    /// Largest batch body in bytes.
    #[arg(long, env = "GRIDSTAT_INTAKE_MAX_BATCH_BYTES", default_value_t = IntakeOptions::default().max_batch_bytes)]
    max_batch_bytes: usize,
    /// Most lines in one batch.
    #[arg(long, env = "GRIDSTAT_INTAKE_MAX_BATCH_LINES", default_value_t = IntakeOptions::default().max_batch_lines)]
    max_batch_lines: usize,
    /// Body bytes all requests may hold at once (past it: 429).
    #[arg(long, env = "GRIDSTAT_INTAKE_MAX_INFLIGHT_BYTES", default_value_t = IntakeOptions::default().max_inflight_bytes)]
    max_inflight_bytes: usize,
    /// Open connections at once.
    #[arg(long, env = "GRIDSTAT_INTAKE_MAX_CONNECTIONS", default_value_t = IntakeOptions::default().max_connections)]
    max_connections: usize,
    /// Time a client has to send its request headers.
    #[arg(
        long,
        env = "GRIDSTAT_INTAKE_HEADER_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    header_timeout_ms: u64,
    /// Time a client has to send its body (408 after).
    #[arg(
        long,
        env = "GRIDSTAT_INTAKE_BODY_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    body_timeout_ms: u64,
    /// Submission ids remembered for idempotent resends.
    #[arg(long, env = "GRIDSTAT_INTAKE_DEDUP_CAPACITY", default_value_t = IntakeOptions::default().dedup_capacity)]
    dedup_capacity: usize,
    /// How long a submission id is remembered, in seconds.
    #[arg(long, env = "GRIDSTAT_INTAKE_DEDUP_TTL_SECS", default_value_t = IntakeOptions::default().dedup_ttl.as_secs())]
    dedup_ttl_secs: u64,
    /// Any librdkafka producer setting, as `key=value` (repeatable); idempotence, acks and message.timeout.ms are fixed.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

impl IntakeArgs {
    fn options(&self) -> IntakeOptions {
        let mut opts = IntakeOptions {
            visits_topic: self.topics[0].clone(),
            cases_topic: self.topics[1].clone(),
            max_batch_bytes: self.max_batch_bytes,
            max_batch_lines: self.max_batch_lines,
            max_inflight_bytes: self.max_inflight_bytes,
            max_connections: self.max_connections.max(1),
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            body_timeout: Duration::from_millis(self.body_timeout_ms),
            dedup_capacity: self.dedup_capacity,
            dedup_ttl: Duration::from_secs(self.dedup_ttl_secs),
            device_reload_interval: Duration::from_millis(self.device_reload_ms.max(100)),
            ..IntakeOptions::default()
        };
        opts.decode.campaign_start = self.campaign_start;
        opts
    }
}

pub(crate) fn run(registry_dir: Option<&Path>, args: IntakeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.topics.len() == 2,
        "--topics {}: name two topics, visits then case updates (e.g. grid.visits.v1,grid.cases.v1)",
        args.topics.join(",")
    );
    // Checked here, not by clap: the brokers may come from the config file,
    // which is layered in after clap has checked the flags.
    let Some(brokers) = args.brokers.clone() else {
        anyhow::bail!(
            "give the Kafka brokers with --brokers, GRIDSTAT_BROKERS or `brokers` in the config file's [intake] table"
        );
    };
    let registry = Arc::new(super::load_registry(registry_dir)?);
    let opts = args.options();
    let devices = args.devices.open()?;
    let runtime = super::runtime()?;
    runtime.block_on(async move {
        let sink = KafkaSinkConfig {
            brokers: brokers.clone(),
            topics: args.topics.clone(),
            delivery_timeout: Duration::from_millis(args.delivery_timeout_ms.max(1)),
            probe_interval: Duration::from_secs(2),
            settings: args.settings.clone(),
        }
        .build()?;
        let auth = store::initial_auth(&devices, &registry, opts.device_reload_interval).await?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        tokio::spawn(store::reload_loop(
            devices.clone(),
            Arc::clone(&registry),
            Arc::clone(&auth),
            opts.device_reload_interval,
            stopped(stop_rx.clone()),
        ));
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let bound = listener.local_addr()?;
        tracing::info!(
            addr = %bound,
            brokers = %brokers,
            visits = %opts.visits_topic,
            cases = %opts.cases_topic,
            devices = %devices.location(),
            active_devices = auth.active(),
            "Serving the intake."
        );
        let sink = Arc::new(sink);
        let intake = Intake::new(
            registry,
            opts,
            auth,
            Arc::clone(&sink) as Arc<dyn SubmissionSink>,
        );
        let shutdown = async move {
            shutdown_signal().await;
            tracing::info!("Stopping: no new connections.");
            let _ = stop_tx.send(true);
        };
        gridstat_intake::server::serve(listener, intake, shutdown).await;
        let flush = Arc::clone(&sink);
        tokio::task::spawn_blocking(move || flush.flush(Duration::from_secs(10))).await?;
        tracing::info!("Stopped cleanly.");
        anyhow::Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
