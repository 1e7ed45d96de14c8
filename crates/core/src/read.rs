//! Streaming readers for agency extracts (CSV with a header row, or NDJSON)
//! that shape each row into the JSON object its schema validates.
//!
//! Rows are produced one at a time from a `BufRead`, so memory stays flat
//! whatever the file size. Problems with the file as a whole (not UTF-8,
//! binary, a header that does not fit the schema) end the stream with one
//! [`FileError`] instead of thousands of row errors.
//!
//! No row is held whole past [`MAX_ROW_BYTES`]: a longer CSV record or
//! NDJSON line (a runaway cell, an unclosed quote that swallows the rest of
//! the file, a file that is not an extract at all) ends the stream with
//! [`FileError::RowTooLong`], found while reading it, so memory stays flat
//! whatever the file's shape.

use std::io::{self, BufRead, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::{Map, Number, Value};

use crate::schema::{Dataset, FieldType, ScalarType};

/// The format of an extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// Comma-separated with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

impl InputFormat {
    /// Guess from a file name: `.ndjson` / `.jsonl` / `.json` are NDJSON, anything else CSV.
    pub fn from_file_name(name: &str) -> InputFormat {
        let lower = name.to_ascii_lowercase();
        if [".ndjson", ".jsonl", ".json"]
            .iter()
            .any(|s| lower.ends_with(s))
        {
            InputFormat::Ndjson
        } else {
            InputFormat::Csv
        }
    }
}

/// A problem with the file as a whole. Messages never quote cell values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// No bytes, or only blank lines.
    #[error("the file is empty")]
    Empty,
    /// A CSV header and no data rows.
    #[error("the file has a header row but no data rows")]
    HeaderOnly,
    /// Bytes that are not UTF-8 (often a Latin-1 or Windows-1252 export).
    #[error("line {line} is not UTF-8 text: save the extract as UTF-8 (CSV UTF-8 in Excel)")]
    NotUtf8 {
        /// The first line with a bad byte.
        line: u64,
    },
    /// NUL bytes: a spreadsheet or other binary file, not text.
    #[error("line {line} contains binary data: this does not look like a CSV or NDJSON text file")]
    Binary {
        /// The first line with a NUL byte.
        line: u64,
    },
    /// A header cell that is not a field of the schema. Named by position
    /// only: a file without a header row has data (a child's name, a
    /// reference) where the header should be, and whatever it holds must
    /// not reach a report or lineage.
    #[error(
        "column {column} of the header is not a field of the {dataset} schema (its text is not shown): the first row must be the header, with the schema's field names"
    )]
    UnknownColumn {
        /// The column's position in the header, 1-based.
        column: usize,
        /// The dataset.
        dataset: String,
    },
    /// A header column given twice.
    #[error("column `{column}` appears more than once in the header")]
    DuplicateColumn {
        /// The schema's name for the column.
        column: String,
    },
    /// A required field has no column.
    #[error("required column `{column}` is missing from the header")]
    MissingColumn {
        /// The column name.
        column: String,
    },
    /// The CSV could not be parsed at all.
    #[error("line {line}: the CSV cannot be read ({reason})")]
    Malformed {
        /// Where it went wrong.
        line: u64,
        /// The parser's reason (no cell values).
        reason: String,
    },
    /// A row longer than [`MAX_ROW_BYTES`]: refused while it was being
    /// read, before it is held in memory.
    #[error(
        "the row starting on line {line} is longer than {limit_mib} MiB, the most any row may hold: a cell runs on (often an opening quote with no closing one) or this is not an extract"
    )]
    RowTooLong {
        /// The line the row starts on.
        line: u64,
        /// The limit, in MiB.
        limit_mib: usize,
    },
    /// The file could not be read.
    #[error("the file could not be read: {0}")]
    Io(String),
}

/// The longest row, CSV record or NDJSON line, a reader takes, in bytes.
/// Real extracts' rows are under a few KiB; free-text fields are capped by
/// their schemas far below this.
pub const MAX_ROW_BYTES: usize = 1 << 20;

/// Room for the CSV parser's read-ahead beyond the current record.
const READ_AHEAD: u64 = 64 << 10;

impl FileError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            FileError::Empty => "empty",
            FileError::HeaderOnly => "header_only",
            FileError::NotUtf8 { .. } => "encoding",
            FileError::Binary { .. } => "binary",
            FileError::UnknownColumn { .. } => "unknown_column",
            FileError::DuplicateColumn { .. } => "duplicate_column",
            FileError::MissingColumn { .. } => "missing_column",
            FileError::Malformed { .. } => "malformed",
            FileError::RowTooLong { .. } => "row_too_long",
            FileError::Io(_) => "io",
        }
    }
}

/// A problem with one row's structure, found before schema validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowShapeProblem {
    /// A CSV row with a different number of cells from the header.
    Cells {
        /// Cells in this row.
        found: usize,
        /// Cells in the header.
        expected: usize,
    },
    /// An NDJSON line that is not JSON.
    Json,
    /// An NDJSON line that is JSON but not an object.
    NotObject,
}

