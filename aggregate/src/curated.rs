//! Step 1: deduplicated, registry-joined daily tables.
//!
//! Deduplication: within a day partition, rows sharing a `submission_id`
//! keep the first received — the earliest transport timestamp, then the
//! lowest (topic, partition, offset). A resend is byte-identical, so it has
//! the same event time and lands in the same day partition.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use futures::{FutureExt, StreamExt};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::error::{query, Result};
use crate::store::{plain_schema, put_if_changed, write_parquet, ParquetBody, WriteGate};
use crate::tables::{register_raw_day, Computed, RAW_CASES, RAW_VISITS};
use gridstat_schemas::arrow_schema::{raw_cases_schema, raw_visits_schema};
use gridstat_schemas::time::local_midnight;

const VISIT_COLUMNS: &str = "r.submission_id, r.sent_at, r.visited_at, r.reporter_id, r.reporter_role, \
    r.grid_id, g.village_code, g.town_code, g.county_code, r.target_kind, r.target_id, \
    r.residents_recorded, r.residents_present, r.newcomers_registered, r.residents_tested, r.residents_vaccinated, \
    r.special_groups, r.safety_checks, r.hazards, r.hardships, r.enlisted_building_leads, r.enlisted_volunteers, \
    r.hazards_found, r.hazards_fixed_on_spot, r.hardships_raised, \
    r.source_topic, r.source_partition, r.source_offset, r.received_at";

const CASE_COLUMNS: &str = "r.submission_id, r.sent_at, r.case_id, r.case_kind, r.grid_id, g.town_code, g.county_code, \
    r.status, r.updated_at, r.handler_id, r.source_topic, r.source_partition, r.source_offset, r.received_at";

