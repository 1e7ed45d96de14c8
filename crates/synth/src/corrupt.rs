//! The record-linkage error model: the ways the same person comes to look
//! different in two agencies' records.
//!
//! Errors touch only the person-name and date-of-birth fields (schema
//! annotations `x-match: family`, `x-match: given`, `x-match: dob`), only
//! valid rows (never a row that also carries an `invalid_rate` mistake), and
//! always leave a well-formed value: names stay letters with spaces,
//! hyphens and apostrophes, in the row's own letter case; dates stay real
//! dates from 1900 to the first event date, written in the row's own date
//! format. Missing values are blank cells.
//!
//! Every row draws its errors from its own random stream, derived from the
//! seed, the dataset and the row number: turning errors on never changes
//! which people or values the rows hold, and changing one rate never
//! reshuffles the errors of other rows.
//!
//! # Kinds and default rates
//!
//! Rates are probabilities per row (per name field for typos and phonetic
//! variants, which can hit the given and the family name independently).
//! Kinds within one group are exclusive: a field gets at most one of them,
//! drawn with one roll, so each kind's rate is exactly its share. A kind
//! that cannot apply to a value (a name with no nickname, a day-month swap
//! of 25/03) leaves it unchanged, and nothing is recorded.
//!
//! | group | kind (`name`) | default |
//! |---|---|---|
//! | typo, per name field | `keyboard_typo` (QWERTY neighbour) | 1.5% |
//! | | `ocr_confusion` (rn/m, cl/d, vv/w, l/i, e/c, a/o, h/b, u/v) | 0.5% |
//! | | `insertion` (a doubled letter or a neighbour key) | 1.0% |
//! | | `deletion` | 1.25% |
//! | | `transposition` (two adjacent letters) | 0.75% |
//! | given name | `missing_given_name` (blank cell) | 1.0% |
//! | | `initial_only` (`K` for `Kathleen`) | 1.5% |
//! | | `nickname` (`Tom` for `Thomas`), where one exists | 4.0% |
//! | | `phonetic_variant` (`Mohammed` for `Muhammad`), where one exists | 3.0% |
//! | family name | `hyphenated_surname` (`Smith-Jones`) | 1.0% |
//! | | `double_barrelled_surname` (`Smith Jones`) | 0.5% |
//! | | `swapped_surname` (`Jones Smith`, `Jones-Smith`) | 0.5% |
//! | | `phonetic_variant` (`Choudhury` for `Chowdhury`), where one exists | 3.0% |
//! | row | `names_swapped` (given in the family column and back) | 1.0% |
//! | date of birth | `dob_day_month_swapped`, where the swap is a real, different date | 5.0% |
//! | | `dob_digit` (one digit wrong, still a real date) | 2.5% |
//! | | `dob_year_off_by_one` | 1.0% |
//! | | `dob_missing` (blank cell) | 1.0% |
//!
//! With these rates about 22% of rows get at least one error
//! ([`ErrorModel::expected_row_rate`]): about one row in ten has a typo in
//! a name, one in sixteen a changed date of birth, one in forty a nickname
//! or variant spelling. The figures are our judgement of what is plausible
//! for names and dates of birth keyed into different agencies' systems
//! (typos and date slips most common, missing values rare in required
//! fields); they are not measured from any data, and a benchmark that
//! needs other figures sets its own rates.

use crate::SynthError;
use crate::calendar::{
    DateStyle, Day, EVENT_START, civil_from_days, days_from_civil, is_leap, push_date,
};
use crate::names::{self, Ethnicity};
use crate::rng::{Rng, splitmix64};
use crate::variants::{NICKNAMES, PHONETIC, lookup};

