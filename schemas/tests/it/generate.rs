//! The generator's output decodes as it intends, and is deterministic.

use std::collections::HashSet;

use gridstat_schemas::generate::{write_ndjson, Expect, GenOptions, Generator, Stream};
use gridstat_schemas::{decode_submission, DecodeOptions, ErrorClass, Registry, Submission};

fn small() -> GenOptions {
    GenOptions {
        days: 4,
        scale: 0.03,
        invalid_rate: 0.05,
        duplicate_rate: 0.05,
        late_rate: 0.1,
        ..GenOptions::default()
    }
}

#[test]
fn every_line_decodes_as_intended() {
    let registry = Registry::jiangmen();
    let opts = DecodeOptions::default();
    let mut seen_classes = HashSet::new();
    let mut ids = HashSet::new();
    let (mut valid, mut dups, mut late, mut cases) = (0, 0, 0, 0);
    for m in Generator::new(&registry, small()) {
        let decoded = decode_submission(&m.bytes, &registry, &opts, None);
        match m.expect {
            Expect::Valid => {
                let s = decoded.unwrap_or_else(|e| {
                    panic!(
                        "valid line rejected: {e}: {}",
                        String::from_utf8_lossy(&m.bytes)
                    )
                });
                assert!(
                    ids.insert(s.submission_id().to_string()),
                    "valid submission ids are unique"
                );
                assert_eq!(m.key, s.grid_id());
                valid += 1;
                match (&s, m.stream) {
                    (Submission::Visit(v), Stream::Visits) => {
                        if (v.sent_at - v.visited_at).num_hours() >= 24 {
                            late += 1;
                        }
                    }
                    (Submission::Case(_), Stream::Cases) => cases += 1,
                    _ => panic!("message on the wrong stream"),
                }
            }
            Expect::Duplicate => {
                let s = decoded.expect("a duplicate is a valid message");
                assert!(
                    ids.contains(s.submission_id()),
                    "a duplicate follows its original"
                );
                dups += 1;
            }
            Expect::Conflict => panic!("no conflicting resends unless asked for"),
            Expect::Invalid(class) => {
                let err = decoded.expect_err("an invalid line must be rejected");
                assert_eq!(err.class(), class, "{err}");
                seen_classes.insert(class);
            }
        }
    }
    assert!(valid > 1000, "{valid} valid");
    assert!(
        dups > 0 && late > 0 && cases > 0,
        "dups {dups} late {late} cases {cases}"
    );
    assert_eq!(
        seen_classes.len(),
        ErrorClass::OF_INPUT.len(),
        "every class generated: {seen_classes:?}"
    );
}

#[test]
fn same_arguments_same_bytes() {
    let registry = Registry::jiangmen();
    let run = |seed| {
        let mut out = Vec::new();
        write_ndjson(
            &mut out,
            Generator::new(&registry, GenOptions { seed, ..small() }),
        )
        .unwrap();
        out
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
}

#[test]
fn arrival_order_and_campaign_bounds() {
    let registry = Registry::jiangmen();
    let mut last = i64::MIN;
    for m in Generator::new(&registry, small()) {
        assert!(m.sent_at_ms >= last, "messages come in send order");
        last = m.sent_at_ms;
    }
    let end = gridstat_schemas::time::local_midnight(small().start) + chrono::Duration::days(4);
    assert!(last < end.timestamp_millis());
}

#[test]
fn coverage_follows_scale() {
    let registry = Registry::jiangmen();
    let opts = GenOptions {
        scale: 0.2,
        days: 3,
        invalid_rate: 0.0,
        duplicate_rate: 0.0,
        late_rate: 0.0,
        ..GenOptions::default()
    };
    let mut households = HashSet::new();
    for m in Generator::new(&registry, opts) {
        if let Ok(Submission::Visit(v)) =
            decode_submission(&m.bytes, &registry, &DecodeOptions::default(), None)
        {
            if v.target_kind == gridstat_schemas::record::TargetKind::Household {
                households.insert(v.target_id.to_string());
            }
        }
    }
    let coverage = households.len() as f64 / registry.total_households() as f64;
    assert!((coverage - 0.2).abs() < 0.01, "coverage {coverage}");
}

/// Asked for, edited resends follow their originals under the same
/// submission id with other content, some a day earlier.
#[test]
fn conflicting_resends_share_the_id_not_the_content() {
    use gridstat_schemas::time::local_date;
    let registry = Registry::jiangmen();
    let opts = GenOptions {
        scale: 0.01,
        days: 4,
        conflict_rate: 0.05,
        ..GenOptions::default()
    };
    let mut originals = std::collections::HashMap::new();
    let (mut conflicts, mut other_day) = (0, 0);
    for m in Generator::new(&registry, opts) {
        let Ok(Submission::Visit(v)) =
            decode_submission(&m.bytes, &registry, &DecodeOptions::default(), None)
        else {
            continue;
        };
        match m.expect {
            Expect::Valid => {
                originals.insert(v.submission_id.to_string(), m.bytes.clone());
            }
            Expect::Conflict => {
                let original = originals
                    .get(v.submission_id.as_ref())
                    .expect("a conflicting resend follows its original");
                assert_ne!(original, &m.bytes);
                let Ok(Submission::Visit(first)) =
                    decode_submission(original, &registry, &DecodeOptions::default(), None)
                else {
                    panic!("the original is a visit")
                };
                other_day +=
                    usize::from(local_date(&first.visited_at) != local_date(&v.visited_at));
                conflicts += 1;
            }
            _ => {}
        }
    }
    assert!(
        conflicts > 10 && other_day > 0,
        "{conflicts} conflicts, {other_day} on another day"
    );
}
