//! `--backend aws`: the same commands over S3, DynamoDB and Secrets Manager
//! (`crates/aws`), configured by the `AGENCYLINK_*` and standard `AWS_*`
//! variables (see `crates/aws/README.md`). Ingest goes through the landing
//! bucket exactly as an agency upload does; lineage, queries and the access
//! log read the deployment's table.

use std::fs::File;
use std::io::{self, Write};
use std::process::ExitCode;

use agencylink_aws::provision::Outcome;
use agencylink_aws::{AwsBackend, AwsSettings, pipeline, valid_agency};
use agencylink_core::ports::{ChainLog, KeyProvider, ObjectStore, PutMode};
use agencylink_core::pseudo::Pseudonymiser;
use agencylink_core::query::{self, NetworkLimits, QueryError};
use agencylink_core::schema::Catalog;
use anyhow::{Context, Result, bail};

use crate::Command;
use crate::analyst::{QueryCommand, Reader};
use crate::checkpoint_cmd::Checkpoints;
use crate::commands::{IngestArgs, LineageCommand, lineage_print};
use agencylink_core::checkpoint::{Checkpoint, CheckpointProblem, CheckpointVerifier};

/// Run a store command against the AWS deployment.
pub(crate) fn run(catalog: &Catalog, command: Command) -> Result<ExitCode> {
    let unsupported = match &command {
        Command::Export(_) => Some("export (the API's /export serves it on AWS)"),
        Command::Demo(_) => Some("demo"),
        Command::Pseudonymise(_) => Some("pseudonymise (it uses the local key)"),
        Command::Key(crate::KeyCommand::Init | crate::KeyCommand::Id) => {
            Some("key init and key id (on AWS the key lives in Secrets Manager)")
        }
        Command::Compact => Some("compact (the embedded store's body file and database)"),
        Command::Serve(_) | Command::User(_) => Some(
            "serve and user (on AWS the API functions behind API Gateway serve the API, to the Cognito user pool's users)",
        ),
        _ => None,
    };
    if let Some(name) = unsupported {
        bail!("`{name}` runs on the local backend only; drop --backend aws");
    }
    let settings = AwsSettings::from_env().context("configuring the AWS backend")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let backend = rt.block_on(AwsBackend::connect(settings));
    match command {
        Command::Setup => setup(&rt, &backend),
        Command::Ingest(args) => ingest(catalog, &backend, args),
        Command::Lineage(LineageCommand::Export { openlineage }) => {
            if !openlineage {
                bail!("choose an export format: --openlineage (OpenLineage RunEvent JSON lines)");
            }
            crate::analyst::openlineage_print(catalog, &backend.lineage.entries()?)
        }
        Command::Lineage(cmd) => lineage_print(
            backend.lineage.entries()?,
            cmd,
            &AwsCk(&backend),
            &backend.records,
        ),
        Command::Query(cmd) => query_cmd(catalog, &backend, cmd),
        // Built here from the deployment's table, as the profile function
        // builds it there; the files go to --out, the events to the
        // deployment's logs and their WORM copies.
        Command::Profile(args) => crate::profile_cmd::run_profile(
            catalog,
            &backend.records,
            &backend.lineage,
            &backend.access_log,
            &worm(&backend, "lineage"),
            &worm(&backend, "access-log"),
            args,
        ),
        Command::AccessLog(args) => crate::analyst::access_log_print(
            &backend.access_log.entries()?,
            &args,
            &AwsCk(&backend),
        ),
        // Each access-log entry and lineage event also goes to the WORM
        // archive, as reads' and ingests' do.
        Command::Review(cmd) => crate::linkage_cmd::review(
            &backend.records,
            &backend.access_log,
            &worm(&backend, "access-log"),
            cmd,
        ),
        Command::Link(cmd) => crate::linkage_cmd::link(
            &backend.records,
            &backend.lineage,
            &worm(&backend, "lineage"),
            cmd,
        ),
        Command::Withdraw(args) => {
            let done = agencylink_core::withdraw::withdraw(
                &backend.records,
                &backend.lineage,
                &backend.objects,
                &args.upload_id,
                &args.reason,
                &crate::commands::now_rfc3339(),
            )?;
            // The event goes to the WORM archive as an ingest's does.
            worm(&backend, "lineage")(&done.entry)?;
            println!("{}", serde_json::to_string(&done.entry)?);
            // What was built from the withdrawn records goes too, as on the
            // embedded store; after the event, so that a mistyped upload id
            // removes nothing.
            let removed = agencylink_http::profiles::remove_built_from_all(&backend.objects)
                .context(
                    "the upload is withdrawn, but removing the stored profiles and exports built from its records failed; delete what is left under profiles/ and exports/ in the data bucket",
                )?;
            if !removed.is_empty() {
                eprintln!(
                    "removed {} stored profile and export files from the data bucket: they were built from the withdrawn records; the profile function builds profiles again on its schedule or when an analyst asks",
                    removed.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Retention(cmd) => crate::lifecycle_cmd::retention(
            catalog,
            &backend.records,
            &backend.lineage,
            &worm(&backend, "lineage"),
            &cmd,
        ),
        Command::Key(crate::KeyCommand::Rotation(cmd)) => {
            crate::key_cmd::aws_rotation(&backend, cmd)
        }
        _ => bail!("unsupported with --backend aws"),
    }
}

/// Create what is missing and say, one JSON line each, what was created
/// and what was already there.
fn setup(rt: &tokio::runtime::Runtime, backend: &AwsBackend) -> Result<ExitCode> {
    let steps = rt.block_on(backend.setup(true))?;
    let mut out = io::stdout().lock();
    let mut created = 0;
    for step in &steps {
        let status = match step.outcome {
            Outcome::Created => {
                created += 1;
                "created"
            }
            Outcome::Existed => "existed",
        };
        let mut line = serde_json::json!({
            "resource": step.resource,
            "name": step.name,
            "variable": step.variable,
            "status": status,
        });
        if let Some(kid) = &step.key_id {
            line["kid"] = kid.as_str().into();
        }
        writeln!(out, "{line}")?;
    }
    if backend.settings.key_secret_id.is_none() {
        eprintln!(
            "AGENCYLINK_KEY_SECRET_ID is not set: no key secret made (ingest needs one; set it and run setup again)"
        );
    }
    eprintln!(
        "setup: {created} created, {} already there",
        steps.len() - created
    );
    Ok(ExitCode::SUCCESS)
}

/// Copies a chained entry to the deployment's WORM archive under `log`
/// (nothing when none is configured).
fn worm<'a>(
    backend: &'a AwsBackend,
    log: &'static str,
) -> impl Fn(&serde_json::Value) -> Result<()> + 'a {
    move |entry| {
        if let Some(a) = &backend.archive {
            a.archive(log, entry)?;
        }
        Ok(())
    }
}

fn ingest(catalog: &Catalog, backend: &AwsBackend, args: IngestArgs) -> Result<ExitCode> {
    let ds = crate::dataset(catalog, &args.dataset)?;
    if !valid_agency(&args.agency) {
        bail!("agency id must be 1 to 64 characters of a-z, 0-9 and -");
    }
    // A configured policy binds the operator's uploads as it binds agencies'.
    if !backend.settings.agencies.is_empty() {
        backend.settings.agencies.check(&args.agency, &ds.id)?;
    }
    let keys = backend.keys.as_ref().context(
        "AGENCYLINK_KEY_SECRET_ID is not set: the AWS backend reads its key from Secrets Manager",
    )?;
    let pseudo = Pseudonymiser::new(keys.key()?);
    // One key per store, checked before the extract leaves this machine.
    agencylink_core::lineage::check_store_key_in(&backend.lineage, pseudo.kid().as_str())?
        .map_err(|m| {
            anyhow::anyhow!(
                "{m} (the key is the current version of the AGENCYLINK_KEY_SECRET_ID secret)"
            )
        })?;
    let format = crate::input_format(args.format, &args.file);
    // The landing key is a random name with the format's extension (which
    // the pipeline reads the format from): the local file name may name a
    // person, and S3 keys show up in access logs and event payloads.
    let ext = match format {
        agencylink_core::read::InputFormat::Csv => "csv",
        agencylink_core::read::InputFormat::Ndjson => "ndjson",
    };
    let landing = format!(
        "landing/{}/{}/upload-{}.{ext}",
        args.agency,
        ds.id,
        crate::commands::random_id()?
    );
    let mut file =
        File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    backend
        .objects
        .put_from(&landing, &mut file, PutMode::Overwrite)
        .with_context(|| format!("uploading to {landing}"))?;
    let summary = pipeline::ingest_landing_as(
        backend,
        &pseudo,
        ds,
        &args.agency,
        &landing,
        &agencylink_aws::now_rfc3339(),
        &std::env::temp_dir(),
        args.mode.into(),
        &agencylink_core::ingest::Steps::default(),
    )
    .inspect_err(|_| {
        // The operator still has the file and will run the command again:
        // the raw copy in the landing bucket must not wait for the
        // lifecycle rule. Best effort: the ingest's own error matters more.
        let _ = backend.objects.delete_all_versions(&landing);
    })?;
    crate::commands::report_ingest(&summary, &format!("s3://{}/", backend.settings.data_bucket))
}

fn log_read(
    backend: &AwsBackend,
    reader: &Reader,
    action: &str,
    target: &str,
    rows: u64,
) -> Result<u64> {
    let time = agencylink_aws::now_rfc3339();
    let entry =
        crate::analyst::record_read(&backend.access_log, reader, action, target, rows, &time)?;
    worm(backend, "access-log")(&entry)?;
    Ok(entry
        .get("seq")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0))
}

