//! Each target's first visited day, kept as state so that a refresh finds
//! the targets its days visit for the first time without reading every
//! earlier visit. (The SQL of `grid_firsts_sql` in `crate::rollup::grid_day`
//! does it by an anti-join that decodes grid, kind and id of every earlier
//! visit: 1.4M rows, a third of a one-day refresh of the city's 30-day
//! lake.)
//!
//! A target (grid, kind, id) is kept as a 128-bit SipHash-1-3 key of its
//! three parts, one object per first day:
//! `_state/target_firsts/dt=…/part-00000.parquet` holds the sorted keys of
//! the targets first visited that day. For the city's 1.7M targets the
//! odds that two share a key are below 10⁻²⁶.
//!
//! A run recomputes the days from `from` on; the state of the days before
//! stands, because a change to an earlier day moves `from` back to it.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Field, Schema};
use bytes::Bytes;
use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use gridstat_schemas::lake::dt_partition;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::error::{Error, Result};
use crate::tables::{query_batch, register_batches, run_query};

/// Where the state lives.
pub(crate) const TARGET_FIRSTS: &str = "_state/target_firsts";

/// The state object of the targets first visited on `day`.
pub(crate) fn state_path(day: NaiveDate) -> String {
    format!("{TARGET_FIRSTS}/{}/part-00000.parquet", dt_partition(day))
}

/// A target's key: SipHash-1-3 (128 bits, keys 0) of its parts, each
/// written as its length (little-endian u64) and bytes, so that no two
/// different triples feed the hash the same bytes. A missing part is
/// written as length `u64::MAX`.
pub(crate) fn target_key(grid: Option<&str>, kind: Option<&str>, id: Option<&str>) -> u128 {
    let mut h = SipHasher13::new();
    for part in [grid, kind, id] {
        match part {
            Some(s) => {
                h.write(&(s.len() as u64).to_le_bytes());
                h.write(s.as_bytes());
            }
            None => h.write(&u64::MAX.to_le_bytes()),
        }
    }
    h.finish128().as_u128()
}

/// The keys are uniform already: the hash table takes them as they are.
#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, key: u128) {
        // Both halves: the low one alone would do, but a key's bits cost nothing.
        self.0 = (key as u64) ^ ((key >> 64) as u64);
    }
}

type KeyMap = HashMap<u128, usize, BuildHasherDefault<KeyHasher>>;

/// The state objects of the days from the campaign's start up to `from`
/// (excluded): what a refresh reads for the targets visited before it.
fn earlier_paths(campaign_start: NaiveDate, from: NaiveDate) -> Vec<String> {
    campaign_start
        .iter_days()
        .take_while(|d| *d < from)
        .map(state_path)
        .collect()
}

/// Whether the lake holds the state of every day before `from` (a lake
/// aggregated before this state existed does not).
pub(crate) async fn covers(
    store: &Arc<dyn ObjectStore>,
    campaign_start: NaiveDate,
    from: NaiveDate,
) -> Result<bool> {
    let listed = crate::store::list(store, TARGET_FIRSTS).await?;
    Ok(earlier_paths(campaign_start, from)
        .iter()
        .all(|p| listed.contains_key(p)))
}

/// The keys of the targets first visited on each recomputed day: the
/// state a run writes once its visit tables are final ([`write`]).
#[derive(Debug, Default)]
pub(crate) struct NewFirsts {
    /// The recomputed days, each of which gets an object, empty or not.
    days: Vec<NaiveDate>,
    /// Keys by first day, sorted.
    keys: BTreeMap<NaiveDate, Vec<u128>>,
}

/// Targets visited in the recomputed days, with their first day among them.
fn visited_sql(from: NaiveDate) -> String {
    format!(
        "SELECT grid_id, target_kind, target_id, MIN(CAST(dt AS DATE)) AS first_dt \
         FROM curated_visits WHERE dt >= '{from}' GROUP BY grid_id, target_kind, target_id"
    )
}

