//! Small in-memory rollups for tests, this crate's and its integration
//! tests': a city, two counties, five towns with a village (or
//! community) each and a grid in each village, three days.
//! Not part of the API.
//!
//! Households visited per town (cumulative, 2022-11-25..27), 1000
//! households registered each; the other figures follow from them (see
//! [`town`]), and counties and the city are sums.
//!
//! | county | town | visited |
//! |---|---|---|
//! | 蓬江区 440703 | 白沙街道 440703001 | 100, 200, 300 |
//! | | 环市街道 440703002 | 2, 3, 3 (below the threshold) |
//! | | 荷塘镇 440703003 | 40, 90, 150 (withheld to protect 环市) |
//! | 台山市 440781 | 台城街道 440781001 | 80, 160, 240 |
//! | | 四九镇 440781002 | 60, 120, 180 |

use std::collections::BTreeMap;

use chrono::NaiveDate;
use gridstat_schemas::metrics::Metric;

use crate::model::{Area, Level, OpenCase, Rollups, UnitRow};
use crate::site::{Audience, SiteOptions};

/// The towns: county code, town code, name, households visited per day.
const TOWNS: [(&str, &str, &str, [f64; 3]); 5] = [
    ("440703", "440703001", "白沙街道", [100.0, 200.0, 300.0]),
    ("440703", "440703002", "环市街道", [2.0, 3.0, 3.0]),
    ("440703", "440703003", "荷塘镇", [40.0, 90.0, 150.0]),
    ("440781", "440781001", "台城街道", [80.0, 160.0, 240.0]),
    ("440781", "440781002", "四九镇", [60.0, 120.0, 180.0]),
];

/// The counties: code and name.
const COUNTIES: [(&str, &str); 2] = [("440703", "蓬江区"), ("440781", "台山市")];

/// The city's code.
const CITY: &str = "440700";

/// The fixture's rollups.
pub fn rollups() -> Rollups {
    let start = NaiveDate::from_ymd_opt(2022, 11, 25).expect("a day");
    let mut areas = Vec::new();
    for (county, code, name, visited) in TOWNS {
        let town = town(code, name, county, visited);
        let mut village = town.clone();
        village.level = Level::Village;
        village.code = format!("{code}001");
        village.name = format!("{name}第一社区");
        village.parent = Some(code.into());
        let mut grid = town.clone();
        grid.level = Level::Grid;
        grid.code = format!("{code}-G1");
        grid.name = format!("{name}1号网格");
        grid.parent = Some(village.code.clone());
        areas.push(town);
        areas.push(village);
        areas.push(grid);
    }
    for (code, name) in COUNTIES {
        let towns: Vec<&Area> = areas
            .iter()
            .filter(|a| a.level == Level::Town && a.parent.as_deref() == Some(code))
            .collect();
        let county = sum(Level::County, code, name, Some(CITY), &towns);
        areas.push(county);
    }
    let counties: Vec<&Area> = areas.iter().filter(|a| a.level == Level::County).collect();
    let city = sum(Level::City, CITY, "江门市", None, &counties);
    areas.push(city);
    Rollups {
        days: start.iter_days().take(3).collect(),
        areas: areas
            .into_iter()
            .map(|a| ((a.level, a.code.clone()), a))
            .collect(),
        quality: quality(),
        open_cases: open_cases(),
        units: units(),
    }
}

/// Two agencies of 蓬江区, in the county and the city.
fn units() -> Vec<UnitRow> {
    let row = |level, area: &str, unit: &str, figures: [i64; 4]| UnitRow {
        level,
        area_code: area.into(),
        unit: unit.into(),
        reporters_active: figures[0],
        visits: figures[1],
        reporters_since_start: figures[2],
        visits_since_start: figures[3],
    };
    let mut rows = Vec::new();
    for (level, area) in [(Level::City, CITY), (Level::County, "440703")] {
        rows.push(row(level, area, "蓬江区民政局", [3, 12, 5, 40]));
        rows.push(row(level, area, "蓬江区委组织部", [0, 0, 8, 61]));
    }
    rows
}

/// Options of a site of the fixture for `audience`.
pub fn options(audience: Audience) -> SiteOptions {
    SiteOptions {
        audience,
        ..SiteOptions::default()
    }
}

