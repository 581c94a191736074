//! Every page kind of each audience is built and renders.

use gridstat_site_gen::model::Rollups;
use gridstat_site_gen::{build, testing, Audience, Error, SiteOptions};

use crate::{site, text};

fn paths(audience: Audience) -> Vec<String> {
    site(audience).into_iter().map(|f| f.path).collect()
}

#[test]
fn each_audience_gets_its_page_kinds_sorted_by_path() {
    let public = paths(Audience::Public);
    for path in [
        "index.html",
        "county/440703/index.html",
        "bulletins/2022-11-27/index.html",
        "bulletins/index.html",
        "feed.xml",
        "methodology/index.html",
        "data/index.html",
        "data/all.json",
        "sitemap.xml",
        "style.css",
    ] {
        assert!(public.contains(&path.to_string()), "public {path}");
    }
    assert!(public.windows(2).all(|w| w[0] < w[1]));
    assert!(!public
        .iter()
        .any(|p| p.starts_with("grid/") || p.starts_with("quality/")));
    let internal = paths(Audience::Internal);
    assert!(internal.contains(&"quality/index.html".to_string()));
    assert!(internal.contains(&"grid/440703001-G1/index.html".to_string()));
    assert!(internal.contains(&"data/desk/county-440703-overdue.csv".to_string()));
    assert!(internal.contains(&"data/grid-440703001-G1.csv".to_string()));
    // No bulletins, no public downloads page.
    assert!(!internal.iter().any(|p| p.starts_with("bulletins/")
        || p == "data/index.html"
        || p.starts_with("data/all.")));
}

#[test]
fn rollups_without_days_build_nothing() {
    let rollups = Rollups {
        days: Vec::new(),
        ..testing::rollups()
    };
    let err = build(&rollups, &SiteOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NoRollups), "{err}");
}

/// Every page of both audiences renders whole: a document with its
/// main part, linking the style sheet, with no template left unfilled.
#[test]
fn every_page_of_both_audiences_renders() {
    for audience in [Audience::Public, Audience::Internal] {
        let site = site(audience);
        let pages: Vec<&str> = site
            .iter()
            .filter(|f| f.path.ends_with(".html"))
            .map(|f| f.path.as_str())
            .collect();
        // Home, 2 counties, 5 towns at least; bulletins or grid pages.
        assert!(pages.len() >= 10, "{audience:?}: {pages:?}");
        for path in pages {
            let html = text(&site, path);
            assert!(html.starts_with("<!DOCTYPE html>"), "{path}");
            assert!(
                html.contains("<main>") && html.trim_end().ends_with("</html>"),
                "{audience:?} {path}"
            );
            assert!(html.contains("style.css"), "{audience:?} {path}");
            assert!(
                !html.contains("{{") && !html.contains("{%"),
                "{audience:?} {path}: a template left unfilled"
            );
        }
        assert!(!text(&site, "style.css").is_empty());
    }
}
