//! The API handler with fixture requests against moto server: each role's
//! reads, each denial, and the access log. Skips only when AWS_ENDPOINT_URL
//! is unset; fails when it is set and unreachable.

mod support;

use std::sync::Arc;

use agencylink_aws::testing::{Moto, moto};
use agencylink_aws::{AgencyPolicy, AwsBackend, pipeline};
use agencylink_core::ports::{ChainLog, ObjectStore, ObjectStoreExt, PutMode, RecordStore};
use agencylink_core::pseudo::{Key, Pseudonymiser};
use agencylink_core::schema::Catalog;
use agencylink_fn_api::Api;
use agencylink_synth::{SynthOptions, write_csv};
use serde_json::json;
use support::{anonymous, call, call_raw, http_api, http_api_claims, rest_api, token_claims};

const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A backend with two datasets ingested (the same synthetic people).
fn seeded(m: &Moto, name: &str) -> Arc<Api> {
    let backend = seeded_backend(m, name);
    let catalog = Catalog::embedded().expect("catalog");
    Arc::new(Api::new(backend, catalog))
}

fn seeded_backend(m: &Moto, name: &str) -> AwsBackend {
    seeded_with(m, m.settings(name, AgencyPolicy::default()))
}

fn seeded_with(m: &Moto, settings: agencylink_aws::AwsSettings) -> AwsBackend {
    let backend: AwsBackend = m.backend(settings);
    let catalog = Catalog::embedded().expect("catalog");
    let pseudo = Pseudonymiser::new(Key::from_base64("k1", KEY_B64).expect("key"));
    for (agency, dataset) in [
        ("gmp-police", "police.cse_crime"),
        ("gmp-police", "police.cse_intelligence"),
    ] {
        let ds = catalog.get(dataset).expect("dataset");
        let mut csv = Vec::new();
        write_csv(ds, &SynthOptions::new(42, 150), &mut csv, None).expect("synth");
        let key = format!("landing/{agency}/{dataset}/extract.csv");
        backend
            .objects
            .put(&key, &csv, PutMode::Overwrite)
            .expect("land");
        pipeline::ingest_landing(
            &backend,
            &pseudo,
            ds,
            agency,
            &key,
            "2026-03-02T09:00:00Z",
            &std::env::temp_dir(),
        )
        .expect("ingest");
    }
    backend
}

/// A person with records, and one with link-sharing neighbours when there is one.
fn some_person(api: &Api) -> String {
    let mut best: Option<(usize, String)> = None;
    api.backend()
        .records
        .scan_dataset("police.cse_crime", None, None, &mut |r| {
            let n = r.links.len();
            if best.as_ref().is_none_or(|(b, _)| n > *b) {
                best = Some((n, r.person_id.clone()));
            }
            true
        })
        .expect("scan");
    best.expect("a record").1
}

#[test]
fn roles_come_from_the_authorizer_and_each_denial_holds() {
    let Some(m) = moto() else { return };
    let api = seeded(&m, "api-deny");
    let person = some_person(&api);
    let purpose = [("purpose", "Op Aurora strategic profile")];
    let people = format!("/people/{person}");
    // No role, or a role we do not know: nothing.
    for role in ["", "agency", "admin"] {
        let (s, _) = call(&api, http_api("GET", &people, &purpose, role, "u-1"));
        assert_eq!(s, 403, "role {role:?}");
    }
    // Auditors never read records.
    for path in [people.as_str(), "/export", &format!("{people}/network")] {
        let (s, body) = call(&api, http_api("GET", path, &purpose, "auditor", "aud-1"));
        assert_eq!(s, 403, "{path}: {body}");
    }
    // Analysts never read lineage or the access log.
    for path in [
        "/lineage",
        "/lineage/verify",
        "/access-log",
        "/access-log/verify",
    ] {
        let (s, _) = call(&api, http_api("GET", path, &[], "analyst", "an-1"));
        assert_eq!(s, 403, "{path}");
    }
    // Reads only.
    let (s, _) = call(&api, http_api("POST", &people, &purpose, "analyst", "an-1"));
    assert_eq!(s, 405);
    // An analyst read without a purpose is refused before anything is read.
    let (s, body) = call(&api, http_api("GET", &people, &[], "analyst", "an-1"));
    assert_eq!(s, 400, "{body}");
    assert!(body["detail"].as_str().unwrap_or("").contains("purpose"));
    assert_eq!(
        (body["type"].as_str(), body["status"].as_u64()),
        (Some("about:blank"), Some(400))
    );
    assert!(
        api.backend().access_log.entries().expect("log").is_empty(),
        "refused reads are not data reads"
    );
}

#[test]
fn analyst_reads_are_answered_and_logged_with_their_purpose() {
    let Some(m) = moto() else { return };
    let api = seeded(&m, "api-analyst");
    let person = some_person(&api);
    let purpose = [("purpose", "Op Aurora strategic profile")];

    let (s, t) = call(
        &api,
        http_api(
            "GET",
            &format!("/people/{person}"),
            &purpose,
            "analyst",
            "an-7",
        ),
    );
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["person_id"], person.as_str());
    assert!(!t["timeline"].as_array().expect("rows").is_empty());

    let (s, n) = call(
        &api,
        http_api(
            "GET",
            &format!("/people/{person}/network"),
            &[("purpose", "Op Aurora"), ("max_depth", "2")],
            "analyst",
            "an-7",
        ),
    );
    assert_eq!(s, 200, "{n}");
    assert_eq!(n["person_id"], person.as_str());
    assert_eq!(n["limits"]["max_depth"], 2);

    let (s, e) = call(
        &api,
        http_api(
            "GET",
            "/export",
            &[
                ("purpose", "i2 chart for Op Aurora"),
                ("dataset", "police.cse_crime"),
            ],
            "analyst",
            "an-7",
        ),
    );
    assert_eq!(s, 200, "{e}");
    let key = e["key"].as_str().expect("export key");
    assert!(key.starts_with("exports/") && key.ends_with(".csv"));
    assert!(e["url"].as_str().expect("url").contains("X-Amz-Signature"));
    let csv = api.backend().objects.get_bytes(key).expect("export object");
    let lines = csv.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
    assert_eq!(
        lines as u64,
        e["rows"].as_u64().expect("rows") + 1,
        "header + rows"
    );

    let (s, _) = call(
        &api,
        http_api("GET", "/people/p_notaperson", &purpose, "analyst", "an-7"),
    );
    assert_eq!(s, 404, "an unknown person");
    let (s, body) = call(
        &api,
        http_api("GET", "/people/Jane Smith", &purpose, "analyst", "an-7"),
    );
    assert_eq!(s, 400);
    assert!(
        !body.to_string().contains("Jane"),
        "the input is not echoed"
    );

    // Every answered read is in the access log, in order, with its purpose.
    let log = api.backend().access_log.entries().expect("log");
    let actions: Vec<&str> = log.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        ["query_person", "query_network", "export", "query_person"],
        "a search that finds nobody is logged; a malformed id read nothing"
    );
    assert_eq!(log[3]["rows_returned"], 0);
    assert!(log.iter().all(|e| e["analyst"] == "an-7"));
    assert_eq!(log[0]["purpose"], "Op Aurora strategic profile");
    assert_eq!(log[2]["target"], "police.cse_crime");
    assert_eq!(
        api.backend()
            .access_log
            .entries_by("an-7")
            .expect("by analyst")
            .len(),
        4
    );

    // The auditor sees the log, verified, through a REST API and a Lambda authorizer too.
    let (s, body) = call(&api, rest_api("/access-log/verify", "auditor", "aud-1"));
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"ok": true, "entries": 4, "checkpoint": null})
    );
}

