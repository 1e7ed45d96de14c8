//! Linkage: people are the connected components of records that share any
//! match key.
//!
//! Person ids (documented rule, stable across runs):
//! - a new person's id is `p_` + base32(SHA-256("agencylink/v1/person|" + the
//!   smallest match key among the records that create it)), or of the record
//!   id when the record carries no match key;
//! - when records join two or more existing people, the smallest of their
//!   ids survives and every other id becomes an alias of it, so an analyst's
//!   saved id still resolves;
//! - when a corrected record drops the key that held a person together (or
//!   a withdrawn upload took it away), the part whose smallest key gave the
//!   person its id keeps it (else the part holding the person's smallest
//!   key) and each other part gets a new id by the first rule (an alias
//!   would point at the wrong child).

use std::collections::{BTreeMap, BTreeSet};

// foldhash, not SipHash: the maps hold keys and ids of the upload's own
// records (no outside party picks them to collide) and are hashed several
// times a record on the merge thread, the ingest's critical path.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use crate::curate::short_hash;
use crate::linkage::{LinkModel, LinkOutcome, current_model};
use crate::ports::{RecordStore, SignatureEntry, StoreResult, StoredRecord, WriteBatch};

/// What merging one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MergeStats {
    /// Records new to the store.
    pub inserted: u64,
    /// Records that replaced an earlier version (content changed).
    pub replaced: u64,
    /// `replaced` by the upload that wrote the version each replacement
    /// superseded (the merging upload itself for a record given twice in
    /// one upload). Lineage keeps it so reconciliation can say how many of
    /// each upload's records the store should still hold.
    pub replaced_from: BTreeMap<String, u64>,
    /// Records identical to what the store has.
    pub unchanged: u64,
    /// Records that joined a person already known from another record.
    pub linked: u64,
}

fn count_replaced(from: &mut BTreeMap<String, u64>, upload: &str) {
    // Most replacements in a batch supersede one earlier upload: look up
    // before allocating its id.
    match from.get_mut(upload) {
        Some(n) => *n += 1,
        None => {
            from.insert(upload.to_owned(), 1);
        }
    }
}

/// The id a new person gets from its anchor (smallest key or record id).
pub fn person_id_for(anchor: &str) -> String {
    format!(
        "p_{}",
        short_hash(&[b"agencylink/v1/person|", anchor.as_bytes()], 12)
    )
}

struct Dsu {
    parent: Vec<usize>,
}

impl Dsu {
    fn new() -> Self {
        Dsu { parent: Vec::new() }
    }
    fn add(&mut self) -> usize {
        self.parent.push(self.parent.len());
        self.parent.len() - 1
    }
    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.parent[a.max(b)] = a.min(b);
        }
    }
}

/// Whether a new version of a record says exactly what the stored one does
/// (compared directly, so no hash collision can hide a correction).
fn same_content(old: &StoredRecord, new: &StoredRecord) -> bool {
    old.body.content() == new.body.content()
        && old.match_keys == new.match_keys
        && old.links == new.links
        && old.event_date == new.event_date
}

/// Merge curated records (person ids unset) into the store, by exact
/// match keys only.
pub fn merge(store: &dyn RecordStore, incoming: Vec<StoredRecord>) -> StoreResult<MergeStats> {
    merge_exact(
        store,
        incoming,
        &mut Vec::new(),
        &mut Vec::new(),
        &mut |_| Ok(()),
    )
}

/// (signature, person) pairs one upload has already put in the linkage
/// index are not put again; past this many the set is forgotten and the
/// index's own answer is relied on, so memory stays bounded.
const SEEN_CAP: usize = 1 << 20;

/// One upload's probabilistic linkage: the model, and what it did so far.
#[derive(Debug)]
pub struct LinkSession {
    upload_id: String,
    model: Option<LinkModel>,
    seen: HashSet<(String, String)>,
    // Signatures this upload compared and linked to no one: a later record
    // with the same signature would be compared the same way.
    alone: HashSet<String>,
    queue: Option<crate::linkage::QueueState>,
    /// What the probabilistic stage did across the upload's batches.
    pub outcome: LinkOutcome,
}

impl LinkSession {
    /// A session for one upload.
    pub fn new(upload_id: &str) -> Self {
        LinkSession {
            upload_id: upload_id.to_owned(),
            model: None,
            seen: HashSet::new(),
            alone: HashSet::new(),
            queue: None,
            outcome: LinkOutcome::default(),
        }
    }

