//! Per-device credentials: the device table, its tokens and areas (pure).
//!
//! A device is one reporter's phone. It holds a random token (256 bits from
//! the OS generator, shown once when the device is added); the table keeps
//! only the token's SHA-256, which is enough for a random token (nothing to
//! guess, so no slow hash is needed). A device may submit only messages
//! whose reporter (`reporter_id` of a visit, `handler_id` of a case update)
//! is its reporter and whose grid lies in its area: a list of grids, or
//! every grid of a village, town or county.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use gridstat_schemas::Registry;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Prefix of every device token, so a leaked one is easy to recognise.
pub const TOKEN_PREFIX: &str = "gst_";
/// Random bytes in a token (256 bits).
pub const TOKEN_BYTES: usize = 32;
/// Version of the device-table format.
pub const TABLE_VERSION: u32 = 1;

/// Where a device may submit for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    /// These grids.
    Grids(Vec<String>),
    /// Every grid of this village or community (12-digit code).
    Village(String),
    /// Every grid of this town or street (9-digit code).
    Town(String),
    /// Every grid of this county-level division (6-digit code).
    County(String),
}

impl Area {
    /// Check that every code is in `registry`.
    pub fn check(&self, registry: &Registry) -> Result<()> {
        match resolve(self, registry) {
            Ok(_) => Ok(()),
            Err((flag, code)) => Err(Error::UnknownArea { flag, code }),
        }
    }
}

impl std::fmt::Display for Area {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Area::Grids(g) => write!(f, "grids {}", g.join(",")),
            Area::Village(c) => write!(f, "village {c}"),
            Area::Town(c) => write!(f, "town {c}"),
            Area::County(c) => write!(f, "county {c}"),
        }
    }
}

/// One device in the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Random id (`dev_` and 16 hex digits), for listing and revoking.
    pub id: String,
    /// The reporter (or case handler) id the device submits as.
    pub reporter_id: String,
    /// Where it may submit for.
    pub area: Area,
    /// SHA-256 of the token, hex.
    pub token_sha256: String,
    /// When it was added.
    pub created_at: DateTime<FixedOffset>,
    /// When it was revoked; a revoked device is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<FixedOffset>>,
}

/// The device table, as stored (one JSON object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceTable {
    /// Format version ([`TABLE_VERSION`]).
    pub version: u32,
    /// Every device ever added, revoked ones included.
    pub devices: Vec<Device>,
}

impl Default for DeviceTable {
    fn default() -> Self {
        Self {
            version: TABLE_VERSION,
            devices: Vec::new(),
        }
    }
}

/// A device token. Its `Debug` hides it; [`Token::expose`] shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A new random token from the OS generator.
    pub fn generate() -> Result<Token> {
        let bytes = random_bytes::<TOKEN_BYTES>()?;
        Ok(Token(format!("{TOKEN_PREFIX}{}", hex::encode(bytes))))
    }

    /// The token's text, to print once or to send.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Random)?;
    Ok(bytes)
}

