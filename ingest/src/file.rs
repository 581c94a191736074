//! The embedded source: NDJSON from a file or stdin, through the same
//! engine as Kafka. The partition is 0 and the offset is the line number − 1,
//! so a re-run resumes where the lake says it stopped.
//!
//! A reader thread cuts the input into blocks of whole lines and decodes
//! each (with helper threads on eight cores or more) while the engine files
//! the previous block: reading, decoding, filing and encoding overlap, and
//! each block is one batch for the engine.

use std::io::Read;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::engine::{Decoded, Decoder, IngestEngine, SourceRecord};
use crate::error::{Error, Result};

/// Longest line kept in memory; longer ones are cut (and quarantined as too large).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Bytes of lines per block handed to the engine.
const BLOCK_BYTES: usize = 4 * 1024 * 1024;

/// Blocks read ahead of the engine.
const BLOCKS_AHEAD: usize = 2;

/// Filed blocks' buffers waiting to be filled again: a fresh 4 MiB buffer
/// is faulted in page by page (a third of an ingest's page faults). Enough
/// for every block between the reader and the engine.
const SPARE_BUFFERS: usize = BLOCKS_AHEAD + 2;

/// What a file ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileReport {
    /// Lines read (including skipped and already-ingested ones).
    pub lines: u64,
    /// Lines below the lake's resume point, skipped.
    pub resumed_from: i64,
    /// Valid rows written.
    pub rows_written: u64,
    /// Messages quarantined.
    pub quarantined: u64,
}

/// A block of input and the lines in it (without newlines, each cut at
/// the line limit), as ranges: lines are never copied one by one.
#[derive(Debug, Default)]
struct Lines {
    bytes: Vec<u8>,
    ranges: Vec<std::ops::Range<usize>>,
}

impl Lines {
    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.ranges.iter().map(|r| &self.bytes[r.clone()])
    }
}

/// A block of lines and the topic its records are filed under.
struct TopicLines {
    topic: std::sync::Arc<str>,
    lines: Lines,
}

/// A block's records (lines at or past the resume point, each its line
/// number as offset) and what decoding made of them, both borrowing from
/// the block's bytes.
struct BlockRecords<'a> {
    records: Vec<SourceRecord<'a>>,
    decoded: Vec<Decoded<'a>>,
}

self_cell::self_cell!(
    /// A block with its decoded records: handed from the reader thread to
    /// the engine, which files it while the next block is decoded.
    struct DecodedBlock {
        owner: TopicLines,
        #[covariant]
        dependent: BlockRecords,
    }
);

/// Cuts input into blocks of whole lines.
#[derive(Debug)]
struct Splitter {
    block_bytes: usize,
    max_line: usize,
    /// The start of a line that the last block ended in.
    carry: Vec<u8>,
    /// Inside the rest of a line already cut at `max_line`: dropped up to
    /// its newline.
    skipping: bool,
    /// Buffers of blocks the engine is done with, filled again before new
    /// ones (the channel's capacity bounds how many are kept).
    spares: Receiver<Vec<u8>>,
}

impl Splitter {
    fn new(block_bytes: usize, max_line: usize, spares: Receiver<Vec<u8>>) -> Self {
        Self {
            block_bytes: block_bytes.max(max_line + 1),
            max_line,
            carry: Vec::new(),
            skipping: false,
            spares,
        }
    }

    /// The next block, or `None` at the end of input.
    fn next_block<R: Read>(&mut self, reader: &mut R) -> std::io::Result<Option<Lines>> {
        loop {
            let mut bytes = match self.spares.try_recv() {
                Ok(mut spare) => {
                    spare.clear();
                    spare
                }
                Err(_) => Vec::with_capacity(self.block_bytes),
            };
            bytes.append(&mut self.carry);
            let at_end = fill(reader, &mut bytes, self.block_bytes)?;
            if bytes.is_empty() {
                return Ok(None);
            }
            let mut ranges = Vec::with_capacity(bytes.len() / 256);
            let mut pos = 0;
            while pos < bytes.len() {
                let newline = memchr::memchr(b'\n', &bytes[pos..]).map(|i| pos + i);
                if self.skipping {
                    match newline {
                        Some(nl) => {
                            self.skipping = false;
                            pos = nl + 1;
                        }
                        None => pos = bytes.len(),
                    }
                    continue;
                }
                match newline {
                    Some(nl) => {
                        let end = if nl > pos && bytes[nl - 1] == b'\r' {
                            nl - 1
                        } else {
                            nl
                        };
                        ranges.push(pos..end.min(pos + self.max_line));
                        pos = nl + 1;
                    }
                    None if at_end => {
                        ranges.push(pos..bytes.len().min(pos + self.max_line));
                        pos = bytes.len();
                    }
                    None if bytes.len() - pos > self.max_line => {
                        ranges.push(pos..pos + self.max_line);
                        self.skipping = true;
                        pos = bytes.len();
                    }
                    None => {
                        self.carry.extend_from_slice(&bytes[pos..]);
                        bytes.truncate(pos);
                        pos = bytes.len();
                    }
                }
            }
            if !ranges.is_empty() {
                return Ok(Some(Lines { bytes, ranges }));
            }
            if at_end {
                return Ok(None);
            }
        }
    }
}

