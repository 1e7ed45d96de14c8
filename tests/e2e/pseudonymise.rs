//! `agencylink key` and `agencylink pseudonymise`, with the spec's test key.

use crate::util::{Scratch, run_in};
use crate::validate::synth;

const TEST_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn run_keyed(s: &Scratch, args: &[&str]) -> crate::util::Run {
    crate::util::run_env(
        &s.dir,
        args,
        &[("AGENCYLINK_KEY", TEST_KEY), ("AGENCYLINK_KEY_ID", "test1")],
    )
}

#[test]
fn single_values_match_the_spec_vectors() {
    let s = Scratch::new("pseudo-one");
    let run = run_keyed(
        &s,
        &["pseudonymise", "--kind", "nhs_number", "943 476 5919"],
    )
    .expect_code(0);
    assert_eq!(
        run.stdout.trim(),
        "nhs_number:test1:73oq6rdqrv6hqd7nwkwxzfsx6by2kikg"
    );
    let run = run_keyed(
        &s,
        &[
            "pseudonymise",
            "--kind",
            "local_ref",
            "--agency",
            "rochdale-council",
            "  cr/0123/24 ",
        ],
    )
    .expect_code(0);
    assert_eq!(
        run.stdout.trim(),
        "local_ref:test1:6snusqqt6asa5mvex7te3cbkrq36jhtx"
    );
    let run = run_in(
        &s.dir,
        &[
            "pseudonymise",
            "--kind",
            "postcode",
            "--canonical",
            "  bl1   4ab ",
        ],
    )
    .expect_code(0);
    assert_eq!(run.stdout.trim(), "BL1 4AB");
    let run = run_keyed(&s, &["pseudonymise", "--kind", "nhs_number", "9434765918"]).expect_code(1);
    assert!(
        run.stderr.contains("check digit") && !run.stderr.contains("9434765918"),
        "{}",
        run.stderr
    );
    run_keyed(&s, &["pseudonymise", "--kind", "shoe_size", "9"]).expect_code(2);
}

#[test]
fn key_file_is_created_once_and_bad_env_keys_are_refused() {
    let s = Scratch::new("keys");
    let init = run_in(&s.dir, &["key", "init", "--data-dir", "d"]).expect_code(0);
    let kid = init.stdout.trim().to_owned();
    assert!(!kid.is_empty() && kid.len() <= 16);
    let id = run_in(&s.dir, &["key", "id", "--data-dir", "d"]).expect_code(0);
    assert_eq!(id.stdout.trim(), kid);
    run_in(&s.dir, &["key", "init", "--data-dir", "d"]).expect_code(2);
    let short = crate::util::run_env(
        &s.dir,
        &["key", "id"],
        &[("AGENCYLINK_KEY", "c2hvcnQ="), ("AGENCYLINK_KEY_ID", "k1")],
    )
    .expect_code(2);
    assert!(
        short.stderr.contains("32 bytes") && !short.stderr.contains("c2hvcnQ="),
        "{}",
        short.stderr
    );
    let bad_id = crate::util::run_env(
        &s.dir,
        &["key", "id"],
        &[
            ("AGENCYLINK_KEY", TEST_KEY),
            ("AGENCYLINK_KEY_ID", "Not Valid"),
        ],
    )
    .expect_code(2);
    assert!(bad_id.stderr.contains("key id"), "{}", bad_id.stderr);
}

#[test]
fn curated_output_holds_no_raw_identifier() {
    let s = Scratch::new("pseudo-file");
    for ds in [
        "health.safeguarding_attendance",
        "police.cse_crime",
        "council.cin_referral",
        "education.absence",
    ] {
        let (file, injected) = synth(&s, ds, 400, 9, 0.1);
        let csv = std::fs::read_to_string(&file).expect("read");
        let values = crate::validate::identifier_values(&s, ds, &csv);
        let run = run_keyed(
            &s,
            &[
                "pseudonymise",
                "--dataset",
                ds,
                "--agency",
                "test-agency",
                file.to_str().expect("path"),
            ],
        )
        .expect_code(1);
        let curated: Vec<serde_json::Value> = run
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("curated NDJSON"))
            .collect();
        assert_eq!(curated.len() as u64, 400 - injected, "{ds}");
        // Tokens and ids are long base32 runs that can contain a short name by
        // chance ("ryan"); blank them before looking for raw values.
        let scrubbed = crate::util::scrub_base32(&run.stdout);
        let stderr = crate::validate::without_code_meanings(&s, ds, &run.stderr);
        for v in &values {
            if let Some(at) = scrubbed.find(v.as_str()) {
                let start = at.saturating_sub(60);
                panic!(
                    "{ds}: curated output repeats an identifier value: ...{}",
                    &scrubbed[start..at + v.len()]
                );
            }
            assert!(
                !stderr.contains(v.as_str()),
                "{ds}: rejection report repeats an identifier value"
            );
        }
        let first = &curated[0];
        assert!(
            first["record_id"]
                .as_str()
                .is_some_and(|r| r.starts_with("r_"))
        );
        assert!(
            first["match_keys"]
                .as_array()
                .is_some_and(|m| !m.is_empty()),
            "{ds}: {first}"
        );
        assert_eq!(first["provenance"]["key_id"], "test1");
        assert_eq!(first["provenance"]["scheme"], "agencylink-pseudo-v1");
    }
}
