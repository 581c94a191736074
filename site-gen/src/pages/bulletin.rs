//! Daily bulletins (public site): a page per day, the archive of all of
//! them, and their Atom feed. The bulletin's sentences are in
//! `bulletin_text.html`; here are only its figures.

use gridstat_schemas::metrics::Metric;
use serde::Serialize;

use super::common::{bulletin_path, depth_root, Day, DayLink, Figures, NamedFigures, Table};
use super::Site;
use crate::error::Result;
use crate::model::{Area, Level};
use crate::site::OutputFile;

/// The time of day bulletins are dated (local time, in the feed).
const PUBLISHED_AT: &str = "T21:00:00+08:00";

/// How many towns of lowest coverage a bulletin names.
const LAGGING_TOWNS: usize = 3;

/// The figures of one day's bulletin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Bulletin {
    /// The day.
    pub(crate) day: Day,
    /// The city's cumulative figures.
    pub(crate) city: Figures,
    /// What the day added to the city's cumulative counts.
    pub(crate) new: Figures,
    /// Each county's cumulative figures.
    pub(crate) counties: Vec<NamedFigures>,
    /// The towns of lowest published coverage, lowest first; empty when
    /// fewer than [`LAGGING_TOWNS`] have one.
    pub(crate) lagging_towns: Vec<NamedFigures>,
}

/// A bulletin's page: the bulletin, a table of the city and its counties,
/// and links to the days before and after.
#[derive(Debug, Serialize)]
pub(crate) struct BulletinPage {
    /// The bulletin.
    pub(crate) bulletin: Bulletin,
    /// The city and each county on the day.
    pub(crate) table: Table,
    /// The day before's bulletin.
    pub(crate) prev: Option<DayLink>,
    /// The day after's bulletin.
    pub(crate) next: Option<DayLink>,
}

/// The archive: every bulletin, newest first.
#[derive(Debug, Serialize)]
pub(crate) struct Archive {
    /// Links to the bulletins.
    pub(crate) bulletins: Vec<DayLink>,
}

/// The Atom feed of bulletins, newest first.
#[derive(Debug, Serialize)]
pub(crate) struct Feed {
    /// When the newest was published.
    pub(crate) updated: String,
    /// The bulletins.
    pub(crate) entries: Vec<FeedEntry>,
}

/// One bulletin in the feed.
#[derive(Debug, Serialize)]
pub(crate) struct FeedEntry {
    /// Its page's directory, from the site's root.
    pub(crate) path: String,
    /// When it was published.
    pub(crate) updated: String,
    /// The bulletin (the feed summarises it).
    pub(crate) bulletin: Bulletin,
}

/// The figures the tables of bulletins show.
const TABLE_FIGURES: [Metric; 6] = [
    Metric::HouseholdsVisited,
    Metric::Coverage,
    Metric::HazardsFound,
    Metric::HazardsFixed,
    Metric::HardshipsRaised,
    Metric::HardshipsResolved,
];

/// The bulletin of day index `day`.
pub(crate) fn bulletin(site: &Site<'_>, day: usize) -> Bulletin {
    let city = site.city();
    let named = |a: &Area| NamedFigures {
        name: a.name.clone(),
        figures: site.figures(a, day),
    };
    Bulletin {
        day: Day(site.days()[day]),
        city: site.figures(city, day),
        new: site.increments(city, day),
        counties: site.rollups.children(city).map(named).collect(),
        lagging_towns: lagging_towns(site, day).into_iter().map(named).collect(),
    }
}

/// The page of day index `day`'s bulletin.
pub(crate) fn page(site: &Site<'_>, day: usize) -> BulletinPage {
    let days = site.days();
    let city = site.city();
    let root = depth_root(&bulletin_path(days[day]));
    let areas = std::iter::once(city).chain(site.rollups.children(city));
    let link = |d: usize| DayLink {
        day: Day(days[d]),
        href: format!("../{}/index.html", days[d]),
    };
    BulletinPage {
        bulletin: bulletin(site, day),
        table: Table::of_areas(site, areas, &TABLE_FIGURES, day, &root),
        prev: (day > 0).then(|| link(day - 1)),
        next: (day < site.last()).then(|| link(day + 1)),
    }
}

/// The archive's model.
pub(crate) fn archive(site: &Site<'_>) -> Archive {
    let bulletins = site
        .days()
        .iter()
        .rev()
        .map(|&day| DayLink {
            day: Day(day),
            href: format!("{day}/index.html"),
        })
        .collect();
    Archive { bulletins }
}

/// The feed's model.
pub(crate) fn feed(site: &Site<'_>) -> Feed {
    let days = site.days();
    let entries = (0..days.len())
        .rev()
        .map(|d| FeedEntry {
            path: format!("bulletins/{}/", days[d]),
            updated: format!("{}{PUBLISHED_AT}", days[d]),
            bulletin: bulletin(site, d),
        })
        .collect();
    Feed {
        updated: format!("{}{PUBLISHED_AT}", days[site.last()]),
        entries,
    }
}

/// Every bulletin's page, the archive and the feed.
pub(crate) fn pages(site: &Site<'_>) -> Result<Vec<OutputFile>> {
    let mut out = Vec::new();
    for (d, &day) in site.days().iter().enumerate() {
        out.push(site.render("bulletin.html", &bulletin_path(day), &page(site, d))?);
    }
    out.push(site.render("archive.html", "bulletins/index.html", &archive(site))?);
    out.push(site.render("feed.xml", "feed.xml", &feed(site))?);
    Ok(out)
}

