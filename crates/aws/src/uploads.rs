//! Upload tickets: the API's record of each upload it signed, so an agency
//! can follow its own uploads by the id it was given.
//!
//! `POST /uploads` writes a ticket (`waiting`) before it hands out the
//! presigned form for `landing/<agency>/<dataset>/<id>.<ext>`; the ingest
//! function, when it has handled that object, settles the ticket with the
//! outcome (`ingested`, `rejected`, `failed`) and the counts. Lineage names a
//! landing object only by a keyed label the API cannot compute (it never
//! reads the key), so the ticket is the link from the id to the upload.
//!
//! Items: `pk = UP#<agency>`, `sk = <id>`, `item` = the ticket as JSON text.
//! Ids are UUID version 7 (time-ordered), so a partition reads newest first
//! by sort key. A ticket holds no identifier: counts, codes and ids only.

use agencylink_core::ports::{StoreError, StoreResult};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::runtime::Handle;

use crate::block_on;
use crate::dynamo::{Item, PK, SK, put_if};
use crate::error::{Resource, store_error};

/// The partition of an agency's tickets.
pub fn ticket_pk(agency: &str) -> String {
    format!("UP#{agency}")
}

/// One upload the API signed, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadTicket {
    /// The id the agency follows the upload by (a UUID v7).
    pub id: String,
    /// The agency, from the caller's token when it was signed.
    pub agency: String,
    /// The dataset.
    pub dataset: String,
    /// The landing key the form opens.
    pub key: String,
    /// When it was signed (RFC 3339).
    pub created: String,
    /// `waiting` (signed, not yet handled), `ingested`, `rejected` (refused
    /// by the agency policy before any row was read) or `failed`.
    pub status: String,
    /// The lineage upload id, once ingested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// Counts (ingested) or the refusal's code and reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// When the ingest function settled it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled: Option<String>,
}

impl UploadTicket {
    /// Whether the ingest function has not handled it yet.
    pub fn is_waiting(&self) -> bool {
        self.status == "waiting"
    }
}

/// A new upload id: a UUID version 7 (48 bits of Unix milliseconds, then
/// random), so ids sort by the time they were issued.
pub fn new_upload_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b[6..]).is_err() {
        // No OS randomness: fastrand still makes ids unique in practice;
        // they are names, not secrets (the presigned form is the secret).
        for x in &mut b[6..] {
            *x = fastrand::u8(..);
        }
    }
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Whether `id` has the shape of an upload id (lowercase hyphenated UUID):
/// anything else in a path or a landing file name is not one of ours.
pub fn valid_upload_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// The ticket id a landing key carries, when its file is `<upload id>.<ext>`.
pub fn ticket_id_of(key: &str) -> Option<&str> {
    let parts = crate::pipeline::parse_landing_key(key)?;
    let (stem, _) = parts.file.split_once('.')?;
    valid_upload_id(stem).then_some(stem)
}

/// The tickets in the table.
#[derive(Debug, Clone)]
pub struct UploadTickets {
    client: Client,
    handle: Handle,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn key(agency: &str, id: &str) -> Item {
    Item::from([
        (PK.to_owned(), s(ticket_pk(agency))),
        (SK.to_owned(), s(id)),
    ])
}

fn parse(item: &Item) -> StoreResult<UploadTicket> {
    let text = item
        .get("item")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Invalid("an upload ticket item without its ticket".into()))?;
    serde_json::from_str(text).map_err(|e| StoreError::backend("reading an upload ticket", e))
}

impl UploadTickets {
    /// Tickets in `table`.
    pub fn new(client: Client, handle: Handle, table: &str) -> Self {
        UploadTickets {
            client,
            handle,
            table: table.to_owned(),
        }
    }

    fn put(&self, t: &UploadTicket, condition: &str) -> StoreResult<bool> {
        let text = serde_json::to_string(t)
            .map_err(|e| StoreError::backend("writing an upload ticket", e))?;
        let mut item = key(&t.agency, &t.id);
        item.insert("item".into(), s(text));
        block_on(
            &self.handle,
            put_if(
                &self.client,
                &self.table,
                item,
                condition,
                &[("#pk", PK)],
                &[],
                "dynamodb:PutItem",
            ),
        )
    }

    /// Store a new ticket; `false` when one with its id exists already.
    pub fn create(&self, t: &UploadTicket) -> StoreResult<bool> {
        self.put(t, "attribute_not_exists(#pk)")
    }

    /// Replace an existing ticket (the ingest function's outcome); `false`
    /// when there is none: a landing object the API did not sign (a direct
    /// upload) has no ticket, and none is made for it.
    pub fn settle(&self, t: &UploadTicket) -> StoreResult<bool> {
        self.put(t, "attribute_exists(#pk)")
    }

    /// One of `agency`'s tickets (another agency's id is simply not found:
    /// the partition is the caller's).
    pub fn get(&self, agency: &str, id: &str) -> StoreResult<Option<UploadTicket>> {
        block_on(&self.handle, async {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key(agency, id)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| store_error(Resource::Table(&self.table), "dynamodb:GetItem", e))?;
            out.item().map(parse).transpose()
        })
    }

    /// Up to `limit` of `agency`'s tickets, newest first, older than the
    /// ticket `before` when given (the previous page's last id).
    pub fn page(
        &self,
        agency: &str,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<UploadTicket>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        block_on(&self.handle, async {
            let mut start: Option<Item> = None;
            loop {
                let want = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
                let mut q = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .consistent_read(true)
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_values(":pk", s(ticket_pk(agency)))
                    .scan_index_forward(false)
                    .limit(want)
                    .set_exclusive_start_key(start.take());
                q = match before {
                    Some(b) => q
                        .key_condition_expression("#pk = :pk AND #sk < :b")
                        .expression_attribute_names("#sk", SK)
                        .expression_attribute_values(":b", s(b)),
                    None => q.key_condition_expression("#pk = :pk"),
                };
                let page = q
                    .send()
                    .await
                    .map_err(|e| store_error(Resource::Table(&self.table), "dynamodb:Query", e))?;
                for item in page.items() {
                    out.push(parse(item)?);
                }
                match page.last_evaluated_key() {
                    Some(k) if !k.is_empty() && out.len() < limit => start = Some(k.clone()),
                    _ => return Ok::<(), StoreError>(()),
                }
            }
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v7_and_sort_by_time() {
        let a = new_upload_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_upload_id();
        assert!(valid_upload_id(&a) && valid_upload_id(&b), "{a} {b}");
        assert_eq!(&a[14..15], "7");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert!(a < b);
        for bad in [
            "",
            "x",
            &a.to_uppercase(),
            &format!("{a}0"),
            "../../../etc/passwd",
        ] {
            assert!(!valid_upload_id(bad), "{bad}");
        }
        let key = format!("landing/agency-a/police.cse_crime/{a}.csv");
        assert_eq!(ticket_id_of(&key), Some(a.as_str()));
        assert_eq!(
            ticket_id_of("landing/agency-a/police.cse_crime/March.csv"),
            None
        );
    }
}
