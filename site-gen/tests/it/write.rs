//! Writing a site: only into a directory of its own, only what changed.

use gridstat_site_gen::{write_site, Error, OutputFile, SITE_MARKER};

fn file(path: &str, body: &str) -> OutputFile {
    OutputFile {
        path: path.into(),
        bytes: body.as_bytes().to_vec(),
    }
}

/// A directory with files of its own is never emptied into a site;
/// a new or empty one is taken, and no temporary file is left behind.
#[test]
fn a_directory_gridstat_did_not_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("thesis.docx"), "years of work").unwrap();
    let err = write_site(&home, &[file("index.html", "a")]).unwrap_err();
    assert!(
        err.to_string().contains("not made by `gridstat site`"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(home.join("thesis.docx")).unwrap(),
        "years of work"
    );
    assert!(!home.join("index.html").exists());

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_eq!(write_site(&empty, &[file("index.html", "a")]).unwrap(), 1);
    let names: Vec<String> = std::fs::read_dir(&empty)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

/// An area code in the lake such as `../..` cannot lead a page out of
/// the site's directory.
#[test]
fn paths_leading_out_of_the_site_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("site");
    for bad in [
        "town/../../escape.html",
        "/etc/passwd",
        "town//index.html",
        "town/.hidden/index.html",
        "town\\..\\x.html",
        "",
    ] {
        let err = write_site(&out, &[file(bad, "x")]).unwrap_err();
        assert!(matches!(err, Error::UnsafePath { .. }), "{bad}: {err}");
    }
    assert!(!dir.path().join("escape.html").exists());
    assert!(!out.exists(), "nothing written");
}

#[test]
fn rebuild_writes_only_changes_and_removes_stale_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("site");
    let first = [file("index.html", "a"), file("town/1/index.html", "b")];
    assert_eq!(write_site(&out, &first).unwrap(), 2);
    assert_eq!(write_site(&out, &first).unwrap(), 0);
    assert!(
        out.join(SITE_MARKER).exists(),
        "the site's directory is marked"
    );
    let second = [file("index.html", "a2"), file("county/9/index.html", "c")];
    assert_eq!(write_site(&out, &second).unwrap(), 2);
    assert_eq!(
        std::fs::read_to_string(out.join("index.html")).unwrap(),
        "a2"
    );
    assert!(
        !out.join("town").exists(),
        "stale page and its directory removed"
    );
    assert!(out.join("county/9/index.html").exists());

    // A link to a directory elsewhere is removed, not emptied.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("keep.txt"), "x").unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("link")).unwrap();
    write_site(&out, &second).unwrap();
    assert!(!out.join("link").exists());
    assert!(elsewhere.join("keep.txt").exists());
}
