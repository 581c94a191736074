//! Local time of the campaign: Asia/Shanghai, a fixed UTC+08:00 (China has
//! kept no daylight-saving time since 1991, so a fixed offset is exact).

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};

/// Seconds east of UTC of Asia/Shanghai.
pub const SHANGHAI_OFFSET_SECS: i32 = 8 * 3600;

/// The campaign's first day, 2022-11-25 (市委部署 "三询问一完善").
pub const DEFAULT_CAMPAIGN_START: NaiveDate = match NaiveDate::from_ymd_opt(2022, 11, 25) {
    Some(d) => d,
    None => panic!("valid date"),
};

/// The Asia/Shanghai offset.
pub fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(SHANGHAI_OFFSET_SECS).expect("+08:00 is a valid offset")
}

/// 00:00 local time of `day`.
pub fn local_midnight(day: NaiveDate) -> DateTime<FixedOffset> {
    shanghai()
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .single()
        .expect("a fixed offset has no gaps")
}

/// The local (Asia/Shanghai) calendar date of an instant.
pub fn local_date<Tz: TimeZone>(t: &DateTime<Tz>) -> NaiveDate {
    t.with_timezone(&shanghai()).date_naive()
}

/// Local date from epoch milliseconds (UTC).
pub fn local_date_from_millis(ms: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp_millis(ms).map(|t| local_date(&t))
}

/// Serialize a time as RFC 3339 (`2022-11-26T10:05:00+08:00`, with
/// milliseconds only when there are any), without going through `fmt`:
/// the generator writes millions of them.
pub fn serialize_rfc3339<S: serde::Serializer>(
    t: &DateTime<FixedOffset>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use chrono::{Datelike, Timelike};
    fn two(out: &mut Vec<u8>, v: u32) {
        out.push(b'0' + (v / 10 % 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    }
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return s.serialize_str(&t.to_rfc3339());
    }
    let mut out = Vec::with_capacity(32);
    let y = year as u32;
    two(&mut out, y / 100);
    two(&mut out, y % 100);
    out.push(b'-');
    two(&mut out, t.month());
    out.push(b'-');
    two(&mut out, t.day());
    out.push(b'T');
    two(&mut out, t.hour());
    out.push(b':');
    two(&mut out, t.minute());
    out.push(b':');
    two(&mut out, t.second());
    let ms = t.nanosecond() / 1_000_000;
    if ms > 0 {
        out.push(b'.');
        out.push(b'0' + (ms / 100) as u8);
        two(&mut out, ms % 100);
    }
    let offset = t.offset().local_minus_utc();
    out.push(if offset < 0 { b'-' } else { b'+' });
    let abs = offset.unsigned_abs() / 60;
    two(&mut out, abs / 60);
    out.push(b':');
    two(&mut out, abs % 60);
    s.serialize_str(std::str::from_utf8(&out).expect("ASCII digits"))
}

/// Deserialize an RFC 3339 time exactly as chrono does, reading the
/// common `YYYY-MM-DDTHH:MM:SS[.fff]±HH:MM` shape without chrono's general
/// parser (ingest decodes two per message); anything else goes to chrono.
pub fn deserialize_rfc3339<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<DateTime<FixedOffset>, D::Error> {
    struct Rfc3339;
    impl serde::de::Visitor<'_> for Rfc3339 {
        type Value = DateTime<FixedOffset>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            // chrono's wording, so errors read the same as before.
            f.write_str("an RFC 3339 formatted date and time string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            match parse_rfc3339_fast(v) {
                Some(t) => Ok(t),
                None => v.parse().map_err(E::custom),
            }
        }
    }
    d.deserialize_str(Rfc3339)
}

/// The common shape only; `None` means "ask chrono" (not "invalid").
pub fn parse_rfc3339_fast(text: &str) -> Option<DateTime<FixedOffset>> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() < 25 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (mut nanos, mut at) = (0u32, 19);
    if b[at] == b'.' {
        let end = at
            + 1
            + b[at + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
        let len = end - at - 1;
        if !(1..=9).contains(&len) {
            return None;
        }
        nanos = digits(at + 1..end)? * 10u32.pow(9 - len as u32);
        at = end;
    }
    if b.len() != at + 6 || b[at + 3] != b':' {
        return None;
    }
    let sign = match b[at] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (oh, om) = (digits(at + 1..at + 3)?, digits(at + 4..at + 6)?);
    if om >= 60 {
        return None;
    }
    let offset = FixedOffset::east_opt(sign * (oh * 3600 + om * 60) as i32)?;
    let date = NaiveDate::from_ymd_opt(digits(0..4)? as i32, digits(5..7)?, digits(8..10)?)?;
    let time = chrono::NaiveTime::from_hms_nano_opt(
        digits(11..13)?,
        digits(14..16)?,
        digits(17..19)?,
        nanos,
    )?;
    offset.from_local_datetime(&date.and_time(time)).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_rfc3339_agrees_with_chrono() {
        for text in [
            "2022-11-26T10:05:00+08:00",
            "2022-11-26T10:05:00.250+08:00",
            "2022-11-26T10:05:00.123456789-00:30",
            "1999-01-02T03:04:05-05:30",
            "2022-02-30T10:05:00+08:00",
            "2022-11-26T24:00:00+08:00",
            "2022-11-26T23:59:60+08:00",
            "2022-11-26T10:05:00+24:00",
            "2022-11-26T10:05:00+08:60",
            "2022-11-26t10:05:00+08:00",
            "2022-11-26 10:05:00+08:00",
            "2022-11-26T10:05:00Z",
            "2022-11-26T10:05:00.+08:00",
            "2022-11-26T10:05:00.1234567890+08:00",
            "2022-11-26T10:05:00+08:00 ",
            "+022-11-26T10:05:00+08:00",
            "2022-1a-26T10:05:00+08:00",
            "",
        ] {
            let chrono = text.parse::<DateTime<FixedOffset>>().ok();
            if let Some(fast) = parse_rfc3339_fast(text) {
                assert_eq!(Some(fast), chrono, "{text}");
                assert_eq!(fast.offset(), chrono.unwrap().offset(), "{text}");
            }
            let json = serde_json::to_string(text).unwrap();
            let mut de = serde_json::Deserializer::from_str(&json);
            let ours = deserialize_rfc3339(&mut de).map_err(|e| e.to_string());
            let theirs =
                serde_json::from_str::<DateTime<FixedOffset>>(&json).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{text}");
        }
        let mut de = serde_json::Deserializer::from_str("5");
        let ours = deserialize_rfc3339(&mut de).unwrap_err().to_string();
        let theirs = serde_json::from_str::<DateTime<FixedOffset>>("5")
            .unwrap_err()
            .to_string();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn rfc3339_matches_chrono() {
        for text in [
            "2022-11-26T10:05:00+08:00",
            "2022-11-26T10:05:00.250+08:00",
            "1999-01-02T03:04:05-05:30",
        ] {
            let t = DateTime::parse_from_rfc3339(text).unwrap();
            let json = serde_json::to_string(&Wrapper(t)).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            let back: DateTime<FixedOffset> = serde_json::from_str(&json).unwrap();
            assert_eq!(back, t);
        }
    }

    struct Wrapper(DateTime<FixedOffset>);

    impl serde::Serialize for Wrapper {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize_rfc3339(&self.0, s)
        }
    }
}
