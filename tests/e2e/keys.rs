//! The key file as an attacker or a careless user meets it: read-only
//! commands never create a key, a planted or exposed key file is refused,
//! and `pseudonymise --kind K -` keeps values off the command line.

use crate::util::{Scratch, ingest_in, run_in, run_stdin_env};

const TEST_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const TEST_ENV: [(&str, &str); 2] = [("AGENCYLINK_KEY", TEST_KEY), ("AGENCYLINK_KEY_ID", "test1")];

#[test]
fn read_only_commands_never_create_a_key() {
    let s = Scratch::new("keys-readonly");
    let id = run_in(&s.dir, &["key", "id", "--data-dir", "d"]).expect_code(2);
    assert!(
        id.stderr.contains("no key at") && id.stderr.contains("agencylink key init"),
        "{}",
        id.stderr
    );
    assert!(!s.path("d").exists(), "key id created {:?}", s.path("d"));
    let one = run_stdin_env(
        &s.dir,
        &[
            "pseudonymise",
            "--data-dir",
            "d",
            "--kind",
            "nhs_number",
            "-",
        ],
        b"943 476 5919\n",
        &[],
    )
    .expect_code(2);
    assert!(one.stderr.contains("no key at"), "{}", one.stderr);
    assert!(!one.stderr.contains("943"), "{}", one.stderr);
    run_in(
        &s.dir,
        &[
            "pseudonymise",
            "--data-dir",
            "d",
            "--kind",
            "nhs_number",
            "9434765919",
        ],
    )
    .expect_code(2);
    assert!(
        !s.path("d").exists(),
        "pseudonymise created {:?}",
        s.path("d")
    );
    // Reads of lineage need no key and make none.
    run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]);
    assert!(!s.path("d/key.json").exists(), "lineage created a key");

    // Ingest is what creates a key, and says so.
    let (file, _) = crate::validate::synth(&s, "police.cse_crime", 20, 3, 0.0);
    let ingest = ingest_in(
        &s.dir,
        "d",
        "gmp-police",
        "police.cse_crime",
        file.to_str().expect("path"),
    )
    .expect_code(0);
    assert!(
        ingest.stderr.contains("created a new key"),
        "{}",
        ingest.stderr
    );
    let kid = run_in(&s.dir, &["key", "id", "--data-dir", "d"]).expect_code(0);
    assert!(!kid.stdout.trim().is_empty());
}

