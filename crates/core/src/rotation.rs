//! Key rotation: moving a store from one pseudonymisation key to the next
//! without losing a link or a person id.
//!
//! A token can only be recomputed from the raw value, which the store never
//! keeps. So a rotation learns its translations from the data agencies send
//! while it is open, and then rewrites the records those translations cover:
//!
//! 1. **Open** (`agencylink key rotate`, the key custodian): a new key is
//!    made and a `key_rotate` event appended. The store stays under the old
//!    key; ingest goes on under it as before.
//! 2. While open, every ingest first reads its file once more under both
//!    keys ([`record_translations`]) and keeps, for each value it sees, the
//!    old token → new token translation (record ids, match keys, link
//!    tokens, every token in a record's body), and each record's comparison
//!    encodings under the new key.
//! 3. **Migrate** (`agencylink key migrate`): every stored record all of
//!    whose tokens have translations is rewritten under the new key, in one
//!    store session, with its person id, upload and row kept; its match
//!    keys, link index entries, linkage-index entry and review items move
//!    with it. A `key_migrate` event records the counts, and from it on the
//!    store's key is the new one. The migrated body is byte for byte what
//!    curating the same row under the new key writes.
//! 4. **Draining**: records with a value no upload sent during the rotation
//!    stay under the old key, opaque and unlinkable to new data. While any
//!    are left the old key is kept as the previous key, and an ingest that
//!    re-sends them moves them first ([`migrate`] with [`Scope::Upload`]),
//!    so the re-sent rows replace them in place rather than duplicate them.
//!    When none is left (or the custodian finishes the rotation), the
//!    translations are deleted and the old key retired.
//!
//! The state lives in the store ([`TranslationStore`]), so every ingest
//! learns it with one read, not by reading lineage.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;

use serde::{Deserialize, Serialize};

use crate::curate::{Curator, Provenance};
use crate::events::{KeyMigrateEvent, KeyRotateEvent, LineageEvent};
use crate::ingest::{UploadInfo, upload_id};
use crate::lineage;
use crate::linkage::{ReviewItem, Signature, review_id};
use crate::ports::{
    ChainLog, RecordBody, RecordStore, SignatureEntry, StoreError, StoredRecord, TranslationStore,
    WriteBatch,
};
use crate::pseudo::{KeyId, Pseudonymiser};
use crate::read;
use crate::schema::Dataset;
use crate::validate::{DateBounds, RowValidator};

/// Translation-table key prefix for a record's comparison encodings under
/// the new key, by its new record id.
const SIG: &str = "sig|";

/// Base32 characters of a token's MAC (20 bytes).
const TOKEN_CHARS: usize = 32;

/// Records read and rewritten at a time.
const CHUNK: usize = 500;

/// Where a rotation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Opened; the store is still under the old key.
    Open,
    /// Migrated; some records are still under the old key.
    Draining,
}

/// The open rotation, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationState {
    /// The old key id.
    pub from: String,
    /// The new key id.
    pub to: String,
    /// Where it stands.
    pub phase: Phase,
    /// Records still under the old key (known once migrated).
    #[serde(default)]
    pub left: u64,
}

impl RotationState {
    /// The key id ingest and queries run under: the old one until the
    /// migration, the new one after.
    pub fn store_key(&self) -> &str {
        match self.phase {
            Phase::Open => &self.from,
            Phase::Draining => &self.to,
        }
    }

    /// The other key an ingest needs as well.
    pub fn other_key(&self) -> &str {
        match self.phase {
            Phase::Open => &self.to,
            Phase::Draining => &self.from,
        }
    }
}

