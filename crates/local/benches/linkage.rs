//! Linkage quality (not a timed test): two agencies' synthetic extracts of
//! the same children, the second with realistic errors (`agencylink-synth`'s
//! error model), ingested into a fresh SQLite store, scored against the
//! ground truth: precision, recall and F1 over pairs of records, for exact
//! match keys alone, for the probabilistic linker with its built-in model
//! and with a model re-estimated by `link train` on the same data, and for
//! Splink on the same three fields in clear text (a Python virtualenv the
//! bench makes under `target/`; `--no-splink` skips it).
//!
//! `cargo bench -p agencylink-local --bench linkage -- [PEOPLE] [SEED] [MATCH_THRESHOLD] [--no-splink]`

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use agencylink_core::ingest::{Sinks, UploadInfo, ingest};
use agencylink_core::linkage::{self, LinkModel, TrainOptions};
use agencylink_core::ports::{RecordStore, RecordStoreExt};
use agencylink_core::pseudo::{Key, Kind, Pseudonymiser, canonicalise};
use agencylink_core::read::InputFormat;
use agencylink_core::schema::{Catalog, Dataset};
use agencylink_local::SqliteStore;
use agencylink_synth::linkage::{PairOptions, write_pair};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../../core/benches/support/mod.rs"]
mod support;

const DATASET: &str = "council.missing_episode";

/// Pairwise scores against the truth.
#[derive(Debug, Clone, Copy, Default)]
struct Score {
    predicted: u64,
    correct: u64,
    truth: u64,
}

impl Score {
    fn precision(&self) -> f64 {
        ratio(self.correct, self.predicted)
    }
    fn recall(&self) -> f64 {
        ratio(self.correct, self.truth)
    }
    fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Pairs of records sharing a cluster, scored against pairs sharing a true
/// person. Records are `(agency, row)`; `predicted` maps each merged record
/// to its person (a rejected record is in no pair).
fn score(
    truth: &HashMap<(String, u64), String>,
    predicted: &HashMap<(String, u64), String>,
) -> Score {
    let pairs =
        |groups: HashMap<&str, Vec<&(String, u64)>>| -> BTreeSet<((String, u64), (String, u64))> {
            let mut out = BTreeSet::new();
            for members in groups.values() {
                for (i, a) in members.iter().enumerate() {
                    for b in &members[i + 1..] {
                        let (x, y) = if a <= b { (a, b) } else { (b, a) };
                        out.insert(((*x).clone(), (*y).clone()));
                    }
                }
            }
            out
        };
    let mut by_truth: HashMap<&str, Vec<&(String, u64)>> = HashMap::new();
    for (rec, p) in truth {
        by_truth.entry(p).or_default().push(rec);
    }
    let mut by_pred: HashMap<&str, Vec<&(String, u64)>> = HashMap::new();
    for (rec, p) in predicted {
        by_pred.entry(p).or_default().push(rec);
    }
    let t = pairs(by_truth);
    let p = pairs(by_pred);
    Score {
        predicted: p.len() as u64,
        correct: p.intersection(&t).count() as u64,
        truth: t.len() as u64,
    }
}

fn read_truth(path: &Path, agency: &str, into: &mut HashMap<(String, u64), String>) {
    for line in std::fs::read_to_string(path).expect("truth").lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("truth line");
        if let (Some(row), Some(person)) = (v["row"].as_u64(), v["person"].as_str()) {
            into.insert((agency.to_owned(), row), person.to_owned());
        }
    }
}

fn upload(ds: &Dataset, p: &Pseudonymiser, store: &SqliteStore, csv: &Path, agency: &str) {
    let info = UploadInfo {
        agency: agency.into(),
        sha256: format!("bench-{agency}"),
        source: format!("landing/{agency}/{DATASET}/extract.csv"),
        format: InputFormat::Csv,
        time: "2026-12-01T00:00:00Z".into(),
        outputs: vec![],
        mode: agencylink_core::ingest::IngestMode::Incremental,
    };
    let mut input = BufReader::new(File::open(csv).expect("open"));
    let (mut c, mut rj, mut rc) = (std::io::sink(), std::io::sink(), std::io::sink());
    ingest(
        ds,
        p,
        store,
        &store.lineage(),
        &info,
        &mut input,
        Sinks {
            curated: &mut c,
            report_json: &mut rj,
            report_csv: &mut rc,
        },
        |_| {},
    )
    .expect("ingest");
}

