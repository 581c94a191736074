//! Arrow schemas of the lake's raw tables, and builders that turn decoded
//! records into record batches.
//!
//! Nested parts stay nested: `hazards` and `hardships` are `list<struct>`
//! columns, so one raw row is exactly one submission (what exactly-once
//! writing and deduplication reason about). Counts derived from them
//! (`hazards_found`, …) are stored beside them so that simple queries need
//! no `unnest`. Unsigned counts are stored as signed `int32` because Spark
//! has no unsigned types. See `docs/schema.md`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Int32Builder, Int64Builder, ListArray, ListBuilder,
    PrimitiveArray, RecordBatch, StringArray, StringBuilder, StructBuilder,
    TimestampMillisecondArray, TimestampMillisecondBuilder,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Fields, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit,
    TimestampMillisecondType,
};
use arrow::error::ArrowError;
use chrono::{DateTime, FixedOffset};

use crate::record::{CaseUpdate, Visit};

/// Time zone stored with every timestamp column (Asia/Shanghai's offset).
pub const TZ: &str = "+08:00";

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(TZ.into()))
}

fn hazard_fields() -> Fields {
    Fields::from(vec![
        Field::new("hazard_id", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("fixed_on_spot", DataType::Boolean, false),
    ])
}

fn hardship_fields() -> Fields {
    Fields::from(vec![
        Field::new("case_id", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("urgency", DataType::Utf8, false),
        Field::new("note", DataType::Utf8, false),
    ])
}

fn list_of(dt: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", dt, true)))
}

fn lineage_fields() -> Vec<Field> {
    vec![
        Field::new("source_topic", DataType::Utf8, false),
        Field::new("source_partition", DataType::Int32, false),
        Field::new("source_offset", DataType::Int64, false),
        Field::new("received_at", ts(), true),
    ]
}

/// Schema of `raw/visits` files (partition columns `dt`, `county` are in the path only).
pub fn raw_visits_schema() -> SchemaRef {
    let i32f = |n: &str| Field::new(n, DataType::Int32, false);
    let mut fields = vec![
        Field::new("submission_id", DataType::Utf8, false),
        Field::new("sent_at", ts(), false),
        Field::new("visited_at", ts(), false),
        Field::new("reporter_id", DataType::Utf8, false),
        Field::new("reporter_role", DataType::Utf8, false),
        Field::new("grid_id", DataType::Utf8, false),
        Field::new("target_kind", DataType::Utf8, false),
        Field::new("target_id", DataType::Utf8, false),
        i32f("residents_recorded"),
        i32f("residents_present"),
        i32f("newcomers_registered"),
        i32f("residents_tested"),
        i32f("residents_vaccinated"),
        Field::new("special_groups", list_of(DataType::Utf8), false),
        Field::new("safety_checks", list_of(DataType::Utf8), false),
        Field::new("hazards", list_of(DataType::Struct(hazard_fields())), false),
        Field::new(
            "hardships",
            list_of(DataType::Struct(hardship_fields())),
            false,
        ),
        i32f("enlisted_building_leads"),
        i32f("enlisted_volunteers"),
        i32f("hazards_found"),
        i32f("hazards_fixed_on_spot"),
        i32f("hardships_raised"),
        // Optional, and last of the visit's columns: files written before
        // it existed read as a null here.
        Field::new("reporter_unit", DataType::Utf8, true),
    ];
    fields.extend(lineage_fields());
    Arc::new(Schema::new(fields))
}

/// Schema of `raw/cases` files.
pub fn raw_cases_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("submission_id", DataType::Utf8, false),
        Field::new("sent_at", ts(), false),
        Field::new("case_id", DataType::Utf8, false),
        Field::new("case_kind", DataType::Utf8, false),
        Field::new("grid_id", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("updated_at", ts(), false),
        Field::new("handler_id", DataType::Utf8, false),
    ];
    fields.extend(lineage_fields());
    Arc::new(Schema::new(fields))
}

/// Schema of `quarantine` files.
pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source_topic", DataType::Utf8, false),
        Field::new("source_partition", DataType::Int32, false),
        Field::new("source_offset", DataType::Int64, false),
        Field::new("message_key", DataType::Utf8, true),
        Field::new("message_timestamp", ts(), true),
        Field::new("error_class", DataType::Utf8, false),
        Field::new("error_field", DataType::Utf8, true),
        Field::new("error_message", DataType::Utf8, false),
        Field::new("raw_size", DataType::Int64, false),
        Field::new("raw_truncated", DataType::Boolean, false),
        Field::new("raw", DataType::Binary, false),
    ]))
}

