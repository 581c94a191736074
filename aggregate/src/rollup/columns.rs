//! The rollup tables' columns, from the metric catalogue
//! ([`gridstat_schemas::metrics`]).
//!
//! [`recipe`] says how each metric is computed, by an exhaustive `match`:
//! a metric added to the catalogue without its SQL does not compile. Every
//! column list of the rollup queries follows from the recipes of the stored
//! metrics, in catalogue order: the figures summed per grid and day
//! ([`FLOWS`], [`STATES`]), the distinct reporters ([`REPORTERS`]) and the
//! final tables' columns ([`select_item`]).

use std::sync::LazyLock;

use gridstat_schemas::metrics::{Kind, Metric};
use gridstat_schemas::record::{CaseKind, CaseStatus, TargetKind};

/// How a metric is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Recipe {
    /// A figure of the registry: this aggregate over the area's rows of
    /// `registry_grids` (`g`); the same in both tables.
    Registry(&'static str),
    /// Counted per grid and day as [`Daily`] says and summed up the
    /// hierarchy; the cumulative table holds the running sum.
    Flow(Daily),
    /// Distinct targets of a kind. A target belongs to one grid, so the
    /// count is additive: per day those visited that day (`grid_targets`),
    /// cumulative the running sum of first visits (`grid_firsts`,
    /// [`first_visits_column`]).
    Targets(TargetKind),
    /// Grids visited: per day those visited that day, cumulative the
    /// running sum of grids reached for the first time
    /// ([`GRIDS_FIRST_REACHED`]). A grid belongs to one area per level, so
    /// the count is additive.
    GridsReached,
    /// A flow that is the first metric less the second, in the same row.
    Difference(Metric, Metric),
    /// Cases open at the day's end, per grid (`open_cases`): a state,
    /// summed up the hierarchy and the same in both tables.
    OpenCases,
    /// The catalogue's ratio of two columns of the same row
    /// ([`Kind::Ratio`]); with `null_when_zero`, no value where the
    /// denominator is 0.
    Ratio {
        /// Whether a zero denominator gives no value.
        null_when_zero: bool,
    },
    /// This percentile of the hours taken to resolve a case of a kind,
    /// per level (the kind's [`hours_tables`]).
    HoursToResolve(f64, CaseKind),
    /// Distinct reporters per level: of the metric's role
    /// ([`Metric::reporter_role`]), or all of them.
    Reporters,
    /// Derived by readers from stored columns ([`Kind::Sum`]): not a rollup
    /// column.
    Derived,
}

/// How a flow is counted per grid and day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Daily {
    /// By this aggregate over the grid's curated visits of the day.
    Visits(&'static str),
    /// Visits whose list column (`special_groups`, `safety_checks`) holds
    /// this value.
    Flagged {
        /// The list column.
        list: &'static str,
        /// The value (its wire name).
        flag: &'static str,
    },
    /// Targets of a kind visited for the first time (`grid_firsts`).
    FirstVisits(TargetKind),
    /// Hardships of the metric's category ([`Metric::hardship_category`])
    /// raised that day: the openings in `case_state`.
    Raised,
    /// Cases of a kind resolved that day (`case_state`).
    Resolved(CaseKind),
    /// Cases of a kind first assigned or escalated that day
    /// (`case_state`'s `assigned_dt`, `escalated_dt`).
    FirstStatus(CaseStatus, CaseKind),
}

