//! Aggregate: DataFusion jobs that turn the raw lake into deduplicated
//! curated tables and grid → town → county → city rollups, incrementally.
//!
//! # Layout
//!
//! - [`tables`]: the lake's tables registered in a DataFusion session;
//! - [`curated`]: step 1, per-day deduplication and registry join;
//! - [`rollup`]: step 2, rollups at four levels, daily and cumulative;
//! - [`store`]: listing, reading and writing lake objects, bookkeeping;
//! - this module: step 3, deciding what a run must recompute ([`run`]).
//!
//! ```
//! assert!(gridstat_aggregate::rollup::FLOWS.contains(&"households_new"));
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod curated;
pub mod duckdb;
pub mod error;
mod open_cases;
mod percentiles;
pub mod rollup;
pub mod store;
pub mod tables;
mod target_firsts;
#[cfg(test)]
mod test_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::filter_record_batch;
use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use futures::{StreamExt, TryStreamExt};
use gridstat_schemas::lake::{self, dt_partition};
use gridstat_schemas::Registry;
use object_store::ObjectStore;

pub use error::{Error, Result};

/// Options of an aggregate run.
#[derive(Debug, Clone)]
pub struct AggregateOptions {
    /// Recompute everything, not only what new raw files touch.
    pub full: bool,
    /// A hardship open longer than this at day end is overdue.
    pub overdue_hours: i64,
    /// First day of the campaign: rollups start here.
    pub campaign_start: NaiveDate,
}

impl Default for AggregateOptions {
    fn default() -> Self {
        Self {
            full: false,
            overdue_hours: 72,
            campaign_start: gridstat_schemas::time::DEFAULT_CAMPAIGN_START,
        }
    }
}