    /// The model the session scores with, once it has loaded one.
    pub fn model(&self) -> Option<&LinkModel> {
        self.model.as_ref()
    }
}

/// Merge curated records by exact match keys, then link their signatures
/// probabilistically when the store keeps a linkage index.
pub fn merge_and_link(
    store: &dyn RecordStore,
    incoming: Vec<StoredRecord>,
    session: &mut LinkSession,
) -> StoreResult<MergeStats> {
    merge_and_link_returning(store, incoming, session, &mut Vec::new())
}

/// [`merge_and_link`], handing the records it is done with to `spent`
/// instead of dropping them, so a caller can free them on the thread that
/// allocated them: ingest's curating thread frees them there as local
/// frees, which its next rows' allocations reuse, rather than the merging
/// thread paying for cross-thread frees on the critical path.
pub fn merge_and_link_returning(
    store: &dyn RecordStore,
    incoming: Vec<StoredRecord>,
    session: &mut LinkSession,
    spent: &mut Vec<StoredRecord>,
) -> StoreResult<MergeStats> {
    merge_and_link_planned(store, incoming, session, spent, &mut |_| Ok(()))
}

/// [`merge_and_link_returning`], calling `plan` with what the exact merge
/// is about to do just before its first write (not at all when the batch
/// changes nothing): ingest keeps it as the batch's
/// [`MergeMark`](crate::ports::MergeMark), so a retry after a crash
/// mid-batch counts the batch as the first attempt found it.
pub fn merge_and_link_planned(
    store: &dyn RecordStore,
    incoming: Vec<StoredRecord>,
    session: &mut LinkSession,
    spent: &mut Vec<StoredRecord>,
    plan: &mut dyn FnMut(&MergeStats) -> StoreResult<()>,
) -> StoreResult<MergeStats> {
    let mut entries = Vec::new();
    let stats = merge_exact(store, incoming, &mut entries, spent, plan)?;
    let Some(linkage) = store.linkage() else {
        return Ok(stats);
    };
    if entries.is_empty() {
        return Ok(stats);
    }
    if session.seen.len() > SEEN_CAP {
        session.seen.clear();
    }
    if session.alone.len() > SEEN_CAP {
        session.alone.clear();
    }
    let before = entries.len();
    entries.retain(|e| !session.alone.contains(&e.signature.id));
    session.outcome.repeats_not_compared += (before - entries.len()) as u64;
    entries.retain(|e| {
        session
            .seen
            .insert((e.signature.id.clone(), e.person_id.clone()))
    });
    if entries.is_empty() {
        return Ok(stats);
    }
    let fresh = linkage.put_signatures(&entries)?;
    let new: Vec<SignatureEntry> = entries
        .into_iter()
        .zip(fresh)
        .filter_map(|(e, f)| f.then_some(e))
        .collect();
    if new.is_empty() {
        return Ok(stats);
    }
    let model = match &session.model {
        Some(m) => m,
        None => session.model.insert(current_model(linkage)?),
    };
    let queue = match &mut session.queue {
        Some(q) => q,
        None => session
            .queue
            .insert(crate::linkage::QueueState::load(linkage)?),
    };
    let (outcome, joined) = crate::linkage::link_new_joined(
        store,
        linkage,
        model,
        &new,
        &session.upload_id,
        Some(queue),
    )?;
    session.outcome.add(&outcome);
    for e in &new {
        if !joined.contains(&e.person_id) {
            session.alone.insert(e.signature.id.clone());
        }
    }
    Ok(stats)
}

/// Move every record of `losers` to `winner` and leave an alias from each
/// loser, as exact linkage does when a record joins two people. Returns the
/// records moved.
pub fn merge_people(store: &dyn RecordStore, winner: &str, losers: &[String]) -> StoreResult<u64> {
    let mut batch = WriteBatch::default();
    let mut moved = 0;
    for loser in losers.iter().filter(|l| l.as_str() != winner) {
        batch.aliases.push((loser.clone(), winner.to_owned()));
        for mut r in store.records_of_person(loser)? {
            r.person_id = winner.to_owned();
            for k in &r.match_keys {
                batch.key_owners.push((k.clone(), winner.to_owned()));
            }
            batch.records.push(r);
            moved += 1;
        }
    }
    if !batch.is_empty() {
        store.apply(&batch)?;
    }
    Ok(moved)
}

