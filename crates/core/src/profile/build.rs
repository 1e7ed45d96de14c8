//! Building a profile: scan every dataset once into facts, fix the period,
//! index facts by person, run each section, then apply the edition.

use super::dates::{add_months, format_day, human_day, parse_day};
use super::facts::{Collected, Fact, Family, Plan, Role};
use super::{
    Cell, Edition, Headline, NetworkDetail, Note, Period, Profile, ProfileError, Settings, Source,
    Table, Thresholds, disclosure, groups, investigations, sections, threat,
};
use crate::events::LineageEvent;
use crate::ports::{ChainLog, RecordStore, StoreError, StoredRecord};
use crate::schema::Catalog;

/// Everything a section needs: the facts, the period and per-person indexes.
pub(crate) struct Ctx<'a> {
    pub(crate) c: &'a Collected,
    pub(crate) s: &'a Settings,
    pub(crate) from: i32,
    pub(crate) to: i32,
    pub(crate) prev_from: i32,
    pub(crate) prev_to: i32,
    /// Fact indexes sorted by (person, day).
    order: Vec<u32>,
    /// `order[start[p]..start[p + 1]]` are person p's facts.
    start: Vec<u32>,
    /// Has a record in the period.
    pub(crate) active: Vec<bool>,
    /// A victim marker in the period (victim role, CSE flag or CSE factor).
    pub(crate) victim: Vec<bool>,
    /// A victim role in the period (what networks count).
    pub(crate) victim_role: Vec<bool>,
    /// A suspect role in the period.
    pub(crate) suspect: Vec<bool>,
    /// Lineage events (uploads).
    pub(crate) lineage: Vec<LineageEvent>,
    /// The previous profile of this edition and what changed since it.
    pub(crate) since: Option<Since>,
}

/// The previous build of a profile edition (from its `profile_build`
/// lineage event) and, by upload index, whether the upload was ingested
/// after it: a record last written by such an upload is new or changed
/// since that profile.
#[derive(Debug, Clone)]
pub(crate) struct Since {
    pub(crate) time: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) fresh: Vec<bool>,
}

impl Ctx<'_> {
    /// Whether fact `f`'s record was written after the previous profile.
    pub(crate) fn fresh(&self, f: &Fact) -> bool {
        self.since
            .as_ref()
            .is_some_and(|s| s.fresh.get(f.upload as usize).copied().unwrap_or(false))
    }
}

impl Ctx<'_> {
    pub(crate) fn in_period(&self, f: &Fact) -> bool {
        (self.from..=self.to).contains(&f.day)
    }

    pub(crate) fn in_previous(&self, f: &Fact) -> bool {
        (self.prev_from..=self.prev_to).contains(&f.day)
    }

    /// Person `p`'s facts, oldest first (every date up to the period end).
    pub(crate) fn facts_of(&self, p: u32) -> impl Iterator<Item = &Fact> + '_ {
        let (a, b) = (
            self.start[p as usize] as usize,
            self.start[p as usize + 1] as usize,
        );
        self.order[a..b].iter().map(|&i| &self.c.facts[i as usize])
    }

    /// The position of person `p`'s first fact in the by-person order,
    /// which gives records without an event reference a unique key.
    pub(crate) fn start_of(&self, p: u32) -> usize {
        self.start[p as usize] as usize
    }

    pub(crate) fn people(&self) -> u32 {
        self.c.people.len() as u32
    }

    pub(crate) fn plan(&self, f: &Fact) -> &Plan {
        self.c.plan(f)
    }
}

/// Records handed from the reading thread to the building one at a time,
/// so the channel costs nothing per record.
const BATCH: usize = 256;

/// Batches the reading thread may be ahead by: about 20,000 records, 30 MiB
/// with their bodies. A store hands records on in bursts (the SQLite store
/// looks up a chunk of 32,768 records before it reads their bodies and
/// hands them on), and the building thread works through one burst while
/// the next is looked up. With 4 batches the reader waited for the builder
/// and the builder for the reader, and it was no faster than one thread.
const AHEAD: usize = 80;

