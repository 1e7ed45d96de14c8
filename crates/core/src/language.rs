//! Victim-blaming and adultifying language in reports and case notes.
//!
//! The inspection asked forces to eradicate victim-blaming language: words
//! such as "child prostitute", "putting herself at risk" or "her boyfriend"
//! (for an adult abuser) make a child seem responsible for their own abuse,
//! and records written that way follow the child. This module finds such
//! phrases so a writer can change them before a report or case note is
//! shared. It is pure: the caller reads the files and prints the findings,
//! so nothing here touches the disk or the network.
//!
//! What to look for lives in a lexicon (`lexicon/victim-blaming.json`,
//! documented in `lexicon/README.md`), not in code, so that safeguarding
//! leads can review and extend it; every entry cites its published source
//! and carries an example sentence the tests check it against. A phrase is
//! a sequence of whole words, each with its written alternatives
//! (`put|puts|putting`), matched case-insensitively within one sentence.
//! Some words are only victim-blaming in some contexts ("consent" is right
//! in "a child cannot consent"); an entry's `unless` rules say, in a few
//! simple and documented forms, when the same words are not reported.
//!
//! Findings quote the input (the phrase and about 30 characters either
//! side), so they are as sensitive as the text checked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The lexicon built into the binary.
pub const EMBEDDED_LEXICON: &str = include_str!("../../../lexicon/victim-blaming.json");

/// The `format` a lexicon file must declare.
pub const LEXICON_FORMAT: &str = "agencylink-lexicon-v1";

/// Characters of context shown either side of a finding: enough to see
/// the sentence, little enough not to copy a whole case note.
const CONTEXT_CHARS: usize = 30;

/// Why a lexicon or an input could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum LanguageError {
    /// The lexicon file is not JSON of the expected shape.
    #[error("the lexicon is not valid: {0}")]
    LexiconJson(#[from] serde_json::Error),
    /// The lexicon parses but breaks a rule (named in the message).
    #[error("the lexicon is not valid: {0}")]
    Lexicon(String),
    /// The CSV input could not be read.
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    /// A column named in `--columns` is not in the CSV header.
    #[error("no column `{column}` in the CSV header (its columns: {available})")]
    UnknownColumn {
        /// The column asked for.
        column: String,
        /// The header's columns, comma-separated.
        available: String,
    },
    /// Columns were named for an input that is not CSV.
    #[error("columns can only be chosen in CSV input")]
    ColumnsNotCsv,
}

/// What kind of text an input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Plain text.
    Text,
    /// Markdown: checked as text (its markers are not word characters, so
    /// `**child** prostitute` is still one phrase).
    Markdown,
    /// HTML: tags removed and common entities decoded first; the content of
    /// `<script>` and `<style>` is never checked.
    Html,
    /// CSV with a header row; the named columns (or all) are checked.
    Csv,
}

impl InputKind {
    /// From a file name's extension (`.html`/`.htm`, `.md`/`.markdown`,
    /// `.csv`); anything else is plain text.
    pub fn from_file_name(name: &str) -> InputKind {
        let lower = name.to_ascii_lowercase();
        let ext = lower.rsplit_once('.').map_or("", |(_, e)| e);
        match ext {
            "html" | "htm" | "xhtml" => InputKind::Html,
            "md" | "markdown" => InputKind::Markdown,
            "csv" => InputKind::Csv,
            _ => InputKind::Text,
        }
    }
}

