//! Fault injection at every store call on the embedded store (#18 item 3):
//! a wrapper over the SQLite store's ports fails its Nth write (and, in a
//! second sweep, its Nth read), for every N, across a first upload, an
//! overlapping upload from another agency (linkage), a correction (the
//! first agency's file again with rows changed), a withdrawal, and a key
//! rotation (opened, a file re-sent under both keys, the store migrated)
//! and a retention run (the scenario is `tests/support/lifecycle.rs`). After
//! each failure: the store is exactly as before the step (nothing merged
//! that lineage does not account for, lineage verifies and reconciles);
//! after a retry without faults: exactly as a run that never failed.
//!
//! DynamoDB's faults (throttling, 500s, lost answers, timeouts, partial
//! batches) are `crates/aws/tests/dynamo_faults.rs`'s.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use agencylink_core::linkage::{LinkModel, ReviewItem};
use agencylink_core::ports::{
    ChainLog, LinkageStore, RecordStore, RecordStoreExt, SignatureEntry, StoreError, StoreResult,
    StoredRecord, StoredSignature, TranslationStore, WriteBatch,
};
use agencylink_local::SqliteStore;

/// Which call fails: the Nth write or the Nth read (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Write(u64),
    Read(u64),
}

/// Counts calls and fails the chosen one, before it reaches the store.
struct Faults {
    fault: Fault,
    writes: AtomicU64,
    reads: AtomicU64,
    fired: AtomicU64,
}

impl Faults {
    fn new(fault: Fault) -> Self {
        Faults {
            fault,
            writes: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            fired: AtomicU64::new(0),
        }
    }

    fn check(&self, write: bool, what: &str) -> StoreResult<()> {
        let n = if write { &self.writes } else { &self.reads }.fetch_add(1, Ordering::SeqCst) + 1;
        let hit = match self.fault {
            Fault::Write(at) => write && n == at,
            Fault::Read(at) => !write && n == at,
        };
        if hit {
            self.fired.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable {
                message: format!("injected failure of {what} (call {n})"),
                source: None,
            });
        }
        Ok(())
    }

    fn w(&self, what: &str) -> StoreResult<()> {
        self.check(true, what)
    }

    fn r(&self, what: &str) -> StoreResult<()> {
        self.check(false, what)
    }
}

/// The SQLite store with faults at every record, linkage and translation
/// call.
struct Faulty<'a> {
    inner: &'a SqliteStore,
    faults: &'a Faults,
}

fn linkage_of(s: &SqliteStore) -> &dyn LinkageStore {
    s.linkage().expect("the SQLite store has a linkage index")
}

