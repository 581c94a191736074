//! Area pages: one per county, town and village (and grid, internal), with the
//! area's figures, charts, children and downloads. Rendered in parallel:
//! they are most of the site.

use gridstat_schemas::metrics::Metric;
use serde::Serialize;

use super::charts::{area_charts, Chart};
use super::common::{area_path, data_stem, depth_root, grouped_count, Children, Figure, Link};
use super::desk::{self, Below, Desk};
use super::Site;
use crate::error::Result;
use crate::model::{Area, Level};
use crate::site::{parallel_map_with, OutputFile};
use crate::templates::ChartTexts;

/// An area page's model.
#[derive(Debug, Serialize)]
pub(crate) struct AreaPage {
    /// The area's name.
    pub(crate) name: String,
    /// Its division code or grid id.
    pub(crate) code: String,
    /// Its level's label.
    pub(crate) level: &'static str,
    /// Households registered, or "—" when unknown.
    pub(crate) registered: String,
    /// The areas above it, below the city, from the top.
    pub(crate) ancestors: Vec<Link>,
    /// Headline figures on the last day.
    pub(crate) cards: Vec<Figure>,
    /// Charts over the days.
    pub(crate) charts: Vec<Chart>,
    /// The children the audience has pages for (none for grids, and for
    /// towns on the public site).
    pub(crate) children: Option<Children>,
    /// The area's data files (public site).
    pub(crate) downloads: Option<DataFiles>,
    /// Leadership's desk (counties and towns on the internal dashboard).
    pub(crate) desk: Option<Desk>,
}

/// Links to an area's data files.
#[derive(Debug, Serialize)]
pub(crate) struct DataFiles {
    /// The CSV file.
    pub(crate) csv: String,
    /// The JSON file (public site).
    pub(crate) json: Option<String>,
}

/// The model of `area`'s page, its charts' words from `texts`, with the
/// desk's CSV files on the internal dashboard.
pub(crate) fn model(
    site: &Site<'_>,
    texts: &mut ChartTexts<'_>,
    below: &Below<'_>,
    area: &Area,
) -> Result<(AreaPage, Vec<OutputFile>)> {
    let path = area_path(area);
    let root = depth_root(&path);
    let has_children = match area.level {
        Level::Grid => false,
        Level::Village => !site.is_public(),
        Level::City | Level::County | Level::Town => true,
    };
    // Public: the published figures (written by the downloads pages);
    // internal: every figure of the catalogue, written here.
    let stem = format!("{root}{}", data_stem(area));
    let downloads = Some(DataFiles {
        csv: format!("{stem}.csv"),
        json: site.is_public().then(|| format!("{stem}.json")),
    });
    let with_desk = !site.is_public() && matches!(area.level, Level::County | Level::Town);
    let (desk, files) = match with_desk {
        true => {
            let (desk, files) = desk::desk(site, below, area, &root);
            (Some(desk), files)
        }
        false => (None, Vec::new()),
    };
    let mut files = files;
    if !site.is_public() {
        files.push(super::downloads::internal_csv(site, area));
    }
    let page = AreaPage {
        name: area.name.clone(),
        code: area.code.clone(),
        level: area.level.label(),
        registered: area
            .cum(Metric::HouseholdsRegistered, site.last())
            .map_or_else(|| "—".into(), grouped_count),
        ancestors: ancestors(site, area, &root),
        cards: site.cards(area),
        charts: area_charts(site, texts, area)?,
        children: has_children.then(|| Children::of(site, area, &path)),
        downloads,
        desk,
    };
    Ok((page, files))
}

/// The page of every county, town and village, and of every grid on the
/// internal dashboard.
pub(crate) fn pages(site: &Site<'_>) -> Result<Vec<OutputFile>> {
    let levels: &[Level] = if site.is_public() {
        &[Level::County, Level::Town, Level::Village]
    } else {
        &[Level::County, Level::Town, Level::Village, Level::Grid]
    };
    let areas: Vec<&Area> = levels.iter().flat_map(|&l| site.rollups.level(l)).collect();
    let below = Below::of(site.rollups);
    // Chart texts are evaluated once per thread: evaluating them for each
    // page would take a tenth of the page's time.
    let pages = parallel_map_with(
        &areas,
        || site.chart_texts(),
        |texts, a| {
            let (page, mut files) = model(site, texts, &below, a)?;
            files.push(site.render("area.html", &area_path(a), &page)?);
            Ok(files)
        },
    )?;
    Ok(pages.into_iter().flatten().collect())
}

