//! Ports: the storage contracts the pipeline needs, kept small so an adapter
//! (a directory and SQLite, or S3 and DynamoDB) writes little.
//!
//! Every record-store operation is a key lookup or a query on one partition
//! (a person, a match key, a link token, a dataset's date range), so DynamoDB
//! can serve each without a scan. Conveniences live on extension traits.
//! The ports are synchronous: the pipeline is CPU-bound row work, and an async
//! adapter bridges with its runtime handle.

use std::collections::HashMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

/// A storage failure. Adapters convert their private errors into this.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The object or item does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A create-only write found the key already there.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// A conditional write lost a race (e.g. the lineage head moved).
    #[error("precondition failed: {0}")]
    Precondition(String),
    /// A bad key or argument.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The backend failed; worth retrying.
    #[error("storage backend unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The backend failed in a way a retry will not fix.
    #[error("storage backend error: {message}")]
    Backend {
        /// What failed.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    /// A backend error with its source kept.
    pub fn backend(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Backend {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable { .. } | StoreError::Precondition(_)
        )
    }
}

/// What a backend that has no withdrawal yet answers to its operations.
fn unsupported(what: &str) -> StoreError {
    StoreError::Invalid(format!(
        "{what} (withdrawing an upload) is not supported by this store"
    ))
}

/// Result alias for port calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// How a put treats an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there.
    Overwrite,
    /// Fail with [`StoreError::AlreadyExists`] if the key exists.
    Create,
}

/// What a listing or head returns about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object key, `/`-separated.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// Objects: landing uploads, curated NDJSON, reports, profiles.
///
/// Keys are `/`-separated relative paths such as
/// `landing/<agency>/<dataset>/<file>`; adapters refuse `..` and absolute keys.
pub trait ObjectStore: Send + Sync {
    /// Store everything `data` yields under `key`. Readers never see a partial object.
    fn put_from(&self, key: &str, data: &mut dyn Read, mode: PutMode) -> StoreResult<ObjectMeta>;
    /// Stream an object.
    fn get(&self, key: &str) -> StoreResult<Box<dyn Read + Send>>;
    /// Size of an object, or `NotFound`.
    fn head(&self, key: &str) -> StoreResult<ObjectMeta>;
    /// Remove an object; removing a missing object is not an error.
    fn delete(&self, key: &str) -> StoreResult<()>;
    /// Objects whose key starts with `prefix`, sorted by key.
    fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>>;
}

/// Conveniences over [`ObjectStore`].
pub trait ObjectStoreExt: ObjectStore {
    /// Store a byte slice.
    fn put(&self, key: &str, bytes: &[u8], mode: PutMode) -> StoreResult<ObjectMeta> {
        let mut r = bytes;
        self.put_from(key, &mut r, mode)
    }
    /// Read a whole (small) object.
    fn get_bytes(&self, key: &str) -> StoreResult<Vec<u8>> {
        let mut out = Vec::new();
        self.get(key)?
            .read_to_end(&mut out)
            .map_err(|e| StoreError::backend(format!("reading {key}"), e))?;
        Ok(out)
    }
    /// Whether an object exists.
    fn exists(&self, key: &str) -> StoreResult<bool> {
        match self.head(key) {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl<T: ObjectStore + ?Sized> ObjectStoreExt for T {}

/// A link between two records through a shared value (`x-link`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Link {
    /// What is shared: `crime`, `intel`, `vehicle`, `phone`.
    pub kind: String,
    /// The shared value's token.
    pub token: String,
}

/// A merged, pseudonymised record as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// Deterministic id from (agency, dataset, the agency's record ref).
    pub record_id: String,
    /// The person the record belongs to (after linkage).
    pub person_id: String,
    /// Uploading agency.
    pub agency: String,
    /// Dataset id.
    pub dataset: String,
    /// The event date, `YYYY-MM-DD`.
    pub event_date: String,
    /// The upload that last wrote this record.
    pub upload_id: String,
    /// Its data row in that upload.
    pub row: u64,
    /// Match-key tokens.
    pub match_keys: Vec<String>,
    /// Network link tokens.
    pub links: Vec<Link>,
    /// The curated record (pseudonymised fields, derived fields, provenance).
    pub body: RecordBody,
    /// The record's comparison encodings, from curation to the merge only:
    /// they go to the linkage index ([`LinkageStore`]), never into the
    /// record, so a record read back from a store has none.
    #[serde(skip)]
    pub signature: Option<std::sync::Arc<crate::linkage::Signature>>,
}

/// A curated record's body as JSON text: an object with `fields`, `derived`
/// and `provenance`, exactly as the curated NDJSON line carries it.
///
/// Kept as text because ingest writes it once and stores it as it is, many
/// times a second; only readers (queries, the profile) parse it, once each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBody(String);

/// Stored text that is not a JSON object.
#[derive(Debug, Clone, thiserror::Error)]
#[error("a record body is not a JSON object")]
pub struct BodyError;

impl From<BodyError> for StoreError {
    fn from(e: BodyError) -> Self {
        StoreError::backend("reading a stored record", e)
    }
}

impl RecordBody {
    /// Check that `text` is one JSON object and keep it.
    pub fn from_text(text: String) -> Result<Self, BodyError> {
        // Syntax only (no tree is built), so later parses cannot fail.
        let object = text.trim_start().starts_with('{')
            && serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok();
        if object {
            Ok(RecordBody(text))
        } else {
            Err(BodyError)
        }
    }

