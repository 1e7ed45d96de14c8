//! Networks: two people are tied when their records share a link token (the
//! same crime or intelligence report, the same vehicle or phone). A network
//! is a connected component of that graph; group-based exploitation is a
//! network with at least two suspects and at least one victim.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::ports::{BodyError, StoredRecord};

/// The role a record gives its person, read from the `person_role` concept
/// (victim, suspect, …); datasets without one are about the child.
/// `body` is the record's parsed body.
pub fn record_role(body: &serde_json::Value, role_field: Option<&str>) -> String {
    role_field
        .and_then(|f| body.get("fields").and_then(|fs| fs.get(f)))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("subject")
        .to_owned()
}

/// A connected group of people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Network {
    /// Deterministic id: the smallest person id in it, prefixed `n_`.
    pub id: String,
    /// People with a suspect role in any record.
    pub suspects: BTreeSet<String>,
    /// People with a victim role in any record.
    pub victims: BTreeSet<String>,
    /// Everyone in it.
    pub people: BTreeSet<String>,
    /// Shared link tokens by kind (crime, intel, vehicle, phone).
    pub links: BTreeMap<String, BTreeSet<String>>,
}

/// Build networks from records; `role_field(dataset)` names each dataset's
/// person_role field. Only components of two or more people are returned.
/// Fails only when a record's stored body is corrupt.
pub fn networks<'a>(
    records: impl IntoIterator<Item = &'a StoredRecord>,
    role_field: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Network>, BodyError> {
    let mut parent: HashMap<String, String> = HashMap::new();
    fn find(parent: &mut HashMap<String, String>, x: &str) -> String {
        let mut cur = x.to_owned();
        loop {
            let p = parent.get(&cur).cloned().unwrap_or_else(|| cur.clone());
            if p == cur {
                return cur;
            }
            let gp = parent.get(&p).cloned().unwrap_or_else(|| p.clone());
            parent.insert(cur.clone(), gp.clone());
            cur = gp;
        }
    }
    let mut by_token: HashMap<&str, (&str, &str)> = HashMap::new();
    let mut roles: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut token_kind: Vec<(&str, &str, &str)> = Vec::new();
    let mut role_cache: HashMap<String, Option<String>> = HashMap::new();
    for r in records {
        let rf = role_cache
            .entry(r.dataset.clone())
            .or_insert_with(|| role_field(&r.dataset))
            .clone();
        roles
            .entry(r.person_id.clone())
            .or_default()
            .insert(record_role(&r.body.parse()?, rf.as_deref()));
        parent
            .entry(r.person_id.clone())
            .or_insert_with(|| r.person_id.clone());
        for l in &r.links {
            token_kind.push((l.token.as_str(), l.kind.as_str(), r.person_id.as_str()));
            match by_token.get(l.token.as_str()) {
                Some(&(_, other)) => {
                    let (a, b) = (find(&mut parent, other), find(&mut parent, &r.person_id));
                    if a != b {
                        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                        parent.insert(hi, lo);
                    }
                }
                None => {
                    by_token.insert(l.token.as_str(), (l.kind.as_str(), r.person_id.as_str()));
                }
            }
        }
    }
    let people: Vec<String> = parent.keys().cloned().collect();
    let mut comps: BTreeMap<String, Network> = BTreeMap::new();
    for p in people {
        let root = find(&mut parent, &p);
        let n = comps.entry(root.clone()).or_insert_with(|| Network {
            id: format!("n_{}", root.trim_start_matches("p_")),
            suspects: BTreeSet::new(),
            victims: BTreeSet::new(),
            people: BTreeSet::new(),
            links: BTreeMap::new(),
        });
        let r = roles.get(&p).cloned().unwrap_or_default();
        if r.contains("suspect") {
            n.suspects.insert(p.clone());
        }
        if r.contains("victim") {
            n.victims.insert(p.clone());
        }
        n.people.insert(p);
    }
    // A token is "shared" when more than one person carries it.
    let mut holders: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for (t, _, p) in &token_kind {
        holders.entry(t).or_default().insert(p);
    }
    for (t, k, p) in &token_kind {
        if holders.get(t).is_some_and(|h| h.len() > 1) {
            let root = find(&mut parent, p);
            if let Some(n) = comps.get_mut(&root) {
                n.links
                    .entry((*k).to_owned())
                    .or_default()
                    .insert((*t).to_owned());
            }
        }
    }
    Ok(comps.into_values().filter(|n| n.people.len() > 1).collect())
}

/// Whether a network is group-based exploitation under the thresholds.
pub fn is_group(n: &Network, min_suspects: usize, min_victims: usize) -> bool {
    n.suspects.len() >= min_suspects && n.victims.len() >= min_victims
}
