//! `gridstat-bench`: reproducible measurements of gridstat, some side by
//! side with DuckDB, for docs/BENCHMARKS.md. Each benchmark says what it
//! measures: the `gridstat` binary run as operators run it (a process per
//! step, found next to this binary), or one stage's library in this
//! process where no `gridstat` command does only that step.

mod aggregate;
mod campaign;
mod gen;
mod gridstat;
mod harness;
mod ingest;
mod intake;
mod kafka;
mod rollup;
mod site;

/// The allocator of the `gridstat` binary, so that what runs in this
/// process allocates as it would there.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// gridstat-bench: gridstat's benchmarks (docs/BENCHMARKS.md).
#[derive(Debug, Parser)]
#[command(name = "gridstat-bench", version, about)]
struct Cli {
    /// Place registry directory (as `gridstat --registry`, and passed on to it); default: the embedded Jiangmen registry.
    #[arg(long, global = true, value_name = "DIR")]
    registry: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a campaign into memory (no disk) and report visits per second.
    Gen(gen::GenArgs),
    /// `gridstat ingest --from` on a generated NDJSON file, side by side
    /// with DuckDB converting the same file to Parquet.
    Ingest(ingest::IngestArgs),
    /// A one-day refresh (`gridstat aggregate` after the last day's files
    /// arrive) against a full rebuild (`gridstat aggregate --all`).
    Aggregate(aggregate::AggregateArgs),
    /// The rollup step alone over a lake's curated tables, side by side with
    /// DuckDB computing the same tables in SQL over the same Parquet.
    Rollup(rollup::RollupArgs),
    /// Kafka → lake with 1, 2, 3… `gridstat ingest` workers in one group,
    /// against a bare consumer's read rate on the same topics.
    Kafka(kafka::KafkaArgs),
    /// Submissions through `gridstat intake` from 64 simulated phones, at
    /// the most it takes and at half that rate, against a bare idempotent
    /// producer sending the same messages to the same broker.
    Intake(intake::IntakeArgs),
    /// Build the public site and the internal dashboard from a lake's
    /// rollups: into fresh directories, then again over the first build.
    Site(site::SiteArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRIDSTAT_LOG")
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let registry = cli.registry.as_deref();
    let result = match cli.command {
        Command::Gen(args) => gen::run(registry, args),
        Command::Ingest(args) => ingest::run(registry, args),
        Command::Aggregate(args) => aggregate::run(registry, args),
        Command::Rollup(args) => rollup::run(registry, args),
        Command::Kafka(args) => kafka::run(registry, args),
        Command::Intake(args) => intake::run(registry, args),
        Command::Site(args) => site::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
