//! The profile Lambda: builds the CSE problem profile, both editions from
//! one read of the store, into the data bucket (`agencylink_http::profiles`
//! has the layout). Two kinds of event:
//!
//! - the schedule's fixed input, `{"agencylink_task": "profile"}` (monthly
//!   by default, `infra/template.yaml`), optionally with `"from"` and
//!   `"to"`: by default the twelve complete months before this one;
//! - an S3 `Object Created` event delivered by EventBridge for an
//!   analyst's request under `profile-requests/` (written by `POST
//!   /profiles`): the request's period, by default the year to the latest
//!   event. The request object is deleted once built, so a second
//!   delivery of the same event finds it gone and does nothing;
//! - the same for an analyst's large flat export under `export-requests/`
//!   (written by `POST /exports`; `agencylink_http::exports`): the export
//!   and its manifest go under `exports/jobs/`.
//!
//! The function runs one at a time (reserved concurrency 1), so two builds
//! never write the same prefix at once. Retryable failures (throttling,
//! timeouts) fail the invocation, which Lambda's asynchronous retries or
//! the schedule's retry policy run again: a build is redone whole, and its
//! lineage events are appended only once its files are stored. A request
//! that can never be built (a bad date) is logged, deleted and
//! acknowledged.

use std::sync::Arc;

use agencylink_aws::AwsBackend;
use agencylink_core::ports::ObjectStore;
use agencylink_core::profile::{Edition, Settings};
use agencylink_core::query::QueryError;
use agencylink_core::schema::Catalog;
use agencylink_http::exports;
use agencylink_http::profiles::{self, ProfileTaskError, Request};
use lambda_runtime::tracing::{error, info, warn};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};

/// What the handler needs, built once per cold start.
#[derive(Debug)]
pub struct Profiler {
    backend: Arc<AwsBackend>,
    catalog: Arc<Catalog>,
}

impl Profiler {
    /// Wire the backend and catalog.
    pub fn new(backend: AwsBackend, catalog: Catalog) -> Self {
        Profiler {
            backend: Arc::new(backend),
            catalog: Arc::new(catalog),
        }
    }

    /// The backend (tests inspect the stores through it).
    pub fn backend(&self) -> &AwsBackend {
        &self.backend
    }
}

/// A failed invocation, classified as the ingest function's are.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying: throttling, timeouts.
    #[error("retryable: {0}")]
    Retryable(String),
    /// Retrying cannot help: a malformed event, configuration.
    #[error("non-retryable: {0}")]
    NonRetryable(String),
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Diagnostic {
        Diagnostic {
            error_type: match e {
                HandlerError::Retryable(_) => "agencylink.Retryable".into(),
                HandlerError::NonRetryable(_) => "agencylink.NonRetryable".into(),
            },
            error_message: e.to_string(),
        }
    }
}

impl From<ProfileTaskError> for HandlerError {
    fn from(e: ProfileTaskError) -> Self {
        if e.is_retryable() {
            HandlerError::Retryable(e.to_string())
        } else {
            HandlerError::NonRetryable(e.to_string())
        }
    }
}

/// The payload field that names a scheduled task, and this function's task.
pub const TASK: &str = "agencylink_task";
/// The profile task's name.
pub const PROFILE: &str = "profile";

/// Both editions, analyst first.
const EDITIONS: [Edition; 2] = [Edition::Analyst, Edition::Partner];

/// The handler (the build runs on a blocking thread).
pub async fn handle(
    profiler: Arc<Profiler>,
    event: LambdaEvent<Value>,
) -> Result<Value, HandlerError> {
    let (payload, _ctx) = event.into_parts();
    tokio::task::spawn_blocking(move || dispatch(&profiler, &payload))
        .await
        .map_err(|e| HandlerError::Retryable(format!("the profile task failed: {e}")))?
}

fn dispatch(profiler: &Profiler, payload: &Value) -> Result<Value, HandlerError> {
    if let Some(task) = payload.get(TASK).and_then(Value::as_str) {
        if task != PROFILE {
            return Err(HandlerError::NonRetryable(format!("unknown task `{task}`")));
        }
        return scheduled(profiler, payload);
    }
    let is_s3 = payload.get("source").and_then(Value::as_str) == Some("aws.s3")
        && payload.get("detail-type").and_then(Value::as_str) == Some("Object Created");
    if !is_s3 {
        return Err(HandlerError::NonRetryable(
            "not a profile task nor an S3 Object Created event".into(),
        ));
    }
    let detail = &payload["detail"];
    let (Some(bucket), Some(key)) = (
        detail["bucket"]["name"].as_str(),
        detail["object"]["key"].as_str(),
    ) else {
        return Err(HandlerError::NonRetryable(
            "the S3 event names no bucket or key".into(),
        ));
    };
    if bucket == profiler.backend.settings.data_bucket && key.starts_with(exports::REQUESTS) {
        return export(profiler, key);
    }
    if bucket != profiler.backend.settings.data_bucket || !key.starts_with(profiles::REQUESTS) {
        warn!(
            "ignored an object outside profile-requests/ and export-requests/ in the data bucket"
        );
        return Ok(json!({ "outcome": "ignored" }));
    }
    requested(profiler, key)
}

