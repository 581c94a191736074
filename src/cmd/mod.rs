//! One module per subcommand.

pub(crate) mod aggregate;
pub(crate) mod bench;
pub(crate) mod bench_kafka;
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
