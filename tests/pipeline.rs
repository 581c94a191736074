//! End-to-end: generated campaign → ingest (embedded source) → aggregate,
//! checked against an independent computation in plain Rust.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type};
use chrono::{Duration, NaiveDate};
use gridstat_aggregate::{AggregateOptions, NoProgress};
use gridstat_ingest::file::{ingest_ndjson, FileReport};
use gridstat_ingest::{IngestEngine, IngestMetrics, IngestOptions, LakeStore};
use gridstat_schemas::generate::{Expect, GenOptions, GeneratedMessage, Generator};
use gridstat_schemas::record::{
    CaseKind, CaseStatus, SafetyCheck, SpecialGroup, TargetKind, Urgency,
};
use gridstat_schemas::time::{local_date, local_midnight};
use gridstat_schemas::{decode_submission, DecodeOptions, Registry, Submission};
use gridstat_testkit::campaign::{mixed as campaign, ndjson};
use gridstat_testkit::files::file_contents;
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;

fn messages(registry: &Registry) -> Vec<GeneratedMessage> {
    Generator::new(registry, campaign()).collect()
}

/// [`campaign`] with edited resends: the same submission id with other
/// content, some a day earlier ([`Expect::Conflict`]).
fn campaign_with_resends() -> GenOptions {
    GenOptions {
        conflict_rate: 0.03,
        ..campaign()
    }
}

fn store(dir: &Path) -> Arc<dyn ObjectStore> {
    Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap())
}

/// The Python named by GRIDSTAT_TEST_DUCKDB (duckdb, polars and pyarrow
/// installed; infra/test.sh sets it), or `None` to skip the test.
fn python_with_duckdb() -> Option<String> {
    let python = std::env::var("GRIDSTAT_TEST_DUCKDB").ok();
    if python.is_none() {
        eprintln!("GRIDSTAT_TEST_DUCKDB not set: skipping");
    }
    python
}

async fn ingest(
    store: Arc<dyn ObjectStore>,
    registry: Arc<Registry>,
    msgs: &[GeneratedMessage],
    name: &str,
) -> FileReport {
    let text = ndjson(msgs);
    let opts = IngestOptions {
        max_segment_rows: 5000,
        ..IngestOptions::default()
    };
    let mut engine = IngestEngine::new(
        LakeStore::new(store),
        registry,
        opts,
        Arc::new(IngestMetrics::default()),
    );
    ingest_ndjson(std::io::Cursor::new(text), name, &mut engine)
        .await
        .unwrap()
}

