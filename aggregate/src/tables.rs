//! Registering the lake's tables in a DataFusion session, under the names
//! documented in `docs/schema.md` (used by `gridstat sql` too).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{Duration, NaiveDate};
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::execution::cache::cache_manager::CachedFileList;
use datafusion::execution::cache::TableScopedPath;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::{ParquetReadOptions, SessionConfig};
use gridstat_schemas::arrow_schema::{quarantine_schema, raw_cases_schema, raw_visits_schema, TZ};
use gridstat_schemas::lake;
use gridstat_schemas::time::local_midnight;
use gridstat_schemas::Registry;
use object_store::{ObjectMeta, ObjectStore};
use url::Url;

use crate::error::{query, Result};

/// The URL the lake's object store is registered under in a session.
pub const LAKE_URL: &str = "gridstat://lake/";

/// A session over `store` with nothing registered yet.
pub fn session(store: Arc<dyn ObjectStore>) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(2)
        .with_information_schema(true);
    // Every query would otherwise read every file's footer for statistics
    // at planning time; the jobs scan whole day partitions anyway.
    config.options_mut().execution.collect_statistics = false;
    // Grouping visits by target reduces a partition's rows by a third at
    // most (10M visits → 6.3M partial groups → 1.67M targets): the partial
    // pass is then wasted work. Skipping it below a halving saves 0.3–0.5 s
    // on each of the two target group-bys of the 10M lake.
    config
        .options_mut()
        .execution
        .skip_partial_aggregation_probe_ratio_threshold = 0.5;
    // The jobs' queries reach their plan in one optimizer pass (the
    // outputs are byte-identical with three); the further passes only
    // re-walk every plan, 2 % of a refresh's instructions.
    config.options_mut().optimizer.max_passes = 1;
    let ctx = SessionContext::new_with_config(config);
    let url = Url::parse(LAKE_URL).expect("a valid URL");
    ctx.register_object_store(&url, store);
    ctx
}

/// Switch off DataFusion's dynamic filters in `ctx`: filters that a join
/// builds from its build side and pushes into the probe side's scan. They
/// pay on a rebuild's large joins (−4 % of its time), but a run over a
/// few small days only plans and evaluates them (+3 % of a one-day
/// refresh's instructions).
pub(crate) fn without_dynamic_filters(ctx: &SessionContext) -> Result<()> {
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        // `set`, unlike the field, also switches off the per-operator options.
        .set(
            "datafusion.optimizer.enable_dynamic_filter_pushdown",
            "false",
        )
        .map_err(query("session settings"))
}

/// How gridstat's queries get the tables it computes outside SQL (or in
/// a query of their own): DuckDB's script keeps their SQL inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Computed {
    /// By their SQL, inline (DuckDB's script).
    InSql,
    /// From in-memory tables built beforehand (gridstat).
    InMemory,
}

/// How a table is laid out in the lake.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    /// SQL name.
    pub name: &'static str,
    /// Prefix in the lake.
    pub prefix: &'static str,
    /// Hive partition columns.
    pub partitions: &'static [&'static str],
}

/// `case_state`: rewritten by the rollup step, which registers it again.
pub const CASE_STATE: TableSpec = TableSpec {
    name: "case_state",
    prefix: lake::CURATED_CASE_STATE,
    partitions: &[],
};

/// `raw_visits`, as ingest writes it.
pub const RAW_VISITS: TableSpec = TableSpec {
    name: "raw_visits",
    prefix: lake::RAW_VISITS,
    partitions: &["dt", "county"],
};

/// `raw_cases`, as ingest writes it.
pub const RAW_CASES: TableSpec = TableSpec {
    name: "raw_cases",
    prefix: lake::RAW_CASES,
    partitions: &["dt", "county"],
};

/// `quarantine`, as ingest writes it.
pub const QUARANTINE: TableSpec = TableSpec {
    name: "quarantine",
    prefix: lake::QUARANTINE,
    partitions: &["dt"],
};

