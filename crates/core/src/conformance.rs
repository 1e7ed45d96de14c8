//! The conformance suite: plain functions over `&dyn Port` that every adapter
//! must pass (memory, directory + SQLite, S3 + DynamoDB). Each panics with a
//! message naming the broken rule. Call them on an empty store.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::linkage::{
    Agreement, Decision, LinkModel, ReviewItem, ReviewStatus, Signature, review_id,
};
use crate::ports::{
    ChainLog, Link, LinkageStore, ObjectStore, ObjectStoreExt, PutMode, RecordBody, RecordStore,
    RecordStoreExt, SignatureEntry, StoreError, StoredRecord, StoredSignature, WriteBatch,
};
use crate::pseudo::{Key, Pseudonymiser};

/// Object store contract: put/get round trip, create-only, list by prefix,
/// delete, bad keys refused, large objects streamed intact.
pub fn object_store(store: &dyn ObjectStore) {
    let key = "landing/rochdale-council/council.cin_referral/extract.csv";
    assert!(
        matches!(store.head(key), Err(StoreError::NotFound(_))),
        "head of a missing object is NotFound"
    );
    assert!(
        matches!(store.get(key), Err(StoreError::NotFound(_))),
        "get of a missing object is NotFound"
    );
    let meta = store.put(key, b"a,b\n1,2\n", PutMode::Create).expect("put");
    assert_eq!(meta.size, 8, "put reports the size");
    assert_eq!(store.get_bytes(key).expect("get"), b"a,b\n1,2\n");
    assert!(
        matches!(
            store.put(key, b"x", PutMode::Create),
            Err(StoreError::AlreadyExists(_))
        ),
        "create-only put on an existing key is AlreadyExists"
    );
    assert_eq!(
        store.get_bytes(key).expect("get"),
        b"a,b\n1,2\n",
        "a refused create leaves the object"
    );
    store
        .put(key, b"new", PutMode::Overwrite)
        .expect("overwrite");
    assert_eq!(store.get_bytes(key).expect("get"), b"new");
    assert_eq!(store.head(key).expect("head").size, 3);

    store
        .put("landing/other/x.csv", b"1", PutMode::Overwrite)
        .expect("put");
    store
        .put("reports/r.json", b"{}", PutMode::Overwrite)
        .expect("put");
    let listed: Vec<String> = store
        .list("landing/")
        .expect("list")
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(
        listed,
        vec!["landing/other/x.csv".to_owned(), key.to_owned()],
        "list returns the prefix's objects sorted by key"
    );
    assert!(store.list("nothing/").expect("list").is_empty());

    // Large enough to cross multipart and buffer boundaries in every adapter.
    let big: Vec<u8> = (0..(12u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    store
        .put("curated/big.ndjson", &big, PutMode::Overwrite)
        .expect("put big");
    assert_eq!(
        store.head("curated/big.ndjson").expect("head").size,
        big.len() as u64
    );
    assert!(
        store.get_bytes("curated/big.ndjson").expect("get big") == big,
        "large objects round-trip intact"
    );

    store.delete(key).expect("delete");
    assert!(
        !store.exists(key).expect("exists"),
        "deleted objects are gone"
    );
    store
        .delete(key)
        .expect("deleting a missing object is fine");
    for bad in ["", "/etc/passwd", "landing/../../x", "a//b", "trailing/"] {
        assert!(
            matches!(
                store.put(bad, b"x", PutMode::Overwrite),
                Err(StoreError::Invalid(_))
            ),
            "key {bad:?} is refused"
        );
    }
}

/// A record for the suite.
pub fn sample_record(
    id: &str,
    person: &str,
    dataset: &str,
    date: &str,
    keys: &[&str],
    links: &[(&str, &str)],
) -> StoredRecord {
    StoredRecord {
        record_id: id.to_owned(),
        person_id: person.to_owned(),
        agency: "test-agency".to_owned(),
        dataset: dataset.to_owned(),
        event_date: date.to_owned(),
        upload_id: "u1".to_owned(),
        row: 1,
        match_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        links: links
            .iter()
            .map(|(k, t)| Link {
                kind: (*k).to_owned(),
                token: (*t).to_owned(),
            })
            .collect(),
        body: RecordBody::from_value(&serde_json::json!({"record_id": id, "fields": {"sex": "2"}}))
            .expect("an object"),
        signature: None,
    }
}

/// Record store contract: upsert by id, key ownership, person / key / link
/// queries, date-ranged dataset scans, aliases.
pub fn record_store(store: &dyn RecordStore) {
    contract(store);
}

/// Merge marks, for a store that writes through: a batch's mark is
/// replaced when it is put again (planned, then done), each upload's marks
/// are its own, and clearing one upload's leaves the other's.
pub fn merge_marks(store: &dyn RecordStore) {
    use crate::ports::MergeMark;
    assert!(
        store.writes_through(),
        "only a write-through store keeps marks"
    );
    let mark = |batch: u64, done: bool| MergeMark {
        batch,
        fingerprint: format!("fp-{batch}"),
        done,
        stats: crate::link::MergeStats {
            inserted: 3,
            replaced: 1,
            replaced_from: [("u-earlier".to_owned(), 1)].into(),
            unchanged: 2,
            linked: 1,
        },
        linkage: crate::linkage::LinkOutcome {
            pairs_compared: 4,
            ..Default::default()
        },
    };
    assert!(store.merge_marks("u-1").expect("none yet").is_empty());
    for m in [
        mark(0, false),
        mark(0, true),
        mark(1, false),
        mark(10, true),
    ] {
        store.put_merge_mark("u-1", &m).expect("put a mark");
    }
    store
        .put_merge_mark("u-2", &mark(0, false))
        .expect("put a mark");
    let mut got = store.merge_marks("u-1").expect("marks");
    got.sort_by_key(|m| m.batch);
    assert_eq!(got, [mark(0, true), mark(1, false), mark(10, true)]);
    store.clear_merge_marks("u-1").expect("clear");
    assert!(store.merge_marks("u-1").expect("marks").is_empty());
    assert_eq!(store.merge_marks("u-2").expect("marks"), [mark(0, false)]);
    store.clear_merge_marks("u-2").expect("clear");
}

/// The same contract inside one upload (reads see the upload's own
/// writes before it is published), and everything is there once it is.
pub fn record_store_in_upload(store: &dyn RecordStore) {
    store.begin_upload().expect("begin an upload");
    contract(store);
    store.end_upload(true).expect("publish the upload");
    let ids = |v: Vec<StoredRecord>| v.into_iter().map(|r| r.record_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.records_of_person("p-1").expect("person")),
        ["r-c", "r-a", "r-b"],
        "published"
    );
    assert_eq!(
        ids(store.records_with_link("c-1").expect("link")),
        ["r-c", "r-a"]
    );
    assert_eq!(store.datasets().expect("datasets"), ["ds.one", "ds.two"]);
}

fn contract(store: &dyn RecordStore) {
    let a = sample_record(
        "r-a",
        "p-1",
        "ds.one",
        "2025-01-05",
        &["mk-1", "mk-2"],
        &[("crime", "c-1")],
    );
    let b = sample_record("r-b", "p-1", "ds.one", "2025-03-01", &["mk-2"], &[]);
    let c = sample_record(
        "r-c",
        "p-2",
        "ds.two",
        "2024-12-31",
        &["mk-3"],
        &[("crime", "c-1"), ("phone", "t-9")],
    );
    assert_eq!(
        store.get_records(&["r-a".into()]).expect("get"),
        vec![None],
        "unknown ids are None"
    );
    assert!(
        store.datasets().expect("datasets").is_empty(),
        "start from an empty store"
    );
    store
        .apply(&WriteBatch {
            records: vec![a.clone(), b.clone(), c.clone()],
            key_owners: vec![
                ("mk-1".into(), "p-1".into()),
                ("mk-2".into(), "p-1".into()),
                ("mk-3".into(), "p-2".into()),
            ],
            ..WriteBatch::default()
        })
        .expect("apply");
    let got = store
        .get_records(&["r-c".into(), "nope".into(), "r-a".into()])
        .expect("get");
    assert_eq!(
        got,
        vec![Some(c.clone()), None, Some(a.clone())],
        "records come back whole and in order"
    );
    let owners = store
        .key_owners(&["mk-1".into(), "mk-3".into(), "mk-x".into()])
        .expect("owners");
    assert_eq!(
        owners,
        HashMap::from([
            ("mk-1".to_owned(), "p-1".to_owned()),
            ("mk-3".to_owned(), "p-2".to_owned())
        ])
    );
    let ids = |v: Vec<StoredRecord>| v.into_iter().map(|r| r.record_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.records_of_person("p-1").expect("person")),
        ["r-a", "r-b"],
        "a person's records by date"
    );
    assert_eq!(
        ids(store.records_with_key("mk-2").expect("key")),
        ["r-a", "r-b"]
    );
    assert_eq!(
        ids(store.records_with_link("c-1").expect("link")),
        ["r-c", "r-a"],
        "link queries by date"
    );
    assert!(store.records_with_link("nope").expect("link").is_empty());

    let mut seen = Vec::new();
    store
        .scan_dataset("ds.one", Some("2025-01-05"), Some("2025-02-28"), &mut |r| {
            seen.push(r.record_id);
            true
        })
        .expect("scan");
    assert_eq!(seen, ["r-a"], "scan bounds are inclusive and by event date");
    let mut all = Vec::new();
    store
        .scan_dataset("ds.one", None, None, &mut |r| {
            all.push(r.record_id);
            true
        })
        .expect("scan");
    assert_eq!(all, ["r-a", "r-b"]);
    let mut first = Vec::new();
    store
        .scan_dataset("ds.one", None, None, &mut |r| {
            first.push(r.record_id);
            false
        })
        .expect("scan");
    assert_eq!(first.len(), 1, "visit returning false stops the scan");
    assert_eq!(store.datasets().expect("datasets"), ["ds.one", "ds.two"]);

    // Merge p-2 into p-1: relabel, re-own the key, alias the old id.
    let mut c2 = c.clone();
    c2.person_id = "p-1".into();
    let mut b2 = b.clone();
    b2.match_keys = vec![];
    store
        .apply(&WriteBatch {
            records: vec![c2.clone(), b2.clone()],
            key_owners: vec![("mk-3".into(), "p-1".into())],
            key_removals: vec!["mk-2".into()],
            aliases: vec![("p-2".into(), "p-1".into())],
        })
        .expect("apply merge");
    assert_eq!(
        ids(store.records_of_person("p-1").expect("person")),
        ["r-c", "r-a", "r-b"]
    );
    assert!(store.records_of_person("p-2").expect("person").is_empty());
    assert_eq!(
        store.get_record("r-b").expect("get"),
        Some(b2),
        "replacement is whole"
    );
    assert_eq!(
        ids(store.records_with_key("mk-2").expect("key")),
        ["r-a"],
        "a replaced record leaves the key index"
    );
    assert!(
        store
            .key_owners(&["mk-2".into()])
            .expect("owners")
            .is_empty(),
        "removed keys have no owner"
    );
    assert_eq!(store.alias("p-2").expect("alias").as_deref(), Some("p-1"));
    assert_eq!(store.alias("p-1").expect("alias"), None);
    assert_eq!(store.resolve_person("p-2").expect("resolve"), "p-1");
    store
        .apply(&WriteBatch {
            aliases: vec![("p-1".into(), "p-0".into())],
            ..WriteBatch::default()
        })
        .expect("alias chain");
    assert_eq!(
        store.resolve_person("p-2").expect("resolve"),
        "p-0",
        "aliases chain"
    );
    store
        .apply(&WriteBatch::default())
        .expect("an empty batch is fine");
}

