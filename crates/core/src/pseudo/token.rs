//! Keyed tokens and match keys.
//!
//! Tokenising is the hot path of ingest (several identifiers per row, many
//! rows), so the per-kind work is done once: each kind's subkey is derived
//! when the [`Pseudonymiser`] is built and turned into an HMAC state with
//! the key already absorbed; a token then costs one clone of that state and
//! two SHA-256 compressions for a short value.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use sha2::block_api::compress256;
use zeroize::{Zeroize, Zeroizing};

use super::canonical::{Rejection, canonicalise};
use super::key::{Key, KeyId, MasterKey};
use super::{Kind, SCHEME};

type HmacSha256 = Hmac<Sha256>;

/// The subkey label prefix; the kind name is appended.
const SUBKEY_LABEL: &str = "agencylink/v1/subkey/";

/// Bytes of the MAC kept in a token (160 bits: 32 base32 characters).
const TOKEN_MAC_BYTES: usize = 20;

/// Makes tokens and match keys for one key.
///
/// Build it once per key (per process or Lambda cold start) and share it;
/// it is `Send + Sync` and every method takes `&self`.
///
/// ```
/// use agencylink_core::pseudo::{Key, Kind, Pseudonymiser, Rejection};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = Key::from_base64("test1", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?;
/// let p = Pseudonymiser::new(key);
/// assert_eq!(
///     p.pseudonymise(Kind::NhsNumber, "943 476 5919", "")?,
///     "nhs_number:test1:73oq6rdqrv6hqd7nwkwxzfsx6by2kikg",
/// );
/// assert_eq!(p.pseudonymise(Kind::NhsNumber, "943 476 5918", ""), Err(Rejection::CheckDigit));
/// # Ok(())
/// # }
/// ```
pub struct Pseudonymiser {
    key: Key,
    // Indexed by `Kind::index`.
    states: [Midstates; Kind::ALL.len()],
    // `K("compare")`: the comparison encodings' own subkey, so no
    // encoding can equal a token or a match key of the same value.
    compare: Midstates,
    // `K("label")`: names of things that are not identifiers but may
    // carry one (an upload's file name), so they can be told apart in
    // lineage without being shown or guessed.
    label: Midstates,
}

/// The subkey name of the comparison encodings
/// (`docs/comparison-encodings.md`): `K("compare")`.
const COMPARE_SUBKEY: &str = "compare";

/// The subkey name of keyed labels ([`Pseudonymiser::label`]): `K("label")`.
const LABEL_SUBKEY: &str = "label";

/// Bytes of the MAC kept in a comparison code (80 bits: 16 base32 characters).
const COMPARE_CODE_BYTES: usize = 10;

