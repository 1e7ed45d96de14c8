//! Events, rows, mistakes and the ground-truth file.
//!
//! Rows come from a stream of events. In a dataset with a `person_role`
//! column an event is one crime or report with several involvements (one row
//! each); otherwise it is one record about one child. Planted events come
//! first (every involvement of a planted crime together), then background
//! events, drawn for as long as rows are asked for. Nothing is collected:
//! each row is written as soon as it is made, so memory is flat in the row
//! count.

use std::fmt::Write as _;
use std::io::Write;

use crate::calendar::{
    DateStyle, Day, EVENT_END, EVENT_START, age_on, civil_from_days, is_leap, push_date,
};
use crate::corrupt::{Corruptor, ErrorKind, ErrorModel, RowPerson, Targets};
use crate::geo::{BOROUGHS, Postcode};
use crate::ids::{UPN_ALPHABET, make_upn, nhs_with_wrong_check, push_nhs, push_phone, push_vrm};
use crate::plan::{
    Codes, Column, Fill, Mode, Plan, RoleClass, Scope, Style, Subject, unknown_code_for,
};
use crate::rng::{Rng, mix};
use crate::world::{Involvement, Person, World, local_id_text, network_label, person_label};
use crate::{SynthError, SynthStats};
use agencylink_core::schema::{Dataset, MatchRole};

/// One deliberate mistake in an invalid row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mistake {
    NhsCheckDigit,
    UpnCheckLetter,
    ImpossibleDate,
    UnknownCode,
    BlankRequired,
}

impl Mistake {
    fn name(self) -> &'static str {
        match self {
            Mistake::NhsCheckDigit => "nhs_check_digit",
            Mistake::UpnCheckLetter => "upn_check_letter",
            Mistake::ImpossibleDate => "impossible_date",
            Mistake::UnknownCode => "unknown_code",
            Mistake::BlankRequired => "blank_required",
        }
    }
}

/// One event: the people involved and what they share.
#[derive(Debug, Clone)]
struct Event {
    date: Day,
    borough: u8,
    place: Postcode,
    network: Option<u32>,
    /// Probability that a code is drawn from the CSE story codes.
    story: f64,
    /// The person codes are chosen for (the victim, or the child).
    focus: Option<u32>,
    /// `(person, role code, class)`; no role code in person-centric datasets.
    people: Vec<(u32, Option<usize>, RoleClass)>,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Person-centric: the planted network victims' own records.
    StoryRows {
        net: usize,
        victim: usize,
        second: bool,
    },
    /// Role datasets: the planted networks' crimes or reports.
    NetworkEvents {
        net: usize,
        event: usize,
    },
    Background,
    /// A given list of children, one record each (the linkage pair).
    Listed {
        next: usize,
    },
}

/// Whose ids the rows carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ids {
    /// The world's own: record refs from the row number, the person's
    /// local id.
    Own,
    /// A second agency's: record refs numbered from 50,000,001 and person
    /// ids from another bijection with an `S` prefix, so that no id matches
    /// one written under [`Ids::Own`].
    Second,
}

/// Record refs under [`Ids::Second`] start after this.
const SECOND_REF_OFFSET: u64 = 50_000_000;

pub(crate) struct Generator<'w> {
    world: &'w World,
    plan: Plan,
    rng: Rng,
    /// A separate stream for mistakes, so the invalid rate never changes
    /// the values of the rows it leaves valid.
    inv: Rng,
    invalid_rate: f64,
    mistakes: Vec<(Mistake, Vec<usize>)>,
    phase: Phase,
    name_case: NameCase,
    /// The current event has a code meaning sexual exploitation.
    story_hit: bool,
    events: u64,
    event_cells: Vec<String>,
    cells: Vec<String>,
    line: String,
    truth_line: String,
    /// JSON-encoded names for the truth file.
    column_json: Vec<String>,
    role_json: Vec<String>,
    /// Per network, per member (suspects then victims): seen in a row.
    seen: Vec<Vec<bool>>,
    nhs_cols: Vec<usize>,
    upn_cols: Vec<usize>,
    family_cols: Vec<usize>,
    given_cols: Vec<usize>,
    dob_cols: Vec<usize>,
    /// The linkage error model and this row's errors.
    corrupt: Corruptor,
    row_errors: Vec<(ErrorKind, usize)>,
    /// The first date-of-birth cell written in this row, and its format.
    dob_written: Option<(usize, DateStyle)>,
    ids: Ids,
    /// The people of [`Phase::Listed`].
    listed: Vec<u32>,
}

impl std::fmt::Debug for Generator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// Append `cell` to a CSV line, quoting only when it must.
fn push_csv(line: &mut String, cell: &str) {
    if cell.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&cell.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(cell);
    }
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

