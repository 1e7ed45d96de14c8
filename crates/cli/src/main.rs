//! The `agencylink` command: a thin layer over `agencylink-core` that parses
//! arguments, opens files, and maps outcomes to exit codes (0 ok, 1 problems
//! found and reported, 2 the command could not do its job).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agencylink_core::curate::{CurateScratch, Curator, Provenance};
use agencylink_core::parallel::{End, available_threads, each_row_in_order};
use agencylink_core::pseudo::{Kind, Pseudonymiser, canonicalise};
use agencylink_core::read::{self, InputFormat, Row};
use agencylink_core::report::{JsonReportWriter, validate_all};
use agencylink_core::schema::{Catalog, Dataset, SchemaError};
use agencylink_core::validate::{DateBounds, RowError, RowValidator};
use agencylink_local::LocalKeyProvider;
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

mod analyst;
#[cfg(feature = "aws")]
mod aws;
mod checkpoint_cmd;
mod commands;
mod interrupt;
mod key_cmd;
mod language_cmd;
mod lifecycle_cmd;
mod linkage_cmd;
mod profile_cmd;
mod progress;
mod serve_cmd;
mod serve_uploads;
mod upload_cmd;

// Row shaping allocates many small strings; mimalloc halves that cost.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// agencylink: validate, pseudonymise and link multi-agency CSE data extracts.
#[derive(Debug, Parser)]
#[command(name = "agencylink", version, about, propagate_version = true)]
struct Cli {
    /// Read dataset schemas from this directory instead of the embedded ones.
    /// Each is compared with the embedded schema of the same dataset (a
    /// warning when it differs); one that no longer pseudonymises a field
    /// the embedded schema does is refused unless --allow-schema-changes.
    /// Lineage records every schema's SHA-256 and origin.
    #[arg(long, global = true, value_name = "DIR", env = "AGENCYLINK_SCHEMAS")]
    schemas: Option<PathBuf>,
    /// Use --schemas even where a schema no longer treats a field of the
    /// embedded schema as an identifier (missing, no x-identifier, or
    /// another kind): those values are then stored unpseudonymised. Warned
    /// about on every run and recorded in lineage.
    /// AGENCYLINK_ALLOW_SCHEMA_CHANGES takes 1/0, true/false, yes/no, on/off.
    #[arg(
        long,
        global = true,
        env = "AGENCYLINK_ALLOW_SCHEMA_CHANGES",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    allow_schema_changes: bool,
    /// The data directory (objects, SQLite store, key file).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "AGENCYLINK_DATA_DIR",
        default_value = "agencylink-data"
    )]
    data_dir: PathBuf,
    /// Where the store lives: `local` (the data directory) or `aws` (S3,
    /// DynamoDB and Secrets Manager, configured by the AGENCYLINK_* and AWS_*
    /// variables; see crates/aws/README.md).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "AGENCYLINK_BACKEND",
        default_value_t = BackendArg::Local
    )]
    backend: BackendArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Local,
    Aws,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the datasets agencies can upload, with a one-line description.
    Datasets,
    /// Print the upload policy (`DATA_DIR/agencies.json`): which agencies
    /// may upload which datasets, as JSON. `ingest` enforces it.
    Agencies,
    /// Print a dataset's JSON Schema.
    Schema {
        /// Dataset id, e.g. police.cse_crime.
        id: String,
    },
    /// Check an extract against its dataset schema. Nothing leaves this machine.
    ///
    /// Exit codes: 0 all rows valid, 1 some rows invalid, 2 a file-level
    /// problem or bad usage.
    Validate {
        /// Dataset id, e.g. council.cin_referral.
        #[arg(long)]
        dataset: String,
        /// Input format; by default from the file name (.ndjson/.jsonl = NDJSON, else CSV).
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Report style: a summary for people, or JSON for machines.
        #[arg(long, value_enum, default_value_t = ReportArg::Text)]
        report: ReportArg,
        /// The extract to check (`-` for standard input).
        file: PathBuf,
    },
    /// Manage the local pseudonymisation key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Pseudonymise one value, or a whole extract to curated NDJSON.
    ///
    /// With `--kind`, prints the token of VALUE (exit 1 with the reason, never
    /// the value, when it is rejected). With `--kind K -`, reads one value per
    /// line from standard input and prints one token per line (an empty line
    /// for a rejected value), so no identifier sits on the command line. With
    /// `--dataset`, streams curated NDJSON for FILE to stdout and the rejected
    /// rows' errors to stderr.
    Pseudonymise(PseudonymiseArgs),
    /// Validate, pseudonymise and merge an extract into the local store.
    Ingest(commands::IngestArgs),
    /// With --backend aws: create what the deployment's variables name and
    /// is missing, for emulators (moto) and scratch accounts: the buckets,
    /// the table with its index, and the key secret with a fresh random key.
    /// Nothing that exists is changed (never the key secret). Prints one
    /// JSON line per resource, `created` or `existed`. Real deployments use
    /// infra/template.yaml.
    Setup,
    /// Read and verify the lineage log (auditors).
    #[command(subcommand)]
    Lineage(commands::LineageCommand),
    /// Write a synthetic extract (safe values only) to stdout.
    Synth(commands::SynthArgs),
    /// Write a two-agency linkage test set: a.csv (clean), b.csv (with
    /// linkage errors) and their ground truth, for a child-only dataset.
    SynthPair(commands::SynthPairArgs),
    /// Synthesise extracts for every dataset, ingest them, and summarise.
    Demo(commands::DemoArgs),
    /// Build the CSE problem profile: profile.json, one CSV per table and a
    /// self-contained profile.html, for analysts or (disclosure controlled)
    /// for partner agencies.
    Profile(profile_cmd::ProfileArgs),
    /// Analyst reads: a person's timeline or network, as JSON (a network
    /// also as GraphML or an i2 CSV). Needs
    /// --analyst and --purpose; every read is recorded in the access log.
    #[command(subcommand)]
    Query(analyst::QueryCommand),
    /// Export merged, pseudonymised records as CSV or NDJSON, or their
    /// people and linking values as a chart for i2 Analyst's Notebook or
    /// Gephi and yEd (GraphML). Needs --analyst and --purpose; recorded in
    /// the access log.
    Export(analyst::ExportArgs),
    /// Print the access log as JSON lines, or verify its hash chain (auditors).
    AccessLog(analyst::AccessLogArgs),
    /// The clerical review queue of probabilistic linkage (analysts; every
    /// call is in the access log).
    #[command(subcommand)]
    Review(linkage_cmd::ReviewCommand),
    /// The probabilistic linkage model: re-estimate it, or print it.
    #[command(subcommand)]
    Link(linkage_cmd::LinkCommand),
    /// Take an upload back out of the store: its records (people it alone
    /// knew go with them; people shared with other uploads keep their id),
    /// its curated data and reports, with a `withdrawn` lineage event.
    /// Exit 2, changing nothing, for an unknown or already withdrawn
    /// upload. Run `compact` afterwards to remove the bytes from disk.
    Withdraw(lifecycle_cmd::WithdrawArgs),
    /// Retention periods (a dataset schema's `x-retention-days`): `show`
    /// them, or `apply` them, removing the records past theirs.
    #[command(subcommand)]
    Retention(lifecycle_cmd::RetentionCommand),
    /// Rewrite the record bodies file with live records only, VACUUM the
    /// database and truncate its WAL, so no byte of a withdrawn or
    /// superseded record is left under the data directory. Takes the write
    /// lock; safe with readers running and if killed part-way. Exit 1 when
    /// a reader kept the WAL from being truncated (run it again).
    Compact,
    /// Victim-blaming and adultifying language in reports and case notes
    /// (reads only the files named; nothing leaves this machine).
    #[command(subcommand)]
    Language(language_cmd::LanguageCommand),
    /// Send an extract through the deployment's API (agencies): validated
    /// here first, then uploaded with a presigned form into the agency's
    /// own landing prefix; waits for the ingest and prints its summary.
    ///
    /// Exit codes: 0 every row ingested, 1 rows have errors (not sent
    /// without --allow-invalid-rows; or rejected at ingest), 2 not sent or
    /// not ingested (a file-level problem, a refusal, no answer in time).
    Upload(upload_cmd::UploadArgs),
    /// Serve the API (the routes, roles and JSON of the AWS deployment's)
    /// over this data directory, to users added with `user add`; loopback
    /// only unless --listen says otherwise. Every analyst read is in the
    /// access log, with a signed checkpoint after it, before it is answered.
    Serve(serve_cmd::ServeArgs),
    /// The users `serve` lets in, each with a role and a bearer token.
    #[command(subcommand)]
    User(serve_cmd::UserCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Create a new key file (mode 0600) in the data directory.
    Init,
    /// Print the id of the key in use.
    Id,
    #[command(flatten)]
    Rotation(key_cmd::RotationCommand),
}

