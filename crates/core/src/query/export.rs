//! Flat export rows: one row per record, with the columns every dataset
//! shares and each schema's own, for CSV and NDJSON.

use super::*;

/// The columns every export row starts with: where the record came from.
pub const BASE_COLUMNS: &[&str] = &[
    "record_id",
    "person_id",
    "agency",
    "dataset",
    "schema_version",
    "event_date",
    "borough",
    "borough_source",
    "upload_id",
    "row",
    "key_id",
    "scheme",
];

// A field or derived value named like a base column keeps both: the base
// column is the curated value (e.g. the borough placed from a postcode), the
// prefixed one is what the record itself holds.
fn field_column(name: &str) -> String {
    if BASE_COLUMNS.contains(&name) {
        format!("fields.{name}")
    } else {
        name.to_owned()
    }
}

fn derived_column(name: &str, is_field: impl Fn(&str) -> bool) -> String {
    if BASE_COLUMNS.contains(&name) || is_field(name) {
        format!("derived.{name}")
    } else {
        name.to_owned()
    }
}

/// What an export will contain: the datasets, in order, and the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPlan {
    /// Datasets exported, in this order.
    pub datasets: Vec<String>,
    /// Every column any row can have, base columns first.
    pub columns: Vec<String>,
}

/// Decide the datasets and columns of an export, before any row is written
/// (CSV needs its header first). Columns come from the schemas (every
/// version the catalog has, so older records fit); a dataset the catalog no
/// longer knows is read once to learn its columns.
pub fn plan_export(
    store: &dyn RecordStore,
    catalog: &Catalog,
    dataset: Option<&str>,
) -> Result<ExportPlan, QueryError> {
    let stored = store.datasets()?;
    let datasets = match dataset {
        Some(d) if stored.iter().any(|s| s == d) || catalog.get(d).is_some() => vec![d.to_owned()],
        Some(d) => {
            let shown = if d
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            {
                format!("`{d}`")
            } else {
                "(not a dataset id)".to_owned()
            };
            return Err(QueryError::UnknownDataset(shown));
        }
        None => stored,
    };
    let mut columns: Vec<String> = BASE_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    let mut have: HashSet<String> = columns.iter().cloned().collect();
    let mut add = |c: String, columns: &mut Vec<String>| {
        if have.insert(c.clone()) {
            columns.push(c);
        }
    };
    for d in &datasets {
        match catalog.get(d) {
            Some(latest) => {
                for v in 1..=latest.version {
                    let Some(ds) = catalog.get_version(d, v) else {
                        continue;
                    };
                    for c in schema_columns(ds) {
                        add(c, &mut columns);
                    }
                }
            }
            None => {
                let mut seen = Vec::new();
                let mut corrupt = None;
                store.scan_dataset(d, None, None, &mut |r| {
                    let body = match r.body.parse() {
                        Ok(b) => b,
                        Err(e) => {
                            corrupt = Some(e);
                            return false;
                        }
                    };
                    for k in flat_row(&r, &body, None).keys() {
                        if !seen.contains(k) {
                            seen.push(k.clone());
                        }
                    }
                    true
                })?;
                if let Some(e) = corrupt {
                    return Err(StoreError::from(e).into());
                }
                for c in seen {
                    add(c, &mut columns);
                }
            }
        }
    }
    Ok(ExportPlan { datasets, columns })
}

/// The field and derived columns a schema version gives its records. Derived
/// names mirror what curation writes for each `x-generalise`.
fn schema_columns(ds: &Dataset) -> Vec<String> {
    let is_field = |n: &str| ds.field(n).is_some();
    let mut out: Vec<String> = ds.fields().iter().map(|f| field_column(&f.name)).collect();
    for f in ds.fields() {
        match f.generalise {
            Some(Generalise::Age) => {
                out.push(derived_column("age", is_field));
                out.push(derived_column("age_band", is_field));
            }
            Some(Generalise::Sector) => {
                out.push(derived_column(&format!("{}_sector", f.name), is_field));
            }
            None => {}
        }
    }
    out
}

