//! The network around a person: the people tied to them through shared
//! crimes, vehicles, phones and other linking tokens, bounded by
//! [`NetworkLimits`], and whether it is group-based.

use super::*;

/// How far a network query walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NetworkLimits {
    /// Hops from the person (1 = people sharing a link with them).
    pub max_depth: usize,
    /// People returned at most, the person included.
    pub max_people: usize,
}

impl Default for NetworkLimits {
    fn default() -> Self {
        NetworkLimits {
            max_depth: 3,
            max_people: 200,
        }
    }
}

/// One person in a network answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkPerson {
    /// Current person id.
    pub person_id: String,
    /// Hops from the person asked about.
    pub depth: usize,
    /// Roles across their records.
    pub roles: BTreeSet<String>,
    /// Agencies that know them.
    pub agencies: BTreeSet<String>,
    /// How many records they have.
    pub records: usize,
}

/// A shared link that ties two or more of the returned people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tie {
    /// `crime`, `intel`, `vehicle`, `phone`, … (the schema's `x-link`).
    pub kind: String,
    /// The shared value's token.
    pub token: String,
    /// The returned people who carry it.
    pub people: BTreeSet<String>,
}

/// The people tied to a person through shared links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonNetwork {
    /// The id asked for.
    pub requested: String,
    /// The person it resolved to (the walk's start).
    pub person_id: String,
    /// Whether `requested` was an alias (or a network id) of `person_id`.
    pub resolved_alias: bool,
    /// `n_` + the smallest returned person id; `None` when nobody is tied.
    pub network_id: Option<String>,
    /// Everyone reached, the person first, then by depth and id.
    pub people: Vec<NetworkPerson>,
    /// Links shared by two or more returned people.
    pub ties: Vec<Tie>,
    /// Returned people with a suspect role.
    pub suspects: usize,
    /// Returned people with a victim role.
    pub victims: usize,
    /// At least [`GROUP_MIN_SUSPECTS`] suspects and [`GROUP_MIN_VICTIMS`] victims.
    pub group_based: bool,
    /// The limits applied.
    pub limits: NetworkLimits,
    /// Whether a limit stopped the walk before the network ended.
    pub truncated: bool,
    /// Which limit, in words, when truncated.
    pub note: Option<String>,
}

/// Walk link tokens breadth-first from a person's records to the people who
/// share them, within `limits`. A network id (`n_…`) names its smallest
/// person, so it is accepted too.
pub fn person_network(
    store: &dyn RecordStore,
    catalog: &Catalog,
    id: &str,
    limits: NetworkLimits,
) -> Result<PersonNetwork, QueryError> {
    let as_person = match id.strip_prefix("n_") {
        Some(tail) if is_base32_tail(tail) => format!("p_{tail}"),
        _ => id.to_owned(),
    };
    let (start, first) = resolve(store, &as_person)?;
    let max_people = limits.max_people.max(1);
    let mut depth_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut records_of: HashMap<String, Vec<StoredRecord>> = HashMap::new();
    let mut seen_tokens: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<String> = VecDeque::new();
    let (mut hit_depth, mut hit_size) = (false, false);
    depth_of.insert(start.clone(), 0);
    order.push(start.clone());
    records_of.insert(start.clone(), first);
    queue.push_back(start.clone());
    while let Some(person) = queue.pop_front() {
        let depth = depth_of[&person];
        let tokens: BTreeSet<String> = records_of[&person]
            .iter()
            .flat_map(|r| r.links.iter().map(|l| l.token.clone()))
            .collect();
        for token in tokens {
            if !seen_tokens.insert(token.clone()) {
                continue;
            }
            for r in store.records_with_link(&token)? {
                // An investigation shares its crimes' references but is
                // about no one: it never joins a network as a person.
                if depth_of.contains_key(&r.person_id)
                    || catalog
                        .get(&r.dataset)
                        .is_some_and(|d| !d.is_about_people())
                {
                    continue;
                }
                if depth >= limits.max_depth {
                    // Only looked up to say whether the limit hid anyone.
                    hit_depth = true;
                    continue;
                }
                if depth_of.len() >= max_people {
                    hit_size = true;
                    continue;
                }
                let other = r.person_id.clone();
                depth_of.insert(other.clone(), depth + 1);
                order.push(other.clone());
                records_of.insert(other.clone(), store.records_of_person(&other)?);
                queue.push_back(other);
            }
        }
    }

    let all: Vec<&StoredRecord> = records_of.values().flatten().collect();
    let net = network::networks(all.iter().copied(), |dsid| {
        catalog
            .get(dsid)
            .and_then(|d| d.field_for("person_role"))
            .map(|f| f.name.clone())
    })
    .map_err(StoreError::from)?
    .into_iter()
    .next();
    let mut holders: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for r in &all {
        for l in &r.links {
            holders
                .entry((l.kind.clone(), l.token.clone()))
                .or_default()
                .insert(r.person_id.clone());
        }
    }
    let ties = holders
        .into_iter()
        .filter(|(_, people)| people.len() > 1)
        .map(|((kind, token), people)| Tie {
            kind,
            token,
            people,
        })
        .collect();
    let people = order
        .iter()
        .map(|p| {
            let recs = &records_of[p];
            Ok(NetworkPerson {
                person_id: p.clone(),
                depth: depth_of[p],
                roles: recs
                    .iter()
                    .map(|r| {
                        let body = parsed(r)?;
                        Ok(record_role(&body, role_field(catalog, r, &body).as_deref()))
                    })
                    .collect::<Result<_, QueryError>>()?,
                agencies: recs.iter().map(|r| r.agency.clone()).collect(),
                records: recs.len(),
            })
        })
        .collect::<Result<_, QueryError>>()?;
    let note = match (hit_depth, hit_size) {
        (false, false) => None,
        (true, false) => Some(format!(
            "stopped at depth {}: more people are tied beyond it (raise --max-depth)",
            limits.max_depth
        )),
        (false, true) => Some(format!(
            "stopped at {max_people} people: the network is larger (raise --max-people)"
        )),
        (true, true) => Some(format!(
            "stopped at depth {} and at {max_people} people: the network is larger",
            limits.max_depth
        )),
    };
    Ok(PersonNetwork {
        resolved_alias: start != id,
        requested: id.to_owned(),
        person_id: start,
        network_id: net.as_ref().map(|n| n.id.clone()),
        people,
        ties,
        suspects: net.as_ref().map_or(0, |n| n.suspects.len()),
        victims: net.as_ref().map_or(0, |n| n.victims.len()),
        group_based: net
            .as_ref()
            .is_some_and(|n| is_group(n, GROUP_MIN_SUSPECTS, GROUP_MIN_VICTIMS)),
        limits: NetworkLimits {
            max_depth: limits.max_depth,
            max_people,
        },
        truncated: note.is_some(),
        note,
    })
}
