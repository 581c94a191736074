//! The synthetic campaign a benchmark generates: the knobs of `gridstat
//! gen` that the benchmarks vary, the others at the generator's defaults
//! (which are `gridstat gen`'s too).

use std::path::Path;

use chrono::NaiveDate;
use clap::Args;
use gridstat_schemas::{GenOptions, Registry};

#[derive(Debug, Clone, Args)]
pub(crate) struct CampaignArgs {
    /// RNG seed: the same arguments give byte-identical messages.
    #[arg(long, default_value_t = GenOptions::default().seed)]
    seed: u64,
    /// First day of the campaign (local date).
    #[arg(long, default_value_t = GenOptions::default().start)]
    start: NaiveDate,
    /// Number of days.
    #[arg(long, default_value_t = GenOptions::default().days)]
    days: u32,
    /// Visits per registered household by the end (≤ 1: the coverage reached; > 1 adds follow-up visits).
    #[arg(long, default_value_t = GenOptions::default().scale)]
    scale: f64,
}

impl CampaignArgs {
    pub(crate) fn options(&self) -> anyhow::Result<GenOptions> {
        anyhow::ensure!(
            self.scale >= 0.0 && self.scale.is_finite(),
            "--scale must be a number ≥ 0, got {}",
            self.scale
        );
        anyhow::ensure!(self.days >= 1, "--days must be at least 1");
        Ok(GenOptions {
            seed: self.seed,
            start: self.start,
            days: self.days,
            scale: self.scale,
            ..GenOptions::default()
        })
    }
}

/// The registry named by `--registry`, or the embedded Jiangmen one.
pub(crate) fn load_registry(dir: Option<&Path>) -> anyhow::Result<Registry> {
    use anyhow::Context;
    match dir {
        Some(dir) => Registry::load_dir(dir)
            .with_context(|| format!("loading the registry in {}", dir.display())),
        None => Ok(Registry::jiangmen()),
    }
}
