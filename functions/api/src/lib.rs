//! The analyst and auditor HTTP API (API Gateway HTTP API, payload 2.0, or
//! REST API proxy), mirroring the CLI's reads:
//!
//! | route | role | what |
//! |---|---|---|
//! | `GET /people/{id}?purpose=…` | analyst | a person's timeline across agencies |
//! | `GET /people/{id}/network?purpose=…[&max_depth=&max_people=][&format=json\|graphml\|i2]` | analyst | the people tied to them (JSON); as a chart, to S3 with a 15-minute download link back |
//! | `GET /export?purpose=…[&dataset=][&format=csv\|ndjson\|i2\|graphml]` | analyst | flat rows (or a chart) to S3, a 15-minute download link back |
//! | `POST /exports` `{"purpose"[, "dataset", "format": "csv\|ndjson"]}`, `GET /exports/{id}?purpose=…` | analyst | a flat export too large for `GET /export` (over 50,000 rows: 413) as a job: queued (the request logged), written by the profile function, its link handed only to the analyst who asked (logged with its rows) |
//! | `GET /lineage[?after=SEQ&limit=N]` | auditor | lineage events, a page at a time (`next`: the following page's `after`) |
//! | `GET /lineage/verify` | auditor | the chain, the WORM copies and the latest checkpoint (as `lineage verify`, less its reconciliation) |
//! | `GET /lineage/uploads/{upload_id}` | auditor | one upload's events |
//! | `GET /access-log[?after=SEQ&limit=N]` and `/access-log/verify` | auditor | who read what, and why, a page at a time; verified as `access-log --verify` |
//! | `GET /review?purpose=…[&status=waiting\|decided\|all][&after=&limit=]` | analyst | the clerical review queue of probabilistic linkage, most probable first, a page at a time |
//! | `GET /review/{id}?purpose=…` | analyst | one pair: agreement levels, weights, both records' pseudonymised attributes |
//! | `POST /review/{id}/decision` `{"decision":"match\|non-match\|unsure","reason","purpose"}` | analyst | decide a pair (in the access log before it takes effect) |
//! | `GET /profiles`, `GET /profiles/{id}?purpose=…`, `POST /profiles` | analyst (agency: the partner edition) | the stored problem profiles, their files' download links, and a build on demand ([`profiles`]) |
//! | `POST /uploads`, `GET /uploads`, `GET /uploads/{id}` | agency | a presigned upload into the agency's own landing prefix, and its own uploads' status, counts and rejection report ([`uploads`]) |
//! | `GET /openapi.json` | every role | the OpenAPI 3.1 document of all of this |
//!
//! The routes, who may call each, their query parameters and limits (a
//! network at most 6 hops and 2,000 people; pages of at most 500 log
//! entries or 100 items, `?after=` the previous page's `next`) are one
//! table, `agencylink_http::ROUTES`: this handler dispatches on it, refuses
//! a role it does not list (403) and a query outside its limits (400)
//! before reading anything, and serves the OpenAPI document generated from
//! it (`docs/openapi.json` is the committed copy). Every error is an RFC
//! 9457 problem document (`application/problem+json`).
//!
//! The role comes only from the Cognito user pool's groups in the verified
//! token (`cognito:groups`, see [`auth`]) and the reader's identity from its
//! `sub`, never from a `custom:` attribute or anything else the caller can
//! write. Agency uploaders reach only `/uploads`; key custodians and
//! operators read nothing here.
//! Every analyst read is written to the access log and to its write-once
//! (WORM) copy, with the stated purpose, before any data is returned; if
//! either cannot be written, nothing is returned.

use std::sync::Arc;
use std::time::Duration;

use agencylink_aws::AwsBackend;
use agencylink_aws::exports::{self, Flat};
use agencylink_core::audit::{ACCESS_LOG, LINEAGE, LogSpec, verify_log};
use agencylink_core::linkage::{self, Decision, ReviewStatus};
use agencylink_core::ports::{ChainLog, ObjectStoreExt, PutMode, StoreError};
use agencylink_core::query::{self, NetworkLimits, QueryError, Read};
use agencylink_core::schema::Catalog;
use agencylink_http::{Miss, Op, Problem};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};

