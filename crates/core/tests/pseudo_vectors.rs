//! The `agencylink-pseudo-v1` test vectors, byte for byte.
//!
//! Reads every entry of the fixture (a copy of the spec's vectors file), so
//! a vector added there is checked here without touching this file.

use agencylink_core::pseudo::{Key, Kind, Pseudonymiser, SCHEME, canonicalise};
use serde_json::Value;

const VECTORS: &str = include_str!("fixtures/pseudonymisation-vectors.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).expect("fixture is valid JSON")
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("vector field `{field}` is not a string in {v}"))
}

fn pseudonymiser(v: &Value) -> Pseudonymiser {
    let key =
        Key::from_base64(text(v, "kid"), text(v, "key_base64")).expect("fixture key is valid");
    Pseudonymiser::new(key)
}

#[test]
fn fixture_is_for_this_scheme_and_not_empty() {
    let v = vectors();
    assert_eq!(text(&v, "scheme"), SCHEME);
    let tokens = v["tokens"].as_array().map_or(0, Vec::len);
    let match_keys = v["match_keys"].as_array().map_or(0, Vec::len);
    assert!(
        tokens + match_keys > 40,
        "only {tokens} token and {match_keys} match-key vectors: is the fixture truncated?"
    );
}

#[test]
fn subkey_vector() {
    // Given the fixture key, when deriving K("nhs_number"), then it is the
    // published subkey.
    let v = vectors();
    let p = pseudonymiser(&v);
    let hex: String = p
        .subkey(Kind::NhsNumber)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, text(&v, "subkey_nhs_number_hex"));
}

#[test]
fn token_vectors() {
    let v = vectors();
    let p = pseudonymiser(&v);
    let agency = text(&v, "agency");
    let entries = v["tokens"].as_array().expect("`tokens` is an array");
    let mut failures = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let kind: Kind = text(e, "kind").parse().expect("known kind");
        let input = text(e, "input");
        let got = canonicalise(kind, input, agency);
        let rejected = e["rejected"].as_bool().unwrap_or(false);
        match (rejected, got) {
            (true, Err(_)) => {
                assert!(p.pseudonymise(kind, input, agency).is_err());
            }
            (true, Ok(c)) => {
                failures.push(format!("#{i} {kind} {input:?}: want rejected, got {c:?}"));
            }
            (false, Err(r)) => {
                failures.push(format!("#{i} {kind} {input:?}: rejected ({r})"));
            }
            (false, Ok(c)) => {
                let want_canon = text(e, "canonical");
                let want_token = text(e, "token");
                if c != want_canon {
                    failures.push(format!(
                        "#{i} {kind} {input:?}: canonical {c:?}, want {want_canon:?}"
                    ));
                }
                let token = p.token(kind, &c);
                if token != want_token {
                    failures.push(format!(
                        "#{i} {kind} {input:?}: token {token}, want {want_token}"
                    ));
                }
                assert_eq!(
                    p.pseudonymise(kind, input, agency).as_deref(),
                    Ok(want_token)
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
}

#[test]
fn match_key_vectors() {
    let v = vectors();
    let p = pseudonymiser(&v);
    let agency = text(&v, "agency");
    let canon = |kind: Kind, raw: &str| -> String {
        canonicalise(kind, raw, agency)
            .unwrap_or_else(|r| panic!("{kind} {raw:?} rejected: {r}"))
            .into_owned()
    };
    let entries = v["match_keys"]
        .as_array()
        .expect("`match_keys` is an array");
    assert!(!entries.is_empty());
    for e in entries {
        let inputs: Vec<&str> = e["inputs"]
            .as_array()
            .expect("`inputs` is an array")
            .iter()
            .map(|x| x.as_str().expect("input is a string"))
            .collect();
        let got = match (text(e, "match_key"), inputs.as_slice()) {
            ("mk_nhs", [nhs]) => p.mk_nhs(&canon(Kind::NhsNumber, nhs)),
            ("mk_name_dob", [family, given, dob]) => p.mk_name_dob(
                &canon(Kind::PersonName, family),
                &canon(Kind::PersonName, given),
                &canon(Kind::Date, dob),
            ),
            ("mk_upn", [upn]) => p.mk_upn(upn).expect("fixture UPN is valid"),
            (other, inputs) => panic!("unknown match key {other} with {} inputs", inputs.len()),
        };
        assert_eq!(got, text(e, "token"), "{e}");
    }
}
