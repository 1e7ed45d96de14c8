//! The incremental probabilistic stage: signatures new to the index are
//! compared with the signatures that share a blocking key, never with the
//! whole store, and each pair is linked, queued for review, or left apart.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::model::{LinkModel, compare};
use super::review::{Decision, ReviewItem, ReviewStatus, review_id};
use crate::link::merge_people;
use crate::ports::{
    LinkageStore, RecordStore, RecordStoreExt, SignatureEntry, StoreError, StoreResult,
    StoredSignature,
};

/// Blocks holding more signatures than this are skipped (and counted): a
/// key that common says little, and comparing it would be quadratic.
pub const MAX_BLOCK: usize = 500;

/// What one probabilistic pass did.
///
/// Lineage reads it back from events written before some counts existed:
/// a count the event lacks reads as 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinkOutcome {
    /// (signature, person) pairs new to the index, each compared.
    pub signatures_new: u64,
    /// Candidate pairs scored: (new signature, person of a signature
    /// sharing a blocking key), less those already the same person when
    /// the pair scored high enough to matter.
    pub pairs_compared: u64,
    /// Pairs linked because their probability reached the match threshold.
    pub linked_by_score: u64,
    /// Pairs linked because an analyst decided they match.
    pub linked_by_review: u64,
    /// Pairs newly queued for clerical review.
    pub queued_for_review: u64,
    /// Pairs kept apart by an analyst's non-match decision.
    pub kept_apart_by_review: u64,
    /// Pairs that scored a match but whose people carry different NHS
    /// numbers or UPNs: queued for review instead of linked.
    pub kept_apart_by_identifier: u64,
    /// Blocking keys skipped because their block was too large.
    pub oversized_blocks: u64,
    /// Records whose signature this upload had already compared and linked
    /// to no one: comparing it again would give the same answer, so it is
    /// not compared again. Most are further records of a person the exact
    /// keys already hold; the others stay their own people, as the first
    /// did (typically a suspect police never had a date of birth for, one
    /// record per crime).
    pub repeats_not_compared: u64,
}

impl LinkOutcome {
    /// Add another pass's counts.
    pub fn add(&mut self, o: &LinkOutcome) {
        self.signatures_new += o.signatures_new;
        self.pairs_compared += o.pairs_compared;
        self.linked_by_score += o.linked_by_score;
        self.linked_by_review += o.linked_by_review;
        self.queued_for_review += o.queued_for_review;
        self.kept_apart_by_review += o.kept_apart_by_review;
        self.kept_apart_by_identifier += o.kept_apart_by_identifier;
        self.oversized_blocks += o.oversized_blocks;
        self.repeats_not_compared += o.repeats_not_compared;
    }
}

/// The model in force: the stored one, or the built-in defaults.
pub fn current_model(linkage: &dyn LinkageStore) -> StoreResult<LinkModel> {
    Ok(linkage.model()?.unwrap_or_else(LinkModel::default_model))
}

/// Current person ids through aliases, and the people this pass joined.
struct People<'a> {
    store: &'a dyn RecordStore,
    resolved: HashMap<String, String>,
    parent: HashMap<String, String>,
    // Each root's NHS-number and UPN tokens, loaded when a pair of it
    // first scores a match.
    ids: HashMap<String, BTreeSet<String>>,
}

/// Field-token kinds that identify one person for certain: two people who
/// each carry one, and no value in common, are different people however
/// alike their names and dates of birth.
const STRONG_KINDS: [&str; 2] = ["nhs_number:", "upn:"];

impl<'a> People<'a> {
    fn new(store: &'a dyn RecordStore) -> Self {
        People {
            store,
            resolved: HashMap::new(),
            parent: HashMap::new(),
            ids: HashMap::new(),
        }
    }

