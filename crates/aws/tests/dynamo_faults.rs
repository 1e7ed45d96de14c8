//! Faults at DynamoDB's door (#18 item 3, its AWS half): an HTTP connector
//! between the SDK and moto server answers some calls itself, as
//! DynamoDB does on a bad day, while the store runs a first upload, an
//! overlapping upload from another agency (linkage), a correction, a
//! withdrawal, a key rotation (opened, a file re-sent, the store
//! migrated) and a retention run. The faults:
//!
//! - throttling (400 `ProvisionedThroughputExceededException`) and 500s
//!   (`InternalServerError`), before the call reaches the table;
//! - a lost answer: the call lands, then the client gets a 500 (the
//!   hardest case: the SDK's retry meets its own write);
//! - a timeout: the attempt hangs past the client's attempt timeout;
//! - partial batches: `BatchWriteItem` processes half its requests and
//!   hands back the rest as `UnprocessedItems` (`BatchGetItem` likewise
//!   with `UnprocessedKeys`).
//!
//! One at a time they hit the first attempt of every call, and the SDK's
//! retries (the production policy, [`agencylink_aws::dynamo::client_config`])
//! must absorb them; in bursts longer than its attempts they fail a call,
//! and retrying the failed step must converge. Either way the store ends as
//! a run that met no fault: the same records, people and bodies, the same
//! lineage events once each, lineage verifying and accounting for every
//! record, every upload's rows conserved (in = accepted + rejected).
//!
//! `AGENCYLINK_FAULT_SWEEP=full` bursts at every call rather than at a
//! sample (a long run against moto).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agencylink_aws::dynamo::{MAX_ATTEMPTS, client_config};
use agencylink_aws::sdk::dynamodb;
use agencylink_aws::testing::{Moto, moto, rt};
use agencylink_aws::{AgencyPolicy, AwsBackend};
use agencylink_core::ports::{ChainLog, RecordStore, RecordStoreExt, TranslationStore};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use serde_json::{Value, json};

/// The client's attempt timeout here (production's is 10 s): an injected
/// timeout hangs a little longer than this.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the connector does to a call it picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Throttle,
    ServerError,
    /// The call lands; its answer is replaced by a 500.
    LostAnswer,
    /// The attempt hangs past the attempt timeout (never sent).
    Timeout,
    /// Half of a batch's requests done, the rest handed back.
    Partial,
}

/// Which calls a plan counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Calls {
    /// Every DynamoDB call.
    All,
    /// Calls that write.
    Writes,
    /// `BatchWriteItem` and `BatchGetItem`.
    Batches,
}

/// When a plan fires, among the calls it counts (retries included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// The first attempt of every counted call (its retries go through).
    EveryFirstAttempt,
    /// Every `n`th counted call's first attempt.
    EveryNth(u64),
    /// `len` counted attempts in a row from the `at`th: longer than the
    /// SDK's attempts, so the call fails.
    Burst { at: u64, len: u64 },
}

#[derive(Debug)]
struct Plan {
    kind: Kind,
    calls: Calls,
    when: When,
    armed: bool,
    counted: u64,
    fired: u64,
    /// `counted` at the end of each step.
    ends: Vec<u64>,
}

impl Plan {
    fn new(kind: Kind, calls: Calls, when: When) -> Self {
        Plan {
            kind,
            calls,
            when,
            armed: true,
            counted: 0,
            fired: 0,
            ends: Vec::new(),
        }
    }

    /// The fault for this request, if it is one the plan picks.
    fn pick(&mut self, op: &str, first_attempt: bool) -> Option<Kind> {
        let counts = match self.calls {
            Calls::All => true,
            Calls::Writes => matches!(
                op,
                "PutItem" | "DeleteItem" | "UpdateItem" | "BatchWriteItem" | "TransactWriteItems"
            ),
            Calls::Batches => matches!(op, "BatchWriteItem" | "BatchGetItem"),
        };
        if !counts || !self.armed {
            return None;
        }
        self.counted += 1;
        let hit = match self.when {
            When::EveryFirstAttempt => first_attempt,
            When::EveryNth(n) => first_attempt && self.counted.is_multiple_of(n),
            When::Burst { at, len } => (at..at + len).contains(&self.counted),
        };
        hit.then(|| {
            self.fired += 1;
            self.kind
        })
    }
}

/// The SDK's HTTP client, with a plan in front of it.
#[derive(Debug, Clone)]
struct Faulty {
    inner: SharedHttpClient,
    plan: Arc<Mutex<Plan>>,
}

impl HttpClient for Faulty {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(FaultyConnector {
            inner: self.inner.http_connector(settings, components),
            plan: self.plan.clone(),
        })
    }
}

