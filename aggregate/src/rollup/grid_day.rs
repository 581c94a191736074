//! Figures per grid and day (`grid_day`), zero-filled for every grid and
//! day: sums over the day's visits, distinct and first-visited targets,
//! hardships raised, cases resolved and cases open at the day's end.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::AsArray;
use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use gridstat_schemas::metrics::Metric;
use gridstat_schemas::record::TargetKind;

use super::columns::{
    first_visits_column, stored, Daily, Recipe, FLOWS, GRIDS_FIRST_REACHED, STATES,
};
use super::{collect, days_of, materialize};
use crate::error::Result;
use crate::open_cases::Days;
use crate::tables::{query_batch, register_batches, Computed};

/// Distinct targets visited per day and grid, on the days `days` (a
/// predicate on `dt`) selects. Nearly every visit is a distinct target of
/// its day (9.35M groups for 10M visits), so DataFusion runs it a few days
/// at a time ([`build_grid_targets`]): the same rows, a fraction of the
/// hash table.
pub(super) fn grid_targets_sql(days: &str) -> String {
    let counts = per_target_kind(|metric, _| metric.name());
    format!(
        "SELECT dt AS t_dt, grid_id AS t_grid, {counts} \
         FROM (SELECT dt, grid_id, target_kind, target_id FROM curated_visits WHERE {days} GROUP BY dt, grid_id, target_kind, target_id) \
         GROUP BY dt, grid_id"
    )
}

