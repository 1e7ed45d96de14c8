//! The ingest handler, called as Lambda would call it (fixture events and
//! `Context::default()`), against moto server. Skips only when
//! AWS_ENDPOINT_URL is unset; fails when it is set and unreachable.

use std::sync::Arc;

use agencylink_aws::testing::{Moto, moto, rt};
use agencylink_aws::{AgencyPolicy, AwsBackend};
use agencylink_core::lineage;
use agencylink_core::ports::{ChainLog, ObjectStore, ObjectStoreExt, PutMode, RecordStore};
use agencylink_core::schema::Catalog;
use agencylink_fn_ingest::{HandlerError, Ingestor, handle};
use agencylink_synth::{SynthOptions, write_csv};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::Value;

const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const S3_FIXTURE: &str = include_str!("fixtures/s3-object-created.json");
const SQS_FIXTURE: &str = include_str!("fixtures/sqs-s3-batch.json");

/// Encode a key the way S3 event notifications do.
fn encode_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b' ' => out.push('+'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn s3_event(bucket: &str, key: &str, size: usize) -> Value {
    let text = S3_FIXTURE
        .replace("{{bucket}}", bucket)
        .replace("{{key}}", &encode_key(key))
        .replace("{{size}}", &size.to_string());
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn sqs_event(bucket: &str, key: &str, size: usize) -> Value {
    let inner = serde_json::to_string(&s3_event(bucket, key, size)).expect("json");
    // The S3 event is a JSON string inside the SQS body.
    let escaped = serde_json::to_string(&inner).expect("json");
    let text = SQS_FIXTURE
        .replace("\"{{s3_event_json}}\"", &escaped)
        .replace("{{bucket}}", bucket);
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn policy() -> AgencyPolicy {
    AgencyPolicy::from_pairs([
        (
            "rochdale-council",
            &["council.cin_referral", "council.missing_episode"][..],
        ),
        ("gmp-police", &["*"][..]),
    ])
}

struct World {
    ingestor: Arc<Ingestor>,
    catalog: Catalog,
}

impl World {
    fn new(m: &Moto, name: &str) -> World {
        let backend = m.backend(m.settings(name, policy()));
        m.put_key_secret(&backend, "k1", KEY_B64);
        World::from_backend(backend)
    }

    fn from_backend(backend: AwsBackend) -> World {
        World {
            ingestor: Arc::new(Ingestor::new(
                backend,
                Catalog::embedded().expect("catalog"),
            )),
            catalog: Catalog::embedded().expect("catalog"),
        }
    }

    fn b(&self) -> &AwsBackend {
        self.ingestor.backend()
    }

    fn extract(&self, dataset: &str, rows: u64, seed: u64) -> Vec<u8> {
        let ds = self.catalog.get(dataset).expect("dataset");
        let mut opts = SynthOptions::new(seed, rows);
        opts.invalid_rate = 0.05;
        let mut out = Vec::new();
        write_csv(ds, &opts, &mut out, None).expect("synth");
        out
    }

    fn land(&self, key: &str, bytes: &[u8]) -> Value {
        self.b()
            .objects
            .put(key, bytes, PutMode::Overwrite)
            .expect("landing put");
        s3_event(&self.b().settings.landing_bucket, key, bytes.len())
    }

    fn invoke(&self, event: Value) -> Result<Value, HandlerError> {
        rt().block_on(handle(
            self.ingestor.clone(),
            LambdaEvent::new(event, Context::default()),
        ))
    }

    fn lineage(&self) -> Vec<Value> {
        self.b().lineage.entries().expect("lineage")
    }

    fn record_count(&self, dataset: &str) -> usize {
        let mut n = 0;
        self.b()
            .records
            .scan_dataset(dataset, None, None, &mut |_| {
                n += 1;
                true
            })
            .expect("scan");
        n
    }
}

#[test]
fn a_direct_s3_event_is_ingested_and_a_repeat_changes_nothing() {
    let Some(m) = moto() else { return };
    let w = World::new(&m, "fn-direct");
    let key = "landing/rochdale-council/council.cin_referral/March 2025 (final).csv";
    let bytes = w.extract("council.cin_referral", 120, 7);
    let event = w.land(key, &bytes);
    assert!(
        event.to_string().contains("March+2025+%28final%29.csv"),
        "the fixture carries the key URL-encoded, as S3 sends it"
    );

    let out = w.invoke(event.clone()).expect("handled");
    let result = &out["results"][0];
    assert_eq!(result["outcome"], "ingested", "{out}");
    let summary = &result["summary"];
    assert_eq!(summary["rows_in"], 120);
    assert_eq!(
        summary["rows_accepted"].as_u64().unwrap_or(0)
            + summary["rows_rejected"].as_u64().unwrap_or(0),
        120
    );
    assert!(
        summary["rows_rejected"].as_u64().unwrap_or(0) > 0,
        "some rows carry mistakes"
    );
    let upload = summary["upload_id"].as_str().expect("upload id").to_owned();

    // Then: records merged, outputs written, landing deleted, lineage chained and archived.
    let accepted = summary["rows_accepted"].as_u64().unwrap_or(0) as usize;
    assert!(w.record_count("council.cin_referral") > 0);
    assert!(w.record_count("council.cin_referral") <= accepted);
    assert!(
        !w.b().objects.exists(key).expect("exists"),
        "the raw extract is gone"
    );
    for out in
        agencylink_aws::pipeline::output_keys("rochdale-council", "council.cin_referral", &upload)
    {
        assert!(w.b().objects.exists(&out).expect("exists"), "{out} written");
    }
    let curated = w
        .b()
        .objects
        .get_bytes(&format!(
            "curated/rochdale-council/council.cin_referral/{upload}.ndjson"
        ))
        .expect("curated");
    assert_eq!(
        curated.iter().filter(|b| **b == b'\n').count(),
        accepted,
        "one curated line per accepted row"
    );
    let all = w.lineage();
    // DynamoDB shows merged writes at once: the ingest announced itself
    // before it merged, then closed.
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["type"], "ingest_started");
    assert_eq!(all[0]["upload_id"], upload.as_str());
    assert_eq!(all[0]["source"], all[1]["source"]);
    let events = &all[1..];
    assert_eq!(events[0]["type"], "ingest");
    let source = events[0]["source"].as_str().expect("source");
    assert!(
        source.starts_with("landing/rochdale-council/council.cin_referral/")
            && source.ends_with(".csv")
            && !source.contains("March"),
        "the file name is not recorded, only its keyed label: {source}"
    );
    assert_eq!(
        events[0]["time"], "2026-03-02T09:15:27Z",
        "the event's time"
    );
    assert_eq!(lineage::verify(&all), Ok(2));
    let archived = rt()
        .block_on(
            w.b()
                .s3()
                .list_objects_v2()
                .bucket(w.b().settings.audit_bucket.as_deref().unwrap_or_default())
                .prefix("lineage/")
                .send(),
        )
        .expect("list archive");
    assert_eq!(
        archived.key_count(),
        Some(2),
        "both lineage events are in the WORM bucket"
    );

    // When: the same event is delivered again (at-least-once delivery).
    let again = w.invoke(event).expect("handled");
    assert_eq!(again["results"][0]["outcome"], "already_handled");
    // And: the same file is uploaded again.
    let event = w.land(key, &bytes);
    let dup = w.invoke(event).expect("handled");
    assert_eq!(dup["results"][0]["outcome"], "ingested");
    assert_eq!(dup["results"][0]["summary"]["duplicate"], true);
    assert_eq!(dup["results"][0]["summary"]["upload_id"], upload.as_str());
    // Then: nothing changed.
    assert_eq!(w.lineage(), all, "no new lineage event");
    assert!(!w.b().objects.exists(key).expect("exists"));

    // When an earlier delivery died after merging but before storing its
    // outputs, a redelivery stores them (derived again, byte for byte).
    let curated_key = format!("curated/rochdale-council/council.cin_referral/{upload}.ndjson");
    w.b().objects.delete(&curated_key).expect("lose the output");
    let out = w.invoke(w.land(key, &bytes)).expect("handled");
    assert_eq!(out["results"][0]["summary"]["duplicate"], true);
    assert_eq!(
        w.b().objects.get_bytes(&curated_key).expect("restored"),
        curated
    );
    assert_eq!(w.lineage(), all, "still no new lineage event");
}

#[test]
fn uploads_outside_the_agency_policy_are_rejected_into_lineage() {
    let Some(m) = moto() else { return };
    let w = World::new(&m, "fn-policy");
    let bytes = w.extract("police.cse_crime", 10, 3);
    let cases = [
        (
            "landing/rochdale-council/police.cse_crime/x.csv",
            "dataset_not_allowed",
        ),
        (
            "landing/stranger-agency/police.cse_crime/x.csv",
            "unknown_agency",
        ),
        (
            "landing/gmp-police/police.no_such_dataset/x.csv",
            "unknown_dataset",
        ),
        ("landing/gmp-police/x.csv", "bad_key"),
    ];
    for (key, code) in cases {
        let out = w.invoke(w.land(key, &bytes)).expect("handled");
        assert_eq!(out["results"][0]["outcome"], "rejected", "{key}: {out}");
        assert_eq!(out["results"][0]["code"], code, "{key}");
        assert!(
            !w.b().objects.exists(key).expect("exists"),
            "{key} deleted, not kept"
        );
    }
    let events = w.lineage();
    assert_eq!(events.len(), cases.len());
    for (e, (key, code)) in events.iter().zip(cases) {
        assert_eq!(e["type"], "failure");
        assert_eq!(e["code"], code);
        let source = e["source"].as_str().expect("source");
        assert!(
            source.starts_with("landing/label/") && !source.contains("x.csv"),
            "{key}: the key is not recorded, only its keyed label: {source}"
        );
    }
    assert_eq!(lineage::verify(&events), Ok(cases.len()));
    assert!(
        w.b().records.datasets().expect("datasets").is_empty(),
        "nothing was processed"
    );
    // Objects in another bucket or outside landing/ are not ours.
    let other = s3_event(
        "some-other-bucket",
        "landing/gmp-police/police.cse_crime/x.csv",
        1,
    );
    assert_eq!(
        w.invoke(other).expect("handled")["results"][0]["outcome"],
        "ignored"
    );
}

#[test]
fn a_landing_object_gone_before_it_was_ingested_is_recorded_in_lineage_once() {
    let Some(m) = moto() else { return };
    let w = World::new(&m, "fn-missing");
    let key = "landing/gmp-police/police.cse_crime/late redrive.csv";
    let bytes = w.extract("police.cse_crime", 10, 5);
    // The upload's message waits (a DLQ redrive, say) while the lifecycle
    // backstop expires its object.
    let event = w.land(key, &bytes);
    w.b().objects.delete_all_versions(key).expect("expire");

    let out = w.invoke(event.clone()).expect("handled");
    assert_eq!(out["results"][0]["outcome"], "missing", "{out}");
    let events = w.lineage();
    assert_eq!(events.len(), 1, "one trace of the lost upload");
    let e = &events[0];
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("failure"), Some("landing_object_missing"))
    );
    assert_eq!(
        (e["agency"].as_str(), e["dataset"].as_str()),
        (Some("gmp-police"), Some("police.cse_crime"))
    );
    let source = e["source"].as_str().expect("source");
    assert!(
        source.starts_with("landing/label/") && !source.contains("redrive"),
        "only the key's keyed label: {source}"
    );
    assert_eq!(lineage::verify(&events), Ok(1));
    assert!(w.b().records.datasets().expect("datasets").is_empty());

    // Delivered again: lineage already names it, so nothing is added.
    let again = w.invoke(event).expect("handled");
    assert_eq!(again["results"][0]["outcome"], "already_handled", "{again}");
    assert_eq!(w.lineage(), events);

    // An object ingested and then deleted by the ingest is "already
    // handled", not missing: its ingest event names the same label.
    let key = "landing/gmp-police/police.cse_crime/on time.csv";
    let event = w.land(key, &bytes);
    let out = w.invoke(event.clone()).expect("handled");
    assert_eq!(out["results"][0]["outcome"], "ingested", "{out}");
    let again = w.invoke(event).expect("handled");
    assert_eq!(again["results"][0]["outcome"], "already_handled", "{again}");
    assert_eq!(
        w.lineage().len(),
        3,
        "the failure and the one ingest (started, then closed)"
    );
}

