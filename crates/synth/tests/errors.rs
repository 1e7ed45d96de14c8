//! The linkage error model: what each kind does, that it is recorded in the
//! truth, that rates are what they say, that rows stay valid, and that
//! turning errors on changes nothing else.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use agencylink_core::pseudo::{Kind, canonicalise};
use agencylink_core::read::{self, InputFormat};
use agencylink_core::report::validate_all;
use agencylink_core::schema::{Catalog, Dataset};
use agencylink_core::validate::RowValidator;
use agencylink_synth::{ErrorKind, ErrorModel, SynthOptions, SynthStats, write_csv};
use serde_json::Value;

type Record = BTreeMap<String, String>;

struct Output {
    csv: Vec<u8>,
    truth: Vec<Value>,
    stats: SynthStats,
}

impl Output {
    fn records(&self) -> Vec<Record> {
        support::csv_rows(&self.csv)
    }
    /// Per row: `(field, kind)` errors.
    fn errors(&self) -> Vec<Vec<(String, ErrorKind)>> {
        self.truth[..self.truth.len() - 1]
            .iter()
            .map(|t| {
                t["errors"]
                    .as_array()
                    .expect("errors array on every truth line")
                    .iter()
                    .map(|e| {
                        let kind = e["kind"].as_str().expect("kind");
                        (
                            e["field"].as_str().expect("field").to_owned(),
                            ErrorKind::from_name(kind).expect("known kind"),
                        )
                    })
                    .collect()
            })
            .collect()
    }
}

fn generate(ds: &Dataset, opts: &SynthOptions) -> Output {
    let (mut csv, mut truth) = (Vec::new(), Vec::new());
    let stats = write_csv(ds, opts, &mut csv, Some(&mut truth)).expect("generate");
    let truth = String::from_utf8(truth)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    Output { csv, truth, stats }
}

fn opts(seed: u64, rows: u64, errors: ErrorModel) -> SynthOptions {
    SynthOptions {
        errors,
        ..SynthOptions::new(seed, rows)
    }
}

fn canon(kind: Kind, v: &str) -> Option<String> {
    canonicalise(kind, v, "").ok().map(|c| c.into_owned())
}

/// `(y, m, d)` of a date of birth in any of the generator's formats.
fn ymd(v: &str) -> (u32, u32, u32) {
    let c = canon(Kind::Date, v).unwrap_or_else(|| panic!("not a date: {v}"));
    let p: Vec<u32> = c.split('-').map(|x| x.parse().expect("number")).collect();
    (p[0], p[1], p[2])
}

