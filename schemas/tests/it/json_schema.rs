//! The exported JSON Schemas agree with the decoder: every message the
//! decoder accepts validates, and a message that breaks a rule the schema
//! can express fails it (the other rules — registry, cross-field counts,
//! times, size — are the intake's and ingest's to check).

use gridstat_schemas::generate::{Expect, GenOptions, Generator};
use gridstat_schemas::json_schema::{case_schema, visit_schema};
use gridstat_schemas::{decode_submission, DecodeOptions, ErrorClass, Registry};
use serde_json::{json, Value};

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .expect("the exported schema is a valid JSON Schema")
}

fn campaign() -> Vec<gridstat_schemas::GeneratedMessage> {
    let opts = GenOptions {
        days: 3,
        scale: 0.003,
        invalid_rate: 0.3,
        ..GenOptions::default()
    };
    Generator::new(&Registry::jiangmen(), opts).collect()
}

/// Which schema a message claims; `None` when it is not a JSON object.
fn parsed(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .filter(Value::is_object)
}

#[test]
fn every_valid_generated_message_validates() {
    let (visit, case) = (validator(&visit_schema()), validator(&case_schema()));
    let registry = Registry::jiangmen();
    let mut checked = 0;
    for m in campaign()
        .iter()
        .filter(|m| matches!(m.expect, Expect::Valid | Expect::Duplicate))
    {
        assert!(decode_submission(&m.bytes, &registry, &DecodeOptions::default(), None).is_ok());
        let v = parsed(&m.bytes).unwrap();
        let validator = if v["schema"] == "gridstat.visit/1" {
            &visit
        } else {
            &case
        };
        let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?} in {v}");
        checked += 1;
    }
    assert!(checked > 1000, "{checked}");
}

/// The classes a JSON Schema can express, by the generator's invalid messages.
#[test]
fn invalid_messages_fail_for_the_classes_a_schema_can_express() {
    let visit = validator(&visit_schema());
    let expressible = [
        ErrorClass::UnknownSchema,
        ErrorClass::MissingField,
        ErrorClass::UnknownField,
        ErrorClass::WrongType,
        ErrorClass::BadEnum,
    ];
    let mut seen = std::collections::BTreeSet::new();
    for m in campaign() {
        let Expect::Invalid(class) = m.expect else {
            continue;
        };
        if !expressible.contains(&class) {
            continue;
        }
        let v = parsed(&m.bytes).unwrap();
        assert!(!visit.is_valid(&v), "{class} passes the schema: {v}");
        seen.insert(class);
    }
    assert_eq!(seen.len(), expressible.len(), "{seen:?}");
}

#[test]
fn hand_made_violations_fail_and_the_decoder_agrees() {
    let registry = Registry::jiangmen();
    let base = campaign()
        .into_iter()
        .find(|m| {
            m.expect == Expect::Valid && m.bytes.starts_with(br#"{"schema":"gridstat.visit/1""#)
        })
        .unwrap();
    let base = parsed(&base.bytes).unwrap();
    let visit = validator(&visit_schema());
    // (what, field, value set, the decoder's class)
    let cases = [
        (
            "negative count",
            "residents_present",
            json!(-1),
            ErrorClass::ImpossibleNumber,
        ),
        (
            "count over u32",
            "enlisted_volunteers",
            json!(4_294_967_296u64),
            ErrorClass::WrongType,
        ),
        ("empty id", "target_id", json!(""), ErrorClass::WrongType),
        (
            "blank id",
            "reporter_id",
            json!("   "),
            ErrorClass::WrongType,
        ),
        (
            "id over 128",
            "submission_id",
            json!("x".repeat(129)),
            ErrorClass::WrongType,
        ),
        (
            "not a time",
            "visited_at",
            json!("yesterday"),
            ErrorClass::WrongType,
        ),
        (
            "fraction",
            "residents_recorded",
            json!(2.5),
            ErrorClass::WrongType,
        ),
        (
            "bad list value",
            "safety_checks",
            json!(["gas", "wind"]),
            ErrorClass::BadEnum,
        ),
        (
            "hazard without kind",
            "hazards",
            json!([{"hazard_id": "hz-1", "fixed_on_spot": true}]),
            ErrorClass::MissingField,
        ),
        (
            "unknown hardship field",
            "hardships",
            json!([{"case_id": "hs-1", "category": "other", "urgency": "low", "note": "", "x": 1}]),
            ErrorClass::UnknownField,
        ),
        ("null field", "grid_id", Value::Null, ErrorClass::WrongType),
    ];
    for (name, field, value, class) in cases {
        let mut v = base.clone();
        v[field] = value;
        assert!(!visit.is_valid(&v), "{name} passes the schema");
        let bytes = serde_json::to_vec(&v).unwrap();
        let err =
            decode_submission(&bytes, &registry, &DecodeOptions::default(), None).unwrap_err();
        assert_eq!(err.class(), class, "{name}: {err}");
    }
    // Optional lists may be left out.
    let mut v = base.clone();
    for field in ["special_groups", "safety_checks", "hazards", "hardships"] {
        v.as_object_mut().unwrap().remove(field);
    }
    assert!(visit.is_valid(&v));
    let bytes = serde_json::to_vec(&v).unwrap();
    assert!(decode_submission(&bytes, &registry, &DecodeOptions::default(), None).is_ok());
}