pub mod auth;
pub mod profiles;
pub mod uploads;

pub use auth::{Denied, Principal, Role, principal};
pub use uploads::UploadConfig;

/// What the handler needs, built once per cold start.
#[derive(Debug)]
pub struct Api {
    backend: Arc<AwsBackend>,
    catalog: Arc<Catalog>,
    uploads: Option<UploadConfig>,
    sync_export_rows: u64,
}

impl Api {
    /// Wire the backend and catalog.
    pub fn new(backend: AwsBackend, catalog: Catalog) -> Self {
        Api {
            backend: Arc::new(backend),
            catalog: Arc::new(catalog),
            uploads: None,
            sync_export_rows: SYNC_EXPORT_ROWS,
        }
    }

    /// Write at most `rows` rows in `GET /export` (tests use few).
    pub fn with_sync_export_rows(mut self, rows: u64) -> Self {
        self.sync_export_rows = rows;
        self
    }

    /// Sign agency uploads (`POST /uploads`) this way.
    pub fn with_uploads(mut self, config: UploadConfig) -> Self {
        self.uploads = Some(config);
        self
    }

    /// The backend (tests inspect the stores through it).
    pub fn backend(&self) -> &AwsBackend {
        &self.backend
    }
}

fn respond(status: u16, body: &Value) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = lambda_http::http::StatusCode::from_u16(status)
        .unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        "content-type",
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        "cache-control",
        lambda_http::http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// An RFC 9457 problem document (`application/problem+json`).
fn problem(p: &Problem) -> Response<Body> {
    let mut resp = respond(p.status, &p.to_json());
    let headers = resp.headers_mut();
    headers.insert(
        "content-type",
        lambda_http::http::HeaderValue::from_static(agencylink_http::PROBLEM_CONTENT_TYPE),
    );
    if !p.allow.is_empty()
        && let Ok(allow) = lambda_http::http::HeaderValue::from_str(&p.allow.join(", "))
    {
        headers.insert("allow", allow);
    }
    resp
}

/// An error answer: a problem document with this status and detail.
fn error(status: u16, message: &str) -> Response<Body> {
    problem(&Problem::new(status, message))
}

fn store_failure(e: &StoreError) -> Response<Body> {
    if e.is_retryable() {
        error(503, "the store is unavailable; try again")
    } else {
        error(500, "the store failed")
    }
}

pub(crate) fn query_failure(e: &QueryError) -> Response<Body> {
    match e {
        QueryError::NotAPersonId | QueryError::Reader(_) => error(400, &e.to_string()),
        QueryError::UnknownPerson(_)
        | QueryError::UnknownReviewItem(_)
        | QueryError::UnknownDataset(_) => error(404, &e.to_string()),
        QueryError::Store(s) => store_failure(s),
        _ => error(500, "the read failed"),
    }
}

/// Handle one request (all store work runs on a blocking thread).
pub async fn handle(api: Arc<Api>, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    let resp = tokio::task::spawn_blocking(move || route(&api, &req))
        .await
        .unwrap_or_else(|_| error(500, "the request failed"));
    Ok(resp)
}

