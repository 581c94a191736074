//! Why a message was rejected: one variant per class, each naming the field.

use chrono::{DateTime, FixedOffset, NaiveDate};
use thiserror::Error;

/// The class of a rejected message, as stored in quarantine (`error_class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// The bytes are not one JSON value.
    MalformedJson,
    /// The message is over the size limit.
    TooLarge,
    /// The `schema` tag is not one this build understands.
    UnknownSchema,
    /// A required field is absent.
    MissingField,
    /// A field not in the schema is present.
    UnknownField,
    /// A field has the wrong JSON type or an unparsable value.
    WrongType,
    /// An enum field has a value outside its allowed set.
    BadEnum,
    /// The grid is not in the place registry.
    UnknownGrid,
    /// Numbers that cannot be true (e.g. more tested than residents).
    ImpossibleNumber,
    /// A time beyond the clock-skew tolerance in the future.
    FutureTime,
    /// A time before the campaign started.
    BeforeCampaign,
    /// gridstat itself failed on the message (a bug): quarantined so that
    /// the message cannot stop its partition, kept to report and re-send.
    Internal,
}

impl ErrorClass {
    /// Every class, in a fixed order ([`ErrorClass::Internal`] last).
    pub const ALL: &'static [ErrorClass] = &[
        Self::InvalidUtf8,
        Self::MalformedJson,
        Self::TooLarge,
        Self::UnknownSchema,
        Self::MissingField,
        Self::UnknownField,
        Self::WrongType,
        Self::BadEnum,
        Self::UnknownGrid,
        Self::ImpossibleNumber,
        Self::FutureTime,
        Self::BeforeCampaign,
        Self::Internal,
    ];

    /// The classes that say what is wrong with the message itself (all but
    /// [`ErrorClass::Internal`], the last of [`ErrorClass::ALL`]): what a
    /// producer can get wrong.
    pub const OF_INPUT: &'static [ErrorClass] = match Self::ALL.split_last() {
        Some((Self::Internal, input)) => input,
        _ => panic!("ErrorClass::ALL ends with Internal"),
    };

    /// Stable snake_case name, as written to quarantine files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidUtf8 => "invalid_utf8",
            Self::MalformedJson => "malformed_json",
            Self::TooLarge => "too_large",
            Self::UnknownSchema => "unknown_schema",
            Self::MissingField => "missing_field",
            Self::UnknownField => "unknown_field",
            Self::WrongType => "wrong_type",
            Self::BadEnum => "bad_enum",
            Self::UnknownGrid => "unknown_grid",
            Self::ImpossibleNumber => "impossible_number",
            Self::FutureTime => "future_time",
            Self::BeforeCampaign => "before_campaign",
            Self::Internal => "internal",
        }
    }

    /// Chinese name, as the internal dashboard shows it.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::InvalidUtf8 => "编码错误",
            Self::MalformedJson => "格式错误",
            Self::TooLarge => "内容超长",
            Self::UnknownSchema => "未知版本",
            Self::MissingField => "缺少字段",
            Self::UnknownField => "多余字段",
            Self::WrongType => "字段类型错误",
            Self::BadEnum => "取值不在选项内",
            Self::UnknownGrid => "网格不存在",
            Self::ImpossibleNumber => "数字不合理",
            Self::FutureTime => "时间超前",
            Self::BeforeCampaign => "早于活动开始",
            Self::Internal => "系统内部错误",
        }
    }

    /// Parse the stable name back.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message that cannot be accepted. Dead-letter it, count it, continue.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not UTF-8.
    #[error("message is not valid UTF-8 (first bad byte at offset {valid_up_to})")]
    InvalidUtf8 {
        /// Bytes before the first invalid sequence.
        valid_up_to: usize,
    },
    /// Not JSON.
    #[error("malformed JSON at line {line} column {column}: {reason}")]
    MalformedJson {
        /// 1-based line in the message.
        line: usize,
        /// 1-based column in the message.
        column: usize,
        /// What the parser expected.
        reason: String,
    },
    /// Too big.
    #[error("message is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Size of the message.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Unknown `schema` tag.
    #[error("unknown schema {found:?}; this build reads {}", known.join(", "))]
    UnknownSchema {
        /// The tag found.
        found: String,
        /// The tags understood.
        known: &'static [&'static str],
    },
    /// A required field is absent.
    #[error("missing field `{field}`")]
    MissingField {
        /// Path of the missing field, e.g. `hazards[0].kind`.
        field: String,
    },
    /// A field not in the schema.
    #[error("unknown field `{field}`; valid fields here: {valid_fields}")]
    UnknownField {
        /// Path of the unexpected field.
        field: String,
        /// The fields allowed at that place.
        valid_fields: String,
    },
    /// Wrong JSON type or unparsable value.
    #[error("field `{field}` has the wrong type: {reason}")]
    WrongType {
        /// Path of the field (`$` for the message itself).
        field: String,
        /// What was found and what was expected.
        reason: String,
    },
    /// Enum value outside its set.
    #[error("field `{field}` has value {found:?}; allowed: {allowed}")]
    BadEnum {
        /// Path of the field.
        field: String,
        /// The value found.
        found: String,
        /// The values allowed.
        allowed: String,
    },
    /// Grid not in the registry.
    #[error("field `{field}`: grid {grid_id:?} is not in the place registry")]
    UnknownGrid {
        /// Path of the field (`grid_id`).
        field: String,
        /// The grid id found.
        grid_id: String,
    },
    /// Numbers that cannot be true.
    #[error("field `{field}` is impossible: {reason}")]
    ImpossibleNumber {
        /// Path of the offending field.
        field: String,
        /// Why.
        reason: String,
    },
    /// Too far in the future.
    #[error("field `{field}` is {time}, later than {reference} plus the {tolerance_minutes}-minute clock-skew tolerance")]
    FutureTime {
        /// Path of the time field.
        field: String,
        /// The time found.
        time: DateTime<FixedOffset>,
        /// The time it was compared against (send or receive time).
        reference: DateTime<FixedOffset>,
        /// Allowed skew.
        tolerance_minutes: i64,
    },
    /// Before the campaign.
    #[error("field `{field}` is {time}, before the campaign start {campaign_start}")]
    BeforeCampaign {
        /// Path of the time field.
        field: String,
        /// The time found.
        time: DateTime<FixedOffset>,
        /// First day of the campaign (local date).
        campaign_start: NaiveDate,
    },
    /// gridstat failed on the message.
    #[error("gridstat failed on this message, a bug to report with its raw bytes: {reason}")]
    Internal {
        /// What failed (a panic's message).
        reason: String,
    },
}

