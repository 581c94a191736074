//! One message per error class, asserting the class and the field named.

use gridstat_schemas::record::{Submission, VISIT_SCHEMA_V1};
use gridstat_schemas::{decode_submission, DecodeOptions, ErrorClass, Registry};
use proptest::prelude::*;
use serde_json::{json, Value};

fn valid_visit() -> Value {
    json!({
        "schema": VISIT_SCHEMA_V1,
        "submission_id": "0b7e2c1a-1d2f-4c3b-8a9e-000000000001",
        "sent_at": "2022-11-26T10:20:00+08:00",
        "visited_at": "2022-11-26T10:05:00+08:00",
        "reporter_id": "rp-0000000000000001",
        "reporter_role": "cadre",
        "grid_id": "44070300210101",
        "target_kind": "household",
        "target_id": "hh-0000000000000001",
        "residents_recorded": 4,
        "residents_present": 3,
        "newcomers_registered": 1,
        "residents_tested": 4,
        "residents_vaccinated": 3,
        "special_groups": ["elderly_alone"],
        "safety_checks": ["gas", "electricity", "fire"],
        "hazards": [{"hazard_id": "hz-1", "kind": "gas", "fixed_on_spot": false}],
        "hardships": [{"case_id": "hs-1", "category": "medical", "urgency": "urgent", "note": "需要代购药品"}],
        "enlisted_building_leads": 0,
        "enlisted_volunteers": 1
    })
}

fn valid_case() -> Value {
    json!({
        "schema": "gridstat.case/1",
        "submission_id": "c-1",
        "sent_at": "2022-11-27T09:00:00+08:00",
        "case_id": "hs-1",
        "case_kind": "hardship",
        "grid_id": "44070300210101",
        "status": "resolved",
        "updated_at": "2022-11-27T08:55:00+08:00",
        "handler_id": "hd-1"
    })
}

fn with(mut v: Value, path: &[&str], new: Option<Value>) -> Vec<u8> {
    let (last, parents) = path.split_last().expect("a path");
    let mut cur = &mut v;
    for p in parents {
        cur = match p.parse::<usize>() {
            Ok(i) => &mut cur[i],
            Err(_) => &mut cur[*p],
        };
    }
    let obj = cur.as_object_mut().expect("an object");
    match new {
        Some(n) => {
            obj.insert((*last).into(), n);
        }
        None => {
            obj.remove(*last);
        }
    }
    serde_json::to_vec(&v).expect("serializes")
}

fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(Registry::jiangmen)
}

fn decode(bytes: &[u8]) -> Result<Submission<'_>, gridstat_schemas::DecodeError> {
    decode_submission(bytes, registry(), &DecodeOptions::default(), None)
}

#[test]
fn valid_messages_decode() {
    let visit = serde_json::to_vec(&valid_visit()).unwrap();
    let v = decode(&visit).expect("valid visit");
    assert_eq!(v.submission_id(), "0b7e2c1a-1d2f-4c3b-8a9e-000000000001");
    let case = serde_json::to_vec(&valid_case()).unwrap();
    let c = decode(&case).expect("valid case");
    assert_eq!(c.grid_id(), "44070300210101");
}

#[test]
fn schema_read_from_the_prefix_or_anywhere_decodes_the_same() {
    // serde_json sorts keys, so `sorted` puts `schema` mid-object (probed);
    // producers put it first (read from the prefix).
    let sorted = serde_json::to_string(&valid_visit()).unwrap();
    let mut body = valid_visit();
    body.as_object_mut().unwrap().remove("schema");
    let rest = &serde_json::to_string(&body).unwrap()[1..];
    let first = format!("{{\"schema\":\"{VISIT_SCHEMA_V1}\",{rest}");
    assert_eq!(decode(first.as_bytes()), decode(sorted.as_bytes()));
    assert!(decode(first.as_bytes()).is_ok());
    let longer = format!("{{\"schema\":\"{VISIT_SCHEMA_V1}x\",{rest}");
    let err = decode(longer.as_bytes()).unwrap_err();
    assert_eq!(err.class(), ErrorClass::UnknownSchema, "{err}");
    let case_tag = format!("{{\"schema\":\"gridstat.case/1\",{rest}");
    let err = decode(case_tag.as_bytes()).unwrap_err();
    assert_eq!(err.class(), ErrorClass::UnknownField, "{err}");
}

