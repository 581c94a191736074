//! The ingest core shared by every source: decode, file into segments,
//! flush segments to the lake, and say which offsets may be committed.
//!
//! Exactly-once without waiting for traffic: each partition's records are
//! cut into segments `[start, end)`. A segment is written as one file per
//! table × dt × county, all named after (topic, partition, start, end, the
//! owner's epoch); then a new version of the partition's state records
//! `next_offset = end`, created only if no other writer moved the state on
//! meanwhile. Only then is `end` committed. On assignment the owner takes
//! the partition over with the next epoch; offsets below `next_offset` are
//! skipped (already in the lake). Files of a segment whose state was never
//! written (a crash, a fenced or timed-out writer) are covered by no
//! committed state, and readers ignore them (`gridstat_schemas::lake::Coverage`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, NaiveDate};
use gridstat_schemas::arrow_schema::Lineage;
use gridstat_schemas::{decode_placed, DecodeError, DecodeOptions, ErrorClass, Placed, Registry};

use crate::config::IngestOptions;
use crate::encode::{encode_parquet, object_key, writer_properties, FileKey, Table};
use crate::error::{Error, Result};
use crate::metrics::IngestMetrics;
use crate::segment::{Filed, GridRanks, OpenFile, Segment};
use crate::store::{Created, LakeStore, VersionedState};

/// One message from a source.
#[derive(Debug, Clone, Copy)]
pub struct SourceRecord<'a> {
    /// Topic (or `file:NAME`).
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset (line number − 1 for a file).
    pub offset: i64,
    /// Message key.
    pub key: Option<&'a [u8]>,
    /// Message value.
    pub payload: &'a [u8],
    /// Transport timestamp (Kafka message time), if any.
    pub timestamp: Option<DateTime<FixedOffset>>,
}

/// An offset that may now be committed: everything below is in the lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// The next offset to read.
    pub next_offset: i64,
}

#[derive(Debug)]
struct PartitionSlot {
    topic: Arc<str>,
    /// Offsets below are in the lake: `state`'s `next_offset`.
    durable: i64,
    /// The state this owner last wrote, with its version.
    state: VersionedState,
    /// The version this owner took the partition over with: never removed
    /// while it owns the partition, so a stale owner's next write meets it.
    takeover_seq: u64,
    segment: Option<Segment>,
    /// Local day of the last accepted event: dates quarantine rows that
    /// have no transport timestamp, deterministically.
    last_day: Option<NaiveDate>,
}

/// The ingest core. Sources push records; the engine tells which offsets to commit.
#[derive(Debug)]
pub struct IngestEngine {
    store: LakeStore,
    registry: Arc<Registry>,
    opts: IngestOptions,
    partitions: BTreeMap<(Arc<str>, i32), PartitionSlot>,
    buffered_rows: usize,
    buffered_bytes: usize,
    metrics: Arc<IngestMetrics>,
    in_flight: Vec<InFlight>,
    background_writes: bool,
    grid_ranks: GridRanks,
    decoder: Decoder,
    /// Partitions another writer took over from this one: records of them
    /// are refused until they are assigned again (a rebalance), instead of
    /// taking them back at whatever offset the source has reached.
    fenced: std::collections::BTreeSet<(Arc<str>, i32)>,
}

impl IngestEngine {
    /// An engine writing to `store`.
    pub fn new(
        store: LakeStore,
        registry: Arc<Registry>,
        opts: IngestOptions,
        metrics: Arc<IngestMetrics>,
    ) -> Self {
        Self {
            grid_ranks: GridRanks::new(&registry),
            decoder: Decoder {
                registry: Arc::clone(&registry),
                opts: opts.decode.clone(),
                threads: opts.threads,
                #[cfg(test)]
                decode_one: decode_placed,
            },
            store,
            registry,
            opts,
            partitions: BTreeMap::new(),
            buffered_rows: 0,
            buffered_bytes: 0,
            metrics,
            in_flight: Vec::new(),
            background_writes: false,
            fenced: Default::default(),
        }
    }

    /// Take ownership of a partition: take its state over in the lake with
    /// the next epoch (fencing any earlier owner) and return the offset
    /// below which everything is in the lake.
    pub async fn assign(&mut self, topic: &str, partition: i32) -> Result<i64> {
        self.assign_source(topic, partition, None).await
    }

    /// [`assign`](Self::assign) for a file source whose first bytes are
    /// `prefix`: refused if the partition was ingested from a file whose
    /// first bytes differ (another file of the same name).
    pub async fn assign_source(
        &mut self,
        topic: &str,
        partition: i32,
        prefix: Option<&[u8]>,
    ) -> Result<i64> {
        self.fenced.remove(&(Arc::from(topic), partition));
        let mut attempts = 0;
        let (state, takeover_seq) = loop {
            let current = self.store.read_state(topic, partition).await?;
            let mut next = current.state.taken_over(&self.opts.owner);
            if let Some(prefix) = prefix {
                next.source = Some(crate::source::check_identity(
                    topic,
                    current.state.source.as_ref(),
                    prefix,
                )?);
            }
            let seq = current.seq + 1;
            match self
                .store
                .create_state(topic, partition, seq, &next)
                .await?
            {
                Created::Yes => {
                    // Versions before the one preceding this takeover are
                    // of owners that can no longer move the state on.
                    if current.seq > 1 {
                        self.store
                            .remove_states_below(topic, partition, current.seq)
                            .await;
                    }
                    break (VersionedState { seq, state: next }, seq);
                }
                Created::Fenced if attempts < TAKEOVER_ATTEMPTS => attempts += 1,
                Created::Fenced => {
                    return Err(Error::Contended {
                        topic: topic.into(),
                        partition,
                        attempts,
                    })
                }
            }
        };
        let durable = state.state.next_offset;
        tracing::info!(
            topic,
            partition,
            next_offset = durable,
            epoch = state.state.epoch,
            "Partition assigned."
        );
        let topic: Arc<str> = topic.into();
        self.partitions.insert(
            (Arc::clone(&topic), partition),
            PartitionSlot {
                topic,
                durable,
                state,
                takeover_seq,
                segment: None,
                last_day: None,
            },
        );
        self.metrics.set_partitions_owned(self.partitions.len());
        Ok(durable)
    }

