//! The site's input: rollup rows read from the lake, indexed by area and day.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use chrono::NaiveDate;
use serde::Serialize;

/// Level of an area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The city.
    City,
    /// A county-level division.
    County,
    /// A town or street.
    Town,
    /// A grid (internal only).
    Grid,
}

impl Level {
    /// Parse the rollups' `level` value.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "city" => Some(Level::City),
            "county" => Some(Level::County),
            "town" => Some(Level::Town),
            "grid" => Some(Level::Grid),
            _ => None,
        }
    }

    /// URL directory of the level's pages.
    pub fn dir(self) -> &'static str {
        match self {
            Level::City => "",
            Level::County => "county",
            Level::Town => "town",
            Level::Grid => "grid",
        }
    }
}

/// An area and its figures per day.
#[derive(Debug, Clone, Serialize)]
pub struct Area {
    /// Level.
    pub level: Level,
    /// Division code or grid id.
    pub code: String,
    /// Name.
    pub name: String,
    /// Parent code (none for the city).
    pub parent: Option<String>,
    /// Cumulative figures by metric, one value per day of [`Rollups::days`] (`None`: no value).
    pub cumulative: BTreeMap<String, Vec<Option<f64>>>,
    /// Daily figures by metric.
    pub daily: BTreeMap<String, Vec<Option<f64>>>,
}

impl Area {
    /// A cumulative figure on day index `i`.
    pub fn cum(&self, metric: &str, i: usize) -> Option<f64> {
        self.cumulative
            .get(metric)
            .and_then(|v| v.get(i).copied().flatten())
    }
}

/// All rollups, as the site reads them.
#[derive(Debug, Clone, Default)]
pub struct Rollups {
    /// Days covered, ascending.
    pub days: Vec<NaiveDate>,
    /// Areas by (level, code), in level then code order.
    pub areas: BTreeMap<(Level, String), Area>,
    /// Data-quality rows: (day, kind, class, count).
    pub quality: Vec<(String, String, Option<String>, i64)>,
    /// Open cases, most overdue first: (case id, kind, category, grid, opened at, hours open).
    pub open_cases: Vec<OpenCase>,
}

/// A case still open at the last day (internal dashboard).
#[derive(Debug, Clone, Serialize)]
pub struct OpenCase {
    /// Case id.
    pub case_id: String,
    /// hardship or hazard.
    pub case_kind: String,
    /// Category or hazard kind.
    pub category: String,
    /// Grid.
    pub grid_id: String,
    /// When it was raised (local time text).
    pub opened_at: String,
    /// Hours open at the end of the last day.
    pub hours_open: f64,
}

impl Rollups {
    /// Areas of one level, in code order.
    pub fn level(&self, level: Level) -> impl Iterator<Item = &Area> {
        self.areas.values().filter(move |a| a.level == level)
    }

