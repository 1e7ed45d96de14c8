//! Analyst reads (`query person`, `query network`, `export`) and the auditor's
//! views of them (`access-log`, `lineage export --openlineage`), as a police
//! analyst and an auditor use them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::util::{Run, Scratch, run_in};
use crate::validate::{dataset_ids, identifier_values, synth};

const ANALYST: &str = "a.analyst";
const PURPOSE: &str = "Op Kestrel: safeguarding review";

/// Access-log entries a demo leaves: its analyst-edition profile is a read.
const DEMO_READS: usize = 1;

/// A data directory `d` filled by `agencylink demo`.
fn demo(name: &str, rows: u64) -> Scratch {
    let s = Scratch::new(name);
    run_in(
        &s.dir,
        &["demo", "--data-dir", "d", "--rows", &rows.to_string()],
    )
    .expect_code(0);
    s
}

/// `agencylink ARGS --data-dir d --analyst … --purpose …`.
fn read(s: &Scratch, args: &[&str]) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--data-dir",
        "d",
        "--analyst",
        ANALYST,
        "--purpose",
        PURPOSE,
    ]);
    run_in(&s.dir, &all)
}

pub(crate) fn access_log(s: &Scratch, dir: &str) -> Vec<Value> {
    run_in(&s.dir, &["access-log", "--data-dir", dir])
        .expect_code(0)
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("access log line is JSON"))
        .collect()
}

fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON line"))
        .collect()
}

fn export_ndjson(s: &Scratch, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["export", "--format", "ndjson"];
    args.extend_from_slice(extra);
    ndjson(&read(s, &args).expect_code(0).stdout)
}

/// The last access-log entry is exactly this read, chained onto the one before.
fn assert_logged(log: &[Value], action: &str, target: &str, rows: u64) {
    let last = log.last().expect("an access-log entry");
    assert_eq!(last["type"], "read", "{last}");
    assert_eq!(last["analyst"], ANALYST, "{last}");
    assert_eq!(last["purpose"], PURPOSE, "{last}");
    assert_eq!(last["action"], action, "{last}");
    assert_eq!(last["target"], target, "{last}");
    assert_eq!(last["rows_returned"].as_u64(), Some(rows), "{last}");
    assert_eq!(last["seq"].as_u64(), Some(log.len() as u64));
    let prev = log.len().checked_sub(2).map(|i| log[i]["hash"].clone());
    assert_eq!(last["prev_hash"], prev.unwrap_or(Value::Null), "chained");
}

#[test]
fn a_person_known_to_several_agencies_has_one_timeline_and_every_read_is_logged() {
    let s = demo("analyst-query", 300);
    assert_eq!(
        access_log(&s, "d").len(),
        DEMO_READS,
        "no reads yet but the demo's"
    );

    // Given the merged data, an analyst finds a child several agencies know.
    let rows = export_ndjson(&s, &[]);
    let log = access_log(&s, "d");
    assert_eq!(log.len(), DEMO_READS + 1);
    assert_logged(&log, "export", "all", rows.len() as u64);
    let mut agencies: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &rows {
        agencies
            .entry(r["person_id"].as_str().expect("person_id").to_owned())
            .or_default()
            .insert(r["agency"].as_str().expect("agency").to_owned());
    }
    let (person, known_to) = agencies
        .iter()
        .max_by_key(|(p, a)| (a.len(), std::cmp::Reverse(p.as_str())))
        .expect("people");
    assert!(known_to.len() >= 2, "the demo plants cross-agency people");

    // When they ask for the person's timeline…
    let t = read(&s, &["query", "person", person]).expect_code(0).json();
    assert_eq!(t["person_id"], person.as_str());
    assert_eq!(t["resolved_alias"], false);
    let timeline = t["timeline"].as_array().expect("timeline");
    let expected = rows
        .iter()
        .filter(|r| r["person_id"] == person.as_str())
        .count();
    assert_eq!(timeline.len(), expected, "every record of the person");
    let seen: BTreeSet<&str> = timeline
        .iter()
        .map(|r| r["agency"].as_str().expect("agency"))
        .collect();
    assert!(
        seen.len() >= 2,
        "records from two or more agencies: {seen:?}"
    );
    let dates: Vec<&str> = timeline
        .iter()
        .map(|r| r["date"].as_str().expect("date"))
        .collect();
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "by date: {dates:?}");
    for r in timeline {
        for k in ["dataset", "role", "borough", "record_id"] {
            assert!(r.get(k).is_some(), "timeline row has {k}: {r}");
        }
    }
    // …then exactly one more hash-chained entry names them and their purpose.
    let log = access_log(&s, "d");
    assert_eq!(log.len(), DEMO_READS + 2);
    assert_logged(&log, "query_person", person, timeline.len() as u64);

    // A suspect's network: some suspect is in a group-based network.
    let suspects: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r["person_role"] == "suspect" || r["subject_role"] == "suspect")
        .filter_map(|r| r["person_id"].as_str())
        .collect();
    let mut queries = 0;
    let group = suspects.iter().take(15).find_map(|p| {
        queries += 1;
        let n = read(&s, &["query", "network", p]).expect_code(0).json();
        (n["group_based"] == true).then_some(n)
    });
    let n = group.expect("a suspect in a group-based network");
    assert!(n["suspects"].as_u64() >= Some(2) && n["victims"].as_u64() >= Some(1));
    let people = n["people"].as_array().expect("people");
    assert!(people.len() >= 3);
    let ties = n["ties"].as_array().expect("ties");
    assert!(!ties.is_empty());
    for tie in ties {
        assert!(tie["kind"].is_string() && tie["token"].is_string(), "{tie}");
        assert!(tie["people"].as_array().is_some_and(|p| p.len() >= 2));
    }
    let log = access_log(&s, "d");
    assert_eq!(log.len(), DEMO_READS + 2 + queries, "one entry per read");
    assert_logged(
        &log,
        "query_network",
        n["requested"].as_str().expect("requested"),
        people.len() as u64,
    );
    let verify = run_in(&s.dir, &["access-log", "--verify", "--data-dir", "d"]).expect_code(0);
    assert_eq!(verify.json()["entries"].as_u64(), Some(log.len() as u64));
}

