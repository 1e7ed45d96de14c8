//! Investigations set against what agencylink finds: investigations
//! (operations) by threat category and status, the victims and suspects of
//! each (the multi-victim / multi-offender map), the group-based networks
//! that no open investigation covers (early threat identification), and
//! highest-threat investigations without a peer review within
//! [`Settings::peer_review_days`](super::Settings::peer_review_days).
//!
//! An investigation row is one crime covered by one investigation; the rows
//! sharing an operation reference's pseudonym are one investigation. Its
//! crime links are the same keyed tokens the crime records carry, so an
//! investigation reaches the people of its crimes, and through them the
//! networks, without ever being a person itself. Which dataset holds
//! investigations, and which field is what, comes from the `x-concept`
//! annotations (`case_ref`, `case_status`, `threat_category`, …).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::Note;
use super::build::Ctx;
use super::dates::format_day;
use super::facts::{CaseRow, NO_NAME, NONE, Role};
use super::groups::Nets;
use super::table::{Cell, Column, Kind, Table};
use super::threat::Tier;
use crate::geography::BOROUGHS;

/// Where an investigation stands (`case_status` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Status {
    Open,
    Suspended,
    Closed,
    /// No status, or a code this build does not know.
    Unknown,
}

impl Status {
    fn parse(code: Option<&str>) -> Status {
        match code {
            Some("open") => Status::Open,
            Some("suspended") => Status::Suspended,
            Some("closed") => Status::Closed,
            _ => Status::Unknown,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Status::Open => "Open",
            Status::Suspended => "Suspended",
            Status::Closed => "Closed",
            Status::Unknown => "Not recorded",
        }
    }
}

/// One investigation: its rows folded together.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    /// The operation reference's pseudonym (interned token).
    pub(crate) token: u32,
    pub(crate) opened: i32,
    pub(crate) closed: Option<i32>,
    pub(crate) status: Status,
    /// Threat category code.
    pub(crate) threat: Option<String>,
    pub(crate) peer_status: Option<String>,
    /// Date a peer review was completed.
    pub(crate) peer_date: Option<i32>,
    pub(crate) team: Option<String>,
    /// The crimes it covers: (link kind, token), interned.
    pub(crate) crimes: BTreeSet<(u8, u32)>,
    /// Its rows disagree on a field that should be the same on every row.
    pub(crate) disagree: bool,
}

impl Case {
    /// Whether it was open at any time in `from..=to`.
    fn active(&self, from: i32, to: i32) -> bool {
        self.opened <= to && self.closed.is_none_or(|d| d >= from)
    }
}

/// Fold investigation rows into investigations. Where rows of one
/// investigation disagree, the investigation is open if any row says so
/// (then suspended, then closed), takes the highest threat category (the
/// smallest code: the scale runs from 1, the highest), the earliest opening
/// date, a completed peer review if any row records one (its earliest
/// date), and the latest closing date; and is counted in a caveat.
pub(crate) fn fold(rows: &[CaseRow], code: impl Fn(u32) -> Option<String>) -> Vec<Case> {
    let mut by: BTreeMap<u32, Vec<&CaseRow>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.case != NONE) {
        by.entry(r.case).or_default().push(r);
    }
    let mut out = Vec::with_capacity(by.len());
    for (token, rows) in by {
        let first = rows[0];
        let status = rows
            .iter()
            .map(|r| Status::parse(code(r.status).as_deref()))
            .min()
            .unwrap_or(Status::Unknown);
        let threat = rows.iter().filter_map(|r| code(r.threat)).min();
        let completed: Vec<&&CaseRow> = rows
            .iter()
            .filter(|r| code(r.peer_status).as_deref() == Some("completed"))
            .collect();
        let peer_status = if completed.is_empty() {
            code(first.peer_status)
        } else {
            Some("completed".to_owned())
        };
        let peer_date = completed.iter().filter_map(|r| r.peer_date).min();
        let closed = if status == Status::Closed {
            rows.iter().filter_map(|r| r.closed).max()
        } else {
            None
        };
        let disagree = rows.iter().any(|r| {
            r.status != first.status
                || r.threat != first.threat
                || r.opened != first.opened
                || r.peer_status != first.peer_status
                || r.peer_date != first.peer_date
                || r.closed != first.closed
        });
        out.push(Case {
            token,
            opened: rows.iter().map(|r| r.opened).min().unwrap_or(first.opened),
            closed,
            status,
            threat,
            peer_status,
            peer_date,
            team: rows.iter().find_map(|r| code(r.team)),
            crimes: rows.iter().flat_map(|r| r.links.iter().copied()).collect(),
            disagree,
        });
    }
    out
}

