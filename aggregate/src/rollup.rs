//! Step 2: rollups at four levels (grid, town, county, city), per day and
//! cumulative, computed from the curated tables.
//!
//! Additive figures are summed per grid and day first, then up the
//! hierarchy, so children always sum to their parent. Households,
//! enterprises and venues belong to one grid, so their distinct counts are
//! additive too. Distinct reporters and resolve-time percentiles are not
//! additive and are computed per level.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use object_store::ObjectStore;

use crate::error::Result;
use crate::open_cases::Days;
use crate::tables::{query_batch, register_batches, Computed};

/// Flow figures: summed per day, running-summed for cumulative tables.
pub const FLOWS: &[&str] = &[
    "visits",
    "households_visited",
    "households_new",
    "enterprises_visited",
    "enterprises_new",
    "venues_visited",
    "venues_new",
    "residents_recorded",
    "newcomers_registered",
    "residents_tested",
    "residents_vaccinated",
    "hazards_found",
    "hazards_fixed_on_spot",
    "hazards_resolved",
    "hardships_raised",
    "hardships_medical",
    "hardships_supplies",
    "hardships_elderly_care",
    "hardships_employment",
    "hardships_dispute",
    "hardships_housing",
    "hardships_other",
    "hardships_resolved",
    "enlisted_building_leads",
    "enlisted_volunteers",
];

/// State figures at the end of the day: the same in both tables.
pub const STATES: &[&str] = &["hazards_open", "hardships_open", "hardships_overdue"];

/// Distinct reporter columns (not additive).
pub const REPORTERS: &[(&str, Option<&str>)] = &[
    ("reporters_active", None),
    ("reporters_cadre", Some("cadre")),
    ("reporters_grid_worker", Some("grid_worker")),
    ("reporters_police", Some("police")),
    ("reporters_volunteer", Some("volunteer")),
    ("reporters_deputy", Some("deputy")),
];

/// The four levels: name, key column, name column, parent column.
pub const LEVELS: &[(&str, &str, &str, &str)] = &[
    (
        "city",
        "g.city_code",
        "g.city_name",
        "CAST(NULL AS VARCHAR)",
    ),
    ("county", "g.county_code", "g.county_name", "g.city_code"),
    ("town", "g.town_code", "g.town_name", "g.county_code"),
    ("grid", "g.grid_id", "g.grid_name", "g.town_code"),
];

const CATEGORIES: &[&str] = &[
    "medical",
    "supplies",
    "elderly_care",
    "employment",
    "dispute",
    "housing",
    "other",
];

/// Distinct targets visited per day and grid, on the days `days` (a
/// predicate on `dt`) selects. Nearly every visit is a distinct target of
/// its day (9.35M groups for 10M visits), so DataFusion runs it a few days
/// at a time ([`BY_DAYS`]): the same rows, a fraction of the hash table.
fn grid_targets_sql(days: &str) -> String {
    format!(
        "SELECT dt AS t_dt, grid_id AS t_grid, \
           SUM(CASE WHEN target_kind = 'household' THEN 1 ELSE 0 END) AS households_visited, \
           SUM(CASE WHEN target_kind = 'enterprise' THEN 1 ELSE 0 END) AS enterprises_visited, \
           SUM(CASE WHEN target_kind = 'venue' THEN 1 ELSE 0 END) AS venues_visited \
         FROM (SELECT dt, grid_id, target_kind, target_id FROM curated_visits WHERE {days} GROUP BY dt, grid_id, target_kind, target_id) \
         GROUP BY dt, grid_id"
    )
}

