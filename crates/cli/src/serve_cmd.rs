//! `agencylink serve` and `agencylink user`: the API over the embedded store,
//! for a partnership that runs on one machine.
//!
//! The routes, their roles, query limits, access-log rule and JSON are
//! `agencylink_http`'s, the same handlers the AWS deployment's API function
//! runs; this module only authenticates (a bearer token of a user in
//! `DATA_DIR/users.json`, see [`agencylink_local::users`]), turns HTTP into
//! the handlers' requests and back, and keeps a signed checkpoint of the
//! access log after every read it logs.

use std::collections::HashMap;
use std::io::Read as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use agencylink_core::audit::{LogSpec, verify_log};
use agencylink_core::ports::{ChainLog, ObjectStore, RecordStore, StoreError};
use agencylink_core::profile::{Edition, Settings};
use agencylink_core::schema::Catalog;
use agencylink_http::router::{self, Call, Caller, Host, LINK_SECONDS, Response};
use agencylink_http::{Op, RoleKind, exports, profiles};
use agencylink_local::users::{User, UserRole, Users};
use agencylink_local::{DirObjectStore, SqliteChainLog, SqliteStore};
use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::checkpoint_cmd::{Copies, LocalCk, after_append};

/// `agencylink serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address and port to listen on. Loopback by default: anything else
    /// carries tokens and data in clear unless a TLS proxy is in front.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Requests handled at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
}

/// `agencylink user …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user of `serve` and print `{"name","role","token"}` once: only
    /// a hash of the token is kept (DATA_DIR/users.json, mode 0600), so a
    /// lost token is replaced by removing and adding the user again.
    Add {
        /// The name, recorded in the access log with every read.
        name: String,
        /// What they may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// An agency uploader's agency id.
        #[arg(long, value_name = "ID")]
        agency: Option<String>,
    },
    /// List the users (names, roles, agencies; never a token).
    List,
    /// Remove a user: their token stops working at once.
    Remove {
        /// The name.
        name: String,
    },
}

/// The roles a local user can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RoleArg {
    /// Reads merged, pseudonymised data; every read is in the access log.
    Analyst,
    /// Reads lineage and the access log.
    Auditor,
    /// An agency's uploader.
    Agency,
}

/// The most a request body may hold (review decisions and job requests
/// are a few hundred bytes).
const MAX_BODY: u64 = 64 * 1024;

