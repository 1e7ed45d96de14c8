//! The synthetic world: people, planted networks and background groups.
//!
//! A world depends only on the seed and the population size, never on the
//! dataset or the row count, so every dataset generated with one seed is
//! about the same people: a child appears in council, health, education and
//! police extracts, and a planted network's suspects appear in crime and
//! intelligence extracts.
//!
//! Who can be tied to whom is decided here, once, so that group detection
//! has an exact answer:
//!
//! - a **planted network** is 2–5 suspects and 2–6 victims tied by several
//!   shared crimes, shared intelligence reports, and a shared vehicle and/or
//!   phone. Nobody in a network appears in any other police event.
//! - a **background group** is at most one suspect, the children he or she
//!   offends against, and a few associates or witnesses. Every background
//!   police event draws all its people from one group, so however many
//!   events there are, no background component ever holds two suspects.
//! - phones and plates are owned by one person (or by one network, as its
//!   shared vehicle or phone) and never reused by anyone else.

use std::collections::HashSet;

use super::SynthError;
use crate::calendar::{Day, EVENT_END, EVENT_START, age_on, days_from_civil, iso};
use crate::geo::{BOROUGHS, Postcode, draw_borough};
use crate::ids::{PHONE_POOL, UPN_ALPHABET, draw_vrm, make_upn, nhs_from_body, phone_canonical};
use crate::names::{Ethnicity, Sex, draw_names};
use crate::rng::{Rng, cumulative};

/// How many people the world holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Population {
    /// Children (aged 10–17 on every event date).
    pub children: u32,
    /// Adults (aged 18–50 on every event date).
    pub adults: u32,
}

impl Default for Population {
    fn default() -> Self {
        Population {
            children: 3000,
            adults: 1500,
        }
    }
}

/// The most people a world may hold: synthetic NHS numbers come from the
/// never-issued 999 range, which has about 909,000 valid numbers.
pub const MAX_PEOPLE: u32 = 500_000;

/// Earliest child date of birth: 17 on the last event date.
const CHILD_DOB_MIN: Day = days_from_civil(2008, 10, 1);
/// Latest child date of birth: 10 on the first event date.
const CHILD_DOB_MAX: Day = days_from_civil(2014, 10, 1);
/// Earliest adult date of birth: 50 on the last event date.
const ADULT_DOB_MIN: Day = days_from_civil(1975, 10, 1);
/// Latest adult date of birth: 18 on the first event date.
const ADULT_DOB_MAX: Day = days_from_civil(2006, 10, 1);

/// A person's part in the world's police story.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Involvement {
    /// A victim in a planted network.
    NetworkVictim,
    /// A suspect in a planted network.
    NetworkSuspect,
    /// A child in a background group (single-offender or no-suspect crimes).
    BackgroundVictim,
    /// The one suspect of a background group.
    BackgroundSuspect,
    /// An adult associate or witness in a background group.
    Associate,
    /// Not known to police.
    Uninvolved,
}

/// One synthetic person.
#[derive(Debug, Clone)]
pub struct Person {
    pub(crate) index: u32,
    pub(crate) child: bool,
    pub(crate) family: &'static str,
    pub(crate) given: &'static str,
    pub(crate) dob: Day,
    pub(crate) sex: Sex,
    pub(crate) ethnicity: Ethnicity,
    pub(crate) borough: u8,
    pub(crate) postcode: Postcode,
    pub(crate) nhs: u64,
    pub(crate) upn: Option<[u8; 13]>,
    pub(crate) phone: Option<u32>,
    pub(crate) vrm: Option<[u8; 7]>,
    pub(crate) local_id: u32,
    /// Whether police know this person's date of birth (false only for some
    /// background suspects; planted suspects always have one).
    pub(crate) dob_known: bool,
    pub(crate) involvement: Involvement,
    pub(crate) network: Option<u32>,
    pub(crate) group: Option<u32>,
}