#[test]
fn reads_need_an_analyst_and_a_purpose() {
    let s = demo("analyst-purpose", 60);
    let d = ["--data-dir", "d"];
    let cases: [&[&str]; 7] = [
        &["query", "person", "p_aaaa", "--analyst", ANALYST],
        &["query", "person", "p_aaaa", "--purpose", PURPOSE],
        &["query", "network", "p_aaaa", "--analyst", ANALYST],
        &["export", "--format", "csv", "--analyst", ANALYST],
        &[
            "query",
            "person",
            "p_aaaa",
            "--analyst",
            ANALYST,
            "--purpose",
            "",
        ],
        &[
            "query",
            "person",
            "p_aaaa",
            "--analyst",
            ANALYST,
            "--purpose",
            "   ",
        ],
        &[
            "export",
            "--format",
            "ndjson",
            "--analyst",
            " ",
            "--purpose",
            PURPOSE,
        ],
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().chain(&d).copied().collect();
        let run = run_in(&s.dir, &args).expect_code(2);
        assert!(run.stdout.is_empty(), "no data without a purpose: {args:?}");
        assert!(
            run.stderr.contains("analyst") || run.stderr.contains("purpose"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(
        access_log(&s, "d").len(),
        DEMO_READS,
        "refused reads read nothing"
    );
    // A malformed id is refused without echoing what was typed, or a log entry.
    let run = read(&s, &["query", "person", "Jane Smith"]).expect_code(2);
    assert!(!run.stderr.contains("Jane"), "{}", run.stderr);
    assert_eq!(access_log(&s, "d").len(), DEMO_READS);
}

#[test]
fn access_log_tampering_is_detected() {
    let s = demo("analyst-tamper", 100);
    let rows = export_ndjson(&s, &[]);
    let person = rows[0]["person_id"].as_str().expect("person");
    read(&s, &["query", "person", person]).expect_code(0);
    // Looking up an unknown person is a read too (of nothing).
    let miss = read(&s, &["query", "person", "p_zzzzzzzz"]).expect_code(2);
    assert!(miss.stdout.is_empty());
    let log = access_log(&s, "d");
    assert_eq!(log.len(), DEMO_READS + 3);
    assert_logged(&log, "query_person", "p_zzzzzzzz", 0);
    run_in(&s.dir, &["access-log", "--verify", "--data-dir", "d"]).expect_code(0);

    let tampers = [
        "UPDATE access_log SET entry = replace(entry, 'Op Kestrel', 'Op Other') WHERE seq = 2",
        "UPDATE access_log SET entry = replace(entry, '\"rows_returned\":', '\"rows_returned\":1') WHERE seq = 1",
        "DELETE FROM access_log WHERE seq = 1",
        "UPDATE access_log SET seq = -seq WHERE seq IN (2, 3); UPDATE access_log SET seq = 5 + seq WHERE seq < 0",
    ];
    let db = s.path("d/agencylink.db");
    for sql in tampers {
        let copy = s.path("copy");
        let _ = std::fs::remove_dir_all(&copy);
        std::fs::create_dir_all(&copy).expect("mkdir");
        std::fs::copy(&db, copy.join("agencylink.db")).expect("copy db");
        let _ = std::fs::copy(
            format!("{}-wal", db.display()),
            copy.join("agencylink.db-wal"),
        );
        let conn = rusqlite::Connection::open(copy.join("agencylink.db")).expect("open copy");
        conn.execute_batch(sql).expect("tamper");
        drop(conn);
        let run = run_in(&s.dir, &["access-log", "--verify", "--data-dir", "copy"]).expect_code(1);
        assert_eq!(run.json()["ok"], false, "{sql}");
    }
}

#[test]
fn a_read_that_cannot_be_logged_returns_nothing() {
    let s = demo("analyst-nolog", 60);
    let person = export_ndjson(&s, &[])[0]["person_id"]
        .as_str()
        .expect("person")
        .to_owned();
    let conn = rusqlite::Connection::open(s.path("d/agencylink.db")).expect("open");
    conn.execute_batch(
        "CREATE TRIGGER audit_offline BEFORE INSERT ON access_log BEGIN SELECT RAISE(ABORT, 'audit store offline'); END;",
    )
    .expect("trigger");
    drop(conn);
    let out = s.path("out.csv");
    let out_arg = out.to_str().expect("path");
    for args in [
        vec!["query", "person", person.as_str()],
        vec!["query", "network", person.as_str()],
        vec!["export", "--format", "ndjson"],
        vec!["export", "--format", "csv", "--out", out_arg],
    ] {
        let run = read(&s, &args).expect_code(2);
        assert!(
            run.stdout.is_empty(),
            "{args:?} returned data: {}",
            run.stdout
        );
        assert!(run.stderr.contains("access log"), "{}", run.stderr);
    }
    assert!(!out.exists(), "no export file appears");
    let leftovers: Vec<String> = std::fs::read_dir(&s.dir)
        .into_iter()
        .chain(std::fs::read_dir(s.path("d")))
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "staged exports removed: {leftovers:?}"
    );
}

#[test]
fn an_old_person_id_resolves_after_a_later_upload_links_two_people() {
    let s = Scratch::new("analyst-alias");
    let ds = "health.safeguarding_attendance";
    let agency = "nhs-gm-icb";
    let (file, injected) = synth(&s, ds, 40, 5, 0.0);
    assert_eq!(injected, 0);
    let ingest = |path: &std::path::Path| {
        run_in(
            &s.dir,
            &[
                "ingest",
                "--data-dir",
                "d",
                "--agency",
                agency,
                "--dataset",
                ds,
                path.to_str().expect("path"),
            ],
        )
        .expect_code(0)
    };
    ingest(&file);
    // Two rows that belong to two different people.
    let rows = export_ndjson(&s, &["--dataset", ds]);
    let person_of_row: BTreeMap<u64, String> = rows
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().expect("row"),
                r["person_id"].as_str().expect("person").to_owned(),
            )
        })
        .collect();
    let (&row_a, pa) = person_of_row.iter().next().expect("rows");
    let (&row_b, pb) = person_of_row
        .iter()
        .find(|(_, p)| *p != pa)
        .expect("a second person");

    // A later attendance carries A's NHS number with B's name and date of
    // birth: the two records were one child all along.
    let mut rdr = csv::Reader::from_path(&file).expect("read synth csv");
    let header = rdr.headers().expect("header").clone();
    let records: Vec<csv::StringRecord> = rdr.records().map(|r| r.expect("row")).collect();
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let (nhs, reference) = (col("nhs_number"), col("record_ref"));
    let a = &records[usize::try_from(row_a).expect("row") - 1];
    let b = &records[usize::try_from(row_b).expect("row") - 1];
    let bridge: Vec<String> = b
        .iter()
        .enumerate()
        .map(|(i, cell)| match i {
            i if i == nhs => a[nhs].to_owned(),
            i if i == reference => "BRIDGE-0001".to_owned(),
            _ => cell.to_owned(),
        })
        .collect();
    let later = s.path("later.csv");
    let mut w = csv::Writer::from_path(&later).expect("write");
    w.write_record(&header).expect("header");
    w.write_record(&bridge).expect("row");
    w.flush().expect("flush");
    drop(w);
    let summary = ingest(&later).json();
    assert_eq!(summary["people_linked"], 1, "{summary}");

    let (winner, loser) = if pa < pb { (pa, pb) } else { (pb, pa) };
    let t = read(&s, &["query", "person", loser]).expect_code(0).json();
    assert_eq!(t["requested"], loser.as_str());
    assert_eq!(t["person_id"], winner.as_str(), "the old id resolves");
    assert_eq!(t["resolved_alias"], true);
    let expected = person_of_row
        .values()
        .filter(|p| *p == pa || *p == pb)
        .count()
        + 1;
    assert_eq!(
        t["timeline"].as_array().map(Vec::len),
        Some(expected),
        "both people's records and the bridging one"
    );
    let n = read(&s, &["query", "network", loser]).expect_code(0).json();
    assert_eq!(n["person_id"], winner.as_str());
}

