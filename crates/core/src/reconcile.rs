//! Reconciliation: does the record store hold exactly what lineage says
//! the uploads put there?
//!
//! The hash chain proves the lineage log was not edited; it says nothing of
//! the records beside it. A record row deleted from, or added to, the store
//! behind agencylink's back leaves the chain intact. Reconciliation counts
//! the store's records by the upload that last wrote them and compares:
//!
//! - every record's upload has an `ingest` (or partly merged `failure`)
//!   event in lineage, for the same agency and dataset; records of an
//!   upload that only has an `ingest_started` (DynamoDB, where merged
//!   writes are visible at once) are named as an ingest in progress or
//!   interrupted;
//! - per agency and dataset, the store holds as many records as the
//!   uploads' `records_inserted` add up to (a record id is new once);
//! - per upload, the store holds `records_inserted + records_replaced`
//!   minus the versions later uploads superseded (`records_replaced_from`
//!   on their events). Events written before `records_replaced_from`
//!   existed cannot be attributed, so an agency and dataset with such an
//!   event that replaced records is reconciled by its total only;
//! - a `withdrawn` upload holds 0 records from that event on, and its
//!   `records_removed` come off its agency and dataset's total.
//!
//! A withdrawal that has a `withdrawal_started` event but no `withdrawn`
//! one yet (DynamoDB, where each delete is visible at once) is named as a
//! withdrawal in progress or interrupted wherever its upload's records
//! are missing.
//!
//! A `withdrawn` upload holds nothing from then on; an `expired` event's
//! `records_removed_from` comes off each upload as a supersession does.
//!
//! Problems name uploads, agencies and datasets and counts, never a record.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::events::LineageEvent;

/// The records the store holds, counted by the upload that last wrote them
/// and the agency and dataset they carry.
pub type RecordCounts = BTreeMap<RecordGroup, u64>;

/// One group of [`RecordCounts`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordGroup {
    /// The upload that last wrote the records.
    pub upload_id: String,
    /// The agency the records carry.
    pub agency: String,
    /// The dataset the records carry.
    pub dataset: String,
}

/// What reconciliation checked, when everything agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reconciled {
    /// Records in the store.
    pub records: u64,
    /// Uploads in lineage that merged records.
    pub uploads: usize,
    /// Uploads whose own count could be checked (the rest are checked as
    /// part of their agency and dataset's total).
    pub uploads_exact: usize,
}

/// One disagreement between the store and lineage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// The upload concerned, when the problem is one upload's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// The agency.
    pub agency: String,
    /// The dataset.
    pub dataset: String,
    /// Records lineage accounts for.
    pub expected: u64,
    /// Records the store holds.
    pub found: u64,
    /// What is wrong, in words.
    pub reason: String,
}

#[derive(Default)]
struct Upload {
    agency: String,
    dataset: String,
    written: u64,
}

#[derive(Default)]
struct Pair {
    inserted: u64,
    exact: bool,
    seen: bool,
}

