//! The embedded checkpoint signing key and the checkpoint directory.
//!
//! `DATA_DIR/checkpoint-key.json` (0600, created on first use) holds an
//! Ed25519 seed of its own: it is not the pseudonymisation key and is never
//! derived from it, so handing a verifier its public key gives away nothing
//! about pseudonyms. `DATA_DIR/checkpoints/` (0700) holds one signed
//! checkpoint per log and size, `lineage-000042.json`, each 0600, and
//! `public-key.json`, the public key they verify under. That directory is
//! what to copy off the machine: someone who can rewrite the data directory
//! can delete checkpoints here, but not the copies.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use agencylink_core::checkpoint::{
    Checkpoint, ED25519, Ed25519Signer, Ed25519Verifier, SignatureProblem,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::fsafe::{self, TempFile};

/// The signing key's file in the data directory.
pub const CHECKPOINT_KEY_FILE: &str = "checkpoint-key.json";
/// The checkpoint directory in the data directory.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// The public key's file in the checkpoint directory.
pub const PUBLIC_KEY_FILE: &str = "public-key.json";

/// A checkpoint key or file problem. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointStoreError {
    /// No key file (for a command that only verifies).
    #[error(
        "no checkpoint key at {0}: it is created by the first ingest; to verify elsewhere set AGENCYLINK_CHECKPOINT_PUBLIC_KEY to the `public_key` of checkpoints/public-key.json"
    )]
    NoKey(String),
    /// The key file is there but not safe or not readable as a key.
    #[error("{0}")]
    BadKey(String),
    /// A checkpoint file that is not a checkpoint.
    #[error("{path}: not a checkpoint: {why}")]
    BadCheckpoint { path: String, why: String },
    /// The file system said no.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: io::Error,
    },
}

fn io_at<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> CheckpointStoreError + 'a {
    move |source| CheckpointStoreError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    algorithm: String,
    key_id: String,
    /// Standard base64 of the 32-byte seed.
    secret_key: String,
    /// Standard base64 of the 32-byte public key.
    public_key: String,
}

/// The public half, as written to `checkpoints/public-key.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublicKey {
    /// `Ed25519`.
    pub algorithm: String,
    /// The id checkpoints carry.
    pub key_id: String,
    /// Standard base64 of the 32-byte public key.
    pub public_key: String,
}

/// The data directory's checkpoint key and checkpoint files.
#[derive(Debug, Clone)]
pub struct LocalCheckpoints {
    data_dir: PathBuf,
}

