//! The open segment of one source partition: decoded records appended to
//! one Arrow builder per output file (table × dt × county) as they come.
//!
//! Each raw row also keeps its grid's rank in id order; at flush the file
//! is put in grid order by a stable sort of those ranks and one `take`.
//! (Keeping the decoded records until the flush instead, to append them
//! already sorted, was slower: reading them back cold from the heap and
//! freeing them on another thread cost more than the `take`.)

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, RecordBatch, UInt32Array};
use arrow::buffer::OffsetBuffer;
use arrow::compute::take;
use chrono::NaiveDate;
use gridstat_schemas::arrow_schema::{
    CaseBatchBuilder, Lineage, QuarantineBatchBuilder, QuarantineRow, VisitBatchBuilder,
};
use gridstat_schemas::time::local_date;
use gridstat_schemas::{DecodeError, Placed, Registry, Submission};

use crate::encode::{FileKey, Table};

/// Each registry grid's rank in the order of grid ids.
#[derive(Debug, Clone)]
pub(crate) struct GridRanks(Vec<u32>);

impl GridRanks {
    pub(crate) fn new(registry: &Registry) -> Self {
        let mut by_id: Vec<usize> = (0..registry.grids.len()).collect();
        by_id.sort_by(|&a, &b| registry.grids[a].id.cmp(&registry.grids[b].id));
        let mut ranks = vec![0; by_id.len()];
        for (rank, grid) in by_id.into_iter().enumerate() {
            ranks[grid] = u32::try_from(rank).unwrap_or(u32::MAX);
        }
        Self(ranks)
    }
}

/// Boxed: a builder holds dozens of column builders, a segment a hundred files.
enum Builder {
    Visits(Box<VisitBatchBuilder>),
    Cases(Box<CaseBatchBuilder>),
    Quarantine(Box<QuarantineBatchBuilder>),
}

/// One output file of the segment. `county` is the registry's index, so
/// finding the file of a record compares integers, not codes.
pub(crate) struct OpenFile {
    table: Table,
    dt: NaiveDate,
    county: Option<usize>,
    key: FileKey,
    builder: Builder,
    /// Grid rank of each raw row, in append (offset) order.
    grid_ranks: Vec<u32>,
}

/// Records of offsets `[start, end)` of one partition, not yet in the lake.
pub(crate) struct Segment {
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) opened_at: std::time::Instant,
    pub(crate) rows: usize,
    pub(crate) bytes: usize,
    files: Vec<OpenFile>,
    /// For each table × county, the index in `files` of its last record's
    /// file: records of one day come in runs, so this usually finds the
    /// file without scanning the segment's hundred or so.
    recent: Vec<usize>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("rows", &self.rows)
            .finish()
    }
}

/// How one record was filed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filed {
    Visit,
    Case,
    Quarantined(gridstat_schemas::ErrorClass),
}

/// Tables a segment files into (visits, cases, quarantine).
const TABLES: usize = 3;

/// Bytes a buffered record is counted as beyond its message size: Arrow
/// offsets, lineage columns and its grid rank.
pub(crate) const ROW_OVERHEAD_BYTES: usize = 200;

impl Segment {
    pub(crate) fn new(start: i64, now: std::time::Instant) -> Self {
        Self {
            start,
            end: start,
            opened_at: now,
            rows: 0,
            bytes: 0,
            files: Vec::new(),
            recent: Vec::new(),
        }
    }

    /// The open file of a record: the table × county's last one if it is
    /// of the same day, else found by a scan (or opened).
    fn file(
        &mut self,
        table: Table,
        dt: NaiveDate,
        county: Option<usize>,
        registry: &Registry,
    ) -> &mut OpenFile {
        let slot = county.map_or(0, |c| c + 1) * TABLES + table as usize;
        if let Some(&i) = self.recent.get(slot) {
            // `i` indexes `files`, which only grows; usize::MAX is no file yet.
            if self
                .files
                .get(i)
                .is_some_and(|f| f.dt == dt && f.table == table && f.county == county)
            {
                return &mut self.files[i];
            }
        }
        let found = self
            .files
            .iter()
            .position(|f| f.table == table && f.dt == dt && f.county == county);
        let i = found.unwrap_or_else(|| {
            let code = county.map_or_else(String::new, |c| registry.counties[c].code.clone());
            self.files.push(OpenFile {
                table,
                dt,
                county,
                key: FileKey {
                    table,
                    dt,
                    county: code,
                },
                builder: match table {
                    Table::Visits => Builder::Visits(Box::default()),
                    Table::Cases => Builder::Cases(Box::default()),
                    Table::Quarantine => Builder::Quarantine(Box::default()),
                },
                grid_ranks: Vec::new(),
            });
            self.files.len() - 1
        });
        if self.recent.len() <= slot {
            self.recent.resize(slot + 1, usize::MAX);
        }
        self.recent[slot] = i;
        &mut self.files[i]
    }

