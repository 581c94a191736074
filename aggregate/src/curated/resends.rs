//! One submission, counted once in the whole lake.
//!
//! Curation deduplicates within a day. A resend with the same
//! `submission_id` but another event time (an edited visit, a phone whose
//! clock moved) lands in another day's partition, and would be counted on
//! both days. Before curating, a run finds the ids of the days it curates
//! that also occur on other days: among those days themselves by a query,
//! and against every other day through a compact index of 64-bit id hashes
//! kept per day (`_state/submissions/TABLE/dt=D/`), which costs a refresh a
//! read of 8 bytes per submission instead of the curated tables. A day
//! holding another copy of such an id is curated again too, so every copy
//! of a conflicting id is seen together. The first received copy wins
//! (earliest transport time, then lowest topic, partition, offset — as
//! within a day); the copies on other days are superseded, and curation
//! leaves them out. Ids whose copies differ in content are reported per
//! day in the quality table (`conflicting_resends`) and listed in the
//! `resends` table.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hasher;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use gridstat_schemas::lake::dt_partition;
use object_store::ObjectStore;

use crate::error::Result;
use crate::tables::{query_batch, register_batches};

/// Where the per-day index of submission id hashes lives.
pub(crate) const INDEX: &str = "_state/submissions";

/// A raw table whose submissions are deduplicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum RawTable {
    /// `raw_visits`.
    Visits,
    /// `raw_cases`.
    Cases,
}

impl RawTable {
    pub(crate) const ALL: [RawTable; 2] = [RawTable::Visits, RawTable::Cases];

    /// Its short name (index directory, `resends.table`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            RawTable::Visits => "visits",
            RawTable::Cases => "cases",
        }
    }

    fn sql_table(self) -> &'static str {
        match self {
            RawTable::Visits => "raw_visits",
            RawTable::Cases => "raw_cases",
        }
    }

    /// The columns whose values make a submission's content: every
    /// scalar field and flag list of the message but its send time (a
    /// phone's retry may stamp a new one) and the transport's lineage; of
    /// the hazard and hardship lists, their counts. A visit without a
    /// `reporter_unit` has the content it had before the field existed
    /// (`CONCAT_WS` skips a null).
    fn content(self) -> &'static str {
        match self {
            RawTable::Visits => {
                "CONCAT_WS('|', CAST(visited_at AS VARCHAR), reporter_id, reporter_role, grid_id, target_kind, target_id, \
                 CAST(residents_recorded AS VARCHAR), CAST(residents_present AS VARCHAR), CAST(newcomers_registered AS VARCHAR), \
                 CAST(residents_tested AS VARCHAR), CAST(residents_vaccinated AS VARCHAR), \
                 CAST(enlisted_building_leads AS VARCHAR), CAST(enlisted_volunteers AS VARCHAR), \
                 CAST(hazards_found AS VARCHAR), CAST(hazards_fixed_on_spot AS VARCHAR), CAST(hardships_raised AS VARCHAR), \
                 CAST(special_groups AS VARCHAR), CAST(safety_checks AS VARCHAR), reporter_unit)"
            }
            RawTable::Cases => {
                "CONCAT_WS('|', CAST(updated_at AS VARCHAR), case_id, case_kind, grid_id, status, handler_id)"
            }
        }
    }

    /// The index object of `day`.
    fn index_path(self, day: NaiveDate) -> String {
        format!(
            "{INDEX}/{}/{}/part-00000.parquet",
            self.name(),
            dt_partition(day)
        )
    }
}

/// The 64-bit key of a submission id in the index. Two of a city's ten
/// million ids share one with odds of about 10⁻⁵ per run; a shared key only
/// makes a day be curated again, since conflicts are confirmed on the ids.
pub(crate) fn id_key(id: &str) -> u64 {
    let mut h = twox_hash::XxHash64::with_seed(0x6772_6964);
    h.write(id.as_bytes());
    h.finish()
}

/// What a run found about the submissions of the days it curates.
#[derive(Debug, Default)]
pub(crate) struct Resends {
    /// Days to curate beyond those planned: they hold another copy of a
    /// submission of a planned day.
    pub(crate) more_days: BTreeSet<NaiveDate>,
    /// Per table, the copies other days' copies supersede: (day, id).
    pub(crate) superseded: BTreeMap<RawTable, Vec<(NaiveDate, String)>>,
    /// Every copy of the ids whose copies differ in content.
    pub(crate) conflicts: Vec<ResendCopy>,
    /// Per table and curated day, the keys of its raw submission ids (the
    /// day's index, written once the day is curated).
    pub(crate) keys: BTreeMap<(RawTable, NaiveDate), Vec<u64>>,
}