/// Receives progress of a run (the CLI shows it with indicatif).
pub trait Progress: Send + Sync {
    /// A step started, with the number of units it has.
    fn step(&self, name: &str, units: u64);
    /// One unit of the current step is done.
    fn advance(&self);
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn step(&self, _: &str, _: u64) {}
    fn advance(&self) {}
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct AggregateReport {
    /// Days whose curated tables were rebuilt.
    pub days_curated: Vec<NaiveDate>,
    /// Days whose rollup files were recomputed (rewritten only if they changed).
    pub rollup_days: Vec<NaiveDate>,
    /// Objects written.
    pub files_written: usize,
    /// Curated visits across the rebuilt days.
    pub visits_curated: usize,
    /// Wall time per step.
    pub timings: Vec<(String, Duration)>,
}

impl AggregateReport {
    /// Whether the run found nothing new.
    pub fn nothing_new(&self) -> bool {
        self.days_curated.is_empty() && self.rollup_days.is_empty()
    }
}

/// Run the three steps against the lake in `store`.
///
/// Incremental runs (the default) curate only the days whose raw files
/// changed, and recompute rollups from the first such day on: the daily
/// figures of those days, and cumulative figures as the previous run's
/// cumulative row of the day before plus running sums. Anything that
/// makes the previous rollups untrustworthy — another campaign start,
/// overdue limit or registry, a raw file removed, a missing rollup file —
/// makes the run recompute every day, as `--all` does.
pub async fn run(
    store: Arc<dyn ObjectStore>,
    registry: &Registry,
    opts: &AggregateOptions,
    progress: &dyn Progress,
) -> Result<AggregateReport> {
    let mut report = AggregateReport::default();
    let started = Instant::now();
    let (raw, previous) = futures::try_join!(RawListing::of(&store), async {
        if opts.full {
            Ok(None)
        } else {
            store::read_state(&store, lake::AGGREGATE_STATE).await
        }
    })?;
    let changes = match &previous {
        None => Changes::everything(&raw.files),
        Some(prev) => Changes::between(&prev.files, &raw.files),
    };
    let last_day = raw.last_day(opts.campaign_start);
    let mark = store::RollupMark::of(opts, registry, last_day);
    // Where the previous rollups can be continued from, if they can.
    let continue_after = previous
        .as_ref()
        .and_then(|p| p.rollups.as_ref())
        .filter(|m| !changes.removed && m.same_settings(&mark))
        .map(|m| m.through);
    // Rollups made with other settings must be redone even if no raw file
    // changed; a lake without rollups yet (no valid visits) has none to redo.
    let settings_changed = previous
        .as_ref()
        .and_then(|p| p.rollups.as_ref())
        .is_some_and(|m| !m.same_settings(&mark));
    report.timings.push(("scan".into(), started.elapsed()));
    if changes.days.is_empty() && changes.quarantine_days.is_empty() && !settings_changed {
        return Ok(report);
    }

    let ctx = tables::session(Arc::clone(&store));
    let rollups_from = rollups_from(continue_after, changes.days.first().copied(), opts);
    if raw.bytes_from(rollups_from) <= SMALL_RUN_BYTES {
        tables::without_dynamic_filters(&ctx)?;
    }
    timed(
        "register tables",
        tables::register_inputs(&ctx, &store, registry, false),
    )
    .await?;
    raw.seed(&ctx);
    let t = Instant::now();
    progress.step("curate", changes.days.len() as u64);
    let mut written_schemas = curated::dedup::WrittenSchemas::new();
    for group in raw.curation_groups(&changes.days) {
        let (with_raw, without): (Vec<NaiveDate>, Vec<NaiveDate>) =
            group.iter().partition(|day| raw.days.contains(day));
        for &day in &without {
            clear_curated(&store, day).await?;
        }
        if !with_raw.is_empty() {
            let (days, schemas) =
                curated::dedup::curate_days(&ctx, &store, &with_raw, raw.day_listing()).await?;
            for d in days {
                report.files_written += d.files_written;
                report.visits_curated += d.visits;
            }
            written_schemas = schemas;
        }
        for day in group {
            report.days_curated.push(day);
            progress.advance();
        }
    }
    report.timings.push(("curate".into(), t.elapsed()));

    let t = Instant::now();
    // The curated tables as curation left them (`case_state` is
    // registered once rewritten, in the rollup step), together: each
    // reads the footers of its files.
    timed(
        "register curated tables",
        futures::future::try_join_all(
            tables::TABLES
                .iter()
                .filter(|t| tables::is_curated_day_table(t))
                .map(|spec| {
                    let schema = written_schemas
                        .iter()
                        .find(|(name, _)| *name == spec.name)
                        .map(|(_, schema)| tables::as_inferred(schema));
                    tables::register_as(&ctx, &store, spec, schema)
                }),
        ),
    )
    .await?;
    let plan = RollupPlan {
        continue_after,
        first_changed: changes.days.first().copied(),
        last_day,
        case_state: if continue_after.is_none() || !ctx.table_exist("case_state").unwrap_or(false) {
            CaseStateWork::Rebuild
        } else if changes.days.is_empty() {
            CaseStateWork::Keep
        } else {
            CaseStateWork::Update(changes.days.clone())
        },
        quality_days: continue_after.is_some().then(|| {
            changes
                .days
                .union(&changes.quarantine_days)
                .copied()
                .collect()
        }),
        has_quarantine: raw.has_quarantine(),
    };
    let mut rollups_through = previous
        .as_ref()
        .and_then(|p| p.rollups.as_ref())
        .map(|m| m.through);
    if Box::pin(rollup_step(
        &ctx,
        &store,
        opts,
        &plan,
        &mut report,
        progress,
    ))
    .await?
    {
        rollups_through = Some(last_day);
    }
    report.timings.push(("rollup".into(), t.elapsed()));
    store::write_state(
        &store,
        lake::AGGREGATE_STATE,
        &store::AggregateState {
            files: raw.files,
            rollups: rollups_through.map(|through| store::RollupMark { through, ..mark }),
        },
    )
    .await?;
    Ok(report)
}

/// The raw and quarantine files in the lake, and the days with raw data.
#[derive(Debug)]
struct RawListing {
    files: BTreeMap<String, store::Fingerprint>,
    days: BTreeSet<NaiveDate>,
    /// The objects of each of [`tables::RAW_TABLES`], in its order.
    metas: [Vec<object_store::ObjectMeta>; 3],
}

impl RawListing {
    async fn of(store: &Arc<dyn ObjectStore>) -> Result<Self> {
        let [visits, cases, quarantine] =
            tables::RAW_TABLES.map(|t| store::list_parquet(store, t.prefix));
        let (visits, cases, quarantine) = futures::try_join!(visits, cases, quarantine)?;
        let metas = [visits, cases, quarantine];
        let files: BTreeMap<_, _> = metas.iter().flat_map(|m| store::fingerprints(m)).collect();
        let days = files
            .keys()
            .filter(|p| !p.starts_with(lake::QUARANTINE))
            .filter_map(|p| store::day_of(p))
            .collect();
        Ok(Self { files, days, metas })
    }