#[test]
fn values_from_standard_input_give_the_same_tokens() {
    let s = Scratch::new("keys-stdin");
    let args = |v: &str| -> Vec<String> {
        ["pseudonymise", "--kind", "nhs_number", v]
            .map(str::to_owned)
            .to_vec()
    };
    let one = |v: &str| {
        let a = args(v);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        crate::util::run_env(&s.dir, &a, &TEST_ENV)
            .expect_code(0)
            .stdout
            .trim()
            .to_owned()
    };
    let from_arg = one("943 476 5919");
    // The spec's vector: tokens do not change with the input route.
    assert_eq!(
        from_arg,
        "nhs_number:test1:73oq6rdqrv6hqd7nwkwxzfsx6by2kikg"
    );
    let other = one("401 023 2137");
    let a = args("-");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let run = run_stdin_env(
        &s.dir,
        &a,
        b"943 476 5919\r\n9434765918\n401 023 2137\n",
        &TEST_ENV,
    )
    .expect_code(1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [from_arg.as_str(), "", other.as_str()],
        "one line per value, an empty line for the rejected one"
    );
    assert!(
        run.stderr.contains("line 2") && run.stderr.contains("check digit"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("9434765918") && !run.stderr.contains("943 476"),
        "the value is never echoed: {}",
        run.stderr
    );
    let ok = run_stdin_env(&s.dir, &a, b"943 476 5919\n", &TEST_ENV).expect_code(0);
    assert_eq!(ok.stdout.trim(), from_arg);
    // --canonical reads standard input too, and needs no key.
    let canon = run_stdin_env(
        &s.dir,
        &["pseudonymise", "--kind", "postcode", "--canonical", "-"],
        b"  bl1   4ab \nm1 1aa\n",
        &[],
    )
    .expect_code(0);
    assert_eq!(canon.stdout, "BL1 4AB\nM1 1AA\n");
}

#[cfg(unix)]
#[test]
fn a_planted_or_exposed_key_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new("keys-planted");
    run_in(&s.dir, &["key", "init", "--data-dir", "d"]).expect_code(0);
    let key = s.path("d/key.json");
    let elsewhere = s.path("elsewhere.json");
    std::fs::rename(&key, &elsewhere).expect("move key");
    std::os::unix::fs::symlink(&elsewhere, &key).expect("symlink");
    let before = std::fs::read(&elsewhere).expect("read");
    let (file, _) = crate::validate::synth(&s, "police.cse_crime", 10, 5, 0.0);
    for args in [
        vec!["key", "id", "--data-dir", "d"],
        vec![
            "ingest",
            "--data-dir",
            "d",
            "--agency",
            "gmp-police",
            "--dataset",
            "police.cse_crime",
            file.to_str().expect("path"),
        ],
    ] {
        let run = run_in(&s.dir, &args).expect_code(2);
        assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    }
    assert_eq!(
        std::fs::read(&elsewhere).expect("read"),
        before,
        "target unchanged"
    );
    assert!(
        std::fs::symlink_metadata(&key)
            .expect("link")
            .file_type()
            .is_symlink()
    );

    std::fs::remove_file(&key).expect("rm link");
    std::fs::rename(&elsewhere, &key).expect("restore");
    run_in(&s.dir, &["key", "id", "--data-dir", "d"]).expect_code(0);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let run = run_in(&s.dir, &["key", "id", "--data-dir", "d"]).expect_code(2);
    assert!(
        run.stderr.contains("readable by group or others"),
        "{}",
        run.stderr
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // Another user's key file: only a privileged test run can make one.
    if std::os::unix::fs::chown(&key, Some(4242), None).is_ok() {
        let run = run_in(&s.dir, &["key", "id", "--data-dir", "d"]).expect_code(2);
        assert!(
            run.stderr.contains("owned by user id 4242"),
            "{}",
            run.stderr
        );
    }
}

/// Every file under `dir` with its length, to show a refused command wrote nothing.
fn listing(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            let name = p.display().to_string();
            // SQLite's shared-memory index changes on any open.
            if name.ends_with("-shm") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((name, e.metadata().expect("metadata").len()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_store_takes_one_key_and_refuses_another() {
    let s = Scratch::new("keys-one");
    let (file, _) = crate::validate::synth(&s, "police.cse_crime", 200, 4, 0.0);
    let first = ingest_in(
        &s.dir,
        "d",
        "gmp-police",
        "police.cse_crime",
        file.to_str().expect("path"),
    )
    .expect_code(0)
    .json();
    let own = run_in(&s.dir, &["key", "id", "--data-dir", "d"]).expect_code(0);
    let own = own.stdout.trim().to_owned();

    // The same extract less one row, under another key: before, this
    // inserted 199 records beside the first 200 and split every person.
    let text = std::fs::read_to_string(&file).expect("read");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.pop();
    let less = s.write("less.csv", (lines.join("\n") + "\n").as_bytes());
    let before = listing(&s.path("d"));
    let refused = crate::util::run_env(
        &s.dir,
        &[
            "ingest",
            "--data-dir",
            "d",
            "--agency",
            "gmp-police",
            "--dataset",
            "police.cse_crime",
            less.to_str().expect("path"),
        ],
        &TEST_ENV,
    )
    .expect_code(2);
    assert!(
        refused.stderr.contains(&format!("built with key id {own}"))
            && refused.stderr.contains("the key given is test1"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        listing(&s.path("d")),
        before,
        "a refused ingest wrote nothing"
    );

    // Reads under the other key are refused too, naming both ids.
    let person = "p_aaaaaaaaaaaa";
    for args in [
        vec![
            "query",
            "person",
            person,
            "--analyst",
            "a.analyst",
            "--purpose",
            "test",
        ],
        vec!["profile", "--edition", "partner", "--out", "out"],
    ] {
        let mut all = args.clone();
        all.extend(["--data-dir", "d"]);
        let run = crate::util::run_env(&s.dir, &all, &TEST_ENV).expect_code(2);
        assert!(
            run.stderr.contains(&own) && run.stderr.contains("test1"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert!(!s.path("out").exists(), "a refused profile wrote nothing");

    // The store's own key still works, and the store is as it was.
    let again = ingest_in(
        &s.dir,
        "d",
        "gmp-police",
        "police.cse_crime",
        less.to_str().expect("path"),
    )
    .expect_code(0)
    .json();
    assert_eq!(again["records_inserted"], 0);
    assert_eq!(
        again["records_unchanged"].as_u64(),
        first["records_inserted"].as_u64().map(|n| n - 1)
    );
    run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);
}