/// One kind of linkage error (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A letter replaced by a QWERTY keyboard neighbour (`Smoth`).
    KeyboardTypo,
    /// An OCR or handwriting confusion: `rn`/`m`, `cl`/`d`, `vv`/`w`,
    /// `l`/`i`, `e`/`c`, `a`/`o`, `h`/`b`, `u`/`v` (letters only).
    OcrConfusion,
    /// A letter inserted: doubled (`Phillip`) or a neighbouring key.
    Insertion,
    /// A letter left out.
    Deletion,
    /// Two adjacent, different letters swapped (`Jhon`).
    Transposition,
    /// A spelling that sounds the same or transliterates the same name
    /// (`Mohammed` / `Muhammad`, `Ayesha` / `Aisha`, `Steven` / `Stephen`).
    PhoneticVariant,
    /// A nickname or short form (`Tom` for `Thomas`, `Kate` for `Kathleen`).
    Nickname,
    /// A second surname added with a hyphen (`Smith-Jones`).
    HyphenatedSurname,
    /// A second surname added with a space (`Smith Jones`).
    DoubleBarrelledSurname,
    /// A second surname put first (`Jones Smith`), or the parts of a
    /// double surname swapped (`Jones-Smith` for `Smith-Jones`).
    SwappedSurname,
    /// Given name in the family-name column and family name in the given.
    NamesSwapped,
    /// The given name written as its initial only (one letter).
    InitialOnly,
    /// The given name left blank.
    MissingGivenName,
    /// Day and month of the date of birth swapped, when that is a real,
    /// different date (`03/07/2010` for `07/03/2010`).
    DobDayMonthSwapped,
    /// One digit of the date of birth wrong, still a real date.
    DobDigit,
    /// The year of birth one out.
    DobYearOffByOne,
    /// The date of birth left blank.
    DobMissing,
}

/// Number of kinds.
const KINDS: usize = 17;

impl ErrorKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ErrorKind; KINDS] = [
        ErrorKind::KeyboardTypo,
        ErrorKind::OcrConfusion,
        ErrorKind::Insertion,
        ErrorKind::Deletion,
        ErrorKind::Transposition,
        ErrorKind::PhoneticVariant,
        ErrorKind::Nickname,
        ErrorKind::HyphenatedSurname,
        ErrorKind::DoubleBarrelledSurname,
        ErrorKind::SwappedSurname,
        ErrorKind::NamesSwapped,
        ErrorKind::InitialOnly,
        ErrorKind::MissingGivenName,
        ErrorKind::DobDayMonthSwapped,
        ErrorKind::DobDigit,
        ErrorKind::DobYearOffByOne,
        ErrorKind::DobMissing,
    ];

    /// The name written in the ground truth (`"nickname"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::KeyboardTypo => "keyboard_typo",
            ErrorKind::OcrConfusion => "ocr_confusion",
            ErrorKind::Insertion => "insertion",
            ErrorKind::Deletion => "deletion",
            ErrorKind::Transposition => "transposition",
            ErrorKind::PhoneticVariant => "phonetic_variant",
            ErrorKind::Nickname => "nickname",
            ErrorKind::HyphenatedSurname => "hyphenated_surname",
            ErrorKind::DoubleBarrelledSurname => "double_barrelled_surname",
            ErrorKind::SwappedSurname => "swapped_surname",
            ErrorKind::NamesSwapped => "names_swapped",
            ErrorKind::InitialOnly => "initial_only",
            ErrorKind::MissingGivenName => "missing_given_name",
            ErrorKind::DobDayMonthSwapped => "dob_day_month_swapped",
            ErrorKind::DobDigit => "dob_digit",
            ErrorKind::DobYearOffByOne => "dob_year_off_by_one",
            ErrorKind::DobMissing => "dob_missing",
        }
    }

    /// The kind with this [`name`](ErrorKind::name).
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.name() == name)
    }

    fn slot(self) -> usize {
        ErrorKind::ALL
            .iter()
            .position(|&k| k == self)
            .unwrap_or_default()
    }

    /// The default rate (module documentation).
    fn default_rate(self) -> f64 {
        match self {
            ErrorKind::KeyboardTypo => 0.015,
            ErrorKind::OcrConfusion => 0.005,
            ErrorKind::Insertion => 0.01,
            ErrorKind::Deletion => 0.0125,
            ErrorKind::Transposition => 0.0075,
            ErrorKind::PhoneticVariant => 0.03,
            ErrorKind::Nickname => 0.04,
            ErrorKind::HyphenatedSurname => 0.01,
            ErrorKind::DoubleBarrelledSurname => 0.005,
            ErrorKind::SwappedSurname => 0.005,
            ErrorKind::NamesSwapped => 0.01,
            ErrorKind::InitialOnly => 0.015,
            ErrorKind::MissingGivenName => 0.01,
            ErrorKind::DobDayMonthSwapped => 0.05,
            ErrorKind::DobDigit => 0.025,
            ErrorKind::DobYearOffByOne => 0.01,
            ErrorKind::DobMissing => 0.01,
        }
    }
}

