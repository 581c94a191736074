//! The home page: the city's headline figures and charts, its counties,
//! and the latest bulletin (public) or leadership's desk for the city
//! (internal).

use serde::Serialize;

use super::bulletin::{self, Bulletin};
use super::charts::{area_charts, county_coverage_chart, Chart};
use super::common::{bulletin_path, data_stem, Children, Figure};
use super::desk::{self, Below, Desk};
use super::downloads;
use super::Site;
use crate::error::Result;
use crate::site::OutputFile;

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
    /// Leadership's desk for the whole city (internal dashboard).
    pub(crate) desk: Option<Desk>,
    /// Every figure of the city per day (internal dashboard).
    pub(crate) csv: Option<String>,
}

/// The latest bulletin, and where its page is.
#[derive(Debug, Serialize)]
pub(crate) struct LatestBulletin {
    /// The bulletin's page.
    pub(crate) href: String,
    /// Its figures.
    pub(crate) bulletin: Bulletin,
}

/// The home page's model, with the desk's CSV files on the internal
/// dashboard.
pub(crate) fn model(site: &Site<'_>) -> Result<(HomePage, Vec<OutputFile>)> {
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
    let (desk, files) = match site.is_public() {
        true => (None, Vec::new()),
        false => {
            let (desk, mut files) = desk::desk(site, &Below::of(site.rollups), city, "");
            files.push(downloads::internal_csv(site, city));
            (Some(desk), files)
        }
    };
    let page = HomePage {
        city: city.name.clone(),
        cards: site.cards(city),
        charts,
        children: Children::of(site, city, "index.html"),
        latest,
        csv: desk.as_ref().map(|_| format!("{}.csv", data_stem(city))),
        desk,
    };
    Ok((page, files))
}

/// The home page.
pub(crate) fn pages(site: &Site<'_>) -> Result<Vec<OutputFile>> {
    let (page, mut files) = model(site)?;
    files.push(site.render("home.html", "index.html", &page)?);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::fixture::with_site;
    use crate::site::Audience;

    #[test]
    fn the_public_home_page_has_the_latest_bulletin_and_the_counties() {
        with_site(Audience::Public, |site| {
            let (home, files) = model(site).unwrap();
            assert!(files.is_empty());
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
            assert!(home.desk.is_none());
        });
    }

    #[test]
    fn the_dashboard_has_the_city_desk() {
        with_site(Audience::Internal, |site| {
            let (home, files) = model(site).unwrap();
            assert!(home.latest.is_none());
            let desk = home.desk.expect("internal");
            let first: Vec<&str> = desk.lagging.table.rows[0]
                .iter()
                .map(|c| c.text.as_str())
                .collect();
            assert_eq!(first, ["环市街道1号网格", "环市街道第一社区", "3", "0.3%"]);
            assert_eq!(
                desk.lagging.table.rows[0][0].href.as_deref(),
                Some("grid/440703002-G1/index.html")
            );
            assert_eq!(desk.lagging.total, 5);
            // A hazard open 86 h (limit 72 h) and an urgent hardship open
            // 30 h (limit 24 h) in a grid the registry does not have.
            assert_eq!(desk.overdue.total, 2);
            assert_eq!(
                desk.overdue.table.rows[1][4],
                crate::pages::common::TableCell::text("no-such-grid")
            );
            assert!(files
                .iter()
                .any(|f| f.path == "data/desk/city-440700-lagging.csv"));
        });
    }
}