/// Build the table `grid_firsts` (targets first visited, per day and grid)
/// for `days` (consecutive, recomputation starting at the first).
/// With `has_previous`, the targets visited before the first are in the
/// state ([`covers`]); visits before the campaign's start are read from
/// the curated table.
pub(crate) async fn materialize(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    days: &[NaiveDate],
    campaign_start: NaiveDate,
    has_previous: bool,
) -> Result<NewFirsts> {
    let Some(&from) = days.first() else {
        return Ok(NewFirsts::default());
    };
    let started = std::time::Instant::now();
    let paths = if has_previous {
        earlier_paths(campaign_start, from)
    } else {
        Vec::new()
    };
    let sql = visited_sql(from);
    let (visited, (early, bodies)) = futures::try_join!(
        query_batch(ctx, "targets visited", &sql),
        earlier_keys(ctx, store, campaign_start, &paths)
    )?;
    let keys = keys_of(&visited)?;
    let early = keys_of(&early)?;
    let (keys, seen) = crate::error::joined(
        tokio::task::spawn_blocking(move || {
            let seen = seen_among(&keys, &paths, bodies, &early)?;
            Ok((keys, seen))
        }),
        TARGET_FIRSTS,
    )
    .await?;
    let first_dt = visited.column(3).as_primitive::<Date32Type>();
    let mut firsts = NewFirsts {
        days: days.to_vec(),
        keys: BTreeMap::new(),
    };
    for (i, key) in keys.iter().enumerate() {
        if !seen[i] && first_dt.is_valid(i) {
            if let Some(day) = first_dt.value_as_date(i) {
                firsts.keys.entry(day).or_default().push(*key);
            }
        }
    }
    for keys in firsts.keys.values_mut() {
        keys.sort_unstable();
    }
    let is_new: BooleanArray = seen.iter().map(|seen| Some(!seen)).collect();
    let new_targets = arrow::compute::filter_record_batch(&visited, &is_new)?;
    register_batches(ctx, "new_targets", new_targets.schema(), vec![new_targets])?;
    let (schema, batches) = run_query(
        ctx,
        "grid_firsts",
        &crate::rollup::grid_day::firsts_per_grid_sql("new_targets"),
    )
    .await?;
    register_batches(ctx, "grid_firsts", schema, batches)?;
    ctx.deregister_table("new_targets")
        .map_err(crate::error::query("new_targets"))?;
    tracing::debug!(
        table = "grid_firsts",
        targets = keys.len(),
        seen_before = seen.iter().filter(|s| **s).count(),
        seconds = started.elapsed().as_secs_f64(),
        "Materialized."
    );
    Ok(firsts)
}

/// What holds the targets visited before the recomputed days: the state
/// objects at `paths`, and the curated visits before `campaign_start`
/// (none, unless ingest and aggregate were given different campaign
/// starts).
async fn earlier_keys(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    campaign_start: NaiveDate,
    paths: &[String],
) -> Result<(RecordBatch, Vec<Bytes>)> {
    let early_sql = format!(
        "SELECT DISTINCT grid_id, target_kind, target_id FROM curated_visits WHERE dt < '{campaign_start}'"
    );
    futures::try_join!(
        query_batch(ctx, "targets visited before the campaign", &early_sql),
        futures::future::try_join_all(paths.iter().map(|path| read(store, path)))
    )
}

/// Which of `keys` were visited before: are in one of the state objects
/// `bodies` (read from `paths`) or among `early`. The few keys of a
/// refresh go in a hash table that the many earlier ones probe.
fn seen_among(
    keys: &[u128],
    paths: &[String],
    bodies: Vec<Bytes>,
    early: &[u128],
) -> Result<Vec<bool>> {
    let mut seen = vec![false; keys.len()];
    if bodies.is_empty() && early.is_empty() {
        return Ok(seen);
    }
    let mut index: KeyMap =
        HashMap::with_capacity_and_hasher(keys.len(), BuildHasherDefault::default());
    for (i, key) in keys.iter().enumerate() {
        index.insert(*key, i);
    }
    let mut probe = |key: u128| {
        if let Some(&i) = index.get(&key) {
            seen[i] = true;
        }
    };
    for (path, body) in paths.iter().zip(bodies) {
        decode(path, body, &mut probe)?;
    }
    early.iter().copied().for_each(&mut probe);
    Ok(seen)
}

/// The key of each row of a batch whose first three columns are grid,
/// kind and id.
fn keys_of(batch: &RecordBatch) -> Result<Vec<u128>> {
    let text = |i: usize| -> Result<ArrayRef> {
        Ok(arrow::compute::cast(batch.column(i), &DataType::Utf8)?)
    };
    let (grid, kind, id) = (text(0)?, text(1)?, text(2)?);
    let (grid, kind, id) = (
        grid.as_string::<i32>(),
        kind.as_string::<i32>(),
        id.as_string::<i32>(),
    );
    fn part(a: &arrow::array::StringArray, i: usize) -> Option<&str> {
        a.is_valid(i).then(|| a.value(i))
    }
    Ok((0..batch.num_rows())
        .map(|i| target_key(part(grid, i), part(kind, i), part(id, i)))
        .collect())
}

async fn read(store: &Arc<dyn ObjectStore>, path: &str) -> Result<Bytes> {
    let store_err = |source| Error::Store {
        path: path.into(),
        source,
    };
    store
        .get(&object_store::path::Path::from(path))
        .await
        .map_err(store_err)?
        .bytes()
        .await
        .map_err(store_err)
}

fn corrupt(path: &str, reason: impl std::fmt::Display) -> Error {
    Error::CorruptState {
        path: path.into(),
        reason: reason.to_string(),
    }
}