/// `P00042`: the ground-truth id of person index 41.
pub(crate) fn person_label(index: u32) -> String {
    format!("P{:05}", u64::from(index) + 1)
}

/// `N003`: the ground-truth id of network index 2.
pub(crate) fn network_label(index: u32) -> String {
    format!("N{:03}", u64::from(index) + 1)
}

impl Person {
    /// Ground-truth id, e.g. `P00042` (what the truth file calls `person`).
    pub fn id(&self) -> String {
        person_label(self.index)
    }
    /// Position in [`World::people`].
    pub fn index(&self) -> u32 {
        self.index
    }
    /// Whether this is a child (10–17 on every event date).
    pub fn is_child(&self) -> bool {
        self.child
    }
    /// Family name as stored (before any case variation in output).
    pub fn family_name(&self) -> &'static str {
        self.family
    }
    /// Given name as stored.
    pub fn given_name(&self) -> &'static str {
        self.given
    }
    /// Date of birth, `YYYY-MM-DD`.
    pub fn dob(&self) -> String {
        iso(self.dob)
    }
    /// Sex.
    pub fn sex(&self) -> Sex {
        self.sex
    }
    /// Ethnicity.
    pub fn ethnicity(&self) -> Ethnicity {
        self.ethnicity
    }
    /// Home borough name.
    pub fn borough(&self) -> &'static str {
        BOROUGHS[usize::from(self.borough)].name
    }
    /// Home postcode, canonical form (`OL11 1AB`).
    pub fn postcode(&self) -> String {
        self.postcode.to_string()
    }
    /// NHS number, 10 digits.
    pub fn nhs_number(&self) -> String {
        format!("{:010}", self.nhs)
    }
    /// UPN (children only), canonical form.
    pub fn upn(&self) -> Option<String> {
        self.upn.map(|u| String::from_utf8_lossy(&u).into_owned())
    }
    /// Own phone, canonical digits (`07700900123`), if the person has one.
    pub fn phone(&self) -> Option<String> {
        self.phone.map(phone_canonical)
    }
    /// Own vehicle registration, canonical form (`AB12CDE`), if any.
    pub fn vrm(&self) -> Option<String> {
        self.vrm.map(|v| String::from_utf8_lossy(&v).into_owned())
    }
    /// Local person id (an LA child id for children), as written.
    pub fn local_id(&self) -> String {
        local_id_text(self.child, self.local_id)
    }
    /// Part in the police story.
    pub fn involvement(&self) -> Involvement {
        self.involvement
    }
    /// The planted network this person belongs to, e.g. `N003`.
    pub fn network(&self) -> Option<String> {
        self.network.map(network_label)
    }
}

pub(crate) fn local_id_text(child: bool, id: u32) -> String {
    format!("{}{id:07}", if child { 'C' } else { 'N' })
}

/// One crime or intelligence report of a planted network.
#[derive(Debug, Clone)]
pub(crate) struct NetEvent {
    pub(crate) date: Day,
    pub(crate) suspects: Vec<u32>,
    pub(crate) victims: Vec<u32>,
    /// Index into the network's hotspots.
    pub(crate) place: usize,
}

/// A planted network: the ground truth for group detection.
#[derive(Debug, Clone)]
pub struct Network {
    pub(crate) index: u32,
    pub(crate) suspects: Vec<u32>,
    pub(crate) victims: Vec<u32>,
    pub(crate) borough: u8,
    pub(crate) hotspots: Vec<Postcode>,
    pub(crate) start: Day,
    pub(crate) end: Day,
    pub(crate) vehicle: Option<[u8; 7]>,
    pub(crate) vehicle_users: Vec<u32>,
    pub(crate) phone: Option<u32>,
    pub(crate) phone_users: Vec<u32>,
    /// Crimes: every involvement in one crime shares its reference.
    pub(crate) crimes: Vec<NetEvent>,
    /// Intelligence reports naming several members.
    pub(crate) reports: Vec<NetEvent>,
}

