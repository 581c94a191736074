//! `case_state`: one row per case handed on (every hardship, and hazards
//! not fixed on the spot) with its first opening, the first update of
//! each status and the last update's status and handler, held in memory for the rollup step and written in the
//! background, one object per opening day.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::execution::context::SessionContext;
use object_store::{ObjectStore, ObjectStoreExt};

use super::case_update::Affected;
use crate::error::Result;
use crate::store::{put_if_changed, ParquetBody, WriteGate};
use crate::tables::Computed;

/// Every opening of a case: a hardship raised, or a hazard handed on;
/// with `only`, just the openings of the cases listed in that table; with
/// `on`, just those on these days (a SQL list of quoted dates).
pub(super) fn opened_sql(only: Option<&str>, on: Option<&str>) -> String {
    let mut hardships = Vec::new();
    let mut hazards = vec!["NOT fixed_on_spot".to_string()];
    if let Some(table) = only {
        hardships.push(listed_in("case_id", table));
        hazards.push(listed_in("hazard_id", table));
    }
    if let Some(days) = on {
        hardships.push(format!("dt IN ({days})"));
        hazards.push(format!("dt IN ({days})"));
    }
    let filter = |conditions: Vec<String>| {
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        }
    };
    format!(
        "SELECT case_id, 'hardship' AS case_kind, category, urgency, grid_id, town_code, county_code, \
           visited_at AS opened_at, dt AS opened_dt \
         FROM curated_hardships{} \
         UNION ALL \
         SELECT hazard_id, 'hazard', kind, CAST(NULL AS VARCHAR), grid_id, town_code, county_code, visited_at, dt \
         FROM curated_hazards{}",
        filter(hardships),
        filter(hazards)
    )
}

/// `column` is one of the case ids in `table`.
pub(super) fn listed_in(column: &str, table: &str) -> String {
    format!("{column} IN (SELECT case_id FROM {table})")
}

/// Cases opened more than once among the rows of `openings` (a query
/// with the columns of [`opened_sql`]).
fn reopened_sql(openings: &str) -> String {
    format!("SELECT case_id FROM ({openings}) GROUP BY case_id HAVING COUNT(*) > 1")
}

/// Which cases a `case_state` query covers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// Every case.
    All,
    /// The cases listed in this table, whose openings are held in memory
    /// as [`OPENED_TABLE`]: an update reads the curated hardships and
    /// hazards of every day once for them, not once per query.
    Listed(&'a str),
}

/// The in-memory table of the openings of the cases an update recomputes
/// (rows of [`opened_sql`]).
pub(super) const OPENED_TABLE: &str = "opened_cases";

/// The in-memory table of cases opened more than once. DataFusion inlines
/// a CTE at each use, so computed in `case_state_sql` it would group every
/// opening twice.
const REOPENED_TABLE: &str = "reopened_cases";

/// The name a new `case_state` is registered under, in memory.
pub(super) const CASE_STATE_TABLE: &str = crate::tables::CASE_STATE.name;

/// How `case_state` is sorted.
const CASE_STATE_ORDER: &str = "county_code, town_code, grid_id, opened_at, case_id";

/// Build [`REOPENED_TABLE`] from `openings` (as in [`reopened_sql`]) for
/// `case_state_sql` with [`Computed::InMemory`].
pub(super) async fn register_reopened(ctx: &SessionContext, openings: &str) -> Result<()> {
    crate::tables::materialize(ctx, REOPENED_TABLE, &reopened_sql(openings)).await?;
    Ok(())
}

