//! Strict decoding of one message: bytes → validated [`Submission`].
//!
//! Pure and panic-free on any input. The plain shape of a valid message is
//! read by a reader of its own (`fast_json`); anything else goes to serde,
//! whose structural errors name the path of the field (via
//! `serde_path_to_error`). Semantic checks (registry, numbers, times)
//! follow either way.

use std::borrow::Cow;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate};
use serde::Deserialize;

use crate::error::DecodeError;
use crate::fast_json;
use crate::record::{
    CaseUpdate, Submission, TargetKind, Visit, CASE_SCHEMA_V1, KNOWN_SCHEMAS, VISIT_SCHEMA_V1,
};
use crate::registry::Registry;
use crate::time::local_date;

/// Default size limit of one message, in bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Default tolerance for phone clocks running ahead, in minutes.
pub const DEFAULT_MAX_CLOCK_SKEW_MINUTES: i64 = 10;
/// Most residents one household may record; larger is a typo.
pub const MAX_HOUSEHOLD_RESIDENTS: u32 = 50;
/// Most people one enterprise or venue visit may record (staff recorded,
/// tested, enlisted): above the workforce of Jiangmen's largest employers.
pub const MAX_SITE_PEOPLE: u32 = 20_000;

/// Limits applied while decoding.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Messages larger than this are rejected unread.
    pub max_message_bytes: usize,
    /// First local day of the campaign; earlier events are rejected.
    pub campaign_start: NaiveDate,
    /// How far a time may lie after its reference time.
    pub max_clock_skew: Duration,
    /// The real clock when decoding (`None`: not checked). A send or event
    /// time later than it plus `max_clock_skew` is in the future: one such
    /// message would otherwise stretch every rollup's calendar to its date.
    pub now: Option<DateTime<FixedOffset>>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            campaign_start: crate::time::DEFAULT_CAMPAIGN_START,
            max_clock_skew: Duration::minutes(DEFAULT_MAX_CLOCK_SKEW_MINUTES),
            now: None,
        }
    }
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    schema: Option<Cow<'a, str>>,
}

/// Decode and validate one message.
///
/// `received_at` is the transport's timestamp (Kafka message time) when
/// there is one; without it the message's own `sent_at` is the reference for
/// the future-time check.
pub fn decode_submission<'a>(
    bytes: &'a [u8],
    registry: &Registry,
    opts: &DecodeOptions,
    received_at: Option<DateTime<FixedOffset>>,
) -> Result<Submission<'a>, DecodeError> {
    decode_placed(bytes, registry, opts, received_at).map(|placed| placed.submission)
}

/// A valid submission and its grid's position in [`Registry::grids`].
#[derive(Debug, Clone, PartialEq)]
pub struct Placed<'a> {
    /// The submission.
    pub submission: Submission<'a>,
    /// Where its grid is in the registry (validation looked it up).
    pub grid: usize,
    /// The local (Asia/Shanghai) day of its event, which the lake files it
    /// under (validation computed it for the campaign-start check).
    pub day: NaiveDate,
}

/// [`decode_submission`], also returning where the submission's grid is
/// in the registry, so that callers do not look it up again.
pub fn decode_placed<'a>(
    bytes: &'a [u8],
    registry: &Registry,
    opts: &DecodeOptions,
    received_at: Option<DateTime<FixedOffset>>,
) -> Result<Placed<'a>, DecodeError> {
    if bytes.len() > opts.max_message_bytes {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            limit: opts.max_message_bytes,
        });
    }
    // Producers write `schema` first: read it from the prefix and try the
    // fast path straight on the bytes (it checks its strings as UTF-8, so
    // the line is not checked whole first); anything else is probed.
    let prefix = schema_prefix(bytes);
    let fast = match prefix {
        Some(VISIT_SCHEMA_V1) => fast_json::visit(bytes).map(Submission::Visit),
        Some(CASE_SCHEMA_V1) => fast_json::case(bytes).map(Submission::Case),
        _ => None,
    };
    let submission = match fast {
        Some(submission) => submission,
        None => decode_strict(bytes, prefix)?,
    };
    let (grid, day) = validate(&submission, registry, opts, received_at)?;
    Ok(Placed {
        submission,
        grid,
        day,
    })
}