/// Why a rotation step could not run. Never names a token or a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// The store keeps no rotation state.
    #[error("this store cannot rotate its key")]
    Unsupported,
    /// A rotation is already open.
    #[error(
        "a key rotation from {from} to {to} is already open: run `agencylink key migrate` to finish it first"
    )]
    AlreadyOpen {
        /// Its old key id.
        from: String,
        /// Its new key id.
        to: String,
    },
    /// No rotation is open.
    #[error("no key rotation is open: run `agencylink key rotate` first")]
    NotOpen,
    /// The new key is the old key.
    #[error("the new key has the same key id ({0}) as the store's key")]
    SameKey(String),
    /// A key was not the one the step needs.
    #[error("this step needs key {expected}, but was given key {given}")]
    WrongKey {
        /// The key id needed.
        expected: String,
        /// The key id given.
        given: String,
    },
    /// The stored state is unreadable.
    #[error("the stored key-rotation state is unreadable: {0}")]
    State(String),
    /// The upload time is not an RFC 3339 date-time.
    #[error("the upload time `{0}` is not an RFC 3339 date-time")]
    Time(String),
    /// The store's key is not the one given.
    #[error(transparent)]
    KeyMismatch(#[from] lineage::KeyMismatch),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn translations(records: &dyn RecordStore) -> Result<&dyn TranslationStore, RotationError> {
    records.translations().ok_or(RotationError::Unsupported)
}

/// The rotation the store has open, if any.
pub fn state(records: &dyn RecordStore) -> Result<Option<RotationState>, RotationError> {
    let Some(t) = records.translations() else {
        return Ok(None);
    };
    t.rotation_state()?
        .map(|text| serde_json::from_str(&text).map_err(|e| RotationError::State(e.to_string())))
        .transpose()
}

fn save(t: &dyn TranslationStore, s: Option<&RotationState>) -> Result<(), RotationError> {
    let text = s.map(|s| serde_json::to_string(s).unwrap_or_default());
    Ok(t.set_rotation_state(text.as_deref())?)
}

/// Open a rotation from `from` (the store's key) to `to`.
pub fn open(
    records: &dyn RecordStore,
    log: &dyn ChainLog,
    from: &KeyId,
    to: &KeyId,
    time: &str,
) -> Result<KeyRotateEvent, RotationError> {
    let t = translations(records)?;
    if from == to {
        return Err(RotationError::SameKey(from.to_string()));
    }
    crate::withdraw::in_session(records, || {
        if let Some(s) = state(records)? {
            return Err(RotationError::AlreadyOpen {
                from: s.from,
                to: s.to,
            });
        }
        lineage::check_store_key_in(log, from.as_str())??;
        // Translations a finished rotation left behind would be wrong now.
        t.clear_translations()?;
        save(
            t,
            Some(&RotationState {
                from: from.to_string(),
                to: to.to_string(),
                phase: Phase::Open,
                left: 0,
            }),
        )?;
        let event = KeyRotateEvent {
            from_key_id: from.to_string(),
            to_key_id: to.to_string(),
            time: time.to_owned(),
        };
        lineage::append_event(log, &LineageEvent::KeyRotate(event.clone()))?;
        Ok(event)
    })
}

/// What [`record_translations`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Valid rows read under both keys.
    pub rows: u64,
    /// Their record ids under the old key.
    pub old_records: Vec<String>,
    /// Translations recorded (counting repeats).
    pub translations: u64,
}

