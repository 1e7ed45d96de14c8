//! Withdrawal: taking one upload back out of the store, as if it had never
//! been merged, and saying so in lineage.
//!
//! An agency withdraws an extract it should not have sent (the wrong
//! children, the wrong period, a file that was not theirs to share). What
//! goes:
//!
//! - every record the upload last wrote, with its index entries and its
//!   (signature, person) pairs in the linkage index, and the review items
//!   that name one of them;
//! - the match keys no live record carries any more;
//! - the people every one of whose records went, with the aliases that
//!   pointed at them. A person who also holds records from other uploads
//!   keeps their id; when the withdrawn records were what held their other
//!   records together, those are re-derived as ingest does after a
//!   corrected record drops a key (the part with the smallest key keeps
//!   the id, each other part gets the id of its own smallest key);
//! - the upload's outputs (curated data, rejection reports), after the
//!   store has committed.
//!
//! The records an upload replaced are not restored: their earlier versions
//! were superseded and are gone; the agency re-sends what it means to
//! share. A `withdrawn` lineage event names the upload, the reason and the
//! counts (never a record, person or token), and reconciliation takes that
//! upload's live records to be 0 from then on. Everything but the outputs
//! is one store session: in SQLite one transaction under the write lock,
//! so a killed withdrawal leaves the store as it was. A store that removes
//! as it goes (DynamoDB) gets a `withdrawal_started` event before the first
//! delete, with the upload's live records as found then: a withdrawal cut
//! short and run again completes what is left, and its `withdrawn` event
//! counts the records the first attempt found, so lineage still accounts
//! for every record.
//!
//! The removed bytes stay in the body file and in free database pages until
//! `agencylink compact` rewrites them.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::events::{LineageEvent, UploadEvent, WithdrawalStartedEvent, WithdrawnEvent};
use crate::lineage;
use crate::ports::{ChainLog, ObjectStore, RecordStore, StoreError, StoredRecord, WriteBatch};

/// The longest reason kept, in characters.
pub const REASON_MAX: usize = 300;

/// Why an upload could not be withdrawn. Never names a record or person.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WithdrawError {
    /// Lineage has no upload with the id given.
    #[error(
        "lineage has no upload with that id: `agencylink lineage list` shows the upload ids; nothing was changed"
    )]
    UnknownUpload,
    /// The upload was withdrawn before (and not ingested again since).
    #[error("that upload was already withdrawn (lineage event {seq}); nothing was changed")]
    AlreadyWithdrawn {
        /// The `seq` of the earlier `withdrawn` event.
        seq: u64,
    },
    /// The reason is empty, too long or not one line.
    #[error("{0}")]
    Reason(String),
    /// The store failed; nothing was changed unless the store writes through.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store committed the withdrawal, but removing an output object
    /// failed; `agencylink compact` removes what is left.
    #[error(
        "the upload was withdrawn, but its outputs could not all be removed (run `agencylink compact` to finish): {0}"
    )]
    Outputs(StoreError),
}

/// A reason as kept: trimmed, non-empty, one line, at most [`REASON_MAX`]
/// characters.
pub fn check_reason(reason: &str) -> Result<String, WithdrawError> {
    let r = reason.trim();
    if r.is_empty() {
        return Err(WithdrawError::Reason(
            "a withdrawal needs a non-empty --reason".into(),
        ));
    }
    if r.chars().count() > REASON_MAX {
        return Err(WithdrawError::Reason(format!(
            "the reason is longer than {REASON_MAX} characters"
        )));
    }
    if r.chars().any(char::is_control) {
        return Err(WithdrawError::Reason(
            "the reason must be one line of text".into(),
        ));
    }
    Ok(r.to_owned())
}

