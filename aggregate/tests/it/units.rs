//! Cadre participation per sending agency: the units table against the
//! generated visits.

use std::collections::{BTreeMap, HashSet};

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Int64Type};
use chrono::NaiveDate;
use gridstat_schemas::generate::Expect;
use gridstat_schemas::time::local_date;
use gridstat_schemas::{decode_submission, DecodeOptions, Registry, Submission};

use crate::{aggregated, query, two_days};

/// Per (level, area, unit, day): reporters that day, visits that day,
/// reporters since the start, visits since the start.
type Figures = BTreeMap<(String, String, String, NaiveDate), [i64; 4]>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_count_their_reporters_and_visits_per_area_each_day_and_since_the_start() {
    let (lake, report, messages) = aggregated(two_days()).await;
    let registry = Registry::jiangmen();
    let visits: Vec<_> = messages
        .iter()
        .filter(|m| m.expect == Expect::Valid)
        .filter_map(|m| {
            match decode_submission(&m.bytes, &registry, &DecodeOptions::default(), None) {
                Ok(Submission::Visit(v)) => Some(v),
                _ => None,
            }
        })
        .collect();
    let mut want: Figures = BTreeMap::new();
    for &day in &report.rollup_days {
        let mut today: BTreeMap<(String, String, String), HashSet<&str>> = BTreeMap::new();
        let mut ever: BTreeMap<(String, String, String), HashSet<&str>> = BTreeMap::new();
        let mut visits_today: BTreeMap<(String, String, String), i64> = BTreeMap::new();
        let mut visits_ever: BTreeMap<(String, String, String), i64> = BTreeMap::new();
        for v in &visits {
            let (Some(unit), true) = (&v.reporter_unit, local_date(&v.visited_at) <= day) else {
                continue;
            };
            let g = registry.grid(&v.grid_id).unwrap();
            for (level, code) in [
                ("city", registry.city.code.clone()),
                ("county", registry.counties[g.county].code.clone()),
                ("town", registry.towns[g.town].code.clone()),
            ] {
                let key = (level.to_string(), code, unit.to_string());
                ever.entry(key.clone()).or_default().insert(&v.reporter_id);
                *visits_ever.entry(key.clone()).or_default() += 1;
                if local_date(&v.visited_at) == day {
                    today.entry(key.clone()).or_default().insert(&v.reporter_id);
                    *visits_today.entry(key).or_default() += 1;
                }
            }
        }
        for (key, reporters) in ever {
            let (level, code, unit) = key.clone();
            want.insert(
                (level, code, unit, day),
                [
                    today.get(&key).map_or(0, |r| r.len() as i64),
                    visits_today.get(&key).copied().unwrap_or(0),
                    reporters.len() as i64,
                    visits_ever[&key],
                ],
            );
        }
    }
    assert!(want.len() > 100, "the campaign names units");

    let mut got: Figures = BTreeMap::new();
    let sql = "SELECT level, area_code, reporter_unit, CAST(dt AS VARCHAR) AS dt, reporters_active, visits, \
               reporters_since_start, visits_since_start FROM rollups_units";
    for b in query(&lake, sql).await {
        let text = |i: usize| arrow::compute::cast(b.column(i), &DataType::Utf8).unwrap();
        let (level, code, unit, dt) = (text(0), text(1), text(2), text(3));
        let n = |i: usize| {
            let c = arrow::compute::cast(b.column(i), &DataType::Int64).unwrap();
            c.as_primitive::<Int64Type>().clone()
        };
        let (a, v, rs, vs) = (n(4), n(5), n(6), n(7));
        for r in 0..b.num_rows() {
            let s = |c: &arrow::array::ArrayRef| c.as_string::<i32>().value(r).to_string();
            got.insert(
                (s(&level), s(&code), s(&unit), s(&dt).parse().unwrap()),
                [a.value(r), v.value(r), rs.value(r), vs.value(r)],
            );
        }
    }
    assert_eq!(got.len(), want.len(), "one row per area, unit and day");
    for (key, figures) in &want {
        assert_eq!(got.get(key), Some(figures), "{key:?}");
    }
}
