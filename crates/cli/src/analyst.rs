//! Analyst reads and auditor views: `query person`, `query network`,
//! `export`, `access-log` and `lineage export --openlineage`.
//!
//! Every analyst read names the analyst and a purpose and is appended to the
//! hash-chained access log *before* any data is written out, so a read that
//! cannot be logged returns nothing. The logic lives in
//! `agencylink_core::query`; this module opens the store, orders the steps
//! and writes the output.

use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agencylink_core::csv_safe::neutralise;
use agencylink_core::events::LineageEvent;
use agencylink_core::ports::ChainLog;
use agencylink_core::query::{self, NetworkLimits, QueryError};
use agencylink_core::schema::Catalog;
use agencylink_local::SqliteStore;
use anyhow::{Context, Result, bail};

/// Who is reading and why; both go into the access log.
#[derive(Debug, clap::Args)]
pub(crate) struct Reader {
    /// Your name or user id, recorded in the access log with this read.
    #[arg(long, value_name = "NAME")]
    pub(crate) analyst: String,
    /// Why you need the data (an operation or case reference), recorded in
    /// the access log. An empty purpose is refused.
    #[arg(long, value_name = "TEXT")]
    pub(crate) purpose: String,
}

/// `agencylink query …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum QueryCommand {
    /// A person's records across agencies, oldest first, as JSON. An id that
    /// was merged into another person resolves, and the output says so.
    Person {
        /// Person id (`p_…`).
        id: String,
        #[command(flatten)]
        reader: Reader,
    },
    /// The people tied to a person through shared crimes, intelligence
    /// reports, vehicles or phones, as JSON, and whether it is group-based
    /// exploitation (2+ suspects, 1+ victim).
    Network {
        /// Person id (`p_…`) or network id (`n_…`).
        id: String,
        #[command(flatten)]
        reader: Reader,
        /// Hops to follow from the person.
        #[arg(long, default_value_t = NetworkLimits::default().max_depth)]
        max_depth: usize,
        /// People to return at most.
        #[arg(long, default_value_t = NetworkLimits::default().max_people)]
        max_people: usize,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// One header row, then one row per record; formula cells neutralised.
    Csv,
    /// One JSON object per record per line.
    Ndjson,
}

/// `agencylink export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// `csv` for i2, Excel or Power BI; `ndjson` for programs.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Only this dataset (default: every dataset in the store).
    #[arg(long)]
    dataset: Option<String>,
    #[command(flatten)]
    reader: Reader,
    /// Write to this file (mode 0600) instead of stdout. It appears only once
    /// the read is logged.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// `agencylink access-log`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct AccessLogArgs {
    /// Recompute the hash chain instead of printing the log, then check the
    /// log against the latest signed checkpoint (or --checkpoint FILE).
    /// Exit 0 intact, 1 broken (entries edited, or deleted from the end).
    #[arg(long)]
    pub(crate) verify: bool,
    /// With --verify: check against this checkpoint file (e.g. a copy kept
    /// off the machine) instead of the latest one kept.
    #[arg(long, value_name = "FILE", requires = "verify")]
    pub(crate) checkpoint: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Option<AccessLogCommand>,
}

/// `agencylink access-log …`.
#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub(crate) enum AccessLogCommand {
    /// Sign a checkpoint of the access log as it is now (size, head hash,
    /// time, key id, signature), keep it (DATA_DIR/checkpoints/ locally, the
    /// WORM audit bucket on AWS) and print it as JSON. Refused (exit 1) when
    /// the log does not verify.
    Checkpoint,
}

/// Append a read to an access log (any backend's) before any data goes
/// out; the entry as stored is returned.
pub(crate) fn record_read(
    log: &dyn ChainLog,
    reader: &Reader,
    action: &str,
    target: &str,
    rows: u64,
    time: &str,
) -> Result<serde_json::Value> {
    query::log_read(
        log,
        &query::Read {
            analyst: &reader.analyst,
            purpose: &reader.purpose,
            action,
            target,
            rows_returned: rows,
            time,
        },
    )
    .context("the read could not be recorded in the access log, so no data was returned")
}