/// Ingest both files into a fresh store whose model is `model` (`None`: the
/// built-in default) and return each merged record's person.
fn run(
    dir: &Path,
    name: &str,
    ds: &Dataset,
    p: &Pseudonymiser,
    model: Option<&LinkModel>,
) -> (SqliteStore, HashMap<(String, u64), String>) {
    let db = dir.join(format!("{name}.db"));
    let store = SqliteStore::open(&db).expect("db");
    if let Some(m) = model {
        store
            .linkage()
            .expect("linkage")
            .put_model(m)
            .expect("model");
    }
    upload(ds, p, &store, &dir.join("a.csv"), "council-a");
    upload(ds, p, &store, &dir.join("b.csv"), "council-b");
    let mut predicted = HashMap::new();
    store
        .scan_dataset(DATASET, None, None, &mut |r| {
            predicted.insert((r.agency.clone(), r.row), r.person_id.clone());
            true
        })
        .expect("scan");
    for person in predicted.values_mut() {
        *person = store.resolve_person(person).expect("resolve");
    }
    (store, predicted)
}

/// Share of true cross-agency pairs whose signatures share a blocking key,
/// and the candidate pairs blocking gives, from the CSVs' own values.
fn blocking(dir: &Path, p: &Pseudonymiser, truth: &HashMap<(String, u64), String>) -> (f64, u64) {
    let mut sigs: HashMap<(String, u64), Vec<String>> = HashMap::new();
    for (agency, file) in [("council-a", "a.csv"), ("council-b", "b.csv")] {
        let mut rdr = csv::Reader::from_path(dir.join(file)).expect("csv");
        let headers = rdr.headers().expect("headers").clone();
        let col = |n: &str| headers.iter().position(|h| h == n);
        let (f, g, d) = (col("family_name"), col("given_name"), col("dob"));
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.expect("row");
            let canon = |c: Option<usize>, k: Kind| {
                c.and_then(|c| rec.get(c))
                    .and_then(|v| canonicalise(k, v, "").ok())
            };
            let sig = linkage::signature(
                p,
                canon(f, Kind::PersonName).as_deref(),
                canon(g, Kind::PersonName).as_deref(),
                canon(d, Kind::Date).as_deref(),
            );
            sigs.insert(
                (agency.to_owned(), i as u64 + 1),
                sig.map(|s| s.b).unwrap_or_default(),
            );
        }
    }
    let mut by_person: HashMap<&str, Vec<&(String, u64)>> = HashMap::new();
    for (rec, person) in truth {
        by_person.entry(person).or_default().push(rec);
    }
    let (mut pairs, mut found) = (0u64, 0u64);
    for members in by_person.values() {
        for (i, a) in members.iter().enumerate() {
            for b in &members[i + 1..] {
                pairs += 1;
                if sigs[*a].iter().any(|k| sigs[*b].contains(k)) {
                    found += 1;
                }
            }
        }
    }
    let mut blocks: HashMap<&str, (u64, u64)> = HashMap::new();
    for ((agency, _), keys) in &sigs {
        for k in keys {
            let e = blocks.entry(k).or_default();
            if agency == "council-a" {
                e.0 += 1
            } else {
                e.1 += 1
            }
        }
    }
    let candidates = blocks.values().map(|(a, b)| a * b).sum();
    (ratio(found, pairs), candidates)
}

/// One linker's row: ingest both extracts under `model` into a fresh store,
/// score it, and name it (from the model and the review queue's length).
fn timed(
    dir: &Path,
    name: &str,
    ds: &Dataset,
    p: &Pseudonymiser,
    model: &LinkModel,
    truth: &HashMap<(String, u64), String>,
    label: impl Fn(&LinkModel, usize) -> String,
) -> (SqliteStore, (String, Score, f64)) {
    let t = Instant::now();
    let (store, got) = run(dir, name, ds, p, Some(model));
    let secs = t.elapsed().as_secs_f64();
    let queue = store
        .linkage()
        .expect("linkage")
        .review_items()
        .expect("items")
        .len();
    let row = (label(model, queue), score(truth, &got), secs);
    (store, row)
}

fn splink(dir: &Path) -> Option<(Score, f64)> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = here.join("../../target/linkage-bench-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(here.join("benches/linkage/requirements.txt"))
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("could not make the Splink virtualenv; skipping Splink");
            return None;
        }
    }
    let out = Command::new(&python)
        .arg(here.join("benches/linkage/splink_bench.py"))
        .args([
            "a.csv",
            "a.truth.ndjson",
            "b.csv",
            "b.truth.ndjson",
            "--json",
        ])
        .current_dir(dir)
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    Some((
        Score {
            predicted: n("predicted_pairs"),
            correct: n("correct_pairs"),
            truth: n("true_pairs"),
        },
        v["seconds"].as_f64().unwrap_or(0.0),
    ))
}

