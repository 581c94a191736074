//! The site's input: rollup rows read from the lake, indexed by area and day.

use std::collections::BTreeMap;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use chrono::NaiveDate;
use gridstat_schemas::metrics::{Kind, Metric, ValueType};
use serde::Serialize;

use crate::error::{Error, Result};

pub use gridstat_schemas::metrics::Level;

/// URL directory of a level's pages (the city's page is the home page).
pub fn level_dir(level: Level) -> &'static str {
    match level {
        Level::City => "",
        Level::County => "county",
        Level::Town => "town",
        Level::Village => "village",
        Level::Grid => "grid",
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
    pub cumulative: BTreeMap<Metric, Vec<Option<f64>>>,
    /// Daily figures by metric.
    pub daily: BTreeMap<Metric, Vec<Option<f64>>>,
}

impl Area {
    /// A cumulative figure on day index `i`.
    pub fn cum(&self, metric: Metric, i: usize) -> Option<f64> {
        self.cumulative
            .get(&metric)
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
    /// The cases the desk lists, longest open first: those open at the end
    /// of the last day, and those resolved by then but handled again
    /// since ([`OpenCase::reopened`]; closed for the figures).
    pub open_cases: Vec<OpenCase>,
    /// The sending agencies' participation on the last day, per area.
    pub units: Vec<UnitRow>,
}

/// One sending agency's participation in one area on the last day
/// (`rollups/units`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitRow {
    /// The area's level.
    pub level: Level,
    /// The area's code.
    pub area_code: String,
    /// The agency.
    pub unit: String,
    /// Its reporters active that day.
    pub reporters_active: i64,
    /// Its visits that day.
    pub visits: i64,
    /// Its reporters active since the start.
    pub reporters_since_start: i64,
    /// Its visits since the start.
    pub visits_since_start: i64,
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
    /// A hardship's urgency (wire name); none for hazards.
    pub urgency: Option<String>,
    /// The status of its latest update by the last day's end, `assigned`
    /// or `escalated` (wire name); none if no one has taken it yet.
    pub status: Option<String>,
    /// The pseudonymous handler of that update.
    pub handler_id: Option<String>,
    /// Resolved, then updated again (a reopening): handled again, but
    /// closed for the figures, which count a case open until its first
    /// resolution; the desk lists it apart.
    pub reopened: bool,
}

impl Rollups {
    /// Areas of one level, in code order.
    pub fn level(&self, level: Level) -> impl Iterator<Item = &Area> {
        self.areas.values().filter(move |a| a.level == level)
    }

    /// Children of an area.
    pub fn children<'a>(&'a self, parent: &'a Area) -> impl Iterator<Item = &'a Area> + 'a {
        let child = parent.level.child();
        self.areas.values().filter(move |a| {
            Some(a.level) == child && a.parent.as_deref() == Some(parent.code.as_str())
        })
    }

    /// The area above `area` (none for the city).
    pub fn parent(&self, area: &Area) -> Option<&Area> {
        let level = area.level.parent()?;
        self.areas.get(&(level, area.parent.clone()?))
    }

    /// The city.
    pub fn city(&self) -> Option<&Area> {
        self.level(Level::City).next()
    }

    /// Add the rows of the rollup table `table` (batches with a `dt`
    /// column) as daily or cumulative figures. Every batch must have the
    /// columns of [`gridstat_schemas::metrics::rollup_schema`] with their
    /// types; a metric replaces an area's earlier series of that metric.
    pub fn add_batches(
        &mut self,
        table: &str,
        batches: &[RecordBatch],
        cumulative: bool,
    ) -> Result<()> {
        let n = self.days.len();
        // Rows are staged per area as metric-indexed series: one map
        // lookup per row instead of one per row and metric.
        let metrics: Vec<Metric> = Metric::stored().collect();
        let mut staged: BTreeMap<(Level, String), Staged> = BTreeMap::new();
        for b in batches {
            let columns = RollupColumns::of(table, b, &metrics)?;
            let mut last_day: Option<(&str, Option<usize>)> = None;
            for row in 0..b.num_rows() {
                let level_name = columns.level.value(row);
                let lvl = Level::parse(level_name).ok_or_else(|| Error::Schema {
                    table: table.into(),
                    column: "level".into(),
                    problem: format!("holds {level_name:?}"),
                    expected: "one of city, county, town, village, grid".into(),
                })?;
                let day_text = columns.dt.value(row);
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
                let parent = columns.parent;
                let entry = staged
                    .entry((lvl, columns.code.value(row).to_string()))
                    .or_insert_with(|| Staged {
                        name: columns.name.value(row).to_string(),
                        parent: (!parent.is_null(row)).then(|| parent.value(row).to_string()),
                        series: vec![None; metrics.len()],
                    });
                for (id, values) in columns.values.iter().enumerate() {
                    entry.series[id].get_or_insert_with(|| vec![None; n])[di] = values[row];
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
                    target.insert(metrics[id], series);
                }
            }
        }
        Ok(())
    }
}

/// One area's rows of one `add_batches` call, series indexed like the
/// stored metrics.
struct Staged {
    name: String,
    parent: Option<String>,
    series: Vec<Option<Vec<Option<f64>>>>,
}

/// The columns of a rollup batch, checked against the catalogue.
struct RollupColumns<'a> {
    level: &'a StringArray,
    code: &'a StringArray,
    name: &'a StringArray,
    parent: &'a StringArray,
    dt: &'a StringArray,
    /// Each stored metric's values, in [`Metric::stored`] order.
    values: Vec<Vec<Option<f64>>>,
}

