//! `gridstat-bench rollup`: the rollup step alone (`case_state`, daily and
//! cumulative rollups at five levels, quality) over a local lake's curated
//! tables, side by side with DuckDB computing the same tables in SQL over
//! the same Parquet ([`gridstat_benchmarks::duckdb::rollup_script`]).
//!
//! No `gridstat` command runs the rollup step without curating first, so
//! gridstat's side is the aggregate library's
//! [`gridstat_aggregate::rebuild_rollups`] in this process (with the
//! binary's allocator and runtime settings, not its zstd context pool).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use gridstat_aggregate::AggregateOptions;
use gridstat_benchmarks::duckdb::{rollup_script, run_python};
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;

use crate::campaign::load_registry;
use crate::harness::runtime;

#[derive(Debug, Args)]
pub(crate) struct RollupArgs {
    /// The lake: a local directory already aggregated once.
    #[arg(long)]
    lake: PathBuf,
    /// First day of the campaign.
    #[arg(long, default_value_t = gridstat_schemas::time::DEFAULT_CAMPAIGN_START)]
    campaign_start: chrono::NaiveDate,
    /// Python with the `duckdb` package (e.g. a venv's bin/python).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Repetitions; the best of each is reported.
    #[arg(long, default_value_t = 2)]
    runs: u32,
}

/// DuckDB's side: runs the statements in the JSON file `argv[1]`, then
/// prints the time and a checksum of its cumulative table and of
/// gridstat's.
const DUCKDB_ROLLUP: &str = r#"
import duckdb, json, sys, time
stmts, ours, theirs = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
t = time.time()
steps = []
for s in stmts:
    started = time.time()
    con.execute(s)
    steps.append([s[:48], time.time() - started])
seconds = time.time() - t
check = "SELECT COUNT(*), CAST(SUM(visits) AS BIGINT), CAST(SUM(households_visited) AS BIGINT), CAST(SUM(hardships_open) AS BIGINT), CAST(SUM(reporters_active) AS BIGINT), ROUND(SUM(resolve_hours_median), 3) FROM read_parquet('{}')"
print(json.dumps({"seconds": seconds, "steps": steps,
                  "visits": con.execute("SELECT COUNT(*) FROM curated_visits").fetchone()[0],
                  "duckdb": [str(v) for v in con.execute(check.format(theirs)).fetchone()],
                  "gridstat": [str(v) for v in con.execute(check.format(ours)).fetchone()]}))
"#;

pub(crate) fn run(registry_dir: Option<&Path>, args: RollupArgs) -> anyhow::Result<()> {
    let registry = load_registry(registry_dir)?;
    let lake = &args.lake;
    anyhow::ensure!(
        lake.join("curated/visits").is_dir(),
        "{} has no curated visits: run `gridstat aggregate --lake {}` first",
        lake.display(),
        lake.display()
    );
    let lake = lake.canonicalize()?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(&lake)?);
    let opts = AggregateOptions {
        full: true,
        campaign_start: args.campaign_start,
        ..Default::default()
    };
    let runtime = runtime()?;
    let scratch = tempfile::tempdir()?;
    let (mut ours, mut duck) = (f64::MAX, f64::MAX);
    let mut checks = None;
    let (mut days, mut visits) = (0, 0);
    for _ in 0..args.runs.max(1) {
        let started = Instant::now();
        let report = runtime.block_on(gridstat_aggregate::rebuild_rollups(
            store.clone(),
            &registry,
            &opts,
        ))?;
        ours = ours.min(started.elapsed().as_secs_f64());
        let (Some(first), Some(last)) = (report.rollup_days.first(), report.rollup_days.last())
        else {
            anyhow::bail!("no rollup days in {}", lake.display());
        };
        days = report.rollup_days.len();
        let script = rollup_script(
            &lake,
            scratch.path(),
            &registry,
            *first,
            *last,
            gridstat_aggregate::OverdueLimits::of(&opts),
        )?;
        let script_file = scratch.path().join("script.json");
        std::fs::write(&script_file, serde_json::to_vec(&script)?)?;
        let out = run_python(
            &args.python,
            DUCKDB_ROLLUP,
            &[
                script_file,
                lake.join("rollups/cumulative/*/*.parquet"),
                scratch.path().join("cumulative.parquet"),
            ],
        )?;
        let result: serde_json::Value =
            serde_json::from_str(&out).context("reading DuckDB's output")?;
        visits = result["visits"].as_u64().unwrap_or_default();
        // Per-statement times, to set beside ours (GRIDSTAT_LOG=debug).
        for step in result["steps"].as_array().into_iter().flatten() {
            tracing::debug!(statement = %step[0], seconds = %step[1], "DuckDB step done.");
        }
        duck = duck.min(result["seconds"].as_f64().unwrap_or(f64::MAX));
        checks = Some((result["gridstat"].clone(), result["duckdb"].clone()));
    }
    let (mine, theirs) = checks.unwrap_or_default();
    println!(
        "rollup: {visits} curated visits, {days} days, best of {}",
        args.runs
    );
    println!("  gridstat (DataFusion)  {ours:7.2} s");
    println!("  DuckDB, in SQL         {duck:7.2} s");
    println!(
        "  ratio                  {:.2}x (DuckDB time / ours)",
        duck / ours
    );
    println!("  checksum gridstat {mine}");
    println!("  checksum DuckDB   {theirs}");
    anyhow::ensure!(mine == theirs, "the two computed different rollups");
    Ok(())
}
