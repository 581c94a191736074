//! Median and 90th percentile of hours to resolve per level, area and day,
//! of the day's resolutions or of every resolution up to the day.
//!
//! The SQL (`hours_sql` in [`crate::rollup`], which DuckDB runs in the
//! benchmark) joins each resolution to every later day and sorts each
//! group: for cumulative figures that is resolutions × days rows per level.
//! Here each area's resolutions are sorted once by hours, and each day's
//! percentiles are read off that order, counting only resolutions up to the
//! day. The interpolation is DataFusion's `percentile_cont`, so both give
//! the same numbers.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::Result;

/// `percentile_cont` interpolates with a weight rounded down to this
/// precision (datafusion-functions-aggregate `percentile_cont.rs`).
const INTERPOLATION_PRECISION: f64 = 1_000_000.0;

/// The percentiles in the rollups.
const MEDIAN: f64 = 0.5;
const P90: f64 = 0.9;

/// `percentile_cont(p)` of `sorted` (ascending, not empty).
fn percentile_cont(sorted: &[f64], p: f64) -> f64 {
    let index = p * (sorted.len() - 1) as f64;
    let (lower, upper) = (index.floor() as usize, index.ceil() as usize);
    let low = sorted[lower];
    if lower == upper {
        return low;
    }
    let weight = ((index - lower as f64) * INTERPOLATION_PRECISION) as usize as f64
        / INTERPOLATION_PRECISION;
    low + (sorted[upper] - low) * weight
}

/// Resolutions: for each level, the area of each row; the row's day and
/// hours to resolve.
pub(crate) struct Resolutions<'a> {
    /// (level name, area code of each row).
    pub(crate) levels: Vec<(&'a str, ArrayRef)>,
    /// `YYYY-MM-DD` of each resolution.
    pub(crate) day: ArrayRef,
    pub(crate) hours: ArrayRef,
}

/// Output columns: `hl`, `ha`, `hdt`, `resolve_hours_median`,
/// `resolve_hours_p90`, as `hours_sql` names them.
pub(crate) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("hl", DataType::Utf8, false),
        Field::new("ha", DataType::Utf8, true),
        Field::new("hdt", DataType::Utf8, false),
        Field::new("resolve_hours_median", DataType::Float64, true),
        Field::new("resolve_hours_p90", DataType::Float64, true),
    ]))
}

/// The rows of one table being built.
#[derive(Default)]
struct Table<'a> {
    level: Vec<&'a str>,
    area: Vec<String>,
    day: Vec<&'a str>,
    median: Vec<f64>,
    p90: Vec<f64>,
}

impl<'a> Table<'a> {
    /// Add the row of `values` (ascending), if any.
    fn push(&mut self, level: &'a str, area: &str, day: &'a str, values: &[f64]) {
        if values.is_empty() {
            return;
        }
        self.level.push(level);
        self.area.push(area.to_string());
        self.day.push(day);
        self.median.push(percentile_cont(values, MEDIAN));
        self.p90.push(percentile_cont(values, P90));
    }

    fn finish(self) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(self.level)),
                Arc::new(StringArray::from(self.area)),
                Arc::new(StringArray::from(self.day)),
                Arc::new(Float64Array::from(self.median)),
                Arc::new(Float64Array::from(self.p90)),
            ],
        )?)
    }
}

