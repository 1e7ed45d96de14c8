//! Stored CSE problem profiles: built (on AWS by the profile function, on
//! its schedule or when an analyst asks through `POST /profiles`; under
//! `agencylink serve` when an analyst asks), kept in an object store (the
//! data bucket, or the data directory), listed and fetched through the API.
//!
//! Layout, in the object store:
//! - `profiles/<from>_<to>/<edition>/` holds one edition for one period:
//!   `profile.json` (written last: its presence means the rest is there),
//!   `profile.html` and one CSV per table. A rebuild of the same period
//!   replaces the files and removes any table the new build no longer has,
//!   so a partner prefix can never keep an analyst table.
//! - `profile-requests/<time>-<random>.json` is an analyst's request,
//!   written by the API and consumed (then deleted) by the profile function,
//!   which S3 invokes through EventBridge. A request file holds the period
//!   asked for, when, and the requester's user id (as the access log's
//!   entry for the request names them).
//!
//! Each edition built is a `profile_build` lineage event (with its WORM
//! copy) naming the files and their digests, appended after the files are
//! stored: a build that fails part-way is retried whole and leaves no event.

use agencylink_core::events::LineageEvent;
use agencylink_core::lineage;
use agencylink_core::ports::{
    ChainLog, ObjectStore, ObjectStoreExt, PutMode, RecordStore, StoreError,
};
use agencylink_core::profile::{self, Edition, ProfileError, Settings};
use agencylink_core::schema::Catalog;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where profiles are kept in the data bucket.
pub const PREFIX: &str = "profiles/";
/// Where analysts' requests wait for the profile function.
pub const REQUESTS: &str = "profile-requests/";

/// Why a profile task failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileTaskError {
    /// Building the profile failed (the store, or the profile's own checks).
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The bucket, the table or the archive failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A request that cannot be built (a bad date, an empty period).
    #[error("the request cannot be built: {0}")]
    BadRequest(String),
}

impl ProfileTaskError {
    /// Whether a retry may succeed (throttling, timeouts).
    pub fn is_retryable(&self) -> bool {
        match self {
            ProfileTaskError::Store(e) | ProfileTaskError::Profile(ProfileError::Store(e)) => {
                e.is_retryable()
            }
            _ => false,
        }
    }
}

/// One edition stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stored {
    /// `<from>_<to>_<edition>`, as `GET /profiles/{id}` takes it.
    pub id: String,
    /// `analyst` or `partner`.
    pub edition: String,
    /// The object prefix the files are under.
    pub prefix: String,
    /// Files written.
    pub files: usize,
    /// Tables in it.
    pub tables: usize,
}

/// Where what is built from every upload is kept: the stored profiles and
/// the analysts' exports and charts. A withdrawal takes all of it away, as it
/// takes the embedded store's `profiles` and `exports` folders: each was
/// built from records that are no longer there. Requests waiting under
/// `profile-requests/` and `export-requests/` hold no record and stay, so
/// what was asked for is built again from what remains.
pub const BUILT_FROM_ALL: [&str; 2] = [PREFIX, crate::exports::PREFIX];

/// Delete every object under [`BUILT_FROM_ALL`] (every version, where the
/// store keeps versions) and return their keys.
pub fn remove_built_from_all(objects: &dyn ObjectStore) -> Result<Vec<String>, StoreError> {
    let mut removed = Vec::new();
    for prefix in BUILT_FROM_ALL {
        for meta in objects.list(prefix)? {
            objects.delete(&meta.key)?;
            removed.push(meta.key);
        }
    }
    Ok(removed)
}

/// The object prefix of one edition for one period.
pub fn edition_prefix(from: &str, to: &str, edition: Edition) -> String {
    format!("{PREFIX}{from}_{to}/{}/", edition.as_str())
}

