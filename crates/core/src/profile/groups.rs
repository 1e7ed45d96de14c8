//! Group-based CSE: networks are the connected components of the graph in
//! which two people are tied when records of the period share a link token
//! (the same crime or intelligence reference, vehicle or phone) — the same
//! rule as [`crate::network`], on interned ids so it scales. A network is
//! *group-based* when it has at least `min_suspects` suspects and
//! `min_victims` victims (IICSA's organised network: two or more
//! associated people involved in exploitation).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::build::Ctx;
use super::dates::format_day;
use super::facts::{Family, NO_AGE, NO_BOROUGH, NO_NAME, NONE, Role};
use super::sections::{Event, short};
use super::table::{Cell, Column, Kind, Table};
use super::threat::{Assessment, ThreatInputs, Tier, assess};
use super::{Edge, NetworkDetail, Note, Tie};
use crate::geography::BOROUGHS;

/// A group-based network, on interned ids.
pub(crate) struct Net {
    pub(crate) id: String,
    /// Resolved suspects: each a cluster of person ids, representative first.
    pub(crate) suspects: Vec<Vec<u32>>,
    /// Resolved victims, likewise.
    pub(crate) victims: Vec<Vec<u32>>,
    pub(crate) others: Vec<u32>,
    pub(crate) events: u64,
    pub(crate) boroughs: Vec<u8>,
    pub(crate) first: i32,
    pub(crate) last: i32,
    pub(crate) offences: Vec<String>,
    pub(crate) under_13: u32,
    pub(crate) agencies: Vec<u16>,
    /// Shared non-event tokens by kind.
    pub(crate) shared: BTreeMap<String, Vec<u32>>,
    pub(crate) edges: Vec<(u32, u32, BTreeSet<String>)>,
    /// Every shared token: kind, token, the (representative) people holding it.
    pub(crate) ties: Vec<(String, u32, Vec<u32>)>,
    pub(crate) threat: Assessment,
}

/// The period's group-based networks, highest score first, and which
/// network each member belongs to.
pub(crate) struct Nets {
    pub(crate) groups: Vec<Net>,
    pub(crate) of_person: HashMap<u32, usize>,
    /// Components of two or more people (group-based or not).
    pub(crate) components: u64,
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let gp = parent[parent[x as usize] as usize];
        parent[x as usize] = gp;
        x = gp;
    }
    x
}