#[derive(Debug)]
struct FaultyConnector {
    inner: SharedHttpConnector,
    plan: Arc<Mutex<Plan>>,
}

fn answer(status: u16, body: &Value) -> HttpResponse {
    let mut resp = HttpResponse::new(
        StatusCode::try_from(status).expect("a status"),
        SdkBody::from(body.to_string()),
    );
    resp.headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    resp
}

fn dynamodb_error(status: u16, code: &str) -> HttpResponse {
    answer(
        status,
        &json!({
            "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"),
            "message": "injected by the test's connector",
        }),
    )
}

fn set_body(req: &mut HttpRequest, body: &Value) {
    let text = body.to_string();
    req.headers_mut()
        .insert("content-length", text.len().to_string());
    *req.body_mut() = SdkBody::from(text);
}

/// Split a batch request: the half sent on, and the rest as the answer's
/// `UnprocessedItems` / `UnprocessedKeys` (`None`: too small to split).
fn split_batch(op: &str, body: &mut Value) -> Option<Value> {
    let tables = body["RequestItems"].as_object_mut()?;
    let mut rest = serde_json::Map::new();
    for (table, requests) in tables.iter_mut() {
        let list = if op == "BatchGetItem" {
            requests.get_mut("Keys")?.as_array_mut()?
        } else {
            requests.as_array_mut()?
        };
        if list.len() < 2 {
            continue;
        }
        let tail = list.split_off(list.len().div_ceil(2));
        let left = if op == "BatchGetItem" {
            let mut r = requests.clone();
            r["Keys"] = Value::Array(tail);
            r
        } else {
            Value::Array(tail)
        };
        rest.insert(table.clone(), left);
    }
    (!rest.is_empty()).then_some(Value::Object(rest))
}

impl HttpConnector for FaultyConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        let op = request
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        let first_attempt = request
            .headers()
            .get("amz-sdk-request")
            .is_none_or(|h| h.starts_with("attempt=1;"));
        let fault = self.plan.lock().expect("plan").pick(&op, first_attempt);
        let inner = self.inner.clone();
        match fault {
            None => inner.call(request),
            Some(Kind::Throttle) => HttpConnectorFuture::ready(Ok(dynamodb_error(
                400,
                "ProvisionedThroughputExceededException",
            ))),
            Some(Kind::ServerError) => {
                HttpConnectorFuture::ready(Ok(dynamodb_error(500, "InternalServerError")))
            }
            Some(Kind::LostAnswer) => HttpConnectorFuture::new(async move {
                inner.call(request).await?;
                Ok(dynamodb_error(500, "InternalServerError"))
            }),
            Some(Kind::Timeout) => HttpConnectorFuture::new(async move {
                tokio::time::sleep(ATTEMPT_TIMEOUT + Duration::from_secs(1)).await;
                inner.call(request).await
            }),
            Some(Kind::Partial) => {
                let mut body: Value =
                    serde_json::from_slice(request.body().bytes().unwrap_or_default())
                        .unwrap_or(Value::Null);
                let Some(rest) = split_batch(&op, &mut body) else {
                    return inner.call(request);
                };
                set_body(&mut request, &body);
                HttpConnectorFuture::new(async move {
                    let resp = inner.call(request).await?;
                    if resp.status().as_u16() != 200 {
                        return Ok(resp);
                    }
                    let bytes = ByteStream::new(resp.into_body())
                        .collect()
                        .await
                        .expect("moto's answer")
                        .into_bytes();
                    let mut done: Value = serde_json::from_slice(&bytes).expect("moto's JSON");
                    let field = if op == "BatchGetItem" {
                        "UnprocessedKeys"
                    } else {
                        "UnprocessedItems"
                    };
                    // Moto processes all it is sent: the handed-back half
                    // is the only leftover.
                    done[field] = rest;
                    Ok(answer(200, &done))
                })
            }
        }
    }
}

/// A backend whose DynamoDB calls pass through `plan` (the buckets are
/// `settings`', already provisioned).
fn faulty_backend(m: &Moto, base: &AwsBackend, plan: &Arc<Mutex<Plan>>, name: &str) -> AwsBackend {
    use dynamodb::config::retry::{RetryConfig, RetryPartition};
    use dynamodb::config::timeout::TimeoutConfig;
    // Moto listens on plain HTTP on loopback.
    let inner = aws_smithy_http_client::Builder::new().build_http();
    let config = client_config(&m.sdk)
        .http_client(Faulty {
            inner,
            plan: plan.clone(),
        })
        // The production policy's attempts; quicker backoff and a
        // shorter attempt timeout so a test of many faults takes seconds.
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(50)),
        )
        // Its own retry quota: one test's faults do not use up another's.
        .retry_partition(RetryPartition::new(name.to_owned()))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        )
        .build();
    AwsBackend::from_clients(
        base.settings.clone(),
        base.s3().clone(),
        dynamodb::Client::from_conf(config),
        agencylink_aws::sdk::secretsmanager::Client::new(&m.sdk),
        rt().handle().clone(),
    )
}

