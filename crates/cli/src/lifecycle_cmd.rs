//! The data lifecycle on the embedded store: `withdraw` takes an upload
//! back out (the store operation is `agencylink_core::withdraw`),
//! `retention` removes records past their dataset's retention period
//! (`agencylink_core::retention`), and `compact` rewrites what removed and
//! superseded records left on disk.

use std::path::Path;
use std::process::ExitCode;

use agencylink_core::events::LineageEvent;
use std::io::Write;

use agencylink_core::ports::{ChainLog, ObjectStore, RecordStore};
use agencylink_core::retention;
use agencylink_core::schema::{Catalog, Dataset};
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

/// `agencylink retention`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum RetentionCommand {
    /// Each dataset's retention period (its schema's `x-retention-days`)
    /// and the cutoff it gives today, one JSON line each.
    Show(RetentionArgs),
    /// Remove every record dated before its dataset's cutoff (people
    /// re-derived as a withdrawal does), one `expired` lineage event per
    /// dataset that lost records; one JSON line per dataset. Run
    /// `compact` afterwards to remove the bytes from disk.
    Apply(RetentionArgs),
}

/// The day a retention run counts back from.
#[derive(Debug, clap::Args)]
pub(crate) struct RetentionArgs {
    /// Count back from this day (YYYY-MM-DD) instead of today (UTC).
    #[arg(long)]
    pub(crate) today: Option<String>,
}

impl RetentionCommand {
    fn today(&self) -> String {
        let (Self::Show(a) | Self::Apply(a)) = self;
        a.today
            .clone()
            .unwrap_or_else(|| now_rfc3339().chars().take(10).collect())
    }
}

/// `retention show|apply` on any store; `archive` gets each appended event
/// (the WORM copy on AWS).
pub(crate) fn retention(
    catalog: &Catalog,
    records: &dyn RecordStore,
    lineage: &dyn ChainLog,
    archive: &dyn Fn(&serde_json::Value) -> Result<()>,
    cmd: &RetentionCommand,
) -> Result<ExitCode> {
    let today = cmd.today();
    let datasets: Vec<&Dataset> = catalog.latest().map(AsRef::as_ref).collect();
    let mut out = std::io::stdout().lock();
    if let RetentionCommand::Show(_) = cmd {
        for ds in &datasets {
            let cut = match ds.retention_days {
                Some(d) => Some(
                    retention::cutoff(&today, d)
                        .ok_or(retention::RetentionError::Date(today.chars().count()))?,
                ),
                None => None,
            };
            writeln!(
                out,
                "{}",
                serde_json::json!({"dataset": ds.id, "retention_days": ds.retention_days, "cutoff": cut})
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let runs = retention::apply(records, lineage, &datasets, &today, &now_rfc3339())?;
    let mut removed = 0;
    for run in &runs {
        if let Some(entry) = &run.entry {
            archive(entry)?;
        }
        let n = run.event.as_ref().map_or(0, |e| e.records_removed);
        removed += n;
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "dataset": run.dataset,
                "retention_days": run.retention_days,
                "cutoff": run.cutoff,
                "records_removed": n,
                "event": run.event,
            })
        )?;
    }
    eprintln!(
        "{removed} records past their retention period removed; their bytes stay in the body file until `agencylink compact`"
    );
    Ok(ExitCode::SUCCESS)
}

/// `retention` on the embedded store.
pub(crate) fn retention_cmd(
    catalog: &Catalog,
    data_dir: &Path,
    cmd: &RetentionCommand,
) -> Result<ExitCode> {
    let store = open_existing_store(data_dir)?;
    let lineage = store.lineage();
    retention(catalog, &store, &lineage, &|_| Ok(()), cmd)
}

/// The folders of the data directory built from every upload, so holding
/// what a withdrawal removes: the profile `demo` writes, and the profiles
/// and exports `serve` keeps for its download links.
const BUILT_FROM_ALL: [&str; 3] = ["profile", "profiles", "exports"];

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
    for name in BUILT_FROM_ALL {
        let built = data_dir.join(name);
        if std::fs::symlink_metadata(&built).is_ok_and(|m| m.is_dir()) {
            std::fs::remove_dir_all(&built)
                .with_context(|| format!("removing {}", built.display()))?;
            eprintln!(
                "removed {}: it was built from the withdrawn records; build it again (`agencylink profile --out DIR`, or through `serve`)",
                built.display()
            );
        }
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
    let c = {
        let _ticker = crate::progress::Ticker::start("compacting");
        store.compact()?
    };
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
