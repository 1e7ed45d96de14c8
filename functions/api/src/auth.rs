//! Who is calling: the role comes only from the Cognito user pool's groups
//! (`cognito:groups`), which only a pool administrator can change, and the
//! identity from `sub`. Nothing a user can write counts: not a `custom:`
//! attribute (a user may update those through any app client that allows
//! it), not a top-level `agencylink_role` claim, not a header, query
//! parameter or body field.
//!
//! | group | role |
//! |---|---|
//! | `agency` plus exactly one `agency-<id>` | [`Role::Agency`] for agency `<id>` |
//! | `analyst` | [`Role::Analyst`] |
//! | `auditor` | [`Role::Auditor`] |
//! | `key-custodian` | [`Role::KeyCustodian`] |
//! | `operator` | [`Role::Operator`] |
//!
//! The agency id is a group too (`agency-<id>`, `<id>` as in `Agencies`)
//! rather than a `custom:` attribute: groups live in the same administrator-
//! only trust domain as the role, whereas a read-only attribute is read-only
//! only in the app clients configured that way, and one misconfigured client
//! would let an uploader name another agency.
//!
//! A member of two or more role groups gets nothing: combining roles would
//! undo the separation of duties (an analyst who is also an auditor would
//! audit their own reads), so the administrator must choose one. A group
//! that differs from a role group only in case (`Analyst`) or a malformed
//! `agency-…` group also refuses the whole token: it is a misconfigured pool,
//! and guessing is not least privilege. Other groups of the pool are not ours
//! and are ignored.

use std::collections::{BTreeSet, HashMap};

use agencylink_aws::valid_agency;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde_json::Value;

/// Who is asking, as the user pool's groups say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Uploads for one agency (through `/uploads`, issue #13); reads no records.
    Agency {
        /// The agency, from the caller's `agency-<id>` group.
        agency: String,
    },
    /// Reads merged, pseudonymised data; every read is logged.
    Analyst,
    /// Reads lineage and the access log; never records.
    Auditor,
    /// Rotates the key secret (outside the API); reads no data.
    KeyCustodian,
    /// Deploys and runs the stack; reads no data.
    Operator,
}

impl Role {
    /// The role's kind, as the route table names who may call a route.
    pub fn kind(&self) -> agencylink_http::RoleKind {
        use agencylink_http::RoleKind;
        match self {
            Role::Agency { .. } => RoleKind::Agency,
            Role::Analyst => RoleKind::Analyst,
            Role::Auditor => RoleKind::Auditor,
            Role::KeyCustodian => RoleKind::KeyCustodian,
            Role::Operator => RoleKind::Operator,
        }
    }
}

/// The caller's role and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The role.
    pub role: Role,
    /// A stable identity (the token's subject).
    pub actor: String,
}

/// Why a request has no principal (every one is a 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Not behind a JWT or Cognito authorizer.
    #[error("no verified token in the request context")]
    NoToken,
    /// The token names nobody.
    #[error("the token has no subject")]
    NoSubject,
    /// No agencylink role group.
    #[error("no agencylink role: the user is in no agencylink group")]
    NoRole,
    /// Several role groups.
    #[error("the user is in more than one agencylink role group; an administrator must choose one")]
    Ambiguous,
    /// A group that looks like ours but is not exactly.
    #[error("the user pool has a misnamed agencylink group; an administrator must fix it")]
    Misnamed,
    /// `agency` without exactly one valid `agency-<id>` group.
    #[error("an agency user needs exactly one agency-<id> group")]
    AgencyUnclear,
}

const GROUPS_CLAIM: &str = "cognito:groups";
const ACTOR_CLAIMS: &[&str] = &["sub"];
const ROLE_GROUPS: &[&str] = &["agency", "analyst", "auditor", "key-custodian", "operator"];
const AGENCY_GROUP_PREFIX: &str = "agency-";

/// The principal from the authorizer's verified claims.
pub fn principal(req: &Request) -> Result<Principal, Denied> {
    let (groups, actor) = match req.request_context_ref().ok_or(Denied::NoToken)? {
        // HTTP API with a JWT authorizer: claims are strings, and an array
        // claim arrives as "[a b c]".
        RequestContext::ApiGatewayV2(ctx) => {
            let claims = ctx
                .authorizer
                .as_ref()
                .and_then(|a| a.jwt.as_ref())
                .map(|j| &j.claims)
                .ok_or(Denied::NoToken)?;
            (
                claims
                    .get(GROUPS_CLAIM)
                    .map(|g| split_groups(g))
                    .unwrap_or_default(),
                string_claim(claims, ACTOR_CLAIMS),
            )
        }
        // REST API with a Cognito user pool authorizer: `authorizer.claims`,
        // groups as "a,b" (or an array). A Lambda authorizer's own context
        // fields are not read: the role must come from the pool.
        RequestContext::ApiGatewayV1(ctx) => {
            let claims = ctx
                .authorizer
                .fields
                .get("claims")
                .and_then(Value::as_object)
                .ok_or(Denied::NoToken)?;
            let groups = match claims.get(GROUPS_CLAIM) {
                Some(Value::String(s)) => split_groups(s),
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            };
            let actor = ACTOR_CLAIMS
                .iter()
                .find_map(|n| claims.get(*n).and_then(Value::as_str))
                .filter(|v| !v.trim().is_empty())
                .map(str::to_owned);
            (groups, actor)
        }
        _ => return Err(Denied::NoToken),
    };
    let actor = actor.ok_or(Denied::NoSubject)?;
    let role = role_from_groups(&groups)?;
    Ok(Principal { role, actor })
}

