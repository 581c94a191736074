//! `case_state` after a few days were curated again: only the cases with
//! a row in those days, before or after, are recomputed, and only the
//! objects of the days they are opened on are rewritten.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use object_store::ObjectStore;

use super::case_state::{
    case_ids, case_state_sql, epoch_ms, hold_case_state, listed_in, opened_sql, opening_days,
    register_reopened, Scope, CASE_STATE_TABLE, OPENED_TABLE,
};
use crate::error::Result;
use crate::store::WriteGate;
use crate::tables::Computed;
use gridstat_schemas::time::local_midnight;

/// The in-memory table of the cases an update of `case_state` recomputes.
const AFFECTED_TABLE: &str = "affected_cases";

/// The cases an update of `case_state` recomputes.
pub(super) struct Affected {
    /// Their ids.
    pub(super) ids: HashSet<String>,
    /// The days whose objects to rewrite, but for the days the cases are
    /// first opened on now: the recurated days and the days the cases with
    /// an old row were first opened on before.
    pub(super) days: BTreeSet<String>,
    /// Whether their openings were read from every day, not just from the
    /// recurated days and the old rows (see [`held_openings`]).
    pub(super) every_day_read: bool,
}

/// The cases whose `case_state` row may differ once `days` are curated
/// again, given the registered `case_state` of the curated tables before.
///
/// A row depends only on its case's first opening and on the earliest
/// update of each status. So a case can change only if a row of it lies
/// in `days` now (found in the curated tables), or if one of the rows that
/// made its old `case_state` row lay there (found by that row's dates: an
/// update's `dt` is the local date of its `updated_at`). Rows of other
/// days are the same before and after, and a row that was not the first
/// of its kind cannot change a row by leaving.
fn affected_cases_sql(days: &BTreeSet<NaiveDate>, tables: &[&str]) -> String {
    let dts = sql_dates(days);
    let in_days = |column: &str| -> String {
        days.iter()
            .map(|&d| {
                let start = local_midnight(d).timestamp_millis();
                let end = local_midnight(d + chrono::Days::new(1)).timestamp_millis();
                format!("({ms} >= {start} AND {ms} < {end})", ms = epoch_ms(column))
            })
            .collect::<Vec<_>>()
            .join(" OR ")
    };
    let mut parts = vec![format!(
        "SELECT case_id FROM case_state WHERE opened_dt IN ({dts}) OR resolved_dt IN ({dts}) OR {} OR {}",
        in_days("assigned_at"),
        in_days("escalated_at")
    )];
    for (table, id) in [
        ("curated_hardships", "case_id"),
        ("curated_hazards", "hazard_id"),
        ("curated_cases", "case_id"),
    ] {
        if tables.contains(&table) {
            parts.push(format!("SELECT {id} FROM {table} WHERE dt IN ({dts})"));
        }
    }
    format!(
        "SELECT DISTINCT CAST(case_id AS VARCHAR) AS case_id FROM ({})",
        parts.join(" UNION ALL ")
    )
}

/// `case_state` after `days` were curated again: the registered old rows
/// of unaffected cases and the affected cases recomputed from every day,
/// in the order a rebuild gives.
fn updated_case_state_sql(cases_exist: bool) -> String {
    // Unsorted: the queries after it need no order, and only the objects
    // it rewrites do — each is sorted as it is encoded, so the ~100k rows
    // of the days it keeps are not sorted on the refresh's critical path.
    format!(
        "SELECT * FROM case_state WHERE case_id NOT IN (SELECT case_id FROM {AFFECTED_TABLE}) \
         UNION ALL SELECT * FROM ({})",
        case_state_sql(
            cases_exist,
            &epoch_ms,
            Computed::InMemory,
            Scope::Listed(AFFECTED_TABLE)
        )
    )
}