/// Typo kinds, one roll per name field.
const TYPOS: [ErrorKind; 5] = [
    ErrorKind::KeyboardTypo,
    ErrorKind::OcrConfusion,
    ErrorKind::Insertion,
    ErrorKind::Deletion,
    ErrorKind::Transposition,
];
/// Given-name kinds, one roll.
const GIVEN: [ErrorKind; 4] = [
    ErrorKind::MissingGivenName,
    ErrorKind::InitialOnly,
    ErrorKind::Nickname,
    ErrorKind::PhoneticVariant,
];
/// Family-name kinds, one roll.
const FAMILY: [ErrorKind; 4] = [
    ErrorKind::HyphenatedSurname,
    ErrorKind::DoubleBarrelledSurname,
    ErrorKind::SwappedSurname,
    ErrorKind::PhoneticVariant,
];
/// Date-of-birth kinds, one roll.
const DOB: [ErrorKind; 4] = [
    ErrorKind::DobDayMonthSwapped,
    ErrorKind::DobDigit,
    ErrorKind::DobYearOffByOne,
    ErrorKind::DobMissing,
];

/// Per-kind error rates (module documentation). [`Default`] is the
/// realistic model; [`ErrorModel::none`] makes no errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorModel {
    rates: [f64; KINDS],
}

impl Default for ErrorModel {
    fn default() -> Self {
        ErrorModel {
            rates: ErrorKind::ALL.map(ErrorKind::default_rate),
        }
    }
}

impl ErrorModel {
    /// No errors: output is exactly what it is without the model.
    pub const fn none() -> Self {
        ErrorModel {
            rates: [0.0; KINDS],
        }
    }

    /// Whether every rate is zero.
    pub fn is_none(&self) -> bool {
        self.rates.iter().all(|&r| r == 0.0)
    }

    /// The rate of `kind`.
    pub fn rate(&self, kind: ErrorKind) -> f64 {
        self.rates[kind.slot()]
    }

    /// This model with `kind` at `rate` (checked when the model is used:
    /// each rate from 0 to 1, and each exclusive group's rates summing to
    /// at most 1).
    #[must_use]
    pub fn with_rate(mut self, kind: ErrorKind, rate: f64) -> Self {
        self.rates[kind.slot()] = rate;
        self
    }

    /// Every rate multiplied by `factor`.
    #[must_use]
    pub fn scaled(self, factor: f64) -> Self {
        ErrorModel {
            rates: self.rates.map(|r| r * factor),
        }
    }

