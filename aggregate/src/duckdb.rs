//! The rollup step as a DuckDB script: the same queries over the same
//! curated Parquet, for `gridstat bench rollup` to run side by side.
//!
//! DuckDB runs every table as SQL. gridstat runs the same SQL in DataFusion
//! except where it computes a table outside SQL with a better algorithm
//! (same rows, each checked against the SQL by a unit test): the running
//! sums behind the cumulative table, the resolve-time percentiles
//! ([`crate::percentiles`]), the cases open at each day's end
//! ([`crate::open_cases`]); it also groups the cases opened more than once
//! in a query of its own. Timestamps become milliseconds with `epoch_ms`
//! here (DuckDB refuses `CAST(… AS BIGINT)` on them).

use std::path::Path;

use chrono::NaiveDate;
use gridstat_schemas::Registry;

use crate::error::{Error, Result};
use crate::rollup::{self, FLOWS, REPORTERS};
use crate::{curated, store, tables};

/// A DuckDB view over one of the lake's tables, its Hive partitions read as
/// strings (as DataFusion registers them).
fn view(lake: &Path, spec: &tables::TableSpec) -> String {
    format!(
        "CREATE OR REPLACE VIEW {} AS SELECT * FROM read_parquet('{}/{}{}/*.parquet', \
         hive_partitioning = true, hive_types_autocast = false)",
        spec.name,
        lake.display(),
        spec.prefix,
        "/*".repeat(spec.partitions.len())
    )
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
    overdue_hours: i64,
) -> Result<Vec<String>> {
    let registry_file = scratch.join("registry_grids.parquet");
    let days_file = scratch.join("days.parquet");
    let registry_batch = tables::registry_batch(registry)?;
    let days_batch = tables::days_batch(first, last, overdue_hours)?;
    for (file, batch) in [(&registry_file, registry_batch), (&days_file, days_batch)] {
        let mut body = store::ParquetBody::new(&file.display().to_string(), &batch.schema())?;
        body.write(&batch)?;
        let body = body.finish()?;
        std::fs::write(file, body).map_err(|e| Error::Io {
            path: file.display().to_string(),
            source: e,
        })?;
    }
    let from = first.format("%Y-%m-%d").to_string();
    let mut script = Vec::new();
    let present = |name: &str| {
        tables::TABLES
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
    script.push(format!(
        "CREATE OR REPLACE TABLE registry_grids AS SELECT * FROM read_parquet('{}')",
        registry_file.display()
    ));
    script.push(format!(
        "CREATE OR REPLACE TABLE days AS SELECT * FROM read_parquet('{}')",
        days_file.display()
    ));
    let cases_exist = present("curated_cases").is_some();
    script.push(format!(
        "CREATE OR REPLACE TABLE case_state AS {}",
        curated::case_state_sql(
            cases_exist,
            &|e| format!("epoch_ms({e})"),
            tables::Computed::InSql,
            curated::Scope::All
        )
    ));
    for (name, sql) in rollup::materialized(&from, false, tables::Computed::InSql) {
        script.push(format!("CREATE OR REPLACE TABLE {name} AS {sql}"));
    }
    let sums: Vec<String> = FLOWS
        .iter()
        .copied()
        .chain(REPORTERS.iter().map(|(c, _)| *c))
        .map(|c| format!("SUM({c}) OVER w AS {c}"))
        .collect();
    script.push(format!(
        "CREATE OR REPLACE TABLE area_running AS SELECT * REPLACE ({}) FROM ({}) \
         WINDOW w AS (PARTITION BY level, area_code ORDER BY dt ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
        sums.join(", "),
        rollup::area_totals_sql()
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
            rollup::quality_sql(quarantine.is_some(), None, false, &|e| format!(
                "epoch_ms({e})"
            ))
        ));
    }
    for (table, cumulative) in [("daily", false), ("cumulative", true)] {
        script.push(format!(
            "COPY ({}) TO '{}' (FORMAT parquet)",
            rollup::final_sql(cumulative, false),
            scratch.join(format!("{table}.parquet")).display()
        ));
    }
    Ok(script)
}