/// Chain log contract: append in order, refuse a stale head, never fork.
pub fn chain_log(log: &dyn ChainLog) {
    assert_eq!(log.head().expect("head"), None, "start from an empty log");
    let e1 = serde_json::json!({"seq": 1, "prev_hash": null, "hash": "h1", "what": "first"});
    let e2 = serde_json::json!({"seq": 2, "prev_hash": "h1", "hash": "h2", "what": "second"});
    log.append(1, &e1, None).expect("first append");
    assert_eq!(log.head().expect("head"), Some((1, "h1".to_owned())));
    assert!(
        matches!(log.append(2, &e2, None), Err(StoreError::Precondition(_))),
        "append against a stale head is refused"
    );
    assert!(
        matches!(
            log.append(1, &e2, Some("h1")),
            Err(StoreError::Precondition(_))
        ),
        "a reused seq is refused"
    );
    log.append(2, &e2, Some("h1")).expect("second append");
    let e3 = serde_json::json!({"seq": 3, "prev_hash": "h1", "hash": "h3"});
    assert!(
        matches!(
            log.append(3, &e3, Some("h1")),
            Err(StoreError::Precondition(_))
        ),
        "two writers racing from the same head cannot fork the chain"
    );
    assert_eq!(
        log.entries().expect("entries"),
        vec![e1.clone(), e2.clone()],
        "entries come back whole and in order"
    );
    assert_eq!(
        log.page(0, 1).expect("page"),
        vec![e1.clone()],
        "a page of one"
    );
    assert_eq!(
        log.page(1, 10).expect("page"),
        vec![e2.clone()],
        "after seq 1"
    );
    assert!(log.page(2, 10).expect("page").is_empty(), "past the head");
    assert_eq!(
        log.page_back(None, 10).expect("back"),
        vec![e2.clone(), e1.clone()],
        "newest first from the head"
    );
    assert_eq!(
        log.page_back(Some(2), 10).expect("back"),
        vec![e1],
        "before seq 2"
    );
    assert!(log.page_back(Some(1), 10).expect("back").is_empty());
    assert!(log.page(0, 0).expect("page").is_empty(), "a page of none");
}

