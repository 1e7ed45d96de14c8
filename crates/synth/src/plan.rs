//! Turning a dataset schema into a plan of what to write in each column.
//!
//! Nothing here names a dataset or a column. A column's filler comes from its
//! annotations, in this order: `x-concept` `record_ref` / `event_date`; the
//! `x-identifier` kind (with `x-match` and `x-link`); `x-link` alone; the
//! concepts `person_role`, `sex`, `ethnicity`, `borough`, `cse_flag`; then the
//! JSON type, `enum`, `format` and `pattern`. Code choice reads the `x-codes`
//! wording (e.g. a code meaning "…sexual exploitation" is what a CSE victim's
//! record carries; a code meaning "…under 13" is not used for a 15-year-old),
//! so a new code list or a new dataset gets sensible values unchanged.

use serde_json::Value;

use super::SynthError;
use crate::calendar::DateStyle;
use crate::geo::BOROUGHS;
use crate::names::{Ethnicity, Sex};
use crate::rng::{Rng, cumulative, mix};
use agencylink_core::pseudo::Kind;
use agencylink_core::schema::{Dataset, Field, FieldType, MatchRole, ScalarType};

/// What kind of person a role code stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleClass {
    Victim,
    Suspect,
    Other,
}

/// The `person_role` column: which code means victim, suspect, or other.
#[derive(Debug)]
pub(crate) struct Roles {
    pub(crate) victim: Option<usize>,
    pub(crate) suspect: Option<usize>,
    pub(crate) others: Vec<usize>,
    pub(crate) codes: Vec<String>,
}

impl Roles {
    fn from_codes(codes: &[String], field: &Field) -> Roles {
        let text = |i: usize| {
            let code = &codes[i];
            let meaning = field.meanings.get(code).map(String::as_str).unwrap_or("");
            format!("{code} {meaning}").to_lowercase()
        };
        let find =
            |words: &[&str]| (0..codes.len()).find(|&i| words.iter().any(|w| text(i).contains(w)));
        let victim = find(&["victim", "injured"]);
        let suspect = find(&["suspect", "offender", "perpetrator"]);
        let others = (0..codes.len())
            .filter(|&i| Some(i) != victim && Some(i) != suspect)
            .collect();
        Roles {
            victim,
            suspect,
            others,
            codes: codes.to_vec(),
        }
    }

    /// The code index for a class (`Other` picks one of the other codes).
    pub(crate) fn code_for(&self, class: RoleClass, rng: &mut Rng) -> Option<usize> {
        match class {
            RoleClass::Victim => self.victim,
            RoleClass::Suspect => self.suspect,
            RoleClass::Other => rng.pick(&self.others).copied(),
        }
    }
}

/// How a code is chosen for one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Everyday spread of codes.
    Plain,
    /// A CSE story: codes whose meaning speaks of sexual exploitation,
    /// grooming, going missing, trafficking.
    Story,
    /// A planted network's event: codes meaning an organised network.
    Network,
}

/// The person a code is about, for excluding codes that cannot apply
/// (an "under 13" offence against a 15-year-old, maternity for a boy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subject {
    pub(crate) age: Option<i32>,
    pub(crate) sex: Option<Sex>,
}

/// Age bands × sexes that code filters distinguish.
const CONTEXTS: usize = 4 * 3;

fn context_index(s: Subject) -> usize {
    let age = match s.age {
        None => 0,
        Some(a) if a < 13 => 1,
        Some(a) if a < 16 => 2,
        Some(_) => 3,
    };
    let sex = match s.sex {
        Some(Sex::Male) => 1,
        Some(Sex::Female) => 2,
        _ => 0,
    };
    age * 3 + sex
}

fn context_excludes(ctx: usize, meaning: &str) -> bool {
    let (age, sex) = (ctx / 3, ctx % 3);
    let too_old_for = |limit: &str| meaning.contains(limit);
    let age_out = match age {
        2 => too_old_for("under 13"),
        3 => too_old_for("under 13") || too_old_for("under 16"),
        _ => false,
    };
    let without_female = meaning.replace("female", "");
    let sex_out = match sex {
        1 => {
            meaning.contains("female")
                || meaning.contains("pregnan")
                || meaning.contains("maternity")
        }
        2 => without_female.contains(" male") || without_female.starts_with("male"),
        _ => false,
    };
    age_out || sex_out
}

