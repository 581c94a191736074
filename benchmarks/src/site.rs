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

/// One build of both sites: the pages written and each phase's time.
#[derive(Debug, Clone, Copy)]
struct Build {
    pages: usize,
    /// Reading the rollups from the lake.
    load: f64,
    /// Disclosure control and rendering, both audiences.
    render: f64,
    /// Writing (or comparing) the files, both audiences.
    write: f64,
}

impl Build {
    fn total(&self) -> f64 {
        self.load + self.render + self.write
    }
}

/// Both sites of the lake in `store` under `out` (`public/`,
/// `internal/`), with default options.
async fn build_both(store: &Arc<dyn ObjectStore>, out: &Path) -> anyhow::Result<Build> {
    let started = Instant::now();
    let rollups = load_rollups(store, None).await?;
    let mut timing = Build {
        pages: 0,
        load: started.elapsed().as_secs_f64(),
        render: 0.0,
        write: 0.0,
    };
    for (audience, dir) in [
        (Audience::Public, "public"),
        (Audience::Internal, "internal"),
    ] {
        let opts = SiteOptions {
            audience,
            ..SiteOptions::default()
        };
        let started = Instant::now();
        let files = build(&rollups, &opts)?;
        timing.render += started.elapsed().as_secs_f64();
        let started = Instant::now();
        write_site(&out.join(dir), &files)?;
        timing.write += started.elapsed().as_secs_f64();
        timing.pages += files.iter().filter(|f| f.path.ends_with(".html")).count();
    }
    Ok(timing)
}

/// The faster of two builds.
fn best(a: Option<Build>, b: Build) -> Option<Build> {
    match a {
        Some(a) if a.total() <= b.total() => Some(a),
        _ => Some(b),
    }
}

fn report(what: &str, b: Build) {
    println!(
        "  {what:<22} {:.2} s  {:>6.0} pages/s  (load {:.2} s, render {:.2} s, write {:.2} s)",
        b.total(),
        b.pages as f64 / b.total(),
        b.load,
        b.render,
        b.write
    );
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
    let (mut fresh, mut again) = (None, None);
    for run in 0..args.runs.max(1) {
        let out = tmp.path().join(format!("run{run}"));
        fresh = best(fresh, runtime.block_on(build_both(&store, &out))?);
        again = best(again, runtime.block_on(build_both(&store, &out))?);
    }
    let (Some(fresh), Some(again)) = (fresh, again) else {
        unreachable!("at least one run");
    };
    println!(
        "site: {} pages (public + internal), best of {}",
        fresh.pages, args.runs
    );
    report("into new directories", fresh);
    report("over the same build", again);
    println!("  (over the same build, unchanged files are compared, not rewritten)");
    Ok(())
}
