//! The AWS checkpoint signer: an asymmetric KMS key (`ECC_NIST_P256`,
//! `SIGN_VERIFY`) named by `AGENCYLINK_CHECKPOINT_KEY_ID`.
//!
//! The private key never leaves KMS, and it is a different key from the
//! pseudonymisation secret: the roles that append to the logs get
//! `kms:Sign` on it, the auditor `kms:Verify`, and nobody can sign a
//! checkpoint of a rewritten log without `kms:Sign`. Signatures are
//! `ECDSA_SHA_256` over the raw checkpoint message; checkpoints carry the
//! key's ARN (what `Sign` answers) as their key id.

use agencylink_core::checkpoint::{
    CheckpointSigner, CheckpointVerifier, SignError, SignatureProblem,
};
use aws_sdk_kms::Client;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use tokio::runtime::Handle;

use crate::block_on;

/// The signing algorithm checkpoints signed by KMS carry.
pub const KMS_ALGORITHM: &str = "ECDSA_SHA_256";

/// Signs and verifies checkpoints with one KMS key.
#[derive(Debug, Clone)]
pub struct KmsCheckpointKey {
    client: Client,
    handle: Handle,
    /// As configured: a key id, ARN or alias.
    configured: String,
    /// The key's ARN, once KMS has told us (checkpoints carry it).
    arn: std::sync::Arc<std::sync::OnceLock<String>>,
}

impl KmsCheckpointKey {
    /// The key `key_id` (id, ARN or `alias/…`).
    pub fn new(client: Client, handle: Handle, key_id: &str) -> Self {
        KmsCheckpointKey {
            client,
            handle,
            configured: key_id.to_owned(),
            arn: Default::default(),
        }
    }

    /// Sign `message`; returns the signature and the key's ARN.
    fn sign_raw(&self, message: &[u8]) -> Result<(Vec<u8>, String), SignError> {
        let out = block_on(&self.handle, async {
            self.client
                .sign()
                .key_id(&self.configured)
                .message(Blob::new(message))
                .message_type(MessageType::Raw)
                .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                .send()
                .await
        })
        .map_err(|e| {
            SignError(format!(
                "KMS Sign with the checkpoint key: {}",
                e.code().unwrap_or("no error code")
            ))
        })?;
        let sig = out
            .signature()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| SignError("KMS Sign returned no signature".into()))?;
        let arn = out
            .key_id()
            .map_or_else(|| self.configured.clone(), str::to_owned);
        Ok((sig, arn))
    }

    /// The id checkpoints carry: the key's ARN, found by signing nothing
    /// of consequence once (KMS `Sign` answers with it; `DescribeKey` would
    /// need a permission the signers do not otherwise have).
    fn arn(&self) -> Result<&str, SignError> {
        if let Some(a) = self.arn.get() {
            return Ok(a);
        }
        let (_, arn) = self.sign_raw(b"agencylink checkpoint key id probe\n")?;
        Ok(self.arn.get_or_init(|| arn))
    }
}

impl CheckpointSigner for KmsCheckpointKey {
    fn key_id(&self) -> &str {
        // Checkpoint::sign asks for the id before signing; a failure here
        // surfaces in sign() (the configured id is never written instead:
        // an alias can be repointed).
        self.arn().unwrap_or(&self.configured)
    }
    fn algorithm(&self) -> &str {
        KMS_ALGORITHM
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let (sig, arn) = self.sign_raw(message)?;
        if self.arn()? != arn {
            return Err(SignError(
                "the checkpoint key alias now points at another key".into(),
            ));
        }
        Ok(sig)
    }
}

impl CheckpointVerifier for KmsCheckpointKey {
    fn verify(
        &self,
        key_id: &str,
        algorithm: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureProblem> {
        if algorithm != KMS_ALGORITHM {
            return Err(SignatureProblem::UnknownKey(format!(
                "{key_id} ({algorithm})"
            )));
        }
        // Verify with the configured key, never with the key the checkpoint
        // names: a checkpoint signed by a key of the forger's choosing would
        // otherwise verify.
        let out = block_on(&self.handle, async {
            self.client
                .verify()
                .key_id(&self.configured)
                .message(Blob::new(message))
                .message_type(MessageType::Raw)
                .signature(Blob::new(signature))
                .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                .send()
                .await
        });
        match out {
            Ok(v) if v.signature_valid() => {
                let ours = v.key_id().unwrap_or(&self.configured);
                if ours == key_id || self.configured == key_id {
                    Ok(())
                } else {
                    Err(SignatureProblem::UnknownKey(key_id.to_owned()))
                }
            }
            Ok(_) => Err(SignatureProblem::Invalid),
            // Real KMS answers a bad signature with this error rather than
            // `SignatureValid: false`.
            Err(e) if e.code() == Some("KMSInvalidSignatureException") => {
                Err(SignatureProblem::Invalid)
            }
            Err(e) => Err(SignatureProblem::Unavailable(format!(
                "KMS Verify with the checkpoint key: {}",
                e.code().unwrap_or("no error code")
            ))),
        }
    }
}
