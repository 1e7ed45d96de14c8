//! An agency withdraws an upload it should not have sent, and the store is
//! compacted: afterwards no byte of the withdrawn records (record ids,
//! tokens, bodies, linkage signatures) is left anywhere under the data
//! directory, except tokens another live record holds; lineage verifies
//! and reconciles, and the people the upload shared keep their ids.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{Scratch, run_in};

const DS: &str = "council.missing_episode";

/// What the store holds of one record.
pub(crate) struct Row {
    pub(crate) record_id: String,
    pub(crate) person_id: String,
    pub(crate) upload_id: String,
    pub(crate) tokens: BTreeSet<String>,
    pub(crate) body: String,
}

/// Every record, read from the database and the body file as they are.
pub(crate) fn rows(data: &Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open(data.join("agencylink.db")).expect("open");
    let bodies = std::fs::read(data.join("agencylink.db-bodies")).expect("body file");
    let mut stmt = conn
        .prepare(
            "SELECT record_id, person_id, upload_id, match_keys, links, body_at, body_len FROM records",
        )
        .expect("query");
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
        .expect("rows");
    rows.map(|r| {
        let (record_id, person_id, upload_id, keys, links, at, len) = r.expect("row");
        let (at, len) = (at as usize, len as usize);
        let body = String::from_utf8(bodies[at..at + len].to_vec()).expect("utf-8");
        let mut tokens: BTreeSet<String> = serde_json::from_str::<Vec<String>>(&keys)
            .expect("keys")
            .into_iter()
            .collect();
        for l in serde_json::from_str::<Vec<serde_json::Value>>(&links).expect("links") {
            tokens.insert(l["token"].as_str().expect("token").to_owned());
        }
        // The pseudonymised fields: every string value of 20 or more
        // characters in the body's fields is a token.
        let parsed: serde_json::Value = serde_json::from_str(&body).expect("body");
        for v in parsed["fields"].as_object().expect("fields").values() {
            if let Some(t) = v.as_str().filter(|t| t.len() >= 20) {
                tokens.insert(t.to_owned());
            }
        }
        Row {
            record_id,
            person_id,
            upload_id,
            tokens,
            body,
        }
    })
    .collect()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The length of the prefix [`found`] looks needles up by.
const PREFIX: usize = 16;

/// Which `needles` (each at least [`PREFIX`] bytes) occur in some file
/// under `dir`, with the file: every position of every file is looked up
/// by its next 16 bytes, and a hit compared whole.
pub(crate) fn found(dir: &Path, needles: &BTreeSet<String>) -> BTreeMap<String, PathBuf> {
    let mut by_prefix: std::collections::HashMap<&[u8], Vec<&String>> =
        std::collections::HashMap::new();
    for n in needles {
        assert!(n.len() >= PREFIX, "a needle shorter than {PREFIX} bytes");
        by_prefix
            .entry(&n.as_bytes()[..PREFIX])
            .or_default()
            .push(n);
    }
    let mut all = Vec::new();
    files(dir, &mut all);
    let mut hits = BTreeMap::new();
    for f in all {
        let bytes = std::fs::read(&f).unwrap_or_default();
        for (i, w) in bytes.windows(PREFIX).enumerate() {
            for n in by_prefix.get(w).into_iter().flatten() {
                if bytes[i..].starts_with(n.as_bytes()) && !hits.contains_key(*n) {
                    hits.insert((*n).clone(), f.clone());
                }
            }
        }
    }
    hits
}

pub(crate) fn count(data: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(data.join("agencylink.db")).expect("open");
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// Two councils' extracts of [`DS`] for the same `people` (seed `seed`),
/// in `pair/a.csv` and `pair/b.csv`.
pub(crate) fn synth_pair(s: &Scratch, people: &str, seed: &str) {
    run_in(
        &s.dir,
        &[
            "synth-pair",
            "--dataset",
            DS,
            "--people",
            people,
            "--seed",
            seed,
            "--out-dir",
            "pair",
        ],
    )
    .expect_code(0);
}

/// Both extracts of [`synth_pair`] ingested into `d`, as council-a and
/// council-b.
fn ingest_pair(s: &Scratch, people: &str, seed: &str) {
    synth_pair(s, people, seed);
    for (agency, file) in [("council-a", "pair/a.csv"), ("council-b", "pair/b.csv")] {
        crate::util::ingest_in(&s.dir, "d", agency, DS, file).expect_code(0);
    }
}

/// The JSON line about [`DS`] among a command's one-line-per-dataset output.
fn line_for_ds(stdout: &str) -> serde_json::Value {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .find(|v| v["dataset"] == DS)
        .expect("a line for the dataset")
}

#[test]
fn withdraw_then_compact_leaves_no_byte_of_the_withdrawn_records() {
    let s = Scratch::new("withdraw");
    synth_pair(&s, "300", "11");
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
        .json()
    };
    let a = ingest("council-a", "pair/a.csv");
    let b = ingest("council-b", "pair/b.csv");
    let gone_upload = b["upload_id"].as_str().expect("upload id").to_owned();
    let data = s.path("d");

    // What the upload put there, and what the rest of the store holds.
    let before = rows(&data);
    let (gone, live): (Vec<&Row>, Vec<&Row>) =
        before.iter().partition(|r| r.upload_id == gone_upload);
    assert_eq!(
        gone.len() as u64,
        b["records_inserted"].as_u64().expect("n")
    );
    assert!(!live.is_empty());
    let live_tokens: BTreeSet<&String> = live.iter().flat_map(|r| &r.tokens).collect();
    let live_people: BTreeSet<&str> = live.iter().map(|r| r.person_id.as_str()).collect();
    let shared: BTreeSet<&str> = gone
        .iter()
        .map(|r| r.person_id.as_str())
        .filter(|p| live_people.contains(p))
        .collect();
    let only_gone: BTreeSet<&str> = gone
        .iter()
        .map(|r| r.person_id.as_str())
        .filter(|p| !live_people.contains(p))
        .collect();
    assert!(shared.len() > 50, "the two councils share children");
    assert!(!only_gone.is_empty(), "and B knows some A does not");
    let mut needles: BTreeSet<String> = BTreeSet::new();
    for r in &gone {
        needles.insert(r.record_id.clone());
        needles.insert(r.body.clone());
        needles.extend(
            r.tokens
                .iter()
                .filter(|t| !live_tokens.contains(t))
                .cloned(),
        );
    }
    // Linkage signatures only the withdrawn records carry: their ids and codes.
    {
        let conn = rusqlite::Connection::open(data.join("agencylink.db")).expect("open");
        let gone_ids: BTreeSet<&str> = gone.iter().map(|r| r.record_id.as_str()).collect();
        let mut stmt = conn
            .prepare("SELECT s.id, s.codes, group_concat(p.record_id, ' ') FROM link_signature s JOIN link_signature_person p ON p.sig = s.id GROUP BY s.id")
            .expect("query");
        let sigs = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .expect("rows");
        let mut n = 0;
        for sig in sigs {
            let (id, codes, records) = sig.expect("row");
            if records.split(' ').all(|r| gone_ids.contains(r)) {
                needles.insert(id);
                needles.insert(codes);
                n += 1;
            }
        }
        assert!(n > 0, "some signatures are the withdrawn records' alone");
    }
    assert!(needles.len() > 3 * gone.len(), "{} needles", needles.len());
    // The scan finds them while they are there.
    assert_eq!(found(&data, &needles).len(), needles.len());

    let lineage_len = |s: &Scratch| {
        run_in(&s.dir, &["lineage", "list", "--data-dir", "d"])
            .expect_code(0)
            .stdout
            .lines()
            .count()
    };
    let events = lineage_len(&s);

    // An unknown upload, or no reason: exit 2, nothing written.
    let db_before = std::fs::read(data.join("agencylink.db")).expect("db");
    let unknown = run_in(
        &s.dir,
        &[
            "withdraw",
            "--data-dir",
            "d",
            "u_nosuchupload000000",
            "--reason",
            "sent in error",
        ],
    )
    .expect_code(2);
    assert!(
        unknown.stderr.contains("no upload with that id"),
        "{}",
        unknown.stderr
    );
    assert!(
        !unknown.stderr.contains("u_nosuchupload"),
        "the id is not echoed"
    );
    run_in(
        &s.dir,
        &["withdraw", "--data-dir", "d", &gone_upload, "--reason", " "],
    )
    .expect_code(2);
    assert_eq!(lineage_len(&s), events);
    assert_eq!(
        count(&data, "SELECT count(*) FROM records"),
        before.len() as i64
    );
    assert_eq!(
        std::fs::read(data.join("agencylink.db")).expect("db"),
        db_before,
        "the database file is unchanged"
    );

    // A problem profile built before (as `demo` writes one) holds what is
    // withdrawn: it goes too.
    std::fs::create_dir_all(data.join("profile")).expect("profile dir");
    std::fs::write(data.join("profile/profile.json"), &gone[0].record_id).expect("profile");
    let w = run_in(
        &s.dir,
        &[
            "withdraw",
            "--data-dir",
            "d",
            &gone_upload,
            "--reason",
            "sent to the wrong partnership",
        ],
    )
    .expect_code(0);
    assert!(w.stderr.contains("profile"), "{}", w.stderr);
    assert!(!data.join("profile").exists());
    let w = w.json();
    assert_eq!(w["type"], "withdrawn");
    assert_eq!(w["upload_id"], gone_upload.as_str());
    assert_eq!(w["reason"], "sent to the wrong partnership");
    assert_eq!(w["records_removed"].as_u64(), Some(gone.len() as u64));
    assert_eq!(w["people_removed"].as_u64(), Some(only_gone.len() as u64));
    assert_eq!(w["people_kept"].as_u64(), Some(shared.len() as u64));
    assert_eq!(lineage_len(&s), events + 1);
    let shown = run_in(
        &s.dir,
        &["lineage", "show", "--data-dir", "d", &gone_upload],
    )
    .expect_code(0)
    .json();
    let kinds: Vec<&str> = shown
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(kinds, ["ingest", "withdrawn"]);
    // Withdrawn, not yet erased: the bodies are still in the body file.
    assert!(
        !found(&data, &needles).is_empty(),
        "compaction has work to do"
    );
    let again = run_in(
        &s.dir,
        &[
            "withdraw",
            "--data-dir",
            "d",
            &gone_upload,
            "--reason",
            "again",
        ],
    )
    .expect_code(2);
    assert!(
        again.stderr.contains("already withdrawn"),
        "{}",
        again.stderr
    );
    assert_eq!(lineage_len(&s), events + 1);

    // A lineage tool sees the data leave: the OpenLineage export has the
    // withdrawal as a run whose outputs are dropped.
    let export = run_in(
        &s.dir,
        &["lineage", "export", "--openlineage", "--data-dir", "d"],
    )
    .expect_code(0);
    let runs: Vec<Value> = export
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(runs.len(), events + 1, "one run event per lineage event");
    let drop_run = runs.last().expect("the withdrawal");
    assert_eq!(drop_run["eventType"], "COMPLETE");
    assert_eq!(
        drop_run["job"]["name"],
        format!("withdraw.{}", w["dataset"].as_str().expect("dataset"))
    );
    let facet = &drop_run["run"]["facets"]["agencylink_event"];
    assert_eq!(facet["upload_id"], gone_upload.as_str());
    assert_eq!(facet["records_removed"], w["records_removed"]);
    let dropped: Vec<&Value> = drop_run["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .inspect(|o| {
            assert_eq!(
                o["facets"]["lifecycleStateChange"]["lifecycleStateChange"],
                "DROP"
            );
        })
        .map(|o| &o["name"])
        .collect();
    let removed: Vec<&Value> = w["outputs_removed"]
        .as_array()
        .expect("outputs_removed")
        .iter()
        .collect();
    assert!(!removed.is_empty());
    assert_eq!(dropped, removed);

    // Lineage verifies and reconciles: the withdrawn upload holds nothing.
    let v = run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"])
        .expect_code(0)
        .json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["reconciled"]["records"].as_u64(), Some(live.len() as u64));

    // People: those B shared keep their id; those only B knew are gone,
    // with every alias, key and linkage entry naming them.
    let after = rows(&data);
    assert_eq!(after.len(), live.len());
    let people_after: BTreeSet<&str> = after.iter().map(|r| r.person_id.as_str()).collect();
    for p in &shared {
        assert!(people_after.contains(p), "shared person {p} kept their id");
    }
    for p in &only_gone {
        for (table, column) in [
            ("aliases", "old_id"),
            ("aliases", "new_id"),
            ("key_owner", "person_id"),
            ("link_signature_person", "person_id"),
        ] {
            let n = count(
                &data,
                &format!("SELECT count(*) FROM {table} WHERE {column} = '{p}'"),
            );
            assert_eq!(n, 0, "{table}.{column} still names a removed person");
        }
    }
    // Every key owner is a person who holds a record carrying that key.
    assert_eq!(
        count(
            &data,
            "SELECT count(*) FROM key_owner o WHERE NOT EXISTS (SELECT 1 FROM records r, json_each(r.match_keys) k WHERE k.value = o.key AND r.person_id = o.person_id)"
        ),
        0
    );
    // Curated data and reports: B's are gone, A's are not.
    let a_upload = a["upload_id"].as_str().expect("id");
    let mut all = Vec::new();
    files(&data, &mut all);
    let named = |id: &str| {
        all.iter()
            .filter(|f| f.to_string_lossy().contains(id))
            .count()
    };
    assert_eq!(named(&gone_upload), 0, "no object of the withdrawn upload");
    assert_eq!(named(a_upload), 3, "A's curated data and reports stay");

    let c = run_in(&s.dir, &["compact", "--data-dir", "d"])
        .expect_code(0)
        .json();
    assert_eq!(c["records"].as_u64(), Some(live.len() as u64));
    assert_eq!(c["wal_truncated"], true);
    assert!(c["bodies_bytes_after"].as_u64() < c["bodies_bytes_before"].as_u64());

    // Not a byte of them left, in any file under the data directory.
    let left = found(&data, &needles);
    assert!(
        left.is_empty(),
        "{} of {} needles left, e.g. in {:?}",
        left.len(),
        needles.len(),
        left.values().next()
    );
    assert_eq!(
        std::fs::metadata(data.join("agencylink.db-wal")).map_or(0, |m| m.len()),
        0,
        "the WAL is truncated"
    );

    // The store is whole and goes on: verify, read, and the same file
    // sent again is a new upload, not a duplicate of the withdrawn one.
    run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);
    let again = ingest("council-b", "pair/b.csv");
    assert_eq!(again["upload_id"], gone_upload.as_str());
    assert_eq!(again["records_inserted"].as_u64(), Some(gone.len() as u64));
    let v = run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"])
        .expect_code(0)
        .json();
    assert_eq!(
        v["reconciled"]["records"].as_u64(),
        Some(before.len() as u64)
    );
}

