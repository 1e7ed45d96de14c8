//! Disclosure control for the partner edition: counts of 1 to 5 are shown
//! as `c` (primary suppression, the DfE convention), and further cells are
//! withheld (secondary suppression) so that no row or column total, and no
//! combination of them, gives a withheld count back.
//!
//! # The algorithm
//!
//! A table's counts form a grid with optional margins: a total column (each
//! row's total), a total row (each column's total) and, when both are
//! there, the grand total. Every shown total is an equation a reader can
//! use: *total − the shown cells = the sum of the hidden cells*.
//!
//! 1. **Primary.** Every entry (cells and totals) from `min` to `max`
//!    (1 to 5) is hidden. Zeros are shown: "none" discloses nothing about a
//!    person.
//! 2. **Lines.** A line is a row with its total, a column with its total,
//!    the total row with the grand total, or the total column with the
//!    grand total (each only when that total is shown in the table). A line
//!    with exactly one hidden entry gives it away, so one more entry of the
//!    line is hidden, chosen by these preferences in turn:
//!    an inner cell rather than a total (totals are repeated elsewhere in
//!    the profile, where hiding them would not help); a non-zero cell
//!    rather than a zero; a cell whose crossing line already has a hidden
//!    entry (so no new line is opened) rather than one that opens one; the
//!    smallest value; the first in reading order. Lines are visited rows
//!    first, then columns, then the margins, until none has exactly one.
//! 3. **Equations.** Lines with two hidden entries can still combine:
//!    two hidden rectangles joined by one cell give that cell away (sum of
//!    two rows minus two columns). So the whole system of sum equations is
//!    reduced (Gaussian elimination) and every hidden entry whose value the
//!    system fixes gets one more complement in its row (or column), by the
//!    same preferences; then step 2 and 3 run again until nothing is fixed.
//!
//! Limits, stated in the report: the check is over one table's sums; the
//! knowledge that counts are non-negative whole numbers is not used (it can
//! narrow a hidden cell to a range but, after step 3, never to one value
//! unless that value is 0); and figures repeated across tables are kept
//! consistent by hiding totals only where they are small themselves.

use super::table::{Cell, Kind, Table};

/// Which counts are hidden outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Rule {
    /// Smallest count hidden (1).
    pub min: u64,
    /// Largest count hidden (5).
    pub max: u64,
}

impl Default for Rule {
    fn default() -> Self {
        Rule { min: 1, max: 5 }
    }
}

impl Rule {
    fn primary(&self, v: u64) -> bool {
        (self.min..=self.max).contains(&v)
    }
}

/// A grid of counts with its margins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grid {
    /// Inner cells, row by row (all rows the same length).
    pub cells: Vec<Vec<u64>>,
    /// Each row's total, when shown.
    pub row_totals: Option<Vec<u64>>,
    /// Each column's total, when shown.
    pub col_totals: Option<Vec<u64>>,
    /// The grand total, when shown (only with both margins).
    pub grand_total: Option<u64>,
}

/// Which entries of a [`Grid`] are hidden.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hidden {
    /// Inner cells.
    pub cells: Vec<Vec<bool>>,
    /// Row totals (empty when the grid has none).
    pub row_totals: Vec<bool>,
    /// Column totals (empty when the grid has none).
    pub col_totals: Vec<bool>,
    /// The grand total.
    pub grand_total: bool,
}

/// One entry of the grid, flattened.
#[derive(Debug, Clone, Copy)]
struct Entry {
    value: u64,
    margin: bool,
    /// Lines the entry is on (at most two).
    lines: [Option<usize>; 2],
}

/// The grid as entries and lines (each line: its entries, the total last).
struct Layout {
    rows: usize,
    cols: usize,
    entries: Vec<Entry>,
    lines: Vec<Vec<usize>>,
}

