//! I/O with the lake: segment files, and each partition's state object,
//! which makes the lake the source of truth for what has been written.

use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use gridstat_schemas::lake::topic_slug;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Where a partition stands in the lake (`_ingest/TOPIC/pNNNN.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Every offset below this is durably in the lake or in quarantine.
    pub next_offset: i64,
    /// A segment being written: a replay must cut exactly the same segment
    /// so that its files overwrite any written before a crash.
    pub pending: Option<PendingSegment>,
}

/// A segment whose files may be partly written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSegment {
    /// First offset.
    pub start: i64,
    /// One past the last offset.
    pub end: i64,
}

/// Path of a partition's state object.
pub fn state_path(topic: &str, partition: i32) -> Path {
    Path::from(format!(
        "_ingest/{}/p{partition:04}.json",
        topic_slug(topic)
    ))
}

/// The lake as ingest sees it.
#[derive(Debug, Clone)]
pub struct LakeStore {
    store: Arc<dyn ObjectStore>,
    retry_max: Duration,
}

impl LakeStore {
    /// Wrap an object store whose root is the lake's root.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            retry_max: Duration::from_secs(10),
        }
    }

    /// Read a partition's state; a missing object is the empty state.
    /// Transient errors are retried like writes.
    pub async fn read_state(&self, topic: &str, partition: i32) -> Result<PartitionState> {
        let path = state_path(topic, partition);
        let mut delay = Duration::from_millis(100);
        let bytes = loop {
            let attempt = async { self.store.get(&path).await?.bytes().await }.await;
            match attempt {
                Ok(b) => break b,
                Err(object_store::Error::NotFound { .. }) => return Ok(PartitionState::default()),
                Err(e) if is_permanent(&e) => return Err(Error::Read { path, source: e }),
                Err(e) => {
                    tracing::warn!(%path, error = %e, "Lake read failed; retrying.");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry_max);
                }
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::CorruptState {
            path,
            reason: e.to_string(),
        })
    }

    /// Write a partition's state.
    pub async fn write_state(
        &self,
        topic: &str,
        partition: i32,
        state: &PartitionState,
    ) -> Result<()> {
        let body = serde_json::to_vec(state).expect("state serializes");
        self.put(state_path(topic, partition), Bytes::from(body))
            .await
    }

    /// PUT with retries: transient store errors (an S3 outage) are retried
    /// with backoff until they succeed; nothing is committed meanwhile.
    pub async fn put(&self, path: Path, body: Bytes) -> Result<()> {
        let mut delay = Duration::from_millis(100);
        let mut attempts = 0u32;
        loop {
            match self
                .store
                .put(&path, PutPayload::from_bytes(body.clone()))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_permanent(&e) || attempts >= 10_000 => {
                    return Err(Error::Write { path, source: e })
                }
                Err(e) => {
                    attempts += 1;
                    tracing::warn!(%path, error = %e, attempt = attempts, "Lake write failed; retrying.");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry_max);
                }
            }
        }
    }

    /// PUT many objects, a few at a time.
    pub async fn put_all(&self, objects: Vec<(Path, Bytes)>) -> Result<()> {
        stream::iter(objects.into_iter().map(|(p, b)| self.put(p, b)))
            .buffer_unordered(8)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// The underlying store.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }
}

fn is_permanent(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::InvalidPath { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::NotImplemented { .. }
    )
}