/// The tables ingest writes, which an aggregate run lists first.
pub const RAW_TABLES: [TableSpec; 3] = [RAW_VISITS, RAW_CASES, QUARANTINE];

/// Every Parquet table in the lake.
pub const TABLES: &[TableSpec] = &[
    RAW_VISITS,
    RAW_CASES,
    QUARANTINE,
    TableSpec {
        name: "curated_visits",
        prefix: lake::CURATED_VISITS,
        partitions: &["dt"],
    },
    TableSpec {
        name: "curated_cases",
        prefix: lake::CURATED_CASES,
        partitions: &["dt"],
    },
    TableSpec {
        name: "curated_hardships",
        prefix: "curated/hardships",
        partitions: &["dt"],
    },
    TableSpec {
        name: "curated_hazards",
        prefix: "curated/hazards",
        partitions: &["dt"],
    },
    CASE_STATE,
    TableSpec {
        name: "rollups_daily",
        prefix: "rollups/daily",
        partitions: &["dt"],
    },
    TableSpec {
        name: "rollups_cumulative",
        prefix: "rollups/cumulative",
        partitions: &["dt"],
    },
    TableSpec {
        name: "rollups_units",
        prefix: "rollups/units",
        partitions: &["dt"],
    },
    TableSpec {
        name: "quality",
        prefix: "rollups/quality",
        partitions: &[],
    },
    TableSpec {
        name: "resends",
        prefix: "rollups/resends",
        partitions: &[],
    },
];

fn known_schema(name: &str) -> Option<SchemaRef> {
    match name {
        "raw_visits" => Some(raw_visits_schema()),
        "raw_cases" => Some(raw_cases_schema()),
        "quarantine" => Some(quarantine_schema()),
        _ => None,
    }
}

/// Register one table. A table with no files yet is registered empty when
/// its schema is known, and skipped otherwise. Returns whether it exists.
pub async fn register(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    spec: &TableSpec,
) -> Result<bool> {
    register_as(ctx, store, spec, known_schema(spec.name)).await
}

/// The table schema DataFusion infers from Parquet files written with
/// `written`: with its defaults, strings and binaries read as views and
/// no metadata. A table registered with this schema plans exactly as one
/// whose schema was inferred.
pub(crate) fn as_inferred(written: &SchemaRef) -> SchemaRef {
    Arc::new(
        datafusion::datasource::physical_plan::parquet::transform_schema_to_view(written)
            .with_metadata(Default::default()),
    )
}

/// [`register`] with the schema of its files (without the partition
/// columns) when known; without it, the schema is inferred from every
/// file's footer.
pub(crate) async fn register_as(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    spec: &TableSpec,
    schema: Option<SchemaRef>,
) -> Result<bool> {
    let has_files = crate::store::has_parquet(store, spec.prefix).await?;
    ctx.deregister_table(spec.name).map_err(query(spec.name))?;
    let partitions: Vec<(String, DataType)> = spec
        .partitions
        .iter()
        .map(|p| ((*p).to_string(), DataType::Utf8))
        .collect();
    if !has_files {
        // Only tables whose schema is fixed are registered empty.
        let Some(schema) = known_schema(spec.name) else {
            return Ok(false);
        };
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(
            partitions
                .iter()
                .map(|(n, t)| Field::new(n, t.clone(), false)),
        );
        let empty = MemTable::try_new(Arc::new(Schema::new(fields)), vec![vec![]])
            .map_err(query(spec.name))?;
        ctx.register_table(spec.name, Arc::new(empty))
            .map_err(query(spec.name))?;
        return Ok(true);
    }
    let mut opts = ParquetReadOptions::default().table_partition_cols(partitions);
    if let Some(s) = schema.as_ref() {
        opts = opts.schema(s);
    }
    let path = format!("{LAKE_URL}{}/", spec.prefix);
    ctx.register_parquet(spec.name, &path, opts)
        .await
        .map_err(query(spec.name))?;
    Ok(true)
}

