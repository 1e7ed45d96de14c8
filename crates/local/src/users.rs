//! The people `agencylink serve` lets in: `DATA_DIR/users.json` (mode 0600),
//! one entry per user with a name, a role (and an uploader's agency), and
//! the SHA-256 of a bearer token that is shown once, when the user is
//! added, and never stored.
//!
//! The token is 256 bits from the OS, so a fast hash is enough: there is no
//! password to guess, only a digest to invert. The file holds no token, so
//! a copy of it (a backup, a support bundle) lets nobody in.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use agencylink_core::policy::valid_agency;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fsafe::TempFile;

/// The users file's name in the data directory.
pub const USERS_FILE: &str = "users.json";

/// What a token starts with, so a leaked one is recognisable (secret
/// scanners match on prefixes).
pub const TOKEN_PREFIX: &str = "alk_";

/// A role a local user can hold: the roles that read through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserRole {
    /// Reads merged, pseudonymised data; every read is logged.
    Analyst,
    /// Reads lineage and the access log.
    Auditor,
    /// An agency's uploader: its own uploads only.
    Agency,
}

impl UserRole {
    /// The role's name.
    pub fn name(self) -> &'static str {
        match self {
            UserRole::Analyst => "analyst",
            UserRole::Auditor => "auditor",
            UserRole::Agency => "agency",
        }
    }
}

/// One user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The name, recorded in the access log with every read.
    pub name: String,
    /// The role.
    pub role: UserRole,
    /// An uploader's agency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
    /// Hex SHA-256 of the token.
    pub token_sha256: String,
    /// When the user was added (RFC 3339).
    pub created: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    users: Vec<User>,
}

/// Why a users-file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The file is not a users file.
    #[error("{path} is not a users file: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A name outside `[A-Za-z0-9._@-]{1,64}`.
    #[error("a user name is 1 to 64 letters, digits, '.', '_', '@' or '-'")]
    BadName,
    /// The name is taken.
    #[error("there is already a user named {0}")]
    Exists(String),
    /// No such user.
    #[error("there is no user named {0}")]
    Unknown(String),
    /// An agency role without a valid agency, or an agency for another role.
    #[error("{0}")]
    Agency(&'static str),
    /// The OS gave no randomness.
    #[error("OS randomness: {0}")]
    Random(String),
}

/// The users of one data directory.
#[derive(Debug)]
pub struct Users {
    path: PathBuf,
    users: Vec<User>,
}

