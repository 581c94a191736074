//! Where a run's rollups start: the previous run's rollups and state they
//! continue, and the cases that make them start earlier.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use gridstat_schemas::lake::dt_partition;
use object_store::ObjectStore;

use super::reporters::REPORTER_FIRSTS;
use super::{collect, days_of};
use crate::error::Result;
use crate::plan::PreviousRollups;
use crate::{store, tables, target_firsts};

/// The cumulative rollup file of `day`.
fn cumulative_path(day: NaiveDate) -> String {
    format!(
        "rollups/cumulative/{}/part-00000.parquet",
        dt_partition(day)
    )
}

/// What the lake holds of what rollups from `from` on continue: the
/// cumulative rows of the day `before`, the reporters' first days, and
/// the targets' first days of every day since `campaign_start`.
pub(crate) async fn find_previous(
    store: &Arc<dyn ObjectStore>,
    campaign_start: NaiveDate,
    from: NaiveDate,
    before: NaiveDate,
) -> Result<PreviousRollups> {
    let cumulative = cumulative_path(before);
    let (cumulative_before, reporter_firsts, target_firsts) = futures::try_join!(
        store::exists(store, &cumulative),
        store::exists(store, REPORTER_FIRSTS),
        target_firsts::covers(store, campaign_start, from)
    )?;
    Ok(PreviousRollups {
        cumulative_before,
        reporter_firsts,
        target_firsts,
    })
}

/// Register what rollups continuing the previous run's read: its
/// cumulative rows of the day `before` (`previous_cumulative`), its
/// reporters' first days (`previous_reporter_firsts`) and its units' rows
/// of the day `before` (`previous_units`).
pub(crate) async fn register_previous(
    store: &Arc<dyn ObjectStore>,
    ctx: &SessionContext,
    before: NaiveDate,
) -> Result<()> {
    let cumulative = cumulative_path(before);
    futures::try_join!(
        tables::register_file(ctx, "previous_cumulative", &cumulative),
        tables::register_file(ctx, "previous_reporter_firsts", REPORTER_FIRSTS)
    )?;
    // The units' rows of the day before (`previous_units`), if there were
    // units by then: without a file, no visit named a unit up to that day.
    let units = super::units::units_path(before);
    if store::exists(store, &units).await? {
        tables::register_file(ctx, "previous_units", &units).await?;
    }
    Ok(())
}

/// The earliest day before `from` on which a case opened on or after
/// `from` was resolved, first assigned or first escalated (an update
/// stamped before the opening, or whose visit arrived late): those counts
/// lie on days before `from`.
pub(crate) async fn earliest_resolution_before(
    ctx: &SessionContext,
    from: NaiveDate,
) -> Result<Option<NaiveDate>> {
    let early = ["resolved_dt", "assigned_dt", "escalated_dt"]
        .map(|column| {
            format!(
                "SELECT {column} AS d FROM case_state \
                 WHERE opened_dt >= '{from}' AND {column} < '{from}'"
            )
        })
        .join(" UNION ALL ");
    let sql = format!("SELECT CAST(MIN(d) AS VARCHAR) AS day FROM ({early})");
    for b in collect(ctx, "case_state", &sql).await? {
        if let Some(day) = days_of(b.column(0))?.into_iter().flatten().next() {
            return Ok(Some(day));
        }
    }
    Ok(None)
}