const PRIMARY: &[&str] = &["sexual exploitation", "grooming"];
const SECONDARY: &[&str] = &["missing", "trafficking", "sexual", "rape", "exploitation"];
const NETWORK: &[&str] = &["organised", "network"];
const UNKNOWNISH: &[&str] = &[
    "not recorded",
    "not stated",
    "not known",
    "unknown",
    "refused",
    "not yet obtained",
    "indeterminate",
];
const EXCLUSIVE: &[&str] = &["no factors", "none"];

/// A code list with precomputed weights for every (subject, mode).
#[derive(Debug)]
pub(crate) struct Codes {
    pub(crate) codes: Vec<String>,
    /// `tables[ctx][mode]`: running weights.
    tables: Vec<[Vec<u32>; 3]>,
    pub(crate) primary: Vec<usize>,
    pub(crate) secondary: Vec<usize>,
    pub(crate) network: Vec<usize>,
    pub(crate) exclusive: Vec<bool>,
}

fn has_any(text: &str, words: &[&str]) -> bool {
    words.iter().any(|w| text.contains(w))
}

impl Codes {
    fn new(field: &Field, codes: &[String]) -> Codes {
        let meanings: Vec<String> = codes
            .iter()
            .map(|c| {
                field
                    .meanings
                    .get(c)
                    .map_or_else(|| c.replace('_', " "), |m| m.clone())
                    .to_lowercase()
            })
            .collect();
        let tagged = |words: &[&str]| -> Vec<usize> {
            (0..codes.len())
                .filter(|&i| has_any(&meanings[i], words))
                .collect()
        };
        let network = tagged(NETWORK);
        let mut primary = tagged(PRIMARY);
        let mut secondary: Vec<usize> = tagged(SECONDARY)
            .into_iter()
            .filter(|i| !primary.contains(i))
            .collect();
        // Story codes only mean something when they single out a few codes.
        // A list that names an organised network is itself a list of kinds
        // of exploitation: its story is network versus not, nothing more.
        // And where most codes mention the keywords (a list of sexual
        // offences), only the primary ones stand out.
        if !network.is_empty() {
            primary.clear();
            secondary.clear();
        }
        if (primary.len() + secondary.len()) * 2 > codes.len() {
            secondary.clear();
        }
        if primary.len() * 2 > codes.len() {
            primary.clear();
        }
        let exclusive = meanings.iter().map(|m| has_any(m, EXCLUSIVE)).collect();
        // A skewed but schema-free spread: each code gets a weight from a
        // hash of the field and code (some codes common, some rare), and
        // "not recorded"-style codes are rare.
        let base: Vec<u32> = codes
            .iter()
            .zip(&meanings)
            .map(|(c, m)| {
                if has_any(m, UNKNOWNISH) {
                    3
                } else {
                    const STEPS: [u32; 8] = [10, 14, 20, 28, 40, 56, 80, 112];
                    STEPS[(mix(0, &format!("{}\u{1f}{c}", field.name)) % 8) as usize]
                }
            })
            .collect();
        let mut tables = Vec::with_capacity(CONTEXTS);
        for ctx in 0..CONTEXTS {
            let allowed: Vec<bool> = meanings.iter().map(|m| !context_excludes(ctx, m)).collect();
            let table = |w: &dyn Fn(usize) -> u32| -> Vec<u32> {
                let filtered =
                    cumulative((0..codes.len()).map(|i| if allowed[i] { w(i) } else { 0 }));
                if filtered.last().copied().unwrap_or(0) > 0 {
                    filtered
                } else {
                    cumulative((0..codes.len()).map(w))
                }
            };
            let plain_w = |i: usize| if network.contains(&i) { 0 } else { base[i] };
            let mut plain = table(&plain_w);
            if plain.last().copied().unwrap_or(0) == 0 {
                plain = table(&|i| base[i]);
            }
            // Story codes are much more likely, but a victim's record still
            // has ordinary codes too.
            let story_w = |i: usize| {
                if primary.contains(&i) {
                    base[i] * 8
                } else if secondary.contains(&i) {
                    base[i] * 3
                } else {
                    plain_w(i)
                }
            };
            let mut story = table(&story_w);
            if story.last().copied().unwrap_or(0) == 0 {
                story = plain.clone();
            }
            let mut net = table(&|i| if network.contains(&i) { base[i] } else { 0 });
            if net.last().copied().unwrap_or(0) == 0 {
                net = story.clone();
            }
            tables.push([plain, story, net]);
        }
        Codes {
            codes: codes.to_vec(),
            tables,
            primary,
            secondary,
            network,
            exclusive,
        }
    }