/// Pass each key of one state object to `each`.
fn decode(path: &str, body: Bytes, mut each: impl FnMut(u128)) -> Result<()> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(body)
        .and_then(|b| b.with_batch_size(64 * 1024).build())
        .map_err(|e| corrupt(path, e))?;
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(path, e))?;
        let column = batch
            .column_by_name("target_key")
            .and_then(|c| c.as_fixed_size_binary_opt())
            .filter(|c| c.value_length() == 16 && c.null_count() == 0)
            .ok_or_else(|| corrupt(path, "no column target_key of 16-byte keys"))?;
        for key in column.values().chunks_exact(16) {
            each(u128::from_le_bytes(key.try_into().unwrap_or_default()));
        }
    }
    Ok(())
}

/// One state object: the keys, plain and uncompressed (they are random).
fn encode(path: &str, keys: &[u128]) -> Result<Bytes> {
    let parquet_err = |source| Error::Parquet {
        what: path.into(),
        source,
    };
    let schema = Arc::new(Schema::new(vec![Field::new(
        "target_key",
        DataType::FixedSizeBinary(16),
        false,
    )]));
    let column = FixedSizeBinaryArray::try_new(
        16,
        keys.iter()
            .flat_map(|k| k.to_le_bytes())
            .collect::<Vec<u8>>()
            .into(),
        None,
    )?;
    let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(column)])?;
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_created_by(format!("gridstat {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(props)).map_err(parquet_err)?;
    writer.write(&batch).map_err(parquet_err)?;
    writer.into_inner().map(Bytes::from).map_err(parquet_err)
}

/// Write the state of the recomputed days in the background once `gate`
/// opens, and delete that of any later day (a lake whose raw files were
/// removed).
pub(crate) fn write(
    store: &Arc<dyn ObjectStore>,
    firsts: NewFirsts,
    gate: crate::store::WriteGate,
) -> crate::store::BackgroundWrite {
    let store = Arc::clone(store);
    gate.spawn(async move {
        let Some(&from) = firsts.days.first() else {
            return Ok(false);
        };
        let mut wrote = false;
        for &day in &firsts.days {
            let path = state_path(day);
            let keys = firsts.keys.get(&day).map_or(&[][..], Vec::as_slice);
            let body = encode(&path, keys)?;
            wrote |= crate::store::put_if_changed(&store, &path, body).await?;
        }
        for path in crate::store::list(&store, TARGET_FIRSTS).await?.into_keys() {
            let stale = crate::store::day_of(&path)
                .is_some_and(|day| day >= from && !firsts.days.contains(&day));
            if stale {
                store
                    .delete(&object_store::path::Path::from(path.as_str()))
                    .await
                    .map_err(|source| Error::Store { path, source })?;
                wrote = true;
            }
        }
        Ok(wrote)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys are part of the lake's state: they must not change between
    /// versions or machines.
    #[test]
    fn keys_are_stable_and_unambiguous() {
        let k = target_key(Some("440703001001"), Some("household"), Some("h-1"));
        assert_eq!(
            k,
            target_key(Some("440703001001"), Some("household"), Some("h-1"))
        );
        assert_eq!(format!("{k:032x}"), "804020cba28fe0de4c6205d2c890c4d1");
        assert_ne!(
            k,
            target_key(Some("440703001001"), Some("householdh"), Some("-1"))
        );
        assert_ne!(k, target_key(Some("440703001001"), Some("household"), None));
        assert_ne!(
            target_key(Some(""), None, None),
            target_key(None, Some(""), None)
        );
    }

    #[test]
    fn state_objects_round_trip() {
        let keys = vec![1u128, u128::MAX, 0x0123_4567_89ab_cdef_0011_2233_4455_6677];
        let path = state_path(NaiveDate::from_ymd_opt(2022, 11, 25).unwrap());
        assert_eq!(
            path,
            "_state/target_firsts/dt=2022-11-25/part-00000.parquet"
        );
        let decoded = |body| {
            let mut got = Vec::new();
            decode(&path, body, |k| got.push(k)).map(|()| got)
        };
        assert_eq!(decoded(encode(&path, &keys).unwrap()).unwrap(), keys);
        assert!(decoded(encode(&path, &[]).unwrap()).unwrap().is_empty());
        let err = decoded(Bytes::from_static(b"not parquet")).unwrap_err();
        assert!(err.to_string().contains("--all"), "{err}");
    }

    #[test]
    fn keys_seen_in_the_state_or_among_early_visits() {
        let path = state_path(NaiveDate::from_ymd_opt(2022, 11, 25).unwrap());
        let body = encode(&path, &[3, 5]).unwrap();
        let seen = seen_among(&[1, 3, 5, 7], &[path], vec![body], &[7]).unwrap();
        assert_eq!(seen, [false, true, true, true]);
        assert_eq!(seen_among(&[1], &[], Vec::new(), &[]).unwrap(), [false]);
    }
}
