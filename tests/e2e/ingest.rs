//! `agencylink ingest` and `agencylink lineage`, as an agency and an auditor use them.

use crate::util::{Scratch, run_in};
use crate::validate::synth;

#[test]
fn reingest_is_a_no_op_and_a_correction_replaces() {
    let s = Scratch::new("ingest");
    let (file, injected) = synth(&s, "health.safeguarding_attendance", 300, 4, 0.05);
    let path = file.to_str().expect("path");
    let args = [
        "ingest",
        "--data-dir",
        "d",
        "--agency",
        "nhs-gm-icb",
        "--dataset",
        "health.safeguarding_attendance",
        path,
    ];
    let first = run_in(&s.dir, &args);
    let first_code = if injected > 0 { 1 } else { 0 };
    let first = first.expect_code(first_code).json();
    assert_eq!(first["rows_in"], 300);
    assert_eq!(first["rows_rejected"].as_u64(), Some(injected));
    assert_eq!(first["records_inserted"].as_u64(), Some(300 - injected));
    assert!(
        !std::fs::read_dir(s.path("d/landing"))
            .map(|d| d.flatten().any(|e| e.path().is_file()))
            .unwrap_or(false)
    );
    let again = run_in(&s.dir, &args).expect_code(first_code).json();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["records_inserted"], 0);
    assert_eq!(again["upload_id"], first["upload_id"]);

    // A corrected upload: same records, one row's concern changed.
    let csv = std::fs::read_to_string(&file).expect("read");
    let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "concern")
        .expect("concern column");
    let target = (1..lines.len())
        .find(|&i| lines[i].split(',').nth(col) == Some("neglect"))
        .unwrap_or(1);
    let mut cells: Vec<String> = lines[target].split(',').map(str::to_owned).collect();
    cells[col] = if cells[col] == "self_harm" {
        "other".into()
    } else {
        "self_harm".into()
    };
    lines[target] = cells.join(",");
    let fixed = s.write("fixed.csv", (lines.join("\n") + "\n").as_bytes());
    let mut args2 = args;
    args2[7] = fixed.to_str().expect("path");
    let second = run_in(&s.dir, &args2).json();
    assert_eq!(second["records_inserted"], 0);
    assert!(second["records_replaced"].as_u64().unwrap_or(0) <= 1);
    assert_eq!(
        second["records_unchanged"].as_u64().unwrap_or(0)
            + second["records_replaced"].as_u64().unwrap_or(0),
        second["rows_accepted"].as_u64().unwrap_or(0)
    );
    let verify = run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"])
        .expect_code(0)
        .json();
    assert_eq!(
        verify["events"], 2,
        "two uploads, no event for the duplicate"
    );
    // The correction's replaced record is attributed to the first upload,
    // so both uploads' live counts reconcile exactly.
    assert_eq!(verify["reconciled"]["uploads_exact"], 2, "{verify}");
    assert_eq!(
        verify["reconciled"]["records"].as_u64(),
        first["records_inserted"].as_u64()
    );
}

#[test]
fn records_changed_behind_the_stores_back_are_found() {
    let s = Scratch::new("reconcile");
    run_in(&s.dir, &["demo", "--data-dir", "d", "--rows", "200"]).expect_code(0);
    let ok = run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"])
        .expect_code(0)
        .json();
    let records = ok["reconciled"]["records"].as_u64().expect("records");
    assert_eq!(
        records,
        count(&s.path("d/agencylink.db"), "SELECT count(*) FROM records") as u64
    );
    // Each: a tamper, and what the mismatch must say.
    let tampers = [
        (
            "DELETE FROM records WHERE rowid = (SELECT min(rowid) FROM records)",
            "deleted",
        ),
        (
            "CREATE TEMP TABLE t AS SELECT * FROM records LIMIT 1; \
             UPDATE t SET record_id = record_id || 'x', upload_id = 'u_forged'; \
             INSERT INTO records SELECT * FROM t",
            "no event",
        ),
        (
            "CREATE TEMP TABLE t AS SELECT * FROM records LIMIT 1; \
             UPDATE t SET record_id = record_id || 'x'; \
             INSERT INTO records SELECT * FROM t",
            "added",
        ),
        (
            "UPDATE records SET agency = 'trafford-council' \
             WHERE rowid = (SELECT min(rowid) FROM records WHERE agency <> 'trafford-council')",
            "another agency",
        ),
    ];
    for (sql, says) in tampers {
        let copy = s.path("copy");
        let _ = std::fs::remove_dir_all(&copy);
        std::fs::create_dir_all(&copy).expect("mkdir");
        for f in ["agencylink.db", "key.json"] {
            std::fs::copy(s.path(&format!("d/{f}")), copy.join(f)).expect("copy");
        }
        let _ = std::fs::copy(
            s.path("d/agencylink.db-wal"),
            copy.join("agencylink.db-wal"),
        );
        let conn = rusqlite::Connection::open(copy.join("agencylink.db")).expect("open copy");
        conn.execute_batch(sql).expect("tamper");
        drop(conn);
        let run = run_in(&s.dir, &["lineage", "verify", "--data-dir", "copy"]).expect_code(1);
        let out = run.json();
        assert_eq!(out["ok"], false, "{sql}");
        let mismatches = out["mismatches"].as_array().expect("mismatches");
        assert!(
            mismatches
                .iter()
                .any(|m| m["reason"].as_str().is_some_and(|r| r.contains(says))),
            "{sql}: {out}"
        );
        // The chain itself is intact: only reconciliation can see this.
        assert_eq!(out["events"], ok["events"], "{sql}");
    }
}

