//! Operators' tools for partition states: list them, and repair one that
//! cannot be read (a disk or store fault, a hand edit gone wrong).

use futures::TryStreamExt;
use gridstat_schemas::lake::{partition_state_dir, PartitionState, StateObject, INGEST_STATE};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Error, Result};

/// One partition's newest state, as an operator sees it.
#[derive(Debug, Clone)]
pub struct StateSummary {
    /// The state object.
    pub path: String,
    /// Topic (as in object names).
    pub topic_slug: String,
    /// Partition.
    pub partition: i32,
    /// Its version (none for a state from before versioning).
    pub seq: Option<u64>,
    /// The state, or why it cannot be read.
    pub state: std::result::Result<PartitionState, String>,
}

/// Every partition's newest state object under `_ingest/`.
pub async fn list_states(store: &dyn ObjectStore) -> Result<Vec<StateSummary>> {
    let listed: Vec<object_store::ObjectMeta> = store
        .list(Some(&Path::from(INGEST_STATE)))
        .try_collect()
        .await
        .map_err(|source| Error::Read {
            path: Path::from(INGEST_STATE),
            source,
        })?;
    let mut newest: std::collections::BTreeMap<(String, i32), (Option<u64>, Path)> =
        Default::default();
    for meta in listed {
        if let Some(o) = StateObject::parse(meta.location.as_ref()) {
            let key = (o.topic_slug, o.partition);
            if newest.get(&key).is_none_or(|(seq, _)| o.seq > *seq) {
                newest.insert(key, (o.seq, meta.location));
            }
        }
    }
    let mut out = Vec::new();
    for ((topic_slug, partition), (seq, path)) in newest {
        let state = read(store, &path).await?;
        out.push(StateSummary {
            path: path.to_string(),
            topic_slug,
            partition,
            seq,
            state,
        });
    }
    Ok(out)
}

async fn read(
    store: &dyn ObjectStore,
    path: &Path,
) -> Result<std::result::Result<PartitionState, String>> {
    let bytes = match store.get(path).await {
        Ok(got) => got.bytes().await,
        Err(e) => Err(e),
    }
    .map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    Ok(
        match StateObject::parse(path.as_ref()).and_then(|o| o.seq) {
            Some(_) => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
            None => serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|v| {
                    v.get("next_offset")
                        .and_then(serde_json::Value::as_i64)
                        .map(PartitionState::from_legacy)
                        .ok_or_else(|| "no next_offset".to_string())
                }),
        },
    )
}

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// Unreadable versions moved aside (renamed to `….corrupt`).
    pub moved_aside: Vec<String>,
    /// The version that is now the newest, and its `next_offset`.
    pub restored: Option<(u64, i64)>,
}

/// Move the unreadable newest versions of a partition's state aside, so
/// that the newest readable one is the state again. The segment the
/// corrupt version committed (if it was a commit) is then no longer
/// covered: its records are read again from Kafka by the next owner, as
/// long as the group's committed offset is not past the restored
/// `next_offset` (see docs/operations.md).
pub async fn repair_state(
    store: &dyn ObjectStore,
    topic: &str,
    partition: i32,
) -> Result<Repaired> {
    let dir = Path::from(partition_state_dir(topic, partition));
    let listed: Vec<object_store::ObjectMeta> = store
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|source| Error::Read {
            path: dir.clone(),
            source,
        })?;
    let mut versions: Vec<(u64, Path)> = listed
        .into_iter()
        .filter_map(|m| {
            StateObject::parse(m.location.as_ref())
                .and_then(|o| o.seq)
                .map(|s| (s, m.location))
        })
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    let mut moved_aside = Vec::new();
    for (seq, path) in versions {
        match read(store, &path).await? {
            Ok(state) => {
                return Ok(Repaired {
                    moved_aside,
                    restored: Some((seq, state.next_offset)),
                })
            }
            Err(_) => {
                let aside = Path::from(format!("{path}.corrupt"));
                let write = |source| Error::Write {
                    path: aside.clone(),
                    source,
                };
                store.copy(&path, &aside).await.map_err(write)?;
                store.delete(&path).await.map_err(|source| Error::Write {
                    path: path.clone(),
                    source,
                })?;
                moved_aside.push(path.to_string());
            }
        }
    }
    Ok(Repaired {
        moved_aside,
        restored: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LakeStore, VersionedState};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_corrupt_newest_version_is_moved_aside_and_the_one_before_restored() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let lake = LakeStore::new(Arc::clone(&store));
        let first = PartitionState::default()
            .taken_over("a")
            .with_segment(0, 40)
            .unwrap();
        lake.create_state("t", 0, 1, &first).await.unwrap();
        let path = Path::from(gridstat_schemas::lake::partition_state_object("t", 0, 2));
        store.put(&path, b"{garbage".to_vec().into()).await.unwrap();
        assert!(lake.read_state("t", 0).await.is_err());
        let listed = list_states(store.as_ref()).await.unwrap();
        assert!(listed[0].state.is_err(), "the listing shows it unreadable");

        let repaired = repair_state(store.as_ref(), "t", 0).await.unwrap();
        assert_eq!(repaired.restored, Some((1, 40)));
        assert_eq!(repaired.moved_aside, vec![path.to_string()]);
        assert_eq!(
            lake.read_state("t", 0).await.unwrap(),
            VersionedState {
                seq: 1,
                state: first
            }
        );
    }
}