/// How `metric` is computed.
pub(crate) fn recipe(metric: Metric) -> Recipe {
    use Metric as M;
    let visits = |sql| Recipe::Flow(Daily::Visits(sql));
    match metric {
        M::HouseholdsRegistered => Recipe::Registry("SUM(g.households)"),
        // A sum like the households (COUNT would make the column non-null).
        M::GridsRegistered => Recipe::Registry("SUM(1)"),
        M::GridsReached => Recipe::GridsReached,
        M::GridsReachedShare | M::PresentShare | M::StaffTestedShare => Recipe::Ratio {
            null_when_zero: true,
        },
        M::SpecialElderlyAlone
        | M::SpecialDisabled
        | M::SpecialChronicIllness
        | M::SpecialPregnant
        | M::SpecialLeftBehindChild
        | M::SpecialLowIncome => Recipe::Flow(Daily::Flagged {
            list: "special_groups",
            flag: metric.special_group().map_or("", |g| g.as_str()),
        }),
        M::ChecksGas
        | M::ChecksElectricity
        | M::ChecksFire
        | M::ChecksBuilding
        | M::ChecksProduction => Recipe::Flow(Daily::Flagged {
            list: "safety_checks",
            flag: metric.safety_check().map_or("", |c| c.as_str()),
        }),
        M::ResidentsPresent => {
            visits("SUM(CASE WHEN target_kind = 'household' THEN residents_present ELSE 0 END)")
        }
        // Staff of enterprises and venues, apart from households' residents
        // (应检尽检).
        M::StaffRecorded => {
            visits("SUM(CASE WHEN target_kind <> 'household' THEN residents_recorded ELSE 0 END)")
        }
        M::StaffTested => {
            visits("SUM(CASE WHEN target_kind <> 'household' THEN residents_tested ELSE 0 END)")
        }
        M::Visits => visits("COUNT(*)"),
        M::HouseholdsVisited => Recipe::Targets(TargetKind::Household),
        // Divided as it is, unlike the shares: an area that registers no
        // households has NaN here (infinity once visited), not no value.
        M::Coverage => Recipe::Ratio {
            null_when_zero: false,
        },
        M::HouseholdsNew => Recipe::Flow(Daily::FirstVisits(TargetKind::Household)),
        M::EnterprisesVisited => Recipe::Targets(TargetKind::Enterprise),
        M::VenuesVisited => Recipe::Targets(TargetKind::Venue),
        M::ResidentsRecorded => {
            visits("SUM(CASE WHEN target_kind = 'household' THEN residents_recorded ELSE 0 END)")
        }
        M::NewcomersRegistered => visits("SUM(newcomers_registered)"),
        M::ResidentsTested => {
            visits("SUM(CASE WHEN target_kind = 'household' THEN residents_tested ELSE 0 END)")
        }
        M::ResidentsVaccinated => {
            visits("SUM(CASE WHEN target_kind = 'household' THEN residents_vaccinated ELSE 0 END)")
        }
        M::TestedShare | M::VaccinatedShare => Recipe::Ratio {
            null_when_zero: true,
        },
        M::HazardsFound => visits("SUM(hazards_found)"),
        M::HazardsFixedOnSpot => visits("SUM(hazards_fixed_on_spot)"),
        M::HazardsHandedOn => Recipe::Difference(M::HazardsFound, M::HazardsFixedOnSpot),
        M::HazardsResolved => Recipe::Flow(Daily::Resolved(CaseKind::Hazard)),
        M::HazardsAssigned => {
            Recipe::Flow(Daily::FirstStatus(CaseStatus::Assigned, CaseKind::Hazard))
        }
        M::HazardsEscalated => {
            Recipe::Flow(Daily::FirstStatus(CaseStatus::Escalated, CaseKind::Hazard))
        }
        M::HardshipsAssigned => {
            Recipe::Flow(Daily::FirstStatus(CaseStatus::Assigned, CaseKind::Hardship))
        }
        M::HardshipsEscalated => Recipe::Flow(Daily::FirstStatus(
            CaseStatus::Escalated,
            CaseKind::Hardship,
        )),
        M::HazardsOpen | M::HardshipsOpen | M::HardshipsOverdue | M::HazardsOverdue => {
            Recipe::OpenCases
        }
        M::HardshipsRaised => visits("SUM(hardships_raised)"),
        M::HardshipsMedical
        | M::HardshipsSupplies
        | M::HardshipsElderlyCare
        | M::HardshipsEmployment
        | M::HardshipsDispute
        | M::HardshipsHousing
        | M::HardshipsOther => Recipe::Flow(Daily::Raised),
        M::HardshipsResolved => Recipe::Flow(Daily::Resolved(CaseKind::Hardship)),
        M::ResolveHoursMedian => Recipe::HoursToResolve(0.5, CaseKind::Hardship),
        M::ResolveHoursP90 => Recipe::HoursToResolve(0.9, CaseKind::Hardship),
        M::HazardResolveHoursMedian => Recipe::HoursToResolve(0.5, CaseKind::Hazard),
        M::HazardResolveHoursP90 => Recipe::HoursToResolve(0.9, CaseKind::Hazard),
        M::ReportersActive
        | M::ReportersCadre
        | M::ReportersGridWorker
        | M::ReportersPolice
        | M::ReportersVolunteer
        | M::ReportersDeputy => Recipe::Reporters,
        M::EnlistedBuildingLeads => visits("SUM(enlisted_building_leads)"),
        M::EnlistedVolunteers => visits("SUM(enlisted_volunteers)"),
        M::HazardsFixed | M::Enlisted => Recipe::Derived,
    }
}

