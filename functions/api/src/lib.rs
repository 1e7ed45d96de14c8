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
//! | `GET /profiles`, `GET /profiles/{id}?purpose=…`, `POST /profiles` | analyst (agency: the partner edition) | the stored problem profiles, their files' download links, and a build on demand (`agencylink_http::profiles`) |
//! | `POST /uploads`, `GET /uploads`, `GET /uploads/{id}` | agency | a presigned upload into the agency's own landing prefix, and its own uploads' status, counts and rejection report ([`uploads`]) |
//! | `GET /openapi.json` | every role | the OpenAPI 3.1 document of all of this |
//! | `GET /me` | every role | who the caller is: `{"actor","role","agency"}` |
//! | `GET /`, `/index.html`, `/favicon.ico`, `/ui/{file}` | nobody needed | the analyst workbench's page, script, style, icon and `/ui/config.json` (how it signs in: [`sign_in_from`]), as `agencylink serve` sends them |
//!
//! The routes, who may call each, their query parameters and limits (a
//! network at most 6 hops and 2,000 people; pages of at most 500 log
//! entries or 100 items, `?after=` the previous page's `next`) are one
//! table, `agencylink_http::ROUTES`, and their handlers are
//! `agencylink_http::router`'s, shared with `agencylink serve`: they refuse
//! a role the table does not list (403) and a query outside its limits
//! (400) before reading anything, and serve the OpenAPI document generated
//! from it (`docs/openapi.json` is the committed copy). Every error is an
//! RFC 9457 problem document (`application/problem+json`). This function
//! adds what only AWS has: the caller from the Cognito token, the WORM
//! copies, presigned S3 links, and agency uploads ([`uploads`]).
//!
//! The role comes only from the Cognito user pool's groups in the verified
//! token (`cognito:groups`, see [`auth`]) and the reader's identity from its
//! `sub`, never from a `custom:` attribute or anything else the caller can
//! write. Agency uploaders reach only `/uploads`; key custodians and
//! operators read nothing here.
//! Every analyst read is written to the access log and to its write-once
//! (WORM) copy, with the stated purpose, before any data is returned; if
//! either cannot be written, nothing is returned.
//!
//! The workbench's files are the one exception to "a verified caller
//! first": they hold no data, and the page must load before anyone can
//! sign in. The template routes only their paths past the JWT authorizer.

use std::sync::Arc;
use std::time::Duration;

use agencylink_aws::AwsBackend;
use agencylink_core::audit::{LogSpec, verify_log};
use agencylink_core::ports::{ChainLog, ObjectStore, RecordStore, StoreError};
use agencylink_core::schema::Catalog;
use agencylink_http::router::{self, Call, Caller, Host, LINK_SECONDS, Response, SYNC_EXPORT_ROWS};
use agencylink_http::ui::{self, ConfigError, OAuth, SignIn};
use agencylink_http::{Op, RoleKind};
use lambda_http::{Body, Request, RequestExt};
use serde_json::Value;

pub mod auth;
pub mod uploads;

pub use auth::{Denied, Principal, Role, principal};
pub use uploads::UploadConfig;

/// The key [`Api::with_sign_in`] presigns (signing needs no network, and
/// the link is dropped unused) to learn the origin of the download links:
/// under `exports/`, in the data bucket with every other linked file.
pub const DOWNLOADS_PROBE_KEY: &str = "exports/origin-probe";

/// What the handler needs, built once per cold start.
#[derive(Debug)]
pub struct Api {
    backend: Arc<AwsBackend>,
    catalog: Arc<Catalog>,
    uploads: Option<UploadConfig>,
    sync_export_rows: u64,
    sign_in: SignIn,
}

/// The environment variables that configure the workbench's sign-in
/// through a Cognito hosted UI (the template sets all three or none).
pub const UI_ENV: [&str; 3] = [
    "AGENCYLINK_UI_AUTH_DOMAIN",
    "AGENCYLINK_UI_CLIENT_ID",
    "AGENCYLINK_UI_REDIRECT_URI",
];

/// How the workbench signs in, from [`UI_ENV`] as `var` reads them: all
/// unset or empty, a pasted token; all set, the hosted UI at the domain
/// (`https://HOST`) with that app client, coming back to the redirect URL
/// (the API's own address, as the app client lists it). Some but not all
/// is a misconfiguration, refused rather than half-working.
pub fn sign_in_from(var: impl Fn(&str) -> Option<String>) -> Result<SignIn, ConfigError> {
    let [domain, client, redirect] = UI_ENV.map(|name| {
        var(name)
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_default()
    });
    if domain.is_empty() && client.is_empty() && redirect.is_empty() {
        return Ok(SignIn::Token);
    }
    OAuth::new(&domain, &client, &redirect).map(SignIn::OAuth)
}