/// Decoding by serde, which names every error. `prefix` is the schema read
/// from the message's start, whose fast path has already been tried.
fn decode_strict<'a>(
    bytes: &'a [u8],
    prefix: Option<&'static str>,
) -> Result<Submission<'a>, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::InvalidUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    if !text.trim_start().starts_with('{') {
        // serde would read a JSON array as a struct; only objects are messages.
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Err(e) => syntax_error(&e),
            Ok(_) => DecodeError::WrongType {
                field: "$".into(),
                reason: "expected a JSON object".into(),
            },
        });
    }
    let schema = match prefix {
        Some(s) => Some(Cow::Borrowed(s)),
        None => parse::<Probe<'_>>(text)?.schema,
    };
    // A probed schema has not had the fast path yet: it reads any key
    // order, so a message whose `schema` is not first is read fast too.
    let probed = prefix.is_none();
    Ok(match schema.as_deref() {
        Some(VISIT_SCHEMA_V1) => {
            Submission::Visit(match probed.then(|| fast_json::visit(bytes)).flatten() {
                Some(visit) => visit,
                None => parse::<Visit>(text)?,
            })
        }
        Some(CASE_SCHEMA_V1) => {
            Submission::Case(match probed.then(|| fast_json::case(bytes)).flatten() {
                Some(case) => case,
                None => parse::<CaseUpdate>(text)?,
            })
        }
        Some(other) => {
            return Err(DecodeError::UnknownSchema {
                found: other.to_string(),
                known: KNOWN_SCHEMAS,
            })
        }
        None => {
            return Err(DecodeError::MissingField {
                field: "schema".into(),
            })
        }
    })
}

/// The schema name when the object starts with `{"schema":"<known>",`.
fn schema_prefix(bytes: &[u8]) -> Option<&'static str> {
    let rest = bytes.strip_prefix(b"{\"schema\":\"")?;
    KNOWN_SCHEMAS.iter().copied().find(|known| {
        rest.strip_prefix(known.as_bytes())
            .is_some_and(|after| after.starts_with(b"\","))
    })
}