/// Route a request (synchronous; off the runtime's worker threads). The
/// routes, their roles and their query limits are `agencylink_http`'s
/// table: a route the table does not hold is a 404, a role it does not
/// list a 403, a query outside its limits a 400, before anything is read.
pub fn route(api: &Api, req: &Request) -> Response<Body> {
    let who = match principal(req) {
        Ok(who) => who,
        Err(denied) => return error(403, &denied.to_string()),
    };
    // The path as the client sent it, without an API Gateway stage prefix.
    let path = match req.raw_http_path() {
        "" => req.uri().path(),
        raw => raw,
    }
    .to_owned();
    let matched = match agencylink_http::find(req.method().as_str(), &path) {
        Ok(m) => m,
        Err(Miss::NotFound) => return error(404, "no such route"),
        Err(Miss::MethodNotAllowed(allow)) => {
            return problem(&Problem::method_not_allowed(&allow));
        }
    };
    let route = matched.route;
    if !route.allows(who.role.kind()) {
        return error(403, &format!("{} is for {}", route.path, route.who()));
    }
    let params = req.query_string_parameters();
    let param = |k: &str| params.first(k).map(str::to_owned);
    if let Err(p) = agencylink_http::check_query(route, &param) {
        return problem(&p);
    }
    let id = || matched.param("id").unwrap_or_default();
    match route.op {
        Op::OpenApi => respond(200, &agencylink_http::openapi::document()),
        Op::UploadCreate | Op::UploadList | Op::UploadShow => {
            let Role::Agency { agency } = &who.role else {
                return error(403, "uploads are for agency uploaders");
            };
            match route.op {
                Op::UploadCreate => uploads::create(api, agency, req),
                Op::UploadList => uploads::list(api, agency, param("after"), param("limit")),
                _ => uploads::show(api, agency, id()),
            }
        }
        Op::ProfileList => profiles::list(api, &who, param("after"), param("limit")),
        Op::ProfileShow => profiles::fetch(api, &who, id(), param("purpose")),
        Op::ProfileRequest => profiles::request_build(api, &who, req),
        Op::ReviewDecision => review_decision(api, &who, id(), req),
        Op::ReviewList => review_list(api, &who, &param),
        Op::ReviewShow => analyst_read(
            api,
            &who,
            param("purpose"),
            "review_show",
            id(),
            |store, _| {
                let linkage = linkage_of(store)?;
                match linkage.get_review(id())? {
                    Some(item) => Ok((1, linkage::review_detail(store, &item)?)),
                    None => Err(QueryError::UnknownReviewItem(id().to_owned())),
                }
            },
        ),
        Op::PersonTimeline => analyst_read(
            api,
            &who,
            param("purpose"),
            "query_person",
            id(),
            |store, catalog| {
                let t = query::person_timeline(store, catalog, id())?;
                Ok((
                    t.timeline.len() as u64,
                    serde_json::to_value(&t).unwrap_or_default(),
                ))
            },
        ),
        Op::PersonNetwork => network(api, &who, id(), &param),
        Op::Export => export(
            api,
            &who,
            param("purpose"),
            param("dataset"),
            param("format"),
        ),
        Op::ExportJob => export_job(api, &who, req),
        Op::ExportStatus => export_status(api, &who, id(), param("purpose")),
        Op::LineagePage => list_page(
            &api.backend.lineage,
            "events",
            param("after"),
            param("limit"),
        ),
        Op::LineageVerify => verify(api, LINEAGE),
        Op::LineageUpload => {
            let upload = matched.param("upload_id").unwrap_or_default();
            match api.backend.lineage.entries_by(upload) {
                Ok(entries) if entries.is_empty() => error(404, "no lineage event for that upload"),
                Ok(entries) => respond(200, &json!({ "events": entries })),
                Err(e) => store_failure(&e),
            }
        }
        Op::AccessLogPage => list_page(
            &api.backend.access_log,
            "entries",
            param("after"),
            param("limit"),
        ),
        Op::AccessLogVerify => verify(api, ACCESS_LOG),
        _ => error(500, "this route has no handler"),
    }
}

