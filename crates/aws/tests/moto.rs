//! The AWS adapters against moto server (or any endpoint in AWS_ENDPOINT_URL):
//! the core's conformance suite, the 25-item BatchWriteItem rule on the wire,
//! the lineage chain under two concurrent writers, the key secret and the
//! WORM archive. Skips only when AWS_ENDPOINT_URL is unset; fails when it is
//! set and unreachable.

use std::sync::{Arc, Barrier, Mutex};

use agencylink_aws::sdk::dynamodb;
use agencylink_aws::testing::{Moto, moto, rt};
use agencylink_aws::{AgencyPolicy, AwsBackend, DynamoStore, S3ObjectStore};
use agencylink_core::conformance::{self, sample_record};
use agencylink_core::lineage;
use agencylink_core::ports::{
    ChainLog, KeyProvider, ObjectStore, ObjectStoreExt, PutMode, RecordStore, StoreError,
    WriteBatch,
};
use serde_json::json;

fn backend(m: &Moto, name: &str) -> AwsBackend {
    m.backend(m.settings(name, AgencyPolicy::default()))
}

#[test]
fn s3_object_store_conforms() {
    let Some(m) = moto() else { return };
    let b = backend(&m, "conf-s3");
    // Separate landing and data buckets: keys route by prefix.
    conformance::object_store(&b.objects);
    assert!(
        b.objects
            .bucket_for("landing/a/b/c.csv")
            .ends_with("-landing")
            && b.objects.bucket_for("curated/x").ends_with("-data")
    );
    // One bucket for everything works the same.
    let fresh = backend(&m, "conf-s3-one");
    let one = S3ObjectStore::new(
        fresh.s3().clone(),
        rt().handle().clone(),
        &fresh.settings.data_bucket,
        &fresh.settings.data_bucket,
    );
    conformance::object_store(&one);
}

