//! The profile handler, called as Lambda would call it (the schedule's
//! input and an EventBridge S3 event from fixtures), against moto server
//! over a store loaded through the real ingest pipeline. Skips only when
//! AWS_ENDPOINT_URL is unset.

use std::sync::Arc;

use agencylink_aws::testing::{Moto, moto, rt};
use agencylink_aws::{AgencyPolicy, AwsBackend, pipeline};
use agencylink_core::lineage;
use agencylink_core::ports::{ChainLog, KeyProvider, ObjectStore, ObjectStoreExt, PutMode};
use agencylink_core::pseudo::Pseudonymiser;
use agencylink_core::schema::Catalog;
use agencylink_fn_profile::{Profiler, handle};
use agencylink_http::profiles::{self, Request};
use agencylink_synth::{SynthOptions, write_csv};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use sha2::{Digest, Sha256};

const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const S3_FIXTURE: &str = include_str!("fixtures/eventbridge-s3-object-created.json");
const SCHEDULE_FIXTURE: &str = include_str!("fixtures/schedule.json");

struct World {
    profiler: Arc<Profiler>,
}

impl World {
    /// A store with a police crime extract, intelligence and council
    /// missing episodes of one synthetic population.
    fn loaded(m: &Moto, name: &str) -> World {
        let backend = m.backend(m.settings(name, AgencyPolicy::default()));
        m.put_key_secret(&backend, "k1", KEY_B64);
        let catalog = Catalog::embedded().expect("catalog");
        let pseudo = Pseudonymiser::new(backend.keys.as_ref().expect("keys").key().expect("key"));
        let tmp = std::env::temp_dir();
        for (agency, dataset, rows) in [
            ("gmp-police", "police.cse_crime", 80),
            ("gmp-police", "police.cse_intelligence", 60),
            ("rochdale-council", "council.missing_episode", 60),
            ("gmp-police", "police.disruption_activity", 40),
        ] {
            let ds = catalog.get(dataset).expect("dataset");
            let mut bytes = Vec::new();
            write_csv(ds, &SynthOptions::new(11, rows), &mut bytes, None).expect("synth");
            let key = format!("landing/{agency}/{dataset}/extract.csv");
            backend
                .objects
                .put(&key, &bytes, PutMode::Overwrite)
                .expect("land");
            pipeline::ingest_landing(
                &backend,
                &pseudo,
                ds,
                agency,
                &key,
                "2026-11-20T10:00:00Z",
                &tmp,
            )
            .expect("ingest");
        }
        World {
            profiler: Arc::new(Profiler::new(backend, catalog)),
        }
    }

    fn b(&self) -> &AwsBackend {
        self.profiler.backend()
    }

    fn invoke(&self, event: Value) -> Result<Value, agencylink_fn_profile::HandlerError> {
        rt().block_on(handle(
            self.profiler.clone(),
            LambdaEvent::new(event, Context::default()),
        ))
    }

    fn s3_event(&self, key: &str) -> Value {
        let text = S3_FIXTURE
            .replace("{{bucket}}", &self.b().settings.data_bucket)
            .replace("{{key}}", key);
        serde_json::from_str(&text).expect("fixture is JSON")
    }

    fn builds(&self) -> Vec<Value> {
        self.b()
            .lineage
            .entries()
            .expect("lineage")
            .into_iter()
            .filter(|e| e["type"] == "profile_build")
            .collect()
    }

