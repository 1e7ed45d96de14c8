//! The store-touching commands: ingest, lineage, demo, synth. Each opens the
//! local adapters under the data directory and hands them to the core.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agencylink_core::ingest::{IngestSummary, Sinks, UploadInfo, ingest, upload_id};
use agencylink_core::policy::AgencyPolicy;
use agencylink_core::ports::{ChainLog, KeyProvider, PutMode, RecordStore};
use agencylink_core::pseudo::{Key, Pseudonymiser};
use agencylink_core::read::InputFormat;
use agencylink_core::schema::{Catalog, Dataset};
use agencylink_core::{geography, lineage};
use agencylink_local::{DirObjectStore, LocalKeyProvider, SqliteStore, fsafe};
use agencylink_synth::linkage::{PairOptions, write_pair};
use agencylink_synth::{ErrorModel, SynthOptions, World, write_csv_with_world};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// The SQLite file inside the data directory.
pub(crate) const DB_FILE: &str = "agencylink.db";

/// Load the key: `AGENCYLINK_KEY` + `AGENCYLINK_KEY_ID`, or the key file.
/// Never creates one: a read-only command on the wrong data directory must
/// fail rather than mint a key whose tokens match nothing in the store.
pub(crate) fn load_key(data_dir: &Path) -> Result<Key> {
    Ok(LocalKeyProvider::from_env(data_dir)?.key()?)
}

/// The key for commands that write the store (`ingest`, `demo`): created,
/// and said so on stderr, when the data directory has none yet.
pub(crate) fn load_or_create_key(data_dir: &Path) -> Result<Key> {
    let (key, created) = LocalKeyProvider::from_env(data_dir)?.key_or_init()?;
    if created {
        eprintln!(
            "created a new key in {} (mode 0600); keep it secret and backed up",
            data_dir.display()
        );
    }
    Ok(key)
}

/// Agency ids are `[a-z0-9-]{1,64}`.
pub(crate) fn check_agency(agency: &str) -> Result<()> {
    let ok = !agency.is_empty()
        && agency.len() <= 64
        && agency
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        bail!("agency id must be 1 to 64 characters of a-z, 0-9 and -");
    }
    Ok(())
}

struct Local {
    objects: DirObjectStore,
    store: SqliteStore,
}

/// Open an existing store for reading; a read never creates an empty one.
pub(crate) fn open_existing_store(data_dir: &Path) -> Result<SqliteStore> {
    let store = open_store_file(data_dir)?;
    check_key_matches(data_dir, &store)?;
    Ok(store)
}

/// Open an existing store without the key check, for work that reads no
/// pseudonymised data (signing the logs after a command, which has already
/// checked the key or been refused for it).
pub(crate) fn open_store_file(data_dir: &Path) -> Result<SqliteStore> {
    let db = data_dir.join(DB_FILE);
    if !db.is_file() {
        bail!(
            "no agencylink store in {}: run `agencylink ingest` or `agencylink demo` first, or pass --data-dir",
            data_dir.display()
        );
    }
    prepare_data_dir(data_dir)?;
    Ok(SqliteStore::open(&db)?)
}

/// One key per store: a read or a write under a key that is not the one
/// the store's records were pseudonymised with is refused (exit 2) before
/// it does anything. Only a configured key is checked: commands that need
/// none (an auditor's lineage and access-log reads) run without one.
pub(crate) fn check_key_matches(data_dir: &Path, store: &SqliteStore) -> Result<()> {
    let Ok(key) = LocalKeyProvider::from_env(data_dir).and_then(|p| p.key()) else {
        return Ok(());
    };
    if let Err(mismatch) = lineage::check_store_key_in(&store.lineage(), key.kid().as_str())? {
        bail!(
            "{mismatch} (the key comes from AGENCYLINK_KEY and AGENCYLINK_KEY_ID when set, else from {})",
            data_dir.join(agencylink_local::KEY_FILE).display()
        );
    }
    Ok(())
}

