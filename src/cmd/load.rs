//! `gridstat load`: replay a generated campaign against an intake with
//! many simulated phones, each with a device token of its own.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use gridstat_intake::devices::Area;
use gridstat_intake::load::{self, LoadOptions, LoadReport, SimDevice};
use gridstat_schemas::generate::Generator;
use indicatif::{ProgressBar, ProgressStyle};

use super::devices::DevicesLocation;
use super::gen::CampaignArgs;

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// The intake's base URL.
    #[arg(
        long,
        env = "GRIDSTAT_INTAKE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// The device table the intake reads; one device per reporter and case handler of the campaign is added to it.
    #[command(flatten)]
    devices: DevicesLocation,
    /// Phones sending at the same time.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Messages per request: 1 sends each alone, more sends NDJSON batches (an offline queue flushed).
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// Give up on a message not written after this many seconds of retries.
    #[arg(long, default_value_t = 300)]
    give_up_after_secs: u64,
    /// Write the summary and every receipt as JSON to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    #[command(flatten)]
    campaign: CampaignArgs,
}

pub(crate) fn run(registry_dir: Option<&std::path::Path>, args: LoadArgs) -> anyhow::Result<()> {
    let registry = Arc::new(super::load_registry(registry_dir)?);
    let gen_opts = args.campaign.options_with_scale(0.01)?;
    let messages: Vec<_> = Generator::new(&registry, gen_opts).collect();
    let plans = load::plan_devices(&messages);
    let store = args.devices.open()?;
    let runtime = super::runtime()?;
    let report = runtime.block_on(async {
        let now = chrono::Utc::now().with_timezone(&gridstat_schemas::time::shanghai());
        let tokens = store
            .update(|table| {
                plans
                    .iter()
                    .map(|p| {
                        table
                            .add(&p.reporter_id, Area::Grids(p.grids.clone()), &registry, now)
                            .map(|(_, token)| token)
                    })
                    .collect::<gridstat_intake::Result<Vec<_>>>()
            })
            .await?;
        println!(
            "Added {} devices to {}; {} messages to send.",
            tokens.len(),
            store.location(),
            messages.len()
        );
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .context("creating the HTTP client")?;
        if let Some(first) = tokens.first() {
            wait_until_known(&client, &args.url, first.expose()).await?;
        }
        let devices: Vec<SimDevice> = plans
            .iter()
            .zip(&tokens)
            .map(|(plan, token)| SimDevice {
                token: token.expose().to_string(),
                messages: plan
                    .messages
                    .iter()
                    .map(|&i| Arc::from(messages[i].bytes.as_slice()))
                    .collect(),
            })
            .collect();
        let bar = ProgressBar::new(messages.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} messages ({per_sec})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        let progress = {
            let bar = bar.clone();
            Arc::new(move |n: u64| bar.set_position(n)) as Arc<dyn Fn(u64) + Send + Sync>
        };
        let started = Instant::now();
        let opts = LoadOptions {
            url: args.url.trim_end_matches('/').to_string(),
            concurrency: args.concurrency,
            batch_size: args.batch_size,
            give_up_after: Duration::from_secs(args.give_up_after_secs),
            ..LoadOptions::default()
        };
        let report = load::run(client, devices, opts, progress).await;
        bar.finish_and_clear();
        anyhow::Ok((report, started.elapsed()))
    })?;
    let (report, elapsed) = report;
    print_summary(&report, elapsed);
    if let Some(path) = &args.report {
        let json = serde_json::json!({
            "sent": report.sent,
            "accepted": report.accepted,
            "replayed": report.replayed,
            "rejected": report.rejected,
            "retries": report.retries,
            "gave_up": report.gave_up,
            "statuses": report.statuses,
            "receipts": report.receipts,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    anyhow::ensure!(
        report.gave_up == 0,
        "{} messages were given up",
        report.gave_up
    );
    Ok(())
}

/// Wait until the intake has re-read its device table and knows `token`.
async fn wait_until_known(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let probe = format!("{}/v1/submissions", url.trim_end_matches('/'));
    loop {
        let status = client
            .post(&probe)
            .bearer_auth(token)
            .body("{}")
            .send()
            .await
            .map(|r| r.status().as_u16());
        match status {
            Ok(401) | Ok(503) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(401) => anyhow::bail!("the intake at {url} does not know the new devices after 60 s: does it read the same --devices table?"),
            Ok(_) => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("reaching the intake at {url}")),
        }
    }
}

fn print_summary(r: &LoadReport, elapsed: Duration) {
    println!(
        "Sent {} messages in {:.1} s: {} receipted ({} written, {} replayed), {} rejected, {} retries, {} given up.",
        r.sent,
        elapsed.as_secs_f64(),
        r.accepted + r.replayed,
        r.accepted,
        r.replayed,
        r.rejected.values().sum::<u64>(),
        r.retries,
        r.gave_up
    );
    for (class, n) in &r.rejected {
        println!("  rejected {class}: {n}");
    }
}
