//! `agencylink serve` and `agencylink user`: the API over the embedded store,
//! as an analyst's browser or script and an auditor reach it, through the
//! real binary listening on loopback.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agencylink_http::{Method, ROUTES, RoleKind};
use serde_json::Value;

use crate::util::{Scratch, bin, run_in};

pub(crate) const PURPOSE: &str = "Op Kestrel: safeguarding review";

/// A running `agencylink serve`, killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub(crate) fn start(s: &Scratch) -> Server {
        let mut child = Command::new(bin())
            .args([
                "serve",
                "--data-dir",
                "d",
                "--listen",
                "127.0.0.1:0",
                "--threads",
                "2",
            ])
            .current_dir(&s.dir)
            .env_remove("AGENCYLINK_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agencylink serve");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut seen = String::new();
        let base = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => panic!("serve stopped before listening:\n{seen}"),
            };
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.split("agencylink serve: ").nth(1) {
                let url = rest.split_whitespace().next().expect("the address");
                break url.trim_end_matches('/').to_owned();
            }
        };
        let stderr = Arc::new(Mutex::new(seen));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut s = sink.lock().expect("stderr sink");
                s.push_str(&line);
                s.push('\n');
            }
        });
        Server {
            child,
            base,
            stderr,
        }
    }

    /// `METHOD path` with this bearer token (or none): the status, the
    /// headers asked for, and the body as JSON (null when it is not JSON).
    fn call(&self, method: Method, path: &str, token: Option<&str>, body: &str) -> Answer {
        self.fetch(method, path, token, body).0
    }

    /// A download link's bytes, as `token`'s user.
    fn download(&self, link: &Value, token: &str) -> (u16, String) {
        let url = link.as_str().expect("a link");
        assert!(url.starts_with("/downloads/"), "{url}");
        let (answer, text) = self.fetch(Method::Get, url, Some(token), "");
        (answer.status, text)
    }

    fn fetch(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (Answer, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        let resp = match method {
            Method::Get => {
                let mut r = agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            Method::Post => {
                let mut r = agent.post(&url).header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send(body)
            }
        }
        .unwrap_or_else(|e| panic!("{} {url}: {e}", method.as_str()));
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type");
        let authenticate = header("www-authenticate");
        let cache = header("cache-control");
        let text = resp
            .into_body()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .expect("the body");
        let answer = Answer {
            status,
            content_type,
            authenticate,
            cache,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
        };
        (answer, text)
    }

    fn post(&self, path: &str, token: &str, body: &Value) -> Answer {
        self.call(Method::Post, path, Some(token), &body.to_string())
    }

    fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::Get, path, Some(token), "")
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    authenticate: Option<String>,
    cache: Option<String>,
    json: Value,
}

/// A demo store and three users; their tokens as `user add` printed them.
pub(crate) fn store_with_users(name: &str) -> (Scratch, [String; 3]) {
    let s = Scratch::new(name);
    run_in(&s.dir, &["demo", "--data-dir", "d", "--rows", "300"]).expect_code(0);
    let add = |args: &[&str]| {
        let mut all = vec!["user", "add"];
        all.extend_from_slice(args);
        all.extend(["--data-dir", "d"]);
        let out = run_in(&s.dir, &all).expect_code(0).json();
        assert_eq!(out["name"], args[0]);
        out["token"].as_str().expect("a token").to_owned()
    };
    let analyst = add(&["a.analyst", "--role", "analyst"]);
    let auditor = add(&["an.auditor", "--role", "auditor"]);
    let agency = add(&[
        "west-uploader",
        "--role",
        "agency",
        "--agency",
        "west-council",
    ]);
    (s, [analyst, auditor, agency])
}

fn query(path: &str) -> String {
    let purpose: String = PURPOSE
        .bytes()
        .map(|b| match b {
            b' ' => "+".to_owned(),
            b':' => "%3A".to_owned(),
            b => (b as char).to_string(),
        })
        .collect();
    format!("{path}?purpose={purpose}")
}

pub(crate) fn access_log(s: &Scratch) -> Vec<Value> {
    crate::analyst::access_log(s, "d")
}

