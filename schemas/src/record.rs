//! The two submission kinds that reporters' phones send, as versioned JSON.
//!
//! Every message carries a `schema` field (`gridstat.visit/1`,
//! `gridstat.case/1`). Unknown fields are rejected, so a typo on a phone
//! never silently drops a figure.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// A list of one-byte flags held inline: every visit carries its safety
/// checks, and a heap vector each cost an allocation when decoded and a
/// free (on another thread) when filed — 1.5 % of the ingest's
/// instructions (callgrind, first 100k messages).
pub type FlagList<T> = SmallVec<[T; 8]>;

/// Schema tag of a visit message, version 1.
pub const VISIT_SCHEMA_V1: &str = "gridstat.visit/1";
/// Schema tag of a case-update message, version 1.
pub const CASE_SCHEMA_V1: &str = "gridstat.case/1";
/// Every schema tag this build understands.
pub const KNOWN_SCHEMAS: &[&str] = &[VISIT_SCHEMA_V1, CASE_SCHEMA_V1];

/// Who visited: the five reporter roles named by the campaign.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReporterRole {
    /// 机关干部: agency cadre sent down into the grid.
    Cadre,
    /// 网格员: full-time grid worker.
    GridWorker,
    /// 民警: community police officer.
    Police,
    /// 志愿者: volunteer.
    Volunteer,
    /// 两代表一委员: people's-congress / party-congress deputy or CPPCC member.
    Deputy,
}

/// What was visited.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// 住户: a household.
    Household,
    /// 企业: an enterprise or workplace.
    Enterprise,
    /// 场所: a busy venue (market, internet café, KTV, salon, …).
    Venue,
}

/// Special groups recorded for a household (重点人群).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SpecialGroup {
    /// 独居老人: elderly person living alone.
    ElderlyAlone,
    /// 残疾人: person with a disability.
    Disabled,
    /// 慢性病患者: chronic illness.
    ChronicIllness,
    /// 孕产妇: pregnant or post-partum.
    Pregnant,
    /// 留守儿童: left-behind child.
    LeftBehindChild,
    /// 低保户: low-income household.
    LowIncome,
}

/// A safety check done during the visit (家居安全 / 安全生产).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SafetyCheck {
    /// 燃气: gas.
    Gas,
    /// 用电: electricity.
    Electricity,
    /// 消防: fire (extinguishers, exits, open flames).
    Fire,
    /// 房屋: building structure.
    Building,
    /// 安全生产: workplace production safety.
    Production,
}

/// Kind of a safety hazard found (安全隐患).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum HazardKind {
    /// Gas leak, old hose, cylinder stored indoors.
    Gas,
    /// Overloaded or bare wiring, e-bike charging indoors.
    Electrical,
    /// Blocked exit, missing extinguisher, open flame.
    Fire,
    /// Cracked or unsafe building.
    Structural,
    /// Workplace production-safety hazard.
    Production,
    /// Anything else.
    Other,
}

/// Category of a hardship or request (困难诉求).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum HardshipCategory {
    /// 就医: medical care, medicine.
    Medical,
    /// 生活物资: food and supplies.
    Supplies,
    /// 养老: elderly care.
    ElderlyCare,
    /// 就业: jobs and wages.
    Employment,
    /// 矛盾纠纷: disputes.
    Dispute,
    /// 住房: housing.
    Housing,
    /// 其他: anything else.
    Other,
}

/// How urgent a hardship is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// Can wait days.
    Low,
    /// Normal.
    Normal,
    /// Must be handled today.
    Urgent,
}

/// Kind of case a case update follows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// A hardship raised in a visit.
    Hardship,
    /// A hazard found in a visit and not fixed on the spot.
    Hazard,
}

/// Status a case update moves a case to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Handed to a handler.
    Assigned,
    /// Escalated to a higher level.
    Escalated,
    /// Resolved: the case is closed.
    Resolved,
}

/// A hazard found during a visit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hazard<'a> {
    /// Case id, unique city-wide; case updates refer to it.
    #[schemars(length(min = 1, max = 128), pattern(r"\S"))]
    #[serde(borrow)]
    pub hazard_id: Cow<'a, str>,
    /// What kind of hazard.
    pub kind: HazardKind,
    /// Fixed on the spot (就地整改); if false it is handed on as a case.
    pub fixed_on_spot: bool,
}

/// A hardship or request raised during a visit; it becomes a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hardship<'a> {
    /// Case id, unique city-wide; case updates refer to it.
    #[schemars(length(min = 1, max = 128), pattern(r"\S"))]
    #[serde(borrow)]
    pub case_id: Cow<'a, str>,
    /// Category of the request.
    pub category: HardshipCategory,
    /// How urgent it is.
    pub urgency: Urgency,
    /// Free-text note by the reporter. Internal only: never published.
    #[serde(borrow)]
    pub note: Cow<'a, str>,
}