/// Ingest `msgs` as one NDJSON file, then aggregate incrementally.
async fn ingest_and_aggregate(
    lake: &Arc<dyn ObjectStore>,
    registry: &Arc<Registry>,
    msgs: &[GeneratedMessage],
    name: &str,
) {
    ingest(Arc::clone(lake), Arc::clone(registry), msgs, name).await;
    gridstat_aggregate::run(
        Arc::clone(lake),
        registry,
        &AggregateOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
}

/// `sql` over the lake as `gridstat sql` reads it (committed raw files only).
async fn query(store: &Arc<dyn ObjectStore>, registry: &Registry, sql: &str) -> Vec<RecordBatch> {
    let store = &gridstat_aggregate::committed::CommittedFiles::wrap(Arc::clone(store))
        .await
        .unwrap();
    let ctx = gridstat_aggregate::tables::session(Arc::clone(store));
    gridstat_aggregate::tables::register_all(&ctx, store, registry)
        .await
        .unwrap();
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

/// Figures per (level, area, day), computed without DataFusion.
#[derive(Debug, Default, Clone, PartialEq)]
struct Expected {
    visits: i64,
    households_visited: i64,
    hazards_found: i64,
    hardships_raised: i64,
    hardships_resolved: i64,
    hardships_open: i64,
    hardships_overdue: i64,
    hardships_assigned: i64,
    hazards_overdue: i64,
    hazard_median: Option<f64>,
    reporters_active: i64,
    grids_reached: i64,
    residents_present: i64,
    staff_recorded: i64,
    staff_tested: i64,
    /// Visits per special group and per safety check, by column name.
    flagged: BTreeMap<String, i64>,
    median: Option<f64>,
}

/// The columns of the visits per special group and per safety check.
fn flagged_columns() -> Vec<String> {
    let groups = SpecialGroup::ALL
        .iter()
        .map(|g| format!("special_{}", g.as_str()));
    let checks = SafetyCheck::ALL
        .iter()
        .map(|c| format!("checks_{}", c.as_str()));
    groups.chain(checks).collect()
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

fn independent(
    registry: &Registry,
    msgs: &[GeneratedMessage],
) -> BTreeMap<(String, String, NaiveDate), Expected> {
    let opts = DecodeOptions::default();
    let mut seen = HashSet::new();
    let mut visits = Vec::new();
    let mut updates = Vec::new();
    for m in msgs {
        let Ok(s) = decode_submission(&m.bytes, registry, &opts, None) else {
            continue;
        };
        if !seen.insert(s.submission_id().to_string()) {
            continue; // first received wins
        }
        match s {
            Submission::Visit(v) => visits.push(v),
            Submission::Case(c) => updates.push(c),
        }
    }
    let start = campaign().start;
    let days: Vec<NaiveDate> = start.iter_days().take(campaign().days as usize).collect();
    let areas = |grid_id: &str| -> Vec<(String, String)> {
        let g = registry.grid(grid_id).unwrap();
        vec![
            ("city".into(), registry.city.code.clone()),
            ("county".into(), registry.counties[g.county].code.clone()),
            ("town".into(), registry.towns[g.town].code.clone()),
            ("village".into(), registry.villages[g.village].code.clone()),
            ("grid".into(), g.id.clone()),
        ]
    };
    // Cases: opened by hardships; resolved by the first `resolved` update.
    let mut opened: HashMap<String, (String, chrono::DateTime<chrono::FixedOffset>)> =
        HashMap::new();
    // The overdue limit of each hardship, by its urgency.
    let mut limit: HashMap<String, i64> = HashMap::new();
    for v in &visits {
        for h in &v.hardships {
            opened
                .entry(h.case_id.to_string())
                .or_insert((v.grid_id.to_string(), v.visited_at));
            let hours = match h.urgency {
                Urgency::Urgent => 24,
                Urgency::Normal => 72,
                Urgency::Low => 168,
            };
            limit.entry(h.case_id.to_string()).or_insert(hours);
        }
    }
    let mut resolved: HashMap<String, chrono::DateTime<chrono::FixedOffset>> = HashMap::new();
    for u in &updates {
        if u.status == CaseStatus::Resolved && u.case_kind == CaseKind::Hardship {
            let e = resolved
                .entry(u.case_id.to_string())
                .or_insert(u.updated_at);
            *e = (*e).min(u.updated_at);
        }
    }
    // Hazards handed on (not fixed on the spot), each update's first time
    // per status and case.
    let mut hazards: HashMap<String, (String, chrono::DateTime<chrono::FixedOffset>)> =
        HashMap::new();
    for v in &visits {
        for h in v.hazards.iter().filter(|h| !h.fixed_on_spot) {
            hazards
                .entry(h.hazard_id.to_string())
                .or_insert((v.grid_id.to_string(), v.visited_at));
        }
    }
    let first = |status: CaseStatus| {
        let mut out: HashMap<String, chrono::DateTime<chrono::FixedOffset>> = HashMap::new();
        for u in updates.iter().filter(|u| u.status == status) {
            let e = out.entry(u.case_id.to_string()).or_insert(u.updated_at);
            *e = (*e).min(u.updated_at);
        }
        out
    };
    let (first_resolved, first_assigned) =
        (first(CaseStatus::Resolved), first(CaseStatus::Assigned));
    let mut out: BTreeMap<(String, String, NaiveDate), Expected> = BTreeMap::new();
    for &day in &days {
        let end = local_midnight(day) + Duration::days(1);
        let mut households: HashMap<(String, String), HashSet<&str>> = HashMap::new();
        let mut reporters: HashMap<(String, String), HashSet<&str>> = HashMap::new();
        let mut grids: HashMap<(String, String), HashSet<&str>> = HashMap::new();
        let mut hours: HashMap<(String, String), Vec<f64>> = HashMap::new();
        for g in &registry.grids {
            for a in areas(&g.id) {
                out.entry((a.0, a.1, day)).or_default();
            }
        }
        for v in visits.iter().filter(|v| local_date(&v.visited_at) <= day) {
            for a in areas(&v.grid_id) {
                let e = out.get_mut(&(a.0.clone(), a.1.clone(), day)).unwrap();
                e.visits += 1;
                e.hazards_found += v.hazards.len() as i64;
                e.hardships_raised += v.hardships.len() as i64;
                if v.target_kind == TargetKind::Household {
                    households
                        .entry(a.clone())
                        .or_default()
                        .insert(&v.target_id);
                    e.residents_present += i64::from(v.residents_present);
                } else {
                    e.staff_recorded += i64::from(v.residents_recorded);
                    e.staff_tested += i64::from(v.residents_tested);
                }
                let flags = v
                    .special_groups
                    .iter()
                    .map(|g| format!("special_{}", g.as_str()))
                    .chain(
                        v.safety_checks
                            .iter()
                            .map(|c| format!("checks_{}", c.as_str())),
                    );
                for flag in flags {
                    *e.flagged.entry(flag).or_default() += 1;
                }
                grids.entry(a.clone()).or_default().insert(&v.grid_id);
                reporters.entry(a).or_default().insert(&v.reporter_id);
            }
        }
        for (case, (grid, at)) in &opened {
            if local_date(at) > day {
                continue;
            }
            let done = resolved.get(case).filter(|r| local_date(*r) <= day);
            for a in areas(grid) {
                let e = out.get_mut(&(a.0.clone(), a.1.clone(), day)).unwrap();
                match done {
                    Some(r) => {
                        e.hardships_resolved += 1;
                        let h = ((*r - *at).num_milliseconds().max(0)) as f64 / 3_600_000.0;
                        hours.entry(a).or_default().push(h);
                    }
                    None => {
                        e.hardships_open += 1;
                        if *at < end - Duration::hours(limit[case]) {
                            e.hardships_overdue += 1;
                        }
                    }
                }
            }
        }
        for (case, (grid, _)) in &opened {
            if first_assigned
                .get(case)
                .is_some_and(|t| local_date(t) <= day)
            {
                for a in areas(grid) {
                    out.get_mut(&(a.0, a.1, day)).unwrap().hardships_assigned += 1;
                }
            }
        }
        let mut hazard_hours: HashMap<(String, String), Vec<f64>> = HashMap::new();
        for (case, (grid, at)) in &hazards {
            let done = first_resolved
                .get(case)
                .filter(|r| local_date(at) <= day && local_date(r) <= day);
            if let Some(r) = done {
                let h = ((*r - *at).num_milliseconds().max(0)) as f64 / 3_600_000.0;
                for a in areas(grid) {
                    hazard_hours.entry(a).or_default().push(h);
                }
            }
        }
        for (a, mut hs) in hazard_hours {
            hs.sort_by(f64::total_cmp);
            out.get_mut(&(a.0, a.1, day)).unwrap().hazard_median = percentile(&hs, 0.5);
        }
        for (case, (grid, at)) in &hazards {
            let open = local_date(at) <= day
                && first_resolved.get(case).is_none_or(|r| local_date(r) > day);
            if open && *at < end - Duration::hours(72) {
                for a in areas(grid) {
                    out.get_mut(&(a.0, a.1, day)).unwrap().hazards_overdue += 1;
                }
            }
        }
        for (a, set) in households {
            out.get_mut(&(a.0, a.1, day)).unwrap().households_visited = set.len() as i64;
        }
        for (a, set) in reporters {
            out.get_mut(&(a.0, a.1, day)).unwrap().reporters_active = set.len() as i64;
        }
        for (a, set) in grids {
            out.get_mut(&(a.0, a.1, day)).unwrap().grids_reached = set.len() as i64;
        }
        for (a, mut hs) in hours {
            hs.sort_by(f64::total_cmp);
            out.get_mut(&(a.0, a.1, day)).unwrap().median = percentile(&hs, 0.5);
        }
    }
    out
}

/// A string column, whatever string type DataFusion chose.
fn strings(b: &RecordBatch, name: &str) -> arrow::array::StringArray {
    let col = b.column_by_name(name).unwrap();
    arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8)
        .unwrap()
        .as_string::<i32>()
        .clone()
}

fn from_rollups(batches: &[RecordBatch]) -> BTreeMap<(String, String, NaiveDate), Expected> {
    let mut out = BTreeMap::new();
    for b in batches {
        let s = |n: &str| strings(b, n);
        let i = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone()
        };
        let (level, code, dt) = (s("level"), s("area_code"), s("dt"));
        let cols = [
            "visits",
            "households_visited",
            "hazards_found",
            "hardships_raised",
            "hardships_resolved",
            "hardships_open",
            "hardships_overdue",
            "reporters_active",
            "grids_reached",
            "residents_present",
            "staff_recorded",
            "staff_tested",
            "hardships_assigned",
            "hazards_overdue",
        ]
        .map(i);
        let flagged: Vec<(String, arrow::array::Int64Array)> = flagged_columns()
            .into_iter()
            .map(|c| {
                let values = i(&c);
                (c, values)
            })
            .collect();
        let real = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_primitive::<Float64Type>()
                .clone()
        };
        let (median, hazard_median) = (
            real("resolve_hours_median"),
            real("hazard_resolve_hours_median"),
        );
        for r in 0..b.num_rows() {
            let e = Expected {
                visits: cols[0].value(r),
                households_visited: cols[1].value(r),
                hazards_found: cols[2].value(r),
                hardships_raised: cols[3].value(r),
                hardships_resolved: cols[4].value(r),
                hardships_open: cols[5].value(r),
                hardships_overdue: cols[6].value(r),
                reporters_active: cols[7].value(r),
                grids_reached: cols[8].value(r),
                residents_present: cols[9].value(r),
                staff_recorded: cols[10].value(r),
                staff_tested: cols[11].value(r),
                hardships_assigned: cols[12].value(r),
                hazards_overdue: cols[13].value(r),
                flagged: flagged
                    .iter()
                    .filter(|(_, v)| v.value(r) != 0)
                    .map(|(c, v)| (c.clone(), v.value(r)))
                    .collect(),
                median: (!median.is_null(r)).then(|| median.value(r)),
                hazard_median: (!hazard_median.is_null(r)).then(|| hazard_median.value(r)),
            };
            let day = NaiveDate::parse_from_str(dt.value(r), "%Y-%m-%d").unwrap();
            out.insert(
                (level.value(r).to_string(), code.value(r).to_string(), day),
                e,
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_equal_an_independent_computation() {
    let registry = Arc::new(Registry::jiangmen());
    let msgs: Vec<_> = Generator::new(&registry, campaign_with_resends()).collect();
    assert!(
        msgs.iter().any(|m| m.expect == Expect::Duplicate)
            && msgs.iter().any(|m| m.expect == Expect::Conflict)
            && msgs.iter().any(|m| matches!(m.expect, Expect::Invalid(_)))
    );
    let dir = tempfile::tempdir().unwrap();
    let lake = store(dir.path());
    ingest_and_aggregate(&lake, &registry, &msgs, "campaign.ndjson").await;

    let got = from_rollups(&query(&lake, &registry, "SELECT * FROM rollups_cumulative").await);
    let want = independent(&registry, &msgs);
    assert!(
        want.values().any(|e| e.hazards_overdue > 0)
            && want.values().any(|e| e.hardships_assigned > 0)
            && want.values().any(|e| e.grids_reached > 0),
        "the campaign exercises the case and reach figures"
    );
    assert_eq!(got.len(), want.len(), "one row per area and day");
    for (key, w) in &want {
        let g = got
            .get(key)
            .unwrap_or_else(|| panic!("no rollup row for {key:?}"));
        let close = |g: Option<f64>, w: Option<f64>| match (g, w) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-6,
            (a, b) => a == b,
        };
        assert!(
            close(g.median, w.median),
            "{key:?}: median {:?} vs {:?}",
            g.median,
            w.median
        );
        assert!(
            close(g.hazard_median, w.hazard_median),
            "{key:?}: hazards' median {:?} vs {:?}",
            g.hazard_median,
            w.hazard_median
        );
        assert_eq!(
            Expected {
                median: None,
                hazard_median: None,
                ..g.clone()
            },
            Expected {
                median: None,
                hazard_median: None,
                ..w.clone()
            },
            "{key:?}"
        );
    }

    // Additive figures of children sum to their parent.
    let rows = query(&lake, &registry, "SELECT c.dt, c.parent_code, SUM(c.visits) AS s, MAX(p.visits) AS p, SUM(c.households_visited) AS sh, MAX(p.households_visited) AS ph \
        FROM rollups_cumulative c JOIN rollups_cumulative p ON c.parent_code = p.area_code AND c.dt = p.dt GROUP BY c.dt, c.parent_code").await;
    for b in &rows {
        let col = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone()
        };
        let (s, p, sh, ph) = (col("s"), col("p"), col("sh"), col("ph"));
        for r in 0..b.num_rows() {
            assert_eq!(s.value(r), p.value(r));
            assert_eq!(sh.value(r), ph.value(r));
        }
    }

    // Deduplication: curated has each valid submission once.
    let curated = query(
        &lake,
        &registry,
        "SELECT COUNT(*) AS n, COUNT(DISTINCT submission_id) AS d FROM curated_visits",
    )
    .await;
    let n = curated[0].column(0).as_primitive::<Int64Type>().value(0);
    let d = curated[0].column(1).as_primitive::<Int64Type>().value(0);
    assert_eq!(n, d);
    let valid_visits = msgs
        .iter()
        .filter(|m| m.expect == Expect::Valid && m.stream == gridstat_schemas::Stream::Visits)
        .count() as i64;
    assert_eq!(n, valid_visits);
    assert_resends_reported(&lake, &registry, &msgs).await;
}

/// Every edited resend is reported once in the quality table (on the day
/// of the copy that counts) and listed with its copies in `resends`.
async fn assert_resends_reported(
    lake: &Arc<dyn ObjectStore>,
    registry: &Registry,
    msgs: &[GeneratedMessage],
) {
    let conflicts = msgs.iter().filter(|m| m.expect == Expect::Conflict).count() as i64;
    assert!(conflicts > 0);
    let figure = |sql: &'static str| async move {
        let b = query(lake, registry, sql).await;
        b[0].column(0).as_primitive::<Int64Type>().value(0)
    };
    let reported = figure(
        "SELECT CAST(SUM(count) AS BIGINT) FROM quality WHERE kind = 'conflicting_resends' AND class = 'visits'",
    )
    .await;
    assert_eq!(reported, conflicts, "each edited resend reported once");
    let kept = figure("SELECT COUNT(*) FROM resends WHERE kept").await;
    let listed = figure("SELECT COUNT(DISTINCT submission_id) FROM resends").await;
    let copies = figure("SELECT COUNT(*) FROM resends").await;
    assert_eq!((kept, listed), (conflicts, conflicts));
    assert!(copies >= 2 * conflicts, "{copies} copies listed");
}

/// Edited resends arriving in a later batch, dated on days already
/// curated, are counted once: the refresh curates the days holding their
/// first copies again and leaves the resends out, giving the bytes of a
/// rebuild of the same lake and the independent computation's figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_on_another_day_is_counted_once_also_when_it_arrives_late() {
    let registry = Arc::new(Registry::jiangmen());
    let msgs: Vec<_> = Generator::new(&registry, campaign_with_resends()).collect();
    let (late, first): (Vec<_>, Vec<_>) = msgs
        .iter()
        .cloned()
        .partition(|m| m.expect == Expect::Conflict);
    let dir = tempfile::tempdir().unwrap();
    let lake = store(dir.path());
    ingest_and_aggregate(&lake, &registry, &first, "first.ndjson").await;
    ingest_and_aggregate(&lake, &registry, &late, "late.ndjson").await;
    let refreshed = rollup_files(dir.path());
    gridstat_aggregate::run(
        Arc::clone(&lake),
        &registry,
        &AggregateOptions {
            full: true,
            ..AggregateOptions::default()
        },
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(
        rollup_files(dir.path()),
        refreshed,
        "a refresh gives a rebuild's bytes"
    );
    let got = from_rollups(&query(&lake, &registry, "SELECT * FROM rollups_cumulative").await);
    let want = independent(&registry, &msgs);
    for (key, w) in &want {
        let g = &got[key];
        assert_eq!(
            (g.visits, g.households_visited, g.reporters_active),
            (w.visits, w.households_visited, w.reporters_active),
            "{key:?}"
        );
    }
    let curated = query(
        &lake,
        &registry,
        "SELECT COUNT(*) - COUNT(DISTINCT submission_id) FROM curated_visits",
    )
    .await;
    assert_eq!(curated[0].column(0).as_primitive::<Int64Type>().value(0), 0);
    assert_resends_reported(&lake, &registry, &msgs).await;
}

/// Two raw copies of one message — the same topic, partition and offset —
/// in two county partitions (a grid that moved county between a crash and
/// its replay) are counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_raw_rows_of_one_message_are_counted_once() {
    let registry = Arc::new(Registry::jiangmen());
    let msgs = messages(&registry);
    let dir = tempfile::tempdir().unwrap();
    let lake = store(dir.path());
    ingest_and_aggregate(&lake, &registry, &msgs, "campaign.ndjson").await;
    let before = rollup_files(dir.path());
    // One day's raw visits of one county, copied under a county code
    // without files that day (the segment's files share one name).
    let day = dir.path().join("raw/visits/dt=2022-11-26");
    let (from, to) = (day.join("county=440703"), day.join("county=440799"));
    std::fs::create_dir(&to).unwrap();
    for file in std::fs::read_dir(&from).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, to.join(file.file_name().unwrap())).unwrap();
    }
    gridstat_aggregate::run(
        Arc::clone(&lake),
        &registry,
        &AggregateOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    let raw = query(
        &lake,
        &registry,
        "SELECT COUNT(*) - COUNT(DISTINCT submission_id) FROM raw_visits WHERE dt = '2022-11-26'",
    )
    .await;
    assert!(
        raw[0].column(0).as_primitive::<Int64Type>().value(0) > 0,
        "the copies are there"
    );
    let after = rollup_files(dir.path());
    let changed: Vec<_> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v) && !k.contains("quality"))
        .map(|(k, _)| k.clone())
        .collect();
    assert!(changed.is_empty(), "rollups unchanged: {changed:?}");
}

