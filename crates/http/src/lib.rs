//! The HTTP API's routes, defined once.
//!
//! [`ROUTES`] is the one list of what the API serves: method, path, the
//! roles that may call it, the function (and so the execution role) that
//! serves it on AWS, its query parameters with their limits, and what it
//! answers. Everything else is derived from it: request matching
//! ([`find`]), the role check, query checks ([`check_query`]), the
//! OpenAPI 3.1 document ([`openapi::document`]), and the tests that hold
//! `infra/template.yaml`'s API events and the committed `docs/openapi.json`
//! to it. Errors are RFC 9457 problem documents ([`Problem`]).
//!
//! The handlers ([`router`]) are written once too, over core's ports: this
//! crate knows no AWS and no concrete store. `functions/api` serves them
//! through `lambda_http`, and `agencylink serve` over the embedded store.

pub mod exports;
pub mod openapi;
mod problem;
pub mod profiles;
pub mod router;
pub mod ui;

pub use problem::{PROBLEM_CONTENT_TYPE, Problem};

/// Who may call a route: the roles of `functions/api`'s `auth` module, by
/// kind (an agency uploader's agency does not matter here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoleKind {
    /// An agency's uploader.
    Agency,
    /// A police or partnership analyst.
    Analyst,
    /// An auditor: lineage and the access log.
    Auditor,
    /// The key custodian: rotates the key, reads nothing here.
    KeyCustodian,
    /// An operator: deploys, reads nothing here.
    Operator,
}

impl RoleKind {
    /// Every role.
    pub const ALL: [RoleKind; 5] = [
        RoleKind::Agency,
        RoleKind::Analyst,
        RoleKind::Auditor,
        RoleKind::KeyCustodian,
        RoleKind::Operator,
    ];

    /// The role's name, as its Cognito group is named.
    pub fn name(self) -> &'static str {
        match self {
            RoleKind::Agency => "agency",
            RoleKind::Analyst => "analyst",
            RoleKind::Auditor => "auditor",
            RoleKind::KeyCustodian => "key-custodian",
            RoleKind::Operator => "operator",
        }
    }
}

/// An HTTP method the API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A read.
    Get,
    /// A request that changes something.
    Post,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// What a route does: the handler `functions/api` dispatches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// This document.
    OpenApi,
    /// Who the caller is.
    Me,
    /// A person's timeline.
    PersonTimeline,
    /// The network around a person.
    PersonNetwork,
    /// Flat rows or a chart, behind a download link.
    Export,
    /// A large export, queued as a job.
    ExportJob,
    /// An export job's status and link.
    ExportStatus,
    /// The clerical review queue.
    ReviewList,
    /// One review pair.
    ReviewShow,
    /// Decide a review pair.
    ReviewDecision,
    /// A page of lineage.
    LineagePage,
    /// Verify lineage.
    LineageVerify,
    /// One upload's lineage events.
    LineageUpload,
    /// A page of the access log.
    AccessLogPage,
    /// Verify the access log.
    AccessLogVerify,
    /// Ask for a presigned upload.
    UploadCreate,
    /// The agency's uploads.
    UploadList,
    /// One upload's status and report.
    UploadShow,
    /// The stored profiles.
    ProfileList,
    /// One profile edition's files.
    ProfileShow,
    /// Ask for a profile build.
    ProfileRequest,
}

/// Which function serves a route on AWS: each has its own execution role
/// (`infra/template.yaml`), so a route's lane bounds what its handler can
/// touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// `ApiFunction`: analyst reads and review decisions.
    Analyst,
    /// `AuditApiFunction`: lineage and the access log.
    Audit,
    /// `UploadApiFunction`: agency uploads.
    Uploads,
    /// `ProfileApiFunction`: stored problem profiles.
    Profiles,
}

impl Lane {
    /// The template's logical id of the function serving the lane.
    pub fn function(self) -> &'static str {
        match self {
            Lane::Analyst => "ApiFunction",
            Lane::Audit => "AuditApiFunction",
            Lane::Uploads => "UploadApiFunction",
            Lane::Profiles => "ProfileApiFunction",
        }
    }
}

/// A query parameter's type and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text.
    Text,
    /// A whole number in a range (inclusive).
    Integer {
        /// The least.
        min: u64,
        /// The most.
        max: u64,
    },
    /// One of these words.
    OneOf(&'static [&'static str]),
}