/// HMAC-SHA256 with the key absorbed: the SHA-256 chaining values after the
/// `key ^ ipad` and `key ^ opad` blocks. A MAC of a short message is then
/// exactly two compressions, with no hasher object to clone, buffer or wipe
/// per value. Wiped on drop: these are as good as the subkey.
#[derive(Clone)]
struct Midstates {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl Drop for Midstates {
    fn drop(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

/// SHA-256 initial hash values (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

impl Midstates {
    /// For a 32-byte key (a subkey): RFC 2104 pads it with zeros to the
    /// 64-byte block.
    fn new(key: &[u8; 32]) -> Self {
        let state_after = |pad: u8| {
            let mut block = Zeroizing::new([pad; 64]);
            for (b, k) in block.iter_mut().zip(key) {
                *b ^= k;
            }
            let mut state = SHA256_IV;
            compress256(&mut state, std::slice::from_ref(&*block));
            state
        };
        Midstates {
            inner: state_after(0x36),
            outer: state_after(0x5c),
        }
    }

    /// HMAC-SHA256 of the concatenation of `parts`.
    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        // Inner hash: the key block is already absorbed, so the message
        // starts at byte 64 of the inner input.
        // The block holds the canonical value, which also sits unwiped in
        // the row being curated, so wiping this copy would buy nothing.
        let mut state = self.inner;
        let mut block = [0u8; 64];
        let mut fill = 0usize;
        let mut total = 64u64;
        for part in parts {
            total += part.len() as u64;
            let mut rest = *part;
            while !rest.is_empty() {
                let n = rest.len().min(64 - fill);
                block[fill..fill + n].copy_from_slice(&rest[..n]);
                fill += n;
                rest = &rest[n..];
                if fill == 64 {
                    compress256(&mut state, std::slice::from_ref(&block));
                    fill = 0;
                }
            }
        }
        finish(&mut state, &mut block, fill, total);
        let mut inner = [0u8; 32];
        for (out, word) in inner.chunks_exact_mut(4).zip(state) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        // Outer hash over the 32-byte inner digest: one block.
        let mut state = self.outer;
        block[..32].copy_from_slice(&inner);
        finish(&mut state, &mut block, 32, 64 + 32);
        let mut tag = [0u8; 32];
        for (out, word) in tag.chunks_exact_mut(4).zip(state) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        tag
    }
}

/// SHA-256 padding of the last `fill` bytes in `block`, for a message of
/// `total` bytes in all, and the final compression(s).
fn finish(state: &mut [u32; 8], block: &mut [u8; 64], fill: usize, total: u64) {
    block[fill] = 0x80;
    block[fill + 1..].fill(0);
    if fill + 1 > 56 {
        compress256(state, std::slice::from_ref(block));
        block.fill(0);
    }
    block[56..].copy_from_slice(&(total * 8).to_be_bytes());
    compress256(state, std::slice::from_ref(block));
}

fn mac_with(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

fn derive_subkey(master: &MasterKey, kind: Kind) -> Zeroizing<[u8; 32]> {
    derive_named_subkey(master, kind.as_str())
}

fn derive_named_subkey(master: &MasterKey, name: &str) -> Zeroizing<[u8; 32]> {
    let mut mac = mac_with(master.expose());
    mac.update(SUBKEY_LABEL.as_bytes());
    mac.update(name.as_bytes());
    Zeroizing::new(mac.finalize().into_bytes().into())
}

impl Pseudonymiser {
    /// Derives every kind's subkey and keeps the key (for its id).
    pub fn new(key: Key) -> Self {
        let states = Kind::ALL.map(|kind| Midstates::new(&derive_subkey(key.master(), kind)));
        let compare = Midstates::new(&derive_named_subkey(key.master(), COMPARE_SUBKEY));
        let label = Midstates::new(&derive_named_subkey(key.master(), LABEL_SUBKEY));
        Self {
            key,
            states,
            compare,
            label,
        }
    }

    /// The key id written into every token.
    pub fn kid(&self) -> &KeyId {
        self.key.kid()
    }

    /// The scheme these tokens follow, for lineage.
    pub fn scheme(&self) -> &'static str {
        SCHEME
    }

    /// The token for an already-canonical value:
    /// `kind:kid:base32lower(HMAC(K(kind), canonical)[0..20])`.
    ///
    /// The caller vouches that `canonical` came from
    /// [`canonicalise`]; hashing a raw value here would give a token that
    /// no other implementation reproduces. Use [`Self::pseudonymise`] for
    /// raw values.
    pub fn token(&self, kind: Kind, canonical: &str) -> String {
        let mut out = String::with_capacity(self.token_len(kind));
        self.token_into(kind, canonical, &mut out);
        out
    }

    /// Like [`Self::token`] but appends to `out`, so a caller can reuse one
    /// buffer per column.
    pub fn token_into(&self, kind: Kind, canonical: &str, out: &mut String) {
        self.token_parts_into(kind, &[canonical.as_bytes()], out);
    }

    /// Canonicalises a raw value and returns its token, or why the value
    /// was rejected.
    pub fn pseudonymise(&self, kind: Kind, raw: &str, agency: &str) -> Result<String, Rejection> {
        let canonical = canonicalise(kind, raw, agency)?;
        Ok(self.token(kind, &canonical))
    }

    /// Like [`Self::pseudonymise`] but appends the token to `out`; `out` is
    /// left untouched on rejection.
    pub fn pseudonymise_into(
        &self,
        kind: Kind,
        raw: &str,
        agency: &str,
        out: &mut String,
    ) -> Result<(), Rejection> {
        let canonical = canonicalise(kind, raw, agency)?;
        self.token_into(kind, &canonical, out);
        Ok(())
    }

    /// Match key from a canonical NHS number: message `"nhs|" + nhs`.
    pub fn mk_nhs(&self, canonical_nhs: &str) -> String {
        self.match_token(&[b"nhs|", canonical_nhs.as_bytes()])
    }

    /// Match key from canonical family name, given name and date of birth:
    /// message `"nd|" + family + "|" + given + "|" + dob`.
    pub fn mk_name_dob(&self, family_canon: &str, given_canon: &str, dob_canon: &str) -> String {
        self.match_token(&[
            b"nd|",
            family_canon.as_bytes(),
            b"|",
            given_canon.as_bytes(),
            b"|",
            dob_canon.as_bytes(),
        ])
    }

    /// Match key from a raw UPN: message `"upn|"` + the UPN upper-cased with
    /// whitespace removed.
    ///
    /// The UPN must also pass the check-letter validation of
    /// [`Kind::Upn`]. The spec only says "upper-cased, whitespace removed";
    /// validating as well means placeholders such as `UN1` (UPN unknown) and
    /// typos are rejected instead of linking every child that carries them.
    /// For a valid UPN the message is exactly the spec's.
    pub fn mk_upn(&self, raw: &str) -> Result<String, Rejection> {
        let canonical = canonicalise(Kind::Upn, raw, "")?;
        Ok(self.match_token(&[b"upn|", canonical.as_bytes()]))
    }

    /// The kind subkey `K(kind)`.
    ///
    /// Test hook only: it exists so the spec's subkey vector can be checked
    /// from the integration tests. Never log or store the result.
    #[doc(hidden)]
    pub fn subkey(&self, kind: Kind) -> [u8; 32] {
        *derive_subkey(self.key.master(), kind)
    }

    /// A comparison code: `base32lower(HMAC(K("compare"), parts…)[0..10])`,
    /// appended to `out` (`docs/comparison-encodings.md`). Codes carry no
    /// kind or key id: they never leave the linkage index.
    pub fn compare_code_into(&self, parts: &[&[u8]], out: &mut String) {
        let tag = self.compare.mac(parts);
        let mut padded = [0u8; TOKEN_MAC_BYTES];
        padded[..COMPARE_CODE_BYTES].copy_from_slice(&tag[..COMPARE_CODE_BYTES]);
        let at = out.len();
        base32_lower_into(&padded, out);
        // 10 bytes are exactly 16 base32 characters; drop the padding's.
        out.truncate(at + COMPARE_CODE_BYTES * 8 / 5);
    }

    /// A keyed label: `base32lower(HMAC(K("label"), domain | 0x00 | value)[0..10])`,
    /// 16 characters. For text that is no identifier's field but may hold
    /// one, such as an extract's file name ("smith_referral.csv"): equal
    /// values get equal labels, and without the key nobody can test a
    /// guess against one.
    pub fn label(&self, domain: &str, value: &[u8]) -> String {
        let tag = self.label.mac(&[domain.as_bytes(), &[0], value]);
        let mut padded = [0u8; TOKEN_MAC_BYTES];
        padded[..COMPARE_CODE_BYTES].copy_from_slice(&tag[..COMPARE_CODE_BYTES]);
        let mut out = String::with_capacity(32);
        base32_lower_into(&padded, &mut out);
        out.truncate(COMPARE_CODE_BYTES * 8 / 5);
        out
    }

    fn match_token(&self, parts: &[&[u8]]) -> String {
        let mut out = String::with_capacity(self.token_len(Kind::Match));
        self.token_parts_into(Kind::Match, parts, &mut out);
        out
    }

    fn token_len(&self, kind: Kind) -> usize {
        kind.as_str().len() + 1 + self.kid().as_str().len() + 1 + 32
    }

    fn token_parts_into(&self, kind: Kind, parts: &[&[u8]], out: &mut String) {
        let tag = self.states[kind.index()].mac(parts);
        out.reserve(self.token_len(kind));
        out.push_str(kind.as_str());
        out.push(':');
        out.push_str(self.kid().as_str());
        out.push(':');
        let mut head = [0u8; TOKEN_MAC_BYTES];
        head.copy_from_slice(&tag[..TOKEN_MAC_BYTES]);
        base32_lower_into(&head, out);
    }
}

impl fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pseudonymiser")
            .field("scheme", &SCHEME)
            .field("kid", &self.kid().as_str())
            .field("keys", &format_args!("[redacted]"))
            .finish()
    }
}