/// The daily and the cumulative table: one row per level, area and day of
/// `days` (ascending `YYYY-MM-DD`) with at least one resolution of that
/// day, or up to it. Rows without an area, a day or hours are left out, as
/// the SQL's join and aggregate leave them.
pub(crate) fn hours_to_resolve(
    input: &Resolutions<'_>,
    days: &[String],
) -> Result<(RecordBatch, RecordBatch)> {
    let day = cast(&input.day, &DataType::Utf8)?;
    let day = day.as_string::<i32>();
    let hours = cast(&input.hours, &DataType::Float64)?;
    let hours = hours.as_primitive::<arrow::datatypes::Float64Type>();
    // Rows counting for some day, by ascending hours: (hours, the first of
    // `days` on or after the row's day, whether it is the row's day, row).
    let mut rows: Vec<(f64, u32, bool, usize)> = (0..hours.len())
        .filter(|&r| !hours.is_null(r) && !day.is_null(r))
        .filter_map(|r| {
            let value = day.value(r);
            let d = days.partition_point(|x| x.as_str() < value);
            (d < days.len()).then(|| (hours.value(r), d as u32, days[d] == value, r))
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));

    let (mut daily, mut cumulative) = (Table::default(), Table::default());
    for (level, areas) in &input.levels {
        // Areas as small integers (a dictionary), so that grouping is
        // indexing rather than hashing a string per row.
        let areas = cast(
            areas,
            &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        )?;
        let areas = areas.as_dictionary::<arrow::datatypes::Int32Type>();
        let (keys, names) = (areas.keys(), areas.values().as_string::<i32>());
        // Each area's rows, in ascending hours.
        let mut by_area: Vec<Vec<(f64, u32, bool)>> = vec![Vec::new(); names.len()];
        for &(h, d, exact, r) in &rows {
            if !keys.is_null(r) {
                by_area[keys.value(r) as usize].push((h, d, exact));
            }
        }
        let (mut of_day, mut up_to_day) = (Vec::new(), Vec::new());
        for (area, values) in by_area.iter().enumerate() {
            let area = names.value(area);
            for (i, day) in days.iter().enumerate() {
                let i = i as u32;
                of_day.clear();
                up_to_day.clear();
                for &(h, d, exact) in values {
                    if d <= i {
                        up_to_day.push(h);
                        if d == i && exact {
                            of_day.push(h);
                        }
                    }
                }
                daily.push(level, area, day, &of_day);
                cumulative.push(level, area, day, &up_to_day);
            }
        }
    }
    Ok((daily.finish()?, cumulative.finish()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{sorted_rows, Random};
    use datafusion::prelude::SessionContext;

    /// Random resolutions (ties, single values, days before the first
    /// recomputed day, areas missing) against DataFusion's own
    /// `percentile_cont` over the SQL's join with the days: equal to the
    /// last bit, daily and cumulative.
    #[tokio::test]
    async fn percentiles_equal_datafusions() {
        let mut random = Random::new(0x2545_F491_4F6C_DD1D);
        let days: Vec<String> = (24..=28).map(|d| format!("2022-11-{d}")).collect();
        for round in 0..8 {
            let rows: Vec<String> = (0..5 + random.below(300))
                .map(|_| {
                    let area = if random.below(20) == 0 {
                        "NULL".to_string()
                    } else {
                        format!("'A{}'", random.below(6))
                    };
                    let hours = if random.below(4) == 0 {
                        random.below(5) as f64
                    } else {
                        random.below(100_000) as f64 / 37.0
                    };
                    format!("({area}, '2022-11-{}', {hours:?})", 22 + random.below(8))
                })
                .collect();
            let ctx = SessionContext::new();
            let day_rows: Vec<String> = days.iter().map(|d| format!("('{d}')")).collect();
            for sql in [
                format!(
                    "CREATE TABLE r AS SELECT * FROM (VALUES {}) AS t(area, dt, hours)",
                    rows.join(", ")
                ),
                format!(
                    "CREATE TABLE days AS SELECT * FROM (VALUES {}) AS t(dt)",
                    day_rows.join(", ")
                ),
            ] {
                ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            }
            let input = crate::tables::query_batch(&ctx, "r", "SELECT area, dt, hours FROM r")
                .await
                .unwrap();
            let resolutions = Resolutions {
                levels: vec![("grid", Arc::clone(input.column(0)))],
                day: Arc::clone(input.column(1)),
                hours: Arc::clone(input.column(2)),
            };
            for cumulative in [false, true] {
                let on = if cumulative {
                    "r.dt <= d.dt"
                } else {
                    "r.dt = d.dt"
                };
                let sql = format!(
                    "SELECT 'grid' AS hl, r.area AS ha, d.dt AS hdt, \
                     percentile_cont(0.5) WITHIN GROUP (ORDER BY r.hours) AS m, \
                     percentile_cont(0.9) WITHIN GROUP (ORDER BY r.hours) AS p \
                     FROM r JOIN days d ON {on} WHERE r.area IS NOT NULL GROUP BY r.area, d.dt"
                );
                let want = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
                let (of_day, up_to_day) = hours_to_resolve(&resolutions, &days).unwrap();
                let got = if cumulative { up_to_day } else { of_day };
                let want = sorted_rows(&want);
                assert!(!want.is_empty());
                assert_eq!(
                    sorted_rows(&[got]),
                    want,
                    "round {round}, cumulative {cumulative}"
                );
            }
        }
    }
}