    /// The default model scaled by one factor so that its
    /// [`expected_row_rate`](ErrorModel::expected_row_rate) is `target`
    /// (found by bisection to 1e-9). Every kind keeps its share of the
    /// default; `0` is [`ErrorModel::none`]. Refused when `target` is not
    /// in 0..=1 or needs a group's rates to sum above 1 (the date-of-birth
    /// and given-name groups reach 1 first, at about 10.5 times the default,
    /// where the expected row rate is about 0.97).
    pub fn with_row_rate(target: f64) -> Result<Self, SynthError> {
        if !(0.0..=1.0).contains(&target) {
            return Err(SynthError::InvalidErrorModel(format!(
                "row error rate must be between 0 and 1, got {target}"
            )));
        }
        if target == 0.0 {
            return Ok(ErrorModel::none());
        }
        let base = ErrorModel::default();
        let max_factor = base.max_factor();
        if base.scaled(max_factor).expected_row_rate() < target {
            return Err(SynthError::InvalidErrorModel(format!(
                "row error rate {target} is out of reach: scaling the default model \
                 tops out at {:.3}",
                base.scaled(max_factor).expected_row_rate()
            )));
        }
        let (mut lo, mut hi) = (0.0, max_factor);
        for _ in 0..200 {
            let mid = (lo + hi) / 2.0;
            if base.scaled(mid).expected_row_rate() < target {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi - lo < 1e-12 {
                break;
            }
        }
        Ok(base.scaled((lo + hi) / 2.0))
    }

    /// The largest factor that keeps every group within 1.
    fn max_factor(&self) -> f64 {
        let groups: [&[ErrorKind]; 5] = [&TYPOS, &GIVEN, &FAMILY, &DOB, &[ErrorKind::NamesSwapped]];
        groups
            .iter()
            .map(|g| g.iter().map(|&k| self.rate(k)).sum::<f64>())
            .filter(|&s| s > 0.0)
            .map(|s| 1.0 / s)
            .fold(f64::INFINITY, f64::min)
            .min(1e6)
    }

    /// The expected share of rows (with a given name, a family name and a
    /// date of birth) that get at least one error: one minus the chance
    /// that every roll misses, where the rolls for nicknames, phonetic
    /// variants and day-month swaps count only in the share of people they
    /// can apply to (computed from the built-in name lists and the calendar:
    /// about 25% of people have a given name with a nickname in the table,
    /// 29% one with a phonetic variant, 26% a family name with one, and 36%
    /// of dates of birth a day that can swap with the month). Rows are drawn from the people unevenly, so an
    /// extract's own share differs a little; [`crate::SynthStats::error_rows`]
    /// counts it exactly.
    pub fn expected_row_rate(&self) -> f64 {
        let r = |k| self.rate(k);
        let nick = names::given_share(|g| lookup(NICKNAMES, g).is_some());
        let ph_given = names::given_share(|g| lookup(PHONETIC, g).is_some());
        let ph_family = names::family_share(|f| lookup(PHONETIC, f).is_some());
        let compound = names::family_share(|f| f.contains(['-', ' ']));
        let al = names::family_share(is_prefixed);
        // A day 1..=12 different from the month.
        let swappable = 132.0 / 365.25;
        let typo: f64 = TYPOS.iter().map(|&k| r(k)).sum();
        let given = r(ErrorKind::MissingGivenName)
            + r(ErrorKind::InitialOnly)
            + r(ErrorKind::Nickname) * nick
            + r(ErrorKind::PhoneticVariant) * ph_given;
        let family = (r(ErrorKind::HyphenatedSurname) + r(ErrorKind::DoubleBarrelledSurname))
            * (1.0 - compound)
            + r(ErrorKind::SwappedSurname) * (1.0 - al)
            + r(ErrorKind::PhoneticVariant) * ph_family;
        let dob = r(ErrorKind::DobDayMonthSwapped) * swappable
            + r(ErrorKind::DobDigit)
            + r(ErrorKind::DobYearOffByOne)
            + r(ErrorKind::DobMissing);
        let clean = (1.0 - typo).powi(2)
            * (1.0 - given)
            * (1.0 - family)
            * (1.0 - r(ErrorKind::NamesSwapped))
            * (1.0 - dob);
        (1.0 - clean).clamp(0.0, 1.0)
    }

    /// Every rate in 0..=1 and every exclusive group within 1.
    pub(crate) fn check(&self) -> Result<(), SynthError> {
        for k in ErrorKind::ALL {
            let r = self.rate(k);
            if !(0.0..=1.0).contains(&r) {
                return Err(SynthError::InvalidErrorModel(format!(
                    "rate of {} must be between 0 and 1, got {r}",
                    k.name()
                )));
            }
        }
        for (label, group) in [
            ("typo", &TYPOS[..]),
            ("given name", &GIVEN[..]),
            ("family name", &FAMILY[..]),
            ("date of birth", &DOB[..]),
        ] {
            let sum: f64 = group.iter().map(|&k| self.rate(k)).sum();
            if sum > 1.0 + 1e-9 {
                return Err(SynthError::InvalidErrorModel(format!(
                    "{label} error rates sum to {sum}, more than 1"
                )));
            }
        }
        Ok(())
    }

    /// One roll over an exclusive group: the kind hit, if any.
    fn roll(&self, rng: &mut Rng, group: &[ErrorKind]) -> Option<ErrorKind> {
        let u = rng.unit();
        let mut acc = 0.0;
        for &k in group {
            acc += self.rate(k);
            if u < acc {
                return Some(k);
            }
        }
        None
    }
}

/// `Al-Amin`, `El-...`: a prefix, not a second surname, so never swapped.
fn is_prefixed(f: &str) -> bool {
    f.starts_with("Al-") || f.starts_with("El-")
}

/// How the names of a row are cased (from the row's existing cells).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    AsIs,
    Upper,
    Lower,
}

fn case_of(cell: &str) -> Case {
    let has_upper = cell.chars().any(char::is_uppercase);
    let has_lower = cell.chars().any(char::is_lowercase);
    match (has_upper, has_lower) {
        (true, false) => Case::Upper,
        (false, true) => Case::Lower,
        _ => Case::AsIs,
    }
}

fn cased(name: &str, case: Case) -> String {
    match case {
        Case::Upper => name.to_uppercase(),
        Case::Lower => name.to_lowercase(),
        Case::AsIs => name.to_owned(),
    }
}

/// What the error model needs to know about one row.
#[derive(Debug)]
pub(crate) struct RowPerson {
    pub(crate) given: &'static str,
    pub(crate) family: &'static str,
    pub(crate) ethnicity: Ethnicity,
    pub(crate) dob: Day,
}

