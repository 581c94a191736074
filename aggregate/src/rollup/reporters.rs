//! Distinct reporters per area, of each day and since the start
//! (`reporters_day`, `reporters_cum`), from each reporter's first active
//! day per grid (`reporter_firsts`), which is kept as state.

use std::sync::Arc;

use datafusion::execution::context::SessionContext;
use object_store::ObjectStore;

use super::areas::LEVELS;
use super::columns::REPORTERS;
use super::materialize_in_turn;
use crate::error::Result;

/// The reporters' tables, in the order they are built, for rollups from
/// `from` on (see [`reporter_firsts_sql`] for `has_previous`).
pub(super) fn tables(from: &str, has_previous: bool) -> [(&'static str, String); 4] {
    [
        ("reporter_days", reporter_days_sql(from)),
        ("reporter_firsts", reporter_firsts_sql(from, has_previous)),
        ("reporters_day", reporters_sql(false, from)),
        ("reporters_cum", reporters_sql(true, from)),
    ]
}

/// Build the reporters' tables from the curated visits, one after another.
pub(crate) async fn build(ctx: &SessionContext, from: &str, has_previous: bool) -> Result<()> {
    materialize_in_turn(ctx, tables(from, has_previous).into()).await
}

/// Each reporter active on a day from `from` on, per grid and role.
fn reporter_days_sql(from: &str) -> String {
    format!("SELECT DISTINCT dt, grid_id, reporter_id, reporter_role, reporter_unit FROM curated_visits WHERE dt >= '{from}'")
}

/// Distinct reporters per level, area and day: those of the day, or
/// (`cumulative`) those active there for the first time.
fn reporters_sql(cumulative: bool, from: &str) -> String {
    LEVELS
        .iter()
        .map(|(level, key, _, _)| {
            if cumulative {
                let cols: String = REPORTERS
                    .iter()
                    .map(|(c, role)| match role {
                        None => format!(", COUNT(*) AS {c}"),
                        Some(r) => format!(", SUM(CASE WHEN reporter_role = '{r}' THEN 1 ELSE 0 END) AS {c}"),
                    })
                    .collect();
                // Only a reporter with a first day on or after `from` in
                // some grid can have one in an area: a refresh groups those
                // few instead of every reporter of the campaign. They are
                // picked before the join with the grids, so that the few
                // are what the semi-join hashes, not every reporter's grids.
                format!(
                    "SELECT '{level}' AS rl, area AS ra, first_dt AS rdt {cols} FROM \
                     (SELECT {key} AS area, reporter_id, reporter_role, MIN(f.first_dt) AS first_dt FROM \
                      (SELECT * FROM reporter_firsts WHERE reporter_id IN \
                        (SELECT reporter_id FROM reporter_firsts WHERE first_dt >= '{from}')) f \
                      JOIN registry_grids g ON f.grid_id = g.grid_id \
                      GROUP BY {key}, reporter_id, reporter_role \
                      HAVING MIN(f.first_dt) >= '{from}') GROUP BY area, first_dt"
                )
            } else {
                // COUNT(DISTINCT …) plans badly here: group per reporter
                // first (one row per area, day and reporter, with a flag per
                // role), then count plainly.
                let flags: String = REPORTERS
                    .iter()
                    .filter_map(|(c, role)| role.map(|r| format!(", MAX(CASE WHEN reporter_role = '{r}' THEN 1 ELSE 0 END) AS {c}")))
                    .collect();
                let cols: String = REPORTERS
                    .iter()
                    .map(|(c, role)| match role {
                        None => format!(", COUNT(*) AS {c}"),
                        Some(_) => format!(", SUM({c}) AS {c}"),
                    })
                    .collect();
                format!(
                    "SELECT '{level}' AS rl, area AS ra, dt AS rdt {cols} FROM \
                     (SELECT {key} AS area, r.dt, reporter_id {flags} FROM reporter_days r \
                      JOIN registry_grids g ON r.grid_id = g.grid_id WHERE r.dt >= '{from}' GROUP BY {key}, r.dt, reporter_id) \
                     GROUP BY area, dt"
                )
            }
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// Where rollups store each reporter's first active day per grid, so that
/// an incremental run needs only the recomputed days' visits for it.
pub(crate) const REPORTER_FIRSTS: &str = "_state/reporter_firsts.parquet";

/// Each reporter's first active day per grid (and role) since the
/// campaign's start. With `has_previous`, `previous_reporter_firsts` holds
/// the last run's table: its rows before `from` stay, and reporters not
/// among them get their first day from the recomputed days.
fn reporter_firsts_sql(from: &str, has_previous: bool) -> String {
    let recomputed = "SELECT grid_id, reporter_id, reporter_role, reporter_unit, MIN(dt) AS first_dt \
                      FROM reporter_days GROUP BY grid_id, reporter_id, reporter_role, reporter_unit";
    if has_previous {
        format!(
            "SELECT grid_id, reporter_id, reporter_role, reporter_unit, first_dt FROM previous_reporter_firsts WHERE first_dt < '{from}' \
             UNION ALL SELECT n.grid_id, n.reporter_id, n.reporter_role, n.reporter_unit, n.first_dt FROM ({recomputed}) n \
             WHERE NOT EXISTS (SELECT 1 FROM previous_reporter_firsts p WHERE p.first_dt < '{from}' \
               AND p.grid_id = n.grid_id AND p.reporter_id = n.reporter_id AND p.reporter_role = n.reporter_role \
               AND p.reporter_unit IS NOT DISTINCT FROM n.reporter_unit)"
        )
    } else {
        recomputed.to_string()
    }
}

/// Rewrite the reporters' first days ([`REPORTER_FIRSTS`]) from the
/// materialized `reporter_firsts` table, in the background once `gate`
/// opens.
pub(crate) fn write_firsts(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    gate: crate::store::WriteGate,
) -> crate::store::BackgroundWrite {
    let (ctx, store) = (ctx.clone(), Arc::clone(store));
    gate.spawn(async move {
        let (_, wrote) = crate::store::write_query(
            &ctx,
            &store,
            "reporter_firsts",
            "SELECT grid_id, reporter_id, reporter_role, reporter_unit, first_dt FROM reporter_firsts \
              ORDER BY grid_id, reporter_id, reporter_role, reporter_unit",
            REPORTER_FIRSTS,
        )
        .await?;
        Ok(wrote)
    })
}