impl RecordStore for Faulty<'_> {
    fn get_records(&self, ids: &[String]) -> StoreResult<Vec<Option<StoredRecord>>> {
        self.faults.r("get_records")?;
        self.inner.get_records(ids)
    }
    fn key_owners(&self, keys: &[String]) -> StoreResult<HashMap<String, String>> {
        self.faults.r("key_owners")?;
        self.inner.key_owners(keys)
    }
    fn records_of_person(&self, person_id: &str) -> StoreResult<Vec<StoredRecord>> {
        self.faults.r("records_of_person")?;
        self.inner.records_of_person(person_id)
    }
    fn records_with_key(&self, key: &str) -> StoreResult<Vec<StoredRecord>> {
        self.faults.r("records_with_key")?;
        self.inner.records_with_key(key)
    }
    fn records_with_link(&self, token: &str) -> StoreResult<Vec<StoredRecord>> {
        self.faults.r("records_with_link")?;
        self.inner.records_with_link(token)
    }
    fn scan_dataset(
        &self,
        dataset: &str,
        from: Option<&str>,
        to: Option<&str>,
        visit: &mut dyn FnMut(StoredRecord) -> bool,
    ) -> StoreResult<()> {
        self.faults.r("scan_dataset")?;
        self.inner.scan_dataset(dataset, from, to, visit)
    }
    fn datasets(&self) -> StoreResult<Vec<String>> {
        self.faults.r("datasets")?;
        self.inner.datasets()
    }
    fn alias(&self, person_id: &str) -> StoreResult<Option<String>> {
        self.faults.r("alias")?;
        self.inner.alias(person_id)
    }
    fn apply(&self, batch: &WriteBatch) -> StoreResult<()> {
        self.faults.w("apply")?;
        self.inner.apply(batch)
    }
    fn begin_upload(&self) -> StoreResult<()> {
        self.faults.w("begin_upload")?;
        self.inner.begin_upload()
    }
    fn end_upload(&self, keep: bool) -> StoreResult<()> {
        // A failed commit is a write that fails; a rollback always runs,
        // as the caller's own error is what it reports.
        if keep && let Err(e) = self.faults.w("end_upload") {
            self.inner.end_upload(false)?;
            return Err(e);
        }
        self.inner.end_upload(keep)
    }
    fn translations(&self) -> Option<&dyn TranslationStore> {
        Some(self)
    }
    fn linkage(&self) -> Option<&dyn LinkageStore> {
        Some(self)
    }
    fn scan_upload(
        &self,
        upload_id: &str,
        visit: &mut dyn FnMut(StoredRecord) -> bool,
    ) -> StoreResult<()> {
        self.faults.r("scan_upload")?;
        self.inner.scan_upload(upload_id, visit)
    }
    fn remove_records(&self, ids: &[String]) -> StoreResult<u64> {
        self.faults.w("remove_records")?;
        self.inner.remove_records(ids)
    }
    fn aliases_to(&self, person_id: &str) -> StoreResult<Vec<String>> {
        self.faults.r("aliases_to")?;
        self.inner.aliases_to(person_id)
    }
    fn remove_aliases(&self, old_ids: &[String]) -> StoreResult<()> {
        self.faults.w("remove_aliases")?;
        self.inner.remove_aliases(old_ids)
    }
}

impl LinkageStore for Faulty<'_> {
    fn put_signatures(&self, entries: &[SignatureEntry]) -> StoreResult<Vec<bool>> {
        self.faults.w("put_signatures")?;
        linkage_of(self.inner).put_signatures(entries)
    }
    fn get_signatures(&self, ids: &[String]) -> StoreResult<Vec<Option<StoredSignature>>> {
        self.faults.r("get_signatures")?;
        linkage_of(self.inner).get_signatures(ids)
    }
    fn signatures_in_block(&self, block: &str, limit: usize) -> StoreResult<Vec<String>> {
        self.faults.r("signatures_in_block")?;
        linkage_of(self.inner).signatures_in_block(block, limit)
    }
    fn signatures_in_blocks(
        &self,
        blocks: &[String],
        limit: usize,
    ) -> StoreResult<Vec<Vec<String>>> {
        self.faults.r("signatures_in_blocks")?;
        linkage_of(self.inner).signatures_in_blocks(blocks, limit)
    }
    fn scan_signatures(&self, visit: &mut dyn FnMut(StoredSignature) -> bool) -> StoreResult<()> {
        self.faults.r("scan_signatures")?;
        linkage_of(self.inner).scan_signatures(visit)
    }
    fn put_review(&self, item: &ReviewItem) -> StoreResult<()> {
        self.faults.w("put_review")?;
        linkage_of(self.inner).put_review(item)
    }
    fn get_review(&self, id: &str) -> StoreResult<Option<ReviewItem>> {
        self.faults.r("get_review")?;
        linkage_of(self.inner).get_review(id)
    }
    fn review_items(&self) -> StoreResult<Vec<ReviewItem>> {
        self.faults.r("review_items")?;
        linkage_of(self.inner).review_items()
    }
    fn forget_records(&self, record_ids: &[String]) -> StoreResult<u64> {
        self.faults.w("forget_records")?;
        linkage_of(self.inner).forget_records(record_ids)
    }
    fn remove_review(&self, id: &str) -> StoreResult<()> {
        self.faults.w("remove_review")?;
        linkage_of(self.inner).remove_review(id)
    }
    fn put_model(&self, model: &LinkModel) -> StoreResult<()> {
        self.faults.w("put_model")?;
        linkage_of(self.inner).put_model(model)
    }
    fn model(&self) -> StoreResult<Option<LinkModel>> {
        self.faults.r("model")?;
        linkage_of(self.inner).model()
    }
}

