//! `agencylink language check`: flag victim-blaming and adultifying
//! language in reports and case notes. The work is in
//! `agencylink_core::language`; this file reads the files and prints.
//!
//! It reads only the files named (no data directory, no key) and sends
//! nothing anywhere. Its output quotes the input (each phrase with a short
//! context), so it is as sensitive as the files checked.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agencylink_core::language::{Finding, InputKind, Lexicon};
use anyhow::{Context, Result, bail};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum LanguageCommand {
    /// Flag victim-blaming and adultifying phrases, each with the reason,
    /// better wording and the published guidance it comes from.
    ///
    /// Reads plain text, Markdown, HTML (by extension: .md, .html/.htm) or
    /// CSV (.csv; --columns chooses the columns, all by default). Nothing
    /// leaves this machine. The output quotes the input: treat it like the
    /// input. Exit codes: 0 nothing found, 1 something found, 2 bad input
    /// (unreadable file, unknown column, invalid lexicon).
    Check(CheckArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputArg {
    /// One line per finding, then the suggestion, for people.
    Text,
    /// One JSON object: `{"files","findings":[…]}`.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum InputArg {
    Text,
    Markdown,
    Html,
    Csv,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Output style.
    #[arg(long, value_enum, default_value_t = OutputArg::Text)]
    format: OutputArg,
    /// CSV only: the columns to check, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_name = "COLS")]
    columns: Option<Vec<String>>,
    /// Use this lexicon instead of the built-in one (see lexicon/README.md).
    #[arg(long, value_name = "FILE")]
    lexicon: Option<PathBuf>,
    /// What the files are; by default from each file's extension (`-`,
    /// standard input, is plain text unless told).
    #[arg(long, value_enum)]
    input: Option<InputArg>,
    /// The files to check (`-` for standard input).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub(crate) fn language_cmd(cmd: LanguageCommand) -> Result<ExitCode> {
    let LanguageCommand::Check(args) = cmd;
    check(args)
}

fn read_text(path: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
    } else {
        bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (first bad byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

fn check(args: CheckArgs) -> Result<ExitCode> {
    let lexicon = match &args.lexicon {
        Some(path) => Lexicon::parse(&read_text(path)?)
            .with_context(|| format!("lexicon {}", path.display()))?,
        None => Lexicon::embedded().context("the built-in lexicon")?,
    };
    // Every file is read and checked before anything is printed, so a bad
    // input (exit 2) never leaves half a report on stdout.
    let mut results: Vec<(String, Vec<Finding>)> = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let name = path.to_string_lossy().into_owned();
        let kind = match args.input {
            Some(InputArg::Text) => InputKind::Text,
            Some(InputArg::Markdown) => InputKind::Markdown,
            Some(InputArg::Html) => InputKind::Html,
            Some(InputArg::Csv) => InputKind::Csv,
            None if name == "-" => InputKind::Text,
            None => InputKind::from_file_name(&name),
        };
        if args.columns.is_some() && kind != InputKind::Csv {
            bail!(
                "--columns applies to CSV input only, and {name} is not CSV (name it .csv or pass --input csv)"
            );
        }
        let text = read_text(path)?;
        let findings = lexicon
            .check(kind, &text, args.columns.as_deref())
            .with_context(|| format!("checking {name}"))?;
        results.push((name, findings));
    }
    let total: usize = results.iter().map(|(_, f)| f.len()).sum();
    let mut out = io::stdout().lock();
    match args.format {
        OutputArg::Json => {
            let findings: Vec<serde_json::Value> = results
                .iter()
                .flat_map(|(file, fs)| {
                    fs.iter().map(move |f| {
                        let mut v = serde_json::json!({ "file": file });
                        if let (Some(obj), Ok(serde_json::Value::Object(fields))) =
                            (v.as_object_mut(), serde_json::to_value(f))
                        {
                            obj.extend(fields);
                        }
                        v
                    })
                })
                .collect();
            let doc = serde_json::json!({ "files": results.len(), "findings": findings });
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        OutputArg::Text => {
            for (file, fs) in &results {
                for f in fs {
                    let field = f
                        .field
                        .as_deref()
                        .map(|c| format!(" [{c}]"))
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "{file}:{}:{}{field}: \"{}\" ({})\n  in: {}\n  why: {}\n  instead: {}\n  source: {}",
                        f.line,
                        f.column,
                        f.phrase,
                        f.id,
                        f.context,
                        f.reason,
                        f.suggestion,
                        f.source
                    )?;
                }
            }
        }
    }
    out.flush()?;
    if total == 0 {
        eprintln!(
            "no victim-blaming or adultifying language found in {} file(s)",
            results.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{total} finding(s) in {} file(s); the output quotes the input, so treat it like the input",
            results.len()
        );
        Ok(ExitCode::from(1))
    }
}
