//! agencylink-synth: synthetic agency extracts for tests, demos and
//! benchmarks, with ground truth for linkage and group detection.
//!
//! This crate feeds the workspace's tests, the benches and `agencylink
//! demo` / `agencylink synth`; it is **not part of the pipeline**. Core
//! never depends on it (only core's tests and benches do), and nothing that
//! ingests real data calls it.
//!
//! # What it makes
//!
//! [`write_csv`] writes a CSV extract for any dataset in the catalogue: a
//! header row in schema property order, then `rows` rows, streamed through a
//! `std::io::Write` (memory stays flat for ten million rows). Every value is
//! synthetic and from a safe range (`design/DATASETS.md`): NHS numbers
//! 999 000 0000–999 999 9999 with a valid modulus-11 check digit, phone
//! numbers from Ofcom's drama ranges (07700 900000–900999 and
//! 01632 960000–960999), UPNs with a valid check letter and the home
//! borough's DfE code, and names from built-in lists.
//!
//! **No code names a dataset.** What goes in a column comes from the schema
//! annotations (see `plan`): `x-identifier`, `x-match`, `x-link`, `x-concept`,
//! `enum` and `x-codes`, `type`, `format` and `pattern`. Which people a
//! dataset is about comes from its `person_role` codes: a dataset whose role
//! codes include a suspect has suspects and victims (and witnesses or
//! associates for its other codes); a dataset with no role column is about
//! children only. Agency conventions (police write dates of birth
//! `DD/MM/YYYY` and names in capitals, police often lack ethnicity) key off
//! `x-agency-type` and fall back to neutral defaults. A new schema file gets
//! sensible rows with no code change.
//!
//! # One world, many datasets
//!
//! The people come from a [`World`] that depends only on the seed and the
//! [`Population`] (default 3,000 children aged 10–17 and 1,500 adults aged
//! 18–50 on every event date), never on the dataset or the row count. So
//! `--dataset A --seed 7` and `--dataset B --seed 7` share the same people:
//! the same child turns up in council, health, education and police
//! extracts, under the same family name, given name and date of birth once
//! canonicalised (though written differently: upper case, `07/03/2009`,
//! `999 123 4567`). The world plants one network per 150 people (2–5
//! suspects, 2–6 victims, tied by several shared crimes, shared intelligence
//! reports and a shared vehicle and/or phone) and forms background groups of
//! at most one suspect each, so group detection has an exact answer.
//!
//! Rows of a dataset with a role column start with every planted network's
//! crimes (or, for a dataset whose reference is `x-link: intel`, its
//! reports), all involvements of one crime together, then background events;
//! rows of a child-only dataset start with one or two records per planted
//! victim (CSE factors, missing episodes, CSE-flagged attendances), then
//! records of children drawn with at-risk children more often. Event dates
//! lie between 2024-10-01 and 2026-09-30; later dates of the same event
//! (recorded, ended) are on or after the event date.
//!
//! The row stream is seeded from the seed and the dataset id, mistakes from
//! a separate stream, and the generators are our own (xoshiro256**,
//! SplitMix64), so the same seed gives byte-identical output on every
//! machine and every crate upgrade.
//!
//! # Investigations
//!
//! A dataset about investigations rather than people (a `case_ref` concept,
//! a crime-reference `x-link`, no `x-match` field; `police.cse_investigation`)
//! is drawn over the crime extract of the same seed and row count, which is
//! generated first: each row is one crime an investigation covers, and the
//! crime references are exactly those of that extract's valid rows. Planted
//! networks are covered by an open investigation, by none, or only by a
//! suspended or closed one, in turn; the truth's summary names the planted
//! networks left uncovered (`networks_uncovered`) and covered. `rows` is the
//! size of the crime extract; `invalid_rate` and linkage errors do not apply
//! to the investigation rows. See `cases` and `crates/synth/README.md`.
//!
//! # Invalid rows
//!
//! With `invalid_rate` R, each row independently (from the mistake stream)
//! carries exactly one realistic mistake with probability R, and
//! [`SynthStats::invalid_rows`] counts them exactly. Every mistake makes the
//! row fail validation: an NHS number with a wrong check digit
//! (`nhs_check_digit`), a UPN with a wrong check letter (`upn_check_letter`),
//! an impossible date such as `30/02/2010` in a date of birth or
//! `2025-02-30` in a `format: date` field (`impossible_date`), a code that
//! is not in the list such as `XX` (`unknown_code`), or a required cell left
//! blank (`blank_required`; the column stays in the header). Rows without a
//! mistake pass the schema and the identifier canonical-form checks.
//!
//! # Linkage errors
//!
//! With [`SynthOptions::errors`] set (it is [`ErrorModel::none`] by
//! default), valid rows get the errors that make one person look different
//! across agencies, in the name and date-of-birth fields only (`x-match:
//! family`, `given`, `dob`): typos (QWERTY neighbour, OCR confusion,
//! insertion, deletion, transposition), phonetic and transliteration
//! variants (`Mohammed` / `Muhammad`), nicknames (`Tom` / `Thomas`),
//! hyphenated, double-barrelled and swapped surnames, given and family name
//! swapped, initials only, a blank given name, and a date of birth with day
//! and month swapped, one digit wrong, the year one out, or blank. Each kind
//! ([`ErrorKind`]) has its own rate; the default model
//! ([`ErrorModel::default`], rates in the table below) gives about 22% of
//! rows at least one error. Errors come from a stream of their own, one per
//! row, so they never change which people or values the rows hold, and
//! never fall on a row with an `invalid_rate` mistake. Values stay
//! well-formed (names letters, spaces, hyphens and apostrophes in the row's
//! letter case; dates real dates in the row's own format); a blank given
//! name or date of birth is a blank cell, which a schema that requires the
//! field rejects.
//!
//! | group | kind | default rate |
//! |---|---|---|
//! | typo, per name field | `keyboard_typo` 1.5%, `ocr_confusion` 0.5%, `insertion` 1%, `deletion` 1.25%, `transposition` 0.75% | 5% per field |
//! | given name | `missing_given_name` 1%, `initial_only` 1.5%, `nickname` 4%, `phonetic_variant` 3% | |
//! | family name | `hyphenated_surname` 1%, `double_barrelled_surname` 0.5%, `swapped_surname` 0.5%, `phonetic_variant` 3% | |
//! | row | `names_swapped` 1% | |
//! | date of birth | `dob_day_month_swapped` 5%, `dob_digit` 2.5%, `dob_year_off_by_one` 1%, `dob_missing` 1% | |
//!
//! Kinds in one group are exclusive (one roll); a kind that cannot apply
//! (no nickname for the name, a day above 12) leaves the value alone and
//! records nothing. See [`ErrorModel`] and `crates/synth/README.md`.
//!
//! [`linkage::write_pair`] builds on this: two agencies' extracts of the
//! same children, one clean, one with errors, with disjoint ids.
//!
//! # Ground truth (`truth`)
//!
//! The optional truth writer gets NDJSON, one line per data row in order:
//!
//! ```json
//! {"row":1,"person":"P00042","role":"victim","invalid":false,"mistake":null,"field":null,"network":"N003","linkable":true,"errors":[]}
//! {"row":2,"person":"P00107","role":"victim","invalid":false,"mistake":null,"field":null,"network":null,"linkable":true,"errors":[{"field":"given_name","kind":"nickname"},{"field":"dob","kind":"dob_digit"}]}
//! ```
//!
//! - `row`: the data row number, 1-based, header excluded (as the validator
//!   numbers rows).
//! - `person`: the world's person id ([`Person::id`]).
//! - `role`: the role code written in the row's `person_role` column, or
//!   `"child"` in a dataset without one.
//! - `invalid`, `mistake`, `field`: whether a mistake was injected, which
//!   kind (names above) and in which column.
//! - `network`: the planted network the row belongs to: the network of a
//!   planted crime or report, or, in a child-only dataset, the network whose
//!   victim the row is about; otherwise `null`. Background rows are never in
//!   a network.
//! - `linkable`: the row carries at least one complete, well-formed match
//!   key: an NHS number, or family name, given name and date of birth, or a
//!   UPN. (A mistake in one of those fields removes that key; on an invalid
//!   row this says what the row would link by, although it is rejected. A
//!   linkage error that blanks a field removes its key too; one that only
//!   changes a value does not: the key is complete, just different.)
//! - `errors`: the linkage errors of the row, one `{"field","kind"}` per
//!   cell an error changed (`names_swapped` changes two cells and is listed
//!   for both), in the order applied; `kind` is an [`ErrorKind::name`].
//!   Empty when none (always on invalid rows, and with
//!   [`ErrorModel::none`]).
//!
//! The last line is a summary:
//!
//! ```json
//! {"summary":{"rows":2000,"invalid_rows":0,"error_rows":0,"networks":[{"id":"N001","suspects":["P03012"],"victims":["P00017"]}]}}
//! ```
//!
//! (`error_rows`: rows with at least one linkage error.)
//!
//! listing only networks with at least one row in the output, and for each
//! only the suspects and victims that appear in its rows (so a truncated
//! extract is scored against what it holds). The full plan is on
//! [`World::networks`].

