//! Properties of canonical forms, check characters and tokens that must
//! hold for every input, not just the published vectors.

use agencylink_core::pseudo::{
    Key, KeyId, Kind, MasterKey, Pseudonymiser, Rejection, canonicalise, nhs_check_digit,
    upn_check_letter,
};
use proptest::prelude::*;

const AGENCY: &str = "rochdale-council";

/// Every kind that has a canonical form of its own.
const FIELD_KINDS: [Kind; 9] = [
    Kind::NhsNumber,
    Kind::PersonName,
    Kind::Date,
    Kind::Postcode,
    Kind::Phone,
    Kind::Email,
    Kind::Vrm,
    Kind::LocalRef,
    Kind::Upn,
];

fn pseudonymiser(master: [u8; 32]) -> Pseudonymiser {
    Pseudonymiser::new(Key::new(
        KeyId::new("p1").expect("valid kid"),
        MasterKey::generate_from(master),
    ))
}

/// The MAC part of a token (after `kind:kid:`).
fn mac_part(token: &str) -> &str {
    token.rsplit(':').next().unwrap_or(token)
}

fn field_kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(FIELD_KINDS.to_vec())
}

/// Strings that look like the identifiers agencies send, with noise, so
/// that the accepting branches of each canonicaliser are exercised (purely
/// random text is rejected by almost every kind).
fn realistic(kind: Kind) -> BoxedStrategy<String> {
    let noise = prop::sample::select(vec!["", " ", "  ", "-", "\t", "\u{a0}"]);
    match kind {
        Kind::NhsNumber => ("[0-9]{9}", noise)
            .prop_map(|(nine, sep)| {
                let check = nhs_check_digit(nine.as_bytes()).unwrap_or(0);
                format!("{}{sep}{}{sep}{}{check}", &nine[..3], &nine[3..6], &nine[6..])
            })
            .boxed(),
        Kind::PersonName => {
            "[ A-Za-z'\\-àáâãäåçèéêëìíîïñòóôõöøùúûüýÿÀÉÖÜßŁłŠšŽžΑ-Ωα-ωА-Яа-я\u{301}\u{308}ｊＪ]{0,24}"
                .boxed()
        }
        Kind::Date => prop_oneof![
            (1850u16..2100, 1u8..13, 1u8..32).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
            (1850u16..2100, 1u8..13, 1u8..32, prop::sample::select(vec!['/', '-', '.']))
                .prop_map(|(y, m, d, s)| format!(" {d}{s}{m}{s}{y} ")),
            (1900u16..2100, 1u8..13, 1u8..29, 0u8..24)
                .prop_map(|(y, m, d, h)| format!("{y:04}-{m:02}-{d:02}T{h:02}:15:00Z")),
        ]
        .boxed(),
        Kind::Postcode => "[A-Za-z]{1,2}[0-9][A-Za-z0-9]? ?[0-9][A-Za-z]{2}".boxed(),
        Kind::Phone => prop_oneof![
            "0[0-9]{9,10}",
            "\\+44 ?(\\(0\\))? ?[0-9]{9,10}",
            "0044 ?[0-9]{10}",
            "\\+[1-9][0-9]{7,14}",
            "[0-9 ()+\\-]{0,20}",
        ]
        .boxed(),
        Kind::Email => "[ ]?[A-Za-z0-9._%+\\-ÉéΣσ]{1,12}@[A-Za-z0-9\\-]{1,10}\\.[A-Za-z]{2,4}[ ]?"
            .boxed(),
        Kind::Vrm => "[A-Za-z0-9 \\-ßı]{0,10}".boxed(),
        Kind::LocalRef => "[ \\ta-zA-Z0-9/\\-é\u{a0}ß]{0,20}".boxed(),
        Kind::Upn => ("[0-9]{11}", "[0-9ABCDEFGHJKLMNPQRTUVWXYZ]", noise)
            .prop_map(|(digits, last, sep)| {
                let body = format!("{digits}{last}");
                let check = upn_check_letter(&body).unwrap_or('A');
                format!("{}{sep}{}", check.to_ascii_lowercase(), body)
            })
            .boxed(),
        Kind::Match => Just(String::new()).boxed(),
    }
}

