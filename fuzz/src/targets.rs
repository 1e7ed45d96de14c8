//! The fuzz targets, as plain functions of the input bytes: the fuzz
//! binary (`fuzz/src/main.rs`, built with cargo-afl) runs one under AFL++,
//! and `crates/core/tests/fuzz_regressions.rs` runs every corpus and
//! regression file through all of them in the ordinary test run. A target
//! fails by panicking: on any input, the code under test must return an
//! error, never panic, and what it writes must hold its contract.

use std::sync::OnceLock;

use agencylink_core::curate::{CurateScratch, Curator, Provenance};
use agencylink_core::linkage::{deletions, nysiis, signature};
use agencylink_core::pseudo::{Key, Pseudonymiser, canonicalise};
use agencylink_core::read::{self, InputFormat};
use agencylink_core::schema::{Catalog, Dataset};
use agencylink_core::validate::RowValidator;

/// A target: runs one input, panics on a failure.
pub(crate) type Target = fn(&[u8]);

/// Every target, by the name the fuzz binary and the corpus use.
pub(crate) const TARGETS: [(&str, Target); 6] = [
    ("csv", csv),
    ("ndjson", ndjson),
    ("canonical", canonical),
    ("schema", schema),
    ("http", http),
    ("names", names),
];

/// Load what the targets share (the schemas, the key).
pub(crate) fn warm() {
    let _ = (catalog(), pseudonymiser());
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog::embedded().expect("embedded schemas"))
}

/// A pseudonymiser under the spec's published test key.
fn pseudonymiser() -> &'static Pseudonymiser {
    static P: OnceLock<Pseudonymiser> = OnceLock::new();
    P.get_or_init(|| {
        Pseudonymiser::new(
            Key::from_base64("k1", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
                .expect("the published test key"),
        )
    })
}

/// The input's first byte picks a dataset, the rest is the extract.
fn dataset_and_rest(data: &[u8]) -> Option<(&'static Dataset, &[u8])> {
    let (&pick, rest) = data.split_first()?;
    let all: Vec<_> = catalog().latest().collect();
    let ds = all.get(usize::from(pick) % all.len())?;
    Some((ds, rest))
}

/// Read, validate and curate every row of an extract: the reader never
/// panics, a row is either curated or rejected with errors, and a curated
/// line is one JSON object.
fn extract(format: InputFormat, data: &[u8]) {
    let Some((ds, input)) = dataset_and_rest(data) else {
        return;
    };
    let validator = RowValidator::new(ds);
    let curator = Curator::new(
        ds,
        pseudonymiser(),
        Provenance {
            agency: "fuzz-agency".into(),
            upload_id: "u_fuzz".into(),
        },
    );
    let mut rows = read::open(format, input, ds);
    let (mut errors, mut scratch) = (Vec::new(), CurateScratch::default());
    while let Some(row) = rows.next_row() {
        let Ok(row) = row else { break };
        errors.clear();
        match curator.check_and_curate(&validator, row, &mut errors, &mut scratch) {
            Some(rec) => {
                assert!(errors.is_empty(), "a curated row has no errors");
                let body: serde_json::Value =
                    serde_json::from_str(rec.body.as_str()).expect("a curated line is JSON");
                assert!(body.is_object(), "a curated line is an object");
            }
            None => assert!(!errors.is_empty(), "a rejected row says why"),
        }
    }
}

/// CSV extracts.
pub(crate) fn csv(data: &[u8]) {
    extract(InputFormat::Csv, data);
}

/// NDJSON extracts.
pub(crate) fn ndjson(data: &[u8]) {
    extract(InputFormat::Ndjson, data);
}

