//! The local key provider: `AGENCYLINK_KEY` (standard base64 of 32 bytes) with
//! `AGENCYLINK_KEY_ID`, or else a key file in the data directory. Reading a
//! key never creates one ([`KeyProvider::key`]); only [`LocalKeyProvider::key_or_init`]
//! (for `ingest`) and [`LocalKeyProvider::init`] (for `key init`) do, with
//! mode 0600, so a read-only command pointed at the wrong directory fails
//! instead of quietly minting a key whose tokens match nothing.
//!
//! The key file must be a regular file (a symlink is refused, not followed),
//! owned by the user running agencylink and unreadable by group or others: a
//! copied-about key undoes every pseudonym, and a key planted by another user
//! would let them read every token we make.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
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

    /// The key, creating the key file first when there is none (and the key
    /// does not come from the environment); says whether it created one.
    pub fn key_or_init(&self) -> Result<(Key, bool), KeySourceError> {
        match self {
            LocalKeyProvider::File(path) if !exists_no_follow(path)? => {
                Ok((Self::init(path)?, true))
            }
            _ => Ok((self.key()?, false)),
        }
    }

    fn load_file(path: &Path) -> Result<Key, KeySourceError> {
        let unavailable = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound {
                KeySourceError::Missing(format!(
                    "no key at {}: run `agencylink key init` (or set AGENCYLINK_KEY and AGENCYLINK_KEY_ID)",
                    path.display()
                ))
            } else {
                KeySourceError::Unavailable(format!("{}: {e}", path.display()))
            }
        };
        let mut opts = OpenOptions::new();
        opts.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // O_NOFOLLOW: a symlink at the key path fails the open (ELOOP)
            // rather than reading whatever file it points at.
            opts.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
        }
        let mut f = opts.open(path).map_err(|e| {
            if is_symlink(path) {
                KeySourceError::Invalid(format!(
                    "{} is a symbolic link; the key file must be a regular file",
                    path.display()
                ))
            } else {
                unavailable(e)
            }
        })?;
        // Checked on the open handle, so the file read is the file checked.
        Self::check_file(path, &f)?;
        let mut text = zeroize::Zeroizing::new(String::new());
        f.read_to_string(&mut text)
            .map_err(|e| KeySourceError::Unavailable(format!("{}: {e}", path.display())))?;
        Key::from_secret_json(&text)
            .map_err(|why| KeySourceError::Invalid(format!("{}: {why}", path.display())))
    }

    #[cfg(unix)]
    fn check_file(path: &Path, f: &File) -> Result<(), KeySourceError> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = f
            .metadata()
            .map_err(|e| KeySourceError::Unavailable(format!("{}: {e}", path.display())))?;
        if !meta.file_type().is_file() {
            return Err(KeySourceError::Invalid(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(KeySourceError::Invalid(format!(
                "{} is owned by user id {}, not by the user running agencylink (user id {me})",
                path.display(),
                meta.uid()
            )));
        }
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeySourceError::Invalid(format!(
                "{} is readable by group or others (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            )));
        }
        Ok(())
    }

    #[cfg(not(unix))]
    fn check_file(path: &Path, f: &File) -> Result<(), KeySourceError> {
        let meta = f
            .metadata()
            .map_err(|e| KeySourceError::Unavailable(format!("{}: {e}", path.display())))?;
        if meta.is_file() {
            Ok(())
        } else {
            Err(KeySourceError::Invalid(format!(
                "{} is not a regular file",
                path.display()
            )))
        }
    }
}

/// Whether anything (a dangling symlink included) is at `path`.
fn exists_no_follow(path: &Path) -> Result<bool, KeySourceError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(KeySourceError::Unavailable(format!(
            "{}: {e}",
            path.display()
        ))),
    }
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

impl KeyProvider for LocalKeyProvider {
    fn key(&self) -> Result<Key, KeySourceError> {
        match self {
            LocalKeyProvider::Env { kid, key_b64 } => {
                Key::from_base64(kid, &key_b64.0).map_err(|e| {
                    KeySourceError::Invalid(format!("AGENCYLINK_KEY / AGENCYLINK_KEY_ID: {e}"))
                })
            }
            LocalKeyProvider::File(path) => Self::load_file(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("agencylink-key-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        let dir = scratch("create");
        let p = LocalKeyProvider::File(dir.join(KEY_FILE));
        let err = p.key().expect_err("reading never creates");
        assert!(
            matches!(err, KeySourceError::Missing(_))
                && err.to_string().contains("agencylink key init"),
            "{err}"
        );
        assert!(!dir.join(KEY_FILE).exists(), "nothing created by a read");
        let (k1, created) = p.key_or_init().expect("created");
        assert!(created);
        let (k2, created) = p.key_or_init().expect("reloaded");
        assert!(!created);
        assert_eq!(k1.kid().as_str(), k2.kid().as_str());
        assert_eq!(p.key().expect("read").kid().as_str(), k1.kid().as_str());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.join(KEY_FILE);
            assert_eq!(
                fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
                0o600
            );
            fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
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

    #[cfg(unix)]
    #[test]
    fn a_symlinked_key_file_is_refused() {
        let dir = scratch("symlink");
        let real = dir.join("elsewhere.json");
        LocalKeyProvider::init(&real).expect("real key");
        std::os::unix::fs::symlink(&real, dir.join(KEY_FILE)).expect("symlink");
        let p = LocalKeyProvider::File(dir.join(KEY_FILE));
        for err in [
            p.key().expect_err("symlink refused"),
            p.key_or_init().expect_err("and not replaced"),
        ] {
            assert!(err.to_string().contains("symbolic link"), "{err}");
        }
        // A dangling symlink is neither followed to create a file nor read.
        fs::remove_file(&real).expect("rm");
        let err = p.key_or_init().expect_err("dangling symlink refused");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(!real.exists(), "nothing created through the link");
        let _ = fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_at_the_key_path_is_refused() {
        let dir = scratch("dir");
        fs::create_dir_all(dir.join(KEY_FILE)).expect("mkdir");
        let err = LocalKeyProvider::File(dir.join(KEY_FILE))
            .key()
            .expect_err("not a file");
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }
}
