//! The routes' handlers, written once over core's ports, for every host.
//!
//! A host (the Lambda function in `functions/api`, `agencylink serve` for
//! the embedded store) authenticates the caller its own way, turns its
//! request into a [`Request`], and calls [`handle`] with a [`Host`]: the
//! record store, the two chained logs and the catalog, plus what only it
//! can do (the write-once copy of an access-log entry, verification
//! against its checkpoints, and the routes whose answers are its own, such
//! as presigned download links). Everything a caller can observe that does
//! not depend on where the data lives is decided here: matching, the role
//! check, query limits, the access-log rule (a read that cannot be logged,
//! and on AWS archived, returns nothing), and the JSON of every answer.

mod exports;
mod profiles;

use agencylink_core::audit::{ACCESS_LOG, LINEAGE, LogSpec};
use agencylink_core::linkage::{self, Decision, ReviewStatus};
use agencylink_core::ports::{
    ChainLog, LinkageStore, ObjectStore, RecordStore, StoreError, entry_seq,
};
use agencylink_core::query::{self, QueryError, Read};
use agencylink_core::schema::Catalog;
use serde_json::{Value, json};

use crate::{Miss, Op, PROBLEM_CONTENT_TYPE, Problem, RoleKind, Route};

/// A request, as the host received it.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The method (`GET`, `POST`).
    pub method: &'a str,
    /// The path as the client sent it (no stage prefix, no query).
    pub path: &'a str,
    /// A query parameter's first value.
    pub query: &'a dyn Fn(&str) -> Option<String>,
    /// The body.
    pub body: &'a [u8],
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The query and body may hold a purpose or a review reason: not
        // for logs.
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// An answer, for the host to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status.
    pub status: u16,
    /// `application/json` or [`PROBLEM_CONTENT_TYPE`].
    pub content_type: &'static str,
    /// The JSON body.
    pub body: Vec<u8>,
    /// The `Allow` header of a 405.
    pub allow: Option<String>,
}

impl Response {
    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Self {
        Response {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec()),
            allow: None,
        }
    }

    /// An RFC 9457 problem document.
    pub fn problem(p: &Problem) -> Self {
        Response {
            content_type: PROBLEM_CONTENT_TYPE,
            allow: (!p.allow.is_empty()).then(|| p.allow.join(", ")),
            ..Response::json(p.status, &p.to_json())
        }
    }

    /// A problem document with this status and detail.
    pub fn error(status: u16, detail: &str) -> Self {
        Response::problem(&Problem::new(status, detail))
    }

    /// The answer to a failed store call: 503 when a retry may work.
    pub fn store_failure(e: &StoreError) -> Self {
        if e.is_retryable() {
            Response::error(503, "the store is unavailable; try again")
        } else {
            Response::error(500, "the store failed")
        }
    }

    /// The answer to a failed read.
    pub fn query_failure(e: &QueryError) -> Self {
        match e {
            QueryError::NotAPersonId | QueryError::Reader(_) => {
                Response::error(400, &e.to_string())
            }
            QueryError::UnknownPerson(_)
            | QueryError::UnknownReviewItem(_)
            | QueryError::UnknownDataset(_) => Response::error(404, &e.to_string()),
            QueryError::Store(s) => Response::store_failure(s),
            _ => Response::error(500, "the read failed"),
        }
    }
}

/// Who is calling, as the host authenticated them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// A stable identity, recorded in the access log with every read.
    pub actor: String,
    /// The role.
    pub role: RoleKind,
    /// An agency uploader's agency.
    pub agency: Option<String>,
}

