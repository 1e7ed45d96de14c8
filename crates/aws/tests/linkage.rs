//! The DynamoDB linkage index (`LinkageStore` on `DynamoStore`) against moto
//! server: the memory store's behaviour, pinned case by case, the calls a
//! `put_signatures` batch takes, and an ingest through the AWS pipeline
//! filling the index. Skips only when AWS_ENDPOINT_URL is unset.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use agencylink_aws::sdk::dynamodb;
use agencylink_aws::testing::{Moto, moto, rt};
use agencylink_aws::{AgencyPolicy, AwsBackend, DynamoStore};
use agencylink_core::linkage::{
    LinkModel, ReviewItem, ReviewStatus, Signature, review_id, signature,
};
use agencylink_core::ports::{
    ChainLog, LinkageStore, RecordStore, RecordStoreExt, SignatureEntry, StoreError,
};
use agencylink_core::pseudo::Pseudonymiser;
use agencylink_core::pseudo::key::Key;

const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn backend(m: &Moto, name: &str) -> AwsBackend {
    m.backend(m.settings(name, AgencyPolicy::default()))
}

fn pseudo() -> Pseudonymiser {
    Pseudonymiser::new(Key::from_base64("k1", KEY_B64).expect("key"))
}

fn sig(p: &Pseudonymiser, family: &str, given: &str, dob: &str) -> Arc<Signature> {
    Arc::new(signature(p, Some(family), Some(given), Some(dob)).expect("a signature"))
}

fn entry(s: &Arc<Signature>, person: &str, record: &str) -> SignatureEntry {
    SignatureEntry {
        signature: s.clone(),
        person_id: person.into(),
        record_id: record.into(),
    }
}

fn review(a: &str, b: &str, status: ReviewStatus) -> ReviewItem {
    ReviewItem {
        id: review_id(a, b),
        signatures: [a.into(), b.into()],
        people: ["p_a".into(), "p_b".into()],
        records: ["r_a".into(), "r_b".into()],
        probability: 0.7,
        match_weight: 1.25,
        agreement: Vec::new(),
        model_version: 0,
        upload_id: "u_1".into(),
        status,
        decision: None,
    }
}

fn model(version: u32, lambda: f64) -> LinkModel {
    LinkModel {
        version,
        lambda,
        ..LinkModel::default_model()
    }
}