/// `agencylink ARGS` as the analyst `cli`, whose reads the server's
/// users' are told apart from.
fn cli_read(s: &Scratch, args: &[&str]) -> crate::util::Run {
    let mut all = args.to_vec();
    all.extend(["--data-dir", "d", "--analyst", "cli", "--purpose", PURPOSE]);
    run_in(&s.dir, &all).expect_code(0)
}

/// Every record as NDJSON, as `agencylink export` writes it.
fn cli_export(s: &Scratch) -> String {
    cli_read(s, &["export", "--format", "ndjson"]).stdout
}

/// The first person id in an NDJSON export.
fn first_person(rows: &str) -> String {
    rows.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("NDJSON"))
        .find_map(|r| r["person_id"].as_str().map(str::to_owned))
        .expect("a person")
}

#[test]
fn user_add_keeps_only_a_hash_of_the_token_in_a_private_file() {
    let (s, tokens) = store_with_users("serve-users");
    let file = s.path("d/users.json");
    let mode = std::fs::metadata(&file)
        .expect("users file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the users file is private");
    let text = std::fs::read_to_string(&file).expect("users file");
    for t in &tokens {
        assert!(t.starts_with("alk_") && t.len() > 60);
        assert!(!text.contains(t.as_str()), "no token is stored");
    }
    let listed = run_in(&s.dir, &["user", "list", "--data-dir", "d"]).expect_code(0);
    assert_eq!(listed.stdout.lines().count(), 3);
    assert!(tokens.iter().all(|t| !listed.stdout.contains(t.as_str())));

    // An uploader needs an agency; others must not have one; names are
    // unique and plain.
    for (refused, why) in [
        (&["x", "--role", "agency"][..], "--agency"),
        (
            &["y", "--role", "analyst", "--agency", "west"][..],
            "agency uploaders only",
        ),
        (&["a.analyst", "--role", "auditor"][..], "already a user"),
        (&["bad name", "--role", "auditor"][..], "user name"),
    ] {
        let mut args = vec!["user", "add"];
        args.extend_from_slice(refused);
        args.extend(["--data-dir", "d"]);
        let run = run_in(&s.dir, &args).expect_code(2);
        assert!(run.stderr.contains(why), "{refused:?}: {}", run.stderr);
    }
}

/// Every answer, the page's files, the API's and a refusal, says the
/// connection closes after it. tiny_http keeps an open connection on a
/// thread of its own, and a browser's burst of new connections could
/// queue behind threads held by idle kept-alive ones (the workbench's
/// audit view once waited more than 30 s for its answers).
#[test]
fn every_answer_closes_its_connection() {
    use std::io::{Read, Write};
    let (s, [_, auditor, _]) = store_with_users("serve-close");
    let server = Server::start(&s);
    let addr = server.base.trim_start_matches("http://").to_owned();
    for (path, token, status) in [
        ("/ui/config.json", None, "200"),
        ("/lineage/verify", Some(auditor.as_str()), "200"),
        ("/lineage/verify", None, "401"),
    ] {
        let mut conn = std::net::TcpStream::connect(&addr).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        write!(conn, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n").expect("send");
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).expect("the answer");
            assert!(n > 0, "{path}: closed before the head ended");
            answer.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&answer);
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        let mut lines = head.split("\r\n");
        assert_eq!(
            lines.next(),
            Some(
                format!(
                    "HTTP/1.1 {status} {}",
                    if status == "200" {
                        "OK"
                    } else {
                        "Unauthorized"
                    }
                )
                .as_str()
            ),
            "{path}: {head}"
        );
        assert_eq!(
            lines
                .filter(|l| l.eq_ignore_ascii_case("connection: close"))
                .count(),
            1,
            "{path}: {head}"
        );
    }
}

#[test]
fn serve_refuses_to_start_with_no_users() {
    let s = Scratch::new("serve-nousers");
    run_in(&s.dir, &["demo", "--data-dir", "d", "--rows", "50"]).expect_code(0);
    let run = run_in(
        &s.dir,
        &["serve", "--data-dir", "d", "--listen", "127.0.0.1:0"],
    );
    assert!(run.expect_code(2).stderr.contains("user add"));
}

