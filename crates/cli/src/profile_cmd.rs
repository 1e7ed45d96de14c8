//! `agencylink profile`: build the CSE problem profile from the local store
//! and write `profile.json`, one CSV per table and a self-contained
//! `profile.html` into a directory. The work is in
//! `agencylink_core::profile`; this file opens the store and writes files.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::analyst::Reader;
use agencylink_core::events::{LineageEvent, ProfileBuildEvent};
use agencylink_core::ports::{ChainLog, RecordStore};
use agencylink_core::profile::{self, Edition, Profile, Settings};
use agencylink_core::schema::Catalog;
use anyhow::{Context, Result, bail};

/// `agencylink profile history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub(crate) enum ProfileCommand {
    /// List every profile built, oldest first, from the lineage log: one
    /// JSON line each with the period, edition, when, what asked for it,
    /// who built it and where the files went.
    History,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum EditionArg {
    /// Complete, with the tracker, network details and pseudonymous ids.
    Analyst,
    /// Counts of 1 to 5 (and what would reveal them) shown as c; no
    /// tracker, no network details, no ids.
    Partner,
}

/// `agencylink profile`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ProfileArgs {
    #[command(subcommand)]
    command: Option<ProfileCommand>,
    /// First day of the period (YYYY-MM-DD); by default 12 months before --to.
    #[arg(long, value_name = "DATE")]
    from: Option<String>,
    /// Last day of the period (YYYY-MM-DD); by default the latest event in
    /// the store, or today if that is earlier.
    #[arg(long, value_name = "DATE")]
    to: Option<String>,
    /// Who it is for: police analysts (complete) or partner agencies
    /// (disclosure controlled).
    #[arg(long, value_enum, default_value_t = EditionArg::Analyst)]
    edition: EditionArg,
    /// Fewest suspects for a group-based network (IICSA: two or more).
    #[arg(long, default_value_t = 2, value_name = "N")]
    min_suspects: usize,
    /// Fewest victims for a group-based network.
    #[arg(long, default_value_t = 1, value_name = "N")]
    min_victims: usize,
    /// Days from opening within which a highest-threat (category 1)
    /// investigation should have had its peer review; those without one in
    /// time are listed (needs investigation data, police.cse_investigation).
    #[arg(long, default_value_t = 28, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(0..=3650))]
    peer_review_days: u32,
    /// Directory to write profile.json, profile.html and the CSV files into
    /// (created if missing). Required to build.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Your name or user id: the analyst edition holds the tracker and
    /// pseudonymous ids, so building it is a read recorded in the access
    /// log (not needed for the partner edition).
    #[arg(long, value_name = "NAME")]
    analyst: Option<String>,
    /// Why you need the analyst edition, recorded in the access log.
    #[arg(long, value_name = "TEXT")]
    purpose: Option<String>,
}

/// What was written.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) html: PathBuf,
    pub(crate) files: Vec<PathBuf>,
    pub(crate) profile: Profile,
    pub(crate) seconds: f64,
    /// The `profile_build` lineage event for what was written; the caller
    /// appends it (to the lineage log of the store it read).
    pub(crate) event: ProfileBuildEvent,
}

pub(crate) fn profile_cmd(
    catalog: &Catalog,
    data_dir: &Path,
    args: ProfileArgs,
) -> Result<ExitCode> {
    let store = crate::commands::open_existing_store(data_dir)?;
    let none = |_: &serde_json::Value| Ok(());
    run_profile(
        catalog,
        &store,
        &store.lineage(),
        &store.access_log(),
        &none,
        &none,
        args,
    )
}