/// SHA-256 of a token.
pub fn token_digest(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

impl DeviceTable {
    /// Parse a stored table.
    pub fn from_json(bytes: &[u8], location: &str) -> Result<Self> {
        let table: Self =
            serde_json::from_slice(bytes).map_err(|source| Error::DeviceTableFormat {
                location: location.into(),
                source,
            })?;
        if table.version != TABLE_VERSION {
            return Err(Error::Config(format!(
                "device table {location} has version {}; this build reads version {TABLE_VERSION}",
                table.version
            )));
        }
        Ok(table)
    }

    /// The stored form (pretty JSON, one device per few lines).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a device table serializes");
        out.push(b'\n');
        out
    }

    /// Add a device for `reporter_id` in `area`; returns it and its token
    /// (the only time the token is seen).
    pub fn add(
        &mut self,
        reporter_id: &str,
        area: Area,
        registry: &Registry,
        now: DateTime<FixedOffset>,
    ) -> Result<(Device, Token)> {
        let reporter_id = reporter_id.trim();
        if reporter_id.is_empty() || reporter_id.len() > 128 {
            return Err(Error::InvalidDevice {
                field: "--reporter",
                reason: "expected an id of 1 to 128 bytes, as the messages carry it".into(),
            });
        }
        if matches!(&area, Area::Grids(g) if g.is_empty()) {
            return Err(Error::InvalidDevice {
                field: "--grids",
                reason: "name at least one grid".into(),
            });
        }
        area.check(registry)?;
        let token = Token::generate()?;
        let device = Device {
            id: format!("dev_{}", hex::encode(random_bytes::<8>()?)),
            reporter_id: reporter_id.into(),
            area,
            token_sha256: hex::encode(token_digest(token.expose())),
            created_at: now,
            revoked_at: None,
        };
        self.devices.push(device.clone());
        Ok((device, token))
    }

    /// Revoke device `id` (revoking twice keeps the first time).
    pub fn revoke(&mut self, id: &str, now: DateTime<FixedOffset>) -> Result<&Device> {
        let device = self
            .devices
            .iter_mut()
            .find(|d| d.id == id)
            .ok_or_else(|| Error::NoSuchDevice { id: id.into() })?;
        device.revoked_at.get_or_insert(now);
        Ok(device)
    }
}

/// The grids an area covers, resolved against a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AreaMatch {
    Grids(HashSet<usize>),
    Village(usize),
    Town(usize),
    County(usize),
}

/// The area's registry positions, or the flag and code that is not there.
fn resolve(area: &Area, registry: &Registry) -> Result<AreaMatch, (&'static str, String)> {
    let find = |flag, code: &str, pos: Option<usize>| pos.ok_or((flag, code.to_string()));
    Ok(match area {
        Area::Grids(ids) => AreaMatch::Grids(
            ids.iter()
                .map(|id| find("--grids", id, registry.grid_position(id)))
                .collect::<Result<_, _>>()?,
        ),
        Area::Village(code) => AreaMatch::Village(find(
            "--village",
            code,
            registry.villages.iter().position(|v| &v.code == code),
        )?),
        Area::Town(code) => AreaMatch::Town(find(
            "--town",
            code,
            registry.towns.iter().position(|t| &t.code == code),
        )?),
        Area::County(code) => AreaMatch::County(find(
            "--county",
            code,
            registry.counties.iter().position(|c| &c.code == code),
        )?),
    })
}

/// An active device, ready to check submissions against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// The device's id (logged; never the token).
    pub device_id: String,
    /// The reporter it submits as.
    pub reporter_id: String,
    area: AreaMatch,
}

impl Authorized {
    /// Whether the grid at `grid` (a [`Registry::grids`] position) is in the area.
    pub fn covers(&self, registry: &Registry, grid: usize) -> bool {
        let Some(g) = registry.grids.get(grid) else {
            return false;
        };
        match &self.area {
            AreaMatch::Grids(set) => set.contains(&grid),
            AreaMatch::Village(v) => g.village == *v,
            AreaMatch::Town(t) => g.town == *t,
            AreaMatch::County(c) => g.county == *c,
        }
    }
}

/// The active devices of a table by token digest.
#[derive(Debug, Default)]
pub struct DeviceIndex {
    by_digest: HashMap<[u8; 32], Arc<Authorized>>,
}

