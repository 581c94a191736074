//! Charts of page models: the published series of an area, drawn by
//! [`crate::chart`], with their data as a table. A chart's title and
//! description are words, so they come from the `charts.txt` template
//! (macros `<chart>_title` and `<chart>_desc`), rendered before drawing.

use gridstat_schemas::metrics::Metric;
use serde::Serialize;

use super::common::{Day, Table, TableCell};
use super::Site;
use crate::chart::{line_chart, Series};
use crate::error::Result;
use crate::model::Area;
use crate::templates::ChartTexts;

/// A chart: title, SVG, and the data drawn.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Chart {
    /// The title (also the data table's caption).
    pub(crate) title: String,
    /// The SVG, with the title and description inside for screen readers.
    pub(crate) svg: String,
    /// One row per day, one column per line.
    pub(crate) table: Table,
}

/// What the chart-text macros get.
#[derive(Debug, Serialize)]
struct ChartFacts<'a> {
    /// The area's name.
    area: &'a str,
    /// The first day drawn.
    first: Day,
    /// The last day drawn.
    last: Day,
    /// The number of lines.
    lines: usize,
}

/// One line of a chart: a metric of an area.
struct Line<'a> {
    label: String,
    area: &'a Area,
    metric: Metric,
}

/// The charts of every area page (and of the home page, for the city):
/// the name of their texts, their metrics, and whether they are shares.
const AREA_CHARTS: [(&str, &[Metric], bool); 3] = [
    ("coverage", &[Metric::Coverage], true),
    (
        "hazards",
        &[
            Metric::HazardsFound,
            Metric::HazardsFixed,
            Metric::HazardsOpen,
        ],
        false,
    ),
    (
        "hardships",
        &[
            Metric::HardshipsRaised,
            Metric::HardshipsResolved,
            Metric::HardshipsOpen,
        ],
        false,
    ),
];

/// The charts of an area's page: coverage, hazards and hardships over the days.
pub(crate) fn area_charts(
    site: &Site<'_>,
    texts: &mut ChartTexts<'_>,
    area: &Area,
) -> Result<Vec<Chart>> {
    AREA_CHARTS
        .iter()
        .map(|&(name, metrics, percent)| {
            let lines: Vec<Line<'_>> = metrics
                .iter()
                .map(|&metric| Line {
                    label: metric.label().into(),
                    area,
                    metric,
                })
                .collect();
            chart(site, texts, name, area, &lines, percent)
        })
        .collect()
}

/// The coverage of each of the city's counties over the days.
pub(crate) fn county_coverage_chart(site: &Site<'_>, texts: &mut ChartTexts<'_>) -> Result<Chart> {
    let city = site.city();
    let lines: Vec<Line<'_>> = site
        .rollups
        .children(city)
        .map(|county| Line {
            label: county.name.clone(),
            area: county,
            metric: Metric::Coverage,
        })
        .collect();
    chart(site, texts, "county_coverage", city, &lines, true)
}

/// Draw `lines` with the texts `name` of `charts.txt`, about `area`.
fn chart(
    site: &Site<'_>,
    texts: &mut ChartTexts<'_>,
    name: &str,
    area: &Area,
    lines: &[Line<'_>],
    percent: bool,
) -> Result<Chart> {
    let days = site.days();
    let facts = ChartFacts {
        area: &area.name,
        first: Day(days[0]),
        last: Day(days[site.last()]),
        lines: lines.len(),
    };
    let (title, desc) = texts.title_and_desc(name, &facts)?;
    let series: Vec<Series> = lines
        .iter()
        .map(|l| Series {
            label: l.label.clone(),
            values: (0..days.len())
                .map(|d| site.published.get(l.area, l.metric, d))
                .collect(),
        })
        .collect();
    let rows = days
        .iter()
        .enumerate()
        .map(|(d, day)| {
            let mut row = vec![TableCell::text(day.format("%Y-%m-%d").to_string())];
            row.extend(
                lines
                    .iter()
                    .map(|l| TableCell::figure(site.figure(l.area, l.metric, d))),
            );
            row
        })
        .collect();
    Ok(Chart {
        svg: line_chart(&title, &desc, days, &series, percent)?,
        title,
        table: Table {
            columns: lines.iter().map(|l| l.label.clone()).collect(),
            rows,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::fixture::{self, with_site};
    use crate::site::Audience;

    #[test]
    fn a_chart_tables_what_it_draws() {
        with_site(Audience::Public, |site| {
            let mut texts = site.chart_texts().unwrap();
            let chart = county_coverage_chart(site, &mut texts).unwrap();
            assert!(chart
                .svg
                .contains("<desc>2个县(市、区)每日累计覆盖率,数据见图下表格。</desc>"));
            assert_eq!(chart.table.columns, ["蓬江区", "台山市"]);
            let last: Vec<&str> = chart.table.rows[2]
                .iter()
                .map(|c| c.text.as_str())
                .collect();
            assert_eq!(last, ["2022-11-27", "15.1%", "21.0%"]);
        });
    }

    #[test]
    fn chart_words_come_from_the_template() {
        let rollups = fixture::rollups();
        let mut opts = fixture::options(Audience::Public);
        opts.template_overrides.insert(
            "charts.txt".into(),
            include_str!("../../templates/charts.txt")
                .replace("住户走访覆盖率(累计)", "覆盖率 & 走访")
                .replace("每日数值", "逐日"),
        );
        let site = Site::new(&rollups, &opts).unwrap();
        let city = site.city();
        let charts = area_charts(&site, &mut site.chart_texts().unwrap(), city).unwrap();
        assert_eq!(charts[0].title, "江门市覆盖率 & 走访");
        assert!(charts[0]
            .svg
            .contains("<title>江门市覆盖率 &amp; 走访</title>"));
        assert!(charts[1].svg.contains("<desc>2022-11-25至2022-11-27逐日,"));
    }
}
