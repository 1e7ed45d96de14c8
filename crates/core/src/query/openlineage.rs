//! Lineage events as OpenLineage run events, for catalogues and auditors'
//! tools.

use super::*;

/// The `producer` of our OpenLineage events.
pub const OPENLINEAGE_PRODUCER: &str = concat!(
    "https://github.com/agencylink/agencylink/tree/v",
    env!("CARGO_PKG_VERSION")
);
/// The OpenLineage spec version our events follow.
pub const OPENLINEAGE_SCHEMA_URL: &str =
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
/// The namespace of our jobs and datasets.
pub const OPENLINEAGE_NAMESPACE: &str = "agencylink";
const FACETS: &str = "https://openlineage.io/spec/facets";

/// A deterministic OpenLineage run id for an upload: a version-8 (custom)
/// UUID from SHA-256 of the upload id, so exporting twice gives the same ids
/// and a consumer can join our events with anything else that names the
/// upload.
pub fn run_id(upload_id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"agencylink/v1/openlineage-run|")
        .chain_update(upload_id.as_bytes())
        .finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn facet(schema: String, body: Map<String, Value>) -> Value {
    // The two underscore keys first, as OpenLineage's own examples print them.
    let mut m = Map::new();
    m.insert("_producer".into(), json!(OPENLINEAGE_PRODUCER));
    m.insert("_schemaURL".into(), json!(schema));
    m.extend(body);
    Value::Object(m)
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn type_name(ty: FieldType) -> String {
    let scalar = |s: ScalarType| match s {
        ScalarType::String => "string",
        ScalarType::Integer => "integer",
        ScalarType::Number => "number",
        ScalarType::Boolean => "boolean",
    };
    match ty {
        FieldType::String => "string".into(),
        FieldType::Integer => "integer".into(),
        FieldType::Number => "number".into(),
        FieldType::Boolean => "boolean".into(),
        FieldType::Array(s) => format!("array<{}>", scalar(s)),
    }
}

/// One lineage event as an OpenLineage RunEvent: `COMPLETE` for an ingest,
/// `FAIL` for a failure; the landing object as input with the schema and
/// data-quality facets; the curated data and reports as outputs.
pub fn openlineage_event(event: &Value, catalog: &Catalog) -> Value {
    let typed = LineageEvent::from_entry(event);
    let failed = typed.kind() == "failure";
    let none = UploadEvent::default();
    let u = typed.upload().unwrap_or(&none);
    // A landing object refused before it became an upload names no more
    // than where it came from and when.
    let (agency, dataset, source, time) = match &typed {
        LineageEvent::Failure(f) => (
            f.agency.as_deref().unwrap_or(""),
            f.dataset.as_deref().unwrap_or(""),
            f.source.as_str(),
            f.time.as_str(),
        ),
        _ => (
            u.agency.as_str(),
            u.dataset.as_str(),
            u.source.as_str(),
            u.time.as_str(),
        ),
    };
    // The chain's fields are not the event's: read them as stored.
    let seq = event.get("seq").and_then(Value::as_u64).unwrap_or(0);
    let hash = event.get("hash").and_then(Value::as_str).unwrap_or("");
    let upload = u.upload_id.as_str();
    // An event without an upload id (a refused landing object) still gets
    // a stable run id.
    let run_key = if upload.is_empty() {
        format!("seq:{seq}")
    } else {
        upload.to_owned()
    };

    let mut run_facets = Map::new();
    run_facets.insert(
        "agencylink_upload".into(),
        facet(
            format!("{OPENLINEAGE_PRODUCER}/spec/facets/UploadRunFacet.json"),
            obj(json!({
                "upload_id": upload,
                "agency": agency,
                "dataset": dataset,
                "schema_version": typed.upload().map(|u| u.schema_version),
                // Embedded or from a directory, with its SHA-256; null for
                // events recorded before lineage kept it.
                "schema": u.schema,
                "scheme": u.scheme,
                "key_id": u.key_id,
                "file_sha256": u.file_sha256,
                "format": u.format,
                "records_inserted": u.records_inserted,
                "records_replaced": u.records_replaced,
                "records_unchanged": u.records_unchanged,
                "people_linked": u.people_linked,
                "linkage": u.linkage,
                "replaces_uploads": u.replaces_uploads.as_deref().unwrap_or_default(),
                "lineage_seq": seq,
                "lineage_hash": hash,
            })),
        ),
    );
    if failed {
        let problems: Vec<String> = u
            .file_errors
            .iter()
            .map(|p| format!("[{}] {}", p.code, p.message))
            .collect();
        let message = if problems.is_empty() {
            "the upload failed".to_owned()
        } else {
            problems.join("; ")
        };
        run_facets.insert(
            "errorMessage".into(),
            facet(
                format!("{FACETS}/1-0-0/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"),
                obj(json!({"message": message, "programmingLanguage": "RUST"})),
            ),
        );
    }

    // Input: the landing object, described by the schema it was checked against.
    let mut input_facets = Map::new();
    let version = typed.upload().map(|u| u.schema_version);
    // The fields come from today's catalog: only when it holds the very
    // schema the upload used (same hash), or the event predates the hash.
    let recorded_sha = u.schema.as_ref().map(|s| s.sha256.as_str());
    if let Some(ds) = version
        .and_then(|v| catalog.get_version(dataset, v))
        .filter(|ds| recorded_sha.is_none_or(|sha| sha == ds.provenance.sha256))
    {
        let fields: Vec<Value> = ds
            .fields()
            .iter()
            .map(|f| {
                let mut m = obj(json!({"name": f.name, "type": type_name(f.ty)}));
                if !f.description.is_empty() {
                    m.insert("description".into(), json!(f.description));
                }
                Value::Object(m)
            })
            .collect();
        input_facets.insert(
            "schema".into(),
            facet(
                format!("{FACETS}/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"),
                obj(json!({"fields": fields})),
            ),
        );
    }
    let mut by_field: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for r in &u.rejections {
        *by_field
            .entry(r.field.clone())
            .or_default()
            .entry(r.code.clone())
            .or_default() += r.count;
    }
    let column_metrics: Map<String, Value> = by_field
        .iter()
        .map(|(field, rules)| {
            (
                field.clone(),
                json!({
                    "rejectedCount": rules.values().sum::<u64>(),
                    "rejectedByRule": rules,
                }),
            )
        })
        .collect();
    let mut dq_input = Map::new();
    dq_input.insert(
        "dataQualityMetrics".into(),
        facet(
            format!(
                "{FACETS}/1-0-2/DataQualityMetricsInputDatasetFacet.json#/$defs/DataQualityMetricsInputDatasetFacet"
            ),
            obj(json!({
                "rowCount": u.rows_in,
                "fileCount": 1,
                "acceptedRowCount": u.rows_accepted,
                "rejectedRowCount": u.rows_rejected,
                "columnMetrics": column_metrics,
            })),
        ),
    );
    let mut assertions =
        vec![json!({"assertion": "schema_valid_rows", "success": u.rows_rejected == 0})];
    for (field, rules) in &by_field {
        for code in rules.keys() {
            let mut a = obj(json!({"assertion": code, "success": false}));
            if !field.is_empty() {
                a.insert("column".into(), json!(field));
            }
            assertions.push(Value::Object(a));
        }
    }
    dq_input.insert(
        "dataQualityAssertions".into(),
        facet(
            format!(
                "{FACETS}/1-0-1/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet"
            ),
            obj(json!({"assertions": assertions})),
        ),
    );
    let inputs = json!([{
        "namespace": OPENLINEAGE_NAMESPACE,
        "name": source,
        "facets": input_facets,
        "inputFacets": dq_input,
    }]);

    let outputs: Vec<Value> = u
        .outputs
        .iter()
        .map(|key| {
            let mut out = obj(json!({"namespace": OPENLINEAGE_NAMESPACE, "name": key}));
            // Curated data holds exactly the accepted rows; reports hold
            // errors, which are not rows of the dataset.
            if key.starts_with("curated/") && !failed {
                out.insert(
                    "outputFacets".into(),
                    json!({"outputStatistics": facet(
                        format!("{FACETS}/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet"),
                        obj(json!({"rowCount": u.rows_accepted})),
                    )}),
                );
            }
            Value::Object(out)
        })
        .collect();

    json!({
        "eventType": if failed { "FAIL" } else { "COMPLETE" },
        "eventTime": time,
        "producer": OPENLINEAGE_PRODUCER,
        "schemaURL": OPENLINEAGE_SCHEMA_URL,
        "run": {"runId": run_id(&run_key), "facets": run_facets},
        "job": {
            "namespace": OPENLINEAGE_NAMESPACE,
            "name": format!("ingest.{dataset}"),
            "facets": {"jobType": facet(
                format!("{FACETS}/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"),
                obj(json!({"processingType": "BATCH", "integration": "AGENCYLINK", "jobType": "INGEST"})),
            )},
        },
        "inputs": inputs,
        "outputs": outputs,
    })
}

/// Any other lineage event (a withdrawal, a retention expiry, a key
/// rotation or migration, a linkage-model run) as a `COMPLETE` RunEvent,
/// so a lineage tool sees data leave the store as well as arrive: job
/// `withdraw.<dataset>`, `retention.<dataset>`, `key.rotate`,
/// `key.migrate`, `linkage.train` or `profile.<edition>` (its files as
/// outputs); the event's own fields (counts and
/// ids, never a record) in the `agencylink_event` run facet; a withdrawn
/// upload's curated data and reports as outputs with the lifecycle state
/// `DROP`. An `ingest_started` is the `START` of its upload's run (the
/// upload's run id). `None` for an upload's closing event (see
/// [`openlineage_event`]) or an unknown kind.
pub fn openlineage_lifecycle_event(event: &Value) -> Option<Value> {
    let typed = LineageEvent::from_entry(event);
    // An upload that began merging: the START of the run its `ingest`
    // (or `failure`) event completes, so the two share the upload's run id.
    if let LineageEvent::IngestStarted(st) = &typed {
        return Some(json!({
            "eventType": "START",
            "eventTime": st.time,
            "producer": OPENLINEAGE_PRODUCER,
            "schemaURL": OPENLINEAGE_SCHEMA_URL,
            "run": {"runId": run_id(&st.upload_id)},
            "job": {"namespace": OPENLINEAGE_NAMESPACE, "name": format!("ingest.{}", st.dataset)},
            "inputs": [{"namespace": OPENLINEAGE_NAMESPACE, "name": st.source}],
            "outputs": [],
        }));
    }
    let (job, outputs): (String, Vec<Value>) = match &typed {
        LineageEvent::Withdrawn(w) => (
            format!("withdraw.{}", w.dataset),
            w.outputs_removed
                .iter()
                .map(|key| {
                    json!({
                        "namespace": OPENLINEAGE_NAMESPACE,
                        "name": key,
                        "facets": {"lifecycleStateChange": facet(
                            format!("{FACETS}/1-0-1/LifecycleStateChangeDatasetFacet.json#/$defs/LifecycleStateChangeDatasetFacet"),
                            obj(json!({"lifecycleStateChange": "DROP"})),
                        )},
                    })
                })
                .collect(),
        ),
        LineageEvent::Expired(x) => (format!("retention.{}", x.dataset), Vec::new()),
        LineageEvent::KeyRotate(_) => ("key.rotate".to_owned(), Vec::new()),
        LineageEvent::KeyMigrate(_) => ("key.migrate".to_owned(), Vec::new()),
        LineageEvent::LinkTrain(_) => ("linkage.train".to_owned(), Vec::new()),
        // The files a build wrote are its outputs (named under its
        // location, which is an object prefix or `local`).
        LineageEvent::ProfileBuild(p) => (
            format!("profile.{}", p.edition),
            p.files
                .keys()
                .map(|name| {
                    json!({
                        "namespace": OPENLINEAGE_NAMESPACE,
                        "name": format!("{}/{name}", p.location.trim_end_matches('/')),
                    })
                })
                .collect(),
        ),
        // A withdrawal's or expiry's start is told by its closing event.
        LineageEvent::IngestStarted(_)
        | LineageEvent::WithdrawalStarted(_)
        | LineageEvent::ExpiryStarted(_)
        | LineageEvent::Ingest(_)
        | LineageEvent::UploadFailure(_)
        | LineageEvent::Failure(_)
        | LineageEvent::Other(_) => return None,
    };
    let kind = typed.kind().to_owned();
    let seq = event.get("seq").and_then(Value::as_u64).unwrap_or(0);
    let time = event.get("time").and_then(Value::as_str).unwrap_or("");
    // The event as stored, less the chain's own fields (given apart).
    let mut body = obj(event.clone());
    for chain in ["seq", "prev_hash", "hash"] {
        body.remove(chain);
    }
    body.insert("lineage_seq".into(), json!(seq));
    body.insert(
        "lineage_hash".into(),
        event.get("hash").cloned().unwrap_or(Value::Null),
    );
    Some(json!({
        "eventType": "COMPLETE",
        "eventTime": time,
        "producer": OPENLINEAGE_PRODUCER,
        "schemaURL": OPENLINEAGE_SCHEMA_URL,
        // One run per event: the chain position names it for good.
        "run": {"runId": run_id(&format!("{kind}:seq:{seq}")), "facets": {
            "agencylink_event": facet(
                format!("{OPENLINEAGE_PRODUCER}/spec/facets/LifecycleRunFacet.json"),
                body,
            ),
        }},
        "job": {
            "namespace": OPENLINEAGE_NAMESPACE,
            "name": job,
            "facets": {"jobType": facet(
                format!("{FACETS}/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"),
                obj(json!({"processingType": "BATCH", "integration": "AGENCYLINK", "jobType": kind.to_uppercase()})),
            )},
        },
        "inputs": [],
        "outputs": outputs,
    }))
}
