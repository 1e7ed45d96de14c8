//! The harness: runs the real `agencylink` binary in a scratch directory and
//! panics with everything needed to debug when a command surprises us.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A scratch directory removed when the test ends.
pub(crate) struct Scratch {
    pub(crate) dir: PathBuf,
}

impl Scratch {
    pub(crate) fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "agencylink-e2e-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).expect("write scratch file");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What one run of the binary did.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) args: Vec<String>,
}

impl Run {
    fn from(args: &[&str], out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Assert the exit code, showing the whole run when it differs.
    pub(crate) fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            code,
            "agencylink {:?} exited {} (expected {code})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args,
            self.code,
            truncate(&self.stdout),
            truncate(&self.stderr)
        );
        self
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout of {:?} is not JSON ({e}):\n{}",
                self.args,
                truncate(&self.stdout)
            )
        })
    }
}

fn truncate(s: &str) -> &str {
    let end = s.char_indices().nth(4000).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

/// The binary under test: the one cargo built, or `AGENCYLINK_E2E_BIN` (a
/// release build, or a private copy when several worktrees share one
/// target directory and another build may replace the binary mid-run).
pub(crate) fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("AGENCYLINK_E2E_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_agencylink").to_owned())
    })
}

/// Run `agencylink ARGS` in `cwd`.
pub(crate) fn run_in(cwd: &Path, args: &[&str]) -> Run {
    let out = Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("AGENCYLINK_KEY")
        .env_remove("AGENCYLINK_KEY_ID")
        .env_remove("AGENCYLINK_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run agencylink");
    Run::from(args, out)
}

/// Run `agencylink ARGS` with `input` on standard input.
#[allow(dead_code)]
pub(crate) fn run_stdin(cwd: &Path, args: &[&str], input: &[u8]) -> Run {
    run_stdin_env(cwd, args, input, &[])
}

/// Run `agencylink ARGS` with `input` on standard input and extra
/// environment variables (the key variables are cleared unless given).
pub(crate) fn run_stdin_env(cwd: &Path, args: &[&str], input: &[u8], env: &[(&str, &str)]) -> Run {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("AGENCYLINK_KEY")
        .env_remove("AGENCYLINK_KEY_ID")
        .env_remove("AGENCYLINK_DATA_DIR")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agencylink");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait agencylink");
    Run::from(args, out)
}

/// Run `agencylink ARGS` in `cwd` with extra environment variables.
pub(crate) fn run_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("AGENCYLINK_DATA_DIR")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run agencylink");
    Run::from(args, out)
}

/// Replace every run of 20 or more base32 characters (tokens, ids) with `#`.
pub(crate) fn scrub_base32(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 20 {
            out.push('#');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_lowercase() || ('2'..='7').contains(&c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// `agencylink ingest --data-dir DATA_DIR --agency AGENCY --dataset DATASET FILE` in `cwd`.
pub(crate) fn ingest_in(
    cwd: &Path,
    data_dir: &str,
    agency: &str,
    dataset: &str,
    file: &str,
) -> Run {
    run_in(
        cwd,
        &[
            "ingest",
            "--data-dir",
            data_dir,
            "--agency",
            agency,
            "--dataset",
            dataset,
            file,
        ],
    )
}