/// The tables of resolve-time percentiles of a case kind: of the day's
/// resolutions, of all up to the day, and their alias in the final
/// tables' query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HoursTables {
    /// Of the day's resolutions.
    pub(crate) daily: &'static str,
    /// Of every resolution up to the day.
    pub(crate) cumulative: &'static str,
    /// Alias in [`super::final_tables::final_sql`].
    pub(crate) alias: &'static str,
}

/// The resolve-time tables of `kind`.
pub(crate) fn hours_tables(kind: CaseKind) -> HoursTables {
    match kind {
        CaseKind::Hardship => HoursTables {
            daily: "hours_day",
            cumulative: "hours_cum",
            alias: "h",
        },
        CaseKind::Hazard => HoursTables {
            daily: "hazard_hours_day",
            cumulative: "hazard_hours_cum",
            alias: "hz",
        },
    }
}

/// The columns of `kind`'s resolve-time percentiles, with each one's
/// percentile, in column order.
pub(crate) fn hours_columns(kind: CaseKind) -> Vec<(&'static str, f64)> {
    stored()
        .filter_map(|(metric, recipe)| match recipe {
            Recipe::HoursToResolve(p, k) if k == kind => Some((metric.name(), p)),
            _ => None,
        })
        .collect()
}

/// Every rollup column's metric with its recipe, in column order.
pub(crate) fn stored() -> impl Iterator<Item = (Metric, Recipe)> {
    Metric::stored().map(|m| (m, recipe(m)))
}

/// The `grid_day` column of the targets of `kind` first visited that day.
/// Households' is a rollup figure of its own ([`Metric::HouseholdsNew`]);
/// the others only make the cumulative counts of distinct targets.
pub(crate) fn first_visits_column(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Household => Metric::HouseholdsNew.name(),
        TargetKind::Enterprise => "enterprises_new",
        TargetKind::Venue => "venues_new",
    }
}

/// The `grid_day` column that is 1 on the day a grid was visited for the
/// first time: its running sum is the cumulative [`Metric::GridsReached`].
pub(crate) const GRIDS_FIRST_REACHED: &str = "grids_first_reached";

/// The figures summed per grid and day (`grid_day`), up the hierarchy
/// (`area_day`) and, for the cumulative table, over the days: the flows
/// and the distinct targets, each followed by its first visits.
pub static FLOWS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut columns = Vec::new();
    for (metric, recipe) in stored() {
        let own = match recipe {
            Recipe::Flow(_) => [Some(metric.name()), None],
            Recipe::Targets(kind) => [Some(metric.name()), Some(first_visits_column(kind))],
            Recipe::GridsReached => [Some(metric.name()), Some(GRIDS_FIRST_REACHED)],
            _ => [None, None],
        };
        for column in own.into_iter().flatten() {
            if !columns.contains(&column) {
                columns.push(column);
            }
        }
    }
    columns
});