/// The query behind `case_state`; `epoch_ms` turns a timestamp expression
/// into milliseconds since the epoch (dialects differ there); `scope` says
/// which cases it yields rows for. A case is
/// nearly always opened once; only cases opened more than once go through
/// the `ROW_NUMBER` window, which is slow with one partition per case.
/// As in curation's `dedup_sql`, the narrower side of each join comes first: the
/// few cases opened more than once, then the updates per case.
pub(crate) fn case_state_sql(
    cases_exist: bool,
    epoch_ms: &dyn Fn(&str) -> String,
    computed: Computed,
    scope: Scope,
) -> String {
    let (opened, only) = match scope {
        Scope::All => (opened_sql(None, None), None),
        Scope::Listed(table) => (format!("SELECT * FROM {OPENED_TABLE}"), Some(table)),
    };
    let reopened = match computed {
        Computed::InSql => reopened_sql(&opened),
        Computed::InMemory => format!("SELECT case_id FROM {REOPENED_TABLE}"),
    };
    let resolved_ms = epoch_ms("u.resolved_at");
    let opened_ms = epoch_ms("o.opened_at");
    let updates = if cases_exist {
        let only_cases = only
            .map(|table| format!(" WHERE {}", listed_in("case_id", table)))
            .unwrap_or_default();
        // The last update (latest `updated_at`; of equal times the larger
        // status, then handler) as one sortable string per update —
        // 15-digit epoch milliseconds, status, handler — so both engines
        // find it with MAX in the same pass.
        let updated_ms = epoch_ms("updated_at");
        format!(
            "SELECT case_id, \
               MIN(CASE WHEN status = 'assigned' THEN updated_at END) AS assigned_at, \
               MIN(CASE WHEN status = 'escalated' THEN updated_at END) AS escalated_at, \
               MIN(CASE WHEN status = 'resolved' THEN updated_at END) AS resolved_at, \
               MIN(CASE WHEN status = 'resolved' THEN dt END) AS resolved_dt, \
               MIN(CASE WHEN status = 'assigned' THEN dt END) AS assigned_dt, \
               MIN(CASE WHEN status = 'escalated' THEN dt END) AS escalated_dt, \
               MAX(CONCAT(LPAD(CAST({updated_ms} AS VARCHAR), 15, '0'), '|', status, '|', handler_id)) AS last_update \
             FROM curated_cases{only_cases} GROUP BY case_id"
        )
    } else {
        "SELECT CAST(NULL AS VARCHAR) AS case_id, CAST(NULL AS TIMESTAMP) AS assigned_at, CAST(NULL AS TIMESTAMP) AS escalated_at, \
           CAST(NULL AS TIMESTAMP) AS resolved_at, CAST(NULL AS VARCHAR) AS resolved_dt, CAST(NULL AS VARCHAR) AS assigned_dt, \
           CAST(NULL AS VARCHAR) AS escalated_dt, CAST(NULL AS VARCHAR) AS last_update WHERE false"
            .to_string()
    };
    format!(
        "WITH opened AS ({opened}), \
         reopened AS ({reopened}), \
         first_open AS ( \
           SELECT o.* FROM reopened n RIGHT JOIN opened o ON o.case_id = n.case_id WHERE n.case_id IS NULL \
           UNION ALL \
           SELECT case_id, case_kind, category, urgency, grid_id, town_code, county_code, opened_at, opened_dt FROM ( \
             SELECT o.*, ROW_NUMBER() OVER (PARTITION BY o.case_id ORDER BY o.opened_at, o.grid_id) AS rn \
             FROM reopened n JOIN opened o ON o.case_id = n.case_id) \
           WHERE rn = 1), \
         upd AS ({updates}) \
         SELECT o.case_id, o.case_kind, o.category, o.urgency, o.grid_id, o.town_code, o.county_code, o.opened_at, o.opened_dt, \
           u.assigned_at, u.escalated_at, u.resolved_at, u.resolved_dt, u.assigned_dt, u.escalated_dt, \
           CASE WHEN u.resolved_at IS NULL THEN NULL \
                WHEN u.resolved_at < o.opened_at THEN 0.0 \
                ELSE (CAST({resolved_ms} AS DOUBLE) - CAST({opened_ms} AS DOUBLE)) / 3600000.0 END AS hours_to_resolve, \
           CAST(split_part(u.last_update, '|', 1) AS BIGINT) AS last_update_ms, \
           split_part(u.last_update, '|', 2) AS last_status, \
           right(u.last_update, LENGTH(u.last_update) - 17 - LENGTH(split_part(u.last_update, '|', 2))) AS last_handler_id \
         FROM upd u RIGHT JOIN first_open o ON o.case_id = u.case_id \
         ORDER BY {CASE_STATE_ORDER}"
    )
}

