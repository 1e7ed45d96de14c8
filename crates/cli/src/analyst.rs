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
use agencylink_core::ports::{ChainLog, RecordStore};
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
    /// exploitation (2+ suspects, 1+ victim); or the same network as a chart
    /// for Gephi and yEd (GraphML) or i2 Analyst's Notebook (entity-link CSV).
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
        /// `json` (the default) for programs; `graphml` for Gephi or yEd;
        /// `i2` for an i2 Analyst's Notebook entity-link CSV (needs --out).
        #[arg(long, value_enum, default_value_t = NetworkFormat::Json)]
        format: NetworkFormat,
        /// With --format graphml or i2: write to this file (mode 0600)
        /// instead of stdout; i2 writes its import specification beside it
        /// (`NAME.import-spec.json`). Files appear only once the read is logged.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// `query network` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum NetworkFormat {
    /// The network as JSON.
    Json,
    /// GraphML for Gephi and yEd.
    Graphml,
    /// An i2 Analyst's Notebook entity-link CSV and its import specification.
    I2,
}

/// The chart `query network --format` asks for (`None`: JSON), refusing
/// `--out` with JSON before anything is read.
pub(crate) fn chart_format(
    format: NetworkFormat,
    out: Option<&Path>,
) -> Result<Option<GraphFormat>> {
    Ok(match format {
        NetworkFormat::Json if out.is_some() => {
            bail!("--out is for --format graphml or i2; JSON goes to stdout")
        }
        NetworkFormat::Json => None,
        NetworkFormat::Graphml => Some(GraphFormat::Graphml),
        NetworkFormat::I2 => Some(GraphFormat::I2),
    })
}

/// The charting formats both `export` and `query network` write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GraphFormat {
    Graphml,
    I2,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// One header row, then one row per record; formula cells neutralised.
    Csv,
    /// One JSON object per record per line.
    Ndjson,
    /// An i2 Analyst's Notebook entity-link CSV (people, crimes,
    /// intelligence reports, vehicles, phones; one row per link) and its
    /// import specification beside it. Needs --out.
    I2,
    /// GraphML for Gephi and yEd: people and linking values as typed nodes,
    /// dated links as edges.
    Graphml,
}

/// `agencylink export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// `csv` for Excel or Power BI; `ndjson` for programs; `i2` for i2
    /// Analyst's Notebook; `graphml` for Gephi or yEd.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Only this dataset (default: every dataset in the store).
    #[arg(long)]
    dataset: Option<String>,
    #[command(flatten)]
    reader: Reader,
    /// Write to this file (mode 0600) instead of stdout. It appears only once
    /// the read is logged. With `--format i2` the import specification is
    /// written beside it (`NAME.import-spec.json`).
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
    if let QueryCommand::Network {
        format,
        out,
        max_depth,
        max_people,
        ..
    } = &cmd
    {
        let limits = NetworkLimits {
            max_depth: *max_depth,
            max_people: *max_people,
        };
        if let Some(f) = chart_format(*format, out.as_deref())? {
            return network_chart(catalog, data_dir, id, reader, limits, f, out.as_deref());
        }
    }
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
    match args.format {
        ExportFormat::I2 => return export_chart(catalog, data_dir, &args, GraphFormat::I2),
        ExportFormat::Graphml => {
            return export_chart(catalog, data_dir, &args, GraphFormat::Graphml);
        }
        ExportFormat::Csv | ExportFormat::Ndjson => {}
    }
    let store = crate::commands::open_existing_store(data_dir)?;
    let plan = query::plan_export(&store, catalog, args.dataset.as_deref())?;
    // The row count goes into the access log before any row leaves, so rows
    // are staged in a private file first, under an unpredictable name that
    // an interrupted run removes.
    let staging_dir = staging_dir(args.out.as_deref(), data_dir)?;
    let staging = staging_file(&staging_dir, "export.partial")?;
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
        // Charts returned above; nothing reaches here.
        ExportFormat::I2 | ExportFormat::Graphml => bail!("a chart format reached the flat export"),
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

