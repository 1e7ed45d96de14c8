//! `agencylink profile`, as a police analyst and a partner agency use it:
//! the files it writes, their schema, the planted networks found exactly,
//! and the HTML opened in a real browser.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Scratch, run_in};

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

fn schema_valid(p: &Path) -> Value {
    let v = read_json(p);
    if let Err(errors) = agencylink_core::profile::validate_json(&v) {
        panic!(
            "{} does not validate against profile.schema.json:\n{}",
            p.display(),
            errors.join("\n")
        );
    }
    v
}

/// Every file in a directory, as text.
fn texts(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_file() {
            out.push((p.clone(), std::fs::read_to_string(&p).expect("text file")));
        }
    }
    out
}

/// A person id: `p_` and 20 base32 characters.
fn has_person_id(s: &str) -> bool {
    s.match_indices("p_").any(|(i, _)| {
        let rest = &s[i + 2..];
        let before_ok = i == 0 || !s.as_bytes()[i - 1].is_ascii_alphanumeric();
        before_ok
            && rest.len() >= 20
            && rest[..20]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    })
}

#[test]
fn the_demo_ends_with_a_profile_and_both_editions_validate() {
    let s = Scratch::new("profile-demo");
    // Given the demo's store,
    let demo = run_in(&s.dir, &["demo", "--data-dir", "d", "--rows", "400"]).expect_code(0);
    demo.json(); // stdout is still the demo's JSON summary
    assert!(
        demo.stderr.contains("profile") && demo.stderr.contains("profile.html"),
        "the demo says where the profile is:\n{}",
        demo.stderr
    );
    let analyst = s.path("d/profile");
    let p = schema_valid(&analyst.join("profile.json"));
    assert_eq!(p["edition"], "analyst");
    let tables = p["tables"].as_array().expect("tables");
    for t in tables {
        let id = t["id"].as_str().expect("id");
        let csv = std::fs::read_to_string(analyst.join(format!("{id}.csv")))
            .unwrap_or_else(|e| panic!("{id}.csv: {e}"));
        let lines = csv.lines().count();
        assert_eq!(
            lines,
            t["rows"].as_array().map_or(0, Vec::len) + 1,
            "{id}.csv: a header and one line per row"
        );
    }
    assert!(analyst.join("profile.html").is_file());

    // When a partner edition is written over the analyst one,
    let kid = run_in(&s.dir, &["key", "id", "--data-dir", "d"])
        .expect_code(0)
        .stdout
        .trim()
        .to_owned();
    let out = run_in(
        &s.dir,
        &[
            "profile",
            "--data-dir",
            "d",
            "--edition",
            "partner",
            "--out",
            "d/profile",
        ],
    )
    .expect_code(0)
    .json();
    assert_eq!(out["edition"], "partner");
    let p = schema_valid(&analyst.join("profile.json"));
    assert!(p.get("networks").is_none());
    // then no pseudonym of any kind is left in any file: no person id, no
    // token (every token names the key id), no tracker or network table.
    for (path, text) in texts(&analyst) {
        assert!(
            !text.contains(&format!(":{kid}:")),
            "{} holds a pseudonymous token",
            path.display()
        );
        assert!(
            !has_person_id(&text),
            "{} holds a person id",
            path.display()
        );
    }
    assert!(
        !analyst.join("tracker.csv").exists(),
        "the analyst tracker was removed"
    );
    assert!(!analyst.join("group_networks.csv").exists());
    let suppressed: u64 = p["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| t["suppressed"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        suppressed > 0,
        "a 400-row demo has small counts to withhold"
    );

    // And the usual exit codes: a bad date is bad usage, no store is an error.
    run_in(
        &s.dir,
        &[
            "profile",
            "--data-dir",
            "d",
            "--from",
            "2026-02-30",
            "--out",
            "x",
            "--analyst",
            "test analyst",
            "--purpose",
            "checking dates",
        ],
    )
    .expect_code(2);
    let none = run_in(&s.dir, &["profile", "--data-dir", "empty", "--out", "x"]).expect_code(2);
    assert!(
        none.stderr.contains("no agencylink store"),
        "{}",
        none.stderr
    );
}