fn main() {
    let args = support::positional_args();
    let no_splink = std::env::args().any(|a| a == "--no-splink");
    let people: u32 = args.first().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let seed: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    // A match threshold to try instead of the model's (the review band
    // keeps its lower bound).
    let threshold: Option<f64> = args.get(2).and_then(|s| s.parse().ok());
    let cat = Catalog::embedded().expect("schemas");
    let ds = cat.get(DATASET).expect("dataset");
    let dir = std::env::temp_dir().join(format!("agencylink-linkage-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = |n: &str| BufWriter::new(File::create(dir.join(n)).expect("create"));
    let (mut a, mut b, mut ta, mut tb) = (
        file("a.csv"),
        file("b.csv"),
        file("a.truth.ndjson"),
        file("b.truth.ndjson"),
    );
    let stats = write_pair(
        ds,
        &PairOptions::new(seed, people),
        &mut a,
        &mut b,
        &mut ta,
        &mut tb,
    )
    .expect("synth");
    for w in [&mut a, &mut b, &mut ta, &mut tb] {
        w.flush().expect("flush");
    }
    drop((a, b, ta, tb));
    let mut truth = HashMap::new();
    read_truth(&dir.join("a.truth.ndjson"), "council-a", &mut truth);
    read_truth(&dir.join("b.truth.ndjson"), "council-b", &mut truth);
    println!(
        "{people} people, seed {seed}: {} in both extracts, {} only in A, {} only in B; B rows with an error: {} of {}",
        stats.in_both, stats.only_a, stats.only_b, stats.b.error_rows, stats.b.rows
    );
    let key = Key::from_base64("bench", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .expect("test key");
    let p = Pseudonymiser::new(key);
    let (recall, candidates) = blocking(&dir, &p, &truth);
    println!(
        "blocking: {candidates} candidate record pairs across the two extracts; blocking recall {recall:.4}"
    );

    let mut rows: Vec<(String, Score, f64)> = Vec::new();
    let exact_only = LinkModel {
        version: 1,
        // No probability reaches 2: exact match keys alone.
        match_threshold: 2.0,
        review_threshold: 2.0,
        ..LinkModel::default_model()
    };
    let (_, row) = timed(&dir, "exact", ds, &p, &exact_only, &truth, |_, _| {
        "agencylink, exact keys only".into()
    });
    rows.push(row);
    let default = LinkModel {
        version: 1,
        match_threshold: threshold.unwrap_or(LinkModel::default_model().match_threshold),
        ..LinkModel::default_model()
    };
    let (store, row) = timed(&dir, "default", ds, &p, &default, &truth, |m, queue| {
        format!(
            "agencylink, built-in model, p >= {} (review queue {queue})",
            m.match_threshold
        )
    });
    rows.push(row);
    let trained = linkage::train(
        store.linkage().expect("linkage"),
        &TrainOptions {
            match_threshold: threshold,
            ..TrainOptions::default()
        },
    )
    .expect("train");
    let (_, row) = timed(&dir, "trained", ds, &p, &trained, &truth, |m, queue| {
        format!(
            "agencylink, EM-trained model, p >= {} (review queue {queue})",
            m.match_threshold
        )
    });
    rows.push(row);
    if !no_splink && let Some((s, secs)) = splink(&dir) {
        rows.push(("Splink 5, cleartext, EM-trained, p >= 0.9".into(), s, secs));
    }
    println!(
        "{:<52} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7}",
        "linker", "predicted", "correct", "prec", "recall", "F1", "secs"
    );
    for (name, s, secs) in &rows {
        println!(
            "{name:<52} {:>9} {:>9} {:>7.4} {:>7.4} {:>7.4} {secs:>7.1}",
            s.predicted,
            s.correct,
            s.precision(),
            s.recall(),
            s.f1()
        );
    }
    println!(
        "true pairs: {}; peak RSS {:.1} MiB",
        rows.first().map_or(0, |r| r.1.truth),
        support::peak_rss_mib()
    );
    println!(
        "trained model: lambda {:.3e}, EM {} iterations (converged {}), m {:?}, u {:?}",
        trained.lambda,
        trained.training.as_ref().map_or(0, |t| t.iterations),
        trained.training.as_ref().is_some_and(|t| t.converged),
        trained.m,
        trained.u
    );
    if std::env::var_os("AGENCYLINK_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("kept {}", dir.display());
    }
}
