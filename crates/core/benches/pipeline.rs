//! Pipeline throughput (not a timed test): synthesise N rows of a dataset
//! to a temporary file, then measure validation alone (on every core) and
//! the whole curate path (CSV in, validation, pseudonymisation, curated
//! NDJSON out) on one thread and on every core, and report peak RSS.
//! `taskset -c 0` runs it all on one core.
//! `cargo bench -p agencylink-core --bench pipeline -- [ROWS] [DATASET] [validate|e2e]`
//! (the third argument runs one phase alone, for a profiler).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::time::Instant;

use agencylink_core::curate::{CurateScratch, Curator, Provenance};
use agencylink_core::parallel::{available_threads, each_row_in_order};
use agencylink_core::pseudo::{Key, Pseudonymiser};
use agencylink_core::read::{self, InputFormat, Row};
use agencylink_core::report::validate_all;
use agencylink_core::schema::{Catalog, Dataset};
use agencylink_core::validate::{RowError, RowValidator};
use agencylink_synth::{SynthOptions, World, write_csv_with_world};

// The binary uses mimalloc; measure what ships.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod support;

use support::{peak_rss_mib, positional_args};

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
    let phase = args.get(2).map(String::as_str).unwrap_or("both");
    let cat = Catalog::embedded().expect("schemas");
    let ds = cat.get(&id).expect("dataset");
    let path = std::env::temp_dir().join(format!("agencylink-bench-{}.csv", std::process::id()));

    let t = Instant::now();
    let world = World::new(1, Default::default()).expect("world");
    {
        let mut out = BufWriter::with_capacity(1 << 16, File::create(&path).expect("tmp"));
        write_csv_with_world(&world, ds, &SynthOptions::new(1, rows), &mut out, None)
            .expect("synth");
        out.flush().expect("flush");
    }
    let synth_s = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "dataset {id}: {rows} rows, {:.0} MiB CSV",
        size as f64 / 1048576.0
    );
    println!("synth            {:>10.0} rows/s", rows as f64 / synth_s);

    let v = RowValidator::new(ds);
    if phase != "e2e" {
        validate_phase(&path, ds, &v, rows);
    }
    if phase != "validate" {
        e2e_phase(&path, ds, &v, rows);
    }
    let _ = std::fs::remove_file(&path);
}

fn validate_phase(path: &std::path::Path, ds: &Dataset, v: &RowValidator<'_>, rows: u64) {
    let t = Instant::now();
    let input = BufReader::with_capacity(1 << 16, File::open(path).expect("open"));
    let mut src = read::open(InputFormat::Csv, input, ds);
    let summary = validate_all(src.as_mut(), v, |_| Ok(())).expect("validate");
    let val_s = t.elapsed().as_secs_f64();
    assert_eq!(summary.valid_rows, rows);
    println!(
        "validate         {:>10.0} rows/s   peak RSS so far {:.1} MiB",
        rows as f64 / val_s,
        peak_rss_mib()
    );
}

fn e2e_phase(path: &std::path::Path, ds: &Dataset, v: &RowValidator<'_>, rows: u64) {
    let key = Key::from_base64("bench", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .expect("test key");
    let p = Pseudonymiser::new(key);
    let curator = Curator::new(
        ds,
        &p,
        Provenance {
            agency: "gmp-police".into(),
            upload_id: "bench".into(),
        },
    );
    // One thread (the rows as the reader lends them), then every core the
    // process may use: the same rows, the same bytes out.
    let mut one = 0.0;
    for threads in [1, available_threads()] {
        if threads == 1 && one > 0.0 {
            break;
        }
        let t = Instant::now();
        let input = BufReader::with_capacity(1 << 16, File::open(path).expect("open"));
        let mut src = read::open(InputFormat::Csv, input, ds);
        let mut out = BufWriter::with_capacity(1 << 16, std::io::sink());
        let mut n = 0u64;
        let work = |row: &Row, scratch: &mut CurateScratch, errors: &mut Vec<RowError>| {
            curator.check_and_curate(v, row, errors, scratch)
        };
        each_row_in_order(src.as_mut(), threads, &work, &mut |rec,
                                                              _|
         -> std::io::Result<
            bool,
        > {
            if let Some(rec) = rec {
                out.write_all(rec.body.as_str().as_bytes())?;
                out.write_all(b"\n")?;
                n += 1;
            }
            Ok(true)
        })
        .expect("curate");
        let rate = rows as f64 / t.elapsed().as_secs_f64();
        assert_eq!(n, rows);
        if threads == 1 {
            one = rate;
        }
        println!(
            "end to end, {threads} thread{} {:>10.0} rows/s   ({:.2}x one thread)   peak RSS so far {:.1} MiB",
            if threads == 1 { " " } else { "s" },
            rate,
            rate / one,
            peak_rss_mib()
        );
    }
}
