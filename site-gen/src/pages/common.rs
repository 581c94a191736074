//! Pieces of page models that several page kinds share: days, links,
//! tables, figures, and the site's paths.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use gridstat_schemas::metrics::{Kind, Metric};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use super::Site;
use crate::model::{level_dir, Area, Level};
use crate::suppress::Cell;

/// A day, as templates see it: `iso` (2022-11-28) and the `year`, `month`
/// and `day` numbers to write it out in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Day(pub(crate) NaiveDate);

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut day = s.serialize_struct("Day", 4)?;
        day.serialize_field("iso", &self.0.to_string())?;
        day.serialize_field("year", &self.0.year())?;
        day.serialize_field("month", &self.0.month())?;
        day.serialize_field("day", &self.0.day())?;
        day.end()
    }
}

/// A link whose text is data (an area's name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Link {
    /// The text.
    pub(crate) text: String,
    /// Where it points, relative to the page.
    pub(crate) href: String,
}

/// A link to a day's page; the template writes the day out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct DayLink {
    /// The day.
    pub(crate) day: Day,
    /// Where it points, relative to the page.
    pub(crate) href: String,
}

/// One cell of a table: text, and a link if it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct TableCell {
    /// The text (a figure, a name, a date), as a reader sees it.
    pub(crate) text: String,
    /// Where it links to, relative to the page.
    pub(crate) href: Option<String>,
    /// The text in a CSV file where it differs from `text`: a count's
    /// plain digits rather than the grouped ones of the page.
    #[serde(skip)]
    pub(crate) plain: Option<String>,
}

impl TableCell {
    /// A cell of text.
    pub(crate) fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            href: None,
            plain: None,
        }
    }

    /// A linked cell.
    pub(crate) fn link(text: impl Into<String>, href: String) -> Self {
        Self {
            text: text.into(),
            href: Some(href),
            plain: None,
        }
    }

    /// A count: grouped digits on the page, plain ones in CSV files.
    pub(crate) fn count(v: f64) -> Self {
        Self {
            text: grouped_count(v),
            href: None,
            plain: Some(plain_count(v)),
        }
    }

    /// A published figure, as the page and as the files show it.
    pub(crate) fn figure(f: Figure) -> Self {
        Self {
            plain: (f.plain != f.value).then_some(f.plain),
            text: f.value,
            href: None,
        }
    }

    /// The cell's text in a CSV file.
    pub(crate) fn csv_text(&self) -> &str {
        self.plain.as_deref().unwrap_or(&self.text)
    }
}

/// A count as the data files write it: plain digits (1234567).
pub(crate) fn plain_count(v: f64) -> String {
    // Counts are whole numbers; integer formatting is several times faster
    // than rounding a float, and there are millions of them in a site.
    if v.fract() == 0.0 && v.abs() < 1e15 && !(v == 0.0 && v.is_sign_negative()) {
        (v as i64).to_string()
    } else {
        format!("{v:.0}")
    }
}

/// A count as a reader of a zh-CN page reads it: digits grouped by three
/// with commas (1,234,567), as zh-CN number formatting writes them.
pub(crate) fn grouped_count(v: f64) -> String {
    group_digits(&plain_count(v))
}

/// `digits` (an optional sign, then digits) grouped by three from the right.
fn group_digits(digits: &str) -> String {
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", digits),
    };
    if digits.len() <= 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return format!("{sign}{digits}");
    }
    let mut out = String::with_capacity(sign.len() + digits.len() + digits.len() / 3);
    out.push_str(sign);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A table's data. The template gives it a caption and headings; `columns`
/// are the headings of the data columns that have names in the data (metric
/// labels from the catalogue, area names), after the first column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Table {
    /// Headings of the data columns, after the row heading.
    pub(crate) columns: Vec<String>,
    /// Rows; the first cell of each heads the row.
    pub(crate) rows: Vec<Vec<TableCell>>,
}