#[test]
fn s3_create_only_multipart_is_refused_when_the_key_exists() {
    let Some(m) = moto() else { return };
    let b = backend(&m, "mp");
    let big = vec![7u8; 11 << 20];
    b.objects
        .put("curated/a/b.ndjson", &big, PutMode::Create)
        .expect("first multipart create");
    assert!(matches!(
        b.objects.put("curated/a/b.ndjson", &big, PutMode::Create),
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(
        b.objects.head("curated/a/b.ndjson").expect("head").size,
        big.len() as u64
    );
}

#[test]
fn dynamodb_record_store_and_logs_conform() {
    let Some(m) = moto() else { return };
    let b = backend(&m, "conf-ddb");
    conformance::record_store(&b.records);
    conformance::merge_marks(&b.records);
    let again = backend(&m, "conf-ddb-upload");
    conformance::record_store_in_upload(&again.records);
    conformance::chain_log(&b.lineage);
    conformance::chain_log(&b.access_log);
    conformance::lineage_log(&backend(&m, "conf-lineage").lineage);
}

#[test]
fn dynamodb_withdrawal_conforms() {
    let Some(m) = moto() else { return };
    let b = backend(&m, "conf-withdraw");
    conformance::withdrawal(&b.records, &b.lineage, &b.objects);
}

/// Counts the items of every BatchWriteItem request as it goes on the wire.
#[derive(Debug, Clone, Default)]
struct BatchSizes(Arc<Mutex<Vec<usize>>>);

impl dynamodb::config::Intercept for BatchSizes {
    fn name(&self) -> &'static str {
        "BatchSizes"
    }

    fn read_before_transmit(
        &self,
        ctx: &dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &dynamodb::config::RuntimeComponents,
        _cfg: &mut dynamodb::config::ConfigBag,
    ) -> Result<(), dynamodb::error::BoxError> {
        let req = ctx.request();
        let target = req.headers().get("x-amz-target").unwrap_or_default();
        if target.ends_with(".BatchWriteItem") {
            let body: serde_json::Value =
                serde_json::from_slice(req.body().bytes().unwrap_or_default())?;
            let n = body["RequestItems"]
                .as_object()
                .map(|t| t.values().map(|v| v.as_array().map_or(0, Vec::len)).sum())
                .unwrap_or(0);
            self.0.lock().expect("lock").push(n);
        }
        Ok(())
    }
}

#[test]
fn batch_writes_never_send_more_than_25_items() {
    let Some(m) = moto() else { return };
    let b = backend(&m, "batch25");
    let sizes = BatchSizes::default();
    let client = dynamodb::Client::from_conf(
        dynamodb::config::Builder::from(&m.sdk)
            .interceptor(sizes.clone())
            .build(),
    );
    let store = DynamoStore::new(client, rt().handle().clone(), &b.settings.table);
    let records: Vec<_> = (0..140)
        .map(|i| {
            let k1 = format!("mk-{i}");
            let k2 = format!("mk-shared-{}", i % 7);
            let t = format!("t-{}", i % 11);
            sample_record(
                &format!("r-{i:03}"),
                &format!("p-{}", i % 7),
                "ds.batch",
                &format!("2025-01-{:02}", i % 28 + 1),
                &[&k1, &k2],
                &[("phone", &t)],
            )
        })
        .collect();
    let owners = records
        .iter()
        .flat_map(|r| {
            r.match_keys
                .iter()
                .map(|k| (k.clone(), r.person_id.clone()))
        })
        .collect();
    store
        .apply(&WriteBatch {
            records: records.clone(),
            key_owners: owners,
            ..WriteBatch::default()
        })
        .expect("apply");
    let sent = sizes.0.lock().expect("lock").clone();
    assert!(sent.len() > 10, "a large batch takes many calls: {sent:?}");
    assert!(
        sent.iter().all(|&n| (1..=25).contains(&n)),
        "every BatchWriteItem carries 1 to 25 items: {sent:?}"
    );
    // Record + person pointer + 2 key pointers + 1 link pointer each, the
    // dataset entry, and 140 + 7 distinct key owners.
    assert_eq!(sent.iter().sum::<usize>(), 140 * 5 + 1 + 147);
    assert_eq!(store.records_of_person("p-3").expect("person").len(), 20);
    assert_eq!(
        store.records_with_key("mk-shared-3").expect("key").len(),
        20
    );
    assert_eq!(store.records_with_link("t-5").expect("link").len(), 13);
    let mut n = 0;
    store
        .scan_dataset("ds.batch", None, None, &mut |_| {
            n += 1;
            true
        })
        .expect("scan");
    assert_eq!(n, 140, "the dataset query pages through everything");
}

#[test]
fn two_concurrent_writers_never_fork_the_chain() {
    let Some(m) = moto() else { return };
    let b = backend(&m, "fork");
    // Round 1: two writers append from the very same head at the same moment.
    lineage::append(
        &b.lineage,
        json!({"type": "genesis"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
    .expect("genesis");
    for round in 0..8 {
        let (seq, prev) = b.lineage.head().expect("head").expect("a head");
        let barrier = Arc::new(Barrier::new(2));
        let results: Vec<_> = (0..2)
            .map(|w| {
                let log = b.lineage.clone();
                let barrier = barrier.clone();
                let prev = prev.clone();
                std::thread::spawn(move || {
                    let mut e = serde_json::Map::new();
                    e.insert("type".into(), json!("race"));
                    e.insert("writer".into(), json!(w));
                    e.insert("round".into(), json!(round));
                    e.insert("seq".into(), json!(seq + 1));
                    e.insert("prev_hash".into(), json!(prev));
                    let h = lineage::event_hash(Some(&prev), &serde_json::Value::Object(e.clone()));
                    e.insert("hash".into(), json!(h));
                    barrier.wait();
                    log.append(seq + 1, &serde_json::Value::Object(e), Some(&prev))
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "exactly one writer wins round {round}: {results:?}");
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(StoreError::Precondition(_)))),
            "the loser is told the head moved"
        );
    }
    // Round 2: two ingest-like writers each append 10 events, retrying on races.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let log = b.lineage.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    lineage::append(
                        &log,
                        json!({"type": "ingest", "writer": w, "i": i, "rows_in": 1, "rows_accepted": 1, "rows_rejected": 0})
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                    )
                    .expect("append with retries");
                }
            })
        })
        .collect();
    for t in writers {
        t.join().expect("writer");
    }
    let entries = b.lineage.entries().expect("entries");
    assert_eq!(entries.len(), 1 + 8 + 20);
    assert_eq!(
        lineage::verify(&entries),
        Ok(entries.len()),
        "one unbroken chain"
    );
}