#[test]
fn every_error_class_names_its_field() {
    let big_note = json!([{"case_id": "hs-1", "category": "other", "urgency": "low", "note": "x".repeat(20_000)}]);
    let mut bad_utf8 = serde_json::to_vec(&valid_visit()).unwrap();
    let at = bad_utf8.iter().position(|&b| b == b'-').unwrap();
    bad_utf8[at] = 0xC3;
    let cases: Vec<(&str, Vec<u8>, ErrorClass, Option<&str>)> = vec![
        ("invalid utf-8", bad_utf8, ErrorClass::InvalidUtf8, None),
        (
            "truncated json",
            br#"{"schema": "gridstat.visit/1", "submission"#.to_vec(),
            ErrorClass::MalformedJson,
            None,
        ),
        (
            "trailing garbage",
            [serde_json::to_vec(&valid_case()).unwrap(), b" }".to_vec()].concat(),
            ErrorClass::MalformedJson,
            None,
        ),
        (
            "too large",
            with(valid_visit(), &["hardships"], Some(big_note)),
            ErrorClass::TooLarge,
            None,
        ),
        (
            "unknown schema",
            with(valid_visit(), &["schema"], Some(json!("gridstat.visit/2"))),
            ErrorClass::UnknownSchema,
            Some("schema"),
        ),
        (
            "no schema",
            with(valid_visit(), &["schema"], None),
            ErrorClass::MissingField,
            Some("schema"),
        ),
        (
            "missing field",
            with(valid_visit(), &["residents_tested"], None),
            ErrorClass::MissingField,
            Some("residents_tested"),
        ),
        (
            "missing nested field",
            with(valid_visit(), &["hazards", "0", "kind"], None),
            ErrorClass::MissingField,
            Some("hazards[0].kind"),
        ),
        (
            "unknown field",
            with(valid_visit(), &["mood"], Some(json!("happy"))),
            ErrorClass::UnknownField,
            Some("mood"),
        ),
        (
            "unknown nested field",
            with(
                valid_visit(),
                &["hardships", "0", "phone"],
                Some(json!("138")),
            ),
            ErrorClass::UnknownField,
            Some("hardships[0].phone"),
        ),
        (
            "wrong type",
            with(valid_visit(), &["residents_recorded"], Some(json!("four"))),
            ErrorClass::WrongType,
            Some("residents_recorded"),
        ),
        (
            "wrong type bool",
            with(
                valid_visit(),
                &["hazards", "0", "fixed_on_spot"],
                Some(json!("yes")),
            ),
            ErrorClass::WrongType,
            Some("hazards[0].fixed_on_spot"),
        ),
        (
            "bad timestamp",
            with(valid_visit(), &["visited_at"], Some(json!("yesterday"))),
            ErrorClass::WrongType,
            Some("visited_at"),
        ),
        (
            "not an object",
            b"[1,2,3]".to_vec(),
            ErrorClass::WrongType,
            Some("$"),
        ),
        (
            "empty id",
            with(valid_visit(), &["submission_id"], Some(json!(""))),
            ErrorClass::WrongType,
            Some("submission_id"),
        ),
        (
            "blank id",
            with(valid_visit(), &["target_id"], Some(json!(" \t\u{3000}"))),
            ErrorClass::WrongType,
            Some("target_id"),
        ),
        (
            "unknown grid",
            with(valid_visit(), &["grid_id"], Some(json!("44070399999999"))),
            ErrorClass::UnknownGrid,
            Some("grid_id"),
        ),
        (
            "unknown grid in case",
            with(valid_case(), &["grid_id"], Some(json!("nope"))),
            ErrorClass::UnknownGrid,
            Some("grid_id"),
        ),
        (
            "negative",
            with(valid_visit(), &["residents_present"], Some(json!(-1))),
            ErrorClass::ImpossibleNumber,
            Some("residents_present"),
        ),
        (
            "present > residents",
            with(valid_visit(), &["residents_present"], Some(json!(5))),
            ErrorClass::ImpossibleNumber,
            Some("residents_present"),
        ),
        (
            "tested > residents",
            with(valid_visit(), &["residents_tested"], Some(json!(9))),
            ErrorClass::ImpossibleNumber,
            Some("residents_tested"),
        ),
        (
            "vaccinated > residents",
            with(valid_visit(), &["residents_vaccinated"], Some(json!(5))),
            ErrorClass::ImpossibleNumber,
            Some("residents_vaccinated"),
        ),
        (
            "huge household",
            with(valid_visit(), &["residents_recorded"], Some(json!(400))),
            ErrorClass::ImpossibleNumber,
            Some("residents_recorded"),
        ),
        (
            "visit next week",
            with(
                valid_visit(),
                &["visited_at"],
                Some(json!("2022-12-03T10:05:00+08:00")),
            ),
            ErrorClass::FutureTime,
            Some("visited_at"),
        ),
        (
            "case update in the future",
            with(
                valid_case(),
                &["updated_at"],
                Some(json!("2022-11-28T09:00:00+08:00")),
            ),
            ErrorClass::FutureTime,
            Some("updated_at"),
        ),
        (
            "before campaign",
            with(
                with_sent("2022-11-20T10:00:00+08:00"),
                &["visited_at"],
                Some(json!("2022-11-20T09:00:00+08:00")),
            ),
            ErrorClass::BeforeCampaign,
            Some("visited_at"),
        ),
        (
            "bad role",
            with(valid_visit(), &["reporter_role"], Some(json!("mayor"))),
            ErrorClass::BadEnum,
            Some("reporter_role"),
        ),
        (
            "bad nested enum",
            with(
                valid_visit(),
                &["hardships", "0", "category"],
                Some(json!("lottery")),
            ),
            ErrorClass::BadEnum,
            Some("hardships[0].category"),
        ),
        (
            "bad list enum",
            with(valid_visit(), &["special_groups"], Some(json!(["vip"]))),
            ErrorClass::BadEnum,
            Some("special_groups[0]"),
        ),
    ];
    for (name, bytes, class, field) in cases {
        let err = decode(&bytes).expect_err(name);
        assert_eq!(err.class(), class, "{name}: {err}");
        assert_eq!(err.field(), field, "{name}: {err}");
        assert!(!err.to_string().is_empty());
    }
}

