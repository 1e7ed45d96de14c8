//! The local key provider: `AGENCYLINK_KEY` (standard base64 of 32 bytes) with
//! `AGENCYLINK_KEY_ID`, or else a key file in the data directory, created on
//! first use with mode 0600. A key file that group or others can read is
//! refused: a copied-about key undoes every pseudonym.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use agencylink_core::ports::{KeyProvider, KeySourceError};
use agencylink_core::pseudo::{Key, KeyId, MasterKey};

/// Where the local key comes from.
#[derive(Debug, Clone)]
pub enum LocalKeyProvider {
    /// From the environment (base64 text kept only until first use).
    Env {
        /// `AGENCYLINK_KEY_ID`.
        kid: String,
        /// `AGENCYLINK_KEY`; a `String` here because it is the env's own copy.
        key_b64: RedactedString,
    },
    /// From `key.json` in the data directory.
    File(PathBuf),
}

/// A string whose Debug prints `[redacted]`.
#[derive(Clone)]
pub struct RedactedString(String);

impl std::fmt::Debug for RedactedString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The key file name inside the data directory.
pub const KEY_FILE: &str = "key.json";

impl LocalKeyProvider {
    /// Read `AGENCYLINK_KEY` / `AGENCYLINK_KEY_ID` once; fall back to the key file.
    pub fn from_env(data_dir: &Path) -> Result<Self, KeySourceError> {
        match (
            std::env::var("AGENCYLINK_KEY"),
            std::env::var("AGENCYLINK_KEY_ID"),
        ) {
            (Ok(key), Ok(kid)) => Ok(LocalKeyProvider::Env {
                kid,
                key_b64: RedactedString(key),
            }),
            (Ok(_), Err(_)) => Err(KeySourceError::Missing(
                "AGENCYLINK_KEY is set but AGENCYLINK_KEY_ID is not".into(),
            )),
            (Err(_), Ok(_)) => Err(KeySourceError::Missing(
                "AGENCYLINK_KEY_ID is set but AGENCYLINK_KEY is not".into(),
            )),
            _ => Ok(LocalKeyProvider::File(data_dir.join(KEY_FILE))),
        }
    }

    /// Create a new key file; refuses to overwrite one.
    pub fn init(path: &Path) -> Result<Key, KeySourceError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| {
                KeySourceError::Unavailable(format!("creating {}: {e}", dir.display()))
            })?;
        }
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut())
            .map_err(|e| KeySourceError::Unavailable(format!("OS randomness: {e}")))?;
        let mut kid_bytes = [0u8; 5];
        getrandom::fill(&mut kid_bytes)
            .map_err(|e| KeySourceError::Unavailable(format!("OS randomness: {e}")))?;
        let kid: String = std::iter::once("k".to_owned())
            .chain(kid_bytes.iter().map(|b| format!("{b:02x}")))
            .collect();
        let master = MasterKey::generate_from(*bytes);
        let b64 = master.expose_base64();
        let text = zeroize::Zeroizing::new(format!(
            "{{\"kid\": \"{kid}\", \"key\": \"{}\"}}\n",
            b64.as_str()
        ));
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeySourceError::Invalid(format!(
                    "{} already exists; not replacing a key",
                    path.display()
                ))
            } else {
                KeySourceError::Unavailable(format!("creating {}: {e}", path.display()))
            }
        })?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| KeySourceError::Unavailable(format!("writing {}: {e}", path.display())))?;
        let kid = KeyId::new(&kid).map_err(|e| KeySourceError::Invalid(e.to_string()))?;
        Ok(Key::new(kid, master))
    }

    fn load_file(path: &Path) -> Result<Key, KeySourceError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = fs::metadata(path)
                .map_err(|e| KeySourceError::Unavailable(format!("{}: {e}", path.display())))?;
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(KeySourceError::Invalid(format!(
                    "{} is readable by group or others (mode {:o}); run `chmod 600 {}`",
                    path.display(),
                    mode & 0o777,
                    path.display()
                )));
            }
        }
        let text = zeroize::Zeroizing::new(
            fs::read_to_string(path)
                .map_err(|e| KeySourceError::Unavailable(format!("{}: {e}", path.display())))?,
        );
        Key::from_secret_json(&text)
            .map_err(|why| KeySourceError::Invalid(format!("{}: {why}", path.display())))
    }
}

impl KeyProvider for LocalKeyProvider {
    fn key(&self) -> Result<Key, KeySourceError> {
        match self {
            LocalKeyProvider::Env { kid, key_b64 } => {
                Key::from_base64(kid, &key_b64.0).map_err(|e| {
                    KeySourceError::Invalid(format!("AGENCYLINK_KEY / AGENCYLINK_KEY_ID: {e}"))
                })
            }
            LocalKeyProvider::File(path) => {
                if path.exists() {
                    Self::load_file(path)
                } else {
                    Self::init(path)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        let dir = std::env::temp_dir().join(format!("agencylink-key-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let p = LocalKeyProvider::File(dir.join(KEY_FILE));
        let k1 = p.key().expect("created");
        let k2 = p.key().expect("reloaded");
        assert_eq!(k1.kid().as_str(), k2.kid().as_str());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.join(KEY_FILE);
            assert_eq!(
                fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
                0o600
            );
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
            let err = p.key().expect_err("group-readable key refused");
            assert!(
                err.to_string().contains("readable by group or others"),
                "{err}"
            );
        }
        assert!(
            LocalKeyProvider::init(&dir.join(KEY_FILE)).is_err(),
            "init never overwrites"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