/// What a host gives the handlers.
pub trait Host: Sync {
    /// The merged records.
    fn records(&self) -> &dyn RecordStore;
    /// The datasets.
    fn catalog(&self) -> &Catalog;
    /// The lineage log.
    fn lineage(&self) -> &dyn ChainLog;
    /// The access log.
    fn access_log(&self) -> &dyn ChainLog;
    /// The time now, RFC 3339 UTC.
    fn now(&self) -> String;
    /// Write the write-once copy of an access-log entry, where the host
    /// keeps one. A failure means nothing is returned.
    fn archive_access(&self, entry: &Value) -> Result<(), StoreError>;
    /// Verify a whole log (the chain, the host's copies, its latest
    /// checkpoint): the verification's JSON.
    fn verify(&self, spec: LogSpec, entries: &[Value]) -> Result<Value, StoreError>;
    /// Where exports, charts, export jobs and stored profiles are kept.
    fn objects(&self) -> &dyn ObjectStore;
    /// A link to the object at `key` that works for [`LINK_SECONDS`], for
    /// `caller` only where the host can bind it to them.
    fn link(&self, caller: &Caller, key: &str) -> Result<String, StoreError>;
    /// Work was queued at `key` (an export job, a profile build): run it
    /// now, or leave it to the worker that the store's events wake.
    fn queued(&self, key: &str);
    /// The most rows `GET /export` writes within a request; more is a job.
    fn sync_export_rows(&self) -> u64 {
        SYNC_EXPORT_ROWS
    }
    /// Serve a route whose answer is the host's own (on AWS, agency
    /// uploads); `None` when this host does not serve it.
    fn own(&self, call: &Call<'_>) -> Option<Response>;
}

/// How long a download link works: 15 minutes.
pub const LINK_SECONDS: u64 = 900;

/// The most rows `GET /export` writes within a request (API Gateway gives
/// it 29 s); a larger export is a job (`POST /exports`).
pub const SYNC_EXPORT_ROWS: u64 = 50_000;

/// A request matched, checked and ready for its handler.
#[derive(Debug)]
pub struct Call<'a> {
    /// The caller.
    pub caller: &'a Caller,
    /// The route.
    pub route: &'static Route,
    /// The path parameters.
    pub params: Vec<(&'static str, &'a str)>,
    /// The request.
    pub request: &'a Request<'a>,
}

impl Call<'_> {
    /// A path parameter (empty when the route has none of that name).
    pub fn path(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v)
    }

    /// The `{id}` path parameter.
    pub fn id(&self) -> &str {
        self.path("id")
    }

    /// A query parameter.
    pub fn query(&self, name: &str) -> Option<String> {
        (self.request.query)(name)
    }
}

/// Handle one request: a route the table does not hold is a 404, a method
/// it does not serve a 405, a role it does not list a 403, a query outside
/// its limits a 400, all before anything is read.
pub fn handle(host: &dyn Host, caller: &Caller, request: &Request<'_>) -> Response {
    let matched = match crate::find(request.method, request.path) {
        Ok(m) => m,
        Err(Miss::NotFound) => return Response::error(404, "no such route"),
        Err(Miss::MethodNotAllowed(allow)) => {
            return Response::problem(&Problem::method_not_allowed(&allow));
        }
    };
    let route = matched.route;
    if !route.allows(caller.role) {
        return Response::error(403, &format!("{} is for {}", route.path, route.who()));
    }
    if let Err(p) = crate::check_query(route, request.query) {
        return Response::problem(&p);
    }
    let call = Call {
        caller,
        route,
        params: matched.params,
        request,
    };
    let id = call.id();
    match route.op {
        Op::OpenApi => Response::json(200, &crate::openapi::document()),
        Op::Me => Response::json(
            200,
            &json!({
                "actor": caller.actor,
                "role": caller.role.name(),
                "agency": caller.agency,
            }),
        ),
        Op::PersonTimeline => analyst_read(
            host,
            caller,
            call.query("purpose"),
            "query_person",
            id,
            |store, catalog| {
                let t = query::person_timeline(store, catalog, id)?;
                Ok((
                    t.timeline.len() as u64,
                    serde_json::to_value(&t).unwrap_or_default(),
                ))
            },
        ),
        Op::PersonNetwork => exports::network(host, &call),
        Op::Export => exports::export(
            host,
            caller,
            call.query("purpose"),
            call.query("dataset"),
            call.query("format"),
        ),
        Op::ExportJob => exports::export_job(host, caller, request.body),
        Op::ExportStatus => exports::export_status(host, caller, id, call.query("purpose")),
        Op::ProfileList => profiles::list(host, caller, call.query("after"), call.query("limit")),
        Op::ProfileShow => profiles::fetch(host, caller, id, call.query("purpose")),
        Op::ProfileRequest => profiles::request_build(host, caller, request.body),
        Op::ReviewList => review_list(host, &call),
        Op::ReviewShow => analyst_read(
            host,
            caller,
            call.query("purpose"),
            "review_show",
            id,
            |store, _| {
                let linkage = linkage_of(store)?;
                match linkage.get_review(id)? {
                    Some(item) => Ok((1, linkage::review_detail(store, &item)?)),
                    None => Err(QueryError::UnknownReviewItem(id.to_owned())),
                }
            },
        ),
        Op::ReviewDecision => review_decision(host, &call),
        Op::LineagePage => list_page(host.lineage(), "events", &call),
        Op::LineageVerify => verify(host, LINEAGE),
        Op::LineageUpload => match host.lineage().upload_entries(call.path("upload_id")) {
            Ok(entries) if entries.is_empty() => {
                Response::error(404, "no lineage event for that upload")
            }
            Ok(entries) => Response::json(200, &json!({ "events": entries })),
            Err(e) => Response::store_failure(&e),
        },
        Op::AccessLogPage => list_page(host.access_log(), "entries", &call),
        Op::AccessLogVerify => verify(host, ACCESS_LOG),
        _ => host.own(&call).unwrap_or_else(|| {
            Response::error(
                501,
                &format!(
                    "{} {} is not served here: it is the AWS deployment's",
                    route.method.as_str(),
                    route.path
                ),
            )
        }),
    }
}

