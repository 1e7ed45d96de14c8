//! Tests of the analyst and auditor reads.

use super::*;
use crate::link::merge;
use crate::memory::{MemoryChainLog, MemoryRecordStore};
use crate::ports::{Link, RecordBody, WriteBatch};

const CRIME: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["ref", "date"],
  "properties": {
    "ref": {"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"},
    "date": {"type": "string", "format": "date", "x-concept": "event_date"},
    "crime": {"type": "string", "x-identifier": "local_ref", "x-link": "crime"},
    "phone": {"type": "string", "x-identifier": "phone", "x-link": "phone"},
    "role": {"type": "string", "enum": ["victim", "suspect", "witness"], "x-concept": "person_role"},
    "offence_code": {"type": "string", "x-concept": "offence"},
    "dob": {"type": "string", "x-identifier": "date", "x-match": "dob", "x-generalise": "age"}
  }
}"#;

const HEALTH: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["ref", "event_date"],
  "properties": {
    "ref": {"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"},
    "event_date": {"type": "string", "format": "date", "x-concept": "event_date"},
    "borough": {"type": "string", "x-concept": "borough"},
    "concern": {"type": "string", "x-concept": "concern"},
    "cse_flag": {"type": "boolean", "x-concept": "cse_flag"},
    "postcode": {"type": "string", "x-identifier": "postcode", "x-generalise": "sector"}
  }
}"#;

const CRIME_DS: &str = "test.crime";
const HEALTH_DS: &str = "test.health";

fn catalog() -> Catalog {
    Catalog::from_sources([
        ("test.crime.v1.schema.json", CRIME),
        ("test.health.v1.schema.json", HEALTH),
    ])
    .expect("test schemas are valid")
}

fn rec(id: &str, person: &str, dataset: &str, date: &str, fields: Value) -> StoredRecord {
    let links: Vec<Link> = ["crime", "phone"]
        .iter()
        .filter_map(|k| {
            fields.get(*k).and_then(Value::as_str).map(|t| Link {
                kind: (*k).to_owned(),
                token: t.to_owned(),
            })
        })
        .collect();
    let derived = if dataset == CRIME_DS {
        json!({"age": 15, "age_band": "13-15"})
    } else {
        json!({"postcode_sector": "BL1 4"})
    };
    let agency = if dataset == CRIME_DS {
        "test-police"
    } else {
        "test-health"
    };
    StoredRecord {
        record_id: id.to_owned(),
        person_id: person.to_owned(),
        agency: agency.to_owned(),
        dataset: dataset.to_owned(),
        event_date: date.to_owned(),
        upload_id: "u_test".to_owned(),
        row: 1,
        match_keys: Vec::new(),
        links: links.clone(),
        body: RecordBody::from_value(&json!({
            "record_id": id, "agency": agency, "dataset": dataset, "schema_version": 1,
            "event_date": date, "borough": "Bolton", "borough_source": "supplied",
            "fields": fields, "derived": derived, "match_keys": [], "links": links,
            "provenance": {"upload_id": "u_test", "row": 1, "key_id": "k1", "scheme": "agencylink-pseudo-v1"},
        }))
        .expect("an object"),
        signature: None,
    }
}

fn crime(
    id: &str,
    person: &str,
    date: &str,
    role: &str,
    crime: &str,
    phone: Option<&str>,
) -> StoredRecord {
    let mut f = json!({"ref": format!("local_ref:k1:{id}"), "date": date, "crime": crime, "role": role, "offence_code": "72"});
    if let Some(p) = phone {
        f["phone"] = json!(p);
    }
    rec(id, person, CRIME_DS, date, f)
}

fn health(id: &str, person: &str, date: &str) -> StoredRecord {
    rec(
        id,
        person,
        HEALTH_DS,
        date,
        json!({"ref": format!("local_ref:k1:{id}"), "event_date": date, "borough": "Bolton", "concern": "cse", "cse_flag": true, "postcode": "postcode:k1:abc"}),
    )
}

fn store_with(records: Vec<StoredRecord>) -> MemoryRecordStore {
    let store = MemoryRecordStore::default();
    store
        .apply(&WriteBatch {
            records,
            ..WriteBatch::default()
        })
        .expect("apply");
    store
}

