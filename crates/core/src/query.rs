//! Analyst and auditor reads over the merged store: a person's timeline
//! across agencies, the network around a person, flat export rows, the
//! hash-chained access log every read is recorded in, and lineage as
//! OpenLineage run events.
//!
//! Everything here is a pure function over the ports and the [`Catalog`]:
//! field meanings come from schema annotations (`x-concept`, `x-generalise`),
//! never from dataset names, so a new dataset needs no code here. The store
//! holds only tokens and coded values, so nothing these functions return can
//! carry a raw identifier; errors and log entries never echo anything a user
//! typed unless it has the shape of one of our own ids.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::csv_safe::neutralise;
use crate::events::{
    AccessEntry, LineageEvent, REVIEW_DECIDE, ReadEntry, ReviewDecisionEntry, UploadEvent,
};
use crate::lineage::{self, ChainProblem};
use crate::network::{self, is_group, record_role};
use crate::ports::{ChainLog, RecordStore, RecordStoreExt, StoreError, StoredRecord};
use crate::schema::{Catalog, Dataset, FieldType, Generalise, ScalarType};

/// A group-based network has at least this many suspects…
pub const GROUP_MIN_SUSPECTS: usize = 2;
/// …and at least this many victims.
pub const GROUP_MIN_VICTIMS: usize = 1;

/// The concepts whose coded values a timeline row shows, when the record's
/// dataset has a field for them.
pub const TIMELINE_CONCEPTS: &[&str] = &[
    "offence",
    "concern",
    "cse_flag",
    "cse_model",
    "episode_type",
    "missing_type",
    "cin_factors",
    "setting",
    "outcome",
];

/// A read that could not be answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The id does not have the shape of a person or network id. The input is
    /// not echoed: an analyst may have typed a name or a reference.
    #[error(
        "that is not a person id: person ids look like `p_` followed by lower-case letters and digits 2-7 (network ids `n_…` are accepted by network queries)"
    )]
    NotAPersonId,
    /// No record belongs to this person (after following aliases).
    #[error("no person with id {0} is in the store")]
    UnknownPerson(String),
    /// No clerical review item has this id.
    #[error("no review item {0}")]
    UnknownReviewItem(String),
    /// The dataset is neither in the catalog nor in the store.
    #[error("unknown dataset {0}")]
    UnknownDataset(String),
    /// The analyst or purpose given for a read is refused.
    #[error("{0}")]
    Reader(&'static str),
    /// An export row has a column the plan did not announce (a bug: the
    /// export columns no longer mirror what curation writes).
    #[error("export row has column `{0}` missing from the header")]
    UnexpectedColumn(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `id` has the shape of a person id (`p_` + lower-case base32).
pub fn is_person_id(id: &str) -> bool {
    id.strip_prefix("p_").is_some_and(is_base32_tail)
}

fn is_base32_tail(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

/// The dataset definition a stored record was curated under: its own schema
/// version when the catalog still has it, else the newest.
/// `body` is the record's parsed body.
pub fn dataset_of<'c>(catalog: &'c Catalog, r: &StoredRecord, body: &Value) -> Option<&'c Dataset> {
    let version = body
        .get("schema_version")
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok());
    version
        .and_then(|v| catalog.get_version(&r.dataset, v))
        .or_else(|| catalog.get(&r.dataset))
        .map(AsRef::as_ref)
}

fn role_field(catalog: &Catalog, r: &StoredRecord, body: &Value) -> Option<String> {
    dataset_of(catalog, r, body)
        .and_then(|d| d.field_for("person_role"))
        .map(|f| f.name.clone())
}

fn body_str(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn parsed(r: &StoredRecord) -> Result<Value, QueryError> {
    Ok(r.body.parse().map_err(StoreError::from)?)
}

// ---------------------------------------------------------------- timeline

/// One record on a person's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineRow {
    /// The event date, `YYYY-MM-DD`.
    pub date: String,
    /// The agency that supplied the record.
    pub agency: String,
    /// Its dataset.
    pub dataset: String,
    /// The person's role in it (`person_role` concept), else `subject`.
    pub role: String,
    /// The borough the event is placed in, when known.
    pub borough: Option<String>,
    /// The record id, for export and lineage look-ups.
    pub record_id: String,
    /// The person's age band at the event, when derived.
    pub age_band: Option<String>,
    /// Coded values by concept ([`TIMELINE_CONCEPTS`]) present in the record.
    pub codes: Map<String, Value>,
}

