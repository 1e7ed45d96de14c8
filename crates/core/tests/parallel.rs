//! Rows checked and curated on many threads come out exactly as on one:
//! the same curated lines, the same errors, in the same order, ending the
//! same way (read to the end, a file error part-way, a stop, a panic).

use agencylink_core::curate::{CurateScratch, Curator, Provenance};
use agencylink_core::parallel::{End, each_row_in_order};
use agencylink_core::pseudo::{Key, Pseudonymiser};
use agencylink_core::read::{self, FileError, InputFormat, Row};
use agencylink_core::schema::{Catalog, Dataset};
use agencylink_core::validate::{RowError, RowValidator};
use agencylink_synth::{SynthOptions, write_csv};

/// A pseudonymiser under the spec's published test key.
fn pseudonymiser() -> Pseudonymiser {
    Pseudonymiser::new(
        Key::from_base64("k1", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .expect("valid test key"),
    )
}

/// A synthetic extract of `rows` rows with about a fifth of them wrong.
fn extract(ds: &Dataset, rows: u64) -> Vec<u8> {
    let mut csv = Vec::new();
    let opts = SynthOptions {
        invalid_rate: 0.2,
        ..SynthOptions::new(7, rows)
    };
    write_csv(ds, &opts, &mut csv, None).expect("synth");
    csv
}

/// The same rows as NDJSON, one shaped row object a line.
fn as_ndjson(ds: &Dataset, csv: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut src = read::open(InputFormat::Csv, csv, ds);
    while let Some(row) = src.next_row() {
        let row = row.expect("row");
        serde_json::to_writer(&mut out, &row.value).expect("json");
        out.push(b'\n');
    }
    out
}

/// What a run handed over, one line a row (the curated line, or the
/// row's errors), and how it ended.
fn run(
    ds: &Dataset,
    format: InputFormat,
    input: &[u8],
    threads: usize,
    stop_after: Option<usize>,
) -> (Vec<String>, End) {
    let p = pseudonymiser();
    let curator = Curator::new(
        ds,
        &p,
        Provenance {
            agency: "test-agency".into(),
            upload_id: "u_test".into(),
        },
    );
    let validator = RowValidator::new(ds);
    let work = |row: &Row, scratch: &mut CurateScratch, errors: &mut Vec<RowError>| {
        curator.check_and_curate(&validator, row, errors, scratch)
    };
    let mut seen = Vec::new();
    let mut src = read::open(format, input, ds);
    let end = each_row_in_order(src.as_mut(), threads, &work, &mut |rec,
                                                                    errors|
     -> Result<
        bool,
        std::convert::Infallible,
    > {
        seen.push(match rec {
            Some(rec) => rec.body.as_str().to_owned(),
            None => format!("{errors:?}"),
        });
        Ok(stop_after.is_none_or(|n| seen.len() < n))
    })
    .expect("infallible");
    (seen, end)
}

fn file_error(end: &End) -> Option<&FileError> {
    match end {
        End::FileError(e) => Some(e),
        _ => None,
    }
}

#[test]
fn every_dataset_comes_out_the_same_on_one_thread_and_on_many() {
    let cat = Catalog::embedded().expect("schemas");
    for ds in cat.latest() {
        // Several chunks, the last one part-full. Investigations are one a
        // covered crime, so about a tenth as many rows.
        let mut csv = extract(ds, 1_300);
        if csv.iter().filter(|&&b| b == b'\n').count() < 600 {
            csv = extract(ds, 13_000);
        }
        let ndjson = as_ndjson(ds, &csv);
        for (format, input) in [(InputFormat::Csv, &csv), (InputFormat::Ndjson, &ndjson)] {
            let (one, end) = run(ds, format, input, 1, None);
            assert!(matches!(end, End::Read), "{} {format:?}: {end:?}", ds.id);
            assert!(
                one.len() >= 1_000,
                "{} {format:?}: {} rows",
                ds.id,
                one.len()
            );
            assert!(
                one.iter().any(|l| l.starts_with('[')),
                "{}: some rows are rejected",
                ds.id
            );
            for threads in [2, 5] {
                let (many, end) = run(ds, format, input, threads, None);
                assert!(matches!(end, End::Read), "{} {format:?}: {end:?}", ds.id);
                assert_eq!(many, one, "{} {format:?} on {threads} threads", ds.id);
            }
        }
    }
}

#[test]
fn a_file_error_part_way_ends_the_run_where_one_thread_ends_it() {
    let cat = Catalog::embedded().expect("schemas");
    let ds = cat.get("police.cse_crime").expect("dataset");
    let csv = extract(ds, 1_500);
    let lines: Vec<&[u8]> = csv.split(|&b| b == b'\n').collect();
    // Line 900 (about row 899) not UTF-8, and separately a NUL byte: both
    // are found by the shaping on a worker, not by the reader.
    for bad in [&b"\xff"[..], &b"\0"[..]] {
        let mut broken = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if i == 899 {
                broken.extend_from_slice(bad);
            }
            broken.extend_from_slice(line);
            if i + 1 < lines.len() {
                broken.push(b'\n');
            }
        }
        let (one, end_one) = run(ds, InputFormat::Csv, &broken, 1, None);
        let e = file_error(&end_one).expect("a file error").clone();
        assert!(
            matches!(
                e,
                FileError::NotUtf8 { line: 900 } | FileError::Binary { line: 900 }
            ),
            "{e:?}"
        );
        assert_eq!(one.len(), 898);
        for threads in [2, 4] {
            let (many, end) = run(ds, InputFormat::Csv, &broken, threads, None);
            assert_eq!(file_error(&end), Some(&e), "{threads} threads");
            assert_eq!(many, one, "{threads} threads");
        }
    }
    // A file error the reader finds (an unclosed quote running to the
    // end) ends the same way too.
    let mut unclosed = csv.clone();
    let at = lines[..1_200].iter().map(|l| l.len() + 1).sum::<usize>();
    unclosed.insert(at, b'"');
    let (one, end_one) = run(ds, InputFormat::Csv, &unclosed, 1, None);
    let (many, end_many) = run(ds, InputFormat::Csv, &unclosed, 3, None);
    assert_eq!(many, one);
    assert_eq!(
        format!("{end_many:?}"),
        format!("{end_one:?}"),
        "the same end"
    );
}

