//! The embedded source: NDJSON from a file or stdin, through the same
//! engine as Kafka. The partition is 0 and the offset is the line number − 1,
//! so a re-run resumes where the lake says it stopped.

use std::time::Instant;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::engine::{IngestEngine, SourceRecord};
use crate::error::{Error, Result};

/// Longest line kept in memory; longer ones are cut (and quarantined as too large).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

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

/// Ingest NDJSON from `reader` as topic `file:NAME`.
pub async fn ingest_ndjson<R: AsyncBufRead + Unpin>(
    mut reader: R,
    name: &str,
    engine: &mut IngestEngine,
) -> Result<FileReport> {
    let topic = format!("file:{name}");
    engine.set_background_writes(true);
    let resumed_from = engine.assign(&topic, 0).await?;
    let rows_before = engine.metrics().rows_written();
    let quarantined_before: u64 = engine.quarantined_by_class().iter().map(|c| c.1).sum();
    let mut line = Vec::with_capacity(4096);
    let mut offset: i64 = 0;
    loop {
        line.clear();
        let read = read_line_bounded(&mut reader, &mut line)
            .await
            .map_err(|source| Error::Input {
                name: name.into(),
                source,
            })?;
        if read == 0 {
            break;
        }
        if offset >= resumed_from {
            // A line cut at MAX_LINE_BYTES is still far over the decoder's
            // size limit, so it is quarantined as too large.
            let rec = SourceRecord {
                topic: &topic,
                partition: 0,
                offset,
                key: None,
                payload: &line,
                timestamp: None,
            };
            engine.push(rec, Instant::now()).await?;
        }
        offset += 1;
    }
    engine.flush_all().await?;
    let quarantined_after: u64 = engine.quarantined_by_class().iter().map(|c| c.1).sum();
    Ok(FileReport {
        lines: offset as u64,
        resumed_from,
        rows_written: engine.metrics().rows_written() - rows_before,
        quarantined: quarantined_after - quarantined_before,
    })
}

/// Read one line without its newline, keeping at most MAX_LINE_BYTES.
/// Returns the bytes consumed (0 at the end of input).
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    out: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = MAX_LINE_BYTES.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = done.unwrap_or(buf.len());
        reader.consume(used);
        consumed += used;
        if done.is_some() {
            if out.last() == Some(&b'\r') {
                out.pop();
            }
            return Ok(consumed);
        }
    }
}