impl LocalCheckpoints {
    /// Over `data_dir` (already prepared as private by the caller).
    pub fn new(data_dir: &Path) -> Self {
        LocalCheckpoints {
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// `DATA_DIR/checkpoints`.
    pub fn dir(&self) -> PathBuf {
        self.data_dir.join(CHECKPOINTS_DIR)
    }

    fn key_path(&self) -> PathBuf {
        self.data_dir.join(CHECKPOINT_KEY_FILE)
    }

    /// The signer, creating the key file (and said so by the bool) when
    /// there is none.
    pub fn signer_or_init(&self) -> Result<(Ed25519Signer, bool), CheckpointStoreError> {
        let path = self.key_path();
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut seed = zeroize::Zeroizing::new([0u8; 32]);
                getrandom::fill(seed.as_mut())
                    .map_err(|e| CheckpointStoreError::BadKey(format!("OS randomness: {e}")))?;
                let signer = Ed25519Signer::from_seed(&seed);
                let text = zeroize::Zeroizing::new(
                    serde_json::to_string_pretty(&KeyFile {
                        algorithm: ED25519.into(),
                        key_id: signer_key_id(&signer),
                        secret_key: B64.encode(seed.as_ref()),
                        public_key: B64.encode(signer.public_key()),
                    })
                    .unwrap_or_default()
                        + "\n",
                );
                // create_new: two first ingests racing never overwrite a key
                // that has signed something.
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(fsafe::NOFOLLOW)
                    .open(&path)
                    .map_err(io_at("creating", &path))?;
                f.write_all(text.as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(io_at("writing", &path))?;
                Ok((signer, true))
            }
            Err(e) => Err(io_at("reading", &path)(e)),
            Ok(_) => Ok((self.load_signer()?, false)),
        }
    }

    fn read_key_file(&self) -> Result<KeyFile, CheckpointStoreError> {
        let path = self.key_path();
        let mut f = match OpenOptions::new()
            .read(true)
            .custom_flags(fsafe::NOFOLLOW)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CheckpointStoreError::NoKey(path.display().to_string()));
            }
            Err(e) => {
                return Err(CheckpointStoreError::BadKey(format!(
                    "{}: {e} (the checkpoint key must be a regular file, not a symbolic link)",
                    path.display()
                )));
            }
        };
        let meta = f.metadata().map_err(io_at("reading", &path))?;
        let me = rustix::process::geteuid().as_raw();
        if !meta.is_file() || meta.uid() != me || meta.mode() & 0o077 != 0 {
            return Err(CheckpointStoreError::BadKey(format!(
                "{} must be a regular file owned by you with mode 0600 (it has mode {:o}, owner {})",
                path.display(),
                meta.mode() & 0o777,
                meta.uid()
            )));
        }
        let mut text = zeroize::Zeroizing::new(String::new());
        f.read_to_string(&mut text)
            .map_err(io_at("reading", &path))?;
        serde_json::from_str(&text).map_err(|e| {
            // serde's message names the field, never the value of a string.
            CheckpointStoreError::BadKey(format!("{}: {}", path.display(), e))
        })
    }

    fn load_signer(&self) -> Result<Ed25519Signer, CheckpointStoreError> {
        let file = self.read_key_file()?;
        let bad = |why: &str| {
            CheckpointStoreError::BadKey(format!("{}: {why}", self.key_path().display()))
        };
        if file.algorithm != ED25519 {
            return Err(bad("the algorithm must be Ed25519"));
        }
        let seed = zeroize::Zeroizing::new(
            B64.decode(file.secret_key.as_bytes())
                .map_err(|_| bad("secret_key is not base64"))?,
        );
        let seed: &[u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| bad("secret_key must be 32 bytes"))?;
        let signer = Ed25519Signer::from_seed(seed);
        if signer_key_id(&signer) != file.key_id {
            return Err(bad("key_id does not match the key"));
        }
        Ok(signer)
    }

    /// The public key: `AGENCYLINK_CHECKPOINT_PUBLIC_KEY` (base64, for
    /// verifying a copied store elsewhere) or the key file's.
    pub fn verifier(&self) -> Result<Ed25519Verifier, CheckpointStoreError> {
        let public = match std::env::var("AGENCYLINK_CHECKPOINT_PUBLIC_KEY") {
            Ok(b64) => b64,
            Err(_) => self.read_key_file()?.public_key,
        };
        let bytes = B64.decode(public.trim().as_bytes()).map_err(|_| {
            CheckpointStoreError::BadKey("the checkpoint public key is not base64".into())
        })?;
        let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            CheckpointStoreError::BadKey("the checkpoint public key must be 32 bytes".into())
        })?;
        let mut verifier = Ed25519Verifier::default();
        verifier
            .add(&bytes)
            .map_err(|e: SignatureProblem| CheckpointStoreError::BadKey(e.to_string()))?;
        Ok(verifier)
    }

    fn prepare_dir(&self) -> Result<PathBuf, CheckpointStoreError> {
        let dir = self.dir();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_at("creating", &dir))?;
        fsafe::check_output_dir(&dir).map_err(|e| CheckpointStoreError::Io {
            what: "checking",
            path: dir.display().to_string(),
            source: io::Error::other(e.to_string()),
        })?;
        Ok(dir)
    }

    /// Write `checkpoint` as `checkpoints/{log}-{size:06}.json` (0600,
    /// atomically) and the public key beside it; returns the path.
    pub fn write(
        &self,
        checkpoint: &Checkpoint,
        signer: &Ed25519Signer,
    ) -> Result<PathBuf, CheckpointStoreError> {
        let dir = self.prepare_dir()?;
        let public = PublicKey {
            algorithm: ED25519.into(),
            key_id: signer_key_id(signer),
            public_key: B64.encode(signer.public_key()),
        };
        write_json(&dir, &dir.join(PUBLIC_KEY_FILE), &public)?;
        let path = dir.join(file_name(checkpoint));
        write_json(&dir, &path, checkpoint)?;
        Ok(path)
    }

    /// The checkpoint of `log` with the greatest size in the directory.
    pub fn latest(&self, log: &str) -> Result<Option<(PathBuf, Checkpoint)>, CheckpointStoreError> {
        let dir = self.dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at("reading", &dir)(e)),
        };
        let prefix = format!("{log}-");
        let mut best: Option<(u64, PathBuf)> = None;
        for entry in entries {
            let entry = entry.map_err(io_at("reading", &dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Some(size) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if best.as_ref().is_none_or(|(s, _)| size > *s) {
                best = Some((size, entry.path()));
            }
        }
        match best {
            Some((_, path)) => Ok(Some((path.clone(), read_checkpoint(&path)?))),
            None => Ok(None),
        }
    }
}

