//! The conformance suite: plain functions over `&dyn Port` that every adapter
//! must pass (memory, directory + SQLite, S3 + DynamoDB). Each panics with a
//! message naming the broken rule. Call them on an empty store.

use std::collections::HashMap;

use crate::ports::{
    ChainLog, Link, ObjectStore, ObjectStoreExt, PutMode, RecordBody, RecordStore, RecordStoreExt,
    StoreError, StoredRecord, WriteBatch,
};

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
        vec![e1, e2],
        "entries come back whole and in order"
    );
}

#[cfg(test)]
mod tests {
    use crate::memory::{MemoryChainLog, MemoryObjectStore, MemoryRecordStore};

    #[test]
    fn memory_adapters_conform() {
        super::object_store(&MemoryObjectStore::default());
        super::record_store(&MemoryRecordStore::default());
        super::record_store_in_upload(&MemoryRecordStore::default());
        super::chain_log(&MemoryChainLog::default());
    }
}