/// The columns errors can touch, and how the row wrote its date of birth.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Targets {
    pub(crate) given: Option<usize>,
    pub(crate) family: Option<usize>,
    pub(crate) dob: Option<(usize, DateStyle)>,
}

/// Applies an [`ErrorModel`] to rows.
#[derive(Debug, Clone)]
pub(crate) struct Corruptor {
    model: ErrorModel,
    base: u64,
}

impl Corruptor {
    pub(crate) fn new(model: ErrorModel, seed: u64, dataset: &str) -> Self {
        Corruptor {
            model,
            base: crate::rng::mix(seed, &format!("errors/{dataset}")),
        }
    }

    pub(crate) fn is_none(&self) -> bool {
        self.model.is_none()
    }

    /// Apply errors to row `row`'s cells; push `(kind, column)` for every
    /// cell changed.
    pub(crate) fn apply(
        &self,
        row: u64,
        p: &RowPerson,
        t: Targets,
        cells: &mut [String],
        errors: &mut Vec<(ErrorKind, usize)>,
    ) {
        let mut state = self.base ^ row.wrapping_mul(0xA24B_AED4_963E_E407);
        let mut rng = Rng::new(splitmix64(&mut state));
        let m = &self.model;
        // Always the same rolls in the same order, whatever the outcome.
        let given_roll = m.roll(&mut rng, &GIVEN);
        let family_roll = m.roll(&mut rng, &FAMILY);
        let given_typo = m.roll(&mut rng, &TYPOS);
        let family_typo = m.roll(&mut rng, &TYPOS);
        let swap = rng.chance(m.rate(ErrorKind::NamesSwapped));
        let dob_roll = m.roll(&mut rng, &DOB);
        let before = errors.len();
        let cols = [t.given, t.family, t.dob.map(|(c, _)| c)];
        let original = cols.map(|c| c.map(|c| cells[c].clone()));

        if let (Some(c), Some(kind)) = (t.given, given_roll)
            && !cells[c].is_empty()
            && given_error(&mut rng, kind, p, &mut cells[c])
        {
            errors.push((kind, c));
        }
        if let (Some(c), Some(kind)) = (t.family, family_roll)
            && !cells[c].is_empty()
            && family_error(&mut rng, kind, p, &mut cells[c])
        {
            errors.push((kind, c));
        }
        for (col, kind) in [(t.given, given_typo), (t.family, family_typo)] {
            if let (Some(c), Some(kind)) = (col, kind)
                && typo(&mut rng, kind, &mut cells[c])
            {
                errors.push((kind, c));
            }
        }
        if let (Some(g), Some(f), true) = (t.given, t.family, swap)
            && !cells[g].is_empty()
            && !cells[f].is_empty()
            && cells[g] != cells[f]
        {
            cells.swap(g, f);
            errors.push((ErrorKind::NamesSwapped, g));
            errors.push((ErrorKind::NamesSwapped, f));
        }
        if let (Some((c, style)), Some(kind)) = (t.dob, dob_roll)
            && !cells[c].is_empty()
            && dob_error(&mut rng, kind, p.dob, style, &mut cells[c])
        {
            errors.push((kind, c));
        }
        // Two errors can cancel out (a variant, then a typo that spells the
        // original): a cell that ends as it began has no error.
        let mut k = before;
        while k < errors.len() {
            let col = errors[k].1;
            let unchanged = cols
                .iter()
                .zip(&original)
                .any(|(c, o)| *c == Some(col) && o.as_deref() == Some(cells[col].as_str()));
            if unchanged {
                errors.remove(k);
            } else {
                k += 1;
            }
        }
    }
}

fn pick_variant(
    rng: &mut Rng,
    table: &'static [(&str, &[&str])],
    name: &str,
) -> Option<&'static str> {
    lookup(table, name).and_then(|v| rng.pick(v).copied())
}

fn given_error(rng: &mut Rng, kind: ErrorKind, p: &RowPerson, cell: &mut String) -> bool {
    let case = case_of(cell);
    let replacement = match kind {
        ErrorKind::MissingGivenName => String::new(),
        ErrorKind::InitialOnly => match cell.chars().find(|c| c.is_alphabetic()) {
            Some(c) if cell.chars().filter(|c| c.is_alphabetic()).count() > 1 => c.to_string(),
            _ => return false,
        },
        ErrorKind::Nickname => match pick_variant(rng, NICKNAMES, p.given) {
            Some(n) => cased(n, case),
            None => return false,
        },
        ErrorKind::PhoneticVariant => match pick_variant(rng, PHONETIC, p.given) {
            Some(n) => cased(n, case),
            None => return false,
        },
        _ => return false,
    };
    *cell = replacement;
    true
}

