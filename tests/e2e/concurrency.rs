//! Two ingests in separate processes on one data directory at once, with
//! a reader polling the database throughout: both finish, the store is the
//! one a sequential run builds (the same people, the same links), and at no
//! moment does the reader see part of an upload, or records that lineage
//! does not account for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::lifecycle::synth_pair;
use crate::util::{Scratch, bin};

const DS: &str = "council.missing_episode";
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn ingest(s: &Scratch, data: &str, agency: &str, file: &str) -> std::process::Child {
    Command::new(bin())
        .args([
            "ingest",
            "--data-dir",
            data,
            "--agency",
            agency,
            "--dataset",
            DS,
            file,
        ])
        .current_dir(&s.dir)
        .env("AGENCYLINK_KEY", KEY)
        .env("AGENCYLINK_KEY_ID", "test1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ingest")
}

fn wait_ok(child: std::process::Child) {
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// People as sets of record ids: what linkage decided, whatever the ids.
fn partition(data: &Path) -> BTreeSet<BTreeSet<String>> {
    let conn = rusqlite::Connection::open(data.join("agencylink.db")).expect("open");
    let mut by_person: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT person_id, record_id FROM records")
        .expect("query");
    for row in stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .expect("rows")
    {
        let (p, r) = row.expect("row");
        by_person.entry(p).or_default().insert(r);
    }
    by_person.into_values().collect()
}

/// One consistent read (a snapshot): records by upload, and the uploads
/// lineage has an `ingest` event for.
fn snapshot(conn: &mut rusqlite::Connection) -> (BTreeMap<String, i64>, BTreeSet<String>) {
    let tx = conn.transaction().expect("read transaction");
    let mut counts = BTreeMap::new();
    {
        let mut stmt = tx
            .prepare("SELECT upload_id, count(*) FROM records GROUP BY upload_id")
            .expect("query");
        for row in stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .expect("rows")
        {
            let (u, n) = row.expect("row");
            counts.insert(u, n);
        }
    }
    let mut logged = BTreeSet::new();
    {
        let mut stmt = tx
            .prepare(
                "SELECT json_extract(entry, '$.upload_id') FROM lineage WHERE json_extract(entry, '$.type') = 'ingest'",
            )
            .expect("query");
        for row in stmt.query_map([], |r| r.get::<_, String>(0)).expect("rows") {
            logged.insert(row.expect("row"));
        }
    }
    (counts, logged)
}

#[test]
fn two_ingests_at_once_serialise_and_readers_see_whole_uploads() {
    let s = Scratch::new("concurrency");
    synth_pair(&s, "2500", "11");
    // The reference: the same two files one after the other.
    wait_ok(ingest(&s, "seq", "council-a", "pair/a.csv"));
    wait_ok(ingest(&s, "seq", "council-b", "pair/b.csv"));
    let want = partition(&s.path("seq"));
    let final_counts = {
        let mut conn = rusqlite::Connection::open(s.path("seq/agencylink.db")).expect("open");
        snapshot(&mut conn).0
    };

    // A first upload makes the store, so both racers find one.
    std::fs::create_dir_all(s.path("d")).expect("dir");
    let a = ingest(&s, "d", "council-a", "pair/a.csv");
    let b = ingest(&s, "d", "council-b", "pair/b.csv");
    let db = s.path("d/agencylink.db");
    let mut seen = 0;
    let mut verified = 0;
    let (mut a, mut b) = (Some(a), Some(b));
    while a.is_some() || b.is_some() {
        for c in [&mut a, &mut b] {
            if c.as_mut()
                .is_some_and(|p| p.try_wait().ok().flatten().is_some())
            {
                wait_ok(c.take().expect("child"));
            }
        }
        let Ok(mut conn) =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        else {
            continue;
        };
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .expect("busy timeout");
        let Ok(has_tables) = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('records', 'lineage')",
            [],
            |r| r.get::<_, i64>(0),
        ) else {
            continue;
        };
        if has_tables < 2 {
            continue;
        }
        let (counts, logged) = snapshot(&mut conn);
        seen += 1;
        // A reader process too: the auditor's verify, which reconciles
        // records with lineage, while an upload is being merged.
        if seen % 5 == 1 {
            let v = Command::new(bin())
                .args(["lineage", "verify", "--data-dir", "d"])
                .current_dir(&s.dir)
                .output()
                .expect("verify");
            assert_eq!(
                v.status.code(),
                Some(0),
                "verify during an ingest: {}{}",
                String::from_utf8_lossy(&v.stdout),
                String::from_utf8_lossy(&v.stderr)
            );
            verified += 1;
        }
        for (upload, n) in &counts {
            // Whole uploads or none, and never records lineage has not
            // accounted for.
            assert_eq!(
                Some(n),
                final_counts.get(upload),
                "part of {upload} visible"
            );
            assert!(
                logged.contains(upload),
                "{upload}'s records before its lineage event"
            );
        }
    }
    assert!(seen > 0, "the reader never got a look");
    assert!(verified > 0);
    assert_eq!(
        partition(&s.path("d")),
        want,
        "the same people as one after the other"
    );
    let verify = Command::new(bin())
        .args(["lineage", "verify", "--data-dir", "d"])
        .current_dir(&s.dir)
        .output()
        .expect("verify");
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