impl TranslationStore for Faulty<'_> {
    fn rotation_state(&self) -> StoreResult<Option<String>> {
        self.faults.r("rotation_state")?;
        self.inner.rotation_state()
    }
    fn set_rotation_state(&self, state: Option<&str>) -> StoreResult<()> {
        self.faults.w("set_rotation_state")?;
        self.inner.set_rotation_state(state)
    }
    fn put_translations(&self, pairs: &[(String, String)]) -> StoreResult<()> {
        self.faults.w("put_translations")?;
        self.inner.put_translations(pairs)
    }
    fn get_translations(&self, olds: &[String]) -> StoreResult<HashMap<String, String>> {
        self.faults.r("get_translations")?;
        self.inner.get_translations(olds)
    }
    fn clear_translations(&self) -> StoreResult<u64> {
        self.faults.w("clear_translations")?;
        self.inner.clear_translations()
    }
    fn scan_translations(&self, f: &mut dyn FnMut(&str, &str)) -> StoreResult<()> {
        self.faults.r("scan_translations")?;
        self.inner.scan_translations(f)
    }
    fn delete_translations(&self, olds: &[String]) -> StoreResult<u64> {
        self.faults.w("delete_translations")?;
        self.inner.delete_translations(olds)
    }
}

/// The lineage log with faults at every call.
struct FaultyLog<'a, L> {
    inner: L,
    faults: &'a Faults,
}

impl<L: ChainLog> ChainLog for FaultyLog<'_, L> {
    fn head(&self) -> StoreResult<Option<(u64, String)>> {
        self.faults.r("lineage head")?;
        self.inner.head()
    }
    fn append(
        &self,
        seq: u64,
        entry: &serde_json::Value,
        expected_prev: Option<&str>,
    ) -> StoreResult<()> {
        self.faults.w("lineage append")?;
        self.inner.append(seq, entry, expected_prev)
    }
    fn entries(&self) -> StoreResult<Vec<serde_json::Value>> {
        self.faults.r("lineage entries")?;
        self.inner.entries()
    }
    fn upload_entries(&self, upload_id: &str) -> StoreResult<Vec<serde_json::Value>> {
        self.faults.r("lineage upload entries")?;
        self.inner.upload_entries(upload_id)
    }
}

#[path = "../../../tests/support/lifecycle.rs"]
mod lifecycle;
use lifecycle::{Lifecycle, STEPS};

/// A fresh SQLite store named `name` in the scenario's directory.
fn sqlite_store(w: &Lifecycle, name: &str) -> SqliteStore {
    let path = w.dir.join(format!("{name}.db"));
    for ext in ["", "-wal", "-shm", "-bodies"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
    SqliteStore::open(&path).expect("db")
}

/// What the store holds, canonically.
type Snapshot = (
    BTreeMap<String, (String, String)>,
    Vec<String>,
    usize,
    Option<String>,
);

/// Equal, or a short account of how they differ (a full dump is pages of
/// JSON).
fn same(got: &Snapshot, want: &Snapshot, what: &str) {
    if got != want {
        let changed = got
            .0
            .iter()
            .filter(|(id, v)| want.0.get(*id) != Some(*v))
            .count();
        panic!(
            "{what}: {} records (want {}), {changed} differ or are new; lineage {:?} (want {:?}); {} review items (want {}); rotation {:?} (want {:?})",
            got.0.len(),
            want.0.len(),
            got.1,
            want.1,
            got.2,
            want.2,
            got.3,
            want.3
        );
    }
}

/// What the store holds, canonically: records with their resolved person
/// and body, lineage event kinds, how many review items, and the key
/// rotation's state. Also checks
/// that lineage verifies and accounts for every record.
fn snapshot(store: &SqliteStore) -> Snapshot {
    let mut all = Vec::new();
    for ds in store.datasets().expect("datasets") {
        store
            .scan_dataset(&ds, None, None, &mut |r| {
                all.push(r);
                true
            })
            .expect("scan");
    }
    // Resolved after the scan, which holds the connection.
    let records = all
        .into_iter()
        .map(|r| {
            let person = store.resolve_person(&r.person_id).expect("resolve");
            (r.record_id.clone(), (person, r.body.as_str().to_owned()))
        })
        .collect();
    let entries = store.lineage().entries().expect("lineage");
    agencylink_core::lineage::verify(&entries).expect("lineage verifies");
    let counts = store.record_counts().expect("counts");
    agencylink_core::reconcile::reconcile(&entries, &counts)
        .map_err(|m| format!("{m:?}"))
        .expect("lineage accounts for every record");
    let kinds = entries
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_owned())
        .collect();
    let reviews = linkage_of(store).review_items().expect("reviews").len();
    // The rotation's state, not its translations: those an ingest records
    // before its merge are idempotent and recorded again on a retry.
    let rotation = store.rotation_state().expect("rotation state");
    (records, kinds, reviews, rotation)
}