/// A lineage log (empty at the start) finds an upload's events without
/// reading the log, and pages hold across more entries than one page.
pub fn lineage_log(log: &dyn ChainLog) {
    assert_eq!(log.head().expect("head"), None, "start from an empty log");
    for i in 1..=7u64 {
        let mut fields = serde_json::Map::new();
        fields.insert("event".into(), serde_json::json!("ingest"));
        // Uploads u_a (seq 1, 4, 7), u_b (2, 5) and none (3, 6).
        match i % 3 {
            1 => fields.insert("upload_id".into(), serde_json::json!("u_a")),
            2 => fields.insert("upload_id".into(), serde_json::json!("u_b")),
            _ => None,
        };
        crate::lineage::append(log, fields).expect("append");
    }
    let seqs =
        |v: Vec<serde_json::Value>| -> Vec<u64> { v.iter().map(crate::ports::entry_seq).collect() };
    assert_eq!(seqs(log.upload_entries("u_a").expect("u_a")), vec![1, 4, 7]);
    assert_eq!(seqs(log.upload_entries("u_b").expect("u_b")), vec![2, 5]);
    assert!(log.upload_entries("u_c").expect("u_c").is_empty());
    assert_eq!(seqs(log.page(2, 3).expect("page")), vec![3, 4, 5]);
    assert_eq!(seqs(log.page_back(Some(6), 2).expect("back")), vec![5, 4]);
    assert_eq!(
        seqs(log.page_back(None, 100).expect("back")),
        vec![7, 6, 5, 4, 3, 2, 1]
    );
    crate::lineage::verify(&log.entries().expect("entries")).expect("a valid chain");
}