    /// Text a store has just read back as it wrote it: its checksum, kept
    /// apart from the text, matched. A store only ever writes the text of a
    /// body, so the syntax check [`RecordBody::from_text`] makes (a full
    /// pass over every byte: half a second of a profile of 1,000,000
    /// records) is not repeated; only the outer braces are checked.
    /// Readers parse with errors, never panics, so bytes rewritten together
    /// with their checksum are a read error, as any corruption is.
    pub fn from_checked(text: String) -> Result<Self, BodyError> {
        let t = text.trim_ascii();
        if t.starts_with('{') && t.ends_with('}') {
            Ok(RecordBody(text))
        } else {
            Err(BodyError)
        }
    }

    /// The body of an object value.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, BodyError> {
        if value.is_object() {
            Ok(RecordBody(value.to_string()))
        } else {
            Err(BodyError)
        }
    }

    /// Text the curator wrote itself; crate-internal because the curator is
    /// what guarantees it is a JSON object.
    pub(crate) fn from_curated(text: String) -> Self {
        RecordBody(text)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text without its provenance: what the agency said, not when it
    /// said it. Two versions of a record with the same content are the same
    /// row re-sent. The curator writes `provenance` as the last key, so its
    /// last occurrence at object level is found from the end (a field of
    /// that name sits earlier, inside `fields`).
    pub fn content(&self) -> &str {
        match self.0.rfind(",\"provenance\":") {
            Some(at) => &self.0[..at],
            None => &self.0,
        }
    }

    /// The body parsed. Construction checked the syntax (or the store its
    /// checksum), so this fails only for text another tool wrote with a
    /// number out of `f64` range, or for a store's damaged bytes.
    pub fn parse(&self) -> Result<serde_json::Value, BodyError> {
        serde_json::from_str(&self.0).map_err(|_| BodyError)
    }
}

impl Serialize for RecordBody {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.parse()
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for RecordBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        RecordBody::from_value(&value).map_err(serde::de::Error::custom)
    }
}

/// One atomic-as-the-backend-allows unit of writes from a merge step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    /// Records to insert or replace, by `record_id`.
    pub records: Vec<StoredRecord>,
    /// Match key → owning person.
    pub key_owners: Vec<(String, String)>,
    /// Match keys no record carries any more.
    pub key_removals: Vec<String>,
    /// Old person id → the id it now resolves to.
    pub aliases: Vec<(String, String)>,
}

impl WriteBatch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.key_owners.is_empty()
            && self.key_removals.is_empty()
            && self.aliases.is_empty()
    }
}