/// Where the `case_state` rows of the cases first opened on `day`
/// (`YYYY-MM-DD`) lie: a refresh rewrites only the days its cases were
/// opened on.
fn case_state_path(day: &str) -> String {
    format!(
        "{}/dt={day}/part-00000.parquet",
        gridstat_schemas::lake::CURATED_CASE_STATE
    )
}

/// The one object that held all of `case_state` before it was split by
/// opening day; a write removes it.
fn legacy_case_state_path() -> String {
    format!(
        "{}/part-00000.parquet",
        gridstat_schemas::lake::CURATED_CASE_STATE
    )
}

pub(super) fn epoch_ms(e: &str) -> String {
    format!("CAST({e} AS BIGINT)")
}

/// Rebuild `case_state`: one row per handed-on case (hardships, and hazards
/// not fixed on the spot) with the times of its updates.
pub(crate) async fn rebuild(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    gate: WriteGate,
) -> Result<crate::store::BackgroundWrite> {
    let cases_exist = ctx.table_exist("curated_cases").unwrap_or(false);
    register_reopened(ctx, &opened_sql(None, None)).await?;
    let sql = case_state_sql(cases_exist, &epoch_ms, Computed::InMemory, Scope::All);
    hold_case_state(ctx, store, &sql, None, gate).await
}

/// Run `sql` (a new `case_state`), register its rows in memory as
/// `case_state` and write them to the lake in the background: every
/// opening day's object for a rebuild (`affected` is `None`), else those
/// of the days the affected cases were opened on, before or now, once
/// `gate` opens. The rollup step scans the table several times: from
/// memory it skips decoding the objects again each time, and encoding
/// overlaps those scans.
pub(super) async fn hold_case_state(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    sql: &str,
    affected: Option<Affected>,
    gate: WriteGate,
) -> Result<crate::store::BackgroundWrite> {
    let (schema, batches) = crate::tables::materialize(ctx, CASE_STATE_TABLE, sql).await?;
    let store = Arc::clone(store);
    Ok(gate.spawn(async move {
        let legacy = legacy_case_state_path();
        // A lake from before the split holds every row in one object: all
        // days are written then, and the object removed.
        let days = match affected {
            Some(affected) if !crate::store::exists(&store, &legacy).await? => {
                let mut days = affected.days;
                days.extend(opening_days_of(&batches, &affected.ids)?);
                Some(days)
            }
            _ => None,
        };
        let encoded = {
            let days = days.clone();
            tokio::task::spawn_blocking(move || -> Result<Vec<(String, bytes::Bytes)>> {
                // A rebuild's rows come sorted; an update's do not.
                let sorted = days.is_none();
                by_opening_day(&batches, days.as_ref())?
                    .into_iter()
                    .map(|(day, mut rows)| {
                        if !sorted {
                            rows = vec![in_case_state_order(&schema, &rows)?];
                        }
                        let path = case_state_path(&day);
                        let mut body = ParquetBody::new(&path, &schema)?;
                        for batch in &rows {
                            body.write(batch)?;
                        }
                        Ok((path, body.finish()?))
                    })
                    .collect()
            })
        };
        let encoded = crate::error::joined(encoded, CASE_STATE_TABLE).await?;
        tracing::debug!(
            objects = encoded.len(),
            bytes = encoded.iter().map(|(_, body)| body.len()).sum::<usize>(),
            all = days.is_none(),
            "case_state encoded."
        );
        let mut wrote = false;
        let written: BTreeSet<String> = encoded.iter().map(|(path, _)| path.clone()).collect();
        for (path, body) in encoded {
            wrote |= put_if_changed(&store, &path, body).await?;
        }
        // Objects of the rewritten days (all days, for a rebuild) that no
        // longer hold any case.
        let stale: Vec<String> = match &days {
            Some(days) => days
                .iter()
                .map(|day| case_state_path(day))
                .filter(|path| !written.contains(path))
                .collect(),
            None => crate::store::list(&store, gridstat_schemas::lake::CURATED_CASE_STATE)
                .await?
                .into_keys()
                .filter(|path| !written.contains(path))
                .collect(),
        };
        for path in stale {
            match store
                .delete(&object_store::path::Path::from(path.as_str()))
                .await
            {
                Ok(()) => wrote = true,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => return Err(crate::error::Error::Store { path, source }),
            }
        }
        Ok(wrote)
    }))
}