/// [`merge`], handing back each changed record's signature with the
/// person it was given.
fn merge_exact(
    store: &dyn RecordStore,
    incoming: Vec<StoredRecord>,
    entries: &mut Vec<SignatureEntry>,
    spent: &mut Vec<StoredRecord>,
    plan: &mut dyn FnMut(&MergeStats) -> StoreResult<()>,
) -> StoreResult<MergeStats> {
    let mut stats = MergeStats::default();
    // Within one batch the last row for a record id wins, as a later upload would.
    // (Borrowed ids: a batch is all records new to the map, so owned keys
    // were one allocation and copy a record for nothing.)
    let keep: Option<Vec<bool>> = {
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(incoming.len());
        for (i, r) in incoming.iter().enumerate() {
            if last.insert(r.record_id.as_str(), i).is_some() {
                stats.replaced += 1;
                count_replaced(&mut stats.replaced_from, &r.upload_id);
            }
        }
        (last.len() != incoming.len()).then(|| {
            incoming
                .iter()
                .enumerate()
                .map(|(i, r)| last.get(r.record_id.as_str()) == Some(&i))
                .collect()
        })
    };
    let mut incoming: Vec<StoredRecord> = match keep {
        // No id twice (the usual batch): keep the vector as it is.
        None => incoming,
        Some(keep) => incoming
            .into_iter()
            .zip(keep)
            .filter_map(|(r, k)| k.then_some(r))
            .collect(),
    };
    let ids: Vec<String> = incoming.iter().map(|r| r.record_id.clone()).collect();
    let existing = store.get_records(&ids)?;
    let mut changed = Vec::new();
    let mut old_versions = Vec::new();
    for (mut r, old) in incoming.drain(..).zip(existing) {
        match old {
            Some(old) if same_content(&old, &r) => {
                stats.unchanged += 1;
                spent.push(r);
                spent.push(old);
            }
            Some(old) => {
                stats.replaced += 1;
                count_replaced(&mut stats.replaced_from, &old.upload_id);
                r.person_id = old.person_id.clone();
                old_versions.push(old);
                changed.push(r);
            }
            None => {
                stats.inserted += 1;
                changed.push(r);
            }
        }
    }
    if changed.is_empty() {
        return Ok(stats);
    }

    // Union-find over records, keys and the people that already own keys.
    let mut dsu = Dsu::new();
    let mut key_node: HashMap<String, usize> = HashMap::new();
    let rec_nodes: Vec<usize> = changed.iter().map(|_| dsu.add()).collect();
    let all_keys: Vec<String> = changed
        .iter()
        .flat_map(|r| r.match_keys.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for k in &all_keys {
        key_node.insert(k.clone(), dsu.add());
    }
    for (r, &n) in changed.iter().zip(&rec_nodes) {
        for k in &r.match_keys {
            dsu.union(n, key_node[k]);
        }
    }
    let owners = store.key_owners(&all_keys)?;
    let mut person_node: HashMap<String, usize> = HashMap::new();
    for (k, p) in &owners {
        let pn = *person_node.entry(p.clone()).or_insert_with(|| dsu.add());
        dsu.union(key_node[k], pn);
    }
    // A replaced record stays with its person unless its keys say otherwise.
    for (r, &n) in changed.iter().zip(&rec_nodes) {
        if !r.person_id.is_empty() && r.match_keys.is_empty() {
            let pn = *person_node
                .entry(r.person_id.clone())
                .or_insert_with(|| dsu.add());
            dsu.union(n, pn);
        }
    }

    // Decide each component's person id.
    let mut comp_people: HashMap<usize, BTreeSet<String>> = HashMap::new();
    for (p, &n) in &person_node {
        comp_people
            .entry(dsu.find(n))
            .or_default()
            .insert(p.clone());
    }
    let mut comp_anchor: HashMap<usize, String> = HashMap::new();
    for (r, &n) in changed.iter().zip(&rec_nodes) {
        let root = dsu.find(n);
        let anchor = r
            .match_keys
            .iter()
            .min()
            .cloned()
            .unwrap_or_else(|| r.record_id.clone());
        comp_anchor
            .entry(root)
            .and_modify(|a| {
                if anchor < *a {
                    a.clone_from(&anchor);
                }
            })
            .or_insert(anchor);
    }
    let mut batch = WriteBatch::default();
    let mut comp_id: HashMap<usize, String> = HashMap::new();
    for (&root, anchor) in &comp_anchor {
        let id = match comp_people.get(&root) {
            Some(people) => {
                let winner = people
                    .iter()
                    .next()
                    .cloned()
                    .unwrap_or_else(|| person_id_for(anchor));
                for loser in people.iter().skip(1) {
                    batch.aliases.push((loser.clone(), winner.clone()));
                }
                winner
            }
            None => person_id_for(anchor),
        };
        comp_id.insert(root, id);
    }
    // A record is "linked" when it joins a person some other record
    // established: every record of a component that meets a stored person,
    // and all but the first of a component new in this batch. Counted so,
    // the total does not depend on where batch boundaries fall.
    let mut first_of_new: HashSet<usize> = HashSet::new();
    for (r, &n) in changed.iter_mut().zip(&rec_nodes) {
        let root = dsu.find(n);
        if comp_people.get(&root).is_some_and(|p| !p.is_empty()) || !first_of_new.insert(root) {
            stats.linked += 1;
        }
        r.person_id = comp_id[&root].clone();
    }
    // Merged-away people: move their records and keys to the winner.
    let mut moved: HashSet<String> = HashSet::new();
    let changed_ids: HashSet<&str> = changed.iter().map(|r| r.record_id.as_str()).collect();
    let mut relabelled = Vec::new();
    for (loser, winner) in &batch.aliases {
        for mut r in store.records_of_person(loser)? {
            if changed_ids.contains(r.record_id.as_str()) || !moved.insert(r.record_id.clone()) {
                continue;
            }
            r.person_id.clone_from(winner);
            relabelled.push(r);
        }
    }
    for r in changed.iter().chain(&relabelled) {
        for k in &r.match_keys {
            // Most keys already belong to the right person: don't rewrite them.
            if owners.get(k) != Some(&r.person_id) {
                batch.key_owners.push((k.clone(), r.person_id.clone()));
            }
        }
    }
    // Keys that replaced records no longer carry may now belong to nobody.
    let mut dropped: BTreeSet<String> = BTreeSet::new();
    for old in &old_versions {
        for k in &old.match_keys {
            if !all_keys.contains(k) {
                dropped.insert(k.clone());
            }
        }
    }
    let split_people: BTreeSet<String> = old_versions
        .iter()
        .filter(|o| o.match_keys.iter().any(|k| dropped.contains(k)))
        .map(|o| o.person_id.clone())
        .collect();
    for r in &changed {
        if let Some(sig) = &r.signature {
            entries.push(SignatureEntry {
                signature: sig.clone(),
                person_id: r.person_id.clone(),
                record_id: r.record_id.clone(),
            });
        }
    }
    batch.records = changed;
    batch.records.extend(relabelled);
    plan(&stats)?;
    store.apply(&batch)?;
    spent.append(&mut batch.records);
    spent.append(&mut old_versions);

    if !dropped.is_empty() {
        let mut cleanup = WriteBatch::default();
        for k in &dropped {
            if store.records_with_key(k)?.is_empty() {
                cleanup.key_removals.push(k.clone());
            }
        }
        store.apply(&cleanup)?;
        for person in split_people {
            resplit(store, &person)?;
        }
    }
    Ok(stats)
}

/// Re-derive the components of one person's records after a key was
/// dropped (or a record withdrawn): the part whose smallest key gave the
/// person its id keeps it (else the part holding the smallest key), each
/// other part gets the id of its own smallest key. Returns the new ids.
pub(crate) fn resplit(store: &dyn RecordStore, person: &str) -> StoreResult<Vec<String>> {
    let records = store.records_of_person(person)?;
    if records.len() < 2 {
        return Ok(Vec::new());
    }
    let mut dsu = Dsu::new();
    let nodes: Vec<usize> = records.iter().map(|_| dsu.add()).collect();
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    for (r, &n) in records.iter().zip(&nodes) {
        for k in &r.match_keys {
            match by_key.get(k.as_str()) {
                Some(&m) => dsu.union(n, m),
                None => {
                    by_key.insert(k, n);
                }
            }
        }
    }
    let mut parts: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, &n) in nodes.iter().enumerate() {
        parts.entry(dsu.find(n)).or_default().push(i);
    }
    if parts.len() < 2 {
        return Ok(Vec::new());
    }
    let anchor = |idx: &Vec<usize>| {
        idx.iter()
            .flat_map(|&i| records[i].match_keys.iter().cloned())
            .min()
            .unwrap_or_else(|| records[idx[0]].record_id.clone())
    };
    let mut ordered: Vec<(String, Vec<usize>)> =
        parts.into_values().map(|p| (anchor(&p), p)).collect();
    ordered.sort();
    // The part whose own anchor gave the person its id keeps it, when one
    // does (else the part with the smallest key): otherwise that part,
    // split off, would be given the id again by the first rule, and two
    // people would share it.
    if let Some(at) = ordered
        .iter()
        .position(|(anchor, _)| person_id_for(anchor) == person)
    {
        let keeper = ordered.remove(at);
        ordered.insert(0, keeper);
    }
    let mut batch = WriteBatch::default();
    let mut new_ids = Vec::new();
    for (anchor, idx) in ordered.into_iter().skip(1) {
        let id = person_id_for(&anchor);
        new_ids.push(id.clone());
        for i in idx {
            let mut r = records[i].clone();
            r.person_id.clone_from(&id);
            for k in &r.match_keys {
                batch.key_owners.push((k.clone(), id.clone()));
            }
            batch.records.push(r);
        }
    }
    store.apply(&batch)?;
    Ok(new_ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::sample_record;
    use crate::memory::MemoryRecordStore;
    use crate::ports::RecordStoreExt;

    fn rec(id: &str, keys: &[&str]) -> StoredRecord {
        sample_record(id, "", "ds", "2025-01-01", keys, &[])
    }

    #[test]
    fn shared_keys_link_and_merges_keep_aliases() {
        let store = MemoryRecordStore::default();
        let s = merge(&store, vec![rec("a", &["k1"]), rec("b", &["k2"])]).expect("merge");
        assert_eq!((s.inserted, s.linked), (2, 0));
        // Two records of one new person in one batch: the second links, as
        // it would had the batches been split between them.
        let one = MemoryRecordStore::default();
        let s = merge(&one, vec![rec("x", &["kx"]), rec("y", &["kx"])]).expect("merge");
        assert_eq!((s.inserted, s.linked), (2, 1));
        let pa = store.get_record("a").expect("get").expect("a").person_id;
        let pb = store.get_record("b").expect("get").expect("b").person_id;
        assert_ne!(pa, pb);
        // c carries both keys: a and b are one person now.
        let s = merge(&store, vec![rec("c", &["k1", "k2"])]).expect("merge");
        assert_eq!((s.inserted, s.linked), (1, 1));
        let winner = pa.clone().min(pb.clone());
        for id in ["a", "b", "c"] {
            assert_eq!(
                store.get_record(id).expect("get").expect("rec").person_id,
                winner
            );
        }
        let loser = if winner == pa { pb } else { pa };
        assert_eq!(
            store.resolve_person(&loser).expect("resolve"),
            winner,
            "old id resolves"
        );
        // Same content again changes nothing.
        let s = merge(&store, vec![rec("c", &["k1", "k2"])]).expect("merge");
        assert_eq!((s.inserted, s.replaced, s.unchanged), (0, 0, 1));
    }

    #[test]
    fn a_corrected_record_can_split_a_person() {
        let store = MemoryRecordStore::default();
        merge(
            &store,
            vec![
                rec("a", &["k1"]),
                rec("b", &["k2"]),
                rec("c", &["k1", "k2"]),
            ],
        )
        .expect("merge");
        let before = store.get_record("a").expect("get").expect("a").person_id;
        // The bridging record was wrong: it now only carries k3.
        let s = merge(&store, vec![rec("c", &["k3"])]).expect("merge");
        assert_eq!(s.replaced, 1);
        let p = |id: &str| store.get_record(id).expect("get").expect("rec").person_id;
        assert_ne!(p("a"), p("b"), "a and b are no longer linked");
        assert_ne!(p("c"), p("a"));
        assert!(
            p("a") == before || p("b") == before,
            "one part keeps the id"
        );
    }

    #[test]
    fn records_without_keys_are_their_own_people() {
        let store = MemoryRecordStore::default();
        merge(&store, vec![rec("x", &[]), rec("y", &[])]).expect("merge");
        let p = |id: &str| store.get_record(id).expect("get").expect("rec").person_id;
        assert_ne!(p("x"), p("y"));
        assert_eq!(p("x"), person_id_for("x"));
    }
}