/// RFC 4648 base32, lower-case, no padding, for exactly 20 bytes (which
/// encode to exactly 32 characters, so there is never padding to drop).
/// Hand-rolled because it writes straight into the token buffer.
fn base32_lower_into(bytes: &[u8; TOKEN_MAC_BYTES], out: &mut String) {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut text = [0u8; 32];
    for (chunk, dst) in bytes.chunks_exact(5).zip(text.chunks_exact_mut(8)) {
        let n = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        for (i, d) in dst.iter_mut().enumerate() {
            *d = ALPHABET[((n >> ((7 - i) * 5)) & 31) as usize];
        }
    }
    // Every byte comes from the ASCII alphabet above.
    out.push_str(std::str::from_utf8(&text).unwrap_or_default());
}

/// A pseudonymiser under the spec's published test key, for unit tests.
#[cfg(test)]
pub(crate) fn test_pseudonymiser() -> Pseudonymiser {
    Pseudonymiser::new(
        Key::from_base64("k1", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .expect("valid test key"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudonymiser() -> Pseudonymiser {
        test_pseudonymiser()
    }

    #[test]
    fn kind_index_matches_all() {
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }

    #[test]
    fn base32_matches_data_encoding() {
        let mut bytes = [0u8; TOKEN_MAC_BYTES];
        for seed in 0..64u8 {
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = seed
                    .wrapping_mul(37)
                    .wrapping_add(i as u8)
                    .rotate_left(u32::from(seed % 8));
            }
            let mut ours = String::new();
            base32_lower_into(&bytes, &mut ours);
            let theirs = data_encoding::BASE32_NOPAD
                .encode(&bytes)
                .to_ascii_lowercase();
            assert_eq!(ours, theirs);
            assert_eq!(ours.len(), 32);
        }
    }

    #[test]
    fn midstate_mac_is_hmac_sha256() {
        // Every length around the one- and two-block padding edges, split
        // into parts at every position, against the hmac crate.
        let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(29) ^ 0xa5);
        let mid = Midstates::new(&key);
        let msg: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..msg.len() {
            let m = &msg[..len];
            let mut reference = mac_with(&key);
            reference.update(m);
            let want: [u8; 32] = reference.finalize().into_bytes().into();
            assert_eq!(mid.mac(&[m]), want, "length {len}");
            for cut in [0, 1, len / 2, len.saturating_sub(1), len] {
                let (a, b) = m.split_at(cut.min(len));
                assert_eq!(mid.mac(&[a, b]), want, "length {len} cut {cut}");
            }
        }
    }

    #[test]
    fn debug_does_not_print_keys() {
        let p = pseudonymiser();
        let shown = format!("{p:?} {p:#?}");
        assert!(shown.contains("[redacted]"));
        assert!(shown.contains("k1"));
        assert!(!shown.contains("AAEC"));
        let subkey = p.subkey(Kind::NhsNumber);
        let hex: String = subkey.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&hex[..8]));
    }

    #[test]
    fn token_into_appends_and_matches_token() {
        let p = pseudonymiser();
        let mut buf = String::from("x,");
        p.token_into(Kind::Vrm, "AB12CDE", &mut buf);
        assert_eq!(buf, format!("x,{}", p.token(Kind::Vrm, "AB12CDE")));
        let mut untouched = String::from("keep");
        assert_eq!(
            p.pseudonymise_into(Kind::Vrm, "A", "", &mut untouched),
            Err(Rejection::VrmLength)
        );
        assert_eq!(untouched, "keep");
    }

    #[test]
    fn mk_upn_rejects_placeholders() {
        let p = pseudonymiser();
        assert_eq!(p.mk_upn("UN1"), Err(Rejection::UpnLength));
        assert_eq!(p.mk_upn("B123456789012"), Err(Rejection::CheckLetter));
    }

    #[test]
    fn pseudonymiser_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Pseudonymiser>();
    }
}
