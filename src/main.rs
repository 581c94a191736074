//! The `gridstat` command line: binds the stages together. Only this binary
//! reads arguments and the environment and sets up logging.

mod cmd;
#[cfg(all(feature = "zstd-pool", target_os = "linux", target_env = "gnu"))]
mod zstd_contexts;

/// jemalloc. Generation allocates many small strings per message, at which
/// glibc's allocator is slow (the generator benchmark: 2.1 s against 1.5 s). Ingest fills
/// builders of many megabytes that an encoding thread frees; jemalloc hands
/// their pages out again where mimalloc, the allocator before, touched new
/// ones (ingest CPU −5 %, peak RSS 390 → 290 MB; docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;

/// gridstat: neighbourhood-grid field reports → Parquet lake → rollups → public statistics site.
#[derive(Debug, Parser)]
#[command(name = "gridstat", version, about)]
struct Cli {
    /// Place registry directory (city/counties/towns/villages/grids CSV files); default: the embedded Jiangmen registry.
    #[arg(long, global = true, env = "GRIDSTAT_REGISTRY", value_name = "DIR")]
    registry: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "GRIDSTAT_LOG_FORMAT")]
    log_format: LogFormat,
    /// TOML file with the same settings as the flags (flags and GRIDSTAT_* variables win); see docs/operations.md.
    #[arg(long, global = true, env = "GRIDSTAT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Summarise, export or build the place registry.
    Registry(cmd::registry::RegistryArgs),
    /// Generate a deterministic synthetic campaign as NDJSON.
    Gen(cmd::gen::GenArgs),
    /// Validate messages and write them to the lake as Hive-partitioned Parquet.
    Ingest(cmd::ingest::IngestArgs),
    /// Deduplicate raw data into curated tables and compute rollups (incremental).
    Aggregate(cmd::aggregate::AggregateArgs),
    /// Query the lake with SQL (DataFusion).
    Sql(cmd::aggregate::SqlArgs),
    /// Build the public statistics site or the internal dashboard from the rollups.
    Site(cmd::site::SiteArgs),
    /// Run the whole pipeline on a generated Jiangmen campaign, local files only.
    Demo(cmd::demo::DemoArgs),
    /// Inspect and repair a lake's bookkeeping (ingest partition states).
    Lake(cmd::lake::LakeCommandArgs),
    /// Serve the HTTP intake for reporters' phones in front of the Kafka topics (docs/intake.md).
    Intake(cmd::intake::IntakeArgs),
    /// Add, list or revoke the intake's device credentials.
    Devices(cmd::devices::DevicesArgs),
    /// Export the messages' JSON Schemas and the intake's OpenAPI document.
    Schema(cmd::schema::SchemaArgs),
    /// Replay a generated campaign against an intake with many simulated phones.
    Load(cmd::load::LoadArgs),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRIDSTAT_LOG")
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let (cli, config) = match cmd::config::parse_args(std::env::args_os()) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Registry(args) => cmd::registry::run(cli.registry.as_deref(), args),
        Command::Gen(args) => cmd::gen::run(cli.registry.as_deref(), args),
        Command::Ingest(args) => cmd::ingest::run(cli.registry.as_deref(), args, &config),
        Command::Aggregate(args) => cmd::aggregate::run(cli.registry.as_deref(), args),
        Command::Sql(args) => cmd::aggregate::sql(cli.registry.as_deref(), args),
        Command::Site(args) => cmd::site::run(args),
        Command::Demo(args) => cmd::demo::run(cli.registry.as_deref(), args),
        Command::Lake(args) => cmd::lake::run(args),
        Command::Intake(args) => cmd::intake::run(cli.registry.as_deref(), args),
        Command::Devices(args) => cmd::devices::run(cli.registry.as_deref(), args),
        Command::Schema(args) => cmd::schema::run(args),
        Command::Load(args) => cmd::load::run(cli.registry.as_deref(), args),
    };
    #[cfg(all(feature = "zstd-pool", target_os = "linux", target_env = "gnu"))]
    zstd_contexts::log_counts();
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

/// Transparent huge pages cost this process memory and time: where the
/// system grants them (`always`, or an allocator that asks for them, as
/// mimalloc did), every 2 MiB region a batch touches is zeroed and counted
/// whole, and again after each purge. Measured on the 10M-visit lake,
/// `aggregate --all` peaked at 1.90 GiB with them and 1.60 GiB without, at
/// the same speed (docs/BENCHMARKS.md). `GRIDSTAT_ALLOW_THP=1` keeps them.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn disable_transparent_huge_pages() {
    if std::env::var_os("GRIDSTAT_ALLOW_THP").is_some_and(|v| v == "1") {
        return;
    }
    // SAFETY: PR_SET_THP_DISABLE takes one integer argument and only sets
    // a flag on this process; it touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        // Only a cost, never an error: carry on with huge pages.
        eprintln!(
            "warning: could not disable transparent huge pages: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn disable_transparent_huge_pages() {}