#[derive(Debug, clap::Args)]
struct PseudonymiseArgs {
    /// Identifier kind (nhs_number, person_name, date, postcode, phone, email, vrm, local_ref, upn).
    #[arg(long, conflicts_with = "dataset", required_unless_present = "dataset")]
    kind: Option<String>,
    /// Print the canonical form instead of the token.
    #[arg(long, requires = "kind")]
    canonical: bool,
    /// Dataset id, to pseudonymise a whole extract.
    #[arg(long)]
    dataset: Option<String>,
    /// Agency id (scopes local references).
    #[arg(long, default_value = "")]
    agency: String,
    /// Input format for --dataset.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// The value (with --kind; `-` reads one value per line from standard
    /// input, which keeps identifiers out of `ps` and shell history) or the
    /// extract file (with --dataset; `-` for standard input).
    input: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum FormatArg {
    Csv,
    Ndjson,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportArg {
    Text,
    Json,
}

/// The status of a command whose reader went away (`agencylink lineage
/// list | head`): what a shell reports for a process SIGPIPE ended (128 +
/// 13), with nothing on stderr, as for `git log | head`. The signal itself
/// stays ignored (Rust's default), so a broken network connection (the AWS
/// SDK, `upload --api`) is an error to report, never a silent kill.
const BROKEN_PIPE: u8 = 141;

/// Whether stdout is a pipe whose reader has gone away (poll reports an
/// error on it), so a broken pipe in an error is stdout's and not, say, a
/// network connection's.
fn stdout_reader_gone() -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdout = io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&now)).is_ok() && fds[0].revents().contains(PollFlags::ERR)
}

