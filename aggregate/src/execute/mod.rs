//! The executor: it carries out a [`Plan`] against the lake, in a
//! DataFusion session. It owns the order and overlap of the steps, the
//! background writes, the timings and the progress; the modules it calls
//! ([`crate::curated`], [`crate::rollup`], [`crate::target_firsts`]) each
//! build their tables. What only the lake can tell it finds out and hands
//! back to the plan.

mod rollups;

use std::sync::Arc;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use datafusion::execution::context::SessionContext;
use gridstat_schemas::lake;
use gridstat_schemas::Registry;
use object_store::ObjectStore;

use crate::curated::{self, dedup::WrittenSchemas};
use crate::error::Result;
use crate::lease::{KeptLease, Lease, LEASE_TTL};
use crate::listing::RawListing;
use crate::manifest;
use crate::plan::{CurationGroup, Plan, RollupPlan, RunPlan};
use crate::store::{self, AggregateState};
use crate::{tables, AggregateOptions, AggregateReport, NoProgress, Progress};

/// A run in progress: its session over the lake, and what it reports.
struct Executor<'a> {
    ctx: SessionContext,
    store: Arc<dyn ObjectStore>,
    opts: &'a AggregateOptions,
    progress: &'a dyn Progress,
    report: AggregateReport,
    /// Checked before each step that writes.
    lease: &'a KeptLease,
}

/// Scan the lake, plan, and carry the plan out (see [`crate::run`]).
pub(crate) async fn run(
    store: Arc<dyn ObjectStore>,
    registry: &Registry,
    opts: &AggregateOptions,
    progress: &dyn Progress,
) -> Result<AggregateReport> {
    let started = Instant::now();
    let lease = Lease::acquire(&store, &opts.run_by, Utc::now(), LEASE_TTL)
        .await?
        .keep();
    let outcome = run_leased(store, registry, opts, progress, &lease, started).await;
    lease.release().await;
    outcome
}

/// [`run`] under its lease.
async fn run_leased(
    store: Arc<dyn ObjectStore>,
    registry: &Registry,
    opts: &AggregateOptions,
    progress: &dyn Progress,
    lease: &KeptLease,
    started: Instant,
) -> Result<AggregateReport> {
    // Every table of the run reads only committed raw files.
    let store = crate::committed::CommittedFiles::wrap(store).await?;
    let (listing, previous) = scan(&store, opts).await?;
    refuse_future_days(&listing, opts)?;
    let plan = Plan::new(
        previous.as_ref(),
        &listing,
        opts,
        &store::registry_fingerprint(registry),
    );
    let mut report = AggregateReport::default();
    report.timings.push(("scan".into(), started.elapsed()));
    let last_day = listing.days.last().copied();
    match plan {
        Plan::Idle => {
            // A lake from before manifests gets one without waiting for news.
            if manifest::newest(&store).await?.is_none() {
                lease.renew().await?;
                manifest::write(&store, last_day).await?;
            }
            Ok(report)
        }
        Plan::Run(plan) => {
            let run = Executor::new(Arc::clone(&store), opts, progress, report, lease);
            let report = run.carry_out(plan, listing, registry).await?;
            manifest::write(&store, last_day).await?;
            Ok(report)
        }
    }
}

/// Refuse raw data dated after the latest day the options accept.
fn refuse_future_days(listing: &RawListing, opts: &AggregateOptions) -> Result<()> {
    let Some(latest) = opts.latest_day else {
        return Ok(());
    };
    let Some(&day) = listing.days.last().filter(|d| **d > latest) else {
        return Ok(());
    };
    let late: Vec<&String> = listing
        .files
        .keys()
        .filter(|p| store::day_of(p).is_some_and(|d| d > latest))
        .collect();
    Err(crate::error::Error::FutureDays {
        day,
        latest,
        example: late.first().map_or_else(String::new, |p| (*p).clone()),
        others: late.len().saturating_sub(1),
    })
}

/// The listing of the raw tables and the last run's state (none with
/// `--all`), read together.
async fn scan(
    store: &Arc<dyn ObjectStore>,
    opts: &AggregateOptions,
) -> Result<(RawListing, Option<AggregateState>)> {
    futures::try_join!(RawListing::of(store), async {
        if opts.full {
            Ok(None)
        } else {
            store::read_state(store, lake::AGGREGATE_STATE).await
        }
    })
}

/// Recompute every rollup from the curated tables as they are (see
/// [`crate::rebuild_rollups`]).
pub(crate) async fn rebuild_rollups(
    store: Arc<dyn ObjectStore>,
    registry: &Registry,
    opts: &AggregateOptions,
) -> Result<AggregateReport> {
    let started = Instant::now();
    let lease = Lease::acquire(&store, &opts.run_by, Utc::now(), LEASE_TTL)
        .await?
        .keep();
    let outcome = rebuild_rollups_leased(store, registry, opts, &lease, started).await;
    lease.release().await;
    outcome
}