impl Api {
    /// Wire the backend and catalog.
    pub fn new(backend: AwsBackend, catalog: Catalog) -> Self {
        Api {
            backend: Arc::new(backend),
            catalog: Arc::new(catalog),
            uploads: None,
            sync_export_rows: SYNC_EXPORT_ROWS,
            sign_in: SignIn::Token,
        }
    }

    /// The workbench signs in this way ([`sign_in_from`]). With a hosted
    /// UI, the page's policy also lets it fetch this host's download links
    /// (the profile view reads `profile.json` through one, and every saved
    /// file comes through one): their origin is taken from a link made
    /// exactly as [`Host::link`] makes them, for a key that is never
    /// fetched ([`DOWNLOADS_PROBE_KEY`]), so it is the data bucket's own
    /// endpoint however the SDK forms it (virtual-hosted
    /// `https://BUCKET.s3.REGION.amazonaws.com`, or path-style). The
    /// stack's CORS rule on that bucket admits the page's origin only when
    /// the hosted UI is configured, hence only then. Fails when no link can
    /// be made or its origin is not one a policy may name.
    pub fn with_sign_in(mut self, sign_in: SignIn) -> Result<Self, lambda_http::Error> {
        self.sign_in = match sign_in {
            SignIn::OAuth(o) => {
                let link = self.presign(DOWNLOADS_PROBE_KEY)?;
                SignIn::OAuth(o.with_downloads_from(&link)?)
            }
            token => token,
        };
        Ok(self)
    }

    /// A 15-minute presigned GET of `key`: every download link this host
    /// hands out.
    fn presign(&self, key: &str) -> Result<String, StoreError> {
        self.backend
            .objects
            .presign_get(key, Duration::from_secs(LINK_SECONDS))
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

    fn objects(&self) -> &dyn ObjectStore {
        &self.backend.objects
    }

    /// A presigned GET: whoever holds it may fetch the object until it
    /// expires, so it goes out only in a logged read's answer.
    fn link(&self, _caller: &Caller, key: &str) -> Result<String, StoreError> {
        self.presign(key)
    }

    /// The profile function runs it: S3 announces the request object
    /// through EventBridge.
    fn queued(&self, _key: &str) {}

    fn sync_export_rows(&self) -> u64 {
        self.sync_export_rows
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

fn store_failure(e: &StoreError) -> Response {
    Response::store_failure(e)
}

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
    // The path as the client sent it, without an API Gateway stage prefix.
    let path = match req.raw_http_path() {
        "" => req.uri().path(),
        raw => raw,
    }
    .to_owned();
    if req.method() == lambda_http::http::Method::GET
        && let Some(page) = ui::page(&path, &api.sign_in)
    {
        return page_to_lambda(page);
    }
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

/// A workbench file with the headers `agencylink serve` sends too.
fn page_to_lambda(page: ui::Page) -> lambda_http::Response<Body> {
    use lambda_http::http::{HeaderName, HeaderValue};
    let mut resp = lambda_http::Response::new(match String::from_utf8(page.body.into_owned()) {
        Ok(text) => Body::Text(text),
        Err(bytes) => Body::Binary(bytes.into_bytes()),
    });
    let headers = resp.headers_mut();
    for (name, value) in page.headers {
        // From bytes, not `from_static`: the shared names are capitalised.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(n, v);
        }
    }
    resp
}

/// The most entries one lineage or access-log listing returns (and the
/// default): well inside Lambda's 6 MB response limit, which a whole log
/// outgrows.
pub const PAGE_LIMIT: usize = agencylink_http::LOG_PAGE_LIMIT as usize;

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn the_hosted_ui_is_all_three_settings_or_none() {
        assert_eq!(sign_in_from(env(&[])), Ok(SignIn::Token));
        // The template sets each to "" when the stack has no hosted UI.
        let blank: Vec<(&str, &str)> = UI_ENV.iter().map(|n| (*n, "")).collect();
        assert_eq!(sign_in_from(env(&blank)), Ok(SignIn::Token));
        let all = [
            (UI_ENV[0], "https://auth.example.org"),
            (UI_ENV[1], "client1"),
            (UI_ENV[2], "https://api.example.org/"),
        ];
        assert!(matches!(sign_in_from(env(&all)), Ok(SignIn::OAuth(_))));
        for (missing, name) in UI_ENV.iter().enumerate() {
            let some: Vec<(&str, &str)> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != missing)
                .map(|(_, p)| *p)
                .collect();
            assert!(sign_in_from(env(&some)).is_err(), "without {name}");
        }
        assert_eq!(
            sign_in_from(env(&[
                (UI_ENV[0], "https://auth.example.org 'unsafe-inline'"),
                (UI_ENV[1], "client1"),
                (UI_ENV[2], "https://api.example.org/"),
            ])),
            Err(ConfigError::Domain)
        );
    }
}
