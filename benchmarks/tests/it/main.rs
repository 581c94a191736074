//! The benchmarks' comparisons, checked: what DuckDB is given computes
//! what gridstat computes.

mod duckdb;