/// The column `name` of `batch`, as text.
fn text_column(batch: &RecordBatch, name: &str) -> Result<arrow::array::StringArray> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| arrow::error::ArrowError::SchemaError(format!("rows without {name}")))?;
    Ok(arrow::compute::cast(column, &DataType::Utf8)?
        .as_string::<i32>()
        .clone())
}

/// A row's opening day, as text, for each row of `batch`.
pub(super) fn opening_days(batch: &RecordBatch) -> Result<arrow::array::StringArray> {
    let days = text_column(batch, "opened_dt")?;
    if days.null_count() > 0 {
        return Err(arrow::error::ArrowError::InvalidArgumentError(
            "a case_state row without opened_dt".into(),
        )
        .into());
    }
    Ok(days)
}

/// Each row's `case_id` of `batch`, as text.
pub(super) fn case_ids(batch: &RecordBatch) -> Result<arrow::array::StringArray> {
    text_column(batch, "case_id")
}

/// The opening days of the rows of `ids` in `batches`.
fn opening_days_of(batches: &[RecordBatch], ids: &HashSet<String>) -> Result<BTreeSet<String>> {
    let mut days = BTreeSet::new();
    for batch in batches {
        let opened = opening_days(batch)?;
        for (id, day) in case_ids(batch)?.iter().zip(opened.iter()) {
            if let (Some(id), Some(day)) = (id, day) {
                if ids.contains(id) && !days.contains(day) {
                    days.insert(day.to_string());
                }
            }
        }
    }
    Ok(days)
}