/// How far one batch of an upload's merge got, kept by a store that
/// writes through so that an interrupted ingest (a Lambda past its time, a
/// crash) resumes instead of starting again, and counts what the upload
/// did exactly once.
///
/// An upload's rows are batched the same way on every attempt (same file,
/// same schema, same key), so a batch is named by its number and checked
/// by a fingerprint of its record ids: a mark whose fingerprint differs is
/// of another attempt's batching and is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeMark {
    /// The batch's number in the upload, from 0.
    pub batch: u64,
    /// A hash of the batch's record ids, in order.
    pub fingerprint: String,
    /// `false`: planned, written just before the batch's first write, with
    /// what merging it was about to do; `true`: every write landed.
    pub done: bool,
    /// What merging the batch did (planned: was about to do), as found
    /// before its first write: a retry of a half-written batch would find
    /// its own records and call them unchanged.
    pub stats: crate::link::MergeStats,
    /// What probabilistic linkage did for the batch (known once done).
    pub linkage: crate::linkage::LinkOutcome,
}

/// Merged records, the match-key index, aliases and link index.
///
/// Contract: `apply` makes every write of the batch visible together where the
/// backend can (SQLite: one transaction, or the upload's one transaction
/// inside [`begin_upload`](RecordStore::begin_upload)); where it cannot
/// (DynamoDB), each write is idempotent so replaying the batch after a crash
/// converges. Reads through the same handle always see every applied batch.
pub trait RecordStore: Send + Sync {
    /// Records by id, in the order asked; `None` for unknown ids.
    fn get_records(&self, ids: &[String]) -> StoreResult<Vec<Option<StoredRecord>>>;
    /// The person that owns each known match key.
    fn key_owners(&self, keys: &[String]) -> StoreResult<HashMap<String, String>>;
    /// Every record of a person (by current id), oldest event first.
    fn records_of_person(&self, person_id: &str) -> StoreResult<Vec<StoredRecord>>;
    /// Every record carrying a match key.
    fn records_with_key(&self, key: &str) -> StoreResult<Vec<StoredRecord>>;
    /// Every record carrying a link token.
    fn records_with_link(&self, token: &str) -> StoreResult<Vec<StoredRecord>>;
    /// Stream a dataset's records with `from <= event_date <= to` (inclusive,
    /// either bound optional), by event date. `visit` returning `false` stops.
    fn scan_dataset(
        &self,
        dataset: &str,
        from: Option<&str>,
        to: Option<&str>,
        visit: &mut dyn FnMut(StoredRecord) -> bool,
    ) -> StoreResult<()>;
    /// Datasets that have records.
    fn datasets(&self) -> StoreResult<Vec<String>>;
    /// The id an old person id now resolves to, if it was merged away.
    fn alias(&self, person_id: &str) -> StoreResult<Option<String>>;
    /// Write a batch.
    fn apply(&self, batch: &WriteBatch) -> StoreResult<()>;
    /// Start writing one upload. Until [`end_upload`](Self::end_upload),
    /// reads through this handle see every applied batch, but the backend
    /// may hold the writes back from other readers and index them in one
    /// pass (SQLite: one transaction, indexes merged in sorted order).
    /// A backend that writes through (DynamoDB, memory) does nothing.
    fn begin_upload(&self) -> StoreResult<()> {
        Ok(())
    }
    /// Finish the upload begun by [`begin_upload`](Self::begin_upload):
    /// `keep` publishes its writes; `!keep` discards them where the backend
    /// can (SQLite rolls back). A write-through backend keeps them either
    /// way, which is safe because every merge write is idempotent.
    fn end_upload(&self, keep: bool) -> StoreResult<()> {
        let _ = keep;
        Ok(())
    }
    /// Whether merged writes are visible to other readers before
    /// [`end_upload`](Self::end_upload) (DynamoDB: no transaction spans an
    /// upload). Such a store gets an `ingest_started` lineage event before
    /// an upload merges, so no merged record is ever one lineage does not
    /// account for, even while the ingest runs or after it died.
    fn writes_through(&self) -> bool {
        false
    }
    /// The marks an earlier, interrupted merge of `upload` left, in any
    /// order (see [`MergeMark`]). Only a store that
    /// [writes through](Self::writes_through) is asked; one that publishes
    /// an upload whole (SQLite) has nothing to resume and keeps none.
    fn merge_marks(&self, upload: &str) -> StoreResult<Vec<MergeMark>> {
        let _ = upload;
        Ok(Vec::new())
    }
    /// Keep (or overwrite) the mark of one batch of `upload`'s merge.
    fn put_merge_mark(&self, upload: &str, mark: &MergeMark) -> StoreResult<()> {
        let _ = (upload, mark);
        Err(unsupported("resumable merges"))
    }
    /// Forget `upload`'s marks once lineage accounts for the upload.
    fn clear_merge_marks(&self, upload: &str) -> StoreResult<()> {
        let _ = upload;
        Ok(())
    }
    /// Where a key rotation keeps its state and translations, or `None` for
    /// a store that cannot rotate its key.
    fn translations(&self) -> Option<&dyn TranslationStore> {
        None
    }