#[test]
fn a_record_row_deleted_after_a_withdrawal_is_still_found() {
    // Reconciliation keeps its teeth after a withdrawal: the withdrawn
    // upload's 0 and the other's count are both checked.
    let s = Scratch::new("withdraw-reconcile");
    synth_pair(&s, "40", "5");
    let mut ids = Vec::new();
    for (agency, file) in [("council-a", "pair/a.csv"), ("council-b", "pair/b.csv")] {
        let out = run_in(
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
        .json();
        ids.push(out["upload_id"].as_str().expect("id").to_owned());
    }
    run_in(
        &s.dir,
        &[
            "withdraw",
            "--data-dir",
            "d",
            &ids[0],
            "--reason",
            "wrong period",
        ],
    )
    .expect_code(0);
    run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);
    let conn = rusqlite::Connection::open(s.path("d/agencylink.db")).expect("open");
    conn.execute(
        "DELETE FROM records WHERE rowid = (SELECT min(rowid) FROM records)",
        [],
    )
    .expect("delete behind the store's back");
    drop(conn);
    let v = run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(1);
    assert!(v.stdout.contains(&ids[1]), "{}", v.stdout);
}

#[test]
fn retention_removes_exactly_the_records_past_their_period_and_lineage_still_reconciles() {
    let s = Scratch::new("retention");
    ingest_pair(&s, "200", "3");
    let data = s.path("d");
    // Seven years (the shipped period) before a day in 2032: a cutoff
    // inside the synthetic extracts' dates.
    let today = "2032-06-01";
    let show = run_in(
        &s.dir,
        &["retention", "show", "--data-dir", "d", "--today", today],
    )
    .expect_code(0);
    let ours = line_for_ds(&show.stdout);
    assert_eq!(ours["retention_days"], 2557);
    let cut = ours["cutoff"].as_str().expect("cutoff").to_owned();
    assert_eq!(cut, "2025-06-01");

    let before = rows(&data);
    let old: BTreeSet<String> = {
        let conn = rusqlite::Connection::open(data.join("agencylink.db")).expect("open");
        let mut stmt = conn
            .prepare("SELECT record_id FROM records WHERE event_date < ?1")
            .expect("query");
        stmt.query_map([&cut], |r| r.get::<_, String>(0))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect()
    };
    assert!(
        !old.is_empty() && old.len() < before.len(),
        "the cutoff must split the extracts: {} of {}",
        old.len(),
        before.len()
    );

    let apply = run_in(
        &s.dir,
        &["retention", "apply", "--data-dir", "d", "--today", today],
    )
    .expect_code(0);
    let ours = line_for_ds(&apply.stdout);
    assert_eq!(ours["records_removed"], old.len() as u64, "{ours}");
    let event = &ours["event"];
    let by_upload: u64 = event["records_removed_from"]
        .as_object()
        .expect("by upload")
        .values()
        .map(|v| v.as_u64().expect("count"))
        .sum();
    assert_eq!(by_upload, old.len() as u64);

    let after = rows(&data);
    assert_eq!(after.len(), before.len() - old.len());
    assert!(
        after.iter().all(|r| !old.contains(&r.record_id)),
        "only the old records went"
    );
    let person_before: BTreeMap<&str, &str> = before
        .iter()
        .map(|r| (r.record_id.as_str(), r.person_id.as_str()))
        .collect();
    let moved: BTreeSet<&str> = after
        .iter()
        .filter(|r| person_before[r.record_id.as_str()] != r.person_id)
        .map(|r| r.person_id.as_str())
        .collect();
    assert!(
        moved.len() as u64 <= event["people_split"].as_u64().expect("split"),
        "a kept record changes person only when its person was split: {} moved",
        moved.len()
    );
    // Lineage verifies and reconciles with the store: the expired records
    // came off their uploads.
    let verify = run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);
    assert_eq!(verify.json()["ok"], true);
    // Nothing left to expire: a second run removes nothing and logs nothing.
    let events = |s: &Scratch| {
        run_in(&s.dir, &["lineage", "list", "--data-dir", "d"])
            .expect_code(0)
            .stdout
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("expired"))
            .count()
    };
    assert_eq!(events(&s), 1);
    let again = run_in(
        &s.dir,
        &["retention", "apply", "--data-dir", "d", "--today", today],
    )
    .expect_code(0);
    assert!(again.stdout.contains("\"records_removed\":0"));
    assert!(!again.stdout.contains("\"records_removed\":1"));
    assert_eq!(events(&s), 1);
    // No token, name or record reference in what the command printed.
    for r in &before {
        assert!(!apply.stdout.contains(&r.record_id));
    }
    // A bad date is refused before anything changes.
    run_in(
        &s.dir,
        &[
            "retention",
            "apply",
            "--data-dir",
            "d",
            "--today",
            "1/6/2032",
        ],
    )
    .expect_code(2);
}

