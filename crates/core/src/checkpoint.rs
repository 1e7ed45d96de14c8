//! Signed checkpoints of the hash-chained logs (lineage, access log).
//!
//! A hash chain proves the order and content of what is there, not how much
//! there should be: deleting events from the end leaves a valid, shorter
//! chain. A checkpoint is a signed statement "log L had N entries and the
//! N-th hashed to H at time T"; kept somewhere the log's writer cannot
//! rewrite (off the machine, a WORM bucket), it turns truncation into a
//! detectable failure.
//!
//! The signature covers a fixed byte string, [`Checkpoint::message`]:
//!
//! ```text
//! agencylink checkpoint v1\n{log}\n{size}\n{head_hash}\n{time}\n{key_id}\n{algorithm}\n
//! ```
//!
//! Every field is a line of its own and none may contain a newline, so two
//! different checkpoints never sign the same bytes. The core reads no clock
//! and holds no key: the time is passed in and signing goes through the
//! [`CheckpointSigner`] port (Ed25519 here, a KMS key on AWS).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The log names a checkpoint can be for.
pub const LOGS: [&str; 2] = ["lineage", "access-log"];

/// The algorithm name of [`Ed25519Signer`] checkpoints.
pub const ED25519: &str = "Ed25519";

/// The first line of the signed message; a new layout gets a new version.
const MESSAGE_PREFIX: &str = "agencylink checkpoint v1\n";

/// A signed statement of a log's length and head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// `lineage` or `access-log`.
    pub log: String,
    /// Entries in the log when it was taken.
    pub size: u64,
    /// The `hash` of entry `size` (seq `size`).
    pub head_hash: String,
    /// RFC 3339 UTC time it was taken.
    pub time: String,
    /// Which key signed it.
    pub key_id: String,
    /// The signature algorithm (`Ed25519`, or a KMS signing algorithm).
    pub algorithm: String,
    /// Standard base64 of the signature over [`Checkpoint::message`].
    pub signature: String,
}

/// Signing cannot be done (no key, the key service is down). Never
/// carries key material.
#[derive(Debug, thiserror::Error)]
#[error("the checkpoint could not be signed: {0}")]
pub struct SignError(pub String);

/// Holds a checkpoint signing key, kept apart from the pseudonymisation key.
pub trait CheckpointSigner: Send + Sync {
    /// The id written into checkpoints, by which a verifier finds the key.
    fn key_id(&self) -> &str;
    /// The algorithm name written into checkpoints.
    fn algorithm(&self) -> &str;
    /// Sign `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureProblem {
    /// The verifier knows no key by that id (or not for that algorithm).
    #[error("it was signed by key {0}, which this verifier does not know")]
    UnknownKey(String),
    /// The signature does not match the message under the key.
    #[error("its signature does not match its contents (forged or edited)")]
    Invalid,
    /// The key service could not be asked.
    #[error("its signature could not be checked: {0}")]
    Unavailable(String),
}

/// Checks checkpoint signatures.
pub trait CheckpointVerifier: Send + Sync {
    /// `Ok` when `signature` is `key_id`'s signature of `message` under `algorithm`.
    fn verify(
        &self,
        key_id: &str,
        algorithm: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureProblem>;
}

/// A checkpoint cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Nothing to checkpoint.
    #[error("the {0} log is empty: there is nothing to checkpoint")]
    Empty(String),
    /// The last entry has no hash (the chain should have been verified).
    #[error("entry {0} of the log has no hash")]
    NoHash(u64),
    /// A field would make the signed message ambiguous.
    #[error("checkpoint field `{0}` is empty or contains a newline")]
    BadField(&'static str),
    /// The signer failed.
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// Why a log does not match a checkpoint. `kind` is one of `wrong_log`,
/// `signature`, `truncated`, `diverged`; `seq` names the entry when one is
/// at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointProblem {
    /// A machine-readable name of the problem.
    pub kind: &'static str,
    /// The entry at fault, when there is one.
    pub seq: Option<u64>,
    /// What is wrong, in a sentence.
    pub reason: String,
}

impl std::fmt::Display for CheckpointProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

fn check_field(name: &'static str, value: &str) -> Result<(), CheckpointError> {
    if value.is_empty() || value.contains(['\n', '\r']) {
        Err(CheckpointError::BadField(name))
    } else {
        Ok(())
    }
}

impl Checkpoint {
    /// The exact bytes a checkpoint's signature covers.
    pub fn message(
        log: &str,
        size: u64,
        head_hash: &str,
        time: &str,
        key_id: &str,
        algorithm: &str,
    ) -> Vec<u8> {
        format!("{MESSAGE_PREFIX}{log}\n{size}\n{head_hash}\n{time}\n{key_id}\n{algorithm}\n")
            .into_bytes()
    }