#[test]
fn an_empty_or_header_only_file_ends_as_on_one_thread() {
    let cat = Catalog::embedded().expect("schemas");
    let ds = cat.get("police.cse_crime").expect("dataset");
    let csv = extract(ds, 3);
    let header = &csv[..=csv.iter().position(|&b| b == b'\n').expect("header")];
    for input in [&b""[..], header] {
        let (one, end_one) = run(ds, InputFormat::Csv, input, 1, None);
        let (many, end_many) = run(ds, InputFormat::Csv, input, 3, None);
        assert!(one.is_empty() && many.is_empty());
        let e = file_error(&end_one).expect("a file error");
        assert!(
            matches!(e, FileError::Empty | FileError::HeaderOnly),
            "{e:?}"
        );
        assert_eq!(file_error(&end_many), Some(e));
    }
}

#[test]
fn a_stop_hands_over_no_row_after_it() {
    let cat = Catalog::embedded().expect("schemas");
    let ds = cat.get("police.cse_crime").expect("dataset");
    let csv = extract(ds, 2_000);
    let (one, _) = run(ds, InputFormat::Csv, &csv, 1, None);
    for threads in [1, 3] {
        let (seen, end) = run(ds, InputFormat::Csv, &csv, threads, Some(700));
        assert!(matches!(end, End::Stopped), "{end:?}");
        assert_eq!(seen, one[..700], "{threads} threads");
    }
}

#[test]
fn a_panic_in_the_work_reaches_the_caller() {
    let cat = Catalog::embedded().expect("schemas");
    let ds = cat.get("police.cse_crime").expect("dataset");
    let csv = extract(ds, 1_000);
    let work = |row: &Row, _: &mut (), _: &mut Vec<RowError>| {
        assert!(row.row != 600, "planted bug at row 600");
        Some(row.row)
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut src = read::open(InputFormat::Csv, csv.as_slice(), ds);
        let mut last = 0;
        let _ = each_row_in_order(src.as_mut(), 3, &work, &mut |row, _| -> Result<bool, ()> {
            last = row.take().unwrap_or_default();
            Ok(true)
        });
        last
    }));
    let panic = result.expect_err("the panic is raised on the caller's thread");
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    assert!(message.contains("planted bug"), "{message}");
}

