//! Pure code: routing records to files, object names, Parquet encoding.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::compute::{lexsort_to_indices, take_record_batch, SortColumn};
use bytes::Bytes;
use chrono::NaiveDate;
use gridstat_schemas::lake::{dt_partition, topic_slug, QUARANTINE, RAW_CASES, RAW_VISITS};
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{Error, Result};

/// The three tables ingest writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// `raw/visits`.
    Visits,
    /// `raw/cases`.
    Cases,
    /// `quarantine`.
    Quarantine,
}

/// Where a record goes: table, local date and (for raw tables) county.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey {
    /// The table.
    pub table: Table,
    /// `dt` partition (local date of the event; of receipt for quarantine).
    pub dt: NaiveDate,
    /// `county` partition code (empty for quarantine).
    pub county: String,
}

/// The object a segment's records for `key` are written to. Deterministic
/// from (topic, partition, first offset of the segment), so a replay of the
/// same segment overwrites instead of duplicating.
pub fn object_key(key: &FileKey, topic: &str, partition: i32, segment_start: i64) -> Path {
    let file = format!(
        "part-{}-p{partition:04}-o{segment_start:020}.parquet",
        topic_slug(topic)
    );
    let dt = dt_partition(key.dt);
    let path = match key.table {
        Table::Visits => format!("{RAW_VISITS}/{dt}/county={}/{file}", key.county),
        Table::Cases => format!("{RAW_CASES}/{dt}/county={}/{file}", key.county),
        Table::Quarantine => format!("{QUARANTINE}/{dt}/{file}"),
    };
    Path::from(path)
}

/// Writer settings data teams like: zstd, page statistics, bounded row groups.
pub fn writer_properties(row_group_rows: usize, zstd_level: i32) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(zstd_level).unwrap_or_default(),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .set_created_by(format!("gridstat {}", env!("CARGO_PKG_VERSION")))
        // Unique per row: a dictionary only costs time before it falls back.
        .set_column_dictionary_enabled("submission_id".into(), false)
        .build()
}

/// Sort a raw batch by grid (then by source offset, keeping arrival order
/// within a grid) and encode it as one Parquet file.
pub fn encode_parquet(batch: &RecordBatch, props: WriterProperties) -> Result<Bytes> {
    let encode_err = |source: Box<dyn std::error::Error + Send + Sync>| Error::Encode {
        what: "a Parquet file".into(),
        source,
    };
    let sorted = sort_by_grid(batch).map_err(|e| encode_err(Box::new(e)))?;
    let mut out = Vec::with_capacity(64 * 1024);
    let mut writer = ArrowWriter::try_new(&mut out, sorted.schema(), Some(props))
        .map_err(|e| encode_err(Box::new(e)))?;
    writer.write(&sorted).map_err(|e| encode_err(Box::new(e)))?;
    writer.close().map_err(|e| encode_err(Box::new(e)))?;
    Ok(Bytes::from(out))
}

fn sort_by_grid(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    let schema = batch.schema();
    let Ok(grid_idx) = schema.index_of("grid_id") else {
        return Ok(batch.clone()); // quarantine: kept in arrival order
    };
    let offset_idx = schema.index_of("source_offset")?;
    let grid = batch.column(grid_idx);
    if let Some(strings) = grid.as_any().downcast_ref::<StringArray>() {
        if strings.len() < 2 || is_sorted(strings) {
            return Ok(batch.clone());
        }
    }
    let columns = [
        SortColumn {
            values: Arc::clone(grid),
            options: None,
        },
        SortColumn {
            values: Arc::clone(batch.column(offset_idx)),
            options: None,
        },
    ];
    let indices = lexsort_to_indices(&columns, None)?;
    take_record_batch(batch, &indices)
}

fn is_sorted(a: &StringArray) -> bool {
    (1..a.len()).all(|i| a.value(i - 1) <= a.value(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_are_hive_partitioned_and_deterministic() {
        let key = FileKey {
            table: Table::Visits,
            dt: NaiveDate::from_ymd_opt(2022, 11, 25).unwrap(),
            county: "440781".into(),
        };
        let p = object_key(&key, "grid.visits.v1", 3, 1200);
        assert_eq!(p.as_ref(), "raw/visits/dt=2022-11-25/county=440781/part-grid_visits_v1-p0003-o00000000000000001200.parquet");
        assert_eq!(p, object_key(&key, "grid.visits.v1", 3, 1200));
        let q = FileKey {
            table: Table::Quarantine,
            county: String::new(),
            ..key
        };
        assert_eq!(
            object_key(&q, "t", 0, 0).as_ref(),
            "quarantine/dt=2022-11-25/part-t-p0000-o00000000000000000000.parquet"
        );
    }
}