/// Synthesise police crimes and intelligence with ground truth, ingest
/// them, and return the scratch dir with `d/` (store) and the truths.
fn planted_world(s: &Scratch, rows: &str, seed: &str) -> Vec<(String, PathBuf)> {
    let mut truths = Vec::new();
    for ds in ["police.cse_crime", "police.cse_intelligence"] {
        let truth = s.path(&format!("{ds}.truth.ndjson"));
        let out = run_in(
            &s.dir,
            &[
                "synth",
                "--dataset",
                ds,
                "--rows",
                rows,
                "--seed",
                seed,
                "--truth",
                truth.to_str().expect("path"),
            ],
        )
        .expect_code(0);
        let csv = s.write(&format!("{ds}.csv"), out.stdout.as_bytes());
        run_in(
            &s.dir,
            &[
                "ingest",
                "--data-dir",
                "d",
                "--agency",
                "gmp-police",
                "--dataset",
                ds,
                csv.to_str().expect("path"),
            ],
        )
        .expect_code(0);
        truths.push((ds.to_owned(), truth));
    }
    truths
}

#[test]
fn the_planted_networks_are_found_exactly() {
    let s = Scratch::new("profile-truth");
    let truths = planted_world(&s, "3000", "7");
    // The synthetic events span Oct 2024 to Sep 2026: profile all of it.
    run_in(
        &s.dir,
        &[
            "profile",
            "--data-dir",
            "d",
            "--from",
            "2024-01-01",
            "--to",
            "2026-12-31",
            "--out",
            "p",
            "--analyst",
            "test analyst",
            "--purpose",
            "checking the planted networks",
        ],
    )
    .expect_code(0);
    let profile = schema_valid(&s.path("p/profile.json"));

    // Ground truth: the planted networks (by the world's person ids), and
    // which world person each data row is about.
    type Net = (BTreeSet<String>, BTreeSet<String>);
    let mut planted: BTreeMap<String, Net> = BTreeMap::new();
    let mut row_person: BTreeMap<(String, u64), String> = BTreeMap::new();
    for (ds, path) in &truths {
        let text = std::fs::read_to_string(path).expect("truth");
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).expect("truth line");
            if let Some(summary) = v.get("summary") {
                for n in summary["networks"].as_array().expect("networks") {
                    let e = planted
                        .entry(n["id"].as_str().expect("id").to_owned())
                        .or_default();
                    let ids = |k: &str| {
                        n[k].as_array()
                            .expect("ids")
                            .iter()
                            .map(|x| x.as_str().expect("id").to_owned())
                            .collect::<Vec<_>>()
                    };
                    e.0.extend(ids("suspects"));
                    e.1.extend(ids("victims"));
                }
            } else {
                row_person.insert(
                    (ds.clone(), v["row"].as_u64().expect("row")),
                    v["person"].as_str().expect("person").to_owned(),
                );
            }
        }
    }
    // The store: record → row (curated output) and record → person id.
    let conn = rusqlite::Connection::open(s.path("d/agencylink.db")).expect("open store");
    let mut stmt = conn
        .prepare("SELECT record_id, person_id FROM records")
        .expect("query");
    let person_of: BTreeMap<String, String> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    let mut world_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (ds, _) in &truths {
        let dir = s.path(&format!("d/curated/gmp-police/{ds}"));
        for (_, text) in texts(&dir) {
            for line in text.lines() {
                let b: Value = serde_json::from_str(line).expect("curated line");
                let row = b["provenance"]["row"].as_u64().expect("row");
                let pid = &person_of[b["record_id"].as_str().expect("record id")];
                world_of
                    .entry(pid.clone())
                    .or_default()
                    .insert(row_person[&(ds.clone(), row)].clone());
            }
        }
    }
    for (pid, people) in &world_of {
        assert_eq!(
            people.len(),
            1,
            "linkage merged two world people into {pid}"
        );
    }
    let to_world = |n: &Value, k: &str| -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for id in n[k].as_array().expect("ids") {
            let id = id.as_str().expect("id");
            let mut all = vec![id.to_owned()];
            if let Some(more) = n["same_person"][id].as_array() {
                all.extend(more.iter().map(|x| x.as_str().expect("id").to_owned()));
            }
            for a in all {
                out.extend(world_of[&a].iter().cloned());
            }
        }
        out
    };
    let found: Vec<Net> = profile["networks"]
        .as_array()
        .expect("networks")
        .iter()
        .map(|n| {
            let (s, v) = (to_world(n, "suspects"), to_world(n, "victims"));
            // Counted suspects are distinct world people: name resolution
            // inside a network neither merged two nor left one split.
            assert_eq!(s.len(), n["suspects"].as_array().map_or(0, Vec::len), "{n}");
            assert_eq!(v.len(), n["victims"].as_array().map_or(0, Vec::len), "{n}");
            (s, v)
        })
        .collect();
    let expected: BTreeSet<Net> = planted.into_values().collect();
    let got: BTreeSet<Net> = found.iter().cloned().collect();
    assert_eq!(got.len(), found.len(), "a network was reported twice");
    let missing: Vec<&Net> = expected.difference(&got).collect();
    let extra: Vec<&Net> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} planted networks: {} not found exactly, {} reported that were not planted:\nmissing {missing:#?}\nextra {extra:#?}",
        expected.len(),
        missing.len(),
        extra.len()
    );
    assert!(
        expected.len() >= 20,
        "the world plants one network per 150 people"
    );
}