    /// One code index for `subject` in `mode`.
    pub(crate) fn draw(&self, rng: &mut Rng, subject: Subject, mode: Mode) -> usize {
        let m = match mode {
            Mode::Plain => 0,
            Mode::Story => 1,
            Mode::Network => 2,
        };
        self.tables
            .get(context_index(subject))
            .and_then(|t| rng.weighted(&t[m]))
            .unwrap_or(0)
    }

    /// Whether the subject context allows code `i` (for story additions).
    pub(crate) fn allowed(&self, subject: Subject, i: usize) -> bool {
        let t = &self.tables[context_index(subject)][0];
        let prev = if i == 0 { 0 } else { t[i - 1] };
        t.get(i).is_some_and(|&c| c > prev) || self.network.contains(&i)
    }
}

/// A code that is not in `codes` (for an "unknown code" mistake).
pub(crate) fn unknown_code_for(codes: &[String]) -> String {
    ["XX", "ZZ", "X9", "??"]
        .into_iter()
        .find(|c| !codes.iter().any(|k| k == c))
        .map_or_else(|| format!("{}X", codes.concat()), str::to_owned)
}

/// The sex column: the code for each sex, and "not recorded" codes.
#[derive(Debug)]
pub(crate) struct SexCodes {
    pub(crate) codes: Vec<String>,
    pub(crate) male: Option<usize>,
    pub(crate) female: Option<usize>,
    pub(crate) indeterminate: Option<usize>,
    pub(crate) unknown: Vec<usize>,
}

impl SexCodes {
    fn new(field: &Field, codes: &[String]) -> SexCodes {
        let meaning = |i: usize| {
            field
                .meanings
                .get(&codes[i])
                .map_or_else(|| codes[i].clone(), |m| m.clone())
                .to_lowercase()
        };
        let find = |pred: &dyn Fn(&str) -> bool, literal: &str| {
            (0..codes.len())
                .find(|&i| pred(&meaning(i)))
                .or_else(|| codes.iter().position(|c| c == literal))
        };
        let female = find(
            &|m| m.contains("female") || m == "f",
            Sex::Female.cin_code(),
        );
        let male = find(
            &|m| (m.contains("male") && !m.contains("female")) || m == "m",
            Sex::Male.cin_code(),
        );
        let indeterminate = find(
            &|m| m.contains("indeterminate"),
            Sex::Indeterminate.cin_code(),
        );
        let unknown = (0..codes.len())
            .filter(|&i| {
                Some(i) != indeterminate
                    && has_any(
                        &meaning(i),
                        &["not recorded", "not known", "unknown", "not stated"],
                    )
            })
            .collect();
        SexCodes {
            codes: codes.to_vec(),
            male,
            female,
            indeterminate,
            unknown,
        }
    }

    pub(crate) fn code_for(&self, sex: Sex) -> Option<usize> {
        match sex {
            Sex::Male => self.male,
            Sex::Female => self.female,
            Sex::Indeterminate => self.indeterminate,
        }
    }
}

/// The ethnicity column: each ethnicity's code in this list, found by
/// `x-group` and wording, and the "not recorded" codes.
#[derive(Debug)]
pub(crate) struct EthnicityCodes {
    pub(crate) codes: Vec<String>,
    by_ethnicity: Vec<(Ethnicity, Option<usize>)>,
    pub(crate) not_recorded: Vec<usize>,
}

impl EthnicityCodes {
    fn new(field: &Field, codes: &[String]) -> EthnicityCodes {
        let meaning = |i: usize| {
            field
                .meanings
                .get(&codes[i])
                .map_or_else(String::new, |m| m.to_lowercase())
        };
        let group = |i: usize| field.groups.get(&codes[i]).map(String::as_str);
        let by_ethnicity = Ethnicity::ALL
            .iter()
            .map(|&(e, _)| {
                let m = e.matcher();
                let in_group: Vec<usize> = (0..codes.len())
                    .filter(|&i| group(i).is_none_or(|g| g.eq_ignore_ascii_case(m.group)))
                    .collect();
                let by_phrase = m.phrases.iter().find_map(|p| {
                    in_group
                        .iter()
                        .copied()
                        .find(|&i| meaning(i).contains(p) && !has_any(&meaning(i), m.not))
                });
                let code = by_phrase
                    .or_else(|| {
                        in_group
                            .iter()
                            .copied()
                            .find(|&i| meaning(i).contains("other"))
                    })
                    .or_else(|| {
                        // Only fall back to the group's first code when the
                        // schema really groups codes; otherwise leave unset.
                        (!field.groups.is_empty())
                            .then(|| in_group.first().copied())
                            .flatten()
                    });
                (e, code)
            })
            .collect();
        let not_recorded = (0..codes.len())
            .filter(|&i| {
                group(i).is_some_and(|g| g.eq_ignore_ascii_case("not recorded"))
                    || has_any(&meaning(i), UNKNOWNISH)
            })
            .collect();
        EthnicityCodes {
            codes: codes.to_vec(),
            by_ethnicity,
            not_recorded,
        }
    }

