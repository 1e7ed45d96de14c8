//! One writer at a time on AWS: every store session (an ingest's merge, a
//! withdrawal, a retention run, a key migration) takes the merge lease, an
//! item `LEASE / MERGE` written with a conditional PutItem, and gives it
//! back at the end.
//!
//! Linkage is a read-modify-write over people and key owners: two ingests
//! merging people they share at once could each read the other's person
//! as absent and split or lose a link. SQLite serialises them with its
//! write lock; this is the same lock for DynamoDB. Sessions are short next
//! to the time between uploads, so waiting costs little.
//!
//! A holder that dies (a Lambda timed out, a killed CLI) cannot give the
//! lease back: it expires [`LEASE_SECONDS`] after it was taken, longer than
//! a Lambda can run, and the next writer takes it over. A writer that waits
//! longer than its wait limit gets a retryable error (the SQS message is
//! delivered again later), never a crash.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agencylink_core::ports::{StoreError, StoreResult};
use aws_sdk_dynamodb::types::AttributeValue;

use super::{DynamoStore, PK, key, put_if, s};
use crate::block_on;
use crate::error::{Resource, conditional, store_error};

const LEASE_PK: &str = "LEASE";
const LEASE_SK: &str = "MERGE";
/// How long a lease lasts unless given back: a Lambda's 900 s limit and a
/// margin, so a live holder's lease never expires under it.
pub const LEASE_SECONDS: u64 = 960;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The lease this store holds: its owner token and how many sessions
/// deep (a session inside a session reuses it).
#[derive(Debug, Default)]
pub(super) struct Held {
    owner: Option<String>,
    depth: u32,
}

impl DynamoStore {
    /// Take the merge lease, waiting up to the store's lease wait.
    pub(super) fn take_lease(&self) -> StoreResult<()> {
        let mut held = self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if held.owner.is_some() {
            held.depth += 1;
            return Ok(());
        }
        let mut token = [0u8; 16];
        getrandom::fill(&mut token).map_err(|e| {
            StoreError::backend("OS randomness", std::io::Error::other(e.to_string()))
        })?;
        let owner: String = token.iter().map(|b| format!("{b:02x}")).collect();
        let deadline = std::time::Instant::now() + self.lease_wait;
        let mut round = 0;
        loop {
            if block_on(&self.handle, self.try_take(&owner))? {
                held.owner = Some(owner);
                held.depth = 1;
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable {
                    message: format!(
                        "another ingest or lifecycle change holds the merge lease of {} (it expires {LEASE_SECONDS} s after it was taken); try again later",
                        Resource::Table(&self.table)
                    ),
                    source: None,
                });
            }
            std::thread::sleep(
                self.backoff
                    .delay(round.min(6))
                    .max(Duration::from_millis(20)),
            );
            round += 1;
        }
    }

    async fn try_take(&self, owner: &str) -> StoreResult<bool> {
        let now = now_secs();
        let mut item = key(LEASE_PK.into(), LEASE_SK.into());
        item.insert("owner".into(), s(owner));
        item.insert(
            "expires".into(),
            AttributeValue::N((now + LEASE_SECONDS).to_string()),
        );
        put_if(
            &self.client,
            &self.table,
            item,
            "attribute_not_exists(#pk) OR #expires < :now",
            &[("#pk", PK), ("#expires", "expires")],
            &[(":now", AttributeValue::N(now.to_string()))],
            "dynamodb:PutItem (the merge lease)",
        )
        .await
    }

    /// Whether any lease item exists (read consistently).
    fn lease_exists(&self) -> StoreResult<bool> {
        let found = block_on(&self.handle, async {
            self.client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key(LEASE_PK.into(), LEASE_SK.into())))
                .consistent_read(true)
                .send()
                .await
        })
        .map_err(|e| store_error(Resource::Table(&self.table), "dynamodb:GetItem", e))?;
        Ok(found.item().is_some())
    }

    /// Give the lease back (the outermost session's end). A lease that
    /// expired and was taken over meanwhile is an error: another writer
    /// may have merged beside this one, so the caller's session is retried.
    pub(super) fn give_lease(&self) -> StoreResult<()> {
        let mut held = self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if held.depth > 1 {
            held.depth -= 1;
            return Ok(());
        }
        let Some(owner) = held.owner.take() else {
            return Ok(());
        };
        held.depth = 0;
        let sent = block_on(&self.handle, async {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(LEASE_PK.into(), LEASE_SK.into())))
                .condition_expression("#owner = :me")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":me", s(owner))
                .send()
                .await
        });
        if conditional(
            sent,
            Resource::Table(&self.table),
            "dynamodb:DeleteItem (the merge lease)",
        )? || !self.lease_exists()?
        {
            // No lease left: this delete's own earlier attempt, whose
            // answer was lost, removed it (or it expired and its next
            // holder gave it back: nobody merges beside this session now).
            Ok(())
        } else {
            Err(StoreError::Precondition(format!(
                "the merge lease of {} expired during this session and another writer took it: the session is run again",
                Resource::Table(&self.table)
            )))
        }
    }
}
