//! JSON Schema (draft 2020-12) of the two message kinds, derived from the
//! serde types in [`record`](crate::record): the contract for the teams
//! that write reporters' apps.
//!
//! The schema says what the decoder's structural checks say: the `schema`
//! tag, required and optional fields, no unknown fields, the enums' values,
//! integers from 0 up to 2³²−1, ids of 1 to 128 characters that are not all
//! whitespace, RFC 3339 times. What it cannot say is checked only on
//! arrival (by the intake and by ingest): the grid is in the registry,
//! counts are not above `residents_recorded` nor a household above 50,
//! times are not in the future nor before the campaign, ids are at most 128
//! *bytes* (the schema counts characters), no key is repeated, and the
//! message is at most 16 KiB.
//!
//! ```
//! let schema = gridstat_schemas::json_schema::visit_schema();
//! assert_eq!(schema["additionalProperties"], false);
//! assert_eq!(schema["properties"]["schema"]["const"], "gridstat.visit/1");
//! ```

use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use schemars::{JsonSchema, Schema};
use serde_json::Value;

use crate::record::{CaseUpdate, Visit, CASE_SCHEMA_V1, VISIT_SCHEMA_V1};

/// File name of the exported visit schema.
pub const VISIT_SCHEMA_FILE: &str = "gridstat.visit.v1.schema.json";
/// File name of the exported case-update schema.
pub const CASE_SCHEMA_FILE: &str = "gridstat.case.v1.schema.json";

/// One exported schema: its file name, the message tag and the schema.
#[derive(Debug, Clone)]
pub struct ExportedSchema {
    /// File name (`gridstat.visit.v1.schema.json`, …).
    pub file: &'static str,
    /// The message's `schema` tag.
    pub tag: &'static str,
    /// The JSON Schema document.
    pub schema: Value,
}

/// The schema of `gridstat.visit/1`.
pub fn visit_schema() -> Value {
    schema_of::<Visit<'static>>(VISIT_SCHEMA_FILE)
}

/// The schema of `gridstat.case/1`.
pub fn case_schema() -> Value {
    schema_of::<CaseUpdate<'static>>(CASE_SCHEMA_FILE)
}

/// Both schemas, as they are exported.
pub fn all() -> [ExportedSchema; 2] {
    [
        ExportedSchema {
            file: VISIT_SCHEMA_FILE,
            tag: VISIT_SCHEMA_V1,
            schema: visit_schema(),
        },
        ExportedSchema {
            file: CASE_SCHEMA_FILE,
            tag: CASE_SCHEMA_V1,
            schema: case_schema(),
        },
    ]
}

fn schema_of<T: JsonSchema>(id: &str) -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with_transform(RecursiveTransform(bound_u32))
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>();
    schema.insert("$id".into(), Value::from(id));
    schema.to_value()
}

/// serde reads a `u32`: a larger integer is rejected too.
fn bound_u32(schema: &mut Schema) {
    if schema.get("format").and_then(Value::as_str) == Some("uint32") {
        schema.insert("maximum".into(), Value::from(u32::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_required_optional_and_closed() {
        let visit = visit_schema();
        let required: Vec<&str> = visit["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for field in ["schema", "submission_id", "visited_at", "residents_tested"] {
            assert!(required.contains(&field), "{field} is required");
        }
        for field in ["special_groups", "safety_checks", "hazards", "hardships"] {
            assert!(!required.contains(&field), "{field} is optional");
        }
        assert_eq!(visit["properties"]["residents_recorded"]["minimum"], 0);
        assert_eq!(
            visit["properties"]["residents_recorded"]["maximum"],
            u32::MAX
        );
        assert_eq!(visit["properties"]["sent_at"]["format"], "date-time");
        let case = case_schema();
        assert_eq!(case["additionalProperties"], false);
        assert_eq!(case["properties"]["schema"]["const"], CASE_SCHEMA_V1);
        assert_eq!(case["$id"], CASE_SCHEMA_FILE);
    }
}
