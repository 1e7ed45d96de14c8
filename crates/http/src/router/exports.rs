//! The routes whose answers are files: flat exports (CSV, NDJSON), charts
//! (GraphML, i2) and export jobs. Each file is put in the host's object
//! store under `exports/` and handed out as a short-lived link the host
//! makes ([`Host::link`]: a presigned S3 URL on AWS, a download link bound
//! to the caller under `agencylink serve`), only once the read is logged.

use agencylink_core::ports::{ObjectStoreExt, PutMode, StoreError};
use agencylink_core::query::{self, NetworkLimits, QueryError};
use serde_json::{Value, json};

use super::{Call, Caller, Host, LINK_SECONDS, Response, analyst_read, log_request};
use crate::Problem;
use crate::exports::{self, Flat};

/// `GET /people/{id}/network`, within the caps the route's query allows:
/// as JSON in the body (the default), or as a GraphML or i2 chart stored
/// in the host's object store with a short-lived link back.
pub(super) fn network(host: &dyn Host, call: &Call<'_>) -> Response {
    let chart = match call.query("format").as_deref() {
        None | Some("json") => None,
        Some("i2") => Some(Chart::I2),
        Some(_) => Some(Chart::Graphml),
    };
    let mut limits = NetworkLimits::default();
    if let Some(d) = call.query("max_depth").and_then(|v| v.trim().parse().ok()) {
        limits.max_depth = d;
    }
    if let Some(p) = call.query("max_people").and_then(|v| v.trim().parse().ok()) {
        limits.max_people = p;
    }
    let id = call.id();
    analyst_read(
        host,
        call.caller,
        call.query("purpose"),
        "query_network",
        id,
        |store, catalog| {
            let Some(chart) = chart else {
                let n = query::person_network(store, catalog, id, limits)?;
                return Ok((
                    n.people.len() as u64,
                    serde_json::to_value(&n).unwrap_or_default(),
                ));
            };
            let (n, graph) = query::network_graph(store, catalog, id, limits)?;
            let from = query::GraphSource {
                source: "network".into(),
                target: id.to_owned(),
                network_id: n.network_id.clone(),
                group_based: Some(n.group_based),
                truncated: Some(n.truncated),
            };
            let body = put_chart(host, call.caller, &graph, &from, chart)?;
            Ok((n.people.len() as u64, body))
        },
    )
}

/// Export flat rows to `exports/…` in the host's object store and return a
/// short-lived download link (exports are too large for a response body).
pub(super) fn export(
    host: &dyn Host,
    who: &Caller,
    purpose: Option<String>,
    dataset: Option<String>,
    format: Option<String>,
) -> Response {
    let csv = match format.as_deref() {
        None | Some("csv") => true,
        Some("ndjson") => false,
        Some("i2") => return export_chart(host, who, purpose, dataset, Chart::I2),
        Some("graphml") => return export_chart(host, who, purpose, dataset, Chart::Graphml),
        Some(_) => return error(400, "format must be csv, ndjson, i2 or graphml"),
    };
    let format = if csv { Flat::Csv } else { Flat::Ndjson };
    let target = dataset.clone().unwrap_or_else(|| "all".into());
    let too_large = std::cell::Cell::new(false);
    let limit = host.sync_export_rows();
    let answer = analyst_read(host, who, purpose, "export", &target, |store, catalog| {
        let key = format!(
            "exports/{}-{}.{}",
            host.now().replace(':', ""),
            random_suffix(),
            format.ext()
        );
        let written = exports::write_flat(
            host.objects(),
            store,
            catalog,
            dataset.as_deref(),
            format,
            &key,
            limit,
        )?;
        let exports::Written::Done { rows, datasets } = written else {
            // Nothing was stored or returned: not a read to log.
            too_large.set(true);
            return Err(QueryError::Store(StoreError::Invalid("too large".into())));
        };
        let url = host.link(who, &key).map_err(QueryError::Store)?;
        Ok((
            rows,
            json!({
                "key": key,
                "rows": rows,
                "datasets": datasets,
                "url": url,
                "expires_in": LINK_SECONDS,
            }),
        ))
    });
    if too_large.get() {
        return problem(&Problem::new(
            413,
            format!(
                "the export has more than {} rows, more than the API writes within a request: POST /exports runs it as a job, and GET /exports/{{id}} gives its link when it is done",
                limit
            ),
        ));
    }
    answer
}

/// `POST /exports`: queue a flat export as a job. The request is in the
/// access log (with its purpose) before it is queued; the data is handed
/// out, and logged again with its rows, by `GET /exports/{id}`.
pub(super) fn export_job(host: &dyn Host, who: &Caller, body: &[u8]) -> Response {
    let body: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error(400, "the body must be a JSON object: {\"purpose\": \"…\"}"),
    };
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .map(|v| v.trim().to_owned())
    };
    let purpose = text("purpose").unwrap_or_default();
    if let Err(e) = query::check_reader(&who.actor, &purpose) {
        return query_failure(&e);
    }
    let format = match text("format").as_deref() {
        None | Some("csv") => Flat::Csv,
        Some("ndjson") => Flat::Ndjson,
        Some(_) => {
            return error(
                400,
                "format must be csv or ndjson (charts are answered straight away by GET /export)",
            );
        }
    };
    let dataset = text("dataset").filter(|d| !d.is_empty());
    if let Some(d) = &dataset
        && host.catalog().get(d).is_none()
    {
        return error(404, "no such dataset");
    }
    let time = host.now();
    let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let job = exports::ExportRequest {
        id: id.clone(),
        analyst: who.actor.clone(),
        purpose: purpose.clone(),
        dataset: dataset.clone(),
        format,
        requested_at: time.clone(),
    };
    if let Some(refused) = log_request(
        host,
        who,
        &purpose,
        "export_request",
        dataset.as_deref().unwrap_or("all"),
        &time,
    ) {
        return refused;
    }
    match exports::submit(host.objects(), &job) {
        Ok(key) => {
            host.queued(&key);
            respond(202, &json!({ "id": id, "status": "queued" }))
        }
        Err(e) => store_failure(&e),
    }
}

