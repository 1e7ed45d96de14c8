//! Canonical forms: turn a raw identifier into the exact string that is
//! hashed, or reject it with a named reason.
//!
//! The forms are fixed byte for byte by `spec/pseudonymisation.md`; an
//! agency's own tooling must be able to reproduce them, so nothing here may
//! be "improved" without a new scheme version. Choices the spec leaves open
//! are written down on the function that makes them.
//!
//! Errors never carry the value: a rejection goes into a report that people
//! read, and the value is personal data.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::Kind;

/// Why a value has no canonical form. The value itself is deliberately not
/// part of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Nothing left after canonicalisation (names, local refs).
    #[error("empty")]
    Empty,
    /// NHS number: not exactly 10 digits after removing spaces and `-`.
    #[error("not 10 digits")]
    NotTenDigits,
    /// NHS number: modulus 11 check digit wrong (or the check came out as 10).
    #[error("check digit")]
    CheckDigit,
    /// Date: not one of the accepted input forms.
    #[error("not a recognised date form")]
    DateForm,
    /// Date: the form is right but the day does not exist (`2009-02-30`).
    #[error("not a real date")]
    NotRealDate,
    /// Date: year before 1900.
    #[error("before 1900")]
    Before1900,
    /// Postcode: does not match the UK postcode pattern.
    #[error("not a UK postcode")]
    NotUkPostcode,
    /// Phone: neither a UK number nor a `+` international number.
    #[error("not a phone number")]
    NotPhone,
    /// Email: not exactly one `@`.
    #[error("not exactly one @")]
    EmailAt,
    /// Email: nothing before the `@`.
    #[error("empty local part")]
    EmailLocalPart,
    /// Email: no `.` in the domain.
    #[error("domain without a dot")]
    EmailDomain,
    /// Vehicle registration: not 2 to 8 letters and digits.
    #[error("length not 2 to 8")]
    VrmLength,
    /// UPN: not 13 characters once whitespace is removed.
    #[error("not 13 characters")]
    UpnLength,
    /// UPN: 13 characters but not letter + 11 digits + digit-or-letter.
    #[error("not a UPN")]
    UpnForm,
    /// UPN: the check letter does not match.
    #[error("check letter")]
    CheckLetter,
    /// The kind has no canonical form of its own (`match`).
    #[error("kind has no canonical form")]
    NotCanonicalisable,
}

impl Rejection {
    /// Every reason, for documentation and report legends.
    pub const ALL: [Rejection; 16] = [
        Rejection::Empty,
        Rejection::NotTenDigits,
        Rejection::CheckDigit,
        Rejection::DateForm,
        Rejection::NotRealDate,
        Rejection::Before1900,
        Rejection::NotUkPostcode,
        Rejection::NotPhone,
        Rejection::EmailAt,
        Rejection::EmailLocalPart,
        Rejection::EmailDomain,
        Rejection::VrmLength,
        Rejection::UpnLength,
        Rejection::UpnForm,
        Rejection::CheckLetter,
        Rejection::NotCanonicalisable,
    ];

    /// A stable machine-readable code for reports and metrics. These strings
    /// are part of the rejection report format: do not rename them.
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::Empty => "empty",
            Rejection::NotTenDigits => "not_10_digits",
            Rejection::CheckDigit => "check_digit",
            Rejection::DateForm => "date_form",
            Rejection::NotRealDate => "not_real_date",
            Rejection::Before1900 => "before_1900",
            Rejection::NotUkPostcode => "not_uk_postcode",
            Rejection::NotPhone => "not_phone",
            Rejection::EmailAt => "email_at",
            Rejection::EmailLocalPart => "email_local_part",
            Rejection::EmailDomain => "email_domain",
            Rejection::VrmLength => "vrm_length",
            Rejection::UpnLength => "upn_length",
            Rejection::UpnForm => "upn_form",
            Rejection::CheckLetter => "check_letter",
            Rejection::NotCanonicalisable => "not_canonicalisable",
        }
    }
}

