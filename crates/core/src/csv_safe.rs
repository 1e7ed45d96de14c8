//! Cells the tool writes into CSV files, which people open in spreadsheets.
//!
//! Every CSV the tool writes (the rejection report, the profile tables, the
//! analyst export, headers included) passes its text cells through
//! [`neutralise`], so which cells a spreadsheet could run as a formula is
//! decided in one place.

use std::borrow::Cow;

/// The first characters that make a spreadsheet read a cell as a formula:
/// `=`, `+`, `-` and `@`, and TAB and CR, which some spreadsheets skip
/// before looking for one (OWASP "CSV injection").
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Make a text cell safe to open in a spreadsheet: a cell starting with one
/// of `=`, `+`, `-`, `@`, TAB or CR gets a leading `'`, so it is shown as
/// text and never evaluated; any other cell is returned as it is.
///
/// Numbers and booleans written as such need not pass through here (they
/// cannot hold a formula, and a quote would turn `-3` into text).
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// A text cell neutralised and always quoted (RFC 4180), for the writers
/// that build CSV lines themselves rather than through the `csv` crate.
pub fn quoted(cell: &str) -> String {
    format!("\"{}\"", neutralise(cell).replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_get_an_apostrophe_and_keep_their_text() {
        for bad in ["=SUM(A1:A9)", "+44 161", "-2+3", "@cmd", "\t=1", "\r=1"] {
            let safe = neutralise(bad);
            assert!(safe.starts_with('\''), "{bad:?} -> {safe:?}");
            assert_eq!(&safe[1..], bad, "the text itself is kept");
        }
        for fine in ["local_ref:k1:abc", "", " =1", "a=b", "'quoted"] {
            assert!(matches!(neutralise(fine), Cow::Borrowed(_)), "{fine:?}");
        }
    }

    #[test]
    fn quoted_cells_escape_quotes_after_neutralising() {
        assert_eq!(quoted("plain"), "\"plain\"");
        assert_eq!(quoted("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(quoted("\t1"), "\"'\t1\"");
        assert_eq!(quoted("\r1"), "\"'\r1\"");
    }
}