/// Where an upload stands in lineage: its latest closing event, and the
/// `seq` of a `withdrawn` event after it.
pub fn upload_state(
    entries: &[serde_json::Value],
    upload_id: &str,
) -> (Option<UploadEvent>, Option<u64>) {
    let mut found = None;
    let mut withdrawn = None;
    for e in entries {
        match LineageEvent::from_entry(e) {
            LineageEvent::Ingest(u) | LineageEvent::UploadFailure(u)
                if u.upload_id == upload_id =>
            {
                found = Some(*u);
                withdrawn = None;
            }
            LineageEvent::Withdrawn(w) if w.upload_id == upload_id => {
                withdrawn = e.get("seq").and_then(serde_json::Value::as_u64).or(Some(0));
            }
            _ => {}
        }
    }
    (found, withdrawn)
}

/// The `withdrawal_started` event of a withdrawal of `upload_id` that has
/// not completed (none after the upload's latest closing event, or after a
/// `withdrawn` one).
fn started_withdrawal(
    entries: &[serde_json::Value],
    upload_id: &str,
) -> Option<WithdrawalStartedEvent> {
    let mut started = None;
    for e in entries {
        match LineageEvent::from_entry(e) {
            LineageEvent::WithdrawalStarted(w) if w.upload_id == upload_id => started = Some(w),
            LineageEvent::Withdrawn(w) if w.upload_id == upload_id => started = None,
            LineageEvent::Ingest(u) | LineageEvent::UploadFailure(u)
                if u.upload_id == upload_id =>
            {
                started = None;
            }
            _ => {}
        }
    }
    started
}

/// A withdrawal done: the event, and the lineage entry as appended (with
/// its `seq` and hashes, for a WORM copy).
#[derive(Debug, Clone, PartialEq)]
pub struct Withdrawn {
    /// The event.
    pub event: WithdrawnEvent,
    /// The entry as stored in lineage.
    pub entry: serde_json::Value,
}

/// Withdraw `upload_id`: remove its records from `records` and link what
/// is left, append the `withdrawn` event to `lineage_log`, then remove its
/// outputs from `objects`.
pub fn withdraw(
    records: &dyn RecordStore,
    lineage_log: &dyn ChainLog,
    objects: &dyn ObjectStore,
    upload_id: &str,
    reason: &str,
    time: &str,
) -> Result<Withdrawn, WithdrawError> {
    let reason = check_reason(reason)?;
    // The write lock first (SQLite: BEGIN IMMEDIATE), so lineage is read
    // in the same transaction that writes: two withdrawals of one upload
    // cannot both pass the check.
    let event = in_session(records, || {
        withdraw_in(records, lineage_log, upload_id, reason, time)
    })?;
    // After the commit: a failed delete leaves an orphaned object, which
    // compaction removes, never a live upload without its outputs.
    for key in &event.event.outputs_removed {
        objects.delete(key).map_err(WithdrawError::Outputs)?;
    }
    Ok(event)
}

fn withdraw_in(
    records: &dyn RecordStore,
    lineage_log: &dyn ChainLog,
    upload_id: &str,
    reason: String,
    time: &str,
) -> Result<Withdrawn, WithdrawError> {
    // The upload's own events, not the log.
    let entries = lineage_log.upload_entries(upload_id)?;
    let (upload, withdrawn) = upload_state(&entries, upload_id);
    let upload = upload.ok_or(WithdrawError::UnknownUpload)?;
    if let Some(seq) = withdrawn {
        return Err(WithdrawError::AlreadyWithdrawn { seq });
    }

    let mut doomed = Doomed::new(records)?;
    records.scan_upload(upload_id, &mut |r| {
        doomed.add(r);
        true
    })?;
    // What a store that removes as it goes takes: fixed before its first
    // delete, by this attempt or by an earlier one cut short.
    let planned = match started_withdrawal(&entries, upload_id) {
        Some(earlier) => Some(earlier.records),
        None if records.writes_through() => {
            let n = doomed.ids.len() as u64;
            lineage::append_event(
                lineage_log,
                &LineageEvent::WithdrawalStarted(WithdrawalStartedEvent {
                    upload_id: upload_id.to_owned(),
                    agency: upload.agency.clone(),
                    dataset: upload.dataset.clone(),
                    records: n,
                    time: time.to_owned(),
                }),
            )?;
            Some(n)
        }
        None => None,
    };
    let (gone, _) = doomed.remove(records)?;
    let event = WithdrawnEvent {
        upload_id: upload_id.to_owned(),
        agency: upload.agency,
        dataset: upload.dataset,
        reason,
        records_removed: planned.unwrap_or(gone.records_removed),
        people_removed: gone.people_removed,
        people_kept: gone.people_kept,
        people_split: gone.people_split,
        keys_removed: gone.keys_removed,
        reviews_removed: gone.reviews_removed,
        outputs_removed: upload.outputs,
        time: time.to_owned(),
    };
    let entry = lineage::append_event(lineage_log, &LineageEvent::Withdrawn(event.clone()))?;
    Ok(Withdrawn { event, entry })
}