pub(crate) fn user_cmd(data_dir: &Path, cmd: UserCommand) -> Result<ExitCode> {
    crate::commands::prepare_data_dir(data_dir)?;
    let mut users = Users::load(data_dir)?;
    match cmd {
        UserCommand::Add { name, role, agency } => {
            let role = match role {
                RoleArg::Analyst => UserRole::Analyst,
                RoleArg::Auditor => UserRole::Auditor,
                RoleArg::Agency => UserRole::Agency,
            };
            let now = crate::commands::now_rfc3339();
            let token = users.add(&name, role, agency.as_deref(), &now)?;
            println!(
                "{}",
                json!({ "name": name, "role": role.name(), "token": token })
            );
            eprintln!(
                "added {name} ({}); the token is shown only now: hand it to them over a private channel",
                role.name()
            );
        }
        UserCommand::List => {
            for u in users.list() {
                println!(
                    "{}",
                    json!({ "name": u.name, "role": u.role.name(), "agency": u.agency, "created": u.created })
                );
            }
        }
        UserCommand::Remove { name } => {
            users.remove(&name)?;
            eprintln!("removed {name}: their token no longer works");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The embedded store as the shared handlers' host. It keeps no
/// write-once copy of the logs: signed checkpoints (taken after every
/// logged read) are what an auditor verifies it against.
struct LocalHost<'c> {
    store: SqliteStore,
    lineage: SqliteChainLog,
    access_log: SqliteChainLog,
    catalog: &'c Catalog,
    checkpoints: LocalCk,
    /// Checkpoints are signed one at a time.
    signing: Mutex<()>,
    /// Exports, charts, export jobs and stored profiles, under the data
    /// directory (`exports/`, `export-requests/`, `profiles/`,
    /// `profile-requests/`), 0600 as every file there.
    objects: DirObjectStore,
    /// The download links handed out, by token.
    links: Mutex<HashMap<String, Link>>,
    /// Profile builds and export jobs run one at a time: each reads the
    /// whole store.
    working: Mutex<()>,
    /// When `exports/` was last swept of expired files.
    swept: Mutex<Option<Instant>>,
}

/// A download link: the object, whose it is, until when.
struct Link {
    key: String,
    actor: String,
    until: Instant,
}

/// Where download links live: `GET /downloads/TOKEN`, with the bearer
/// token of the user it was made for.
const DOWNLOADS: &str = "/downloads/";

/// How long a file under `exports/` is kept, as the AWS deployment's
/// bucket lifecycle rule keeps it.
const EXPORT_DAYS: u64 = 7;

impl Host for LocalHost<'_> {
    fn records(&self) -> &dyn RecordStore {
        &self.store
    }
    fn catalog(&self) -> &Catalog {
        self.catalog
    }
    fn lineage(&self) -> &dyn ChainLog {
        &self.lineage
    }
    fn access_log(&self) -> &dyn ChainLog {
        &self.access_log
    }
    fn now(&self) -> String {
        crate::commands::now_rfc3339()
    }
    fn archive_access(&self, _entry: &Value) -> Result<(), StoreError> {
        Ok(())
    }
    fn verify(&self, spec: LogSpec, entries: &[Value]) -> Result<Value, StoreError> {
        verify_log(spec, entries, &Copies(&self.checkpoints), None, None)
            .map(|v| v.to_json())
            .map_err(|e| StoreError::Backend {
                message: format!("verifying against the checkpoints: {e:#}"),
                source: None,
            })
    }
    fn objects(&self) -> &dyn ObjectStore {
        &self.objects
    }

    /// A link that only `caller`'s own token opens, unlike a presigned URL:
    /// on one machine there is no bucket to sign for, and a link copied to
    /// someone else opens nothing.
    fn link(&self, caller: &Caller, key: &str) -> Result<String, StoreError> {
        self.expire_exports();
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(|e| StoreError::Backend {
            message: format!("OS randomness: {e}"),
            source: None,
        })?;
        let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        links.retain(|_, l| l.until > now);
        links.insert(
            token.clone(),
            Link {
                key: key.to_owned(),
                actor: caller.actor.clone(),
                until: now + Duration::from_secs(LINK_SECONDS),
            },
        );
        Ok(format!("{DOWNLOADS}{token}"))
    }

    /// No worker here: the job runs now, in the request that queued it, so
    /// its 202 is followed by a done status at once.
    fn queued(&self, key: &str) {
        let _one = self.working.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.now();
        let outcome = if key.starts_with(exports::REQUESTS) {
            exports::run(&self.objects, &self.store, self.catalog, key, &now)
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else if key.starts_with(profiles::REQUESTS) {
            self.build_profiles(key, &now)
        } else {
            Err("not a request this host runs".to_owned())
        };
        if let Err(e) = outcome {
            eprintln!("error: the queued work at {key} failed: {e}");
        }
    }

    /// Agency uploads: the two reads, from lineage and the reports
    /// `agencylink ingest` wrote (see [`crate::serve_uploads`]); nothing is
    /// uploaded through the API here.
    fn own(&self, call: &Call<'_>) -> Option<Response> {
        let op = call.route.op;
        if !matches!(op, Op::UploadCreate | Op::UploadList | Op::UploadShow) {
            return None;
        }
        // The route table lets only agency users this far; an agency user
        // always has an agency (`user add` refuses one without).
        let (RoleKind::Agency, Some(agency)) = (call.caller.role, &call.caller.agency) else {
            return Some(Response::error(403, "uploads are for agency uploaders"));
        };
        Some(match op {
            Op::UploadList => crate::serve_uploads::list(
                &self.lineage,
                agency,
                call.query("after"),
                call.query("limit"),
            ),
            Op::UploadShow => {
                crate::serve_uploads::show(&self.lineage, &self.objects, agency, call.id())
            }
            _ => Response::error(
                501,
                "POST /uploads is not served here: on one machine an agency's file is ingested with `agencylink ingest --agency ID --dataset D FILE` by whoever runs this store, not uploaded through the API; GET /uploads lists what was ingested",
            ),
        })
    }
}

impl LocalHost<'_> {
    /// Build both editions a request asks for, as the AWS deployment's
    /// profile function does, then drop the request.
    fn build_profiles(&self, key: &str, now: &str) -> Result<(), String> {
        let req = match profiles::read_request(&self.objects, key) {
            Ok(Some(req)) => req,
            Ok(None) => return Ok(()),
            Err(e) => {
                let _ = self.objects.delete(key);
                return Err(e.to_string());
            }
        };
        let settings = Settings {
            from: req.from.clone(),
            to: req.to.clone(),
            generated_at: now.to_owned(),
            ..Settings::default()
        };
        let built = profiles::build_and_store(
            profiles::Stores {
                objects: &self.objects,
                records: &self.store,
                lineage: &self.lineage,
                archive_lineage: &|_| Ok(()),
            },
            self.catalog,
            &settings,
            &[Edition::Analyst, Edition::Partner],
            "request",
            req.requested_by.as_deref(),
            now,
        );
        // A request that cannot be built is dropped too: it never will be.
        let _ = self.objects.delete(key);
        built.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Remove exports older than [`EXPORT_DAYS`]: at start, then at most
    /// once an hour (a profile's links are made many at a time).
    fn expire_exports(&self) {
        {
            let mut swept = self.swept.lock().unwrap_or_else(PoisonError::into_inner);
            if swept.is_some_and(|t| t.elapsed() < Duration::from_secs(3600)) {
                return;
            }
            *swept = Some(Instant::now());
        }
        let dir = self.objects.root().join("exports");
        let max = Duration::from_secs(EXPORT_DAYS * 24 * 3600);
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(meta) = e.path().symlink_metadata() else {
                    continue;
                };
                if meta.is_dir() {
                    stack.push(e.path());
                } else if meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > max)
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// Stream a download link's file to the user it was made for.
    fn download(
        &self,
        token: &str,
        user: &str,
    ) -> Result<(String, Box<dyn std::io::Read + Send>), Response> {
        let key = {
            let links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
            match links.get(token) {
                Some(l) if l.actor == user && l.until > Instant::now() => l.key.clone(),
                _ => {
                    return Err(Response::error(
                        404,
                        "no such download, or its link has expired",
                    ));
                }
            }
        };
        match self.objects.get(&key) {
            Ok(reader) => Ok((key, reader)),
            Err(StoreError::NotFound(_)) => Err(Response::error(404, "the file is gone")),
            Err(e) => Err(Response::store_failure(&e)),
        }
    }
}

pub(crate) fn serve(catalog: &Catalog, data_dir: &Path, args: &ServeArgs) -> Result<ExitCode> {
    let store = crate::commands::open_existing_store(data_dir)?;
    let users = Users::load(data_dir)?;
    if users.list().is_empty() {
        bail!(
            "no users in {}: add one with `agencylink user add NAME --role analyst|auditor|agency`",
            data_dir.join(agencylink_local::users::USERS_FILE).display()
        );
    }
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "warning: listening on {}, beyond this machine, without TLS: tokens and pseudonymised data cross the network in clear unless a TLS proxy is in front",
            args.listen
        );
    }
    let server = tiny_http::Server::http(args.listen)
        .map_err(|e| anyhow::anyhow!("listening on {}: {e}", args.listen))?;
    let host = LocalHost {
        lineage: store.lineage(),
        access_log: store.access_log(),
        store,
        catalog,
        checkpoints: LocalCk::new(data_dir),
        signing: Mutex::new(()),
        objects: DirObjectStore::new(data_dir),
        links: Mutex::new(HashMap::new()),
        working: Mutex::new(()),
        swept: Mutex::new(None),
    };
    host.expire_exports();
    let addr = server
        .server_addr()
        .to_ip()
        .map_or_else(|| args.listen.to_string(), |a| a.to_string());
    eprintln!(
        "agencylink serve: http://{addr}/ ({} users; every request needs `Authorization: Bearer TOKEN`)",
        users.list().len()
    );
    std::thread::scope(|scope| {
        for _ in 0..args.threads {
            scope.spawn(|| {
                for request in server.incoming_requests() {
                    answer(request, &host, data_dir);
                }
            });
        }
    });
    Ok(ExitCode::SUCCESS)
}

