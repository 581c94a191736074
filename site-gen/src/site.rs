//! A site build: options, the page kinds of each audience, and the files
//! they make. Pure: the same rollups and options always give the same
//! bytes (no build timestamps).

use std::collections::BTreeMap;

use crate::error::Result;
use crate::model::Rollups;
use crate::pages::{self, Site};
use crate::templates::STYLE_CSS;

/// Who a site is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The public site: city, county and town figures, suppressed.
    Public,
    /// Leadership's dashboard: everything, grid pages, data quality.
    Internal,
}

impl Audience {
    /// The name templates see.
    pub fn name(self) -> &'static str {
        match self {
            Audience::Public => "public",
            Audience::Internal => "internal",
        }
    }
}

/// Options of a site build.
#[derive(Debug, Clone)]
pub struct SiteOptions {
    /// Public or internal.
    pub audience: Audience,
    /// Counts below this are withheld on the public site.
    pub threshold: u32,
    /// Absolute URL the public site is served at (feed and sitemap), ending in `/`.
    pub base_url: String,
    /// Templates overriding the embedded ones, by file name.
    pub template_overrides: BTreeMap<String, String>,
    /// Hours after which an open case is overdue on the internal
    /// dashboard's lists: a hazard or a hardship of normal urgency
    /// (aggregate's `--overdue-hours`).
    pub overdue_hours: u32,
    /// The same for urgent hardships (`--urgent-overdue-hours`).
    pub urgent_overdue_hours: u32,
    /// The same for hardships of low urgency (`--low-overdue-hours`).
    pub low_overdue_hours: u32,
}

impl SiteOptions {
    /// The overdue limit of a case of `urgency` (a wire name; none for
    /// hazards), in hours.
    pub fn overdue_limit(&self, urgency: Option<&str>) -> u32 {
        match urgency {
            Some("urgent") => self.urgent_overdue_hours,
            Some("low") => self.low_overdue_hours,
            _ => self.overdue_hours,
        }
    }
}

impl Default for SiteOptions {
    fn default() -> Self {
        Self {
            audience: Audience::Public,
            threshold: 5,
            base_url: "http://127.0.0.1:8000/".into(),
            template_overrides: BTreeMap::new(),
            overdue_hours: 72,
            urgent_overdue_hours: 24,
            low_overdue_hours: 168,
        }
    }
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Path relative to the output directory.
    pub path: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// The files a page kind makes from the site's input.
type PageKind = fn(&Site<'_>) -> Result<Vec<OutputFile>>;

/// The public site's page kinds; the sitemap, which lists them, comes last.
const PUBLIC_PAGES: &[PageKind] = &[
    pages::home::pages,
    pages::area::pages,
    pages::bulletin::pages,
    pages::methodology::pages,
    pages::downloads::pages,
];

/// The internal dashboard's page kinds.
const INTERNAL_PAGES: &[PageKind] = &[
    pages::home::pages,
    pages::area::pages,
    pages::quality::pages,
];

/// Build a whole site: disclosure control once, then every page kind of
/// the audience. Files are sorted by path.
pub fn build(r: &Rollups, opts: &SiteOptions) -> Result<Vec<OutputFile>> {
    let site = Site::new(r, opts)?;
    let mut out = vec![OutputFile {
        path: "style.css".into(),
        bytes: STYLE_CSS.as_bytes().to_vec(),
    }];
    let kinds = match opts.audience {
        Audience::Public => PUBLIC_PAGES,
        Audience::Internal => INTERNAL_PAGES,
    };
    for kind in kinds {
        out.extend(kind(&site)?);
    }
    if opts.audience == Audience::Public {
        let sitemap = pages::sitemap::page(&site, &out)?;
        out.push(sitemap);
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// `f` over `items` on every core, results in input order; an error stops
/// the work and is returned (one of them, if several items fail).
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    parallel_map_with(items, || Ok(()), |(), item| f(item))
}

/// A block of results: its index among the blocks, then its items' results.
type Block<R> = (usize, Vec<R>);

/// [`parallel_map`] with a working state per thread, made by `init` on the
/// thread: for what is costly to make for each item and cannot be shared
/// between threads.
///
/// Threads take small blocks of items in turn rather than a fixed share
/// each: pages differ in cost (a county's desk against a grid's page), and
/// a fixed share leaves one core idle while the other finishes.
pub(crate) fn parallel_map_with<T: Sync, S, R: Send>(
    items: &[T],
    init: impl Fn() -> Result<S> + Sync,
    f: impl Fn(&mut S, &T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const BLOCK: usize = 8;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let blocks = items.len().div_ceil(BLOCK);
    if blocks == 0 {
        return Ok(Vec::new());
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let run = || -> Result<Vec<Block<R>>> {
        let mut state = init().inspect_err(|_| failed.store(true, Ordering::Relaxed))?;
        let mut done = Vec::new();
        loop {
            let block = next.fetch_add(1, Ordering::Relaxed);
            if block >= blocks || failed.load(Ordering::Relaxed) {
                return Ok(done);
            }
            let part = &items[block * BLOCK..((block + 1) * BLOCK).min(items.len())];
            let results: Result<Vec<R>> = part.iter().map(|item| f(&mut state, item)).collect();
            match results {
                Ok(results) => done.push((block, results)),
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
    };
    let parts: Vec<Result<Vec<Block<R>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.min(blocks)).map(|_| scope.spawn(run)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut done = Vec::with_capacity(blocks);
    for part in parts {
        done.extend(part?);
    }
    done.sort_unstable_by_key(|(block, _)| *block);
    let mut out = Vec::with_capacity(items.len());
    for (_, results) in done {
        out.extend(results);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn parallel_results_keep_the_input_order() {
        let items: Vec<usize> = (0..1000).collect();
        let doubled = parallel_map(&items, |&i| Ok(i * 2)).unwrap();
        assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(parallel_map(&[] as &[usize], |&i| Ok(i))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_failing_item_fails_the_map() {
        let items: Vec<usize> = (0..100).collect();
        let err = parallel_map(&items, |&i| {
            if i == 57 {
                Err(Error::NoRollups)
            } else {
                Ok(i)
            }
        })
        .unwrap_err();
        assert!(matches!(err, Error::NoRollups));
    }
}
