//! The comparison-encoding vectors of `docs/comparison-encodings.md`
//! (computed by an independent implementation: Python's `hmac`), checked
//! against this implementation under the published test key.

use agencylink_core::linkage::{nysiis, signature};
use agencylink_core::pseudo::{Key, Pseudonymiser};

fn vectors() -> serde_json::Value {
    let text = include_str!("../../../docs/comparison-encodings-vectors.json");
    serde_json::from_str(text).expect("vectors are JSON")
}

fn pseudonymiser(v: &serde_json::Value) -> Pseudonymiser {
    let key = Key::from_base64(
        v["kid"].as_str().expect("kid"),
        v["key_base64"].as_str().expect("key"),
    )
    .expect("test key");
    Pseudonymiser::new(key)
}

#[test]
fn every_code_vector_matches() {
    let v = vectors();
    let p = pseudonymiser(&v);
    let codes = v["codes"].as_array().expect("codes");
    assert!(codes.len() >= 10);
    for c in codes {
        let message = c["message"].as_str().expect("message");
        let mut out = String::new();
        p.compare_code_into(&[message.as_bytes()], &mut out);
        assert_eq!(out, c["code"].as_str().expect("code"), "{message}");
    }
}

#[test]
fn every_nysiis_vector_matches() {
    for pair in vectors()["nysiis"].as_array().expect("nysiis") {
        let (name, want) = (
            pair[0].as_str().expect("name"),
            pair[1].as_str().expect("key"),
        );
        assert_eq!(nysiis(name).as_deref(), Some(want), "{name}");
    }
}

#[test]
fn a_signature_is_built_from_the_vector_codes() {
    let v = vectors();
    let p = pseudonymiser(&v);
    let code = |m: &str| {
        v["codes"]
            .as_array()
            .expect("codes")
            .iter()
            .find(|c| c["message"] == m)
            .and_then(|c| c["code"].as_str())
            .expect("vector")
            .to_owned()
    };
    let s = signature(&p, Some("smith"), Some("katherine"), Some("2010-03-07")).expect("sig");
    let f = s.f.as_ref().expect("family");
    assert_eq!(f.x, code("nx|smith"));
    assert!(f.d.contains(&code("nx|smth")), "one-deletion code");
    assert_eq!(f.p.as_deref(), Some(code("np|SNAT").as_str()));
    let g = s.g.as_ref().expect("given");
    assert_eq!(g.x, code("nx|katherine"));
    assert_eq!(g.r, vec![code("nr|catherine")]);
    assert_eq!(g.i.as_deref(), Some(code("gi|k|smith").as_str()));
    let d = s.d.as_ref().expect("dob");
    assert_eq!(d.x, code("dx|2010-03-07"));
    assert_eq!(d.s.as_deref(), Some(code("dx|2010-07-03").as_str()));
    assert_eq!(d.ym, code("dym|2010-03"));
    assert_eq!(d.yd, code("dyd|2010-07"));
    assert_eq!(d.md, code("dmd|03-07"));
    assert!(s.b.contains(&code("b1|SNAT|2010")), "blocking key b1");
    // No raw value appears anywhere in what the index stores.
    let stored = serde_json::to_string(&s).expect("json");
    for raw in ["smith", "katherine", "2010", "SNAT"] {
        assert!(
            !stored.to_lowercase().contains(&raw.to_lowercase()),
            "{raw}"
        );
    }
}

/// Keyed labels (`Pseudonymiser::label`, `K("label")`), computed with
/// Python's `hmac` under the same published test key.
#[test]
fn keyed_labels_match_an_independent_implementation() {
    let p = pseudonymiser(&vectors());
    assert_eq!(
        p.label("landing", b"smith_referral.csv"),
        "yjxnjtscb7qwcjo3"
    );
    assert_eq!(
        p.label(
            "landing",
            b"landing/rochdale-council/council.missing_episode/Jane Doe 2014-03-01.csv"
        ),
        "2mod7qszwfyzrosh"
    );
}