/// Where a record came from: topic (or file), partition, offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage<'a> {
    /// Kafka topic, or `file:NAME` for the embedded source.
    pub topic: &'a str,
    /// Kafka partition (0 for a file).
    pub partition: i32,
    /// Kafka offset (line number − 1 for a file).
    pub offset: i64,
    /// Transport timestamp, if any.
    pub received_at: Option<DateTime<FixedOffset>>,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

struct LineageBuilder {
    topic: StrColumn,
    partition: Column<Int32Type>,
    offset: Column<Int64Type>,
    received_at: TimestampMillisecondBuilder,
}

impl LineageBuilder {
    fn new() -> Self {
        Self {
            topic: StrColumn::new(),
            partition: Column::new(),
            offset: Column::new(),
            received_at: ts_builder(),
        }
    }
    fn append(&mut self, l: &Lineage<'_>) {
        self.topic.push(l.topic);
        self.partition.push(l.partition);
        self.offset.push(l.offset);
        self.received_at
            .append_option(l.received_at.map(|t| t.timestamp_millis()));
    }
    fn finish(&mut self, cols: &mut Vec<ArrayRef>) -> Result<(), ArrowError> {
        cols.push(Arc::new(self.topic.finish()?));
        cols.push(Arc::new(self.partition.finish()));
        cols.push(Arc::new(self.offset.finish()));
        cols.push(Arc::new(self.received_at.finish()));
        Ok(())
    }
}

fn ts_builder() -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::new().with_timezone(TZ)
}

/// A primitive column without nulls. Appending is a `Vec::push` that the
/// compiler inlines, where Arrow's builder is a call that also counts
/// validity (25 instructions a value, 2 % of an ingest's); finishing hands
/// the vector to the array without a copy.
struct Column<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
}

impl<T: ArrowPrimitiveType> Column<T> {
    /// Arrow's builders start at 1024 values too.
    fn new() -> Self {
        Self {
            values: Vec::with_capacity(1024),
        }
    }

    fn push(&mut self, value: T::Native) {
        self.values.push(value);
    }

    fn finish(&mut self) -> PrimitiveArray<T> {
        PrimitiveArray::new(std::mem::take(&mut self.values).into(), None)
    }
}

/// The `i32` end offsets of a string or list column's values, starting
/// at 0. An end past `i32::MAX` is kept saturated; [`finish`](Self::finish)
/// then fails, as the final length says so (ends only grow).
struct Offsets(Vec<i32>);

impl Offsets {
    fn new() -> Self {
        let mut ends = Vec::with_capacity(1025);
        ends.push(0);
        Self(ends)
    }

    fn push(&mut self, end: usize) {
        self.0.push(i32::try_from(end).unwrap_or(i32::MAX));
    }

    /// Values appended so far.
    fn len(&self) -> usize {
        self.0.len() - 1
    }

    /// The offsets over `values` values (or bytes); reset for the next batch.
    fn finish(&mut self, values: usize) -> Result<OffsetBuffer<i32>, ArrowError> {
        let ends = std::mem::replace(&mut self.0, vec![0]);
        if i32::try_from(values).is_err() {
            return Err(ArrowError::OffsetOverflowError(values));
        }
        Ok(OffsetBuffer::new(ScalarBuffer::from(ends)))
    }
}

/// A string column without nulls, appended as [`Column`] is: bytes and an
/// offset pushed inline, where Arrow's builder is a call that also counts
/// validity. The bytes come from `&str`s, so finishing does not check them
/// as UTF-8 again (that check cost what the inline appends saved).
struct StrColumn {
    bytes: Vec<u8>,
    offsets: Offsets,
}

impl StrColumn {
    fn new() -> Self {
        Self {
            bytes: Vec::with_capacity(1024),
            offsets: Offsets::new(),
        }
    }

    fn push(&mut self, value: &str) {
        self.bytes.extend_from_slice(value.as_bytes());
        self.offsets.push(self.bytes.len());
    }

    fn finish(&mut self) -> Result<StringArray, ArrowError> {
        let bytes = std::mem::take(&mut self.bytes);
        let offsets = self.offsets.finish(bytes.len())?;
        // SAFETY: the bytes are `&str`s appended whole, so they are valid
        // UTF-8 and every offset (each one's end) is a character boundary;
        // offsets start at 0, never decrease (`OffsetBuffer::new` checks),
        // and the last is the bytes' length, which fits `i32`.
        #[allow(unsafe_code)]
        Ok(unsafe { StringArray::new_unchecked(offsets, Buffer::from_vec(bytes), None) })
    }
}

