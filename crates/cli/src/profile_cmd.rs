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
use agencylink_core::ports::{ChainLog, RecordStore};
use agencylink_core::profile::{self, Edition, Profile, Settings};
use agencylink_core::schema::Catalog;
use anyhow::{Context, Result, bail};

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
pub(crate) struct ProfileArgs {
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
    /// (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
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
}

pub(crate) fn profile_cmd(
    catalog: &Catalog,
    data_dir: &Path,
    args: ProfileArgs,
) -> Result<ExitCode> {
    let store = crate::commands::open_existing_store(data_dir)?;
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
        &store,
        &store.lineage(),
        &settings,
        &args.out,
        &mut |p| match &reader {
            Some(r) => log_analyst_edition(&store.access_log(), r, p).map(|_| ()),
            None => Ok(()),
        },
    )?;
    let p = &w.profile;
    let groups = p
        .table("network_tiers")
        .and_then(|t| t.get("total", "networks"))
        .map(|c| serde_json::Value::String(c.display()));
    println!(
        "{}",
        serde_json::json!({
            "out": args.out.display().to_string(),
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

/// Build the profile and write its files into `out`.
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
    before_write: &mut dyn FnMut(&Profile) -> Result<()>,
) -> Result<Written> {
    let started = Instant::now();
    let profile = {
        let _ticker = crate::progress::Ticker::start("building the problem profile");
        profile::build(catalog, store, lineage, settings)?
    };
    let seconds = started.elapsed().as_secs_f64();
    let json = serde_json::to_value(&profile)?;
    // A profile that does not match its published schema is a bug here,
    // not something to hand to a reader.
    if let Err(errors) = profile::validate_json(&json) {
        bail!(
            "the profile does not match profile.schema.json: {}",
            errors.join("; ")
        );
    }
    // Likewise a partner edition whose tables give a withheld count back.
    if let Some(rule) = profile.suppression {
        let problems: Vec<String> = profile
            .tables
            .iter()
            .flat_map(|t| profile::disclosure::audit(t, rule))
            .collect();
        if !problems.is_empty() {
            bail!(
                "refusing to write a partner edition that fails disclosure control: {}",
                problems.join("; ")
            );
        }
    }
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
    for t in &profile.tables {
        files.push(write_atomic(
            out,
            &format!("{}.csv", t.id),
            t.to_csv().as_bytes(),
        )?);
    }
    let html = write_atomic(
        out,
        "profile.html",
        profile::render_html(&profile).as_bytes(),
    )?;
    let mut text = serde_json::to_string_pretty(&json)?;
    text.push('\n');
    files.push(write_atomic(out, "profile.json", text.as_bytes())?);
    files.push(html.clone());
    Ok(Written {
        html,
        files,
        profile,
        seconds,
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