    /// The bytes this checkpoint's signature should cover.
    pub fn signed_message(&self) -> Vec<u8> {
        Self::message(
            &self.log,
            self.size,
            &self.head_hash,
            &self.time,
            &self.key_id,
            &self.algorithm,
        )
    }

    /// Sign a checkpoint of `entries` (a chain the caller has verified) as
    /// log `log` at `time`.
    pub fn create(
        log: &str,
        entries: &[Value],
        time: &str,
        signer: &dyn CheckpointSigner,
    ) -> Result<Checkpoint, CheckpointError> {
        let Some(last) = entries.last() else {
            return Err(CheckpointError::Empty(log.to_owned()));
        };
        let size = entries.len() as u64;
        let head_hash = last
            .get("hash")
            .and_then(Value::as_str)
            .ok_or(CheckpointError::NoHash(size))?;
        Self::sign(log, size, head_hash, time, signer)
    }

    /// Sign a checkpoint of a log whose entry `size` hashes to `head_hash`.
    pub fn sign(
        log: &str,
        size: u64,
        head_hash: &str,
        time: &str,
        signer: &dyn CheckpointSigner,
    ) -> Result<Checkpoint, CheckpointError> {
        check_field("log", log)?;
        check_field("head_hash", head_hash)?;
        check_field("time", time)?;
        check_field("key_id", signer.key_id())?;
        check_field("algorithm", signer.algorithm())?;
        if size == 0 {
            return Err(CheckpointError::Empty(log.to_owned()));
        }
        let message = Self::message(
            log,
            size,
            head_hash,
            time,
            signer.key_id(),
            signer.algorithm(),
        );
        let signature = signer.sign(&message)?;
        Ok(Checkpoint {
            log: log.to_owned(),
            size,
            head_hash: head_hash.to_owned(),
            time: time.to_owned(),
            key_id: signer.key_id().to_owned(),
            algorithm: signer.algorithm().to_owned(),
            signature: B64.encode(signature),
        })
    }

    /// Check the signature only.
    pub fn verify_signature(
        &self,
        verifier: &dyn CheckpointVerifier,
    ) -> Result<(), CheckpointProblem> {
        let bad = |reason: String| CheckpointProblem {
            kind: "signature",
            seq: None,
            reason: format!("the {} checkpoint at size {} {reason}", self.log, self.size),
        };
        let fields = [
            self.log.as_str(),
            &self.head_hash,
            &self.time,
            &self.key_id,
            &self.algorithm,
        ];
        if fields
            .iter()
            .any(|f| f.is_empty() || f.contains(['\n', '\r']))
        {
            return Err(bad("has an empty field or one with a newline".into()));
        }
        let signature = B64
            .decode(&self.signature)
            .map_err(|_| bad("has a signature that is not base64".into()))?;
        verifier
            .verify(
                &self.key_id,
                &self.algorithm,
                &self.signed_message(),
                &signature,
            )
            .map_err(|p| bad(p.to_string()))
    }
}

/// Check `entries` (the whole log `log`, oldest first, its chain already
/// verified) against a checkpoint: signed by a known key, for this log, and
/// the log at least as long with the same entry at the checkpoint's size.
pub fn verify_against(
    log: &str,
    entries: &[Value],
    checkpoint: &Checkpoint,
    verifier: &dyn CheckpointVerifier,
) -> Result<(), CheckpointProblem> {
    if checkpoint.log != log {
        return Err(CheckpointProblem {
            kind: "wrong_log",
            seq: None,
            reason: format!(
                "the checkpoint is of the {} log, not the {log} log",
                checkpoint.log
            ),
        });
    }
    checkpoint.verify_signature(verifier)?;
    let have = entries.len() as u64;
    if have < checkpoint.size {
        return Err(CheckpointProblem {
            kind: "truncated",
            seq: Some(have + 1),
            reason: format!(
                "the {log} log has {have} entries, the checkpoint of {} says {}: entries were deleted from the end (the first missing is seq {})",
                checkpoint.time,
                checkpoint.size,
                have + 1
            ),
        });
    }
    let at = usize::try_from(checkpoint.size - 1).unwrap_or(usize::MAX);
    let hash = entries
        .get(at)
        .and_then(|e| e.get("hash"))
        .and_then(Value::as_str);
    if hash != Some(checkpoint.head_hash.as_str()) {
        return Err(CheckpointProblem {
            kind: "diverged",
            seq: Some(checkpoint.size),
            reason: format!(
                "the {log} log's entry {} hashes differently from the checkpoint of {}: the log was rewritten up to there",
                checkpoint.size, checkpoint.time
            ),
        });
    }
    Ok(())
}

/// The key id of an Ed25519 public key: `ed25519-` and the first 16 hex
/// digits of its SHA-256, so it names the key without being a secret.
pub fn ed25519_key_id(public: &[u8; 32]) -> String {
    let digest = Sha256::digest(public);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("ed25519-{hex}")
}

/// An Ed25519 checkpoint signer over a 32-byte seed.
pub struct Ed25519Signer {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Ed25519Signer {
    /// The signer for a secret seed (from the OS's randomness, at the edge).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let key_id = ed25519_key_id(key.verifying_key().as_bytes());
        Ed25519Signer { key, key_id }
    }

