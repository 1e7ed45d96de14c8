//! In-memory implementations of the ports, for unit tests and as the
//! reference behaviour the conformance suite pins down.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::sync::{Mutex, MutexGuard};

use crate::linkage::{LinkModel, ReviewItem, Signature};
use crate::ports::{
    ChainLog, LinkageStore, MergeMark, ObjectMeta, ObjectStore, PutMode, RecordStore,
    SignatureEntry, StoreError, StoreResult, StoredRecord, StoredSignature, TranslationStore,
    WriteBatch,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another test thread must not hide this one's result.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reject keys an adapter on a filesystem or S3 must refuse too.
pub fn check_object_key(key: &str) -> StoreResult<()> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.ends_with('/')
        || key.contains('\\')
        || key.contains('\0')
        || key
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if bad {
        Err(StoreError::Invalid(format!(
            "object key `{key}` is not a relative path"
        )))
    } else {
        Ok(())
    }
}

/// Objects in a map.
#[derive(Debug, Default)]
pub struct MemoryObjectStore {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl ObjectStore for MemoryObjectStore {
    fn put_from(&self, key: &str, data: &mut dyn Read, mode: PutMode) -> StoreResult<ObjectMeta> {
        check_object_key(key)?;
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes)
            .map_err(|e| StoreError::backend("reading the data to store", e))?;
        let mut objects = lock(&self.objects);
        if mode == PutMode::Create && objects.contains_key(key) {
            return Err(StoreError::AlreadyExists(key.to_owned()));
        }
        let size = bytes.len() as u64;
        objects.insert(key.to_owned(), bytes);
        Ok(ObjectMeta {
            key: key.to_owned(),
            size,
        })
    }

    fn get(&self, key: &str) -> StoreResult<Box<dyn Read + Send>> {
        check_object_key(key)?;
        let objects = lock(&self.objects);
        let bytes = objects
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(key.to_owned()))?;
        Ok(Box::new(std::io::Cursor::new(bytes)))
    }

    fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        check_object_key(key)?;
        let objects = lock(&self.objects);
        objects
            .get(key)
            .map(|b| ObjectMeta {
                key: key.to_owned(),
                size: b.len() as u64,
            })
            .ok_or_else(|| StoreError::NotFound(key.to_owned()))
    }

    fn delete(&self, key: &str) -> StoreResult<()> {
        check_object_key(key)?;
        lock(&self.objects).remove(key);
        Ok(())
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        let objects = lock(&self.objects);
        Ok(objects
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectMeta {
                key: k.clone(),
                size: v.len() as u64,
            })
            .collect())
    }
}

#[derive(Debug, Default)]
struct Records {
    records: HashMap<String, StoredRecord>,
    key_owner: HashMap<String, String>,
    aliases: HashMap<String, String>,
}

#[derive(Debug, Default)]
struct Linkage {
    signatures: HashMap<String, Signature>,
    people: HashMap<String, BTreeMap<String, String>>,
    blocks: HashMap<String, BTreeSet<String>>,
    reviews: BTreeMap<String, ReviewItem>,
    models: Vec<LinkModel>,
}

#[derive(Debug, Default)]
struct Rotation {
    state: Option<String>,
    translations: HashMap<String, String>,
}

/// Records and indexes in maps.
#[derive(Debug, Default)]
pub struct MemoryRecordStore {
    inner: Mutex<Records>,
    linkage: Mutex<Linkage>,
    rotation: Mutex<Rotation>,
    /// Behave as DynamoDB does: writes visible at once, merges marked.
    write_through: bool,
    marks: Mutex<BTreeMap<(String, u64), MergeMark>>,
    /// The next `apply` that writes records fails after writing the first
    /// half of them, as a process killed mid-batch would leave it.
    tear_next_apply: Mutex<bool>,
}

impl MemoryRecordStore {
    /// A store that writes through, as DynamoDB does: an ingest announces
    /// itself in lineage before it merges and marks each batch, so a run
    /// stopped part-way resumes.
    pub fn writing_through() -> Self {
        MemoryRecordStore {
            write_through: true,
            ..MemoryRecordStore::default()
        }
    }

    /// Make the next `apply` that writes records write half of them and
    /// then fail, so a test sees what a crash mid-batch leaves.
    pub fn tear_next_apply(&self) {
        *lock(&self.tear_next_apply) = true;
    }
}

