//! Pseudonymisation to the `agencylink-pseudo-v1` contract: canonical forms,
//! keyed tokens, match keys. See `spec/pseudonymisation.md` (copied into the
//! test fixtures with its vectors).

use std::fmt;
use std::str::FromStr;

pub mod canonical;
pub mod generalise;
pub mod key;
mod token;

pub use canonical::{Rejection, canonicalise, nhs_check_digit, upn_check_letter};
pub use key::{Key, KeyError, KeyId, MasterKey};
pub use token::Pseudonymiser;
#[cfg(test)]
pub(crate) use token::test_pseudonymiser;

/// The scheme version recorded in lineage and provenance.
pub const SCHEME: &str = "agencylink-pseudo-v1";

/// An identifier kind: decides the canonical form and the subkey.
///
/// `Upn` is an agencylink extension to the spec's kinds: canonical form is the
/// upper-cased UPN with whitespace removed, checked with the DfE check letter.
/// `Match` is only used for match-key tokens, never for a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// NHS number (modulus 11 check digit).
    NhsNumber,
    /// A family or given name.
    PersonName,
    /// A date such as a date of birth.
    Date,
    /// A UK postcode.
    Postcode,
    /// A phone number.
    Phone,
    /// An email address.
    Email,
    /// A vehicle registration mark.
    Vrm,
    /// An agency's own record id (crime ref, LA child id), scoped by agency.
    LocalRef,
    /// A unique pupil number (DfE), with its check letter.
    Upn,
    /// Match-key tokens (linkage).
    Match,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 10] = [
        Kind::NhsNumber,
        Kind::PersonName,
        Kind::Date,
        Kind::Postcode,
        Kind::Phone,
        Kind::Email,
        Kind::Vrm,
        Kind::LocalRef,
        Kind::Upn,
        Kind::Match,
    ];

    /// Position in [`Kind::ALL`], for per-kind tables.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The kind's name as it appears in tokens and in `x-identifier`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NhsNumber => "nhs_number",
            Kind::PersonName => "person_name",
            Kind::Date => "date",
            Kind::Postcode => "postcode",
            Kind::Phone => "phone",
            Kind::Email => "email",
            Kind::Vrm => "vrm",
            Kind::LocalRef => "local_ref",
            Kind::Upn => "upn",
            Kind::Match => "match",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an identifier kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown identifier kind `{0}`")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}