#[test]
fn auditors_read_and_verify_lineage() {
    let Some(m) = moto() else { return };
    let api = seeded(&m, "api-auditor");
    let (s, body) = call(&api, http_api("GET", "/lineage", &[], "auditor", "aud-1"));
    assert_eq!(s, 200);
    let events = body["events"].as_array().expect("events");
    // Two uploads, each announced (ingest_started) before it merged.
    assert_eq!(events.len(), 4);
    assert_eq!(body["next"], serde_json::Value::Null, "one page holds all");
    // A page at a time: one event, then the next from where it ended.
    let page = |after: &str, limit: &str| {
        call(
            &api,
            http_api(
                "GET",
                "/lineage",
                &[("after", after), ("limit", limit)],
                "auditor",
                "aud-1",
            ),
        )
    };
    let (s, first) = page("0", "1");
    assert_eq!(
        (
            s,
            first["events"][0]["seq"].as_u64(),
            first["next"].as_u64()
        ),
        (200, Some(1), Some(1)),
        "{first}"
    );
    let (s, second) = page("1", "1");
    assert_eq!(
        (s, second["events"][0]["seq"].as_u64()),
        (200, Some(2)),
        "{second}"
    );
    let (_, past) = page("4", "1");
    assert_eq!(past["events"], serde_json::json!([]));
    assert_eq!(past["next"], serde_json::Value::Null);
    for (after, limit) in [("x", "1"), ("0", "0"), ("0", "100000"), ("-1", "1")] {
        assert_eq!(page(after, limit).0, 400, "after={after} limit={limit}");
    }
    let upload = events[3]["upload_id"].as_str().expect("upload");
    let (s, one) = call(
        &api,
        http_api(
            "GET",
            &format!("/lineage/uploads/{upload}"),
            &[],
            "auditor",
            "aud-1",
        ),
    );
    assert_eq!(s, 200);
    assert_eq!(one["events"][0]["seq"], 3, "{one}");
    assert_eq!(one["events"][0]["type"], "ingest_started");
    assert_eq!(one["events"][1]["seq"], 4);
    let (s, _) = call(
        &api,
        http_api("GET", "/lineage/uploads/u_nothing", &[], "auditor", "aud-1"),
    );
    assert_eq!(s, 404);
    let (s, v) = call(
        &api,
        http_api("GET", "/lineage/verify", &[], "auditor", "aud-1"),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["ok"].as_bool(), v["events"].as_u64()),
        (Some(true), Some(4)),
        "{v}"
    );
    // No checkpoint key in this deployment: no checkpoint, and it says so.
    assert_eq!(v["checkpoint"], serde_json::Value::Null);
    assert!(v.get("reconciled").is_none(), "the CLI's check: {v}");
    assert!(
        api.backend().access_log.entries().expect("log").is_empty(),
        "auditor reads are not analyst reads"
    );
    assert!(api.backend().records.datasets().expect("datasets").len() == 2);
}

/// A review item for two records of the store, as the linkage stage writes
/// one (the pair's people are two different store people).
fn queue_item(api: &Api) -> agencylink_core::linkage::ReviewItem {
    let mut recs = Vec::new();
    api.backend()
        .records
        .scan_dataset("police.cse_crime", None, None, &mut |r| {
            if recs
                .iter()
                .all(|x: &agencylink_core::ports::StoredRecord| x.person_id != r.person_id)
            {
                recs.push(r);
            }
            recs.len() < 2
        })
        .expect("scan");
    let (a, b) = (
        agencylink_core::conformance::sample_signature("smith", "kate", "2010-03-07"),
        agencylink_core::conformance::sample_signature("smith", "katherine", "2010-07-03"),
    );
    let mut item = agencylink_core::conformance::sample_review(&a, &b, 0.8);
    item.people = [recs[0].person_id.clone(), recs[1].person_id.clone()];
    item.records = [recs[0].record_id.clone(), recs[1].record_id.clone()];
    api.backend()
        .records
        .linkage()
        .expect("linkage")
        .put_review(&item)
        .expect("queue");
    item
}

fn with_body(req: lambda_http::Request, body: serde_json::Value) -> lambda_http::Request {
    let (parts, _) = req.into_parts();
    lambda_http::Request::from_parts(parts, lambda_http::Body::from(body.to_string()))
}

#[test]
fn analysts_review_the_linkage_queue_and_every_step_is_logged() {
    use agencylink_core::ports::RecordStoreExt;
    let Some(m) = moto() else { return };
    let api = seeded(&m, "api-review");
    let item = queue_item(&api);
    let purpose = [("purpose", "Op Aurora linkage review")];
    // Auditors see no queue and decide nothing.
    let (s, _) = call(
        &api,
        http_api("GET", "/review", &purpose, "auditor", "aud-1"),
    );
    assert_eq!(s, 403);
    let (s, body) = call(
        &api,
        http_api("GET", "/review", &purpose, "analyst", "an-1"),
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["items"][0]["id"], item.id.as_str());
    let path = format!("/review/{}", item.id);
    let (s, body) = call(&api, http_api("GET", &path, &purpose, "analyst", "an-1"));
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["sides"][0]["record"]["record_id"],
        item.records[0].as_str()
    );
    let (s, _) = call(
        &api,
        http_api("GET", "/review/rv_nope", &purpose, "analyst", "an-1"),
    );
    assert_eq!(s, 404);
    // A decision: bad bodies are refused before anything is logged.
    let decide = format!("/review/{}/decision", item.id);
    let before = api.backend().access_log.entries().expect("log").len();
    for bad in [
        serde_json::json!({"decision": "maybe", "reason": "x", "purpose": "p"}),
        serde_json::json!({"decision": "match", "reason": "", "purpose": "p"}),
        serde_json::json!({"decision": "match", "reason": "x", "purpose": ""}),
    ] {
        let req = with_body(http_api("POST", &decide, &[], "analyst", "an-1"), bad);
        let (s, _) = call(&api, req);
        assert_eq!(s, 400);
    }
    assert_eq!(
        api.backend().access_log.entries().expect("log").len(),
        before
    );
    let req = with_body(
        http_api("POST", &decide, &[], "analyst", "an-1"),
        serde_json::json!({"decision": "match", "reason": "same placement", "purpose": "Op Aurora"}),
    );
    let (s, body) = call(&api, req);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["item"]["status"], "match");
    let records = &api.backend().records;
    assert_eq!(
        records.resolve_person(&item.people[0]).expect("resolve"),
        records.resolve_person(&item.people[1]).expect("resolve"),
        "a match merges the two people"
    );
    let log = api.backend().access_log.entries().expect("log");
    let actions: Vec<&str> = log.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        ["review_list", "review_show", "review_show", "review_decide"]
    );
    let last = log.last().expect("entry");
    assert_eq!(last["decision"], "match");
    assert!(
        !last.to_string().contains("same placement"),
        "no reason in the log"
    );
    assert!(agencylink_core::query::verify_access_log(&log).is_ok());
}

