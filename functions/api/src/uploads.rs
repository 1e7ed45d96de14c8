//! Agency uploads through the API (agency role only):
//!
//! | route | what |
//! |---|---|
//! | `POST /uploads` `{"dataset"[, "format": "csv"\|"ndjson"]}` | a ticket and a presigned POST form for `landing/<agency>/<dataset>/<id>.<ext>` (size-limited, SSE-KMS with the deployment's key, 15 minutes) |
//! | `GET /uploads[?after=ID&limit=N]` | the caller's agency's uploads, newest first, a page at a time (`next`: the following page's `after`) |
//! | `GET /uploads/{id}` | one of them: status, counts and, once ingested, the rejection report |
//!
//! The agency is always the token's (`agency-<id>` group, see [`crate::auth`]),
//! never anything in the request: the dataset is checked against the
//! deployment's agency policy (`AGENCYLINK_AGENCIES`, the same one the ingest
//! function enforces), the key is built here, and tickets are read only from
//! the caller's agency's partition, so another agency's id is a 404.
//! Reports hold row numbers, fields, codes and code-shaped values only, as
//! the CLI's `validate` does: no identifier value.

use std::time::Duration;

use agencylink_aws::uploads::{UploadTicket, new_upload_id, valid_upload_id};
use agencylink_core::ports::{ObjectStore, StoreError};
use agencylink_http::router::Response;
use serde_json::{Value, json};

use crate::{Api, error, respond, store_failure};

/// How uploads are signed (the upload function's environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadConfig {
    /// The KMS key every upload is encrypted with
    /// (`AGENCYLINK_UPLOAD_KMS_KEY_ID`: the landing bucket's key).
    pub kms_key_id: String,
    /// The largest upload in bytes (`AGENCYLINK_UPLOAD_MAX_BYTES`).
    pub max_bytes: u64,
    /// How long a form stays valid.
    pub expires: Duration,
}

/// The default largest upload (shared with the ingest function's check).
pub const DEFAULT_MAX_BYTES: u64 = agencylink_aws::DEFAULT_UPLOAD_MAX_BYTES;

/// How long a presigned form is valid.
pub const FORM_SECONDS: u64 = 900;

impl UploadConfig {
    /// From `AGENCYLINK_UPLOAD_KMS_KEY_ID` and `AGENCYLINK_UPLOAD_MAX_BYTES`;
    /// `None` when no key is set (this function signs no uploads).
    pub fn from_env() -> Result<Option<UploadConfig>, String> {
        let Some(kms_key_id) = std::env::var("AGENCYLINK_UPLOAD_KMS_KEY_ID")
            .ok()
            .filter(|v| !v.trim().is_empty())
        else {
            return Ok(None);
        };
        let max_bytes = agencylink_aws::upload_max_bytes_from_env().map_err(|e| e.to_string())?;
        Ok(Some(UploadConfig {
            kms_key_id,
            max_bytes,
            expires: Duration::from_secs(FORM_SECONDS),
        }))
    }
}

/// The most tickets one listing returns (and the default).
pub const PAGE_LIMIT: usize = agencylink_http::PAGE_LIMIT as usize;

/// The most report errors a status answer carries: the rest are counted
/// (`errors_total`) and in the CSV report the CLI's `validate` makes too.
pub const REPORT_ERRORS_MAX: usize = agencylink_http::REPORT_ERRORS_MAX;

