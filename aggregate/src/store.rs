//! Lake I/O of the aggregate stage: listing raw files, reading and writing
//! Parquet objects and the bookkeeping state.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use chrono::NaiveDate;
use futures::TryStreamExt;
use gridstat_schemas::lake::parse_dt_partition;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A raw file as last seen: enough to notice it was rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Size in bytes.
    pub size: u64,
    /// ETag (or the store's equivalent), if any.
    pub e_tag: Option<String>,
    /// Last modified, RFC 3339.
    pub last_modified: String,
}

/// What the last run saw (`_state/aggregate.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateState {
    /// The [`LAYOUT`] of the curated and rollup tables the run left (0 in
    /// states written before layouts were recorded).
    #[serde(default)]
    pub layout: u32,
    /// Raw and quarantine files by path.
    pub files: BTreeMap<String, Fingerprint>,
    /// How far the rollups go and what they were computed with (absent in
    /// states written before incremental rollups: then a run recomputes all).
    #[serde(default)]
    pub rollups: Option<RollupMark>,
}

/// The version of what the curated and rollup tables hold (their columns
/// and levels). A run does not continue a state of another layout: it
/// curates and rolls up everything again, as `--all` does, so a lake
/// written by an older gridstat is upgraded by its first run.
pub const LAYOUT: u32 = 3;

/// The rollups a run left behind: every day up to `through`, computed
/// with these settings. A later run continues from them only when its
/// settings are the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollupMark {
    /// Last day with daily and cumulative rollups.
    pub through: NaiveDate,
    /// First day of the campaign.
    pub campaign_start: NaiveDate,
    /// The overdue limit in hours (normal urgency and hazards).
    pub overdue_hours: i64,
    /// The overdue limits of urgent and low-urgency hardships.
    #[serde(default)]
    pub urgency_overdue_hours: (i64, i64),
    /// Fingerprint of the registry (grids, their places and households).
    pub registry: String,
}

impl RollupMark {
    /// The mark of rollups computed with `opts` and `registry` up to `through`.
    pub(crate) fn of(
        opts: &crate::AggregateOptions,
        registry: &gridstat_schemas::Registry,
        through: NaiveDate,
    ) -> Self {
        Self {
            through,
            campaign_start: opts.campaign_start,
            overdue_hours: opts.overdue_hours,
            urgency_overdue_hours: (opts.urgent_overdue_hours, opts.low_overdue_hours),
            registry: registry_fingerprint(registry),
        }
    }

    /// Whether rollups computed under `self` can be continued under `other`.
    pub fn same_settings(&self, other: &RollupMark) -> bool {
        self.campaign_start == other.campaign_start
            && self.overdue_hours == other.overdue_hours
            && self.urgency_overdue_hours == other.urgency_overdue_hours
            && self.registry == other.registry
    }
}

/// A fingerprint of what the rollups take from the registry.
pub(crate) fn registry_fingerprint(registry: &gridstat_schemas::Registry) -> String {
    use std::hash::Hasher;
    let mut h = twox_hash::XxHash64::with_seed(0);
    let mut field = |s: &str| {
        h.write(s.as_bytes());
        h.write_u8(0);
    };
    field(&registry.city.code);
    field(&registry.city.name);
    for g in &registry.grids {
        let (village, town, county) = (
            &registry.villages[g.village],
            &registry.towns[g.town],
            &registry.counties[g.county],
        );
        for s in [
            &g.id,
            &g.name,
            &village.code,
            &village.name,
            &town.code,
            &town.name,
            &county.code,
            &county.name,
        ] {
            field(s);
        }
        field(&g.households.to_string());
    }
    format!("{:016x}", h.finish())
}

/// The Parquet objects under `prefix`, as the store describes them.
pub(crate) async fn list_parquet(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
) -> Result<Vec<ObjectMeta>> {
    let path = Path::from(prefix);
    store
        .list(Some(&path))
        .try_filter(|m| futures::future::ready(m.location.as_ref().ends_with(".parquet")))
        .try_collect()
        .await
        .map_err(|source| Error::Store {
            path: prefix.into(),
            source,
        })
}