/// Give the registered table `spec` the listing `files` of its prefix,
/// in the session's cache of listings, as if its first query had listed
/// them. A table the session never cached (caching off, or over its
/// limit) lists its files as usual.
pub(crate) fn seed_listing(ctx: &SessionContext, spec: &TableSpec, files: Vec<ObjectMeta>) {
    seed_listing_of(ctx, spec.name, spec.prefix, files);
}

/// [`seed_listing`] for the table `name` of the objects under `prefix`.
fn seed_listing_of(ctx: &SessionContext, name: &str, prefix: &str, files: Vec<ObjectMeta>) {
    if let Some(cache) = ctx.runtime_env().cache_manager.get_list_files_cache() {
        let key = TableScopedPath {
            table: Some(TableReference::bare(name)),
            path: object_store::path::Path::from(prefix),
        };
        cache.put(&key, CachedFileList::from(files));
    }
}

/// Register the files of one day of the raw table `spec` as `name`, a
/// table without the `dt` column. Curation reads each day through a table
/// of its own: listing only that day's directory keeps a refresh from
/// walking every raw file of the campaign. `listed`, the run's listing of
/// the whole table, spares listing the day again (unless it has none of
/// the day's objects).
pub(crate) async fn register_raw_day(
    ctx: &SessionContext,
    spec: &TableSpec,
    schema: &Schema,
    day: NaiveDate,
    name: &str,
    listed: &[ObjectMeta],
) -> Result<()> {
    let partitions: Vec<(String, DataType)> = spec
        .partitions
        .iter()
        .filter(|p| **p != "dt")
        .map(|p| ((*p).to_string(), DataType::Utf8))
        .collect();
    let opts = ParquetReadOptions::default()
        .table_partition_cols(partitions)
        .schema(schema);
    let prefix = format!("{}/{}", spec.prefix, lake::dt_partition(day));
    ctx.deregister_table(name).map_err(query(name))?;
    ctx.register_parquet(name, &format!("{LAKE_URL}{prefix}/"), opts)
        .await
        .map_err(query(name))?;
    let under = object_store::path::Path::from(prefix.as_str());
    let day_objects: Vec<ObjectMeta> = listed
        .iter()
        .filter(|o| o.location.prefix_matches(&under))
        .cloned()
        .collect();
    // A day the listing has nothing of is listed afresh.
    if !day_objects.is_empty() {
        seed_listing_of(ctx, name, &prefix, day_objects);
    }
    Ok(())
}

/// Register one Parquet object of the lake as a table.
pub(crate) async fn register_file(ctx: &SessionContext, name: &str, path: &str) -> Result<()> {
    ctx.deregister_table(name).map_err(query(name))?;
    ctx.register_parquet(
        name,
        format!("{LAKE_URL}{path}"),
        ParquetReadOptions::default(),
    )
    .await
    .map_err(query(name))?;
    Ok(())
}

/// Register every lake table that exists, plus `registry_grids`.
pub async fn register_all(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    registry: &Registry,
) -> Result<Vec<&'static str>> {
    register_some(ctx, store, registry, TABLES).await
}

/// Register what an aggregate run reads: every table but the daily and
/// cumulative rollups, which it only writes (and whose registration
/// reads every file's footer). Without `curated`, the curated tables are
/// left for after curation rewrites them (`case_state` is registered: its
/// update starts from the last run's).
pub(crate) async fn register_inputs(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    registry: &Registry,
    curated: bool,
) -> Result<Vec<&'static str>> {
    let inputs: Vec<TableSpec> = TABLES
        .iter()
        .filter(|t| !matches!(t.name, "rollups_daily" | "rollups_cumulative"))
        .filter(|t| curated || !is_curated_day_table(t))
        .copied()
        .collect();
    register_some(ctx, store, registry, &inputs).await
}

/// A curated table partitioned by day (not `case_state`), rewritten by
/// curation.
pub(crate) fn is_curated_day_table(spec: &TableSpec) -> bool {
    spec.prefix.starts_with("curated/") && spec.name != CASE_STATE.name
}