/// The pseudonymisation spec's published test key: signatures built with it
/// are the same in every adapter's tests.
const TEST_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A signature for the suite, encoded under the published test key.
pub fn sample_signature(family: &str, given: &str, dob: &str) -> Arc<Signature> {
    let key = Key::from_base64("k1", TEST_KEY).expect("the published test key");
    let p = Pseudonymiser::new(key);
    Arc::new(
        crate::linkage::signature(&p, Some(family), Some(given), Some(dob))
            .expect("a signature from three values"),
    )
}

/// A signature entry for the suite.
pub fn sample_entry(signature: &Arc<Signature>, person: &str, record: &str) -> SignatureEntry {
    SignatureEntry {
        signature: signature.clone(),
        person_id: person.to_owned(),
        record_id: record.to_owned(),
    }
}

/// An open review item for the pair `a`, `b` for the suite.
pub fn sample_review(a: &Signature, b: &Signature, probability: f64) -> ReviewItem {
    let (x, y) = if a.id <= b.id { (a, b) } else { (b, a) };
    ReviewItem {
        id: review_id(&x.id, &y.id),
        signatures: [x.id.clone(), y.id.clone()],
        people: ["p-1".to_owned(), "p-2".to_owned()],
        records: ["r-1".to_owned(), "r-2".to_owned()],
        probability,
        match_weight: 3.25,
        agreement: vec![Agreement {
            comparison: "family_name".to_owned(),
            level: "exact".to_owned(),
            weight: 7.5,
        }],
        model_version: 1,
        upload_id: "u1".to_owned(),
        status: ReviewStatus::Open,
        decision: None,
    }
}

