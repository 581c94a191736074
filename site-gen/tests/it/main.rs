//! Site generation tested alone through its public API: both audiences'
//! sites built from the small in-memory rollups of
//! `gridstat_site_gen::testing`, and written to temporary directories.

mod disclosure;
mod golden;
mod pages;
mod write;

use gridstat_site_gen::{build, testing, Audience, OutputFile};

/// The site of the fixture for `audience`.
fn site(audience: Audience) -> Vec<OutputFile> {
    build(&testing::rollups(), &testing::options(audience)).unwrap()
}

/// A file of `site` as text.
fn text<'a>(site: &'a [OutputFile], path: &str) -> &'a str {
    let file = site.iter().find(|f| f.path == path).expect(path);
    std::str::from_utf8(&file.bytes).expect("text")
}