/// Find the networks.
pub(crate) fn networks(ctx: &Ctx<'_>) -> Nets {
    let c = ctx.c;
    let n = c.people.len();
    let mut parent: Vec<u32> = (0..n as u32).collect();
    let mut linked = vec![false; n];
    let mut first_holder: HashMap<u32, u32> = HashMap::new();
    for l in &c.links {
        let f = &c.facts[l.fact as usize];
        if !ctx.in_period(f) {
            continue;
        }
        linked[f.person as usize] = true;
        match first_holder.get(&l.token) {
            Some(&q) => {
                let (a, b) = (find(&mut parent, q), find(&mut parent, f.person));
                if a != b {
                    parent[a.max(b) as usize] = a.min(b);
                }
            }
            None => {
                first_holder.insert(l.token, f.person);
            }
        }
    }
    let mut comps: HashMap<u32, Vec<u32>> = HashMap::new();
    for p in 0..n as u32 {
        if linked[p as usize] {
            let r = find(&mut parent, p);
            comps.entry(r).or_default().push(p);
        }
    }
    let mut components = 0u64;
    let mut groups: Vec<Net> = Vec::new();
    for members in comps.into_values() {
        if members.len() < 2 {
            continue;
        }
        components += 1;
        let suspects = resolve(ctx, &members, Role::Suspect, &ctx.suspect);
        let victims = resolve(ctx, &members, Role::Victim, &ctx.victim_role);
        if suspects.len() < ctx.s.min_suspects || victims.len() < ctx.s.min_victims {
            continue;
        }
        let others: Vec<u32> = members
            .iter()
            .copied()
            .filter(|&p| !ctx.suspect[p as usize] && !ctx.victim_role[p as usize])
            .collect();
        groups.push(describe(ctx, members, suspects, victims, others));
    }
    groups.sort_by(|a, b| {
        b.threat
            .score
            .cmp(&a.threat.score)
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut of_person = HashMap::new();
    // Each person id drawn as its cluster's representative.
    let mut rep: HashMap<u32, u32> = HashMap::new();
    for (i, g) in groups.iter().enumerate() {
        for cluster in g.suspects.iter().chain(&g.victims) {
            for &p in cluster {
                of_person.insert(p, i);
                rep.entry(p).or_insert(cluster[0]);
            }
        }
        for &p in &g.others {
            of_person.insert(p, i);
            rep.insert(p, p);
        }
    }
    // Shared tokens and edges, in one pass over the period's links.
    let mut held: Vec<Vec<(u32, u8, u32)>> = vec![Vec::new(); groups.len()];
    for l in &c.links {
        let f = &c.facts[l.fact as usize];
        if ctx.in_period(f)
            && let Some(&g) = of_person.get(&f.person)
        {
            held[g].push((
                l.token,
                l.kind,
                rep.get(&f.person).copied().unwrap_or(f.person),
            ));
        }
    }
    let event_kinds: BTreeSet<&str> = c.plans.iter().filter_map(|p| p.event_kind()).collect();
    for (g, mut list) in groups.iter_mut().zip(held) {
        list.sort_unstable();
        list.dedup();
        let mut edges: BTreeMap<(u32, u32), BTreeSet<String>> = BTreeMap::new();
        for chunk in list.chunk_by(|a, b| a.0 == b.0) {
            // A token only one (resolved) person holds ties nobody.
            if chunk.len() < 2 {
                continue;
            }
            let kind = c.link_kinds.name(u32::from(chunk[0].1)).to_owned();
            if !event_kinds.contains(kind.as_str()) {
                g.shared.entry(kind.clone()).or_default().push(chunk[0].0);
            }
            let holders: Vec<u32> = chunk.iter().map(|x| x.2).collect();
            g.ties.push((kind.clone(), chunk[0].0, holders.clone()));
            // Everyone in a crime knows everyone else in it; a very busy
            // token is drawn as a star so the picture stays readable.
            let pairs: Vec<(u32, u32)> = if holders.len() <= 12 {
                holders
                    .iter()
                    .enumerate()
                    .flat_map(|(i, &a)| holders[i + 1..].iter().map(move |&b| (a, b)))
                    .collect()
            } else {
                holders[1..].iter().map(|&b| (holders[0], b)).collect()
            };
            for (a, b) in pairs {
                let key = if c.people.name(a) < c.people.name(b) {
                    (a, b)
                } else {
                    (b, a)
                };
                edges.entry(key).or_default().insert(kind.clone());
            }
        }
        g.edges = edges.into_iter().map(|((a, b), k)| (a, b, k)).collect();
    }
    Nets {
        groups,
        of_person,
        components,
    }
}

fn describe(
    ctx: &Ctx<'_>,
    members: Vec<u32>,
    suspects: Vec<Vec<u32>>,
    victims: Vec<Vec<u32>>,
    others: Vec<u32>,
) -> Net {
    let c = ctx.c;
    let mut events: BTreeSet<u32> = BTreeSet::new();
    let mut boroughs: BTreeSet<u8> = BTreeSet::new();
    let mut offences: BTreeSet<String> = BTreeSet::new();
    let mut agencies: BTreeSet<u16> = BTreeSet::new();
    let (mut first, mut last) = (i32::MAX, i32::MIN);
    for &p in &members {
        for f in ctx.facts_of(p) {
            agencies.insert(f.agency);
            let fam = ctx.plan(f).family;
            if !ctx.in_period(f) || !matches!(fam, Family::Crime | Family::Intelligence) {
                continue;
            }
            if f.event != NONE {
                events.insert(f.event);
            }
            if f.borough != NO_BOROUGH {
                boroughs.insert(f.borough);
            }
            first = first.min(f.day);
            last = last.max(f.day);
            if fam == Family::Crime
                && let Some(code) = c.code(f.offence)
            {
                offences.insert(code.to_owned());
            }
        }
    }
    if first > last {
        (first, last) = (ctx.from, ctx.from);
    }
    let under_13 = victims
        .iter()
        .filter(|cluster| {
            cluster.iter().any(|&v| {
                ctx.facts_of(v)
                    .filter(|f| ctx.in_period(f) && f.age != NO_AGE)
                    .any(|f| f.age < 13)
            })
        })
        .count() as u32;
    let name = |p: &u32| c.people.name(*p);
    let id = members
        .iter()
        .map(name)
        .min()
        .map(|p| format!("n_{}", p.trim_start_matches("p_")))
        .unwrap_or_default();
    let threat = assess(
        &ThreatInputs {
            victims: victims.len() as u32,
            suspects: suspects.len() as u32,
            victims_under_13: under_13,
            days_since_last: (ctx.to - last).max(0) as u32,
            offences: offences.iter().cloned().collect(),
            boroughs: boroughs.len() as u32,
        },
        &ctx.s.threat,
    );
    let mut others = others;
    others.sort_by(|a, b| name(a).cmp(name(b)));
    Net {
        id,
        suspects,
        victims,
        others,
        events: events.len() as u64,
        boroughs: boroughs.into_iter().collect(),
        first,
        last,
        offences: offences.into_iter().collect(),
        under_13,
        agencies: agencies.into_iter().collect(),
        shared: BTreeMap::new(),
        edges: Vec::new(),
        ties: Vec::new(),
        threat,
    }
}

/// The people of one role in a network, resolved: person ids whose records
/// of that role carry the same family and given name pseudonyms are one
/// person here, unless two of them have a date of birth (then linkage
/// already decided they differ, and a record without one could be either).
/// Suspects often have no date of birth, so linkage alone makes one
/// suspect named in three crimes three people. Clusters come back with
/// the smallest id first, ordered by it.
fn resolve(ctx: &Ctx<'_>, members: &[u32], role: Role, has: &[bool]) -> Vec<Vec<u32>> {
    let people: Vec<u32> = members
        .iter()
        .copied()
        .filter(|&p| has[p as usize])
        .collect();
    let mut dob = vec![false; people.len()];
    let mut by_name: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, &p) in people.iter().enumerate() {
        for f in ctx.facts_of(p) {
            dob[i] |= f.supplied & 2 != 0;
            if ctx.in_period(f) && f.role == role && f.name != NO_NAME {
                by_name.entry(f.name).or_default().push(i);
            }
        }
    }
    let mut parent: Vec<u32> = (0..people.len() as u32).collect();
    for idx in by_name.values_mut() {
        idx.dedup();
        if idx.len() < 2 || idx.iter().filter(|&&i| dob[i]).count() > 1 {
            continue;
        }
        for w in idx.windows(2) {
            let (a, b) = (
                find(&mut parent, w[0] as u32),
                find(&mut parent, w[1] as u32),
            );
            if a != b {
                parent[a.max(b) as usize] = a.min(b);
            }
        }
    }
    let mut clusters: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (i, &p) in people.iter().enumerate() {
        let r = find(&mut parent, i as u32);
        clusters.entry(r).or_default().push(p);
    }
    let name = |p: &u32| ctx.c.people.name(*p);
    let mut out: Vec<Vec<u32>> = clusters
        .into_values()
        .map(|mut c| {
            c.sort_by(|a, b| name(a).cmp(name(b)));
            c
        })
        .collect();
    out.sort_by(|a, b| name(&a[0]).cmp(name(&b[0])));
    out
}

fn borough_names(b: &[u8]) -> String {
    b.iter()
        .filter_map(|&i| BOROUGHS.get(i as usize).map(|x| x.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tracker: every CSE-flagged crime and intelligence report of the
/// period, with its network if it belongs to a group-based one.
pub(crate) fn tracker(ctx: &Ctx<'_>, events: &[Event], nets: &Nets) -> Table {
    let mut t = Table::new(
        "tracker",
        "Tracker: CSE-flagged crimes and intelligence",
        "Every CSE-flagged crime and intelligence report in the period, newest first. The reference is the pseudonym of the force's crime or intelligence reference: an analyst with access can look it up; it reveals nothing without the key.",
        vec![
            Column::new("date", "Date", Kind::Text),
            Column::new("reference", "Reference (pseudonymous)", Kind::Text),
            Column::new("type", "Type", Kind::Text),
            Column::new("borough", "Borough", Kind::Text),
            Column::new("offence", "Offence", Kind::Text),
            Column::new("outcome", "Outcome", Kind::Text),
            Column::new("cse_model", "CSE model", Kind::Text),
            Column::new("victims", "Victims", Kind::Count),
            Column::new("suspects", "Suspects", Kind::Count),
            Column::new("network", "Network", Kind::Text),
            Column::new(
                "since_previous",
                "New or changed since the previous profile",
                Kind::Text,
            ),
        ],
    );
    if let Some(s) = &ctx.since {
        t.description.push_str(&format!(
            " \"New or changed since the previous profile\" marks entries with a record written after the previous profile of this edition was built ({}, for {} to {}); blank: as it was then.",
            s.time.get(..10).unwrap_or(&s.time),
            s.from,
            s.to
        ));
    }
    // Offences and outcomes are known by their Home Office numbers, so the
    // code leads; a CSE model's code is just its name in snake case.
    let label = |concept: &str, code: u32, with_code: bool| -> Cell {
        match ctx.c.code(code) {
            None => Cell::Empty,
            Some(code) => Cell::Text(
                ctx.c
                    .plans
                    .iter()
                    .find_map(|p| p.meanings.get(concept).and_then(|m| m.get(code)))
                    .map_or_else(
                        || code.to_owned(),
                        |m| {
                            if with_code {
                                format!("{code} {}", short(m))
                            } else {
                                super::sections::quoted_short(m)
                            }
                        },
                    ),
            ),
        }
    };
    for e in events
        .iter()
        .rev()
        .filter(|e| e.cse && (ctx.from..=ctx.to).contains(&e.day))
    {
        let count = |r: Role| e.people.iter().filter(|(_, x)| *x == r).count() as u64;
        let network = e
            .people
            .iter()
            .find_map(|(p, _)| nets.of_person.get(p))
            .map_or(Cell::Empty, |&i| Cell::Text(nets.groups[i].id.clone()));
        t.rows.push(vec![
            Cell::Text(format_day(e.day)),
            if e.token == NONE {
                Cell::Empty
            } else {
                Cell::Text(ctx.c.tokens.name(e.token).to_owned())
            },
            Cell::Text(super::build::family_name(e.family).into()),
            BOROUGHS
                .get(e.borough as usize)
                .map_or(Cell::Text("Not known".into()), |b| {
                    Cell::Text(b.name.into())
                }),
            label("offence", e.offence, true),
            label("outcome", e.outcome, true),
            label("cse_model", e.model, false),
            Cell::Count(count(Role::Victim)),
            Cell::Count(count(Role::Suspect)),
            network,
            if e.fresh {
                Cell::Text("yes".into())
            } else {
                Cell::Empty
            },
        ]);
    }
    t
}

/// The network tables: every group-based network (analyst) and counts by
/// tier (both editions).
pub(crate) fn tables(ctx: &Ctx<'_>, nets: &Nets, notes: &mut Vec<Note>) -> Vec<Table> {
    let mut list = Table::new(
        "group_networks",
        "Group-based networks",
        "Each network with its threat score (the formula is under method) and what it is made of. Ids are pseudonymous.",
        vec![
            Column::new("network", "Network", Kind::Text),
            Column::new("tier", "Tier", Kind::Text),
            Column::new("score", "Score", Kind::Number),
            Column::new("suspects", "Suspects", Kind::Count),
            Column::new("victims", "Victims", Kind::Count),
            Column::new("victims_under_13", "Victims under 13", Kind::Count),
            Column::new("boroughs", "Boroughs", Kind::Text),
            Column::new("first_event", "First event", Kind::Text),
            Column::new("last_event", "Last event", Kind::Text),
            Column::new("events", "Crimes and reports", Kind::Count),
            Column::new("agencies", "Agencies involved", Kind::Count),
            Column::new("vehicles", "Shared vehicles", Kind::Count),
            Column::new("phones", "Shared phones", Kind::Count),
        ],
    );
    let shared = |g: &Net, k: &str| g.shared.get(k).map_or(0, Vec::len) as u64;
    for g in &nets.groups {
        list.push(
            &g.id,
            vec![
                Cell::Text(g.id.clone()),
                Cell::Text(g.threat.tier.as_str().into()),
                Cell::Number(f64::from(g.threat.score)),
                Cell::Count(g.suspects.len() as u64),
                Cell::Count(g.victims.len() as u64),
                Cell::Count(u64::from(g.under_13)),
                Cell::Text(borough_names(&g.boroughs)),
                Cell::Text(format_day(g.first)),
                Cell::Text(format_day(g.last)),
                Cell::Count(g.events),
                Cell::Count(g.agencies.len() as u64),
                Cell::Count(shared(g, "vehicle")),
                Cell::Count(shared(g, "phone")),
            ],
        );
    }
    let mut tiers = Table::new(
        "network_tiers",
        "Group-based networks by threat tier",
        "Networks, and the suspects and victims in them, by threat tier.",
        vec![
            Column::new("tier", "Tier", Kind::Label),
            Column::new("networks", "Networks", Kind::Count),
            Column::new("suspects", "Suspects", Kind::Count),
            Column::new("victims", "Victims", Kind::Count),
        ],
    );
    for tier in [Tier::High, Tier::Medium, Tier::Low] {
        let of: Vec<&Net> = nets
            .groups
            .iter()
            .filter(|g| g.threat.tier == tier)
            .collect();
        let mut label = tier.as_str().to_owned();
        label[..1].make_ascii_uppercase();
        tiers.push(
            tier.as_str(),
            vec![
                Cell::Text(label),
                Cell::Count(of.len() as u64),
                Cell::Count(of.iter().map(|g| g.suspects.len() as u64).sum()),
                Cell::Count(of.iter().map(|g| g.victims.len() as u64).sum()),
            ],
        );
    }
    tiers.push_total_row();
    notes.push(Note {
        topic: "Group-based networks".into(),
        text: format!(
            "Two people are tied when records of the period share a crime or intelligence reference, a vehicle or a phone (by pseudonym). A network is a connected group of tied people. It is group-based when it holds at least {} suspects and {} victim(s): the IICSA definition of an organised network, two or more associated individuals involved in or facilitating the exploitation of children. Suspects and victims are counted after one more step: inside a network, person ids whose suspect (or victim) records carry the same family and given name pseudonyms are one person, unless two of them have a date of birth. Suspects often have none, so linkage alone would count one suspect named in three crimes as three people. {} networks of two or more people were found; {} are group-based.",
            ctx.s.min_suspects,
            ctx.s.min_victims,
            nets.components,
            nets.groups.len()
        ),
    });
    vec![list, tiers]
}

/// Full network details for the analyst edition and the graphs.
pub(crate) fn details(ctx: &Ctx<'_>, nets: &Nets) -> Vec<NetworkDetail> {
    let c = ctx.c;
    let names = |v: &[u32]| v.iter().map(|&p| c.people.name(p).to_owned()).collect();
    let reps = |v: &[Vec<u32>]| v.iter().map(|cl| c.people.name(cl[0]).to_owned()).collect();
    let merged = |g: &Net| -> BTreeMap<String, Vec<String>> {
        g.suspects
            .iter()
            .chain(&g.victims)
            .filter(|cl| cl.len() > 1)
            .map(|cl| (c.people.name(cl[0]).to_owned(), names(&cl[1..])))
            .collect()
    };
    nets.groups
        .iter()
        .map(|g| NetworkDetail {
            id: g.id.clone(),
            tier: g.threat.tier,
            threat: g.threat.clone(),
            suspects: reps(&g.suspects),
            victims: reps(&g.victims),
            others: names(&g.others),
            same_person: merged(g),
            boroughs: g
                .boroughs
                .iter()
                .filter_map(|&b| BOROUGHS.get(b as usize).map(|x| x.name.to_owned()))
                .collect(),
            first_event: format_day(g.first),
            last_event: format_day(g.last),
            events: g.events,
            agencies: g
                .agencies
                .iter()
                .map(|&a| c.agencies.name(u32::from(a)).to_owned())
                .collect(),
            shared: g
                .shared
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.iter().map(|&t| c.tokens.name(t).to_owned()).collect(),
                    )
                })
                .collect(),
            offences: g.offences.clone(),
            edges: g
                .edges
                .iter()
                .map(|(a, b, k)| Edge {
                    a: c.people.name(*a).to_owned(),
                    b: c.people.name(*b).to_owned(),
                    kinds: k.iter().cloned().collect(),
                })
                .collect(),
            ties: g
                .ties
                .iter()
                .map(|(kind, token, people)| Tie {
                    kind: kind.clone(),
                    token: c.tokens.name(*token).to_owned(),
                    people: names(people),
                })
                .collect(),
        })
        .collect()
}
