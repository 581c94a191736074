//! The running sums behind the cumulative table (`area_running`).

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};

use datafusion::execution::context::SessionContext;

use super::columns::{FLOWS, REPORTERS};
use crate::error::Result;
use crate::tables::register_batches;

/// `area_day` with each area's new reporters per day: the input of the
/// running sums behind the cumulative table.
pub(crate) fn area_totals_sql() -> String {
    let reporters: String = REPORTERS
        .iter()
        .map(|(c, _)| format!(", COALESCE(r.{c}, 0) AS {c}"))
        .collect();
    format!(
        "SELECT a.*{reporters} FROM area_day a \
         LEFT JOIN reporters_cum r ON a.level = r.rl AND a.area_code = r.ra AND a.dt = r.rdt"
    )
}

/// Build `area_running`: [`area_totals_sql`] with the flows and reporter
/// counts running-summed per area over the recomputed days.
pub(crate) async fn build(ctx: &SessionContext) -> Result<()> {
    let (schema, totals) =
        crate::tables::run_query(ctx, "area_running", &area_totals_sql()).await?;
    let summed: Vec<&str> = FLOWS
        .iter()
        .copied()
        .chain(REPORTERS.iter().map(|(c, _)| *c))
        .collect();
    let running = running_sums(&totals, &["level", "area_code"], "dt", &summed)?;
    register_batches(ctx, "area_running", schema, running.into_iter().collect())
}

/// Replace each of `columns` (Int64) by its running sum over the rows of
/// the same `partition` key in `order`: DataFusion's bounded window
/// operator took over a second for 90k rows with thousands of areas.
fn running_sums(
    batches: &[RecordBatch],
    partition: &[&str],
    order: &str,
    columns: &[&str],
) -> Result<Option<RecordBatch>> {
    use arrow::array::{Array, ArrayRef, Int64Array};
    use arrow::compute::SortColumn;
    use arrow::datatypes::Int64Type;
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let batch = arrow::compute::concat_batches(&first.schema(), batches)?;
    let column = |name: &str| -> Result<ArrayRef> {
        Ok(Arc::clone(batch.column(batch.schema().index_of(name)?)))
    };
    let mut sort = Vec::new();
    for name in partition.iter().chain([&order]) {
        sort.push(SortColumn {
            values: column(name)?,
            options: None,
        });
    }
    let indices = arrow::compute::lexsort_to_indices(&sort, None)?;
    let sorted = arrow::compute::take_record_batch(&batch, &indices)?;
    let keys = partition
        .iter()
        .map(|name| Ok(Arc::clone(sorted.column(sorted.schema().index_of(name)?))))
        .collect::<Result<Vec<ArrayRef>>>()?;
    let ranges = arrow::compute::partition(&keys)?.ranges();
    let mut out = sorted.columns().to_vec();
    for name in columns {
        let idx = sorted.schema().index_of(name)?;
        let values = out[idx].as_primitive::<Int64Type>();
        let mut sums = Vec::with_capacity(values.len());
        for range in &ranges {
            let mut total = 0i64;
            for row in range.clone() {
                total += if values.is_null(row) {
                    0
                } else {
                    values.value(row)
                };
                sums.push(total);
            }
        }
        out[idx] = Arc::new(Int64Array::from(sums));
    }
    Ok(Some(RecordBatch::try_new(sorted.schema(), out)?))
}