impl Table {
    /// One row per area, headed by a link to its page, with its figures
    /// `metrics` on day index `day`; `columns` are the metrics' labels.
    pub(crate) fn of_areas<'a>(
        site: &Site<'_>,
        areas: impl Iterator<Item = &'a Area>,
        metrics: &[Metric],
        day: usize,
        root: &str,
    ) -> Self {
        let rows = areas
            .map(|a| {
                let mut row = vec![TableCell::link(
                    a.name.clone(),
                    format!("{root}{}", area_path(a)),
                )];
                row.extend(
                    metrics
                        .iter()
                        .map(|&m| TableCell::figure(site.figure(a, m, day))),
                );
                row
            })
            .collect();
        Self {
            columns: labels(metrics),
            rows,
        }
    }
}

/// The catalogue's labels of `metrics`.
pub(crate) fn labels(metrics: &[Metric]) -> Vec<String> {
    metrics.iter().map(|m| m.label().to_string()).collect()
}

/// How a figure is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FigureState {
    /// The value is shown.
    Shown,
    /// Below the threshold: shown as "<threshold".
    Small,
    /// Withheld to protect another cell: shown as "×".
    Withheld,
    /// A share of the registry above 100 %: shown as "待核实".
    Unverified,
}

/// One published figure, formatted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Figure {
    /// The catalogue's label.
    pub(crate) label: &'static str,
    /// As a reader sees it: a count (1,234), a share (45.6%), "<5", "×"
    /// or "待核实".
    pub(crate) value: String,
    /// As the data files write it: a count's plain digits (1234), else
    /// the same as `value`.
    #[serde(skip)]
    pub(crate) plain: String,
    /// The catalogue's unit, to write after the value; empty for shares,
    /// whose value ends in %.
    pub(crate) unit: &'static str,
    /// Whether the value is shown or withheld, and why.
    pub(crate) state: FigureState,
}

/// Figures by metric; templates see them by metric name.
pub(crate) type Figures = BTreeMap<Metric, Figure>;

impl Figure {
    /// The figure of `metric` in a published `cell`.
    pub(crate) fn new(metric: Metric, cell: Cell, threshold: u32) -> Self {
        let share = matches!(metric.kind(), Kind::Ratio { .. });
        let (plain, state) = match cell {
            Cell::Shown(v) if share => (format!("{:.1}%", v * 100.0), FigureState::Shown),
            Cell::Shown(v) => (plain_count(v), FigureState::Shown),
            Cell::Small => (format!("<{threshold}"), FigureState::Small),
            Cell::Withheld => ("×".into(), FigureState::Withheld),
            Cell::Unverified => ("待核实".into(), FigureState::Unverified),
        };
        let value = match cell {
            Cell::Shown(_) if !share => group_digits(&plain),
            _ => plain.clone(),
        };
        Self {
            label: metric.label(),
            value,
            plain,
            unit: if share { "" } else { metric.spec().unit },
            state,
        }
    }
}

/// An area's name with figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct NamedFigures {
    /// The area's name.
    pub(crate) name: String,
    /// Its figures.
    pub(crate) figures: Figures,
}

/// An area's children with their figures on the last day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Children {
    /// The parent's name.
    pub(crate) parent: String,
    /// The children's level label.
    pub(crate) level: &'static str,
    /// One row per child.
    pub(crate) table: Table,
}

/// The figures of the children tables.
const CHILDREN_FIGURES: [Metric; 7] = [
    Metric::HouseholdsVisited,
    Metric::Coverage,
    Metric::HazardsFound,
    Metric::HazardsFixed,
    Metric::HardshipsRaised,
    Metric::HardshipsResolved,
    Metric::HardshipsOpen,
];

impl Children {
    /// The children of `area` the audience has pages for, on the page at `path`.
    pub(crate) fn of(site: &Site<'_>, area: &Area, path: &str) -> Self {
        let children = site
            .rollups
            .children(area)
            .filter(|c| !site.is_public() || c.level != Level::Grid);
        let level = area.level.child().unwrap_or(area.level);
        Self {
            parent: area.name.clone(),
            level: level.label(),
            table: Table::of_areas(
                site,
                children,
                &CHILDREN_FIGURES,
                site.last(),
                &depth_root(path),
            ),
        }
    }
}