/// One data row, shaped for validation.
#[derive(Debug, Clone)]
pub struct Row {
    /// Data row number, 1-based, header excluded.
    pub row: u64,
    /// The source line the row starts on.
    pub line: u64,
    /// The shaped row: always a JSON object (empty when `problem` is set),
    /// held as a `Value` so validation needs no copy.
    pub value: Value,
    /// A structural problem that stops the row being validated field by field.
    pub problem: Option<RowShapeProblem>,
    /// The schema field index of each entry of `value`, in the map's order,
    /// when the reader knows it (CSV); empty otherwise. Lets curation place
    /// values without hashing their names again.
    pub(crate) fields: Vec<usize>,
    /// NDJSON keys that are not fields of the schema: how many, and the
    /// 1-based positions in the line of the first [`UNKNOWN_KEYS_SHOWN`].
    /// The keys themselves are dropped as the line is read (a key can be
    /// a child's name), so only their positions can reach a report.
    pub(crate) unknown_keys: UnknownKeys,
}

/// How many unknown NDJSON keys a row's error lists by position.
pub const UNKNOWN_KEYS_SHOWN: usize = 5;

/// Unknown NDJSON keys of one line, by position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UnknownKeys {
    /// How many keys of the line are not schema fields.
    pub(crate) count: usize,
    /// The 1-based positions of the first few.
    pub(crate) first: Vec<usize>,
}

/// A stream of rows from an extract.
///
/// Rows are lent, not given: the reader reuses one row's allocations for the
/// next (clone a row to keep it), which is most of what makes validation fast.
pub trait RowSource {
    /// The next row, a file error (after which the stream ends), or `None` at the end.
    fn next_row(&mut self) -> Option<Result<&Row, FileError>>;

    /// The same rows as raw records for shaping on other threads, when
    /// this reader can hand them out (CSV); `None` otherwise. Read rows
    /// from one or the other, not both.
    fn split(&mut self) -> Option<&mut dyn SplitRows> {
        None
    }
}

/// Open a reader for `format` over `input`, checked against `dataset`.
pub fn open<'a, R: BufRead + 'a>(
    format: InputFormat,
    input: R,
    dataset: &'a Dataset,
) -> Box<dyn RowSource + 'a> {
    match format {
        InputFormat::Csv => Box::new(CsvRows::new(input, dataset)),
        InputFormat::Ndjson => Box::new(NdjsonRows::new(input, dataset)),
    }
}

/// Turn one trimmed, non-empty CSV cell into a JSON value of the field's type.
/// A cell that does not parse stays a string, so validation reports a `type`
/// error naming the field.
pub fn coerce_cell(ty: FieldType, cell: &str) -> Value {
    match ty {
        FieldType::String => Value::String(cell.to_owned()),
        FieldType::Integer => coerce_scalar(ScalarType::Integer, cell),
        FieldType::Number => coerce_scalar(ScalarType::Number, cell),
        FieldType::Boolean => coerce_scalar(ScalarType::Boolean, cell),
        FieldType::Array(item) => Value::Array(
            cell.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| coerce_scalar(item, s))
                .collect(),
        ),
    }
}

fn coerce_scalar(ty: ScalarType, cell: &str) -> Value {
    match ty {
        ScalarType::String => Value::String(cell.to_owned()),
        ScalarType::Integer => cell
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(cell.to_owned())),
        ScalarType::Number => cell
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(cell.to_owned())),
        ScalarType::Boolean => match parse_bool(cell) {
            Some(b) => Value::Bool(b),
            None => Value::String(cell.to_owned()),
        },
    }
}

fn parse_bool(cell: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["true", "yes", "y", "1"];
    const FALSE: [&str; 4] = ["false", "no", "n", "0"];
    if TRUE.iter().any(|t| cell.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|f| cell.eq_ignore_ascii_case(f)) {
        Some(false)
    } else {
        None
    }
}

/// Hands the CSV parser its input and fails the read once the parser has
/// been given more than [`MAX_ROW_BYTES`] (and its read-ahead) since the
/// current record started: the parser would otherwise grow the record to
/// whatever size the file holds.
struct Bounded<R> {
    inner: R,
    delivered: u64,
    record_start: Arc<AtomicU64>,
    too_long: Arc<AtomicBool>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = self.record_start.load(Ordering::Relaxed);
        if self.delivered.saturating_sub(start) > MAX_ROW_BYTES as u64 + READ_AHEAD {
            self.too_long.store(true, Ordering::Relaxed);
            return Err(io::Error::new(io::ErrorKind::InvalidData, "row too long"));
        }
        let n = self.inner.read(buf)?;
        self.delivered += n as u64;
        Ok(n)
    }
}

