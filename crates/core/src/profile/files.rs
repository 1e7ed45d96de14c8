//! A built profile as the files a reader opens (one CSV per table,
//! `profile.html`, `profile.json`), checked before any is handed out, and
//! the `profile_build` lineage event that records them. Both hosts use it:
//! the CLI writes the files to a directory, the AWS profile function to
//! the data bucket.

use std::collections::BTreeMap;

use super::{Profile, ProfileError, disclosure, render_html, validate_json};
use crate::events::ProfileBuildEvent;

/// One file of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileFile {
    /// File name: `<table id>.csv`, `profile.html` or `profile.json`.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Render `profile` as its files: the CSVs in report order, then
/// `profile.html`, then `profile.json` (last, so a reader that waits for
/// it finds the rest in place).
///
/// A profile that does not match its published schema is a bug here, not
/// something to hand to a reader; likewise a partner edition whose tables
/// give a withheld count back. Both are refused.
pub fn files(profile: &Profile) -> Result<Vec<ProfileFile>, ProfileError> {
    let json = serde_json::to_value(profile)
        .map_err(|e| ProfileError::Unfit(format!("the profile is not JSON: {e}")))?;
    if let Err(errors) = validate_json(&json) {
        return Err(ProfileError::Unfit(format!(
            "the profile does not match profile.schema.json: {}",
            errors.join("; ")
        )));
    }
    if let Some(rule) = profile.suppression {
        let problems: Vec<String> = profile
            .tables
            .iter()
            .flat_map(|t| disclosure::audit(t, rule))
            .collect();
        if !problems.is_empty() {
            return Err(ProfileError::Unfit(format!(
                "refusing a partner edition that fails disclosure control: {}",
                problems.join("; ")
            )));
        }
    }
    let mut out: Vec<ProfileFile> = profile
        .tables
        .iter()
        .map(|t| ProfileFile {
            name: format!("{}.csv", t.id),
            bytes: t.to_csv().into_bytes(),
        })
        .collect();
    out.push(ProfileFile {
        name: "profile.html".into(),
        bytes: render_html(profile).into_bytes(),
    });
    let mut text = serde_json::to_string_pretty(&json)
        .map_err(|e| ProfileError::Unfit(format!("the profile is not JSON: {e}")))?;
    text.push('\n');
    out.push(ProfileFile {
        name: "profile.json".into(),
        bytes: text.into_bytes(),
    });
    Ok(out)
}

/// The `profile_build` event for `profile` written as `written`.
/// `lineage_seq` is the head of the lineage log the build read, `trigger`
/// what asked for it (`cli`, `schedule`, `request`), `built_by` who (when
/// anyone is named) and `location` where the files went (an object prefix,
/// or `local`).
pub fn build_event(
    profile: &Profile,
    written: &[ProfileFile],
    lineage_seq: u64,
    trigger: &str,
    built_by: Option<&str>,
    location: &str,
    time: &str,
) -> ProfileBuildEvent {
    let files: BTreeMap<String, String> = written
        .iter()
        .map(|f| (f.name.clone(), crate::schema::sha256_hex(&f.bytes)))
        .collect();
    ProfileBuildEvent {
        edition: profile.edition.as_str().to_owned(),
        period_from: profile.period.from.clone(),
        period_to: profile.period.to.clone(),
        generated_at: profile.generated_at.clone(),
        lineage_seq,
        trigger: trigger.to_owned(),
        built_by: built_by.map(str::to_owned),
        location: location.to_owned(),
        tables: profile.tables.len() as u64,
        files,
        time: time.to_owned(),
    }
}

/// Whether `s` is a calendar date written `YYYY-MM-DD`.
pub fn is_day(s: &str) -> bool {
    s.len() == 10 && super::dates::parse_day(s).is_some()
}

/// The id of a profile edition for one period, as the API names it:
/// `<from>_<to>_<edition>`, e.g. `2025-01-01_2025-12-31_partner`.
pub fn profile_id(from: &str, to: &str, edition: &str) -> String {
    format!("{from}_{to}_{edition}")
}

/// Read a profile id back into (from, to, edition); `None` unless both
/// dates are `YYYY-MM-DD` and the edition is `analyst` or `partner`, so an
/// id can be put into an object key without further checks.
pub fn parse_profile_id(id: &str) -> Option<(String, String, super::Edition)> {
    let mut parts = id.split('_');
    let (from, to, edition) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    if !is_day(from) || !is_day(to) {
        return None;
    }
    let edition = edition.parse().ok()?;
    Some((from.to_owned(), to.to_owned(), edition))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_refuse_anything_else() {
        let id = profile_id("2025-01-01", "2025-12-31", "partner");
        assert_eq!(id, "2025-01-01_2025-12-31_partner");
        let (f, t, e) = parse_profile_id(&id).unwrap();
        assert_eq!(
            (f.as_str(), t.as_str(), e),
            ("2025-01-01", "2025-12-31", super::super::Edition::Partner)
        );
        for bad in [
            "",
            "2025-01-01_2025-12-31",
            "2025-01-01_2025-12-31_admin",
            "2025-01-01_2025-12-31_partner_x",
            "../x_2025-12-31_partner",
            "2025-13-01_2025-12-31_analyst",
            "2025-1-01_2025-12-31_analyst",
        ] {
            assert!(parse_profile_id(bad).is_none(), "{bad}");
        }
    }
}