/// The canonical form of `value` as kind `kind`.
///
/// `agency` is only used by [`Kind::LocalRef`] (the canonical form is
/// `agency + "|" + value`); it is the caller's already-validated agency id
/// and is not checked here. Borrows when the input is already canonical, so
/// clean data costs no allocation.
pub fn canonicalise<'a>(
    kind: Kind,
    value: &'a str,
    agency: &str,
) -> Result<Cow<'a, str>, Rejection> {
    match kind {
        Kind::NhsNumber => nhs_number(value),
        Kind::PersonName => person_name(value),
        Kind::Date => date(value),
        Kind::Postcode => postcode(value),
        Kind::Phone => phone(value),
        Kind::Email => email(value),
        Kind::Vrm => vrm(value),
        Kind::LocalRef => local_ref(value, agency).map(Cow::Owned),
        Kind::Upn => upn(value),
        Kind::Match => Err(Rejection::NotCanonicalisable),
    }
}

// ---------------------------------------------------------------- NHS number

/// The NHS number check digit (modulus 11) for the first nine digits, or
/// `None` when the nine digits have no valid check digit (the check comes
/// out as 10) or the input is not nine digits.
///
/// Digits may be given as values `0..=9` or as ASCII `b'0'..=b'9'` (the two
/// ranges do not overlap, so either is unambiguous); the result is a value
/// `0..=9`. Exposed so synthetic data can make valid and invalid numbers.
pub fn nhs_check_digit(first9: &[u8]) -> Option<u8> {
    if first9.len() != 9 {
        return None;
    }
    let mut sum: u32 = 0;
    for (i, &b) in first9.iter().enumerate() {
        let d = match b {
            0..=9 => b,
            b'0'..=b'9' => b - b'0',
            _ => return None,
        };
        // Weights 10, 9, ..., 2 for digits 1..9.
        sum += u32::from(d) * (10 - i as u32);
    }
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        check => u8::try_from(check).ok(),
    }
}

fn nhs_number(value: &str) -> Result<Cow<'_, str>, Rejection> {
    let mut digits = [0u8; 10];
    let mut n = 0;
    for &b in value.as_bytes() {
        match b {
            // Only ASCII space and hyphen: the spec names exactly these two.
            b' ' | b'-' => {}
            b'0'..=b'9' => {
                if n == digits.len() {
                    return Err(Rejection::NotTenDigits);
                }
                digits[n] = b;
                n += 1;
            }
            _ => return Err(Rejection::NotTenDigits),
        }
    }
    if n != digits.len() {
        return Err(Rejection::NotTenDigits);
    }
    match nhs_check_digit(&digits[..9]) {
        Some(check) if check == digits[9] - b'0' => {}
        _ => return Err(Rejection::CheckDigit),
    }
    if value.len() == digits.len() {
        return Ok(Cow::Borrowed(value));
    }
    // Every byte pushed above is an ASCII digit.
    Ok(Cow::Owned(digits.iter().map(|&b| char::from(b)).collect()))
}

// --------------------------------------------------------------- person name

fn person_name(value: &str) -> Result<Cow<'_, str>, Rejection> {
    if value.is_ascii() {
        return person_name_ascii(value);
    }
    // NFKD, then drop General Category M. Lower-casing must be done on the
    // whole string (not per char) because of the final-sigma rule.
    let stripped: String = value.nfkd().filter(|&c| !is_combining_mark(c)).collect();
    let lower = stripped.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut gap = false;
    for c in lower.chars() {
        if c.is_alphabetic() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(c);
        } else {
            gap = true;
        }
    }
    if out.is_empty() {
        return Err(Rejection::Empty);
    }
    Ok(Cow::Owned(out))
}

/// On ASCII input NFKD is the identity, there are no combining marks,
/// Unicode lower-casing is ASCII lower-casing and `is_alphabetic` is
/// `is_ascii_alphabetic`, so this gives byte-for-byte the same result as the
/// general path without the normalisation tables.
fn person_name_ascii(value: &str) -> Result<Cow<'_, str>, Rejection> {
    if is_canonical_ascii_name(value.as_bytes()) {
        return Ok(Cow::Borrowed(value));
    }
    let mut out = String::with_capacity(value.len());
    let mut gap = false;
    for &b in value.as_bytes() {
        if b.is_ascii_alphabetic() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(char::from(b.to_ascii_lowercase()));
        } else {
            gap = true;
        }
    }
    if out.is_empty() {
        return Err(Rejection::Empty);
    }
    Ok(Cow::Owned(out))
}

fn is_canonical_ascii_name(b: &[u8]) -> bool {
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    first.is_ascii_lowercase()
        && last.is_ascii_lowercase()
        && b.iter().all(|&c| c.is_ascii_lowercase() || c == b' ')
        && !b.windows(2).any(|w| w == b"  ")
}

