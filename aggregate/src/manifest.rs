//! What a completed run leaves for readers: a manifest of every curated
//! and rollup object (`_state/manifests/manifest-SEQ.json`, see
//! [`gridstat_schemas::lake::Manifest`]), and [`Snapshot`], a view of the
//! lake that shows readers exactly one manifest's objects.
//!
//! A run rewrites objects in place, so a reader listing them mid-run could
//! see some days rewritten and others not. Through a manifest it sees the
//! objects of one complete run: it lists only those, and reads each only
//! if its entity tag is still the manifest's (`If-Match`). An object
//! rewritten since fails that read; the reader starts again from the
//! newest manifest, which is complete once the run that rewrote it ends.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use gridstat_schemas::lake::{
    manifest_object, manifest_seq, Manifest, ManifestEntry, MANIFESTS, SNAPSHOT_PREFIXES,
};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

use crate::error::{Error, Result};

/// Manifests kept behind the newest, for readers still reading them.
const KEPT: u64 = 4;

/// The newest manifest and its version, if any run has written one.
pub async fn newest(store: &Arc<dyn ObjectStore>) -> Result<Option<(u64, Manifest)>> {
    loop {
        let listed: Vec<ObjectMeta> = store
            .list(Some(&Path::from(MANIFESTS)))
            .try_collect()
            .await
            .map_err(|source| Error::Store {
                path: MANIFESTS.into(),
                source,
            })?;
        let Some(seq) = listed
            .iter()
            .filter_map(|m| manifest_seq(m.location.as_ref()))
            .max()
        else {
            return Ok(None);
        };
        let path = manifest_object(seq);
        match crate::store::read_bytes(store, &path).await? {
            // Removed since the listing: a newer one exists.
            None => continue,
            Some(body) => {
                let manifest = serde_json::from_slice(&body).map_err(|e| Error::CorruptState {
                    path,
                    reason: e.to_string(),
                })?;
                return Ok(Some((seq, manifest)));
            }
        }
    }
}

/// Record every curated and rollup object as it is now, as the next
/// manifest: the last step of a run, under its lease.
pub(crate) async fn write(
    store: &Arc<dyn ObjectStore>,
    last_day: Option<chrono::NaiveDate>,
) -> Result<u64> {
    let mut objects = std::collections::BTreeMap::new();
    for prefix in SNAPSHOT_PREFIXES {
        let listed: Vec<ObjectMeta> = store
            .list(Some(&Path::from(prefix)))
            .try_collect()
            .await
            .map_err(|source| Error::Store {
                path: prefix.into(),
                source,
            })?;
        for meta in listed
            .into_iter()
            .filter(|m| m.location.as_ref().ends_with(".parquet"))
        {
            objects.insert(
                meta.location.to_string(),
                ManifestEntry {
                    size: meta.size,
                    e_tag: meta.e_tag,
                },
            );
        }
    }
    let manifest = Manifest {
        last_day,
        completed_at: chrono::Utc::now().to_rfc3339(),
        objects,
    };
    let body = serde_json::to_vec(&manifest).expect("a manifest serializes");
    let mut seq = newest(store).await?.map_or(0, |(seq, _)| seq) + 1;
    loop {
        let path = Path::from(manifest_object(seq));
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match store
            .put_opts(&path, PutPayload::from(body.clone()), opts)
            .await
        {
            Ok(_) => break,
            // Only a run that lost its lease writes beside another.
            Err(object_store::Error::AlreadyExists { .. }) => seq += 1,
            Err(source) => {
                return Err(Error::Store {
                    path: path.to_string(),
                    source,
                })
            }
        }
    }
    for old in seq.saturating_sub(KEPT + 8)..seq.saturating_sub(KEPT) {
        let _ = store.delete(&Path::from(manifest_object(old))).await;
    }
    Ok(seq)
}

/// The lake as of one manifest: under `curated/` and `rollups/` listings
/// show exactly the manifest's objects, and reads of them fail with a
/// precondition error once an object was rewritten since. Everything else
/// passes through.
#[derive(Debug)]
pub struct Snapshot {
    inner: Arc<dyn ObjectStore>,
    manifest: Arc<Manifest>,
}

impl Snapshot {
    /// `store` as of `manifest`.
    pub fn of(store: Arc<dyn ObjectStore>, manifest: Manifest) -> Arc<dyn ObjectStore> {
        Arc::new(Self {
            inner: store,
            manifest: Arc::new(manifest),
        })
    }

    /// `store` as of its newest manifest, or as it is where no run has
    /// written one yet.
    pub async fn newest(store: Arc<dyn ObjectStore>) -> Result<Arc<dyn ObjectStore>> {
        Ok(match newest(&store).await? {
            Some((_, manifest)) => Self::of(store, manifest),
            None => store,
        })
    }
}

