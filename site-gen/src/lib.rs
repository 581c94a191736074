//! Site generation: the public zh-CN statistics site with daily bulletins,
//! and the internal dashboard, from the rollups in the lake.
//!
//! # Layout
//!
//! - [`load`]: reading rollups from the lake (I/O);
//! - [`model`]: rollups indexed by area and day;
//! - [`suppress`]: disclosure control for the public site;
//! - [`chart`]: accessible SVG charts; [`render`]: pages (pure);
//! - [`write_site`]: writing the files.
//!
//! ```
//! use gridstat_site_gen::suppress::PUBLIC_METRICS;
//! assert!(PUBLIC_METRICS.iter().any(|m| m.key == "households_visited"));
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod chart;
pub mod error;
pub mod load;
pub mod model;
pub mod render;
pub mod suppress;

use std::path::Path;

pub use error::{Error, Result};
pub use render::{build, Audience, OutputFile, SiteOptions};

/// Write `files` under `dir`, replacing what a previous build left there.
pub fn write_site(dir: &Path, files: &[OutputFile]) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|source| Error::Write {
            path: dir.display().to_string(),
            source,
        })?;
    }
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Write {
                path: parent.display().to_string(),
                source,
            })?;
        }
        std::fs::write(&path, &f.bytes).map_err(|source| Error::Write {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

/// Read template overrides (files named like the embedded ones) from `dir`.
pub fn read_template_overrides(dir: &Path) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for (name, _) in render::TEMPLATES {
        let path = dir.join(name);
        if path.exists() {
            let body = std::fs::read_to_string(&path).map_err(|source| Error::ReadTemplate {
                path: path.display().to_string(),
                source,
            })?;
            out.insert((*name).to_string(), body);
        }
    }
    Ok(out)
}
