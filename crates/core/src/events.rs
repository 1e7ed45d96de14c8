//! The events of the two hash-chained logs, as Rust types: one place that
//! defines each kind of lineage event and of access-log entry.
//!
//! Every writer builds one of these and appends it with
//! [`crate::lineage::append_event`], which turns it into a JSON object at
//! the append boundary; the chain then hashes the canonical JSON of that
//! object exactly as it hashed the hand-built objects before these types
//! existed. So the types must serialise to the JSON already on disk, field
//! for field: the `type` tag first, then the fields in the order they were
//! always written (the stored text keeps insertion order), optional fields
//! left out when absent and `null` where `null` was written. The tests hold
//! a fixture of each kind as the earlier code wrote it.
//!
//! Reading is lenient, because a log is never rewritten and must stay
//! readable whatever wrote it:
//! - a field an older version did not write reads as its default (empty,
//!   0), as the lookups these types replaced did; the fields added later
//!   (`schema`, `linkage`, `missing_linkage_fields`,
//!   `records_replaced_from`) are `Option`s, so an event an earlier
//!   version wrote is told apart and re-serialises as it was;
//! - an event of a kind this version does not know, or one a known kind
//!   cannot read (a value of the wrong JSON type), is
//!   [`LineageEvent::Other`] / [`AccessEntry::Other`] holding its fields as
//!   stored: readers skip it, as they skipped what their lookups did not
//!   find, and [`LineageEvent::kind`] still says what it claims to be.
//!   Nothing here rejects a log; [`crate::lineage::verify`] hashes the raw
//!   stored JSON, so an event's integrity never depends on whether these
//!   types understand it.
//!
//! The chain's own fields (`seq`, `prev_hash`, `hash`) are not part of the
//! events, `Other` included: the append adds them, and readers that need
//! them (verification, checkpoints, printing a log as stored) read the
//! stored JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::linkage::{LinkOutcome, Training};
use crate::report::FileProblem;
use crate::schema::{SchemaOrigin, SchemaProvenance};

/// Something appended to a chained log: its fields, without the chain's.
pub trait Event {
    /// The JSON object the chain stores and hashes (before `seq`,
    /// `prev_hash` and `hash` are added).
    fn to_fields(&self) -> Map<String, Value>;
}

// ------------------------------------------------------------------ lineage

/// A lineage event.
#[derive(Debug, Clone, PartialEq)]
pub enum LineageEvent {
    /// `ingest_started`: an upload began merging into a store whose writes
    /// are visible as they are made (DynamoDB), so its records are
    /// accounted for before its closing `ingest` or `failure` event.
    IngestStarted(IngestStartedEvent),
    /// `ingest`: an upload was validated, pseudonymised and merged.
    Ingest(Box<UploadEvent>),
    /// `failure` with an upload id: the file was refused whole (its
    /// `file_errors` say why); what was merged before the problem was found
    /// stays, and is counted.
    UploadFailure(Box<UploadEvent>),
    /// `failure` without an upload id: a landing object that was never
    /// ingested (outside the policy, a malformed key, a processing error).
    Failure(FailureEvent),
    /// `link_train`: a linkage model was trained and stored.
    LinkTrain(LinkTrainEvent),
    /// `withdrawal_started`: a withdrawal began removing an upload's
    /// records from a store whose writes are visible as they are made
    /// (DynamoDB); its `withdrawn` event closes it.
    WithdrawalStarted(WithdrawalStartedEvent),
    /// `withdrawn`: an upload's records, curated object and reports were
    /// removed from the store.
    Withdrawn(WithdrawnEvent),
    /// `expiry_started`: a retention run began removing a dataset's
    /// records from a store whose writes are visible as they are made
    /// (DynamoDB); its `expired` event closes it.
    ExpiryStarted(ExpiryStartedEvent),
    /// `expired`: a dataset's records past its retention period were
    /// removed from the store.
    Expired(ExpiredEvent),
    /// `key_rotate`: the key custodian opened a key rotation.
    KeyRotate(KeyRotateEvent),
    /// `key_migrate`: stored records were rewritten from the old key's
    /// tokens to the new key's; from this event on the store's key is the
    /// new one.
    KeyMigrate(KeyMigrateEvent),
    /// `profile_build`: a problem profile edition was built and its files
    /// written.
    ProfileBuild(ProfileBuildEvent),
    /// Any other event's fields, as stored (see the module doc).
    Other(Value),
}