    pub(crate) fn code_for(&self, e: Ethnicity) -> Option<usize> {
        self.by_ethnicity
            .iter()
            .find(|(x, _)| *x == e)
            .and_then(|(_, c)| *c)
    }
}

/// What goes in one column.
#[derive(Debug)]
pub(crate) enum Fill {
    /// The row's own id: prefix and row number.
    RecordRef {
        prefix: String,
    },
    /// A shared event reference (`x-link` crime / intel): one per event.
    EventRef {
        prefix: String,
    },
    /// The agency's own id for the person (an unlinked `local_ref`).
    PersonRef,
    FamilyName,
    GivenName,
    /// A `person_name` with no `x-match`: the full name.
    FullName,
    /// A date identifier: the person's date of birth.
    Dob,
    Nhs,
    Upn,
    Postcode,
    Email,
    Phone {
        link: bool,
    },
    Vrm {
        link: bool,
    },
    EventDate {
        time: bool,
    },
    /// Another date of the event (recorded, ended): on or after the event date.
    LaterDate {
        time: bool,
    },
    /// Borough names (`codes[world borough]` is the code index).
    Borough {
        codes: Option<Vec<Option<usize>>>,
    },
    Role,
    Sex(SexCodes),
    Ethnicity(EthnicityCodes),
    /// The `cse_flag` concept.
    Flag,
    Code(Codes),
    CodeList {
        codes: Codes,
        min: usize,
        max: usize,
    },
    Bool,
    Integer {
        min: i64,
        max: i64,
    },
    Number {
        min: f64,
        max: f64,
    },
    /// Values matching the field's `pattern`, a pool per borough so that a
    /// child keeps one school.
    Pattern {
        pools: Vec<Vec<String>>,
    },
    Text {
        len: usize,
    },
    TextList {
        item: ScalarType,
    },
    /// A field we cannot fill validly and need not fill (optional).
    Blank,
}

/// Whether a column's value belongs to the row, the person or the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Row,
    Person,
    Event,
}

/// One column of the output.
#[derive(Debug)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) required: bool,
    /// The schema requires it: a blank cell makes the row invalid.
    pub(crate) mandatory: bool,
    pub(crate) match_role: Option<MatchRole>,
    pub(crate) concept: Option<String>,
    pub(crate) fill: Fill,
}

impl Column {
    pub(crate) fn scope(&self) -> Scope {
        match self.fill {
            Fill::RecordRef { .. } => Scope::Row,
            Fill::PersonRef
            | Fill::FamilyName
            | Fill::GivenName
            | Fill::FullName
            | Fill::Dob
            | Fill::Nhs
            | Fill::Upn
            | Fill::Email
            | Fill::Phone { .. }
            | Fill::Vrm { .. }
            | Fill::Role
            | Fill::Sex(_)
            | Fill::Ethnicity(_) => Scope::Person,
            _ => Scope::Event,
        }
    }

    /// Whether the column takes a code, so an unknown code is a mistake.
    pub(crate) fn code_list(&self, roles: Option<&Roles>) -> Option<Vec<String>> {
        match &self.fill {
            Fill::Code(c) | Fill::CodeList { codes: c, .. } => Some(c.codes.clone()),
            Fill::Sex(s) => Some(s.codes.clone()),
            Fill::Ethnicity(e) => Some(e.codes.clone()),
            Fill::Role => roles.map(|r| r.codes.clone()),
            Fill::Borough { codes: Some(_) } => {
                Some(BOROUGHS.iter().map(|b| b.name.to_owned()).collect())
            }
            _ => None,
        }
    }
}

/// Agency conventions (optional, keyed off `x-agency-type`).
#[derive(Debug, Clone)]
pub(crate) struct Style {
    pub(crate) dob_styles: Vec<(DateStyle, u32)>,
    pub(crate) name_upper: f64,
    pub(crate) name_lower: f64,
    pub(crate) yes: &'static str,
    pub(crate) no: &'static str,
    pub(crate) nhs_spaced: f64,
    /// Share of rows with an optional NHS number filled.
    pub(crate) nhs_present: f64,
    pub(crate) ethnicity_blank: f64,
}