fn rollup_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    file_contents(&dir.join("rollups"))
        .into_iter()
        .map(|(k, v)| (format!("rollups/{k}"), v))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_equals_full_and_idle_runs_write_nothing() {
    let registry = Arc::new(Registry::jiangmen());
    let msgs = messages(&registry);
    // Three batches: everything sent before day 3; then what came later
    // about the first day (rollups recomputed from the campaign's start);
    // then the rest, late arrivals for days 1 and 2 among it (rollups
    // continued from the previous run's cumulative figures).
    let cut = local_midnight(campaign().start + Duration::days(3)).timestamp_millis();
    let second_day = local_midnight(campaign().start + Duration::days(1)).timestamp_millis();
    let event_ms = |m: &GeneratedMessage| {
        decode_submission(&m.bytes, &registry, &DecodeOptions::default(), None)
            .ok()
            .map(|s| s.event_time().timestamp_millis())
    };
    let (early, late): (Vec<_>, Vec<_>) = msgs.iter().cloned().partition(|m| m.sent_at_ms < cut);
    let (late_first_day, rest): (Vec<_>, Vec<_>) = late
        .into_iter()
        .partition(|m| event_ms(m).is_some_and(|t| t < second_day));
    let late_for_old_days = rest
        .iter()
        .filter_map(event_ms)
        .filter(|t| *t < cut)
        .count();
    assert!(
        late_for_old_days > 0 && !late_first_day.is_empty(),
        "the later batches must touch old days"
    );
    let batches = [
        (&early, "early.ndjson"),
        (&late_first_day, "late-first-day.ndjson"),
        (&rest, "rest.ndjson"),
    ];

    let inc = tempfile::tempdir().unwrap();
    let lake = store(inc.path());
    let opts = AggregateOptions::default();
    let mut report = None;
    for (batch, name) in batches {
        ingest(Arc::clone(&lake), Arc::clone(&registry), batch, name).await;
        report = Some(
            gridstat_aggregate::run(Arc::clone(&lake), &registry, &opts, &NoProgress)
                .await
                .unwrap(),
        );
    }
    let report = report.unwrap();
    assert!(
        report.rollup_days.first() > Some(&campaign().start),
        "the last run continues the previous cumulative rollups: {report:?}"
    );
    let incremental = rollup_files(inc.path());

    let before: BTreeSet<_> = incremental.keys().cloned().collect();
    let idle = gridstat_aggregate::run(Arc::clone(&lake), &registry, &opts, &NoProgress)
        .await
        .unwrap();
    assert!(idle.nothing_new(), "{idle:?}");
    assert_eq!(idle.files_written, 0);
    assert_eq!(
        rollup_files(inc.path()),
        incremental,
        "an idle run changes no file"
    );
    assert_eq!(before.len(), incremental.len());

    let full = AggregateOptions {
        full: true,
        ..AggregateOptions::default()
    };
    let report = gridstat_aggregate::run(Arc::clone(&lake), &registry, &full, &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        report.files_written, 0,
        "--all finds the incremental result already right"
    );
    let fresh = tempfile::tempdir().unwrap();
    let lake2 = store(fresh.path());
    for (batch, name) in batches {
        ingest(Arc::clone(&lake2), Arc::clone(&registry), batch, name).await;
    }
    gridstat_aggregate::run(Arc::clone(&lake2), &registry, &full, &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        rollup_files(fresh.path()),
        incremental,
        "incremental and --all give byte-identical rollups"
    );

    // Another overdue limit invalidates every rollup: the next run
    // recomputes all days, and the one after finds nothing new.
    let stricter = AggregateOptions {
        overdue_hours: 48,
        ..AggregateOptions::default()
    };
    let report = gridstat_aggregate::run(Arc::clone(&lake), &registry, &stricter, &NoProgress)
        .await
        .unwrap();
    assert_eq!(report.rollup_days.first(), Some(&campaign().start));
    assert!(report.days_curated.is_empty(), "{report:?}");
    let again = gridstat_aggregate::run(Arc::clone(&lake), &registry, &stricter, &NoProgress)
        .await
        .unwrap();
    assert!(again.nothing_new(), "{again:?}");
}