/// One visit to a household, enterprise or venue (`gridstat.visit/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Visit<'a> {
    /// Always `gridstat.visit/1`.
    #[serde(borrow)]
    #[schemars(extend("const" = VISIT_SCHEMA_V1))]
    pub schema: Cow<'a, str>,
    /// Unique id of this submission; retries reuse it.
    #[schemars(length(min = 1, max = 128), pattern(r"\S"))]
    #[serde(borrow)]
    pub submission_id: Cow<'a, str>,
    /// When the phone sent it (local time with offset).
    #[serde(
        serialize_with = "crate::time::serialize_rfc3339",
        deserialize_with = "crate::time::deserialize_rfc3339"
    )]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub sent_at: DateTime<FixedOffset>,
    /// When the visit happened (local time with offset, Asia/Shanghai).
    #[serde(
        serialize_with = "crate::time::serialize_rfc3339",
        deserialize_with = "crate::time::deserialize_rfc3339"
    )]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub visited_at: DateTime<FixedOffset>,
    /// Pseudonymous reporter id. Never published.
    #[schemars(length(min = 1, max = 128), pattern(r"\S"))]
    #[serde(borrow)]
    pub reporter_id: Cow<'a, str>,
    /// Role of the reporter.
    pub reporter_role: ReporterRole,
    /// The agency that sent the reporter down (派出单位, e.g. 台山市民政局):
    /// optional, so producers that do not know it send visits as before.
    #[schemars(length(min = 1, max = 128), pattern(r"\S"))]
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub reporter_unit: Option<Cow<'a, str>>,
    /// Grid id from the place registry.
    #[schemars(length(min = 1))]
    #[serde(borrow)]
    pub grid_id: Cow<'a, str>,
    /// Household, enterprise or venue.
    pub target_kind: TargetKind,
    /// Pseudonymous id of the household (or enterprise / venue). Never published.
    #[schemars(length(min = 1, max = 128), pattern(r"\S"))]
    #[serde(borrow)]
    pub target_id: Cow<'a, str>,
    /// Residents recorded for the household (staff for an enterprise or venue).
    pub residents_recorded: u32,
    /// Of those, present during the visit.
    pub residents_present: u32,
    /// Newcomers registered (外来人员报备) in this visit.
    pub newcomers_registered: u32,
    /// Residents with a valid recent COVID test (核酸).
    pub residents_tested: u32,
    /// Residents vaccinated against COVID (新冠疫苗接种).
    pub residents_vaccinated: u32,
    /// Special-group flags for the household.
    #[serde(default, skip_serializing_if = "SmallVec::is_empty")]
    #[schemars(with = "Vec<SpecialGroup>")]
    pub special_groups: FlagList<SpecialGroup>,
    /// Safety checks done.
    #[serde(default, skip_serializing_if = "SmallVec::is_empty")]
    #[schemars(with = "Vec<SafetyCheck>")]
    pub safety_checks: FlagList<SafetyCheck>,
    /// Hazards found.
    #[serde(default, borrow, skip_serializing_if = "Vec::is_empty")]
    pub hazards: Vec<Hazard<'a>>,
    /// Hardships raised.
    #[serde(default, borrow, skip_serializing_if = "Vec::is_empty")]
    pub hardships: Vec<Hardship<'a>>,
    /// People enlisted as building leads (楼长).
    pub enlisted_building_leads: u32,
    /// People enlisted as volunteers (志愿者).
    pub enlisted_volunteers: u32,
}

/// An update of a case handed on from a visit (`gridstat.case/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseUpdate<'a> {
    /// Always `gridstat.case/1`.
    #[serde(borrow)]
    #[schemars(extend("const" = CASE_SCHEMA_V1))]
    pub schema: Cow<'a, str>,
    /// Unique id of this submission; retries reuse it.
    #[schemars(length(min = 1, max = 128), pattern(r"\S"))]
    #[serde(borrow)]
    pub submission_id: Cow<'a, str>,
    /// When the handler's device sent it.
    #[serde(
        serialize_with = "crate::time::serialize_rfc3339",
        deserialize_with = "crate::time::deserialize_rfc3339"
    )]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub sent_at: DateTime<FixedOffset>,
    /// The hardship `case_id` or hazard `hazard_id` this update is about.
    #[schemars(length(min = 1, max = 128), pattern(r"\S"))]
    #[serde(borrow)]
    pub case_id: Cow<'a, str>,
    /// Whether the case is a hardship or a hazard.
    pub case_kind: CaseKind,
    /// Grid of the case.
    #[schemars(length(min = 1))]
    #[serde(borrow)]
    pub grid_id: Cow<'a, str>,
    /// New status.
    pub status: CaseStatus,
    /// When the status changed (local time with offset).
    #[serde(
        serialize_with = "crate::time::serialize_rfc3339",
        deserialize_with = "crate::time::deserialize_rfc3339"
    )]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub updated_at: DateTime<FixedOffset>,
    /// Pseudonymous id of the handler. Never published.
    #[schemars(length(min = 1, max = 128), pattern(r"\S"))]
    #[serde(borrow)]
    pub handler_id: Cow<'a, str>,
}