mod calendar;
mod cases;
mod corrupt;
mod emit;
mod geo;
mod ids;
mod names;
mod plan;
mod rng;
mod variants;
mod world;

pub mod linkage;

use std::io::Write;

pub use corrupt::{ErrorKind, ErrorModel};
pub use names::{Ethnicity, Sex};
pub use world::{Involvement, MAX_PEOPLE, Network, Person, Population, World};

use agencylink_core::schema::Dataset;

/// Why synthetic data could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SynthError {
    /// `invalid_rate` is not a number from 0 to 1.
    #[error("invalid rate must be between 0 and 1, got {0}")]
    InvalidRate(f64),
    /// An error model with a rate outside 0..=1 or an exclusive group of
    /// rates summing above 1, or a row error rate out of reach.
    #[error("error model: {0}")]
    InvalidErrorModel(String),
    /// Linkage pair options that do not add up.
    #[error("linkage pair: {0}")]
    InvalidPair(String),
    /// The population cannot be built.
    #[error("population: {0}")]
    Population(String),
    /// A field whose values we cannot generate.
    #[error("{dataset}: field `{field}`: {reason}")]
    Unsupported {
        /// The dataset id.
        dataset: String,
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// No person in the world can appear in this dataset (e.g. it requires
    /// an identifier nobody has).
    #[error("no synthetic person can fill this dataset's required fields")]
    NoPeople,
    /// Writing the output failed.
    #[error("writing synthetic data: {0}")]
    Io(#[from] std::io::Error),
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthOptions {
    /// Fixes the world and every row.
    pub seed: u64,
    /// Data rows to write.
    pub rows: u64,
    /// Share of rows (0 to 1) that get exactly one mistake.
    pub invalid_rate: f64,
    /// People in the world; `None` for [`Population::default`].
    pub population: Option<Population>,
    /// Linkage errors in names and dates of birth of valid rows
    /// ([`ErrorModel::none`] by default: output is then exactly what it was
    /// before the model existed).
    pub errors: ErrorModel,
}

impl SynthOptions {
    /// `rows` valid rows from `seed` in the default world.
    pub fn new(seed: u64, rows: u64) -> Self {
        SynthOptions {
            seed,
            rows,
            invalid_rate: 0.0,
            population: None,
            errors: ErrorModel::none(),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SynthStats {
    /// Data rows written.
    pub rows: u64,
    /// Rows given a mistake (each has exactly one).
    pub invalid_rows: u64,
    /// Rows given at least one linkage error ([`SynthOptions::errors`]).
    pub error_rows: u64,
    /// Planted networks with at least one row in the output.
    pub networks: u32,
}

/// Write a synthetic CSV extract of `dataset` to `out`, and its ground truth
/// to `truth` when given (format in the module documentation).
pub fn write_csv(
    dataset: &Dataset,
    opts: &SynthOptions,
    out: &mut dyn Write,
    truth: Option<&mut dyn Write>,
) -> Result<SynthStats, SynthError> {
    check_rate(opts.invalid_rate)?;
    let world = World::new(opts.seed, opts.population.unwrap_or_default())?;
    write_csv_with_world(&world, dataset, opts, out, truth)
}

/// As [`write_csv`], reusing a world built once for several datasets.
/// `opts.population` is ignored; `opts.seed` still seeds the rows.
pub fn write_csv_with_world(
    world: &World,
    dataset: &Dataset,
    opts: &SynthOptions,
    out: &mut dyn Write,
    truth: Option<&mut dyn Write>,
) -> Result<SynthStats, SynthError> {
    check_rate(opts.invalid_rate)?;
    if cases::is_case_dataset(dataset) {
        return cases::write(world, dataset, opts, out, truth);
    }
    let mut generator =
        emit::Generator::new(world, dataset, opts.seed, opts.invalid_rate, opts.errors)?;
    generator.run(opts.rows, out, truth)
}

fn check_rate(rate: f64) -> Result<(), SynthError> {
    if (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(SynthError::InvalidRate(rate))
    }
}