/// Run `f` as one store session (in SQLite one transaction under the
/// write lock): kept when it succeeds, rolled back when it fails.
pub fn in_session<T, E: From<StoreError>>(
    records: &dyn RecordStore,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    records.begin_upload()?;
    match f() {
        Ok(done) => {
            records.end_upload(true)?;
            Ok(done)
        }
        Err(e) => {
            // The error that stopped the session matters more than a
            // failed rollback.
            let _ = records.end_upload(false);
            Err(e)
        }
    }
}

/// The records a removal takes, gathered from a scan: only what the
/// clean-up needs, not the bodies (an upload may hold a million records),
/// except while a key rotation is open, when their tokens are kept to
/// find the translations only they held.
#[derive(Debug, Default)]
pub struct Doomed {
    ids: Vec<String>,
    people: BTreeSet<String>,
    keys: BTreeSet<String>,
    by_upload: BTreeMap<String, u64>,
    rotation: crate::rotation::RemovedStrings,
}

impl Doomed {
    /// Ready to gather records from `records`, noting whether a key
    /// rotation is open there.
    pub fn new(records: &dyn RecordStore) -> Result<Self, StoreError> {
        Ok(Doomed {
            rotation: crate::rotation::RemovedStrings::new(records)?,
            ..Doomed::default()
        })
    }

    /// Take `r` too.
    pub fn add(&mut self, r: StoredRecord) {
        self.rotation.add(&r);
        *self.by_upload.entry(r.upload_id).or_default() += 1;
        self.ids.push(r.record_id);
        self.people.insert(r.person_id);
        self.keys.extend(r.match_keys);
    }

    /// Whether nothing was taken.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// How many records were taken, and how many of them each upload last
    /// wrote.
    pub fn counts(&self) -> (u64, &BTreeMap<String, u64>) {
        (self.ids.len() as u64, &self.by_upload)
    }

    /// Remove them inside an open session ([`remove_and_relink`]); what
    /// went, and how many from each upload that last wrote them.
    pub fn remove(
        self,
        records: &dyn RecordStore,
    ) -> Result<(Removed, BTreeMap<String, u64>), StoreError> {
        if self.is_empty() {
            return Ok((Removed::default(), self.by_upload));
        }
        let gone = remove_and_relink(records, &self.ids, &self.people, &self.keys)?;
        crate::rotation::forget_removed(records, &self.rotation)?;
        Ok((gone, self.by_upload))
    }
}

/// What [`remove_and_relink`] removed and re-derived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Records removed.
    pub records_removed: u64,
    /// People every one of whose records went.
    pub people_removed: u64,
    /// People who keep other records (and their id).
    pub people_kept: u64,
    /// New people split off a kept person.
    pub people_split: u64,
    /// Match keys no live record carries any more.
    pub keys_removed: u64,
    /// Review items that named a removed record.
    pub reviews_removed: u64,
}