/// State figures at the end of the day, per grid: the same in both tables.
pub static STATES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    stored()
        .filter(|(_, recipe)| *recipe == Recipe::OpenCases)
        .map(|(metric, _)| metric.name())
        .collect()
});

/// Distinct reporter columns (not additive), each with its role (`None`:
/// every reporter).
pub static REPORTERS: LazyLock<Vec<(&'static str, Option<&'static str>)>> = LazyLock::new(|| {
    stored()
        .filter(|(_, recipe)| *recipe == Recipe::Reporters)
        .map(|(metric, _)| (metric.name(), metric.reporter_role().map(|r| r.as_str())))
        .collect()
});

/// The cumulative-table column holding the running sum of the `grid_day`
/// column `column` (one of [`FLOWS`]): its own, or for the first visits
/// of enterprises and venues, their distinct count.
pub(super) fn cumulative_column(column: &'static str) -> &'static str {
    if Metric::from_name(column).is_some() {
        return column;
    }
    stored()
        .find_map(|(metric, recipe)| match recipe {
            Recipe::Targets(kind) if first_visits_column(kind) == column => Some(metric.name()),
            Recipe::GridsReached if column == GRIDS_FIRST_REACHED => Some(metric.name()),
            _ => None,
        })
        .unwrap_or(column)
}

/// The SQL of `metric`'s column in the daily or the `cumulative` table
/// (see [`super::final_tables`] for the tables `a`, `r`, `h` and `p` it
/// reads), or `None` for a metric that is not a rollup column.
pub(super) fn value(metric: Metric, cumulative: bool) -> Option<String> {
    // The cumulative table reads `area_running`, whose flows and reporter
    // counts are already running sums since the first recomputed day.
    let flow = |column: &'static str| {
        if cumulative {
            format!(
                "(COALESCE(p.{}, 0) + a.{column})",
                cumulative_column(column)
            )
        } else {
            format!("a.{column}")
        }
    };
    let name = metric.name();
    Some(match recipe(metric) {
        Recipe::Registry(_) | Recipe::OpenCases => format!("a.{name}"),
        Recipe::Flow(_) => flow(name),
        // In the cumulative table distinct targets are the running sum of
        // first visits; per day they are the day's distinct targets.
        Recipe::Targets(kind) if cumulative => flow(first_visits_column(kind)),
        Recipe::Targets(_) => flow(name),
        Recipe::GridsReached if cumulative => flow(GRIDS_FIRST_REACHED),
        Recipe::GridsReached => flow(name),
        Recipe::Difference(minuend, subtrahend) => format!(
            "{} - {}",
            value(minuend, cumulative)?,
            value(subtrahend, cumulative)?
        ),
        Recipe::Ratio { null_when_zero } => {
            // The catalogue names a ratio's parts (a test keeps recipes
            // and kinds together).
            let Kind::Ratio { num, den } = metric.kind() else {
                return None;
            };
            let (num, den) = (value(num, cumulative)?, value(den, cumulative)?);
            let ratio = format!("CAST({num} AS DOUBLE) / CAST({den} AS DOUBLE)");
            if null_when_zero {
                format!("CASE WHEN {den} = 0 THEN NULL ELSE {ratio} END")
            } else {
                ratio
            }
        }
        Recipe::HoursToResolve(_, kind) => format!("{}.{name}", hours_tables(kind).alias),
        Recipe::Reporters if cumulative => format!("(COALESCE(p.{name}, 0) + a.{name})"),
        Recipe::Reporters => format!("COALESCE(r.{name}, 0)"),
        Recipe::Derived => return None,
    })
}

