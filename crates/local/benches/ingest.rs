//! Embedded ingest throughput (not a timed test): synthesise N rows, then run
//! the whole ingest (validate, pseudonymise, curated NDJSON, merge and link
//! into SQLite, lineage) and report rows/s and peak RSS.
//! `cargo bench -p agencylink-local --bench ingest -- [ROWS] [DATASET] [RECORDS_BEFORE]`

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use agencylink_core::ingest::{IngestSummary, Sinks, UploadInfo, ingest};
use agencylink_core::pseudo::{Key, Pseudonymiser};
use agencylink_core::read::InputFormat;
use agencylink_core::schema::{Catalog, Dataset};
use agencylink_local::SqliteStore;
use agencylink_synth::{SynthOptions, World, write_csv_with_world};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../../core/benches/support/mod.rs"]
mod support;

use support::{cpu_seconds, peak_rss_mib, positional_args};

fn main() {
    let args = positional_args();
    let rows: u64 = args
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let id = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "police.cse_crime".to_owned());
    // Records already in the store (another agency's upload of the same
    // dataset and people), so the measured upload merges into indexes
    // and people that exist rather than into an empty store.
    let before: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let cat = Catalog::embedded().expect("schemas");
    let ds = cat.get(&id).expect("dataset");
    let dir = std::env::temp_dir().join(format!("agencylink-ingest-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let store = SqliteStore::open(&dir.join("agencylink.db")).expect("db");
    let key = Key::from_base64("bench", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .expect("test key");
    let p = Pseudonymiser::new(key);
    if before > 0 {
        let csv = synthesise(&dir, ds, 2, before);
        upload(ds, &p, &store, &dir, &csv, "bench-earlier");
        // Peak RSS from here on is the measured upload's.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }
    let csv = synthesise(&dir, ds, 1, rows);
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let s = upload(ds, &p, &store, &dir, &csv, "gmp-police");
    let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    println!(
        "ingest {id}: {} rows in {secs:.1} s = {:.0} rows/s into a store of {before} records; inserted {} linked {}; peak RSS {:.1} MiB; {cpu:.1} CPU s ({:.1} µs a row)",
        s.rows_in,
        s.rows_in as f64 / secs,
        s.records_inserted,
        s.people_linked,
        peak_rss_mib(),
        cpu * 1e6 / s.rows_in.max(1) as f64
    );
    println!(
        "probabilistic linkage: {}",
        serde_json::to_string(&s.linkage).unwrap_or_default()
    );
    if std::env::var_os("AGENCYLINK_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("kept {}", dir.display());
    }
}

/// A synthetic extract of `rows` rows (the world's people are the same for
/// every seed's extract, so uploads link).
fn synthesise(dir: &Path, ds: &Dataset, seed: u64, rows: u64) -> PathBuf {
    let csv = dir.join(format!("extract-{seed}.csv"));
    let world = World::new(1, Default::default()).expect("world");
    let mut out = BufWriter::with_capacity(1 << 16, File::create(&csv).expect("tmp"));
    write_csv_with_world(&world, ds, &SynthOptions::new(seed, rows), &mut out, None)
        .expect("synth");
    out.flush().expect("flush");
    csv
}

/// The whole ingest of one file, as `agency`.
fn upload(
    ds: &Dataset,
    p: &Pseudonymiser,
    store: &SqliteStore,
    dir: &Path,
    csv: &Path,
    agency: &str,
) -> IngestSummary {
    let info = UploadInfo {
        agency: agency.into(),
        sha256: format!("bench-{agency}"),
        source: "landing/bench.csv".into(),
        format: InputFormat::Csv,
        time: "2026-11-29T00:00:00Z".into(),
        outputs: vec![],
        mode: agencylink_core::ingest::IngestMode::Incremental,
    };
    let mut curated = BufWriter::new(
        File::create(dir.join(format!("curated-{agency}.ndjson"))).expect("curated"),
    );
    let (mut rj, mut rc) = (std::io::sink(), std::io::sink());
    let mut input = BufReader::with_capacity(1 << 16, File::open(csv).expect("open"));
    let s = ingest(
        ds,
        p,
        store,
        &store.lineage(),
        &info,
        &mut input,
        Sinks {
            curated: &mut curated,
            report_json: &mut rj,
            report_csv: &mut rc,
        },
        |_| {},
    )
    .expect("ingest");
    curated.flush().expect("flush");
    s
}
