//! Step 2: rollups at four levels (grid, town, county, city), per day and
//! cumulative, computed from the curated tables.
//!
//! Additive figures are summed per grid and day first, then up the
//! hierarchy, so children always sum to their parent. Households,
//! enterprises and venues belong to one grid, so their distinct counts are
//! additive too. Distinct reporters and resolve-time percentiles are not
//! additive and are computed per level.

mod areas;
mod columns;
mod final_tables;
mod grid_day;
mod quality;
mod reporters;
mod running;
mod start;

pub use areas::LEVELS;
pub use columns::{FLOWS, REPORTERS, STATES};
pub(crate) use final_tables::final_sql;
pub(crate) use grid_day::firsts_per_grid_sql;
#[cfg(test)]
pub(crate) use grid_day::OPEN_CASES_SQL;
pub(crate) use quality::{quality_sql, write_quality};
pub(crate) use reporters::{write_reporter_firsts, REPORTER_FIRSTS};
pub(crate) use running::area_totals_sql;
pub(crate) use start::earliest_resolution_before;

use crate::error::Result;
use crate::open_cases::Days;
use crate::tables::{query_batch, register_batches, Computed};
use areas::{area_day_sql, hours_sql, materialize_hours};
use arrow::array::{AsArray, RecordBatch};
use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use grid_day::{
    day_chunks, grid_day_sql, grid_firsts_sql, grid_targets_sql, materialize_open_cases, BY_DAYS,
};
use object_store::ObjectStore;
use reporters::{reporter_firsts_sql, reporters_sql};
use running::running_sums;
use std::collections::BTreeMap;
use std::sync::Arc;

async fn materialize(ctx: &SessionContext, name: &str, sqls: &[String]) -> Result<()> {
    let started = std::time::Instant::now();
    let mut schema = None;
    let mut batches = Vec::new();
    for sql in sqls {
        let (planned, got) = crate::tables::run_query(ctx, name, sql).await?;
        schema.get_or_insert(planned);
        batches.extend(got);
    }
    if let Some(schema) = schema {
        register_batches(ctx, name, schema, batches)?;
    }
    tracing::debug!(
        table = name,
        queries = sqls.len(),
        seconds = started.elapsed().as_secs_f64(),
        "Materialized."
    );
    Ok(())
}

/// The tables `names` taken out of `tables` (name → SQL), in order, each
/// with the queries that build it (`queries` of its name and SQL).
fn take_chain(
    tables: &mut BTreeMap<&'static str, String>,
    names: &[&'static str],
    queries: impl Fn(&str, String) -> Vec<String>,
) -> Vec<(&'static str, Vec<String>)> {
    names
        .iter()
        .filter_map(|&name| tables.remove(name).map(|sql| (name, queries(name, sql))))
        .collect()
}

/// Materialize a chain of tables one after another (a table may read
/// those before it).
async fn materialize_in_turn(ctx: &SessionContext, steps: Vec<(&str, Vec<String>)>) -> Result<()> {
    for (name, sqls) in steps {
        materialize(ctx, name, &sqls).await?;
    }
    Ok(())
}

/// Run `sql` and collect its result.
async fn collect(ctx: &SessionContext, what: &str, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(crate::tables::run_query(ctx, what, sql).await?.1)
}

/// The days of a `dt`-like column (strings `YYYY-MM-DD`, or dates).
fn days_of(column: &arrow::array::ArrayRef) -> Result<Vec<Option<NaiveDate>>> {
    let col = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8)?;
    Ok(col
        .as_string::<i32>()
        .iter()
        .map(|d| d.and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()))
        .collect())
}

/// The intermediate tables, in order, for rollups from day `from` on.
pub(crate) fn materialized(
    from: &str,
    previous_reporters: bool,
    computed: Computed,
) -> Vec<(&'static str, String)> {
    let mut tables = vec![("grid_targets", grid_targets_sql(&format!("dt >= '{from}'")))];
    if computed == Computed::InSql {
        // gridstat builds it with `target_firsts::materialize`.
        tables.push(("grid_firsts", grid_firsts_sql(from)));
    }
    tables.extend([
        ("grid_day", grid_day_sql(from, computed)),
        ("area_day", area_day_sql()),
        (
            "reporter_days",
            format!("SELECT DISTINCT dt, grid_id, reporter_id, reporter_role FROM curated_visits WHERE dt >= '{from}'"),
        ),
        ("reporter_firsts", reporter_firsts_sql(from, previous_reporters)),
        ("reporters_day", reporters_sql(false, from)),
        ("reporters_cum", reporters_sql(true, from)),
    ]);
    if computed == Computed::InSql {
        // gridstat builds these with `materialize_hours`.
        tables.push(("hours_day", hours_sql(false, from)));
        tables.push(("hours_cum", hours_sql(true, from)));
    }
    tables
}

/// The intermediate tables built from curated visits alone by SQL (with
/// `grid_firsts`, built from the targets' state), and the reporters'
/// rollup tables built from them. They need neither `case_state` nor the
/// `days` table, so a run builds them while `case_state` is updated
/// ([`materialize_visit_tables`]).
const VISIT_TABLES: &[&str] = &[
    "grid_targets",
    "reporter_days",
    "reporter_firsts",
    "reporters_day",
    "reporters_cum",
];