/// Where a read's output is staged before the read is logged: next to
/// `--out` (so handing over is a rename), else in the data directory (which
/// holds this data anyway). Checked before anything is read.
fn staging_dir(out: Option<&Path>, data_dir: &Path) -> Result<PathBuf> {
    match out {
        Some(out) => out_dir(out),
        None => Ok(data_dir.to_path_buf()),
    }
}

/// The folder `--out` names a file in, refused when others can write to it.
fn out_dir(out: &Path) -> Result<PathBuf> {
    out.file_name().context("--out must name a file")?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    agencylink_local::fsafe::check_output_dir(&dir)?;
    Ok(dir)
}

/// A private staging file with an unpredictable name that an interrupted
/// run removes.
fn staging_file(dir: &Path, hint: &str) -> Result<agencylink_local::fsafe::TempFile> {
    agencylink_local::fsafe::TempFile::create_in(dir, hint)
        .with_context(|| format!("creating a staging file in {}", dir.display()))
}

/// Where the i2 import specification goes: beside the CSV, named after it
/// (`links.csv` -> `links.import-spec.json`).
pub(crate) fn i2_spec_path(out: &Path) -> PathBuf {
    out.with_extension("import-spec.json")
}

/// i2 output is two files (the CSV and its import specification), so it
/// cannot go to stdout. Checked before anything is read.
fn require_out_for_i2(format: GraphFormat, out: Option<&Path>) -> Result<()> {
    if format == GraphFormat::I2 && out.is_none() {
        bail!(
            "--format i2 writes two files, the CSV and its import specification: give --out FILE.csv"
        );
    }
    Ok(())
}

/// Render a chart in memory (it is bounded by the graph, not by the
/// records read), log the read (`log` returns the access-log seq), and only
/// then hand it over: to stdout, or to `out` (staged beside it first, so a
/// full disk fails before the read is logged and the files appear whole)
/// with the i2 import specification beside it.
fn write_chart(
    graph: &query::Graph,
    from: &query::GraphSource,
    format: GraphFormat,
    out: Option<&Path>,
    log: impl FnOnce() -> Result<u64>,
) -> Result<u64> {
    let (doc, spec) = match format {
        GraphFormat::Graphml => (query::to_graphml(graph, from).into_bytes(), None),
        GraphFormat::I2 => {
            let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
            w.write_record(query::i2_header())?;
            for row in query::i2_rows(graph) {
                w.write_record(&row)?;
            }
            let mut spec = serde_json::to_vec_pretty(&query::i2_import_spec())?;
            spec.push(b'\n');
            (w.into_inner().map_err(|e| e.into_error())?, Some(spec))
        }
    };
    let Some(out) = out else {
        let seq = log()?;
        let mut stdout = io::stdout().lock();
        stdout.write_all(&doc)?;
        stdout.flush()?;
        return Ok(seq);
    };
    let dir = out_dir(out)?;
    let stage = |bytes: &[u8], hint: &str| -> Result<agencylink_local::fsafe::TempFile> {
        let staged = staging_file(&dir, hint)?;
        let mut f = staged.handle()?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(staged)
    };
    let staged_doc = stage(&doc, "chart.partial")?;
    let staged_spec = spec.map(|s| stage(&s, "import-spec.partial")).transpose()?;
    let seq = log()?;
    if let Some(spec) = staged_spec {
        let at = i2_spec_path(out);
        spec.persist(&at, true)
            .with_context(|| format!("moving the import specification to {}", at.display()))?;
    }
    staged_doc
        .persist(out, true)
        .with_context(|| format!("moving the chart to {}", out.display()))?;
    Ok(seq)
}

/// `query network ID --format graphml|i2` on the local store.
fn network_chart(
    catalog: &Catalog,
    data_dir: &Path,
    id: &str,
    reader: &Reader,
    limits: NetworkLimits,
    format: GraphFormat,
    out: Option<&Path>,
) -> Result<ExitCode> {
    require_out_for_i2(format, out)?;
    if let Some(out) = out {
        out_dir(out)?;
    }
    let store = crate::commands::open_existing_store(data_dir)?;
    network_chart_in(&store, catalog, id, limits, format, out, |rows| {
        log_read(&store, reader, "query_network", id, rows)
    })
}