fn in_snapshot(path: &str) -> bool {
    SNAPSHOT_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// Whether a listing of the snapshot shows `meta`.
fn shown(manifest: &Manifest, meta: &ObjectMeta) -> bool {
    let path = meta.location.as_ref();
    !in_snapshot(path) || manifest.objects.contains_key(path)
}

/// `meta` as the manifest has it.
fn as_recorded(manifest: &Manifest, mut meta: ObjectMeta) -> ObjectMeta {
    if let Some(entry) = manifest.objects.get(meta.location.as_ref()) {
        meta.size = entry.size;
        meta.e_tag.clone_from(&entry.e_tag);
    }
    meta
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Snapshot({})", self.inner)
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for Snapshot {
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
        mut options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if let Some(entry) = self.manifest.objects.get(location.as_ref()) {
            if options.if_match.is_none() {
                options.if_match.clone_from(&entry.e_tag);
            }
        }
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        // Through `get_opts`, so that each range is read only from the
        // manifest's version of the object.
        let mut out = Vec::with_capacity(ranges.len());
        for range in ranges {
            let options = GetOptions {
                range: Some(range.clone().into()),
                ..GetOptions::default()
            };
            out.push(self.get_opts(location, options).await?.bytes().await?);
        }
        Ok(out)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let manifest = Arc::clone(&self.manifest);
        self.inner
            .list(prefix)
            .try_filter(move |m| futures::future::ready(shown(&manifest, m)))
            .map_ok({
                let manifest = Arc::clone(&self.manifest);
                move |m| as_recorded(&manifest, m)
            })
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let manifest = Arc::clone(&self.manifest);
        self.inner
            .list_with_offset(prefix, offset)
            .try_filter(move |m| futures::future::ready(shown(&manifest, m)))
            .map_ok({
                let manifest = Arc::clone(&self.manifest);
                move |m| as_recorded(&manifest, m)
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        listed.objects.retain(|m| shown(&self.manifest, m));
        listed.objects = listed
            .objects
            .into_iter()
            .map(|m| as_recorded(&self.manifest, m))
            .collect();
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

/// Run `read` over `store` as of its newest manifest; while `changed`
/// says a read failed because a run rewrote what it read, wait a moment
/// and run it again from the newest manifest (up to about a minute).
pub async fn read_newest<T, E, F, Fut>(
    store: &Arc<dyn ObjectStore>,
    read: F,
    changed: impl Fn(&E) -> bool,
) -> Result<std::result::Result<T, E>>
where
    F: Fn(Arc<dyn ObjectStore>) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, E>>,
{
    const ATTEMPTS: u32 = 60;
    let mut attempt = 1;
    loop {
        let snapshot = Snapshot::newest(Arc::clone(store)).await?;
        match read(snapshot).await {
            Err(e) if attempt < ATTEMPTS && changed(&e) => {
                tracing::info!(attempt, "An aggregate run rewrote what was being read; reading its output once it completes.");
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            other => return Ok(other),
        }
    }
}

/// Whether `error` says an object changed since the manifest a reader
/// reads through: read again from the newest manifest.
pub fn is_snapshot_changed(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(store) = e.downcast_ref::<object_store::Error>() {
            if matches!(store, object_store::Error::Precondition { .. }) {
                return true;
            }
        }
        if e.to_string().contains("Precondition") {
            return true;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_snapshot_lists_its_manifests_objects_and_refuses_rewritten_ones() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let put = |path: &'static str, body: &'static [u8]| {
            let store = Arc::clone(&store);
            async move {
                store
                    .put(&Path::from(path), PutPayload::from_static(body))
                    .await
                    .unwrap()
            }
        };
        put("rollups/daily/dt=2022-11-25/part-00000.parquet", b"day 1").await;
        put("raw/visits/x.parquet", b"raw").await;
        let first = write(&store, None).await.unwrap();
        // The next run writes a new day and rewrites the first, mid-read.
        put("rollups/daily/dt=2022-11-26/part-00000.parquet", b"day 2").await;
        put(
            "rollups/daily/dt=2022-11-25/part-00000.parquet",
            b"day 1 again",
        )
        .await;
        let (seq, manifest) = newest(&store).await.unwrap().unwrap();
        assert_eq!(seq, first);
        let snapshot = Snapshot::of(Arc::clone(&store), manifest);
        let listed: Vec<String> = snapshot
            .list(Some(&Path::from("rollups")))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(listed, ["rollups/daily/dt=2022-11-25/part-00000.parquet"]);
        let err = snapshot
            .get(&Path::from(
                "rollups/daily/dt=2022-11-25/part-00000.parquet",
            ))
            .await
            .unwrap_err();
        assert!(is_snapshot_changed(&err), "{err}");
        assert!(snapshot
            .get(&Path::from("raw/visits/x.parquet"))
            .await
            .is_ok());
        // Once the run ends, its manifest shows both days.
        let second = write(&store, None).await.unwrap();
        assert_eq!(second, first + 1);
        let snapshot = Snapshot::newest(Arc::clone(&store)).await.unwrap();
        let body = snapshot
            .get(&Path::from(
                "rollups/daily/dt=2022-11-25/part-00000.parquet",
            ))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&body[..], b"day 1 again");
    }
}
