//! The home page: the city's headline figures and charts, its counties,
//! and the latest bulletin (public) or the grids that lag and the cases
//! open longest (internal).

use gridstat_schemas::metrics::Metric;
use serde::Serialize;

use super::bulletin::{self, Bulletin};
use super::charts::{area_charts, county_coverage_chart, Chart};
use super::common::{area_path, bulletin_path, labels, Children, Figure, Table, TableCell};
use super::Site;
use crate::error::Result;
use crate::model::{Area, Level};
use crate::site::OutputFile;

/// How many grids and cases the internal lists show.
const LIST_LENGTH: usize = 20;

/// The home page's model.
#[derive(Debug, Serialize)]
pub(crate) struct HomePage {
    /// The city's name.
    pub(crate) city: String,
    /// The city's headline figures on the last day.
    pub(crate) cards: Vec<Figure>,
    /// The counties' coverage, then the city's charts.
    pub(crate) charts: Vec<Chart>,
    /// The counties.
    pub(crate) children: Children,
    /// The last day's bulletin (public site).
    pub(crate) latest: Option<LatestBulletin>,
    /// The grids of lowest coverage, lowest first (internal dashboard).
    pub(crate) lagging_grids: Option<Table>,
    /// The cases open longest (internal dashboard).
    pub(crate) overdue: Option<Overdue>,
}

/// The latest bulletin, and where its page is.
#[derive(Debug, Serialize)]
pub(crate) struct LatestBulletin {
    /// The bulletin's page.
    pub(crate) href: String,
    /// Its figures.
    pub(crate) bulletin: Bulletin,
}

/// Cases still open on the last day, longest open first.
#[derive(Debug, Serialize)]
pub(crate) struct Overdue {
    /// The cases.
    pub(crate) cases: Vec<OverdueCase>,
}

/// A case still open on the last day.
#[derive(Debug, Serialize)]
pub(crate) struct OverdueCase {
    /// Case id.
    pub(crate) case_id: String,
    /// `hazard` or `hardship`.
    pub(crate) kind: String,
    /// Category or hazard kind.
    pub(crate) category: String,
    /// The grid, linked to its page when the dashboard has one.
    pub(crate) grid: TableCell,
    /// When it was raised (local time).
    pub(crate) opened_at: String,
    /// Hours open at the end of the last day.
    pub(crate) hours_open: String,
}

/// The home page's model.
pub(crate) fn model(site: &Site<'_>) -> Result<HomePage> {
    let city = site.city();
    let mut texts = site.chart_texts()?;
    let mut charts = vec![county_coverage_chart(site, &mut texts)?];
    charts.extend(area_charts(site, &mut texts, city)?);
    let latest = site.is_public().then(|| {
        let day = site.last();
        LatestBulletin {
            href: bulletin_path(site.days()[day]),
            bulletin: bulletin::bulletin(site, day),
        }
    });
    Ok(HomePage {
        city: city.name.clone(),
        cards: site.cards(city),
        charts,
        children: Children::of(site, city, "index.html"),
        latest,
        lagging_grids: (!site.is_public()).then(|| lagging_grids(site)),
        overdue: (!site.is_public()).then(|| overdue(site)),
    })
}

/// The home page.
pub(crate) fn pages(site: &Site<'_>) -> Result<Vec<OutputFile>> {
    Ok(vec![site.render(
        "home.html",
        "index.html",
        &model(site)?,
    )?])
}