/// A town whose figures follow from the households visited.
fn town(code: &str, name: &str, county: &str, visited: [f64; 3]) -> Area {
    let share = |f: f64| visited.map(|v| Some((v * f).floor())).to_vec();
    let cumulative = BTreeMap::from([
        (Metric::HouseholdsRegistered, vec![Some(1000.0); 3]),
        (Metric::GridsRegistered, vec![Some(1.0); 3]),
        (
            Metric::GridsReached,
            visited.map(|v| Some(f64::from(v > 0.0))).to_vec(),
        ),
        (Metric::HouseholdsVisited, share(1.0)),
        (Metric::ReportersCadre, share(0.1)),
        (Metric::EnterprisesVisited, share(0.1)),
        (Metric::VenuesVisited, share(0.01)),
        (Metric::NewcomersRegistered, share(0.2)),
        (Metric::SpecialElderlyAlone, share(0.05)),
        (Metric::ChecksGas, share(1.0)),
        (Metric::ChecksFire, share(1.0)),
        (Metric::StaffRecorded, share(0.5)),
        (Metric::StaffTested, share(0.45)),
        (Metric::ResidentsRecorded, share(3.0)),
        (Metric::ResidentsTested, share(2.0)),
        (Metric::ResidentsVaccinated, share(2.5)),
        (Metric::HazardsFound, share(0.25)),
        (Metric::HazardsFixed, share(0.2)),
        (Metric::HazardsOpen, share(0.05)),
        (Metric::HardshipsRaised, share(0.1)),
        (Metric::HardshipsResolved, share(0.05)),
        (Metric::HardshipsOpen, share(0.05)),
        (Metric::Enlisted, share(0.1)),
    ]);
    Area {
        level: Level::Town,
        code: code.into(),
        name: name.into(),
        parent: Some(county.into()),
        cumulative,
        daily: BTreeMap::new(),
    }
}

/// An area whose figures are the sums of `parts`'.
fn sum(level: Level, code: &str, name: &str, parent: Option<&str>, parts: &[&Area]) -> Area {
    let mut cumulative: BTreeMap<Metric, Vec<Option<f64>>> = BTreeMap::new();
    for part in parts {
        for (metric, series) in &part.cumulative {
            let total = cumulative
                .entry(*metric)
                .or_insert_with(|| vec![Some(0.0); 3]);
            for (t, v) in total.iter_mut().zip(series) {
                *t = Some(t.unwrap_or(0.0) + v.unwrap_or(0.0));
            }
        }
    }
    Area {
        level,
        code: code.into(),
        name: name.into(),
        parent: parent.map(Into::into),
        cumulative,
        daily: BTreeMap::new(),
    }
}

fn quality() -> Vec<(String, String, Option<String>, i64)> {
    let row = |day: &str, kind: &str, class: Option<&str>, n| {
        (day.into(), kind.into(), class.map(Into::into), n)
    };
    vec![
        row("2022-11-25", "raw_visits", None, 100),
        row("2022-11-25", "curated_visits", None, 97),
        row("2022-11-25", "quarantined", Some("unknown_grid"), 2),
        row("2022-11-26", "raw_visits", None, 50),
        row("2022-11-26", "curated_visits", None, 50),
        row("2022-11-26", "late_arrivals", None, 4),
        row("2022-11-26", "conflicting_resends", Some("visits"), 1),
        row(
            "2022-11-26",
            "case_updates_unknown_case",
            Some("hardship"),
            2,
        ),
        row(
            "2022-11-26",
            "case_updates_after_resolution",
            Some("hazard"),
            3,
        ),
        row("2022-11-26", "coverage_over_100", Some("grid"), 1),
        row("2022-11-26", "coverage_over_100", Some("village"), 1),
        row("2022-11-27", "quarantined", Some("malformed_json"), 1),
        row("2022-11-27", "quarantined", Some("unknown_grid"), 3),
    ]
}

fn open_cases() -> Vec<OpenCase> {
    let case = |id: &str, kind: &str, grid: &str, hours| OpenCase {
        case_id: id.into(),
        case_kind: kind.into(),
        category: "gas".into(),
        grid_id: grid.into(),
        opened_at: "2022-11-25 09:00".into(),
        hours_open: hours,
        urgency: (kind == "hardship").then(|| "urgent".into()),
        status: (kind == "hazard").then(|| "assigned".into()),
        handler_id: (kind == "hazard").then(|| "hd-1".into()),
        reopened: false,
    };
    let reopened = OpenCase {
        status: Some("assigned".into()),
        reopened: true,
        ..case("c3", "hazard", "440703001-G1", 100.0)
    };
    vec![
        case("c1", "hazard", "440703001-G1", 86.4),
        case("c2", "hardship", "no-such-grid", 30.0),
        reopened,
    ]
}