/// Scan every dataset into facts on two threads: one reads the store (its
/// queries, body reads and checksums, about two thirds of the work), this
/// one reduces records to facts, in the store's order, so the facts are
/// what one thread would make.
fn collect(
    store: &dyn RecordStore,
    plans: Vec<Plan>,
    to_scan: &[(u16, String)],
    to: Option<&str>,
) -> Result<Collected, ProfileError> {
    use std::sync::mpsc;
    let mut c = Collected {
        plans,
        ..Collected::default()
    };
    let (full_tx, full_rx) = mpsc::sync_channel::<(u16, Vec<StoredRecord>)>(AHEAD);
    let (read, corrupt) = std::thread::scope(|s| {
        let reader = s.spawn(move || -> Result<(), StoreError> {
            let mut batch = Vec::with_capacity(BATCH);
            for (plan, ds_id) in to_scan {
                let mut open = true;
                let mut hand_over = |batch: &mut Vec<StoredRecord>| {
                    let full = std::mem::replace(batch, Vec::with_capacity(BATCH));
                    open = full_tx.send((*plan, full)).is_ok();
                    open
                };
                store.scan_dataset(ds_id, None, to, &mut |r| {
                    batch.push(r);
                    batch.len() < BATCH || hand_over(&mut batch)
                })?;
                if !batch.is_empty() {
                    hand_over(&mut batch);
                }
                if !open {
                    // The builder stopped at a corrupt record.
                    break;
                }
            }
            Ok(())
        });
        let mut corrupt = None;
        for (plan, batch) in &full_rx {
            if let Some(e) = batch.iter().find_map(|r| c.add(plan, r).err()) {
                corrupt = Some(e);
                break;
            }
        }
        drop(full_rx);
        let read = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (read, corrupt)
    });
    read?;
    if let Some(e) = corrupt {
        return Err(StoreError::from(e).into());
    }
    Ok(c)
}

/// Tables the partner edition leaves out: they list events, networks and
/// investigations by pseudonymous id.
pub(crate) const PARTNER_LEAVES_OUT: [&str; 5] = [
    "tracker",
    "group_networks",
    "investigation_people",
    "uncovered_networks",
    "peer_review_overdue",
];

/// Build the profile from the store and the lineage log.
pub fn build(
    catalog: &Catalog,
    store: &dyn RecordStore,
    lineage: &dyn ChainLog,
    settings: &Settings,
) -> Result<Profile, ProfileError> {
    let mut built = build_editions(catalog, store, lineage, settings, &[settings.edition])?;
    Ok(built.remove(0))
}

