//! What every benchmark needs: its own async runtime, the best of some
//! runs, and scratch lakes that do not slow the next invocation down.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

/// A tokio runtime for the steps timed in this process, built as the
/// `gridstat` binary builds its own: at most twice as many blocking
/// threads as cores (the default of 512 spreads allocations over more
/// per-thread heaps and touches more fresh pages).
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads((2 * cores).max(4))
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The fastest of some runs' times.
pub(crate) fn best(times: &[f64]) -> f64 {
    times.iter().copied().fold(f64::MAX, f64::min)
}

/// Each run's time, as printed after the best.
pub(crate) fn runs_list(times: &[f64]) -> String {
    times
        .iter()
        .map(|t| format!("{t:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// When a benchmark last removed lakes: a file in the temporary
/// directory, whatever `--dir` each invocation was given.
const CLEANUP_MARK: &str = "gridstat-bench-ingest-cleanup";

/// How long ext4 without a journal keeps searching past freed inodes: each
/// time it creates a file it skips, one by one, the inodes freed in the
/// last minute, or in the last six if their inode-table block is dirty.
/// Writing the removal back does not shorten that: the next lake's first
/// files dirty the same blocks again. Right after the previous invocation
/// removed three lakes (1,200 files), `recently_deleted` and the buffer
/// lookups under it took 7 % of gridstat's time, and its runs were 10 %
/// slower (1.31 s against 1.17 s, DuckDB's unchanged); a minute later it
/// was still the same. DuckDB writes one file.
const FREED_INODES_SKIPPED_FOR: Duration = Duration::from_secs(6 * 60 + 5);

/// Remove a directory of lakes and note when, for
/// [`wait_out_recent_cleanup`].
pub(crate) fn remove_lakes(dir: &Path) -> std::io::Result<()> {
    std::fs::remove_dir_all(dir)?;
    if let Err(e) = std::fs::write(std::env::temp_dir().join(CLEANUP_MARK), b"") {
        eprintln!("warning: could not note the removal of lakes: {e}");
    }
    Ok(())
}

/// Wait until six minutes have passed since an earlier invocation removed
/// its lakes, so that no run pays for the harness's own cleanup.
pub(crate) fn wait_out_recent_cleanup() {
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

/// An empty lake directory `dir` (emptied if it exists).
pub(crate) fn empty_lake(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        remove_lakes(dir)?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}
