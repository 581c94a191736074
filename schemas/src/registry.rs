//! The place registry: city → county → town → village/community → grid.
//!
//! A registry is a directory of five CSV files (UTF-8, header row, comma
//! separated), documented in `docs/registry.md`:
//!
//! | file | columns |
//! | --- | --- |
//! | `city.csv` | `city_code,city_name` (one row) |
//! | `counties.csv` | `county_code,county_name,city_code` |
//! | `towns.csv` | `town_code,town_name,county_code` |
//! | `villages.csv` | `village_code,village_name,town_code,urban_rural_code` |
//! | `grids.csv` | `grid_id,grid_name,village_code,households` |
//!
//! Jiangmen's registry is embedded in the binary ([`Registry::jiangmen`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why a registry could not be loaded. Every variant names the file, and a
/// parse error the line and column too.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The file could not be read.
    #[error("cannot read registry file {file}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The header row lacks a column.
    #[error("{file}:1: header lacks column `{column}` (expected columns: {expected})")]
    MissingColumn {
        /// The file.
        file: PathBuf,
        /// The missing column.
        column: String,
        /// All expected columns.
        expected: String,
    },
    /// A row could not be parsed.
    #[error("{file}:{line}: column `{column}`: {reason}")]
    Row {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The column name.
        column: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The file is empty or structurally wrong.
    #[error("{file}: {reason}")]
    File {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// `Result` with [`RegistryError`].
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// The city at the top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct City {
    /// 6-digit division code (江门市 440700).
    pub code: String,
    /// Name.
    pub name: String,
}

/// A county-level division (区 / 县级市).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct County {
    /// 6-digit division code.
    pub code: String,
    /// Name.
    pub name: String,
}

/// A town or street (镇 / 街道).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Town {
    /// 9-digit NBS statistical code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Index into [`Registry::counties`].
    pub county: usize,
}

/// A village or community (村 / 社区).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Village {
    /// 12-digit NBS statistical code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Index into [`Registry::towns`].
    pub town: usize,
    /// NBS urban/rural classification code (111 … 220).
    pub urban_rural_code: String,
}

/// A grid (网格), the smallest unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    /// Grid id (Jiangmen: village code + 2-digit number).
    pub id: String,
    /// Name.
    pub name: String,
    /// Index into [`Registry::villages`].
    pub village: usize,
    /// Index into [`Registry::towns`].
    pub town: usize,
    /// Index into [`Registry::counties`].
    pub county: usize,
    /// Registered households: the denominator of coverage.
    pub households: u32,
}

/// The whole hierarchy, with an index by grid id.
#[derive(Debug, Clone)]
pub struct Registry {
    /// The city.
    pub city: City,
    /// Counties, in file order.
    pub counties: Vec<County>,
    /// Towns, in file order.
    pub towns: Vec<Town>,
    /// Villages, in file order.
    pub villages: Vec<Village>,
    /// Grids, in file order.
    pub grids: Vec<Grid>,
    /// Looked up once or twice per ingested message: a fast hasher (the
    /// keys are the registry's own ids, so hash flooding is no concern).
    grid_index: GridIndex,
}

type GridIndex = HashMap<String, usize, foldhash::fast::FixedState>;

/// The CSV file names, in loading order.
pub const FILES: [&str; 5] = [
    "city.csv",
    "counties.csv",
    "towns.csv",
    "villages.csv",
    "grids.csv",
];

const JIANGMEN: [&str; 5] = [
    include_str!("../data/jiangmen/city.csv"),
    include_str!("../data/jiangmen/counties.csv"),
    include_str!("../data/jiangmen/towns.csv"),
    include_str!("../data/jiangmen/villages.csv"),
    include_str!("../data/jiangmen/grids.csv"),
];

impl Registry {
    /// The shipped Jiangmen registry (embedded).
    pub fn jiangmen() -> Registry {
        let files = FILES.map(|f| (PathBuf::from(format!("<embedded jiangmen>/{f}")), ""));
        let texts: [(PathBuf, &str); 5] =
            std::array::from_fn(|i| (files[i].0.clone(), JIANGMEN[i]));
        Self::from_texts(&texts).expect("the embedded Jiangmen registry is valid (tested)")
    }

    /// Load a registry directory.
    pub fn load_dir(dir: &Path) -> Result<Registry> {
        let mut texts = Vec::with_capacity(FILES.len());
        for f in FILES {
            let file = dir.join(f);
            let text = std::fs::read_to_string(&file).map_err(|source| RegistryError::Read {
                file: file.clone(),
                source,
            })?;
            texts.push((file, text));
        }
        let refs: [(PathBuf, &str); 5] =
            std::array::from_fn(|i| (texts[i].0.clone(), texts[i].1.as_str()));
        Self::from_texts(&refs)
    }

