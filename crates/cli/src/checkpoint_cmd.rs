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

use agencylink_core::checkpoint::{
    Checkpoint, CheckpointProblem, CheckpointVerifier, verify_against,
};
use agencylink_core::lineage::ChainProblem;
use agencylink_core::ports::RecordStore;
use agencylink_core::reconcile;
use agencylink_local::SqliteStore;
use agencylink_local::checkpoints::{LocalCheckpoints, read_checkpoint};
use anyhow::{Context, Result};
use serde_json::{Value, json};

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

/// How a log is verified: its chain check and its name in messages.
pub(crate) struct LogSpec {
    /// `lineage` or `access-log` (the checkpoint's `log`).
    pub(crate) log: &'static str,
    /// "lineage" / "access log", for messages.
    pub(crate) label: &'static str,
    /// "events" / "entries": the count's name in the JSON output.
    pub(crate) unit: &'static str,
    /// "event" / "entry": one of them, in messages.
    pub(crate) one: &'static str,
    /// The chain check.
    pub(crate) chain: fn(&[Value]) -> Result<usize, ChainProblem>,
}

pub(crate) const LINEAGE: LogSpec = LogSpec {
    log: "lineage",
    label: "lineage",
    unit: "events",
    one: "event",
    chain: agencylink_core::lineage::verify,
};

pub(crate) const ACCESS_LOG: LogSpec = LogSpec {
    log: "access-log",
    label: "access log",
    unit: "entries",
    one: "entry",
    chain: agencylink_core::query::verify_access_log,
};

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

/// `lineage verify` / `access-log --verify`: the chain, then the backend's
/// own checks, then the latest checkpoint (or `file`), then, for lineage,
/// the record store reconciled with it (`records`). Exit 0 ok, 1 broken.
pub(crate) fn verify_cmd(
    spec: &LogSpec,
    entries: &[Value],
    file: Option<&PathBuf>,
    ck: &dyn Checkpoints,
    records: Option<&dyn RecordStore>,
) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    let n = match (spec.chain)(entries) {
        Ok(n) => n,
        Err(p) => {
            writeln!(out, "{}", json!({"ok": false, "problem": p}))?;
            eprintln!(
                "{} BROKEN at {} {} (seq {:?}): {}",
                spec.label, spec.one, p.position, p.seq, p.reason
            );
            return Ok(ExitCode::from(1));
        }
    };
    let broken = |out: &mut io::StdoutLock<'_>, p: CheckpointProblem, place: Option<&str>| {
        writeln!(
            out,
            "{}",
            json!({"ok": false, "problem": p, "checkpoint": place})
        )?;
        match place {
            Some(place) => eprintln!("{} BROKEN: {} (checkpoint {place})", spec.label, p.reason),
            None => eprintln!("{} BROKEN: {}", spec.label, p.reason),
        }
        Ok::<_, anyhow::Error>(ExitCode::from(1))
    };
    // The backend's own copies first: on AWS they name the first event
    // that differs, where a checkpoint can only say the head does.
    if let Err(p) = ck.extra_check(spec.log, entries)? {
        return broken(&mut out, p, None);
    }
    let checked = against_checkpoint(spec, entries, file.map(PathBuf::as_path), ck)?;
    let summary = match checked {
        Some((place, _, Err(p))) => return broken(&mut out, p, Some(&place)),
        Some((place, cp, Ok(()))) => {
            json!({"file": place, "size": cp.size, "time": cp.time, "key_id": cp.key_id})
        }
        None => Value::Null,
    };
    let reconciled = match records {
        None => None,
        Some(records) => match reconcile::reconcile(entries, &records.record_counts()?) {
            Ok(r) => Some(r),
            Err(mismatches) => {
                let mut bad = json!({
                    "ok": false,
                    "problem": {"reason": "the record store disagrees with lineage"},
                    "mismatches": mismatches,
                    "checkpoint": summary,
                });
                bad[spec.unit] = json!(n);
                writeln!(out, "{bad}")?;
                for m in &mismatches {
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
                return Ok(ExitCode::from(1));
            }
        },
    };
    let mut ok = json!({"ok": true});
    ok[spec.unit] = json!(n);
    ok["checkpoint"] = summary.clone();
    if let Some(r) = &reconciled {
        ok["reconciled"] = json!(r);
        eprintln!(
            "row counts conserved; the store's {} records agree with {} uploads",
            r.records, r.uploads
        );
    }
    writeln!(out, "{ok}")?;
    match summary.get("file").and_then(Value::as_str) {
        Some(place) => eprintln!(
            "{} verified: {n} {}, chain intact, not shorter than the checkpoint {place}",
            spec.label, spec.unit
        ),
        None => eprintln!(
            "{} verified: {n} {}, chain intact; warning: no checkpoint found, so entries deleted from the end would not show (pass --checkpoint FILE with a copy kept elsewhere)",
            spec.label, spec.unit
        ),
    }
    Ok(ExitCode::SUCCESS)
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
