//! One landing object through the core pipeline on AWS: the steps the CLI's
//! local ingest takes, over S3 and DynamoDB. Shared by the ingest Lambda and
//! `agencylink --backend aws ingest`.
//!
//! landing object → a private temporary copy, hashed as it streams in (the
//! upload id needs the file's SHA-256 before the first row, and the copy is a
//! stable snapshot) → `core::ingest` → curated NDJSON and rejection reports
//! to the data bucket (multipart when large) → the upload's lineage events
//! archived (WORM) → every version of the landing object deleted. Every step is idempotent, so
//! a retried delivery converges and a repeated one changes nothing.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use agencylink_core::events::{FailureEvent, LineageEvent};
use agencylink_core::ingest::{
    IngestError, IngestSummary, Sinks, Steps, UploadInfo, ingest_until, upload_id,
};
use agencylink_core::lineage;
use agencylink_core::memory::{MemoryChainLog, MemoryRecordStore};
use agencylink_core::ports::{
    ChainLog, ObjectStore, ObjectStoreExt, PutMode, RecordStore, StoreError,
};
use agencylink_core::pseudo::Pseudonymiser;
use agencylink_core::read::InputFormat;
use agencylink_core::schema::Dataset;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::AwsBackend;

/// A landing key split into its parts: `landing/<agency>/<dataset>/<file>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandingKey<'a> {
    /// The uploading agency.
    pub agency: &'a str,
    /// The dataset id.
    pub dataset: &'a str,
    /// The file name.
    pub file: &'a str,
}

/// Split a (decoded) landing key; `None` when it does not have that shape.
pub fn parse_landing_key(key: &str) -> Option<LandingKey<'_>> {
    let mut parts = key.split('/');
    let (Some("landing"), Some(agency), Some(dataset), Some(file), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if agency.is_empty() || dataset.is_empty() || file.is_empty() || file.starts_with('.') {
        return None;
    }
    Some(LandingKey {
        agency,
        dataset,
        file,
    })
}

/// Decode an S3 event key: `+` is a space, `%XX` a byte (UTF-8).
pub fn decode_event_key(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or("a `%` in the key is not followed by two hex digits")?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "the decoded key is not UTF-8".to_owned())
}

/// A pipeline step that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// S3 or DynamoDB failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The core pipeline failed.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The temporary copy failed (disk full, …).
    #[error("temporary storage: {0}")]
    Io(#[from] io::Error),
    /// The key rotation's step before the ingest failed.
    #[error("key rotation: {0}")]
    Rotation(#[from] agencylink_core::rotation::RotationError),
    /// A key could not be read.
    #[error(transparent)]
    Key(#[from] agencylink_core::ports::KeySourceError),
}

impl PipelineError {
    /// Whether running the same step again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Store(e) | PipelineError::Ingest(IngestError::Store(e)) => {
                e.is_retryable()
            }
            PipelineError::Rotation(agencylink_core::rotation::RotationError::Store(e)) => {
                e.is_retryable()
            }
            PipelineError::Ingest(_)
            | PipelineError::Io(_)
            | PipelineError::Rotation(_)
            | PipelineError::Key(_) => true,
        }
    }
}

