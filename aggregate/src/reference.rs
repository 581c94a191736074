//! The rollup step's queries as plain SQL, as another engine runs them.
//!
//! gridstat computes some of the rollup step's tables outside SQL, with
//! algorithms that give the same rows (each checked against its SQL by a
//! unit test): the running sums behind the cumulative table, the
//! resolve-time percentiles, the cases open at each day's end and the cases
//! opened more than once. Here every table is one SQL statement instead, so
//! that another engine can compute the same rollups from the same curated
//! Parquet and the two results can be compared (the DuckDB comparison in
//! `benchmarks/` does).
//!
//! The statements read tables by the names of [`crate::tables::TABLES`]
//! (`curated_visits`, `raw_cases`, …), plus `registry_grids`
//! ([`registry_grids`]) and `days` ([`days`]), and each one's output by the
//! name it is given here. Run them in this order: [`case_state_sql`], the
//! tables of [`rollup_tables`], [`area_running_sql`] as `area_running`,
//! then [`final_sql`] for the daily and cumulative tables; [`quality_sql`]
//! reads only the raw tables. Where an expression turns a timestamp into
//! milliseconds since the epoch, dialects differ, so the caller supplies it
//! (`epoch_ms`, e.g. `|e| format!("epoch_ms({e})")` for DuckDB).
//!
//! ```
//! let tables = gridstat_aggregate::reference::rollup_tables(gridstat_schemas::time::DEFAULT_CAMPAIGN_START);
//! assert!(tables.iter().any(|(name, _)| *name == "area_day"));
//! ```

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use gridstat_schemas::Registry;

use crate::curated::{self, Scope};
use crate::error::Result;
use crate::rollup::{self, FLOWS, REPORTERS};
use crate::tables::{self, Computed};

/// The `registry_grids` table: one row per grid of `registry`.
pub fn registry_grids(registry: &Registry) -> Result<RecordBatch> {
    tables::registry_batch(registry)
}

/// The `days` table of the rollups from `first` to `last`, with each
/// day's end and the cutoff after which a hardship still open at that end
/// is overdue (the limit of its urgency before it).
pub fn days(
    first: NaiveDate,
    last: NaiveDate,
    limits: crate::OverdueLimits,
) -> Result<RecordBatch> {
    tables::days_batch(first, last, limits)
}

/// The query behind `case_state`, one row per case, over every case;
/// `cases_exist` says whether the lake has a `curated_cases` table.
pub fn case_state_sql(cases_exist: bool, epoch_ms: &dyn Fn(&str) -> String) -> String {
    curated::case_state_sql(cases_exist, epoch_ms, Computed::InSql, Scope::All)
}

/// The rollup step's intermediate tables, in order, as (name, query), for
/// rollups from the campaign's first day `from` on; they read
/// `case_state` and each other.
pub fn rollup_tables(from: NaiveDate) -> Vec<(&'static str, String)> {
    let from = from.format("%Y-%m-%d").to_string();
    rollup::materialized(&from, false, Computed::InSql)
}

/// The query behind `area_running`: each area's daily flows and new
/// reporters summed over every day up to and including each day (what
/// gridstat computes with running sums outside SQL).
pub fn area_running_sql() -> String {
    let sums: Vec<String> = FLOWS
        .iter()
        .copied()
        .chain(REPORTERS.iter().map(|(column, _)| *column))
        .map(|column| format!("SUM({column}) OVER w AS {column}"))
        .collect();
    format!(
        "SELECT * REPLACE ({}) FROM ({}) \
         WINDOW w AS (PARTITION BY level, area_code ORDER BY dt ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
        sums.join(", "),
        rollup::area_totals_sql()
    )
}

/// The daily (`cumulative` false) or cumulative rollup table, with a `dt`
/// column, as gridstat writes it under `rollups/`.
pub fn final_sql(cumulative: bool) -> String {
    rollup::final_sql(cumulative, false)
}

/// The data-quality table (`dt`, `kind`, `class`, `count`) of every day,
/// from `raw_visits`, `raw_cases` and, when `has_quarantine`, `quarantine`.
pub fn quality_sql(has_quarantine: bool, epoch_ms: &dyn Fn(&str) -> String) -> String {
    rollup::quality_sql(has_quarantine, None, false, epoch_ms)
}
