//! Aggregate tested alone through its public API, on raw lakes in memory
//! written as ingest lays them out (`gridstat_testkit::lake`), read back
//! through the tables `gridstat sql` registers.

mod curated;
mod golden;
mod quality;
mod rollups;
mod runs;
mod units;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use gridstat_aggregate::{AggregateOptions, AggregateReport, NoProgress};
use gridstat_schemas::generate::{GenOptions, GeneratedMessage};
use gridstat_schemas::Registry;
use gridstat_testkit::lake::{paths_under, write_raw_lake};
use object_store::{ObjectStore, ObjectStoreExt};

/// Two small days with byte-identical resends, late arrivals and case
/// updates.
fn two_days() -> GenOptions {
    GenOptions {
        days: 2,
        scale: 0.002,
        duplicate_rate: 0.05,
        late_rate: 0.08,
        ..GenOptions::default()
    }
}

/// A lake in memory holding the raw tables of the campaign `opts`,
/// aggregated once with default options; the generated messages.
async fn aggregated(
    opts: GenOptions,
) -> (Arc<dyn ObjectStore>, AggregateReport, Vec<GeneratedMessage>) {
    let lake: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let messages = write_raw_lake(&lake, &Registry::jiangmen(), opts).await;
    let report = run(&lake).await;
    (lake, report, messages)
}

/// An aggregate run with default options.
async fn run(lake: &Arc<dyn ObjectStore>) -> AggregateReport {
    let opts = AggregateOptions::default();
    gridstat_aggregate::run(Arc::clone(lake), &Registry::jiangmen(), &opts, &NoProgress)
        .await
        .unwrap()
}

/// `sql` over the lake's tables, as `gridstat sql` reads them.
async fn query(lake: &Arc<dyn ObjectStore>, sql: &str) -> Vec<RecordBatch> {
    let committed = gridstat_aggregate::committed::CommittedFiles::wrap(Arc::clone(lake))
        .await
        .unwrap();
    let ctx = gridstat_aggregate::tables::session(Arc::clone(&committed));
    gridstat_aggregate::tables::register_all(&ctx, &committed, &Registry::jiangmen())
        .await
        .unwrap();
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

/// Every object under `prefix` (`None`: the whole lake) with its bytes.
async fn objects_under(
    lake: &Arc<dyn ObjectStore>,
    prefix: Option<&str>,
) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for path in paths_under(lake, prefix).await {
        let object = lake.get(&path.as_str().into()).await.unwrap();
        out.insert(path, object.bytes().await.unwrap().to_vec());
    }
    out
}
