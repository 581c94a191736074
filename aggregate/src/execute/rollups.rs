//! The rollup step, as the executor runs it: `case_state` and the tables
//! of visits alone, then the tables that read them, the daily and
//! cumulative tables, their files and the quality table, with the state
//! the next run continues from written in the background.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};

use super::{timed, Executor};
use crate::curated;
use crate::error::{self, Result};
use crate::plan::{
    CaseStateTurn, CaseStateWork, CuratedTables, Pace, PreviousRollups, RollupPlan, RollupStart,
};
use crate::rollup::{self, files};
use crate::store::{BackgroundWrite, GateOpener, WriteGate};
use crate::tables;
use crate::target_firsts::{self, NewFirsts};

impl Executor<'_> {
    /// Step 2 (and the quality table). Returns whether rollups now cover
    /// every day up to the plan's last day (false when there are no
    /// curated visits).
    pub(super) async fn rollup_step(&mut self, plan: RollupPlan) -> Result<bool> {
        let found = CuratedTables {
            visits: self.ctx.table_exist("curated_visits").unwrap_or(false),
            case_state: self.ctx.table_exist("case_state").unwrap_or(false),
        };
        let Some(plan) = plan.given(found) else {
            return Ok(false);
        };
        let mut start = timed("rollup start", self.start(&plan, plan.from)).await?;
        // A refresh holds its background writes until its rollup queries
        // run one at a time (see `rollup_tables`); a rebuild lets them go
        // at once.
        let (gate, writes) = WriteGate::closed();
        if start.order.pace == Pace::InTurn {
            writes.open();
        }
        let (case_state, mut target_firsts) = self
            .case_state_and_visit_tables(&plan.case_state, &start, &gate)
            .await?;
        if let Some(earlier) = self.earlier_start(&plan, &start).await? {
            start = self.start(&plan, earlier).await?;
            target_firsts = self.visit_tables(&start).await?;
        }
        let mut background: Vec<(&str, BackgroundWrite)> = Vec::new();
        background.extend(case_state.map(|write| ("case_state", write)));
        let (rollups, units) = if start.days.is_empty() {
            ((Vec::new(), Vec::new()), Vec::new())
        } else {
            self.progress.step("rollup", start.days.len() as u64 * 2);
            tables::register_days(
                &self.ctx,
                start.from,
                plan.last_day,
                crate::OverdueLimits::of(self.opts),
            )?;
            background.extend(self.write_visit_state(target_firsts, gate));
            // The units table needs only `days` and the visit tables: on a
            // refresh its queries fill the gaps the rollups leave on the
            // cores; a rebuild runs them after, to keep its peak memory.
            match start.order.pace {
                Pace::Overlapped => futures::try_join!(
                    Box::pin(self.rollup_tables(&start, &writes)),
                    timed("units", self.units(&start))
                )?,
                Pace::InTurn => {
                    let rollups = Box::pin(self.rollup_tables(&start, &writes)).await?;
                    (rollups, timed("units", self.units(&start)).await?)
                }
            }
        };
        writes.open();
        self.report.files_written += self
            .write_rollups_and_quality(&plan, &start.days, rollups)
            .await?;
        self.report.files_written += self.write_units(&start.days, units).await?;
        self.report.rollup_days = start.days;
        for (what, write) in background {
            self.report.files_written += usize::from(error::joined(write, what).await?);
        }
        Ok(true)
    }

    /// Where the rollups must start instead of at `start`, if a case
    /// opened on or after it was resolved, assigned or escalated before it.
    async fn earlier_start(
        &self,
        plan: &RollupPlan,
        start: &RollupStart,
    ) -> Result<Option<NaiveDate>> {
        if !plan.checks_early_resolutions() {
            return Ok(None);
        }
        // A resolution stamped before its case was opened counts on an
        // earlier day than the opening: start there (rare, so the visit
        // tables are built again rather than waiting for `case_state`).
        let resolved = timed(
            "early resolutions",
            rollup::start::earliest_resolution_before(&self.ctx, start.from),
        )
        .await?;
        Ok(plan.earlier_start(start, resolved))
    }

    /// Write the state of the final visit tables in the background once
    /// `gate` opens: the reporters' and the targets' first days. They are
    /// encoded while the rollups are computed.
    fn write_visit_state(
        &self,
        target_firsts: NewFirsts,
        gate: WriteGate,
    ) -> [(&'static str, BackgroundWrite); 2] {
        [
            (
                rollup::reporters::REPORTER_FIRSTS,
                rollup::reporters::write_firsts(&self.ctx, &self.store, gate.clone()),
            ),
            (
                target_firsts::TARGET_FIRSTS,
                target_firsts::write(&self.store, target_firsts, gate),
            ),
        ]
    }

    /// Where rollups from `from` on start: the plan decides, given what
    /// the lake holds of the previous run's rollups. Registers
    /// `previous_cumulative` and `previous_reporter_firsts` when they
    /// continue them.
    async fn start(&self, plan: &RollupPlan, from: NaiveDate) -> Result<RollupStart> {
        // A start moved earlier must not read the units of the day before
        // the first start.
        self.ctx
            .deregister_table("previous_units")
            .map_err(crate::error::query("previous_units"))?;
        let before = plan.day_before(from);
        let found = match before {
            Some(before) => {
                rollup::start::find_previous(&self.store, self.opts.campaign_start, from, before)
                    .await?
            }
            None => PreviousRollups::default(),
        };
        let start = plan.start(from, found);
        if let Some(before) = before.filter(|_| start.continuing) {
            rollup::start::register_previous(&self.store, &self.ctx, before).await?;
        }
        Ok(start)
    }

    /// `case_state` (rebuilt, updated, or registered as it stands) and the
    /// tables of visits alone, in the plan's turn: its background write,
    /// if rewritten, and the targets' first days to keep as state.
    async fn case_state_and_visit_tables(
        &self,
        work: &CaseStateWork,
        start: &RollupStart,
        gate: &WriteGate,
    ) -> Result<(Option<BackgroundWrite>, NewFirsts)> {
        let case_state = self.case_state(work, gate);
        let visit_tables = timed("visit tables", self.visit_tables(start));
        // On a refresh, the tables of visits alone are built while
        // `case_state` is updated: both are mostly fixed per-query costs.
        // A rebuild does one after the other, so that peak memory stays
        // that of the larger.
        Ok(match start.order.case_state {
            CaseStateTurn::Beside => futures::try_join!(case_state, visit_tables)?,
            CaseStateTurn::Before => {
                let case_state = case_state.await?;
                (case_state, visit_tables.await?)
            }
            CaseStateTurn::After => {
                let target_firsts = visit_tables.await?;
                (case_state.await?, target_firsts)
            }
        })
    }

    /// A new `case_state` is registered in memory and written in the
    /// background once `gate` opens; one that stands is read from the
    /// lake.
    async fn case_state(
        &self,
        work: &CaseStateWork,
        gate: &WriteGate,
    ) -> Result<Option<BackgroundWrite>> {
        let (ctx, store) = (&self.ctx, &self.store);
        Ok(match work {
            CaseStateWork::Keep => {
                tables::register(ctx, store, &tables::CASE_STATE).await?;
                None
            }
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
    }

    /// Build the tables of visits alone for rollups of `start`'s days:
    /// `grid_targets`, the reporters' tables and `grid_firsts`. They need
    /// neither `case_state` nor the `days` table. Returns the targets'
    /// first days to keep as state ([`target_firsts::write`]).
    async fn visit_tables(&self, start: &RollupStart) -> Result<NewFirsts> {
        let Some(first) = start.days.first() else {
            return Ok(Default::default());
        };
        let from = first.format("%Y-%m-%d").to_string();
        let chunks = rollup::grid_day::day_chunks(&self.ctx, &start.days).await?;
        let targets = rollup::grid_day::build_grid_targets(&self.ctx, &chunks);
        let reporters = rollup::reporters::build(&self.ctx, &from, start.continuing);
        let firsts = target_firsts::materialize(
            &self.ctx,
            &self.store,
            &start.days,
            self.opts.campaign_start,
            start.continuing,
        );
        // A refresh's tables are a few days' rows, mostly fixed per-query
        // costs: built side by side. A rebuild builds one after the other,
        // so that peak memory stays that of the largest.
        match start.order.pace {
            Pace::Overlapped => {
                let ((), (), firsts) = futures::try_join!(targets, reporters, Box::pin(firsts))?;
                Ok(firsts)
            }
            Pace::InTurn => {
                targets.await?;
                reporters.await?;
                firsts.await
            }
        }
    }

    /// Daily and cumulative rollups for `start`'s days (registered in the
    /// `days` table), sorted by day, level (city first) and area code,
    /// both with a `dt` column. The visit tables must have been built for
    /// the same days. A refresh opens `writes` once its queries run one at
    /// a time.
    async fn rollup_tables(
        &self,
        start: &RollupStart,
        writes: &GateOpener,
    ) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>)> {
        let ctx = &self.ctx;
        let Some(first) = start.days.first() else {
            return Ok((Vec::new(), Vec::new()));
        };
        let from = first.format("%Y-%m-%d").to_string();
        let days = rollup::day_table(ctx).await?;
        let areas = rollup::areas::build(ctx, &from);
        let open_cases = rollup::grid_day::build_open_cases(ctx, &days);
        let hours = rollup::areas::build_resolve_hours(ctx, &days);
        // Independent tables of few rows, mostly planning: a refresh builds
        // the open cases and resolve times together, then the area tables
        // one query at a time beside its background writes; a rebuild one
        // after the other, so that peak memory stays that of the largest.
        match start.order.pace {
            Pace::Overlapped => {
                // Boxed: tables side by side make a future too large for a
                // thread's stack in a debug build.
                futures::try_join!(Box::pin(open_cases), Box::pin(hours))?;
                writes.open();
                areas.await?;
            }
            Pace::InTurn => {
                open_cases.await?;
                areas.await?;
                hours.await?;
            }
        }
        rollup::running::build(ctx).await?;
        futures::try_join!(
            rollup::final_tables::compute(ctx, false, start.continuing),
            rollup::final_tables::compute(ctx, true, start.continuing)
        )
    }

    /// The units table's rows of `start`'s days (see [`rollup::units`]),
    /// with a `dt` column; the visit tables and `days` must be built.
    async fn units(&self, start: &RollupStart) -> Result<Vec<RecordBatch>> {
        let Some(first) = start.days.first() else {
            return Ok(Vec::new());
        };
        let from = first.format("%Y-%m-%d").to_string();
        let previous = start.continuing && self.ctx.table_exist("previous_units").unwrap_or(false);
        rollup::units::build(&self.ctx, &from, previous).await?;
        let sql = format!("SELECT * FROM {}", rollup::units::UNITS_TABLE);
        Ok(tables::run_query(&self.ctx, "units", &sql).await?.1)
    }

    /// Write the units files of `days` from `units`; how many changed.
    async fn write_units(&self, days: &[NaiveDate], units: Vec<RecordBatch>) -> Result<usize> {
        if units.is_empty() {
            return Ok(0);
        }
        let units = Arc::new(units);
        let mut changed = 0;
        for &day in days {
            changed += files::write_day(&self.store, rollup::units::UNITS, day, Arc::clone(&units))
                .await?;
        }
        Ok(changed)
    }

    /// Write the rollup files of `days` and the quality table; how many
    /// objects changed.
    async fn write_rollups_and_quality(
        &self,
        plan: &RollupPlan,
        days: &[NaiveDate],
        rollups: (Vec<RecordBatch>, Vec<RecordBatch>),
    ) -> Result<usize> {
        // The quality table checks the new cumulative rollups' coverage.
        if let Some(first) = rollups.1.first() {
            tables::register_batches(
                &self.ctx,
                rollup::quality::NEW_CUMULATIVE,
                first.schema(),
                rollups.1.clone(),
            )?;
        }
        // The quality table's queries overlap the encoding of rollup files.
        let (rollup_files, quality_files) = futures::try_join!(
            self.write_rollups(days, rollups),
            timed(
                "quality",
                rollup::quality::write(
                    &self.ctx,
                    &self.store,
                    plan.has_quarantine,
                    plan.quality_days.as_ref(),
                    days,
                ),
            )
        )?;
        Ok(rollup_files + quality_files)
    }

    /// Write the daily and cumulative rollup files of `days` from
    /// `rollups` (daily, cumulative; each with a `dt` column); how many
    /// changed.
    async fn write_rollups(
        &self,
        days: &[NaiveDate],
        (daily, cumulative): (Vec<RecordBatch>, Vec<RecordBatch>),
    ) -> Result<usize> {
        let written = Instant::now();
        let (daily, cumulative) = (Arc::new(daily), Arc::new(cumulative));
        let day_files = days.iter().flat_map(|&day| {
            [
                (files::DAILY, day, Arc::clone(&daily)),
                (files::CUMULATIVE, day, Arc::clone(&cumulative)),
            ]
        });
        // Encoding is CPU work: two files at a time keep both cores busy.
        let mut writes = futures::stream::iter(
            day_files
                .map(|(prefix, day, batches)| files::write_day(&self.store, prefix, day, batches)),
        )
        .buffer_unordered(2);
        let mut changed = 0;
        while let Some(wrote) = writes.try_next().await? {
            changed += wrote;
            self.progress.advance();
        }
        tracing::debug!(
            seconds = written.elapsed().as_secs_f64(),
            "Rollup files written."
        );
        Ok(changed)
    }
}