/// Read an upload under both keys of the open rotation and record the
/// translations of every value in its valid rows. `old` and `new` are the
/// rotation's keys; the caller reads the file again for the ingest itself.
pub fn record_translations(
    records: &dyn RecordStore,
    dataset: &Dataset,
    old: &Pseudonymiser,
    new: &Pseudonymiser,
    info: &UploadInfo,
    input: &mut dyn BufRead,
) -> Result<Seen, RotationError> {
    let t = translations(records)?;
    let s = state(records)?.ok_or(RotationError::NotOpen)?;
    for (given, expected) in [(old.kid(), &s.from), (new.kid(), &s.to)] {
        if given.as_str() != expected {
            return Err(RotationError::WrongKey {
                expected: expected.clone(),
                given: given.to_string(),
            });
        }
    }
    let bounds =
        DateBounds::on(&info.time).ok_or_else(|| RotationError::Time(info.time.clone()))?;
    let validator = RowValidator::new(dataset).with_date_bounds(bounds);
    let provenance = Provenance {
        agency: info.agency.clone(),
        upload_id: upload_id(&info.agency, &dataset.id, &info.sha256),
    };
    let (c_old, c_new) = (
        Curator::new(dataset, old, provenance.clone()),
        Curator::new(dataset, new, provenance),
    );
    let mut rows = read::open(info.format, input, dataset);
    let mut seen = Seen::default();
    let mut pending: Vec<(String, String)> = Vec::new();
    let mut errors = Vec::new();
    // A file-level problem ends the reading: ingest refuses the rest too.
    while let Some(Ok(row)) = rows.next_row() {
        errors.clear();
        if !validator.check(row, &mut errors) {
            continue;
        }
        let (Ok(a), Ok(b)) = (c_old.curate(row), c_new.curate(row)) else {
            continue;
        };
        seen.rows += 1;
        pairs(&a, &b, old.kid().as_str(), &mut pending);
        seen.old_records.push(a.record_id);
        if pending.len() >= CHUNK * 8 {
            seen.translations += pending.len() as u64;
            t.put_translations(&std::mem::take(&mut pending))?;
        }
    }
    seen.translations += pending.len() as u64;
    t.put_translations(&pending)?;
    Ok(seen)
}

/// The translations one row's two curations give: its record id, match
/// keys, link tokens, every token in its body, its comparison encodings'
/// id, and (under [`SIG`]) the encodings themselves.
fn pairs(old: &StoredRecord, new: &StoredRecord, from: &str, out: &mut Vec<(String, String)>) {
    out.push((old.record_id.clone(), new.record_id.clone()));
    for (a, b) in old.match_keys.iter().zip(&new.match_keys) {
        out.push((a.clone(), b.clone()));
    }
    for (a, b) in old.links.iter().zip(&new.links) {
        out.push((a.token.clone(), b.token.clone()));
    }
    // The two bodies differ only in their tokens, record id and key id,
    // so their tokens come in the same order.
    // A body whose token counts differ (free text that looks like a token
    // under one key) gives none: its record then stays under the old key,
    // which is safe, where a misaligned pair would join two values.
    let a: Vec<&str> = tokens_in(old.body.as_str(), from).collect();
    let b: Vec<&str> = tokens_in(new.body.as_str(), new_kid(new)).collect();
    if a.len() == b.len() {
        for (a, b) in a.into_iter().zip(b) {
            out.push((a.to_owned(), b.to_owned()));
        }
    }
    if let (Some(a), Some(b)) = (&old.signature, &new.signature) {
        out.push((a.id.clone(), b.id.clone()));
        if let Ok(json) = serde_json::to_string(&**b) {
            out.push((format!("{SIG}{}", new.record_id), json));
        }
    }
}

/// The strings of `r` a translation may hold, under either of a
/// rotation's key ids `kids`: its record id, match keys, link tokens, every
/// token in its body and its comparison encodings' id.
fn record_strings(r: &StoredRecord, kids: [&str; 2], out: &mut HashSet<String>) {
    out.insert(r.record_id.clone());
    out.extend(r.match_keys.iter().cloned());
    out.extend(r.links.iter().map(|l| l.token.clone()));
    for kid in kids {
        out.extend(tokens_in(r.body.as_str(), kid).map(str::to_owned));
    }
    if let Some(sig) = &r.signature {
        out.insert(sig.id.clone());
    }
}

/// What removed records held that a translation may name, gathered while
/// a rotation is open (see [`forget_removed`]); nothing otherwise.
#[derive(Debug, Default)]
pub struct RemovedStrings {
    kids: Option<[String; 2]>,
    strings: HashSet<String>,
}

