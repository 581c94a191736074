//! `--config FILE`: the same settings as the flags, from a TOML file.
//!
//! Precedence, highest first: command-line flags, `GRIDSTAT_*` environment
//! variables, the config file, built-in defaults. The file is applied by
//! setting each of its values as the flag's environment variable unless that
//! variable is already set, before the command line is parsed; so clap does
//! the precedence and every value is parsed and checked in one place.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// A parsed config file. Unknown keys are errors, so a typo never passes silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    lake: Option<String>,
    s3_endpoint: Option<String>,
    s3_allow_http: Option<bool>,
    registry: Option<PathBuf>,
    log_format: Option<String>,
    campaign_start: Option<chrono::NaiveDate>,
    #[serde(default)]
    ingest: IngestSection,
    #[serde(default)]
    aggregate: AggregateSection,
    #[serde(default)]
    site: SiteSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestSection {
    brokers: Option<String>,
    topics: Option<Vec<String>>,
    group: Option<String>,
    flush_interval_ms: Option<u64>,
    max_segment_rows: Option<u64>,
    max_buffered_rows: Option<u64>,
    max_buffered_bytes: Option<u64>,
    metrics_addr: Option<std::net::SocketAddr>,
    /// librdkafka settings, as with `-X key=value`.
    #[serde(default)]
    kafka: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregateSection {
    overdue_hours: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteSection {
    threshold: Option<u32>,
    base_url: Option<String>,
}

/// The config file named by `--config FILE` / `--config=FILE` in `args`, or
/// by `GRIDSTAT_CONFIG`.
pub(crate) fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let s = arg.to_string_lossy();
        if s == "--" {
            break;
        }
        if s == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = s.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("GRIDSTAT_CONFIG").map(PathBuf::from)
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
        if let Some(format) = &config.log_format {
            anyhow::ensure!(
                matches!(format.as_str(), "text" | "json"),
                "log_format = {format:?}: expected \"text\" or \"json\""
            );
        }
        for (key, value) in &config.ingest.kafka {
            setting_text(value).with_context(|| {
                format!("[ingest.kafka] {key}: expected a string, number or boolean")
            })?;
        }
        Ok(config)
    }

    /// Each value as the environment variable of its flag.
    pub(crate) fn env_values(&self) -> Vec<(&'static str, String)> {
        let ingest = &self.ingest;
        let pairs: [(&'static str, Option<String>); 17] = [
            ("GRIDSTAT_LAKE", self.lake.clone()),
            ("GRIDSTAT_S3_ENDPOINT", self.s3_endpoint.clone()),
            (
                "GRIDSTAT_S3_ALLOW_HTTP",
                self.s3_allow_http.map(|b| b.to_string()),
            ),
            (
                "GRIDSTAT_REGISTRY",
                self.registry.as_ref().map(|p| p.display().to_string()),
            ),
            ("GRIDSTAT_LOG_FORMAT", self.log_format.clone()),
            (
                "GRIDSTAT_CAMPAIGN_START",
                self.campaign_start.map(|d| d.to_string()),
            ),
            ("GRIDSTAT_BROKERS", ingest.brokers.clone()),
            (
                "GRIDSTAT_TOPICS",
                ingest.topics.as_ref().map(|t| t.join(",")),
            ),
            ("GRIDSTAT_GROUP", ingest.group.clone()),
            (
                "GRIDSTAT_FLUSH_INTERVAL_MS",
                ingest.flush_interval_ms.map(|v| v.to_string()),
            ),
            (
                "GRIDSTAT_MAX_SEGMENT_ROWS",
                ingest.max_segment_rows.map(|v| v.to_string()),
            ),
            (
                "GRIDSTAT_MAX_BUFFERED_ROWS",
                ingest.max_buffered_rows.map(|v| v.to_string()),
            ),
            (
                "GRIDSTAT_MAX_BUFFERED_BYTES",
                ingest.max_buffered_bytes.map(|v| v.to_string()),
            ),
            (
                "GRIDSTAT_METRICS_ADDR",
                ingest.metrics_addr.map(|a| a.to_string()),
            ),
            (
                "GRIDSTAT_OVERDUE_HOURS",
                self.aggregate.overdue_hours.map(|v| v.to_string()),
            ),
            (
                "GRIDSTAT_SITE_THRESHOLD",
                self.site.threshold.map(|v| v.to_string()),
            ),
            ("GRIDSTAT_SITE_BASE_URL", self.site.base_url.clone()),
        ];
        pairs
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    }

    /// Set every value whose environment variable is not set yet. Called
    /// first thing in `main`, while the process has one thread.
    pub(crate) fn apply_to_env(&self) {
        for (key, value) in self.env_values() {
            if std::env::var_os(key).is_none() {
                std::env::set_var(key, value);
            }
        }
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

    #[test]
    fn full_file_maps_to_flag_variables() {
        let config = ConfigFile::parse(
            r#"
lake = "s3://gridstat/lake"
s3_endpoint = "http://minio:9000"
s3_allow_http = true
log_format = "json"
[ingest]
brokers = "kafka:9092"
topics = ["grid.visits.v1", "grid.cases.v1"]
flush_interval_ms = 30000
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
"#,
        )
        .unwrap();
        let env: BTreeMap<_, _> = config.env_values().into_iter().collect();
        assert_eq!(env["GRIDSTAT_LAKE"], "s3://gridstat/lake");
        assert_eq!(env["GRIDSTAT_S3_ALLOW_HTTP"], "true");
        assert_eq!(env["GRIDSTAT_TOPICS"], "grid.visits.v1,grid.cases.v1");
        assert_eq!(env["GRIDSTAT_FLUSH_INTERVAL_MS"], "30000");
        assert_eq!(env["GRIDSTAT_MAX_BUFFERED_ROWS"], "100000");
        assert_eq!(env["GRIDSTAT_MAX_BUFFERED_BYTES"], "67108864");
        assert_eq!(env["GRIDSTAT_METRICS_ADDR"], "0.0.0.0:9464");
        assert_eq!(env["GRIDSTAT_OVERDUE_HOURS"], "48");
        assert_eq!(env["GRIDSTAT_SITE_THRESHOLD"], "10");
        assert!(!env.contains_key("GRIDSTAT_GROUP"));
        assert_eq!(
            config.kafka_settings(),
            [
                ("enable.partition.eof".to_string(), "false".to_string()),
                ("session.timeout.ms".to_string(), "45000".to_string())
            ]
        );
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
    fn config_flag_is_found_before_parsing() {
        let args: Vec<OsString> = ["gridstat", "ingest", "--config=/etc/g.toml"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(config_path(&args), Some(PathBuf::from("/etc/g.toml")));
        let args: Vec<OsString> = ["gridstat", "--config", "a.toml", "ingest"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(config_path(&args), Some(PathBuf::from("a.toml")));
    }
}