/// Targets first visited per day and grid (1.67M groups for 10M visits),
/// in SQL: what DuckDB runs in the rollup benchmark. gridstat finds the
/// targets visited before `from` in its state instead ([`crate::target_firsts`]).
/// The first day is taken as a date: the minimum of a string per group
/// cost DataFusion a third of the query.
fn grid_firsts_sql(from: &str) -> String {
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
    format!(
        "SELECT CAST(first_dt AS VARCHAR) AS f_dt, grid_id AS f_grid, \
           SUM(CASE WHEN target_kind = 'household' THEN 1 ELSE 0 END) AS households_new, \
           SUM(CASE WHEN target_kind = 'enterprise' THEN 1 ELSE 0 END) AS enterprises_new, \
           SUM(CASE WHEN target_kind = 'venue' THEN 1 ELSE 0 END) AS venues_new \
         FROM {targets} \
         GROUP BY first_dt, grid_id"
    )
}

/// Cases open at the end of each day of `days`, per grid (the SQL that
/// [`crate::open_cases`] replaces in gridstat).
pub(crate) const OPEN_CASES_SQL: &str = "SELECT d.dt AS s_dt, c.grid_id AS s_grid, \
       SUM(CASE WHEN c.case_kind = 'hardship' THEN 1 ELSE 0 END) AS hardships_open, \
       SUM(CASE WHEN c.case_kind = 'hazard' THEN 1 ELSE 0 END) AS hazards_open, \
       SUM(CASE WHEN c.case_kind = 'hardship' AND c.opened_at < d.overdue_cutoff THEN 1 ELSE 0 END) AS hardships_overdue \
     FROM case_state c JOIN days d ON c.opened_dt <= d.dt AND (c.resolved_at IS NULL OR c.resolved_at >= d.day_end) \
     GROUP BY d.dt, c.grid_id";

/// The in-memory table gridstat builds with [`crate::open_cases`].
const OPEN_CASES_TABLE: &str = "open_cases";

fn grid_day_sql(from: &str, computed: Computed) -> String {
    let open_cases = match computed {
        Computed::InSql => OPEN_CASES_SQL.to_string(),
        Computed::InMemory => format!("SELECT * FROM {OPEN_CASES_TABLE}"),
    };
    let cats: String = CATEGORIES
        .iter()
        .map(|c| format!(", SUM(CASE WHEN category = '{c}' THEN 1 ELSE 0 END) AS hardships_{c}"))
        .collect();
    let mut select = String::from("p.dt, p.grid_id");
    for f in FLOWS.iter().chain(STATES) {
        select += &format!(", COALESCE({f}, 0) AS {f}");
    }
    format!(
        "WITH panel AS (SELECT d.dt, g.grid_id FROM days d CROSS JOIN registry_grids g), \
         v AS (SELECT dt AS v_dt, grid_id AS v_grid, COUNT(*) AS visits, \
           SUM(CASE WHEN target_kind = 'household' THEN residents_recorded ELSE 0 END) AS residents_recorded, \
           SUM(newcomers_registered) AS newcomers_registered, \
           SUM(CASE WHEN target_kind = 'household' THEN residents_tested ELSE 0 END) AS residents_tested, \
           SUM(CASE WHEN target_kind = 'household' THEN residents_vaccinated ELSE 0 END) AS residents_vaccinated, \
           SUM(hazards_found) AS hazards_found, SUM(hazards_fixed_on_spot) AS hazards_fixed_on_spot, \
           SUM(hardships_raised) AS hardships_raised, \
           SUM(enlisted_building_leads) AS enlisted_building_leads, SUM(enlisted_volunteers) AS enlisted_volunteers \
           FROM curated_visits WHERE dt >= '{from}' GROUP BY dt, grid_id), \
         hs AS (SELECT opened_dt AS h_dt, grid_id AS h_grid {cats} FROM case_state WHERE case_kind = 'hardship' AND opened_dt >= '{from}' GROUP BY opened_dt, grid_id), \
         res AS (SELECT resolved_dt AS r_dt, grid_id AS r_grid, \
           SUM(CASE WHEN case_kind = 'hardship' THEN 1 ELSE 0 END) AS hardships_resolved, \
           SUM(CASE WHEN case_kind = 'hazard' THEN 1 ELSE 0 END) AS hazards_resolved \
           FROM case_state WHERE resolved_dt >= '{from}' GROUP BY resolved_dt, grid_id), \
         st AS ({open_cases}) \
         SELECT {select} FROM panel p \
           LEFT JOIN v ON p.dt = v.v_dt AND p.grid_id = v.v_grid \
           LEFT JOIN grid_targets dtg ON p.dt = dtg.t_dt AND p.grid_id = dtg.t_grid \
           LEFT JOIN grid_firsts firsts ON p.dt = firsts.f_dt AND p.grid_id = firsts.f_grid \
           LEFT JOIN hs ON p.dt = hs.h_dt AND p.grid_id = hs.h_grid \
           LEFT JOIN res ON p.dt = res.r_dt AND p.grid_id = res.r_grid \
           LEFT JOIN st ON p.dt = st.s_dt AND p.grid_id = st.s_grid"
    )
}