fn with_sent(sent: &str) -> Value {
    let mut v = valid_visit();
    v["sent_at"] = json!(sent);
    v
}

#[test]
fn transport_time_bounds_the_phone_clock() {
    let bytes = serde_json::to_vec(&valid_visit()).unwrap();
    let received = chrono::DateTime::parse_from_rfc3339("2022-11-26T09:00:00+08:00").unwrap();
    let err = decode_submission(
        &bytes,
        registry(),
        &DecodeOptions::default(),
        Some(received),
    )
    .unwrap_err();
    assert_eq!(err.class(), ErrorClass::FutureTime);
    assert_eq!(err.field(), Some("sent_at"));
}

#[test]
fn error_messages_name_the_allowed_values() {
    let err = decode(&with(
        valid_visit(),
        &["reporter_role"],
        Some(json!("mayor")),
    ))
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("grid_worker") && text.contains("mayor"),
        "{text}"
    );
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn decoding_mutated_messages_never_panics(cut in 0usize..900, byte in any::<u8>()) {
        let mut bytes = serde_json::to_vec(&valid_visit()).unwrap();
        let at = cut % bytes.len();
        bytes[at] = byte;
        let _ = decode(&bytes);
        let _ = decode(&bytes[..at]);
    }
}

/// A record's day is its event's local (Asia/Shanghai) day, whatever offset
/// it was sent with, and the campaign starts at its first local midnight.
#[test]
fn placed_records_carry_their_local_day() {
    let at = |visited: &str| {
        let mut v = with_sent("2022-11-26T10:20:00+08:00");
        v["visited_at"] = json!(visited);
        serde_json::to_vec(&v).unwrap()
    };
    fn place(bytes: &[u8]) -> Result<gridstat_schemas::Placed<'_>, gridstat_schemas::DecodeError> {
        gridstat_schemas::decode_placed(bytes, registry(), &DecodeOptions::default(), None)
    }
    let day = |bytes: &[u8]| place(bytes).map(|p| p.day.to_string());
    // 16:00 UTC is the next local midnight.
    assert_eq!(day(&at("2022-11-25T15:59:59Z")).unwrap(), "2022-11-25");
    assert_eq!(day(&at("2022-11-25T16:00:00Z")).unwrap(), "2022-11-26");
    assert_eq!(day(&at("2022-11-24T16:00:00Z")).unwrap(), "2022-11-25");
    let before = place(&at("2022-11-24T15:59:59Z")).unwrap_err();
    assert_eq!(before.class(), ErrorClass::BeforeCampaign);
    assert_eq!(before.field(), Some("visited_at"));
}

/// A message dated years ahead is rejected against the real clock, not
/// only against its own send time (which a broken phone clock moves too).
#[test]
fn times_beyond_the_real_clock_are_future_time() {
    let registry = registry();
    let now = chrono::DateTime::parse_from_rfc3339("2022-11-27T12:00:00+08:00").unwrap();
    let opts = DecodeOptions {
        now: Some(now),
        ..DecodeOptions::default()
    };
    let visit = |sent: &str, visited: &str| -> String {
        r#"{"schema":"gridstat.visit/1","submission_id":"s-1","sent_at":"SENT","visited_at":"VISITED","reporter_id":"rp-1","reporter_role":"cadre","grid_id":"44070300210101","target_kind":"household","target_id":"hh-1","residents_recorded":4,"residents_present":3,"newcomers_registered":1,"residents_tested":4,"residents_vaccinated":3,"enlisted_building_leads":0,"enlisted_volunteers":1}"#
            .replace("SENT", sent)
            .replace("VISITED", visited)
    };
    let ok = visit("2022-11-27T12:05:00+08:00", "2022-11-27T12:01:00+08:00");
    decode_submission(ok.as_bytes(), registry, &opts, None).unwrap();
    let ahead = visit("2031-11-27T12:05:00+08:00", "2031-11-27T12:01:00+08:00");
    let err = decode_submission(ahead.as_bytes(), registry, &opts, None).unwrap_err();
    assert_eq!(err.class(), ErrorClass::FutureTime);
    assert_eq!(err.field(), Some("sent_at"));
    // Without a clock (replaying an old campaign offline) only the message's own times count.
    decode_submission(ahead.as_bytes(), registry, &DecodeOptions::default(), None).unwrap();
}
