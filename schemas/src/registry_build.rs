//! Builds the shipped Jiangmen registry from public reference data
//! (`shared/data/jiangmen`: real towns and villages) plus synthetic grids.
//!
//! Grid lists are not public, so grids are made up, deterministically:
//! 台山市 406 and 开平市 475 grids (the article's figures); the other 2,073 of
//! the city's 2,954 are allotted to counties by estimated households. Within
//! a county every village/community gets one grid, the rest go by weight
//! (urban communities are denser than rural villages). Households are split
//! the same way so that county sums equal the census-derived estimates.

use std::path::Path;

use crate::registry::{City, County, Grid, Registry, RegistryError, Result, Town, Village};

/// Grids city-wide (seed article: 江门重新划分2954个智慧网格).
pub const JIANGMEN_GRIDS: u32 = 2954;

/// Per county: code, name, estimated households (2020 census household
/// share × average size; see `shared/data/jiangmen/README.md`), and the grid
/// count when the article gives it.
pub const JIANGMEN_COUNTIES: [(&str, &str, u32, Option<u32>); 7] = [
    ("440703", "蓬江区", 285_000, None),
    ("440704", "江海区", 116_000, None),
    ("440705", "新会区", 309_000, None),
    ("440781", "台山市", 310_000, Some(406)),
    ("440783", "开平市", 247_000, Some(475)),
    ("440784", "鹤山市", 188_000, None),
    ("440785", "恩平市", 152_000, None),
];

/// Statistical units that get no grid (a prison has no households to visit).
pub const TOWNS_WITHOUT_GRIDS: [&str; 1] = ["440784401"];

/// Build the registry from the reference directory (`towns.csv`, `villages.csv`).
pub fn build_jiangmen(reference: &Path) -> Result<Registry> {
    let city = City {
        code: "440700".into(),
        name: "江门市".into(),
    };
    let counties: Vec<County> = JIANGMEN_COUNTIES
        .iter()
        .map(|(c, n, _, _)| County {
            code: (*c).into(),
            name: (*n).into(),
        })
        .collect();
    let towns_text = read(&reference.join("towns.csv"))?;
    let villages_text = read(&reference.join("villages.csv"))?;

    let mut towns = Vec::new();
    let mut rdr = csv::Reader::from_reader(towns_text.as_bytes());
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| bad(reference, "towns.csv", i, &e.to_string()))?;
        let county = counties
            .iter()
            .position(|c| c.code == rec[2])
            .ok_or_else(|| bad(reference, "towns.csv", i, "unknown county_code"))?;
        towns.push(Town {
            code: rec[0].into(),
            name: rec[1].into(),
            county,
        });
    }
    let mut villages = Vec::new();
    let mut rdr = csv::Reader::from_reader(villages_text.as_bytes());
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| bad(reference, "villages.csv", i, &e.to_string()))?;
        let town = towns
            .iter()
            .position(|t| t.code == rec[2])
            .ok_or_else(|| bad(reference, "villages.csv", i, "unknown town_code"))?;
        villages.push(Village {
            code: rec[0].into(),
            name: rec[1].into(),
            town,
            urban_rural_code: rec[3].into(),
        });
    }

    let grids_per_county = county_grid_counts();
    let mut grids = Vec::new();
    for (ci, &(_, _, households, _)) in JIANGMEN_COUNTIES.iter().enumerate() {
        let members: Vec<usize> = (0..villages.len())
            .filter(|&v| {
                towns[villages[v].town].county == ci
                    && !TOWNS_WITHOUT_GRIDS.contains(&towns[villages[v].town].code.as_str())
            })
            .collect();
        let weights: Vec<f64> = members
            .iter()
            .map(|&v| village_weight(&villages[v].urban_rural_code))
            .collect();
        let extra = grids_per_county[ci] - members.len() as u64;
        let grid_counts: Vec<u64> = largest_remainder(extra, &weights)
            .into_iter()
            .map(|n| n + 1)
            .collect();
        let hh_counts = largest_remainder(u64::from(households), &weights);
        for ((&v, &n), &hh) in members.iter().zip(&grid_counts).zip(&hh_counts) {
            let village = &villages[v];
            let short = short_village_name(&village.name);
            let split = largest_remainder(hh, &vec![1.0; n as usize]);
            for (k, &g_hh) in split.iter().enumerate() {
                grids.push(Grid {
                    id: format!("{}{:02}", village.code, k + 1),
                    name: format!("{short}第{}网格", k + 1),
                    village: v,
                    town: village.town,
                    county: ci,
                    households: u32::try_from(g_hh)
                        .expect("a grid has far fewer than 4e9 households"),
                });
            }
        }
    }
    Ok(Registry::from_parts(city, counties, towns, villages, grids))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
        file: path.into(),
        source,
    })
}

