//! The templates: every word of the site. Page models carry figures,
//! names, dates and links; the templates compose the sentences, headings,
//! captions and chart texts around them. `--templates DIR` replaces any of
//! them by a file of the same name (see [`crate::read_template_overrides`]).
//!
//! Every page template gets its page model's fields and these:
//! `root` (the way back to the site's root, `../` per level), `audience`
//! (`public` or `internal`), `threshold`, `as_of` (the last day: `iso`,
//! `year`, `month`, `day`) and `base_url`.
//!
//! Figures come formatted for reading (counts grouped by three: 1,234,567).
//! The filter `wan` writes a count of a hundred thousand or more in 万 or
//! 亿, as press releases do (`{{ f.value|wan }}`: 1,234,567 → 123.46万);
//! anything else (a share, "<5", "×") passes through unchanged; it needs
//! a string, so an override naming a figure that does not exist fails the
//! build instead of printing nothing. The filter `grouped` groups a plain
//! number of a model (a list's length, a quality count) the same way:
//! `{{ n|grouped }}`.

use std::collections::BTreeMap;

use minijinja::value::{merge_maps, Serde};
use minijinja::{Environment, Value};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::site::OutputFile;

/// The embedded templates, by name: the layout (`base.html`), the pieces
/// pages share and the site's name (`macros.html`), a template per page
/// kind, the bulletin's words (`bulletin_text.html`, used by the bulletin
/// pages, the home page and the feed) and the charts' words (`charts.txt`).
pub const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("macros.html", include_str!("../templates/macros.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("area.html", include_str!("../templates/area.html")),
    ("bulletin.html", include_str!("../templates/bulletin.html")),
    (
        "bulletin_text.html",
        include_str!("../templates/bulletin_text.html"),
    ),
    ("archive.html", include_str!("../templates/archive.html")),
    ("feed.xml", include_str!("../templates/feed.xml")),
    (
        "methodology.html",
        include_str!("../templates/methodology.html"),
    ),
    (
        "downloads.html",
        include_str!("../templates/downloads.html"),
    ),
    ("quality.html", include_str!("../templates/quality.html")),
    ("sitemap.xml", include_str!("../templates/sitemap.xml")),
    (CHART_TEXTS, include_str!("../templates/charts.txt")),
];

/// The embedded stylesheet.
pub const STYLE_CSS: &str = include_str!("../templates/style.css");

/// The template of the charts' titles and descriptions: plain text (a
/// `.txt` name turns off HTML escaping), since the SVG escapes it itself.
const CHART_TEXTS: &str = "charts.txt";

/// The template environment of one site build: the embedded templates with
/// the overrides in place.
#[derive(Debug)]
pub(crate) struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The embedded templates, each replaced by its override if there is one.
    pub(crate) fn new(overrides: &BTreeMap<String, String>) -> Result<Self> {
        let mut env = Environment::new();
        env.add_filter("wan", wan);
        env.add_filter("grouped", |n: i64| {
            crate::pages::common::grouped_count(n as f64)
        });
        for (name, body) in TEMPLATES {
            let body = overrides
                .get(*name)
                .cloned()
                .unwrap_or_else(|| (*body).to_string());
            env.add_template_owned(name.to_string(), body)
                .map_err(template_error(name))?;
        }
        Ok(Self { env })
    }

    /// Render the page template `name` with `model` and the context every
    /// page gets, as the file `path`.
    pub(crate) fn render(
        &self,
        name: &str,
        path: &str,
        common: &impl Serialize,
        model: &impl Serialize,
    ) -> Result<OutputFile> {
        let context = merge_maps([Value::from(Serde(model)), Value::from(Serde(common))]);
        let text = self
            .env
            .get_template(name)
            .and_then(|t| t.render(context))
            .map_err(template_error(name))?;
        Ok(OutputFile {
            path: path.into(),
            bytes: text.into_bytes(),
        })
    }

    /// The chart texts, ready to be asked for several texts.
    pub(crate) fn chart_texts(&self) -> Result<ChartTexts<'_>> {
        let captured = self
            .env
            .get_template(CHART_TEXTS)
            .and_then(|t| t.render_captured(()))
            .map_err(template_error(CHART_TEXTS))?;
        Ok(ChartTexts { captured })
    }
}