/// Linkage store contract: (signature, person) pairs reported new exactly
/// once, signatures by id and by block (with the limit), the full scan,
/// the review queue by id, and versioned models.
pub fn linkage_store_conforms(store: &dyn LinkageStore) {
    let kate = sample_signature("smith", "kate", "2010-03-07");
    let katie = sample_signature("smith", "katie", "2010-03-07");
    let omar = sample_signature("jones", "omar", "1999-11-30");
    let ids = |sigs: &[&Arc<Signature>]| sigs.iter().map(|s| s.id.clone()).collect::<Vec<_>>();

    // Empty.
    assert_eq!(
        store.get_signatures(&ids(&[&kate])).expect("get"),
        vec![None],
        "start from an empty index"
    );
    assert!(store.model().expect("model").is_none(), "no model at first");
    assert!(store.review_items().expect("reviews").is_empty());
    assert!(
        store
            .signatures_in_block(&kate.b[0], 10)
            .expect("block")
            .is_empty()
    );

    // Pairs: new once, whoever else shares the signature.
    let fresh = store
        .put_signatures(&[
            sample_entry(&kate, "p-1", "r-1"),
            sample_entry(&kate, "p-1", "r-2"),
            sample_entry(&katie, "p-1", "r-3"),
            sample_entry(&kate, "p-2", "r-4"),
        ])
        .expect("put");
    assert_eq!(
        fresh,
        [true, false, true, true],
        "a pair given twice in one call is new once; a second person on a signature is new"
    );
    let fresh = store
        .put_signatures(&[
            sample_entry(&kate, "p-1", "r-9"),
            sample_entry(&omar, "p-3", "r-5"),
            sample_entry(&katie, "p-1", "r-3"),
        ])
        .expect("put again");
    assert_eq!(fresh, [false, true, false], "a known pair is not new");
    assert_eq!(
        store.put_signatures(&[]).expect("an empty put"),
        Vec::<bool>::new()
    );

    // By id, in the order asked, with people by person id.
    let stored = |s: &Arc<Signature>, people: &[(&str, &str)]| StoredSignature {
        signature: (**s).clone(),
        people: people
            .iter()
            .map(|(p, r)| ((*p).to_owned(), (*r).to_owned()))
            .collect(),
    };
    let want_kate = stored(&kate, &[("p-1", "r-1"), ("p-2", "r-4")]);
    let want_katie = stored(&katie, &[("p-1", "r-3")]);
    let want_omar = stored(&omar, &[("p-3", "r-5")]);
    let mut asked = ids(&[&katie]);
    asked.push("s_unknown".to_owned());
    asked.extend(ids(&[&kate]));
    assert_eq!(
        store.get_signatures(&asked).expect("get"),
        vec![Some(want_katie.clone()), None, Some(want_kate.clone())],
        "signatures come back whole, in order, each person once with the first record given"
    );
    assert!(store.get_signatures(&[]).expect("get none").is_empty());

    // By block.
    let block_set = |block: &str, limit: usize| -> BTreeSet<String> {
        let got = store.signatures_in_block(block, limit).expect("block");
        let set: BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(set.len(), got.len(), "a block lists a signature once");
        set
    };
    let shared: Vec<&String> = kate.b.iter().filter(|b| katie.b.contains(b)).collect();
    assert!(
        !shared.is_empty(),
        "the fixture: kate and katie share a block"
    );
    for b in &shared {
        assert_eq!(
            block_set(b, 10),
            BTreeSet::from([kate.id.clone(), katie.id.clone()]),
            "a block holds every signature carrying it"
        );
        let one = block_set(b, 1);
        assert!(
            one.len() == 1 && (one.contains(&kate.id) || one.contains(&katie.id)),
            "a block lookup returns at most `limit` ids"
        );
    }
    for b in &omar.b {
        assert_eq!(
            block_set(b, 10),
            BTreeSet::from([omar.id.clone()]),
            "blocks are not shared by accident"
        );
    }
    for b in kate.b.iter().filter(|b| !katie.b.contains(b)) {
        assert_eq!(block_set(b, 10), BTreeSet::from([kate.id.clone()]));
    }
    assert!(block_set("no-such-block", 10).is_empty());

    // The scan sees every signature, with its people, and can stop.
    let mut seen = Vec::new();
    store
        .scan_signatures(&mut |s| {
            seen.push(s);
            true
        })
        .expect("scan");
    seen.sort_by(|a, b| a.signature.id.cmp(&b.signature.id));
    let mut want = vec![want_kate, want_katie, want_omar];
    want.sort_by(|a, b| a.signature.id.cmp(&b.signature.id));
    assert_eq!(seen, want, "the scan sees every signature and its people");
    let mut visits = 0;
    store
        .scan_signatures(&mut |_| {
            visits += 1;
            false
        })
        .expect("scan");
    assert_eq!(visits, 1, "visit returning false stops the scan");

    // The review queue: create, replace, by id.
    assert!(store.get_review("rv_none").expect("get").is_none());
    let first = sample_review(&kate, &katie, 0.75);
    let second = sample_review(&kate, &omar, 0.5);
    store.put_review(&first).expect("put review");
    store.put_review(&second).expect("put review");
    assert_eq!(
        store.get_review(&first.id).expect("get"),
        Some(first.clone()),
        "a review item comes back whole"
    );
    let mut decided = first.clone();
    decided.status = ReviewStatus::NonMatch;
    decided.decision = Some(Decision {
        status: ReviewStatus::NonMatch,
        analyst: "analyst-1".to_owned(),
        reason: "different middle names on the source records".to_owned(),
        purpose: "conformance".to_owned(),
        time: "2026-01-02T03:04:05Z".to_owned(),
    });
    store.put_review(&decided).expect("replace review");
    assert_eq!(
        store.get_review(&first.id).expect("get"),
        Some(decided.clone()),
        "put replaces an item with the same id"
    );
    let mut by_id = vec![decided, second];
    by_id.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        store.review_items().expect("reviews"),
        by_id,
        "review items are listed once each, by id"
    );

    // Models: versions are never overwritten; the highest is current.
    let model = |version: u32, lambda: f64| LinkModel {
        version,
        lambda,
        ..LinkModel::default_model()
    };
    store.put_model(&model(1, 1e-4)).expect("put model 1");
    assert_eq!(store.model().expect("model"), Some(model(1, 1e-4)));
    assert!(
        matches!(
            store.put_model(&model(1, 2e-4)),
            Err(StoreError::AlreadyExists(_))
        ),
        "a model version is stored once"
    );
    assert_eq!(
        store.model().expect("model"),
        Some(model(1, 1e-4)),
        "a refused model changes nothing"
    );
    store.put_model(&model(3, 3e-4)).expect("put model 3");
    store.put_model(&model(2, 2e-4)).expect("put model 2");
    assert_eq!(
        store.model().expect("model"),
        Some(model(3, 3e-4)),
        "the current model is the highest version"
    );
}

