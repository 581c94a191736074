//! Ingest tested alone through its public API: a small checked-in NDJSON
//! file (`tests/data/`) and generated campaigns ingested into a lake in
//! memory or in a temporary directory, read back without any other stage.

mod engine;
mod fixture;
mod resume;

use std::sync::Arc;

use gridstat_ingest::file::{ingest_ndjson, FileReport};
use gridstat_ingest::{IngestEngine, IngestMetrics, IngestOptions, LakeStore};
use gridstat_schemas::Registry;
use object_store::ObjectStore;

/// Two field days of a city: valid visits and case updates in two
/// counties, a byte-identical resend, a blank line and invalid lines of
/// five error classes (see `fixture.rs` for each line).
const FIELD_DAYS: &[u8] = include_bytes!("../data/field-days.ndjson");

/// A lake in memory.
fn memory_lake() -> Arc<dyn ObjectStore> {
    Arc::new(object_store::memory::InMemory::new())
}

/// An ingest engine writing to `lake`, and its metrics.
fn engine_on(
    lake: &Arc<dyn ObjectStore>,
    registry: &Arc<Registry>,
    opts: IngestOptions,
) -> (IngestEngine, Arc<IngestMetrics>) {
    let metrics = Arc::new(IngestMetrics::default());
    let store = LakeStore::new(Arc::clone(lake));
    let engine = IngestEngine::new(store, Arc::clone(registry), opts, Arc::clone(&metrics));
    (engine, metrics)
}

/// A lake in memory with [`FIELD_DAYS`] ingested, and what that did.
async fn field_days() -> (Arc<dyn ObjectStore>, FileReport) {
    let lake = memory_lake();
    let report = ingest_file(&lake, FIELD_DAYS, "field-days.ndjson")
        .await
        .unwrap();
    (lake, report)
}

/// Ingest `text` as the NDJSON file `name` into `lake`, in segments of at
/// most 5000 rows.
async fn ingest_file(
    lake: &Arc<dyn ObjectStore>,
    text: &[u8],
    name: &str,
) -> gridstat_ingest::Result<FileReport> {
    let registry = Arc::new(Registry::jiangmen());
    let opts = IngestOptions {
        max_segment_rows: 5000,
        ..IngestOptions::default()
    };
    let (mut engine, _) = engine_on(lake, &registry, opts);
    ingest_ndjson(std::io::Cursor::new(text.to_vec()), name, &mut engine).await
}