/// One record as a flat row: the base columns, every `fields` entry (tokens
/// and codes) and every derived value. Match keys are left out: they are
/// linkage internals, and `person_id` already says who the record is about.
/// `body` is the record's parsed body.
pub fn flat_row(r: &StoredRecord, body: &Value, ds: Option<&Dataset>) -> Map<String, Value> {
    let mut row = Map::new();
    let prov = body.get("provenance");
    let p = |k: &str| prov.and_then(|p| p.get(k)).cloned().unwrap_or(Value::Null);
    row.insert("record_id".into(), json!(r.record_id));
    row.insert("person_id".into(), json!(r.person_id));
    row.insert("agency".into(), json!(r.agency));
    row.insert("dataset".into(), json!(r.dataset));
    row.insert(
        "schema_version".into(),
        body.get("schema_version").cloned().unwrap_or(Value::Null),
    );
    row.insert("event_date".into(), json!(r.event_date));
    row.insert(
        "borough".into(),
        body.get("borough").cloned().unwrap_or(Value::Null),
    );
    row.insert(
        "borough_source".into(),
        body.get("borough_source").cloned().unwrap_or(Value::Null),
    );
    row.insert("upload_id".into(), json!(r.upload_id));
    row.insert("row".into(), json!(r.row));
    row.insert("key_id".into(), p("key_id"));
    row.insert("scheme".into(), p("scheme"));
    let fields = body.get("fields").and_then(Value::as_object);
    if let Some(fields) = fields {
        for (k, v) in fields {
            row.insert(field_column(k), v.clone());
        }
    }
    if let Some(derived) = body.get("derived").and_then(Value::as_object) {
        for (k, v) in derived {
            // The schema decides collisions when known, so every record of a
            // version gets the same column names whichever fields it filled.
            let name = match ds {
                Some(ds) => derived_column(k, |n| ds.field(n).is_some()),
                None => derived_column(k, |n| fields.is_some_and(|f| f.contains_key(n))),
            };
            row.insert(name, v.clone());
        }
    }
    row
}

/// Stream the plan's records as flat rows, dataset by dataset, by event date.
/// `visit` returning `false` stops. Returns the number of rows visited.
pub fn export_rows(
    store: &dyn RecordStore,
    catalog: &Catalog,
    plan: &ExportPlan,
    visit: &mut dyn FnMut(Map<String, Value>) -> bool,
) -> Result<u64, QueryError> {
    let mut n = 0u64;
    let mut stopped = false;
    let mut corrupt = None;
    for d in &plan.datasets {
        if stopped {
            break;
        }
        store.scan_dataset(d, None, None, &mut |r| {
            let body = match r.body.parse() {
                Ok(b) => b,
                Err(e) => {
                    corrupt = Some(e);
                    stopped = true;
                    return false;
                }
            };
            n += 1;
            let keep_going = visit(flat_row(&r, &body, dataset_of(catalog, &r, &body)));
            stopped = !keep_going;
            keep_going
        })?;
    }
    if let Some(e) = corrupt {
        return Err(StoreError::from(e).into());
    }
    Ok(n)
}

/// A JSON value as one CSV cell: text neutralised, lists `;`-joined (the
/// upload convention), numbers and booleans as written, null empty. Numbers
/// and booleans are not neutralised: they cannot hold a formula, and a
/// quote would turn a negative number into text.
pub fn csv_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => neutralise(s).into_owned(),
        Value::Array(items) => {
            let joined = items
                .iter()
                .map(|i| match i {
                    Value::String(s) => s.clone(),
                    other => csv_cell(other),
                })
                .collect::<Vec<_>>()
                .join(";");
            neutralise(&joined).into_owned()
        }
        Value::Object(_) => neutralise(&v.to_string()).into_owned(),
        Value::Bool(_) | Value::Number(_) => v.to_string(),
    }
}

/// A flat row as CSV cells in `columns` order (empty where the row has no
/// value). A column outside the header is an error rather than a silent drop.
pub fn csv_record(columns: &[String], row: &Map<String, Value>) -> Result<Vec<String>, QueryError> {
    if let Some(extra) = row.keys().find(|k| !columns.contains(k)) {
        return Err(QueryError::UnexpectedColumn(extra.clone()));
    }
    Ok(columns
        .iter()
        .map(|c| row.get(c).map(csv_cell).unwrap_or_default())
        .collect())
}
