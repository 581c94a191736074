//! Lakes for tests: a raw lake written as ingest lays it out, and what a
//! lake holds read back without any stage's code.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use chrono::NaiveDate;
use futures::TryStreamExt;
use gridstat_schemas::arrow_schema::{
    raw_cases_schema, raw_visits_schema, CaseBatchBuilder, Lineage, VisitBatchBuilder,
};
use gridstat_schemas::generate::{GenOptions, GeneratedMessage, Generator};
use gridstat_schemas::lake::{
    dt_partition, partition_state_object, PartitionState, SegmentFile, RAW_CASES, RAW_VISITS,
};
use gridstat_schemas::{decode_placed, DecodeOptions, Registry, Submission};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

/// The topic of the raw lake [`write_raw_lake`] writes.
pub const RAW_TOPIC: &str = "file:campaign";

/// Write the valid messages of the campaign `opts` generates over
/// `registry` into `store` as ingest lays them out from one NDJSON file
/// ([`RAW_TOPIC`], partition 0, each message's index as its offset): one
/// segment, a raw visits and a raw cases file per day and county, and the
/// partition's state committing the segment. Invalid messages are left
/// out (no quarantine). Returns every generated message.
pub async fn write_raw_lake(
    store: &Arc<dyn ObjectStore>,
    registry: &Registry,
    opts: GenOptions,
) -> Vec<GeneratedMessage> {
    let decode = DecodeOptions {
        campaign_start: opts.start,
        ..DecodeOptions::default()
    };
    let messages: Vec<_> = Generator::new(registry, opts).collect();
    let mut visits: BTreeMap<(NaiveDate, &str), VisitBatchBuilder> = BTreeMap::new();
    let mut cases: BTreeMap<(NaiveDate, &str), CaseBatchBuilder> = BTreeMap::new();
    for (offset, message) in messages.iter().enumerate() {
        let lineage = Lineage {
            topic: RAW_TOPIC,
            partition: 0,
            offset: offset as i64,
            received_at: None,
        };
        let Ok(placed) = decode_placed(&message.bytes, registry, &decode, None) else {
            continue;
        };
        let county = registry.counties[registry.grids[placed.grid].county]
            .code
            .as_str();
        let at = (placed.day, county);
        match &placed.submission {
            Submission::Visit(v) => visits.entry(at).or_default().append(v, &lineage),
            Submission::Case(c) => cases.entry(at).or_default().append(c, &lineage),
        }
    }
    let end = messages.len() as i64;
    let file = SegmentFile::new(RAW_TOPIC, 0, 0, end, 1).name();
    let path = |table: &str, (day, county): (NaiveDate, &str)| {
        format!("{table}/{}/county={county}/{file}", dt_partition(day))
    };
    for (at, mut rows) in visits {
        let batch = rows.finish().expect("a visits batch");
        put_parquet(store, &path(RAW_VISITS, at), raw_visits_schema(), &batch).await;
    }
    for (at, mut rows) in cases {
        let batch = rows.finish().expect("a cases batch");
        put_parquet(store, &path(RAW_CASES, at), raw_cases_schema(), &batch).await;
    }
    let state = PartitionState::default()
        .taken_over("testkit")
        .with_segment(0, end)
        .expect("a segment from 0");
    let state_path = Path::from(partition_state_object(RAW_TOPIC, 0, 1));
    let body = serde_json::to_vec(&state).expect("a state as JSON");
    store
        .put(&state_path, body.into())
        .await
        .expect("the partition state written");
    messages
}

async fn put_parquet(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    schema: SchemaRef,
    batch: &RecordBatch,
) {
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, None).expect("a Parquet writer");
    writer.write(batch).expect("a batch of the schema");
    writer.close().expect("a Parquet footer");
    store
        .put(&Path::from(path), bytes.into())
        .await
        .expect("a Parquet object written");
}

/// Paths of the objects under `prefix` (`None`: the whole lake), sorted.
pub async fn paths_under(store: &Arc<dyn ObjectStore>, prefix: Option<&str>) -> Vec<String> {
    let prefix = prefix.map(Path::from);
    let listed: Vec<_> = store
        .list(prefix.as_ref())
        .try_collect()
        .await
        .expect("a listing");
    let mut paths: Vec<String> = listed.into_iter().map(|m| m.location.to_string()).collect();
    paths.sort();
    paths
}

/// The rows of every Parquet file under `prefix`, file by file in path
/// order (committed or not: for lakes no write was lost from).
pub async fn read_parquet_under(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for path in paths_under(store, Some(prefix)).await {
        if !path.ends_with(".parquet") {
            continue;
        }
        let object = store.get(&Path::from(path)).await.expect("a listed object");
        let bytes = object.bytes().await.expect("its bytes");
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .expect("a Parquet file")
            .build()
            .expect("a reader");
        for batch in reader {
            batches.push(batch.expect("a readable batch"));
        }
    }
    batches
}

/// The segments written per partition, by their start, from the lake's
/// file names.
pub async fn segments_per_partition(store: &Arc<dyn ObjectStore>) -> BTreeMap<i32, BTreeSet<i64>> {
    let mut segments: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    for path in paths_under(store, None).await {
        if let Some(segment) = SegmentFile::parse(&path) {
            segments
                .entry(segment.partition)
                .or_default()
                .insert(segment.start);
        }
    }
    segments
}
