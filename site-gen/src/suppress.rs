//! Disclosure control for the public site.
//!
//! 1. **Primary**: a count `v` with `0 < v < threshold` is withheld and
//!    shown as "<threshold".
//! 2. **Over time**: a cumulative count is published on a day only if it
//!    differs from the last published value of the same series by 0 or by
//!    at least the threshold; otherwise it is withheld. Differences between
//!    any two published days are then 0 or ≥ threshold, so no small daily
//!    count can be recovered from two cumulative figures. Daily figures are
//!    published only as such differences.
//! 3. **Complementary**: when exactly one child of a published parent is
//!    withheld (for a metric and day), the smallest other child is withheld
//!    too — or, with no other child, the parent; and when a parent is
//!    withheld while all its children are shown, its smallest non-zero
//!    child is withheld — repeated until stable, so no withheld cell equals
//!    its parent minus its siblings, nor the sum of its children.
//! 4. Shares are withheld when their numerator or denominator is.
//! 5. A share of a registry figure above 100 % (more households visited
//!    than registered) is not published as it is: shown as "待核实".

use std::collections::BTreeMap;

use gridstat_schemas::metrics::{Kind, Metric, Publication, CATALOGUE, PUBLIC_FIGURES};

use crate::model::{Area, Level, Rollups};

/// One published cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// The value.
    Shown(f64),
    /// Below the threshold: shown as "<threshold".
    Small,
    /// Withheld to protect another cell (shown as "×").
    Withheld,
    /// A share of the registry above 100 %: the registry's count is out of
    /// date, so the share is not published as it is (shown as "待核实";
    /// the quality table lists the areas).
    Unverified,
}

impl Cell {
    /// The value, if shown.
    pub fn value(self) -> Option<f64> {
        match self {
            Cell::Shown(v) => Some(v),
            Cell::Small | Cell::Withheld | Cell::Unverified => None,
        }
    }
}

/// Published values.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// The threshold used (0: nothing withheld, the internal dashboard).
    pub threshold: f64,
    /// Values by (level, code) → metric → per day.
    pub cells: BTreeMap<(Level, String), BTreeMap<Metric, Vec<Cell>>>,
}

impl Published {
    /// A published cell (`Withheld` when absent).
    pub fn cell(&self, area: &Area, metric: Metric, day: usize) -> Cell {
        self.cells
            .get(&(area.level, area.code.clone()))
            .and_then(|m| m.get(&metric))
            .and_then(|s| s.get(day).copied())
            .unwrap_or(Cell::Withheld)
    }

    /// A published value.
    pub fn get(&self, area: &Area, metric: Metric, day: usize) -> Option<f64> {
        self.cell(area, metric, day).value()
    }

    /// Every figure of `areas` unwithheld (the internal dashboard).
    pub fn unsuppressed<'a>(areas: impl Iterator<Item = &'a Area>, days: usize) -> Published {
        let mut out = Published::default();
        for area in areas {
            let mut metrics = BTreeMap::new();
            for &m in PUBLIC_FIGURES {
                let series = (0..days)
                    .map(|d| match m.kind() {
                        Kind::Ratio { num, den } => match (area.cum(num, d), area.cum(den, d)) {
                            (Some(n), Some(dv)) if dv > 0.0 => Cell::Shown(n / dv),
                            _ => Cell::Withheld,
                        },
                        _ => area.cum(m, d).map_or(Cell::Withheld, Cell::Shown),
                    })
                    .collect();
                metrics.insert(m, series);
            }
            out.cells.insert((area.level, area.code.clone()), metrics);
        }
        out
    }

    /// A published daily increment: the difference of two published
    /// cumulative values (day 0: from zero).
    pub fn increment(&self, area: &Area, metric: Metric, day: usize) -> Option<f64> {
        let today = self.get(area, metric, day)?;
        let before = if day == 0 {
            0.0
        } else {
            self.get(area, metric, day - 1)?
        };
        Some(today - before)
    }
}

/// The counts under control, each with whether its cumulative series is
/// monotone: the public figures that are not ratios, and the parts that
/// only ratios publish.
fn counts() -> impl Iterator<Item = (Metric, bool)> {
    let in_ratios = CATALOGUE
        .iter()
        .filter(|s| s.publication == Publication::InRatio)
        .map(|s| s.metric);
    PUBLIC_FIGURES
        .iter()
        .copied()
        .filter(|m| !matches!(m.kind(), Kind::Ratio { .. }))
        .chain(in_ratios)
        .map(|m| (m, m.is_monotone()))
}

