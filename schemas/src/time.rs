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

#[cfg(test)]
mod tests {
    use super::*;

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
