//! The rollup tables' columns: the figures summed per grid and day, the
//! states at the end of a day, the distinct reporters.

/// Flow figures: summed per day, running-summed for cumulative tables.
pub const FLOWS: &[&str] = &[
    "visits",
    "households_visited",
    "households_new",
    "enterprises_visited",
    "enterprises_new",
    "venues_visited",
    "venues_new",
    "residents_recorded",
    "newcomers_registered",
    "residents_tested",
    "residents_vaccinated",
    "hazards_found",
    "hazards_fixed_on_spot",
    "hazards_resolved",
    "hardships_raised",
    "hardships_medical",
    "hardships_supplies",
    "hardships_elderly_care",
    "hardships_employment",
    "hardships_dispute",
    "hardships_housing",
    "hardships_other",
    "hardships_resolved",
    "enlisted_building_leads",
    "enlisted_volunteers",
];

/// State figures at the end of the day: the same in both tables.
pub const STATES: &[&str] = &["hazards_open", "hardships_open", "hardships_overdue"];

/// Distinct reporter columns (not additive).
pub const REPORTERS: &[(&str, Option<&str>)] = &[
    ("reporters_active", None),
    ("reporters_cadre", Some("cadre")),
    ("reporters_grid_worker", Some("grid_worker")),
    ("reporters_police", Some("police")),
    ("reporters_volunteer", Some("volunteer")),
    ("reporters_deputy", Some("deputy")),
];

pub(super) const CATEGORIES: &[&str] = &[
    "medical",
    "supplies",
    "elderly_care",
    "employment",
    "dispute",
    "housing",
    "other",
];

/// The cumulative-table column holding the running sum of flow `f`.
pub(super) fn cumulative_column(f: &str) -> &str {
    match f {
        "enterprises_new" => "enterprises_visited",
        "venues_new" => "venues_visited",
        other => other,
    }
}
