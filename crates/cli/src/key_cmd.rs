//! Key rotation on the embedded store (`agencylink key rotate | migrate |
//! status`); the store operations are `agencylink_core::rotation`.
//!
//! The keys are files in the data directory, each mode 0600: `key.json`
//! is the store's key, `key.next.json` the new key while a rotation is
//! open, and `key.previous.json` the old key while records are still
//! under it after the migration. A key given by `AGENCYLINK_KEY` stays the
//! operator's to change: after the migration they must give the new key
//! (printed as a file path, never as text).

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agencylink_core::ports::{KeyProvider, RecordStore};
use agencylink_core::pseudo::{Key, Pseudonymiser};
use agencylink_core::rotation::{self, Phase, RotationState, Scope};
use agencylink_local::{KEY_FILE, LocalKeyProvider, SqliteStore};
use anyhow::{Context, Result, bail};

use crate::commands::{check_key_matches, load_key, now_rfc3339, open_store_file};

/// The new key while a rotation is open.
pub(crate) const NEXT_KEY_FILE: &str = "key.next.json";
/// The old key while records are still under it.
pub(crate) const PREVIOUS_KEY_FILE: &str = "key.previous.json";

/// `agencylink key rotate|migrate|status`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum RotationCommand {
    /// Open a key rotation (the key custodian): make a new key
    /// (DATA_DIR/key.next.json, mode 0600) and append a `key_rotate` lineage
    /// event. Until `key migrate`, the store stays under the current key and
    /// every ingest also records, for the values it sees, the old → new
    /// token translations. Prints the two key ids as JSON.
    Rotate,
    /// Rewrite every stored record whose values were all seen during the
    /// rotation under the new key (person ids kept), make the new key the
    /// store's (key.json; the old one becomes key.previous.json while any
    /// record is left under it), and append a `key_migrate` lineage event.
    /// Prints the event as JSON. Records left under the old key move when
    /// their agency sends them again; the old key is deleted when none is
    /// left.
    Migrate {
        /// End the rotation now even if records are left under the old key:
        /// they stay as they are (unlinkable to new uploads) until withdrawn
        /// or expired, and the old key and the translations are deleted.
        #[arg(long)]
        finish: bool,
    },
    /// The open rotation as JSON (`{"rotation": null}` when none).
    Status,
}

pub(crate) fn rotation_cmd(data_dir: &Path, cmd: RotationCommand) -> Result<ExitCode> {
    let store = open_store_file(data_dir)?;
    match cmd {
        RotationCommand::Status => {
            let state = rotation::state(&store)?;
            println!("{}", serde_json::json!({ "rotation": state }));
            Ok(ExitCode::SUCCESS)
        }
        RotationCommand::Rotate => rotate(data_dir, &store),
        RotationCommand::Migrate { finish } => migrate(data_dir, &store, finish),
    }
}

fn rotate(data_dir: &Path, store: &SqliteStore) -> Result<ExitCode> {
    check_key_matches(data_dir, store)?;
    let current = load_key(data_dir)?;
    if let Some(s) = rotation::state(store)? {
        bail!(rotation::RotationError::AlreadyOpen {
            from: s.from,
            to: s.to
        });
    }
    let next_path = data_dir.join(NEXT_KEY_FILE);
    // A rotate killed after making the key but before recording the
    // rotation left the file: it is used, not replaced, so a key nothing
    // depends on yet is never orphaned.
    let next = match LocalKeyProvider::File(next_path.clone()).key() {
        Ok(k) => k,
        Err(_) if !next_path.exists() => LocalKeyProvider::init(&next_path)?,
        Err(e) => return Err(e.into()),
    };
    let event = rotation::open(
        store,
        &store.lineage(),
        current.kid(),
        next.kid(),
        &now_rfc3339(),
    )?;
    println!(
        "{}",
        serde_json::json!({
            "from_key_id": event.from_key_id,
            "to_key_id": event.to_key_id,
            "next_key_file": next_path,
        })
    );
    eprintln!(
        "rotation open: keep ingesting as usual; when the agencies have sent their current extracts, run `agencylink key migrate`"
    );
    Ok(ExitCode::SUCCESS)
}