// ---------------------------------------------------------------------- date

/// Whether `(y, m, d)` is a day of the proleptic Gregorian calendar.
pub(crate) fn is_real_date(y: u16, m: u8, d: u8) -> bool {
    (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)
}

fn days_in_month(y: u16, m: u8) -> u8 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400)) => 29,
        2 => 28,
        _ => 31,
    }
}

fn digits_value(b: &[u8]) -> Option<u16> {
    if b.is_empty() || b.len() > 4 {
        return None;
    }
    b.iter().try_fold(0u16, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u16::from(c - b'0'))
    })
}

/// Accepted forms (after trimming surrounding whitespace):
/// `YYYY-MM-DD`; `D/M/YYYY`, `D-M-YYYY`, `D.M.YYYY` with one- or two-digit
/// day and month and the same separator twice; and `YYYY-MM-DD` followed by
/// an ISO 8601 extended-format time.
///
/// The spec says "an ISO 8601 date-time" without fixing the time part; we
/// require `T`, then `hh:mm`, optionally `:ss` and a `.`/`,` fraction, then
/// optionally `Z`, `±hh`, `±hhmm` or `±hh:mm`. A space instead of `T` (SQL
/// style) is not ISO 8601 and is rejected as a date form.
fn date(value: &str) -> Result<Cow<'_, str>, Rejection> {
    let s = value.trim();
    let b = s.as_bytes();
    let iso = b.len() >= 10 && b[4] == b'-' && b[7] == b'-';
    let (y, m, d) = if iso {
        let (Some(y), Some(m), Some(d)) = (
            digits_value(&b[0..4]),
            digits_value(&b[5..7]),
            digits_value(&b[8..10]),
        ) else {
            return Err(Rejection::DateForm);
        };
        if b.len() > 10 && !is_iso_time(&b[10..]) {
            return Err(Rejection::DateForm);
        }
        (y, m, d)
    } else {
        uk_date(b).ok_or(Rejection::DateForm)?
    };
    let (Ok(m), Ok(d)) = (u8::try_from(m), u8::try_from(d)) else {
        return Err(Rejection::NotRealDate);
    };
    if !is_real_date(y, m, d) {
        return Err(Rejection::NotRealDate);
    }
    if y < 1900 {
        return Err(Rejection::Before1900);
    }
    if iso && s.len() == 10 && value.len() == 10 {
        return Ok(Cow::Borrowed(value));
    }
    // By hand rather than `format!`: most extracts give dates as D/M/YYYY,
    // so this runs for nearly every date of birth.
    let mut out = [0u8; 10];
    for (i, shift) in [1000, 100, 10, 1].into_iter().enumerate() {
        out[i] = b'0' + ((y / shift) % 10) as u8;
    }
    out[4] = b'-';
    out[5] = b'0' + m / 10;
    out[6] = b'0' + m % 10;
    out[7] = b'-';
    out[8] = b'0' + d / 10;
    out[9] = b'0' + d % 10;
    // ASCII digits and hyphens only.
    Ok(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
}

fn uk_date(b: &[u8]) -> Option<(u16, u16, u16)> {
    let sep1 = b.iter().position(|c| !c.is_ascii_digit())?;
    let sep = b[sep1];
    if !matches!(sep, b'/' | b'-' | b'.') || !(1..=2).contains(&sep1) {
        return None;
    }
    let rest = &b[sep1 + 1..];
    let sep2 = rest.iter().position(|c| !c.is_ascii_digit())?;
    if rest[sep2] != sep || !(1..=2).contains(&sep2) {
        return None;
    }
    let year = &rest[sep2 + 1..];
    if year.len() != 4 {
        return None;
    }
    Some((
        digits_value(year)?,
        digits_value(&rest[..sep2])?,
        digits_value(&b[..sep1])?,
    ))
}

fn two_digits(b: &[u8], max: u8) -> bool {
    b.len() == 2
        && b[0].is_ascii_digit()
        && b[1].is_ascii_digit()
        && (b[0] - b'0') * 10 + (b[1] - b'0') <= max
}