    /// The raw tables' objects, for curation's tables of one day each.
    fn day_listing(&self) -> curated::dedup::RawDayListing<'_> {
        let [visits, cases, _] = &self.metas;
        curated::dedup::RawDayListing { visits, cases }
    }

    /// Hand the listing to the session's tables of raw files, so that
    /// their queries read the files this run is based on without listing
    /// the campaign's every raw file again.
    fn seed(&self, ctx: &SessionContext) {
        for (spec, metas) in tables::RAW_TABLES.iter().zip(&self.metas) {
            tables::seed_listing(ctx, spec, metas.clone());
        }
    }

    /// The last day with raw data, never before the campaign's start.
    fn last_day(&self, campaign_start: NaiveDate) -> NaiveDate {
        self.days
            .last()
            .copied()
            .unwrap_or(campaign_start)
            .max(campaign_start)
    }

    fn has_quarantine(&self) -> bool {
        self.files.keys().any(|p| p.starts_with(lake::QUARANTINE))
    }

    /// Raw bytes of the visits and cases of the days `days` admits.
    fn bytes_of(&self, days: impl Fn(NaiveDate) -> bool) -> u64 {
        self.files
            .iter()
            .filter(|(p, _)| !p.starts_with(lake::QUARANTINE))
            .filter(|(p, _)| store::day_of(p).is_some_and(&days))
            .map(|(_, f)| f.size)
            .sum()
    }

    /// Raw bytes of the visits and cases of `day` and every day after.
    fn bytes_from(&self, day: NaiveDate) -> u64 {
        self.bytes_of(|d| d >= day)
    }

    /// Raw bytes of one day's visits and cases.
    fn day_bytes(&self, day: NaiveDate) -> u64 {
        self.bytes_of(|d| d == day)
    }

    /// `days` in order, cut into groups curated by one query each: small
    /// days (late arrivals, a refresh) are mostly fixed per-query costs,
    /// paid once for the group, while a large day is curated alone so that
    /// peak memory stays that of one day.
    fn curation_groups(&self, days: &BTreeSet<NaiveDate>) -> Vec<Vec<NaiveDate>> {
        let mut groups: Vec<Vec<NaiveDate>> = Vec::new();
        let mut group_bytes = 0;
        for &day in days {
            let bytes = self.day_bytes(day);
            let fits = groups.last().is_some_and(|g| {
                g.len() < CURATE_AT_ONCE && group_bytes + bytes <= CURATE_BYTES_AT_ONCE
            });
            if fits {
                groups.last_mut().expect("checked above").push(day);
                group_bytes += bytes;
            } else {
                groups.push(vec![day]);
                group_bytes = bytes;
            }
        }
        groups
    }
}

/// Most raw bytes of the days a run recomputes for it to count as small:
/// queried without dynamic filters ([`tables::without_dynamic_filters`]).
const SMALL_RUN_BYTES: u64 = 64 * 1024 * 1024;

/// Most days curated by one query.
const CURATE_AT_ONCE: usize = 4;
/// Most raw bytes of the days curated by one query.
const CURATE_BYTES_AT_ONCE: u64 = 64 * 1024 * 1024;

/// Clear the curated files of a day that no longer has raw files.
async fn clear_curated(store: &Arc<dyn ObjectStore>, day: NaiveDate) -> Result<()> {
    for table in ["visits", "cases", "hardships", "hazards"] {
        store::delete_prefix(store, &format!("curated/{table}/{}", dt_partition(day))).await?;
    }
    Ok(())
}

/// Where the rollups of a run start.
struct RollupStart {
    /// The first day recomputed.
    from: NaiveDate,
    /// The days recomputed: `from` to the last day.
    days: Vec<NaiveDate>,
    /// Whether they continue the previous run's rollups and state.
    has_previous: bool,
}

