//! `agencylink --backend aws …` over moto server, running the real binary as
//! an operator would: ingest through the landing bucket, lineage, queries
//! and the access log. Skips only when AWS_ENDPOINT_URL is unset; fails when
//! it is set and unreachable.

use std::path::PathBuf;
use std::process::{Command, Output};

use agencylink_aws::testing::{Moto, moto};
use agencylink_aws::{AgencyPolicy, AwsSettings};
use serde_json::Value;

/// The binary under test: `AGENCYLINK_AWS_E2E_BIN` (a copy built with
/// `--features aws`, when builds share a target directory), else the one
/// cargo built. Not `AGENCYLINK_E2E_BIN`, which may name a binary without
/// the AWS backend.
fn bin() -> String {
    std::env::var("AGENCYLINK_AWS_E2E_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_agencylink").to_owned())
}

const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

struct Deployment {
    settings: AwsSettings,
    dir: PathBuf,
}

impl Deployment {
    fn new(m: &Moto, name: &str) -> Deployment {
        Self::with_settings(m, m.settings(name, AgencyPolicy::default()))
    }

    /// One whose checkpoints are signed by a KMS key of its own.
    fn with_checkpoint_key(m: &Moto, name: &str) -> Deployment {
        let mut settings = m.settings(name, AgencyPolicy::default());
        settings.checkpoint_key_id = Some(m.create_checkpoint_key());
        Self::with_settings(m, settings)
    }

