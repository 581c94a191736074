//! Downloads (public site): every public figure of every city, county and
//! town per day, as published, in CSV and JSON per area and for all of
//! them, and the page listing them.

use std::collections::BTreeMap;

use gridstat_schemas::metrics::{Kind, Metric, PUBLIC_FIGURES};
use serde::Serialize;

use super::common::{csv_cell, data_name, data_stem, plain_count, push_csv_cell};
use super::Site;
use crate::error::Result;
use crate::model::{Area, Level};
use crate::site::{parallel_map, OutputFile};
use crate::suppress::Cell;

/// The name of the data files with every area's rows, without extension.
const ALL_NAME: &str = "all";

/// The downloads page's model.
#[derive(Debug, Serialize)]
pub(crate) struct DownloadsPage {
    /// The files with every area's rows, relative to the page.
    pub(crate) all: Vec<String>,
    /// Each area's CSV file.
    pub(crate) areas: Vec<AreaDownload>,
}

/// An area's CSV file.
#[derive(Debug, Serialize)]
pub(crate) struct AreaDownload {
    /// The area's name.
    pub(crate) name: String,
    /// The file, relative to the page.
    pub(crate) csv: String,
}

/// One row of the data files: an area on a day, by column name (the
/// catalogue's metric names). Shares have four decimals, withheld cells
/// read as on the pages.
pub(crate) type Row = BTreeMap<&'static str, String>;

/// The areas with data files: all but grids.
fn areas<'a>(site: &Site<'a>) -> impl Iterator<Item = &'a Area> {
    site.rollups
        .areas
        .values()
        .filter(|a| a.level != Level::Grid)
}

/// The downloads page's model.
pub(crate) fn model(site: &Site<'_>) -> DownloadsPage {
    DownloadsPage {
        all: vec![format!("{ALL_NAME}.csv"), format!("{ALL_NAME}.json")],
        areas: areas(site)
            .map(|a| AreaDownload {
                name: a.name.clone(),
                csv: format!("{}.csv", data_name(a)),
            })
            .collect(),
    }
}

/// The columns that name a row: the day, the area's level, code and name.
fn row_head(site: &Site<'_>, area: &Area, day: usize) -> Row {
    let mut row = Row::new();
    row.insert("date", site.days()[day].to_string());
    row.insert("level", area.level.name().to_string());
    row.insert("area_code", area.code.clone());
    row.insert("area_name", area.name.clone());
    row
}

/// `area`'s rows, one per day.
pub(crate) fn rows(site: &Site<'_>, area: &Area) -> Vec<Row> {
    (0..site.days().len())
        .map(|d| {
            let mut row = row_head(site, area, d);
            for &m in PUBLIC_FIGURES {
                let value = match site.published.cell(area, m, d) {
                    Cell::Shown(v) if matches!(m.kind(), Kind::Ratio { .. }) => format!("{v:.4}"),
                    _ => site.figure(area, m, d).plain,
                };
                row.insert(m.name(), value);
            }
            row
        })
        .collect()
}

/// Every area's data files, all rows' files, and the page.
pub(crate) fn pages(site: &Site<'_>) -> Result<Vec<OutputFile>> {
    let areas: Vec<&Area> = areas(site).collect();
    let per_area = parallel_map(&areas, |area| {
        let rows = rows(site, area);
        let files = data_files(&data_stem(area), &rows);
        Ok((rows, files))
    })?;
    let mut out = Vec::new();
    let mut all_rows = Vec::new();
    for (rows, files) in per_area {
        out.extend(files);
        all_rows.extend(rows);
    }
    // The two largest files of the site, side by side.
    let stem = format!("data/{ALL_NAME}");
    let (csv, json) = std::thread::scope(|scope| {
        let json = scope.spawn(|| json_file(&stem, &all_rows));
        let csv = csv_file(&stem, &all_rows);
        (csv, json.join().expect("serializing rows does not panic"))
    });
    out.extend([csv, json]);
    out.push(site.render("downloads.html", "data/index.html", &model(site))?);
    Ok(out)
}

/// The CSV file of every figure of the catalogue an area has, per day,
/// for the internal dashboard: the cumulative values (shares with four
/// decimals, hours with one; empty where there is none). Columns in name
/// order, as the public files have them. Written straight into the text:
/// the internal dashboard has one for each of thousands of areas.
pub(crate) fn internal_csv(site: &Site<'_>, area: &Area) -> OutputFile {
    let columns = internal_columns();
    // Each metric's series looked up once per area, not once per day.
    let series: Vec<Option<&Vec<Option<f64>>>> = columns
        .iter()
        .map(|(_, metric)| metric.and_then(|m| area.cumulative.get(&m)))
        .collect();
    let mut out = String::with_capacity(512 * (site.days().len() + 1));
    for (i, (name, _)) in columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
    }
    out.push('\n');
    for (d, day) in site.days().iter().enumerate() {
        for (i, ((name, metric), series)) in columns.iter().zip(&series).enumerate() {
            if i > 0 {
                out.push(',');
            }
            let value = match (metric, *name) {
                (Some(m), _) => series
                    .and_then(|s| s.get(d).copied().flatten())
                    .map_or_else(String::new, |v| match m.kind() {
                        Kind::Ratio { .. } => format!("{v:.4}"),
                        Kind::Percentile => format!("{v:.1}"),
                        _ => plain_count(v),
                    }),
                (None, "date") => day.to_string(),
                (None, "level") => area.level.name().to_string(),
                (None, "area_code") => area.code.clone(),
                (None, _) => area.name.clone(),
            };
            push_csv_cell(&mut out, &value);
        }
        out.push('\n');
    }
    OutputFile {
        path: format!("{}.csv", data_stem(area)),
        bytes: out.into_bytes(),
    }
}