/// Every identifier kind's canonicaliser and token: the first byte picks
/// the kind. Canonicalising is idempotent (but for local references, whose
/// canonical form carries the agency's namespace, and for a phone number
/// whose canonical form begins `0044`), and a value's token is its
/// canonical form's.
///
/// The phone exception is the specification's own: `0044` becomes `0`
/// after one trunk `0` is dropped, so `0044 0 0444004444` canonicalises to
/// `00444004444`, which is 11 digits starting `0` and accepted, and which
/// canonicalises again to `04004444` (too short). Tokens are a byte-exact
/// contract, so the canonicaliser follows the specification (the fuzzer
/// found this: `fuzz/regressions/canonical/`).
pub(crate) fn canonical(data: &[u8]) {
    use agencylink_core::pseudo::Kind;
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(value) = std::str::from_utf8(rest) else {
        return;
    };
    let kind = Kind::ALL[usize::from(pick) % Kind::ALL.len()];
    let Ok(canon) = canonicalise(kind, value, "fuzz-agency") else {
        return;
    };
    let canon = canon.to_string();
    let p = pseudonymiser();
    let token = p
        .pseudonymise(kind, value, "fuzz-agency")
        .expect("a value that canonicalises pseudonymises");
    assert_eq!(
        token,
        p.token(kind, &canon),
        "a value's token is its canonical form's"
    );
    if kind != Kind::LocalRef && !(kind == Kind::Phone && canon.starts_with("0044")) {
        let again = canonicalise(kind, &canon, "fuzz-agency")
            .map(|c| c.to_string())
            .expect("a canonical value canonicalises");
        assert_eq!(again, canon, "canonicalising is idempotent");
    }
}

/// Name and date comparison encodings, on arbitrary text.
pub(crate) fn names(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let (family, given, dob) = (parts.next(), parts.next(), parts.next());
    let _ = nysiis(family.unwrap_or_default());
    let _ = deletions(given.unwrap_or_default());
    // Canonical values in the pipeline; any text here.
    let _ = signature(pseudonymiser(), family, given, dob);
}

/// A dataset schema file: loading one is an error or a dataset, never a
/// panic. Whole files rarely survive mutation as JSON, so an input is also
/// read as a graft onto a real schema: its first line a JSON pointer, the
/// rest the JSON value put there (or, when it is not JSON, that text as a
/// string). That way the loader sees well-formed schemas with one part
/// changed: a field's type, its identifier kind, the required list.
pub(crate) fn schema(data: &[u8]) {
    const BASE: &str = include_str!("../../schemas/police.cse_investigation.v1.schema.json");
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    load_schema(text);
    let (pointer, graft) = text.split_once('\n').unwrap_or((text, ""));
    let graft =
        serde_json::from_str(graft).unwrap_or_else(|_| serde_json::Value::String(graft.to_owned()));
    let mut base: serde_json::Value = serde_json::from_str(BASE).expect("the base schema is JSON");
    let mut at = &mut base;
    for step in pointer.split('/').skip(1) {
        let serde_json::Value::Object(map) = at else {
            return;
        };
        at = map
            .entry(step.to_owned())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
    }
    *at = graft;
    load_schema(&base.to_string());
}

fn load_schema(text: &str) {
    if let Ok(ds) = agencylink_core::schema::Dataset::parse("fuzz.schema.json", text) {
        let _ = ds.versioned_id();
        let _ = ds.fields().len();
        // A schema that loads validates a row: the empty object.
        let validator = RowValidator::new(&ds);
        let mut rows = read::open(InputFormat::Ndjson, &b"{}\n"[..], &ds);
        while let Some(Ok(row)) = rows.next_row() {
            let _ = validator.check(row, &mut Vec::new());
        }
    }
}

/// An HTTP request line as the API sees it: `METHOD PATH?QUERY`. Routing
/// and the query check answer a route or a problem, never panic.
pub(crate) fn http(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let line = text.lines().next().unwrap_or_default();
    let (method, target) = line.split_once(' ').unwrap_or((line, ""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    if let Ok(matched) = agencylink_http::find(method, path) {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let _ = agencylink_http::check_query(matched.route, &get);
    }
}
