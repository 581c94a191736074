//! The methodology page (public site): how the figures are made. All of
//! it is words, in `methodology.html`; the threshold it names comes with
//! every page.

use serde::Serialize;

use super::Site;
use crate::error::Result;
use crate::site::OutputFile;

/// The methodology page's model: nothing beyond what every page gets.
#[derive(Debug, Serialize)]
pub(crate) struct MethodologyPage {}

/// The methodology page.
pub(crate) fn pages(site: &Site<'_>) -> Result<Vec<OutputFile>> {
    let page = site.render(
        "methodology.html",
        "methodology/index.html",
        &MethodologyPage {},
    )?;
    Ok(vec![page])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::fixture;
    use crate::site::Audience;

    #[test]
    fn the_methodology_names_the_threshold() {
        let rollups = fixture::rollups();
        let opts = crate::site::SiteOptions {
            threshold: 7,
            ..fixture::options(Audience::Public)
        };
        let site = Site::new(&rollups, &opts).unwrap();
        let page = pages(&site).unwrap().remove(0);
        let html = String::from_utf8(page.bytes).unwrap();
        assert_eq!(page.path, "methodology/index.html");
        assert!(html.contains("小于7的数值显示为“&lt;7”"), "{html}");
    }
}
