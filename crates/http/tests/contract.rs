//! The route table held to what is deployed and published:
//! `infra/template.yaml`'s API events serve each route from the function
//! its lane names, and no other path; the workbench's files, and only
//! they, are routed past the authorizer; `docs/openapi.json` is the
//! document the code generates (`AGENCYLINK_WRITE_OPENAPI=1` rewrites it).

use agencylink_http::{ROUTES, openapi, ui};
use serde_yaml::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Whether an API Gateway route path (`{name}` one segment, `{name+}` one
/// or more) covers `path` (a table path with its parameters filled in).
fn covers(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let got: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, p) in pat.iter().enumerate() {
        if p.starts_with('{') && p.ends_with("+}") {
            return got.len() > i;
        }
        match got.get(i) {
            Some(g) if p.starts_with('{') || p == g => {}
            _ => return false,
        }
    }
    pat.len() == got.len()
}

/// An HttpApi event of the template.
struct Event {
    function: String,
    method: String,
    path: String,
    /// `Auth: Authorizer: NONE`: API Gateway lets anyone through.
    open: bool,
}

/// Every HttpApi event of the template.
fn api_events() -> Vec<Event> {
    let text = std::fs::read_to_string(format!("{ROOT}/infra/template.yaml")).expect("template");
    let t: Value = serde_yaml::from_str(&text).expect("YAML");
    let mut out = Vec::new();
    for (name, r) in t["Resources"].as_mapping().expect("resources") {
        if r["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(events) = r["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for e in events.values() {
            if e["Type"].as_str() == Some("HttpApi") {
                let auth = &e["Properties"]["Auth"];
                out.push(Event {
                    function: name.as_str().expect("a name").to_owned(),
                    method: e["Properties"]["Method"]
                        .as_str()
                        .expect("a method")
                        .to_uppercase(),
                    path: e["Properties"]["Path"].as_str().expect("a path").to_owned(),
                    open: auth["Authorizer"].as_str() == Some("NONE"),
                });
                // Any other Auth would be a second way in: only NONE, on
                // the workbench's files, is expected.
                assert!(
                    auth.is_null() || auth.as_mapping().is_some_and(|m| m.len() == 1),
                    "{name:?}: an event's Auth may only be Authorizer: NONE"
                );
            }
        }
    }
    out
}

#[test]
fn the_template_serves_every_route_from_its_lane_and_nothing_else() {
    let events = api_events();
    let (open, guarded): (Vec<&Event>, Vec<&Event>) = events.iter().partition(|e| e.open);
    assert!(!guarded.is_empty());
    for r in ROUTES {
        let path = r.example_path();
        let serving: Vec<&str> = events
            .iter()
            .filter(|e| e.method == r.method.as_str() && covers(&e.path, &path))
            .map(|e| e.function.as_str())
            .collect();
        assert_eq!(
            serving,
            [r.lane.function()],
            "{} {}: served by the function of its lane, once",
            r.method.as_str(),
            r.path
        );
        assert!(
            !open
                .iter()
                .any(|e| e.method == r.method.as_str() && covers(&e.path, &path)),
            "{}: a data route behind no authorizer",
            r.path
        );
    }
    for e in &guarded {
        assert!(
            ROUTES
                .iter()
                .any(|r| r.method.as_str() == e.method && covers(&e.path, &r.example_path())),
            "{}: {} {} serves no route of the table",
            e.function,
            e.method,
            e.path
        );
    }
}

/// The workbench's files load with no caller from the function that
/// answers them (the analyst lane's: the page is theirs), and the routes
/// without an authorizer cover those files and nothing else: an API path
/// under one would reach the function with no verified caller.
#[test]
fn the_template_opens_the_workbench_s_files_and_nothing_more() {
    let events = api_events();
    let open: Vec<&Event> = events.iter().filter(|e| e.open).collect();
    for path in ui::PATHS {
        let serving: Vec<&str> = events
            .iter()
            .filter(|e| e.method == "GET" && covers(&e.path, path))
            .map(|e| e.function.as_str())
            .collect();
        assert_eq!(serving, ["ApiFunction"], "GET {path}: served once");
        assert!(
            open.iter().any(|e| covers(&e.path, path)),
            "GET {path}: behind the authorizer, so the page cannot load"
        );
    }
    for e in &open {
        assert_eq!(e.method, "GET", "{}", e.path);
        assert!(
            !e.path.contains('+'),
            "{}: a greedy path opens more than the files",
            e.path
        );
        assert!(
            ui::PATHS.iter().any(|p| covers(&e.path, p)),
            "{}: open, but no file of the workbench",
            e.path
        );
    }
    // What an open `{file}` segment lets through is the page's only: it
    // answers its own files and 404s the rest (crates/http/src/ui.rs).
    assert!(!ROUTES.iter().any(|r| r.path.starts_with("/ui/")));
}

#[test]
fn docs_openapi_json_is_the_generated_document() {
    let path = format!("{ROOT}/docs/openapi.json");
    let generated = openapi::document();
    if std::env::var_os("AGENCYLINK_WRITE_OPENAPI").is_some() {
        let text = serde_json::to_string_pretty(&generated).expect("json") + "\n";
        std::fs::write(&path, text).expect("write docs/openapi.json");
    }
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("docs/openapi.json"))
            .expect("JSON");
    assert!(
        committed == generated,
        "docs/openapi.json is stale: run AGENCYLINK_WRITE_OPENAPI=1 cargo test -p agencylink-http"
    );
}

