//! The generator's output is pinned: with no linkage errors requested, every
//! dataset's CSV (and its ground truth, once the `errors` field that the
//! error model added is taken out) is byte-for-byte what the generator wrote
//! before it moved out of `agencylink-core` into this crate.
//!
//! The hashes were taken from `agencylink synth --rows 400 --seed 7
//! --invalid-rate 0.1` built at the commit before the move. If one changes,
//! every seeded fixture in the workspace changes: that must be a deliberate
//! decision, with these hashes updated in the same commit.

use agencylink_core::schema::Catalog;
use agencylink_synth::{SynthOptions, write_csv};
use sha2::{Digest, Sha256};

/// `(dataset, sha256 of the CSV, sha256 of the truth without "errors")`.
const PINNED: [(&str, &str, &str); 6] = [
    (
        "council.missing_episode",
        "4c1890da5db840c27cd6d2cf3040338fc8fbf341b36dcdc5e7b0be8952df2ec5",
        "adab6b9ae76e499c9c1e0d72ece8dabbcb34e784b00f11f515552e6029e04235",
    ),
    (
        "police.cse_crime",
        "f1d24702031be6a82663dc9d8c1058a6ccbbd8bdea89cad3ec2c9a451067ac9c",
        "3f4cb9d928b4e59b1c20a184cbaa9cad637016fa9aa4c0f8f56f0ff87d50b601",
    ),
    (
        "health.safeguarding_attendance",
        "3d42ab9334af9266ba688927021181b6797763e664c3ea7c3a7cb1fd79ae5bf0",
        "ca80490edfe89ee55ba3e9aaad4d7e65e7c990bb80c0d11838b26affeab4b3a5",
    ),
    (
        "council.cin_referral",
        "893b7de697b23376a6c6e754cb7bcab7ee9761612f026c9a328c0bb8d405c3a7",
        "43395345cbd02c00c5dc4c1e36336ee3859aa2ad084adaa4e65bc486410941b6",
    ),
    (
        "education.absence",
        "14106c1a0188b4ce1a8b7f5ff9f497cf227a6887f32fc035788204532bda6ed0",
        "8096ece92f2337d68928acb1df10bfdf0fd4ac0623c3f92a5edfe8d392461522",
    ),
    (
        "police.cse_intelligence",
        "01e993e60720d901e0302c2ed148d270a2a8bbe1cd6ee5a53596c4172f1a37b7",
        "d0d5fae5064d450c996a68ef225e5cce7165a7fb5a7eb2924918b9ad539e5a45",
    ),
];

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn output_with_no_errors_is_what_it_was_before_the_move() {
    let cat = Catalog::embedded().expect("schemas");
    for (id, csv_hash, truth_hash) in PINNED {
        let ds = cat.get(id).expect("dataset");
        let opts = SynthOptions {
            invalid_rate: 0.1,
            ..SynthOptions::new(7, 400)
        };
        let (mut csv, mut truth) = (Vec::new(), Vec::new());
        write_csv(ds, &opts, &mut csv, Some(&mut truth)).expect("synth");
        assert_eq!(hex(&csv), csv_hash, "{id}: CSV bytes changed");
        let truth = String::from_utf8(truth).expect("utf-8");
        assert!(
            truth.lines().count() == 401,
            "{id}: one truth line per row and a summary"
        );
        let old_format = truth
            .replace(",\"errors\":[]", "")
            .replace(",\"error_rows\":0", "");
        assert_eq!(
            hex(old_format.as_bytes()),
            truth_hash,
            "{id}: truth changed"
        );
    }
}