/// `rows` of `case_state` as one batch in [`CASE_STATE_ORDER`] (ascending,
/// nulls last, as the SQL sorts).
pub(super) fn in_case_state_order(schema: &SchemaRef, rows: &[RecordBatch]) -> Result<RecordBatch> {
    let all = arrow::compute::concat_batches(schema, rows)?;
    let columns = CASE_STATE_ORDER
        .split(", ")
        .map(|name| {
            all.column_by_name(name).cloned().ok_or_else(|| {
                arrow::error::ArrowError::SchemaError(format!("case_state without {name}")).into()
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // Compared as Arrow's row format, whose bytes sort as the columns do:
    // cheaper than comparing column by column through dynamic comparators
    // (a refresh: 24M of 4.03G instructions less). Case ids are unique, so
    // no two rows tie and any sort gives the same order.
    let options = arrow::compute::SortOptions {
        descending: false,
        nulls_first: false,
    };
    let converter = arrow::row::RowConverter::new(
        columns
            .iter()
            .map(|c| arrow::row::SortField::new_with_options(c.data_type().clone(), options))
            .collect(),
    )?;
    let rows = converter.convert_columns(&columns)?;
    let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
    order.sort_unstable_by(|a, b| rows.row(*a as usize).cmp(&rows.row(*b as usize)));
    let order = arrow::array::UInt32Array::from(order);
    Ok(arrow::compute::take_record_batch(&all, &order)?)
}

/// The rows of `batches` by opening day (only `days`, when given), each
/// day's rows in the order they come.
fn by_opening_day(
    batches: &[RecordBatch],
    days: Option<&BTreeSet<String>>,
) -> Result<BTreeMap<String, Vec<RecordBatch>>> {
    let mut out: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
    for batch in batches {
        let opened = opening_days(batch)?;
        let mut rows: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (i, day) in opened.iter().enumerate() {
            let Some(day) = day else { continue };
            if days.is_none_or(|days| days.contains(day)) {
                rows.entry(day).or_default().push(i as u32);
            }
        }
        for (day, indices) in rows {
            let taken = arrow::compute::take_record_batch(
                batch,
                &arrow::array::UInt32Array::from(indices),
            )?;
            out.entry(day.to_string()).or_default().push(taken);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};

    /// The generated campaigns never open a case twice, so this path of
    /// `case_state` is checked here: the earliest opening wins (then the
    /// lower grid), hazards fixed on the spot are not cases, and a case's
    /// updates are found whichever opening they follow.
    #[tokio::test]
    async fn case_state_keeps_each_cases_first_opening() {
        let ctx = SessionContext::new();
        // Milliseconds, as in the lake (a SQL TIMESTAMP is nanoseconds).
        let ts = |s: &str| format!("arrow_cast('{s}', 'Timestamp(Millisecond, None)')");
        for sql in [
            format!(
                "CREATE TABLE curated_hardships AS SELECT * FROM (VALUES \
                 ('H1', 'medical', 'high', 'G2', 'T1', 'C1', {}, '2022-11-26'), \
                 ('H1', 'supplies', 'low', 'G1', 'T1', 'C1', {}, '2022-11-25'), \
                 ('H2', 'housing', 'low', 'G3', 'T2', 'C1', {}, '2022-11-25')) \
                 AS t(case_id, category, urgency, grid_id, town_code, county_code, visited_at, dt)",
                ts("2022-11-26T10:00:00"),
                ts("2022-11-25T09:00:00"),
                ts("2022-11-25T11:00:00"),
            ),
            format!(
                "CREATE TABLE curated_hazards AS SELECT * FROM (VALUES \
                 ('Z1', 'wiring', 'G1', 'T1', 'C1', {}, '2022-11-25', true), \
                 ('Z2', 'exits', 'G1', 'T1', 'C1', {}, '2022-11-25', false)) \
                 AS t(hazard_id, kind, grid_id, town_code, county_code, visited_at, dt, fixed_on_spot)",
                ts("2022-11-25T08:00:00"),
                ts("2022-11-25T08:30:00"),
            ),
            format!(
                "CREATE TABLE curated_cases AS SELECT * FROM (VALUES \
                 ('H1', 'assigned', {}, '2022-11-26', 'hd-1'), \
                 ('H1', 'resolved', {}, '2022-11-27', 'hd-2|x')) \
                 AS t(case_id, status, updated_at, dt, handler_id)",
                ts("2022-11-26T08:00:00"),
                ts("2022-11-27T12:00:00"),
            ),
        ] {
            ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        }
        register_reopened(&ctx, &opened_sql(None, None))
            .await
            .unwrap();
        for computed in [Computed::InSql, Computed::InMemory] {
            let sql = case_state_sql(true, &epoch_ms, computed, Scope::All);
            let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
            let text = |name: &str| -> Vec<Option<String>> {
                let col =
                    arrow::compute::cast(batch.column_by_name(name).unwrap(), &DataType::Utf8)
                        .unwrap();
                let col = col.as_any().downcast_ref::<StringArray>().unwrap().clone();
                col.iter().map(|v| v.map(str::to_string)).collect()
            };
            let some = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
            // Sorted by county, town, grid, opening time.
            assert_eq!(text("case_id"), some(&["Z2", "H1", "H2"]));
            assert_eq!(text("category"), some(&["exits", "supplies", "housing"]));
            assert_eq!(text("grid_id"), some(&["G1", "G1", "G3"]));
            assert_eq!(
                text("opened_dt"),
                some(&["2022-11-25", "2022-11-25", "2022-11-25"])
            );
            assert_eq!(
                text("resolved_dt"),
                vec![None, Some("2022-11-27".to_string()), None]
            );
            // The last update's status and handler (a `|` in it kept).
            assert_eq!(
                text("last_status"),
                vec![None, Some("resolved".into()), None]
            );
            assert_eq!(
                text("last_handler_id"),
                vec![None, Some("hd-2|x".into()), None]
            );
            let hours = batch
                .column_by_name("hours_to_resolve")
                .unwrap()
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .clone();
            assert_eq!(
                hours.iter().collect::<Vec<_>>(),
                vec![None, Some(51.0), None]
            );
        }
    }
}
