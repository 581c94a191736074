//! What a run does, decided by pure functions from the previous run's
//! state, the listing of the raw tables and the options: which days it
//! curates (and in which groups), which it clears, from which day its
//! rollups are recomputed, what becomes of `case_state`, which days of the
//! quality table it recomputes, and the order its tables are built in.
//!
//! Some facts only the lake tells: whether curation left any visits and
//! a `case_state`, whether the previous run's rollup state is there for
//! the day the rollups would continue from, and whether a case was
//! resolved before it was opened. The executor ([`crate::execute`]) finds
//! them out and hands them to the plan, which decides again
//! ([`RollupPlan::given`], [`RollupPlan::start`],
//! [`RollupPlan::earlier_start`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use gridstat_schemas::lake;

use crate::listing::RawListing;
use crate::store::{self, AggregateState, Fingerprint, RollupMark};
use crate::AggregateOptions;

/// Most raw bytes of the days a run recomputes for it to count as small:
/// queried without dynamic filters ([`crate::tables::without_dynamic_filters`]).
const SMALL_RUN_BYTES: u64 = 64 * 1024 * 1024;

/// Most days curated by one query.
const CURATE_AT_ONCE: usize = 4;
/// Most raw bytes of the days curated by one query.
const CURATE_BYTES_AT_ONCE: u64 = 64 * 1024 * 1024;

/// What a run does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Plan {
    /// Nothing is new: the run writes nothing.
    Idle,
    /// Curate, recompute rollups, record the state.
    Run(RunPlan),
}

/// The work of a run that found something new.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunPlan {
    /// The days curated again, in order, in groups each curated by one
    /// query per table.
    pub(crate) curation: Vec<CurationGroup>,
    /// Whether the days the rollups recompute hold so few raw bytes that
    /// the run's queries go without dynamic filters.
    pub(crate) small: bool,
    /// The rollup step.
    pub(crate) rollups: RollupPlan,
    /// How far the previous run's rollups went, whatever their settings.
    previous_through: Option<NaiveDate>,
    /// This run's settings, with its last day.
    settings: RollupMark,
}

/// Days curated by one query per table, and days cleared beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CurationGroup {
    /// Days with raw files, ascending: curated again.
    pub(crate) curate: Vec<NaiveDate>,
    /// Days whose raw files are all gone: their curated files are deleted.
    pub(crate) clear: Vec<NaiveDate>,
}

impl CurationGroup {
    /// Every day of the group, ascending.
    pub(crate) fn days(&self) -> Vec<NaiveDate> {
        let mut days: Vec<NaiveDate> = self.curate.iter().chain(&self.clear).copied().collect();
        days.sort_unstable();
        days
    }
}

/// What the rollup step recomputes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RollupPlan {
    /// First day of the campaign.
    campaign_start: NaiveDate,
    /// Last day of the previous rollups, when they can be continued.
    continue_after: Option<NaiveDate>,
    /// The first day to recompute, if the previous run's state allows
    /// continuing there ([`RollupPlan::start`]).
    pub(crate) from: NaiveDate,
    /// Last day with raw data (or the campaign's start).
    pub(crate) last_day: NaiveDate,
    /// What becomes of `case_state`.
    pub(crate) case_state: CaseStateWork,
    /// Days whose quality figures are recomputed (`None`: all).
    pub(crate) quality_days: Option<BTreeSet<NaiveDate>>,
    /// Whether the lake has quarantine files.
    pub(crate) has_quarantine: bool,
}

/// What the rollup step does with `case_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CaseStateWork {
    /// Nothing was curated again: it stands, read from the lake.
    Keep,
    /// Recompute every case.
    Rebuild,
    /// These days were curated again: recompute the cases they touch.
    Update(BTreeSet<NaiveDate>),
}

/// The curated tables the executor found registered after curation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CuratedTables {
    /// `curated_visits` (without visits there are no rollups).
    pub(crate) visits: bool,
    /// `case_state`, as the previous run left it.
    pub(crate) case_state: bool,
}

