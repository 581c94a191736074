//! Leadership's desk on the internal dashboard: for the city, each county
//! and each town, what is behind and who must act — the grids of lowest
//! coverage, grids without a visit for days, grids and villages never
//! reached, the cases open past the overdue limit with whom they lie, and
//! the cases handled again after their resolution. Each list is also a CSV
//! file beside the page.

use std::collections::BTreeMap;

use gridstat_schemas::metrics::Metric;
use gridstat_schemas::record::{CaseKind, CaseStatus, HardshipCategory, HazardKind, Urgency};
use serde::Serialize;

use super::common::{area_path, csv_text, data_name, grouped_count, Table, TableCell};
use super::Site;
use crate::model::{Area, Level, OpenCase, Rollups, UnitRow};
use crate::site::OutputFile;

/// How many rows a list on the page shows (its CSV file has them all).
pub(crate) const LIST_LENGTH: usize = 20;

/// Days without a visit after which a grid that was visited counts as
/// silent.
pub(crate) const SILENT_DAYS: usize = 2;

/// The desk of an area.
#[derive(Debug, Serialize)]
pub(crate) struct Desk {
    /// Grids reached, of the registry's.
    pub(crate) grids_reached: String,
    /// Villages and communities reached (at least one grid visited), of
    /// those with grids.
    pub(crate) villages_reached: String,
    /// The lists, each with its CSV file.
    pub(crate) lagging: List,
    /// Grids visited before, without a visit for [`SILENT_DAYS`] days or
    /// more.
    pub(crate) silent: List,
    /// Grids never visited.
    pub(crate) never_grids: List,
    /// Villages and communities none of whose grids was visited.
    pub(crate) never_villages: List,
    /// Cases open past the overdue limit, most overdue first.
    pub(crate) overdue: List,
    /// Cases resolved and then taken up again, longest since opening first.
    pub(crate) reopened: List,
    /// The sending agencies with reporters in the area, most reporters
    /// since the start first.
    pub(crate) units: List,
    /// The overdue limits, in hours: urgent, normal (and hazards), low.
    pub(crate) overdue_hours: [u32; 3],
    /// How many days count as silent.
    pub(crate) silent_days: usize,
}

/// A list on the page: its first rows, how many it has, and its CSV.
#[derive(Debug, Serialize)]
pub(crate) struct List {
    /// The rows shown.
    pub(crate) table: Table,
    /// Rows in all.
    pub(crate) total: usize,
    /// The CSV file with every row, relative to the page.
    pub(crate) csv: String,
}

/// The grids and villages below each area, and the cases open in it.
pub(crate) struct Below<'a> {
    grids: BTreeMap<(Level, String), Vec<&'a Area>>,
    villages: BTreeMap<(Level, String), Vec<&'a Area>>,
    cases: BTreeMap<(Level, String), Vec<&'a OpenCase>>,
}

impl<'a> Below<'a> {
    /// Index every grid, village and open case under each of its ancestors.
    pub(crate) fn of(r: &'a Rollups) -> Self {
        let ancestors = |area: &'a Area| {
            std::iter::successors(r.parent(area), |a| r.parent(a))
                .map(|a| (a.level, a.code.clone()))
        };
        let mut below = Below {
            grids: BTreeMap::new(),
            villages: BTreeMap::new(),
            cases: BTreeMap::new(),
        };
        let mut grid_keys: BTreeMap<&str, Vec<(Level, String)>> = BTreeMap::new();
        for grid in r.level(Level::Grid) {
            let keys: Vec<_> = ancestors(grid).collect();
            for key in &keys {
                below.grids.entry(key.clone()).or_default().push(grid);
            }
            grid_keys.insert(grid.code.as_str(), keys);
        }
        for village in r.level(Level::Village) {
            for key in ancestors(village) {
                below.villages.entry(key).or_default().push(village);
            }
        }
        // A case of a grid the registry no longer has is still the city's.
        let city = r.city().map(|c| vec![(c.level, c.code.clone())]);
        for case in &r.open_cases {
            let keys = grid_keys.get(case.grid_id.as_str()).or(city.as_ref());
            for key in keys.into_iter().flatten() {
                below.cases.entry(key.clone()).or_default().push(case);
            }
        }
        below
    }

    fn grids(&self, area: &Area) -> &[&'a Area] {
        self.grids
            .get(&(area.level, area.code.clone()))
            .map_or(&[], Vec::as_slice)
    }

    fn villages(&self, area: &Area) -> &[&'a Area] {
        self.villages
            .get(&(area.level, area.code.clone()))
            .map_or(&[], Vec::as_slice)
    }

    fn cases(&self, area: &Area) -> &[&'a OpenCase] {
        self.cases
            .get(&(area.level, area.code.clone()))
            .map_or(&[], Vec::as_slice)
    }
}

