//! The sitemap (public site): every page of the site, for search engines.

use serde::Serialize;

use super::Site;
use crate::error::Result;
use crate::site::OutputFile;

/// The sitemap's model.
#[derive(Debug, Serialize)]
pub(crate) struct Sitemap {
    /// Each page's directory from the site's root (`""` for the home page), sorted.
    pub(crate) urls: Vec<String>,
}

/// The sitemap's model: the pages among `files`.
pub(crate) fn model(files: &[OutputFile]) -> Sitemap {
    let mut urls: Vec<String> = files
        .iter()
        .filter_map(|f| f.path.strip_suffix("index.html"))
        .map(str::to_string)
        .collect();
    urls.sort();
    Sitemap { urls }
}

/// The sitemap of the pages among `files`.
pub(crate) fn page(site: &Site<'_>, files: &[OutputFile]) -> Result<OutputFile> {
    site.render("sitemap.xml", "sitemap.xml", &model(files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sitemap_lists_page_directories_only() {
        let file = |path: &str| OutputFile {
            path: path.into(),
            bytes: Vec::new(),
        };
        let files = [
            file("town/1/index.html"),
            file("index.html"),
            file("data/all.csv"),
            file("style.css"),
        ];
        assert_eq!(model(&files).urls, ["", "town/1/"]);
    }
}
