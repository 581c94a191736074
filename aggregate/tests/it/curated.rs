//! Step 1: each raw day deduplicated into the curated tables.

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use gridstat_schemas::generate::Expect;
use gridstat_schemas::Stream;

use crate::{aggregated, query, two_days};

/// The one figure of a query that returns one.
async fn figure(lake: &std::sync::Arc<dyn object_store::ObjectStore>, sql: &str) -> i64 {
    let batches = query(lake, sql).await;
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_curated_tables_hold_each_valid_submission_once() {
    let (lake, report, messages) = aggregated(two_days()).await;
    assert_eq!(report.days_curated.len(), 2, "{report:?}");
    let count = |stream, expect| {
        messages
            .iter()
            .filter(|m| m.stream == stream && m.expect == expect)
            .count() as i64
    };
    let resends =
        count(Stream::Visits, Expect::Duplicate) + count(Stream::Cases, Expect::Duplicate);
    assert!(resends > 0, "the campaign must resend");

    let raw = figure(&lake, "SELECT COUNT(*) FROM raw_visits").await;
    let raw_cases = figure(&lake, "SELECT COUNT(*) FROM raw_cases").await;
    assert_eq!(
        raw + raw_cases,
        (messages.len() as i64) - invalid(&messages)
    );
    let visits = figure(&lake, "SELECT COUNT(*) FROM curated_visits").await;
    let distinct = figure(
        &lake,
        "SELECT COUNT(DISTINCT submission_id) FROM curated_visits",
    )
    .await;
    assert_eq!(visits, distinct, "no submission twice");
    assert_eq!(visits, count(Stream::Visits, Expect::Valid));
    assert!(raw > visits, "the resends are left out");
    let cases = figure(&lake, "SELECT COUNT(*) FROM curated_cases").await;
    assert_eq!(cases, count(Stream::Cases, Expect::Valid));
    assert_eq!(report.visits_curated as i64, visits);
}

/// Messages of the campaign that are invalid (none of them in the lake).
fn invalid(messages: &[gridstat_schemas::GeneratedMessage]) -> i64 {
    messages
        .iter()
        .filter(|m| matches!(m.expect, Expect::Invalid(_)))
        .count() as i64
}