/// Build the [`VISIT_TABLES`] and `grid_firsts` for rollups of `days`
/// (consecutive, the first being where recomputation starts). With
/// `has_previous`, the last run's state holds the days before:
/// `previous_reporter_firsts` the reporters' first days, and
/// `_state/target_firsts` the targets'. Returns the targets' first days
/// to keep as state ([`crate::target_firsts::write`]).
pub(crate) async fn materialize_visit_tables(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    days: &[NaiveDate],
    campaign_start: NaiveDate,
    has_previous: bool,
) -> Result<crate::target_firsts::NewFirsts> {
    let Some(first) = days.first() else {
        return Ok(Default::default());
    };
    let from = first.format("%Y-%m-%d").to_string();
    let chunks = day_chunks(ctx, days).await?;
    let mut tables: BTreeMap<&str, String> = materialized(&from, has_previous, Computed::InMemory)
        .into_iter()
        .filter(|(n, _)| VISIT_TABLES.contains(n))
        .collect();
    // A table built from consecutive days is built a chunk of days at a
    // time; the others by their one query.
    let queries = |name: &str, sql: String| match BY_DAYS.iter().find(|(n, _)| *n == name) {
        Some((_, by_days)) => chunks
            .iter()
            .map(|(first, last)| {
                by_days(&format!(
                    "dt >= '{}' AND dt <= '{}'",
                    first.format("%Y-%m-%d"),
                    last.format("%Y-%m-%d")
                ))
            })
            .collect(),
        None => vec![sql],
    };
    let mut chain =
        |names: &[&'static str]| materialize_in_turn(ctx, take_chain(&mut tables, names, queries));
    let (targets, reporters) = (
        chain(&["grid_targets"]),
        chain(&[
            "reporter_days",
            "reporter_firsts",
            "reporters_day",
            "reporters_cum",
        ]),
    );
    debug_assert!(tables.is_empty(), "every table is in a chain: {tables:?}");
    let firsts = crate::target_firsts::materialize(ctx, store, days, campaign_start, has_previous);
    // A refresh's tables are a few days' rows, mostly fixed per-query
    // costs: built side by side. A rebuild builds one after the other, so
    // that peak memory stays that of the largest.
    if has_previous {
        let ((), (), firsts) = futures::try_join!(targets, reporters, Box::pin(firsts))?;
        Ok(firsts)
    } else {
        targets.await?;
        reporters.await?;
        firsts.await
    }
}

/// Daily and cumulative rollups for `days` (consecutive, as registered in
/// the `days` table), sorted by day, level (city first) and area code. Both
/// include a `dt` column. The [`VISIT_TABLES`] must have been built for
/// the same days ([`materialize_visit_tables`]). With `has_previous`, the
/// table `previous_cumulative` holds the cumulative rollups of the day
/// before the first. A refresh opens `writes` once its queries run one
/// at a time.
pub(crate) async fn compute(
    ctx: &SessionContext,
    days: &[NaiveDate],
    has_previous: bool,
    writes: &crate::store::GateOpener,
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>)> {
    let Some(first) = days.first() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let from = first.format("%Y-%m-%d").to_string();
    let day_table =
        Days::from_batch(&query_batch(ctx, "days", "SELECT * FROM days ORDER BY dt").await?)?;
    let mut tables: BTreeMap<&str, String> = materialized(&from, has_previous, Computed::InMemory)
        .into_iter()
        .filter(|(n, _)| !VISIT_TABLES.contains(n))
        .collect();
    let areas = materialize_in_turn(
        ctx,
        take_chain(&mut tables, &["grid_day", "area_day"], |_, sql| vec![sql]),
    );
    debug_assert!(tables.is_empty(), "every table is in a chain: {tables:?}");
    let open_cases = materialize_open_cases(ctx, &day_table);
    let hours = materialize_hours(ctx, &day_table);
    // Independent tables of few rows, mostly planning: a refresh builds
    // the open cases and resolve times together, then the area tables
    // one query at a time beside its background writes; a rebuild one
    // after the other, so that peak memory stays that of the largest.
    if has_previous {
        // Boxed: tables side by side make a future too large for a
        // thread's stack in a debug build.
        futures::try_join!(Box::pin(open_cases), Box::pin(hours))?;
        writes.open();
        areas.await?;
    } else {
        open_cases.await?;
        areas.await?;
        hours.await?;
    }
    let (schema, totals) =
        crate::tables::run_query(ctx, "area_running", &area_totals_sql()).await?;
    let summed: Vec<&str> = FLOWS
        .iter()
        .copied()
        .chain(REPORTERS.iter().map(|(c, _)| *c))
        .collect();
    let running = running_sums(&totals, &["level", "area_code"], "dt", &summed)?;
    register_batches(ctx, "area_running", schema, running.into_iter().collect())?;
    let final_table = |name: &'static str, cumulative: bool| async move {
        let started = std::time::Instant::now();
        let batches = collect(ctx, name, &final_sql(cumulative, has_previous)).await?;
        tracing::debug!(
            table = name,
            seconds = started.elapsed().as_secs_f64(),
            "Computed."
        );
        Ok::<_, crate::error::Error>(batches)
    };
    futures::try_join!(
        final_table("rollups_daily", false),
        final_table("rollups_cumulative", true)
    )
}
