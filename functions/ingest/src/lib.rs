//! The ingest Lambda: S3 `ObjectCreated` events for the landing bucket,
//! delivered directly or wrapped in SQS messages; the daily scheduled
//! retention run (`{"agencylink_task": "retention"}`); and the hourly key
//! rotation task (`{"agencylink_task": "key_rotation"}`).
//!
//! Each object is checked against the agency policy (an agency outside the
//! configured list, or a dataset it may not upload, is rejected into lineage
//! and deleted, never processed) and then ingested by the shared pipeline.
//! Errors are classified: **retryable** ones (throttling, timeouts, a lost
//! race) fail the invocation (direct events: Lambda retries it) or the one
//! SQS message (reported in `batchItemFailures`, so the rest of the batch is
//! not redone); **non-retryable** ones are recorded in lineage as a
//! `failure` event and acknowledged, since retrying cannot help.
//!
//! Delivery is at least once; processing the same event again changes
//! nothing (the landing object is gone and lineage names it, or lineage
//! knows the file). An object gone with no event naming it (expired by the
//! lifecycle backstop, or deleted) is recorded as a `landing_object_missing`
//! failure, so no upload disappears without a trace.
//!
//! An upload too big for one invocation stops merging before the time
//! limit (the core's merge marks say how far it got) and sends its SQS
//! message again as a continuation; the next invocation resumes after the
//! batches already merged. A continuation is a new message, so a long
//! upload does not use up the queue's receive count, which stays for real
//! failures; each must have merged something, and there is a cap.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agencylink_aws::pipeline::{self, PipelineError};
use agencylink_aws::{AwsBackend, valid_agency};
use agencylink_core::events::{FailureEvent, LineageEvent};
use agencylink_core::ingest::{IngestError, IngestMode, IngestSummary, Steps};
use agencylink_core::ports::{ChainLog, KeyProvider, KeySourceError, ObjectStore, StoreError};
use agencylink_core::pseudo::Pseudonymiser;
use agencylink_core::schema::Catalog;
use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::tracing::{error, info, warn};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;

/// What the handler needs, built once per cold start.
#[derive(Debug)]
pub struct Ingestor {
    backend: Arc<AwsBackend>,
    catalog: Arc<Catalog>,
    tmp: PathBuf,
    max_bytes: u64,
    resume: Option<Resume>,
    merge_batch: usize,
    margin: Duration,
}

/// Where a paused upload's continuation goes: the queue it came from.
#[derive(Debug, Clone)]
struct Resume {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

/// The message attribute counting an upload's continuations.
pub const CONTINUATION: &str = "agencylink-continuation";
/// At most this many continuations of one upload (with the default 120 s
/// margin, about 25 hours of merging): past it the message is failed and
/// the queue's redrive policy takes over.
pub const MAX_CONTINUATIONS: u32 = 100;
/// How long before the invocation's deadline a merge stops by default: a
/// batch of 2,000 records takes seconds on DynamoDB, so this leaves room
/// for the slowest batch and the continuation.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(120);

/// The largest landing object ingested by default, the API's upload limit
/// too (`UploadMaxBytes`). Larger objects (an upload that went around the
/// API) are refused into lineage as `upload_too_large`.
pub const DEFAULT_MAX_BYTES: u64 = agencylink_aws::DEFAULT_UPLOAD_MAX_BYTES;

impl Ingestor {
    /// Wire the backend and catalog; temporary copies go under the system
    /// temporary directory (`/tmp` on Lambda).
    pub fn new(backend: AwsBackend, catalog: Catalog) -> Self {
        Ingestor {
            backend: Arc::new(backend),
            catalog: Arc::new(catalog),
            tmp: std::env::temp_dir(),
            max_bytes: DEFAULT_MAX_BYTES,
            resume: None,
            merge_batch: agencylink_core::ingest::BATCH,
            margin: DEFAULT_MARGIN,
        }
    }

