//! The checked-in field days, ingested: each line in its table with its
//! lineage, each rejected line in quarantine with its class and field,
//! and the partition's state committing every line.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::util::display::array_value_to_string;
use gridstat_ingest::LakeStore;
use gridstat_schemas::lake::{QUARANTINE, RAW_CASES, RAW_VISITS};
use gridstat_testkit::lake::{paths_under, read_parquet_under};
use object_store::ObjectStore;

use crate::{field_days, FIELD_DAYS};

/// The rows of `batches` as text, the named columns of each (a null is
/// `None`), sorted by the first.
fn rows(batches: &[RecordBatch], columns: &[&str]) -> Vec<Vec<Option<String>>> {
    let mut out: Vec<Vec<Option<String>>> = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let cell = |name: &&str| {
                let column = b.column_by_name(name).expect("a column of the table");
                let text = array_value_to_string(column, r).expect("displayable");
                (!column.is_null(r)).then_some(text)
            };
            out.push(columns.iter().map(cell).collect());
        }
    }
    out.sort_by_key(|row| row[0].as_deref().and_then(|o| o.parse::<i64>().ok()));
    out
}

/// The rows of the table under `prefix`: lineage (offset, topic,
/// partition), then `columns`.
async fn with_lineage(
    lake: &Arc<dyn ObjectStore>,
    prefix: &str,
    columns: &[&str],
) -> Vec<Vec<Option<String>>> {
    let mut all = vec!["source_offset", "source_topic", "source_partition"];
    all.extend(columns);
    rows(&read_parquet_under(lake, prefix).await, &all)
}

fn text(values: &[&str]) -> Vec<Option<String>> {
    values
        .iter()
        .map(|v| (!v.is_empty()).then(|| v.to_string()))
        .collect()
}

#[tokio::test]
async fn each_line_is_filed_in_its_table_with_its_lineage() {
    let (lake, report) = field_days().await;
    assert_eq!(report.lines, 12);
    assert_eq!(report.resumed_from, 0);
    // Four visits (one of them the resend) and two case updates.
    assert_eq!(report.rows_written, 6);
    assert_eq!(report.quarantined, 5);

    let topic = "file:field-days.ndjson";
    assert_eq!(
        with_lineage(
            &lake,
            RAW_VISITS,
            &["received_at", "submission_id", "grid_id"]
        )
        .await,
        [
            ["0", topic, "0", "", "fx-v-1", "44070300210101"],
            ["1", topic, "0", "", "fx-v-2", "44078100100101"],
            // The byte-identical resend is a raw row of its own:
            // deduplication is aggregate's.
            ["3", topic, "0", "", "fx-v-1", "44070300210101"],
            ["9", topic, "0", "", "fx-v-5", "44070300210101"],
        ]
        .map(|row| text(&row))
    );
    assert_eq!(
        with_lineage(&lake, RAW_CASES, &["received_at", "case_id", "status"]).await,
        [
            ["2", topic, "0", "", "hz-fx-1", "assigned"],
            ["10", topic, "0", "", "hs-fx-1", "resolved"],
        ]
        .map(|row| text(&row))
    );

    // Partitioned by the event's local day and the grid's county.
    let raw: BTreeSet<String> = paths_under(&lake, Some("raw"))
        .await
        .into_iter()
        .map(|p| p[..p.rfind('/').unwrap()].to_string())
        .collect();
    assert_eq!(
        raw.into_iter().collect::<Vec<_>>(),
        [
            "raw/cases/dt=2022-11-26/county=440703",
            "raw/cases/dt=2022-11-27/county=440703",
            "raw/visits/dt=2022-11-26/county=440703",
            "raw/visits/dt=2022-11-26/county=440781",
            "raw/visits/dt=2022-11-27/county=440703",
        ]
    );
}

#[tokio::test]
async fn each_rejected_line_is_quarantined_with_its_class_and_field() {
    let (lake, _) = field_days().await;
    let topic = "file:field-days.ndjson";
    assert_eq!(
        with_lineage(&lake, QUARANTINE, &["error_class", "error_field"]).await,
        [
            ["5", topic, "0", "malformed_json", ""],
            ["6", topic, "0", "unknown_grid", "grid_id"],
            ["7", topic, "0", "missing_field", "handler_id"],
            ["8", topic, "0", "bad_enum", "reporter_role"],
            ["11", topic, "0", "impossible_number", "residents_tested"],
        ]
        .map(|row| text(&row))
    );
    // Each keeps its line whole, to be read and sent again.
    let quarantine = read_parquet_under(&lake, QUARANTINE).await;
    let lines: Vec<&[u8]> = FIELD_DAYS.split(|b| *b == b'\n').collect();
    for b in &quarantine {
        let offsets = b.column_by_name("source_offset").unwrap();
        let raw = b.column_by_name("raw").unwrap();
        for r in 0..b.num_rows() {
            let offset: usize = array_value_to_string(offsets, r).unwrap().parse().unwrap();
            let kept = arrow::array::AsArray::as_binary::<i32>(raw.as_ref()).value(r);
            assert_eq!(kept, lines[offset], "line {offset}");
        }
    }
}

#[tokio::test]
async fn the_partition_state_commits_every_line_of_the_file() {
    let (lake, _) = field_days().await;
    let read = LakeStore::new(lake)
        .read_state("file:field-days.ndjson", 0)
        .await
        .unwrap();
    assert!(read.seq >= 1, "{read:?}");
    let state = read.state;
    assert_eq!(state.next_offset, 12, "the blank line is consumed too");
    assert_eq!(state.epoch, 1);
    assert_eq!(
        state
            .committed
            .iter()
            .map(|r| (r.epoch, r.from, r.to))
            .collect::<Vec<_>>(),
        [(1, 0, 12)]
    );
    let source = state.source.expect("a file source's identity");
    assert_eq!(source.len, FIELD_DAYS.len() as u64);
}
