//! Nothing raw survives: an interrupted ingest, a planted symlink, a data
//! directory others can reach, or a file name that names a child leaves no
//! raw identifier on disk and writes nowhere it should not.

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::util::{Scratch, bin, ingest_in, run_in};
use crate::validate::synth;

/// Every regular file under `dir`, symlinks not followed.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

/// The raw identifiers of a `police.cse_crime` extract that a byte scan
/// can find without false alarms: family and given names (upper case, five
/// letters or more; tokens are lower-case base32) and the phone number
/// ranges the generator uses.
fn raw_names(csv: &Path) -> HashSet<String> {
    let mut r = csv::Reader::from_path(csv).expect("csv");
    let headers = r.headers().expect("header").clone();
    let cols: Vec<usize> = ["family_name", "given_name"]
        .iter()
        .map(|c| headers.iter().position(|h| h == *c).expect("column"))
        .collect();
    let mut names = HashSet::new();
    for rec in r.records() {
        let rec = rec.expect("row");
        for &c in &cols {
            let v = rec.get(c).unwrap_or("");
            if v.len() >= 5 && v.bytes().all(|b| b.is_ascii_uppercase()) {
                names.insert(v.to_owned());
            }
        }
    }
    assert!(names.len() > 50, "enough names to look for");
    names
}

/// Panics naming the file if any raw name or phone number is in it.
fn assert_no_raw_values(dir: &Path, names: &HashSet<String>) {
    for f in files_under(dir) {
        let bytes = std::fs::read(&f).expect("read");
        for needle in [&b"07700 900"[..], b"1632 960"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "a raw phone number is in {}",
                f.display()
            );
        }
        // Runs of upper-case letters, looked up: linear in the file.
        let mut run = Vec::new();
        for &b in bytes.iter().chain(std::iter::once(&0u8)) {
            if b.is_ascii_uppercase() {
                run.push(b);
                continue;
            }
            if run.len() >= 5 {
                let word = String::from_utf8_lossy(&run);
                assert!(
                    !names.contains(word.as_ref()),
                    "a raw name is in {}",
                    f.display()
                );
            }
            run.clear();
        }
    }
}

fn ingest_child(s: &Scratch, file: &Path) -> std::process::Child {
    std::process::Command::new(bin())
        .args([
            "ingest",
            "--data-dir",
            "d",
            "--agency",
            "gmp-police",
            "--dataset",
            "police.cse_crime",
            file.to_str().expect("path"),
        ])
        .current_dir(&s.dir)
        .env_remove("AGENCYLINK_KEY")
        .env_remove("AGENCYLINK_KEY_ID")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ingest")
}

/// Wait until the ingest is well under way: its curated scratch file (a
/// `.tmp-` file beside where the output will be published) has grown.
fn wait_until_part_way(s: &Scratch, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let curated = s.path("d/curated/gmp-police/police.cse_crime");
    loop {
        assert!(Instant::now() < deadline, "ingest never got going");
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "ingest finished ({status}) before it could be stopped: make the extract bigger"
            );
        }
        let grown = std::fs::read_dir(&curated).is_ok_and(|d| {
            d.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with(".tmp-")
                    && e.metadata().is_ok_and(|m| m.len() > 512 << 10)
            })
        });
        if grown {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn temp_files(dir: &Path) -> usize {
    files_under(dir)
        .iter()
        .filter(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
        })
        .count()
}

