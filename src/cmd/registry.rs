//! `gridstat registry`: summarise, export or build the place registry.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use gridstat_schemas::registry_build::build_jiangmen;
use gridstat_schemas::Registry;

#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    #[command(subcommand)]
    action: Option<RegistryAction>,
}

#[derive(Debug, Subcommand)]
enum RegistryAction {
    /// Print counts per level and registered households (the default).
    Summary,
    /// Write the registry as CSV files (the format `--registry` reads).
    Export {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Rebuild the Jiangmen registry from public reference data (towns.csv, villages.csv).
    Build {
        /// Reference data directory, e.g. ../shared/data/jiangmen.
        #[arg(long)]
        reference: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

pub(crate) fn run(registry_dir: Option<&Path>, args: RegistryArgs) -> anyhow::Result<()> {
    match args.action.unwrap_or(RegistryAction::Summary) {
        RegistryAction::Summary => {
            let registry = super::load_registry(registry_dir)?;
            print!("{}", summary(&registry));
            Ok(())
        }
        RegistryAction::Export { out } => {
            let registry = super::load_registry(registry_dir)?;
            registry
                .write_dir(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!("Wrote {} grids to {}", registry.grids.len(), out.display());
            Ok(())
        }
        RegistryAction::Build { reference, out } => {
            let registry = build_jiangmen(&reference)?;
            registry
                .write_dir(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            print!("{}", summary(&registry));
            Ok(())
        }
    }
}

/// Counts per level and households, per county and in all.
pub(crate) fn summary(r: &Registry) -> String {
    let mut out = format!(
        "{} ({}): {} counties, {} towns, {} villages/communities, {} grids, {} registered households\n\n",
        r.city.name,
        r.city.code,
        r.counties.len(),
        r.towns.len(),
        r.villages.len(),
        r.grids.len(),
        r.total_households()
    );
    out += "county  name      towns  villages  grids  households\n";
    for (i, c) in r.counties.iter().enumerate() {
        let towns = r.towns.iter().filter(|t| t.county == i).count();
        let villages = r
            .villages
            .iter()
            .filter(|v| r.towns[v.town].county == i)
            .count();
        let grids = r.grids.iter().filter(|g| g.county == i);
        let (n, hh) = grids.fold((0, 0u64), |(n, hh), g| {
            (n + 1, hh + u64::from(g.households))
        });
        out += &format!(
            "{}  {}  {towns:>5}  {villages:>8}  {n:>5}  {hh:>10}\n",
            c.code,
            pad(&c.name, 8)
        );
    }
    out
}

fn pad(s: &str, width: usize) -> String {
    // CJK characters take two columns.
    let w: usize = s.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}
