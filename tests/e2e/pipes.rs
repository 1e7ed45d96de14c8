//! A reader that stops reading (`agencylink lineage list | head`) ends the
//! command quietly with the status a shell gives a SIGPIPE'd process (141),
//! for small outputs (one `println!`) and large ones (a writer) alike.

use std::process::{Command, Stdio};

use crate::util::{Scratch, bin, ingest_in};

/// Run with a stdout whose reading end is already closed: the first write
/// fails with EPIPE, deterministically.
fn run_closed(s: &Scratch, args: &[&str]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = Command::new(bin())
        .args(args)
        .current_dir(&s.dir)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run agencylink");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_stdout_ends_quietly_with_status_141() {
    let s = Scratch::new("pipes");
    let (file, _) = crate::validate::synth(&s, "police.cse_crime", 50, 3, 0.0);
    ingest_in(
        &s.dir,
        "d",
        "gmp-police",
        "police.cse_crime",
        file.to_str().expect("path"),
    )
    .expect_code(0);
    for args in [
        &["lineage", "list", "--data-dir", "d"][..],
        &["lineage", "show", "--data-dir", "d", "nosuch"][..],
        &["datasets"][..],
        &["schema", "police.cse_crime"][..],
        &[
            "synth",
            "--dataset",
            "police.cse_crime",
            "--rows",
            "5000",
            "--seed",
            "1",
        ][..],
        &["key", "id", "--data-dir", "d"][..],
    ] {
        let (code, stderr) = run_closed(&s, args);
        if args.get(1) == Some(&"show") {
            // An error that is not about stdout is still reported.
            assert_eq!(code, 2, "{args:?}: {stderr}");
            continue;
        }
        assert_eq!(code, 141, "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?} printed: {stderr}");
    }
}
