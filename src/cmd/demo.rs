//! `gridstat demo`: the whole pipeline on an embedded default, local files only.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use gridstat_aggregate::AggregateOptions;
use gridstat_schemas::generate::{write_ndjson, Expect, Generator};
use indicatif::{ProgressBar, ProgressStyle};

use super::gen::CampaignArgs;

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Working directory: DIR/campaign.ndjson, DIR/lake, DIR/site/{public,internal}.
    #[arg(long, default_value = "./gridstat-data")]
    pub(crate) dir: PathBuf,
    #[command(flatten)]
    pub(crate) campaign: CampaignArgs,
    /// Serve both sites on 127.0.0.1 after building them.
    #[arg(long)]
    pub(crate) serve: bool,
    /// Port for --serve.
    #[arg(long, default_value_t = 8000)]
    pub(crate) port: u16,
    /// Produce the campaign to this Kafka cluster and ingest it with a
    /// consumer-group worker instead of the embedded source.
    #[arg(long)]
    pub(crate) brokers: Option<String>,
}

/// Coverage the default demo reaches: enough for every page to be full, small
/// enough for the whole run to take seconds.
const DEFAULT_DEMO_SCALE: f64 = 0.2;

/// What a demo run did (also used by the end-to-end test through the CLI output).
#[derive(Debug, Default)]
pub(crate) struct DemoSummary {
    messages: u64,
    valid: u64,
    duplicates: u64,
    invalid: u64,
    rows_written: u64,
    quarantined: u64,
    steps: Vec<(&'static str, Duration)>,
    pages: usize,
}

fn spinner(msg: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"),
    );
    bar.set_message(msg.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The demo owns these paths under DIR; nothing else there is touched.
fn reset(dir: &Path, params: &str) -> anyhow::Result<bool> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let marker = dir.join("demo-params.txt");
    if std::fs::read_to_string(&marker).is_ok_and(|p| p == params) {
        return Ok(false); // same campaign: resume (ingest and aggregate pick up where they stopped)
    }
    for sub in ["lake", "site", "campaign.ndjson"] {
        let p = dir.join(sub);
        if p.is_dir() {
            std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
        } else if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    std::fs::write(&marker, params).with_context(|| format!("writing {}", marker.display()))?;
    Ok(true)
}

pub(crate) fn run(registry_dir: Option<&Path>, args: DemoArgs) -> anyhow::Result<()> {
    let registry = Arc::new(super::load_registry(registry_dir)?);
    let opts = args.campaign.options_with_scale(DEFAULT_DEMO_SCALE)?;
    let params = format!("{:?}\nregistry={:?}\n", opts, registry_dir);
    let fresh = reset(&args.dir, &params)?;
    let total = Instant::now();
    let mut s = DemoSummary::default();

    let t = Instant::now();
    let campaign = args.dir.join("campaign.ndjson");
    let bar = spinner("Generating the campaign");
    let file = std::fs::File::create(&campaign)
        .with_context(|| format!("creating {}", campaign.display()))?;
    let counted = Generator::new(&registry, opts.clone()).inspect(|m| match m.expect {
        Expect::Valid => s.valid += 1,
        Expect::Duplicate | Expect::Conflict => s.duplicates += 1,
        Expect::Invalid(_) => s.invalid += 1,
    });
    s.messages = write_ndjson(std::io::BufWriter::with_capacity(1 << 20, file), counted)
        .context("writing the campaign")?;
    bar.finish_and_clear();
    s.steps.push(("generate", t.elapsed()));

    let runtime = super::runtime()?;
    let lake_dir = args.dir.join("lake");
    std::fs::create_dir_all(&lake_dir)?;
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(
        object_store::local::LocalFileSystem::new_with_prefix(&lake_dir)?,
    );

    let t = Instant::now();
    let ingest_opts = super::ingest::options(opts.start, 250_000);
    match &args.brokers {
        None => {
            let bar = spinner("Ingesting through the embedded source");
            let lake = gridstat_ingest::LakeStore::new(Arc::clone(&store))
                .with_local_root(std::fs::canonicalize(&lake_dir)?);
            let report = runtime.block_on(super::ingest::ingest_file(
                lake,
                Arc::clone(&registry),
                ingest_opts,
                &campaign,
                None,
            ))?;
            s.rows_written = report.rows_written;
            s.quarantined = report.quarantined;
            bar.finish_and_clear();
        }
        Some(brokers) => {
            let bar = spinner("Producing to Kafka and ingesting with a consumer-group worker");
            let tag = format!("{:016x}", fnv1a(params.as_bytes()));
            let (rows, quarantined) = runtime.block_on(super::kafka_demo::run(
                brokers,
                &tag,
                &registry,
                &opts,
                Arc::clone(&store),
                ingest_opts,
            ))?;
            s.rows_written = rows;
            s.quarantined = quarantined;
            bar.finish_and_clear();
        }
    }
    s.steps.push(("ingest", t.elapsed()));

    let t = Instant::now();
    let bars = super::aggregate::Bars::new();
    let agg_opts = AggregateOptions {
        campaign_start: opts.start,
        latest_day: Some(super::latest_day()),
        run_by: super::this_process(),
        ..AggregateOptions::default()
    };
    let agg = runtime.block_on(gridstat_aggregate::run(
        Arc::clone(&store),
        &registry,
        &agg_opts,
        &bars,
    ))?;
    bars.finish();
    s.steps.push(("aggregate", t.elapsed()));

    let t = Instant::now();
    let bar = spinner("Building the public site and the internal dashboard");
    let site_dir = args.dir.join("site");
    let sites = super::site::both_audiences(&site_dir);
    s.pages = runtime.block_on(super::site::build_sites(Arc::clone(&store), None, &sites))?;
    bar.finish_and_clear();
    s.steps.push(("site", t.elapsed()));

    let coverage = runtime.block_on(city_coverage(&store, &registry))?;
    println!(
        "gridstat demo: {}",
        if fresh {
            "new campaign"
        } else {
            "same campaign, resumed"
        }
    );
    println!(
        "  messages generated   {:>9}  ({} valid, {} resent duplicates, {} invalid)",
        s.messages, s.valid, s.duplicates, s.invalid
    );
    println!(
        "  rows ingested        {:>9}  (+{} quarantined with their reason)",
        s.rows_written, s.quarantined
    );
    println!("  aggregate            {}", super::aggregate::summary(&agg));
    println!("  coverage reached     {coverage}");
    println!("  pages written        {:>9}", s.pages);
    let steps: Vec<String> = s
        .steps
        .iter()
        .map(|(n, d)| format!("{n} {:.1}s", d.as_secs_f64()))
        .collect();
    println!(
        "  time                 {} (total {:.1}s)",
        steps.join(", "),
        total.elapsed().as_secs_f64()
    );
    let public = site_dir.join("public").join("index.html");
    println!(
        "\nOpen {}",
        public.canonicalize().unwrap_or(public).display()
    );
    println!(
        "Internal dashboard: {}",
        site_dir.join("internal").join("index.html").display()
    );
    if args.serve {
        runtime.block_on(super::serve::serve(site_dir, args.port))?;
    }
    Ok(())
}

async fn city_coverage(
    store: &Arc<dyn object_store::ObjectStore>,
    registry: &gridstat_schemas::Registry,
) -> anyhow::Result<String> {
    use arrow::array::AsArray;
    let ctx = gridstat_aggregate::tables::session(Arc::clone(store));
    gridstat_aggregate::tables::register_all(&ctx, store, registry).await?;
    let batches = ctx
        .sql("SELECT dt, households_visited, coverage FROM rollups_cumulative WHERE level = 'city' ORDER BY dt DESC LIMIT 1")
        .await?
        .collect()
        .await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok("no rollups".into());
    };
    let dt = b.column(0).as_string::<i32>().value(0).to_string();
    let visited = b
        .column(1)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0);
    let coverage = b
        .column(2)
        .as_primitive::<arrow::datatypes::Float64Type>()
        .value(0);
    Ok(format!(
        "{:.1}% ({visited} households) by {dt}",
        coverage * 100.0
    ))
}

/// A stable hash of the demo's parameters, naming its Kafka topics so runs never mix.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
