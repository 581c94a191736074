//! The daily and cumulative tables as their files hold them.

use arrow::array::RecordBatch;
use datafusion::execution::context::SessionContext;
use gridstat_schemas::metrics::{Metric, KEY_COLUMNS};

use super::collect;
use gridstat_schemas::record::CaseKind;

use super::columns::{cumulative_column, hours_tables, select_item, FLOWS, REPORTERS};
use crate::error::Result;

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

/// The daily or the `cumulative` table, one column per stored metric after
/// the keys and `dt`, sorted by day, level (city first) and area code.
/// `area_day` (the daily figures) or `area_running` (their running sums)
/// is `a`; the reporters `r`, the resolve times `h` and, for the
/// cumulative table, the previous run's row of the day before `p`.
pub(crate) fn final_sql(cumulative: bool, has_previous: bool) -> String {
    let keys = KEY_COLUMNS
        .iter()
        .map(|(name, _)| format!("a.{name}"))
        .chain(["a.dt".to_string()]);
    let metrics = Metric::stored().filter_map(|metric| select_item(metric, cumulative));
    let cols: Vec<String> = keys.chain(metrics).collect();
    // The resolve-time tables of each case kind, by their aliases.
    let hours: String = CaseKind::ALL
        .iter()
        .map(|&kind| {
            let t = hours_tables(kind);
            let table = if cumulative { t.cumulative } else { t.daily };
            let h = t.alias;
            format!(" LEFT JOIN {table} {h} ON a.level = {h}.hl AND a.area_code = {h}.ha AND a.dt = {h}.hdt")
        })
        .collect();
    let joins = if cumulative {
        format!(
            "area_running a{hours} \
             LEFT JOIN {} p ON a.level = p.level AND a.area_code = p.area_code",
            previous_sql(has_previous)
        )
    } else {
        format!(
            "area_day a \
             LEFT JOIN reporters_day r ON a.level = r.rl AND a.area_code = r.ra AND a.dt = r.rdt{hours}"
        )
    };
    format!(
        "SELECT {} FROM {joins} ORDER BY a.dt, a.level_rank, a.area_code",
        cols.join(", ")
    )
}

/// Compute the daily or the `cumulative` table ([`final_sql`]) for the
/// recomputed days, from the registered intermediate tables.
pub(crate) async fn compute(
    ctx: &SessionContext,
    cumulative: bool,
    has_previous: bool,
) -> Result<Vec<RecordBatch>> {
    let name = if cumulative {
        "rollups_cumulative"
    } else {
        "rollups_daily"
    };
    let started = std::time::Instant::now();
    let batches = collect(ctx, name, &final_sql(cumulative, has_previous)).await?;
    tracing::debug!(
        table = name,
        seconds = started.elapsed().as_secs_f64(),
        "Computed."
    );
    Ok(batches)
}
