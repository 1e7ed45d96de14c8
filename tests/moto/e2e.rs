//! End to end on moto server: synthetic extracts land in the landing bucket,
//! the ingest function handles their S3 events (direct and via SQS), the API
//! function answers an analyst and an auditor, lineage verifies, and
//! delivering the same events (and the same files) again changes nothing.
//! Skips only when AWS_ENDPOINT_URL is unset; fails when it is unreachable.

#[path = "../../functions/api/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use agencylink_aws::AgencyPolicy;
use agencylink_aws::testing::{moto, rt};
use agencylink_core::ports::{
    ChainLog, ObjectStore, ObjectStoreExt, PutMode, RecordStore, StoredRecord,
};
use agencylink_core::schema::Catalog;
use agencylink_fn_api::Api;
use agencylink_fn_ingest::{Ingestor, handle};
use agencylink_synth::{SynthOptions, World, write_csv_with_world};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use support::{call, http_api};

const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const S3_FIXTURE: &str =
    include_str!("../../functions/ingest/tests/fixtures/s3-object-created.json");

fn s3_event(bucket: &str, key: &str, size: usize) -> Value {
    let encoded: String = key
        .bytes()
        .map(|b| match b {
            b' ' => "+".to_owned(),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let text = S3_FIXTURE
        .replace("{{bucket}}", bucket)
        .replace("{{key}}", &encoded)
        .replace("{{size}}", &size.to_string());
    serde_json::from_str(&text).expect("fixture")
}

fn via_sqs(event: &Value, id: &str) -> Value {
    json!({"Records": [{
        "messageId": id,
        "receiptHandle": "AQEB",
        "body": event.to_string(),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-2:123456789012:agencylink-ingest",
        "awsRegion": "eu-west-2"
    }]})
}

fn all_records(store: &dyn RecordStore) -> Vec<StoredRecord> {
    let mut out = Vec::new();
    for d in store.datasets().expect("datasets") {
        store
            .scan_dataset(&d, None, None, &mut |r| {
                out.push(r);
                true
            })
            .expect("scan");
    }
    out
}

#[test]
fn synthetic_extracts_flow_from_landing_to_the_api_and_replays_change_nothing() {
    let Some(m) = moto() else { return };
    // Given a deployment whose policy lets each agency upload its own datasets.
    let policy = AgencyPolicy::from_pairs([
        (
            "gmp-police",
            &["police.cse_crime", "police.cse_intelligence"][..],
        ),
        ("nhs-gm-icb", &["health.safeguarding_attendance"][..]),
        (
            "gm-council",
            &["council.cin_referral", "council.missing_episode"][..],
        ),
    ]);
    let settings = m.settings("e2e", policy);
    let backend = m.backend(settings.clone());
    m.put_key_secret(&backend, "k1", KEY_B64);
    let ingestor = Arc::new(Ingestor::new(
        backend,
        Catalog::embedded().expect("catalog"),
    ));
    let api_backend = m.backend(settings);
    let api = Arc::new(Api::new(api_backend, Catalog::embedded().expect("catalog")));
    let b = ingestor.backend();
    let catalog = Catalog::embedded().expect("catalog");

    // And synthetic extracts of the same world (the same people across agencies).
    let world = World::new(2026, Default::default()).expect("world");
    let uploads = [
        ("gmp-police", "police.cse_crime", "crimes Q1.csv"),
        ("gmp-police", "police.cse_intelligence", "intel Q1.csv"),
        (
            "nhs-gm-icb",
            "health.safeguarding_attendance",
            "attendances.csv",
        ),
        (
            "gm-council",
            "council.missing_episode",
            "missing episodes.csv",
        ),
    ];
    let mut events = Vec::new();
    let mut files = Vec::new();
    for (agency, dataset, file) in uploads {
        let ds = catalog.get(dataset).expect("dataset");
        let mut opts = SynthOptions::new(2026, 250);
        opts.invalid_rate = 0.02;
        let mut csv = Vec::new();
        write_csv_with_world(&world, ds, &opts, &mut csv, None).expect("synth");
        let key = format!("landing/{agency}/{dataset}/{file}");
        b.objects
            .put(&key, &csv, PutMode::Create)
            .expect("upload to landing");
        events.push(s3_event(&b.settings.landing_bucket, &key, csv.len()));
        files.push((key, csv));
    }

    // When the ingest function gets the events: two direct, two through SQS.
    let invoke = |event: Value| {
        rt().block_on(handle(
            ingestor.clone(),
            LambdaEvent::new(event, Context::default()),
        ))
        .expect("handled")
    };
    for (i, e) in events.iter().enumerate() {
        let out = if i % 2 == 0 {
            invoke(e.clone())
        } else {
            invoke(via_sqs(e, &format!("m-{i}")))
        };
        if i % 2 == 0 {
            assert_eq!(out["results"][0]["outcome"], "ingested", "{out}");
        } else {
            assert_eq!(out, json!({"batchItemFailures": []}), "{out}");
        }
    }

    // Then every row is accounted for, and the landing bucket is empty.
    let lineage = b.lineage.entries().expect("lineage");
    // Each upload announced before it merged, then closed.
    assert_eq!(lineage.len(), 8);
    for pair in lineage.chunks(2) {
        assert_eq!(pair[0]["type"], "ingest_started", "{}", pair[0]);
        assert_eq!(pair[1]["type"], "ingest", "{}", pair[1]);
        assert_eq!(pair[0]["upload_id"], pair[1]["upload_id"]);
        assert_eq!(pair[1]["rows_in"], 250);
    }
    assert!(b.objects.list("landing/").expect("list").is_empty());
    let before = all_records(&b.records);
    assert!(!before.is_empty());

    // And the auditor verifies lineage through the API.
    let (s, v) = call(
        &api,
        http_api("GET", "/lineage/verify", &[], "auditor", "aud-1"),
    );
    // The same checks as `lineage verify` (no checkpoint key here).
    assert_eq!(
        (s, v),
        (200, json!({"ok": true, "events": 8, "checkpoint": null}))
    );

    // And an analyst reads the timeline of someone known to several agencies.
    let mut agencies: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in &before {
        agencies.entry(&r.person_id).or_default().insert(&r.agency);
    }
    let (person, known_to) = agencies
        .iter()
        .max_by_key(|(p, a)| (a.len(), std::cmp::Reverse(**p)))
        .map(|(p, a)| ((*p).to_owned(), a.len()))
        .expect("a person");
    assert!(
        known_to >= 2,
        "linkage joins agencies' records of one person"
    );
    let purpose = [("purpose", "Op Aurora: multi-agency profile")];
    let (s, t) = call(
        &api,
        http_api(
            "GET",
            &format!("/people/{person}"),
            &purpose,
            "analyst",
            "an-1",
        ),
    );
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["agencies"].as_array().map(Vec::len), Some(known_to));
    let (s, n) = call(
        &api,
        http_api(
            "GET",
            &format!("/people/{person}/network"),
            &purpose,
            "analyst",
            "an-1",
        ),
    );
    assert_eq!(s, 200, "{n}");
    let (s, x) = call(
        &api,
        http_api(
            "GET",
            "/export",
            &[("purpose", "Power BI refresh"), ("format", "ndjson")],
            "analyst",
            "an-1",
        ),
    );
    assert_eq!(s, 200, "{x}");
    assert_eq!(
        x["rows"].as_u64(),
        Some(before.len() as u64),
        "the export has every record"
    );
    let export = b
        .objects
        .get_bytes(x["key"].as_str().expect("key"))
        .expect("export");
    assert_eq!(
        export
            .split(|c| *c == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        before.len()
    );
    let access = b.access_log.entries().expect("access log");
    assert_eq!(access.len(), 3, "three analyst reads, three log entries");
    let (s, v) = call(
        &api,
        http_api("GET", "/access-log/verify", &[], "auditor", "aud-1"),
    );
    assert_eq!(
        (s, v),
        (200, json!({"ok": true, "entries": 3, "checkpoint": null}))
    );

    // When the same events are delivered again, and the same files uploaded again…
    for e in &events {
        let out = invoke(e.clone());
        assert_eq!(out["results"][0]["outcome"], "already_handled", "{out}");
    }
    for ((key, csv), e) in files.iter().zip(&events) {
        b.objects
            .put(key, csv, PutMode::Create)
            .expect("upload again");
        let out = invoke(via_sqs(e, "again"));
        assert_eq!(out, json!({"batchItemFailures": []}));
    }
    // …then nothing changed: same lineage, same records, landing empty again.
    assert_eq!(b.lineage.entries().expect("lineage"), lineage);
    assert_eq!(all_records(&b.records), before);
    assert!(b.objects.list("landing/").expect("list").is_empty());
    let (s, v) = call(
        &api,
        http_api("GET", "/lineage/verify", &[], "auditor", "aud-1"),
    );
    assert_eq!(
        (s, v),
        (200, json!({"ok": true, "events": 8, "checkpoint": null}))
    );
}

/// The daily schedule's input, `{"agencylink_task": "retention"}`, applies
/// each dataset's retention period on AWS: the records dated before the
/// cutoff go, an `expired` event says so (and is archived), the rest stay.
#[test]
fn the_scheduled_retention_run_expires_old_records_on_aws() {
    let Some(m) = moto() else { return };
    let policy = AgencyPolicy::from_pairs([("gm-council", &["council.missing_episode"][..])]);
    let settings = m.settings("e2e-retention", policy);
    let backend = m.backend(settings);
    m.put_key_secret(&backend, "k1", KEY_B64);
    let ingestor = Arc::new(Ingestor::new(
        backend,
        Catalog::embedded().expect("catalog"),
    ));
    let b = ingestor.backend();
    // council.missing_episode keeps records 2,557 days (7 years): two rows
    // from 2015 are past it whatever today is; three recent ones are not.
    let csv = "record_ref,child_id,family_name,given_name,dob,event_date,missing_type\n\
               M-1,C-1,Ahmed,Ann,2004-03-04,2015-01-10,M\n\
               M-2,C-2,Brown,Ben,2003-05-06,2015-02-11,A\n\
               M-3,C-3,Clarke,Cal,2012-07-08,2026-01-12,M\n\
               M-4,C-4,Dunn,Dee,2011-07-08,2026-02-12,A\n\
               M-5,C-1,Ahmed,Ann,2004-03-04,2026-03-01,M\n";
    let key = "landing/gm-council/council.missing_episode/episodes.csv";
    b.objects
        .put(key, csv.as_bytes(), PutMode::Create)
        .expect("upload");
    let invoke = |event: Value| {
        rt().block_on(handle(
            ingestor.clone(),
            LambdaEvent::new(event, Context::default()),
        ))
        .expect("handled")
    };
    invoke(s3_event(&b.settings.landing_bucket, key, csv.len()));
    assert_eq!(all_records(&b.records).len(), 5);

    let out = invoke(json!({"agencylink_task": "retention"}));
    assert_eq!(out["records_removed"], 2, "{out}");
    let left = all_records(&b.records);
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|r| r.event_date.as_str() >= "2026-01-01"));
    let expired: Vec<Value> = b
        .lineage
        .entries()
        .expect("lineage")
        .into_iter()
        .filter(|e| e["type"] == "expired")
        .collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["records_removed"], 2);
    assert_eq!(expired[0]["dataset"], "council.missing_episode");
    let seqs: Vec<u64> = b
        .archive
        .as_ref()
        .expect("the test deployment has a WORM archive")
        .archived_events("lineage")
        .expect("archive")
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    assert!(seqs.contains(&expired[0]["seq"].as_u64().expect("seq")));
    // Run again: nothing more is past the cutoff, and nothing is logged.
    let again = invoke(json!({"agencylink_task": "retention"}));
    assert_eq!(again["records_removed"], 0);
    // An unknown task is refused, not taken for an S3 event.
    let refused = rt().block_on(handle(
        ingestor.clone(),
        LambdaEvent::new(
            json!({"agencylink_task": "drop_tables"}),
            Context::default(),
        ),
    ));
    assert!(refused.is_err());
}