impl RemovedStrings {
    /// Gather for `records`' open rotation, if it has one.
    pub fn new(records: &dyn RecordStore) -> Result<Self, StoreError> {
        let kids = state(records)
            .map_err(|e| match e {
                RotationError::Store(e) => e,
                other => StoreError::Invalid(other.to_string()),
            })?
            .map(|s| [s.from, s.to]);
        Ok(RemovedStrings {
            kids,
            strings: HashSet::new(),
        })
    }

    /// Take `r`'s strings too.
    pub fn add(&mut self, r: &StoredRecord) {
        if let Some([a, b]) = &self.kids {
            record_strings(r, [a, b], &mut self.strings);
        }
    }
}

/// After records are removed (a withdrawal, an expiry) while a rotation is
/// open, delete the translations only they held, so no trace of them is
/// left once the store is compacted: a pair either of whose sides the
/// removed records carried, unless a live record still holds either side
/// (it still needs the pair to migrate), and the removed records'
/// comparison encodings under the new key. Returns how many went. Reads
/// every translation and every live record: a withdrawal during a
/// rotation is rare, and being exact matters more than being quick.
pub fn forget_removed(
    records: &dyn RecordStore,
    removed: &RemovedStrings,
) -> Result<u64, StoreError> {
    let (Some([from, to]), Some(t)) = (&removed.kids, records.translations()) else {
        return Ok(0);
    };
    if removed.strings.is_empty() {
        return Ok(0);
    }
    let gone = &removed.strings;
    let mut touched: Vec<(String, String)> = Vec::new();
    let mut encodings: Vec<String> = Vec::new();
    t.scan_translations(&mut |old, new| {
        if let Some(id) = old.strip_prefix(SIG) {
            if gone.contains(id) {
                touched.push((old.to_owned(), String::new()));
            } else {
                encodings.push(id.to_owned());
            }
        } else if gone.contains(old) || gone.contains(new) {
            touched.push((old.to_owned(), new.to_owned()));
        }
    })?;
    // A record removed while under the old key has its encodings filed
    // under its new id, which only its id's translation names.
    let new_ids: HashSet<&str> = touched.iter().map(|(_, n)| n.as_str()).collect();
    let more: Vec<(String, String)> = encodings
        .iter()
        .filter(|id| new_ids.contains(id.as_str()))
        .map(|id| (format!("{SIG}{id}"), String::new()))
        .collect();
    touched.extend(more);
    if touched.is_empty() {
        return Ok(0);
    }
    let wanted: HashSet<&str> = touched
        .iter()
        .flat_map(|(o, n)| [o.strip_prefix(SIG).unwrap_or(o), n.as_str()])
        .filter(|s| !s.is_empty())
        .collect();
    let mut live: HashSet<String> = HashSet::new();
    let mut mine = HashSet::new();
    for dataset in records.datasets()? {
        records.scan_dataset(&dataset, None, None, &mut |r| {
            mine.clear();
            record_strings(&r, [from, to], &mut mine);
            live.extend(mine.drain().filter(|s| wanted.contains(s.as_str())));
            true
        })?;
    }
    let doomed: Vec<String> = touched
        .into_iter()
        .filter(|(o, n)| !live.contains(o.strip_prefix(SIG).unwrap_or(o)) && !live.contains(n))
        .map(|(o, _)| o)
        .collect();
    t.delete_translations(&doomed)
}

/// The key id a freshly curated record was made under (its provenance's).
fn new_kid(r: &StoredRecord) -> &str {
    key_id_of(r.body.as_str()).unwrap_or_default()
}

/// The `key_id` in a body's provenance (the curator writes it last).
fn key_id_of(body: &str) -> Option<&str> {
    let at = body.rfind(",\"key_id\":\"")? + ",\"key_id\":\"".len();
    let rest = &body[at..];
    Some(&rest[..rest.find('"')?])
}