#[test]
fn lineage_is_found_by_upload() {
    let Some(m) = moto() else { return };
    let b = backend(&m, "byupload");
    for (u, t) in [("u_1", "ingest"), ("u_2", "ingest"), ("u_1", "failure")] {
        lineage::append(
            &b.lineage,
            json!({"type": t, "upload_id": u})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .expect("append");
    }
    let u1 = b.lineage.entries_by("u_1").expect("by upload");
    assert_eq!(u1.len(), 2);
    assert_eq!(u1[0]["seq"], 1);
    assert_eq!(u1[1]["seq"], 3);
    assert!(b.lineage.entries_by("u_9").expect("none").is_empty());
}

#[test]
fn the_key_secret_is_fetched_once_and_never_shown() {
    let Some(m) = moto() else { return };
    let b = backend(&m, "secret");
    let keys = b.keys.as_ref().expect("a key provider");
    assert!(
        matches!(
            keys.key(),
            Err(agencylink_core::ports::KeySourceError::Missing(_))
        ),
        "a missing secret is Missing"
    );
    let k1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    m.put_key_secret(&b, "k1", k1);
    assert_eq!(keys.key().expect("key").kid().as_str(), "k1");
    m.put_key_secret(&b, "k2", k1);
    assert_eq!(
        keys.key().expect("key").kid().as_str(),
        "k1",
        "cached for the life of the process"
    );
    let fresh = agencylink_aws::SecretsKeyProvider::new(
        agencylink_aws::sdk::secretsmanager::Client::new(&m.sdk),
        rt().handle().clone(),
        b.settings.key_secret_id.as_deref().unwrap_or_default(),
    );
    assert_eq!(fresh.key().expect("key").kid().as_str(), "k2");
    let shown = format!("{keys:?} {fresh:?}");
    assert!(
        !shown.contains(k1) && shown.contains("[redacted]"),
        "{shown}"
    );

    m.put_key_secret(&b, "BAD KID", "bm90LWEta2V5");
    let bad = agencylink_aws::SecretsKeyProvider::new(
        agencylink_aws::sdk::secretsmanager::Client::new(&m.sdk),
        rt().handle().clone(),
        b.settings.key_secret_id.as_deref().unwrap_or_default(),
    );
    let err = bad.key().expect_err("invalid").to_string();
    assert!(
        !err.contains("bm90LWEta2V5"),
        "errors never carry the secret: {err}"
    );
}

#[test]
fn archived_lineage_is_write_once_with_compliance_retention() {
    let Some(m) = moto() else { return };
    let b = backend(&m, "worm");
    let archive = b.archive.as_ref().expect("an audit bucket");
    let event = lineage::append(
        &b.lineage,
        json!({"type": "ingest", "upload_id": "u_1"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
    .expect("append");
    let key = archive.archive("lineage", &event).expect("archive");
    assert_eq!(
        archive.archive("lineage", &event).expect("again"),
        key,
        "idempotent"
    );
    // moto lacks GetObjectRetention; HeadObject reports the lock.
    let head = rt()
        .block_on(
            b.s3()
                .head_object()
                .bucket(b.settings.audit_bucket.as_deref().unwrap_or_default())
                .key(&key)
                .send(),
        )
        .expect("head");
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("COMPLIANCE")
    );
    let until = head.object_lock_retain_until_date().expect("retain until");
    let now = aws_smithy_now();
    assert!(until.secs() > now, "retention is in the future");
}

fn aws_smithy_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[test]
fn unreachable_endpoint_fails_rather_than_skips() {
    // Only meaningful where an endpoint is configured: the harness's probe
    // must panic for a dead port.
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        return;
    }
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = dead.local_addr().expect("addr").port();
    drop(dead);
    let out = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "probe_child", "--nocapture"])
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AGENCYLINK_PROBE_CHILD", "1")
        .output()
        .expect("run child");
    assert!(!out.status.success(), "a dead endpoint fails the suite");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("unreachable")
            || String::from_utf8_lossy(&out.stderr).contains("unreachable")
    );
}

#[test]
fn probe_child() {
    if std::env::var("AGENCYLINK_PROBE_CHILD").is_err() {
        return;
    }
    let _ = moto();
}

/// The versions (and delete markers) of `key` left in `bucket`.
fn versions_left(b: &AwsBackend, bucket: &str, key: &str) -> usize {
    let out = rt()
        .block_on(
            b.s3()
                .list_object_versions()
                .bucket(bucket)
                .prefix(key)
                .send(),
        )
        .expect("list versions");
    out.versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .count()
        + out
            .delete_markers()
            .iter()
            .filter(|d| d.key() == Some(key))
            .count()
}

