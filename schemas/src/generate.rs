//! A deterministic synthetic campaign: the messages reporters' phones would
//! send, in arrival order, with known duplicates, invalid messages, late
//! arrivals and case updates.
//!
//! It also makes what the checks of the data must see: cadres with the
//! agency that sent them (`reporter_unit`, left out by some phones), visits
//! to special groups and safety checks of every kind, cases reopened after
//! they were resolved, updates of cases no visit opened (raised through a
//! hotline), and a few grids with more households than the registry says,
//! visited in full whatever the scale ([`stale_registry`]): coverage above
//! 100 %.
//!
//! Same [`GenOptions`] and registry → the same bytes. The generator knows
//! what it made ([`Expect`]), so tests can check the decoder and the whole
//! pipeline against it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde_json::Value;

use crate::error::ErrorClass;
use crate::record::{
    CaseKind, CaseStatus, CaseUpdate, FlagList, Hardship, HardshipCategory, Hazard, HazardKind,
    ReporterRole, SafetyCheck, SpecialGroup, TargetKind, Urgency, Visit, CASE_SCHEMA_V1,
    VISIT_SCHEMA_V1,
};
use crate::registry::Registry;
use crate::time::local_midnight;

/// What the generator intends a message to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A valid first copy.
    Valid,
    /// A byte-identical resend of an earlier valid message.
    Duplicate,
    /// A later resend of an earlier valid visit with the same submission
    /// id but other content (an edited visit, sometimes dated a day
    /// earlier): valid, but counted once, as its first copy.
    Conflict,
    /// Invalid, to be rejected with this class.
    Invalid(ErrorClass),
}

/// Which stream a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Visits (`grid.visits.v1`).
    Visits,
    /// Case updates (`grid.cases.v1`).
    Cases,
}

/// One generated message.
#[derive(Debug, Clone)]
pub struct GeneratedMessage {
    /// The message bytes (one NDJSON line without the newline).
    pub bytes: Vec<u8>,
    /// What it is meant to be.
    pub expect: Expect,
    /// Which stream.
    pub stream: Stream,
    /// Partition key: the grid id.
    pub key: String,
    /// When the phone sent it (epoch milliseconds): the Kafka timestamp.
    pub sent_at_ms: i64,
}

/// Knobs of a synthetic campaign.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// RNG seed.
    pub seed: u64,
    /// First day.
    pub start: NaiveDate,
    /// Number of days.
    pub days: u32,
    /// Visits per registered household by the end; up to 1 it is the
    /// coverage reached, above 1 the extra visits are follow-ups.
    pub scale: f64,
    /// Share of valid messages sent a second time.
    pub duplicate_rate: f64,
    /// Invalid messages per valid visit.
    pub invalid_rate: f64,
    /// Share of visits sent one to three days after they happened.
    pub late_rate: f64,
    /// Share of handed-on cases whose updates are sent.
    pub case_update_rate: f64,
    /// Share of visits sent again hours later, edited, under the same
    /// submission id ([`Expect::Conflict`]).
    pub conflict_rate: f64,
    /// The decoder's message size limit (to make too-large messages).
    pub max_message_bytes: usize,
}