/// The object keys of an upload's outputs.
pub fn output_keys(agency: &str, dataset: &str, upload: &str) -> [String; 3] {
    [
        format!("curated/{agency}/{dataset}/{upload}.ndjson"),
        format!("reports/{agency}/{dataset}/{upload}.rejections.json"),
        format!("reports/{agency}/{dataset}/{upload}.rejections.csv"),
    ]
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(base: &Path) -> io::Result<Self> {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = base.join(format!(
            "agencylink-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // The raw copy holds identifiers: it never outlives the ingest.
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ingest the landing object `key` (already checked against the agency
/// policy) and clean up. `time` is the event time, RFC 3339.
pub fn ingest_landing(
    backend: &AwsBackend,
    pseudo: &Pseudonymiser,
    dataset: &Dataset,
    agency: &str,
    key: &str,
    time: &str,
    tmp_base: &Path,
) -> Result<IngestSummary, PipelineError> {
    ingest_landing_as(
        backend,
        pseudo,
        dataset,
        agency,
        key,
        time,
        tmp_base,
        agencylink_core::ingest::IngestMode::Incremental,
        &Steps::default(),
    )
}

/// [`ingest_landing`] as an incremental upload or a full refresh (the
/// CLI's `--mode`; the landing bucket's uploads are incremental), in
/// `steps` (the ingest function stops before its time runs out:
/// [`IngestError::Paused`], the landing object kept, nothing stored but
/// the merged batches and their marks, and the next delivery resumes).
#[allow(clippy::too_many_arguments)]
pub fn ingest_landing_as(
    backend: &AwsBackend,
    pseudo: &Pseudonymiser,
    dataset: &Dataset,
    agency: &str,
    key: &str,
    time: &str,
    tmp_base: &Path,
    mode: agencylink_core::ingest::IngestMode,
    steps: &Steps<'_>,
) -> Result<IngestSummary, PipelineError> {
    let tmp = TempDir::new(tmp_base)?;
    let raw = tmp.0.join("landing");
    let mut hasher = Sha256::new();
    {
        let mut src = backend.objects.get(key)?;
        let mut dst = BufWriter::new(File::create(&raw)?);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            dst.write_all(&buf[..n])?;
        }
        dst.flush()?;
    }
    let sha = hex(&hasher.finalize());
    let upload = upload_id(agency, &dataset.id, &sha);
    let outputs = output_keys(agency, &dataset.id, &upload);
    let paths = [
        tmp.0.join("curated"),
        tmp.0.join("report.json"),
        tmp.0.join("report.csv"),
    ];
    let file_name = key.rsplit('/').next().unwrap_or(key);
    let format = InputFormat::from_file_name(file_name);
    // Lineage is permanent and read widely; agencies name files after
    // people, so it gets a keyed label of the name, never the name.
    let source = format!(
        "landing/{agency}/{}/{}.{}",
        dataset.id,
        pseudo.label("landing", key.as_bytes()),
        if format == InputFormat::Csv {
            "csv"
        } else {
            "ndjson"
        }
    );
    let info = UploadInfo {
        agency: agency.to_owned(),
        sha256: sha,
        source,
        format,
        time: time.to_owned(),
        outputs: outputs.to_vec(),
        mode,
    };
    let run =
        |records: &dyn RecordStore, log: &dyn ChainLog| -> Result<IngestSummary, PipelineError> {
            let mut curated = BufWriter::new(File::create(&paths[0])?);
            let mut rj = BufWriter::new(File::create(&paths[1])?);
            let mut rc = BufWriter::new(File::create(&paths[2])?);
            let mut input = BufReader::with_capacity(1 << 16, File::open(&raw)?);
            let summary = ingest_until(
                dataset,
                pseudo,
                records,
                log,
                &info,
                &mut input,
                Sinks {
                    curated: &mut curated,
                    report_json: &mut rj,
                    report_csv: &mut rc,
                },
                |_| {},
                steps,
            )?;
            curated.flush()?;
            rj.flush()?;
            rc.flush()?;
            Ok(summary)
        };
    rotation_step(backend, pseudo, dataset, &info, &raw)?;
    let summary = run(&backend.records, &backend.lineage)?;
    let mut write_outputs = !summary.duplicate;
    if summary.duplicate {
        // An earlier delivery may have merged and logged the upload and then
        // died before its outputs were stored. They depend only on the file,
        // the key and the date of the upload's (S3 event) time, so derive
        // them again (against throwaway stores: the real ones already have
        // everything) and store what is missing.
        let mut missing = false;
        for out in &outputs {
            missing |= !backend.objects.exists(out)?;
        }
        if missing {
            run(&MemoryRecordStore::default(), &MemoryChainLog::default())?;
            write_outputs = true;
        }
    }
    if write_outputs {
        for (path, out) in paths.iter().zip(&outputs) {
            let mut f = File::open(path)?;
            backend.objects.put_from(out, &mut f, PutMode::Overwrite)?;
        }
    }
    archive_upload(backend, &summary.upload_id)?;
    // Every version: the landing bucket is versioned, and a plain delete
    // would keep the raw extract as a noncurrent version.
    backend.objects.delete_all_versions(key)?;
    Ok(summary)
}

/// While a key rotation is open or draining: read the upload under both
/// keys first (`agencylink_core::rotation::before_ingest`). The other key
/// is the secret's `AWSPENDING` version while the rotation is open and its
/// `AWSPREVIOUS` version after the migration.
fn rotation_step(
    backend: &AwsBackend,
    pseudo: &Pseudonymiser,
    dataset: &Dataset,
    info: &UploadInfo,
    raw: &Path,
) -> Result<(), PipelineError> {
    use agencylink_core::rotation::{self, Phase};
    let Some(state) = rotation::state(&backend.records)? else {
        return Ok(());
    };
    if pseudo.kid().as_str() != state.store_key() {
        // The ingest's own key check refuses it, naming both ids.
        return Ok(());
    }
    let stage = match state.phase {
        Phase::Open => crate::secrets::PENDING,
        Phase::Draining => crate::secrets::PREVIOUS,
    };
    let other = backend
        .keys
        .as_ref()
        .and_then(|k| k.key_at(stage).transpose())
        .transpose()?
        .filter(|k| k.kid().as_str() == state.other_key())
        .ok_or_else(|| {
            agencylink_core::ports::KeySourceError::Missing(format!(
                "a key rotation ({} to {}) is open, but the key secret has no {stage} version with key id {}",
                state.from,
                state.to,
                state.other_key()
            ))
        })?;
    let moved = rotation::before_ingest(
        &backend.records,
        &backend.lineage,
        dataset,
        pseudo,
        &Pseudonymiser::new(other),
        info,
        &mut BufReader::with_capacity(1 << 16, File::open(raw)?),
    )?;
    // The `key_migrate` event names the upload, so archiving the upload's
    // events after the ingest copies it to the WORM archive too.
    if moved.is_some_and(|m| m.complete)
        && let Some(keys) = &backend.keys
    {
        keys.retire_previous()?;
    }
    Ok(())
}

/// Copy an upload's lineage events to the WORM archive (when configured).
pub fn archive_upload(backend: &AwsBackend, upload: &str) -> Result<(), StoreError> {
    let Some(archive) = &backend.archive else {
        return Ok(());
    };
    for e in backend.lineage.entries_by(upload)? {
        archive.archive("lineage", &e)?;
    }
    Ok(())
}

/// What lineage and logs call a landing object: agencies name files after
/// people, so not its key but a keyed label of it, `landing/label/<label>`
/// (the same key, the same label; nobody without the key can test a guess),
/// or `landing/label/withheld` when the key cannot be had.
pub fn key_label(pseudo: Option<&Pseudonymiser>, key: &str) -> String {
    match pseudo {
        Some(p) => format!("landing/label/{}", p.label("landing", key.as_bytes())),
        None => "landing/label/withheld".to_owned(),
    }
}

/// Record an upload that was not processed (an agency or dataset outside the
/// policy, a malformed key) as a lineage `failure` event, archive it, and
/// delete the landing object: raw data nobody may ingest is not kept.
/// `source` is the key's [`key_label`], never the key.
pub fn reject_landing(
    backend: &AwsBackend,
    source: &str,
    key: &str,
    code: &str,
    reason: &str,
    time: &str,
) -> Result<Value, StoreError> {
    let stored = append_failure(backend, source, key, code, reason, time)?;
    backend.objects.delete_all_versions(key)?;
    Ok(stored)
}

/// Append a landing object's `failure` event and archive it.
fn append_failure(
    backend: &AwsBackend,
    source: &str,
    key: &str,
    code: &str,
    reason: &str,
    time: &str,
) -> Result<Value, StoreError> {
    let parts = parse_landing_key(key);
    let event = LineageEvent::Failure(FailureEvent {
        code: code.to_owned(),
        reason: reason.to_owned(),
        agency: parts.as_ref().map(|p| p.agency.to_owned()),
        dataset: parts.as_ref().map(|p| p.dataset.to_owned()),
        source: source.to_owned(),
        time: time.to_owned(),
    });
    let stored = lineage::append_event(&backend.lineage, &event)?;
    if let Some(archive) = &backend.archive {
        archive.archive("lineage", &stored)?;
    }
    Ok(stored)
}

/// Whether lineage names the landing object `key` in any event (its ingest,
/// or its rejection or failure), by the object's keyed label: the name
/// every event about it carries in its `source`, as
/// `landing/<agency>/<dataset>/<label>.<ext>` or `landing/label/<label>`.
pub fn lineage_knows_landing(entries: &[Value], pseudo: &Pseudonymiser, key: &str) -> bool {
    let label = pseudo.label("landing", key.as_bytes());
    // An `ingest_started` alone does not mean handled: the object goes only
    // after the closing event.
    entries.iter().any(|e| {
        e.get("type").and_then(Value::as_str) != Some("ingest_started")
            && e.get("source")
                .and_then(Value::as_str)
                .and_then(|s| s.rsplit('/').next())
                .map(|last| last.split('.').next() == Some(label.as_str()))
                .unwrap_or(false)
    })
}

/// Record a landing object that was gone before anything handled it (the
/// lifecycle backstop expired it, or someone deleted it) as a lineage
/// `failure` event with code `landing_object_missing`, so a late redrive
/// leaves a trace instead of vanishing. Only called when
/// [`lineage_knows_landing`] is false; `source` is the key's [`key_label`].
pub fn record_missing_landing(
    backend: &AwsBackend,
    source: &str,
    key: &str,
    time: &str,
) -> Result<Value, StoreError> {
    append_failure(
        backend,
        source,
        key,
        "landing_object_missing",
        "the landing object was gone before it was ingested (expired by the landing lifecycle or deleted): ask the agency to upload it again",
        time,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landing_keys_split_into_agency_dataset_and_file() {
        assert_eq!(
            parse_landing_key("landing/rochdale-council/council.cin_referral/March 2025.csv"),
            Some(LandingKey {
                agency: "rochdale-council",
                dataset: "council.cin_referral",
                file: "March 2025.csv"
            })
        );
        for bad in [
            "landing/a/b",
            "landing/a/b/c/d.csv",
            "curated/a/b/c.csv",
            "landing//b/c.csv",
            "landing/a/b/.hidden",
        ] {
            assert_eq!(parse_landing_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn event_keys_are_url_decoded() {
        assert_eq!(
            decode_event_key("landing/a/b/Extract+March%282025%29+%C3%A9.csv").as_deref(),
            Ok("landing/a/b/Extract March(2025) é.csv")
        );
        assert!(decode_event_key("bad%2").is_err());
        assert!(decode_event_key("bad%zz").is_err());
        assert!(decode_event_key("bad%ff").is_err());
    }
}
