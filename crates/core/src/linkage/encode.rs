//! Comparison encodings (`agencylink-compare-v1`): keyed codes of the
//! variants of a person's family name, given name and date of birth, so
//! that two records can be compared field by field (exact, within one edit,
//! same sound, nickname, initial, day and month swapped, …) without either
//! value being kept. The byte-exact contract, its test vectors and its
//! threat model are in `docs/comparison-encodings.md`.
//!
//! Every code is `base32lower(HMAC(K("compare"), label + value)[0..10])`.
//! Codes are computed at ingest from canonical values, held in memory with
//! the record, and written only to the linkage index, never to a curated
//! record, an export or a report.

use serde::{Deserialize, Serialize};

use crate::curate::short_hash;
use crate::pseudo::Pseudonymiser;

use super::names::variant_roots;

/// The encoding scheme, recorded with every model and in lineage.
pub const COMPARE_SCHEME: &str = "agencylink-compare-v1";

/// Names shorter than this (in characters) get no one-edit codes: a single
/// edit of a two- or three-letter name is weak evidence and matches too much.
pub const NEAR_MIN_CHARS: usize = 4;
/// Names longer than this (in characters) get no one-edit codes, which
/// bounds the codes a hostile value can make.
pub const NEAR_MAX_CHARS: usize = 32;

/// The codes of one name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameCodes {
    /// `"nx|" + name`: the whole canonical name. Shared by family and given
    /// names, so a given name written in the family column still agrees.
    pub x: String,
    /// `"nx|" + name with one character deleted`, each distinct deletion,
    /// sorted: two names within one edit (substitution, insertion,
    /// deletion, adjacent transposition) share a code or one's `x` is here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub d: Vec<String>,
    /// `"nx|" + word` for each word of a name of two or more words, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub w: Vec<String>,
    /// `"np|" + NYSIIS(name)` when the name has ASCII letters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<String>,
    /// Given names only: `"nr|" + root` for each nickname or variant root
    /// the name belongs to, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub r: Vec<String>,
    /// Given names only, when the family name is known:
    /// `"gi|" + first character + "|" + family name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub i: Option<String>,
}

/// The codes of a date of birth.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DobCodes {
    /// `"dx|YYYY-MM-DD"`.
    pub x: String,
    /// `"dx|YYYY-DD-MM"`, the date with day and month swapped, when the day
    /// is 12 or less and differs from the month (so the swap is a date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s: Option<String>,
    /// `"dym|YYYY-MM"`, `"dyd|YYYY-DD"`, `"dmd|MM-DD"`: two of the three
    /// parts, so one wrong part (a digit, a year off by one) still agrees.
    pub ym: String,
    /// See `ym`.
    pub yd: String,
    /// See `ym`.
    pub md: String,
}

/// One record's comparison encodings and blocking keys.
///
/// Records with the same family name, given name and date of birth (each
/// present or absent alike) have the same signature, so the linkage index
/// holds one entry per distinct way a person was written, not per record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// `s_` + a hash of the codes below (keyed, because the codes are).
    pub id: String,
    /// Family name codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f: Option<NameCodes>,
    /// Given name codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub g: Option<NameCodes>,
    /// Date of birth codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<DobCodes>,
    /// Blocking keys: candidates for comparison are signatures that share one.
    pub b: Vec<String>,
}

fn code(p: &Pseudonymiser, parts: &[&[u8]]) -> String {
    let mut out = String::with_capacity(16);
    p.compare_code_into(parts, &mut out);
    out
}