/// One copy of a submission that was sent more than once with different
/// content.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResendCopy {
    pub(crate) table: RawTable,
    pub(crate) submission_id: String,
    pub(crate) dt: NaiveDate,
    pub(crate) source_topic: String,
    pub(crate) source_partition: i32,
    pub(crate) source_offset: i64,
    pub(crate) received_at: Option<i64>,
    /// Whether this copy is the one counted.
    pub(crate) kept: bool,
}

/// A raw copy of a submission with more than one copy.
#[derive(Debug, Clone)]
struct Copy {
    id: String,
    dt: NaiveDate,
    received_at: Option<i64>,
    topic: String,
    partition: i32,
    offset: i64,
    content: Option<String>,
}

impl Copy {
    /// The order in which copies were received: the first counts.
    fn receipt(&self) -> (bool, i64, &str, i32, i64) {
        (
            self.received_at.is_none(),
            self.received_at.unwrap_or(0),
            &self.topic,
            self.partition,
            self.offset,
        )
    }
}

/// Find what curating `days` (with raw data) means for resends: the other
/// days to curate with them and the copies to leave out. `indexed` holds
/// the days whose index exists; raw days without one are curated too.
pub(crate) async fn resolve(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    days: &BTreeSet<NaiveDate>,
    raw_days: &BTreeSet<NaiveDate>,
) -> Result<Resends> {
    let mut out = Resends::default();
    let mut curated: BTreeSet<NaiveDate> = days.clone();
    // A raw day without an index (a lake from before it) is curated again
    // once, so that the index covers every day from then on.
    let indexed = indexed_days(store).await?;
    let unindexed: BTreeSet<NaiveDate> = raw_days
        .iter()
        .filter(|d| !curated.contains(d))
        .filter(|d| RawTable::ALL.iter().any(|t| !indexed.contains(&(*t, **d))))
        .copied()
        .collect();
    curated.extend(&unindexed);
    let mut loaded: HashMap<(RawTable, NaiveDate), Vec<u64>> = HashMap::new();
    loop {
        let mut more = BTreeSet::new();
        for table in RawTable::ALL {
            let keys = day_keys(ctx, table, &curated, &out.keys).await?;
            for (day, k) in keys {
                out.keys.insert((table, day), k);
            }
            let ours: HashSet<u64> = curated
                .iter()
                .filter_map(|d| out.keys.get(&(table, *d)))
                .flatten()
                .copied()
                .collect();
            for &day in raw_days.iter().filter(|d| !curated.contains(d)) {
                let keys = match loaded.entry((table, day)) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(read_index(store, table, day).await?)
                    }
                };
                if keys.iter().any(|k| ours.contains(k)) {
                    more.insert(day);
                }
            }
        }
        if more.is_empty() {
            break;
        }
        curated.extend(&more);
    }
    out.more_days = curated.difference(days).copied().collect();
    for table in RawTable::ALL {
        let copies = multi_copies(ctx, table, &curated).await?;
        let mut by_id: BTreeMap<&str, Vec<&Copy>> = BTreeMap::new();
        for c in &copies {
            by_id.entry(c.id.as_str()).or_default().push(c);
        }
        let superseded = out.superseded.entry(table).or_default();
        for (id, mut copies) in by_id {
            copies.sort_by(|a, b| a.receipt().cmp(&b.receipt()));
            let first = copies[0];
            for c in &copies[1..] {
                if c.dt != first.dt && !superseded.contains(&(c.dt, id.to_string())) {
                    superseded.push((c.dt, id.to_string()));
                }
            }
            let contents: HashSet<&Option<String>> = copies.iter().map(|c| &c.content).collect();
            if contents.len() > 1 {
                out.conflicts.extend(copies.iter().map(|c| ResendCopy {
                    table,
                    submission_id: c.id.clone(),
                    dt: c.dt,
                    source_topic: c.topic.clone(),
                    source_partition: c.partition,
                    source_offset: c.offset,
                    received_at: c.received_at,
                    kept: std::ptr::eq(*c, first),
                }));
            }
        }
        superseded.sort();
    }
    Ok(out)
}