/// The closing event of an upload (`ingest`, or `failure` for a file
/// refused whole).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UploadEvent {
    /// The upload id (from agency, dataset and file hash).
    pub upload_id: String,
    /// The uploading agency.
    pub agency: String,
    /// The dataset id.
    pub dataset: String,
    /// The dataset schema's version.
    pub schema_version: u32,
    /// The schema the rows were checked against; `None` in events written
    /// before lineage kept it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaUsed>,
    /// The pseudonymisation scheme.
    pub scheme: String,
    /// The id of the key the rows were pseudonymised under.
    pub key_id: String,
    /// SHA-256 (hex) of the file.
    pub file_sha256: String,
    /// Where the upload landed (a label on AWS, never a file name).
    pub source: String,
    /// `csv` or `ndjson`.
    pub format: String,
    /// Data rows read.
    pub rows_in: u64,
    /// Rows that passed validation.
    pub rows_accepted: u64,
    /// Rows rejected.
    pub rows_rejected: u64,
    /// Records new to the store.
    pub records_inserted: u64,
    /// Records that replaced an earlier version.
    pub records_replaced: u64,
    /// Records identical to what the store had.
    pub records_unchanged: u64,
    /// Records linked to a person another record already established.
    pub people_linked: u64,
    /// What probabilistic linkage did; `None` in events written before
    /// lineage kept it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linkage: Option<UploadLinkage>,
    /// Accepted rows lacking a field linkage uses, by field; `None` in
    /// events written before lineage kept it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_linkage_fields: Option<BTreeMap<String, u64>>,
    /// The earlier uploads whose record versions this one replaced, written
    /// only when it replaced records. (Events written before December 2026
    /// list every earlier upload of the agency and dataset instead.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces_uploads: Option<Vec<String>>,
    /// Whose record versions this upload superseded, and how many of each
    /// (what reconciliation attributes live records by); `None` in events
    /// written before lineage kept it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_replaced_from: Option<BTreeMap<String, u64>>,
    /// A full refresh: the agency's earlier records of the dataset the
    /// extract left out, retired (`None` for an incremental upload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_retired: Option<u64>,
    /// Those records by the upload that last wrote them (what
    /// reconciliation takes off each).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_retired_from: Option<BTreeMap<String, u64>>,
    /// Rejected rows by field and rule.
    pub rejections: Vec<RejectionCount>,
    /// File-level problems (the upload failed).
    pub file_errors: Vec<FileProblem>,
    /// Object keys of the outputs.
    pub outputs: Vec<String>,
    /// When, RFC 3339.
    pub time: String,
}

/// The schema an upload was checked and pseudonymised against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchemaUsed {
    /// `embedded` or `directory`.
    pub origin: String,
    /// SHA-256 (hex) of the schema file's bytes.
    pub sha256: String,
    /// A directory schema's file name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A directory schema: whether the build embeds a schema of the same
    /// dataset to compare it with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedded_counterpart: Option<bool>,
    /// A directory schema: whether it differs from the embedded one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differs_from_embedded: Option<bool>,
    /// Identifier fields of the embedded schema this one does not
    /// pseudonymise; written only when there are any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identifiers_removed: Vec<String>,
}