/// Rollups from `from` on, if they can continue the previous run's:
/// that needs the cumulative rows of the day before, the reporters' first
/// days and the targets' first days of every day before; without any of
/// them, they start from the beginning. Registers `previous_cumulative`
/// and `previous_reporter_firsts` when continuing.
async fn rollup_start(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    opts: &AggregateOptions,
    mut from: NaiveDate,
    last_day: NaiveDate,
) -> Result<RollupStart> {
    let mut has_previous = false;
    if let Some(before) = from.pred_opt().filter(|_| from > opts.campaign_start) {
        let cumulative = format!(
            "rollups/cumulative/{}/part-00000.parquet",
            dt_partition(before)
        );
        let found = futures::try_join!(
            store::exists(store, &cumulative),
            store::exists(store, rollup::REPORTER_FIRSTS),
            target_firsts::covers(store, opts.campaign_start, from)
        )?;
        if found == (true, true, true) {
            futures::try_join!(
                tables::register_file(ctx, "previous_cumulative", &cumulative),
                tables::register_file(ctx, "previous_reporter_firsts", rollup::REPORTER_FIRSTS)
            )?;
            has_previous = true;
        }
    }
    if !has_previous {
        from = opts.campaign_start;
    }
    let days = from.iter_days().take_while(|d| *d <= last_day).collect();
    Ok(RollupStart {
        from,
        days,
        has_previous,
    })
}

/// What the rollup step must recompute.
#[derive(Debug)]
struct RollupPlan {
    /// Last day of the previous rollups, when they can be continued.
    continue_after: Option<NaiveDate>,
    /// First day whose raw files changed.
    first_changed: Option<NaiveDate>,
    /// Last day with raw data (or the campaign's start).
    last_day: NaiveDate,
    /// What becomes of `case_state`.
    case_state: CaseStateWork,
    /// Days whose quality figures changed (`None`: all).
    quality_days: Option<BTreeSet<NaiveDate>>,
    /// Whether the lake has quarantine files.
    has_quarantine: bool,
}

/// What the rollup step does with `case_state`.
#[derive(Debug)]
enum CaseStateWork {
    /// Nothing was curated again: it stands.
    Keep,
    /// Recompute every case.
    Rebuild,
    /// These days were curated again: recompute the cases they touch.
    Update(BTreeSet<NaiveDate>),
}

/// The first day rollups are recomputed from: the day after those the
/// previous rollups continue to (`continue_after`), or the first day
/// whose raw files changed if earlier; without previous rollups, the
/// campaign's start.
fn rollups_from(
    continue_after: Option<NaiveDate>,
    first_changed: Option<NaiveDate>,
    opts: &AggregateOptions,
) -> NaiveDate {
    match continue_after {
        Some(through) => {
            let next = through + chrono::Days::new(1);
            first_changed.map_or(next, |day| day.min(next))
        }
        None => opts.campaign_start,
    }
    .max(opts.campaign_start)
}