impl Layout {
    fn new(g: &Grid) -> Layout {
        let rows = g.cells.len();
        let cols = g.cells.first().map_or(0, Vec::len);
        let mut entries: Vec<Entry> = Vec::new();
        for row in &g.cells {
            for &v in row {
                entries.push(Entry {
                    value: v,
                    margin: false,
                    lines: [None, None],
                });
            }
        }
        let cell = |r: usize, c: usize| r * cols + c;
        let mut lines: Vec<Vec<usize>> = Vec::new();
        let mut push_line = |entries: &mut Vec<Entry>, members: Vec<usize>| {
            let id = lines.len();
            for &m in &members {
                let e = &mut entries[m];
                if e.lines[0].is_none() {
                    e.lines[0] = Some(id);
                } else {
                    e.lines[1] = Some(id);
                }
            }
            lines.push(members);
        };
        let row_total_at = g.row_totals.as_ref().map(|rt| {
            let start = entries.len();
            for &v in rt {
                entries.push(Entry {
                    value: v,
                    margin: true,
                    lines: [None, None],
                });
            }
            start
        });
        let col_total_at = g.col_totals.as_ref().map(|ct| {
            let start = entries.len();
            for &v in ct {
                entries.push(Entry {
                    value: v,
                    margin: true,
                    lines: [None, None],
                });
            }
            start
        });
        let grand_at = match (&g.row_totals, &g.col_totals, g.grand_total) {
            (Some(_), Some(_), Some(v)) => {
                entries.push(Entry {
                    value: v,
                    margin: true,
                    lines: [None, None],
                });
                Some(entries.len() - 1)
            }
            _ => None,
        };
        if let Some(rt) = row_total_at {
            for r in 0..rows {
                let mut m: Vec<usize> = (0..cols).map(|c| cell(r, c)).collect();
                m.push(rt + r);
                push_line(&mut entries, m);
            }
        }
        if let Some(ct) = col_total_at {
            for c in 0..cols {
                let mut m: Vec<usize> = (0..rows).map(|r| cell(r, c)).collect();
                m.push(ct + c);
                push_line(&mut entries, m);
            }
        }
        if let Some(gt) = grand_at {
            if let Some(ct) = col_total_at {
                let mut m: Vec<usize> = (0..cols).map(|c| ct + c).collect();
                m.push(gt);
                push_line(&mut entries, m);
            }
            if let Some(rt) = row_total_at {
                let mut m: Vec<usize> = (0..rows).map(|r| rt + r).collect();
                m.push(gt);
                push_line(&mut entries, m);
            }
        }
        Layout {
            rows,
            cols,
            entries,
            lines,
        }
    }

    fn hidden_in(&self, line: usize, hidden: &[bool]) -> usize {
        self.lines[line].iter().filter(|&&e| hidden[e]).count()
    }

    /// The best shown entry of `line` to hide as a complement (the
    /// preferences in the module documentation), if any.
    fn complement(&self, line: usize, hidden: &[bool]) -> Option<usize> {
        self.lines[line]
            .iter()
            .copied()
            .filter(|&e| !hidden[e])
            .min_by_key(|&e| {
                let entry = &self.entries[e];
                let opens = entry
                    .lines
                    .iter()
                    .flatten()
                    .filter(|&&l| l != line)
                    .any(|&l| self.hidden_in(l, hidden) == 0);
                (entry.margin, entry.value == 0, opens, entry.value, e)
            })
    }

    /// Step 2: until no line has exactly one hidden entry.
    fn close_lines(&self, hidden: &mut [bool]) {
        loop {
            let mut changed = false;
            for line in 0..self.lines.len() {
                if self.hidden_in(line, hidden) == 1
                    && let Some(e) = self.complement(line, hidden)
                {
                    hidden[e] = true;
                    changed = true;
                }
            }
            if !changed {
                return;
            }
        }
    }