/// `GET /exports/{id}`: the caller's own job: queued, failed, or done with
/// a download link (an analyst read: logged with its rows first).
pub(super) fn export_status(
    host: &dyn Host,
    who: &Caller,
    id: &str,
    purpose: Option<String>,
) -> Response {
    let status = match exports::status(host.objects(), id) {
        Ok(s) => s,
        Err(e) => return store_failure(&e),
    };
    // Another analyst's job is as unknown as a made-up id.
    let mine = |analyst: &str| analyst == who.actor;
    match status {
        exports::Status::Queued(r) if mine(&r.analyst) => respond(
            200,
            &json!({ "id": id, "status": "queued", "requested_at": r.requested_at }),
        ),
        exports::Status::Failed { analyst, reason } if mine(&analyst) => respond(
            200,
            &json!({ "id": id, "status": "failed", "reason": reason }),
        ),
        exports::Status::Done(m) if mine(&m.analyst) => {
            analyst_read(host, who, purpose, "export", id, |_, _| {
                let url = host.link(who, &m.key).map_err(QueryError::Store)?;
                Ok((
                    m.rows,
                    json!({
                        "id": id,
                        "status": "done",
                        "key": m.key,
                        "rows": m.rows,
                        "datasets": m.datasets,
                        "url": url,
                        "expires_in": LINK_SECONDS,
                    }),
                ))
            })
        }
        _ => error(404, "no such export job"),
    }
}

/// The charting formats: GraphML for Gephi and yEd, an entity-link CSV for
/// i2 Analyst's Notebook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chart {
    Graphml,
    I2,
}

/// `GET /export?format=i2|graphml`: every person with a linking value in
/// the exported datasets, charted; logged as `export` with the records read.
fn export_chart(
    host: &dyn Host,
    who: &Caller,
    purpose: Option<String>,
    dataset: Option<String>,
    chart: Chart,
) -> Response {
    let target = dataset.clone().unwrap_or_else(|| "all".into());
    analyst_read(host, who, purpose, "export", &target, |store, catalog| {
        let plan = query::plan_export(store, catalog, dataset.as_deref())?;
        let graph = query::export_graph(store, catalog, &plan)?;
        let from = query::GraphSource {
            source: "export".into(),
            target: target.clone(),
            ..query::GraphSource::default()
        };
        let mut body = put_chart(host, who, &graph, &from, chart)?;
        body["datasets"] = json!(plan.datasets);
        Ok((graph.records, body))
    })
}

/// Put a chart under `exports/` like the flat exports (the i2 CSV with its
/// import specification beside it, `….import-spec.json`) and describe it
/// with short-lived download links. Runs inside [`analyst_read`], so the
/// links go out only once the read is logged.
fn put_chart(
    host: &dyn Host,
    who: &Caller,
    graph: &query::Graph,
    from: &query::GraphSource,
    chart: Chart,
) -> Result<Value, QueryError> {
    let stem = format!(
        "exports/{}-{}",
        host.now().replace(':', ""),
        random_suffix()
    );
    let put = |key: &str, bytes: &[u8]| -> Result<String, QueryError> {
        host.objects()
            .put(key, bytes, PutMode::Create)
            .map_err(QueryError::Store)?;
        host.link(who, key).map_err(QueryError::Store)
    };
    let mut body = json!({
        "nodes": graph.nodes.len(),
        "edges": graph.edges.len(),
        "records": graph.records,
        "expires_in": LINK_SECONDS,
    });
    match chart {
        Chart::Graphml => {
            let key = format!("{stem}.graphml");
            body["url"] = json!(put(&key, query::to_graphml(graph, from).as_bytes())?);
            body["key"] = json!(key);
        }
        Chart::I2 => {
            // Cells are neutralised by core; here they are only quoted.
            let mut text = String::new();
            for row in std::iter::once(query::i2_header()).chain(query::i2_rows(graph)) {
                let line: Vec<String> = row.iter().map(|c| exports::csv_field(c)).collect();
                text.push_str(&line.join(","));
                text.push('\n');
            }
            let key = format!("{stem}.csv");
            let spec_key = format!("{stem}.import-spec.json");
            let spec = serde_json::to_vec_pretty(&query::i2_import_spec()).unwrap_or_default();
            body["url"] = json!(put(&key, text.as_bytes())?);
            body["key"] = json!(key);
            body["spec_url"] = json!(put(&spec_key, &spec)?);
            body["spec_key"] = json!(spec_key);
        }
    }
    Ok(body)
}

fn random_suffix() -> String {
    format!("{:016x}", fastrand::u64(..))
}

fn respond(status: u16, body: &Value) -> Response {
    Response::json(status, body)
}

fn error(status: u16, detail: &str) -> Response {
    Response::error(status, detail)
}

fn problem(p: &Problem) -> Response {
    Response::problem(p)
}

fn store_failure(e: &StoreError) -> Response {
    Response::store_failure(e)
}

fn query_failure(e: &QueryError) -> Response {
    Response::query_failure(e)
}