fn open_local(data_dir: &Path) -> Result<Local> {
    prepare_data_dir(data_dir)?;
    Ok(Local {
        objects: DirObjectStore::new(data_dir),
        store: SqliteStore::open(&data_dir.join(DB_FILE))?,
    })
}

/// Every command that opens the store first makes sure the data directory
/// is private (created 0700; refused if others can write to it; tightened,
/// with a warning, if they can read it) and removes what an interrupted
/// run left behind, saying so on stderr.
pub(crate) fn prepare_data_dir(data_dir: &Path) -> Result<()> {
    for note in fsafe::prepare_private_dir(data_dir)? {
        eprintln!("warning: {note}");
    }
    let swept = fsafe::sweep(data_dir)
        .with_context(|| format!("clearing leftovers in {}", data_dir.display()))?;
    if swept.landing > 0 {
        eprintln!(
            "removed {} raw extract copies that an interrupted ingest left under {}",
            swept.landing,
            data_dir.join("landing").display()
        );
    }
    if swept.temporary > 0 {
        eprintln!(
            "removed {} temporary files that an interrupted command left in {}",
            swept.temporary,
            data_dir.display()
        );
    }
    Ok(())
}

/// RFC 3339 UTC time now (the core reads no clock).
pub(crate) fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    agencylink_core::lineage::rfc3339_utc(secs)
}