#[test]
fn no_version_of_a_landing_object_survives_its_ingest() {
    use agencylink_aws::sdk::s3::types::{BucketVersioningStatus, VersioningConfiguration};
    use agencylink_core::pseudo::{Key, Pseudonymiser};
    use agencylink_core::schema::Catalog;
    let Some(m) = moto() else { return };
    let b = backend(&m, "landing-versions");
    let landing = b.settings.landing_bucket.clone();
    // Versioned, as the template makes the landing bucket.
    rt().block_on(
        b.s3()
            .put_bucket_versioning()
            .bucket(&landing)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send(),
    )
    .expect("versioning");
    let catalog = Catalog::embedded().expect("catalog");
    let ds = catalog.get("police.cse_crime").expect("dataset");
    let mut csv = Vec::new();
    agencylink_synth::write_csv(
        ds,
        &agencylink_synth::SynthOptions::new(7, 20),
        &mut csv,
        None,
    )
    .expect("synth");
    let key = "landing/gmp-police/police.cse_crime/extract.csv";
    // Two versions (an agency re-sent the file) and a neighbour whose key
    // the first one's is a prefix of: that one is not ours to delete.
    b.objects
        .put(key, b"an earlier attempt", PutMode::Overwrite)
        .expect("v1");
    b.objects.put(key, &csv, PutMode::Overwrite).expect("v2");
    let neighbour = "landing/gmp-police/police.cse_crime/extract.csv.part2";
    b.objects
        .put(neighbour, b"x", PutMode::Overwrite)
        .expect("neighbour");
    assert_eq!(versions_left(&b, &landing, key), 2);
    let pseudo = Pseudonymiser::new(
        Key::from_base64("k1", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("key"),
    );
    agencylink_aws::pipeline::ingest_landing(
        &b,
        &pseudo,
        ds,
        "gmp-police",
        key,
        "2026-03-02T09:00:00Z",
        &std::env::temp_dir(),
    )
    .expect("ingest");
    assert_eq!(
        versions_left(&b, &landing, key),
        0,
        "no version or delete marker of the raw extract remains"
    );
    assert!(matches!(b.objects.head(key), Err(StoreError::NotFound(_))));
    assert_eq!(versions_left(&b, &landing, neighbour), 1, "only that key");
    // A refused upload is deleted the same way.
    let refused = "landing/stranger/police.cse_crime/x.csv";
    b.objects
        .put(refused, &csv, PutMode::Overwrite)
        .expect("put");
    agencylink_aws::pipeline::reject_landing(
        &b,
        "landing/label/x",
        refused,
        "unknown_agency",
        "not in the policy",
        "2026-03-02T09:00:00Z",
    )
    .expect("reject");
    assert_eq!(versions_left(&b, &landing, refused), 0);
    // Deleting what is already gone (a redelivered event) is not an error.
    assert_eq!(b.objects.delete_all_versions(key).expect("again"), 0);
    // Unversioned buckets (the CLI's scratch setups) work too.
    let plain = "curated/x/plain.ndjson";
    b.objects
        .put(plain, b"{}", PutMode::Overwrite)
        .expect("put");
    assert_eq!(b.objects.delete_all_versions(plain).expect("plain"), 1);
    assert!(matches!(
        b.objects.head(plain),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn every_archived_event_leaves_a_kms_signed_checkpoint() {
    use agencylink_core::checkpoint::{Checkpoint, verify_against};
    let Some(m) = moto() else { return };
    let mut settings = m.settings("ckpt", AgencyPolicy::default());
    settings.checkpoint_key_id = Some(m.create_checkpoint_key());
    let b = m.backend(settings);
    let archive = b.archive.as_ref().expect("an audit bucket");
    let key = b.checkpoint_key.as_ref().expect("a checkpoint key");
    for i in 0..4u64 {
        let e = lineage::append(
            &b.lineage,
            json!({"type": "ingest", "rows_in": i, "rows_accepted": i, "rows_rejected": 0})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .expect("append");
        archive.archive("lineage", &e).expect("archive");
        // Archiving the same event again (a re-driven upload) is fine.
        archive.archive("lineage", &e).expect("archive again");
    }
    let entries = b.lineage.entries().expect("entries");
    let (at, cp) = archive
        .latest_checkpoint("lineage")
        .expect("list")
        .expect("a checkpoint");
    assert_eq!(at, "checkpoints/lineage/000000000004.json");
    assert_eq!((cp.size, cp.algorithm.as_str()), (4, "ECDSA_SHA_256"));
    assert!(cp.key_id.starts_with("arn:aws:kms:"), "{}", cp.key_id);
    assert_eq!(verify_against("lineage", &entries, &cp, key), Ok(()));
    for k in 1..=4usize {
        let p = verify_against("lineage", &entries[..4 - k], &cp, key).expect_err("truncated");
        assert_eq!((p.kind, p.seq), ("truncated", Some((4 - k + 1) as u64)));
    }
    // KMS refuses a checkpoint whose fields were edited after signing.
    let mut edited = cp.clone();
    edited.size = 2;
    assert_eq!(
        verify_against("lineage", &entries[..2], &edited, key)
            .expect_err("edited")
            .kind,
        "signature"
    );
    // A checkpoint signed by another KMS key does not verify under ours.
    let other = agencylink_aws::kms::KmsCheckpointKey::new(
        agencylink_aws::sdk::kms::Client::new(&m.sdk),
        rt().handle().clone(),
        &m.create_checkpoint_key(),
    );
    let foreign =
        Checkpoint::create("lineage", &entries, "2026-12-03T00:00:00Z", &other).expect("sign");
    assert_eq!(
        verify_against("lineage", &entries, &foreign, key)
            .expect_err("foreign")
            .kind,
        "signature"
    );
    // The archive lists what it holds by seq and hash.
    let held = archive.archived_events("lineage").expect("list");
    let want: Vec<(u64, String)> = entries
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap_or(0),
                e["hash"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(held, want);
}
