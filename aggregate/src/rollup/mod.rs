//! Step 2: rollups at five levels (grid, village, town, county, city), per day and
//! cumulative, computed from the curated tables.
//!
//! Additive figures are summed per grid and day first, then up the
//! hierarchy, so children always sum to their parent. Households,
//! enterprises and venues belong to one grid, so their distinct counts are
//! additive too. Distinct reporters and resolve-time percentiles are not
//! additive and are computed per level.
//!
//! Each module gives the SQL of its tables and the steps that build them
//! in a session; the executor (`crate::execute`) orders the steps:
//!
//! - `columns`: every rollup column, from the metric catalogue;
//! - `grid_day`: the figures per grid and day, and the tables they read
//!   (`grid_targets`, `open_cases`);
//! - `areas`: the figures summed up the hierarchy (`area_day`), and the
//!   resolve-time percentiles per level;
//! - `reporters`: distinct reporters per level, and their first days,
//!   kept as state;
//! - `running`: the running sums behind the cumulative table;
//! - `final_tables`: the daily and cumulative tables;
//! - `files`: their files, one per day;
//! - `start`: the previous run's rollups a run continues;
//! - `quality`: the data-quality table.

pub(crate) mod areas;
pub(crate) mod columns;
pub(crate) mod files;
pub(crate) mod final_tables;
pub(crate) mod grid_day;
pub(crate) mod quality;
pub(crate) mod reporters;
pub(crate) mod running;
pub(crate) mod start;
pub(crate) mod units;

pub use areas::LEVELS;
pub use columns::{FLOWS, REPORTERS, STATES};
pub(crate) use final_tables::final_sql;
#[cfg(test)]
pub(crate) use grid_day::OPEN_CASES_SQL;
pub(crate) use quality::quality_sql;
pub(crate) use running::area_totals_sql;

use arrow::array::{AsArray, RecordBatch};
use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;

use crate::error::Result;
use crate::open_cases::Days;
use crate::tables::{query_batch, register_batches, Computed};

/// The intermediate tables, in the order they can be built (a table reads
/// only those before it), for rollups from day `from` on: every table of
/// the rollup step as SQL (`Computed::InSql`), or those gridstat builds by
/// SQL, the others being built in memory beforehand (`Computed::InMemory`).
pub(crate) fn materialized(
    from: &str,
    previous_reporters: bool,
    computed: Computed,
) -> Vec<(&'static str, String)> {
    let mut tables = vec![(
        "grid_targets",
        grid_day::grid_targets_sql(&format!("dt >= '{from}'")),
    )];
    if computed == Computed::InSql {
        // gridstat builds it with `target_firsts::materialize`.
        tables.push(("grid_firsts", grid_day::grid_firsts_sql(from)));
    }
    // `grid_day` reads the reporters' first days (grids first reached).
    tables.extend(reporters::tables(from, previous_reporters));
    tables.extend(areas::tables(from, computed));
    if computed == Computed::InSql {
        // gridstat builds these with `areas::build_resolve_hours`.
        for kind in gridstat_schemas::record::CaseKind::ALL.iter().copied() {
            let names = columns::hours_tables(kind);
            tables.push((names.daily, areas::hours_sql(false, from, kind)));
            tables.push((names.cumulative, areas::hours_sql(true, from, kind)));
        }
    }
    tables
}

/// Run `sqls` and register their rows together as the in-memory table
/// `name`.
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

/// Materialize `tables` (name and SQL) one after another: each may read
/// those before it.
async fn materialize_in_turn(ctx: &SessionContext, tables: Vec<(&str, String)>) -> Result<()> {
    for (name, sql) in tables {
        materialize(ctx, name, &[sql]).await?;
    }
    Ok(())
}

/// The registered `days` table, for the tables built outside SQL.
pub(crate) async fn day_table(ctx: &SessionContext) -> Result<Days> {
    Days::from_batch(&query_batch(ctx, "days", "SELECT * FROM days ORDER BY dt").await?)
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