async fn register_some(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    registry: &Registry,
    specs: &[TableSpec],
) -> Result<Vec<&'static str>> {
    // Together: each lists its prefix, and some read their files' footers.
    let exists =
        futures::future::try_join_all(specs.iter().map(|spec| register(ctx, store, spec))).await?;
    let mut names: Vec<&'static str> = specs
        .iter()
        .zip(exists)
        .filter(|(_, exists)| *exists)
        .map(|(spec, _)| spec.name)
        .collect();
    register_registry(ctx, registry)?;
    names.push("registry_grids");
    Ok(names)
}

/// Schema of the `registry_grids` table.
pub fn registry_schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        s("grid_id"),
        s("grid_name"),
        s("village_code"),
        s("village_name"),
        s("town_code"),
        s("town_name"),
        s("county_code"),
        s("county_name"),
        s("city_code"),
        s("city_name"),
        Field::new("households", DataType::Int64, false),
    ]))
}

/// The registry as one flat table, one row per grid.
pub fn registry_batch(r: &Registry) -> Result<RecordBatch> {
    let col = |f: &dyn Fn(&gridstat_schemas::registry::Grid) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(r.grids.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        col(&|g| g.id.clone()),
        col(&|g| g.name.clone()),
        col(&|g| r.villages[g.village].code.clone()),
        col(&|g| r.villages[g.village].name.clone()),
        col(&|g| r.towns[g.town].code.clone()),
        col(&|g| r.towns[g.town].name.clone()),
        col(&|g| r.counties[g.county].code.clone()),
        col(&|g| r.counties[g.county].name.clone()),
        col(&|_| r.city.code.clone()),
        col(&|_| r.city.name.clone()),
        Arc::new(Int64Array::from_iter_values(
            r.grids.iter().map(|g| i64::from(g.households)),
        )),
    ];
    Ok(RecordBatch::try_new(registry_schema(), columns)?)
}

pub(crate) fn register_registry(ctx: &SessionContext, r: &Registry) -> Result<()> {
    register_batches(
        ctx,
        "registry_grids",
        registry_schema(),
        vec![registry_batch(r)?],
    )
}

/// The campaign's days: `dt` (ISO string, as in partitions), `day_end`
/// (next local midnight), and the openings before which a case still open
/// then is overdue: `overdue_cutoff` (day end − the normal limit, also
/// hazards'), `overdue_cutoff_urgent` and `overdue_cutoff_low`.
pub fn days_batch(
    first: NaiveDate,
    last: NaiveDate,
    limits: crate::OverdueLimits,
) -> Result<RecordBatch> {
    let days: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= last).collect();
    let ends: Vec<i64> = days
        .iter()
        .map(|d| (local_midnight(*d) + Duration::days(1)).timestamp_millis())
        .collect();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some(TZ.into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("dt", DataType::Utf8, false),
        Field::new("day", DataType::Date32, false),
        Field::new("day_end", ts.clone(), false),
        Field::new("overdue_cutoff", ts.clone(), false),
        Field::new("overdue_cutoff_urgent", ts.clone(), false),
        Field::new("overdue_cutoff_low", ts, false),
    ]));
    let cutoff = |hours: i64| {
        Arc::new(
            TimestampMillisecondArray::from(
                ends.iter()
                    .map(|e| e - hours * 3_600_000)
                    .collect::<Vec<_>>(),
            )
            .with_timezone(TZ),
        )
    };
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                days.iter().map(|d| d.format("%Y-%m-%d").to_string()),
            )),
            Arc::new(Date32Array::from_iter_values(
                days.iter().map(|d| (*d - epoch).num_days() as i32),
            )),
            Arc::new(TimestampMillisecondArray::from(ends.clone()).with_timezone(TZ)),
            cutoff(limits.normal),
            cutoff(limits.urgent),
            cutoff(limits.low),
        ],
    )?)
}