#[test]
fn lineage_tampering_is_detected() {
    let s = Scratch::new("tamper");
    run_in(&s.dir, &["demo", "--data-dir", "d", "--rows", "200"]).expect_code(0);
    run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);
    let db = s.path("d/agencylink.db");
    let tampers = [
        "UPDATE lineage SET entry = replace(entry, '\"rows_rejected\":', '\"rows_rejected\":1') WHERE seq = 3",
        "DELETE FROM lineage WHERE seq = 2",
        "UPDATE lineage SET seq = -seq WHERE seq IN (2, 3); UPDATE lineage SET seq = 5 + seq WHERE seq < 0",
    ];
    for sql in tampers {
        let copy = s.path("copy");
        let _ = std::fs::remove_dir_all(&copy);
        std::fs::create_dir_all(&copy).expect("mkdir");
        for f in ["agencylink.db", "key.json"] {
            std::fs::copy(s.path(&format!("d/{f}")), copy.join(f)).expect("copy");
        }
        let _ = std::fs::copy(
            format!("{}-wal", db.display()),
            copy.join("agencylink.db-wal"),
        );
        let conn = rusqlite::Connection::open(copy.join("agencylink.db")).expect("open copy");
        conn.execute_batch(sql).expect("tamper");
        drop(conn);
        let run = run_in(&s.dir, &["lineage", "verify", "--data-dir", "copy"]).expect_code(1);
        assert_eq!(run.json()["ok"], false, "{sql}");
    }
}

fn count(db: &std::path::Path, sql: &str) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open store read-only");
    conn.query_row(sql, [], |r| r.get(0)).unwrap_or(0)
}

#[test]
fn an_ingest_killed_mid_way_then_rerun_leaves_no_duplicate() {
    const ROWS: i64 = 60_000;
    let s = Scratch::new("sigkill");
    let (file, _) = synth(&s, "police.cse_crime", 60_000, 8, 0.0);
    let path = file.to_str().expect("path");
    let args = [
        "ingest",
        "--data-dir",
        "d",
        "--agency",
        "gmp-police",
        "--dataset",
        "police.cse_crime",
        path,
    ];
    let mut child = std::process::Command::new(crate::util::bin())
        .args(args)
        .current_dir(&s.dir)
        .env_remove("AGENCYLINK_KEY")
        .env_remove("AGENCYLINK_KEY_ID")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn ingest");
    let db = s.path("d/agencylink.db");
    let bodies = s.path("d/agencylink.db-bodies");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    // An upload is one transaction: wait until it has appended well into the
    // record bodies file (about a third of the way, ~66 MB in all), then
    // kill it without warning.
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "ingest never started writing"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("ingest finished ({status}) before it could be killed: make the extract bigger");
        }
        if std::fs::metadata(&bodies).is_ok_and(|m| m.len() > 24 << 20) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM lineage"),
        0,
        "no lineage event for a killed ingest"
    );
    // All of the upload or none of it: never a part.
    let partial = count(&db, "SELECT COUNT(*) FROM records");
    assert!(
        partial == 0 || partial == ROWS,
        "killed mid-way: {partial} records"
    );

    let summary = run_in(&s.dir, &args).expect_code(0).json();
    assert_eq!(summary["rows_in"], ROWS);
    assert_eq!(summary["rows_accepted"], ROWS);
    let n = |k: &str| summary[k].as_i64().expect("count");
    assert_eq!(
        n("records_inserted") + n("records_unchanged"),
        ROWS,
        "{summary}"
    );
    assert_eq!(
        n("records_unchanged"),
        partial,
        "what the killed run published is recognised"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM records"), ROWS);
    assert_eq!(
        count(&db, "SELECT COUNT(DISTINCT record_id) FROM records"),
        ROWS
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM id_index"), ROWS);
    // The killed run's bodies were cut off: the file holds exactly the
    // committed ones, and every record's body reads back.
    assert_eq!(
        std::fs::metadata(&bodies).expect("body file").len() as i64,
        count(&db, "SELECT value FROM meta WHERE name = 'bodies_end'")
    );
    assert_eq!(
        count(&db, "SELECT SUM(body_len) FROM records"),
        count(&db, "SELECT value FROM meta WHERE name = 'bodies_end'"),
        "no body written twice"
    );
    let export = run_in(
        &s.dir,
        &[
            "export",
            "--format",
            "ndjson",
            "--data-dir",
            "d",
            "--analyst",
            "test analyst",
            "--purpose",
            "checking a re-run",
        ],
    )
    .expect_code(0);
    assert_eq!(export.stdout.lines().count() as i64, ROWS);
    run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);
    assert!(
        std::fs::read_dir(s.path("d/landing/gmp-police/police.cse_crime"))
            .map_or(true, |mut d| d.next().is_none()),
        "the raw extract is gone after the successful re-run"
    );
}