/// `agencylink ingest`.
#[derive(Debug, clap::Args)]
pub(crate) struct IngestArgs {
    /// The uploading agency's id, e.g. rochdale-council.
    #[arg(long)]
    pub(crate) agency: String,
    /// Dataset id.
    #[arg(long)]
    pub(crate) dataset: String,
    /// Input format; by default from the file name.
    #[arg(long, value_enum)]
    pub(crate) format: Option<crate::FormatArg>,
    /// `incremental` (new and corrected rows; the default) or `full` (the
    /// agency's whole current extract: its earlier records of the dataset
    /// that this file leaves out are retired once it is merged, unless a
    /// row was rejected).
    #[arg(long, value_enum, default_value = "incremental")]
    pub(crate) mode: ModeArg,
    /// The extract.
    pub(crate) file: PathBuf,
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ModeArg {
    /// New and corrected rows; what the file leaves out stays.
    Incremental,
    /// A full refresh of the agency's dataset.
    Full,
}

impl From<ModeArg> for agencylink_core::ingest::IngestMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Incremental => Self::Incremental,
            ModeArg::Full => Self::Full,
        }
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ingest one file; returns the summary.
#[allow(clippy::too_many_arguments)]
fn ingest_file(
    local: &Local,
    key: &Pseudonymiser,
    agency: &str,
    ds: &Dataset,
    format: InputFormat,
    file: &Path,
    progress: crate::progress::Show,
    mode: agencylink_core::ingest::IngestMode,
) -> Result<IngestSummary> {
    check_agency(agency)?;
    // The extract is read once, into a copy that has no name (so no exit,
    // not even SIGKILL, leaves it on disk) and hashed on the way; the
    // ingest then reads the copy, so it sees exactly the bytes it hashed
    // even if someone edits the source meanwhile.
    let mut copy = fsafe::anonymous_file_in(local.objects.root())
        .context("making a private copy of the extract")?;
    let mut reader = HashingReader {
        inner: File::open(file).with_context(|| format!("cannot open {}", file.display()))?,
        hasher: Sha256::new(),
    };
    io::copy(&mut reader, &mut copy).with_context(|| format!("reading {}", file.display()))?;
    copy.rewind()?;
    let sha = hex(&reader.hasher.finalize());
    // What lineage calls the source: agencies name files after people
    // ("smith_referral.csv"), so not the name, nor an unkeyed hash of it
    // that a guess could be checked against, but a random id.
    let ext = if format == InputFormat::Csv {
        "csv"
    } else {
        "ndjson"
    };
    let source = format!("landing/{agency}/{}/{}.{ext}", ds.id, random_id()?);
    let upload = upload_id(agency, &ds.id, &sha);
    let curated_key = format!("curated/{agency}/{}/{upload}.ndjson", ds.id);
    let json_key = format!("reports/{agency}/{}/{upload}.rejections.json", ds.id);
    let csv_key = format!("reports/{agency}/{}/{upload}.rejections.csv", ds.id);
    // The outputs are written beside where they will be published, so
    // publishing is a rename, not a copy of the whole curated file, and
    // pseudonymised data never sits in the system's temporary directory.
    let scratch = [
        local.objects.scratch(&curated_key)?,
        local.objects.scratch(&json_key)?,
        local.objects.scratch(&csv_key)?,
    ];
    let mut curated = BufWriter::new(scratch[0].handle()?);
    let mut rj = BufWriter::new(scratch[1].handle()?);
    let mut rc = BufWriter::new(scratch[2].handle()?);
    let info = UploadInfo {
        agency: agency.to_owned(),
        sha256: sha,
        source,
        format,
        time: now_rfc3339(),
        outputs: vec![curated_key.clone(), json_key.clone(), csv_key.clone()],
        mode,
    };
    // A key rotation reads the copy once more, under both keys, first.
    let rotation = crate::key_cmd::before_ingest(
        local.objects.root(),
        &local.store,
        ds,
        key,
        &info,
        &mut copy,
    )?;
    let total = copy
        .rewind()
        .and_then(|()| copy.metadata())
        .map_or(0, |m| m.len());
    let (copy, read) = crate::progress::Counting::new(copy);
    let mut input = BufReader::with_capacity(1 << 16, copy);
    // A bar only for a person watching; logs stay clean.
    let mut bar = crate::progress::Bar::new(&ds.id, total, progress);
    let lineage_log = local.store.lineage();
    let summary = ingest(
        ds,
        key,
        &local.store,
        &lineage_log,
        &info,
        &mut input,
        Sinks {
            curated: &mut curated,
            report_json: &mut rj,
            report_csv: &mut rc,
        },
        |rows| bar.update(rows, read.load(std::sync::atomic::Ordering::Relaxed)),
    )?;
    bar.finish(summary.rows_in);
    curated.flush()?;
    rj.flush()?;
    rc.flush()?;
    if !summary.duplicate {
        for (tmp, key) in scratch.into_iter().zip([&curated_key, &json_key, &csv_key]) {
            local.objects.put_file(key, tmp, PutMode::Overwrite)?;
        }
    }
    crate::key_cmd::after_ingest(local.objects.root(), &local.store, rotation)?;
    // Unpublished scratch files are removed as they drop; the copy of the
    // extract goes with its handle.
    Ok(summary)
}

/// 128 random bits, hex.
pub(crate) fn random_id() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("OS randomness: {e}"))?;
    Ok(hex(&b))
}

/// The upload policy's file in the data directory.
const POLICY_FILE: &str = "agencies.json";

