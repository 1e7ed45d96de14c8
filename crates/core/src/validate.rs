//! Row validation: the compiled JSON Schema plus the identifier canonical-form
//! checks and the date bounds, turned into errors a council data officer can
//! act on.
//!
//! Every error names the row, the source line, the field, a JSON pointer and a
//! stable code. Errors end up in reports, lineage and on stderr, so nothing
//! from the input reaches them but schema field names and, in a field that
//! holds no identifier, a bad value shaped like a code ([`code_shaped`]):
//! a misplaced name or phone number is described, never quoted. Unknown
//! NDJSON keys are named by position, and messages are capped at
//! [`MESSAGE_MAX`] characters.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde::Serialize;
use serde_json::Value;

use crate::profile::dates::{format_day, parse_day};
use crate::pseudo::{Kind, canonical};
use crate::read::{Row, RowShapeProblem};
use crate::schema::{Dataset, Field, FieldType, ScalarType};

/// One problem with one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// Data row number, 1-based, header excluded.
    pub row: u64,
    /// Source line the row starts on.
    pub line: u64,
    /// The field (CSV column); empty for row-level problems.
    pub field: String,
    /// JSON pointer into the row, e.g. `/assessment_factors/2`.
    pub pointer: String,
    /// Stable code: `required`, `type`, `enum`, `format`, `pattern`,
    /// `minimum`, `maximum`, `identifier`, `date_range`, `unknown_field`,
    /// `cells`, `json`, …
    pub code: String,
    /// Plain English, never quoting an identifier, at most [`MESSAGE_MAX`]
    /// characters.
    pub message: String,
}

impl RowError {
    /// An error about `row`, its message capped at [`MESSAGE_MAX`].
    pub(crate) fn new(
        row: &Row,
        field: impl Into<String>,
        pointer: impl Into<String>,
        code: &str,
        message: String,
    ) -> RowError {
        RowError {
            row: row.row,
            line: row.line,
            field: field.into(),
            pointer: pointer.into(),
            code: code.to_owned(),
            message: cap_message(message),
        }
    }
}

/// The longest message (in characters) a row or file error carries. Messages
/// are built from field names, codes and numbers, so this only bites on a
/// schema with very long names; it keeps every report line and lineage entry
/// small whatever the input.
pub const MESSAGE_MAX: usize = 300;

/// `message`, cut to [`MESSAGE_MAX`] characters (the last one `…`) when longer.
pub fn cap_message(mut message: String) -> String {
    if message.char_indices().nth(MESSAGE_MAX).is_some()
        && let Some((at, _)) = message.char_indices().nth(MESSAGE_MAX - 1)
    {
        message.truncate(at);
        message.push('…');
    }
    message
}

/// The longest bad value quoted back in a message.
pub const QUOTE_MAX: usize = 16;

/// Whether a value that failed a check has the shape of a code, and so may
/// be quoted back (`borough "Boltn" is not an allowed code`): 1 to
/// [`QUOTE_MAX`] characters, each an ASCII letter or digit or one of
/// `- _ . /`, with no run of three or more digits. A name (it has a space or
/// is long), a phone number, an NHS number, a reference or a date (all have
/// runs of digits), an email address (`@`) or a formula (`=`) is not
/// code-shaped and is described without its value.
pub fn code_shaped(text: &str) -> bool {
    let mut digits = 0;
    !text.is_empty()
        && text.len() <= QUOTE_MAX
        && text.bytes().all(|b| {
            digits = if b.is_ascii_digit() { digits + 1 } else { 0 };
            digits < 3 && (b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        })
}

/// The earliest date any `format: date` field may hold. Nothing the
/// partnership records happened before it; an earlier date is a typing
/// mistake (`1024` for `2024`) or a system's "no date" filler.
pub const EARLIEST_DATE: &str = "1900-01-01";

/// How many days after the upload's own date (UTC) a `format: date` field
/// may be: one, for an extract made late in the evening in UK summer time.
pub const FUTURE_MARGIN_DAYS: i32 = 1;

/// The dates a `format: date` field may hold: from [`EARLIEST_DATE`] to,
/// when the caller says what day it is, that day plus
/// [`FUTURE_MARGIN_DAYS`]. The core reads no clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateBounds {
    earliest: i32,
    latest: Option<i32>,
}

