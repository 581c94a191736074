//! The shipped registry's totals, and errors that name file, line and column.

use std::path::Path;

use gridstat_schemas::registry::{RegistryError, FILES};
use gridstat_schemas::Registry;

#[test]
fn jiangmen_totals() {
    let r = Registry::jiangmen();
    assert_eq!(r.city.code, "440700");
    assert_eq!(r.counties.len(), 7);
    assert_eq!(r.grids.len(), 2954);
    let grids_in = |code: &str| {
        r.grids
            .iter()
            .filter(|g| r.counties[g.county].code == code)
            .count()
    };
    assert_eq!(grids_in("440781"), 406, "台山市");
    assert_eq!(grids_in("440783"), 475, "开平市");
    let households_in = |code: &str| -> u64 {
        r.grids
            .iter()
            .filter(|g| r.counties[g.county].code == code)
            .map(|g| u64::from(g.households))
            .sum()
    };
    for (code, _, households, _) in gridstat_schemas::registry_build::JIANGMEN_COUNTIES {
        assert_eq!(households_in(code), u64::from(households), "{code}");
    }
    assert_eq!(r.total_households(), 1_607_000);
    assert!(r.grids.iter().all(|g| g.households > 0));
    // Every village and community except the prison's has at least one grid.
    let with_grids: std::collections::HashSet<usize> = r.grids.iter().map(|g| g.village).collect();
    assert_eq!(with_grids.len(), r.villages.len() - 1);
}

#[test]
fn shipped_registry_is_what_the_builder_makes() {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/jiangmen");
    if !reference.exists() {
        eprintln!("skipped: no reference data at {}", reference.display());
        return;
    }
    let built = gridstat_schemas::registry_build::build_jiangmen(&reference).unwrap();
    assert_eq!(built.to_csv_texts(), Registry::jiangmen().to_csv_texts());
}

#[test]
fn export_and_reload_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let r = Registry::jiangmen();
    r.write_dir(dir.path()).unwrap();
    let again = Registry::load_dir(dir.path()).unwrap();
    assert_eq!(again.to_csv_texts(), r.to_csv_texts());
}

fn broken(file: &str, text: &str) -> RegistryError {
    let dir = tempfile::tempdir().unwrap();
    Registry::jiangmen().write_dir(dir.path()).unwrap();
    std::fs::write(dir.path().join(file), text).unwrap();
    Registry::load_dir(dir.path()).unwrap_err()
}

#[test]
fn bad_household_count_names_file_line_and_column() {
    let err = broken("grids.csv", "grid_id,grid_name,village_code,households\ng1,一,440703002101,12\ng2,二,440703002101,many\n");
    match &err {
        RegistryError::Row {
            file, line, column, ..
        } => {
            assert!(file.ends_with("grids.csv"));
            assert_eq!(*line, 3);
            assert_eq!(column, "households");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string().contains("grids.csv:3: column `households`"),
        "{err}"
    );
}

#[test]
fn unknown_parent_and_missing_column() {
    let err = broken(
        "grids.csv",
        "grid_id,grid_name,village_code,households\ng1,一,999,12\n",
    );
    assert!(
        err.to_string()
            .contains("grids.csv:2: column `village_code`"),
        "{err}"
    );
    let err = broken("towns.csv", "town_code,town_name\n1,a\n");
    assert!(
        matches!(err, RegistryError::MissingColumn { ref column, .. } if column == "county_code"),
        "{err}"
    );
    let err = broken(
        "grids.csv",
        "grid_id,grid_name,village_code,households\ng1,一,440703002101,1\ng1,二,440703002101,2\n",
    );
    assert!(err.to_string().contains("duplicate"), "{err}");
}

#[test]
fn missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = Registry::load_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains(FILES[0]), "{err}");
}

/// Codes and grid ids become parts of object and page paths: a registry
/// with a separator, a dot or a control character in one is refused
/// with the file, line and column named, before any path is made.
#[test]
fn path_traversal_in_codes_and_ids_is_refused() {
    for (file, text, column) in [
        (
            "grids.csv",
            "grid_id,grid_name,village_code,households\n../../etc,一,440703002101,12\n",
            "grid_id",
        ),
        (
            "grids.csv",
            "grid_id,grid_name,village_code,households\na/b,一,440703002101,12\n",
            "grid_id",
        ),
        (
            "counties.csv",
            "county_code,county_name,city_code\n4407.3,蓬江区,440700\n",
            "county_code",
        ),
        (
            "grids.csv",
            "grid_id,grid_name,village_code,households\ng1,一\u{7},440703002101,12\n",
            "grid_name",
        ),
    ] {
        let err = broken(file, text).to_string();
        assert!(
            err.contains(&format!("{file}:2: column `{column}`")),
            "{err}"
        );
    }
}