/// Deduplicate the raw rows of the days whose tables are `tables` (one
/// per day, in order; see [`crate::tables::register_raw_day`]) within
/// each day, a row's day being its table's index as [`DAY_COLUMN`]. Most submissions arrive once: only
/// those with several copies are ranked (a window over a whole day's rows
/// sorts every column of every row).
/// Each join's left side is the one hashed, without statistics to say
/// otherwise, so the narrow sides come first: hashing the day's raw rows
/// held them twice, once there and once in the sort (2.1 GiB at 10M).
/// Rows come sorted by day first, then by `order`, with [`DAY_COLUMN`]
/// last.
///
/// A day curated alone (every large day) is read without the day in any
/// key: with that constant among the join keys, DataFusion held the day's
/// raw rows once more (the 10M lake's largest day, 2.16M visits, peaked at
/// 5.6 GB instead of 2.3 GB); its rows get the day's index 0 at the end.
fn dedup_sql(tables: &[String], columns: &str, order: &str) -> String {
    let alone = tables.len() == 1;
    let raw = tables
        .iter()
        .enumerate()
        .map(|(day, table)| match alone {
            true => format!("SELECT * FROM {table}"),
            false => format!("SELECT *, {day} AS {DAY_COLUMN} FROM {table}"),
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    // The day as a key of table `t` (`t.` or none): a list item, or a join
    // condition with `u`.
    let key = |t: &str| match alone {
        true => String::new(),
        false => format!("{t}{DAY_COLUMN}, "),
    };
    let same_day = |t: &str, u: &str| match alone {
        true => String::new(),
        false => format!("{t}.{DAY_COLUMN} = {u}.{DAY_COLUMN} AND "),
    };
    let day_out = match alone {
        true => format!("0 AS {DAY_COLUMN}"),
        false => format!("r.{DAY_COLUMN}"),
    };
    format!(
        "WITH raw AS ({raw}), \
         copies AS (SELECT {day}submission_id, COUNT(*) AS copies FROM raw GROUP BY {day}submission_id), \
         firsts AS (SELECT {day}submission_id, source_topic, source_partition, source_offset FROM ( \
           SELECT {x}x.submission_id, x.source_topic, x.source_partition, x.source_offset, \
             ROW_NUMBER() OVER (PARTITION BY {x}x.submission_id \
             ORDER BY x.received_at ASC NULLS LAST, x.source_topic, x.source_partition, x.source_offset) AS rn \
           FROM (SELECT {day}submission_id FROM copies WHERE copies > 1) m \
           JOIN raw x ON {xm}x.submission_id = m.submission_id) \
           WHERE rn = 1) \
         SELECT {columns}, {day_out} FROM registry_grids g RIGHT JOIN ( \
           firsts f RIGHT JOIN (copies c JOIN raw r ON {rc}r.submission_id = c.submission_id) \
           ON {rf}r.submission_id = f.submission_id) \
         ON r.grid_id = g.grid_id \
         WHERE (c.copies = 1 OR (r.source_topic = f.source_topic \
           AND r.source_partition = f.source_partition AND r.source_offset = f.source_offset)) \
         ORDER BY {r}{order}",
        day = key(""),
        x = key("x."),
        r = key("r."),
        xm = same_day("x", "m"),
        rc = same_day("r", "c"),
        rf = same_day("r", "f"),
    )
}

/// The day of a row in a curation query over several days, as its index
/// among them: dropped before the rows are written to their day's files.
const DAY_COLUMN: &str = "curated_day";

/// Row counts of one curated day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CuratedDay {
    /// Visits kept.
    pub visits: usize,
    /// Case updates kept.
    pub cases: usize,
    /// Files rewritten.
    pub files_written: usize,
}

/// One curated day's objects as they are built.
struct DayFiles {
    dt: String,
    visits: ParquetBody,
    hardships: Vec<RecordBatch>,
    hazards: Vec<RecordBatch>,
    counts: CuratedDay,
}

/// The Arrow schemas curation writes its tables' objects with, by table
/// name: registering the tables with them spares reading every object's
/// footer to infer them.
pub(crate) type WrittenSchemas = Vec<(&'static str, SchemaRef)>;

/// The run's listing of the raw tables, which curation's tables of one
/// day each read instead of listing their day again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawDayListing<'a> {
    /// Every object of `raw_visits`.
    pub visits: &'a [ObjectMeta],
    /// Every object of `raw_cases`.
    pub cases: &'a [ObjectMeta],
}

/// Rebuild the curated tables of `days` (ascending), one query per table
/// for all of them: a refresh's few small days cost one query's planning
/// and fixed costs instead of one per day.
pub(crate) async fn curate_days(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    days: &[NaiveDate],
    listed: RawDayListing<'_>,
) -> Result<(Vec<CuratedDay>, WrittenSchemas)> {
    let names = |table: &str| -> Vec<String> {
        days.iter()
            .map(|day| format!("raw_{table}_{}", day.format("%Y%m%d")))
            .collect()
    };
    let (visit_tables, case_tables) = (names("visits"), names("cases"));
    let (raw_visits, raw_cases) = (raw_visits_schema(), raw_cases_schema());
    futures::future::try_join_all(days.iter().zip(&visit_tables).zip(&case_tables).flat_map(
        |((&day, visits), cases)| {
            [
                register_raw_day(ctx, &RAW_VISITS, &raw_visits, day, visits, listed.visits).boxed(),
                register_raw_day(ctx, &RAW_CASES, &raw_cases, day, cases, listed.cases).boxed(),
            ]
        },
    ))
    .await?;
    let visits_sql = dedup_sql(
        &visit_tables,
        VISIT_COLUMNS,
        "g.county_code, g.town_code, r.grid_id, r.visited_at, r.submission_id",
    );
    let cases_sql = dedup_sql(
        &case_tables,
        CASE_COLUMNS,
        "g.county_code, g.town_code, r.grid_id, r.updated_at, r.submission_id",
    );
    // A group of small days (a refresh) curates its cases while its visits
    // are encoded; a day curated alone, which may be large, queries its
    // cases once the visits are written, so that it holds one sort at a
    // time.
    let running = (days.len() > 1)
        .then(|| tokio::spawn(curate_cases(ctx.clone(), cases_sql.clone(), days.to_vec())));
    let (visits_schema, mut visits, visits_timing) =
        crate::tables::stream_query(ctx, "curated visits", &visits_sql).await?;
    let visits_schema = without_day(&visits_schema);
    let mut files = Vec::with_capacity(days.len());
    for &day in days {
        let dt = gridstat_schemas::lake::dt_partition(day);
        files.push(DayFiles {
            visits: ParquetBody::new(
                &format!("curated/visits/{dt}/part-00000.parquet"),
                &visits_schema,
            )?,
            dt,
            hardships: Vec::new(),
            hazards: Vec::new(),
            counts: CuratedDay::default(),
        });
    }
    // Encoded as the sorted rows come, instead of holding the days as
    // Arrow and then as Parquet.
    while let Some(batch) = visits.next().await {
        let batch = batch.map_err(query("curated visits"))?;
        for (i, rows) in by_day(&batch, &files)? {
            let day = &mut files[i];
            day.counts.visits += rows.num_rows();
            day.visits.write(&rows)?;
            day.hardships
                .push(explode(&rows, "hardships", hardship_schema())?);
            day.hazards
                .push(explode(&rows, "hazards", hazard_schema())?);
        }
    }
    visits_timing.done();
    let (case_bodies, case_counts) = match running {
        Some(running) => crate::error::joined(running, "curated cases").await?,
        None => curate_cases(ctx.clone(), cases_sql, days.to_vec()).await?,
    };
    for (day, rows) in files.iter_mut().zip(case_counts) {
        day.counts.cases += rows;
    }
    let mut schemas: WrittenSchemas = vec![
        ("curated_hardships", plain_schema(&hardship_schema())),
        ("curated_hazards", plain_schema(&hazard_schema())),
    ];
    if let (Some(day), Some(cases)) = (files.first(), case_bodies.first()) {
        schemas.push(("curated_visits", Arc::clone(day.visits.schema())));
        schemas.push(("curated_cases", Arc::clone(cases.schema())));
    }
    for table in visit_tables.iter().chain(&case_tables) {
        ctx.deregister_table(table.as_str())
            .map_err(query("curated tables"))?;
    }
    let days = futures::future::try_join_all(
        files
            .into_iter()
            .zip(case_bodies)
            .map(|(day, cases)| write_day(store, day, cases)),
    )
    .await?;
    Ok((days, schemas))
}

/// Deduplicate the case updates of `days` by `sql` (its rows tagged with
/// their day's index, as [`dedup_sql`] makes them) and encode each day's
/// object; also returns each day's count of rows.
async fn curate_cases(
    ctx: SessionContext,
    sql: String,
    days: Vec<NaiveDate>,
) -> Result<(Vec<ParquetBody>, Vec<usize>)> {
    let (schema, mut cases, timing) =
        crate::tables::stream_query(&ctx, "curated cases", &sql).await?;
    let schema = without_day(&schema);
    let mut bodies = days
        .iter()
        .map(|&day| {
            ParquetBody::new(
                &format!(
                    "curated/cases/{}/part-00000.parquet",
                    gridstat_schemas::lake::dt_partition(day)
                ),
                &schema,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let mut counts = vec![0; days.len()];
    while let Some(batch) = cases.next().await {
        let batch = batch.map_err(query("curated cases"))?;
        for (i, rows) in by_day(&batch, &days)? {
            counts[i] += rows.num_rows();
            bodies[i].write(&rows)?;
        }
    }
    timing.done();
    Ok((bodies, counts))
}

/// Write one curated day's objects (those that changed).
async fn write_day(
    store: &Arc<dyn ObjectStore>,
    day: DayFiles,
    cases: ParquetBody,
) -> Result<CuratedDay> {
    let DayFiles {
        dt,
        visits,
        hardships,
        hazards,
        mut counts,
    } = day;
    let (visits_path, cases_path) = (visits.path().to_string(), cases.path().to_string());
    let written = futures::future::try_join_all([
        put_if_changed(store, &visits_path, visits.finish()?).boxed(),
        write_parquet(
            store,
            &format!("curated/hardships/{dt}/part-00000.parquet"),
            hardship_schema(),
            &hardships,
        )
        .boxed(),
        write_parquet(
            store,
            &format!("curated/hazards/{dt}/part-00000.parquet"),
            hazard_schema(),
            &hazards,
        )
        .boxed(),
        put_if_changed(store, &cases_path, cases.finish()?).boxed(),
    ])
    .await?;
    counts.files_written = written.into_iter().filter(|w| *w).count();
    Ok(counts)
}

/// `schema` without its last column, [`DAY_COLUMN`].
fn without_day(schema: &SchemaRef) -> SchemaRef {
    let fields = &schema.fields()[..schema.fields().len() - 1];
    Arc::new(Schema::new(fields.to_vec()))
}

/// The runs of rows of one day in `batch` (sorted by [`DAY_COLUMN`], its
/// last column), each with its day's index in `days` and without that
/// column.
fn by_day<T>(batch: &RecordBatch, days: &[T]) -> Result<Vec<(usize, RecordBatch)>> {
    let last = batch.num_columns() - 1;
    let day_of = batch
        .column(last)
        .as_primitive::<arrow::datatypes::Int64Type>();
    let rows = batch.project(&(0..last).collect::<Vec<_>>())?;
    let mut runs = Vec::new();
    let mut start = 0;
    while start < batch.num_rows() {
        let day = day_of.value(start);
        let end = (start..batch.num_rows())
            .find(|&row| day_of.value(row) != day)
            .unwrap_or(batch.num_rows());
        let index = usize::try_from(day)
            .ok()
            .filter(|&i| i < days.len())
            .ok_or_else(|| {
                arrow::error::ArrowError::InvalidArgumentError(format!(
                    "a curated row of day {day}, of {} curated",
                    days.len()
                ))
            })?;
        runs.push((index, rows.slice(start, end - start)));
        start = end;
    }
    Ok(runs)
}

fn child_base_fields() -> Vec<Field> {
    vec![
        Field::new("submission_id", DataType::Utf8, false),
        Field::new("grid_id", DataType::Utf8, false),
        Field::new("village_code", DataType::Utf8, true),
        Field::new("town_code", DataType::Utf8, true),
        Field::new("county_code", DataType::Utf8, true),
        Field::new("visited_at", gridstat_ts(), false),
    ]
}

fn gridstat_ts() -> DataType {
    DataType::Timestamp(
        arrow::datatypes::TimeUnit::Millisecond,
        Some(gridstat_schemas::arrow_schema::TZ.into()),
    )
}

/// Schema of `curated/hardships`: one row per hardship raised.
pub fn hardship_schema() -> SchemaRef {
    let mut f = child_base_fields();
    f.extend([
        Field::new("case_id", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("urgency", DataType::Utf8, false),
        Field::new("note", DataType::Utf8, false),
    ]);
    Arc::new(Schema::new(f))
}

/// Schema of `curated/hazards`: one row per hazard found.
pub fn hazard_schema() -> SchemaRef {
    let mut f = child_base_fields();
    f.extend([
        Field::new("hazard_id", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("fixed_on_spot", DataType::Boolean, false),
    ]);
    Arc::new(Schema::new(f))
}

/// Flatten a `hardships` or `hazards` list into a child table: repeat each
/// parent row once per list element (via `take`) and append the element's
/// struct fields.
fn explode(batch: &RecordBatch, list_column: &str, schema: SchemaRef) -> Result<RecordBatch> {
    let list = batch
        .column_by_name(list_column)
        .expect("curated visits have the list column")
        .as_list::<i32>();
    let mut parent_rows: Vec<u32> = Vec::new();
    for row in 0..list.len() {
        let n = list.value_length(row) as usize;
        parent_rows.extend(std::iter::repeat_n(row as u32, n));
    }
    let indices = arrow::array::UInt32Array::from(parent_rows);
    let offsets = list.value_offsets();
    let (start, end) = (offsets[0] as usize, offsets[list.len()] as usize);
    let values = list.values().as_struct().slice(start, end - start);
    let mut columns = Vec::new();
    for name in [
        "submission_id",
        "grid_id",
        "village_code",
        "town_code",
        "county_code",
        "visited_at",
    ] {
        let col = batch
            .column_by_name(name)
            .expect("curated visits have the base columns");
        columns.push(arrow::compute::take(col.as_ref(), &indices, None)?);
    }
    for field in schema.fields().iter().skip(6) {
        columns.push(Arc::clone(
            values.column_by_name(field.name()).expect("struct field"),
        ));
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Every opening of a case: a hardship raised, or a hazard handed on;
/// with `only`, just the openings of the cases listed in that table; with
/// `on`, just those on these days (a SQL list of quoted dates).
fn opened_sql(only: Option<&str>, on: Option<&str>) -> String {
    let mut hardships = Vec::new();
    let mut hazards = vec!["NOT fixed_on_spot".to_string()];
    if let Some(table) = only {
        hardships.push(listed_in("case_id", table));
        hazards.push(listed_in("hazard_id", table));
    }
    if let Some(days) = on {
        hardships.push(format!("dt IN ({days})"));
        hazards.push(format!("dt IN ({days})"));
    }
    let filter = |conditions: Vec<String>| {
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        }
    };
    format!(
        "SELECT case_id, 'hardship' AS case_kind, category, urgency, grid_id, town_code, county_code, \
           visited_at AS opened_at, dt AS opened_dt \
         FROM curated_hardships{} \
         UNION ALL \
         SELECT hazard_id, 'hazard', kind, CAST(NULL AS VARCHAR), grid_id, town_code, county_code, visited_at, dt \
         FROM curated_hazards{}",
        filter(hardships),
        filter(hazards)
    )
}

/// `column` is one of the case ids in `table`.
fn listed_in(column: &str, table: &str) -> String {
    format!("{column} IN (SELECT case_id FROM {table})")
}

/// Cases opened more than once among the rows of `openings` (a query
/// with the columns of [`opened_sql`]).
fn reopened_sql(openings: &str) -> String {
    format!("SELECT case_id FROM ({openings}) GROUP BY case_id HAVING COUNT(*) > 1")
}

/// Which cases a `case_state` query covers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// Every case.
    All,
    /// The cases listed in this table, whose openings are held in memory
    /// as [`OPENED_TABLE`]: an update reads the curated hardships and
    /// hazards of every day once for them, not once per query.
    Listed(&'a str),
}

/// The in-memory table of the openings of the cases an update recomputes
/// (rows of [`opened_sql`]).
const OPENED_TABLE: &str = "opened_cases";

/// The in-memory table of cases opened more than once. DataFusion inlines
/// a CTE at each use, so computed in `case_state_sql` it would group every
/// opening twice.
const REOPENED_TABLE: &str = "reopened_cases";

/// The in-memory table of the cases an update of `case_state` recomputes.
const AFFECTED_TABLE: &str = "affected_cases";
/// The name a new `case_state` is registered under, in memory.
const CASE_STATE_TABLE: &str = crate::tables::CASE_STATE.name;

/// How `case_state` is sorted.
const CASE_STATE_ORDER: &str = "county_code, town_code, grid_id, opened_at, case_id";

/// Build [`REOPENED_TABLE`] from `openings` (as in [`reopened_sql`]) for
/// `case_state_sql` with [`Computed::InMemory`].
async fn register_reopened(ctx: &SessionContext, openings: &str) -> Result<()> {
    crate::tables::materialize(ctx, REOPENED_TABLE, &reopened_sql(openings)).await?;
    Ok(())
}

/// The query behind `case_state`; `epoch_ms` turns a timestamp expression
/// into milliseconds since the epoch (dialects differ there); `scope` says
/// which cases it yields rows for. A case is
/// nearly always opened once; only cases opened more than once go through
/// the `ROW_NUMBER` window, which is slow with one partition per case.
/// As in [`dedup_sql`], the narrower side of each join comes first: the
/// few cases opened more than once, then the updates per case.
pub(crate) fn case_state_sql(
    cases_exist: bool,
    epoch_ms: &dyn Fn(&str) -> String,
    computed: Computed,
    scope: Scope,
) -> String {
    let (opened, only) = match scope {
        Scope::All => (opened_sql(None, None), None),
        Scope::Listed(table) => (format!("SELECT * FROM {OPENED_TABLE}"), Some(table)),
    };
    let reopened = match computed {
        Computed::InSql => reopened_sql(&opened),
        Computed::InMemory => format!("SELECT case_id FROM {REOPENED_TABLE}"),
    };
    let resolved_ms = epoch_ms("u.resolved_at");
    let opened_ms = epoch_ms("o.opened_at");
    let updates = if cases_exist {
        let only_cases = only
            .map(|table| format!(" WHERE {}", listed_in("case_id", table)))
            .unwrap_or_default();
        format!(
            "SELECT case_id, \
               MIN(CASE WHEN status = 'assigned' THEN updated_at END) AS assigned_at, \
               MIN(CASE WHEN status = 'escalated' THEN updated_at END) AS escalated_at, \
               MIN(CASE WHEN status = 'resolved' THEN updated_at END) AS resolved_at, \
               MIN(CASE WHEN status = 'resolved' THEN dt END) AS resolved_dt \
             FROM curated_cases{only_cases} GROUP BY case_id"
        )
    } else {
        "SELECT CAST(NULL AS VARCHAR) AS case_id, CAST(NULL AS TIMESTAMP) AS assigned_at, CAST(NULL AS TIMESTAMP) AS escalated_at, \
           CAST(NULL AS TIMESTAMP) AS resolved_at, CAST(NULL AS VARCHAR) AS resolved_dt WHERE false"
            .to_string()
    };
    format!(
        "WITH opened AS ({opened}), \
         reopened AS ({reopened}), \
         first_open AS ( \
           SELECT o.* FROM reopened n RIGHT JOIN opened o ON o.case_id = n.case_id WHERE n.case_id IS NULL \
           UNION ALL \
           SELECT case_id, case_kind, category, urgency, grid_id, town_code, county_code, opened_at, opened_dt FROM ( \
             SELECT o.*, ROW_NUMBER() OVER (PARTITION BY o.case_id ORDER BY o.opened_at, o.grid_id) AS rn \
             FROM reopened n JOIN opened o ON o.case_id = n.case_id) \
           WHERE rn = 1), \
         upd AS ({updates}) \
         SELECT o.case_id, o.case_kind, o.category, o.urgency, o.grid_id, o.town_code, o.county_code, o.opened_at, o.opened_dt, \
           u.assigned_at, u.escalated_at, u.resolved_at, u.resolved_dt, \
           CASE WHEN u.resolved_at IS NULL THEN NULL \
                WHEN u.resolved_at < o.opened_at THEN 0.0 \
                ELSE (CAST({resolved_ms} AS DOUBLE) - CAST({opened_ms} AS DOUBLE)) / 3600000.0 END AS hours_to_resolve \
         FROM upd u RIGHT JOIN first_open o ON o.case_id = u.case_id \
         ORDER BY {CASE_STATE_ORDER}"
    )
}

/// Where the `case_state` rows of the cases first opened on `day`
/// (`YYYY-MM-DD`) lie: a refresh rewrites only the days its cases were
/// opened on.
fn case_state_path(day: &str) -> String {
    format!(
        "{}/dt={day}/part-00000.parquet",
        gridstat_schemas::lake::CURATED_CASE_STATE
    )
}

/// The one object that held all of `case_state` before it was split by
/// opening day; a write removes it.
fn legacy_case_state_path() -> String {
    format!(
        "{}/part-00000.parquet",
        gridstat_schemas::lake::CURATED_CASE_STATE
    )
}

fn epoch_ms(e: &str) -> String {
    format!("CAST({e} AS BIGINT)")
}

/// Rebuild `case_state`: one row per handed-on case (hardships, and hazards
/// not fixed on the spot) with the times of its updates.
pub(crate) async fn case_state(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    gate: WriteGate,
) -> Result<crate::store::BackgroundWrite> {
    let cases_exist = ctx.table_exist("curated_cases").unwrap_or(false);
    register_reopened(ctx, &opened_sql(None, None)).await?;
    let sql = case_state_sql(cases_exist, &epoch_ms, Computed::InMemory, Scope::All);
    hold_case_state(ctx, store, &sql, None, gate).await
}

/// The cases an update of `case_state` recomputes.
struct Affected {
    /// Their ids.
    ids: HashSet<String>,
    /// The days whose objects to rewrite, but for the days the cases are
    /// first opened on now: the recurated days and the days the cases with
    /// an old row were first opened on before.
    days: BTreeSet<String>,
    /// Whether their openings were read from every day, not just from the
    /// recurated days and the old rows (see [`held_openings`]).
    every_day_read: bool,
}

/// Run `sql` (a new `case_state`), register its rows in memory as
/// `case_state` and write them to the lake in the background: every
/// opening day's object for a rebuild (`affected` is `None`), else those
/// of the days the affected cases were opened on, before or now, once
/// `gate` opens. The rollup step scans the table several times: from
/// memory it skips decoding the objects again each time, and encoding
/// overlaps those scans.
async fn hold_case_state(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    sql: &str,
    affected: Option<Affected>,
    gate: WriteGate,
) -> Result<crate::store::BackgroundWrite> {
    let (schema, batches) = crate::tables::materialize(ctx, CASE_STATE_TABLE, sql).await?;
    let store = Arc::clone(store);
    Ok(gate.spawn(async move {
        let legacy = legacy_case_state_path();
        // A lake from before the split holds every row in one object: all
        // days are written then, and the object removed.
        let days = match affected {
            Some(affected) if !crate::store::exists(&store, &legacy).await? => {
                let mut days = affected.days;
                days.extend(opening_days_of(&batches, &affected.ids)?);
                Some(days)
            }
            _ => None,
        };
        let encoded = {
            let days = days.clone();
            tokio::task::spawn_blocking(move || -> Result<Vec<(String, bytes::Bytes)>> {
                // A rebuild's rows come sorted; an update's do not.
                let sorted = days.is_none();
                by_opening_day(&batches, days.as_ref())?
                    .into_iter()
                    .map(|(day, mut rows)| {
                        if !sorted {
                            rows = vec![in_case_state_order(&schema, &rows)?];
                        }
                        let path = case_state_path(&day);
                        let mut body = ParquetBody::new(&path, &schema)?;
                        for batch in &rows {
                            body.write(batch)?;
                        }
                        Ok((path, body.finish()?))
                    })
                    .collect()
            })
        };
        let encoded = crate::error::joined(encoded, CASE_STATE_TABLE).await?;
        tracing::debug!(
            objects = encoded.len(),
            bytes = encoded.iter().map(|(_, body)| body.len()).sum::<usize>(),
            all = days.is_none(),
            "case_state encoded."
        );
        let mut wrote = false;
        let written: BTreeSet<String> = encoded.iter().map(|(path, _)| path.clone()).collect();
        for (path, body) in encoded {
            wrote |= put_if_changed(&store, &path, body).await?;
        }
        // Objects of the rewritten days (all days, for a rebuild) that no
        // longer hold any case.
        let stale: Vec<String> = match &days {
            Some(days) => days
                .iter()
                .map(|day| case_state_path(day))
                .filter(|path| !written.contains(path))
                .collect(),
            None => crate::store::list(&store, gridstat_schemas::lake::CURATED_CASE_STATE)
                .await?
                .into_keys()
                .filter(|path| !written.contains(path))
                .collect(),
        };
        for path in stale {
            match store
                .delete(&object_store::path::Path::from(path.as_str()))
                .await
            {
                Ok(()) => wrote = true,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => return Err(crate::error::Error::Store { path, source }),
            }
        }
        Ok(wrote)
    }))
}

/// The column `name` of `batch`, as text.
fn text_column(batch: &RecordBatch, name: &str) -> Result<arrow::array::StringArray> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| arrow::error::ArrowError::SchemaError(format!("rows without {name}")))?;
    Ok(arrow::compute::cast(column, &DataType::Utf8)?
        .as_string::<i32>()
        .clone())
}

/// A row's opening day, as text, for each row of `batch`.
fn opening_days(batch: &RecordBatch) -> Result<arrow::array::StringArray> {
    let days = text_column(batch, "opened_dt")?;
    if days.null_count() > 0 {
        return Err(arrow::error::ArrowError::InvalidArgumentError(
            "a case_state row without opened_dt".into(),
        )
        .into());
    }
    Ok(days)
}

/// Each row's `case_id` of `batch`, as text.
fn case_ids(batch: &RecordBatch) -> Result<arrow::array::StringArray> {
    text_column(batch, "case_id")
}

/// The opening days of the rows of `ids` in `batches`.
fn opening_days_of(batches: &[RecordBatch], ids: &HashSet<String>) -> Result<BTreeSet<String>> {
    let mut days = BTreeSet::new();
    for batch in batches {
        let opened = opening_days(batch)?;
        for (id, day) in case_ids(batch)?.iter().zip(opened.iter()) {
            if let (Some(id), Some(day)) = (id, day) {
                if ids.contains(id) && !days.contains(day) {
                    days.insert(day.to_string());
                }
            }
        }
    }
    Ok(days)
}

/// `rows` of `case_state` as one batch in [`CASE_STATE_ORDER`] (ascending,
/// nulls last, as the SQL sorts).
fn in_case_state_order(schema: &SchemaRef, rows: &[RecordBatch]) -> Result<RecordBatch> {
    let all = arrow::compute::concat_batches(schema, rows)?;
    let columns = CASE_STATE_ORDER
        .split(", ")
        .map(|name| {
            all.column_by_name(name).cloned().ok_or_else(|| {
                arrow::error::ArrowError::SchemaError(format!("case_state without {name}")).into()
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // Compared as Arrow's row format, whose bytes sort as the columns do:
    // cheaper than comparing column by column through dynamic comparators
    // (a refresh: 24M of 4.03G instructions less). Case ids are unique, so
    // no two rows tie and any sort gives the same order.
    let options = arrow::compute::SortOptions {
        descending: false,
        nulls_first: false,
    };
    let converter = arrow::row::RowConverter::new(
        columns
            .iter()
            .map(|c| arrow::row::SortField::new_with_options(c.data_type().clone(), options))
            .collect(),
    )?;
    let rows = converter.convert_columns(&columns)?;
    let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
    order.sort_unstable_by(|a, b| rows.row(*a as usize).cmp(&rows.row(*b as usize)));
    let order = arrow::array::UInt32Array::from(order);
    Ok(arrow::compute::take_record_batch(&all, &order)?)
}

/// The rows of `batches` by opening day (only `days`, when given), each
/// day's rows in the order they come.
fn by_opening_day(
    batches: &[RecordBatch],
    days: Option<&BTreeSet<String>>,
) -> Result<BTreeMap<String, Vec<RecordBatch>>> {
    let mut out: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
    for batch in batches {
        let opened = opening_days(batch)?;
        let mut rows: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (i, day) in opened.iter().enumerate() {
            let Some(day) = day else { continue };
            if days.is_none_or(|days| days.contains(day)) {
                rows.entry(day).or_default().push(i as u32);
            }
        }
        for (day, indices) in rows {
            let taken = arrow::compute::take_record_batch(
                batch,
                &arrow::array::UInt32Array::from(indices),
            )?;
            out.entry(day.to_string()).or_default().push(taken);
        }
    }
    Ok(out)
}

/// The cases whose `case_state` row may differ once `days` are curated
/// again, given the registered `case_state` of the curated tables before.
///
/// A row depends only on its case's first opening and on the earliest
/// update of each status. So a case can change only if a row of it lies
/// in `days` now (found in the curated tables), or if one of the rows that
/// made its old `case_state` row lay there (found by that row's dates: an
/// update's `dt` is the local date of its `updated_at`). Rows of other
/// days are the same before and after, and a row that was not the first
/// of its kind cannot change a row by leaving.
fn affected_cases_sql(days: &BTreeSet<NaiveDate>, tables: &[&str]) -> String {
    let dts = sql_dates(days);
    let in_days = |column: &str| -> String {
        days.iter()
            .map(|&d| {
                let start = local_midnight(d).timestamp_millis();
                let end = local_midnight(d + chrono::Days::new(1)).timestamp_millis();
                format!("({ms} >= {start} AND {ms} < {end})", ms = epoch_ms(column))
            })
            .collect::<Vec<_>>()
            .join(" OR ")
    };
    let mut parts = vec![format!(
        "SELECT case_id FROM case_state WHERE opened_dt IN ({dts}) OR resolved_dt IN ({dts}) OR {} OR {}",
        in_days("assigned_at"),
        in_days("escalated_at")
    )];
    for (table, id) in [
        ("curated_hardships", "case_id"),
        ("curated_hazards", "hazard_id"),
        ("curated_cases", "case_id"),
    ] {
        if tables.contains(&table) {
            parts.push(format!("SELECT {id} FROM {table} WHERE dt IN ({dts})"));
        }
    }
    format!(
        "SELECT DISTINCT CAST(case_id AS VARCHAR) AS case_id FROM ({})",
        parts.join(" UNION ALL ")
    )
}

/// `case_state` after `days` were curated again: the registered old rows
/// of unaffected cases and the affected cases recomputed from every day,
/// in the order a rebuild gives.
fn updated_case_state_sql(cases_exist: bool) -> String {
    // Unsorted: the queries after it need no order, and only the objects
    // it rewrites do — each is sorted as it is encoded, so the ~100k rows
    // of the days it keeps are not sorted on the refresh's critical path.
    format!(
        "SELECT * FROM case_state WHERE case_id NOT IN (SELECT case_id FROM {AFFECTED_TABLE}) \
         UNION ALL SELECT * FROM ({})",
        case_state_sql(
            cases_exist,
            &epoch_ms,
            Computed::InMemory,
            Scope::Listed(AFFECTED_TABLE)
        )
    )
}

/// `days` as a SQL list of quoted dates.
fn sql_dates(days: &BTreeSet<NaiveDate>) -> String {
    days.iter()
        .map(|d| format!("'{}'", d.format("%Y-%m-%d")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The openings of the affected cases on the recurated `days` (`held` false)
/// and their old `case_state` rows (`held` true), with the columns of
/// [`opened_sql`].
fn affected_openings_sql(days: &BTreeSet<NaiveDate>) -> String {
    format!(
        "SELECT *, false AS held FROM ({}) \
         UNION ALL \
         SELECT case_id, case_kind, category, urgency, grid_id, town_code, county_code, opened_at, opened_dt, true \
         FROM case_state WHERE {}",
        opened_sql(Some(AFFECTED_TABLE), Some(&sql_dates(days))),
        listed_in("case_id", AFFECTED_TABLE)
    )
}

/// The openings a case's first one is the earliest of, from the rows of
/// [`affected_openings_sql`], or `None` if the recurated days and the old
/// rows do not tell; and the days of the old rows.
///
/// A case's old row holds its first opening before. The days not curated
/// again hold the same openings as before, so if that opening lies on one
/// of them, it is still the earliest there, and the case's first opening is
/// the earliest of it and those on the recurated days. If it lay on a
/// recurated day, every opening on the other days is on a later day (a
/// row's `dt` is the local date of its time), so an opening on a
/// recurated day no later than that day is the first; without one, the
/// first may lie on any later day (an opening left with a duplicate that
/// won on recuration), and only reading every day tells. A case without
/// an old row had no openings before: any it has now are on the recurated
/// days.
fn held_openings(
    rows: &RecordBatch,
    days: &BTreeSet<NaiveDate>,
) -> Result<(Option<RecordBatch>, BTreeSet<String>)> {
    let (ids, opened) = (case_ids(rows)?, opening_days(rows)?);
    let held = rows
        .column_by_name("held")
        .map(|c| c.as_boolean().clone())
        .ok_or_else(|| arrow::error::ArrowError::SchemaError("openings without held".into()))?;
    let recurated: HashSet<String> = days
        .iter()
        .map(|d| d.format("%Y-%m-%d").to_string())
        .collect();
    let mut old_days = BTreeSet::new();
    // Cases whose old first opening lay on a recurated day, with that day.
    let mut moved: Vec<(&str, &str)> = Vec::new();
    // Each case's earliest opening day among the recurated days.
    let mut earliest: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    let mut keep = Vec::with_capacity(rows.num_rows());
    for ((id, day), held) in ids.iter().zip(opened.iter()).zip(held.iter()) {
        let (Some(id), Some(day)) = (id, day) else {
            return Err(arrow::error::ArrowError::InvalidArgumentError(
                "an opening without case_id".into(),
            )
            .into());
        };
        if held == Some(true) {
            old_days.insert(day.to_string());
            let on_recurated = recurated.contains(day);
            if on_recurated {
                moved.push((id, day));
            }
            keep.push(!on_recurated);
        } else {
            earliest
                .entry(id)
                .and_modify(|first| *first = (*first).min(day))
                .or_insert(day);
            keep.push(true);
        }
    }
    let settled = moved
        .iter()
        .all(|(id, day)| earliest.get(id).is_some_and(|first| first <= day));
    if !settled {
        return Ok((None, old_days));
    }
    let kept = arrow::compute::filter_record_batch(rows, &arrow::array::BooleanArray::from(keep))?;
    let columns = (0..kept.num_columns())
        .filter(|&i| kept.schema().field(i).name() != "held")
        .collect::<Vec<_>>();
    Ok((Some(kept.project(&columns)?), old_days))
}

/// Register [`AFFECTED_TABLE`], [`OPENED_TABLE`] and [`REOPENED_TABLE`]
/// for an update of the registered `case_state` after `days` were curated
/// again.
async fn register_affected(ctx: &SessionContext, days: &BTreeSet<NaiveDate>) -> Result<Affected> {
    let tables: Vec<&str> = ["curated_hardships", "curated_hazards", "curated_cases"]
        .into_iter()
        .filter(|t| ctx.table_exist(*t).unwrap_or(false))
        .collect();
    let affected =
        crate::tables::query_batch(ctx, AFFECTED_TABLE, &affected_cases_sql(days, &tables)).await?;
    let ids = case_ids(&affected)?
        .iter()
        .flatten()
        .map(str::to_string)
        .collect();
    crate::tables::register_batches(ctx, AFFECTED_TABLE, affected.schema(), vec![affected])?;
    let held = crate::tables::query_batch(ctx, OPENED_TABLE, &affected_openings_sql(days)).await?;
    let (openings, mut rewrite) = held_openings(&held, days)?;
    let every_day_read = openings.is_none();
    let openings = match openings {
        Some(openings) => openings,
        // A case's first opening left a recurated day.
        None => {
            crate::tables::query_batch(ctx, OPENED_TABLE, &opened_sql(Some(AFFECTED_TABLE), None))
                .await?
        }
    };
    crate::tables::register_batches(ctx, OPENED_TABLE, openings.schema(), vec![openings])?;
    register_reopened(ctx, &format!("SELECT * FROM {OPENED_TABLE}")).await?;
    rewrite.extend(days.iter().map(|d| d.format("%Y-%m-%d").to_string()));
    Ok(Affected {
        ids,
        days: rewrite,
        every_day_read,
    })
}

/// Update `case_state` (registered, as the last run wrote it) after `days`
/// were curated again: a refresh recomputes the few cases those days touch
/// instead of every case, and rewrites the objects of the days they were
/// opened on.
pub(crate) async fn update_case_state(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    days: &BTreeSet<NaiveDate>,
    gate: WriteGate,
) -> Result<crate::store::BackgroundWrite> {
    let cases_exist = ctx.table_exist("curated_cases").unwrap_or(false);
    // The old rows are read three times (for the affected cases, their
    // openings and the rows kept): decoded once into memory instead.
    crate::tables::materialize(
        ctx,
        CASE_STATE_TABLE,
        &format!("SELECT * FROM {CASE_STATE_TABLE}"),
    )
    .await?;
    let affected = register_affected(ctx, days).await?;
    tracing::debug!(
        cases = affected.ids.len(),
        days = affected.days.len(),
        every_day_read = affected.every_day_read,
        "Updating case_state."
    );
    hold_case_state(
        ctx,
        store,
        &updated_case_state_sql(cases_exist),
        Some(affected),
        gate,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};

    /// The generated campaigns never open a case twice, so this path of
    /// `case_state` is checked here: the earliest opening wins (then the
    /// lower grid), hazards fixed on the spot are not cases, and a case's
    /// updates are found whichever opening they follow.
    #[tokio::test]
    async fn case_state_keeps_each_cases_first_opening() {
        let ctx = SessionContext::new();
        // Milliseconds, as in the lake (a SQL TIMESTAMP is nanoseconds).
        let ts = |s: &str| format!("arrow_cast('{s}', 'Timestamp(Millisecond, None)')");
        for sql in [
            format!(
                "CREATE TABLE curated_hardships AS SELECT * FROM (VALUES \
                 ('H1', 'medical', 'high', 'G2', 'T1', 'C1', {}, '2022-11-26'), \
                 ('H1', 'supplies', 'low', 'G1', 'T1', 'C1', {}, '2022-11-25'), \
                 ('H2', 'housing', 'low', 'G3', 'T2', 'C1', {}, '2022-11-25')) \
                 AS t(case_id, category, urgency, grid_id, town_code, county_code, visited_at, dt)",
                ts("2022-11-26T10:00:00"),
                ts("2022-11-25T09:00:00"),
                ts("2022-11-25T11:00:00"),
            ),
            format!(
                "CREATE TABLE curated_hazards AS SELECT * FROM (VALUES \
                 ('Z1', 'wiring', 'G1', 'T1', 'C1', {}, '2022-11-25', true), \
                 ('Z2', 'exits', 'G1', 'T1', 'C1', {}, '2022-11-25', false)) \
                 AS t(hazard_id, kind, grid_id, town_code, county_code, visited_at, dt, fixed_on_spot)",
                ts("2022-11-25T08:00:00"),
                ts("2022-11-25T08:30:00"),
            ),
            format!(
                "CREATE TABLE curated_cases AS SELECT * FROM (VALUES \
                 ('H1', 'assigned', {}, '2022-11-26'), \
                 ('H1', 'resolved', {}, '2022-11-27')) \
                 AS t(case_id, status, updated_at, dt)",
                ts("2022-11-26T08:00:00"),
                ts("2022-11-27T12:00:00"),
            ),
        ] {
            ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        }
        register_reopened(&ctx, &opened_sql(None, None))
            .await
            .unwrap();
        for computed in [Computed::InSql, Computed::InMemory] {
            let sql = case_state_sql(true, &epoch_ms, computed, Scope::All);
            let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
            let text = |name: &str| -> Vec<Option<String>> {
                let col =
                    arrow::compute::cast(batch.column_by_name(name).unwrap(), &DataType::Utf8)
                        .unwrap();
                let col = col.as_any().downcast_ref::<StringArray>().unwrap().clone();
                col.iter().map(|v| v.map(str::to_string)).collect()
            };
            let some = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
            // Sorted by county, town, grid, opening time.
            assert_eq!(text("case_id"), some(&["Z2", "H1", "H2"]));
            assert_eq!(text("category"), some(&["exits", "supplies", "housing"]));
            assert_eq!(text("grid_id"), some(&["G1", "G1", "G3"]));
            assert_eq!(
                text("opened_dt"),
                some(&["2022-11-25", "2022-11-25", "2022-11-25"])
            );
            assert_eq!(
                text("resolved_dt"),
                vec![None, Some("2022-11-27".to_string()), None]
            );
            let hours = batch
                .column_by_name("hours_to_resolve")
                .unwrap()
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .clone();
            assert_eq!(
                hours.iter().collect::<Vec<_>>(),
                vec![None, Some(51.0), None]
            );
        }
    }

    /// Rows of every case, in `case_state` order, as text.
    async fn case_rows(ctx: &SessionContext, sql: &str) -> Vec<String> {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        text.lines()
            .filter(|l| l.starts_with("| "))
            .skip(1)
            .map(str::to_string)
            .collect()
    }

    /// SQL for curated test tables: hardships (id, grid, time, day),
    /// case updates (id, status, time, day) and hazards handed on (id,
    /// time, day).
    struct Tables;

    impl Tables {
        fn ts(at: &str) -> String {
            format!("arrow_cast('{at}', 'Timestamp(Millisecond, None)')")
        }

        fn hardships(rows: &[(&str, &str, &str, &str)]) -> String {
            let values: Vec<String> = rows
                .iter()
                .map(|(id, grid, at, dt)| {
                    format!(
                        "('{id}', 'medical', 'low', '{grid}', 'T1', 'C1', {}, '{dt}')",
                        Self::ts(at)
                    )
                })
                .collect();
            format!(
                "CREATE OR REPLACE TABLE curated_hardships AS SELECT * FROM (VALUES {}) \
                 AS t(case_id, category, urgency, grid_id, town_code, county_code, visited_at, dt)",
                values.join(", ")
            )
        }

        fn cases(rows: &[(&str, &str, &str, &str)]) -> String {
            let values: Vec<String> = rows
                .iter()
                .map(|(id, status, at, dt)| {
                    format!("('{id}', '{status}', {}, '{dt}')", Self::ts(at))
                })
                .collect();
            format!(
                "CREATE OR REPLACE TABLE curated_cases AS SELECT * FROM (VALUES {}) \
                 AS t(case_id, status, updated_at, dt)",
                values.join(", ")
            )
        }

        fn hazards(rows: &[(&str, &str, &str)]) -> String {
            let values: Vec<String> = rows
                .iter()
                .map(|(id, at, dt)| {
                    format!(
                        "('{id}', 'exits', 'G1', 'T1', 'C1', {}, '{dt}', false)",
                        Self::ts(at)
                    )
                })
                .collect();
            format!(
                "CREATE OR REPLACE TABLE curated_hazards AS SELECT * FROM (VALUES {}) \
                 AS t(hazard_id, kind, grid_id, town_code, county_code, visited_at, dt, fixed_on_spot)",
                values.join(", ")
            )
        }
    }

    /// Build `case_state` from the tables `before` creates, replace them
    /// by those of `after`, update `case_state` for `day` curated again and
    /// rebuild it: the rows of both (as text) and what the update saw.
    async fn update_and_rebuild(
        before: &[String],
        after: &[String],
        day: &str,
    ) -> (Vec<String>, Vec<String>, Vec<String>, Affected) {
        let ctx = SessionContext::new();
        for sql in before {
            ctx.sql(sql).await.unwrap().collect().await.unwrap();
        }
        register_reopened(&ctx, &opened_sql(None, None))
            .await
            .unwrap();
        let rebuild = case_state_sql(true, &epoch_ms, Computed::InMemory, Scope::All);
        let old = ctx.sql(&rebuild).await.unwrap().collect().await.unwrap();
        crate::tables::register_batches(&ctx, "case_state", old[0].schema(), old).unwrap();
        for sql in after {
            ctx.sql(sql).await.unwrap().collect().await.unwrap();
        }
        let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        let affected = register_affected(&ctx, &BTreeSet::from([day]))
            .await
            .unwrap();
        // The update comes unsorted; its objects are sorted as encoded.
        let (schema, batches) =
            crate::tables::run_query(&ctx, "update", &updated_case_state_sql(true))
                .await
                .unwrap();
        let sorted = in_case_state_order(&schema, &batches).unwrap();
        let updated = arrow::util::pretty::pretty_format_batches(&[sorted])
            .unwrap()
            .to_string()
            .lines()
            .filter(|l| l.starts_with("| "))
            .skip(1)
            .map(str::to_string)
            .collect::<Vec<_>>();
        let old_rows = case_rows(&ctx, "SELECT * FROM case_state").await;
        register_reopened(&ctx, &opened_sql(None, None))
            .await
            .unwrap();
        let rebuilt = case_rows(&ctx, &rebuild).await;
        (updated, rebuilt, old_rows, affected)
    }

    /// An update after a day is curated again equals a rebuild, also when
    /// the rows that made a case's old row left (its first opening, its
    /// earliest update) and when other days hold the rest of a case.
    #[tokio::test]
    async fn updating_case_state_equals_rebuilding_it() {
        let before = [
            Tables::hazards(&[("Z1", "2022-11-25T08:30:00", "2022-11-25")]),
            Tables::hardships(&[
                ("H1", "G1", "2022-11-26T09:00:00", "2022-11-26"),
                ("H1", "G2", "2022-11-27T09:00:00", "2022-11-27"),
                ("H2", "G3", "2022-11-25T10:00:00", "2022-11-25"),
                ("H3", "G3", "2022-11-27T10:00:00", "2022-11-27"),
            ]),
            Tables::cases(&[
                ("H2", "assigned", "2022-11-26T08:00:00", "2022-11-26"),
                ("H2", "assigned", "2022-11-27T08:00:00", "2022-11-27"),
                ("H2", "resolved", "2022-11-28T12:00:00", "2022-11-28"),
                ("H3", "resolved", "2022-11-27T12:00:00", "2022-11-27"),
                ("Z1", "escalated", "2022-11-26T11:00:00", "2022-11-26"),
            ]),
        ];
        // 2022-11-26 curated again: H1's first opening and H2's first
        // assignment left, Z1 was assigned, H4 was raised.
        let after = [
            Tables::hardships(&[
                ("H1", "G2", "2022-11-27T09:00:00", "2022-11-27"),
                ("H2", "G3", "2022-11-25T10:00:00", "2022-11-25"),
                ("H3", "G3", "2022-11-27T10:00:00", "2022-11-27"),
                ("H4", "G1", "2022-11-26T15:00:00", "2022-11-26"),
            ]),
            Tables::cases(&[
                ("H2", "assigned", "2022-11-27T08:00:00", "2022-11-27"),
                ("H2", "resolved", "2022-11-28T12:00:00", "2022-11-28"),
                ("H3", "resolved", "2022-11-27T12:00:00", "2022-11-27"),
                ("Z1", "assigned", "2022-11-26T10:00:00", "2022-11-26"),
                ("Z1", "escalated", "2022-11-26T11:00:00", "2022-11-26"),
            ]),
        ];
        let (updated, rebuilt, old_rows, affected) =
            update_and_rebuild(&before, &after, "2022-11-26").await;
        assert_eq!(updated, rebuilt);
        assert_eq!(rebuilt.len(), 5, "{rebuilt:#?}");
        // H1's first opening left 2022-11-26 and its next is on a day not
        // curated again: only every day's openings tell.
        assert!(affected.every_day_read);
        // The update changed H1, H2, Z1 and added H4; H3 stayed.
        let kept: Vec<&String> = rebuilt.iter().filter(|r| old_rows.contains(r)).collect();
        assert_eq!(kept.len(), 1, "{kept:#?}");
        assert!(kept[0].contains("H3"));
    }

    /// When the recurated day and the old rows tell each case's first
    /// opening, the update reads no other day's openings, and rewrites the
    /// days the cases were first opened on before.
    #[tokio::test]
    async fn updating_case_state_from_the_old_rows_equals_rebuilding_it() {
        let before = [
            Tables::hazards(&[("Z1", "2022-11-27T08:30:00", "2022-11-27")]),
            Tables::hardships(&[
                ("H1", "G1", "2022-11-25T09:00:00", "2022-11-25"),
                ("H1", "G2", "2022-11-27T09:00:00", "2022-11-27"),
                ("H2", "G3", "2022-11-27T10:00:00", "2022-11-27"),
                ("H3", "G3", "2022-11-26T10:00:00", "2022-11-26"),
                ("H5", "G2", "2022-11-26T09:00:00", "2022-11-26"),
                ("H5", "G2", "2022-11-28T09:00:00", "2022-11-28"),
            ]),
            Tables::cases(&[
                ("H1", "assigned", "2022-11-25T12:00:00", "2022-11-25"),
                ("H3", "resolved", "2022-11-27T12:00:00", "2022-11-27"),
            ]),
        ];
        // 2022-11-26 curated again: H1 opened there again (after its first
        // opening), Z1 and H2 opened there earlier than before, H5's
        // opening there moved earlier, H3 was assigned, H6 was raised.
        let after = [
            Tables::hazards(&[
                ("Z1", "2022-11-26T08:30:00", "2022-11-26"),
                ("Z1", "2022-11-27T08:30:00", "2022-11-27"),
            ]),
            Tables::hardships(&[
                ("H1", "G1", "2022-11-25T09:00:00", "2022-11-25"),
                ("H1", "G3", "2022-11-26T09:00:00", "2022-11-26"),
                ("H1", "G2", "2022-11-27T09:00:00", "2022-11-27"),
                ("H2", "G1", "2022-11-26T11:00:00", "2022-11-26"),
                ("H2", "G3", "2022-11-27T10:00:00", "2022-11-27"),
                ("H3", "G3", "2022-11-26T10:00:00", "2022-11-26"),
                ("H5", "G1", "2022-11-26T08:00:00", "2022-11-26"),
                ("H5", "G2", "2022-11-28T09:00:00", "2022-11-28"),
                ("H6", "G1", "2022-11-26T15:00:00", "2022-11-26"),
            ]),
            Tables::cases(&[
                ("H1", "assigned", "2022-11-25T12:00:00", "2022-11-25"),
                ("H3", "assigned", "2022-11-26T11:00:00", "2022-11-26"),
                ("H3", "resolved", "2022-11-27T12:00:00", "2022-11-27"),
            ]),
        ];
        let (updated, rebuilt, _, affected) =
            update_and_rebuild(&before, &after, "2022-11-26").await;
        assert_eq!(updated, rebuilt);
        assert_eq!(rebuilt.len(), 6, "{rebuilt:#?}");
        assert!(!affected.every_day_read);
        // Z1 and H2 were first opened on 2022-11-27 before, H1 on
        // 2022-11-25: their objects there are rewritten too.
        assert_eq!(
            affected.days,
            BTreeSet::from(["2022-11-25", "2022-11-26", "2022-11-27"].map(String::from))
        );
    }
}