/// Step 2 (and the quality table). Returns whether rollups now cover
/// every day up to `plan.last_day` (false when there are no curated visits).
async fn rollup_step(
    ctx: &SessionContext,
    store: &Arc<dyn ObjectStore>,
    opts: &AggregateOptions,
    plan: &RollupPlan,
    report: &mut AggregateReport,
    progress: &dyn Progress,
) -> Result<bool> {
    if !ctx.table_exist("curated_visits").unwrap_or(false) {
        return Ok(false);
    }
    let last_day = plan.last_day;
    let from = rollups_from(plan.continue_after, plan.first_changed, opts);
    let mut start = timed(
        "rollup start",
        rollup_start(ctx, store, opts, from, last_day),
    )
    .await?;
    // A refresh holds its background writes until its rollup queries run
    // one at a time ([`rollup::compute`] opens the gate); a rebuild lets
    // them go at once.
    let (gate, writes) = store::WriteGate::closed();
    if !start.has_previous {
        writes.open();
    }
    // On a refresh, the tables of visits alone are built while
    // `case_state` is updated: both are mostly fixed per-query costs. A
    // rebuild does one after the other, so that peak memory stays that of
    // the larger.
    let case_state = async {
        Ok(match &plan.case_state {
            CaseStateWork::Keep => None,
            CaseStateWork::Rebuild => Some(
                timed(
                    "case_state",
                    curated::case_state::rebuild(ctx, store, gate.clone()),
                )
                .await?,
            ),
            CaseStateWork::Update(days) => Some(
                timed(
                    "case_state update",
                    curated::case_update::update(ctx, store, days, gate.clone()),
                )
                .await?,
            ),
        })
    };
    let visit_tables = timed(
        "visit tables",
        rollup::materialize_visit_tables(
            ctx,
            store,
            &start.days,
            opts.campaign_start,
            start.has_previous,
        ),
    );
    let (case_state, mut target_firsts) = if matches!(plan.case_state, CaseStateWork::Update(_)) {
        futures::try_join!(case_state, visit_tables)?
    } else {
        let case_state = case_state.await?;
        (case_state, visit_tables.await?)
    };
    // A new `case_state` is registered in memory and written meanwhile;
    // one that stands is read from the lake.
    if case_state.is_none() {
        tables::register(ctx, store, &tables::CASE_STATE).await?;
    }
    if plan.continue_after.is_some() {
        // A resolution stamped before its case was opened counts on an
        // earlier day than the opening: start there (rare, so the visit
        // tables are built again rather than waiting for `case_state`).
        if let Some(day) = timed(
            "early resolutions",
            rollup::earliest_resolution_before(ctx, start.from),
        )
        .await?
        {
            let earlier = start.from.min(day).max(opts.campaign_start);
            if earlier < start.from {
                start = rollup_start(ctx, store, opts, earlier, last_day).await?;
                target_firsts = rollup::materialize_visit_tables(
                    ctx,
                    store,
                    &start.days,
                    opts.campaign_start,
                    start.has_previous,
                )
                .await?;
            }
        }
    }
    let days = start.days;
    let continuing = start.has_previous;
    let mut background: Vec<(&str, store::BackgroundWrite)> = Vec::new();
    if let Some(write) = case_state {
        background.push(("case_state", write));
    }
    if !days.is_empty() {
        progress.step("rollup", days.len() as u64 * 2);
        tables::register_days(ctx, start.from, last_day, opts.overdue_hours)?;
        // The visit tables are final: their state is encoded while the
        // rollups are computed.
        background.push((
            rollup::REPORTER_FIRSTS,
            rollup::write_reporter_firsts(ctx, store, gate.clone()),
        ));
        background.push((
            target_firsts::TARGET_FIRSTS,
            target_firsts::write(store, target_firsts, gate),
        ));
    }
    let rollups = if days.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        Box::pin(rollup::compute(ctx, &days, continuing, &writes)).await?
    };
    writes.open();
    // The quality table's queries overlap the encoding of rollup files.
    let (rollup_files, quality_files) = futures::try_join!(
        write_rollups(store, &days, rollups, progress),
        timed(
            "quality",
            rollup::write_quality(ctx, store, plan.has_quarantine, plan.quality_days.as_ref()),
        )
    )?;
    report.files_written += rollup_files + quality_files;
    report.rollup_days = days;
    for (what, write) in background {
        report.files_written += usize::from(error::joined(write, what).await?);
    }
    Ok(true)
}

/// Recompute every rollup from the curated tables as they are (no
/// curation): what `gridstat bench rollup` measures against DuckDB.
pub async fn rebuild_rollups(
    store: Arc<dyn ObjectStore>,
    registry: &Registry,
    opts: &AggregateOptions,
) -> Result<AggregateReport> {
    let mut report = AggregateReport::default();
    let started = Instant::now();
    let raw = RawListing::of(&store).await?;
    let last_day = raw.last_day(opts.campaign_start);
    let ctx = tables::session(Arc::clone(&store));
    tables::register_inputs(&ctx, &store, registry, true).await?;
    raw.seed(&ctx);
    let plan = RollupPlan {
        continue_after: None,
        first_changed: None,
        last_day,
        case_state: CaseStateWork::Rebuild,
        quality_days: None,
        has_quarantine: raw.has_quarantine(),
    };
    let covered = rollup_step(&ctx, &store, opts, &plan, &mut report, &NoProgress).await?;
    report.timings.push(("rollup".into(), started.elapsed()));
    // Later incremental runs continue these rollups, so record how they
    // were computed.
    if let Some(mut state) = store::read_state(&store, lake::AGGREGATE_STATE).await? {
        state.rollups = covered.then(|| store::RollupMark::of(opts, registry, last_day));
        store::write_state(&store, lake::AGGREGATE_STATE, &state).await?;
    }
    Ok(report)
}

/// Await `step`, logging how long it took (`GRIDSTAT_LOG=gridstat_aggregate=debug`).
async fn timed<T>(name: &str, step: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = step.await;
    tracing::debug!(
        step = name,
        seconds = started.elapsed().as_secs_f64(),
        "Step done."
    );
    out
}