/// The tokens under key `kid` in JSON text, in order: every string of the
/// form `kind:kid:base32`.
fn tokens_in<'a>(text: &'a str, kid: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let needle = format!(":{kid}:");
    let mut from = 0;
    std::iter::from_fn(move || {
        loop {
            let at = from + text[from..].find(&needle)?;
            let start = text[..at]
                .rfind(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .map_or(0, |i| i + 1);
            let tail = at + needle.len();
            let end = text[tail..]
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
                .map_or(text.len(), |i| tail + i);
            from = end.max(at + 1);
            // A token is a whole JSON string; anything else (free text that
            // happens to contain the pattern) is left alone.
            let quoted = start > 0
                && text.as_bytes()[start - 1] == b'"'
                && text.as_bytes().get(end) == Some(&b'"');
            if quoted && start < at && end - tail == TOKEN_CHARS {
                return Some(&text[start..end]);
            }
        }
    })
}

/// What an ingest does first while a rotation is open or draining: read
/// the upload under both keys to record its translations and, once the
/// store has migrated, move the records it re-sends that are still under
/// the old key (so its rows replace them instead of adding copies).
/// `store_key` is the key the ingest runs under ([`RotationState::store_key`])
/// and `other` the rotation's other key. Reads `input` to the end; the
/// caller reads the file again for the ingest.
#[allow(clippy::too_many_arguments)]
pub fn before_ingest(
    records: &dyn RecordStore,
    log: &dyn ChainLog,
    dataset: &Dataset,
    store_key: &Pseudonymiser,
    other: &Pseudonymiser,
    info: &UploadInfo,
    input: &mut dyn BufRead,
) -> Result<Option<KeyMigrateEvent>, RotationError> {
    let s = state(records)?.ok_or(RotationError::NotOpen)?;
    let (old, new) = match s.phase {
        Phase::Open => (store_key, other),
        Phase::Draining => (other, store_key),
    };
    let seen = record_translations(records, dataset, old, new, info, input)?;
    if s.phase == Phase::Open {
        return Ok(None);
    }
    let upload = upload_id(&info.agency, &dataset.id, &info.sha256);
    migrate(
        records,
        log,
        Scope::Upload {
            upload_id: &upload,
            records: &seen.old_records,
        },
        false,
        &info.time,
    )
}

/// What a migration covers.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every record under the old key (`agencylink key migrate`).
    Store,
    /// The records an upload is about to re-send, after the migration.
    Upload {
        /// The upload.
        upload_id: &'a str,
        /// Their record ids under the old key ([`Seen::old_records`]).
        records: &'a [String],
    },
}

/// Rewrite the records under the rotation's old key that its translations
/// cover, in one store session, and append a `key_migrate` event. With
/// `finish`, the rotation ends even if records are left under the old key
/// (they stay, unlinkable, until withdrawn or expired). `Ok(None)` when an
/// upload-scoped migration found nothing to move.
pub fn migrate(
    records: &dyn RecordStore,
    log: &dyn ChainLog,
    scope: Scope<'_>,
    finish: bool,
    time: &str,
) -> Result<Option<KeyMigrateEvent>, RotationError> {
    let t = translations(records)?;
    crate::withdraw::in_session(records, || {
        let mut s = state(records)?.ok_or(RotationError::NotOpen)?;
        let under_old = |r: &StoredRecord| key_id_of(r.body.as_str()) == Some(s.from.as_str());
        let candidates: Vec<String> = match scope {
            Scope::Store => {
                let mut ids = Vec::new();
                for ds in records.datasets()? {
                    records.scan_dataset(&ds, None, None, &mut |r| {
                        if under_old(&r) {
                            ids.push(r.record_id);
                        }
                        true
                    })?;
                }
                ids
            }
            Scope::Upload { records: ids, .. } => {
                if s.phase != Phase::Draining {
                    return Ok(None);
                }
                records
                    .get_records(ids)?
                    .into_iter()
                    .flatten()
                    .filter(|r| under_old(r))
                    .map(|r| r.record_id)
                    .collect()
            }
        };
        let mut moved = Moved::default();
        for chunk in candidates.chunks(CHUNK) {
            migrate_chunk(records, t, chunk, &s, &mut moved)?;
        }
        if matches!(scope, Scope::Upload { .. }) && moved.records == 0 {
            return Ok(None);
        }
        let reviews = if moved.ids.is_empty() {
            0
        } else {
            migrate_reviews(records, t)?
        };
        let left = match scope {
            Scope::Store => candidates.len() as u64 - moved.records,
            Scope::Upload { .. } => s.left.saturating_sub(moved.records),
        };
        let complete = left == 0 || finish;
        if complete {
            t.clear_translations()?;
            save(t, None)?;
        } else {
            s.phase = Phase::Draining;
            s.left = left;
            save(t, Some(&s))?;
        }
        let (scope_name, upload) = match scope {
            Scope::Store => ("store", None),
            Scope::Upload { upload_id, .. } => ("upload", Some(upload_id.to_owned())),
        };
        let event = KeyMigrateEvent {
            from_key_id: s.from.clone(),
            key_id: s.to.clone(),
            scope: scope_name.to_owned(),
            upload_id: upload,
            records_migrated: moved.records,
            records_migrated_from: moved.from,
            records_untranslated: left,
            reviews_migrated: reviews,
            complete,
            time: time.to_owned(),
        };
        lineage::append_event(log, &LineageEvent::KeyMigrate(event.clone()))?;
        Ok(Some(event))
    })
}