/// Apply the rules to the city, county, town and village areas of `r`.
pub fn suppress(r: &Rollups, threshold: f64) -> Published {
    let days = r.days.len();
    let mut out = Published {
        threshold,
        cells: BTreeMap::new(),
    };
    let public: Vec<&Area> = r
        .areas
        .values()
        .filter(|a| a.level != Level::Grid)
        .collect();
    for area in &public {
        let mut metrics = BTreeMap::new();
        for (key, flow) in counts() {
            let mut last_published = 0.0;
            let series = (0..days)
                .map(|d| {
                    let v = area.cum(key, d).unwrap_or(0.0);
                    let small = v > 0.0 && v < threshold;
                    let step = v - last_published;
                    let small_step = flow && step > 0.0 && step < threshold;
                    if small {
                        Cell::Small
                    } else if small_step {
                        Cell::Withheld
                    } else {
                        last_published = v;
                        Cell::Shown(v)
                    }
                })
                .collect();
            metrics.insert(key, series);
        }
        out.cells.insert((area.level, area.code.clone()), metrics);
    }
    complementary(r, &public, &mut out, days);
    for area in &public {
        let cells = out
            .cells
            .get_mut(&(area.level, area.code.clone()))
            .expect("inserted above");
        for &m in PUBLIC_FIGURES {
            if let Kind::Ratio { num, den } = m.kind() {
                let series = (0..days)
                    .map(|d| {
                        let n = cells.get(&num).and_then(|s| s[d].value());
                        // The registry's figures are public as they are.
                        let dv = if den.kind() == Kind::Registered {
                            area.cum(den, d)
                        } else {
                            cells.get(&den).and_then(|s| s[d].value())
                        };
                        match (n, dv) {
                            (Some(n), Some(dv)) if dv > 0.0 => of_registry(den, n / dv),
                            _ => Cell::Withheld,
                        }
                    })
                    .collect();
                cells.insert(m, series);
            }
        }
    }
    out
}

/// A share `value` of a figure of the registry (`den`), unless above 100 %.
fn of_registry(den: Metric, value: f64) -> Cell {
    if den.kind() == Kind::Registered && value > 1.0 {
        Cell::Unverified
    } else {
        Cell::Shown(value)
    }
}