/// `GET /review`: the queue, most probable first, a page at a time. The
/// cursor (`next`, passed back as `after`) is the last item's place in
/// that order, so items decided between pages do not shift the next page.
fn review_list(
    api: &Api,
    who: &Principal,
    param: &dyn Fn(&str) -> Option<String>,
) -> Response<Body> {
    let which = param("status").unwrap_or_else(|| "waiting".into());
    let limit = param("limit")
        .and_then(|l| l.trim().parse::<usize>().ok())
        .unwrap_or(agencylink_http::PAGE_LIMIT as usize);
    let after = match param("after").map(|a| review_cursor(&a)) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => return error(400, "after must be the `next` of the previous page"),
    };
    let target = format!("review_queue:{which}");
    analyst_read(
        api,
        who,
        param("purpose"),
        "review_list",
        &target,
        |store, _| {
            let linkage = linkage_of(store)?;
            let mut items: Vec<_> = linkage
                .review_items()?
                .into_iter()
                .filter(|i| match which.as_str() {
                    "waiting" => i.status.is_pending(),
                    "decided" => !i.status.is_pending(),
                    _ => true,
                })
                .collect();
            // Most probable first; the id breaks ties.
            let order =
                |p: f64, id: &str, q: f64, other: &str| q.total_cmp(&p).then_with(|| id.cmp(other));
            items.sort_by(|a, b| order(a.probability, &a.id, b.probability, &b.id));
            if let Some((p, id)) = &after {
                items.retain(|i| order(*p, id, i.probability, &i.id).is_lt());
            }
            let more = items.len() > limit;
            items.truncate(limit);
            let next = more
                .then(|| {
                    items
                        .last()
                        .map(|i| format!("{}_{}", i.probability.to_bits(), i.id))
                })
                .flatten();
            Ok((items.len() as u64, json!({ "items": items, "next": next })))
        },
    )
}

/// A review cursor, `<probability's bits>_<id>`.
fn review_cursor(text: &str) -> Option<(f64, String)> {
    let (bits, id) = text.split_once('_')?;
    let p = f64::from_bits(bits.parse().ok()?);
    (!id.is_empty() && p.is_finite()).then(|| (p, id.to_owned()))
}

/// `GET /people/{id}/network`, within the caps the route's query allows.
fn network(
    api: &Api,
    who: &Principal,
    id: &str,
    param: &dyn Fn(&str) -> Option<String>,
) -> Response<Body> {
    let chart = match param("format").as_deref() {
        Some("graphml") => Some(Chart::Graphml),
        Some("i2") => Some(Chart::I2),
        _ => None,
    };
    let mut limits = NetworkLimits::default();
    if let Some(d) = param("max_depth").and_then(|v| v.trim().parse().ok()) {
        limits.max_depth = d;
    }
    if let Some(p) = param("max_people").and_then(|v| v.trim().parse().ok()) {
        limits.max_people = p;
    }
    analyst_read(
        api,
        who,
        param("purpose"),
        "query_network",
        id,
        |store, catalog| {
            let Some(chart) = chart else {
                let n = query::person_network(store, catalog, id, limits)?;
                return Ok((
                    n.people.len() as u64,
                    serde_json::to_value(&n).unwrap_or_default(),
                ));
            };
            let (n, graph) = query::network_graph(store, catalog, id, limits)?;
            let from = query::GraphSource {
                source: "network".into(),
                target: id.to_owned(),
                network_id: n.network_id.clone(),
                group_based: Some(n.group_based),
                truncated: Some(n.truncated),
            };
            let body = put_chart(&api.backend, &graph, &from, chart)?;
            Ok((n.people.len() as u64, body))
        },
    )
}

/// The most entries one lineage or access-log listing returns (and the
/// default): well inside Lambda's 6 MB response limit, which a whole log
/// outgrows.
pub const PAGE_LIMIT: usize = agencylink_http::LOG_PAGE_LIMIT as usize;

/// `GET /lineage` and `GET /access-log`: one page, `?after=SEQ` (0, the
/// start, by default) and `?limit=N` (at most [`PAGE_LIMIT`]), with `next`,
/// the `after` of the next page, or null at the head.
fn list_page(
    log: &dyn ChainLog,
    name: &str,
    after: Option<String>,
    limit: Option<String>,
) -> Response<Body> {
    let number = |v: Option<String>, default: u64| match v {
        None => Some(default),
        Some(v) => v.trim().parse::<u64>().ok(),
    };
    let Some(after) = number(after, 0) else {
        return error(
            400,
            "after must be a whole number: the seq the page starts after",
        );
    };
    let limit = match number(limit, PAGE_LIMIT as u64) {
        Some(n) if (1..=PAGE_LIMIT as u64).contains(&n) => n as usize,
        _ => return error(400, &format!("limit must be 1 to {PAGE_LIMIT}")),
    };
    match log.page(after, limit) {
        Ok(page) => {
            let next = (page.len() == limit)
                .then(|| page.last().map(agencylink_core::ports::entry_seq))
                .flatten();
            let mut body = json!({ "next": next });
            body[name] = Value::Array(page);
            respond(200, &body)
        }
        Err(e) => store_failure(&e),
    }
}

