//! One upload, start to finish: read → validate → pseudonymise → curated
//! NDJSON and rejection reports → merge and link → a lineage event.
//!
//! The upload id is derived from (agency, dataset, file SHA-256), so a file
//! delivered twice is recognised from lineage and changes nothing. Merging is
//! idempotent per record, so an ingest killed half-way and run again leaves no
//! duplicate and conserved counts.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufRead, Write};
use std::sync::mpsc;

use serde::Serialize;

use crate::csv_safe::quoted;
use crate::curate::{CurateScratch, Curator, Provenance, short_hash};
use crate::events::{
    LineageEvent, RejectionCount, SchemaUsed, ScoringModel, UploadEvent, UploadLinkage,
};
use crate::lineage;
use crate::link::{LinkSession, MergeStats, merge_and_link_returning};
use crate::linkage::LinkOutcome;
use crate::ports::{ChainLog, RecordStore, StoreError, StoredRecord};
use crate::pseudo::Pseudonymiser;
use crate::read::{self, InputFormat};
use crate::report::{JsonReportWriter, Summary};
use crate::schema::{Dataset, MatchRole};
use crate::validate::{DateBounds, RowError, RowValidator};

/// Records per merge batch. Up to three batches are in memory at once (one
/// being curated, one queued, one being merged) at ~2.5 KB a record; the
/// SQLite store indexes a whole upload at once, so a bigger batch would buy
/// nothing but memory (8,000 took an ingest to 212 MiB).
const BATCH: usize = 2_000;

/// An ingest that could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing an output failed.
    #[error("writing an output: {0}")]
    Io(#[from] io::Error),
    /// The upload's time is not an RFC 3339 date-time, so the latest date a
    /// row may carry is not known.
    #[error("the upload time `{0}` is not an RFC 3339 date-time")]
    Time(String),
    /// The store's records were pseudonymised under another key: this
    /// upload's tokens would match none of them.
    #[error("{0}")]
    KeyMismatch(#[from] crate::lineage::KeyMismatch),
}

/// What the caller supplies about the upload.
#[derive(Debug, Clone)]
pub struct UploadInfo {
    /// Uploading agency id.
    pub agency: String,
    /// SHA-256 (hex) of the whole file, computed while it was received.
    pub sha256: String,
    /// Where the upload landed (object key).
    pub source: String,
    /// Input format.
    pub format: InputFormat,
    /// Event time, RFC 3339 (the core reads no clock). Its date is also
    /// "today" for the rows' date bounds: no date field may be later than
    /// it plus [`crate::validate::FUTURE_MARGIN_DAYS`].
    pub time: String,
    /// Object keys the caller will store the outputs under.
    pub outputs: Vec<String>,
    /// Incremental (the default) or a full refresh of the agency's dataset.
    pub mode: IngestMode,
}

/// How an upload relates to what the agency sent before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IngestMode {
    /// New and corrected rows; what the extract leaves out stays.
    #[default]
    Incremental,
    /// The agency's whole current extract of the dataset: its earlier
    /// records that this extract leaves out are retired (removed as a
    /// withdrawal removes records) once the upload is merged. Nothing is
    /// retired when a row was rejected: a record must not vanish because
    /// its new row had a typo.
    Full,
}

/// Where curated rows and rejection reports go.
#[allow(missing_debug_implementations)]
pub struct Sinks<'a> {
    /// Curated NDJSON, one record per line.
    pub curated: &'a mut dyn Write,
    /// The rejection report, JSON.
    pub report_json: &'a mut dyn Write,
    /// The rejection report, CSV for people.
    pub report_csv: &'a mut dyn Write,
}