impl DateBounds {
    /// Only the earliest date; no upper bound.
    pub fn earliest_only() -> DateBounds {
        DateBounds {
            earliest: parse_day(EARLIEST_DATE).unwrap_or(i32::MIN),
            latest: None,
        }
    }

    /// The bounds on `today`, given as `YYYY-MM-DD` or as an RFC 3339
    /// date-time (its date is used); `None` when it is neither.
    pub fn on(today: &str) -> Option<DateBounds> {
        let day = today.get(..10).and_then(parse_day)?;
        let rest = &today[10..];
        if !(rest.is_empty() || rest.starts_with(['T', 't', ' '])) {
            return None;
        }
        Some(DateBounds {
            latest: Some(day + FUTURE_MARGIN_DAYS),
            ..DateBounds::earliest_only()
        })
    }

    /// The latest date accepted, `YYYY-MM-DD`, when there is one.
    pub fn latest(&self) -> Option<String> {
        self.latest.map(format_day)
    }
}

/// Validates shaped rows of one dataset.
#[derive(Debug)]
pub struct RowValidator<'a> {
    dataset: &'a Dataset,
    identifiers: Vec<(&'a str, Kind)>,
    /// By field index: a `format: date` field that holds no identifier (a
    /// date of birth is the canonicaliser's to check).
    is_date: Vec<bool>,
    bounds: DateBounds,
}

impl<'a> RowValidator<'a> {
    /// A validator for `dataset`, with dates bounded below only: callers that
    /// know the date use [`Self::with_date_bounds`] (ingest does, from the
    /// upload's time).
    pub fn new(dataset: &'a Dataset) -> Self {
        let identifiers = dataset
            .fields()
            .iter()
            .filter_map(|f| f.identifier.map(|k| (f.name.as_str(), k)))
            .collect();
        let is_date = dataset
            .fields()
            .iter()
            .map(|f| {
                f.format.as_deref() == Some("date")
                    && f.ty == FieldType::String
                    && !f.is_identifier()
            })
            .collect();
        RowValidator {
            dataset,
            identifiers,
            is_date,
            bounds: DateBounds::earliest_only(),
        }
    }

    /// The same validator with these date bounds.
    pub fn with_date_bounds(mut self, bounds: DateBounds) -> Self {
        self.bounds = bounds;
        self
    }