#[test]
fn serve_answers_as_the_cli_does_and_logs_every_read_before_answering() {
    let (s, [analyst, auditor, agency]) = store_with_users("serve-reads");
    let person = first_person(&cli_export(&s));
    let server = Server::start(&s);

    // No token, a wrong one: 401 with a Bearer challenge, nothing read.
    let before = access_log(&s).len();
    for token in [None, Some("alk_not-a-token")] {
        let a = server.call(Method::Get, &query(&format!("/people/{person}")), token, "");
        assert_eq!(a.status, 401, "{a:?}");
        assert!(
            a.authenticate
                .as_deref()
                .is_some_and(|h| h.starts_with("Bearer"))
        );
        assert_eq!(a.content_type.as_deref(), Some("application/problem+json"));
    }
    assert_eq!(
        access_log(&s).len(),
        before,
        "an unauthenticated call reads nothing"
    );

    // The timeline and the network: the CLI's JSON, logged under the user.
    let timeline = server.get(&query(&format!("/people/{person}")), &analyst);
    assert_eq!(timeline.status, 200, "{timeline:?}");
    assert_eq!(timeline.cache.as_deref(), Some("no-store"));
    let cli = cli_read(&s, &["query", "person", &person]).json();
    assert_eq!(timeline.json, cli);
    let network = server.get(&query(&format!("/people/{person}/network")), &analyst);
    assert_eq!(network.status, 200, "{network:?}");
    assert_eq!(
        network.json["people"]
            .as_array()
            .map(Vec::len)
            .map(|n| n > 0),
        Some(true)
    );

    let log = access_log(&s);
    let mine: Vec<&Value> = log.iter().filter(|e| e["analyst"] == "a.analyst").collect();
    assert_eq!(mine.len(), 2, "both reads are logged: {mine:?}");
    assert_eq!(mine[0]["action"], "query_person");
    assert_eq!(mine[0]["target"], person.as_str());
    assert_eq!(mine[0]["purpose"], PURPOSE);
    assert_eq!(mine[1]["action"], "query_network");

    // The clerical review queue: a page, one pair, and a decision, which
    // is in the access log before it takes effect.
    let queue = server.get(&format!("{}&limit=1", query("/review")), &analyst);
    assert_eq!(queue.status, 200, "{queue:?}");
    assert_eq!(
        queue.json["items"].as_array().map(Vec::len),
        Some(1),
        "{queue:?}"
    );
    assert!(
        queue.json["next"].is_string(),
        "a demo has more than one pair"
    );
    let pair = queue.json["items"][0]["id"]
        .as_str()
        .expect("a pair id")
        .to_owned();
    let shown = server.get(&query(&format!("/review/{pair}")), &analyst);
    assert_eq!(shown.status, 200, "{shown:?}");
    let decided = server.post(
        &format!("/review/{pair}/decision"),
        &analyst,
        &serde_json::json!({
            "decision": "non-match",
            "reason": "different dates of birth on the source records",
            "purpose": PURPOSE,
        }),
    );
    assert_eq!(decided.status, 200, "{decided:?}");
    let decided_list = cli_read(&s, &["review", "list", "--status", "decided"]).stdout;
    assert!(decided_list.contains(&pair), "the decision took effect");
    let log = access_log(&s);
    let actions: Vec<&str> = log
        .iter()
        .filter(|e| e["analyst"] == "a.analyst")
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "query_person",
            "query_network",
            "review_list",
            "review_show",
            "review_decide"
        ]
    );

    // A read with no purpose is refused before anything is read.
    let bare = server.get(&format!("/people/{person}"), &analyst);
    assert_eq!(bare.status, 400, "{bare:?}");
    // An unknown person is a 404 and still a logged search.
    let miss = server.get(&query("/people/p_zzzzzzzz"), &analyst);
    assert_eq!(miss.status, 404, "{miss:?}");
    assert_eq!(access_log(&s).len(), log.len() + 1);

    // The auditor: lineage and the access log, verified, never records.
    assert_eq!(
        server
            .get(&query(&format!("/people/{person}")), &auditor)
            .status,
        403
    );
    let page = server.get("/access-log?limit=2", &auditor);
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.json["entries"].as_array().map(Vec::len), Some(2));
    assert_eq!(page.json["next"], 2);
    for path in ["/access-log/verify", "/lineage/verify"] {
        let v = server.get(path, &auditor);
        assert_eq!(v.status, 200, "{path}: {v:?}");
        assert_eq!(v.json["ok"], true, "{path}: {v:?}");
    }
    // The server signs a checkpoint after every read it logs: the log as
    // it now stands is what the latest checkpoint covers.
    let verified = server.get("/access-log/verify", &auditor).json;
    assert_eq!(
        verified["checkpoint"]["size"],
        access_log(&s).len() as u64,
        "{verified}"
    );
    let lineage = server.get("/lineage?limit=1", &auditor).json;
    let upload = lineage["events"][0]["upload_id"]
        .as_str()
        .expect("an upload id");
    let events = server.get(&format!("/lineage/uploads/{upload}"), &auditor);
    assert_eq!(events.status, 200, "{events:?}");
    assert!(
        events.json["events"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
    );

    // The OpenAPI document is the committed one.
    let doc = server.get("/openapi.json", &agency);
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/openapi.json"
        ))
        .expect("docs/openapi.json"),
    )
    .expect("JSON");
    assert_eq!(doc.json, committed);

    // Asking to upload is the AWS deployment's (here, `agencylink ingest`):
    // a clear 501, not a silent empty answer.
    let uploads = server.post("/uploads", &agency, &serde_json::json!({"dataset": "x"}));
    assert_eq!(uploads.status, 501, "{uploads:?}");

    // A removed user is locked out at once, with the server still running.
    run_in(&s.dir, &["user", "remove", "a.analyst", "--data-dir", "d"]).expect_code(0);
    assert_eq!(
        server
            .get(&query(&format!("/people/{person}")), &analyst)
            .status,
        401
    );

    let printed = server.stderr.lock().expect("stderr").clone();
    for secret in [&analyst, &auditor, &agency] {
        assert!(!printed.contains(secret.as_str()), "a token was printed");
    }
}