    /// The public key, for verifiers.
    pub fn public_key(&self) -> [u8; 32] {
        *self.key.verifying_key().as_bytes()
    }
}

impl CheckpointSigner for Ed25519Signer {
    fn key_id(&self) -> &str {
        &self.key_id
    }
    fn algorithm(&self) -> &str {
        ED25519
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(self.key.sign(message).to_bytes().to_vec())
    }
}

/// Verifies Ed25519 checkpoints against known public keys.
#[derive(Debug, Default, Clone)]
pub struct Ed25519Verifier {
    keys: Vec<(String, VerifyingKey)>,
}

impl Ed25519Verifier {
    /// Trust `public` (32 bytes); returns its key id. A point that is not
    /// a valid public key is refused.
    pub fn add(&mut self, public: &[u8; 32]) -> Result<String, SignatureProblem> {
        let key = VerifyingKey::from_bytes(public)
            .map_err(|_| SignatureProblem::Unavailable("not an Ed25519 public key".into()))?;
        let id = ed25519_key_id(public);
        self.keys.push((id.clone(), key));
        Ok(id)
    }
}

impl CheckpointVerifier for Ed25519Verifier {
    fn verify(
        &self,
        key_id: &str,
        algorithm: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureProblem> {
        let key = self
            .keys
            .iter()
            .find(|(id, _)| id == key_id)
            .filter(|_| algorithm == ED25519)
            .map(|(_, k)| k)
            .ok_or_else(|| SignatureProblem::UnknownKey(key_id.to_owned()))?;
        let sig = ed25519_dalek::Signature::from_slice(signature)
            .map_err(|_| SignatureProblem::Invalid)?;
        // Strict: no malleable or small-order signatures.
        key.verify_strict(message, &sig)
            .map_err(|_| SignatureProblem::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage;
    use crate::memory::MemoryChainLog;
    use crate::ports::ChainLog;
    use serde_json::json;

    const T: &str = "2026-12-03T02:00:00Z";

    fn log_of(n: u64) -> Vec<Value> {
        let log = MemoryChainLog::default();
        for i in 0..n {
            let fields =
                json!({"type": "ingest", "rows_in": i, "rows_accepted": i, "rows_rejected": 0});
            lineage::append(&log, fields.as_object().cloned().unwrap_or_default()).expect("append");
        }
        log.entries().expect("entries")
    }

    fn keys() -> (Ed25519Signer, Ed25519Verifier) {
        let signer = Ed25519Signer::from_seed(&[7u8; 32]);
        let mut verifier = Ed25519Verifier::default();
        let id = verifier.add(&signer.public_key()).expect("key");
        assert_eq!(id, signer.key_id());
        (signer, verifier)
    }

    #[test]
    fn a_checkpoint_verifies_against_its_log_and_longer_ones() {
        let (signer, verifier) = keys();
        let entries = log_of(10);
        let cp = Checkpoint::create("lineage", &entries[..6], T, &signer).expect("sign");
        assert_eq!(cp.size, 6);
        assert_eq!(
            verify_against("lineage", &entries[..6], &cp, &verifier),
            Ok(())
        );
        // A log that grew since is fine.
        assert_eq!(verify_against("lineage", &entries, &cp, &verifier), Ok(()));
        // Round trip through JSON.
        let text = serde_json::to_string(&cp).expect("json");
        let back: Checkpoint = serde_json::from_str(&text).expect("parse");
        assert_eq!(
            verify_against("lineage", &entries, &back, &verifier),
            Ok(())
        );
    }

    #[test]
    fn truncation_by_every_count_is_detected() {
        let (signer, verifier) = keys();
        let entries = log_of(9);
        let cp = Checkpoint::create("access-log", &entries, T, &signer).expect("sign");
        for k in 1..=9usize {
            let shorter = &entries[..9 - k];
            // The shorter chain is itself valid: only the checkpoint shows the loss.
            assert_eq!(lineage::verify(shorter), Ok(9 - k));
            let p = verify_against("access-log", shorter, &cp, &verifier).expect_err("truncated");
            assert_eq!(p.kind, "truncated", "k={k}");
            assert_eq!(p.seq, Some((9 - k + 1) as u64));
            assert!(
                p.reason
                    .contains(&format!("has {} entries, the checkpoint", 9 - k)),
                "{}",
                p.reason
            );
        }
    }

    #[test]
    fn a_rewritten_log_of_the_same_length_is_detected() {
        let (signer, verifier) = keys();
        let entries = log_of(5);
        let cp = Checkpoint::create("lineage", &entries, T, &signer).expect("sign");
        // Rebuild the chain with different content: it verifies on its own.
        let log = MemoryChainLog::default();
        for i in 0..6u64 {
            let fields = json!({"type": "ingest", "rows_in": i + 100, "rows_accepted": i + 100, "rows_rejected": 0});
            lineage::append(&log, fields.as_object().cloned().unwrap_or_default()).expect("append");
        }
        let forged = log.entries().expect("entries");
        assert_eq!(lineage::verify(&forged), Ok(6));
        let p = verify_against("lineage", &forged, &cp, &verifier).expect_err("diverged");
        assert_eq!((p.kind, p.seq), ("diverged", Some(5)));
    }

    #[test]
    fn edited_forged_or_foreign_checkpoints_are_refused() {
        let (signer, verifier) = keys();
        let entries = log_of(4);
        let cp = Checkpoint::create("lineage", &entries, T, &signer).expect("sign");
        // Lowering the size to hide a truncation breaks the signature.
        let mut edited = cp.clone();
        edited.size = 2;
        let p = verify_against("lineage", &entries[..2], &edited, &verifier).expect_err("edited");
        assert_eq!(p.kind, "signature");
        // A flipped signature bit.
        let mut sig = B64.decode(&cp.signature).expect("b64");
        sig[3] ^= 1;
        let mut flipped = cp.clone();
        flipped.signature = B64.encode(&sig);
        assert_eq!(
            verify_against("lineage", &entries, &flipped, &verifier)
                .expect_err("flipped")
                .kind,
            "signature"
        );
        // Signed by another key (e.g. one planted with a rewritten log).
        let other = Ed25519Signer::from_seed(&[8u8; 32]);
        let foreign = Checkpoint::create("lineage", &entries, T, &other).expect("sign");
        let p = verify_against("lineage", &entries, &foreign, &verifier).expect_err("foreign");
        assert_eq!(p.kind, "signature");
        assert!(p.reason.contains(other.key_id()), "{}", p.reason);
        // A lineage checkpoint is not an access-log checkpoint.
        assert_eq!(
            verify_against("access-log", &entries, &cp, &verifier)
                .expect_err("wrong log")
                .kind,
            "wrong_log"
        );
    }

    #[test]
    fn the_signed_message_is_fixed_and_fields_cannot_smuggle_lines() {
        assert_eq!(
            Checkpoint::message("lineage", 42, "ab", T, "k", "Ed25519"),
            b"agencylink checkpoint v1\nlineage\n42\nab\n2026-12-03T02:00:00Z\nk\nEd25519\n"
        );
        let (signer, _) = keys();
        assert!(matches!(
            Checkpoint::sign("lineage\n1", 1, "ab", T, &signer),
            Err(CheckpointError::BadField("log"))
        ));
        assert!(matches!(
            Checkpoint::create("lineage", &[], T, &signer),
            Err(CheckpointError::Empty(_))
        ));
    }
}