/// Build `editions` from one read of the store and store each under its
/// prefix; append a `profile_build` lineage event for each (`trigger`:
/// `schedule`, `request` or `cli`; `built_by`: the requester, if any).
/// `now` is RFC 3339.
#[allow(clippy::too_many_arguments)]
pub fn build_and_store(
    stores: Stores<'_>,
    catalog: &Catalog,
    settings: &Settings,
    editions: &[Edition],
    trigger: &str,
    built_by: Option<&str>,
    now: &str,
) -> Result<Vec<Stored>, ProfileTaskError> {
    let Stores {
        objects,
        records,
        lineage: lineage_log,
        archive_lineage,
    } = stores;
    let lineage_seq = lineage_log.head()?.map_or(0, |(seq, _)| seq);
    let built = match profile::build_editions(catalog, records, lineage_log, settings, editions) {
        Err(e @ (ProfileError::BadDate(_) | ProfileError::EmptyPeriod { .. })) => {
            return Err(ProfileTaskError::BadRequest(e.to_string()));
        }
        other => other?,
    };
    let mut out = Vec::new();
    for p in &built {
        let files = profile::files(p)?;
        let prefix = edition_prefix(&p.period.from, &p.period.to, p.edition);
        // profile.json goes last and is what a listing looks for; take it
        // away first, so a reader never pairs it with half-replaced files.
        let keep: std::collections::BTreeSet<String> = files
            .iter()
            .map(|f| format!("{prefix}{}", f.name))
            .collect();
        let json_key = format!("{prefix}profile.json");
        let old: Vec<String> = objects.list(&prefix)?.into_iter().map(|m| m.key).collect();
        if old.contains(&json_key) {
            objects.delete(&json_key)?;
        }
        for key in old.iter().filter(|k| !keep.contains(*k)) {
            objects.delete(key)?;
        }
        for f in &files {
            objects.put(&format!("{prefix}{}", f.name), &f.bytes, PutMode::Overwrite)?;
        }
        let event = profile::build_event(p, &files, lineage_seq, trigger, built_by, &prefix, now);
        let entry = lineage::append_event(lineage_log, &LineageEvent::ProfileBuild(event))?;
        archive_lineage(&entry)?;
        out.push(Stored {
            id: profile::profile_id(&p.period.from, &p.period.to, p.edition.as_str()),
            edition: p.edition.as_str().to_owned(),
            prefix,
            files: files.len(),
            tables: p.tables.len(),
        });
    }
    Ok(out)
}

/// What a build reads and writes.
#[derive(Clone, Copy)]
pub struct Stores<'a> {
    /// Where the editions are kept.
    pub objects: &'a dyn ObjectStore,
    /// The records the profile is built from.
    pub records: &'a dyn RecordStore,
    /// The lineage log the build is recorded in.
    pub lineage: &'a dyn ChainLog,
    /// Write the write-once copy of a lineage entry (nothing, where the
    /// host keeps none).
    pub archive_lineage: &'a dyn Fn(&Value) -> Result<(), StoreError>,
}

impl std::fmt::Debug for Stores<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// A stored profile edition, as `GET /profiles` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// `<from>_<to>_<edition>`.
    pub id: String,
    /// First day of the period.
    pub from: String,
    /// Last day.
    pub to: String,
    /// `analyst` or `partner`.
    pub edition: String,
}

/// Every stored edition (those whose `profile.json` is in place), newest
/// period first; only partner editions unless `analyst`.
pub fn list(objects: &dyn ObjectStore, analyst: bool) -> Result<Vec<Listed>, StoreError> {
    let mut out: Vec<Listed> = objects
        .list(PREFIX)?
        .into_iter()
        .filter_map(|m| {
            let rest = m.key.strip_prefix(PREFIX)?.strip_suffix("/profile.json")?;
            let (period, edition) = rest.split_once('/')?;
            let (from, to) = period.split_once('_')?;
            let id = profile::profile_id(from, to, edition);
            let (from, to, edition) = profile::parse_profile_id(&id)?;
            (analyst || edition == Edition::Partner).then(|| Listed {
                id,
                from,
                to,
                edition: edition.as_str().to_owned(),
            })
        })
        .collect();
    out.sort_by(|a, b| (&b.to, &b.from, &a.edition).cmp(&(&a.to, &a.from, &b.edition)));
    Ok(out)
}

/// The files of edition `id`, or `None` if it is not (completely) stored.
pub fn files_of(
    objects: &dyn ObjectStore,
    id: &str,
) -> Result<Option<(Edition, Vec<agencylink_core::ports::ObjectMeta>)>, StoreError> {
    let Some((from, to, edition)) = profile::parse_profile_id(id) else {
        return Ok(None);
    };
    let prefix = edition_prefix(&from, &to, edition);
    let files = objects.list(&prefix)?;
    if !files.iter().any(|m| m.key.ends_with("/profile.json")) {
        return Ok(None);
    }
    Ok(Some((edition, files)))
}

