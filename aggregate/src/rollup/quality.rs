//! The data-quality table (`rollups/quality`): raw, curated, late and
//! quarantined rows per day; edited resends; case updates for cases no
//! visit opened and updates after a case was resolved (reopenings); areas
//! whose coverage is above 100 % (a registry count that is out of date).
//!
//! | kind | class | count |
//! |---|---|---|
//! | `raw_visits`, `curated_visits`, `raw_cases`, `curated_cases`, `late_arrivals` | — | rows |
//! | `quarantined` | error class | messages |
//! | `conflicting_resends` | raw table | submissions |
//! | `case_updates_unknown_case` | case kind | updates of the day |
//! | `case_updates_after_resolution` | case kind | updates of the day |
//! | `coverage_over_100` | level | areas, cumulative |

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use object_store::ObjectStore;

use crate::curated::resends::{conflicts_schema, CONFLICTS_TABLE};
use crate::error::Result;

/// The in-memory table of the cumulative rollups this run computed, whose
/// coverage the quality table checks.
pub(crate) const NEW_CUMULATIVE: &str = "new_cumulative_rollups";

/// The quality kind of areas whose cumulative coverage is above 100 %.
pub(crate) const COVERAGE_OVER_100: &str = "coverage_over_100";

/// Rewrite `rollups/quality`: recompute the figures of `days` (every day
/// when `None`) and keep the file's rows of all other days; the coverage
/// rows of `rollup_days` come from [`NEW_CUMULATIVE`].
pub(crate) async fn write(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    has_quarantine: bool,
    days: Option<&BTreeSet<NaiveDate>>,
    rollup_days: &[NaiveDate],
) -> Result<usize> {
    let keep_old = days.is_some() && ctx.table_exist("quality").unwrap_or(false);
    let conflicts = ctx.table_exist(CONFLICTS_TABLE).unwrap_or(false);
    let mut sql = quality_sql(has_quarantine, days, keep_old, &|e| {
        format!("CAST({e} AS BIGINT)")
    });
    if conflicts {
        // Each submission sent again with other content, on the day of the
        // copy that counts.
        let only = days.map_or(String::new(), |d| format!(" AND dt IN ({})", sql_days(d)));
        sql = format!(
            "SELECT dt, kind, class, count FROM (SELECT dt, kind, class, count FROM ({sql}) q \
             UNION ALL SELECT dt, 'conflicting_resends', raw_table, COUNT(*) FROM {CONFLICTS_TABLE} \
               WHERE kept{only} GROUP BY dt, raw_table) ORDER BY dt, kind, class"
        );
    }
    // Held in memory, so that the checks below add to a table rather than
    // nest the query deeper (its plan is already deep).
    let figures = crate::tables::query_batch(ctx, FIGURES, &sql).await?;
    crate::tables::register_batches(ctx, FIGURES, figures.schema(), vec![figures])?;
    // The case-update checks depend on every case, so they are counted
    // again for every day; the coverage rows on the days rolled up.
    let mut parts = vec![format!(
        "SELECT dt, kind, class, count FROM {FIGURES} \
         WHERE kind NOT IN ('{COVERAGE_OVER_100}', '{UNKNOWN_CASE}', '{AFTER_RESOLUTION}')"
    )];
    if ctx
        .table_exist(crate::tables::CASE_STATE.name)
        .unwrap_or(false)
    {
        parts.extend(case_update_checks());
    }
    parts.extend(coverage_checks(ctx, rollup_days));
    let sql = format!(
        "SELECT dt, kind, class, count FROM ({}) ORDER BY dt, kind, class",
        parts.join(" UNION ALL ")
    );
    let (_, wrote) = crate::store::write_query(
        ctx,
        store,
        "quality",
        &sql,
        "rollups/quality/part-00000.parquet",
    )
    .await?;
    let listed = if conflicts {
        write_resends(ctx, store, days).await?
    } else {
        false
    };
    Ok(usize::from(wrote) + usize::from(listed))
}

/// The resends table's object.
const RESENDS: &str = "rollups/resends/part-00000.parquet";