/// A count of rows per kind of the targets the rollups count
/// ([`Recipe::Targets`]), each named by `name` of the metric and kind.
fn per_target_kind(name: impl Fn(Metric, TargetKind) -> &'static str) -> String {
    stored()
        .filter_map(|(metric, recipe)| match recipe {
            Recipe::Targets(kind) => Some(format!(
                "{} AS {}",
                count_where("target_kind", kind.as_str()),
                name(metric, kind)
            )),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Targets first visited per day and grid (1.67M groups for 10M visits),
/// in SQL: what DuckDB runs in the rollup benchmark. gridstat finds the
/// targets visited before `from` in its state instead ([`crate::target_firsts`]).
/// The first day is taken as a date: the minimum of a string per group
/// cost DataFusion a third of the query.
pub(super) fn grid_firsts_sql(from: &str) -> String {
    firsts_per_grid_sql(&format!(
        "(SELECT grid_id, target_kind, target_id, MIN(CAST(dt AS DATE)) AS first_dt FROM curated_visits WHERE dt >= '{from}' \
           GROUP BY grid_id, target_kind, target_id) t \
         WHERE NOT EXISTS (SELECT 1 FROM curated_visits h WHERE h.dt < '{from}' \
           AND h.grid_id = t.grid_id AND h.target_kind = t.target_kind AND h.target_id = t.target_id)"
    ))
}

/// `grid_firsts` from `targets`: rows of targets first visited, with
/// `grid_id`, `target_kind` and `first_dt` (a date).
pub(crate) fn firsts_per_grid_sql(targets: &str) -> String {
    let counts = per_target_kind(|_, kind| first_visits_column(kind));
    format!(
        "SELECT CAST(first_dt AS VARCHAR) AS f_dt, grid_id AS f_grid, {counts} \
         FROM {targets} \
         GROUP BY first_dt, grid_id"
    )
}

/// Cases open at the end of each day of `days`, per grid (the SQL that
/// [`crate::open_cases`] replaces in gridstat).
pub(crate) const OPEN_CASES_SQL: &str = "SELECT d.dt AS s_dt, c.grid_id AS s_grid, \
       SUM(CASE WHEN c.case_kind = 'hardship' THEN 1 ELSE 0 END) AS hardships_open, \
       SUM(CASE WHEN c.case_kind = 'hazard' THEN 1 ELSE 0 END) AS hazards_open, \
       SUM(CASE WHEN c.case_kind = 'hardship' AND c.opened_at < CASE c.urgency WHEN 'urgent' THEN d.overdue_cutoff_urgent \
         WHEN 'low' THEN d.overdue_cutoff_low ELSE d.overdue_cutoff END THEN 1 ELSE 0 END) AS hardships_overdue, \
       SUM(CASE WHEN c.case_kind = 'hazard' AND c.opened_at < d.overdue_cutoff THEN 1 ELSE 0 END) AS hazards_overdue \
     FROM case_state c JOIN days d ON c.opened_dt <= d.dt AND (c.resolved_at IS NULL OR c.resolved_at >= d.day_end) \
     GROUP BY d.dt, c.grid_id";

/// The in-memory table gridstat builds with [`crate::open_cases`].
pub(super) const OPEN_CASES_TABLE: &str = "open_cases";

/// `, SQL AS name` for each flow that `sql` gives the daily SQL of, from
/// its [`Daily`] recipe, in column order.
fn daily_sums(sql: impl Fn(Daily, Metric) -> Option<String>) -> String {
    stored()
        .filter_map(|(metric, recipe)| match recipe {
            Recipe::Flow(daily) => {
                sql(daily, metric).map(|sql| format!(", {sql} AS {}", metric.name()))
            }
            _ => None,
        })
        .collect()
}

/// The number of rows whose `column` is `value`.
fn count_where(column: &str, value: &str) -> String {
    format!("SUM(CASE WHEN {column} = '{value}' THEN 1 ELSE 0 END)")
}

/// Every figure per grid and day of `days` (from `from` on), zero-filled:
/// the sums of `v` (visits), `reach` (the day each grid was first
/// visited, from `reporter_firsts`), `grid_targets`, `grid_firsts`, `hs`
/// (hardships raised, by category), `res` (cases resolved) and `st`
/// (cases open at the day's end), by their columns in [`FLOWS`] and
/// [`STATES`].
pub(super) fn grid_day_sql(from: &str, computed: Computed) -> String {
    let open_cases = match computed {
        Computed::InSql => OPEN_CASES_SQL.to_string(),
        Computed::InMemory => format!("SELECT * FROM {OPEN_CASES_TABLE}"),
    };
    let visits = daily_sums(|daily, _| match daily {
        Daily::Visits(sql) => Some(sql.to_string()),
        Daily::Flagged { list, flag } => Some(format!(
            "SUM(CASE WHEN strpos(CAST({list} AS VARCHAR), '{flag}') > 0 THEN 1 ELSE 0 END)"
        )),
        _ => None,
    });
    let raised = daily_sums(|daily, metric| match (daily, metric.hardship_category()) {
        (Daily::Raised, Some(category)) => Some(count_where("category", category.as_str())),
        _ => None,
    });
    let resolved = daily_sums(|daily, _| match daily {
        Daily::Resolved(kind) => Some(count_where("case_kind", kind.as_str())),
        _ => None,
    });
    let status_changes = daily_sums(|daily, _| match daily {
        Daily::FirstStatus(status, kind) => Some(format!(
            "SUM(CASE WHEN status = '{}' AND case_kind = '{}' THEN 1 ELSE 0 END)",
            status.as_str(),
            kind.as_str()
        )),
        _ => None,
    });
    let reached = Metric::GridsReached.name();
    let mut select = String::from("p.dt, p.grid_id");
    for f in FLOWS.iter().chain(STATES.iter()) {
        select += &format!(", COALESCE({f}, 0) AS {f}");
    }
    format!(
        "WITH panel AS (SELECT d.dt, g.grid_id FROM days d CROSS JOIN registry_grids g), \
         v AS (SELECT dt AS v_dt, grid_id AS v_grid{visits}, 1 AS {reached} \
           FROM curated_visits WHERE dt >= '{from}' GROUP BY dt, grid_id), \
         reach AS (SELECT CAST(MIN(first_dt) AS VARCHAR) AS q_dt, grid_id AS q_grid, 1 AS {GRIDS_FIRST_REACHED} \
           FROM reporter_firsts GROUP BY grid_id), \
         hs AS (SELECT opened_dt AS h_dt, grid_id AS h_grid {raised} FROM case_state WHERE case_kind = 'hardship' AND opened_dt >= '{from}' GROUP BY opened_dt, grid_id), \
         res AS (SELECT resolved_dt AS r_dt, grid_id AS r_grid{resolved} \
           FROM case_state WHERE resolved_dt >= '{from}' GROUP BY resolved_dt, grid_id), \
         chg AS (SELECT c_dt, c_grid{status_changes} FROM ( \
             SELECT assigned_dt AS c_dt, grid_id AS c_grid, case_kind, 'assigned' AS status FROM case_state WHERE assigned_dt >= '{from}' \
             UNION ALL SELECT escalated_dt, grid_id, case_kind, 'escalated' FROM case_state WHERE escalated_dt >= '{from}') \
           GROUP BY c_dt, c_grid), \
         st AS ({open_cases}) \
         SELECT {select} FROM panel p \
           LEFT JOIN v ON p.dt = v.v_dt AND p.grid_id = v.v_grid \
           LEFT JOIN reach ON p.dt = reach.q_dt AND p.grid_id = reach.q_grid \
           LEFT JOIN grid_targets dtg ON p.dt = dtg.t_dt AND p.grid_id = dtg.t_grid \
           LEFT JOIN grid_firsts firsts ON p.dt = firsts.f_dt AND p.grid_id = firsts.f_grid \
           LEFT JOIN hs ON p.dt = hs.h_dt AND p.grid_id = hs.h_grid \
           LEFT JOIN res ON p.dt = res.r_dt AND p.grid_id = res.r_grid \
           LEFT JOIN chg ON p.dt = chg.c_dt AND p.grid_id = chg.c_grid \
           LEFT JOIN st ON p.dt = st.s_dt AND p.grid_id = st.s_grid"
    )
}

/// Build [`OPEN_CASES_TABLE`] for `days` with [`crate::open_cases`].
pub(crate) async fn build_open_cases(ctx: &SessionContext, days: &Days) -> Result<()> {
    let started = std::time::Instant::now();
    let Some(last) = days.dt.last() else {
        return Ok(());
    };
    let what = OPEN_CASES_TABLE;
    let sql = format!(
        "SELECT grid_id, case_kind, opened_dt, CAST(opened_at AS BIGINT) AS opened_ms, \
           CAST(resolved_at AS BIGINT) AS resolved_ms, urgency \
         FROM case_state WHERE opened_dt <= '{last}'"
    );
    let input = query_batch(ctx, what, &sql).await?;
    let cases = crate::open_cases::Cases {
        grid_id: Arc::clone(input.column(0)),
        case_kind: Arc::clone(input.column(1)),
        opened_dt: Arc::clone(input.column(2)),
        opened_ms: Arc::clone(input.column(3)),
        resolved_ms: Arc::clone(input.column(4)),
        urgency: Arc::clone(input.column(5)),
    };
    let open = crate::open_cases::open_at_day_end(&cases, days)?;
    register_batches(ctx, what, open.schema(), vec![open])?;
    tracing::debug!(
        table = what,
        seconds = started.elapsed().as_secs_f64(),
        "Materialized."
    );
    Ok(())
}

/// The 10M lake's largest day holds 2.16M visits; a chunk of that size
/// keeps the distinct-targets hash table to a few hundred MB, while small
/// campaigns still need one query for many days.
pub(super) const VISITS_PER_CHUNK: i64 = 2_000_000;

/// `days` cut into runs of consecutive days of at most [`VISITS_PER_CHUNK`]
/// curated visits (a larger day makes a run of its own).
pub(crate) async fn day_chunks(
    ctx: &SessionContext,
    days: &[NaiveDate],
) -> Result<Vec<(NaiveDate, NaiveDate)>> {
    let Some(first) = days.first() else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT dt, COUNT(*) AS visits FROM curated_visits WHERE dt >= '{}' GROUP BY dt",
        first.format("%Y-%m-%d")
    );
    let mut visits = BTreeMap::new();
    for b in collect(ctx, "visits per day", &sql).await? {
        let n = b.column(1).as_primitive::<arrow::datatypes::Int64Type>();
        for (day, n) in days_of(b.column(0))?.into_iter().zip(n.iter()) {
            if let (Some(day), Some(n)) = (day, n) {
                visits.insert(day, n);
            }
        }
    }
    Ok(chunk_days(
        days,
        |d| visits.get(&d).copied().unwrap_or(0),
        VISITS_PER_CHUNK,
    ))
}

/// Build `grid_targets` for `chunks` of consecutive days ([`day_chunks`]),
/// one query per chunk.
pub(crate) async fn build_grid_targets(
    ctx: &SessionContext,
    chunks: &[(NaiveDate, NaiveDate)],
) -> Result<()> {
    let queries: Vec<String> = chunks
        .iter()
        .map(|(first, last)| {
            grid_targets_sql(&format!(
                "dt >= '{}' AND dt <= '{}'",
                first.format("%Y-%m-%d"),
                last.format("%Y-%m-%d")
            ))
        })
        .collect();
    materialize(ctx, "grid_targets", &queries).await
}

/// Consecutive runs of `days` whose `size` sums stay within `budget`.
pub(super) fn chunk_days(
    days: &[NaiveDate],
    size: impl Fn(NaiveDate) -> i64,
    budget: i64,
) -> Vec<(NaiveDate, NaiveDate)> {
    let mut chunks: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    let mut held = 0;
    for &day in days {
        let n = size(day);
        match chunks.last_mut() {
            Some(last) if held + n <= budget => {
                last.1 = day;
                held += n;
            }
            _ => {
                chunks.push((day, day));
                held = n;
            }
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_chunked_within_the_budget_and_a_large_day_stands_alone() {
        let day = |d| NaiveDate::from_ymd_opt(2022, 11, d).unwrap();
        let days: Vec<_> = (25..=30).map(day).collect();
        let sizes = |d: NaiveDate| match chrono::Datelike::day(&d) {
            25 => 5,
            26 => 20, // over the budget: alone
            27..=29 => 3,
            _ => 0,
        };
        assert_eq!(
            chunk_days(&days, sizes, 10),
            vec![(day(25), day(25)), (day(26), day(26)), (day(27), day(30))]
        );
        assert_eq!(chunk_days(&days, |_| 0, 10), vec![(day(25), day(30))]);
        assert!(chunk_days(&[], sizes, 10).is_empty());
    }
}