/// The desk of `area` on a page at `root` (the way back to the site's
/// root), with its CSV files.
pub(crate) fn desk(
    site: &Site<'_>,
    below: &Below<'_>,
    area: &Area,
    root: &str,
) -> (Desk, Vec<OutputFile>) {
    let last = site.last();
    let r = site.rollups;
    let grids = below.grids(area);
    let villages = below.villages(area);
    let count = |a: &Area, m: Metric| a.cum(m, last).unwrap_or(0.0);
    let name_of = |a: Option<&Area>| a.map(|a| a.name.clone()).unwrap_or_default();
    let grid_row = |g: &Area| {
        vec![
            TableCell::link(g.name.clone(), format!("{root}{}", area_path(g))),
            TableCell::text(name_of(r.parent(g))),
        ]
    };
    let mut files = Vec::new();
    let mut list = |what: &str, rows: Vec<Vec<TableCell>>, headings: &[&str]| {
        let path = format!("data/desk/{}-{what}.csv", data_name(area));
        files.push(OutputFile {
            path: path.clone(),
            bytes: csv_text(headings, &rows).into_bytes(),
        });
        List {
            total: rows.len(),
            table: Table {
                columns: Vec::new(),
                rows: rows.into_iter().take(LIST_LENGTH).collect(),
            },
            csv: format!("{root}{path}"),
        }
    };

    let mut by_coverage: Vec<(&Area, f64)> =
        grids.iter().map(|g| (*g, coverage(g, last))).collect();
    by_coverage.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.code.cmp(&b.0.code)));
    let lagging = by_coverage
        .iter()
        .map(|(g, coverage)| {
            let mut row = grid_row(g);
            row.push(TableCell::count(count(g, Metric::HouseholdsVisited)));
            row.push(TableCell::text(percent(*coverage)));
            row
        })
        .collect();
    let lagging = list(
        "lagging",
        lagging,
        &["网格", "村(社区)", "累计走访住户", "覆盖率"],
    );

    let mut silent: Vec<(&Area, usize)> = grids
        .iter()
        .filter_map(|g| {
            let visits = g.daily.get(&Metric::Visits)?;
            let latest = visits.iter().rposition(|v| v.unwrap_or(0.0) > 0.0)?;
            let quiet = last - latest;
            (quiet >= SILENT_DAYS).then_some((*g, latest))
        })
        .collect();
    silent.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.code.cmp(&b.0.code)));
    let silent = silent
        .iter()
        .map(|(g, latest)| {
            let mut row = grid_row(g);
            row.push(TableCell::text(site.days()[*latest].to_string()));
            row.push(TableCell::text((last - latest).to_string()));
            row
        })
        .collect();
    let silent = list(
        "silent",
        silent,
        &["网格", "村(社区)", "最近走访日期", "无走访天数"],
    );

    let never: Vec<&&Area> = grids
        .iter()
        .filter(|g| count(g, Metric::Visits) == 0.0)
        .collect();
    let never_grids = never
        .iter()
        .map(|g| {
            let mut row = grid_row(g);
            row.push(TableCell::count(count(g, Metric::HouseholdsRegistered)));
            row
        })
        .collect();
    let never_grids = list(
        "never-grids",
        never_grids,
        &["网格", "村(社区)", "登记住户"],
    );
    let reached_villages = villages
        .iter()
        .filter(|v| count(v, Metric::GridsReached) > 0.0)
        .count();
    let never_villages = villages
        .iter()
        .filter(|v| count(v, Metric::GridsReached) == 0.0)
        .map(|v| {
            vec![
                TableCell::link(v.name.clone(), format!("{root}{}", area_path(v))),
                TableCell::text(name_of(r.parent(v))),
                TableCell::count(count(v, Metric::GridsRegistered)),
                TableCell::count(count(v, Metric::HouseholdsRegistered)),
            ]
        })
        .collect();
    let never_villages = list(
        "never-villages",
        never_villages,
        &["村(社区)", "镇(街道)", "网格数", "登记住户"],
    );

    // A case's id, kind, category, grid (linked where the registry has
    // it), opening time, current status and handler: the columns both case
    // lists share.
    let case_row = |c: &&OpenCase| -> Vec<TableCell> {
        let grid = r.areas.get(&(Level::Grid, c.grid_id.clone()));
        vec![
            TableCell::text(c.case_id.clone()),
            TableCell::text(kind_label(&c.case_kind)),
            TableCell::text(category_label(&c.case_kind, &c.category)),
            grid.map_or_else(
                || TableCell::text(c.grid_id.clone()),
                |g| TableCell::link(g.name.clone(), format!("{root}{}", area_path(g))),
            ),
            TableCell::text(c.opened_at.clone()),
            TableCell::text(status_label(c.status.as_deref())),
            TableCell::text(c.handler_id.clone().unwrap_or_else(|| "—".into())),
        ]
    };
    let overdue = below
        .cases(area)
        .iter()
        .filter(|c| {
            !c.reopened && c.hours_open > f64::from(site.opts.overdue_limit(c.urgency.as_deref()))
        })
        .map(|c| {
            let mut row = case_row(c);
            row.insert(3, TableCell::text(urgency_label(c.urgency.as_deref())));
            row.push(TableCell::text(format!("{:.1}", c.hours_open / 24.0)));
            row
        })
        .collect();
    let overdue = list(
        "overdue",
        overdue,
        &[
            "编号",
            "类型",
            "类别",
            "紧急程度",
            "网格",
            "登记时间",
            "当前状态",
            "经办人",
            "已历时(天)",
        ],
    );

    let reopened = below
        .cases(area)
        .iter()
        .filter(|c| c.reopened)
        .map(case_row)
        .collect();
    let reopened = list(
        "reopened",
        reopened,
        &[
            "编号",
            "类型",
            "类别",
            "网格",
            "登记时间",
            "当前状态",
            "经办人",
        ],
    );

    let mut units: Vec<&UnitRow> = r
        .units
        .iter()
        .filter(|u| u.level == area.level && u.area_code == area.code)
        .collect();
    units.sort_by(|a, b| {
        b.reporters_since_start
            .cmp(&a.reporters_since_start)
            .then(a.unit.cmp(&b.unit))
    });
    let units = units
        .iter()
        .map(|u| {
            let mut row = vec![TableCell::text(u.unit.clone())];
            row.extend(
                [
                    u.reporters_active,
                    u.reporters_since_start,
                    u.visits,
                    u.visits_since_start,
                ]
                .map(|n| TableCell::count(n as f64)),
            );
            row
        })
        .collect();
    let units = list(
        "units",
        units,
        &[
            "派出单位",
            "当日在岗人员",
            "累计参与人员",
            "当日走访",
            "累计走访",
        ],
    );

    let reached = count(area, Metric::GridsReached);
    let registered = count(area, Metric::GridsRegistered);
    let desk = Desk {
        grids_reached: format!("{}/{}", grouped_count(reached), grouped_count(registered)),
        villages_reached: format!(
            "{}/{}",
            grouped_count(reached_villages as f64),
            grouped_count(villages.len() as f64)
        ),
        lagging,
        silent,
        never_grids,
        never_villages,
        overdue,
        reopened,
        units,
        overdue_hours: [
            site.opts.urgent_overdue_hours,
            site.opts.overdue_hours,
            site.opts.low_overdue_hours,
        ],
        silent_days: SILENT_DAYS,
    };
    (desk, files)
}