fn with_header(
    mut req: lambda_http::Request,
    name: &'static str,
    value: &str,
) -> lambda_http::Request {
    req.headers_mut().insert(
        name,
        lambda_http::http::HeaderValue::from_str(value).expect("header"),
    );
    req
}

#[test]
fn a_role_in_a_custom_attribute_or_forged_by_the_caller_gets_nothing() {
    let Some(m) = moto() else { return };
    let api = seeded(&m, "api-forged");
    let person = some_person(&api);
    let people = format!("/people/{person}");
    let purpose = [("purpose", "Op Aurora strategic profile")];
    // An ID token whose only role is a custom: attribute (a user can write
    // those), or a claim added by a pre-token trigger: not a group.
    for claim in [
        "custom:agencylink_role",
        "agencylink_role",
        "role",
        "custom:role",
    ] {
        let mut claims = token_claims("", "u-1");
        claims[claim] = json!("analyst");
        claims["token_use"] = json!("id");
        let (s, body) = call(&api, http_api_claims("GET", &people, &purpose, &claims));
        assert_eq!(s, 403, "{claim}: {body}");
        let mut claims = token_claims("", "u-1");
        claims[claim] = json!("auditor");
        let (s, _) = call(&api, http_api_claims("GET", "/lineage", &[], &claims));
        assert_eq!(s, 403, "{claim}");
    }
    // Headers, query parameters and bodies are the caller's: ignored.
    let forged = [
        ("purpose", "Op Aurora"),
        ("role", "analyst"),
        ("cognito:groups", "analyst"),
    ];
    let req = http_api("GET", &people, &forged, "", "u-1");
    let req = with_header(req, "x-agencylink-role", "analyst");
    let req = with_header(req, "x-amzn-oidc-data", "analyst");
    let (s, _) = call(&api, req);
    assert_eq!(s, 403);
    let req = with_body(
        http_api("POST", "/review/rv_x/decision", &[], "", "u-1"),
        json!({"role": "analyst", "cognito:groups": ["analyst"], "decision": "match", "reason": "x", "purpose": "p"}),
    );
    assert_eq!(call(&api, req).0, 403);
    // An auditor's forged analyst header does not make them an analyst.
    let req = with_header(
        http_api("GET", &people, &purpose, "auditor", "aud-1"),
        "x-agencylink-role",
        "analyst",
    );
    assert_eq!(call(&api, req).0, 403);
    // A token without a subject names nobody.
    let mut claims = token_claims("analyst", "");
    claims.as_object_mut().expect("claims").remove("sub");
    assert_eq!(
        call(&api, http_api_claims("GET", &people, &purpose, &claims)).0,
        403
    );
    assert!(
        api.backend().access_log.entries().expect("log").is_empty(),
        "nothing was read"
    );
}

#[test]
fn each_cognito_group_maps_to_its_role_and_nothing_else_does() {
    let Some(m) = moto() else { return };
    let api = seeded(&m, "api-groups");
    let person = some_person(&api);
    let people = format!("/people/{person}");
    let purpose = [("purpose", "Op Aurora strategic profile")];
    let get = |path: &str, groups: &str| {
        let q: &[(&str, &str)] = if path.starts_with("/people") {
            &purpose
        } else {
            &[]
        };
        call(&api, http_api("GET", path, q, groups, "u-1")).0
    };
    assert_eq!(get(&people, "analyst"), 200);
    // Groups of other applications in the same pool do not matter.
    assert_eq!(get(&people, "admins analyst"), 200);
    assert_eq!(get("/lineage", "auditor"), 200);
    assert_eq!(call(&api, rest_api("/lineage", "auditor", "aud-1")).0, 200);
    // Uploaders, key custodians and operators read no data here.
    for groups in ["agency agency-gmp-police", "key-custodian", "operator"] {
        for path in [
            people.as_str(),
            "/lineage",
            "/access-log",
            "/export",
            "/review",
        ] {
            assert_eq!(get(path, groups), 403, "{groups} {path}");
        }
    }
    // Unknown, empty, case-varied, malformed and ambiguous: nothing.
    for groups in [
        "",
        "admin",
        "Analyst",
        "ANALYST",
        "analyst Auditor",
        "analyst auditor",
        "analyst operator",
        "agency",
        "agency-gmp-police",
        "agency agency-a agency-b",
        "agency agency-Bad_Id",
    ] {
        assert_eq!(get(&people, groups), 403, "{groups:?} on {people}");
        assert_eq!(get("/lineage", groups), 403, "{groups:?} on /lineage");
    }
    assert_eq!(call(&api, rest_api("/lineage", "Auditor", "aud-1")).0, 403);
    let log = api.backend().access_log.entries().expect("log");
    assert_eq!(log.len(), 2, "only the two analyst reads were logged");
}

#[test]
fn an_analyst_read_whose_worm_copy_cannot_be_written_returns_nothing() {
    use agencylink_core::ports::RecordStoreExt as _;
    let Some(m) = moto() else { return };
    let mut backend = seeded_backend(&m, "api-worm");
    // The archive points at a bucket that does not exist: every WORM write fails.
    let gone = agencylink_aws::testing::unique("gone-audit");
    backend.archive = Some(agencylink_aws::S3Archive::new(
        backend.s3().clone(),
        agencylink_aws::testing::rt().handle().clone(),
        &gone,
        1,
    ));
    let api = Arc::new(Api::new(backend, Catalog::embedded().expect("catalog")));
    let person = some_person(&api);
    let item = queue_item(&api);
    let purpose = [("purpose", "Op Aurora strategic profile")];
    let graphml = [("purpose", "Op Aurora chart"), ("format", "graphml")];
    let i2 = [("purpose", "Op Aurora chart"), ("format", "i2")];
    for (path, q) in [
        (format!("/people/{person}"), &purpose[..]),
        (format!("/people/{person}/network"), &purpose[..]),
        (format!("/people/{person}/network"), &graphml[..]),
        ("/review".to_owned(), &purpose[..]),
        (format!("/review/{}", item.id), &purpose[..]),
        ("/export".to_owned(), &purpose[..]),
        ("/export".to_owned(), &i2[..]),
    ] {
        let (s, body) = call(&api, http_api("GET", &path, q, "analyst", "an-1"));
        assert!((500..600).contains(&s), "{path}: {s} {body}");
        let text = body.to_string();
        let mut keys = body
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        keys.sort();
        assert_eq!(
            keys,
            ["detail", "status", "title", "type"],
            "{path}: a problem document and nothing else: {text}"
        );
        assert!(!text.contains(&person), "{path}: no data: {text}");
    }
    // A decision whose WORM copy fails is not applied.
    let req = with_body(
        http_api(
            "POST",
            &format!("/review/{}/decision", item.id),
            &[],
            "analyst",
            "an-1",
        ),
        json!({"decision": "match", "reason": "same placement", "purpose": "Op Aurora"}),
    );
    let (s, body) = call(&api, req);
    assert!((500..600).contains(&s), "{s} {body}");
    let records = &api.backend().records;
    assert_ne!(
        records.resolve_person(&item.people[0]).expect("resolve"),
        records.resolve_person(&item.people[1]).expect("resolve"),
        "the match was not applied"
    );
    let still = records
        .linkage()
        .expect("linkage")
        .get_review(&item.id)
        .expect("get")
        .expect("item");
    assert!(still.status.is_pending());
    // The attempts stay in the chained log, so auditors still see them.
    let log = api.backend().access_log.entries().expect("log");
    assert_eq!(
        log.len(),
        8,
        "seven reads (two of them charts) and the decision"
    );
    assert!(agencylink_core::query::verify_access_log(&log).is_ok());
}

