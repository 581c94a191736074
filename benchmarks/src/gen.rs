//! `gridstat-bench gen`: the campaign generator (the `gridstat_schemas`
//! library, as `gridstat gen` runs it) in this process, writing NDJSON into
//! a sink that only counts bytes, so that the disk is not measured.

use std::path::Path;
use std::time::Instant;

use clap::Args;
use gridstat_schemas::generate::{write_ndjson, Expect, Generator, Stream};

use crate::campaign::{load_registry, CampaignArgs};

#[derive(Debug, Args)]
pub(crate) struct GenArgs {
    #[command(flatten)]
    campaign: CampaignArgs,
    /// Repetitions; the best is reported.
    #[arg(long, default_value_t = 3)]
    runs: u32,
}

pub(crate) fn run(registry_dir: Option<&Path>, args: GenArgs) -> anyhow::Result<()> {
    let registry = load_registry(registry_dir)?;
    let opts = args.campaign.options()?;
    let mut best = f64::MAX;
    let (mut visits, mut messages, mut bytes) = (0u64, 0u64, 0u64);
    for _ in 0..args.runs.max(1) {
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
        "gen: {visits} valid visits ({messages} messages, {:.0} MB NDJSON) in {best:.2} s (best of {}) = {:.0} visits/s",
        bytes as f64 / 1e6,
        args.runs,
        visits as f64 / best
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
