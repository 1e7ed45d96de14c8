//! Signed checkpoints (`lineage checkpoint`, `access-log checkpoint`, and
//! the checkpoint every upload or read leaves in `DATA_DIR/checkpoints/`),
//! as an auditor uses them: entries deleted from the end of either log, which
//! leave a valid shorter chain, fail verification against a checkpoint.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use crate::util::{Scratch, ingest_in, run_in};
use crate::validate::synth;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn sql(db: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(db).expect("open store");
    conn.execute_batch(sql).expect("tamper");
}

fn read(s: &Scratch, person: &str) {
    run_in(
        &s.dir,
        &[
            "query",
            "person",
            person,
            "--data-dir",
            "d",
            "--analyst",
            "a.auditor",
            "--purpose",
            "Op Kestrel",
        ],
    )
    .expect_code(0);
}

/// Delete the last entries of `table` one at a time; after each deletion the
/// shorter (valid) chain must fail against the latest kept checkpoint and
/// against the off-machine copy, naming the truncation.
fn truncate_one_by_one(s: &Scratch, table: &str, verify: &[&str], size: u64, offsite: &Path) {
    let db = s.path("d/agencylink.db");
    let offsite = offsite.to_str().expect("path");
    for k in 1..=size {
        sql(
            &db,
            &format!("DELETE FROM {table} WHERE seq = {}", size - k + 1),
        );
        let left = size - k;
        for extra in [&[][..], &["--checkpoint", offsite][..]] {
            let mut args = verify.to_vec();
            args.extend_from_slice(&["--data-dir", "d"]);
            args.extend_from_slice(extra);
            let run = run_in(&s.dir, &args).expect_code(1);
            let out = run.json();
            assert_eq!(out["ok"], false);
            assert_eq!(out["problem"]["kind"], "truncated", "{table} minus {k}");
            assert_eq!(out["problem"]["seq"], left + 1);
            let reason = out["problem"]["reason"].as_str().unwrap_or_default();
            assert!(
                reason.contains(&format!("has {left} entries, the checkpoint of"))
                    && reason.contains(&format!("says {size}: entries were deleted from the end")),
                "{reason}"
            );
            assert!(run.stderr.contains("BROKEN"), "{}", run.stderr);
        }
    }
}