/// What the executor found of the previous run's rollup state, for
/// rollups from a day `D` on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PreviousRollups {
    /// The cumulative rows of `D − 1`.
    pub(crate) cumulative_before: bool,
    /// The reporters' first days.
    pub(crate) reporter_firsts: bool,
    /// The targets' first days of every day before `D`.
    pub(crate) target_firsts: bool,
}

/// Where the rollups of a run start, and how their tables are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RollupStart {
    /// The first day recomputed.
    pub(crate) from: NaiveDate,
    /// The days recomputed: `from` to the last day.
    pub(crate) days: Vec<NaiveDate>,
    /// Whether they continue the previous run's rollups and state.
    pub(crate) continuing: bool,
    /// The order of the rollup step's table builds.
    pub(crate) order: BuildOrder,
}

/// The order the rollup step builds its tables in. The steps themselves
/// go in a fixed order: `case_state` and the tables of visits alone
/// (`grid_targets`; `reporter_days` → `reporter_firsts` → `reporters_day`
/// → `reporters_cum`; `grid_firsts`), then the tables that read
/// `case_state` and the `days` (`open_cases`, `hours_day` and `hours_cum`;
/// `grid_day` → `area_day`), then `area_running`, then the daily and
/// cumulative tables together, whose files are encoded while the quality
/// table is computed. What overlaps within each step is chosen here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BuildOrder {
    /// When `case_state` is built, relative to the tables of visits alone.
    pub(crate) case_state: CaseStateTurn,
    /// How independent tables are built, and when background writes go.
    pub(crate) pace: Pace,
}

/// When `case_state` is built, relative to the tables of visits alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CaseStateTurn {
    /// Before them: a rebuild, so that peak memory stays that of the
    /// larger.
    Before,
    /// Beside them: an update and those tables are both mostly fixed
    /// per-query costs.
    Beside,
    /// After them: a `case_state` that stands is registered from the lake.
    After,
}

/// How the rollup step builds tables that do not read each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pace {
    /// Side by side: a refresh's tables are a few days' rows, mostly
    /// fixed per-query costs. Its background writes wait until its
    /// queries run one at a time, so that their encoding takes the core
    /// that planning leaves free instead of slowing the query chains.
    Overlapped,
    /// One after another, so that peak memory stays that of the largest:
    /// a rebuild. Its background writes go at once.
    InTurn,
}

/// What changed in the raw lake since the last run.
#[derive(Debug, Default, PartialEq, Eq)]
struct Changes {
    /// Days whose raw visit or case files are new, rewritten or gone.
    days: BTreeSet<NaiveDate>,
    /// Days whose quarantine files are new, rewritten or gone.
    quarantine_days: BTreeSet<NaiveDate>,
    /// Whether any file is gone (rollups are then recomputed from scratch).
    removed: bool,
}

impl Changes {
    fn everything(now: &BTreeMap<String, Fingerprint>) -> Self {
        Self::between(&BTreeMap::new(), now)
    }

    fn between(
        before: &BTreeMap<String, Fingerprint>,
        now: &BTreeMap<String, Fingerprint>,
    ) -> Self {
        let mut changes = Changes::default();
        let gone: Vec<&String> = before.keys().filter(|p| !now.contains_key(*p)).collect();
        changes.removed = !gone.is_empty();
        let changed = now
            .iter()
            .filter(|(p, fp)| before.get(*p) != Some(fp))
            .map(|(p, _)| p)
            .chain(gone);
        for path in changed {
            let Some(day) = store::day_of(path) else {
                continue;
            };
            if path.starts_with(lake::QUARANTINE) {
                changes.quarantine_days.insert(day);
            } else {
                changes.days.insert(day);
            }
        }
        changes
    }
}

