//! Master keys and key ids.
//!
//! A master key is the one secret of the scheme: whoever holds it can
//! re-identify every token by guessing inputs. So the type is built to be
//! hard to leak: it is zeroed on drop, is not `Clone`, not `Serialize`, its
//! `Debug` and `Display` print `[redacted]`, and no error built from key
//! material repeats any of it. Where the key comes from (environment, key
//! file, Secrets Manager, OS randomness) is the caller's business: core does
//! no I/O.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const REDACTED: &str = "[redacted]";

/// Why a key or key id was refused. No variant carries the offending text:
/// a key pasted into the wrong variable must not end up in a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key decoded to the wrong number of bytes.
    #[error("master key must be exactly {expected} bytes, got {actual}", expected = MasterKey::LEN)]
    Length {
        /// How many bytes there were (a length, not key material).
        actual: usize,
    },
    /// The key text is not standard (RFC 4648, padded) base64.
    #[error("master key is not valid standard base64 (value not shown)")]
    Base64,
    /// The key id is not 1 to 16 characters of `[a-z0-9]`.
    #[error("key id must be 1 to 16 characters of a-z and 0-9 (value not shown)")]
    KeyId,
}

/// A 32-byte master key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; MasterKey::LEN]);

impl MasterKey {
    /// Length of a master key in bytes.
    pub const LEN: usize = 32;

    /// A key from raw bytes; the slice must be exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let array: [u8; Self::LEN] = bytes.try_into().map_err(|_| KeyError::Length {
            actual: bytes.len(),
        })?;
        Ok(Self(array))
    }

    /// A key from standard base64 (the `AGENCYLINK_KEY` and Secrets Manager
    /// form). Surrounding ASCII whitespace is ignored because key files and
    /// pasted secrets usually end in a newline.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let text = text.trim_ascii();
        // Reserve up front so decoding never reallocates and leaves an
        // un-zeroed copy of key bytes behind in freed memory.
        let mut buf = Zeroizing::new(Vec::with_capacity(text.len() / 4 * 3 + 3));
        STANDARD
            .decode_vec(text, &mut buf)
            .map_err(|_| KeyError::Base64)?;
        Self::from_bytes(&buf)
    }

    /// Wraps 32 bytes the caller got from a CSPRNG. Generation itself is the
    /// caller's job (core does no I/O); the caller should zeroize its copy.
    pub fn generate_from(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    /// The key as standard base64, for writing a new key file or secret.
    /// Named so that every use stands out in review.
    pub fn expose_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0))
    }

    pub(crate) fn expose(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A key id: 1 to 16 characters of `[a-z0-9]`. It appears in every token
/// and in lineage, so it is not secret; it is validated because it is part
/// of the token format.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    /// Longest key id accepted.
    pub const MAX_LEN: usize = 16;

    /// Validates a key id.
    pub fn new(kid: &str) -> Result<Self, KeyError> {
        let ok = (1..=Self::MAX_LEN).contains(&kid.len())
            && kid
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(Self(kid.to_owned()))
        } else {
            Err(KeyError::KeyId)
        }
    }

    /// The key id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for KeyId {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for KeyId {
    type Error = KeyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<KeyId> for String {
    fn from(kid: KeyId) -> Self {
        kid.0
    }
}

impl AsRef<str> for KeyId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A master key with its key id: what a [`super::Pseudonymiser`] is built
/// from.
pub struct Key {
    kid: KeyId,
    master: MasterKey,
}