pub(crate) fn register_days(
    ctx: &SessionContext,
    first: NaiveDate,
    last: NaiveDate,
    limits: crate::OverdueLimits,
) -> Result<()> {
    let batch = days_batch(first, last, limits)?;
    register_batches(ctx, "days", batch.schema(), vec![batch])
}

/// Register `batches` as the in-memory table `name`, replacing any.
pub(crate) fn register_batches(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<()> {
    let table = MemTable::try_new(schema, vec![batches]).map_err(query(name))?;
    ctx.deregister_table(name).map_err(query(name))?;
    ctx.register_table(name, Arc::new(table))
        .map_err(query(name))?;
    Ok(())
}

/// Run `sql` and register its result as the in-memory table `name`,
/// replacing any (`sql` may read the table it replaces); returns the rows.
pub(crate) async fn materialize(
    ctx: &SessionContext,
    name: &str,
    sql: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let (schema, batches) = run_query(ctx, name, sql).await?;
    register_batches(ctx, name, Arc::clone(&schema), batches.clone())?;
    Ok((schema, batches))
}

/// Run `sql` and return its result as one batch (with the planned schema
/// when it has no rows).
pub(crate) async fn query_batch(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
) -> Result<RecordBatch> {
    let (planned, batches) = run_query(ctx, what, sql).await?;
    let schema = batches.first().map_or(planned, |b| b.schema());
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

/// Run `sql` and collect its batches and schema, logging at trace level
/// how long planning and running took.
pub(crate) async fn run_query(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let (schema, stream, timing) = stream_query(ctx, what, sql).await?;
    let batches = datafusion::physical_plan::common::collect(stream)
        .await
        .map_err(query(what))?;
    timing.done();
    Ok((schema, batches))
}

/// Plan `sql` and start it: its schema, its stream of batches, and the
/// timing to report once the stream is drained.
pub(crate) async fn stream_query<'a>(
    ctx: &SessionContext,
    what: &'a str,
    sql: &str,
) -> Result<(
    SchemaRef,
    datafusion::execution::SendableRecordBatchStream,
    QueryTiming<'a>,
)> {
    let started = std::time::Instant::now();
    let df = ctx.sql(sql).await.map_err(query(what))?;
    let logical = started.elapsed().as_secs_f64();
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let task = Arc::new(df.task_ctx());
    let plan = df.create_physical_plan().await.map_err(query(what))?;
    let physical = started.elapsed().as_secs_f64();
    // The plan is kept for its metrics only when they will be logged.
    let traced = tracing::enabled!(target: "gridstat_aggregate::plans", tracing::Level::TRACE)
        .then(|| Arc::clone(&plan));
    let stream = datafusion::physical_plan::execute_stream(plan, task).map_err(query(what))?;
    Ok((
        schema,
        stream,
        QueryTiming {
            what,
            started,
            logical,
            physical,
            plan: traced,
        },
    ))
}

/// When a query was planned and started, for the trace log.
pub(crate) struct QueryTiming<'a> {
    what: &'a str,
    started: std::time::Instant,
    logical: f64,
    physical: f64,
    /// The plan, when its metrics are to be logged.
    plan: Option<Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
}