/// The grids of lowest coverage on the last day (none counts as 0).
fn lagging_grids(site: &Site<'_>) -> Table {
    let last = site.last();
    let mut grids: Vec<(&Area, f64)> = site
        .rollups
        .level(Level::Grid)
        .map(|g| {
            let coverage = site.published.get(g, Metric::Coverage, last);
            (g, coverage.unwrap_or(0.0))
        })
        .collect();
    grids.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.code.cmp(&b.0.code)));
    let figures = [Metric::HouseholdsVisited, Metric::Coverage];
    let rows = grids
        .iter()
        .take(LIST_LENGTH)
        .map(|(g, _)| {
            let village = site.rollups.parent(g);
            let town = village.and_then(|v| site.rollups.parent(v));
            let name = |a: Option<&Area>| a.map(|a| a.name.clone()).unwrap_or_default();
            let mut row = vec![
                TableCell::link(g.name.clone(), area_path(g)),
                TableCell::text(name(town)),
                TableCell::text(name(village)),
            ];
            row.extend(
                figures
                    .iter()
                    .map(|&m| TableCell::text(site.figure(g, m, last).value)),
            );
            row
        })
        .collect();
    Table {
        columns: labels(&figures),
        rows,
    }
}

/// The cases open longest.
fn overdue(site: &Site<'_>) -> Overdue {
    let cases = site
        .rollups
        .open_cases
        .iter()
        .take(LIST_LENGTH)
        .map(|c| {
            let grid = site.rollups.areas.get(&(Level::Grid, c.grid_id.clone()));
            OverdueCase {
                case_id: c.case_id.clone(),
                kind: c.case_kind.clone(),
                category: c.category.clone(),
                grid: grid.map_or_else(
                    || TableCell::text(c.grid_id.clone()),
                    |g| TableCell::link(g.name.clone(), area_path(g)),
                ),
                opened_at: c.opened_at.clone(),
                hours_open: format!("{:.0}", c.hours_open),
            }
        })
        .collect();
    Overdue { cases }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::fixture::with_site;
    use crate::site::Audience;

    #[test]
    fn the_public_home_page_has_the_latest_bulletin_and_the_counties() {
        with_site(Audience::Public, |site| {
            let home = model(site).unwrap();
            assert_eq!(home.city, "江门市");
            let latest = home.latest.expect("public");
            assert_eq!(latest.href, "bulletins/2022-11-27/index.html");
            assert_eq!(latest.bulletin, bulletin::bulletin(site, 2));
            let counties: Vec<&str> = home
                .children
                .table
                .rows
                .iter()
                .map(|r| r[0].text.as_str())
                .collect();
            assert_eq!(counties, ["蓬江区", "台山市"]);
            assert_eq!(
                home.children.table.rows[0][0].href.as_deref(),
                Some("county/440703/index.html")
            );
            let titles: Vec<&str> = home.charts.iter().map(|c| c.title.as_str()).collect();
            assert_eq!(
                titles,
                [
                    "各县(市、区)住户走访覆盖率(累计)",
                    "江门市住户走访覆盖率(累计)",
                    "江门市安全隐患:排查与整改(累计)",
                    "江门市困难诉求:收集、解决与未解决",
                ]
            );
            assert_eq!(home.charts[0].table.columns, ["蓬江区", "台山市"]);
            assert!(home.lagging_grids.is_none() && home.overdue.is_none());
        });
    }

    #[test]
    fn the_dashboard_lists_lagging_grids_and_overdue_cases() {
        with_site(Audience::Internal, |site| {
            let home = model(site).unwrap();
            assert!(home.latest.is_none());
            let lagging = home.lagging_grids.expect("internal");
            let first: Vec<&str> = lagging.rows[0].iter().map(|c| c.text.as_str()).collect();
            assert_eq!(
                first,
                [
                    "环市街道1号网格",
                    "环市街道",
                    "环市街道第一社区",
                    "3",
                    "0.3%"
                ]
            );
            assert_eq!(
                lagging.rows[0][0].href.as_deref(),
                Some("grid/440703002-G1/index.html")
            );
            assert_eq!(lagging.rows.len(), 5);
            let cases = home.overdue.expect("internal").cases;
            assert_eq!(
                (cases[0].kind.as_str(), cases[0].hours_open.as_str()),
                ("hazard", "62")
            );
            assert_eq!(
                cases[0].grid.href.as_deref(),
                Some("grid/440703001-G1/index.html")
            );
            assert_eq!(
                cases[1].grid,
                TableCell::text("no-such-grid"),
                "an unknown grid is not linked"
            );
        });
    }
}