    /// The dataset being validated.
    pub fn dataset(&self) -> &'a Dataset {
        self.dataset
    }

    /// Append every problem with `row` to `out`; returns whether the row is valid.
    pub fn check(&self, row: &Row, out: &mut Vec<RowError>) -> bool {
        let before = out.len();
        if !self.check_schema(row, out) && row.problem.is_some() {
            return false;
        }
        self.check_identifiers(row, out, before);
        out.len() == before
    }

    /// The row's shape, its keys, the compiled schema and the date bounds
    /// (no identifier canonical forms); returns whether all passed.
    /// [`Self::check`] is this then [`Self::check_identifiers`], unless the
    /// shape is broken.
    pub fn check_schema(&self, row: &Row, out: &mut Vec<RowError>) -> bool {
        if let Some(problem) = &row.problem {
            let (code, message) = match problem {
                RowShapeProblem::Cells { found, expected } => (
                    "cells",
                    format!(
                        "the row has {found} cells but the header has {expected}: check for a stray comma or an unclosed quote"
                    ),
                ),
                RowShapeProblem::Json => ("json", "the line is not valid JSON".to_owned()),
                RowShapeProblem::NotObject => (
                    "json",
                    "the line is JSON but not an object with named fields".to_owned(),
                ),
            };
            out.push(RowError::new(row, "", "", code, message));
            return false;
        }
        let before = out.len();
        self.check_unknown_keys(row, out);
        if !self.dataset.validator().is_valid(&row.value) {
            for e in self.dataset.validator().iter_errors(&row.value) {
                out.push(self.describe(row, &e));
            }
        }
        self.check_dates(row, out, before);
        out.len() == before
    }

    /// One error for the NDJSON keys the schema does not have, by position.
    fn check_unknown_keys(&self, row: &Row, out: &mut Vec<RowError>) {
        let unknown = &row.unknown_keys;
        if unknown.count == 0 {
            return;
        }
        let mut list: Vec<String> = unknown.first.iter().map(usize::to_string).collect();
        if unknown.count > unknown.first.len() {
            list.push(format!("{} more", unknown.count - unknown.first.len()));
        }
        let (noun, verb) = if unknown.count == 1 {
            ("key", "is not a field")
        } else {
            ("keys", "are not fields")
        };
        out.push(RowError::new(
            row,
            "",
            "",
            "unknown_field",
            format!(
                "{noun} {} of the line {verb} of the {} schema (the key text is not shown)",
                list.join(", "),
                self.dataset.id
            ),
        ));
    }

    /// Every date field within the bounds, skipping a field that already has
    /// an error in `out[since..]` (a date that is not a date says enough).
    fn check_dates(&self, row: &Row, out: &mut Vec<RowError>, since: usize) {
        let Some(map) = row.value.as_object() else {
            return;
        };
        let fields = self.dataset.fields();
        // The CSV reader says which field each entry is (checked by a name
        // compare); other rows are looked up.
        let hints = row.fields.iter().map(Some).chain(std::iter::repeat(None));
        for ((name, value), hint) in map.iter().zip(hints) {
            let index = match hint {
                Some(&i) if fields.get(i).is_some_and(|f| f.name == *name) => Some(i),
                _ => self.dataset.field_index(name),
            };
            if !index.is_some_and(|i| self.is_date[i]) {
                continue;
            }
            let Some(day) = value.as_str().filter(|s| s.len() == 10).and_then(parse_day) else {
                continue;
            };
            let message = if day < self.bounds.earliest {
                format!(
                    "{name} is before {EARLIEST_DATE}, the earliest date accepted (value not shown)"
                )
            } else if let Some(latest) = self.bounds.latest.filter(|&l| day > l) {
                format!(
                    "{name} is after {}, the latest date accepted (today plus {FUTURE_MARGIN_DAYS} day; value not shown)",
                    format_day(latest)
                )
            } else {
                continue;
            };
            if out[since..].iter().any(|e| e.field == *name) {
                continue;
            }
            out.push(RowError::new(
                row,
                name.as_str(),
                format!("/{name}"),
                "date_range",
                message,
            ));
        }
    }

    /// Check every identifier's canonical form, skipping a field that already
    /// has an error in `out[since..]` (a type or format error says enough).
    pub fn check_identifiers(&self, row: &Row, out: &mut Vec<RowError>, since: usize) {
        for &(name, kind) in &self.identifiers {
            if let Some(Value::String(v)) = row.value.get(name)
                && let Err(reason) = canonical::canonicalise(kind, v, "")
            {
                if out[since..].iter().any(|e| e.field == name) {
                    continue;
                }
                out.push(RowError::new(
                    row,
                    name,
                    format!("/{name}"),
                    "identifier",
                    format!("{name} is not a valid {}: {reason}", kind_noun(kind)),
                ));
            }
        }
    }

    fn describe(&self, row: &Row, e: &jsonschema::ValidationError<'_>) -> RowError {
        let path = e.instance_path().to_string();
        let mut segments = path.trim_start_matches('/').split('/');
        let top = segments
            .next()
            .unwrap_or("")
            .replace("~1", "/")
            .replace("~0", "~");
        // Only a field the schema names, and item numbers within it, may
        // appear: a pointer into anything else would carry input text.
        let field = self.dataset.field(&top);
        let items: Vec<&str> = segments.collect();
        let is_item = !items.is_empty();
        let (mut field_name, pointer) = match field {
            Some(f) if items.iter().all(|s| s.bytes().all(|b| b.is_ascii_digit())) => {
                (f.name.clone(), path.clone())
            }
            Some(f) => (f.name.clone(), format!("/{}", f.name)),
            None => (String::new(), String::new()),
        };
        let (code, message) = match e.kind() {
            ValidationErrorKind::Required { property } => {
                // The name comes from the schema's `required`, not the input.
                field_name = property.as_str().unwrap_or_default().to_owned();
                (
                    "required",
                    format!("{field_name} is required but is blank or missing"),
                )
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                // The readers drop unknown keys before validation; should one
                // get here, it is counted, not named.
                field_name.clear();
                (
                    "unknown_field",
                    format!(
                        "{} fields are not in the {} schema (names not shown)",
                        unexpected.len(),
                        self.dataset.id
                    ),
                )
            }
            other => {
                let subject = match (field, is_item) {
                    (Some(_), true) => format!("an item of {field_name}"),
                    (Some(_), false) => field_name.clone(),
                    (None, _) => "the row".to_owned(),
                };
                let shown = quotable(field, e.instance());
                let with_value = |s: &str| match &shown {
                    Some(v) => format!("{subject} {v} {s}"),
                    None => format!("{subject} (value not shown) {s}"),
                };
                match other {
                    ValidationErrorKind::Enum { .. } => {
                        let base = with_value("is not an allowed code");
                        let bad = shown.is_some().then(|| plain(e.instance())).flatten();
                        let hint = field
                            .map(|f| code_hint(f, bad.as_deref(), &self.dataset.id, &base))
                            .unwrap_or_default();
                        ("enum", format!("{base}{hint}"))
                    }
                    ValidationErrorKind::Type { kind } => (
                        "type",
                        with_value(&format!("must be {}", type_noun(field, kind, is_item))),
                    ),
                    ValidationErrorKind::Format { format } => (
                        "format",
                        with_value(&match format.as_str() {
                            "date" => "is not a valid date (use YYYY-MM-DD)".to_owned(),
                            f => format!("is not a valid {f}"),
                        }),
                    ),
                    ValidationErrorKind::Pattern { .. } => {
                        ("pattern", with_value("is not in the expected form"))
                    }
                    ValidationErrorKind::Minimum { limit } => (
                        "minimum",
                        with_value(&format!("is below the minimum of {limit}")),
                    ),
                    ValidationErrorKind::Maximum { limit } => (
                        "maximum",
                        with_value(&format!("is above the maximum of {limit}")),
                    ),
                    ValidationErrorKind::MaxLength { limit } => (
                        "max_length",
                        format!("{subject} is longer than {limit} characters"),
                    ),
                    ValidationErrorKind::MinLength { limit } => (
                        "min_length",
                        format!("{subject} is shorter than {limit} characters"),
                    ),
                    ValidationErrorKind::UniqueItems => (
                        "unique_items",
                        format!("{subject} lists the same code twice"),
                    ),
                    ValidationErrorKind::MinItems { limit } => (
                        "min_items",
                        format!("{subject} needs at least {limit} items"),
                    ),
                    ValidationErrorKind::MaxItems { limit } => (
                        "max_items",
                        format!("{subject} may have at most {limit} items"),
                    ),
                    other => {
                        let kw = other.keyword();
                        (kw, format!("{subject} breaks the schema rule `{kw}`"))
                    }
                }
            }
        };
        RowError::new(row, field_name, pointer, code, message)
    }
}