/// A column of lists of strings, without nulls at either level, appended
/// inline like [`StrColumn`] (the raw tables' enum lists).
struct StrListColumn {
    items: StrColumn,
    offsets: Offsets,
}

impl StrListColumn {
    fn new() -> Self {
        Self {
            items: StrColumn::new(),
            offsets: Offsets::new(),
        }
    }

    /// Append one row: a list of `items`.
    fn push<'s>(&mut self, items: impl IntoIterator<Item = &'s str>) {
        for item in items {
            self.items.push(item);
        }
        self.offsets.push(self.items.offsets.len());
    }

    fn finish(&mut self) -> Result<ListArray, ArrowError> {
        let offsets = self.offsets.finish(self.items.offsets.len())?;
        ListArray::try_new(
            Arc::new(Field::new("item", DataType::Utf8, true)),
            offsets,
            Arc::new(self.items.finish()?),
            None,
        )
    }
}

/// A timestamp column without nulls, in the lake's time zone.
struct TimeColumn(Column<TimestampMillisecondType>);

impl TimeColumn {
    fn new() -> Self {
        Self(Column::new())
    }

    fn push(&mut self, t: &DateTime<FixedOffset>) {
        self.0.push(t.timestamp_millis());
    }

    fn finish(&mut self) -> TimestampMillisecondArray {
        self.0.finish().with_timezone(TZ)
    }
}

/// Accumulates visits into a `raw/visits` record batch.
#[allow(missing_debug_implementations)]
pub struct VisitBatchBuilder {
    submission_id: StrColumn,
    sent_at: TimeColumn,
    visited_at: TimeColumn,
    reporter_id: StrColumn,
    reporter_role: StrColumn,
    grid_id: StrColumn,
    target_kind: StrColumn,
    target_id: StrColumn,
    ints: [Column<Int32Type>; 10],
    special_groups: StrListColumn,
    safety_checks: StrListColumn,
    hazards: ListBuilder<StructBuilder>,
    hardships: ListBuilder<StructBuilder>,
    reporter_unit: StringBuilder,
    lineage: LineageBuilder,
    rows: usize,
}

impl Default for VisitBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl VisitBatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            submission_id: StrColumn::new(),
            sent_at: TimeColumn::new(),
            visited_at: TimeColumn::new(),
            reporter_id: StrColumn::new(),
            reporter_role: StrColumn::new(),
            grid_id: StrColumn::new(),
            target_kind: StrColumn::new(),
            target_id: StrColumn::new(),
            ints: std::array::from_fn(|_| Column::new()),
            special_groups: StrListColumn::new(),
            safety_checks: StrListColumn::new(),
            hazards: ListBuilder::new(StructBuilder::from_fields(hazard_fields(), 0)),
            hardships: ListBuilder::new(StructBuilder::from_fields(hardship_fields(), 0)),
            reporter_unit: StringBuilder::new(),
            lineage: LineageBuilder::new(),
            rows: 0,
        }
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was appended.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Append one visit.
    pub fn append(&mut self, v: &Visit, lineage: &Lineage<'_>) {
        self.submission_id.push(&v.submission_id);
        self.sent_at.push(&v.sent_at);
        self.visited_at.push(&v.visited_at);
        self.reporter_id.push(&v.reporter_id);
        self.reporter_role.push(v.reporter_role.as_str());
        self.grid_id.push(&v.grid_id);
        self.target_kind.push(v.target_kind.as_str());
        self.target_id.push(&v.target_id);
        let fixed = v.hazards.iter().filter(|h| h.fixed_on_spot).count();
        let ints = [
            int(v.residents_recorded),
            int(v.residents_present),
            int(v.newcomers_registered),
            int(v.residents_tested),
            int(v.residents_vaccinated),
            int(v.enlisted_building_leads),
            int(v.enlisted_volunteers),
            count(v.hazards.len()),
            count(fixed),
            count(v.hardships.len()),
        ];
        for (column, n) in self.ints.iter_mut().zip(ints) {
            column.push(n);
        }
        self.special_groups
            .push(v.special_groups.iter().map(|g| g.as_str()));
        self.safety_checks
            .push(v.safety_checks.iter().map(|c| c.as_str()));
        for h in &v.hazards {
            let s = self.hazards.values();
            s.field_builder::<StringBuilder>(0)
                .expect("hazard_id")
                .append_value(&h.hazard_id);
            s.field_builder::<StringBuilder>(1)
                .expect("kind")
                .append_value(h.kind.as_str());
            s.field_builder::<BooleanBuilder>(2)
                .expect("fixed_on_spot")
                .append_value(h.fixed_on_spot);
            s.append(true);
        }
        self.hazards.append(true);
        for h in &v.hardships {
            let s = self.hardships.values();
            s.field_builder::<StringBuilder>(0)
                .expect("case_id")
                .append_value(&h.case_id);
            s.field_builder::<StringBuilder>(1)
                .expect("category")
                .append_value(h.category.as_str());
            s.field_builder::<StringBuilder>(2)
                .expect("urgency")
                .append_value(h.urgency.as_str());
            s.field_builder::<StringBuilder>(3)
                .expect("note")
                .append_value(&h.note);
            s.append(true);
        }
        self.hardships.append(true);
        self.reporter_unit.append_option(v.reporter_unit.as_deref());
        self.lineage.append(lineage);
        self.rows += 1;
    }

    /// Finish the batch and reset the builder.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let [rec, pres, newc, test, vacc, leads, vols, hz, hzf, hs] = &mut self.ints;
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.submission_id.finish()?),
            Arc::new(self.sent_at.finish()),
            Arc::new(self.visited_at.finish()),
            Arc::new(self.reporter_id.finish()?),
            Arc::new(self.reporter_role.finish()?),
            Arc::new(self.grid_id.finish()?),
            Arc::new(self.target_kind.finish()?),
            Arc::new(self.target_id.finish()?),
            Arc::new(rec.finish()),
            Arc::new(pres.finish()),
            Arc::new(newc.finish()),
            Arc::new(test.finish()),
            Arc::new(vacc.finish()),
            Arc::new(self.special_groups.finish()?),
            Arc::new(self.safety_checks.finish()?),
            Arc::new(self.hazards.finish()),
            Arc::new(self.hardships.finish()),
            Arc::new(leads.finish()),
            Arc::new(vols.finish()),
            Arc::new(hz.finish()),
            Arc::new(hzf.finish()),
            Arc::new(hs.finish()),
            Arc::new(self.reporter_unit.finish()),
        ];
        self.lineage.finish(&mut cols)?;
        self.rows = 0;
        RecordBatch::try_new(raw_visits_schema(), cols)
    }
}