/// When the words of an entry are not victim-blaming.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Unless {
    /// One of `words` is among the `within` words before the phrase, in the
    /// same sentence (a negation such as "cannot consent").
    WordBefore {
        /// Words (alternatives as in patterns; `*` ends a prefix).
        words: Vec<String>,
        /// How many words back to look.
        within: usize,
        /// Why this context is not victim-blaming.
        note: String,
        /// A sentence with the phrase that this rule exempts.
        example: String,
    },
    /// One of `words` is among the `within` words after the phrase, in the
    /// same sentence (a stated adult age after "young man").
    WordAfter {
        /// Words (alternatives as in patterns; `*` ends a prefix).
        words: Vec<String>,
        /// How many words on to look.
        within: usize,
        /// Why this context is not victim-blaming.
        note: String,
        /// A sentence with the phrase that this rule exempts.
        example: String,
    },
    /// The phrase is part of this longer phrase ("age of consent").
    Inside {
        /// The longer phrase, written as a pattern.
        phrase: String,
        /// Why this context is not victim-blaming.
        note: String,
        /// A sentence with the phrase that this rule exempts.
        example: String,
    },
    /// The phrase stands in quotation marks: the writer records someone
    /// else's words (the child's, as the guidance advises), not their own.
    Quoted {
        /// Why this context is not victim-blaming.
        note: String,
        /// A sentence with the phrase that this rule exempts.
        example: String,
    },
}

impl Unless {
    /// The rule's example sentence.
    pub fn example(&self) -> &str {
        match self {
            Unless::WordBefore { example, .. }
            | Unless::WordAfter { example, .. }
            | Unless::Inside { example, .. }
            | Unless::Quoted { example, .. } => example,
        }
    }
}

/// One lexicon entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// A short stable id.
    pub id: String,
    /// Phrases: words separated by spaces, each word's alternatives by `|`.
    pub patterns: Vec<String>,
    /// Why the phrase is harmful.
    pub reason: String,
    /// Better wording.
    pub suggestion: String,
    /// A key of the lexicon's `sources`.
    pub source: String,
    /// A sentence in which the entry must be found.
    pub example: String,
    /// Contexts in which the same words are not reported.
    #[serde(default)]
    pub unless: Vec<Unless>,
    /// The full citation of `source`, filled in when the lexicon loads.
    #[serde(skip)]
    pub citation: String,
    #[serde(skip)]
    compiled: Vec<Pattern>,
    #[serde(skip)]
    compiled_unless: Vec<CompiledUnless>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LexiconFile {
    format: String,
    sources: BTreeMap<String, String>,
    entries: Vec<Entry>,
}

/// A parsed, checked lexicon.
#[derive(Debug, Clone)]
pub struct Lexicon {
    sources: BTreeMap<String, String>,
    entries: Vec<Entry>,
}

/// One victim-blaming or adultifying phrase found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// 1-based line in the input file.
    pub line: usize,
    /// 1-based character column in that line (in CSV, within the cell's line).
    pub column: usize,
    /// The CSV column, for CSV input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The lexicon entry's id.
    pub id: String,
    /// The words as written.
    pub phrase: String,
    /// The phrase with up to 30 characters either side (whitespace collapsed).
    pub context: String,
    /// Why it is harmful.
    pub reason: String,
    /// Better wording.
    pub suggestion: String,
    /// The published guidance the entry comes from.
    pub source: String,
}

/// One word of a pattern: its alternatives.
#[derive(Debug, Clone)]
struct Word(Vec<String>);

impl Word {
    fn matches(&self, word: &str) -> bool {
        self.0.iter().any(|alt| match alt.strip_suffix('*') {
            Some(prefix) => word.starts_with(prefix),
            None => alt == word,
        })
    }
}

#[derive(Debug, Clone)]
struct Pattern(Vec<Word>);

#[derive(Debug, Clone)]
enum CompiledUnless {
    Before(Word, usize),
    After(Word, usize),
    Inside(Pattern),
    Quoted,
}

/// A word of the text being checked.
#[derive(Debug)]
struct Token {
    start: usize,
    end: usize,
    word: String,
    sentence: u32,
}

fn is_quote(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | '\u{2018}' | '\u{2019}' | '\u{201C}' | '\u{201D}' | '«' | '»'
    )
}