fn family_error(rng: &mut Rng, kind: ErrorKind, p: &RowPerson, cell: &mut String) -> bool {
    let case = case_of(cell);
    let compound = p.family.contains(['-', ' ']);
    // A second surname from the person's own heritage (drawn every time, so
    // the stream advances the same way whatever the kind).
    let second = (0..10)
        .map(|_| names::draw_family_name(rng, p.ethnicity))
        .find(|&f| f != p.family && !f.contains(['-', ' ']))
        .map(|f| cased(f, case));
    let replacement = match (kind, second) {
        (ErrorKind::HyphenatedSurname, Some(second)) if !compound => format!("{cell}-{second}"),
        (ErrorKind::DoubleBarrelledSurname, Some(second)) if !compound => {
            format!("{cell} {second}")
        }
        (ErrorKind::SwappedSurname, _) if compound && !is_prefixed(p.family) => {
            let Some(at) = cell.find(['-', ' ']) else {
                return false;
            };
            let sep = &cell[at..at + 1];
            format!("{}{sep}{}", &cell[at + 1..], &cell[..at])
        }
        (ErrorKind::SwappedSurname, Some(second)) if !compound => format!("{second} {cell}"),
        (ErrorKind::PhoneticVariant, _) => match pick_variant(rng, PHONETIC, p.family) {
            Some(n) => cased(n, case),
            None => return false,
        },
        _ => return false,
    };
    *cell = replacement;
    true
}

/// QWERTY neighbours of each lower-case letter.
fn neighbours(c: char) -> &'static str {
    match c {
        'q' => "wa",
        'w' => "qeas",
        'e' => "wrsd",
        'r' => "etdf",
        't' => "ryfg",
        'y' => "tugh",
        'u' => "yihj",
        'i' => "uojk",
        'o' => "ipkl",
        'p' => "ol",
        'a' => "qwsz",
        's' => "awedxz",
        'd' => "serfcx",
        'f' => "drtgvc",
        'g' => "ftyhbv",
        'h' => "gyujnb",
        'j' => "huikmn",
        'k' => "jiolm",
        'l' => "kop",
        'z' => "asx",
        'x' => "zsdc",
        'c' => "xdfv",
        'v' => "cfgb",
        'b' => "vghn",
        'n' => "bhjm",
        'm' => "njk",
        _ => "",
    }
}

/// OCR / handwriting confusions, both ways.
const OCR: [(&str, &str); 16] = [
    ("rn", "m"),
    ("m", "rn"),
    ("cl", "d"),
    ("d", "cl"),
    ("vv", "w"),
    ("w", "vv"),
    ("l", "i"),
    ("i", "l"),
    ("e", "c"),
    ("c", "e"),
    ("a", "o"),
    ("o", "a"),
    ("h", "b"),
    ("b", "h"),
    ("u", "v"),
    ("v", "u"),
];

/// `c` with the case of `like`.
fn case_like(c: char, like: char) -> char {
    if like.is_ascii_uppercase() {
        c.to_ascii_uppercase()
    } else {
        c.to_ascii_lowercase()
    }
}