/// How many of the closest codes a long code list suggests.
const CLOSEST: usize = 3;

/// What to write instead of a bad code, to append to `base` (the message so
/// far): every allowed code with its meaning from the schema's `x-codes`
/// when they all fit in [`MESSAGE_MAX`]; else, when the bad value is shown
/// (`bad`), the [`CLOSEST`] codes nearest to it (edit distance to the code
/// or its meaning, ignoring case), else the first codes that fit; a long
/// list also names its size and where to read it. Everything here comes
/// from the schema, never the input: a value that is not shown does not
/// steer the choice, so the hint cannot reveal it.
fn code_hint(field: &Field, bad: Option<&str>, dataset: &str, base: &str) -> String {
    let Some(codes) = field.codes.as_ref().filter(|c| !c.is_empty()) else {
        return String::new();
    };
    // A meaning that repeats its code (`Bolton (E08000001)` for `Bolton`)
    // is shown once.
    let label = |c: &String| match field.meanings.get(c) {
        Some(m) if m.starts_with(c.as_str()) => m.clone(),
        Some(m) => format!("{c} ({m})"),
        None => c.clone(),
    };
    let fits = |s: &str| base.chars().count() + s.chars().count() <= MESSAGE_MAX;
    let all: Vec<String> = codes.iter().map(label).collect();
    let whole = format!(": use {}", join_or(&all));
    if fits(&whole) {
        return whole;
    }
    let (intro, mut picks): (String, Vec<String>) = match bad {
        Some(bad) => {
            let bad = bad.to_lowercase();
            let mut ranked: Vec<(usize, usize, &String)> = codes
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let to_code = edit_distance(&bad, &c.to_lowercase());
                    let to_meaning = field
                        .meanings
                        .get(c)
                        .map_or(usize::MAX, |m| edit_distance(&bad, &m.to_lowercase()));
                    (to_code.min(to_meaning), i, c)
                })
                .collect();
            ranked.sort();
            (
                "; closest".to_owned(),
                ranked
                    .into_iter()
                    .take(CLOSEST)
                    .map(|(_, _, c)| label(c))
                    .collect(),
            )
        }
        None => (
            "; e.g.".to_owned(),
            all.iter().take(CLOSEST).cloned().collect(),
        ),
    };
    let tail = format!(" ({} codes: agencylink schema {dataset})", codes.len());
    while !picks.is_empty() {
        let hint = format!("{intro} {}{tail}", picks.join(", "));
        if fits(&hint) {
            return hint;
        }
        picks.pop();
    }
    if fits(&tail) { tail } else { String::new() }
}