    /// The NHS-number and UPN tokens on a root's records (by this pass's
    /// joins too).
    fn strong_ids(&mut self, root: &str) -> StoreResult<&BTreeSet<String>> {
        if !self.ids.contains_key(root) {
            let mut found = BTreeSet::new();
            for r in self.store.records_of_person(root)? {
                let body = r.body.parse()?;
                if let Some(fields) = body.get("fields").and_then(|f| f.as_object()) {
                    for v in fields.values().filter_map(|v| v.as_str()) {
                        if STRONG_KINDS.iter().any(|k| v.starts_with(k)) {
                            found.insert(v.to_owned());
                        }
                    }
                }
            }
            self.ids.insert(root.to_owned(), found);
        }
        Ok(&self.ids[root])
    }

    /// Whether two roots carry different NHS numbers (or UPNs) and none in
    /// common.
    fn conflict(&mut self, a: &str, b: &str) -> StoreResult<bool> {
        let ia = self.strong_ids(a)?.clone();
        let ib = self.strong_ids(b)?;
        Ok(STRONG_KINDS.iter().any(|k| {
            let of = |s: &BTreeSet<String>| -> BTreeSet<String> {
                s.iter().filter(|v| v.starts_with(k)).cloned().collect()
            };
            let (x, y) = (of(&ia), of(ib));
            !x.is_empty() && !y.is_empty() && x.is_disjoint(&y)
        }))
    }

    /// The id `p` resolves to in the store, then through this pass's joins.
    fn find(&mut self, p: &str) -> StoreResult<String> {
        let mut id = match self.resolved.get(p) {
            Some(r) => r.clone(),
            None => {
                let r = self.store.resolve_person(p)?;
                self.resolved.insert(p.to_owned(), r.clone());
                r
            }
        };
        while let Some(next) = self.parent.get(&id) {
            id = next.clone();
        }
        Ok(id)
    }

    /// Join two roots; the smaller id survives, as in exact linkage.
    fn union(&mut self, a: &str, b: &str) -> StoreResult<()> {
        // Load both sides' identifiers first, so the survivor's set is whole.
        self.strong_ids(a)?;
        self.strong_ids(b)?;
        let (win, lose) = if a <= b { (a, b) } else { (b, a) };
        self.parent.insert(lose.to_owned(), win.to_owned());
        // The survivor carries both sides' identifiers from now on.
        if let Some(lost) = self.ids.remove(lose) {
            self.ids.entry(win.to_owned()).or_default().extend(lost);
        }
        Ok(())
    }
}

/// What the review queue says, read once per upload: which pairs are
/// queued already, which are decided, and which people were decided apart.
/// Items this upload queues are added as it goes.
#[derive(Debug, Default)]
pub(crate) struct QueueState {
    known: HashSet<String>,
    decided: HashMap<String, ReviewStatus>,
    apart: Apart,
}

impl QueueState {
    pub(crate) fn load(linkage: &dyn LinkageStore) -> StoreResult<Self> {
        let items = linkage.review_items()?;
        Ok(QueueState {
            known: items.iter().map(|i| i.id.clone()).collect(),
            decided: items
                .iter()
                .filter(|i| !i.status.is_pending())
                .map(|i| (i.id.clone(), i.status))
                .collect(),
            apart: Apart {
                pairs: items
                    .iter()
                    .filter(|i| i.status == ReviewStatus::NonMatch)
                    .map(|i| (i.people[0].clone(), i.people[1].clone()))
                    .collect(),
            },
        })
    }
}

/// Non-match decisions as pairs of people, checked against this pass's joins.
#[derive(Debug, Default)]
struct Apart {
    pairs: Vec<(String, String)>,
}

