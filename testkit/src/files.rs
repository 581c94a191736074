//! Files under a directory, for tests that compare what two runs wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file under `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("a readable directory") {
            let p = e.expect("a directory entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every file under `dir` with its bytes, keyed by its path relative to `dir`.
pub fn file_contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("a readable file");
            let relative = p.strip_prefix(dir).expect("under dir").display();
            (relative.to_string(), bytes)
        })
        .collect()
}
