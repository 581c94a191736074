//! `gridstat gen`: a deterministic synthetic campaign as NDJSON.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;
use gridstat_schemas::generate::{write_ndjson, Expect, GenOptions, Generator};

#[derive(Debug, Args)]
pub(crate) struct GenArgs {
    /// Output file; `-` for stdout.
    #[arg(long, short, default_value = "-")]
    pub(crate) out: String,
    #[command(flatten)]
    pub(crate) campaign: CampaignArgs,
    /// Also write a CSV manifest (line, expect, class) of what each line is meant to be.
    #[arg(long)]
    manifest: Option<PathBuf>,
}

/// The knobs of a synthetic campaign (shared with `gridstat demo`).
#[derive(Debug, Clone, Args)]
pub(crate) struct CampaignArgs {
    /// RNG seed: the same arguments give byte-identical output.
    #[arg(long, default_value_t = 2022)]
    pub(crate) seed: u64,
    /// First day of the campaign (local date).
    #[arg(long, default_value = "2022-11-25")]
    pub(crate) start: NaiveDate,
    /// Number of days.
    #[arg(long, default_value_t = 14)]
    pub(crate) days: u32,
    /// Visits per registered household by the end (≤ 1: the coverage reached; > 1 adds follow-up visits).
    /// Default: 0.85 for `gen`, 0.2 for `demo` (a quick first run).
    #[arg(long)]
    pub(crate) scale: Option<f64>,
    /// Share of valid messages sent twice (phone and producer retries).
    #[arg(long, default_value_t = 0.02)]
    pub(crate) duplicate_rate: f64,
    /// Invalid messages per valid visit (every error class in turn).
    #[arg(long, default_value_t = 0.005)]
    pub(crate) invalid_rate: f64,
    /// Share of visits sent 1–3 days after they happened.
    #[arg(long, default_value_t = 0.03)]
    pub(crate) late_rate: f64,
    /// Share of handed-on cases whose updates (assigned, escalated, resolved) are sent.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) case_update_rate: f64,
}

impl CampaignArgs {
    pub(crate) fn options(&self) -> anyhow::Result<GenOptions> {
        self.options_with_scale(0.85)
    }

    pub(crate) fn options_with_scale(&self, default_scale: f64) -> anyhow::Result<GenOptions> {
        let scale = self.scale.unwrap_or(default_scale);
        for (name, v) in [
            ("--duplicate-rate", self.duplicate_rate),
            ("--invalid-rate", self.invalid_rate),
            ("--late-rate", self.late_rate),
            ("--case-update-rate", self.case_update_rate),
        ] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&v),
                "{name} must be between 0 and 1, got {v}"
            );
        }
        anyhow::ensure!(
            scale >= 0.0 && scale.is_finite(),
            "--scale must be a number ≥ 0, got {scale}"
        );
        anyhow::ensure!(self.days >= 1, "--days must be at least 1");
        Ok(GenOptions {
            seed: self.seed,
            start: self.start,
            days: self.days,
            scale,
            duplicate_rate: self.duplicate_rate,
            invalid_rate: self.invalid_rate,
            late_rate: self.late_rate,
            case_update_rate: self.case_update_rate,
            ..GenOptions::default()
        })
    }
}

pub(crate) fn run(registry_dir: Option<&Path>, args: GenArgs) -> anyhow::Result<()> {
    let registry = super::load_registry(registry_dir)?;
    let opts = args.campaign.options()?;
    let started = std::time::Instant::now();
    let mut manifest = match &args.manifest {
        Some(p) => {
            let mut w = BufWriter::new(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            );
            writeln!(w, "line,expect,class")?;
            Some(w)
        }
        None => None,
    };
    let mut line = 0u64;
    let messages = Generator::new(&registry, opts).inspect(|m| {
        line += 1;
        if let Some(w) = manifest.as_mut() {
            let (expect, class) = match m.expect {
                Expect::Valid => ("valid", ""),
                Expect::Duplicate => ("duplicate", ""),
                Expect::Conflict => ("conflict", ""),
                Expect::Invalid(c) => ("invalid", c.as_str()),
            };
            // A failed manifest write surfaces at the flush below.
            let _ = writeln!(w, "{line},{expect},{class}");
        }
    });
    let n = if args.out == "-" {
        write_ndjson(
            BufWriter::with_capacity(1 << 20, std::io::stdout().lock()),
            messages,
        )
    } else {
        let file =
            std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out))?;
        write_ndjson(BufWriter::with_capacity(1 << 20, file), messages)
    }
    .context("writing the campaign")?;
    if let Some(mut w) = manifest {
        w.flush().context("writing the manifest")?;
    }
    tracing::info!(
        messages = n,
        seconds = started.elapsed().as_secs_f64(),
        "Generated campaign."
    );
    Ok(())
}
