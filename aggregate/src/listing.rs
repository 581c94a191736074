//! The run's one listing of the raw tables: what the plan compares with
//! the previous run's, and what the run's queries read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use gridstat_schemas::lake;
use object_store::{ObjectMeta, ObjectStore};

use crate::curated::dedup::RawDayListing;
use crate::error::Result;
use crate::store::{self, Fingerprint};
use crate::tables;

/// The raw and quarantine files in the lake, and the days with raw data.
#[derive(Debug, Clone)]
pub(crate) struct RawListing {
    /// Every raw and quarantine file by path.
    pub(crate) files: BTreeMap<String, Fingerprint>,
    /// The days with raw visits or cases.
    pub(crate) days: BTreeSet<NaiveDate>,
    /// The objects of each of [`tables::RAW_TABLES`], in its order.
    objects: [Vec<ObjectMeta>; 3],
}

impl RawListing {
    /// List the raw tables, together.
    pub(crate) async fn of(store: &Arc<dyn ObjectStore>) -> Result<Self> {
        let [visits, cases, quarantine] =
            tables::RAW_TABLES.map(|t| store::list_parquet(store, t.prefix));
        let (visits, cases, quarantine) = futures::try_join!(visits, cases, quarantine)?;
        Ok(Self::new([visits, cases, quarantine]))
    }

    /// The listing of these objects of [`tables::RAW_TABLES`], in its order.
    pub(crate) fn new(objects: [Vec<ObjectMeta>; 3]) -> Self {
        let files: BTreeMap<_, _> = objects
            .iter()
            .flat_map(|m| store::fingerprints(m))
            .collect();
        let days = files
            .keys()
            .filter(|p| !p.starts_with(lake::QUARANTINE))
            .filter_map(|p| store::day_of(p))
            .collect();
        Self {
            files,
            days,
            objects,
        }
    }

    /// The raw tables' objects, for curation's tables of one day each.
    pub(crate) fn day_listing(&self) -> RawDayListing<'_> {
        let [visits, cases, _] = &self.objects;
        RawDayListing { visits, cases }
    }

    /// Hand the listing to the session's tables of raw files, so that
    /// their queries read the files this run is based on without listing
    /// the campaign's every raw file again.
    pub(crate) fn seed(&self, ctx: &SessionContext) {
        for (spec, objects) in tables::RAW_TABLES.iter().zip(&self.objects) {
            tables::seed_listing(ctx, spec, objects.clone());
        }
    }

    /// The last day with raw data, never before the campaign's start.
    pub(crate) fn last_day(&self, campaign_start: NaiveDate) -> NaiveDate {
        self.days
            .last()
            .copied()
            .unwrap_or(campaign_start)
            .max(campaign_start)
    }

    /// Whether the lake has quarantine files.
    pub(crate) fn has_quarantine(&self) -> bool {
        self.files.keys().any(|p| p.starts_with(lake::QUARANTINE))
    }

    /// Raw bytes of the visits and cases of the days `days` admits.
    fn bytes_of(&self, days: impl Fn(NaiveDate) -> bool) -> u64 {
        self.files
            .iter()
            .filter(|(p, _)| !p.starts_with(lake::QUARANTINE))
            .filter(|(p, _)| store::day_of(p).is_some_and(&days))
            .map(|(_, f)| f.size)
            .sum()
    }

    /// Raw bytes of the visits and cases of `day` and every day after.
    pub(crate) fn bytes_from(&self, day: NaiveDate) -> u64 {
        self.bytes_of(|d| d >= day)
    }

    /// Raw bytes of one day's visits and cases.
    pub(crate) fn day_bytes(&self, day: NaiveDate) -> u64 {
        self.bytes_of(|d| d == day)
    }
}