    /// Drop every partition and abandon every write in progress: after a
    /// write outlived its deadline, the worker cannot know what of it
    /// landed, so it gives everything up and takes partitions over anew.
    pub fn reset(&mut self) {
        for f in self.in_flight.drain(..) {
            f.handle.abort();
        }
        self.report_writes();
        let owned: Vec<(Arc<str>, i32)> = self.partitions.keys().cloned().collect();
        for (topic, partition) in owned {
            self.revoke(&topic, partition);
        }
    }

    /// Give a partition up: its unwritten records are dropped (the next
    /// owner reads them again from the last committed offset).
    pub fn revoke(&mut self, topic: &str, partition: i32) {
        if let Some(slot) = self.partitions.remove(&(Arc::from(topic), partition)) {
            if let Some(seg) = slot.segment {
                self.buffered_rows -= seg.rows;
                self.buffered_bytes -= seg.bytes;
            }
            self.metrics.forget_partition(topic, partition);
            self.metrics.set_partitions_owned(self.partitions.len());
            tracing::info!(topic, partition, "Partition revoked.");
        }
    }

    /// Let segment writes overlap with decoding. Only for sources without
    /// rebalances (a file): a Kafka worker must have finished writing a
    /// partition before it can give it up, so its writes complete in line.
    pub fn set_background_writes(&mut self, on: bool) {
        self.background_writes = on;
    }

    /// Take the partitions this worker lost to a newer owner while writing
    /// since the last call (a source that can be told to re-balance, as
    /// Kafka's, checks who owns them now).
    pub fn take_fenced(&mut self) -> Vec<(Arc<str>, i32)> {
        std::mem::take(&mut self.fenced).into_iter().collect()
    }

