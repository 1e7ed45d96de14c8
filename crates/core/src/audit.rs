//! A log's whole verification, as auditors get it from the CLI and from the
//! API alike: its hash chain, the backend's own copies of it, the latest
//! signed checkpoint, and for lineage the record store reconciled with it.
//!
//! One function runs the checks in one order and one type reports them,
//! so `agencylink lineage verify` and `GET /lineage/verify` cannot drift
//! apart: an API that checked the chain alone would call a truncated log
//! intact. Where the copies and checkpoints live is the caller's business
//! (a data directory, or the WORM bucket and a KMS key); each is fetched
//! only when the checks before it passed.

use serde_json::{Value, json};

use crate::checkpoint::{Checkpoint, CheckpointProblem, CheckpointVerifier, verify_against};
use crate::lineage::ChainProblem;
use crate::reconcile::{self, Mismatch, Reconciled, RecordCounts};

/// How a log is verified and named.
#[derive(Debug, Clone, Copy)]
pub struct LogSpec {
    /// `lineage` or `access-log` (a checkpoint's `log`).
    pub log: &'static str,
    /// "lineage" / "access log", for messages.
    pub label: &'static str,
    /// "events" / "entries": the count's name in the JSON report.
    pub unit: &'static str,
    /// "event" / "entry": one of them, in messages.
    pub one: &'static str,
    /// The chain check.
    pub chain: fn(&[Value]) -> Result<usize, ChainProblem>,
}

/// The lineage log.
pub const LINEAGE: LogSpec = LogSpec {
    log: "lineage",
    label: "lineage",
    unit: "events",
    one: "event",
    chain: crate::lineage::verify,
};

/// The access log.
pub const ACCESS_LOG: LogSpec = LogSpec {
    log: "access-log",
    label: "access log",
    unit: "entries",
    one: "entry",
    chain: crate::query::verify_access_log,
};

/// The checkpoint a log was checked against: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedAgainst {
    /// A path or an `s3://` address.
    pub place: String,
    /// The checkpoint.
    pub checkpoint: Checkpoint,
}

/// What verification found, first failure only.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The chain itself is broken.
    Chain(ChainProblem),
    /// The chain is intact but differs from the backend's own copies (on
    /// AWS, the WORM archive), which name the first event that differs.
    Copies(CheckpointProblem),
    /// The log is shorter than, or rewritten since, the checkpoint.
    Checkpoint {
        /// The checkpoint.
        against: CheckedAgainst,
        /// What is wrong.
        problem: CheckpointProblem,
    },
    /// The log holds, the record store disagrees with it.
    Records {
        /// The checkpoint that held, if any.
        against: Option<CheckedAgainst>,
        /// Every disagreement.
        mismatches: Vec<Mismatch>,
    },
    /// Everything checked holds.
    Ok {
        /// The checkpoint that held; none found means a log cut short at
        /// its end would not show.
        against: Option<CheckedAgainst>,
        /// The reconciliation, when the record store was checked.
        reconciled: Option<Reconciled>,
    },
}

/// A log's verification.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    /// Which log.
    pub spec: LogSpec,
    /// Entries in the log (0 when its chain is broken).
    pub count: usize,
    /// What was found.
    pub outcome: Outcome,
}

impl PartialEq for LogSpec {
    fn eq(&self, other: &Self) -> bool {
        self.log == other.log
    }
}

impl Verification {
    /// Whether everything held.
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok { .. })
    }

    /// The report both hosts print or return: `ok`, the count, the
    /// checkpoint and the reconciliation, or the problem.
    pub fn to_json(&self) -> Value {
        let summary = |a: &Option<CheckedAgainst>| match a {
            Some(a) => json!({
                "file": a.place,
                "size": a.checkpoint.size,
                "time": a.checkpoint.time,
                "key_id": a.checkpoint.key_id,
            }),
            None => Value::Null,
        };
        match &self.outcome {
            Outcome::Chain(p) => json!({"ok": false, "problem": p}),
            Outcome::Copies(p) => json!({"ok": false, "problem": p, "checkpoint": null}),
            Outcome::Checkpoint { against, problem } => {
                json!({"ok": false, "problem": problem, "checkpoint": against.place})
            }
            Outcome::Records {
                against,
                mismatches,
            } => {
                let mut bad = json!({
                    "ok": false,
                    "problem": {"reason": "the record store disagrees with lineage"},
                    "mismatches": mismatches,
                    "checkpoint": summary(against),
                });
                bad[self.spec.unit] = json!(self.count);
                bad
            }
            Outcome::Ok {
                against,
                reconciled,
            } => {
                let mut ok = json!({"ok": true});
                ok[self.spec.unit] = json!(self.count);
                ok["checkpoint"] = summary(against);
                if let Some(r) = reconciled {
                    ok["reconciled"] = json!(r);
                }
                ok
            }
        }
    }
}