/// Rewrite the `resends` table: this run's conflicting resends, and the
/// old table's rows of the days the run did not recompute. Written only
/// once there is a row to hold.
async fn write_resends(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    days: Option<&BTreeSet<NaiveDate>>,
) -> Result<bool> {
    let old = match days {
        Some(days) if ctx.table_exist("resends").unwrap_or(false) => format!(
            " UNION ALL SELECT raw_table, submission_id, dt, source_topic, source_partition, source_offset, received_ms, kept \
              FROM resends WHERE dt NOT IN ({})",
            sql_days(days)
        ),
        _ => String::new(),
    };
    let sql = format!(
        "SELECT * FROM (SELECT * FROM {CONFLICTS_TABLE}{old}) \
         ORDER BY raw_table, submission_id, dt, source_topic, source_partition, source_offset"
    );
    let (_, rows) = crate::tables::run_query(ctx, "resends", &sql).await?;
    let any = rows.iter().any(|b| b.num_rows() > 0);
    if !any && !crate::store::exists(store, RESENDS).await? {
        return Ok(false);
    }
    crate::store::write_parquet(store, RESENDS, conflicts_schema(), &rows).await
}

/// The in-memory table of the figures counted from the tables alone.
const FIGURES: &str = "quality_figures";

/// The quality kind of case updates of a case no visit opened.
const UNKNOWN_CASE: &str = "case_updates_unknown_case";

/// The quality kind of updates after a case's first resolution.
const AFTER_RESOLUTION: &str = "case_updates_after_resolution";

/// The case updates of every day that name a case no visit opened, and
/// those sent after their case was resolved that do not resolve it, per
/// day and case kind. Such updates leave `case_state` as it is: the first
/// resolution closes a case.
fn case_update_checks() -> [String; 2] {
    let state = crate::tables::CASE_STATE.name;
    [
        format!(
            "SELECT c.dt, '{UNKNOWN_CASE}', c.case_kind, COUNT(*) FROM curated_cases c \
             WHERE NOT EXISTS (SELECT 1 FROM {state} s WHERE s.case_id = c.case_id) GROUP BY c.dt, c.case_kind"
        ),
        format!(
            "SELECT c.dt, '{AFTER_RESOLUTION}', c.case_kind, COUNT(*) FROM curated_cases c \
             JOIN {state} s ON s.case_id = c.case_id \
             WHERE c.status <> 'resolved' AND s.resolved_at IS NOT NULL AND c.updated_at > s.resolved_at \
             GROUP BY c.dt, c.case_kind"
        ),
    ]
}

/// The coverage rows: those of `rollup_days` from [`NEW_CUMULATIVE`], the
/// old table's of other days.
fn coverage_checks(ctx: &SessionContext, rollup_days: &[NaiveDate]) -> Vec<String> {
    let recomputed: BTreeSet<NaiveDate> = rollup_days.iter().copied().collect();
    let other_days = match recomputed.is_empty() {
        true => String::new(),
        false => format!(" AND dt NOT IN ({})", sql_days(&recomputed)),
    };
    let mut parts = Vec::new();
    if ctx.table_exist("quality").unwrap_or(false) {
        parts.push(format!(
            "SELECT dt, kind, class, count FROM quality \
             WHERE kind = '{COVERAGE_OVER_100}'{other_days}"
        ));
    }
    if ctx.table_exist(NEW_CUMULATIVE).unwrap_or(false) {
        let coverage = gridstat_schemas::metrics::Metric::Coverage.name();
        parts.push(format!(
            "SELECT CAST(dt AS VARCHAR), '{COVERAGE_OVER_100}', level, COUNT(*) FROM {NEW_CUMULATIVE} \
             WHERE {coverage} > 1.0 AND NOT isnan({coverage}) GROUP BY dt, level"
        ));
    }
    parts
}

/// `days` as a SQL list of quoted dates.
fn sql_days(days: &BTreeSet<NaiveDate>) -> String {
    days.iter()
        .map(|d| format!("'{}'", d.format("%Y-%m-%d")))
        .collect::<Vec<_>>()
        .join(", ")
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