/// `GET /lineage/verify` and `GET /access-log/verify`: what the CLI's
/// `lineage verify` and `access-log --verify` check, in the same JSON: the
/// chain, the WORM archive's copies and the latest checkpoint. Not the
/// reconciliation with the record store: that reads every record item, far
/// past an API request's time limit on a real store, so it stays the
/// CLI's. A broken log is a finding (200, `"ok": false`), not a failed
/// request.
fn verify(api: &Api, spec: LogSpec) -> Response<Body> {
    let b = &api.backend;
    let log: &dyn ChainLog = if spec.log == LINEAGE.log {
        &b.lineage
    } else {
        &b.access_log
    };
    let entries = match log.entries() {
        Ok(entries) => entries,
        Err(e) => return store_failure(&e),
    };
    match verify_log(spec, &entries, &b.audit_copies(), None, None) {
        Ok(v) => respond(200, &v.to_json()),
        Err(StoreError::Invalid(_)) => error(500, "checkpoint verification is not configured"),
        Err(e) => store_failure(&e),
    }
}

fn linkage_of(
    store: &dyn agencylink_core::ports::RecordStore,
) -> Result<&dyn agencylink_core::ports::LinkageStore, QueryError> {
    store.linkage().ok_or_else(|| {
        QueryError::Store(StoreError::Invalid(
            "this store keeps no probabilistic-linkage index".into(),
        ))
    })
}

/// `POST /review/{id}/decision`: the decision goes to the access log (and
/// its WORM copy) first; only then is it applied. The reviewer's reason is
/// kept with the item, not in the permanent log.
fn review_decision(api: &Api, who: &Principal, id: &str, req: &Request) -> Response<Body> {
    let body: Value = match serde_json::from_slice(req.body().as_ref()) {
        Ok(v) => v,
        Err(_) => return error(400, "the body must be a JSON object"),
    };
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    let (decision, reason, purpose) = (text("decision"), text("reason"), text("purpose"));
    let status = match decision.as_str() {
        "match" => ReviewStatus::Match,
        "non-match" => ReviewStatus::NonMatch,
        "unsure" => ReviewStatus::Unsure,
        _ => return error(400, "decision must be match, non-match or unsure"),
    };
    if reason.is_empty() || reason.chars().any(char::is_control) || reason.chars().count() > 500 {
        return error(
            400,
            "reason must say why, on one line of at most 500 characters",
        );
    }
    if let Err(e) = query::check_reader(&who.actor, &purpose) {
        return query_failure(&e);
    }
    let store = &api.backend.records;
    let linkage = match linkage_of(store) {
        Ok(l) => l,
        Err(e) => return query_failure(&e),
    };
    match linkage.get_review(id) {
        Ok(Some(_)) => {}
        Ok(None) => return error(404, "no such review item"),
        Err(e) => return store_failure(&e),
    }
    let time = agencylink_aws::now_rfc3339();
    let entry = match query::log_review_decision(
        &api.backend.access_log,
        &who.actor,
        &purpose,
        id,
        &decision,
        &time,
    ) {
        Ok(entry) => entry,
        Err(e) => return query_failure(&e),
    };
    if let Some(refused) = archive_access(api, &entry) {
        return refused;
    }
    match linkage::decide(
        store,
        linkage,
        id,
        Decision {
            status,
            analyst: who.actor.clone(),
            reason,
            purpose,
            time,
        },
    ) {
        Ok(item) => respond(200, &json!({ "item": item })),
        Err(e) => store_failure(&e),
    }
}