/// `days` as a SQL list of quoted dates.
fn sql_days(days: &BTreeSet<NaiveDate>) -> String {
    days.iter()
        .map(|d| format!("'{}'", d.format("%Y-%m-%d")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The keys of the raw submission ids of each of `days` not in `known`.
async fn day_keys(
    ctx: &SessionContext,
    table: RawTable,
    days: &BTreeSet<NaiveDate>,
    known: &BTreeMap<(RawTable, NaiveDate), Vec<u64>>,
) -> Result<BTreeMap<NaiveDate, Vec<u64>>> {
    let wanted: BTreeSet<NaiveDate> = days
        .iter()
        .filter(|d| !known.contains_key(&(table, **d)))
        .copied()
        .collect();
    let mut out: BTreeMap<NaiveDate, Vec<u64>> = wanted.iter().map(|d| (*d, Vec::new())).collect();
    if wanted.is_empty() || !ctx.table_exist(table.sql_table()).unwrap_or(false) {
        return Ok(out);
    }
    let sql = format!(
        "SELECT DISTINCT CAST(dt AS VARCHAR) AS dt, submission_id FROM {} WHERE dt IN ({})",
        table.sql_table(),
        sql_days(&wanted)
    );
    let batch = query_batch(ctx, "submission ids", &sql).await?;
    let (dts, ids) = (text(&batch, 0)?, text(&batch, 1)?);
    for (dt, id) in dts.iter().zip(ids.iter()) {
        if let (Some(day), Some(id)) = (dt.and_then(parse_day), id) {
            out.entry(day).or_default().push(id_key(id));
        }
    }
    for keys in out.values_mut() {
        keys.sort_unstable();
    }
    Ok(out)
}

/// Every raw copy, on `days`, of the submissions with more than one copy
/// there (on one day or several).
async fn multi_copies(
    ctx: &SessionContext,
    table: RawTable,
    days: &BTreeSet<NaiveDate>,
) -> Result<Vec<Copy>> {
    if days.is_empty() || !ctx.table_exist(table.sql_table()).unwrap_or(false) {
        return Ok(Vec::new());
    }
    let (raw, list) = (table.sql_table(), sql_days(days));
    let sql = format!(
        "SELECT CAST(r.dt AS VARCHAR) AS dt, r.submission_id, CAST(r.received_at AS BIGINT) AS received_ms, \
           r.source_topic, r.source_partition, r.source_offset, {content} AS content \
         FROM (SELECT submission_id FROM {raw} WHERE dt IN ({list}) GROUP BY submission_id HAVING COUNT(*) > 1) m \
         JOIN {raw} r ON r.submission_id = m.submission_id WHERE r.dt IN ({list})",
        content = table.content()
    );
    let batch = query_batch(ctx, "resent submissions", &sql).await?;
    let (dts, ids, topics, contents) = (
        text(&batch, 0)?,
        text(&batch, 1)?,
        text(&batch, 3)?,
        text(&batch, 6)?,
    );
    let received = cast(&batch, 2, &DataType::Int64)?;
    let partitions = cast(&batch, 4, &DataType::Int32)?;
    let offsets = cast(&batch, 5, &DataType::Int64)?;
    let (received, partitions, offsets) = (
        received.as_primitive::<arrow::datatypes::Int64Type>(),
        partitions.as_primitive::<arrow::datatypes::Int32Type>(),
        offsets.as_primitive::<arrow::datatypes::Int64Type>(),
    );
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let Some(dt) = dts.is_valid(i).then(|| parse_day(dts.value(i))).flatten() else {
            continue;
        };
        out.push(Copy {
            id: ids.value(i).to_string(),
            dt,
            received_at: received.is_valid(i).then(|| received.value(i)),
            topic: topics.value(i).to_string(),
            partition: partitions.value(i),
            offset: offsets.value(i),
            content: contents.is_valid(i).then(|| contents.value(i).to_string()),
        });
    }
    Ok(out)
}

fn parse_day(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn cast(batch: &RecordBatch, i: usize, to: &DataType) -> Result<arrow::array::ArrayRef> {
    Ok(arrow::compute::cast(batch.column(i), to)?)
}

fn text(batch: &RecordBatch, i: usize) -> Result<StringArray> {
    Ok(cast(batch, i, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// The (table, day) pairs whose index exists.
async fn indexed_days(store: &Arc<dyn ObjectStore>) -> Result<BTreeSet<(RawTable, NaiveDate)>> {
    let mut out = BTreeSet::new();
    for table in RawTable::ALL {
        let listed = crate::store::list(store, &format!("{INDEX}/{}", table.name())).await?;
        out.extend(
            listed
                .keys()
                .filter_map(|p| crate::store::day_of(p))
                .map(|d| (table, d)),
        );
    }
    Ok(out)
}

fn index_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "key",
        DataType::UInt64,
        false,
    )]))
}

/// The keys in a day's index (none if it has no index).
async fn read_index(
    store: &Arc<dyn ObjectStore>,
    table: RawTable,
    day: NaiveDate,
) -> Result<Vec<u64>> {
    let path = table.index_path(day);
    let Some(batches) = crate::store::read_parquet(store, &path).await? else {
        return Ok(Vec::new());
    };
    let mut keys = Vec::new();
    for b in batches {
        let column = b
            .column_by_name("key")
            .and_then(|c| c.as_primitive_opt::<arrow::datatypes::UInt64Type>())
            .ok_or_else(|| crate::error::Error::CorruptState {
                path: path.clone(),
                reason: "no UInt64 column `key`".into(),
            })?;
        keys.extend(column.values().iter().copied());
    }
    Ok(keys)
}

/// Write the index of each curated day (its raw ids' keys), and remove
/// those of `cleared` days.
pub(crate) async fn write_index(
    store: &Arc<dyn ObjectStore>,
    keys: &BTreeMap<(RawTable, NaiveDate), Vec<u64>>,
    cleared: &[NaiveDate],
) -> Result<usize> {
    let mut written = 0;
    for ((table, day), keys) in keys {
        let batch = RecordBatch::try_new(
            index_schema(),
            vec![Arc::new(UInt64Array::from(keys.clone()))],
        )?;
        written += usize::from(
            crate::store::write_parquet(store, &table.index_path(*day), index_schema(), &[batch])
                .await?,
        );
    }
    for &day in cleared {
        for table in RawTable::ALL {
            crate::store::delete_prefix(
                store,
                &format!("{INDEX}/{}/{}", table.name(), dt_partition(day)),
            )
            .await?;
        }
    }
    Ok(written)
}

/// Register each table's superseded copies as `superseded_TABLE(dt,
/// submission_id)` for curation to leave out (only tables that have any).
pub(crate) fn register_superseded(ctx: &SessionContext, resends: &Resends) -> Result<()> {
    for (table, rows) in &resends.superseded {
        if rows.is_empty() {
            continue;
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("dt", DataType::Utf8, false),
            Field::new("submission_id", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(d, _)| d.format("%Y-%m-%d").to_string()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(_, id)| id.as_str()),
                )),
            ],
        )?;
        register_batches(ctx, &superseded_table(*table), schema, vec![batch])?;
    }
    Ok(())
}

