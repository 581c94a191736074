//! Step 2: rollups at four levels (grid, town, county, city), per day and
//! cumulative, computed from the curated tables.
//!
//! Additive figures are summed per grid and day first, then up the
//! hierarchy, so children always sum to their parent. Households,
//! enterprises and venues belong to one grid, so their distinct counts are
//! additive too. Distinct reporters and resolve-time percentiles are not
//! additive and are computed per level.

use arrow::array::RecordBatch;
use datafusion::execution::context::SessionContext;

use crate::error::{query, Result};

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

fn grid_day_sql() -> String {
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
           FROM curated_visits GROUP BY dt, grid_id), \
         distinct_targets AS (SELECT dt AS t_dt, grid_id AS t_grid, \
           SUM(CASE WHEN target_kind = 'household' THEN 1 ELSE 0 END) AS households_visited, \
           SUM(CASE WHEN target_kind = 'enterprise' THEN 1 ELSE 0 END) AS enterprises_visited, \
           SUM(CASE WHEN target_kind = 'venue' THEN 1 ELSE 0 END) AS venues_visited \
           FROM (SELECT dt, grid_id, target_kind, target_id FROM curated_visits GROUP BY dt, grid_id, target_kind, target_id) \
           GROUP BY dt, grid_id), \
         firsts AS (SELECT first_dt AS f_dt, grid_id AS f_grid, \
           SUM(CASE WHEN target_kind = 'household' THEN 1 ELSE 0 END) AS households_new, \
           SUM(CASE WHEN target_kind = 'enterprise' THEN 1 ELSE 0 END) AS enterprises_new, \
           SUM(CASE WHEN target_kind = 'venue' THEN 1 ELSE 0 END) AS venues_new \
           FROM (SELECT grid_id, target_kind, target_id, MIN(dt) AS first_dt FROM curated_visits GROUP BY grid_id, target_kind, target_id) \
           GROUP BY first_dt, grid_id), \
         hs AS (SELECT opened_dt AS h_dt, grid_id AS h_grid {cats} FROM case_state WHERE case_kind = 'hardship' GROUP BY opened_dt, grid_id), \
         res AS (SELECT resolved_dt AS r_dt, grid_id AS r_grid, \
           SUM(CASE WHEN case_kind = 'hardship' THEN 1 ELSE 0 END) AS hardships_resolved, \
           SUM(CASE WHEN case_kind = 'hazard' THEN 1 ELSE 0 END) AS hazards_resolved \
           FROM case_state WHERE resolved_dt IS NOT NULL GROUP BY resolved_dt, grid_id), \
         st AS (SELECT d.dt AS s_dt, c.grid_id AS s_grid, \
           SUM(CASE WHEN c.case_kind = 'hardship' THEN 1 ELSE 0 END) AS hardships_open, \
           SUM(CASE WHEN c.case_kind = 'hazard' THEN 1 ELSE 0 END) AS hazards_open, \
           SUM(CASE WHEN c.case_kind = 'hardship' AND c.opened_at < d.overdue_cutoff THEN 1 ELSE 0 END) AS hardships_overdue \
           FROM case_state c JOIN days d ON c.opened_dt <= d.dt AND (c.resolved_at IS NULL OR c.resolved_at >= d.day_end) \
           GROUP BY d.dt, c.grid_id) \
         SELECT {select} FROM panel p \
           LEFT JOIN v ON p.dt = v.v_dt AND p.grid_id = v.v_grid \
           LEFT JOIN distinct_targets dtg ON p.dt = dtg.t_dt AND p.grid_id = dtg.t_grid \
           LEFT JOIN firsts ON p.dt = firsts.f_dt AND p.grid_id = firsts.f_grid \
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

fn reporters_sql(cumulative: bool) -> String {
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
                format!(
                    "SELECT '{level}' AS rl, area AS ra, first_dt AS rdt {cols} FROM \
                     (SELECT {key} AS area, reporter_id, reporter_role, MIN(r.dt) AS first_dt FROM reporter_days r \
                      JOIN registry_grids g ON r.grid_id = g.grid_id GROUP BY {key}, reporter_id, reporter_role) GROUP BY area, first_dt"
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
                      JOIN registry_grids g ON r.grid_id = g.grid_id GROUP BY {key}, r.dt, reporter_id) \
                     GROUP BY area, dt"
                )
            }
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