struct CsvRows<'a, R: BufRead> {
    reader: csv::Reader<Bounded<R>>,
    record_start: Arc<AtomicU64>,
    too_long: Arc<AtomicBool>,
    dataset: &'a Dataset,
    record: csv::ByteRecord,
    shape: CsvShape,
    started: bool,
    finished: bool,
    rows: u64,
}

/// What turns a CSV record into a row once the header is known: the
/// columns, and the reused row with its layout. Cheap to copy for another
/// thread ([`CsvShape::fresh`]).
struct CsvShape {
    /// For each header column, the schema field it maps to.
    columns: Arc<[(String, FieldType)]>,
    /// The schema field index of each column.
    column_field: Arc<[usize]>,
    // The reused row map's layout: the column at each map position, and the
    // position of each column present. Cells that stay filled are updated in
    // map order and cells that stay empty are skipped, with no name hashed;
    // only a cell that fills or empties touches the map by name.
    order: Vec<usize>,
    pos_of: Vec<Option<usize>>,
    current: Row,
}

/// CSV records as read, before they are shaped into rows: what a reader
/// on one thread hands to [`Shaper`]s on others. The records' bytes sit
/// end to end in one buffer, so a batch knows its size as it fills (the
/// row workers cap a batch by bytes as well as rows) and reuses one buffer
/// rather than one per record.
#[derive(Clone, Default)]
pub struct RawRecords {
    bytes: Vec<u8>,
    /// Each record's cell ends, from where the record starts.
    ends: Vec<usize>,
    records: Vec<RawAt>,
}

/// Where one record of [`RawRecords`] is, and its place in the file.
#[derive(Clone, Copy)]
struct RawAt {
    row: u64,
    line: u64,
    /// Its first byte in `bytes` and its first cell end in `ends`.
    start: usize,
    first_end: usize,
}

impl RawRecords {
    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The bytes of its records' cells.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Empty it, keeping its buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.records.clear();
    }

    fn push(&mut self, row: u64, line: u64, record: &csv::ByteRecord) {
        self.records.push(RawAt {
            row,
            line,
            start: self.bytes.len(),
            first_end: self.ends.len(),
        });
        self.bytes.extend_from_slice(record.as_slice());
        self.ends
            .extend((0..record.len()).map(|i| record.range(i).map_or(0, |r| r.end)));
    }

    /// Record `i`: its row number, its line and its cells.
    fn get(&self, i: usize) -> Option<(u64, u64, PackedRecord<'_>)> {
        let at = self.records.get(i)?;
        let (end, last_end) = match self.records.get(i + 1) {
            Some(next) => (next.start, next.first_end),
            None => (self.bytes.len(), self.ends.len()),
        };
        Some((
            at.row,
            at.line,
            PackedRecord {
                bytes: self.bytes.get(at.start..end)?,
                ends: self.ends.get(at.first_end..last_end)?,
            },
        ))
    }
}

/// How many records and bytes it holds, never what they say: the cells
/// are an extract's raw identifiers.
impl std::fmt::Debug for RawRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRecords")
            .field("records", &self.records.len())
            .field("bytes", &self.bytes.len())
            .field("first_line", &self.records.first().map(|r| r.line))
            .finish()
    }
}

/// A CSV record's cells, as the reader holds them or packed in
/// [`RawRecords`].
trait Cells {
    /// Every cell's bytes, end to end.
    fn all_bytes(&self) -> &[u8];
    /// How many cells.
    fn cells(&self) -> usize;
    /// Where cell `i` is in [`Cells::all_bytes`].
    fn cell_range(&self, i: usize) -> Option<std::ops::Range<usize>>;
}

impl Cells for csv::ByteRecord {
    fn all_bytes(&self) -> &[u8] {
        self.as_slice()
    }
    fn cells(&self) -> usize {
        self.len()
    }
    fn cell_range(&self, i: usize) -> Option<std::ops::Range<usize>> {
        self.range(i)
    }
}

/// One record of [`RawRecords`].
struct PackedRecord<'a> {
    bytes: &'a [u8],
    ends: &'a [usize],
}

impl Cells for PackedRecord<'_> {
    fn all_bytes(&self) -> &[u8] {
        self.bytes
    }
    fn cells(&self) -> usize {
        self.ends.len()
    }
    fn cell_range(&self, i: usize) -> Option<std::ops::Range<usize>> {
        let end = *self.ends.get(i)?;
        let start = match i.checked_sub(1) {
            Some(before) => *self.ends.get(before)?,
            None => 0,
        };
        Some(start..end)
    }
}

/// Shapes raw records into rows, on whichever thread holds it.
pub trait Shaper: Send {
    /// The row `raw` holds, or the file error it is (after which the
    /// stream ends: not UTF-8, binary).
    fn shape(&mut self, raws: &RawRecords, i: usize) -> Result<&Row, FileError>;
}

/// A reader whose records can be shaped on other threads: the reading
/// (finding where each record ends, which only reading in order can do)
/// stays with the reader, the shaping goes to [`Shaper`]s.
pub trait SplitRows {
    /// Read the next record onto the end of `into`: `None` at the end, or
    /// a file error (after which the stream ends).
    fn next_raw(&mut self, into: &mut RawRecords) -> Option<Result<(), FileError>>;

