//! Signed checkpoints of the lineage log and the access log: `lineage
//! checkpoint`, `access-log checkpoint`, the checkpoint half of `lineage
//! verify` and `access-log --verify`, and the checkpoint every command that
//! appends to a log writes afterwards.
//!
//! The backends differ only in where the key and the checkpoints live
//! ([`Checkpoints`]): `DATA_DIR/checkpoint-key.json` and
//! `DATA_DIR/checkpoints/` locally, a KMS key and the WORM audit bucket on
//! AWS. The checks themselves are `agencylink_core::checkpoint`'s.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agencylink_core::audit::{AuditCopies, CheckedAgainst, Outcome, verify_log};
use agencylink_core::checkpoint::{
    Checkpoint, CheckpointProblem, CheckpointVerifier, verify_against,
};
use agencylink_core::ports::RecordStore;
use agencylink_local::SqliteStore;
use agencylink_local::checkpoints::{LocalCheckpoints, read_checkpoint};
use anyhow::{Context, Result};
use serde_json::Value;

/// Where a backend keeps its checkpoint key and checkpoints.
pub(crate) trait Checkpoints {
    /// Sign a checkpoint of `entries` (a verified chain) as `log` and keep
    /// it; returns where it went and the checkpoint.
    fn take(&self, log: &str, entries: &[Value]) -> Result<(String, Checkpoint)>;
    /// The newest kept checkpoint of `log`, and where it is.
    fn latest(&self, log: &str) -> Result<Option<(String, Checkpoint)>>;
    /// The verifier for this backend's checkpoints.
    fn verifier(&self) -> Result<Box<dyn CheckpointVerifier + '_>>;
    /// Backend-specific checks of the log beyond the checkpoint (on AWS:
    /// the table's chain against the archived copies).
    fn extra_check(&self, _log: &str, _entries: &[Value]) -> Result<Result<(), CheckpointProblem>> {
        Ok(Ok(()))
    }
}

/// The local backend's: `DATA_DIR/checkpoint-key.json` and `DATA_DIR/checkpoints/`.
#[derive(Debug)]
pub(crate) struct LocalCk(pub(crate) LocalCheckpoints);

impl LocalCk {
    pub(crate) fn new(data_dir: &Path) -> Self {
        LocalCk(LocalCheckpoints::new(data_dir))
    }
}

impl Checkpoints for LocalCk {
    fn take(&self, log: &str, entries: &[Value]) -> Result<(String, Checkpoint)> {
        let (signer, created) = self.0.signer_or_init()?;
        if created {
            eprintln!(
                "created a checkpoint signing key (mode 0600, separate from the pseudonymisation key); copy {} off this machine after every upload",
                self.0.dir().display()
            );
        }
        let cp = Checkpoint::create(log, entries, &crate::commands::now_rfc3339(), &signer)?;
        let path = self.0.write(&cp, &signer)?;
        Ok((path.display().to_string(), cp))
    }
    fn latest(&self, log: &str) -> Result<Option<(String, Checkpoint)>> {
        Ok(self
            .0
            .latest(log)?
            .map(|(p, cp)| (p.display().to_string(), cp)))
    }
    fn verifier(&self) -> Result<Box<dyn CheckpointVerifier + '_>> {
        Ok(Box::new(self.0.verifier()?))
    }
}

pub(crate) use agencylink_core::audit::{ACCESS_LOG, LINEAGE, LogSpec};

/// A backend's [`Checkpoints`] as core's verification sees them.
pub(crate) struct Copies<'a>(pub(crate) &'a dyn Checkpoints);

impl AuditCopies for Copies<'_> {
    type Error = anyhow::Error;
    fn compare(&self, log: &str, entries: &[Value]) -> Result<Result<(), CheckpointProblem>> {
        self.0.extra_check(log, entries)
    }
    fn latest(&self, log: &str) -> Result<Option<CheckedAgainst>> {
        Ok(self
            .0
            .latest(log)?
            .map(|(place, checkpoint)| CheckedAgainst { place, checkpoint }))
    }
    fn verifier(&self) -> Result<Box<dyn CheckpointVerifier + '_>> {
        self.0
            .verifier()
            .context("loading the checkpoint public key")
    }
}

/// Where a checkpoint was, the checkpoint, and how the log fared against it.
type Checked = (String, Checkpoint, Result<(), CheckpointProblem>);

/// Check a log against a checkpoint (kept or given); `Ok(None)` when there is
/// none to check against.
fn against_checkpoint(
    spec: &LogSpec,
    entries: &[Value],
    file: Option<&Path>,
    ck: &dyn Checkpoints,
) -> Result<Option<Checked>> {
    let found = match file {
        Some(path) => Some((path.display().to_string(), read_checkpoint(path)?)),
        None => ck.latest(spec.log)?,
    };
    let Some((place, cp)) = found else {
        return Ok(None);
    };
    let verifier = ck.verifier().context("loading the checkpoint public key")?;
    let outcome = verify_against(spec.log, entries, &cp, verifier.as_ref());
    Ok(Some((place, cp, outcome)))
}