/// Links to the areas above `area`, below the city, from the top.
fn ancestors(site: &Site<'_>, area: &Area, root: &str) -> Vec<Link> {
    let mut chain = Vec::new();
    let mut parent = area.parent.clone();
    let mut level = area.level;
    while let Some(code) = parent {
        level = level.parent().unwrap_or(level);
        let Some(p) = site.rollups.areas.get(&(level, code)) else {
            break;
        };
        if p.level != Level::City {
            chain.push(Link {
                text: p.name.clone(),
                href: format!("{root}{}", area_path(p)),
            });
        }
        parent = p.parent.clone();
    }
    chain.reverse();
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::common::FigureState;
    use crate::pages::fixture::with_site;
    use crate::site::Audience;

    fn area<'a>(site: &Site<'a>, level: Level, code: &str) -> &'a Area {
        &site.rollups.areas[&(level, code.to_string())]
    }

    fn page_of(site: &Site<'_>, area: &Area) -> Result<AreaPage> {
        let below = Below::of(site.rollups);
        Ok(model(site, &mut site.chart_texts()?, &below, area)?.0)
    }

    #[test]
    fn a_county_page_tables_its_towns_as_published() {
        with_site(Audience::Public, |site| {
            let page = page_of(site, area(site, Level::County, "440703")).unwrap();
            assert_eq!((page.name.as_str(), page.level), ("蓬江区", "县(市、区)"));
            assert_eq!(page.registered, "3,000");
            assert!(
                page.ancestors.is_empty(),
                "the home page stands for the city"
            );
            let children = page.children.expect("towns");
            assert_eq!(
                (children.parent.as_str(), children.level),
                ("蓬江区", "镇(街道)")
            );
            let rows: Vec<(&str, &str, &str)> = children
                .table
                .rows
                .iter()
                .map(|r| {
                    (
                        r[0].text.as_str(),
                        r[0].href.as_deref().unwrap(),
                        r[1].text.as_str(),
                    )
                })
                .collect();
            assert_eq!(
                rows,
                [
                    ("白沙街道", "../../town/440703001/index.html", "300"),
                    ("环市街道", "../../town/440703002/index.html", "<5"),
                    ("荷塘镇", "../../town/440703003/index.html", "×"),
                ]
            );
            assert_eq!(children.table.columns[1], Metric::Coverage.label());
            let downloads = page.downloads.expect("public downloads");
            assert_eq!(downloads.csv, "../../data/county-440703.csv");
        });
    }

    #[test]
    fn a_public_town_page_has_crumbs_withheld_cards_and_its_villages() {
        with_site(Audience::Public, |site| {
            let page = page_of(site, area(site, Level::Town, "440703003")).unwrap();
            assert_eq!(
                page.ancestors,
                [Link {
                    text: "蓬江区".into(),
                    href: "../../county/440703/index.html".into()
                }]
            );
            let villages = page.children.expect("villages");
            assert_eq!(villages.level, Level::Village.label());
            assert_eq!(villages.table.rows[0][0].text, "荷塘镇第一社区");
            assert_eq!(
                villages.table.rows[0][0].href.as_deref(),
                Some("../../village/440703003001/index.html")
            );
            let village = page_of(site, area(site, Level::Village, "440703003001")).unwrap();
            assert!(village.children.is_none(), "no public grid pages");
            let visited = page
                .cards
                .iter()
                .find(|c| c.label == Metric::HouseholdsVisited.label())
                .unwrap();
            assert_eq!(
                (visited.value.as_str(), visited.state),
                ("×", FigureState::Withheld)
            );
            assert_eq!(page.charts.len(), 3);
            assert_eq!(page.charts[0].title, "荷塘镇住户走访覆盖率(累计)");
        });
    }

    #[test]
    fn internal_pages_reach_down_to_grids() {
        with_site(Audience::Internal, |site| {
            let village = page_of(site, area(site, Level::Village, "440703002001")).unwrap();
            let grids = village.children.expect("grids");
            assert_eq!(grids.table.rows[0][0].text, "环市街道1号网格");
            assert_eq!(grids.table.rows[0][1].text, "3", "nothing withheld");
            // Every figure of the catalogue, beside the dashboard's page.
            assert_eq!(
                village.downloads.expect("internal files").csv,
                "../../data/village-440703002001.csv"
            );
            let grid = page_of(site, area(site, Level::Grid, "440703002-G1")).unwrap();
            let crumbs: Vec<&str> = grid.ancestors.iter().map(|l| l.href.as_str()).collect();
            assert_eq!(
                crumbs,
                [
                    "../../county/440703/index.html",
                    "../../town/440703002/index.html",
                    "../../village/440703002001/index.html"
                ]
            );
            assert!(grid.children.is_none());
        });
    }

    #[test]
    fn each_audience_gets_its_levels_of_pages() {
        let paths = |audience| {
            with_site(audience, |site| {
                pages(site)
                    .unwrap()
                    .into_iter()
                    .map(|f| f.path)
                    .filter(|p| p.ends_with("index.html"))
                    .collect::<Vec<_>>()
            })
        };
        let public = paths(Audience::Public);
        assert_eq!(public.len(), 2 + 5 + 5);
        assert!(public.iter().all(|p| !p.starts_with("grid/")));
        assert_eq!(paths(Audience::Internal).len(), 2 + 5 + 5 + 5);
    }
}