impl QueryTiming<'_> {
    /// Log the planning and run times (the run ends now).
    pub(crate) fn done(self) {
        tracing::trace!(
            what = self.what,
            logical = self.logical,
            physical = self.physical - self.logical,
            run = self.started.elapsed().as_secs_f64() - self.physical,
            "Query done."
        );
        if let Some(plan) = self.plan {
            // `GRIDSTAT_LOG=gridstat_aggregate::plans=trace`: where each
            // query's time went, operator by operator (EXPLAIN ANALYZE).
            tracing::trace!(
                target: "gridstat_aggregate::plans",
                what = self.what,
                "Plan with metrics:\n{}",
                datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
                    plan.as_ref()
                )
                .indent(true)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    use object_store::local::LocalFileSystem;
    use object_store::{ObjectStoreExt, PutPayload};

    const DAYS: TableSpec = TableSpec {
        name: "days_table",
        prefix: "days",
        partitions: &["dt"],
    };

    async fn put_rows(store: &Arc<dyn ObjectStore>, path: &str, rows: i64) {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(0..rows))],
        )
        .unwrap();
        crate::store::write_parquet(store, path, schema, &[batch])
            .await
            .unwrap();
    }

    /// A store over a new temporary directory (kept while the guard lives).
    fn local_store() -> (tempfile::TempDir, Arc<dyn ObjectStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        (dir, store)
    }

    async fn count(ctx: &SessionContext, sql: &str) -> i64 {
        let batch = query_batch(ctx, "count", sql).await.unwrap();
        batch.column(0).as_primitive::<Int64Type>().value(0)
    }

    /// A table's queries read the listing it was seeded with, not the
    /// store's: an aggregate run's queries see the raw files its scan saw.
    #[tokio::test]
    async fn a_seeded_table_reads_the_seeded_listing() {
        let (_dir, store) = local_store();
        put_rows(&store, "days/dt=2022-11-25/a.parquet", 3).await;
        let seeded = crate::store::list_parquet(&store, DAYS.prefix)
            .await
            .unwrap();
        put_rows(&store, "days/dt=2022-11-26/b.parquet", 5).await;
        let ctx = session(Arc::clone(&store));
        assert!(register_as(&ctx, &store, &DAYS, None).await.unwrap());
        seed_listing(&ctx, &DAYS, seeded);
        let days = "SELECT COUNT(*) FROM days_table WHERE dt IN ('2022-11-25', '2022-11-26')";
        assert_eq!(count(&ctx, days).await, 3);
        assert_eq!(count(&ctx, "SELECT COUNT(*) FROM days_table").await, 3);
        // Registered again, the table lists the store.
        assert!(register_as(&ctx, &store, &DAYS, None).await.unwrap());
        assert_eq!(count(&ctx, days).await, 8);
    }

    /// A day's table for curation reads that day's objects of the run's
    /// listing: not a file put since, nor another day's.
    #[tokio::test]
    async fn a_raw_day_reads_its_day_of_the_listing() {
        let (_dir, store) = local_store();
        put_rows(&store, "days/dt=2022-11-25/county=1/a.parquet", 3).await;
        put_rows(&store, "days/dt=2022-11-26/county=1/b.parquet", 5).await;
        let listed = crate::store::list_parquet(&store, DAYS.prefix)
            .await
            .unwrap();
        put_rows(&store, "days/dt=2022-11-25/county=2/c.parquet", 7).await;
        let ctx = session(Arc::clone(&store));
        let schema = Schema::new(vec![Field::new("x", DataType::Int64, false)]);
        let day = NaiveDate::from_ymd_opt(2022, 11, 25).unwrap();
        register_raw_day(&ctx, &DAYS, &schema, day, "day", &listed)
            .await
            .unwrap();
        assert_eq!(count(&ctx, "SELECT COUNT(*) FROM day").await, 3);
        // Without a listing of its day, the table lists the store.
        register_raw_day(&ctx, &DAYS, &schema, day, "day", &[])
            .await
            .unwrap();
        assert_eq!(count(&ctx, "SELECT COUNT(*) FROM day").await, 10);
    }

    #[tokio::test]
    async fn parquet_is_found_at_any_depth_and_only_parquet() {
        let (_dir, store) = local_store();
        let has = |prefix: &'static str| {
            let store = Arc::clone(&store);
            async move { crate::store::has_parquet(&store, prefix).await.unwrap() }
        };
        assert!(!has("t").await, "no such prefix");
        store
            .put(&"t/dt=1/notes.txt".into(), PutPayload::from_static(b"x"))
            .await
            .unwrap();
        assert!(!has("t").await, "only other files");
        put_rows(&store, "t/dt=2/county=9/p.parquet", 1).await;
        assert!(has("t").await);
        assert!(has("t/dt=2").await);
        assert!(!has("t/dt=1").await);
    }
}