#[test]
fn api_gateway_paths_cover_as_api_gateway_does() {
    assert!(covers("/people/{proxy+}", "/people/x1/network"));
    assert!(covers("/people/{proxy+}", "/people/x1"));
    assert!(!covers("/people/{proxy+}", "/people"));
    assert!(covers("/review/{id}/decision", "/review/x1/decision"));
    assert!(!covers("/review/{id}/decision", "/review/x1"));
    assert!(!covers("/uploads", "/uploads/x1"));
}

/// The workbench's app client signs in a browser page: a public client
/// (no secret a page could keep), the code flow only (no implicit flow
/// that puts tokens in the address), `openid` only, no password flow of
/// its own, and tokens that last an hour at most.
#[test]
fn the_workbench_s_app_client_is_a_public_code_flow_client() {
    let text = std::fs::read_to_string(format!("{ROOT}/infra/template.yaml")).expect("template");
    let t: Value = serde_yaml::from_str(&text).expect("YAML");
    let c = &t["Resources"]["UiClient"];
    assert_eq!(c["Type"].as_str(), Some("AWS::Cognito::UserPoolClient"));
    let p = &c["Properties"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(p["GenerateSecret"].as_bool(), Some(false));
    assert_eq!(p["AllowedOAuthFlowsUserPoolClient"].as_bool(), Some(true));
    assert_eq!(strings(&p["AllowedOAuthFlows"]), ["code"]);
    assert_eq!(strings(&p["AllowedOAuthScopes"]), ["openid"]);
    assert_eq!(strings(&p["SupportedIdentityProviders"]), ["COGNITO"]);
    assert_eq!(
        strings(&p["ExplicitAuthFlows"]),
        ["ALLOW_REFRESH_TOKEN_AUTH"]
    );
    for (validity, unit) in [
        ("IdTokenValidity", "IdToken"),
        ("AccessTokenValidity", "AccessToken"),
        ("RefreshTokenValidity", "RefreshToken"),
    ] {
        assert_eq!(
            p["TokenValidityUnits"][unit].as_str(),
            Some("minutes"),
            "{unit}"
        );
        assert!(
            p[validity].as_u64().is_some_and(|m| m <= 60),
            "{validity}: at most an hour"
        );
    }
    assert_eq!(c["Condition"].as_str(), Some("UiSignIn"));
}

/// The data bucket lets the workbench read the presigned links the API
/// hands it, and nothing more: one CORS rule, only with the hosted UI
/// (`UiSignIn`, the sign-in whose page policy names the bucket), GET only,
/// the origin of `UiUrl` (the page's own) and no other, no wildcard, no
/// request or exposed headers, and a short preflight cache. No other bucket
/// answers a browser at all.
#[test]
fn the_data_bucket_lets_only_the_workbench_read_its_links() {
    let text = std::fs::read_to_string(format!("{ROOT}/infra/template.yaml")).expect("template");
    let t: Value = serde_yaml::from_str(&text).expect("YAML");
    let tagged = |v: &Value, tag: &str| -> Value {
        match v {
            Value::Tagged(t) if t.tag == tag => t.value.clone(),
            other => panic!("expected !{tag}: {other:?}"),
        }
    };
    for (name, r) in t["Resources"].as_mapping().expect("resources") {
        if r["Type"].as_str() == Some("AWS::S3::Bucket") && name.as_str() != Some("DataBucket") {
            assert!(
                r["Properties"]["CorsConfiguration"].is_null(),
                "{name:?} answers browsers"
            );
        }
    }
    let cors = &t["Resources"]["DataBucket"]["Properties"]["CorsConfiguration"];
    let branches = tagged(cors, "If");
    let branches = branches.as_sequence().expect("!If [c, a, b]");
    assert_eq!(branches.len(), 3);
    assert_eq!(branches[0].as_str(), Some("UiSignIn"));
    assert_eq!(
        tagged(&branches[2], "Ref").as_str(),
        Some("AWS::NoValue"),
        "no rule without the hosted UI"
    );
    let rules = branches[1]["CorsRules"].as_sequence().expect("CorsRules");
    assert_eq!(rules.len(), 1, "one rule");
    let rule = rules[0].as_mapping().expect("a rule");
    let keys: Vec<&str> = rule.keys().filter_map(Value::as_str).collect();
    assert_eq!(
        keys,
        ["Id", "AllowedMethods", "AllowedOrigins", "MaxAge"],
        "no AllowedHeaders or ExposedHeaders: the page sends and reads none"
    );
    let rule = &rules[0];
    assert_eq!(
        rule["AllowedMethods"].as_sequence().expect("methods"),
        &[Value::from("GET")]
    );
    assert!(rule["MaxAge"].as_u64().is_some_and(|s| s <= 3600));
    let origins = rule["AllowedOrigins"].as_sequence().expect("origins");
    assert_eq!(origins.len(), 1, "the workbench's origin only");
    assert!(!serde_yaml::to_string(origins).expect("YAML").contains('*'));
    // !Sub [https://${Host}, {Host: !Select [2, !Split ["/", !Ref UiUrl]]}]:
    // "https:", "", then the host of UiUrl.
    let sub = tagged(&origins[0], "Sub");
    let sub = sub.as_sequence().expect("!Sub [text, vars]");
    assert_eq!(sub[0].as_str(), Some("https://${Host}"));
    let select = tagged(&sub[1]["Host"], "Select");
    let select = select.as_sequence().expect("!Select [i, list]");
    assert_eq!(select[0].as_u64(), Some(2));
    let split = tagged(&select[1], "Split");
    let split = split.as_sequence().expect("!Split [sep, text]");
    assert_eq!(split[0].as_str(), Some("/"));
    assert_eq!(tagged(&split[1], "Ref").as_str(), Some("UiUrl"));
}