/// One CSV cell: quoted where it holds a separator, and a cell that a
/// spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`,
/// a tab or a carriage return — an area name from a hostile registry)
/// prefixed with `'`, so it is shown as text.
pub(crate) fn csv_cell(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    push_csv_cell(&mut out, value);
    out
}

/// [`csv_cell`], appended to `out`.
pub(crate) fn push_csv_cell(out: &mut String, value: &str) {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = value.contains([',', '"', '\n', '\r']);
    if quoted {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    if quoted {
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// A CSV file of a list: `headings`, then each row's cells' text.
pub(crate) fn csv_text(headings: &[&str], rows: &[Vec<TableCell>]) -> String {
    let line = |cells: Vec<String>| cells.join(",") + "\n";
    let mut out = line(headings.iter().map(|h| csv_cell(h)).collect());
    for row in rows {
        out += &line(row.iter().map(|c| csv_cell(c.csv_text())).collect());
    }
    out
}

/// The way back to the site's root from a page at `path`.
pub(crate) fn depth_root(path: &str) -> String {
    "../".repeat(path.matches('/').count())
}

/// The page of an area, from the site's root.
pub(crate) fn area_path(a: &Area) -> String {
    match a.level {
        Level::City => "index.html".into(),
        _ => format!("{}/{}/index.html", level_dir(a.level), a.code),
    }
}

/// The name of an area's data files, without extension.
pub(crate) fn data_name(a: &Area) -> String {
    format!("{}-{}", a.level.name(), a.code)
}

/// An area's data files without extension, from the site's root.
pub(crate) fn data_stem(a: &Area) -> String {
    format!("data/{}", data_name(a))
}

/// The bulletin page of a day, from the site's root.
pub(crate) fn bulletin_path(day: NaiveDate) -> String {
    format!("bulletins/{day}/index.html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_format_counts_shares_and_withheld_cells() {
        let f = |m, c| Figure::new(m, c, 5);
        let count = f(Metric::HouseholdsVisited, Cell::Shown(1234.0));
        assert_eq!(
            (count.value.as_str(), count.plain.as_str()),
            ("1,234", "1234")
        );
        assert_eq!(f(Metric::HouseholdsVisited, Cell::Shown(1234.0)).unit, "户");
        let share = f(Metric::Coverage, Cell::Shown(0.4567));
        assert_eq!((share.value.as_str(), share.unit), ("45.7%", ""));
        let small = f(Metric::HazardsOpen, Cell::Small);
        assert_eq!(
            (small.value.as_str(), small.state),
            ("<5", FigureState::Small)
        );
        let withheld = f(Metric::HazardsOpen, Cell::Withheld);
        assert_eq!(
            (withheld.value.as_str(), withheld.state),
            ("×", FigureState::Withheld)
        );
    }

    #[test]
    fn counts_are_grouped_for_readers_and_plain_for_files() {
        assert_eq!(plain_count(0.0), "0");
        assert_eq!(plain_count(-0.0), "-0");
        assert_eq!(plain_count(1234567.0), "1234567");
        assert_eq!(plain_count(2.5), format!("{:.0}", 2.5));
        assert_eq!(grouped_count(0.0), "0");
        assert_eq!(grouped_count(999.0), "999");
        assert_eq!(grouped_count(1000.0), "1,000");
        assert_eq!(grouped_count(4_800_000.0), "4,800,000");
        assert_eq!(grouped_count(-12345.0), "-12,345");
        let cell = TableCell::count(12345.0);
        assert_eq!((cell.text.as_str(), cell.csv_text()), ("12,345", "12345"));
        assert_eq!(TableCell::text("<5").csv_text(), "<5");
    }

    #[test]
    fn days_serialize_with_their_parts() {
        let day = Day(NaiveDate::from_ymd_opt(2022, 11, 28).unwrap());
        assert_eq!(
            serde_json::to_value(day).unwrap(),
            serde_json::json!({"iso": "2022-11-28", "year": 2022, "month": 11, "day": 28})
        );
    }

    #[test]
    fn paths_lead_back_to_the_root() {
        assert_eq!(depth_root("index.html"), "");
        assert_eq!(depth_root("county/440781/index.html"), "../../");
    }
}