/// An area's cumulative coverage on day index `day` (0 where none was
/// registered).
fn coverage(area: &Area, day: usize) -> f64 {
    let visited = area.cum(Metric::HouseholdsVisited, day).unwrap_or(0.0);
    match area.cum(Metric::HouseholdsRegistered, day) {
        Some(registered) if registered > 0.0 => visited / registered,
        _ => 0.0,
    }
}

/// A share as the dashboard writes it.
fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// The Chinese name of a case kind (its wire name as it is if unknown).
fn kind_label(kind: &str) -> String {
    CaseKind::from_wire(kind).map_or_else(|| kind.to_string(), |k| k.label_zh().to_string())
}

/// The Chinese name of a hardship category or hazard kind.
fn category_label(kind: &str, category: &str) -> String {
    let label = match CaseKind::from_wire(kind) {
        Some(CaseKind::Hardship) => HardshipCategory::from_wire(category).map(|c| c.label_zh()),
        Some(CaseKind::Hazard) => HazardKind::from_wire(category).map(|k| k.label_zh()),
        None => None,
    };
    label.map_or_else(|| category.to_string(), str::to_string)
}

/// The Chinese name of an urgency; hazards have none.
fn urgency_label(urgency: Option<&str>) -> String {
    urgency
        .and_then(Urgency::from_wire)
        .map_or_else(|| "—".to_string(), |u| u.label_zh().to_string())
}