/// The Chromium binary, if installed.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Run headless Chromium on `page` with `extra` arguments; returns stdout
/// and stderr. Output goes to files, not pipes: `--dump-dom` writes more
/// than a pipe holds, and a full pipe would stall the browser. Fails the
/// test if it does not finish in two minutes.
fn headless(bin: &str, profile_dir: &Path, page: &Path, extra: &[String]) -> (String, String) {
    let out_path = profile_dir.with_extension("stdout");
    let err_path = profile_dir.with_extension("stderr");
    let file = |p: &Path| std::fs::File::create(p).expect("chromium output file");
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile_dir.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(file(&out_path))
        .stderr(file(&err_path))
        .spawn()
        .expect("start chromium");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish on {} in 120 s", page.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    (read(&out_path), read(&err_path))
}

/// Requests the page itself made, from a Chromium net log: Chromium's own
/// background traffic (update checks) has no `file://` isolation key; a
/// request from our `file://` page has.
fn page_requests(netlog: &Path) -> Vec<String> {
    let log = read_json(netlog);
    log["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let p = e.get("params")?;
            let url = p.get("url")?.as_str()?;
            let key = p.get("network_isolation_key")?.as_str()?;
            (key.starts_with("file://") && !url.starts_with("file:")).then(|| url.to_owned())
        })
        .collect()
}

/// Load a page; return (DOM, console lines, page network requests),
/// and write a screenshot when asked.
fn load(
    bin: &str,
    dir: &Path,
    page: &Path,
    screenshot: Option<&Path>,
) -> (String, Vec<String>, Vec<String>) {
    let netlog = dir.join(format!(
        "{}.netlog.json",
        page.file_stem().and_then(|s| s.to_str()).unwrap_or("page")
    ));
    let mut extra = vec![format!("--log-net-log={}", netlog.display())];
    match screenshot {
        Some(shot) => {
            extra.push(format!("--screenshot={}", shot.display()));
            extra.push("--window-size=1280,2000".into());
        }
        None => extra.push("--dump-dom".into()),
    }
    let user = dir.join(format!(
        "chromium-user-{}",
        extra.len() + page.as_os_str().len()
    ));
    let (stdout, stderr) = headless(bin, &user, page, &extra);
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    (stdout, console, page_requests(&netlog))
}

