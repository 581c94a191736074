//! Aggregate: DataFusion jobs that turn the raw lake into deduplicated
//! curated tables and grid → town → county → city rollups, incrementally.
//!
//! A run compares the raw files with those the last run saw, plans what
//! that changes, and carries the plan out: it curates the days whose raw
//! files changed, then recomputes the rollups from the first such day on.
//!
//! # Layout
//!
//! - [`tables`]: the lake's tables registered in a DataFusion session;
//! - `plan`: what a run must do, decided by pure functions from the last
//!   run's state, the listing of the raw tables and the options;
//! - `execute`: the executor, which carries a plan out — the order and
//!   overlap of its steps, background writes, timings and progress;
//! - [`curated`]: step 1, per-day deduplication and registry join
//!   (`dedup`), and `case_state`, rebuilt or updated;
//! - [`rollup`]: step 2, rollups at five levels, daily and cumulative,
//!   their columns from the metric catalogue
//!   ([`gridstat_schemas::metrics`]), and the data-quality table;
//! - `target_firsts`, `open_cases`, `percentiles`: rollup tables computed
//!   outside SQL;
//! - `listing`: the run's one listing of the raw tables;
//! - [`reference`]: step 2's queries as plain SQL, for other engines;
//! - [`store`]: listing, reading and writing lake objects, bookkeeping.
//!
//! ```
//! use gridstat_aggregate::rollup::FLOWS;
//! use gridstat_schemas::metrics::Metric;
//! // Households first visited are summed per grid and day, and so are the
//! // first visits of enterprises, behind their cumulative distinct count.
//! assert!(FLOWS.contains(&Metric::HouseholdsNew.name()));
//! assert!(FLOWS.contains(&"enterprises_new"));
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod committed;
pub mod curated;
pub mod error;
mod execute;
mod lease;
mod listing;
pub mod manifest;
mod open_cases;
mod percentiles;
mod plan;
pub mod reference;
pub mod rollup;
pub mod store;
pub mod tables;
mod target_firsts;
#[cfg(test)]
mod test_support;

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use gridstat_schemas::Registry;
use object_store::ObjectStore;

pub use error::{Error, Result};

/// Hours after which a case open at a day's end is overdue, by urgency
/// (hazards, which have none, as `normal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverdueLimits {
    /// Urgent hardships.
    pub urgent: i64,
    /// Hardships of normal urgency, and hazards.
    pub normal: i64,
    /// Hardships of low urgency.
    pub low: i64,
}

impl OverdueLimits {
    /// The limits of `opts`.
    pub fn of(opts: &AggregateOptions) -> Self {
        Self {
            urgent: opts.urgent_overdue_hours,
            normal: opts.overdue_hours,
            low: opts.low_overdue_hours,
        }
    }
}

/// Options of an aggregate run.
#[derive(Debug, Clone)]
pub struct AggregateOptions {
    /// Recompute everything, not only what new raw files touch.
    pub full: bool,
    /// A case open longer than this at day end is overdue: a hazard, or a
    /// hardship of normal urgency.
    pub overdue_hours: i64,
    /// The overdue limit of an urgent hardship.
    pub urgent_overdue_hours: i64,
    /// The overdue limit of a hardship of low urgency.
    pub low_overdue_hours: i64,
    /// First day of the campaign: rollups start here.
    pub campaign_start: NaiveDate,
    /// Raw data dated after this day is refused rather than rolled up
    /// (`None`: any day): one message dated years ahead would otherwise
    /// stretch every day × grid table to its date. The CLI passes tomorrow.
    pub latest_day: Option<NaiveDate>,
    /// Who runs it (host and process), recorded with the run's lease.
    pub run_by: String,
}

impl Default for AggregateOptions {
    fn default() -> Self {
        Self {
            full: false,
            overdue_hours: 72,
            urgent_overdue_hours: 24,
            low_overdue_hours: 168,
            campaign_start: gridstat_schemas::time::DEFAULT_CAMPAIGN_START,
            latest_day: None,
            run_by: format!("pid-{}", std::process::id()),
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

/// Run the two steps against the lake in `store`.
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
    execute::run(store, registry, opts, progress).await
}

/// Recompute every rollup from the curated tables as they are (no
/// curation): the rollup step alone, which the benchmarks measure against
/// DuckDB running [`reference`]'s queries.
pub async fn rebuild_rollups(
    store: Arc<dyn ObjectStore>,
    registry: &Registry,
    opts: &AggregateOptions,
) -> Result<AggregateReport> {
    execute::rebuild_rollups(store, registry, opts).await
}