impl Network {
    /// Ground-truth id, e.g. `N003`.
    pub fn id(&self) -> String {
        network_label(self.index)
    }
    /// Suspects (person indices).
    pub fn suspects(&self) -> &[u32] {
        &self.suspects
    }
    /// Victims (person indices).
    pub fn victims(&self) -> &[u32] {
        &self.victims
    }
    /// Suspects' ground-truth ids (`P…`), as the truth file lists them.
    pub fn suspect_ids(&self) -> Vec<String> {
        self.suspects.iter().map(|&p| person_label(p)).collect()
    }
    /// Victims' ground-truth ids (`P…`).
    pub fn victim_ids(&self) -> Vec<String> {
        self.victims.iter().map(|&p| person_label(p)).collect()
    }
    /// The vehicle several suspects use, canonical form.
    pub fn shared_vehicle(&self) -> Option<String> {
        self.vehicle
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }
    /// The phone several suspects use, canonical digits.
    pub fn shared_phone(&self) -> Option<String> {
        self.phone.map(phone_canonical)
    }
    /// How many crimes tie the network together.
    pub fn crime_count(&self) -> usize {
        self.crimes.len()
    }
    /// How many intelligence reports name several members.
    pub fn report_count(&self) -> usize {
        self.reports.len()
    }
}

/// A background group: at most one suspect, his or her victims, and
/// associates. Background police events never mix two groups.
#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    pub(crate) suspect: Option<u32>,
    pub(crate) victims: Vec<u32>,
    pub(crate) others: Vec<u32>,
}

/// Every person, network and group, from one seed.
#[derive(Debug, Clone)]
pub struct World {
    seed: u64,
    population: Population,
    pub(crate) people: Vec<Person>,
    pub(crate) networks: Vec<Network>,
    pub(crate) groups: Vec<Group>,
    /// Running weights over children for person-centric datasets: children
    /// known to be at risk turn up in more records, as they do in reality.
    pub(crate) child_weights: Vec<u32>,
}

impl World {
    /// Build the world for `seed` and `population`.
    pub fn new(seed: u64, population: Population) -> Result<World, SynthError> {
        let Population { children, adults } = population;
        if children == 0 || adults == 0 {
            return Err(SynthError::Population(
                "a world needs at least one child and one adult".into(),
            ));
        }
        let total = children
            .checked_add(adults)
            .filter(|&t| t <= MAX_PEOPLE)
            .ok_or_else(|| {
                SynthError::Population(format!("at most {MAX_PEOPLE} people (children + adults)"))
            })?;
        let label = format!("world/{children}/{adults}");
        let mut rng = Rng::derive(seed, &label);
        let mut people = make_people(&mut rng, children, total)?;
        let networks = plant_networks(&mut rng, &mut people, children, total);
        let groups = form_groups(&mut rng, &mut people, children, total);
        let mut networks = networks;
        hand_out_phones(&mut rng, &mut people, &mut networks);
        hand_out_vehicles(&mut rng, &mut people, &mut networks);
        let child_weights =
            cumulative(
                people[..children as usize]
                    .iter()
                    .map(|p| match p.involvement {
                        Involvement::NetworkVictim => 6,
                        Involvement::BackgroundVictim => 3,
                        _ => 1,
                    }),
            );
        Ok(World {
            seed,
            population,
            people,
            networks,
            groups,
            child_weights,
        })
    }

    /// The seed the world was built from.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// The population it was built for.
    pub fn population(&self) -> Population {
        self.population
    }
    /// Every person; children first, then adults.
    pub fn people(&self) -> &[Person] {
        &self.people
    }
    /// A person by index.
    pub fn person(&self, index: u32) -> Option<&Person> {
        self.people.get(index as usize)
    }
    /// The planted networks.
    pub fn networks(&self) -> &[Network] {
        &self.networks
    }
}