#[path = "../../../tests/support/lifecycle.rs"]
mod lifecycle;
use lifecycle::{Lifecycle, STEPS};

/// What the store holds, canonically: each record's resolved person and
/// body, the lineage events' kinds in order, the review queue's size, and
/// the rotation's state. Checks on the way that no record is listed twice,
/// lineage verifies and accounts for every record, and every upload's rows
/// are conserved.
#[derive(Debug, PartialEq)]
struct Snapshot {
    records: BTreeMap<String, (String, String)>,
    lineage: Vec<String>,
    reviews: usize,
    rotation: Option<String>,
}

fn snapshot(b: &AwsBackend) -> Snapshot {
    let store = &b.records;
    let mut all = Vec::new();
    for ds in store.datasets().expect("datasets") {
        store
            .scan_dataset(&ds, None, None, &mut |r| {
                all.push(r);
                true
            })
            .expect("scan");
    }
    let listed = all.len();
    let records: BTreeMap<_, _> = all
        .into_iter()
        .map(|r| {
            let person = store.resolve_person(&r.person_id).expect("resolve");
            (r.record_id.clone(), (person, r.body.as_str().to_owned()))
        })
        .collect();
    assert_eq!(listed, records.len(), "a record is listed twice");
    let entries = b.lineage.entries().expect("lineage");
    agencylink_core::lineage::verify(&entries).expect("lineage verifies");
    let counts = store.record_counts().expect("counts");
    agencylink_core::reconcile::reconcile(&entries, &counts)
        .map_err(|m| format!("{m:?}"))
        .expect("lineage accounts for every record");
    for e in entries.iter().filter(|e| e["type"] == "ingest") {
        let n = |k: &str| e[k].as_u64().unwrap_or(u64::MAX);
        assert_eq!(
            n("rows_in"),
            n("rows_accepted") + n("rows_rejected"),
            "rows conserved in {}",
            e["upload_id"]
        );
    }
    Snapshot {
        records,
        lineage: entries
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
            .collect(),
        reviews: store
            .linkage()
            .expect("linkage")
            .review_items()
            .expect("reviews")
            .len(),
        rotation: store.rotation_state().expect("rotation state"),
    }
}

/// Every step through a faulty backend on fresh buckets and table: a step
/// that fails is retried with the plan disarmed (as a redelivery would
/// run it). Returns the end state, the plan (with its counts), and how
/// many steps failed.
fn run_with(m: &Moto, x: &Lifecycle, plan: Plan, name: &str) -> (Snapshot, Plan, usize) {
    let base = m.backend(m.settings(name, AgencyPolicy::default()));
    let plan = Arc::new(Mutex::new(plan));
    let b = faulty_backend(m, &base, &plan, name);
    let mut uploads = Vec::new();
    let mut failed = 0;
    for step in STEPS {
        if let Err(e) = x.run(step, &b.records, &b.lineage, &mut uploads) {
            assert!(
                plan.lock().expect("plan").fired > 0,
                "{name}: {step:?} failed with no fault injected: {e}"
            );
            eprintln!("{name}: {step:?} failed: {e}");
            failed += 1;
            plan.lock().expect("plan").armed = false;
            x.run(step, &b.records, &b.lineage, &mut uploads)
                .unwrap_or_else(|e| panic!("{name}: {step:?} retried: {e}"));
        }
        let mut p = plan.lock().expect("plan");
        let counted = p.counted;
        p.ends.push(counted);
    }
    let snap = snapshot(&b);
    let plan = std::mem::replace(
        &mut *plan.lock().expect("plan"),
        Plan::new(Kind::Throttle, Calls::All, When::EveryNth(1)),
    );
    (snap, plan, failed)
}

fn same(got: &Snapshot, want: &Snapshot, what: &str) {
    if got != want {
        let differ = got
            .records
            .iter()
            .filter(|(id, v)| want.records.get(*id) != Some(*v))
            .count();
        panic!(
            "{what}: {} records (want {}), {differ} differ or are new; lineage {:?} (want {:?}); {} review items (want {}); rotation {:?} (want {:?})",
            got.records.len(),
            want.records.len(),
            got.lineage,
            want.lineage,
            got.reviews,
            want.reviews,
            got.rotation,
            want.rotation
        );
    }
}

