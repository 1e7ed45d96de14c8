//! What a log is checked against on AWS, for core's verification
//! ([`agencylink_core::audit`]): the WORM audit bucket's copy of every
//! event and its checkpoints, and the KMS key that signed them. The CLI's
//! `lineage verify` and the API's `GET /lineage/verify` both use it, so
//! both catch a table cut short or rewritten behind the chain's back.

use agencylink_core::audit::{AuditCopies, CheckedAgainst};
use agencylink_core::checkpoint::{CheckpointProblem, CheckpointVerifier};
use agencylink_core::ports::{StoreError, StoreResult};
use serde_json::Value;

use crate::AwsBackend;
use crate::S3Archive;
use crate::kms::KmsCheckpointKey;

/// The archive and checkpoint key of a backend, either possibly unset.
#[derive(Debug, Clone, Copy)]
pub struct AwsAuditCopies<'a> {
    archive: Option<&'a S3Archive>,
    key: Option<&'a KmsCheckpointKey>,
}

impl AwsBackend {
    /// What this backend's logs are verified against.
    pub fn audit_copies(&self) -> AwsAuditCopies<'_> {
        AwsAuditCopies {
            archive: self.archive.as_ref(),
            key: self.checkpoint_key.as_ref(),
        }
    }

    /// Write the WORM copy of a lineage entry (nothing when no archive is
    /// configured).
    pub fn archive_lineage(&self, entry: &Value) -> StoreResult<()> {
        match &self.archive {
            Some(a) => a.archive("lineage", entry).map(|_| ()),
            None => Ok(()),
        }
    }
}

impl AuditCopies for AwsAuditCopies<'_> {
    type Error = StoreError;

    /// The table's chain against the archived copies: an archived event
    /// past the table's end, or one whose hash differs from the table's
    /// event of the same seq, is a problem naming the seq. Without an
    /// archive there is nothing to compare.
    fn compare(&self, log: &str, entries: &[Value]) -> StoreResult<Result<(), CheckpointProblem>> {
        let Some(archive) = self.archive else {
            return Ok(Ok(()));
        };
        let n = entries.len() as u64;
        for (seq, hash) in archive.archived_events(log)? {
            let table = usize::try_from(seq.wrapping_sub(1))
                .ok()
                .and_then(|i| entries.get(i))
                .and_then(|e| e.get("hash"))
                .and_then(Value::as_str);
            let problem = match table {
                None if seq > n => CheckpointProblem {
                    kind: "truncated",
                    seq: Some(seq),
                    reason: format!(
                        "the audit archive s3://{}/{log}/ holds event seq {seq} but the table's {log} log ends at seq {n}: events were deleted from the table",
                        archive.bucket()
                    ),
                },
                Some(h) if h == hash => continue,
                _ => CheckpointProblem {
                    kind: "diverged",
                    seq: Some(seq),
                    reason: format!(
                        "the table's {log} event seq {seq} differs from its archived copy in s3://{}/{log}/ (edited in the table)",
                        archive.bucket()
                    ),
                },
            };
            return Ok(Err(problem));
        }
        Ok(Ok(()))
    }

    fn latest(&self, log: &str) -> StoreResult<Option<CheckedAgainst>> {
        let Some(archive) = self.archive else {
            return Ok(None);
        };
        Ok(archive
            .latest_checkpoint(log)?
            .map(|(key, checkpoint)| CheckedAgainst {
                place: format!("s3://{}/{key}", archive.bucket()),
                checkpoint,
            }))
    }

    fn verifier(&self) -> StoreResult<Box<dyn CheckpointVerifier + '_>> {
        match self.key {
            Some(key) => Ok(Box::new(key.clone())),
            None => Err(StoreError::Invalid(
                "AGENCYLINK_CHECKPOINT_KEY_ID is not set: checkpoints on AWS are signed with a KMS key".into(),
            )),
        }
    }
}
