//! Schemas that are not the embedded ones (`--schemas DIR`): visible in
//! lineage with their hash, guarded against dropping identifiers, and held
//! to patterns a linear-time regex engine accepts.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::util::{Scratch, run_env, run_in};
use crate::validate::synth;

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The embedded crime schema's file name and text, as `agencylink schema` prints it.
fn embedded_crime(s: &Scratch) -> (String, String) {
    let text = run_in(&s.dir, &["schema", "police.cse_crime"])
        .expect_code(0)
        .stdout;
    let run = run_in(&s.dir, &["datasets"]).expect_code(0);
    let version = run
        .stdout
        .lines()
        .find(|l| l.starts_with("police.cse_crime "))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("crime version")
        .to_owned();
    (format!("police.cse_crime.{version}.schema.json"), text)
}

fn ingest_args(file: &str) -> Vec<&str> {
    vec![
        "ingest",
        "--data-dir",
        "d",
        "--agency",
        "gmp-police",
        "--dataset",
        "police.cse_crime",
        file,
    ]
}

fn lineage_of(s: &Scratch, upload: &str) -> Value {
    let show = run_in(&s.dir, &["lineage", "show", upload, "--data-dir", "d"]).expect_code(0);
    show.json()[0].clone()
}

#[test]
fn a_schema_without_the_embedded_identifiers_is_refused_unless_allowed_and_then_visible() {
    let s = Scratch::new("schemas-guard");
    let (name, text) = embedded_crime(&s);
    let mut schema: Value = serde_json::from_str(&text).expect("schema JSON");
    let mut stripped = Vec::new();
    for (field, prop) in schema["properties"].as_object_mut().expect("properties") {
        let p = prop.as_object_mut().expect("property");
        if p.remove("x-identifier").is_some() {
            stripped.push(field.clone());
        }
        p.remove("x-match");
        p.remove("x-generalise");
    }
    assert!(stripped.iter().any(|f| f == "dob"), "{stripped:?}");
    let custom = serde_json::to_string_pretty(&schema).expect("JSON") + "\n";
    std::fs::create_dir_all(s.path("custom")).expect("mkdir");
    s.write(&format!("custom/{name}"), custom.as_bytes());
    let (file, _) = synth(&s, "police.cse_crime", 30, 7, 0.0);
    let path = file.to_str().expect("path");

    let mut args = vec!["--schemas", "custom"];
    args.extend(ingest_args(path));
    let refused = run_in(&s.dir, &args).expect_code(2);
    assert!(
        refused.stderr.contains("police.cse_crime")
            && refused.stderr.contains("field `dob` has no x-identifier")
            && refused.stderr.contains("--allow-schema-changes"),
        "{}",
        refused.stderr
    );
    assert!(!s.path("d").exists(), "nothing stored by a refused schema");
    // The guard holds for every command that loads the catalog.
    run_in(&s.dir, &["--schemas", "custom", "datasets"]).expect_code(2);
    // The environment variable works like the flag.
    let mut via_env = args.clone();
    via_env[4] = "d-env";
    let env = run_env(
        &s.dir,
        &via_env,
        &[("AGENCYLINK_ALLOW_SCHEMA_CHANGES", "true")],
    );
    assert_eq!(env.code, 0, "{}", env.stderr);

    let mut allowed_args = vec!["--allow-schema-changes"];
    allowed_args.extend(&args);
    let allowed = run_in(&s.dir, &allowed_args).expect_code(0);
    assert!(
        allowed.stderr.contains("warning:")
            && allowed.stderr.contains("field `dob` has no x-identifier"),
        "{}",
        allowed.stderr
    );
    let upload = allowed.json()["upload_id"]
        .as_str()
        .expect("upload id")
        .to_owned();
    let event = lineage_of(&s, &upload);
    let recorded = &event["schema"];
    assert_eq!(recorded["origin"], "directory", "{event}");
    assert_eq!(recorded["sha256"], sha256_hex(custom.as_bytes()));
    assert_eq!(recorded["file"], name.as_str());
    assert_eq!(recorded["differs_from_embedded"], true);
    let removed = recorded["identifiers_removed"]
        .as_array()
        .expect("identifiers_removed");
    assert!(removed.contains(&Value::from("dob")), "{recorded}");

    let export = run_in(
        &s.dir,
        &["lineage", "export", "--openlineage", "--data-dir", "d"],
    )
    .expect_code(0);
    let ol: Value = export
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .find(|e| e["run"]["facets"]["agencylink_upload"]["upload_id"] == upload.as_str())
        .expect("the upload's run event");
    let facet = &ol["run"]["facets"]["agencylink_upload"]["schema"];
    assert_eq!(facet["origin"], "directory");
    assert_eq!(facet["sha256"], sha256_hex(custom.as_bytes()));
    assert!(
        ol["inputs"][0]["facets"].get("schema").is_none(),
        "the embedded schema's fields are not passed off as the custom schema's"
    );
    run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);
}