    /// Hidden entries whose value the shown entries and the sum equations
    /// fix (step 3's test).
    fn fixed(&self, hidden: &[bool]) -> Vec<usize> {
        let unknowns: Vec<usize> = (0..self.entries.len()).filter(|&e| hidden[e]).collect();
        if unknowns.is_empty() {
            return Vec::new();
        }
        let col_of: std::collections::HashMap<usize, usize> =
            unknowns.iter().enumerate().map(|(i, &e)| (e, i)).collect();
        // Each line says: sum of its inner entries − its total = 0. Only
        // the hidden entries' coefficients matter for which are fixed.
        let mut m: Vec<Vec<f64>> = self
            .lines
            .iter()
            .filter_map(|members| {
                let mut row = vec![0.0; unknowns.len()];
                let last = members.len() - 1;
                let mut any = false;
                for (k, &e) in members.iter().enumerate() {
                    if let Some(&c) = col_of.get(&e) {
                        row[c] = if k == last { -1.0 } else { 1.0 };
                        any = true;
                    }
                }
                any.then_some(row)
            })
            .collect();
        // Reduced row echelon form.
        let n = unknowns.len();
        let mut pivots: Vec<(usize, usize)> = Vec::new();
        let mut r = 0;
        for c in 0..n {
            let Some(p) = (r..m.len()).max_by(|&a, &b| m[a][c].abs().total_cmp(&m[b][c].abs()))
            else {
                break;
            };
            if m[p][c].abs() < 1e-9 {
                continue;
            }
            m.swap(r, p);
            let piv = m[r][c];
            for x in &mut m[r] {
                *x /= piv;
            }
            let pivot_row = m[r].clone();
            for (i, row) in m.iter_mut().enumerate() {
                if i != r && row[c].abs() > 1e-12 {
                    let f = row[c];
                    for (x, p) in row.iter_mut().zip(&pivot_row) {
                        *x -= f * p;
                    }
                }
            }
            pivots.push((r, c));
            r += 1;
            if r == m.len() {
                break;
            }
        }
        // An unknown is fixed when its pivot row has no other non-zero
        // coefficient (no free unknown it could trade value with).
        pivots
            .into_iter()
            .filter(|&(row, c)| (0..n).all(|j| j == c || m[row][j].abs() < 1e-9))
            .map(|(_, c)| unknowns[c])
            .collect()
    }
}

/// Hide what must be hidden in `grid` under `rule` (steps 1 to 3).
pub fn suppress(grid: &Grid, rule: Rule) -> Hidden {
    let layout = Layout::new(grid);
    let mut hidden: Vec<bool> = layout
        .entries
        .iter()
        .map(|e| rule.primary(e.value))
        .collect();
    loop {
        layout.close_lines(&mut hidden);
        let fixed = layout.fixed(&hidden);
        let Some(&e) = fixed.first() else { break };
        // Open a second route around the fixed entry: a complement in one
        // of its lines. If neither line has a shown entry left, nothing more
        // can be done (cannot happen: the entry would not be fixed).
        let extra = layout.entries[e]
            .lines
            .iter()
            .flatten()
            .find_map(|&l| layout.complement(l, &hidden));
        match extra {
            Some(x) => hidden[x] = true,
            None => break,
        }
    }
    unflatten(&layout, grid, &hidden)
}

/// Hidden entries of `grid` that its shown entries and totals give away
/// (empty when disclosure control worked). Used by the tests, and useful to
/// audit a hand-suppressed table.
pub fn revealed(grid: &Grid, hidden: &Hidden) -> Vec<String> {
    let layout = Layout::new(grid);
    let flat = flatten(&layout, grid, hidden);
    let names = entry_names(&layout, grid);
    let mut out: Vec<String> = layout
        .fixed(&flat)
        .into_iter()
        .map(|e| names[e].clone())
        .collect();
    // A line with one hidden entry is caught above too; say so plainly.
    out.sort();
    out
}

fn entry_names(layout: &Layout, grid: &Grid) -> Vec<String> {
    let mut names = Vec::new();
    for r in 0..layout.rows {
        for c in 0..layout.cols {
            names.push(format!("cell({r},{c})"));
        }
    }
    if let Some(rt) = &grid.row_totals {
        for r in 0..rt.len() {
            names.push(format!("row_total({r})"));
        }
    }
    if let Some(ct) = &grid.col_totals {
        for c in 0..ct.len() {
            names.push(format!("col_total({c})"));
        }
    }
    names.push("grand_total".into());
    names
}

fn flatten(layout: &Layout, grid: &Grid, hidden: &Hidden) -> Vec<bool> {
    let mut flat = Vec::with_capacity(layout.entries.len());
    for r in 0..layout.rows {
        for c in 0..layout.cols {
            flat.push(hidden.cells.get(r).and_then(|x| x.get(c)).copied() == Some(true));
        }
    }
    // Totals follow the grid's own lengths, as the layout's entries do: a
    // table with no data rows still has a total per column.
    if let Some(rt) = &grid.row_totals {
        for r in 0..rt.len() {
            flat.push(hidden.row_totals.get(r).copied() == Some(true));
        }
    }
    if let Some(ct) = &grid.col_totals {
        for c in 0..ct.len() {
            flat.push(hidden.col_totals.get(c).copied() == Some(true));
        }
    }
    if flat.len() < layout.entries.len() {
        flat.push(hidden.grand_total);
    }
    flat
}

