//! Given the JSON the code before these types wrote, the types read it and
//! write it back byte for byte, and a chain of it verifies.
//!
//! The two stored logs under `tests/fixtures/` were chained by a small
//! Python script (SHA-256 over `prev_hash + "\n" +` sorted-key compact
//! JSON), not by this crate, so they check the hash from outside.

use super::*;
use crate::lineage::{self, canonical_json, event_hash};
use crate::memory::MemoryChainLog;
use crate::ports::ChainLog;

const LINEAGE_LOG: &str = include_str!("../../tests/fixtures/lineage-log.jsonl");
const ACCESS_LOG: &str = include_str!("../../tests/fixtures/access-log.jsonl");

fn stored(log: &str) -> Vec<Value> {
    log.lines()
        .map(|l| serde_json::from_str(l).expect("fixture line"))
        .collect()
}

/// The event as its writer handed it to `lineage::append`: the stored
/// entry without the chain's fields.
fn fields_of(entry: &Value) -> Map<String, Value> {
    let mut m = entry.as_object().cloned().expect("object");
    m.retain(|k, _| !["seq", "prev_hash", "hash"].contains(&k.as_str()));
    m
}

fn text(m: &Map<String, Value>) -> String {
    serde_json::to_string(m).expect("json")
}

fn legacy_ingest() -> UploadEvent {
    UploadEvent {
        upload_id: "u_1a2b3c4d5e".into(),
        agency: "rochdale-council".into(),
        dataset: "council.cin_referral".into(),
        schema_version: 1,
        schema: None,
        scheme: "pseudo-v1".into(),
        key_id: "k_7f3e".into(),
        file_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        source: "landing/rochdale-council/council.cin_referral/upload-1.csv".into(),
        format: "csv".into(),
        rows_in: 4,
        rows_accepted: 3,
        rows_rejected: 1,
        records_inserted: 3,
        records_replaced: 0,
        records_unchanged: 0,
        people_linked: 1,
        linkage: None,
        missing_linkage_fields: None,
        replaces_uploads: None,
        records_replaced_from: None,
        records_retired: None,
        records_retired_from: None,
        rejections: vec![RejectionCount {
            field: "referral_date".into(),
            code: "date_range".into(),
            count: 1,
        }],
        file_errors: vec![],
        outputs: vec![
            "curated/rochdale-council/council.cin_referral/u_1a2b3c4d5e.ndjson".into(),
            "reports/rochdale-council/council.cin_referral/u_1a2b3c4d5e.json".into(),
            "reports/rochdale-council/council.cin_referral/u_1a2b3c4d5e.csv".into(),
        ],
        time: "2026-11-29T10:00:00Z".into(),
    }
}

fn scored_ingest() -> UploadEvent {
    UploadEvent {
        upload_id: "u_6f7a8b9c0d".into(),
        agency: "gmp-police".into(),
        dataset: "police.crime".into(),
        schema_version: 2,
        schema: Some(SchemaUsed {
            origin: "embedded".into(),
            sha256: "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b".into(),
            ..SchemaUsed::default()
        }),
        scheme: "pseudo-v1".into(),
        key_id: "k_7f3e".into(),
        file_sha256: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752".into(),
        source: "landing/label/c0ffee00c0ffee00".into(),
        format: "ndjson".into(),
        rows_in: 10,
        rows_accepted: 8,
        rows_rejected: 2,
        records_inserted: 5,
        records_replaced: 3,
        records_unchanged: 0,
        people_linked: 4,
        linkage: Some(UploadLinkage {
            outcome: LinkOutcome {
                signatures_new: 6,
                pairs_compared: 12,
                linked_by_score: 2,
                linked_by_review: 1,
                queued_for_review: 1,
                kept_apart_by_review: 0,
                kept_apart_by_identifier: 1,
                oversized_blocks: 0,
                repeats_not_compared: 3,
            },
            model: Some(ScoringModel {
                model_version: 2,
                scheme: "pseudo-v1".into(),
                match_threshold: 0.95,
                review_threshold: 0.5,
            }),
        }),
        missing_linkage_fields: Some(BTreeMap::from([
            ("dob".into(), 1),
            ("given_name".into(), 2),
        ])),
        replaces_uploads: Some(vec!["u_0a0b0c0d0e".into(), "u_1f1e1d1c1b".into()]),
        records_replaced_from: Some(BTreeMap::from([
            ("u_0a0b0c0d0e".into(), 1),
            ("u_1f1e1d1c1b".into(), 2),
        ])),
        records_retired: None,
        records_retired_from: None,
        rejections: vec![
            RejectionCount {
                field: String::new(),
                code: "duplicate_record".into(),
                count: 1,
            },
            RejectionCount {
                field: "offence".into(),
                code: "enum".into(),
                count: 1,
            },
        ],
        file_errors: vec![],
        outputs: vec![
            "curated/gmp-police/police.crime/u_6f7a8b9c0d.ndjson".into(),
            "reports/gmp-police/police.crime/u_6f7a8b9c0d.json".into(),
            "reports/gmp-police/police.crime/u_6f7a8b9c0d.csv".into(),
        ],
        time: "2026-12-03T04:00:00Z".into(),
    }
}