/// Build several editions of one profile from a single read of the store
/// and the lineage log (the scheduled build on AWS makes both; reading a
/// store twice would double its time and cost). `settings.edition` is
/// ignored: each of `editions` is built in turn, in that order.
pub fn build_editions(
    catalog: &Catalog,
    store: &dyn RecordStore,
    lineage: &dyn ChainLog,
    settings: &Settings,
    editions: &[Edition],
) -> Result<Vec<Profile>, ProfileError> {
    let from_arg = settings
        .from
        .as_deref()
        .map(|s| parse_day(s).ok_or_else(|| ProfileError::BadDate(s.to_owned())))
        .transpose()?;
    let to_arg = settings
        .to
        .as_deref()
        .map(|s| parse_day(s).ok_or_else(|| ProfileError::BadDate(s.to_owned())))
        .transpose()?;
    if let (Some(f), Some(t)) = (from_arg, to_arg)
        && f > t
    {
        return Err(ProfileError::EmptyPeriod {
            from: format_day(f),
            to: format_day(t),
        });
    }

    // One scan per dataset. History before the period is read too: the
    // footprint, prior agency knowledge and missing-before-CSE look back.
    let mut plans = Vec::new();
    let mut to_scan = Vec::new();
    let mut unknown = Vec::new();
    for ds_id in store.datasets()? {
        match catalog.get(&ds_id) {
            Some(ds) => {
                to_scan.push((plans.len() as u16, ds_id));
                plans.push(Plan::new(ds));
            }
            None => unknown.push(ds_id),
        }
    }
    let to_text = to_arg.map(format_day);
    let c = collect(store, plans, &to_scan, to_text.as_deref())?;

    let latest = c.facts.iter().map(|f| f.day).max();
    // The default end is the latest event, but never after the day the
    // profile is made: one row dated in the future (stored before dates
    // were bounded, or by a custom schema) must not move the period past
    // every real record and empty it.
    let today = settings.generated_at.get(..10).and_then(parse_day);
    let to = match (to_arg, latest) {
        (Some(t), _) => t,
        (None, Some(l)) => today.map_or(l, |t| l.min(t)),
        (None, None) => return Err(ProfileError::NoRecords),
    };
    let from = from_arg.unwrap_or_else(|| add_months(to, -12) + 1);
    if from > to {
        return Err(ProfileError::EmptyPeriod {
            from: format_day(from),
            to: format_day(to),
        });
    }
    let entries = lineage.entries()?;
    let lineage: Vec<LineageEvent> = entries.iter().map(LineageEvent::from_entry).collect();
    let linkage = linkage_note(store, &lineage)?;
    let mut out = Vec::with_capacity(editions.len());
    for &edition in editions {
        let s = Settings {
            edition,
            ..settings.clone()
        };
        let since = since_previous(&c, &entries, &lineage, edition);
        out.push(finish(
            &c,
            &s,
            (from, to),
            &unknown,
            lineage.clone(),
            linkage.clone(),
            since,
        ));
    }
    Ok(out)
}

/// The latest earlier build of `edition` and which uploads came after it.
/// `entries` and `events` are the same log, stored and typed.
fn since_previous(
    c: &Collected,
    entries: &[serde_json::Value],
    events: &[LineageEvent],
    edition: Edition,
) -> Option<Since> {
    let previous = events.iter().rev().find_map(|e| match e {
        LineageEvent::ProfileBuild(b) if b.edition == edition.as_str() => Some(b),
        _ => None,
    })?;
    let mut fresh = vec![false; c.uploads.names.len()];
    for (entry, e) in entries.iter().zip(events) {
        let (LineageEvent::Ingest(u) | LineageEvent::UploadFailure(u)) = e else {
            continue;
        };
        if crate::ports::entry_seq(entry) > previous.lineage_seq
            && let Some(i) = c.uploads.get(&u.upload_id)
        {
            fresh[i as usize] = true;
        }
    }
    Some(Since {
        time: previous.time.clone(),
        from: previous.period_from.clone(),
        to: previous.period_to.clone(),
        fresh,
    })
}