    /// Whether a partition is currently owned.
    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        self.partitions
            .keys()
            .any(|(t, p)| &**t == topic && *p == partition)
    }

    /// Partitions currently owned, each with the offset below which
    /// everything is in the lake (and committed or about to be).
    pub fn durable_offsets(&self) -> Vec<(Arc<str>, i32, i64)> {
        self.partitions
            .iter()
            .map(|((t, p), s)| (Arc::clone(t), *p, s.durable))
            .collect()
    }

    /// The metrics this engine updates.
    pub fn metrics(&self) -> &Arc<IngestMetrics> {
        &self.metrics
    }

    /// File one record; may flush segments and return offsets to commit.
    pub async fn push(&mut self, rec: SourceRecord<'_>, now: Instant) -> Result<Vec<Commit>> {
        self.push_batch(std::slice::from_ref(&rec), now).await
    }

    /// File records in order, as [`push`](Self::push) does one by one; a
    /// large batch is decoded on every core first (decoding is pure), then
    /// filed in order on this thread.
    pub async fn push_batch(
        &mut self,
        recs: &[SourceRecord<'_>],
        now: Instant,
    ) -> Result<Vec<Commit>> {
        let routes = self.route(recs).await?;
        let wanted: Vec<bool> = recs
            .iter()
            .zip(&routes.key_of)
            .map(|(rec, &key)| {
                rec.offset >= self.partitions[&routes.keys[key]].durable && !is_blank(rec.payload)
            })
            .collect();
        self.decoder.opts.now = Some(wall_clock());
        let decoded = self.decoder.decode_where(recs, &wanted);
        self.file_all(recs, &routes, &decoded, now).await
    }

    /// File records already decoded by [`decoder`](Self::decoder) (`None`
    /// for a blank line), so that a source can decode its next batch while
    /// this one is filed. Records already in the lake are skipped here, as
    /// in [`push_batch`](Self::push_batch).
    pub async fn push_decoded(
        &mut self,
        recs: &[SourceRecord<'_>],
        decoded: &[Decoded<'_>],
        now: Instant,
    ) -> Result<Vec<Commit>> {
        if recs.len() != decoded.len() {
            return Err(Error::Encode {
                what: "a decoded batch".into(),
                source: format!("{} records, {} results", recs.len(), decoded.len()).into(),
            });
        }
        let routes = self.route(recs).await?;
        self.file_all(recs, &routes, decoded, now).await
    }

    /// A decoder with this engine's registry and limits, usable on another
    /// thread while the engine files.
    pub fn decoder(&self) -> Decoder {
        let mut decoder = self.decoder.clone();
        decoder.opts.now = Some(wall_clock());
        decoder
    }

    /// Each record's partition, assigning new ones. Records of a batch come
    /// from few partitions, mostly one after another: each partition is
    /// looked up once per run, not per record.
    async fn route(&mut self, recs: &[SourceRecord<'_>]) -> Result<Routes> {
        let mut routes = Routes {
            keys: Vec::new(),
            key_of: Vec::with_capacity(recs.len()),
        };
        for rec in recs {
            let same = routes
                .keys
                .last()
                .is_some_and(|(t, p)| *p == rec.partition && **t == *rec.topic);
            if !same {
                let key = self.partition_key(rec.topic, rec.partition);
                if self.fenced.contains(&key) {
                    // The records since its last commit were dropped with
                    // the segment: a source that cannot read them again
                    // (a file read once) must not go on past them.
                    return Err(Error::Fenced {
                        topic: rec.topic.to_string(),
                        partition: rec.partition,
                    });
                }
                if !self.partitions.contains_key(&key) {
                    self.assign(rec.topic, rec.partition).await?;
                }
                routes.keys.push(key);
            }
            routes.key_of.push(routes.keys.len() - 1);
        }
        Ok(routes)
    }

    async fn file_all(
        &mut self,
        recs: &[SourceRecord<'_>],
        routes: &Routes,
        decoded: &[Decoded<'_>],
        now: Instant,
    ) -> Result<Vec<Commit>> {
        let mut commits = Vec::new();
        for ((rec, &key), decoded) in recs.iter().zip(&routes.key_of).zip(decoded) {
            commits.extend(
                self.file(rec, &routes.keys[key], decoded.as_ref(), now)
                    .await?,
            );
        }
        Ok(commits)
    }

    /// The map key of a partition, reusing the topic's `Arc`: no
    /// allocation per record on the hot path.
    fn partition_key(&self, topic: &str, partition: i32) -> (Arc<str>, i32) {
        let topic = self
            .partitions
            .keys()
            .find(|(t, _)| &**t == topic)
            .map_or_else(|| Arc::from(topic), |(t, _)| Arc::clone(t));
        (topic, partition)
    }

    /// File one record whose decoding (if it needed one) is done.
    async fn file(
        &mut self,
        rec: &SourceRecord<'_>,
        key: &(Arc<str>, i32),
        decoded: Option<&std::result::Result<Placed<'_>, DecodeError>>,
        now: Instant,
    ) -> Result<Vec<Commit>> {
        let Some(slot) = self.partitions.get_mut(key) else {
            return Ok(Vec::new()); // revoked meanwhile: its next owner reads it again
        };
        if rec.offset < slot.durable {
            return Ok(Vec::new()); // already in the lake: a replay
        }
        self.metrics.record_in(rec.payload.len());
        let seg = slot
            .segment
            .get_or_insert_with(|| Segment::new(rec.offset, now));
        let (rows, bytes) = (seg.rows, seg.bytes);
        let lineage = Lineage {
            topic: &slot.topic,
            partition: rec.partition,
            offset: rec.offset,
            received_at: rec.timestamp,
        };
        let filed = match decoded {
            None => {
                seg.skip(rec.offset);
                None
            }
            Some(Ok(placed)) => {
                slot.last_day = Some(placed.day);
                Some(seg.add_valid(
                    placed,
                    &self.registry,
                    &self.grid_ranks,
                    &lineage,
                    rec.payload.len(),
                ))
            }
            Some(Err(e)) => {
                let fallback = slot.last_day.unwrap_or(self.opts.decode.campaign_start);
                Some(seg.add_rejected(
                    e,
                    &lineage,
                    fallback,
                    rec.key,
                    rec.payload,
                    self.opts.quarantine_raw_limit,
                    &self.registry,
                ))
            }
        };
        if let Some(Filed::Quarantined(class)) = filed {
            self.metrics.quarantined(class);
        }
        self.buffered_rows += seg.rows - rows;
        self.buffered_bytes += seg.bytes - bytes;
        let seg_rows = seg.rows;
        let mut commits = Vec::new();
        if seg_rows >= self.opts.max_segment_rows {
            commits.extend(self.flush(key).await?);
        }
        while self.buffered_bytes > self.opts.max_buffered_bytes
            || self.buffered_rows > self.opts.max_buffered_rows
        {
            let Some(largest) = self.largest_flushable() else {
                break;
            };
            commits.extend(self.flush(&largest).await?);
        }
        Ok(commits)
    }

    fn largest_flushable(&self) -> Option<(Arc<str>, i32)> {
        self.partitions
            .iter()
            .filter_map(|(k, s)| s.segment.as_ref().map(|seg| (seg.bytes, k)))
            .max_by_key(|(b, _)| *b)
            .map(|(_, k)| k.clone())
    }

    /// Flush every segment older than the flush interval.
    pub async fn tick(&mut self, now: Instant) -> Result<Vec<Commit>> {
        let due: Vec<_> = self
            .partitions
            .iter()
            .filter(|(_, s)| {
                s.segment.as_ref().is_some_and(|seg| {
                    now.duration_since(seg.opened_at) >= self.opts.flush_interval
                })
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut commits = self.reap(None).await?;
        for key in due {
            commits.extend(self.flush(&key).await?);
        }
        Ok(commits)
    }

    /// Flush everything buffered (end of input, shutdown).
    pub async fn flush_all(&mut self) -> Result<Vec<Commit>> {
        let keys: Vec<_> = self.partitions.keys().cloned().collect();
        let mut commits = Vec::new();
        for key in keys {
            commits.extend(self.flush(&key).await?);
        }
        commits.extend(self.reap_all().await?);
        Ok(commits)
    }

    /// Cut the partition's open segment and start writing it in the
    /// background, so decoding goes on while it is encoded and uploaded.
    /// A partition's segments are written one after another (its state
    /// object must only move forward); at most `MAX_IN_FLIGHT` are written
    /// at once, which bounds memory. Returns the commits of finished writes.
    async fn flush(&mut self, key: &(Arc<str>, i32)) -> Result<Vec<Commit>> {
        let mut commits = Vec::new();
        if self.in_flight.iter().any(|f| &f.key == key) {
            commits.extend(self.reap(Some(key)).await?);
        }
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            let oldest = self.in_flight[0].key.clone();
            commits.extend(self.reap(Some(&oldest)).await?);
        }
        let Some(slot) = self.partitions.get_mut(key) else {
            return Ok(commits);
        };
        let Some(seg) = slot.segment.take() else {
            return Ok(commits);
        };
        self.buffered_rows -= seg.rows;
        self.buffered_bytes -= seg.bytes;
        let end = seg.end;
        let job = write_segment(
            self.store.clone(),
            Arc::clone(&slot.topic),
            key.1,
            seg,
            Owned {
                state: slot.state.clone(),
                takeover_seq: slot.takeover_seq,
            },
            self.opts.clone(),
            Arc::clone(&self.metrics),
        );
        let (deadline, topic, partition) =
            (self.opts.write_deadline, Arc::clone(&slot.topic), key.1);
        let bounded = async move {
            tokio::time::timeout(deadline, job)
                .await
                .unwrap_or_else(|_| {
                    Err(Error::WriteDeadline {
                        topic: topic.to_string(),
                        partition,
                        seconds: deadline.as_secs_f64(),
                    })
                })
        };
        self.in_flight.push(InFlight {
            key: key.clone(),
            end,
            started: Instant::now(),
            handle: tokio::spawn(bounded),
        });
        self.report_writes();
        if self.background_writes {
            commits.extend(self.reap(None).await?);
        } else {
            commits.extend(self.reap(Some(key)).await?);
        }
        Ok(commits)
    }

    /// Collect finished background writes: all of `key`'s (waiting for
    /// them), or, with `None`, those already done.
    async fn reap(&mut self, key: Option<&(Arc<str>, i32)>) -> Result<Vec<Commit>> {
        let mut commits = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() {
            let wanted = match key {
                Some(k) => &self.in_flight[i].key == k,
                None => self.in_flight[i].handle.is_finished(),
            };
            if !wanted {
                i += 1;
                continue;
            }
            let f = self.in_flight.remove(i);
            let written = f.handle.await;
            self.report_writes();
            let written = written.map_err(|e| Error::Encode {
                what: "a segment write task".into(),
                source: Box::new(e),
            })??;
            match written {
                Written::Committed(state) => {
                    if let Some(slot) = self.partitions.get_mut(&f.key) {
                        slot.durable = state.state.next_offset;
                        slot.state = state;
                    }
                    commits.push(Commit {
                        topic: Arc::clone(&f.key.0),
                        partition: f.key.1,
                        next_offset: f.end,
                    });
                }
                Written::Fenced => {
                    tracing::warn!(
                        topic = &*f.key.0,
                        partition = f.key.1,
                        "Partition taken over by another worker; its records are left to the new owner."
                    );
                    self.metrics.fenced();
                    self.revoke(&f.key.0, f.key.1);
                    self.fenced.insert(f.key.clone());
                }
            }
        }
        Ok(commits)
    }

    /// Tell the metrics when the oldest write in progress started.
    fn report_writes(&self) {
        let oldest = self.in_flight.iter().map(|f| f.started).min();
        self.metrics.writing_since(oldest);
    }

    /// Wait for every background write.
    async fn reap_all(&mut self) -> Result<Vec<Commit>> {
        let mut commits = Vec::new();
        while let Some(first) = self.in_flight.first().map(|f| f.key.clone()) {
            commits.extend(self.reap(Some(&first)).await?);
        }
        Ok(commits)
    }

    /// The class counts quarantined so far (for summaries).
    pub fn quarantined_by_class(&self) -> Vec<(ErrorClass, u64)> {
        self.metrics.quarantined_by_class()
    }
}

/// The real clock, against which times in the future are rejected.
fn wall_clock() -> DateTime<FixedOffset> {
    chrono::Utc::now().fixed_offset()
}

/// A message of only whitespace (a blank line) is consumed without a row;
/// an empty one is quarantined like any other undecodable message.
fn is_blank(payload: &[u8]) -> bool {
    !payload.is_empty() && payload.iter().all(u8::is_ascii_whitespace)
}

/// What decoding made of a record: `None` if it was not decoded (a
/// blank line, or a record already in the lake, which `push_batch` skips).
pub type Decoded<'a> = Option<std::result::Result<Placed<'a>, DecodeError>>;

/// Each record's partition, as an index into `keys`.
struct Routes {
    keys: Vec<(Arc<str>, i32)>,
    key_of: Vec<usize>,
}

/// Decodes batches on every core (the engine's for Kafka batches), or on
/// fewer beside filing ([`Decoder::beside_filing`], the file reader's for
/// [`IngestEngine::push_decoded`]).
#[derive(Debug, Clone)]
pub struct Decoder {
    registry: Arc<Registry>,
    opts: DecodeOptions,
    threads: usize,
    /// [`decode_placed`], or in unit tests one that fails on a message.
    /// Only there: called through a pointer, decoding cost 0.3 % more.
    #[cfg(test)]
    decode_one: DecodeOne,
}

/// Decode and validate one message (the signature of [`decode_placed`]).
#[cfg(test)]
type DecodeOne = for<'a> fn(
    &'a [u8],
    &Registry,
    &DecodeOptions,
    Option<DateTime<FixedOffset>>,
) -> std::result::Result<Placed<'a>, DecodeError>;

impl Decoder {
    /// The same decoder for a reader that decodes each block while the
    /// engine files the previous one and encodes segments: decoding is a
    /// quarter of an ingest's CPU (`perf`), so it gets a quarter of the
    /// threads, at least its own. On two cores that is the reader alone:
    /// a helper thread per block there cost 4 % more CPU and 4 % more wall
    /// time (thread starts, three busy threads on two cores;
    /// docs/BENCHMARKS.md).
    pub fn beside_filing(self) -> Self {
        Self {
            threads: (self.threads / 4).max(1),
            ..self
        }
    }

    /// Decode every record that is not a blank line.
    pub fn decode<'a>(&self, recs: &[SourceRecord<'a>]) -> Vec<Decoded<'a>> {
        let wanted: Vec<bool> = recs.iter().map(|rec| !is_blank(rec.payload)).collect();
        self.decode_where(recs, &wanted)
    }

    /// Decode the records marked in `wanted` (others yield `None`), split
    /// over up to `threads` threads, results in input order.
    fn decode_where<'a>(&self, recs: &[SourceRecord<'a>], wanted: &[bool]) -> Vec<Decoded<'a>> {
        let decode = |recs: &[SourceRecord<'a>], wanted: &[bool], out: &mut [Decoded<'a>]| {
            let chunk = || {
                for ((rec, &wanted), slot) in recs.iter().zip(wanted).zip(out.iter_mut()) {
                    if wanted {
                        *slot = Some(self.decode_record(rec));
                    }
                }
            };
            // Guarded per chunk, not per record: a result moved out of
            // `catch_unwind` cost a copy of every decoded record (+0.6 %
            // instructions). After a panic the chunk is decoded again,
            // record by record.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(chunk)).is_err() {
                for ((rec, &wanted), slot) in recs.iter().zip(wanted).zip(out.iter_mut()) {
                    if wanted {
                        self.decode_guarded(rec, slot);
                    }
                }
            }
        };
        // Decoded in place into one vector sized up front: collecting each
        // chunk's results and copying them together cost a copy of every
        // result and fresh pages for both.
        let mut out: Vec<Decoded<'a>> = Vec::with_capacity(recs.len());
        out.resize_with(recs.len(), || None);
        let threads = self.threads.min(recs.len() / MIN_RECORDS_PER_THREAD).max(1);
        if threads == 1 {
            decode(recs, wanted, &mut out);
            return out;
        }
        // Threads claim small chunks in turn rather than a fixed share each:
        // the cores are shared with segment encoding, and a thread that gets
        // less of a core would otherwise keep the others waiting.
        let chunks = std::sync::Mutex::new(
            recs.chunks(DECODE_CHUNK)
                .zip(wanted.chunks(DECODE_CHUNK))
                .zip(out.chunks_mut(DECODE_CHUNK)),
        );
        let claim = |_: usize| loop {
            let next = chunks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .next();
            let Some(((recs, wanted), out)) = next else {
                return;
            };
            decode(recs, wanted, out);
        };
        in_parallel((0..threads).collect(), claim);
        out
    }

    /// Decode and validate one record.
    fn decode_record<'a>(
        &self,
        rec: &SourceRecord<'a>,
    ) -> std::result::Result<Placed<'a>, DecodeError> {
        // Unit tests swap in a decoder that fails on a message.
        #[cfg(test)]
        let decode_placed = self.decode_one;
        decode_placed(rec.payload, &self.registry, &self.opts, rec.timestamp)
    }

    /// Decode one record into `slot`; should decoding panic (a bug), the
    /// record is quarantined as [`ErrorClass::Internal`] instead. Otherwise
    /// the worker would die on it, and every restart would read it again
    /// from the last commit and die again: one message would stop its
    /// partition for good.
    fn decode_guarded<'a>(&self, rec: &SourceRecord<'a>, slot: &mut Decoded<'a>) {
        let decode = || *slot = Some(self.decode_record(rec));
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string());
            tracing::error!(
                topic = rec.topic,
                partition = rec.partition,
                offset = rec.offset,
                %reason,
                "Decoding panicked; the message is quarantined as `internal`."
            );
            *slot = Some(Err(DecodeError::Internal { reason }));
        }
    }
}