/// An extract of `rows` copies of a synthetic row whose first cell is
/// `cell` bytes long, made as it is read.
struct LongRows {
    format: InputFormat,
    header: Vec<String>,
    template: Vec<String>,
    rows: usize,
    cell: usize,
    next: usize,
    line: Vec<u8>,
    at: usize,
}

impl LongRows {
    fn new(ds: &Dataset, format: InputFormat, rows: usize, cell: usize) -> Self {
        let csv = String::from_utf8(extract_clean(ds)).expect("utf-8");
        let mut lines = csv.lines();
        let split = |l: Option<&str>| -> Vec<String> {
            l.expect("a line").split(',').map(str::to_owned).collect()
        };
        let (header, template) = (split(lines.next()), split(lines.next()));
        let line = match format {
            InputFormat::Csv => format!("{}\n", header.join(",")).into_bytes(),
            InputFormat::Ndjson => Vec::new(),
        };
        LongRows {
            format,
            header,
            template,
            rows,
            cell,
            next: 0,
            line,
            at: 0,
        }
    }
}

/// One synthetic row with no mistake in it, under its header.
fn extract_clean(ds: &Dataset) -> Vec<u8> {
    let mut csv = Vec::new();
    write_csv(ds, &SynthOptions::new(3, 1), &mut csv, None).expect("synth");
    csv
}

impl std::io::Read for LongRows {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.line.len() {
            if self.next == self.rows {
                return Ok(0);
            }
            self.next += 1;
            let mut cells = self.template.clone();
            cells[0] = "x".repeat(self.cell);
            self.line = match self.format {
                InputFormat::Csv => format!("{}\n", cells.join(",")).into_bytes(),
                InputFormat::Ndjson => {
                    let row: serde_json::Map<String, serde_json::Value> = self
                        .header
                        .iter()
                        .zip(cells)
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(k, v)| (k.clone(), serde_json::Value::String(v)))
                        .collect();
                    let mut line = serde_json::to_vec(&row).expect("json");
                    line.push(b'\n');
                    line
                }
            };
            self.at = 0;
        }
        let n = buf.len().min(self.line.len() - self.at);
        buf[..n].copy_from_slice(&self.line[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Long rows are handed to workers a few at a time, not a chunk of 256:
/// on two threads, 256-row chunks of rows near the row limit made
/// `validate` peak at 847 MB.
#[test]
fn long_rows_are_in_flight_a_few_at_a_time() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let cat = Catalog::embedded().expect("schemas");
    let ds = cat.get("police.cse_crime").expect("dataset");
    for format in [InputFormat::Csv, InputFormat::Ndjson] {
        for (cell, most) in [(100, 256 * 6), (100 << 10, 12)] {
            // Rows a worker has done that the caller has not yet taken.
            let (done, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let work = |row: &Row, _: &mut (), _: &mut Vec<RowError>| {
                let now = done.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                Some(row.row)
            };
            let input = std::io::BufReader::new(LongRows::new(ds, format, 400, cell));
            let mut src = read::open(format, input, ds);
            let mut seen = 0;
            let end =
                each_row_in_order(src.as_mut(), 2, &work, &mut |row, _| -> Result<bool, ()> {
                    done.fetch_sub(1, Ordering::SeqCst);
                    seen += 1;
                    assert_eq!(row.take(), Some(seen), "in order");
                    Ok(true)
                })
                .expect("no error");
            assert!(matches!(end, End::Read), "{format:?}: {end:?}");
            assert_eq!(seen, 400, "{format:?}");
            let peak = peak.load(Ordering::SeqCst);
            assert!(
                peak <= most,
                "{format:?}, {cell}-byte cells: {peak} rows in flight, at most {most} expected"
            );
            if cell == 100 {
                // Short rows still go in full chunks (the bound above is
                // not met by handing rows over one at a time).
                assert!(peak > 12, "{format:?}: {peak} rows in flight");
            }
        }
    }
}
