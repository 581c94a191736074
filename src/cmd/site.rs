//! `gridstat site`: the public site or the internal dashboard.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use gridstat_site_gen::{
    build, load::load_rollups, read_template_overrides, write_site, Audience, SiteOptions,
};

use super::lake::LakeArgs;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum AudienceArg {
    Public,
    Internal,
}

#[derive(Debug, Args)]
pub(crate) struct SiteArgs {
    #[command(flatten)]
    pub(crate) lake: LakeArgs,
    /// Output directory (replaced).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Public site (suppressed, no grid pages) or internal dashboard.
    #[arg(long, value_enum, default_value_t = AudienceArg::Public)]
    pub(crate) audience: AudienceArg,
    /// Last day to publish (default: the latest in the rollups).
    #[arg(long)]
    pub(crate) as_of: Option<chrono::NaiveDate>,
    /// Counts below this are shown as "<N" on the public site.
    #[arg(long, env = "GRIDSTAT_SITE_THRESHOLD", default_value_t = 5)]
    pub(crate) threshold: u32,
    /// Directory of templates overriding the embedded ones (same file names).
    #[arg(long)]
    pub(crate) templates: Option<PathBuf>,
    /// Absolute URL the site is served at, for the feed and sitemap.
    #[arg(
        long,
        env = "GRIDSTAT_SITE_BASE_URL",
        default_value = "http://127.0.0.1:8000/"
    )]
    pub(crate) base_url: String,
    /// Hours after which an open case is listed as overdue on the internal
    /// dashboard: a hazard or a hardship of normal urgency (the aggregate's
    /// limits: the same variables and settings).
    #[arg(long, env = "GRIDSTAT_OVERDUE_HOURS", default_value_t = 72)]
    pub(crate) overdue_hours: u32,
    /// The same for urgent hardships.
    #[arg(long, env = "GRIDSTAT_URGENT_OVERDUE_HOURS", default_value_t = 24)]
    pub(crate) urgent_overdue_hours: u32,
    /// The same for hardships of low urgency.
    #[arg(long, env = "GRIDSTAT_LOW_OVERDUE_HOURS", default_value_t = 168)]
    pub(crate) low_overdue_hours: u32,
}

pub(crate) fn options(args: &SiteArgs) -> anyhow::Result<SiteOptions> {
    let template_overrides = match &args.templates {
        Some(dir) => read_template_overrides(dir)?,
        None => Default::default(),
    };
    let audience = match args.audience {
        AudienceArg::Public => Audience::Public,
        AudienceArg::Internal => Audience::Internal,
    };
    let mut base_url = args.base_url.clone();
    if !base_url.ends_with('/') {
        base_url.push('/');
    }
    anyhow::ensure!(args.threshold >= 1, "--threshold must be at least 1");
    Ok(SiteOptions {
        audience,
        threshold: args.threshold,
        base_url,
        template_overrides,
        overdue_hours: args.overdue_hours,
        urgent_overdue_hours: args.urgent_overdue_hours,
        low_overdue_hours: args.low_overdue_hours,
    })
}

/// Build each (options, output directory) site from one load of the
/// rollups; returns the number of pages written.
pub(crate) async fn build_sites(
    store: Arc<dyn object_store::ObjectStore>,
    as_of: Option<chrono::NaiveDate>,
    sites: &[(SiteOptions, PathBuf)],
) -> anyhow::Result<usize> {
    let started = std::time::Instant::now();
    let rollups = super::read_snapshot(&store, |snapshot| async move {
        Ok(load_rollups(&snapshot, as_of).await?)
    })
    .await?;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "Rollups loaded.");
    let mut pages = 0;
    for (opts, out) in sites {
        let started = std::time::Instant::now();
        let files = build(&rollups, opts)?;
        let rendered = started.elapsed();
        let written = write_site(out, &files)?;
        tracing::info!(
            out = %out.display(),
            render_s = rendered.as_secs_f64(),
            write_s = (started.elapsed() - rendered).as_secs_f64(),
            files = files.len(),
            changed = written,
            "Site built."
        );
        pages += files.iter().filter(|f| f.path.ends_with(".html")).count();
    }
    Ok(pages)
}

/// The public site in `dir/public` and the internal dashboard in
/// `dir/internal`, with default options.
pub(crate) fn both_audiences(dir: &Path) -> Vec<(SiteOptions, PathBuf)> {
    [
        (Audience::Public, "public"),
        (Audience::Internal, "internal"),
    ]
    .into_iter()
    .map(|(audience, sub)| {
        let opts = SiteOptions {
            audience,
            ..SiteOptions::default()
        };
        (opts, dir.join(sub))
    })
    .collect()
}

pub(crate) fn run(args: SiteArgs) -> anyhow::Result<()> {
    let opts = options(&args)?;
    let store = args.lake.open()?;
    let started = std::time::Instant::now();
    let sites = [(opts, args.out.clone())];
    let pages = super::runtime()?.block_on(build_sites(store, args.as_of, &sites))?;
    println!(
        "Wrote {pages} pages to {} in {:.2}s; open {}",
        args.out.display(),
        started.elapsed().as_secs_f64(),
        args.out.join("index.html").display()
    );
    Ok(())
}