#[test]
fn the_html_opens_in_headless_chromium_without_errors_or_requests() {
    let Some(bin) = chromium() else {
        // In CI a missing browser is a failure: the check would silently
        // never run. Elsewhere, say why and skip.
        if std::env::var_os("CI").is_some() {
            panic!(
                "CI is set and chromium is not installed: run tests/run-all.sh, which installs it"
            );
        }
        eprintln!(
            "SKIPPED: chromium is not installed (apt-get install -y chromium); set CI to make this fail"
        );
        return;
    };
    let s = Scratch::new("profile-browser");
    run_in(&s.dir, &["demo", "--data-dir", "d", "--rows", "600"]).expect_code(0);
    run_in(
        &s.dir,
        &[
            "profile",
            "--data-dir",
            "d",
            "--edition",
            "partner",
            "--out",
            "partner",
        ],
    )
    .expect_code(0);
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");

    // The detectors work: a page that does request and does log is caught.
    let leaky = s.write(
        "leaky.html",
        b"<!doctype html><p>x</p><img src=\"http://127.0.0.1:9/x.png\"><script>console.error('boom')</script>",
    );
    let (_, console, requests) = load(bin, &s.dir, &leaky, None);
    assert!(!console.is_empty(), "the console detector caught nothing");
    assert_eq!(requests, vec!["http://127.0.0.1:9/x.png".to_owned()]);

    for (edition, page) in [
        ("analyst", s.path("d/profile/profile.html")),
        ("partner", s.path("partner/profile.html")),
    ] {
        let html = std::fs::read_to_string(&page).expect("html");
        // Nothing the page could fetch: no URL at all.
        for banned in ["http://", "https://", "<script", "url("] {
            assert!(
                !html.to_lowercase().contains(banned),
                "{edition}: the page contains {banned}"
            );
        }
        let (dom, console, requests) = load(bin, &s.dir, &page, None);
        assert!(
            dom.contains("Executive summary") && dom.contains("<svg"),
            "{edition}: the DOM did not load:\n{}",
            &dom[..dom.len().min(2000)]
        );
        assert!(
            console.is_empty(),
            "{edition}: console messages: {console:#?}"
        );
        assert!(
            requests.is_empty(),
            "{edition}: network requests: {requests:#?}"
        );
        let shot = artifacts.join(format!("profile-{edition}.png"));
        let _ = std::fs::remove_file(&shot);
        let (_, console, requests) = load(bin, &s.dir, &page, Some(&shot));
        assert!(console.is_empty() && requests.is_empty());
        let size = std::fs::metadata(&shot).map_or(0, |m| m.len());
        assert!(
            size > 10_000,
            "{edition}: screenshot {} is {size} bytes",
            shot.display()
        );
    }
}

#[test]
fn the_analyst_edition_is_a_logged_read_and_the_partner_edition_is_not() {
    let s = Scratch::new("profile-access");
    run_in(&s.dir, &["demo", "--data-dir", "d", "--rows", "300"]).expect_code(0);
    let log = |s: &Scratch| -> Vec<serde_json::Value> {
        run_in(&s.dir, &["access-log", "--data-dir", "d"])
            .expect_code(0)
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("entry"))
            .collect()
    };
    // The demo's own analyst edition is in the log.
    let before = log(&s);
    assert!(
        before.iter().any(|e| e["action"] == "profile_analyst"),
        "{before:?}"
    );

    // Without a reader the analyst edition is refused and nothing is written.
    let refused = run_in(&s.dir, &["profile", "--data-dir", "d", "--out", "a"]).expect_code(2);
    assert!(refused.stderr.contains("--analyst"), "{}", refused.stderr);
    assert!(!s.path("a").exists());
    run_in(
        &s.dir,
        &[
            "profile",
            "--data-dir",
            "d",
            "--out",
            "a",
            "--analyst",
            "a.analyst",
            "--purpose",
            "",
        ],
    )
    .expect_code(2);
    assert!(!s.path("a").exists());
    assert_eq!(log(&s).len(), before.len(), "a refused read is not logged");

    // With one, it is written and logged, with who, why and what.
    run_in(
        &s.dir,
        &[
            "profile",
            "--data-dir",
            "d",
            "--out",
            "a",
            "--analyst",
            "a.analyst",
            "--purpose",
            "Op Test: quarterly review",
        ],
    )
    .expect_code(0);
    assert!(s.path("a/profile.html").is_file());
    let after = log(&s);
    assert_eq!(after.len(), before.len() + 1);
    let e = after.last().expect("entry");
    assert_eq!(e["action"], "profile_analyst");
    assert_eq!(e["analyst"], "a.analyst");
    assert_eq!(e["purpose"], "Op Test: quarterly review");
    assert!(e["rows_returned"].as_u64().expect("rows") > 0, "{e}");

    // The partner edition (aggregates, suppressed) is not a read of
    // personal data.
    run_in(
        &s.dir,
        &[
            "profile",
            "--data-dir",
            "d",
            "--edition",
            "partner",
            "--out",
            "p",
        ],
    )
    .expect_code(0);
    assert_eq!(log(&s).len(), after.len());
    run_in(&s.dir, &["access-log", "--verify", "--data-dir", "d"]).expect_code(0);
}