    /// A shaper for this file's records, once a record has been read (the
    /// header decides how cells become values); `None` before.
    fn shaper(&self) -> Option<Box<dyn Shaper>>;
}

fn empty_row() -> Row {
    Row {
        row: 0,
        line: 0,
        value: Value::Object(Map::new()),
        problem: None,
        fields: Vec::new(),
        unknown_keys: UnknownKeys::default(),
    }
}

/// `str::trim`, skipping the Unicode scan for the usual cell that starts
/// and ends with a visible ASCII character.
fn trim_cell(cell: &str) -> &str {
    let visible = |b: Option<&u8>| b.is_some_and(|&b| b > b' ' && b < 0x7f);
    if visible(cell.as_bytes().first()) && visible(cell.as_bytes().last()) {
        cell
    } else {
        cell.trim()
    }
}

/// Put a cell into a reused row value, keeping its string buffer when it can.
fn set_cell(slot: &mut Value, ty: FieldType, cell: &str) {
    match (ty, &mut *slot) {
        (FieldType::String, Value::String(s)) => {
            s.clear();
            s.push_str(cell);
        }
        _ => *slot = coerce_cell(ty, cell),
    }
}

impl<'a, R: BufRead> CsvRows<'a, R> {
    fn new(input: R, dataset: &'a Dataset) -> Self {
        // With `\n` as the only terminator a CRLF's `\r` stays on the last
        // cell (cells are trimmed) and csv counts lines exactly; with the
        // default CRLF handling a record's start line lags by one.
        let record_start = Arc::new(AtomicU64::new(0));
        let too_long = Arc::new(AtomicBool::new(false));
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .terminator(csv::Terminator::Any(b'\n'))
            .flexible(true)
            .from_reader(Bounded {
                inner: input,
                delivered: 0,
                record_start: Arc::clone(&record_start),
                too_long: Arc::clone(&too_long),
            });
        CsvRows {
            reader,
            record_start,
            too_long,
            dataset,
            record: csv::ByteRecord::new(),
            shape: CsvShape {
                columns: Arc::from(Vec::new()),
                column_field: Arc::from(Vec::new()),
                order: Vec::new(),
                pos_of: Vec::new(),
                current: empty_row(),
            },
            started: false,
            finished: false,
            rows: 0,
        }
    }

    fn read_record(&mut self) -> Result<bool, FileError> {
        // Where the record about to be read starts.
        let start = self.reader.position().clone();
        self.record_start.store(start.byte(), Ordering::Relaxed);
        let read = self.reader.read_byte_record(&mut self.record);
        if self.too_long.load(Ordering::Relaxed)
            || (read.is_ok() && self.record.as_slice().len() > MAX_ROW_BYTES)
        {
            return Err(FileError::RowTooLong {
                line: start.line(),
                limit_mib: MAX_ROW_BYTES >> 20,
            });
        }
        match read {
            Ok(more) => Ok(more),
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                Err(match e.kind() {
                    csv::ErrorKind::Io(io) => FileError::Io(io.kind().to_string()),
                    _ => FileError::Malformed {
                        line,
                        reason: "unbalanced quotes or a broken record".into(),
                    },
                })
            }
        }
    }

    fn line(&self) -> u64 {
        self.record.position().map_or(0, csv::Position::line)
    }

    fn read_header(&mut self) -> Result<(), FileError> {
        if !self.read_record()? {
            return Err(FileError::Empty);
        }
        let text = record_text(&self.record, self.line())?;
        let mut seen = std::collections::HashSet::new();
        let (mut columns, mut column_field) = (Vec::new(), Vec::new());
        for i in 0..self.record.len() {
            let mut name = self
                .record
                .range(i)
                .and_then(|r| text.get(r))
                .unwrap_or_default();
            if i == 0 {
                name = name.strip_prefix('\u{feff}').unwrap_or(name);
            }
            let name = name.trim();
            let Some(field) = self.dataset.field(name) else {
                return Err(FileError::UnknownColumn {
                    column: i + 1,
                    dataset: self.dataset.id.clone(),
                });
            };
            if !seen.insert(field.name.clone()) {
                return Err(FileError::DuplicateColumn {
                    column: field.name.clone(),
                });
            }
            columns.push((field.name.clone(), field.ty));
            column_field.push(self.dataset.field_index(name).unwrap_or_default());
        }
        if let Some(missing) = self
            .dataset
            .fields()
            .iter()
            .find(|f| f.required && !seen.contains(&f.name))
        {
            return Err(FileError::MissingColumn {
                column: missing.name.clone(),
            });
        }
        self.shape.columns = Arc::from(columns);
        self.shape.column_field = Arc::from(column_field);
        Ok(())
    }

    /// Read the next record into `self.record` (the header first): false
    /// at the end.
    fn advance(&mut self) -> Result<bool, FileError> {
        if !self.started {
            self.started = true;
            self.read_header()?;
            if !self.read_record()? {
                return Err(FileError::HeaderOnly);
            }
        } else if !self.read_record()? {
            return Ok(false);
        }
        self.rows += 1;
        Ok(true)
    }

    /// One read step (`read`), unless the stream has ended: it ends at the
    /// end of the file or at its first file error.
    fn step(
        &mut self,
        read: fn(&mut Self) -> Result<bool, FileError>,
    ) -> Option<Result<(), FileError>> {
        if self.finished {
            return None;
        }
        match read(self) {
            Ok(true) => Some(Ok(())),
            Ok(false) => {
                self.finished = true;
                None
            }
            Err(e) => {
                self.finished = true;
                Some(Err(e))
            }
        }
    }

    fn next_inner(&mut self) -> Result<bool, FileError> {
        if !self.advance()? {
            return Ok(false);
        }
        let line = self.line();
        self.shape.shape(&self.record, self.rows, line)?;
        Ok(true)
    }
}