fn is_iso_time(t: &[u8]) -> bool {
    let Some(t) = t.strip_prefix(b"T") else {
        return false;
    };
    if t.len() < 5 || !two_digits(&t[0..2], 23) || t[2] != b':' || !two_digits(&t[3..5], 59) {
        return false;
    }
    let mut rest = &t[5..];
    if let Some(r) = rest.strip_prefix(b":") {
        // 60 allows a leap second.
        if r.len() < 2 || !two_digits(&r[..2], 60) {
            return false;
        }
        rest = &r[2..];
        if let Some(r) = rest.strip_prefix(b".").or_else(|| rest.strip_prefix(b",")) {
            let n = r.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return false;
            }
            rest = &r[n..];
        }
    }
    match rest {
        [] | [b'Z'] => true,
        [b'+' | b'-', zone @ ..] => match zone.len() {
            2 => two_digits(zone, 23),
            4 => two_digits(&zone[..2], 23) && two_digits(&zone[2..], 59),
            5 => two_digits(&zone[..2], 23) && zone[2] == b':' && two_digits(&zone[3..], 59),
            _ => false,
        },
        _ => false,
    }
}

// ------------------------------------------------------------------ postcode

/// Pushes the upper-case form of `c` into `out`. `str::to_uppercase` has no
/// context rules, so mapping char by char equals mapping the string.
fn push_upper(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c.to_ascii_uppercase());
    } else {
        out.extend(c.to_uppercase());
    }
}

fn postcode(value: &str) -> Result<Cow<'_, str>, Rejection> {
    let mut t = String::with_capacity(8);
    for c in value.chars() {
        if c.is_whitespace() {
            continue;
        }
        push_upper(c, &mut t);
        if t.len() > 7 {
            return Err(Rejection::NotUkPostcode);
        }
    }
    let b = t.as_bytes();
    if b.len() < 5 {
        return Err(Rejection::NotUkPostcode);
    }
    let (outward, inward) = b.split_at(b.len() - 3);
    let upper = |c: &u8| c.is_ascii_uppercase();
    let digit = |c: &u8| c.is_ascii_digit();
    let alnum = |c: &u8| c.is_ascii_uppercase() || c.is_ascii_digit();
    // [A-Z]{1,2}[0-9][A-Z0-9]? — with the inward code fixed at three chars
    // the outward code is one of these four shapes.
    let outward_ok = match outward {
        [a, n] => upper(a) && digit(n),
        [a, n, x] => upper(a) && ((digit(n) && alnum(x)) || (upper(n) && digit(x))),
        [a, b2, n, x] => upper(a) && upper(b2) && digit(n) && alnum(x),
        _ => false,
    };
    let inward_ok = digit(&inward[0]) && upper(&inward[1]) && upper(&inward[2]);
    if !(outward_ok && inward_ok) {
        return Err(Rejection::NotUkPostcode);
    }
    let split = b.len() - 3;
    if value.len() == b.len() + 1
        && value.as_bytes().get(split) == Some(&b' ')
        && value.as_bytes()[..split] == b[..split]
        && value.as_bytes()[split + 1..] == b[split..]
    {
        return Ok(Cow::Borrowed(value));
    }
    t.insert(split, ' ');
    Ok(Cow::Owned(t))
}

// --------------------------------------------------------------------- phone

/// Digits are ASCII digits only. "A leading `+`" is taken to be a `+` seen
/// before any digit (so `(+44) …` keeps it); any other `+` and every other
/// character is dropped. Only `+44` and `0044` are rewritten: another `00`
/// international prefix is not turned into `+`, so `001 202…` is rejected.
fn phone(value: &str) -> Result<Cow<'_, str>, Rejection> {
    // Longest acceptable input is `0044` + `0` + 11 digits.
    const MAX_DIGITS: usize = 16;
    let mut d = String::with_capacity(16);
    let mut plus = false;
    for c in value.chars() {
        if c.is_ascii_digit() {
            if d.len() == MAX_DIGITS {
                return Err(Rejection::NotPhone);
            }
            d.push(c);
        } else if c == '+' && d.is_empty() {
            plus = true;
        }
    }
    let uk_rest = if plus {
        d.strip_prefix("44")
    } else {
        d.strip_prefix("0044")
    };
    if let Some(rest) = uk_rest {
        // `+44 (0)7700…`: the trunk 0 after the country code goes first.
        let rest = rest.strip_prefix('0').unwrap_or(rest);
        let uk = format!("0{rest}");
        return if (10..=11).contains(&uk.len()) {
            Ok(Cow::Owned(uk))
        } else {
            Err(Rejection::NotPhone)
        };
    }
    if plus {
        return if !(8..=15).contains(&d.len()) {
            Err(Rejection::NotPhone)
        } else if value.len() == d.len() + 1 {
            // Only `+` and digits were given, so the input is the answer.
            Ok(Cow::Borrowed(value))
        } else {
            Ok(Cow::Owned(format!("+{d}")))
        };
    }
    if (10..=11).contains(&d.len()) && d.starts_with('0') {
        // Same length means nothing was dropped: the input is all digits.
        Ok(if value.len() == d.len() {
            Cow::Borrowed(value)
        } else {
            Cow::Owned(d)
        })
    } else {
        Err(Rejection::NotPhone)
    }
}

