//! `agencylink language check`, as an analyst checks a report and a case
//! worker a CSV of case notes before sharing them.

use crate::util::{Scratch, run_in, run_stdin};

#[test]
fn clean_text_exits_0_and_flagged_text_exits_1_with_json() {
    let s = Scratch::new("language");
    s.write(
        "clean.md",
        b"# Summary\n\nThe child is being sexually exploited. A child cannot consent.\n",
    );
    let run = run_in(&s.dir, &["language", "check", "clean.md"]).expect_code(0);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("no victim-blaming"), "{}", run.stderr);

    s.write(
        "report.html",
        b"<p>She was <em>putting herself</em> at risk.</p>\n<script>var x = 'promiscuous';</script>\n",
    );
    let run = run_in(
        &s.dir,
        &[
            "language",
            "check",
            "--format",
            "json",
            "clean.md",
            "report.html",
        ],
    )
    .expect_code(1);
    let doc = run.json();
    assert_eq!(doc["files"], 2);
    let findings = doc["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{doc:#}");
    let f = &findings[0];
    assert_eq!(f["file"], "report.html");
    assert_eq!(f["id"], "putting-themselves-at-risk");
    assert_eq!(f["line"], 1);
    assert_eq!(f["column"], 16);
    assert_eq!(f["phrase"], "putting herself at risk");
    for key in ["context", "reason", "suggestion", "source"] {
        assert!(
            f[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key} missing: {f:#}"
        );
    }
    assert!(
        f["source"]
            .as_str()
            .unwrap_or("")
            .contains("Children's Society")
    );

    // Human output names file, line and column.
    let run = run_in(&s.dir, &["language", "check", "report.html"]).expect_code(1);
    assert!(
        run.stdout
            .starts_with("report.html:1:16: \"putting herself at risk\""),
        "{}",
        run.stdout
    );

    // Standard input is plain text.
    run_stdin(&s.dir, &["language", "check", "-"], b"He absconded.\n").expect_code(1);
}

#[test]
fn csv_columns_and_bad_input_exit_2() {
    let s = Scratch::new("language-csv");
    s.write(
        "notes.csv",
        b"ref,note\nA1,Seen with her boyfriend aged 31\nA2,Attended school\n",
    );
    let run = run_in(
        &s.dir,
        &[
            "language",
            "check",
            "--format",
            "json",
            "--columns",
            "note",
            "notes.csv",
        ],
    )
    .expect_code(1);
    let doc = run.json();
    assert_eq!(doc["findings"][0]["field"], "note");
    assert_eq!(doc["findings"][0]["line"], 2);
    run_in(
        &s.dir,
        &["language", "check", "--columns", "ref", "notes.csv"],
    )
    .expect_code(0);

    // An unknown column names the columns there are; nothing on stdout.
    let run = run_in(
        &s.dir,
        &["language", "check", "--columns", "notes", "notes.csv"],
    )
    .expect_code(2);
    assert!(
        run.stderr.contains("no column `notes`") && run.stderr.contains("ref, note"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
    // --columns on a file that is not CSV.
    s.write("a.txt", b"fine\n");
    run_in(&s.dir, &["language", "check", "--columns", "note", "a.txt"]).expect_code(2);
    // An unreadable file, even after a file with findings: exit 2, no report.
    let run = run_in(&s.dir, &["language", "check", "notes.csv", "missing.txt"]).expect_code(2);
    assert!(
        run.stderr.contains("cannot read missing.txt"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
    // Not UTF-8.
    s.write("bin.txt", &[0xff, 0xfe, 0x00]);
    run_in(&s.dir, &["language", "check", "bin.txt"]).expect_code(2);
    // A lexicon that breaks the format.
    s.write(
        "lex.json",
        b"{\"format\":\"x\",\"sources\":{},\"entries\":[]}",
    );
    let run = run_in(
        &s.dir,
        &["language", "check", "--lexicon", "lex.json", "a.txt"],
    )
    .expect_code(2);
    assert!(run.stderr.contains("lexicon"), "{}", run.stderr);
    // It needs no data directory: none was made.
    assert!(!s.path("agencylink-data").exists());
}

#[test]
fn a_lexicon_file_overrides_the_built_in_one() {
    let s = Scratch::new("language-lexicon");
    s.write(
        "lex.json",
        br#"{"format":"agencylink-lexicon-v1","sources":{"s":"Local panel, Local terms, 2026"},"entries":[
          {"id":"naughty","patterns":["naughty"],"reason":"r","suggestion":"s","source":"s","example":"He was naughty."}]}"#,
    );
    s.write("a.txt", b"He was naughty. She absconded.\n");
    let run = run_in(
        &s.dir,
        &[
            "language",
            "check",
            "--format",
            "json",
            "--lexicon",
            "lex.json",
            "a.txt",
        ],
    )
    .expect_code(1);
    let doc = run.json();
    assert_eq!(doc["findings"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        doc["findings"][0]["source"],
        "Local panel, Local terms, 2026"
    );
}

/// The demo's profile, built from the real schemas' labels and every
/// section's text, passes: HTML, JSON and every table's CSV.
#[test]
fn the_demo_profile_passes_the_check() {
    let s = Scratch::new("language-demo");
    run_in(&s.dir, &["demo", "--data-dir", "d", "--rows", "300"]).expect_code(0);
    let mut files = vec![
        "d/profile/profile.html".to_owned(),
        "d/profile/profile.json".to_owned(),
    ];
    for entry in std::fs::read_dir(s.path("d/profile")).expect("profile dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".csv") {
            files.push(format!("d/profile/{name}"));
        }
    }
    assert!(files.len() > 10, "{files:?}");
    let mut args = vec!["language", "check"];
    args.extend(files.iter().map(String::as_str));
    run_in(&s.dir, &args).expect_code(0);
}