#[test]
fn a_timeline_spans_agencies_in_date_order() {
    let cat = catalog();
    let store = store_with(vec![
        crime(
            "r1",
            "p_aaaa",
            "2024-03-01",
            "victim",
            "local_ref:k1:c1",
            None,
        ),
        health("r2", "p_aaaa", "2024-01-05"),
        health("r3", "p_bbbb", "2024-02-01"),
    ]);
    let t = person_timeline(&store, &cat, "p_aaaa").expect("timeline");
    assert_eq!((t.person_id.as_str(), t.resolved_alias), ("p_aaaa", false));
    assert_eq!(t.agencies, ["test-health", "test-police"]);
    let dates: Vec<&str> = t.timeline.iter().map(|r| r.date.as_str()).collect();
    assert_eq!(dates, ["2024-01-05", "2024-03-01"], "oldest first");
    let (h, c) = (&t.timeline[0], &t.timeline[1]);
    assert_eq!((h.role.as_str(), c.role.as_str()), ("subject", "victim"));
    assert_eq!(h.codes.get("concern"), Some(&json!("cse")));
    assert_eq!(h.codes.get("cse_flag"), Some(&json!(true)));
    assert_eq!(c.codes.get("offence"), Some(&json!("72")));
    assert_eq!(c.age_band.as_deref(), Some("13-15"));
    assert_eq!(h.borough.as_deref(), Some("Bolton"));
}

#[test]
fn unknown_and_malformed_ids_are_clear_errors_that_echo_nothing_typed() {
    let cat = catalog();
    let store = store_with(vec![health("r1", "p_aaaa", "2024-01-05")]);
    let err = person_timeline(&store, &cat, "p_zzzz").expect_err("unknown");
    assert!(matches!(err, QueryError::UnknownPerson(_)), "{err}");
    let err = person_timeline(&store, &cat, "Jane Smith").expect_err("not an id");
    assert!(matches!(err, QueryError::NotAPersonId));
    assert!(!err.to_string().contains("Jane"), "{err}");
    let err = person_network(&store, &cat, "Jane Smith", NetworkLimits::default())
        .expect_err("not an id");
    assert!(!err.to_string().contains("Jane"), "{err}");
}

#[test]
fn an_id_merged_away_still_resolves_and_says_so() {
    let cat = catalog();
    let store = MemoryRecordStore::default();
    let keyed = |mut r: StoredRecord, keys: &[&str]| {
        r.match_keys = keys.iter().map(|k| (*k).to_owned()).collect();
        r
    };
    merge(
        &store,
        vec![
            keyed(health("a", "", "2024-01-01"), &["k1"]),
            keyed(
                crime("b", "", "2024-02-01", "victim", "local_ref:k1:c1", None),
                &["k2"],
            ),
        ],
    )
    .expect("merge");
    let pa = store.get_record("a").expect("get").expect("a").person_id;
    let pb = store.get_record("b").expect("get").expect("b").person_id;
    assert_ne!(pa, pb);
    // A later record carries both keys: one child, one surviving id.
    merge(
        &store,
        vec![keyed(health("c", "", "2024-03-01"), &["k1", "k2"])],
    )
    .expect("merge");
    let (winner, loser) = if pa < pb { (pa, pb) } else { (pb, pa) };
    let t = person_timeline(&store, &cat, &loser).expect("old id resolves");
    assert_eq!(t.requested, loser);
    assert_eq!(t.person_id, winner);
    assert!(t.resolved_alias);
    assert_eq!(t.timeline.len(), 3);
    assert_eq!(t.agencies.len(), 2);
    let n = person_network(&store, &cat, &loser, NetworkLimits::default()).expect("network");
    assert_eq!(
        (n.person_id.as_str(), n.resolved_alias),
        (winner.as_str(), true)
    );
}

/// v1 -(crime c1)- s1, s2 -(phone x)- s3 -(crime c2)- s4, and h1 alone.
fn network_store() -> MemoryRecordStore {
    store_with(vec![
        crime(
            "r1",
            "p_vone",
            "2024-01-01",
            "victim",
            "local_ref:k1:c1",
            None,
        ),
        crime(
            "r2",
            "p_sone",
            "2024-01-01",
            "suspect",
            "local_ref:k1:c1",
            None,
        ),
        crime(
            "r3",
            "p_stwo",
            "2024-01-01",
            "suspect",
            "local_ref:k1:c1",
            Some("phone:k1:x"),
        ),
        crime(
            "r4",
            "p_sthree",
            "2024-02-01",
            "suspect",
            "local_ref:k1:c2",
            Some("phone:k1:x"),
        ),
        crime(
            "r5",
            "p_sfour",
            "2024-02-01",
            "suspect",
            "local_ref:k1:c2",
            None,
        ),
        health("r6", "p_hone", "2024-03-01"),
    ])
}