    fn from_texts(texts: &[(PathBuf, &str); 5]) -> Result<Registry> {
        let city_rows = read_rows(&texts[0].0, texts[0].1, &["city_code", "city_name"])?;
        let [city_row] = <[Row; 1]>::try_from(city_rows).map_err(|rows| RegistryError::File {
            file: texts[0].0.clone(),
            reason: format!("expected exactly one city row, found {}", rows.len()),
        })?;
        let city = City {
            code: city_row.get(0).to_string(),
            name: city_row.get(1).to_string(),
        };

        let mut counties = Vec::new();
        let mut county_idx = HashMap::new();
        for row in read_rows(
            &texts[1].0,
            texts[1].1,
            &["county_code", "county_name", "city_code"],
        )? {
            if row.get(2) != city.code {
                return Err(row.error(
                    2,
                    format!(
                        "unknown city {:?}; city.csv has {:?}",
                        row.get(2),
                        city.code
                    ),
                ));
            }
            row.unique(&mut county_idx, 0, counties.len())?;
            counties.push(County {
                code: row.get(0).into(),
                name: row.get(1).into(),
            });
        }

        let mut towns = Vec::new();
        let mut town_idx = HashMap::new();
        for row in read_rows(
            &texts[2].0,
            texts[2].1,
            &["town_code", "town_name", "county_code"],
        )? {
            let county = row.parent(&county_idx, 2, "counties.csv")?;
            row.unique(&mut town_idx, 0, towns.len())?;
            towns.push(Town {
                code: row.get(0).into(),
                name: row.get(1).into(),
                county,
            });
        }

        let mut villages = Vec::new();
        let mut village_idx = HashMap::new();
        for row in read_rows(
            &texts[3].0,
            texts[3].1,
            &[
                "village_code",
                "village_name",
                "town_code",
                "urban_rural_code",
            ],
        )? {
            let town = row.parent(&town_idx, 2, "towns.csv")?;
            row.unique(&mut village_idx, 0, villages.len())?;
            villages.push(Village {
                code: row.get(0).into(),
                name: row.get(1).into(),
                town,
                urban_rural_code: row.get(3).into(),
            });
        }

        let mut grids = Vec::new();
        let mut grid_index = GridIndex::default();
        for row in read_rows(
            &texts[4].0,
            texts[4].1,
            &["grid_id", "grid_name", "village_code", "households"],
        )? {
            let village = row.parent(&village_idx, 2, "villages.csv")?;
            row.unique(&mut grid_index, 0, grids.len())?;
            let households: u32 = row.get(3).parse().map_err(|_| {
                row.error(
                    3,
                    format!(
                        "expected a whole number of households (0 to {}), found {:?}",
                        u32::MAX,
                        row.get(3)
                    ),
                )
            })?;
            let town = villages[village].town;
            grids.push(Grid {
                id: row.get(0).into(),
                name: row.get(1).into(),
                village,
                town,
                county: towns[town].county,
                households,
            });
        }
        if grids.is_empty() {
            return Err(RegistryError::File {
                file: texts[4].0.clone(),
                reason: "no grids: a registry needs at least one".into(),
            });
        }
        Ok(Registry {
            city,
            counties,
            towns,
            villages,
            grids,
            grid_index,
        })
    }

    /// Look a grid up by id.
    pub fn grid(&self, id: &str) -> Option<&Grid> {
        self.grid_index.get(id).map(|&i| &self.grids[i])
    }

    /// A grid's position in [`Registry::grids`], by id.
    pub fn grid_position(&self, id: &str) -> Option<usize> {
        self.grid_index.get(id).copied()
    }

    /// The county of a grid.
    pub fn county_of(&self, grid: &Grid) -> &County {
        &self.counties[grid.county]
    }

    /// Registered households of the whole city.
    pub fn total_households(&self) -> u64 {
        self.grids.iter().map(|g| u64::from(g.households)).sum()
    }