/// Fewest records worth a thread of their own.
const MIN_RECORDS_PER_THREAD: usize = 1024;

/// Records a decoding thread claims at a time.
const DECODE_CHUNK: usize = 256;

/// Run `run` on each share, the first on this thread and the others on
/// threads of their own; results in share order. A panic is passed on.
fn in_parallel<S: Send, T: Send>(shares: Vec<S>, run: impl Fn(S) -> T + Sync) -> Vec<T> {
    let run = &run;
    std::thread::scope(|scope| {
        let mut shares = shares.into_iter();
        let first = shares.next();
        let helpers: Vec<_> = shares
            .map(|share| scope.spawn(move || run(share)))
            .collect();
        let mut out: Vec<T> = first.map(run).into_iter().collect();
        for helper in helpers {
            out.push(
                helper
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        out
    })
}

/// Finish and encode a segment's files on up to `threads` threads (the
/// last segment of an input is encoded while nothing else is left to do),
/// results in file order.
fn encode_files<T: Send>(
    files: Vec<OpenFile>,
    threads: usize,
    encode: &(dyn Fn(OpenFile) -> Result<T> + Sync),
) -> Result<Vec<T>> {
    let threads = threads.min(files.len()).max(1);
    if threads == 1 {
        return files.into_iter().map(encode).collect();
    }
    // Deal the files out in turn: neighbours in key order are often alike in size.
    let mut shares: Vec<Vec<(usize, OpenFile)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, file) in files.into_iter().enumerate() {
        shares[i % threads].push((i, file));
    }
    let run = |share: Vec<(usize, OpenFile)>| -> Result<Vec<(usize, T)>> {
        share
            .into_iter()
            .map(|(i, file)| Ok((i, encode(file)?)))
            .collect()
    };
    let mut done = Vec::new();
    for share in in_parallel(shares, run) {
        done.extend(share?);
    }
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, t)| t).collect())
}