/// Write the WORM copy of an access-log entry. Its failure answers like a
/// failed table write (nothing returned, nothing applied): the chained log
/// is in a table the stack's own roles can rewrite, so a read whose
/// write-once copy is missing would be a read an insider could hide. The
/// entry stays in the table, so an auditor still sees the attempt.
/// `None` when the copy is written (or no archive is configured), else the
/// error response to send instead of the data.
pub(crate) fn archive_access(api: &Api, entry: &Value) -> Option<Response<Body>> {
    let archive = api.backend.archive.as_ref()?;
    archive.archive("access-log", entry).err().map(|e| {
        lambda_http::tracing::error!(error = %e, "access-log entry not archived; nothing returned");
        if e.is_retryable() {
            error(
                503,
                "the audit archive is unavailable; nothing was returned; try again",
            )
        } else {
            error(500, "the audit archive failed; nothing was returned")
        }
    })
}

/// Log an analyst's request for work that reads data later (a profile
/// build, an export job) in the access log and its WORM copy, before it
/// is queued. `None` when logged; else the error response to send, and
/// nothing is queued.
pub(crate) fn log_request(
    api: &Api,
    who: &Principal,
    purpose: &str,
    action: &str,
    target: &str,
    time: &str,
) -> Option<Response<Body>> {
    let logged = query::log_read(
        &api.backend.access_log,
        &Read {
            analyst: &who.actor,
            purpose,
            action,
            target,
            rows_returned: 0,
            time,
        },
    );
    match logged {
        Ok(entry) => archive_access(api, &entry),
        Err(e) => Some(query_failure(&e)),
    }
}

/// Run an analyst read, log it (with the purpose), and only then answer. A
/// search that finds nobody is logged too (with no rows): auditors need to
/// see searches as well as finds. A malformed request reads nothing.
pub(crate) fn analyst_read(
    api: &Api,
    who: &Principal,
    purpose: Option<String>,
    action: &str,
    target: &str,
    read: impl FnOnce(
        &dyn agencylink_core::ports::RecordStore,
        &Catalog,
    ) -> Result<(u64, Value), QueryError>,
) -> Response<Body> {
    let purpose = purpose.unwrap_or_default();
    if let Err(e) = query::check_reader(&who.actor, &purpose) {
        return query_failure(&e);
    }
    let (rows, answer) = match read(&api.backend.records, &api.catalog) {
        Ok((rows, body)) => (rows, Ok(body)),
        Err(e @ (QueryError::UnknownPerson(_) | QueryError::UnknownReviewItem(_))) => (0, Err(e)),
        Err(e) => return query_failure(&e),
    };
    let time = agencylink_aws::now_rfc3339();
    let logged = query::log_read(
        &api.backend.access_log,
        &Read {
            analyst: &who.actor,
            purpose: &purpose,
            action,
            target,
            rows_returned: rows,
            time: &time,
        },
    );
    let entry = match logged {
        Ok(entry) => entry,
        Err(e) => return query_failure(&e),
    };
    if let Some(refused) = archive_access(api, &entry) {
        return refused;
    }
    match answer {
        Ok(body) => respond(200, &body),
        Err(e) => query_failure(&e),
    }
}