#[test]
fn an_sqs_batch_reports_only_its_failed_messages() {
    let Some(m) = moto() else { return };
    let w = World::new(&m, "fn-sqs");
    let key = "landing/gmp-police/police.cse_crime/crimes.csv";
    let bytes = w.extract("police.cse_crime", 40, 11);
    w.b()
        .objects
        .put(key, &bytes, PutMode::Overwrite)
        .expect("put");
    let event = sqs_event(&w.b().settings.landing_bucket, key, bytes.len());
    let out = w.invoke(event).expect("handled");
    assert_eq!(
        out,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "msg-bad-0003"}]}),
        "the good message is done, the test event skipped, the malformed one failed"
    );
    assert_eq!(w.lineage().len(), 2, "one ingest, started and closed");
    assert!(w.record_count("police.cse_crime") > 0);
}

#[test]
fn retryable_failures_fail_the_message_or_the_invocation() {
    let Some(m) = moto() else { return };
    // DynamoDB unreachable (a dead port), S3 and Secrets Manager fine.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = dead.local_addr().expect("addr").port();
    drop(dead);
    let good = m.backend(m.settings("fn-retry", policy()));
    m.put_key_secret(&good, "k1", KEY_B64);
    let ddb = agencylink_aws::sdk::dynamodb::Client::from_conf(
        agencylink_aws::sdk::dynamodb::config::Builder::from(&m.sdk)
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .retry_config(agencylink_aws::sdk::aws_config::retry::RetryConfig::disabled())
            .build(),
    );
    let broken = AwsBackend::from_clients(
        good.settings.clone(),
        good.s3().clone(),
        ddb,
        agencylink_aws::sdk::secretsmanager::Client::new(&m.sdk),
        rt().handle().clone(),
    );
    let w = World::from_backend(broken);
    let key = "landing/gmp-police/police.cse_crime/crimes.csv";
    let bytes = w.extract("police.cse_crime", 5, 1);
    w.b()
        .objects
        .put(key, &bytes, PutMode::Create)
        .expect("put");

    let sqs = sqs_event(&w.b().settings.landing_bucket, key, bytes.len());
    let out = w.invoke(sqs).expect("a batch response");
    let failed: Vec<&str> = out["batchItemFailures"]
        .as_array()
        .expect("failures")
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str())
        .collect();
    assert_eq!(
        failed,
        ["msg-good-0001", "msg-bad-0003"],
        "the message is redelivered"
    );
    assert!(
        w.b().objects.exists(key).expect("exists"),
        "the upload is kept for the retry"
    );

    let direct = s3_event(&w.b().settings.landing_bucket, key, bytes.len());
    let err = w.invoke(direct).expect_err("a retryable error");
    assert!(err.is_retryable(), "{err}");
    let d: Diagnostic = err.into();
    assert_eq!(d.error_type, "agencylink.Retryable");
}

