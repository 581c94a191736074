//! Reading the rollups from the lake (the only I/O of this crate besides
//! writing the output directory).

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit, TimestampMillisecondType};
use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate};
use futures::TryStreamExt;
use gridstat_schemas::arrow_schema::TZ;
use gridstat_schemas::lake::parse_dt_partition;
use gridstat_schemas::time::{local_midnight, shanghai};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};
use crate::model::{days_of, string_column, typed_column, Level, OpenCase, Rollups, UnitRow};
use crate::site::parallel_map;

async fn fetch(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<Bytes> {
    async { store.get(path).await?.bytes().await }
        .await
        .map_err(|source| Error::Store {
            path: path.to_string(),
            source,
        })
}

/// The batches of the Parquet object `bytes` read from `path`.
fn decode_parquet(path: &Path, bytes: Bytes) -> Result<Vec<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|source| Error::Parquet {
            path: path.to_string(),
            source,
        })?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Parquet {
            path: path.to_string(),
            source: e.into(),
        })?;
    batches.iter().map(plain_strings).collect()
}

/// Cast string views (what some writers produce) to plain strings.
fn plain_strings(b: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
        if f.data_type() == &DataType::Utf8View {
            cols.push(
                arrow::compute::cast(c, &DataType::Utf8)
                    .map_err(|e| Error::Chart(format!("internal: {e}")))?,
            );
            fields.push(Field::new(f.name(), DataType::Utf8, f.is_nullable()));
        } else {
            cols.push(Arc::clone(c));
            fields.push(f.as_ref().clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
        .map_err(|e| Error::Chart(format!("internal: {e}")))
}

/// Every Parquet object under `prefix`, each batch with its `dt` partition
/// appended as a column.
async fn read_partitioned(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<Vec<RecordBatch>> {
    let mut paths: Vec<Path> = store
        .list(Some(&Path::from(prefix)))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|source| Error::Store {
            path: prefix.into(),
            source,
        })?;
    paths.retain(|p| p.as_ref().ends_with(".parquet"));
    paths.sort();
    let mut objects = Vec::with_capacity(paths.len());
    for p in paths {
        let bytes = fetch(store, &p).await?;
        objects.push((p, bytes));
    }
    // Decoding is the work: one object per day, decoded on every core.
    let decoded = parallel_map(&objects, |(p, bytes)| {
        let dt = p.as_ref().split('/').find_map(parse_dt_partition);
        decode_parquet(p, bytes.clone())?
            .iter()
            .map(|b| match dt {
                Some(day) => with_dt(b, day),
                None => Ok(b.clone()),
            })
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(decoded.into_iter().flatten().collect())
}

fn with_dt(b: &RecordBatch, day: NaiveDate) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("dt", DataType::Utf8, false));
    let mut cols = b.columns().to_vec();
    cols.push(Arc::new(StringArray::from(vec![
        day.to_string();
        b.num_rows()
    ])));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
        .map_err(|e| Error::Chart(format!("internal: {e}")))
}

/// Read rollups (daily, cumulative, quality and open cases) from the lake,
/// keeping days up to `as_of`. Every table is checked against the schema
/// this build writes; a mismatch is an error naming the table and column.
pub async fn load_rollups(
    store: &Arc<dyn ObjectStore>,
    as_of: Option<NaiveDate>,
) -> Result<Rollups> {
    const CUMULATIVE: &str = "rollups/cumulative";
    const DAILY: &str = "rollups/daily";
    const QUALITY: &str = "rollups/quality";
    let cumulative = read_partitioned(store, CUMULATIVE).await?;
    let daily = read_partitioned(store, DAILY).await?;
    let mut days = days_of(CUMULATIVE, &cumulative)?;
    if let Some(limit) = as_of {
        days.retain(|d| *d <= limit);
    }
    if days.is_empty() {
        return Err(Error::NoRollups);
    }
    let mut r = Rollups {
        days,
        ..Rollups::default()
    };
    r.add_batches(CUMULATIVE, &cumulative, true)?;
    r.add_batches(DAILY, &daily, false)?;
    r.derive();
    for b in read_partitioned(store, QUALITY).await? {
        let dt = string_column(QUALITY, &b, "dt")?;
        let kind = string_column(QUALITY, &b, "kind")?;
        let class = string_column(QUALITY, &b, "class")?;
        let count = typed_column(QUALITY, &b, "count", &DataType::Int64)?;
        let count = count.as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if NaiveDate::parse_from_str(dt.value(i), "%Y-%m-%d")
                .is_ok_and(|d| as_of.is_none_or(|l| d <= l))
            {
                r.quality.push((
                    dt.value(i).into(),
                    kind.value(i).into(),
                    (!class.is_null(i)).then(|| class.value(i).into()),
                    count.value(i),
                ));
            }
        }
    }
    let last_day = *r.days.last().expect("non-empty");
    r.units = units(&read_partitioned(store, UNITS).await?, last_day)?;
    let last_end = local_midnight(last_day) + Duration::days(1);
    r.open_cases = open_cases(
        &read_partitioned(store, CASE_STATE).await?,
        last_end.timestamp_millis(),
    )?;
    Ok(r)
}

const CASE_STATE: &str = "curated/case_state";
const UNITS: &str = "rollups/units";

/// The units table's rows of `day`.
fn units(batches: &[RecordBatch], day: NaiveDate) -> Result<Vec<UnitRow>> {
    let day = day.to_string();
    let mut out = Vec::new();
    for b in batches {
        let s = |n: &str| string_column(UNITS, b, n);
        let n = |name: &str| {
            typed_column(UNITS, b, name, &DataType::Int64).map(|c| c.as_primitive::<Int64Type>())
        };
        let (dt, level, area, unit) = (s("dt")?, s("level")?, s("area_code")?, s("reporter_unit")?);
        let (active, visits) = (n("reporters_active")?, n("visits")?);
        let (reporters, visits_all) = (n("reporters_since_start")?, n("visits_since_start")?);
        for i in 0..b.num_rows() {
            let Some(level) = Level::parse(level.value(i)) else {
                continue;
            };
            if dt.value(i) != day {
                continue;
            }
            out.push(UnitRow {
                level,
                area_code: area.value(i).into(),
                unit: unit.value(i).into(),
                reporters_active: active.value(i),
                visits: visits.value(i),
                reporters_since_start: reporters.value(i),
                visits_since_start: visits_all.value(i),
            });
        }
    }
    Ok(out)
}

fn open_cases(batches: &[RecordBatch], end_ms: i64) -> Result<Vec<OpenCase>> {
    let mut out = Vec::new();
    let millis = DataType::Timestamp(TimeUnit::Millisecond, Some(TZ.into()));
    for b in batches {
        let s = |n: &str| string_column(CASE_STATE, b, n);
        let t = |n: &str| {
            typed_column(CASE_STATE, b, n, &millis)
                .map(|c| c.as_primitive::<TimestampMillisecondType>())
        };
        let (id, kind, cat, grid) = (
            s("case_id")?,
            s("case_kind")?,
            s("category")?,
            s("grid_id")?,
        );
        let (opened, resolved) = (t("opened_at")?, t("resolved_at")?);
        let (assigned, escalated) = (t("assigned_at")?, t("escalated_at")?);
        let urgency = s("urgency")?;
        // The latest update (written by aggregate since it keeps it).
        let last = match b.column_by_name("last_update_ms") {
            Some(_) => Some((
                typed_column(CASE_STATE, b, "last_update_ms", &DataType::Int64)?
                    .as_primitive::<Int64Type>(),
                s("last_status")?,
                s("last_handler_id")?,
            )),
            None => None,
        };
        let by_end = |times: &arrow::array::TimestampMillisecondArray, i: usize| {
            (!times.is_null(i) && times.value(i) < end_ms).then(|| times.value(i))
        };
        for i in 0..b.num_rows() {
            let open_at = opened.value(i);
            let still_open = resolved.is_null(i) || resolved.value(i) >= end_ms;
            // Resolved by the end, and its latest update by then, after the
            // resolution, left it in another state.
            let reopened = !still_open
                && last.is_some_and(|(at, status, _)| {
                    !at.is_null(i)
                        && at.value(i) < end_ms
                        && at.value(i) > resolved.value(i)
                        && !status.is_null(i)
                        && status.value(i) != "resolved"
                });
            if open_at < end_ms && (still_open || reopened) {
                let opened_text = DateTime::from_timestamp_millis(open_at)
                    .map(|d| {
                        d.with_timezone(&shanghai())
                            .format("%Y-%m-%d %H:%M")
                            .to_string()
                    })
                    .unwrap_or_default();
                let text = |c: &StringArray| (!c.is_null(i)).then(|| c.value(i).to_string());
                // The latest update by the day's end gives the status and
                // the handler; past it (an earlier `--as-of`), the first
                // assignment and escalation by then give the status.
                let latest = last.and_then(|(at, status, handler)| {
                    (!at.is_null(i) && at.value(i) < end_ms).then(|| (text(status), text(handler)))
                });
                let (status, handler_id) = match latest {
                    Some((status, handler)) => (status, handler),
                    None => {
                        let status = match (by_end(assigned, i), by_end(escalated, i)) {
                            (Some(a), Some(e)) if a > e => Some("assigned"),
                            (_, Some(_)) => Some("escalated"),
                            (Some(_), None) => Some("assigned"),
                            (None, None) => None,
                        };
                        (status.map(str::to_string), None)
                    }
                };
                out.push(OpenCase {
                    case_id: id.value(i).into(),
                    case_kind: kind.value(i).into(),
                    category: cat.value(i).into(),
                    grid_id: grid.value(i).into(),
                    opened_at: opened_text,
                    hours_open: (end_ms - open_at) as f64 / 3_600_000.0,
                    urgency: text(urgency),
                    status: status.filter(|s| !s.is_empty()),
                    handler_id: handler_id.filter(|h| !h.is_empty()),
                    reopened,
                });
            }
        }
    }
    out.sort_by(|a, b| {
        b.hours_open
            .total_cmp(&a.hours_open)
            .then(a.case_id.cmp(&b.case_id))
    });
    Ok(out)
}