impl SchemaUsed {
    /// What lineage records of a dataset's schema provenance; `file` is
    /// the schema's file name, recorded for a directory schema only.
    pub fn new(provenance: &SchemaProvenance, file: &str) -> Self {
        let directory = provenance.origin == SchemaOrigin::Directory;
        SchemaUsed {
            origin: provenance.origin.as_str().to_owned(),
            sha256: provenance.sha256.clone(),
            file: directory.then(|| file.to_owned()),
            embedded_counterpart: directory.then_some(provenance.differs_from_embedded.is_some()),
            differs_from_embedded: provenance.differs_from_embedded.filter(|_| directory),
            identifiers_removed: if directory {
                provenance
                    .identifiers_removed
                    .iter()
                    .map(|c| c.field.clone())
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// What probabilistic linkage did for an upload, and the model that scored
/// its pairs when any pair was scored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UploadLinkage {
    /// The counts.
    #[serde(flatten)]
    pub outcome: LinkOutcome,
    /// The scoring model, when there was one.
    #[serde(flatten)]
    pub model: Option<ScoringModel>,
}

/// The model an upload's pairs were scored with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoringModel {
    /// Its version (0 is the built-in default).
    pub model_version: u32,
    /// The encoding scheme it is defined over.
    pub scheme: String,
    /// The match threshold in force.
    pub match_threshold: f64,
    /// The review threshold in force.
    pub review_threshold: f64,
}

/// How many rows one rule rejected on one field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RejectionCount {
    /// The field (empty for a row-level rule).
    pub field: String,
    /// The rule's code.
    pub code: String,
    /// Rows.
    pub count: u64,
}

/// A landing object that was not ingested. `agency` and `dataset` are
/// `null` when the object's key did not name them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FailureEvent {
    /// A stable code (`agency_not_allowed`, `processing_error`, …).
    pub code: String,
    /// Plain English; never a raw identifier.
    pub reason: String,
    /// The agency the key named.
    pub agency: Option<String>,
    /// The dataset the key named.
    pub dataset: Option<String>,
    /// A keyed label of the landing key, never the key.
    pub source: String,
    /// When, RFC 3339.
    pub time: String,
}

/// A linkage model was trained and stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinkTrainEvent {
    /// The new model's version.
    pub model_version: u32,
    /// The encoding scheme it is defined over.
    pub scheme: String,
    /// Its prior match probability.
    pub lambda: f64,
    /// Its match threshold.
    pub match_threshold: f64,
    /// Its review threshold.
    pub review_threshold: f64,
    /// How it was estimated (written as `null` when not known).
    pub training: Option<Training>,
    /// When, RFC 3339.
    pub time: String,
}

/// An upload was withdrawn: its live records were removed, the people
/// only it knew went with them, and the people it shared with other
/// uploads were re-derived from what those uploads hold. It names the
/// upload and counts, never a record, person or token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WithdrawnEvent {
    /// The upload withdrawn.
    pub upload_id: String,
    /// Its agency.
    pub agency: String,
    /// Its dataset.
    pub dataset: String,
    /// Why, in the withdrawer's words (kept in the hash-chained log, so it
    /// must not name a person).
    pub reason: String,
    /// The upload's live records removed: what reconciliation takes off
    /// its agency and dataset's total. On a store that removes as it goes,
    /// what its `withdrawal_started` event found before the first delete,
    /// even when an attempt cut short removed some and this one the rest;
    /// the people, key and review counts below are then the completing
    /// attempt's.
    pub records_removed: u64,
    /// People every one of whose records was removed.
    pub people_removed: u64,
    /// People who also hold records from other uploads: they keep their
    /// id (the part with their smallest key, when the withdrawn records
    /// were what held them together).
    pub people_kept: u64,
    /// New people split off a kept person, because the withdrawn records
    /// were all that linked them to the rest of its records.
    pub people_split: u64,
    /// Match keys no live record carries any more.
    pub keys_removed: u64,
    /// Clerical-review items that named a removed record.
    pub reviews_removed: u64,
    /// Object keys of the upload's outputs, removed with it (curated
    /// data, rejection reports).
    pub outputs_removed: Vec<String>,
    /// When, RFC 3339.
    pub time: String,
}