/// A segment's encoded files, with the valid rows and bytes they hold.
type Encoded = (Vec<(object_store::path::Path, Bytes)>, usize, usize);

/// Writes at once across all partitions.
const MAX_IN_FLIGHT: usize = 2;

/// Attempts to take a partition over while other owners keep moving its
/// state on (each attempt reads the newest version).
const TAKEOVER_ATTEMPTS: u32 = 10;

/// A segment being written in the background.
#[derive(Debug)]
struct InFlight {
    key: (Arc<str>, i32),
    end: i64,
    started: Instant,
    handle: tokio::task::JoinHandle<Result<Written>>,
}

/// What became of a segment write.
#[derive(Debug)]
enum Written {
    /// Its state version is written: the segment may be committed.
    Committed(VersionedState),
    /// Another owner moved the state on first: nothing may be committed,
    /// and the partition is no longer ours.
    Fenced,
}

/// What a writer knows of the partition it owns.
#[derive(Debug)]
struct Owned {
    /// The state it last wrote.
    state: VersionedState,
    /// The version it took the partition over with.
    takeover_seq: u64,
}

/// The two steps of a segment write (see the module docs): the files,
/// then the next state version, created only if no other writer has.
async fn write_segment(
    store: LakeStore,
    topic: Arc<str>,
    partition: i32,
    seg: Segment,
    owned: Owned,
    opts: IngestOptions,
    metrics: Arc<IngestMetrics>,
) -> Result<Written> {
    let started = Instant::now();
    let (start, end, rows) = (seg.start, seg.end, seg.rows);
    let epoch = owned.state.state.epoch;
    let next = owned
        .state
        .state
        .with_segment(start, end)
        .map_err(|reason| Error::Encode {
            what: format!("the state of {topic}/{partition}"),
            source: reason.into(),
        })?;
    let topic_for_keys = Arc::clone(&topic);
    let encoded = tokio::task::spawn_blocking(move || -> Result<Encoded> {
        let props = writer_properties(opts.row_group_rows, opts.zstd_level);
        let encode = |file: OpenFile| -> Result<(FileKey, Bytes, usize)> {
            let (key, batch) = file.finish().map_err(|e| Error::Encode {
                what: "a segment".into(),
                source: Box::new(e),
            })?;
            let rows = if key.table == Table::Quarantine {
                0
            } else {
                batch.num_rows()
            };
            Ok((key, encode_parquet(&batch, props.clone())?, rows))
        };
        let encoded = encode_files(seg.into_files(), opts.threads, &encode)?;
        let (mut rows_written, mut bytes_written) = (0usize, 0usize);
        let objects = encoded
            .into_iter()
            .map(|(file_key, body, rows)| {
                rows_written += rows;
                bytes_written += body.len();
                let path = object_key(&file_key, &topic_for_keys, partition, start, end, epoch);
                (path, body)
            })
            .collect();
        Ok((objects, rows_written, bytes_written))
    })
    .await
    .map_err(|e| Error::Encode {
        what: "a segment".into(),
        source: Box::new(e),
    })??;
    let (objects, rows_written, bytes_written) = encoded;
    let files = objects.len();
    store.put_all(objects).await?;
    let seq = owned.state.seq + 1;
    if store.create_state(&topic, partition, seq, &next).await? == Created::Fenced {
        return Ok(Written::Fenced);
    }
    // The version before the last stays until the next write, for a
    // reader that listed it; the takeover version stays for good.
    if seq >= 2 && seq - 2 > owned.takeover_seq {
        store.remove_state(&topic, partition, seq - 2).await;
    }
    metrics.flushed(rows_written, bytes_written, started.elapsed());
    tracing::debug!(topic = %topic, partition, start, end, rows, files, epoch, "Flushed segment.");
    Ok(Written::Committed(VersionedState { seq, state: next }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridstat_schemas::generate::{GenOptions, Generator};
    use gridstat_testkit::campaign::valid_payloads;
    use gridstat_testkit::lake::segments_per_partition;

    /// `payloads` as one partition's records, at offsets 0, 1, 2, …
    fn records<'a>(
        topic: &'a str,
        partition: i32,
        payloads: &'a [Vec<u8>],
    ) -> Vec<SourceRecord<'a>> {
        let record = |(offset, payload): (usize, &'a Vec<u8>)| SourceRecord {
            topic,
            partition,
            offset: offset as i64,
            key: None,
            payload,
            timestamp: None,
        };
        payloads.iter().enumerate().map(record).collect()
    }

    /// An engine writing to `store`, and its metrics.
    fn engine_on(
        store: &Arc<dyn object_store::ObjectStore>,
        registry: &Arc<Registry>,
        opts: IngestOptions,
    ) -> (IngestEngine, Arc<IngestMetrics>) {
        let metrics = Arc::new(IngestMetrics::default());
        let store = LakeStore::new(Arc::clone(store));
        let engine = IngestEngine::new(store, Arc::clone(registry), opts, Arc::clone(&metrics));
        (engine, metrics)
    }

    fn memory_store() -> Arc<dyn object_store::ObjectStore> {
        Arc::new(object_store::memory::InMemory::new())
    }

    /// Decoding on several threads, each claiming chunks as it goes, gives
    /// every record its own result, in input order, with skipped records
    /// left undecoded.
    #[test]
    fn decoding_in_parallel_keeps_records_and_results_together() {
        let registry = Arc::new(Registry::jiangmen());
        let opts = GenOptions {
            scale: 0.02,
            invalid_rate: 0.2,
            ..GenOptions::default()
        };
        let messages: Vec<Vec<u8>> = Generator::new(&registry, opts)
            .take(64 * DECODE_CHUNK + 17)
            .map(|m| m.bytes)
            .collect();
        let recs = records("t", 0, &messages);
        let wanted: Vec<bool> = (0..recs.len()).map(|i| i % 7 != 3).collect();
        let on = |threads| Decoder {
            registry: Arc::clone(&registry),
            opts: DecodeOptions::default(),
            threads,
            decode_one: decode_placed,
        };
        let beside = |cores| on(cores).beside_filing().threads;
        assert_eq!([1, 2, 4, 8, 16].map(beside), [1, 1, 1, 2, 4]);
        let alone = on(1).decode_where(&recs, &wanted);
        let shared = on(3).decode_where(&recs, &wanted);
        assert_eq!(alone.len(), recs.len());
        assert!(alone.iter().any(|d| matches!(d, Some(Err(_)))));
        assert!(alone.iter().any(|d| matches!(d, Some(Ok(_)))));
        assert_eq!(alone, shared);
        for (i, d) in shared.iter().enumerate() {
            assert_eq!(d.is_some(), wanted[i], "record {i}");
        }
    }

    /// A message on which decoding panics (a bug) is quarantined as
    /// `internal` with the panic's message; the records around it are
    /// written and the partition's offset is committed past it, so a
    /// restart does not meet it again.
    #[tokio::test]
    async fn a_message_that_panics_the_decoder_is_quarantined_not_retried() {
        use arrow::array::AsArray;
        use futures::TryStreamExt;
        use object_store::ObjectStoreExt;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

        fn panics_on_boom<'a>(
            bytes: &'a [u8],
            registry: &Registry,
            opts: &DecodeOptions,
            received_at: Option<DateTime<FixedOffset>>,
        ) -> std::result::Result<Placed<'a>, DecodeError> {
            if bytes.starts_with(b"boom") {
                panic!("boom at the decoder");
            }
            decode_placed(bytes, registry, opts, received_at)
        }

        let registry = Arc::new(Registry::jiangmen());
        let mut messages = valid_payloads(&registry, None, 3000);
        messages.insert(1500, b"boom {}".to_vec());
        let recs = records("grid.visits.v1", 2, &messages);
        let memory = memory_store();
        let (mut engine, metrics) = engine_on(&memory, &registry, IngestOptions::default());
        engine.decoder.decode_one = panics_on_boom;
        let mut commits = engine.push_batch(&recs, Instant::now()).await.unwrap();
        commits.extend(engine.flush_all().await.unwrap());
        assert_eq!(
            commits.last().map(|c| c.next_offset),
            Some(recs.len() as i64)
        );
        assert_eq!(metrics.rows_written(), 3000);
        assert_eq!(metrics.quarantined_by_class(), [(ErrorClass::Internal, 1)]);

        let prefix = object_store::path::Path::from("quarantine");
        let files: Vec<_> = memory.list(Some(&prefix)).try_collect().await.unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
        let bytes = memory
            .get(&files[0].location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let batch = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let text = |name: &str| {
            let column = batch.column_by_name(name).unwrap();
            arrow::util::display::array_value_to_string(column, 0).unwrap()
        };
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(text("error_class"), "internal");
        assert_eq!(text("source_offset"), "1500");
        assert!(
            text("error_message").contains("boom at the decoder"),
            "{}",
            text("error_message")
        );
        assert_eq!(
            batch
                .column_by_name("raw")
                .unwrap()
                .as_binary::<i32>()
                .value(0),
            b"boom {}"
        );
    }

    /// The global buffer budget holds across 40 partitions whichever
    /// limit binds, rows or bytes: after every record the engine holds no
    /// more than the budget, what it flushed was never smaller than what
    /// it kept (the largest segments go first), and every record is
    /// written exactly once.
    #[tokio::test]
    async fn the_buffer_budget_flushes_the_largest_segment_first() {
        const PARTITIONS: i32 = 40;
        let registry = Arc::new(Registry::jiangmen());
        let visits = Some(gridstat_schemas::generate::Stream::Visits);
        let messages = valid_payloads(&registry, visits, 5_900);
        // Rounds of 20 records for partition 0 and one for each other.
        let mut next_offset = [0i64; PARTITIONS as usize];
        let mut recs = Vec::new();
        let mut payloads = messages.iter();
        for _ in 0..100 {
            for partition in std::iter::repeat_n(0, 20).chain(1..PARTITIONS) {
                let offset = &mut next_offset[partition as usize];
                recs.push(SourceRecord {
                    topic: "grid.visits.v1",
                    partition,
                    offset: *offset,
                    key: None,
                    payload: payloads.next().unwrap(),
                    timestamp: None,
                });
                *offset += 1;
            }
        }
        let bytes_per_record = messages.iter().map(Vec::len).sum::<usize>() / messages.len();
        for (rows, bytes) in [(1_000, usize::MAX), (usize::MAX, 1_000 * bytes_per_record)] {
            let store = memory_store();
            let opts = IngestOptions {
                max_buffered_rows: rows,
                max_buffered_bytes: bytes,
                max_segment_rows: usize::MAX,
                flush_interval: std::time::Duration::from_secs(3600),
                ..IngestOptions::default()
            };
            let (mut engine, metrics) = engine_on(&store, &registry, opts);
            let open = |engine: &IngestEngine| -> BTreeMap<i32, (usize, usize)> {
                let segments = engine.partitions.iter();
                segments
                    .filter_map(|((_, p), slot)| Some((*p, slot.segment.as_ref()?)))
                    .map(|(p, seg)| (p, (seg.rows, seg.bytes)))
                    .collect()
            };
            let mut commits = Vec::new();
            for rec in &recs {
                // What each segment holds once this record is filed.
                let mut before = open(&engine);
                let entry = before.entry(rec.partition).or_default();
                let counted = rec.payload.len() + crate::segment::ROW_OVERHEAD_BYTES;
                *entry = (entry.0 + 1, entry.1 + counted);
                commits.extend(engine.push(*rec, Instant::now()).await.unwrap());
                assert!(
                    engine.buffered_rows <= rows,
                    "{} rows",
                    engine.buffered_rows
                );
                assert!(
                    engine.buffered_bytes <= bytes,
                    "{} bytes",
                    engine.buffered_bytes
                );
                let after = open(&engine);
                let (flushed, kept): (Vec<_>, Vec<_>) = before
                    .iter()
                    .partition(|(p, seg)| after.get(p) != Some(seg));
                let smallest_flushed = flushed.iter().map(|(_, (_, b))| *b).min();
                let largest_kept = kept.iter().map(|(_, (_, b))| *b).max();
                if let (Some(flushed), Some(kept)) = (smallest_flushed, largest_kept) {
                    assert!(flushed >= kept, "flushed {flushed} bytes, kept {kept}");
                }
            }
            commits.extend(engine.flush_all().await.unwrap());
            // Each partition's last commit.
            commits.reverse();
            commits.sort_by_key(|c| c.partition);
            commits.dedup_by_key(|c| c.partition);
            assert_eq!(commits.len(), PARTITIONS as usize);
            assert!(commits
                .iter()
                .all(|c| c.next_offset == next_offset[c.partition as usize]));
            assert_eq!(metrics.rows_written(), 5_900);
            let segments = segments_per_partition(&store).await;
            assert!(segments[&0].len() >= 10, "partition 0: {:?}", segments[&0]);
            assert_eq!(segments.len(), PARTITIONS as usize);
        }
    }

    /// A writer whose partition another writer took over commits nothing
    /// of the segment it was writing, and refuses the partition's further
    /// records rather than taking it back at a later offset (which would
    /// skip the records of the dropped segment); the files it wrote are
    /// covered by no state.
    #[tokio::test]
    async fn a_writer_taken_over_commits_nothing_and_goes_no_further() {
        let registry = Arc::new(Registry::jiangmen());
        let messages = valid_payloads(&registry, None, 6);
        let recs = records("file:c.ndjson", 0, &messages);
        let store = memory_store();
        let worker = || engine_on(&store, &registry, IngestOptions::default());
        let (mut stale, stale_metrics) = worker();
        assert!(stale
            .push_batch(&recs[..3], Instant::now())
            .await
            .unwrap()
            .is_empty());
        // Another writer takes the partition over meanwhile.
        let (mut other, _) = worker();
        assert_eq!(other.assign("file:c.ndjson", 0).await.unwrap(), 0);
        let commits = stale.flush_all().await.unwrap();
        assert!(commits.is_empty(), "nothing committed: {commits:?}");
        assert!(!stale.owns("file:c.ndjson", 0));
        let refused = stale.push_batch(&recs[3..], Instant::now()).await;
        assert!(matches!(refused, Err(Error::Fenced { .. })), "{refused:?}");
        assert!(stale_metrics
            .render(crate::metrics::Exposition::PrometheusText)
            .contains("gridstat_ingest_fenced_total 1"));
        // The stale writer's files are in the lake but no state covers them.
        let state = LakeStore::new(Arc::clone(&store))
            .read_state("file:c.ndjson", 0)
            .await
            .unwrap();
        assert_eq!(state.state.next_offset, 0);
        let files = segments_per_partition(&store).await;
        assert_eq!(files[&0], [0].into(), "the stale cut's files exist");
        let mut coverage = gridstat_schemas::lake::Coverage::default();
        coverage.insert("file_c_ndjson", 0, state.state);
        let listed: Vec<object_store::ObjectMeta> = {
            use futures::TryStreamExt;
            store.list(None).try_collect().await.unwrap()
        };
        assert!(listed
            .iter()
            .filter(|m| m.location.as_ref().ends_with(".parquet"))
            .all(|m| !coverage.covers(m.location.as_ref())));
        // The writer that took over writes every record.
        let mut commits = other.push_batch(&recs, Instant::now()).await.unwrap();
        commits.extend(other.flush_all().await.unwrap());
        assert_eq!(commits.last().map(|c| c.next_offset), Some(6));
    }
}