    fn with_settings(m: &Moto, settings: AwsSettings) -> Deployment {
        let backend = m.backend(settings.clone());
        m.put_key_secret(&backend, "k1", KEY_B64);
        let dir = std::env::temp_dir().join(agencylink_aws::testing::unique("cli-aws"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Deployment { settings, dir }
    }

    /// Run the binary with the deployment's variables (and no local data dir).
    fn run(&self, args: &[&str]) -> Output {
        let s = &self.settings;
        let out = Command::new(bin())
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
            .env(
                "AGENCYLINK_CHECKPOINT_KEY_ID",
                s.checkpoint_key_id.as_deref().unwrap_or_default(),
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
        self.synth_seed(dataset, rows, name, "5")
    }

    fn synth_seed(&self, dataset: &str, rows: &str, name: &str, seed: &str) -> PathBuf {
        let out = Command::new(bin())
            .args([
                "synth",
                "--dataset",
                dataset,
                "--rows",
                rows,
                "--seed",
                seed,
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
    assert_eq!(verified["events"], 2, "ingest_started and ingest");
    assert_eq!(
        verified["reconciled"]["records"], summary["records_inserted"],
        "{verified}"
    );
    assert_eq!(verified["reconciled"]["uploads_exact"], 1);
    // No checkpoint key in this deployment: nothing to check against, said.
    assert_eq!(verified["checkpoint"], Value::Null);
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
    // The same network as a GraphML chart: one person node per person.
    let g = d.run(&[
        "query",
        "network",
        &person,
        "--format",
        "graphml",
        "--analyst",
        "an-3",
        "--purpose",
        "Op Aurora chart",
    ]);
    assert_eq!(
        g.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&g.stderr)
    );
    let xml = String::from_utf8(g.stdout).expect("UTF-8");
    let doc = roxmltree::Document::parse(&xml).expect("well-formed GraphML");
    let people = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "data" && n.attribute("key") == Some("n_type"))
        .filter(|d| d.text() == Some("person"))
        .count();
    assert_eq!(
        Some(people),
        json(&n)["people"].as_array().map(Vec::len),
        "the chart has the JSON answer's people"
    );
    let log = d.run(&["access-log", "--verify"]);
    let log = json(&log);
    assert_eq!(
        (log["ok"].as_bool(), log["entries"].as_u64()),
        (Some(true), Some(3))
    );

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
        2,
        "the refused ingest left no event (the two are the first upload's)"
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
    let out = Command::new(bin())
        .args(["--backend", "aws", "lineage", "verify"])
        .env_remove("AGENCYLINK_BUCKET")
        .env_remove("AGENCYLINK_TABLE")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AGENCYLINK_BUCKET is not set"));
}

#[test]
fn checkpoints_on_aws_catch_a_truncated_or_rewritten_table() {
    use agencylink_aws::sdk::dynamodb::types::AttributeValue;
    use agencylink_core::ports::ChainLog;
    let Some(m) = moto() else { return };
    let d = Deployment::with_checkpoint_key(&m, "cli-ckpt");
    for seed in ["1", "2", "3"] {
        let f = d.synth_seed("police.cse_crime", "20", &format!("c{seed}.csv"), seed);
        d.run(&[
            "ingest",
            "--agency",
            "gmp-police",
            "--dataset",
            "police.cse_crime",
            f.to_str().expect("path"),
        ]);
    }
    let audit = d.settings.audit_bucket.clone().expect("audit bucket");
    let verify = d.run(&["lineage", "verify"]);
    let v = json(&verify);
    assert_eq!(verify.status.code(), Some(0), "{v}");
    // Each upload is two events on DynamoDB (ingest_started, ingest).
    assert_eq!(v["checkpoint"]["size"], 6, "each upload left a checkpoint");
    assert_eq!(
        v["checkpoint"]["file"],
        format!("s3://{audit}/checkpoints/lineage/000000000006.json")
    );
    let cp = d.run(&["lineage", "checkpoint"]);
    assert_eq!(
        cp.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&cp.stderr)
    );
    let cp = json(&cp);
    assert_eq!(
        (cp["size"].as_u64(), cp["algorithm"].as_str()),
        (Some(6), Some("ECDSA_SHA_256"))
    );
    let copy = d.dir.join("offsite.json");
    std::fs::write(&copy, cp.to_string()).expect("write");
    let copy = copy.to_str().expect("path");

    // Reads: the access log is checkpointed the same way.
    let b = m.backend(d.settings.clone());
    let person = {
        use agencylink_core::ports::RecordStore;
        let mut p = None;
        b.records
            .scan_dataset("police.cse_crime", None, None, &mut |r| {
                p = Some(r.person_id);
                false
            })
            .expect("scan");
        p.expect("a person")
    };
    for _ in 0..2 {
        let q = d.run(&[
            "query",
            "person",
            &person,
            "--analyst",
            "an-1",
            "--purpose",
            "Op Aurora",
        ]);
        assert_eq!(
            q.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&q.stderr)
        );
    }
    let log = json(&d.run(&["access-log", "--verify"]));
    assert_eq!(
        (log["entries"].as_u64(), log["checkpoint"]["size"].as_u64()),
        (Some(2), Some(2)),
        "{log}"
    );
    let acp = d.run(&["access-log", "checkpoint"]);
    assert_eq!(json(&acp)["log"], "access-log");

    // An edited checkpoint is refused by KMS.
    let mut edited = cp.clone();
    edited["size"] = Value::from(1);
    let edited_path = d.dir.join("edited.json");
    std::fs::write(&edited_path, edited.to_string()).expect("write");
    let out = d.run(&[
        "lineage",
        "verify",
        "--checkpoint",
        edited_path.to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["problem"]["kind"], "signature");

    // An insider rewrites the table's chain from seq 2 on, hashes and all:
    // the chain verifies, the archived copies do not match it.
    let entries = b.lineage.entries().expect("entries");
    let dynamo = b.dynamodb().clone();
    let mut prev = entries[0]["hash"].as_str().expect("hash").to_owned();
    for e in &entries[1..] {
        let mut e = e.clone();
        let obj = e.as_object_mut().expect("object");
        obj.remove("hash");
        obj.insert("prev_hash".into(), Value::from(prev.clone()));
        if obj["seq"] == 2 {
            obj.insert("agency".into(), Value::from("someone-else"));
        }
        let hash = agencylink_core::lineage::event_hash(Some(&prev), &e);
        e["hash"] = Value::from(hash.clone());
        let seq = e["seq"].as_u64().expect("seq");
        let mut item = agencylink_aws::testing::lineage_key(seq);
        item.insert("entry".into(), AttributeValue::S(e.to_string()));
        item.insert("hash".into(), AttributeValue::S(hash.clone()));
        agencylink_aws::testing::rt()
            .block_on(
                dynamo
                    .put_item()
                    .table_name(&d.settings.table)
                    .set_item(Some(item))
                    .send(),
            )
            .expect("rewrite");
        prev = hash;
    }
    let out = d.run(&["lineage", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let p = &json(&out)["problem"];
    assert_eq!(
        (p["kind"].as_str(), p["seq"].as_u64()),
        (Some("diverged"), Some(2)),
        "{p}"
    );
    assert!(
        p["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("seq 2 differs from its archived copy"),
        "{p}"
    );
    // Nor is the rewritten log signed over.
    assert_eq!(d.run(&["lineage", "checkpoint"]).status.code(), Some(1));
    // Put the true events back.
    for e in &entries[1..] {
        let seq = e["seq"].as_u64().expect("seq");
        let mut item = agencylink_aws::testing::lineage_key(seq);
        item.insert("entry".into(), AttributeValue::S(e.to_string()));
        item.insert(
            "hash".into(),
            AttributeValue::S(e["hash"].as_str().expect("hash").into()),
        );
        agencylink_aws::testing::rt()
            .block_on(
                dynamo
                    .put_item()
                    .table_name(&d.settings.table)
                    .set_item(Some(item))
                    .send(),
            )
            .expect("restore");
    }
    assert_eq!(d.run(&["lineage", "verify"]).status.code(), Some(0));

    // Deleting the last events, one at a time: each shorter chain is valid,
    // each fails, naming the first missing seq.
    for k in 1..=3u64 {
        let seq = 6 - k + 1;
        agencylink_aws::testing::rt()
            .block_on(
                dynamo
                    .delete_item()
                    .table_name(&d.settings.table)
                    .set_key(Some(agencylink_aws::testing::lineage_key(seq)))
                    .send(),
            )
            .expect("delete");
        for extra in [&[][..], &["--checkpoint", copy][..]] {
            let mut args = vec!["lineage", "verify"];
            args.extend_from_slice(extra);
            let out = d.run(&args);
            assert_eq!(out.status.code(), Some(1), "minus {k}");
            let p = &json(&out)["problem"];
            assert_eq!(p["kind"], "truncated", "minus {k}: {p}");
            assert_eq!(p["seq"], seq, "minus {k}: {p}");
        }
    }
    let _ = std::fs::remove_dir_all(&d.dir);
}

#[test]
fn an_upload_is_withdrawn_on_aws() {
    let Some(m) = moto() else { return };
    let d = Deployment::new(&m, "cli-withdraw");
    let crimes = d.synth_seed("police.cse_crime", "40", "crimes.csv", "8");
    let intel = d.synth_seed("police.cse_intelligence", "40", "intel.csv", "8");
    let ingest = |dataset: &str, file: &PathBuf| {
        json(&d.run(&[
            "ingest",
            "--agency",
            "gmp-police",
            "--dataset",
            dataset,
            file.to_str().expect("utf-8 path"),
        ]))
    };
    let kept = ingest("police.cse_crime", &crimes);
    let gone = ingest("police.cse_intelligence", &intel);
    let upload = gone["upload_id"].as_str().expect("upload id");
    let b = m.backend(d.settings.clone());
    let count = |dataset: &str| {
        use agencylink_core::ports::RecordStore;
        let mut n = 0;
        b.records
            .scan_dataset(dataset, None, None, &mut |_| {
                n += 1;
                true
            })
            .expect("scan");
        n
    };
    assert!(count("police.cse_intelligence") > 0);
    let outputs: Vec<String> = {
        use agencylink_core::ports::ObjectStore;
        b.objects
            .list("curated/gmp-police/police.cse_intelligence/")
            .expect("list")
            .into_iter()
            .map(|o| o.key)
            .collect()
    };
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    // What is kept built from every upload: a stored profile (its JSON
    // written twice, so two versions), an export the API wrote in the
    // request and an export job; and an analyst's request, which holds no
    // record.
    let built = [
        "profiles/2025-01-01_2025-12-31/analyst/profile.json",
        "profiles/2025-01-01_2025-12-31/analyst/networks.csv",
        "exports/an-7-1a2b.csv",
        "exports/jobs/j1.csv",
        "exports/jobs/j1.manifest.json",
    ];
    let request = "profile-requests/2026-01-01T00-00-00Z-ab12.json";
    {
        use agencylink_core::ports::{ObjectStoreExt, PutMode};
        for key in built.iter().chain([&built[0], &request]) {
            b.objects.put(key, b"{}", PutMode::Overwrite).expect("put");
        }
    }
    // Versions and delete markers of every key under `prefix`.
    let versions_under = |prefix: &str| {
        let v = agencylink_aws::testing::rt()
            .block_on(
                b.objects
                    .client()
                    .list_object_versions()
                    .bucket(&d.settings.data_bucket)
                    .prefix(prefix)
                    .send(),
            )
            .expect("list versions");
        v.versions().len() + v.delete_markers().len()
    };
    assert_eq!(versions_under("profiles/"), 3);

    let unknown = d.run(&["withdraw", "u_nosuchupload000000", "--reason", "wrong file"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no upload with that id"));
    assert_eq!(
        versions_under("profiles/") + versions_under("exports/"),
        6,
        "a refused withdrawal removes nothing"
    );

    let out = d.run(&[
        "withdraw",
        upload,
        "--reason",
        "sent to the wrong partnership",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let event = json(&out);
    assert_eq!(event["type"], "withdrawn");
    assert_eq!(event["records_removed"], gone["records_inserted"]);
    assert_eq!(count("police.cse_intelligence"), 0);
    assert!(count("police.cse_crime") > 0);
    {
        use agencylink_core::ports::ObjectStoreExt;
        assert!(
            !b.objects.exists(&outputs[0]).expect("head"),
            "curated removed"
        );
    }
    // Erased, not hidden: the data bucket is versioned, and no version of
    // a withdrawn output (not even a delete marker) is left.
    for key in &outputs {
        assert_eq!(versions_under(key), 0, "{key} has versions left");
    }
    // The stored profile and the exports are erased with every
    // version; the request stays, to be built again from what remains.
    assert_eq!(versions_under("profiles/"), 0, "stored profiles erased");
    assert_eq!(versions_under("exports/"), 0, "exports erased");
    assert_eq!(versions_under("profile-requests/"), 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("removed 5 stored profile and export files"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = d.run(&["withdraw", upload, "--reason", "again"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already withdrawn"));

    // Lineage verifies, reconciles, and matches its WORM copy.
    let verify = d.run(&["lineage", "verify"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let verified = json(&verify);
    assert_eq!(
        verified["events"], 6,
        "two ingests and the withdrawal, each started"
    );
    assert_eq!(verified["reconciled"]["records"], kept["records_inserted"]);

    // The OpenLineage export, as on the embedded store: two ingest runs,
    // then the withdrawal dropping the curated output.
    let export = d.run(&["lineage", "export", "--openlineage"]);
    assert_eq!(
        export.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let runs: Vec<serde_json::Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let jobs: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| {
            (
                r["eventType"].as_str().expect("type"),
                r["job"]["name"].as_str().expect("job"),
            )
        })
        .collect();
    assert_eq!(
        jobs,
        [
            ("START", "ingest.police.cse_crime"),
            ("COMPLETE", "ingest.police.cse_crime"),
            ("START", "ingest.police.cse_intelligence"),
            ("COMPLETE", "ingest.police.cse_intelligence"),
            ("COMPLETE", "withdraw.police.cse_intelligence")
        ]
    );
    // An upload's START and COMPLETE are one run.
    assert_eq!(runs[0]["run"]["runId"], runs[1]["run"]["runId"]);
    assert_ne!(runs[0]["run"]["runId"], runs[2]["run"]["runId"]);
    let dropped: Vec<&str> = runs[4]["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .filter(|o| o["facets"]["lifecycleStateChange"]["lifecycleStateChange"] == "DROP")
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert!(dropped.contains(&outputs[0].as_str()), "{dropped:?}");

    // compact is the embedded store's; AWS refuses it.
    let compact = d.run(&["compact"]);
    assert_eq!(compact.status.code(), Some(2));
}

#[test]
fn retention_is_applied_on_aws_and_lineage_still_reconciles() {
    use agencylink_core::ports::RecordStore;
    let Some(m) = moto() else { return };
    let d = Deployment::new(&m, "cli-retention");
    let crimes = d.synth_seed("police.cse_crime", "60", "crimes.csv", "4");
    let up = d.run(&[
        "ingest",
        "--agency",
        "gmp-police",
        "--dataset",
        "police.cse_crime",
        crimes.to_str().expect("utf-8 path"),
    ]);
    // Exit 1 when the synthetic extract's planted bad rows were rejected.
    assert!(
        matches!(up.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let b = m.backend(d.settings.clone());
    let dates = || {
        let mut v = Vec::new();
        b.records
            .scan_dataset("police.cse_crime", None, None, &mut |r| {
                v.push(r.event_date);
                true
            })
            .expect("scan");
        v
    };
    let before = dates();
    // The shipped seven years back from a day in 2032.
    let cut = "2025-06-01";
    let old = before.iter().filter(|d| d.as_str() < cut).count();
    assert!(old > 0 && old < before.len(), "{old} of {}", before.len());

    let out = d.run(&["retention", "apply", "--today", "2032-06-01"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ours: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .find(|r| r["dataset"] == "police.cse_crime")
        .expect("police.cse_crime");
    assert_eq!(ours["cutoff"], cut);
    assert_eq!(ours["records_removed"], old as u64, "{ours}");
    let after = dates();
    assert_eq!(after.len(), before.len() - old);
    assert!(after.iter().all(|d| d.as_str() >= cut));
    // The event is in the table's lineage and its WORM copy, and the store
    // still reconciles with lineage.
    let verify = d.run(&["lineage", "verify"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let seq = ours["event"]["records_removed"].as_u64().map(|_| {
        use agencylink_core::ports::ChainLog;
        b.lineage
            .page_back(None, 1)
            .expect("head")
            .first()
            .map(|e| (e["type"].clone(), e["seq"].as_u64().expect("seq")))
            .expect("an event")
    });
    let (kind, seq) = seq.expect("an expired event");
    assert_eq!(kind, "expired");
    let archived = b
        .archive
        .as_ref()
        .expect("audit bucket")
        .archived_events("lineage")
        .expect("archive");
    assert!(
        archived.iter().any(|(s, _)| *s == seq),
        "the expired event is archived"
    );
}

#[test]
fn a_full_refresh_on_aws_retires_what_the_extract_leaves_out() {
    use agencylink_core::ports::RecordStore;
    let Some(m) = moto() else { return };
    let d = Deployment::new(&m, "cli-full");
    let pair = d.dir.join("pair");
    let out = Command::new(bin())
        .args([
            "synth-pair",
            "--dataset",
            "council.missing_episode",
            "--people",
            "40",
            "--seed",
            "9",
            "--out-dir",
            pair.to_str().expect("path"),
        ])
        .output()
        .expect("synth-pair");
    assert_eq!(out.status.code(), Some(0));
    let full = pair.join("a.csv");
    let first = d.run(&[
        "ingest",
        "--agency",
        "council-a",
        "--dataset",
        "council.missing_episode",
        full.to_str().expect("path"),
    ]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let text = std::fs::read_to_string(&full).expect("a.csv");
    let lines: Vec<&str> = text.lines().collect();
    let refresh = d.dir.join("refresh.csv");
    std::fs::write(&refresh, lines[..lines.len() - 3].join("\n") + "\n").expect("write");
    let out = d.run(&[
        "ingest",
        "--agency",
        "council-a",
        "--dataset",
        "council.missing_episode",
        "--mode",
        "full",
        refresh.to_str().expect("path"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["records_retired"], 3);
    let b = m.backend(d.settings.clone());
    let mut n = 0;
    b.records
        .scan_dataset("council.missing_episode", None, None, &mut |_| {
            n += 1;
            true
        })
        .expect("scan");
    assert_eq!(n, lines.len() - 1 - 3, "the rows left out are gone");
    let verify = d.run(&["lineage", "verify"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// A key rotation on AWS, as on the embedded store, split as the roles
/// are: the custodian's CLI writes the new key (AWSPENDING) and later the
/// migrate signal; the ingest function's rotation task opens the rotation,
/// migrates (person ids kept) and moves AWSCURRENT; ingests while it is
/// open record translations; the rows nobody re-sent move when their agency
/// sends them again, and then AWSPREVIOUS comes off the old version.
#[test]
fn a_key_rotation_on_aws_keeps_people_and_moves_the_secret() {
    use agencylink_core::ports::{KeyProvider, RecordStore, StoredRecord};
    let Some(m) = moto() else { return };
    let d = Deployment::new(&m, "cli-rotate");
    let pair = d.dir.join("pair");
    let out = Command::new(bin())
        .args([
            "synth-pair",
            "--dataset",
            "council.missing_episode",
            "--people",
            "30",
            "--seed",
            "4",
            "--out-dir",
            pair.to_str().expect("path"),
        ])
        .output()
        .expect("synth-pair");
    assert_eq!(out.status.code(), Some(0));
    let ok = |out: Output| {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json(&out)
    };
    let ingest = |agency: &str, file: &std::path::Path| {
        ok(d.run(&[
            "ingest",
            "--agency",
            agency,
            "--dataset",
            "council.missing_episode",
            file.to_str().expect("path"),
        ]))
    };
    let (a, b) = (pair.join("a.csv"), pair.join("b.csv"));
    ingest("council-a", &a);
    ingest("council-b", &b);
    let backend = m.backend(d.settings.clone());
    let task = || {
        agencylink_aws::key_rotation::run(&backend, &agencylink_aws::now_rfc3339())
            .expect("the rotation task")
    };
    let all = || {
        let mut out: Vec<StoredRecord> = Vec::new();
        backend
            .records
            .scan_dataset("council.missing_episode", None, None, &mut |r| {
                out.push(r);
                true
            })
            .expect("scan");
        out
    };
    let people = || {
        let mut p: Vec<(String, u64, String)> = all()
            .into_iter()
            .map(|r| (r.upload_id, r.row, r.person_id))
            .collect();
        p.sort();
        p
    };
    let under = |kid: &str| {
        let needle = format!(":{kid}:");
        all()
            .iter()
            .filter(|r| r.body.as_str().contains(&needle))
            .count()
    };
    let before = people();
    let total = before.len();
    assert_eq!(task()["step"], "none", "nothing to do before a rotation");

    // The custodian: a new version, AWSPENDING; a second is refused.
    let new = ok(d.run(&["key", "rotate"]))["to_key_id"]
        .as_str()
        .expect("new id")
        .to_owned();
    assert_eq!(d.run(&["key", "rotate"]).status.code(), Some(2));
    let labels = ok(d.run(&["key", "status"]));
    assert!(
        labels["key_secret_labels"]["AWSPENDING"].is_string(),
        "{labels}"
    );
    // The task opens the rotation; the store stays under k1.
    assert_eq!(task()["step"], "opened");
    assert_eq!(task()["step"], "waiting");

    // council-a re-sends all but 4 rows; council-b its file unchanged.
    let text = std::fs::read_to_string(&a).expect("a.csv");
    let lines: Vec<&str> = text.lines().collect();
    let most = d.dir.join("a-most.csv");
    std::fs::write(&most, lines[..lines.len() - 4].join("\n") + "\n").expect("write");
    ingest("council-a", &most);
    assert_eq!(ingest("council-b", &b)["duplicate"], true);
    assert_eq!(under("k1"), total);

    // The custodian signals; the task migrates and moves the labels.
    ok(d.run(&["key", "migrate"]));
    let done = task();
    assert_eq!(done["step"], "migrated", "{done}");
    let event = &done["event"];
    assert_eq!(event["records_migrated"], (total - 4) as u64);
    assert_eq!(event["records_untranslated"], 4);
    assert_eq!(people(), before, "every person id is kept");
    assert_eq!(under("k1"), 4);
    assert_eq!(under(&new), total - 4);
    let keys = backend.keys.as_ref().expect("keys");
    keys.forget();
    assert_eq!(keys.key().expect("current").kid().as_str(), new);
    let labels = ok(d.run(&["key", "status"]));
    let labels = &labels["key_secret_labels"];
    assert!(labels["AWSPREVIOUS"].is_string(), "{labels}");
    assert!(labels["AWSPENDING"].is_null() && labels["AGENCYLINK_MIGRATE"].is_null());
    ok(d.run(&["lineage", "verify"]));

    // council-a sends its whole file again: the 4 move first, nothing is
    // duplicated, and the rotation ends.
    ingest("council-a", &a);
    assert_eq!(people().len(), total);
    assert_eq!(under("k1"), 0);
    let labels = ok(d.run(&["key", "status"]));
    assert!(
        labels["key_secret_labels"]["AWSPREVIOUS"].is_null(),
        "{labels}"
    );
    assert_eq!(task()["step"], "none");
    ok(d.run(&["lineage", "verify"]));
}

#[test]
fn the_problem_profile_is_built_from_the_aws_store() {
    use agencylink_core::ports::ChainLog;
    let Some(m) = moto() else { return };
    let d = Deployment::new(&m, "cli-prof");
    let file = d.synth("police.cse_crime", "80", "crimes.csv");
    let out = d.run(&[
        "ingest",
        "--agency",
        "gmp-police",
        "--dataset",
        "police.cse_crime",
        file.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(1), "some rows rejected");
    let b = m.backend(d.settings.clone());

    // The analyst edition names who built it and why, as a local build does.
    let dir = d.dir.join("profile");
    let dir_s = dir.to_str().expect("utf-8 path");
    let refused = d.run(&["profile", "--out", dir_s]);
    assert_eq!(refused.status.code(), Some(2), "no reader given");
    let out = d.run(&[
        "profile",
        "--out",
        dir_s,
        "--analyst",
        "an-7",
        "--purpose",
        "annual refresh",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = json(&out);
    assert_eq!(built["edition"], "analyst");
    for name in ["profile.json", "profile.html", "tracker.csv"] {
        assert!(dir.join(name).is_file(), "{name}");
    }
    let access = b.access_log.entries().expect("access log");
    assert_eq!(access.len(), 1);
    assert_eq!(access[0]["action"], "profile_analyst");
    assert_eq!(access[0]["purpose"], "annual refresh");

    // Each build is a lineage event in the deployment's log, with digests
    // of the files written, and the log still verifies and reconciles.
    let partner = d.dir.join("partner");
    let out = d.run(&[
        "profile",
        "--edition",
        "partner",
        "--out",
        partner.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!partner.join("tracker.csv").exists());
    assert_eq!(b.access_log.entries().expect("access log").len(), 1);
    let lineage = b.lineage.entries().expect("lineage");
    let builds: Vec<&Value> = lineage
        .iter()
        .filter(|e| e["type"] == "profile_build")
        .collect();
    assert_eq!(builds.len(), 2);
    assert_eq!(builds[0]["edition"], "analyst");
    assert_eq!(builds[1]["edition"], "partner");
    assert!(
        builds
            .iter()
            .all(|e| e["trigger"] == "cli" && e["location"] == "local")
    );
    let json_bytes = std::fs::read(dir.join("profile.json")).expect("read");
    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&json_bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(builds[0]["files"]["profile.json"], digest);
    let verify = d.run(&["lineage", "verify"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    assert_eq!(
        json(&verify)["events"],
        4,
        "the ingest's two and the builds"
    );

    // And `profile history` lists both builds from the deployment's log.
    let hist = d.run(&["profile", "history"]);
    assert_eq!(hist.status.code(), Some(0));
    let lines: Vec<Value> = String::from_utf8_lossy(&hist.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["built_by"], "an-7");
    assert_eq!(lines[1]["edition"], "partner");
    assert_eq!(lines[1]["built_by"], Value::Null);
}
