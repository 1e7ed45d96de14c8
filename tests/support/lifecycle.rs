//! The store lifecycle the fault-injection suites run, on any backend: two
//! councils' overlapping `council.missing_episode` extracts (so people
//! link), the first council's correction, a withdrawal, a key rotation
//! (opened, a file re-sent under both keys, the store migrated) and a
//! retention run. Included by path (`#[path]`) from
//! `crates/local/tests/faults.rs` (SQLite) and
//! `crates/aws/tests/dynamo_faults.rs` (DynamoDB), whose crates both have
//! `agencylink-synth` and `csv` as dev-dependencies.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use agencylink_core::ingest::{IngestMode, Sinks, UploadInfo, ingest};
use agencylink_core::memory::MemoryObjectStore;
use agencylink_core::ports::{ChainLog, RecordStore};
use agencylink_core::pseudo::Pseudonymiser;
use agencylink_core::pseudo::key::Key;
use agencylink_core::read::InputFormat;
use agencylink_core::schema::{Catalog, Dataset};
use agencylink_synth::{SynthOptions, World, write_csv_with_world};

const DS: &str = "council.missing_episode";

/// One step of the lifecycle.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// Ingest file `i` (0: council-a's, 1: council-b's, 2: council-a's corrected).
    Ingest(usize),
    /// Withdraw council-b's upload.
    Withdraw,
    /// Open a key rotation from k1 to k2.
    Rotate,
    /// council-a sends its file again while the rotation is open (a
    /// duplicate, read under both keys for translations).
    Resend,
    /// Migrate the store to k2.
    Migrate,
    /// A retention run on a day when about half the records are past the
    /// dataset's period (seven years after mid-2025, the middle of the
    /// synthetic extracts' dates).
    Expire,
}

/// Every step, in order.
pub(crate) const STEPS: [Step; 8] = [
    Step::Ingest(0),
    Step::Ingest(1),
    Step::Ingest(2),
    Step::Withdraw,
    Step::Rotate,
    Step::Resend,
    Step::Migrate,
    Step::Expire,
];

/// The extracts, the keys and a scratch directory (removed on drop).
pub(crate) struct Lifecycle {
    pub(crate) dir: PathBuf,
    files: Vec<(String, PathBuf, String)>,
    ds: Arc<Dataset>,
    pseudo: Pseudonymiser,
    next: Pseudonymiser,
}

fn key(kid: &str, b64: &str) -> Pseudonymiser {
    Pseudonymiser::new(Key::from_base64(kid, b64).expect("a published test key"))
}

impl Lifecycle {
    /// Extracts of `rows` rows each, under a directory named after `name`.
    pub(crate) fn new(name: &str, rows: u64) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "agencylink-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let ds = Catalog::embedded()
            .expect("catalog")
            .get(DS)
            .expect("dataset")
            .clone();
        let world = World::new(3, Default::default()).expect("world");
        let mut files = Vec::new();
        for (i, agency) in ["council-a", "council-b"].into_iter().enumerate() {
            let path = dir.join(format!("{agency}.csv"));
            let mut out = std::fs::File::create(&path).expect("create");
            write_csv_with_world(
                &world,
                &ds,
                &SynthOptions::new(10 + i as u64, rows),
                &mut out,
                None,
            )
            .expect("synth");
            out.flush().expect("flush");
            files.push((agency.to_owned(), path, format!("sha-{agency}")));
        }
        // The correction: council-a's file again, its first rows' interview
        // offer flipped (replacing those records) and its last 3 rows left
        // out (an incremental upload keeps them).
        let mut reader = csv::Reader::from_path(&files[0].1).expect("a");
        let header = reader.headers().expect("header").clone();
        let col = header
            .iter()
            .position(|h| h == "return_interview_offered")
            .expect("column");
        let all: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
        let corrected = dir.join("council-a-corrected.csv");
        let mut out = csv::Writer::from_path(&corrected).expect("create");
        out.write_record(&header).expect("header");
        for (i, row) in all[..all.len() - 3].iter().enumerate() {
            let mut fields: Vec<String> = row.iter().map(str::to_owned).collect();
            if i < 8 {
                fields[col] = match fields[col].as_str() {
                    "true" => "false".into(),
                    "false" => "true".into(),
                    "Y" => "N".into(),
                    "N" => "Y".into(),
                    other => other.to_owned(),
                };
            }
            out.write_record(&fields).expect("row");
        }
        out.flush().expect("flush");
        files.push((
            "council-a".to_owned(),
            corrected,
            "sha-council-a-2".to_owned(),
        ));
        Lifecycle {
            dir,
            files,
            ds,
            pseudo: key("k1", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
            next: key("k2", "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="),
        }
    }