/// Each object's path and fingerprint.
pub(crate) fn fingerprints(metas: &[ObjectMeta]) -> BTreeMap<String, Fingerprint> {
    metas
        .iter()
        .map(|m| {
            let fp = Fingerprint {
                size: m.size,
                e_tag: m.e_tag.clone(),
                last_modified: m.last_modified.to_rfc3339(),
            };
            (m.location.to_string(), fp)
        })
        .collect()
}

/// List every Parquet object under `prefix` with its fingerprint.
pub(crate) async fn list(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
) -> Result<BTreeMap<String, Fingerprint>> {
    Ok(fingerprints(&list_parquet(store, prefix).await?))
}

/// The `dt=` day of a path, if it has one.
pub(crate) fn day_of(path: &str) -> Option<NaiveDate> {
    path.split('/').find_map(parse_dt_partition)
}

pub(crate) async fn read_state(
    store: &Arc<dyn ObjectStore>,
    path: &str,
) -> Result<Option<AggregateState>> {
    let p = Path::from(path);
    match store.get(&p).await {
        Ok(r) => {
            let bytes = r.bytes().await.map_err(|source| Error::Store {
                path: path.into(),
                source,
            })?;
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::CorruptState {
                    path: path.into(),
                    reason: e.to_string(),
                })
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => Err(Error::Store {
            path: path.into(),
            source,
        }),
    }
}

pub(crate) async fn write_state(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    state: &AggregateState,
) -> Result<()> {
    let body = serde_json::to_vec_pretty(state).expect("state serializes");
    put(store, path, Bytes::from(body)).await
}

pub(crate) async fn put(store: &Arc<dyn ObjectStore>, path: &str, body: Bytes) -> Result<()> {
    store
        .put(&Path::from(path), PutPayload::from_bytes(body))
        .await
        .map(|_| ())
        .map_err(|source| Error::Store {
            path: path.into(),
            source,
        })
}

/// Write `batches` as one Parquet object, unless the object already holds
/// exactly these bytes. Returns whether it wrote.
/// The bytes of the object at `path`; `None` if there is none.
pub(crate) async fn read_bytes(store: &Arc<dyn ObjectStore>, path: &str) -> Result<Option<Bytes>> {
    let got = match store.get(&Path::from(path)).await {
        Ok(got) => got.bytes().await,
        Err(e) => Err(e),
    };
    match got {
        Ok(body) => Ok(Some(body)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => Err(Error::Store {
            path: path.into(),
            source,
        }),
    }
}

/// The batches of the Parquet object at `path`; `None` if there is none.
/// An object that cannot be decoded is a corrupt state.
pub(crate) async fn read_parquet(
    store: &Arc<dyn ObjectStore>,
    path: &str,
) -> Result<Option<Vec<RecordBatch>>> {
    let Some(body) = read_bytes(store, path).await? else {
        return Ok(None);
    };
    let corrupt = |e: parquet::errors::ParquetError| Error::CorruptState {
        path: path.into(),
        reason: e.to_string(),
    };
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(body)
        .and_then(|b| b.build())
        .map_err(corrupt)?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| corrupt(e.into()))?;
    Ok(Some(batches))
}

pub(crate) async fn write_parquet(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<bool> {
    let mut body = ParquetBody::new(path, &schema)?;
    for b in batches {
        body.write(b)?;
    }
    put_if_changed(store, path, body.finish()?).await
}

/// A write of a Parquet object in the background: whether it changed the
/// object.
pub(crate) type BackgroundWrite = tokio::task::JoinHandle<Result<bool>>;

/// Holds background writes back until it opens, or its [`GateOpener`] is
/// dropped. A refresh opens it once its rollup queries run one at a time:
/// they are mostly planning, on one core, so the writes' encoding then
/// uses the other instead of slowing the two query chains before.
#[derive(Debug, Clone)]
pub(crate) struct WriteGate(tokio::sync::watch::Receiver<bool>);

/// Opens a [`WriteGate`].
#[derive(Debug)]
pub(crate) struct GateOpener(tokio::sync::watch::Sender<bool>);

impl WriteGate {
    /// A gate that stays closed until `GateOpener::open`.
    pub(crate) fn closed() -> (Self, GateOpener) {
        let (opener, gate) = tokio::sync::watch::channel(false);
        (Self(gate), GateOpener(opener))
    }

    /// Run `write` in the background once the gate is open.
    pub(crate) fn spawn(
        mut self,
        write: impl std::future::Future<Output = Result<bool>> + Send + 'static,
    ) -> BackgroundWrite {
        tokio::spawn(async move {
            // An error means the opener is gone: its step ended, so go on.
            let _ = self.0.wait_for(|open| *open).await;
            write.await
        })
    }
}

impl GateOpener {
    /// Let every write waiting at the gate go on (again: a no-op).
    pub(crate) fn open(&self) {
        self.0.send_replace(true);
    }
}

/// Run `sql` and write its result as the one Parquet object at `path`
/// (see [`write_parquet`]), encoding batches as they come. Returns the rows
/// and whether it wrote.
pub(crate) async fn write_query(
    ctx: &datafusion::execution::context::SessionContext,
    store: &Arc<dyn ObjectStore>,
    what: &str,
    sql: &str,
    path: &str,
) -> Result<(usize, bool)> {
    use futures::StreamExt;
    let (schema, mut stream, timing) = crate::tables::stream_query(ctx, what, sql).await?;
    let mut body = ParquetBody::new(path, &schema)?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(crate::error::query(what))?;
        rows += batch.num_rows();
        body.write(&batch)?;
    }
    timing.done();
    Ok((rows, put_if_changed(store, path, body.finish()?).await?))
}