fn hours_sql(cumulative: bool) -> String {
    LEVELS
        .iter()
        .map(|(level, key, _, _)| {
            let (join, day) = if cumulative {
                ("JOIN days d ON c.resolved_dt <= d.dt", "d.dt")
            } else {
                ("", "c.resolved_dt")
            };
            format!(
                "SELECT '{level}' AS hl, {key} AS ha, {day} AS hdt, \
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY c.hours_to_resolve) AS resolve_hours_median, \
                 percentile_cont(0.9) WITHIN GROUP (ORDER BY c.hours_to_resolve) AS resolve_hours_p90 \
                 FROM case_state c JOIN registry_grids g ON c.grid_id = g.grid_id {join} \
                 WHERE c.case_kind = 'hardship' AND c.resolved_dt IS NOT NULL GROUP BY {key}, {day}"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

fn final_sql(cumulative: bool) -> String {
    let flow = |f: &str| {
        if cumulative {
            format!("SUM(a.{f}) OVER (PARTITION BY a.level, a.area_code ORDER BY a.dt ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)")
        } else {
            format!("a.{f}")
        }
    };
    let reporter = |c: &str| {
        if cumulative {
            format!("SUM(COALESCE(r.{c}, 0)) OVER (PARTITION BY a.level, a.area_code ORDER BY a.dt ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)")
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
    let reporters = if cumulative {
        "reporters_cum"
    } else {
        "reporters_day"
    };
    let hours = if cumulative { "hours_cum" } else { "hours_day" };
    format!(
        "SELECT {} FROM area_day a \
         LEFT JOIN {reporters} r ON a.level = r.rl AND a.area_code = r.ra AND a.dt = r.rdt \
         LEFT JOIN {hours} h ON a.level = h.hl AND a.area_code = h.ha AND a.dt = h.hdt \
         ORDER BY a.dt, a.level_rank, a.area_code",
        cols.join(", ")
    )
}

async fn materialize(ctx: &SessionContext, name: &str, sql: &str) -> Result<()> {
    let started = std::time::Instant::now();
    let df = ctx.sql(sql).await.map_err(query(name))?;
    let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.map_err(query(name))?;
    let table =
        datafusion::datasource::MemTable::try_new(schema, vec![batches]).map_err(query(name))?;
    ctx.deregister_table(name).map_err(query(name))?;
    ctx.register_table(name, std::sync::Arc::new(table))
        .map_err(query(name))?;
    tracing::debug!(
        table = name,
        seconds = started.elapsed().as_secs_f64(),
        "Materialized."
    );
    Ok(())
}

/// Daily and cumulative rollups for every day of the `days` table, sorted
/// by day, level (city first) and area code. Both include a `dt` column.
pub(crate) async fn compute(ctx: &SessionContext) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>)> {
    materialize(ctx, "grid_day", &grid_day_sql()).await?;
    materialize(ctx, "area_day", &area_day_sql()).await?;
    materialize(
        ctx,
        "reporter_days",
        "SELECT DISTINCT dt, grid_id, reporter_id, reporter_role FROM curated_visits",
    )
    .await?;
    materialize(ctx, "reporters_day", &reporters_sql(false)).await?;
    materialize(ctx, "reporters_cum", &reporters_sql(true)).await?;
    materialize(ctx, "hours_day", &hours_sql(false)).await?;
    materialize(ctx, "hours_cum", &hours_sql(true)).await?;
    let daily = ctx
        .sql(&final_sql(false))
        .await
        .map_err(query("rollups_daily"))?
        .collect()
        .await
        .map_err(query("rollups_daily"))?;
    let cumulative = ctx
        .sql(&final_sql(true))
        .await
        .map_err(query("rollups_cumulative"))?
        .collect()
        .await
        .map_err(query("rollups_cumulative"))?;
    Ok((daily, cumulative))
}

/// Data-quality figures per day, in long form (`dt`, `kind`, `class`, `count`).
pub(crate) fn quality_sql(has_quarantine: bool) -> String {
    let quarantine = if has_quarantine {
        " UNION ALL SELECT dt, 'quarantined' AS kind, error_class AS class, COUNT(*) AS count FROM quarantine GROUP BY dt, error_class"
    } else {
        ""
    };
    format!(
        "SELECT dt, kind, class, count FROM ( \
           SELECT dt, 'raw_visits' AS kind, CAST(NULL AS VARCHAR) AS class, COUNT(*) AS count FROM raw_visits GROUP BY dt \
           UNION ALL SELECT dt, 'curated_visits', CAST(NULL AS VARCHAR), COUNT(*) FROM curated_visits GROUP BY dt \
           UNION ALL SELECT dt, 'raw_cases', CAST(NULL AS VARCHAR), COUNT(*) FROM raw_cases GROUP BY dt \
           UNION ALL SELECT dt, 'curated_cases', CAST(NULL AS VARCHAR), COUNT(*) FROM curated_cases GROUP BY dt \
           UNION ALL SELECT dt, 'late_arrivals', CAST(NULL AS VARCHAR), COUNT(*) FROM curated_visits \
             WHERE CAST(sent_at AS BIGINT) - CAST(visited_at AS BIGINT) > 86400000 GROUP BY dt \
           {quarantine}) ORDER BY dt, kind, class"
    )
}
