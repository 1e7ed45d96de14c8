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
use crate::link::{LinkSession, MergeStats, merge_and_link_planned, merge_and_link_returning};
use crate::linkage::LinkOutcome;
use crate::parallel::{End, available_threads, each_row_in_order};
use crate::ports::{ChainLog, MergeMark, RecordStore, StoreError, StoredRecord};
use crate::pseudo::Pseudonymiser;
use crate::read::{self, InputFormat, Row};
use crate::report::{JsonReportWriter, Summary};
use crate::schema::{Dataset, MatchRole};
use crate::validate::{DateBounds, RowError, RowValidator};

/// Records per merge batch. Up to three batches are in memory at once (one
/// being curated, one queued, one being merged) at ~2.5 KB a record; the
/// SQLite store indexes a whole upload at once, so a bigger batch would buy
/// nothing but memory (8,000 took an ingest to 212 MiB).
pub const BATCH: usize = 2_000;

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
    /// The caller asked the ingest to stop (a Lambda near its time limit):
    /// the batches merged so far are marked in the store, and running the
    /// same upload again resumes after them. Lineage holds the upload's
    /// `ingest_started` event and no closing event yet.
    #[error(
        "paused after {batches_done} merged batches ({rows_read} rows read): run the upload again to resume"
    )]
    Paused {
        /// Batches merged, this attempt and earlier ones.
        batches_done: u64,
        /// Of those, the batches earlier attempts had merged: fewer than
        /// `batches_done`, so every pause is progress.
        batches_resumed: u64,
        /// Rows read when the ingest stopped.
        rows_read: u64,
    },
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
    /// Curated NDJSON, one record per line. Written by the thread that
    /// merges, hence `Send`.
    pub curated: &'a mut (dyn Write + Send),
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
    /// Merge batches an earlier, interrupted attempt had finished, which
    /// this one counted from their marks instead of merging again.
    #[serde(skip_serializing_if = "is_zero")]
    pub batches_resumed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
    progress: impl FnMut(u64),
) -> Result<IngestSummary, IngestError> {
    ingest_until(
        dataset,
        pseudo,
        records,
        lineage_log,
        info,
        input,
        sinks,
        progress,
        &Steps::default(),
    )
}

/// How [`ingest_until`] steps through an upload.
#[allow(missing_debug_implementations)]
pub struct Steps<'a> {
    /// Asked after each merged batch: stop there?
    pub stop: &'a (dyn Fn() -> bool + Sync),
    /// Records per merge batch, and so per mark: [`BATCH`] unless a caller
    /// wants finer steps to resume from (a slow store, a test).
    pub batch: usize,
    /// Threads that check and curate rows (besides the one that reads
    /// them; one works on the reading thread). By default every core the
    /// process may use but one, which the merging thread has: merging is
    /// the longer half, and a curating thread sharing its core slows it
    /// down (measured on two cores: 87–103k rows/s against 108–115k with
    /// the merger's core left to it). The outputs and the store are the
    /// same for any number.
    pub threads: usize,
}

impl Default for Steps<'_> {
    fn default() -> Self {
        Steps {
            stop: &|| false,
            batch: BATCH,
            threads: available_threads().saturating_sub(1).max(1),
        }
    }
}