fn migrate(data_dir: &Path, store: &SqliteStore, finish: bool) -> Result<ExitCode> {
    let Some(state) = rotation::state(store)? else {
        // A migration whose key files were not swapped (killed between the
        // commit and the renames) is finished here.
        if swap_keys_if_migrated(data_dir, store)? {
            eprintln!("finished moving the key files of the last migration");
            return Ok(ExitCode::SUCCESS);
        }
        bail!(rotation::RotationError::NotOpen);
    };
    if state.phase == Phase::Open {
        // The new key must be at hand before the store moves to it.
        let next = LocalKeyProvider::File(data_dir.join(NEXT_KEY_FILE))
            .key()
            .with_context(|| {
                format!(
                    "the rotation's new key ({}) must be in {} before migrating",
                    state.to,
                    data_dir.join(NEXT_KEY_FILE).display()
                )
            })?;
        if next.kid().as_str() != state.to {
            bail!(
                "{} holds key {}, but the open rotation is to key {}",
                data_dir.join(NEXT_KEY_FILE).display(),
                next.kid(),
                state.to
            );
        }
    }
    let event = {
        let _ticker = crate::progress::Ticker::start("migrating to the new key");
        rotation::migrate(
            store,
            &store.lineage(),
            Scope::Store,
            finish,
            &now_rfc3339(),
        )?
    }
    .context("the migration wrote no event")?;
    swap_keys_if_migrated(data_dir, store)?;
    if event.complete {
        retire_previous(data_dir)?;
    }
    println!("{}", serde_json::to_string(&event)?);
    if event.records_untranslated > 0 && !event.complete {
        eprintln!(
            "{} records are still under key {}: they move when their agency sends them again (or run `agencylink key migrate --finish` to leave them as they are and delete the old key)",
            event.records_untranslated, event.from_key_id
        );
    }
    if std::env::var_os("AGENCYLINK_KEY").is_some() {
        eprintln!(
            "the store's key is now {}: set AGENCYLINK_KEY and AGENCYLINK_KEY_ID to the key in {}",
            event.key_id,
            data_dir.join(KEY_FILE).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// After a migration: `key.json` → `key.previous.json` and
/// `key.next.json` → `key.json`, when the store's key is the next key's.
/// Whether anything moved.
fn swap_keys_if_migrated(data_dir: &Path, store: &SqliteStore) -> Result<bool> {
    let next_path = data_dir.join(NEXT_KEY_FILE);
    let Ok(next) = LocalKeyProvider::File(next_path.clone()).key() else {
        return Ok(false);
    };
    let store_key = agencylink_core::lineage::store_key_id_in(&store.lineage())?;
    if store_key.as_deref() != Some(next.kid().as_str()) {
        return Ok(false);
    }
    let key_path = data_dir.join(KEY_FILE);
    if key_path.exists() {
        fs::rename(&key_path, data_dir.join(PREVIOUS_KEY_FILE))
            .with_context(|| format!("keeping the old key as {PREVIOUS_KEY_FILE}"))?;
    }
    fs::rename(&next_path, &key_path).with_context(|| format!("making {KEY_FILE} the new key"))?;
    // The renames last only once the directory entry is on disk.
    fs::File::open(data_dir).and_then(|d| d.sync_all())?;
    Ok(true)
}

/// Delete the old key: overwritten, then removed.
fn retire_previous(data_dir: &Path) -> Result<()> {
    let path = data_dir.join(PREVIOUS_KEY_FILE);
    if let Ok(meta) = fs::symlink_metadata(&path) {
        if meta.is_file() {
            fs::write(&path, vec![0u8; meta.len() as usize])?;
        }
        fs::remove_file(&path).with_context(|| format!("deleting {}", path.display()))?;
    }
    Ok(())
}

fn other_key_path(data_dir: &Path, state: &RotationState) -> PathBuf {
    data_dir.join(match state.phase {
        Phase::Open => NEXT_KEY_FILE,
        Phase::Draining => PREVIOUS_KEY_FILE,
    })
}

/// The rotation's step before an ingest, when one is open or draining
/// (see `rotation::before_ingest`); reads `copy` to the end. Returns the
/// state it found, for [`after_ingest`].
pub(crate) fn before_ingest(
    data_dir: &Path,
    store: &SqliteStore,
    ds: &agencylink_core::schema::Dataset,
    key: &Pseudonymiser,
    info: &agencylink_core::ingest::UploadInfo,
    copy: &mut fs::File,
) -> Result<Option<RotationState>> {
    let Some(state) = rotation::state(store)? else {
        return Ok(None);
    };
    if key.kid().as_str() != state.store_key() {
        // The ingest's own key check names both ids.
        return Ok(None);
    }
    let path = other_key_path(data_dir, &state);
    let other: Key = LocalKeyProvider::File(path.clone())
        .key()
        .with_context(|| {
            format!(
                "a key rotation ({} to {}) is open, and its other key is not in {}",
                state.from,
                state.to,
                path.display()
            )
        })?;
    let other = Pseudonymiser::new(other);
    let moved = rotation::before_ingest(
        store,
        &store.lineage(),
        ds,
        key,
        &other,
        info,
        &mut BufReader::new(&mut *copy),
    )?;
    if let Some(m) = moved {
        eprintln!(
            "moved {} records this upload re-sends from key {} to {}",
            m.records_migrated, m.from_key_id, m.key_id
        );
    }
    Ok(Some(state))
}

/// After an ingest that met a draining rotation: when it moved the last
/// records, the rotation is over and the old key goes.
pub(crate) fn after_ingest(
    data_dir: &Path,
    store: &dyn RecordStore,
    before: Option<RotationState>,
) -> Result<()> {
    if before.is_some_and(|s| s.phase == Phase::Draining) && rotation::state(store)?.is_none() {
        retire_previous(data_dir)?;
        eprintln!("the key rotation is complete: the old key was deleted");
    }
    Ok(())
}

/// `--backend aws key rotate|migrate|status`: the key custodian's side,
/// which writes the key secret's versions and labels and reads no key and
/// no data; the ingest function's hourly rotation task does the data side
/// (`agencylink_aws::key_rotation`).
#[cfg(feature = "aws")]
pub(crate) fn aws_rotation(
    backend: &agencylink_aws::AwsBackend,
    cmd: RotationCommand,
) -> Result<ExitCode> {
    use agencylink_aws::secrets::{FINISH, MIGRATE};
    let keys = backend.keys.as_ref().context(
        "AGENCYLINK_KEY_SECRET_ID is not set: the AWS backend keeps its key in Secrets Manager",
    )?;
    match cmd {
        RotationCommand::Status => {
            // Labels → versions: what the custodian may see.
            let stages: std::collections::BTreeMap<String, String> =
                keys.stages()?.into_iter().collect();
            println!("{}", serde_json::json!({ "key_secret_labels": stages }));
            Ok(ExitCode::SUCCESS)
        }
        RotationCommand::Rotate => {
            let kid = keys.put_pending()?;
            println!(
                "{}",
                serde_json::json!({
                    "to_key_id": kid.as_str(),
                    "next_key": "the key secret's AWSPENDING version",
                })
            );
            eprintln!(
                "new key {kid} stored as AWSPENDING: the ingest function opens the rotation on its next hourly run; when the agencies have sent their current extracts, run `agencylink --backend aws key migrate`"
            );
            Ok(ExitCode::SUCCESS)
        }
        RotationCommand::Migrate { finish } => {
            keys.signal(if finish { FINISH } else { MIGRATE })?;
            println!(
                "{}",
                serde_json::json!({ "signal": if finish { FINISH } else { MIGRATE } })
            );
            eprintln!(
                "the ingest function migrates the store on its next hourly run and then moves AWSCURRENT to the new key; `lineage list` shows the key_migrate event"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