impl TranslationStore for MemoryRecordStore {
    fn rotation_state(&self) -> StoreResult<Option<String>> {
        Ok(lock(&self.rotation).state.clone())
    }

    fn set_rotation_state(&self, state: Option<&str>) -> StoreResult<()> {
        lock(&self.rotation).state = state.map(str::to_owned);
        Ok(())
    }

    fn put_translations(&self, pairs: &[(String, String)]) -> StoreResult<()> {
        let mut r = lock(&self.rotation);
        for (old, new) in pairs {
            r.translations.insert(old.clone(), new.clone());
        }
        Ok(())
    }

    fn get_translations(&self, olds: &[String]) -> StoreResult<HashMap<String, String>> {
        let r = lock(&self.rotation);
        Ok(olds
            .iter()
            .filter_map(|o| r.translations.get(o).map(|n| (o.clone(), n.clone())))
            .collect())
    }

    fn clear_translations(&self) -> StoreResult<u64> {
        let mut r = lock(&self.rotation);
        let n = r.translations.len() as u64;
        r.translations.clear();
        Ok(n)
    }

    fn scan_translations(&self, f: &mut dyn FnMut(&str, &str)) -> StoreResult<()> {
        let r = lock(&self.rotation);
        for (old, new) in &r.translations {
            f(old, new);
        }
        Ok(())
    }

    fn delete_translations(&self, olds: &[String]) -> StoreResult<u64> {
        let mut r = lock(&self.rotation);
        Ok(olds
            .iter()
            .filter(|o| r.translations.remove(*o).is_some())
            .count() as u64)
    }
}

impl LinkageStore for MemoryRecordStore {
    fn put_signatures(&self, entries: &[SignatureEntry]) -> StoreResult<Vec<bool>> {
        let mut l = lock(&self.linkage);
        let mut fresh = Vec::with_capacity(entries.len());
        for e in entries {
            let id = &e.signature.id;
            if !l.signatures.contains_key(id) {
                l.signatures.insert(id.clone(), (*e.signature).clone());
                for b in &e.signature.b {
                    l.blocks.entry(b.clone()).or_default().insert(id.clone());
                }
            }
            let people = l.people.entry(id.clone()).or_default();
            let new = !people.contains_key(&e.person_id);
            if new {
                people.insert(e.person_id.clone(), e.record_id.clone());
            }
            fresh.push(new);
        }
        Ok(fresh)
    }

    fn get_signatures(&self, ids: &[String]) -> StoreResult<Vec<Option<StoredSignature>>> {
        let l = lock(&self.linkage);
        Ok(ids
            .iter()
            .map(|id| {
                l.signatures.get(id).map(|s| StoredSignature {
                    signature: s.clone(),
                    people: l
                        .people
                        .get(id)
                        .map(|p| p.iter().map(|(a, b)| (a.clone(), b.clone())).collect())
                        .unwrap_or_default(),
                })
            })
            .collect())
    }