/// The ingest summary printed as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestSummary {
    /// Upload id.
    pub upload_id: String,
    /// Agency.
    pub agency: String,
    /// Dataset id.
    pub dataset: String,
    /// Data rows read.
    pub rows_in: u64,
    /// Rows that passed validation and were merged.
    pub rows_accepted: u64,
    /// Rows rejected (in the report).
    pub rows_rejected: u64,
    /// Records new to the store.
    pub records_inserted: u64,
    /// Records that replaced an earlier version.
    pub records_replaced: u64,
    /// Records identical to what the store had.
    pub records_unchanged: u64,
    /// Records linked to a person another record already established.
    pub people_linked: u64,
    /// What probabilistic linkage did (all zero for an exact-only store).
    pub linkage: LinkOutcome,
    /// The linkage model version that scored this upload's pairs, when any
    /// pair was scored (0 is the built-in default model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linkage_model: Option<u32>,
    /// Accepted rows that lack a field linkage uses (`given_name`, `dob`),
    /// by field: linked on what they have, and counted here so a reader of
    /// the data quality knows.
    pub missing_linkage_fields: BTreeMap<String, u64>,
    /// SHA-256 of the file.
    pub sha256: String,
    /// The file was ingested before; nothing changed.
    pub duplicate: bool,
    /// File-level problems (the upload failed; nothing merged).
    pub file_errors: Vec<crate::report::FileProblem>,
    /// A full refresh: the agency's earlier records of the dataset that
    /// this extract left out, retired (absent for an incremental upload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_retired: Option<u64>,
    /// Why a full refresh retired nothing, when it did not try.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retire_skipped: Option<String>,
}

/// The upload id for a file.
pub fn upload_id(agency: &str, dataset: &str, sha256: &str) -> String {
    format!(
        "u_{}",
        short_hash(
            &[
                b"agencylink/v1/upload|",
                agency.as_bytes(),
                b"|",
                dataset.as_bytes(),
                b"|",
                sha256.as_bytes()
            ],
            10
        )
    )
}

/// The date bounds of an upload's rows: "today" is the date of its time.
fn date_bounds(info: &UploadInfo) -> Result<DateBounds, IngestError> {
    DateBounds::on(&info.time).ok_or_else(|| IngestError::Time(info.time.clone()))
}

/// Run one upload.
#[allow(clippy::too_many_arguments)]
pub fn ingest(
    dataset: &Dataset,
    pseudo: &Pseudonymiser,
    records: &dyn RecordStore,
    lineage_log: &dyn ChainLog,
    info: &UploadInfo,
    input: &mut dyn BufRead,
    sinks: Sinks<'_>,
    mut progress: impl FnMut(u64),
) -> Result<IngestSummary, IngestError> {
    // Refused before anything is read or begun.
    date_bounds(info)?;
    let upload = upload_id(&info.agency, &dataset.id, &info.sha256);
    let mut summary = IngestSummary {
        upload_id: upload.clone(),
        agency: info.agency.clone(),
        dataset: dataset.id.clone(),
        sha256: info.sha256.clone(),
        ..IngestSummary::default()
    };
    // One upload is one store session: SQLite publishes it in one
    // transaction with its lineage event (and a full refresh's retiring),
    // so a reader never sees merged records that lineage does not account
    // for, and a killed ingest leaves nothing half-merged. The checks run
    // inside it, under the write lock, so two processes sending the same
    // file (or a key migration beside an ingest) cannot both pass them.
    crate::withdraw::in_session(records, || {
        // Before anything else, the duplicate check included: under another
        // key even a file seen before would be a different upload's tokens.
        // Both read a page or an upload's events, never the whole log.
        lineage::check_store_key_in(lineage_log, pseudo.kid().as_str())??;
        let earlier: Vec<LineageEvent> = lineage_log
            .upload_entries(&upload)?
            .iter()
            .map(LineageEvent::from_entry)
            .collect();
        // The file's latest ingest, unless it was withdrawn since: a
        // withdrawn file sent again is a new upload of the same id.
        if let Some(done) = earlier
            .iter()
            .rev()
            .find_map(|e| match e {
                LineageEvent::Ingest(u) if u.upload_id == upload => Some(Some(u)),
                LineageEvent::Withdrawn(w) if w.upload_id == upload => Some(None),
                _ => None,
            })
            .flatten()
        {
            summary.rows_in = done.rows_in;
            summary.rows_accepted = done.rows_accepted;
            summary.rows_rejected = done.rows_rejected;
            summary.records_unchanged = done.rows_accepted;
            summary.duplicate = true;
            return Ok(summary);
        }
        if records.writes_through() {
            lineage::append_event(
                lineage_log,
                &LineageEvent::IngestStarted(crate::events::IngestStartedEvent {
                    upload_id: upload.clone(),
                    agency: info.agency.clone(),
                    dataset: dataset.id.clone(),
                    file_sha256: info.sha256.clone(),
                    source: info.source.clone(),
                    time: info.time.clone(),
                }),
            )?;
        }
        merge_and_account(
            dataset,
            pseudo,
            records,
            lineage_log,
            info,
            &upload,
            input,
            sinks,
            &mut progress,
            summary,
        )
    })
}