/// An analyst's request for a build, as the API writes it and the profile
/// function reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// First day (`YYYY-MM-DD`); default: 12 months before `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Last day; default: the latest event in the store, at most today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// When it was asked for, RFC 3339.
    pub requested_at: String,
    /// Who asked: the analyst's user id (the token's subject), as the
    /// access-log entry of the request names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// Check a request's dates before it is queued, so a bad one is the
/// requester's 400, not a failed build later.
pub fn check_request(req: &Request) -> Result<(), String> {
    let day = |s: &Option<String>| match s {
        None => Ok(None),
        Some(d) if profile::is_day(d) => Ok(Some(d.clone())),
        Some(d) => Err(format!("`{d}` is not a date; write it as YYYY-MM-DD")),
    };
    let (from, to) = (day(&req.from)?, day(&req.to)?);
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(format!("the period is empty: {f} is after {t}"));
    }
    Ok(())
}

/// Queue `req` for the profile function; the request's object key.
pub fn submit(objects: &dyn ObjectStore, req: &Request) -> Result<String, StoreError> {
    let key = format!(
        "{REQUESTS}{}-{:016x}.json",
        req.requested_at.replace(':', ""),
        fastrand::u64(..)
    );
    let body = serde_json::to_vec(req).map_err(|e| StoreError::Invalid(e.to_string()))?;
    objects.put(&key, &body, PutMode::Create)?;
    Ok(key)
}

/// Read a queued request; `None` if it is gone (an earlier delivery of the
/// same event built it). A request that is not one is a `BadRequest`.
pub fn read_request(
    objects: &dyn ObjectStore,
    key: &str,
) -> Result<Option<Request>, ProfileTaskError> {
    if !key.starts_with(REQUESTS) || !key.ends_with(".json") {
        return Err(ProfileTaskError::BadRequest(
            "not a profile request object".into(),
        ));
    }
    let bytes = match objects.get_bytes(key) {
        Ok(b) => b,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let req: Request = serde_json::from_slice(&bytes)
        .map_err(|e| ProfileTaskError::BadRequest(format!("the request is not readable: {e}")))?;
    check_request(&req).map_err(ProfileTaskError::BadRequest)?;
    Ok(Some(req))
}

/// The period a scheduled build covers when none is given: the twelve
/// complete calendar months before the month of `now` (RFC 3339), so a
/// monthly schedule publishes each month's rolling year once.
pub fn scheduled_period(now: &str) -> Option<(String, String)> {
    let y: i32 = now.get(..4)?.parse().ok()?;
    let m: u32 = now.get(5..7)?.parse().ok()?;
    if !(1..=12).contains(&m) {
        return None;
    }
    // The month before this one, and the eleven before it.
    let (ty, tm) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    let (fy, fm) = if tm == 12 { (ty, 1) } else { (ty - 1, tm + 1) };
    let last = days_in_month(ty, tm);
    Some((
        format!("{fy:04}-{fm:02}-01"),
        format!("{ty:04}-{tm:02}-{last:02}"),
    ))
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// What a task returns, for the function's log.
pub fn summary(stored: &[Stored]) -> Value {
    serde_json::json!({ "profiles": stored })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheduled_period_is_the_last_twelve_complete_months() {
        assert_eq!(
            scheduled_period("2026-12-01T03:00:00Z"),
            Some(("2025-12-01".into(), "2026-11-30".into()))
        );
        assert_eq!(
            scheduled_period("2026-01-15T00:00:00Z"),
            Some(("2025-01-01".into(), "2025-12-31".into()))
        );
        assert_eq!(
            scheduled_period("2024-03-01T00:00:00Z"),
            Some(("2023-03-01".into(), "2024-02-29".into()))
        );
        assert_eq!(scheduled_period("nonsense"), None);
    }

    #[test]
    fn requests_with_bad_or_reversed_dates_are_refused() {
        let ok = Request {
            from: Some("2025-01-01".into()),
            to: Some("2025-12-31".into()),
            requested_at: "2026-01-01T00:00:00Z".into(),
            requested_by: None,
        };
        assert!(check_request(&ok).is_ok());
        assert!(check_request(&Request::default()).is_ok());
        let reversed = Request {
            from: ok.to.clone(),
            to: ok.from.clone(),
            ..ok.clone()
        };
        assert!(check_request(&reversed).unwrap_err().contains("empty"));
        let bad = Request {
            to: Some("31/12/2025".into()),
            ..ok
        };
        assert!(check_request(&bad).unwrap_err().contains("not a date"));
    }
}