/// What `lineage verify` catches in the log, the API catches: a lineage
/// table cut short behind the chain's back, and an event rewritten in the
/// table with the chain recomputed.
#[test]
fn the_api_verifies_lineage_against_the_archive_and_its_checkpoint() {
    use agencylink_aws::sdk::dynamodb::types::AttributeValue;
    let Some(m) = moto() else { return };
    let mut settings = m.settings("api-ckpt", AgencyPolicy::default());
    settings.checkpoint_key_id = Some(m.create_checkpoint_key());
    let table = settings.table.clone();
    let audit = settings.audit_bucket.clone().expect("audit bucket");
    let backend = seeded_with(&m, settings);
    let api = Arc::new(Api::new(backend, Catalog::embedded().expect("catalog")));
    let verify = |api: &Arc<Api>| {
        call(
            api,
            http_api("GET", "/lineage/verify", &[], "auditor", "aud-1"),
        )
    };
    let (s, v) = verify(&api);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    // Two uploads, each ingest_started and ingest.
    assert_eq!(v["checkpoint"]["size"], 4, "{v}");
    assert_eq!(
        v["checkpoint"]["file"],
        format!("s3://{audit}/checkpoints/lineage/000000000004.json")
    );
    assert!(v.get("reconciled").is_none(), "the CLI's check: {v}");

    let dynamo = api.backend().dynamodb().clone();
    let entries = api.backend().lineage.entries().expect("entries");
    let put = |seq: u64, entry: &serde_json::Value, hash: &str| {
        let mut item = agencylink_aws::testing::lineage_key(seq);
        item.insert("entry".into(), AttributeValue::S(entry.to_string()));
        item.insert("hash".into(), AttributeValue::S(hash.into()));
        agencylink_aws::testing::rt()
            .block_on(
                dynamo
                    .put_item()
                    .table_name(&table)
                    .set_item(Some(item))
                    .send(),
            )
            .expect("put");
    };

    // The last event rewritten in the table with its hash recomputed: the
    // chain holds, the archived copy does not match.
    let mut forged = entries[3].clone();
    let obj = forged.as_object_mut().expect("object");
    obj.remove("hash");
    obj.insert("agency".into(), json!("someone-else"));
    let hash = agencylink_core::lineage::event_hash(entries[2]["hash"].as_str(), &forged);
    forged["hash"] = json!(hash);
    put(4, &forged, &hash);
    let (s, v) = verify(&api);
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["ok"].as_bool(),
            v["problem"]["kind"].as_str(),
            v["problem"]["seq"].as_u64()
        ),
        (Some(false), Some("diverged"), Some(4)),
        "{v}"
    );
    put(4, &entries[3], entries[3]["hash"].as_str().expect("hash"));
    assert_eq!(verify(&api).1["ok"], true);

    // The last event deleted: a valid, shorter chain, caught.
    agencylink_aws::testing::rt()
        .block_on(
            dynamo
                .delete_item()
                .table_name(&table)
                .set_key(Some(agencylink_aws::testing::lineage_key(4)))
                .send(),
        )
        .expect("delete");
    let (s, v) = verify(&api);
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["ok"].as_bool(),
            v["problem"]["kind"].as_str(),
            v["problem"]["seq"].as_u64()
        ),
        (Some(false), Some("truncated"), Some(4)),
        "{v}"
    );
    put(4, &entries[3], entries[3]["hash"].as_str().expect("hash"));
    assert_eq!(verify(&api).1["ok"], true);
}

/// Node and edge counts of a GraphML document, parsed with a real parser.
fn graphml_counts(xml: &[u8]) -> (usize, usize) {
    let text = std::str::from_utf8(xml).expect("UTF-8");
    let doc = roxmltree::Document::parse(text).expect("well-formed GraphML");
    let ns = "http://graphml.graphdrawing.org/xmlns";
    let count = |tag: &str| {
        doc.descendants()
            .filter(|n| n.has_tag_name((ns, tag)))
            .count()
    };
    (count("node"), count("edge"))
}