/// Whether `e` is stdout's reader having gone away.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    stdout_reader_gone()
        && e.chain().any(|c| {
            c.downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
                || c.downcast_ref::<serde_json::Error>()
                    .is_some_and(|j| j.io_error_kind() == Some(io::ErrorKind::BrokenPipe))
        })
}

/// `println!` panics when stdout's reader has gone away; that panic ends
/// the command as [`BROKEN_PIPE`] does, quietly. Every other panic is
/// reported as usual.
fn quiet_on_broken_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout")
            && msg.contains("Broken pipe")
            && stdout_reader_gone()
        {
            std::process::exit(i32::from(BROKEN_PIPE));
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    interrupt::private_umask();
    interrupt::install();
    quiet_on_broken_stdout();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::from(BROKEN_PIPE),
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line. An AWS adapter's message already
/// names the resource, its variable and what to do: the SDK's error behind
/// it (a multi-line dump of the raw response) is for debug logs, not here.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        #[cfg(feature = "aws")]
        if agencylink_aws::is_sdk_detail(cause) {
            break;
        }
        parts.push(cause.to_string());
    }
    parts
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a command reads or writes the store (and so follows `--backend`).
fn uses_store(command: &Command) -> bool {
    !matches!(
        command,
        Command::Datasets
            | Command::Schema { .. }
            | Command::Validate { .. }
            | Command::Synth(_)
            | Command::SynthPair(_)
            | Command::Language(_)
            | Command::Upload(_)
    )
}