/// The reference (no fault), and how many DynamoDB calls it had made by
/// the end of each step.
fn reference(m: &Moto, x: &Lifecycle) -> (Snapshot, Vec<u64>) {
    let (snap, plan, failed) = run_with(
        m,
        x,
        Plan::new(Kind::Throttle, Calls::All, When::EveryNth(u64::MAX)),
        "faults-ref",
    );
    assert_eq!(failed, 0);
    (snap, plan.ends)
}

#[test]
fn single_faults_are_absorbed_by_the_sdks_retries() {
    let Some(m) = moto() else { return };
    let x = Lifecycle::new("dynamo-faults", 30);
    let (want, ends) = reference(&m, &x);
    let calls = ends.last().copied().unwrap_or(0);
    eprintln!(
        "reference: {calls} DynamoDB calls over {} steps",
        STEPS.len()
    );
    // Each counted call's first attempt fails; its retries go through.
    for (kind, calls_picked, when, name) in [
        (
            Kind::Throttle,
            Calls::All,
            When::EveryFirstAttempt,
            "throttle",
        ),
        (
            Kind::ServerError,
            Calls::All,
            When::EveryFirstAttempt,
            "error500",
        ),
        (
            Kind::LostAnswer,
            Calls::Writes,
            When::EveryFirstAttempt,
            "lost",
        ),
        // Each costs the attempt timeout: a sample of calls.
        (
            Kind::Timeout,
            Calls::All,
            When::EveryNth(calls / 6 + 1),
            "timeout",
        ),
    ] {
        let (got, plan, failed) = run_with(&m, &x, Plan::new(kind, calls_picked, when), name);
        eprintln!(
            "{name}: {} faults injected over {} counted attempts, {failed} steps failed",
            plan.fired, plan.counted
        );
        assert!(plan.fired >= 5, "{name}: only {} faults fired", plan.fired);
        assert_eq!(
            failed, 0,
            "{name}: the SDK's retries absorb one failed attempt"
        );
        same(&got, &want, name);
    }
}

#[test]
fn partial_batches_are_finished_by_the_store() {
    let Some(m) = moto() else { return };
    let x = Lifecycle::new("dynamo-faults", 30);
    let (want, _) = reference(&m, &x);
    // Every batch call, every attempt, processes half of what it is sent.
    let (got, plan, failed) = run_with(
        &m,
        &x,
        Plan::new(Kind::Partial, Calls::Batches, When::EveryNth(1)),
        "partial",
    );
    eprintln!(
        "partial: {} batch calls answered with half their requests unprocessed",
        plan.fired
    );
    assert!(plan.fired >= 20, "only {} partial batches", plan.fired);
    assert_eq!(failed, 0, "a partial batch is the store's to finish");
    same(&got, &want, "partial batches");
}

#[test]
fn a_call_that_fails_past_its_retries_fails_the_step_and_a_retry_converges() {
    let Some(m) = moto() else { return };
    let x = Lifecycle::new("dynamo-faults", 30);
    let (want, ends) = reference(&m, &x);
    let calls = ends.last().copied().unwrap_or(0);
    let full = std::env::var("AGENCYLINK_FAULT_SWEEP").as_deref() == Ok("full");
    // Bursts as long as the SDK's attempts: in the middle of each step's
    // calls, where its writes are under way (at every call with
    // AGENCYLINK_FAULT_SWEEP=full).
    let points: Vec<u64> = if full {
        (1..=calls).collect()
    } else {
        let mut start = 1;
        ends.iter()
            .map(|&end| {
                let at = start + (end + 1 - start) / 2;
                start = end + 1;
                at
            })
            .collect()
    };
    let mut failures = 0;
    let mut n = 0u64;
    for at in points {
        let len = u64::from(MAX_ATTEMPTS);
        let kind = [Kind::Throttle, Kind::ServerError, Kind::LostAnswer][(n % 3) as usize];
        let name = format!("burst-{at}");
        let (got, plan, failed) = run_with(
            &m,
            &x,
            Plan::new(kind, Calls::All, When::Burst { at, len }),
            &name,
        );
        assert!(plan.fired > 0, "{name}: no fault fired");
        failures += failed;
        same(&got, &want, &format!("{name} ({kind:?})"));
        n += 1;
    }
    eprintln!("{n} bursts, {failures} failed steps retried to the reference state");
    assert!(
        failures as u64 >= n / 2,
        "only {failures} of {n} bursts failed a step"
    );
}