/// `expired`: `agencylink retention apply` removed a dataset's records
/// whose event date is before the cutoff (the run's date less the
/// dataset's `x-retention-days`), relinking the people they touched as a
/// withdrawal does. Counts only, never a record, person or token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExpiredEvent {
    /// The dataset.
    pub dataset: String,
    /// Its retention period, days.
    pub retention_days: u32,
    /// Records dated before this day (`YYYY-MM-DD`) were removed.
    pub cutoff: String,
    /// Records removed (on a store that removes as it goes, as its
    /// `expiry_started` event found them before the first delete; the
    /// people, key and review counts are then the completing run's).
    pub records_removed: u64,
    /// Records removed by the upload that last wrote them (what
    /// reconciliation takes off each upload's live records).
    pub records_removed_from: BTreeMap<String, u64>,
    /// People every one of whose records was removed.
    pub people_removed: u64,
    /// People who keep records of other periods or datasets.
    pub people_kept: u64,
    /// New people split off a kept person.
    pub people_split: u64,
    /// Match keys no live record carries any more.
    pub keys_removed: u64,
    /// Clerical-review items that named a removed record.
    pub reviews_removed: u64,
    /// When, RFC 3339.
    pub time: String,
}

/// `expiry_started`: written before a retention run's first delete of a
/// dataset's records on a store that removes as it goes, as
/// `withdrawal_started` is for a withdrawal: what the run takes, by upload,
/// as found before anything was removed. A run cut short is completed, with
/// its own cutoff, by the next run, whose `expired` event carries these
/// counts. Counts only, never a record, person or token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExpiryStartedEvent {
    /// The dataset.
    pub dataset: String,
    /// Its retention period, days.
    pub retention_days: u32,
    /// Records dated before this day (`YYYY-MM-DD`) are removed.
    pub cutoff: String,
    /// Records the run removes.
    pub records_removed: u64,
    /// The same, by the upload that last wrote them.
    pub records_removed_from: BTreeMap<String, u64>,
    /// When, RFC 3339.
    pub time: String,
}

/// `key_rotate`: `agencylink key rotate` opened a rotation from one key to
/// the next. Until the `key_migrate` that closes it, the store stays under
/// the old key and every ingest also records, for the values it sees, the
/// old token → new token translations (kept apart from the records and
/// deleted when the rotation is complete). No key material, ever.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyRotateEvent {
    /// The store's key id until the migration.
    pub from_key_id: String,
    /// The key id after it.
    pub to_key_id: String,
    /// When, RFC 3339.
    pub time: String,
}

/// `key_migrate`: `agencylink key migrate` (or an ingest that met records
/// still under the old key) rewrote stored records with the translations
/// the rotation collected. Its `key_id` is the store's key from here on.
/// Person ids are kept; counts only, never a record, person or token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyMigrateEvent {
    /// The key the records were under.
    pub from_key_id: String,
    /// The store's key from now on.
    pub key_id: String,
    /// `store` for `agencylink key migrate`, `upload` for the records one
    /// upload re-sent after the migration.
    pub scope: String,
    /// The upload, when `scope` is `upload`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// Records rewritten under the new key.
    pub records_migrated: u64,
    /// Records migrated, by the upload that last wrote them (unchanged by
    /// the migration: reconciliation's counts stay as they were).
    pub records_migrated_from: BTreeMap<String, u64>,
    /// Records left under the old key: some value in them was not seen
    /// during the rotation. They stay, unlinkable to new uploads, until
    /// their agency sends them again (then they move) or they expire.
    pub records_untranslated: u64,
    /// Clerical-review items rewritten to the new records.
    pub reviews_migrated: u64,
    /// Whether nothing is left under the old key: the translations were
    /// deleted and the old key retired.
    pub complete: bool,
    /// When, RFC 3339.
    pub time: String,
}

