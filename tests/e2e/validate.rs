//! `agencylink synth` and `agencylink validate`, as a council data officer uses them.

use crate::util::{Scratch, run_in};

/// Dataset ids as `agencylink datasets` lists them.
pub(crate) fn dataset_ids(s: &Scratch) -> Vec<String> {
    let run = run_in(&s.dir, &["datasets"]).expect_code(0);
    let ids: Vec<String> = run
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    assert!(ids.len() >= 6, "expected the six datasets, got {ids:?}");
    ids
}

/// Generate an extract and return (path, injected invalid rows).
pub(crate) fn synth(
    s: &Scratch,
    dataset: &str,
    rows: u64,
    seed: u64,
    rate: f64,
) -> (std::path::PathBuf, u64) {
    let truth = s.path(&format!("{dataset}-{seed}-{rate}.truth.ndjson"));
    let run = run_in(
        &s.dir,
        &[
            "synth",
            "--dataset",
            dataset,
            "--rows",
            &rows.to_string(),
            "--seed",
            &seed.to_string(),
            "--invalid-rate",
            &rate.to_string(),
            "--truth",
            truth.to_str().expect("utf-8 path"),
        ],
    )
    .expect_code(0);
    let path = s.write(
        &format!("{dataset}-{seed}-{rate}.csv"),
        run.stdout.as_bytes(),
    );
    let truth_text = std::fs::read_to_string(&truth).expect("truth file written");
    let summary: serde_json::Value = truth_text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v.get("summary").cloned())
        .expect("truth ends with a summary line");
    let invalid = summary["invalid_rows"].as_u64().expect("invalid_rows");
    (path, invalid)
}

/// The data rows of a synthetic extract: `--rows` for a dataset about
/// people; a dataset about investigations has one row per crime its
/// investigations cover, drawn over a crime extract of `--rows` rows.
pub(crate) fn data_rows(file: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(file).expect("extract");
    text.lines().count() as u64 - 1
}

#[test]
fn every_dataset_clean_extract_validates() {
    let s = Scratch::new("clean");
    for ds in dataset_ids(&s) {
        let (file, injected) = synth(&s, &ds, 500, 11, 0.0);
        assert_eq!(injected, 0);
        let rows = data_rows(&file);
        let run = run_in(
            &s.dir,
            &[
                "validate",
                "--dataset",
                &ds,
                "--report",
                "json",
                file.to_str().expect("path"),
            ],
        )
        .expect_code(0);
        let report = run.json();
        assert_eq!(report["dataset"], ds.as_str());
        assert_eq!(report["rows"], rows);
        assert_eq!(report["valid_rows"], rows);
        assert_eq!(report["errors"].as_array().map(Vec::len), Some(0));
        let text = run_in(
            &s.dir,
            &["validate", "--dataset", &ds, file.to_str().expect("path")],
        )
        .expect_code(0);
        assert!(
            text.stdout.contains("All rows are valid"),
            "{}",
            text.stdout
        );
    }
}

#[test]
fn injected_mistakes_are_counted_exactly() {
    let s = Scratch::new("invalid");
    for ds in dataset_ids(&s) {
        let (file, injected) = synth(&s, &ds, 1000, 5, 0.1);
        let rows = data_rows(&file);
        // About 10%: within four standard deviations (70 to 130 of 1,000).
        let (mean, sd) = (rows as f64 * 0.1, (rows as f64 * 0.09).sqrt());
        assert!(
            (injected as f64 - mean).abs() <= 4.0 * sd,
            "{ds}: injected {injected} of {rows}"
        );
        let run = run_in(
            &s.dir,
            &[
                "validate",
                "--dataset",
                &ds,
                "--report",
                "json",
                file.to_str().expect("path"),
            ],
        )
        .expect_code(1);
        let report = run.json();
        assert_eq!(report["invalid_rows"].as_u64(), Some(injected), "{ds}");
        assert_eq!(report["valid_rows"].as_u64(), Some(rows - injected), "{ds}");
        for e in report["errors"].as_array().expect("errors") {
            for key in ["row", "line", "field", "pointer", "code", "message"] {
                assert!(e.get(key).is_some(), "{ds}: error lacks {key}: {e}");
            }
            assert!(e["row"].as_u64().expect("row") >= 1);
            assert_eq!(
                e["line"].as_u64(),
                e["row"].as_u64().map(|r| r + 1),
                "one line per row here"
            );
        }
        let text = run_in(
            &s.dir,
            &["validate", "--dataset", &ds, file.to_str().expect("path")],
        )
        .expect_code(1);
        assert!(
            text.stdout.contains(&format!("invalid: {injected}")),
            "{}",
            text.stdout
        );
    }
}