/// What goes back: a JSON answer, or a download's bytes.
enum Reply {
    Json(Response),
    File(String, Box<dyn std::io::Read + Send>),
}

/// Answer one request; a client gone before the answer is not an error.
fn answer(mut request: tiny_http::Request, host: &LocalHost<'_>, data_dir: &Path) {
    let heads = || {
        (
            host.access_log.head().ok().flatten(),
            host.lineage.head().ok().flatten(),
        )
    };
    let before = heads();
    // The workbench's own files hold no data: served to anyone who asks,
    // with a policy that lets the page talk to this server only. Its
    // sign-in is always a pasted token here (users.json's users).
    let path = request.url().split('?').next().unwrap_or_default();
    if *request.method() == tiny_http::Method::Get
        && let Some(page) = agencylink_http::ui::page(path, &agencylink_http::ui::SignIn::Token)
    {
        let mut out = tiny_http::Response::from_data(page.body);
        for (name, value) in &page.headers {
            if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                out.add_header(h);
            }
        }
        send(request, out);
        return;
    }
    let reply = match authenticate(&request, data_dir) {
        Err(refused) => Reply::Json(refused),
        Ok(user) => {
            let download = (*request.method() == tiny_http::Method::Get)
                .then(|| request.url().strip_prefix(DOWNLOADS))
                .flatten()
                .map(str::to_owned);
            match download {
                Some(token) => match host.download(&token, &user.name) {
                    Ok((key, reader)) => Reply::File(key, reader),
                    Err(refused) => Reply::Json(refused),
                },
                None => Reply::Json(respond(&mut request, host, &user)),
            }
        }
    };
    if heads() != before {
        // Sign the logs as they now stand, so a later rewrite of the
        // database shows; the read is logged either way, so a failure here
        // is reported, not turned into a refusal.
        let _one_at_a_time = host.signing.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = after_append(&host.store, &host.checkpoints) {
            eprintln!(
                "error: signing a checkpoint of the logs in {}: {e:#}",
                data_dir.display()
            );
        }
    }
    let mut headers = vec![
        ("Cache-Control", "no-store".to_owned()),
        ("X-Content-Type-Options", "nosniff".to_owned()),
    ];
    let out = match reply {
        Reply::Json(response) => {
            headers.push(("Content-Type", response.content_type.to_owned()));
            if let Some(allow) = &response.allow {
                headers.push(("Allow", allow.clone()));
            }
            if response.status == 401 {
                headers.push(("WWW-Authenticate", "Bearer realm=\"agencylink\"".to_owned()));
            }
            let len = response.body.len();
            tiny_http::Response::new(
                response.status.into(),
                Vec::new(),
                Box::new(std::io::Cursor::new(response.body)) as Box<dyn std::io::Read + Send>,
                Some(len),
                None,
            )
        }
        Reply::File(key, reader) => {
            let name = key.rsplit('/').next().unwrap_or("download").to_owned();
            headers.push(("Content-Type", content_type(&name).to_owned()));
            // Always a download, never a page of this origin: a profile's
            // HTML is opened from disk, not rendered beside the API.
            headers.push((
                "Content-Disposition",
                format!("attachment; filename=\"{name}\""),
            ));
            tiny_http::Response::new(200.into(), Vec::new(), reader, None, None)
        }
    };
    let mut out = out;
    for (name, value) in headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            out.add_header(h);
        }
    }
    send(request, out);
}