/// An analyst's export job (`POST /exports`): write it, its manifest, and
/// delete the request (`agencylink_http::exports::run`). The analyst's
/// read was logged when they asked, and is logged again with its rows
/// when they fetch the link.
fn export(profiler: &Profiler, key: &str) -> Result<Value, HandlerError> {
    let b = &profiler.backend;
    let now = agencylink_aws::now_rfc3339();
    match exports::run(&b.objects, &b.records, &profiler.catalog, key, &now) {
        Ok(Some(exports::Status::Done(m))) => {
            info!(rows = m.rows, "export job written");
            Ok(json!({ "outcome": "exported", "rows": m.rows }))
        }
        Ok(Some(exports::Status::Failed { reason, .. })) => {
            warn!(%reason, "export job refused");
            Ok(json!({ "outcome": "refused", "error": reason }))
        }
        Ok(_) => Ok(json!({ "outcome": "already_handled" })),
        Err(QueryError::Store(e)) if e.is_retryable() => {
            Err(HandlerError::Retryable(format!("export job: {e}")))
        }
        Err(e) => Err(HandlerError::NonRetryable(format!("export job: {e}"))),
    }
}

/// The schedule's build: the period given, or the last twelve complete
/// months.
fn scheduled(profiler: &Profiler, payload: &Value) -> Result<Value, HandlerError> {
    let now = agencylink_aws::now_rfc3339();
    let text = |k: &str| payload.get(k).and_then(Value::as_str).map(str::to_owned);
    let (from, to) = match (text("from"), text("to")) {
        (None, None) => {
            let (f, t) = profiles::scheduled_period(&now)
                .ok_or_else(|| HandlerError::NonRetryable("the clock is unreadable".into()))?;
            (Some(f), Some(t))
        }
        given => given,
    };
    let req = Request {
        from,
        to,
        requested_at: now.clone(),
        requested_by: None,
    };
    profiles::check_request(&req).map_err(HandlerError::NonRetryable)?;
    let stored = build(profiler, &req, "schedule", &now)?;
    info!(editions = stored.len(), "scheduled profile built");
    Ok(profiles::summary(&stored))
}

/// An analyst's request: build it, then delete the request.
fn requested(profiler: &Profiler, key: &str) -> Result<Value, HandlerError> {
    let objects = &profiler.backend.objects;
    let req = match profiles::read_request(objects, key) {
        Ok(Some(req)) => req,
        Ok(None) => return Ok(json!({ "outcome": "already_handled" })),
        Err(e) if !e.is_retryable() => return Ok(refuse(objects, key, &e)),
        Err(e) => return Err(e.into()),
    };
    let now = agencylink_aws::now_rfc3339();
    let stored = match build(profiler, &req, "request", &now) {
        Ok(stored) => stored,
        Err(HandlerError::NonRetryable(msg)) => {
            return Ok(refuse(objects, key, &ProfileTaskError::BadRequest(msg)));
        }
        Err(e) => return Err(e),
    };
    objects.delete(key).map_err(ProfileTaskError::from)?;
    info!(editions = stored.len(), "requested profile built");
    Ok(profiles::summary(&stored))
}

/// A request that can never be built: log why, drop it, acknowledge.
fn refuse(objects: &dyn ObjectStore, key: &str, e: &ProfileTaskError) -> Value {
    error!(error = %e, "profile request refused");
    if let Err(d) = objects.delete(key) {
        warn!(error = %d, "the refused request could not be deleted");
    }
    json!({ "outcome": "refused", "error": e.to_string() })
}

fn build(
    profiler: &Profiler,
    req: &Request,
    trigger: &str,
    now: &str,
) -> Result<Vec<profiles::Stored>, HandlerError> {
    let settings = Settings {
        from: req.from.clone(),
        to: req.to.clone(),
        generated_at: now.to_owned(),
        ..Settings::default()
    };
    let b = &profiler.backend;
    profiles::build_and_store(
        profiles::Stores {
            objects: &b.objects,
            records: &b.records,
            lineage: &b.lineage,
            archive_lineage: &|e| b.archive_lineage(e),
        },
        &profiler.catalog,
        &settings,
        &EDITIONS,
        trigger,
        req.requested_by.as_deref(),
        now,
    )
    .map_err(HandlerError::from)
}
