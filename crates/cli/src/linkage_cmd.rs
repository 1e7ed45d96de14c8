//! Probabilistic linkage from the command line: the clerical review queue
//! (`review list | show | decide`, analysts, every call in the access log)
//! and the model (`link train`, recorded in lineage; `link model`).

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use agencylink_core::events::{LineageEvent, LinkTrainEvent};
use agencylink_core::lineage;
use agencylink_core::linkage::{self, Decision, ReviewStatus, TrainOptions};
use agencylink_core::ports::{ChainLog, LinkageStore, RecordStore};
use agencylink_core::query;
use anyhow::{Context, Result, bail};

use crate::analyst::{Reader, record_read};

/// `agencylink review …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ReviewCommand {
    /// The queue as JSON lines, highest probability first: by default the
    /// items still waiting (open or unsure).
    List {
        /// Which items: waiting (open or unsure), decided, or all.
        #[arg(long, value_enum, default_value_t = Which::Waiting)]
        status: Which,
        #[command(flatten)]
        reader: Reader,
    },
    /// One item: the agreement pattern (each field's level and weight, the
    /// score) and both records' pseudonymised attributes.
    Show {
        /// Review item id (`rv_…`).
        id: String,
        #[command(flatten)]
        reader: Reader,
    },
    /// Decide an item. A match merges the two people (the larger id becomes
    /// an alias); a non-match keeps them from ever being linked by score.
    Decide {
        /// Review item id (`rv_…`).
        id: String,
        /// The two records are the same person.
        #[arg(long = "match", group = "decision")]
        is_match: bool,
        /// They are different people.
        #[arg(long, group = "decision")]
        non_match: bool,
        /// Not sure; the item stays in the queue.
        #[arg(long, group = "decision")]
        unsure: bool,
        /// Why (kept with the item, not in the access log).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        #[command(flatten)]
        reader: Reader,
    },
}

/// Which review items to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Which {
    /// Open or unsure.
    Waiting,
    /// Match or non-match.
    Decided,
    /// Every item.
    All,
}

/// `agencylink link …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum LinkCommand {
    /// Re-estimate the model from the store's own signatures without labels
    /// (u from random pairs, m by expectation maximisation over blocked
    /// pairs) and store it as the next version; recorded in lineage. Pairs
    /// already compared keep their outcome; the new model scores what later
    /// uploads bring.
    Train {
        /// Random pairs drawn to estimate u.
        #[arg(long, default_value_t = TrainOptions::default().random_pairs)]
        random_pairs: u64,
        /// Seed for the random pairs.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Match threshold for the new model (default: keep the current one).
        #[arg(long, value_name = "P")]
        match_threshold: Option<f64>,
        /// Review threshold for the new model (default: keep the current one).
        #[arg(long, value_name = "P")]
        review_threshold: Option<f64>,
    },
    /// Print the model in force (version 0 is the built-in default).
    Model,
}

fn linkage_of(store: &dyn RecordStore) -> Result<&dyn LinkageStore> {
    store
        .linkage()
        .context("this store keeps no probabilistic-linkage index")
}

fn check_threshold(name: &str, p: Option<f64>) -> Result<()> {
    if let Some(p) = p
        && !(p > 0.0 && p <= 1.0)
    {
        bail!("--{name} must be a probability above 0 and at most 1");
    }
    Ok(())
}

/// `review` on the embedded store.
pub(crate) fn review_local(data_dir: &Path, cmd: ReviewCommand) -> Result<ExitCode> {
    let store = crate::commands::open_existing_store(data_dir)?;
    review(&store, &store.access_log(), &|_| Ok(()), cmd)
}