fn bad(dir: &Path, file: &str, record: usize, reason: &str) -> RegistryError {
    RegistryError::Row {
        file: dir.join(file),
        line: record as u64 + 2,
        column: "-".into(),
        reason: reason.into(),
    }
}

/// Grids per county: fixed where the article says, the rest by households.
fn county_grid_counts() -> Vec<u64> {
    let fixed: u64 = JIANGMEN_COUNTIES
        .iter()
        .filter_map(|c| c.3)
        .map(u64::from)
        .sum();
    let free: Vec<f64> = JIANGMEN_COUNTIES
        .iter()
        .map(|c| if c.3.is_some() { 0.0 } else { f64::from(c.2) })
        .collect();
    let shares = largest_remainder(u64::from(JIANGMEN_GRIDS) - fixed, &free);
    JIANGMEN_COUNTIES
        .iter()
        .zip(shares)
        .map(|(c, s)| c.3.map_or(s, u64::from))
        .collect()
}

/// Relative household density by NBS urban/rural code.
fn village_weight(urban_rural_code: &str) -> f64 {
    match urban_rural_code {
        "111" => 3.0,
        "112" | "121" => 2.0,
        "122" => 1.5,
        "123" => 0.5,
        _ => 1.0,
    }
}

fn short_village_name(name: &str) -> String {
    let rules: [(&str, &str); 5] = [
        ("社区居委会", "社区"),
        ("村委会", "村"),
        ("居委会", "社区"),
        ("虚拟生活区", "生活区"),
        ("虚拟社区", "社区"),
    ];
    rules
        .iter()
        .find_map(|(suffix, with)| {
            name.strip_suffix(suffix)
                .map(|rest| format!("{rest}{with}"))
        })
        .unwrap_or_else(|| name.to_string())
}

/// Split `total` into integers proportional to `weights` (Hamilton's method,
/// ties broken by position so the result is deterministic).
pub fn largest_remainder(total: u64, weights: &[f64]) -> Vec<u64> {
    let sum: f64 = weights.iter().sum();
    if weights.is_empty() || sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let quotas: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut out: Vec<u64> = quotas.iter().map(|q| q.floor() as u64).collect();
    let given: u64 = out.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let ra = quotas[a] - quotas[a].floor();
        let rb = quotas[b] - quotas[b].floor();
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in order
        .iter()
        .cycle()
        .take(total.saturating_sub(given) as usize)
    {
        out[i] += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_remainder_sums_exactly() {
        let parts = largest_remainder(10, &[1.0, 1.0, 1.0]);
        assert_eq!(parts.iter().sum::<u64>(), 10);
        assert_eq!(parts, vec![4, 3, 3]);
    }

    #[test]
    fn county_grids_sum_to_city() {
        let counts = county_grid_counts();
        assert_eq!(counts.iter().sum::<u64>(), u64::from(JIANGMEN_GRIDS));
        assert_eq!(counts[3], 406);
        assert_eq!(counts[4], 475);
    }

    #[test]
    fn short_names() {
        assert_eq!(short_village_name("羊桥社区居委会"), "羊桥社区");
        assert_eq!(short_village_name("大江村委会"), "大江村");
        assert_eq!(short_village_name("中兴社区"), "中兴社区");
    }
}