/// One query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// Its name.
    pub name: &'static str,
    /// Whether a request must carry it.
    pub required: bool,
    /// Its type and limits.
    pub kind: Kind,
    /// What it is for.
    pub about: &'static str,
}

/// One route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path, `{name}` for a path parameter (one segment).
    pub path: &'static str,
    /// The handler.
    pub op: Op,
    /// Who may call it.
    pub roles: &'static [RoleKind],
    /// The function serving it on AWS.
    pub lane: Lane,
    /// One line.
    pub summary: &'static str,
    /// More, for the OpenAPI document.
    pub about: &'static str,
    /// Query parameters.
    pub query: &'static [Param],
    /// The JSON body a POST takes, described (None: no body).
    pub body: Option<&'static str>,
    /// The success status.
    pub ok: u16,
    /// For a list: the member holding the page's items. Every list pages
    /// with `?after=` (the previous page's `next`) and `?limit=`.
    pub list: Option<&'static str>,
    /// Whether each call is written to the access log (and its WORM
    /// copy) before anything is returned.
    pub logged: bool,
}

impl Route {
    /// Whether `role` may call this route.
    pub fn allows(&self, role: RoleKind) -> bool {
        self.roles.contains(&role)
    }

    /// The route's query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&'static Param> {
        self.query.iter().find(|p| p.name == name)
    }

    /// The path with each parameter filled in with `x1`: a request path
    /// that reaches this route (for tests and checks).
    pub fn example_path(&self) -> String {
        self.path
            .split('/')
            .map(|s| if s.starts_with('{') { "x1" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Who may call it, as words ("analysts and agencies").
    pub fn who(&self) -> String {
        let names: Vec<String> = self
            .roles
            .iter()
            .map(|r| match r {
                RoleKind::Agency => "agency uploaders".to_owned(),
                RoleKind::KeyCustodian => "key custodians".to_owned(),
                r => format!("{}s", r.name()),
            })
            .collect();
        match names.as_slice() {
            [] => "nobody".to_owned(),
            [one] => one.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        }
    }
}

/// The most entries one lineage or access-log page returns (and the
/// default): well inside Lambda's 6 MB response limit.
pub const LOG_PAGE_LIMIT: u64 = 500;
/// The most uploads, review items or profiles one page returns.
pub const PAGE_LIMIT: u64 = 100;
/// The most errors an upload's rejection report carries in an answer
/// (`GET /uploads/{id}`): the rest are counted, see [`cap_report`].
pub const REPORT_ERRORS_MAX: usize = 1000;

/// Cap a JSON rejection report's `errors` at [`REPORT_ERRORS_MAX`] (an
/// answer must stay far inside API Gateway's limits), saying how many
/// there were (`errors_total`) and whether some were left out
/// (`errors_truncated`). A report without an `errors` array is left as it is.
pub fn cap_report(report: &mut serde_json::Value) {
    if let Some(errors) = report
        .get_mut("errors")
        .and_then(serde_json::Value::as_array_mut)
    {
        let total = errors.len();
        errors.truncate(REPORT_ERRORS_MAX);
        report["errors_total"] = serde_json::json!(total);
        report["errors_truncated"] = serde_json::json!(total > REPORT_ERRORS_MAX);
    }
}

/// The deepest a network query walks (hops).
pub const MAX_NETWORK_DEPTH: u64 = 6;
/// The most people a network answer holds.
pub const MAX_NETWORK_PEOPLE: u64 = 2_000;

const PURPOSE: Param = Param {
    name: "purpose",
    required: true,
    kind: Kind::Text,
    about: "why the analyst reads this (recorded in the access log with the read)",
};

const fn limit(max: u64) -> Param {
    Param {
        name: "limit",
        required: false,
        kind: Kind::Integer { min: 1, max },
        about: "the most items in the page (the default is the most)",
    }
}

const AFTER_SEQ: Param = Param {
    name: "after",
    required: false,
    kind: Kind::Integer {
        min: 0,
        max: u64::MAX,
    },
    about: "the cursor: the previous page's `next` (the seq the page starts after; 0, the start, by default)",
};

const AFTER_ID: Param = Param {
    name: "after",
    required: false,
    kind: Kind::Text,
    about: "the cursor: the previous page's `next`",
};

const ANALYST: &[RoleKind] = &[RoleKind::Analyst];
const AUDITOR: &[RoleKind] = &[RoleKind::Auditor];
const AGENCY: &[RoleKind] = &[RoleKind::Agency];
const ANALYST_OR_AGENCY: &[RoleKind] = &[RoleKind::Analyst, RoleKind::Agency];

/// Every route the API serves.
pub static ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: "/openapi.json",
        op: Op::OpenApi,
        roles: &RoleKind::ALL,
        lane: Lane::Analyst,
        summary: "This OpenAPI document",
        about: "The routes, roles, parameters and answers of this API, generated from the code that serves them.",
        query: &[],
        body: None,
        ok: 200,
        list: None,
        logged: false,
    },
    Route {
        method: Method::Get,
        path: "/me",
        op: Op::Me,
        roles: &RoleKind::ALL,
        lane: Lane::Analyst,
        summary: "Who the caller is",
        about: "The caller's identity (as the access log records it), role and, for an agency uploader, agency: what a client shows and which views it offers. Reads no data.",
        query: &[],
        body: None,
        ok: 200,
        list: None,
        logged: false,
    },
    Route {
        method: Method::Get,
        path: "/people/{id}",
        op: Op::PersonTimeline,
        roles: ANALYST,
        lane: Lane::Analyst,
        summary: "A person's timeline across agencies",
        about: "Every record of the person (a merged id resolves to the person it joined), oldest first.",
        query: &[PURPOSE],
        body: None,
        ok: 200,
        list: None,
        logged: true,
    },
    Route {
        method: Method::Get,
        path: "/people/{id}/network",
        op: Op::PersonNetwork,
        roles: ANALYST,
        lane: Lane::Analyst,
        summary: "The people tied to a person",
        about: "People sharing crimes, vehicles, phones and other linking values with the person, to a depth and size the caller may lower but not raise past the caps; as JSON, or as a chart (GraphML, i2) stored for 15 minutes behind a download link.",
        query: &[
            PURPOSE,
            Param {
                name: "max_depth",
                required: false,
                kind: Kind::Integer {
                    min: 1,
                    max: MAX_NETWORK_DEPTH,
                },
                about: "hops from the person (3 by default)",
            },
            Param {
                name: "max_people",
                required: false,
                kind: Kind::Integer {
                    min: 1,
                    max: MAX_NETWORK_PEOPLE,
                },
                about: "people returned at most, the person included (200 by default)",
            },
            Param {
                name: "format",
                required: false,
                kind: Kind::OneOf(&["json", "graphml", "i2"]),
                about: "json (the default) answers in the body; graphml and i2 store a chart and answer its link",
            },
        ],
        body: None,
        ok: 200,
        list: None,
        logged: true,
    },
    Route {
        method: Method::Get,
        path: "/export",
        op: Op::Export,
        roles: ANALYST,
        lane: Lane::Analyst,
        summary: "Merged, pseudonymised records, behind a download link",
        about: "Flat rows (CSV, NDJSON) or a chart (i2, GraphML) of one dataset or all, stored for 15 minutes behind a download link. Flat exports of more than 50,000 rows are refused with 413: POST /exports runs them as a job.",
        query: &[
            PURPOSE,
            Param {
                name: "dataset",
                required: false,
                kind: Kind::Text,
                about: "one dataset id (every dataset by default)",
            },
            Param {
                name: "format",
                required: false,
                kind: Kind::OneOf(&["csv", "ndjson", "i2", "graphml"]),
                about: "csv by default",
            },
        ],
        body: None,
        ok: 200,
        list: None,
        logged: true,
    },
    Route {
        method: Method::Post,
        path: "/exports",
        op: Op::ExportJob,
        roles: ANALYST,
        lane: Lane::Analyst,
        summary: "Queue a large flat export as a job",
        about: "The request is in the access log before it is queued; the profile function (on AWS) or the server itself (`agencylink serve`) writes the export, and GET /exports/{id} gives its link to the analyst who asked.",
        query: &[],
        body: Some(r#"{"purpose": text, "dataset": text, "format": "csv" | "ndjson"}"#),
        ok: 202,
        list: None,
        logged: true,
    },
    Route {
        method: Method::Get,
        path: "/exports/{id}",
        op: Op::ExportStatus,
        roles: ANALYST,
        lane: Lane::Analyst,
        summary: "An export job's status, and its link once done",
        about: "queued, failed (with why) or done (with a 15-minute download link, the rows and datasets). Another analyst's job is a 404.",
        query: &[PURPOSE],
        body: None,
        ok: 200,
        list: None,
        logged: true,
    },
    Route {
        method: Method::Get,
        path: "/review",
        op: Op::ReviewList,
        roles: ANALYST,
        lane: Lane::Analyst,
        summary: "The clerical review queue",
        about: "Pairs probabilistic linkage could not decide, most probable first.",
        query: &[
            PURPOSE,
            Param {
                name: "status",
                required: false,
                kind: Kind::OneOf(&["waiting", "decided", "all"]),
                about: "waiting (the default), decided or all",
            },
            AFTER_ID,
            limit(PAGE_LIMIT),
        ],
        body: None,
        ok: 200,
        list: Some("items"),
        logged: true,
    },
    Route {
        method: Method::Get,
        path: "/review/{id}",
        op: Op::ReviewShow,
        roles: ANALYST,
        lane: Lane::Analyst,
        summary: "One review pair",
        about: "Agreement levels, weights and both records' pseudonymised attributes.",
        query: &[PURPOSE],
        body: None,
        ok: 200,
        list: None,
        logged: true,
    },
    Route {
        method: Method::Post,
        path: "/review/{id}/decision",
        op: Op::ReviewDecision,
        roles: ANALYST,
        lane: Lane::Analyst,
        summary: "Decide a review pair",
        about: "In the access log before it takes effect; a match merges the two people.",
        query: &[],
        body: Some(
            r#"{"decision": "match" | "non-match" | "unsure", "reason": text, "purpose": text}"#,
        ),
        ok: 200,
        list: None,
        logged: true,
    },
    Route {
        method: Method::Get,
        path: "/lineage",
        op: Op::LineagePage,
        roles: AUDITOR,
        lane: Lane::Audit,
        summary: "Lineage events, a page at a time",
        about: "Oldest first; `next` is the following page's `after`, null at the head.",
        query: &[AFTER_SEQ, limit(LOG_PAGE_LIMIT)],
        body: None,
        ok: 200,
        list: Some("events"),
        logged: false,
    },
    Route {
        method: Method::Get,
        path: "/lineage/verify",
        op: Op::LineageVerify,
        roles: AUDITOR,
        lane: Lane::Audit,
        summary: "Verify lineage",
        about: "The hash chain, the WORM copies and the latest signed checkpoint, as `agencylink lineage verify` (less its reconciliation with the store, which reads every record). A broken log is a finding: 200 with `ok: false`.",
        query: &[],
        body: None,
        ok: 200,
        list: None,
        logged: false,
    },
    Route {
        method: Method::Get,
        path: "/lineage/uploads/{upload_id}",
        op: Op::LineageUpload,
        roles: AUDITOR,
        lane: Lane::Audit,
        summary: "One upload's lineage events",
        about: "Every event naming the upload, oldest first.",
        query: &[],
        body: None,
        ok: 200,
        list: None,
        logged: false,
    },
    Route {
        method: Method::Get,
        path: "/access-log",
        op: Op::AccessLogPage,
        roles: AUDITOR,
        lane: Lane::Audit,
        summary: "Who read what, and why, a page at a time",
        about: "Oldest first; `next` is the following page's `after`, null at the head.",
        query: &[AFTER_SEQ, limit(LOG_PAGE_LIMIT)],
        body: None,
        ok: 200,
        list: Some("entries"),
        logged: false,
    },
    Route {
        method: Method::Get,
        path: "/access-log/verify",
        op: Op::AccessLogVerify,
        roles: AUDITOR,
        lane: Lane::Audit,
        summary: "Verify the access log",
        about: "The hash chain, the WORM copies and the latest signed checkpoint.",
        query: &[],
        body: None,
        ok: 200,
        list: None,
        logged: false,
    },
    Route {
        method: Method::Post,
        path: "/uploads",
        op: Op::UploadCreate,
        roles: AGENCY,
        lane: Lane::Uploads,
        summary: "Ask for a presigned upload",
        about: "A ticket and a presigned POST form for the caller's agency's own landing prefix (size-limited, SSE-KMS, 15 minutes). The agency comes from the token, never the request.",
        query: &[],
        body: Some(r#"{"dataset": text, "format": "csv" | "ndjson"}"#),
        ok: 201,
        list: None,
        logged: false,
    },
    Route {
        method: Method::Get,
        path: "/uploads",
        op: Op::UploadList,
        roles: AGENCY,
        lane: Lane::Uploads,
        summary: "The agency's uploads",
        about: "Newest first; `next` is the following page's `after`.",
        query: &[AFTER_ID, limit(PAGE_LIMIT)],
        body: None,
        ok: 200,
        list: Some("uploads"),
        logged: false,
    },
    Route {
        method: Method::Get,
        path: "/uploads/{id}",
        op: Op::UploadShow,
        roles: AGENCY,
        lane: Lane::Uploads,
        summary: "One upload's status, counts and rejection report",
        about: "Another agency's upload is a 404. The report holds row numbers, fields, codes and code-shaped values, never an identifier's value.",
        query: &[],
        body: None,
        ok: 200,
        list: None,
        logged: false,
    },
    Route {
        method: Method::Get,
        path: "/profiles",
        op: Op::ProfileList,
        roles: ANALYST_OR_AGENCY,
        lane: Lane::Profiles,
        summary: "The stored problem profiles",
        about: "Newest period first: both editions for analysts, the partner edition for agencies.",
        query: &[AFTER_ID, limit(PAGE_LIMIT)],
        body: None,
        ok: 200,
        list: Some("profiles"),
        logged: false,
    },
    Route {
        method: Method::Get,
        path: "/profiles/{id}",
        op: Op::ProfileShow,
        roles: ANALYST_OR_AGENCY,
        lane: Lane::Profiles,
        summary: "One profile edition's files",
        about: "Each file with a 15-minute download link. Analysts state a purpose and each fetch is in the access log; agencies get the partner edition only.",
        query: &[Param {
            name: "purpose",
            required: false,
            kind: Kind::Text,
            about: "required of analysts: why they read it (recorded in the access log)",
        }],
        body: None,
        ok: 200,
        list: None,
        logged: true,
    },
    Route {
        method: Method::Post,
        path: "/profiles",
        op: Op::ProfileRequest,
        roles: ANALYST,
        lane: Lane::Profiles,
        summary: "Ask for a profile build now",
        about: "The profile function (on AWS) or the server itself (`agencylink serve`) builds both editions; the request is in the access log before it is queued.",
        query: &[],
        body: Some(r#"{"purpose": text, "from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}"#),
        ok: 202,
        list: None,
        logged: true,
    },
];

/// A request matched to its route, with the path parameters' values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched<'a> {
    /// The route.
    pub route: &'static Route,
    /// Path parameters, in order.
    pub params: Vec<(&'static str, &'a str)>,
}

impl<'a> Matched<'a> {
    /// A path parameter's value.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// Why a request matched no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// No route has this path.
    NotFound,
    /// Routes have this path, but not with this method.
    MethodNotAllowed(Vec<Method>),
}

/// The route for `method` and `path` (a trailing slash is ignored; an API
/// Gateway stage prefix must already be stripped).
pub fn find<'a>(method: &str, path: &'a str) -> Result<Matched<'a>, Miss> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut allowed = Vec::new();
    for route in ROUTES {
        let Some(params) = match_path(route.path, &segments) else {
            continue;
        };
        if route.method.as_str() == method {
            return Ok(Matched { route, params });
        }
        allowed.push(route.method);
    }
    if allowed.is_empty() {
        Err(Miss::NotFound)
    } else {
        Err(Miss::MethodNotAllowed(allowed))
    }
}

