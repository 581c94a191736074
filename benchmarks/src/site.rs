//! `gridstat-bench site`: the site generator (the `gridstat_site_gen`
//! library, as `gridstat demo` runs it) in this process: the rollups
//! loaded once, then the public site and the internal dashboard rendered
//! and written, into fresh directories and again over the first build.
//! `gridstat site` builds one audience per process; the rollups it loads
//! are the same.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use gridstat_site_gen::load::load_rollups;
use gridstat_site_gen::{build, write_site, Audience, SiteOptions};
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;

use crate::harness::runtime;

#[derive(Debug, Args)]
pub(crate) struct SiteArgs {
    /// The lake: a local directory with rollups (e.g. `gridstat demo`'s DIR/lake).
    #[arg(long)]
    lake: PathBuf,
    /// Repetitions; the best is reported.
    #[arg(long, default_value_t = 3)]
    runs: u32,
}

/// Both sites of the lake in `store` under `out` (`public/`,
/// `internal/`), with default options; returns the pages written.
async fn build_both(store: &Arc<dyn ObjectStore>, out: &Path) -> anyhow::Result<usize> {
    let rollups = load_rollups(store, None).await?;
    let mut pages = 0;
    for (audience, dir) in [
        (Audience::Public, "public"),
        (Audience::Internal, "internal"),
    ] {
        let opts = SiteOptions {
            audience,
            ..SiteOptions::default()
        };
        let files = build(&rollups, &opts)?;
        write_site(&out.join(dir), &files)?;
        pages += files.iter().filter(|f| f.path.ends_with(".html")).count();
    }
    Ok(pages)
}

pub(crate) fn run(args: SiteArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.lake.join("rollups").is_dir(),
        "{} has no rollups: run `gridstat aggregate --lake {}` first",
        args.lake.display(),
        args.lake.display()
    );
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(&args.lake)?);
    let runtime = runtime()?;
    let tmp = tempfile::tempdir()?;
    let (mut fresh, mut again, mut pages) = (f64::MAX, f64::MAX, 0);
    for run in 0..args.runs.max(1) {
        let out = tmp.path().join(format!("run{run}"));
        let started = Instant::now();
        pages = runtime.block_on(build_both(&store, &out))?;
        fresh = fresh.min(started.elapsed().as_secs_f64());
        let started = Instant::now();
        runtime.block_on(build_both(&store, &out))?;
        again = again.min(started.elapsed().as_secs_f64());
    }
    println!(
        "site: {pages} pages (public + internal), best of {}",
        args.runs
    );
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
