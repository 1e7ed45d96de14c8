//! `police.cse_investigation` end to end: synthetic crimes and the
//! investigations that cover some of their networks, ingested by the real
//! binary into a real store, then the profile's investigation sections: the
//! planted networks no open investigation covers are found exactly, the
//! peer-review window is the flag's, the partner edition keeps counts only,
//! and no operation or crime reference appears in clear anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::util::{Scratch, run_in, run_stdin};

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: Value = serde_json::from_str(&text).expect("profile.json is JSON");
    if let Err(errors) = agencylink_core::profile::validate_json(&v) {
        panic!("{} does not validate:\n{}", p.display(), errors.join("\n"));
    }
    v
}

fn table<'a>(p: &'a Value, id: &str) -> Option<&'a Value> {
    p["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["id"] == id)
}

fn column(t: &Value, id: &str) -> usize {
    t["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .position(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no column {id}"))
}

/// Every file under `dir`, recursively, as bytes.
fn all_files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            all_files(&p, out);
        } else if p.is_file() {
            out.push((p.display().to_string(), std::fs::read(&p).expect("read")));
        }
    }
}

fn profile(s: &Scratch, out: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "profile",
        "--data-dir",
        "d",
        "--from",
        "2024-01-01",
        "--to",
        "2026-12-31",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    run_in(&s.dir, &args).expect_code(0);
    read_json(&s.path(&format!("{out}/profile.json")))
}