    /// File a valid record under its event's local day.
    pub(crate) fn add_valid(
        &mut self,
        placed: &Placed<'_>,
        registry: &Registry,
        ranks: &GridRanks,
        lineage: &Lineage<'_>,
        size: usize,
    ) -> Filed {
        let s = &placed.submission;
        let county = registry.grids[placed.grid].county;
        let grid_rank = ranks.0[placed.grid];
        let dt = placed.day;
        let filed = match s {
            Submission::Visit(v) => {
                let file = self.file(Table::Visits, dt, Some(county), registry);
                if let Builder::Visits(b) = &mut file.builder {
                    b.append(v, lineage);
                    file.grid_ranks.push(grid_rank);
                }
                Filed::Visit
            }
            Submission::Case(c) => {
                let file = self.file(Table::Cases, dt, Some(county), registry);
                if let Builder::Cases(b) = &mut file.builder {
                    b.append(c, lineage);
                    file.grid_ranks.push(grid_rank);
                }
                Filed::Case
            }
        };
        self.count(lineage.offset, size);
        filed
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_rejected(
        &mut self,
        err: &DecodeError,
        lineage: &Lineage<'_>,
        fallback_day: NaiveDate,
        key: Option<&[u8]>,
        payload: &[u8],
        raw_limit: usize,
        registry: &Registry,
    ) -> Filed {
        let dt = lineage
            .received_at
            .map(|t| local_date(&t))
            .unwrap_or(fallback_day);
        let class = err.class();
        let row = QuarantineRow {
            lineage: lineage.clone(),
            key: key.map(|k| String::from_utf8_lossy(k).into_owned()),
            error_class: class.as_str(),
            error_field: err.field(),
            error_message: err.to_string(),
            raw: &payload[..payload.len().min(raw_limit)],
            raw_size: payload.len(),
        };
        if let Builder::Quarantine(b) =
            &mut self.file(Table::Quarantine, dt, None, registry).builder
        {
            b.append(&row);
        }
        self.count(lineage.offset, payload.len().min(raw_limit));
        Filed::Quarantined(class)
    }

    /// Mark an offset consumed without a row (e.g. an empty line).
    pub(crate) fn skip(&mut self, offset: i64) {
        self.end = self.end.max(offset + 1);
    }

    fn count(&mut self, offset: i64, size: usize) {
        self.rows += 1;
        self.bytes += size + ROW_OVERHEAD_BYTES;
        self.end = self.end.max(offset + 1);
    }

    /// The segment's files, in file-key order, each to be finished on its own.
    pub(crate) fn into_files(self) -> Vec<OpenFile> {
        let mut files = self.files;
        files.sort_by(|a, b| a.key.cmp(&b.key));
        files
    }
}

impl OpenFile {
    /// The file's key and rows. Raw rows are sorted by grid; the sort is
    /// stable and rows were appended in offset order, so within a grid they
    /// stay in offset order. Quarantine rows stay in arrival order.
    pub(crate) fn finish(self) -> Result<(FileKey, RecordBatch), arrow::error::ArrowError> {
        let batch = match self.builder {
            Builder::Visits(mut b) => in_grid_order(&b.finish()?, &self.grid_ranks)?,
            Builder::Cases(mut b) => in_grid_order(&b.finish()?, &self.grid_ranks)?,
            Builder::Quarantine(mut b) => b.finish()?,
        };
        Ok((self.key, batch))
    }
}

fn in_grid_order(
    batch: &RecordBatch,
    grid_ranks: &[u32],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    if grid_ranks.is_sorted() {
        return Ok(batch.clone());
    }
    let order = UInt32Array::from(stable_order(grid_ranks));
    let columns = batch
        .columns()
        .iter()
        .map(|column| match column.as_list_opt::<i32>() {
            Some(list) if list.null_count() == 0 => take_list(list, &order),
            _ => take(column, &order, None),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(batch.schema(), columns)
}

/// The row order that sorts `ranks` stably, by counting: ranks are grid
/// ranks, a few thousand at most, so one pass to count and one to place
/// cost a tenth of a comparison sort.
fn stable_order(ranks: &[u32]) -> Vec<u32> {
    let (Some(&low), Some(&high)) = (ranks.iter().min(), ranks.iter().max()) else {
        return Vec::new();
    };
    let bucket = |rank: u32| (rank - low) as usize;
    // next[b]: where the next row of bucket b goes.
    let mut next = vec![0u32; bucket(high) + 1];
    for &rank in ranks {
        next[bucket(rank)] += 1;
    }
    let mut start = 0;
    for slot in &mut next {
        (*slot, start) = (start, start + *slot);
    }
    let mut order = vec![0u32; ranks.len()];
    for (row, &rank) in (0u32..).zip(ranks) {
        let slot = &mut next[bucket(rank)];
        order[*slot as usize] = row;
        *slot += 1;
    }
    order
}

/// `take` of a list column without nulls, by one `take` of its values.
/// Arrow's own copies each row's values through `MutableArrayData`, which
/// for the lists of structs (hazards, hardships) cost half the sort's time.
fn take_list(list: &ListArray, order: &UInt32Array) -> Result<ArrayRef, arrow::error::ArrowError> {
    let (field, offsets, values, _) = list.clone().into_parts();
    let mut value_order = Vec::with_capacity(values.len());
    let mut lengths = Vec::with_capacity(order.len());
    for &row in order.values() {
        let (start, end) = (offsets[row as usize], offsets[row as usize + 1]);
        // Offsets of a valid list are non-negative and within i32.
        value_order.extend(start as u32..end as u32);
        lengths.push((end - start) as usize);
    }
    let values = take(&values, &UInt32Array::from(value_order), None)?;
    Ok(Arc::new(ListArray::try_new(
        field,
        OffsetBuffer::from_lengths(lengths),
        values,
        None,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ListBuilder, StringBuilder, StructBuilder};
    use arrow::compute::take_record_batch;
    use arrow::datatypes::{DataType, Field, Fields};

    proptest::proptest! {
        /// The counting sort orders as a stable comparison sort does.
        #[test]
        fn stable_order_is_a_stable_sort(ranks in proptest::collection::vec(0u32..40, 0..300)) {
            let mut expected: Vec<u32> = (0..ranks.len() as u32).collect();
            expected.sort_by_key(|&row| ranks[row as usize]);
            proptest::prop_assert_eq!(stable_order(&ranks), expected);
        }
    }

    /// The own list `take` gives what Arrow's does, lists of strings and
    /// of structs, empty lists included.
    #[test]
    fn grid_order_equals_arrows_take() {
        let fields = Fields::from(vec![Field::new("id", DataType::Utf8, true)]);
        let mut strings = ListBuilder::new(StringBuilder::new());
        let mut structs = ListBuilder::new(StructBuilder::from_fields(fields, 0));
        let mut ids = StringBuilder::new();
        let ranks = [3u32, 1, 2, 1, 0, 3, 2];
        for row in 0..ranks.len() {
            ids.append_value(format!("row-{row}"));
            for item in 0..row % 3 {
                strings.values().append_value(format!("s{row}.{item}"));
                let s = structs.values();
                s.field_builder::<StringBuilder>(0)
                    .expect("id")
                    .append_option((item != 1).then(|| format!("h{row}.{item}")));
                s.append(true);
            }
            strings.append(true);
            structs.append(true);
        }
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(ids.finish()) as ArrayRef),
            ("strings", Arc::new(strings.finish())),
            ("structs", Arc::new(structs.finish())),
        ])
        .unwrap();
        let sorted = in_grid_order(&batch, &ranks).unwrap();
        let expected =
            take_record_batch(&batch, &UInt32Array::from(vec![4, 1, 3, 2, 6, 0, 5])).unwrap();
        assert_eq!(sorted, expected);
    }
}