/// Every line's offset, per table, as the lake holds them.
async fn offsets_in(lake: &Arc<dyn ObjectStore>, registry: &Registry) -> Vec<(String, i64)> {
    let sql = "SELECT 'visits' AS t, source_offset FROM raw_visits \
               UNION ALL SELECT 'cases', source_offset FROM raw_cases \
               UNION ALL SELECT 'quarantine', source_offset FROM quarantine \
               ORDER BY 1, 2";
    let mut out = Vec::new();
    for b in query(lake, registry, sql).await {
        let tables = strings(&b, "t");
        let offsets = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.push((tables.value(i).to_string(), offsets.value(i)));
        }
    }
    out
}

/// `gridstat ingest --from -` reads standard input into the same rows as
/// `--from FILE`: every line in the same table at the same offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_from_stdin_writes_what_a_file_writes() {
    use std::io::Write;
    let registry = Arc::new(Registry::jiangmen());
    let msgs = messages(&registry);
    let text = ndjson(&msgs);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("campaign.ndjson");
    std::fs::write(&file, &text).unwrap();
    let (from_file, from_stdin) = (dir.path().join("file-lake"), dir.path().join("stdin-lake"));
    let gridstat = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gridstat"));
        cmd.env("GRIDSTAT_LOG", "warn").args(["ingest", "--lake"]);
        cmd
    };
    let out = gridstat()
        .arg(&from_file)
        .arg("--from")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Standard input has no name to resume under: one must be given.
    let unnamed = gridstat()
        .arg(&from_stdin)
        .args(["--from", "-"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!unnamed.status.success());
    assert!(String::from_utf8_lossy(&unnamed.stderr).contains("--source-id"));
    let mut child = gridstat()
        .arg(&from_stdin)
        .args(["--from", "-", "--source-id", "campaign.ndjson"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("from -"),
        "{out:?}"
    );
    let read_file = offsets_in(&store(&from_file), &registry).await;
    assert_eq!(read_file.len(), msgs.len());
    assert_eq!(offsets_in(&store(&from_stdin), &registry).await, read_file);
}

/// The same pipeline with the lake on a real S3-compatible server gives
/// byte-identical rollups (enabled by GRIDSTAT_TEST_S3_ENDPOINT, which
/// infra/test.sh sets after starting s3s-fs with bucket `gridstat-test`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_lake_gives_the_same_rollups() {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let Ok(endpoint) = std::env::var("GRIDSTAT_TEST_S3_ENDPOINT") else {
        eprintln!("skipped: set GRIDSTAT_TEST_S3_ENDPOINT (infra/test.sh does)");
        return;
    };
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name("gridstat-test")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    let prefix = format!("run-{}", std::process::id());
    let remote: Arc<dyn ObjectStore> =
        Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str()));
    let registry = Arc::new(Registry::jiangmen());
    let msgs = messages(&registry);
    let local_dir = tempfile::tempdir().unwrap();
    let local = store(local_dir.path());
    for lake in [&remote, &local] {
        ingest_and_aggregate(lake, &registry, &msgs, "campaign.ndjson").await;
    }
    let want = rollup_files(local_dir.path());
    let listed: Vec<_> = remote
        .list(Some(&"rollups".into()))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), want.len());
    for meta in listed {
        let body = remote
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            Some(&body.to_vec()),
            want.get(meta.location.as_ref()),
            "{}",
            meta.location
        );
    }
}

