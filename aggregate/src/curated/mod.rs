//! Step 1: the curated tables.
//!
//! - `dedup`: each day's raw rows deduplicated and joined with the
//!   registry (`curated_visits`, `curated_cases`), the visits' lists
//!   flattened (`curated_hardships`, `curated_hazards`);
//! - `case_state`: one row per case handed on, rebuilt from every day;
//! - `case_update`: `case_state` updated for the few days a refresh
//!   curates again.

pub(crate) mod case_state;
pub(crate) mod case_update;
pub(crate) mod dedup;
pub(crate) mod resends;

pub(crate) use case_state::{case_state_sql, Scope};
pub use dedup::{hardship_schema, hazard_schema, CuratedDay};