/// Withdrawal contract, over a record store with a linkage index and its
/// lineage log (both empty): an upload that bridged two people and brought
/// one of its own is withdrawn; its records, keys, index entries, review
/// items and outputs go, the person it alone knew disappears with their
/// aliases, the bridged person splits back with each part's old id (no
/// alias left pointing the wrong way), lineage reconciles, and a second
/// withdrawal or an unknown id changes nothing.
pub fn withdrawal(store: &dyn RecordStore, log: &dyn ChainLog, objects: &dyn ObjectStore) {
    use crate::events::{LineageEvent, UploadEvent};
    use crate::withdraw::{WithdrawError, withdraw};

    let rec = |id: &str, upload: &str, keys: &[&str], links: &[(&str, &str)]| {
        let mut r = sample_record(id, "", "ds.one", "2025-01-01", keys, links);
        r.upload_id = upload.to_owned();
        r
    };
    let ingest = |upload: &str, batches: Vec<Vec<StoredRecord>>| {
        store.begin_upload().expect("begin");
        let mut stats = crate::link::MergeStats::default();
        for records in batches {
            let s = crate::link::merge(store, records).expect("merge");
            stats.inserted += s.inserted;
            stats.replaced += s.replaced;
        }
        let outputs = vec![format!("curated/test-agency/ds.one/{upload}.ndjson")];
        for key in &outputs {
            objects
                .put(key, b"{}\n", PutMode::Overwrite)
                .expect("an output");
        }
        let event = UploadEvent {
            upload_id: upload.to_owned(),
            agency: "test-agency".to_owned(),
            dataset: "ds.one".to_owned(),
            records_inserted: stats.inserted,
            records_replaced: stats.replaced,
            records_replaced_from: Some(stats.replaced_from),
            outputs,
            ..UploadEvent::default()
        };
        crate::lineage::append_event(log, &LineageEvent::Ingest(Box::new(event))).expect("lineage");
        store.end_upload(true).expect("publish");
    };
    // b's key sorts after a's but gives the smaller person id, so b's id
    // wins the merge while a's part holds the smallest key: the split must
    // still give each part back its own id, not one id twice.
    let k2 = (0..)
        .map(|i| format!("k2-{i}"))
        .find(|k| crate::link::person_id_for(k) < crate::link::person_id_for("k1"))
        .expect("some key");
    let k2 = k2.as_str();
    ingest(
        "u1",
        vec![vec![
            rec("a", "u1", &["k1"], &[("phone", "t-a")]),
            rec("b", "u1", &[k2], &[]),
        ]],
    );
    let person = |id: &str| store.get_record(id).expect("get").expect(id).person_id;
    let (pa, pb) = (person("a"), person("b"));
    ingest(
        "u2",
        vec![
            vec![
                rec("c", "u2", &["k1", k2], &[("phone", "t-a")]),
                rec("d", "u2", &["k9"], &[("phone", "t-d")]),
                rec("e", "u2", &["k7"], &[]),
            ],
            // Joins d and e, people only this upload knows: an alias.
            vec![rec("f", "u2", &["k9", "k7"], &[])],
        ],
    );
    let pd = crate::link::person_id_for("k9");
    let pe = crate::link::person_id_for("k7");
    assert_eq!(person("e"), pd.clone().min(pe.clone()));
    assert_eq!(person("d"), person("e"));
    let merged_away = pd.clone().max(pe.clone());
    assert!(store.alias(&merged_away).expect("alias").is_some());
    let winner = person("a");
    assert_eq!(person("b"), winner, "c bridged a and b");
    assert_eq!(winner, pb, "the smaller id survives the merge");
    let loser = if winner == pa { pb.clone() } else { pa.clone() };
    assert_eq!(store.resolve_person(&loser).expect("resolve"), winner);
    let linkage = store.linkage().expect("a linkage index");
    let sig_c = sample_signature("smith", "kate", "2010-03-07");
    let sig_d = sample_signature("jones", "omar", "1999-11-30");
    let sig_a = sample_signature("smith", "katie", "2010-03-07");
    linkage
        .put_signatures(&[
            sample_entry(&sig_c, &winner, "c"),
            sample_entry(&sig_d, &person("d"), "d"),
            sample_entry(&sig_a, &winner, "a"),
        ])
        .expect("signatures");
    let mut review = sample_review(&sig_c, &sig_a, 0.7);
    review.records = ["c".to_owned(), "a".to_owned()];
    linkage.put_review(&review).expect("review");
    let kept_review = sample_review(&sig_a, &sig_d, 0.6);
    let mut kept_review = kept_review;
    kept_review.records = ["a".to_owned(), "b".to_owned()];
    linkage.put_review(&kept_review).expect("review");
    let before = log.entries().expect("entries").len();

    // Refused before anything is written.
    assert!(matches!(
        withdraw(
            store,
            log,
            objects,
            "u-none",
            "wrong file",
            "2026-01-01T00:00:00Z"
        ),
        Err(WithdrawError::UnknownUpload)
    ));
    assert!(matches!(
        withdraw(store, log, objects, "u2", "  ", "2026-01-01T00:00:00Z"),
        Err(WithdrawError::Reason(_))
    ));
    assert_eq!(log.entries().expect("entries").len(), before);
    assert!(store.get_record("c").expect("get").is_some());

    let done = withdraw(
        store,
        log,
        objects,
        "u2",
        "sent in error",
        "2026-01-01T00:00:00Z",
    )
    .expect("withdrawn");
    assert_eq!(
        LineageEvent::from_entry(&done.entry),
        LineageEvent::Withdrawn(done.event.clone()),
        "the entry as appended is the event"
    );
    let event = done.event;
    assert_eq!(
        (
            event.records_removed,
            event.people_removed,
            event.people_kept,
            event.people_split,
            event.keys_removed,
            event.reviews_removed
        ),
        (4, 1, 1, 1, 2, 1),
        "{event:?}"
    );
    assert_eq!(event.reason, "sent in error");
    for id in ["c", "d", "e", "f"] {
        assert!(store.get_record(id).expect("get").is_none(), "{id} removed");
    }
    assert_eq!(
        store.alias(&merged_away).expect("alias"),
        None,
        "an alias into a removed person goes with it"
    );
    assert!(store.records_with_key("k9").expect("key").is_empty());
    assert!(store.records_with_link("t-d").expect("link").is_empty());
    assert_eq!(
        store
            .records_with_link("t-a")
            .expect("link")
            .iter()
            .map(|r| r.record_id.as_str())
            .collect::<Vec<_>>(),
        ["a"],
        "a token another live record holds stays"
    );
    assert!(
        store
            .key_owners(&["k9".to_owned()])
            .expect("owners")
            .is_empty(),
        "a key only the upload carried has no owner"
    );
    let survivor = pd.clone().min(pe.clone());
    assert!(
        store
            .records_of_person(&survivor)
            .expect("person")
            .is_empty()
    );
    assert_eq!(store.resolve_person(&pd).expect("resolve"), pd);
    assert_eq!(store.resolve_person(&pe).expect("resolve"), pe);
    // a and b are two people again, each under the id it had before c
    // joined them; the merge's alias no longer sends one to the other.
    assert_eq!((person("a"), person("b")), (pa.clone(), pb.clone()));
    assert_eq!(store.resolve_person(&loser).expect("resolve"), loser);
    assert_ne!(pa, pb);
    let owners = store
        .key_owners(&["k1".to_owned(), k2.to_owned()])
        .expect("owners");
    assert_eq!(owners.get("k1"), Some(&pa));
    assert_eq!(owners.get(k2), Some(&pb));
    // The linkage index and review queue forget the removed records.
    let sigs = linkage
        .get_signatures(&[sig_c.id.clone(), sig_d.id.clone(), sig_a.id.clone()])
        .expect("signatures");
    assert!(sigs[0].is_none() && sigs[1].is_none(), "{sigs:?}");
    assert!(sigs[2].is_some(), "a's signature stays");
    assert!(
        linkage
            .signatures_in_block(&sig_d.b[0], 10)
            .expect("block")
            .iter()
            .all(|s| *s != sig_d.id)
    );
    let reviews: Vec<String> = linkage
        .review_items()
        .expect("reviews")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(reviews, [kept_review.id.clone()]);
    assert!(
        !objects
            .exists("curated/test-agency/ds.one/u2.ndjson")
            .expect("head"),
        "the upload's outputs are removed"
    );
    assert!(
        objects
            .exists("curated/test-agency/ds.one/u1.ndjson")
            .expect("head")
    );

    // Lineage says so, and reconciles with the store. A store that
    // removes as it goes said first how many records the withdrawal takes.
    let entries = log.entries().expect("entries");
    let added = if store.writes_through() { 2 } else { 1 };
    assert_eq!(entries.len(), before + added);
    assert_eq!(crate::lineage::verify(&entries), Ok(before + added));
    if store.writes_through() {
        match LineageEvent::from_entry(&entries[before]) {
            LineageEvent::WithdrawalStarted(w) => assert_eq!(w.upload_id, "u2"),
            other => panic!("expected withdrawal_started, got {}", other.kind()),
        }
    }
    assert!(matches!(
        LineageEvent::from_entry(&entries[before + added - 1]),
        LineageEvent::Withdrawn(_)
    ));
    let counts = store.record_counts().expect("counts");
    assert_eq!(
        crate::reconcile::reconcile(&entries, &counts).map(|r| r.records),
        Ok(2)
    );

    // Twice is refused, and changes nothing.
    assert!(matches!(
        withdraw(store, log, objects, "u2", "again", "2026-01-01T00:00:00Z"),
        Err(WithdrawError::AlreadyWithdrawn { .. })
    ));
    assert_eq!(log.entries().expect("entries").len(), before + added);
}

#[cfg(test)]
mod tests {
    use crate::memory::{MemoryChainLog, MemoryObjectStore, MemoryRecordStore};

    #[test]
    fn memory_adapters_conform() {
        super::object_store(&MemoryObjectStore::default());
        super::record_store(&MemoryRecordStore::default());
        super::record_store(&MemoryRecordStore::writing_through());
        super::merge_marks(&MemoryRecordStore::writing_through());
        super::record_store_in_upload(&MemoryRecordStore::default());
        super::linkage_store_conforms(&MemoryRecordStore::default());
        super::chain_log(&MemoryChainLog::default());
        super::lineage_log(&MemoryChainLog::default());
    }
}
