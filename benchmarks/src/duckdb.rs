//! DuckDB's side of the comparisons: the rollup step as a DuckDB script
//! ([`rollup_script`]), and Python scripts with the `duckdb` package
//! ([`run_python`]).
//!
//! DuckDB runs every table of the rollup step as SQL, the queries of
//! [`gridstat_aggregate::reference`]; gridstat computes some of them
//! outside SQL with the same results. Timestamps become milliseconds with
//! `epoch_ms` (DuckDB refuses `CAST(… AS BIGINT)` on them).

use std::path::{Path, PathBuf};

use anyhow::Context;
use arrow::array::RecordBatch;
use chrono::NaiveDate;
use gridstat_aggregate::reference;
use gridstat_aggregate::tables::{TableSpec, TABLES};
use gridstat_schemas::Registry;
use parquet::arrow::ArrowWriter;

/// DuckDB's expression for a timestamp in milliseconds since the epoch.
fn epoch_ms(expr: &str) -> String {
    format!("epoch_ms({expr})")
}

/// A DuckDB view over one of the lake's tables, its Hive partitions read as
/// strings (as DataFusion registers them).
fn view(lake: &Path, spec: &TableSpec) -> String {
    format!(
        "CREATE OR REPLACE VIEW {} AS SELECT * FROM read_parquet('{}/{}{}/*.parquet', \
         hive_partitioning = true, hive_types_autocast = false)",
        spec.name,
        lake.display(),
        spec.prefix,
        "/*".repeat(spec.partitions.len())
    )
}

/// Write `batch` as the Parquet file `path`.
fn write_parquet(path: &Path, batch: &RecordBatch) -> anyhow::Result<()> {
    let write = || -> anyhow::Result<()> {
        let mut writer = ArrowWriter::try_new(std::fs::File::create(path)?, batch.schema(), None)?;
        writer.write(batch)?;
        writer.close()?;
        Ok(())
    };
    write().with_context(|| format!("writing {}", path.display()))
}

/// Write the registry and days tables as Parquet into `scratch` and return
/// the statements that compute every rollup from the curated tables of the
/// local lake in `lake`, from `first` to `last`, ending with the daily and
/// cumulative tables written to `scratch/daily.parquet` and
/// `scratch/cumulative.parquet`.
pub fn rollup_script(
    lake: &Path,
    scratch: &Path,
    registry: &Registry,
    first: NaiveDate,
    last: NaiveDate,
    overdue: gridstat_aggregate::OverdueLimits,
) -> anyhow::Result<Vec<String>> {
    let mut script = Vec::new();
    let present = |name: &str| {
        TABLES
            .iter()
            .find(|t| t.name == name && lake.join(t.prefix).is_dir())
    };
    for name in [
        "curated_visits",
        "curated_cases",
        "curated_hardships",
        "curated_hazards",
    ] {
        script.extend(present(name).map(|spec| view(lake, spec)));
    }
    for (table, batch) in [
        ("registry_grids", reference::registry_grids(registry)?),
        ("days", reference::days(first, last, overdue)?),
    ] {
        let file = scratch.join(format!("{table}.parquet"));
        write_parquet(&file, &batch)?;
        script.push(format!(
            "CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_parquet('{}')",
            file.display()
        ));
    }
    let cases_exist = present("curated_cases").is_some();
    script.push(format!(
        "CREATE OR REPLACE TABLE case_state AS {}",
        reference::case_state_sql(cases_exist, &epoch_ms)
    ));
    for (name, sql) in reference::rollup_tables(first) {
        script.push(format!("CREATE OR REPLACE TABLE {name} AS {sql}"));
    }
    script.push(format!(
        "CREATE OR REPLACE TABLE area_running AS {}",
        reference::area_running_sql()
    ));
    // The data-quality table is part of gridstat's rollup step too; it
    // counts raw rows, so it needs the raw tables.
    if let (Some(visits), Some(cases)) = (present("raw_visits"), present("raw_cases")) {
        let quarantine = present("quarantine");
        script.extend(
            [visits, cases]
                .into_iter()
                .chain(quarantine)
                .map(|spec| view(lake, spec)),
        );
        script.push(format!(
            "CREATE OR REPLACE TABLE quality AS {}",
            reference::quality_sql(quarantine.is_some(), &epoch_ms)
        ));
    }
    for (table, cumulative) in [("daily", false), ("cumulative", true)] {
        script.push(format!(
            "COPY ({}) TO '{}' (FORMAT parquet)",
            reference::final_sql(cumulative),
            scratch.join(format!("{table}.parquet")).display()
        ));
    }
    Ok(script)
}

/// Run the Python program `script` (text, with the `duckdb` package
/// importable) by the interpreter `python`, with `args`; returns its
/// standard output, or an error with its standard error.
pub fn run_python(python: &str, script: &str, args: &[PathBuf]) -> anyhow::Result<String> {
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .with_context(|| format!("running {python}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{python} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
