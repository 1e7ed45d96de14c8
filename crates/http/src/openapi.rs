//! The OpenAPI 3.1 document, generated from [`ROUTES`](crate::ROUTES), so
//! it lists exactly what is served. `functions/api` serves it at
//! `/openapi.json`; `docs/openapi.json` is the committed copy a test holds
//! to this, and CI validates that copy with `openapi-spec-validator`.

use serde_json::{Map, Value, json};

use crate::{Kind, Method, Param, ROUTES, Route};

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        let method = match route.method {
            Method::Get => "get",
            Method::Post => "post",
        };
        item[method] = operation(route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "agencylink API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Analyst reads, audit, agency uploads and the CSE problem profile over the merged, pseudonymised store. Every caller presents a Cognito user pool token; the role comes only from the pool's groups (cognito:groups). Every analyst read is written to the access log and its WORM copy, with its purpose, before anything is returned. Errors are RFC 9457 problem documents. Lists page with ?after= (the previous page's `next`) and ?limit=.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "security": [{"cognito": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "cognito": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A Cognito user pool ID or access token, verified by the API Gateway JWT authorizer.",
                },
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details.",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string", "format": "uri-reference"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                    },
                },
            },
            "responses": {
                "BadRequest": problem_response("The request is malformed: a parameter is missing, of the wrong type or past its limit."),
                "Forbidden": problem_response("The caller's role may not call this route, or the token carries no single agencylink role."),
                "NotFound": problem_response("No such route, or no such person, item, upload or profile."),
                "ServerError": problem_response("The store failed (500), or is unavailable for now (503: try again)."),
            },
        },
    })
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    })
}

fn operation_id(route: &Route) -> String {
    let name = format!("{:?}", route.op);
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => name,
    }
}

fn schema(param: &Param) -> Value {
    match param.kind {
        Kind::Text => json!({"type": "string"}),
        Kind::Integer { min, max } if max == u64::MAX => {
            json!({"type": "integer", "minimum": min})
        }
        Kind::Integer { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
        Kind::OneOf(words) => json!({"type": "string", "enum": words}),
    }
}

fn operation(route: &Route) -> Value {
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    parameters.extend(route.query.iter().map(|p| {
        json!({"name": p.name, "in": "query", "required": p.required, "description": p.about, "schema": schema(p)})
    }));
    let mut description = format!("{} Who may call it: {}.", route.about, route.who());
    if route.logged {
        description.push_str(" Written to the access log (and its WORM copy) before anything is returned; if that fails, nothing is.");
    }
    let ok_schema = match route.list {
        Some(member) => json!({
            "type": "object",
            "required": [member, "next"],
            "properties": {
                member: {"type": "array"},
                "next": {"type": ["string", "integer", "null"], "description": "the next page's `after`; null on the last page"},
            },
        }),
        None => json!({"type": "object"}),
    };
    let mut responses = Map::new();
    responses.insert(
        route.ok.to_string(),
        json!({"description": route.summary, "content": {"application/json": {"schema": ok_schema}}}),
    );
    for (status, name) in [
        ("400", "BadRequest"),
        ("403", "Forbidden"),
        ("404", "NotFound"),
        ("500", "ServerError"),
        ("503", "ServerError"),
    ] {
        responses.insert(
            status.to_owned(),
            json!({"$ref": format!("#/components/responses/{name}")}),
        );
    }
    let mut op = json!({
        "operationId": operation_id(route),
        "summary": route.summary,
        "description": description,
        "tags": [format!("{:?}", route.lane).to_lowercase()],
        "x-agencylink-roles": route.roles.iter().map(|r| r.name()).collect::<Vec<_>>(),
        "x-agencylink-function": route.lane.function(),
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(body) = route.body {
        op["requestBody"] = json!({
            "required": true,
            "description": body,
            "content": {"application/json": {"schema": {"type": "object"}}},
        });
    }
    op
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route_once_with_its_roles() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ops = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let route = crate::find(&method.to_uppercase(), path)
                    .map(|m| m.route)
                    .or_else(|_| {
                        ROUTES
                            .iter()
                            .find(|r| {
                                r.path == path && r.method.as_str().eq_ignore_ascii_case(method)
                            })
                            .ok_or(())
                    })
                    .expect("a served route");
                assert_eq!(
                    op["x-agencylink-roles"],
                    json!(route.roles.iter().map(|r| r.name()).collect::<Vec<_>>())
                );
                ops += 1;
            }
        }
        assert_eq!(ops, ROUTES.len());
        let network = &doc["paths"]["/people/{id}/network"]["get"];
        let depth = network["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == "max_depth")
            .expect("max_depth");
        assert_eq!(
            depth["schema"],
            json!({"type": "integer", "minimum": 1, "maximum": 6})
        );
    }
}