/// Compare `counts` (from the store) with lineage `entries` (already
/// verified as a chain). Every mismatch, uploads first, then totals.
pub fn reconcile(entries: &[Value], counts: &RecordCounts) -> Result<Reconciled, Vec<Mismatch>> {
    let mut uploads: BTreeMap<String, Upload> = BTreeMap::new();
    let mut pairs: BTreeMap<(String, String), Pair> = BTreeMap::new();
    let mut superseded: BTreeMap<String, u64> = BTreeMap::new();
    // Uploads that began merging (`ingest_started`) and when; a closing
    // event takes them off.
    let mut started: BTreeMap<String, String> = BTreeMap::new();
    // Withdrawals that began removing (`withdrawal_started`) and have not
    // closed: the upload, its agency and dataset, and when.
    let mut withdrawing: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    // Retention expiries begun and not closed: the dataset, its cutoff and
    // when.
    let mut expiring: BTreeMap<String, (String, String)> = BTreeMap::new();
    for e in entries {
        let event = LineageEvent::from_entry(e);
        if let LineageEvent::IngestStarted(st) = &event {
            started.insert(st.upload_id.clone(), st.time.clone());
            continue;
        }
        if let Some(u) = event.upload() {
            started.remove(&u.upload_id);
        }
        if let LineageEvent::WithdrawalStarted(w) = &event {
            withdrawing.insert(
                w.upload_id.clone(),
                (w.agency.clone(), w.dataset.clone(), w.time.clone()),
            );
            continue;
        }
        if let Some(u) = event.upload() {
            withdrawing.remove(&u.upload_id);
        }
        if let LineageEvent::Withdrawn(w) = &event {
            withdrawing.remove(&w.upload_id);
            // From here on the upload holds nothing, and its records are
            // gone from its agency and dataset's total. Events are read in
            // order, so a later re-ingest of the same file counts afresh,
            // and so do supersessions after it.
            if let Some(u) = uploads.get_mut(&w.upload_id) {
                u.written = 0;
            }
            superseded.remove(&w.upload_id);
            if let Some(pair) = pairs.get_mut(&(w.agency.clone(), w.dataset.clone())) {
                pair.inserted = pair.inserted.saturating_sub(w.records_removed);
            }
            continue;
        }
        if let LineageEvent::ExpiryStarted(x) = &event {
            expiring.insert(x.dataset.clone(), (x.cutoff.clone(), x.time.clone()));
            continue;
        }
        if let LineageEvent::Expired(x) = &event {
            expiring.remove(&x.dataset);
            // Records past retention left their uploads and their agency
            // and dataset's total, like versions a later upload replaced.
            for (upload, n) in &x.records_removed_from {
                *superseded.entry(upload.clone()).or_default() += n;
                if let Some(u) = uploads.get(upload)
                    && let Some(pair) = pairs.get_mut(&(u.agency.clone(), u.dataset.clone()))
                {
                    pair.inserted = pair.inserted.saturating_sub(*n);
                }
            }
            continue;
        }
        let Some(u) = event.upload().filter(|u| !u.upload_id.is_empty()) else {
            continue;
        };
        let (upload, agency, dataset) = (&u.upload_id, &u.agency, &u.dataset);
        let (inserted, replaced) = (u.records_inserted, u.records_replaced);
        let from = u.records_replaced_from.as_ref();
        let pair = pairs
            .entry((agency.to_owned(), dataset.to_owned()))
            .or_insert_with(|| Pair {
                exact: true,
                ..Pair::default()
            });
        pair.seen = true;
        pair.inserted += inserted;
        if replaced > 0 && from.is_none() {
            pair.exact = false;
        }
        for (w, k) in from.into_iter().flatten() {
            *superseded.entry(w.clone()).or_default() += k;
        }
        // A full refresh retired earlier records of the same agency and
        // dataset: off their uploads and off the pair's total.
        for (w, k) in u.records_retired_from.iter().flatten() {
            *superseded.entry(w.clone()).or_default() += k;
            pair.inserted = pair.inserted.saturating_sub(*k);
        }
        let u = uploads.entry(upload.to_owned()).or_insert_with(|| Upload {
            agency: agency.to_owned(),
            dataset: dataset.to_owned(),
            written: 0,
        });
        u.written += inserted + replaced;
    }

    let mut problems = Vec::new();
    let mut found_by_upload: BTreeMap<&str, u64> = BTreeMap::new();
    let mut found_by_pair: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut total = 0;
    for (g, &c) in counts {
        total += c;
        *found_by_pair
            .entry((g.agency.as_str(), g.dataset.as_str()))
            .or_default() += c;
        match uploads.get(&g.upload_id) {
            None if started.contains_key(&g.upload_id) => problems.push(Mismatch {
                upload_id: Some(g.upload_id.clone()),
                agency: g.agency.clone(),
                dataset: g.dataset.clone(),
                expected: 0,
                found: c,
                reason: format!(
                    "the store holds {c} records of an upload whose ingest started at {} and has \
                     not completed: in progress, or interrupted (its retry completes it; an upload \
                     in the dead-letter queue needs re-driving)",
                    started[&g.upload_id]
                ),
            }),
            None => problems.push(Mismatch {
                upload_id: Some(g.upload_id.clone()),
                agency: g.agency.clone(),
                dataset: g.dataset.clone(),
                expected: 0,
                found: c,
                reason: format!(
                    "the store holds {c} records of an upload that lineage has no event for \
                     (added behind the store's back?)"
                ),
            }),
            Some(u) if u.agency != g.agency || u.dataset != g.dataset => problems.push(Mismatch {
                upload_id: Some(g.upload_id.clone()),
                agency: g.agency.clone(),
                dataset: g.dataset.clone(),
                expected: 0,
                found: c,
                reason: format!(
                    "{c} records carry this upload but another agency or dataset than its \
                     lineage event ({} / {})",
                    u.agency, u.dataset
                ),
            }),
            Some(_) => *found_by_upload.entry(g.upload_id.as_str()).or_default() += c,
        }
    }

    let mut exact = 0;
    for (id, u) in &uploads {
        let pair = &pairs[&(u.agency.clone(), u.dataset.clone())];
        if !pair.exact {
            continue;
        }
        exact += 1;
        let gone = superseded.get(id).copied().unwrap_or(0);
        let expected = u.written.saturating_sub(gone);
        let found = found_by_upload.get(id.as_str()).copied().unwrap_or(0);
        if found != expected {
            problems.push(Mismatch {
                upload_id: Some(id.clone()),
                agency: u.agency.clone(),
                dataset: u.dataset.clone(),
                expected,
                found,
                reason: format!(
                    "lineage accounts for {expected} live records of this upload \
                     ({} written, {gone} superseded by later uploads), the store holds {found}{}",
                    u.written,
                    direction(expected, found)
                ),
            });
        }
    }
    let keys: BTreeSet<(&str, &str)> = pairs
        .iter()
        .filter(|(_, p)| p.seen)
        .map(|((a, d), _)| (a.as_str(), d.as_str()))
        .chain(found_by_pair.keys().copied())
        .collect();
    for (agency, dataset) in keys {
        let expected = pairs
            .get(&(agency.to_owned(), dataset.to_owned()))
            .map_or(0, |p| p.inserted);
        let found = found_by_pair.get(&(agency, dataset)).copied().unwrap_or(0);
        if found != expected {
            problems.push(Mismatch {
                upload_id: None,
                agency: agency.to_owned(),
                dataset: dataset.to_owned(),
                expected,
                found,
                reason: format!(
                    "lineage's uploads inserted {expected} records of this agency and dataset, \
                     the store holds {found}{}",
                    direction(expected, found)
                ),
            });
        }
    }
    for p in &mut problems {
        let open = withdrawing.iter().find(|(id, (agency, dataset, _))| {
            p.upload_id.as_deref() == Some(id.as_str())
                || (p.upload_id.is_none() && *agency == p.agency && *dataset == p.dataset)
        });
        if let Some((id, (_, _, time))) = open {
            p.reason = format!(
                "lineage accounts for {} records, the store holds {}: the withdrawal of upload \
                 {id} started at {time} and has not completed: in progress, or interrupted \
                 (withdrawing the upload again completes it)",
                p.expected, p.found
            );
        } else if let Some((cutoff, time)) = expiring.get(&p.dataset) {
            p.reason = format!(
                "lineage accounts for {} records, the store holds {}: the retention expiry of \
                 {} before {cutoff} started at {time} and has not completed: in progress, or \
                 interrupted (the next `retention apply` completes it)",
                p.expected, p.found, p.dataset
            );
        }
    }
    if problems.is_empty() {
        Ok(Reconciled {
            records: total,
            uploads: uploads.len(),
            uploads_exact: exact,
        })
    } else {
        Err(problems)
    }
}