fn failed_upload() -> UploadEvent {
    UploadEvent {
        upload_id: "u_2b3c4d5e6f".into(),
        agency: "nhs-gm-icb".into(),
        dataset: "health.ae_attendance".into(),
        schema_version: 1,
        schema: Some(SchemaUsed {
            origin: "directory".into(),
            sha256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae".into(),
            file: Some("health.ae_attendance.schema.json".into()),
            embedded_counterpart: Some(true),
            differs_from_embedded: Some(true),
            identifiers_removed: vec!["email".into()],
        }),
        scheme: "pseudo-v1".into(),
        key_id: "k_7f3e".into(),
        file_sha256: "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9".into(),
        source: "landing/label/0badf00d0badf00d".into(),
        format: "csv".into(),
        rows_in: 2,
        rows_accepted: 2,
        rows_rejected: 0,
        records_inserted: 2,
        records_replaced: 0,
        records_unchanged: 0,
        people_linked: 0,
        linkage: Some(UploadLinkage::default()),
        missing_linkage_fields: Some(BTreeMap::new()),
        replaces_uploads: None,
        records_replaced_from: Some(BTreeMap::new()),
        records_retired: None,
        records_retired_from: None,
        rejections: vec![],
        file_errors: vec![FileProblem {
            code: "encoding".into(),
            message: "line 4 is not UTF-8; the file was refused from there on".into(),
        }],
        outputs: vec![],
        time: "2026-12-03T04:01:00Z".into(),
    }
}

/// The lineage fixture's events as the writers build them, in order.
fn lineage_events() -> Vec<LineageEvent> {
    vec![
        LineageEvent::Ingest(Box::new(legacy_ingest())),
        LineageEvent::Ingest(Box::new(scored_ingest())),
        LineageEvent::UploadFailure(Box::new(failed_upload())),
        LineageEvent::Failure(FailureEvent {
            code: "agency_not_allowed".into(),
            reason: "the key names no agency of this deployment".into(),
            agency: None,
            dataset: None,
            source: "landing/label/withheld".into(),
            time: "2026-12-03T04:02:00Z".into(),
        }),
        LineageEvent::Failure(FailureEvent {
            code: "processing_error".into(),
            reason: "the upload could not be read".into(),
            agency: Some("gmp-police".into()),
            dataset: Some("police.crime".into()),
            source: "landing/label/feedface00000000".into(),
            time: "2026-12-03T04:03:00Z".into(),
        }),
        LineageEvent::LinkTrain(LinkTrainEvent {
            model_version: 3,
            scheme: "pseudo-v1".into(),
            lambda: 0.0001,
            match_threshold: 0.9,
            review_threshold: 0.4,
            training: Some(Training {
                signatures: 120,
                blocked_pairs: 2048,
                random_pairs: 50_000,
                iterations: 14,
                converged: true,
                blocked_match_share: 0.125,
            }),
            time: "2026-12-03T04:04:00Z".into(),
        }),
        LineageEvent::LinkTrain(LinkTrainEvent {
            model_version: 4,
            scheme: "pseudo-v1".into(),
            lambda: 0.5,
            match_threshold: 0.95,
            review_threshold: 0.5,
            training: None,
            time: "2026-12-03T04:05:00Z".into(),
        }),
    ]
}

