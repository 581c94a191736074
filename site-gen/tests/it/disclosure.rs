//! Disclosure control on the public site: no grid, no case, nothing a
//! person could be found by; small counts withheld as `<5`, and the
//! figures that would reveal them as `×`.

use std::collections::BTreeMap;

use gridstat_site_gen::model::Level;
use gridstat_site_gen::{testing, Audience};

use crate::{site, text};

/// What the public site must never show and the internal one does: the
/// grids' codes and names, and the open cases' ids and grids.
fn internal_only() -> Vec<String> {
    let rollups = testing::rollups();
    let mut out: Vec<String> = rollups
        .areas
        .values()
        .filter(|a| a.level == Level::Grid)
        .flat_map(|a| [a.code.clone(), a.name.clone()])
        .collect();
    for case in &rollups.open_cases {
        out.push(case.case_id.clone());
        out.push(case.grid_id.clone());
    }
    out
}

/// Whether `text` shows `secret`: an id as a whole token (ids are short
/// and could be part of a longer word), a name anywhere.
fn shows(text: &str, secret: &str) -> bool {
    if secret.is_ascii() {
        let token = |c: char| !(c.is_ascii_alphanumeric() || c == '-');
        text.split(token).any(|t| t == secret)
    } else {
        text.contains(secret)
    }
}

#[test]
fn no_public_file_names_a_grid_or_a_case() {
    let secrets = internal_only();
    assert!(secrets.len() >= 10, "{secrets:?}");
    for file in site(Audience::Public) {
        let text = String::from_utf8_lossy(&file.bytes);
        for secret in &secrets {
            assert!(!shows(&text, secret), "{} shows {secret}", file.path);
        }
        assert!(!text.contains("grid/"), "{} links a grid page", file.path);
    }
    // The dashboard shows the grids and the overdue cases: the check
    // above is not vacuous.
    let internal: String = site(Audience::Internal)
        .iter()
        .map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
        .collect();
    let opts = gridstat_site_gen::SiteOptions::default();
    let not_overdue: Vec<String> = testing::rollups()
        .open_cases
        .iter()
        .filter(|c| c.hours_open <= f64::from(opts.overdue_limit(c.urgency.as_deref())))
        .flat_map(|c| [c.case_id.clone(), c.grid_id.clone()])
        .collect();
    for secret in secrets.iter().filter(|s| !not_overdue.contains(s)) {
        assert!(shows(&internal, secret), "the dashboard lacks {secret}");
    }
}

/// The published cells of the downloads: (level, area, date) → figure → text.
fn published() -> BTreeMap<(String, String, String), BTreeMap<String, String>> {
    let site = site(Audience::Public);
    let rows: Vec<BTreeMap<String, String>> =
        serde_json::from_str(text(&site, "data/all.json")).unwrap();
    rows.into_iter()
        .map(|r| {
            let key = (
                r["level"].clone(),
                r["area_code"].clone(),
                r["date"].clone(),
            );
            (key, r)
        })
        .collect()
}

#[test]
fn small_counts_show_as_below_five_and_what_reveals_them_as_withheld() {
    let cells = published();
    let visited = |code: &str, date: &str| {
        let row = &cells[&("town".into(), code.into(), date.into())];
        row["households_visited"].clone()
    };
    // 环市街道 visited 2, 3, 3 households: below the threshold.
    for date in ["2022-11-25", "2022-11-26", "2022-11-27"] {
        assert_eq!(visited("440703002", date), "<5", "{date}");
    }
    // 荷塘镇 is withheld with it: its county minus 白沙 would give 环市.
    assert_eq!(visited("440703003", "2022-11-27"), "×");
    assert_eq!(visited("440703001", "2022-11-27"), "300");
    // The county page shows the same cells.
    let site = site(Audience::Public);
    let county = text(&site, "county/440703/index.html");
    assert!(county.contains("&lt;5"), "{county}");
    assert!(county.contains('×'), "{county}");
}