/// The record as text, checked once: no NUL byte and valid UTF-8, with
/// every cell boundary on a character boundary (a cell cut mid-character
/// is as broken as an invalid byte).
fn record_text(record: &impl Cells, line: u64) -> Result<&str, FileError> {
    let bytes = record.all_bytes();
    if bytes.contains(&0) {
        return Err(FileError::Binary { line });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| FileError::NotUtf8 { line })?;
    if !text.is_ascii()
        && (0..record.cells()).any(|i| record.cell_range(i).and_then(|r| text.get(r)).is_none())
    {
        return Err(FileError::NotUtf8 { line });
    }
    Ok(text)
}

impl CsvShape {
    /// A shaper for the same columns with a row of its own.
    fn fresh(&self) -> CsvShape {
        CsvShape {
            columns: Arc::clone(&self.columns),
            column_field: Arc::clone(&self.column_field),
            order: Vec::new(),
            pos_of: Vec::new(),
            current: empty_row(),
        }
    }

    /// Shape `record` (data row `number`, starting on `line`) into the
    /// reused row.
    fn shape(&mut self, record: &impl Cells, number: u64, line: u64) -> Result<&Row, FileError> {
        let text = record_text(record, line)?;
        let row = &mut self.current;
        row.row = number;
        row.line = line;
        if !row.value.is_object() || self.pos_of.len() != self.columns.len() {
            row.value = Value::Object(Map::new());
            row.fields.clear();
            self.order.clear();
            self.pos_of = vec![None; self.columns.len()];
        }
        let Value::Object(map) = &mut row.value else {
            return Ok(&self.current);
        };
        if record.cells() != self.columns.len() {
            map.clear();
            row.fields.clear();
            self.order.clear();
            self.pos_of.fill(None);
            row.problem = Some(RowShapeProblem::Cells {
                found: record.cells(),
                expected: self.columns.len(),
            });
            return Ok(&self.current);
        }
        row.problem = None;
        let cell_at = |i: usize| {
            trim_cell(
                record
                    .cell_range(i)
                    .and_then(|r| text.get(r))
                    .unwrap_or_default(),
            )
        };
        // Cells that stay filled: in place, in map order.
        for (v, &col) in map.values_mut().zip(&self.order) {
            let cell = cell_at(col);
            if !cell.is_empty() {
                set_cell(v, self.columns[col].1, cell);
            }
        }
        // Cells that empty or fill: by name. Removal swaps the last entry
        // into the hole (as the map does), so the layout follows it.
        for (col, (name, ty)) in self.columns.iter().enumerate() {
            let cell = cell_at(col);
            match (self.pos_of[col], cell.is_empty()) {
                (Some(pos), true) => {
                    map.remove(name);
                    self.order.swap_remove(pos);
                    row.fields.swap_remove(pos);
                    if let Some(&moved) = self.order.get(pos) {
                        self.pos_of[moved] = Some(pos);
                    }
                    self.pos_of[col] = None;
                }
                (None, false) => {
                    map.insert(name.clone(), coerce_cell(*ty, cell));
                    self.pos_of[col] = Some(self.order.len());
                    self.order.push(col);
                    row.fields.push(self.column_field[col]);
                }
                _ => {}
            }
        }
        Ok(&self.current)
    }
}

impl Shaper for CsvShape {
    fn shape(&mut self, raws: &RawRecords, i: usize) -> Result<&Row, FileError> {
        let Some((row, line, cells)) = raws.get(i) else {
            unreachable!("a shaper is asked for a record its chunk holds");
        };
        CsvShape::shape(self, &cells, row, line)
    }
}

impl<R: BufRead> SplitRows for CsvRows<'_, R> {
    fn next_raw(&mut self, into: &mut RawRecords) -> Option<Result<(), FileError>> {
        let step = self.step(Self::advance)?;
        Some(step.map(|()| into.push(self.rows, self.line(), &self.record)))
    }

    fn shaper(&self) -> Option<Box<dyn Shaper>> {
        self.started
            .then(|| Box::new(self.shape.fresh()) as Box<dyn Shaper>)
    }
}