fn direction(expected: u64, found: u64) -> &'static str {
    if found < expected {
        ": records were deleted behind the store's back"
    } else {
        ": records were added behind the store's back"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group(u: &str, a: &str, d: &str) -> RecordGroup {
        RecordGroup {
            upload_id: u.into(),
            agency: a.into(),
            dataset: d.into(),
        }
    }

    fn lineage() -> Vec<Value> {
        vec![
            json!({"type": "ingest", "upload_id": "u1", "agency": "a", "dataset": "d",
                   "records_inserted": 10, "records_replaced": 0, "records_replaced_from": {}}),
            // Replaces 3 of u1's records and one of its own rows given twice.
            json!({"type": "ingest", "upload_id": "u2", "agency": "a", "dataset": "d",
                   "records_inserted": 2, "records_replaced": 4,
                   "records_replaced_from": {"u1": 3, "u2": 1}}),
            json!({"type": "link_train", "model_version": 1}),
            json!({"type": "ingest", "upload_id": "u3", "agency": "b", "dataset": "d",
                   "records_inserted": 5, "records_replaced": 0, "records_replaced_from": {}}),
        ]
    }

    fn store() -> RecordCounts {
        [
            (group("u1", "a", "d"), 7),
            (group("u2", "a", "d"), 5),
            (group("u3", "b", "d"), 5),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn records_of_a_started_ingest_are_named_as_interrupted_until_it_completes() {
        let mut log = lineage();
        log.push(
            json!({"type": "ingest_started", "upload_id": "u4", "agency": "b",
                        "dataset": "d", "time": "2026-12-01T10:00:00Z"}),
        );
        let mut counts = store();
        counts.insert(group("u4", "b", "d"), 3);
        let problems = reconcile(&log, &counts).expect_err("not complete");
        let named = problems
            .iter()
            .find(|p| p.upload_id.as_deref() == Some("u4"))
            .expect("u4 named");
        assert!(
            named.reason.contains("started at 2026-12-01T10:00:00Z")
                && named.reason.contains("interrupted"),
            "{}",
            named.reason
        );
        // Its closing event accounts for them.
        log.push(
            json!({"type": "ingest", "upload_id": "u4", "agency": "b", "dataset": "d",
                        "records_inserted": 3, "records_replaced": 0, "records_replaced_from": {}}),
        );
        assert!(reconcile(&log, &counts).is_ok());
        // Without even a start, they are records lineage does not know.
        let unknown = reconcile(&lineage(), &counts).expect_err("unknown");
        assert!(unknown.iter().any(|p| p.reason.contains("no event for")));
    }

    #[test]
    fn agreeing_store_reconciles() {
        assert_eq!(
            reconcile(&lineage(), &store()),
            Ok(Reconciled {
                records: 17,
                uploads: 3,
                uploads_exact: 3
            })
        );
    }

    #[test]
    fn a_deleted_record_is_found_with_its_upload() {
        let mut counts = store();
        *counts.get_mut(&group("u1", "a", "d")).expect("u1") -= 1;
        let problems = reconcile(&lineage(), &counts).expect_err("deleted");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].upload_id.as_deref(), Some("u1"));
        assert_eq!((problems[0].expected, problems[0].found), (7, 6));
        assert!(problems[0].reason.contains("deleted"));
        assert_eq!(problems[1].upload_id, None);
        assert_eq!((problems[1].expected, problems[1].found), (12, 11));
    }

    #[test]
    fn records_of_an_unknown_upload_are_found() {
        let mut counts = store();
        counts.insert(group("u9", "a", "d"), 1);
        let problems = reconcile(&lineage(), &counts).expect_err("added");
        assert_eq!(problems[0].upload_id.as_deref(), Some("u9"));
        assert!(problems[0].reason.contains("no event"));
        assert!(
            problems
                .iter()
                .any(|p| p.upload_id.is_none() && p.found == 13)
        );
    }

    #[test]
    fn a_record_under_another_agency_is_found() {
        let mut counts = store();
        *counts.get_mut(&group("u3", "b", "d")).expect("u3") -= 1;
        counts.insert(group("u3", "a", "d"), 1);
        let problems = reconcile(&lineage(), &counts).expect_err("moved");
        assert!(problems.iter().any(|p| p.reason.contains("another agency")));
    }

    #[test]
    fn legacy_events_reconcile_by_total_only() {
        let mut old = lineage();
        old[1]
            .as_object_mut()
            .expect("obj")
            .remove("records_replaced_from");
        // Shifting a record between a's uploads is invisible without
        // attribution; the total still holds.
        let mut counts = store();
        *counts.get_mut(&group("u1", "a", "d")).expect("u1") -= 1;
        *counts.get_mut(&group("u2", "a", "d")).expect("u2") += 1;
        assert_eq!(
            reconcile(&old, &counts).map(|r| r.uploads_exact),
            Ok(1),
            "only b's upload is exact"
        );
        *counts.get_mut(&group("u2", "a", "d")).expect("u2") -= 1;
        assert!(reconcile(&old, &counts).is_err());
    }

    #[test]
    fn an_unfinished_withdrawal_is_named_and_its_completion_reconciles() {
        let mut log = lineage();
        log.push(
            json!({"type": "withdrawal_started", "upload_id": "u3", "agency": "b",
                        "dataset": "d", "records": 5, "time": "2026-12-01T00:00:00Z"}),
        );
        // Cut short after 2 of u3's 5 records went.
        let mut counts = store();
        counts.insert(group("u3", "b", "d"), 3);
        let problems = reconcile(&log, &counts).expect_err("records are missing");
        assert!(!problems.is_empty());
        for p in &problems {
            assert!(
                p.reason.contains("withdrawal of upload u3") && p.reason.contains("interrupted"),
                "{}",
                p.reason
            );
        }
        // The retry removes the other 3 and closes it with the count found
        // before the first delete.
        counts.remove(&group("u3", "b", "d"));
        log.push(
            json!({"type": "withdrawn", "upload_id": "u3", "agency": "b", "dataset": "d",
                        "records_removed": 5}),
        );
        reconcile(&log, &counts).expect("reconciles");
    }

    #[test]
    fn an_unfinished_expiry_is_named_and_its_completion_reconciles() {
        let mut log = lineage();
        log.push(
            json!({"type": "expiry_started", "dataset": "d", "retention_days": 30,
                        "cutoff": "2026-01-01", "records_removed": 4,
                        "records_removed_from": {"u1": 3, "u3": 1}, "time": "t"}),
        );
        // Cut short after 1 of u1's records went.
        let mut counts = store();
        counts.insert(group("u1", "a", "d"), 6);
        let problems = reconcile(&log, &counts).expect_err("a record is missing");
        for p in &problems {
            assert!(
                p.reason.contains("retention expiry of d") && p.reason.contains("interrupted"),
                "{}",
                p.reason
            );
        }
        counts.insert(group("u1", "a", "d"), 4);
        counts.insert(group("u3", "b", "d"), 4);
        log.push(
            json!({"type": "expired", "dataset": "d", "retention_days": 30,
                        "cutoff": "2026-01-01", "records_removed": 4,
                        "records_removed_from": {"u1": 3, "u3": 1}}),
        );
        reconcile(&log, &counts).expect("reconciles");
    }

    #[test]
    fn a_withdrawn_upload_holds_nothing_and_leaves_the_total() {
        let mut log = lineage();
        // u1 held 7 live records (3 superseded by u2): all removed.
        log.push(
            json!({"type": "withdrawn", "upload_id": "u1", "agency": "a", "dataset": "d",
                        "records_removed": 7}),
        );
        let mut counts = store();
        counts.remove(&group("u1", "a", "d"));
        assert_eq!(
            reconcile(&log, &counts),
            Ok(Reconciled {
                records: 10,
                uploads: 3,
                uploads_exact: 3
            })
        );
        // A record of the withdrawn upload left behind is found.
        counts.insert(group("u1", "a", "d"), 1);
        let problems = reconcile(&log, &counts).expect_err("left behind");
        assert_eq!(problems[0].upload_id.as_deref(), Some("u1"));
        assert_eq!((problems[0].expected, problems[0].found), (0, 1));
        // The same file ingested again after the withdrawal counts afresh.
        log.push(
            json!({"type": "ingest", "upload_id": "u1", "agency": "a", "dataset": "d",
                        "records_inserted": 7, "records_replaced": 0, "records_replaced_from": {}}),
        );
        counts.insert(group("u1", "a", "d"), 7);
        assert!(reconcile(&log, &counts).is_ok());
    }

    #[test]
    fn an_empty_store_and_log_reconcile() {
        assert!(reconcile(&[], &RecordCounts::new()).is_ok());
    }
}
