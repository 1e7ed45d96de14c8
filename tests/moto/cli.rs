//! `agencylink --backend aws …` over moto server, running the real binary as
//! an operator would: ingest through the landing bucket, lineage, queries
//! and the access log. Skips only when AWS_ENDPOINT_URL is unset; fails when
//! it is set and unreachable.

use std::path::PathBuf;
use std::process::{Command, Output};

use agencylink_aws::testing::{Moto, moto};
use agencylink_aws::{AgencyPolicy, AwsSettings};
use serde_json::Value;

const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

struct Deployment {
    settings: AwsSettings,
    dir: PathBuf,
}

impl Deployment {
    fn new(m: &Moto, name: &str) -> Deployment {
        let settings = m.settings(name, AgencyPolicy::default());
        let backend = m.backend(settings.clone());
        m.put_key_secret(&backend, "k1", KEY_B64);
        let dir = std::env::temp_dir().join(agencylink_aws::testing::unique("cli-aws"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Deployment { settings, dir }
    }

    /// Run the binary with the deployment's variables (and no local data dir).
    fn run(&self, args: &[&str]) -> Output {
        let s = &self.settings;
        let out = Command::new(env!("CARGO_BIN_EXE_agencylink"))
            .args(["--backend", "aws"])
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
            .env("AGENCYLINK_DATA_DIR", self.dir.join("must-not-be-created"))
            .env_remove("AGENCYLINK_KEY")
            .env_remove("AGENCYLINK_AGENCIES")
            .output()
            .expect("run agencylink");
        assert!(
            !self.dir.join("must-not-be-created").exists(),
            "the AWS backend never touches the local data directory"
        );
        out
    }

    fn synth(&self, dataset: &str, rows: &str, name: &str) -> PathBuf {
        let out = Command::new(env!("CARGO_BIN_EXE_agencylink"))
            .args([
                "synth",
                "--dataset",
                dataset,
                "--rows",
                rows,
                "--seed",
                "5",
                "--invalid-rate",
                "0.05",
            ])
            .output()
            .expect("synth");
        assert!(out.status.success());
        let p = self.dir.join(name);
        std::fs::write(&p, out.stdout).expect("write extract");
        p
    }
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn ingest_lineage_and_queries_run_against_aws() {
    let Some(m) = moto() else { return };
    let d = Deployment::new(&m, "cli-aws");
    let file = d.synth("police.cse_crime", "80", "crimes.csv");
    let path = file.to_str().expect("utf-8 path");

    // Ingest: the same summary and exit codes as the local backend.
    let out = d.run(&[
        "ingest",
        "--agency",
        "gmp-police",
        "--dataset",
        "police.cse_crime",
        path,
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rows were rejected: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = json(&out);
    assert_eq!(summary["rows_in"], 80);
    assert!(summary["rows_rejected"].as_u64().unwrap_or(0) > 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("s3://"));

    let again = d.run(&[
        "ingest",
        "--agency",
        "gmp-police",
        "--dataset",
        "police.cse_crime",
        path,
    ]);
    assert_eq!(json(&again)["duplicate"], true);
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing changed"));

    // Lineage: list, show, verify.
    let verify = d.run(&["lineage", "verify"]);
    assert_eq!(verify.status.code(), Some(0));
    let verified = json(&verify);
    assert_eq!(verified["ok"], true);
    assert_eq!(verified["events"], 1);
    assert_eq!(
        verified["reconciled"]["records"], summary["records_inserted"],
        "{verified}"
    );
    assert_eq!(verified["reconciled"]["uploads_exact"], 1);
    let list = d.run(&["lineage", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("police.cse_crime"));
    let upload = summary["upload_id"].as_str().expect("upload id");
    let show = d.run(&["lineage", "show", upload]);
    assert_eq!(json(&show)[0]["upload_id"], upload);

    // Query: an analyst read, logged.
    let person = {
        use agencylink_core::ports::RecordStore;
        let b = m.backend(d.settings.clone());
        let mut p = None;
        b.records
            .scan_dataset("police.cse_crime", None, None, &mut |r| {
                p = Some(r.person_id);
                false
            })
            .expect("scan");
        p.expect("a person")
    };
    let q = d.run(&[
        "query",
        "person",
        &person,
        "--analyst",
        "an-3",
        "--purpose",
        "Op Aurora",
    ]);
    assert_eq!(
        q.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&q.stderr)
    );
    assert_eq!(json(&q)["person_id"], person.as_str());
    let n = d.run(&[
        "query",
        "network",
        &person,
        "--analyst",
        "an-3",
        "--purpose",
        "Op Aurora",
    ]);
    assert_eq!(
        n.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&n.stderr)
    );
    let log = d.run(&["access-log", "--verify"]);
    assert_eq!(json(&log), serde_json::json!({"ok": true, "entries": 2}));

    // Bad usage is exit 2, and local-only commands say so.
    let bad = d.run(&[
        "ingest",
        "--agency",
        "Not An Agency",
        "--dataset",
        "police.cse_crime",
        path,
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let demo = d.run(&["demo"]);
    assert_eq!(demo.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&demo.stderr).contains("local backend only"));
    // Commands without a store work as usual.
    assert!(d.run(&["datasets"]).status.success());

    // The key secret changed under a store built with k1: an ingest is
    // refused before it writes anything, naming both key ids.
    let other = d.synth("police.cse_crime", "20", "other.csv");
    let backend = m.backend(d.settings.clone());
    m.put_key_secret(
        &backend,
        "k2",
        "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
    );
    let refused = d.run(&[
        "ingest",
        "--agency",
        "gmp-police",
        "--dataset",
        "police.cse_crime",
        other.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("built with key id k1") && stderr.contains("the key given is k2"),
        "{stderr}"
    );
    let landing = agencylink_aws::testing::rt()
        .block_on(
            backend
                .s3()
                .list_object_versions()
                .bucket(&d.settings.landing_bucket)
                .send(),
        )
        .expect("list landing");
    assert!(
        landing.versions().is_empty(),
        "the refused extract never left the machine"
    );
    let verify = d.run(&["lineage", "verify"]);
    assert_eq!(
        json(&verify)["events"],
        1,
        "the refused ingest left no event"
    );
    assert_eq!(
        json(&verify)["reconciled"]["records"],
        summary["records_inserted"],
        "and no record"
    );
    m.put_key_secret(&backend, "k1", KEY_B64);

    // A record item deleted from the table behind the store's back: the
    // chain is intact, reconciliation finds it and names the upload.
    delete_one_record(&m, &d.settings.table);
    let verify = d.run(&["lineage", "verify"]);
    assert_eq!(verify.status.code(), Some(1));
    let out = json(&verify);
    assert_eq!(out["ok"], false);
    assert_eq!(out["mismatches"][0]["upload_id"], upload, "{out}");
    assert!(String::from_utf8_lossy(&verify.stderr).contains("deleted"));
    let _ = std::fs::remove_dir_all(&d.dir);
}

fn delete_one_record(m: &Moto, table: &str) {
    use agencylink_aws::sdk::dynamodb::types::AttributeValue;
    let client = agencylink_aws::sdk::dynamodb::Client::new(&m.sdk);
    agencylink_aws::testing::rt().block_on(async {
        let scan = client
            .scan()
            .table_name(table)
            .filter_expression("sk = :r")
            .expression_attribute_values(":r", AttributeValue::S("R".into()))
            .send()
            .await
            .expect("scan");
        let item = scan.items().first().expect("a record item");
        client
            .delete_item()
            .table_name(table)
            .key("pk", item["pk"].clone())
            .key("sk", item["sk"].clone())
            .send()
            .await
            .expect("delete");
    });
}

#[test]
fn a_missing_configuration_is_a_clear_error() {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_agencylink"))
        .args(["--backend", "aws", "lineage", "verify"])
        .env_remove("AGENCYLINK_BUCKET")
        .env_remove("AGENCYLINK_TABLE")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AGENCYLINK_BUCKET is not set"));
}
