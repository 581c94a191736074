//! The metric catalogue: every figure of the rollups, what kind of figure
//! it is, how it adds up the hierarchy, its zh-CN label and unit, and
//! whether it may be published.
//!
//! `aggregate` builds the rollup tables' columns from it, `site-gen` reads
//! labels, kinds and publication from it, and both check the tables they
//! write or read against [`rollup_schema`]. Code names a metric by its
//! [`Metric`] variant, never by its column name, so renaming one is a
//! compile error (the variant) or a failing golden test (the column).
//!
//! ```
//! use gridstat_schemas::metrics::{Kind, Metric};
//! let coverage = Metric::Coverage.spec();
//! assert_eq!(coverage.name, "coverage");
//! assert_eq!(
//!     coverage.kind,
//!     Kind::Ratio { num: Metric::HouseholdsVisited, den: Metric::HouseholdsRegistered }
//! );
//! assert_eq!(Metric::from_name("hardships_open"), Some(Metric::HardshipsOpen));
//! ```

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Serialize, Serializer};

use crate::record::{HardshipCategory, ReporterRole, SafetyCheck, SpecialGroup};

/// A level of the place hierarchy that rollups are computed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The city.
    City,
    /// A county-level division (区 / 县级市).
    County,
    /// A town or street (镇 / 街道).
    Town,
    /// A village or community (村 / 社区).
    Village,
    /// A grid (网格).
    Grid,
}

impl Level {
    /// Every level, from the top: the order of the rollups' rows.
    pub const ALL: [Level; 5] = [
        Level::City,
        Level::County,
        Level::Town,
        Level::Village,
        Level::Grid,
    ];

    /// The rollups' `level` value.
    pub fn name(self) -> &'static str {
        match self {
            Level::City => "city",
            Level::County => "county",
            Level::Town => "town",
            Level::Village => "village",
            Level::Grid => "grid",
        }
    }

    /// The level of a rollups' `level` value.
    pub fn parse(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The level below (a grid has none).
    pub fn child(self) -> Option<Level> {
        match self {
            Level::City => Some(Level::County),
            Level::County => Some(Level::Town),
            Level::Town => Some(Level::Village),
            Level::Village => Some(Level::Grid),
            Level::Grid => None,
        }
    }

    /// The level above (the city has none).
    pub fn parent(self) -> Option<Level> {
        match self {
            Level::City => None,
            Level::County => Some(Level::City),
            Level::Town => Some(Level::County),
            Level::Village => Some(Level::Town),
            Level::Grid => Some(Level::Village),
        }
    }

    /// zh-CN name of the level.
    pub fn label(self) -> &'static str {
        match self {
            Level::City => "市",
            Level::County => "县(市、区)",
            Level::Town => "镇(街道)",
            Level::Village => "村(社区)",
            Level::Grid => "网格",
        }
    }
}

/// What kind of figure a metric is: how a day's value is formed and what
/// the cumulative table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A figure of the place registry (households registered): the same
    /// in both tables on every day.
    Registered,
    /// Counted per day; the cumulative table holds the running sum.
    Flow,
    /// Distinct things (households, reporters): per day those of the day;
    /// the cumulative table holds those since the campaign's start.
    Distinct,
    /// A state at the end of the day (cases open): the same in both tables.
    State,
    /// `num ÷ den` of the same row; null when `den` is 0.
    Ratio {
        /// Numerator.
        num: Metric,
        /// Denominator.
        den: Metric,
    },
    /// A percentile of hours to resolve a case: per day of those resolved
    /// that day; cumulative of all resolved so far.
    Percentile,
    /// The sum of other metrics, derived by readers; not a rollup column.
    Sum(&'static [Metric]),
}

/// Who may see a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    /// On the public site, under disclosure control.
    Public,
    /// Published only as a part of a public ratio, never on its own; its
    /// cells are still protected, since the ratio reveals them.
    InRatio,
    /// On the internal dashboard only.
    Internal,
}