#[derive(Debug, Default)]
struct Moved {
    records: u64,
    from: BTreeMap<String, u64>,
    ids: HashSet<String>,
}

/// A record under the new key, when every token in it has a translation.
fn translate(
    r: &StoredRecord,
    map: &HashMap<String, String>,
    s: &RotationState,
) -> Option<StoredRecord> {
    let record_id = map.get(&r.record_id)?.clone();
    let match_keys = r
        .match_keys
        .iter()
        .map(|k| map.get(k).cloned())
        .collect::<Option<Vec<_>>>()?;
    let links = r
        .links
        .iter()
        .map(|l| {
            map.get(&l.token).map(|t| crate::ports::Link {
                kind: l.kind.clone(),
                token: t.clone(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let text = r.body.as_str();
    let mut body = String::with_capacity(text.len());
    let mut at = 0;
    for tok in tokens_in(text, &s.from) {
        let start = tok.as_ptr() as usize - text.as_ptr() as usize;
        body.push_str(&text[at..start]);
        body.push_str(map.get(tok)?);
        at = start + tok.len();
    }
    body.push_str(&text[at..]);
    let head = format!("{{\"record_id\":\"{}\"", r.record_id);
    let body = body
        .strip_prefix(&head)
        .map(|rest| format!("{{\"record_id\":\"{record_id}\"{rest}"))?;
    let tail_at = body.rfind(",\"key_id\":\"")?;
    let old_tail = format!(",\"key_id\":\"{}\"", s.from);
    if !body[tail_at..].starts_with(&old_tail) {
        return None;
    }
    let body = format!(
        "{},\"key_id\":\"{}\"{}",
        &body[..tail_at],
        s.to,
        &body[tail_at + old_tail.len()..]
    );
    Some(StoredRecord {
        record_id,
        match_keys,
        links,
        body: RecordBody::from_text(body).ok()?,
        signature: None,
        ..r.clone()
    })
}

fn migrate_chunk(
    records: &dyn RecordStore,
    t: &dyn TranslationStore,
    ids: &[String],
    s: &RotationState,
    moved: &mut Moved,
) -> Result<(), RotationError> {
    let olds: Vec<StoredRecord> = records.get_records(ids)?.into_iter().flatten().collect();
    let mut wanted: Vec<String> = Vec::new();
    for r in &olds {
        wanted.push(r.record_id.clone());
        wanted.extend(r.match_keys.iter().cloned());
        wanted.extend(r.links.iter().map(|l| l.token.clone()));
        wanted.extend(tokens_in(r.body.as_str(), &s.from).map(str::to_owned));
    }
    wanted.sort_unstable();
    wanted.dedup();
    let map = t.get_translations(&wanted)?;
    let mut news: Vec<(StoredRecord, StoredRecord)> = olds
        .into_iter()
        .filter_map(|r| translate(&r, &map, s).map(|n| (r, n)))
        .collect();
    if news.is_empty() {
        return Ok(());
    }
    let sig_keys: Vec<String> = news
        .iter()
        .map(|(_, n)| format!("{SIG}{}", n.record_id))
        .collect();
    let sigs = t.get_translations(&sig_keys)?;
    for (_, n) in &mut news {
        n.signature = sigs
            .get(&format!("{SIG}{}", n.record_id))
            .and_then(|json| serde_json::from_str::<Signature>(json).ok())
            .map(std::sync::Arc::new);
    }
    // New before old: on a backend that writes through (DynamoDB), a
    // migration killed part-way leaves both copies, never neither, and
    // running it again converges (the same new record, then the old one
    // removed).
    let old_ids: Vec<String> = news.iter().map(|(o, _)| o.record_id.clone()).collect();
    let mut batch = WriteBatch::default();
    let mut old_keys = HashSet::new();
    for (o, n) in &news {
        old_keys.extend(o.match_keys.iter().cloned());
        for k in &n.match_keys {
            batch.key_owners.push((k.clone(), n.person_id.clone()));
        }
        *moved.from.entry(o.upload_id.clone()).or_default() += 1;
        moved.ids.insert(o.record_id.clone());
        moved.records += 1;
    }
    let entries: Vec<SignatureEntry> = news
        .iter()
        .filter_map(|(_, n)| {
            n.signature.as_ref().map(|sig| SignatureEntry {
                signature: sig.clone(),
                person_id: n.person_id.clone(),
                record_id: n.record_id.clone(),
            })
        })
        .collect();
    batch.records = news.into_iter().map(|(_, n)| n).collect();
    records.apply(&batch)?;
    if let Some(linkage) = records.linkage() {
        if !entries.is_empty() {
            linkage.put_signatures(&entries)?;
        }
        linkage.forget_records(&old_ids)?;
    }
    records.remove_records(&old_ids)?;
    let mut cleanup = WriteBatch::default();
    for k in old_keys {
        if records.records_with_key(&k)?.is_empty() {
            cleanup.key_removals.push(k);
        }
    }
    if !cleanup.is_empty() {
        records.apply(&cleanup)?;
    }
    Ok(())
}

/// Move every review item whose two records and signatures all have
/// translations to them (its id is derived from the signatures, so it
/// changes); how many moved. An item that cannot move stays as it is.
fn migrate_reviews(
    records: &dyn RecordStore,
    t: &dyn TranslationStore,
) -> Result<u64, RotationError> {
    let Some(linkage) = records.linkage() else {
        return Ok(0);
    };
    let mut n = 0;
    for item in linkage.review_items()? {
        let wanted: Vec<String> = item
            .records
            .iter()
            .chain(&item.signatures)
            .cloned()
            .collect();
        let map = t.get_translations(&wanted)?;
        let get = |k: &String| map.get(k).cloned();
        let (Some(r0), Some(r1), Some(s0), Some(s1)) = (
            get(&item.records[0]),
            get(&item.records[1]),
            get(&item.signatures[0]),
            get(&item.signatures[1]),
        ) else {
            continue;
        };
        // Signatures in order, with their records beside them.
        let [p0, p1] = item.people.clone();
        let (signatures, recs, people) = if s0 <= s1 {
            ([s0, s1], [r0, r1], [p0, p1])
        } else {
            ([s1, s0], [r1, r0], [p1, p0])
        };
        let moved = ReviewItem {
            id: review_id(&signatures[0], &signatures[1]),
            signatures,
            records: recs,
            people,
            ..item.clone()
        };
        linkage.put_review(&moved)?;
        linkage.remove_review(&item.id)?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
