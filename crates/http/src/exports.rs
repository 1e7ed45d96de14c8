//! Analysts' flat exports (CSV, NDJSON) in the data bucket: written
//! straight away by `GET /export` when they are small, and as jobs when
//! they are not. A job is a request object under `export-requests/`
//! (written by `POST /exports`), which S3 announces to the profile
//! function through EventBridge; it writes the export and a manifest
//! under `exports/jobs/<id>`, and `GET /exports/{id}` reads the manifest
//! to answer.
//!
//! Layout:
//!
//! | object | what |
//! |---|---|
//! | `export-requests/<id>.json` | the request: analyst, purpose, dataset, format, time |
//! | `exports/jobs/<id>.csv` or `.ndjson` | the export |
//! | `exports/jobs/<id>.manifest.json` | done: the analyst, rows, datasets, the export's key |
//! | `exports/jobs/<id>.failed.json` | could never be built: the analyst and why |

use std::fs::File;
use std::io::{BufWriter, Write};

use agencylink_core::csv_safe::neutralise;
use agencylink_core::ports::{ObjectStore, ObjectStoreExt, PutMode, RecordStore, StoreError};
use agencylink_core::query::{self, QueryError};
use agencylink_core::schema::Catalog;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where requests wait for the profile function.
pub const REQUESTS: &str = "export-requests/";
/// Where every export is kept for its download link: those the API
/// writes in the request (flat files, charts) and jobs'.
pub const PREFIX: &str = "exports/";
/// Where jobs' exports and manifests go.
pub const JOBS: &str = "exports/jobs/";

/// The flat formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flat {
    /// Comma-separated, every cell neutralised against formula injection.
    Csv,
    /// One JSON object a line.
    Ndjson,
}

impl Flat {
    /// The file extension.
    pub fn ext(self) -> &'static str {
        match self {
            Flat::Csv => "csv",
            Flat::Ndjson => "ndjson",
        }
    }
}

/// An export job's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// The job id (32 hex digits).
    pub id: String,
    /// Who asked (the token's subject): only they get the result.
    pub analyst: String,
    /// Why, as logged.
    pub purpose: String,
    /// One dataset, or every one.
    pub dataset: Option<String>,
    /// The format.
    pub format: Flat,
    /// When it was asked for (RFC 3339).
    pub requested_at: String,
}

/// A finished job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Who asked.
    pub analyst: String,
    /// The export's key.
    pub key: String,
    /// Rows written.
    pub rows: u64,
    /// Datasets exported.
    pub datasets: Vec<String>,
    /// When it was written (RFC 3339).
    pub finished_at: String,
}

/// What became of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Waiting for, or being built by, the profile function.
    Queued(ExportRequest),
    /// Written.
    Done(Manifest),
    /// Could never be built.
    Failed {
        /// Who asked.
        analyst: String,
        /// Why.
        reason: String,
    },
    /// No such job.
    Unknown,
}

/// Whether `id` is a job id: 32 lowercase hex digits.
pub fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn request_key(id: &str) -> String {
    format!("{REQUESTS}{id}.json")
}

fn manifest_key(id: &str) -> String {
    format!("{JOBS}{id}.manifest.json")
}

fn failed_key(id: &str) -> String {
    format!("{JOBS}{id}.failed.json")
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::backend("encoding an export job", e))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::backend("reading an export job", e))
}

/// Queue a job (its id must be [`valid_id`]); the request's key.
pub fn submit(objects: &dyn ObjectStore, req: &ExportRequest) -> Result<String, StoreError> {
    if !valid_id(&req.id) {
        return Err(StoreError::Invalid(
            "an export job id is 32 hex digits".into(),
        ));
    }
    let key = request_key(&req.id);
    objects.put(&key, &encode(req)?, PutMode::Create)?;
    Ok(key)
}

/// The job id a request object's key names, if it is one.
pub fn id_of_request(key: &str) -> Option<&str> {
    key.strip_prefix(REQUESTS)?
        .strip_suffix(".json")
        .filter(|id| valid_id(id))
}

/// A job's status.
pub fn status(objects: &dyn ObjectStore, id: &str) -> Result<Status, StoreError> {
    if !valid_id(id) {
        return Ok(Status::Unknown);
    }
    let read = |key: &str| match objects.get_bytes(key) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    };
    if let Some(bytes) = read(&manifest_key(id))? {
        return Ok(Status::Done(decode(&bytes)?));
    }
    if let Some(bytes) = read(&failed_key(id))? {
        let v: Value = decode(&bytes)?;
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        return Ok(Status::Failed {
            analyst: text("analyst"),
            reason: text("reason"),
        });
    }
    Ok(match read(&request_key(id))? {
        Some(bytes) => Status::Queued(decode(&bytes)?),
        None => Status::Unknown,
    })
}

