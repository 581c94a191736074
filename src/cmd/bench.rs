//! `gridstat bench`: reproducible measurements for docs/BENCHMARKS.md.

use std::path::Path;
use std::time::Instant;

use clap::{Args, Subcommand};
use gridstat_schemas::generate::{write_ndjson, Expect, Generator, Stream};

use super::gen::CampaignArgs;

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

impl BenchArgs {
    /// The lake of a benchmark that takes `--lake`.
    pub(crate) fn lake_mut(&mut self) -> Option<&mut super::lake::LakeArgs> {
        match &mut self.what {
            BenchWhat::Site { lake, .. } => Some(lake),
            _ => None,
        }
    }
}

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// Generate a campaign into memory (no disk) and report visits per second.
    Gen {
        #[command(flatten)]
        campaign: CampaignArgs,
        /// Repetitions; the best is reported.
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
    /// NDJSON → validated Parquet on local disk, side by side with DuckDB's
    /// `COPY (SELECT * FROM read_json(…, ignore_errors = true)) TO … (FORMAT parquet)`
    /// on the same file (DuckDB stops at the first malformed line otherwise).
    Ingest {
        #[command(flatten)]
        campaign: CampaignArgs,
        /// Python with the `duckdb` package (e.g. a venv's bin/python).
        #[arg(long, default_value = "python3")]
        python: String,
        /// Scratch directory (default: a temporary one).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Runs of each engine, taking turns; the best of each is compared.
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
    /// A one-day refresh (`gridstat aggregate` after the last day's files
    /// arrive) against a full rebuild (`--all`) of the same lake.
    Aggregate {
        #[command(flatten)]
        campaign: CampaignArgs,
        /// Scratch directory (default: a temporary one).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Runs of the refresh and of the rebuild, taking turns; the best
        /// of each is compared. Each refresh starts from the lake the
        /// first one started from, so it redoes the same work.
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
    /// The rollup step alone (`case_state`, daily and cumulative rollups at
    /// four levels) over a local lake's curated tables, side by side with
    /// DuckDB computing the same tables in SQL over the same Parquet.
    Rollup {
        /// The lake: a local directory already aggregated once.
        #[arg(long)]
        lake: std::path::PathBuf,
        /// First day of the campaign.
        #[arg(long, default_value = "2022-11-25")]
        campaign_start: chrono::NaiveDate,
        /// Python with the `duckdb` package (e.g. a venv's bin/python).
        #[arg(long, default_value = "python3")]
        python: String,
        /// Repetitions; the best of each is reported.
        #[arg(long, default_value_t = 2)]
        runs: u32,
    },
    /// Kafka → lake with 1, 2, 3… worker processes in one group, against a
    /// bare consumer's read rate on the same topics.
    Kafka(super::bench_kafka::KafkaBenchArgs),
    /// Build the public site and the internal dashboard from a lake's
    /// rollups: into fresh directories, then again over the first build.
    Site {
        #[command(flatten)]
        lake: super::lake::LakeArgs,
        /// Repetitions; the best is reported.
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
}

pub(crate) fn run(registry_dir: Option<&Path>, args: BenchArgs) -> anyhow::Result<()> {
    let registry = super::load_registry(registry_dir)?;
    match args.what {
        BenchWhat::Gen { campaign, runs } => {
            let opts = campaign.options()?;
            let mut best = f64::MAX;
            let (mut visits, mut messages, mut bytes) = (0u64, 0u64, 0u64);
            for _ in 0..runs.max(1) {
                let started = Instant::now();
                let mut counter = CountingSink(0);
                visits = 0;
                let gen = Generator::new(&registry, opts.clone()).inspect(|m| {
                    if m.expect == Expect::Valid && m.stream == Stream::Visits {
                        visits += 1;
                    }
                });
                messages = write_ndjson(&mut counter, gen)?;
                bytes = counter.0;
                best = best.min(started.elapsed().as_secs_f64());
            }
            println!(
                "gen: {visits} valid visits ({messages} messages, {:.0} MB NDJSON) in {best:.2} s (best of {runs}) = {:.0} visits/s",
                bytes as f64 / 1e6,
                visits as f64 / best
            );
        }
        BenchWhat::Ingest {
            campaign,
            python,
            dir,
            runs,
        } => bench_ingest(registry, campaign, &python, dir, runs)?,
        BenchWhat::Site { lake, runs } => bench_site(&lake, runs)?,
        BenchWhat::Aggregate {
            campaign,
            dir,
            runs,
        } => bench_aggregate(registry, campaign, dir, runs)?,
        BenchWhat::Kafka(args) => super::bench_kafka::run(registry_dir, args)?,
        BenchWhat::Rollup {
            lake,
            campaign_start,
            python,
            runs,
        } => bench_rollup(&registry, &lake, campaign_start, &python, runs)?,
    }
    Ok(())
}

fn bench_ingest(
    registry: gridstat_schemas::Registry,
    campaign: CampaignArgs,
    python: &str,
    dir: Option<std::path::PathBuf>,
    runs: u32,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let tmp = tempfile::tempdir()?;
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("campaign.ndjson");
    let lakes = dir.join("lake");
    if lakes.exists() {
        // Left by an interrupted invocation.
        remove_lakes(&lakes)?;
    }
    let opts = campaign.options()?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&file)?);
    let n = write_ndjson(&mut out, Generator::new(&registry, opts.clone()))?;
    // On disk before either engine starts: the kernel writing back the
    // fresh file must not slow whichever runs first.
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let registry = std::sync::Arc::new(registry);
    let runtime = super::runtime()?;
    let script = format!(
        "import duckdb, time\nduckdb.sql(\"SET enable_progress_bar = false\")\nt = time.time()\nduckdb.sql(\"COPY (SELECT * FROM read_json('{}', ignore_errors = true)) TO '{}' (FORMAT parquet)\")\nprint(time.time() - t)",
        file.display(),
        dir.join("duckdb.parquet").display()
    );
    let (mut ours, mut duck) = (Vec::new(), Vec::new());
    let mut report = None;
    // Each run writes a lake of its own, and all are removed after the
    // last, then the next invocation waits out the minutes in which ext4
    // still searches past their inodes (`wait_out_recent_cleanup`).
    wait_out_recent_cleanup();
    for run in 0..runs.max(1) {
        let store = empty_lake(&lakes.join(format!("run-{run}")))?;
        let started = Instant::now();
        report = Some(runtime.block_on(super::ingest::ingest_file(
            store,
            std::sync::Arc::clone(&registry),
            super::ingest::options(opts.start, 250_000),
            &file,
        ))?);
        ours.push(started.elapsed().as_secs_f64());
        duck.push(
            run_duckdb(python, &script, &[])?
                .trim()
                .parse::<f64>()
                .context("reading DuckDB's time")?,
        );
    }
    remove_lakes(&lakes)?;
    let report = report.expect("at least one run");
    let (ours_best, duck_best) = (best(&ours), best(&duck));
    println!(
        "ingest: {n} messages ({} rows written, {} quarantined), {} run(s) each, taking turns",
        report.rows_written,
        report.quarantined,
        ours.len()
    );
    println!(
        "  gridstat ingest  {ours_best:.2} s  {:>10.0} rows/s (validated, partitioned, zstd)  runs: {}",
        n as f64 / ours_best,
        runs_list(&ours)
    );
    println!(
        "  duckdb COPY      {duck_best:.2} s  {:>10.0} rows/s (no validation, one file)  runs: {}",
        n as f64 / duck_best,
        runs_list(&duck)
    );
    println!(
        "  ratio            {:.2}x (best against best)",
        duck_best / ours_best
    );
    Ok(())
}

/// The fastest of some runs' times.
fn best(times: &[f64]) -> f64 {
    times.iter().copied().fold(f64::MAX, f64::min)
}

/// Each run's time, as printed after the best.
fn runs_list(times: &[f64]) -> String {
    times
        .iter()
        .map(|t| format!("{t:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// DuckDB's side of `bench rollup`: runs the statements in the JSON file
/// `argv[1]`, then prints the time and a checksum of its cumulative table
/// and of gridstat's.
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

fn bench_rollup(
    registry: &gridstat_schemas::Registry,
    lake: &Path,
    campaign_start: chrono::NaiveDate,
    python: &str,
    runs: u32,
) -> anyhow::Result<()> {
    use anyhow::Context;
    anyhow::ensure!(
        lake.join("curated/visits").is_dir(),
        "{} has no curated visits: run `gridstat aggregate --lake {}` first",
        lake.display(),
        lake.display()
    );
    let store: std::sync::Arc<dyn object_store::ObjectStore> =
        std::sync::Arc::new(object_store::local::LocalFileSystem::new_with_prefix(lake)?);
    let opts = gridstat_aggregate::AggregateOptions {
        full: true,
        campaign_start,
        ..Default::default()
    };
    let runtime = super::runtime()?;
    let scratch = tempfile::tempdir()?;
    let (mut ours, mut duck) = (f64::MAX, f64::MAX);
    let mut checks = None;
    let (mut days, mut visits) = (0, 0);
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let report = runtime.block_on(gridstat_aggregate::rebuild_rollups(
            store.clone(),
            registry,
            &opts,
        ))?;
        ours = ours.min(started.elapsed().as_secs_f64());
        let (Some(first), Some(last)) = (report.rollup_days.first(), report.rollup_days.last())
        else {
            anyhow::bail!("no rollup days in {}", lake.display());
        };
        days = report.rollup_days.len();
        let script = gridstat_aggregate::duckdb::rollup_script(
            &lake.canonicalize()?,
            scratch.path(),
            registry,
            *first,
            *last,
            opts.overdue_hours,
        )?;
        let script_file = scratch.path().join("script.json");
        std::fs::write(&script_file, serde_json::to_vec(&script)?)?;
        let out = run_duckdb(
            python,
            DUCKDB_ROLLUP,
            &[
                script_file,
                lake.canonicalize()?.join("rollups/cumulative/*/*.parquet"),
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
    println!("rollup: {visits} curated visits, {days} days, best of {runs}");
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

/// Run a Python `script` (with the duckdb package) and return its stdout.
fn run_duckdb(python: &str, script: &str, args: &[std::path::PathBuf]) -> anyhow::Result<String> {
    use anyhow::Context;
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .with_context(|| format!("running {python}"))?;
    anyhow::ensure!(
        out.status.success(),
        "DuckDB failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// When a benchmark last removed lakes: a file in the temporary
/// directory, whatever `--dir` each invocation was given.
const CLEANUP_MARK: &str = "gridstat-bench-ingest-cleanup";

/// How long ext4 without a journal (this project's machine) keeps
/// searching past freed inodes: each time it creates a file it skips, one
/// by one, the inodes freed in the last minute, or in the last six if
/// their inode-table block is dirty. Writing the removal back does not
/// shorten that: the next lake's first files dirty the same blocks again.
/// Right after the previous invocation removed three lakes (1,200 files),
/// `recently_deleted` and the buffer lookups under it took 7 % of
/// gridstat's time, and its runs were 10 % slower (1.31 s against 1.17 s,
/// DuckDB's unchanged); a minute later it was still the same. DuckDB
/// writes one file.
const FREED_INODES_SKIPPED_FOR: std::time::Duration = std::time::Duration::from_secs(6 * 60 + 5);

/// Remove a directory of lakes and note when, for
/// [`wait_out_recent_cleanup`].
fn remove_lakes(dir: &Path) -> std::io::Result<()> {
    std::fs::remove_dir_all(dir)?;
    if let Err(e) = std::fs::write(std::env::temp_dir().join(CLEANUP_MARK), b"") {
        eprintln!("warning: could not note the removal of lakes: {e}");
    }
    Ok(())
}

/// Wait until six minutes have passed since an earlier invocation removed
/// its lakes, so that no run pays for the harness's own cleanup.
fn wait_out_recent_cleanup() {
    let mark = std::env::temp_dir().join(CLEANUP_MARK);
    let Ok(age) = std::fs::metadata(&mark).and_then(|m| m.modified()) else {
        return;
    };
    let Ok(age) = age.elapsed() else { return };
    if let Some(rest) = FREED_INODES_SKIPPED_FOR.checked_sub(age) {
        eprintln!(
            "waiting {:.0} s: the last lakes were removed {:.0} s ago, and ext4 without a journal searches past freed inodes for up to six minutes",
            rest.as_secs_f64(),
            age.as_secs_f64()
        );
        std::thread::sleep(rest);
    }
}

/// A lake in `dir`, emptied first.
fn empty_lake(dir: &Path) -> anyhow::Result<std::sync::Arc<dyn object_store::ObjectStore>> {
    if dir.exists() {
        remove_lakes(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(std::sync::Arc::new(
        object_store::local::LocalFileSystem::new_with_prefix(dir)?,
    ))
}

fn bench_aggregate(
    registry: gridstat_schemas::Registry,
    campaign: CampaignArgs,
    dir: Option<std::path::PathBuf>,
    runs: u32,
) -> anyhow::Result<()> {
    use gridstat_aggregate::{AggregateOptions, NoProgress};
    let tmp = tempfile::tempdir()?;
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    let opts = campaign.options()?;
    let last_day = opts.start + chrono::Days::new(u64::from(opts.days.max(1)) - 1);
    let last_day_ms = gridstat_schemas::time::local_midnight(last_day).timestamp_millis();
    // Messages sent before the last day, and those of the last day.
    let (mut before, mut last) = (Vec::new(), Vec::new());
    for m in Generator::new(&registry, opts.clone()) {
        let out = if m.sent_at_ms < last_day_ms {
            &mut before
        } else {
            &mut last
        };
        out.extend_from_slice(&m.bytes);
        out.push(b'\n');
    }
    std::fs::create_dir_all(&dir)?;
    let store = empty_lake(&dir.join("lake"))?;
    let registry = std::sync::Arc::new(registry);
    let runtime = super::runtime()?;
    let aggregate = |full: bool| -> anyhow::Result<(f64, String)> {
        let agg_opts = AggregateOptions {
            full,
            campaign_start: opts.start,
            ..AggregateOptions::default()
        };
        let started = Instant::now();
        let report = runtime.block_on(gridstat_aggregate::run(
            store.clone(),
            &registry,
            &agg_opts,
            &NoProgress,
        ))?;
        Ok((
            started.elapsed().as_secs_f64(),
            super::aggregate::summary(&report),
        ))
    };
    let mut before_refresh = Vec::new();
    for (name, bytes) in [("before.ndjson", &before), ("last-day.ndjson", &last)] {
        let file = dir.join(name);
        std::fs::write(&file, bytes)?;
        runtime.block_on(super::ingest::ingest_file(
            store.clone(),
            std::sync::Arc::clone(&registry),
            super::ingest::options(opts.start, 250_000),
            &file,
        ))?;
        if name == "before.ndjson" {
            aggregate(false)?;
            before_refresh = runtime.block_on(aggregate_outputs(&store))?;
        }
    }
    // The two take turns, so that a busy spell of a shared machine slows
    // both rather than one side's every run. Each refresh starts from the
    // outputs and state the first one started from, so that it redoes the
    // same work, writing every file the new day changes (left as the
    // rebuild wrote them, they would be found unchanged and not written).
    let (mut incremental, mut full, mut what) = (Vec::new(), Vec::new(), String::new());
    for _ in 0..runs.max(1) {
        runtime.block_on(restore_outputs(&store, &before_refresh))?;
        let (seconds, summary) = aggregate(false)?;
        incremental.push(seconds);
        what = summary;
        full.push(aggregate(true)?.0);
    }
    println!(
        "aggregate: {} days, {:.0} MB of messages before the last day, {:.0} MB on it",
        opts.days,
        before.len() as f64 / 1e6,
        last.len() as f64 / 1e6
    );
    println!(
        "  one-day refresh   {:7.2} s  ({what})  runs: {}",
        best(&incremental),
        runs_list(&incremental)
    );
    println!(
        "  full rebuild      {:7.2} s  runs: {}",
        best(&full),
        runs_list(&full)
    );
    println!(
        "  ratio             {:.1}x (best against best)",
        best(&full) / best(&incremental)
    );
    Ok(())
}

/// What `gridstat aggregate` writes: curated tables, rollups, its state.
const AGGREGATE_OUTPUTS: [&str; 3] = ["curated", "rollups", "_state"];

/// Every object under [`AGGREGATE_OUTPUTS`].
async fn aggregate_output_objects(
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
) -> anyhow::Result<Vec<object_store::ObjectMeta>> {
    use futures::TryStreamExt;
    let mut objects = Vec::new();
    for prefix in AGGREGATE_OUTPUTS {
        objects.extend(
            store
                .list(Some(&prefix.into()))
                .try_collect::<Vec<_>>()
                .await?,
        );
    }
    Ok(objects)
}

/// Every object under [`AGGREGATE_OUTPUTS`], with its bytes.
async fn aggregate_outputs(
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
) -> anyhow::Result<Vec<(object_store::path::Path, bytes::Bytes)>> {
    use object_store::ObjectStoreExt;
    let mut outputs = Vec::new();
    for meta in aggregate_output_objects(store).await? {
        let bytes = store.get(&meta.location).await?.bytes().await?;
        outputs.push((meta.location, bytes));
    }
    Ok(outputs)
}

/// Put the lake's aggregate outputs back to `outputs` exactly: objects
/// written since are deleted, changed ones put back, and unchanged ones
/// left alone (rewriting them all would leave the refresh timed next
/// amid the write-back of a hundred megabytes).
async fn restore_outputs(
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
    outputs: &[(object_store::path::Path, bytes::Bytes)],
) -> anyhow::Result<()> {
    use object_store::ObjectStoreExt;
    let now: std::collections::HashMap<_, _> = aggregate_output_objects(store)
        .await?
        .into_iter()
        .map(|meta| (meta.location, meta.size))
        .collect();
    let kept: std::collections::HashSet<_> = outputs.iter().map(|(path, _)| path).collect();
    for path in now.keys().filter(|path| !kept.contains(path)) {
        store.delete(path).await?;
    }
    for (path, bytes) in outputs {
        let same = match now.get(path) {
            Some(&size) if size == bytes.len() as u64 => {
                store.get(path).await?.bytes().await? == *bytes
            }
            _ => false,
        };
        if !same {
            store.put(path, bytes.clone().into()).await?;
        }
    }
    Ok(())
}

fn bench_site(lake: &super::lake::LakeArgs, runs: u32) -> anyhow::Result<()> {
    use super::site::{both_audiences, build_sites};
    let store = lake.open()?;
    let runtime = super::runtime()?;
    let tmp = tempfile::tempdir()?;
    let both = |out: &Path| -> anyhow::Result<usize> {
        runtime.block_on(build_sites(store.clone(), None, &both_audiences(out)))
    };
    let (mut fresh, mut again, mut pages) = (f64::MAX, f64::MAX, 0);
    for run in 0..runs.max(1) {
        let out = tmp.path().join(format!("run{run}"));
        let started = Instant::now();
        pages = both(&out)?;
        fresh = fresh.min(started.elapsed().as_secs_f64());
        let started = Instant::now();
        both(&out)?;
        again = again.min(started.elapsed().as_secs_f64());
    }
    println!("site: {pages} pages (public + internal), best of {runs}");
    println!(
        "  into new directories   {fresh:.2} s  {:>6.0} pages/s",
        pages as f64 / fresh
    );
    println!(
        "  over the same build    {again:.2} s  {:>6.0} pages/s (unchanged files not rewritten)",
        pages as f64 / again
    );
    Ok(())
}

/// Counts bytes and discards them: measures generation, not the disk.
struct CountingSink(u64);

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
