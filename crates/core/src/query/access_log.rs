//! The access log: who read what and why, in a hash chain that every read
//! is recorded in before it returns.

use super::*;

/// One analyst read, as the access log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Read<'a> {
    /// Who read.
    pub analyst: &'a str,
    /// Why, in their words.
    pub purpose: &'a str,
    /// `query_person`, `query_network`, `export`, …
    pub action: &'a str,
    /// What was read: a person or network id, a dataset, `all`.
    pub target: &'a str,
    /// Rows (timeline rows, people, records) handed to the analyst.
    pub rows_returned: u64,
    /// When, RFC 3339 (the core reads no clock).
    pub time: &'a str,
}

/// Check an analyst name and purpose before anything is read: both must be
/// non-blank, one line, and of a sensible length. Messages never repeat them.
pub fn check_reader(analyst: &str, purpose: &str) -> Result<(), QueryError> {
    let one_line = |s: &str| !s.chars().any(char::is_control);
    if analyst.trim().is_empty() {
        return Err(QueryError::Reader("--analyst must name who is reading"));
    }
    if analyst.chars().count() > 100 || !one_line(analyst) {
        return Err(QueryError::Reader(
            "--analyst must be one line of at most 100 characters",
        ));
    }
    if purpose.trim().is_empty() {
        return Err(QueryError::Reader(
            "--purpose must say why the data is needed; an empty purpose is refused",
        ));
    }
    if purpose.chars().count() > 500 || !one_line(purpose) {
        return Err(QueryError::Reader(
            "--purpose must be one line of at most 500 characters",
        ));
    }
    Ok(())
}

/// Append a read to the access log (hash-chained like lineage) and return
/// the entry as stored. Callers hand data out only after this succeeds.
pub fn log_read(log: &dyn ChainLog, read: &Read<'_>) -> Result<Value, QueryError> {
    check_reader(read.analyst, read.purpose)?;
    let entry = AccessEntry::Read(ReadEntry {
        analyst: read.analyst.trim().to_owned(),
        purpose: read.purpose.trim().to_owned(),
        action: read.action.to_owned(),
        target: read.target.to_owned(),
        rows_returned: read.rows_returned,
        time: read.time.to_owned(),
    });
    Ok(lineage::append_event(log, &entry)?)
}

/// Append an analyst's clerical-review decision to the access log before it
/// takes effect. The entry names the item and the decision, never the
/// reviewer's free-text reason (which stays with the item, where it can be
/// corrected), so nothing an analyst types lands in the permanent log.
pub fn log_review_decision(
    log: &dyn ChainLog,
    analyst: &str,
    purpose: &str,
    item_id: &str,
    decision: &str,
    time: &str,
) -> Result<Value, QueryError> {
    check_reader(analyst, purpose)?;
    let entry = AccessEntry::ReviewDecision(ReviewDecisionEntry {
        analyst: analyst.trim().to_owned(),
        purpose: purpose.trim().to_owned(),
        action: REVIEW_DECIDE.to_owned(),
        target: item_id.to_owned(),
        decision: decision.to_owned(),
        time: time.to_owned(),
    });
    Ok(lineage::append_event(log, &entry)?)
}

/// Verify the access log: the hash chain (as for lineage), and that every
/// entry is a read (or a review decision) naming an analyst and a purpose.
pub fn verify_access_log(entries: &[Value]) -> Result<usize, ChainProblem> {
    let n = lineage::verify(entries)?;
    for (i, e) in entries.iter().enumerate() {
        let names_reader = AccessEntry::from_entry(e)
            .reader()
            .is_some_and(|(analyst, purpose)| {
                !analyst.trim().is_empty() && !purpose.trim().is_empty()
            });
        if !names_reader {
            return Err(ChainProblem {
                position: i + 1,
                seq: e.get("seq").and_then(Value::as_u64),
                reason:
                    "the entry is not a read or a review decision naming an analyst and a purpose"
                        .into(),
            });
        }
    }
    Ok(n)
}
