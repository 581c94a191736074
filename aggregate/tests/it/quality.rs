//! The quality table's checks of the data: coverage above 100 %, case
//! updates of cases no visit opened and updates after a resolution; and
//! raw files from producers that predate `reporter_unit`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use chrono::{DateTime, FixedOffset, NaiveDate};
use gridstat_schemas::generate::{stale_registry, Expect, GeneratedMessage};
use gridstat_schemas::record::CaseStatus;
use gridstat_schemas::time::local_date;
use gridstat_schemas::{decode_submission, DecodeOptions, Registry, Submission};
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use crate::{aggregated, query, run, two_days};

/// `(day, class) → count` of one quality kind.
async fn quality_rows(lake: &Arc<dyn ObjectStore>, kind: &str) -> BTreeMap<(String, String), i64> {
    let sql = format!(
        "SELECT CAST(dt AS VARCHAR) AS dt, class, count FROM quality WHERE kind = '{kind}'"
    );
    let mut out = BTreeMap::new();
    for b in query(lake, &sql).await {
        let text = |i: usize| arrow::compute::cast(b.column(i), &DataType::Utf8).unwrap();
        let (days, classes) = (text(0), text(1));
        let counts = b.column(2).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            let key = (
                days.as_string::<i32>().value(r).to_string(),
                classes.as_string::<i32>().value(r).to_string(),
            );
            out.insert(key, counts.value(r));
        }
    }
    out
}

/// The valid first copies of the campaign's case updates.
fn case_updates(messages: &[GeneratedMessage]) -> Vec<(String, CaseStatus, DateTime<FixedOffset>)> {
    let registry = Registry::jiangmen();
    messages
        .iter()
        .filter(|m| m.expect == Expect::Valid)
        .filter_map(|m| {
            match decode_submission(&m.bytes, &registry, &DecodeOptions::default(), None) {
                Ok(Submission::Case(c)) => Some((c.case_id.to_string(), c.status, c.updated_at)),
                _ => None,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grids_visited_beyond_their_registered_households_are_flagged() {
    let (lake, report, _) = aggregated(two_days()).await;
    let last = report.rollup_days.last().unwrap().to_string();
    let flagged = quality_rows(&lake, "coverage_over_100").await;
    let registry = Registry::jiangmen();
    let stale = (0..registry.grids.len())
        .filter(|&g| stale_registry(g))
        .count() as i64;
    assert!(stale > 0);
    assert_eq!(flagged.get(&(last.clone(), "grid".into())), Some(&stale));
    // The same figure as the rollups say.
    let sql = format!(
        "SELECT COUNT(*) FROM rollups_cumulative WHERE level = 'grid' AND coverage > 1.0 AND dt = '{last}'"
    );
    let over = query(&lake, &sql).await[0]
        .column(0)
        .as_primitive::<Int64Type>()
        .value(0);
    assert_eq!(over, stale);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_of_unknown_cases_and_after_a_resolution_are_counted() {
    let (lake, _, messages) = aggregated(two_days()).await;
    let updates = case_updates(&messages);
    let known: HashSet<String> = messages
        .iter()
        .filter(|m| m.expect == Expect::Valid)
        .filter_map(|m| {
            let registry = Registry::jiangmen();
            match decode_submission(&m.bytes, &registry, &DecodeOptions::default(), None) {
                Ok(Submission::Visit(v)) => Some(
                    v.hardships
                        .iter()
                        .map(|h| h.case_id.to_string())
                        .chain(
                            v.hazards
                                .iter()
                                .filter(|h| !h.fixed_on_spot)
                                .map(|h| h.hazard_id.to_string()),
                        )
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            }
        })
        .flatten()
        .collect();
    let mut resolved: HashMap<&str, DateTime<FixedOffset>> = HashMap::new();
    for (case, status, at) in &updates {
        if *status == CaseStatus::Resolved {
            let first = resolved.entry(case).or_insert(*at);
            *first = (*first).min(*at);
        }
    }
    let mut unknown: BTreeMap<NaiveDate, i64> = BTreeMap::new();
    let mut after: BTreeMap<NaiveDate, i64> = BTreeMap::new();
    for (case, status, at) in &updates {
        if !known.contains(case) {
            *unknown.entry(local_date(at)).or_default() += 1;
        } else if *status != CaseStatus::Resolved
            && resolved.get(case.as_str()).is_some_and(|r| at > r)
        {
            *after.entry(local_date(at)).or_default() += 1;
        }
    }
    let per_day = |rows: BTreeMap<(String, String), i64>| -> BTreeMap<NaiveDate, i64> {
        let mut out = BTreeMap::new();
        for ((day, _), n) in rows {
            *out.entry(day.parse().unwrap()).or_default() += n;
        }
        out
    };
    assert!(
        !unknown.is_empty() && !after.is_empty(),
        "the campaign has both"
    );
    assert_eq!(
        per_day(quality_rows(&lake, "case_updates_unknown_case").await),
        unknown
    );
    assert_eq!(
        per_day(quality_rows(&lake, "case_updates_after_resolution").await),
        after
    );
}

/// `batch` without its `reporter_unit` column, as producers wrote it
/// before the field existed.
fn without_unit(batch: &RecordBatch) -> RecordBatch {
    let keep: Vec<usize> = (0..batch.num_columns())
        .filter(|&i| batch.schema().field(i).name() != "reporter_unit")
        .collect();
    batch.project(&keep).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_files_written_before_reporter_unit_read_as_without_one() {
    let (lake, _, _) = aggregated(two_days()).await;
    let units = "SELECT COUNT(*) FROM curated_visits WHERE reporter_unit IS NOT NULL";
    let count = |lake: Arc<dyn ObjectStore>| async move {
        query(&lake, units).await[0]
            .column(0)
            .as_primitive::<Int64Type>()
            .value(0)
    };
    assert!(count(Arc::clone(&lake)).await > 0, "the campaign has units");
    // Every raw visits file in the older layout, in a lake of its own.
    let fresh: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    // The raw files and the ingest state that commits them.
    let raw = gridstat_testkit::lake::paths_under(&lake, None)
        .await
        .into_iter()
        .filter(|p| p.starts_with("raw/") || p.starts_with("_ingest/"));
    for path in raw {
        let bytes = lake
            .get(&path.as_str().into())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let body = if path.starts_with("raw/visits/") {
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .unwrap()
                .build()
                .unwrap();
            let batches: Vec<RecordBatch> = reader.map(|b| without_unit(&b.unwrap())).collect();
            let mut out = Vec::new();
            let mut writer = ArrowWriter::try_new(&mut out, batches[0].schema(), None).unwrap();
            for b in &batches {
                writer.write(b).unwrap();
            }
            writer.close().unwrap();
            out.into()
        } else {
            bytes
        };
        fresh.put(&path.as_str().into(), body.into()).await.unwrap();
    }
    run(&fresh).await;
    assert_eq!(count(Arc::clone(&fresh)).await, 0);
    let visits = |lake: Arc<dyn ObjectStore>| async move {
        query(&lake, "SELECT COUNT(*) FROM curated_visits").await[0]
            .column(0)
            .as_primitive::<Int64Type>()
            .value(0)
    };
    assert_eq!(visits(Arc::clone(&fresh)).await, visits(lake).await);
}