fn run(cli: Cli) -> Result<ExitCode> {
    let catalog = load_catalog(cli.schemas.as_deref(), cli.allow_schema_changes)?;
    if cli.backend == BackendArg::Aws && uses_store(&cli.command) {
        #[cfg(feature = "aws")]
        return aws::run(&catalog, cli.command);
        #[cfg(not(feature = "aws"))]
        anyhow::bail!(
            "this agencylink was built without the AWS backend; build it with `cargo build --release -p agencylink-cli --features aws`"
        );
    }
    // Every command that may append to the lineage log or the access log
    // leaves a signed checkpoint of each log it grew.
    let appends = matches!(
        cli.command,
        Command::Ingest(_)
            | Command::Demo(_)
            | Command::Query(_)
            | Command::Export(_)
            | Command::Review(_)
            | Command::Link(_)
            | Command::Profile(_)
            | Command::Withdraw(_)
            | Command::Retention(_)
            | Command::Key(KeyCommand::Rotation(_))
    );
    let data_dir = cli.data_dir.clone();
    let outcome = run_local(&catalog, cli);
    if appends && data_dir.join(commands::DB_FILE).is_file() {
        let checkpointed = commands::open_store_file(&data_dir).and_then(|store| {
            checkpoint_cmd::after_append(&store, &checkpoint_cmd::LocalCk::new(&data_dir))
        });
        if let Err(e) = checkpointed {
            let e = e.context("writing the signed checkpoints of the logs");
            if outcome.is_ok() {
                return Err(e);
            }
            eprintln!("error: {e:#}");
        }
    }
    outcome
}

fn run_local(catalog: &Catalog, cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Agencies => commands::agencies_cmd(&cli.data_dir),
        Command::Datasets => {
            let mut out = io::stdout().lock();
            for ds in catalog.latest() {
                let line = ds
                    .description
                    .split(". ")
                    .next()
                    .unwrap_or("")
                    .trim_end_matches('.');
                writeln!(out, "{:<34} v{}  {}", ds.id, ds.version, line)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { id } => {
            let ds = dataset(catalog, &id)?;
            let mut out = io::stdout().lock();
            out.write_all(ds.source.as_bytes())?;
            if !ds.source.ends_with('\n') {
                out.write_all(b"\n")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate {
            dataset: id,
            format,
            report,
            file,
        } => {
            let ds = dataset(catalog, &id)?;
            validate(ds, input_format(format, &file), report, &file)
        }
        Command::Key(KeyCommand::Init) => {
            let key = LocalKeyProvider::init(&cli.data_dir.join(agencylink_local::KEY_FILE))?;
            println!("{}", key.kid());
            eprintln!(
                "created a new key in {} (mode 0600); keep it secret and backed up",
                cli.data_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Key(KeyCommand::Rotation(cmd)) => key_cmd::rotation_cmd(&cli.data_dir, cmd),
        Command::Key(KeyCommand::Id) => {
            let key = commands::load_key(&cli.data_dir)?;
            println!("{}", key.kid());
            Ok(ExitCode::SUCCESS)
        }
        Command::Pseudonymise(args) => pseudonymise(catalog, &cli.data_dir, args),
        Command::Ingest(args) => commands::ingest_cmd(catalog, &cli.data_dir, args),
        Command::Setup => bail!(
            "`setup` creates an AWS deployment's resources: add --backend aws (the local backend makes its data directory on first use, and `agencylink key init` its key)"
        ),
        Command::Lineage(commands::LineageCommand::Export { openlineage }) => {
            analyst::lineage_export(catalog, &cli.data_dir, openlineage)
        }
        Command::Lineage(cmd) => commands::lineage_cmd(&cli.data_dir, cmd),
        Command::Query(cmd) => analyst::query(catalog, &cli.data_dir, cmd),
        Command::Export(args) => analyst::export(catalog, &cli.data_dir, args),
        Command::AccessLog(args) => analyst::access_log(&cli.data_dir, args),
        Command::Demo(args) => commands::demo(catalog, &cli.data_dir, args),
        Command::Profile(args) => profile_cmd::profile_cmd(catalog, &cli.data_dir, args),
        Command::Synth(args) => commands::synth(catalog, args),
        Command::Review(cmd) => linkage_cmd::review_local(&cli.data_dir, cmd),
        Command::Link(cmd) => linkage_cmd::link_local(&cli.data_dir, cmd),
        Command::SynthPair(args) => commands::synth_pair(catalog, args),
        Command::Withdraw(args) => lifecycle_cmd::withdraw_cmd(&cli.data_dir, args),
        Command::Compact => lifecycle_cmd::compact_cmd(&cli.data_dir),
        Command::Retention(cmd) => lifecycle_cmd::retention_cmd(catalog, &cli.data_dir, &cmd),
        Command::Language(cmd) => language_cmd::language_cmd(cmd),
        Command::Upload(args) => upload_cmd::run(catalog, args),
        Command::Serve(args) => serve_cmd::serve(catalog, &cli.data_dir, &args),
        Command::User(cmd) => serve_cmd::user_cmd(&cli.data_dir, cmd),
    }
}

fn load_catalog(dir: Option<&Path>, allow_schema_changes: bool) -> Result<Catalog> {
    let embedded = Catalog::embedded()?;
    let Some(dir) = dir else {
        return Ok(embedded);
    };
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("reading schemas from {}", dir.display()))?
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name.ends_with(".schema.json") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            files.push((name, text));
        }
    }
    if files.is_empty() {
        bail!("no *.schema.json files in {}", dir.display());
    }
    // Sorted so that errors and warnings come in the same order every run.
    files.sort();
    let catalog = Catalog::from_directory(
        files.iter().map(|(n, t)| (n.as_str(), t.as_str())),
        &embedded,
        allow_schema_changes,
    )
    .map_err(|e| {
        let hint = if matches!(e, SchemaError::IdentifiersRemoved { .. }) {
            " (refused; pass --allow-schema-changes to use it anyway and store those values raw)"
        } else {
            ""
        };
        anyhow::anyhow!("{e}{hint}")
    })
    .with_context(|| format!("schemas in {}", dir.display()))?;
    for ds in catalog.all() {
        let p = &ds.provenance;
        let short = &p.sha256[..12];
        if !p.identifiers_removed.is_empty() {
            let changes: Vec<String> = p
                .identifiers_removed
                .iter()
                .map(ToString::to_string)
                .collect();
            eprintln!(
                "warning: {}/{} (sha256 {short}…): dataset {} v{}: {}; those fields are not pseudonymised as the embedded schema does (allowed by --allow-schema-changes; recorded in lineage)",
                dir.display(),
                ds.file,
                ds.id,
                ds.version,
                changes.join("; ")
            );
        } else if p.differs_from_embedded == Some(true) {
            eprintln!(
                "warning: {}/{} (sha256 {short}…): dataset {} v{} differs from the embedded schema; its hash is recorded in lineage",
                dir.display(),
                ds.file,
                ds.id,
                ds.version
            );
        } else if p.differs_from_embedded.is_none() {
            eprintln!(
                "note: {}/{} (sha256 {short}…): dataset {} v{} has no embedded schema; its hash is recorded in lineage",
                dir.display(),
                ds.file,
                ds.id,
                ds.version
            );
        }
    }
    Ok(catalog)
}

pub(crate) fn dataset<'c>(catalog: &'c Catalog, id: &str) -> Result<&'c Dataset> {
    match catalog.get(id) {
        Some(ds) => Ok(ds),
        None => {
            let known: Vec<&str> = catalog.latest().map(|d| d.id.as_str()).collect();
            bail!(
                "unknown dataset `{id}`; known datasets: {}",
                known.join(", ")
            )
        }
    }
}