impl Plan {
    /// The plan of a run over `listing`, after the run that left
    /// `previous` (ignored with `--all`), with `opts` and a registry of
    /// fingerprint `registry` ([`store::registry_fingerprint`]).
    ///
    /// Rollups made with other settings must be redone even if no raw
    /// file changed; anything that makes the previous rollups
    /// untrustworthy — other settings, a raw file removed — makes the run
    /// recompute every day.
    pub(crate) fn new(
        previous: Option<&AggregateState>,
        listing: &RawListing,
        opts: &AggregateOptions,
        registry: &str,
    ) -> Plan {
        let previous = previous.filter(|p| !opts.full && p.layout == store::LAYOUT);
        let changes = match previous {
            None => Changes::everything(&listing.files),
            Some(previous) => Changes::between(&previous.files, &listing.files),
        };
        let last_day = listing.last_day(opts.campaign_start);
        let settings = RollupMark {
            through: last_day,
            campaign_start: opts.campaign_start,
            overdue_hours: opts.overdue_hours,
            urgency_overdue_hours: (opts.urgent_overdue_hours, opts.low_overdue_hours),
            registry: registry.to_string(),
        };
        let previous_rollups = previous.and_then(|p| p.rollups.as_ref());
        // A lake without rollups yet (no valid visits) has none to redo.
        let settings_changed = previous_rollups.is_some_and(|m| !m.same_settings(&settings));
        if changes.days.is_empty() && changes.quarantine_days.is_empty() && !settings_changed {
            return Plan::Idle;
        }
        let continue_after = previous_rollups
            .filter(|m| !changes.removed && m.same_settings(&settings))
            .map(|m| m.through);
        let from = rollups_from(
            continue_after,
            changes.days.first().copied(),
            opts.campaign_start,
        );
        let case_state = match continue_after {
            None => CaseStateWork::Rebuild,
            Some(_) if changes.days.is_empty() => CaseStateWork::Keep,
            Some(_) => CaseStateWork::Update(changes.days.clone()),
        };
        let quality_days = continue_after.is_some().then(|| {
            changes
                .days
                .union(&changes.quarantine_days)
                .copied()
                .collect()
        });
        Plan::Run(RunPlan {
            curation: curation_groups(listing, &changes.days),
            small: listing.bytes_from(from) <= SMALL_RUN_BYTES,
            rollups: RollupPlan {
                campaign_start: opts.campaign_start,
                continue_after,
                from,
                last_day,
                case_state,
                quality_days,
                has_quarantine: listing.has_quarantine(),
            },
            previous_through: previous_rollups.map(|m| m.through),
            settings,
        })
    }
}

impl RunPlan {
    /// The days the run curates or clears.
    pub(crate) fn days(&self) -> BTreeSet<NaiveDate> {
        self.curation.iter().flat_map(CurationGroup::days).collect()
    }

    /// The plan with `more` days curated too (they hold another copy of a
    /// submission of a planned day, or have no index of their
    /// submissions yet): the curation groups are cut again, the rollups
    /// start no later than the first of them, `case_state` is updated for
    /// them and their quality figures recomputed.
    pub(crate) fn with_days(mut self, more: &BTreeSet<NaiveDate>, listing: &RawListing) -> Self {
        let Some(&first) = more.first() else {
            return self;
        };
        let days: BTreeSet<NaiveDate> = self.days().union(more).copied().collect();
        self.curation = curation_groups(listing, &days);
        let rollups = &mut self.rollups;
        if rollups.continue_after.is_some() {
            rollups.from = rollups.from.min(first).max(rollups.campaign_start);
        }
        rollups.case_state = match std::mem::replace(&mut rollups.case_state, CaseStateWork::Keep) {
            CaseStateWork::Rebuild => CaseStateWork::Rebuild,
            CaseStateWork::Keep => CaseStateWork::Update(more.clone()),
            CaseStateWork::Update(days) => {
                CaseStateWork::Update(days.union(more).copied().collect())
            }
        };
        if let Some(quality) = &mut rollups.quality_days {
            quality.extend(more);
        }
        self.small = listing.bytes_from(rollups.from) <= SMALL_RUN_BYTES;
        self
    }

    /// How many days the run curates or clears.
    pub(crate) fn days_curated(&self) -> usize {
        self.curation
            .iter()
            .map(|g| g.curate.len() + g.clear.len())
            .sum()
    }

    /// What the run records of its rollups: they cover every day up to
    /// the last when its rollup step `covered` them (it does not without
    /// curated visits); otherwise they go as far as the previous run's.
    pub(crate) fn rollups_mark(&self, covered: bool) -> Option<RollupMark> {
        let through = if covered {
            Some(self.settings.through)
        } else {
            self.previous_through
        };
        through.map(|through| RollupMark {
            through,
            ..self.settings.clone()
        })
    }
}