/// Apply one typo to a name cell; false when it cannot apply (blank cell,
/// an initial, no place for this kind).
fn typo(rng: &mut Rng, kind: ErrorKind, cell: &mut String) -> bool {
    let mut chars: Vec<char> = cell.chars().collect();
    let letters: Vec<usize> = (0..chars.len())
        .filter(|&i| chars[i].is_ascii_alphabetic())
        .collect();
    if chars.iter().filter(|c| c.is_alphabetic()).count() < 2 || letters.is_empty() {
        return false;
    }
    let upper_cell = case_of(cell) == Case::Upper;
    match kind {
        ErrorKind::KeyboardTypo => {
            let Some(&i) = rng.pick(&letters) else {
                return false;
            };
            let n = neighbours(chars[i].to_ascii_lowercase());
            let Some(&b) = rng.pick(n.as_bytes()) else {
                return false;
            };
            chars[i] = case_like(char::from(b), chars[i]);
        }
        ErrorKind::Insertion => {
            let Some(&i) = rng.pick(&letters) else {
                return false;
            };
            let lower = chars[i].to_ascii_lowercase();
            let new = if rng.chance(0.5) {
                lower
            } else {
                rng.pick(neighbours(lower).as_bytes())
                    .map_or(lower, |&b| char::from(b))
            };
            let like = if upper_cell { 'A' } else { 'a' };
            chars.insert(i + 1, case_like(new, like));
        }
        ErrorKind::Deletion => {
            // Never the only letter of a word (`O` of `O'Brien`).
            let ok: Vec<usize> = letters
                .iter()
                .copied()
                .filter(|&i| {
                    let before = i > 0 && chars[i - 1].is_alphabetic();
                    let after = i + 1 < chars.len() && chars[i + 1].is_alphabetic();
                    before || after
                })
                .collect();
            let Some(&i) = rng.pick(&ok) else {
                return false;
            };
            let removed = chars.remove(i);
            // A deleted capital passes its case on (`Daniel` -> `Aniel`).
            if removed.is_uppercase()
                && let Some(next) = chars.get_mut(i)
                && next.is_alphabetic()
            {
                let mut up = next.to_uppercase();
                if let (Some(u), None) = (up.next(), up.next()) {
                    *next = u;
                }
            }
        }
        ErrorKind::Transposition => {
            let ok: Vec<usize> = letters
                .iter()
                .copied()
                .filter(|&i| {
                    i + 1 < chars.len()
                        && chars[i + 1].is_ascii_alphabetic()
                        && !chars[i].eq_ignore_ascii_case(&chars[i + 1])
                })
                .collect();
            let Some(&i) = rng.pick(&ok) else {
                return false;
            };
            let (a, b) = (chars[i], chars[i + 1]);
            chars[i] = case_like(b, a);
            chars[i + 1] = case_like(a, b);
        }
        ErrorKind::OcrConfusion => {
            let lower: String = chars.iter().map(char::to_ascii_lowercase).collect();
            let mut spots: Vec<(usize, &str, &str)> = Vec::new();
            for (from, to) in OCR {
                for (at, _) in lower.match_indices(from) {
                    spots.push((at, from, to));
                }
            }
            // Byte offsets in `lower` are char offsets only for ASCII.
            spots.retain(|&(at, from, _)| {
                lower.is_char_boundary(at) && lower[..at].is_ascii() && from.is_ascii()
            });
            let Some(&(at, from, to)) = rng.pick(&spots) else {
                return false;
            };
            let first = chars[at];
            let n = from.len();
            let replacement: Vec<char> = to
                .chars()
                .enumerate()
                .map(|(k, c)| {
                    if upper_cell || (k == 0 && first.is_ascii_uppercase()) {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            chars.splice(at..at + n, replacement);
        }
        _ => return false,
    }
    *cell = chars.into_iter().collect();
    true
}

/// Last date of birth an error may produce: before every event.
const DOB_MAX: Day = EVENT_START - 1;
const DOB_MIN: Day = days_from_civil(1900, 1, 1);

fn real(y: i32, m: u32, d: u32) -> Option<Day> {
    let dim = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => return None,
    };
    if d == 0 || d > dim {
        return None;
    }
    Some(days_from_civil(y, m, d)).filter(|z| (DOB_MIN..=DOB_MAX).contains(z))
}

fn dob_error(
    rng: &mut Rng,
    kind: ErrorKind,
    dob: Day,
    style: DateStyle,
    cell: &mut String,
) -> bool {
    let (y, m, d) = civil_from_days(dob);
    let new = match kind {
        ErrorKind::DobMissing => {
            cell.clear();
            return true;
        }
        ErrorKind::DobDayMonthSwapped => {
            if d == m || d > 12 {
                return false;
            }
            real(y, d, m)
        }
        ErrorKind::DobYearOffByOne => {
            let (a, b) = if rng.chance(0.5) { (1, -1) } else { (-1, 1) };
            real(y + a, m, d).or_else(|| real(y + b, m, d))
        }
        ErrorKind::DobDigit => {
            let short = style == DateStyle::SlashShort;
            let mut candidates = Vec::new();
            // (component, digits as written)
            let parts = [
                (
                    0,
                    if short {
                        d.to_string()
                    } else {
                        format!("{d:02}")
                    },
                ),
                (
                    1,
                    if short {
                        m.to_string()
                    } else {
                        format!("{m:02}")
                    },
                ),
                (2, format!("{y:04}")),
            ];
            for (which, text) in &parts {
                for (k, old) in text.bytes().enumerate() {
                    for digit in b'0'..=b'9' {
                        if digit == old {
                            continue;
                        }
                        let mut t = text.clone().into_bytes();
                        t[k] = digit;
                        let t = String::from_utf8(t).unwrap_or_default();
                        // A short form never gains a leading zero.
                        if short && *which < 2 && t.starts_with('0') {
                            continue;
                        }
                        let Ok(v) = t.parse::<u32>() else { continue };
                        let day = match which {
                            0 => real(y, m, v),
                            1 => real(y, v, d),
                            _ => real(v as i32, m, d),
                        };
                        if let Some(day) = day {
                            candidates.push(day);
                        }
                    }
                }
            }
            rng.pick(&candidates).copied()
        }
        _ => None,
    };
    let Some(new) = new.filter(|&n| n != dob) else {
        return false;
    };
    cell.clear();
    push_date(cell, new, style);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use agencylink_core::pseudo::{Kind, canonicalise};

    #[test]
    fn variant_tables_are_keyed_by_used_names_and_every_variant_differs() {
        let given = names::all_given();
        let family = names::all_family();
        for (table, keys) in [(NICKNAMES, &given), (PHONETIC, &given)] {
            for (name, variants) in table {
                let used = keys.contains(name) || family.contains(name);
                assert!(used, "{name} is not in the name lists");
                assert!(!variants.is_empty(), "{name}");
                for v in *variants {
                    assert!(
                        v.chars()
                            .all(|c| c.is_ascii_alphabetic() || " -'".contains(c)),
                        "{v}"
                    );
                    let canon =
                        |x: &str| canonicalise(Kind::PersonName, x, "").map(|c| c.into_owned());
                    assert_ne!(canon(v).ok(), canon(name).ok(), "{name} / {v}");
                }
            }
        }
        for (name, _) in NICKNAMES {
            assert!(
                given.contains(name),
                "nickname key {name} is not a given name"
            );
        }
    }

    #[test]
    fn typos_keep_letters_and_change_the_name() {
        let mut rng = Rng::new(3);
        for name in [
            "Thomas",
            "O'BRIEN",
            "smith-jones",
            "Róisín",
            "Ng",
            "Al-Amin",
        ] {
            for kind in TYPOS {
                for _ in 0..50 {
                    let mut cell = name.to_owned();
                    if typo(&mut rng, kind, &mut cell) {
                        assert_ne!(cell.to_lowercase(), name.to_lowercase(), "{kind:?}");
                        assert!(
                            cell.chars().all(|c| c.is_alphabetic() || " -'".contains(c)),
                            "{cell}"
                        );
                        if cell.chars().filter(|c| c.is_alphabetic()).count() > 1 {
                            assert_eq!(case_of(&cell), case_of(name), "{kind:?} {name} -> {cell}");
                        }
                    }
                }
            }
        }
        let mut initial = "K".to_owned();
        assert!(
            !typo(&mut rng, ErrorKind::Deletion, &mut initial),
            "an initial gets no typo"
        );
    }

    #[test]
    fn date_errors_are_real_different_dates_in_the_same_style() {
        let mut rng = Rng::new(5);
        let dob = days_from_civil(2010, 3, 7);
        let mut cell = String::new();
        assert!(dob_error(
            &mut rng,
            ErrorKind::DobDayMonthSwapped,
            dob,
            DateStyle::Slash,
            &mut cell
        ));
        assert_eq!(cell, "03/07/2010");
        let same = days_from_civil(2010, 4, 4);
        assert!(!dob_error(
            &mut rng,
            ErrorKind::DobDayMonthSwapped,
            same,
            DateStyle::Iso,
            &mut cell
        ));
        let late = days_from_civil(2010, 3, 25);
        assert!(!dob_error(
            &mut rng,
            ErrorKind::DobDayMonthSwapped,
            late,
            DateStyle::Iso,
            &mut cell
        ));
        let leap = days_from_civil(2008, 2, 29);
        for _ in 0..20 {
            let mut c = String::new();
            assert!(dob_error(
                &mut rng,
                ErrorKind::DobDigit,
                leap,
                DateStyle::SlashShort,
                &mut c
            ));
            assert_eq!(c.len(), "29/2/2008".len(), "{c}");
            assert!(!dob_error(
                &mut rng,
                ErrorKind::DobYearOffByOne,
                leap,
                DateStyle::Iso,
                &mut c
            ));
        }
    }
}