fn make_people(rng: &mut Rng, children: u32, total: u32) -> Result<Vec<Person>, SynthError> {
    let mut people = Vec::with_capacity(total as usize);
    let mut name_keys: HashSet<(&'static str, &'static str, Day)> =
        HashSet::with_capacity(total as usize);
    let mut nhs_used: HashSet<u64> = HashSet::with_capacity(total as usize);
    let mut upn_used: HashSet<[u8; 13]> = HashSet::with_capacity(children as usize);
    let exhausted = |what: &str| SynthError::Population(format!("could not find a unique {what}"));
    for index in 0..total {
        let child = index < children;
        let sex = if rng.chance(0.002) {
            Sex::Indeterminate
        } else if rng.chance(0.5) {
            Sex::Female
        } else {
            Sex::Male
        };
        let ethnicity = Ethnicity::draw(rng);
        let (lo, hi) = if child {
            (CHILD_DOB_MIN, CHILD_DOB_MAX)
        } else {
            (ADULT_DOB_MIN, ADULT_DOB_MAX)
        };
        // (family, given, dob) is the name-and-DOB match key: it must be
        // unique, or two synthetic people would be linked as one.
        let mut picked = None;
        for _ in 0..1000 {
            let (family, given) = draw_names(rng, ethnicity, sex);
            let dob = rng.between(i64::from(lo), i64::from(hi)) as Day;
            if name_keys.insert((family, given, dob)) {
                picked = Some((family, given, dob));
                break;
            }
        }
        let (family, given, dob) = picked.ok_or_else(|| exhausted("name and date of birth"))?;
        let borough = draw_borough(rng);
        let postcode = Postcode::draw(rng, borough);
        let mut nhs = None;
        for _ in 0..10_000 {
            if let Some(n) = nhs_from_body(rng.below(1_000_000) as u32)
                && nhs_used.insert(n)
            {
                nhs = Some(n);
                break;
            }
        }
        let nhs = nhs.ok_or_else(|| exhausted("NHS number"))?;
        let upn = if child {
            let (birth_year, _, _) = crate::calendar::civil_from_days(dob);
            let mut found = None;
            for _ in 0..10_000 {
                let temporary = rng
                    .chance(0.02)
                    .then(|| UPN_ALPHABET[rng.index(UPN_ALPHABET.len())]);
                let candidate = make_upn(
                    BOROUGHS[usize::from(borough)].dfe,
                    2000 + rng.below(900) as u16,
                    ((birth_year + 5) % 100) as u8,
                    rng.below(1000) as u16,
                    temporary,
                );
                if let Some(u) = candidate
                    && upn_used.insert(u)
                {
                    found = Some(u);
                    break;
                }
            }
            Some(found.ok_or_else(|| exhausted("UPN"))?)
        } else {
            None
        };
        people.push(Person {
            index,
            child,
            family,
            given,
            dob,
            sex,
            ethnicity,
            borough,
            postcode,
            nhs,
            upn,
            phone: None,
            vrm: None,
            // A bijection of the index onto 0..10^7 (7919 is prime, so
            // coprime with 10^7): unique ids that do not look sequential.
            local_id: ((u64::from(index) * 7919 + 1_234_567) % 10_000_000) as u32,
            dob_known: true,
            involvement: Involvement::Uninvolved,
            network: None,
            group: None,
        });
    }
    Ok(people)
}

/// Pick an unassigned person in `range`, preferring ones `prefer` accepts.
fn pick_free(
    rng: &mut Rng,
    people: &[Person],
    taken: &[bool],
    range: std::ops::Range<u32>,
    prefer: impl Fn(&Person) -> bool,
) -> Option<u32> {
    let len = u64::from(range.end - range.start);
    if len == 0 {
        return None;
    }
    let draw = |rng: &mut Rng| range.start + rng.below(len) as u32;
    for _ in 0..200 {
        let i = draw(rng);
        if !taken[i as usize] && prefer(&people[i as usize]) {
            return Some(i);
        }
    }
    let start = draw(rng);
    (0..len as u32)
        .map(|k| range.start + (start - range.start + k) % len as u32)
        .find(|&i| !taken[i as usize])
}