/// The first day rollups are recomputed from: the day after those the
/// previous rollups continue to (`continue_after`), or the first day
/// whose raw files changed if earlier; without previous rollups, the
/// campaign's start.
fn rollups_from(
    continue_after: Option<NaiveDate>,
    first_changed: Option<NaiveDate>,
    campaign_start: NaiveDate,
) -> NaiveDate {
    match continue_after {
        Some(through) => {
            let next = through + chrono::Days::new(1);
            first_changed.map_or(next, |day| day.min(next))
        }
        None => campaign_start,
    }
    .max(campaign_start)
}

/// `days` in order, cut into groups curated by one query each: small
/// days (late arrivals, a refresh) are mostly fixed per-query costs,
/// paid once for the group, while a large day is curated alone so that
/// peak memory stays that of one day. A day without raw files any more is
/// cleared with the group it falls in.
fn curation_groups(listing: &RawListing, days: &BTreeSet<NaiveDate>) -> Vec<CurationGroup> {
    let mut groups: Vec<Vec<NaiveDate>> = Vec::new();
    let mut group_bytes = 0;
    for &day in days {
        let bytes = listing.day_bytes(day);
        let fits = groups.last().is_some_and(|g| {
            g.len() < CURATE_AT_ONCE && group_bytes + bytes <= CURATE_BYTES_AT_ONCE
        });
        if fits {
            groups.last_mut().expect("checked above").push(day);
            group_bytes += bytes;
        } else {
            groups.push(vec![day]);
            group_bytes = bytes;
        }
    }
    groups
        .into_iter()
        .map(|group| {
            let (curate, clear) = group.iter().partition(|day| listing.days.contains(day));
            CurationGroup { curate, clear }
        })
        .collect()
}

impl RollupPlan {
    /// Every rollup recomputed from the curated tables as they are, with
    /// `case_state` rebuilt and every day's quality figures.
    pub(crate) fn rebuild(listing: &RawListing, opts: &AggregateOptions) -> Self {
        Self {
            campaign_start: opts.campaign_start,
            continue_after: None,
            from: opts.campaign_start,
            last_day: listing.last_day(opts.campaign_start),
            case_state: CaseStateWork::Rebuild,
            quality_days: None,
            has_quarantine: listing.has_quarantine(),
        }
    }

    /// The plan given the curated tables found after curation: no rollup
    /// step without curated visits, and `case_state` rebuilt when there is
    /// none to keep or update.
    pub(crate) fn given(mut self, found: CuratedTables) -> Option<Self> {
        if !found.visits {
            return None;
        }
        if !found.case_state {
            self.case_state = CaseStateWork::Rebuild;
        }
        Some(self)
    }

    /// The day whose cumulative rows rollups from `from` on continue, if
    /// they can continue any (not from the campaign's start).
    pub(crate) fn day_before(&self, from: NaiveDate) -> Option<NaiveDate> {
        from.pred_opt().filter(|_| from > self.campaign_start)
    }

    /// Rollups from `from` on, continuing the previous run's if `found`
    /// holds all they need: the cumulative rows of the day before, the
    /// reporters' first days and the targets' first days of every day
    /// before. Without any of them, they start from the campaign's start.
    pub(crate) fn start(&self, from: NaiveDate, found: PreviousRollups) -> RollupStart {
        let complete = found.cumulative_before && found.reporter_firsts && found.target_firsts;
        let continuing = complete && self.day_before(from).is_some();
        let from = if continuing {
            from
        } else {
            self.campaign_start
        };
        RollupStart {
            from,
            days: from
                .iter_days()
                .take_while(|d| *d <= self.last_day)
                .collect(),
            continuing,
            order: BuildOrder {
                case_state: match self.case_state {
                    CaseStateWork::Keep => CaseStateTurn::After,
                    CaseStateWork::Rebuild => CaseStateTurn::Before,
                    CaseStateWork::Update(_) => CaseStateTurn::Beside,
                },
                pace: if continuing {
                    Pace::Overlapped
                } else {
                    Pace::InTurn
                },
            },
        }
    }