#[test]
fn embedded_and_custom_schemas_are_recorded_with_their_hash() {
    let s = Scratch::new("schemas-custom");
    let (name, text) = embedded_crime(&s);
    let (file, _) = synth(&s, "police.cse_crime", 20, 8, 0.0);
    let embedded = run_in(&s.dir, &ingest_args(file.to_str().expect("path"))).expect_code(0);
    let event = lineage_of(&s, embedded.json()["upload_id"].as_str().expect("id"));
    assert_eq!(
        event["schema"],
        serde_json::json!({"origin": "embedded", "sha256": sha256_hex(text.as_bytes())})
    );

    // A byte-identical copy in a directory: no warning, but lineage says
    // where it came from.
    std::fs::create_dir_all(s.path("copy")).expect("mkdir");
    s.write(&format!("copy/{name}"), text.as_bytes());
    let run = run_in(&s.dir, &["--schemas", "copy", "datasets"]).expect_code(0);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);

    // A dataset with no embedded counterpart is a feature, and visible.
    let custom = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Outreach contact",
  "description": "A custom dataset.",
  "type": "object",
  "additionalProperties": false,
  "required": ["contact_ref", "contact_date"],
  "properties": {
    "contact_ref": {"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"},
    "contact_date": {"type": "string", "format": "date", "x-concept": "event_date"},
    "venue": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}$"}
  }
}
"#;
    std::fs::create_dir_all(s.path("extra")).expect("mkdir");
    s.write(
        "extra/voluntary.outreach_contact.v1.schema.json",
        custom.as_bytes(),
    );
    let csv = s.write(
        "outreach.csv",
        b"contact_ref,contact_date,venue\nOC-1,2025-03-01,AB12\nOC-2,2025-03-02,CD34\n",
    );
    let run = run_in(
        &s.dir,
        &[
            "--schemas",
            "extra",
            "ingest",
            "--data-dir",
            "d",
            "--agency",
            "gm-voluntary",
            "--dataset",
            "voluntary.outreach_contact",
            csv.to_str().expect("path"),
        ],
    )
    .expect_code(0);
    assert!(
        run.stderr.contains("has no embedded schema"),
        "{}",
        run.stderr
    );
    let event = lineage_of(&s, run.json()["upload_id"].as_str().expect("id"));
    assert_eq!(event["schema"]["origin"], "directory");
    assert_eq!(event["schema"]["embedded_counterpart"], false);
    assert_eq!(event["schema"]["sha256"], sha256_hex(custom.as_bytes()));
    run_in(&s.dir, &["lineage", "verify", "--data-dir", "d"]).expect_code(0);
}

#[test]
fn a_pattern_needing_backtracking_is_refused_at_schema_load() {
    let s = Scratch::new("schemas-pattern");
    let custom = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["contact_ref", "contact_date"],
  "properties": {
    "contact_ref": {"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"},
    "contact_date": {"type": "string", "format": "date", "x-concept": "event_date"},
    "venue": {"type": "string", "pattern": "^(a+)+\\1$"}
  }
}
"#;
    std::fs::create_dir_all(s.path("bad")).expect("mkdir");
    s.write(
        "bad/voluntary.outreach_contact.v1.schema.json",
        custom.as_bytes(),
    );
    let csv = s.write(
        "outreach.csv",
        b"contact_ref,contact_date,venue\nOC-1,2025-03-01,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab\n",
    );
    let run = run_in(
        &s.dir,
        &[
            "--schemas",
            "bad",
            "validate",
            "--dataset",
            "voluntary.outreach_contact",
            csv.to_str().expect("path"),
        ],
    )
    .expect_code(2);
    assert!(
        run.stderr.contains("voluntary.outreach_contact")
            && run.stderr.contains("field `venue`")
            && run.stderr.contains("rule `pattern`")
            && run.stderr.contains("backreferences or lookaround"),
        "{}",
        run.stderr
    );
}