/// `metric`'s item in the final tables' `SELECT` list (see [`value`]): a
/// figure read as it is keeps its name, a computed one is named.
pub(super) fn select_item(metric: Metric, cumulative: bool) -> Option<String> {
    let value = value(metric, cumulative)?;
    Some(match recipe(metric) {
        Recipe::Registry(_) | Recipe::OpenCases | Recipe::HoursToResolve(..) => value,
        _ => format!("{value} AS {}", metric.name()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recipes and the catalogue's kinds tell the same story.
    #[test]
    fn recipes_agree_with_the_catalogue() {
        for metric in Metric::all() {
            let recipe = recipe(metric);
            let agrees = match (metric.kind(), recipe) {
                (Kind::Registered, Recipe::Registry(_)) => true,
                (Kind::Flow, Recipe::Flow(Daily::Raised)) => metric.hardship_category().is_some(),
                (Kind::Flow, Recipe::Flow(Daily::FirstVisits(kind))) => {
                    first_visits_column(kind) == metric.name()
                }
                (Kind::Flow, Recipe::Flow(Daily::Flagged { flag, .. })) => {
                    metric.special_group().map(|g| g.as_str()) == Some(flag)
                        || metric.safety_check().map(|c| c.as_str()) == Some(flag)
                }
                (Kind::Flow, Recipe::Flow(_) | Recipe::Difference(..)) => true,
                (Kind::Distinct, Recipe::Targets(_) | Recipe::GridsReached) => {
                    !metric.is_reporter_count()
                }
                (Kind::Distinct, Recipe::Reporters) => metric.is_reporter_count(),
                (Kind::State, Recipe::OpenCases) => true,
                (Kind::Ratio { .. }, Recipe::Ratio { .. }) => true,
                (Kind::Percentile, Recipe::HoursToResolve(..)) => true,
                (Kind::Sum(_), Recipe::Derived) => true,
                _ => false,
            };
            assert!(agrees, "{metric:?} is {:?} but {recipe:?}", metric.kind());
            assert_eq!(
                metric.hardship_category().is_some(),
                recipe == Recipe::Flow(Daily::Raised),
                "{metric:?}"
            );
            assert_eq!(
                value(metric, false).is_some(),
                metric.is_stored(),
                "{metric:?}"
            );
        }
    }

    /// The tables built outside SQL name their figures as the metrics do.
    #[test]
    fn tables_built_in_memory_have_the_metrics_columns() {
        let names = |schema: arrow::datatypes::SchemaRef, keys: usize| -> Vec<String> {
            schema.fields()[keys..]
                .iter()
                .map(|f| f.name().clone())
                .collect()
        };
        let of = |wanted: fn(&Recipe) -> bool| -> Vec<String> {
            stored()
                .filter(|(_, r)| wanted(r))
                .map(|(m, _)| m.name().to_string())
                .collect()
        };
        let mut open = names(crate::open_cases::schema(), 2);
        open.sort();
        let mut states = of(|r| *r == Recipe::OpenCases);
        states.sort();
        assert_eq!(open, states);
        assert_eq!(
            names(crate::percentiles::schema(), 3),
            of(|r| matches!(r, Recipe::HoursToResolve(_, CaseKind::Hardship)))
        );
    }

    #[test]
    fn first_visits_of_enterprises_and_venues_continue_their_distinct_counts() {
        assert_eq!(cumulative_column("enterprises_new"), "enterprises_visited");
        assert_eq!(cumulative_column("venues_new"), "venues_visited");
        assert_eq!(cumulative_column("households_new"), "households_new");
        assert_eq!(cumulative_column("visits"), "visits");
        assert_eq!(cumulative_column(GRIDS_FIRST_REACHED), "grids_reached");
        for column in FLOWS.iter() {
            assert!(Metric::from_name(cumulative_column(column)).is_some());
        }
    }
}