/// Remove records `ids` (whose people are `people` and match keys `keys`)
/// inside an open store session, with their linkage entries and review
/// items, the keys nothing else carries, and re-derive the people they
/// touched: gone when nothing is left, split when the removed records held
/// the rest together, aliases into a gone person removed. What withdrawal
/// and retention both do.
pub fn remove_and_relink(
    records: &dyn RecordStore,
    ids: &[String],
    people: &BTreeSet<String>,
    keys: &BTreeSet<String>,
) -> Result<Removed, StoreError> {
    let records_removed = records.remove_records(ids)?;
    let mut reviews_removed = 0;
    if let Some(linkage) = records.linkage() {
        linkage.forget_records(ids)?;
        let gone: HashSet<&str> = ids.iter().map(String::as_str).collect();
        for item in linkage.review_items()? {
            if item.records.iter().any(|r| gone.contains(r.as_str())) {
                linkage.remove_review(&item.id)?;
                reviews_removed += 1;
            }
        }
    }
    let mut cleanup = WriteBatch::default();
    for k in keys {
        if records.records_with_key(k)?.is_empty() {
            cleanup.key_removals.push(k.clone());
        }
    }
    let keys_removed = cleanup.key_removals.len() as u64;
    if !cleanup.is_empty() {
        records.apply(&cleanup)?;
    }
    let (mut people_removed, mut people_kept, mut people_split) = (0, 0, 0);
    let mut gone_people: Vec<String> = Vec::new();
    for p in people {
        if records.records_of_person(p)?.is_empty() {
            people_removed += 1;
            gone_people.push(p.clone());
        } else {
            people_kept += 1;
            let split = crate::link::resplit(records, p)?;
            people_split += split.len() as u64;
            // A split-off part may take back an id that an earlier merge
            // aliased away: it is a person again, not a pointer elsewhere.
            if !split.is_empty() {
                records.remove_aliases(&split)?;
            }
        }
    }
    // Aliases that lead to a removed person lead nowhere; an old id with
    // no records of its own went with the person it was merged into, and
    // so do the aliases that lead to it.
    let mut seen: HashSet<String> = gone_people.iter().cloned().collect();
    let mut stack = gone_people.clone();
    let mut unaliased = gone_people;
    while let Some(p) = stack.pop() {
        for old in records.aliases_to(&p)? {
            if !seen.insert(old.clone()) {
                continue;
            }
            let live = !records.records_of_person(&old)?.is_empty();
            unaliased.push(old.clone());
            if !live {
                stack.push(old);
            }
        }
    }
    records.remove_aliases(&unaliased)?;
    Ok(Removed {
        records_removed,
        people_removed,
        people_kept,
        people_split,
        keys_removed,
        reviews_removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryChainLog, MemoryObjectStore, MemoryRecordStore};

    #[test]
    fn the_memory_store_withdraws_as_the_contract_says() {
        crate::conformance::withdrawal(
            &MemoryRecordStore::default(),
            &MemoryChainLog::default(),
            &MemoryObjectStore::default(),
        );
    }

    #[test]
    fn a_reason_is_one_short_line() {
        assert_eq!(
            check_reason("  sent in error ").expect("ok"),
            "sent in error"
        );
        assert!(check_reason("").is_err());
        assert!(check_reason("two\nlines").is_err());
        assert!(check_reason(&"x".repeat(REASON_MAX + 1)).is_err());
        assert!(check_reason(&"é".repeat(REASON_MAX)).is_ok());
    }

    #[test]
    fn upload_state_follows_the_latest_events() {
        let ingest = serde_json::json!({"type": "ingest", "upload_id": "u1", "seq": 1});
        let gone = serde_json::json!({"type": "withdrawn", "upload_id": "u1", "seq": 2});
        let (found, withdrawn) = upload_state(&[ingest.clone(), gone.clone()], "u1");
        assert!(found.is_some());
        assert_eq!(withdrawn, Some(2));
        // Ingested again after the withdrawal: live again.
        let again = serde_json::json!({"type": "ingest", "upload_id": "u1", "seq": 3});
        assert_eq!(upload_state(&[ingest, gone, again], "u1").1, None);
        assert!(upload_state(&[], "u1").0.is_none());
    }
}
