//! `--config FILE`: the same settings as the flags, from a TOML file.
//!
//! Precedence, highest first: command-line flags, `GRIDSTAT_*` environment
//! variables, the config file, built-in defaults. clap parses the first two
//! and fills in its defaults; then each value of the file replaces a
//! setting that clap took from its default ([`ArgMatches::value_source`]).
//! The file is typed like the flags, so its values are checked once, with
//! the file, line and key in the error, and nothing touches the process's
//! environment.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use serde::Deserialize;

use super::ingest::IngestArgs;
use super::lake::LakeArgs;
use crate::{Cli, Command, LogFormat};

/// A parsed config file. Unknown keys are errors, so a typo never passes silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    lake: Option<String>,
    s3_endpoint: Option<String>,
    s3_allow_http: Option<bool>,
    registry: Option<PathBuf>,
    log_format: Option<LogFormat>,
    campaign_start: Option<chrono::NaiveDate>,
    #[serde(default)]
    ingest: IngestSection,
    #[serde(default)]
    aggregate: AggregateSection,
    #[serde(default)]
    site: SiteSection,
    #[serde(default)]
    intake: IntakeSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntakeSection {
    brokers: Option<String>,
    topics: Option<Vec<String>>,
    listen: Option<std::net::SocketAddr>,
    /// The device table (a path or `s3://bucket/key.json`), also for `gridstat devices`.
    devices: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestSection {
    brokers: Option<String>,
    topics: Option<Vec<String>>,
    group: Option<String>,
    flush_interval_ms: Option<u64>,
    max_segment_rows: Option<usize>,
    max_buffered_rows: Option<usize>,
    max_buffered_bytes: Option<usize>,
    metrics_addr: Option<std::net::SocketAddr>,
    write_deadline_ms: Option<u64>,
    unhealthy_after_ms: Option<u64>,
    /// librdkafka settings, as with `-X key=value`.
    #[serde(default)]
    kafka: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregateSection {
    overdue_hours: Option<i64>,
    urgent_overdue_hours: Option<i64>,
    low_overdue_hours: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteSection {
    threshold: Option<u32>,
    base_url: Option<String>,
}

/// The command line and environment parsed, with the config file they
/// name (`--config` / `GRIDSTAT_CONFIG`) layered under them. Exits as
/// `Cli::parse` does on `--help` and usage errors.
pub(crate) fn parse_args(
    args: impl IntoIterator<Item = OsString>,
) -> anyhow::Result<(Cli, ConfigFile)> {
    let matches = Cli::command().get_matches_from(args);
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let file = match &cli.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    file.layer_under(&mut cli, &matches);
    Ok((cli, file))
}

impl ConfigFile {
    /// Read and check `path`; errors name the file, line, column and key.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in the config file {}", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        let config: Self = toml::from_str(text)?;
        for (key, value) in &config.ingest.kafka {
            setting_text(value).with_context(|| {
                format!("[ingest.kafka] {key}: expected a string, number or boolean")
            })?;
        }
        Ok(config)
    }

    /// Put the file's values into `cli` wherever `matches` (what `cli` was
    /// parsed from) says the flag was neither given nor set by its
    /// variable.
    pub(crate) fn layer_under(&self, cli: &mut Cli, matches: &ArgMatches) {
        let top = Unset(matches);
        top.fill_some("registry", &mut cli.registry, &self.registry);
        top.fill("log_format", &mut cli.log_format, &self.log_format);
        let Some((_, matches)) = matches.subcommand() else {
            return;
        };
        let unset = Unset(matches);
        match &mut cli.command {
            Command::Ingest(args) => self.layer_ingest(args, &unset),
            Command::Aggregate(args) => {
                self.layer_lake(&mut args.lake, &unset);
                let file = &self.aggregate;
                unset.fill(
                    "overdue_hours",
                    &mut args.overdue_hours,
                    &file.overdue_hours,
                );
                unset.fill(
                    "urgent_overdue_hours",
                    &mut args.urgent_overdue_hours,
                    &file.urgent_overdue_hours,
                );
                unset.fill(
                    "low_overdue_hours",
                    &mut args.low_overdue_hours,
                    &file.low_overdue_hours,
                );
                unset.fill(
                    "campaign_start",
                    &mut args.campaign_start,
                    &self.campaign_start,
                );
            }
            Command::Sql(args) => self.layer_lake(&mut args.lake, &unset),
            Command::Site(args) => {
                self.layer_lake(&mut args.lake, &unset);
                unset.fill("threshold", &mut args.threshold, &self.site.threshold);
                unset.fill("base_url", &mut args.base_url, &self.site.base_url);
                let file = &self.aggregate;
                for (id, setting, value) in [
                    ("overdue_hours", &mut args.overdue_hours, file.overdue_hours),
                    (
                        "urgent_overdue_hours",
                        &mut args.urgent_overdue_hours,
                        file.urgent_overdue_hours,
                    ),
                    (
                        "low_overdue_hours",
                        &mut args.low_overdue_hours,
                        file.low_overdue_hours,
                    ),
                ] {
                    let hours = value.map(|h| u32::try_from(h).unwrap_or(u32::MAX));
                    unset.fill(id, setting, &hours);
                }
            }
            Command::Intake(args) => {
                let file = &self.intake;
                unset.fill_some("brokers", &mut args.brokers, &file.brokers);
                unset.fill("topics", &mut args.topics, &file.topics);
                unset.fill("listen", &mut args.listen, &file.listen);
                unset.fill(
                    "campaign_start",
                    &mut args.campaign_start,
                    &self.campaign_start,
                );
                self.layer_devices(&mut args.devices, &unset);
            }
            Command::Devices(args) => self.layer_devices(&mut args.location, &unset),
            Command::Lake(_)
            | Command::Load(_)
            | Command::Schema(_)
            | Command::Registry(_)
            | Command::Gen(_)
            | Command::Demo(_) => {}
        }
    }

    fn layer_devices(&self, args: &mut super::devices::DevicesLocation, unset: &Unset) {
        unset.fill("location", &mut args.location, &self.intake.devices);
        unset.fill_some("s3_endpoint", &mut args.s3_endpoint, &self.s3_endpoint);
        unset.fill(
            "s3_allow_http",
            &mut args.s3_allow_http,
            &self.s3_allow_http,
        );
    }

    fn layer_lake(&self, args: &mut LakeArgs, unset: &Unset) {
        unset.fill("lake", &mut args.lake, &self.lake);
        unset.fill_some("s3_endpoint", &mut args.s3_endpoint, &self.s3_endpoint);
        unset.fill(
            "s3_allow_http",
            &mut args.s3_allow_http,
            &self.s3_allow_http,
        );
    }

    fn layer_ingest(&self, args: &mut IngestArgs, unset: &Unset) {
        let file = &self.ingest;
        self.layer_lake(&mut args.lake, unset);
        unset.fill(
            "campaign_start",
            &mut args.campaign_start,
            &self.campaign_start,
        );
        unset.fill_some("brokers", &mut args.brokers, &file.brokers);
        unset.fill("topics", &mut args.topics, &file.topics);
        unset.fill("group", &mut args.group, &file.group);
        unset.fill(
            "flush_interval_ms",
            &mut args.flush_interval_ms,
            &file.flush_interval_ms,
        );
        unset.fill_some("metrics_addr", &mut args.metrics_addr, &file.metrics_addr);
        unset.fill(
            "max_segment_rows",
            &mut args.max_segment_rows,
            &file.max_segment_rows,
        );
        unset.fill(
            "max_buffered_rows",
            &mut args.max_buffered_rows,
            &file.max_buffered_rows,
        );
        unset.fill(
            "max_buffered_bytes",
            &mut args.max_buffered_bytes,
            &file.max_buffered_bytes,
        );
        unset.fill(
            "write_deadline_ms",
            &mut args.write_deadline_ms,
            &file.write_deadline_ms,
        );
        unset.fill(
            "unhealthy_after_ms",
            &mut args.unhealthy_after_ms,
            &file.unhealthy_after_ms,
        );
    }

    /// The `[ingest.kafka]` librdkafka settings (`-X` flags come after and win).
    pub(crate) fn kafka_settings(&self) -> Vec<(String, String)> {
        self.ingest
            .kafka
            .iter()
            .filter_map(|(k, v)| setting_text(v).map(|v| (k.clone(), v)))
            .collect()
    }
}

/// One (sub)command's matches, asked which settings the command line and
/// the environment left unset.
struct Unset<'a>(&'a ArgMatches);

impl Unset<'_> {
    /// Whether the flag `id` was neither given nor set by its variable.
    fn is_unset(&self, id: &str) -> bool {
        matches!(
            self.0.value_source(id),
            None | Some(ValueSource::DefaultValue)
        )
    }

    /// The file's `value`, if any, into `setting` if the flag `id` is unset.
    fn fill<T: Clone>(&self, id: &str, setting: &mut T, value: &Option<T>) {
        if let Some(value) = value.as_ref().filter(|_| self.is_unset(id)) {
            *setting = value.clone();
        }
    }

    /// As [`Unset::fill`], for a flag without a default.
    fn fill_some<T: Clone>(&self, id: &str, setting: &mut Option<T>, value: &Option<T>) {
        if value.is_some() && self.is_unset(id) {
            setting.clone_from(value);
        }
    }
}