impl<R: BufRead> RowSource for CsvRows<'_, R> {
    fn next_row(&mut self) -> Option<Result<&Row, FileError>> {
        let step = self.step(Self::next_inner)?;
        Some(step.map(|()| &self.shape.current))
    }

    fn split(&mut self) -> Option<&mut dyn SplitRows> {
        Some(self)
    }
}

struct NdjsonRows<'a, R: BufRead> {
    input: R,
    dataset: &'a Dataset,
    buf: Vec<u8>,
    line: u64,
    rows: u64,
    finished: bool,
    current: Row,
}

/// `read_until(b'\n')` that gives up (`None`) once the line passes
/// [`MAX_ROW_BYTES`], having held no more than that.
fn read_line_bounded<R: BufRead>(input: &mut R, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    loop {
        let available = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(Some(buf.len()));
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if buf.len() + take > MAX_ROW_BYTES + 1 {
            return Ok(None);
        }
        buf.extend_from_slice(&available[..take]);
        input.consume(take);
        if done {
            return Ok(Some(buf.len()));
        }
    }
}

impl<'a, R: BufRead> NdjsonRows<'a, R> {
    fn new(input: R, dataset: &'a Dataset) -> Self {
        NdjsonRows {
            input,
            dataset,
            buf: Vec::with_capacity(1024),
            line: 0,
            rows: 0,
            finished: false,
            current: empty_row(),
        }
    }

    fn next_inner(&mut self) -> Result<Option<Row>, FileError> {
        loop {
            self.buf.clear();
            let n = read_line_bounded(&mut self.input, &mut self.buf)
                .map_err(|e| FileError::Io(e.kind().to_string()))?;
            let Some(n) = n else {
                return Err(FileError::RowTooLong {
                    line: self.line + 1,
                    limit_mib: MAX_ROW_BYTES >> 20,
                });
            };
            if n == 0 {
                return if self.rows == 0 {
                    Err(FileError::Empty)
                } else {
                    Ok(None)
                };
            }
            self.line += 1;
            let line = self.line;
            if self.buf.contains(&0) {
                return Err(FileError::Binary { line });
            }
            let text = std::str::from_utf8(&self.buf).map_err(|_| FileError::NotUtf8 { line })?;
            let text = if line == 1 {
                text.strip_prefix('\u{feff}').unwrap_or(text)
            } else {
                text
            };
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            self.rows += 1;
            let mut unknown = UnknownKeys::default();
            let (value, problem) = match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(mut map)) => {
                    // A JSON null is an absent field, as an empty CSV cell
                    // is. A key the schema does not have is dropped here and
                    // kept only as its position (`retain` visits the keys in
                    // the line's order).
                    let mut position = 0;
                    map.retain(|k, v| {
                        position += 1;
                        if self.dataset.field_index(k).is_none() {
                            unknown.count += 1;
                            if unknown.first.len() < UNKNOWN_KEYS_SHOWN {
                                unknown.first.push(position);
                            }
                            return false;
                        }
                        !v.is_null()
                    });
                    (map, None)
                }
                Ok(_) => (Map::new(), Some(RowShapeProblem::NotObject)),
                Err(_) => (Map::new(), Some(RowShapeProblem::Json)),
            };
            return Ok(Some(Row {
                row: self.rows,
                line,
                value: Value::Object(value),
                problem,
                fields: Vec::new(),
                unknown_keys: unknown,
            }));
        }
    }
}