fn plant_networks(rng: &mut Rng, people: &mut [Person], children: u32, total: u32) -> Vec<Network> {
    let adults = total - children;
    // One network per 150 people, keeping most people for the background.
    let count = (total / 150).min(adults / 10).min(children / 12);
    let mut taken = vec![false; total as usize];
    let mut networks = Vec::with_capacity(count as usize);
    for index in 0..count {
        let borough = draw_borough(rng);
        let start = rng.between(i64::from(EVENT_START), i64::from(EVENT_END - 250)) as Day;
        let end = start + rng.between(90, 240) as Day;
        let n_suspects = rng.between(2, 5) as usize;
        let n_victims = rng.between(2, 6) as usize;
        let mut suspects = Vec::with_capacity(n_suspects);
        for _ in 0..n_suspects {
            let male = rng.chance(0.92);
            let local = rng.chance(0.7);
            let pick = pick_free(rng, people, &taken, children..total, |p| {
                (p.sex == Sex::Male) == male && (!local || p.borough == borough)
            });
            if let Some(i) = pick {
                taken[i as usize] = true;
                suspects.push(i);
            }
        }
        let mut victims = Vec::with_capacity(n_victims);
        for _ in 0..n_victims {
            let female = rng.chance(0.85);
            let local = rng.chance(0.7);
            let pick = pick_free(rng, people, &taken, 0..children, |p| {
                (p.sex == Sex::Female) == female
                    && (!local || p.borough == borough)
                    && age_on(p.dob, start) >= 12
            });
            if let Some(i) = pick {
                taken[i as usize] = true;
                victims.push(i);
            }
        }
        if suspects.len() < 2 || victims.is_empty() {
            // Not enough free people left: stop planting rather than plant
            // something that is not a network.
            for i in suspects.iter().chain(&victims) {
                taken[*i as usize] = false;
            }
            break;
        }
        let hotspots = (0..rng.between(1, 3))
            .map(|_| Postcode::draw(rng, borough))
            .collect::<Vec<_>>();
        let crimes = plant_crimes(rng, &suspects, &victims, start, end, hotspots.len());
        let reports = plant_reports(rng, &suspects, &victims, start, end, hotspots.len());
        // Every network shares a vehicle, a phone, or both.
        let has_vehicle = rng.chance(0.6);
        let has_phone = !has_vehicle || rng.chance(0.5);
        let users = |rng: &mut Rng, on: bool| -> Vec<u32> {
            if !on {
                return Vec::new();
            }
            let mut u = suspects.clone();
            rng.shuffle(&mut u);
            u.truncate(rng.between(2, u.len() as i64) as usize);
            u
        };
        let vehicle_users = users(rng, has_vehicle);
        let phone_users = users(rng, has_phone);
        for &s in &suspects {
            let p = &mut people[s as usize];
            p.involvement = Involvement::NetworkSuspect;
            p.network = Some(index);
            p.dob_known = true;
        }
        for &v in &victims {
            let p = &mut people[v as usize];
            p.involvement = Involvement::NetworkVictim;
            p.network = Some(index);
        }
        networks.push(Network {
            index,
            suspects,
            victims,
            borough,
            hotspots,
            start,
            end,
            vehicle: None,
            vehicle_users,
            phone: None,
            phone_users,
            crimes,
            reports,
        });
    }
    networks
}

