//! The data side of a key rotation on AWS, run by the ingest function on
//! its hourly task (`{"agencylink_task": "key_rotation"}`).
//!
//! The key custodian writes the new key and moves labels, nothing else
//! (`crate::secrets`); this task, which holds the data, acts on what they
//! did:
//!
//! - an `AWSPENDING` version whose key is not the store's, and no rotation
//!   open: open one (`key_rotate` event);
//! - the custodian's [`MIGRATE`] (or [`FINISH`]) label with a rotation
//!   open: migrate the store (`key_migrate` event), move `AWSCURRENT` to
//!   the new key, take the labels off, and, when nothing is left under the
//!   old key, `AWSPREVIOUS` too;
//! - [`FINISH`] while draining: end the rotation, leaving what is left;
//! - a migration whose labels were not moved (the task died between the
//!   two): move them.
//!
//! Every event also goes to the WORM archive. Each step is idempotent, so
//! a retried or overlapping run converges.

use agencylink_core::lineage;
use agencylink_core::ports::{ChainLog, KeyProvider, KeySourceError, StoreError};
use agencylink_core::rotation::{self, Phase, RotationError, Scope};
use serde_json::{Value, json};

use crate::AwsBackend;
use crate::secrets::{FINISH, MIGRATE, PENDING};

/// Why the task failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The key secret could not be read or its labels moved.
    #[error(transparent)]
    Key(#[from] KeySourceError),
    /// The rotation step failed.
    #[error(transparent)]
    Rotation(#[from] RotationError),
    /// The table or the archive failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No key secret is configured.
    #[error("AGENCYLINK_KEY_SECRET_ID is not set")]
    NoSecret,
}

fn archive_newest(backend: &AwsBackend) -> Result<(), StoreError> {
    if let Some(a) = &backend.archive {
        for e in backend.lineage.page_back(None, 1)? {
            a.archive("lineage", &e)?;
        }
    }
    Ok(())
}

/// Run the task once; what it did, as JSON.
pub fn run(backend: &AwsBackend, now: &str) -> Result<Value, TaskError> {
    let keys = backend.keys.as_ref().ok_or(TaskError::NoSecret)?;
    // Another instance may have moved AWSCURRENT since this one cached it.
    keys.forget();
    let stages = keys.stages()?;
    let store_key = lineage::store_key_id_in(&backend.lineage)?;
    let pending = if stages.contains_key(PENDING) {
        keys.key_at(PENDING)?
    } else {
        None
    };
    // A migration that committed but did not move the labels.
    if let Some(p) = &pending
        && store_key.as_deref() == Some(p.kid().as_str())
    {
        keys.promote_pending()?;
        keys.clear_signal(MIGRATE)?;
        keys.clear_signal(FINISH)?;
        if rotation::state(&backend.records)?.is_none() {
            keys.retire_previous()?;
        }
        return Ok(json!({"step": "promoted", "key_id": p.kid().as_str()}));
    }
    let finish = stages.contains_key(FINISH);
    let migrate = finish || stages.contains_key(MIGRATE);
    match rotation::state(&backend.records)? {
        None => {
            let Some(p) = pending else {
                // Signals with nothing to act on (a rotation already over).
                keys.clear_signal(MIGRATE)?;
                keys.clear_signal(FINISH)?;
                return Ok(json!({"step": "none"}));
            };
            let current = keys.key()?;
            if p.kid() == current.kid() {
                return Ok(json!({"step": "none"}));
            }
            let event = rotation::open(
                &backend.records,
                &backend.lineage,
                current.kid(),
                p.kid(),
                now,
            )?;
            archive_newest(backend)?;
            Ok(json!({"step": "opened", "event": event}))
        }
        Some(s)
            if (s.phase == Phase::Open && migrate) || (s.phase == Phase::Draining && finish) =>
        {
            if s.phase == Phase::Open
                && pending.as_ref().map(|k| k.kid().as_str()) != Some(s.to.as_str())
            {
                return Err(KeySourceError::Missing(format!(
                    "the key secret has no AWSPENDING version with key id {}: the rotation's new key must be there before migrating",
                    s.to
                ))
                .into());
            }
            let event = rotation::migrate(
                &backend.records,
                &backend.lineage,
                Scope::Store,
                finish,
                now,
            )?;
            archive_newest(backend)?;
            keys.promote_pending()?;
            keys.clear_signal(MIGRATE)?;
            keys.clear_signal(FINISH)?;
            if event.as_ref().is_some_and(|e| e.complete) {
                keys.retire_previous()?;
            }
            Ok(json!({"step": "migrated", "event": event}))
        }
        Some(s) => Ok(json!({"step": "waiting", "rotation": s})),
    }
}