/// A person's records across agencies, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonTimeline {
    /// The id asked for.
    pub requested: String,
    /// The id it resolved to (different when the asked id was merged away).
    pub person_id: String,
    /// Whether `requested` was an alias of `person_id`.
    pub resolved_alias: bool,
    /// Agencies that know the person.
    pub agencies: Vec<String>,
    /// Datasets the person appears in.
    pub datasets: Vec<String>,
    /// The records, by date.
    pub timeline: Vec<TimelineRow>,
}

fn resolve(store: &dyn RecordStore, id: &str) -> Result<(String, Vec<StoredRecord>), QueryError> {
    if !is_person_id(id) {
        return Err(QueryError::NotAPersonId);
    }
    let current = store.resolve_person(id)?;
    let records = store.records_of_person(&current)?;
    if records.is_empty() {
        return Err(QueryError::UnknownPerson(id.to_owned()));
    }
    Ok((current, records))
}

fn timeline_row(catalog: &Catalog, r: &StoredRecord) -> Result<TimelineRow, QueryError> {
    let body = parsed(r)?;
    let ds = dataset_of(catalog, r, &body);
    let mut codes = Map::new();
    if let (Some(ds), Some(fields)) = (ds, body.get("fields")) {
        for concept in TIMELINE_CONCEPTS {
            let Some(f) = ds.field_for(concept) else {
                continue;
            };
            // A concept could in principle be put on an identifier field; its
            // token means nothing on a timeline, so only codes are shown.
            if f.is_identifier() {
                continue;
            }
            if let Some(v) = fields.get(&f.name).filter(|v| !v.is_null()) {
                codes.insert((*concept).to_owned(), v.clone());
            }
        }
    }
    Ok(TimelineRow {
        date: r.event_date.clone(),
        agency: r.agency.clone(),
        dataset: r.dataset.clone(),
        role: record_role(
            &body,
            ds.and_then(|d| d.field_for("person_role"))
                .map(|f| f.name.as_str()),
        ),
        borough: body_str(&body, "borough"),
        record_id: r.record_id.clone(),
        age_band: body
            .get("derived")
            .and_then(|d| d.get("age_band"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        codes,
    })
}

/// A person's timeline across agencies. An id merged into another person
/// resolves to it, and the result says so.
pub fn person_timeline(
    store: &dyn RecordStore,
    catalog: &Catalog,
    id: &str,
) -> Result<PersonTimeline, QueryError> {
    let (current, records) = resolve(store, id)?;
    let mut timeline: Vec<TimelineRow> = records
        .iter()
        .map(|r| timeline_row(catalog, r))
        .collect::<Result<_, _>>()?;
    // Adapters already return records by date; the extra keys make the order
    // identical on every backend when several events share a date.
    timeline.sort_by(|a, b| {
        (&a.date, &a.agency, &a.dataset, &a.record_id).cmp(&(
            &b.date,
            &b.agency,
            &b.dataset,
            &b.record_id,
        ))
    });
    let agencies: BTreeSet<String> = records.iter().map(|r| r.agency.clone()).collect();
    let datasets: BTreeSet<String> = records.iter().map(|r| r.dataset.clone()).collect();
    Ok(PersonTimeline {
        requested: id.to_owned(),
        resolved_alias: current != id,
        person_id: current,
        agencies: agencies.into_iter().collect(),
        datasets: datasets.into_iter().collect(),
        timeline,
    })
}

// ----------------------------------------------------------------- network

/// How far a network query walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NetworkLimits {
    /// Hops from the person (1 = people sharing a link with them).
    pub max_depth: usize,
    /// People returned at most, the person included.
    pub max_people: usize,
}

impl Default for NetworkLimits {
    fn default() -> Self {
        NetworkLimits {
            max_depth: 3,
            max_people: 200,
        }
    }
}

/// One person in a network answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkPerson {
    /// Current person id.
    pub person_id: String,
    /// Hops from the person asked about.
    pub depth: usize,
    /// Roles across their records.
    pub roles: BTreeSet<String>,
    /// Agencies that know them.
    pub agencies: BTreeSet<String>,
    /// How many records they have.
    pub records: usize,
}

/// A shared link that ties two or more of the returned people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tie {
    /// `crime`, `intel`, `vehicle`, `phone`, … (the schema's `x-link`).
    pub kind: String,
    /// The shared value's token.
    pub token: String,
    /// The returned people who carry it.
    pub people: BTreeSet<String>,
}

