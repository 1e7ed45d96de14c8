//! The CSE problem profile: what the merged store says about child sexual
//! exploitation in a period, compared with the period before, for police
//! analysts (the complete *analyst* edition) and partner agencies (the
//! *partner* edition, under disclosure control).
//!
//! [`build`] reads records only through the ports — one
//! [`RecordStore::scan_dataset`](crate::ports::RecordStore::scan_dataset)
//! per dataset and the lineage log — and returns a [`Profile`]: headline
//! figures, [`Table`]s (volumes, tracker, victims and suspects,
//! multi-agency footprint, missing and CSE, places, CSE models, group-based
//! networks, investigations against networks and peer review, data quality), network details for the graphs, the threat
//! formula, method notes and caveats. [`render_html`]
//! turns it into one self-contained page; each table is also a CSV
//! ([`Table::to_csv`]) and the whole profile is JSON that validates against
//! [`SCHEMA`] (`profile.schema.json`, beside this file).
//!
//! Nothing here names a dataset: which records are crimes, intelligence,
//! assessments, missing episodes, attendances or absences, and which field
//! holds a role, a flag or a place, comes from the schema annotations
//! (`x-agency-type`, `x-concept`, `x-link`, `x-generalise`).
//!
//! Only pseudonymous ids ever appear (person ids, link tokens), and only in
//! the analyst edition; the partner edition carries counts only.

pub mod disclosure;
pub mod table;
pub mod threat;

mod body;
mod build;
pub(crate) mod dates;
mod facts;
mod files;
mod groups;
mod html;
mod investigations;
mod sections;

use serde::Serialize;

pub use build::{build, build_editions};
pub use files::{ProfileFile, build_event, files, is_day, parse_profile_id, profile_id};
pub use html::render_html;
pub use table::{Cell, Column, Kind, Margins, Table};

use crate::ports::StoreError;

/// The JSON Schema of `profile.json` (draft 2020-12).
pub const SCHEMA: &str = include_str!("profile.schema.json");

/// The `format` every profile.json carries; bumped when the shape changes.
pub const FORMAT: &str = "agencylink-profile/1";

/// Why a profile could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Reading the store or the lineage log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A period bound is not a `YYYY-MM-DD` date.
    #[error("`{0}` is not a date; write it as YYYY-MM-DD")]
    BadDate(String),
    /// `from` is after `to`.
    #[error("the period is empty: {from} is after {to}")]
    EmptyPeriod {
        /// Start.
        from: String,
        /// End.
        to: String,
    },
    /// No record to profile and no period given to profile anyway.
    #[error("the store holds no records to profile (ingest extracts first, or give --to)")]
    NoRecords,
    /// The built profile failed its own checks (its schema, or disclosure
    /// control in the partner edition): a bug, never handed to a reader.
    #[error("{0}")]
    Unfit(String),
}

/// Who the profile is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Edition {
    /// Police analysts: complete, with the tracker, networks and
    /// pseudonymous ids.
    #[default]
    Analyst,
    /// Partner agencies: counts of 1–5 and what would reveal them shown as
    /// `c`; no tracker, no network details, no ids.
    Partner,
}

impl Edition {
    /// `analyst` or `partner`.
    pub fn as_str(self) -> &'static str {
        match self {
            Edition::Analyst => "analyst",
            Edition::Partner => "partner",
        }
    }
}

impl std::str::FromStr for Edition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "analyst" => Ok(Edition::Analyst),
            "partner" => Ok(Edition::Partner),
            other => Err(format!("unknown edition `{other}`; use analyst or partner")),
        }
    }
}

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// First day of the period (`YYYY-MM-DD`); default: 12 months before `to`.
    pub from: Option<String>,
    /// Last day of the period; default: the latest event in the store or
    /// the date of `generated_at`, whichever is earlier.
    pub to: Option<String>,
    /// Edition.
    pub edition: Edition,
    /// Fewest suspects for a group-based network (IICSA: two or more).
    pub min_suspects: usize,
    /// Fewest victims for a group-based network.
    pub min_victims: usize,
    /// Days before a CSE event in which a missing episode counts.
    pub missing_window_days: u32,
    /// Rows in the top-places tables.
    pub top_places: usize,
    /// Days from opening within which a highest-threat investigation should
    /// have had its peer review (default 28).
    pub peer_review_days: u32,
    /// Primary suppression range of the partner edition.
    pub suppression: disclosure::Rule,
    /// The threat score's weights and thresholds.
    pub threat: threat::ThreatSettings,
    /// When the profile is made (RFC 3339; the core reads no clock). Its
    /// date caps the default end of the period.
    pub generated_at: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            from: None,
            to: None,
            edition: Edition::Analyst,
            min_suspects: 2,
            min_victims: 1,
            missing_window_days: 90,
            top_places: 15,
            peer_review_days: 28,
            suppression: disclosure::Rule::default(),
            threat: threat::ThreatSettings::default(),
            generated_at: String::new(),
        }
    }
}

