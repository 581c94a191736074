//! Where a run's rollups start.

use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;

use super::{collect, days_of};
use crate::error::Result;

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