/// The evaluated chart-texts template.
#[derive(Debug)]
pub(crate) struct ChartTexts<'a> {
    captured: minijinja::Captured<'a>,
}

impl ChartTexts<'_> {
    /// The title and description of chart `chart` (macros `<chart>_title`
    /// and `<chart>_desc`) for the chart's facts.
    pub(crate) fn title_and_desc(
        &mut self,
        chart: &str,
        facts: &impl Serialize,
    ) -> Result<(String, String)> {
        let facts = [Value::from(Serde(facts))];
        self.captured
            .with_state_mut(|state| {
                let title = state.call_macro(&format!("{chart}_title"), &facts)?;
                let desc = state.call_macro(&format!("{chart}_desc"), &facts)?;
                Ok((title, desc))
            })
            .map_err(template_error(CHART_TEXTS))
    }
}

/// A count of 100,000 or more in 万 (or 亿 from what rounds to 10000万)
/// with at most two decimals, rounded half up; any other text unchanged.
pub(crate) fn wan(text: &str) -> String {
    let digits: String = text.chars().filter(|&c| c != ',').collect();
    let Ok(n) = digits.parse::<u64>() else {
        return text.to_string();
    };
    if n < 100_000 {
        return text.to_string();
    }
    // Hundredths of 万, rounded half up (四舍五入) in integers; from
    // 10000万 on, hundredths of 亿.
    let (hundredths, unit) = match n.saturating_add(50) / 100 {
        h if h < 1_000_000 => (h, "万"),
        _ => (n.saturating_add(500_000) / 1_000_000, "亿"),
    };
    let (whole, fraction) = (hundredths / 100, hundredths % 100);
    match fraction {
        0 => format!("{whole}{unit}"),
        f if f % 10 == 0 => format!("{whole}.{}{unit}", f / 10),
        f => format!("{whole}.{f:02}{unit}"),
    }
}

fn template_error(name: &str) -> impl FnOnce(minijinja::Error) -> Error + '_ {
    move |source| Error::Template {
        name: name.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_counts_read_in_wan_and_yi() {
        assert_eq!(wan("99,999"), "99,999");
        assert_eq!(wan("100,000"), "10万");
        assert_eq!(wan("1,234,567"), "123.46万");
        assert_eq!(wan("4,800,000"), "480万");
        assert_eq!(wan("123,456,789"), "1.23亿");
        assert_eq!(wan("1,234,550"), "123.46万", "half up");
        assert_eq!(wan("12,345,650"), "1234.57万");
        assert_eq!(wan("1,234,549"), "123.45万");
        assert_eq!(wan("1,200,000"), "120万");
        assert_eq!(wan("1,230,000"), "123万");
        assert_eq!(wan("1,234,000"), "123.4万");
        assert_eq!(wan("99,999,949"), "9999.99万");
        assert_eq!(wan("99,999,950"), "1亿");
        assert_eq!(wan("100,000,000"), "1亿");
        assert_eq!(wan("1,234,567,890,123"), "12345.68亿");
        assert_eq!(wan("12,300,000,000"), "123亿");
        assert!(
            wan("18,446,744,073,709,551,615").ends_with('亿'),
            "no overflow"
        );
        for unchanged in ["45.6%", "<5", "×", "待核实", ""] {
            assert_eq!(wan(unchanged), unchanged);
        }
    }

    #[test]
    fn a_broken_override_names_its_template() {
        let overrides = BTreeMap::from([("area.html".to_string(), "{% if %}".to_string())]);
        let err = Templates::new(&overrides).unwrap_err();
        assert!(
            matches!(&err, Error::Template { name, .. } if name == "area.html"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_chart_text_is_an_error_of_its_template() {
        let overrides = BTreeMap::from([(CHART_TEXTS.to_string(), String::new())]);
        let templates = Templates::new(&overrides).unwrap();
        let err = templates
            .chart_texts()
            .unwrap()
            .title_and_desc("coverage", &())
            .unwrap_err();
        assert!(
            matches!(&err, Error::Template { name, .. } if name == CHART_TEXTS),
            "{err}"
        );
    }
}
