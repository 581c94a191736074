//! DuckDB's rollup script against gridstat's rollups.

use std::path::PathBuf;
use std::sync::Arc;

use gridstat_aggregate::{AggregateOptions, NoProgress};
use gridstat_benchmarks::duckdb::{rollup_script, run_python};
use gridstat_ingest::file::ingest_ndjson;
use gridstat_ingest::{IngestEngine, IngestMetrics, IngestOptions, LakeStore};
use gridstat_schemas::generate::{write_ndjson, Generator};
use gridstat_schemas::Registry;
use gridstat_testkit::campaign::mixed as campaign;
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;

/// Ingest `campaign` into `lake` as one NDJSON file, then aggregate it.
async fn ingest_and_aggregate(lake: Arc<dyn ObjectStore>, registry: &Arc<Registry>) {
    let mut ndjson = Vec::new();
    write_ndjson(&mut ndjson, Generator::new(registry, campaign())).unwrap();
    let opts = IngestOptions {
        max_segment_rows: 5000,
        ..IngestOptions::default()
    };
    let mut engine = IngestEngine::new(
        LakeStore::new(Arc::clone(&lake)),
        Arc::clone(registry),
        opts,
        Arc::new(IngestMetrics::default()),
    );
    ingest_ndjson(std::io::Cursor::new(ndjson), "campaign.ndjson", &mut engine)
        .await
        .unwrap();
    gridstat_aggregate::run(lake, registry, &AggregateOptions::default(), &NoProgress)
        .await
        .unwrap();
}

/// DuckDB, running the rollup SQL over the same curated Parquet, gets
/// every figure gridstat wrote (enabled by GRIDSTAT_TEST_DUCKDB, a Python
/// with the duckdb package, which infra/test.sh installs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_computes_the_same_rollups() {
    let Ok(python) = std::env::var("GRIDSTAT_TEST_DUCKDB") else {
        eprintln!("GRIDSTAT_TEST_DUCKDB not set: skipping");
        return;
    };
    let registry = Arc::new(Registry::jiangmen());
    let dir = tempfile::tempdir().unwrap();
    let lake = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    ingest_and_aggregate(lake, &registry).await;
    let scratch = tempfile::tempdir().unwrap();
    let start = campaign().start;
    let last = start + chrono::Days::new(u64::from(campaign().days) - 1);
    let script = rollup_script(
        dir.path(),
        scratch.path(),
        &registry,
        start,
        last,
        gridstat_aggregate::OverdueLimits::of(&AggregateOptions::default()),
    )
    .unwrap();
    let script_file = scratch.path().join("script.json");
    std::fs::write(&script_file, serde_json::to_vec(&script).unwrap()).unwrap();
    let args: [PathBuf; 3] = [script_file, dir.path().into(), scratch.path().into()];
    let said = run_python(&python, include_str!("../duckdb_rollups.py"), &args)
        .unwrap_or_else(|e| panic!("DuckDB disagrees: {e:#}"));
    assert!(
        said.contains("daily:")
            && said.contains("cumulative:")
            && said.contains("quality:")
            && said.contains("raw cases:"),
        "{said}"
    );
}
