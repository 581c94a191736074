//! Figures per area and day at the five levels: the grid-day figures
//! summed up the hierarchy (`area_day`), and the resolve-time percentiles,
//! which are not additive and are computed per level (`hours_day`,
//! `hours_cum`).

use std::sync::Arc;

use datafusion::execution::context::SessionContext;

use gridstat_schemas::record::CaseKind;

use super::columns::{hours_columns, hours_tables, stored, Recipe, FLOWS, STATES};
use super::grid_day::grid_day_sql;
use super::materialize_in_turn;
use crate::error::Result;
use crate::open_cases::Days;
use crate::tables::{query_batch, register_batches, Computed};

/// The five levels: name, key column, name column, parent column.
pub const LEVELS: &[(&str, &str, &str, &str)] = &[
    (
        "city",
        "g.city_code",
        "g.city_name",
        "CAST(NULL AS VARCHAR)",
    ),
    ("county", "g.county_code", "g.county_name", "g.city_code"),
    ("town", "g.town_code", "g.town_name", "g.county_code"),
    ("village", "g.village_code", "g.village_name", "g.town_code"),
    ("grid", "g.grid_id", "g.grid_name", "g.village_code"),
];

/// The tables of figures per grid and per area, in the order they are
/// built, for rollups from `from` on.
pub(super) fn tables(from: &str, computed: Computed) -> [(&'static str, String); 2] {
    [
        ("grid_day", grid_day_sql(from, computed)),
        ("area_day", area_day_sql()),
    ]
}

/// Build `grid_day`, then `area_day` from it, for rollups from `from` on.
/// They read `grid_targets`, `grid_firsts`, `open_cases`, `case_state` and
/// `days`.
pub(crate) async fn build(ctx: &SessionContext, from: &str) -> Result<()> {
    materialize_in_turn(ctx, tables(from, Computed::InMemory).into()).await
}

/// The grid-day figures summed up to every area at the five levels, with
/// the registry's figures (registered households).
fn area_day_sql() -> String {
    let registered = stored()
        .filter_map(|(metric, recipe)| match recipe {
            Recipe::Registry(aggregate) => Some(format!("{aggregate} AS {}", metric.name())),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(", ");
    LEVELS
        .iter()
        .enumerate()
        .map(|(rank, (level, key, name, parent))| {
            let sums: String = FLOWS.iter().chain(STATES.iter()).map(|f| format!(", SUM(gd.{f}) AS {f}")).collect();
            format!(
                "SELECT {rank} AS level_rank, '{level}' AS level, {key} AS area_code, {name} AS area_name, {parent} AS parent_code, gd.dt, \
                 {registered} {sums} \
                 FROM grid_day gd JOIN registry_grids g ON gd.grid_id = g.grid_id GROUP BY {key}, {name}, {parent}, gd.dt"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// Resolve-time percentiles of cases of `kind` per level, area and day:
/// of the day's resolutions from `from` on, or (`cumulative`) of every
/// resolution up to each day of `days` (the SQL that
/// [`crate::percentiles`] replaces in gridstat).
pub(super) fn hours_sql(cumulative: bool, from: &str, kind: CaseKind) -> String {
    let percentiles = hours_columns(kind)
        .into_iter()
        .map(|(name, p)| {
            format!("percentile_cont({p}) WITHIN GROUP (ORDER BY c.hours_to_resolve) AS {name}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let kind = kind.as_str();
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
                 {percentiles} \
                 FROM case_state c JOIN registry_grids g ON c.grid_id = g.grid_id {join} \
                 WHERE c.case_kind = '{kind}' AND c.resolved_dt IS NOT NULL{since} GROUP BY {key}, {day}"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// Build the resolve-time tables of both case kinds for `days` with
/// [`crate::percentiles::hours_to_resolve`] rather than [`hours_sql`].
pub(crate) async fn build_resolve_hours(ctx: &SessionContext, days: &Days) -> Result<()> {
    let started = std::time::Instant::now();
    let Some(last) = days.dt.last() else {
        return Ok(());
    };
    let keys: String = LEVELS
        .iter()
        .enumerate()
        .map(|(i, (_, key, _, _))| format!("{key} AS area{i}, "))
        .collect();
    for kind in CaseKind::ALL.iter().copied() {
        let sql = format!(
            "SELECT {keys}c.resolved_dt, c.hours_to_resolve \
             FROM case_state c JOIN registry_grids g ON c.grid_id = g.grid_id \
             WHERE c.case_kind = '{}' AND c.resolved_dt IS NOT NULL AND c.resolved_dt <= '{last}'",
            kind.as_str()
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
        let tables = hours_tables(kind);
        for (name, batch) in [(tables.daily, daily), (tables.cumulative, cumulative)] {
            let batch = named_as(batch, &hours_columns(kind))?;
            register_batches(ctx, name, batch.schema(), vec![batch])?;
        }
    }
    tracing::debug!(
        tables = "hours_day, hours_cum, hazard_hours_day, hazard_hours_cum",
        seconds = started.elapsed().as_secs_f64(),
        "Materialized."
    );
    Ok(())
}

/// `batch` (of [`crate::percentiles::schema`]) with its value columns
/// named as `columns`, in order.
fn named_as(
    batch: arrow::array::RecordBatch,
    columns: &[(&str, f64)],
) -> Result<arrow::array::RecordBatch> {
    let schema = batch.schema();
    let keys = schema.fields().len() - columns.len();
    let fields: Vec<arrow::datatypes::Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match i.checked_sub(keys) {
            Some(c) => f.as_ref().clone().with_name(columns[c].0),
            None => f.as_ref().clone(),
        })
        .collect();
    let schema = Arc::new(arrow::datatypes::Schema::new(fields));
    Ok(arrow::array::RecordBatch::try_new(
        schema,
        batch.columns().to_vec(),
    )?)
}