/// Column type of a metric in the rollup tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// A count: `Int64`.
    Count,
    /// A ratio or a number of hours: `Float64`.
    Real,
}

impl ValueType {
    /// The Arrow type.
    pub fn data_type(self) -> DataType {
        match self {
            ValueType::Count => DataType::Int64,
            ValueType::Real => DataType::Float64,
        }
    }
}

/// One metric's description.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricSpec {
    /// The metric.
    pub metric: Metric,
    /// Column name in the rollup tables (and key in downloads).
    pub name: &'static str,
    /// What kind of figure it is.
    pub kind: Kind,
    /// Whether the children of every area sum to it, at every level. Counts
    /// of things that belong to one grid (households, cases) are; distinct
    /// reporters (who visit several grids), ratios and percentiles are not.
    pub additive: bool,
    /// zh-CN label, as the site shows the cumulative figure.
    pub label: &'static str,
    /// zh-CN unit shown after a count; `%` for ratios.
    pub unit: &'static str,
    /// Who may see it.
    pub publication: Publication,
    /// Column type.
    pub value_type: ValueType,
}

macro_rules! catalogue {
    ($( $variant:ident => $name:literal, $kind:expr, additive: $additive:literal,
        $label:literal, $unit:literal, $publication:ident, $value:ident; )*) => {
        /// A rollup metric. Variants are in column order: the stored
        /// columns, then the figures readers derive ([`Kind::Sum`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Metric {
            $(
                #[doc = concat!("`", $name, "`: ", $label, ".")]
                $variant,
            )*
        }

        /// Every metric's description, indexed by `Metric as usize`.
        pub const CATALOGUE: &[MetricSpec] = &[
            $( MetricSpec {
                metric: Metric::$variant,
                name: $name,
                kind: $kind,
                additive: $additive,
                label: $label,
                unit: $unit,
                publication: Publication::$publication,
                value_type: ValueType::$value,
            }, )*
        ];
    };
}

use Kind::{Distinct, Flow, Percentile, Registered, State};

