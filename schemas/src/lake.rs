//! The lake's layout: table prefixes and Hive partition keys, shared by every
//! stage (they agree on paths, never on each other's code). See `docs/lake.md`.
//!
//! Also the contract between ingest and every reader of raw files: how a
//! segment's files are named ([`SegmentFile`]), how ingest records which
//! of them are committed ([`PartitionState`], one versioned object per
//! partition under [`INGEST_STATE`]), and which files a reader counts
//! ([`Coverage`]): only those a committed state covers, so that files left
//! by a crashed or fenced writer are never read.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

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

/// Ingest's per-partition state objects: `_ingest/TOPIC/pPPPP/state-SEQ.json`.
pub const INGEST_STATE: &str = "_ingest";

/// The manifests aggregate runs end with: `_state/manifests/manifest-SEQ.json`.
pub const MANIFESTS: &str = "_state/manifests";

/// The objects readers of aggregate's output see as one snapshot, under
/// these prefixes.
pub const SNAPSHOT_PREFIXES: [&str; 2] = ["curated/", "rollups/"];

/// Version `seq` of the aggregate manifest.
pub fn manifest_object(seq: u64) -> String {
    format!("{MANIFESTS}/manifest-{seq:020}.json")
}

/// The version of a manifest object's path.
pub fn manifest_seq(path: &str) -> Option<u64> {
    path.strip_prefix(MANIFESTS)?
        .strip_prefix("/manifest-")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// One object of a manifest: how to tell it is the one the run wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Size in bytes.
    pub size: u64,
    /// The store's entity tag when the run ended (none where the store has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
}

/// What an aggregate run left: every curated and rollup object as it was
/// when the run completed. Written last, created only if absent: the
/// newest manifest is always of a complete run, and readers that read
/// through it see one run's output, never half of the next.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The run's last day with raw data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_day: Option<NaiveDate>,
    /// When the run completed (RFC 3339, UTC).
    pub completed_at: String,
    /// Objects by path.
    pub objects: std::collections::BTreeMap<String, ManifestEntry>,
}

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

/// The name parts of a raw or quarantine file: one file of a segment
/// (`part-TOPIC-pP-oSTART-END-eEPOCH.parquet`, numbers in decimal without
/// padding: object stores limit a key's length, and S3-compatible servers
/// over a file system that of a file name). A segment is the offsets
/// `[start, end)` of one partition, written by the owner holding `epoch`.
/// Files from before fencing carry the zero-padded start only
/// (`part-TOPIC-pPPPP-oSTART.parquet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// [`topic_slug`] of the topic.
    pub topic_slug: String,
    /// Partition.
    pub partition: i32,
    /// First offset of the segment.
    pub start: i64,
    /// One past its last offset, and the writer's epoch (none for files
    /// from before fencing).
    pub written: Option<(i64, u64)>,
}

impl SegmentFile {
    /// The file of segment `[start, end)` of a partition, written under `epoch`.
    pub fn new(topic: &str, partition: i32, start: i64, end: i64, epoch: u64) -> Self {
        Self {
            topic_slug: topic_slug(topic),
            partition,
            start,
            written: Some((end, epoch)),
        }
    }

    /// The file name.
    pub fn name(&self) -> String {
        match self.written {
            Some((end, epoch)) => format!(
                "part-{}-p{}-o{}-{end}-e{epoch}.parquet",
                self.topic_slug, self.partition, self.start
            ),
            None => format!(
                "part-{}-p{:04}-o{:020}.parquet",
                self.topic_slug, self.partition, self.start
            ),
        }
    }

    /// The parts of a file's name (the last segment of `path`), if it is a
    /// segment file.
    pub fn parse(path: &str) -> Option<SegmentFile> {
        let name = path.rsplit('/').next()?;
        let stem = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
        // From the right: the topic slug may itself contain `-p`.
        let mut parts: Vec<&str> = stem.rsplitn(4, '-').collect();
        parts.reverse();
        let number = |s: &str, prefix: &str| s.strip_prefix(prefix)?.parse::<i64>().ok();
        match parts.as_slice() {
            [rest, start, end, epoch] if epoch.starts_with('e') => {
                let (slug, partition) = rest.rsplit_once("-p")?;
                Some(SegmentFile {
                    topic_slug: slug.to_string(),
                    partition: partition.parse().ok()?,
                    start: number(start, "o")?,
                    written: Some((end.parse().ok()?, u64::try_from(number(epoch, "e")?).ok()?)),
                })
            }
            _ => {
                let (rest, start) = stem.rsplit_once("-o")?;
                let (slug, partition) = rest.rsplit_once("-p")?;
                Some(SegmentFile {
                    topic_slug: slug.to_string(),
                    partition: partition.parse().ok()?,
                    start: start.parse().ok()?,
                    written: None,
                })
            }
        }
    }
}

/// The offsets whose segments one owner (an epoch) committed: `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochRange {
    /// The owner's fencing token.
    pub epoch: u64,
    /// Where the owner started: the partition's `next_offset` when it took over.
    pub from: i64,
    /// One past the last offset it committed.
    pub to: i64,
}

