//! `gridstat aggregate` and `gridstat sql`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use gridstat_aggregate::{AggregateOptions, AggregateReport, Progress};
use indicatif::{ProgressBar, ProgressStyle};

use super::lake::LakeArgs;

#[derive(Debug, Args)]
pub(crate) struct AggregateArgs {
    #[command(flatten)]
    pub(crate) lake: LakeArgs,
    /// Recompute every day, not only those new raw files touch.
    #[arg(long)]
    pub(crate) all: bool,
    /// Hours after which an open case counts as overdue: a hazard, or a
    /// hardship of normal urgency.
    #[arg(long, env = "GRIDSTAT_OVERDUE_HOURS", default_value_t = 72)]
    pub(crate) overdue_hours: i64,
    /// Hours after which an open urgent hardship counts as overdue.
    #[arg(long, env = "GRIDSTAT_URGENT_OVERDUE_HOURS", default_value_t = 24)]
    pub(crate) urgent_overdue_hours: i64,
    /// Hours after which an open hardship of low urgency counts as overdue.
    #[arg(long, env = "GRIDSTAT_LOW_OVERDUE_HOURS", default_value_t = 168)]
    pub(crate) low_overdue_hours: i64,
    /// First day of the campaign: rollups start here.
    #[arg(long, default_value = "2022-11-25", env = "GRIDSTAT_CAMPAIGN_START")]
    pub(crate) campaign_start: chrono::NaiveDate,
}

/// Progress bars on stderr.
pub(crate) struct Bars {
    bar: ProgressBar,
}

impl Bars {
    pub(crate) fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {elapsed}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Self { bar }
    }
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bars {
    fn step(&self, name: &str, units: u64) {
        self.bar.set_prefix(name.to_string());
        self.bar.set_position(0);
        self.bar.set_length(units);
    }
    fn advance(&self) {
        self.bar.inc(1);
    }
}

pub(crate) fn run(registry_dir: Option<&Path>, args: AggregateArgs) -> anyhow::Result<()> {
    let registry = super::load_registry(registry_dir)?;
    for (flag, hours) in [
        ("--overdue-hours", args.overdue_hours),
        ("--urgent-overdue-hours", args.urgent_overdue_hours),
        ("--low-overdue-hours", args.low_overdue_hours),
    ] {
        anyhow::ensure!(
            hours > 0,
            "{flag} must be a positive number of hours, not {hours}"
        );
    }
    let store = args.lake.open()?;
    let opts = AggregateOptions {
        full: args.all,
        overdue_hours: args.overdue_hours,
        urgent_overdue_hours: args.urgent_overdue_hours,
        low_overdue_hours: args.low_overdue_hours,
        campaign_start: args.campaign_start,
        latest_day: Some(super::latest_day()),
        run_by: super::this_process(),
    };
    let bars = Bars::new();
    let report =
        super::runtime()?.block_on(gridstat_aggregate::run(store, &registry, &opts, &bars))?;
    bars.finish();
    println!("{}", summary(&report));
    Ok(())
}

pub(crate) fn summary(r: &AggregateReport) -> String {
    if r.nothing_new() {
        return "Nothing new since the last run; no file changed.".into();
    }
    let span = |days: &[chrono::NaiveDate]| match (days.first(), days.last()) {
        (Some(a), Some(b)) if a == b => format!("{a}"),
        (Some(a), Some(b)) => format!("{a} … {b}"),
        _ => "none".into(),
    };
    let timings: Vec<String> = r
        .timings
        .iter()
        .map(|(n, d)| format!("{n} {:.2}s", d.as_secs_f64()))
        .collect();
    format!(
        "Curated {} day(s) ({}), {} visits; rollups recomputed for {} day(s) ({}); {} file(s) written. [{}]",
        r.days_curated.len(),
        span(&r.days_curated),
        r.visits_curated,
        r.rollup_days.len(),
        span(&r.rollup_days),
        r.files_written,
        timings.join(", ")
    )
}

#[derive(Debug, Args)]
pub(crate) struct SqlArgs {
    #[command(flatten)]
    pub(crate) lake: LakeArgs,
    /// The query (tables: raw_visits, raw_cases, quarantine, curated_visits, curated_cases, curated_hardships, curated_hazards, case_state, rollups_daily, rollups_cumulative, rollups_units, quality, resends, registry_grids).
    pub(crate) query: Option<String>,
    /// Read the query from a file.
    #[arg(long, conflicts_with = "query")]
    pub(crate) file: Option<PathBuf>,
    /// Write the result to a file instead of printing a table.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Format of --out (default: from its extension).
    #[arg(long, value_enum)]
    pub(crate) format: Option<OutFormat>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum OutFormat {
    Csv,
    Parquet,
}

pub(crate) fn sql(registry_dir: Option<&Path>, args: SqlArgs) -> anyhow::Result<()> {
    let query = match (&args.query, &args.file) {
        (Some(q), _) => q.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, None) => anyhow::bail!("give a query, or --file q.sql"),
    };
    let registry = super::load_registry(registry_dir)?;
    let store = args.lake.open()?;
    super::runtime()?.block_on(async move {
        let store = gridstat_aggregate::committed::CommittedFiles::wrap(store).await?;
        let batches = super::read_snapshot(&store, |snapshot| {
            let (query, registry) = (&query, &registry);
            async move {
                let ctx = gridstat_aggregate::tables::session(Arc::clone(&snapshot));
                gridstat_aggregate::tables::register_all(&ctx, &snapshot, registry).await?;
                let df = ctx.sql(query).await.context("planning the query")?;
                df.collect().await.context("running the query")
            }
        })
        .await?;
        match &args.out {
            None => println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?),
            Some(path) => {
                let format =
                    args.format
                        .unwrap_or(if path.extension().is_some_and(|e| e == "parquet") {
                            OutFormat::Parquet
                        } else {
                            OutFormat::Csv
                        });
                write_out(path, format, &batches)?;
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                println!("Wrote {rows} rows to {}", path.display());
            }
        }
        anyhow::Ok(())
    })
}

fn write_out(
    path: &Path,
    format: OutFormat,
    batches: &[arrow::array::RecordBatch],
) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    match format {
        OutFormat::Csv => {
            let mut w = arrow::csv::Writer::new(file);
            for b in batches {
                w.write(b)?;
            }
        }
        OutFormat::Parquet => {
            let Some(first) = batches.first() else {
                anyhow::bail!("the query returned no batches; nothing to write")
            };
            let mut w = parquet::arrow::ArrowWriter::try_new(file, first.schema(), None)?;
            for b in batches {
                w.write(b)?;
            }
            w.close()?;
        }
    }
    Ok(())
}
