//! The upload policy of the embedded store (`DATA_DIR/agencies.json`): the
//! same agency → datasets rule as on AWS, enforced by `ingest`.

use crate::util::{Scratch, ingest_in, run_in};
use crate::validate::synth;

fn lineage_events(s: &Scratch) -> usize {
    run_in(&s.dir, &["lineage", "list", "--data-dir", "d"])
        .expect_code(0)
        .stdout
        .lines()
        .count()
}

#[test]
fn ingest_enforces_the_agency_policy_that_demo_writes() {
    let s = Scratch::new("policy");
    run_in(&s.dir, &["demo", "--data-dir", "d", "--rows", "200"]).expect_code(0);
    let shown = run_in(&s.dir, &["agencies", "--data-dir", "d"]).expect_code(0);
    let policy: serde_json::Value = serde_json::from_str(&shown.stdout).expect("policy JSON");
    let police = policy["gmp-police"].as_array().expect("gmp-police listed");
    assert!(police.iter().any(|d| d == "police.cse_crime"), "{policy}");
    assert!(policy["rochdale-council"].is_array(), "{policy}");

    let (file, _) = synth(&s, "police.cse_crime", 20, 3, 0.0);
    let path = file.to_str().expect("path");
    let before = lineage_events(&s);
    for (agency, words) in [
        (
            "rochdale-council",
            "may not upload dataset `police.cse_crime`",
        ),
        (
            "stranger-agency",
            "`stranger-agency` is not in the configured list",
        ),
    ] {
        let run = ingest_in(&s.dir, "d", agency, "police.cse_crime", path).expect_code(2);
        assert!(run.stderr.contains(words), "{agency}: {}", run.stderr);
        assert!(run.stderr.contains("agencies.json"), "{}", run.stderr);
    }
    assert_eq!(
        lineage_events(&s),
        before,
        "a refused upload changes nothing"
    );
    ingest_in(&s.dir, "d", "gmp-police", "police.cse_crime", path).expect_code(0);
    assert_eq!(lineage_events(&s), before + 1);

    // A policy that is not the documented JSON is an error naming the file.
    std::fs::write(s.path("d/agencies.json"), "[\"gmp-police\"]").expect("write");
    let run = run_in(&s.dir, &["agencies", "--data-dir", "d"]).expect_code(2);
    assert!(run.stderr.contains("agencies.json"), "{}", run.stderr);
}

#[test]
fn without_a_policy_ingest_warns_that_anyone_may_upload() {
    let s = Scratch::new("policy-none");
    let (file, _) = synth(&s, "police.cse_crime", 20, 3, 0.0);
    let run = ingest_in(
        &s.dir,
        "d",
        "rochdale-council",
        "police.cse_crime",
        file.to_str().expect("path"),
    )
    .expect_code(0);
    assert!(
        run.stderr.contains("any agency may upload any dataset"),
        "{}",
        run.stderr
    );
    let none = run_in(&s.dir, &["agencies", "--data-dir", "d"]).expect_code(2);
    assert!(none.stderr.contains("no upload policy"), "{}", none.stderr);
}
