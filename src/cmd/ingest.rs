//! `gridstat ingest`: validated, Hive-partitioned Parquet from NDJSON.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use gridstat_ingest::file::{ingest_ndjson, FileReport};
use gridstat_ingest::{IngestEngine, IngestMetrics, IngestOptions, LakeStore};
use tokio::io::BufReader;

use super::lake::LakeArgs;

#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    #[command(flatten)]
    pub(crate) lake: LakeArgs,
    /// Read NDJSON from this file (`-` for stdin) instead of Kafka; the partition is 0 and the offset the line number − 1.
    #[arg(long, value_name = "FILE")]
    pub(crate) from: PathBuf,
    /// First day of the campaign: earlier visits are quarantined.
    #[arg(long, default_value = "2022-11-25", env = "GRIDSTAT_CAMPAIGN_START")]
    pub(crate) campaign_start: chrono::NaiveDate,
    /// Records per segment before it is flushed.
    #[arg(long, default_value_t = 250_000)]
    pub(crate) max_segment_rows: usize,
}

pub(crate) fn options(campaign_start: chrono::NaiveDate, max_segment_rows: usize) -> IngestOptions {
    let mut opts = IngestOptions {
        max_segment_rows,
        ..IngestOptions::default()
    };
    opts.decode.campaign_start = campaign_start;
    opts
}

pub(crate) fn run(registry_dir: Option<&Path>, args: IngestArgs) -> anyhow::Result<()> {
    let registry = Arc::new(super::load_registry(registry_dir)?);
    let store = args.lake.open()?;
    let opts = options(args.campaign_start, args.max_segment_rows);
    let runtime = super::runtime()?;
    let report = runtime.block_on(ingest_file(store, registry, opts, &args.from))?;
    println!(
        "Ingested {} lines from {} (resumed at line {}): {} rows written, {} quarantined",
        report.lines,
        args.from.display(),
        report.resumed_from + 1,
        report.rows_written,
        report.quarantined
    );
    Ok(())
}

pub(crate) async fn ingest_file(
    store: Arc<dyn object_store::ObjectStore>,
    registry: Arc<gridstat_schemas::Registry>,
    opts: IngestOptions,
    from: &Path,
) -> anyhow::Result<FileReport> {
    let mut engine = IngestEngine::new(
        LakeStore::new(store),
        registry,
        opts,
        Arc::new(IngestMetrics::default()),
    );
    if from == Path::new("-") {
        let reader = BufReader::with_capacity(1 << 20, tokio::io::stdin());
        Ok(ingest_ndjson(reader, "stdin", &mut engine).await?)
    } else {
        let file = tokio::fs::File::open(from)
            .await
            .with_context(|| format!("opening {}", from.display()))?;
        let name = from
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "input".into());
        Ok(ingest_ndjson(BufReader::with_capacity(1 << 20, file), &name, &mut engine).await?)
    }
}
