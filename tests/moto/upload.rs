//! The agency upload flow end to end against moto server: the real
//! `agencylink upload` binary talks HTTP to the real API handler (behind a
//! loopback shim standing in for API Gateway and its JWT authorizer: a
//! bearer token maps to a Cognito user's claims), posts the file to moto
//! with the presigned form the handler signed, and a notifier standing in
//! for S3 → SQS → Lambda hands each new landing object to the real ingest
//! handler as an SQS batch of S3 events. The status route then shows the
//! counts and the rejection report. Skips when AWS_ENDPOINT_URL is unset.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agencylink_aws::AgencyPolicy;
use agencylink_aws::testing::{Moto, moto, rt};
use agencylink_core::schema::Catalog;
use agencylink_fn_api::{Api, UploadConfig};
use agencylink_fn_ingest::Ingestor;
use serde_json::{Value, json};

const S3_EVENT: &str = include_str!("../../functions/ingest/tests/fixtures/s3-object-created.json");
const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Tokens the shim's "authorizer" knows: token → (sub, Cognito groups).
fn users() -> HashMap<&'static str, (&'static str, &'static str)> {
    HashMap::from([
        ("tok-police", ("u-police", "[agency agency-gmp-police]")),
        (
            "tok-council",
            ("u-council", "[agency agency-rochdale-council]"),
        ),
        ("tok-analyst", ("u-analyst", "[analyst]")),
    ])
}

/// An API Gateway HTTP API (payload 2.0) event for one request.
fn gateway_event(method: &str, target: &str, claims: &Value, body: &str) -> String {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params: serde_json::Map<String, Value> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), Value::from(v)))
        .collect();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json", "host": "127.0.0.1"},
        "queryStringParameters": params,
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "127.0.0.1",
            "domainPrefix": "local",
            "authorizer": {"jwt": {"claims": claims, "scopes": []}},
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "agencylink"},
            "requestId": "r", "routeKey": "$default", "stage": "$default",
            "time": "03/Dec/2026:10:00:00 +0000", "timeEpoch": 1796292000000_u64
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