#[test]
fn events_that_are_not_s3_or_sqs_are_refused_as_non_retryable() {
    let Some(m) = moto() else { return };
    let w = World::new(&m, "fn-bad");
    let err = w
        .invoke(serde_json::json!({"Records": [{"eventSource": "aws:kinesis"}]}))
        .expect_err("refused");
    assert!(!err.is_retryable());
    let err = w
        .invoke(serde_json::json!({"Records": [{"eventSource": "aws:s3"}]}))
        .expect_err("an S3 record without eventTime is refused");
    assert!(!err.is_retryable());
}

#[test]
fn an_upload_over_the_size_limit_is_refused_before_it_is_read() {
    let Some(m) = moto() else { return };
    let backend = m.backend(m.settings("fn-size", policy()));
    m.put_key_secret(&backend, "k1", KEY_B64);
    let w = World::from_backend(backend);
    let bytes = w.extract("council.cin_referral", 40, 3);
    // The same limit, set below this file's size.
    let small = World {
        ingestor: Arc::new(
            Ingestor::new(
                m.backend(w.b().settings.clone()),
                Catalog::embedded().expect("catalog"),
            )
            .with_max_bytes(bytes.len() as u64 - 1),
        ),
        catalog: Catalog::embedded().expect("catalog"),
    };
    let key = "landing/rochdale-council/council.cin_referral/big.csv";
    let out = small.invoke(small.land(key, &bytes)).expect("handled");
    assert_eq!(out["results"][0]["outcome"], "rejected", "{out}");
    assert_eq!(out["results"][0]["code"], "upload_too_large");
    assert!(!small.b().objects.exists(key).expect("exists"), "deleted");
    let events = small.lineage();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["code"], "upload_too_large");
    let reason = events[0]["reason"].as_str().expect("reason");
    assert!(
        reason.contains(&bytes.len().to_string()) && reason.contains("split"),
        "{reason}"
    );
    assert!(small.b().records.datasets().expect("datasets").is_empty());

    // At the limit it is ingested, and on DynamoDB (writes visible as they
    // are made) lineage says the ingest started before it says it ended.
    let out = w.invoke(w.land(key, &bytes)).expect("handled");
    assert_eq!(out["results"][0]["outcome"], "ingested", "{out}");
    let events = w.lineage();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds, ["failure", "ingest_started", "ingest"]);
    assert_eq!(events[1]["upload_id"], events[2]["upload_id"]);
    assert_eq!(lineage::verify(&events), Ok(3));
}

