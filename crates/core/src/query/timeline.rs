//! A person's timeline across agencies: every record linked to them,
//! oldest first, with the coded fields a timeline shows.

use super::*;

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

pub(crate) fn resolve(
    store: &dyn RecordStore,
    id: &str,
) -> Result<(String, Vec<StoredRecord>), QueryError> {
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