    /// The probabilistic-linkage index kept beside the records, or `None`
    /// for a store that links by exact match keys only.
    fn linkage(&self) -> Option<&dyn LinkageStore> {
        None
    }
    /// Every record the upload `upload_id` last wrote, in no particular
    /// order (withdrawal). `visit` returning `false` stops. The default
    /// reads every dataset; a store that can find an upload's records
    /// without reading them all should.
    fn scan_upload(
        &self,
        upload_id: &str,
        visit: &mut dyn FnMut(StoredRecord) -> bool,
    ) -> StoreResult<()> {
        let mut go = true;
        for dataset in self.datasets()? {
            self.scan_dataset(&dataset, None, None, &mut |r| {
                if r.upload_id == upload_id {
                    go = visit(r);
                }
                go
            })?;
            if !go {
                break;
            }
        }
        Ok(())
    }
    /// Remove records by id with every index entry that points at them
    /// (withdrawal); ids not stored are skipped. Returns how many were
    /// removed. Their key owners and aliases are the caller's to fix
    /// ([`crate::withdraw`] does). Same atomicity as [`apply`](Self::apply).
    fn remove_records(&self, ids: &[String]) -> StoreResult<u64> {
        let _ = ids;
        Err(unsupported("removing records"))
    }
    /// The old person ids whose alias points straight at `person_id`.
    fn aliases_to(&self, person_id: &str) -> StoreResult<Vec<String>> {
        let _ = person_id;
        Err(unsupported("listing aliases"))
    }
    /// Remove the aliases of these old person ids.
    fn remove_aliases(&self, old_ids: &[String]) -> StoreResult<()> {
        let _ = old_ids;
        Err(unsupported("removing aliases"))
    }
    /// How many records the store holds, by the upload that last wrote
    /// them, agency and dataset: what [`crate::reconcile`] compares with
    /// lineage. The default reads every record; a store that can count
    /// without reading bodies should.
    fn record_counts(&self) -> StoreResult<crate::reconcile::RecordCounts> {
        let mut counts = crate::reconcile::RecordCounts::new();
        for dataset in self.datasets()? {
            self.scan_dataset(&dataset, None, None, &mut |r| {
                *counts
                    .entry(crate::reconcile::RecordGroup {
                        upload_id: r.upload_id,
                        agency: r.agency,
                        dataset: r.dataset,
                    })
                    .or_default() += 1;
                true
            })?;
        }
        Ok(counts)
    }
}

/// One record's signature, for the linkage index.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureEntry {
    /// The signature.
    pub signature: std::sync::Arc<crate::linkage::Signature>,
    /// The person the record belongs to.
    pub person_id: String,
    /// The record.
    pub record_id: String,
}

/// A signature as the linkage index keeps it: the codes once, and every
/// person some record carrying it belongs to (with one such record each).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSignature {
    /// The signature.
    pub signature: crate::linkage::Signature,
    /// `(person_id, record_id)` pairs, by person id.
    pub people: Vec<(String, String)>,
}