/// `days` as a SQL list of quoted dates.
fn sql_dates(days: &BTreeSet<NaiveDate>) -> String {
    days.iter()
        .map(|d| format!("'{}'", d.format("%Y-%m-%d")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The openings of the affected cases on the recurated `days` (`held` false)
/// and their old `case_state` rows (`held` true), with the columns of
/// [`opened_sql`].
fn affected_openings_sql(days: &BTreeSet<NaiveDate>) -> String {
    format!(
        "SELECT *, false AS held FROM ({}) \
         UNION ALL \
         SELECT case_id, case_kind, category, urgency, grid_id, town_code, county_code, opened_at, opened_dt, true \
         FROM case_state WHERE {}",
        opened_sql(Some(AFFECTED_TABLE), Some(&sql_dates(days))),
        listed_in("case_id", AFFECTED_TABLE)
    )
}

/// The openings a case's first one is the earliest of, from the rows of
/// [`affected_openings_sql`], or `None` if the recurated days and the old
/// rows do not tell; and the days of the old rows.
///
/// A case's old row holds its first opening before. The days not curated
/// again hold the same openings as before, so if that opening lies on one
/// of them, it is still the earliest there, and the case's first opening is
/// the earliest of it and those on the recurated days. If it lay on a
/// recurated day, every opening on the other days is on a later day (a
/// row's `dt` is the local date of its time), so an opening on a
/// recurated day no later than that day is the first; without one, the
/// first may lie on any later day (an opening left with a duplicate that
/// won on recuration), and only reading every day tells. A case without
/// an old row had no openings before: any it has now are on the recurated
/// days.
fn held_openings(
    rows: &RecordBatch,
    days: &BTreeSet<NaiveDate>,
) -> Result<(Option<RecordBatch>, BTreeSet<String>)> {
    let (ids, opened) = (case_ids(rows)?, opening_days(rows)?);
    let held = rows
        .column_by_name("held")
        .map(|c| c.as_boolean().clone())
        .ok_or_else(|| arrow::error::ArrowError::SchemaError("openings without held".into()))?;
    let recurated: HashSet<String> = days
        .iter()
        .map(|d| d.format("%Y-%m-%d").to_string())
        .collect();
    let mut old_days = BTreeSet::new();
    // Cases whose old first opening lay on a recurated day, with that day.
    let mut moved: Vec<(&str, &str)> = Vec::new();
    // Each case's earliest opening day among the recurated days.
    let mut earliest: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    let mut keep = Vec::with_capacity(rows.num_rows());
    for ((id, day), held) in ids.iter().zip(opened.iter()).zip(held.iter()) {
        let (Some(id), Some(day)) = (id, day) else {
            return Err(arrow::error::ArrowError::InvalidArgumentError(
                "an opening without case_id".into(),
            )
            .into());
        };
        if held == Some(true) {
            old_days.insert(day.to_string());
            let on_recurated = recurated.contains(day);
            if on_recurated {
                moved.push((id, day));
            }
            keep.push(!on_recurated);
        } else {
            earliest
                .entry(id)
                .and_modify(|first| *first = (*first).min(day))
                .or_insert(day);
            keep.push(true);
        }
    }
    let settled = moved
        .iter()
        .all(|(id, day)| earliest.get(id).is_some_and(|first| first <= day));
    if !settled {
        return Ok((None, old_days));
    }
    let kept = arrow::compute::filter_record_batch(rows, &arrow::array::BooleanArray::from(keep))?;
    let columns = (0..kept.num_columns())
        .filter(|&i| kept.schema().field(i).name() != "held")
        .collect::<Vec<_>>();
    Ok((Some(kept.project(&columns)?), old_days))
}

/// Register [`AFFECTED_TABLE`], [`OPENED_TABLE`] and `REOPENED_TABLE`
/// for an update of the registered `case_state` after `days` were curated
/// again.
async fn register_affected(ctx: &SessionContext, days: &BTreeSet<NaiveDate>) -> Result<Affected> {
    let tables: Vec<&str> = ["curated_hardships", "curated_hazards", "curated_cases"]
        .into_iter()
        .filter(|t| ctx.table_exist(*t).unwrap_or(false))
        .collect();
    let affected =
        crate::tables::query_batch(ctx, AFFECTED_TABLE, &affected_cases_sql(days, &tables)).await?;
    let ids = case_ids(&affected)?
        .iter()
        .flatten()
        .map(str::to_string)
        .collect();
    crate::tables::register_batches(ctx, AFFECTED_TABLE, affected.schema(), vec![affected])?;
    let held = crate::tables::query_batch(ctx, OPENED_TABLE, &affected_openings_sql(days)).await?;
    let (openings, mut rewrite) = held_openings(&held, days)?;
    let every_day_read = openings.is_none();
    let openings = match openings {
        Some(openings) => openings,
        // A case's first opening left a recurated day.
        None => {
            crate::tables::query_batch(ctx, OPENED_TABLE, &opened_sql(Some(AFFECTED_TABLE), None))
                .await?
        }
    };
    crate::tables::register_batches(ctx, OPENED_TABLE, openings.schema(), vec![openings])?;
    register_reopened(ctx, &format!("SELECT * FROM {OPENED_TABLE}")).await?;
    rewrite.extend(days.iter().map(|d| d.format("%Y-%m-%d").to_string()));
    Ok(Affected {
        ids,
        days: rewrite,
        every_day_read,
    })
}

/// Update `case_state` (registered, as the last run wrote it) after `days`
/// were curated again: a refresh recomputes the few cases those days touch
/// instead of every case, and rewrites the objects of the days they were
/// opened on.
pub(crate) async fn update(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    days: &BTreeSet<NaiveDate>,
    gate: WriteGate,
) -> Result<crate::store::BackgroundWrite> {
    let cases_exist = ctx.table_exist("curated_cases").unwrap_or(false);
    // The old rows are read three times (for the affected cases, their
    // openings and the rows kept): decoded once into memory instead.
    crate::tables::materialize(
        ctx,
        CASE_STATE_TABLE,
        &format!("SELECT * FROM {CASE_STATE_TABLE}"),
    )
    .await?;
    let affected = register_affected(ctx, days).await?;
    tracing::debug!(
        cases = affected.ids.len(),
        days = affected.days.len(),
        every_day_read = affected.every_day_read,
        "Updating case_state."
    );
    hold_case_state(
        ctx,
        store,
        &updated_case_state_sql(cases_exist),
        Some(affected),
        gate,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curated::case_state::in_case_state_order;

    /// Rows of every case, in `case_state` order, as text.
    async fn case_rows(ctx: &SessionContext, sql: &str) -> Vec<String> {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        text.lines()
            .filter(|l| l.starts_with("| "))
            .skip(1)
            .map(str::to_string)
            .collect()
    }

    /// SQL for curated test tables: hardships (id, grid, time, day),
    /// case updates (id, status, time, day) and hazards handed on (id,
    /// time, day).
    struct Tables;

    impl Tables {
        fn ts(at: &str) -> String {
            format!("arrow_cast('{at}', 'Timestamp(Millisecond, None)')")
        }

        fn hardships(rows: &[(&str, &str, &str, &str)]) -> String {
            let values: Vec<String> = rows
                .iter()
                .map(|(id, grid, at, dt)| {
                    format!(
                        "('{id}', 'medical', 'low', '{grid}', 'T1', 'C1', {}, '{dt}')",
                        Self::ts(at)
                    )
                })
                .collect();
            format!(
                "CREATE OR REPLACE TABLE curated_hardships AS SELECT * FROM (VALUES {}) \
                 AS t(case_id, category, urgency, grid_id, town_code, county_code, visited_at, dt)",
                values.join(", ")
            )
        }

        fn cases(rows: &[(&str, &str, &str, &str)]) -> String {
            let values: Vec<String> = rows
                .iter()
                .map(|(id, status, at, dt)| {
                    format!("('{id}', '{status}', {}, '{dt}', 'hd-{id}')", Self::ts(at))
                })
                .collect();
            format!(
                "CREATE OR REPLACE TABLE curated_cases AS SELECT * FROM (VALUES {}) \
                 AS t(case_id, status, updated_at, dt, handler_id)",
                values.join(", ")
            )
        }

        fn hazards(rows: &[(&str, &str, &str)]) -> String {
            let values: Vec<String> = rows
                .iter()
                .map(|(id, at, dt)| {
                    format!(
                        "('{id}', 'exits', 'G1', 'T1', 'C1', {}, '{dt}', false)",
                        Self::ts(at)
                    )
                })
                .collect();
            format!(
                "CREATE OR REPLACE TABLE curated_hazards AS SELECT * FROM (VALUES {}) \
                 AS t(hazard_id, kind, grid_id, town_code, county_code, visited_at, dt, fixed_on_spot)",
                values.join(", ")
            )
        }
    }

    /// Build `case_state` from the tables `before` creates, replace them
    /// by those of `after`, update `case_state` for `day` curated again and
    /// rebuild it: the rows of both (as text) and what the update saw.
    async fn update_and_rebuild(
        before: &[String],
        after: &[String],
        day: &str,
    ) -> (Vec<String>, Vec<String>, Vec<String>, Affected) {
        let ctx = SessionContext::new();
        for sql in before {
            ctx.sql(sql).await.unwrap().collect().await.unwrap();
        }
        register_reopened(&ctx, &opened_sql(None, None))
            .await
            .unwrap();
        let rebuild = case_state_sql(true, &epoch_ms, Computed::InMemory, Scope::All);
        let old = ctx.sql(&rebuild).await.unwrap().collect().await.unwrap();
        crate::tables::register_batches(&ctx, "case_state", old[0].schema(), old).unwrap();
        for sql in after {
            ctx.sql(sql).await.unwrap().collect().await.unwrap();
        }
        let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        let affected = register_affected(&ctx, &BTreeSet::from([day]))
            .await
            .unwrap();
        // The update comes unsorted; its objects are sorted as encoded.
        let (schema, batches) =
            crate::tables::run_query(&ctx, "update", &updated_case_state_sql(true))
                .await
                .unwrap();
        let sorted = in_case_state_order(&schema, &batches).unwrap();
        let updated = arrow::util::pretty::pretty_format_batches(&[sorted])
            .unwrap()
            .to_string()
            .lines()
            .filter(|l| l.starts_with("| "))
            .skip(1)
            .map(str::to_string)
            .collect::<Vec<_>>();
        let old_rows = case_rows(&ctx, "SELECT * FROM case_state").await;
        register_reopened(&ctx, &opened_sql(None, None))
            .await
            .unwrap();
        let rebuilt = case_rows(&ctx, &rebuild).await;
        (updated, rebuilt, old_rows, affected)
    }

    /// An update after a day is curated again equals a rebuild, also when
    /// the rows that made a case's old row left (its first opening, its
    /// earliest update) and when other days hold the rest of a case.
    #[tokio::test]
    async fn updating_case_state_equals_rebuilding_it() {
        let before = [
            Tables::hazards(&[("Z1", "2022-11-25T08:30:00", "2022-11-25")]),
            Tables::hardships(&[
                ("H1", "G1", "2022-11-26T09:00:00", "2022-11-26"),
                ("H1", "G2", "2022-11-27T09:00:00", "2022-11-27"),
                ("H2", "G3", "2022-11-25T10:00:00", "2022-11-25"),
                ("H3", "G3", "2022-11-27T10:00:00", "2022-11-27"),
            ]),
            Tables::cases(&[
                ("H2", "assigned", "2022-11-26T08:00:00", "2022-11-26"),
                ("H2", "assigned", "2022-11-27T08:00:00", "2022-11-27"),
                ("H2", "resolved", "2022-11-28T12:00:00", "2022-11-28"),
                ("H3", "resolved", "2022-11-27T12:00:00", "2022-11-27"),
                ("Z1", "escalated", "2022-11-26T11:00:00", "2022-11-26"),
            ]),
        ];
        // 2022-11-26 curated again: H1's first opening and H2's first
        // assignment left, Z1 was assigned, H4 was raised.
        let after = [
            Tables::hardships(&[
                ("H1", "G2", "2022-11-27T09:00:00", "2022-11-27"),
                ("H2", "G3", "2022-11-25T10:00:00", "2022-11-25"),
                ("H3", "G3", "2022-11-27T10:00:00", "2022-11-27"),
                ("H4", "G1", "2022-11-26T15:00:00", "2022-11-26"),
            ]),
            Tables::cases(&[
                ("H2", "assigned", "2022-11-27T08:00:00", "2022-11-27"),
                ("H2", "resolved", "2022-11-28T12:00:00", "2022-11-28"),
                ("H3", "resolved", "2022-11-27T12:00:00", "2022-11-27"),
                ("Z1", "assigned", "2022-11-26T10:00:00", "2022-11-26"),
                ("Z1", "escalated", "2022-11-26T11:00:00", "2022-11-26"),
            ]),
        ];
        let (updated, rebuilt, old_rows, affected) =
            update_and_rebuild(&before, &after, "2022-11-26").await;
        assert_eq!(updated, rebuilt);
        assert_eq!(rebuilt.len(), 5, "{rebuilt:#?}");
        // H1's first opening left 2022-11-26 and its next is on a day not
        // curated again: only every day's openings tell.
        assert!(affected.every_day_read);
        // The update changed H1, H2, Z1 and added H4; H3 stayed.
        let kept: Vec<&String> = rebuilt.iter().filter(|r| old_rows.contains(r)).collect();
        assert_eq!(kept.len(), 1, "{kept:#?}");
        assert!(kept[0].contains("H3"));
    }

    /// When the recurated day and the old rows tell each case's first
    /// opening, the update reads no other day's openings, and rewrites the
    /// days the cases were first opened on before.
    #[tokio::test]
    async fn updating_case_state_from_the_old_rows_equals_rebuilding_it() {
        let before = [
            Tables::hazards(&[("Z1", "2022-11-27T08:30:00", "2022-11-27")]),
            Tables::hardships(&[
                ("H1", "G1", "2022-11-25T09:00:00", "2022-11-25"),
                ("H1", "G2", "2022-11-27T09:00:00", "2022-11-27"),
                ("H2", "G3", "2022-11-27T10:00:00", "2022-11-27"),
                ("H3", "G3", "2022-11-26T10:00:00", "2022-11-26"),
                ("H5", "G2", "2022-11-26T09:00:00", "2022-11-26"),
                ("H5", "G2", "2022-11-28T09:00:00", "2022-11-28"),
            ]),
            Tables::cases(&[
                ("H1", "assigned", "2022-11-25T12:00:00", "2022-11-25"),
                ("H3", "resolved", "2022-11-27T12:00:00", "2022-11-27"),
            ]),
        ];
        // 2022-11-26 curated again: H1 opened there again (after its first
        // opening), Z1 and H2 opened there earlier than before, H5's
        // opening there moved earlier, H3 was assigned, H6 was raised.
        let after = [
            Tables::hazards(&[
                ("Z1", "2022-11-26T08:30:00", "2022-11-26"),
                ("Z1", "2022-11-27T08:30:00", "2022-11-27"),
            ]),
            Tables::hardships(&[
                ("H1", "G1", "2022-11-25T09:00:00", "2022-11-25"),
                ("H1", "G3", "2022-11-26T09:00:00", "2022-11-26"),
                ("H1", "G2", "2022-11-27T09:00:00", "2022-11-27"),
                ("H2", "G1", "2022-11-26T11:00:00", "2022-11-26"),
                ("H2", "G3", "2022-11-27T10:00:00", "2022-11-27"),
                ("H3", "G3", "2022-11-26T10:00:00", "2022-11-26"),
                ("H5", "G1", "2022-11-26T08:00:00", "2022-11-26"),
                ("H5", "G2", "2022-11-28T09:00:00", "2022-11-28"),
                ("H6", "G1", "2022-11-26T15:00:00", "2022-11-26"),
            ]),
            Tables::cases(&[
                ("H1", "assigned", "2022-11-25T12:00:00", "2022-11-25"),
                ("H3", "assigned", "2022-11-26T11:00:00", "2022-11-26"),
                ("H3", "resolved", "2022-11-27T12:00:00", "2022-11-27"),
            ]),
        ];
        let (updated, rebuilt, _, affected) =
            update_and_rebuild(&before, &after, "2022-11-26").await;
        assert_eq!(updated, rebuilt);
        assert_eq!(rebuilt.len(), 6, "{rebuilt:#?}");
        assert!(!affected.every_day_read);
        // Z1 and H2 were first opened on 2022-11-27 before, H1 on
        // 2022-11-25: their objects there are rewritten too.
        assert_eq!(
            affected.days,
            BTreeSet::from(["2022-11-25", "2022-11-26", "2022-11-27"].map(String::from))
        );
    }
}