impl Style {
    pub(crate) fn for_agency(agency: Option<&str>) -> Style {
        use DateStyle::*;
        match agency {
            Some("police") => Style {
                dob_styles: vec![(Slash, 80), (Iso, 12), (Dash, 5), (SlashShort, 3)],
                name_upper: 0.55,
                name_lower: 0.02,
                yes: "true",
                no: "false",
                nhs_spaced: 0.3,
                nhs_present: 0.25,
                ethnicity_blank: 0.35,
            },
            Some("council") => Style {
                dob_styles: vec![(Iso, 55), (Slash, 35), (Dot, 5), (SlashShort, 5)],
                name_upper: 0.1,
                name_lower: 0.03,
                yes: "Y",
                no: "N",
                nhs_spaced: 0.6,
                nhs_present: 0.7,
                ethnicity_blank: 0.06,
            },
            Some("health") => Style {
                dob_styles: vec![(Iso, 80), (Slash, 12), (IsoDateTime, 8)],
                name_upper: 0.2,
                name_lower: 0.02,
                yes: "Y",
                no: "N",
                nhs_spaced: 0.7,
                nhs_present: 0.98,
                ethnicity_blank: 0.12,
            },
            Some("education") => Style {
                dob_styles: vec![(Slash, 60), (Iso, 40)],
                name_upper: 0.05,
                name_lower: 0.02,
                yes: "true",
                no: "false",
                nhs_spaced: 0.5,
                nhs_present: 0.5,
                ethnicity_blank: 0.05,
            },
            _ => Style {
                dob_styles: vec![(Iso, 60), (Slash, 40)],
                name_upper: 0.1,
                name_lower: 0.02,
                yes: "true",
                no: "false",
                nhs_spaced: 0.5,
                nhs_present: 0.6,
                ethnicity_blank: 0.1,
            },
        }
    }

    pub(crate) fn dob_style(&self, rng: &mut Rng) -> DateStyle {
        let total: u32 = self.dob_styles.iter().map(|(_, w)| w).sum();
        let mut x = rng.below(u64::from(total.max(1))) as u32;
        for &(s, w) in &self.dob_styles {
            if x < w {
                return s;
            }
            x -= w;
        }
        DateStyle::Iso
    }

    /// Whether this agency mostly writes dates of birth day-first.
    pub(crate) fn day_first(&self) -> bool {
        let iso: u32 = self
            .dob_styles
            .iter()
            .filter(|(s, _)| matches!(s, DateStyle::Iso | DateStyle::IsoDateTime))
            .map(|(_, w)| w)
            .sum();
        let total: u32 = self.dob_styles.iter().map(|(_, w)| w).sum();
        iso * 2 < total
    }
}

/// The whole plan for one dataset.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) columns: Vec<Column>,
    pub(crate) roles: Option<Roles>,
    /// Which planted events this dataset records: intelligence reports for
    /// an `x-link: intel` reference, crimes otherwise.
    pub(crate) reports: bool,
    pub(crate) style: Style,
    /// The person must have a UPN / phone / plate to appear at all (a
    /// required column of that kind).
    pub(crate) needs_upn: bool,
    pub(crate) needs_phone: bool,
    pub(crate) needs_vrm: bool,
}

fn prop<'a>(dataset: &'a Dataset, name: &str) -> Option<&'a Value> {
    dataset.schema.get("properties").and_then(|p| p.get(name))
}

fn num(v: Option<&Value>, key: &str) -> Option<f64> {
    v.and_then(|p| p.get(key)).and_then(Value::as_f64)
}

