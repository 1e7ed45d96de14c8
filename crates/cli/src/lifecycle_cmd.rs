//! The data lifecycle on the embedded store: `withdraw` takes an upload
//! back out (the store operation is `agencylink_core::withdraw`), and
//! `compact` rewrites what removed and superseded records left on disk.

use std::path::Path;
use std::process::ExitCode;

use agencylink_core::events::LineageEvent;
use agencylink_core::ports::{ChainLog, ObjectStore};
use agencylink_core::withdraw::{upload_state, withdraw};
use agencylink_local::DirObjectStore;
use anyhow::{Context, Result};

use crate::commands::{now_rfc3339, open_existing_store};

/// `agencylink withdraw`.
#[derive(Debug, clap::Args)]
pub(crate) struct WithdrawArgs {
    /// The upload to withdraw (`agencylink lineage list` shows the ids).
    pub(crate) upload_id: String,
    /// Why, in one line of at most 300 characters. It is kept in the
    /// hash-chained lineage log for good: never name a person in it.
    #[arg(long)]
    pub(crate) reason: String,
}

/// The folder `demo` writes the problem profile to: built from every
/// upload, so it holds what a withdrawal removes.
const DEMO_PROFILE: &str = "profile";

pub(crate) fn withdraw_cmd(data_dir: &Path, args: WithdrawArgs) -> Result<ExitCode> {
    let store = open_existing_store(data_dir)?;
    let objects = DirObjectStore::new(data_dir);
    let lineage = store.lineage();
    let done = withdraw(
        &store,
        &lineage,
        &objects,
        &args.upload_id,
        &args.reason,
        &now_rfc3339(),
    )?;
    // The event as lineage stores it, with its seq and hash.
    println!("{}", serde_json::to_string(&done.entry)?);
    let profile = data_dir.join(DEMO_PROFILE);
    if std::fs::symlink_metadata(&profile).is_ok_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(&profile)
            .with_context(|| format!("removing {}", profile.display()))?;
        eprintln!(
            "removed {}: it was built from the withdrawn records; build it again with `agencylink profile --out DIR`",
            profile.display()
        );
    }
    eprintln!(
        "withdrawn; its records' bytes stay in the body file and free database pages until `agencylink compact`"
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn compact_cmd(data_dir: &Path) -> Result<ExitCode> {
    let store = open_existing_store(data_dir)?;
    // The outputs of withdrawn uploads that a killed or failed withdrawal
    // could not remove (it removes them after its commit).
    let entries = store.lineage().entries()?;
    let objects = DirObjectStore::new(data_dir);
    let mut outputs_removed = 0;
    let mut done = std::collections::BTreeSet::new();
    for e in &entries {
        let LineageEvent::Withdrawn(w) = LineageEvent::from_entry(e) else {
            continue;
        };
        if !done.insert(w.upload_id.clone()) || upload_state(&entries, &w.upload_id).1.is_none() {
            continue;
        }
        for key in &w.outputs_removed {
            if objects.head(key).is_ok() {
                objects.delete(key)?;
                outputs_removed += 1;
            }
        }
    }
    let c = store.compact()?;
    println!(
        "{}",
        serde_json::json!({
            "records": c.records,
            "bodies_bytes_before": c.bodies_before,
            "bodies_bytes_after": c.bodies_after,
            "database_bytes_before": c.database_before,
            "database_bytes_after": c.database_after,
            "wal_truncated": c.wal_truncated,
            "outputs_removed": outputs_removed,
        })
    );
    if c.wal_truncated {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "the WAL could not be truncated: a command was reading the store; removed bytes may remain in {}-wal until `agencylink compact` runs again with no reader",
            data_dir.join(crate::commands::DB_FILE).display()
        );
        Ok(ExitCode::from(1))
    }
}
