//! A key rotation end to end on the embedded store: records under key 1,
//! rotate, agencies re-send (under key 1, recorded under both), migrate:
//! every person id kept, nothing with a translation left under key 1, the
//! old key refused; the records nobody re-sent move when their agency
//! sends them again, and then the old key and the translations are gone.

use std::collections::{BTreeMap, BTreeSet};

use crate::lifecycle::{count, rows, synth_pair};
use crate::util::{Scratch, ingest_in, run_env, run_in};

const DS: &str = "council.missing_episode";

/// (upload, row) → person: what a migration must keep.
fn people(s: &Scratch) -> BTreeMap<(String, u64), String> {
    rows(&s.path("d"))
        .into_iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body).expect("body");
            let row = body["provenance"]["row"].as_u64().expect("row");
            ((r.upload_id, row), r.person_id)
        })
        .collect()
}

/// Records some of whose tokens are under key `kid`.
fn under(s: &Scratch, kid: &str) -> usize {
    let needle = format!(":{kid}:");
    rows(&s.path("d"))
        .iter()
        .filter(|r| r.tokens.iter().any(|t| t.contains(&needle)) || r.body.contains(&needle))
        .count()
}

#[test]
fn a_rotation_keeps_people_and_leaves_nothing_translatable_under_the_old_key() {
    let s = Scratch::new("rotation");
    synth_pair(&s, "80", "7");
    for (agency, file) in [("council-a", "pair/a.csv"), ("council-b", "pair/b.csv")] {
        ingest_in(&s.dir, "d", agency, DS, file).expect_code(0);
    }
    let before = people(&s);
    let total = before.len();
    assert!(total > 100, "{total} records");
    let old = run_in(&s.dir, &["key", "id", "--data-dir", "d"]).expect_code(0);
    let old = old.stdout.trim().to_owned();

    let opened = run_in(&s.dir, &["key", "rotate", "--data-dir", "d"])
        .expect_code(0)
        .json();
    assert_eq!(opened["from_key_id"], old.as_str());
    let new = opened["to_key_id"].as_str().expect("new id").to_owned();
    assert_ne!(new, old);
    assert!(s.path("d/key.next.json").is_file());
    run_in(&s.dir, &["key", "rotate", "--data-dir", "d"]).expect_code(2);
    let status = run_in(&s.dir, &["key", "status", "--data-dir", "d"])
        .expect_code(0)
        .json();
    assert_eq!(status["rotation"]["phase"], "open");

    // council-a re-sends all but its last 5 rows; council-b re-sends its
    // file unchanged (a duplicate, still read under both keys).
    let a = std::fs::read_to_string(s.path("pair/a.csv")).expect("a.csv");
    let lines: Vec<&str> = a.lines().collect();
    let kept = lines[..lines.len() - 5].join("\n") + "\n";
    s.write("pair/a-most.csv", kept.as_bytes());
    ingest_in(&s.dir, "d", "council-a", DS, "pair/a-most.csv").expect_code(0);
    let dup = ingest_in(&s.dir, "d", "council-b", DS, "pair/b.csv").expect_code(0);
    assert_eq!(dup.json()["duplicate"], true);
    assert!(count(&s.path("d"), "SELECT count(*) FROM key_translation") > 0);

    let migrated = run_in(&s.dir, &["key", "migrate", "--data-dir", "d"])
        .expect_code(0)
        .json();
    assert_eq!(migrated["records_migrated"], (total - 5) as u64);
    assert_eq!(migrated["records_untranslated"], 5);
    assert_eq!(migrated["complete"], false);
    assert_eq!(people(&s), before, "every person id is kept");
    assert_eq!(under(&s, &old), 5, "only what nobody re-sent");
    assert_eq!(under(&s, &new), total - 5);
    assert!(s.path("d/key.previous.json").is_file());
    assert!(!s.path("d/key.next.json").exists());
    let id = run_in(&s.dir, &["key", "id", "--data-dir", "d"]).expect_code(0);
    assert_eq!(id.stdout.trim(), new);
    run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);

    // The old key is refused from now on, naming both ids.
    let key1 = std::fs::read_to_string(s.path("d/key.previous.json")).expect("old key");
    let key1: serde_json::Value = serde_json::from_str(&key1).expect("json");
    let refused = run_env(
        &s.dir,
        &[
            "ingest",
            "--data-dir",
            "d",
            "--agency",
            "council-a",
            "--dataset",
            DS,
            "pair/a.csv",
        ],
        &[
            ("AGENCYLINK_KEY", key1["key"].as_str().expect("key")),
            ("AGENCYLINK_KEY_ID", &old),
        ],
    )
    .expect_code(2);
    assert!(
        refused.stderr.contains(&old) && refused.stderr.contains(&new),
        "{}",
        refused.stderr
    );

    // council-a sends its whole file again: the 5 move first, so nothing
    // is duplicated, and with none left the rotation ends.
    ingest_in(&s.dir, "d", "council-a", DS, "pair/a.csv").expect_code(0);
    assert_eq!(people(&s).len(), total);
    assert_eq!(under(&s, &old), 0);
    assert!(
        !s.path("d/key.previous.json").exists(),
        "the old key is deleted"
    );
    assert_eq!(
        count(&s.path("d"), "SELECT count(*) FROM key_translation"),
        0
    );
    let status = run_in(&s.dir, &["key", "status", "--data-dir", "d"])
        .expect_code(0)
        .json();
    assert!(status["rotation"].is_null());
    let verify = run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);
    assert!(verify.stdout.contains("\"ok\":true"), "{}", verify.stdout);
    let list = run_in(&s.dir, &["lineage", "list", "--data-dir", "d"]).expect_code(0);
    assert_eq!(
        list.stdout.matches("key_migrate").count(),
        2,
        "{}",
        list.stdout
    );
    assert_eq!(list.stdout.matches("key_rotate").count(), 1);
}