    /// Let an upload that would outrun the invocation pause and resume in
    /// a continuation message sent to `queue_url` (the ingest queue).
    /// Without it, a paused upload's message is failed, and resumes when
    /// SQS delivers it again after its visibility timeout.
    pub fn with_resume(mut self, sqs: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        self.resume = Some(Resume {
            sqs,
            queue_url: queue_url.into(),
        });
        self
    }

    /// Merge in batches of `records` (each a resume point); tests use few.
    pub fn with_merge_batch(mut self, records: usize) -> Self {
        self.merge_batch = records.max(1);
        self
    }

    /// Stop merging `margin` before the invocation's deadline.
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Refuse landing objects larger than `max_bytes`.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The backend (tests inspect the stores through it).
    pub fn backend(&self) -> &AwsBackend {
        &self.backend
    }
}

/// A failure of one object, classified.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying: throttling, timeouts, a lost race, a full disk.
    #[error("retryable: {0}")]
    Retryable(String),
    /// Retrying cannot help: configuration, permissions, a malformed event.
    #[error("non-retryable: {0}")]
    NonRetryable(String),
}

impl HandlerError {
    /// Whether this error is worth a retry.
    pub fn is_retryable(&self) -> bool {
        matches!(self, HandlerError::Retryable(_))
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Diagnostic {
        Diagnostic {
            error_type: if e.is_retryable() {
                "agencylink.Retryable".into()
            } else {
                "agencylink.NonRetryable".into()
            },
            error_message: e.to_string(),
        }
    }
}

impl From<PipelineError> for HandlerError {
    fn from(e: PipelineError) -> Self {
        if e.is_retryable() {
            HandlerError::Retryable(e.to_string())
        } else {
            HandlerError::NonRetryable(e.to_string())
        }
    }
}

impl From<StoreError> for HandlerError {
    fn from(e: StoreError) -> Self {
        PipelineError::Store(e).into()
    }
}

impl From<KeySourceError> for HandlerError {
    fn from(e: KeySourceError) -> Self {
        match e {
            KeySourceError::Unavailable(_) => HandlerError::Retryable(e.to_string()),
            _ => HandlerError::NonRetryable(e.to_string()),
        }
    }
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Ingested (or recognised as already ingested: `summary.duplicate`).
    Ingested {
        /// The object key.
        key: String,
        /// The core's summary (boxed: it is much larger than the other
        /// variants).
        summary: Box<IngestSummary>,
    },
    /// Refused by the agency policy or the key layout; recorded in lineage.
    Rejected {
        /// The object key.
        key: String,
        /// Why.
        code: String,
    },
    /// The object is gone: an earlier delivery of this event handled it.
    AlreadyHandled {
        /// The object key.
        key: String,
    },
    /// The object was gone before anything handled it (expired or deleted):
    /// recorded in lineage as a `landing_object_missing` failure.
    Missing {
        /// The object key.
        key: String,
    },
    /// Not an object this function handles (another bucket, another prefix).
    Ignored {
        /// The object key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The merge stopped before the invocation's time limit; the landing
    /// object stays and a continuation resumes after the batches done.
    Paused {
        /// The object key.
        key: String,
        /// Merge batches done so far.
        batches_done: u64,
    },
    /// A non-retryable failure, recorded in lineage and acknowledged.
    Failed {
        /// The object key.
        key: String,
        /// What went wrong.
        error: String,
    },
}

impl Outcome {
    /// Whether the upload paused before the time limit.
    pub fn is_paused(&self) -> bool {
        matches!(self, Outcome::Paused { .. })
    }
}

/// The handler: a direct S3 event or an SQS batch of S3 events.
pub async fn handle(
    ingestor: Arc<Ingestor>,
    event: LambdaEvent<Value>,
) -> Result<Value, HandlerError> {
    let (payload, ctx) = event.into_parts();
    // Lambda's deadline, epoch milliseconds (0 when unknown: no limit).
    let deadline =
        (ctx.deadline > 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_millis(ctx.deadline));
    // The schedule's fixed input (infra/template.yaml), not an S3 event.
    if let Some(task) = payload.get(TASK).and_then(Value::as_str) {
        return match task {
            RETENTION => {
                let ing = ingestor.clone();
                tokio::task::spawn_blocking(move || apply_retention(&ing))
                    .await
                    .map_err(|e| {
                        HandlerError::Retryable(format!("the retention task failed: {e}"))
                    })?
            }
            KEY_ROTATION => {
                let ing = ingestor.clone();
                tokio::task::spawn_blocking(move || {
                    let done = agencylink_aws::key_rotation::run(
                        &ing.backend,
                        &agencylink_aws::now_rfc3339(),
                    )
                    .map_err(|e| HandlerError::Retryable(format!("key rotation: {e}")))?;
                    info!(step = %done["step"], "key rotation task");
                    Ok(done)
                })
                .await
                .map_err(|e| {
                    HandlerError::Retryable(format!("the key rotation task failed: {e}"))
                })?
            }
            other => Err(HandlerError::NonRetryable(format!(
                "unknown task `{other}`"
            ))),
        };
    }
    let source = payload
        .get("Records")
        .and_then(|r| r.get(0))
        .and_then(|r| r.get("eventSource"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match source.as_str() {
        "aws:sqs" => {
            let sqs: SqsEvent = serde_json::from_value(payload)
                .map_err(|e| HandlerError::NonRetryable(format!("not an SQS event: {e}")))?;
            let response = handle_sqs(&ingestor, sqs, deadline).await;
            serde_json::to_value(response)
                .map_err(|e| HandlerError::NonRetryable(format!("encoding the response: {e}")))
        }
        "aws:s3" | "" => {
            let s3: S3Event = serde_json::from_value(payload)
                .map_err(|e| HandlerError::NonRetryable(format!("not an S3 event: {e}")))?;
            let outcomes = handle_s3(&ingestor, s3, deadline).await?;
            if outcomes.iter().any(Outcome::is_paused) {
                // Lambda retries a failed asynchronous invocation, which
                // resumes; the queue path sends a continuation instead.
                return Err(HandlerError::Retryable(
                    "the upload paused before the time limit; a retry resumes it".into(),
                ));
            }
            Ok(serde_json::json!({ "results": outcomes }))
        }
        other => Err(HandlerError::NonRetryable(format!(
            "unsupported event source `{other}`"
        ))),
    }
}

/// The payload field that names a scheduled task.
pub const TASK: &str = "agencylink_task";
/// The daily retention run's task name.
pub const RETENTION: &str = "retention";
/// The hourly key-rotation task's name (`agencylink_aws::key_rotation`).
pub const KEY_ROTATION: &str = "key_rotation";

/// The scheduled retention run: every dataset's retention period
/// (`x-retention-days`) applied as of today, as `agencylink retention
/// apply` does on the embedded store, each `expired` event also in the WORM
/// archive. A failure fails the invocation, which EventBridge retries; a
/// run that removed part of a dataset is finished by the next (each run
/// removes what is past the cutoff, whatever an earlier run did).
fn apply_retention(ingestor: &Ingestor) -> Result<Value, HandlerError> {
    let backend = &ingestor.backend;
    let now = agencylink_aws::now_rfc3339();
    let today = &now[..10];
    let datasets: Vec<&agencylink_core::schema::Dataset> =
        ingestor.catalog.latest().map(AsRef::as_ref).collect();
    let runs = agencylink_core::retention::apply(
        &backend.records,
        &backend.lineage,
        &datasets,
        today,
        &now,
    )
    .map_err(|e| HandlerError::Retryable(format!("retention: {e}")))?;
    let mut removed = 0;
    for run in &runs {
        if let (Some(entry), Some(archive)) = (&run.entry, &backend.archive) {
            archive.archive("lineage", entry)?;
        }
        removed += run.event.as_ref().map_or(0, |e| e.records_removed);
    }
    info!(records_removed = removed, "retention applied");
    Ok(serde_json::json!({
        "task": RETENTION,
        "today": today,
        "records_removed": removed,
        "datasets": runs.iter().map(|r| serde_json::json!({
            "dataset": r.dataset,
            "retention_days": r.retention_days,
            "cutoff": r.cutoff,
            "records_removed": r.event.as_ref().map_or(0, |e| e.records_removed),
        })).collect::<Vec<_>>(),
    }))
}

/// Every record of a direct S3 event; the first retryable failure fails the
/// invocation (the records done before it are idempotent on the retry).
/// `deadline` is the invocation's: an upload that would outrun it pauses
/// ([`Outcome::Paused`]).
pub async fn handle_s3(
    ingestor: &Arc<Ingestor>,
    event: S3Event,
    deadline: Option<SystemTime>,
) -> Result<Vec<Outcome>, HandlerError> {
    let mut outcomes = Vec::new();
    for record in event.records {
        let paused = outcomes.iter().any(Outcome::is_paused);
        if paused {
            // The rest waits for the continuation (idempotent if done).
            break;
        }
        outcomes.push(handle_record(ingestor, record, deadline).await?);
    }
    Ok(outcomes)
}

/// Send `message` to the ingest queue again: as its upload's next
/// continuation (`bump`; which one it is), or as it was, for a message this
/// invocation had no time left to start.
async fn continue_later(
    ingestor: &Ingestor,
    message: &SqsMessage,
    bump: bool,
) -> Result<u32, String> {
    let resume = ingestor
        .resume
        .as_ref()
        .ok_or("no ingest queue is configured for continuations (AGENCYLINK_INGEST_QUEUE_URL)")?;
    let done = message
        .message_attributes
        .get(CONTINUATION)
        .and_then(|a| a.string_value.as_deref())
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    if bump && done >= MAX_CONTINUATIONS {
        return Err(format!(
            "the upload has had {done} continuations, the most allowed"
        ));
    }
    let next = done + u32::from(bump);
    let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
        .data_type("Number")
        .string_value(next.to_string())
        .build()
        .map_err(|e| e.to_string())?;
    resume
        .sqs
        .send_message()
        .queue_url(&resume.queue_url)
        .message_body(message.body.clone().unwrap_or_default())
        .message_attributes(CONTINUATION, attribute)
        .send()
        .await
        .map_err(|e| {
            // The code only: the message is an S3 event whose object key
            // is a file name, which may name a child.
            use aws_sdk_sqs::error::ProvideErrorMetadata;
            match e.code() {
                Some(code) => format!("sqs:SendMessage failed: {code}"),
                None => {
                    "sqs:SendMessage failed: SQS was not reached (timeout or connection)".into()
                }
            }
        })?;
    Ok(next)
}

/// An SQS batch: each message holds an S3 event; a message whose object
/// failed with a retryable error is reported back for redelivery. A
/// message whose upload paused is sent again as a continuation (or, when
/// that fails, reported back), and so are the batch's messages after it,
/// unchanged: the invocation has no time left for them.
pub async fn handle_sqs(
    ingestor: &Arc<Ingestor>,
    event: SqsEvent,
    deadline: Option<SystemTime>,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let mut out_of_time = false;
    for message in event.records {
        let id = message.message_id.clone().unwrap_or_default();
        let body = message.body.as_deref().unwrap_or_default();
        let parsed: Result<Value, _> = serde_json::from_str(body);
        let s3 = match parsed {
            Ok(v) if v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") => {
                info!(message_id = %id, "S3 test event; nothing to do");
                continue;
            }
            Ok(v) => serde_json::from_value::<S3Event>(v),
            Err(e) => Err(e),
        };
        let s3 = match s3 {
            Ok(s3) => s3,
            Err(e) => {
                // A malformed message will not parse next time either: the
                // queue's redrive policy moves it to the dead-letter queue.
                error!(message_id = %id, error = %e, "the message is not an S3 event");
                response.add_failure(id);
                continue;
            }
        };
        if out_of_time {
            // Sent back now rather than failed: a failed message waits out
            // the queue's visibility timeout (90 minutes) and uses a receive.
            if let Err(e) = continue_later(ingestor, &message, false).await {
                warn!(message_id = %id, error = %e, "no time to start the message and it could not be sent back; SQS will redeliver it");
                response.add_failure(id);
            }
            continue;
        }
        match handle_s3(ingestor, s3, deadline).await {
            Ok(outcomes) if outcomes.iter().any(Outcome::is_paused) => {
                out_of_time = true;
                match continue_later(ingestor, &message, true).await {
                    Ok(n) => info!(
                        message_id = %id,
                        continuation = n,
                        "the upload paused before the time limit; a continuation resumes it"
                    ),
                    Err(e) => {
                        warn!(message_id = %id, error = %e, "paused, and no continuation was sent; SQS will redeliver the message");
                        response.add_failure(id);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                warn!(message_id = %id, error = %e, "message failed; SQS will redeliver it");
                response.add_failure(id);
            }
        }
    }
    response
}

async fn handle_record(
    ingestor: &Arc<Ingestor>,
    record: S3EventRecord,
    deadline: Option<SystemTime>,
) -> Result<Outcome, HandlerError> {
    let bucket = record.s3.bucket.name.clone().unwrap_or_default();
    let raw_key = record.s3.object.key.clone().unwrap_or_default();
    let time = record.event_time.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let ing = ingestor.clone();
    let task = tokio::task::spawn_blocking(move || {
        let margin = ing.margin;
        let stop = move || deadline.is_some_and(|d| SystemTime::now() + margin >= d);
        process_object_until(&ing, &bucket, &raw_key, &time, &stop)
    });
    task.await
        .map_err(|e| HandlerError::Retryable(format!("the ingest task failed: {e}")))?
}

/// One object, synchronously (run it off the runtime's worker threads),
/// then its upload ticket settled when the API signed it (see
/// [`settle_ticket`]).
pub fn process_object(
    ingestor: &Ingestor,
    bucket: &str,
    raw_key: &str,
    time: &str,
) -> Result<Outcome, HandlerError> {
    process_object_until(ingestor, bucket, raw_key, time, &|| false)
}

/// [`process_object`], its merge asking `stop` after each batch whether to
/// pause there ([`Outcome::Paused`]; the ticket stays waiting).
pub fn process_object_until(
    ingestor: &Ingestor,
    bucket: &str,
    raw_key: &str,
    time: &str,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Outcome, HandlerError> {
    let outcome = process_landing(ingestor, bucket, raw_key, time, stop)?;
    settle_ticket(&ingestor.backend, &outcome, time)?;
    Ok(outcome)
}

/// The counts an agency sees of an ingested upload (the summary's, or the
/// ingest lineage event's: the same names).
const TICKET_COUNTS: &[&str] = &[
    "rows_in",
    "rows_accepted",
    "rows_rejected",
    "records_inserted",
    "records_replaced",
    "records_unchanged",
    "people_linked",
    "duplicate",
    "file_errors",
];

/// Record what became of an upload the API signed on its ticket
/// (`landing/<agency>/<dataset>/<upload id>.<ext>`), so `GET /uploads/{id}`
/// can answer; any other landing object has no ticket and nothing is
/// written. A failed write is retryable: the redelivery finds the object
/// gone, and [`Outcome::AlreadyHandled`] settles the ticket from lineage.
/// The agency sees counts and codes only, and for an internal failure not
/// its text (which is for the operators' logs).
pub fn settle_ticket(
    backend: &AwsBackend,
    outcome: &Outcome,
    time: &str,
) -> Result<(), HandlerError> {
    let key = match outcome {
        Outcome::Ingested { key, .. }
        | Outcome::Rejected { key, .. }
        | Outcome::AlreadyHandled { key }
        | Outcome::Missing { key }
        | Outcome::Failed { key, .. } => key,
        Outcome::Ignored { .. } | Outcome::Paused { .. } => return Ok(()),
    };
    let (Some(id), Some(parts)) = (
        agencylink_aws::uploads::ticket_id_of(key),
        pipeline::parse_landing_key(key),
    ) else {
        return Ok(());
    };
    let tickets = backend.uploads();
    let Some(mut ticket) = tickets.get(parts.agency, id)? else {
        return Ok(());
    };
    if ticket.key != *key {
        // The id under another dataset's prefix: not the object signed.
        return Ok(());
    }
    let (status, upload_id, result) = match outcome {
        Outcome::Ingested { summary, .. } => {
            let full = serde_json::to_value(summary.as_ref()).unwrap_or_default();
            (
                "ingested",
                Some(summary.upload_id.clone()),
                counts_of(&full),
            )
        }
        Outcome::Rejected { code, .. } => (
            "rejected",
            None,
            serde_json::json!({ "code": code, "reason": refusal_text(code) }),
        ),
        Outcome::Missing { .. } => (
            "failed",
            None,
            serde_json::json!({ "code": "landing_object_missing",
                "reason": "the file was gone before it was ingested: upload it again" }),
        ),
        Outcome::Failed { .. } => (
            "failed",
            None,
            serde_json::json!({ "code": "processing_error",
                "reason": "the upload could not be processed; the operators are alerted: do not send it again until they say" }),
        ),
        Outcome::AlreadyHandled { .. } => {
            if !ticket.is_waiting() {
                return Ok(());
            }
            let Some(found) = ingest_event_for(backend, key)? else {
                return Ok(());
            };
            found
        }
        Outcome::Ignored { .. } | Outcome::Paused { .. } => return Ok(()),
    };
    ticket.status = status.to_owned();
    ticket.upload_id = upload_id;
    ticket.result = Some(result);
    ticket.settled = Some(time.to_owned());
    tickets.settle(&ticket)?;
    Ok(())
}

fn counts_of(v: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in TICKET_COUNTS {
        if let Some(x) = v.get(*k) {
            out.insert((*k).to_owned(), x.clone());
        }
    }
    Value::Object(out)
}

/// What an agency is told about a refusal (the lineage reason may name
/// the policy's internals; this is the action to take).
fn refusal_text(code: &str) -> &'static str {
    match code {
        "dataset_not_allowed" => {
            "your agency may not upload this dataset: ask the partnership to add it"
        }
        "unknown_agency" => "your agency is not in the deployment's list: ask the partnership",
        "unknown_dataset" => "the deployment has no schema for this dataset",
        _ => "the upload was refused before any row was read",
    }
}

/// A ticket's status, lineage upload id and result.
type Settled = (&'static str, Option<String>, Value);

/// The outcome lineage recorded for landing object `key` (a redelivery
/// after the object was handled): an ingest event's counts, or a failure's
/// code.
fn ingest_event_for(backend: &AwsBackend, key: &str) -> Result<Option<Settled>, HandlerError> {
    let Some(keys) = backend.keys.as_ref() else {
        return Ok(None);
    };
    let pseudo = Pseudonymiser::new(keys.key()?);
    let label = pseudo.label("landing", key.as_bytes());
    for e in backend.lineage.entries()?.iter().rev() {
        let named = e
            .get("source")
            .and_then(Value::as_str)
            .and_then(|s| s.rsplit('/').next())
            .is_some_and(|last| last.split('.').next() == Some(label.as_str()));
        if !named {
            continue;
        }
        let upload = e
            .get("upload_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        return Ok(Some(
            match (upload, e.get("code").and_then(Value::as_str)) {
                (Some(u), _) => ("ingested", Some(u), counts_of(e)),
                (
                    None,
                    Some(
                        code @ ("dataset_not_allowed"
                        | "unknown_agency"
                        | "unknown_dataset"
                        | "bad_key"),
                    ),
                ) => (
                    "rejected",
                    None,
                    serde_json::json!({ "code": code, "reason": refusal_text(code) }),
                ),
                (None, Some(_)) => (
                    "failed",
                    None,
                    serde_json::json!({ "code": "processing_error",
                    "reason": "the upload could not be processed; the operators are alerted: do not send it again until they say" }),
                ),
                (None, None) => continue,
            },
        ));
    }
    Ok(None)
}

fn process_landing(
    ingestor: &Ingestor,
    bucket: &str,
    raw_key: &str,
    time: &str,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Outcome, HandlerError> {
    let backend = &ingestor.backend;
    let key = match pipeline::decode_event_key(raw_key) {
        Ok(k) => k,
        Err(why) => {
            return Ok(Outcome::Ignored {
                key: raw_key.to_owned(),
                reason: why,
            });
        }
    };
    if bucket != backend.settings.landing_bucket {
        warn!(%bucket, "event for a bucket that is not the landing bucket; ignored");
        return Ok(Outcome::Ignored {
            key,
            reason: format!("bucket {bucket} is not the landing bucket"),
        });
    }
    if !key.starts_with("landing/") {
        return Ok(Outcome::Ignored {
            key,
            reason: "not under landing/".into(),
        });
    }
    // Logs and lineage name the object by a keyed label: its key holds
    // the file name, which often names a child.
    let pseudo = backend
        .keys
        .as_ref()
        .and_then(|k| k.key().ok())
        .map(Pseudonymiser::new);
    let source = pipeline::key_label(pseudo.as_ref(), &key);
    let size = match backend.objects.head(&key) {
        Ok(meta) => meta.size,
        Err(StoreError::NotFound(_)) => {
            // Gone: handled by an earlier delivery, or expired or deleted
            // before anyone handled it. Only lineage can tell; without the
            // key it cannot be asked, so retry (the DLQ alarm is the trace).
            let Some(pseudo) = pseudo.as_ref() else {
                let keys = backend.keys.as_ref().ok_or_else(|| {
                    HandlerError::NonRetryable("AGENCYLINK_KEY_SECRET_ID is not set".into())
                })?;
                keys.key()?;
                return Err(HandlerError::Retryable(
                    "the key could not be read to look the missing landing object up in lineage"
                        .into(),
                ));
            };
            if pipeline::lineage_knows_landing(&backend.lineage.entries()?, pseudo, &key) {
                info!(%source, "landing object already handled");
                return Ok(Outcome::AlreadyHandled { key });
            }
            warn!(%source, "landing object gone before it was ingested; recorded in lineage");
            pipeline::record_missing_landing(backend, &source, &key, time)?;
            return Ok(Outcome::Missing { key });
        }
        Err(e) => return Err(e.into()),
    };
    let refusal = match pipeline::parse_landing_key(&key) {
        // Refused before a byte is read: an object this large would not
        // fit the function's time or disk (the API never signs one).
        _ if size > ingestor.max_bytes => Some((
            "upload_too_large",
            format!(
                "the upload is {size} bytes; this deployment ingests at most {} bytes (UploadMaxBytes): split the extract, for example by period, and send the parts",
                ingestor.max_bytes
            ),
        )),
        None => Some((
            "bad_key",
            "the key is not landing/<agency>/<dataset>/<file>".to_owned(),
        )),
        Some(p) if !valid_agency(p.agency) => Some((
            "unknown_agency",
            "the agency id is not 1 to 64 characters of a-z, 0-9 and -".to_owned(),
        )),
        Some(p) => match backend.settings.agencies.check(p.agency, p.dataset) {
            Err(refusal) => Some((
                match refusal {
                    agencylink_aws::PolicyRefusal::UnknownAgency(_) => "unknown_agency",
                    _ => "dataset_not_allowed",
                },
                refusal.to_string(),
            )),
            Ok(()) if ingestor.catalog.get(p.dataset).is_none() => Some((
                "unknown_dataset",
                format!("no schema for dataset `{}`", p.dataset),
            )),
            Ok(()) => None,
        },
    };
    if let Some((code, reason)) = refusal {
        warn!(%source, code, "upload rejected by policy");
        pipeline::reject_landing(backend, &source, &key, code, &reason, time)?;
        return Ok(Outcome::Rejected {
            key,
            code: code.to_owned(),
        });
    }
    let Some(parts) = pipeline::parse_landing_key(&key) else {
        return Err(HandlerError::NonRetryable(
            "unreachable: key checked".into(),
        ));
    };
    let Some(dataset) = ingestor.catalog.get(parts.dataset) else {
        return Err(HandlerError::NonRetryable(
            "unreachable: dataset checked".into(),
        ));
    };
    // Outside: the key could not be had; inside: what the pipeline did.
    let result = (|| -> Result<Result<IngestSummary, PipelineError>, HandlerError> {
        // The key read for the label above serves the ingest; only when it
        // could not be had is it asked for again, for the error.
        let fetched;
        let pseudo = match pseudo.as_ref() {
            Some(p) => p,
            None => {
                let keys = backend.keys.as_ref().ok_or_else(|| {
                    HandlerError::NonRetryable("AGENCYLINK_KEY_SECRET_ID is not set".into())
                })?;
                fetched = Pseudonymiser::new(keys.key()?);
                &fetched
            }
        };
        let out = pipeline::ingest_landing_as(
            backend,
            pseudo,
            dataset,
            parts.agency,
            &key,
            time,
            &ingestor.tmp,
            IngestMode::Incremental,
            &Steps {
                stop,
                batch: ingestor.merge_batch,
                ..Steps::default()
            },
        );
        // A key migration moved the secret's current version since this
        // instance cached its key: read it again on the retry.
        if matches!(
            &out,
            Err(PipelineError::Ingest(
                agencylink_core::ingest::IngestError::KeyMismatch(_)
            ))
        ) && let Some(keys) = &backend.keys
        {
            keys.forget();
        }
        Ok(out)
    })();
    let result = match result {
        Ok(Err(PipelineError::Ingest(IngestError::Paused {
            batches_done,
            batches_resumed,
            rows_read,
        }))) => {
            info!(%source, batches_done, batches_resumed, rows_read, "paused before the time limit");
            return Ok(Outcome::Paused { key, batches_done });
        }
        Ok(out) => out.map_err(HandlerError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(summary) => {
            info!(
                %source,
                upload_id = %summary.upload_id,
                rows_in = summary.rows_in,
                rows_accepted = summary.rows_accepted,
                rows_rejected = summary.rows_rejected,
                duplicate = summary.duplicate,
                "ingested"
            );
            Ok(Outcome::Ingested {
                key,
                summary: Box::new(summary),
            })
        }
        Err(e) if e.is_retryable() => Err(e),
        Err(e) => {
            error!(%source, error = %e, "non-retryable failure; recorded in lineage");
            // Keep the landing object for an operator to re-drive after the
            // fix; the bucket's lifecycle rule is the backstop.
            let event = LineageEvent::Failure(FailureEvent {
                code: "processing_error".to_owned(),
                reason: e.to_string(),
                agency: Some(parts.agency.to_owned()),
                dataset: Some(parts.dataset.to_owned()),
                source: source.clone(),
                time: time.to_owned(),
            });
            let stored = agencylink_core::lineage::append_event(&backend.lineage, &event)?;
            if let Some(archive) = &backend.archive {
                archive.archive("lineage", &stored)?;
            }
            Ok(Outcome::Failed {
                key,
                error: e.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_retryable_or_not() {
        let unavailable = StoreError::Unavailable {
            message: "throttled".into(),
            source: None,
        };
        assert!(HandlerError::from(unavailable).is_retryable());
        assert!(HandlerError::from(StoreError::Precondition("raced".into())).is_retryable());
        let denied = StoreError::Backend {
            message: "AccessDenied".into(),
            source: None,
        };
        assert!(!HandlerError::from(denied).is_retryable());
        assert!(HandlerError::from(KeySourceError::Unavailable("down".into())).is_retryable());
        assert!(!HandlerError::from(KeySourceError::Invalid("bad".into())).is_retryable());
        assert!(!HandlerError::from(KeySourceError::Missing("none".into())).is_retryable());
        let io = PipelineError::Io(std::io::Error::other("disk full"));
        assert!(HandlerError::from(io).is_retryable());
        let d: Diagnostic = HandlerError::NonRetryable("x".into()).into();
        assert_eq!(d.error_type, "agencylink.NonRetryable");
    }
}