    fn info(&self, agency: &str, sha: &str) -> UploadInfo {
        UploadInfo {
            agency: agency.to_owned(),
            sha256: sha.to_owned(),
            source: format!("landing/{agency}/{DS}/x.csv"),
            format: InputFormat::Csv,
            time: "2026-11-29T00:00:00Z".into(),
            outputs: vec![],
            mode: IngestMode::Incremental,
        }
    }

    /// Run `step` on the store; an ingest adds its upload id to `uploads`.
    pub(crate) fn run(
        &self,
        step: Step,
        records: &dyn RecordStore,
        log: &dyn ChainLog,
        uploads: &mut Vec<String>,
    ) -> Result<(), String> {
        let text = |e: &dyn std::fmt::Display| e.to_string();
        match step {
            Step::Rotate => agencylink_core::rotation::open(
                records,
                log,
                self.pseudo.kid(),
                self.next.kid(),
                "2026-11-30T01:00:00Z",
            )
            .map(|_| ())
            .map_err(|e| text(&e)),
            Step::Migrate => agencylink_core::rotation::migrate(
                records,
                log,
                agencylink_core::rotation::Scope::Store,
                false,
                "2026-11-30T02:00:00Z",
            )
            .map(|_| ())
            .map_err(|e| text(&e)),
            Step::Resend => {
                let (agency, path, sha) = &self.files[0];
                let mut input = BufReader::new(std::fs::File::open(path).expect("open"));
                agencylink_core::rotation::before_ingest(
                    records,
                    log,
                    &self.ds,
                    &self.pseudo,
                    &self.next,
                    &self.info(agency, sha),
                    &mut input,
                )
                .map_err(|e| text(&e))?;
                self.run(Step::Ingest(0), records, log, uploads)
            }
            Step::Ingest(i) => {
                let (agency, path, sha) = &self.files[i];
                let (mut c, mut rj, mut rc) = (std::io::sink(), std::io::sink(), std::io::sink());
                let mut input = BufReader::new(std::fs::File::open(path).expect("open"));
                let s = ingest(
                    &self.ds,
                    &self.pseudo,
                    records,
                    log,
                    &self.info(agency, sha),
                    &mut input,
                    Sinks {
                        curated: &mut c,
                        report_json: &mut rj,
                        report_csv: &mut rc,
                    },
                    |_| {},
                )
                .map_err(|e| text(&e))?;
                uploads.push(s.upload_id);
                Ok(())
            }
            Step::Withdraw => agencylink_core::withdraw::withdraw(
                records,
                log,
                &MemoryObjectStore::default(),
                &uploads[1],
                "sent in error",
                "2026-11-30T00:00:00Z",
            )
            .map(|_| ())
            .map_err(|e| text(&e)),
            Step::Expire => agencylink_core::retention::apply(
                records,
                log,
                &[&self.ds],
                "2032-07-01",
                "2032-07-01T00:00:00Z",
            )
            .map_err(|e| text(&e))
            .and_then(|runs| {
                if runs
                    .iter()
                    .any(|r| r.event.as_ref().is_some_and(|e| e.records_removed > 0))
                {
                    Ok(())
                } else {
                    Err("the retention run expired nothing".into())
                }
            }),
        }
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
