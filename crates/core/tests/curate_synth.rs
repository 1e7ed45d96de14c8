//! Curation over synthetic extracts of every dataset (moved out of
//! `curate.rs`'s unit tests when the generator became its own crate: core
//! does not depend on `agencylink-synth`, only its tests do).

use agencylink_core::curate::{CurateScratch, Curator, Provenance};
use agencylink_core::pseudo::{Key, Pseudonymiser};
use agencylink_core::read::{self, InputFormat};
use agencylink_core::schema::{Catalog, Dataset};
use agencylink_core::validate::RowValidator;
use agencylink_synth::{SynthOptions, write_csv};

/// A pseudonymiser under the spec's published test key.
fn pseudonymiser() -> Pseudonymiser {
    Pseudonymiser::new(
        Key::from_base64("k1", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .expect("valid test key"),
    )
}

fn curator<'a>(ds: &'a Dataset, p: &'a Pseudonymiser, upload: &str) -> Curator<'a> {
    Curator::new(
        ds,
        p,
        Provenance {
            agency: "test-agency".into(),
            upload_id: upload.into(),
        },
    )
}

/// Every dataset, with injected mistakes: the one-pass path reports
/// exactly what the validator reports, and a curated body is the JSON
/// `serde_json` would write for it, with match keys and links matching
/// the record's own.
#[test]
fn check_and_curate_agrees_with_check_and_writes_serde_json() {
    let cat = Catalog::embedded().expect("schemas");
    let p = pseudonymiser();
    for ds in cat.latest() {
        let mut csv = Vec::new();
        let opts = SynthOptions {
            invalid_rate: 0.2,
            ..SynthOptions::new(3, 400)
        };
        write_csv(ds, &opts, &mut csv, None).expect("synth");
        let v = RowValidator::new(ds);
        let c = curator(ds, &p, "u_test");
        let mut src = read::open(InputFormat::Csv, csv.as_slice(), ds);
        let (mut scratch, mut fast, mut full) = (CurateScratch::default(), vec![], vec![]);
        let (mut valid, mut invalid) = (0, 0);
        while let Some(row) = src.next_row() {
            let row = row.expect("row");
            fast.clear();
            full.clear();
            let rec = c.check_and_curate(&v, row, &mut fast, &mut scratch);
            assert_eq!(
                rec.is_some(),
                v.check(row, &mut full),
                "{} row {}",
                ds.id,
                row.row
            );
            assert_eq!(fast, full, "{} row {}", ds.id, row.row);
            let Some(rec) = rec else {
                invalid += 1;
                continue;
            };
            valid += 1;
            let body = rec.body.parse().expect("body parses");
            assert_eq!(
                serde_json::to_string(&body).expect("json"),
                rec.body.as_str()
            );
            assert_eq!(body["record_id"], rec.record_id.as_str());
            assert_eq!(body["match_keys"], serde_json::json!(rec.match_keys));
            assert_eq!(body["links"], serde_json::json!(rec.links));
            assert_eq!(body["provenance"]["row"], row.row);
        }
        // 400 rows for a dataset about people; one per covered crime for
        // investigations.
        let rows = valid + invalid;
        assert!(
            valid > rows / 2 && invalid > rows / 20,
            "{}: {valid} valid, {invalid} invalid",
            ds.id
        );
    }
}

#[test]
fn content_follows_the_row_not_provenance() {
    let cat = Catalog::embedded().expect("schemas");
    let ds = cat.get("police.cse_crime").expect("dataset");
    let p = pseudonymiser();
    let mut csv = Vec::new();
    write_csv(ds, &SynthOptions::new(5, 1), &mut csv, None).expect("synth");
    let text = String::from_utf8(csv).expect("utf-8");
    let hash = |text: &str, upload: &str| {
        let mut src = read::open(InputFormat::Csv, text.as_bytes(), ds);
        let row = src.next_row().expect("a row").expect("row");
        curator(ds, &p, upload).curate(row).expect("curates")
    };
    let base = hash(&text, "u_one");
    let again = hash(&text, "u_two");
    assert_eq!(base.body.content(), again.body.content());
    assert_ne!(base.body, again.body, "provenance differs");
    // Change one clear code, then one identifier (the family name).
    let (header, row) = text.split_once('\n').expect("two lines");
    let cols: Vec<&str> = header.split(',').collect();
    let mut cells: Vec<String> = row.trim_end().split(',').map(str::to_owned).collect();
    let at = |name: &str| cols.iter().position(|c| *c == name).expect(name);
    let premises = at("premises_type");
    cells[premises] = if cells[premises] == "other" {
        "hotel"
    } else {
        "other"
    }
    .into();
    let changed_code = hash(&format!("{header}\n{}\n", cells.join(",")), "u_one");
    assert_eq!(changed_code.record_id, base.record_id);
    assert_ne!(changed_code.body.content(), base.body.content());
    let family = at("family_name");
    cells[family] = format!("{}X", cells[family]);
    let changed_name = hash(&format!("{header}\n{}\n", cells.join(",")), "u_one");
    assert_ne!(changed_name.body.content(), changed_code.body.content());
}