#[test]
fn planted_cross_agency_people_are_linked_exactly() {
    use std::collections::{HashMap, HashSet};
    let s = Scratch::new("linkage");
    // dataset -> row -> (truth person, linkable)
    let mut truth: HashMap<String, HashMap<i64, (String, bool)>> = HashMap::new();
    for ds in crate::validate::dataset_ids(&s) {
        let (file, _) = synth(&s, &ds, 1500, 17, 0.0);
        let truth_path = s.path(&format!("{ds}-17-0.truth.ndjson"));
        let text = std::fs::read_to_string(&truth_path).expect("truth");
        // Investigations are about no one: no person to link.
        if !text.contains("\"person\"") {
            continue;
        }
        let rows = truth.entry(ds.clone()).or_default();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("truth line");
            if let Some(row) = v["row"].as_i64() {
                let person = v["person"].as_str().expect("person").to_owned();
                rows.insert(row, (person, v["linkable"].as_bool().expect("linkable")));
            }
        }
        let agency = format!("{}-test", ds.split('.').next().expect("agency type"));
        run_in(
            &s.dir,
            &[
                "ingest",
                "--data-dir",
                "d",
                "--agency",
                &agency,
                "--dataset",
                &ds,
                file.to_str().expect("path"),
            ],
        )
        .expect_code(0);
    }
    let conn = rusqlite::Connection::open(s.path("d/agencylink.db")).expect("open");
    let mut stmt = conn
        .prepare("SELECT dataset, row, person_id FROM records")
        .expect("query");
    let rows: Vec<(String, i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(rows.len(), 1500 * truth.len(), "every row merged");
    let mut truth_to_store: HashMap<String, HashSet<String>> = HashMap::new();
    let mut store_to_truth: HashMap<String, HashSet<String>> = HashMap::new();
    let mut unlinkable = 0usize;
    let mut store_people = HashSet::new();
    for (ds, row, person) in &rows {
        store_people.insert(person.clone());
        let (tp, linkable) = truth[ds][row].clone();
        if linkable {
            truth_to_store
                .entry(tp.clone())
                .or_default()
                .insert(person.clone());
            store_to_truth.entry(person.clone()).or_default().insert(tp);
        } else {
            unlinkable += 1;
            store_to_truth
                .entry(person.clone())
                .or_default()
                .insert(format!("unlinkable:{ds}:{row}"));
        }
    }
    for (tp, ps) in &truth_to_store {
        assert_eq!(
            ps.len(),
            1,
            "synthetic person {tp} split across {} store people",
            ps.len()
        );
    }
    for (p, tps) in &store_to_truth {
        assert_eq!(tps.len(), 1, "store person {p} wrongly merges {tps:?}");
    }
    assert_eq!(
        store_people.len(),
        truth_to_store.len() + unlinkable,
        "exact count of people"
    );
    let multi_dataset = truth_to_store
        .keys()
        .filter(|tp| {
            truth
                .values()
                .filter(|rows| rows.values().any(|(p, l)| p == *tp && *l))
                .count()
                >= 3
        })
        .count();
    assert!(
        multi_dataset >= 20,
        "the generator plants people across agencies ({multi_dataset})"
    );
}
