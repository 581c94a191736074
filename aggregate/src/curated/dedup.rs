//! Curation: deduplicated, registry-joined daily tables.
//!
//! Deduplication: within a day partition, rows sharing a `submission_id`
//! keep the first received — the earliest transport timestamp, then the
//! lowest (topic, partition, offset). A resend is byte-identical, so it has
//! the same event time and lands in the same day partition.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use futures::{FutureExt, StreamExt};
use object_store::{ObjectMeta, ObjectStore};

use super::resends::{superseded_table, RawTable};
use crate::error::{query, Result};
use crate::store::{plain_schema, put_if_changed, write_parquet, ParquetBody};
use crate::tables::{register_raw_day, RAW_CASES, RAW_VISITS};
use gridstat_schemas::arrow_schema::{raw_cases_schema, raw_visits_schema};
use gridstat_schemas::lake::dt_partition;

const VISIT_COLUMNS: &str = "r.submission_id, r.sent_at, r.visited_at, r.reporter_id, r.reporter_role, \
    r.grid_id, g.village_code, g.town_code, g.county_code, r.target_kind, r.target_id, \
    r.residents_recorded, r.residents_present, r.newcomers_registered, r.residents_tested, r.residents_vaccinated, \
    r.special_groups, r.safety_checks, r.hazards, r.hardships, r.enlisted_building_leads, r.enlisted_volunteers, \
    r.hazards_found, r.hazards_fixed_on_spot, r.hardships_raised, r.reporter_unit, \
    r.source_topic, r.source_partition, r.source_offset, r.received_at";

const CASE_COLUMNS: &str = "r.submission_id, r.sent_at, r.case_id, r.case_kind, r.grid_id, g.town_code, g.county_code, \
    r.status, r.updated_at, r.handler_id, r.source_topic, r.source_partition, r.source_offset, r.received_at";

/// Deduplicate the raw rows of the days whose tables are `tables` (one
/// per day, in order, with its day; see [`crate::tables::register_raw_day`])
/// within each day, a row's day being its table's index as [`DAY_COLUMN`].
/// Rows of a day whose submission another day's copy supersedes (listed
/// in the table `superseded`, see [`super::resends`]) are left out first.
///
/// Most submissions arrive once: only those with several copies are
/// ranked, and of those only the first row is kept — so two rows of the
/// same message (the same topic, partition and offset, written twice by
/// a replay) collapse into one too. Each join's left side is the one
/// hashed, without statistics to say otherwise, so the narrow sides come
/// first: hashing the day's raw rows held them twice, once there and once
/// in the sort (2.1 GiB at 10M). Rows come sorted by day first, then by
/// `order`, with [`DAY_COLUMN`] last.
///
/// A day curated alone (every large day) is read without the day in any
/// key: with that constant among the join keys, DataFusion held the day's
/// raw rows once more (the 10M lake's largest day, 2.16M visits, peaked at
/// 5.6 GB instead of 2.3 GB); its rows get the day's index 0 at the end.
fn dedup_sql(
    tables: &[(String, NaiveDate)],
    superseded: Option<&str>,
    columns: &str,
    order: &str,
) -> String {
    let alone = tables.len() == 1;
    let raw = tables
        .iter()
        .enumerate()
        .map(|(i, (table, day))| {
            let rows = match superseded {
                None => table.clone(),
                Some(s) => format!(
                    "(SELECT * FROM {table} WHERE submission_id NOT IN \
                       (SELECT submission_id FROM {s} WHERE dt = '{}'))",
                    day.format("%Y-%m-%d")
                ),
            };
            match alone {
                true => format!("SELECT * FROM {rows}"),
                false => format!("SELECT *, {i} AS {DAY_COLUMN} FROM {rows}"),
            }
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
         firsts AS (SELECT * EXCLUDE (rn) FROM ( \
           SELECT x.*, ROW_NUMBER() OVER (PARTITION BY {x}x.submission_id \
             ORDER BY x.received_at ASC NULLS LAST, x.source_topic, x.source_partition, x.source_offset) AS rn \
           FROM (SELECT {day}submission_id FROM copies WHERE copies > 1) m \
           JOIN raw x ON {xm}x.submission_id = m.submission_id) \
           WHERE rn = 1), \
         kept AS (SELECT r.* FROM copies c JOIN raw r ON {rc}r.submission_id = c.submission_id WHERE c.copies = 1 \
           UNION ALL SELECT * FROM firsts) \
         SELECT {columns}, {day_out} FROM registry_grids g RIGHT JOIN kept r ON r.grid_id = g.grid_id \
         ORDER BY {r}{order}",
        day = key(""),
        x = key("x."),
        r = key("r."),
        xm = same_day("x", "m"),
        rc = same_day("r", "c"),
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
    let names = |table: &str| -> Vec<(String, NaiveDate)> {
        days.iter()
            .map(|day| (format!("raw_{table}_{}", day.format("%Y%m%d")), *day))
            .collect()
    };
    let (visit_tables, case_tables) = (names("visits"), names("cases"));
    let (raw_visits, raw_cases) = (raw_visits_schema(), raw_cases_schema());
    futures::future::try_join_all(days.iter().zip(&visit_tables).zip(&case_tables).flat_map(
        |((&day, visits), cases)| {
            [
                register_raw_day(ctx, &RAW_VISITS, &raw_visits, day, &visits.0, listed.visits)
                    .boxed(),
                register_raw_day(ctx, &RAW_CASES, &raw_cases, day, &cases.0, listed.cases).boxed(),
            ]
        },
    ))
    .await?;
    let superseded = |table| {
        let name = superseded_table(table);
        ctx.table_exist(name.as_str())
            .unwrap_or(false)
            .then_some(name)
    };
    let visits_sql = dedup_sql(
        &visit_tables,
        superseded(RawTable::Visits).as_deref(),
        VISIT_COLUMNS,
        "g.county_code, g.town_code, r.grid_id, r.visited_at, r.submission_id",
    );
    let cases_sql = dedup_sql(
        &case_tables,
        superseded(RawTable::Cases).as_deref(),
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
    for (table, _) in visit_tables.iter().chain(&case_tables) {
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

/// Delete the curated files of a day that no longer has raw files.
pub(crate) async fn clear_day(store: &Arc<dyn ObjectStore>, day: NaiveDate) -> Result<()> {
    for table in ["visits", "cases", "hardships", "hazards"] {
        crate::store::delete_prefix(store, &format!("curated/{table}/{}", dt_partition(day)))
            .await?;
    }
    Ok(())
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
