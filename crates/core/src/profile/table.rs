//! The table model every profile output is built from.
//!
//! One type serves the JSON, the CSV files, the HTML tables and charts and
//! disclosure control: a chart reads the same (possibly suppressed) cells a
//! reader sees in the table below it, so a partner edition's picture can
//! never show what its numbers hide.

use serde::ser::{Serialize, Serializer};

use crate::csv_safe::quoted;

/// One value in a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text: a label, a code's meaning, a pseudonymous id.
    Text(String),
    /// A count of people, events or records.
    Count(u64),
    /// A measured quantity (a percentage, a number of days, a score).
    Number(f64),
    /// Nothing to show (no denominator, field not in the dataset).
    Empty,
    /// Withheld by disclosure control; shown as `c`.
    Suppressed,
}

impl Cell {
    /// The count, if the cell is a shown count.
    pub fn count(&self) -> Option<u64> {
        match self {
            Cell::Count(n) => Some(*n),
            _ => None,
        }
    }

    /// A number for charts: counts and numbers; `None` for anything else.
    pub fn value(&self) -> Option<f64> {
        match self {
            Cell::Count(n) => Some(*n as f64),
            Cell::Number(x) => Some(*x),
            _ => None,
        }
    }

    /// The text shown in HTML and CSV.
    pub fn display(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Count(n) => group_thousands(*n),
            Cell::Number(x) => format_number(*x),
            Cell::Empty => String::new(),
            Cell::Suppressed => SUPPRESSED.to_owned(),
        }
    }

    /// The text written to CSV: counts without thousands separators so a
    /// spreadsheet reads them as numbers.
    pub fn csv(&self) -> String {
        match self {
            Cell::Count(n) => n.to_string(),
            other => other.display(),
        }
    }
}

/// What a suppressed cell shows (the DfE convention).
pub const SUPPRESSED: &str = "c";

/// `12,345`.
pub fn group_thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Numbers are shown with at most one decimal place: the profile's rates and
/// medians are not more precise than that.
pub fn format_number(x: f64) -> String {
    if !x.is_finite() {
        return String::new();
    }
    let r = (x * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Text(t) => s.serialize_str(t),
            Cell::Count(n) => s.serialize_u64(*n),
            Cell::Number(x) if x.is_finite() => s.serialize_f64((x * 10.0).round() / 10.0),
            Cell::Number(_) | Cell::Empty => s.serialize_none(),
            Cell::Suppressed => s.serialize_str(SUPPRESSED),
        }
    }
}

/// What a column holds, which decides how disclosure control treats it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Row labels (never suppressed).
    Label,
    /// Counts: subject to primary and secondary suppression.
    Count,
    /// A percentage computed from other columns of the row.
    Percent,
    /// Another derived number (days, a score).
    Number,
    /// Free text (codes' meanings, pseudonymous ids, dates).
    Text,
}

/// One column.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Column {
    /// Machine name (CSV header).
    pub id: String,
    /// Human label (HTML header).
    pub label: String,
    /// What it holds.
    pub kind: Kind,
    /// For derived columns: the columns (by index) the value is computed
    /// from; it is withheld whenever one of them is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub derived_from: Vec<usize>,
}

impl Column {
    /// A column of the given kind.
    pub fn new(id: &str, label: &str, kind: Kind) -> Column {
        Column {
            id: id.to_owned(),
            label: label.to_owned(),
            kind,
            derived_from: Vec::new(),
        }
    }

    /// A derived column computed from `from`.
    pub fn derived(id: &str, label: &str, kind: Kind, from: &[usize]) -> Column {
        Column {
            derived_from: from.to_vec(),
            ..Column::new(id, label, kind)
        }
    }
}

/// Which rows and columns of a table are sums of the others. Disclosure
/// control must know, because a total minus the shown cells reveals a
/// hidden one.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Margins {
    /// The index of a column holding each row's total over the other count
    /// columns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_column: Option<usize>,
    /// The last row holds each count column's total over the other rows.
    pub total_row: bool,
}

/// A table of the profile: one CSV file, one HTML table, one JSON object.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Table {
    /// Machine name; the CSV file is `<id>.csv`.
    pub id: String,
    /// Heading.
    pub title: String,
    /// What the rows count and how, in a sentence or two.
    pub description: String,
    /// Columns.
    pub columns: Vec<Column>,
    /// Rows of cells, one per column.
    pub rows: Vec<Vec<Cell>>,
    /// Stable machine names of the rows, when the rows are a fixed list
    /// (measures, tiers), so a consumer need not match on labels.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub row_ids: Vec<String>,
    /// Totals, if any.
    pub margins: Margins,
    /// Whether the counts are about people or events (subject to disclosure
    /// control in the partner edition); data-quality tables about uploads
    /// are not.
    pub disclosive: bool,
    /// Cells withheld in this edition.
    pub suppressed: usize,
}

