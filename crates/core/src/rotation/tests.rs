//! A rotation end to end on the memory store, with real schemas and two
//! published test keys.

use super::*;
use crate::ingest::{IngestMode, IngestSummary, Sinks, ingest};
use crate::memory::{MemoryChainLog, MemoryRecordStore};
use crate::ports::RecordStoreExt;
use crate::pseudo::Key;
use crate::read::InputFormat;
use crate::schema::Catalog;

const NOW: &str = "2026-07-01T12:00:00Z";
const HEAD: &str = "record_ref,child_id,family_name,given_name,dob,event_date,missing_type\n";
const ANN: &str = "M-1,C-1,Ahmed,Ann,2011-03-04,2026-01-10,M\n";
const BEN: &str = "M-2,C-2,Brown,Ben,2010-05-06,2026-01-11,A\n";
const CAL: &str = "M-3,C-3,Clarke,Cal,2012-07-08,2026-01-12,M\n";
/// Ann again, from another agency: linked by name and date of birth.
const ANN_ELSEWHERE: &str = "X-9,C-77,Ahmed,Ann,2011-03-04,2026-02-01,A\n";

fn key(kid: &str, b64: &str) -> Pseudonymiser {
    Pseudonymiser::new(Key::from_base64(kid, b64).expect("test key"))
}

