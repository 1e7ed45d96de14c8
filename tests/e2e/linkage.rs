//! Probabilistic linkage as analysts use it: two councils' extracts of the
//! same children, the second with realistic errors; links by score, the
//! review queue, decisions in the access log, retraining in lineage, the
//! profile's linkage note, and no raw identifier in anything printed.

use std::collections::HashSet;

use crate::util::{Scratch, run_in, scrub_base32};

const DS: &str = "council.missing_episode";

/// Every family name, given name and date of birth written in the extracts
/// (canonical-ish: lower case), to scan outputs for.
fn raw_values(s: &Scratch) -> HashSet<String> {
    let mut out = HashSet::new();
    for f in ["pair/a.csv", "pair/b.csv"] {
        let mut rdr = csv::Reader::from_path(s.path(f)).expect("csv");
        let headers = rdr.headers().expect("headers").clone();
        for rec in rdr.records() {
            let rec = rec.expect("row");
            for (h, v) in headers.iter().zip(rec.iter()) {
                if matches!(h, "family_name" | "given_name" | "dob") && v.len() >= 4 {
                    out.insert(v.to_lowercase());
                }
            }
        }
    }
    out
}

/// Each row's date of birth and its "given family" name, lower case.
fn raw_pairs(s: &Scratch) -> HashSet<String> {
    let mut out = HashSet::new();
    for f in ["pair/a.csv", "pair/b.csv"] {
        let mut rdr = csv::Reader::from_path(s.path(f)).expect("csv");
        let headers = rdr.headers().expect("headers").clone();
        let col = |n: &str| headers.iter().position(|h| h == n).expect("column");
        let (fam, giv, dob) = (col("family_name"), col("given_name"), col("dob"));
        for rec in rdr.records() {
            let rec = rec.expect("row");
            if rec[dob].len() >= 8 {
                out.insert(rec[dob].to_lowercase());
            }
            if !rec[giv].is_empty() && !rec[fam].is_empty() {
                out.insert(format!(
                    "{} {}",
                    rec[giv].to_lowercase(),
                    rec[fam].to_lowercase()
                ));
            }
        }
    }
    out
}

fn assert_no_raw(raw: &HashSet<String>, what: &str, text: &str) {
    // Tokens and ids are long base32 runs that a short name can hide in,
    // and a name can hide inside an English word ("review"): compare whole
    // words only.
    let words: String = scrub_base32(text)
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "/'-".contains(c) {
                c
            } else {
                ' '
            }
        })
        .collect();
    let lower = format!(
        " {} ",
        words.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    for v in raw {
        let v = format!(" {v} ");
        // The value itself is not printed: it would end up in CI logs.
        assert!(
            !lower.contains(v.as_str()),
            "{what} contains a raw value ({} characters)",
            v.len() - 2
        );
    }
}

fn reader() -> [&'static str; 4] {
    ["--analyst", "a.analyst", "--purpose", "Linkage review test"]
}