impl Key {
    /// Parse `{"kid": "...", "key": "<base64>"}`: the local key file and the
    /// Secrets Manager secret share this form. Errors never include the text.
    pub fn from_secret_json(text: &str) -> Result<Key, String> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|_| "not a JSON object {\"kid\", \"key\"}".to_owned())?;
        let kid = v
            .get("kid")
            .and_then(serde_json::Value::as_str)
            .ok_or("missing \"kid\"")?;
        let key = v
            .get("key")
            .and_then(serde_json::Value::as_str)
            .ok_or("missing \"key\"")?;
        Key::from_base64(kid, key).map_err(|e| e.to_string())
    }

    /// Pairs a master key with its id.
    pub fn new(kid: KeyId, master: MasterKey) -> Self {
        Self { kid, master }
    }

    /// From the two texts a deployment holds (`AGENCYLINK_KEY_ID` and
    /// `AGENCYLINK_KEY`, or the Secrets Manager JSON fields).
    pub fn from_base64(kid: &str, key_base64: &str) -> Result<Self, KeyError> {
        Ok(Self::new(
            KeyId::new(kid)?,
            MasterKey::from_base64(key_base64)?,
        ))
    }

    /// The key id.
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// The master key.
    pub fn master(&self) -> &MasterKey {
        &self.master
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid.as_str())
            .field("master", &self.master)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn debug_and_display_are_redacted() {
        let key = Key::from_base64("k1", B64).expect("valid test key");
        assert_eq!(format!("{:?}", key.master()), "[redacted]");
        assert_eq!(format!("{}", key.master()), "[redacted]");
        assert_eq!(
            format!("{key:?}"),
            r#"Key { kid: "k1", master: [redacted] }"#
        );
        assert_eq!(format!("{:#?}", key.master()), "[redacted]");
    }

    #[test]
    fn base64_round_trip_and_whitespace() {
        let key = MasterKey::from_base64(&format!("  {B64}\n")).expect("valid");
        assert_eq!(key.expose_base64().as_str(), B64);
        assert_eq!(key.expose()[31], 31);
        let same = MasterKey::generate_from(*key.expose());
        assert_eq!(same.expose(), key.expose());
    }

    #[test]
    fn errors_never_echo_the_key() {
        // A truncated key: base64 is valid but it is 24 bytes.
        let short = &B64[..32];
        let e = MasterKey::from_base64(short).expect_err("short key");
        assert_eq!(e, KeyError::Length { actual: 24 });
        assert!(!e.to_string().contains(short));

        let bad = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh*=";
        let e = MasterKey::from_base64(bad).expect_err("bad base64");
        assert_eq!(e, KeyError::Base64);
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("AAEC") && !shown.contains('*'));

        assert_eq!(
            MasterKey::from_bytes(&[0u8; 33]).expect_err("long"),
            KeyError::Length { actual: 33 }
        );
        // Unpadded base64 is not standard base64.
        assert_eq!(
            MasterKey::from_base64(B64.trim_end_matches('=')).expect_err("unpadded"),
            KeyError::Base64
        );
    }

    #[test]
    fn key_ids() {
        assert!(KeyId::new("k1").is_ok());
        assert!(KeyId::new("abcdefghij012345").is_ok());
        for bad in ["", "K1", "k-1", "abcdefghij0123456", "k 1", "é"] {
            let e = KeyId::new(bad).expect_err(bad);
            assert_eq!(e, KeyError::KeyId);
        }
        // A key pasted into the key id variable must not be echoed.
        let e = Key::from_base64(B64, B64).expect_err("swapped");
        assert!(!e.to_string().contains("AAEC"));
        let kid: KeyId = serde_json::from_str(r#""k1""#).expect("valid kid");
        assert_eq!(kid.as_str(), "k1");
        assert!(serde_json::from_str::<KeyId>(r#""K1""#).is_err());
        assert_eq!(serde_json::to_string(&kid).expect("serialise"), r#""k1""#);
    }

    #[test]
    fn bad_secrets_are_clear_and_silent() {
        let secret = "c2hvcnQ=";
        let err = Key::from_secret_json(&format!("{{\"kid\":\"k1\",\"key\":\"{secret}\"}}"))
            .expect_err("short");
        assert!(err.contains("32 bytes") && !err.contains(secret), "{err}");
        let err = Key::from_secret_json(
            "{\"kid\":\"BAD ID\",\"key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}",
        )
        .expect_err("kid");
        assert!(err.contains("key id"), "{err}");
        assert!(Key::from_secret_json("{\"kid\":\"k1\",\"key\":\"!!!\"}").is_err());
    }
}
