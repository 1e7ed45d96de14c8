//! The route table held to what is deployed and published:
//! `infra/template.yaml`'s API events serve each route from the function
//! its lane names, and no other path; `docs/openapi.json` is the document
//! the code generates (`AGENCYLINK_WRITE_OPENAPI=1` rewrites it).

use agencylink_http::{ROUTES, openapi};
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

/// Every HttpApi event of the template: (function, method, path).
fn api_events() -> Vec<(String, String, String)> {
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
                out.push((
                    name.as_str().expect("a name").to_owned(),
                    e["Properties"]["Method"]
                        .as_str()
                        .expect("a method")
                        .to_uppercase(),
                    e["Properties"]["Path"].as_str().expect("a path").to_owned(),
                ));
            }
        }
    }
    out
}

#[test]
fn the_template_serves_every_route_from_its_lane_and_nothing_else() {
    let events = api_events();
    assert!(!events.is_empty());
    for r in ROUTES {
        let path = r.example_path();
        let serving: Vec<&str> = events
            .iter()
            .filter(|(_, m, p)| m == r.method.as_str() && covers(p, &path))
            .map(|(f, _, _)| f.as_str())
            .collect();
        assert_eq!(
            serving,
            [r.lane.function()],
            "{} {}: served by the function of its lane, once",
            r.method.as_str(),
            r.path
        );
    }
    for (function, method, pattern) in &events {
        assert!(
            ROUTES
                .iter()
                .any(|r| r.method.as_str() == method && covers(pattern, &r.example_path())),
            "{function}: {method} {pattern} serves no route of the table"
        );
    }
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