fn area_day_sql() -> String {
    LEVELS
        .iter()
        .enumerate()
        .map(|(rank, (level, key, name, parent))| {
            let sums: String = FLOWS.iter().chain(STATES).map(|f| format!(", SUM(gd.{f}) AS {f}")).collect();
            format!(
                "SELECT {rank} AS level_rank, '{level}' AS level, {key} AS area_code, {name} AS area_name, {parent} AS parent_code, gd.dt, \
                 SUM(g.households) AS households_registered {sums} \
                 FROM grid_day gd JOIN registry_grids g ON gd.grid_id = g.grid_id GROUP BY {key}, {name}, {parent}, gd.dt"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

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

fn hours_sql(cumulative: bool, from: &str) -> String {
    LEVELS
        .iter()
        .map(|(level, key, _, _)| {
            // Cumulative percentiles take every resolution up to the day;
            // `days` holds only the days being recomputed.
            let (join, day) = if cumulative {
                ("JOIN days d ON c.resolved_dt <= d.dt".to_string(), "d.dt")
            } else {
                (String::new(), "c.resolved_dt")
            };
            let since = if cumulative {
                String::new()
            } else {
                format!(" AND c.resolved_dt >= '{from}'")
            };
            format!(
                "SELECT '{level}' AS hl, {key} AS ha, {day} AS hdt, \
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY c.hours_to_resolve) AS resolve_hours_median, \
                 percentile_cont(0.9) WITHIN GROUP (ORDER BY c.hours_to_resolve) AS resolve_hours_p90 \
                 FROM case_state c JOIN registry_grids g ON c.grid_id = g.grid_id {join} \
                 WHERE c.case_kind = 'hardship' AND c.resolved_dt IS NOT NULL{since} GROUP BY {key}, {day}"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// The cumulative-table column holding the running sum of flow `f`.
fn cumulative_column(f: &str) -> &str {
    match f {
        "enterprises_new" => "enterprises_visited",
        "venues_new" => "venues_visited",
        other => other,
    }
}

/// The previous run's cumulative row of the day before the first
/// recomputed day, per level and area; no rows when recomputing from the
/// campaign's start.
fn previous_sql(has_previous: bool) -> String {
    let columns: std::collections::BTreeSet<&str> = FLOWS
        .iter()
        .map(|f| cumulative_column(f))
        .chain(REPORTERS.iter().map(|(c, _)| *c))
        .collect();
    if has_previous {
        let cols: String = columns.iter().map(|c| format!(", {c}")).collect();
        format!("(SELECT level, area_code{cols} FROM previous_cumulative)")
    } else {
        let cols: String = columns
            .iter()
            .map(|c| format!(", CAST(NULL AS BIGINT) AS {c}"))
            .collect();
        format!("(SELECT CAST(NULL AS VARCHAR) AS level, CAST(NULL AS VARCHAR) AS area_code{cols} WHERE false)")
    }
}

/// `area_day` with each area's new reporters per day: the input of the
/// running sums behind the cumulative table.
pub(crate) fn area_totals_sql() -> String {
    let reporters: String = REPORTERS
        .iter()
        .map(|(c, _)| format!(", COALESCE(r.{c}, 0) AS {c}"))
        .collect();
    format!(
        "SELECT a.*{reporters} FROM area_day a \
         LEFT JOIN reporters_cum r ON a.level = r.rl AND a.area_code = r.ra AND a.dt = r.rdt"
    )
}

/// Replace each of `columns` (Int64) by its running sum over the rows of
/// the same `partition` key in `order`: DataFusion's bounded window
/// operator took over a second for 90k rows with thousands of areas.
fn running_sums(
    batches: &[RecordBatch],
    partition: &[&str],
    order: &str,
    columns: &[&str],
) -> Result<Option<RecordBatch>> {
    use arrow::array::{Array, ArrayRef, Int64Array};
    use arrow::compute::SortColumn;
    use arrow::datatypes::Int64Type;
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let batch = arrow::compute::concat_batches(&first.schema(), batches)?;
    let column = |name: &str| -> Result<ArrayRef> {
        Ok(Arc::clone(batch.column(batch.schema().index_of(name)?)))
    };
    let mut sort = Vec::new();
    for name in partition.iter().chain([&order]) {
        sort.push(SortColumn {
            values: column(name)?,
            options: None,
        });
    }
    let indices = arrow::compute::lexsort_to_indices(&sort, None)?;
    let sorted = arrow::compute::take_record_batch(&batch, &indices)?;
    let keys = partition
        .iter()
        .map(|name| Ok(Arc::clone(sorted.column(sorted.schema().index_of(name)?))))
        .collect::<Result<Vec<ArrayRef>>>()?;
    let ranges = arrow::compute::partition(&keys)?.ranges();
    let mut out = sorted.columns().to_vec();
    for name in columns {
        let idx = sorted.schema().index_of(name)?;
        let values = out[idx].as_primitive::<Int64Type>();
        let mut sums = Vec::with_capacity(values.len());
        for range in &ranges {
            let mut total = 0i64;
            for row in range.clone() {
                total += if values.is_null(row) {
                    0
                } else {
                    values.value(row)
                };
                sums.push(total);
            }
        }
        out[idx] = Arc::new(Int64Array::from(sums));
    }
    Ok(Some(RecordBatch::try_new(sorted.schema(), out)?))
}

pub(crate) fn final_sql(cumulative: bool, has_previous: bool) -> String {
    // The cumulative table reads `area_running`, whose flows and reporter
    // counts are already running sums since the first recomputed day.
    let flow = |f: &str| {
        if cumulative {
            format!("(COALESCE(p.{}, 0) + a.{f})", cumulative_column(f))
        } else {
            format!("a.{f}")
        }
    };
    let reporter = |c: &str| {
        if cumulative {
            format!("(COALESCE(p.{c}, 0) + a.{c})")
        } else {
            format!("COALESCE(r.{c}, 0)")
        }
    };
    // In the cumulative table distinct households are the running sum of
    // first visits; per day they are the day's distinct households.
    let visited = |kind: &str| {
        if cumulative {
            flow(&format!("{kind}_new"))
        } else {
            flow(&format!("{kind}_visited"))
        }
    };
    let mut cols = vec![
        "a.level".to_string(),
        "a.area_code".into(),
        "a.area_name".into(),
        "a.parent_code".into(),
        "a.dt".into(),
        "a.households_registered".into(),
        format!("{} AS visits", flow("visits")),
        format!("{} AS households_visited", visited("households")),
        format!(
            "CAST({} AS DOUBLE) / CAST(a.households_registered AS DOUBLE) AS coverage",
            visited("households")
        ),
        format!("{} AS households_new", flow("households_new")),
        format!("{} AS enterprises_visited", visited("enterprises")),
        format!("{} AS venues_visited", visited("venues")),
    ];
    for f in [
        "residents_recorded",
        "newcomers_registered",
        "residents_tested",
        "residents_vaccinated",
    ] {
        cols.push(format!("{} AS {f}", flow(f)));
    }
    for (share, num) in [
        ("tested_share", "residents_tested"),
        ("vaccinated_share", "residents_vaccinated"),
    ] {
        cols.push(format!(
            "CASE WHEN {den} = 0 THEN NULL ELSE CAST({n} AS DOUBLE) / CAST({den} AS DOUBLE) END AS {share}",
            den = flow("residents_recorded"),
            n = flow(num)
        ));
    }
    for f in ["hazards_found", "hazards_fixed_on_spot"] {
        cols.push(format!("{} AS {f}", flow(f)));
    }
    cols.push(format!(
        "{} - {} AS hazards_handed_on",
        flow("hazards_found"),
        flow("hazards_fixed_on_spot")
    ));
    cols.push(format!("{} AS hazards_resolved", flow("hazards_resolved")));
    cols.push("a.hazards_open".into());
    cols.push(format!("{} AS hardships_raised", flow("hardships_raised")));
    for c in CATEGORIES {
        cols.push(format!(
            "{} AS hardships_{c}",
            flow(&format!("hardships_{c}"))
        ));
    }
    cols.push(format!(
        "{} AS hardships_resolved",
        flow("hardships_resolved")
    ));
    cols.push("a.hardships_open".into());
    cols.push("a.hardships_overdue".into());
    cols.push("h.resolve_hours_median".into());
    cols.push("h.resolve_hours_p90".into());
    for (c, _) in REPORTERS {
        cols.push(format!("{} AS {c}", reporter(c)));
    }
    for f in ["enlisted_building_leads", "enlisted_volunteers"] {
        cols.push(format!("{} AS {f}", flow(f)));
    }
    let joins = if cumulative {
        format!(
            "area_running a \
             LEFT JOIN hours_cum h ON a.level = h.hl AND a.area_code = h.ha AND a.dt = h.hdt \
             LEFT JOIN {} p ON a.level = p.level AND a.area_code = p.area_code",
            previous_sql(has_previous)
        )
    } else {
        "area_day a \
         LEFT JOIN reporters_day r ON a.level = r.rl AND a.area_code = r.ra AND a.dt = r.rdt \
         LEFT JOIN hours_day h ON a.level = h.hl AND a.area_code = h.ha AND a.dt = h.hdt"
            .to_string()
    };
    format!(
        "SELECT {} FROM {joins} ORDER BY a.dt, a.level_rank, a.area_code",
        cols.join(", ")
    )
}

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

/// Build [`OPEN_CASES_TABLE`] for `days` with [`crate::open_cases`].
async fn materialize_open_cases(ctx: &SessionContext, days: &Days) -> Result<()> {
    let started = std::time::Instant::now();
    let Some(last) = days.dt.last() else {
        return Ok(());
    };
    let what = OPEN_CASES_TABLE;
    let sql = format!(
        "SELECT grid_id, case_kind, opened_dt, CAST(opened_at AS BIGINT) AS opened_ms, \
           CAST(resolved_at AS BIGINT) AS resolved_ms \
         FROM case_state WHERE opened_dt <= '{last}'"
    );
    let input = query_batch(ctx, what, &sql).await?;
    let cases = crate::open_cases::Cases {
        grid_id: Arc::clone(input.column(0)),
        case_kind: Arc::clone(input.column(1)),
        opened_dt: Arc::clone(input.column(2)),
        opened_ms: Arc::clone(input.column(3)),
        resolved_ms: Arc::clone(input.column(4)),
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

/// Build both resolve-time tables for `days` with
/// [`crate::percentiles::hours_to_resolve`] rather than [`hours_sql`].
async fn materialize_hours(ctx: &SessionContext, days: &Days) -> Result<()> {
    let started = std::time::Instant::now();
    let Some(last) = days.dt.last() else {
        return Ok(());
    };
    let keys: String = LEVELS
        .iter()
        .enumerate()
        .map(|(i, (_, key, _, _))| format!("{key} AS area{i}, "))
        .collect();
    let sql = format!(
        "SELECT {keys}c.resolved_dt, c.hours_to_resolve \
         FROM case_state c JOIN registry_grids g ON c.grid_id = g.grid_id \
         WHERE c.case_kind = 'hardship' AND c.resolved_dt IS NOT NULL AND c.resolved_dt <= '{last}'"
    );
    let input = query_batch(ctx, "hours to resolve", &sql).await?;
    let resolutions = crate::percentiles::Resolutions {
        levels: LEVELS
            .iter()
            .enumerate()
            .map(|(i, (level, _, _, _))| (*level, Arc::clone(input.column(i))))
            .collect(),
        day: Arc::clone(input.column(LEVELS.len())),
        hours: Arc::clone(input.column(LEVELS.len() + 1)),
    };
    let (daily, cumulative) = crate::percentiles::hours_to_resolve(&resolutions, &days.dt)?;
    for (name, batch) in [("hours_day", daily), ("hours_cum", cumulative)] {
        register_batches(ctx, name, batch.schema(), vec![batch])?;
    }
    tracing::debug!(
        tables = "hours_day, hours_cum",
        seconds = started.elapsed().as_secs_f64(),
        "Materialized."
    );
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

/// Where rollups store each reporter's first active day per grid, so that
/// an incremental run needs only the recomputed days' visits for it.
pub(crate) const REPORTER_FIRSTS: &str = "_state/reporter_firsts.parquet";

/// Each reporter's first active day per grid (and role) since the
/// campaign's start. With `has_previous`, `previous_reporter_firsts` holds
/// the last run's table: its rows before `from` stay, and reporters not
/// among them get their first day from the recomputed days.
fn reporter_firsts_sql(from: &str, has_previous: bool) -> String {
    let recomputed = "SELECT grid_id, reporter_id, reporter_role, MIN(dt) AS first_dt \
                      FROM reporter_days GROUP BY grid_id, reporter_id, reporter_role";
    if has_previous {
        format!(
            "SELECT grid_id, reporter_id, reporter_role, first_dt FROM previous_reporter_firsts WHERE first_dt < '{from}' \
             UNION ALL SELECT n.grid_id, n.reporter_id, n.reporter_role, n.first_dt FROM ({recomputed}) n \
             WHERE NOT EXISTS (SELECT 1 FROM previous_reporter_firsts p WHERE p.first_dt < '{from}' \
               AND p.grid_id = n.grid_id AND p.reporter_id = n.reporter_id AND p.reporter_role = n.reporter_role)"
        )
    } else {
        recomputed.to_string()
    }
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

/// SQL for some days, from a predicate on `dt`.
type DaysSql = fn(&str) -> String;

/// Materialized tables whose rows are a union over days: DataFusion builds
/// them from consecutive days holding at most [`VISITS_PER_CHUNK`] visits
/// together (a larger day alone).
const BY_DAYS: &[(&str, DaysSql)] = &[("grid_targets", grid_targets_sql)];

/// The 10M lake's largest day holds 2.16M visits; a chunk of that size
/// keeps the distinct-targets hash table to a few hundred MB, while small
/// campaigns still need one query for many days.
const VISITS_PER_CHUNK: i64 = 2_000_000;

/// `days` cut into runs of consecutive days of at most [`VISITS_PER_CHUNK`]
/// curated visits (a larger day makes a run of its own).
async fn day_chunks(
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

/// Consecutive runs of `days` whose `size` sums stay within `budget`.
fn chunk_days(
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

/// Rewrite the reporters' first days ([`REPORTER_FIRSTS`]) from the
/// materialized `reporter_firsts` table, in the background once `gate`
/// opens.
pub(crate) fn write_reporter_firsts(
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
            "SELECT grid_id, reporter_id, reporter_role, first_dt FROM reporter_firsts \
              ORDER BY grid_id, reporter_id, reporter_role",
            REPORTER_FIRSTS,
        )
        .await?;
        Ok(wrote)
    })
}

/// The earliest day on which a case opened on or after `from` was
/// resolved before `from` (a resolution stamped before the opening).
pub(crate) async fn earliest_resolution_before(
    ctx: &SessionContext,
    from: NaiveDate,
) -> Result<Option<NaiveDate>> {
    let sql = format!(
        "SELECT CAST(MIN(resolved_dt) AS VARCHAR) AS day FROM case_state \
         WHERE opened_dt >= '{from}' AND resolved_dt < '{from}'"
    );
    for b in collect(ctx, "case_state", &sql).await? {
        if let Some(day) = days_of(b.column(0))?.into_iter().flatten().next() {
            return Ok(Some(day));
        }
    }
    Ok(None)
}

/// Rewrite `rollups/quality`: recompute the figures of `days` (every day
/// when `None`) and keep the file's rows of all other days.
pub(crate) async fn write_quality(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    has_quarantine: bool,
    days: Option<&BTreeSet<NaiveDate>>,
) -> Result<usize> {
    let keep_old = days.is_some() && ctx.table_exist("quality").unwrap_or(false);
    let sql = quality_sql(has_quarantine, days, keep_old, &|e| {
        format!("CAST({e} AS BIGINT)")
    });
    let (_, wrote) = crate::store::write_query(
        ctx,
        store,
        "quality",
        &sql,
        "rollups/quality/part-00000.parquet",
    )
    .await?;
    Ok(usize::from(wrote))
}

/// Data-quality figures per day, in long form (`dt`, `kind`, `class`,
/// `count`), for `days` only (all when `None`), with the old table's rows
/// of every other day when `keep_old`; `epoch_ms` as in
/// [`crate::curated::case_state_sql`].
pub(crate) fn quality_sql(
    has_quarantine: bool,
    days: Option<&BTreeSet<NaiveDate>>,
    keep_old: bool,
    epoch_ms: &dyn Fn(&str) -> String,
) -> String {
    let list = days.map(|days| {
        days.iter()
            .map(|d| format!("'{}'", d.format("%Y-%m-%d")))
            .collect::<Vec<_>>()
            .join(", ")
    });
    let only = |and: bool| match &list {
        None => String::new(),
        Some(l) if l.is_empty() => format!(" {} false", if and { "AND" } else { "WHERE" }),
        Some(l) => format!(" {} dt IN ({l})", if and { "AND" } else { "WHERE" }),
    };
    let quarantine = if has_quarantine {
        format!(" UNION ALL SELECT dt, 'quarantined' AS kind, error_class AS class, COUNT(*) AS count FROM quarantine{} GROUP BY dt, error_class", only(false))
    } else {
        String::new()
    };
    let old = match (&list, keep_old) {
        (Some(l), true) if !l.is_empty() => {
            format!(" UNION ALL SELECT dt, kind, class, count FROM quality WHERE dt NOT IN ({l})")
        }
        (Some(_), true) => " UNION ALL SELECT dt, kind, class, count FROM quality".to_string(),
        _ => String::new(),
    };
    format!(
        "SELECT dt, kind, class, count FROM ( \
           SELECT dt, 'raw_visits' AS kind, CAST(NULL AS VARCHAR) AS class, COUNT(*) AS count FROM raw_visits{w} GROUP BY dt \
           UNION ALL SELECT dt, 'curated_visits', CAST(NULL AS VARCHAR), COUNT(*) FROM curated_visits{w} GROUP BY dt \
           UNION ALL SELECT dt, 'raw_cases', CAST(NULL AS VARCHAR), COUNT(*) FROM raw_cases{w} GROUP BY dt \
           UNION ALL SELECT dt, 'curated_cases', CAST(NULL AS VARCHAR), COUNT(*) FROM curated_cases{w} GROUP BY dt \
           UNION ALL SELECT dt, 'late_arrivals', CAST(NULL AS VARCHAR), COUNT(*) FROM curated_visits \
             WHERE {sent} - {visited} > 86400000{a} GROUP BY dt \
           {quarantine}{old}) ORDER BY dt, kind, class",
        w = only(false),
        a = only(true),
        sent = epoch_ms("sent_at"),
        visited = epoch_ms("visited_at"),
    )
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
