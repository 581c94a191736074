//! The lake's layout: table prefixes and Hive partition keys, shared by every
//! stage (they agree on paths, never on each other's code). See `docs/lake.md`.

use chrono::NaiveDate;

/// Raw visits as ingested: `raw/visits/dt=YYYY-MM-DD/county=CODE/part-….parquet`.
pub const RAW_VISITS: &str = "raw/visits";
/// Raw case updates.
pub const RAW_CASES: &str = "raw/cases";
/// Rejected messages: `quarantine/dt=YYYY-MM-DD/part-….parquet`.
pub const QUARANTINE: &str = "quarantine";
/// Deduplicated visits joined with the registry.
pub const CURATED_VISITS: &str = "curated/visits";
/// Deduplicated case updates joined with the registry.
pub const CURATED_CASES: &str = "curated/cases";
/// One row per handed-on case (hardship or hazard) with its lifecycle.
pub const CURATED_CASE_STATE: &str = "curated/case_state";
/// Rollups.
pub const ROLLUPS: &str = "rollups";
/// Bookkeeping of the aggregate stage (which raw files it has seen).
pub const AGGREGATE_STATE: &str = "_state/aggregate.json";

/// The `dt=` partition directory for a local date.
pub fn dt_partition(day: NaiveDate) -> String {
    format!("dt={}", day.format("%Y-%m-%d"))
}

/// Parse a `dt=YYYY-MM-DD` path segment.
pub fn parse_dt_partition(segment: &str) -> Option<NaiveDate> {
    let value = segment.strip_prefix("dt=")?;
    NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()
}

/// Sanitise a topic name for use in an object name (`.` and `/` become `_`).
pub fn topic_slug(topic: &str) -> String {
    topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dt_roundtrip() {
        let d = NaiveDate::from_ymd_opt(2022, 11, 27).unwrap();
        assert_eq!(dt_partition(d), "dt=2022-11-27");
        assert_eq!(parse_dt_partition("dt=2022-11-27"), Some(d));
        assert_eq!(parse_dt_partition("county=440703"), None);
        assert_eq!(topic_slug("grid.visits.v1"), "grid_visits_v1");
    }
}