#[test]
fn a_network_is_walked_through_shared_links() {
    let cat = catalog();
    let store = network_store();
    let n = person_network(&store, &cat, "p_vone", NetworkLimits::default()).expect("network");
    let people: Vec<(&str, usize)> = n
        .people
        .iter()
        .map(|p| (p.person_id.as_str(), p.depth))
        .collect();
    assert_eq!(
        people,
        [
            ("p_vone", 0),
            ("p_sone", 1),
            ("p_stwo", 1),
            ("p_sthree", 2),
            ("p_sfour", 3)
        ]
    );
    assert!(!n.truncated && n.note.is_none());
    assert_eq!((n.suspects, n.victims, n.group_based), (4, 1, true));
    assert_eq!(
        n.network_id.as_deref(),
        Some("n_sfour"),
        "smallest person id"
    );
    let ties: Vec<(&str, usize)> = n
        .ties
        .iter()
        .map(|t| (t.kind.as_str(), t.people.len()))
        .collect();
    assert_eq!(ties, [("crime", 3), ("crime", 2), ("phone", 2)]);
    assert!(n.people[0].roles.contains("victim"));
    // The network id names its smallest person, so it works as input.
    let by_net = person_network(&store, &cat, "n_sfour", NetworkLimits::default()).expect("by id");
    assert_eq!(by_net.people.len(), 5);
}

#[test]
fn network_limits_truncate_with_a_note() {
    let cat = catalog();
    let store = network_store();
    let shallow = NetworkLimits {
        max_depth: 1,
        max_people: 200,
    };
    let n = person_network(&store, &cat, "p_vone", shallow).expect("network");
    assert_eq!(n.people.len(), 3);
    assert!(n.truncated);
    assert!(
        n.note.as_deref().is_some_and(|s| s.contains("depth 1")),
        "{:?}",
        n.note
    );
    assert!(n.group_based, "two suspects and a victim already");
    let small = NetworkLimits {
        max_depth: 5,
        max_people: 2,
    };
    let n = person_network(&store, &cat, "p_vone", small).expect("network");
    assert_eq!(n.people.len(), 2);
    assert!(
        n.note.as_deref().is_some_and(|s| s.contains("2 people")),
        "{:?}",
        n.note
    );
    let alone = person_network(&store, &cat, "p_hone", NetworkLimits::default()).expect("alone");
    assert_eq!(alone.people.len(), 1);
    assert!(alone.network_id.is_none() && alone.ties.is_empty() && !alone.group_based);
    assert!(!alone.truncated);
}