/// The period profiled and the one it is compared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period {
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// Length in days.
    pub days: u32,
    /// First day of the previous period of equal length.
    pub previous_from: String,
    /// Its last day (the day before `from`).
    pub previous_to: String,
    /// Whether `from` and `to` were defaults (12 months to the latest event, or to today if earlier).
    pub default: bool,
}

/// A headline figure of the executive summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headline {
    /// Machine name.
    pub id: String,
    /// What it counts.
    pub label: String,
    /// This period (a count, a percentage, or `c`).
    pub value: Cell,
    /// The previous period, when compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Cell>,
    /// `count` or `percent`.
    pub unit: &'static str,
}

/// A dataset that fed the profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// Dataset id.
    pub dataset: String,
    /// Its title.
    pub title: String,
    /// `x-agency-type`.
    pub agency_type: String,
    /// What the profile reads it as (crime, intelligence, assessment, …).
    pub read_as: String,
    /// Records in the period.
    pub records: u64,
}

/// A tie between two people in a network graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// One person (pseudonymous id).
    pub a: String,
    /// The other.
    pub b: String,
    /// What they share: crime, intel, vehicle, phone.
    pub kinds: Vec<String>,
}

/// Something several members of a network share: a crime, an intelligence
/// report, a vehicle or a phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tie {
    /// crime, intel, vehicle, phone.
    pub kind: String,
    /// Its pseudonym.
    pub token: String,
    /// Who shares it (representative person ids).
    pub people: Vec<String>,
}

/// One group-based network, in full (analyst edition only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkDetail {
    /// `n_` + the smallest person id's suffix, as elsewhere in agencylink.
    pub id: String,
    /// Tier.
    pub tier: threat::Tier,
    /// Score and the points behind it.
    pub threat: threat::Assessment,
    /// Suspects (pseudonymous person ids).
    pub suspects: Vec<String>,
    /// Victims.
    pub victims: Vec<String>,
    /// Other members (witnesses, associates).
    pub others: Vec<String>,
    /// Person ids counted as one person inside this network because their
    /// records carry the same name pseudonyms (see method): the id listed
    /// above → the other ids.
    pub same_person: std::collections::BTreeMap<String, Vec<String>>,
    /// Boroughs of its events.
    pub boroughs: Vec<String>,
    /// First event date.
    pub first_event: String,
    /// Last event date.
    pub last_event: String,
    /// Distinct crimes and intelligence reports.
    pub events: u64,
    /// Agencies that hold any record of any member.
    pub agencies: Vec<String>,
    /// Shared link tokens that are not event references, by kind
    /// (vehicle, phone).
    pub shared: std::collections::BTreeMap<String, Vec<String>>,
    /// Offence codes of its crimes.
    pub offences: Vec<String>,
    /// Who is tied to whom.
    pub edges: Vec<Edge>,
    /// What they share, one entry per shared token.
    pub ties: Vec<Tie>,
}

/// A short note of method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// What it is about.
    pub topic: String,
    /// The note.
    pub text: String,
}

/// The problem profile (`profile.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// [`FORMAT`].
    pub format: &'static str,
    /// The report title.
    pub title: String,
    /// Edition.
    pub edition: Edition,
    /// When it was made.
    pub generated_at: String,
    /// The period and its comparison.
    pub period: Period,
    /// Group thresholds and windows in use.
    pub thresholds: Thresholds,
    /// Partner edition: the suppression rule applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppression: Option<disclosure::Rule>,
    /// The headline figures.
    pub headlines: Vec<Headline>,
    /// The executive summary in sentences.
    pub summary: Vec<String>,
    /// Every table, in report order.
    pub tables: Vec<Table>,
    /// Group-based networks in full (analyst edition only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<NetworkDetail>>,
    /// How the threat score works.
    pub threat: threat::Method,
    /// Datasets read.
    pub sources: Vec<Source>,
    /// Method notes.
    pub method: Vec<Note>,
    /// Data-quality caveats a reader must weigh.
    pub caveats: Vec<String>,
}

/// Thresholds and windows in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    /// Fewest suspects for a group-based network.
    pub min_suspects: usize,
    /// Fewest victims for a group-based network.
    pub min_victims: usize,
    /// Missing-before-CSE window in days.
    pub missing_window_days: u32,
    /// Days from opening within which a highest-threat investigation should
    /// have had its peer review.
    pub peer_review_days: u32,
}

impl Profile {
    /// A table by id.
    pub fn table(&self, id: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.id == id)
    }
}

/// Check a profile.json value against [`SCHEMA`]; the messages name the
/// failing JSON pointer.
pub fn validate_json(value: &serde_json::Value) -> Result<(), Vec<String>> {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA)
        .map_err(|e| vec![format!("profile.schema.json is not JSON: {e}")])?;
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .map_err(|e| vec![format!("profile.schema.json is not a valid schema: {e}")])?;
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests;
