//! gridstat's benchmark harness: the `gridstat-bench` binary, which times
//! the `gridstat` binary and its stages on generated campaigns, some side
//! by side with DuckDB (docs/BENCHMARKS.md). Nothing here is part of the
//! `gridstat` binary, and no product crate depends on this one.
//!
//! # Layout
//!
//! - [`duckdb`]: DuckDB's side of the comparisons (the rollup step as a
//!   DuckDB script, and running Python with the `duckdb` package);
//! - `src/main.rs` and its modules: one module per benchmark.
//!
//! Errors are `anyhow`'s: this library only shares the harness's code with
//! its tests.
//!
//! ```
//! let lake = std::path::Path::new("/nonexistent");
//! let scratch = tempfile::tempdir().unwrap();
//! let start = gridstat_schemas::time::DEFAULT_CAMPAIGN_START;
//! let registry = gridstat_schemas::Registry::jiangmen();
//! let limits = gridstat_aggregate::OverdueLimits::of(&Default::default());
//! let script = gridstat_benchmarks::duckdb::rollup_script(lake, scratch.path(), &registry, start, start, limits).unwrap();
//! assert!(script.last().unwrap().starts_with("COPY"));
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod duckdb;