/// The people tied to a person through shared links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonNetwork {
    /// The id asked for.
    pub requested: String,
    /// The person it resolved to (the walk's start).
    pub person_id: String,
    /// Whether `requested` was an alias (or a network id) of `person_id`.
    pub resolved_alias: bool,
    /// `n_` + the smallest returned person id; `None` when nobody is tied.
    pub network_id: Option<String>,
    /// Everyone reached, the person first, then by depth and id.
    pub people: Vec<NetworkPerson>,
    /// Links shared by two or more returned people.
    pub ties: Vec<Tie>,
    /// Returned people with a suspect role.
    pub suspects: usize,
    /// Returned people with a victim role.
    pub victims: usize,
    /// At least [`GROUP_MIN_SUSPECTS`] suspects and [`GROUP_MIN_VICTIMS`] victims.
    pub group_based: bool,
    /// The limits applied.
    pub limits: NetworkLimits,
    /// Whether a limit stopped the walk before the network ended.
    pub truncated: bool,
    /// Which limit, in words, when truncated.
    pub note: Option<String>,
}

/// Walk link tokens breadth-first from a person's records to the people who
/// share them, within `limits`. A network id (`n_…`) names its smallest
/// person, so it is accepted too.
pub fn person_network(
    store: &dyn RecordStore,
    catalog: &Catalog,
    id: &str,
    limits: NetworkLimits,
) -> Result<PersonNetwork, QueryError> {
    let as_person = match id.strip_prefix("n_") {
        Some(tail) if is_base32_tail(tail) => format!("p_{tail}"),
        _ => id.to_owned(),
    };
    let (start, first) = resolve(store, &as_person)?;
    let max_people = limits.max_people.max(1);
    let mut depth_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut records_of: HashMap<String, Vec<StoredRecord>> = HashMap::new();
    let mut seen_tokens: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<String> = VecDeque::new();
    let (mut hit_depth, mut hit_size) = (false, false);
    depth_of.insert(start.clone(), 0);
    order.push(start.clone());
    records_of.insert(start.clone(), first);
    queue.push_back(start.clone());
    while let Some(person) = queue.pop_front() {
        let depth = depth_of[&person];
        let tokens: BTreeSet<String> = records_of[&person]
            .iter()
            .flat_map(|r| r.links.iter().map(|l| l.token.clone()))
            .collect();
        for token in tokens {
            if !seen_tokens.insert(token.clone()) {
                continue;
            }
            for r in store.records_with_link(&token)? {
                if depth_of.contains_key(&r.person_id) {
                    continue;
                }
                if depth >= limits.max_depth {
                    // Only looked up to say whether the limit hid anyone.
                    hit_depth = true;
                    continue;
                }
                if depth_of.len() >= max_people {
                    hit_size = true;
                    continue;
                }
                let other = r.person_id.clone();
                depth_of.insert(other.clone(), depth + 1);
                order.push(other.clone());
                records_of.insert(other.clone(), store.records_of_person(&other)?);
                queue.push_back(other);
            }
        }
    }

    let all: Vec<&StoredRecord> = records_of.values().flatten().collect();
    let net = network::networks(all.iter().copied(), |dsid| {
        catalog
            .get(dsid)
            .and_then(|d| d.field_for("person_role"))
            .map(|f| f.name.clone())
    })
    .map_err(StoreError::from)?
    .into_iter()
    .next();
    let mut holders: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for r in &all {
        for l in &r.links {
            holders
                .entry((l.kind.clone(), l.token.clone()))
                .or_default()
                .insert(r.person_id.clone());
        }
    }
    let ties = holders
        .into_iter()
        .filter(|(_, people)| people.len() > 1)
        .map(|((kind, token), people)| Tie {
            kind,
            token,
            people,
        })
        .collect();
    let people = order
        .iter()
        .map(|p| {
            let recs = &records_of[p];
            Ok(NetworkPerson {
                person_id: p.clone(),
                depth: depth_of[p],
                roles: recs
                    .iter()
                    .map(|r| {
                        let body = parsed(r)?;
                        Ok(record_role(&body, role_field(catalog, r, &body).as_deref()))
                    })
                    .collect::<Result<_, QueryError>>()?,
                agencies: recs.iter().map(|r| r.agency.clone()).collect(),
                records: recs.len(),
            })
        })
        .collect::<Result<_, QueryError>>()?;
    let note = match (hit_depth, hit_size) {
        (false, false) => None,
        (true, false) => Some(format!(
            "stopped at depth {}: more people are tied beyond it (raise --max-depth)",
            limits.max_depth
        )),
        (false, true) => Some(format!(
            "stopped at {max_people} people: the network is larger (raise --max-people)"
        )),
        (true, true) => Some(format!(
            "stopped at depth {} and at {max_people} people: the network is larger",
            limits.max_depth
        )),
    };
    Ok(PersonNetwork {
        resolved_alias: start != id,
        requested: id.to_owned(),
        person_id: start,
        network_id: net.as_ref().map(|n| n.id.clone()),
        people,
        ties,
        suspects: net.as_ref().map_or(0, |n| n.suspects.len()),
        victims: net.as_ref().map_or(0, |n| n.victims.len()),
        group_based: net
            .as_ref()
            .is_some_and(|n| is_group(n, GROUP_MIN_SUSPECTS, GROUP_MIN_VICTIMS)),
        limits: NetworkLimits {
            max_depth: limits.max_depth,
            max_people,
        },
        truncated: note.is_some(),
        note,
    })
}

