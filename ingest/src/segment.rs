//! The open segment of one source partition: decoded records accumulated
//! into one Arrow builder per output file (table × dt × county).

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use chrono::{DateTime, FixedOffset, NaiveDate};
use gridstat_schemas::arrow_schema::{
    CaseBatchBuilder, Lineage, QuarantineBatchBuilder, QuarantineRow, VisitBatchBuilder,
};
use gridstat_schemas::time::local_date;
use gridstat_schemas::{DecodeError, Registry, Submission};

use crate::encode::{FileKey, Table};

enum Builder {
    Visits(Box<VisitBatchBuilder>),
    Cases(CaseBatchBuilder),
    Quarantine(QuarantineBatchBuilder),
}

impl Builder {
    fn finish(&mut self) -> Result<RecordBatch, arrow::error::ArrowError> {
        match self {
            Builder::Visits(b) => b.finish(),
            Builder::Cases(b) => b.finish(),
            Builder::Quarantine(b) => b.finish(),
        }
    }
}

/// Records of offsets `[start, end)` of one partition, not yet in the lake.
pub(crate) struct Segment {
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) opened_at: std::time::Instant,
    pub(crate) rows: usize,
    pub(crate) bytes: usize,
    files: BTreeMap<FileKey, Builder>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("rows", &self.rows)
            .finish()
    }
}

/// How one record was filed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filed {
    Visit,
    Case,
    Quarantined(gridstat_schemas::ErrorClass),
}

impl Segment {
    pub(crate) fn new(start: i64, now: std::time::Instant) -> Self {
        Self {
            start,
            end: start,
            opened_at: now,
            rows: 0,
            bytes: 0,
            files: BTreeMap::new(),
        }
    }

    fn builder(&mut self, key: FileKey) -> &mut Builder {
        self.files.entry(key).or_insert_with_key(|k| match k.table {
            Table::Visits => Builder::Visits(Box::new(VisitBatchBuilder::new())),
            Table::Cases => Builder::Cases(CaseBatchBuilder::new()),
            Table::Quarantine => Builder::Quarantine(QuarantineBatchBuilder::new()),
        })
    }

    pub(crate) fn add_valid(
        &mut self,
        s: &Submission,
        registry: &Registry,
        lineage: &Lineage<'_>,
        size: usize,
    ) -> Filed {
        let county = registry
            .grid(s.grid_id())
            .map(|g| registry.county_of(g).code.clone())
            .unwrap_or_default();
        let dt = local_date(&s.event_time());
        let filed = match s {
            Submission::Visit(v) => {
                if let Builder::Visits(b) = self.builder(FileKey {
                    table: Table::Visits,
                    dt,
                    county,
                }) {
                    b.append(v, lineage);
                }
                Filed::Visit
            }
            Submission::Case(c) => {
                if let Builder::Cases(b) = self.builder(FileKey {
                    table: Table::Cases,
                    dt,
                    county,
                }) {
                    b.append(c, lineage);
                }
                Filed::Case
            }
        };
        self.count(lineage.offset, size);
        filed
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_rejected(
        &mut self,
        err: &DecodeError,
        lineage: &Lineage<'_>,
        received: Option<DateTime<FixedOffset>>,
        fallback_day: NaiveDate,
        key: Option<&[u8]>,
        payload: &[u8],
        raw_limit: usize,
    ) -> Filed {
        let dt = received.map(|t| local_date(&t)).unwrap_or(fallback_day);
        let class = err.class();
        let row = QuarantineRow {
            lineage: lineage.clone(),
            key: key.map(|k| String::from_utf8_lossy(k).into_owned()),
            error_class: class.as_str(),
            error_field: err.field(),
            error_message: err.to_string(),
            raw: &payload[..payload.len().min(raw_limit)],
            raw_size: payload.len(),
        };
        if let Builder::Quarantine(b) = self.builder(FileKey {
            table: Table::Quarantine,
            dt,
            county: String::new(),
        }) {
            b.append(&row);
        }
        self.count(lineage.offset, payload.len().min(raw_limit));
        Filed::Quarantined(class)
    }

    /// Mark an offset consumed without a row (e.g. an empty line).
    pub(crate) fn skip(&mut self, offset: i64) {
        self.end = self.end.max(offset + 1);
    }

    fn count(&mut self, offset: i64, size: usize) {
        self.rows += 1;
        self.bytes += size + 200;
        self.end = self.end.max(offset + 1);
    }

    /// The finished batches, one per output file.
    pub(crate) fn finish(
        &mut self,
    ) -> Result<Vec<(FileKey, RecordBatch)>, arrow::error::ArrowError> {
        let mut out = Vec::with_capacity(self.files.len());
        for (key, b) in std::mem::take(&mut self.files) {
            let mut b = b;
            out.push((key, b.finish()?));
        }
        Ok(out)
    }
}