/// The `gridstat` binary pools zstd's contexts (`src/zstd_contexts.rs`),
/// which this test binary does not: both must read the same raw files into
/// the same curated and rollup bytes, and the binary must hand out most of
/// its contexts again rather than have zstd create them (its count at debug
/// level).
#[cfg(all(feature = "zstd-pool", target_os = "linux", target_env = "gnu"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reuses_pooled_zstd_contexts_and_writes_the_same_bytes() {
    let registry = Arc::new(Registry::jiangmen());
    let msgs = messages(&registry);
    let (library, binary) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [&library, &binary] {
        ingest(
            store(dir.path()),
            Arc::clone(&registry),
            &msgs,
            "all.ndjson",
        )
        .await;
    }
    gridstat_aggregate::run(
        store(library.path()),
        &registry,
        &AggregateOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gridstat"))
        .args(["--log-format", "json", "aggregate", "--lake"])
        .arg(binary.path())
        .env("GRIDSTAT_LOG", "gridstat::zstd_contexts=debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let counts = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["message"] == "Counted zstd contexts.")
        .unwrap_or_else(|| panic!("no count of zstd contexts in {stderr}"));
    let count = |field: &str| counts["fields"][field].as_u64().unwrap();
    for kind in ["compression", "decompression"] {
        let (created, reused) = (
            count(&format!("{kind}_created")),
            count(&format!("{kind}_reused")),
        );
        assert!(created > 0 && reused > created, "{kind}: {counts}");
    }
    let written = |dir: &Path| {
        let mut files = rollup_files(dir);
        for (k, v) in file_contents(&dir.join("curated")) {
            files.insert(format!("curated/{k}"), v);
        }
        files
    };
    let (from_library, from_binary) = (written(library.path()), written(binary.path()));
    assert!(from_library.len() > 20, "{:?}", from_library.keys());
    assert_eq!(
        from_library.keys().collect::<Vec<_>>(),
        from_binary.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &from_library {
        assert!(from_binary[path] == *bytes, "{path} differs");
    }
}

/// What DataFusion sees of one column, as text: the figures
/// `tests/lake_readers.py` computes from each Python reader.
fn column_figures(name: &str, data_type: &arrow::datatypes::DataType) -> Vec<(String, String)> {
    use arrow::datatypes::DataType as T;
    let c = format!("\"{name}\"");
    let text = |figure: &str, sql: String| (figure.to_string(), format!("CAST({sql} AS VARCHAR)"));
    let mut out = vec![text("count", format!("count({c})"))];
    let string = matches!(data_type, T::Utf8 | T::LargeUtf8 | T::Utf8View)
        || matches!(data_type, T::Dictionary(_, v) if matches!(**v, T::Utf8));
    if data_type.is_integer() || data_type.is_floating() {
        out.push(text("sum", format!("sum({c})")));
    } else if string {
        out.push(text("distinct", format!("count(DISTINCT {c})")));
        out.push(text("min", format!("min({c})")));
        out.push(text("max", format!("max({c})")));
    } else if *data_type == T::Boolean {
        out.push(text("sum", format!("sum(CASE WHEN {c} THEN 1 ELSE 0 END)")));
    } else if *data_type == T::Date32 {
        out.push(text("min", format!("min({c})")));
        out.push(text("max", format!("max({c})")));
    }
    out
}

fn text_cells(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
    let mut rows = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .map(|a| {
                        (!a.is_null(r))
                            .then(|| arrow::util::display::array_value_to_string(a, r).unwrap())
                    })
                    .collect(),
            );
        }
    }
    rows
}