#[test]
fn every_route_answers_each_role_as_the_route_table_says() {
    let (s, [analyst, auditor, agency]) = store_with_users("serve-matrix");
    let server = Server::start(&s);
    let before = access_log(&s).len();
    for route in ROUTES {
        for (role, token) in [
            (RoleKind::Analyst, &analyst),
            (RoleKind::Auditor, &auditor),
            (RoleKind::Agency, &agency),
        ] {
            // No purpose and an empty body: an allowed call is refused for
            // its input or served, never for its role.
            let a = server.call(route.method, &route.example_path(), Some(token), "{}");
            let what = format!(
                "{} {} as {}: {a:?}",
                route.method.as_str(),
                route.path,
                role.name()
            );
            if route.allows(role) {
                assert!(![401, 403, 405].contains(&a.status), "{what}");
                assert_ne!(a.json["detail"], "no such route", "{what}");
            } else {
                assert_eq!(a.status, 403, "{what}");
            }
        }
    }
    assert_eq!(
        access_log(&s).len(),
        before,
        "no call without a purpose read anything"
    );
    let wrong = server.call(Method::Post, "/people/x1", Some(&analyst), "{}");
    assert_eq!(wrong.status, 405, "{wrong:?}");
    assert_eq!(server.get("/nowhere", &analyst).status, 404);
}