    /// Write the registry as a directory of CSV files (the format it loads).
    pub fn write_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (name, text) in FILES.iter().zip(self.to_csv_texts()) {
            std::fs::write(dir.join(name), text)?;
        }
        Ok(())
    }

    /// The five CSV files' contents, in [`FILES`] order.
    pub fn to_csv_texts(&self) -> [String; 5] {
        let mut out: [String; 5] = Default::default();
        out[0] = format!(
            "city_code,city_name\n{},{}\n",
            csv_field(&self.city.code),
            csv_field(&self.city.name)
        );
        out[1] = "county_code,county_name,city_code\n".into();
        for c in &self.counties {
            out[1] += &format!(
                "{},{},{}\n",
                csv_field(&c.code),
                csv_field(&c.name),
                csv_field(&self.city.code)
            );
        }
        out[2] = "town_code,town_name,county_code\n".into();
        for t in &self.towns {
            out[2] += &format!(
                "{},{},{}\n",
                csv_field(&t.code),
                csv_field(&t.name),
                csv_field(&self.counties[t.county].code)
            );
        }
        out[3] = "village_code,village_name,town_code,urban_rural_code\n".into();
        for v in &self.villages {
            out[3] += &format!(
                "{},{},{},{}\n",
                csv_field(&v.code),
                csv_field(&v.name),
                csv_field(&self.towns[v.town].code),
                csv_field(&v.urban_rural_code)
            );
        }
        out[4] = "grid_id,grid_name,village_code,households\n".into();
        for g in &self.grids {
            out[4] += &format!(
                "{},{},{},{}\n",
                csv_field(&g.id),
                csv_field(&g.name),
                csv_field(&self.villages[g.village].code),
                g.households
            );
        }
        out
    }

    /// Assemble a registry from parts (used by the builder); checks nothing
    /// beyond building the grid index.
    pub fn from_parts(
        city: City,
        counties: Vec<County>,
        towns: Vec<Town>,
        villages: Vec<Village>,
        grids: Vec<Grid>,
    ) -> Registry {
        let grid_index = grids
            .iter()
            .enumerate()
            .map(|(i, g)| (g.id.clone(), i))
            .collect();
        Registry {
            city,
            counties,
            towns,
            villages,
            grids,
            grid_index,
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

struct Row {
    file: PathBuf,
    line: u64,
    columns: &'static [&'static str],
    values: Vec<String>,
}

impl Row {
    fn get(&self, i: usize) -> &str {
        &self.values[i]
    }

    fn error(&self, col: usize, reason: String) -> RegistryError {
        RegistryError::Row {
            file: self.file.clone(),
            line: self.line,
            column: self.columns[col].to_string(),
            reason,
        }
    }

    fn unique(
        &self,
        index: &mut HashMap<String, usize, impl std::hash::BuildHasher>,
        col: usize,
        position: usize,
    ) -> Result<()> {
        if index.insert(self.get(col).to_string(), position).is_some() {
            return Err(self.error(
                col,
                format!("duplicate code {:?}: codes must be unique", self.get(col)),
            ));
        }
        Ok(())
    }

    fn parent(
        &self,
        index: &HashMap<String, usize>,
        col: usize,
        parent_file: &str,
    ) -> Result<usize> {
        index
            .get(self.get(col))
            .copied()
            .ok_or_else(|| self.error(col, format!("{:?} is not in {parent_file}", self.get(col))))
    }
}

/// Longest code or grid id.
pub const MAX_ID_LEN: usize = 64;

/// Why `value` is not allowed in column `column`, if it is not. Codes and
/// grid ids become parts of object and page paths, so they are letters,
/// digits, `-` and `_` only (no separators, dots or spaces); no value may
/// hold a control character.
fn bad_value(column: &str, value: &str) -> Option<String> {
    let is_id = column.ends_with("_code") || column == "grid_id";
    if is_id {
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if value.len() > MAX_ID_LEN || !value.chars().all(allowed) {
            return Some(format!(
                "{value:?} is not a valid code: use 1 to {MAX_ID_LEN} ASCII letters, digits, `-` or `_`"
            ));
        }
    } else if value.chars().any(char::is_control) {
        return Some(format!("{value:?} holds a control character"));
    }
    None
}

fn read_rows(file: &Path, text: &str, columns: &'static [&'static str]) -> Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| RegistryError::File {
            file: file.into(),
            reason: format!("unreadable header row: {e}"),
        })?
        .clone();
    let positions: Vec<usize> = columns
        .iter()
        .map(|c| {
            headers
                .iter()
                .position(|h| h.trim_start_matches('\u{feff}') == *c)
                .ok_or_else(|| RegistryError::MissingColumn {
                    file: file.into(),
                    column: c.to_string(),
                    expected: columns.join(","),
                })
        })
        .collect::<Result<_>>()?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            RegistryError::Row {
                file: file.into(),
                line,
                column: "-".into(),
                reason: format!("unreadable CSV: {e}"),
            }
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let mut values = Vec::with_capacity(columns.len());
        for (&pos, col) in positions.iter().zip(columns) {
            let value = record.get(pos).unwrap_or("").trim();
            if value.is_empty() {
                return Err(RegistryError::Row {
                    file: file.into(),
                    line,
                    column: col.to_string(),
                    reason: "empty value; every column needs one".into(),
                });
            }
            if let Some(reason) = bad_value(col, value) {
                return Err(RegistryError::Row {
                    file: file.into(),
                    line,
                    column: col.to_string(),
                    reason,
                });
            }
            values.push(value.to_string());
        }
        rows.push(Row {
            file: file.into(),
            line,
            columns,
            values,
        });
    }
    Ok(rows)
}