/// The upload policy, if the data directory has one.
fn load_policy(data_dir: &Path) -> Result<Option<AgencyPolicy>> {
    let path = data_dir.join(POLICY_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => AgencyPolicy::parse(&text)
            .map(Some)
            .map_err(|why| anyhow::anyhow!("{}: {why}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Refuse an upload the policy does not allow, naming the agency and the
/// dataset; with no policy, say that anyone may upload anything.
fn check_policy(data_dir: &Path, agency: &str, dataset: &str) -> Result<()> {
    match load_policy(data_dir)? {
        Some(policy) => policy.check(agency, dataset).with_context(|| {
            format!(
                "refused by the upload policy in {}",
                data_dir.join(POLICY_FILE).display()
            )
        }),
        None => {
            eprintln!(
                "warning: {} has no upload policy ({POLICY_FILE}): any agency may upload any dataset; see `agencylink agencies --help`",
                data_dir.display()
            );
            Ok(())
        }
    }
}

/// `agencylink agencies`.
pub(crate) fn agencies_cmd(data_dir: &Path) -> Result<ExitCode> {
    match load_policy(data_dir)? {
        Some(policy) => {
            print!("{}", policy.to_json());
            Ok(ExitCode::SUCCESS)
        }
        None => bail!(
            "no upload policy at {}: write one as {{\"agency-id\": [\"dataset.id\", …]}} (\"*\" for every dataset); `agencylink demo` writes the demo's",
            data_dir.join(POLICY_FILE).display()
        ),
    }
}

pub(crate) fn ingest_cmd(catalog: &Catalog, data_dir: &Path, args: IngestArgs) -> Result<ExitCode> {
    let ds = crate::dataset(catalog, &args.dataset)?;
    check_agency(&args.agency)?;
    check_policy(data_dir, &args.agency, &ds.id)?;
    let local = open_local(data_dir)?;
    let key = Pseudonymiser::new(load_or_create_key(data_dir)?);
    let format = crate::input_format(args.format, &args.file);
    let summary = ingest_file(
        &local,
        &key,
        &args.agency,
        ds,
        format,
        &args.file,
        crate::progress::Show::Keep,
        args.mode.into(),
    )?;
    report_ingest(&summary, "")
}

/// Print an ingest summary (JSON on stdout, notes on stderr) and choose the
/// exit code; `reports_root` prefixes the report path (e.g. `s3://bucket/`).
pub(crate) fn report_ingest(summary: &IngestSummary, reports_root: &str) -> Result<ExitCode> {
    println!("{}", serde_json::to_string(summary)?);
    if summary.duplicate {
        eprintln!(
            "this file was ingested before (upload {}): nothing changed",
            summary.upload_id
        );
    }
    Ok(if !summary.file_errors.is_empty() {
        for f in &summary.file_errors {
            eprintln!("file problem [{}]: {}", f.code, f.message);
        }
        ExitCode::from(2)
    } else if summary.rows_rejected > 0 {
        eprintln!(
            "{} rows rejected: see {reports_root}reports/{}/{}/{}.rejections.csv",
            summary.rows_rejected, summary.agency, summary.dataset, summary.upload_id
        );
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `agencylink lineage …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum LineageCommand {
    /// One line per event: seq, type, time, upload, agency, dataset, counts.
    List,
    /// Every event of one upload, as JSON.
    Show {
        /// The upload id.
        upload_id: String,
    },
    /// Recompute the hash chain and check row counts, then check the log
    /// against the latest signed checkpoint (or --checkpoint FILE): exit 1,
    /// naming the problem, when the log is shorter than the checkpoint or
    /// its event at the checkpoint's size hashes differently. Exit 0 ok.
    Verify {
        /// Check against this checkpoint file (e.g. a copy kept off the
        /// machine) instead of the latest in DATA_DIR/checkpoints/.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Sign a checkpoint of the log as it is now (size, head hash, time,
    /// key id, signature), keep it (DATA_DIR/checkpoints/ locally, the WORM
    /// audit bucket on AWS) and print it as JSON. Refused (exit 1) when the
    /// log does not verify.
    Checkpoint,
    /// Export lineage for a lineage tool: `--openlineage` prints one
    /// OpenLineage RunEvent (COMPLETE or FAIL) per event as JSON lines, with
    /// schema and data-quality facets. Refused (exit 1) when the chain is broken.
    Export {
        /// OpenLineage RunEvent JSON lines (the only format).
        #[arg(long)]
        openlineage: bool,
    },
}

pub(crate) fn lineage_cmd(data_dir: &Path, cmd: LineageCommand) -> Result<ExitCode> {
    let local = open_local(data_dir)?;
    let ck = crate::checkpoint_cmd::LocalCk::new(data_dir);
    // Lineage and the records as of one moment, so verify's reconciliation
    // cannot catch an ingest half-way between the two reads.
    local
        .store
        .in_snapshot(|| lineage_print(local.store.lineage().entries()?, cmd, &ck, &local.store))?
}

/// Print `list`, `show`, `verify` or `checkpoint` over lineage entries from
/// any backend; `verify` also reconciles `records` with them.
pub(crate) fn lineage_print(
    entries: Vec<serde_json::Value>,
    cmd: LineageCommand,
    ck: &dyn crate::checkpoint_cmd::Checkpoints,
    records: &dyn RecordStore,
) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    match cmd {
        LineageCommand::List => {
            for e in &entries {
                let s = |k: &str| {
                    e.get(k)
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                        .unwrap_or_default()
                };
                writeln!(
                    out,
                    "{:>4}  {:<8} {}  {}  {:<22} {:<34} in {:>7}  accepted {:>7}  rejected {:>6}",
                    s("seq"),
                    s("type"),
                    s("time"),
                    s("upload_id"),
                    s("agency"),
                    s("dataset"),
                    s("rows_in"),
                    s("rows_accepted"),
                    s("rows_rejected")
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        LineageCommand::Show { upload_id } => {
            let found: Vec<_> = entries
                .iter()
                .filter(|e| {
                    e.get("upload_id").and_then(serde_json::Value::as_str) == Some(&upload_id)
                })
                .collect();
            if found.is_empty() {
                bail!("no lineage event for upload {upload_id}");
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&found)?)?;
            Ok(ExitCode::SUCCESS)
        }
        LineageCommand::Verify { checkpoint } => crate::checkpoint_cmd::verify_cmd(
            &crate::checkpoint_cmd::LINEAGE,
            &entries,
            checkpoint.as_ref(),
            ck,
            Some(records),
        ),
        LineageCommand::Checkpoint => {
            crate::checkpoint_cmd::checkpoint_cmd(&crate::checkpoint_cmd::LINEAGE, &entries, ck)
        }
        // main routes this to analyst::lineage_export, which needs the catalog.
        LineageCommand::Export { .. } => {
            bail!("lineage export is handled by analyst::lineage_export")
        }
    }
}

/// `agencylink demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Rows per dataset.
    #[arg(long, default_value_t = 3000)]
    rows: u64,
    /// Seed for the synthetic world.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Share of rows given a realistic mistake.
    #[arg(long, default_value_t = 0.02)]
    invalid_rate: f64,
}

/// The agency that uploads a dataset's rows for a borough.
fn agency_for(ds: &Dataset, borough: Option<&str>) -> String {
    match (ds.agency_type.as_deref(), borough) {
        (Some("police"), _) => "gmp-police".to_owned(),
        (Some("health"), _) => "nhs-gm-icb".to_owned(),
        (Some(kind), Some(b)) => format!("{}-{kind}", b.to_ascii_lowercase()),
        (Some(kind), None) => format!("gm-{kind}"),
        (None, _) => "gm-partnership".to_owned(),
    }
}

/// Split a CSV by the borough column into one file per agency.
fn split_by_agency(ds: &Dataset, csv_path: &Path, dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let borough_field = ds.field_for("borough").map(|f| f.name.clone());
    let per_borough = matches!(ds.agency_type.as_deref(), Some("council" | "education"))
        && borough_field.is_some();
    if !per_borough {
        return Ok(vec![(agency_for(ds, None), csv_path.to_path_buf())]);
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(csv_path)?;
    let headers = rdr.byte_headers()?.clone();
    let col = headers
        .iter()
        .position(|h| Some(h) == borough_field.as_deref().map(str::as_bytes))
        .context("borough column")?;
    let mut writers: BTreeMap<String, (PathBuf, csv::Writer<File>)> = BTreeMap::new();
    let mut rec = csv::ByteRecord::new();
    while rdr.read_byte_record(&mut rec)? {
        let borough = std::str::from_utf8(rec.get(col).unwrap_or_default())
            .unwrap_or("")
            .trim();
        // A row with a borough outside the code list still goes to someone
        // (and is rejected there): the partnership-wide agency.
        let known = geography::borough_by_name(borough).is_some();
        let agency = agency_for(ds, known.then_some(borough));
        if !writers.contains_key(&agency) {
            let p = dir.join(format!("{}.{agency}.csv", ds.id));
            let mut w = csv::Writer::from_path(&p)?;
            w.write_byte_record(&headers)?;
            writers.insert(agency.clone(), (p, w));
        }
        if let Some((_, w)) = writers.get_mut(&agency) {
            w.write_byte_record(&rec)?;
        }
    }
    let mut out = Vec::new();
    for (agency, (p, mut w)) in writers {
        w.flush()?;
        out.push((agency, p));
    }
    Ok(out)
}

pub(crate) fn demo(catalog: &Catalog, data_dir: &Path, args: DemoArgs) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let local = open_local(data_dir)?;
    let key = Pseudonymiser::new(load_or_create_key(data_dir)?);
    let world = World::new(args.seed, Default::default())?;
    // The demo partnership's upload policy: each agency its own kind of
    // dataset, as a real partnership would write it.
    if load_policy(data_dir)?.is_none() {
        let mut pairs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for ds in catalog.latest() {
            let boroughs = geography::BOROUGHS.iter().map(|b| Some(b.name));
            for b in std::iter::once(None).chain(boroughs) {
                let agency = agency_for(ds, b);
                let list = pairs.entry(agency).or_default();
                if !list.contains(&ds.id) {
                    list.push(ds.id.clone());
                }
            }
        }
        let text = serde_json::to_string_pretty(&pairs)? + "\n";
        // Checked by the same parser ingest uses.
        AgencyPolicy::parse(&text).map_err(|why| anyhow::anyhow!("demo policy: {why}"))?;
        fs::write(data_dir.join(POLICY_FILE), text)?;
    }
    let work = data_dir.join("demo-extracts");
    fs::create_dir_all(&work)?;
    let mut uploads = 0u64;
    let (mut accepted, mut rejected, mut rows_in) = (0u64, 0u64, 0u64);
    for ds in catalog.latest() {
        let path = work.join(format!("{}.csv", ds.id));
        {
            let mut out = BufWriter::new(File::create(&path)?);
            let mut opts = SynthOptions::new(args.seed, args.rows);
            opts.invalid_rate = args.invalid_rate;
            write_csv_with_world(&world, ds, &opts, &mut out, None)?;
            out.flush()?;
        }
        let parts = split_by_agency(ds, &path, &work)?;
        for (agency, part) in parts {
            check_policy(data_dir, &agency, &ds.id)?;
            let s = ingest_file(
                &local,
                &key,
                &agency,
                ds,
                InputFormat::Csv,
                &part,
                crate::progress::Show::Clear,
                agencylink_core::ingest::IngestMode::Incremental,
            )?;
            eprintln!(
                "  {:<22} {:<34} rows {:>6}  accepted {:>6}  rejected {:>4}",
                agency, ds.id, s.rows_in, s.rows_accepted, s.rows_rejected
            );
            uploads += 1;
            rows_in += s.rows_in;
            accepted += s.rows_accepted;
            rejected += s.rows_rejected;
            if part != path {
                let _ = fs::remove_file(&part);
            }
        }
        let _ = fs::remove_file(&path);
    }
    let _ = fs::remove_dir(&work);

    // People and agencies, from the store.
    let mut agencies_of: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut records = 0u64;
    for dsid in local.store.datasets()? {
        // Investigation records are about no one: not counted as people.
        let about_people = catalog.get(&dsid).is_none_or(|d| d.is_about_people());
        local.store.scan_dataset(&dsid, None, None, &mut |r| {
            records += 1;
            if !about_people {
                return true;
            }
            agencies_of
                .entry(r.person_id.clone())
                .or_default()
                .insert(r.agency.clone());
            true
        })?;
    }
    // Group-based networks come from the profile, which also treats one
    // suspect's key-less records (no date of birth) as one person.
    // The demo's profile is the analyst edition: its read is logged like
    // anyone else's.
    let reader = crate::analyst::Reader {
        analyst: "agencylink demo".into(),
        purpose: "demonstration on synthetic data".into(),
    };
    let access_log = local.store.access_log();
    let profile = crate::profile_cmd::write_profile(
        catalog,
        &local.store,
        &local.store.lineage(),
        &crate::profile_cmd::demo_settings(),
        &data_dir.join("profile"),
        Some(reader.analyst.as_str()),
        &mut |p| crate::profile_cmd::log_analyst_edition(&access_log, &reader, p).map(|_| ()),
    )?;
    lineage::append_event(
        &local.store.lineage(),
        &agencylink_core::events::LineageEvent::ProfileBuild(profile.event.clone()),
    )?;
    let groups = profile.profile.networks.as_ref().map_or(0, Vec::len);
    let multi = agencies_of.values().filter(|a| a.len() >= 2).count();
    let verified = lineage::verify(&local.store.lineage().entries()?);
    let summary = serde_json::json!({
        "uploads": uploads,
        "rows_in": rows_in,
        "rows_accepted": accepted,
        "rows_rejected": rejected,
        "records": records,
        "people": agencies_of.len(),
        "people_known_to_2_plus_agencies": multi,
        "group_based_networks": groups,
        "lineage_verified": verified.is_ok(),
        "data_dir": data_dir.display().to_string(),
        "seconds": started.elapsed().as_secs_f64(),
    });
    let mut err = io::stderr().lock();
    writeln!(err, "\nagencylink demo: {}", data_dir.display())?;
    writeln!(err, "  uploads                          {uploads}")?;
    writeln!(
        err,
        "  rows accepted / rejected         {accepted} / {rejected}"
    )?;
    writeln!(
        err,
        "  people                           {}",
        agencies_of.len()
    )?;
    writeln!(err, "  people known to 2+ agencies      {multi}")?;
    writeln!(err, "  group-based networks (profile)   {groups}")?;
    writeln!(
        err,
        "  lineage                          {}",
        match &verified {
            Ok(n) => format!("verified ({n} events)"),
            Err(p) => format!("BROKEN at event {}: {}", p.position, p.reason),
        }
    )?;
    // The pipeline exists to feed the problem profile: end with it.
    writeln!(
        err,
        "  profile                          {}",
        profile.html.display()
    )?;
    println!("{summary}");
    Ok(if verified.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `agencylink synth`.
#[derive(Debug, clap::Args)]
pub(crate) struct SynthArgs {
    /// Dataset id.
    #[arg(long)]
    dataset: String,
    /// Data rows to write.
    #[arg(long)]
    rows: u64,
    /// Seed: the same seed gives the same people in every dataset.
    #[arg(long)]
    seed: u64,
    /// Share of rows (0 to 1) given exactly one realistic mistake.
    #[arg(long, default_value_t = 0.0)]
    invalid_rate: f64,
    /// Write NDJSON ground truth (person per row, injected mistakes, planted networks) here.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Linkage errors in names and dates of birth of valid rows: `none`
    /// (the default), `default` (the documented model, about 22% of rows
    /// with at least one error), or a number RATE from 0 to 1: the default
    /// model with every rate multiplied by one factor chosen so that the
    /// expected share of rows with at least one error is RATE.
    #[arg(long, default_value = "none", value_parser = parse_errors)]
    errors: ErrorModel,
}

/// `--errors none|default|RATE`.
fn parse_errors(text: &str) -> Result<ErrorModel, String> {
    match text {
        "none" => Ok(ErrorModel::none()),
        "default" => Ok(ErrorModel::default()),
        _ => {
            let rate: f64 = text.parse().map_err(|_| {
                format!("expected none, default or a rate from 0 to 1, got `{text}`")
            })?;
            ErrorModel::with_row_rate(rate).map_err(|e| e.to_string())
        }
    }
}

pub(crate) fn synth(catalog: &Catalog, args: SynthArgs) -> Result<ExitCode> {
    let ds = crate::dataset(catalog, &args.dataset)?;
    let mut opts = SynthOptions::new(args.seed, args.rows);
    opts.invalid_rate = args.invalid_rate;
    opts.errors = args.errors;
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut truth = match &args.truth {
        Some(p) => Some(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let stats = agencylink_synth::write_csv(
        ds,
        &opts,
        &mut out,
        truth.as_mut().map(|t| t as &mut dyn Write),
    )?;
    out.flush()?;
    if let Some(mut t) = truth {
        t.flush()?;
    }
    eprintln!(
        "synth: {} rows of {}, {} with an injected mistake, {} with linkage errors, {} planted networks",
        stats.rows, ds.id, stats.invalid_rows, stats.error_rows, stats.networks
    );
    Ok(ExitCode::SUCCESS)
}

/// `agencylink synth-pair`.
#[derive(Debug, clap::Args)]
pub(crate) struct SynthPairArgs {
    /// Dataset id (one without a person_role column, e.g. council.missing_episode).
    #[arg(long)]
    dataset: String,
    /// Distinct children in the test set (in file A, file B or both).
    #[arg(long)]
    people: u32,
    /// Seed: fixes the people, the split and every row.
    #[arg(long)]
    seed: u64,
    /// Share of the people (0 to 1) in file A.
    #[arg(long, default_value_t = 0.8)]
    share_a: f64,
    /// Share of the people (0 to 1) in file B.
    #[arg(long, default_value_t = 0.8)]
    share_b: f64,
    /// Share of the people (0 to 1) in both files.
    #[arg(long, default_value_t = 0.6)]
    overlap: f64,
    /// Linkage errors in file B (file A is always clean): `default`, `none`
    /// or a row error RATE from 0 to 1 (as for `synth --errors`).
    #[arg(long, default_value = "default", value_parser = parse_errors)]
    errors: ErrorModel,
    /// Directory for a.csv, b.csv, a.truth.ndjson and b.truth.ndjson
    /// (created if missing; existing files are replaced).
    #[arg(long)]
    out_dir: PathBuf,
}

pub(crate) fn synth_pair(catalog: &Catalog, args: SynthPairArgs) -> Result<ExitCode> {
    let ds = crate::dataset(catalog, &args.dataset)?;
    let opts = PairOptions {
        share_a: args.share_a,
        share_b: args.share_b,
        overlap: args.overlap,
        errors: args.errors,
        ..PairOptions::new(args.seed, args.people)
    };
    fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let create = |name: &str| -> Result<BufWriter<File>> {
        let p = args.out_dir.join(name);
        Ok(BufWriter::new(
            File::create(&p).with_context(|| format!("creating {}", p.display()))?,
        ))
    };
    let (mut a, mut b) = (create("a.csv")?, create("b.csv")?);
    let (mut ta, mut tb) = (create("a.truth.ndjson")?, create("b.truth.ndjson")?);
    let stats = write_pair(ds, &opts, &mut a, &mut b, &mut ta, &mut tb)?;
    for w in [&mut a, &mut b, &mut ta, &mut tb] {
        w.flush()?;
    }
    eprintln!(
        "synth-pair: {} people of {}: {} in both files, {} only in A, {} only in B; \
         A {} rows (clean), B {} rows ({} with linkage errors)",
        args.people,
        ds.id,
        stats.in_both,
        stats.only_a,
        stats.only_b,
        stats.a.rows,
        stats.b.rows,
        stats.b.error_rows
    );
    Ok(ExitCode::SUCCESS)
}