impl Users {
    /// Load `DATA_DIR/users.json` (no users when there is none).
    pub fn load(data_dir: &Path) -> Result<Users, UsersError> {
        let path = data_dir.join(USERS_FILE);
        let users = match fs::read(&path) {
            Ok(bytes) => {
                let file: File =
                    serde_json::from_slice(&bytes).map_err(|e| UsersError::Corrupt {
                        path: path.clone(),
                        why: e.to_string(),
                    })?;
                file.users
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(UsersError::Io { path, source }),
        };
        Ok(Users { path, users })
    }

    /// Every user, in the order added.
    pub fn list(&self) -> &[User] {
        &self.users
    }

    /// Add a user and save; the token, which exists only in this answer.
    pub fn add(
        &mut self,
        name: &str,
        role: UserRole,
        agency: Option<&str>,
        now: &str,
    ) -> Result<String, UsersError> {
        let name_ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
        if !name_ok {
            return Err(UsersError::BadName);
        }
        if self.users.iter().any(|u| u.name == name) {
            return Err(UsersError::Exists(name.to_owned()));
        }
        match (role, agency) {
            (UserRole::Agency, Some(a)) if valid_agency(a) => {}
            (UserRole::Agency, Some(_)) => {
                return Err(UsersError::Agency(
                    "an agency id is 1 to 64 lower-case letters, digits or '-'",
                ));
            }
            (UserRole::Agency, None) => {
                return Err(UsersError::Agency(
                    "an agency uploader needs --agency ID: the agency they upload for",
                ));
            }
            (_, Some(_)) => {
                return Err(UsersError::Agency("--agency is for agency uploaders only"));
            }
            (_, None) => {}
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| UsersError::Random(e.to_string()))?;
        let token = format!("{TOKEN_PREFIX}{}", hex(&secret));
        self.users.push(User {
            name: name.to_owned(),
            role,
            agency: agency.map(str::to_owned),
            token_sha256: digest(&token),
            created: now.to_owned(),
        });
        self.save()?;
        Ok(token)
    }

    /// Remove a user (their token stops working at once) and save.
    pub fn remove(&mut self, name: &str) -> Result<(), UsersError> {
        let before = self.users.len();
        self.users.retain(|u| u.name != name);
        if self.users.len() == before {
            return Err(UsersError::Unknown(name.to_owned()));
        }
        self.save()
    }

    /// The user whose token this is. Every stored digest is compared, in
    /// time that does not depend on where they differ.
    pub fn authenticate(&self, token: &str) -> Option<&User> {
        let presented = digest(token);
        let mut found = None;
        for user in &self.users {
            if same(user.token_sha256.as_bytes(), presented.as_bytes()) {
                found = Some(user);
            }
        }
        found
    }

    /// Write the file whole, 0600, replacing the old one only once the new
    /// one is on disk.
    fn save(&self) -> Result<(), UsersError> {
        let io_err = |source| UsersError::Io {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let temp = TempFile::create_in(dir, USERS_FILE).map_err(io_err)?;
        let mut text = serde_json::to_vec_pretty(&File {
            users: self.users.clone(),
        })
        .map_err(|e| io_err(io::Error::other(e)))?;
        text.push(b'\n');
        temp.handle()
            .and_then(|mut f| f.write_all(&text))
            .map_err(io_err)?;
        temp.persist(&self.path, true).map_err(io_err)?;
        Ok(())
    }
}

fn digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("agencylink-users-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn a_token_lets_its_user_in_and_is_never_stored() {
        let dir = scratch("token");
        let mut users = Users::load(&dir).expect("no file yet");
        let token = users
            .add("a.analyst", UserRole::Analyst, None, "2026-12-04T00:00:00Z")
            .expect("added");
        let other = users
            .add("west-council", UserRole::Agency, Some("west-council"), "t")
            .expect("added");
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == 4 + 64);
        let text = fs::read_to_string(dir.join(USERS_FILE)).expect("saved");
        assert!(!text.contains(&token) && !text.contains(&token[4..]));
        let mode = fs::metadata(dir.join(USERS_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let users = Users::load(&dir).expect("reloaded");
        assert_eq!(
            users.authenticate(&token).map(|u| u.name.as_str()),
            Some("a.analyst")
        );
        let agency = users.authenticate(&other).expect("the uploader");
        assert_eq!(agency.agency.as_deref(), Some("west-council"));
        assert!(users.authenticate("alk_0000").is_none());
        assert!(users.authenticate(&token[..token.len() - 1]).is_none());
        assert!(users.authenticate("").is_none());
    }

    #[test]
    fn bad_names_roles_and_duplicates_are_refused_and_removal_locks_out() {
        let dir = scratch("refusals");
        let mut users = Users::load(&dir).expect("no file yet");
        for bad in ["", "has space", "semi;colon", &"x".repeat(65)] {
            assert!(matches!(
                users.add(bad, UserRole::Auditor, None, "t"),
                Err(UsersError::BadName)
            ));
        }
        assert!(matches!(
            users.add("up", UserRole::Agency, None, "t"),
            Err(UsersError::Agency(_))
        ));
        assert!(matches!(
            users.add("up", UserRole::Agency, Some("Bad_Id"), "t"),
            Err(UsersError::Agency(_))
        ));
        assert!(matches!(
            users.add("an", UserRole::Analyst, Some("west"), "t"),
            Err(UsersError::Agency(_))
        ));
        let token = users
            .add("aud", UserRole::Auditor, None, "t")
            .expect("added");
        assert!(matches!(
            users.add("aud", UserRole::Analyst, None, "t"),
            Err(UsersError::Exists(_))
        ));
        users.remove("aud").expect("removed");
        assert!(matches!(users.remove("aud"), Err(UsersError::Unknown(_))));
        let users = Users::load(&dir).expect("reloaded");
        assert!(users.authenticate(&token).is_none());
    }

    #[test]
    fn a_file_that_is_not_a_users_file_is_refused() {
        let dir = scratch("corrupt");
        fs::write(dir.join(USERS_FILE), b"{\"users\": 3}").expect("write");
        assert!(matches!(Users::load(&dir), Err(UsersError::Corrupt { .. })));
    }
}