fn string_claim(claims: &HashMap<String, String>, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| claims.get(*n))
        .filter(|v| !v.trim().is_empty())
        .cloned()
}

/// `"[a b]"`, `"a,b"`, `"[a, b]"` or `"a"` → `["a", "b"]`. Cognito group
/// names cannot contain whitespace; a comma inside one of ours would make it
/// no group of ours, so splitting on it cannot grant anything.
pub fn split_groups(raw: &str) -> Vec<String> {
    let t = raw.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(t);
    t.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The one role the groups give, or why there is none.
pub fn role_from_groups(groups: &[String]) -> Result<Role, Denied> {
    let mut roles = BTreeSet::new();
    let mut agencies = BTreeSet::new();
    for g in groups {
        let g = g.as_str();
        if ROLE_GROUPS.contains(&g) {
            roles.insert(g);
        } else if let Some(id) = g.strip_prefix(AGENCY_GROUP_PREFIX) {
            if !valid_agency(id) {
                return Err(Denied::Misnamed);
            }
            agencies.insert(id);
        } else if ROLE_GROUPS.iter().any(|r| r.eq_ignore_ascii_case(g))
            || g.get(..AGENCY_GROUP_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(AGENCY_GROUP_PREFIX))
        {
            return Err(Denied::Misnamed);
        }
    }
    let role = match roles.into_iter().collect::<Vec<_>>().as_slice() {
        [] => return Err(Denied::NoRole),
        [one] => *one,
        _ => return Err(Denied::Ambiguous),
    };
    Ok(match role {
        "agency" => {
            let mut ids = agencies.into_iter();
            match (ids.next(), ids.next()) {
                (Some(agency), None) => Role::Agency {
                    agency: agency.to_owned(),
                },
                _ => return Err(Denied::AgencyUnclear),
            }
        }
        "analyst" => Role::Analyst,
        "auditor" => Role::Auditor,
        "key-custodian" => Role::KeyCustodian,
        "operator" => Role::Operator,
        _ => return Err(Denied::NoRole),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(groups: &str) -> Result<Role, Denied> {
        role_from_groups(&split_groups(groups))
    }

    #[test]
    fn each_group_maps_to_its_role() {
        assert_eq!(role("[analyst]"), Ok(Role::Analyst));
        assert_eq!(role("auditor"), Ok(Role::Auditor));
        assert_eq!(role("[key-custodian]"), Ok(Role::KeyCustodian));
        assert_eq!(role("operator"), Ok(Role::Operator));
        assert_eq!(
            role("[agency agency-gmp-police]"),
            Ok(Role::Agency {
                agency: "gmp-police".into()
            })
        );
        assert_eq!(
            role("agency-rochdale-council,agency"),
            Ok(Role::Agency {
                agency: "rochdale-council".into()
            })
        );
        // Groups of other applications are ignored.
        assert_eq!(role("[admins analyst]"), Ok(Role::Analyst));
    }

    #[test]
    fn nothing_else_is_a_role() {
        assert_eq!(role(""), Err(Denied::NoRole));
        assert_eq!(role("[]"), Err(Denied::NoRole));
        assert_eq!(role("[admin]"), Err(Denied::NoRole));
        assert_eq!(role("[agency-gmp-police]"), Err(Denied::NoRole));
        for varied in ["Analyst", "AUDITOR", "Key-Custodian", "Agency-gmp-police"] {
            assert_eq!(role(varied), Err(Denied::Misnamed), "{varied}");
        }
        assert_eq!(role("[analyst Auditor]"), Err(Denied::Misnamed));
        assert_eq!(role("[agency agency-GMP]"), Err(Denied::Misnamed));
        assert_eq!(role("[analyst auditor]"), Err(Denied::Ambiguous));
        assert_eq!(role("[agency agency-a operator]"), Err(Denied::Ambiguous));
        assert_eq!(role("[agency]"), Err(Denied::AgencyUnclear));
        assert_eq!(
            role("[agency agency-a agency-b]"),
            Err(Denied::AgencyUnclear)
        );
    }
}