/// Where a backend keeps what a log is checked against.
pub trait AuditCopies {
    /// How fetching a copy fails.
    type Error;
    /// The log compared with the backend's own copies of its entries: a
    /// problem naming the first entry that differs (default: none kept).
    fn compare(
        &self,
        _log: &str,
        _entries: &[Value],
    ) -> Result<Result<(), CheckpointProblem>, Self::Error> {
        Ok(Ok(()))
    }
    /// The newest kept checkpoint of `log`, and where it is.
    fn latest(&self, log: &str) -> Result<Option<CheckedAgainst>, Self::Error>;
    /// What checks this backend's checkpoint signatures.
    fn verifier(&self) -> Result<Box<dyn CheckpointVerifier + '_>, Self::Error>;
}

/// Verify `entries` (the whole log, oldest first): the chain, then the
/// backend's copies, then `given` or else the latest checkpoint, then (when
/// `records` is given: lineage only) the record store's counts. Errors are
/// failures to read a copy, not findings.
pub fn verify_log<C: AuditCopies + ?Sized>(
    spec: LogSpec,
    entries: &[Value],
    copies: &C,
    given: Option<CheckedAgainst>,
    records: Option<&dyn Fn() -> Result<RecordCounts, C::Error>>,
) -> Result<Verification, C::Error> {
    let done = |count, outcome| {
        Ok(Verification {
            spec,
            count,
            outcome,
        })
    };
    let count = match (spec.chain)(entries) {
        Ok(n) => n,
        Err(p) => return done(0, Outcome::Chain(p)),
    };
    // The backend's own copies first: they name the first event that
    // differs, where a checkpoint can only say the head does.
    if let Err(p) = copies.compare(spec.log, entries)? {
        return done(count, Outcome::Copies(p));
    }
    let against = match given {
        Some(a) => Some(a),
        None => copies.latest(spec.log)?,
    };
    if let Some(a) = &against {
        let verifier = copies.verifier()?;
        if let Err(problem) = verify_against(spec.log, entries, &a.checkpoint, verifier.as_ref()) {
            return done(
                count,
                Outcome::Checkpoint {
                    against: a.clone(),
                    problem,
                },
            );
        }
    }
    let reconciled = match records {
        None => None,
        Some(counts) => match reconcile::reconcile(entries, &counts()?) {
            Ok(r) => Some(r),
            Err(mismatches) => {
                return done(
                    count,
                    Outcome::Records {
                        against,
                        mismatches,
                    },
                );
            }
        },
    };
    done(
        count,
        Outcome::Ok {
            against,
            reconciled,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{CheckpointSigner, Ed25519Signer, Ed25519Verifier};

    /// Copies kept in memory: a checkpoint, an Ed25519 key, and optionally
    /// a problem the backend's copies report.
    struct Kept {
        signer: Ed25519Signer,
        checkpoint: Option<Checkpoint>,
        copies_problem: Option<CheckpointProblem>,
    }

    impl AuditCopies for Kept {
        type Error = String;
        fn compare(&self, _: &str, _: &[Value]) -> Result<Result<(), CheckpointProblem>, String> {
            Ok(self.copies_problem.clone().map_or(Ok(()), Err))
        }
        fn latest(&self, _: &str) -> Result<Option<CheckedAgainst>, String> {
            Ok(self.checkpoint.clone().map(|checkpoint| CheckedAgainst {
                place: "kept.json".into(),
                checkpoint,
            }))
        }
        fn verifier(&self) -> Result<Box<dyn CheckpointVerifier + '_>, String> {
            let mut v = Ed25519Verifier::default();
            v.add(&self.signer.public_key())
                .map_err(|e| e.to_string())?;
            Ok(Box::new(v))
        }
    }

    fn log(n: usize) -> Vec<Value> {
        let log = crate::memory::MemoryChainLog::default();
        for i in 0..n {
            let mut fields = serde_json::Map::new();
            fields.insert("event".into(), json!("note"));
            fields.insert("i".into(), json!(i));
            crate::lineage::append(&log, fields).expect("append");
        }
        crate::ports::ChainLog::entries(&log).expect("entries")
    }

    fn kept(entries: &[Value]) -> Kept {
        let signer = Ed25519Signer::from_seed(&[7; 32]);
        let checkpoint = Checkpoint::create("lineage", entries, "2026-12-03T08:00:00Z", &signer)
            .expect("checkpoint");
        Kept {
            signer,
            checkpoint: Some(checkpoint),
            copies_problem: None,
        }
    }

    #[test]
    fn an_intact_log_reports_its_checkpoint() {
        let entries = log(3);
        let k = kept(&entries);
        let v = verify_log(LINEAGE, &entries, &k, None, None).expect("verify");
        assert!(v.ok());
        let j = v.to_json();
        assert_eq!(
            (j["events"].as_u64(), j["checkpoint"]["size"].as_u64()),
            (Some(3), Some(3)),
            "{j}"
        );
        assert_eq!(j["checkpoint"]["key_id"], k.signer.key_id());
    }

    #[test]
    fn a_log_cut_short_fails_on_its_checkpoint_naming_the_first_missing_entry() {
        let entries = log(4);
        let k = kept(&entries);
        for cut in 1..=3 {
            let v = verify_log(LINEAGE, &entries[..4 - cut], &k, None, None).expect("verify");
            let Outcome::Checkpoint { problem, against } = &v.outcome else {
                panic!("cut {cut}: {:?}", v.outcome);
            };
            assert_eq!(
                (problem.kind, problem.seq),
                ("truncated", Some((4 - cut + 1) as u64))
            );
            assert_eq!(v.to_json()["checkpoint"], against.place);
        }
    }

    #[test]
    fn the_backends_copies_are_checked_before_the_checkpoint() {
        let entries = log(2);
        let mut k = kept(&entries);
        k.copies_problem = Some(CheckpointProblem {
            kind: "diverged",
            seq: Some(1),
            reason: "differs from its archived copy".into(),
        });
        let v = verify_log(LINEAGE, &entries, &k, None, None).expect("verify");
        assert_eq!(
            v.to_json(),
            json!({"ok": false, "problem": {"kind": "diverged", "seq": 1, "reason": "differs from its archived copy"}, "checkpoint": null})
        );
    }

    #[test]
    fn a_broken_chain_is_reported_before_anything_is_fetched() {
        let mut entries = log(2);
        entries[1]["i"] = json!(9);
        let k = Kept {
            checkpoint: None,
            ..kept(&log(2))
        };
        let v = verify_log(LINEAGE, &entries, &k, None, None).expect("verify");
        assert!(matches!(v.outcome, Outcome::Chain(_)), "{:?}", v.outcome);
        assert_eq!(v.to_json()["ok"], false);
    }

    #[test]
    fn a_lineage_log_is_reconciled_with_the_record_store() {
        // No uploads in lineage, but the store holds a record: a mismatch.
        let entries: Vec<Value> = Vec::new();
        let k = Kept {
            checkpoint: None,
            ..kept(&log(1))
        };
        let mut counts = RecordCounts::new();
        counts.insert(
            reconcile::RecordGroup {
                upload_id: "u_1".into(),
                agency: "gmp-police".into(),
                dataset: "police.cse_crime".into(),
            },
            1,
        );
        let store = move || Ok::<_, String>(counts.clone());
        let v = verify_log(LINEAGE, &entries, &k, None, Some(&store)).expect("verify");
        let j = v.to_json();
        assert_eq!(j["ok"], false, "{j}");
        assert_eq!(j["events"], 0);
        assert_eq!(j["mismatches"][0]["upload_id"], "u_1");
        let empty = || Ok::<_, String>(RecordCounts::new());
        let v = verify_log(LINEAGE, &entries, &k, None, Some(&empty)).expect("verify");
        assert!(v.ok());
        assert_eq!(v.to_json()["reconciled"]["records"], 0);
    }
}