/// The Chinese name of the state a case's last update left it in.
fn status_label(status: Option<&str>) -> String {
    status
        .and_then(CaseStatus::from_wire)
        .map_or_else(|| "待交办".to_string(), |s| s.label_zh().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::fixture::with_site;
    use crate::site::Audience;

    #[test]
    fn a_county_desk_lists_what_lags_and_the_overdue_cases_in_chinese() {
        with_site(Audience::Internal, |site| {
            let below = Below::of(site.rollups);
            let county = &site.rollups.areas[&(Level::County, "440703".to_string())];
            let (desk, files) = desk(site, &below, county, "../../");
            assert_eq!(desk.grids_reached, "3/3");
            assert_eq!(desk.villages_reached, "3/3");
            let first: Vec<&str> = desk.lagging.table.rows[0]
                .iter()
                .map(|c| c.text.as_str())
                .collect();
            assert_eq!(first, ["环市街道1号网格", "环市街道第一社区", "3", "0.3%"]);
            assert_eq!(desk.lagging.total, 3);
            assert_eq!(desk.overdue.total, 1, "the hazard open 86 h of the county");
            let case: Vec<&str> = desk.overdue.table.rows[0]
                .iter()
                .map(|c| c.text.as_str())
                .collect();
            assert_eq!(
                case,
                [
                    "c1",
                    "安全隐患",
                    "燃气",
                    "—",
                    "白沙街道1号网格",
                    "2022-11-25 09:00",
                    "已交办",
                    "hd-1",
                    "3.6"
                ]
            );
            assert_eq!(
                desk.overdue.csv,
                "../../data/desk/county-440703-overdue.csv"
            );
            let csv = files
                .iter()
                .find(|f| f.path == "data/desk/county-440703-overdue.csv")
                .unwrap();
            let text = String::from_utf8(csv.bytes.clone()).unwrap();
            assert!(text.starts_with("编号,类型,类别,紧急程度,网格"), "{text}");
            assert_eq!(text.lines().count(), 2);
            // Reopened after its resolution: listed apart, not overdue.
            assert_eq!(desk.reopened.total, 1);
            let reopened: Vec<&str> = desk.reopened.table.rows[0]
                .iter()
                .map(|c| c.text.as_str())
                .collect();
            assert_eq!(
                reopened,
                [
                    "c3",
                    "安全隐患",
                    "燃气",
                    "白沙街道1号网格",
                    "2022-11-25 09:00",
                    "已交办",
                    "hd-1"
                ]
            );
            let units: Vec<Vec<&str>> = desk
                .units
                .table
                .rows
                .iter()
                .map(|r| r.iter().map(|c| c.text.as_str()).collect())
                .collect();
            assert_eq!(
                units,
                [
                    ["蓬江区委组织部", "0", "8", "0", "61"],
                    ["蓬江区民政局", "3", "5", "12", "40"]
                ]
            );
        });
    }
}