/// `ingest_started`: an upload passed the duplicate and key checks and
/// begins to merge. Written only by stores whose merged writes are visible
/// before the upload ends ([`crate::ports::RecordStore::writes_through`]);
/// the SQLite store publishes an upload and its `ingest` event in one
/// transaction and needs none. Until the upload's closing event, lineage
/// verification names its records as those of an ingest in progress or
/// interrupted (its retry completes it), never as records lineage does not
/// know.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestStartedEvent {
    /// The upload id.
    pub upload_id: String,
    /// The uploading agency.
    pub agency: String,
    /// The dataset id.
    pub dataset: String,
    /// SHA-256 (hex) of the file.
    pub file_sha256: String,
    /// Where the upload landed (a keyed label, never a file name).
    pub source: String,
    /// When, RFC 3339 (the upload's event time).
    pub time: String,
}

/// `withdrawal_started`: written before a withdrawal's first delete on a
/// store that removes as it goes ([`crate::ports::RecordStore::writes_through`]);
/// the SQLite store removes an upload and appends its `withdrawn` event in
/// one transaction and needs none. It fixes how many of the upload's
/// records the withdrawal takes, as found before anything was removed: a
/// withdrawal interrupted part-way and run again finds fewer, and its
/// `withdrawn` event still takes this many off the upload's agency and
/// dataset. Until then lineage verification names the upload's missing
/// records as a withdrawal in progress or interrupted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WithdrawalStartedEvent {
    /// The upload being withdrawn.
    pub upload_id: String,
    /// Its agency.
    pub agency: String,
    /// Its dataset.
    pub dataset: String,
    /// The upload's live records when the withdrawal began.
    pub records: u64,
    /// When, RFC 3339.
    pub time: String,
}

/// `profile_build`: one edition of the CSE problem profile was built and
/// written, so every published figure traces to the store as lineage stood
/// at `lineage_seq`, and each file can be checked against its digest.
/// Counts, dates and digests only: never a record, person or token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfileBuildEvent {
    /// `analyst` or `partner`.
    pub edition: String,
    /// First day of the period.
    pub period_from: String,
    /// Last day of the period.
    pub period_to: String,
    /// The profile's own `generated_at`.
    pub generated_at: String,
    /// The last lineage event the build read (0: none).
    pub lineage_seq: u64,
    /// What asked for it: `cli`, `schedule` or `request` (an analyst's
    /// `POST /profiles`, whose entry in the access log also names them).
    pub trigger: String,
    /// Who built it: the analyst (`--analyst`, or the requester's user id
    /// on AWS); absent for a schedule, or a partner edition built without
    /// naming anyone. A staff member's id, never a data subject's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub built_by: Option<String>,
    /// Where the files went: the object prefix on AWS, `local` for a
    /// directory (its path may name a person, so it is not kept).
    pub location: String,
    /// Tables in the profile.
    pub tables: u64,
    /// Each file written, by name, with the SHA-256 (hex) of its bytes.
    pub files: BTreeMap<String, String>,
    /// When, RFC 3339.
    pub time: String,
}

