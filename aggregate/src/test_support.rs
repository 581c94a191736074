//! Helpers shared by the unit tests: for those that compare a table built
//! outside SQL with the SQL it replaces, and a raw lake of a generated
//! campaign.

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;

/// A small deterministic generator (xorshift64), so that random cases are
/// the same on every run.
pub(crate) struct Random(u64);

impl Random {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Every row of `batches` as text, sorted. Each column is cast to strings;
/// floats print in their shortest round-trip form, so equal text means
/// equal bits.
pub(crate) fn sorted_rows(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
    let mut rows = Vec::new();
    for b in batches {
        let columns: Vec<_> = b
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8).expect("castable to text"))
            .collect();
        for r in 0..b.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|c| {
                        let c = c.as_string::<i32>();
                        (!arrow::array::Array::is_null(c, r)).then(|| c.value(r).to_string())
                    })
                    .collect(),
            );
        }
    }
    rows.sort();
    rows
}

/// Write the valid messages of the campaign `opts` generates over
/// `registry` into `store` as ingest would lay them out: one raw visits
/// and one raw cases object per day (the county partition is one for all).
pub(crate) async fn write_raw_lake(
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
    registry: &gridstat_schemas::Registry,
    opts: gridstat_schemas::generate::GenOptions,
) {
    use std::collections::BTreeMap;

    use gridstat_schemas::arrow_schema::{
        raw_cases_schema, raw_visits_schema, CaseBatchBuilder, Lineage, VisitBatchBuilder,
    };
    use gridstat_schemas::time::local_date;
    use gridstat_schemas::{decode_submission, DecodeOptions, Submission};

    let decode = DecodeOptions {
        campaign_start: opts.start,
        ..DecodeOptions::default()
    };
    let messages: Vec<_> = gridstat_schemas::generate::Generator::new(registry, opts).collect();
    let mut visits: BTreeMap<chrono::NaiveDate, VisitBatchBuilder> = BTreeMap::new();
    let mut cases: BTreeMap<chrono::NaiveDate, CaseBatchBuilder> = BTreeMap::new();
    for (offset, message) in messages.iter().enumerate() {
        let lineage = Lineage {
            topic: "file:campaign",
            partition: 0,
            offset: offset as i64,
            received_at: None,
        };
        match decode_submission(&message.bytes, registry, &decode, None) {
            Ok(Submission::Visit(v)) => visits
                .entry(local_date(&v.visited_at))
                .or_default()
                .append(&v, &lineage),
            Ok(Submission::Case(c)) => cases
                .entry(local_date(&c.updated_at))
                .or_default()
                .append(&c, &lineage),
            Err(_) => {}
        }
    }
    // One segment of every message, committed by the partition's state.
    let end = messages.len() as i64;
    let file = gridstat_schemas::lake::SegmentFile::new("file:campaign", 0, 0, end, 1).name();
    let path = |table: &str, day| {
        format!(
            "{table}/{}/county=all/{file}",
            gridstat_schemas::lake::dt_partition(day)
        )
    };
    let state = gridstat_schemas::lake::PartitionState::default()
        .taken_over("test")
        .with_segment(0, end)
        .expect("a segment from 0");
    let state_path = gridstat_schemas::lake::partition_state_object("file:campaign", 0, 2);
    object_store::ObjectStoreExt::put(
        store.as_ref(),
        &object_store::path::Path::from(state_path),
        serde_json::to_vec(&state).expect("state").into(),
    )
    .await
    .expect("state written");
    for (day, mut rows) in visits {
        let batch = rows.finish().expect("visits batch");
        let path = path(gridstat_schemas::lake::RAW_VISITS, day);
        crate::store::write_parquet(store, &path, raw_visits_schema(), &[batch])
            .await
            .expect("raw visits written");
    }
    for (day, mut rows) in cases {
        let batch = rows.finish().expect("cases batch");
        let path = path(gridstat_schemas::lake::RAW_CASES, day);
        crate::store::write_parquet(store, &path, raw_cases_schema(), &[batch])
            .await
            .expect("raw cases written");
    }
}