/// pyarrow, Polars and DuckDB read every table of the lake unchanged —
/// Hive partitions, list and struct columns, `DELTA_LENGTH_BYTE_ARRAY`
/// ids, zstd — and see the rows, sums, distinct counts and bounds
/// DataFusion sees; they also agree with each other on every value
/// (enabled by GRIDSTAT_TEST_DUCKDB, a Python with duckdb, polars and
/// pyarrow, which infra/test.sh installs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_polars_and_duckdb_read_the_lake_as_datafusion_does() {
    let Some(python) = python_with_duckdb() else {
        return;
    };
    let registry = Arc::new(Registry::jiangmen());
    let dir = tempfile::tempdir().unwrap();
    let lake = store(dir.path());
    // With conflicting resends, so that every table (`resends` too) has rows.
    let msgs: Vec<GeneratedMessage> = Generator::new(&registry, campaign_with_resends()).collect();
    ingest_and_aggregate(&lake, &registry, &msgs, "campaign.ndjson").await;
    let ctx = gridstat_aggregate::tables::session(Arc::clone(&lake));
    let registered = gridstat_aggregate::tables::register_all(&ctx, &lake, &registry)
        .await
        .unwrap();
    let mut expected = serde_json::Map::new();
    for spec in gridstat_aggregate::tables::TABLES {
        assert!(
            registered.contains(&spec.name),
            "{} has no files",
            spec.name
        );
        let schema = ctx.table(spec.name).await.unwrap().schema().clone();
        let mut figures = Vec::new();
        for field in schema.fields() {
            for (figure, sql) in column_figures(field.name(), field.data_type()) {
                figures.push((field.name().clone(), figure, sql));
            }
        }
        let select: Vec<&str> = figures.iter().map(|(_, _, sql)| sql.as_str()).collect();
        let sql = format!("SELECT {} FROM {}", select.join(", "), spec.name);
        let row = text_cells(&ctx.sql(&sql).await.unwrap().collect().await.unwrap()).remove(0);
        let mut columns = serde_json::Map::new();
        for ((column, figure, _), value) in figures.into_iter().zip(row) {
            let entry = columns
                .entry(column)
                .or_insert_with(|| serde_json::json!({}));
            entry[figure] = serde_json::json!(value);
        }
        let sql = format!("SELECT count(*) FROM {}", spec.name);
        let rows = text_cells(&ctx.sql(&sql).await.unwrap().collect().await.unwrap())[0][0]
            .as_ref()
            .unwrap()
            .parse::<i64>()
            .unwrap();
        let mut table = serde_json::json!({
            "prefix": spec.prefix,
            "partitions": spec.partitions,
            "rows": rows,
            "columns": columns,
        });
        if spec.partitions.contains(&"dt") {
            let sql = format!(
                "SELECT CAST(dt AS VARCHAR), count(*) FROM {} GROUP BY 1",
                spec.name
            );
            let by_dt: serde_json::Map<_, _> =
                text_cells(&ctx.sql(&sql).await.unwrap().collect().await.unwrap())
                    .into_iter()
                    .map(|r| {
                        (
                            r[0].clone().unwrap(),
                            serde_json::json!(r[1].as_ref().unwrap().parse::<i64>().unwrap()),
                        )
                    })
                    .collect();
            table["rows_by_dt"] = by_dt.into();
        }
        expected.insert(spec.name.to_string(), table);
    }
    let scratch = tempfile::tempdir().unwrap();
    let figures_file = scratch.path().join("figures.json");
    std::fs::write(&figures_file, serde_json::to_vec_pretty(&expected).unwrap()).unwrap();
    let out = std::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/lake_readers.py"
        ))
        .arg(dir.path())
        .arg(&figures_file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the readers disagree:\n{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for spec in gridstat_aggregate::tables::TABLES {
        let line = said
            .lines()
            .find(|l| l.starts_with(&format!("{}: ", spec.name)));
        assert!(
            line.is_some_and(|l| l.ends_with("by ['duckdb', 'polars', 'pyarrow']")),
            "{}: {said}",
            spec.name
        );
    }
}

/// Two aggregate runs started together, three times over: one holds the
/// lake and the other is refused with the holder named, and the lake
/// ends as a rebuild leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_aggregate_runs_take_turns() {
    let registry = Arc::new(Registry::jiangmen());
    let msgs = messages(&registry);
    let dir = tempfile::tempdir().unwrap();
    let lake = store(dir.path());
    let third = msgs.len() / 3;
    for (round, batch) in msgs.chunks(third + 1).enumerate() {
        ingest(
            Arc::clone(&lake),
            Arc::clone(&registry),
            batch,
            &format!("batch-{round}.ndjson"),
        )
        .await;
        let run = |who: &str| {
            let opts = AggregateOptions {
                run_by: who.to_string(),
                ..AggregateOptions::default()
            };
            let (lake, registry) = (Arc::clone(&lake), Arc::clone(&registry));
            async move { gridstat_aggregate::run(lake, &registry, &opts, &NoProgress).await }
        };
        let (a, b) = tokio::join!(run("run-a"), run("run-b"));
        let refused = [&a, &b].iter().filter(|r| r.is_err()).count();
        assert!(refused <= 1, "round {round}: at most one refused");
        for r in [&a, &b] {
            if let Err(e) = r {
                let text = e.to_string();
                assert!(
                    text.contains("another aggregate run holds the lake: run-"),
                    "round {round}: {text}"
                );
            }
        }
        // A refused run's work is done by the next.
        gridstat_aggregate::run(
            Arc::clone(&lake),
            &registry,
            &AggregateOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
    }
    let incremental = rollup_files(dir.path());
    gridstat_aggregate::run(
        Arc::clone(&lake),
        &registry,
        &AggregateOptions {
            full: true,
            ..AggregateOptions::default()
        },
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(rollup_files(dir.path()), incremental);
}

/// The rollups as the site reads them, through the newest complete
/// aggregate run, as text to compare.
async fn site_view(lake: &Arc<dyn ObjectStore>) -> String {
    let loaded = gridstat_aggregate::manifest::read_newest(
        lake,
        |snapshot| async move { gridstat_site_gen::load::load_rollups(&snapshot, None).await },
        |e: &gridstat_site_gen::Error| gridstat_aggregate::manifest::is_snapshot_changed(e),
    )
    .await
    .unwrap()
    .unwrap();
    format!("{:?} {:?}", loaded.days, loaded.areas)
}

/// A site built while aggregate rewrites the rollups reads one complete
/// run's output: exactly the rollups before the run or after it, never
/// a mix of the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_site_reads_one_complete_run_while_aggregate_runs() {
    let registry = Arc::new(Registry::jiangmen());
    let msgs = messages(&registry);
    let (first, late) = msgs.split_at(msgs.len() * 2 / 3);
    let dir = tempfile::tempdir().unwrap();
    let lake = store(dir.path());
    ingest_and_aggregate(&lake, &registry, first, "first.ndjson").await;
    let before = site_view(&lake).await;
    ingest(
        Arc::clone(&lake),
        Arc::clone(&registry),
        late,
        "late.ndjson",
    )
    .await;
    let done = std::sync::atomic::AtomicBool::new(false);
    let run = async {
        let report = gridstat_aggregate::run(
            Arc::clone(&lake),
            &registry,
            &AggregateOptions::default(),
            &NoProgress,
        )
        .await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        report
    };
    let reads = async {
        let mut seen = Vec::new();
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            seen.push(site_view(&lake).await);
        }
        seen
    };
    let (report, seen) = tokio::join!(run, reads);
    report.unwrap();
    let after = site_view(&lake).await;
    assert_ne!(before, after, "the run changed the rollups");
    assert!(!seen.is_empty(), "the site was read while the run ran");
    for (i, view) in seen.iter().enumerate() {
        assert!(
            *view == before || *view == after,
            "read {i} of {} mixes two runs",
            seen.len()
        );
    }
}