/// The rows of a profile table from its CSV, by column name.
fn csv_rows(p: &Path) -> Vec<BTreeMap<String, String>> {
    let mut rdr = csv::Reader::from_path(p).expect("csv");
    let header: Vec<String> = rdr
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    rdr.records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.expect("row").iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

#[test]
fn a_second_profile_marks_what_changed_and_history_lists_every_build() {
    let s = Scratch::new("profile-since");
    run_in(&s.dir, &["demo", "--data-dir", "d", "--rows", "300"]).expect_code(0);
    let analyst = |out: &str| {
        run_in(
            &s.dir,
            &[
                "profile",
                "--data-dir",
                "d",
                "--out",
                out,
                "--analyst",
                "a.analyst",
                "--purpose",
                "Op Test: monthly refresh",
            ],
        )
        .expect_code(0);
    };
    // Right after the demo's own build nothing is new.
    analyst("p1");
    let first = csv_rows(&s.path("p1/tracker.csv"));
    assert!(!first.is_empty());
    assert!(
        first.iter().all(|r| r["since_previous"].is_empty()),
        "nothing was ingested since the demo's profile"
    );

    // New crimes arrive; the next profile marks exactly their entries.
    let out = run_in(
        &s.dir,
        &[
            "synth",
            "--dataset",
            "police.cse_crime",
            "--rows",
            "80",
            "--seed",
            "977",
        ],
    )
    .expect_code(0);
    let csv = s.write("late-crimes.csv", out.stdout.as_bytes());
    run_in(
        &s.dir,
        &[
            "ingest",
            "--data-dir",
            "d",
            "--agency",
            "gmp-police",
            "--dataset",
            "police.cse_crime",
            csv.to_str().expect("path"),
        ],
    );
    analyst("p2");
    let second = csv_rows(&s.path("p2/tracker.csv"));
    let marked: BTreeSet<&str> = second
        .iter()
        .filter(|r| r["since_previous"] == "yes")
        .map(|r| r["reference"].as_str())
        .collect();
    assert!(!marked.is_empty(), "the new crimes are marked");
    let before: BTreeSet<&str> = first.iter().map(|r| r["reference"].as_str()).collect();
    let added: BTreeSet<&str> = second
        .iter()
        .map(|r| r["reference"].as_str())
        .filter(|r| !before.contains(r))
        .collect();
    assert!(
        added.iter().all(|r| marked.contains(r)),
        "every entry the first tracker lacked is marked"
    );
    assert!(
        second
            .iter()
            .filter(|r| r["type"] == "intelligence")
            .all(|r| r["since_previous"].is_empty()),
        "intelligence was not re-sent: nothing of it is marked"
    );
    let p2 = read_json(&s.path("p2/profile.json"));
    let note = p2["method"]
        .as_array()
        .expect("notes")
        .iter()
        .find(|n| n["topic"] == "Since the previous profile")
        .expect("the comparison note");
    assert!(
        note["text"].as_str().is_some_and(|t| t.contains(&format!(
            "{} of the {}",
            marked.len(),
            second.len()
        ))),
        "{note}"
    );

    // History: the demo's build and the two above, who and what.
    let hist = run_in(&s.dir, &["profile", "history", "--data-dir", "d"]).expect_code(0);
    let builds: Vec<Value> = hist
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(builds.len(), 3, "{}", hist.stdout);
    assert_eq!(builds[0]["built_by"], "agencylink demo");
    assert!(builds[1..].iter().all(|b| b["built_by"] == "a.analyst"
        && b["edition"] == "analyst"
        && b["trigger"] == "cli"
        && b["location"] == "local"));
    assert!(builds[2]["lineage_seq"].as_u64() > builds[1]["lineage_seq"].as_u64());
    assert_eq!(builds[2]["from"], p2["period"]["from"]);
    // The subcommand takes no build options.
    run_in(
        &s.dir,
        &["profile", "history", "--data-dir", "d", "--out", "x"],
    )
    .expect_code(2);
}