#[test]
fn truncating_either_log_by_any_count_is_detected() {
    let s = Scratch::new("ckpt-trunc");
    let (a, _) = synth(&s, "police.cse_crime", 40, 3, 0.0);
    let (b, _) = synth(&s, "police.cse_crime", 40, 4, 0.0);
    let (c, _) = synth(&s, "health.safeguarding_attendance", 40, 5, 0.0);
    for f in [&a, &b, &c] {
        ingest_in(
            &s.dir,
            "d",
            "gmp-police",
            if f == &c {
                "health.safeguarding_attendance"
            } else {
                "police.cse_crime"
            },
            f.to_str().expect("path"),
        )
        .expect_code(0);
    }
    // Every upload left a private checkpoint of the lineage log, signed by
    // a key of its own.
    let ck = s.path("d/checkpoints");
    assert_eq!(mode(&ck), 0o700);
    for n in 1..=3 {
        let f = ck.join(format!("lineage-{n:06}.json"));
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    assert_eq!(mode(&s.path("d/checkpoint-key.json")), 0o600);
    assert_eq!(mode(&ck.join("public-key.json")), 0o600);
    let key = std::fs::read_to_string(s.path("d/checkpoint-key.json")).expect("key");
    let pseudo_key = std::fs::read_to_string(s.path("d/key.json")).expect("key");
    let pseudo: Value = serde_json::from_str(&pseudo_key).expect("json");
    assert!(
        !key.contains(pseudo["key"].as_str().expect("key")),
        "the checkpoint key is not the pseudonymisation key"
    );

    // Three reads: three access-log entries, each checkpointed.
    let person = {
        let run = run_in(
            &s.dir,
            &[
                "export",
                "--format",
                "ndjson",
                "--data-dir",
                "d",
                "--analyst",
                "a.auditor",
                "--purpose",
                "Op Kestrel",
            ],
        )
        .expect_code(0);
        let first: Value =
            serde_json::from_str(run.stdout.lines().next().expect("a row")).expect("row");
        first["person_id"].as_str().expect("person").to_owned()
    };
    read(&s, &person);
    read(&s, &person);
    assert_eq!(mode(&ck.join("access-log-000003.json")), 0o600);

    // `checkpoint` prints a signed checkpoint of the log as it is.
    let cp = run_in(&s.dir, &["lineage", "checkpoint", "--data-dir", "d"])
        .expect_code(0)
        .json();
    assert_eq!(cp["log"], "lineage");
    assert_eq!(cp["size"], 3);
    assert_eq!(cp["algorithm"], "Ed25519");
    for field in ["head_hash", "time", "key_id", "signature"] {
        assert!(cp[field].as_str().is_some_and(|v| !v.is_empty()), "{field}");
    }
    let acp = run_in(&s.dir, &["access-log", "checkpoint", "--data-dir", "d"])
        .expect_code(0)
        .json();
    assert_eq!(
        (acp["log"].as_str(), acp["size"].as_u64()),
        (Some("access-log"), Some(3))
    );

    let ok = run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"])
        .expect_code(0)
        .json();
    assert_eq!(ok["events"], 3);
    assert_eq!(ok["checkpoint"]["size"], 3);
    assert!(
        ok["checkpoint"]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("lineage-000003.json")),
        "{ok}"
    );
    let ok = run_in(&s.dir, &["access-log", "--verify", "--data-dir", "d"])
        .expect_code(0)
        .json();
    assert_eq!(
        (ok["entries"].as_u64(), ok["checkpoint"]["size"].as_u64()),
        (Some(3), Some(3))
    );

    // The auditor's copies, kept off the machine.
    let lineage_copy = s.path("offsite-lineage.json");
    let access_copy = s.path("offsite-access.json");
    std::fs::copy(ck.join("lineage-000003.json"), &lineage_copy).expect("copy");
    std::fs::copy(ck.join("access-log-000003.json"), &access_copy).expect("copy");

    truncate_one_by_one(&s, "lineage", &["lineage", "verify"], 3, &lineage_copy);
    truncate_one_by_one(
        &s,
        "access_log",
        &["access-log", "--verify"],
        3,
        &access_copy,
    );

    // A truncated log is not signed over: `checkpoint` refuses.
    let run = run_in(&s.dir, &["lineage", "checkpoint", "--data-dir", "d"]).expect_code(1);
    assert!(
        run.stderr.contains("no checkpoint written"),
        "{}",
        run.stderr
    );

    // Whoever truncated the log can delete the checkpoints on the machine
    // too; then the chain alone cannot show it. The lineage log still does,
    // because the records of the dropped uploads have no ingest event (the
    // access log has no such second witness: only the copy shows it).
    for e in std::fs::read_dir(&ck).expect("dir").flatten() {
        std::fs::remove_file(e.path()).expect("rm");
    }
    let run = run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(1);
    let out = run.json();
    assert_eq!(out["checkpoint"], Value::Null);
    assert!(
        out["mismatches"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["upload_id"].is_string())),
        "{out}"
    );
    let run = run_in(&s.dir, &["access-log", "--verify", "--data-dir", "d"]).expect_code(0);
    assert_eq!(run.json()["checkpoint"], Value::Null);
    assert!(run.stderr.contains("no checkpoint found"), "{}", run.stderr);
    let copy = lineage_copy.to_str().expect("path");
    let run = run_in(
        &s.dir,
        &["lineage", "verify", "--data-dir", "d", "--checkpoint", copy],
    )
    .expect_code(1);
    assert_eq!(run.json()["problem"]["kind"], "truncated");
}