// --------------------------------------------------------------------- email

fn email(value: &str) -> Result<Cow<'_, str>, Rejection> {
    let s = value.trim();
    let mut parts = s.splitn(3, '@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Rejection::EmailAt);
    };
    if local.is_empty() {
        return Err(Rejection::EmailLocalPart);
    }
    if !domain.contains('.') {
        return Err(Rejection::EmailDomain);
    }
    if s.len() == value.len() && s.is_ascii() && !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Ok(Cow::Borrowed(value));
    }
    if s.is_ascii() {
        return Ok(Cow::Owned(s.to_ascii_lowercase()));
    }
    Ok(Cow::Owned(s.to_lowercase()))
}

// ----------------------------------------------------------------------- vrm

fn vrm(value: &str) -> Result<Cow<'_, str>, Rejection> {
    let b = value.as_bytes();
    if (2..=8).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Ok(Cow::Borrowed(value));
    }
    let mut out = String::with_capacity(8);
    let mut upper = String::with_capacity(4);
    for c in value.chars() {
        upper.clear();
        push_upper(c, &mut upper);
        for u in upper.chars().filter(char::is_ascii_alphanumeric) {
            if out.len() == 8 {
                return Err(Rejection::VrmLength);
            }
            out.push(u);
        }
    }
    if out.len() < 2 {
        return Err(Rejection::VrmLength);
    }
    Ok(Cow::Owned(out))
}

// ----------------------------------------------------------------- local_ref

/// Whitespace is Unicode `White_Space` (what `str::trim` uses), so trimming
/// and collapsing agree on what a space is.
fn local_ref(value: &str, agency: &str) -> Result<String, Rejection> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Rejection::Empty);
    }
    let mut out = String::with_capacity(agency.len() + 1 + v.len());
    out.push_str(agency);
    out.push('|');
    // The usual reference is visible ASCII with no space inside: upper-case
    // it in one go.
    if v.bytes().all(|b| b.is_ascii_graphic()) {
        let at = out.len();
        out.push_str(v);
        out[at..].make_ascii_uppercase();
        return Ok(out);
    }
    let mut gap = false;
    for c in v.chars() {
        if c.is_whitespace() {
            gap = true;
            continue;
        }
        if gap {
            out.push(' ');
            gap = false;
        }
        push_upper(c, &mut out);
    }
    Ok(out)
}

// ----------------------------------------------------------------------- UPN

/// The 23 check letters; a letter in the last position of a temporary UPN
/// takes its index here as its value.
const UPN_ALPHABET: &[u8; 23] = b"ABCDEFGHJKLMNPQRTUVWXYZ";

fn upn_alphabet_index(c: u8) -> Option<u32> {
    UPN_ALPHABET
        .iter()
        .position(|&a| a == c)
        .and_then(|i| u32::try_from(i).ok())
}

/// The DfE check letter for the twelve characters after it (positions 2–13
/// of the UPN): `Σ value × position` mod 23, indexed into
/// `ABCDEFGHJKLMNPQRTUVWXYZ`. "Position" is the 1-based position in the full
/// 13-character UPN, so the first character of `body12` has weight 2 and the
/// last weight 13.
///
/// `body12` must be eleven ASCII digits and then a digit or a letter from
/// the check alphabet (temporary UPN; lower case accepted); otherwise
/// `None`. Exposed so synthetic data can make valid and invalid UPNs.
pub fn upn_check_letter(body12: &str) -> Option<char> {
    let b = body12.as_bytes();
    if b.len() != 12 {
        return None;
    }
    let mut sum: u32 = 0;
    for (i, &c) in b.iter().enumerate() {
        let value = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            _ if i == 11 => upn_alphabet_index(c.to_ascii_uppercase())?,
            _ => return None,
        };
        sum += value * (i as u32 + 2);
    }
    UPN_ALPHABET
        .get((sum % 23) as usize)
        .map(|&c| char::from(c))
}

