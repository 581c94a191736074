//! Cases open at the end of each day, per grid: hardships and hazards
//! handed on and not yet resolved, and those of each open longer than the
//! overdue limit.
//!
//! The SQL (`st` in `grid_day_sql`, which DuckDB runs in the benchmark)
//! joins every case with every day and tests each pair. A case is open on
//! a run of consecutive days: from its opening day to the last day that
//! ends before its resolution. Here each case adds its runs to per-grid
//! difference arrays, which are summed once: cases + grids × days steps
//! instead of cases × days.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};

use crate::error::Result;

/// The days figures are computed for, ascending (as the `days` table).
pub(crate) struct Days {
    /// `YYYY-MM-DD`.
    pub(crate) dt: Vec<String>,
    /// End of each day, in epoch milliseconds.
    pub(crate) end_ms: Vec<i64>,
    /// The opening time before which a case is overdue on each day: a
    /// hazard or a hardship of normal urgency.
    pub(crate) overdue_cutoff_ms: Vec<i64>,
    /// The same for urgent hardships.
    pub(crate) urgent_cutoff_ms: Vec<i64>,
    /// The same for hardships of low urgency.
    pub(crate) low_cutoff_ms: Vec<i64>,
}

impl Days {
    /// The days of a batch laid out as the `days` table
    /// ([`crate::tables::days_batch`]), in its order.
    pub(crate) fn from_batch(days: &RecordBatch) -> Result<Self> {
        let column = |name: &str| {
            days.column_by_name(name).cloned().ok_or_else(|| {
                arrow::error::ArrowError::SchemaError(format!("days: no column {name}"))
            })
        };
        let ms = |name: &str| -> Result<Vec<i64>> {
            let col = cast(&column(name)?, &DataType::Int64)?;
            Ok(col.as_primitive::<Int64Type>().values().to_vec())
        };
        let dt = cast(&column("dt")?, &DataType::Utf8)?;
        Ok(Self {
            dt: dt
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_string)
                .collect(),
            end_ms: ms("day_end")?,
            overdue_cutoff_ms: ms("overdue_cutoff")?,
            urgent_cutoff_ms: ms("overdue_cutoff_urgent")?,
            low_cutoff_ms: ms("overdue_cutoff_low")?,
        })
    }
}

/// Cases (columns as `case_state` names them: `grid_id`, `case_kind`,
/// `opened_dt`; `opened_ms` and `resolved_ms` in epoch milliseconds).
pub(crate) struct Cases {
    pub(crate) grid_id: ArrayRef,
    pub(crate) case_kind: ArrayRef,
    pub(crate) opened_dt: ArrayRef,
    pub(crate) opened_ms: ArrayRef,
    pub(crate) resolved_ms: ArrayRef,
    /// A hardship's urgency (null for hazards).
    pub(crate) urgency: ArrayRef,
}

/// Output columns, as `st` in `grid_day_sql` names them.
pub(crate) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("s_dt", DataType::Utf8, false),
        Field::new("s_grid", DataType::Utf8, false),
        Field::new("hardships_open", DataType::Int64, false),
        Field::new("hazards_open", DataType::Int64, false),
        Field::new("hardships_overdue", DataType::Int64, false),
        Field::new("hazards_overdue", DataType::Int64, false),
    ]))
}

/// The counters, in output order.
const HARDSHIPS_OPEN: usize = 0;
const HAZARDS_OPEN: usize = 1;
const HARDSHIPS_OVERDUE: usize = 2;
const HAZARDS_OVERDUE: usize = 3;
const COUNTERS: usize = 4;