/// Crimes chained so that consecutive crimes share a suspect and every
/// member is in at least one: the crime references alone connect the whole
/// network.
fn plant_crimes(
    rng: &mut Rng,
    suspects: &[u32],
    victims: &[u32],
    start: Day,
    end: Day,
    places: usize,
) -> Vec<NetEvent> {
    let (ns, nv) = (suspects.len(), victims.len());
    let count = ns.max(nv) + rng.index(3);
    let mut crimes: Vec<NetEvent> = (0..count)
        .map(|j| {
            let mut vs = vec![victims[j % nv]];
            if nv > 1 && rng.chance(0.3) {
                vs.push(victims[(j + 1) % nv]);
            }
            NetEvent {
                date: rng.between(i64::from(start), i64::from(end)) as Day,
                suspects: vec![suspects[j % ns], suspects[(j + 1) % ns]],
                victims: vs,
                place: rng.index(places),
            }
        })
        .collect();
    crimes.sort_by_key(|c| c.date);
    crimes
}

/// Intelligence reports each naming at least two suspects and one victim.
fn plant_reports(
    rng: &mut Rng,
    suspects: &[u32],
    victims: &[u32],
    start: Day,
    end: Day,
    places: usize,
) -> Vec<NetEvent> {
    let count = rng.between(1, 3) as usize;
    let mut reports: Vec<NetEvent> = (0..count)
        .map(|_| {
            let mut s = suspects.to_vec();
            rng.shuffle(&mut s);
            s.truncate(rng.between(2, s.len() as i64) as usize);
            let mut v = victims.to_vec();
            rng.shuffle(&mut v);
            v.truncate(rng.between(1, v.len().min(3) as i64) as usize);
            NetEvent {
                date: rng.between(i64::from(start), i64::from(end)) as Day,
                suspects: s,
                victims: v,
                place: rng.index(places),
            }
        })
        .collect();
    reports.sort_by_key(|r| r.date);
    reports
}

fn form_groups(rng: &mut Rng, people: &mut [Person], children: u32, total: u32) -> Vec<Group> {
    let mut free_adults: Vec<u32> = (children..total)
        .filter(|&i| people[i as usize].network.is_none())
        .collect();
    let mut free_children: Vec<u32> = (0..children)
        .filter(|&i| people[i as usize].network.is_none())
        .collect();
    rng.shuffle(&mut free_adults);
    rng.shuffle(&mut free_children);
    // Suspects first in the list, nine in ten of them men (as in recorded
    // CSE); associates and the uninvolved after.
    let n_suspects = free_adults.len() * 2 / 5;
    let (mut men, mut others): (Vec<u32>, Vec<u32>) = free_adults
        .iter()
        .partition(|&&i| people[i as usize].sex == Sex::Male);
    let mut ordered = Vec::with_capacity(free_adults.len());
    while ordered.len() < n_suspects && !(men.is_empty() && others.is_empty()) {
        let from_men = (rng.chance(0.9) && !men.is_empty()) || others.is_empty();
        let next = if from_men { men.pop() } else { others.pop() };
        ordered.extend(next);
    }
    ordered.append(&mut men);
    ordered.append(&mut others);
    rng.shuffle(&mut ordered[n_suspects.min(free_adults.len())..]);
    let free_adults = ordered;
    let n_associates = free_adults.len() / 4;
    let n_victims = (free_children.len() * 2 / 5)
        .max(1)
        .min(free_children.len());
    let mut groups = Vec::new();
    let mut victims = free_children[..n_victims].iter().copied();
    for &s in &free_adults[..n_suspects] {
        let mut g = Group {
            suspect: Some(s),
            ..Group::default()
        };
        for _ in 0..rng.between(1, 3) {
            if let Some(v) = victims.next() {
                g.victims.push(v);
            }
        }
        groups.push(g);
    }
    // Children left over were victims of crimes with no suspect identified.
    for v in victims {
        groups.push(Group {
            victims: vec![v],
            ..Group::default()
        });
    }
    if groups.is_empty() {
        groups.push(Group::default());
    }
    for &a in &free_adults[n_suspects..n_suspects + n_associates] {
        let g = rng.index(groups.len());
        groups[g].others.push(a);
    }
    for (gi, g) in groups.iter().enumerate() {
        let gi = gi as u32;
        if let Some(s) = g.suspect {
            let p = &mut people[s as usize];
            p.involvement = Involvement::BackgroundSuspect;
            p.group = Some(gi);
            // Realistic police data: many suspects' dates of birth are unknown.
            p.dob_known = rng.chance(0.7);
        }
        for &v in &g.victims {
            people[v as usize].involvement = Involvement::BackgroundVictim;
            people[v as usize].group = Some(gi);
        }
        for &o in &g.others {
            people[o as usize].involvement = Involvement::Associate;
            people[o as usize].group = Some(gi);
        }
    }
    groups
}