fn match_path<'a>(
    template: &'static str,
    segments: &[&'a str],
) -> Option<Vec<(&'static str, &'a str)>> {
    let parts: Vec<&'static str> = template.split('/').filter(|s| !s.is_empty()).collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut params = Vec::new();
    for (part, seg) in parts.iter().zip(segments) {
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => params.push((name, *seg)),
            None if part == seg => {}
            None => return None,
        }
    }
    Some(params)
}

/// Check a request's query against its route: every required parameter
/// present and non-blank, every known one of its type and within its
/// limits. Parameters the route does not name are ignored.
pub fn check_query(route: &Route, get: &dyn Fn(&str) -> Option<String>) -> Result<(), Problem> {
    for p in route.query {
        let Some(value) = get(p.name) else {
            if p.required {
                return Err(Problem::bad_request(format!(
                    "{} is required: {}",
                    p.name, p.about
                )));
            }
            continue;
        };
        let value = value.trim();
        match p.kind {
            Kind::Text if p.required && value.is_empty() => {
                return Err(Problem::bad_request(format!(
                    "{} must not be blank: {}",
                    p.name, p.about
                )));
            }
            Kind::Text => {}
            Kind::Integer { min, max } => {
                if !value.parse::<u64>().is_ok_and(|n| (min..=max).contains(&n)) {
                    let range = if max == u64::MAX {
                        format!("a whole number, at least {min}")
                    } else {
                        format!("a whole number from {min} to {max}")
                    };
                    return Err(Problem::bad_request(format!(
                        "{} must be {range}: {}",
                        p.name, p.about
                    )));
                }
            }
            Kind::OneOf(words) => {
                if !words.contains(&value) {
                    return Err(Problem::bad_request(format!(
                        "{} must be one of {}",
                        p.name,
                        words.join(", ")
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_with_their_parameters_and_nothing_else() {
        let m = find("GET", "/people/p_abc/network/").expect("a route");
        assert_eq!(m.route.op, Op::PersonNetwork);
        assert_eq!(m.param("id"), Some("p_abc"));
        assert_eq!(
            find("GET", "/people/p_abc").expect("route").route.op,
            Op::PersonTimeline
        );
        assert_eq!(
            find("GET", "/lineage/verify").expect("route").route.op,
            Op::LineageVerify,
            "a fixed segment, not an upload id"
        );
        assert_eq!(find("GET", "/people"), Err(Miss::NotFound));
        assert_eq!(find("GET", "/people/a/b/c"), Err(Miss::NotFound));
        assert_eq!(find("GET", "/People/p_abc"), Err(Miss::NotFound));
        assert_eq!(
            find("DELETE", "/uploads"),
            Err(Miss::MethodNotAllowed(vec![Method::Post, Method::Get]))
        );
        assert_eq!(
            find("POST", "/review/r1"),
            Err(Miss::MethodNotAllowed(vec![Method::Get]))
        );
        assert_eq!(
            find("POST", "/review/r1/decision")
                .expect("route")
                .param("id"),
            Some("r1")
        );
    }

    #[test]
    fn every_route_is_unique_and_reachable() {
        for (i, r) in ROUTES.iter().enumerate() {
            let path = r.example_path();
            let m = find(r.method.as_str(), &path).expect("reachable");
            assert_eq!(m.route, r, "{} {} is shadowed", r.method.as_str(), r.path);
            assert!(!r.roles.is_empty(), "{}: nobody may call it", r.path);
            for other in &ROUTES[i + 1..] {
                assert!(
                    !(other.method == r.method && other.path == r.path),
                    "{} twice",
                    r.path
                );
            }
            if r.list.is_some() {
                assert!(
                    r.param("after").is_some() && r.param("limit").is_some(),
                    "{}: a list pages",
                    r.path
                );
            }
        }
    }

    #[test]
    fn queries_are_checked_against_the_route() {
        let network = find("GET", "/people/p/network").expect("route").route;
        let q = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(check_query(network, &q(&[("purpose", "case 1")])).is_ok());
        let err = check_query(network, &q(&[])).expect_err("no purpose");
        assert_eq!(err.status, 400);
        assert!(err.detail.contains("purpose is required"));
        assert!(check_query(network, &q(&[("purpose", "  ")])).is_err());
        for bad in ["0", "7", "x", "-1", "1.5"] {
            let pairs: &'static [(&str, &str)] =
                Box::leak(Box::new([("purpose", "p"), ("max_depth", bad)]));
            let err = check_query(network, &q(pairs)).expect_err(bad);
            assert!(err.detail.contains("from 1 to 6"), "{}", err.detail);
        }
        assert!(check_query(network, &q(&[("purpose", "p"), ("max_people", "2001")])).is_err());
        assert!(check_query(network, &q(&[("purpose", "p"), ("max_people", "2000")])).is_ok());
        assert!(check_query(network, &q(&[("purpose", "p"), ("format", "pdf")])).is_err());
        let lineage = find("GET", "/lineage").expect("route").route;
        assert!(check_query(lineage, &q(&[("limit", "501")])).is_err());
        assert!(check_query(lineage, &q(&[("after", "x")])).is_err());
        assert!(check_query(lineage, &q(&[("after", "12"), ("limit", "500")])).is_ok());
    }

    #[test]
    fn who_reads_as_words() {
        assert_eq!(find("GET", "/lineage").expect("r").route.who(), "auditors");
        assert_eq!(
            find("GET", "/profiles").expect("r").route.who(),
            "analysts and agency uploaders"
        );
    }
}