/// For each step and every N: fail the Nth call of the kind `make` picks,
/// check the store is as before the step, retry, check it is as a run that
/// never failed. Returns how many faults fired.
fn sweep(name: &str, make: fn(u64) -> Fault) -> u64 {
    let w = Lifecycle::new(&format!("faults-{name}"), 40);
    // The reference: every step, no faults, a snapshot after each.
    let reference = sqlite_store(&w, "reference");
    let mut uploads = Vec::new();
    let mut after = Vec::new();
    for step in STEPS {
        w.run(step, &reference, &reference.lineage(), &mut uploads)
            .expect("a run with no faults");
        after.push(snapshot(&reference));
    }
    let mut fired = 0;
    for (i, step) in STEPS.into_iter().enumerate() {
        for n in 1.. {
            let store = sqlite_store(&w, "faulty");
            let mut uploads = Vec::new();
            for earlier in &STEPS[..i] {
                w.run(*earlier, &store, &store.lineage(), &mut uploads)
                    .expect("earlier steps");
            }
            let before = snapshot(&store);
            let faults = Faults::new(make(n));
            let faulty = Faulty {
                inner: &store,
                faults: &faults,
            };
            let log = FaultyLog {
                inner: store.lineage(),
                faults: &faults,
            };
            let outcome = w.run(step, &faulty, &log, &mut uploads);
            if faults.fired.load(Ordering::SeqCst) == 0 {
                // Past the last call: the step ran whole.
                outcome.unwrap_or_else(|e| panic!("{step:?} with no fault fired: {e}"));
                same(&snapshot(&store), &after[i], &format!("{step:?}"));
                break;
            }
            fired += 1;
            match outcome {
                Err(e) => {
                    assert!(e.contains("injected failure"), "{step:?} N={n}: {e}");
                    same(
                        &snapshot(&store),
                        &before,
                        &format!("{step:?}: a failure at call {n} left the store changed"),
                    );
                }
                // A failed call the step could do without (none today)
                // would land here: the result must still be right.
                Ok(()) => {
                    same(
                        &snapshot(&store),
                        &after[i],
                        &format!("{step:?} past call {n}"),
                    );
                    continue;
                }
            }
            // The failed run recorded no upload id: the retry starts from
            // the same list.
            let mut retry_uploads = uploads.clone();
            w.run(step, &store, &store.lineage(), &mut retry_uploads)
                .unwrap_or_else(|e| panic!("{step:?} retried after a failure at call {n}: {e}"));
            same(
                &snapshot(&store),
                &after[i],
                &format!(
                    "{step:?}: a retry after a failure at call {n} differs from a run that never failed"
                ),
            );
        }
    }
    eprintln!("{name}: {fired} injected failures, each rolled back and retried");
    fired
}

#[test]
fn every_failed_write_leaves_the_store_as_it_was_and_a_retry_converges() {
    let fired = sweep("writes", Fault::Write);
    assert!(fired > 10, "only {fired} writes failed");
}

#[test]
fn every_failed_read_leaves_the_store_as_it_was_and_a_retry_converges() {
    let fired = sweep("reads", Fault::Read);
    assert!(fired > 10, "only {fired} reads failed");
}