#[test]
fn a_rewritten_or_foreign_checkpoint_is_refused() {
    let s = Scratch::new("ckpt-rewrite");
    let (a, _) = synth(&s, "police.cse_crime", 30, 3, 0.0);
    let (b, _) = synth(&s, "police.cse_crime", 30, 4, 0.0);
    let a = a.to_str().expect("path");
    let b = b.to_str().expect("path");
    ingest_in(&s.dir, "d1", "gmp-police", "police.cse_crime", a).expect_code(0);
    // A second store with the same checkpoint key but another history of the
    // same length: its chain verifies, but not against d1's checkpoint.
    std::fs::create_dir(s.path("d2")).expect("mkdir");
    std::fs::set_permissions(s.path("d2"), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::copy(
        s.path("d1/checkpoint-key.json"),
        s.path("d2/checkpoint-key.json"),
    )
    .expect("copy key");
    ingest_in(&s.dir, "d2", "gmp-police", "police.cse_crime", b).expect_code(0);
    let d1_cp = s.path("d1/checkpoints/lineage-000001.json");
    let d1_cp = d1_cp.to_str().expect("path");
    run_in(&s.dir, &["lineage", "verify", "--data-dir", "d2"]).expect_code(0);
    let run = run_in(
        &s.dir,
        &[
            "lineage",
            "verify",
            "--data-dir",
            "d2",
            "--checkpoint",
            d1_cp,
        ],
    )
    .expect_code(1);
    let p = &run.json()["problem"];
    assert_eq!(
        (p["kind"].as_str(), p["seq"].as_u64()),
        (Some("diverged"), Some(1)),
        "{p}"
    );

    // A store with its own key does not accept d1's checkpoint (nor would
    // d1 accept one made with a key planted later).
    ingest_in(&s.dir, "d3", "gmp-police", "police.cse_crime", a).expect_code(0);
    let run = run_in(
        &s.dir,
        &[
            "lineage",
            "verify",
            "--data-dir",
            "d3",
            "--checkpoint",
            d1_cp,
        ],
    )
    .expect_code(1);
    let p = &run.json()["problem"];
    assert_eq!(p["kind"], "signature", "{p}");
    assert!(
        p["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("does not know"),
        "{p}"
    );

    // A checkpoint edited to a smaller size (to hide a truncation) no
    // longer verifies.
    let mut edited: Value =
        serde_json::from_str(&std::fs::read_to_string(d1_cp).expect("read")).expect("json");
    edited["size"] = Value::from(0);
    let edited_path = s.write("edited.json", edited.to_string().as_bytes());
    let run = run_in(
        &s.dir,
        &[
            "lineage",
            "verify",
            "--data-dir",
            "d1",
            "--checkpoint",
            edited_path.to_str().expect("path"),
        ],
    )
    .expect_code(1);
    assert_eq!(run.json()["problem"]["kind"], "signature");

    // A lineage checkpoint is not an access-log checkpoint.
    let run = run_in(
        &s.dir,
        &[
            "access-log",
            "--verify",
            "--data-dir",
            "d1",
            "--checkpoint",
            d1_cp,
        ],
    )
    .expect_code(1);
    assert_eq!(run.json()["problem"]["kind"], "wrong_log");

    // Verifying a copied store elsewhere: the public key from the
    // checkpoint directory, no secret key needed.
    let public: Value = serde_json::from_str(
        &std::fs::read_to_string(s.path("d1/checkpoints/public-key.json")).expect("read"),
    )
    .expect("json");
    std::fs::remove_file(s.path("d1/checkpoint-key.json")).expect("rm");
    let run = crate::util::run_env(
        &s.dir,
        &["lineage", "verify", "--data-dir", "d1"],
        &[(
            "AGENCYLINK_CHECKPOINT_PUBLIC_KEY",
            public["public_key"].as_str().expect("public key"),
        )],
    )
    .expect_code(0);
    assert_eq!(run.json()["checkpoint"]["size"], 1);
}