impl Apart {
    fn forbids(&self, people: &mut People<'_>, a: &str, b: &str) -> StoreResult<bool> {
        for (x, y) in &self.pairs {
            let (x, y) = (people.find(x)?, people.find(y)?);
            if (x == a && y == b) || (x == b && y == a) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Compare each new (signature, person) with its blocks' signatures and
/// link, queue or leave each pair. `entries` are the ones
/// [`LinkageStore::put_signatures`] reported new.
pub fn link_new(
    records: &dyn RecordStore,
    linkage: &dyn LinkageStore,
    model: &LinkModel,
    entries: &[SignatureEntry],
    upload_id: &str,
) -> StoreResult<LinkOutcome> {
    Ok(link_new_joined(records, linkage, model, entries, upload_id, None)?.0)
}

/// [`link_new`], also returning every person id this pass joined to
/// another (so a caller can tell which entries linked).
pub(crate) fn link_new_joined(
    records: &dyn RecordStore,
    linkage: &dyn LinkageStore,
    model: &LinkModel,
    entries: &[SignatureEntry],
    upload_id: &str,
    queue_state: Option<&mut QueueState>,
) -> StoreResult<(LinkOutcome, HashSet<String>)> {
    let mut out = LinkOutcome::default();
    if entries.is_empty() {
        return Ok((out, HashSet::new()));
    }
    let mut fresh = None;
    let queue_state = match queue_state {
        Some(q) => q,
        None => fresh.insert(QueueState::load(linkage)?),
    };
    let QueueState {
        known: known_items,
        decided,
        apart,
    } = queue_state;
    let mut people = People::new(records);
    // Every block and every candidate signature of the batch, fetched in
    // two calls (a backend with a round trip per key asks concurrently).
    let mut blocks: Vec<String> = entries
        .iter()
        .flat_map(|e| e.signature.b.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    blocks.sort();
    let found = linkage.signatures_in_blocks(&blocks, MAX_BLOCK + 1)?;
    let mut members: HashMap<&str, Vec<String>> = HashMap::new();
    for (b, ids) in blocks.iter().zip(found) {
        if ids.len() > MAX_BLOCK {
            out.oversized_blocks += 1;
        } else {
            members.insert(b.as_str(), ids);
        }
    }
    let wanted: Vec<String> = members
        .values()
        .flatten()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let cache: HashMap<String, StoredSignature> = linkage
        .get_signatures(&wanted)?
        .into_iter()
        .flatten()
        .map(|s| (s.signature.id.clone(), s))
        .collect();
    let mut queue: Vec<ReviewItem> = Vec::new();
    for e in entries {
        out.signatures_new += 1;
        let candidates: BTreeSet<&String> = e
            .signature
            .b
            .iter()
            .filter_map(|b| members.get(b.as_str()))
            .flatten()
            .collect();
        for c in candidates {
            let Some(cs) = cache.get(c) else {
                continue;
            };
            let pattern = compare(&e.signature, &cs.signature);
            let id = review_id(&e.signature.id, c);
            let probability = model.probability(&pattern);
            // Most candidates score far below review: they need no more
            // than the comparison, not even their people's current ids
            // (each a store read).
            // So do pairs that can only be queued when their item is queued
            // already: the records of one person written without a match
            // key (a suspect police never had a date of birth for) share a
            // signature, and each new one would meet all the others.
            let only_review = probability < model.match_threshold && !decided.contains_key(&id);
            if only_review && (probability < model.review_threshold || known_items.contains(&id)) {
                out.pairs_compared += cs.people.len() as u64;
                continue;
            }
            for (q, q_record) in &cs.people {
                let p = people.find(&e.person_id)?;
                let q = people.find(q)?;
                if p == q {
                    continue;
                }
                out.pairs_compared += 1;
                match decided.get(&id) {
                    Some(ReviewStatus::NonMatch) => {
                        out.kept_apart_by_review += 1;
                        continue;
                    }
                    Some(ReviewStatus::Match) => {
                        people.union(&p, &q)?;
                        out.linked_by_review += 1;
                        continue;
                    }
                    _ => {}
                }
                let mut review = probability >= model.review_threshold;
                if probability >= model.match_threshold {
                    if apart.forbids(&mut people, &p, &q)? {
                        out.kept_apart_by_review += 1;
                        review = false;
                    } else if people.conflict(&p, &q)? {
                        // Names and dates agree but the NHS numbers or
                        // UPNs do not: a person, not a score, decides.
                        out.kept_apart_by_identifier += 1;
                    } else {
                        people.union(&p, &q)?;
                        out.linked_by_score += 1;
                        review = false;
                    }
                }
                if review && known_items.insert(id.clone()) {
                    let mine = (e.signature.id.clone(), p, e.record_id.clone());
                    let theirs = (c.clone(), q, q_record.clone());
                    let (a, b) = if mine.0 <= theirs.0 {
                        (mine, theirs)
                    } else {
                        (theirs, mine)
                    };
                    queue.push(ReviewItem {
                        id: id.clone(),
                        signatures: [a.0, b.0],
                        people: [a.1, b.1],
                        records: [a.2, b.2],
                        probability: (probability * 1e6).round() / 1e6,
                        match_weight: (model.match_weight(&pattern) * 1e3).round() / 1e3,
                        agreement: model.explain(&pattern),
                        model_version: model.version,
                        upload_id: upload_id.to_owned(),
                        status: ReviewStatus::Open,
                        decision: None,
                    });
                    out.queued_for_review += 1;
                }
            }
        }
    }
    // Merge each group of people this pass joined into its smallest id.
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    let joined: Vec<String> = people.parent.keys().cloned().collect();
    for p in joined {
        let root = people.find(&p)?;
        groups.entry(root).or_default().push(p);
    }
    let mut roots: Vec<_> = groups.into_iter().collect();
    roots.sort();
    let mut joined: HashSet<String> = HashSet::new();
    for (winner, mut losers) in roots {
        losers.sort();
        merge_people(records, &winner, &losers)?;
        joined.insert(winner);
        joined.extend(losers);
    }
    // Entries name people as they were before this pass's aliases.
    let before: Vec<(String, String)> = people
        .resolved
        .iter()
        .filter(|(_, now)| joined.contains(*now))
        .map(|(was, now)| (was.clone(), now.clone()))
        .collect();
    joined.extend(before.into_iter().map(|(was, _)| was));
    for item in &queue {
        linkage.put_review(item)?;
    }
    Ok((out, joined))
}

/// Record an analyst's decision on a review item. A match merges the two
/// people now (the larger id becomes an alias of the smaller); a non-match
/// keeps them from ever being linked by score. Returns the updated item.
pub fn decide(
    records: &dyn RecordStore,
    linkage: &dyn LinkageStore,
    id: &str,
    decision: Decision,
) -> StoreResult<ReviewItem> {
    // One store session, as an ingest's merge is: a match merges people,
    // and an ingest merging the same people at once must not interleave
    // (SQLite's write lock; DynamoDB's merge lease).
    crate::withdraw::in_session(records, || {
        let mut item = linkage
            .get_review(id)?
            .ok_or_else(|| StoreError::NotFound(format!("review item {id}")))?;
        if decision.status == ReviewStatus::Match {
            let a = records.resolve_person(&item.people[0])?;
            let b = records.resolve_person(&item.people[1])?;
            if a != b {
                let (winner, loser) = if a <= b { (a, b) } else { (b, a) };
                merge_people(records, &winner, &[loser])?;
            }
        }
        item.status = decision.status;
        item.decision = Some(decision);
        linkage.put_review(&item)?;
        Ok(item)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{sample_record, sample_signature};
    use crate::link::{LinkSession, merge_and_link};
    use crate::linkage::{TrainOptions, train};
    use crate::memory::MemoryRecordStore;
    use crate::ports::{RecordStoreExt, StoredRecord};

    fn rec(id: &str, family: &str, given: &str, dob: &str) -> StoredRecord {
        let key = format!("k-{id}");
        let mut r = sample_record(id, "", "ds", "2025-01-01", &[&key], &[]);
        r.signature = Some(sample_signature(family, given, dob));
        r
    }

    fn ingest(store: &MemoryRecordStore, r: StoredRecord) -> LinkOutcome {
        let mut session = LinkSession::new("u-test");
        merge_and_link(store, vec![r], &mut session).expect("merge");
        session.outcome
    }

    fn person(store: &MemoryRecordStore, id: &str) -> String {
        let p = store
            .get_record(id)
            .expect("get")
            .expect("record")
            .person_id;
        store.resolve_person(&p).expect("resolve")
    }

    #[test]
    fn a_scored_link_joins_two_existing_people_with_an_alias() {
        let store = MemoryRecordStore::default();
        ingest(&store, rec("a", "smith", "katherine", "2010-03-07"));
        let before = person(&store, "a");
        let out = ingest(&store, rec("b", "smith", "kate", "2010-03-07"));
        assert_eq!(out.linked_by_score, 1, "{out:?}");
        assert_eq!(person(&store, "a"), person(&store, "b"));
        let b_own = crate::link::person_id_for("k-b");
        let (winner, loser) = if before < b_own {
            (before, b_own)
        } else {
            (b_own, before)
        };
        assert_eq!(store.alias(&loser).expect("alias"), Some(winner));
    }

    #[test]
    fn a_non_match_decision_keeps_a_pair_apart_however_high_it_scores() {
        let store = MemoryRecordStore::default();
        let linkage = store.linkage().expect("linkage");
        ingest(&store, rec("c", "jones", "anna", "2011-05-05"));
        let (sc, sd) = (
            sample_signature("jones", "anna", "2011-05-05"),
            sample_signature("jones", "ana", "2011-05-05"),
        );
        let mut item = crate::conformance::sample_review(&sc, &sd, 0.97);
        item.people = [person(&store, "c"), "p_other".into()];
        item.status = ReviewStatus::NonMatch;
        linkage.put_review(&item).expect("put");
        let out = ingest(&store, rec("d", "jones", "ana", "2011-05-05"));
        assert_eq!(
            (out.linked_by_score, out.kept_apart_by_review),
            (0, 1),
            "{out:?}"
        );
        assert_ne!(person(&store, "c"), person(&store, "d"));
    }

    #[test]
    fn a_review_decision_merges_and_survives_retraining() {
        let store = MemoryRecordStore::default();
        let linkage = store.linkage().expect("linkage");
        ingest(&store, rec("e", "brown", "james", "2012-01-01"));
        let out = ingest(&store, rec("f", "brown", "jim", "2012-11-01"));
        assert_eq!(out.queued_for_review, 1, "{out:?}");
        assert_ne!(person(&store, "e"), person(&store, "f"));
        let items = linkage.review_items().expect("items");
        let item = &items[0];
        assert_eq!(item.status, ReviewStatus::Open);
        assert!(item.probability >= 0.5 && item.probability < 0.95);
        // What a reviewer sees holds no raw value.
        let shown = crate::linkage::review_detail(&store, item).expect("detail");
        let text = shown.to_string().to_lowercase();
        for raw in ["brown", "james", "jim", "2012-01-01", "2012-11-01"] {
            assert!(!text.contains(raw), "{raw} in {text}");
        }
        let decided = decide(
            &store,
            linkage,
            &item.id,
            Decision {
                status: ReviewStatus::Match,
                analyst: "a.analyst".into(),
                reason: "same school, same address".into(),
                purpose: "Op Test".into(),
                time: "2026-12-02T00:00:00Z".into(),
            },
        )
        .expect("decide");
        assert_eq!(decided.status, ReviewStatus::Match);
        assert_eq!(person(&store, "e"), person(&store, "f"));
        train(linkage, &TrainOptions::default()).expect("train");
        let again = linkage.get_review(&item.id).expect("get").expect("item");
        assert_eq!(again.status, ReviewStatus::Match);
        assert_eq!(person(&store, "e"), person(&store, "f"));
        // The same pair found again (a re-upload) is the same, decided item.
        let out = ingest(&store, rec("g", "brown", "jim", "2012-11-01"));
        assert_eq!(out.queued_for_review, 0, "{out:?}");
        assert_eq!(linkage.review_items().expect("items").len(), 1);
    }
}