/// What changed in the raw lake since the last run.
#[derive(Debug, Default)]
struct Changes {
    /// Days whose raw visit or case files are new, rewritten or gone.
    days: BTreeSet<NaiveDate>,
    /// Days whose quarantine files are new, rewritten or gone.
    quarantine_days: BTreeSet<NaiveDate>,
    /// Whether any file is gone (rollups are then recomputed from scratch).
    removed: bool,
}

impl Changes {
    fn everything(now: &BTreeMap<String, store::Fingerprint>) -> Self {
        Self::between(&BTreeMap::new(), now)
    }

    fn between(
        before: &BTreeMap<String, store::Fingerprint>,
        now: &BTreeMap<String, store::Fingerprint>,
    ) -> Self {
        let mut changes = Changes::default();
        let gone: Vec<&String> = before.keys().filter(|p| !now.contains_key(*p)).collect();
        changes.removed = !gone.is_empty();
        let changed = now
            .iter()
            .filter(|(p, fp)| before.get(*p) != Some(fp))
            .map(|(p, _)| p)
            .chain(gone);
        for path in changed {
            let Some(day) = store::day_of(path) else {
                continue;
            };
            if path.starts_with(lake::QUARANTINE) {
                changes.quarantine_days.insert(day);
            } else {
                changes.days.insert(day);
            }
        }
        changes
    }
}

/// Write the rows of one day (without the `dt` column) to `PREFIX/dt=DAY/part-00000.parquet`.
/// Write the daily and cumulative rollup files of `days` from `rollups`
/// (daily, cumulative; each with a `dt` column); how many changed.
async fn write_rollups(
    store: &Arc<dyn ObjectStore>,
    days: &[NaiveDate],
    (daily, cumulative): (Vec<RecordBatch>, Vec<RecordBatch>),
    progress: &dyn Progress,
) -> Result<usize> {
    let written = Instant::now();
    let (daily, cumulative) = (Arc::new(daily), Arc::new(cumulative));
    let files = days.iter().flat_map(|&day| {
        [
            ("rollups/daily", day, Arc::clone(&daily)),
            ("rollups/cumulative", day, Arc::clone(&cumulative)),
        ]
    });
    // Encoding is CPU work: two files at a time keep both cores busy.
    let mut writes = futures::stream::iter(
        files.map(|(prefix, day, batches)| write_day(store, prefix, day, batches)),
    )
    .buffer_unordered(2);
    let mut changed = 0;
    while let Some(wrote) = writes.try_next().await? {
        changed += wrote;
        progress.advance();
    }
    tracing::debug!(
        seconds = written.elapsed().as_secs_f64(),
        "Rollup files written."
    );
    Ok(changed)
}

async fn write_day(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    day: NaiveDate,
    batches: Arc<Vec<RecordBatch>>,
) -> Result<usize> {
    let path = format!("{prefix}/{}/part-00000.parquet", dt_partition(day));
    let started = Instant::now();
    let encoded = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || encode_day(&batches, day, &path))
    };
    let body = error::joined(encoded, &path).await?;
    let encoded = started.elapsed().as_secs_f64();
    let wrote = match body {
        Some(body) => usize::from(store::put_if_changed(store, &path, body).await?),
        None => 0,
    };
    tracing::trace!(
        path,
        encode = encoded,
        put = started.elapsed().as_secs_f64() - encoded,
        "Rollup file done."
    );
    Ok(wrote)
}