/// The body of [`ingest`]'s store session: merge the rows, retire what a
/// full refresh left out, append the closing lineage event.
#[allow(clippy::too_many_arguments)]
fn merge_and_account(
    dataset: &Dataset,
    pseudo: &Pseudonymiser,
    records: &dyn RecordStore,
    lineage_log: &dyn ChainLog,
    info: &UploadInfo,
    upload: &str,
    input: &mut dyn BufRead,
    sinks: Sinks<'_>,
    progress: &mut dyn FnMut(u64),
    mut summary: IngestSummary,
) -> Result<IngestSummary, IngestError> {
    let (counts, merged, session, missing, seen) = merge_rows(
        dataset, pseudo, records, info, upload, input, sinks, progress,
    )?;
    summary.rows_in = counts.rows;
    summary.rows_rejected = counts.invalid_rows;
    summary.rows_accepted = counts.valid_rows;
    // A full refresh retires, in the same session after the merge, what
    // the extract left out; the ingest event below accounts for both.
    let mut retired_from = BTreeMap::new();
    if info.mode == IngestMode::Full {
        if counts.has_file_errors() {
            summary.retire_skipped = Some("the file was refused".into());
        } else if counts.invalid_rows > 0 {
            summary.retire_skipped = Some(format!(
                "{} rows were rejected: a full refresh retires nothing until every row is accepted (fix them and send the file again)",
                counts.invalid_rows
            ));
        } else {
            let (gone, from) = retire_absent(records, &info.agency, &dataset.id, &seen)?;
            summary.records_retired = Some(gone.records_removed);
            retired_from = from;
        }
        summary.records_retired.get_or_insert(0);
    }
    if counts.has_file_errors() {
        // A broken file is refused whole: what was merged before the problem
        // was found stays (it is valid and idempotent), and lineage says so.
        summary.file_errors = counts.file_errors.clone();
    }
    summary.records_inserted = merged.inserted;
    summary.records_replaced = merged.replaced;
    summary.records_unchanged = merged.unchanged;
    summary.people_linked = merged.linked;
    summary.linkage = session.outcome;
    summary.linkage_model = session.model().map(|m| m.version);
    summary.missing_linkage_fields = missing;

    // The uploads whose record versions this one superseded (what merging
    // found), rather than every earlier upload of the agency and dataset,
    // which would need the whole log.
    let replaced_uploads: Vec<String> = merged
        .replaced_from
        .keys()
        .filter(|u| *u != upload)
        .cloned()
        .collect();
    let model = session.model().map(|m| ScoringModel {
        model_version: m.version,
        scheme: m.scheme.clone(),
        match_threshold: m.match_threshold,
        review_threshold: m.review_threshold,
    });
    let event = UploadEvent {
        upload_id: upload.to_owned(),
        agency: info.agency.clone(),
        dataset: dataset.id.clone(),
        schema_version: dataset.version,
        // Which schema the rows were checked and pseudonymised against: its
        // hash, and whether it was the build's own or read from a directory.
        schema: Some(SchemaUsed::new(&dataset.provenance, &dataset.file)),
        scheme: pseudo.scheme().to_owned(),
        key_id: pseudo.kid().as_str().to_owned(),
        file_sha256: info.sha256.clone(),
        source: info.source.clone(),
        format: if info.format == InputFormat::Csv {
            "csv"
        } else {
            "ndjson"
        }
        .to_owned(),
        rows_in: summary.rows_in,
        rows_accepted: summary.rows_accepted,
        rows_rejected: summary.rows_rejected,
        records_inserted: summary.records_inserted,
        records_replaced: summary.records_replaced,
        records_unchanged: summary.records_unchanged,
        people_linked: summary.people_linked,
        linkage: Some(UploadLinkage {
            outcome: summary.linkage,
            model,
        }),
        missing_linkage_fields: Some(summary.missing_linkage_fields.clone()),
        replaces_uploads: (summary.records_replaced > 0).then_some(replaced_uploads),
        // Whose record versions this upload superseded, and how many of each:
        // with `records_inserted` and `records_replaced`, what lets
        // `lineage verify` reconcile each upload's live records with the store.
        records_replaced_from: Some(merged.replaced_from),
        records_retired: summary.records_retired,
        records_retired_from: (!retired_from.is_empty()).then_some(retired_from),
        rejections: counts
            .by_rule
            .iter()
            .map(|((field, code), rc)| RejectionCount {
                field: field.clone(),
                code: code.clone(),
                count: rc.count,
            })
            .collect(),
        file_errors: summary.file_errors.clone(),
        outputs: info.outputs.clone(),
        time: info.time.clone(),
    };
    let event = if summary.file_errors.is_empty() {
        LineageEvent::Ingest(Box::new(event))
    } else {
        LineageEvent::UploadFailure(Box::new(event))
    };
    lineage::append_event(lineage_log, &event)?;
    Ok(summary)
}

