//! Crash consistency (#18 item 5): the real binary killed with SIGKILL at
//! random moments of an ingest, a second agency's ingest, a full refresh
//! (a correction that retires records), a withdrawal and a compaction.
//! After each kill the store opens and its lineage verifies; running the
//! killed step again (and the rest) ends in exactly the state an
//! uninterrupted run reaches: the same records, people and uploads.
//!
//! The CI run kills `CRASH_RUNS` times (default 10); more for a longer
//! soak: `AGENCYLINK_CRASH_RUNS=200 cargo test -p agencylink-cli --test e2e crash`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::lifecycle::synth_pair;
use crate::util::{Scratch, bin};

const DS: &str = "council.missing_episode";
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const CRASH_RUNS: usize = 10;

/// The steps, in order; `{B}` stands for the second upload's id.
const STEPS: &[&[&str]] = &[
    &[
        "ingest",
        "--agency",
        "council-a",
        "--dataset",
        DS,
        "pair/a.csv",
    ],
    &[
        "ingest",
        "--agency",
        "council-b",
        "--dataset",
        DS,
        "pair/b.csv",
    ],
    &[
        "ingest",
        "--agency",
        "council-a",
        "--dataset",
        DS,
        "--mode",
        "full",
        "a_sub.csv",
    ],
    &["withdraw", "--reason", "sent in error", "{B}"],
    &["compact"],
];

fn command(data: &str, step: &[&str], b_upload: &str) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg(step[0]).args(["--data-dir", data]);
    cmd.args(
        step[1..]
            .iter()
            .map(|a| if *a == "{B}" { b_upload } else { a }),
    );
    cmd.env("AGENCYLINK_KEY", KEY)
        .env("AGENCYLINK_KEY_ID", "test1")
        .env_remove("AGENCYLINK_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Run a step to the end; its stdout. A withdrawal the killed attempt had
/// already committed answers 2 ("already withdrawn"), which is converged.
fn finish(s: &Scratch, data: &str, step: &[&str], b_upload: &str) -> String {
    let out = command(data, step, b_upload)
        .current_dir(&s.dir)
        .output()
        .expect("run");
    let code = out.status.code();
    let ok = code == Some(0) || (step[0] == "withdraw" && code == Some(2));
    assert!(
        ok,
        "{step:?} exited {code:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a run must agree on: every record (id, person, upload), and the
/// lineage events in order, by kind and upload (a retried step that the
/// killed attempt had committed adds none).
fn state(data: &Path) -> (BTreeSet<(String, String, String)>, Vec<String>) {
    let conn = rusqlite::Connection::open(data.join("agencylink.db")).expect("open");
    let mut records = BTreeSet::new();
    let mut stmt = conn
        .prepare("SELECT record_id, person_id, upload_id FROM records")
        .expect("query");
    for row in stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("rows")
    {
        records.insert(row.expect("row"));
    }
    let mut stmt = conn
        .prepare("SELECT entry FROM lineage ORDER BY seq")
        .expect("query");
    let events = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("rows")
        .map(|e| {
            let e: serde_json::Value = serde_json::from_str(&e.expect("row")).expect("JSON");
            format!("{} {}", e["type"], e["upload_id"])
        })
        .collect();
    (records, events)
}

/// A small deterministic generator for the kill times (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn verifies(s: &Scratch, data: &str) {
    let out = Command::new(bin())
        .args(["lineage", "verify", "--data-dir", data])
        .current_dir(&s.dir)
        .output()
        .expect("verify");
    assert_eq!(
        out.status.code(),
        Some(0),
        "lineage verify after a kill:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_store_killed_at_any_moment_reopens_verifies_and_converges() {
    let s = Scratch::new("crash");
    synth_pair(&s, "400", "7");
    // The full refresh's file: council-a's extract less its last tenth.
    let a = std::fs::read_to_string(s.path("pair/a.csv")).expect("a.csv");
    let lines: Vec<&str> = a.lines().collect();
    let keep = lines.len() - lines.len() / 10;
    s.write("a_sub.csv", (lines[..keep].join("\n") + "\n").as_bytes());

    // The uninterrupted run: each step's time and the state after it.
    let mut durations = Vec::new();
    let mut after = Vec::new();
    let mut b_upload = String::new();
    for (i, step) in STEPS.iter().enumerate() {
        let t = Instant::now();
        let out = finish(&s, "ref", step, &b_upload);
        durations.push(t.elapsed());
        if i == 1 {
            let v: serde_json::Value = serde_json::from_str(&out).expect("ingest summary");
            b_upload = v["upload_id"].as_str().expect("upload id").to_owned();
        }
        after.push(state(&s.path("ref")));
    }
    verifies(&s, "ref");
    assert!(
        after[2].0.len() < after[1].0.len(),
        "the full refresh retired records"
    );
    assert!(
        after[3].0.len() < after[2].0.len(),
        "the withdrawal removed records"
    );

    let runs = std::env::var("AGENCYLINK_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CRASH_RUNS);
    let mut rng = Rng(std::env::var("AGENCYLINK_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed)
        | 1);
    let mut killed_mid_run = 0;
    for run in 0..runs {
        let k = run % STEPS.len();
        let data = format!("run{run}");
        for step in &STEPS[..k] {
            finish(&s, &data, step, &b_upload);
        }
        // Somewhere in the step's uninterrupted time (a little past it,
        // so some kills land after it committed).
        let budget = durations[k].as_micros().max(1_000) as u64;
        let delay = Duration::from_micros(rng.below(budget * 11 / 10));
        let mut child = command(&data, STEPS[k], &b_upload)
            .current_dir(&s.dir)
            .spawn()
            .expect("spawn");
        std::thread::sleep(delay);
        if child.try_wait().expect("poll").is_none() {
            killed_mid_run += 1;
        }
        child.kill().ok(); // SIGKILL: no handler runs.
        let _ = child.wait();
        verifies(&s, &data);
        for step in &STEPS[k..] {
            finish(&s, &data, step, &b_upload);
        }
        let got = state(&s.path(&data));
        assert!(
            got == after[STEPS.len() - 1],
            "run {run}: killed {:?} after {delay:?}; the retried run differs from the uninterrupted one",
            STEPS[k]
        );
        verifies(&s, &data);
        let _ = std::fs::remove_dir_all(s.path(&data));
    }
    eprintln!("crash: {runs} kills, {killed_mid_run} while the step was running");
    assert!(
        runs < STEPS.len() * 2 || killed_mid_run > 0,
        "no kill landed while a step was running"
    );
}