#[test]
fn a_full_refresh_retires_exactly_the_rows_the_extract_leaves_out() {
    let s = Scratch::new("full-refresh");
    ingest_pair(&s, "60", "9");
    let data = s.path("d");
    let before = rows(&data);
    let of = |rows: &[Row], agency_upload: &BTreeSet<String>| -> BTreeSet<String> {
        rows.iter()
            .filter(|r| agency_upload.contains(&r.upload_id))
            .map(|r| r.record_id.clone())
            .collect()
    };
    let first_a: BTreeSet<String> = {
        let list = run_in(&s.dir, &["lineage", "list", "--data-dir", "d"]).expect_code(0);
        list.stdout
            .lines()
            .filter(|l| l.contains("council-a"))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("u_")))
            .map(str::to_owned)
            .collect()
    };
    let a_before = of(&before, &first_a);
    let b_count = before.len() - a_before.len();

    // The same extract less its last 4 rows, as a full refresh.
    let text = std::fs::read_to_string(s.path("pair/a.csv")).expect("a.csv");
    let lines: Vec<&str> = text.lines().collect();
    let kept = lines[..lines.len() - 4].join("\n") + "\n";
    s.write("refresh.csv", kept.as_bytes());
    let incremental = run_in(
        &s.dir,
        &[
            "ingest",
            "--data-dir",
            "d",
            "--agency",
            "council-a",
            "--dataset",
            DS,
            "refresh.csv",
        ],
    )
    .expect_code(0);
    assert!(
        incremental.json().get("records_retired").is_none(),
        "incremental retires nothing"
    );
    assert_eq!(
        rows(&data).len(),
        before.len(),
        "and keeps what the file leaves out"
    );

    // A full refresh with a rejected row retires nothing and says why.
    let mut bad = kept.clone();
    bad.push_str("CME-99999999,C9,X,Y,not a date,2,WBRI,2026-05-28,,A,Y,NA,Trafford,M31 1XW\n");
    s.write("bad.csv", bad.as_bytes());
    let skipped = run_in(
        &s.dir,
        &[
            "ingest",
            "--data-dir",
            "d",
            "--agency",
            "council-a",
            "--dataset",
            DS,
            "--mode",
            "full",
            "bad.csv",
        ],
    );
    let j = skipped.json();
    assert_eq!(j["records_retired"], 0, "{j}");
    assert!(
        j["retire_skipped"]
            .as_str()
            .unwrap_or_default()
            .contains("rejected"),
        "{j}"
    );
    assert_eq!(rows(&data).len(), before.len());

    // The clean full refresh retires exactly the 4 rows it left out, and
    // only council-a's.
    let full_file = s.write("full.csv", format!("{kept}\n").as_bytes());
    let full = run_in(
        &s.dir,
        &[
            "ingest",
            "--data-dir",
            "d",
            "--agency",
            "council-a",
            "--dataset",
            DS,
            "--mode",
            "full",
            full_file.to_str().expect("path"),
        ],
    )
    .expect_code(0);
    let j = full.json();
    assert_eq!(j["records_retired"], 4, "{j}");
    let after = rows(&data);
    assert_eq!(after.len(), before.len() - 4);
    let a_ids_after: BTreeSet<String> = after
        .iter()
        .filter(|r| a_before.contains(&r.record_id))
        .map(|r| r.record_id.clone())
        .collect();
    assert_eq!(a_ids_after.len(), a_before.len() - 4);
    assert_eq!(
        after.len() - a_ids_after.len(),
        b_count,
        "council-b untouched"
    );
    let verify = run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);
    assert_eq!(verify.json()["ok"], true);
}