/// What a file source was when first ingested: its first `len` bytes hash
/// to `hash`, so a different file of the same name is told apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceIdentity {
    /// Bytes hashed.
    pub len: u64,
    /// Hex digest of them.
    pub hash: String,
}

/// Where a partition stands in the lake: written by its owner as a new
/// object per change (`state-SEQ.json`, created only if absent), so two
/// writers can never both move it on from the same version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Every offset below this is durably in the lake or in quarantine.
    pub next_offset: i64,
    /// The current owner's fencing token: each owner takes the partition
    /// over with the epoch after the last.
    #[serde(default)]
    pub epoch: u64,
    /// Who holds the epoch (host and process), for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Per epoch, the offsets of its committed segments.
    #[serde(default)]
    pub committed: Vec<EpochRange>,
    /// Offsets below this were written before fencing, by files named by
    /// their start only; all of those below it are committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_until: Option<i64>,
    /// For a file source: what the file was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceIdentity>,
}

impl PartitionState {
    /// A state written before fencing (`{next_offset, pending}`): every
    /// file below `next_offset` counts.
    pub fn from_legacy(next_offset: i64) -> Self {
        Self {
            next_offset,
            legacy_until: Some(next_offset),
            ..Self::default()
        }
    }

    /// The state with which `owner` takes the partition over: the next
    /// epoch, starting at `next_offset`.
    pub fn taken_over(&self, owner: &str) -> Self {
        let epoch = self.epoch + 1;
        // An epoch that committed nothing covers no file: without it the
        // list grows only with owners that wrote.
        let mut committed: Vec<EpochRange> = self
            .committed
            .iter()
            .filter(|r| r.from < r.to)
            .cloned()
            .collect();
        committed.push(EpochRange {
            epoch,
            from: self.next_offset,
            to: self.next_offset,
        });
        Self {
            next_offset: self.next_offset,
            epoch,
            owner: Some(owner.to_string()),
            committed,
            legacy_until: self.legacy_until,
            source: self.source.clone(),
        }
    }

    /// The state once the current owner has written segment `[start, end)`
    /// (`start` at or after `next_offset`: offsets may skip).
    pub fn with_segment(&self, start: i64, end: i64) -> Result<Self, String> {
        if start < self.next_offset || end < start {
            return Err(format!(
                "segment [{start}, {end}) does not follow next_offset {}",
                self.next_offset
            ));
        }
        let mut next = self.clone();
        let range = next
            .committed
            .iter_mut()
            .rev()
            .find(|r| r.epoch == self.epoch)
            .ok_or_else(|| format!("epoch {} has no range", self.epoch))?;
        range.to = end;
        next.next_offset = end;
        Ok(next)
    }

    /// Whether `file` (of this partition) holds committed rows. An owner
    /// writes its segments one after another and moves on from one only by
    /// committing it, so within an epoch's range every file is committed;
    /// the files of a cut it never committed start at or after its `to`.
    pub fn covers(&self, file: &SegmentFile) -> bool {
        match file.written {
            Some((end, epoch)) => self
                .committed
                .iter()
                .any(|r| r.epoch == epoch && r.from <= file.start && end <= r.to),
            None => self.legacy_until.is_some_and(|until| file.start < until),
        }
    }
}

/// Where a partition's state objects live: `_ingest/TOPIC/pPPPP`.
pub fn partition_state_dir(topic: &str, partition: i32) -> String {
    format!("{INGEST_STATE}/{}/p{partition:04}", topic_slug(topic))
}

/// Version `seq` of a partition's state.
pub fn partition_state_object(topic: &str, partition: i32, seq: u64) -> String {
    format!(
        "{}/state-{seq:020}.json",
        partition_state_dir(topic, partition)
    )
}

/// The one state object of a partition written before fencing.
pub fn legacy_partition_state_object(topic: &str, partition: i32) -> String {
    format!("{}.json", partition_state_dir(topic, partition))
}

/// Which version of whose state an object under [`INGEST_STATE`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateObject {
    /// [`topic_slug`] of the topic.
    pub topic_slug: String,
    /// Partition.
    pub partition: i32,
    /// Its version; `None` for the state object from before fencing.
    pub seq: Option<u64>,
}

impl StateObject {
    /// Parse a path under [`INGEST_STATE`].
    pub fn parse(path: &str) -> Option<StateObject> {
        let rest = path.strip_prefix(INGEST_STATE)?.strip_prefix('/')?;
        let mut parts = rest.split('/');
        let slug = parts.next()?;
        let second = parts.next()?;
        let parse_partition = |p: &str| p.strip_prefix('p')?.parse::<i32>().ok();
        match parts.next() {
            None => Some(StateObject {
                topic_slug: slug.to_string(),
                partition: parse_partition(second.strip_suffix(".json")?)?,
                seq: None,
            }),
            Some(name) if parts.next().is_none() => Some(StateObject {
                topic_slug: slug.to_string(),
                partition: parse_partition(second)?,
                seq: Some(
                    name.strip_prefix("state-")?
                        .strip_suffix(".json")?
                        .parse()
                        .ok()?,
                ),
            }),
            Some(_) => None,
        }
    }
}

