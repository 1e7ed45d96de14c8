//! An agency's uploads under `agencylink serve`: `GET /uploads` and
//! `GET /uploads/{id}`, read from the lineage log and the rejection
//! reports `agencylink ingest` wrote under `DATA_DIR/reports/`.
//!
//! On one machine nothing is uploaded through the API (`POST /uploads` is a
//! 501 naming `agencylink ingest`), so there are no tickets: each item is
//! built from the upload's lineage events, in the AWS ticket's shape where
//! it makes sense. The differences:
//!
//! - `id` and `upload_id` are both the lineage upload id (`u_…`): there is
//!   no separate ticket id.
//! - `key` is the file's name in lineage (`landing/<agency>/<dataset>/<random>.<ext>`,
//!   never the name it had on disk).
//! - `created` and `settled` are both the ingest's time.
//! - `status` is `ingested`, `refused` (the file was refused whole: its
//!   `result.file_errors` say why; rows merged before the problem stay and
//!   are counted) or `withdrawn` (`agencylink withdraw`: `withdrawn` is then
//!   its time, and the report is gone with the upload's other outputs). No
//!   `waiting`, `rejected` or `failed`: a file the agency policy refuses, or
//!   an ingest that stops short, writes no closing lineage event.
//! - The list is ordered by the upload's latest ingest in lineage, not by
//!   id (local ids are hashes, not times); `after` must be an id of the
//!   caller's list, and `next` is null on the last page even when it is full.
//!
//! The agency is always the caller's; events of any other agency are
//! skipped, so another agency's upload id is a 404 exactly as an unknown
//! one. The report's path is built from lineage's values only, after the id
//! was checked to be an upload id's shape, never from the request.

use std::collections::HashMap;

use agencylink_core::events::LineageEvent;
use agencylink_core::ports::{ChainLog, ObjectStore, StoreError, entry_seq};
use agencylink_http::router::Response;
use serde_json::{Value, json};

/// The most uploads one page holds (and the default), as on AWS.
const PAGE_LIMIT: usize = agencylink_http::PAGE_LIMIT as usize;

/// Lineage entries read at a time while listing.
const SCAN: usize = 1000;

/// The statuses an item can have.
const INGESTED: &str = "ingested";
const REFUSED: &str = "refused";
const WITHDRAWN: &str = "withdrawn";

/// Whether `id` has a local upload id's shape: `u_` and 16 base32 letters
/// (see [`agencylink_core::ingest::upload_id`]).
pub(crate) fn valid_upload_id(id: &str) -> bool {
    id.strip_prefix("u_").is_some_and(|h| {
        h.len() == 16
            && h.bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    })
}

/// One upload as lineage tells it.
struct Upload {
    /// Its latest closing event's `seq`: the list's order.
    seq: u64,
    item: Value,
}

/// The caller's agency's uploads in `entries` (in log order), by id.
fn fold<'e>(
    agency: &str,
    entries: impl Iterator<Item = &'e Value>,
    into: &mut HashMap<String, Upload>,
) {
    for entry in entries {
        match LineageEvent::from_entry(entry) {
            LineageEvent::Ingest(u) | LineageEvent::UploadFailure(u) if u.agency == agency => {
                let refused = !u.file_errors.is_empty();
                let mut result = json!({
                    "rows_in": u.rows_in,
                    "rows_accepted": u.rows_accepted,
                    "rows_rejected": u.rows_rejected,
                    "records_inserted": u.records_inserted,
                    "records_replaced": u.records_replaced,
                    "records_unchanged": u.records_unchanged,
                    "people_linked": u.people_linked,
                });
                if refused {
                    result["file_errors"] = json!(u.file_errors);
                }
                into.insert(
                    u.upload_id.clone(),
                    Upload {
                        seq: entry_seq(entry),
                        item: json!({
                            "id": u.upload_id,
                            "agency": u.agency,
                            "dataset": u.dataset,
                            "key": u.source,
                            "created": u.time,
                            "status": if refused { REFUSED } else { INGESTED },
                            "upload_id": u.upload_id,
                            "result": result,
                            "settled": u.time,
                        }),
                    },
                );
            }
            LineageEvent::Withdrawn(w) if w.agency == agency => {
                if let Some(up) = into.get_mut(&w.upload_id) {
                    up.item["status"] = json!(WITHDRAWN);
                    up.item["withdrawn"] = json!(w.time);
                }
            }
            _ => {}
        }
    }
}