/// One edition from the collected facts: index them by person, run each
/// section, then apply the edition.
fn finish(
    c: &Collected,
    settings: &Settings,
    (from, to): (i32, i32),
    unknown: &[String],
    lineage: Vec<LineageEvent>,
    linkage: Note,
    since: Option<Since>,
) -> Profile {
    let days = to - from + 1;
    let (prev_to, prev_from) = (from - 1, from - days);

    let n_people = c.people.len();
    let mut order: Vec<u32> = (0..c.facts.len() as u32).collect();
    order.sort_unstable_by_key(|&i| {
        let f = &c.facts[i as usize];
        (f.person, f.day, i)
    });
    let mut start = vec![0u32; n_people + 1];
    for f in &c.facts {
        start[f.person as usize + 1] += 1;
    }
    for p in 0..n_people {
        start[p + 1] += start[p];
    }
    let mut active = vec![false; n_people];
    let mut victim = vec![false; n_people];
    let mut victim_role = vec![false; n_people];
    let mut suspect = vec![false; n_people];
    for f in c.facts.iter().filter(|f| (from..=to).contains(&f.day)) {
        let p = f.person as usize;
        active[p] = true;
        victim[p] |= f.is_victim_marker();
        victim_role[p] |= f.role == Role::Victim;
        suspect[p] |= f.role == Role::Suspect;
    }
    let ctx = Ctx {
        c,
        s: settings,
        from,
        to,
        prev_from,
        prev_to,
        order,
        start,
        active,
        victim,
        victim_role,
        suspect,
        lineage,
        since,
    };

    let mut tables: Vec<Table> = Vec::new();
    let mut notes: Vec<Note> = Vec::new();
    let mut caveats: Vec<String> = Vec::new();
    if !unknown.is_empty() {
        caveats.push(format!(
            "The store holds records of {} that this build has no schema for; they are left out of every figure.",
            unknown.join(", ")
        ));
    }
    if c.bad_dates > 0 {
        caveats.push(format!(
            "{} records have an event date that is not a date and are left out.",
            c.bad_dates
        ));
    }
    let events = sections::events(&ctx);
    let nets = groups::networks(&ctx);
    // Report order: aggregates first, the long tracker last.
    tables.extend(sections::volumes(&ctx, &events, &mut notes));
    let people = sections::people(&ctx, &mut notes, &mut caveats);
    tables.extend(people.tables);
    tables.extend(sections::places(&ctx, &events, &mut notes));
    tables.push(sections::models(&ctx, &events, &mut notes));
    tables.extend(groups::tables(&ctx, &nets, &mut notes));
    if let Some(found) = investigations::sections(&ctx, &nets, &mut notes, &mut caveats) {
        tables.extend(found.tables);
    }
    tables.push(sections::quality(&ctx, &mut notes, &mut caveats));
    let tracker = groups::tracker(&ctx, &events, &nets);
    // The tracker is the analyst edition's alone, and so is this count (a
    // small number here would be an unsuppressed count in the partner's).
    if let (Some(s), Edition::Analyst) = (&ctx.since, settings.edition) {
        let changed = tracker
            .rows
            .iter()
            .filter(|r| matches!(r.last(), Some(Cell::Text(t)) if t == "yes"))
            .count();
        notes.push(Note {
            topic: "Since the previous profile".into(),
            text: format!(
                "The previous analyst edition was built on {} for {} to {}. Since then, {changed} of the {} tracker entries are new or changed (a record of theirs was written by an upload ingested after that build); they are marked in the tracker.",
                s.time.get(..10).unwrap_or(&s.time),
                s.from,
                s.to,
                tracker.rows.len()
            ),
        });
    }
    tables.push(tracker);
    let details = groups::details(&ctx, &nets);

    notes.push(linkage);

    let edition = settings.edition;
    let networks: Option<Vec<NetworkDetail>> = match edition {
        Edition::Analyst => Some(details),
        Edition::Partner => {
            // The tracker and network details identify events and people:
            // partners get the aggregate tables only.
            // The same goes for the investigation and network lists.
            tables.retain(|t| !PARTNER_LEAVES_OUT.contains(&t.id.as_str()));
            for t in &mut tables {
                disclosure::apply(t, settings.suppression);
            }
            None
        }
    };
    notes.push(Note {
        topic: "Disclosure control".into(),
        text: match edition {
            Edition::Analyst => "Analyst edition: complete figures with pseudonymous ids. Not for circulation beyond the police analysts who are entitled to the underlying records.".into(),
            Edition::Partner => format!(
                "Partner edition: counts of {} to {} are shown as c (primary suppression), and further counts are withheld as c where a row or column total, or any combination of totals in the same table, would give a hidden count back (secondary suppression). Percentages, changes and medians computed from a withheld count are withheld too. Zeros are shown. The check is within each table; the tracker, network details and all pseudonymous ids are left out.",
                settings.suppression.min, settings.suppression.max
            ),
        },
    });

    let period = Period {
        from: format_day(from),
        to: format_day(to),
        days: days as u32,
        previous_from: format_day(prev_from),
        previous_to: format_day(prev_to),
        default: settings.from.is_none() && settings.to.is_none(),
    };
    let headlines = headlines(&tables);
    let summary = summary_sentences(&period, from, to, &headlines, &tables);
    let mut sources: Vec<Source> = c
        .plans
        .iter()
        .map(|p| Source {
            dataset: p.id.clone(),
            title: p.title.clone(),
            agency_type: p.agency_type.short().into(),
            read_as: family_name(p.family).into(),
            records: 0,
        })
        .collect();
    for f in c.facts.iter().filter(|f| ctx.in_period(f)) {
        sources[f.plan as usize].records += 1;
    }
    for &(plan, day) in &c.case_rows {
        if (from..=to).contains(&day) {
            sources[plan as usize].records += 1;
        }
    }
    Profile {
        format: super::FORMAT,
        title: "Child sexual exploitation: multi-agency problem profile".into(),
        edition,
        generated_at: settings.generated_at.clone(),
        period,
        thresholds: Thresholds {
            min_suspects: settings.min_suspects,
            min_victims: settings.min_victims,
            missing_window_days: settings.missing_window_days,
            peer_review_days: settings.peer_review_days,
        },
        suppression: (edition == Edition::Partner).then_some(settings.suppression),
        headlines,
        summary,
        tables,
        networks,
        threat: threat::method(&settings.threat),
        sources,
        method: notes,
        caveats,
    }
}