/// Accumulates case updates into a `raw/cases` record batch.
#[allow(missing_debug_implementations)]
pub struct CaseBatchBuilder {
    strings: [StrColumn; 6],
    sent_at: TimeColumn,
    updated_at: TimeColumn,
    lineage: LineageBuilder,
    rows: usize,
}

impl Default for CaseBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl CaseBatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            strings: std::array::from_fn(|_| StrColumn::new()),
            sent_at: TimeColumn::new(),
            updated_at: TimeColumn::new(),
            lineage: LineageBuilder::new(),
            rows: 0,
        }
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was appended.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Append one case update.
    pub fn append(&mut self, c: &CaseUpdate, lineage: &Lineage<'_>) {
        let [sub, case, kind, grid, status, handler] = &mut self.strings;
        sub.push(&c.submission_id);
        case.push(&c.case_id);
        kind.push(c.case_kind.as_str());
        grid.push(&c.grid_id);
        status.push(c.status.as_str());
        handler.push(&c.handler_id);
        self.sent_at.push(&c.sent_at);
        self.updated_at.push(&c.updated_at);
        self.lineage.append(lineage);
        self.rows += 1;
    }

    /// Finish the batch and reset the builder.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let [sub, case, kind, grid, status, handler] = &mut self.strings;
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(sub.finish()?),
            Arc::new(self.sent_at.finish()),
            Arc::new(case.finish()?),
            Arc::new(kind.finish()?),
            Arc::new(grid.finish()?),
            Arc::new(status.finish()?),
            Arc::new(self.updated_at.finish()),
            Arc::new(handler.finish()?),
        ];
        self.lineage.finish(&mut cols)?;
        self.rows = 0;
        RecordBatch::try_new(raw_cases_schema(), cols)
    }
}

/// One rejected message, as stored in quarantine.
#[derive(Debug, Clone)]
pub struct QuarantineRow<'a> {
    /// Where it came from.
    pub lineage: Lineage<'a>,
    /// Message key, lossily decoded as UTF-8.
    pub key: Option<String>,
    /// The error class name.
    pub error_class: &'a str,
    /// The field the error names.
    pub error_field: Option<&'a str>,
    /// The error message.
    pub error_message: String,
    /// The raw bytes (possibly truncated).
    pub raw: &'a [u8],
    /// The original size.
    pub raw_size: usize,
}