/// [`ingest`], asking `steps.stop` after each merged batch whether to stop
/// there ([`IngestError::Paused`]). Only a store that writes through stops: it
/// marks each batch ([`crate::ports::MergeMark`]), so the next run of the
/// same upload reads and checks every row again (the outputs are whole)
/// but merges only the batches not yet done, and its lineage event counts
/// each record once. A store that publishes an upload whole never stops.
#[allow(clippy::too_many_arguments)]
pub fn ingest_until(
    dataset: &Dataset,
    pseudo: &Pseudonymiser,
    records: &dyn RecordStore,
    lineage_log: &dyn ChainLog,
    info: &UploadInfo,
    input: &mut dyn BufRead,
    sinks: Sinks<'_>,
    mut progress: impl FnMut(u64),
    steps: &Steps<'_>,
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
            if records.writes_through() {
                // What a run that died after its closing event left.
                records.clear_merge_marks(&upload)?;
            }
            return Ok(summary);
        }
        // A resumed upload has its `ingest_started` event already.
        let started = earlier.iter().rev().find_map(|e| match e {
            LineageEvent::IngestStarted(s) if s.upload_id == upload => Some(true),
            LineageEvent::Withdrawn(w) if w.upload_id == upload => Some(false),
            _ => None,
        });
        if records.writes_through() && started != Some(true) {
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
            steps,
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
    steps: &Steps<'_>,
    mut summary: IngestSummary,
) -> Result<IngestSummary, IngestError> {
    let (counts, out) = merge_rows(
        dataset, pseudo, records, info, upload, input, sinks, progress, steps,
    )?;
    if let Some((batches_done, batches_resumed)) = out.paused {
        return Err(IngestError::Paused {
            batches_done,
            batches_resumed,
            rows_read: counts.rows,
        });
    }
    let MergerOut {
        merged,
        session,
        missing,
        seen,
        resumed,
        ..
    } = out;
    summary.batches_resumed = resumed;
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
    if records.writes_through() {
        // Lineage accounts for the upload now; a crash before this line
        // leaves marks that the next delivery (a duplicate) clears.
        records.clear_merge_marks(upload)?;
    }
    Ok(summary)
}