/// An SQS event holding one message as the queue gave it back.
fn sqs_event_of(message: &aws_sdk_sqs::types::Message) -> Value {
    let attributes: serde_json::Map<String, Value> = message
        .message_attributes()
        .into_iter()
        .flatten()
        .map(|(name, a)| {
            (
                name.clone(),
                serde_json::json!({"stringValue": a.string_value(), "dataType": a.data_type()}),
            )
        })
        .collect();
    serde_json::json!({"Records": [{
        "messageId": message.message_id(),
        "receiptHandle": message.receipt_handle(),
        "body": message.body(),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": attributes,
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-2:123456789012:agencylink-ingest",
        "awsRegion": "eu-west-2",
    }]})
}

#[test]
fn an_upload_paused_before_the_time_limit_resumes_from_a_continuation_and_counts_once() {
    let Some(m) = moto() else { return };
    let sqs = rt().block_on(async {
        let sdk = agencylink_aws::sdk::aws_config::load_from_env().await;
        aws_sdk_sqs::Client::new(&sdk)
    });
    let queue = rt()
        .block_on(
            sqs.create_queue()
                .queue_name(agencylink_aws::testing::unique("ingest"))
                .send(),
        )
        .expect("a queue")
        .queue_url()
        .expect("its url")
        .to_owned();
    let key = "landing/gmp-police/police.cse_crime/crimes.csv";
    let bytes;
    // The same upload in one go, for the counts a resumed one must match.
    let whole = {
        let w = World::new(&m, "fn-whole");
        bytes = w.extract("police.cse_crime", 30, 12);
        let event = w.land(key, &bytes);
        let out = w.invoke(event).expect("ingested");
        out["results"][0]["summary"].clone()
    };
    assert!(whole["rows_accepted"].as_u64().expect("accepted") > 20);

    let backend = m.backend(m.settings("fn-resume", policy()));
    m.put_key_secret(&backend, "k1", KEY_B64);
    let w = World {
        ingestor: Arc::new(
            Ingestor::new(backend, Catalog::embedded().expect("catalog"))
                .with_merge_batch(5)
                .with_resume(sqs.clone(), &queue),
        ),
        catalog: Catalog::embedded().expect("catalog"),
    };
    w.b()
        .objects
        .put(key, &bytes, PutMode::Overwrite)
        .expect("landing put");
    // An invocation whose deadline is already inside the margin: it merges
    // one batch, pauses and sends its message back as a continuation.
    let mut ctx = Context::default();
    ctx.deadline = 1;
    let first = rt()
        .block_on(handle(
            w.ingestor.clone(),
            LambdaEvent::new(
                sqs_event(&w.b().settings.landing_bucket, key, bytes.len()),
                ctx,
            ),
        ))
        .expect("a batch response");
    assert_eq!(
        first["batchItemFailures"],
        serde_json::json!([{"itemIdentifier": "msg-bad-0003"}]),
        "the paused message is acknowledged (its continuation carries it), the malformed one failed"
    );
    assert!(
        w.b().objects.exists(key).expect("head"),
        "the landing object stays"
    );
    let started = w.lineage();
    let types: Vec<&Value> = started.iter().map(|e| &e["type"]).collect();
    assert_eq!(types, ["ingest_started"], "started, not closed");
    let upload = started[0]["upload_id"]
        .as_str()
        .expect("upload id")
        .to_owned();
    let marks = w.b().records.merge_marks(&upload).expect("marks");
    assert_eq!(marks.len(), 1, "one batch merged and marked done");
    assert!(marks[0].done);

    let received = rt()
        .block_on(
            sqs.receive_message()
                .queue_url(&queue)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .send(),
        )
        .expect("receive");
    let messages = received.messages();
    assert_eq!(messages.len(), 1, "one continuation");
    let continuation = &messages[0];
    assert_eq!(
        continuation
            .message_attributes()
            .and_then(|a| a.get(agencylink_fn_ingest::CONTINUATION))
            .and_then(|a| a.string_value()),
        Some("1")
    );
    let second = w
        .invoke(sqs_event_of(continuation))
        .expect("a batch response");
    assert_eq!(second["batchItemFailures"], serde_json::json!([]));

    let entries = w.lineage();
    let of = |kind: &str| entries.iter().filter(|e| e["type"] == kind).count();
    assert_eq!((of("ingest_started"), of("ingest")), (1, 1));
    let event = entries
        .iter()
        .find(|e| e["type"] == "ingest")
        .expect("the ingest event");
    for count in [
        "rows_in",
        "rows_accepted",
        "rows_rejected",
        "records_inserted",
        "records_replaced",
        "records_unchanged",
        "people_linked",
    ] {
        assert_eq!(event[count], whole[count], "{count}");
    }
    let counts = w.b().records.record_counts().expect("counts");
    assert!(
        agencylink_core::reconcile::reconcile(&entries, &counts).is_ok(),
        "lineage reconciles with the store"
    );
    assert!(
        w.b()
            .records
            .merge_marks(&upload)
            .expect("marks")
            .is_empty(),
        "marks go once lineage closes the upload"
    );
    assert!(
        !w.b().objects.exists(key).expect("head"),
        "the raw extract is gone"
    );
    assert_eq!(
        w.record_count("police.cse_crime") as u64,
        whole["records_inserted"].as_u64().expect("inserted")
    );
}