catalogue! {
    HouseholdsRegistered => "households_registered", Registered, additive: true, "登记住户", "户", Public, Count;
    Visits => "visits", Flow, additive: true, "走访次数", "次", Internal, Count;
    HouseholdsVisited => "households_visited", Distinct, additive: true, "累计走访住户", "户", Public, Count;
    Coverage => "coverage", Kind::Ratio { num: Metric::HouseholdsVisited, den: Metric::HouseholdsRegistered },
        additive: false, "住户覆盖率", "%", Public, Real;
    HouseholdsNew => "households_new", Flow, additive: true, "首次走访住户", "户", Internal, Count;
    GridsRegistered => "grids_registered", Registered, additive: true, "网格总数", "个", Public, Count;
    GridsReached => "grids_reached", Distinct, additive: true, "已走访网格", "个", Public, Count;
    GridsReachedShare => "grids_reached_share", Kind::Ratio { num: Metric::GridsReached, den: Metric::GridsRegistered },
        additive: false, "网格走访覆盖率", "%", Public, Real;
    EnterprisesVisited => "enterprises_visited", Distinct, additive: true, "走访企业", "家", Public, Count;
    VenuesVisited => "venues_visited", Distinct, additive: true, "走访场所", "处", Public, Count;
    SpecialElderlyAlone => "special_elderly_alone", Flow, additive: true, "走访独居老人户", "户次", Public, Count;
    SpecialDisabled => "special_disabled", Flow, additive: true, "走访残疾人户", "户次", Public, Count;
    SpecialChronicIllness => "special_chronic_illness", Flow, additive: true, "走访慢性病患者户", "户次", Public, Count;
    SpecialPregnant => "special_pregnant", Flow, additive: true, "走访孕产妇户", "户次", Public, Count;
    SpecialLeftBehindChild => "special_left_behind_child", Flow, additive: true, "走访留守儿童户", "户次", Public, Count;
    SpecialLowIncome => "special_low_income", Flow, additive: true, "走访低保户", "户次", Public, Count;
    ResidentsRecorded => "residents_recorded", Flow, additive: true, "登记人员", "人", InRatio, Count;
    ResidentsPresent => "residents_present", Flow, additive: true, "核对在家人员", "人", Internal, Count;
    PresentShare => "present_share", Kind::Ratio { num: Metric::ResidentsPresent, den: Metric::ResidentsRecorded },
        additive: false, "在家人员占登记人员比例", "%", Internal, Real;
    NewcomersRegistered => "newcomers_registered", Flow, additive: true, "外来人员报备", "人", Public, Count;
    ResidentsTested => "residents_tested", Flow, additive: true, "有效核酸检测人员", "人", InRatio, Count;
    ResidentsVaccinated => "residents_vaccinated", Flow, additive: true, "已接种疫苗人员", "人", InRatio, Count;
    TestedShare => "tested_share", Kind::Ratio { num: Metric::ResidentsTested, den: Metric::ResidentsRecorded },
        additive: false, "核酸检测率", "%", Public, Real;
    VaccinatedShare => "vaccinated_share", Kind::Ratio { num: Metric::ResidentsVaccinated, den: Metric::ResidentsRecorded },
        additive: false, "疫苗接种率", "%", Public, Real;
    StaffRecorded => "staff_recorded", Flow, additive: true, "企业和场所从业人员", "人", InRatio, Count;
    StaffTested => "staff_tested", Flow, additive: true, "从业人员有效核酸检测", "人", InRatio, Count;
    StaffTestedShare => "staff_tested_share", Kind::Ratio { num: Metric::StaffTested, den: Metric::StaffRecorded },
        additive: false, "从业人员核酸检测率", "%", Public, Real;
    ChecksGas => "checks_gas", Flow, additive: true, "燃气安全检查", "次", Public, Count;
    ChecksElectricity => "checks_electricity", Flow, additive: true, "用电安全检查", "次", Public, Count;
    ChecksFire => "checks_fire", Flow, additive: true, "消防安全检查", "次", Public, Count;
    ChecksBuilding => "checks_building", Flow, additive: true, "房屋安全检查", "次", Public, Count;
    ChecksProduction => "checks_production", Flow, additive: true, "安全生产检查", "次", Public, Count;
    HazardsFound => "hazards_found", Flow, additive: true, "排查安全隐患", "处", Public, Count;
    HazardsFixedOnSpot => "hazards_fixed_on_spot", Flow, additive: true, "当场整改隐患", "处", Internal, Count;
    HazardsHandedOn => "hazards_handed_on", Flow, additive: true, "移交隐患", "处", Internal, Count;
    HazardsResolved => "hazards_resolved", Flow, additive: true, "移交后办结隐患", "处", Internal, Count;
    HazardsAssigned => "hazards_assigned", Flow, additive: true, "已交办隐患", "处", Internal, Count;
    HazardsEscalated => "hazards_escalated", Flow, additive: true, "已上报隐患", "处", Internal, Count;
    HazardsOpen => "hazards_open", State, additive: true, "未整改隐患", "处", Public, Count;
    HazardsOverdue => "hazards_overdue", State, additive: true, "超时未整改隐患", "处", Internal, Count;
    HardshipsRaised => "hardships_raised", Flow, additive: true, "收集困难诉求", "件", Public, Count;
    HardshipsMedical => "hardships_medical", Flow, additive: true, "就医诉求", "件", Internal, Count;
    HardshipsSupplies => "hardships_supplies", Flow, additive: true, "生活物资诉求", "件", Internal, Count;
    HardshipsElderlyCare => "hardships_elderly_care", Flow, additive: true, "养老诉求", "件", Internal, Count;
    HardshipsEmployment => "hardships_employment", Flow, additive: true, "就业诉求", "件", Internal, Count;
    HardshipsDispute => "hardships_dispute", Flow, additive: true, "矛盾纠纷", "件", Internal, Count;
    HardshipsHousing => "hardships_housing", Flow, additive: true, "住房诉求", "件", Internal, Count;
    HardshipsOther => "hardships_other", Flow, additive: true, "其他诉求", "件", Internal, Count;
    HardshipsAssigned => "hardships_assigned", Flow, additive: true, "已交办诉求", "件", Internal, Count;
    HardshipsEscalated => "hardships_escalated", Flow, additive: true, "已上报诉求", "件", Internal, Count;
    HardshipsResolved => "hardships_resolved", Flow, additive: true, "已解决诉求", "件", Public, Count;
    HardshipsOpen => "hardships_open", State, additive: true, "未解决诉求", "件", Public, Count;
    HardshipsOverdue => "hardships_overdue", State, additive: true, "超时未解决诉求", "件", Internal, Count;
    ResolveHoursMedian => "resolve_hours_median", Percentile, additive: false, "诉求办结时长中位数", "小时", Internal, Real;
    ResolveHoursP90 => "resolve_hours_p90", Percentile, additive: false, "诉求办结时长90百分位", "小时", Internal, Real;
    HazardResolveHoursMedian => "hazard_resolve_hours_median", Percentile, additive: false, "隐患办结时长中位数", "小时", Internal, Real;
    HazardResolveHoursP90 => "hazard_resolve_hours_p90", Percentile, additive: false, "隐患办结时长90百分位", "小时", Internal, Real;
    ReportersActive => "reporters_active", Distinct, additive: false, "参与走访人员", "名", Internal, Count;
    ReportersCadre => "reporters_cadre", Distinct, additive: false, "下沉机关干部", "名", Public, Count;
    ReportersGridWorker => "reporters_grid_worker", Distinct, additive: false, "网格员", "名", Internal, Count;
    ReportersPolice => "reporters_police", Distinct, additive: false, "民警", "名", Internal, Count;
    ReportersVolunteer => "reporters_volunteer", Distinct, additive: false, "志愿者", "名", Internal, Count;
    ReportersDeputy => "reporters_deputy", Distinct, additive: false, "两代表一委员", "名", Internal, Count;
    EnlistedBuildingLeads => "enlisted_building_leads", Flow, additive: true, "发动楼长", "人", Internal, Count;
    EnlistedVolunteers => "enlisted_volunteers", Flow, additive: true, "发动志愿者", "人", Internal, Count;
    HazardsFixed => "hazards_fixed", Kind::Sum(&[Metric::HazardsFixedOnSpot, Metric::HazardsResolved]),
        additive: true, "已整改隐患", "处", Public, Count;
    Enlisted => "enlisted", Kind::Sum(&[Metric::EnlistedBuildingLeads, Metric::EnlistedVolunteers]),
        additive: true, "发动楼长和志愿者", "人", Public, Count;
}