/// `POST /uploads`: a ticket and a presigned form for the agency's prefix.
pub(crate) fn create(api: &Api, agency: &str, body: &[u8]) -> Response {
    let Some(config) = api.uploads.as_ref() else {
        return error(
            500,
            "this deployment signs no uploads (AGENCYLINK_UPLOAD_KMS_KEY_ID)",
        );
    };
    let body: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error(400, "the body must be a JSON object: {\"dataset\": \"…\"}"),
    };
    let Some(dataset) = body.get("dataset").and_then(Value::as_str) else {
        return error(400, "dataset is required");
    };
    let ext = match body.get("format").and_then(Value::as_str) {
        None | Some("csv") => "csv",
        Some("ndjson") => "ndjson",
        Some(_) => return error(400, "format must be csv or ndjson"),
    };
    // Datasets are schema ids: a name outside the catalog is refused
    // before it reaches a key.
    let Some(ds) = api.catalog.get(dataset) else {
        return error(404, "no such dataset: `agencylink datasets` lists them");
    };
    if let Err(refusal) = api.backend.settings.agencies.check(agency, &ds.id) {
        return error(403, &refusal.to_string());
    }
    let id = new_upload_id();
    let key = format!("landing/{agency}/{}/{id}.{ext}", ds.id);
    let ticket = UploadTicket {
        id: id.clone(),
        agency: agency.to_owned(),
        dataset: ds.id.clone(),
        key: key.clone(),
        created: agencylink_aws::now_rfc3339(),
        status: "waiting".into(),
        upload_id: None,
        result: None,
        settled: None,
    };
    // The ticket first: an upload the API signed always has one to settle.
    match api.backend.uploads().create(&ticket) {
        Ok(true) => {}
        Ok(false) => return error(503, "an upload id was issued twice; try again"),
        Err(e) => return store_failure(&e),
    }
    let form = match api.backend.objects.presign_landing_post(
        &key,
        config.max_bytes,
        &config.kms_key_id,
        config.expires,
    ) {
        Ok(form) => form,
        Err(e) => return store_failure(&e),
    };
    respond(
        201,
        &json!({
            "id": id,
            "dataset": ds.id,
            "status": "waiting",
            "upload": {
                "method": "POST",
                "url": form.url,
                "fields": form.fields_json(),
                "file_field": "file",
                "max_bytes": form.max_bytes,
                "expires": form.expires,
            },
        }),
    )
}

/// `GET /uploads`: the agency's uploads, newest first, a page at a time.
pub(crate) fn list(
    api: &Api,
    agency: &str,
    after: Option<String>,
    limit: Option<String>,
) -> Response {
    if after.as_deref().is_some_and(|a| !valid_upload_id(a)) {
        return error(
            400,
            "after must be an upload id: the last id of the previous page",
        );
    }
    let limit = match limit.map(|l| l.trim().parse::<usize>()) {
        None => PAGE_LIMIT,
        Some(Ok(n)) if (1..=PAGE_LIMIT).contains(&n) => n,
        Some(_) => return error(400, &format!("limit must be 1 to {PAGE_LIMIT}")),
    };
    match api.backend.uploads().page(agency, after.as_deref(), limit) {
        Ok(page) => {
            let next = (page.len() == limit)
                .then(|| page.last().map(|t| t.id.clone()))
                .flatten();
            respond(200, &json!({ "uploads": page, "next": next }))
        }
        Err(e) => store_failure(&e),
    }
}

/// `GET /uploads/{id}`: one of the agency's uploads.
pub(crate) fn show(api: &Api, agency: &str, id: &str) -> Response {
    if !valid_upload_id(id) {
        return error(404, "no such upload");
    }
    let ticket = match api.backend.uploads().get(agency, id) {
        Ok(Some(t)) => t,
        Ok(None) => return error(404, "no such upload"),
        Err(e) => return store_failure(&e),
    };
    let mut body = json!({ "upload": ticket });
    if let (Some(upload), "ingested") = (&ticket.upload_id, ticket.status.as_str()) {
        let [_, report_key, _] =
            agencylink_aws::pipeline::output_keys(agency, &ticket.dataset, upload);
        match report(api, &report_key) {
            Ok(r) => body["report"] = r,
            Err(StoreError::NotFound(_)) => body["report"] = Value::Null,
            Err(e) => return store_failure(&e),
        }
    }
    respond(200, &body)
}

/// The upload's JSON rejection report, its errors capped at
/// [`REPORT_ERRORS_MAX`] (a response must stay far inside API Gateway's
/// limits); `errors_total` says how many there were.
fn report(api: &Api, key: &str) -> Result<Value, StoreError> {
    let mut reader = api.backend.objects.get(key)?;
    let mut v: Value = serde_json::from_reader(&mut reader)
        .map_err(|e| StoreError::backend("reading a rejection report", e))?;
    agencylink_http::cap_report(&mut v);
    Ok(v)
}
