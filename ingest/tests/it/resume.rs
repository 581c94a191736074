//! Ingesting a file again: the lake says where to resume, and only the
//! same input (or the same grown by appended lines) may resume there.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use gridstat_ingest::{Error, LakeStore};
use gridstat_schemas::lake::{INGEST_STATE, QUARANTINE, RAW_CASES, RAW_VISITS};
use gridstat_testkit::campaign::{messages, mixed, ndjson};
use gridstat_testkit::lake::{paths_under, read_parquet_under};
use object_store::{ObjectStore, ObjectStoreExt};

use crate::{field_days, ingest_file, memory_lake, FIELD_DAYS};

/// Every object of the lake but the partition states, with its bytes.
async fn data_objects(lake: &Arc<dyn ObjectStore>) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for path in paths_under(lake, None).await {
        if path.starts_with(INGEST_STATE) {
            continue;
        }
        let object = lake.get(&path.as_str().into()).await.unwrap();
        out.insert(path, object.bytes().await.unwrap().to_vec());
    }
    out
}

#[tokio::test]
async fn a_second_run_of_the_same_file_resumes_at_its_end_and_writes_nothing() {
    let (lake, _) = field_days().await;
    let before = data_objects(&lake).await;
    assert!(before.len() > 5, "{:?}", before.keys());
    let again = ingest_file(&lake, FIELD_DAYS, "field-days.ndjson")
        .await
        .unwrap();
    assert_eq!(again.resumed_from, 12);
    assert_eq!((again.rows_written, again.quarantined), (0, 0));
    assert_eq!(data_objects(&lake).await, before, "nothing written");
    let state = LakeStore::new(Arc::clone(&lake))
        .read_state("file:field-days.ndjson", 0)
        .await
        .unwrap()
        .state;
    assert_eq!(state.next_offset, 12);
}

#[tokio::test]
async fn another_input_under_the_same_name_is_refused_and_a_grown_one_resumes() {
    let (lake, _) = field_days().await;
    let before = data_objects(&lake).await;
    // The same lines but the first: another file.
    let other = &FIELD_DAYS[FIELD_DAYS.iter().position(|b| *b == b'\n').unwrap() + 1..];
    let err = ingest_file(&lake, other, "field-days.ndjson")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::OtherSource { topic, .. } if topic == "file:field-days.ndjson"),
        "{err}"
    );
    assert!(err.to_string().contains("--source-id"), "{err}");
    assert_eq!(data_objects(&lake).await, before, "nothing written");

    // The same file with a line appended resumes at that line.
    let mut grown = FIELD_DAYS.to_vec();
    grown.extend_from_slice(FIELD_DAYS.split(|b| *b == b'\n').next().unwrap());
    grown.push(b'\n');
    let report = ingest_file(&lake, &grown, "field-days.ndjson")
        .await
        .unwrap();
    assert_eq!((report.resumed_from, report.lines), (12, 13));
    assert_eq!(report.rows_written, 1);
}

/// Every line's offset, per table, as the lake holds them.
async fn offsets_in(lake: &Arc<dyn ObjectStore>) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for (table, prefix) in [
        ("cases", RAW_CASES),
        ("quarantine", QUARANTINE),
        ("visits", RAW_VISITS),
    ] {
        let mut offsets = Vec::new();
        for b in read_parquet_under(lake, prefix).await {
            let column = b.column_by_name("source_offset").unwrap();
            offsets.extend(column.as_primitive::<Int64Type>().values().iter().copied());
        }
        offsets.sort_unstable();
        out.extend(offsets.into_iter().map(|o| (table.to_string(), o)));
    }
    out
}

/// A file ingested again after an interrupted run resumes at the first
/// line the lake lacks: the lines before are skipped undecoded, and the
/// lake ends up holding every line once, as a single run leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_ingested_again_resumes_where_the_lake_stops() {
    let msgs = messages(mixed());
    let (once, twice) = (memory_lake(), memory_lake());
    let single = ingest_file(&once, &ndjson(&msgs), "c.ndjson")
        .await
        .unwrap();
    // The interrupted run got the first 60% of the lines into the lake.
    let cut = msgs.len() * 3 / 5;
    let first = ingest_file(&twice, &ndjson(&msgs[..cut]), "c.ndjson")
        .await
        .unwrap();
    assert_eq!(first.lines, cut as u64);
    let second = ingest_file(&twice, &ndjson(&msgs), "c.ndjson")
        .await
        .unwrap();
    assert_eq!(second.resumed_from, cut as i64);
    assert_eq!(second.lines, msgs.len() as u64);
    assert_eq!(
        first.rows_written + second.rows_written,
        single.rows_written
    );
    assert_eq!(first.quarantined + second.quarantined, single.quarantined);
    let all = offsets_in(&once).await;
    assert_eq!(all.len(), msgs.len());
    assert_eq!(offsets_in(&twice).await, all);
}
