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
    /// Where the date's and the time's digits are in `YYYY-MM-DDTHH:MM:SS`.
    const DIGITS: [usize; 14] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    let b = text.as_bytes();
    if b.len() < 25 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    // Every digit checked at once, then the fields read by position: a
    // loop over positions that the compiler unrolls, no closure per field.
    let mut d = [0u32; 14];
    let mut bad = false;
    for (value, &at) in d.iter_mut().zip(&DIGITS) {
        let digit = b[at].wrapping_sub(b'0');
        bad |= digit > 9;
        *value = u32::from(digit);
    }
    if bad {
        return None;
    }
    let year = d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3];
    let (month, day) = (d[4] * 10 + d[5], d[6] * 10 + d[7]);
    let (hour, minute, second) = (d[8] * 10 + d[9], d[10] * 10 + d[11], d[12] * 10 + d[13]);
    let (mut nanos, mut at) = (0u32, 19);
    if b[at] == b'.' {
        let fraction = &b[at + 1..];
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&len) {
            return None;
        }
        let value = fraction[..len]
            .iter()
            .fold(0u32, |n, &c| n * 10 + u32::from(c - b'0'));
        nanos = value * 10u32.pow(9 - len as u32);
        at += 1 + len;
    }
    if b.len() != at + 6 || b[at + 3] != b':' {
        return None;
    }
    let sign = match b[at] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let offset_digits = [b[at + 1], b[at + 2], b[at + 4], b[at + 5]].map(|c| c.wrapping_sub(b'0'));
    if offset_digits.iter().any(|&c| c > 9) {
        return None;
    }
    let [h1, h2, m1, m2] = offset_digits.map(i32::from);
    let (oh, om) = (h1 * 10 + h2, m1 * 10 + m2);
    if om >= 60 {
        return None;
    }
    let offset = FixedOffset::east_opt(sign * (oh * 3600 + om * 60))?;
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let time = chrono::NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let utc = date.and_time(time).checked_sub_offset(offset)?;
    Some(DateTime::from_naive_utc_and_offset(utc, offset))
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
        // The common shape takes the fast path, at the calendar's edges too.
        for text in [
            "2022-11-26T10:05:00+08:00",
            "2022-11-30T23:59:59.999-00:30",
            "2024-02-29T00:00:00+08:00",
            "2000-02-29T12:00:00+14:00",
            "0000-01-01T00:00:00+08:00",
            "9999-12-31T23:59:59-12:00",
        ] {
            let fast = parse_rfc3339_fast(text);
            assert!(fast.is_some(), "{text}");
            assert_eq!(fast, text.parse::<DateTime<FixedOffset>>().ok(), "{text}");
        }
        for not_a_day in ["1900-02-29T00:00:00+08:00", "2023-04-31T00:00:00+08:00"] {
            assert_eq!(parse_rfc3339_fast(not_a_day), None, "{not_a_day}");
        }
        let mut de = serde_json::Deserializer::from_str("5");
        let ours = deserialize_rfc3339(&mut de).unwrap_err().to_string();
        let theirs = serde_json::from_str::<DateTime<FixedOffset>>("5")
            .unwrap_err()
            .to_string();
        assert_eq!(ours, theirs);
    }

    proptest::proptest! {
        /// A valid time with any one or two characters replaced (digits,
        /// separators, letters, a multi-byte one): what the fast reader
        /// accepts, chrono reads the same.
        #[test]
        fn fast_rfc3339_agrees_with_chrono_on_edited_times(
            edits in proptest::collection::vec(
                (0usize..25, proptest::sample::select(
                    vec!['0', '3', '9', '-', ':', 'T', 't', ' ', '+', '.', 'Z', '/', 'é'],
                )),
                1..=2,
            ),
        ) {
            let mut text: Vec<char> = "2022-11-26T10:05:00+08:00".chars().collect();
            for (at, c) in edits {
                text[at] = c;
            }
            let text: String = text.into_iter().collect();
            if let Some(fast) = parse_rfc3339_fast(&text) {
                let chrono = text.parse::<DateTime<FixedOffset>>();
                proptest::prop_assert_eq!(Ok(fast), chrono);
                let chrono = chrono.unwrap();
                proptest::prop_assert_eq!(fast.offset(), chrono.offset());
            }
        }

        /// Any digits in the common shape, in and out of range, with or
        /// without a fraction: the fast reader answers exactly as chrono,
        /// or leaves the text to it.
        #[test]
        fn fast_rfc3339_agrees_with_chrono_on_any_digits(
            year in 0u32..=9999,
            fields in (0u32..=13, 0u32..=32, 0u32..=25, 0u32..=61, 0u32..=61),
            fraction in proptest::collection::vec(0u8..=9, 0..11),
            dot in proptest::bool::ANY,
            sign in proptest::sample::select(vec!['+', '-', 'Z', ' ']),
            offset in (0u32..=25, 0u32..=61),
        ) {
            let (month, day, hour, minute, second) = fields;
            let mut text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
            if dot {
                text.push('.');
                text.extend(fraction.iter().map(|&c| char::from(b'0' + c)));
            }
            text.push(sign);
            text.push_str(&format!("{:02}:{:02}", offset.0, offset.1));
            let chrono = text.parse::<DateTime<FixedOffset>>().ok();
            if let Some(fast) = parse_rfc3339_fast(&text) {
                proptest::prop_assert_eq!(Some(fast), chrono, "{}", text);
                proptest::prop_assert_eq!(Some(*fast.offset()), chrono.map(|c| *c.offset()));
            }
            // Everything chrono takes in this shape is read fast, but for a
            // leap second and a fraction finer than nanoseconds.
            if chrono.is_some() && second != 60 && (!dot || fraction.len() <= 9) {
                proptest::prop_assert!(parse_rfc3339_fast(&text).is_some(), "{}", text);
            }
        }
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
