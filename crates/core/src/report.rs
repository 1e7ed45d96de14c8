//! Validation reports: a constant-memory summary for people (counts per field
//! and rule with the first few row numbers, like the DfE validators) and a
//! streaming JSON report for machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::parallel::{End, available_threads, each_row_in_order};
use crate::read::{FileError, Row, RowSource};
use crate::validate::{RowError, RowValidator, cap_message};

/// How many row numbers the text summary lists per rule.
const FIRST_ROWS: usize = 5;

/// A file-level problem as reported (and as lineage records it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileProblem {
    /// Stable code, e.g. `encoding`, `missing_column`.
    pub code: String,
    /// Plain English.
    pub message: String,
}

impl From<&FileError> for FileProblem {
    fn from(e: &FileError) -> Self {
        FileProblem {
            code: e.code().to_owned(),
            message: cap_message(e.to_string()),
        }
    }
}

/// How often one rule failed on one field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleCount {
    /// Errors of this rule on this field.
    pub count: u64,
    /// The first few rows it happened on.
    pub first_rows: Vec<u64>,
    /// The first message, as an example.
    pub example: String,
}

/// Counts for one validation run; memory does not grow with the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The dataset id.
    pub dataset: String,
    /// Data rows read.
    pub rows: u64,
    /// Rows with no error.
    pub valid_rows: u64,
    /// Rows with at least one error.
    pub invalid_rows: u64,
    /// Row errors, keyed by (field, code).
    pub by_rule: BTreeMap<(String, String), RuleCount>,
    /// File-level problems (at most one stops the read).
    pub file_errors: Vec<FileProblem>,
}

impl Summary {
    /// An empty summary for `dataset`.
    pub fn new(dataset: &str) -> Self {
        Summary {
            dataset: dataset.to_owned(),
            ..Summary::default()
        }
    }

    /// Count one row and its errors.
    pub fn record_row(&mut self, errors: &[RowError]) {
        self.rows += 1;
        if errors.is_empty() {
            self.valid_rows += 1;
            return;
        }
        self.invalid_rows += 1;
        for e in errors {
            let rc = self
                .by_rule
                .entry((e.field.clone(), e.code.clone()))
                .or_default();
            rc.count += 1;
            if rc.first_rows.len() < FIRST_ROWS && rc.first_rows.last() != Some(&e.row) {
                rc.first_rows.push(e.row);
            }
            if rc.example.is_empty() {
                rc.example.clone_from(&e.message);
            }
        }
    }

    /// Record a file-level problem.
    pub fn file_error(&mut self, e: &FileError) {
        self.file_errors.push(e.into());
    }

    /// Whether the read stopped on a file-level problem.
    pub fn has_file_errors(&self) -> bool {
        !self.file_errors.is_empty()
    }

    /// The summary for people.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Dataset: {}", self.dataset);
        let _ = writeln!(
            s,
            "Rows: {}   valid: {}   invalid: {}",
            self.rows, self.valid_rows, self.invalid_rows
        );
        if !self.by_rule.is_empty() {
            let _ = writeln!(s, "\nProblems by field and rule:");
            let mut rules: Vec<_> = self.by_rule.iter().collect();
            rules.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(b.0)));
            for ((field, code), rc) in rules {
                let rows: Vec<String> = rc.first_rows.iter().map(u64::to_string).collect();
                let more = if rc.count > rc.first_rows.len() as u64 {
                    ", …"
                } else {
                    ""
                };
                let field = if field.is_empty() { "(row)" } else { field };
                let _ = writeln!(
                    s,
                    "  {field:<24} {code:<14} {:>7} error{}  rows {}{more}\n      e.g. {}",
                    rc.count,
                    if rc.count == 1 { " " } else { "s" },
                    rows.join(", "),
                    rc.example
                );
            }
        }
        if !self.file_errors.is_empty() {
            let _ = writeln!(s, "\nFile problems:");
            for f in &self.file_errors {
                let _ = writeln!(s, "  [{}] {}", f.code, f.message);
            }
        }
        if self.file_errors.is_empty() && self.invalid_rows == 0 {
            let _ = writeln!(s, "\nAll rows are valid.");
        }
        s
    }
}

/// Writes the JSON report as rows are validated, so a million errors never sit
/// in memory: `{"dataset", "errors":[…], "file_errors":[…], "rows",
/// "valid_rows", "invalid_rows"}`.
#[derive(Debug)]
pub struct JsonReportWriter<W: Write> {
    out: W,
    first: bool,
}

impl<W: Write> JsonReportWriter<W> {
    /// Start the report.
    pub fn start(mut out: W, dataset: &str) -> io::Result<Self> {
        write!(out, "{{\"dataset\":")?;
        serde_json::to_writer(&mut out, dataset)?;
        write!(out, ",\"errors\":[")?;
        Ok(JsonReportWriter { out, first: true })
    }

    /// Append one row error.
    pub fn error(&mut self, e: &RowError) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",")?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, e)?;
        Ok(())
    }

    /// Close the report with the counts and file errors.
    pub fn finish(mut self, summary: &Summary) -> io::Result<W> {
        write!(self.out, "],\"file_errors\":")?;
        serde_json::to_writer(&mut self.out, &summary.file_errors)?;
        write!(
            self.out,
            ",\"rows\":{},\"valid_rows\":{},\"invalid_rows\":{}}}",
            summary.rows, summary.valid_rows, summary.invalid_rows
        )?;
        self.out.write_all(b"\n")?;
        Ok(self.out)
    }
}

/// Validate every row of `source`, calling `on_error` for each row error, and
/// return the summary. Stops at the first file-level problem. Rows are
/// checked on every core the process may use ([`available_threads`]);
/// errors come in source order all the same.
pub fn validate_all(
    source: &mut dyn RowSource,
    validator: &RowValidator<'_>,
    mut on_error: impl FnMut(&RowError) -> io::Result<()>,
) -> io::Result<Summary> {
    let mut summary = Summary::new(&validator.dataset().id);
    let work = |row: &Row, _: &mut (), errors: &mut Vec<RowError>| {
        validator.check(row, errors);
        None::<()>
    };
    let end = each_row_in_order(source, available_threads(), &work, &mut |_,
                                                                          errors|
     -> io::Result<
        bool,
    > {
        for e in errors {
            on_error(e)?;
        }
        summary.record_row(errors);
        Ok(true)
    })?;
    if let End::FileError(e) = end {
        summary.file_error(&e);
    }
    Ok(summary)
}
