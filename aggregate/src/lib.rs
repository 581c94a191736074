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
pub mod error;
pub mod rollup;
pub mod store;
pub mod tables;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::filter_record_batch;
use chrono::NaiveDate;
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

const RAW_PREFIXES: [&str; 3] = [lake::RAW_VISITS, lake::RAW_CASES, lake::QUARANTINE];

/// Run the three steps against the lake in `store`.
pub async fn run(
    store: Arc<dyn ObjectStore>,
    registry: &Registry,
    opts: &AggregateOptions,
    progress: &dyn Progress,
) -> Result<AggregateReport> {
    let mut report = AggregateReport::default();
    let started = Instant::now();
    let mut seen = BTreeMap::new();
    for prefix in RAW_PREFIXES {
        seen.extend(store::list(&store, prefix).await?);
    }
    let previous = if opts.full {
        None
    } else {
        store::read_state(&store, lake::AGGREGATE_STATE).await?
    };
    let raw_days: BTreeSet<NaiveDate> = seen
        .keys()
        .filter(|p| !p.starts_with(lake::QUARANTINE))
        .filter_map(|p| store::day_of(p))
        .collect();
    let (touched, quarantine_changed) = match &previous {
        None => (raw_days.clone(), true),
        Some(prev) => changed_days(&prev.files, &seen),
    };
    report.timings.push(("scan".into(), started.elapsed()));
    if touched.is_empty() && !quarantine_changed {
        return Ok(report);
    }

    let ctx = tables::session(Arc::clone(&store));
    tables::register_all(&ctx, &store, registry).await?;
    let t = Instant::now();
    progress.step("curate", touched.len() as u64);
    for &day in &touched {
        if raw_days.contains(&day) {
            let d = curated::curate_day(&ctx, &store, day).await?;
            report.files_written += d.files_written;
            report.visits_curated += d.visits;
        } else {
            for table in ["visits", "cases", "hardships", "hazards"] {
                store::delete_prefix(&store, &format!("curated/{table}/{}", dt_partition(day)))
                    .await?;
            }
        }
        report.days_curated.push(day);
        progress.advance();
    }
    report.timings.push(("curate".into(), t.elapsed()));

    let t = Instant::now();
    let ctx = tables::session(Arc::clone(&store));
    tables::register_all(&ctx, &store, registry).await?;
    let last_day = raw_days
        .iter()
        .next_back()
        .copied()
        .unwrap_or(opts.campaign_start)
        .max(opts.campaign_start);
    tables::register_days(&ctx, opts.campaign_start, last_day, opts.overdue_hours)?;
    if ctx.table_exist("curated_visits").unwrap_or(false) {
        let (_, wrote) = curated::case_state(&ctx, &store).await?;
        report.files_written += usize::from(wrote);
        tables::register(&ctx, &store, &tables::TABLES[7]).await?;
        let from = if opts.full || previous.is_none() {
            opts.campaign_start
        } else {
            touched.iter().next().copied().unwrap_or(last_day)
        };
        let days: Vec<NaiveDate> = from
            .max(opts.campaign_start)
            .iter_days()
            .take_while(|d| *d <= last_day)
            .collect();
        progress.step("rollup", days.len() as u64 * 2 + 1);
        let (daily, cumulative) = rollup::compute(&ctx).await?;
        for &day in &days {
            report.files_written += write_day(&store, "rollups/daily", day, &daily).await?;
            progress.advance();
            report.files_written +=
                write_day(&store, "rollups/cumulative", day, &cumulative).await?;
            progress.advance();
        }
        report.rollup_days = days;
        let has_quarantine = seen.keys().any(|p| p.starts_with(lake::QUARANTINE));
        let df = ctx
            .sql(&rollup::quality_sql(has_quarantine))
            .await
            .map_err(error::query("quality"))?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let quality = df.collect().await.map_err(error::query("quality"))?;
        report.files_written += usize::from(
            store::write_parquet(
                &store,
                "rollups/quality/part-00000.parquet",
                schema,
                &quality,
            )
            .await?,
        );
        progress.advance();
    }
    report.timings.push(("rollup".into(), t.elapsed()));
    store::write_state(
        &store,
        lake::AGGREGATE_STATE,
        &store::AggregateState { files: seen },
    )
    .await?;
    Ok(report)
}

/// Days whose raw files are new, rewritten or gone; and whether quarantine changed.
fn changed_days(
    before: &BTreeMap<String, store::Fingerprint>,
    now: &BTreeMap<String, store::Fingerprint>,
) -> (BTreeSet<NaiveDate>, bool) {
    let mut days = BTreeSet::new();
    let mut quarantine = false;
    let changed = now
        .iter()
        .filter(|(p, fp)| before.get(*p) != Some(fp))
        .map(|(p, _)| p)
        .chain(before.keys().filter(|p| !now.contains_key(*p)));
    for path in changed {
        if path.starts_with(lake::QUARANTINE) {
            quarantine = true;
        } else if let Some(day) = store::day_of(path) {
            days.insert(day);
        }
    }
    (days, quarantine)
}

/// Write the rows of one day (without the `dt` column) to `PREFIX/dt=DAY/part-00000.parquet`.
async fn write_day(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    day: NaiveDate,
    batches: &[RecordBatch],
) -> Result<usize> {
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
    let Some(schema) = schema else { return Ok(0) };
    let path = format!("{prefix}/{}/part-00000.parquet", dt_partition(day));
    Ok(usize::from(
        store::write_parquet(store, &path, schema, &rows).await?,
    ))
}