/// A key rotation's working state (see [`crate::rotation`]): which
/// rotation is open, and the old value → new value translations ingests
/// recorded while it was. As sensitive as the records (a translation joins
/// two tokens of one value), kept beside them, and cleared when the
/// rotation is complete.
///
/// Writes are idempotent (a translation is a pure function of the value
/// and the two keys), so a replayed ingest converges.
pub trait TranslationStore: Send + Sync {
    /// The open rotation's state, as [`crate::rotation`] wrote it.
    fn rotation_state(&self) -> StoreResult<Option<String>>;
    /// Set (`Some`) or clear (`None`) the rotation's state.
    fn set_rotation_state(&self, state: Option<&str>) -> StoreResult<()>;
    /// Record translations `(old, new)`, replacing what an old value had
    /// (a token's translation never changes; a record's encodings under
    /// the new key change when its row does).
    fn put_translations(&self, pairs: &[(String, String)]) -> StoreResult<()>;
    /// The translations held for `olds` (absent ones left out).
    fn get_translations(&self, olds: &[String]) -> StoreResult<HashMap<String, String>>;
    /// Delete every translation; how many there were.
    fn clear_translations(&self) -> StoreResult<u64>;
    /// Every translation, `(old, new)`, to `f`: a withdrawal or expiry
    /// during a rotation looks for what its records alone held.
    fn scan_translations(&self, f: &mut dyn FnMut(&str, &str)) -> StoreResult<()>;
    /// Delete the translations of `olds` (absent ones ignored); how many
    /// there were.
    fn delete_translations(&self, olds: &[String]) -> StoreResult<u64>;
}

/// The probabilistic-linkage index: signatures by id and by blocking key,
/// the clerical review queue and the linkage model.
///
/// Same contract as [`RecordStore::apply`]: inside an upload the writes are
/// part of the upload's transaction where the backend has one; every write
/// is idempotent so a replay converges where it has not.
pub trait LinkageStore: Send + Sync {
    /// Add signatures and their people. Returns, for each entry, whether
    /// its (signature, person) pair is new to the index.
    fn put_signatures(&self, entries: &[SignatureEntry]) -> StoreResult<Vec<bool>>;
    /// Signatures by id, in the order asked; `None` for unknown ids.
    fn get_signatures(&self, ids: &[String]) -> StoreResult<Vec<Option<StoredSignature>>>;
    /// Ids of signatures under a blocking key, at most `limit` of them
    /// (ask for one more than you will use to tell an oversized block).
    fn signatures_in_block(&self, block: &str, limit: usize) -> StoreResult<Vec<String>>;
    /// [`signatures_in_block`](Self::signatures_in_block) for each of
    /// `blocks`, in the order asked. A backend with a round trip per call
    /// overrides it to ask concurrently.
    fn signatures_in_blocks(
        &self,
        blocks: &[String],
        limit: usize,
    ) -> StoreResult<Vec<Vec<String>>> {
        blocks
            .iter()
            .map(|b| self.signatures_in_block(b, limit))
            .collect()
    }
    /// Every signature, in no particular order (model training only).
    /// `visit` returning `false` stops.
    fn scan_signatures(&self, visit: &mut dyn FnMut(StoredSignature) -> bool) -> StoreResult<()>;
    /// Create or replace a review item (by id).
    fn put_review(&self, item: &crate::linkage::ReviewItem) -> StoreResult<()>;
    /// One review item.
    fn get_review(&self, id: &str) -> StoreResult<Option<crate::linkage::ReviewItem>>;
    /// Every review item, by id.
    fn review_items(&self) -> StoreResult<Vec<crate::linkage::ReviewItem>>;
    /// Forget removed records (withdrawal): every (signature, person)
    /// pair whose record is one of `record_ids` goes, and a signature left
    /// with no pair goes with its blocking keys. Returns the signatures
    /// removed. A person who still holds another record with the same
    /// signature loses that pair too (the index keeps one record a pair
    /// and records do not keep their signatures): their later records
    /// link to them again as they arrive.
    fn forget_records(&self, record_ids: &[String]) -> StoreResult<u64> {
        let _ = record_ids;
        Err(unsupported("removing linkage entries"))
    }
    /// Remove a review item (withdrawal of a record it names).
    fn remove_review(&self, id: &str) -> StoreResult<()> {
        let _ = id;
        Err(unsupported("removing review items"))
    }
    /// Store a model as the current one (its version must be new).
    fn put_model(&self, model: &crate::linkage::LinkModel) -> StoreResult<()>;
    /// The current model, or `None` before the first `link train`.
    fn model(&self) -> StoreResult<Option<crate::linkage::LinkModel>>;
}