/// An upload withdrawn while a rotation is open takes with it the
/// translations only its records held (old tokens, their new-key values,
/// its records' encodings): after compaction no byte of them is left. The
/// translations another upload's records share stay, so that upload still
/// migrates whole.
#[test]
fn a_withdrawal_during_a_rotation_takes_the_translations_only_it_held() {
    let s = Scratch::new("rotation-withdraw");
    synth_pair(&s, "60", "11");
    // A store to rotate: council-a first, then open the rotation and let
    // both councils send (recorded under both keys).
    ingest_in(&s.dir, "d", "council-a", DS, "pair/a.csv").expect_code(0);
    run_in(&s.dir, &["key", "rotate", "--data-dir", "d"]).expect_code(0);
    // council-a's file again: a duplicate, still read under both keys.
    ingest_in(&s.dir, "d", "council-a", DS, "pair/a.csv").expect_code(0);
    let b = ingest_in(&s.dir, "d", "council-b", DS, "pair/b.csv")
        .expect_code(0)
        .json();
    let b_upload = b["upload_id"].as_str().expect("upload id").to_owned();

    let data = s.path("d");
    let all = rows(&data);
    let a_holds: BTreeSet<&str> = all
        .iter()
        .filter(|r| r.upload_id != b_upload)
        .flat_map(|r| {
            r.tokens
                .iter()
                .map(String::as_str)
                .chain([r.record_id.as_str()])
        })
        .collect();
    let a_records = all.iter().filter(|r| r.upload_id != b_upload).count();
    let mut needles: BTreeSet<String> = all
        .iter()
        .filter(|r| r.upload_id == b_upload)
        .flat_map(|r| r.tokens.iter().cloned().chain([r.record_id.clone()]))
        .filter(|t| !a_holds.contains(t.as_str()))
        .collect();
    assert!(needles.len() > 50, "{} needles", needles.len());
    // Their new-key values, and the new-id keys of the records'
    // encodings, as the translations hold them now.
    let conn = rusqlite::Connection::open(data.join("agencylink.db")).expect("open");
    let mut translated = Vec::new();
    for n in &needles {
        let new: Option<String> = conn
            .query_row("SELECT new FROM key_translation WHERE old = ?1", [n], |r| {
                r.get(0)
            })
            .ok();
        translated.extend(new);
    }
    drop(conn);
    assert!(
        translated.len() * 2 > needles.len(),
        "most of B's own values have a translation: {} of {}",
        translated.len(),
        needles.len()
    );
    for new in translated {
        needles.insert(format!("sig|{new}"));
        needles.insert(new);
    }
    let shared_before = count(&data, "SELECT count(*) FROM key_translation");

    run_in(
        &s.dir,
        &[
            "withdraw",
            "--data-dir",
            "d",
            &b_upload,
            "--reason",
            "sent to the wrong partnership",
        ],
    )
    .expect_code(0);
    run_in(&s.dir, &["compact", "--data-dir", "d"]).expect_code(0);
    let left = crate::lifecycle::found(&data, &needles);
    assert!(
        left.is_empty(),
        "{} of the withdrawn records' values are still on disk, e.g. in {:?}",
        left.len(),
        left.values().next()
    );
    let shared_after = count(&data, "SELECT count(*) FROM key_translation");
    assert!(
        shared_after > 0 && shared_after < shared_before,
        "{shared_before} → {shared_after} translations"
    );

    // council-a's records still have every translation they need.
    let migrated = run_in(&s.dir, &["key", "migrate", "--data-dir", "d"])
        .expect_code(0)
        .json();
    assert_eq!(migrated["records_migrated"], a_records as u64);
    assert_eq!(migrated["records_untranslated"], 0);
    run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);
}