/// `text` without the schema's code meanings (`x-codes`): a message about a
/// bad code lists the allowed codes with their meanings, and a meaning such
/// as "White British" can hold a surname by chance. That text comes from
/// the schema, never the input, so it is blanked before looking for
/// identifier values.
pub(crate) fn without_code_meanings(s: &Scratch, ds: &str, text: &str) -> String {
    let schema = run_in(&s.dir, &["schema", ds]).expect_code(0).json();
    let mut meanings: Vec<String> = schema["properties"]
        .as_object()
        .expect("properties")
        .values()
        .filter_map(|p| p.get("x-codes").and_then(|c| c.as_object()))
        .flat_map(|c| c.values().filter_map(|v| v.as_str().map(str::to_owned)))
        .collect();
    meanings.sort_by_key(|m| std::cmp::Reverse(m.len()));
    let mut out = text.to_owned();
    for m in &meanings {
        out = out.replace(m.as_str(), "…");
    }
    out
}

/// Every value of an identifier column in `csv`, by reading the schema's annotations.
pub(crate) fn identifier_values(s: &Scratch, ds: &str, csv: &str) -> Vec<String> {
    let schema = run_in(&s.dir, &["schema", ds]).expect_code(0).json();
    let props = schema["properties"].as_object().expect("properties");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let id_cols: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            props
                .get(**h)
                .is_some_and(|p| p.get("x-identifier").is_some())
        })
        .map(|(i, _)| i)
        .collect();
    assert!(!id_cols.is_empty(), "{ds} has identifier columns");
    let mut values = Vec::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        for &i in &id_cols {
            if let Some(v) = cells.get(i).map(|c| c.trim().trim_matches('"'))
                && v.chars().count() >= 4
            {
                values.push(v.to_owned());
            }
        }
    }
    values
}

#[test]
fn reports_never_contain_an_identifier_value() {
    let s = Scratch::new("leak");
    for ds in dataset_ids(&s) {
        let (file, injected) = synth(&s, &ds, 600, 23, 0.3);
        let rows = data_rows(&file);
        assert!(injected > rows / 6, "{ds}: {injected} of {rows}");
        let csv = std::fs::read_to_string(&file).expect("read extract");
        let values = identifier_values(&s, &ds, &csv);
        assert!(
            values.len() as u64 > rows,
            "{ds}: found {} identifier values",
            values.len()
        );
        let path = file.to_str().expect("path");
        let json = run_in(
            &s.dir,
            &["validate", "--dataset", &ds, "--report", "json", path],
        )
        .expect_code(1);
        let text = run_in(&s.dir, &["validate", "--dataset", &ds, path]).expect_code(1);
        let (json_out, text_out) = (
            without_code_meanings(&s, &ds, &json.stdout),
            without_code_meanings(&s, &ds, &text.stdout),
        );
        for v in &values {
            for (style, out) in [("json", &json_out), ("text", &text_out)] {
                assert!(
                    !out.contains(v.as_str()),
                    "{ds}: {style} report repeats an identifier value"
                );
            }
        }
    }
}