/// Record a read; the entry's seq is returned for the note on stderr.
fn log_read(
    store: &SqliteStore,
    reader: &Reader,
    action: &str,
    target: &str,
    rows: u64,
) -> Result<u64> {
    let time = crate::commands::now_rfc3339();
    let entry = record_read(&store.access_log(), reader, action, target, rows, &time)?;
    Ok(entry
        .get("seq")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0))
}

pub(crate) fn query(catalog: &Catalog, data_dir: &Path, cmd: QueryCommand) -> Result<ExitCode> {
    let (reader, id) = match &cmd {
        QueryCommand::Person { reader, id } | QueryCommand::Network { reader, id, .. } => {
            (reader, id.as_str())
        }
    };
    query::check_reader(&reader.analyst, &reader.purpose)?;
    let store = crate::commands::open_existing_store(data_dir)?;
    let (action, answer) = match &cmd {
        QueryCommand::Person { .. } => (
            "query_person",
            query::person_timeline(&store, catalog, id)
                .map(|t| (serde_json::to_value(&t), t.timeline.len() as u64)),
        ),
        QueryCommand::Network {
            max_depth,
            max_people,
            ..
        } => {
            let limits = NetworkLimits {
                max_depth: *max_depth,
                max_people: *max_people,
            };
            (
                "query_network",
                query::person_network(&store, catalog, id, limits)
                    .map(|n| (serde_json::to_value(&n), n.people.len() as u64)),
            )
        }
    };
    match answer {
        Ok((json, rows)) => {
            let json = json?;
            let seq = log_read(&store, reader, action, id, rows)?;
            let mut out = io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &json)?;
            writeln!(out)?;
            eprintln!("{rows} rows; this read is access-log entry {seq}");
            Ok(ExitCode::SUCCESS)
        }
        // Looking someone up is a read even when nobody matches: auditors
        // need to see searches as well as finds. A malformed id read nothing.
        Err(e @ QueryError::UnknownPerson(_)) => {
            log_read(&store, reader, action, id, 0)?;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn export(catalog: &Catalog, data_dir: &Path, args: ExportArgs) -> Result<ExitCode> {
    query::check_reader(&args.reader.analyst, &args.reader.purpose)?;
    let store = crate::commands::open_existing_store(data_dir)?;
    let plan = query::plan_export(&store, catalog, args.dataset.as_deref())?;
    // The row count goes into the access log before any row leaves, so rows
    // are staged in a private file first (next to --out, so handing over is
    // a rename; else in the data directory, which holds this data anyway),
    // under an unpredictable name that an interrupted run removes.
    let staging_dir = match &args.out {
        Some(out) => {
            out.file_name().context("--out must name a file")?;
            let dir = match out.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            agencylink_local::fsafe::check_output_dir(&dir)?;
            dir
        }
        None => data_dir.to_path_buf(),
    };
    let staging = agencylink_local::fsafe::TempFile::create_in(&staging_dir, "export.partial")
        .with_context(|| format!("creating a staging file in {}", staging_dir.display()))?;
    let file = staging.handle()?;
    let mut failure: Option<anyhow::Error> = None;
    let rows = match args.format {
        ExportFormat::Csv => {
            let mut w = csv::WriterBuilder::new().from_writer(BufWriter::new(file));
            // Column names come from the schemas, which may be a directory
            // of someone's making: the header is neutralised like any cell.
            w.write_record(plan.columns.iter().map(|c| neutralise(c).into_owned()))?;
            let n = query::export_rows(&store, catalog, &plan, &mut |row| {
                let written = query::csv_record(&plan.columns, &row)
                    .map_err(anyhow::Error::from)
                    .and_then(|cells| Ok(w.write_record(&cells)?));
                match written {
                    Ok(()) => true,
                    Err(e) => {
                        failure = Some(e);
                        false
                    }
                }
            })?;
            w.into_inner()
                .map_err(|e| e.into_error())?
                .into_inner()
                .map_err(|e| e.into_error())?
                .sync_all()?;
            n
        }
        ExportFormat::Ndjson => {
            let mut w = BufWriter::new(file);
            let n = query::export_rows(&store, catalog, &plan, &mut |row| {
                let written = serde_json::to_writer(&mut w, &row)
                    .map_err(io::Error::other)
                    .and_then(|()| w.write_all(b"\n"));
                match written {
                    Ok(()) => true,
                    Err(e) => {
                        failure = Some(e.into());
                        false
                    }
                }
            })?;
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            n
        }
    };
    if let Some(e) = failure {
        return Err(e.context("writing the export"));
    }
    let target = args.dataset.as_deref().unwrap_or("all");
    let seq = log_read(&store, &args.reader, "export", target, rows)?;
    match &args.out {
        Some(out) => {
            staging
                .persist(out, true)
                .with_context(|| format!("moving the export to {}", out.display()))?;
            eprintln!(
                "exported {rows} rows to {}; this read is access-log entry {seq}",
                out.display()
            );
        }
        None => {
            let mut staged = staging.handle()?;
            staged.rewind()?;
            let mut out = io::stdout().lock();
            io::copy(&mut staged, &mut out)?;
            out.flush()?;
            eprintln!("exported {rows} rows; this read is access-log entry {seq}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn access_log(data_dir: &Path, args: AccessLogArgs) -> Result<ExitCode> {
    let store = crate::commands::open_existing_store(data_dir)?;
    let entries = store.access_log().entries()?;
    access_log_print(
        &entries,
        &args,
        &crate::checkpoint_cmd::LocalCk::new(data_dir),
    )
}

/// Print, verify or checkpoint access-log entries from any backend.
pub(crate) fn access_log_print(
    entries: &[serde_json::Value],
    args: &AccessLogArgs,
    ck: &dyn crate::checkpoint_cmd::Checkpoints,
) -> Result<ExitCode> {
    use crate::checkpoint_cmd::{ACCESS_LOG, checkpoint_cmd, verify_cmd};
    if let Some(AccessLogCommand::Checkpoint) = args.command {
        return checkpoint_cmd(&ACCESS_LOG, entries, ck);
    }
    if args.verify {
        return verify_cmd(&ACCESS_LOG, entries, args.checkpoint.as_ref(), ck, None);
    }
    let mut out = io::stdout().lock();
    for e in entries {
        writeln!(out, "{}", serde_json::to_string(e)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `agencylink lineage export --openlineage`: one RunEvent per lineage event.
pub(crate) fn lineage_export(
    catalog: &Catalog,
    data_dir: &Path,
    openlineage: bool,
) -> Result<ExitCode> {
    if !openlineage {
        bail!("choose an export format: --openlineage (OpenLineage RunEvent JSON lines)");
    }
    let store = crate::commands::open_existing_store(data_dir)?;
    let entries = store.lineage().entries()?;
    // Exporting a chain that does not verify would hand edited history to
    // the lineage tool as if it were true.
    if let Err(p) = agencylink_core::lineage::verify(&entries) {
        eprintln!(
            "lineage BROKEN at event {} (seq {:?}): {}; nothing exported (see `agencylink lineage verify`)",
            p.position, p.seq, p.reason
        );
        return Ok(ExitCode::from(1));
    }
    let mut out = BufWriter::new(io::stdout().lock());
    // Uploads are runs over datasets; a linkage-model run (`link_train`)
    // reads no dataset and is left to `lineage list`.
    let uploads: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| matches!(LineageEvent::from_entry(e).kind(), "ingest" | "failure"))
        .collect();
    for e in &uploads {
        serde_json::to_writer(&mut out, &query::openlineage_event(e, catalog))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    eprintln!(
        "{} OpenLineage run events ({} other lineage events, such as linkage-model runs, are in `lineage list`)",
        uploads.len(),
        entries.len() - uploads.len()
    );
    Ok(ExitCode::SUCCESS)
}
