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

/// A person at a terminal sees a progress bar with rows, rate and the time
/// taken; a pipe or a log sees nothing extra. `script` (util-linux, on
/// every Debian) gives the command a pseudo-terminal.
#[test]
fn a_terminal_sees_a_progress_bar_and_a_pipe_does_not() {
    let s = Scratch::new("progress");
    let (file, _) = crate::validate::synth(&s, "police.cse_crime", 300, 5, 0.0);
    let file = file.to_str().expect("path");
    let piped = ingest_in(&s.dir, "d", "gmp-police", "police.cse_crime", file).expect_code(0);
    assert!(
        !piped.stderr.contains('\r') && !piped.stderr.contains("rows/s"),
        "no progress into a pipe: {}",
        piped.stderr
    );

    let (file2, _) = crate::validate::synth(&s, "police.cse_intelligence", 300, 6, 0.0);
    let command = format!(
        "{} ingest --data-dir d --agency gmp-police --dataset police.cse_intelligence {}",
        bin(),
        file2.to_str().expect("path")
    );
    let out = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .current_dir(&s.dir)
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let last = text
        .split(['\r', '\n'])
        .rfind(|l| l.contains("police.cse_intelligence ["))
        .unwrap_or_else(|| panic!("a bar on the terminal: {text:?}"));
    assert!(
        last.contains("[########################] 100% 300 rows, ")
            && last.contains(" rows/s, in "),
        "{last:?}"
    );
}