/// The in-memory table of the copies of conflicting resends found by this run.
pub(crate) const CONFLICTS_TABLE: &str = "resend_conflicts";

/// The `resends` table: every copy of a submission sent more than once
/// with different content, and which copy is counted.
pub(crate) fn conflicts_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("raw_table", DataType::Utf8, false),
        Field::new("submission_id", DataType::Utf8, false),
        Field::new("dt", DataType::Utf8, false),
        Field::new("source_topic", DataType::Utf8, false),
        Field::new("source_partition", DataType::Int32, false),
        Field::new("source_offset", DataType::Int64, false),
        Field::new("received_ms", DataType::Int64, true),
        Field::new("kept", DataType::Boolean, false),
    ]))
}

/// Register this run's conflicting resends as [`CONFLICTS_TABLE`] (the
/// copies of every conflicting submission with a copy on `days`, all of
/// whose copies the run has seen).
pub(crate) fn register_conflicts(
    ctx: &SessionContext,
    resends: &Resends,
    days: &BTreeSet<NaiveDate>,
) -> Result<()> {
    use arrow::array::{BooleanArray, Int32Array, Int64Array};
    let rows: Vec<&ResendCopy> = resends
        .conflicts
        .iter()
        .filter(|c| days.contains(&c.dt) || resends.more_days.contains(&c.dt))
        .collect();
    let batch = RecordBatch::try_new(
        conflicts_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|c| c.table.name()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|c| c.submission_id.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|c| c.dt.format("%Y-%m-%d").to_string()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|c| c.source_topic.as_str()),
            )),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|c| c.source_partition),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|c| c.source_offset),
            )),
            Arc::new(Int64Array::from_iter(rows.iter().map(|c| c.received_at))),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|c| Some(c.kept)))),
        ],
    )?;
    register_batches(ctx, CONFLICTS_TABLE, conflicts_schema(), vec![batch])
}

/// The in-memory table of a raw table's superseded copies.
pub(crate) fn superseded_table(table: RawTable) -> String {
    format!("superseded_{}", table.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_tell_ids_apart() {
        assert_eq!(id_key("s-1"), id_key("s-1"));
        assert_ne!(id_key("s-1"), id_key("s-2"));
    }

    #[test]
    fn the_first_received_copy_counts_transport_time_before_lineage() {
        let copy = |received_at, offset| Copy {
            id: "s".into(),
            dt: NaiveDate::from_ymd_opt(2022, 11, 25).unwrap(),
            received_at,
            topic: "t".into(),
            partition: 0,
            offset,
            content: None,
        };
        let (early, late, untimed) = (copy(Some(1), 9), copy(Some(2), 1), copy(None, 0));
        assert!(early.receipt() < late.receipt());
        assert!(
            late.receipt() < untimed.receipt(),
            "a copy without transport time ranks last"
        );
    }
}
