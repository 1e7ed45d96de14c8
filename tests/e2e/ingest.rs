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
    let verify = run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);
    assert_eq!(
        verify.json()["events"],
        2,
        "two uploads, no event for the duplicate"
    );
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