fn open_input(file: &Path) -> Result<Box<dyn Read>> {
    if file == Path::new("-") {
        return Ok(Box::new(io::stdin()));
    }
    let f = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    Ok(Box::new(f))
}

pub(crate) fn input_format(format: Option<FormatArg>, file: &Path) -> InputFormat {
    match format {
        Some(FormatArg::Csv) => InputFormat::Csv,
        Some(FormatArg::Ndjson) => InputFormat::Ndjson,
        None => InputFormat::from_file_name(&file.to_string_lossy()),
    }
}

fn pseudonymise(catalog: &Catalog, data_dir: &Path, args: PseudonymiseArgs) -> Result<ExitCode> {
    if let Some(kind) = &args.kind {
        let kind: Kind = kind.parse()?;
        // The key is loaded only for tokens: --canonical needs none.
        let p = if args.canonical {
            None
        } else {
            Some(Pseudonymiser::new(commands::load_key(data_dir)?))
        };
        let one = |value: &str| match &p {
            Some(p) => p.pseudonymise(kind, value, &args.agency),
            None => canonicalise(kind, value, &args.agency).map(|c| c.to_string()),
        };
        if args.input != "-" {
            eprintln!(
                "note: a value on the command line can be seen by other users (ps) and stays in shell history; pass - to read values from standard input"
            );
            return Ok(match one(&args.input) {
                Ok(out) => {
                    println!("{out}");
                    ExitCode::SUCCESS
                }
                Err(reason) => {
                    eprintln!("rejected: {kind}: {reason}");
                    ExitCode::from(1)
                }
            });
        }
        // One value per line in, one line per value out, in order: a
        // rejected value gives an empty line (its reason, never the value,
        // goes to stderr with the line number) so outputs stay aligned.
        let mut out = BufWriter::new(io::stdout().lock());
        let mut rejected = 0u64;
        for (i, line) in io::stdin().lock().lines().enumerate() {
            let line = line.with_context(|| {
                format!(
                    "reading standard input line {} (values must be UTF-8 text)",
                    i + 1
                )
            })?;
            let value = line.strip_suffix('\r').unwrap_or(&line);
            match one(value) {
                Ok(token) => writeln!(out, "{token}")?,
                Err(reason) => {
                    rejected += 1;
                    writeln!(out)?;
                    eprintln!("rejected: line {}: {kind}: {reason}", i + 1);
                }
            }
        }
        out.flush()?;
        return Ok(if rejected > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let id = args.dataset.as_deref().unwrap_or_default();
    let ds = dataset(catalog, id)?;
    if args.agency.is_empty() {
        bail!("--agency is required with --dataset");
    }
    commands::check_agency(&args.agency)?;
    let p = Pseudonymiser::new(commands::load_key(data_dir)?);
    let file = Path::new(&args.input);
    let input = BufReader::with_capacity(1 << 16, open_input(file)?);
    let mut rows = read::open(input_format(args.format, file), input, ds);
    let validator = RowValidator::new(ds).with_date_bounds(today_bounds()?);
    let curator = Curator::new(
        ds,
        &p,
        Provenance {
            agency: args.agency.clone(),
            upload_id: "local".into(),
        },
    );
    let mut out = BufWriter::new(io::stdout().lock());
    let mut report = JsonReportWriter::start(BufWriter::new(io::stderr().lock()), &ds.id)?;
    let mut summary = agencylink_core::report::Summary::new(&ds.id);
    // Only the curated line goes back to this thread: the rest of the
    // record is freed where it was made, while it is still in that
    // core's cache.
    let work = |row: &Row, scratch: &mut CurateScratch, errors: &mut Vec<RowError>| {
        curator
            .check_and_curate(&validator, row, errors, scratch)
            .map(|rec| rec.body)
    };
    // Rows are checked and curated on every core, written in source order.
    let end = each_row_in_order(
        rows.as_mut(),
        available_threads(),
        &work,
        &mut |rec, errors| -> io::Result<bool> {
            if let Some(body) = rec {
                // Written, not kept: the worker that made it frees it.
                out.write_all(body.as_str().as_bytes())?;
                out.write_all(b"\n")?;
            }
            for e in errors {
                report.error(e)?;
            }
            summary.record_row(errors);
            Ok(true)
        },
    )?;
    if let End::FileError(e) = end {
        summary.file_error(&e);
    }
    out.flush()?;
    report.finish(&summary)?.flush()?;
    Ok(if summary.has_file_errors() {
        ExitCode::from(2)
    } else if summary.invalid_rows > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The date bounds for rows checked now: no date after today (UTC) plus the
/// core's margin, none before 1900. The core reads no clock.
pub(crate) fn today_bounds() -> Result<DateBounds> {
    DateBounds::on(&commands::now_rfc3339()).context("the system clock gives no usable date")
}

fn validate(ds: &Dataset, format: InputFormat, report: ReportArg, file: &Path) -> Result<ExitCode> {
    let input = BufReader::with_capacity(1 << 16, open_input(file)?);
    let mut rows = read::open(format, input, ds);
    let validator = RowValidator::new(ds).with_date_bounds(today_bounds()?);
    let stdout = io::stdout().lock();
    let summary = if report == ReportArg::Json {
        let mut json = JsonReportWriter::start(BufWriter::new(stdout), &ds.id)?;
        let summary = validate_all(rows.as_mut(), &validator, |e| json.error(e))?;
        json.finish(&summary)?.flush()?;
        summary
    } else {
        let summary = validate_all(rows.as_mut(), &validator, |_| Ok(()))?;
        let mut out = stdout;
        out.write_all(summary.render_text().as_bytes())?;
        summary
    };
    Ok(if summary.has_file_errors() {
        ExitCode::from(2)
    } else if summary.invalid_rows > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