/// [`rebuild_rollups`] under its lease.
async fn rebuild_rollups_leased(
    store: Arc<dyn ObjectStore>,
    registry: &Registry,
    opts: &AggregateOptions,
    lease: &KeptLease,
    started: Instant,
) -> Result<AggregateReport> {
    let store = crate::committed::CommittedFiles::wrap(store).await?;
    let listing = RawListing::of(&store).await?;
    let last_listed = listing.days.last().copied();
    let mut run = Executor::new(
        Arc::clone(&store),
        opts,
        &NoProgress,
        AggregateReport::default(),
        lease,
    );
    tables::register_inputs(&run.ctx, &run.store, registry, true).await?;
    listing.seed(&run.ctx);
    let plan = RollupPlan::rebuild(&listing, opts);
    let last_day = plan.last_day;
    let covered = run.rollup_step(plan).await?;
    run.report
        .timings
        .push(("rollup".into(), started.elapsed()));
    // Later incremental runs continue these rollups, so record how they
    // were computed.
    lease.renew().await?;
    if let Some(mut state) = store::read_state(&run.store, lake::AGGREGATE_STATE).await? {
        state.rollups = covered.then(|| store::RollupMark::of(opts, registry, last_day));
        store::write_state(&run.store, lake::AGGREGATE_STATE, &state).await?;
    }
    manifest::write(&store, last_listed).await?;
    Ok(run.report)
}

impl<'a> Executor<'a> {
    fn new(
        store: Arc<dyn ObjectStore>,
        opts: &'a AggregateOptions,
        progress: &'a dyn Progress,
        report: AggregateReport,
        lease: &'a KeptLease,
    ) -> Self {
        Self {
            ctx: tables::session(Arc::clone(&store)),
            store,
            opts,
            progress,
            report,
            lease,
        }
    }

    /// Curate, recompute the rollups and record what the run saw.
    async fn carry_out(
        mut self,
        plan: RunPlan,
        listing: RawListing,
        registry: &Registry,
    ) -> Result<AggregateReport> {
        if plan.small {
            tables::without_dynamic_filters(&self.ctx)?;
        }
        timed(
            "register tables",
            tables::register_inputs(&self.ctx, &self.store, registry, false),
        )
        .await?;
        listing.seed(&self.ctx);
        let t = Instant::now();
        // A submission sent again onto another day is counted once: the
        // days holding its other copies are curated with it.
        let resends = timed(
            "resends",
            curated::resends::resolve(&self.ctx, &self.store, &plan.days(), &listing.days),
        )
        .await?;
        let plan = plan.with_days(&resends.more_days, &listing);
        curated::resends::register_superseded(&self.ctx, &resends)?;
        let written_schemas = self.curate(&plan, &listing).await?;
        let cleared: Vec<NaiveDate> = plan.curation.iter().flat_map(|g| g.clear.clone()).collect();
        self.lease.check()?;
        self.report.files_written +=
            curated::resends::write_index(&self.store, &resends.keys, &cleared).await?;
        self.report.timings.push(("curate".into(), t.elapsed()));

        let t = Instant::now();
        self.register_curated(&written_schemas).await?;
        curated::resends::register_conflicts(&self.ctx, &resends, &plan.days())?;
        self.lease.check()?;
        let covered = Box::pin(self.rollup_step(plan.rollups.clone())).await?;
        self.report.timings.push(("rollup".into(), t.elapsed()));
        let state = AggregateState {
            layout: store::LAYOUT,
            files: listing.files,
            rollups: plan.rollups_mark(covered),
        };
        // Recorded only while the lake is still this run's.
        self.lease.renew().await?;
        store::write_state(&self.store, lake::AGGREGATE_STATE, &state).await?;
        Ok(self.report)
    }

    /// Step 1: curate the plan's days, group by group; returns the schemas
    /// of the objects written last.
    async fn curate(&mut self, plan: &RunPlan, listing: &RawListing) -> Result<WrittenSchemas> {
        self.progress.step("curate", plan.days_curated() as u64);
        let mut written_schemas = WrittenSchemas::new();
        for group in &plan.curation {
            if let Some(schemas) = self.curate_group(group, listing).await? {
                written_schemas = schemas;
            }
        }
        Ok(written_schemas)
    }

    async fn curate_group(
        &mut self,
        group: &CurationGroup,
        listing: &RawListing,
    ) -> Result<Option<WrittenSchemas>> {
        self.lease.check()?;
        for &day in &group.clear {
            curated::dedup::clear_day(&self.store, day).await?;
        }
        let mut written_schemas = None;
        if !group.curate.is_empty() {
            let (days, schemas) = curated::dedup::curate_days(
                &self.ctx,
                &self.store,
                &group.curate,
                listing.day_listing(),
            )
            .await?;
            for d in days {
                self.report.files_written += d.files_written;
                self.report.visits_curated += d.visits;
            }
            written_schemas = Some(schemas);
        }
        for day in group.days() {
            self.report.days_curated.push(day);
            self.progress.advance();
        }
        Ok(written_schemas)
    }

    /// Register the curated tables as curation left them (`case_state` is
    /// registered once rewritten, in the rollup step), together: each
    /// reads the footers of its files.
    async fn register_curated(&self, written_schemas: &WrittenSchemas) -> Result<()> {
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
                        tables::register_as(&self.ctx, &self.store, spec, schema)
                    }),
            ),
        )
        .await?;
        Ok(())
    }
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
