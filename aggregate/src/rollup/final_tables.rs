//! The daily and cumulative tables as their files hold them.

use super::columns::{cumulative_column, CATEGORIES, FLOWS, REPORTERS};

/// The previous run's cumulative row of the day before the first
/// recomputed day, per level and area; no rows when recomputing from the
/// campaign's start.
pub(super) fn previous_sql(has_previous: bool) -> String {
    let columns: std::collections::BTreeSet<&str> = FLOWS
        .iter()
        .map(|f| cumulative_column(f))
        .chain(REPORTERS.iter().map(|(c, _)| *c))
        .collect();
    if has_previous {
        let cols: String = columns.iter().map(|c| format!(", {c}")).collect();
        format!("(SELECT level, area_code{cols} FROM previous_cumulative)")
    } else {
        let cols: String = columns
            .iter()
            .map(|c| format!(", CAST(NULL AS BIGINT) AS {c}"))
            .collect();
        format!("(SELECT CAST(NULL AS VARCHAR) AS level, CAST(NULL AS VARCHAR) AS area_code{cols} WHERE false)")
    }
}

pub(crate) fn final_sql(cumulative: bool, has_previous: bool) -> String {
    // The cumulative table reads `area_running`, whose flows and reporter
    // counts are already running sums since the first recomputed day.
    let flow = |f: &str| {
        if cumulative {
            format!("(COALESCE(p.{}, 0) + a.{f})", cumulative_column(f))
        } else {
            format!("a.{f}")
        }
    };
    let reporter = |c: &str| {
        if cumulative {
            format!("(COALESCE(p.{c}, 0) + a.{c})")
        } else {
            format!("COALESCE(r.{c}, 0)")
        }
    };
    // In the cumulative table distinct households are the running sum of
    // first visits; per day they are the day's distinct households.
    let visited = |kind: &str| {
        if cumulative {
            flow(&format!("{kind}_new"))
        } else {
            flow(&format!("{kind}_visited"))
        }
    };
    let mut cols = vec![
        "a.level".to_string(),
        "a.area_code".into(),
        "a.area_name".into(),
        "a.parent_code".into(),
        "a.dt".into(),
        "a.households_registered".into(),
        format!("{} AS visits", flow("visits")),
        format!("{} AS households_visited", visited("households")),
        format!(
            "CAST({} AS DOUBLE) / CAST(a.households_registered AS DOUBLE) AS coverage",
            visited("households")
        ),
        format!("{} AS households_new", flow("households_new")),
        format!("{} AS enterprises_visited", visited("enterprises")),
        format!("{} AS venues_visited", visited("venues")),
    ];
    for f in [
        "residents_recorded",
        "newcomers_registered",
        "residents_tested",
        "residents_vaccinated",
    ] {
        cols.push(format!("{} AS {f}", flow(f)));
    }
    for (share, num) in [
        ("tested_share", "residents_tested"),
        ("vaccinated_share", "residents_vaccinated"),
    ] {
        cols.push(format!(
            "CASE WHEN {den} = 0 THEN NULL ELSE CAST({n} AS DOUBLE) / CAST({den} AS DOUBLE) END AS {share}",
            den = flow("residents_recorded"),
            n = flow(num)
        ));
    }
    for f in ["hazards_found", "hazards_fixed_on_spot"] {
        cols.push(format!("{} AS {f}", flow(f)));
    }
    cols.push(format!(
        "{} - {} AS hazards_handed_on",
        flow("hazards_found"),
        flow("hazards_fixed_on_spot")
    ));
    cols.push(format!("{} AS hazards_resolved", flow("hazards_resolved")));
    cols.push("a.hazards_open".into());
    cols.push(format!("{} AS hardships_raised", flow("hardships_raised")));
    for c in CATEGORIES {
        cols.push(format!(
            "{} AS hardships_{c}",
            flow(&format!("hardships_{c}"))
        ));
    }
    cols.push(format!(
        "{} AS hardships_resolved",
        flow("hardships_resolved")
    ));
    cols.push("a.hardships_open".into());
    cols.push("a.hardships_overdue".into());
    cols.push("h.resolve_hours_median".into());
    cols.push("h.resolve_hours_p90".into());
    for (c, _) in REPORTERS {
        cols.push(format!("{} AS {c}", reporter(c)));
    }
    for f in ["enlisted_building_leads", "enlisted_volunteers"] {
        cols.push(format!("{} AS {f}", flow(f)));
    }
    let joins = if cumulative {
        format!(
            "area_running a \
             LEFT JOIN hours_cum h ON a.level = h.hl AND a.area_code = h.ha AND a.dt = h.hdt \
             LEFT JOIN {} p ON a.level = p.level AND a.area_code = p.area_code",
            previous_sql(has_previous)
        )
    } else {
        "area_day a \
         LEFT JOIN reporters_day r ON a.level = r.rl AND a.area_code = r.ra AND a.dt = r.rdt \
         LEFT JOIN hours_day h ON a.level = h.hl AND a.area_code = h.ha AND a.dt = h.hdt"
            .to_string()
    };
    format!(
        "SELECT {} FROM {joins} ORDER BY a.dt, a.level_rank, a.area_code",
        cols.join(", ")
    )
}