    fn keys(&self, prefix: &str) -> Vec<String> {
        self.b()
            .objects
            .list(prefix)
            .expect("list")
            .into_iter()
            .map(|m| m.key)
            .collect()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_scheduled_build_stores_both_editions_with_lineage_that_names_every_file() {
    let Some(m) = moto() else { return };
    let w = World::loaded(&m, "prof-sched");
    let mut event: Value = serde_json::from_str(SCHEDULE_FIXTURE).expect("fixture");
    // The synthetic extracts' dates; the schedule's default period (the
    // last twelve complete months) is checked in crates/aws.
    event["from"] = "2024-01-01".into();
    event["to"] = "2026-10-31".into();

    let out = w.invoke(event.clone()).expect("built");
    let stored = out["profiles"].as_array().expect("profiles");
    assert_eq!(stored.len(), 2, "{out}");
    assert_eq!(stored[0]["id"], "2024-01-01_2026-10-31_analyst");
    assert_eq!(stored[1]["id"], "2024-01-01_2026-10-31_partner");

    // Both editions are in place, the partner one without the analyst's
    // tables (tracker, networks: pseudonymous ids).
    let analyst = w.keys("profiles/2024-01-01_2026-10-31/analyst/");
    let partner = w.keys("profiles/2024-01-01_2026-10-31/partner/");
    for keys in [&analyst, &partner] {
        for name in ["profile.json", "profile.html"] {
            assert!(keys.iter().any(|k| k.ends_with(name)), "{name} in {keys:?}");
        }
    }
    assert!(analyst.iter().any(|k| k.ends_with("/tracker.csv")));
    assert!(!partner.iter().any(|k| k.ends_with("/tracker.csv")));
    let partner_json: Value = serde_json::from_slice(
        &w.b()
            .objects
            .get_bytes("profiles/2024-01-01_2026-10-31/partner/profile.json")
            .expect("partner json"),
    )
    .expect("json");
    assert_eq!(partner_json["edition"], "partner");
    assert!(partner_json.get("networks").is_none());
    assert!(
        partner_json["tables"]
            .as_array()
            .is_some_and(|t| t.len() > 5),
        "a real profile, not an empty shell"
    );
    // Disruption activity read from DynamoDB like every dataset: the
    // hotspots are set against it in both editions.
    for edition in ["analyst", "partner"] {
        let json: Value = serde_json::from_slice(
            &w.b()
                .objects
                .get_bytes(&format!(
                    "profiles/2024-01-01_2026-10-31/{edition}/profile.json"
                ))
                .expect("json"),
        )
        .expect("json");
        let ids: Vec<&str> = json["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .filter_map(|t| t["id"].as_str())
            .collect();
        for id in [
            "places_hotspots_disruption",
            "places_hotspots_undisrupted",
            "disruption_activities",
        ] {
            assert!(ids.contains(&id), "{id} in the {edition} edition");
        }
    }

    // Then: one lineage event per edition, naming each file by digest, and
    // each in the WORM archive.
    let builds = w.builds();
    assert_eq!(builds.len(), 2);
    for (b, keys) in builds.iter().zip([&analyst, &partner]) {
        assert_eq!(b["trigger"], "schedule");
        let files = b["files"].as_object().expect("files");
        assert_eq!(files.len(), keys.len(), "every stored file is named");
        for key in keys {
            let name = key.rsplit('/').next().expect("name");
            let bytes = w.b().objects.get_bytes(key).expect("get");
            assert_eq!(files[name], sha256_hex(&bytes), "{key}");
        }
        assert!(
            b["lineage_seq"].as_u64().unwrap_or(0) >= 3,
            "read the ingests"
        );
    }
    let all = w.b().lineage.entries().expect("lineage");
    assert_eq!(lineage::verify(&all), Ok(all.len()));
    let archived = rt()
        .block_on(
            w.b()
                .s3()
                .list_objects_v2()
                .bucket(w.b().settings.audit_bucket.as_deref().unwrap_or_default())
                .prefix("lineage/")
                .send(),
        )
        .expect("list archive");
    assert_eq!(archived.key_count(), Some(all.len() as i32));

    // Listing: analysts see both, agencies the partner edition only.
    let listed = profiles::list(&w.b().objects, true).expect("list");
    assert_eq!(listed.len(), 2);
    let partners = profiles::list(&w.b().objects, false).expect("list");
    assert_eq!(partners.len(), 1);
    assert_eq!(partners[0].edition, "partner");

    // A rebuild of the period replaces the files and drops a table the
    // build no longer has (here: one planted in the partner prefix).
    let planted = "profiles/2024-01-01_2026-10-31/partner/tracker.csv";
    w.b()
        .objects
        .put(planted, b"person_id\nP-1\n", PutMode::Overwrite)
        .expect("plant");
    w.invoke(event).expect("rebuilt");
    assert!(!w.b().objects.exists(planted).expect("exists"));
    assert_eq!(w.keys("profiles/2024-01-01_2026-10-31/partner/"), partner);
    assert_eq!(w.builds().len(), 4, "each build is its own event");
}

#[test]
fn an_analysts_request_is_built_once_and_a_bad_one_is_dropped() {
    let Some(m) = moto() else { return };
    let w = World::loaded(&m, "prof-req");
    let key = profiles::submit(
        &w.b().objects,
        &Request {
            from: None,
            to: None,
            requested_at: "2026-12-01T09:00:00Z".into(),
            requested_by: Some("analyst-sub-1".into()),
        },
    )
    .expect("submit");
    assert!(key.starts_with("profile-requests/"));

    let out = w.invoke(w.s3_event(&key)).expect("built");
    let stored = out["profiles"].as_array().expect("profiles");
    assert_eq!(stored.len(), 2, "{out}");
    let id = stored[1]["id"].as_str().expect("id");
    let (edition, files) = profiles::files_of(&w.b().objects, id)
        .expect("files")
        .expect("stored");
    assert_eq!(edition.as_str(), "partner");
    assert!(files.len() > 3);
    assert!(
        !w.b().objects.exists(&key).expect("exists"),
        "the request is consumed"
    );
    let builds = w.builds();
    assert_eq!(builds.len(), 2);
    assert!(
        builds
            .iter()
            .all(|b| b["trigger"] == "request" && b["built_by"] == "analyst-sub-1")
    );

    // The same event again (at-least-once delivery) builds nothing more.
    let again = w.invoke(w.s3_event(&key)).expect("handled");
    assert_eq!(again["outcome"], "already_handled");
    assert_eq!(w.builds().len(), 2);

    // A request that cannot be built is dropped with its reason, not
    // retried for ever.
    let bad = "profile-requests/bad.json";
    w.b()
        .objects
        .put(
            bad,
            br#"{"from":"2026-02-30","requested_at":"x"}"#,
            PutMode::Create,
        )
        .expect("put");
    let out = w.invoke(w.s3_event(bad)).expect("acknowledged");
    assert_eq!(out["outcome"], "refused");
    assert!(out["error"].as_str().unwrap_or("").contains("not a date"));
    assert!(!w.b().objects.exists(bad).expect("exists"));
    assert_eq!(w.builds().len(), 2);

    // Objects elsewhere in the bucket, and other events, are not builds.
    let elsewhere = w.invoke(w.s3_event("exports/x.csv")).expect("ignored");
    assert_eq!(elsewhere["outcome"], "ignored");
    assert!(
        w.invoke(serde_json::json!({"agencylink_task": "retention"}))
            .is_err()
    );
    assert!(w.invoke(serde_json::json!({"hello": 1})).is_err());
}

/// An analyst's export job (`POST /exports`) arrives as an EventBridge
/// event for `export-requests/`: written once under `exports/jobs/` with a
/// manifest, the request consumed; an unknown dataset is a failed job.
#[test]
fn an_export_job_is_written_once_and_an_impossible_one_fails() {
    use agencylink_http::exports::{self, ExportRequest, Flat, Status};
    let Some(m) = moto() else { return };
    let w = World::loaded(&m, "prof-export");
    let job = |id: &str, dataset: Option<&str>| ExportRequest {
        id: id.to_owned(),
        analyst: "analyst-sub-1".into(),
        purpose: "Op Aurora".into(),
        dataset: dataset.map(str::to_owned),
        format: Flat::Ndjson,
        requested_at: "2026-12-01T09:00:00Z".into(),
    };
    let id = "00112233445566778899aabbccddeeff";
    exports::submit(&w.b().objects, &job(id, Some("police.cse_intelligence"))).expect("submit");
    let key = format!("{}{id}.json", exports::REQUESTS);
    let out = w.invoke(w.s3_event(&key)).expect("exported");
    assert_eq!(out["outcome"], "exported", "{out}");
    let Status::Done(manifest) = exports::status(&w.b().objects, id).expect("status") else {
        panic!("not done");
    };
    let text =
        String::from_utf8(w.b().objects.get_bytes(&manifest.key).expect("export")).expect("utf-8");
    assert_eq!(text.lines().count() as u64, manifest.rows);
    assert!(manifest.rows > 0 && manifest.key.starts_with(exports::JOBS));
    assert!(
        !w.b().objects.exists(&key).expect("exists"),
        "the request is consumed"
    );
    let again = w.invoke(w.s3_event(&key)).expect("handled");
    assert_eq!(again["outcome"], "already_handled");
    assert!(w.builds().is_empty(), "an export is not a profile build");

    let bad = "ffeeddccbbaa99887766554433221100";
    exports::submit(&w.b().objects, &job(bad, Some("no.such"))).expect("submit");
    let out = w
        .invoke(w.s3_event(&format!("{}{bad}.json", exports::REQUESTS)))
        .expect("refused");
    assert_eq!(out["outcome"], "refused", "{out}");
    assert!(matches!(
        exports::status(&w.b().objects, bad).expect("status"),
        Status::Failed { .. }
    ));
}