impl Default for GenOptions {
    fn default() -> Self {
        Self {
            seed: 2022,
            start: crate::time::DEFAULT_CAMPAIGN_START,
            days: 14,
            scale: 0.85,
            duplicate_rate: 0.02,
            invalid_rate: 0.005,
            late_rate: 0.03,
            case_update_rate: 1.0,
            conflict_rate: 0.0,
            max_message_bytes: crate::decode::DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// County-level speed of coverage (per-day rate of the saturating curve),
/// in registry county order; counties beyond the table reuse it cyclically.
const COUNTY_SPEED: [f64; 7] = [0.30, 0.38, 0.22, 0.26, 0.16, 0.20, 0.12];
/// Visit-hour weights for 08:00 … 21:00 local time: daytime, and the evening
/// peak 18:00–21:00 when people are home.
const HOUR_WEIGHTS: [u32; 14] = [2, 6, 8, 7, 2, 2, 6, 7, 6, 3, 8, 10, 9, 2];
const ROLE_WEIGHTS: [(ReporterRole, u32); 5] = [
    (ReporterRole::Cadre, 45),
    (ReporterRole::GridWorker, 30),
    (ReporterRole::Volunteer, 12),
    (ReporterRole::Police, 8),
    (ReporterRole::Deputy, 5),
];

/// Iterator over a campaign's messages, in arrival order.
#[derive(Debug)]
pub struct Generator<'r> {
    registry: &'r Registry,
    opts: GenOptions,
    rng: Pcg64Mcg,
    day: u32,
    seq: u64,
    visited: Vec<u64>,
    sites_visited: Vec<u64>,
    grid_speed: Vec<f64>,
    pending: BTreeMap<u32, Vec<EventBox>>,
    ready: std::vec::IntoIter<EventBox>,
}

#[derive(Debug)]
struct EventBox(Box<EventInner>);
#[derive(Debug)]
struct EventInner {
    sent_ms: i64,
    seq: u64,
    msg: GeneratedMessage,
}

impl<'r> Generator<'r> {
    /// A generator over `registry` with `opts`.
    pub fn new(registry: &'r Registry, opts: GenOptions) -> Self {
        let mut rng = Pcg64Mcg::seed_from_u64(opts.seed);
        let grid_speed = registry
            .grids
            .iter()
            .map(|g| COUNTY_SPEED[g.county % COUNTY_SPEED.len()] * rng.random_range(0.7..1.3))
            .collect();
        Self {
            registry,
            visited: vec![0; registry.grids.len()],
            sites_visited: vec![0; registry.grids.len()],
            grid_speed,
            rng,
            opts,
            day: 0,
            seq: 0,
            pending: BTreeMap::new(),
            ready: Vec::new().into_iter(),
        }
    }

    fn campaign_end(&self) -> DateTime<FixedOffset> {
        local_midnight(self.opts.start) + Duration::days(i64::from(self.opts.days))
    }

    fn schedule(&mut self, sent_at: DateTime<FixedOffset>, msg: GeneratedMessage) {
        if sent_at >= self.campaign_end() {
            return; // not arrived yet when the campaign's snapshot is taken
        }
        let day = (sent_at - local_midnight(self.opts.start))
            .num_days()
            .max(0) as u32;
        self.seq += 1;
        let ev = EventBox(Box::new(EventInner {
            sent_ms: sent_at.timestamp_millis(),
            seq: self.seq,
            msg,
        }));
        self.pending.entry(day).or_default().push(ev);
    }

    /// Target cumulative visits of grid `g` by the end of day `d` (0-based).
    fn target(&self, g: usize, d: u32) -> u64 {
        let k = self.grid_speed[g];
        let days = f64::from(self.opts.days);
        let frac = (1.0 - (-k * f64::from(d + 1)).exp()) / (1.0 - (-k * days).exp());
        let (scale, households) = match stale_registry(g) {
            true => (1.0, self.households(g)),
            false => (
                self.opts.scale,
                f64::from(self.registry.grids[g].households),
            ),
        };
        (frac * scale * households).round() as u64
    }

    /// The households grid `g` really has: the registry's count, or more
    /// where the registry is out of date ([`stale_registry`]).
    fn households(&self, g: usize) -> f64 {
        let registered = f64::from(self.registry.grids[g].households);
        match stale_registry(g) {
            true => (registered * STALE_REGISTRY_EXCESS).ceil(),
            false => registered,
        }
    }

    fn generate_day(&mut self) {
        let d = self.day;
        for g in 0..self.registry.grids.len() {
            let households = (self.households(g) as u64).max(1);
            let target = self.target(g, d);
            while self.visited[g] < target {
                let n = self.visited[g];
                self.visited[g] += 1;
                self.make_visit(g, d, TargetKind::Household, n % households);
            }
            // Enterprises and venues: about one per 40 households, visited
            // along the same curve.
            let sites = (households / 40).max(1);
            let site_target = (target * sites).div_ceil(households);
            while self.sites_visited[g] < site_target {
                let n = self.sites_visited[g];
                self.sites_visited[g] += 1;
                let kind = if (n + g as u64) % 3 == 2 {
                    TargetKind::Venue
                } else {
                    TargetKind::Enterprise
                };
                self.make_visit(g, d, kind, n % sites);
            }
        }
    }

    fn visit_time(&mut self, day: u32) -> DateTime<FixedOffset> {
        let total: u32 = HOUR_WEIGHTS.iter().sum();
        let mut pick = self.rng.random_range(0..total);
        let mut hour = 8;
        for (i, w) in HOUR_WEIGHTS.iter().enumerate() {
            if pick < *w {
                hour = 8 + i as i64;
                break;
            }
            pick -= w;
        }
        let secs = hour * 3600 + self.rng.random_range(0..3600);
        local_midnight(self.opts.start) + Duration::days(i64::from(day)) + Duration::seconds(secs)
    }

    fn pick_role(&mut self) -> ReporterRole {
        let total: u32 = ROLE_WEIGHTS.iter().map(|r| r.1).sum();
        let mut pick = self.rng.random_range(0..total);
        for (role, w) in ROLE_WEIGHTS {
            if pick < w {
                return role;
            }
            pick -= w;
        }
        ReporterRole::Cadre
    }

    fn make_visit(&mut self, g: usize, day: u32, kind: TargetKind, index: u64) {
        let seed = self.opts.seed;
        let grid = &self.registry.grids[g];
        let grid_id = grid.id.clone();
        let visited_at = self.visit_time(day);
        let late = self.rng.random_bool(self.opts.late_rate.clamp(0.0, 1.0));
        let delay = if late {
            Duration::hours(self.rng.random_range(24..72))
        } else {
            Duration::seconds(self.rng.random_range(30..1200))
        };
        let sent_at = visited_at + delay;
        let role = self.pick_role();
        let pool = match role {
            ReporterRole::Cadre => 8,
            ReporterRole::GridWorker => 2,
            ReporterRole::Volunteer => 4,
            ReporterRole::Police | ReporterRole::Deputy => 1,
        };
        let reporter = mix(seed, g as u64, role as u64, self.rng.random_range(0..pool));
        let reporter_id = hex_id("rp-", reporter);
        let reporter_unit = unit_of(&self.registry.counties[grid.county].name, role, reporter);
        let prefix = match kind {
            TargetKind::Household => "hh-",
            TargetKind::Enterprise => "en-",
            TargetKind::Venue => "ve-",
        };
        let target_id = hex_id(prefix, mix(seed, g as u64, kind as u64 + 10, index));
        let submission_id = self.uuid();
        let (residents_recorded, rates) = match kind {
            TargetKind::Household => (self.rng.random_range(1..=6), (0.82, 0.9)),
            _ => (self.rng.random_range(2..=40), (0.9, 0.92)),
        };
        let present = self.rng.random_range(0..=residents_recorded);
        let tested = binomial(&mut self.rng, residents_recorded, rates.0);
        let vaccinated = binomial(&mut self.rng, residents_recorded, rates.1);
        let newcomers = if self.rng.random_bool(0.06) {
            self.rng.random_range(1..=residents_recorded.min(3))
        } else {
            0
        };
        let mut special_groups = FlagList::new();
        if kind == TargetKind::Household {
            for (sg, p) in [
                (SpecialGroup::ElderlyAlone, 0.04),
                (SpecialGroup::Disabled, 0.02),
                (SpecialGroup::ChronicIllness, 0.05),
                (SpecialGroup::Pregnant, 0.01),
                (SpecialGroup::LeftBehindChild, 0.015),
                (SpecialGroup::LowIncome, 0.02),
            ] {
                if self.rng.random_bool(p) {
                    special_groups.push(sg);
                }
            }
        }
        let mut safety_checks: FlagList<SafetyCheck> = match kind {
            TargetKind::Household => smallvec::smallvec![
                SafetyCheck::Gas,
                SafetyCheck::Electricity,
                SafetyCheck::Fire,
            ],
            _ => smallvec::smallvec![
                SafetyCheck::Electricity,
                SafetyCheck::Fire,
                SafetyCheck::Production,
            ],
        };
        // Older houses get a building check (about three in ten).
        if kind == TargetKind::Household && mix(seed, g as u64, 31, index) % 10 < 3 {
            safety_checks.push(SafetyCheck::Building);
        }
        let hazard_p = if kind == TargetKind::Household {
            0.05
        } else {
            0.18
        };
        let mut hazards = Vec::new();
        while hazards.len() < 3
            && self
                .rng
                .random_bool(if hazards.is_empty() { hazard_p } else { 0.2 })
        {
            let kinds = [
                HazardKind::Gas,
                HazardKind::Electrical,
                HazardKind::Fire,
                HazardKind::Structural,
                HazardKind::Production,
                HazardKind::Other,
            ];
            let hk = kinds[self.rng.random_range(0..kinds.len())];
            let fixed = self.rng.random_bool(0.62);
            hazards.push(Hazard {
                hazard_id: format!("hz-{}-{}", &submission_id[..18], hazards.len() + 1).into(),
                kind: hk,
                fixed_on_spot: fixed,
            });
        }
        let mut hardships = Vec::new();
        if self.rng.random_bool(if kind == TargetKind::Household {
            0.035
        } else {
            0.02
        }) {
            let cats = HardshipCategory::ALL;
            let category = cats[self.rng.random_range(0..cats.len())];
            let urgency = [
                Urgency::Low,
                Urgency::Normal,
                Urgency::Normal,
                Urgency::Urgent,
            ][self.rng.random_range(0..4)];
            let case_id = format!("hs-{}-1", &submission_id[..18]);
            let note = hardship_note(category, &submission_id);
            hardships.push(Hardship {
                case_id: case_id.into(),
                category,
                urgency,
                note: note.into(),
            });
        }
        let enlisted_leads = u32::from(kind == TargetKind::Household && self.rng.random_bool(0.01));
        let enlisted_volunteers = u32::from(self.rng.random_bool(0.03));
        let visit = Visit {
            schema: VISIT_SCHEMA_V1.into(),
            submission_id: submission_id.into(),
            sent_at,
            visited_at,
            reporter_id: reporter_id.into(),
            reporter_role: role,
            reporter_unit: reporter_unit.map(Into::into),
            grid_id: grid_id.clone().into(),
            target_kind: kind,
            target_id: target_id.into(),
            residents_recorded,
            residents_present: present,
            newcomers_registered: newcomers,
            residents_tested: tested,
            residents_vaccinated: vaccinated,
            special_groups,
            safety_checks,
            hazards,
            hardships,
            enlisted_building_leads: enlisted_leads,
            enlisted_volunteers,
        };
        self.schedule_cases(&visit);
        let bytes = to_json(&visit);
        if self.rng.random_bool(self.opts.invalid_rate.clamp(0.0, 1.0)) {
            self.make_invalid(&visit);
        }
        // Drawn only when asked for, so that campaigns without them stay
        // the same message for message.
        if self.opts.conflict_rate > 0.0
            && self
                .rng
                .random_bool(self.opts.conflict_rate.clamp(0.0, 1.0))
        {
            self.make_conflict(&visit, day, sent_at);
        }
        self.emit(sent_at, Stream::Visits, grid_id, bytes);
    }

    /// Send `visit` again hours after `sent_at`, edited: dated a day
    /// earlier (from the campaign's second day on) or with another count
    /// of residents present.
    fn make_conflict(&mut self, visit: &Visit, day: u32, sent_at: DateTime<FixedOffset>) {
        let mut edited = visit.clone();
        if day > 0 && self.rng.random_bool(0.5) {
            edited.visited_at -= Duration::days(1);
        } else {
            edited.residents_present =
                (visit.residents_present + 1) % (visit.residents_recorded + 1);
        }
        let resend = sent_at + Duration::minutes(self.rng.random_range(60..360));
        edited.sent_at = resend;
        let message = GeneratedMessage {
            bytes: to_json(&edited),
            expect: Expect::Conflict,
            stream: Stream::Visits,
            key: visit.grid_id.to_string(),
            sent_at_ms: resend.timestamp_millis(),
        };
        self.schedule(resend, message);
    }

    /// Schedule a valid message and, at the duplicate rate, its resend.
    fn emit(
        &mut self,
        sent_at: DateTime<FixedOffset>,
        stream: Stream,
        key: String,
        bytes: Vec<u8>,
    ) {
        let sent_at_ms = sent_at.timestamp_millis();
        if self
            .rng
            .random_bool(self.opts.duplicate_rate.clamp(0.0, 1.0))
        {
            let resend = sent_at + Duration::seconds(self.rng.random_range(5..1800));
            let dup = GeneratedMessage {
                bytes: bytes.clone(),
                expect: Expect::Duplicate,
                stream,
                key: key.clone(),
                sent_at_ms: resend.timestamp_millis(),
            };
            self.schedule(resend, dup);
        }
        self.schedule(
            sent_at,
            GeneratedMessage {
                bytes,
                expect: Expect::Valid,
                stream,
                key,
                sent_at_ms,
            },
        );
    }

    fn schedule_cases(&mut self, v: &Visit) {
        let handed_on = v
            .hazards
            .iter()
            .filter(|h| !h.fixed_on_spot)
            .map(|h| (h.hazard_id.clone(), CaseKind::Hazard, 40.0))
            .chain(v.hardships.iter().map(|h| {
                let mean = match h.urgency {
                    Urgency::Urgent => 10.0,
                    Urgency::Normal => 32.0,
                    Urgency::Low => 70.0,
                };
                (h.case_id.clone(), CaseKind::Hardship, mean)
            }))
            .collect::<Vec<_>>();
        for (case_id, case_kind, mean_hours) in handed_on {
            if !self
                .rng
                .random_bool(self.opts.case_update_rate.clamp(0.0, 1.0))
            {
                continue;
            }
            let handler_id = hex_id(
                "hd-",
                mix(self.opts.seed, 7, 7, self.rng.random_range(0..500)),
            );
            let assigned = v.visited_at + Duration::minutes(self.rng.random_range(20..240));
            let mut steps = vec![(CaseStatus::Assigned, assigned)];
            let mut t = assigned;
            if self.rng.random_bool(0.15) {
                t += Duration::minutes(self.rng.random_range(120..1440));
                steps.push((CaseStatus::Escalated, t));
            }
            if self.rng.random_bool(0.9) {
                let hours = -mean_hours * (1.0 - self.rng.random::<f64>()).ln();
                t += Duration::minutes((hours * 60.0) as i64 + 1);
                steps.push((CaseStatus::Resolved, t));
                // The resident calls back: the case is assigned again (a
                // reopening) and mostly resolved again.
                if self.rng.random_bool(0.04) {
                    t += Duration::minutes(self.rng.random_range(60..2880));
                    steps.push((CaseStatus::Assigned, t));
                    if self.rng.random_bool(0.8) {
                        t += Duration::minutes(self.rng.random_range(60..1440));
                        steps.push((CaseStatus::Resolved, t));
                    }
                }
            }
            for (status, updated_at) in steps {
                let sent_at = updated_at + Duration::seconds(self.rng.random_range(10..600));
                let update = CaseUpdate {
                    schema: CASE_SCHEMA_V1.into(),
                    submission_id: self.uuid().into(),
                    sent_at,
                    case_id: case_id.clone(),
                    case_kind,
                    grid_id: v.grid_id.clone(),
                    status,
                    updated_at,
                    handler_id: handler_id.as_str().into(),
                };
                let bytes = to_json(&update);
                self.emit(sent_at, Stream::Cases, v.grid_id.to_string(), bytes);
            }
        }
        // Now and then the grid's handler takes a case raised elsewhere (a
        // hotline): an update of a case no visit opened.
        if self.rng.random_bool(UNKNOWN_CASE_RATE) {
            let updated_at = v.visited_at + Duration::minutes(self.rng.random_range(30..600));
            let sent_at = updated_at + Duration::seconds(self.rng.random_range(10..600));
            let submission_id = self.uuid();
            let update = CaseUpdate {
                schema: CASE_SCHEMA_V1.into(),
                case_id: format!("hl-{}", &submission_id[..18]).into(),
                submission_id: submission_id.into(),
                sent_at,
                case_kind: CaseKind::Hardship,
                grid_id: v.grid_id.clone(),
                status: CaseStatus::Assigned,
                updated_at,
                handler_id: hex_id("hd-", mix(self.opts.seed, 7, 8, 0)).into(),
            };
            let bytes = to_json(&update);
            self.emit(sent_at, Stream::Cases, v.grid_id.to_string(), bytes);
        }
    }

    fn make_invalid(&mut self, base: &Visit) {
        let class = ErrorClass::OF_INPUT[self.rng.random_range(0..ErrorClass::OF_INPUT.len())];
        let mut v = base.clone();
        v.submission_id = self.uuid().into();
        let mut value = serde_json::to_value(&v).expect("a visit serializes");
        let obj = value.as_object_mut().expect("a visit is an object");
        let mut raw: Option<Vec<u8>> = None;
        match class {
            ErrorClass::InvalidUtf8 => {
                let mut b = serde_json::to_vec(&value).expect("serializes");
                let at = b.iter().position(|&c| c == b'-').unwrap_or(10);
                b[at] = 0xFF;
                raw = Some(b);
            }
            ErrorClass::MalformedJson => {
                let text = serde_json::to_string(&value).expect("serializes");
                // Cut at a character boundary: the unit or a note is Chinese.
                let mut cut = text.len() / 2;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                raw = Some(text.as_bytes()[..cut].to_vec());
            }
            ErrorClass::TooLarge => {
                let pad = "备注".repeat(self.opts.max_message_bytes / 6 + 16);
                obj.insert("hardships".into(), serde_json::json!([{ "case_id": "hs-x", "category": "other", "urgency": "low", "note": pad }]));
            }
            ErrorClass::UnknownSchema => {
                obj.insert("schema".into(), Value::from("gridstat.visit/9"));
            }
            ErrorClass::MissingField => {
                obj.remove("residents_tested");
            }
            ErrorClass::UnknownField => {
                obj.insert("residents_happy".into(), Value::from(1));
            }
            ErrorClass::WrongType => {
                obj.insert("residents_recorded".into(), Value::from("三"));
            }
            ErrorClass::BadEnum => {
                obj.insert("reporter_role".into(), Value::from("mayor"));
            }
            ErrorClass::UnknownGrid => {
                obj.insert("grid_id".into(), Value::from("44079999999999"));
            }
            ErrorClass::ImpossibleNumber => {
                obj.insert(
                    "residents_tested".into(),
                    Value::from(v.residents_recorded + 2),
                );
            }
            ErrorClass::FutureTime => {
                obj.insert(
                    "visited_at".into(),
                    Value::from((v.sent_at + Duration::days(7)).to_rfc3339()),
                );
            }
            ErrorClass::BeforeCampaign => {
                let t = local_midnight(self.opts.start) - Duration::days(2) + Duration::hours(10);
                obj.insert("visited_at".into(), Value::from(t.to_rfc3339()));
            }
            ErrorClass::Internal => unreachable!("drawn from ErrorClass::OF_INPUT"),
        }
        let bytes = raw.unwrap_or_else(|| serde_json::to_vec(&value).expect("serializes"));
        let msg = GeneratedMessage {
            bytes,
            expect: Expect::Invalid(class),
            stream: Stream::Visits,
            key: v.grid_id.to_string(),
            sent_at_ms: v.sent_at.timestamp_millis(),
        };
        self.schedule(v.sent_at, msg);
    }

    fn uuid(&mut self) -> String {
        let a: u64 = self.rng.random();
        let b: u64 = self.rng.random();
        // Version-4 layout: 8-4-4-4-12 hex digits.
        let hi = (a & !0xF000) | 0x4000;
        let lo = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
        let mut out = String::with_capacity(36);
        push_hex(&mut out, hi >> 32, 8);
        out.push('-');
        push_hex(&mut out, hi >> 16, 4);
        out.push('-');
        push_hex(&mut out, hi, 4);
        out.push('-');
        push_hex(&mut out, lo >> 48, 4);
        out.push('-');
        push_hex(&mut out, lo, 12);
        out
    }
}

/// `prefix` followed by `v` as 16 lower-case hex digits.
fn hex_id(prefix: &str, v: u64) -> String {
    let mut out = String::with_capacity(prefix.len() + 16);
    out.push_str(prefix);
    push_hex(&mut out, v, 16);
    out
}

/// Append the low `digits` hex digits of `v`.
fn push_hex(out: &mut String, v: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(HEX[((v >> (i * 4)) & 0xF) as usize] as char);
    }
}

impl Iterator for Generator<'_> {
    type Item = GeneratedMessage;