    fn signatures_in_block(&self, block: &str, limit: usize) -> StoreResult<Vec<String>> {
        let l = lock(&self.linkage);
        Ok(l.blocks
            .get(block)
            .map(|s| s.iter().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    fn scan_signatures(&self, visit: &mut dyn FnMut(StoredSignature) -> bool) -> StoreResult<()> {
        let ids: Vec<String> = lock(&self.linkage).signatures.keys().cloned().collect();
        for s in self.get_signatures(&ids)?.into_iter().flatten() {
            if !visit(s) {
                break;
            }
        }
        Ok(())
    }

    fn put_review(&self, item: &ReviewItem) -> StoreResult<()> {
        lock(&self.linkage)
            .reviews
            .insert(item.id.clone(), item.clone());
        Ok(())
    }

    fn get_review(&self, id: &str) -> StoreResult<Option<ReviewItem>> {
        Ok(lock(&self.linkage).reviews.get(id).cloned())
    }

    fn review_items(&self) -> StoreResult<Vec<ReviewItem>> {
        Ok(lock(&self.linkage).reviews.values().cloned().collect())
    }

    fn forget_records(&self, record_ids: &[String]) -> StoreResult<u64> {
        let gone: BTreeSet<&str> = record_ids.iter().map(String::as_str).collect();
        let mut l = lock(&self.linkage);
        let mut empty = Vec::new();
        for (sig, people) in &mut l.people {
            people.retain(|_, record| !gone.contains(record.as_str()));
            if people.is_empty() {
                empty.push(sig.clone());
            }
        }
        for sig in &empty {
            l.people.remove(sig);
            if let Some(s) = l.signatures.remove(sig) {
                for b in &s.b {
                    if let Some(set) = l.blocks.get_mut(b) {
                        set.remove(sig);
                        if set.is_empty() {
                            l.blocks.remove(b);
                        }
                    }
                }
            }
        }
        Ok(empty.len() as u64)
    }

    fn remove_review(&self, id: &str) -> StoreResult<()> {
        lock(&self.linkage).reviews.remove(id);
        Ok(())
    }

    fn put_model(&self, model: &LinkModel) -> StoreResult<()> {
        let mut l = lock(&self.linkage);
        if l.models.iter().any(|m| m.version == model.version) {
            return Err(StoreError::AlreadyExists(format!(
                "linkage model version {}",
                model.version
            )));
        }
        l.models.push(model.clone());
        Ok(())
    }

    fn model(&self) -> StoreResult<Option<LinkModel>> {
        Ok(lock(&self.linkage)
            .models
            .iter()
            .max_by_key(|m| m.version)
            .cloned())
    }
}

fn by_event(mut v: Vec<StoredRecord>) -> Vec<StoredRecord> {
    v.sort_by(|a, b| {
        (a.event_date.as_str(), a.record_id.as_str())
            .cmp(&(b.event_date.as_str(), b.record_id.as_str()))
    });
    v
}

impl RecordStore for MemoryRecordStore {
    fn get_records(&self, ids: &[String]) -> StoreResult<Vec<Option<StoredRecord>>> {
        let inner = lock(&self.inner);
        Ok(ids
            .iter()
            .map(|id| inner.records.get(id).cloned())
            .collect())
    }

    fn key_owners(&self, keys: &[String]) -> StoreResult<HashMap<String, String>> {
        let inner = lock(&self.inner);
        Ok(keys
            .iter()
            .filter_map(|k| inner.key_owner.get(k).map(|p| (k.clone(), p.clone())))
            .collect())
    }

    fn records_of_person(&self, person_id: &str) -> StoreResult<Vec<StoredRecord>> {
        let inner = lock(&self.inner);
        Ok(by_event(
            inner
                .records
                .values()
                .filter(|r| r.person_id == person_id)
                .cloned()
                .collect(),
        ))
    }

    fn records_with_key(&self, key: &str) -> StoreResult<Vec<StoredRecord>> {
        let inner = lock(&self.inner);
        Ok(by_event(
            inner
                .records
                .values()
                .filter(|r| r.match_keys.iter().any(|k| k == key))
                .cloned()
                .collect(),
        ))
    }

    fn records_with_link(&self, token: &str) -> StoreResult<Vec<StoredRecord>> {
        let inner = lock(&self.inner);
        Ok(by_event(
            inner
                .records
                .values()
                .filter(|r| r.links.iter().any(|l| l.token == token))
                .cloned()
                .collect(),
        ))
    }

    fn scan_dataset(
        &self,
        dataset: &str,
        from: Option<&str>,
        to: Option<&str>,
        visit: &mut dyn FnMut(StoredRecord) -> bool,
    ) -> StoreResult<()> {
        let matching = {
            let inner = lock(&self.inner);
            by_event(
                inner
                    .records
                    .values()
                    .filter(|r| {
                        r.dataset == dataset
                            && from.is_none_or(|f| r.event_date.as_str() >= f)
                            && to.is_none_or(|t| r.event_date.as_str() <= t)
                    })
                    .cloned()
                    .collect(),
            )
        };
        for r in matching {
            if !visit(r) {
                break;
            }
        }
        Ok(())
    }

    fn datasets(&self) -> StoreResult<Vec<String>> {
        let inner = lock(&self.inner);
        let set: BTreeSet<&String> = inner.records.values().map(|r| &r.dataset).collect();
        Ok(set.into_iter().cloned().collect())
    }

    fn alias(&self, person_id: &str) -> StoreResult<Option<String>> {
        Ok(lock(&self.inner).aliases.get(person_id).cloned())
    }

    fn linkage(&self) -> Option<&dyn LinkageStore> {
        Some(self)
    }

    fn translations(&self) -> Option<&dyn TranslationStore> {
        Some(self)
    }

    fn remove_records(&self, ids: &[String]) -> StoreResult<u64> {
        let mut inner = lock(&self.inner);
        Ok(ids
            .iter()
            .filter(|id| inner.records.remove(id.as_str()).is_some())
            .count() as u64)
    }

    fn aliases_to(&self, person_id: &str) -> StoreResult<Vec<String>> {
        let inner = lock(&self.inner);
        let mut old: Vec<String> = inner
            .aliases
            .iter()
            .filter(|(_, new)| new.as_str() == person_id)
            .map(|(old, _)| old.clone())
            .collect();
        old.sort();
        Ok(old)
    }

    fn remove_aliases(&self, old_ids: &[String]) -> StoreResult<()> {
        let mut inner = lock(&self.inner);
        for old in old_ids {
            inner.aliases.remove(old);
        }
        Ok(())
    }

    fn writes_through(&self) -> bool {
        self.write_through
    }

    fn merge_marks(&self, upload: &str) -> StoreResult<Vec<MergeMark>> {
        Ok(lock(&self.marks)
            .iter()
            .filter(|((u, _), _)| u == upload)
            .map(|(_, m)| m.clone())
            .collect())
    }

    fn put_merge_mark(&self, upload: &str, mark: &MergeMark) -> StoreResult<()> {
        lock(&self.marks).insert((upload.to_owned(), mark.batch), mark.clone());
        Ok(())
    }

    fn clear_merge_marks(&self, upload: &str) -> StoreResult<()> {
        lock(&self.marks).retain(|(u, _), _| u != upload);
        Ok(())
    }

    fn apply(&self, batch: &WriteBatch) -> StoreResult<()> {
        let torn = !batch.records.is_empty() && std::mem::take(&mut *lock(&self.tear_next_apply));
        let mut inner = lock(&self.inner);
        if torn {
            for r in &batch.records[..batch.records.len() / 2] {
                let mut r = r.clone();
                r.signature = None;
                inner.records.insert(r.record_id.clone(), r);
            }
            return Err(StoreError::Unavailable {
                message: "the process stopped mid-batch (a test's fault)".into(),
                source: None,
            });
        }
        for r in &batch.records {
            let mut r = r.clone();
            // Signatures live in the linkage index, not with the record.
            r.signature = None;
            inner.records.insert(r.record_id.clone(), r);
        }
        for k in &batch.key_removals {
            inner.key_owner.remove(k);
        }
        for (k, p) in &batch.key_owners {
            inner.key_owner.insert(k.clone(), p.clone());
        }
        for (old, new) in &batch.aliases {
            inner.aliases.insert(old.clone(), new.clone());
        }
        Ok(())
    }
}

/// A hash-chained log in a vector.
#[derive(Debug, Default)]
pub struct MemoryChainLog {
    entries: Mutex<Vec<(u64, String, serde_json::Value)>>,
}

impl ChainLog for MemoryChainLog {
    fn head(&self) -> StoreResult<Option<(u64, String)>> {
        Ok(lock(&self.entries).last().map(|(s, h, _)| (*s, h.clone())))
    }

    fn append(
        &self,
        seq: u64,
        entry: &serde_json::Value,
        expected_prev: Option<&str>,
    ) -> StoreResult<()> {
        let hash = crate::ports::entry_hash(entry)?.to_owned();
        let mut entries = lock(&self.entries);
        let head = entries.last().map(|(_, h, _)| h.as_str());
        if head != expected_prev {
            return Err(StoreError::Precondition("the log head moved".into()));
        }
        let next = entries.last().map_or(1, |(s, _, _)| s + 1);
        if seq != next {
            return Err(StoreError::Precondition(format!(
                "expected seq {next}, got {seq}"
            )));
        }
        entries.push((seq, hash, entry.clone()));
        Ok(())
    }

    fn entries(&self) -> StoreResult<Vec<serde_json::Value>> {
        Ok(lock(&self.entries)
            .iter()
            .map(|(_, _, e)| e.clone())
            .collect())
    }
}