/// Validate, curate and merge every row of an upload; what the rows said
/// and what merging did.
///
/// This thread reads the rows and writes the rejection reports;
/// `steps.threads` workers check and curate them ([`each_row_in_order`];
/// with one, this thread does); one more thread writes each finished
/// batch's curated lines and merges it into the store meanwhile. Reading
/// and curating is the longer half (on two cores, writing the curated
/// lines on the merging thread instead took 1,000,000 rows from 106-115k
/// to 119-124k rows/s), and curating gets the cores beyond two. A bounded
/// channel keeps memory flat: two batches rather than one, so a slow batch
/// on either side does not stall the other at once (1,000,000 rows on two
/// cores: 182-188k rows/s against 176-180k; four or eight batches were no
/// faster and held more memory).
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
    steps: &Steps<'_>,
) -> Result<(Summary, MergerOut), IngestError> {
    let stop = steps.stop;
    // Which linkage fields the dataset has, so a row without one is counted.
    let has = |role: MatchRole| dataset.fields().iter().any(|f| f.match_role == Some(role));
    let (has_given, has_dob) = (has(MatchRole::Given), has(MatchRole::Dob));
    let full = info.mode == IngestMode::Full;
    std::thread::scope(|scope| {
        // Each batch, and whether to merge it: a file refused part-way
        // still has its last rows written out, not merged.
        let (batches, inbox) = mpsc::sync_channel::<(Vec<StoredRecord>, bool)>(2);
        let Sinks {
            curated,
            report_json,
            report_csv,
        } = sinks;
        // The merger hands each batch's records back once merged, and this
        // thread, which allocated them, frees them: a free on the thread
        // that allocated is cheaper and its memory is reused by the next
        // rows, and the merger is the one on the critical path. Freed on
        // the next row read, so at most about one batch waits.
        let (spent_out, spent) = mpsc::channel::<Vec<StoredRecord>>();
        let merger = scope.spawn(move || -> Result<MergerOut, IngestError> {
            let mut out = MergerOut {
                merged: MergeStats::default(),
                session: LinkSession::new(upload),
                missing: BTreeMap::new(),
                seen: HashSet::new(),
                resumed: 0,
                paused: None,
            };
            let mut marks = Marks::load(records, upload)?;
            for (batch, to_merge) in inbox {
                // The curated lines are written here rather than on the
                // thread that reads and curates, which is the longer half.
                for r in &batch {
                    curated.write_all(r.body.as_str().as_bytes())?;
                    curated.write_all(b"\n")?;
                }
                if !to_merge {
                    let _ = spent_out.send(batch);
                    continue;
                }
                for r in &batch {
                    if full {
                        out.seen.insert(id_hash(&r.record_id));
                    }
                    let sig = r.signature.as_deref();
                    if has_given && sig.is_none_or(|s| s.g.is_none()) {
                        *out.missing.entry("given_name".into()).or_default() += 1;
                    }
                    if has_dob && sig.is_none_or(|s| s.d.is_none()) {
                        *out.missing.entry("dob".into()).or_default() += 1;
                    }
                }
                let mut done = Vec::with_capacity(batch.len());
                match &mut marks {
                    None => add(
                        &mut out.merged,
                        merge_and_link_returning(records, batch, &mut out.session, &mut done)?,
                    ),
                    Some(marks) => {
                        // Asked only after a batch merged now: a resumed
                        // run always gets past the batches done before.
                        if marks.merge(records, batch, &mut out, &mut done)? && stop() {
                            out.paused = Some((marks.next, out.resumed));
                            break;
                        }
                    }
                }
                // The curating thread may have finished: then it frees
                // what is left once it has read every row.
                let _ = spent_out.send(done);
            }
            Ok(out)
        });
        // A send fails only when the merger has stopped (on an error, which
        // its join below returns, or paused).
        let curated = curate_rows(
            dataset,
            pseudo,
            info,
            upload,
            input,
            (report_json, report_csv),
            steps.batch.max(1),
            steps.threads,
            &mut |batch, rows, to_merge| {
                let sent = batches.send((batch, to_merge)).is_ok();
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
        Ok((counts, merged?))
    })
}

/// What the merging thread hands back.
struct MergerOut {
    /// What the exact merge did.
    merged: MergeStats,
    /// The probabilistic linkage session.
    session: LinkSession,
    /// Accepted rows lacking a linkage field, by field.
    missing: BTreeMap<String, u64>,
    /// The hashes of the accepted rows' record ids, for a full refresh
    /// (empty otherwise).
    seen: HashSet<u64>,
    /// Batches counted from an earlier attempt's marks.
    resumed: u64,
    /// Set when the merge stopped on request: the batches done so far, and
    /// how many of them an earlier attempt had done.
    paused: Option<(u64, u64)>,
}

/// A write-through store's merge, batch by batch, with a
/// [`MergeMark`] for each: planned before its first write, done after its
/// last.
struct Marks {
    upload: String,
    /// An earlier attempt's marks, by batch number.
    earlier: BTreeMap<u64, MergeMark>,
    /// The number of the next batch.
    next: u64,
}

impl Marks {
    /// `None` for a store that publishes an upload whole.
    fn load(records: &dyn RecordStore, upload: &str) -> Result<Option<Self>, StoreError> {
        if !records.writes_through() {
            return Ok(None);
        }
        Ok(Some(Marks {
            upload: upload.to_owned(),
            earlier: records
                .merge_marks(upload)?
                .into_iter()
                .map(|m| (m.batch, m))
                .collect(),
            next: 0,
        }))
    }

    /// Merge one batch, or count it from its mark when an earlier attempt
    /// finished it (then `false`: nothing merged now).
    fn merge(
        &mut self,
        records: &dyn RecordStore,
        batch: Vec<StoredRecord>,
        out: &mut MergerOut,
        done: &mut Vec<StoredRecord>,
    ) -> Result<bool, StoreError> {
        let number = self.next;
        self.next += 1;
        let fingerprint = batch_fingerprint(&batch);
        let earlier = match self.earlier.remove(&number) {
            Some(m) if m.fingerprint == fingerprint => Some(m),
            Some(_) => {
                // Another attempt batched the rows differently (the schema
                // changed between them, say): its marks describe other
                // batches, so none is trusted and every batch is merged.
                self.earlier.clear();
                None
            }
            None => None,
        };
        if let Some(m) = earlier.as_ref().filter(|m| m.done) {
            add(&mut out.merged, m.stats.clone());
            out.session.outcome.add(&m.linkage);
            out.resumed += 1;
            *done = batch;
            return Ok(false);
        }
        // The batch's own linkage outcome, kept in its mark.
        let before = std::mem::take(&mut out.session.outcome);
        let upload = self.upload.as_str();
        let found = merge_and_link_planned(records, batch, &mut out.session, done, &mut |stats| {
            if earlier.is_some() {
                // Planned by the attempt that died mid-batch: its count,
                // taken before any of the batch's writes, stands.
                return Ok(());
            }
            records.put_merge_mark(
                upload,
                &MergeMark {
                    batch: number,
                    fingerprint: fingerprint.clone(),
                    done: false,
                    stats: stats.clone(),
                    linkage: LinkOutcome::default(),
                },
            )
        });
        let linkage = std::mem::replace(&mut out.session.outcome, before);
        let found = found?;
        out.session.outcome.add(&linkage);
        let stats = earlier.map_or(found, |m| m.stats);
        records.put_merge_mark(
            upload,
            &MergeMark {
                batch: number,
                fingerprint,
                done: true,
                stats: stats.clone(),
                linkage,
            },
        )?;
        add(&mut out.merged, stats);
        Ok(true)
    }
}

/// A batch's fingerprint: a hash of its record ids in order.
fn batch_fingerprint(batch: &[StoredRecord]) -> String {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(batch.len() * 2 + 1);
    parts.push(b"agencylink/v1/merge-batch");
    for r in batch {
        parts.push(b"|");
        parts.push(r.record_id.as_bytes());
    }
    short_hash(&parts, 16)
}

/// Read, validate and curate every row, writing the rejection reports, and
/// hand each batch of curated records to `merge` (which writes their
/// curated lines, merges them when told to, and says whether to go on) with
/// the count of rows read so far; `free` is called once a row to free what
/// the merger is done with.
#[allow(clippy::too_many_arguments)]
fn curate_rows(
    dataset: &Dataset,
    pseudo: &Pseudonymiser,
    info: &UploadInfo,
    upload: &str,
    input: &mut dyn BufRead,
    (report_json, report_csv): (&mut dyn Write, &mut dyn Write),
    batch_size: usize,
    threads: usize,
    merge: &mut dyn FnMut(Vec<StoredRecord>, u64, bool) -> bool,
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
    let mut report = JsonReportWriter::start(report_json, &dataset.id)?;
    writeln!(report_csv, "row,line,field,code,message")?;
    let mut counts = Summary::new(&dataset.id);
    let mut pending: Vec<StoredRecord> = Vec::with_capacity(batch_size);
    let work = |row: &Row, scratch: &mut CurateScratch, errors: &mut Vec<RowError>| {
        curator.check_and_curate(&validator, row, errors, scratch)
    };
    let mut each =
        |rec: &mut Option<StoredRecord>, errors: &[RowError]| -> Result<bool, IngestError> {
            free();
            match rec.take() {
                Some(rec) => pending.push(rec),
                None => {
                    for e in errors {
                        report.error(e)?;
                        write_csv_error(report_csv, e)?;
                    }
                }
            }
            counts.record_row(errors);
            // The merger failed when a send does not go: its error is
            // what the caller reports.
            Ok(pending.len() < batch_size
                || merge(
                    std::mem::replace(&mut pending, Vec::with_capacity(batch_size)),
                    counts.rows,
                    true,
                ))
        };
    let end = each_row_in_order(rows.as_mut(), threads, &work, &mut each)?;
    match end {
        End::Read => {}
        End::FileError(e) => counts.file_error(&e),
        End::Stopped => return Ok(counts),
    }
    report.finish(&counts)?;
    if !pending.is_empty() {
        merge(pending, counts.rows, !counts.has_file_errors());
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

    /// Ingest `csv` (named by `sha`) into a write-through store in steps
    /// of five records, asking `stop` after each.
    fn run_steps(
        records: &MemoryRecordStore,
        log: &MemoryChainLog,
        csv: &str,
        sha: &str,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<IngestSummary, IngestError> {
        let info = UploadInfo {
            agency: "bury-council".into(),
            sha256: sha.repeat(32),
            source: "landing/x".into(),
            format: InputFormat::Csv,
            time: "2026-07-01T12:00:00Z".into(),
            outputs: Vec::new(),
            mode: IngestMode::Incremental,
        };
        let (mut cur, mut rj, mut rc) = (Vec::new(), Vec::new(), Vec::new());
        ingest_until(
            &ds(),
            &test_pseudonymiser(),
            records,
            log,
            &info,
            &mut csv.as_bytes(),
            Sinks {
                curated: &mut cur,
                report_json: &mut rj,
                report_csv: &mut rc,
            },
            |_| {},
            &Steps {
                stop,
                batch: 5,
                ..Steps::default()
            },
        )
    }

    #[test]
    fn a_merge_stopped_or_torn_part_way_resumes_and_counts_each_record_once() {
        let first = "record_ref,event_date,borough\nR0,2026-01-01,Bury\nR1,2026-01-01,Bury\nR2,2026-01-01,Bury\n";
        // 23 rows in 5 batches: R0 and R1 corrected, R2 as it was, R7 twice.
        let mut second = String::from("record_ref,event_date,borough\n");
        for i in 0..22 {
            let borough = if i < 2 { "Bolton" } else { "Bury" };
            second.push_str(&format!("R{i},2026-01-01,{borough}\n"));
        }
        second.push_str("R7,2026-01-01,Bolton\n");
        let never = || false;
        let fresh = || {
            let (records, log) = (
                MemoryRecordStore::writing_through(),
                MemoryChainLog::default(),
            );
            run_steps(&records, &log, first, "01", &never).expect("the first upload");
            (records, log)
        };
        let (records, log) = fresh();
        let whole = run_steps(&records, &log, &second, "02", &never).expect("in one go");
        assert_eq!(
            (
                whole.records_inserted,
                whole.records_replaced,
                whole.records_unchanged
            ),
            (19, 3, 1)
        );

        let (records, log) = fresh();
        // Attempt 1 stops after two batches; attempt 2 dies half-way
        // through the third batch's writes; attempt 3 finishes.
        let asked = std::sync::atomic::AtomicU64::new(0);
        let after_two = || asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 >= 2;
        match run_steps(&records, &log, &second, "02", &after_two) {
            Err(IngestError::Paused { batches_done, .. }) => assert_eq!(batches_done, 2),
            other => panic!("expected a pause, got {other:?}"),
        }
        records.tear_next_apply();
        assert!(matches!(
            run_steps(&records, &log, &second, "02", &never),
            Err(IngestError::Store(_))
        ));
        let done = run_steps(&records, &log, &second, "02", &never).expect("resumed");
        assert_eq!(done.batches_resumed, 2);
        assert_eq!(
            IngestSummary {
                batches_resumed: 0,
                ..done.clone()
            },
            whole,
            "the resumed upload counts what one run does"
        );
        let entries = log.entries().expect("entries");
        let of_second = |kind: &str| {
            entries
                .iter()
                .filter(|e| e["type"] == kind && e["upload_id"] == json!(done.upload_id))
                .count()
        };
        assert_eq!((of_second("ingest_started"), of_second("ingest")), (1, 1));
        let counts = records.record_counts().expect("counts");
        assert!(
            crate::reconcile::reconcile(&entries, &counts).is_ok(),
            "lineage reconciles with the store"
        );
        assert!(
            records
                .merge_marks(&done.upload_id)
                .expect("marks")
                .is_empty()
        );

        // Without the marks, the half-written batch's records would count
        // as unchanged and lineage would not reconcile: the marks are what
        // this test depends on.
        let (records, log) = fresh();
        records.tear_next_apply();
        assert!(run_steps(&records, &log, &second, "02", &never).is_err());
        let upload = upload_id("bury-council", &ds().id, &"02".repeat(32));
        records
            .clear_merge_marks(&upload)
            .expect("forget the marks");
        let unmarked = run_steps(&records, &log, &second, "02", &never).expect("rerun");
        assert_ne!(
            (unmarked.records_replaced, unmarked.records_unchanged),
            (whole.records_replaced, whole.records_unchanged)
        );
        let counts = records.record_counts().expect("counts");
        assert!(crate::reconcile::reconcile(&log.entries().expect("entries"), &counts).is_err());
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