/// `query network ID --format graphml|i2` on any backend: the same walk and
/// the same access-log entry (`query_network`, one row per person) as the
/// JSON read. `log(rows)` appends the read and returns its seq.
pub(crate) fn network_chart_in(
    store: &dyn RecordStore,
    catalog: &Catalog,
    id: &str,
    limits: NetworkLimits,
    format: GraphFormat,
    out: Option<&Path>,
    log: impl Fn(u64) -> Result<u64>,
) -> Result<ExitCode> {
    require_out_for_i2(format, out)?;
    let (net, graph) = match query::network_graph(store, catalog, id, limits) {
        Ok(answer) => answer,
        // As for JSON: a search that finds nobody is still a logged read.
        Err(e @ QueryError::UnknownPerson(_)) => {
            log(0)?;
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let rows = net.people.len() as u64;
    let from = query::GraphSource {
        source: "network".into(),
        target: id.to_owned(),
        network_id: net.network_id.clone(),
        group_based: Some(net.group_based),
        truncated: Some(net.truncated),
    };
    let seq = write_chart(&graph, &from, format, out, || log(rows))?;
    if let Some(note) = &net.note {
        eprintln!("note: {note}");
    }
    eprintln!(
        "{} nodes, {} edges ({rows} people); this read is access-log entry {seq}",
        graph.nodes.len(),
        graph.edges.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `export --format graphml|i2`: every person with a linking value in the
/// exported datasets, as a chart. Logged as `export` like the flat formats,
/// with the number of records read.
fn export_chart(
    catalog: &Catalog,
    data_dir: &Path,
    args: &ExportArgs,
    format: GraphFormat,
) -> Result<ExitCode> {
    let out = args.out.as_deref();
    require_out_for_i2(format, out)?;
    if let Some(out) = out {
        out_dir(out)?;
    }
    let store = crate::commands::open_existing_store(data_dir)?;
    let plan = query::plan_export(&store, catalog, args.dataset.as_deref())?;
    let graph = query::export_graph(&store, catalog, &plan)?;
    let target = args.dataset.as_deref().unwrap_or("all");
    let from = query::GraphSource {
        source: "export".into(),
        target: target.to_owned(),
        ..query::GraphSource::default()
    };
    let seq = write_chart(&graph, &from, format, out, || {
        log_read(&store, &args.reader, "export", target, graph.records)
    })?;
    eprintln!(
        "exported {} nodes and {} edges from {} records; this read is access-log entry {seq}",
        graph.nodes.len(),
        graph.edges.len(),
        graph.records
    );
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
    openlineage_print(catalog, &store.lineage().entries()?)
}

/// Print lineage `entries` from any backend as OpenLineage RunEvents, one
/// JSON line each; exit 1, printing nothing, when their chain is broken.
pub(crate) fn openlineage_print(
    catalog: &Catalog,
    entries: &[serde_json::Value],
) -> Result<ExitCode> {
    // Exporting a chain that does not verify would hand edited history to
    // the lineage tool as if it were true.
    if let Err(p) = agencylink_core::lineage::verify(entries) {
        eprintln!(
            "lineage BROKEN at event {} (seq {:?}): {}; nothing exported (see `agencylink lineage verify`)",
            p.position, p.seq, p.reason
        );
        return Ok(ExitCode::from(1));
    }
    let mut out = BufWriter::new(io::stdout().lock());
    // Uploads are runs over datasets; withdrawals, expiries, key rotations
    // and linkage-model runs are runs too, so a lineage tool sees data
    // leave the store as well as arrive.
    let mut exported = 0usize;
    for e in entries {
        let run = match LineageEvent::from_entry(e).kind() {
            "ingest" | "failure" => Some(query::openlineage_event(e, catalog)),
            _ => query::openlineage_lifecycle_event(e),
        };
        if let Some(run) = run {
            serde_json::to_writer(&mut out, &run)?;
            out.write_all(b"\n")?;
            exported += 1;
        }
    }
    out.flush()?;
    eprintln!(
        "{exported} OpenLineage run events ({} lineage events of an unknown kind left out)",
        entries.len() - exported
    );
    Ok(ExitCode::SUCCESS)
}