fn query_cmd(catalog: &Catalog, backend: &AwsBackend, cmd: QueryCommand) -> Result<ExitCode> {
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
        && let Some(chart) = crate::analyst::chart_format(*format, out.as_deref())?
    {
        let limits = NetworkLimits {
            max_depth: *max_depth,
            max_people: *max_people,
        };
        return crate::analyst::network_chart_in(
            &backend.records,
            catalog,
            id,
            limits,
            chart,
            out.as_deref(),
            |rows| log_read(backend, reader, "query_network", id, rows),
        );
    }
    let (action, answer) = match &cmd {
        QueryCommand::Person { .. } => (
            "query_person",
            query::person_timeline(&backend.records, catalog, id)
                .map(|t| (serde_json::to_value(&t), t.timeline.len() as u64)),
        ),
        QueryCommand::Network {
            max_depth,
            max_people,
            ..
        } => (
            "query_network",
            query::person_network(
                &backend.records,
                catalog,
                id,
                NetworkLimits {
                    max_depth: *max_depth,
                    max_people: *max_people,
                },
            )
            .map(|n| (serde_json::to_value(&n), n.people.len() as u64)),
        ),
    };
    match answer {
        Ok((json, rows)) => {
            let json = json?;
            let seq = log_read(backend, reader, action, id, rows)?;
            let mut out = io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &json)?;
            writeln!(out)?;
            eprintln!("{rows} rows; this read is access-log entry {seq}");
            Ok(ExitCode::SUCCESS)
        }
        // A search that finds nobody is still a read.
        Err(e @ QueryError::UnknownPerson(_)) => {
            log_read(backend, reader, action, id, 0)?;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Checkpoints on AWS: signed by the KMS checkpoint key, kept in the WORM
/// audit bucket (where every archived event already leaves one).
struct AwsCk<'a>(&'a AwsBackend);

impl AwsCk<'_> {
    fn archive(&self) -> Result<&agencylink_aws::S3Archive> {
        self.0.archive.as_ref().context(
            "AGENCYLINK_AUDIT_BUCKET is not set: checkpoints on AWS live in the WORM audit bucket",
        )
    }
    fn key(&self) -> Result<&agencylink_aws::kms::KmsCheckpointKey> {
        self.0.checkpoint_key.as_ref().context(
            "AGENCYLINK_CHECKPOINT_KEY_ID is not set: checkpoints on AWS are signed with a KMS key",
        )
    }
}