#[test]
fn uploaded_investigations_find_the_planted_uncovered_networks_exactly() {
    let s = Scratch::new("investigations");
    // Given the crime extract and the investigations drawn over it,
    let mut truth_of = BTreeMap::new();
    for ds in ["police.cse_crime", "police.cse_investigation"] {
        let truth = s.path(&format!("{ds}.truth.ndjson"));
        let out = run_in(
            &s.dir,
            &[
                "synth",
                "--dataset",
                ds,
                "--rows",
                "3000",
                "--seed",
                "7",
                "--truth",
                truth.to_str().expect("path"),
            ],
        )
        .expect_code(0);
        let csv = s.write(&format!("{ds}.csv"), out.stdout.as_bytes());
        let ingested = run_in(
            &s.dir,
            &[
                "ingest",
                "--data-dir",
                "d",
                "--agency",
                "gmp-police",
                "--dataset",
                ds,
                csv.to_str().expect("path"),
            ],
        )
        .expect_code(0)
        .json();
        assert_eq!(ingested["rows_rejected"], 0, "{ds}: {ingested}");
        truth_of.insert(ds, std::fs::read_to_string(truth).expect("truth"));
    }
    // the ground truth: each crime reference's planted network, and the
    // planted networks left uncovered;
    let crimes_csv = std::fs::read(s.path("police.cse_crime.csv")).expect("csv");
    let mut rdr = csv::Reader::from_reader(crimes_csv.as_slice());
    let col = rdr
        .headers()
        .expect("header")
        .iter()
        .position(|h| h == "crime_ref")
        .expect("crime_ref column");
    let refs: Vec<String> = rdr
        .records()
        .map(|r| r.expect("row")[col].to_owned())
        .collect();
    let mut network_of_ref: BTreeMap<String, String> = BTreeMap::new();
    for (line, reference) in truth_of["police.cse_crime"].lines().zip(&refs) {
        let v: Value = serde_json::from_str(line).expect("truth");
        if let Some(n) = v["network"].as_str() {
            network_of_ref.insert(reference.clone(), n.to_owned());
        }
    }
    let summary: Value = truth_of["police.cse_investigation"]
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v.get("summary").cloned())
        .expect("summary");
    let ids = |k: &str| -> BTreeSet<String> {
        summary[k]
            .as_array()
            .expect("ids")
            .iter()
            .map(|x| x.as_str().expect("id").to_owned())
            .collect()
    };
    let (planted_uncovered, planted_covered) = (ids("networks_uncovered"), ids("networks_covered"));
    assert!(planted_uncovered.len() >= 10 && planted_covered.len() >= 10);
    // and each crime reference's pseudonym, as an analyst would look it up.
    let planted_refs: Vec<&String> = network_of_ref.keys().collect();
    let input = planted_refs
        .iter()
        .map(|r| format!("{r}\n"))
        .collect::<String>();
    let tokens = run_stdin(
        &s.dir,
        &[
            "pseudonymise",
            "--data-dir",
            "d",
            "--kind",
            "local_ref",
            "--agency",
            "gmp-police",
            "-",
        ],
        input.as_bytes(),
    )
    .expect_code(0);
    let planted_of_token: BTreeMap<&str, &str> = tokens
        .stdout
        .lines()
        .zip(&planted_refs)
        .map(|(t, r)| (t, network_of_ref[*r].as_str()))
        .collect();

    // When the analyst edition is built over the whole synthetic period,
    let p = profile(
        &s,
        "p",
        &[
            "--analyst",
            "test analyst",
            "--purpose",
            "checking investigations",
        ],
    );
    assert_eq!(p["thresholds"]["peer_review_days"], 28);
    // each network found is one planted network (by its crimes' pseudonyms),
    let mut planted_of_found: BTreeMap<String, String> = BTreeMap::new();
    for n in p["networks"].as_array().expect("networks") {
        let planted: BTreeSet<&str> = n["ties"]
            .as_array()
            .expect("ties")
            .iter()
            .filter(|t| t["kind"] == "crime")
            .filter_map(|t| planted_of_token.get(t["token"].as_str().expect("token")))
            .copied()
            .collect();
        assert_eq!(planted.len(), 1, "network {} is {planted:?}", n["id"]);
        planted_of_found.insert(
            n["id"].as_str().expect("id").to_owned(),
            planted.into_iter().next().expect("one").to_owned(),
        );
    }
    let all_found: BTreeSet<&String> = planted_of_found.values().collect();
    assert_eq!(
        all_found.len(),
        planted_uncovered.len() + planted_covered.len(),
        "every planted network is found once"
    );
    // then the networks no open investigation covers are exactly the
    // planted uncovered ones.
    let un = table(&p, "uncovered_networks").expect("uncovered_networks");
    let found_uncovered: BTreeSet<String> = un["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| planted_of_found[r[0].as_str().expect("id")].clone())
        .collect();
    assert_eq!(
        un["rows"].as_array().map(Vec::len),
        Some(found_uncovered.len())
    );
    assert_eq!(found_uncovered, planted_uncovered);
    let cov = table(&p, "network_coverage").expect("coverage");
    let total = cov["rows"].as_array().expect("rows").last().expect("total");
    assert_eq!(
        total[column(cov, "uncovered")].as_u64(),
        Some(planted_uncovered.len() as u64)
    );
    assert_eq!(
        total[column(cov, "covered")].as_u64(),
        Some(planted_covered.len() as u64)
    );
    let head = p["headlines"]
        .as_array()
        .expect("headlines")
        .iter()
        .find(|h| h["id"] == "uncovered_networks")
        .expect("headline");
    assert_eq!(head["value"].as_u64(), Some(planted_uncovered.len() as u64));

    // The map and the threat table count every operation of the truth.
    let operations = summary["operations"].as_u64().expect("operations");
    let map = table(&p, "investigation_people").expect("map");
    assert_eq!(
        map["rows"].as_array().map(Vec::len),
        Some(operations as usize)
    );
    let by_threat = table(&p, "investigations_by_threat").expect("by threat");
    let total = by_threat["rows"]
        .as_array()
        .expect("rows")
        .last()
        .expect("total");
    assert_eq!(total[column(by_threat, "total")].as_u64(), Some(operations));
    // Investigations are not people: the crime-only profile's counts stand.
    let vs = table(&p, "victims_suspects").expect("victims");
    assert!(
        p["summary"]
            .as_array()
            .expect("summary")
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.contains("investigations")))
    );
    let overdue = table(&p, "peer_review_overdue").expect("overdue");
    assert!(!overdue["rows"].as_array().expect("rows").is_empty());
    let html = std::fs::read_to_string(s.path("p/profile.html")).expect("html");
    assert!(html.contains("<h3>Investigations</h3>"));
    assert!(html.contains("Victims and suspects per investigation"));

    // An analyst's network query walks the crimes, never onto an
    // investigation: everyone it returns is a victim, suspect or witness.
    // (a covered network: an open investigation shares its crimes)
    let uncovered_ids: BTreeSet<&str> = un["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r[0].as_str().expect("id"))
        .collect();
    let first = planted_of_found
        .keys()
        .find(|id| !uncovered_ids.contains(id.as_str()))
        .expect("a covered network")
        .clone();
    let walked = run_in(
        &s.dir,
        &[
            "query",
            "network",
            &first,
            "--data-dir",
            "d",
            "--analyst",
            "test analyst",
            "--purpose",
            "checking investigations",
        ],
    )
    .expect_code(0)
    .json();
    let people = walked["people"].as_array().expect("people");
    assert!(people.len() >= 3);
    for person in people {
        for role in person["roles"].as_array().expect("roles") {
            assert_ne!(role, "subject", "an investigation in the network: {person}");
        }
    }

    // The whole store charted for i2 or Gephi: its people are exactly the
    // crime records' people, no investigation among them.
    run_in(
        &s.dir,
        &[
            "export",
            "--data-dir",
            "d",
            "--format",
            "graphml",
            "--out",
            "all.graphml",
            "--analyst",
            "test analyst",
            "--purpose",
            "checking investigations",
        ],
    )
    .expect_code(0);
    let xml = std::fs::read_to_string(s.path("all.graphml")).expect("graphml");
    let doc = roxmltree::Document::parse(&xml).expect("GraphML");
    let people_charted = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "node")
        .filter(|n| {
            n.children()
                .any(|d| d.attribute("key") == Some("n_type") && d.text() == Some("person"))
        })
        .count();
    let conn = rusqlite::Connection::open(s.path("d/agencylink.db")).expect("store");
    let crime_people: i64 = conn
        .query_row(
            "SELECT COUNT(DISTINCT person_id) FROM records WHERE dataset = 'police.cse_crime'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert!(crime_people > 100);
    assert_eq!(people_charted as i64, crime_people);

    // A peer-review window as long as the whole period: nothing overdue.
    let long = profile(
        &s,
        "p2",
        &[
            "--analyst",
            "test analyst",
            "--purpose",
            "checking investigations",
            "--peer-review-days",
            "3650",
        ],
    );
    assert_eq!(long["thresholds"]["peer_review_days"], 3650);
    let overdue = table(&long, "peer_review_overdue").expect("overdue");
    assert!(overdue["rows"].as_array().expect("rows").is_empty());
    assert_eq!(table(&long, "victims_suspects"), Some(vs));

    // The partner edition keeps the counts, not the lists or any id.
    let partner = profile(&s, "q", &["--edition", "partner"]);
    for id in [
        "investigation_people",
        "uncovered_networks",
        "peer_review_overdue",
    ] {
        assert!(table(&partner, id).is_none(), "{id} in the partner edition");
    }
    for id in [
        "investigations_by_threat",
        "investigation_kinds",
        "network_coverage",
        "peer_review",
    ] {
        assert!(table(&partner, id).is_some(), "{id} missing");
    }
    let mut files = Vec::new();
    all_files(&s.path("q"), &mut files);
    for (name, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains("local_ref:"), "{name} holds a pseudonym");
    }
    // The profile's own text passes the language check.
    run_in(
        &s.dir,
        &[
            "language",
            "check",
            s.path("p/profile.html").to_str().expect("path"),
            s.path("q/profile.html").to_str().expect("path"),
        ],
    )
    .expect_code(0);

    // No operation, crime or row reference is kept in clear: not in the
    // store, its reports and lineage, nor in any profile.
    let mut files = Vec::new();
    for dir in ["d", "p", "p2", "q"] {
        all_files(&s.path(dir), &mut files);
    }
    // Every reference the extracts hold starts so (synthetic formats):
    // operation, investigation row, crime.
    let investigations_csv =
        std::fs::read_to_string(s.path("police.cse_investigation.csv")).expect("csv");
    assert!(investigations_csv.contains(",OP/20") && investigations_csv.contains("INV/0"));
    for (name, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        for prefix in ["OP/20", "INV/0", "CR/0"] {
            assert!(!text.contains(prefix), "{name} holds a raw reference");
        }
    }
}