/// Upper-case and remove all whitespace, then require 13 characters: a
/// check letter, eleven digits (LA code and the rest), and a last digit or
/// check-alphabet letter. The brief only pins digits at positions 2–4; real
/// UPNs (permanent and temporary) are digits through position 12, so we
/// require that and report anything else as `upn_form`.
fn upn(value: &str) -> Result<Cow<'_, str>, Rejection> {
    let b = value.as_bytes();
    let canonical = b.len() == 13
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    let owned;
    let s: &str = if canonical {
        value
    } else {
        let mut t = String::with_capacity(13);
        for c in value.chars() {
            if c.is_whitespace() {
                continue;
            }
            push_upper(c, &mut t);
            if t.chars().count() > 13 {
                return Err(Rejection::UpnLength);
            }
        }
        owned = t;
        &owned
    };
    if s.chars().count() != 13 {
        return Err(Rejection::UpnLength);
    }
    let b = s.as_bytes();
    if b.len() != 13 || !b[0].is_ascii_uppercase() {
        return Err(Rejection::UpnForm);
    }
    let Some(check) = upn_check_letter(&s[1..]) else {
        return Err(Rejection::UpnForm);
    };
    if char::from(b[0]) != check {
        return Err(Rejection::CheckLetter);
    }
    if canonical {
        Ok(Cow::Borrowed(value))
    } else {
        Ok(Cow::Owned(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(kind: Kind, value: &str) -> Rejection {
        match canonicalise(kind, value, "agency") {
            Err(r) => r,
            Ok(c) => panic!("{kind} {value:?} should be rejected, got {c:?}"),
        }
    }

    fn canon(kind: Kind, value: &str) -> String {
        match canonicalise(kind, value, "agency") {
            Ok(c) => c.into_owned(),
            Err(r) => panic!("{kind} {value:?} rejected: {r}"),
        }
    }

    #[test]
    fn rejection_reasons_are_named() {
        assert_eq!(
            reject(Kind::NhsNumber, "123456789"),
            Rejection::NotTenDigits
        );
        assert_eq!(
            reject(Kind::NhsNumber, "94347659190"),
            Rejection::NotTenDigits
        );
        assert_eq!(
            reject(Kind::NhsNumber, "943 476 591x"),
            Rejection::NotTenDigits
        );
        assert_eq!(reject(Kind::NhsNumber, "9434765918"), Rejection::CheckDigit);
        assert_eq!(reject(Kind::PersonName, "'-- "), Rejection::Empty);
        assert_eq!(reject(Kind::PersonName, "\u{301}"), Rejection::Empty);
        assert_eq!(reject(Kind::Date, "2009-3-7"), Rejection::DateForm);
        assert_eq!(reject(Kind::Date, "07/03-2009"), Rejection::DateForm);
        assert_eq!(reject(Kind::Date, "07/03/09"), Rejection::DateForm);
        assert_eq!(reject(Kind::Date, "2009-03-07 10:15"), Rejection::DateForm);
        assert_eq!(
            reject(Kind::Date, "2009-03-07Tnonsense"),
            Rejection::DateForm
        );
        assert_eq!(reject(Kind::Date, "2009-02-30"), Rejection::NotRealDate);
        assert_eq!(reject(Kind::Date, "31/4/2009"), Rejection::NotRealDate);
        assert_eq!(reject(Kind::Date, "1899-12-31"), Rejection::Before1900);
        assert_eq!(reject(Kind::Postcode, "OL111A"), Rejection::NotUkPostcode);
        assert_eq!(reject(Kind::Phone, "12345"), Rejection::NotPhone);
        assert_eq!(reject(Kind::Phone, "001 202 555 0143"), Rejection::NotPhone);
        assert_eq!(reject(Kind::Email, "a@b@c.uk"), Rejection::EmailAt);
        assert_eq!(reject(Kind::Email, "no-at-sign"), Rejection::EmailAt);
        assert_eq!(
            reject(Kind::Email, "@example.org"),
            Rejection::EmailLocalPart
        );
        assert_eq!(
            reject(Kind::Email, "nobody@localhost"),
            Rejection::EmailDomain
        );
        assert_eq!(reject(Kind::Vrm, "A"), Rejection::VrmLength);
        assert_eq!(reject(Kind::Vrm, "ABCDEFGHI"), Rejection::VrmLength);
        assert_eq!(reject(Kind::LocalRef, " \t "), Rejection::Empty);
        assert_eq!(reject(Kind::Upn, "A12345678901"), Rejection::UpnLength);
        assert_eq!(reject(Kind::Upn, "1123456789012"), Rejection::UpnForm);
        assert_eq!(reject(Kind::Upn, "A12345678901I"), Rejection::UpnForm);
        assert_eq!(reject(Kind::Upn, "B123456789012"), Rejection::CheckLetter);
        assert_eq!(
            reject(Kind::Match, "anything"),
            Rejection::NotCanonicalisable
        );
    }

    #[test]
    fn reason_codes_are_unique_and_display_never_shows_the_value() {
        let mut codes: Vec<_> = Rejection::ALL.iter().map(|r| r.reason()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Rejection::ALL.len());
        let secret = "9434765918";
        let r = reject(Kind::NhsNumber, secret);
        assert_eq!(r.to_string(), "check digit");
        assert_eq!(r.reason(), "check_digit");
        assert!(!format!("{r:?}").contains(secret));
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(canon(Kind::Date, " 1/2/2010 "), "2010-02-01");
        assert_eq!(
            canon(Kind::Date, "2009-03-07T10:15:00.123+01:00"),
            "2009-03-07"
        );
        assert_eq!(canon(Kind::Date, "2009-03-07T10:15"), "2009-03-07");
        assert_eq!(canon(Kind::Date, "2000-02-29"), "2000-02-29");
        assert_eq!(reject(Kind::Date, "1900-02-29"), Rejection::NotRealDate);
        assert_eq!(canon(Kind::Postcode, "m1\u{a0}6eu"), "M1 6EU");
        assert_eq!(canon(Kind::Postcode, "EC1A 1BB"), "EC1A 1BB");
        assert_eq!(canon(Kind::Postcode, "W1A0AX"), "W1A 0AX");
        assert_eq!(canon(Kind::Phone, "(+44) 161 496 0000"), "01614960000");
        assert_eq!(canon(Kind::Phone, "+353 1 234 5678"), "+35312345678");
        // The v1 rule read literally: 10 or 11 digits starting 0 is "UK", even
        // when the 0 is really an international `00` prefix.
        assert_eq!(canon(Kind::Phone, "00 1202 555 01"), "00120255501");
        assert_eq!(canon(Kind::Upn, "a123 4567 8901 2"), "A123456789012");
        assert_eq!(canon(Kind::LocalRef, " a\t\u{a0} b "), "agency|A B");
        assert_eq!(canon(Kind::PersonName, "ΟΔΥΣΣΕΥΣ"), "οδυσσευς");
        assert_eq!(canon(Kind::PersonName, "İsa"), "isa");
    }

    #[test]
    fn already_canonical_input_is_borrowed() {
        for (kind, v) in [
            (Kind::NhsNumber, "9434765919"),
            (Kind::PersonName, "o brien smith"),
            (Kind::Date, "2009-03-07"),
            (Kind::Postcode, "OL11 1AA"),
            (Kind::Phone, "07700900123"),
            (Kind::Phone, "+12025550143"),
            (Kind::Email, "someone@example.org"),
            (Kind::Vrm, "AB12CDE"),
            (Kind::Upn, "A123456789012"),
        ] {
            let c = canonicalise(kind, v, "agency");
            assert!(matches!(c, Ok(Cow::Borrowed(_))), "{kind}: {c:?}");
        }
    }

    #[test]
    fn check_helpers() {
        assert_eq!(nhs_check_digit(b"943476591"), Some(9));
        assert_eq!(nhs_check_digit(&[9, 4, 3, 4, 7, 6, 5, 9, 1]), Some(9));
        assert_eq!(nhs_check_digit(b"94347659"), None);
        assert_eq!(nhs_check_digit(b"94347659x"), None);
        assert_eq!(upn_check_letter("123456789012"), Some('A'));
        assert_eq!(upn_check_letter("12345678901"), None);
        assert_eq!(upn_check_letter("12345678901I"), None);
        assert!(upn_check_letter("12345678901a").is_some());
    }
}