/// A decoded, validated submission. Its strings borrow from the message
/// where they can (no escapes), so decoding allocates little; the record
/// is held inline, not boxed (a box per message cost an allocation and a
/// free on the filing thread, 0.8 % of the ingest's instructions).
#[derive(Debug, Clone, PartialEq)]
pub enum Submission<'a> {
    /// A visit.
    Visit(Visit<'a>),
    /// A case update.
    Case(CaseUpdate<'a>),
}

impl Submission<'_> {
    /// The submission id, for deduplication.
    pub fn submission_id(&self) -> &str {
        match self {
            Submission::Visit(v) => &v.submission_id,
            Submission::Case(c) => &c.submission_id,
        }
    }

    /// The grid the submission is about.
    pub fn grid_id(&self) -> &str {
        match self {
            Submission::Visit(v) => &v.grid_id,
            Submission::Case(c) => &c.grid_id,
        }
    }

    /// The time the event happened (visit time or status-change time).
    pub fn event_time(&self) -> DateTime<FixedOffset> {
        match self {
            Submission::Visit(v) => v.visited_at,
            Submission::Case(c) => c.updated_at,
        }
    }
}

macro_rules! impl_as_str {
    ($ty:ty { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            /// The wire name (snake_case), as stored in the lake.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $s),+ }
            }
            /// Every value, in order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            /// The value of a wire name.
            pub fn from_wire(name: &str) -> Option<Self> {
                match name { $($s => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

impl_as_str!(ReporterRole { Cadre => "cadre", GridWorker => "grid_worker", Police => "police", Volunteer => "volunteer", Deputy => "deputy" });
impl_as_str!(TargetKind { Household => "household", Enterprise => "enterprise", Venue => "venue" });
impl_as_str!(SpecialGroup { ElderlyAlone => "elderly_alone", Disabled => "disabled", ChronicIllness => "chronic_illness", Pregnant => "pregnant", LeftBehindChild => "left_behind_child", LowIncome => "low_income" });
impl_as_str!(SafetyCheck { Gas => "gas", Electricity => "electricity", Fire => "fire", Building => "building", Production => "production" });
impl_as_str!(HazardKind { Gas => "gas", Electrical => "electrical", Fire => "fire", Structural => "structural", Production => "production", Other => "other" });
impl_as_str!(HardshipCategory { Medical => "medical", Supplies => "supplies", ElderlyCare => "elderly_care", Employment => "employment", Dispute => "dispute", Housing => "housing", Other => "other" });
impl_as_str!(Urgency { Low => "low", Normal => "normal", Urgent => "urgent" });
impl_as_str!(CaseKind { Hardship => "hardship", Hazard => "hazard" });
impl_as_str!(CaseStatus { Assigned => "assigned", Escalated => "escalated", Resolved => "resolved" });

impl HardshipCategory {
    /// Chinese label used on the public site.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Medical => "就医",
            Self::Supplies => "生活物资",
            Self::ElderlyCare => "养老",
            Self::Employment => "就业",
            Self::Dispute => "矛盾纠纷",
            Self::Housing => "住房",
            Self::Other => "其他",
        }
    }
}

impl HazardKind {
    /// Chinese label used on the dashboard.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Gas => "燃气",
            Self::Electrical => "用电",
            Self::Fire => "消防",
            Self::Structural => "房屋结构",
            Self::Production => "安全生产",
            Self::Other => "其他",
        }
    }
}

impl Urgency {
    /// Chinese label used on the dashboard.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Low => "不急",
            Self::Normal => "一般",
            Self::Urgent => "紧急",
        }
    }
}

impl CaseKind {
    /// Chinese label used on the dashboard.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Hardship => "困难诉求",
            Self::Hazard => "安全隐患",
        }
    }
}

impl CaseStatus {
    /// Chinese label used on the dashboard: the state a case is in after
    /// an update of this status.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Assigned => "已交办",
            Self::Escalated => "已上报",
            Self::Resolved => "已办结",
        }
    }
}

impl ReporterRole {
    /// Chinese label used on the dashboard.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Cadre => "机关干部",
            Self::GridWorker => "网格员",
            Self::Police => "民警",
            Self::Volunteer => "志愿者",
            Self::Deputy => "两代表一委员",
        }
    }
}