    /// Children of an area.
    pub fn children<'a>(&'a self, parent: &'a Area) -> impl Iterator<Item = &'a Area> + 'a {
        let child = match parent.level {
            Level::City => Level::County,
            Level::County => Level::Town,
            Level::Town | Level::Grid => Level::Grid,
        };
        self.areas
            .values()
            .filter(move |a| a.level == child && a.parent.as_deref() == Some(parent.code.as_str()))
    }

    /// The city.
    pub fn city(&self) -> Option<&Area> {
        self.level(Level::City).next()
    }

    /// Add the rows of rollup batches (`dt` column included) as daily or
    /// cumulative figures; a metric present in the batches replaces an
    /// area's earlier series of that metric.
    pub fn add_batches(&mut self, batches: &[RecordBatch], cumulative: bool) {
        let n = self.days.len();
        // Metric names are interned to indices once per batch, and rows are
        // staged per area as index-addressed series: one map lookup per row
        // instead of one per row and metric (the site's former hot spot).
        let mut names: Vec<String> = Vec::new();
        let mut staged: BTreeMap<(Level, String), Staged> = BTreeMap::new();
        for b in batches {
            let strings = |name: &str| b.column_by_name(name).map(|c| c.as_string::<i32>().clone());
            let (Some(level), Some(code), Some(name), Some(parent), Some(dt)) = (
                strings("level"),
                strings("area_code"),
                strings("area_name"),
                strings("parent_code"),
                strings("dt"),
            ) else {
                continue;
            };
            let numeric: Vec<(usize, Vec<Option<f64>>)> = b
                .schema()
                .fields()
                .iter()
                .enumerate()
                .filter_map(|(i, f)| {
                    let values = numbers(b.column(i).as_ref(), f.data_type())?;
                    let id = match names.iter().position(|m| m == f.name()) {
                        Some(id) => id,
                        None => {
                            names.push(f.name().clone());
                            names.len() - 1
                        }
                    };
                    Some((id, values))
                })
                .collect();
            let mut last_day: Option<(&str, Option<usize>)> = None;
            for row in 0..b.num_rows() {
                let Some(lvl) = Level::parse(level.value(row)) else {
                    continue;
                };
                let day_text = dt.value(row);
                let di = match last_day {
                    Some((text, di)) if text == day_text => di,
                    _ => {
                        let di = NaiveDate::parse_from_str(day_text, "%Y-%m-%d")
                            .ok()
                            .and_then(|d| self.days.binary_search(&d).ok());
                        last_day = Some((day_text, di));
                        di
                    }
                };
                let Some(di) = di else {
                    continue;
                };
                let entry = staged
                    .entry((lvl, code.value(row).to_string()))
                    .or_insert_with(|| Staged {
                        name: name.value(row).to_string(),
                        parent: (!parent.is_null(row)).then(|| parent.value(row).to_string()),
                        series: Vec::new(),
                    });
                if entry.series.len() < names.len() {
                    entry.series.resize(names.len(), None);
                }
                for (id, values) in &numeric {
                    entry.series[*id].get_or_insert_with(|| vec![None; n])[di] = values[row];
                }
            }
        }
        for ((lvl, code), st) in staged {
            let area = self
                .areas
                .entry((lvl, code.clone()))
                .or_insert_with(|| Area {
                    level: lvl,
                    code,
                    name: st.name,
                    parent: st.parent,
                    cumulative: BTreeMap::new(),
                    daily: BTreeMap::new(),
                });
            let target = if cumulative {
                &mut area.cumulative
            } else {
                &mut area.daily
            };
            for (id, series) in st.series.into_iter().enumerate() {
                if let Some(series) = series {
                    target.insert(names[id].clone(), series);
                }
            }
        }
    }
}

/// One area's rows of one `add_batches` call, series indexed by metric id.
struct Staged {
    name: String,
    parent: Option<String>,
    series: Vec<Option<Vec<Option<f64>>>>,
}

fn numbers(col: &dyn Array, dt: &DataType) -> Option<Vec<Option<f64>>> {
    match dt {
        DataType::Int64 => Some(
            col.as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map(|x| x as f64))
                .collect(),
        ),
        DataType::Float64 => Some(col.as_primitive::<Float64Type>().iter().collect()),
        DataType::Int32 => Some(
            col.as_primitive::<arrow::datatypes::Int32Type>()
                .iter()
                .map(|v| v.map(f64::from))
                .collect(),
        ),
        _ => None,
    }
}

/// The days present in rollup batches (their `dt` column).
pub fn days_of(batches: &[RecordBatch]) -> Vec<NaiveDate> {
    let mut days: Vec<NaiveDate> = batches
        .iter()
        .filter_map(|b| b.column_by_name("dt"))
        .flat_map(|c| {
            c.as_string::<i32>()
                .iter()
                .flatten()
                .filter_map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                .collect::<Vec<_>>()
        })
        .collect();
    days.sort();
    days.dedup();
    days
}

/// Figures the site shows that the rollups store as parts.
const DERIVED: &[(&str, &[&str])] = &[
    (
        "hazards_fixed",
        &["hazards_fixed_on_spot", "hazards_resolved"],
    ),
    (
        "enlisted",
        &["enlisted_building_leads", "enlisted_volunteers"],
    ),
];

impl Rollups {
    /// Add the derived figures (sums of stored parts) to every area.
    pub fn derive(&mut self) {
        for area in self.areas.values_mut() {
            for table in [&mut area.cumulative, &mut area.daily] {
                for (name, parts) in DERIVED {
                    if let Some(series) = sum_series(table, parts) {
                        table.insert((*name).to_string(), series);
                    }
                }
            }
        }
    }
}

fn sum_series(
    table: &BTreeMap<String, Vec<Option<f64>>>,
    parts: &[&str],
) -> Option<Vec<Option<f64>>> {
    let mut out: Option<Vec<Option<f64>>> = None;
    for p in parts {
        let s = table.get(*p)?;
        out = Some(match out {
            None => s.clone(),
            Some(acc) => acc
                .iter()
                .zip(s)
                .map(|(a, b)| Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)))
                .collect(),
        });
    }
    out
}