/// Hand out the 2,000 drama-range numbers: networks' shared phones first,
/// then adults (suspects before others), then children. When they run out,
/// the rest have no phone: a number is never given to two people.
fn hand_out_phones(rng: &mut Rng, people: &mut [Person], networks: &mut [Network]) {
    let mut pool: Vec<u32> = (0..PHONE_POOL).collect();
    rng.shuffle(&mut pool);
    let mut pool = pool.into_iter();
    for n in networks.iter_mut() {
        if !n.phone_users.is_empty() {
            n.phone = pool.next();
            if n.phone.is_none() {
                n.phone_users.clear();
            }
        }
    }
    let rank = |p: &Person| match (p.child, p.involvement) {
        (false, Involvement::NetworkSuspect) => 0,
        (false, Involvement::BackgroundSuspect) => 1,
        (false, _) => 2,
        (true, Involvement::NetworkVictim) => 3,
        (true, Involvement::BackgroundVictim) => 4,
        (true, _) => 5,
    };
    let mut order: Vec<u32> = (0..people.len() as u32).collect();
    order.sort_by_key(|&i| (rank(&people[i as usize]), i));
    for i in order {
        match pool.next() {
            Some(number) => people[i as usize].phone = Some(number),
            None => break,
        }
    }
}

/// Plates: one per network that shares a vehicle, and some adults' own.
fn hand_out_vehicles(rng: &mut Rng, people: &mut [Person], networks: &mut [Network]) {
    let mut used: HashSet<[u8; 7]> = HashSet::new();
    let mut fresh = |rng: &mut Rng| loop {
        let v = draw_vrm(rng);
        if used.insert(v) {
            break v;
        }
    };
    for n in networks.iter_mut() {
        if !n.vehicle_users.is_empty() {
            n.vehicle = Some(fresh(rng));
        }
    }
    for p in people.iter_mut().filter(|p| !p.child) {
        let share = match p.involvement {
            Involvement::NetworkSuspect => 0.7,
            Involvement::BackgroundSuspect => 0.5,
            _ => 0.45,
        };
        if rng.chance(share) {
            p.vrm = Some(fresh(rng));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worlds_are_reproducible_and_planted() {
        let a = World::new(7, Population::default()).expect("world");
        let b = World::new(7, Population::default()).expect("world");
        assert_eq!(a.people.len(), 4500);
        assert_eq!(a.networks.len(), 30);
        for (x, y) in a.people.iter().zip(&b.people) {
            assert_eq!(
                (x.family, x.given, x.dob, x.nhs),
                (y.family, y.given, y.dob, y.nhs)
            );
        }
        for n in &a.networks {
            assert!(n.suspects.len() >= 2 && !n.victims.is_empty());
            assert!(n.vehicle.is_some() || n.phone.is_some(), "{}", n.id());
            for c in &n.crimes {
                assert!(c.suspects.len() >= 2 && !c.victims.is_empty());
            }
        }
        for p in &a.people {
            let age_lo = age_on(p.dob, EVENT_START);
            let age_hi = age_on(p.dob, EVENT_END);
            if p.child {
                assert!(age_lo >= 10 && age_hi <= 17, "{age_lo}..{age_hi}");
            } else {
                assert!(age_lo >= 18 && age_hi <= 50, "{age_lo}..{age_hi}");
            }
        }
    }
}
