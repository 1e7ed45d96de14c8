//! The clerical review queue: pairs whose match probability falls between
//! the review and match thresholds wait here for an analyst's decision.
//!
//! An item is keyed by its pair of signatures, so the same pair found again
//! (a re-upload, a retrained model) is the same item and its decision
//! stands. An item holds only pseudonymous ids, levels and weights.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::Agreement;
use crate::curate::short_hash;
use crate::ports::{RecordStore, RecordStoreExt, StoreResult};

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReviewStatus {
    /// Waiting for a decision.
    Open,
    /// Decided: the same person (the two people were merged).
    Match,
    /// Decided: different people (never linked automatically).
    NonMatch,
    /// Looked at, undecided; stays in the queue.
    Unsure,
}

impl ReviewStatus {
    /// Whether the item still waits for a decision.
    pub fn is_pending(self) -> bool {
        matches!(self, ReviewStatus::Open | ReviewStatus::Unsure)
    }
}

/// An analyst's decision on an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The decision.
    pub status: ReviewStatus,
    /// Who decided.
    pub analyst: String,
    /// Why.
    pub reason: String,
    /// The stated purpose of the session.
    pub purpose: String,
    /// When (RFC 3339; the caller's clock).
    pub time: String,
}

/// One pair waiting for, or given, a clerical decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    /// `rv_` + a hash of the two signature ids, in order.
    pub id: String,
    /// The two signatures, smaller id first.
    pub signatures: [String; 2],
    /// The two people when the item was found (each may since have been
    /// merged into another; resolve through aliases).
    pub people: [String; 2],
    /// One record carrying each signature, for the reviewer to see.
    pub records: [String; 2],
    /// Match probability under the model that found the pair.
    pub probability: f64,
    /// Match weight in bits, prior included.
    pub match_weight: f64,
    /// Each comparison's level and weight.
    pub agreement: Vec<Agreement>,
    /// The model version that scored the pair.
    pub model_version: u32,
    /// The upload that found the pair.
    pub upload_id: String,
    /// Where the item stands.
    pub status: ReviewStatus,
    /// The latest decision, if any.
    #[serde(default)]
    pub decision: Option<Decision>,
}

/// The id of the item for a pair of signatures (order does not matter).
pub fn review_id(a: &str, b: &str) -> String {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    format!(
        "rv_{}",
        short_hash(
            &[b"agencylink/v1/review|", x.as_bytes(), b"|", y.as_bytes()],
            10
        )
    )
}

/// What a reviewer sees of an item: the item (levels, weights, score) and,
/// for each side, the person it belongs to now and one record's
/// pseudonymised attributes (tokens, codes and generalised values, as the
/// curated record holds them). Nothing here is a raw identifier.
pub fn review_detail(records: &dyn RecordStore, item: &ReviewItem) -> StoreResult<Value> {
    let found = records.get_records(&item.records)?;
    let mut sides = Vec::new();
    for (i, rec) in found.into_iter().enumerate() {
        let person_now = records.resolve_person(&item.people[i])?;
        let record = match rec {
            Some(r) => {
                let body = r.body.parse()?;
                json!({
                    "record_id": r.record_id,
                    "agency": r.agency,
                    "dataset": r.dataset,
                    "event_date": r.event_date,
                    "fields": body.get("fields").cloned().unwrap_or(Value::Null),
                    "derived": body.get("derived").cloned().unwrap_or(Value::Null),
                })
            }
            None => Value::Null,
        };
        sides.push(json!({
            "signature": item.signatures[i],
            "person_id": item.people[i],
            "person_now": person_now,
            "record": record,
        }));
    }
    Ok(json!({"item": item, "sides": sides}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_ignores_order() {
        assert_eq!(review_id("s_a", "s_b"), review_id("s_b", "s_a"));
        assert_ne!(review_id("s_a", "s_b"), review_id("s_a", "s_c"));
        assert!(review_id("s_a", "s_b").starts_with("rv_"));
    }
}