/// The rows of `day` in `batches` (which hold a `dt` column) as the
/// Parquet object at `path`, without `dt`; `None` without batches.
fn encode_day(batches: &[RecordBatch], day: NaiveDate, path: &str) -> Result<Option<bytes::Bytes>> {
    let dt = day.format("%Y-%m-%d").to_string();
    let mut rows = Vec::new();
    let mut schema = None;
    for b in batches {
        let idx = b.schema().index_of("dt")?;
        let mask = arrow::compute::kernels::cmp::eq(
            b.column(idx).as_string::<i32>(),
            &arrow::array::StringArray::new_scalar(dt.clone()),
        )?;
        let mut kept = filter_record_batch(b, &mask)?;
        kept.remove_column(idx);
        schema.get_or_insert_with(|| kept.schema());
        if kept.num_rows() > 0 {
            rows.push(kept);
        }
    }
    let Some(schema) = schema else {
        return Ok(None);
    };
    let mut body = store::ParquetBody::rollup(path, &schema)?;
    for b in &rows {
        body.write(b)?;
    }
    body.finish().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(size: u64) -> store::Fingerprint {
        store::Fingerprint {
            size,
            e_tag: None,
            last_modified: "2022-11-26T00:00:00+00:00".into(),
        }
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2022, 11, d).unwrap()
    }

    #[test]
    fn changes_name_the_days_of_new_rewritten_and_removed_files() {
        let before: BTreeMap<String, store::Fingerprint> = [
            ("raw/visits/dt=2022-11-25/county=440703/a.parquet", 1),
            ("raw/visits/dt=2022-11-26/county=440703/b.parquet", 1),
            ("quarantine/dt=2022-11-26/q.parquet", 1),
        ]
        .into_iter()
        .map(|(p, s)| (p.to_string(), fingerprint(s)))
        .collect();
        let mut now = before.clone();
        let same = Changes::between(&before, &now);
        assert!(same.days.is_empty() && same.quarantine_days.is_empty() && !same.removed);

        now.insert(
            "raw/cases/dt=2022-11-27/county=440703/c.parquet".into(),
            fingerprint(1),
        );
        now.insert(
            "raw/visits/dt=2022-11-26/county=440703/b.parquet".into(),
            fingerprint(2),
        );
        now.insert("quarantine/dt=2022-11-28/r.parquet".into(), fingerprint(1));
        let grown = Changes::between(&before, &now);
        assert_eq!(grown.days, BTreeSet::from([day(26), day(27)]));
        assert_eq!(grown.quarantine_days, BTreeSet::from([day(28)]));
        assert!(!grown.removed);

        now.remove("raw/visits/dt=2022-11-25/county=440703/a.parquet");
        let shrunk = Changes::between(&before, &now);
        assert!(shrunk.removed, "a removed file forces a full rollup");
        assert!(shrunk.days.contains(&day(25)));

        let all = Changes::everything(&before);
        assert_eq!(all.days, BTreeSet::from([day(25), day(26)]));
        assert_eq!(all.quarantine_days, BTreeSet::from([day(26)]));
    }

    /// The daily and cumulative files hold the catalogue's rollup columns,
    /// in its order and with its types. Their nullability is the
    /// catalogue's but for the distinct reporter counts, which the files
    /// declare never null.
    #[tokio::test]
    async fn rollup_files_have_the_catalogues_columns() {
        use arrow::datatypes::{DataType, Schema};
        use object_store::ObjectStoreExt;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let registry = Registry::jiangmen();
        let campaign = gridstat_schemas::generate::GenOptions {
            days: 2,
            scale: 0.002,
            ..Default::default()
        };
        test_support::write_raw_lake(&store, &registry, campaign).await;
        let opts = AggregateOptions::default();
        let report = run(Arc::clone(&store), &registry, &opts, &NoProgress)
            .await
            .unwrap();
        assert_eq!(report.rollup_days.len(), 2, "{report:?}");
        let columns = |schema: &Schema| -> Vec<(String, DataType)> {
            schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect()
        };
        let catalogue = gridstat_schemas::metrics::rollup_schema();
        let expected = columns(&catalogue);
        let nullable = |schema: &Schema| -> Vec<bool> {
            schema.fields().iter().map(|f| f.is_nullable()).collect()
        };
        let expected_nullable: Vec<bool> = catalogue
            .fields()
            .iter()
            .map(|f| {
                let reporters = gridstat_schemas::metrics::Metric::from_name(f.name())
                    .is_some_and(|m| m.is_reporter_count());
                f.is_nullable() && !reporters
            })
            .collect();
        for table in ["rollups/daily", "rollups/cumulative"] {
            for day in &report.rollup_days {
                let path = format!("{table}/{}/part-00000.parquet", dt_partition(*day));
                let object = store.get(&path.as_str().into()).await.unwrap();
                let file = ParquetRecordBatchReaderBuilder::try_new(object.bytes().await.unwrap())
                    .unwrap();
                assert_eq!(columns(file.schema()), expected, "{path}");
                assert_eq!(nullable(file.schema()), expected_nullable, "{path}");
            }
        }
    }
}
