//! Idempotent resends: what this replica remembers of recent submissions.
//!
//! A phone that did not get its receipt sends the same message again with
//! the same `submission_id`. While the intake remembers the id (up to
//! `capacity` ids, each for `ttl`; the oldest are forgotten first), the
//! same bytes get the original receipt and nothing is produced again, and
//! other bytes under the same id get 409. Requests for an id that is being
//! produced wait for that one result (single flight): concurrent
//! duplicates never both produce. A resend that arrives after the id is
//! forgotten, or at another replica, is produced again; the curated tables
//! keep the first copy of every `submission_id`, so it is never counted
//! twice.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Ids remembered by default.
pub const DEFAULT_CAPACITY: usize = 500_000;
/// How long an id is remembered by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// SHA-256 of a message's bytes.
pub type ContentHash = [u8; 32];

/// The hash of `bytes`.
pub fn content_hash(bytes: &[u8]) -> ContentHash {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// Where a submission was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The message's `submission_id`.
    pub submission_id: String,
    /// The Kafka topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset within the partition.
    pub offset: i64,
}

/// What a request for an id must do.
#[derive(Debug)]
pub enum Claim {
    /// Produce it, then settle the guard.
    New(FlightGuard),
    /// Already written: here is the receipt.
    Replay(Receipt),
    /// Written or being written with other bytes (their hash).
    Conflict(ContentHash),
    /// Being produced by another request with the same bytes: wait.
    Wait(Waiter),
}

/// The outcome another request is producing.
#[derive(Debug)]
pub struct Waiter(watch::Receiver<Option<Option<Receipt>>>);

impl Waiter {
    /// The receipt, or `None` when that request failed (nothing written:
    /// the client retries).
    pub async fn outcome(mut self) -> Option<Receipt> {
        match self.0.wait_for(Option::is_some).await {
            Ok(v) => v.clone().flatten(),
            Err(_) => None,
        }
    }
}

#[derive(Debug)]
enum Slot {
    InFlight {
        hash: ContentHash,
        rx: watch::Receiver<Option<Option<Receipt>>>,
        generation: u64,
    },
    Done {
        hash: ContentHash,
        receipt: Receipt,
        generation: u64,
    },
}

impl Slot {
    fn generation(&self) -> u64 {
        match self {
            Slot::InFlight { generation, .. } | Slot::Done { generation, .. } => *generation,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<Arc<str>, Slot>,
    /// Completed ids in completion order, for expiry and eviction.
    order: VecDeque<(Arc<str>, Instant, u64)>,
    next_generation: u64,
}

/// The cache of recent submissions.
#[derive(Debug)]
pub struct Idempotency {
    inner: Mutex<Inner>,
    capacity: usize,
    ttl: Duration,
}

impl Idempotency {
    /// Remember up to `capacity` ids for `ttl` each.
    pub fn new(capacity: usize, ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            capacity,
            ttl,
        })
    }

