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