/// NYSIIS (New York State Identification and Intelligence System, 1970) of
/// a name's ASCII letters, upper-case and untruncated; `None` when the name
/// has no ASCII letter. The exact steps are in the spec.
pub fn nysiis(name: &str) -> Option<String> {
    let mut s: Vec<u8> = name
        .bytes()
        .filter(u8::is_ascii_alphabetic)
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if s.is_empty() {
        return None;
    }
    // 1. The start of the name.
    let prefixes: [(&[u8], &[u8]); 6] = [
        (b"MAC", b"MCC"),
        (b"KN", b"NN"),
        (b"K", b"C"),
        (b"PH", b"FF"),
        (b"PF", b"FF"),
        (b"SCH", b"SSS"),
    ];
    for (from, to) in prefixes {
        if s.starts_with(from) {
            s[..from.len()].copy_from_slice(to);
            break;
        }
    }
    // 2. The end of the name.
    let suffixes: [(&[u8], &[u8]); 7] = [
        (b"EE", b"Y"),
        (b"IE", b"Y"),
        (b"DT", b"D"),
        (b"RT", b"D"),
        (b"RD", b"D"),
        (b"NT", b"D"),
        (b"ND", b"D"),
    ];
    for (from, to) in suffixes {
        if s.ends_with(from) {
            s.truncate(s.len() - from.len());
            s.extend_from_slice(to);
            break;
        }
    }
    let vowel = |c: u8| matches!(c, b'A' | b'E' | b'I' | b'O' | b'U');
    // 3. The first letter stays; 4. the rest are translated in place.
    let mut key = vec![s[0]];
    let mut i = 1;
    while i < s.len() {
        let c = s[i];
        let next = s.get(i + 1).copied();
        let prev = s[i - 1];
        let mut repl: Vec<u8> = match c {
            b'E' if next == Some(b'V') => b"AF".to_vec(),
            c if vowel(c) => b"A".to_vec(),
            b'Q' => b"G".to_vec(),
            b'Z' => b"S".to_vec(),
            b'M' => b"N".to_vec(),
            b'K' if next == Some(b'N') => b"N".to_vec(),
            b'K' => b"C".to_vec(),
            b'S' if s.get(i + 1..i + 3) == Some(b"CH") => b"SSS".to_vec(),
            b'P' if next == Some(b'H') => b"FF".to_vec(),
            b'H' if !vowel(prev) || next.is_some_and(|n| !vowel(n)) => vec![prev],
            b'W' if vowel(prev) => vec![prev],
            c => vec![c],
        };
        // A multi-letter replacement overwrites the letters it stands for,
        // so later rules see the translated name.
        let width = repl.len();
        for (j, r) in repl.iter().enumerate() {
            if let Some(slot) = s.get_mut(i + j) {
                *slot = *r;
            }
        }
        repl.truncate(width);
        for r in repl {
            if key.last() != Some(&r) {
                key.push(r);
            }
        }
        i += width;
    }
    // 5–7. The end of the key.
    if key.len() > 1 && key.last() == Some(&b'S') {
        key.pop();
    }
    if key.len() > 2 && key.ends_with(b"AY") {
        key.truncate(key.len() - 2);
        key.push(b'Y');
    }
    if key.len() > 1 && key.last() == Some(&b'A') {
        key.pop();
    }
    String::from_utf8(key).ok()
}

