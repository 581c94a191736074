//! `gridstat ingest`: validated, Hive-partitioned Parquet from NDJSON.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use gridstat_ingest::file::{ingest_ndjson, FileReport};
use gridstat_ingest::kafka::KafkaIngestConfig;
use gridstat_ingest::{IngestEngine, IngestMetrics, IngestOptions, LakeStore};

use super::lake::LakeArgs;

#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    #[command(flatten)]
    pub(crate) lake: LakeArgs,
    /// Read NDJSON from this file (`-` for stdin) instead of Kafka; the partition is 0 and the offset the line number − 1.
    #[arg(long, value_name = "FILE", conflicts_with = "brokers")]
    pub(crate) from: Option<PathBuf>,
    /// Kafka bootstrap servers, `HOST:PORT[,…]` (required without --from).
    #[arg(long, env = "GRIDSTAT_BROKERS")]
    pub(crate) brokers: Option<String>,
    /// Topics to consume (comma-separated).
    #[arg(
        long,
        env = "GRIDSTAT_TOPICS",
        value_delimiter = ',',
        default_value = "grid.visits.v1,grid.cases.v1"
    )]
    pub(crate) topics: Vec<String>,
    /// Consumer group id.
    #[arg(long, env = "GRIDSTAT_GROUP", default_value = "gridstat-ingest")]
    pub(crate) group: String,
    /// Any librdkafka setting, as `key=value` (repeatable, like kcat's -X).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_setting)]
    pub(crate) settings: Vec<(String, String)>,
    /// A partition's buffered records reach the lake at most this long after they arrived.
    #[arg(long, env = "GRIDSTAT_FLUSH_INTERVAL_MS", default_value_t = 60_000)]
    pub(crate) flush_interval_ms: u64,
    /// Serve Prometheus metrics at /metrics and liveness at /healthz on this address.
    #[arg(long, env = "GRIDSTAT_METRICS_ADDR")]
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
    /// First day of the campaign: earlier visits are quarantined.
    #[arg(long, default_value = "2022-11-25", env = "GRIDSTAT_CAMPAIGN_START")]
    pub(crate) campaign_start: chrono::NaiveDate,
    /// Records per segment before it is flushed.
    #[arg(long, env = "GRIDSTAT_MAX_SEGMENT_ROWS", default_value_t = 250_000)]
    pub(crate) max_segment_rows: usize,
    /// Budget of buffered records across all partitions; past it, the largest segment is flushed.
    #[arg(long, env = "GRIDSTAT_MAX_BUFFERED_ROWS", default_value_t = IngestOptions::default().max_buffered_rows)]
    pub(crate) max_buffered_rows: usize,
    /// Budget of buffered message bytes across all partitions; past it, the largest segment is flushed.
    #[arg(long, env = "GRIDSTAT_MAX_BUFFERED_BYTES", default_value_t = IngestOptions::default().max_buffered_bytes)]
    pub(crate) max_buffered_bytes: usize,
    /// Longest a segment write may take, retries included; past it a Kafka worker gives its partitions up and rejoins. At most half of max.poll.interval.ms.
    #[arg(long, env = "GRIDSTAT_WRITE_DEADLINE_MS", default_value_t = gridstat_ingest::config::DEFAULT_WRITE_DEADLINE.as_millis() as u64)]
    pub(crate) write_deadline_ms: u64,
    /// /healthz fails once messages have waited this long without a segment written (the probe then restarts the worker).
    #[arg(long, env = "GRIDSTAT_UNHEALTHY_AFTER_MS", default_value_t = 300_000)]
    pub(crate) unhealthy_after_ms: u64,
    /// The name --from's input is tracked under in the lake (default: the file's name; required for `-`, standard input).
    #[arg(long, value_name = "NAME", requires = "from")]
    pub(crate) source_id: Option<String>,
}