#[test]
fn linkage_review_decisions_and_retraining_work_end_to_end() {
    let s = Scratch::new("linkage");
    run_in(
        &s.dir,
        &[
            "synth-pair",
            "--dataset",
            DS,
            "--people",
            "1500",
            "--seed",
            "3",
            "--out-dir",
            "pair",
        ],
    )
    .expect_code(0);
    let raw = raw_values(&s);
    let ingest = |agency: &str, file: &str| {
        run_in(
            &s.dir,
            &[
                "ingest",
                "--data-dir",
                "d",
                "--agency",
                agency,
                "--dataset",
                DS,
                file,
            ],
        )
        .expect_code(0)
    };
    ingest("council-a", "pair/a.csv");
    let b = ingest("council-b", "pair/b.csv");
    let summary = b.json();
    assert_no_raw(&raw, "the ingest summary", &b.stdout);
    assert_no_raw(&raw, "ingest's notes", &b.stderr);
    let linkage = &summary["linkage"];
    assert!(
        linkage["linked_by_score"].as_u64().expect("count") > 50,
        "{summary}"
    );
    assert_eq!(summary["linkage_model"], 0, "the built-in model scored");
    assert!(linkage["pairs_compared"].as_u64().expect("count") > 0);

    // The linkage index holds codes only: no value of the extracts.
    let conn = rusqlite::Connection::open(s.path("d/agencylink.db")).expect("open");
    let mut dump = String::new();
    for sql in [
        "SELECT id || ' ' || codes FROM link_signature",
        "SELECT block || ' ' || sig FROM link_block",
        "SELECT sig || ' ' || person_id || ' ' || record_id FROM link_signature_person",
        "SELECT item FROM link_review",
    ] {
        let mut stmt = conn.prepare(sql).expect("query");
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("rows");
        for r in rows {
            dump.push_str(&r.expect("row"));
            dump.push('\n');
        }
    }
    assert!(dump.len() > 10_000, "the index was written");
    assert_no_raw(&raw, "the linkage index", &dump);

    // The queue, as an analyst reads it.
    let mut args = vec!["review", "list", "--data-dir", "d"];
    args.extend(reader());
    let list = run_in(&s.dir, &args).expect_code(0);
    assert_no_raw(&raw, "review list", &list.stdout);
    let items: Vec<serde_json::Value> = list
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("item"))
        .collect();
    assert!(items.len() >= 2, "a queue to review: {}", list.stdout);
    for w in items.windows(2) {
        assert!(w[0]["probability"].as_f64() >= w[1]["probability"].as_f64());
    }
    let first = items[0]["id"].as_str().expect("id").to_owned();
    let second = items[1]["id"].as_str().expect("id").to_owned();

    let mut args = vec!["review", "show", &first, "--data-dir", "d"];
    args.extend(reader());
    let show = run_in(&s.dir, &args).expect_code(0);
    assert_no_raw(&raw, "review show", &show.stdout);
    let detail = show.json();
    assert_eq!(
        detail["item"]["agreement"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(detail["sides"].as_array().map(Vec::len), Some(2));
    for side in detail["sides"].as_array().expect("sides") {
        assert_eq!(side["record"]["dataset"], DS);
    }
    let people = |d: &serde_json::Value| {
        (
            d["sides"][0]["person_now"].as_str().expect("p").to_owned(),
            d["sides"][1]["person_now"].as_str().expect("p").to_owned(),
        )
    };
    let (p1, p2) = people(&detail);
    assert_ne!(p1, p2, "a waiting pair is two people");

    // A match merges the two people; a non-match keeps the other pair apart.
    let mut args = vec![
        "review",
        "decide",
        &first,
        "--match",
        "--reason",
        "same placement",
        "--data-dir",
        "d",
    ];
    args.extend(reader());
    let decided = run_in(&s.dir, &args).expect_code(0).json();
    assert_eq!(decided["status"], "match");
    let mut args = vec![
        "review",
        "decide",
        &second,
        "--non-match",
        "--reason",
        "different schools",
        "--data-dir",
        "d",
    ];
    args.extend(reader());
    run_in(&s.dir, &args).expect_code(0);
    let mut args = vec!["query", "person", &p2, "--data-dir", "d"];
    args.extend(reader());
    let merged = run_in(&s.dir, &args).expect_code(0).json();
    let winner = p1.clone().min(p2.clone());
    assert_eq!(merged["person_id"], winner.as_str(), "{merged}");

    // A decision with no reason, or on no item, is refused.
    let mut args = vec![
        "review",
        "decide",
        &second,
        "--match",
        "--reason",
        " ",
        "--data-dir",
        "d",
    ];
    args.extend(reader());
    run_in(&s.dir, &args).expect_code(2);
    let mut args = vec![
        "review",
        "decide",
        "rv_nope",
        "--match",
        "--reason",
        "x",
        "--data-dir",
        "d",
    ];
    args.extend(reader());
    run_in(&s.dir, &args).expect_code(2);

    // The access log holds each read and each decision (not its reason).
    let log = run_in(&s.dir, &["access-log", "--data-dir", "d"]).expect_code(0);
    let decisions: Vec<serde_json::Value> = log
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("entry"))
        .filter(|e| e["type"] == "review_decision")
        .collect();
    assert_eq!(decisions.len(), 2);
    assert_eq!(decisions[0]["target"], first.as_str());
    assert_eq!(decisions[0]["decision"], "match");
    assert!(!log.stdout.contains("same placement"));
    run_in(&s.dir, &["access-log", "--verify", "--data-dir", "d"]).expect_code(0);

    // Retraining is recorded in lineage, and decisions stand after it and
    // after the same extract is sent again.
    let trained = run_in(&s.dir, &["link", "train", "--data-dir", "d"]).expect_code(0);
    assert_eq!(trained.json()["version"], 1);
    assert_no_raw(&raw, "link train", &trained.stdout);
    let lineage = run_in(&s.dir, &["lineage", "list", "--data-dir", "d"]).expect_code(0);
    assert!(lineage.stdout.contains("link_train"), "{}", lineage.stdout);
    run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);
    ingest("council-b", "pair/b.csv");
    let mut args = vec!["review", "list", "--status", "decided", "--data-dir", "d"];
    args.extend(reader());
    let decided = run_in(&s.dir, &args).expect_code(0);
    let statuses: Vec<(String, String)> = decided
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("item");
            (
                v["id"].as_str().expect("id").to_owned(),
                v["status"].as_str().expect("status").to_owned(),
            )
        })
        .collect();
    assert!(statuses.contains(&(first.clone(), "match".into())));
    assert!(statuses.contains(&(second.clone(), "non-match".into())));

    // The profile says how people were linked.
    run_in(
        &s.dir,
        &[
            "profile",
            "--data-dir",
            "d",
            "--out",
            "prof",
            "--edition",
            "partner",
        ],
    )
    .expect_code(0);
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("prof/profile.json")).expect("json"))
            .expect("profile");
    let note = profile["method"]
        .as_array()
        .expect("method")
        .iter()
        .find(|n| n["topic"] == "Linkage")
        .expect("a linkage note");
    let text = note["text"].as_str().expect("text");
    assert!(text.contains("model version 1"), "{text}");
    assert!(text.contains("from scores"), "{text}");
    assert!(
        text.contains("1 were decided to be different people"),
        "{text}"
    );
    // Profile prose has words that are also surnames (White, Green, Bury):
    // scan it for dates of birth and for whole names (given and family).
    let specific: HashSet<String> = raw_pairs(&s);
    assert_no_raw(&specific, "the profile", &profile.to_string());
}
