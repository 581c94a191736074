//! Only committed raw files are read.
//!
//! Ingest writes a segment's files before the state version that commits
//! them; a writer that crashed, was fenced by a new owner or gave up at its
//! deadline leaves files that no state covers. [`CommittedFiles`] wraps the
//! lake's store so that listings under `raw/` and `quarantine/` hold only
//! the files that the partitions' states, read once when it is made,
//! cover: every table over them — a run's listing, the per-day tables of
//! curation, `gridstat sql`'s raw tables — sees one consistent snapshot.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use gridstat_schemas::lake::{Coverage, PartitionState, StateObject, INGEST_STATE, QUARANTINE};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The lake's store, listing only committed raw and quarantine files.
#[derive(Debug)]
pub struct CommittedFiles {
    inner: Arc<dyn ObjectStore>,
    coverage: Arc<Coverage>,
}

impl CommittedFiles {
    /// Read every partition's newest state from `store` and wrap it.
    pub async fn wrap(store: Arc<dyn ObjectStore>) -> Result<Arc<dyn ObjectStore>> {
        let coverage = Arc::new(read_coverage(&store).await?);
        Ok(Arc::new(Self {
            inner: store,
            coverage,
        }))
    }

    fn shown(&self, meta: &ObjectMeta) -> bool {
        shown(&self.coverage, meta.location.as_ref())
    }
}

/// Whether a listing shows `path`: anything outside the ingested tables,
/// and their files that a committed state covers.
fn shown(coverage: &Coverage, path: &str) -> bool {
    let ingested = path.starts_with("raw/") || path.starts_with(&format!("{QUARANTINE}/"));
    !ingested || !path.ends_with(".parquet") || coverage.covers(path)
}

impl fmt::Display for CommittedFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommittedFiles({})", self.inner)
    }
}

/// How a state written before fencing looks.
#[derive(Deserialize)]
struct LegacyState {
    next_offset: i64,
}

/// Each partition's newest state: the highest version under
/// `_ingest/TOPIC/pPPPP/`, or the single object from before fencing.
pub async fn read_coverage(store: &Arc<dyn ObjectStore>) -> Result<Coverage> {
    // A version removed between the listing and its read has a newer one:
    // list again.
    'listing: loop {
        let prefix = Path::from(INGEST_STATE);
        let listed: Vec<ObjectMeta> =
            store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|source| Error::Store {
                    path: INGEST_STATE.into(),
                    source,
                })?;
        let mut newest: BTreeMap<(String, i32), (Option<u64>, Path)> = BTreeMap::new();
        for meta in listed {
            let Some(object) = StateObject::parse(meta.location.as_ref()) else {
                continue;
            };
            let key = (object.topic_slug, object.partition);
            let newer = newest.get(&key).is_none_or(|(seq, _)| object.seq > *seq);
            if newer {
                newest.insert(key, (object.seq, meta.location));
            }
        }
        let mut coverage = Coverage::default();
        for ((slug, partition), (seq, path)) in newest {
            let bytes = match store.get(&path).await {
                Ok(got) => got.bytes().await,
                Err(e) => Err(e),
            };
            let bytes = match bytes {
                Ok(bytes) => bytes,
                Err(object_store::Error::NotFound { .. }) => continue 'listing,
                Err(source) => {
                    return Err(Error::Store {
                        path: path.to_string(),
                        source,
                    })
                }
            };
            let corrupt = |e: serde_json::Error| Error::CorruptState {
                path: path.to_string(),
                reason: format!("{e}; see `gridstat lake repair-state` in docs/operations.md"),
            };
            let state = match seq {
                Some(_) => serde_json::from_slice(&bytes).map_err(corrupt)?,
                None => {
                    let old: LegacyState = serde_json::from_slice(&bytes).map_err(corrupt)?;
                    PartitionState::from_legacy(old.next_offset)
                }
            };
            coverage.insert(&slug, partition, state);
        }
        return Ok(coverage);
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for CommittedFiles {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let coverage = Arc::clone(&self.coverage);
        self.inner
            .list(prefix)
            .try_filter(move |m| futures::future::ready(shown(&coverage, m.location.as_ref())))
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let coverage = Arc::clone(&self.coverage);
        self.inner
            .list_with_offset(prefix, offset)
            .try_filter(move |m| futures::future::ready(shown(&coverage, m.location.as_ref())))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        listed.objects.retain(|m| self.shown(m));
        Ok(listed)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridstat_schemas::lake::{partition_state_object, SegmentFile};

    #[tokio::test]
    async fn listings_hold_only_files_a_committed_state_covers() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let state = PartitionState::default()
            .taken_over("a")
            .with_segment(0, 10)
            .unwrap();
        let put = |path: String, body: Vec<u8>| {
            let store = Arc::clone(&store);
            async move { store.put(&Path::from(path), body.into()).await.unwrap() }
        };
        // An older version says less: the newest one counts.
        let older = PartitionState::default().taken_over("a");
        put(
            partition_state_object("t", 0, 1),
            serde_json::to_vec(&older).unwrap(),
        )
        .await;
        put(
            partition_state_object("t", 0, 2),
            serde_json::to_vec(&state).unwrap(),
        )
        .await;
        let file = |start, end| {
            format!(
                "raw/visits/dt=2022-11-25/county=1/{}",
                SegmentFile::new("t", 0, start, end, 1).name()
            )
        };
        put(file(0, 10), b"committed".to_vec()).await;
        put(file(10, 20), b"never committed".to_vec()).await;
        put("rollups/quality/part-00000.parquet".into(), b"x".to_vec()).await;
        let wrapped = CommittedFiles::wrap(store).await.unwrap();
        let listed: Vec<String> = wrapped
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        assert!(listed.contains(&file(0, 10)));
        assert!(!listed.contains(&file(10, 20)));
        assert!(listed.contains(&"rollups/quality/part-00000.parquet".to_string()));
        let by_dir = wrapped
            .list_with_delimiter(Some(&Path::from("raw/visits/dt=2022-11-25/county=1")))
            .await
            .unwrap();
        assert_eq!(by_dir.objects.len(), 1);
    }
}
