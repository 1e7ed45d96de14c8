//! What the tool writes about its input (lineage, reports, stderr, CSV
//! files people open in spreadsheets) carries nothing raw and nothing that
//! runs: issue 19, items 3, 6 and 7. Synthetic data only.

use std::path::Path;

use crate::util::{Run, Scratch, ingest_in, run_in};
use crate::validate::{identifier_values, synth};

/// Every file under `dir`, recursively, as bytes (the store, its WAL and
/// body file, reports, curated output, anything left in landing).
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p.display().to_string(), bytes));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Panic naming where any of `secrets` appears: in a file under `data`, or
/// in the stdout or stderr of one of `runs`.
fn assert_no_trace(data: &Path, runs: &[&Run], secrets: &[String]) {
    let mut places: Vec<(String, Vec<u8>)> = files_under(data);
    for r in runs {
        places.push((format!("stdout of {:?}", r.args), r.stdout.clone().into()));
        places.push((format!("stderr of {:?}", r.args), r.stderr.clone().into()));
    }
    for secret in secrets {
        for (place, bytes) in &places {
            assert!(
                !contains(bytes, secret),
                "{secret:?} appears in {place} ({} bytes)",
                bytes.len()
            );
        }
    }
}

/// The auditor's views of lineage: list, show for every upload, export.
fn lineage_views(s: &Scratch) -> Vec<Run> {
    let list = run_in(&s.dir, &["lineage", "list", "--data-dir", "d"]).expect_code(0);
    let mut runs = Vec::new();
    for line in list.stdout.lines() {
        if let Some(upload) = line.split_whitespace().find(|w| w.starts_with("u_")) {
            runs.push(
                run_in(&s.dir, &["lineage", "show", upload, "--data-dir", "d"]).expect_code(0),
            );
        }
    }
    assert!(!runs.is_empty(), "no upload in lineage:\n{}", list.stdout);
    runs.push(list);
    runs.push(
        run_in(
            &s.dir,
            &["lineage", "export", "--openlineage", "--data-dir", "d"],
        )
        .expect_code(0),
    );
    runs
}

/// `agencylink ingest` of `path` into the data directory `d`.
fn ingest(s: &Scratch, agency: &str, dataset: &str, path: &str) -> Run {
    ingest_in(&s.dir, "d", agency, dataset, path)
}

#[test]
fn a_headerless_file_and_a_name_as_a_key_leave_no_trace() {
    let s = Scratch::new("hyg-headerless");
    let ds = "council.missing_episode";
    let (file, _) = synth(&s, ds, 5, 19, 0.0);
    let csv = std::fs::read_to_string(&file).expect("read");
    let mut lines = csv.lines();
    let header = lines.next().expect("header");
    let first = lines.next().expect("row");
    // The first data row's identifiers (name, references, postcode, …) are
    // what a header-less file puts where the header should be.
    let mut secrets = identifier_values(&s, ds, &format!("{header}\n{first}\n"));
    assert!(secrets.len() >= 3, "{secrets:?}");
    let headerless: String = csv.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let headerless = s.write("headerless.csv", headerless.as_bytes());
    // A 20 MB header cell must not become a 20 MB lineage entry.
    let big_cell = "JaneDoe".repeat(3_000_000);
    let big = s.write(
        "big-header.csv",
        format!("{header},{big_cell}\n{first},x\n").as_bytes(),
    );
    let key = "Jane Smith 9434765919";
    let ndjson = s.write(
        "odd-key.ndjson",
        format!("{{\"record_ref\":\"MISS-77\",\"{key}\":\"07700 900461\"}}\n").as_bytes(),
    );
    secrets.extend(
        [
            key,
            "Jane Smith",
            "9434765919",
            "07700 900461",
            "JaneDoeJaneDoe",
        ]
        .map(str::to_owned),
    );

    let mut runs = Vec::new();
    for (path, code) in [(&headerless, 2), (&big, 2), (&ndjson, 1)] {
        let path = path.to_str().expect("path");
        runs.push(ingest(&s, "bury-council", ds, path).expect_code(code));
        for report in ["text", "json"] {
            runs.push(
                run_in(
                    &s.dir,
                    &["validate", "--dataset", ds, "--report", report, path],
                )
                .expect_code(code),
            );
        }
    }
    let failure = runs[0].json();
    assert_eq!(failure["file_errors"][0]["code"], "unknown_column");
    let message = failure["file_errors"][0]["message"]
        .as_str()
        .expect("message");
    assert!(message.starts_with("column 1 of the header"), "{message}");
    assert!(
        runs[8].stdout.contains("key 2 of the line is not a field"),
        "the NDJSON key is named by position:\n{}",
        runs[8].stdout
    );

    let views = lineage_views(&s);
    for v in &views {
        assert!(
            v.stdout.len() < 64 * 1024,
            "{:?}: {} bytes",
            v.args,
            v.stdout.len()
        );
    }
    let all: Vec<&Run> = runs.iter().chain(&views).collect();
    assert_no_trace(&s.path("d"), &all, &secrets);
}

