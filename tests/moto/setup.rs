//! `agencylink --backend aws setup` and the AWS backend's errors, over moto
//! server with the real binary, as a newcomer following infra/README.md
//! meets them: setup on an empty account creates the buckets, the table
//! with its index and the key secret, a second run changes nothing, and
//! ingest then works; a missing table, bucket or secret, or an endpoint
//! that does not answer, is one line on stderr naming the resource and its
//! variable. Skips only when AWS_ENDPOINT_URL is unset.

use std::path::PathBuf;
use std::process::{Command, Output};

use agencylink_aws::testing::{Moto, moto, rt};
use agencylink_aws::{AgencyPolicy, AwsSettings};
use serde_json::Value;

/// Fresh names on moto; nothing is created until a test does.
struct Names {
    settings: AwsSettings,
    dir: PathBuf,
}

impl Names {
    fn new(m: &Moto, name: &str) -> Names {
        let settings = m.settings(name, AgencyPolicy::default());
        let dir = std::env::temp_dir().join(agencylink_aws::testing::unique("aws-setup"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Names { settings, dir }
    }

    /// Run the binary with `--backend aws` and the deployment's variables.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let s = &self.settings;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agencylink"));
        cmd.args(["--backend", "aws"])
            .args(args)
            .env("AGENCYLINK_BUCKET", &s.data_bucket)
            .env("AGENCYLINK_LANDING_BUCKET", &s.landing_bucket)
            .env(
                "AGENCYLINK_AUDIT_BUCKET",
                s.audit_bucket.as_deref().unwrap_or_default(),
            )
            .env("AGENCYLINK_AUDIT_RETENTION_DAYS", "1")
            .env("AGENCYLINK_TABLE", &s.table)
            .env(
                "AGENCYLINK_KEY_SECRET_ID",
                s.key_secret_id.as_deref().unwrap_or_default(),
            )
            .env("AGENCYLINK_DATA_DIR", self.dir.join("unused"))
            .env_remove("AGENCYLINK_KEY")
            .env_remove("AGENCYLINK_AGENCIES");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run agencylink")
    }

    fn extract(&self) -> PathBuf {
        let out = Command::new(env!("CARGO_BIN_EXE_agencylink"))
            .args(["synth", "--dataset", "police.cse_crime", "--rows", "30"])
            .args(["--seed", "3"])
            .output()
            .expect("synth");
        assert!(out.status.success());
        let p = self.dir.join("crimes.csv");
        std::fs::write(&p, out.stdout).expect("write extract");
        p
    }

    fn ingest(&self, file: &std::path::Path) -> Output {
        let path = file.to_str().expect("utf-8 path");
        self.run(
            &[
                "ingest",
                "--agency",
                "gmp-police",
                "--dataset",
                "police.cse_crime",
                path,
            ],
            &[],
        )
    }

    fn secret_value(&self, m: &Moto) -> String {
        let client = agencylink_aws::sdk::secretsmanager::Client::new(&m.sdk);
        let id = self.settings.key_secret_id.clone().expect("a secret id");
        rt().block_on(async { client.get_secret_value().secret_id(id).send().await })
            .expect("the key secret exists")
            .secret_string()
            .expect("a string secret")
            .to_owned()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The setup report: resource kind, name, status (and the new key id).
fn report(out: &Output) -> Vec<Value> {
    assert_eq!(out.status.code(), Some(0), "setup failed: {}", stderr(out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn statuses(lines: &[Value]) -> Vec<(String, String, String)> {
    lines
        .iter()
        .map(|l| {
            (
                l["resource"].as_str().unwrap_or_default().to_owned(),
                l["variable"].as_str().unwrap_or_default().to_owned(),
                l["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn expected(status: &str) -> Vec<(String, String, String)> {
    [
        ("bucket", "AGENCYLINK_BUCKET"),
        ("bucket", "AGENCYLINK_LANDING_BUCKET"),
        ("bucket", "AGENCYLINK_AUDIT_BUCKET"),
        ("table", "AGENCYLINK_TABLE"),
        ("index", "AGENCYLINK_TABLE"),
        ("secret", "AGENCYLINK_KEY_SECRET_ID"),
    ]
    .iter()
    .map(|(r, v)| ((*r).to_owned(), (*v).to_owned(), status.to_owned()))
    .collect()
}

#[test]
fn setup_creates_an_empty_deployment_once_and_ingest_then_works() {
    let Some(m) = moto() else { return };
    let d = Names::new(&m, "setup-new");

    let first = report(&d.run(&["setup"], &[]));
    assert_eq!(statuses(&first), expected("created"));
    let kid = first[5]["kid"]
        .as_str()
        .expect("the new key's id")
        .to_owned();
    let secret = d.secret_value(&m);
    assert!(secret.contains(&format!("\"kid\":\"{kid}\"")));
    assert!(
        !String::from_utf8_lossy(&d.run(&["setup"], &[]).stdout).contains("\"key\""),
        "the key itself is never printed"
    );

    // The buckets are made as the template makes them.
    let s3 = agencylink_aws::sdk::s3::Client::from_conf(
        agencylink_aws::sdk::s3::config::Builder::from(&m.sdk)
            .force_path_style(true)
            .build(),
    );
    // Versioning, seen as S3 keeps it: two puts, two versions (moto's
    // GetBucketVersioning answer does not parse in this SDK).
    let landing = &d.settings.landing_bucket;
    for body in ["one", "two"] {
        rt().block_on(
            s3.put_object()
                .bucket(landing)
                .key("probe")
                .body(body.as_bytes().to_vec().into())
                .send(),
        )
        .expect("put a probe");
    }
    let versions = rt()
        .block_on(
            s3.list_object_versions()
                .bucket(landing)
                .prefix("probe")
                .send(),
        )
        .expect("list versions");
    assert_eq!(
        versions.versions().len(),
        2,
        "the landing bucket is versioned"
    );
    let audit = d.settings.audit_bucket.as_deref().expect("an audit bucket");
    let lock = rt()
        .block_on(s3.get_object_lock_configuration().bucket(audit).send())
        .expect("audit bucket Object Lock");
    assert_eq!(
        lock.object_lock_configuration()
            .and_then(|c| c.object_lock_enabled())
            .map(|e| e.as_str()),
        Some("Enabled")
    );

    // Again: everything is reported as there already, the key unchanged.
    let second = d.run(&["setup"], &[]);
    assert_eq!(statuses(&report(&second)), expected("existed"));
    assert!(stderr(&second).contains("0 created, 6 already there"));
    assert_eq!(d.secret_value(&m), secret, "setup never replaces the key");

    // And the deployment takes an ingest.
    let out = d.ingest(&d.extract());
    assert_eq!(out.status.code(), Some(0), "ingest: {}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("an ingest summary");
    assert_eq!(summary["rows_in"], 30);
    let _ = std::fs::remove_dir_all(&d.dir);
}

#[test]
fn setup_keeps_an_existing_key_secret() {
    let Some(m) = moto() else { return };
    let d = Names::new(&m, "setup-key");
    let backend = agencylink_aws::AwsBackend::from_sdk_config(
        d.settings.clone(),
        &m.sdk,
        rt().handle().clone(),
    );
    m.put_key_secret(
        &backend,
        "k1",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    );
    let before = d.secret_value(&m);
    let lines = report(&d.run(&["setup"], &[]));
    let secret = lines
        .iter()
        .find(|l| l["resource"] == "secret")
        .expect("a secret line");
    assert_eq!(secret["status"], "existed");
    assert!(secret.get("kid").is_none(), "no key was made");
    assert_eq!(d.secret_value(&m), before);
    let _ = std::fs::remove_dir_all(&d.dir);
}

/// Exit 2 and exactly one line on stderr that contains every one of `parts`.
fn assert_one_line(out: &Output, parts: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line on stderr, got:\n{err}");
    for p in parts {
        assert!(err.contains(p), "stderr lacks {p:?}: {err}");
    }
    assert!(
        !err.contains("ServiceError") && !err.contains("raw: Response"),
        "no SDK dump: {err}"
    );
}

#[test]
fn a_missing_table_bucket_or_secret_is_one_line_naming_it_and_its_variable() {
    let Some(m) = moto() else { return };
    let d = Names::new(&m, "setup-missing");
    let table = format!("DynamoDB table \"{}\"", d.settings.table);
    let secret_id = d.settings.key_secret_id.clone().expect("a secret id");

    // Nothing exists yet: the table is what a read meets first.
    let out = d.run(&["lineage", "list"], &[]);
    assert_one_line(
        &out,
        &[
            &table,
            "(AGENCYLINK_TABLE)",
            "does not exist",
            "agencylink --backend aws setup",
        ],
    );

    // The key is what an ingest needs first.
    let file = d.extract();
    let out = d.ingest(&file);
    assert_one_line(
        &out,
        &[
            &format!("Secrets Manager secret \"{secret_id}\""),
            "(AGENCYLINK_KEY_SECRET_ID)",
            "does not exist",
            "agencylink --backend aws setup",
        ],
    );

    // With the key but no buckets, the upload names the landing bucket.
    let backend = agencylink_aws::AwsBackend::from_sdk_config(
        d.settings.clone(),
        &m.sdk,
        rt().handle().clone(),
    );
    m.put_key_secret(
        &backend,
        "k1",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    );
    let out = d.ingest(&file);
    assert_one_line(
        &out,
        &[
            &format!("S3 bucket \"{}\"", d.settings.landing_bucket),
            "(AGENCYLINK_LANDING_BUCKET)",
            "does not exist",
            "agencylink --backend aws setup",
        ],
    );
    let _ = std::fs::remove_dir_all(&d.dir);
}

#[test]
fn an_endpoint_that_does_not_answer_is_one_line_naming_the_variable() {
    let Some(m) = moto() else { return };
    let d = Names::new(&m, "setup-down");
    // Port 1 on loopback: nothing listens, the connection is refused.
    let out = d.run(
        &["access-log"],
        &[("AWS_ENDPOINT_URL", "http://127.0.0.1:1")],
    );
    assert_one_line(
        &out,
        &[
            "cannot reach",
            &format!("DynamoDB table \"{}\"", d.settings.table),
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
        ],
    );
    let _ = std::fs::remove_dir_all(&d.dir);
}