    /// Whether the run looks for cases resolved before they were opened
    /// ([`RollupPlan::earlier_start`]): when it continues the previous
    /// rollups, which counted those resolutions on their own days.
    pub(crate) fn checks_early_resolutions(&self) -> bool {
        self.continue_after.is_some()
    }

    /// Where the rollups must start instead of at `start`, given the
    /// earliest day `resolved` on which a case opened on or after its
    /// first day was resolved: a resolution stamped before its case was
    /// opened counts on an earlier day than the opening.
    pub(crate) fn earlier_start(
        &self,
        start: &RollupStart,
        resolved: Option<NaiveDate>,
    ) -> Option<NaiveDate> {
        let earlier = start.from.min(resolved?).max(self.campaign_start);
        (earlier < start.from).then_some(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::path::Path;
    use object_store::ObjectMeta;

    fn fingerprint(size: u64) -> store::Fingerprint {
        store::Fingerprint {
            size,
            e_tag: None,
            last_modified: "2022-11-26T00:00:00+00:00".into(),
        }
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2022, 11, d).unwrap()
    }

    #[test]
    fn changes_name_the_days_of_new_rewritten_and_removed_files() {
        let before: BTreeMap<String, store::Fingerprint> = [
            ("raw/visits/dt=2022-11-25/county=440703/a.parquet", 1),
            ("raw/visits/dt=2022-11-26/county=440703/b.parquet", 1),
            ("quarantine/dt=2022-11-26/q.parquet", 1),
        ]
        .into_iter()
        .map(|(p, s)| (p.to_string(), fingerprint(s)))
        .collect();
        let mut now = before.clone();
        let same = Changes::between(&before, &now);
        assert!(same.days.is_empty() && same.quarantine_days.is_empty() && !same.removed);

        now.insert(
            "raw/cases/dt=2022-11-27/county=440703/c.parquet".into(),
            fingerprint(1),
        );
        now.insert(
            "raw/visits/dt=2022-11-26/county=440703/b.parquet".into(),
            fingerprint(2),
        );
        now.insert("quarantine/dt=2022-11-28/r.parquet".into(), fingerprint(1));
        let grown = Changes::between(&before, &now);
        assert_eq!(grown.days, BTreeSet::from([day(26), day(27)]));
        assert_eq!(grown.quarantine_days, BTreeSet::from([day(28)]));
        assert!(!grown.removed);

        now.remove("raw/visits/dt=2022-11-25/county=440703/a.parquet");
        let shrunk = Changes::between(&before, &now);
        assert!(shrunk.removed, "a removed file forces a full rollup");
        assert!(shrunk.days.contains(&day(25)));

        let all = Changes::everything(&before);
        assert_eq!(all.days, BTreeSet::from([day(25), day(26)]));
        assert_eq!(all.quarantine_days, BTreeSet::from([day(26)]));
    }

    const MIB: u64 = 1024 * 1024;

    fn opts() -> AggregateOptions {
        AggregateOptions {
            campaign_start: day(25),
            ..AggregateOptions::default()
        }
    }

    /// A listing of raw visits of each `(day, MiB)` (several files of a
    /// day add up), and of quarantine files of `quarantined` days.
    fn lake(visits: &[(u32, u64)], quarantined: &[u32]) -> RawListing {
        let object = |path: String, size: u64| ObjectMeta {
            location: Path::from(path),
            last_modified: "2022-11-26T00:00:00Z".parse().unwrap(),
            size,
            e_tag: None,
            version: None,
        };
        let visits = visits
            .iter()
            .enumerate()
            .map(|(i, &(d, mib))| {
                // Named by the day's count of files before it.
                let nth = visits[..i].iter().filter(|(other, _)| *other == d).count();
                let path = format!("raw/visits/dt=2022-11-{d}/county=440703/part-{nth}.parquet");
                object(path, mib * MIB)
            })
            .collect();
        let quarantine = quarantined
            .iter()
            .map(|d| object(format!("quarantine/dt=2022-11-{d}/q.parquet"), 1))
            .collect();
        RawListing::new([visits, Vec::new(), quarantine])
    }

    /// The state a run over `listing` leaves, with rollups through `through`.
    fn state(listing: &RawListing, through: u32) -> AggregateState {
        AggregateState {
            layout: store::LAYOUT,
            files: listing.files.clone(),
            rollups: Some(settings(through)),
        }
    }

    fn settings(through: u32) -> RollupMark {
        RollupMark {
            through: day(through),
            campaign_start: day(25),
            overdue_hours: 72,
            urgency_overdue_hours: (24, 168),
            registry: "registry".into(),
        }
    }

    fn plan(previous: Option<&AggregateState>, listing: &RawListing) -> Plan {
        Plan::new(previous, listing, &opts(), "registry")
    }

    fn run_plan(previous: Option<&AggregateState>, listing: &RawListing) -> RunPlan {
        match plan(previous, listing) {
            Plan::Run(run) => run,
            Plan::Idle => panic!("nothing to do"),
        }
    }

    fn days(ds: &[u32]) -> BTreeSet<NaiveDate> {
        ds.iter().map(|&d| day(d)).collect()
    }

    fn groups(run: &RunPlan) -> Vec<(Vec<u32>, Vec<u32>)> {
        use chrono::Datelike;
        let days = |ds: &[NaiveDate]| ds.iter().map(|d| d.day()).collect();
        run.curation
            .iter()
            .map(|g| (days(&g.curate), days(&g.clear)))
            .collect()
    }

    const FOUND: PreviousRollups = PreviousRollups {
        cumulative_before: true,
        reporter_firsts: true,
        target_firsts: true,
    };

    const CURATED: CuratedTables = CuratedTables {
        visits: true,
        case_state: true,
    };

    #[test]
    fn nothing_new_is_nothing_to_do() {
        let listing = lake(&[(25, 1), (26, 1)], &[26]);
        assert_eq!(plan(Some(&state(&listing, 26)), &listing), Plan::Idle);
        assert_eq!(plan(None, &lake(&[], &[])), Plan::Idle);
        let all = AggregateOptions {
            full: true,
            ..opts()
        };
        assert_eq!(
            Plan::new(None, &lake(&[], &[]), &all, "registry"),
            Plan::Idle
        );
    }

    #[test]
    fn a_late_file_for_an_old_day_recurates_it_and_continues_the_rollups_from_it() {
        let before = lake(&[(25, 1), (26, 1), (27, 1), (28, 1)], &[]);
        let now = lake(&[(25, 1), (26, 1), (27, 1), (28, 1), (26, 1)], &[]);
        let run = run_plan(Some(&state(&before, 28)), &now);
        assert_eq!(groups(&run), [(vec![26], vec![])]);
        assert!(run.small);
        let rollups = &run.rollups;
        assert_eq!(rollups.from, day(26));
        assert_eq!(rollups.last_day, day(28));
        assert_eq!(rollups.case_state, CaseStateWork::Update(days(&[26])));
        assert_eq!(rollups.quality_days, Some(days(&[26])));
        assert!(rollups.checks_early_resolutions());

        let start = rollups.start(rollups.from, FOUND);
        assert_eq!(start.days, [day(26), day(27), day(28)]);
        assert!(start.continuing);
        assert_eq!(
            start.order,
            BuildOrder {
                case_state: CaseStateTurn::Beside,
                pace: Pace::Overlapped
            }
        );
        assert_eq!(run.rollups_mark(true), Some(settings(28)));
    }

    /// A resend on an older day (or a day without an index of its
    /// submissions) joins the curation: the groups are cut again, the
    /// rollups start from it, and case_state and quality follow it.
    #[test]
    fn days_a_resend_touches_join_the_curation_and_move_the_rollups_back() {
        let before = lake(&[(25, 1), (26, 1), (27, 1), (28, 1)], &[]);
        let now = lake(&[(25, 1), (26, 1), (27, 1), (28, 1), (28, 1)], &[]);
        let run = run_plan(Some(&state(&before, 28)), &now);
        assert_eq!(groups(&run), [(vec![28], vec![])]);
        let same = run.clone().with_days(&BTreeSet::new(), &now);
        assert_eq!(same, run, "no more days, the same plan");
        let run = run.with_days(&days(&[25]), &now);
        assert_eq!(run.days(), days(&[25, 28]));
        assert_eq!(groups(&run), [(vec![25, 28], vec![])]);
        assert_eq!(run.rollups.from, day(25));
        assert_eq!(
            run.rollups.case_state,
            CaseStateWork::Update(days(&[25, 28]))
        );
        assert_eq!(run.rollups.quality_days, Some(days(&[25, 28])));
        // Without previous rollups, everything is rebuilt anyway.
        let rebuild = run_plan(None, &now).with_days(&days(&[25]), &now);
        assert_eq!(rebuild.rollups.case_state, CaseStateWork::Rebuild);
        assert_eq!(rebuild.rollups.from, day(25));
    }

    #[test]
    fn a_new_day_continues_after_the_last_and_quarantine_alone_keeps_case_state() {
        let before = lake(&[(25, 1), (26, 1)], &[]);
        let now = lake(&[(25, 1), (26, 1), (27, 1)], &[27]);
        let run = run_plan(Some(&state(&before, 26)), &now);
        assert_eq!(groups(&run), [(vec![27], vec![])]);
        assert_eq!(run.rollups.from, day(27));
        assert_eq!(run.rollups.quality_days, Some(days(&[27])));

        let only_quarantine = lake(&[(25, 1), (26, 1)], &[26]);
        let run = run_plan(Some(&state(&before, 26)), &only_quarantine);
        assert!(run.curation.is_empty());
        assert_eq!(run.rollups.case_state, CaseStateWork::Keep);
        assert_eq!(run.rollups.quality_days, Some(days(&[26])));
        // Nothing to recompute after the last day the rollups cover.
        let start = run.rollups.start(run.rollups.from, FOUND);
        assert_eq!(start.from, day(27));
        assert!(start.days.is_empty());
        assert_eq!(start.order.case_state, CaseStateTurn::After);
    }

    #[test]
    fn a_removed_file_or_other_settings_recompute_every_day() {
        let before = lake(&[(25, 1), (26, 1), (27, 1)], &[]);
        let previous = state(&before, 27);
        let removed = lake(&[(25, 1), (27, 1)], &[]);
        let run = run_plan(Some(&previous), &removed);
        // The day without raw files left is cleared.
        assert_eq!(groups(&run), [(vec![], vec![26])]);
        assert_eq!(run.rollups.from, day(25));
        assert_eq!(run.rollups.case_state, CaseStateWork::Rebuild);
        assert_eq!(run.rollups.quality_days, None);
        assert!(!run.rollups.checks_early_resolutions());

        for (registry, overdue_hours) in [("another registry", 72), ("registry", 48)] {
            let opts = AggregateOptions {
                overdue_hours,
                ..opts()
            };
            let Plan::Run(run) = Plan::new(Some(&previous), &before, &opts, registry) else {
                panic!("rollups of other settings are redone");
            };
            assert!(run.curation.is_empty());
            assert_eq!(run.rollups.from, day(25));
            assert_eq!(run.rollups.case_state, CaseStateWork::Rebuild);
            // Were they not covered, the mark keeps the old day under the
            // new settings.
            let mark = run.rollups_mark(false).unwrap();
            assert_eq!((mark.through, mark.overdue_hours), (day(27), overdue_hours));
        }
    }

    #[test]
    fn a_state_of_another_layout_is_recomputed_as_with_all() {
        let listing = lake(&[(25, 1), (26, 1)], &[]);
        let previous = AggregateState {
            layout: store::LAYOUT - 1,
            ..state(&listing, 26)
        };
        let run = run_plan(Some(&previous), &listing);
        assert_eq!(groups(&run), [(vec![25, 26], vec![])]);
        assert_eq!(run.rollups.from, day(25));
        assert_eq!(run.rollups.case_state, CaseStateWork::Rebuild);
        assert_eq!(plan(Some(&state(&listing, 26)), &listing), Plan::Idle);
    }

    #[test]
    fn all_curates_every_day_and_rebuilds() {
        let listing = lake(&[(25, 1), (26, 1)], &[26]);
        let all = AggregateOptions {
            full: true,
            ..opts()
        };
        let Plan::Run(run) = Plan::new(Some(&state(&listing, 26)), &listing, &all, "registry")
        else {
            panic!("--all redoes everything");
        };
        assert_eq!(groups(&run), [(vec![25, 26], vec![])]);
        assert_eq!(run.rollups.case_state, CaseStateWork::Rebuild);
        assert_eq!(run.rollups.quality_days, None);
        let start = run.rollups.start(run.rollups.from, FOUND);
        assert!(!start.continuing);
        assert_eq!(
            start.order,
            BuildOrder {
                case_state: CaseStateTurn::Before,
                pace: Pace::InTurn
            }
        );
    }

    #[test]
    fn few_small_days_are_curated_together_and_a_large_day_alone() {
        let listing = lake(
            &[(25, 1), (26, 1), (27, 1), (28, 1), (29, 1), (30, 100)],
            &[],
        );
        let run = run_plan(None, &listing);
        assert_eq!(
            groups(&run),
            [
                (vec![25, 26, 27, 28], vec![]),
                (vec![29], vec![]),
                (vec![30], vec![])
            ]
        );
        assert_eq!(run.days_curated(), 6);
        let by_bytes = lake(&[(25, 40), (26, 20), (27, 10)], &[]);
        assert_eq!(
            groups(&run_plan(None, &by_bytes)),
            [(vec![25, 26], vec![]), (vec![27], vec![])]
        );
    }

    #[test]
    fn a_run_is_small_by_the_raw_bytes_it_recomputes() {
        let before = lake(&[(25, 100), (26, 1)], &[]);
        let now = lake(&[(25, 100), (26, 1), (27, 1)], &[]);
        assert!(run_plan(Some(&state(&before, 26)), &now).small);
        assert!(!run_plan(None, &now).small);
    }

    #[test]
    fn facts_found_in_the_lake_decide_again() {
        let before = lake(&[(25, 1), (26, 1), (27, 1)], &[]);
        let now = lake(&[(25, 1), (26, 1), (27, 1), (27, 1)], &[]);
        let rollups = run_plan(Some(&state(&before, 27)), &now).rollups;

        let no_visits = CuratedTables {
            visits: false,
            ..CURATED
        };
        assert_eq!(rollups.clone().given(no_visits), None);
        let no_case_state = CuratedTables {
            case_state: false,
            ..CURATED
        };
        let given = rollups.clone().given(no_case_state).unwrap();
        assert_eq!(given.case_state, CaseStateWork::Rebuild);
        let rollups = rollups.given(CURATED).unwrap();
        assert_eq!(rollups.case_state, CaseStateWork::Update(days(&[27])));

        // The previous cumulative file of the day before is missing.
        assert_eq!(rollups.day_before(day(27)), Some(day(26)));
        let missing = PreviousRollups {
            cumulative_before: false,
            ..FOUND
        };
        let start = rollups.start(day(27), missing);
        assert_eq!((start.from, start.continuing), (day(25), false));
        assert_eq!(start.days.len(), 3);
        assert_eq!(start.order.pace, Pace::InTurn);
        // The update of `case_state` still goes beside the visit tables.
        assert_eq!(start.order.case_state, CaseStateTurn::Beside);
        // Nothing continues the campaign's first day.
        assert_eq!(rollups.day_before(day(25)), None);
        assert!(!rollups.start(day(25), FOUND).continuing);

        // A case resolved before it was opened moves the start back, not
        // before the campaign's start.
        let start = rollups.start(day(27), FOUND);
        assert_eq!(rollups.earlier_start(&start, Some(day(26))), Some(day(26)));
        assert_eq!(rollups.earlier_start(&start, Some(day(20))), Some(day(25)));
        assert_eq!(rollups.earlier_start(&start, Some(day(27))), None);
        assert_eq!(rollups.earlier_start(&start, None), None);
    }

    #[test]
    fn without_rollups_the_run_records_those_it_had() {
        let before = lake(&[(25, 1)], &[]);
        let now = lake(&[(25, 1), (26, 1)], &[]);
        let run = run_plan(Some(&state(&before, 25)), &now);
        assert_eq!(run.rollups_mark(true), Some(settings(26)));
        assert_eq!(run.rollups_mark(false), Some(settings(25)));
        let first = run_plan(None, &now);
        assert_eq!(first.rollups_mark(false), None);
    }
}