    fn next(&mut self) -> Option<GeneratedMessage> {
        loop {
            if let Some(ev) = self.ready.next() {
                return Some(ev.0.msg);
            }
            if self.day >= self.opts.days {
                return None;
            }
            self.generate_day();
            let mut today = self.pending.remove(&self.day).unwrap_or_default();
            today.sort_unstable_by_key(|e| (e.0.sent_ms, e.0.seq));
            self.ready = today.into_iter();
            self.day += 1;
        }
    }
}

/// Write `messages` as NDJSON (one message a line).
pub fn write_ndjson<W: std::io::Write>(
    mut out: W,
    messages: impl Iterator<Item = GeneratedMessage>,
) -> std::io::Result<u64> {
    let mut n = 0;
    for m in messages {
        out.write_all(&m.bytes)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

/// Serialize into a buffer sized for a typical message (one allocation).
fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    serde_json::to_writer(&mut out, value).expect("generated records serialize");
    out
}

fn binomial(rng: &mut Pcg64Mcg, n: u32, p: f64) -> u32 {
    (0..n).filter(|_| rng.random_bool(p)).count() as u32
}

/// A stable 64-bit hash of four numbers (splitmix64 finaliser), for
/// pseudonymous ids that do not depend on RNG draw order.
/// Share of visits after which a case no visit opened gets an update.
const UNKNOWN_CASE_RATE: f64 = 0.002;

/// How many more households an out-of-date registry's grid really has.
const STALE_REGISTRY_EXCESS: f64 = 1.2;

/// Whether grid `g` (its registry position) has more households than the
/// registry says (two grids of the Jiangmen registry): they are visited
/// in full whatever the campaign's scale, so coverage passes 100 %.
pub fn stale_registry(g: usize) -> bool {
    g % 1500 == 700
}

/// Agencies that send cadres down (派出单位), as a county names them.
const AGENCIES: [&str; 16] = [
    "委组织部",
    "委宣传部",
    "委统战部",
    "委政法委",
    "发展和改革局",
    "教育局",
    "民政局",
    "财政局",
    "人力资源和社会保障局",
    "自然资源局",
    "住房和城乡建设局",
    "交通运输局",
    "农业农村局",
    "卫生健康局",
    "应急管理局",
    "市场监督管理局",
];

/// The agency that sent reporter `reporter` (its id's seed) of `role` in
/// county `county`: cadres come from the county's agencies, police from
/// its public security bureau; about one phone in ten leaves it out.
fn unit_of(county: &str, role: ReporterRole, reporter: u64) -> Option<String> {
    let pick = mix(reporter, 5, 5, 5);
    if pick.is_multiple_of(10) {
        return None;
    }
    match role {
        ReporterRole::Cadre => Some(format!(
            "{county}{}",
            AGENCIES[(pick / 10) as usize % AGENCIES.len()]
        )),
        ReporterRole::Police => Some(format!("{county}公安局")),
        _ => None,
    }
}

fn mix(a: u64, b: u64, c: u64, d: u64) -> u64 {
    let mut x =
        a ^ b.rotate_left(17) ^ c.rotate_left(33) ^ d.rotate_left(47) ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn hardship_note(category: HardshipCategory, submission_id: &str) -> String {
    let text = match category {
        HardshipCategory::Medical => "家中老人患慢性病,常用药快用完,希望帮忙联系代购药品",
        HardshipCategory::Supplies => "居家期间米油等生活物资不足,希望协助配送",
        HardshipCategory::ElderlyCare => "独居老人行动不便,希望安排定期上门探访",
        HardshipCategory::Employment => "工厂停工,家人暂时失业,希望了解就业帮扶政策",
        HardshipCategory::Dispute => "与邻居因楼道堆放杂物发生纠纷,希望社区调解",
        HardshipCategory::Housing => "老房屋顶漏水,希望协调维修",
        HardshipCategory::Other => "希望社区协助办理相关证明",
    };
    // A per-case token makes every note unique, so a leak is detectable.
    format!("{text}(备注{})", &submission_id[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_is_stable() {
        assert_eq!(mix(1, 2, 3, 4), mix(1, 2, 3, 4));
        assert_ne!(mix(1, 2, 3, 4), mix(1, 2, 3, 5));
    }
}