fn kind_and_value() -> impl Strategy<Value = (Kind, String)> {
    field_kind().prop_flat_map(|kind| {
        prop_oneof![
            3 => realistic(kind),
            1 => any::<String>(),
        ]
        .prop_map(move |v| (kind, v))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Canonical of canonical is canonical: a value re-uploaded after a
    /// round trip through our own output hashes to the same token.
    #[test]
    fn canonicalisation_is_idempotent((kind, value) in kind_and_value()) {
        if let Ok(c) = canonicalise(kind, &value, AGENCY) {
            if kind == Kind::LocalRef {
                // The agency prefix is added once; the value part is stable.
                let part = c.strip_prefix(&format!("{AGENCY}|")).expect("agency prefix");
                let again = canonicalise(kind, part, AGENCY).expect("canonical value accepted");
                prop_assert_eq!(again.as_ref(), c.as_ref());
            } else if kind == Kind::Phone && c.starts_with("0044") {
                // A known gap in the v1 phone rule, kept for byte-exactness:
                // `+44 (0)044…` canonicalises to the UK-shaped `0044…`, which
                // the `0044` rewrite then reads as international. No real UK
                // number starts `00`, so only junk input gets here.
            } else {
                let again = canonicalise(kind, &c, AGENCY);
                prop_assert_eq!(again.as_deref(), Ok(c.as_ref()), "{} {:?}", kind, value);
            }
        }
    }

    /// No canonicaliser panics, whatever it is given.
    #[test]
    fn canonicalisers_never_panic(value in any::<String>(), agency in "[a-z\\-]{0,20}") {
        let p = pseudonymiser([7; 32]);
        for kind in Kind::ALL {
            let _ = canonicalise(kind, &value, &agency);
            let _ = p.pseudonymise(kind, &value, &agency);
        }
        let _ = p.mk_upn(&value);
    }

    /// Subkeys separate kinds: the same canonical bytes under two kinds
    /// give unrelated MACs, not just different prefixes.
    #[test]
    fn same_value_under_two_kinds_differs(
        value in any::<String>(),
        a in 0..Kind::ALL.len(),
        offset in 1..Kind::ALL.len(),
        master in any::<[u8; 32]>(),
    ) {
        let a = Kind::ALL[a];
        let b = Kind::ALL[(a.index() + offset) % Kind::ALL.len()];
        let p = pseudonymiser(master);
        let (ta, tb) = (p.token(a, &value), p.token(b, &value));
        prop_assert_ne!(mac_part(&ta), mac_part(&tb));
    }

    /// Every key bit matters: flipping any one changes every token.
    #[test]
    fn flipping_a_key_bit_changes_every_token(
        master in any::<[u8; 32]>(),
        bit in 0usize..256,
        values in prop::collection::vec(kind_and_value(), 1..8),
    ) {
        let mut flipped = master;
        flipped[bit / 8] ^= 1 << (bit % 8);
        let (p, q) = (pseudonymiser(master), pseudonymiser(flipped));
        for (kind, value) in &values {
            prop_assert_ne!(p.token(*kind, value), q.token(*kind, value));
        }
        prop_assert_ne!(p.mk_nhs("9434765919"), q.mk_nhs("9434765919"));
    }

    /// A UPN made with `upn_check_letter` validates; any other letter in
    /// front, or any single changed character after it, does not.
    #[test]
    fn upn_check_letter_round_trip(
        digits in "[0-9]{11}",
        last in "[0-9ABCDEFGHJKLMNPQRTUVWXYZ]",
        wrong in "[A-Z]",
        pos in 0usize..11,
        delta in 1u8..10,
    ) {
        let body = format!("{digits}{last}");
        let check = upn_check_letter(&body).expect("well-formed body");
        let upn = format!("{check}{body}");
        let spaced = format!(" {} {} ", upn[..4].to_lowercase(), &upn[4..]);
        let got = canonicalise(Kind::Upn, &spaced, "");
        prop_assert_eq!(got.as_deref(), Ok(upn.as_str()));
        if !wrong.starts_with(check) {
            let bad = format!("{wrong}{body}");
            prop_assert_eq!(canonicalise(Kind::Upn, &bad, ""), Err(Rejection::CheckLetter));
        }
        let mut b = body.into_bytes();
        b[pos] = b'0' + (b[pos] - b'0' + delta) % 10;
        let typo = format!("{check}{}", String::from_utf8(b).expect("ascii"));
        prop_assert_eq!(canonicalise(Kind::Upn, &typo, ""), Err(Rejection::CheckLetter));
    }

    /// A number made with `nhs_check_digit` validates; every other last
    /// digit and every single-digit typo is caught.
    #[test]
    fn nhs_check_digit_round_trip(nine in "[0-9]{9}", pos in 0usize..9, delta in 1u8..10) {
        match nhs_check_digit(nine.as_bytes()) {
            Some(check) => {
                prop_assert!(check <= 9);
                for last in 0..10u8 {
                    let n = format!("{nine}{last}");
                    let got = canonicalise(Kind::NhsNumber, &n, "");
                    if last == check {
                        prop_assert_eq!(got.as_deref(), Ok(n.as_str()));
                    } else {
                        prop_assert_eq!(got, Err(Rejection::CheckDigit));
                    }
                }
                let mut b = format!("{nine}{check}").into_bytes();
                b[pos] = b'0' + (b[pos] - b'0' + delta) % 10;
                let typo = String::from_utf8(b).expect("ascii");
                prop_assert_eq!(canonicalise(Kind::NhsNumber, &typo, ""), Err(Rejection::CheckDigit));
            }
            None => {
                for last in 0..10u8 {
                    let n = format!("{nine}{last}");
                    prop_assert_eq!(canonicalise(Kind::NhsNumber, &n, ""), Err(Rejection::CheckDigit));
                }
            }
        }
    }

    /// The ASCII fast path of person_name agrees with the general path: a
    /// non-ASCII letter that vanishes (a lone combining mark) forces the
    /// general path without changing the answer.
    #[test]
    fn person_name_ascii_fast_path_agrees(name in "[ -~]{0,30}") {
        let fast = canonicalise(Kind::PersonName, &name, "");
        let marked = format!("{name}\u{301}");
        let slow = canonicalise(Kind::PersonName, &marked, "");
        prop_assert_eq!(fast.as_deref(), slow.as_deref());
    }
}
