//! Requests as API Gateway delivers them (fixture events), for the API tests
//! and the end-to-end story.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use agencylink_aws::testing::rt;
use agencylink_fn_api::{Api, handle};
use lambda_http::{Body, Request};
use serde_json::Value;

const HTTP_API: &str = include_str!("../fixtures/http-api-jwt.json");
const REST_API: &str = include_str!("../fixtures/rest-api-lambda-authorizer.json");

fn query_parts(query: &[(&str, &str)]) -> (String, Value) {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let raw = query
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let map: serde_json::Map<String, Value> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    (raw, Value::Object(map))
}

/// An HTTP API (payload 2.0) request with a JWT authorizer's claims.
pub fn http_api(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    role: &str,
    sub: &str,
) -> Request {
    let (raw, map) = query_parts(query);
    let text = HTTP_API
        .replace("{{path}}", path)
        .replace("{{raw_query}}", &raw)
        .replace("{{query}}", &map.to_string())
        .replace("{{role}}", role)
        .replace("{{sub}}", sub)
        .replace("{{method}}", method);
    lambda_http::request::from_str(&text).expect("fixture request")
}

/// A REST API proxy request with a Lambda authorizer's context.
pub fn rest_api(path: &str, role: &str, sub: &str) -> Request {
    let text = REST_API
        .replace("{{path}}", path)
        .replace("{{proxy}}", path.trim_start_matches('/'))
        .replace("{{role}}", role)
        .replace("{{sub}}", sub);
    lambda_http::request::from_str(&text).expect("fixture request")
}

/// Call the handler as Lambda would; returns (status, JSON body).
pub fn call(api: &Arc<Api>, req: Request) -> (u16, Value) {
    let resp = rt().block_on(handle(api.clone(), req)).expect("a response");
    let status = resp.status().as_u16();
    let body = match resp.body() {
        Body::Text(t) => serde_json::from_str(t).expect("JSON body"),
        Body::Binary(b) => serde_json::from_slice(b).expect("JSON body"),
        Body::Empty => Value::Null,
        _ => Value::Null,
    };
    (status, body)
}