/// The figures the public site shows, in the order it shows them.
pub const PUBLIC_FIGURES: &[Metric] = &[
    Metric::ReportersCadre,
    Metric::HouseholdsVisited,
    Metric::Coverage,
    Metric::GridsReached,
    Metric::GridsReachedShare,
    Metric::EnterprisesVisited,
    Metric::VenuesVisited,
    Metric::SpecialElderlyAlone,
    Metric::SpecialDisabled,
    Metric::SpecialChronicIllness,
    Metric::SpecialPregnant,
    Metric::SpecialLeftBehindChild,
    Metric::SpecialLowIncome,
    Metric::NewcomersRegistered,
    Metric::TestedShare,
    Metric::VaccinatedShare,
    Metric::StaffTestedShare,
    Metric::ChecksGas,
    Metric::ChecksElectricity,
    Metric::ChecksFire,
    Metric::ChecksBuilding,
    Metric::ChecksProduction,
    Metric::HazardsFound,
    Metric::HazardsFixed,
    Metric::HazardsOpen,
    Metric::HardshipsRaised,
    Metric::HardshipsResolved,
    Metric::HardshipsOpen,
    Metric::Enlisted,
];

impl Metric {
    /// Every metric, in column order.
    pub fn all() -> impl Iterator<Item = Metric> {
        CATALOGUE.iter().map(|s| s.metric)
    }