/// A second file of the same name resumes only if it is the same input
/// (or the same with lines appended): another file is refused with the
/// fix named, instead of having its first lines silently skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_file_of_the_same_name_is_refused_not_skipped() {
    let registry = Arc::new(Registry::jiangmen());
    let msgs = messages(&registry);
    let (first, more) = msgs.split_at(msgs.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let (lake, input) = (dir.path().join("lake"), dir.path().join("day.ndjson"));
    let ingest = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gridstat"))
            .env("GRIDSTAT_LOG", "warn")
            .args(["ingest", "--lake"])
            .arg(&lake)
            .arg("--from")
            .arg(&input)
            .args(extra)
            .output()
            .unwrap()
    };
    std::fs::write(&input, ndjson(first)).unwrap();
    assert!(ingest(&[]).status.success());
    // The same file grown by appended lines resumes where it stopped.
    std::fs::write(&input, ndjson(msgs.as_slice())).unwrap();
    let grown = ingest(&[]);
    assert!(
        grown.status.success(),
        "{}",
        String::from_utf8_lossy(&grown.stderr)
    );
    assert!(String::from_utf8_lossy(&grown.stdout)
        .contains(&format!("resumed at line {}", first.len() + 1)));
    // Another file under the same name is refused, nothing written.
    std::fs::write(&input, ndjson(more)).unwrap();
    let other = ingest(&[]);
    assert!(!other.status.success());
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        err.contains("--source-id") && err.contains("differ"),
        "{err}"
    );
    // Under its own source id it is a new input.
    let renamed = ingest(&["--source-id", "day-2.ndjson"]);
    assert!(
        renamed.status.success(),
        "{}",
        String::from_utf8_lossy(&renamed.stderr)
    );
    assert!(String::from_utf8_lossy(&renamed.stdout).contains("resumed at line 1"));
}