impl DecodeError {
    /// The class, for quarantine and metrics.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::InvalidUtf8 { .. } => ErrorClass::InvalidUtf8,
            Self::MalformedJson { .. } => ErrorClass::MalformedJson,
            Self::TooLarge { .. } => ErrorClass::TooLarge,
            Self::UnknownSchema { .. } => ErrorClass::UnknownSchema,
            Self::MissingField { .. } => ErrorClass::MissingField,
            Self::UnknownField { .. } => ErrorClass::UnknownField,
            Self::WrongType { .. } => ErrorClass::WrongType,
            Self::BadEnum { .. } => ErrorClass::BadEnum,
            Self::UnknownGrid { .. } => ErrorClass::UnknownGrid,
            Self::ImpossibleNumber { .. } => ErrorClass::ImpossibleNumber,
            Self::FutureTime { .. } => ErrorClass::FutureTime,
            Self::BeforeCampaign { .. } => ErrorClass::BeforeCampaign,
            Self::Internal { .. } => ErrorClass::Internal,
        }
    }

    /// The field the error names, if it names one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidUtf8 { .. }
            | Self::MalformedJson { .. }
            | Self::TooLarge { .. }
            | Self::Internal { .. } => None,
            Self::UnknownSchema { .. } => Some("schema"),
            Self::MissingField { field }
            | Self::UnknownField { field, .. }
            | Self::WrongType { field, .. }
            | Self::BadEnum { field, .. }
            | Self::UnknownGrid { field, .. }
            | Self::ImpossibleNumber { field, .. }
            | Self::FutureTime { field, .. }
            | Self::BeforeCampaign { field, .. } => Some(field),
        }
    }
}