/// `GET /uploads`: the agency's uploads, newest first, a page at a time.
pub(crate) fn list(
    lineage: &dyn ChainLog,
    agency: &str,
    after: Option<String>,
    limit: Option<String>,
) -> Response {
    if after.as_deref().is_some_and(|a| !valid_upload_id(a)) {
        return Response::error(
            400,
            "after must be an upload id: the last id of the previous page",
        );
    }
    let limit = match limit.map(|l| l.trim().parse::<usize>()) {
        None => PAGE_LIMIT,
        Some(Ok(n)) if (1..=PAGE_LIMIT).contains(&n) => n,
        Some(_) => return Response::error(400, &format!("limit must be 1 to {PAGE_LIMIT}")),
    };
    let mut uploads = HashMap::new();
    let mut seq = 0;
    loop {
        let page = match lineage.page(seq, SCAN) {
            Ok(p) => p,
            Err(e) => return Response::store_failure(&e),
        };
        let Some(last) = page.last() else { break };
        seq = entry_seq(last);
        fold(agency, page.iter(), &mut uploads);
        if page.len() < SCAN {
            break;
        }
    }
    let mut all: Vec<Upload> = uploads.into_values().collect();
    all.sort_by_key(|u| std::cmp::Reverse(u.seq));
    let start = match after {
        None => 0,
        Some(a) => match all.iter().position(|u| u.item["id"] == a.as_str()) {
            Some(i) => i + 1,
            // Unknown and another agency's alike.
            None => {
                return Response::error(
                    400,
                    "after must be an id from the previous page of your uploads",
                );
            }
        },
    };
    let page: Vec<&Value> = all
        .iter()
        .skip(start)
        .take(limit)
        .map(|u| &u.item)
        .collect();
    let next = (start + page.len() < all.len())
        .then(|| page.last().map(|u| u["id"].clone()))
        .flatten();
    Response::json(200, &json!({ "uploads": page, "next": next }))
}

/// `GET /uploads/{id}`: one of the agency's uploads, with its rejection
/// report (capped as on AWS) while it has one.
pub(crate) fn show(
    lineage: &dyn ChainLog,
    objects: &dyn ObjectStore,
    agency: &str,
    id: &str,
) -> Response {
    let missing = || Response::error(404, "no such upload");
    if !valid_upload_id(id) {
        return missing();
    }
    let entries = match lineage.upload_entries(id) {
        Ok(e) => e,
        Err(e) => return Response::store_failure(&e),
    };
    let mut found = HashMap::new();
    fold(agency, entries.iter(), &mut found);
    let Some(Upload { item, .. }) = found.remove(id) else {
        return missing();
    };
    let mut body = json!({ "upload": item, "report": null });
    if item["status"] != WITHDRAWN {
        // From lineage's values (the agency is the caller's, as `fold`
        // checked), as `agencylink ingest` names it.
        let (Some(dataset), Some(upload)) = (item["dataset"].as_str(), item["id"].as_str()) else {
            return missing();
        };
        let key = format!("reports/{agency}/{dataset}/{upload}.rejections.json");
        match report(objects, &key) {
            Ok(r) => body["report"] = r,
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Response::store_failure(&e),
        }
    }
    Response::json(200, &body)
}

/// A JSON rejection report, its errors capped.
fn report(objects: &dyn ObjectStore, key: &str) -> Result<Value, StoreError> {
    let mut reader = objects.get(key)?;
    let mut v: Value = serde_json::from_reader(&mut reader)
        .map_err(|e| StoreError::backend("reading a rejection report", e))?;
    agencylink_http::cap_report(&mut v);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::valid_upload_id;

    #[test]
    fn only_an_upload_ids_shape_passes() {
        let id = agencylink_core::ingest::upload_id("west-council", "ds", "00");
        assert!(valid_upload_id(&id), "{id}");
        for bad in [
            "",
            "u_",
            "u_../../../etc/pas",
            "u_ABCDEFGHIJKLMNOP",
            "u_abcdefghijklmno1",
            "u_abcdefghijklmnop2",
            "x_abcdefghijklmnop",
            "0190f0e0-0000-7000-8000-000000000000",
        ] {
            assert!(!valid_upload_id(bad), "{bad}");
        }
    }
}