    /// Ids remembered now (in flight included).
    pub fn len(&self) -> usize {
        self.inner.lock().expect("idempotency lock").slots.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What to do with submission `id` whose bytes hash to `hash`.
    pub fn claim(self: &Arc<Self>, id: &str, hash: ContentHash) -> Claim {
        let mut inner = self.inner.lock().expect("idempotency lock");
        self.expire(&mut inner, Instant::now());
        match inner.slots.get(id) {
            Some(Slot::Done {
                hash: h, receipt, ..
            }) => {
                return if *h == hash {
                    Claim::Replay(receipt.clone())
                } else {
                    Claim::Conflict(*h)
                }
            }
            Some(Slot::InFlight { hash: h, rx, .. }) => {
                return if *h == hash {
                    Claim::Wait(Waiter(rx.clone()))
                } else {
                    Claim::Conflict(*h)
                }
            }
            None => {}
        }
        let (tx, rx) = watch::channel(None);
        let generation = inner.next_generation;
        inner.next_generation += 1;
        let id: Arc<str> = id.into();
        inner.slots.insert(
            Arc::clone(&id),
            Slot::InFlight {
                hash,
                rx,
                generation,
            },
        );
        Claim::New(FlightGuard {
            cache: Arc::clone(self),
            id,
            hash,
            generation,
            tx: Some(tx),
        })
    }

    fn settle(&self, id: &Arc<str>, hash: ContentHash, generation: u64, receipt: Option<Receipt>) {
        let mut inner = self.inner.lock().expect("idempotency lock");
        let ours = inner
            .slots
            .get(id)
            .is_some_and(|s| s.generation() == generation);
        if !ours {
            return;
        }
        match receipt {
            Some(receipt) => {
                inner.slots.insert(
                    Arc::clone(id),
                    Slot::Done {
                        hash,
                        receipt,
                        generation,
                    },
                );
                inner
                    .order
                    .push_back((Arc::clone(id), Instant::now(), generation));
                self.evict_over_capacity(&mut inner);
            }
            None => {
                inner.slots.remove(id);
            }
        }
    }

    /// Forget completed ids older than the TTL.
    fn expire(&self, inner: &mut Inner, now: Instant) {
        while let Some((_, at, _)) = inner.order.front() {
            if now.duration_since(*at) < self.ttl {
                break;
            }
            let (id, _, generation) = inner.order.pop_front().expect("front exists");
            remove_if(inner, &id, generation);
        }
    }

    fn evict_over_capacity(&self, inner: &mut Inner) {
        while inner.order.len() > self.capacity {
            let (id, _, generation) = inner.order.pop_front().expect("non-empty");
            remove_if(inner, &id, generation);
        }
    }
}

fn remove_if(inner: &mut Inner, id: &Arc<str>, generation: u64) {
    if inner
        .slots
        .get(id)
        .is_some_and(|s| matches!(s, Slot::Done { generation: g, .. } if *g == generation))
    {
        inner.slots.remove(id);
    }
}

/// The right (and duty) to produce one id. Settle it with the receipt, or
/// drop it: then nothing was written, the id is forgotten and waiters are
/// told to retry.
#[derive(Debug)]
pub struct FlightGuard {
    cache: Arc<Idempotency>,
    id: Arc<str>,
    hash: ContentHash,
    generation: u64,
    tx: Option<watch::Sender<Option<Option<Receipt>>>>,
}

impl FlightGuard {
    /// The submission was written here.
    pub fn complete(mut self, receipt: &Receipt) {
        self.finish(Some(receipt.clone()));
    }

    fn finish(&mut self, receipt: Option<Receipt>) {
        if let Some(tx) = self.tx.take() {
            self.cache
                .settle(&self.id, self.hash, self.generation, receipt.clone());
            let _ = tx.send(Some(receipt));
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.finish(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(id: &str, offset: i64) -> Receipt {
        Receipt {
            submission_id: id.into(),
            topic: "t".into(),
            partition: 0,
            offset,
        }
    }

    #[tokio::test]
    async fn same_bytes_replay_other_bytes_conflict() {
        let cache = Idempotency::new(10, DEFAULT_TTL);
        let (a, b) = (content_hash(b"a"), content_hash(b"b"));
        let Claim::New(guard) = cache.claim("s1", a) else {
            panic!("first claim produces")
        };
        // In flight: a duplicate waits, other bytes conflict.
        let Claim::Wait(waiter) = cache.claim("s1", a) else {
            panic!("waits")
        };
        assert!(matches!(cache.claim("s1", b), Claim::Conflict(h) if h == a));
        guard.complete(&receipt("s1", 7));
        assert_eq!(waiter.outcome().await, Some(receipt("s1", 7)));
        assert!(matches!(cache.claim("s1", a), Claim::Replay(r) if r.offset == 7));
        assert!(matches!(cache.claim("s1", b), Claim::Conflict(h) if h == a));
    }

    #[tokio::test]
    async fn a_failed_flight_is_forgotten_and_its_waiters_retry() {
        let cache = Idempotency::new(10, DEFAULT_TTL);
        let h = content_hash(b"a");
        let Claim::New(guard) = cache.claim("s1", h) else {
            panic!()
        };
        let Claim::Wait(waiter) = cache.claim("s1", h) else {
            panic!()
        };
        drop(guard);
        assert_eq!(waiter.outcome().await, None);
        assert!(cache.is_empty());
        assert!(matches!(cache.claim("s1", h), Claim::New(_)));
    }

    #[test]
    fn bounded_by_capacity_and_ttl() {
        let cache = Idempotency::new(3, Duration::from_millis(30));
        for i in 0..5 {
            let id = format!("s{i}");
            let Claim::New(g) = cache.claim(&id, content_hash(id.as_bytes())) else {
                panic!()
            };
            g.complete(&receipt(&id, i));
        }
        assert_eq!(cache.len(), 3, "the two oldest are forgotten");
        assert!(matches!(
            cache.claim("s0", content_hash(b"s0")),
            Claim::New(_)
        ));
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(
            cache.claim("s4", content_hash(b"s4")),
            Claim::New(_)
        ));
    }
}
