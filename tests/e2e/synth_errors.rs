//! `agencylink synth --errors` and `agencylink synth-pair`, as someone
//! building a linkage-quality benchmark uses them.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::util::{Scratch, run_in};

fn truth_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("truth written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("truth line is JSON"))
        .collect()
}

/// Rows whose errors blank a cell (a required field, in these schemas).
fn blanked_rows(truth: &[Value]) -> BTreeSet<u64> {
    truth
        .iter()
        .filter(|t| {
            t["errors"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|e| e["kind"] == "missing_given_name" || e["kind"] == "dob_missing")
            })
        })
        .filter_map(|t| t["row"].as_u64())
        .collect()
}

/// Row numbers the validator reports.
fn rejected_rows(s: &Scratch, dataset: &str, file: &std::path::Path) -> BTreeSet<u64> {
    let run = run_in(
        &s.dir,
        &[
            "validate",
            "--dataset",
            dataset,
            "--report",
            "json",
            file.to_str().expect("path"),
        ],
    );
    run.json()["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["row"].as_u64())
        .collect()
}

#[test]
fn linkage_errors_are_recorded_and_keep_rows_valid() {
    let s = Scratch::new("synth-errors");
    let ds = "council.cin_referral";
    let synth = |errors: Option<&str>, truth: &str| {
        let truth = s.path(truth);
        let mut args = vec![
            "synth",
            "--dataset",
            ds,
            "--rows",
            "1500",
            "--seed",
            "3",
            "--truth",
            truth.to_str().expect("path"),
        ];
        if let Some(e) = errors {
            args.extend(["--errors", e]);
        }
        (run_in(&s.dir, &args).expect_code(0), truth)
    };
    // Given no --errors, --errors none: the same bytes.
    let (plain, _) = synth(None, "plain.ndjson");
    let (none, _) = synth(Some("none"), "none.ndjson");
    assert_eq!(plain.stdout, none.stdout);

    // When the default model is asked for: about 22% of rows, recorded.
    let (with, truth) = synth(Some("default"), "default.ndjson");
    assert_ne!(with.stdout, plain.stdout);
    let truth = truth_lines(&truth);
    let (rows, summary) = truth.split_at(truth.len() - 1);
    let error_rows = rows
        .iter()
        .filter(|t| !t["errors"].as_array().expect("errors").is_empty())
        .count() as u64;
    assert_eq!(summary[0]["summary"]["error_rows"], error_rows);
    assert!((240..=420).contains(&error_rows), "{error_rows} of 1500");
    // Then only blanked cells fail validation.
    let file = s.write("default.csv", with.stdout.as_bytes());
    let rejected = rejected_rows(&s, ds, &file);
    let blanked = blanked_rows(rows);
    assert!(!blanked.is_empty());
    assert!(
        rejected.is_subset(&blanked),
        "rows rejected for something other than a blank: {:?}",
        rejected.difference(&blanked).collect::<Vec<_>>()
    );

    // A RATE scales the model; a bad one is a usage error.
    let (scaled, truth) = synth(Some("0.5"), "half.ndjson");
    assert!(
        scaled.stderr.contains("with linkage errors"),
        "{}",
        scaled.stderr
    );
    let truth = truth_lines(&truth);
    let n = truth.last().expect("summary")["summary"]["error_rows"]
        .as_u64()
        .expect("error_rows");
    assert!((650..=850).contains(&n), "{n} of 1500 at 0.5");
    for bad in ["2", "often"] {
        run_in(
            &s.dir,
            &[
                "synth",
                "--dataset",
                ds,
                "--rows",
                "5",
                "--seed",
                "1",
                "--errors",
                bad,
            ],
        )
        .expect_code(2);
    }
}

#[test]
fn synth_pair_writes_two_agencies_that_link_only_by_name_and_dob() {
    let s = Scratch::new("synth-pair");
    let ds = "council.missing_episode";
    let out = s.path("pair");
    let out_str = out.to_str().expect("path");
    let run = run_in(
        &s.dir,
        &[
            "synth-pair",
            "--dataset",
            ds,
            "--people",
            "1000",
            "--seed",
            "1",
            "--out-dir",
            out_str,
        ],
    )
    .expect_code(0);
    assert!(run.stderr.contains("600 in both files"), "{}", run.stderr);
    let read = |name: &str| std::fs::read(out.join(name)).expect(name);
    let rows = |name: &str| -> Vec<csv::StringRecord> {
        csv::Reader::from_reader(&read(name)[..])
            .records()
            .map(|r| r.expect("row"))
            .collect()
    };
    let (a, b) = (rows("a.csv"), rows("b.csv"));
    assert_eq!((a.len(), b.len()), (800, 800));
    let ta = truth_lines(&out.join("a.truth.ndjson"));
    let tb = truth_lines(&out.join("b.truth.ndjson"));
    let people = |t: &[Value]| -> BTreeSet<String> {
        t[..t.len() - 1]
            .iter()
            .map(|l| l["person"].as_str().expect("person").to_owned())
            .collect()
    };
    let (pa, pb) = (people(&ta), people(&tb));
    assert_eq!((pa.len(), pb.len()), (800, 800), "once per file");
    assert_eq!(pa.intersection(&pb).count(), 600);
    // Record refs (column 0) and child ids (column 1) differ between files.
    for col in [0, 1] {
        let ids = |rows: &[csv::StringRecord]| -> BTreeSet<String> {
            rows.iter().map(|r| r[col].to_owned()).collect()
        };
        assert!(ids(&a).is_disjoint(&ids(&b)), "column {col}");
    }
    // File A is clean and valid; file B fails only where an error blanked a cell.
    run_in(
        &s.dir,
        &[
            "validate",
            "--dataset",
            ds,
            out.join("a.csv").to_str().expect("path"),
        ],
    )
    .expect_code(0);
    let rejected = rejected_rows(&s, ds, &out.join("b.csv"));
    assert!(rejected.is_subset(&blanked_rows(&tb)));
    // The same seed, the same files.
    let again = s.path("again");
    run_in(
        &s.dir,
        &[
            "synth-pair",
            "--dataset",
            ds,
            "--people",
            "1000",
            "--seed",
            "1",
            "--out-dir",
            again.to_str().expect("path"),
        ],
    )
    .expect_code(0);
    for f in ["a.csv", "b.csv", "a.truth.ndjson", "b.truth.ndjson"] {
        assert_eq!(read(f), std::fs::read(again.join(f)).expect(f), "{f}");
    }
}