/// Accumulates quarantined messages into a batch.
#[allow(missing_debug_implementations)]
pub struct QuarantineBatchBuilder {
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    key: StringBuilder,
    ts: TimestampMillisecondBuilder,
    class: StringBuilder,
    field: StringBuilder,
    message: StringBuilder,
    size: Int64Builder,
    truncated: BooleanBuilder,
    raw: BinaryBuilder,
    rows: usize,
}

impl Default for QuarantineBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl QuarantineBatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            key: StringBuilder::new(),
            ts: ts_builder(),
            class: StringBuilder::new(),
            field: StringBuilder::new(),
            message: StringBuilder::new(),
            size: Int64Builder::new(),
            truncated: BooleanBuilder::new(),
            raw: BinaryBuilder::new(),
            rows: 0,
        }
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was appended.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Append one rejected message.
    pub fn append(&mut self, q: &QuarantineRow<'_>) {
        self.topic.append_value(q.lineage.topic);
        self.partition.append_value(q.lineage.partition);
        self.offset.append_value(q.lineage.offset);
        self.key.append_option(q.key.as_deref());
        self.ts
            .append_option(q.lineage.received_at.map(|t| t.timestamp_millis()));
        self.class.append_value(q.error_class);
        self.field.append_option(q.error_field);
        self.message.append_value(&q.error_message);
        self.size
            .append_value(i64::try_from(q.raw_size).unwrap_or(i64::MAX));
        self.truncated.append_value(q.raw.len() < q.raw_size);
        self.raw.append_value(q.raw);
        self.rows += 1;
    }

    /// Finish the batch and reset the builder.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        RecordBatch::try_new(
            quarantine_schema(),
            vec![
                Arc::new(self.topic.finish()),
                Arc::new(self.partition.finish()),
                Arc::new(self.offset.finish()),
                Arc::new(self.key.finish()),
                Arc::new(self.ts.finish()),
                Arc::new(self.class.finish()),
                Arc::new(self.field.finish()),
                Arc::new(self.message.finish()),
                Arc::new(self.size.finish()),
                Arc::new(self.truncated.finish()),
                Arc::new(self.raw.finish()),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    /// The unchecked string column equals what Arrow's checked builder
    /// makes, multi-byte characters and empty strings included, and passes
    /// Arrow's full validation.
    #[test]
    fn string_column_equals_arrows_builder() {
        let values = ["", "grid-1", "江门市蓬江区", "", "x\u{1F600}y", "end"];
        let mut ours = StrColumn::new();
        let mut theirs = StringBuilder::new();
        for value in values {
            ours.push(value);
            theirs.append_value(value);
        }
        let ours = ours.finish().unwrap();
        ours.to_data().validate_full().unwrap();
        assert_eq!(ours, theirs.finish());
        // Finishing resets the column for the next batch.
        let mut column = StrColumn::new();
        column.push("a");
        assert_eq!(column.finish().unwrap().len(), 1);
        column.push("b");
        assert_eq!(column.finish().unwrap(), StringArray::from(vec!["b"]));
    }

    /// Values past `i32` offsets fail the batch instead of wrapping.
    #[test]
    fn offsets_past_i32_fail_the_batch() {
        let too_far = i32::MAX as usize + 1;
        let mut offsets = Offsets::new();
        offsets.push(3);
        offsets.push(too_far);
        assert!(matches!(
            offsets.finish(too_far),
            Err(ArrowError::OffsetOverflowError(n)) if n == too_far
        ));
        // Reset for the next batch either way.
        offsets.push(2);
        assert_eq!(offsets.finish(2).unwrap().as_ref(), &[0, 2]);
    }

    #[test]
    fn string_list_column_equals_arrows_builder() {
        let rows: [&[&str]; 4] = [&["gas", "fire"], &[], &["独居老人"], &[]];
        let mut ours = StrListColumn::new();
        let mut theirs = ListBuilder::new(StringBuilder::new());
        for row in rows {
            ours.push(row.iter().copied());
            theirs.append_value(row.iter().map(|item| Some(*item)));
        }
        let ours = ours.finish().unwrap();
        ours.to_data().validate_full().unwrap();
        assert_eq!(ours, theirs.finish());
    }

    #[test]
    fn primitive_columns_hand_over_their_values() {
        let mut column = Column::<Int32Type>::new();
        for n in [3, 0, -7] {
            column.push(n);
        }
        let array = column.finish();
        assert_eq!(array, PrimitiveArray::<Int32Type>::from(vec![3, 0, -7]));
        assert_eq!(array.null_count(), 0);
        assert!(column.finish().is_empty());
    }
}