/// Where a highest-threat investigation stands on peer review at the end of
/// the period, with `days` allowed from opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Review {
    /// Completed within `days` of opening.
    InTime,
    /// Completed, but more than `days` after opening: `n` days late.
    Late(i32),
    /// None completed by the end of the period, `n` days past due.
    Overdue(i32),
    /// Closed before a review fell due, without one.
    ClosedBeforeDue,
    /// Not yet due.
    NotYetDue,
}

/// The peer-review state of an investigation at day `as_of`.
pub(crate) fn review(case: &Case, days: u32, as_of: i32) -> Review {
    let due = case.opened + days as i32;
    match case.peer_date.filter(|&d| d <= as_of) {
        Some(d) if d <= due => Review::InTime,
        Some(d) => Review::Late(d - due),
        None if case.closed.is_some_and(|c| c <= due) => Review::ClosedBeforeDue,
        None if as_of > due => Review::Overdue(as_of - due),
        None => Review::NotYetDue,
    }
}

/// A row of the peer-review summary: id, label, which states it counts.
type ReviewRow = (&'static str, String, fn(&Review) -> bool);

/// What the investigation sections found, for the tables, the headline and
/// the summary.
pub(crate) struct Found {
    pub(crate) tables: Vec<Table>,
}

/// The people (resolved) of one role in a set of crimes.
#[derive(Default)]
struct People {
    victims: BTreeSet<u64>,
    suspects: BTreeSet<u64>,
}

/// The investigation tables, or none when no investigation data is in the
/// store (without it every network would look uncovered).
pub(crate) fn sections(
    ctx: &Ctx<'_>,
    nets: &Nets,
    notes: &mut Vec<Note>,
    caveats: &mut Vec<String>,
) -> Option<Found> {
    let c = ctx.c;
    let plan = c
        .plans
        .iter()
        .find(|p| p.family == super::facts::Family::Investigation)?;
    let days = ctx.s.peer_review_days;
    let code = |i: u32| c.code(i).map(str::to_owned);
    let all = fold(&c.cases, code);
    let cases: Vec<&Case> = all.iter().filter(|k| k.active(ctx.from, ctx.to)).collect();
    let disagree = cases.iter().filter(|k| k.disagree).count();
    if disagree > 0 {
        caveats.push(format!(
            "{disagree} investigations have rows that disagree on status, threat category, dates or peer review; each is read as open if any row says so, with its highest threat category (see method)."
        ));
    }
    let threat_codes: Vec<(String, String)> = plan
        .meanings
        .get("threat_category")
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.split(" (").next().unwrap_or(v).to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let highest = threat_codes.first().map(|(k, _)| k.clone());
    let threat_label = |code: Option<&String>| -> String {
        match code {
            None => "Not recorded".into(),
            Some(code) => threat_codes
                .iter()
                .find(|(k, _)| k == code)
                .map_or_else(|| code.clone(), |(_, v)| v.clone()),
        }
    };

    // The people of every crime an investigation covers: victims and
    // suspects from the crime records (any date up to the period end).
    let wanted: HashSet<(u8, u32)> = all.iter().flat_map(|k| k.crimes.iter().copied()).collect();
    let mut of_crime: HashMap<(u8, u32), Vec<u32>> = HashMap::new();
    for l in &c.links {
        if wanted.contains(&(l.kind, l.token)) {
            of_crime.entry((l.kind, l.token)).or_default().push(l.fact);
        }
    }
    // A suspect named in several crimes without a date of birth is often
    // several person ids: inside one investigation, records carrying the
    // same name pseudonyms count once (as the networks do).
    let key = |f: &super::facts::Fact| -> u64 {
        if f.name != NO_NAME {
            f.name
        } else {
            (1 << 63) | u64::from(f.person)
        }
    };
    let people_of = |k: &Case| -> People {
        let mut p = People::default();
        for crime in &k.crimes {
            for &fi in of_crime.get(crime).map_or(&[][..], Vec::as_slice) {
                let f = &c.facts[fi as usize];
                match f.role {
                    Role::Victim => {
                        p.victims.insert(key(f));
                    }
                    Role::Suspect => {
                        p.suspects.insert(key(f));
                    }
                    _ => {}
                }
            }
        }
        p
    };

    // Which group-based network holds each crime of the period.
    let mut net_of: HashMap<(u8, u32), BTreeSet<usize>> = HashMap::new();
    for l in &c.links {
        let f = &c.facts[l.fact as usize];
        if ctx.in_period(f)
            && wanted.contains(&(l.kind, l.token))
            && let Some(&g) = nets.of_person.get(&f.person)
        {
            net_of.entry((l.kind, l.token)).or_default().insert(g);
        }
    }
    let nets_of = |k: &Case| -> BTreeSet<usize> {
        k.crimes
            .iter()
            .filter_map(|cr| net_of.get(cr))
            .flatten()
            .copied()
            .collect()
    };
    // Coverage counts every investigation, active in the period or not: an
    // investigation open today covers its networks whenever it opened.
    let mut covered_by: Vec<Vec<&Case>> = vec![Vec::new(); nets.groups.len()];
    for k in all.iter().filter(|k| k.opened <= ctx.to) {
        for g in nets_of(k) {
            covered_by[g].push(k);
        }
    }
    let open_cover = |g: usize| covered_by[g].iter().any(|k| k.status == Status::Open);

    let mut tables = Vec::new();

    // 1. By threat category and status.
    let mut by_threat = Table::new(
        "investigations_by_threat",
        "Investigations by threat category and status",
        "Investigations open at any time in the period, by the threat category the force assessed (1 is the highest threat; the scale is under method) and where they stand now.",
        vec![
            Column::new("threat_category", "Threat category", Kind::Label),
            Column::new("open", "Open", Kind::Count),
            Column::new("suspended", "Suspended", Kind::Count),
            Column::new("closed", "Closed", Kind::Count),
            Column::new("total", "Total", Kind::Count),
        ],
    );
    let mut rows: Vec<Option<String>> = threat_codes.iter().map(|(k, _)| Some(k.clone())).collect();
    if cases.iter().any(|k| k.threat.is_none()) {
        rows.push(None);
    }
    for t in &rows {
        let of: Vec<&&Case> = cases.iter().filter(|k| k.threat == *t).collect();
        let n = |s: Status| of.iter().filter(|k| k.status == s).count() as u64;
        by_threat.push(
            t.as_deref().unwrap_or("not_recorded"),
            vec![
                Cell::Text(threat_label(t.as_ref())),
                Cell::Count(n(Status::Open)),
                Cell::Count(n(Status::Suspended)),
                // Unknown status is rare (the field is required): it is
                // counted with closed, the status that covers no network.
                Cell::Count(n(Status::Closed) + n(Status::Unknown)),
                Cell::Count(of.len() as u64),
            ],
        );
    }
    by_threat.margins.total_column = Some(4);
    by_threat.push_total_row();
    tables.push(by_threat);

    // 2. Multi-victim and multi-offender investigations.
    let people: Vec<People> = cases.iter().map(|k| people_of(k)).collect();
    let kind_of = |p: &People| match (p.victims.len() > 1, p.suspects.len() > 1) {
        (true, true) => 0,
        (true, false) => 1,
        (false, true) => 2,
        _ if p.victims.is_empty() && p.suspects.is_empty() => 4,
        _ => 3,
    };
    let kind_rows = [
        (
            "multi_victim_multi_offender",
            "Several victims and several suspects",
        ),
        ("multi_victim", "Several victims, one suspect or none"),
        ("multi_offender", "Several suspects, one victim or none"),
        ("single", "One victim and one suspect at most"),
        (
            "no_people",
            "No victim or suspect in the crime records shared",
        ),
    ];
    let mut kinds = Table::new(
        "investigation_kinds",
        "Multi-victim and multi-offender investigations",
        "Investigations open at any time in the period by how many victims and suspects the crime records of their crimes hold (distinct people, as linked across agencies), and where they stand now.",
        vec![
            Column::new("kind", "Investigation", Kind::Label),
            Column::new("open", "Open", Kind::Count),
            Column::new("suspended", "Suspended", Kind::Count),
            Column::new("closed", "Closed", Kind::Count),
            Column::new("total", "Total", Kind::Count),
        ],
    );
    for (i, (id, label)) in kind_rows.iter().enumerate() {
        let of: Vec<&Case> = cases
            .iter()
            .zip(&people)
            .filter(|(_, p)| kind_of(p) == i)
            .map(|(k, _)| *k)
            .collect();
        let n = |s: &[Status]| of.iter().filter(|k| s.contains(&k.status)).count() as u64;
        kinds.push(
            id,
            vec![
                Cell::Text((*label).into()),
                Cell::Count(n(&[Status::Open])),
                Cell::Count(n(&[Status::Suspended])),
                Cell::Count(n(&[Status::Closed, Status::Unknown])),
                Cell::Count(of.len() as u64),
            ],
        );
    }
    kinds.margins.total_column = Some(4);
    kinds.push_total_row();
    tables.push(kinds);

    // 3. The map itself: one row per investigation (analyst edition).
    let mut map = Table::new(
        "investigation_people",
        "Victims and suspects per investigation",
        "Each investigation open at any time in the period: its threat category, status, the crimes it covers, the distinct victims and suspects of those crimes, and the group-based networks they belong to. The investigation is named by the pseudonym of its operation reference: an analyst with access can look it up; it reveals nothing without the key.",
        vec![
            Column::new("investigation", "Investigation (pseudonymous)", Kind::Text),
            Column::new("threat_category", "Threat category", Kind::Text),
            Column::new("status", "Status", Kind::Text),
            Column::new("opened", "Opened", Kind::Text),
            Column::new("lead_team", "Lead team", Kind::Text),
            Column::new("crimes", "Crimes", Kind::Count),
            Column::new("victims", "Victims", Kind::Count),
            Column::new("suspects", "Suspects", Kind::Count),
            Column::new("networks", "Networks", Kind::Text),
        ],
    );
    let mut order: Vec<usize> = (0..cases.len()).collect();
    order.sort_by(|&a, &b| {
        let size = |i: usize| people[i].victims.len() + people[i].suspects.len();
        cases[a]
            .threat
            .cmp(&cases[b].threat)
            .then(size(b).cmp(&size(a)))
            .then(
                c.tokens
                    .name(cases[a].token)
                    .cmp(c.tokens.name(cases[b].token)),
            )
    });
    for i in order {
        let (k, p) = (cases[i], &people[i]);
        let ids: Vec<&str> = nets_of(k)
            .into_iter()
            .map(|g| nets.groups[g].id.as_str())
            .collect();
        map.rows.push(vec![
            Cell::Text(c.tokens.name(k.token).to_owned()),
            Cell::Text(threat_label(k.threat.as_ref())),
            Cell::Text(k.status.label().into()),
            Cell::Text(format_day(k.opened)),
            k.team.clone().map_or(Cell::Empty, Cell::Text),
            Cell::Count(k.crimes.len() as u64),
            Cell::Count(p.victims.len() as u64),
            Cell::Count(p.suspects.len() as u64),
            Cell::Text(ids.join(", ")),
        ]);
    }
    tables.push(map);

    // 4. Networks against open investigations.
    let mut coverage = Table::new(
        "network_coverage",
        "Group-based networks and open investigations",
        "Group-based networks of the period by threat tier, and whether an open investigation covers any of their crimes. A network no open investigation covers is one agencylink found that no active investigation is working on: the early threat identification.",
        vec![
            Column::new("tier", "Tier", Kind::Label),
            Column::new("covered", "Covered by an open investigation", Kind::Count),
            Column::new("uncovered", "Not covered", Kind::Count),
            Column::new("total", "Networks", Kind::Count),
        ],
    );
    for tier in [Tier::High, Tier::Medium, Tier::Low] {
        let of: Vec<usize> = (0..nets.groups.len())
            .filter(|&g| nets.groups[g].threat.tier == tier)
            .collect();
        let covered = of.iter().filter(|&&g| open_cover(g)).count() as u64;
        let mut label = tier.as_str().to_owned();
        label[..1].make_ascii_uppercase();
        coverage.push(
            tier.as_str(),
            vec![
                Cell::Text(label),
                Cell::Count(covered),
                Cell::Count(of.len() as u64 - covered),
                Cell::Count(of.len() as u64),
            ],
        );
    }
    coverage.margins.total_column = Some(3);
    coverage.push_total_row();
    tables.push(coverage);

    // 5. The uncovered networks themselves (analyst edition).
    let mut uncovered = Table::new(
        "uncovered_networks",
        "Networks no open investigation covers",
        "Each group-based network of the period none of whose crimes an open investigation covers, highest threat score first. Where a suspended or closed investigation covers some of its crimes, it is named.",
        vec![
            Column::new("network", "Network", Kind::Text),
            Column::new("tier", "Tier", Kind::Text),
            Column::new("score", "Score", Kind::Number),
            Column::new("suspects", "Suspects", Kind::Count),
            Column::new("victims", "Victims", Kind::Count),
            Column::new("victims_under_13", "Victims under 13", Kind::Count),
            Column::new("boroughs", "Boroughs", Kind::Text),
            Column::new("last_event", "Last event", Kind::Text),
            Column::new(
                "other_investigations",
                "Suspended or closed investigations",
                Kind::Text,
            ),
        ],
    );
    for (g, net) in nets.groups.iter().enumerate() {
        if open_cover(g) {
            continue;
        }
        let others: Vec<String> = covered_by[g]
            .iter()
            .map(|k| {
                format!(
                    "{} ({})",
                    c.tokens.name(k.token),
                    k.status.label().to_ascii_lowercase()
                )
            })
            .collect();
        let boroughs: Vec<&str> = net
            .boroughs
            .iter()
            .filter_map(|&b| BOROUGHS.get(b as usize).map(|x| x.name))
            .collect();
        uncovered.rows.push(vec![
            Cell::Text(net.id.clone()),
            Cell::Text(net.threat.tier.as_str().into()),
            Cell::Number(f64::from(net.threat.score)),
            Cell::Count(net.suspects.len() as u64),
            Cell::Count(net.victims.len() as u64),
            Cell::Count(u64::from(net.under_13)),
            Cell::Text(boroughs.join(", ")),
            Cell::Text(format_day(net.last)),
            Cell::Text(others.join(", ")),
        ]);
    }
    tables.push(uncovered);

    // 6. Peer review of the highest-threat investigations.
    let top: Vec<(&Case, Review)> = cases
        .iter()
        .filter(|k| k.threat.is_some() && k.threat == highest)
        .map(|k| (*k, review(k, days, ctx.to)))
        .collect();
    let mut summary = Table::new(
        "peer_review",
        "Peer review of the highest-threat investigations",
        &format!(
            "Highest-threat (category {}) investigations open at any time in the period, by whether an experienced senior investigating officer's peer review was completed within {days} days of opening, as at the end of the period.",
            highest.as_deref().unwrap_or("1")
        ),
        vec![
            Column::new("state", "Peer review", Kind::Label),
            Column::new("investigations", "Investigations", Kind::Count),
        ],
    );
    let review_rows: [ReviewRow; 5] = [
        ("in_time", format!("Completed in time ({days} days)"), |r| {
            matches!(r, Review::InTime)
        }),
        ("late", "Completed late".into(), |r| {
            matches!(r, Review::Late(_))
        }),
        ("overdue", "Overdue (not completed)".into(), |r| {
            matches!(r, Review::Overdue(_))
        }),
        ("not_yet_due", "Not yet due".into(), |r| {
            matches!(r, Review::NotYetDue)
        }),
        ("closed_before_due", "Closed before due".into(), |r| {
            matches!(r, Review::ClosedBeforeDue)
        }),
    ];
    for (id, label, test) in &review_rows {
        summary.push(
            id,
            vec![
                Cell::Text(label.clone()),
                Cell::Count(top.iter().filter(|(_, r)| test(r)).count() as u64),
            ],
        );
    }
    summary.push_total_row();
    tables.push(summary);

    let mut overdue = Table::new(
        "peer_review_overdue",
        "Highest-threat investigations without a peer review in time",
        &format!(
            "Each highest-threat investigation whose peer review was not completed within {days} days of opening: overdue (none yet, and the {days} days have passed by the end of the period) or late (completed after them), most days past due first."
        ),
        vec![
            Column::new("investigation", "Investigation (pseudonymous)", Kind::Text),
            Column::new("lead_team", "Lead team", Kind::Text),
            Column::new("status", "Status", Kind::Text),
            Column::new("opened", "Opened", Kind::Text),
            Column::new("due", "Review due", Kind::Text),
            Column::new("peer_review", "Peer review", Kind::Text),
            Column::new("reviewed", "Reviewed", Kind::Text),
            Column::new("days_past_due", "Days past due", Kind::Number),
        ],
    );
    let peer_label = |s: Option<&String>| -> String {
        s.and_then(|s| plan.meanings.get("peer_review_status")?.get(s).cloned())
            .or_else(|| s.cloned())
            .unwrap_or_else(|| "Not recorded".into())
    };
    let mut late: Vec<(&Case, i32, bool)> = top
        .iter()
        .filter_map(|(k, r)| match r {
            Review::Overdue(n) => Some((*k, *n, true)),
            Review::Late(n) => Some((*k, *n, false)),
            _ => None,
        })
        .collect();
    late.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then(c.tokens.name(a.0.token).cmp(c.tokens.name(b.0.token)))
    });
    for (k, n, is_overdue) in late {
        overdue.rows.push(vec![
            Cell::Text(c.tokens.name(k.token).to_owned()),
            k.team.clone().map_or(Cell::Empty, Cell::Text),
            Cell::Text(k.status.label().into()),
            Cell::Text(format_day(k.opened)),
            Cell::Text(format_day(k.opened + days as i32)),
            Cell::Text(if is_overdue {
                format!("Overdue ({})", peer_label(k.peer_status.as_ref()))
            } else {
                "Late".into()
            }),
            k.peer_date
                .map_or(Cell::Empty, |d| Cell::Text(format_day(d))),
            Cell::Number(f64::from(n)),
        ]);
    }
    tables.push(overdue);

    let scale = threat_codes
        .iter()
        .map(|(k, v)| format!("{k} ({v})"))
        .collect::<Vec<_>>()
        .join(", ");
    notes.push(Note {
        topic: "Investigations".into(),
        text: format!(
            "Each row of the investigation data is one crime covered by one investigation; rows sharing the pseudonym of an operation reference are one investigation. Its crime references are the same pseudonyms the crime records carry, so an investigation reaches the victims and suspects of its crimes (counted as distinct people, records with the same name pseudonyms once) and the group-based networks they belong to; an investigation is never counted as a person. Threat categories are the force's own assessment on a four-point local scale: {scale}. A network counts as covered when an investigation whose status is open covers at least one of its crimes of the period; a suspended or closed investigation does not cover it. Peer review is expected for the highest category within {days} days of opening (agencylink profile --peer-review-days); an investigation closed before then without one is not counted as overdue."
        ),
    });
    Some(Found { tables })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(opened: i32, closed: Option<i32>, peer: Option<i32>) -> Case {
        Case {
            token: 0,
            opened,
            closed,
            status: if closed.is_some() {
                Status::Closed
            } else {
                Status::Open
            },
            threat: Some("1".into()),
            peer_status: peer.map(|_| "completed".into()),
            peer_date: peer,
            team: None,
            crimes: BTreeSet::new(),
            disagree: false,
        }
    }

    #[test]
    fn peer_review_states_on_hand_made_cases() {
        // 28 days allowed; the period ends on day 100.
        let at = |k: &Case| review(k, 28, 100);
        // Reviewed on the due day: in time.
        assert_eq!(at(&case(10, None, Some(38))), Review::InTime);
        // Reviewed a day after it was due: late by one.
        assert_eq!(at(&case(10, None, Some(39))), Review::Late(1));
        // Never reviewed, due on day 38: 62 days overdue at day 100.
        assert_eq!(at(&case(10, None, None)), Review::Overdue(62));
        // Opened on day 72, due on day 100 exactly: not yet overdue.
        assert_eq!(at(&case(72, None, None)), Review::NotYetDue);
        // Opened on day 71: due day 99, one day overdue.
        assert_eq!(at(&case(71, None, None)), Review::Overdue(1));
        // A review completed after the period end is not yet known.
        assert_eq!(at(&case(10, None, Some(120))), Review::Overdue(62));
        // Closed within the 28 days without review: nothing was due.
        assert_eq!(at(&case(10, Some(30), None)), Review::ClosedBeforeDue);
        // Closed after the due day, never reviewed: overdue when it closed
        // and still listed.
        assert_eq!(at(&case(10, Some(60), None)), Review::Overdue(62));
        // A window of 0 days: reviewed the day it opened is in time.
        assert_eq!(review(&case(10, None, Some(10)), 0, 100), Review::InTime);
    }

    #[test]
    fn rows_of_one_investigation_fold_to_the_most_active_and_highest() {
        let mut codes = super::super::facts::Interner::default();
        let mut row = |status: &str, threat: &str, peer: &str, token: u32| CaseRow {
            case: 7,
            opened: 50,
            closed: None,
            status: codes.intern(status),
            threat: codes.intern(threat),
            peer_status: codes.intern(peer),
            peer_date: None,
            team: NONE,
            links: vec![(0, token)],
        };
        let rows = vec![
            row("closed", "3", "not_reviewed", 1),
            row("open", "2", "not_reviewed", 2),
            row("open", "2", "not_reviewed", 2),
        ];
        let cases = fold(&rows, |i| (i != NONE).then(|| codes.name(i).to_owned()));
        assert_eq!(cases.len(), 1);
        let k = &cases[0];
        assert_eq!(k.status, Status::Open);
        assert_eq!(k.threat.as_deref(), Some("2"));
        assert!(k.disagree);
        assert_eq!(k.crimes.len(), 2);
    }
}
