//! The daily and cumulative rollup files: one per day, written only when
//! its bytes change.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::filter_record_batch;
use chrono::NaiveDate;
use gridstat_schemas::lake::dt_partition;
use object_store::ObjectStore;

use crate::error::{self, Result};
use crate::store;

/// The daily rollup files' prefix.
pub(crate) const DAILY: &str = "rollups/daily";
/// The cumulative rollup files' prefix.
pub(crate) const CUMULATIVE: &str = "rollups/cumulative";

/// Write the rows of `day` in `batches` (which hold a `dt` column) to
/// `PREFIX/dt=DAY/part-00000.parquet`, without `dt`, encoding off the
/// async threads; 1 if the file changed.
pub(crate) async fn write_day(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    day: NaiveDate,
    batches: Arc<Vec<RecordBatch>>,
) -> Result<usize> {
    let path = format!("{prefix}/{}/part-00000.parquet", dt_partition(day));
    let started = Instant::now();
    let encoded = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || encode_day(&batches, day, &path))
    };
    let body = error::joined(encoded, &path).await?;
    let encoded = started.elapsed().as_secs_f64();
    let wrote = match body {
        Some(body) => usize::from(store::put_if_changed(store, &path, body).await?),
        None => 0,
    };
    tracing::trace!(
        path,
        encode = encoded,
        put = started.elapsed().as_secs_f64() - encoded,
        "Rollup file done."
    );
    Ok(wrote)
}

/// The rows of `day` in `batches` (which hold a `dt` column) as the
/// Parquet object at `path`, without `dt`; `None` without batches.
fn encode_day(batches: &[RecordBatch], day: NaiveDate, path: &str) -> Result<Option<bytes::Bytes>> {
    let dt = day.format("%Y-%m-%d").to_string();
    let mut rows = Vec::new();
    let mut schema = None;
    for b in batches {
        let idx = b.schema().index_of("dt")?;
        let mask = arrow::compute::kernels::cmp::eq(
            b.column(idx).as_string::<i32>(),
            &arrow::array::StringArray::new_scalar(dt.clone()),
        )?;
        let mut kept = filter_record_batch(b, &mask)?;
        kept.remove_column(idx);
        schema.get_or_insert_with(|| kept.schema());
        if kept.num_rows() > 0 {
            rows.push(kept);
        }
    }
    let Some(schema) = schema else {
        return Ok(None);
    };
    let mut body = store::ParquetBody::rollup(path, &schema)?;
    for b in &rows {
        body.write(b)?;
    }
    body.finish().map(Some)
}