#[test]
fn an_interrupted_or_killed_ingest_leaves_no_raw_value_behind() {
    let s = Scratch::new("raw-interrupt");
    let (file, _) = synth(&s, "police.cse_crime", 40_000, 5, 0.0);
    let names = raw_names(&file);
    run_in(&s.dir, &["key", "init", "--data-dir", "d"]).expect_code(0);

    // SIGINT (Ctrl-C): the handler removes its temporary files and exits 130.
    let mut child = ingest_child(&s, &file);
    wait_until_part_way(&s, &mut child);
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130), "Ctrl-C exits 130");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(temp_files(&s.path("d")), 0, "nothing half-written is left");
    assert!(
        !s.path("d/landing").exists(),
        "no raw copy has a name in the data directory"
    );
    assert_no_raw_values(&s.path("d"), &names);

    // SIGKILL: nothing can run, so the next command sweeps and says so.
    let mut child = ingest_child(&s, &file);
    wait_until_part_way(&s, &mut child);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(temp_files(&s.path("d")) > 0, "a kill leaves scratch files");
    assert_no_raw_values(&s.path("d"), &names);
    let verify = run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);
    assert!(
        verify
            .stderr
            .contains("temporary files that an interrupted command left"),
        "{}",
        verify.stderr
    );
    assert_eq!(
        temp_files(&s.path("d")),
        0,
        "swept when the store was opened"
    );
    assert_no_raw_values(&s.path("d"), &names);

    // An older version kept a named raw copy under landing/: swept too.
    let stale = s.path("d/landing/gmp-police/police.cse_crime/0123456789.csv");
    std::fs::create_dir_all(stale.parent().expect("parent")).expect("mkdir");
    std::fs::copy(&file, &stale).expect("plant a stale raw copy");
    let verify = run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);
    assert!(
        verify.stderr.contains("raw extract copies"),
        "{}",
        verify.stderr
    );
    assert!(!stale.exists());

    // And the finished ingest leaves nothing raw either.
    ingest_in(
        &s.dir,
        "d",
        "gmp-police",
        "police.cse_crime",
        file.to_str().expect("path"),
    )
    .expect_code(0);
    assert_no_raw_values(&s.path("d"), &names);
}

/// A file outside the store that a planted symlink points at.
fn victim(s: &Scratch) -> PathBuf {
    s.write("victim.txt", b"someone else's file\n")
}

fn small_extract(s: &Scratch) -> PathBuf {
    synth(s, "police.cse_crime", 50, 2, 0.0).0
}

fn ingest(s: &Scratch, data_dir: &str, file: &Path) -> crate::util::Run {
    ingest_in(
        &s.dir,
        data_dir,
        "gmp-police",
        "police.cse_crime",
        file.to_str().expect("path"),
    )
}