#[test]
fn bom_and_crlf_are_accepted() {
    let s = Scratch::new("bom");
    let ds = "council.cin_referral";
    let (file, _) = synth(&s, ds, 50, 3, 0.0);
    let csv = std::fs::read_to_string(&file).expect("read");
    let mut bytes = b"\xef\xbb\xbf".to_vec();
    bytes.extend(csv.replace('\n', "\r\n").into_bytes());
    let crlf = s.write("bom-crlf.csv", &bytes);
    let run = run_in(
        &s.dir,
        &[
            "validate",
            "--dataset",
            ds,
            "--report",
            "json",
            crlf.to_str().expect("path"),
        ],
    )
    .expect_code(0);
    assert_eq!(run.json()["valid_rows"], 50);
}

#[test]
fn broken_files_are_file_errors() {
    let s = Scratch::new("broken");
    let ds = "education.absence";
    let (file, _) = synth(&s, ds, 5, 3, 0.0);
    let csv = std::fs::read_to_string(&file).expect("read");
    let header = csv.lines().next().expect("header").to_owned();
    let first = csv.lines().nth(1).expect("row").to_owned();
    let mut latin1 = format!("{header}\n").into_bytes();
    latin1.extend(
        first
            .replacen(',', ",Zo\u{eb}", 1)
            .chars()
            .map(|c| c as u32 as u8),
    );
    latin1.push(b'\n');
    let no_upn = {
        let cols: Vec<&str> = header.split(',').collect();
        let i = cols.iter().position(|c| *c == "upn").expect("upn column");
        let strip = |line: &str| {
            let mut cells: Vec<&str> = line.split(',').collect();
            cells.remove(i);
            cells.join(",")
        };
        format!("{}\n{}\n", strip(&header), strip(&first))
    };
    // An unknown column is named by its position, never by its text.
    let extra_words = format!("column {} of the header", header.split(',').count() + 1);
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("latin1.csv", latin1, "encoding", "UTF-8"),
        (
            "binary.csv",
            b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00".to_vec(),
            "binary",
            "binary",
        ),
        ("empty.csv", Vec::new(), "empty", "empty"),
        (
            "header.csv",
            format!("{header}\r\n").into_bytes(),
            "header_only",
            "no data rows",
        ),
        (
            "missing.csv",
            no_upn.into_bytes(),
            "missing_column",
            "`upn`",
        ),
        (
            "extra.csv",
            format!("{header},notes\n{first},x\n").into_bytes(),
            "unknown_column",
            &extra_words,
        ),
    ];
    for (name, bytes, code, words) in cases {
        let path = s.write(name, &bytes);
        let path = path.to_str().expect("path");
        let run = run_in(
            &s.dir,
            &["validate", "--dataset", ds, "--report", "json", path],
        )
        .expect_code(2);
        let report = run.json();
        let fe = &report["file_errors"];
        assert_eq!(fe.as_array().map(Vec::len), Some(1), "{name}: {fe}");
        assert_eq!(fe[0]["code"], code, "{name}");
        assert!(
            fe[0]["message"].as_str().expect("message").contains(words),
            "{name}: {fe}"
        );
        let text = run_in(&s.dir, &["validate", "--dataset", ds, path]).expect_code(2);
        assert!(
            text.stdout.contains("File problems"),
            "{name}: {}",
            text.stdout
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let s = Scratch::new("usage");
    let f = s.write("x.csv", b"a\n1\n");
    let run = run_in(
        &s.dir,
        &[
            "validate",
            "--dataset",
            "no.such_dataset",
            f.to_str().expect("path"),
        ],
    )
    .expect_code(2);
    assert!(run.stderr.contains("unknown dataset"), "{}", run.stderr);
    run_in(
        &s.dir,
        &[
            "validate",
            "--dataset",
            "education.absence",
            "does-not-exist.csv",
        ],
    )
    .expect_code(2);
    run_in(&s.dir, &["validate"]).expect_code(2);
    let help = run_in(&s.dir, &["validate", "--help"]).expect_code(0);
    assert!(help.stdout.contains("--report"));
}