/// Datasets to exercise: a council one (ISO and UK dates, mixed case) and
/// a police one (capitals, DD/MM/YYYY).
fn datasets(cat: &Catalog) -> Vec<&Dataset> {
    ["council.missing_episode", "police.cse_crime"]
        .iter()
        .map(|id| &**cat.get(id).expect("dataset"))
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_bytes_with_errors() {
    let cat = Catalog::embedded().expect("schemas");
    for ds in datasets(&cat) {
        let o = opts(9, 1500, ErrorModel::default());
        let a = generate(ds, &o);
        let b = generate(ds, &o);
        assert_eq!(a.csv, b.csv, "{}", ds.id);
        assert_eq!(a.truth, b.truth, "{}", ds.id);
        assert!(a.stats.error_rows > 0);
        let c = generate(ds, &SynthOptions { seed: 10, ..o });
        assert_ne!(a.csv, c.csv, "{}: another seed, other rows", ds.id);
    }
}

#[test]
fn errors_change_only_the_cells_they_record_and_each_kind_does_what_it_says() {
    let cat = Catalog::embedded().expect("schemas");
    let mut seen: BTreeSet<ErrorKind> = BTreeSet::new();
    for ds in datasets(&cat) {
        // Rates tripled so that even the rarest kind turns up.
        let o = SynthOptions {
            invalid_rate: 0.05,
            ..opts(4, 6000, ErrorModel::default().scaled(3.0))
        };
        let with = generate(ds, &o);
        let without = generate(
            ds,
            &SynthOptions {
                errors: ErrorModel::none(),
                ..o.clone()
            },
        );
        assert_eq!(without.stats.error_rows, 0);
        assert_eq!(with.stats.rows, without.stats.rows);
        assert_eq!(with.stats.invalid_rows, without.stats.invalid_rows);
        let (recs, clean) = (with.records(), without.records());
        let errors = with.errors();
        let mut error_rows = 0;
        for (i, ((r, c), errs)) in recs.iter().zip(&clean).zip(&errors).enumerate() {
            let t = &with.truth[i];
            assert_eq!(t["person"], without.truth[i]["person"], "same person");
            if !errs.is_empty() {
                error_rows += 1;
                assert_eq!(t["invalid"], false, "errors only on valid rows");
            }
            let touched: BTreeSet<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
            for (col, v) in r {
                if !touched.contains(col.as_str()) {
                    assert_eq!(
                        v,
                        &c[col],
                        "{} row {}: `{col}` changed unrecorded",
                        ds.id,
                        i + 1
                    );
                } else {
                    assert_ne!(
                        v,
                        &c[col],
                        "{} row {}: `{col}` recorded unchanged",
                        ds.id,
                        i + 1
                    );
                }
            }
            let name_errors = errs.iter().filter(|(f, _)| f != "dob").count();
            for (field, kind) in errs {
                seen.insert(*kind);
                let (new, old) = (r[field].as_str(), c[field].as_str());
                let ctx = format!(
                    "{} row {}: {field} {kind:?}: {old:?} -> {new:?}",
                    ds.id,
                    i + 1
                );
                let only = errs.iter().filter(|(f, _)| f == field).count() == 1;
                match kind {
                    ErrorKind::MissingGivenName | ErrorKind::DobMissing => {
                        assert!(new.is_empty(), "{ctx}")
                    }
                    ErrorKind::InitialOnly if only => {
                        assert_eq!(new.chars().count(), 1, "{ctx}");
                        assert_eq!(new.chars().next(), old.chars().next(), "{ctx}");
                    }
                    ErrorKind::Nickname | ErrorKind::PhoneticVariant if only => {
                        assert_ne!(
                            canon(Kind::PersonName, new),
                            canon(Kind::PersonName, old),
                            "{ctx}"
                        );
                        assert!(
                            new.chars()
                                .all(|c| c.is_ascii_alphabetic() || " -'".contains(c)),
                            "{ctx}"
                        );
                    }
                    ErrorKind::HyphenatedSurname if only => {
                        assert!(
                            new.starts_with(&format!("{old}-")) && new.len() > old.len() + 1,
                            "{ctx}"
                        )
                    }
                    ErrorKind::DoubleBarrelledSurname if only => {
                        assert!(
                            new.starts_with(&format!("{old} ")) && new.len() > old.len() + 1,
                            "{ctx}"
                        )
                    }
                    ErrorKind::SwappedSurname if only => {
                        let mut a: Vec<char> = new.chars().collect();
                        let mut b: Vec<char> = old.chars().collect();
                        a.sort_unstable();
                        b.sort_unstable();
                        assert!(
                            new.ends_with(&format!(" {old}")) || (a == b && new != old),
                            "{ctx}"
                        );
                    }
                    ErrorKind::NamesSwapped if name_errors == 2 => {
                        let other = if field == "given_name" {
                            "family_name"
                        } else {
                            "given_name"
                        };
                        assert_eq!(new, c[other], "{ctx}");
                    }
                    ErrorKind::KeyboardTypo | ErrorKind::Transposition if only => {
                        let (a, b): (Vec<char>, Vec<char>) =
                            (new.chars().collect(), old.chars().collect());
                        assert_eq!(a.len(), b.len(), "{ctx}");
                        let diff: Vec<usize> = (0..a.len()).filter(|&k| a[k] != b[k]).collect();
                        if *kind == ErrorKind::KeyboardTypo {
                            assert_eq!(diff.len(), 1, "{ctx}");
                        } else {
                            assert!(diff.len() == 2 && diff[1] == diff[0] + 1, "{ctx}");
                            assert!(a[diff[0]].eq_ignore_ascii_case(&b[diff[1]]), "{ctx}");
                        }
                    }
                    ErrorKind::Insertion if only => {
                        assert_eq!(new.chars().count(), old.chars().count() + 1, "{ctx}")
                    }
                    ErrorKind::Deletion if only => {
                        assert_eq!(new.chars().count() + 1, old.chars().count(), "{ctx}")
                    }
                    ErrorKind::DobDayMonthSwapped => {
                        let ((y, m, d), (y0, m0, d0)) = (ymd(new), ymd(old));
                        assert_eq!((y, m, d), (y0, d0, m0), "{ctx}");
                        assert_ne!(m0, d0, "{ctx}");
                    }
                    ErrorKind::DobYearOffByOne => {
                        let ((y, m, d), (y0, m0, d0)) = (ymd(new), ymd(old));
                        assert_eq!((m, d), (m0, d0), "{ctx}");
                        assert_eq!(y.abs_diff(y0), 1, "{ctx}");
                    }
                    ErrorKind::DobDigit => {
                        ymd(new);
                        let (a, b): (Vec<char>, Vec<char>) =
                            (new.chars().collect(), old.chars().collect());
                        assert_eq!(a.len(), b.len(), "{ctx}: same written form");
                        let diff: Vec<usize> = (0..a.len()).filter(|&k| a[k] != b[k]).collect();
                        assert_eq!(diff.len(), 1, "{ctx}");
                        assert!(a[diff[0]].is_ascii_digit(), "{ctx}");
                    }
                    _ => {}
                }
                if field != "dob" && !new.is_empty() {
                    assert!(
                        new.chars().all(|c| c.is_alphabetic() || " -'".contains(c)),
                        "{ctx}: letters, spaces, hyphens, apostrophes"
                    );
                    assert!(canon(Kind::PersonName, new).is_some(), "{ctx}");
                }
                if field == "dob" && !new.is_empty() {
                    // Same written format: ISO stays ISO, day-first stays day-first.
                    assert_eq!(
                        new.contains('-') && new.find('-') == Some(4),
                        old.find('-') == Some(4),
                        "{ctx}"
                    );
                    assert_eq!(new.contains('/'), old.contains('/'), "{ctx}");
                    assert_eq!(new.contains('.'), old.contains('.'), "{ctx}");
                    assert_eq!(new.contains('T'), old.contains('T'), "{ctx}");
                }
            }
        }
        assert_eq!(
            error_rows, with.stats.error_rows,
            "{}: stats count error rows",
            ds.id
        );
        let summary = &with.truth[with.truth.len() - 1]["summary"];
        assert_eq!(summary["error_rows"], error_rows);
    }
    let missing: Vec<&str> = ErrorKind::ALL
        .iter()
        .filter(|k| !seen.contains(k))
        .map(|k| k.name())
        .collect();
    assert!(missing.is_empty(), "kinds never produced: {missing:?}");
}

/// Rows that fail validation, with the first messages.
fn invalid_rows(ds: &Dataset, csv: &[u8]) -> (BTreeSet<u64>, Vec<String>) {
    let validator = RowValidator::new(ds);
    let mut source = read::open(InputFormat::Csv, csv, ds);
    let mut bad = BTreeSet::new();
    let mut messages = Vec::new();
    validate_all(source.as_mut(), &validator, |e| {
        bad.insert(e.row);
        if messages.len() < 10 {
            messages.push(format!(
                "row {} {} [{}]: {}",
                e.row, e.field, e.code, e.message
            ));
        }
        Ok(())
    })
    .expect("validation runs");
    (bad, messages)
}

#[test]
fn rows_with_errors_still_pass_validation_unless_a_required_cell_is_blank() {
    let cat = Catalog::embedded().expect("schemas");
    // Linkage errors fall on names and dates of birth: investigations have none.
    for ds in cat.latest().filter(|d| d.is_about_people()) {
        let out = generate(ds, &opts(12, 3000, ErrorModel::default().scaled(3.0)));
        assert!(
            out.stats.error_rows > 500,
            "{}: {}",
            ds.id,
            out.stats.error_rows
        );
        let (bad, messages) = invalid_rows(ds, &out.csv);
        let blanked: BTreeSet<u64> = out
            .errors()
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.iter()
                    .any(|(_, k)| matches!(k, ErrorKind::MissingGivenName | ErrorKind::DobMissing))
            })
            .map(|(i, _)| i as u64 + 1)
            .collect();
        let unexplained: Vec<&u64> = bad.difference(&blanked).collect();
        assert!(
            unexplained.is_empty(),
            "{}: {unexplained:?} {messages:?}",
            ds.id
        );
    }
}