impl<'a> RollupColumns<'a> {
    fn of(table: &str, b: &'a RecordBatch, metrics: &[Metric]) -> Result<Self> {
        let text = |name: &str| string_column(table, b, name);
        let values = metrics
            .iter()
            .map(|m| {
                let expected = m.spec().value_type.data_type();
                let column = typed_column(table, b, m.name(), &expected)?;
                Ok(match m.spec().value_type {
                    ValueType::Count => column
                        .as_primitive::<Int64Type>()
                        .iter()
                        .map(|v| v.map(|x| x as f64))
                        .collect(),
                    ValueType::Real => column.as_primitive::<Float64Type>().iter().collect(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            level: text("level")?,
            code: text("area_code")?,
            name: text("area_name")?,
            parent: text("parent_code")?,
            dt: text("dt")?,
            values,
        })
    }
}

/// Column `name` of `b`, which must have type `expected`.
pub(crate) fn typed_column<'a>(
    table: &str,
    b: &'a RecordBatch,
    name: &str,
    expected: &DataType,
) -> Result<&'a ArrayRef> {
    let schema_error = |problem: String| Error::Schema {
        table: table.into(),
        column: name.into(),
        problem,
        expected: expected.to_string(),
    };
    let column = b
        .column_by_name(name)
        .ok_or_else(|| schema_error("is missing".into()))?;
    if column.data_type() != expected {
        return Err(schema_error(format!("has type {}", column.data_type())));
    }
    Ok(column)
}

/// The string column `name` of `b`.
pub(crate) fn string_column<'a>(
    table: &str,
    b: &'a RecordBatch,
    name: &str,
) -> Result<&'a StringArray> {
    Ok(typed_column(table, b, name, &DataType::Utf8)?.as_string::<i32>())
}

/// The days present in the batches of the rollup table `table` (their
/// `dt` column).
pub fn days_of(table: &str, batches: &[RecordBatch]) -> Result<Vec<NaiveDate>> {
    let mut days = Vec::new();
    for b in batches {
        let dt = string_column(table, b, "dt")?;
        days.extend(
            dt.iter()
                .flatten()
                .filter_map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()),
        );
    }
    days.sort();
    days.dedup();
    Ok(days)
}

impl Rollups {
    /// Add the figures readers derive ([`Kind::Sum`] of stored parts) to every area.
    pub fn derive(&mut self) {
        let derived: Vec<(Metric, &[Metric])> = Metric::all()
            .filter_map(|m| match m.kind() {
                Kind::Sum(parts) => Some((m, parts)),
                _ => None,
            })
            .collect();
        for area in self.areas.values_mut() {
            for table in [&mut area.cumulative, &mut area.daily] {
                for (metric, parts) in &derived {
                    if let Some(series) = sum_series(table, parts) {
                        table.insert(*metric, series);
                    }
                }
            }
        }
    }
}

fn sum_series(
    table: &BTreeMap<Metric, Vec<Option<f64>>>,
    parts: &[Metric],
) -> Option<Vec<Option<f64>>> {
    let mut out: Option<Vec<Option<f64>>> = None;
    for p in parts {
        let s = table.get(p)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use gridstat_schemas::metrics::rollup_schema;
    use std::sync::Arc;

    /// One city row on 2022-11-25 with every stored metric at 1, `dt` appended.
    fn city_row() -> RecordBatch {
        let schema = rollup_schema();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut columns: Vec<ArrayRef> = fields
            .iter()
            .map(|f| -> ArrayRef {
                match (f.name().as_str(), f.data_type()) {
                    ("level", _) => Arc::new(StringArray::from(vec!["city"])),
                    ("parent_code", _) => Arc::new(StringArray::from(vec![None::<&str>])),
                    (_, DataType::Utf8) => Arc::new(StringArray::from(vec!["440700"])),
                    (_, DataType::Int64) => Arc::new(Int64Array::from(vec![1])),
                    _ => Arc::new(Float64Array::from(vec![0.5])),
                }
            })
            .collect();
        fields.push(Field::new("dt", DataType::Utf8, false));
        columns.push(Arc::new(StringArray::from(vec!["2022-11-25"])));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    fn rollups() -> Rollups {
        Rollups {
            days: vec![NaiveDate::from_ymd_opt(2022, 11, 25).unwrap()],
            ..Rollups::default()
        }
    }

    #[test]
    fn rows_of_the_catalogued_schema_become_series_by_metric() {
        let mut r = rollups();
        r.add_batches("rollups/cumulative", &[city_row()], true)
            .unwrap();
        r.derive();
        let city = r.city().unwrap();
        assert_eq!(city.cum(Metric::Visits, 0), Some(1.0));
        assert_eq!(city.cum(Metric::Coverage, 0), Some(0.5));
        assert_eq!(
            city.cum(Metric::HazardsFixed, 0),
            Some(2.0),
            "a derived sum"
        );
    }

    #[test]
    fn a_missing_or_mistyped_column_names_the_table_column_and_type() {
        let full = city_row();
        let without = full
            .project(&(1..full.num_columns()).collect::<Vec<_>>())
            .unwrap();
        let err = rollups()
            .add_batches("rollups/daily", &[without], false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rollups/daily") && err.contains("`level` is missing"),
            "{err}"
        );

        let idx = full.schema().index_of("visits").unwrap();
        let mut fields: Vec<Field> = full
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields[idx] = Field::new("visits", DataType::Float64, true);
        let mut columns = full.columns().to_vec();
        columns[idx] = Arc::new(Float64Array::from(vec![1.0]));
        let mistyped = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let err = rollups()
            .add_batches("rollups/daily", &[mistyped], false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`visits` has type Float64") && err.contains("expected Int64"),
            "{err}"
        );
    }
}