/// Read until `buf` holds `limit` bytes or the input ends (returns true then).
fn fill<R: Read>(reader: &mut R, buf: &mut Vec<u8>, limit: usize) -> std::io::Result<bool> {
    while buf.len() < limit {
        let want = (limit - buf.len()) as u64;
        match reader.by_ref().take(want).read_to_end(buf) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Ingest NDJSON from `reader` as topic `file:NAME`. The first bytes of
/// the input identify it: a second run resumes only on the same input (or
/// the same input with lines appended), see [`crate::source`].
pub async fn ingest_ndjson<R: Read + Send + 'static>(
    mut reader: R,
    name: &str,
    engine: &mut IngestEngine,
) -> Result<FileReport> {
    let topic = format!("file:{name}");
    engine.set_background_writes(true);
    let input_error = |source| Error::Input {
        name: name.into(),
        source,
    };
    let mut prefix = Vec::with_capacity(crate::source::IDENTITY_BYTES);
    (&mut reader)
        .take(crate::source::IDENTITY_BYTES as u64)
        .read_to_end(&mut prefix)
        .map_err(input_error)?;
    let resumed_from = engine.assign_source(&topic, 0, Some(&prefix)).await?;
    let reader = std::io::Cursor::new(prefix).chain(reader);
    let rows_before = engine.metrics().rows_written();
    let quarantined_before: u64 = engine.quarantined_by_class().iter().map(|c| c.1).sum();
    let (tx, mut rx) = mpsc::channel(BLOCKS_AHEAD);
    let (spare_tx, spare_rx) = std::sync::mpsc::sync_channel(SPARE_BUFFERS);
    let decoder = engine.decoder().beside_filing();
    let reader_thread = std::thread::Builder::new()
        .name("ndjson-reader".into())
        .spawn({
            let topic: std::sync::Arc<str> = topic.as_str().into();
            move || {
                let splitter = Splitter::new(BLOCK_BYTES, MAX_LINE_BYTES, spare_rx);
                read_blocks(reader, splitter, &topic, resumed_from, &decoder, &tx)
            }
        })
        .map_err(|source| Error::Input {
            name: name.into(),
            source,
        })?;
    let mut lines_read: u64 = 0;
    while let Some(block) = rx.recv().await {
        let block: DecodedBlock = block.map_err(|source| Error::Input {
            name: name.into(),
            source,
        })?;
        lines_read += block.borrow_owner().lines.ranges.len() as u64;
        let BlockRecords { records, decoded } = block.borrow_dependent();
        engine
            .push_decoded(records, decoded, Instant::now())
            .await?;
        // Dropped instead if the reader has ended or holds spares enough.
        let _ = spare_tx.try_send(block.into_owner().lines.bytes);
    }
    drop(rx);
    // The thread has sent its last block (or its error) before ending.
    let _ = reader_thread.join();
    engine.flush_all().await?;
    let quarantined_after: u64 = engine.quarantined_by_class().iter().map(|c| c.1).sum();
    Ok(FileReport {
        lines: lines_read,
        resumed_from,
        rows_written: engine.metrics().rows_written() - rows_before,
        quarantined: quarantined_after - quarantined_before,
    })
}

/// The reader thread: blocks of whole lines, decoded, until the end of
/// input, an error (sent as the last item) or the engine hanging up. Lines
/// before `resumed_from` are skipped: the lake already has them.
fn read_blocks<R: Read>(
    mut reader: R,
    mut splitter: Splitter,
    topic: &std::sync::Arc<str>,
    resumed_from: i64,
    decoder: &Decoder,
    tx: &mpsc::Sender<std::io::Result<DecodedBlock>>,
) {
    let mut offset: i64 = 0;
    loop {
        let block = match splitter.next_block(&mut reader) {
            Ok(Some(lines)) => {
                let first = offset;
                offset += lines.ranges.len() as i64;
                let block = TopicLines {
                    topic: std::sync::Arc::clone(topic),
                    lines,
                };
                Ok(DecodedBlock::new(block, |block| {
                    let skip = usize::try_from(resumed_from - first).unwrap_or(0);
                    let records: Vec<SourceRecord<'_>> = (first..)
                        .zip(block.lines.iter())
                        .skip(skip)
                        .map(|(offset, line)| SourceRecord {
                            topic: &block.topic,
                            partition: 0,
                            offset,
                            key: None,
                            // A line cut at MAX_LINE_BYTES is still far over
                            // the decoder's size limit: quarantined as too large.
                            payload: line,
                            timestamp: None,
                        })
                        .collect();
                    let decoded = decoder.decode(&records);
                    BlockRecords { records, decoded }
                }))
            }
            Ok(None) => return,
            Err(e) => Err(e),
        };
        let failed = block.is_err();
        if tx.blocking_send(block).is_err() || failed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line the splitter yields, reading `input` in pieces of 7 bytes.
    fn lines(input: &[u8], block_bytes: usize, max_line: usize) -> Vec<Vec<u8>> {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(7).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut reader = Trickle(input);
        let (spare_tx, spares) = std::sync::mpsc::sync_channel(SPARE_BUFFERS);
        let mut splitter = Splitter::new(block_bytes, max_line, spares);
        let mut out = Vec::new();
        while let Some(block) = splitter.next_block(&mut reader).unwrap() {
            out.extend(block.iter().map(<[u8]>::to_vec));
            // Filled again by a later block, stale bytes and all.
            let _ = spare_tx.try_send(block.bytes);
        }
        out
    }

    #[test]
    fn lines_are_cut_at_newlines_and_bounded() {
        let input = b"a\r\n\nbc\nxxxxxxxxxxxxxxxxxxxx\nlast";
        for block_bytes in [1, 9, 13, 64, 4096] {
            let got = lines(input, block_bytes, 8);
            let want: Vec<&[u8]> = vec![b"a", b"", b"bc", b"xxxxxxxx", b"last"];
            assert_eq!(got, want, "blocks of {block_bytes}");
        }
    }

    #[test]
    fn a_block_ending_between_cr_and_lf_keeps_the_cr_out() {
        // The first block is "zz\nab\r": "ab\r" is as long as the limit,
        // but the line is "ab", which the next block's newline ends.
        let want: Vec<&[u8]> = vec![b"zz", b"ab", b"c"];
        assert_eq!(lines(b"zz\nab\r\nc", 6, 3), want);
    }

    #[test]
    fn an_overlong_line_across_blocks_is_cut_once() {
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100));
        input.extend_from_slice(b"\nnext\n");
        for block_bytes in [1, 11, 50, 1000] {
            let got = lines(&input, block_bytes, 10);
            let want: Vec<&[u8]> = vec![b"ok", b"xxxxxxxxxx", b"next"];
            assert_eq!(got, want, "blocks of {block_bytes}");
        }
    }

    /// What the splitter must yield: lines split at `\n`, one `\r` before
    /// a newline dropped, each cut at `max_line`.
    fn expected(input: &[u8], max_line: usize) -> Vec<Vec<u8>> {
        let mut pieces: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        let last = pieces.pop().unwrap_or_default();
        let mut out: Vec<Vec<u8>> = pieces
            .into_iter()
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .map(|l| l[..l.len().min(max_line)].to_vec())
            .collect();
        if !last.is_empty() {
            out.push(last[..last.len().min(max_line)].to_vec());
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn any_input_splits_like_the_plain_definition(
            input in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b'b', b'\r', b'\n']),
                0..400,
            ),
            block_bytes in 1usize..80,
            max_line in 1usize..40,
        ) {
            proptest::prop_assert_eq!(
                lines(&input, block_bytes, max_line),
                expected(&input, max_line)
            );
        }
    }

    #[test]
    fn blocks_hold_whole_lines() {
        let line = vec![b'y'; 1000];
        let mut input = Vec::new();
        for _ in 0..300 {
            input.extend_from_slice(&line);
            input.push(b'\n');
        }
        let got = lines(&input, 64 * 1024, MAX_LINE_BYTES);
        assert_eq!(got.len(), 300);
        assert!(got.iter().all(|l| l == &line));
        assert!(lines(b"", 64, 8).is_empty());
    }
}