impl DeviceIndex {
    /// Index the table's active devices. A device whose area is no longer
    /// in the registry (or whose digest is unreadable) is left out, with a
    /// warning: it can submit nothing.
    pub fn build(table: &DeviceTable, registry: &Registry) -> Self {
        let mut by_digest = HashMap::new();
        for d in table.devices.iter().filter(|d| d.revoked_at.is_none()) {
            let digest = hex::decode(&d.token_sha256)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok());
            match (digest, resolve(&d.area, registry)) {
                (Some(digest), Ok(area)) => {
                    let device = Authorized {
                        device_id: d.id.clone(),
                        reporter_id: d.reporter_id.clone(),
                        area,
                    };
                    by_digest.insert(digest, Arc::new(device));
                }
                (None, _) => {
                    tracing::warn!(device = %d.id, "Device has an unreadable token digest; it is refused.")
                }
                (_, Err((flag, code))) => {
                    tracing::warn!(device = %d.id, flag, code, "Device's area is not in the registry; it is refused.")
                }
            }
        }
        Self { by_digest }
    }

    /// The device holding `token`, if it is active.
    pub fn authenticate(&self, token: &str) -> Option<Arc<Authorized>> {
        self.by_digest.get(&token_digest(token)).cloned()
    }

    /// How many devices are active.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// Whether no device is active.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<FixedOffset> {
        gridstat_schemas::time::local_midnight(
            chrono::NaiveDate::from_ymd_opt(2022, 11, 25).unwrap(),
        )
    }

    #[test]
    fn tokens_are_random_256_bit_and_stored_only_as_digests() {
        let registry = Registry::jiangmen();
        let grid = registry.grids[0].id.clone();
        let mut table = DeviceTable::default();
        let (a, ta) = table
            .add("rp-1", Area::Grids(vec![grid.clone()]), &registry, now())
            .unwrap();
        let (b, tb) = table
            .add("rp-2", Area::Grids(vec![grid]), &registry, now())
            .unwrap();
        assert_ne!(ta, tb);
        assert_ne!(a.id, b.id);
        assert_eq!(ta.expose().len(), TOKEN_PREFIX.len() + 2 * TOKEN_BYTES);
        assert_eq!(format!("{ta:?}"), "Token(…)");
        let stored = String::from_utf8(table.to_json()).unwrap();
        assert!(!stored.contains(ta.expose()) && !stored.contains(&ta.expose()[4..]));
        let back = DeviceTable::from_json(stored.as_bytes(), "t").unwrap();
        assert_eq!(back, table);
        let index = DeviceIndex::build(&back, &registry);
        assert_eq!(index.authenticate(ta.expose()).unwrap().reporter_id, "rp-1");
        assert!(index.authenticate("gst_00").is_none());
    }

    #[test]
    fn areas_cover_their_grids_only() {
        let registry = Registry::jiangmen();
        let g0 = &registry.grids[0];
        let other = registry
            .grids
            .iter()
            .position(|g| g.county != g0.county)
            .unwrap();
        let village = registry.villages[g0.village].code.clone();
        let town = registry.towns[g0.town].code.clone();
        let county = registry.counties[g0.county].code.clone();
        let mut table = DeviceTable::default();
        for area in [
            Area::Grids(vec![g0.id.clone()]),
            Area::Village(village),
            Area::Town(town),
            Area::County(county),
        ] {
            let (_, token) = table.add("rp", area, &registry, now()).unwrap();
            let index = DeviceIndex::build(&table, &registry);
            let device = index.authenticate(token.expose()).unwrap();
            assert!(device.covers(&registry, 0));
            assert!(!device.covers(&registry, other));
        }
        let err = table
            .add("rp", Area::Town("440799999".into()), &registry, now())
            .unwrap_err();
        assert!(err.to_string().contains("--town \"440799999\""), "{err}");
    }

    #[test]
    fn revoked_devices_are_not_indexed() {
        let registry = Registry::jiangmen();
        let mut table = DeviceTable::default();
        let county = registry.counties[0].code.clone();
        let (device, token) = table
            .add("rp", Area::County(county), &registry, now())
            .unwrap();
        table.revoke(&device.id, now()).unwrap();
        assert!(DeviceIndex::build(&table, &registry)
            .authenticate(token.expose())
            .is_none());
        assert!(matches!(
            table.revoke("dev_x", now()),
            Err(Error::NoSuchDevice { .. })
        ));
    }
}
