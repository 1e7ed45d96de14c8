//! The analyst and auditor HTTP API (API Gateway HTTP API, payload 2.0, or
//! REST API proxy), mirroring the CLI's reads:
//!
//! | route | role | what |
//! |---|---|---|
//! | `GET /people/{id}?purpose=…` | analyst | a person's timeline across agencies |
//! | `GET /people/{id}/network?purpose=…[&max_depth=&max_people=][&format=json\|graphml\|i2]` | analyst | the people tied to them (JSON); as a chart, to S3 with a 15-minute download link back |
//! | `GET /export?purpose=…[&dataset=][&format=csv\|ndjson\|i2\|graphml]` | analyst | flat rows (or a chart) to S3, a 15-minute download link back |
//! | `GET /lineage[?after=SEQ&limit=N]` | auditor | lineage events, a page at a time (`next`: the following page's `after`) |
//! | `GET /lineage/verify` | auditor | the chain, the WORM copies and the latest checkpoint (as `lineage verify`, less its reconciliation) |
//! | `GET /lineage/uploads/{upload_id}` | auditor | one upload's events |
//! | `GET /access-log[?after=SEQ&limit=N]` and `/access-log/verify` | auditor | who read what, and why, a page at a time; verified as `access-log --verify` |
//! | `GET /review?purpose=…[&status=waiting\|decided\|all]` | analyst | the clerical review queue of probabilistic linkage |
//! | `GET /review/{id}?purpose=…` | analyst | one pair: agreement levels, weights, both records' pseudonymised attributes |
//! | `POST /review/{id}/decision` `{"decision":"match\|non-match\|unsure","reason","purpose"}` | analyst | decide a pair (in the access log before it takes effect) |
//! | `GET /profiles`, `GET /profiles/{id}?purpose=…`, `POST /profiles` | analyst (agency: the partner edition) | the stored problem profiles, their files' download links, and a build on demand ([`profiles`]) |
//! | `POST /uploads`, `GET /uploads`, `GET /uploads/{id}` | agency | a presigned upload into the agency's own landing prefix, and its own uploads' status, counts and rejection report ([`uploads`]) |
//!
//! The role comes only from the Cognito user pool's groups in the verified
//! token (`cognito:groups`, see [`auth`]) and the reader's identity from its
//! `sub`, never from a `custom:` attribute or anything else the caller can
//! write. Agency uploaders reach only `/uploads`; key custodians and
//! operators read nothing here.
//! Every analyst read is written to the access log and to its write-once
//! (WORM) copy, with the stated purpose, before any data is returned; if
//! either cannot be written, nothing is returned.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::time::Duration;

use agencylink_aws::AwsBackend;
use agencylink_core::audit::{ACCESS_LOG, LINEAGE, LogSpec, verify_log};
use agencylink_core::csv_safe::neutralise;
use agencylink_core::linkage::{self, Decision, ReviewStatus};
use agencylink_core::ports::{ChainLog, ObjectStore, ObjectStoreExt, PutMode, StoreError};
use agencylink_core::query::{self, NetworkLimits, QueryError, Read};
use agencylink_core::schema::Catalog;
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
}