/// Run the job whose request is at `key`: write the export and its
/// manifest, then delete the request. `Ok(None)` when the request is gone
/// (a second delivery of the event). A request that can never be built
/// (an unknown dataset) gets a `failed` marker instead, and is deleted.
pub fn run(
    objects: &dyn ObjectStore,
    store: &dyn RecordStore,
    catalog: &Catalog,
    key: &str,
    now: &str,
) -> Result<Option<Status>, QueryError> {
    let Some(id) = id_of_request(key) else {
        return Ok(None);
    };
    let req: ExportRequest = match objects.get_bytes(key) {
        Ok(bytes) => decode(&bytes)?,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let out = format!("{JOBS}{id}.{}", req.format.ext());
    let done = match write_flat(
        objects,
        store,
        catalog,
        req.dataset.as_deref(),
        req.format,
        &out,
        u64::MAX,
    ) {
        Ok(Written::Done { rows, datasets }) => Status::Done(Manifest {
            analyst: req.analyst.clone(),
            key: out,
            rows,
            datasets,
            finished_at: now.to_owned(),
        }),
        Ok(Written::TooLarge) => Status::Failed {
            analyst: req.analyst.clone(),
            reason: "the export is larger than a job may write".into(),
        },
        Err(e @ QueryError::UnknownDataset(_)) => Status::Failed {
            analyst: req.analyst.clone(),
            reason: e.to_string(),
        },
        Err(e) => return Err(e),
    };
    match &done {
        Status::Done(m) => {
            objects.put(&manifest_key(id), &encode(m)?, PutMode::Overwrite)?;
        }
        Status::Failed { analyst, reason } => {
            let v = serde_json::json!({ "analyst": analyst, "reason": reason });
            objects.put(&failed_key(id), &encode(&v)?, PutMode::Overwrite)?;
        }
        _ => {}
    }
    objects.delete(key)?;
    Ok(Some(done))
}

/// What [`write_flat`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The export is stored.
    Done {
        /// Rows written.
        rows: u64,
        /// Datasets exported.
        datasets: Vec<String>,
    },
    /// It has more than the limit's rows; nothing is stored.
    TooLarge,
}

/// Write a flat export of `dataset` (or every dataset) to `key`, through a
/// private temporary file; at most `limit` rows, else nothing is stored.
pub fn write_flat(
    objects: &dyn ObjectStore,
    store: &dyn RecordStore,
    catalog: &Catalog,
    dataset: Option<&str>,
    format: Flat,
    key: &str,
    limit: u64,
) -> Result<Written, QueryError> {
    let plan = query::plan_export(store, catalog, dataset)?;
    let tmp = std::env::temp_dir().join(format!(
        "agencylink-export-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let io = |e: std::io::Error| QueryError::Store(StoreError::backend("writing the export", e));
    let csv = format == Flat::Csv;
    let result = (|| -> Result<Option<u64>, QueryError> {
        let mut out = BufWriter::new(private_file(&tmp).map_err(io)?);
        let mut failed: Option<QueryError> = None;
        let mut too_large = false;
        if csv {
            // The header is neutralised like every cell (column names come
            // from the schemas).
            let header: Vec<String> = plan
                .columns
                .iter()
                .map(|c| csv_field(&neutralise(c)))
                .collect();
            writeln!(out, "{}", header.join(",")).map_err(io)?;
        }
        let mut written = 0u64;
        let n = query::export_rows(store, catalog, &plan, &mut |row| {
            if written >= limit {
                too_large = true;
                return false;
            }
            written += 1;
            let line = if csv {
                query::csv_record(&plan.columns, &row).map(|cells| {
                    cells
                        .iter()
                        .map(|c| csv_field(c))
                        .collect::<Vec<_>>()
                        .join(",")
                })
            } else {
                Ok(Value::Object(row).to_string())
            };
            match line.map(|l| writeln!(out, "{l}").map_err(io)) {
                Ok(Ok(())) => true,
                Ok(Err(e)) | Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if too_large {
            return Ok(None);
        }
        out.flush().map_err(io)?;
        Ok(Some(n))
    })();
    let stored = match result {
        Ok(Some(rows)) => File::open(&tmp)
            .map_err(io)
            .and_then(|mut f| {
                objects
                    .put_from(key, &mut f, PutMode::Create)
                    .map_err(QueryError::Store)
            })
            .map(|_| Written::Done {
                rows,
                datasets: plan.datasets.clone(),
            }),
        Ok(None) => Ok(Written::TooLarge),
        Err(e) => Err(e),
    };
    // The temporary copy holds pseudonymised rows: it never outlives this.
    let _ = std::fs::remove_file(&tmp);
    stored
}

/// A new file only its owner can read: the staging copy holds
/// pseudonymised rows, and the temporary directory may be shared with
/// other users (on one machine; on Lambda it is the function's own).
/// `create_new`, so a file planted at the name is never written through.
fn private_file(path: &std::path::Path) -> std::io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
}

/// A CSV field, quoted when it holds a comma, quote or line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_staging_file_is_private_and_never_an_existing_one() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!(
            "agencylink-export-test-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let f = private_file(&path).expect("created");
        let mode = f.metadata().expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(private_file(&path).is_err(), "an existing file is refused");
        std::fs::remove_file(&path).expect("removed");
    }

    #[test]
    fn job_ids_and_request_keys() {
        let id = "0123456789abcdef0123456789abcdef";
        assert!(valid_id(id));
        assert!(!valid_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!valid_id("../x"));
        assert_eq!(id_of_request(&request_key(id)), Some(id));
        assert_eq!(id_of_request("export-requests/x.json"), None);
        assert_eq!(id_of_request("profile-requests/a.json"), None);
    }
}