/// Split text into lowercase words. An apostrophe between letters stays in
/// the word ("can't"); everything else that is not a letter or digit
/// separates words (so "risk-taking" is "risk taking"). Sentences end at
/// `.`, `!`, `?`, `;`, a blank line or a paragraph separator (U+2029, which
/// the HTML reader puts at block tags), so a phrase or a context rule never
/// reaches into the next sentence.
fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut sentence = 0u32;
    let mut newlines = 0u32;
    let mut current: Option<(usize, String)> = None;
    for (k, &(i, raw)) in chars.iter().enumerate() {
        let c = if raw == '\u{2019}' || raw == '\u{2018}' {
            '\''
        } else {
            raw
        };
        let inner_apostrophe = c == '\''
            && current.is_some()
            && chars.get(k + 1).is_some_and(|&(_, n)| n.is_alphanumeric());
        if c.is_alphanumeric() || inner_apostrophe {
            newlines = 0;
            let (_, word) = current.get_or_insert_with(|| (i, String::new()));
            word.extend(c.to_lowercase());
            continue;
        }
        if let Some((start, word)) = current.take() {
            out.push(Token {
                start,
                end: i,
                word,
                sentence,
            });
        }
        match c {
            '.' | '!' | '?' | ';' | '\u{2029}' => {
                sentence += 1;
                newlines = 0;
            }
            '\n' => {
                newlines += 1;
                if newlines == 2 {
                    sentence += 1;
                }
            }
            c if c.is_whitespace() => {}
            _ => newlines = 0,
        }
    }
    if let Some((start, word)) = current.take() {
        out.push(Token {
            start,
            end: text.len(),
            word,
            sentence,
        });
    }
    out
}

fn compile_word(spec: &str, what: &str) -> Result<Word, LanguageError> {
    let mut alts = Vec::new();
    for alt in spec.split('|') {
        let lower = alt.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'");
        let body = lower.strip_suffix('*').unwrap_or(&lower);
        // Each alternative must be one word as the tokenizer sees it, or it
        // could never match (e.g. "risk-taking" is two words).
        let toks = tokenize(body);
        if toks.len() != 1 || toks[0].word != body {
            return Err(LanguageError::Lexicon(format!(
                "{what}: `{alt}` is not a single word (write words separated by spaces, alternatives by |)"
            )));
        }
        alts.push(lower);
    }
    Ok(Word(alts))
}

fn compile_pattern(spec: &str, what: &str) -> Result<Pattern, LanguageError> {
    let words = spec
        .split_whitespace()
        .map(|w| compile_word(w, what))
        .collect::<Result<Vec<_>, _>>()?;
    if words.is_empty() {
        return Err(LanguageError::Lexicon(format!("{what}: an empty pattern")));
    }
    Ok(Pattern(words))
}

impl Pattern {
    fn matches_at(&self, tokens: &[Token], i: usize) -> bool {
        let n = self.0.len();
        if i + n > tokens.len() {
            return false;
        }
        let sentence = tokens[i].sentence;
        self.0
            .iter()
            .zip(&tokens[i..i + n])
            .all(|(w, t)| t.sentence == sentence && w.matches(&t.word))
    }
}

impl Lexicon {
    /// The lexicon built into the binary.
    pub fn embedded() -> Result<Lexicon, LanguageError> {
        Lexicon::parse(EMBEDDED_LEXICON)
    }