#[test]
fn exports_hold_no_raw_identifier_and_csv_agrees_with_ndjson() {
    let s = Scratch::new("analyst-export");
    let mut total = 0;
    for (i, ds) in dataset_ids(&s).iter().enumerate() {
        let (file, injected) = synth(&s, ds, 150, 11 + i as u64, 0.0);
        assert_eq!(injected, 0);
        let csv_in = std::fs::read_to_string(&file).expect("read");
        let values = identifier_values(&s, ds, &csv_in);
        run_in(
            &s.dir,
            &[
                "ingest",
                "--data-dir",
                "d",
                "--agency",
                "test-agency",
                "--dataset",
                ds,
                file.to_str().expect("path"),
            ],
        )
        .expect_code(0);

        let nd = read(&s, &["export", "--format", "ndjson", "--dataset", ds]).expect_code(0);
        let csv_out = read(&s, &["export", "--format", "csv", "--dataset", ds]).expect_code(0);
        for (what, text) in [("ndjson", &nd.stdout), ("csv", &csv_out.stdout)] {
            let scrubbed = crate::util::scrub_base32(text);
            for v in &values {
                if let Some(at) = scrubbed.find(v.as_str()) {
                    let start = at.saturating_sub(60);
                    panic!(
                        "{ds} {what} export repeats an identifier value: ...{}",
                        &scrubbed[start..at + v.len()]
                    );
                }
            }
        }
        let nd_rows = ndjson(&nd.stdout);
        assert_eq!(
            nd_rows.len() as u64,
            crate::validate::data_rows(&file),
            "{ds}"
        );
        total += nd_rows.len();

        let mut rdr = csv::Reader::from_reader(csv_out.stdout.as_bytes());
        let header = rdr.headers().expect("header").clone();
        for c in [
            "record_id",
            "person_id",
            "agency",
            "dataset",
            "upload_id",
            "row",
        ] {
            assert!(header.iter().any(|h| h == c), "{ds}: {c} in {header:?}");
        }
        let id_col = header.iter().position(|h| h == "record_id").expect("id");
        let person_col = header.iter().position(|h| h == "person_id").expect("pid");
        let by_id: BTreeMap<&str, &str> = nd_rows
            .iter()
            .map(|r| {
                (
                    r["record_id"].as_str().expect("id"),
                    r["person_id"].as_str().expect("pid"),
                )
            })
            .collect();
        let mut n = 0;
        for rec in rdr.records() {
            let rec = rec.expect("well-formed CSV");
            assert_eq!(rec.len(), header.len());
            assert_eq!(by_id.get(&rec[id_col]).copied(), Some(&rec[person_col]));
            for cell in &rec {
                assert!(
                    !cell.starts_with(['=', '+', '-', '@']),
                    "{ds}: a cell could run as a formula: {cell}"
                );
            }
            n += 1;
        }
        assert_eq!(n, nd_rows.len(), "{ds}: CSV and NDJSON hold the same rows");
    }
    let out = s.path("everything.csv");
    read(
        &s,
        &[
            "export",
            "--format",
            "csv",
            "--out",
            out.to_str().expect("path"),
        ],
    )
    .expect_code(0);
    let rows = csv::Reader::from_path(&out)
        .expect("open")
        .records()
        .count();
    assert_eq!(rows, total, "an export of every dataset");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "the export file is private");
    }
}