/// The committed state of every partition: which raw and quarantine files
/// a reader counts.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    states: HashMap<(String, i32), PartitionState>,
}

impl Coverage {
    /// Record a partition's newest state.
    pub fn insert(&mut self, topic_slug: &str, partition: i32, state: PartitionState) {
        self.states
            .insert((topic_slug.to_string(), partition), state);
    }

    /// Whether the file at `path` holds committed rows: a segment file of a
    /// partition whose state covers it.
    pub fn covers(&self, path: &str) -> bool {
        SegmentFile::parse(path).is_some_and(|file| {
            self.states
                .get(&(file.topic_slug.clone(), file.partition))
                .is_some_and(|state| state.covers(&file))
        })
    }

    /// Partitions with a state.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether no partition has a state.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_that_committed_nothing_leave_no_range_behind() {
        let mut state = PartitionState::default().taken_over("a");
        for owner in ["b", "c", "d"] {
            state = state.taken_over(owner);
        }
        state = state.with_segment(0, 10).unwrap().taken_over("e");
        state = state.taken_over("f");
        assert_eq!(
            state.committed,
            [
                EpochRange {
                    epoch: 4,
                    from: 0,
                    to: 10
                },
                EpochRange {
                    epoch: 6,
                    from: 10,
                    to: 10
                },
            ]
        );
        assert!(state.covers(&SegmentFile::new("t", 0, 0, 10, 4)));
        assert!(!state.covers(&SegmentFile::new("t", 0, 10, 12, 5)));
    }

    #[test]
    fn segment_file_names_round_trip_old_and_new() {
        let file = SegmentFile::new("grid.visits-v1", 3, 1200, 1500, 7);
        let name = file.name();
        assert_eq!(name, "part-grid_visits-v1-p3-o1200-1500-e7.parquet");
        assert_eq!(
            SegmentFile::parse(&format!("raw/visits/dt=2022-11-25/county=1/{name}")),
            Some(file)
        );
        let old =
            SegmentFile::parse("part-file_c_ndjson-p0000-o00000000000000000042.parquet").unwrap();
        assert_eq!(
            (
                old.topic_slug.as_str(),
                old.partition,
                old.start,
                old.written
            ),
            ("file_c_ndjson", 0, 42, None)
        );
        assert_eq!(SegmentFile::parse("part-00000.parquet"), None);
        assert_eq!(SegmentFile::parse("notes.txt"), None);
    }

    #[test]
    fn a_state_covers_only_segments_its_owners_committed() {
        let legacy = PartitionState::from_legacy(100);
        let a = legacy.taken_over("a");
        let a = a
            .with_segment(100, 150)
            .unwrap()
            .with_segment(160, 200)
            .unwrap();
        // A stale writer of epoch 1 cut [200, 240) but b took over at 200.
        let b = a.taken_over("b").with_segment(200, 260).unwrap();
        let seg = |start, end, epoch| SegmentFile::new("t", 0, start, end, epoch);
        assert!(b.covers(&seg(100, 150, 1)) && b.covers(&seg(160, 200, 1)));
        assert!(
            !b.covers(&seg(200, 240, 1)),
            "uncommitted cut of the fenced owner"
        );
        assert!(b.covers(&seg(200, 260, 2)));
        assert!(
            !b.covers(&seg(260, 300, 2)),
            "a cut whose state was never written"
        );
        let old = |start| SegmentFile {
            start,
            written: None,
            ..seg(0, 0, 0)
        };
        assert!(b.covers(&old(99)) && !b.covers(&old(100)));
        assert_eq!(b.next_offset, 260);
        assert!(
            b.with_segment(250, 300).is_err(),
            "segments only move forward"
        );
        assert_eq!(b.epoch, 2);
    }

    #[test]
    fn state_objects_are_parsed_with_their_version() {
        assert_eq!(
            StateObject::parse(&partition_state_object("a.b", 2, 17)),
            Some(StateObject {
                topic_slug: "a_b".into(),
                partition: 2,
                seq: Some(17)
            })
        );
        assert_eq!(
            StateObject::parse(&legacy_partition_state_object("a.b", 2)),
            Some(StateObject {
                topic_slug: "a_b".into(),
                partition: 2,
                seq: None
            })
        );
        assert_eq!(StateObject::parse("_ingest/a/p0002/other.txt"), None);
        let json = r#"{"next_offset":5,"pending":null}"#;
        let legacy: PartitionState = serde_json::from_str(json).unwrap();
        assert_eq!(legacy.next_offset, 5);
    }

    #[test]
    fn dt_roundtrip() {
        let d = NaiveDate::from_ymd_opt(2022, 11, 27).unwrap();
        assert_eq!(dt_partition(d), "dt=2022-11-27");
        assert_eq!(parse_dt_partition("dt=2022-11-27"), Some(d));
        assert_eq!(parse_dt_partition("county=440703"), None);
        assert_eq!(topic_slug("grid.visits.v1"), "grid_visits_v1");
    }
}