fn parse<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, DecodeError> {
    // Nearly every message is valid: parse without tracking the path, and
    // only when that fails parse again with tracking, to name the field.
    let mut de = serde_json::Deserializer::from_str(text);
    if let Ok(value) = T::deserialize(&mut de) {
        if de.end().is_ok() {
            return Ok(value);
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(classify)?;
    de.end().map_err(|e| syntax_error(&e))?;
    Ok(value)
}

fn syntax_error(e: &serde_json::Error) -> DecodeError {
    DecodeError::MalformedJson {
        line: e.line(),
        column: e.column(),
        reason: bare_message(e),
    }
}

/// serde_json appends " at line L column C"; the position is kept separately.
fn bare_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_string()
}

fn classify(err: serde_path_to_error::Error<serde_json::Error>) -> DecodeError {
    let path = err.path().to_string();
    let inner = err.inner();
    if !matches!(inner.classify(), serde_json::error::Category::Data) {
        return syntax_error(inner);
    }
    let msg = bare_message(inner);
    let field = if path == "." || path.is_empty() {
        "$".to_string()
    } else {
        path
    };
    if let Some(name) = between(&msg, "missing field `", "`") {
        let field = if field == "$" {
            name.to_string()
        } else {
            format!("{field}.{name}")
        };
        return DecodeError::MissingField { field };
    }
    if let Some(name) = between(&msg, "unknown field `", "`") {
        let valid_fields = msg
            .split_once(", expected ")
            .map(|(_, rest)| rest.replace("one of ", ""))
            .unwrap_or_else(|| "none".into());
        // Depending on where serde raised it, the path may or may not end
        // with the unknown key already.
        let field = if field == "$" {
            name.to_string()
        } else if field == name || field.ends_with(&format!(".{name}")) {
            field
        } else {
            format!("{field}.{name}")
        };
        return DecodeError::UnknownField {
            field,
            valid_fields,
        };
    }
    if let Some(found) = between(&msg, "unknown variant `", "`") {
        let allowed = msg
            .split_once(", expected ")
            .map(|(_, rest)| rest.replace("one of ", ""))
            .unwrap_or_default();
        return DecodeError::BadEnum {
            field,
            found: found.to_string(),
            allowed,
        };
    }
    if msg.starts_with("invalid value: integer `-") {
        return DecodeError::ImpossibleNumber {
            field,
            reason: format!("negative: {msg}"),
        };
    }
    if msg.starts_with("duplicate field") {
        return DecodeError::MalformedJson {
            line: inner.line(),
            column: inner.column(),
            reason: msg,
        };
    }
    DecodeError::WrongType { field, reason: msg }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = s.strip_prefix(start)?;
    rest.split_once(end).map(|(name, _)| name)
}

/// Check everything serde cannot; returns the grid's registry position.
fn validate(
    s: &Submission,
    registry: &Registry,
    opts: &DecodeOptions,
    received_at: Option<DateTime<FixedOffset>>,
) -> Result<(usize, NaiveDate), DecodeError> {
    match s {
        Submission::Visit(v) => {
            check_id("submission_id", &v.submission_id)?;
            check_id("reporter_id", &v.reporter_id)?;
            if let Some(unit) = &v.reporter_unit {
                check_id("reporter_unit", unit)?;
            }
            check_id("target_id", &v.target_id)?;
            for (i, h) in v.hazards.iter().enumerate() {
                check_id_in(|| format!("hazards[{i}].hazard_id"), &h.hazard_id)?;
            }
            for (i, h) in v.hardships.iter().enumerate() {
                check_id_in(|| format!("hardships[{i}].case_id"), &h.case_id)?;
            }
            let grid = check_grid(registry, &v.grid_id)?;
            check_visit_numbers(v)?;
            let day = check_times(opts, received_at, v.sent_at, "visited_at", v.visited_at)?;
            Ok((grid, day))
        }
        Submission::Case(c) => {
            check_id("submission_id", &c.submission_id)?;
            check_id("case_id", &c.case_id)?;
            check_id("handler_id", &c.handler_id)?;
            let grid = check_grid(registry, &c.grid_id)?;
            let day = check_times(opts, received_at, c.sent_at, "updated_at", c.updated_at)?;
            Ok((grid, day))
        }
    }
}

fn check_id(field: &str, value: &str) -> Result<(), DecodeError> {
    check_id_in(|| field.to_string(), value)
}

/// `field` names the id only when it is wrong: valid messages (nearly all)
/// allocate nothing here.
fn check_id_in(field: impl FnOnce() -> String, value: &str) -> Result<(), DecodeError> {
    // All whitespace, as `trim().is_empty()`, but stopping at the first
    // other character instead of trimming both ends.
    if value.chars().all(char::is_whitespace) || value.len() > 128 {
        return Err(DecodeError::WrongType {
            field: field(),
            reason: format!(
                "expected an id of 1 to 128 characters, found {:?}",
                truncate(value, 40)
            ),
        });
    }
    Ok(())
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

fn check_grid(registry: &Registry, grid_id: &str) -> Result<usize, DecodeError> {
    registry
        .grid_position(grid_id)
        .ok_or_else(|| DecodeError::UnknownGrid {
            field: "grid_id".into(),
            grid_id: truncate(grid_id, 40),
        })
}

fn check_visit_numbers(v: &Visit) -> Result<(), DecodeError> {
    let impossible = |field: &str, reason: String| {
        Err(DecodeError::ImpossibleNumber {
            field: field.into(),
            reason,
        })
    };
    let cap = match v.target_kind {
        TargetKind::Household => MAX_HOUSEHOLD_RESIDENTS,
        TargetKind::Enterprise | TargetKind::Venue => MAX_SITE_PEOPLE,
    };
    if v.residents_recorded > cap {
        return impossible(
            "residents_recorded",
            format!(
                "{} people recorded in one {}, above the limit {cap}",
                v.residents_recorded,
                v.target_kind.as_str()
            ),
        );
    }
    let parts = [
        ("residents_present", v.residents_present, "present"),
        ("residents_tested", v.residents_tested, "tested"),
        ("residents_vaccinated", v.residents_vaccinated, "vaccinated"),
        ("newcomers_registered", v.newcomers_registered, "newcomers"),
    ];
    for (field, n, what) in parts {
        if n > v.residents_recorded {
            return impossible(
                field,
                format!(
                    "{n} {what} but only {} residents recorded",
                    v.residents_recorded
                ),
            );
        }
    }
    let enlisted = u64::from(v.enlisted_building_leads) + u64::from(v.enlisted_volunteers);
    if enlisted > u64::from(cap) {
        return impossible(
            "enlisted_volunteers",
            format!("{enlisted} people enlisted in one visit"),
        );
    }
    Ok(())
}

/// Check a submission's times; answer its event's local day.
fn check_times(
    opts: &DecodeOptions,
    received_at: Option<DateTime<FixedOffset>>,
    sent_at: DateTime<FixedOffset>,
    event_field: &str,
    event_at: DateTime<FixedOffset>,
) -> Result<NaiveDate, DecodeError> {
    let tolerance_minutes = opts.max_clock_skew.num_minutes();
    let future = |field: &str, time, reference| DecodeError::FutureTime {
        field: field.into(),
        time,
        reference,
        tolerance_minutes,
    };
    // Differences instead of shifted instants: `instant + skew` is chrono's
    // date arithmetic (a possible day carry) on every message.
    if let Some(received) = received_at {
        if sent_at.signed_duration_since(received) > opts.max_clock_skew {
            return Err(future("sent_at", sent_at, received));
        }
    }
    if let Some(now) = opts.now {
        if sent_at.signed_duration_since(now) > opts.max_clock_skew {
            return Err(future("sent_at", sent_at, now));
        }
    }
    if event_at.signed_duration_since(sent_at) > opts.max_clock_skew {
        return Err(future(event_field, event_at, sent_at));
    }
    // Before the campaign's first local midnight is on a local day before it.
    let day = local_date(&event_at);
    if day < opts.campaign_start {
        return Err(DecodeError::BeforeCampaign {
            field: event_field.into(),
            time: event_at,
            campaign_start: opts.campaign_start,
        });
    }
    Ok(day)
}
