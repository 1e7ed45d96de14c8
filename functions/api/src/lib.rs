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
use agencylink_core::audit::{LogSpec, verify_log};
use agencylink_core::ports::{ChainLog, ObjectStoreExt, PutMode, RecordStore, StoreError};
use agencylink_core::query::{self, QueryError};
use agencylink_core::schema::Catalog;
use agencylink_http::Problem;
use agencylink_http::router::{self, Call, Caller, Host, Response};
use agencylink_http::{Op, RoleKind};
use lambda_http::{Body, Request, RequestExt};
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

/// The AWS deployment as the shared handlers' host: DynamoDB's records and
/// logs, the WORM audit bucket's copies, and the routes whose answers are
/// S3 objects behind presigned links or jobs for the profile function.
impl Host for Api {
    fn records(&self) -> &dyn RecordStore {
        &self.backend.records
    }

    fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn lineage(&self) -> &dyn ChainLog {
        &self.backend.lineage
    }

    fn access_log(&self) -> &dyn ChainLog {
        &self.backend.access_log
    }

    fn now(&self) -> String {
        agencylink_aws::now_rfc3339()
    }

    /// The chained log is in a table the stack's own roles can rewrite, so
    /// the WORM copy is what makes a read impossible to hide.
    fn archive_access(&self, entry: &Value) -> Result<(), StoreError> {
        let Some(archive) = self.backend.archive.as_ref() else {
            return Ok(());
        };
        archive.archive("access-log", entry).map(|_| ()).inspect_err(|e| {
            lambda_http::tracing::error!(error = %e, "access-log entry not archived; nothing returned");
        })
    }

    fn verify(&self, spec: LogSpec, entries: &[Value]) -> Result<Value, StoreError> {
        verify_log(spec, entries, &self.backend.audit_copies(), None, None).map(|v| v.to_json())
    }

    fn own(&self, call: &Call<'_>) -> Option<Response> {
        let who = call.caller;
        let body = call.request.body;
        Some(match call.route.op {
            Op::UploadCreate | Op::UploadList | Op::UploadShow => {
                let (RoleKind::Agency, Some(agency)) = (who.role, &who.agency) else {
                    return Some(error(403, "uploads are for agency uploaders"));
                };
                match call.route.op {
                    Op::UploadCreate => uploads::create(self, agency, body),
                    Op::UploadList => {
                        uploads::list(self, agency, call.query("after"), call.query("limit"))
                    }
                    _ => uploads::show(self, agency, call.id()),
                }
            }
            Op::ProfileList => profiles::list(self, who, call.query("after"), call.query("limit")),
            Op::ProfileShow => profiles::fetch(self, who, call.id(), call.query("purpose")),
            Op::ProfileRequest => profiles::request_build(self, who, body),
            Op::PersonNetwork => network_chart(self, call),
            Op::Export => export(
                self,
                who,
                call.query("purpose"),
                call.query("dataset"),
                call.query("format"),
            ),
            Op::ExportJob => export_job(self, who, body),
            Op::ExportStatus => export_status(self, who, call.id(), call.query("purpose")),
            _ => return None,
        })
    }
}

fn respond(status: u16, body: &Value) -> Response {
    Response::json(status, body)
}

fn error(status: u16, message: &str) -> Response {
    Response::error(status, message)
}

fn problem(p: &Problem) -> Response {
    Response::problem(p)
}

fn store_failure(e: &StoreError) -> Response {
    Response::store_failure(e)
}

pub(crate) fn query_failure(e: &QueryError) -> Response {
    Response::query_failure(e)
}

pub(crate) use router::{analyst_read, log_request};

/// Handle one request (all store work runs on a blocking thread).
pub async fn handle(
    api: Arc<Api>,
    req: Request,
) -> Result<lambda_http::Response<Body>, lambda_http::Error> {
    let resp = tokio::task::spawn_blocking(move || route(&api, &req))
        .await
        .unwrap_or_else(|_| to_lambda(&error(500, "the request failed")));
    Ok(resp)
}

/// Route a request (synchronous; off the runtime's worker threads): the
/// caller from the verified token, then `agencylink_http`'s shared
/// handlers.
pub fn route(api: &Api, req: &Request) -> lambda_http::Response<Body> {
    let who = match principal(req) {
        Ok(who) => who,
        Err(denied) => return to_lambda(&error(403, &denied.to_string())),
    };
    let caller = Caller {
        role: who.role.kind(),
        agency: match &who.role {
            Role::Agency { agency } => Some(agency.clone()),
            _ => None,
        },
        actor: who.actor,
    };
    // The path as the client sent it, without an API Gateway stage prefix.
    let path = match req.raw_http_path() {
        "" => req.uri().path(),
        raw => raw,
    }
    .to_owned();
    let params = req.query_string_parameters();
    let query = |k: &str| params.first(k).map(str::to_owned);
    let request = router::Request {
        method: req.method().as_str(),
        path: &path,
        query: &query,
        body: req.body().as_ref(),
    };
    to_lambda(&router::handle(api, &caller, &request))
}

/// The shared handlers' answer as `lambda_http` sends it; never cached.
fn to_lambda(r: &Response) -> lambda_http::Response<Body> {
    use lambda_http::http::{HeaderValue, StatusCode};
    let mut resp = lambda_http::Response::new(Body::from(r.body.clone()));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(r.content_type));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    if let Some(allow) = r
        .allow
        .as_deref()
        .and_then(|a| HeaderValue::from_str(a).ok())
    {
        headers.insert("allow", allow);
    }
    resp
}

/// The most entries one lineage or access-log listing returns (and the
/// default): well inside Lambda's 6 MB response limit, which a whole log
/// outgrows.
pub const PAGE_LIMIT: usize = agencylink_http::LOG_PAGE_LIMIT as usize;

/// `GET /people/{id}/network?format=graphml|i2`: the chart to S3, a
/// short-lived link back.
fn network_chart(api: &Api, call: &Call<'_>) -> Response {
    let chart = match call.query("format").as_deref() {
        Some("i2") => Chart::I2,
        _ => Chart::Graphml,
    };
    let limits = router::network_limits(call);
    let id = call.id();
    analyst_read(
        api,
        call.caller,
        call.query("purpose"),
        "query_network",
        id,
        |store, catalog| {
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

/// Export flat rows to `exports/…` in the data bucket and return a
/// short-lived download link (exports are too large for a response body).
fn export(
    api: &Api,
    who: &Caller,
    purpose: Option<String>,
    dataset: Option<String>,
    format: Option<String>,
) -> Response {
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
fn export_job(api: &Api, who: &Caller, body: &[u8]) -> Response {
    let body: Value = match serde_json::from_slice(body) {
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
fn export_status(api: &Api, who: &Caller, id: &str, purpose: Option<String>) -> Response {
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
    who: &Caller,
    purpose: Option<String>,
    dataset: Option<String>,
    chart: Chart,
) -> Response {
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