/// The distinct strings made by deleting one character of `name`, sorted.
pub fn deletions(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() < NEAR_MIN_CHARS || chars.len() > NEAR_MAX_CHARS {
        return Vec::new();
    }
    let mut out: Vec<String> = (0..chars.len())
        .map(|skip| {
            chars
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != skip)
                .map(|(_, c)| *c)
                .collect()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn name_codes(p: &Pseudonymiser, name: &str, given_of: Option<Option<&str>>) -> NameCodes {
    let nx = |v: &str| code(p, &[b"nx|", v.as_bytes()]);
    let words: Vec<&str> = name.split(' ').filter(|w| !w.is_empty()).collect();
    let mut w: Vec<String> = if words.len() > 1 {
        words.iter().map(|w| nx(w)).collect()
    } else {
        Vec::new()
    };
    w.sort();
    w.dedup();
    let mut d: Vec<String> = deletions(name).iter().map(|v| nx(v)).collect();
    d.sort();
    d.dedup();
    let phonetic = nysiis(name).map(|n| code(p, &[b"np|", n.as_bytes()]));
    let (r, i) = match given_of {
        Some(family) => {
            let mut r: Vec<String> = variant_roots(name)
                .iter()
                .map(|root| code(p, &[b"nr|", root.as_bytes()]))
                .collect();
            r.sort();
            r.dedup();
            let i = family.and_then(|f| {
                let first = name.chars().next()?;
                let mut buf = [0u8; 4];
                Some(code(
                    p,
                    &[
                        b"gi|",
                        first.encode_utf8(&mut buf).as_bytes(),
                        b"|",
                        f.as_bytes(),
                    ],
                ))
            });
            (r, i)
        }
        None => (Vec::new(), None),
    };
    NameCodes {
        x: nx(name),
        d,
        w,
        p: phonetic,
        r,
        i,
    }
}

fn dob_codes(p: &Pseudonymiser, dob: &str) -> Option<DobCodes> {
    // Canonical dates are `YYYY-MM-DD`; anything else is not encoded.
    let b = dob.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (&dob[..4], &dob[5..7], &dob[8..10]);
    let swapped = (d <= "12" && d != m && d != "00").then(|| {
        let s = format!("{y}-{d}-{m}");
        code(p, &[b"dx|", s.as_bytes()])
    });
    Some(DobCodes {
        x: code(p, &[b"dx|", dob.as_bytes()]),
        s: swapped,
        ym: code(p, &[b"dym|", y.as_bytes(), b"-", m.as_bytes()]),
        yd: code(p, &[b"dyd|", y.as_bytes(), b"-", d.as_bytes()]),
        md: code(p, &[b"dmd|", m.as_bytes(), b"-", d.as_bytes()]),
    })
}

/// The signature of one record from its canonical family name, given name
/// and date of birth (each optional), or `None` when it has none of them.
pub fn signature(
    p: &Pseudonymiser,
    family: Option<&str>,
    given: Option<&str>,
    dob: Option<&str>,
) -> Option<Signature> {
    let family = family.filter(|s| !s.is_empty());
    let given = given.filter(|s| !s.is_empty());
    let dob = dob.filter(|s| !s.is_empty());
    if family.is_none() && given.is_none() && dob.is_none() {
        return None;
    }
    let f = family.map(|f| name_codes(p, f, None));
    let g = given.map(|g| name_codes(p, g, Some(family)));
    let d = dob.and_then(|d| dob_codes(p, d));
    let b = blocking_keys(p, family, given, dob);
    let mut sig = Signature {
        id: String::new(),
        f,
        g,
        d,
        b,
    };
    // The id hashes the codes (not the blocks, which derive from the same
    // values): JSON of a fixed struct, so the same codes give the same id.
    let codes = serde_json::to_string(&(&sig.f, &sig.g, &sig.d)).unwrap_or_default();
    sig.id = format!(
        "s_{}",
        short_hash(&[b"agencylink/v1/signature|", codes.as_bytes()], 16)
    );
    Some(sig)
}

/// Blocking keys: codes of combinations of coarse values, each specific
/// enough that a block stays small and broad enough to survive a different
/// error; a pair of the same person written differently shares at least
/// one unless both names and the date all went wrong.
fn blocking_keys(
    p: &Pseudonymiser,
    family: Option<&str>,
    given: Option<&str>,
    dob: Option<&str>,
) -> Vec<String> {
    let fp = family.and_then(nysiis);
    let gp = given.and_then(|g| {
        // The variant root, when the name has one, so Kate meets Katherine.
        variant_roots(g)
            .first()
            .and_then(|r| nysiis(r))
            .or_else(|| nysiis(g))
    });
    // Dates come canonical (`YYYY-MM-DD`); sliced with `get` all the same,
    // so text that is not one gives fewer keys rather than a panic (found
    // by fuzzing: a cut inside a multi-byte character).
    let year = dob.and_then(|d| d.get(..4.min(d.len())));
    let month_day = dob.filter(|d| d.len() == 10).and_then(|d| d.get(5..));
    let initial = given.and_then(|g| g.chars().next()).map(String::from);
    let mut keys = Vec::new();
    let mut key = |parts: &[&str]| {
        let mut bytes: Vec<&[u8]> = Vec::with_capacity(parts.len() * 2);
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                bytes.push(b"|");
            }
            bytes.push(part.as_bytes());
        }
        keys.push(code(p, &bytes));
    };
    // b1: family sound and birth year (given name missing or changed).
    if let (Some(fp), Some(y)) = (&fp, year) {
        key(&["b1", fp, y]);
    }
    // b2: given sound (or its root's) and full date (family name changed).
    if let (Some(gp), Some(d)) = (&gp, dob) {
        key(&["b2", gp, d]);
    }
    // b3: full date and given initial (both names misspelt).
    if let (Some(i), Some(d)) = (&initial, dob) {
        key(&["b3", i, d]);
    }
    // b4: both name sounds, in either order (date missing or wrong; names
    // swapped between the columns).
    if let (Some(fp), Some(gp)) = (&fp, &gp) {
        let (a, b) = if fp <= gp { (fp, gp) } else { (gp, fp) };
        key(&["b4", a, b]);
    }
    // b5: family name and day and month (year wrong, given name missing).
    if let (Some(f), Some(md)) = (family, month_day) {
        key(&["b5", f, md]);
    }
    // b6: family sound, year, day and month in either order (swapped day
    // and month).
    let parts = dob
        .filter(|d| d.len() == 10)
        .and_then(|d| Some((d.get(..4)?, d.get(5..7)?, d.get(8..10)?)));
    if let (Some(fp), Some((y, m, dd))) = (&fp, parts) {
        let (lo, hi) = if m <= dd { (m, dd) } else { (dd, m) };
        key(&["b6", fp, y, lo, hi]);
    }
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudo::test_pseudonymiser;

    #[test]
    fn nysiis_follows_the_published_examples() {
        for (name, want) in [
            ("MACINTOSH", "MCANT"),
            ("KNUTH", "NAT"),
            ("PHILLIPSON", "FALAPSAN"),
            ("SCHMIDT", "SNAD"),
            ("knight", "NAGT"),
            ("mohammed", "MAHANAD"),
            ("muhammad", "MAHANAD"),
            ("mohammad", "MAHANAD"),
        ] {
            assert_eq!(nysiis(name).as_deref(), Some(want), "{name}");
        }
        assert_eq!(nysiis("ßü"), None);
    }

    #[test]
    fn deletions_find_one_edit() {
        let a: std::collections::BTreeSet<String> = deletions("smith").into_iter().collect();
        let b: std::collections::BTreeSet<String> = deletions("smiht").into_iter().collect();
        assert!(a.intersection(&b).next().is_some(), "transposition");
        assert!(deletions("smith").contains(&"smth".to_owned()));
        assert!(deletions("jo").is_empty(), "short names get none");
    }

    #[test]
    fn signatures_are_keyed_deterministic_and_hide_values() {
        let p = test_pseudonymiser();
        let a = signature(&p, Some("smith"), Some("kate"), Some("2010-03-07")).expect("sig");
        let b = signature(&p, Some("smith"), Some("kate"), Some("2010-03-07")).expect("sig");
        assert_eq!(a, b);
        let text = serde_json::to_string(&a).expect("json");
        for raw in ["smith", "kate", "2010", "SMITH", "KATE"] {
            assert!(!text.contains(raw), "{raw} leaked: {text}");
        }
        let c = signature(&p, Some("smith"), Some("katherine"), Some("2010-07-03")).expect("sig");
        assert_ne!(a.id, c.id);
        // Kate and Katherine share a variant root; the dates are a swap.
        let (ga, gc) = (a.g.as_ref().expect("g"), c.g.as_ref().expect("g"));
        assert!(ga.r.iter().any(|r| gc.r.contains(r)));
        assert_eq!(a.d.as_ref().and_then(|d| d.s.clone()), c.d.map(|d| d.x));
        assert!(a.b.iter().any(|k| c.b.contains(k)), "they share a block");
        assert!(signature(&p, None, None, None).is_none());
    }
}