#[test]
fn export_rows_are_flat_and_fit_the_planned_header() {
    let cat = catalog();
    let mut records = vec![
        crime(
            "r1",
            "p_vone",
            "2024-01-01",
            "victim",
            "local_ref:k1:c1",
            None,
        ),
        health("r2", "p_vone", "2024-01-05"),
    ];
    // A dataset whose schema has since left the catalog still exports.
    let mut gone = health("r3", "p_hone", "2024-02-01");
    gone.dataset = "test.retired".into();
    let mut body = gone.body.parse().expect("parses");
    body["fields"] = json!({"ref": "local_ref:k1:r3", "old_code": "X"});
    gone.body = RecordBody::from_value(&body).expect("an object");
    records.push(gone);
    let store = store_with(records);
    let plan = plan_export(&store, &cat, None).expect("plan");
    assert_eq!(plan.datasets, [CRIME_DS, HEALTH_DS, "test.retired"]);
    for c in BASE_COLUMNS.iter().chain(&[
        "offence_code",
        "age_band",
        "fields.event_date",
        "fields.borough",
        "postcode_sector",
        "old_code",
    ]) {
        assert!(
            plan.columns.iter().any(|p| p == c),
            "column {c} in {:?}",
            plan.columns
        );
    }
    let mut rows = Vec::new();
    let n = export_rows(&store, &cat, &plan, &mut |r| {
        rows.push(r);
        true
    })
    .expect("export");
    assert_eq!((n, rows.len()), (3, 3));
    for r in &rows {
        csv_record(&plan.columns, r).expect("every key is a header column");
    }
    let h = rows
        .iter()
        .find(|r| r["dataset"] == HEALTH_DS)
        .expect("health row");
    assert_eq!(h["key_id"], "k1");
    assert_eq!(h["fields.event_date"], "2024-01-05");
    assert_eq!(h["postcode"], "postcode:k1:abc", "tokens, never values");
    let one = plan_export(&store, &cat, Some(HEALTH_DS)).expect("one dataset");
    let mut count = 0;
    export_rows(&store, &cat, &one, &mut |_| {
        count += 1;
        true
    })
    .expect("export");
    assert_eq!(count, 1);
    let err = plan_export(&store, &cat, Some("Jane Smith")).expect_err("unknown");
    assert!(matches!(err, QueryError::UnknownDataset(_)));
    assert!(!err.to_string().contains("Jane"), "{err}");
    let mut extra = Map::new();
    extra.insert("surprise".into(), json!(1));
    assert!(matches!(
        csv_record(&plan.columns, &extra),
        Err(QueryError::UnexpectedColumn(_))
    ));
}

#[test]
fn csv_cells_cannot_carry_a_formula() {
    // Which cells are neutralised is csv_safe's; here, that every kind
    // of JSON value goes through it.
    assert_eq!(csv_cell(&json!("\tx")), "'\tx");
    assert_eq!(csv_cell(&json!("=HYPERLINK(\"x\")")), "'=HYPERLINK(\"x\")");
    assert_eq!(csv_cell(&json!(["=a", "b"])), "'=a;b");
    assert_eq!(csv_cell(&json!(["2C", "5A"])), "2C;5A");
    assert_eq!(csv_cell(&json!(-3)), "-3", "numbers are not formulas");
    assert_eq!(csv_cell(&json!(true)), "true");
    assert_eq!(csv_cell(&Value::Null), "");
    // Through the csv crate (as the CLI writes it), quotes and commas survive.
    let mut w = csv::Writer::from_writer(Vec::new());
    let cells = vec![csv_cell(&json!("=1,\"2\"")), "plain".to_owned()];
    w.write_record(&cells).expect("write");
    let bytes = w.into_inner().expect("flush");
    let mut rec = csv::StringRecord::new();
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes.as_slice());
    assert!(rd.read_record(&mut rec).expect("read"));
    assert_eq!(&rec[0], "'=1,\"2\"");
    assert_eq!(&rec[1], "plain");
}

#[test]
fn reads_are_hash_chained_and_tampering_is_caught() {
    let log = MemoryChainLog::default();
    let read = |target: &'static str| Read {
        analyst: "a.analyst",
        purpose: "Operation Test: safeguarding review",
        action: "query_person",
        target,
        rows_returned: 4,
        time: "2025-01-01T00:00:00Z",
    };
    log_read(&log, &read("p_aaaa")).expect("log");
    let second = log_read(&log, &read("p_bbbb")).expect("log");
    assert_eq!(second["seq"], 2);
    assert_eq!(second["type"], "read");
    assert_eq!(second["analyst"], "a.analyst");
    let entries = log.entries().expect("entries");
    assert_eq!(verify_access_log(&entries), Ok(2));
    let mut edited = entries.clone();
    edited[0]["purpose"] = json!("something else");
    assert_eq!(verify_access_log(&edited).expect_err("edited").position, 1);
    let mut deleted = entries.clone();
    deleted.remove(0);
    assert!(verify_access_log(&deleted).is_err());
    // A correctly chained entry that is not a read does not belong here.
    let mut other = Map::new();
    other.insert("type".into(), json!("ingest"));
    lineage::append(&log, other).expect("append");
    assert_eq!(
        verify_access_log(&log.entries().expect("entries"))
            .expect_err("not a read")
            .position,
        3
    );
}

