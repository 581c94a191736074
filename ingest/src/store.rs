//! I/O with the lake: segment files, and each partition's state, which
//! makes the lake the source of truth for what has been written.
//!
//! A partition's state is a chain of objects `_ingest/TOPIC/pPPPP/state-SEQ.json`,
//! each created only if absent (`PutMode::Create`: `If-None-Match` on S3, a
//! hard link on local disk). An owner that read version `SEQ` can only
//! move the state on by creating `SEQ + 1`; if another owner created it
//! first, the write fails and the owner knows it has been fenced. The
//! newest version is the state; older ones are removed as the chain grows,
//! except the one an owner took the partition over with and the one
//! before it, which a stale owner's next write always runs into.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use futures::TryFutureExt;
use gridstat_schemas::lake::{
    legacy_partition_state_object, partition_state_dir, partition_state_object, PartitionState,
    StateObject,
};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::Deserialize;

use crate::error::{Error, Result};

/// A partition's state as read: its version (0 when none was written
/// yet) and content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionedState {
    /// The version; the next write creates `seq + 1`.
    pub seq: u64,
    /// The state.
    pub state: PartitionState,
}

/// How creating a state version went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The version is ours.
    Yes,
    /// Another writer created it first: we no longer own the partition.
    Fenced,
}

/// The lake as ingest sees it.
#[derive(Debug, Clone)]
pub struct LakeStore {
    store: Arc<dyn ObjectStore>,
    retry_max: Duration,
    /// The lake's directory when it is on local disk: written files and
    /// their directories are synced before anything is committed.
    local_root: Option<PathBuf>,
}

/// How a state written before fencing looks.
#[derive(Deserialize)]
struct LegacyState {
    next_offset: i64,
}