/// One Parquet object encoded as its batches come, so that a query's
/// result need not be held in memory whole (strings as plain strings).
pub(crate) struct ParquetBody {
    path: String,
    schema: SchemaRef,
    writer: ArrowWriter<Vec<u8>>,
}

impl ParquetBody {
    pub(crate) fn new(path: &str, schema: &SchemaRef) -> Result<Self> {
        Self::with_properties(path, schema, writer_properties())
    }

    /// A rollup file: its numbers (counts and shares of a few thousand
    /// areas) are smaller plain under zstd than dictionary-encoded, and
    /// quicker to write (a scale-1.0 day's cumulative file: 176 KB against
    /// 198 KB; a refresh's eight files encoded in 88 against 97 ms); the
    /// text columns (level, codes, names) keep their dictionaries.
    pub(crate) fn rollup(path: &str, schema: &SchemaRef) -> Result<Self> {
        let mut builder = writer_properties_builder();
        for field in schema.fields() {
            if field.data_type().is_numeric() {
                builder = builder
                    .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
            }
        }
        Self::with_properties(path, schema, builder.build())
    }

    fn with_properties(path: &str, schema: &SchemaRef, props: WriterProperties) -> Result<Self> {
        let schema = plain_schema(schema);
        let writer = ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(props)).map_err(
            |source| Error::Parquet {
                what: path.into(),
                source,
            },
        )?;
        Ok(Self {
            path: path.into(),
            schema,
            writer,
        })
    }

    /// The object it is for.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The Arrow schema the object is written with.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let batch = plain_strings(batch, &self.schema)?;
        self.writer.write(&batch).map_err(|source| Error::Parquet {
            what: self.path.clone(),
            source,
        })
    }

    pub(crate) fn finish(self) -> Result<Bytes> {
        self.writer
            .into_inner()
            .map(Bytes::from)
            .map_err(|source| Error::Parquet {
                what: self.path,
                source,
            })
    }
}

/// Put `body` at `path` unless the object already holds exactly these
/// bytes (a rerun then changes no file). Returns whether it wrote.
pub(crate) async fn put_if_changed(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    body: Bytes,
) -> Result<bool> {
    if let Ok(existing) = store.get(&Path::from(path)).await {
        if let Ok(old) = existing.bytes().await {
            if old == body {
                return Ok(false);
            }
        }
    }
    put(store, path, body).await?;
    Ok(true)
}

/// Whether an object exists.
pub(crate) async fn exists(store: &Arc<dyn ObjectStore>, path: &str) -> Result<bool> {
    match store.head(&Path::from(path)).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(source) => Err(Error::Store {
            path: path.into(),
            source,
        }),
    }
}

/// Whether any Parquet object lies under `prefix`, without listing them
/// all (the raw prefixes hold thousands).
pub(crate) async fn has_parquet(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<bool> {
    // Depth first, a directory level at a time, to stop at the first file:
    // a plain listing walks a local table whole before the first answer
    // (it stats entries a thousand at a time).
    let mut pending = vec![Path::from(prefix)];
    while let Some(dir) = pending.pop() {
        let level = store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|source| Error::Store {
                path: dir.to_string(),
                source,
            })?;
        if level
            .objects
            .iter()
            .any(|m| m.location.as_ref().ends_with(".parquet"))
        {
            return Ok(true);
        }
        pending.extend(level.common_prefixes.into_iter().rev());
    }
    Ok(false)
}