impl<R: BufRead> RowSource for NdjsonRows<'_, R> {
    fn next_row(&mut self) -> Option<Result<&Row, FileError>> {
        if self.finished {
            return None;
        }
        match self.next_inner() {
            Ok(Some(row)) => {
                self.current = row;
                Some(Ok(&self.current))
            }
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(e) => {
                self.finished = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Dataset;

    const SCHEMA: &str = r#"{
      "$schema": "https://json-schema.org/draft/2020-12/schema",
      "type": "object", "additionalProperties": false,
      "required": ["record_ref", "event_date"],
      "properties": {
        "record_ref": {"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"},
        "event_date": {"type": "string", "format": "date", "x-concept": "event_date"},
        "n": {"type": "integer"},
        "flag": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}}
      }
    }"#;

    fn ds() -> Dataset {
        Dataset::parse("test.read.v1.schema.json", SCHEMA).expect("valid schema")
    }

    fn collect(format: InputFormat, bytes: &[u8]) -> Vec<Result<Row, FileError>> {
        let ds = ds();
        let mut src = open(format, bytes, &ds);
        std::iter::from_fn(|| src.next_row().map(|r| r.cloned())).collect()
    }

    #[test]
    fn a_raw_record_debug_shows_where_it_is_not_what_it_says() {
        let ds = crate::validate::tests::ds();
        let text = "record_ref,event_date,dob\nREF-SECRET-7,2026-01-02,2011-04-05\n";
        let mut rows = open(InputFormat::Csv, text.as_bytes(), &ds);
        let Some(split) = rows.split() else {
            panic!("a CSV reader splits");
        };
        let mut raw = RawRecords::default();
        assert!(matches!(split.next_raw(&mut raw), Some(Ok(()))));
        let shown = format!("{raw:?}");
        assert!(shown.contains("first_line: Some(2)"), "{shown}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("2011"),
            "{shown}"
        );
    }

    #[test]
    fn csv_cells_are_coerced_and_blank_is_absent() {
        let rows = collect(
            InputFormat::Csv,
            b"\xef\xbb\xbfrecord_ref,event_date,n,flag,tags\r\nA1,2024-01-02,7,Yes, a ; b ;\r\nA2,2024-01-03,,N,\r\n",
        );
        let r1 = rows[0].as_ref().expect("row 1");
        assert_eq!((r1.row, r1.line), (1, 2));
        assert_eq!(r1.value["n"], Value::from(7));
        assert_eq!(r1.value["flag"], Value::Bool(true));
        assert_eq!(r1.value["tags"], serde_json::json!(["a", "b"]));
        let r2 = rows[1].as_ref().expect("row 2");
        assert!(r2.value.get("n").is_none() && r2.value.get("tags").is_none());
        assert_eq!(r2.value["flag"], Value::Bool(false));
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn file_problems_are_reported_once() {
        let err = |b: &[u8]| match collect(InputFormat::Csv, b).pop() {
            Some(Err(e)) => e.code(),
            other => panic!("expected a file error, got {other:?}"),
        };
        assert_eq!(err(b""), "empty");
        assert_eq!(err(b"record_ref,event_date\n"), "header_only");
        assert_eq!(err(b"record_ref\nA1\n"), "missing_column");
        assert_eq!(err(b"record_ref,event_date,zzz\n"), "unknown_column");
        assert_eq!(err(b"record_ref,event_date,n,n\n"), "duplicate_column");
        assert_eq!(
            err(b"record_ref,event_date\nZo\xeb,2024-01-01\n"),
            "encoding"
        );
        assert_eq!(err(b"PK\x03\x04\x00\x00record_ref,event_date\n"), "binary");
        // Each cell alone is broken even though the cells run together
        // (without the comma) into a valid "é".
        assert_eq!(
            err(b"record_ref,event_date\nA\xc3,\xa92024-01-01\n"),
            "encoding"
        );
        // Non-ASCII cells that are whole are fine.
        let rows = collect(
            InputFormat::Csv,
            "record_ref,event_date\nZoë,2024-01-01\n".as_bytes(),
        );
        assert!(matches!(rows.as_slice(), [Ok(r)] if r.value["record_ref"] == "Zoë"));
    }

    /// Cells filling and emptying in every pattern: the reused map always
    /// holds exactly the filled cells, and the layout the reader keeps says
    /// which field each entry is.
    #[test]
    fn the_reused_row_map_follows_every_fill_and_empty() {
        let d = ds();
        let names: Vec<&str> = d.fields().iter().map(|f| f.name.as_str()).collect();
        let mut text = names.join(",");
        text.push('\n');
        let mut expected = Vec::new();
        for r in 0u32..200 {
            // A different pattern of empty cells each row (the two required
            // columns stay filled so the rows are ordinary).
            let cells: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let keep = matches!(*n, "record_ref" | "event_date")
                        || (r.wrapping_mul(2_654_435_761) >> (i % 31)) & 1 == 1;
                    match (*n, keep) {
                        (_, false) => String::new(),
                        ("event_date", true) => "2024-01-01".to_owned(),
                        (_, true) => format!("v{r}"),
                    }
                })
                .collect();
            expected.push(cells.clone());
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        let mut src = open(InputFormat::Csv, text.as_bytes(), &d);
        let mut n = 0;
        while let Some(row) = src.next_row() {
            let row = row.expect("row");
            let map = row.value.as_object().expect("object");
            let cells = &expected[n];
            let filled = cells.iter().filter(|c| !c.is_empty()).count();
            assert_eq!(map.len(), filled, "row {n}");
            assert_eq!(row.fields.len(), map.len(), "row {n}");
            for ((k, _), &f) in map.iter().zip(&row.fields) {
                assert_eq!(d.field_index(k), Some(f), "row {n}: {k}");
                assert!(!cells[f].is_empty(), "row {n}: {k} should be absent");
            }
            n += 1;
        }
        assert_eq!(n, 200);
    }

    #[test]
    fn ragged_rows_are_row_problems() {
        let rows = collect(
            InputFormat::Csv,
            b"record_ref,event_date\nA1\nA2,2024-01-01\n",
        );
        let r1 = rows[0].as_ref().expect("row");
        assert_eq!(
            r1.problem,
            Some(RowShapeProblem::Cells {
                found: 1,
                expected: 2
            })
        );
        assert!(rows[1].as_ref().expect("row").problem.is_none());
    }

    #[test]
    fn ndjson_lines() {
        let rows = collect(
            InputFormat::Ndjson,
            b"{\"record_ref\":\"A\",\"n\":null}\n\n[1]\nnot json\n",
        );
        assert_eq!(rows.len(), 3);
        let r1 = rows[0].as_ref().expect("row");
        assert!(r1.problem.is_none() && r1.value.get("n").is_none());
        assert_eq!(
            rows[1].as_ref().expect("row").problem,
            Some(RowShapeProblem::NotObject)
        );
        let r3 = rows[2].as_ref().expect("row");
        assert_eq!(
            (r3.row, r3.line, r3.problem.clone()),
            (3, 4, Some(RowShapeProblem::Json))
        );
        assert!(matches!(
            collect(InputFormat::Ndjson, b"\n \n").pop(),
            Some(Err(FileError::Empty))
        ));
    }

    fn too_long_at(rows: &[Result<Row, FileError>]) -> Option<u64> {
        match rows.last() {
            Some(Err(FileError::RowTooLong { line, limit_mib })) => {
                assert_eq!(*limit_mib, MAX_ROW_BYTES >> 20);
                Some(*line)
            }
            _ => None,
        }
    }

    #[test]
    fn a_row_past_the_limit_is_a_file_error_naming_its_line() {
        let big = "x".repeat(MAX_ROW_BYTES + 10);
        // A runaway cell on the third line (second data row).
        let csv = format!("record_ref,event_date\nA,2024-01-01\n{big},2024-01-02\nC,2024-01-03\n");
        let rows = collect(InputFormat::Csv, csv.as_bytes());
        assert_eq!(too_long_at(&rows), Some(3), "{:?}", rows.len());
        assert_eq!(
            rows.len(),
            2,
            "the first row, then the error; nothing after"
        );
        // An opening quote with no closing one swallows the rest of the file.
        let mut runaway = String::from("record_ref,event_date\n\"A,2024-01-01\n");
        for i in 0..(MAX_ROW_BYTES / 16) {
            runaway.push_str(&format!("B{i:05},2024-01-02\n"));
        }
        let rows = collect(InputFormat::Csv, runaway.as_bytes());
        assert_eq!(too_long_at(&rows), Some(2));
        // In the header too.
        let rows = collect(
            InputFormat::Csv,
            format!("record_ref,{big}\nA,2024-01-01\n").as_bytes(),
        );
        assert_eq!(too_long_at(&rows), Some(1));
        // NDJSON: the line that is too long, not the line before.
        let ndjson = format!(
            "{{\"record_ref\":\"A\"}}\n\n{{\"record_ref\":\"{big}\"}}\n{{\"record_ref\":\"C\"}}\n"
        );
        let rows = collect(InputFormat::Ndjson, ndjson.as_bytes());
        assert_eq!(too_long_at(&rows), Some(3));
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn a_row_just_under_the_limit_is_read() {
        let cell = "y".repeat(MAX_ROW_BYTES - 100);
        let csv = format!("record_ref,event_date\n{cell},2024-01-01\nB,2024-01-02\n");
        let rows = collect(InputFormat::Csv, csv.as_bytes());
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(Result::is_ok));
        let ndjson = format!("{{\"record_ref\":\"{cell}\"}}\n{{\"record_ref\":\"B\"}}\n");
        let rows = collect(InputFormat::Ndjson, ndjson.as_bytes());
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(Result::is_ok));
    }

    /// Endless input after `prefix`, that fails the test if more than
    /// `budget` bytes are ever asked of it.
    struct Endless {
        prefix: Vec<u8>,
        given: usize,
        budget: usize,
    }

    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            assert!(
                self.given <= self.budget,
                "the reader took {} bytes of one row",
                self.given
            );
            let n = buf.len().min(4096);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = self.prefix.get(self.given + i).copied().unwrap_or(b'x');
            }
            self.given += n;
            Ok(n)
        }
    }

    #[test]
    fn an_endless_row_is_refused_having_read_little_more_than_the_limit() {
        let ds = ds();
        for (format, prefix, line) in [
            (
                InputFormat::Csv,
                &b"record_ref,event_date\nA,2024-01-01\n"[..],
                3,
            ),
            (InputFormat::Ndjson, &b"{\"record_ref\":\"A\"}\n"[..], 2),
        ] {
            let input = std::io::BufReader::new(Endless {
                prefix: prefix.to_vec(),
                given: 0,
                budget: MAX_ROW_BYTES + (256 << 10),
            });
            let mut src = open(format, input, &ds);
            assert!(src.next_row().is_some_and(|r| r.is_ok()));
            match src.next_row() {
                Some(Err(FileError::RowTooLong { line: l, .. })) => assert_eq!(l, line),
                other => panic!("{format:?}: {:?}", other.map(|r| r.map(|_| ()))),
            }
            assert!(src.next_row().is_none(), "the stream ends");
        }
    }
}