/// One HTTP/1.1 request on `stream`, answered by the API handler.
fn serve_one(api: &Api, mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("request line");
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let mut length = 0usize;
    let mut bearer = None;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).expect("header");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((h, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = v.trim().parse().unwrap_or(0),
            "authorization" => bearer = v.trim().strip_prefix("Bearer ").map(str::to_owned),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    let users = users();
    // API Gateway's JWT authorizer: an unknown token never reaches the function.
    let (status, text) = match bearer.as_deref().and_then(|t| users.get(t)) {
        None => (401, r#"{"message":"Unauthorized"}"#.to_owned()),
        Some((sub, groups)) => {
            let claims = json!({"sub": sub, "cognito:groups": groups, "token_use": "access"});
            let event = gateway_event(&method, &target, &claims, &String::from_utf8_lossy(&body));
            let req = lambda_http::request::from_str(&event).expect("an API Gateway event");
            let resp = agencylink_fn_api::route(api, &req);
            let text = match resp.body() {
                lambda_http::Body::Text(t) => t.clone(),
                lambda_http::Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            };
            (resp.status().as_u16(), text)
        }
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// The API on a loopback port; returns its base URL.
fn start_api(api: Arc<Api>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            serve_one(&api, stream);
        }
    });
    url
}

/// S3 → SQS → Lambda: each new landing object, once, to the ingest handler
/// as an SQS message holding an S3 `ObjectCreated` event.
fn start_notifier(ingestor: Arc<Ingestor>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut seen = BTreeSet::new();
        let bucket = ingestor.backend().settings.landing_bucket.clone();
        while !stop.load(Ordering::SeqCst) {
            let listed = rt().block_on(
                ingestor
                    .backend()
                    .s3()
                    .list_objects_v2()
                    .bucket(&bucket)
                    .prefix("landing/")
                    .send(),
            );
            for obj in listed.map(|l| l.contents().to_vec()).unwrap_or_default() {
                let key = obj.key().unwrap_or_default().to_owned();
                if !seen.insert(key.clone()) {
                    continue;
                }
                // The S3 event as S3 sends it (the ingest tests' fixture).
                let s3 = S3_EVENT
                    .replace("{{bucket}}", &bucket)
                    .replace("{{key}}", &key)
                    .replace("{{size}}", &obj.size().unwrap_or(0).to_string());
                let sqs = json!({"Records": [{
                    "messageId": format!("m-{}", seen.len()), "receiptHandle": "r",
                    "body": s3, "attributes": {}, "messageAttributes": {},
                    "md5OfBody": "", "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:eu-west-2:123456789012:ingest",
                    "awsRegion": "eu-west-2"
                }]});
                let event =
                    lambda_runtime::LambdaEvent::new(sqs, lambda_runtime::Context::default());
                let out = rt()
                    .block_on(agencylink_fn_ingest::handle(ingestor.clone(), event))
                    .expect("the ingest handler");
                assert_eq!(out["batchItemFailures"], json!([]), "{out}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

fn kms_key(m: &Moto) -> String {
    let client = agencylink_aws::sdk::kms::Client::new(&m.sdk);
    rt().block_on(async {
        client
            .create_key()
            .description("landing uploads")
            .send()
            .await
            .expect("KMS CreateKey")
            .key_metadata()
            .map(|k| k.arn().unwrap_or_default().to_owned())
            .expect("a key")
    })
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

fn agencylink(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_agencylink"))
        .args(args)
        .output()
        .expect("run agencylink");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn get(url: &str, token: &str) -> (u16, Value) {
    let resp = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .get(url)
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .expect("GET");
    let status = resp.status().as_u16();
    let text = resp.into_body().read_to_string().expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn an_agency_uploads_through_the_api_and_reads_its_own_result() {
    let Some(m) = moto() else { return };
    let policy = AgencyPolicy::parse(
        r#"{"gmp-police": ["police.cse_crime"], "rochdale-council": ["council.cin_referral"]}"#,
    )
    .expect("policy");
    let backend = m.backend(m.settings("upl", policy.clone()));
    m.put_key_secret(&backend, "k1", KEY_B64);
    let settings = backend.settings.clone();
    let api = Api::new(backend, Catalog::embedded().expect("catalog")).with_uploads(UploadConfig {
        kms_key_id: kms_key(&m),
        max_bytes: 1 << 20,
        expires: Duration::from_secs(900),
    });
    let url = start_api(Arc::new(api));
    let ingest_backend =
        agencylink_aws::AwsBackend::from_sdk_config(settings, &m.sdk, rt().handle().clone());
    let ingestor = Arc::new(Ingestor::new(
        ingest_backend,
        Catalog::embedded().expect("catalog"),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let notifier = start_notifier(ingestor.clone(), stop.clone());

    let dir = std::env::temp_dir().join(agencylink_aws::testing::unique("upl-cli"));
    std::fs::create_dir_all(&dir).expect("dir");
    let token = dir.join("token");
    write_private(&token, "tok-police\n");
    let council_token = dir.join("council-token");
    write_private(&council_token, "tok-council\n");
    // A named file: the name must never reach S3, lineage or the API.
    let csv = dir.join("Jane Doe referrals.csv");
    let synth = Command::new(env!("CARGO_BIN_EXE_agencylink"))
        .args([
            "synth",
            "--dataset",
            "police.cse_crime",
            "--rows",
            "40",
            "--seed",
            "7",
        ])
        .output()
        .expect("synth");
    let mut text = String::from_utf8(synth.stdout).expect("csv");
    std::fs::write(&csv, &text).expect("csv");
    let (token_s, csv_s) = (token.to_str().expect("p"), csv.to_str().expect("p"));
    let base = ["upload", "--api", &url, "--token-file", token_s];

    // 1. A clean file: uploaded, ingested, every row in.
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--dataset", "police.cse_crime", "--wait", "60", csv_s])
        .collect();
    let (code, summary, err) = agencylink(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(summary["status"], "ingested", "{summary}");
    assert_eq!(summary["rows_in"], 40, "{summary}");
    assert_eq!(summary["rows_accepted"], 40);
    assert_eq!(summary["rows_rejected"], 0);
    let first = summary["id"].as_str().expect("id").to_owned();

    // 2. Rows with errors: refused here unless --allow-invalid-rows, then
    //    ingested with the rejected rows in the report.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let borough = header
        .iter()
        .position(|h| *h == "borough")
        .expect("borough");
    let mut cells: Vec<String> = lines[3].split(',').map(str::to_owned).collect();
    cells[borough] = "Boltn".into();
    lines[3] = cells.join(",");
    text = lines.join("\n") + "\n";
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, &text).expect("csv");
    let bad_s = bad.to_str().expect("p");
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--dataset", "police.cse_crime", bad_s])
        .collect();
    let (code, _, err) = agencylink(&args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not sent"), "{err}");
    assert!(
        err.contains("Bolton (E08000001)") || err.contains("Bolton"),
        "{err}"
    );
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain([
            "--dataset",
            "police.cse_crime",
            "--allow-invalid-rows",
            "--wait",
            "60",
            bad_s,
        ])
        .collect();
    let (code, summary, err) = agencylink(&args);
    assert_eq!(code, 1, "rows were rejected: {err}");
    assert_eq!(summary["rows_rejected"], 1, "{summary}");
    assert_eq!(summary["errors_total"], 1, "{summary}");
    let error = &summary["errors"][0];
    assert_eq!(error["field"], "borough");
    assert_eq!(error["row"], 3);
    let second = summary["id"].as_str().expect("id").to_owned();

    // 3. The status routes: the agency's own uploads, newest first, paged.
    let (s, list) = get(&format!("{url}/uploads?limit=1"), "tok-police");
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["uploads"][0]["id"], second.as_str());
    let next = list["next"].as_str().expect("a next page").to_owned();
    let (_, page2) = get(&format!("{url}/uploads?limit=1&after={next}"), "tok-police");
    assert_eq!(page2["uploads"][0]["id"], first.as_str());
    let (s, one) = get(&format!("{url}/uploads/{second}"), "tok-police");
    assert_eq!(s, 200);
    assert_eq!(one["upload"]["result"]["rows_rejected"], 1);
    assert_eq!(one["report"]["errors"][0]["code"], "enum");
    assert!(
        one["report"]["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("\"Boltn\" is not an allowed code"),
        "{one}"
    );
    // Another agency sees none of it, and may not upload police data.
    let (s, other) = get(&format!("{url}/uploads/{second}"), "tok-council");
    assert_eq!(s, 404, "{other}");
    let (_, theirs) = get(&format!("{url}/uploads"), "tok-council");
    assert_eq!(theirs["uploads"], json!([]));
    let council_s = council_token.to_str().expect("p");
    let (code, _, err) = agencylink(&[
        "upload",
        "--api",
        &url,
        "--token-file",
        council_s,
        "--dataset",
        "police.cse_crime",
        csv_s,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("403"), "{err}");
    // An analyst has no uploads; a stranger's token stops at the authorizer.
    assert_eq!(get(&format!("{url}/uploads"), "tok-analyst").0, 403);
    assert_eq!(get(&format!("{url}/uploads"), "tok-nobody").0, 401);

    // Nothing of the file's name anywhere: not in lineage, not in tickets.
    let lineage = serde_json::to_string(
        &agencylink_core::ports::ChainLog::entries(&ingestor.backend().lineage).expect("lineage"),
    )
    .expect("json");
    assert!(!lineage.contains("Jane"), "{lineage}");
    assert!(!list.to_string().contains("Jane"));
    // The landing objects are gone after ingest.
    let left = rt()
        .block_on(
            ingestor
                .backend()
                .s3()
                .list_objects_v2()
                .bucket(&ingestor.backend().settings.landing_bucket)
                .send(),
        )
        .expect("list");
    assert_eq!(left.key_count().unwrap_or(0), 0);

    // http:// to anything but loopback is refused before a token is sent.
    let (code, _, err) = agencylink(&[
        "upload",
        "--api",
        "http://api.example.org",
        "--token-file",
        token_s,
        "--dataset",
        "police.cse_crime",
        csv_s,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("https"), "{err}");

    stop.store(true, Ordering::SeqCst);
    notifier.join().expect("notifier");
    let _ = std::fs::remove_dir_all(&dir);
}
