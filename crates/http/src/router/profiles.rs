//! The CSE problem profile through the API (built by the profile function,
//! `functions/profile` on AWS, by `agencylink serve` itself locally; stored
//! as [`crate::profiles`] lays out):
//!
//! | route | role | what |
//! |---|---|---|
//! | `GET /profiles[?after=ID&limit=N]` | analyst, agency | stored editions, newest period first, a page at a time: both editions for analysts, the partner edition for agencies |
//! | `GET /profiles/{id}[?purpose=…]` | analyst (purpose required), agency (partner edition) | the edition's files, each with a 15-minute download link |
//! | `POST /profiles` `{"purpose"[, "from", "to"]}` | analyst | ask for a build now; 202, the profile function builds both editions |
//!
//! The analyst edition holds the tracker and pseudonymous ids: only
//! analysts get it, and each fetch is in the access log (and its WORM copy)
//! with the purpose before any link is returned, as every analyst read is.
//! An analyst's fetch of the partner edition is logged too. An agency's
//! fetch of the partner edition (disclosure-controlled counts, what the
//! partnership publishes to its members) is not a read of anyone's data
//! and is not logged. A build request is logged before it is queued.

use agencylink_core::profile::Edition;
use agencylink_core::query::{self, QueryError};
use serde_json::{Value, json};

use super::{Caller, Host, LINK_SECONDS, Response, analyst_read, log_request};
use crate::profiles::{self, Request as BuildRequest};

/// `GET /profiles`: the stored editions the caller may fetch, newest
/// period first, a page at a time (`after`: the previous page's `next`, a
/// profile id).
pub(super) fn list(
    host: &dyn Host,
    who: &Caller,
    after: Option<String>,
    limit: Option<String>,
) -> Response {
    let analyst = who.role == crate::RoleKind::Analyst;
    let limit = limit
        .and_then(|l| l.trim().parse::<usize>().ok())
        .unwrap_or(crate::PAGE_LIMIT as usize);
    let mut listed = match profiles::list(host.objects(), analyst) {
        Ok(listed) => listed,
        Err(e) => return store_failure(&e),
    };
    if let Some(after) = after {
        // Profiles are only ever added, so an id stays where it was.
        let Some(at) = listed.iter().position(|p| p.id == after) else {
            return error(400, "after must be the `next` of the previous page");
        };
        listed.drain(..=at);
    }
    let more = listed.len() > limit;
    listed.truncate(limit);
    let next = more.then(|| listed.last().map(|p| p.id.clone())).flatten();
    respond(200, &json!({ "profiles": listed, "next": next }))
}

/// `GET /profiles/{id}`: download links for every file of the edition.
pub(super) fn fetch(host: &dyn Host, who: &Caller, id: &str, purpose: Option<String>) -> Response {
    let objects = host.objects();
    let links = |edition: Edition, files: &[agencylink_core::ports::ObjectMeta]| {
        let mut out = Vec::new();
        for f in files {
            let url = host.link(who, &f.key)?;
            out.push(json!({
                "name": f.key.rsplit('/').next().unwrap_or_default(),
                "size": f.size,
                "url": url,
            }));
        }
        let (from, to, _) = agencylink_core::profile::parse_profile_id(id).unwrap_or_default();
        Ok::<Value, agencylink_core::ports::StoreError>(json!({
            "id": id,
            "edition": edition.as_str(),
            "from": from,
            "to": to,
            "files": out,
            "expires_in": LINK_SECONDS,
        }))
    };
    if who.role != crate::RoleKind::Analyst {
        // An agency: the partner edition only, unlogged (see the module doc).
        return match profiles::files_of(objects, id) {
            Ok(Some((Edition::Partner, files))) => match links(Edition::Partner, &files) {
                Ok(body) => respond(200, &body),
                Err(e) => store_failure(&e),
            },
            Ok(Some((Edition::Analyst, _))) => {
                error(403, "the analyst edition is for police analysts")
            }
            Ok(None) => error(404, "no such profile"),
            Err(e) => store_failure(&e),
        };
    }
    let (edition, files) = match profiles::files_of(objects, id) {
        Ok(Some(found)) => found,
        Ok(None) => return error(404, "no such profile"),
        Err(e) => return store_failure(&e),
    };
    analyst_read(host, who, purpose, "profile_fetch", id, |_, _| {
        let body = links(edition, &files).map_err(QueryError::Store)?;
        Ok((files.len() as u64, body))
    })
}

/// `POST /profiles`: log the request, then queue it for the profile
/// function.
pub(super) fn request_build(host: &dyn Host, who: &Caller, body: &[u8]) -> Response {
    let body: Value = match body {
        [] => json!({}),
        bytes => match serde_json::from_slice(bytes) {
            Ok(v @ Value::Object(_)) => v,
            _ => return error(400, "the body must be a JSON object"),
        },
    };
    let text = |k: &str| match body.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(format!("{k} must be a string")),
    };
    let (purpose, from, to) = match (text("purpose"), text("from"), text("to")) {
        (Ok(p), Ok(f), Ok(t)) => (p.unwrap_or_default(), f, t),
        (Err(m), _, _) | (_, Err(m), _) | (_, _, Err(m)) => return error(400, &m),
    };
    if let Some(k) = body.as_object().and_then(|o| {
        o.keys()
            .find(|k| !matches!(k.as_str(), "purpose" | "from" | "to"))
    }) {
        return error(
            400,
            &format!("unknown field `{k}`: send purpose, from and to"),
        );
    }
    if let Err(e) = query::check_reader(&who.actor, &purpose) {
        return query_failure(&e);
    }
    let time = host.now();
    let build = BuildRequest {
        from,
        to,
        requested_at: time.clone(),
        requested_by: Some(who.actor.clone()),
    };
    if let Err(msg) = profiles::check_request(&build) {
        return error(400, &msg);
    }
    let target = format!(
        "profile {}..{}",
        build.from.as_deref().unwrap_or("default"),
        build.to.as_deref().unwrap_or("default")
    );
    if let Some(refused) = log_request(host, who, &purpose, "profile_request", &target, &time) {
        return refused;
    }
    match profiles::submit(host.objects(), &build) {
        Ok(key) => {
            host.queued(&key);
            respond(
                202,
                &json!({
                    "status": "queued",
                    "request": key.rsplit('/').next().unwrap_or_default(),
                    "from": build.from,
                    "to": build.to,
                }),
            )
        }
        Err(e) => store_failure(&e),
    }
}

fn respond(status: u16, body: &Value) -> Response {
    Response::json(status, body)
}

fn error(status: u16, detail: &str) -> Response {
    Response::error(status, detail)
}

fn store_failure(e: &agencylink_core::ports::StoreError) -> Response {
    Response::store_failure(e)
}

fn query_failure(e: &QueryError) -> Response {
    Response::query_failure(e)
}