/// Run an analyst read, log it (with the purpose), and only then answer. A
/// search that finds nobody is logged too (with no rows): auditors need to
/// see searches as well as finds. A malformed request reads nothing.
pub fn analyst_read(
    host: &dyn Host,
    caller: &Caller,
    purpose: Option<String>,
    action: &str,
    target: &str,
    read: impl FnOnce(&dyn RecordStore, &Catalog) -> Result<(u64, Value), QueryError>,
) -> Response {
    let purpose = purpose.unwrap_or_default();
    if let Err(e) = query::check_reader(&caller.actor, &purpose) {
        return Response::query_failure(&e);
    }
    let (rows, answer) = match read(host.records(), host.catalog()) {
        Ok((rows, body)) => (rows, Ok(body)),
        Err(e @ (QueryError::UnknownPerson(_) | QueryError::UnknownReviewItem(_))) => (0, Err(e)),
        Err(e) => return Response::query_failure(&e),
    };
    let time = host.now();
    let logged = query::log_read(
        host.access_log(),
        &Read {
            analyst: &caller.actor,
            purpose: &purpose,
            action,
            target,
            rows_returned: rows,
            time: &time,
        },
    );
    let entry = match logged {
        Ok(entry) => entry,
        Err(e) => return Response::query_failure(&e),
    };
    if let Some(refused) = archive_access(host, &entry) {
        return refused;
    }
    match answer {
        Ok(body) => Response::json(200, &body),
        Err(e) => Response::query_failure(&e),
    }
}

/// Log a request for work that reads data later (a profile build, an
/// export job) in the access log and its write-once copy, before it is
/// queued. `None` when logged; else the answer to send, and nothing is
/// queued.
pub fn log_request(
    host: &dyn Host,
    caller: &Caller,
    purpose: &str,
    action: &str,
    target: &str,
    time: &str,
) -> Option<Response> {
    let logged = query::log_read(
        host.access_log(),
        &Read {
            analyst: &caller.actor,
            purpose,
            action,
            target,
            rows_returned: 0,
            time,
        },
    );
    match logged {
        Ok(entry) => archive_access(host, &entry),
        Err(e) => Some(Response::query_failure(&e)),
    }
}

/// Write the write-once copy of an access-log entry. Its failure answers
/// like a failed log write (nothing returned, nothing applied): a read
/// whose copy is missing would be a read an insider could hide. The entry
/// stays in the log, so an auditor still sees the attempt.
fn archive_access(host: &dyn Host, entry: &Value) -> Option<Response> {
    host.archive_access(entry).err().map(|e| {
        if e.is_retryable() {
            Response::error(
                503,
                "the audit archive is unavailable; nothing was returned; try again",
            )
        } else {
            Response::error(500, "the audit archive failed; nothing was returned")
        }
    })
}

