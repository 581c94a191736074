//! The data-quality table (`rollups/quality`): raw, curated, late and
//! quarantined rows per day.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use object_store::ObjectStore;

use crate::error::Result;

/// Rewrite `rollups/quality`: recompute the figures of `days` (every day
/// when `None`) and keep the file's rows of all other days.
pub(crate) async fn write(
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