/// The towns of lowest published coverage on day index `day`, if at least
/// [`LAGGING_TOWNS`] have one.
fn lagging_towns<'a>(site: &Site<'a>, day: usize) -> Vec<&'a Area> {
    let mut towns: Vec<(&Area, f64)> = site
        .rollups
        .level(Level::Town)
        .filter_map(|t| {
            let coverage = site.published.get(t, Metric::Coverage, day)?;
            Some((t, coverage))
        })
        .collect();
    if towns.len() < LAGGING_TOWNS {
        return Vec::new();
    }
    towns.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.code.cmp(&b.0.code)));
    towns.truncate(LAGGING_TOWNS);
    towns.into_iter().map(|(t, _)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::common::FigureState;
    use crate::pages::fixture::{self, with_site};
    use crate::site::{build, Audience};

    #[test]
    fn a_bulletin_states_the_city_its_counties_and_the_towns_that_lag() {
        with_site(Audience::Public, |site| {
            let b = bulletin(site, 2);
            assert_eq!(b.day.0.to_string(), "2022-11-27");
            // The grids visited (one per town), not the registry's count.
            assert_eq!(b.city[&Metric::GridsReached].value, "5");
            let visited = &b.city[&Metric::HouseholdsVisited];
            assert_eq!((visited.value.as_str(), visited.unit), ("873", "户"));
            let coverage = &b.city[&Metric::Coverage];
            assert_eq!((coverage.value.as_str(), coverage.unit), ("17.5%", ""));
            assert_eq!(b.new[&Metric::HouseholdsVisited].value, "300");
            let counties: Vec<(&str, &str)> = b
                .counties
                .iter()
                .map(|c| {
                    let visited = &c.figures[&Metric::HouseholdsVisited];
                    (c.name.as_str(), visited.value.as_str())
                })
                .collect();
            assert_eq!(counties, [("蓬江区", "453"), ("台山市", "420")]);
            // 环市 is below the threshold and 荷塘 withheld with it: the
            // three towns with a published coverage, lowest first.
            let lagging: Vec<(&str, &str)> = b
                .lagging_towns
                .iter()
                .map(|t| (t.name.as_str(), t.figures[&Metric::Coverage].value.as_str()))
                .collect();
            assert_eq!(
                lagging,
                [
                    ("四九镇", "18.0%"),
                    ("台城街道", "24.0%"),
                    ("白沙街道", "30.0%")
                ]
            );
        });
    }

    #[test]
    fn small_and_withheld_figures_stay_withheld_in_the_bulletin() {
        with_site(Audience::Public, |site| {
            // Venues visited in the city: 1, 4, 7.
            let first = bulletin(site, 0);
            let venues = &first.city[&Metric::VenuesVisited];
            assert_eq!(
                (venues.value.as_str(), venues.state),
                ("<5", FigureState::Small)
            );
            let last = bulletin(site, 2);
            assert_eq!(last.city[&Metric::VenuesVisited].value, "7");
            let added = &last.new[&Metric::VenuesVisited];
            assert_eq!(
                (added.value.as_str(), added.state),
                ("×", FigureState::Withheld),
                "the day before is not published"
            );
            assert!(
                !last.new.contains_key(&Metric::HazardsOpen),
                "no increments of states"
            );
        });
    }

    #[test]
    fn a_bulletin_page_tables_the_city_and_counties_and_links_its_neighbours() {
        with_site(Audience::Public, |site| {
            let first = page(site, 0);
            assert!(first.prev.is_none());
            let next = first.next.expect("a next day");
            assert_eq!(next.href, "../2022-11-26/index.html");
            let heads: Vec<(&str, Option<&str>)> = first
                .table
                .rows
                .iter()
                .map(|r| (r[0].text.as_str(), r[0].href.as_deref()))
                .collect();
            assert_eq!(
                heads,
                [
                    ("江门市", Some("../../index.html")),
                    ("蓬江区", Some("../../county/440703/index.html")),
                    ("台山市", Some("../../county/440781/index.html")),
                ]
            );
            assert_eq!(first.table.columns[0], Metric::HouseholdsVisited.label());
            assert!(page(site, 2).next.is_none());
        });
    }

    #[test]
    fn the_archive_and_the_feed_list_the_newest_first() {
        with_site(Audience::Public, |site| {
            let archive = archive(site);
            assert_eq!(archive.bulletins[0].href, "2022-11-27/index.html");
            let feed = feed(site);
            assert_eq!(feed.updated, "2022-11-27T21:00:00+08:00");
            assert_eq!(feed.entries[0].path, "bulletins/2022-11-27/");
            assert_eq!(feed.entries.len(), 3);
        });
    }

    #[test]
    fn an_overriding_template_changes_the_bulletin_everywhere() {
        let rollups = fixture::rollups();
        let mut opts = fixture::options(Audience::Public);
        let words = include_str!("../../templates/bulletin_text.html")
            .replace("开展“三询问一完善”活动", "深入开展入户走访");
        opts.template_overrides
            .insert("bulletin_text.html".into(), words);
        let files = build(&rollups, &opts).unwrap();
        let text = |path: &str| {
            let file = files.iter().find(|f| f.path == path).expect(path);
            String::from_utf8(file.bytes.clone()).unwrap()
        };
        for path in ["bulletins/2022-11-27/index.html", "index.html", "feed.xml"] {
            let text = text(path);
            assert!(
                text.contains("下沉5个网格,深入开展入户走访,累计走访住户873户"),
                "{path}: {text}"
            );
            assert!(!text.contains("开展“三询问一完善”活动"), "{path}");
        }
    }
}
