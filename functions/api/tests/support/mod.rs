//! Requests as API Gateway delivers them (fixture events), for the API tests
//! and the end-to-end story.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use agencylink_aws::testing::rt;
use agencylink_fn_api::{Api, handle};
use lambda_http::{Body, Request};
use serde_json::Value;

const HTTP_API: &str = include_str!("../fixtures/http-api-jwt.json");
const REST_API: &str = include_str!("../fixtures/rest-api-cognito-authorizer.json");

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

/// The claims of a Cognito access token for `sub` in the groups `groups`
/// (space-separated; none when empty), as API Gateway's JWT authorizer
/// passes them: every claim a string, an array as `"[a b]"`.
pub fn token_claims(groups: &str, sub: &str) -> Value {
    let mut claims = serde_json::json!({
        "sub": sub,
        "iss": "https://cognito-idp.eu-west-2.amazonaws.com/eu-west-2_EXAMPLE",
        "token_use": "access",
        "client_id": "example-client",
    });
    if !groups.is_empty() {
        claims["cognito:groups"] = Value::from(format!("[{groups}]"));
    }
    claims
}

/// An HTTP API (payload 2.0) request from a user in the Cognito groups
/// `groups` (space-separated), through a JWT authorizer.
pub fn http_api(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    groups: &str,
    sub: &str,
) -> Request {
    http_api_claims(method, path, query, &token_claims(groups, sub))
}

/// An HTTP API (payload 2.0) request with exactly these JWT claims.
pub fn http_api_claims(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    claims: &Value,
) -> Request {
    let (raw, map) = query_parts(query);
    let text = HTTP_API
        .replace("{{path}}", path)
        .replace("{{raw_query}}", &raw)
        .replace("{{query}}", &map.to_string())
        .replace("{{method}}", method)
        .replace("{{claims}}", &claims.to_string());
    lambda_http::request::from_str(&text).expect("fixture request")
}

/// A REST API proxy request through a Cognito user pool authorizer, from a
/// user in the groups `groups` (REST APIs pass them comma-separated).
pub fn rest_api(path: &str, groups: &str, sub: &str) -> Request {
    let claims = serde_json::json!({
        "sub": sub,
        "cognito:groups": groups.split_whitespace().collect::<Vec<_>>().join(","),
        "token_use": "id",
    });
    let text = REST_API
        .replace("{{path}}", path)
        .replace("{{proxy}}", path.trim_start_matches('/'))
        .replace("{{sub}}", sub)
        .replace("{{claims}}", &claims.to_string());
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

/// An HTTP API (payload 2.0) request with no caller at all: no token, no
/// authorizer context, as a route with `Authorizer: NONE` delivers it.
pub fn anonymous(method: &str, path: &str) -> Request {
    let mut event: Value = serde_json::from_str(
        &HTTP_API
            .replace("{{path}}", path)
            .replace("{{raw_query}}", "")
            .replace("{{query}}", "{}")
            .replace("{{method}}", method)
            .replace("{{claims}}", "{}"),
    )
    .expect("fixture JSON");
    event["requestContext"]
        .as_object_mut()
        .expect("a context")
        .remove("authorizer");
    event["headers"]
        .as_object_mut()
        .expect("headers")
        .remove("authorization");
    lambda_http::request::from_str(&event.to_string()).expect("fixture request")
}

/// Call the handler as Lambda would; the whole response.
pub fn call_raw(api: &Arc<Api>, req: Request) -> lambda_http::Response<Body> {
    rt().block_on(handle(api.clone(), req)).expect("a response")
}
