//! One module per subcommand.

pub(crate) mod aggregate;
pub(crate) mod config;
pub(crate) mod demo;
pub(crate) mod devices;
pub(crate) mod gen;
pub(crate) mod ingest;
pub(crate) mod intake;
pub(crate) mod kafka_demo;
pub(crate) mod lake;
pub(crate) mod load;
pub(crate) mod metrics;
pub(crate) mod registry;
pub(crate) mod schema;
pub(crate) mod serve;
pub(crate) mod site;

use std::path::Path;

use anyhow::Context;
use gridstat_schemas::Registry;

/// The registry named by `--registry`, or the embedded Jiangmen one.
pub(crate) fn load_registry(dir: Option<&Path>) -> anyhow::Result<Registry> {
    match dir {
        Some(dir) => Registry::load_dir(dir)
            .with_context(|| format!("loading the registry in {}", dir.display())),
        None => Ok(Registry::jiangmen()),
    }
}

/// Who this process is, for the leases and states it writes: the host's
/// name and the process id.
pub(crate) fn this_process() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// The latest day an aggregate run accepts raw data for: tomorrow, local
/// time (a visit may be stamped shortly after midnight by a fast clock).
pub(crate) fn latest_day() -> chrono::NaiveDate {
    let today = gridstat_schemas::time::local_date(&chrono::Utc::now());
    today.succ_opt().unwrap_or(today)
}

/// Run `read` over the lake as of its newest complete aggregate run,
/// again while a run rewrites what it reads (see
/// `gridstat_aggregate::manifest::read_newest`).
pub(crate) async fn read_snapshot<T, F, Fut>(
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
    read: F,
) -> anyhow::Result<T>
where
    F: Fn(std::sync::Arc<dyn object_store::ObjectStore>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    gridstat_aggregate::manifest::read_newest(store, read, |e: &anyhow::Error| {
        gridstat_aggregate::manifest::is_snapshot_changed(e.as_ref())
    })
    .await?
}

/// A tokio runtime for the async stages.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    tokio::runtime::Builder::new_multi_thread()
        // The blocking work here is CPU-bound (Parquet encoding) or reads
        // from the page cache (local object store): many threads beyond the
        // cores only spread allocations over more per-thread heaps. Tokio's
        // default of 512 let an aggregate refresh start 30+ threads and
        // touch 30 % more fresh pages; a full rebuild peaked at 1.4–1.8 GiB
        // instead of 0.9 (docs/BENCHMARKS.md).
        .max_blocking_threads((2 * cores).max(4))
        .enable_all()
        .build()
        .context("starting the async runtime")
}