impl LakeStore {
    /// Wrap an object store whose root is the lake's root.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            retry_max: Duration::from_secs(10),
            local_root: None,
        }
    }

    /// The lake is the local directory `root` (the store's root): sync
    /// what is written to disk before it is committed.
    pub fn with_local_root(mut self, root: PathBuf) -> Self {
        self.local_root = Some(root);
        self
    }

    /// Read a partition's newest state; none is the empty state at version 0.
    /// Transient errors are retried like writes.
    pub async fn read_state(&self, topic: &str, partition: i32) -> Result<VersionedState> {
        loop {
            let dir = Path::from(partition_state_dir(topic, partition));
            let listed: Vec<object_store::ObjectMeta> = self
                .retrying(&dir, || self.store.list(Some(&dir)).try_collect())
                .await?;
            let newest = listed
                .iter()
                .filter_map(|m| StateObject::parse(m.location.as_ref()).and_then(|o| o.seq))
                .max();
            let Some(seq) = newest else {
                let legacy = Path::from(legacy_partition_state_object(topic, partition));
                return Ok(match self.get(&legacy).await? {
                    None => VersionedState::default(),
                    Some(bytes) => {
                        let old: LegacyState = parse(&legacy, &bytes)?;
                        VersionedState {
                            seq: 0,
                            state: PartitionState::from_legacy(old.next_offset),
                        }
                    }
                });
            };
            let path = Path::from(partition_state_object(topic, partition, seq));
            // Gone between the listing and the read: a newer version exists.
            if let Some(bytes) = self.get(&path).await? {
                return Ok(VersionedState {
                    seq,
                    state: parse(&path, &bytes)?,
                });
            }
        }
    }

    /// Create version `seq` of a partition's state, unless it exists.
    pub async fn create_state(
        &self,
        topic: &str,
        partition: i32,
        seq: u64,
        state: &PartitionState,
    ) -> Result<Created> {
        let path = Path::from(partition_state_object(topic, partition, seq));
        let body = Bytes::from(serde_json::to_vec(state).expect("state serializes"));
        let mut delay = Duration::from_millis(100);
        let mut retried = false;
        loop {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            match self
                .store
                .put_opts(&path, PutPayload::from_bytes(body.clone()), opts)
                .await
            {
                Ok(_) => break,
                Err(object_store::Error::AlreadyExists { .. }) => {
                    // After a retry the version may be our own first attempt,
                    // whose answer was lost.
                    let ours = retried && self.get(&path).await?.is_some_and(|b| b == body);
                    if ours {
                        break;
                    }
                    return Ok(Created::Fenced);
                }
                Err(e) if is_permanent(&e) => return Err(Error::Write { path, source: e }),
                Err(e) => {
                    tracing::warn!(%path, error = %e, "Lake write failed; retrying.");
                    retried = true;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry_max);
                }
            }
        }
        self.sync(std::slice::from_ref(&path)).await?;
        // Superseded versions are removed, so a writer two takeovers behind
        // can create a version whose name was freed. The newest version is
        // never removed: one above ours means the partition moved on.
        let dir = Path::from(partition_state_dir(topic, partition));
        let listed: Vec<object_store::ObjectMeta> = self
            .retrying(&dir, || self.store.list(Some(&dir)).try_collect())
            .await?;
        let newer = listed
            .iter()
            .filter_map(|m| StateObject::parse(m.location.as_ref()).and_then(|o| o.seq))
            .any(|s| s > seq);
        if newer {
            self.remove_state(topic, partition, seq).await;
            return Ok(Created::Fenced);
        }
        Ok(Created::Yes)
    }

    /// Remove version `seq` of a partition's state (already superseded);
    /// a failure only leaves an object behind.
    pub async fn remove_state(&self, topic: &str, partition: i32, seq: u64) {
        let path = Path::from(partition_state_object(topic, partition, seq));
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::debug!(%path, error = %e, "Old state not removed."),
        }
    }

    /// Remove every version of a partition's state below `seq`.
    pub async fn remove_states_below(&self, topic: &str, partition: i32, seq: u64) {
        let dir = Path::from(partition_state_dir(topic, partition));
        let Ok(listed) = self
            .store
            .list(Some(&dir))
            .try_collect::<Vec<object_store::ObjectMeta>>()
            .await
        else {
            return;
        };
        for old in listed
            .iter()
            .filter_map(|m| StateObject::parse(m.location.as_ref()).and_then(|o| o.seq))
            .filter(|&s| s < seq)
        {
            self.remove_state(topic, partition, old).await;
        }
    }

    /// PUT with retries: transient store errors (an S3 outage) are retried
    /// with backoff until they succeed or the caller's deadline drops the
    /// write; nothing is committed meanwhile.
    pub async fn put(&self, path: Path, body: Bytes) -> Result<()> {
        self.retrying(&path, || {
            self.store
                .put(&path, PutPayload::from_bytes(body.clone()))
                .map_ok(|_| ())
        })
        .await
    }

    /// PUT many objects, a few at a time, then sync them to disk.
    pub async fn put_all(&self, objects: Vec<(Path, Bytes)>) -> Result<()> {
        let paths: Vec<Path> = objects.iter().map(|(p, _)| p.clone()).collect();
        stream::iter(objects.into_iter().map(|(p, b)| self.put(p, b)))
            .buffer_unordered(8)
            .try_collect::<Vec<()>>()
            .await?;
        self.sync(&paths).await
    }

    /// On a local lake, flush `paths` and their directories to disk, so
    /// that what is committed survives a power loss. A no-op on S3, where a
    /// completed PUT is durable.
    async fn sync(&self, paths: &[Path]) -> Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let files: Vec<PathBuf> = paths.iter().map(|p| root.join(p.as_ref())).collect();
        let sync = tokio::task::spawn_blocking(move || sync_files(&files));
        sync.await.map_err(|e| Error::Encode {
            what: "a sync of written files".into(),
            source: Box::new(e),
        })?
    }

    async fn get(&self, path: &Path) -> Result<Option<Bytes>> {
        let read = self
            .retrying(path, || async {
                match self.store.get(path).await {
                    Ok(r) => r.bytes().await.map(Some),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await;
        read.map_err(|e| match e {
            Error::Write { path, source } => Error::Read { path, source },
            other => other,
        })
    }

    /// Run `op` until it succeeds, retrying transient errors with backoff.
    async fn retrying<T, F, Fut>(&self, path: &Path, op: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = object_store::Result<T>>,
    {
        let mut delay = Duration::from_millis(100);
        let mut attempts = 0u32;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if is_permanent(&e) => {
                    return Err(Error::Write {
                        path: path.clone(),
                        source: e,
                    })
                }
                Err(e) => {
                    attempts += 1;
                    tracing::warn!(%path, error = %e, attempt = attempts, "Lake request failed; retrying.");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry_max);
                }
            }
        }
    }

    /// The underlying store.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::CorruptState {
        path: path.clone(),
        reason: e.to_string(),
    })
}

