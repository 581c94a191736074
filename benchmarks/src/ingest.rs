//! `gridstat-bench ingest`: `gridstat ingest --from FILE` (the binary, a
//! process per run, timed from start to exit) on a generated NDJSON file,
//! side by side with DuckDB's
//! `COPY (SELECT * FROM read_json(…, ignore_errors = true)) TO … (FORMAT parquet)`
//! on the same file (DuckDB stops at the first malformed line otherwise).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use gridstat_benchmarks::duckdb::run_python;
use gridstat_schemas::generate::{write_ndjson, Generator};

use crate::campaign::{load_registry, CampaignArgs};
use crate::gridstat::Gridstat;
use crate::harness::{best, empty_lake, remove_lakes, runs_list, wait_out_recent_cleanup};

#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    #[command(flatten)]
    campaign: CampaignArgs,
    /// Python with the `duckdb` package (e.g. a venv's bin/python).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Scratch directory (default: a temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Runs of each engine, taking turns; the best of each is compared.
    #[arg(long, default_value_t = 3)]
    runs: u32,
}

pub(crate) fn run(registry_dir: Option<&Path>, args: IngestArgs) -> anyhow::Result<()> {
    let gridstat = Gridstat::next_to_this_binary(registry_dir)?;
    let registry = load_registry(registry_dir)?;
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("campaign.ndjson");
    let lakes = dir.join("lake");
    if lakes.exists() {
        // Left by an interrupted invocation.
        remove_lakes(&lakes)?;
    }
    let opts = args.campaign.options()?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&file)?);
    let n = write_ndjson(&mut out, Generator::new(&registry, opts.clone()))?;
    // On disk before either engine starts: the kernel writing back the
    // fresh file must not slow whichever runs first.
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let script = format!(
        "import duckdb, time\nduckdb.sql(\"SET enable_progress_bar = false\")\nt = time.time()\nduckdb.sql(\"COPY (SELECT * FROM read_json('{}', ignore_errors = true)) TO '{}' (FORMAT parquet)\")\nprint(time.time() - t)",
        file.display(),
        dir.join("duckdb.parquet").display()
    );
    let start = opts.start.to_string();
    let (mut ours, mut duck) = (Vec::new(), Vec::new());
    let mut said = String::new();
    // Each run writes a lake of its own, and all are removed after the
    // last, then the next invocation waits out the minutes in which ext4
    // still searches past their inodes (`wait_out_recent_cleanup`).
    wait_out_recent_cleanup();
    for run in 0..args.runs.max(1) {
        let lake = lakes.join(format!("run-{run}"));
        empty_lake(&lake)?;
        let done = gridstat.run([
            OsStr::new("ingest"),
            OsStr::new("--from"),
            file.as_os_str(),
            OsStr::new("--lake"),
            lake.as_os_str(),
            OsStr::new("--campaign-start"),
            OsStr::new(&start),
        ])?;
        ours.push(done.seconds);
        said = done.stdout;
        duck.push(
            run_python(&args.python, &script, &[])?
                .trim()
                .parse::<f64>()
                .context("reading DuckDB's time")?,
        );
    }
    remove_lakes(&lakes)?;
    // gridstat's own summary: "Ingested N lines from FILE (…): R rows
    // written, Q quarantined".
    let written = said
        .rsplit_once("): ")
        .map_or(said.trim(), |(_, s)| s.trim());
    let (ours_best, duck_best) = (best(&ours), best(&duck));
    println!(
        "ingest: {n} messages ({written}), {} run(s) each, taking turns",
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