/// `a, b or c`.
fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A scalar as text (for ranking a shown value against the codes).
fn plain(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The value in quotes when its field holds no identifier and it is
/// [`code_shaped`].
fn quotable(field: Option<&Field>, v: &Value) -> Option<String> {
    let field = field?;
    if field.is_identifier() {
        return None;
    }
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    code_shaped(&text).then(|| format!("\"{text}\""))
}

fn type_noun(field: Option<&Field>, kind: &TypeKind, is_item: bool) -> String {
    let scalar = |t: ScalarType| match t {
        ScalarType::String => "text",
        ScalarType::Integer => "a whole number",
        ScalarType::Number => "a number",
        ScalarType::Boolean => "true or false (yes/no, y/n, 1/0 also work)",
    };
    match field.map(|f| f.ty) {
        Some(FieldType::Array(t)) if is_item => scalar(t).to_owned(),
        Some(FieldType::Array(_)) => "a list (separate items with ;)".to_owned(),
        Some(FieldType::String) => scalar(ScalarType::String).to_owned(),
        Some(FieldType::Integer) => scalar(ScalarType::Integer).to_owned(),
        Some(FieldType::Number) => scalar(ScalarType::Number).to_owned(),
        Some(FieldType::Boolean) => scalar(ScalarType::Boolean).to_owned(),
        None => match kind {
            TypeKind::Single(t) => format!("of type {t}"),
            TypeKind::Multiple(_) => "of another type".to_owned(),
        },
    }
}

/// How an identifier kind is named to a data officer.
pub fn kind_noun(kind: Kind) -> &'static str {
    match kind {
        Kind::NhsNumber => "NHS number",
        Kind::PersonName => "name",
        Kind::Date => "date",
        Kind::Postcode => "postcode",
        Kind::Phone => "phone number",
        Kind::Email => "email address",
        Kind::Vrm => "vehicle registration",
        Kind::LocalRef => "reference",
        Kind::Upn => "UPN",
        Kind::Match => "match key",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::read::{self, FileError, InputFormat};

    const SCHEMA: &str = r#"{
      "$schema": "https://json-schema.org/draft/2020-12/schema",
      "type": "object", "additionalProperties": false,
      "required": ["record_ref", "event_date"],
      "properties": {
        "record_ref": {"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"},
        "event_date": {"type": "string", "format": "date", "x-concept": "event_date"},
        "end_date": {"type": "string", "format": "date"},
        "dob": {"type": "string", "x-identifier": "date"},
        "borough": {"type": "string", "enum": ["Bolton", "Bury"], "x-concept": "borough"},
        "cse_flag": {"type": "boolean", "x-concept": "cse_flag"},
        "n": {"type": "integer", "minimum": 0, "maximum": 20}
      }
    }"#;

    /// A small dataset with a code list, a boolean, a bounded number, an
    /// identifier and two date fields (also used by the ingest tests).
    pub(crate) fn ds() -> Dataset {
        Dataset::parse("test.validate.v1.schema.json", SCHEMA).expect("valid schema")
    }

    /// Every error of every row of `text`, validated as on 2026-07-01.
    fn errors(format: InputFormat, text: &str) -> Vec<RowError> {
        let d = ds();
        let bounds = DateBounds::on("2026-07-01T23:30:00Z").expect("a date");
        let v = RowValidator::new(&d).with_date_bounds(bounds);
        let mut src = read::open(format, text.as_bytes(), &d);
        let mut out = Vec::new();
        while let Some(row) = src.next_row() {
            v.check(row.expect("row"), &mut out);
        }
        out
    }

    fn assert_no_trace(errors: &[RowError], secrets: &[&str]) {
        let text = serde_json::to_string(errors).expect("json");
        for s in secrets {
            assert!(!text.contains(s), "{s:?} leaked: {text}");
        }
    }

    #[test]
    fn code_shapes() {
        for yes in ["Boltn", "XX", "10A", "-5", "maybe", "a.b/c_d-e", "99"] {
            assert!(code_shaped(yes), "{yes:?}");
        }
        for no in [
            "",
            "Jane Doe",
            "07700 900123",
            "07700900123",
            "9434765919",
            "2024-13-45",
            "jd@example.org",
            "=1+2",
            "AVeryLongCodeWord",
            "A\tB",
            "Zoë",
        ] {
            assert!(!code_shaped(no), "{no:?}");
        }
    }

    #[test]
    fn messages_are_capped() {
        let long = "x".repeat(MESSAGE_MAX * 3);
        let capped = cap_message(long);
        assert_eq!(capped.chars().count(), MESSAGE_MAX);
        assert!(capped.ends_with('…'));
        let exact = "é".repeat(MESSAGE_MAX);
        assert_eq!(cap_message(exact.clone()), exact);
    }

    #[test]
    fn bad_values_are_quoted_only_when_code_shaped() {
        let errs = errors(
            InputFormat::Csv,
            "record_ref,event_date,borough,cse_flag,n\n\
             R1,2026-01-01,Jane Doe,07700 900123,250\n\
             R2,2026-01-01,Boltn,maybe,-5\n",
        );
        assert_no_trace(&errs, &["Jane", "Doe", "07700", "900123", "250"]);
        let msg = |row: u64, field: &str| {
            errs.iter()
                .find(|e| e.row == row && e.field == field)
                .map(|e| e.message.clone())
                .unwrap_or_else(|| panic!("no error on row {row} {field}: {errs:?}"))
        };
        assert_eq!(
            msg(1, "borough"),
            "borough (value not shown) is not an allowed code: use Bolton or Bury"
        );
        assert!(msg(1, "cse_flag").starts_with("cse_flag (value not shown) must be true or false"));
        assert_eq!(
            msg(1, "n"),
            "n (value not shown) is above the maximum of 20"
        );
        assert_eq!(
            msg(2, "borough"),
            "borough \"Boltn\" is not an allowed code: use Bolton or Bury"
        );
        assert!(msg(2, "cse_flag").starts_with("cse_flag \"maybe\" must be"));
        assert_eq!(msg(2, "n"), "n \"-5\" is below the minimum of 0");
    }

    /// Each message about `field` when `value` is in it, in a real schema.
    fn code_messages(dataset: &str, field: &str, values: &[&str]) -> Vec<String> {
        let catalog = crate::schema::Catalog::embedded().expect("catalog");
        let d = catalog.get(dataset).expect("dataset");
        let v = RowValidator::new(d);
        let mut text = String::new();
        for value in values {
            text.push_str(&serde_json::json!({ field: value }).to_string());
            text.push('\n');
        }
        let mut src = read::open(InputFormat::Ndjson, text.as_bytes(), d);
        let mut out = Vec::new();
        while let Some(row) = src.next_row() {
            v.check(row.expect("row"), &mut out);
        }
        out.into_iter()
            .filter(|e| e.field == field && e.code == "enum")
            .map(|e| e.message)
            .collect()
    }

    #[test]
    fn a_bad_code_names_the_allowed_ones_with_their_meanings() {
        let sex = code_messages("council.cin_referral", "sex", &["3", "Male"]);
        assert_eq!(
            sex,
            [
                "sex \"3\" is not an allowed code: use 0 (Not recorded), 1 (Male), 2 (Female) or 9 (Indeterminate)",
                "sex \"Male\" is not an allowed code: use 0 (Not recorded), 1 (Male), 2 (Female) or 9 (Indeterminate)",
            ]
        );
        // A long list: the closest codes to the value shown, by code or meaning.
        let eth = code_messages(
            "council.cin_referral",
            "ethnicity",
            &["WBR", "Pakistani", "Jane Doe 07700 900123"],
        );
        assert_eq!(
            eth[0],
            "ethnicity \"WBR\" is not an allowed code; closest WBRI (White British), WIRI (White Irish), WIRT (Traveller of Irish heritage) (20 codes: agencylink schema council.cin_referral)"
        );
        assert!(
            eth[1].starts_with(
                "ethnicity \"Pakistani\" is not an allowed code; closest APKN (Pakistani), "
            ),
            "{}",
            eth[1]
        );
        // A value not shown does not steer the hint: the list's first codes.
        assert_eq!(
            eth[2],
            "ethnicity (value not shown) is not an allowed code; e.g. WBRI (White British), WIRI (White Irish), WIRT (Traveller of Irish heritage) (20 codes: agencylink schema council.cin_referral)"
        );
        for m in sex.iter().chain(&eth) {
            assert!(m.chars().count() <= MESSAGE_MAX, "{m}");
            assert!(!m.contains("Jane") && !m.contains("07700"), "{m}");
        }
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("wbr", "wbri"), 1);
        assert_eq!(join_or(&["a".into(), "b".into(), "c".into()]), "a, b or c");
    }

    #[test]
    fn unknown_ndjson_keys_are_reported_by_position_only() {
        let errs = errors(
            InputFormat::Ndjson,
            "{\"record_ref\":\"R1\",\"Jane Smith 9434765919\":1,\"event_date\":\"2026-01-01\",\"x\":null}\n\
             {\"a1\":1,\"a2\":2,\"a3\":3,\"a4\":4,\"a5\":5,\"a6\":6,\"a7\":7,\"record_ref\":\"R2\",\"event_date\":\"2026-01-01\"}\n",
        );
        assert_no_trace(&errs, &["Jane", "Smith", "9434765919", "a1", "a7"]);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(
            (
                errs[0].code.as_str(),
                errs[0].field.as_str(),
                errs[0].pointer.as_str()
            ),
            ("unknown_field", "", "")
        );
        assert!(
            errs[0]
                .message
                .starts_with("keys 2, 4 of the line are not fields"),
            "{}",
            errs[0].message
        );
        assert!(
            errs[1]
                .message
                .starts_with("keys 1, 2, 3, 4, 5, 2 more of the line"),
            "{}",
            errs[1].message
        );
    }

    #[test]
    fn a_headerless_csv_names_no_cell() {
        let d = ds();
        let unknown = |column| FileError::UnknownColumn {
            column,
            dataset: d.id.clone(),
        };
        for (first, expected) in [
            ("R1,2026-01-01,Jane Doe".to_owned(), unknown(1)),
            (
                format!("record_ref,event_date,{}", "J".repeat(1 << 19)),
                unknown(3),
            ),
            // Past the row limit the header is refused before it is read whole.
            (
                format!("record_ref,event_date,{}", "J".repeat(2 << 20)),
                FileError::RowTooLong {
                    line: 1,
                    limit_mib: read::MAX_ROW_BYTES >> 20,
                },
            ),
        ] {
            let text = format!("{first}\nR2,2026-01-02,Bury\n");
            let mut src = read::open(InputFormat::Csv, text.as_bytes(), &d);
            let Some(Err(e)) = src.next_row() else {
                panic!("expected a file error");
            };
            assert_eq!(e, expected);
            let problem = crate::report::FileProblem::from(&e);
            assert!(problem.message.len() < 400);
            for s in ["R1", "Jane", "JJJ"] {
                assert!(!problem.message.contains(s), "{}", problem.message);
            }
        }
    }

    #[test]
    fn dates_are_bounded() {
        let errs = errors(
            InputFormat::Csv,
            "record_ref,event_date,end_date\n\
             R1,9999-12-31,\n\
             R2,1850-06-01,\n\
             R3,2026-07-02,1899-12-31\n\
             R4,1900-01-01,2026-07-03\n\
             R5,2026-02-30,\n",
        );
        let got: Vec<(u64, &str, &str)> = errs
            .iter()
            .map(|e| (e.row, e.field.as_str(), e.code.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (1, "event_date", "date_range"),
                (2, "event_date", "date_range"),
                (3, "end_date", "date_range"),
                (4, "end_date", "date_range"),
                (5, "event_date", "format"),
            ]
        );
        assert_eq!(
            errs[0].message,
            "event_date is after 2026-07-02, the latest date accepted (today plus 1 day; value not shown)"
        );
        assert_eq!(
            errs[1].message,
            "event_date is before 1900-01-01, the earliest date accepted (value not shown)"
        );
        assert_no_trace(&errs, &["9999", "1850", "1899", "2026-07-03"]);
    }

    #[test]
    fn date_bounds_need_a_date() {
        let b = DateBounds::on("2026-12-31").expect("a date");
        assert_eq!(b.latest().as_deref(), Some("2027-01-01"));
        assert_eq!(
            DateBounds::on("2024-02-28T23:59:59Z").and_then(|b| b.latest()),
            Some("2024-02-29".to_owned())
        );
        for bad in ["", "now", "2026-02-30", "2026-07-01junk"] {
            assert_eq!(DateBounds::on(bad), None, "{bad:?}");
        }
        assert_eq!(DateBounds::earliest_only().latest(), None);
    }
}