fn old_key() -> Pseudonymiser {
    key("k1", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
}

fn new_key() -> Pseudonymiser {
    key("k2", "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=")
}

fn dataset() -> Arc<Dataset> {
    Catalog::embedded()
        .expect("embedded")
        .get("council.missing_episode")
        .expect("dataset")
        .clone()
}

use std::sync::Arc;

fn info(agency: &str, body: &str) -> UploadInfo {
    UploadInfo {
        agency: agency.into(),
        sha256: crate::curate::short_hash(&[body.as_bytes()], 32),
        source: "landing/x".into(),
        format: InputFormat::Csv,
        time: NOW.into(),
        outputs: Vec::new(),
        mode: IngestMode::Incremental,
    }
}

struct World {
    records: MemoryRecordStore,
    log: MemoryChainLog,
}

impl World {
    fn new() -> Self {
        Self {
            records: MemoryRecordStore::default(),
            log: MemoryChainLog::default(),
        }
    }

    /// Ingest as the CLI does: the rotation's step first when one is open.
    fn send(&self, agency: &str, rows: &[&str], under: &Pseudonymiser) -> IngestSummary {
        let body = format!("{HEAD}{}", rows.concat());
        let (ds, info) = (dataset(), info(agency, &body));
        if let Some(s) = state(&self.records).expect("state") {
            let other = if s.other_key() == "k2" {
                new_key()
            } else {
                old_key()
            };
            before_ingest(
                &self.records,
                &self.log,
                &ds,
                under,
                &other,
                &info,
                &mut body.as_bytes(),
            )
            .expect("rotation step");
        }
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        ingest(
            &ds,
            under,
            &self.records,
            &self.log,
            &info,
            &mut body.as_bytes(),
            Sinks {
                curated: &mut a,
                report_json: &mut b,
                report_csv: &mut c,
            },
            |_| {},
        )
        .expect("ingest")
    }

    fn all(&self) -> Vec<StoredRecord> {
        let mut out = Vec::new();
        self.records
            .scan_dataset("council.missing_episode", None, None, &mut |r| {
                out.push(r);
                true
            })
            .expect("scan");
        out.sort_by(|a, b| a.row.cmp(&b.row).then(a.agency.cmp(&b.agency)));
        out
    }

    /// The stored record of `agency`'s row `row_csv`, under either key.
    fn record_of(&self, agency: &str, row_csv: &str) -> StoredRecord {
        [old_key(), new_key()]
            .iter()
            .find_map(|k| {
                let id = curate_last(agency, "u", row_csv, k).record_id;
                self.records.get_record(&id).expect("read")
            })
            .expect("the record is stored")
    }

    fn person_of(&self, agency: &str, row_csv: &str) -> String {
        self.record_of(agency, row_csv).person_id
    }
}

fn curate_last(agency: &str, upload: &str, rows_csv: &str, key: &Pseudonymiser) -> StoredRecord {
    let ds = dataset();
    let body = format!("{HEAD}{rows_csv}");
    let curator = Curator::new(
        &ds,
        key,
        Provenance {
            agency: agency.into(),
            upload_id: upload.into(),
        },
    );
    let mut rows = crate::read::open(InputFormat::Csv, body.as_bytes(), &ds);
    let mut last = None;
    while let Some(r) = rows.next_row() {
        last = Some(curator.curate(r.expect("valid")).expect("curated"));
    }
    last.expect("a row")
}

/// The body the curator writes for the last row of `rows_csv` in
/// `agency`'s upload `upload` under `key`.
fn curated(agency: &str, upload: &str, rows_csv: &str, key: &Pseudonymiser) -> String {
    curate_last(agency, upload, rows_csv, key)
        .body
        .as_str()
        .to_owned()
}

#[test]
fn a_rotation_keeps_every_person_and_moves_what_was_seen() {
    let w = World::new();
    let (k1, k2) = (old_key(), new_key());
    let first = w.send("bury-council", &[ANN, BEN, CAL], &k1);
    w.send("wigan-council", &[ANN_ELSEWHERE], &k1);
    let ann = w.person_of("bury-council", ANN);
    assert!(!ann.is_empty());
    assert_eq!(
        w.person_of("wigan-council", ANN_ELSEWHERE),
        ann,
        "linked before"
    );
    assert_ne!(w.person_of("bury-council", BEN), ann);
    let before: Vec<(String, String)> = w
        .all()
        .iter()
        .map(|r| (r.agency.clone(), r.person_id.clone()))
        .collect();

    // A second rotation cannot open over the first; the key must be the store's.
    let (id1, id2) = (k1.kid().clone(), k2.kid().clone());
    assert!(matches!(
        open(&w.records, &w.log, &id2, &id1, NOW),
        Err(RotationError::KeyMismatch(_))
    ));
    open(&w.records, &w.log, &id1, &id2, NOW).expect("open");
    assert!(matches!(
        open(&w.records, &w.log, &id1, &id2, NOW),
        Err(RotationError::AlreadyOpen { .. })
    ));

    // While open: Bury re-sends Ann and Ben (Ann now with a new missing
    // type), Wigan re-sends its file; Cal is not sent.
    let ann_changed = ANN.replace(",M\n", ",A\n");
    w.send("bury-council", &[&ann_changed, BEN], &k1);
    w.send("wigan-council", &[ANN_ELSEWHERE], &k1);
    assert_eq!(
        lineage::store_key_id_in(&w.log).expect("log").as_deref(),
        Some("k1")
    );

    let done = migrate(&w.records, &w.log, Scope::Store, false, NOW)
        .expect("migrate")
        .expect("an event");
    assert_eq!(done.records_migrated, 3);
    assert_eq!(done.records_untranslated, 1, "Cal was not seen");
    assert!(!done.complete);
    assert_eq!(done.key_id, "k2");
    assert_eq!(
        lineage::store_key_id_in(&w.log).expect("log").as_deref(),
        Some("k2"),
        "the store is under the new key from the migration on"
    );
    let after: Vec<(String, String)> = w
        .all()
        .iter()
        .map(|r| (r.agency.clone(), r.person_id.clone()))
        .collect();
    assert_eq!(before, after, "every person id is kept");

    // A migrated body is exactly what the new key's curation writes for
    // the row that last wrote it; Cal's is untouched.
    let all = w.all();
    let ben = w.record_of("bury-council", BEN);
    assert_eq!(
        ben.body.as_str(),
        curated(
            "bury-council",
            &first.upload_id,
            &format!("{ANN}{BEN}"),
            &k2
        )
    );
    let cal = w.record_of("bury-council", CAL);
    assert!(cal.body.as_str().contains("\"key_id\":\"k1\""));
    assert!(
        all.iter()
            .filter(|r| r.record_id != cal.record_id)
            .all(|r| !r.body.as_str().contains(":k1:")
                && r.match_keys.iter().all(|k| k.contains(":k2:"))),
        "nothing with a translation is left under the old key"
    );
    // Ann's two records still share a match key under the new key, which
    // finds her person.
    let ann_key = w.record_of("bury-council", ANN).match_keys;
    assert_eq!(ann_key.len(), 1);
    for k in &ann_key {
        let owners: Vec<String> = w
            .records
            .records_with_key(k)
            .expect("by key")
            .into_iter()
            .map(|r| w.records.resolve_person(&r.person_id).expect("resolve"))
            .collect();
        assert_eq!(owners, [ann.clone(), ann.clone()]);
    }

    // Under the old key the store now refuses; Cal is draining.
    let s = state(&w.records).expect("state").expect("draining");
    assert_eq!((s.phase, s.left), (Phase::Draining, 1));
    let n = w.all().len();
    let cal_person = cal.person_id.clone();
    // Bury sends Cal again, under the new key: the old copy moves first,
    // so the row replaces it; nothing is duplicated and the person is kept.
    let resent = w.send("bury-council", &[CAL], &k2);
    assert_eq!(resent.records_inserted, 0, "{resent:?}");
    assert_eq!(w.all().len(), n);
    assert_eq!(w.person_of("bury-council", CAL), cal_person);
    assert!(
        state(&w.records).expect("state").is_none(),
        "nothing left: the rotation is complete"
    );
    let ben_under_k1 = curate_last("bury-council", "u", BEN, &k1).record_id;
    assert!(
        w.records
            .get_translations(&[ben_under_k1])
            .expect("read")
            .is_empty(),
        "the translations are deleted with the rotation"
    );
    let events: Vec<LineageEvent> = w
        .log
        .entries()
        .expect("log")
        .iter()
        .map(LineageEvent::from_entry)
        .collect();
    let last_migrate = events
        .iter()
        .rev()
        .find_map(|e| match e {
            LineageEvent::KeyMigrate(m) => Some(m.clone()),
            _ => None,
        })
        .expect("migrate events");
    assert_eq!(
        (last_migrate.scope.as_str(), last_migrate.records_migrated),
        ("upload", 1)
    );
    assert!(last_migrate.complete);
    // Reconciliation still balances: every upload's live records agree.
    let counts = w.records.record_counts().expect("counts");
    let entries = w.log.entries().expect("log");
    assert!(
        crate::reconcile::reconcile(&entries, &counts).is_ok(),
        "{:?}",
        crate::reconcile::reconcile(&entries, &counts)
    );
}

#[test]
fn finishing_leaves_the_unseen_under_the_old_key_and_ends_the_rotation() {
    let w = World::new();
    let (k1, k2) = (old_key(), new_key());
    w.send("bury-council", &[ANN, CAL], &k1);
    open(&w.records, &w.log, k1.kid(), k2.kid(), NOW).expect("open");
    w.send("bury-council", &[ANN], &k1);
    let done = migrate(&w.records, &w.log, Scope::Store, true, NOW)
        .expect("migrate")
        .expect("event");
    assert_eq!((done.records_migrated, done.records_untranslated), (1, 1));
    assert!(done.complete);
    assert!(state(&w.records).expect("state").is_none());
}

#[test]
fn tokens_are_whole_strings_of_the_key() {
    let body = r#"{"a":"nhs_number:k1:73oq6rdqrv6hqd7nwkwxzfsx6by2kikg","b":"note nhs:k1:73oq6rdqrv6hqd7nwkwxzfsx6by2kikg","c":"x:k1:short","d":"match:k2:73oq6rdqrv6hqd7nwkwxzfsx6by2kikg"}"#;
    let found: Vec<&str> = tokens_in(body, "k1").collect();
    assert_eq!(found, ["nhs_number:k1:73oq6rdqrv6hqd7nwkwxzfsx6by2kikg"]);
}

#[test]
fn keys_must_be_the_rotations() {
    let w = World::new();
    let (k1, k2) = (old_key(), new_key());
    assert!(matches!(
        open(&w.records, &w.log, k1.kid(), k1.kid(), NOW),
        Err(RotationError::SameKey(_))
    ));
    open(&w.records, &w.log, k1.kid(), k2.kid(), NOW).expect("open");
    let body = format!("{HEAD}{ANN}");
    let refused = record_translations(
        &w.records,
        &dataset(),
        &k2,
        &k1,
        &info("bury-council", &body),
        &mut body.as_bytes(),
    );
    assert!(matches!(refused, Err(RotationError::WrongKey { .. })));
}
