//! The engine driven as a Kafka worker drives it: records pushed per
//! partition, flushes on time, and a replay after a lost commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gridstat_ingest::{IngestOptions, SourceRecord};
use gridstat_schemas::Registry;
use gridstat_testkit::campaign::valid_payloads;
use gridstat_testkit::lake::segments_per_partition;

use crate::{engine_on, memory_lake};

/// A quiet partition's records reach the lake once the flush interval
/// has passed, with no more messages to push them out; a worker that
/// then reads the same offsets again (its commit lost in a crash)
/// skips them, by the lake's state object, and writes only what is new.
#[tokio::test]
async fn a_quiet_partition_flushes_on_time_and_a_replay_writes_nothing_twice() {
    let registry = Arc::new(Registry::jiangmen());
    let messages = valid_payloads(&registry, None, 7);
    let recs: Vec<SourceRecord<'_>> = (0..)
        .zip(&messages)
        .map(|(offset, payload)| SourceRecord {
            topic: "grid.visits.v1",
            partition: 5,
            offset,
            key: None,
            payload,
            timestamp: None,
        })
        .collect();
    let store = memory_lake();
    let worker = || engine_on(&store, &registry, IngestOptions::default());
    let (mut first, first_metrics) = worker();
    let t0 = Instant::now();
    assert!(first.push_batch(&recs[..5], t0).await.unwrap().is_empty());
    let interval = IngestOptions::default().flush_interval;
    let early = first.tick(t0 + interval - Duration::from_millis(1));
    assert!(early.await.unwrap().is_empty());
    assert!(segments_per_partition(&store).await.is_empty());
    let mut commits = first.tick(t0 + interval).await.unwrap();
    commits.extend(first.flush_all().await.unwrap());
    assert_eq!(commits.last().map(|c| c.next_offset), Some(5));
    assert_eq!(first_metrics.rows_written(), 5);
    let written = segments_per_partition(&store).await;
    assert_eq!(written[&5], [0].into());

    // The commit of offset 5 was lost: the next owner reads from 0.
    let (mut second, second_metrics) = worker();
    assert_eq!(second.assign("grid.visits.v1", 5).await.unwrap(), 5);
    let mut commits = second.push_batch(&recs, Instant::now()).await.unwrap();
    commits.extend(second.flush_all().await.unwrap());
    assert_eq!(commits.last().map(|c| c.next_offset), Some(7));
    assert_eq!(second_metrics.rows_written(), 2);
    assert_eq!(segments_per_partition(&store).await[&5], [0, 5].into());
}