#[test]
fn blank_or_multi_line_readers_are_refused_without_echo() {
    for (analyst, purpose) in [
        ("", "why"),
        ("  ", "why"),
        ("a", ""),
        ("a", "   "),
        ("a", "Jane Smith\nDOB 2010-01-01"),
    ] {
        let err = check_reader(analyst, purpose).expect_err("refused");
        assert!(!err.to_string().contains("Jane"), "{err}");
    }
    let log = MemoryChainLog::default();
    let refused = log_read(
        &log,
        &Read {
            analyst: "a",
            purpose: " ",
            action: "export",
            target: "all",
            rows_returned: 0,
            time: "t",
        },
    );
    assert!(refused.is_err());
    assert!(log.entries().expect("entries").is_empty(), "nothing logged");
    check_reader("a.analyst", "Op X").expect("fine");
}

#[test]
fn lineage_events_become_openlineage_run_events() {
    let cat = catalog();
    let event = json!({
        "type": "ingest", "upload_id": "u_abc", "agency": "test-police", "dataset": CRIME_DS,
        "schema_version": 1, "scheme": "agencylink-pseudo-v1", "key_id": "k1",
        "file_sha256": "00", "source": "landing/test-police/test.crime/x.csv", "format": "csv",
        "rows_in": 10, "rows_accepted": 7, "rows_rejected": 3,
        "records_inserted": 7, "records_replaced": 0, "records_unchanged": 0, "people_linked": 1,
        "rejections": [{"field": "dob", "code": "format", "count": 2}, {"field": "role", "code": "enum", "count": 1}],
        "file_errors": [], "outputs": ["curated/test-police/test.crime/u_abc.ndjson", "reports/test-police/test.crime/u_abc.rejections.json"],
        "time": "2025-01-01T00:00:00Z", "seq": 4, "prev_hash": "p", "hash": "h",
    });
    let ol = openlineage_event(&event, &cat);
    assert_eq!(ol["eventType"], "COMPLETE");
    assert_eq!(ol["eventTime"], "2025-01-01T00:00:00Z");
    assert_eq!(ol["schemaURL"], OPENLINEAGE_SCHEMA_URL);
    assert_eq!(ol["job"]["namespace"], "agencylink");
    assert_eq!(ol["job"]["name"], "ingest.test.crime");
    let run_id = ol["run"]["runId"].as_str().expect("run id");
    assert_eq!(run_id, super::run_id("u_abc"), "deterministic");
    let parts: Vec<usize> = run_id.split('-').map(str::len).collect();
    assert_eq!(parts, [8, 4, 4, 4, 12]);
    assert_eq!(&run_id[14..15], "8", "version 8 UUID");
    let input = &ol["inputs"][0];
    assert_eq!(input["name"], "landing/test-police/test.crime/x.csv");
    let fields = input["facets"]["schema"]["fields"]
        .as_array()
        .expect("schema fields");
    assert_eq!(fields.len(), 7);
    assert!(
        fields
            .iter()
            .any(|f| f["name"] == "dob" && f["type"] == "string")
    );
    let dq = &input["inputFacets"]["dataQualityMetrics"];
    assert_eq!(dq["rowCount"], 10);
    assert_eq!(dq["rejectedRowCount"], 3);
    assert_eq!(dq["columnMetrics"]["dob"]["rejectedByRule"]["format"], 2);
    assert!(
        dq["_schemaURL"]
            .as_str()
            .is_some_and(|s| s.contains("DataQualityMetrics"))
    );
    let outputs = ol["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), 2);
    assert_eq!(
        outputs[0]["outputFacets"]["outputStatistics"]["rowCount"],
        7
    );
    let mut failed = event.clone();
    failed["type"] = json!("failure");
    failed["file_errors"] = json!([{"code": "encoding", "message": "not UTF-8 at line 3"}]);
    let ol = openlineage_event(&failed, &cat);
    assert_eq!(ol["eventType"], "FAIL");
    assert!(
        ol["run"]["facets"]["errorMessage"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("encoding"))
    );
}

#[test]
fn openlineage_carries_the_schema_hash_and_checks_it_against_the_catalog() {
    let cat = catalog();
    let ds = cat.get(CRIME_DS).expect("crime");
    let base = json!({
        "type": "ingest", "upload_id": "u_abc", "agency": "test-police", "dataset": CRIME_DS,
        "schema_version": 1, "rows_in": 1, "rows_accepted": 1, "rows_rejected": 0,
        "rejections": [], "file_errors": [], "outputs": [], "time": "2025-01-01T00:00:00Z",
        "seq": 1, "prev_hash": null, "hash": "h",
    });
    // An event from before lineage recorded the schema: no hash, and the
    // catalog's fields are still described.
    let old = openlineage_event(&base, &cat);
    assert_eq!(
        old["run"]["facets"]["agencylink_upload"]["schema"],
        Value::Null
    );
    assert!(old["inputs"][0]["facets"]["schema"]["fields"].is_array());

    let mut recorded = base.clone();
    recorded["schema"] = ds.provenance.to_lineage(&ds.file);
    let ol = openlineage_event(&recorded, &cat);
    let schema = &ol["run"]["facets"]["agencylink_upload"]["schema"];
    assert_eq!(schema["origin"], "directory");
    assert_eq!(schema["sha256"], ds.provenance.sha256.as_str());
    assert!(ol["inputs"][0]["facets"]["schema"]["fields"].is_array());

    // Another schema than today's catalog holds: its fields are not
    // passed off as the upload's.
    recorded["schema"]["sha256"] = json!("0".repeat(64));
    let other = openlineage_event(&recorded, &cat);
    assert!(other["inputs"][0]["facets"].get("schema").is_none());
}

#[test]
fn lifecycle_events_become_openlineage_runs_and_uploads_do_not() {
    let expired = json!({
        "type": "expired", "dataset": CRIME_DS, "retention_days": 2557, "cutoff": "2019-01-01",
        "records_removed": 5, "records_removed_from": {"u_abc": 5}, "people_removed": 2,
        "time": "2026-01-01T00:00:00Z", "seq": 9, "prev_hash": "p", "hash": "h9",
    });
    let ol = openlineage_lifecycle_event(&expired).expect("a run");
    assert_eq!(ol["eventType"], "COMPLETE");
    assert_eq!(ol["eventTime"], "2026-01-01T00:00:00Z");
    assert_eq!(ol["job"]["name"], format!("retention.{CRIME_DS}"));
    assert_eq!(ol["job"]["facets"]["jobType"]["jobType"], "EXPIRED");
    let facet = &ol["run"]["facets"]["agencylink_event"];
    assert_eq!(facet["records_removed"], 5);
    assert_eq!(facet["lineage_seq"], 9);
    assert_eq!(facet["lineage_hash"], "h9");
    assert!(facet.get("prev_hash").is_none() && facet.get("seq").is_none());
    assert_eq!(ol["outputs"], json!([]));
    let again = openlineage_lifecycle_event(&expired).expect("a run");
    assert_eq!(ol["run"]["runId"], again["run"]["runId"], "deterministic");

    let withdrawn = json!({
        "type": "withdrawn", "upload_id": "u_abc", "agency": "test-police", "dataset": CRIME_DS,
        "reason": "sent in error", "records_removed": 7,
        "outputs_removed": ["curated/test-police/test.crime/u_abc.ndjson"],
        "time": "2026-01-02T00:00:00Z", "seq": 10, "prev_hash": "h9", "hash": "h10",
    });
    let ol = openlineage_lifecycle_event(&withdrawn).expect("a run");
    assert_eq!(ol["job"]["name"], format!("withdraw.{CRIME_DS}"));
    assert_eq!(
        ol["outputs"][0]["name"],
        "curated/test-police/test.crime/u_abc.ndjson"
    );
    assert_eq!(
        ol["outputs"][0]["facets"]["lifecycleStateChange"]["lifecycleStateChange"],
        "DROP"
    );
    assert_ne!(
        ol["run"]["runId"],
        super::run_id("u_abc"),
        "not the upload's run"
    );

    let rotate = json!({"type": "key_rotate", "from_key_id": "k1", "to_key_id": "k2",
        "time": "2026-01-03T00:00:00Z", "seq": 11, "hash": "h11"});
    let ol = openlineage_lifecycle_event(&rotate).expect("a run");
    assert_eq!(ol["job"]["name"], "key.rotate");
    assert_eq!(ol["run"]["facets"]["agencylink_event"]["to_key_id"], "k2");

    let ingest = json!({"type": "ingest", "upload_id": "u_abc", "dataset": CRIME_DS, "seq": 1});
    assert!(openlineage_lifecycle_event(&ingest).is_none());
    assert!(openlineage_lifecycle_event(&json!({"type": "something_new"})).is_none());
}