/// `fsync` each file, then each directory holding one (once), so the
/// files' names are durable too.
fn sync_files(files: &[PathBuf]) -> Result<()> {
    let io = |path: &std::path::Path| {
        let name = path.display().to_string();
        move |source| Error::Input { name, source }
    };
    let mut dirs = std::collections::BTreeSet::new();
    for file in files {
        std::fs::File::open(file)
            .and_then(|f| f.sync_all())
            .map_err(io(file))?;
        if let Some(dir) = file.parent() {
            dirs.insert(dir.to_path_buf());
        }
    }
    for dir in dirs {
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir))?;
    }
    Ok(())
}

fn is_permanent(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::InvalidPath { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::NotImplemented { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lake() -> LakeStore {
        LakeStore::new(Arc::new(object_store::memory::InMemory::new()))
    }

    #[tokio::test]
    async fn a_version_is_created_once_and_the_newest_is_the_state() {
        let lake = lake();
        assert_eq!(
            lake.read_state("t", 0).await.unwrap(),
            VersionedState::default()
        );
        let first = PartitionState::default().taken_over("a");
        assert_eq!(
            lake.create_state("t", 0, 1, &first).await.unwrap(),
            Created::Yes
        );
        let second = PartitionState::default().taken_over("b");
        assert_eq!(
            lake.create_state("t", 0, 1, &second).await.unwrap(),
            Created::Fenced,
            "a second writer of the same version is fenced"
        );
        let moved = first.with_segment(0, 10).unwrap();
        lake.create_state("t", 0, 2, &moved).await.unwrap();
        let read = lake.read_state("t", 0).await.unwrap();
        assert_eq!((read.seq, read.state), (2, moved));
        lake.remove_states_below("t", 0, 2).await;
        assert_eq!(lake.read_state("t", 0).await.unwrap().seq, 2);
    }

    #[tokio::test]
    async fn a_writer_two_takeovers_behind_is_fenced_in_a_freed_version() {
        let lake = LakeStore::new(Arc::new(object_store::memory::InMemory::new()));
        let state = PartitionState::default().taken_over("a");
        for seq in 1..=5 {
            assert_eq!(
                lake.create_state("t", 0, seq, &state).await.unwrap(),
                Created::Yes
            );
        }
        // A later owner's takeover removed the versions below 4.
        lake.remove_states_below("t", 0, 4).await;
        assert_eq!(
            lake.create_state("t", 0, 2, &state).await.unwrap(),
            Created::Fenced,
            "version 2 is free again, but 5 is newer"
        );
        assert_eq!(lake.read_state("t", 0).await.unwrap().seq, 5);
        assert!(
            lake.get(&Path::from(partition_state_object("t", 0, 2)))
                .await
                .unwrap()
                .is_none(),
            "the stray version is removed"
        );
    }

    #[tokio::test]
    async fn a_state_from_before_fencing_is_read_as_legacy() {
        let lake = lake();
        let path = Path::from(legacy_partition_state_object("t", 3));
        lake.put(
            path,
            Bytes::from_static(br#"{"next_offset":42,"pending":null}"#),
        )
        .await
        .unwrap();
        let read = lake.read_state("t", 3).await.unwrap();
        assert_eq!(read.seq, 0);
        assert_eq!(read.state, PartitionState::from_legacy(42));
    }

    #[tokio::test]
    async fn a_corrupt_state_names_its_object() {
        let lake = lake();
        let path = Path::from(partition_state_object("t", 1, 5));
        lake.put(path, Bytes::from_static(b"{not json"))
            .await
            .unwrap();
        let err = lake.read_state("t", 1).await.unwrap_err().to_string();
        assert!(
            err.contains("_ingest/t/p0001/state-00000000000000000005.json"),
            "{err}"
        );
    }
}