/// The internal CSV's columns in name order: the four that name a row
/// (`None`) and every metric of the catalogue. The same for every area, so
/// sorted once.
fn internal_columns() -> &'static [(&'static str, Option<Metric>)] {
    static COLUMNS: std::sync::OnceLock<Vec<(&'static str, Option<Metric>)>> =
        std::sync::OnceLock::new();
    COLUMNS.get_or_init(|| {
        let mut columns: Vec<(&'static str, Option<Metric>)> =
            ["date", "level", "area_code", "area_name"]
                .into_iter()
                .map(|head| (head, None))
                .chain(Metric::all().map(|m| (m.name(), Some(m))))
                .collect();
        columns.sort_by_key(|(name, _)| *name);
        columns
    })
}

/// `rows` as `{stem}.csv` and `{stem}.json`.
fn data_files(stem: &str, rows: &[Row]) -> [OutputFile; 2] {
    [csv_file(stem, rows), json_file(stem, rows)]
}

/// `rows` as `{stem}.csv`.
fn csv_file(stem: &str, rows: &[Row]) -> OutputFile {
    OutputFile {
        path: format!("{stem}.csv"),
        bytes: to_csv(rows).into_bytes(),
    }
}

/// `rows` as `{stem}.json`.
fn json_file(stem: &str, rows: &[Row]) -> OutputFile {
    OutputFile {
        path: format!("{stem}.json"),
        bytes: serde_json::to_vec_pretty(rows).expect("rows serialize"),
    }
}

/// CSV with a header of the rows' keys; fields quoted where needed.
fn to_csv(rows: &[Row]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let mut out = first.keys().copied().collect::<Vec<_>>().join(",");
    out.push('\n');
    for r in rows {
        let line: Vec<String> = r.values().map(|v| csv_cell(v)).collect();
        out += &line.join(",");
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn cells_a_spreadsheet_would_run_as_formulas_are_neutralised() {
        assert_eq!(
            csv_cell("=HYPERLINK(\"http://x\")"),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-2"), "'-2");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("蓬江区"), "蓬江区");
        assert_eq!(csv_cell("0.1234"), "0.1234");
        assert_eq!(csv_cell("<5"), "<5");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
    }

    use super::*;
    use crate::pages::fixture::with_site;
    use crate::site::Audience;
    use gridstat_schemas::metrics::Metric;

    #[test]
    fn rows_carry_published_cells_and_shares_in_full() {
        with_site(Audience::Public, |site| {
            let town = |code: &str| &site.rollups.areas[&(Level::Town, code.to_string())];
            let visited = Metric::HouseholdsVisited.name();
            let small = rows(site, town("440703002"));
            assert_eq!(small.len(), 3);
            assert_eq!(small[2][visited], "<5");
            assert_eq!(small[2]["date"], "2022-11-27");
            let withheld = rows(site, town("440703003"));
            assert_eq!(withheld[2][visited], "×");
            assert_eq!(withheld[2][Metric::Coverage.name()], "×");
            let shown = rows(site, town("440703001"));
            assert_eq!(shown[2][visited], "300");
            assert_eq!(shown[2][Metric::Coverage.name()], "0.3000");
        });
    }

    #[test]
    fn every_public_area_has_files_and_a_link() {
        with_site(Audience::Public, |site| {
            let page = model(site);
            assert_eq!(page.all, ["all.csv", "all.json"]);
            assert_eq!(page.areas.len(), 1 + 2 + 5 + 5);
            assert_eq!(page.areas[0].csv, "city-440700.csv");
            let files = pages(site).unwrap();
            assert_eq!(files.len(), 13 * 2 + 2 + 1);
            let all = files.iter().find(|f| f.path == "data/all.csv").unwrap();
            let text = String::from_utf8(all.bytes.clone()).unwrap();
            assert_eq!(text.lines().count(), 1 + 13 * 3);
            assert!(text.starts_with("area_code,area_name,"), "{text}");
        });
    }

    #[test]
    fn the_internal_csv_holds_every_figure_of_the_catalogue_per_day() {
        with_site(Audience::Internal, |site| {
            let town = &site.rollups.areas[&(Level::Town, "440703001".to_string())];
            let file = internal_csv(site, town);
            assert_eq!(file.path, "data/town-440703001.csv");
            let text = String::from_utf8(file.bytes).unwrap();
            let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
            assert_eq!(lines.len(), 1 + site.days().len());
            let header = &lines[0];
            assert_eq!(header.len(), 4 + Metric::all().count());
            assert!(header.windows(2).all(|w| w[0] < w[1]), "{header:?}");
            let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
            let last = &lines[site.days().len()];
            assert_eq!(last[column("date")], "2022-11-27");
            assert_eq!(last[column("level")], "town");
            assert_eq!(last[column("area_code")], "440703001");
            let visited = Metric::HouseholdsVisited;
            assert_eq!(
                last[column(visited.name())],
                plain_count(town.cum(visited, site.last()).unwrap())
            );
            let missing = Metric::all()
                .find(|m| town.cum(*m, site.last()).is_none())
                .expect("a figure the fixture lacks");
            assert_eq!(last[column(missing.name())], "", "{missing:?}");
        });
    }

    #[test]
    fn csv_fields_are_quoted_where_needed() {
        let row = Row::from([("a", "x,y".to_string()), ("b", "say \"hi\"".to_string())]);
        assert_eq!(to_csv(&[row]), "a,b\n\"x,y\",\"say \"\"hi\"\"\"\n");
    }
}