    /// The metrics that are rollup columns, in column order.
    pub fn stored() -> impl Iterator<Item = Metric> {
        Metric::all().filter(|m| m.is_stored())
    }

    /// The description.
    pub fn spec(self) -> &'static MetricSpec {
        &CATALOGUE[self as usize]
    }

    /// Column name.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The kind of figure.
    pub fn kind(self) -> Kind {
        self.spec().kind
    }

    /// zh-CN label.
    pub fn label(self) -> &'static str {
        self.spec().label
    }

    /// The metric of a column name.
    pub fn from_name(name: &str) -> Option<Metric> {
        CATALOGUE.iter().find(|s| s.name == name).map(|s| s.metric)
    }

    /// Whether it is a rollup column (not derived by readers).
    pub fn is_stored(self) -> bool {
        !matches!(self.kind(), Kind::Sum(_))
    }

    /// Whether its cumulative series never decreases over the campaign
    /// (flows, distinct counts and their sums), so that neighbouring days
    /// bound each other.
    pub fn is_monotone(self) -> bool {
        match self.kind() {
            Kind::Flow | Kind::Distinct => true,
            Kind::Sum(parts) => parts.iter().all(|p| p.is_monotone()),
            Kind::Registered | Kind::State | Kind::Ratio { .. } | Kind::Percentile => false,
        }
    }

    /// The role whose distinct reporters it counts; `None` for metrics
    /// that are not reporter counts and for [`Metric::ReportersActive`].
    pub fn reporter_role(self) -> Option<ReporterRole> {
        match self {
            Metric::ReportersCadre => Some(ReporterRole::Cadre),
            Metric::ReportersGridWorker => Some(ReporterRole::GridWorker),
            Metric::ReportersPolice => Some(ReporterRole::Police),
            Metric::ReportersVolunteer => Some(ReporterRole::Volunteer),
            Metric::ReportersDeputy => Some(ReporterRole::Deputy),
            _ => None,
        }
    }

    /// Whether it counts distinct reporters (of a role, or all).
    pub fn is_reporter_count(self) -> bool {
        self == Metric::ReportersActive || self.reporter_role().is_some()
    }

    /// The special group whose households' visits it counts.
    pub fn special_group(self) -> Option<SpecialGroup> {
        match self {
            Metric::SpecialElderlyAlone => Some(SpecialGroup::ElderlyAlone),
            Metric::SpecialDisabled => Some(SpecialGroup::Disabled),
            Metric::SpecialChronicIllness => Some(SpecialGroup::ChronicIllness),
            Metric::SpecialPregnant => Some(SpecialGroup::Pregnant),
            Metric::SpecialLeftBehindChild => Some(SpecialGroup::LeftBehindChild),
            Metric::SpecialLowIncome => Some(SpecialGroup::LowIncome),
            _ => None,
        }
    }

    /// The safety check whose visits it counts.
    pub fn safety_check(self) -> Option<SafetyCheck> {
        match self {
            Metric::ChecksGas => Some(SafetyCheck::Gas),
            Metric::ChecksElectricity => Some(SafetyCheck::Electricity),
            Metric::ChecksFire => Some(SafetyCheck::Fire),
            Metric::ChecksBuilding => Some(SafetyCheck::Building),
            Metric::ChecksProduction => Some(SafetyCheck::Production),
            _ => None,
        }
    }

    /// The hardship category it counts, for the per-category counts.
    pub fn hardship_category(self) -> Option<HardshipCategory> {
        match self {
            Metric::HardshipsMedical => Some(HardshipCategory::Medical),
            Metric::HardshipsSupplies => Some(HardshipCategory::Supplies),
            Metric::HardshipsElderlyCare => Some(HardshipCategory::ElderlyCare),
            Metric::HardshipsEmployment => Some(HardshipCategory::Employment),
            Metric::HardshipsDispute => Some(HardshipCategory::Dispute),
            Metric::HardshipsHousing => Some(HardshipCategory::Housing),
            Metric::HardshipsOther => Some(HardshipCategory::Other),
            _ => None,
        }
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// The rollup tables' key columns, before the metrics: (name, nullable).
pub const KEY_COLUMNS: [(&str, bool); 4] = [
    ("level", false),
    ("area_code", false),
    ("area_name", false),
    ("parent_code", true),
];

/// The schema of `rollups_daily` and `rollups_cumulative` as written to
/// each day's file (the `dt` partition is in the path, not a column).
/// Metric columns are nullable: ratios have no value where their
/// denominator is 0, percentiles none on days without resolutions.
pub fn rollup_schema() -> SchemaRef {
    let keys = KEY_COLUMNS
        .iter()
        .map(|(name, nullable)| Field::new(*name, DataType::Utf8, *nullable));
    let metrics =
        Metric::stored().map(|m| Field::new(m.name(), m.spec().value_type.data_type(), true));
    Arc::new(Schema::new(keys.chain(metrics).collect::<Vec<_>>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_indexed_by_metric_and_names_are_unique() {
        for (i, spec) in CATALOGUE.iter().enumerate() {
            assert_eq!(spec.metric as usize, i, "{} out of place", spec.name);
            assert_eq!(Metric::from_name(spec.name), Some(spec.metric));
        }
        let mut names: Vec<&str> = CATALOGUE.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
    }

    #[test]
    fn derived_metrics_come_last_and_sum_stored_ones() {
        let first_derived = CATALOGUE
            .iter()
            .position(|s| !s.metric.is_stored())
            .expect("some derived");
        assert!(CATALOGUE[first_derived..]
            .iter()
            .all(|s| !s.metric.is_stored()));
        for spec in CATALOGUE {
            match spec.kind {
                Kind::Sum(parts) => assert!(parts.iter().all(|p| p.is_stored())),
                Kind::Ratio { num, den } => {
                    assert!(num.is_stored() && den.is_stored());
                    assert_eq!(spec.value_type, ValueType::Real);
                    assert!(!spec.additive);
                }
                _ => {}
            }
        }
    }

    #[test]
    fn public_figures_are_public_and_ratios_show_only_publishable_parts() {
        for m in PUBLIC_FIGURES {
            assert_eq!(m.spec().publication, Publication::Public, "{m:?}");
        }
        for spec in CATALOGUE {
            if spec.publication == Publication::InRatio {
                assert!(
                    PUBLIC_FIGURES.iter().any(|f| matches!(f.kind(),
                        Kind::Ratio { num, den } if num == spec.metric || den == spec.metric)),
                    "{} is published in no ratio",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn per_role_and_per_category_names_follow_the_message_enums() {
        for m in Metric::all() {
            if let Some(role) = m.reporter_role() {
                let role = serde_json::to_value(role).unwrap();
                assert_eq!(m.name(), format!("reporters_{}", role.as_str().unwrap()));
            }
            if let Some(group) = m.special_group() {
                assert_eq!(m.name(), format!("special_{}", group.as_str()));
            }
            if let Some(check) = m.safety_check() {
                assert_eq!(m.name(), format!("checks_{}", check.as_str()));
            }
            if let Some(category) = m.hardship_category() {
                let category = serde_json::to_value(category).unwrap();
                assert_eq!(
                    m.name(),
                    format!("hardships_{}", category.as_str().unwrap())
                );
            }
        }
    }

    #[test]
    fn levels_chain_from_city_to_grid() {
        for pair in Level::ALL.windows(2) {
            assert_eq!(pair[0].child(), Some(pair[1]));
            assert_eq!(pair[1].parent(), Some(pair[0]));
            assert_eq!(Level::parse(pair[1].name()), Some(pair[1]));
        }
    }
}
