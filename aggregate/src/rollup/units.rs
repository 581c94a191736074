//! Cadre participation per sending agency (`reporter_unit`) and area
//! (`rollups/units`): for each day, per city, county and town and each
//! unit that has had a reporter there, the unit's reporters active that
//! day and since the start, and its visits that day and since the start.
//! Visits without a unit are in every other figure but not here.
//!
//! Reporters since the start come from the reporters' first days (kept
//! as state, see [`super::reporters`]); visits since the start continue
//! the previous run's row of the day before the first recomputed day.

use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use gridstat_schemas::lake::dt_partition;

use super::areas::LEVELS;
use super::materialize_in_turn;
use crate::error::Result;

/// The units table's files' prefix.
pub(crate) const UNITS: &str = "rollups/units";

/// The levels the units table has: agencies send cadres to towns, and
/// leadership reads them per town, county and city.
const UNIT_LEVELS: usize = 3;

/// The in-memory table of the units' rows of the recomputed days, with a
/// `dt` column.
pub(crate) const UNITS_TABLE: &str = "units_rollup";

/// The units file of `day`.
pub(crate) fn units_path(day: NaiveDate) -> String {
    format!("{UNITS}/{}/part-00000.parquet", dt_partition(day))
}

/// `per_level(level, key)` for each level of the units table, joined by
/// `UNION ALL`.
fn each_level(per_level: impl Fn(&str, &str) -> String) -> String {
    LEVELS[..UNIT_LEVELS]
        .iter()
        .map(|(level, key, _, _)| per_level(level, key))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// The units' tables, in the order they are built, for rollups from
/// `from` on; `previous` says whether `previous_units` holds the previous
/// run's rows of the day before `from`. They read `reporter_days`,
/// `reporter_firsts`, `curated_visits`, `registry_grids` and `days`.
pub(crate) fn tables(from: &str, previous: bool) -> Vec<(&'static str, String)> {
    let active = each_level(|level, key| {
        format!(
            "SELECT '{level}' AS level, {key} AS area_code, r.reporter_unit, r.dt, \
               COUNT(DISTINCT r.reporter_id) AS reporters_active \
             FROM reporter_days r JOIN registry_grids g ON r.grid_id = g.grid_id \
             WHERE r.reporter_unit IS NOT NULL GROUP BY {key}, r.reporter_unit, r.dt"
        )
    });
    let visits = each_level(|level, key| {
        format!(
            "SELECT '{level}' AS level, {key} AS area_code, v.reporter_unit, v.dt, COUNT(*) AS visits \
             FROM curated_visits v JOIN registry_grids g ON v.grid_id = g.grid_id \
             WHERE v.dt >= '{from}' AND v.reporter_unit IS NOT NULL GROUP BY {key}, v.reporter_unit, v.dt"
        )
    });
    let firsts = each_level(|level, key| {
        format!(
            "SELECT '{level}' AS level, {key} AS area_code, f.reporter_unit, f.reporter_id, \
               CAST(MIN(f.first_dt) AS VARCHAR) AS first_dt \
             FROM reporter_firsts f JOIN registry_grids g ON f.grid_id = g.grid_id \
             WHERE f.reporter_unit IS NOT NULL GROUP BY {key}, f.reporter_unit, f.reporter_id"
        )
    });
    let previous = if previous {
        "SELECT level, area_code, reporter_unit, visits_since_start FROM previous_units"
    } else {
        "SELECT CAST(NULL AS VARCHAR) AS level, CAST(NULL AS VARCHAR) AS area_code, \
           CAST(NULL AS VARCHAR) AS reporter_unit, CAST(NULL AS BIGINT) AS visits_since_start WHERE false"
    };
    let rollup = format!(
        "WITH since AS (SELECT f.level, f.area_code, f.reporter_unit, d.dt, COUNT(*) AS reporters_since_start \
           FROM units_firsts f JOIN days d ON f.first_dt <= CAST(d.dt AS VARCHAR) \
           GROUP BY f.level, f.area_code, f.reporter_unit, d.dt), \
         visited AS (SELECT v.level, v.area_code, v.reporter_unit, d.dt, SUM(v.visits) AS visits \
           FROM units_visits v JOIN days d ON CAST(v.dt AS VARCHAR) <= CAST(d.dt AS VARCHAR) \
           GROUP BY v.level, v.area_code, v.reporter_unit, d.dt), \
         p AS ({previous}) \
         SELECT s.level, s.area_code, s.reporter_unit, s.dt, \
           COALESCE(a.reporters_active, 0) AS reporters_active, \
           COALESCE(v.visits, 0) AS visits, \
           s.reporters_since_start, \
           COALESCE(p.visits_since_start, 0) + COALESCE(c.visits, 0) AS visits_since_start \
         FROM since s \
           LEFT JOIN units_active a ON s.level = a.level AND s.area_code = a.area_code \
             AND s.reporter_unit = a.reporter_unit AND CAST(s.dt AS VARCHAR) = CAST(a.dt AS VARCHAR) \
           LEFT JOIN units_visits v ON s.level = v.level AND s.area_code = v.area_code \
             AND s.reporter_unit = v.reporter_unit AND CAST(s.dt AS VARCHAR) = CAST(v.dt AS VARCHAR) \
           LEFT JOIN visited c ON s.level = c.level AND s.area_code = c.area_code \
             AND s.reporter_unit = c.reporter_unit AND s.dt = c.dt \
           LEFT JOIN p ON s.level = p.level AND s.area_code = p.area_code AND s.reporter_unit = p.reporter_unit \
         ORDER BY s.dt, s.level, s.area_code, s.reporter_unit"
    );
    vec![
        ("units_active", active),
        ("units_visits", visits),
        ("units_firsts", firsts),
        (UNITS_TABLE, rollup),
    ]
}

/// Build the units' tables for rollups from `from` on, one after another.
pub(crate) async fn build(ctx: &SessionContext, from: &str, previous: bool) -> Result<()> {
    materialize_in_turn(ctx, tables(from, previous)).await
}
