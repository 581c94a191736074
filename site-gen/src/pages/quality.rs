//! Data quality (internal dashboard): per day of arrival, records taken
//! in, duplicates removed, late visits and quarantined records by class.

use std::collections::BTreeMap;

use gridstat_schemas::ErrorClass;
use serde::Serialize;

use super::Site;
use crate::error::Result;
use crate::model::Rollups;
use crate::site::OutputFile;

/// The quality table's kinds of count, as the aggregate stage names them.
const RAW_VISITS: &str = "raw_visits";
const CURATED_VISITS: &str = "curated_visits";
const RAW_CASES: &str = "raw_cases";
const CURATED_CASES: &str = "curated_cases";
const LATE_VISITS: &str = "late_arrivals";
const QUARANTINED: &str = "quarantined";
const CONFLICTING_RESENDS: &str = "conflicting_resends";
const UNKNOWN_CASE: &str = "case_updates_unknown_case";
const AFTER_RESOLUTION: &str = "case_updates_after_resolution";
const COVERAGE_OVER_100: &str = "coverage_over_100";

/// The data quality page's model.
#[derive(Debug, Serialize)]
pub(crate) struct QualityPage {
    /// The Chinese names of the classes of quarantined records seen, in
    /// the order of their wire names.
    pub(crate) quarantine_classes: Vec<String>,
    /// One row per day.
    pub(crate) days: Vec<QualityDay>,
}

/// The counts of one day.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub(crate) struct QualityDay {
    /// The day (of arrival, for quarantined records).
    pub(crate) day: String,
    /// Visits taken in.
    pub(crate) raw_visits: i64,
    /// Visits after removing duplicates.
    pub(crate) curated_visits: i64,
    /// Duplicate visits removed.
    pub(crate) duplicates: i64,
    /// Case updates taken in.
    pub(crate) raw_cases: i64,
    /// Case updates after removing duplicates.
    pub(crate) curated_cases: i64,
    /// Visits sent more than a day after they happened.
    pub(crate) late_visits: i64,
    /// Submissions sent again with other content.
    pub(crate) conflicting_resends: i64,
    /// Case updates of cases no visit opened.
    pub(crate) unknown_case_updates: i64,
    /// Case updates after the case's resolution (reopenings).
    pub(crate) updates_after_resolution: i64,
    /// Areas (any level) whose coverage is above 100 %.
    pub(crate) coverage_over_100: i64,
    /// Records quarantined, per class of [`QualityPage::quarantine_classes`].
    pub(crate) quarantined: Vec<i64>,
}

/// The Chinese name of a quarantine class (its wire name if unknown).
fn class_label(class: &str) -> String {
    ErrorClass::parse(class).map_or_else(|| class.to_string(), |c| c.label_zh().to_string())
}

/// The data quality page's model.
pub(crate) fn model(rollups: &Rollups) -> QualityPage {
    let mut counts: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
    let mut quarantined: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
    for (day, kind, class, n) in &rollups.quality {
        match (kind.as_str(), class) {
            (QUARANTINED, Some(class)) => {
                *quarantined
                    .entry(day)
                    .or_default()
                    .entry(class)
                    .or_default() += n;
            }
            (kind, _) => *counts.entry(day).or_default().entry(kind).or_default() += n,
        }
    }
    let mut classes: Vec<&str> = quarantined
        .values()
        .flat_map(|c| c.keys().copied())
        .collect();
    classes.sort_unstable();
    classes.dedup();
    let days = counts
        .keys()
        .chain(quarantined.keys())
        .copied()
        .collect::<std::collections::BTreeSet<&str>>();
    let days = days
        .into_iter()
        .map(|day| {
            let count = |k: &str| counts.get(day).and_then(|c| c.get(k)).copied().unwrap_or(0);
            let held = quarantined.get(day);
            QualityDay {
                day: day.to_string(),
                raw_visits: count(RAW_VISITS),
                curated_visits: count(CURATED_VISITS),
                duplicates: count(RAW_VISITS) - count(CURATED_VISITS),
                raw_cases: count(RAW_CASES),
                curated_cases: count(CURATED_CASES),
                late_visits: count(LATE_VISITS),
                conflicting_resends: count(CONFLICTING_RESENDS),
                unknown_case_updates: count(UNKNOWN_CASE),
                updates_after_resolution: count(AFTER_RESOLUTION),
                coverage_over_100: count(COVERAGE_OVER_100),
                quarantined: classes
                    .iter()
                    .map(|c| held.and_then(|h| h.get(c)).copied().unwrap_or(0))
                    .collect(),
            }
        })
        .collect();
    QualityPage {
        quarantine_classes: classes.into_iter().map(class_label).collect(),
        days,
    }
}

/// The data quality page.
pub(crate) fn pages(site: &Site<'_>) -> Result<Vec<OutputFile>> {
    let page = site.render("quality.html", "quality/index.html", &model(site.rollups))?;
    Ok(vec![page])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::fixture;

    #[test]
    fn quality_rows_count_per_day_with_a_column_per_quarantine_class() {
        let page = model(&fixture::rollups());
        assert_eq!(page.quarantine_classes, ["格式错误", "网格不存在"]);
        assert_eq!(
            page.days[0],
            QualityDay {
                day: "2022-11-25".into(),
                raw_visits: 100,
                curated_visits: 97,
                duplicates: 3,
                raw_cases: 0,
                curated_cases: 0,
                late_visits: 0,
                conflicting_resends: 0,
                unknown_case_updates: 0,
                updates_after_resolution: 0,
                coverage_over_100: 0,
                quarantined: vec![0, 2],
            }
        );
        assert_eq!(page.days[1].late_visits, 4);
        assert_eq!(
            (
                page.days[1].conflicting_resends,
                page.days[1].unknown_case_updates,
                page.days[1].updates_after_resolution,
                page.days[1].coverage_over_100
            ),
            (1, 2, 3, 2),
            "kinds with a class are summed over it"
        );
        assert_eq!(
            page.days[2].quarantined,
            [1, 3],
            "a day with quarantine only"
        );
    }
}