/// `lineage verify` / `access-log --verify`: core's verification (the
/// chain, the backend's own copies, the latest checkpoint or `file`, and for
/// lineage the record store reconciled with it), its report on stdout and
/// a sentence on stderr. Exit 0 ok, 1 broken.
pub(crate) fn verify_cmd(
    spec: &LogSpec,
    entries: &[Value],
    file: Option<&PathBuf>,
    ck: &dyn Checkpoints,
    records: Option<&dyn RecordStore>,
) -> Result<ExitCode> {
    let given = match file {
        Some(path) => Some(CheckedAgainst {
            place: path.display().to_string(),
            checkpoint: read_checkpoint(path)?,
        }),
        None => None,
    };
    let counts = records.map(|r| move || r.record_counts().map_err(anyhow::Error::from));
    let v = verify_log(
        *spec,
        entries,
        &Copies(ck),
        given,
        counts.as_ref().map(|c| c as &dyn Fn() -> Result<_>),
    )?;
    writeln!(io::stdout().lock(), "{}", v.to_json())?;
    let n = v.count;
    match &v.outcome {
        Outcome::Chain(p) => eprintln!(
            "{} BROKEN at {} {} (seq {:?}): {}",
            spec.label, spec.one, p.position, p.seq, p.reason
        ),
        Outcome::Copies(p) => eprintln!("{} BROKEN: {}", spec.label, p.reason),
        Outcome::Checkpoint { against, problem } => eprintln!(
            "{} BROKEN: {} (checkpoint {})",
            spec.label, problem.reason, against.place
        ),
        Outcome::Records { mismatches, .. } => {
            for m in mismatches {
                eprintln!(
                    "store and lineage DISAGREE: {} / {}{}: {}",
                    m.agency,
                    m.dataset,
                    m.upload_id
                        .as_deref()
                        .map_or_else(String::new, |u| format!(" upload {u}")),
                    m.reason
                );
            }
        }
        Outcome::Ok {
            against,
            reconciled,
        } => {
            if let Some(r) = reconciled {
                eprintln!(
                    "row counts conserved; the store's {} records agree with {} uploads",
                    r.records, r.uploads
                );
            }
            match against {
                Some(a) => eprintln!(
                    "{} verified: {n} {}, chain intact, not shorter than the checkpoint {}",
                    spec.label, spec.unit, a.place
                ),
                None => eprintln!(
                    "{} verified: {n} {}, chain intact; warning: no checkpoint found, so entries deleted from the end would not show (pass --checkpoint FILE with a copy kept elsewhere)",
                    spec.label, spec.unit
                ),
            }
        }
    }
    Ok(if v.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `lineage checkpoint` / `access-log checkpoint`: sign the log as it is
/// now, keep the checkpoint and print it. Refused (exit 1) when the chain is
/// broken or the log no longer matches the latest checkpoint: signing it
/// would bless the damage.
pub(crate) fn checkpoint_cmd(
    spec: &LogSpec,
    entries: &[Value],
    ck: &dyn Checkpoints,
) -> Result<ExitCode> {
    if let Err(why) = check_before_signing(spec, entries, ck)? {
        eprintln!("{why}; no checkpoint written");
        return Ok(ExitCode::from(1));
    }
    let (place, cp) = ck.take(spec.log, entries)?;
    println!("{}", serde_json::to_string(&cp)?);
    eprintln!(
        "{} checkpoint at {} {} written to {place}",
        spec.label, cp.size, spec.unit
    );
    Ok(ExitCode::SUCCESS)
}

/// Whether the log may be signed now; `Err(why)` if not.
fn check_before_signing(
    spec: &LogSpec,
    entries: &[Value],
    ck: &dyn Checkpoints,
) -> Result<Result<(), String>> {
    if let Err(p) = (spec.chain)(entries) {
        return Ok(Err(format!(
            "{} BROKEN at {} {} (seq {:?}): {}",
            spec.label, spec.one, p.position, p.seq, p.reason
        )));
    }
    if entries.is_empty() {
        return Ok(Err(format!("the {} is empty", spec.label)));
    }
    if let Err(p) = ck.extra_check(spec.log, entries)? {
        return Ok(Err(format!("{} BROKEN: {}", spec.label, p.reason)));
    }
    if let Some((place, _, Err(p))) = against_checkpoint(spec, entries, None, ck)? {
        return Ok(Err(format!(
            "{} BROKEN: {} (checkpoint {place})",
            spec.label, p.reason
        )));
    }
    Ok(Ok(()))
}

/// After a command that may have appended to the logs: a checkpoint of each
/// log that grew since its latest checkpoint. A log that no longer verifies
/// is not signed (said on stderr); a failure to sign is an error.
pub(crate) fn after_append(store: &SqliteStore, ck: &dyn Checkpoints) -> Result<()> {
    use agencylink_core::ports::ChainLog as _;
    for (spec, entries) in [
        (&LINEAGE, store.lineage().entries()?),
        (&ACCESS_LOG, store.access_log().entries()?),
    ] {
        take_if_grown(spec, &entries, ck)?;
    }
    Ok(())
}

/// A checkpoint of `entries` when the log grew since its latest one.
pub(crate) fn take_if_grown(spec: &LogSpec, entries: &[Value], ck: &dyn Checkpoints) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    if let Some((_, latest)) = ck.latest(spec.log)?
        && latest.size == entries.len() as u64
        && entries
            .last()
            .and_then(|e| e.get("hash"))
            .and_then(Value::as_str)
            == Some(latest.head_hash.as_str())
    {
        return Ok(());
    }
    match check_before_signing(spec, entries, ck)? {
        Ok(()) => {
            ck.take(spec.log, entries)?;
        }
        Err(why) => eprintln!(
            "warning: {why}; no new checkpoint written (see `agencylink {}`)",
            if spec.log == "lineage" {
                "lineage verify"
            } else {
                "access-log --verify"
            }
        ),
    }
    Ok(())
}