fn unflatten(layout: &Layout, grid: &Grid, flat: &[bool]) -> Hidden {
    let mut it = flat.iter().copied();
    let mut h = Hidden::default();
    for _ in 0..layout.rows {
        h.cells
            .push((0..layout.cols).map(|_| it.next() == Some(true)).collect());
    }
    if let Some(rt) = &grid.row_totals {
        h.row_totals = rt.iter().map(|_| it.next() == Some(true)).collect();
    }
    if let Some(ct) = &grid.col_totals {
        h.col_totals = ct.iter().map(|_| it.next() == Some(true)).collect();
    }
    h.grand_total = it.next() == Some(true);
    h
}

/// A table's count columns as a grid: the inner columns, the total column
/// and the number of data rows (the rest is the total row).
struct Shape {
    inner: Vec<usize>,
    total_col: Option<usize>,
    data_rows: usize,
}

impl Shape {
    fn of(table: &Table) -> Shape {
        let total_col = table.margins.total_column.filter(|&c| {
            table
                .columns
                .get(c)
                .is_some_and(|col| col.kind == Kind::Count)
        });
        let inner = table
            .columns
            .iter()
            .enumerate()
            .filter(|(i, c)| c.kind == Kind::Count && Some(*i) != total_col)
            .map(|(i, _)| i)
            .collect();
        let n = table.rows.len();
        Shape {
            inner,
            total_col,
            data_rows: if table.margins.total_row && n > 0 {
                n - 1
            } else {
                n
            },
        }
    }

    /// The grid, reading each cell with `value`.
    fn grid<T>(&self, table: &Table, value: impl Fn(&Cell) -> T) -> Parts<T> {
        let rows = &table.rows;
        let cells = rows[..self.data_rows]
            .iter()
            .map(|row| self.inner.iter().map(|&c| value(&row[c])).collect())
            .collect();
        let row_totals = self.total_col.map(|t| {
            rows[..self.data_rows]
                .iter()
                .map(|row| value(&row[t]))
                .collect()
        });
        let has_total_row = self.data_rows < rows.len();
        let col_totals = has_total_row.then(|| {
            self.inner
                .iter()
                .map(|&c| value(&rows[self.data_rows][c]))
                .collect()
        });
        let grand = match self.total_col {
            Some(t) if has_total_row => Some(value(&rows[self.data_rows][t])),
            _ => None,
        };
        Parts {
            cells,
            row_totals,
            col_totals,
            grand,
        }
    }
}

/// One value per grid entry: inner cells and the margins there are.
struct Parts<T> {
    cells: Vec<Vec<T>>,
    row_totals: Option<Vec<T>>,
    col_totals: Option<Vec<T>>,
    grand: Option<T>,
}

/// Apply disclosure control to a table in place: its count columns become
/// a [`Grid`] (with the margins it declares), hidden counts become
/// [`Cell::Suppressed`], and every derived column computed from a hidden
/// count is withheld too. Tables not marked disclosive are left alone.
pub fn apply(table: &mut Table, rule: Rule) {
    if !table.disclosive {
        return;
    }
    let shape = Shape::of(table);
    let parts = shape.grid(table, |c| c.count().unwrap_or(0));
    let grid = Grid {
        cells: parts.cells,
        row_totals: parts.row_totals,
        col_totals: parts.col_totals,
        grand_total: parts.grand,
    };
    let hidden = suppress(&grid, rule);
    let Shape {
        inner,
        total_col,
        data_rows,
    } = shape;
    let n_rows = table.rows.len();
    let mut hide = |r: usize, c: usize| {
        // Only shown counts can be hidden: an empty cell stays empty.
        if matches!(table.rows[r][c], Cell::Count(_)) {
            table.rows[r][c] = Cell::Suppressed;
        }
    };
    for r in 0..data_rows {
        for (k, &c) in inner.iter().enumerate() {
            if hidden.cells[r][k] {
                hide(r, c);
            }
        }
        if let Some(t) = total_col
            && hidden.row_totals.get(r).copied() == Some(true)
        {
            hide(r, t);
        }
    }
    if data_rows < n_rows {
        for (k, &c) in inner.iter().enumerate() {
            if hidden.col_totals.get(k).copied() == Some(true) {
                hide(data_rows, c);
            }
        }
        if let Some(t) = total_col
            && hidden.grand_total
        {
            hide(data_rows, t);
        }
    }
    let derived: Vec<(usize, Vec<usize>)> = table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.derived_from.is_empty())
        .map(|(i, c)| (i, c.derived_from.clone()))
        .collect();
    for row in &mut table.rows {
        for (i, from) in &derived {
            if from.iter().any(|&f| row[f] == Cell::Suppressed) && row[*i] != Cell::Empty {
                row[*i] = Cell::Suppressed;
            }
        }
    }
    table.suppressed = table
        .rows
        .iter()
        .flatten()
        .filter(|c| **c == Cell::Suppressed)
        .count();
}