    /// Parse and check a lexicon file: every entry has patterns, a reason,
    /// a suggestion, a known source and an example; ids are unique.
    pub fn parse(json: &str) -> Result<Lexicon, LanguageError> {
        let file: LexiconFile = serde_json::from_str(json)?;
        if file.format != LEXICON_FORMAT {
            return Err(LanguageError::Lexicon(format!(
                "format is `{}`, expected `{LEXICON_FORMAT}`",
                file.format
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut entries = Vec::with_capacity(file.entries.len());
        for mut e in file.entries {
            let what = format!("entry `{}`", e.id);
            if e.id.trim().is_empty() || !seen.insert(e.id.clone()) {
                return Err(LanguageError::Lexicon(format!(
                    "{what}: ids must be non-empty and unique"
                )));
            }
            for (name, value) in [
                ("reason", &e.reason),
                ("suggestion", &e.suggestion),
                ("example", &e.example),
            ] {
                if value.trim().is_empty() {
                    return Err(LanguageError::Lexicon(format!("{what}: empty {name}")));
                }
            }
            e.citation = match file.sources.get(&e.source) {
                Some(c) => c.clone(),
                None => {
                    return Err(LanguageError::Lexicon(format!(
                        "{what}: source `{}` is not one of the lexicon's sources",
                        e.source
                    )));
                }
            };
            if e.patterns.is_empty() {
                return Err(LanguageError::Lexicon(format!("{what}: no patterns")));
            }
            e.compiled = e
                .patterns
                .iter()
                .map(|p| compile_pattern(p, &what))
                .collect::<Result<_, _>>()?;
            e.compiled_unless = e
                .unless
                .iter()
                .map(|u| {
                    Ok(match u {
                        Unless::WordBefore { words, within, .. }
                        | Unless::WordAfter { words, within, .. } => {
                            let word = compile_word(&words.join("|"), &what)?;
                            if *within == 0 {
                                return Err(LanguageError::Lexicon(format!(
                                    "{what}: `within` must be at least 1"
                                )));
                            }
                            if matches!(u, Unless::WordBefore { .. }) {
                                CompiledUnless::Before(word, *within)
                            } else {
                                CompiledUnless::After(word, *within)
                            }
                        }
                        Unless::Inside { phrase, .. } => {
                            CompiledUnless::Inside(compile_pattern(phrase, &what)?)
                        }
                        Unless::Quoted { .. } => CompiledUnless::Quoted,
                    })
                })
                .collect::<Result<_, LanguageError>>()?;
            entries.push(e);
        }
        if entries.is_empty() {
            return Err(LanguageError::Lexicon("no entries".into()));
        }
        Ok(Lexicon {
            sources: file.sources,
            entries,
        })
    }

    /// The entries, in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The sources: key and full citation.
    pub fn sources(&self) -> &BTreeMap<String, String> {
        &self.sources
    }

    /// Check one input.
    pub fn check(
        &self,
        kind: InputKind,
        src: &str,
        columns: Option<&[String]>,
    ) -> Result<Vec<Finding>, LanguageError> {
        match kind {
            InputKind::Csv => self.check_csv(src, columns),
            _ if columns.is_some() => Err(LanguageError::ColumnsNotCsv),
            InputKind::Html => Ok(self.check_html(src)),
            InputKind::Text | InputKind::Markdown => Ok(self.check_text(src)),
        }
    }

    /// Check plain text or Markdown.
    pub fn check_text(&self, src: &str) -> Vec<Finding> {
        let lines = LineIndex::new(src);
        self.findings(src, |at| lines.locate(src, at), None)
    }

    /// Check HTML: tags are removed and entities decoded first, so a phrase
    /// split by markup is found; positions refer to the HTML source.
    pub fn check_html(&self, src: &str) -> Vec<Finding> {
        let (text, origin) = strip_html(src);
        let lines = LineIndex::new(src);
        self.findings(
            &text,
            |at| {
                // The source byte of the stripped text's byte `at`.
                let k = origin.partition_point(|&(t, _)| t <= at).saturating_sub(1);
                let orig = origin.get(k).map_or(0, |&(_, o)| o);
                lines.locate(src, orig)
            },
            None,
        )
    }

    /// Check the named columns (all when `columns` is `None`) of CSV with a
    /// header row. Lines are the file's; columns count within the cell.
    pub fn check_csv(
        &self,
        src: &str,
        columns: Option<&[String]>,
    ) -> Result<Vec<Finding>, LanguageError> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(src.as_bytes());
        let header = reader.headers()?.clone();
        let names: Vec<&str> = header.iter().collect();
        let wanted: Vec<usize> = match columns {
            None => (0..names.len()).collect(),
            Some(cols) => cols
                .iter()
                .map(|c| {
                    names
                        .iter()
                        .position(|n| n.trim() == c.trim())
                        .ok_or_else(|| LanguageError::UnknownColumn {
                            column: c.clone(),
                            available: names.join(", "),
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let mut out = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            let start_line = reader.position().line() as usize;
            if !reader.read_record(&mut record)? {
                break;
            }
            let start_line = record.position().map_or(start_line, |p| p.line() as usize);
            for &idx in &wanted {
                let Some(cell) = record.get(idx) else {
                    continue;
                };
                let lines = LineIndex::new(cell);
                out.extend(self.findings(
                    cell,
                    |at| {
                        let (l, c) = lines.locate(cell, at);
                        (start_line + l - 1, c)
                    },
                    Some(names[idx]),
                ));
            }
        }
        Ok(out)
    }

    /// The findings in `text`, placed by `locate` (text byte → line, column).
    fn findings(
        &self,
        text: &str,
        locate: impl Fn(usize) -> (usize, usize),
        field: Option<&str>,
    ) -> Vec<Finding> {
        self.hits(text, true)
            .into_iter()
            .map(|(entry, start, end)| {
                let e = &self.entries[entry];
                let (line, column) = locate(start);
                Finding {
                    line,
                    column,
                    field: field.map(str::to_owned),
                    id: e.id.clone(),
                    phrase: text[start..end]
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                    context: context(text, start, end),
                    reason: e.reason.clone(),
                    suggestion: e.suggestion.clone(),
                    source: e.citation.clone(),
                }
            })
            .collect()
    }

    /// (entry index, start byte, end byte) of each phrase in `text`, in
    /// text order; with `apply_unless` false the context rules are ignored
    /// (the tests use that to show each rule's example needs its rule).
    fn hits(&self, text: &str, apply_unless: bool) -> Vec<(usize, usize, usize)> {
        let tokens = tokenize(text);
        let mut hits: Vec<(usize, usize, usize)> = Vec::new();
        for (ei, e) in self.entries.iter().enumerate() {
            let mut spans: Vec<(usize, usize)> = Vec::new();
            for p in &e.compiled {
                for i in 0..tokens.len() {
                    if !p.matches_at(&tokens, i) {
                        continue;
                    }
                    let j = i + p.0.len();
                    if apply_unless && exempt(e, &tokens, text, i, j) {
                        continue;
                    }
                    spans.push((i, j));
                }
            }
            // Two patterns of one entry may match the same words: report once.
            spans.sort_unstable();
            let mut last_end = 0;
            for (i, j) in spans {
                if i < last_end {
                    continue;
                }
                last_end = j;
                hits.push((ei, tokens[i].start, tokens[j - 1].end));
            }
        }
        hits.sort_unstable_by_key(|&(e, s, _)| (s, e));
        hits
    }
}

/// Whether an `unless` rule of `e` exempts the match of tokens `i..j`.
fn exempt(e: &Entry, tokens: &[Token], text: &str, i: usize, j: usize) -> bool {
    let sentence = tokens[i].sentence;
    e.compiled_unless.iter().any(|rule| match rule {
        CompiledUnless::Before(word, within) => tokens[i.saturating_sub(*within)..i]
            .iter()
            .any(|t| t.sentence == sentence && word.matches(&t.word)),
        CompiledUnless::After(word, within) => tokens[j..(j + within).min(tokens.len())]
            .iter()
            .any(|t| t.sentence == sentence && word.matches(&t.word)),
        CompiledUnless::Inside(p) => {
            let n = p.0.len();
            (i.saturating_sub(n.saturating_sub(1))..=i)
                .any(|k| k + n >= j && p.matches_at(tokens, k))
        }
        CompiledUnless::Quoted => {
            let before = text[..tokens[i].start].chars().next_back();
            let after = text[tokens[j - 1].end..].chars().next();
            before.is_some_and(is_quote) && after.is_some_and(is_quote)
        }
    })
}

/// The phrase with up to [`CONTEXT_CHARS`] characters either side, on one
/// line, with `…` where the text goes on.
fn context(text: &str, start: usize, end: usize) -> String {
    let mut before: Vec<char> = text[..start]
        .chars()
        .rev()
        .take(CONTEXT_CHARS + 1)
        .collect();
    let cut_before = before.len() > CONTEXT_CHARS;
    before.truncate(CONTEXT_CHARS);
    before.reverse();
    let mut after: Vec<char> = text[end..].chars().take(CONTEXT_CHARS + 1).collect();
    let cut_after = after.len() > CONTEXT_CHARS;
    after.truncate(CONTEXT_CHARS);
    let joined = format!(
        "{}{}{}",
        before.into_iter().collect::<String>(),
        &text[start..end],
        after.into_iter().collect::<String>()
    );
    let one_line = joined.split_whitespace().collect::<Vec<_>>().join(" ");
    format!(
        "{}{one_line}{}",
        if cut_before { "…" } else { "" },
        if cut_after { "…" } else { "" }
    )
}

/// Byte offsets of line starts, to turn a byte offset into line and column.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(src: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex(starts)
    }

    /// 1-based line and character column of byte `at`.
    fn locate(&self, src: &str, at: usize) -> (usize, usize) {
        let line = self.0.partition_point(|&s| s <= at).max(1);
        let start = self.0[line - 1];
        let column = src.get(start..at).map_or(1, |s| s.chars().count() + 1);
        (line, column)
    }
}

/// Tags that end a block of text: a phrase or rule never spans them.
const BLOCK_TAGS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "caption",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "header",
    "hr",
    "html",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "title",
    "tr",
    "ul",
];

/// The text of an HTML document and, for each piece of it, the source byte
/// it came from: (text byte, source byte) pairs in order. Inline tags
/// vanish (so `<em>child</em> prostitute` is one phrase), block tags become
/// a paragraph break, comments and the content of `<script>` and `<style>`
/// are dropped, and common entities are decoded.
fn strip_html(src: &str) -> (String, Vec<(usize, usize)>) {
    // ASCII lowercasing keeps every byte where it was.
    let lower = src.to_ascii_lowercase();
    let mut text = String::with_capacity(src.len());
    let mut origin: Vec<(usize, usize)> = Vec::new();
    let mut push = |text: &mut String, c: char, at: usize| {
        origin.push((text.len(), at));
        text.push(c);
    };
    let mut i = 0;
    while i < src.len() {
        let Some(c) = src[i..].chars().next() else {
            break;
        };
        if c == '<' {
            let rest = &lower[i + 1..];
            if rest.starts_with("!--") {
                i = lower[i + 4..]
                    .find("-->")
                    .map_or(src.len(), |k| i + 4 + k + 3);
                continue;
            }
            let closing = rest.starts_with('/');
            let name: String = rest
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            let markup = !name.is_empty() || rest.starts_with('!') || rest.starts_with('?');
            if markup {
                let end = lower[i..].find('>').map_or(src.len(), |k| i + k + 1);
                if !closing && (name == "script" || name == "style") {
                    let close = format!("</{name}");
                    let stop = lower[end..].find(&close).map_or(src.len(), |k| end + k);
                    i = lower[stop..].find('>').map_or(src.len(), |k| stop + k + 1);
                    push(&mut text, '\u{2029}', stop.min(src.len().saturating_sub(1)));
                    continue;
                }
                if BLOCK_TAGS.contains(&name.as_str()) {
                    push(&mut text, '\u{2029}', i);
                } else if name == "br" {
                    push(&mut text, '\n', i);
                }
                i = end;
                continue;
            }
        }
        if c == '&'
            && let Some((decoded, len)) = entity(&src[i..])
        {
            // A soft hyphen only marks where a word may break: drop it so
            // the word stays whole.
            if decoded != '\u{AD}' {
                push(&mut text, decoded, i);
            }
            i += len;
            continue;
        }
        push(&mut text, c, i);
        i += c.len_utf8();
    }
    (text, origin)
}

/// The character an entity at the start of `s` stands for, and its length.
fn entity(s: &str) -> Option<(char, usize)> {
    // Entities are short: look for the `;` in the first few bytes only.
    let end = s.bytes().take(12).position(|b| b == b';')?;
    let name = &s[1..end];
    let c = if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        char::from_u32(code)?
    } else {
        match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => ' ',
            "lsquo" => '\u{2018}',
            "rsquo" => '\u{2019}',
            "ldquo" => '\u{201C}',
            "rdquo" => '\u{201D}',
            "ndash" => '\u{2013}',
            "mdash" => '\u{2014}',
            "hellip" => '\u{2026}',
            "shy" => '\u{AD}',
            _ => return None,
        }
    };
    Some((c, end + 1))
}

#[cfg(test)]
mod tests;