/// `csv` with the `column` cell of data row `row` (1-based) set to `value`.
fn set_cell(csv: &str, row: usize, column: &str, value: &str) -> String {
    let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
    let col = lines[0]
        .split(',')
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no column {column}"));
    let mut cells: Vec<String> = lines[row].split(',').map(str::to_owned).collect();
    cells[col] = value.to_owned();
    lines[row] = cells.join(",");
    lines.join("\n") + "\n"
}

/// A bad borough names every allowed one, with its ONS code (the schema's
/// `x-codes` meaning).
const BOROUGHS: &str = "use Bolton (E08000001), Bury (E08000002), Manchester (E08000003), Oldham (E08000004), Rochdale (E08000005), Salford (E08000006), Stockport (E08000007), Tameside (E08000008), Trafford (E08000009) or Wigan (E08000010)";

#[test]
fn rejections_quote_a_bad_value_only_when_it_looks_like_a_code() {
    let s = Scratch::new("hyg-quote");
    let ds = "police.cse_crime";
    let (file, _) = synth(&s, ds, 6, 5, 0.0);
    let mut csv = std::fs::read_to_string(&file).expect("read");
    csv = set_cell(&csv, 1, "borough", "Jane Doe");
    csv = set_cell(&csv, 2, "cse_flag", "07700 900461");
    csv = set_cell(&csv, 3, "borough", "Boltn");
    csv = set_cell(&csv, 4, "cse_flag", "maybe");
    let path = s.write("quoted.csv", csv.as_bytes());
    let path = path.to_str().expect("path");
    let ingested = ingest(&s, "gmp-police", ds, path).expect_code(1);
    assert_eq!(ingested.json()["rows_rejected"], 4);
    let validate = run_in(
        &s.dir,
        &["validate", "--dataset", ds, "--report", "json", path],
    )
    .expect_code(1);
    let report = validate.json();
    let message = |row: u64, field: &str| {
        report["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .find(|e| e["row"] == row && e["field"] == field)
            .and_then(|e| e["message"].as_str())
            .unwrap_or_else(|| panic!("no error on row {row}, {field}: {report}"))
            .to_owned()
    };
    assert_eq!(
        message(1, "borough"),
        format!("borough (value not shown) is not an allowed code: {BOROUGHS}")
    );
    assert!(message(2, "cse_flag").starts_with("cse_flag (value not shown) must be true or false"));
    assert_eq!(
        message(3, "borough"),
        format!("borough \"Boltn\" is not an allowed code: {BOROUGHS}")
    );
    assert!(message(4, "cse_flag").starts_with("cse_flag \"maybe\" must be true or false"));
    let reports = files_under(&s.path("d/reports"));
    assert_eq!(reports.len(), 2, "the JSON and CSV rejection reports");
    for (name, bytes) in &reports {
        assert!(
            contains(bytes, "Boltn"),
            "{name} quotes the code-shaped value"
        );
    }
    let text = run_in(&s.dir, &["validate", "--dataset", ds, path]).expect_code(1);
    let views = lineage_views(&s);
    let all: Vec<&Run> = [&ingested, &validate, &text]
        .into_iter()
        .chain(&views)
        .collect();
    assert_no_trace(
        &s.path("d"),
        &all,
        &["Jane Doe".into(), "07700 900461".into(), "900461".into()],
    );
}

const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Every cell of a CSV file, header included, in order.
fn all_cells(path: &Path) -> Vec<String> {
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .expect("open csv");
    rd.records()
        .flat_map(|r| {
            r.expect("record")
                .iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The cells of a CSV file (header included) that a spreadsheet could run
/// as a formula: text starting with one of [`FORMULA_STARTS`]. Numbers are
/// not formulas.
fn formula_cells(path: &Path) -> Vec<String> {
    all_cells(path)
        .into_iter()
        .filter(|c| c.starts_with(FORMULA_STARTS) && c.parse::<f64>().is_err())
        .collect()
}

/// A police dataset whose field names and code meanings start with every
/// formula character: what a directory of schemas from elsewhere can hold.
fn formula_schema(s: &Scratch) -> std::path::PathBuf {
    let text = run_in(&s.dir, &["schema", "police.cse_crime"])
        .expect_code(0)
        .stdout;
    let mut schema: serde_json::Value = serde_json::from_str(&text).expect("schema");
    schema["$id"] = "urn:agencylink:schema:police.formula_test:v1".into();
    let meanings = &mut schema["properties"]["premises_type"]["x-codes"];
    meanings["dwelling"] = "=HYPERLINK(\"x\")".into();
    meanings["hotel"] = "+cmd".into();
    meanings["vehicle"] = "-cmd".into();
    meanings["shop"] = "@cmd".into();
    let props = schema["properties"].as_object_mut().expect("properties");
    props.insert(
        "=f".into(),
        serde_json::json!({"type": "string", "enum": ["x"]}),
    );
    props.insert("\tt".into(), serde_json::json!({"type": "string"}));
    props.insert("\rc".into(), serde_json::json!({"type": "string"}));
    props.insert("+p".into(), serde_json::json!({"type": "string"}));
    let dir = s.path("schemas");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("police.formula_test.v1.schema.json"),
        serde_json::to_string_pretty(&schema).expect("json"),
    )
    .expect("write schema");
    dir
}

#[test]
fn every_csv_output_neutralises_formula_cells_headers_included() {
    let s = Scratch::new("hyg-formula");
    let schemas = formula_schema(&s);
    let schemas = schemas.to_str().expect("path");
    let mut lines = String::new();
    for (i, premises) in ["dwelling", "hotel", "vehicle", "shop"].iter().enumerate() {
        let row = serde_json::json!({
            "record_ref": format!("F-{i}"), "crime_ref": format!("CR-{i}"),
            "event_date": "2026-03-01", "borough": "Bury", "offence_code": "71",
            "cse_flag": true, "person_role": if i % 2 == 0 { "victim" } else { "suspect" },
            "family_name": "Doe", "given_name": format!("Jane{i}"), "dob": "2011-05-01",
            "premises_type": premises, "=f": "x", "\tt": "@SUM(1)", "\rc": "-2+3", "+p": "\r1",
        });
        lines.push_str(&format!("{row}\n"));
    }
    // One bad row: the rejection CSV's field and message start with `=`.
    lines.push_str(
        &serde_json::json!({
            "record_ref": "F-9", "crime_ref": "CR-9", "event_date": "2026-03-01",
            "borough": "Bury", "offence_code": "71", "cse_flag": true,
            "person_role": "victim", "family_name": "Doe", "=f": "bad",
        })
        .to_string(),
    );
    lines.push('\n');
    let file = s.write("formula.ndjson", lines.as_bytes());
    let common = ["--schemas", schemas, "--data-dir", "d"];
    let run = |args: &[&str], code: i32| {
        let all: Vec<&str> = common.iter().chain(args).copied().collect();
        run_in(&s.dir, &all).expect_code(code)
    };
    let ingest = run(
        &[
            "ingest",
            "--agency",
            "gmp-police",
            "--dataset",
            "police.formula_test",
            file.to_str().expect("path"),
        ],
        1,
    );
    assert_eq!(ingest.json()["rows_accepted"], 4, "{}", ingest.stdout);
    let export = s.path("export.csv");
    run(
        &[
            "export",
            "--format",
            "csv",
            "--analyst",
            "a.analyst",
            "--purpose",
            "Op Test",
            "--out",
            export.to_str().expect("path"),
        ],
        0,
    );
    run(
        &[
            "profile",
            "--out",
            "profile",
            "--analyst",
            "a.analyst",
            "--purpose",
            "Op Test",
        ],
        0,
    );

    let mut outputs = vec![export.clone()];
    for dir in [s.path("d/reports"), s.path("profile")] {
        outputs.extend(
            files_under(&dir)
                .into_iter()
                .map(|(p, _)| std::path::PathBuf::from(p))
                .filter(|p| p.extension().is_some_and(|e| e == "csv")),
        );
    }
    assert!(outputs.len() > 5, "{outputs:?}");
    for p in &outputs {
        let bad = formula_cells(p);
        assert!(bad.is_empty(), "{}: {bad:?}", p.display());
    }
    // And the neutralised cells are there, text kept after the `'`.
    let export_cells = all_cells(&export);
    for want in ["'=f", "'\tt", "'\rc", "'+p", "'@SUM(1)", "'-2+3", "'\r1"] {
        assert!(
            export_cells.iter().any(|c| c == want),
            "export lacks {want:?}"
        );
    }
    let report = outputs
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".rejections.csv"))
        .expect("rejection csv");
    let report_cells = all_cells(report);
    assert!(report_cells.iter().any(|c| c == "'=f"), "{report_cells:?}");
    assert!(
        report_cells.iter().any(|c| c.starts_with("'=f \"bad\"")),
        "{report_cells:?}"
    );
    let profile_cells: Vec<String> = outputs
        .iter()
        .filter(|p| p.starts_with(s.path("profile")))
        .flat_map(|p| all_cells(p))
        .collect();
    for want in ["'=HYPERLINK(\"x\")", "'+cmd", "'-cmd", "'@cmd"] {
        assert!(
            profile_cells.iter().any(|c| c == want),
            "no profile CSV has {want:?}"
        );
    }
}

#[test]
fn event_dates_out_of_bounds_are_rejected_and_leave_the_period_alone() {
    let s = Scratch::new("hyg-dates");
    let ds = "council.missing_episode";
    let (file, _) = synth(&s, ds, 40, 7, 0.0);
    let clean = std::fs::read_to_string(&file).expect("read");
    let header: Vec<&str> = clean.lines().next().expect("header").split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "event_date")
        .expect("event_date");
    let latest_real = clean
        .lines()
        .skip(3)
        .filter_map(|l| l.split(',').nth(col).map(str::to_owned))
        .max()
        .expect("dates");
    let mut csv = set_cell(&clean, 1, "event_date", "9999-12-31");
    csv = set_cell(&csv, 2, "event_date", "1850-06-01");
    let path = s.write("dates.csv", csv.as_bytes());
    let path = path.to_str().expect("path");
    let validate = run_in(
        &s.dir,
        &["validate", "--dataset", ds, "--report", "json", path],
    )
    .expect_code(1);
    let errors: Vec<(u64, String, String)> = validate.json()["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap_or(0),
                e["field"].as_str().unwrap_or("").to_owned(),
                e["code"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            (1, "event_date".to_owned(), "date_range".to_owned()),
            (2, "event_date".to_owned(), "date_range".to_owned()),
        ]
    );
    let text = run_in(&s.dir, &["validate", "--dataset", ds, path]).expect_code(1);
    assert!(
        text.stdout.contains("event_date") && text.stdout.contains("date_range"),
        "{}",
        text.stdout
    );
    let messages: Vec<String> = validate.json()["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect();
    assert!(
        messages[0].contains("the latest date accepted"),
        "{messages:?}"
    );
    assert!(messages[1].contains("before 1900-01-01"), "{messages:?}");
    for m in &messages {
        assert!(!m.contains("9999") && !m.contains("1850"), "{m}");
    }

    let summary = ingest(&s, "bury-council", ds, path).expect_code(1).json();
    assert_eq!(summary["rows_rejected"], 2);
    assert_eq!(summary["rows_accepted"], 38);
    let profile = run_in(
        &s.dir,
        &[
            "profile",
            "--data-dir",
            "d",
            "--out",
            "p",
            "--analyst",
            "a.analyst",
            "--purpose",
            "Op Test",
        ],
    )
    .expect_code(0);
    let period = &profile.json()["period"];
    assert_eq!(period["to"], latest_real.as_str(), "{period}");
}
