//! One aggregate run at a time.
//!
//! Two runs over one lake (a schedule that overlaps, a manual `--all`
//! beside it) could each record a listing over the other's output. A run
//! therefore holds a lease: a chain of objects `_state/lease/lease-SEQ.json`,
//! each created only if absent, as ingest's partition states are. The
//! newest says who holds the lake until when. A run takes the lease with
//! the next version when the newest is released or has run out, renews it
//! in the background while it works ([`KeptLease`]), checks it before each
//! step that writes and renews it once more before it records anything, and
//! releases it at the end. A run whose lease another run took over finds a
//! newer version than its own and stops without recording. A run that dies
//! leaves a lease that runs out.

use std::sync::{Arc, Mutex as StdMutex};

use chrono::{DateTime, Duration, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const LEASES: &str = "_state/lease";

fn lease_object(seq: u64) -> Path {
    Path::from(format!("{LEASES}/lease-{seq:020}.json"))
}

fn lease_seq(path: &str) -> Option<u64> {
    path.strip_prefix(LEASES)?
        .strip_prefix("/lease-")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// One version of the lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    holder: String,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    released: bool,
}

/// A held lease.
#[derive(Debug)]
pub(crate) struct Lease {
    store: Arc<dyn ObjectStore>,
    seq: u64,
    record: Record,
    ttl: Duration,
}

/// How long a lease lasts unless renewed.
pub(crate) const LEASE_TTL: Duration = Duration::minutes(15);

impl Lease {
    /// Take the lease for `holder` at `now`, unless another run holds it.
    pub(crate) async fn acquire(
        store: &Arc<dyn ObjectStore>,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Lease> {
        loop {
            let (seq, newest) = newest(store).await?;
            if let Some(held) = newest.filter(|r| !r.released && r.until > now) {
                return Err(Error::LeaseHeld {
                    holder: held.holder,
                    since: held.since.to_rfc3339(),
                    until: held.until.to_rfc3339(),
                });
            }
            let record = Record {
                holder: holder.to_string(),
                since: now,
                until: now + ttl,
                released: false,
            };
            if claim(store, seq + 1, &record).await? {
                if seq > 1 {
                    remove_below(store, seq).await;
                }
                return Ok(Lease {
                    store: Arc::clone(store),
                    seq: seq + 1,
                    record,
                    ttl,
                });
            }
            // Another run took the same version first: look again.
        }
    }

    /// Extend the lease from `now`; fails if another run took it over.
    pub(crate) async fn renew(&mut self, now: DateTime<Utc>) -> Result<()> {
        let record = Record {
            until: now + self.ttl,
            ..self.record.clone()
        };
        if !claim(&self.store, self.seq + 1, &record).await? {
            let (_, newest) = newest(&self.store).await?;
            return Err(Error::LeaseLost {
                holder: newest.map_or_else(|| "another run".into(), |r| r.holder),
            });
        }
        self.seq += 1;
        self.record = record;
        Ok(())
    }

    /// Give the lake back.
    pub(crate) async fn release(self) {
        let record = Record {
            released: true,
            ..self.record.clone()
        };
        if let Err(e) = create(&self.store, self.seq + 1, &record).await {
            tracing::warn!(error = %e, "The aggregate lease was not released; it runs out on its own.");
        }
    }
}

/// A lease renewed in the background every third of its time to live, for
/// a run of any length.
pub(crate) struct KeptLease {
    lease: Arc<tokio::sync::Mutex<Lease>>,
    /// Who took the lease over, once a renewal found out.
    lost: Arc<StdMutex<Option<String>>>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Keep the lease until [`KeptLease::release`].
    pub(crate) fn keep(self) -> KeptLease {
        let every = (self.ttl / 3)
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(60));
        let lease = Arc::new(tokio::sync::Mutex::new(self));
        let lost = Arc::new(StdMutex::new(None));
        let keeper = tokio::spawn({
            let lease = Arc::clone(&lease);
            let lost = Arc::clone(&lost);
            async move {
                loop {
                    tokio::time::sleep(every).await;
                    match lease.lock().await.renew(Utc::now()).await {
                        Ok(()) => {}
                        Err(Error::LeaseLost { holder }) => {
                            *lost.lock().expect("lease holder") = Some(holder);
                            return;
                        }
                        // Tried again at the next turn, well before it runs out.
                        Err(e) => {
                            tracing::warn!(error = %e, "The aggregate lease was not renewed; trying again.")
                        }
                    }
                }
            }
        });
        KeptLease {
            lease,
            lost,
            keeper,
        }
    }
}

impl KeptLease {
    /// Fails once another run took the lake over: called before each step
    /// that writes.
    pub(crate) fn check(&self) -> Result<()> {
        match &*self.lost.lock().expect("lease holder") {
            Some(holder) => Err(Error::LeaseLost {
                holder: holder.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Renew now: before the run records what it did.
    pub(crate) async fn renew(&self) -> Result<()> {
        self.check()?;
        let renewed = self.lease.lock().await.renew(Utc::now()).await;
        if let Err(Error::LeaseLost { holder }) = &renewed {
            *self.lost.lock().expect("lease holder") = Some(holder.clone());
        }
        renewed
    }

    /// Stop renewing and give the lake back (unless it was lost).
    pub(crate) async fn release(self) {
        let KeptLease {
            lease,
            lost,
            keeper,
        } = self;
        keeper.abort();
        let _ = keeper.await;
        if lost.lock().expect("lease holder").is_some() {
            return;
        }
        if let Ok(lease) = Arc::try_unwrap(lease) {
            lease.into_inner().release().await;
        }
    }
}

/// The newest lease version and its record (0 and none without any).
async fn newest(store: &Arc<dyn ObjectStore>) -> Result<(u64, Option<Record>)> {
    loop {
        let Some(seq) = listed_seqs(store).await?.into_iter().max() else {
            return Ok((0, None));
        };
        let path = lease_object(seq);
        let got = match store.get(&path).await {
            Ok(got) => got.bytes().await,
            Err(e) => Err(e),
        };
        match got {
            Ok(body) => {
                let record = serde_json::from_slice(&body).map_err(|e| Error::CorruptState {
                    path: path.to_string(),
                    reason: e.to_string(),
                })?;
                return Ok((seq, Some(record)));
            }
            // Removed since the listing: a newer version exists.
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(source) => {
                return Err(Error::Store {
                    path: path.to_string(),
                    source,
                })
            }
        }
    }
}

/// Create version `seq`; false if it exists.
async fn create(store: &Arc<dyn ObjectStore>, seq: u64, record: &Record) -> Result<bool> {
    let path = lease_object(seq);
    let body = serde_json::to_vec(record).expect("a lease serializes");
    let opts = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    match store.put_opts(&path, PutPayload::from(body), opts).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(source) => Err(Error::Store {
            path: path.to_string(),
            source,
        }),
    }
}

/// Create version `seq` and check that it is the newest: superseded
/// versions are removed, so a run that stalled through two takeovers can
/// create a version whose name was freed. The newest version is never
/// removed, so one above ours means the lease moved on; ours is removed.
async fn claim(store: &Arc<dyn ObjectStore>, seq: u64, record: &Record) -> Result<bool> {
    if !create(store, seq, record).await? {
        return Ok(false);
    }
    if listed_seqs(store).await?.iter().any(|&s| s > seq) {
        let _ = store.delete(&lease_object(seq)).await;
        return Ok(false);
    }
    Ok(true)
}

/// The versions of the lease in the lake.
async fn listed_seqs(store: &Arc<dyn ObjectStore>) -> Result<Vec<u64>> {
    let listed: Vec<object_store::ObjectMeta> = store
        .list(Some(&Path::from(LEASES)))
        .try_collect()
        .await
        .map_err(|source| Error::Store {
            path: LEASES.into(),
            source,
        })?;
    Ok(listed
        .iter()
        .filter_map(|m| lease_seq(m.location.as_ref()))
        .collect())
}

/// Remove the lease versions below `seq` that are there (superseded; a
/// failure only leaves them behind).
async fn remove_below(store: &Arc<dyn ObjectStore>, seq: u64) {
    let Ok(listed) = listed_seqs(store).await else {
        return;
    };
    for old in listed.into_iter().filter(|&s| s < seq) {
        let _ = store.delete(&lease_object(old)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_669_334_400, 0).unwrap() + Duration::minutes(minute)
    }

    #[tokio::test]
    async fn one_holder_at_a_time_until_released_or_run_out() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let ttl = Duration::minutes(15);
        let mut a = Lease::acquire(&store, "a", at(0), ttl).await.unwrap();
        let err = Lease::acquire(&store, "b", at(1), ttl).await.unwrap_err();
        assert!(
            err.to_string().contains("held") || err.to_string().contains(": a,"),
            "{err}"
        );
        a.renew(at(10)).await.unwrap();
        assert!(
            Lease::acquire(&store, "b", at(20), ttl).await.is_err(),
            "renewed to 25"
        );
        a.release().await;
        let b = Lease::acquire(&store, "b", at(21), ttl).await.unwrap();
        // b dies; its lease runs out and c takes over.
        drop(b);
        assert!(Lease::acquire(&store, "c", at(30), ttl).await.is_err());
        let _c = Lease::acquire(&store, "c", at(37), ttl).await.unwrap();
    }

    #[tokio::test]
    async fn a_run_two_takeovers_behind_cannot_renew_into_a_freed_version() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let ttl = Duration::minutes(15);
        let mut slow = Lease::acquire(&store, "slow", at(0), ttl).await.unwrap();
        let mut b = Lease::acquire(&store, "b", at(16), ttl).await.unwrap();
        b.renew(at(17)).await.unwrap();
        b.release().await;
        // c's takeover removes the versions below b's release, slow's next
        // among them.
        let _c = Lease::acquire(&store, "c", at(18), ttl).await.unwrap();
        assert!(listed_seqs(&store).await.unwrap().iter().all(|&s| s >= 4));
        let err = slow.renew(at(19)).await.unwrap_err();
        assert!(matches!(err, Error::LeaseLost { .. }), "{err}");
        assert!(
            !listed_seqs(&store).await.unwrap().contains(&2),
            "the stray version is removed"
        );
    }

    #[tokio::test]
    async fn a_kept_lease_outlives_its_time_to_live() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let ttl = Duration::milliseconds(600);
        let kept = Lease::acquire(&store, "long run", Utc::now(), ttl)
            .await
            .unwrap()
            .keep();
        for _ in 0..6 {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let err = Lease::acquire(&store, "cron", Utc::now(), ttl)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("long run"), "{err}");
            kept.check().unwrap();
        }
        kept.renew().await.unwrap();
        kept.release().await;
        Lease::acquire(&store, "cron", Utc::now(), ttl)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_run_whose_lease_was_taken_over_cannot_renew_it() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let ttl = Duration::minutes(15);
        let mut slow = Lease::acquire(&store, "slow", at(0), ttl).await.unwrap();
        let _other = Lease::acquire(&store, "other", at(16), ttl).await.unwrap();
        let err = slow.renew(at(17)).await.unwrap_err();
        assert!(err.to_string().contains("other"), "{err}");
    }
}