/// `GET /review`: the queue, most probable first, a page at a time. The
/// cursor (`next`, passed back as `after`) is the last item's place in
/// that order, so items decided between pages do not shift the next page.
fn review_list(host: &dyn Host, call: &Call<'_>) -> Response {
    let which = call.query("status").unwrap_or_else(|| "waiting".into());
    let limit = call
        .query("limit")
        .and_then(|l| l.trim().parse::<usize>().ok())
        .unwrap_or(crate::PAGE_LIMIT as usize);
    let after = match call.query("after").map(|a| review_cursor(&a)) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => {
            return Response::error(400, "after must be the `next` of the previous page");
        }
    };
    let target = format!("review_queue:{which}");
    analyst_read(
        host,
        call.caller,
        call.query("purpose"),
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

fn linkage_of(store: &dyn RecordStore) -> Result<&dyn LinkageStore, QueryError> {
    store.linkage().ok_or_else(|| {
        QueryError::Store(StoreError::Invalid(
            "this store keeps no probabilistic-linkage index".into(),
        ))
    })
}

/// `POST /review/{id}/decision`: the decision goes to the access log (and
/// its write-once copy) first; only then is it applied. The reviewer's
/// reason is kept with the item, not in the permanent log.
fn review_decision(host: &dyn Host, call: &Call<'_>) -> Response {
    let body: Value = match serde_json::from_slice(call.request.body) {
        Ok(v) => v,
        Err(_) => return Response::error(400, "the body must be a JSON object"),
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
        _ => return Response::error(400, "decision must be match, non-match or unsure"),
    };
    if reason.is_empty() || reason.chars().any(char::is_control) || reason.chars().count() > 500 {
        return Response::error(
            400,
            "reason must say why, on one line of at most 500 characters",
        );
    }
    let who = call.caller;
    if let Err(e) = query::check_reader(&who.actor, &purpose) {
        return Response::query_failure(&e);
    }
    let id = call.id();
    let store = host.records();
    let linkage = match linkage_of(store) {
        Ok(l) => l,
        Err(e) => return Response::query_failure(&e),
    };
    match linkage.get_review(id) {
        Ok(Some(_)) => {}
        Ok(None) => return Response::error(404, "no such review item"),
        Err(e) => return Response::store_failure(&e),
    }
    let time = host.now();
    let entry = match query::log_review_decision(
        host.access_log(),
        &who.actor,
        &purpose,
        id,
        &decision,
        &time,
    ) {
        Ok(entry) => entry,
        Err(e) => return Response::query_failure(&e),
    };
    if let Some(refused) = archive_access(host, &entry) {
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
        Ok(item) => Response::json(200, &json!({ "item": item })),
        Err(e) => Response::store_failure(&e),
    }
}

/// The most entries one lineage or access-log page returns (and the
/// default).
const LOG_PAGE: u64 = crate::LOG_PAGE_LIMIT;

/// `GET /lineage` and `GET /access-log`: one page, `?after=SEQ` (0, the
/// start, by default) and `?limit=N`, with `next`, the `after` of the next
/// page, or null at the head.
fn list_page(log: &dyn ChainLog, name: &str, call: &Call<'_>) -> Response {
    let number = |v: Option<String>, default: u64| match v {
        None => Some(default),
        Some(v) => v.trim().parse::<u64>().ok(),
    };
    let Some(after) = number(call.query("after"), 0) else {
        return Response::error(
            400,
            "after must be a whole number: the seq the page starts after",
        );
    };
    let limit = match number(call.query("limit"), LOG_PAGE) {
        Some(n) if (1..=LOG_PAGE).contains(&n) => n as usize,
        _ => return Response::error(400, &format!("limit must be 1 to {LOG_PAGE}")),
    };
    match log.page(after, limit) {
        Ok(page) => {
            let next = (page.len() == limit)
                .then(|| page.last().map(entry_seq))
                .flatten();
            let mut body = json!({ "next": next });
            body[name] = Value::Array(page);
            Response::json(200, &body)
        }
        Err(e) => Response::store_failure(&e),
    }
}

/// `GET /lineage/verify` and `GET /access-log/verify`: the chain, the
/// host's copies and the latest checkpoint, in the JSON the CLI's verify
/// prints. Not the reconciliation with the record store: on a real store
/// it reads every record, past a request's time limit, so it stays the
/// CLI's. A broken log is a finding (200, `"ok": false`), not a failed
/// request.
fn verify(host: &dyn Host, spec: LogSpec) -> Response {
    let log = if spec.log == LINEAGE.log {
        host.lineage()
    } else {
        host.access_log()
    };
    let entries = match log.entries() {
        Ok(entries) => entries,
        Err(e) => return Response::store_failure(&e),
    };
    match host.verify(spec, &entries) {
        Ok(v) => Response::json(200, &v),
        Err(StoreError::Invalid(_)) => {
            Response::error(500, "checkpoint verification is not configured")
        }
        Err(e) => Response::store_failure(&e),
    }
}