/// Answer `request` with `response`, saying the connection closes after
/// it. tiny_http 0.12 keeps each connection on a thread of its own,
/// waiting for its next request, and its thread pool can leave a new
/// connection queued behind threads that wait on idle kept-alive ones:
/// a browser's burst of requests (a workbench view asks for three at
/// once) then waits until the browser drops an idle connection, which
/// was seen as the workbench's audit view not answered in 30 s. Once the
/// client has closed, the connection's thread is free for the next one.
/// tiny_http drops a `Connection` header set on a response, so it is
/// written into the head here, after the status line. A client gone
/// before the answer is not an error.
fn send<R: std::io::Read>(request: tiny_http::Request, response: tiny_http::Response<R>) {
    let version = request.http_version().clone();
    let head_only = *request.method() == tiny_http::Method::Head;
    let headers = request.headers().to_vec();
    let mut out = CloseAfter {
        inner: request.into_writer(),
        status_line_written: false,
    };
    let _ = response
        .raw_print(&mut out, version, &headers, head_only, None)
        .and_then(|()| out.flush());
}

/// A response writer that adds `Connection: close` after the status line.
struct CloseAfter<W> {
    inner: W,
    status_line_written: bool,
}

impl<W: std::io::Write> std::io::Write for CloseAfter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.status_line_written {
            return self.inner.write(buf);
        }
        match buf.iter().position(|&b| b == b'\n') {
            None => self.inner.write(buf),
            Some(end) => {
                self.inner.write_all(&buf[..=end])?;
                self.inner.write_all(b"Connection: close\r\n")?;
                self.status_line_written = true;
                Ok(end + 1)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A download's media type, by its name.
fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("csv") => "text/csv; charset=utf-8",
        Some("ndjson") => "application/x-ndjson",
        Some("json") => "application/json",
        Some("graphml") => "application/graphml+xml",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The user whose bearer token the request carries. The users file is
/// read for every request, so a user removed is locked out at once.
fn authenticate(request: &tiny_http::Request, data_dir: &Path) -> Result<User, Response> {
    let users = Users::load(data_dir).map_err(|e| {
        eprintln!("error: {e}");
        Response::error(500, "the users file could not be read")
    })?;
    let token = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .and_then(|h| h.value.as_str().strip_prefix("Bearer "))
        .map(str::trim);
    token
        .and_then(|t| users.authenticate(t))
        .cloned()
        .ok_or_else(|| {
            Response::error(
                401,
                "send `Authorization: Bearer TOKEN` with a token from `agencylink user add`",
            )
        })
}

fn respond(request: &mut tiny_http::Request, host: &LocalHost<'_>, user: &User) -> Response {
    let caller = Caller {
        actor: user.name.clone(),
        role: match user.role {
            UserRole::Analyst => RoleKind::Analyst,
            UserRole::Auditor => RoleKind::Auditor,
            UserRole::Agency => RoleKind::Agency,
        },
        agency: user.agency.clone(),
    };
    if request.body_length().is_some_and(|n| n as u64 > MAX_BODY) {
        return Response::error(413, "the body is larger than 64 KiB");
    }
    let mut body = Vec::new();
    if request
        .as_reader()
        .take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .is_err()
    {
        return Response::error(400, "the body could not be read");
    }
    if body.len() as u64 > MAX_BODY {
        return Response::error(413, "the body is larger than 64 KiB");
    }
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    // The path as sent, not percent-decoded, as API Gateway hands the
    // Lambda host its raw path: ids are plain ASCII, and an encoded `/`
    // must not become a segment boundary.
    let method = request.method().as_str().to_owned();
    router::handle(
        host,
        &caller,
        &router::Request {
            method: &method,
            path,
            query: &param,
            body: &body,
        },
    )
}