// ------------------------------------------------------------------ export

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

// -------------------------------------------------------------- access log

/// One analyst read, as the access log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Read<'a> {
    /// Who read.
    pub analyst: &'a str,
    /// Why, in their words.
    pub purpose: &'a str,
    /// `query_person`, `query_network`, `export`, …
    pub action: &'a str,
    /// What was read: a person or network id, a dataset, `all`.
    pub target: &'a str,
    /// Rows (timeline rows, people, records) handed to the analyst.
    pub rows_returned: u64,
    /// When, RFC 3339 (the core reads no clock).
    pub time: &'a str,
}

/// Check an analyst name and purpose before anything is read: both must be
/// non-blank, one line, and of a sensible length. Messages never repeat them.
pub fn check_reader(analyst: &str, purpose: &str) -> Result<(), QueryError> {
    let one_line = |s: &str| !s.chars().any(char::is_control);
    if analyst.trim().is_empty() {
        return Err(QueryError::Reader("--analyst must name who is reading"));
    }
    if analyst.chars().count() > 100 || !one_line(analyst) {
        return Err(QueryError::Reader(
            "--analyst must be one line of at most 100 characters",
        ));
    }
    if purpose.trim().is_empty() {
        return Err(QueryError::Reader(
            "--purpose must say why the data is needed; an empty purpose is refused",
        ));
    }
    if purpose.chars().count() > 500 || !one_line(purpose) {
        return Err(QueryError::Reader(
            "--purpose must be one line of at most 500 characters",
        ));
    }
    Ok(())
}

/// Append a read to the access log (hash-chained like lineage) and return
/// the entry as stored. Callers hand data out only after this succeeds.
pub fn log_read(log: &dyn ChainLog, read: &Read<'_>) -> Result<Value, QueryError> {
    check_reader(read.analyst, read.purpose)?;
    let entry = AccessEntry::Read(ReadEntry {
        analyst: read.analyst.trim().to_owned(),
        purpose: read.purpose.trim().to_owned(),
        action: read.action.to_owned(),
        target: read.target.to_owned(),
        rows_returned: read.rows_returned,
        time: read.time.to_owned(),
    });
    Ok(lineage::append_event(log, &entry)?)
}

/// Append an analyst's clerical-review decision to the access log before it
/// takes effect. The entry names the item and the decision, never the
/// reviewer's free-text reason (which stays with the item, where it can be
/// corrected), so nothing an analyst types lands in the permanent log.
pub fn log_review_decision(
    log: &dyn ChainLog,
    analyst: &str,
    purpose: &str,
    item_id: &str,
    decision: &str,
    time: &str,
) -> Result<Value, QueryError> {
    check_reader(analyst, purpose)?;
    let entry = AccessEntry::ReviewDecision(ReviewDecisionEntry {
        analyst: analyst.trim().to_owned(),
        purpose: purpose.trim().to_owned(),
        action: REVIEW_DECIDE.to_owned(),
        target: item_id.to_owned(),
        decision: decision.to_owned(),
        time: time.to_owned(),
    });
    Ok(lineage::append_event(log, &entry)?)
}

/// Verify the access log: the hash chain (as for lineage), and that every
/// entry is a read (or a review decision) naming an analyst and a purpose.
pub fn verify_access_log(entries: &[Value]) -> Result<usize, ChainProblem> {
    let n = lineage::verify(entries)?;
    for (i, e) in entries.iter().enumerate() {
        let names_reader = AccessEntry::from_entry(e)
            .reader()
            .is_some_and(|(analyst, purpose)| {
                !analyst.trim().is_empty() && !purpose.trim().is_empty()
            });
        if !names_reader {
            return Err(ChainProblem {
                position: i + 1,
                seq: e.get("seq").and_then(Value::as_u64),
                reason:
                    "the entry is not a read or a review decision naming an analyst and a purpose"
                        .into(),
            });
        }
    }
    Ok(n)
}

// ------------------------------------------------------------- OpenLineage

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

#[cfg(test)]
mod tests {
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
        let by_net =
            person_network(&store, &cat, "n_sfour", NetworkLimits::default()).expect("by id");
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
        let alone =
            person_network(&store, &cat, "p_hone", NetworkLimits::default()).expect("alone");
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
}
