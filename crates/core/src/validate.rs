//! Row validation: the compiled JSON Schema plus the identifier canonical-form
//! checks, turned into errors a council data officer can act on.
//!
//! Every error names the row, the source line, the field, a JSON pointer and a
//! stable code. A value is quoted only when it is a short code from a field
//! that holds no identifier; identifier values are never repeated.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde::Serialize;
use serde_json::Value;

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
    /// `minimum`, `maximum`, `identifier`, `unknown_field`, `cells`, `json`, …
    pub code: String,
    /// Plain English, never quoting an identifier.
    pub message: String,
}

/// Longest value we are willing to quote back in a message.
const QUOTE_MAX: usize = 24;

/// Validates shaped rows of one dataset.
#[derive(Debug)]
pub struct RowValidator<'a> {
    dataset: &'a Dataset,
    identifiers: Vec<(&'a str, Kind)>,
}

impl<'a> RowValidator<'a> {
    /// A validator for `dataset`.
    pub fn new(dataset: &'a Dataset) -> Self {
        let identifiers = dataset
            .fields()
            .iter()
            .filter_map(|f| f.identifier.map(|k| (f.name.as_str(), k)))
            .collect();
        RowValidator {
            dataset,
            identifiers,
        }
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

    /// The row's shape and the compiled schema only (no identifier
    /// canonical forms); returns whether both passed. [`Self::check`] is this
    /// then [`Self::check_identifiers`], unless the shape is broken.
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
            out.push(RowError {
                row: row.row,
                line: row.line,
                field: String::new(),
                pointer: String::new(),
                code: code.to_owned(),
                message,
            });
            return false;
        }
        if self.dataset.validator().is_valid(&row.value) {
            return true;
        }
        for e in self.dataset.validator().iter_errors(&row.value) {
            out.push(self.describe(row, &e));
        }
        false
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
                out.push(RowError {
                    row: row.row,
                    line: row.line,
                    field: name.to_owned(),
                    pointer: format!("/{name}"),
                    code: "identifier".to_owned(),
                    message: format!("{name} is not a valid {}: {reason}", kind_noun(kind)),
                });
            }
        }
    }

    fn describe(&self, row: &Row, e: &jsonschema::ValidationError<'_>) -> RowError {
        let pointer = e.instance_path().to_string();
        let mut field_name = pointer
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("")
            .replace("~1", "/")
            .replace("~0", "~");
        let is_item = pointer.matches('/').count() > 1;
        let (code, message) = match e.kind() {
            ValidationErrorKind::Required { property } => {
                field_name = property.as_str().unwrap_or_default().to_owned();
                (
                    "required",
                    format!("{field_name} is required but is blank or missing"),
                )
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let names = unexpected.join(", ");
                field_name = unexpected.first().cloned().unwrap_or_default();
                (
                    "unknown_field",
                    format!("field {names} is not in the {} schema", self.dataset.id),
                )
            }
            other => {
                let field = self.dataset.field(&field_name);
                let subject = match (field, is_item) {
                    (Some(_), true) => format!("an item of {field_name}"),
                    _ => field_name.clone(),
                };
                let shown = quotable(field, e.instance());
                let with_value = |s: &str| match &shown {
                    Some(v) => format!("{subject} {v} {s}"),
                    None => format!("{subject} {s}"),
                };
                match other {
                    ValidationErrorKind::Enum { .. } => {
                        ("enum", with_value("is not an allowed code"))
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
        RowError {
            row: row.row,
            line: row.line,
            field: field_name,
            pointer,
            code: code.to_owned(),
            message,
        }
    }
}

/// The value in quotes when it is safe and short enough to show.
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
    (text.chars().count() <= QUOTE_MAX && !text.chars().any(char::is_control))
        .then(|| format!("{text:?}"))
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
