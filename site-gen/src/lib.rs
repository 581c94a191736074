//! Site generation: the public zh-CN statistics site with daily bulletins,
//! and the internal dashboard, from the rollups in the lake.
//!
//! # Layout
//!
//! - [`load`]: reading rollups from the lake (I/O);
//! - [`model`]: rollups indexed by area and day;
//! - [`suppress`]: disclosure control for the public site;
//! - [`site`]: a build ([`build`]): disclosure control once, then each page
//!   kind of the audience, all pure;
//! - `pages`: one module per page kind (home, area, bulletin with archive
//!   and feed, downloads, methodology, quality, sitemap), each building a
//!   serializable page model, plus the pieces they share (`pages::common`:
//!   days, links, tables, figures, paths; `pages::charts`);
//! - [`templates`]: the minijinja templates (`templates/`) that render the
//!   models and hold every word of the site, the bulletin's sentences and
//!   the charts' titles and descriptions included;
//! - [`chart`]: accessible SVG charts;
//! - [`write_site`]: writing the files.
//!
//! ```
//! use gridstat_site_gen::{build, model::Rollups, templates::TEMPLATES, Error, SiteOptions};
//! // No rollups, no site.
//! let empty = build(&Rollups::default(), &SiteOptions::default());
//! assert!(matches!(empty, Err(Error::NoRollups)));
//! // Every word is in a template that `--templates DIR` can replace.
//! assert!(TEMPLATES.iter().any(|(name, _)| *name == "bulletin_text.html"));
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod chart;
pub mod error;
pub mod load;
pub mod model;
mod pages;
pub mod site;
pub mod suppress;
pub mod templates;
#[doc(hidden)]
pub mod testing;

use std::path::Path;

pub use error::{Error, Result};
pub use site::{build, Audience, OutputFile, SiteOptions};

/// Make `dir` hold exactly `files`: write those that are new or changed,
/// leave identical ones untouched (so a rebuild after one new day rewrites
/// few files and a static host's caches stay valid), and delete files a
/// previous build left that are no longer part of the site. Returns the
/// number of files written.
///
/// `dir` must be new, empty, or a directory this function wrote before
/// (it leaves a [`SITE_MARKER`] file there): a site build deletes what is
/// not part of the site, so it refuses a directory holding anything else.
/// Each file is written under a temporary name and renamed, so a web
/// server never serves half a page.
pub fn write_site(dir: &Path, files: &[OutputFile]) -> Result<usize> {
    // Paths hold area codes read from the lake: nothing may lead outside `dir`.
    if let Some(f) = files.iter().find(|f| !is_plain_relative(&f.path)) {
        return Err(Error::UnsafePath {
            path: f.path.clone(),
        });
    }
    let marker = dir.join(SITE_MARKER);
    if dir.exists() && !marker.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(write_error(dir))?
            .next()
            .is_none();
        if !empty {
            return Err(Error::ForeignDirectory {
                path: dir.display().to_string(),
                marker: SITE_MARKER,
            });
        }
    }
    let mut keep: std::collections::HashSet<std::path::PathBuf> =
        files.iter().map(|f| dir.join(&f.path)).collect();
    keep.insert(marker.clone());
    if dir.exists() {
        remove_stale(dir, &keep)?;
    }
    let dirs: std::collections::BTreeSet<&Path> = keep.iter().filter_map(|p| p.parent()).collect();
    for d in dirs {
        std::fs::create_dir_all(d).map_err(write_error(d))?;
    }
    if !marker.exists() {
        replace_file(&marker, MARKER_TEXT.as_bytes())?;
    }
    let written = site::parallel_map(files, |f| {
        let path = dir.join(&f.path);
        if std::fs::read(&path).is_ok_and(|old| old == f.bytes) {
            return Ok(0);
        }
        replace_file(&path, &f.bytes)?;
        Ok(1)
    })?;
    Ok(written.iter().sum())
}

/// Whether `path` is relative and made only of plain names (no `..`, no
/// root, no empty or hidden component).
fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty()
                && !part.starts_with('.')
                && !part.contains('\\')
                && !part.chars().any(char::is_control)
        })
}

/// The file that marks a directory as one `gridstat site` writes.
pub const SITE_MARKER: &str = ".gridstat-site";

const MARKER_TEXT: &str =
    "This directory is written by `gridstat site`: files that are not part of the site are deleted.\n";

/// Write `bytes` to `path` through a temporary file in the same
/// directory, renamed over it: readers see the old file or the new one.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, bytes).map_err(write_error(&temporary))?;
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        write_error(path)(e)
    })
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.display().to_string();
    move |source| Error::Write { path, source }
}

/// Delete files under `dir` not in `keep`, and directories left empty.
/// Symbolic links are removed like files, never followed.
fn remove_stale(dir: &Path, keep: &std::collections::HashSet<std::path::PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(write_error(dir))? {
        let entry = entry.map_err(write_error(dir))?;
        let path = entry.path();
        if entry.file_type().map_err(write_error(&path))?.is_dir() {
            remove_stale(&path, keep)?;
            if std::fs::read_dir(&path)
                .map_err(write_error(&path))?
                .next()
                .is_none()
            {
                std::fs::remove_dir(&path).map_err(write_error(&path))?;
            }
        } else if !keep.contains(&path) {
            std::fs::remove_file(&path).map_err(write_error(&path))?;
        }
    }
    Ok(())
}

/// Read template overrides (files named like the embedded ones) from `dir`.
pub fn read_template_overrides(dir: &Path) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for (name, _) in templates::TEMPLATES {
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