fn setting_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
lake = "s3://gridstat/lake"
s3_endpoint = "http://minio:9000"
s3_allow_http = true
registry = "/etc/gridstat/registry"
log_format = "json"
campaign_start = "2022-12-01"
[ingest]
brokers = "kafka:9092"
topics = ["grid.visits.v1", "grid.cases.v1", "grid.extra.v1"]
group = "workers"
flush_interval_ms = 30000
max_segment_rows = 1000
max_buffered_rows = 100000
max_buffered_bytes = 67108864
metrics_addr = "0.0.0.0:9464"
[ingest.kafka]
"session.timeout.ms" = 45000
"enable.partition.eof" = false
[aggregate]
overdue_hours = 48
[site]
threshold = 10
base_url = "https://stats.example.org/"
[intake]
brokers = "kafka-intake:9092"
listen = "0.0.0.0:8080"
devices = "s3://gridstat/devices.json"
"#;

    /// `args` parsed as the binary does, with `file` under them; the
    /// flags' variables are not read, so the test sees only what it passes.
    fn layered(file: &str, args: &[&str]) -> Cli {
        let command = without_variables(Cli::command());
        let args = std::iter::once("gridstat").chain(args.iter().copied());
        let matches = command.try_get_matches_from(args).unwrap();
        let mut cli = Cli::from_arg_matches(&matches).unwrap();
        ConfigFile::parse(file)
            .unwrap()
            .layer_under(&mut cli, &matches);
        cli
    }

    fn without_variables(command: clap::Command) -> clap::Command {
        command
            .mut_args(|arg| arg.env(None))
            .mut_subcommands(without_variables)
    }

    fn ingest(cli: Cli) -> IngestArgs {
        match cli.command {
            Command::Ingest(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_full_file_sets_every_command_s_flags() {
        let cli = layered(FULL, &["ingest"]);
        assert_eq!(cli.registry, Some(PathBuf::from("/etc/gridstat/registry")));
        assert!(matches!(cli.log_format, LogFormat::Json));
        let args = ingest(cli);
        assert_eq!(args.lake.lake, "s3://gridstat/lake");
        assert_eq!(args.lake.s3_endpoint.as_deref(), Some("http://minio:9000"));
        assert!(args.lake.s3_allow_http);
        assert_eq!(args.campaign_start.to_string(), "2022-12-01");
        assert_eq!(args.brokers.as_deref(), Some("kafka:9092"));
        assert_eq!(
            args.topics,
            ["grid.visits.v1", "grid.cases.v1", "grid.extra.v1"]
        );
        assert_eq!(args.group, "workers");
        assert_eq!(args.flush_interval_ms, 30_000);
        assert_eq!(args.max_segment_rows, 1000);
        assert_eq!(args.max_buffered_rows, 100_000);
        assert_eq!(args.max_buffered_bytes, 64 << 20);
        assert_eq!(args.metrics_addr, Some("0.0.0.0:9464".parse().unwrap()));

        let Command::Aggregate(args) = layered(FULL, &["aggregate"]).command else {
            unreachable!()
        };
        assert_eq!(args.lake.lake, "s3://gridstat/lake");
        assert_eq!(args.overdue_hours, 48);
        assert_eq!(args.campaign_start.to_string(), "2022-12-01");

        let Command::Site(args) = layered(FULL, &["site", "--out", "o"]).command else {
            unreachable!()
        };
        assert_eq!(args.lake.lake, "s3://gridstat/lake");
        assert_eq!(args.threshold, 10);
        assert_eq!(args.base_url, "https://stats.example.org/");

        let Command::Sql(args) = layered(FULL, &["sql", "SELECT 1"]).command else {
            unreachable!()
        };
        assert_eq!(args.lake.s3_endpoint.as_deref(), Some("http://minio:9000"));

        let Command::Intake(args) = layered(FULL, &["intake"]).command else {
            unreachable!()
        };
        assert_eq!(args.brokers.as_deref(), Some("kafka-intake:9092"));
        assert_eq!(args.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(args.devices.location, "s3://gridstat/devices.json");
        assert_eq!(
            args.devices.s3_endpoint.as_deref(),
            Some("http://minio:9000")
        );

        let Command::Devices(args) = layered(FULL, &["devices", "list"]).command else {
            unreachable!()
        };
        assert_eq!(args.location.location, "s3://gridstat/devices.json");

        assert_eq!(
            ConfigFile::parse(FULL).unwrap().kafka_settings(),
            [
                ("enable.partition.eof".to_string(), "false".to_string()),
                ("session.timeout.ms".to_string(), "45000".to_string())
            ]
        );
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = "[ingest]\nflush_interval_ms = 5000\n[site]\nthreshold = 9\n";
        let args = ingest(layered(file, &["ingest", "--from", "f"]));
        assert_eq!(args.flush_interval_ms, 5000);
        let args = ingest(layered(
            file,
            &["ingest", "--flush-interval-ms", "7", "--from", "f"],
        ));
        assert_eq!(args.flush_interval_ms, 7);
        let args = ingest(layered("", &["ingest", "--from", "f"]));
        assert_eq!(args.flush_interval_ms, 60_000);
        // A flag given with its default value is still given.
        let args = ingest(layered(
            file,
            &["ingest", "--flush-interval-ms=60000", "--from=f"],
        ));
        assert_eq!(args.flush_interval_ms, 60_000);

        let threshold = |file: &str, args: &[&str]| match layered(file, args).command {
            Command::Site(args) => args.threshold,
            other => panic!("{other:?}"),
        };
        assert_eq!(threshold(file, &["site", "--out", "o"]), 9);
        assert_eq!(
            threshold(file, &["site", "--out", "o", "--threshold", "3"]),
            3
        );
        assert_eq!(threshold("", &["site", "--out", "o"]), 5);

        // Global flags, given before or after the subcommand.
        let file = "log_format = \"json\"\nregistry = \"from-file\"\n";
        let cli = layered(file, &["--registry", "flag", "registry"]);
        assert_eq!(cli.registry, Some(PathBuf::from("flag")));
        assert!(matches!(cli.log_format, LogFormat::Json));
        let cli = layered(file, &["registry", "--log-format", "text", "--registry=f"]);
        assert_eq!(cli.registry, Some(PathBuf::from("f")));
        assert!(matches!(cli.log_format, LogFormat::Text));
    }

    #[test]
    fn errors_name_line_and_key() {
        let err = ConfigFile::parse("lake = \"x\"\n[ingest]\nflush_interval_ms = \"soon\"\n")
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("flush_interval_ms"), "{text}");

        let err = ConfigFile::parse("[ingest]\nbroker = \"k:9092\"\n").unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("line 2") && text.contains("broker"), "{text}");

        let err = ConfigFile::parse("log_format = \"xml\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("log_format"));

        let err = ConfigFile::parse("[ingest.kafka]\n\"a.b\" = [1]\n").unwrap_err();
        assert!(format!("{err:#}").contains("a.b"));
    }

    #[test]
    fn config_flag_is_found_before_or_after_the_subcommand() {
        let cli = layered("", &["ingest", "--from=f", "--config=/etc/g.toml"]);
        assert_eq!(cli.config, Some(PathBuf::from("/etc/g.toml")));
        let cli = layered("", &["--config", "a.toml", "ingest", "--from=f"]);
        assert_eq!(cli.config, Some(PathBuf::from("a.toml")));
    }
}