#[test]
fn exports_charts_jobs_and_profiles_come_as_links_only_their_reader_opens() {
    let (s, [analyst, auditor, agency]) = store_with_users("serve-files");
    let cli_rows = cli_export(&s);
    let person = first_person(&cli_rows);
    let server = Server::start(&s);

    // A flat export: the CLI's rows, behind a link for the analyst alone.
    let before = access_log(&s).len();
    let export = server.get(&format!("{}&format=ndjson", query("/export")), &analyst);
    assert_eq!(export.status, 200, "{export:?}");
    assert_eq!(export.json["rows"], cli_rows.lines().count() as u64);
    assert_eq!(export.json["expires_in"], 900);
    let log = access_log(&s);
    assert_eq!(log.len(), before + 1, "the export is logged");
    assert_eq!(log[before]["action"], "export");
    assert_eq!(log[before]["analyst"], "a.analyst");
    let (status, text) = server.download(&export.json["url"], &analyst);
    assert_eq!(status, 200);
    assert_eq!(text, cli_rows, "the download is the CLI's export");
    // Another user's token opens nothing, nor does a made-up link.
    assert_eq!(server.download(&export.json["url"], &auditor).0, 404);
    assert_eq!(
        server.download(&Value::from("/downloads/00ff"), &analyst).0,
        404
    );
    let file = s.path("d").join(export.json["key"].as_str().expect("key"));
    let mode = std::fs::metadata(&file)
        .expect("the export file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "exports are private to the server's user");

    // A chart of one network, as GraphML that parses.
    let chart = server.get(
        &format!(
            "{}&format=graphml",
            query(&format!("/people/{person}/network"))
        ),
        &analyst,
    );
    assert_eq!(chart.status, 200, "{chart:?}");
    let (status, graphml) = server.download(&chart.json["url"], &analyst);
    assert_eq!(status, 200);
    let doc = roxmltree::Document::parse(&graphml).expect("GraphML parses");
    let nodes = doc.descendants().filter(|n| n.has_tag_name("node")).count();
    assert_eq!(nodes as u64, chart.json["nodes"].as_u64().expect("nodes"));

    // An export job: queued, then done, its link handed only to its analyst.
    let job = server.post(
        "/exports",
        &analyst,
        &serde_json::json!({ "purpose": PURPOSE, "format": "csv" }),
    );
    assert_eq!(job.status, 202, "{job:?}");
    let id = job.json["id"].as_str().expect("a job id");
    let status = server.get(&query(&format!("/exports/{id}")), &analyst);
    assert_eq!(status.json["status"], "done", "{status:?}");
    let (code, csv) = server.download(&status.json["url"], &analyst);
    assert_eq!(code, 200);
    assert_eq!(
        csv.lines().count() as u64,
        status.json["rows"].as_u64().expect("rows") + 1
    );

    // Profiles: built on request (both editions), listed by role, fetched
    // as files behind links; the analyst edition only for analysts.
    let asked = server.post(
        "/profiles",
        &analyst,
        &serde_json::json!({ "purpose": PURPOSE }),
    );
    assert_eq!(asked.status, 202, "{asked:?}");
    let listed = server.get("/profiles", &analyst);
    let editions: Vec<&str> = listed.json["profiles"]
        .as_array()
        .expect("profiles")
        .iter()
        .map(|p| p["edition"].as_str().expect("edition"))
        .collect();
    assert_eq!(editions.len(), 2, "{listed:?}");
    let partner_only = server.get("/profiles", &agency);
    assert_eq!(
        partner_only.json["profiles"].as_array().map(Vec::len),
        Some(1)
    );
    let partner_id = partner_only.json["profiles"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(partner_id.ends_with("_partner"));
    let analyst_id = partner_id.replace("_partner", "_analyst");
    assert_eq!(
        server
            .get(&format!("/profiles/{analyst_id}"), &agency)
            .status,
        403
    );
    let files = server.get(&query(&format!("/profiles/{analyst_id}")), &analyst);
    assert_eq!(files.status, 200, "{files:?}");
    let json_file = files.json["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["name"] == "profile.json")
        .expect("profile.json");
    let (code, profile) = server.download(&json_file["url"], &analyst);
    assert_eq!(code, 200);
    let profile: Value = serde_json::from_str(&profile).expect("profile.json");
    assert_eq!(profile["edition"], "analyst");
    let history = run_in(&s.dir, &["profile", "history", "--data-dir", "d"]).expect_code(0);
    assert!(
        history
            .stdout
            .lines()
            .filter(|l| l.contains("\"trigger\":\"request\""))
            .count()
            == 2,
        "both builds are in lineage: {}",
        history.stdout
    );

    // A withdrawal takes the stored profiles and exports with it.
    drop(server);
    let upload = run_in(&s.dir, &["lineage", "list", "--data-dir", "d"])
        .expect_code(0)
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("u_"))
        .expect("an upload id")
        .to_owned();
    run_in(
        &s.dir,
        &[
            "withdraw",
            &upload,
            "--reason",
            "sent in error",
            "--data-dir",
            "d",
        ],
    )
    .expect_code(0);
    assert!(!s.path("d/profiles").exists() && !s.path("d/exports").exists());
}

/// `agencylink ingest --agency nhs-gm-icb` of `file`: its summary.
fn ingest_icb(s: &Scratch, file: &str, code: i32) -> Value {
    crate::util::ingest_in(
        &s.dir,
        "d",
        "nhs-gm-icb",
        "health.safeguarding_attendance",
        file,
    )
    .expect_code(code)
    .json()
}

/// The ids in a `GET /uploads` answer.
fn ids(answer: &Answer) -> Vec<String> {
    answer.json["uploads"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {answer:?}"))
        .iter()
        .map(|u| u["id"].as_str().expect("an id").to_owned())
        .collect()
}

#[test]
fn an_agency_sees_its_own_uploads_and_rejection_reports_and_no_one_elses() {
    let (s, _) = store_with_users("serve-uploads");
    let add = |name: &str, agency: &str| {
        run_in(
            &s.dir,
            &[
                "user",
                "add",
                name,
                "--role",
                "agency",
                "--agency",
                agency,
                "--data-dir",
                "d",
            ],
        )
        .expect_code(0)
        .json()["token"]
            .as_str()
            .expect("a token")
            .to_owned()
    };
    let icb = add("icb-uploader", "nhs-gm-icb");
    let police = add("police-uploader", "gmp-police");
    // One file with a row whose NHS number and name are wrong on purpose,
    // then a clean one.
    let with_error = crate::validate::synth(&s, "health.safeguarding_attendance", 6, 9, 0.0).0;
    let csv = std::fs::read_to_string(&with_error).expect("read");
    let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
    let mut cells: Vec<String> = lines[2].split(',').map(str::to_owned).collect();
    cells[1] = "NHSRAW77777".into();
    cells[2] = "Quillfeather".into();
    lines[2] = cells.join(",");
    let raw_values: Vec<String> = lines[1..]
        .iter()
        .flat_map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            // record_ref, nhs_number, family_name, given_name, dob, postcode, phone
            [0, 1, 2, 3, 4, 12, 13].map(|i| c[i].to_owned())
        })
        .filter(|v| v.len() >= 5)
        .collect();
    std::fs::write(&with_error, lines.join("\n") + "\n").expect("write");
    let clean = crate::validate::synth(&s, "health.safeguarding_attendance", 4, 10, 0.0).0;

    let server = Server::start(&s);
    let before = ids(&server.get("/uploads", &icb));
    let first = ingest_icb(&s, with_error.to_str().expect("path"), 1);
    assert_eq!(first["rows_rejected"], 1, "{first}");
    let second = ingest_icb(&s, clean.to_str().expect("path"), 0);
    let (first_id, second_id) = (
        first["upload_id"].as_str().expect("id"),
        second["upload_id"].as_str().expect("id"),
    );

    // Newest first, the agency's only, with lineage's counts.
    let listed = server.get("/uploads", &icb);
    assert_eq!(listed.status, 200, "{listed:?}");
    let all = ids(&listed);
    assert_eq!(all.len(), before.len() + 2, "{listed:?}");
    assert_eq!(&all[..2], [second_id, first_id], "{listed:?}");
    assert_eq!(all[2..], before[..]);
    assert_eq!(listed.json["next"], Value::Null);
    for u in listed.json["uploads"].as_array().expect("list") {
        assert_eq!(u["agency"], "nhs-gm-icb", "{u}");
        assert_eq!(u["id"], u["upload_id"], "{u}");
    }
    let with_errors = &listed.json["uploads"][1];
    assert_eq!(with_errors["status"], "ingested", "{with_errors}");
    assert_eq!(with_errors["dataset"], "health.safeguarding_attendance");
    for n in [
        "rows_in",
        "rows_accepted",
        "rows_rejected",
        "records_inserted",
    ] {
        assert_eq!(with_errors["result"][n], first[n], "{n}: {with_errors}");
    }

    // A page at a time: limit=1 and `next` walk the same list.
    let mut walked = Vec::new();
    let mut path = "/uploads?limit=1".to_owned();
    loop {
        let page = server.get(&path, &icb);
        assert_eq!(page.status, 200, "{page:?}");
        let got = ids(&page);
        assert_eq!(got.len(), 1, "{page:?}");
        walked.extend(got);
        match page.json["next"].as_str() {
            Some(next) => path = format!("/uploads?limit=1&after={next}"),
            None => break,
        }
    }
    assert_eq!(walked, all);
    for bad in [
        "/uploads?limit=0",
        "/uploads?limit=101",
        "/uploads?after=../../etc",
    ] {
        assert_eq!(server.get(bad, &icb).status, 400, "{bad}");
    }

    // The report: rows, fields and codes, never the values.
    let shown = server.fetch(Method::Get, &format!("/uploads/{first_id}"), Some(&icb), "");
    assert_eq!(shown.0.status, 200, "{shown:?}");
    let report = &shown.0.json["report"];
    assert_eq!(shown.0.json["upload"]["id"], first_id);
    assert_eq!(report["errors_total"], 1, "{report}");
    assert_eq!(report["errors_truncated"], false, "{report}");
    let error = &report["errors"][0];
    assert_eq!(error["row"], 2, "{error}");
    assert_eq!(error["field"], "nhs_number", "{error}");
    assert_eq!(error["code"], "identifier", "{error}");
    for raw in ["NHSRAW77777", "Quillfeather"]
        .iter()
        .map(|v| v.to_string())
        .chain(raw_values)
    {
        assert!(!shown.1.contains(&raw), "{raw} in {}", shown.1);
    }
    let clean_shown = server.get(&format!("/uploads/{second_id}"), &icb).json;
    assert_eq!(clean_shown["report"]["errors_total"], 0, "{clean_shown}");

    // Another agency's upload is a 404, word for word an unknown one's,
    // and is not in its list.
    let theirs = server.get(&format!("/uploads/{first_id}"), &police);
    let unknown = server.get("/uploads/u_aaaaaaaaaaaaaaaa", &police);
    assert_eq!(theirs.status, 404, "{theirs:?}");
    assert_eq!(theirs.json, unknown.json);
    let police_list = server.get("/uploads", &police);
    assert_eq!(police_list.status, 200, "{police_list:?}");
    let police_ids = ids(&police_list);
    assert!(!police_ids.is_empty(), "the demo's police uploads");
    assert!(
        police_ids.iter().all(|id| !all.contains(id)),
        "{police_list:?}"
    );
    let after_theirs = server.get(&format!("/uploads?after={first_id}"), &police);
    assert_eq!(after_theirs.status, 400, "{after_theirs:?}");

    // Ids that are not an upload id's shape are refused as unknown.
    for bad in [
        "..%2F..%2Fusers.json",
        "u_..",
        "u_AAAAAAAAAAAAAAAA",
        "users.json",
    ] {
        let a = server.get(&format!("/uploads/{bad}"), &icb);
        assert_eq!(a.status, 404, "{bad}: {a:?}");
        assert_eq!(a.json, unknown.json, "{bad}");
    }

    // Withdrawn: said so, and the report went with the upload.
    run_in(
        &s.dir,
        &[
            "withdraw",
            first_id,
            "--reason",
            "sent in error",
            "--data-dir",
            "d",
        ],
    )
    .expect_code(0);
    let gone = server.get(&format!("/uploads/{first_id}"), &icb).json;
    assert_eq!(gone["upload"]["status"], "withdrawn", "{gone}");
    assert_eq!(gone["report"], Value::Null, "{gone}");
    assert_eq!(ids(&server.get("/uploads", &icb)), all);

    // Nothing to upload through: the command to use instead.
    let post = server.post(
        "/uploads",
        &icb,
        &serde_json::json!({"dataset": "health.safeguarding_attendance"}),
    );
    assert_eq!(post.status, 501, "{post:?}");
    let detail = post.json["detail"].as_str().expect("a detail");
    assert!(detail.contains("agencylink ingest"), "{detail}");
    let printed = server.stderr.lock().expect("stderr").clone();
    assert!(!printed.contains("NHSRAW77777"), "{printed}");
}