impl Checkpoints for AwsCk<'_> {
    fn take(&self, log: &str, entries: &[serde_json::Value]) -> Result<(String, Checkpoint)> {
        let archive = self.archive()?;
        let cp = Checkpoint::create(log, entries, &agencylink_aws::now_rfc3339(), self.key()?)?;
        let key = archive.put_checkpoint(&cp)?;
        Ok((format!("s3://{}/{key}", archive.bucket()), cp))
    }
    fn latest(&self, log: &str) -> Result<Option<(String, Checkpoint)>> {
        let Some(archive) = &self.0.archive else {
            return Ok(None);
        };
        Ok(archive
            .latest_checkpoint(log)?
            .map(|(key, cp)| (format!("s3://{}/{key}", archive.bucket()), cp)))
    }
    fn verifier(&self) -> Result<Box<dyn CheckpointVerifier + '_>> {
        Ok(Box::new(self.key()?.clone()))
    }
    /// The table's chain against the archived copies (the same check as
    /// the API's).
    fn extra_check(
        &self,
        log: &str,
        entries: &[serde_json::Value],
    ) -> Result<Result<(), CheckpointProblem>> {
        use agencylink_core::audit::AuditCopies;
        Ok(self.0.audit_copies().compare(log, entries)?)
    }
}