fn access_entries() -> Vec<AccessEntry> {
    vec![
        AccessEntry::Read(ReadEntry {
            analyst: "a.analyst".into(),
            purpose: "strategy meeting".into(),
            action: "query_person".into(),
            target: "p_aaaa".into(),
            rows_returned: 3,
            time: "2026-12-03T04:10:00Z".into(),
        }),
        AccessEntry::ReviewDecision(ReviewDecisionEntry {
            analyst: "a.analyst".into(),
            purpose: "clerical review".into(),
            action: REVIEW_DECIDE.into(),
            target: "r_0123456789".into(),
            decision: "match".into(),
            time: "2026-12-03T04:11:00Z".into(),
        }),
        AccessEntry::Read(ReadEntry {
            analyst: "b.analyst".into(),
            purpose: "problem profile".into(),
            action: "profile_analyst".into(),
            target: "profile 2026-01-01..2026-06-30".into(),
            rows_returned: 1234,
            time: "2026-12-03T04:12:00Z".into(),
        }),
    ]
}

#[test]
fn every_lineage_kind_reads_todays_json_and_writes_it_back_byte_for_byte() {
    let entries = stored(LINEAGE_LOG);
    let typed = lineage_events();
    // The fixture's last event is of a kind this version does not know.
    assert_eq!(entries.len(), typed.len() + 1);
    for (entry, want) in entries.iter().zip(&typed) {
        let read = LineageEvent::from_entry(entry);
        assert_eq!(&read, want, "seq {}", entry["seq"]);
        assert_eq!(text(&read.to_fields()), text(&fields_of(entry)));
        assert_eq!(text(&want.to_fields()), text(&fields_of(entry)));
        assert_eq!(
            canonical_json(&Value::Object(want.to_fields())),
            canonical_json(&Value::Object(fields_of(entry)))
        );
    }
}

#[test]
fn every_access_kind_reads_todays_json_and_writes_it_back_byte_for_byte() {
    let entries = stored(ACCESS_LOG);
    let typed = access_entries();
    assert_eq!(entries.len(), typed.len());
    for (entry, want) in entries.iter().zip(&typed) {
        let read = AccessEntry::from_entry(entry);
        assert_eq!(&read, want, "seq {}", entry["seq"]);
        assert_eq!(text(&want.to_fields()), text(&fields_of(entry)));
        assert!(read.reader().is_some());
    }
}

#[test]
fn each_kind_round_trips_through_serde() {
    for e in lineage_events() {
        let v = serde_json::to_value(&e).expect("serialise");
        assert_eq!(v, Value::Object(e.to_fields()));
        let back: LineageEvent = serde_json::from_value(v).expect("deserialise");
        assert_eq!(back, e);
    }
    for e in access_entries() {
        let v = serde_json::to_value(&e).expect("serialise");
        let back: AccessEntry = serde_json::from_value(v).expect("deserialise");
        assert_eq!(back, e);
    }
}

#[test]
fn the_stored_logs_verify_and_typed_appends_rebuild_them_hash_for_hash() {
    let lineage_entries = stored(LINEAGE_LOG);
    assert_eq!(lineage::verify(&lineage_entries), Ok(lineage_entries.len()));
    let access_entries_stored = stored(ACCESS_LOG);
    assert_eq!(
        crate::query::verify_access_log(&access_entries_stored),
        Ok(access_entries_stored.len())
    );

    // Appending the typed events (and the unknown one as it was read)
    // gives the very entries, hashes and stored text of the fixture.
    let log = MemoryChainLog::default();
    for entry in &lineage_entries {
        lineage::append_event(&log, &LineageEvent::from_entry(entry)).expect("append");
    }
    let rebuilt = log.entries().expect("entries");
    assert_eq!(rebuilt.len(), lineage_entries.len());
    for (a, b) in rebuilt.iter().zip(&lineage_entries) {
        assert_eq!(
            serde_json::to_string(a).expect("json"),
            serde_json::to_string(b).expect("json")
        );
    }
    let log = MemoryChainLog::default();
    for e in access_entries() {
        lineage::append_event(&log, &e).expect("append");
    }
    assert_eq!(log.entries().expect("entries"), access_entries_stored);

    // And each stored hash is the hash of the typed event's fields.
    let mut prev: Option<String> = None;
    for entry in access_entries_stored {
        let mut fields = AccessEntry::from_entry(&entry).to_fields();
        fields.insert("seq".into(), entry["seq"].clone());
        fields.insert("prev_hash".into(), entry["prev_hash"].clone());
        let hash = event_hash(prev.as_deref(), &Value::Object(fields));
        assert_eq!(Some(hash.as_str()), entry["hash"].as_str());
        prev = Some(hash);
    }
}