/// One row per day and grid with a case open at the day's end: counts of
/// open hardships and hazards and of overdue hardships.
pub(crate) fn open_at_day_end(cases: &Cases, days: &Days) -> Result<RecordBatch> {
    let n = days.dt.len();
    let grids = cast(
        &cases.grid_id,
        &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
    )?;
    let grids = grids.as_dictionary::<Int32Type>();
    let (grid_of, grid_names) = (grids.keys(), grids.values().as_string::<i32>());
    let kind = cast(&cases.case_kind, &DataType::Utf8)?;
    let kind = kind.as_string::<i32>();
    let opened_dt = cast(&cases.opened_dt, &DataType::Utf8)?;
    let opened_dt = opened_dt.as_string::<i32>();
    let opened_ms = cast(&cases.opened_ms, &DataType::Int64)?;
    let opened_ms = opened_ms.as_primitive::<Int64Type>();
    let resolved_ms = cast(&cases.resolved_ms, &DataType::Int64)?;
    let resolved_ms = resolved_ms.as_primitive::<Int64Type>();
    let urgency = cast(&cases.urgency, &DataType::Utf8)?;
    let urgency = urgency.as_string::<i32>();

    // Per grid, day and counter: +1 where a run starts, -1 after it ends.
    let stride = (n + 1) * COUNTERS;
    let mut diff = vec![0i64; grid_names.len() * stride];
    for r in 0..grid_of.len() {
        if grid_of.is_null(r) || opened_dt.is_null(r) || kind.is_null(r) {
            continue;
        }
        let counter = match kind.value(r) {
            "hardship" => HARDSHIPS_OPEN,
            "hazard" => HAZARDS_OPEN,
            _ => continue,
        };
        // Open on day d when it opened on or before d and was not resolved
        // by d's end.
        let first = days.dt.partition_point(|d| d.as_str() < opened_dt.value(r));
        let end = if resolved_ms.is_null(r) {
            n
        } else {
            let resolved = resolved_ms.value(r);
            days.end_ms.partition_point(|&e| e <= resolved)
        };
        let base = grid_of.value(r) as usize * stride;
        let mut add = |counter: usize, from: usize, to: usize| {
            if from < to {
                diff[base + from * COUNTERS + counter] += 1;
                diff[base + to * COUNTERS + counter] -= 1;
            }
        };
        add(counter, first, end);
        if !opened_ms.is_null(r) {
            let opened = opened_ms.value(r);
            // Overdue on the days whose cutoff is past the opening.
            let urgency = if urgency.is_null(r) {
                ""
            } else {
                urgency.value(r)
            };
            let cutoffs = match (counter, urgency) {
                (HARDSHIPS_OPEN, "urgent") => &days.urgent_cutoff_ms,
                (HARDSHIPS_OPEN, "low") => &days.low_cutoff_ms,
                _ => &days.overdue_cutoff_ms,
            };
            let overdue_from = cutoffs.partition_point(|&c| c <= opened);
            let overdue = match counter {
                HARDSHIPS_OPEN => HARDSHIPS_OVERDUE,
                _ => HAZARDS_OVERDUE,
            };
            add(overdue, first.max(overdue_from), end);
        }
    }

    let (mut dt, mut grid) = (Vec::new(), Vec::new());
    let mut counts: [Vec<i64>; COUNTERS] = Default::default();
    for (g, runs) in diff.chunks_exact(stride).enumerate() {
        let mut running = [0i64; COUNTERS];
        for (d, day) in days.dt.iter().enumerate() {
            for (c, total) in running.iter_mut().enumerate() {
                *total += runs[d * COUNTERS + c];
            }
            if running.iter().any(|&c| c != 0) {
                dt.push(day.as_str());
                grid.push(grid_names.value(g));
                for (column, total) in counts.iter_mut().zip(running) {
                    column.push(total);
                }
            }
        }
    }
    let [hardships, hazards, overdue, hazards_overdue] = counts;
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(dt)),
            Arc::new(StringArray::from(grid)),
            Arc::new(Int64Array::from(hardships)),
            Arc::new(Int64Array::from(hazards)),
            Arc::new(Int64Array::from(overdue)),
            Arc::new(Int64Array::from(hazards_overdue)),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::OPEN_CASES_SQL;
    use crate::test_support::{sorted_rows, Random};
    use chrono::NaiveDate;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    /// Random cases (opened before, during and after the days; resolved
    /// before opening, on day ends to the millisecond, never) against the
    /// SQL's join of every case with every day.
    #[tokio::test]
    async fn open_cases_equal_the_sql() {
        let mut random = Random::new(0x0123_4567_89AB_CDEF);
        let day = |d: u32| NaiveDate::from_ymd_opt(2022, 11, d).unwrap();
        let limits = crate::OverdueLimits {
            urgent: 10,
            normal: 30,
            low: 50,
        };
        let days = crate::tables::days_batch(day(24), day(28), limits).unwrap();
        let table = Days::from_batch(&days).unwrap();
        let end = table.end_ms.clone();
        let hour = 3_600_000i64;
        for round in 0..10 {
            let rows = 1 + random.below(200) as usize;
            let (mut grid, mut kind, mut dt, mut opened, mut resolved) =
                (vec![], vec![], vec![], vec![], vec![]);
            let mut urgency = vec![];
            for _ in 0..rows {
                let d = 21 + random.below(10) as u32; // 21st … 30th
                let at = end[0] - 4 * 24 * hour
                    + (d as i64 - 21) * 24 * hour
                    + random.below(24) as i64 * hour;
                grid.push(format!("G{}", random.below(4)));
                let k = ["hardship", "hazard"][random.below(2) as usize];
                kind.push(k);
                urgency.push(
                    (k == "hardship")
                        .then(|| ["low", "normal", "urgent"][random.below(3) as usize]),
                );
                dt.push(format!("2022-11-{d}"));
                opened.push(at);
                resolved.push(match random.below(4) {
                    0 => None,
                    1 => Some(end[random.below(5) as usize]), // exactly a day's end
                    2 => Some(at - random.below(10) as i64 * hour),
                    _ => Some(at + random.below(100) as i64 * hour),
                });
            }
            let ts = DataType::Timestamp(
                arrow::datatypes::TimeUnit::Millisecond,
                Some("+08:00".into()),
            );
            let cases = Cases {
                grid_id: Arc::new(StringArray::from(grid)),
                case_kind: Arc::new(StringArray::from(kind)),
                opened_dt: Arc::new(StringArray::from(dt)),
                opened_ms: cast(&Int64Array::from(opened), &ts).unwrap(),
                resolved_ms: cast(&Int64Array::from(resolved), &ts).unwrap(),
                urgency: Arc::new(StringArray::from(urgency)),
            };
            let ctx = SessionContext::new();
            let state = RecordBatch::try_from_iter([
                ("grid_id", Arc::clone(&cases.grid_id)),
                ("case_kind", Arc::clone(&cases.case_kind)),
                ("opened_dt", Arc::clone(&cases.opened_dt)),
                ("opened_at", Arc::clone(&cases.opened_ms)),
                ("resolved_at", Arc::clone(&cases.resolved_ms)),
                ("urgency", Arc::clone(&cases.urgency)),
            ])
            .unwrap();
            for (name, batch) in [("case_state", state), ("days", days.clone())] {
                let t = MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap();
                ctx.register_table(name, Arc::new(t)).unwrap();
            }
            let want = ctx
                .sql(OPEN_CASES_SQL)
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            let got = open_at_day_end(&cases, &table).unwrap();
            let want = sorted_rows(&want);
            assert!(!want.is_empty());
            assert_eq!(sorted_rows(&[got]), want, "round {round}");
        }
    }
}