impl LineageEvent {
    /// Read a stored event (chain fields and all). Never fails: what this
    /// version cannot read is [`LineageEvent::Other`].
    pub fn from_entry(entry: &Value) -> Self {
        let other = || LineageEvent::Other(without_chain(entry));
        let parsed = match entry.get("type").and_then(Value::as_str) {
            Some("ingest") => {
                UploadEvent::deserialize(entry).map(|u| LineageEvent::Ingest(u.into()))
            }
            Some("ingest_started") => {
                IngestStartedEvent::deserialize(entry).map(LineageEvent::IngestStarted)
            }
            // The two shapes of `failure` differ by whether an upload id
            // was ever derived.
            Some("failure") if entry.get("upload_id").is_some() => {
                UploadEvent::deserialize(entry).map(|u| LineageEvent::UploadFailure(u.into()))
            }
            Some("failure") => FailureEvent::deserialize(entry).map(LineageEvent::Failure),
            Some("link_train") => LinkTrainEvent::deserialize(entry).map(LineageEvent::LinkTrain),
            Some("withdrawal_started") => {
                WithdrawalStartedEvent::deserialize(entry).map(LineageEvent::WithdrawalStarted)
            }
            Some("withdrawn") => WithdrawnEvent::deserialize(entry).map(LineageEvent::Withdrawn),
            Some("expiry_started") => {
                ExpiryStartedEvent::deserialize(entry).map(LineageEvent::ExpiryStarted)
            }
            Some("expired") => ExpiredEvent::deserialize(entry).map(LineageEvent::Expired),
            Some("key_rotate") => KeyRotateEvent::deserialize(entry).map(LineageEvent::KeyRotate),
            Some("key_migrate") => {
                KeyMigrateEvent::deserialize(entry).map(LineageEvent::KeyMigrate)
            }
            Some("profile_build") => {
                ProfileBuildEvent::deserialize(entry).map(LineageEvent::ProfileBuild)
            }
            _ => return other(),
        };
        parsed.unwrap_or_else(|_| other())
    }

    /// The `type` tag (what an [`LineageEvent::Other`] says it is, or "").
    pub fn kind(&self) -> &str {
        match self {
            LineageEvent::IngestStarted(_) => "ingest_started",
            LineageEvent::Ingest(_) => "ingest",
            LineageEvent::UploadFailure(_) | LineageEvent::Failure(_) => "failure",
            LineageEvent::LinkTrain(_) => "link_train",
            LineageEvent::WithdrawalStarted(_) => "withdrawal_started",
            LineageEvent::Withdrawn(_) => "withdrawn",
            LineageEvent::ExpiryStarted(_) => "expiry_started",
            LineageEvent::Expired(_) => "expired",
            LineageEvent::KeyRotate(_) => "key_rotate",
            LineageEvent::KeyMigrate(_) => "key_migrate",
            LineageEvent::ProfileBuild(_) => "profile_build",
            LineageEvent::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }

    /// The upload an `ingest` or an upload's `failure` closed.
    pub fn upload(&self) -> Option<&UploadEvent> {
        match self {
            LineageEvent::Ingest(u) | LineageEvent::UploadFailure(u) => Some(u.as_ref()),
            _ => None,
        }
    }
}

impl Event for LineageEvent {
    fn to_fields(&self) -> Map<String, Value> {
        match self {
            LineageEvent::IngestStarted(e) => tagged("ingest_started", e),
            LineageEvent::Ingest(e) => tagged("ingest", &**e),
            LineageEvent::UploadFailure(e) => tagged("failure", &**e),
            LineageEvent::Failure(e) => tagged("failure", e),
            LineageEvent::LinkTrain(e) => tagged("link_train", e),
            LineageEvent::WithdrawalStarted(e) => tagged("withdrawal_started", e),
            LineageEvent::Withdrawn(e) => tagged("withdrawn", e),
            LineageEvent::ExpiryStarted(e) => tagged("expiry_started", e),
            LineageEvent::Expired(e) => tagged("expired", e),
            LineageEvent::KeyRotate(e) => tagged("key_rotate", e),
            LineageEvent::KeyMigrate(e) => tagged("key_migrate", e),
            LineageEvent::ProfileBuild(e) => tagged("profile_build", e),
            LineageEvent::Other(v) => v.as_object().cloned().unwrap_or_default(),
        }
    }
}

// --------------------------------------------------------------- access log

/// An access-log entry.
#[derive(Debug, Clone, PartialEq)]
pub enum AccessEntry {
    /// `read`: data was handed to an analyst.
    Read(ReadEntry),
    /// `review_decision`: an analyst decided a clerical-review item.
    ReviewDecision(ReviewDecisionEntry),
    /// Any other entry's fields, as stored (see the module doc).
    Other(Value),
}

/// The `action` every review decision records.
pub const REVIEW_DECIDE: &str = "review_decide";

/// An analyst read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReadEntry {
    /// Who read (trimmed).
    pub analyst: String,
    /// Why, in their words (trimmed).
    pub purpose: String,
    /// `query_person`, `query_network`, `export`, …
    pub action: String,
    /// What was read: a person or network id, a dataset, `all`.
    pub target: String,
    /// Rows handed to the analyst.
    pub rows_returned: u64,
    /// When, RFC 3339.
    pub time: String,
}