fn signer_key_id(signer: &Ed25519Signer) -> String {
    use agencylink_core::checkpoint::CheckpointSigner as _;
    signer.key_id().to_owned()
}

/// `lineage-000042.json`: zero-padded so a listing sorts by size.
pub fn file_name(checkpoint: &Checkpoint) -> String {
    format!("{}-{:06}.json", checkpoint.log, checkpoint.size)
}

fn write_json<T: Serialize>(
    dir: &Path,
    path: &Path,
    value: &T,
) -> Result<(), CheckpointStoreError> {
    let temp = TempFile::create_in(dir, "checkpoint").map_err(io_at("creating a file in", dir))?;
    let mut f = temp.handle().map_err(io_at("writing", temp.path()))?;
    let text = serde_json::to_string_pretty(value).unwrap_or_default() + "\n";
    f.write_all(text.as_bytes())
        .map_err(io_at("writing", temp.path()))?;
    temp.persist(path, true).map_err(io_at("writing", path))?;
    Ok(())
}

/// Read a checkpoint file (one given with `--checkpoint`, or found).
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint, CheckpointStoreError> {
    let text = fs::read_to_string(path).map_err(io_at("reading", path))?;
    serde_json::from_str(&text).map_err(|e| CheckpointStoreError::BadCheckpoint {
        path: path.display().to_string(),
        why: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use agencylink_core::checkpoint::{CheckpointSigner as _, CheckpointVerifier as _};
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "agencylink-ckpt-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&dir)
            .expect("mkdir");
        dir
    }

    #[test]
    fn the_key_is_made_once_private_and_verifies_what_it_signs() {
        let dir = scratch("key");
        let ck = LocalCheckpoints::new(&dir);
        let (signer, created) = ck.signer_or_init().expect("init");
        assert!(created);
        let (again, created) = ck.signer_or_init().expect("load");
        assert!(!created);
        assert_eq!(signer.key_id(), again.key_id());
        let meta = fs::metadata(dir.join(CHECKPOINT_KEY_FILE)).expect("meta");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let sig = signer.sign(b"m").expect("sign");
        let verifier = ck.verifier().expect("verifier");
        assert_eq!(
            verifier.verify(signer.key_id(), ED25519, b"m", &sig),
            Ok(())
        );
        assert_eq!(
            verifier.verify(signer.key_id(), ED25519, b"n", &sig),
            Err(SignatureProblem::Invalid)
        );

        // Latest is by size, not by name order or time.
        let entries: Vec<serde_json::Value> = (1..=12u64)
            .map(|i| serde_json::json!({"seq": i, "hash": format!("h{i}")}))
            .collect();
        for n in [9usize, 12, 10] {
            let cp = Checkpoint::create("lineage", &entries[..n], "2026-12-03T00:00:00Z", &signer)
                .expect("sign");
            let path = ck.write(&cp, &signer).expect("write");
            assert_eq!(
                fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
                0o600
            );
        }
        let (path, latest) = ck.latest("lineage").expect("list").expect("one");
        assert_eq!(latest.size, 12);
        assert!(path.ends_with("lineage-000012.json"));
        assert!(ck.latest("access-log").expect("list").is_none());
        assert_eq!(
            fs::metadata(ck.dir()).expect("meta").permissions().mode() & 0o777,
            0o700
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_readable_or_linked_key_file_is_refused() {
        let dir = scratch("loose");
        let ck = LocalCheckpoints::new(&dir);
        ck.signer_or_init().expect("init");
        let key = dir.join(CHECKPOINT_KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            ck.signer_or_init(),
            Err(CheckpointStoreError::BadKey(_))
        ));
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");
        let elsewhere = scratch("elsewhere");
        fs::rename(&key, elsewhere.join("k.json")).expect("move");
        std::os::unix::fs::symlink(elsewhere.join("k.json"), &key).expect("symlink");
        assert!(matches!(
            ck.signer_or_init(),
            Err(CheckpointStoreError::BadKey(_))
        ));
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&elsewhere);
    }
}