impl<'w> Generator<'w> {
    pub(crate) fn new(
        world: &'w World,
        dataset: &Dataset,
        seed: u64,
        invalid_rate: f64,
        errors: ErrorModel,
    ) -> Result<Self, SynthError> {
        errors.check()?;
        let plan = Plan::new(dataset)?;
        let n = plan.columns.len();
        let cols = |pred: &dyn Fn(&Column) -> bool| -> Vec<usize> {
            (0..n).filter(|&i| pred(&plan.columns[i])).collect()
        };
        let mut mistakes = vec![
            (
                Mistake::NhsCheckDigit,
                cols(&|c| matches!(c.fill, Fill::Nhs)),
            ),
            (
                Mistake::UpnCheckLetter,
                cols(&|c| matches!(c.fill, Fill::Upn)),
            ),
            (
                Mistake::ImpossibleDate,
                cols(&|c| {
                    matches!(
                        c.fill,
                        Fill::Dob
                            | Fill::EventDate { time: false }
                            | Fill::LaterDate { time: false }
                    )
                }),
            ),
            (
                Mistake::UnknownCode,
                cols(&|c| c.code_list(plan.roles.as_ref()).is_some()),
            ),
            (Mistake::BlankRequired, cols(&|c| c.mandatory)),
        ];
        mistakes.retain(|(_, c)| !c.is_empty());
        if invalid_rate > 0.0 && mistakes.is_empty() {
            return Err(SynthError::Unsupported {
                dataset: dataset.id.clone(),
                field: String::new(),
                reason: "no field can carry a mistake".into(),
            });
        }
        let role_of = |r: MatchRole| cols(&|c| c.match_role == Some(r));
        let phase = if plan.roles.is_some() {
            Phase::NetworkEvents { net: 0, event: 0 }
        } else {
            Phase::StoryRows {
                net: 0,
                victim: 0,
                second: false,
            }
        };
        let role_json = plan
            .roles
            .as_ref()
            .map(|r| r.codes.iter().map(|c| json(c)).collect())
            .unwrap_or_default();
        Ok(Generator {
            world,
            rng: Rng::derive(seed, &format!("rows/{}", dataset.id)),
            inv: Rng::derive(seed, &format!("invalid/{}", dataset.id)),
            invalid_rate,
            mistakes,
            phase,
            name_case: NameCase::AsIs,
            story_hit: false,
            events: 0,
            event_cells: vec![String::new(); n],
            cells: vec![String::new(); n],
            line: String::with_capacity(512),
            truth_line: String::with_capacity(256),
            column_json: plan.columns.iter().map(|c| json(&c.name)).collect(),
            role_json,
            seen: world
                .networks
                .iter()
                .map(|net| vec![false; net.suspects.len() + net.victims.len()])
                .collect(),
            nhs_cols: role_of(MatchRole::Nhs),
            upn_cols: role_of(MatchRole::Upn),
            family_cols: role_of(MatchRole::Family),
            given_cols: role_of(MatchRole::Given),
            dob_cols: role_of(MatchRole::Dob),
            corrupt: Corruptor::new(errors, seed, &dataset.id),
            row_errors: Vec::new(),
            dob_written: None,
            ids: Ids::Own,
            listed: Vec::new(),
            plan,
        })
    }

    /// Write one record for each of `people` (children, in this order)
    /// instead of the dataset's usual events, with `ids`. Only for a dataset
    /// without a role column.
    pub(crate) fn listed(&mut self, people: Vec<u32>, ids: Ids) -> Result<(), SynthError> {
        if self.plan.roles.is_some() {
            return Err(SynthError::Unsupported {
                dataset: String::new(),
                field: "person_role".into(),
                reason: "a linkage pair needs a dataset about children only".into(),
            });
        }
        self.listed = people;
        self.ids = ids;
        self.phase = Phase::Listed { next: 0 };
        Ok(())
    }

    /// Whether child `index` can appear in this dataset.
    pub(crate) fn can_appear(&self, index: u32) -> bool {
        self.world
            .people
            .get(index as usize)
            .is_some_and(|p| p.child && self.eligible(p, false, false))
    }