/// How people were linked: the model and thresholds in force, where the
/// links came from (exact keys, scores, review decisions, from lineage and
/// the review queue), and what still waits for review.
fn linkage_note(store: &dyn RecordStore, lineage: &[LineageEvent]) -> Result<Note, ProfileError> {
    let (mut exact, mut scored, mut reviewed_in_uploads) = (0u64, 0u64, 0u64);
    // A withdrawn upload's links went with its records.
    let withdrawn: std::collections::HashSet<&str> = lineage
        .iter()
        .filter_map(|e| match e {
            LineageEvent::Withdrawn(w) => Some(w.upload_id.as_str()),
            _ => None,
        })
        .collect();
    for e in lineage {
        let LineageEvent::Ingest(u) = e else {
            continue;
        };
        if withdrawn.contains(u.upload_id.as_str()) {
            continue;
        }
        exact += u.people_linked;
        if let Some(l) = &u.linkage {
            scored += l.outcome.linked_by_score;
            reviewed_in_uploads += l.outcome.linked_by_review;
        }
    }
    let Some(linkage) = store.linkage() else {
        return Ok(Note {
            topic: "Linkage".into(),
            text: format!(
                "People were linked by exact match keys only (NHS number, UPN, or family name, given name and date of birth together): {exact} record links. Records of one person written differently are counted as different people, so counts of people are overstated and multi-agency figures understated."
            ),
        });
    };
    let model = crate::linkage::current_model(linkage)?;
    let items = linkage.review_items()?;
    let decided_match = items
        .iter()
        .filter(|i| i.status == crate::linkage::ReviewStatus::Match)
        .count() as u64;
    let decided_apart = items
        .iter()
        .filter(|i| i.status == crate::linkage::ReviewStatus::NonMatch)
        .count() as u64;
    let waiting = items.iter().filter(|i| i.status.is_pending()).count();
    let reviewed = decided_match + reviewed_in_uploads;
    let total = (exact + scored + reviewed).max(1) as f64;
    let pct = |x: u64| 100.0 * x as f64 / total;
    let model_name = if model.version == 0 {
        "the built-in model (version 0)".to_owned()
    } else {
        format!(
            "model version {} (estimated from this store's data)",
            model.version
        )
    };
    Ok(Note {
        topic: "Linkage".into(),
        text: format!(
            "People were linked first by exact match keys (NHS number, UPN, or family name, given name and date of birth together), then by probabilistic scores over keyed comparison codes of the name and date-of-birth fields ({scheme}, {model_name}): pairs scoring a match probability of {m} or more were linked, pairs from {r} up to that went to clerical review. Of {links} links, {pe:.1}% came from exact keys ({exact}), {ps:.1}% from scores ({scored}) and {pr:.1}% from analysts' review decisions ({reviewed}). {waiting} pairs wait for review and {decided_apart} were decided to be different people; until reviewed, a waiting pair counts as two people, so counts of people may be slightly overstated.",
            scheme = model.scheme,
            m = model.match_threshold,
            r = model.review_threshold,
            links = exact + scored + reviewed,
            pe = pct(exact),
            ps = pct(scored),
            pr = pct(reviewed),
        ),
    })
}