/// `review` on any store: `log` is its access log, and `archive` keeps a
/// further copy of each entry where the backend has one (AWS: WORM).
pub(crate) fn review(
    store: &dyn RecordStore,
    log: &dyn ChainLog,
    archive: &dyn Fn(&serde_json::Value) -> Result<()>,
    cmd: ReviewCommand,
) -> Result<ExitCode> {
    let linkage = linkage_of(store)?;
    let time = crate::commands::now_rfc3339();
    let mut out = io::stdout().lock();
    match cmd {
        ReviewCommand::List { status, reader } => {
            query::check_reader(&reader.analyst, &reader.purpose)?;
            let mut items: Vec<_> = linkage
                .review_items()?
                .into_iter()
                .filter(|i| match status {
                    Which::Waiting => i.status.is_pending(),
                    Which::Decided => !i.status.is_pending(),
                    Which::All => true,
                })
                .collect();
            items.sort_by(|a, b| {
                b.probability
                    .total_cmp(&a.probability)
                    .then_with(|| a.id.cmp(&b.id))
            });
            let target = format!("review_queue:{status:?}").to_lowercase();
            archive(&record_read(
                log,
                &reader,
                "review_list",
                &target,
                items.len() as u64,
                &time,
            )?)?;
            for item in &items {
                serde_json::to_writer(&mut out, item)?;
                writeln!(out)?;
            }
            eprintln!("{} review items", items.len());
        }
        ReviewCommand::Show { id, reader } => {
            query::check_reader(&reader.analyst, &reader.purpose)?;
            let item = linkage.get_review(&id)?;
            // A look-up is a read even when nothing is found.
            archive(&record_read(
                log,
                &reader,
                "review_show",
                &id,
                u64::from(item.is_some()),
                &time,
            )?)?;
            let Some(item) = item else {
                bail!("no review item {id}");
            };
            let detail = linkage::review_detail(store, &item)?;
            serde_json::to_writer_pretty(&mut out, &detail)?;
            writeln!(out)?;
        }
        ReviewCommand::Decide {
            id,
            is_match,
            non_match,
            unsure,
            reason,
            reader,
        } => {
            let status = match (is_match, non_match, unsure) {
                (true, false, false) => ReviewStatus::Match,
                (false, true, false) => ReviewStatus::NonMatch,
                (false, false, true) => ReviewStatus::Unsure,
                _ => bail!("say one of --match, --non-match or --unsure"),
            };
            if reason.trim().is_empty() || reason.chars().any(char::is_control) {
                bail!("--reason must say why, on one line");
            }
            query::check_reader(&reader.analyst, &reader.purpose)?;
            if linkage.get_review(&id)?.is_none() {
                bail!("no review item {id}");
            }
            let word = match status {
                ReviewStatus::Match => "match",
                ReviewStatus::NonMatch => "non-match",
                _ => "unsure",
            };
            // Logged first: a decision that cannot be logged is not made.
            let entry =
                query::log_review_decision(log, &reader.analyst, &reader.purpose, &id, word, &time)
                    .context(
                        "the decision could not be recorded in the access log, so it was not made",
                    )?;
            archive(&entry)?;
            let item = linkage::decide(
                store,
                linkage,
                &id,
                Decision {
                    status,
                    analyst: reader.analyst.trim().to_owned(),
                    reason: reason.trim().to_owned(),
                    purpose: reader.purpose.trim().to_owned(),
                    time,
                },
            )?;
            serde_json::to_writer(&mut out, &item)?;
            writeln!(out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `link` on the embedded store.
pub(crate) fn link_local(data_dir: &Path, cmd: LinkCommand) -> Result<ExitCode> {
    let store = crate::commands::open_existing_store(data_dir)?;
    link(&store, &store.lineage(), &|_| Ok(()), cmd)
}

/// `link` on any store: `lineage_log` is its lineage log, and `archive`
/// keeps a further copy of each event where the backend has one (AWS: WORM).
pub(crate) fn link(
    store: &dyn RecordStore,
    lineage_log: &dyn ChainLog,
    archive: &dyn Fn(&serde_json::Value) -> Result<()>,
    cmd: LinkCommand,
) -> Result<ExitCode> {
    let linkage = linkage_of(store)?;
    let mut out = io::stdout().lock();
    match cmd {
        LinkCommand::Model => {
            let model = linkage::current_model(linkage)?;
            serde_json::to_writer_pretty(&mut out, &model)?;
            writeln!(out)?;
        }
        LinkCommand::Train {
            random_pairs,
            seed,
            match_threshold,
            review_threshold,
        } => {
            check_threshold("match-threshold", match_threshold)?;
            check_threshold("review-threshold", review_threshold)?;
            let current = linkage::current_model(linkage)?;
            let (m, r) = (
                match_threshold.unwrap_or(current.match_threshold),
                review_threshold.unwrap_or(current.review_threshold),
            );
            if r > m {
                bail!("the review threshold ({r}) must not be above the match threshold ({m})");
            }
            let model = linkage::train(
                linkage,
                &TrainOptions {
                    random_pairs,
                    seed,
                    match_threshold,
                    review_threshold,
                    ..TrainOptions::default()
                },
            )?;
            let event = LineageEvent::LinkTrain(LinkTrainEvent {
                model_version: model.version,
                scheme: model.scheme.clone(),
                lambda: model.lambda,
                match_threshold: model.match_threshold,
                review_threshold: model.review_threshold,
                training: model.training.clone(),
                time: crate::commands::now_rfc3339(),
            });
            archive(&lineage::append_event(lineage_log, &event)?)?;
            serde_json::to_writer_pretty(&mut out, &model)?;
            writeln!(out)?;
            eprintln!("stored linkage model version {}", model.version);
        }
    }
    Ok(ExitCode::SUCCESS)
}