/// `agencylink profile` over any store: its lineage log gets the
/// `profile_build` event and its access log the analyst edition's read;
/// `archive_lineage` and `archive_access` copy each to the WORM archive
/// where there is one (`--backend aws`).
pub(crate) fn run_profile(
    catalog: &Catalog,
    store: &dyn RecordStore,
    lineage: &dyn ChainLog,
    access_log: &dyn ChainLog,
    archive_lineage: &dyn Fn(&serde_json::Value) -> Result<()>,
    archive_access: &dyn Fn(&serde_json::Value) -> Result<()>,
    args: ProfileArgs,
) -> Result<ExitCode> {
    if let Some(ProfileCommand::History) = args.command {
        return history(lineage);
    }
    let Some(out) = args.out.clone() else {
        bail!(
            "give --out DIR: the directory to write the profile into (or `profile history` to list the profiles built)"
        );
    };
    // Who reads the analyst edition is checked before anything is read.
    let reader = match (args.edition, &args.analyst, &args.purpose) {
        (EditionArg::Partner, _, _) => None,
        (EditionArg::Analyst, Some(analyst), Some(purpose)) => {
            agencylink_core::query::check_reader(analyst, purpose)?;
            Some(Reader {
                analyst: analyst.clone(),
                purpose: purpose.clone(),
            })
        }
        (EditionArg::Analyst, _, _) => bail!(
            "the analyst edition holds the tracker and pseudonymous ids: give --analyst NAME and --purpose TEXT (both go into the access log), or build --edition partner"
        ),
    };
    let settings = Settings {
        from: args.from,
        to: args.to,
        edition: match args.edition {
            EditionArg::Analyst => Edition::Analyst,
            EditionArg::Partner => Edition::Partner,
        },
        min_suspects: args.min_suspects,
        min_victims: args.min_victims,
        peer_review_days: args.peer_review_days,
        generated_at: crate::commands::now_rfc3339(),
        ..Settings::default()
    };
    let w = write_profile(
        catalog,
        store,
        lineage,
        &settings,
        &out,
        args.analyst.as_deref(),
        &mut |p| match &reader {
            Some(r) => archive_access(&log_analyst_edition(access_log, r, p)?),
            None => Ok(()),
        },
    )?;
    let entry = agencylink_core::lineage::append_event(
        lineage,
        &LineageEvent::ProfileBuild(w.event.clone()),
    )?;
    archive_lineage(&entry)?;
    let p = &w.profile;
    let groups = p
        .table("network_tiers")
        .and_then(|t| t.get("total", "networks"))
        .map(|c| serde_json::Value::String(c.display()));
    println!(
        "{}",
        serde_json::json!({
            "out": out.display().to_string(),
            "edition": p.edition.as_str(),
            "period": {"from": p.period.from, "to": p.period.to},
            "tables": p.tables.len(),
            "group_networks": groups,
            "files": w.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
            "seconds": w.seconds,
        })
    );
    eprintln!(
        "profile ({} edition, {} to {}) written to {}",
        p.edition.as_str(),
        p.period.from,
        p.period.to,
        w.html.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `profile history`: every `profile_build` event, a JSON line each.
fn history(lineage: &dyn ChainLog) -> Result<ExitCode> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut n = 0usize;
    for entry in lineage.entries()? {
        let LineageEvent::ProfileBuild(b) = LineageEvent::from_entry(&entry) else {
            continue;
        };
        serde_json::to_writer(
            &mut out,
            &serde_json::json!({
                "seq": agencylink_core::ports::entry_seq(&entry),
                "time": b.time,
                "edition": b.edition,
                "from": b.period_from,
                "to": b.period_to,
                "trigger": b.trigger,
                "built_by": b.built_by,
                "location": b.location,
                "tables": b.tables,
                "lineage_seq": b.lineage_seq,
            }),
        )?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    eprintln!("{n} profile build(s) in the lineage log");
    Ok(ExitCode::SUCCESS)
}

/// Record that `reader` built the analyst edition `p`: the rows are every
/// table's rows, the target its period.
pub(crate) fn log_analyst_edition(
    access_log: &dyn ChainLog,
    reader: &Reader,
    p: &Profile,
) -> Result<serde_json::Value> {
    let rows: usize = p.tables.iter().map(|t| t.rows.len()).sum();
    crate::analyst::record_read(
        access_log,
        reader,
        "profile_analyst",
        &format!("profile {}..{}", p.period.from, p.period.to),
        rows as u64,
        &crate::commands::now_rfc3339(),
    )
}

/// Build the profile and write it to `out`. `before_write` runs once the
/// profile is built and before any file is written: the analyst edition's
/// access-log entry goes there, so a read that cannot be logged writes
/// nothing.
pub(crate) fn write_profile(
    catalog: &Catalog,
    store: &dyn RecordStore,
    lineage: &dyn ChainLog,
    settings: &Settings,
    out: &Path,
    built_by: Option<&str>,
    before_write: &mut dyn FnMut(&Profile) -> Result<()>,
) -> Result<Written> {
    let started = Instant::now();
    let lineage_seq = lineage.head()?.map_or(0, |(seq, _)| seq);
    let profile = {
        let _ticker = crate::progress::Ticker::start("building the problem profile");
        profile::build(catalog, store, lineage, settings)?
    };
    let seconds = started.elapsed().as_secs_f64();
    // Checked (schema, disclosure control) before anything is logged or
    // written.
    let rendered = profile::files(&profile)?;
    before_write(&profile)?;
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // Others who can write here could plant a symlink or swap a file
    // between our write and a reader's open.
    agencylink_local::fsafe::check_output_dir(out)?;
    // A partner edition written over an analyst one must not leave the
    // analyst tables (tracker, networks: pseudonymous ids) behind.
    let old_json = out.join("profile.json");
    let new_ids: BTreeSet<&str> = profile.tables.iter().map(|t| t.id.as_str()).collect();
    if let Ok(text) = fs::read_to_string(&old_json)
        && let Ok(old) = serde_json::from_str::<serde_json::Value>(&text)
    {
        for id in old
            .get("tables")
            .and_then(|t| t.as_array())
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("id").and_then(|i| i.as_str()))
        {
            let safe = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if safe && !new_ids.contains(id) {
                let _ = fs::remove_file(out.join(format!("{id}.csv")));
            }
        }
    }
    let mut files = Vec::new();
    for f in &rendered {
        files.push(write_atomic(out, &f.name, &f.bytes)?);
    }
    let html = out.join("profile.html");
    let event = profile::build_event(
        &profile,
        &rendered,
        lineage_seq,
        "cli",
        built_by,
        "local",
        &crate::commands::now_rfc3339(),
    );
    Ok(Written {
        html,
        files,
        profile,
        seconds,
        event,
    })
}

/// Write via a temporary file and rename, so a reader never opens half a
/// file; the temporary name is unpredictable and created new, so nothing
/// planted at it is followed, and an interrupted run removes it.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(name);
    let tmp = agencylink_local::fsafe::TempFile::create_in(dir, name)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.handle()
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    tmp.persist(&path, true)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The settings `agencylink demo` uses for the profile it ends with.
pub(crate) fn demo_settings() -> Settings {
    Settings {
        generated_at: crate::commands::now_rfc3339(),
        ..Settings::default()
    }
}