#[test]
fn openlineage_export_is_one_run_event_per_lineage_event() {
    let s = demo("analyst-openlineage", 100);
    let conn = rusqlite::Connection::open(s.path("d/agencylink.db")).expect("open");
    let lineage: Vec<Value> = conn
        .prepare("SELECT entry FROM lineage ORDER BY seq")
        .expect("prepare")
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|e| serde_json::from_str(&e.expect("row")).expect("JSON"))
        .collect();
    drop(conn);
    assert!(!lineage.is_empty());

    let run = run_in(
        &s.dir,
        &["lineage", "export", "--openlineage", "--data-dir", "d"],
    )
    .expect_code(0);
    let events = ndjson(&run.stdout);
    assert_eq!(
        events.len(),
        lineage.len(),
        "one run event per lineage event"
    );
    // The demo ends with its profile build: a run whose outputs are the
    // files it wrote.
    let last = lineage.last().expect("an event");
    assert_eq!(last["type"], "profile_build");
    let ev = events.last().expect("a run");
    assert_eq!(ev["job"]["name"], "profile.analyst");
    assert_eq!(
        ev["outputs"].as_array().map(Vec::len),
        last["files"].as_object().map(|f| f.len())
    );
    assert!(
        ev["outputs"][0]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("local/"))
    );
    for (ev, le) in events.iter().zip(&lineage[..lineage.len() - 1]) {
        let expected_type = if le["type"] == "failure" {
            "FAIL"
        } else {
            "COMPLETE"
        };
        assert_eq!(ev["eventType"], expected_type);
        assert_eq!(ev["eventTime"], le["time"]);
        assert!(
            ev["producer"]
                .as_str()
                .is_some_and(|p| p.starts_with("https://"))
        );
        assert!(
            ev["schemaURL"]
                .as_str()
                .is_some_and(|u| u.ends_with("#/$defs/RunEvent"))
        );
        let run_id = ev["run"]["runId"].as_str().expect("runId");
        let parts: Vec<usize> = run_id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "a UUID: {run_id}");
        assert_eq!(ev["job"]["namespace"], "agencylink");
        assert_eq!(
            ev["job"]["name"],
            format!("ingest.{}", le["dataset"].as_str().expect("dataset"))
        );
        let input = &ev["inputs"][0];
        assert_eq!(input["namespace"], "agencylink");
        assert_eq!(input["name"], le["source"]);
        let fields = input["facets"]["schema"]["fields"]
            .as_array()
            .expect("schema facet");
        assert!(
            !fields.is_empty()
                && fields
                    .iter()
                    .all(|f| f["name"].is_string() && f["type"].is_string())
        );
        let dq = &input["inputFacets"]["dataQualityMetrics"];
        assert_eq!(dq["rowCount"], le["rows_in"]);
        assert_eq!(dq["rejectedRowCount"], le["rows_rejected"]);
        let rejected: u64 = dq["columnMetrics"]
            .as_object()
            .expect("columnMetrics")
            .values()
            .map(|m| m["rejectedCount"].as_u64().unwrap_or(0))
            .sum();
        let logged: u64 = le["rejections"]
            .as_array()
            .expect("rejections")
            .iter()
            .map(|r| r["count"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(rejected, logged, "rejections per field and rule");
        let outputs: Vec<&Value> = ev["outputs"]
            .as_array()
            .expect("outputs")
            .iter()
            .map(|o| &o["name"])
            .collect();
        let expected: Vec<&Value> = le["outputs"].as_array().expect("outputs").iter().collect();
        assert_eq!(outputs, expected);
    }
    let again = run_in(
        &s.dir,
        &["lineage", "export", "--openlineage", "--data-dir", "d"],
    )
    .expect_code(0);
    assert_eq!(again.stdout, run.stdout, "deterministic");
    run_in(&s.dir, &["lineage", "export", "--data-dir", "d"]).expect_code(2);
    assert_eq!(
        access_log(&s, "d").len(),
        DEMO_READS,
        "lineage is not record data"
    );

    // A broken chain is not exported as if it were true.
    let conn = rusqlite::Connection::open(s.path("d/agencylink.db")).expect("open");
    conn.execute_batch("DELETE FROM lineage WHERE seq = 2")
        .expect("tamper");
    drop(conn);
    let broken = run_in(
        &s.dir,
        &["lineage", "export", "--openlineage", "--data-dir", "d"],
    )
    .expect_code(1);
    assert!(broken.stdout.is_empty());
}