fn complementary(r: &Rollups, public: &[&Area], out: &mut Published, days: usize) {
    let keys: Vec<Metric> = counts().map(|(k, _)| k).collect();
    loop {
        let mut changed = false;
        for parent in public.iter().filter(|a| a.level != Level::Village) {
            let children: Vec<&Area> = r.children(parent).collect();
            for &key in &keys {
                for d in 0..days {
                    let pkey = (parent.level, parent.code.clone());
                    if out.cells[&pkey][&key][d].value().is_none() {
                        // A withheld parent whose children are all shown
                        // is their sum: withhold the smallest non-zero one.
                        let shown: Vec<(&&Area, f64)> = children
                            .iter()
                            .filter_map(|c| {
                                out.cells[&(c.level, c.code.clone())][&key][d]
                                    .value()
                                    .map(|v| (c, v))
                            })
                            .collect();
                        if shown.is_empty() || shown.len() < children.len() {
                            continue;
                        }
                        let smallest = shown
                            .iter()
                            .filter(|(_, v)| *v != 0.0)
                            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.code.cmp(&b.0.code)));
                        if let Some((c, _)) = smallest {
                            out.cells
                                .get_mut(&(c.level, c.code.clone()))
                                .expect("public area")
                                .get_mut(&key)
                                .expect("metric")[d] = Cell::Withheld;
                            changed = true;
                        }
                        continue;
                    }
                    let withheld = children
                        .iter()
                        .filter(|c| {
                            out.cells[&(c.level, c.code.clone())][&key][d]
                                .value()
                                .is_none()
                        })
                        .count();
                    if withheld != 1 {
                        continue;
                    }
                    let candidate = children
                        .iter()
                        .filter_map(|c| {
                            out.cells[&(c.level, c.code.clone())][&key][d]
                                .value()
                                .map(|v| (c, v))
                        })
                        .min_by(|a, b| {
                            (a.1 == 0.0)
                                .cmp(&(b.1 == 0.0))
                                .then(a.1.total_cmp(&b.1))
                                .then(a.0.code.cmp(&b.0.code))
                        });
                    let target = match candidate {
                        Some((c, _)) => (c.level, c.code.clone()),
                        None => pkey,
                    };
                    out.cells
                        .get_mut(&target)
                        .expect("public area")
                        .get_mut(&key)
                        .expect("metric")[d] = Cell::Withheld;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn area(level: Level, code: &str, parent: Option<&str>, hh: &[f64]) -> Area {
        let mut cumulative = BTreeMap::new();
        cumulative.insert(
            Metric::HouseholdsVisited,
            hh.iter().map(|v| Some(*v)).collect(),
        );
        cumulative.insert(
            Metric::HouseholdsRegistered,
            hh.iter().map(|_| Some(1000.0)).collect(),
        );
        Area {
            level,
            code: code.into(),
            name: code.into(),
            parent: parent.map(Into::into),
            cumulative,
            daily: BTreeMap::new(),
        }
    }

    fn rollups(areas: Vec<Area>, days: usize) -> Rollups {
        let start = NaiveDate::from_ymd_opt(2022, 11, 25).unwrap();
        Rollups {
            days: start.iter_days().take(days).collect(),
            areas: areas
                .into_iter()
                .map(|a| ((a.level, a.code.clone()), a))
                .collect(),
            ..Rollups::default()
        }
    }

    #[test]
    fn small_counts_and_small_steps_are_withheld() {
        let r = rollups(
            vec![area(Level::City, "c", None, &[3.0, 10.0, 12.0, 20.0])],
            4,
        );
        let p = suppress(&r, 5.0);
        let city = r.city().unwrap();
        let got: Vec<_> = (0..4)
            .map(|d| p.get(city, Metric::HouseholdsVisited, d))
            .collect();
        assert_eq!(got, vec![None, Some(10.0), None, Some(20.0)]);
        assert_eq!(p.increment(city, Metric::HouseholdsVisited, 3), None);
    }

    #[test]
    fn a_lone_withheld_child_gets_a_companion() {
        let r = rollups(
            vec![
                area(Level::City, "c", None, &[130.0]),
                area(Level::County, "a", Some("c"), &[3.0]),
                area(Level::County, "b", Some("c"), &[50.0]),
                area(Level::County, "d", Some("c"), &[77.0]),
            ],
            1,
        );
        let p = suppress(&r, 5.0);
        let get = |code: &str| {
            p.get(
                &r.areas[&(
                    if code == "c" {
                        Level::City
                    } else {
                        Level::County
                    },
                    code.to_string(),
                )],
                Metric::HouseholdsVisited,
                0,
            )
        };
        assert_eq!(get("a"), None);
        assert_eq!(get("b"), None, "smallest sibling withheld too");
        assert_eq!(get("d"), Some(77.0));
        assert_eq!(get("c"), Some(130.0));
    }

    #[test]
    fn a_withheld_parent_is_not_the_sum_of_shown_children() {
        let r = rollups(
            vec![
                area(Level::City, "c", None, &[200.0]),
                area(Level::County, "a", Some("c"), &[97.0]),
                area(Level::County, "b", Some("c"), &[3.0]),
                area(Level::County, "d", Some("c"), &[100.0]),
                area(Level::Town, "a1", Some("a"), &[60.0]),
                area(Level::Town, "a2", Some("a"), &[37.0]),
            ],
            1,
        );
        let p = suppress(&r, 5.0);
        let get = |level: Level, code: &str| {
            p.get(
                &r.areas[&(level, code.to_string())],
                Metric::HouseholdsVisited,
                0,
            )
        };
        assert_eq!(get(Level::County, "b"), None, "small");
        assert_eq!(get(Level::County, "a"), None, "protects b");
        assert_eq!(get(Level::Town, "a2"), None, "a is not a1 + a2");
        assert_eq!(get(Level::Town, "a1"), Some(60.0));
    }

    #[test]
    fn coverage_above_the_registry_is_not_published_as_it_is() {
        let r = rollups(vec![area(Level::City, "c", None, &[900.0, 1200.0])], 2);
        let p = suppress(&r, 5.0);
        let city = r.city().unwrap();
        assert_eq!(p.cell(city, Metric::Coverage, 0), Cell::Shown(0.9));
        assert_eq!(p.cell(city, Metric::Coverage, 1), Cell::Unverified);
        assert_eq!(p.get(city, Metric::HouseholdsVisited, 1), Some(1200.0));
    }
}