pub(crate) fn family_name(f: Family) -> &'static str {
    match f {
        Family::Crime => "crime",
        Family::Intelligence => "intelligence",
        Family::Assessment => "assessment",
        Family::Missing => "missing episode",
        Family::Attendance => "safeguarding attendance",
        Family::Absence => "education episode",
        Family::Investigation => "investigation",
        Family::Disruption => "disruption activity",
        Family::Other => "other",
    }
}

/// The headline figures, read from the finished (possibly suppressed)
/// tables so the summary can never show what a table hides.
fn headlines(tables: &[Table]) -> Vec<Headline> {
    let find = |id: &str| tables.iter().find(|t| t.id == id);
    let mut out = Vec::new();
    let mut push =
        |id: &str, label: String, value: Option<&Cell>, previous: Option<&Cell>, unit| {
            if let Some(value) = value {
                out.push(Headline {
                    id: id.to_owned(),
                    label,
                    value: value.clone(),
                    previous: previous.cloned(),
                    unit,
                });
            }
        };
    if let Some(v) = find("volumes") {
        for (i, id) in v.row_ids.iter().enumerate() {
            if matches!(id.as_str(), "cse_crimes" | "cse_intelligence" | "cin_11a") {
                push(
                    id,
                    v.rows[i][0].display(),
                    v.get(id, "current"),
                    v.get(id, "previous"),
                    "count",
                );
            }
        }
    }
    if let Some(t) = find("victims_suspects") {
        push(
            "victims",
            "Victims and children at risk (distinct people)".into(),
            t.get("victims", "people"),
            t.get("victims", "previous"),
            "count",
        );
        push(
            "suspects",
            "Suspects (distinct people)".into(),
            t.get("suspects", "people"),
            t.get("suspects", "previous"),
            "count",
        );
    }
    if let Some(t) = find("network_tiers") {
        push(
            "group_networks",
            "Group-based networks".into(),
            t.get("total", "networks"),
            None,
            "count",
        );
        push(
            "high_tier_networks",
            "High-threat networks".into(),
            t.get("high", "networks"),
            None,
            "count",
        );
    }
    if let Some(t) = find("network_coverage") {
        push(
            "uncovered_networks",
            "Group-based networks no open investigation covers".into(),
            t.get("total", "uncovered"),
            None,
            "count",
        );
    }
    if let Some(t) = find("peer_review") {
        push(
            "peer_review_overdue",
            "Highest-threat investigations overdue a peer review".into(),
            t.get("overdue", "investigations"),
            None,
            "count",
        );
    }
    if let Some(t) = find("prior_knowledge") {
        push(
            "known_before_police",
            "Victims known to another agency before police".into(),
            t.get("any", "share"),
            None,
            "percent",
        );
    }
    if let Some(t) = find("missing_before_cse") {
        push(
            "missing_before_cse",
            "Victims missing shortly before a CSE event".into(),
            t.get("window", "share"),
            None,
            "percent",
        );
    }
    out
}

/// A count or percentage in words; `c` becomes "a withheld number".
pub(crate) fn say(c: &Cell, unit: &str) -> String {
    match (c, unit) {
        (Cell::Suppressed, "percent") => "a withheld share".into(),
        (Cell::Suppressed, _) => "a withheld number of".into(),
        (Cell::Number(x), "percent") => format!("{}%", super::table::format_number(*x)),
        (c, _) => c.display(),
    }
}

fn change_words(now: &Cell, before: &Cell) -> String {
    match (now.count(), before.count()) {
        (Some(n), Some(b)) if b > 0 => {
            let pct = (n as f64 - b as f64) * 100.0 / b as f64;
            if pct.abs() < 0.5 {
                "about the same as the previous period".into()
            } else if pct > 0.0 {
                format!(
                    "up {:.0}% on the previous period ({})",
                    pct,
                    before.display()
                )
            } else {
                format!(
                    "down {:.0}% on the previous period ({})",
                    -pct,
                    before.display()
                )
            }
        }
        (Some(_), Some(0)) => "none in the previous period".into(),
        _ => "the change on the previous period is withheld".into(),
    }
}