#[test]
fn observed_rates_are_near_the_configured_rates() {
    let cat = Catalog::embedded().expect("schemas");
    let ds = cat.get("council.missing_episode").expect("dataset");
    let model = ErrorModel::default();
    let rows = 8000u64;
    let out = generate(ds, &opts(21, rows, model));
    let errors = out.errors();
    let count = |kind: ErrorKind, field: &str| {
        errors
            .iter()
            .filter(|e| e.iter().any(|(f, k)| *k == kind && f == field))
            .count() as f64
    };
    // Kinds that always apply (the fields are required here, so present).
    for (kind, field) in [
        (ErrorKind::InitialOnly, "given_name"),
        (ErrorKind::MissingGivenName, "given_name"),
        (ErrorKind::DobMissing, "dob"),
        (ErrorKind::DobYearOffByOne, "dob"),
        (ErrorKind::DobDigit, "dob"),
        (ErrorKind::KeyboardTypo, "family_name"),
        (ErrorKind::Deletion, "family_name"),
    ] {
        let p = model.rate(kind);
        let n = rows as f64;
        let sigma = (n * p * (1.0 - p)).sqrt();
        let seen = count(kind, field);
        assert!(
            (seen - n * p).abs() < 4.0 * sigma + 2.0,
            "{kind:?}: {seen} of {n}, expected {}",
            n * p
        );
    }
    let share = out.stats.error_rows as f64 / rows as f64;
    let expected = model.expected_row_rate();
    assert!(
        (0.18..0.28).contains(&expected),
        "default expected {expected}"
    );
    assert!(
        (share - expected).abs() < 0.03,
        "observed {share}, expected {expected}"
    );

    for target in [0.1, 0.4] {
        let scaled = ErrorModel::with_row_rate(target).expect("reachable");
        assert!((scaled.expected_row_rate() - target).abs() < 1e-6);
        let out = generate(ds, &opts(22, rows, scaled));
        let share = out.stats.error_rows as f64 / rows as f64;
        assert!(
            (share - target).abs() < 0.04,
            "target {target}, observed {share}"
        );
    }
    assert_eq!(
        ErrorModel::with_row_rate(0.0).expect("zero"),
        ErrorModel::none()
    );
    assert!(ErrorModel::with_row_rate(1.5).is_err());
    assert!(
        ErrorModel::with_row_rate(1.0).is_err(),
        "no scaling makes every row wrong"
    );
}

#[test]
fn bad_models_are_refused() {
    let cat = Catalog::embedded().expect("schemas");
    let ds = cat.get("council.missing_episode").expect("dataset");
    for model in [
        ErrorModel::none().with_rate(ErrorKind::Nickname, 1.5),
        ErrorModel::none().with_rate(ErrorKind::DobDigit, -0.1),
        ErrorModel::none()
            .with_rate(ErrorKind::DobDigit, 0.6)
            .with_rate(ErrorKind::DobMissing, 0.6),
    ] {
        let r = write_csv(ds, &opts(1, 10, model), &mut Vec::new(), None);
        assert!(r.is_err(), "{model:?}");
    }
}