#[test]
fn charts_for_i2_and_graph_tools_go_to_s3_once_the_read_is_logged() {
    let Some(m) = moto() else { return };
    let api = seeded(&m, "api-charts");
    let person = some_person(&api);
    let catalog = Catalog::embedded().expect("catalog");
    let (net, expected) = agencylink_core::query::network_graph(
        &api.backend().records,
        &catalog,
        &person,
        agencylink_core::query::NetworkLimits::default(),
    )
    .expect("the network, read directly");
    assert!(expected.edges.len() > 1, "the seeded person has ties");
    let network = format!("/people/{person}/network");

    let (s, g) = call(
        &api,
        http_api(
            "GET",
            &network,
            &[("purpose", "Op Aurora chart"), ("format", "graphml")],
            "analyst",
            "an-8",
        ),
    );
    assert_eq!(s, 200, "{g}");
    let key = g["key"].as_str().expect("key");
    assert!(key.starts_with("exports/") && key.ends_with(".graphml"));
    assert!(g["url"].as_str().expect("url").contains("X-Amz-Signature"));
    let xml = api
        .backend()
        .objects
        .get_bytes(key)
        .expect("GraphML object");
    assert_eq!(
        graphml_counts(&xml),
        (expected.nodes.len(), expected.edges.len())
    );
    assert_eq!(g["nodes"], expected.nodes.len());

    let (s, i2) = call(
        &api,
        http_api(
            "GET",
            &network,
            &[("purpose", "Op Aurora chart"), ("format", "i2")],
            "analyst",
            "an-8",
        ),
    );
    assert_eq!(s, 200, "{i2}");
    let csv = api
        .backend()
        .objects
        .get_bytes(i2["key"].as_str().expect("csv key"))
        .expect("CSV object");
    let spec_key = i2["spec_key"].as_str().expect("spec key");
    assert!(spec_key.ends_with(".import-spec.json"));
    let spec: serde_json::Value =
        serde_json::from_slice(&api.backend().objects.get_bytes(spec_key).expect("spec"))
            .expect("spec is JSON");
    let csv = String::from_utf8(csv).expect("UTF-8");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let named: Vec<&str> = spec["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(header, named, "the CSV has the columns its spec names");
    assert_eq!(lines.count(), expected.edges.len(), "one row per link");

    let (s, e) = call(
        &api,
        http_api(
            "GET",
            "/export",
            &[
                ("purpose", "Op Aurora chart"),
                ("dataset", "police.cse_crime"),
                ("format", "graphml"),
            ],
            "analyst",
            "an-8",
        ),
    );
    assert_eq!(s, 200, "{e}");
    let xml = api
        .backend()
        .objects
        .get_bytes(e["key"].as_str().expect("key"))
        .expect("GraphML object");
    let (nodes, edges) = graphml_counts(&xml);
    assert_eq!(
        (e["nodes"].as_u64(), e["edges"].as_u64()),
        (Some(nodes as u64), Some(edges as u64))
    );
    let text = String::from_utf8(xml).expect("UTF-8");
    let doc = roxmltree::Document::parse(&text).expect("GraphML");
    assert!(
        doc.descendants()
            .any(|n| n.tag_name().name() == "node" && n.attribute("id") == Some(person.as_str())),
        "the person, who has crime links, is charted"
    );
    assert!(edges > 0);

    // An unknown format is refused before anything is read.
    let (s, _) = call(
        &api,
        http_api(
            "GET",
            "/export",
            &[("purpose", "Op Aurora chart"), ("format", "xlsx")],
            "analyst",
            "an-8",
        ),
    );
    assert_eq!(s, 400);
    let log = api.backend().access_log.entries().expect("log");
    let reads: Vec<(&str, u64)> = log
        .iter()
        .filter_map(|e| Some((e["action"].as_str()?, e["rows_returned"].as_u64()?)))
        .collect();
    let people = net.people.len() as u64;
    assert_eq!(
        reads,
        [
            ("query_network", people),
            ("query_network", people),
            ("export", e["records"].as_u64().expect("records")),
        ]
    );
}

#[test]
fn uploads_are_the_agency_s_own_and_only_the_agency_s() {
    let Some(m) = moto() else { return };
    let policy = AgencyPolicy::parse(r#"{"gmp-police": ["police.cse_crime"]}"#).expect("policy");
    let backend = m.backend(m.settings("api-upl", policy));
    let catalog = Catalog::embedded().expect("catalog");
    let api = Arc::new(
        Api::new(backend, catalog).with_uploads(agencylink_fn_api::UploadConfig {
            kms_key_id: "arn:aws:kms:eu-west-2:123456789012:key/landing".into(),
            max_bytes: 1000,
            expires: std::time::Duration::from_secs(900),
        }),
    );
    let post = |body: &str, groups: &str| {
        let mut req = http_api("POST", "/uploads", &[], groups, "u-1");
        *req.body_mut() = lambda_http::Body::from(body.to_owned());
        call(&api, req)
    };
    let police = "agency agency-gmp-police";
    // Only agency uploaders, and only datasets the policy allows them.
    for role in ["analyst", "auditor", "operator", "key-custodian"] {
        assert_eq!(
            call(&api, http_api("GET", "/uploads", &[], role, "u")).0,
            403
        );
        assert_eq!(post(r#"{"dataset":"police.cse_crime"}"#, role).0, 403);
    }
    assert_eq!(post(r#"{"dataset":"council.cin_referral"}"#, police).0, 403);
    assert_eq!(post(r#"{"dataset":"no.such"}"#, police).0, 404);
    assert_eq!(post("{}", police).0, 400);
    assert_eq!(post("not json", police).0, 400);
    assert_eq!(
        post(r#"{"dataset":"police.cse_crime","format":"xlsx"}"#, police).0,
        400
    );
    // The agency is the token's: one named in the body is ignored.
    let (s, created) = post(
        r#"{"dataset":"police.cse_crime","agency":"rochdale-council"}"#,
        police,
    );
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().expect("id");
    let fields = &created["upload"]["fields"];
    assert_eq!(
        fields["key"],
        format!("landing/gmp-police/police.cse_crime/{id}.csv")
    );
    assert_eq!(fields["x-amz-server-side-encryption"], "aws:kms");
    assert_eq!(
        fields["x-amz-server-side-encryption-aws-kms-key-id"],
        "arn:aws:kms:eu-west-2:123456789012:key/landing"
    );
    assert_eq!(created["upload"]["max_bytes"], 1000);
    let landing = &api.backend().settings.landing_bucket;
    assert!(
        created["upload"]["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/{landing}/"))),
        "{created}"
    );
    use base64::Engine as _;
    let policy_doc: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(fields["policy"].as_str().expect("policy"))
            .expect("base64"),
    )
    .expect("policy JSON");
    assert!(
        policy_doc["conditions"]
            .as_array()
            .expect("conditions")
            .contains(&json!(["content-length-range", 1, 1000])),
        "{policy_doc}"
    );
    // Its status, to its agency only.
    let show = format!("/uploads/{id}");
    let (s, one) = call(&api, http_api("GET", &show, &[], police, "u-1"));
    assert_eq!(
        (s, one["upload"]["status"].as_str()),
        (200, Some("waiting"))
    );
    let council = "agency agency-rochdale-council";
    assert_eq!(
        call(&api, http_api("GET", &show, &[], council, "u-2")).0,
        404
    );
    assert_eq!(
        call(
            &api,
            http_api("GET", "/uploads/not-an-id", &[], police, "u-1")
        )
        .0,
        404
    );
    for q in [[("limit", "0")], [("limit", "101")], [("after", "x")]] {
        assert_eq!(
            call(&api, http_api("GET", "/uploads", &q, police, "u-1")).0,
            400
        );
    }
    // A deployment without an upload key signs nothing.
    let unsigned = Arc::new(Api::new(
        m.backend(m.settings("api-upl2", AgencyPolicy::default())),
        Catalog::embedded().expect("catalog"),
    ));
    let mut req = http_api("POST", "/uploads", &[], police, "u-1");
    *req.body_mut() = lambda_http::Body::from(r#"{"dataset":"police.cse_crime"}"#.to_owned());
    assert_eq!(call(&unsigned, req).0, 500);
}

#[test]
fn profiles_are_listed_fetched_and_requested_by_role() {
    use agencylink_core::profile::{Edition, Settings};
    let Some(m) = moto() else { return };
    let api = seeded(&m, "api-prof");
    let analyst = |method: &str, path: &str, query: &[(&str, &str)]| {
        call(&api, http_api(method, path, query, "analyst", "a-1"))
    };
    let agency = |path: &str| {
        call(
            &api,
            http_api("GET", path, &[], "agency agency-gmp-police", "u-1"),
        )
    };
    let post = |body: &str, groups: &str| {
        let mut req = http_api("POST", "/profiles", &[], groups, "a-1");
        *req.body_mut() = lambda_http::Body::from(body.to_owned());
        call(&api, req)
    };
    let access = || api.backend().access_log.entries().expect("access log");

    // Nothing built yet.
    let (s, body) = analyst("GET", "/profiles", &[]);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["profiles"], json!([]));
    for role in ["auditor", "operator", "key-custodian"] {
        assert_eq!(
            call(&api, http_api("GET", "/profiles", &[], role, "x")).0,
            403,
            "{role}"
        );
    }

    // A build on demand: analysts only, with a purpose and sound dates,
    // logged before it is queued.
    assert_eq!(
        post(
            r#"{"purpose":"monthly tasking"}"#,
            "agency agency-gmp-police"
        )
        .0,
        403
    );
    assert_eq!(post(r#"{"purpose":"monthly tasking"}"#, "auditor").0, 403);
    assert_eq!(post("{}", "analyst").0, 400, "no purpose");
    assert_eq!(post("[1]", "analyst").0, 400);
    assert_eq!(
        post(r#"{"purpose":"x","from":"2026-02-30"}"#, "analyst").0,
        400
    );
    assert_eq!(
        post(
            r#"{"purpose":"x","from":"2026-02-01","to":"2026-01-01"}"#,
            "analyst"
        )
        .0,
        400
    );
    assert_eq!(
        post(r#"{"purpose":"x","edition":"analyst"}"#, "analyst").0,
        400
    );
    assert!(access().is_empty(), "refused requests log nothing");
    let (s, queued) = post(
        r#"{"purpose":"monthly tasking","from":"2024-01-01","to":"2026-02-28"}"#,
        "analyst",
    );
    assert_eq!(s, 202, "{queued}");
    assert_eq!(queued["status"], "queued");
    let log = access();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["action"], "profile_request");
    assert_eq!(log[0]["purpose"], "monthly tasking");
    assert_eq!(log[0]["target"], "profile 2024-01-01..2026-02-28");
    let request_key = format!(
        "profile-requests/{}",
        queued["request"].as_str().expect("request")
    );
    let req = agencylink_http::profiles::read_request(&api.backend().objects, &request_key)
        .expect("read")
        .expect("queued");
    assert_eq!(req.from.as_deref(), Some("2024-01-01"));
    assert_eq!(req.requested_by.as_deref(), Some("a-1"));

    // The profile function's build (tested on its own in functions/profile).
    let b = api.backend();
    agencylink_http::profiles::build_and_store(
        agencylink_http::profiles::Stores {
            objects: &b.objects,
            records: &b.records,
            lineage: &b.lineage,
            archive_lineage: &|e| b.archive_lineage(e),
        },
        &Catalog::embedded().expect("catalog"),
        &Settings {
            from: req.from,
            to: req.to,
            generated_at: "2026-03-03T00:00:00Z".into(),
            ..Settings::default()
        },
        &[Edition::Analyst, Edition::Partner],
        "request",
        req.requested_by.as_deref(),
        "2026-03-03T00:00:00Z",
    )
    .expect("built");
    let (analyst_id, partner_id) = (
        "2024-01-01_2026-02-28_analyst",
        "2024-01-01_2026-02-28_partner",
    );

    // Listing: analysts see both editions, agencies the partner one.
    let (_, listed) = analyst("GET", "/profiles", &[]);
    let ids: Vec<&str> = listed["profiles"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, [analyst_id, partner_id]);
    let (s, listed) = agency("/profiles");
    assert_eq!(s, 200);
    assert_eq!(listed["profiles"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["profiles"][0]["id"], partner_id);

    // An agency fetches the partner edition, never the analyst one; its
    // fetch reads no one's data and is not logged.
    let before = access().len();
    assert_eq!(agency(&format!("/profiles/{analyst_id}")).0, 403);
    let (s, partner) = agency(&format!("/profiles/{partner_id}"));
    assert_eq!(s, 200, "{partner}");
    let files = partner["files"].as_array().expect("files");
    assert!(files.iter().any(|f| f["name"] == "profile.html"));
    assert!(!files.iter().any(|f| f["name"] == "tracker.csv"));
    assert!(
        files.iter().all(|f| f["url"]
            .as_str()
            .is_some_and(|u| u.contains("X-Amz-Signature") && u.contains("/partner/"))),
        "{partner}"
    );
    assert_eq!(access().len(), before);

    // An analyst's fetch needs a purpose and is logged before the links go out.
    assert_eq!(
        analyst("GET", &format!("/profiles/{analyst_id}"), &[]).0,
        400
    );
    let (s, full) = analyst(
        "GET",
        &format!("/profiles/{analyst_id}"),
        &[("purpose", "tasking meeting")],
    );
    assert_eq!(s, 200, "{full}");
    let files = full["files"].as_array().expect("files");
    assert!(files.iter().any(|f| f["name"] == "tracker.csv"));
    let log = access();
    let last = log.last().expect("an entry");
    assert_eq!(last["action"], "profile_fetch");
    assert_eq!(last["target"], analyst_id);
    assert_eq!(last["purpose"], "tasking meeting");
    assert_eq!(last["rows_returned"], files.len() as u64);

    // Unknown and malformed ids are 404s, logged or not.
    for id in ["2020-01-01_2020-12-31_partner", "..%2Fexports", "x_y_z"] {
        assert_eq!(agency(&format!("/profiles/{id}")).0, 404, "{id}");
        assert_eq!(
            analyst("GET", &format!("/profiles/{id}"), &[("purpose", "p")]).0,
            404,
            "{id}"
        );
    }
}

/// Every route of the table with each role, each malformed set of groups,
/// and a forged role header: a role the route lists is let through (to
/// whatever the route answers), anything else is a 403 problem document
/// naming who may call it, before anything is read.
#[test]
fn every_role_reaches_exactly_the_routes_the_table_gives_it() {
    use agencylink_http::{ROUTES, RoleKind};
    let Some(m) = moto() else { return };
    let api = seeded(&m, "api-matrix");
    let callers: &[(&str, Option<RoleKind>)] = &[
        ("agency agency-rochdale-council", Some(RoleKind::Agency)),
        ("analyst", Some(RoleKind::Analyst)),
        ("auditor", Some(RoleKind::Auditor)),
        ("key-custodian", Some(RoleKind::KeyCustodian)),
        ("operator", Some(RoleKind::Operator)),
        // No role, an unknown one, ours in another case, two at once, an
        // agency with no agency group: nothing.
        ("", None),
        ("admin", None),
        ("Analyst", None),
        ("AUDITOR", None),
        ("analyst auditor", None),
        ("agency", None),
    ];
    for route in ROUTES {
        let path = route.example_path();
        let method = route.method.as_str();
        for (groups, kind) in callers {
            let (s, body) = call(
                &api,
                http_api(method, &path, &[("purpose", "matrix check")], groups, "u-1"),
            );
            let what = format!("{method} {path} as {groups:?}: {s} {body}");
            if kind.is_some_and(|k| route.allows(k)) {
                assert_ne!(s, 403, "{what}");
                assert_ne!(body["detail"], "no such route", "{what}");
                assert_ne!(body["detail"], "this route has no handler", "{what}");
            } else {
                assert_eq!(s, 403, "{what}");
                assert_eq!(body["status"], 403, "{what}");
                if kind.is_some() {
                    assert_eq!(
                        body["detail"],
                        format!("{} is for {}", route.path, route.who()),
                        "{what}"
                    );
                }
            }
        }
        // A role in a header the caller wrote counts for nothing.
        for header in ["x-agencylink-role", "x-amzn-oidc-data", "cognito-groups"] {
            let req = with_header(
                http_api(method, &path, &[("purpose", "matrix check")], "", "u-1"),
                header,
                "analyst",
            );
            assert_eq!(call(&api, req).0, 403, "{method} {path} with {header}");
        }
    }
    // A path the table lacks is a 404 problem; a method it lacks, a 405
    // naming the methods it takes.
    let (s, body) = call(&api, http_api("GET", "/records", &[], "analyst", "u-1"));
    assert_eq!(
        (s, body["title"].as_str()),
        (404, Some("Not Found")),
        "{body}"
    );
    let (s, body) = call(
        &api,
        http_api(
            "DELETE",
            "/uploads",
            &[],
            "agency agency-rochdale-council",
            "u-1",
        ),
    );
    assert_eq!(s, 405, "{body}");
    assert_eq!(body["detail"], "this path takes POST and GET");
}

/// The document the API serves is the table's, and the copy in
/// `docs/openapi.json` is that document.
#[test]
fn the_api_serves_its_openapi_document() {
    let Some(m) = moto() else { return };
    let api = seeded(&m, "api-openapi");
    for role in ["analyst", "auditor", "agency agency-rochdale-council"] {
        let (s, body) = call(&api, http_api("GET", "/openapi.json", &[], role, "u-1"));
        assert_eq!(s, 200);
        assert_eq!(body, agencylink_http::openapi::document());
    }
}

/// The header's value in a response, if it has one.
fn header(resp: &lambda_http::Response<lambda_http::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn body_bytes(resp: &lambda_http::Response<lambda_http::Body>) -> Vec<u8> {
    resp.body().as_ref().to_vec()
}

/// The workbench's files need no caller (the template routes only them
/// past its authorizer) and carry the policy `agencylink serve` sends;
/// with a hosted UI configured, its origin and the origin of the download
/// links the function makes are in `connect-src` and nowhere else, and the
/// config tells the page how to sign in. Nothing else is
/// answered without a caller.
#[test]
fn the_workbench_loads_without_a_caller_and_data_does_not() {
    let Some(m) = moto() else { return };
    let backend = |name: &str| m.backend(m.settings(name, AgencyPolicy::default()));
    let domain = "https://agencylink-test.auth.eu-west-2.amazoncognito.com";
    let env = |name: &str| {
        Some(match name {
            "AGENCYLINK_UI_AUTH_DOMAIN" => domain.to_owned(),
            "AGENCYLINK_UI_CLIENT_ID" => "4uiclient0example".to_owned(),
            "AGENCYLINK_UI_REDIRECT_URI" => {
                "https://a1b2c3d4e5.execute-api.eu-west-2.amazonaws.com/".to_owned()
            }
            _ => return None,
        })
    };
    let sign_in = agencylink_fn_api::sign_in_from(env).expect("valid settings");
    let catalog = || Catalog::embedded().expect("catalog");
    let oauth = Arc::new(
        Api::new(seeded_backend(&m, "api-ui-oauth"), catalog())
            .with_sign_in(sign_in)
            .expect("a link origin"),
    );
    // Where the download links this function hands out point (moto's
    // endpoint here, the data bucket's own on AWS): taken from a real
    // answer, not from the settings.
    let (s, e) = call(
        &oauth,
        http_api(
            "GET",
            "/export",
            &[
                ("purpose", "workbench policy check"),
                ("dataset", "police.cse_crime"),
            ],
            "analyst",
            "an-1",
        ),
    );
    assert_eq!(s, 200, "{e}");
    let link = e["url"].as_str().expect("a download link");
    assert!(link.contains("X-Amz-Signature"), "{link}");
    let link_origin = agencylink_http::ui::origin_of(link).expect("an absolute link");
    let logged = oauth.backend().access_log.entries().expect("log").len();
    assert_eq!(logged, 1, "the export was logged");
    assert!(
        link.starts_with(&format!("{link_origin}/")),
        "{link_origin} {link}"
    );
    let token = Arc::new(Api::new(backend("api-ui-token"), catalog()));

    for (api, hosted) in [(&token, false), (&oauth, true)] {
        for (path, media, holds) in [
            ("/", "text/html; charset=utf-8", "/ui/app.js"),
            ("/index.html", "text/html; charset=utf-8", "/ui/app.css"),
            (
                "/ui/app.js",
                "text/javascript; charset=utf-8",
                "sessionStorage",
            ),
            ("/ui/app.css", "text/css; charset=utf-8", "{"),
            ("/favicon.ico", "image/svg+xml", "<svg"),
            ("/ui/config.json", "application/json", "sign_in"),
        ] {
            let resp = call_raw(api, anonymous("GET", path));
            assert_eq!(resp.status().as_u16(), 200, "{path}");
            assert_eq!(
                header(&resp, "content-type").as_deref(),
                Some(media),
                "{path}"
            );
            let body = String::from_utf8(body_bytes(&resp)).expect("UTF-8");
            assert!(body.contains(holds), "{path}");
            let csp = header(&resp, "content-security-policy").expect("a policy");
            assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
            assert_eq!(csp.contains(domain), hosted, "{path}: {csp}");
            assert_eq!(csp.contains(&link_origin), hosted, "{path}: {csp}");
            if hosted {
                // The hosted UI for the token request, and exactly the
                // origin of the links the page fetches: nothing else.
                assert!(
                    csp.contains(&format!("connect-src 'self' {domain} {link_origin};")),
                    "{csp}"
                );
                assert_eq!(
                    csp.replace(&format!(" {domain} {link_origin}"), ""),
                    agencylink_http::ui::CSP
                );
            } else {
                assert_eq!(csp, agencylink_http::ui::CSP);
            }
            for (name, value) in [
                ("x-content-type-options", "nosniff"),
                ("x-frame-options", "DENY"),
                ("referrer-policy", "no-referrer"),
                ("cache-control", "no-cache"),
            ] {
                assert_eq!(
                    header(&resp, name).as_deref(),
                    Some(value),
                    "{path}: {name}"
                );
            }
        }
        // The page's shared copy is what both hosts send, byte for byte.
        let resp = call_raw(api, anonymous("GET", "/ui/app.js"));
        assert_eq!(
            body_bytes(&resp),
            agencylink_http::ui::asset("/ui/app.js")
                .expect("script")
                .body
        );
    }

    let config = |api: &Arc<Api>| -> serde_json::Value {
        serde_json::from_slice(&body_bytes(&call_raw(
            api,
            anonymous("GET", "/ui/config.json"),
        )))
        .expect("JSON")
    };
    assert_eq!(config(&token), json!({"sign_in": "token"}));
    let c = config(&oauth);
    assert_eq!(c["sign_in"], "oauth");
    assert_eq!(c["authorize"], format!("{domain}/oauth2/authorize"));
    assert_eq!(c["token"], format!("{domain}/oauth2/token"));
    assert_eq!(c["logout"], format!("{domain}/logout"));
    assert_eq!(c["client_id"], "4uiclient0example");
    assert_eq!(
        c["redirect_uri"],
        "https://a1b2c3d4e5.execute-api.eu-west-2.amazonaws.com/"
    );
    assert_eq!(c["scope"], "openid");

    // Not a file of the workbench: nothing, and no policy to go with it.
    for path in ["/ui/x", "/ui/../Cargo.toml", "/ui/", "/ui/app.js/x"] {
        let resp = call_raw(&oauth, anonymous("GET", path));
        assert_eq!(resp.status().as_u16(), 403, "{path}: no caller, no route");
        assert!(header(&resp, "content-security-policy").is_none(), "{path}");
        let (s, _) = call(&oauth, http_api("GET", path, &[], "analyst", "an-1"));
        assert_eq!(s, 404, "{path}");
    }
    // Only GET: a POST to the page is the router's, and needs a caller.
    let resp = call_raw(&oauth, anonymous("POST", "/"));
    assert_eq!(resp.status().as_u16(), 403);
    // Every data route still needs a verified caller.
    for path in [
        "/me",
        "/openapi.json",
        "/people/p_x",
        "/lineage",
        "/profiles",
    ] {
        let resp = call_raw(&oauth, anonymous("GET", path));
        assert_eq!(resp.status().as_u16(), 403, "{path}");
    }
    assert_eq!(
        oauth.backend().access_log.entries().expect("log").len(),
        logged,
        "nothing was read but the export above"
    );
}

/// A flat export too large for a request is refused (413, nothing logged,
/// nothing stored) and runs as a job instead: queued with its request
/// logged, written by the job runner the profile function calls, and
/// handed out only to the analyst who asked, logged again with its rows.
#[test]
fn large_exports_run_as_jobs_for_the_analyst_who_asked() {
    let Some(m) = moto() else { return };
    let backend = seeded_backend(&m, "api-export-job");
    let api = Arc::new(
        Api::new(backend, Catalog::embedded().expect("catalog")).with_sync_export_rows(10),
    );
    let purpose = [("purpose", "Op Aurora strategic profile")];
    let (s, body) = call(
        &api,
        http_api("GET", "/export", &purpose, "analyst", "an-1"),
    );
    assert_eq!(s, 413, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("POST /exports"),
        "{body}"
    );
    assert!(
        api.backend().access_log.entries().expect("log").is_empty(),
        "nothing was returned"
    );
    assert!(
        api.backend()
            .objects
            .list("exports/")
            .expect("list")
            .is_empty(),
        "nothing was stored"
    );

    let ask = |body: serde_json::Value, who: &str| {
        call(
            &api,
            with_body(http_api("POST", "/exports", &[], "analyst", who), body),
        )
    };
    assert_eq!(ask(json!({"format": "csv"}), "an-1").0, 400, "no purpose");
    assert_eq!(ask(json!({"purpose": "p", "format": "i2"}), "an-1").0, 400);
    assert_eq!(
        ask(json!({"purpose": "p", "dataset": "no.such"}), "an-1").0,
        404
    );
    let (s, queued) = ask(
        json!({"purpose": "Op Aurora strategic profile", "dataset": "police.cse_crime"}),
        "an-1",
    );
    assert_eq!(s, 202, "{queued}");
    let id = queued["id"].as_str().expect("a job id").to_owned();
    let status = |who: &str| {
        call(
            &api,
            http_api("GET", &format!("/exports/{id}"), &purpose, "analyst", who),
        )
    };
    assert_eq!(status("an-1").1["status"], "queued");
    assert_eq!(
        status("an-2").0,
        404,
        "another analyst's job is unknown to them"
    );
    let log = api.backend().access_log.entries().expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["action"], "export_request");

    // The profile function's step (functions/profile calls exactly this).
    let b = api.backend();
    let done = agencylink_http::exports::run(
        &b.objects,
        &b.records,
        &Catalog::embedded().expect("catalog"),
        &format!("{}{id}.json", agencylink_http::exports::REQUESTS),
        "2026-03-03T10:00:00Z",
    )
    .expect("the job runs");
    assert!(matches!(
        done,
        Some(agencylink_http::exports::Status::Done(_))
    ));
    let mut records = 0;
    b.records
        .scan_dataset("police.cse_crime", None, None, &mut |_| {
            records += 1;
            true
        })
        .expect("scan");
    let (s, body) = status("an-1");
    assert_eq!((s, body["status"].as_str()), (200, Some("done")), "{body}");
    assert_eq!(body["rows"], records);
    assert!(
        body["url"].as_str().unwrap_or("").starts_with("http"),
        "{body}"
    );
    let log = api.backend().access_log.entries().expect("log");
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[1]["action"].as_str(), log[1]["rows_returned"].as_u64()),
        (Some("export"), Some(records))
    );
    assert_eq!(status("an-2").0, 404);
    let (s, body) = call(
        &api,
        http_api(
            "GET",
            "/exports/0123456789abcdef0123456789abcdef",
            &purpose,
            "analyst",
            "an-1",
        ),
    );
    assert_eq!(s, 404, "{body}");
}

/// The review queue pages most probable first; a page's `next` continues
/// where it ended, and walking the pages gives the whole queue once.
#[test]
fn the_review_queue_pages() {
    let Some(m) = moto() else { return };
    let api = seeded(&m, "api-review-pages");
    let first = queue_item(&api);
    let linkage = api.backend().records.linkage().expect("linkage");
    let mut second = first.clone();
    second.id = format!("{}-b", first.id);
    second.probability = 0.9;
    linkage.put_review(&second).expect("queue");
    let page = |after: Option<&str>, limit: &str| {
        let mut q = vec![("purpose", "Op Aurora strategic profile"), ("limit", limit)];
        if let Some(a) = after {
            q.push(("after", a));
        }
        call(&api, http_api("GET", "/review", &q, "analyst", "an-1"))
    };
    let (s, whole) = page(None, "100");
    assert_eq!(s, 200, "{whole}");
    let all: Vec<serde_json::Value> = whole["items"].as_array().expect("items").clone();
    assert!(all.len() >= 2 && all.len() < 100, "{}", all.len());
    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (s, one) = page(after.as_deref(), "1");
        assert_eq!(s, 200, "{one}");
        walked.extend(one["items"].as_array().expect("items").iter().cloned());
        match one["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
        assert!(walked.len() <= all.len(), "the walk ends");
    }
    let ids = |v: &[serde_json::Value]| v.iter().map(|i| i["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&walked), ids(&all));
    let probs: Vec<f64> = all
        .iter()
        .map(|i| i["probability"].as_f64().expect("p"))
        .collect();
    assert!(
        probs.windows(2).all(|w| w[0] >= w[1]),
        "most probable first"
    );
    let at = |id: &str| ids(&all).iter().position(|i| i == id).expect("queued");
    assert!(at(&second.id) < at(&first.id));
    assert_eq!(page(Some("garbage"), "1").0, 400);
}
