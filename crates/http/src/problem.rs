//! RFC 9457 problem documents: every error the API answers, as
//! `application/problem+json` with `type`, `title`, `status` and `detail`.
//! `type` is `about:blank`, so `title` is the status's own phrase and
//! `detail` says what to do; a detail never echoes an identifier's value.

use serde_json::{Value, json};

/// The media type of a problem document.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// One error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The HTTP status.
    pub status: u16,
    /// What went wrong and what to do, for a person.
    pub detail: String,
    /// For a 405: the methods the path takes (the `Allow` header).
    pub allow: Vec<&'static str>,
}

impl Problem {
    /// A problem with this status and detail.
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        Problem {
            status,
            detail: detail.into(),
            allow: Vec::new(),
        }
    }

    /// 405: the path takes only `allow` (also the `Allow` header).
    pub fn method_not_allowed(allow: &[crate::Method]) -> Self {
        let names: Vec<&'static str> = allow.iter().map(|m| m.as_str()).collect();
        Problem {
            status: 405,
            detail: format!("this path takes {}", names.join(" and ")),
            allow: names,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(400, detail)
    }

    /// The status's reason phrase, the document's `title`.
    pub fn title(&self) -> &'static str {
        match self.status {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            409 => "Conflict",
            413 => "Content Too Large",
            422 => "Unprocessable Content",
            429 => "Too Many Requests",
            500 => "Internal Server Error",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            s if s < 500 => "Client Error",
            _ => "Server Error",
        }
    }

    /// The document.
    pub fn to_json(&self) -> Value {
        json!({
            "type": "about:blank",
            "title": self.title(),
            "status": self.status,
            "detail": self.detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_has_the_four_members_and_the_status_phrase() {
        let p = Problem::new(503, "the store is unavailable; try again");
        assert_eq!(
            p.to_json(),
            json!({"type": "about:blank", "title": "Service Unavailable", "status": 503,
                   "detail": "the store is unavailable; try again"})
        );
        assert_eq!(Problem::new(418, "x").title(), "Client Error");
    }
}