/// Conveniences over [`RecordStore`].
pub trait RecordStoreExt: RecordStore {
    /// Follow aliases to the current id (cycles are cut after 64 hops).
    fn resolve_person(&self, person_id: &str) -> StoreResult<String> {
        let mut id = person_id.to_owned();
        for _ in 0..64 {
            match self.alias(&id)? {
                Some(next) if next != id => id = next,
                _ => break,
            }
        }
        Ok(id)
    }
    /// One record.
    fn get_record(&self, id: &str) -> StoreResult<Option<StoredRecord>> {
        Ok(self.get_records(&[id.to_owned()])?.pop().flatten())
    }
}

impl<T: RecordStore + ?Sized> RecordStoreExt for T {}

/// An append-only, hash-chained log (lineage, access log).
///
/// Entries are opaque JSON with a `seq`, `prev_hash` and `hash` that the core
/// computes; the log's job is to keep them in order and never fork: `append`
/// succeeds only if the current head hash equals `expected_prev`.
pub trait ChainLog: Send + Sync {
    /// The last entry's `(seq, hash)`, or `None` when empty.
    fn head(&self) -> StoreResult<Option<(u64, String)>>;
    /// Append `entry` (with its `seq`) if the head is still `expected_prev`,
    /// else [`StoreError::Precondition`].
    fn append(
        &self,
        seq: u64,
        entry: &serde_json::Value,
        expected_prev: Option<&str>,
    ) -> StoreResult<()>;
    /// All entries in order. Auditors' reads (listing, verification);
    /// nothing that runs on every upload or request reads the whole log.
    fn entries(&self) -> StoreResult<Vec<serde_json::Value>>;
    /// Up to `limit` entries whose `seq` is greater than `after`, in order:
    /// one page of the log (`after` 0 is the start). Adapters read only
    /// the page; this default, for logs held in memory, filters them all.
    fn page(&self, after: u64, limit: usize) -> StoreResult<Vec<serde_json::Value>> {
        Ok(self
            .entries()?
            .into_iter()
            .filter(|e| entry_seq(e) > after)
            .take(limit)
            .collect())
    }
    /// Up to `limit` entries whose `seq` is less than `before` (`None`:
    /// from the head), newest first.
    fn page_back(&self, before: Option<u64>, limit: usize) -> StoreResult<Vec<serde_json::Value>> {
        Ok(self
            .entries()?
            .into_iter()
            .rev()
            .filter(|e| before.is_none_or(|b| entry_seq(e) < b))
            .take(limit)
            .collect())
    }
    /// The entries whose `upload_id` is `upload_id`, in order: how ingest
    /// finds a duplicate upload. Adapters index lineage by upload, so this
    /// reads that upload's few events, never the log.
    fn upload_entries(&self, upload_id: &str) -> StoreResult<Vec<serde_json::Value>> {
        Ok(self
            .entries()?
            .into_iter()
            .filter(|e| e.get("upload_id").and_then(serde_json::Value::as_str) == Some(upload_id))
            .collect())
    }
}

/// An entry's `seq` (0 when it has none: a corrupt entry).
pub fn entry_seq(entry: &serde_json::Value) -> u64 {
    entry
        .get("seq")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

/// The `hash` a chained entry must carry; every [`ChainLog`] adapter checks it.
pub fn entry_hash(entry: &serde_json::Value) -> StoreResult<&str> {
    entry
        .get("hash")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| StoreError::Invalid("a chained entry needs a `hash`".into()))
}

/// Where the pseudonymisation key comes from.
pub trait KeyProvider: Send + Sync {
    /// The key to use (fetched once and cached by the adapter).
    fn key(&self) -> Result<crate::pseudo::key::Key, KeySourceError>;
}

/// A key that cannot be had. Never carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeySourceError {
    /// The key source is missing.
    #[error("no pseudonymisation key: {0}")]
    Missing(String),
    /// The key is there but unusable.
    #[error("the pseudonymisation key is unusable: {0}")]
    Invalid(String),
    /// The key store could not be reached.
    #[error("the key store could not be reached: {0}")]
    Unavailable(String),
}
