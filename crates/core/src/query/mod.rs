//! Analyst and auditor reads over the merged store: a person's timeline
//! across agencies, the network around a person, flat export rows, entity-link
//! graphs for charting tools (GraphML, i2), the hash-chained access log every
//! read is recorded in, and lineage as OpenLineage run events.
//!
//! Everything here is a pure function over the ports and the [`Catalog`]:
//! field meanings come from schema annotations (`x-concept`, `x-generalise`),
//! never from dataset names, so a new dataset needs no code here. The store
//! holds only tokens and coded values, so nothing these functions return can
//! carry a raw identifier; errors and log entries never echo anything a user
//! typed unless it has the shape of one of our own ids.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::csv_safe::neutralise;
use crate::events::{
    AccessEntry, LineageEvent, REVIEW_DECIDE, ReadEntry, ReviewDecisionEntry, UploadEvent,
};
use crate::lineage::{self, ChainProblem};
use crate::network::{self, is_group, record_role};
use crate::ports::{ChainLog, RecordStore, RecordStoreExt, StoreError, StoredRecord};
use crate::schema::{Catalog, Dataset, FieldType, Generalise, ScalarType};

mod access_log;
mod export;
mod graph_export;
mod openlineage;
mod person_network;
mod timeline;

pub use access_log::*;
pub use export::*;
pub use graph_export::*;
pub use openlineage::*;
pub use person_network::*;
pub use timeline::*;

/// A group-based network has at least this many suspects…
pub const GROUP_MIN_SUSPECTS: usize = 2;
/// …and at least this many victims.
pub const GROUP_MIN_VICTIMS: usize = 1;

/// The concepts whose coded values a timeline row shows, when the record's
/// dataset has a field for them.
pub const TIMELINE_CONCEPTS: &[&str] = &[
    "offence",
    "concern",
    "cse_flag",
    "cse_model",
    "episode_type",
    "missing_type",
    "cin_factors",
    "setting",
    "outcome",
];

/// A read that could not be answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The id does not have the shape of a person or network id. The input is
    /// not echoed: an analyst may have typed a name or a reference.
    #[error(
        "that is not a person id: person ids look like `p_` followed by lower-case letters and digits 2-7 (network ids `n_…` are accepted by network queries)"
    )]
    NotAPersonId,
    /// No record belongs to this person (after following aliases).
    #[error("no person with id {0} is in the store")]
    UnknownPerson(String),
    /// No clerical review item has this id.
    #[error("no review item {0}")]
    UnknownReviewItem(String),
    /// The dataset is neither in the catalog nor in the store.
    #[error("unknown dataset {0}")]
    UnknownDataset(String),
    /// The analyst or purpose given for a read is refused.
    #[error("{0}")]
    Reader(&'static str),
    /// An export row has a column the plan did not announce (a bug: the
    /// export columns no longer mirror what curation writes).
    #[error("export row has column `{0}` missing from the header")]
    UnexpectedColumn(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `id` has the shape of a person id (`p_` + lower-case base32).
pub fn is_person_id(id: &str) -> bool {
    id.strip_prefix("p_").is_some_and(is_base32_tail)
}

fn is_base32_tail(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

/// The dataset definition a stored record was curated under: its own schema
/// version when the catalog still has it, else the newest.
/// `body` is the record's parsed body.
pub fn dataset_of<'c>(catalog: &'c Catalog, r: &StoredRecord, body: &Value) -> Option<&'c Dataset> {
    let version = body
        .get("schema_version")
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok());
    version
        .and_then(|v| catalog.get_version(&r.dataset, v))
        .or_else(|| catalog.get(&r.dataset))
        .map(AsRef::as_ref)
}

fn role_field(catalog: &Catalog, r: &StoredRecord, body: &Value) -> Option<String> {
    dataset_of(catalog, r, body)
        .and_then(|d| d.field_for("person_role"))
        .map(|f| f.name.clone())
}

fn body_str(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn parsed(r: &StoredRecord) -> Result<Value, QueryError> {
    Ok(r.body.parse().map_err(StoreError::from)?)
}

#[cfg(test)]
mod tests;