/// Export flat rows to `exports/…` in the data bucket and return a
/// short-lived download link (exports are too large for a response body).
fn export(
    api: &Api,
    who: &Principal,
    purpose: Option<String>,
    dataset: Option<String>,
    format: Option<String>,
) -> Response<Body> {
    let csv = match format.as_deref() {
        None | Some("csv") => true,
        Some("ndjson") => false,
        Some("i2") => return export_chart(api, who, purpose, dataset, Chart::I2),
        Some("graphml") => return export_chart(api, who, purpose, dataset, Chart::Graphml),
        Some(_) => return error(400, "format must be csv, ndjson, i2 or graphml"),
    };
    let format = if csv { Flat::Csv } else { Flat::Ndjson };
    let backend = api.backend.clone();
    let target = dataset.clone().unwrap_or_else(|| "all".into());
    let too_large = std::cell::Cell::new(false);
    let answer = analyst_read(api, who, purpose, "export", &target, |store, catalog| {
        let key = format!(
            "exports/{}-{}.{}",
            agencylink_aws::now_rfc3339().replace(':', ""),
            fastrand_suffix(),
            format.ext()
        );
        let written = exports::write_flat(
            &backend.objects,
            store,
            catalog,
            dataset.as_deref(),
            format,
            &key,
            api.sync_export_rows,
        )?;
        let exports::Written::Done { rows, datasets } = written else {
            // Nothing was stored or returned: not a read to log.
            too_large.set(true);
            return Err(QueryError::Store(StoreError::Invalid("too large".into())));
        };
        let url = backend
            .objects
            .presign_get(&key, Duration::from_secs(PRESIGN_SECONDS))
            .map_err(QueryError::Store)?;
        Ok((
            rows,
            json!({
                "key": key,
                "rows": rows,
                "datasets": datasets,
                "url": url,
                "expires_in": PRESIGN_SECONDS,
            }),
        ))
    });
    if too_large.get() {
        return problem(&Problem::new(
            413,
            format!(
                "the export has more than {} rows, more than the API writes within a request: POST /exports runs it as a job, and GET /exports/{{id}} gives its link when it is done",
                api.sync_export_rows
            ),
        ));
    }
    answer
}

/// The most rows `GET /export` writes within a request (API Gateway gives
/// it 29 s); a larger export is a job (`POST /exports`).
pub const SYNC_EXPORT_ROWS: u64 = 50_000;

/// `POST /exports`: queue a flat export as a job. The request is in the
/// access log (with its purpose) before it is queued; the data is handed
/// out, and logged again with its rows, by `GET /exports/{id}`.
fn export_job(api: &Api, who: &Principal, req: &Request) -> Response<Body> {
    let body: Value = match serde_json::from_slice(req.body().as_ref()) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error(400, "the body must be a JSON object: {\"purpose\": \"…\"}"),
    };
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .map(|v| v.trim().to_owned())
    };
    let purpose = text("purpose").unwrap_or_default();
    if let Err(e) = query::check_reader(&who.actor, &purpose) {
        return query_failure(&e);
    }
    let format = match text("format").as_deref() {
        None | Some("csv") => Flat::Csv,
        Some("ndjson") => Flat::Ndjson,
        Some(_) => {
            return error(
                400,
                "format must be csv or ndjson (charts are answered straight away by GET /export)",
            );
        }
    };
    let dataset = text("dataset").filter(|d| !d.is_empty());
    if let Some(d) = &dataset
        && api.catalog.get(d).is_none()
    {
        return error(404, "no such dataset");
    }
    let time = agencylink_aws::now_rfc3339();
    let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let job = exports::ExportRequest {
        id: id.clone(),
        analyst: who.actor.clone(),
        purpose: purpose.clone(),
        dataset: dataset.clone(),
        format,
        requested_at: time.clone(),
    };
    if let Some(refused) = log_request(
        api,
        who,
        &purpose,
        "export_request",
        dataset.as_deref().unwrap_or("all"),
        &time,
    ) {
        return refused;
    }
    match exports::submit(&api.backend.objects, &job) {
        Ok(()) => respond(202, &json!({ "id": id, "status": "queued" })),
        Err(e) => store_failure(&e),
    }
}

/// `GET /exports/{id}`: the caller's own job: queued, failed, or done with
/// a download link (an analyst read: logged with its rows first).
fn export_status(api: &Api, who: &Principal, id: &str, purpose: Option<String>) -> Response<Body> {
    let status = match exports::status(&api.backend.objects, id) {
        Ok(s) => s,
        Err(e) => return store_failure(&e),
    };
    // Another analyst's job is as unknown as a made-up id.
    let mine = |analyst: &str| analyst == who.actor;
    match status {
        exports::Status::Queued(r) if mine(&r.analyst) => respond(
            200,
            &json!({ "id": id, "status": "queued", "requested_at": r.requested_at }),
        ),
        exports::Status::Failed { analyst, reason } if mine(&analyst) => respond(
            200,
            &json!({ "id": id, "status": "failed", "reason": reason }),
        ),
        exports::Status::Done(m) if mine(&m.analyst) => {
            analyst_read(api, who, purpose, "export", id, |_, _| {
                let url = api
                    .backend
                    .objects
                    .presign_get(&m.key, Duration::from_secs(PRESIGN_SECONDS))
                    .map_err(QueryError::Store)?;
                Ok((
                    m.rows,
                    json!({
                        "id": id,
                        "status": "done",
                        "key": m.key,
                        "rows": m.rows,
                        "datasets": m.datasets,
                        "url": url,
                        "expires_in": PRESIGN_SECONDS,
                    }),
                ))
            })
        }
        _ => error(404, "no such export job"),
    }
}

