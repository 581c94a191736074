//! What a run leaves: the manifest of its objects, and nothing more when
//! the raw tables have not changed; what it refuses.

use std::sync::Arc;

use chrono::NaiveDate;
use gridstat_aggregate::{AggregateOptions, NoProgress};
use gridstat_schemas::generate::GenOptions;
use gridstat_schemas::lake::{AGGREGATE_STATE, MANIFESTS};
use gridstat_schemas::Registry;
use gridstat_testkit::lake::{paths_under, write_raw_lake};
use object_store::ObjectStore;

use crate::{aggregated, objects_under, run, two_days};

/// A run records every curated and rollup object it left in a manifest,
/// with its size: what the site reads through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_writes_a_manifest_of_every_curated_and_rollup_object() {
    let (lake, report, _) = aggregated(two_days()).await;
    let (seq, manifest) = gridstat_aggregate::manifest::newest(&lake)
        .await
        .unwrap()
        .expect("a manifest");
    assert_eq!(seq, 1);
    assert_eq!(manifest.last_day, report.rollup_days.last().copied());
    let mut written = Vec::new();
    for prefix in ["curated", "rollups"] {
        for (path, bytes) in objects_under(&lake, Some(prefix)).await {
            let entry = manifest.objects.get(&path);
            assert_eq!(entry.map(|e| e.size), Some(bytes.len() as u64), "{path}");
            written.push(path);
        }
    }
    assert!(written.iter().any(|p| p.starts_with("rollups/daily/")));
    assert!(written.iter().any(|p| p.starts_with("curated/visits/")));
    assert_eq!(
        manifest.objects.keys().collect::<Vec<_>>(),
        written.iter().collect::<Vec<_>>()
    );
}

/// A run that finds no raw file changed writes nothing: no curated or
/// rollup object, no state, no manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_run_writes_nothing() {
    let (lake, report, _) = aggregated(two_days()).await;
    assert!(
        !report.nothing_new() && report.files_written > 0,
        "{report:?}"
    );
    let before = objects_under(&lake, None).await;
    assert!(before.contains_key(AGGREGATE_STATE));
    let idle = run(&lake).await;
    assert!(idle.nothing_new(), "{idle:?}");
    assert_eq!(idle.files_written, 0);
    let after = objects_under(&lake, None).await;
    let not_lease = |p: &&String| !p.starts_with("_state/lease");
    assert_eq!(
        after.keys().filter(not_lease).collect::<Vec<_>>(),
        before.keys().filter(not_lease).collect::<Vec<_>>()
    );
    for (path, bytes) in &before {
        if not_lease(&path) {
            assert!(after[path] == *bytes, "{path} rewritten");
        }
    }
    assert_eq!(paths_under(&lake, Some(MANIFESTS)).await.len(), 1);
}

/// Raw data dated after the latest day a run accepts (a message
/// years ahead, from an ingest without the real clock) is refused with
/// a file named, not rolled up into a calendar of years.
#[tokio::test]
async fn raw_data_dated_after_the_latest_day_is_refused() {
    let lake: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let registry = Registry::jiangmen();
    let start = NaiveDate::from_ymd_opt(2031, 3, 1).unwrap();
    let campaign = GenOptions {
        start,
        days: 1,
        scale: 0.001,
        ..GenOptions::default()
    };
    write_raw_lake(&lake, &registry, campaign).await;
    let opts = AggregateOptions {
        campaign_start: start,
        latest_day: NaiveDate::from_ymd_opt(2026, 12, 8),
        ..AggregateOptions::default()
    };
    let err = gridstat_aggregate::run(Arc::clone(&lake), &registry, &opts, &NoProgress)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dated 2031-03-01, after 2026-12-08") && err.contains("raw/"),
        "{err}"
    );
    // Nothing was recorded, and a run that accepts the day goes on.
    let accepted = AggregateOptions {
        latest_day: None,
        ..opts
    };
    let report = gridstat_aggregate::run(lake, &registry, &accepted, &NoProgress)
        .await
        .unwrap();
    assert_eq!(report.rollup_days.len(), 1);
}