impl Api {
    /// Wire the backend and catalog.
    pub fn new(backend: AwsBackend, catalog: Catalog) -> Self {
        Api {
            backend: Arc::new(backend),
            catalog: Arc::new(catalog),
            uploads: None,
        }
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

fn error(status: u16, message: &str) -> Response<Body> {
    respond(status, &json!({ "error": message }))
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

/// Route a request (synchronous; off the runtime's worker threads).
pub fn route(api: &Api, req: &Request) -> Response<Body> {
    let post = req.method() == lambda_http::http::Method::POST;
    if req.method() != lambda_http::http::Method::GET && !post {
        return error(
            405,
            "only GET (and POST of a review decision or an upload) is supported",
        );
    }
    let who = match principal(req) {
        Ok(who) => who,
        Err(denied) => return error(403, &denied.to_string()),
    };
    // The path as the client sent it, without an API Gateway stage prefix.
    let path = match req.raw_http_path() {
        "" => req.uri().path(),
        raw => raw,
    }
    .trim_end_matches('/')
    .to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let params = req.query_string_parameters();
    let param = |k: &str| params.first(k).map(str::to_owned);
    match (&who.role, segments.first()) {
        (Role::Agency { agency }, Some(&"uploads")) => {
            return uploads::route(api, agency, post, &segments, &param, req);
        }
        (_, Some(&"uploads")) => return error(403, "uploads are for agency uploaders"),
        (Role::Analyst | Role::Agency { .. }, Some(&"profiles")) => {
            return profiles::route(api, &who, post, &segments, &param, req);
        }
        (_, Some(&"profiles")) => {
            return error(403, "profiles are for analysts and agencies");
        }
        (Role::Analyst | Role::Auditor, _) => {}
        (Role::Agency { .. } | Role::KeyCustodian | Role::Operator, _) => {
            return error(403, "this role reads no data through the API");
        }
    }
    if post {
        return match (who.role.clone(), segments.as_slice()) {
            (Role::Analyst, ["review", id, "decision"]) => review_decision(api, &who, id, req),
            (Role::Auditor, ["review", ..]) => {
                error(403, "auditors read lineage and the access log, not records")
            }
            _ => error(405, "only a review decision is POSTed"),
        };
    }
    match (who.role.clone(), segments.as_slice()) {
        (Role::Analyst, ["review"]) => {
            let which = param("status").unwrap_or_else(|| "waiting".into());
            if !matches!(which.as_str(), "waiting" | "decided" | "all") {
                return error(400, "status must be waiting, decided or all");
            }
            let target = format!("review_queue:{which}");
            analyst_read(
                api,
                &who,
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
                    items.sort_by(|a, b| {
                        b.probability
                            .total_cmp(&a.probability)
                            .then_with(|| a.id.cmp(&b.id))
                    });
                    Ok((items.len() as u64, json!({ "items": items })))
                },
            )
        }
        (Role::Analyst, ["review", id]) => analyst_read(
            api,
            &who,
            param("purpose"),
            "review_show",
            id,
            |store, _| {
                let linkage = linkage_of(store)?;
                match linkage.get_review(id)? {
                    Some(item) => Ok((1, linkage::review_detail(store, &item)?)),
                    None => Err(QueryError::UnknownReviewItem((*id).to_owned())),
                }
            },
        ),
        (Role::Analyst, ["people", id]) => analyst_read(
            api,
            &who,
            param("purpose"),
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
        (Role::Analyst, ["people", id, "network"]) => {
            let chart = match param("format").as_deref() {
                None | Some("json") => None,
                Some("graphml") => Some(Chart::Graphml),
                Some("i2") => Some(Chart::I2),
                Some(_) => return error(400, "format must be json, graphml or i2"),
            };
            let mut limits = NetworkLimits::default();
            if let Some(d) = param("max_depth").and_then(|v| v.parse().ok()) {
                limits.max_depth = d;
            }
            if let Some(p) = param("max_people").and_then(|v| v.parse().ok()) {
                limits.max_people = p;
            }
            analyst_read(
                api,
                &who,
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
                        target: (*id).to_owned(),
                        network_id: n.network_id.clone(),
                        group_based: Some(n.group_based),
                        truncated: Some(n.truncated),
                    };
                    let body = put_chart(&api.backend, &graph, &from, chart)?;
                    Ok((n.people.len() as u64, body))
                },
            )
        }
        (Role::Analyst, ["export"]) => export(
            api,
            &who,
            param("purpose"),
            param("dataset"),
            param("format"),
        ),
        (Role::Auditor, ["lineage"]) => list_page(
            &api.backend.lineage,
            "events",
            param("after"),
            param("limit"),
        ),
        (Role::Auditor, ["lineage", "verify"]) => verify(api, LINEAGE),
        (Role::Auditor, ["lineage", "uploads", upload]) => {
            match api.backend.lineage.entries_by(upload) {
                Ok(entries) if entries.is_empty() => error(404, "no lineage event for that upload"),
                Ok(entries) => respond(200, &json!({ "events": entries })),
                Err(e) => store_failure(&e),
            }
        }
        (Role::Auditor, ["access-log"]) => list_page(
            &api.backend.access_log,
            "entries",
            param("after"),
            param("limit"),
        ),
        (Role::Auditor, ["access-log", "verify"]) => verify(api, ACCESS_LOG),
        (Role::Auditor, ["people", ..] | ["export"] | ["review", ..]) => {
            error(403, "auditors read lineage and the access log, not records")
        }
        (Role::Analyst, ["lineage", ..] | ["access-log", ..]) => {
            error(403, "lineage and the access log are for auditors")
        }
        _ => error(404, "no such route"),
    }
}

/// The most entries one listing returns (and the default): well inside
/// Lambda's 6 MB response limit, which a whole log outgrows.
pub const PAGE_LIMIT: usize = 500;

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
    let backend = api.backend.clone();
    let target = dataset.clone().unwrap_or_else(|| "all".into());
    analyst_read(api, who, purpose, "export", &target, |store, catalog| {
        let plan = query::plan_export(store, catalog, dataset.as_deref())?;
        let tmp = std::env::temp_dir().join(format!(
            "agencylink-export-{}-{}",
            std::process::id(),
            fastrand_suffix()
        ));
        let io =
            |e: std::io::Error| QueryError::Store(StoreError::backend("writing the export", e));
        let rows = {
            let mut out = BufWriter::new(File::create(&tmp).map_err(io)?);
            let mut failed: Option<QueryError> = None;
            if csv {
                // The header is neutralised like every cell (column names
                // come from the schemas).
                let header: Vec<String> = plan
                    .columns
                    .iter()
                    .map(|c| csv_field(&neutralise(c)))
                    .collect();
                writeln!(out, "{}", header.join(",")).map_err(io)?;
            }
            let n = query::export_rows(store, catalog, &plan, &mut |row| {
                let line = if csv {
                    query::csv_record(&plan.columns, &row).map(|cells| {
                        cells
                            .iter()
                            .map(|c| csv_field(c))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                } else {
                    Ok(Value::Object(row).to_string())
                };
                match line.map(|l| writeln!(out, "{l}").map_err(io)) {
                    Ok(Ok(())) => true,
                    Ok(Err(e)) | Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            })?;
            if let Some(e) = failed {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            out.flush().map_err(io)?;
            n
        };
        let key = format!(
            "exports/{}-{}.{}",
            agencylink_aws::now_rfc3339().replace(':', ""),
            fastrand_suffix(),
            if csv { "csv" } else { "ndjson" }
        );
        let stored = File::open(&tmp).map_err(io).and_then(|mut f| {
            backend
                .objects
                .put_from(&key, &mut f, PutMode::Create)
                .map_err(QueryError::Store)
        });
        let _ = std::fs::remove_file(&tmp);
        stored?;
        let url = backend
            .objects
            .presign_get(&key, Duration::from_secs(PRESIGN_SECONDS))
            .map_err(QueryError::Store)?;
        Ok((
            rows,
            json!({
                "key": key,
                "rows": rows,
                "datasets": plan.datasets,
                "url": url,
                "expires_in": PRESIGN_SECONDS,
            }),
        ))
    })
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
                let line: Vec<String> = row.iter().map(|c| csv_field(c)).collect();
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

fn csv_field(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_owned()
    }
}