fn summary_sentences(
    period: &Period,
    from: i32,
    to: i32,
    heads: &[Headline],
    tables: &[Table],
) -> Vec<String> {
    let h = |id: &str| heads.iter().find(|x| x.id == id);
    let mut out = Vec::new();
    let span = format!("From {} to {}", human_day(from), human_day(to));
    if let Some(crimes) = h("cse_crimes") {
        let prev = crimes.previous.clone().unwrap_or(Cell::Empty);
        let mut s = format!(
            "{span}, police flagged {} crimes as CSE-related, {}",
            say(&crimes.value, "count"),
            change_words(&crimes.value, &prev)
        );
        if let Some(intel) = h("cse_intelligence") {
            s.push_str(&format!(
                ", and received {} CSE-flagged intelligence reports",
                say(&intel.value, "count")
            ));
        }
        s.push('.');
        out.push(s);
    } else {
        out.push(format!(
            "{span}: no police crime data is in the store, so offence volumes are not reported."
        ));
    }
    if let (Some(v), Some(s)) = (h("victims"), h("suspects")) {
        out.push(format!(
            "{} children and young people were recorded as victims or at risk of CSE (a victim role, a CSE flag or CIN factor 11A), and {} people as suspects.",
            say(&v.value, "count"),
            say(&s.value, "count")
        ));
    }
    if let Some(g) = h("group_networks") {
        let high = match h("high_tier_networks").map(|x| &x.value) {
            Some(Cell::Suppressed) => "a withheld number".to_owned(),
            Some(v) => say(v, "count"),
            None => "none".to_owned(),
        };
        out.push(format!(
            "{} group-based networks (two or more suspects tied to at least one victim) were identified; {} of them score as high threat.",
            say(&g.value, "count"),
            high
        ));
    }
    if let Some(u) = h("uncovered_networks") {
        let active = tables
            .iter()
            .find(|t| t.id == "investigations_by_threat")
            .and_then(|t| t.get("total", "total"))
            .map_or_else(|| "no".to_owned(), |c| say(c, "count"));
        let overdue =
            h("peer_review_overdue").map_or_else(|| "no".to_owned(), |o| say(&o.value, "count"));
        out.push(format!(
            "Police recorded {active} CSE investigations open at some time in the period; {} of the group-based networks are covered by no open investigation, and {overdue} highest-threat investigations are overdue a peer review.",
            say(&u.value, "count")
        ));
    }
    if let Some(k) = h("known_before_police") {
        out.push(format!(
            "Of victims with a police record, {} were known to another agency before police first recorded them.",
            say(&k.value, "percent")
        ));
    }
    if let Some(m) = h("missing_before_cse") {
        out.push(format!(
            "{} of victims had a missing episode in the days before a CSE event.",
            say(&m.value, "percent")
        ));
    }
    if let Some(q) = tables.iter().find(|t| t.id == "data_quality") {
        let rejected: u64 = q
            .rows
            .iter()
            .filter_map(|r| q.col("rows_rejected").and_then(|c| r[c].count()))
            .sum();
        let rows: u64 = q
            .rows
            .iter()
            .filter_map(|r| q.col("rows_in").and_then(|c| r[c].count()))
            .sum();
        if rows > 0 {
            out.push(format!(
                "Agencies sent {} rows; {} ({:.1}%) were rejected at validation and are not in these figures (see data quality).",
                super::table::group_thousands(rows),
                super::table::group_thousands(rejected),
                rejected as f64 * 100.0 / rows as f64
            ));
        }
    }
    if !period.default {
        out.push(format!(
            "The period was chosen by the analyst; it is compared with the {} days before it.",
            period.days
        ));
    }
    // A withheld figure can open a sentence ("a withheld number of ...").
    for s in &mut out {
        if let Some(first) = s.get(..1) {
            let upper = first.to_uppercase();
            s.replace_range(..1, &upper);
        }
    }
    out
}