    /// Write the header and `rows` rows; the truth file if asked.
    pub(crate) fn run(
        &mut self,
        rows: u64,
        out: &mut dyn Write,
        mut truth: Option<&mut dyn Write>,
    ) -> Result<SynthStats, SynthError> {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
        let mut truth = truth
            .as_mut()
            .map(|t| std::io::BufWriter::with_capacity(1 << 16, &mut **t));
        self.line.clear();
        for (i, c) in self.plan.columns.iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            push_csv(&mut self.line, &c.name);
        }
        self.line.push('\n');
        out.write_all(self.line.as_bytes())?;
        let mut stats = SynthStats::default();
        let mut empty_events = 0u32;
        while stats.rows < rows {
            let ev = self.next_event()?;
            if ev.people.is_empty() {
                empty_events += 1;
                if empty_events > 10_000 {
                    return Err(SynthError::NoPeople);
                }
                continue;
            }
            empty_events = 0;
            self.events += 1;
            self.fill_event_cells(&ev);
            for &(person, role, class) in &ev.people {
                if stats.rows >= rows {
                    break;
                }
                stats.rows += 1;
                let row = stats.rows;
                self.fill_row(&ev, person, role, class, row);
                let mistake = self.maybe_mistake(&ev, person);
                self.row_errors.clear();
                if mistake.is_some() {
                    stats.invalid_rows += 1;
                } else if !self.corrupt.is_none() {
                    self.apply_errors(person, row);
                    if !self.row_errors.is_empty() {
                        stats.error_rows += 1;
                    }
                }
                self.line.clear();
                for (i, cell) in self.cells.iter().enumerate() {
                    if i > 0 {
                        self.line.push(',');
                    }
                    push_csv(&mut self.line, cell);
                }
                self.line.push('\n');
                out.write_all(self.line.as_bytes())?;
                if let Some(net) = ev.network {
                    self.mark_seen(net, person);
                }
                if let Some(t) = truth.as_mut() {
                    self.write_truth_line(row, person, role, &ev, mistake)?;
                    t.write_all(self.truth_line.as_bytes())?;
                }
            }
        }
        stats.networks = self.seen.iter().filter(|s| s.iter().any(|&x| x)).count() as u32;
        if let Some(t) = truth.as_mut() {
            self.write_summary(t, &stats)?;
            t.flush()?;
        }
        out.flush()?;
        Ok(stats)
    }

    fn mark_seen(&mut self, net: u32, person: u32) {
        let Some(n) = self.world.networks.get(net as usize) else {
            return;
        };
        let pos = n.suspects.iter().position(|&s| s == person).or_else(|| {
            n.victims
                .iter()
                .position(|&v| v == person)
                .map(|v| v + n.suspects.len())
        });
        if let (Some(pos), Some(seen)) = (pos, self.seen.get_mut(net as usize)) {
            seen[pos] = true;
        }
    }

    fn write_truth_line(
        &mut self,
        row: u64,
        person: u32,
        role: Option<usize>,
        ev: &Event,
        mistake: Option<(Mistake, usize)>,
    ) -> Result<(), SynthError> {
        let linkable = self.linkable(mistake);
        let t = &mut self.truth_line;
        t.clear();
        let role = role
            .and_then(|r| self.role_json.get(r))
            .map_or("\"child\"", String::as_str);
        let _ = write!(
            t,
            "{{\"row\":{row},\"person\":\"{}\",\"role\":{role},",
            person_label(person)
        );
        match mistake {
            Some((m, col)) => {
                let _ = write!(
                    t,
                    "\"invalid\":true,\"mistake\":\"{}\",\"field\":{},",
                    m.name(),
                    self.column_json[col]
                );
            }
            None => t.push_str("\"invalid\":false,\"mistake\":null,\"field\":null,"),
        }
        match ev.network {
            Some(n) => {
                let _ = write!(t, "\"network\":\"{}\",", network_label(n));
            }
            None => t.push_str("\"network\":null,"),
        }
        let _ = write!(t, "\"linkable\":{linkable},\"errors\":[");
        for (k, &(kind, col)) in self.row_errors.iter().enumerate() {
            if k > 0 {
                t.push(',');
            }
            let _ = write!(
                t,
                "{{\"field\":{},\"kind\":\"{}\"}}",
                self.column_json[col],
                kind.name()
            );
        }
        t.push_str("]}\n");
        Ok(())
    }

    fn apply_errors(&mut self, person: u32, row: u64) {
        let p = &self.world.people[person as usize];
        let who = RowPerson {
            given: p.given,
            family: p.family,
            ethnicity: p.ethnicity,
            dob: p.dob,
        };
        let targets = Targets {
            given: self.given_cols.first().copied(),
            family: self.family_cols.first().copied(),
            dob: self.dob_written,
        };
        self.corrupt
            .apply(row, &who, targets, &mut self.cells, &mut self.row_errors);
    }

    fn write_summary(&self, t: &mut dyn Write, stats: &SynthStats) -> Result<(), SynthError> {
        let networks: Vec<serde_json::Value> = self
            .world
            .networks
            .iter()
            .zip(&self.seen)
            .filter(|(_, seen)| seen.iter().any(|&x| x))
            .map(|(n, seen)| {
                let (s_seen, v_seen) = seen.split_at(n.suspects.len());
                let pick = |ids: &[u32], seen: &[bool]| -> Vec<String> {
                    ids.iter()
                        .zip(seen)
                        .filter(|(_, s)| **s)
                        .map(|(&p, _)| person_label(p))
                        .collect()
                };
                serde_json::json!({
                    "id": n.id(),
                    "suspects": pick(&n.suspects, s_seen),
                    "victims": pick(&n.victims, v_seen),
                })
            })
            .collect();
        let summary = serde_json::json!({"summary": {
            "rows": stats.rows,
            "invalid_rows": stats.invalid_rows,
            "error_rows": stats.error_rows,
            "networks": networks,
        }});
        serde_json::to_writer(&mut *t, &summary).map_err(std::io::Error::from)?;
        t.write_all(b"\n")?;
        Ok(())
    }

    fn linkable(&self, mistake: Option<(Mistake, usize)>) -> bool {
        let corrupted = match mistake {
            Some((
                Mistake::NhsCheckDigit | Mistake::UpnCheckLetter | Mistake::ImpossibleDate,
                c,
            )) => Some(c),
            _ => None,
        };
        let ok = |cols: &[usize]| {
            cols.iter()
                .any(|&c| !self.cells[c].is_empty() && Some(c) != corrupted)
        };
        ok(&self.nhs_cols)
            || ok(&self.upn_cols)
            || (ok(&self.family_cols) && ok(&self.given_cols) && ok(&self.dob_cols))
    }

    // ----- events -------------------------------------------------------

    fn eligible(&self, p: &Person, net_phone: bool, net_vehicle: bool) -> bool {
        (!self.plan.needs_upn || p.upn.is_some())
            && (!self.plan.needs_phone || p.phone.is_some() || net_phone)
            && (!self.plan.needs_vrm || p.vrm.is_some() || net_vehicle)
    }

    fn next_event(&mut self) -> Result<Event, SynthError> {
        loop {
            match self.phase {
                Phase::StoryRows {
                    net,
                    victim,
                    second,
                } => {
                    let Some(n) = self.world.networks.get(net) else {
                        self.phase = Phase::Background;
                        continue;
                    };
                    let Some(&v) = n.victims.get(victim) else {
                        self.phase = Phase::StoryRows {
                            net: net + 1,
                            victim: 0,
                            second: false,
                        };
                        continue;
                    };
                    // One or two records per victim, then the next victim.
                    let again = !second && self.rng.chance(0.5);
                    self.phase = if again {
                        Phase::StoryRows {
                            net,
                            victim,
                            second: true,
                        }
                    } else {
                        Phase::StoryRows {
                            net,
                            victim: victim + 1,
                            second: false,
                        }
                    };
                    let p = &self.world.people[v as usize];
                    if !self.eligible(p, false, false) {
                        continue;
                    }
                    let lo = (n.start - 30).max(EVENT_START);
                    let hi = (n.end + 60).min(EVENT_END);
                    let date = self.rng.between(i64::from(lo), i64::from(hi)) as Day;
                    return Ok(self.child_event(v, date, 0.85, Some(n.index)));
                }
                Phase::NetworkEvents { net, event } => {
                    let Some(n) = self.world.networks.get(net) else {
                        self.phase = Phase::Background;
                        continue;
                    };
                    let list = if self.plan.reports {
                        &n.reports
                    } else {
                        &n.crimes
                    };
                    let Some(e) = list.get(event) else {
                        self.phase = Phase::NetworkEvents {
                            net: net + 1,
                            event: 0,
                        };
                        continue;
                    };
                    self.phase = Phase::NetworkEvents {
                        net,
                        event: event + 1,
                    };
                    let mut people = Vec::new();
                    let involved = e
                        .victims
                        .iter()
                        .map(|&v| (v, RoleClass::Victim))
                        .chain(e.suspects.iter().map(|&s| (s, RoleClass::Suspect)));
                    for (p, class) in involved {
                        let person = &self.world.people[p as usize];
                        let net_phone = n.phone.is_some() && n.phone_users.contains(&p);
                        let net_vehicle = n.vehicle.is_some() && n.vehicle_users.contains(&p);
                        if !self.eligible(person, net_phone, net_vehicle) {
                            continue;
                        }
                        let Some(roles) = &self.plan.roles else { break };
                        if let Some(code) = roles.code_for(class, &mut self.rng) {
                            people.push((p, Some(code), class));
                        }
                    }
                    return Ok(Event {
                        date: e.date,
                        borough: n.borough,
                        place: n.hotspots.get(e.place).copied().unwrap_or(n.hotspots[0]),
                        network: Some(n.index),
                        story: 0.95,
                        focus: e.victims.first().copied(),
                        people,
                    });
                }
                Phase::Listed { next } => {
                    self.phase = Phase::Listed { next: next + 1 };
                    let Some(&child) = self.listed.get(next) else {
                        return Err(SynthError::NoPeople);
                    };
                    return Ok(self.event_for_child(child));
                }
                Phase::Background => {
                    return Ok(if self.plan.roles.is_some() {
                        self.background_police_event()
                    } else {
                        self.background_child_event()?
                    });
                }
            }
        }
    }

    fn random_date(&mut self) -> Day {
        self.rng
            .between(i64::from(EVENT_START), i64::from(EVENT_END)) as Day
    }

    fn child_event(&mut self, child: u32, date: Day, story: f64, network: Option<u32>) -> Event {
        let p = &self.world.people[child as usize];
        // Mostly the home address; sometimes somewhere else in the borough.
        let place = if self.rng.chance(0.8) {
            p.postcode
        } else {
            Postcode::draw(&mut self.rng, p.borough)
        };
        Event {
            date,
            borough: p.borough,
            place,
            network,
            story,
            focus: Some(child),
            people: vec![(child, None, RoleClass::Victim)],
        }
    }

    fn background_child_event(&mut self) -> Result<Event, SynthError> {
        for _ in 0..1000 {
            let Some(i) = self.rng.weighted(&self.world.child_weights) else {
                break;
            };
            let p = &self.world.people[i];
            if !self.eligible(p, false, false) {
                continue;
            }
            return Ok(self.event_for_child(i as u32));
        }
        Err(SynthError::NoPeople)
    }

    /// A background record about `child`.
    fn event_for_child(&mut self, child: u32) -> Event {
        let p = &self.world.people[child as usize];
        let (story, network) = match p.involvement {
            Involvement::NetworkVictim => (0.6, p.network),
            Involvement::BackgroundVictim => (0.35, None),
            _ => (0.04, None),
        };
        let date = self.random_date();
        self.child_event(child, date, story, network)
    }

    /// A crime or report drawn from one background group: at most one
    /// suspect, so no background component ever holds two.
    fn background_police_event(&mut self) -> Event {
        let world = self.world;
        let date = self.random_date();
        let mut people = Vec::with_capacity(3);
        let group = world.groups.get(self.rng.index(world.groups.len()));
        let (Some(roles), Some(g)) = (&self.plan.roles, group) else {
            // No roles or no groups: an empty event, which the caller skips.
            return Event {
                date,
                borough: 0,
                place: Postcode::draw(&mut self.rng, 0),
                network: None,
                story: 0.7,
                focus: None,
                people,
            };
        };
        let victim = self.rng.pick(&g.victims).copied();
        if let (Some(v), Some(code)) = (victim, roles.victim) {
            people.push((v, Some(code), RoleClass::Victim));
        }
        let with_suspect = if victim.is_some() { 0.85 } else { 1.0 };
        if let (Some(s), Some(code)) = (g.suspect, roles.suspect)
            && self.rng.chance(with_suspect)
        {
            people.push((s, Some(code), RoleClass::Suspect));
        }
        if !roles.others.is_empty()
            && self.rng.chance(0.2)
            && let Some(&o) = self.rng.pick(&g.others)
            && let Some(code) = roles.code_for(RoleClass::Other, &mut self.rng)
        {
            people.push((o, Some(code), RoleClass::Other));
        }
        people.retain(|&(p, _, _)| self.eligible(&world.people[p as usize], false, false));
        let anchor = people.first().map(|&(p, _, _)| &world.people[p as usize]);
        let borough = anchor.map_or(0, |p| p.borough);
        let place = match (victim, self.rng.chance(0.35)) {
            (Some(v), true) => world.people[v as usize].postcode,
            _ => Postcode::draw(&mut self.rng, borough),
        };
        Event {
            date,
            borough,
            place,
            network: None,
            story: 0.7,
            focus: victim,
            people,
        }
    }

    // ----- cells ----------------------------------------------------------

    fn subject(&self, ev: &Event) -> Subject {
        match ev.focus.and_then(|f| self.world.people.get(f as usize)) {
            Some(p) => Subject {
                age: Some(age_on(p.dob, ev.date)),
                sex: Some(p.sex),
            },
            None => Subject {
                age: None,
                sex: None,
            },
        }
    }

    fn fill_event_cells(&mut self, ev: &Event) {
        let subject = self.subject(ev);
        let mut cells = std::mem::take(&mut self.event_cells);
        self.story_hit = false;
        // Flags last: a record whose codes say "sexual exploitation" is
        // flagged as CSE, whatever column order the schema uses.
        for flags in [false, true] {
            for (i, cell) in cells.iter_mut().enumerate() {
                let column = &self.plan.columns[i];
                if column.scope() == Scope::Event && matches!(column.fill, Fill::Flag) == flags {
                    cell.clear();
                    self.event_cell(i, ev, subject, cell);
                }
            }
        }
        self.event_cells = cells;
    }

    fn present(&mut self, col: usize, share: f64) -> bool {
        self.plan.columns[col].required || self.rng.chance(share)
    }

    fn event_cell(&mut self, i: usize, ev: &Event, subject: Subject, out: &mut String) {
        let column = &self.plan.columns[i];
        let share = match &column.fill {
            Fill::EventRef { .. } | Fill::EventDate { .. } => 1.0,
            Fill::LaterDate { .. } => 0.8,
            Fill::Borough { .. } => 0.9,
            Fill::Postcode => 0.85,
            Fill::Flag => 0.95,
            Fill::Code(_) if column.concept.as_deref() == Some("outcome") => 0.6,
            Fill::Code(_) | Fill::Integer { .. } | Fill::Number { .. } => 0.85,
            Fill::CodeList { .. } => {
                if ev.story > 0.5 {
                    0.97
                } else {
                    0.85
                }
            }
            Fill::Bool => 0.9,
            Fill::Pattern { .. } => 0.95,
            Fill::Text { .. } | Fill::TextList { .. } => 0.5,
            Fill::Blank => 0.0,
            _ => 0.9,
        };
        if !self.present(i, share) {
            return;
        }
        // Re-borrow after the &mut self call above.
        let column = &self.plan.columns[i];
        let rng = &mut self.rng;
        match &column.fill {
            Fill::EventRef { prefix } => {
                let (y, _, _) = civil_from_days(ev.date);
                let _ = write!(out, "{prefix}/{:06}/{:02}", self.events, y % 100);
            }
            Fill::EventDate { time } => push_plain_date(out, ev.date, *time),
            Fill::LaterDate { time } => {
                let roll = rng.below(100);
                let offset = match roll {
                    0..=69 => rng.between(0, 7),
                    70..=94 => rng.between(8, 60),
                    _ => rng.between(61, 180),
                } as Day;
                // Never past the last anchor: no date is "in the future" of
                // the extract (unless the event itself is on that day).
                push_plain_date(out, (ev.date + offset).min(EVENT_END.max(ev.date)), *time);
            }
            Fill::Borough { codes } => {
                let b = usize::from(ev.borough) % BOROUGHS.len();
                match codes {
                    Some(map) => {
                        if let Some(Some(_)) = map.get(b) {
                            out.push_str(BOROUGHS[b].name);
                        }
                    }
                    None => out.push_str(BOROUGHS[b].name),
                }
            }
            Fill::Postcode => ev.place.push_styled(out, rng),
            Fill::Flag => {
                let s = &self.plan.style;
                let flagged = self.story_hit || rng.chance(ev.story);
                out.push_str(if flagged { s.yes } else { s.no });
            }
            Fill::Code(codes) => {
                let mode = if ev.network.is_some() && !codes.network.is_empty() && rng.chance(0.9) {
                    Mode::Network
                } else if rng.chance(ev.story) {
                    Mode::Story
                } else {
                    Mode::Plain
                };
                let k = codes.draw(rng, subject, mode);
                self.story_hit |= codes.primary.contains(&k);
                out.push_str(&codes.codes[k]);
            }
            Fill::CodeList { codes, min, max } => {
                let mode = if rng.chance(ev.story) {
                    Mode::Story
                } else {
                    Mode::Plain
                };
                let picked = draw_list(codes, rng, subject, mode, *min, *max);
                self.story_hit |= picked.iter().any(|k| codes.primary.contains(k));
                for (n, k) in picked.iter().enumerate() {
                    if n > 0 {
                        out.push(';');
                    }
                    out.push_str(&codes.codes[*k]);
                }
            }
            Fill::Bool => {
                let s = &self.plan.style;
                out.push_str(if rng.chance(0.5) { s.yes } else { s.no });
            }
            Fill::Integer { min, max } => {
                let u = rng.unit();
                let span = (max - min + 1) as f64;
                let v = (*min + (span * u * u) as i64).min(*max);
                let _ = write!(out, "{v}");
            }
            Fill::Number { min, max } => {
                let v = min + (max - min) * rng.unit();
                let _ = write!(out, "{}", v.clamp(*min, *max));
            }
            Fill::Pattern { pools } => {
                let pool = &pools[usize::from(ev.borough) % pools.len()];
                // Keyed by the person, so a child keeps one school.
                let k = match ev.focus {
                    Some(f) => (mix(u64::from(f), &column.name) % pool.len() as u64) as usize,
                    None => rng.index(pool.len()),
                };
                out.push_str(&pool[k]);
            }
            Fill::Text { len } => push_token(out, rng, *len),
            Fill::TextList { item } => {
                let n = rng.between(1, 2);
                for k in 0..n {
                    if k > 0 {
                        out.push(';');
                    }
                    match item {
                        agencylink_core::schema::ScalarType::String => push_token(out, rng, 6),
                        agencylink_core::schema::ScalarType::Boolean => out.push_str("true"),
                        _ => {
                            let _ = write!(out, "{}", rng.below(10));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn fill_row(
        &mut self,
        ev: &Event,
        person: u32,
        role: Option<usize>,
        class: RoleClass,
        row: u64,
    ) {
        let world = self.world;
        let p = &world.people[person as usize];
        let network = ev.network.and_then(|n| world.networks.get(n as usize));
        self.name_case = NameCase::draw(&self.plan.style, &mut self.rng);
        self.dob_written = None;
        let mut cells = std::mem::take(&mut self.cells);
        for (i, cell) in cells.iter_mut().enumerate() {
            cell.clear();
            match self.plan.columns[i].scope() {
                Scope::Event => cell.push_str(&self.event_cells[i]),
                Scope::Row => {
                    if let Fill::RecordRef { prefix } = &self.plan.columns[i].fill {
                        let number = match self.ids {
                            Ids::Own => row,
                            Ids::Second => row + SECOND_REF_OFFSET,
                        };
                        let _ = write!(cell, "{prefix}{number:08}");
                    }
                }
                Scope::Person => self.person_cell(i, p, role, class, network, cell),
            }
        }
        self.cells = cells;
    }

    fn person_cell(
        &mut self,
        i: usize,
        p: &Person,
        role: Option<usize>,
        class: RoleClass,
        network: Option<&crate::world::Network>,
        out: &mut String,
    ) {
        let style = &self.plan.style;
        let share = match &self.plan.columns[i].fill {
            Fill::Dob => {
                if p.involvement == Involvement::NetworkSuspect {
                    // Planted suspects always have one: a network must be
                    // findable by name and date of birth.
                    1.0
                } else if class == RoleClass::Suspect && !p.dob_known {
                    0.0
                } else {
                    0.97
                }
            }
            Fill::Nhs => style.nhs_present,
            Fill::Upn => {
                if p.upn.is_some() {
                    0.75
                } else {
                    0.0
                }
            }
            Fill::Email => 0.4,
            Fill::PersonRef => 0.92,
            Fill::Sex(_) => 0.97,
            Fill::Ethnicity(_) => 1.0 - style.ethnicity_blank,
            Fill::FamilyName | Fill::GivenName => 0.98,
            // Phones and plates decide for themselves below.
            _ => 1.0,
        };
        if !self.present(i, share) {
            return;
        }
        let column = &self.plan.columns[i];
        let style = &self.plan.style;
        let rng = &mut self.rng;
        match &column.fill {
            Fill::PersonRef => match self.ids {
                Ids::Own => out.push_str(&local_id_text(p.child, p.local_id)),
                Ids::Second => {
                    // Another bijection of the index onto 0..10^7 (104,729
                    // is prime), under another prefix.
                    let id = (u64::from(p.index) * 104_729 + 7_654_321) % 10_000_000;
                    let _ = write!(out, "S{id:07}");
                }
            },
            Fill::FamilyName => push_name(out, p.family, self.name_case, true),
            Fill::GivenName => push_name(out, p.given, self.name_case, false),
            Fill::FullName => {
                push_name(out, p.given, self.name_case, false);
                out.push(' ');
                push_name(out, p.family, self.name_case, true);
            }
            Fill::Dob => {
                let s = style.dob_style(rng);
                push_date(out, p.dob, s);
                if self.dob_written.is_none() {
                    self.dob_written = Some((i, s));
                }
            }
            Fill::Nhs => push_nhs(out, p.nhs, rng, style.nhs_spaced),
            Fill::Upn => {
                if let Some(u) = &p.upn {
                    let s = std::str::from_utf8(u).unwrap_or_default();
                    if rng.chance(0.03) {
                        out.push_str(&s.to_ascii_lowercase());
                    } else {
                        out.push_str(s);
                    }
                }
            }
            Fill::Email => {
                let fold = |s: &str| -> String {
                    s.chars()
                        .filter(char::is_ascii_alphanumeric)
                        .map(|c| c.to_ascii_lowercase())
                        .collect()
                };
                let _ = write!(
                    out,
                    "{}.{}.{}@example.org",
                    fold(p.given),
                    fold(p.family),
                    p.index
                );
            }
            Fill::Phone { link } => {
                let required = column.required;
                let shared = network
                    .filter(|n| n.phone_users.contains(&p.index))
                    .and_then(|n| n.phone);
                let number = match (link, shared) {
                    (true, Some(s)) if required || rng.chance(0.9) => Some(s),
                    _ => {
                        let share = match (link, class) {
                            (false, _) => 0.8,
                            (true, RoleClass::Suspect) => 0.6,
                            (true, RoleClass::Victim) => 0.25,
                            (true, RoleClass::Other) => 0.3,
                        };
                        p.phone
                            .filter(|_| required || rng.chance(share))
                            .or(if required { shared } else { None })
                    }
                };
                if let Some(n) = number {
                    push_phone(out, n, rng);
                }
            }
            Fill::Vrm { link } => {
                let required = column.required;
                let shared = network
                    .filter(|n| n.vehicle_users.contains(&p.index))
                    .and_then(|n| n.vehicle);
                let plate = match (link, shared) {
                    (true, Some(s)) if required || rng.chance(0.9) => Some(s),
                    _ => {
                        let share = match class {
                            RoleClass::Suspect => 0.5,
                            RoleClass::Victim => 0.0,
                            RoleClass::Other => 0.2,
                        };
                        p.vrm
                            .filter(|_| required || rng.chance(share))
                            .or(if required { shared } else { None })
                    }
                };
                if let Some(v) = plate {
                    push_vrm(out, &v, rng);
                }
            }
            Fill::Role => {
                if let (Some(r), Some(roles)) = (role, &self.plan.roles) {
                    out.push_str(&roles.codes[r]);
                }
            }
            Fill::Sex(codes) => {
                let k = if rng.chance(0.03) && !codes.unknown.is_empty() {
                    rng.pick(&codes.unknown).copied()
                } else {
                    codes.code_for(p.sex)
                };
                if let Some(k) = k.or_else(|| codes.unknown.first().copied()) {
                    out.push_str(&codes.codes[k]);
                } else if column.required
                    && let Some(c) = codes.codes.first()
                {
                    out.push_str(c);
                }
            }
            Fill::Ethnicity(codes) => {
                let k = if rng.chance(0.05) && !codes.not_recorded.is_empty() {
                    rng.pick(&codes.not_recorded).copied()
                } else {
                    codes.code_for(p.ethnicity)
                };
                let k = k.or_else(|| {
                    // A list we could not map: a stable code per person.
                    let n = codes.codes.len() as u64;
                    (n > 0).then(|| (mix(u64::from(p.index), &column.name) % n) as usize)
                });
                if let Some(k) = k {
                    out.push_str(&codes.codes[k]);
                }
            }
            _ => {}
        }
    }

    // ----- mistakes -------------------------------------------------------

    fn maybe_mistake(&mut self, ev: &Event, person: u32) -> Option<(Mistake, usize)> {
        if self.invalid_rate <= 0.0 || !self.inv.chance(self.invalid_rate) {
            return None;
        }
        let (kind, cols) = self.inv.pick(&self.mistakes)?;
        let (kind, col) = (*kind, *self.inv.pick(cols)?);
        let p = &self.world.people[person as usize];
        let inv = &mut self.inv;
        let cell = &mut self.cells[col];
        let column = &self.plan.columns[col];
        match kind {
            Mistake::NhsCheckDigit => {
                cell.clear();
                push_nhs(
                    cell,
                    nhs_with_wrong_check(p.nhs, inv),
                    inv,
                    self.plan.style.nhs_spaced,
                );
            }
            Mistake::UpnCheckLetter => {
                let upn = p.upn.or_else(|| {
                    make_upn(
                        BOROUGHS[usize::from(p.borough)].dfe,
                        2000 + inv.below(900) as u16,
                        15,
                        inv.below(1000) as u16,
                        None,
                    )
                });
                cell.clear();
                if let Some(mut u) = upn {
                    let right = u[0];
                    let at = UPN_ALPHABET.iter().position(|&a| a == right).unwrap_or(0);
                    u[0] = UPN_ALPHABET
                        [(at + 1 + inv.index(UPN_ALPHABET.len() - 1)) % UPN_ALPHABET.len()];
                    cell.push_str(std::str::from_utf8(&u).unwrap_or("A35012345678X"));
                }
            }
            Mistake::ImpossibleDate => {
                let (year, day_first) = match column.fill {
                    Fill::Dob => (civil_from_days(p.dob).0, self.plan.style.day_first()),
                    _ => (civil_from_days(ev.date).0, false),
                };
                let (d, m, y) = match inv.below(6) {
                    0 => (30, 2, year),
                    1 => (31, 4, year),
                    2 => (31, 6, year),
                    3 => (31, 9, year),
                    4 => (31, 11, year),
                    _ => {
                        // 29 February in a year that has none.
                        let y = (year..year + 4).find(|&y| !is_leap(y)).unwrap_or(year);
                        (29, 2, y)
                    }
                };
                cell.clear();
                let _ = if day_first {
                    write!(cell, "{d:02}/{m:02}/{y:04}")
                } else {
                    write!(cell, "{y:04}-{m:02}-{d:02}")
                };
            }
            Mistake::UnknownCode => {
                let codes = column
                    .code_list(self.plan.roles.as_ref())
                    .unwrap_or_default();
                let bad = unknown_code_for(&codes);
                if matches!(column.fill, Fill::CodeList { .. }) && !cell.is_empty() {
                    cell.push(';');
                } else {
                    cell.clear();
                }
                cell.push_str(&bad);
            }
            Mistake::BlankRequired => cell.clear(),
        }
        Some((kind, col))
    }
}

fn push_plain_date(out: &mut String, day: Day, time: bool) {
    push_date(out, day, DateStyle::Iso);
    if time {
        out.push_str("T10:30:00Z");
    }
}

/// How the names of one row are written: a system (or the person keying
/// the row) writes both names the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameCase {
    AsIs,
    Upper,
    Lower,
    /// Family name in capitals only, as in `SMITH, John`.
    FamilyUpper,
}

impl NameCase {
    fn draw(style: &Style, rng: &mut Rng) -> NameCase {
        let roll = rng.unit();
        if roll < style.name_upper {
            if rng.chance(0.3) {
                NameCase::FamilyUpper
            } else {
                NameCase::Upper
            }
        } else if roll < style.name_upper + style.name_lower {
            NameCase::Lower
        } else {
            NameCase::AsIs
        }
    }
}

fn push_name(out: &mut String, name: &str, case: NameCase, family: bool) {
    match case {
        NameCase::Upper => out.push_str(&name.to_uppercase()),
        NameCase::FamilyUpper if family => out.push_str(&name.to_uppercase()),
        NameCase::Lower => out.push_str(&name.to_lowercase()),
        _ => out.push_str(name),
    }
}

fn push_token(out: &mut String, rng: &mut Rng, len: usize) {
    const ALNUM: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for _ in 0..len {
        out.push(char::from(ALNUM[rng.index(ALNUM.len())]));
    }
}

/// A set of codes for an array field, in code-list order.
fn draw_list(
    codes: &Codes,
    rng: &mut Rng,
    subject: Subject,
    mode: Mode,
    min: usize,
    max: usize,
) -> Vec<usize> {
    let n = codes.codes.len();
    let mut picked: Vec<usize> = Vec::with_capacity(4);
    if mode != Mode::Plain {
        for &k in &codes.primary {
            if codes.allowed(subject, k) && rng.chance(0.9) {
                picked.push(k);
            }
        }
        for &k in &codes.secondary {
            if codes.allowed(subject, k) && rng.chance(0.4) {
                picked.push(k);
            }
        }
    }
    let extra = match rng.below(100) {
        0..=44 => 1,
        45..=74 => 2,
        75..=91 => 3,
        _ => 4,
    };
    let extra = if mode == Mode::Plain {
        extra
    } else {
        extra - 1
    };
    let target = (picked.len() + extra).clamp(min, max.min(n));
    let mut tries = 0;
    while picked.len() < target && tries < 50 {
        tries += 1;
        let k = codes.draw(rng, subject, Mode::Plain);
        if picked.contains(&k) {
            continue;
        }
        // "No factors" stands alone.
        if codes.exclusive.get(k).copied().unwrap_or(false) {
            if picked.is_empty() && target <= 1 {
                picked.push(k);
                break;
            }
            continue;
        }
        picked.push(k);
    }
    if picked.is_empty()
        && let Some(k) = (0..n).find(|&k| !codes.exclusive[k])
    {
        picked.push(k);
    }
    picked.truncate(max.max(1));
    picked.sort_unstable();
    picked
}
