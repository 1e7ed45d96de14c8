//! Safe synthetic identifiers and the ways agencies write them.
//!
//! Every value here is from a range that is never issued to a real person
//! (`design/DATASETS.md`, "Safe synthetic values"): NHS numbers 999 000 0000
//! to 999 999 9999, Ofcom drama phone numbers, and UPNs and plates that only
//! this generator makes. The written forms vary as real extracts do, but all
//! canonicalise (`spec/pseudonymisation.md`) to the person's one value.

use std::fmt::Write as _;

use crate::rng::Rng;
// The canonicaliser's own rules, so generated numbers agree with the
// validator by construction.
use agencylink_core::pseudo::canonical::{nhs_check_digit, upn_check_letter};

/// The UPN check-letter alphabet (no I, O or S).
pub(crate) const UPN_ALPHABET: &[u8; 23] = b"ABCDEFGHJKLMNPQRTUVWXYZ";

/// A synthetic NHS number: `999` then six digits then the check digit.
/// Returns `None` for the ~9% of bodies that have no valid check digit.
pub(crate) fn nhs_from_body(six: u32) -> Option<u64> {
    let mut digits = [9u8, 9, 9, 0, 0, 0, 0, 0, 0];
    let mut n = six % 1_000_000;
    for d in digits[3..].iter_mut().rev() {
        *d = (n % 10) as u8;
        n /= 10;
    }
    let check = nhs_check_digit(&digits)?;
    let body = 999_000_000 + u64::from(six % 1_000_000);
    Some(body * 10 + u64::from(check))
}

/// Append an NHS number as `999 123 4567`, `9991234567` or `999-123-4567`.
pub(crate) fn push_nhs(out: &mut String, nhs: u64, rng: &mut Rng, spaced_share: f64) {
    let s = format!("{nhs:010}");
    let (a, b, c) = (&s[0..3], &s[3..6], &s[6..10]);
    let roll = rng.unit();
    let _ = if roll < spaced_share {
        write!(out, "{a} {b} {c}")
    } else if roll < 0.96 {
        write!(out, "{s}")
    } else {
        write!(out, "{a}-{b}-{c}")
    };
}

/// `nhs` with its check digit replaced by a wrong one (a keying slip).
pub(crate) fn nhs_with_wrong_check(nhs: u64, rng: &mut Rng) -> u64 {
    let check = nhs % 10;
    let wrong = (check + 1 + rng.below(9)) % 10;
    nhs - check + wrong
}

/// A UPN: check letter, DfE LA code, four-digit establishment number, two
/// digits for the year of allocation, a three-character serial (digits, or a
/// letter last for a temporary UPN).
pub(crate) fn make_upn(
    la: u16,
    establishment: u16,
    year: u8,
    serial: u16,
    temporary: Option<u8>,
) -> Option<[u8; 13]> {
    let text = format!(
        "{:03}{:04}{:02}{:03}",
        la % 1000,
        establishment % 10_000,
        year % 100,
        serial % 1000
    );
    let mut body = [0u8; 12];
    body.copy_from_slice(text.as_bytes());
    if let Some(letter) = temporary {
        body[11] = letter;
    }
    let check = upn_check_letter(std::str::from_utf8(&body).ok()?)? as u8;
    let mut upn = [0u8; 13];
    upn[0] = check;
    upn[1..].copy_from_slice(&body);
    Some(upn)
}

/// The Ofcom drama ranges: 07700 900000–900999 and 01632 960000–960999.
pub(crate) const PHONE_POOL: u32 = 2000;

/// Append drama-range phone number `index` (< [`PHONE_POOL`]) in one of the
/// ways it is written; every form canonicalises to the same `0…` number.
pub(crate) fn push_phone(out: &mut String, index: u32, rng: &mut Rng) {
    let roll = rng.below(100);
    let n = index % 1000;
    let _ = if index < 1000 {
        match roll {
            0..=49 => write!(out, "07700 900{n:03}"),
            50..=74 => write!(out, "07700900{n:03}"),
            75..=89 => write!(out, "+44 7700 900{n:03}"),
            90..=94 => write!(out, "+447700900{n:03}"),
            95..=97 => write!(out, "+44 (0)7700 900{n:03}"),
            _ => write!(out, "0044 7700 900{n:03}"),
        }
    } else {
        match roll {
            0..=59 => write!(out, "01632 960{n:03}"),
            60..=84 => write!(out, "01632960{n:03}"),
            _ => write!(out, "+44 1632 960{n:03}"),
        }
    };
}

/// The canonical (digits only) form of drama-range phone `index`.
pub(crate) fn phone_canonical(index: u32) -> String {
    let n = index % 1000;
    if index < 1000 {
        format!("07700900{n:03}")
    } else {
        format!("01632960{n:03}")
    }
}

/// Letters used in synthetic plates (no I, Q or Z, as on real plates).
const PLATE_LETTERS: &[u8; 23] = b"ABCDEFGHJKLMNOPRSTUVWXY";

/// A current-style plate `AB12CDE`, canonical form (no space).
pub(crate) fn draw_vrm(rng: &mut Rng) -> [u8; 7] {
    // Age identifiers 02–25 (March) and 51–75 (September).
    let age = if rng.chance(0.5) {
        2 + rng.below(24)
    } else {
        51 + rng.below(25)
    } as u8;
    let l = |rng: &mut Rng| PLATE_LETTERS[rng.index(PLATE_LETTERS.len())];
    [
        l(rng),
        l(rng),
        b'0' + age / 10,
        b'0' + age % 10,
        l(rng),
        l(rng),
        l(rng),
    ]
}

/// Append a plate as `AB12 CDE`, `AB12CDE` or `ab12 cde`.
pub(crate) fn push_vrm(out: &mut String, vrm: &[u8; 7], rng: &mut Rng) {
    let s = std::str::from_utf8(vrm).unwrap_or("AB12CDE");
    let (a, b) = s.split_at(4);
    match rng.below(100) {
        0..=69 => {
            out.push_str(a);
            out.push(' ');
            out.push_str(b);
        }
        70..=94 => out.push_str(s),
        _ => {
            out.push_str(&a.to_ascii_lowercase());
            out.push(' ');
            out.push_str(&b.to_ascii_lowercase());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhs_check_digit_matches_the_spec_vectors() {
        // From spec/pseudonymisation-vectors.json: 943 476 5919 is valid.
        assert_eq!(nhs_check_digit(&[9, 4, 3, 4, 7, 6, 5, 9, 1]), Some(9));
        assert_eq!(nhs_check_digit(&[4, 0, 1, 0, 2, 3, 2, 1, 3]), Some(7));
        let n = (0..100)
            .find_map(nhs_from_body)
            .expect("some body is valid");
        assert_eq!(n / 10_000_000, 999);
        let mut rng = Rng::new(3);
        let bad = nhs_with_wrong_check(n, &mut rng);
        assert_ne!(bad, n);
        assert_eq!(bad / 10, n / 10);
    }

    #[test]
    fn upn_check_letters() {
        let upn = make_upn(354, 2001, 15, 42, None).expect("digits only");
        assert_eq!(&upn[1..4], b"354");
        let body = std::str::from_utf8(&upn[1..]).expect("ascii");
        assert_eq!(upn_check_letter(body), Some(char::from(upn[0])));
        let temp = make_upn(350, 2001, 15, 42, Some(b'A')).expect("temporary");
        assert_eq!(temp[12], b'A');
        assert!(upn_check_letter("35A200115042").is_none());
    }
}