#[test]
fn dynamodb_linkage_store_behaves_like_the_memory_store() {
    let Some(m) = moto() else { return };
    let b = backend(&m, "link");
    let store: &dyn RecordStore = &b.records;
    let l = store.linkage().expect("DynamoStore keeps a linkage index");
    let p = pseudo();
    let kate = sig(&p, "smith", "kate", "2010-03-07");
    let katie = sig(&p, "smith", "katie", "2010-03-07");
    let jon = sig(&p, "jones", "jon", "2011-12-01");
    assert_ne!(kate.id, katie.id);

    // Before anything: empty answers, not errors.
    assert_eq!(
        l.get_signatures(std::slice::from_ref(&kate.id))
            .expect("get"),
        vec![None]
    );
    assert!(
        l.signatures_in_block(&kate.b[0], 10)
            .expect("block")
            .is_empty()
    );
    assert_eq!(l.model().expect("model"), None);
    assert!(l.review_items().expect("reviews").is_empty());
    assert_eq!(l.get_review("rv_none").expect("review"), None);
    assert_eq!(l.put_signatures(&[]).expect("nothing"), Vec::<bool>::new());

    // New pairs are new; a repeat inside the batch is not.
    let fresh = l
        .put_signatures(&[
            entry(&kate, "p_1", "r_1"),
            entry(&katie, "p_2", "r_2"),
            entry(&kate, "p_1", "r_3"),
        ])
        .expect("put");
    assert_eq!(fresh, vec![true, true, false]);
    // Known pairs are known (the record id first stored stays); a second
    // person on a known signature is new.
    let fresh = l
        .put_signatures(&[
            entry(&kate, "p_1", "r_9"),
            entry(&kate, "p_0", "r_4"),
            entry(&jon, "p_3", "r_5"),
        ])
        .expect("put again");
    assert_eq!(fresh, vec![false, true, true]);
    // Replaying a batch converges: nothing is new the second time.
    let again = l
        .put_signatures(&[entry(&jon, "p_3", "r_5"), entry(&katie, "p_2", "r_2")])
        .expect("replay");
    assert_eq!(again, vec![false, false]);

    // Get: in the order asked, None for unknown ids, people by person id.
    let unknown = "s_unknown".to_owned();
    let got = l
        .get_signatures(&[jon.id.clone(), unknown, kate.id.clone(), jon.id.clone()])
        .expect("get");
    assert_eq!(got.len(), 4);
    let g_jon = got[0].as_ref().expect("jon");
    assert_eq!(g_jon.signature, *jon);
    assert_eq!(g_jon.people, vec![("p_3".to_owned(), "r_5".to_owned())]);
    assert_eq!(got[1], None);
    let g_kate = got[2].as_ref().expect("kate");
    assert_eq!(g_kate.signature, *kate);
    assert_eq!(
        g_kate.people,
        vec![
            ("p_0".to_owned(), "r_4".to_owned()),
            ("p_1".to_owned(), "r_1".to_owned())
        ]
    );
    assert_eq!(got[3], got[0], "a repeated id is answered twice");

    // Blocks: every signature is under each of its blocking keys; kate and
    // katie share at least one; limit caps the answer.
    for s in [&kate, &katie, &jon] {
        for blk in &s.b {
            let ids = l.signatures_in_block(blk, 100).expect("block");
            assert!(ids.contains(&s.id), "{} under {blk}", s.id);
        }
    }
    let shared: Vec<&String> = kate.b.iter().filter(|b| katie.b.contains(b)).collect();
    assert!(!shared.is_empty(), "kate and katie share a block");
    let both = l.signatures_in_block(shared[0], 100).expect("shared block");
    let mut want = vec![kate.id.clone(), katie.id.clone()];
    want.sort();
    assert_eq!(both, want, "a block lists its signatures by id");
    assert_eq!(
        l.signatures_in_block(shared[0], 1).expect("limited"),
        vec![want[0].clone()]
    );
    assert!(
        l.signatures_in_block(shared[0], 0)
            .expect("zero")
            .is_empty()
    );
    assert!(
        l.signatures_in_block("no-such-block", 5)
            .expect("none")
            .is_empty()
    );

    // Scan: every signature once, with its people; stopping stops.
    let mut seen = BTreeMap::new();
    l.scan_signatures(&mut |s| {
        assert!(
            seen.insert(s.signature.id.clone(), s).is_none(),
            "once each"
        );
        true
    })
    .expect("scan");
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[&kate.id].people, g_kate.people);
    assert_eq!(seen[&jon.id].signature, *jon);
    let mut n = 0;
    l.scan_signatures(&mut |_| {
        n += 1;
        false
    })
    .expect("stopped scan");
    assert_eq!(n, 1);

    // Review queue: create, replace, get, list by id.
    let r1 = review(&kate.id, &katie.id, ReviewStatus::Open);
    let r2 = review(&kate.id, &jon.id, ReviewStatus::Open);
    l.put_review(&r1).expect("put review");
    l.put_review(&r2).expect("put review");
    let mut decided = r1.clone();
    decided.status = ReviewStatus::NonMatch;
    l.put_review(&decided).expect("replace review");
    assert_eq!(l.get_review(&r1.id).expect("get"), Some(decided.clone()));
    assert_eq!(l.get_review("rv_missing").expect("missing"), None);
    let mut want = vec![decided, r2];
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(l.review_items().expect("list"), want);

    // Models: None before any, the latest version after, duplicates refused.
    l.put_model(&model(2, 2e-4)).expect("v2");
    l.put_model(&model(1, 1e-4)).expect("v1 after v2");
    assert!(matches!(
        l.put_model(&model(2, 3e-4)),
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(l.model().expect("model"), Some(model(2, 2e-4)));
    l.put_model(&model(10, 5e-4)).expect("v10");
    assert_eq!(
        l.model().expect("model").map(|m| m.version),
        Some(10),
        "versions compare as numbers, not text"
    );
}

/// Counts DynamoDB calls by operation, and the items of each BatchWriteItem.
#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<Vec<(String, usize)>>>);

impl Calls {
    fn take(&self) -> Vec<(String, usize)> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

impl dynamodb::config::Intercept for Calls {
    fn name(&self) -> &'static str {
        "Calls"
    }

    fn read_before_transmit(
        &self,
        ctx: &dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &dynamodb::config::RuntimeComponents,
        _cfg: &mut dynamodb::config::ConfigBag,
    ) -> Result<(), dynamodb::error::BoxError> {
        let req = ctx.request();
        let op = req
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        let body: serde_json::Value =
            serde_json::from_slice(req.body().bytes().unwrap_or_default())?;
        let n = match op.as_str() {
            "BatchWriteItem" => body["RequestItems"]
                .as_object()
                .map(|t| t.values().map(|v| v.as_array().map_or(0, Vec::len)).sum())
                .unwrap_or(0),
            "BatchGetItem" => body["RequestItems"]
                .as_object()
                .map(|t| {
                    t.values()
                        .map(|v| v["Keys"].as_array().map_or(0, Vec::len))
                        .sum()
                })
                .unwrap_or(0),
            _ => 0,
        };
        self.0.lock().expect("lock").push((op, n));
        Ok(())
    }
}

#[test]
fn a_large_put_signatures_batch_is_a_few_batched_calls() {
    let Some(m) = moto() else { return };
    let b = backend(&m, "linkbatch");
    let calls = Calls::default();
    let client = dynamodb::Client::from_conf(
        dynamodb::config::Builder::from(&m.sdk)
            .interceptor(calls.clone())
            .build(),
    );
    let store = DynamoStore::new(client, rt().handle().clone(), &b.settings.table);
    let l: &dyn LinkageStore = store.linkage().expect("linkage");
    let p = pseudo();
    // Enough for several full batches of every call while moto stays quick:
    // 120 distinct signatures, 200 entries (80 a second person on one of them).
    const SIGS: usize = 120;
    const ENTRIES: usize = 200;
    let sigs: Vec<Arc<Signature>> = (0..SIGS)
        .map(|i| {
            sig(
                &p,
                &format!("family{i}"),
                ["kate", "tom", "ann"][i % 3],
                &format!("20{:02}-0{}-1{}", i % 20, i % 9 + 1, i % 10),
            )
        })
        .collect();
    let entries: Vec<SignatureEntry> = (0..ENTRIES)
        .map(|i| entry(&sigs[i % SIGS], &format!("p_{i}"), &format!("r_{i}")))
        .collect();
    let blocks = sigs
        .iter()
        .flat_map(|s| s.b.iter().map(move |b| (b, &s.id)))
        .collect::<HashSet<_>>()
        .len();

    let fresh = l.put_signatures(&entries).expect("put");
    assert!(fresh.iter().all(|f| *f), "every pair is new");
    let sent = calls.take();
    let count = |op: &str| sent.iter().filter(|(o, _)| o == op).count();
    let items = |op: &str| -> usize { sent.iter().filter(|(o, _)| o == op).map(|(_, n)| n).sum() };
    eprintln!(
        "put_signatures of {ENTRIES} new entries ({SIGS} signatures, {blocks} block entries): \
         {} BatchGetItem ({} keys), {} BatchWriteItem ({} items), {} calls in all",
        count("BatchGetItem"),
        items("BatchGetItem"),
        count("BatchWriteItem"),
        items("BatchWriteItem"),
        sent.len()
    );
    assert_eq!(
        items("BatchGetItem"),
        SIGS + ENTRIES,
        "one existence check per key"
    );
    assert_eq!(
        count("BatchGetItem"),
        (SIGS + ENTRIES).div_ceil(100),
        "100 keys a call, whole calls per lane"
    );
    assert_eq!(items("BatchWriteItem"), blocks + SIGS + ENTRIES);
    assert!(
        sent.iter()
            .filter(|(o, _)| o == "BatchWriteItem")
            .all(|(_, n)| (1..=25).contains(n))
    );
    assert_eq!(
        count("BatchWriteItem"),
        blocks.div_ceil(25) + (SIGS + ENTRIES).div_ceil(25),
        "full batches of 25 but for the last of each phase"
    );
    assert_eq!(sent.len(), count("BatchGetItem") + count("BatchWriteItem"));

    // The same batch again: reads only, nothing new, nothing written.
    let fresh = l.put_signatures(&entries).expect("replay");
    assert!(fresh.iter().all(|f| !*f));
    let sent = calls.take();
    assert!(
        sent.iter().all(|(o, _)| o == "BatchGetItem"),
        "a replay of known pairs writes nothing: {sent:?}"
    );
    eprintln!("the same batch replayed: {} BatchGetItem calls", sent.len());

    // Everything is readable: get and scan agree.
    let ids: Vec<String> = sigs.iter().map(|s| s.id.clone()).collect();
    let got = l.get_signatures(&ids).expect("get");
    assert!(got.iter().all(Option::is_some));
    assert_eq!(
        got.iter().flatten().map(|s| s.people.len()).sum::<usize>(),
        ENTRIES
    );
    eprintln!(
        "get_signatures of {SIGS} ids: {} Query calls",
        calls.take().len()
    );
    let mut scanned = HashSet::new();
    let mut people = 0;
    l.scan_signatures(&mut |s| {
        people += s.people.len();
        scanned.insert(s.signature.id);
        true
    })
    .expect("scan");
    assert_eq!(scanned.len(), SIGS);
    assert_eq!(people, ENTRIES);
    eprintln!(
        "scan_signatures of {SIGS}: {} Query calls",
        calls.take().len()
    );
}

#[test]
fn an_ingest_through_the_aws_pipeline_fills_the_linkage_index() {
    let Some(m) = moto() else { return };
    let b = backend(&m, "linkingest");
    let catalog = agencylink_core::schema::Catalog::embedded().expect("catalog");
    let ds = catalog.get("council.cin_referral").expect("dataset");
    let mut csv = Vec::new();
    agencylink_synth::write_csv(
        ds,
        &agencylink_synth::SynthOptions::new(11, 60),
        &mut csv,
        None,
    )
    .expect("synth");
    let key = "landing/rochdale-council/council.cin_referral/extract.csv";
    agencylink_core::ports::ObjectStoreExt::put(
        &b.objects,
        key,
        &csv,
        agencylink_core::ports::PutMode::Overwrite,
    )
    .expect("land");
    let tmp = std::env::temp_dir();
    let summary = agencylink_aws::pipeline::ingest_landing(
        &b,
        &pseudo(),
        ds,
        "rochdale-council",
        key,
        "2026-03-02T09:15:27Z",
        &tmp,
    )
    .expect("ingest");
    assert!(summary.rows_accepted > 0);

    let l = b.records.linkage().expect("linkage");
    let mut ids = Vec::new();
    l.scan_signatures(&mut |s| {
        ids.push(s.signature.id);
        true
    })
    .expect("scan");
    assert!(!ids.is_empty(), "the ingest wrote signatures");
    let got = l.get_signatures(&ids).expect("get");
    let mut pairs = 0;
    for s in got
        .iter()
        .map(|s| s.as_ref().expect("each scanned id is found"))
    {
        for blk in &s.signature.b {
            assert!(
                l.signatures_in_block(blk, 1000)
                    .expect("block")
                    .contains(&s.signature.id)
            );
        }
        for (person, record) in &s.people {
            let r = b
                .records
                .get_record(record)
                .expect("record")
                .expect("the pair's record is stored");
            assert_eq!(
                b.records.resolve_person(&r.person_id).expect("resolve"),
                b.records.resolve_person(person).expect("resolve"),
                "the record belongs to the pair's person (through aliases)"
            );
            pairs += 1;
        }
    }
    eprintln!(
        "ingest of {} rows: {} signatures, {pairs} (signature, person) pairs",
        summary.rows_accepted,
        ids.len()
    );
    assert!(pairs >= ids.len());
}

/// The merge lease: one store session at a time across processes (here,
/// two backends on one table): a second writer waits, and past its wait
/// gets a retryable error; once the first gives the lease back, it gets in.
#[test]
fn the_merge_lease_lets_one_writer_in_at_a_time() {
    let Some(m) = moto() else { return };
    let settings = m.settings("lease", AgencyPolicy::default());
    let first = m.backend(settings.clone());
    let second = m.backend(settings);
    let waiting = second
        .records
        .clone()
        .with_lease_wait(std::time::Duration::from_millis(300));
    first
        .records
        .begin_upload()
        .expect("the first takes the lease");
    // A session inside a session reuses it.
    first.records.begin_upload().expect("nested");
    first.records.end_upload(true).expect("inner end");
    match waiting.begin_upload() {
        Err(e @ StoreError::Unavailable { .. }) => assert!(e.is_retryable()),
        other => panic!("the second writer got in beside the first: {other:?}"),
    }
    first.records.end_upload(true).expect("given back");
    waiting.begin_upload().expect("now the second gets it");
    waiting.end_upload(true).expect("and gives it back");
}

/// Several uploads of overlapping people ingested at once, through the AWS
/// pipeline from separate backends (as separate Lambda instances would),
/// link exactly as the same uploads one after another.
#[test]
fn concurrent_overlapping_ingests_link_as_sequential_ones() {
    let Some(m) = moto() else { return };
    let catalog = agencylink_core::schema::Catalog::embedded().expect("catalog");
    let ds = catalog.get("council.missing_episode").expect("dataset");
    let (mut a, mut b, mut ta, mut tb) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    agencylink_synth::linkage::write_pair(
        ds,
        &agencylink_synth::linkage::PairOptions::new(21, 60),
        &mut a,
        &mut b,
        &mut ta,
        &mut tb,
    )
    .expect("pair");
    // A third upload: A's rows again under another agency, so all three
    // share people.
    let uploads: Vec<(&str, Vec<u8>)> =
        vec![("council-a", a.clone()), ("council-b", b), ("council-c", a)];
    let land = |b: &AwsBackend, agency: &str, csv: &[u8]| {
        let key = format!("landing/{agency}/council.missing_episode/extract.csv");
        agencylink_core::ports::ObjectStoreExt::put(
            &b.objects,
            &key,
            csv,
            agencylink_core::ports::PutMode::Overwrite,
        )
        .expect("land");
        key
    };
    let ingest = |b: &AwsBackend, agency: &str, key: &str| {
        agencylink_aws::pipeline::ingest_landing(
            b,
            &pseudo(),
            ds,
            agency,
            key,
            "2026-03-02T09:15:27Z",
            &std::env::temp_dir(),
        )
        .expect("ingest")
    };
    let people = |b: &AwsBackend| {
        let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        b.records
            .scan_dataset("council.missing_episode", None, None, &mut |r| {
                let p = b.records.resolve_person(&r.person_id).expect("resolve");
                by.entry(p).or_default().push(r.record_id);
                true
            })
            .expect("scan");
        let mut groups: Vec<Vec<String>> = by
            .into_values()
            .map(|mut v| {
                v.sort();
                v
            })
            .collect();
        groups.sort();
        groups
    };

    let seq = backend(&m, "seq-ingests");
    for (agency, csv) in &uploads {
        let key = land(&seq, agency, csv);
        ingest(&seq, agency, &key);
    }
    let want = people(&seq);

    let settings = m.settings("concurrent-ingests", AgencyPolicy::default());
    let shared = m.backend(settings.clone());
    let keys: Vec<String> = uploads
        .iter()
        .map(|(agency, csv)| land(&shared, agency, csv))
        .collect();
    let barrier = Arc::new(std::sync::Barrier::new(uploads.len()));
    let threads: Vec<_> = uploads
        .iter()
        .zip(keys)
        .map(|((agency, _), key)| {
            let (barrier, agency) = (barrier.clone(), (*agency).to_owned());
            let b = m.backend(settings.clone());
            let ds = ds.clone();
            std::thread::spawn(move || {
                barrier.wait();
                agencylink_aws::pipeline::ingest_landing(
                    &b,
                    &pseudo(),
                    &ds,
                    &agency,
                    &key,
                    "2026-03-02T09:15:27Z",
                    &std::env::temp_dir(),
                )
                .map(|s| s.rows_accepted)
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().expect("thread").expect("ingest") > 0);
    }
    assert_eq!(
        people(&shared),
        want,
        "the same people as one after another"
    );
    let entries = shared.lineage.entries().expect("lineage");
    assert_eq!(
        entries.iter().filter(|e| e["type"] == "ingest").count(),
        uploads.len()
    );
    agencylink_core::lineage::verify(&entries).expect("the chain verifies");
}

/// The rotation's translations in DynamoDB, as a withdrawal during a
/// rotation uses them: every pair comes back from a scan over the 16
/// shards, and a delete by old value takes exactly those.
#[test]
fn translations_are_scanned_whole_and_deleted_by_old_value() {
    let Some(m) = moto() else { return };
    let b = backend(&m, "translations");
    let t = b.records.translations().expect("a translation store");
    let mut pairs: Vec<(String, String)> = (0..60)
        .map(|i| (format!("name:k1:{i:032}"), format!("name:k2:{i:032}")))
        .collect();
    t.put_translations(&pairs).expect("put");
    let mut seen = Vec::new();
    t.scan_translations(&mut |old, new| seen.push((old.to_owned(), new.to_owned())))
        .expect("scan");
    seen.sort();
    pairs.sort();
    assert_eq!(seen, pairs);
    let gone: Vec<String> = pairs[..20].iter().map(|(o, _)| o.clone()).collect();
    assert_eq!(t.delete_translations(&gone).expect("delete"), 20);
    let olds: Vec<String> = pairs.iter().map(|(o, _)| o.clone()).collect();
    let left = t.get_translations(&olds).expect("get");
    assert_eq!(left.len(), 40);
    assert!(gone.iter().all(|g| !left.contains_key(g)));
    let mut n = 0;
    t.scan_translations(&mut |_, _| n += 1).expect("scan");
    assert_eq!(n, 40);
}