#[test]
fn unknown_and_unreadable_kinds_are_kept_as_stored() {
    let entries = stored(LINEAGE_LOG);
    let future = entries.last().expect("entry");
    let read = LineageEvent::from_entry(future);
    assert_eq!(read, LineageEvent::Other(Value::Object(fields_of(future))));
    assert_eq!(text(&read.to_fields()), text(&fields_of(future)));
    assert_eq!(read.kind(), "key_rotation");
    assert!(read.upload().is_none());

    // A known kind with a value of the wrong JSON type is not guessed at.
    let odd = serde_json::json!({"type": "ingest", "upload_id": "u_1", "rows_in": "ten"});
    assert_eq!(
        LineageEvent::from_entry(&odd),
        LineageEvent::Other(odd.clone())
    );
    assert_eq!(LineageEvent::from_entry(&odd).kind(), "ingest");
    let odd = serde_json::json!({"type": "read", "analyst": 7});
    assert_eq!(
        AccessEntry::from_entry(&odd),
        AccessEntry::Other(odd.clone())
    );
    assert!(AccessEntry::from_entry(&odd).reader().is_none());
    let untyped = serde_json::json!([1, 2]);
    assert_eq!(LineageEvent::from_entry(&untyped).kind(), "");
}

#[test]
fn fields_an_older_event_lacks_read_as_defaults() {
    let old = serde_json::json!({"type": "ingest", "upload_id": "u_1", "agency": "a",
        "records_inserted": 2, "linkage": {"linked_by_score": 1}});
    let LineageEvent::Ingest(u) = LineageEvent::from_entry(&old) else {
        panic!("an ingest");
    };
    assert_eq!((u.upload_id.as_str(), u.agency.as_str()), ("u_1", "a"));
    assert_eq!((u.records_inserted, u.rows_in), (2, 0));
    assert_eq!(u.records_replaced_from, None);
    let linkage = u.linkage.expect("linkage");
    assert_eq!(linkage.outcome.linked_by_score, 1);
    assert_eq!(linkage.model, None, "no model fields, no model");

    // `failure` reads as an upload's only when it names an upload.
    let f = serde_json::json!({"type": "failure", "upload_id": "u_2", "file_errors": []});
    assert!(matches!(
        LineageEvent::from_entry(&f),
        LineageEvent::UploadFailure(_)
    ));
    let f = serde_json::json!({"type": "failure", "code": "c"});
    assert!(matches!(
        LineageEvent::from_entry(&f),
        LineageEvent::Failure(_)
    ));
}

#[test]
fn schema_used_records_what_lineage_always_recorded() {
    let mut prov = crate::validate::tests::ds().provenance;
    prov.sha256 = "ab".into();
    prov.identifiers_removed.clear();
    let json = |p: &SchemaProvenance| {
        serde_json::to_string(&SchemaUsed::new(p, "d.schema.json")).expect("json")
    };
    prov.origin = SchemaOrigin::Embedded;
    assert_eq!(json(&prov), r#"{"origin":"embedded","sha256":"ab"}"#);
    prov.origin = SchemaOrigin::Directory;
    prov.differs_from_embedded = None;
    assert_eq!(
        json(&prov),
        r#"{"origin":"directory","sha256":"ab","file":"d.schema.json","embedded_counterpart":false}"#
    );
    prov.differs_from_embedded = Some(false);
    assert_eq!(
        json(&prov),
        r#"{"origin":"directory","sha256":"ab","file":"d.schema.json","embedded_counterpart":true,"differs_from_embedded":false}"#
    );
}