/// Check a published table from what it shows alone, as a reader (or an
/// auditor) could: no shown count in the primary range, no derived value
/// shown beside a hidden source, and no hidden count that the table's sums
/// give back. Returns the problems found (empty: the table is safe).
pub fn audit(table: &Table, rule: Rule) -> Vec<String> {
    if !table.disclosive {
        return Vec::new();
    }
    let mut problems = Vec::new();
    for (r, row) in table.rows.iter().enumerate() {
        for (c, col) in table.columns.iter().enumerate() {
            if col.kind == Kind::Count
                && let Cell::Count(n) = row[c]
                && rule.primary(n)
            {
                problems.push(format!("{}: row {r}, {}: {n} is shown", table.id, col.id));
            }
            if !col.derived_from.is_empty()
                && row[c] != Cell::Empty
                && row[c] != Cell::Suppressed
                && col.derived_from.iter().any(|&f| row[f] == Cell::Suppressed)
            {
                problems.push(format!(
                    "{}: row {r}, {} is shown beside a withheld source",
                    table.id, col.id
                ));
            }
        }
    }
    let shape = Shape::of(table);
    // Values do not matter to what the sums fix, only which cells are hidden.
    let zeros = shape.grid(table, |_| 0u64);
    let grid = Grid {
        cells: zeros.cells,
        row_totals: zeros.row_totals,
        col_totals: zeros.col_totals,
        grand_total: zeros.grand,
    };
    let shown = shape.grid(table, |c| *c == Cell::Suppressed);
    let hidden = Hidden {
        cells: shown.cells,
        row_totals: shown.row_totals.unwrap_or_default(),
        col_totals: shown.col_totals.unwrap_or_default(),
        grand_total: shown.grand.unwrap_or(false),
    };
    for entry in revealed(&grid, &hidden) {
        problems.push(format!("{}: the sums give back {entry}", table.id));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::table::Column;
    use proptest::prelude::*;

    /// A table with no data rows but a total per column (a dataset with
    /// no records in the period) once crashed the partner edition.
    #[test]
    fn a_grid_with_no_rows_but_column_totals_is_handled() {
        let g = Grid {
            cells: vec![],
            row_totals: Some(vec![]),
            col_totals: Some(vec![0, 0]),
            grand_total: Some(0),
        };
        let h = suppress(&g, Rule::default());
        assert_eq!(h.col_totals, vec![false, false]);
        assert!(revealed(&g, &h).is_empty(), "{h:?}");
    }

    fn grid(cells: &[&[u64]], row_totals: bool, col_totals: bool) -> Grid {
        let cells: Vec<Vec<u64>> = cells.iter().map(|r| r.to_vec()).collect();
        let cols = cells.first().map_or(0, Vec::len);
        let rt: Vec<u64> = cells.iter().map(|r| r.iter().sum()).collect();
        let ct: Vec<u64> = (0..cols)
            .map(|c| cells.iter().map(|r| r[c]).sum())
            .collect();
        let grand = rt.iter().sum();
        Grid {
            cells,
            row_totals: row_totals.then_some(rt),
            col_totals: col_totals.then_some(ct),
            grand_total: (row_totals && col_totals).then_some(grand),
        }
    }

    /// The hidden inner cells as `(row, col)` pairs, for readable asserts.
    fn hidden_cells(h: &Hidden) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (r, row) in h.cells.iter().enumerate() {
            for (c, &x) in row.iter().enumerate() {
                if x {
                    out.push((r, c));
                }
            }
        }
        out
    }

    #[test]
    fn one_column_with_its_total_hides_the_smallest_other_cell() {
        // Given a column 10, 3, 8, 20 with its total 41 shown,
        let g = grid(&[&[10], &[3], &[8], &[20]], false, true);
        // when suppressed,
        let h = suppress(&g, Rule::default());
        // then 3 is hidden (primary) and 8, the smallest other cell, with it
        // (else 41 − 10 − 8 − 20 gives 3 back); the total stays.
        assert_eq!(hidden_cells(&h), vec![(1, 0), (2, 0)]);
        assert_eq!(h.col_totals, vec![false]);
        assert!(revealed(&g, &h).is_empty());
    }

    #[test]
    fn without_totals_only_small_counts_are_hidden() {
        let g = grid(&[&[10, 3], &[0, 8]], false, false);
        let h = suppress(&g, Rule::default());
        assert_eq!(
            hidden_cells(&h),
            vec![(0, 1)],
            "zero is shown, no total to protect"
        );
    }

    #[test]
    fn a_small_cell_in_a_table_with_both_totals_hides_a_rectangle() {
        //        A   B   C | T
        // r0    10   2  12 | 24
        // r1     8  15  20 | 43
        // r2     9  11   7 | 27
        // T     27  28  39 | 94
        let g = grid(&[&[10, 2, 12], &[8, 15, 20], &[9, 11, 7]], true, true);
        let h = suppress(&g, Rule::default());
        // Row r0 needs a partner for the 2: A (10) and C (12) both open a
        // new column, so the smaller, A. Column A then needs one: r1's 8
        // and r2's 9 both open a new row, so 8. Column B needs one: r1's
        // 15 sits in a row already hidden-in, so 15 beats r2's 11.
        assert_eq!(hidden_cells(&h), vec![(0, 0), (0, 1), (1, 0), (1, 1)]);
        assert!(h.row_totals.iter().all(|x| !x), "totals all shown");
        assert!(h.col_totals.iter().all(|x| !x));
        assert!(!h.grand_total);
        assert!(revealed(&g, &h).is_empty());
    }

    #[test]
    fn a_small_total_is_hidden_and_protected_along_the_margin() {
        //        A   B | T
        // r0     1   3 |  4   <- every entry of r0 is small
        // r1    20  30 | 50
        // r2    12  40 | 52
        // T     33  73 | 106
        let g = grid(&[&[1, 3], &[20, 30], &[12, 40]], true, true);
        let h = suppress(&g, Rule::default());
        // Primary: 1, 3 and the row total 4. Column A has one hidden (1):
        // its partner is r2's 12 (r1's 20 and r2's 12 both open a row; 12
        // is smaller). Column B then has 3 hidden alone: r2's 40 sits in a
        // row already opened, so it beats r1's 30. The total column now
        // holds one hidden entry (4), so a second total is hidden: r2's 52
        // (the total column's only other choices are 50 and the grand
        // total; 52's crossing line, row r2, already has hidden entries).
        assert_eq!(hidden_cells(&h), vec![(0, 0), (0, 1), (2, 0), (2, 1)]);
        assert_eq!(h.row_totals, vec![true, false, true]);
        assert_eq!(h.col_totals, vec![false, false]);
        assert!(!h.grand_total);
        assert!(revealed(&g, &h).is_empty());
    }

    #[test]
    fn two_hidden_rectangles_joined_by_one_cell_are_caught_by_the_equations() {
        // Primary cells form two rectangles {r0,r1}x{A,B} and {r2,r3}x{C,D}
        // plus the bridge (r1, C). Every row and column has two or more
        // hidden cells, yet r0 + r1 − A − B gives the bridge back.
        let g = grid(
            &[
                &[2, 3, 40, 50, 60],
                &[4, 5, 1, 70, 80],
                &[90, 91, 2, 3, 92],
                &[93, 94, 4, 5, 95],
            ],
            true,
            true,
        );
        let primary = Hidden {
            cells: g
                .cells
                .iter()
                .map(|r| r.iter().map(|&v| (1..=5).contains(&v)).collect())
                .collect(),
            row_totals: vec![false; 4],
            col_totals: vec![false; 5],
            grand_total: false,
        };
        assert_eq!(revealed(&g, &primary), vec!["cell(1,2)".to_owned()]);
        let h = suppress(&g, Rule::default());
        // The fix hides one more cell in the bridge's row, r1: 70 (col D)
        // crosses a column already hidden-in, 80 (col E) would open one.
        // That closes a cycle through the bridge and nothing is fixed.
        assert_eq!(
            hidden_cells(&h),
            vec![
                (0, 0),
                (0, 1),
                (1, 0),
                (1, 1),
                (1, 2),
                (1, 3),
                (2, 2),
                (2, 3),
                (3, 2),
                (3, 3)
            ]
        );
        assert!(revealed(&g, &h).is_empty());
    }

    #[test]
    fn applying_to_a_table_withholds_derived_columns() {
        let mut t = Table::new(
            "t",
            "T",
            "",
            vec![
                Column::new("group", "Group", Kind::Label),
                Column::new("people", "People", Kind::Count),
                Column::new("known", "Known", Kind::Count),
                Column::derived("share", "Share", Kind::Percent, &[2, 1]),
            ],
        );
        for (label, people, known) in [("a", 40, 4), ("b", 30, 12), ("c", 50, 20)] {
            t.rows.push(vec![
                Cell::Text(label.into()),
                Cell::Count(people),
                Cell::Count(known),
                Cell::Empty,
            ]);
        }
        t.push_total_row();
        t.fill_percentages();
        apply(&mut t, Rule::default());
        // "known" 4 is hidden, and 12 (the smallest other) protects it from
        // the column total; their shares go too. "people" is untouched.
        assert_eq!(t.rows[0][2], Cell::Suppressed);
        assert_eq!(t.rows[1][2], Cell::Suppressed);
        assert_eq!(t.rows[2][2], Cell::Count(20));
        assert_eq!(t.rows[0][3], Cell::Suppressed);
        assert_eq!(t.rows[1][3], Cell::Suppressed);
        assert!(matches!(t.rows[2][3], Cell::Number(_)));
        assert_eq!(t.rows[3][2], Cell::Count(36), "total shown");
        assert_eq!(t.rows[0][1], Cell::Count(40));
        assert_eq!(t.suppressed, 4);
    }

    #[test]
    fn the_audit_catches_primary_only_suppression() {
        // A column 10, c, 8, 20 with its total 41: 41 − 38 gives the c back.
        let mut t = Table::new(
            "t",
            "T",
            "",
            vec![
                Column::new("label", "Label", Kind::Label),
                Column::new("n", "N", Kind::Count),
            ],
        );
        for (l, n) in [("a", 10), ("b", 3), ("c", 8), ("d", 20)] {
            t.rows.push(vec![Cell::Text(l.into()), Cell::Count(n)]);
        }
        t.push_total_row();
        let mut primary_only = t.clone();
        primary_only.rows[1][1] = Cell::Suppressed;
        assert_eq!(
            audit(&primary_only, Rule::default()),
            vec!["t: the sums give back cell(1,0)".to_owned()]
        );
        assert_eq!(
            audit(&t, Rule::default()),
            vec!["t: row 1, n: 3 is shown".to_owned()]
        );
        apply(&mut t, Rule::default());
        assert!(audit(&t, Rule::default()).is_empty());
        assert_eq!(t.rows[2][1], Cell::Suppressed, "8 hides with the 3");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn nothing_hidden_can_be_worked_out(
            rows in 1usize..6,
            cols in 1usize..6,
            seed in proptest::collection::vec(
                prop_oneof![3 => 0u64..8, 1 => 0u64..60],
                36,
            ),
            rt in any::<bool>(),
            ct in any::<bool>(),
        ) {
            let cells: Vec<Vec<u64>> = (0..rows)
                .map(|r| (0..cols).map(|c| seed[r * 6 + c]).collect())
                .collect();
            let refs: Vec<&[u64]> = cells.iter().map(Vec::as_slice).collect();
            let g = grid(&refs, rt, ct);
            let h = suppress(&g, Rule::default());
            // Every count from 1 to 5 is hidden...
            for (r, row) in g.cells.iter().enumerate() {
                for (c, &v) in row.iter().enumerate() {
                    if (1..=5).contains(&v) {
                        prop_assert!(h.cells[r][c]);
                    }
                }
            }
            // ...and no hidden entry follows from what is shown.
            prop_assert_eq!(revealed(&g, &h), Vec::<String>::new());
        }
    }
}
