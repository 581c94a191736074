//! A golden bulletin: the text of one day's public bulletin page, a
//! paragraph, heading or table cell a line.

use gridstat_site_gen::Audience;

use crate::{site, text};

/// The text a reader sees of `html`: every element's text on a line of
/// its own (the `<head>` and charts left out), entities decoded.
fn visible_text(html: &str) -> String {
    let body = &html[html.find("<body>").unwrap_or(0)..];
    let mut out = String::new();
    let mut rest = body;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        out.push('\n');
        let tag = &rest[start..];
        let skip = ["<svg", "<script", "<style"]
            .iter()
            .find(|t| tag.starts_with(**t))
            .map(|t| format!("</{}>", &t[1..]));
        let end = match skip {
            Some(close) => tag.find(&close).map(|e| e + close.len()),
            None => tag.find('>').map(|e| e + 1),
        };
        rest = &tag[end.unwrap_or(tag.len())..];
    }
    out.push_str(rest);
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#x27;", "'")
                .replace("&#x2f;", "/")
                .replace("&amp;", "&")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn golden_bulletin_of_the_last_day() {
    let site = site(Audience::Public);
    let page = text(&site, "bulletins/2022-11-27/index.html");
    insta::assert_snapshot!("bulletin_2022_11_27", visible_text(page));
}