/// A clerical-review decision, logged before it takes effect. It names the
/// item and the decision, never the reviewer's free-text reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReviewDecisionEntry {
    /// Who decided (trimmed).
    pub analyst: String,
    /// Why, in their words (trimmed).
    pub purpose: String,
    /// Always [`REVIEW_DECIDE`].
    pub action: String,
    /// The review item's id.
    pub target: String,
    /// The decision's word (`match`, `non_match`, …).
    pub decision: String,
    /// When, RFC 3339.
    pub time: String,
}

impl AccessEntry {
    /// Read a stored entry (chain fields and all). Never fails: what this
    /// version cannot read is [`AccessEntry::Other`].
    pub fn from_entry(entry: &Value) -> Self {
        let other = || AccessEntry::Other(without_chain(entry));
        let parsed = match entry.get("type").and_then(Value::as_str) {
            Some("read") => ReadEntry::deserialize(entry).map(AccessEntry::Read),
            Some("review_decision") => {
                ReviewDecisionEntry::deserialize(entry).map(AccessEntry::ReviewDecision)
            }
            _ => return other(),
        };
        parsed.unwrap_or_else(|_| other())
    }

    /// Who and why, for the kinds that name them.
    pub fn reader(&self) -> Option<(&str, &str)> {
        match self {
            AccessEntry::Read(e) => Some((e.analyst.as_str(), e.purpose.as_str())),
            AccessEntry::ReviewDecision(e) => Some((e.analyst.as_str(), e.purpose.as_str())),
            AccessEntry::Other(_) => None,
        }
    }
}

impl Event for AccessEntry {
    fn to_fields(&self) -> Map<String, Value> {
        match self {
            AccessEntry::Read(e) => tagged("read", e),
            AccessEntry::ReviewDecision(e) => tagged("review_decision", e),
            AccessEntry::Other(v) => v.as_object().cloned().unwrap_or_default(),
        }
    }
}

/// The fields the append adds.
const CHAIN_FIELDS: [&str; 3] = ["seq", "prev_hash", "hash"];

fn without_chain(entry: &Value) -> Value {
    match entry {
        Value::Object(m) => {
            let mut m = m.clone();
            m.retain(|k, _| !CHAIN_FIELDS.contains(&k.as_str()));
            Value::Object(m)
        }
        other => other.clone(),
    }
}

/// `{"type": kind, ..body}`, the tag first as it was always written.
fn tagged<T: Serialize>(kind: &str, body: &T) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("type".into(), Value::from(kind));
    // The bodies are strings, integers, floats, options and string-keyed
    // maps, which always serialise to an object.
    if let Ok(Value::Object(fields)) = serde_json::to_value(body) {
        m.extend(fields);
    }
    m
}

// Both enums (de)serialise as the JSON object they are stored as, so they
// can sit inside other serde types; the object is what `to_fields` builds.
macro_rules! serde_as_stored {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.to_fields().serialize(s)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Self::from_entry(&Value::deserialize(d)?))
            }
        }
    };
}
serde_as_stored!(LineageEvent);
serde_as_stored!(AccessEntry);

#[cfg(test)]
mod tests;