/// Validate, curate and merge every row of an upload; what the rows said
/// and what merging did.
///
/// Two threads: this one reads, validates, curates and writes the outputs;
/// a second merges each finished batch into the store meanwhile. The two
/// take about as long as each other, so on two cores they overlap almost
/// whole. A bounded channel of one batch keeps memory flat.
#[allow(clippy::too_many_arguments)]
fn merge_rows(
    dataset: &Dataset,
    pseudo: &Pseudonymiser,
    records: &dyn RecordStore,
    info: &UploadInfo,
    upload: &str,
    input: &mut dyn BufRead,
    sinks: Sinks<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<Merged, IngestError> {
    // Which linkage fields the dataset has, so a row without one is counted.
    let has = |role: MatchRole| dataset.fields().iter().any(|f| f.match_role == Some(role));
    let (has_given, has_dob) = (has(MatchRole::Given), has(MatchRole::Dob));
    let full = info.mode == IngestMode::Full;
    std::thread::scope(|scope| {
        let (batches, inbox) = mpsc::sync_channel::<Vec<StoredRecord>>(1);
        // The merger hands each batch's records back once merged, and this
        // thread, which allocated them, frees them: a free on the thread
        // that allocated is cheaper and its memory is reused by the next
        // rows, and the merger is the one on the critical path. Freed on
        // the next row read, so at most about one batch waits.
        let (spent_out, spent) = mpsc::channel::<Vec<StoredRecord>>();
        let merger = scope.spawn(move || -> Result<MergerOut, StoreError> {
            let mut merged = MergeStats::default();
            let mut session = LinkSession::new(upload);
            let mut missing: BTreeMap<String, u64> = BTreeMap::new();
            let mut seen = HashSet::new();
            for batch in inbox {
                for r in &batch {
                    if full {
                        seen.insert(id_hash(&r.record_id));
                    }
                    let sig = r.signature.as_deref();
                    if has_given && sig.is_none_or(|s| s.g.is_none()) {
                        *missing.entry("given_name".into()).or_default() += 1;
                    }
                    if has_dob && sig.is_none_or(|s| s.d.is_none()) {
                        *missing.entry("dob".into()).or_default() += 1;
                    }
                }
                let mut done = Vec::with_capacity(batch.len());
                add(
                    &mut merged,
                    merge_and_link_returning(records, batch, &mut session, &mut done)?,
                );
                // The curating thread may have finished: then it frees
                // what is left once it has read every row.
                let _ = spent_out.send(done);
            }
            Ok((merged, session, missing, seen))
        });
        // A send fails only when the merger has stopped on an error, which
        // its join below returns.
        let curated = curate_rows(
            dataset,
            pseudo,
            info,
            upload,
            input,
            sinks,
            &mut |batch, rows| {
                let sent = batches.send(batch).is_ok();
                progress(rows);
                sent
            },
            &mut || while spent.try_recv().is_ok() {},
        );
        drop(batches);
        // Free the rest as the merger finishes with them; the loop ends
        // when the merger drops its sender (done or failed).
        for done in spent {
            drop(done);
        }
        let merged = match merger.join() {
            Ok(merged) => merged,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let counts = curated?;
        progress(counts.rows);
        let (merged, session, missing, seen) = merged?;
        Ok((counts, merged, session, missing, seen))
    })
}

/// What merging an upload's rows gave: the read counts, the exact merge,
/// the linkage session and the rows missing a linkage field.
/// What the merging thread hands back: the merge, the linkage session,
/// rows missing a linkage field, and (full refresh) the record-id hashes.
type MergerOut = (MergeStats, LinkSession, BTreeMap<String, u64>, HashSet<u64>);

/// The last is the hashes of the accepted rows' record ids, for a full
/// refresh (empty otherwise).
type Merged = (
    Summary,
    MergeStats,
    LinkSession,
    BTreeMap<String, u64>,
    HashSet<u64>,
);

/// Read, validate and curate every row, writing the curated NDJSON and the
/// rejection reports, and hand each batch of curated records to `merge`
/// (which says whether to go on) with the count of rows read so far;
/// `free` is called once a row to free what the merger is done with.
#[allow(clippy::too_many_arguments)]
fn curate_rows(
    dataset: &Dataset,
    pseudo: &Pseudonymiser,
    info: &UploadInfo,
    upload: &str,
    input: &mut dyn BufRead,
    sinks: Sinks<'_>,
    merge: &mut dyn FnMut(Vec<StoredRecord>, u64) -> bool,
    free: &mut dyn FnMut(),
) -> Result<Summary, IngestError> {
    let validator = RowValidator::new(dataset).with_date_bounds(date_bounds(info)?);
    let curator = Curator::new(
        dataset,
        pseudo,
        Provenance {
            agency: info.agency.clone(),
            upload_id: upload.to_owned(),
        },
    );
    let mut rows = read::open(info.format, input, dataset);
    let mut report = JsonReportWriter::start(&mut *sinks.report_json, &dataset.id)?;
    writeln!(sinks.report_csv, "row,line,field,code,message")?;
    let mut counts = Summary::new(&dataset.id);
    let mut errors: Vec<RowError> = Vec::new();
    let mut pending = Vec::with_capacity(BATCH);
    let mut scratch = CurateScratch::default();
    while let Some(next) = rows.next_row() {
        free();
        let row = match next {
            Ok(row) => row,
            Err(e) => {
                counts.file_error(&e);
                break;
            }
        };
        errors.clear();
        match curator.check_and_curate(&validator, row, &mut errors, &mut scratch) {
            Some(rec) => {
                sinks.curated.write_all(rec.body.as_str().as_bytes())?;
                sinks.curated.write_all(b"\n")?;
                pending.push(rec);
            }
            None => {
                for e in &errors {
                    report.error(e)?;
                    write_csv_error(sinks.report_csv, e)?;
                }
            }
        }
        counts.record_row(&errors);
        if pending.len() >= BATCH
            && counts.file_errors.is_empty()
            && !merge(
                std::mem::replace(&mut pending, Vec::with_capacity(BATCH)),
                counts.rows,
            )
        {
            // The merger failed; its error is what the caller reports.
            return Ok(counts);
        }
    }
    report.finish(&counts)?;
    if !counts.has_file_errors() && !pending.is_empty() {
        merge(pending, counts.rows);
    }
    Ok(counts)
}

/// A record id's 64-bit hash: a full refresh holds these for the rows it
/// read, not the ids (8 bytes a row). Two ids colliding would keep an
/// absent record, never retire a present one.
fn id_hash(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// Retire the agency's records of `dataset` whose id is not in `seen`
/// (inside the upload's session); what went and from which uploads.
fn retire_absent(
    records: &dyn RecordStore,
    agency: &str,
    dataset: &str,
    seen: &HashSet<u64>,
) -> Result<(crate::withdraw::Removed, BTreeMap<String, u64>), StoreError> {
    let mut doomed = crate::withdraw::Doomed::new(records)?;
    records.scan_dataset(dataset, None, None, &mut |r| {
        if r.agency == agency && !seen.contains(&id_hash(&r.record_id)) {
            doomed.add(r);
        }
        true
    })?;
    doomed.remove(records)
}

fn add(total: &mut MergeStats, s: MergeStats) {
    total.inserted += s.inserted;
    total.replaced += s.replaced;
    for (upload, n) in s.replaced_from {
        *total.replaced_from.entry(upload).or_default() += n;
    }
    total.unchanged += s.unchanged;
    total.linked += s.linked;
}

fn write_csv_error(out: &mut dyn Write, e: &RowError) -> io::Result<()> {
    writeln!(
        out,
        "{},{},{},{},{}",
        e.row,
        e.line,
        quoted(&e.field),
        quoted(&e.code),
        quoted(&e.message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryChainLog, MemoryRecordStore};
    use crate::pseudo::test_pseudonymiser;
    use crate::validate::tests::ds;
    use serde_json::json;

    /// Ingest `input`; the summary, the lineage log and the outputs (curated,
    /// JSON report, CSV report) as text.
    fn run(
        input: &str,
        format: InputFormat,
        time: &str,
    ) -> Result<(IngestSummary, MemoryChainLog, [String; 3]), IngestError> {
        let ds = ds();
        let (records, log) = (MemoryRecordStore::default(), MemoryChainLog::default());
        let info = UploadInfo {
            agency: "bury-council".into(),
            sha256: "00".repeat(32),
            source: "landing/x".into(),
            format,
            time: time.into(),
            outputs: Vec::new(),
            mode: IngestMode::Incremental,
        };
        let (mut cur, mut rj, mut rc) = (Vec::new(), Vec::new(), Vec::new());
        let summary = ingest(
            &ds,
            &test_pseudonymiser(),
            &records,
            &log,
            &info,
            &mut input.as_bytes(),
            Sinks {
                curated: &mut cur,
                report_json: &mut rj,
                report_csv: &mut rc,
            },
            |_| {},
        )?;
        let text = |b: Vec<u8>| String::from_utf8(b).expect("utf-8");
        Ok((summary, log, [text(cur), text(rj), text(rc)]))
    }

    fn lineage_text(log: &MemoryChainLog) -> String {
        serde_json::to_string(&log.entries().expect("entries")).expect("json")
    }

    #[test]
    fn a_headerless_file_and_an_odd_key_leave_no_trace() {
        const NOW: &str = "2026-07-01T12:00:00Z";
        let (s, log, outs) = run(
            "R-0001,2026-01-01,Jane Doe,Bury\nR-0002,2026-01-02,Doe,Bolton\n",
            InputFormat::Csv,
            NOW,
        )
        .expect("ingest");
        assert_eq!(s.file_errors[0].code, "unknown_column");
        let (s2, log2, outs2) = run(
            "{\"record_ref\":\"R-0003\",\"event_date\":\"2026-01-01\",\"Jane Smith 07700 900123\":true}\n",
            InputFormat::Ndjson,
            NOW,
        )
        .expect("ingest");
        assert_eq!(s2.rows_rejected, 1);
        let all = [
            serde_json::to_string(&s).expect("json"),
            serde_json::to_string(&s2).expect("json"),
            lineage_text(&log),
            lineage_text(&log2),
        ]
        .into_iter()
        .chain(outs)
        .chain(outs2)
        .collect::<Vec<_>>()
        .join("\n");
        for secret in ["R-000", "Jane", "Doe", "Smith", "07700", "900123"] {
            assert!(!all.contains(secret), "{secret:?} leaked:\n{all}");
        }
    }

    #[test]
    fn dates_are_bounded_by_the_upload_time() {
        let csv = "record_ref,event_date\nR1,2026-07-02\nR2,2026-07-03\nR3,1850-01-01\n";
        let (s, log, [_, _, report]) =
            run(csv, InputFormat::Csv, "2026-07-01T23:00:00Z").expect("ingest");
        assert_eq!((s.rows_accepted, s.rows_rejected), (1, 2));
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), 3, "{report}");
        assert!(
            lines[1]
                .starts_with("2,3,\"event_date\",\"date_range\",\"event_date is after 2026-07-02")
        );
        assert!(
            lines[2]
                .starts_with("3,4,\"event_date\",\"date_range\",\"event_date is before 1900-01-01")
        );
        let event = &log.entries().expect("entries")[0];
        assert_eq!(
            event["rejections"],
            json!([{"field": "event_date", "code": "date_range", "count": 2}])
        );
        assert!(matches!(
            run(csv, InputFormat::Csv, "yesterday"),
            Err(IngestError::Time(_))
        ));
    }

    #[test]
    fn rejection_csv_cells_are_neutralised() {
        let mut e = RowError {
            row: 1,
            line: 2,
            field: "=cmd".into(),
            pointer: String::new(),
            code: "\tx".into(),
            message: "@sum \"x\"".into(),
        };
        let mut out = Vec::new();
        write_csv_error(&mut out, &e).expect("write");
        e.message = "\r-1".into();
        write_csv_error(&mut out, &e).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "1,2,\"'=cmd\",\"'\tx\",\"'@sum \"\"x\"\"\"\n1,2,\"'=cmd\",\"'\tx\",\"'\r-1\"\n"
        );
    }
}