/// Initials of a dataset id (`police.cse_crime` → `PCC`), so record refs look
/// like an agency system's own and differ between datasets.
fn initials(id: &str) -> String {
    id.split(['.', '_', '-'])
        .filter_map(|w| w.chars().next())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

impl Plan {
    pub(crate) fn new(dataset: &Dataset) -> Result<Plan, SynthError> {
        let mut columns = Vec::with_capacity(dataset.fields().len());
        let mut roles = None;
        let mut reports = false;
        let record_prefix = format!("{}-", initials(&dataset.id));
        for field in dataset.fields() {
            let fill = fill_for(dataset, field, &record_prefix)?;
            if matches!(fill, Fill::Role)
                && let Some(codes) = &field.codes
            {
                roles = Some(Roles::from_codes(codes, field));
            }
            if matches!(fill, Fill::EventRef { .. }) && field.link.as_deref() == Some("intel") {
                reports = true;
            }
            // Agencies nearly always record a given name, and all but the
            // police a date of birth: the schemas stopped requiring them so
            // a row without one is accepted, not so that clean synthetic
            // rows leave them out (the error model blanks them on purpose).
            let recorded = match field.match_role {
                Some(MatchRole::Given) => true,
                Some(MatchRole::Dob) => dataset.agency_type.as_deref() != Some("police"),
                _ => false,
            };
            columns.push(Column {
                name: field.name.clone(),
                required: field.required || recorded,
                mandatory: field.required,
                match_role: field.match_role,
                concept: field.concept.clone(),
                fill,
            });
        }
        let needs =
            |pred: &dyn Fn(&Fill) -> bool| columns.iter().any(|c| c.required && pred(&c.fill));
        let needs_upn = needs(&|f| matches!(f, Fill::Upn));
        let needs_phone = needs(&|f| matches!(f, Fill::Phone { .. }));
        let needs_vrm = needs(&|f| matches!(f, Fill::Vrm { .. }));
        Ok(Plan {
            style: Style::for_agency(dataset.agency_type.as_deref()),
            columns,
            roles,
            reports,
            needs_upn,
            needs_phone,
            needs_vrm,
        })
    }
}

fn fill_for(dataset: &Dataset, field: &Field, record_prefix: &str) -> Result<Fill, SynthError> {
    let p = prop(dataset, &field.name);
    let format = field.format.as_deref();
    let time = format == Some("date-time");
    match field.concept.as_deref() {
        Some("record_ref") => {
            return Ok(Fill::RecordRef {
                prefix: record_prefix.to_owned(),
            });
        }
        Some("event_date") => return Ok(Fill::EventDate { time }),
        _ => {}
    }
    let link = field.link.is_some();
    let event_ref = || Fill::EventRef {
        prefix: field
            .link
            .as_deref()
            .unwrap_or("ref")
            .chars()
            .filter(char::is_ascii_alphabetic)
            .take(2)
            .collect::<String>()
            .to_ascii_uppercase(),
    };
    if let Some(kind) = field.identifier {
        return Ok(match kind {
            Kind::LocalRef if link => event_ref(),
            Kind::LocalRef => Fill::PersonRef,
            Kind::PersonName => match field.match_role {
                Some(MatchRole::Family) => Fill::FamilyName,
                Some(MatchRole::Given) => Fill::GivenName,
                _ => Fill::FullName,
            },
            Kind::Date => Fill::Dob,
            Kind::NhsNumber => Fill::Nhs,
            Kind::Upn => Fill::Upn,
            Kind::Postcode => Fill::Postcode,
            Kind::Email => Fill::Email,
            Kind::Phone => Fill::Phone { link },
            Kind::Vrm => Fill::Vrm { link },
            Kind::Match => Fill::Text { len: 8 },
        });
    }
    if link {
        return Ok(event_ref());
    }
    let codes = field.codes.as_deref().filter(|c| !c.is_empty());
    match (field.concept.as_deref(), codes) {
        (Some("person_role"), Some(_)) => return Ok(Fill::Role),
        (Some("sex"), Some(c)) => return Ok(Fill::Sex(SexCodes::new(field, c))),
        (Some("ethnicity"), Some(c)) => return Ok(Fill::Ethnicity(EthnicityCodes::new(field, c))),
        (Some("borough"), c) if matches!(field.ty, FieldType::String) => {
            let codes = c.map(|c| {
                BOROUGHS
                    .iter()
                    .map(|b| c.iter().position(|k| k.eq_ignore_ascii_case(b.name)))
                    .collect::<Vec<_>>()
            });
            // A code list that is not GM borough names: treat as any code list.
            match (codes, c) {
                (Some(m), Some(c)) if m.iter().any(Option::is_none) => {
                    return Ok(Fill::Code(Codes::new(field, c)));
                }
                (codes, _) => return Ok(Fill::Borough { codes }),
            }
        }
        (Some("cse_flag"), _) if field.ty == FieldType::Boolean => return Ok(Fill::Flag),
        _ => {}
    }
    Ok(match field.ty {
        FieldType::Array(item) => match codes {
            Some(c) => {
                let min = num(p, "minItems").map_or(1, |n| n.max(1.0) as usize);
                let max = num(p, "maxItems").map_or(4, |n| n as usize).max(min);
                Fill::CodeList {
                    codes: Codes::new(field, c),
                    min,
                    max,
                }
            }
            None => Fill::TextList { item },
        },
        _ if codes.is_some() => Fill::Code(Codes::new(field, codes.unwrap_or_default())),
        FieldType::Boolean => Fill::Bool,
        FieldType::Integer => {
            let min = num(p, "minimum").or_else(|| num(p, "exclusiveMinimum").map(|m| m + 1.0));
            let max = num(p, "maximum").or_else(|| num(p, "exclusiveMaximum").map(|m| m - 1.0));
            let min = min.map_or(0, |m| m.ceil() as i64);
            let max = max.map_or(min + 100, |m| m.floor() as i64).max(min);
            Fill::Integer { min, max }
        }
        FieldType::Number => {
            let min = num(p, "minimum").unwrap_or(0.0);
            let max = num(p, "maximum").unwrap_or(min + 100.0).max(min);
            Fill::Number { min, max }
        }
        FieldType::String if matches!(format, Some("date") | Some("date-time")) => {
            Fill::LaterDate { time }
        }
        FieldType::String => match p.and_then(|p| p.get("pattern")).and_then(Value::as_str) {
            Some(pattern) => match pattern_pools(dataset, field, pattern)? {
                Some(pools) => Fill::Pattern { pools },
                None => Fill::Blank,
            },
            None => {
                let min = num(p, "minLength").unwrap_or(1.0) as usize;
                let max = num(p, "maxLength").map_or(12, |m| m as usize);
                Fill::Text {
                    len: 8usize.clamp(min.max(1), max.max(1)),
                }
            }
        },
    })
}

/// Pools of values matching `pattern` (checked with the real validator), or
/// `None` for an optional field whose pattern we cannot generate.
fn pattern_pools(
    dataset: &Dataset,
    field: &Field,
    pattern: &str,
) -> Result<Option<Vec<Vec<String>>>, SynthError> {
    let unsupported = |reason: String| SynthError::Unsupported {
        dataset: dataset.id.clone(),
        field: field.name.clone(),
        reason,
    };
    let mut subschema = serde_json::Map::new();
    if let Some(p) = prop(dataset, &field.name).and_then(Value::as_object) {
        for key in ["type", "pattern", "minLength", "maxLength"] {
            if let Some(v) = p.get(key) {
                subschema.insert(key.to_owned(), v.clone());
            }
        }
    }
    let check = jsonschema::validator_for(&Value::Object(subschema))
        .map_err(|e| unsupported(format!("pattern does not compile: {e}")))?;
    let Some(ast) = regex_gen::parse(pattern) else {
        return if field.required {
            Err(unsupported(
                "pattern too complex to generate values for".into(),
            ))
        } else {
            Ok(None)
        };
    };
    let mut rng = Rng::derive(0, &format!("pattern/{}/{}", dataset.id, field.name));
    let mut pools = Vec::with_capacity(BOROUGHS.len());
    for _ in &BOROUGHS {
        let mut pool = Vec::with_capacity(25);
        let mut attempts = 0;
        while pool.len() < 25 && attempts < 2000 {
            attempts += 1;
            let v = regex_gen::generate(&ast, &mut rng);
            if check.is_valid(&Value::String(v.clone())) && !pool.contains(&v) {
                pool.push(v);
            }
        }
        if pool.is_empty() {
            return if field.required {
                Err(unsupported(
                    "could not generate a value matching the pattern".into(),
                ))
            } else {
                Ok(None)
            };
        }
        pools.push(pool);
    }
    Ok(Some(pools))
}

/// A very small generator for the regular expressions schemas use for codes
/// (`^[0-9]{6}$`, `^[A-Z]{2}[0-9]{3}$`, `^(A|B)[0-9]+$`): literals, classes
/// with ranges, `\d \w \s`, groups with `|`, and `? * + {n} {n,m}`.
/// Anything else (negated classes, look-around) is refused, and every
/// generated value is checked with the real validator anyway.
mod regex_gen {
    use super::Rng;

    #[derive(Debug)]
    pub(super) enum Node {
        Set(Vec<(char, char)>),
        Group(Vec<Vec<Item>>),
    }

    #[derive(Debug)]
    pub(super) struct Item {
        node: Node,
        min: u32,
        max: u32,
    }

    pub(super) fn parse(pattern: &str) -> Option<Vec<Vec<Item>>> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut pos = 0;
        let alts = parse_alts(&chars, &mut pos)?;
        (pos == chars.len()).then_some(alts)
    }

    fn parse_alts(c: &[char], pos: &mut usize) -> Option<Vec<Vec<Item>>> {
        let mut alts = vec![Vec::new()];
        while *pos < c.len() {
            let node = match c[*pos] {
                ')' => break,
                '|' => {
                    *pos += 1;
                    alts.push(Vec::new());
                    continue;
                }
                '^' | '$' => {
                    *pos += 1;
                    continue;
                }
                '(' => {
                    *pos += 1;
                    if c.get(*pos) == Some(&'?') {
                        // Only non-capturing groups.
                        if c.get(*pos + 1) != Some(&':') {
                            return None;
                        }
                        *pos += 2;
                    }
                    let inner = parse_alts(c, pos)?;
                    if c.get(*pos) != Some(&')') {
                        return None;
                    }
                    *pos += 1;
                    Node::Group(inner)
                }
                '[' => {
                    *pos += 1;
                    parse_class(c, pos)?
                }
                '\\' => {
                    *pos += 1;
                    let e = *c.get(*pos)?;
                    *pos += 1;
                    escape(e)?
                }
                '.' => {
                    *pos += 1;
                    Node::Set(vec![('A', 'Z')])
                }
                '*' | '+' | '?' | '{' => return None,
                ch => {
                    *pos += 1;
                    Node::Set(vec![(ch, ch)])
                }
            };
            let (min, max) = parse_quantifier(c, pos)?;
            alts.last_mut()?.push(Item { node, min, max });
        }
        Some(alts)
    }

    fn escape(e: char) -> Option<Node> {
        Some(match e {
            'd' => Node::Set(vec![('0', '9')]),
            'w' => Node::Set(vec![('A', 'Z'), ('a', 'z'), ('0', '9')]),
            's' => Node::Set(vec![(' ', ' ')]),
            'D' | 'W' | 'S' | 'b' | 'B' => return None,
            other => Node::Set(vec![(other, other)]),
        })
    }

    fn parse_class(c: &[char], pos: &mut usize) -> Option<Node> {
        if c.get(*pos) == Some(&'^') {
            return None;
        }
        let mut ranges = Vec::new();
        loop {
            let ch = *c.get(*pos)?;
            *pos += 1;
            let lo = match ch {
                ']' => break,
                '\\' => {
                    let e = *c.get(*pos)?;
                    *pos += 1;
                    match escape(e)? {
                        Node::Set(r) => {
                            ranges.extend(r);
                            continue;
                        }
                        Node::Group(_) => return None,
                    }
                }
                other => other,
            };
            if c.get(*pos) == Some(&'-') && c.get(*pos + 1).is_some_and(|&n| n != ']') {
                let hi = *c.get(*pos + 1)?;
                *pos += 2;
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        (!ranges.is_empty()).then_some(Node::Set(ranges))
    }

    fn parse_quantifier(c: &[char], pos: &mut usize) -> Option<(u32, u32)> {
        let q = match c.get(*pos) {
            Some('?') => (0, 1),
            Some('*') => (0, 3),
            Some('+') => (1, 3),
            Some('{') => {
                let close = c[*pos..].iter().position(|&x| x == '}')? + *pos;
                let body: String = c[*pos + 1..close].iter().collect();
                let (a, b) = match body.split_once(',') {
                    Some((a, "")) => {
                        let a: u32 = a.trim().parse().ok()?;
                        (a, a + 2)
                    }
                    Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
                    None => {
                        let a: u32 = body.trim().parse().ok()?;
                        (a, a)
                    }
                };
                *pos = close;
                (a, b.max(a))
            }
            _ => return Some((1, 1)),
        };
        *pos += 1;
        Some(q)
    }

    pub(super) fn generate(alts: &[Vec<Item>], rng: &mut Rng) -> String {
        let mut out = String::new();
        emit(alts, rng, &mut out);
        out
    }

    fn emit(alts: &[Vec<Item>], rng: &mut Rng, out: &mut String) {
        let Some(seq) = rng.pick(alts) else { return };
        for item in seq {
            let n = rng.between(i64::from(item.min), i64::from(item.max.min(item.min + 4)));
            for _ in 0..n {
                match &item.node {
                    Node::Set(ranges) => {
                        if let Some(&(lo, hi)) = rng.pick(ranges) {
                            let (lo, hi) = (u32::from(lo), u32::from(hi.max(lo)));
                            let code = lo + rng.below(u64::from(hi - lo) + 1) as u32;
                            out.push(char::from_u32(code).unwrap_or('0'));
                        }
                    }
                    Node::Group(inner) => emit(inner, rng, out),
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn simple_patterns() {
            let mut rng = Rng::new(1);
            let ast = parse("^[0-9]{6}$").expect("supported");
            let v = generate(&ast, &mut rng);
            assert!(v.len() == 6 && v.bytes().all(|b| b.is_ascii_digit()), "{v}");
            let ast = parse("^(AB|CD)-\\d{2,3}$").expect("supported");
            let v = generate(&ast, &mut rng);
            assert!(v.starts_with("AB-") || v.starts_with("CD-"), "{v}");
            assert!(parse("^[^0-9]+$").is_none());
        }
    }
}