#[test]
fn planted_symlinks_are_not_followed() {
    let s = Scratch::new("raw-symlink");
    let file = small_extract(&s);
    let target = victim(&s);
    for name in ["agencylink.db-bodies", "agencylink.db"] {
        let dir = format!("d-{name}");
        std::fs::create_dir_all(s.path(&dir)).expect("mkdir");
        std::fs::set_permissions(s.path(&dir), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        symlink(&target, s.path(&format!("{dir}/{name}"))).expect("plant");
        let run = ingest(&s, &dir, &file).expect_code(2);
        assert!(run.stderr.contains("link"), "{name}: {}", run.stderr);
        assert_eq!(
            std::fs::read(&target).expect("victim"),
            b"someone else's file\n",
            "{name}: the file the symlink points at is unchanged"
        );
    }

    // A symlink at a temporary-file name is swept, not followed.
    ingest(&s, "d", &file).expect_code(0);
    let planted = s.path("d/curated/gmp-police/police.cse_crime/.tmp-0000-ndjson");
    symlink(&target, &planted).expect("plant");
    ingest(&s, "d", &file).expect_code(0);
    assert!(std::fs::symlink_metadata(&planted).is_err(), "swept");
    assert_eq!(
        std::fs::read(&target).expect("victim"),
        b"someone else's file\n"
    );

    // The profile's output directory: the old fixed temporary name holds a
    // symlink; the profile is written and the target is untouched.
    std::fs::create_dir_all(s.path("out")).expect("mkdir");
    symlink(&target, s.path("out/.profile.html.tmp")).expect("plant");
    run_in(
        &s.dir,
        &[
            "profile",
            "--data-dir",
            "d",
            "--edition",
            "partner",
            "--out",
            "out",
        ],
    )
    .expect_code(0);
    assert!(s.path("out/profile.html").is_file());
    assert_eq!(
        std::fs::read(&target).expect("victim"),
        b"someone else's file\n"
    );
}

#[test]
fn a_data_directory_others_can_reach_is_refused_or_made_private() {
    let s = Scratch::new("raw-perms");
    let file = small_extract(&s);
    // Made under umask 022, as most shells have it: still private throughout.
    let made = std::process::Command::new("sh")
        .args([
            "-c",
            "umask 022 && exec \"$0\" ingest --data-dir d --agency gmp-police --dataset police.cse_crime \"$1\"",
            bin(),
            file.to_str().expect("path"),
        ])
        .current_dir(&s.dir)
        .env_remove("AGENCYLINK_KEY")
        .env_remove("AGENCYLINK_KEY_ID")
        .output()
        .expect("run under umask 022");
    assert!(made.status.success(), "{made:?}");
    for f in files_under(&s.path("d")) {
        let mode = std::fs::metadata(&f).expect("meta").mode();
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", f.display());
    }
    assert_eq!(
        std::fs::metadata(s.path("d")).expect("meta").mode() & 0o777,
        0o700
    );

    // Others can write: refused, with the fix.
    std::fs::set_permissions(s.path("d"), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let run = ingest(&s, "d", &file).expect_code(2);
    assert!(run.stderr.contains("chmod 700"), "{}", run.stderr);
    let run = run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(2);
    assert!(
        run.stderr.contains("written by other users"),
        "{}",
        run.stderr
    );

    // Others can read (an older version's store): tightened, with a warning.
    std::fs::set_permissions(s.path("d"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(
        s.path("d/agencylink.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let run = run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);
    assert!(run.stderr.contains("warning"), "{}", run.stderr);
    assert_eq!(
        std::fs::metadata(s.path("d/agencylink.db"))
            .expect("meta")
            .mode()
            & 0o777,
        0o600
    );

    // A profile or export into a directory others can write: refused.
    std::fs::create_dir_all(s.path("shared")).expect("mkdir");
    std::fs::set_permissions(s.path("shared"), std::fs::Permissions::from_mode(0o777))
        .expect("chmod");
    let run = run_in(
        &s.dir,
        &[
            "profile",
            "--data-dir",
            "d",
            "--edition",
            "partner",
            "--out",
            "shared",
        ],
    )
    .expect_code(2);
    assert!(
        run.stderr.contains("written by other users"),
        "{}",
        run.stderr
    );
    let run = run_in(
        &s.dir,
        &[
            "export",
            "--format",
            "csv",
            "--data-dir",
            "d",
            "--analyst",
            "test analyst",
            "--purpose",
            "checking the output directory",
            "--out",
            "shared/export.csv",
        ],
    )
    .expect_code(2);
    assert!(
        run.stderr.contains("written by other users"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_dir(s.path("shared")).expect("dir").count(), 0);
}

#[test]
fn lineage_never_records_the_extract_file_name() {
    let s = Scratch::new("raw-name");
    let file = small_extract(&s);
    let named = s.path("JANE_DOE_2014-03-01_referral.csv");
    std::fs::copy(&file, &named).expect("copy");
    ingest(&s, "d", &named).expect_code(0);
    let changed = s.path("changed.csv");
    let mut text = std::fs::read_to_string(&file).expect("read");
    text.truncate(text.trim_end().rfind('\n').expect("rows"));
    text.push('\n');
    std::fs::write(&changed, text).expect("write");
    std::fs::copy(&changed, &named).expect("same name, other content");
    ingest(&s, "d", &named).expect_code(0);
    let list = run_in(&s.dir, &["lineage", "list", "--data-dir", "d"]).expect_code(0);
    let export = run_in(
        &s.dir,
        &["lineage", "export", "--openlineage", "--data-dir", "d"],
    )
    .expect_code(0);
    let db = std::fs::read(s.path("d/agencylink.db")).expect("db");
    for (what, text) in [
        ("lineage list", list.stdout.as_bytes()),
        ("OpenLineage export", export.stdout.as_bytes()),
        ("the database", &db[..]),
    ] {
        for needle in [&b"JANE"[..], b"referral", b"2014-03-01"] {
            assert!(
                !text.windows(needle.len()).any(|w| w == needle),
                "{what} names the file"
            );
        }
    }
    // Two uploads from the same path are still told apart.
    let sources: HashSet<String> = export
        .stdout
        .lines()
        .filter(|l| l.contains("landing/"))
        .filter_map(|l| {
            l.split("landing/")
                .nth(1)
                .map(|t| t.split('"').next().unwrap_or("").to_owned())
        })
        .collect();
    assert_eq!(sources.len(), 2, "{sources:?}");
}