impl Table {
    /// An empty table.
    pub fn new(id: &str, title: &str, description: &str, columns: Vec<Column>) -> Table {
        Table {
            id: id.to_owned(),
            title: title.to_owned(),
            description: description.to_owned(),
            columns,
            rows: Vec::new(),
            row_ids: Vec::new(),
            margins: Margins::default(),
            disclosive: true,
            suppressed: 0,
        }
    }

    /// The index of a column by id.
    pub fn col(&self, id: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.id == id)
    }

    /// The cell at a row id and a column id.
    pub fn get(&self, row_id: &str, col_id: &str) -> Option<&Cell> {
        let r = self.row_ids.iter().position(|r| r == row_id)?;
        self.rows.get(r)?.get(self.col(col_id)?)
    }

    /// Append a row with its id.
    pub fn push(&mut self, id: &str, row: Vec<Cell>) {
        self.row_ids.push(id.to_owned());
        self.rows.push(row);
    }

    /// Append a total row summing every count column, labelled `Total` in
    /// the first column.
    pub fn push_total_row(&mut self) {
        let mut total: Vec<Cell> = self
            .columns
            .iter()
            .map(|c| match c.kind {
                Kind::Count => Cell::Count(0),
                _ => Cell::Empty,
            })
            .collect();
        for row in &self.rows {
            for (t, c) in total.iter_mut().zip(row) {
                if let (Cell::Count(t), Cell::Count(n)) = (t, c) {
                    *t += n;
                }
            }
        }
        if let Some(first) = total.first_mut() {
            *first = Cell::Text("Total".into());
        }
        self.rows.push(total);
        if !self.row_ids.is_empty() {
            self.row_ids.push("total".into());
        }
        self.margins.total_row = true;
    }

    /// Recompute derived percentage columns of every row from their two
    /// sources (numerator, denominator); used after the total row is added.
    pub fn fill_percentages(&mut self) {
        let cols = self.columns.clone();
        for row in &mut self.rows {
            for (i, c) in cols.iter().enumerate() {
                if c.kind == Kind::Percent
                    && let [num, den] = c.derived_from[..]
                {
                    row[i] = percent(row[num].count(), row[den].count());
                }
            }
        }
    }

    /// The table as CSV (RFC 4180, header first).
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| quoted(&c.id)).collect();
        out.push_str(&header.join(","));
        out.push_str("\r\n");
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .map(|c| match c {
                    Cell::Text(_) | Cell::Suppressed => quoted(&c.csv()),
                    _ => c.csv(),
                })
                .collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

/// `num / den` as a percentage, or empty when there is no denominator.
pub fn percent(num: Option<u64>, den: Option<u64>) -> Cell {
    match (num, den) {
        (Some(n), Some(d)) if d > 0 => Cell::Number(n as f64 * 100.0 / d as f64),
        _ => Cell::Empty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_render_for_people_and_machines() {
        assert_eq!(Cell::Count(1234567).display(), "1,234,567");
        assert_eq!(Cell::Count(1234567).csv(), "1234567");
        assert_eq!(Cell::Number(12.345).display(), "12.3");
        assert_eq!(Cell::Number(12.0).display(), "12");
        assert_eq!(Cell::Suppressed.display(), "c");
        assert_eq!(
            serde_json::to_string(&vec![
                Cell::Count(3),
                Cell::Suppressed,
                Cell::Empty,
                Cell::Number(1.26)
            ])
            .expect("json"),
            r#"[3,"c",null,1.3]"#
        );
    }

    #[test]
    fn totals_percentages_and_csv() {
        let mut t = Table::new(
            "t",
            "T",
            "",
            vec![
                Column::new("label", "Label", Kind::Label),
                Column::new("a", "A", Kind::Count),
                Column::new("b", "B", Kind::Count),
                Column::derived("pct", "A of B", Kind::Percent, &[1, 2]),
            ],
        );
        t.rows.push(vec![
            Cell::Text("=x".into()),
            Cell::Count(1),
            Cell::Count(4),
            Cell::Empty,
        ]);
        t.rows.push(vec![
            Cell::Text("y".into()),
            Cell::Count(3),
            Cell::Count(0),
            Cell::Empty,
        ]);
        t.push_total_row();
        t.fill_percentages();
        assert_eq!(t.rows[2][1], Cell::Count(4));
        assert_eq!(t.rows[0][3], Cell::Number(25.0));
        assert_eq!(t.rows[1][3], Cell::Empty, "no denominator");
        assert_eq!(
            t.to_csv(),
            "\"label\",\"a\",\"b\",\"pct\"\r\n\"'=x\",1,4,25\r\n\"y\",3,0,\r\n\"Total\",4,4,100\r\n"
        );
    }
}