/// Delete every object under `prefix` (a day that no longer has raw data).
pub(crate) async fn delete_prefix(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<usize> {
    let listed = list(store, prefix).await?;
    for path in listed.keys() {
        store
            .delete(&Path::from(path.as_str()))
            .await
            .map_err(|source| Error::Store {
                path: path.clone(),
                source,
            })?;
    }
    Ok(listed.len())
}

/// The schema with string views as plain strings: what every reader of
/// the lake (DuckDB, Spark, Polars, pandas) handles best.
pub(crate) fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.data_type() == &DataType::Utf8View {
                Field::new(f.name(), DataType::Utf8, f.is_nullable())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn plain_strings(b: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let cols = b
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(Arc::clone(c))
            } else {
                arrow::compute::cast(c, f.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), cols)?)
}

/// Columns of the curated tables whose values are (nearly) all distinct:
/// written plain, since a dictionary would only cost hashing every value
/// before it falls back (encoding `case_state`, 98k rows, took 0.18 s with
/// dictionaries and 0.12 s without). Other columns repeat and keep theirs.
const DISTINCT_COLUMNS: &[&str] = &[
    "submission_id",
    "sent_at",
    "visited_at",
    "received_at",
    "updated_at",
    "source_offset",
    "target_id",
    "case_id",
    "opened_at",
    "assigned_at",
    "escalated_at",
    "resolved_at",
    "hours_to_resolve",
    "hazards.list.item.hazard_id",
    "hardships.list.item.case_id",
    "hardships.list.item.note",
];

/// Columns of random ids and free text: their min/max span nearly the
/// whole range on every page, so statistics prune nothing, yet keeping
/// them compares every value (as in ingest's writer).
const UNSORTABLE_COLUMNS: &[&str] = &[
    "submission_id",
    "reporter_id",
    "target_id",
    "case_id",
    "handler_id",
    "hazard_id",
    "hazards.list.item.hazard_id",
    "hardships.list.item.case_id",
    "hardships.list.item.note",
    "note",
];

/// zstd level 1, as ingest: on these sorted, dictionary-encoded pages it is
/// smaller than level 3 (the scale-1.0 lake's curated tables: 102 MB
/// against 106 MB) and no slower.
fn writer_properties() -> WriterProperties {
    writer_properties_builder().build()
}

/// [`writer_properties`], still open to per-column settings.
fn writer_properties_builder() -> parquet::file::properties::WriterPropertiesBuilder {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_created_by(format!("gridstat {}", env!("CARGO_PKG_VERSION")));
    let path = |column: &str| ColumnPath::new(column.split('.').map(String::from).collect());
    for column in DISTINCT_COLUMNS {
        builder = builder.set_column_dictionary_enabled(path(column), false);
    }
    for column in UNSORTABLE_COLUMNS {
        builder = builder.set_column_statistics_enabled(path(column), EnabledStatistics::None);
    }
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_from_paths() {
        assert_eq!(
            day_of("raw/visits/dt=2022-11-26/county=440703/p.parquet"),
            NaiveDate::from_ymd_opt(2022, 11, 26)
        );
        assert_eq!(day_of("raw/visits/p.parquet"), None);
    }

    /// A write behind a closed gate waits for `open`, or for its opener to
    /// go (a step that failed must not leave writes waiting forever).
    #[tokio::test]
    async fn writes_wait_at_a_closed_gate() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::Duration;
        for drop_opener in [false, true] {
            let (gate, opener) = WriteGate::closed();
            let ran = Arc::new(AtomicBool::new(false));
            let write = gate.spawn({
                let ran = Arc::clone(&ran);
                async move {
                    ran.store(true, Ordering::SeqCst);
                    Ok(true)
                }
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!ran.load(Ordering::SeqCst), "ran before the gate opened");
            if drop_opener {
                drop(opener);
            } else {
                opener.open();
            }
            assert!(write.await.unwrap().unwrap());
            assert!(ran.load(Ordering::SeqCst));
        }
    }
}