pub(crate) fn options(campaign_start: chrono::NaiveDate, max_segment_rows: usize) -> IngestOptions {
    let mut opts = IngestOptions {
        max_segment_rows,
        ..IngestOptions::default()
    };
    opts.decode.campaign_start = campaign_start;
    opts
}

impl IngestArgs {
    /// The engine's options from the flags.
    fn options(&self) -> IngestOptions {
        IngestOptions {
            flush_interval: std::time::Duration::from_millis(self.flush_interval_ms),
            max_buffered_rows: self.max_buffered_rows,
            max_buffered_bytes: self.max_buffered_bytes,
            write_deadline: std::time::Duration::from_millis(self.write_deadline_ms),
            owner: super::this_process(),
            ..options(self.campaign_start, self.max_segment_rows)
        }
    }
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

pub(crate) fn run(
    registry_dir: Option<&Path>,
    args: IngestArgs,
    config_file: &super::config::ConfigFile,
) -> anyhow::Result<()> {
    let registry = Arc::new(super::load_registry(registry_dir)?);
    let lake = args.lake.open_for_ingest()?;
    let opts = args.options();
    let runtime = super::runtime()?;
    if let Some(from) = &args.from {
        let report = runtime.block_on(ingest_file(
            lake,
            registry,
            opts,
            from,
            args.source_id.as_deref(),
        ))?;
        println!(
            "Ingested {} lines from {} (resumed at line {}): {} rows written, {} quarantined",
            report.lines,
            from.display(),
            report.resumed_from + 1,
            report.rows_written,
            report.quarantined
        );
        return Ok(());
    }
    // Not clap's `required_unless_present`: the brokers may come from the
    // config file, which is layered in after clap has checked the flags.
    let Some(brokers) = args.brokers.clone() else {
        anyhow::bail!(
            "nothing to ingest: give --from FILE, or Kafka brokers with --brokers, \
             GRIDSTAT_BROKERS or `brokers` in the config file's [ingest] table"
        );
    };
    let config = KafkaIngestConfig {
        brokers,
        topics: args.topics.clone(),
        group: args.group.clone(),
        settings: config_file
            .kafka_settings()
            .into_iter()
            .chain(args.settings.iter().cloned())
            .collect(),
    };
    runtime.block_on(async move {
        let metrics = Arc::new(IngestMetrics::default());
        if let Some(addr) = args.metrics_addr {
            let stall = std::time::Duration::from_millis(args.unhealthy_after_ms);
            super::metrics::spawn(addr, Arc::clone(&metrics), stall).await?;
        }
        gridstat_ingest::kafka::check_write_deadline(&config.settings, opts.write_deadline)?;
        let consumer = config.build()?;
        let mut engine = IngestEngine::new(lake, registry, opts, metrics);
        tracing::info!(brokers = %config.brokers, topics = ?config.topics, group = %config.group, "Consuming.");
        gridstat_ingest::kafka::run(consumer, &mut engine, shutdown_signal()).await?;
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

pub(crate) async fn ingest_file(
    lake: LakeStore,
    registry: Arc<gridstat_schemas::Registry>,
    opts: IngestOptions,
    from: &Path,
    source_id: Option<&str>,
) -> anyhow::Result<FileReport> {
    let mut engine = IngestEngine::new(lake, registry, opts, Arc::new(IngestMetrics::default()));
    if let Some(id) = source_id {
        anyhow::ensure!(
            !id.trim().is_empty() && id.len() <= 128,
            "--source-id {id:?}: give 1 to 128 characters"
        );
    }
    if from == Path::new("-") {
        // Standard input has no name of its own to resume under.
        let Some(id) = source_id else {
            anyhow::bail!(
                "--from - needs --source-id NAME: the lake tracks how far each input was read under its name"
            );
        };
        Ok(ingest_ndjson(std::io::stdin(), id, &mut engine).await?)
    } else {
        let file =
            std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
        let name = match source_id {
            Some(id) => id.to_string(),
            None => from
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "input".into()),
        };
        Ok(ingest_ndjson(file, &name, &mut engine).await?)
    }
}
