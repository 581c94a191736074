//! Accessible inline SVG line charts (plotters), pure: data in, SVG text out.

use chrono::NaiveDate;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// One value per day; `None` (withheld) breaks the line.
    pub values: Vec<Option<f64>>,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// A line chart of `series` over `days`, with `<title>` and `<desc>`.
/// `percent` formats the y axis as percentages of 1.
pub fn line_chart(
    title: &str,
    desc: &str,
    days: &[NaiveDate],
    series: &[Series],
    percent: bool,
) -> Result<String> {
    let mut svg = String::with_capacity(24 * 1024);
    {
        let root = SVGBackend::with_string(&mut svg, (720, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let max = series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .fold(0.0_f64, |m, v| m.max(*v));
        let y_max = if max <= 0.0 { 1.0 } else { max * 1.08 };
        let n = days.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(0..(n.saturating_sub(1)).max(1), 0.0..y_max)
            .map_err(chart_err)?;
        let step = n.div_ceil(8).max(1);
        chart
            .configure_mesh()
            .x_labels(n.min(8))
            .x_label_formatter(&|i: &usize| {
                if i.is_multiple_of(step) {
                    days.get(*i)
                        .map(|d| d.format("%m-%d").to_string())
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v: &f64| {
                if percent && y_max < 0.2 {
                    format!("{:.1}%", v * 100.0)
                } else if percent {
                    format!("{:.0}%", v * 100.0)
                } else {
                    format_count(*v)
                }
            })
            .bold_line_style(RGBColor(225, 225, 225))
            // Light lines between labels made up most of each chart's
            // elements (and most of the site's build time) and added little;
            // the SVG backend skips transparent lines. (`max_light_lines(0)`
            // makes plotters 0.3.7 loop forever.)
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(chart_err)?;
        for (k, s) in series.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let mut first = true;
            for run in runs(&s.values) {
                let line = chart
                    .draw_series(LineSeries::new(run, color.stroke_width(2)))
                    .map_err(chart_err)?;
                if first {
                    line.label(s.label.clone()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                    first = false;
                }
            }
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .draw()
                .map_err(chart_err)?;
        }
        root.present().map_err(chart_err)?;
    }
    Ok(accessible(&svg, title, desc))
}

fn runs(values: &[Option<f64>]) -> Vec<Vec<(usize, f64)>> {
    let mut out = vec![Vec::new()];
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => out.last_mut().expect("non-empty").push((i, *v)),
            None if !out.last().expect("non-empty").is_empty() => out.push(Vec::new()),
            None => {}
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

fn format_count(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1}万", v / 10_000.0)
    } else {
        format!("{v:.0}")
    }
}

/// Strip any XML prolog, make the SVG scale with its container, and add
/// `<title>`/`<desc>` for screen readers.
fn accessible(svg: &str, title: &str, desc: &str) -> String {
    let body = svg.trim_start();
    let body = match body.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or(rest, |(_, r)| r).trim_start(),
        None => body,
    };
    let Some(end) = body.find('>') else {
        return body.to_string();
    };
    let open = &body[..end];
    let open = open.replacen(
        "width=\"720\" height=\"320\"",
        "width=\"100%\" preserveAspectRatio=\"xMinYMin meet\"",
        1,
    );
    format!(
        "{open} role=\"img\"><title>{}</title><desc>{}</desc>{}",
        escape(title),
        escape(desc),
        &body[end + 1..]
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn chart_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::Chart(format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_title_and_breaks_at_gaps() {
        let days: Vec<NaiveDate> = NaiveDate::from_ymd_opt(2022, 11, 25)
            .unwrap()
            .iter_days()
            .take(4)
            .collect();
        let s = Series {
            label: "a".into(),
            values: vec![Some(1.0), None, Some(3.0), Some(4.0)],
        };
        let svg = line_chart("标题 <x>", "说明", &days, &[s], false).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(svg.contains("<title>标题 &lt;x&gt;</title>"));
        assert_eq!(runs(&[Some(1.0), None, Some(3.0), Some(4.0)]).len(), 2);
    }
}
