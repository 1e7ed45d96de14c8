//! The analyst workbench in a real browser: headless Chromium (Debian's
//! `chromium`) driven through WebDriver (Debian's `chromedriver`) against
//! `agencylink serve` on loopback. An analyst signs in, builds and opens a
//! profile, follows the tracker to a network, clicks through to a person
//! and runs an export; an auditor verifies lineage and the access log.
//! Screenshots go to tests/artifacts/; the page must log no console error
//! and request nothing from any other host. The AWS deployment's sign-in
//! (Cognito hosted UI, code flow with PKCE) runs against loopback
//! stand-ins: a hosted UI that checks the verifier against the challenge,
//! a pass-through to `serve` that answers `/ui/config.json` and the
//! policy as the Lambda does and points download links into a bucket, and
//! that bucket on a third origin (the page's profile must come from it
//! with no token sent).

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::serve::{PURPOSE, Server, access_log, store_with_users};
use crate::util::run_in;

/// The WebDriver element key (W3C).
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver and one browser session, both ended when dropped.
struct Browser {
    driver: Child,
    url: String,
    agent: ureq::Agent,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.url).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn installed(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Browser {
    fn start(profile_dir: &Path) -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let root = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while agent.get(&format!("{root}/status")).call().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {
                "binary": chromium_binary(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile_dir.display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let mut resp = agent
            .post(&format!("{root}/session"))
            .header("Content-Type", "application/json")
            .send(caps.to_string())
            .expect("new session");
        let answer: Value =
            serde_json::from_str(&resp.body_mut().read_to_string().expect("session"))
                .expect("session JSON");
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_owned();
        Browser {
            driver,
            url: format!("{root}/session/{id}"),
            agent,
        }
    }

    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.url);
        let resp = match body {
            Some(b) => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(b.to_string()),
            None if method == "GET" => self.agent.get(&url).call(),
            None => self.agent.delete(&url).call(),
        };
        let mut resp = resp.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .expect("WebDriver answer");
        let v: Value = serde_json::from_str(&text).expect("WebDriver JSON");
        v["value"].clone()
    }

    fn go(&self, url: &str) {
        self.send("POST", "/url", Some(json!({ "url": url })));
    }

    /// The first element matching `css`, waiting up to 30 s for it.
    fn wait(&self, css: &str) -> String {
        let started = Instant::now();
        let mut last;
        loop {
            let v = self.send(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            );
            if let Some(id) = v[ELEMENT].as_str() {
                return id.to_owned();
            }
            last = v;
            if started.elapsed() > Duration::from_secs(30) {
                let text = self.script("return document.body.innerText");
                panic!(
                    "no {css} after 30 s ({last}); the page says:\n{text}\nconsole: {:?}",
                    self.console()
                );
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn all(&self, css: &str) -> Vec<String> {
        let v = self.send(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
            .collect()
    }

    fn click(&self, element: &str) {
        self.send(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    fn type_in(&self, element: &str, text: &str) {
        self.send(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn text(&self, element: &str) -> String {
        self.send("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn script(&self, js: &str) -> Value {
        self.send(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    /// Console messages at warning level or worse since the last call.
    fn console(&self) -> Vec<String> {
        self.send("POST", "/se/log", Some(json!({"type": "browser"})))
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| matches!(m["level"].as_str(), Some("SEVERE" | "WARNING")))
            .map(|m| m["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn screenshot(&self, name: &str) {
        let png = self.send("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("a screenshot"))
            .expect("base64 PNG");
        assert!(bytes.len() > 10_000, "{name}: a blank screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/artifacts");
        std::fs::create_dir_all(&dir).expect("artifacts dir");
        std::fs::write(dir.join(format!("{name}.png")), bytes).expect("write screenshot");
    }

    /// From the list of profiles, open the analyst edition and wait for
    /// its tracker.
    fn open_analyst_edition(&self) {
        let edition = self
            .all("a.profile-link")
            .into_iter()
            .find(|e| self.text(e).contains("analyst edition"))
            .expect("the analyst edition is listed");
        self.click(&edition);
        self.wait("#table-tracker tbody tr");
    }

    fn sign_in(&self, base: &str, token: &str, purpose: &str) {
        self.go(&format!("{base}/"));
        let field = self.wait("#token");
        self.type_in(&field, token);
        if !purpose.is_empty() {
            self.type_in(&self.wait("#purpose"), purpose);
        }
        self.click(&self.wait("#signin-go"));
        // Signed in once the page says who: until then, a page opened now
        // would be replaced by the role's home when the sign-in lands.
        self.wait("#purpose-line:not([hidden])");
    }
}

fn chromium_binary() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("chromium")
}

/// Whether chromium and chromedriver are here. In CI a missing browser is
/// a failure: the check would silently never run. Elsewhere, say why and
/// skip.
fn browser_here() -> bool {
    if installed("chromedriver") && installed(chromium_binary()) {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set and chromium or chromedriver is missing: run tests/run-all.sh, which installs them"
    );
    eprintln!("SKIPPED: apt-get install -y chromium chromium-driver; set CI to make this fail");
    false
}

#[test]
fn an_analyst_and_an_auditor_use_the_workbench_in_a_browser() {
    if !browser_here() {
        return;
    }
    let (s, [analyst, auditor, _agency]) = store_with_users("workbench");
    let server = Server::start(&s);
    let base = server.base.clone();
    let browser = Browser::start(&s.path("chromium-profile"));

    // Sign in, build a profile, open the analyst edition.
    browser.sign_in(&base, &analyst, PURPOSE);
    browser.click(&browser.wait("#build"));
    browser.wait("a.profile-link");
    // A part a view leaves out is not written as the word "null".
    let page = browser.script("return document.querySelector('main').innerText");
    assert!(
        !page.as_str().unwrap_or_default().contains("null"),
        "{page}"
    );
    browser.open_analyst_edition();
    browser.screenshot("workbench-profile");

    // The tracker leads to a network, drawn as a graph; a person in it
    // leads to their timeline.
    browser.click(&browser.wait("#table-tracker a.network-link"));
    browser.wait("#graph circle.person");
    let people = browser.all("#graph circle.person").len();
    assert!(people >= 2, "a tracked network has people: {people}");
    browser.screenshot("workbench-network");
    let person = browser.all("#graph circle.person")[1].clone();
    browser.click(&person);
    browser.wait("#timeline tbody tr");
    let hash = browser.script("return location.hash");
    assert!(
        hash.as_str().is_some_and(|h| h.starts_with("#/person/p_")),
        "{hash}"
    );
    browser.screenshot("workbench-person");

    // An export, its link handed back once the read is logged.
    browser.go(&format!("{base}/#/export"));
    browser.click(&browser.wait("#export-go"));
    let done = browser.wait("#export-done");
    assert!(
        browser.text(&done).contains("rows"),
        "{}",
        browser.text(&done)
    );

    // Nothing but this server was asked for anything, and nothing went
    // wrong on the page.
    let requested =
        browser.script("return performance.getEntriesByType('resource').map(e => e.name)");
    for url in requested.as_array().expect("resource URLs") {
        let url = url.as_str().unwrap_or_default();
        assert!(url.starts_with(&base), "the page requested {url}");
    }
    assert_eq!(browser.console(), Vec::<String>::new(), "console messages");

    let log = access_log(&s);
    let actions: Vec<&str> = log
        .iter()
        .filter(|e| e["analyst"] == "a.analyst")
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "profile_request",
        "profile_fetch",
        "query_network",
        "query_person",
        "export",
    ] {
        assert!(
            actions.contains(&action),
            "{action} is not in the access log: {actions:?}"
        );
    }
    assert!(
        log.iter()
            .all(|e| e["analyst"] != "a.analyst" || e["purpose"] == PURPOSE)
    );

    // The auditor: lineage and the access log, verified.
    browser.click(&browser.wait("#signout"));
    browser.sign_in(&base, &auditor, "");
    browser.go(&format!("{base}/#/audit"));
    for id in ["#verify-lineage", "#verify-access-log"] {
        let verdict = browser.wait(id);
        let text = browser.text(&verdict);
        assert!(
            text.contains("verified") && !text.contains("NOT"),
            "{id}: {text}"
        );
    }
    browser.wait("table tbody tr");
    browser.screenshot("workbench-audit");
    assert_eq!(browser.console(), Vec::<String>::new(), "console messages");

    // An agency: its own uploads, and one's rejection report. The demo's
    // council uploads reject some rows.
    let out = run_in(
        &s.dir,
        &[
            "user",
            "add",
            "bolton-uploader",
            "--role",
            "agency",
            "--agency",
            "bolton-council",
            "--data-dir",
            "d",
        ],
    )
    .expect_code(0)
    .json();
    let uploader = out["token"].as_str().expect("a token").to_owned();
    browser.click(&browser.wait("#signout"));
    browser.sign_in(&base, &uploader, "");
    browser.go(&format!("{base}/#/uploads"));
    let links = {
        browser.wait("a.upload-link");
        browser.all("a.upload-link")
    };
    assert!(!links.is_empty());
    // The first upload whose report lists rejected rows.
    let mut shown = false;
    for i in 0..links.len() {
        browser.go(&format!("{base}/#/uploads"));
        browser.wait("a.upload-link");
        let link = browser.all("a.upload-link")[i].clone();
        browser.click(&link);
        let report = browser.text(&browser.wait("#upload-report"));
        let status = browser.text(&browser.wait("#upload-status"));
        assert!(status.contains("ingested"), "{status}");
        if report.contains("Rejected rows") {
            assert!(
                report.contains("Field") && report.contains("Rule"),
                "{report}"
            );
            shown = true;
            break;
        }
    }
    assert!(
        shown,
        "no upload of bolton-council showed a rejection report"
    );
    browser.screenshot("workbench-agency-upload");
    assert_eq!(browser.console(), Vec::<String>::new(), "console messages");
}

/// A loopback HTTP server answering from a thread until dropped.
struct Loopback {
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A listener on a free loopback port, and its origin.
fn listen() -> (tiny_http::Server, String) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("a loopback port");
    let origin = format!(
        "http://{}",
        server.server_addr().to_ip().expect("an IP address")
    );
    (server, origin)
}

impl Loopback {
    fn start(
        server: tiny_http::Server,
        answer: impl Fn(tiny_http::Request) + Send + 'static,
    ) -> Loopback {
        let server = Arc::new(server);
        let serving = server.clone();
        let thread = std::thread::spawn(move || {
            for request in serving.incoming_requests() {
                answer(request);
            }
        });
        Loopback {
            server,
            thread: Some(thread),
        }
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(request: tiny_http::Request, status: u16, headers: &[(&str, &str)], body: Vec<u8>) {
    let mut out = tiny_http::Response::from_data(body).with_status_code(status);
    for (name, value) in headers {
        out.add_header(
            tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a header"),
        );
    }
    let _ = request.respond(out);
}

fn query_of(url: &str) -> HashMap<String, String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// What the stand-in hosted UI saw.
#[derive(Default)]
struct Seen {
    /// code -> (code_challenge, state) of each authorize request.
    codes: HashMap<String, (String, String)>,
    /// Token requests whose verifier matched its code's challenge.
    exchanged: usize,
    /// Everything that was not as Cognito requires.
    wrong: Vec<String>,
    /// Sign-out requests (their query).
    logouts: Vec<HashMap<String, String>>,
}

/// A stand-in for a Cognito hosted UI: `/oauth2/authorize` sends the
/// browser straight back with a code (the user "signs in" at once),
/// `/oauth2/token` hands out `id_token` only when
/// BASE64URL(SHA256(code_verifier)) is the challenge the code was issued
/// for, and `/logout` goes back to the page. The ID token it issues is a
/// local user's token, which `serve` accepts as a bearer.
fn hosted_ui(
    listener: tiny_http::Server,
    client_id: &'static str,
    page_origin: String,
    id_token: String,
    seen: Arc<Mutex<Seen>>,
) -> Loopback {
    let redirect = format!("{page_origin}/");
    Loopback::start(listener, move |mut request| {
        let url = request.url().to_owned();
        let path = url.split('?').next().unwrap_or_default().to_owned();
        let q = query_of(&url);
        let mut seen = seen.lock().expect("lock");
        let cors = [
            ("Access-Control-Allow-Origin", page_origin.as_str()),
            ("Content-Type", "application/json"),
        ];
        match path.as_str() {
            "/oauth2/authorize" => {
                let expect = [
                    ("response_type", "code"),
                    ("client_id", client_id),
                    ("redirect_uri", redirect.as_str()),
                    ("scope", "openid"),
                    ("code_challenge_method", "S256"),
                ];
                for (k, v) in expect {
                    if q.get(k).map(String::as_str) != Some(v) {
                        seen.wrong.push(format!("authorize {k}={:?}", q.get(k)));
                    }
                }
                if q.contains_key("code_verifier") {
                    seen.wrong.push("the verifier was sent to authorize".into());
                }
                let challenge = q.get("code_challenge").cloned().unwrap_or_default();
                let state = q.get("state").cloned().unwrap_or_default();
                if challenge.len() != 43 || state.len() < 32 {
                    seen.wrong
                        .push(format!("challenge {challenge:?}, state {state:?}"));
                }
                let code = format!("code{}", seen.codes.len());
                seen.codes.insert(code.clone(), (challenge, state.clone()));
                let back = format!(
                    "{redirect}?{}",
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("code", &code)
                        .append_pair("state", &state)
                        .finish()
                );
                respond(request, 302, &[("Location", &back)], Vec::new());
            }
            "/oauth2/token" if *request.method() == tiny_http::Method::Post => {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
                    .into_owned()
                    .collect();
                let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
                let issued = seen.codes.remove(field("code"));
                let digest = sha2::Sha256::digest(field("code_verifier").as_bytes());
                let derived = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
                let ok = field("grant_type") == "authorization_code"
                    && field("client_id") == client_id
                    && field("redirect_uri") == redirect
                    && issued.is_some_and(|(challenge, _)| challenge == derived);
                if ok {
                    seen.exchanged += 1;
                    let tokens = json!({
                        "id_token": id_token,
                        "access_token": "not-for-the-api",
                        "refresh_token": "never-used",
                        "token_type": "Bearer",
                        "expires_in": 3600,
                    });
                    respond(request, 200, &cors, tokens.to_string().into_bytes());
                } else {
                    seen.wrong.push(format!("token request {body}"));
                    respond(
                        request,
                        400,
                        &cors,
                        br#"{"error":"invalid_grant"}"#.to_vec(),
                    );
                }
            }
            "/logout" => {
                seen.logouts.push(q.clone());
                let back = q.get("logout_uri").cloned().unwrap_or_default();
                respond(request, 302, &[("Location", &back)], Vec::new());
            }
            _ => {
                seen.wrong.push(format!("asked for {url}"));
                respond(request, 404, &[], Vec::new());
            }
        }
    })
}

/// `serve` as the AWS host would present it with a hosted UI configured:
/// every request passed through, but `/ui/config.json` says `oauth`, the
/// policy adds the hosted UI's origin and the bucket's to `connect-src`,
/// as the Lambda does (its own tests hold it to that), and download links
/// in JSON answers point into the bucket stand-in (`bucket`), as presigned
/// S3 links do. Test-only: `serve` has no such setting, so the product
/// gains no way to point its page elsewhere.
fn as_aws_host(
    listener: tiny_http::Server,
    serve: String,
    config: Value,
    idp_origin: &str,
    bucket: &str,
) -> Loopback {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let csp = agencylink_http::ui::CSP.replacen(
        "connect-src 'self'",
        &format!("connect-src 'self' {idp_origin} {bucket}"),
        1,
    );
    let linked = format!("\"{bucket}/downloads/");
    Loopback::start(listener, move |mut request| {
        let url = request.url().to_owned();
        if url == agencylink_http::ui::CONFIG {
            let page = agencylink_http::ui::page(url.as_str(), &Default::default())
                .expect("the config path");
            let mut headers: Vec<(&str, &str)> = page
                .headers
                .iter()
                .map(|(n, v)| (*n, v.as_str()))
                .filter(|(n, _)| *n != "Content-Security-Policy")
                .collect();
            headers.push(("Content-Security-Policy", &csp));
            return respond(request, 200, &headers, config.to_string().into_bytes());
        }
        let mut builder = ureq::http::Request::builder()
            .method(request.method().as_str())
            .uri(format!("{serve}{url}"));
        for h in request.headers() {
            if h.field.equiv("Authorization") || h.field.equiv("Content-Type") {
                builder = builder.header(h.field.as_str().as_str(), h.value.as_str());
            }
        }
        let mut body = Vec::new();
        let _ = request.as_reader().read_to_end(&mut body);
        let answer = if body.is_empty() {
            agent.run(builder.body(()).expect("a request"))
        } else {
            agent.run(builder.body(body).expect("a request"))
        };
        let Ok(mut answer) = answer else {
            return respond(request, 502, &[], Vec::new());
        };
        let status = answer.status().as_u16();
        let headers: Vec<(String, String)> = answer
            .headers()
            .iter()
            .filter(|(n, _)| {
                !matches!(
                    n.as_str(),
                    "content-length" | "transfer-encoding" | "connection" | "date" | "server"
                )
            })
            .map(|(n, v)| {
                let v = v.to_str().unwrap_or_default();
                let v = if n.as_str() == "content-security-policy" {
                    csp.clone()
                } else {
                    v.to_owned()
                };
                (n.as_str().to_owned(), v)
            })
            .collect();
        let mut bytes = answer
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap_or_default();
        if headers
            .iter()
            .any(|(n, v)| n == "content-type" && v.starts_with("application/json"))
        {
            bytes = String::from_utf8_lossy(&bytes)
                .replace("\"/downloads/", &linked)
                .into_bytes();
        }
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        respond(request, status, &headers, bytes);
    })
}

/// One request the bucket stand-in answered: its method, and whether it
/// carried an `Authorization` header or a cookie, and its `Origin`.
#[derive(Debug)]
struct Fetched {
    method: String,
    authorization: bool,
    cookie: bool,
    origin: Option<String>,
}

/// A stand-in for the data bucket behind presigned links: it answers
/// `GET /downloads/TOKEN` with `serve`'s file (fetched with `bearer`, the
/// stand-in's own grant, as a presigned link's signature is), and, like
/// the stack's CORS rule, names `page` in `Access-Control-Allow-Origin`
/// only when the request comes from it. A preflight (the page would need
/// one only if it added a header) is refused, as the rule allows no
/// request headers.
fn bucket(
    listener: tiny_http::Server,
    serve: String,
    page: String,
    bearer: String,
    fetched: Arc<Mutex<Vec<Fetched>>>,
) -> Loopback {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    Loopback::start(listener, move |request| {
        let header = |name: &str| {
            request
                .headers()
                .iter()
                .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                .map(|h| h.value.as_str().to_owned())
        };
        let origin = header("Origin");
        fetched.lock().expect("lock").push(Fetched {
            method: request.method().as_str().to_owned(),
            authorization: header("Authorization").is_some(),
            cookie: header("Cookie").is_some(),
            origin: origin.clone(),
        });
        let url = request.url().to_owned();
        if request.method() != &tiny_http::Method::Get || !url.starts_with("/downloads/") {
            return respond(request, 403, &[], Vec::new());
        }
        let Ok(mut answer) = agent
            .get(format!("{serve}{url}"))
            .header("Authorization", format!("Bearer {bearer}"))
            .call()
        else {
            return respond(request, 502, &[], Vec::new());
        };
        let status = answer.status().as_u16();
        let bytes = answer
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap_or_default();
        let mut headers = vec![("Content-Type", "application/octet-stream")];
        if origin.as_deref() == Some(page.as_str()) {
            headers.push(("Access-Control-Allow-Origin", page.as_str()));
            headers.push(("Vary", "Origin"));
        }
        respond(request, status, &headers, bytes);
    })
}

/// The AWS deployment's sign-in, in a real browser against stand-ins: the
/// page learns from `/ui/config.json` to use a hosted UI, sends a S256
/// challenge and a state, exchanges the code with the verifier (the
/// stand-in refuses anything else), keeps the ID token in sessionStorage
/// only, takes the code out of the address, refuses an answer whose state
/// is not its own, returns to sign-in with a message on a 401, and signs
/// out through the hosted UI's sign-out.
#[test]
fn the_workbench_signs_in_through_a_hosted_ui_with_pkce() {
    if !browser_here() {
        return;
    }
    const CLIENT: &str = "4workbench0client";
    let (s, [analyst, _auditor, _agency]) = store_with_users("workbench-pkce");
    let server = Server::start(&s);
    let seen = Arc::new(Mutex::new(Seen::default()));
    // Each needs the other's origin: all listen before any answers.
    let (idp_listener, page_listener, bucket_listener) = (listen(), listen(), listen());
    let (idp_origin, page) = (idp_listener.1.clone(), page_listener.1.clone());
    let bucket_origin = bucket_listener.1.clone();
    let fetched = Arc::new(Mutex::new(Vec::new()));
    let _bucket = bucket(
        bucket_listener.0,
        server.base.clone(),
        page.clone(),
        analyst.clone(),
        fetched.clone(),
    );
    let redirect = format!("{page}/");
    let _idp = hosted_ui(
        idp_listener.0,
        CLIENT,
        page.clone(),
        analyst.clone(),
        seen.clone(),
    );
    let config = json!({
        "sign_in": "oauth",
        "authorize": format!("{idp_origin}/oauth2/authorize"),
        "token": format!("{idp_origin}/oauth2/token"),
        "logout": format!("{idp_origin}/logout"),
        "client_id": CLIENT,
        "redirect_uri": redirect,
        "scope": "openid",
    });
    let _host = as_aws_host(
        page_listener.0,
        server.base.clone(),
        config,
        &idp_origin,
        &bucket_origin,
    );
    let browser = Browser::start(&s.path("chromium-profile"));

    // Sign in: the purpose first, then to the hosted UI and back.
    browser.go(&redirect);
    browser.type_in(&browser.wait("#purpose"), PURPOSE);
    assert!(browser.all("#token").is_empty(), "no token field on oauth");
    browser.click(&browser.wait("#signin-go"));
    browser.wait("#build");
    {
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.wrong, Vec::<String>::new());
        assert_eq!(seen.exchanged, 1, "one code exchanged with its verifier");
    }
    let state = browser.script(
        "return { search: location.search, local: localStorage.length, \
         token: sessionStorage.getItem('token'), purpose: sessionStorage.getItem('purpose'), \
         left: Object.keys(sessionStorage).filter(k => k.startsWith('oauth_')) }",
    );
    assert_eq!(state["search"], "", "the code is out of the address");
    assert_eq!(state["local"], 0, "nothing in localStorage");
    assert_eq!(
        state["token"],
        analyst.as_str(),
        "the ID token is the bearer"
    );
    assert_eq!(state["purpose"], PURPOSE);
    assert_eq!(state["left"], json!([]), "verifier and state dropped");
    browser.screenshot("workbench-pkce-signed-in");

    // A read goes to the API with that token, and is logged with the
    // purpose asked before leaving for the hosted UI.
    browser.click(&browser.wait("#build"));
    browser.wait("a.profile-link");
    assert!(
        access_log(&s)
            .iter()
            .any(|e| e["analyst"] == "a.analyst" && e["purpose"] == PURPOSE)
    );

    // The profile view reads profile.json through a link into the bucket
    // (another origin, which the policy names and which names the page):
    // fetched with no token and no cookie, and with no preflight.
    browser.open_analyst_edition();
    {
        let fetched = fetched.lock().expect("lock");
        assert!(!fetched.is_empty(), "the profile came from the bucket");
        for f in fetched.iter() {
            assert_eq!(f.method, "GET", "{f:?}");
            assert!(!f.authorization && !f.cookie, "{f:?}");
            assert_eq!(f.origin.as_deref(), Some(page.as_str()), "{f:?}");
        }
    }

    // Only this page's host, the hosted UI's token endpoint and the
    // bucket's links were asked for anything.
    let requested =
        browser.script("return performance.getEntriesByType('resource').map(e => e.name)");
    for url in requested.as_array().expect("resource URLs") {
        let url = url.as_str().unwrap_or_default();
        assert!(
            url.starts_with(&format!("{page}/"))
                || url == format!("{idp_origin}/oauth2/token")
                || url.starts_with(&format!("{bucket_origin}/downloads/")),
            "the page requested {url}"
        );
    }

    // An answer this tab did not ask for (a code planted through a link)
    // is refused before any token request.
    browser.script(
        "sessionStorage.clear(); sessionStorage.setItem('oauth_state', 'this-tab'); \
         sessionStorage.setItem('oauth_verifier', 'v'); return null",
    );
    browser.go(&format!("{page}/?code=code0&state=not-this-tab"));
    let alert = browser.wait("#signin p.error");
    assert!(
        browser.text(&alert).contains("not for this tab"),
        "{}",
        browser.text(&alert)
    );
    assert_eq!(browser.script("return location.search"), "");
    assert_eq!(seen.lock().expect("lock").exchanged, 1);

    // An expired token: back to sign-in, saying why.
    browser.script(
        "sessionStorage.setItem('token', 'expired'); sessionStorage.setItem('role', 'analyst'); return null",
    );
    // (Another path than the page's now: a new load, not a hash change.)
    browser.go(&format!("{page}/index.html#/profiles"));
    let alert = browser.wait("#signin p.error");
    assert!(
        browser.text(&alert).contains("session has ended"),
        "{}",
        browser.text(&alert)
    );
    assert_eq!(browser.script("return sessionStorage.length"), 0);
    let refused = browser.console();
    assert!(
        refused.len() == 1 && refused[0].contains("401"),
        "only the refused read: {refused:?}"
    );

    // Sign in again, then out: through the hosted UI's sign-out, back to a
    // page holding nothing.
    browser.click(&browser.wait("#signin-go"));
    browser.wait("#build");
    browser.click(&browser.wait("#signout"));
    browser.wait("#signin-go");
    assert_eq!(browser.script("return sessionStorage.length"), 0);
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.exchanged, 2);
    assert_eq!(seen.logouts.len(), 1);
    assert_eq!(
        seen.logouts[0].get("client_id").map(String::as_str),
        Some(CLIENT)
    );
    assert_eq!(
        seen.logouts[0].get("logout_uri").map(String::as_str),
        Some(redirect.as_str())
    );
    assert_eq!(seen.wrong, Vec::<String>::new());
    drop(seen);
    assert_eq!(browser.console(), Vec::<String>::new(), "console messages");
}