pub(crate) const PRESIGN_SECONDS: u64 = 900;

/// The charting formats: GraphML for Gephi and yEd, an entity-link CSV for
/// i2 Analyst's Notebook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chart {
    Graphml,
    I2,
}

/// `GET /export?format=i2|graphml`: every person with a linking value in
/// the exported datasets, charted; logged as `export` with the records read.
fn export_chart(
    api: &Api,
    who: &Principal,
    purpose: Option<String>,
    dataset: Option<String>,
    chart: Chart,
) -> Response<Body> {
    let target = dataset.clone().unwrap_or_else(|| "all".into());
    analyst_read(api, who, purpose, "export", &target, |store, catalog| {
        let plan = query::plan_export(store, catalog, dataset.as_deref())?;
        let graph = query::export_graph(store, catalog, &plan)?;
        let from = query::GraphSource {
            source: "export".into(),
            target: target.clone(),
            ..query::GraphSource::default()
        };
        let mut body = put_chart(&api.backend, &graph, &from, chart)?;
        body["datasets"] = json!(plan.datasets);
        Ok((graph.records, body))
    })
}

/// Put a chart under `exports/` like the flat exports (the i2 CSV with its
/// import specification beside it, `….import-spec.json`) and describe it
/// with short-lived download links. Runs inside [`analyst_read`], so the
/// links go out only once the read is logged.
fn put_chart(
    backend: &AwsBackend,
    graph: &query::Graph,
    from: &query::GraphSource,
    chart: Chart,
) -> Result<Value, QueryError> {
    let stem = format!(
        "exports/{}-{}",
        agencylink_aws::now_rfc3339().replace(':', ""),
        fastrand_suffix()
    );
    let put = |key: &str, bytes: &[u8]| -> Result<String, QueryError> {
        backend
            .objects
            .put(key, bytes, PutMode::Create)
            .map_err(QueryError::Store)?;
        backend
            .objects
            .presign_get(key, Duration::from_secs(PRESIGN_SECONDS))
            .map_err(QueryError::Store)
    };
    let mut body = json!({
        "nodes": graph.nodes.len(),
        "edges": graph.edges.len(),
        "records": graph.records,
        "expires_in": PRESIGN_SECONDS,
    });
    match chart {
        Chart::Graphml => {
            let key = format!("{stem}.graphml");
            body["url"] = json!(put(&key, query::to_graphml(graph, from).as_bytes())?);
            body["key"] = json!(key);
        }
        Chart::I2 => {
            // Cells are neutralised by core; here they are only quoted.
            let mut text = String::new();
            for row in std::iter::once(query::i2_header()).chain(query::i2_rows(graph)) {
                let line: Vec<String> = row.iter().map(|c| exports::csv_field(c)).collect();
                text.push_str(&line.join(","));
                text.push('\n');
            }
            let key = format!("{stem}.csv");
            let spec_key = format!("{stem}.import-spec.json");
            let spec = serde_json::to_vec_pretty(&query::i2_import_spec()).unwrap_or_default();
            body["url"] = json!(put(&key, text.as_bytes())?);
            body["key"] = json!(key);
            body["spec_url"] = json!(put(&spec_key, &spec)?);
            body["spec_key"] = json!(spec_key);
        }
    }
    Ok(body)
}

fn fastrand_suffix() -> String {
    format!("{:016x}", fastrand::u64(..))
}
