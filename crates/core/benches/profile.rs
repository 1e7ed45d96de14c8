//! Profile build time over a store of N records (not a timed test).
//!
//! Synthesises N rows spread over every dataset in the catalogue (one
//! world, so the same people recur across agencies), curates them with a
//! fixed test key, links people by their match keys (union-find, as the
//! merge step would), and keeps each record as its JSON text in memory —
//! so every scan pays the same decode an adapter pays (SQLite stores the
//! body as text too) without measuring a disk. Then it times
//! `profile::build` for the analyst and the partner editions.
//!
//! `cargo bench -p agencylink-core --bench profile -- [ROWS]` (default 1,000,000).
//! The end-to-end number over SQLite is in the README (`agencylink demo
//! --rows 166667` then `agencylink profile`).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Cursor};
use std::time::Instant;

use agencylink_core::curate::{Curator, Provenance, short_hash};
use agencylink_core::memory::MemoryChainLog;
use agencylink_core::ports::{RecordStore, StoreError, StoreResult, StoredRecord, WriteBatch};
use agencylink_core::profile::{self, Edition, Settings};
use agencylink_core::pseudo::{Key, Pseudonymiser};
use agencylink_core::read::{self, InputFormat};
use agencylink_core::schema::Catalog;
use agencylink_core::validate::RowValidator;
use agencylink_synth::{SynthOptions, World, write_csv_with_world};

/// Records as JSON text by dataset, sorted by event date: a scan decodes
/// each one, as a database adapter does.
#[derive(Debug, Default)]
struct JsonStore {
    by_dataset: BTreeMap<String, Vec<(String, String)>>,
}

fn not_here(what: &str) -> StoreError {
    StoreError::Invalid(format!("the bench store only scans ({what})"))
}

impl RecordStore for JsonStore {
    fn get_records(&self, _: &[String]) -> StoreResult<Vec<Option<StoredRecord>>> {
        Err(not_here("get_records"))
    }
    fn key_owners(&self, _: &[String]) -> StoreResult<HashMap<String, String>> {
        Err(not_here("key_owners"))
    }
    fn records_of_person(&self, _: &str) -> StoreResult<Vec<StoredRecord>> {
        Err(not_here("records_of_person"))
    }
    fn records_with_key(&self, _: &str) -> StoreResult<Vec<StoredRecord>> {
        Err(not_here("records_with_key"))
    }
    fn records_with_link(&self, _: &str) -> StoreResult<Vec<StoredRecord>> {
        Err(not_here("records_with_link"))
    }
    fn scan_dataset(
        &self,
        dataset: &str,
        from: Option<&str>,
        to: Option<&str>,
        visit: &mut dyn FnMut(StoredRecord) -> bool,
    ) -> StoreResult<()> {
        for (date, text) in self.by_dataset.get(dataset).into_iter().flatten() {
            if from.is_some_and(|f| date.as_str() < f) || to.is_some_and(|t| date.as_str() > t) {
                continue;
            }
            let r: StoredRecord = serde_json::from_str(text)
                .map_err(|e| StoreError::backend("decoding a record", e))?;
            if !visit(r) {
                break;
            }
        }
        Ok(())
    }
    fn datasets(&self) -> StoreResult<Vec<String>> {
        Ok(self.by_dataset.keys().cloned().collect())
    }
    fn alias(&self, _: &str) -> StoreResult<Option<String>> {
        Ok(None)
    }
    fn apply(&self, _: &WriteBatch) -> StoreResult<()> {
        Err(not_here("apply"))
    }
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

mod support;

use support::{peak_rss_mib, positional_args};

fn main() {
    let rows: u64 = positional_args()
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let cat = Catalog::embedded().expect("schemas");
    let datasets: Vec<_> = cat.latest().cloned().collect();
    let per = rows / datasets.len() as u64;
    let key = Key::from_base64("bench", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .expect("test key");
    let p = Pseudonymiser::new(key);
    let world = World::new(2026, Default::default()).expect("world");

    let t = Instant::now();
    let mut records: Vec<StoredRecord> = Vec::with_capacity(rows as usize);
    for ds in &datasets {
        let mut csv = Vec::new();
        write_csv_with_world(&world, ds, &SynthOptions::new(2026, per), &mut csv, None)
            .expect("synth");
        let v = RowValidator::new(ds);
        let agency = format!("bench-{}", ds.agency_type.as_deref().unwrap_or("other"));
        let curator = Curator::new(
            ds,
            &p,
            Provenance {
                agency: agency.clone(),
                upload_id: format!("u_{agency}"),
            },
        );
        let mut src = read::open(InputFormat::Csv, BufReader::new(Cursor::new(csv)), ds);
        let mut errors = Vec::new();
        while let Some(row) = src.next_row() {
            let row = row.expect("row");
            errors.clear();
            if v.check(row, &mut errors) {
                records.push(curator.curate(row).expect("curate"));
            }
        }
    }
    // People: records sharing a match key are one person.
    let mut parent: Vec<usize> = (0..records.len()).collect();
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        for k in &r.match_keys {
            match owner.get(k.as_str()) {
                Some(&j) => {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    owner.insert(k, i);
                }
            }
        }
    }
    drop(owner);
    let ids: Vec<String> = (0..records.len())
        .map(|i| {
            let root = find(&mut parent, i);
            let anchor = records[root]
                .match_keys
                .iter()
                .min()
                .cloned()
                .unwrap_or_else(|| records[root].record_id.clone());
            format!("p_{}", short_hash(&[anchor.as_bytes()], 12))
        })
        .collect();
    let mut store = JsonStore::default();
    let n = records.len();
    for (mut r, id) in records.into_iter().zip(ids) {
        r.person_id = id;
        let text = serde_json::to_string(&r).expect("json");
        store
            .by_dataset
            .entry(r.dataset.clone())
            .or_default()
            .push((r.event_date.clone(), text));
    }
    for v in store.by_dataset.values_mut() {
        v.sort();
    }
    println!(
        "store: {n} records in {} datasets, built in {:.1} s",
        store.by_dataset.len(),
        t.elapsed().as_secs_f64()
    );

    // What the port costs alone: decoding every record, no profile work.
    let t = Instant::now();
    let mut seen = 0u64;
    for ds in store.datasets().expect("datasets") {
        store
            .scan_dataset(&ds, None, None, &mut |r| {
                seen += u64::from(!r.person_id.is_empty());
                true
            })
            .expect("scan");
    }
    println!(
        "scan alone: {seen} records decoded in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let log = MemoryChainLog::default();
    for edition in [Edition::Analyst, Edition::Partner] {
        let settings = Settings {
            edition,
            generated_at: "bench".into(),
            ..Settings::default()
        };
        let t = Instant::now();
        let profile = profile::build(&cat, &store, &log, &settings).expect("profile");
        let build_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let html = profile::render_html(&profile);
        let json = serde_json::to_string(&profile).expect("json");
        let render_s = t.elapsed().as_secs_f64();
        println!(
            "profile ({}): build {build_s:.2} s ({:.0} records/s), render {render_s:.2} s ({} KiB HTML, {} KiB JSON), {} tables, peak RSS {:.0} MiB",
            edition.as_str(),
            n as f64 / build_s,
            html.len() / 1024,
            json.len() / 1024,
            profile.tables.len(),
            peak_rss_mib()
        );
    }
}
