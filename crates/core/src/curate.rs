//! Curated records: a validated row with every identifier replaced by its
//! token, generalised fields derived (age, age band, postcode sector,
//! borough), match keys and network links computed, a deterministic
//! `record_id`, and provenance. Raw identifiers exist only in memory here.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::geography;
use crate::ports::{Link, StoredRecord};
use crate::pseudo::generalise::{age_at, age_band, parse_ymd};
use crate::pseudo::{Pseudonymiser, Rejection, canonicalise};
use crate::read::Row;
use crate::schema::{Dataset, Generalise, MatchRole};

/// Where a curated row came from.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// The uploading agency id.
    pub agency: String,
    /// The upload id.
    pub upload_id: String,
}

/// A row that passed schema validation but whose identifier could not be
/// canonicalised (the validator reports the same; this is a backstop).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct CurateError {
    /// The field.
    pub field: String,
    /// Why (never the value).
    pub reason: Rejection,
}

/// Lower-case unpadded base32 of the first `n` bytes of SHA-256 over `parts`.
pub fn short_hash(parts: &[&[u8]], n: usize) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    let digest = h.finalize();
    data_encoding::BASE32_NOPAD
        .encode(&digest[..n.min(32)])
        .to_ascii_lowercase()
}

/// The record id for (agency, dataset, the token of the agency's record ref).
/// Built from the token, not the raw ref, so it reveals nothing without the key.
pub fn record_id(agency: &str, dataset: &str, record_ref_token: &str) -> String {
    format!(
        "r_{}",
        short_hash(
            &[
                b"agencylink/v1/record|",
                agency.as_bytes(),
                b"|",
                dataset.as_bytes(),
                b"|",
                record_ref_token.as_bytes()
            ],
            16
        )
    )
}

/// Turns validated rows of one dataset into curated records.
#[derive(Debug)]
pub struct Curator<'a> {
    dataset: &'a Dataset,
    pseudo: &'a Pseudonymiser,
    provenance: Provenance,
    record_ref: String,
    event_date: String,
    borough: Option<String>,
}

impl<'a> Curator<'a> {
    /// A curator for rows of `dataset` from one upload.
    pub fn new(dataset: &'a Dataset, pseudo: &'a Pseudonymiser, provenance: Provenance) -> Self {
        let name_of = |c: &str| dataset.field_for(c).map(|f| f.name.clone());
        Curator {
            dataset,
            pseudo,
            provenance,
            // Dataset::parse guarantees both concepts exist.
            record_ref: name_of("record_ref").unwrap_or_default(),
            event_date: name_of("event_date").unwrap_or_default(),
            borough: name_of("borough"),
        }
    }

    /// Curate one valid row.
    pub fn curate(&self, row: &Row) -> Result<StoredRecord, CurateError> {
        self.curate_with_line(row, &mut Vec::new())
    }

    /// Curate one valid row, and write its curated NDJSON line (with the
    /// trailing newline) into `line`, replacing what was there. The body is
    /// serialised once for both the content hash and the line.
    pub fn curate_with_line(
        &self,
        row: &Row,
        line: &mut Vec<u8>,
    ) -> Result<StoredRecord, CurateError> {
        let agency = self.provenance.agency.as_str();
        let mut fields = Map::new();
        let mut derived = Map::new();
        let (mut nhs, mut family, mut given, mut dob, mut upn) = (None, None, None, None, None);
        let mut links = Vec::new();
        let mut sector_borough = None;
        let event_date = row
            .value
            .get(&self.event_date)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        for f in self.dataset.fields() {
            let Some(v) = row.value.get(&f.name) else {
                continue;
            };
            let Some(kind) = f.identifier else {
                fields.insert(f.name.clone(), v.clone());
                continue;
            };
            let raw = v.as_str().unwrap_or_default();
            let canonical = canonicalise(kind, raw, agency).map_err(|reason| CurateError {
                field: f.name.clone(),
                reason,
            })?;
            let token = self.pseudo.token(kind, &canonical);
            match f.match_role {
                Some(MatchRole::Nhs) => nhs = Some(canonical.to_string()),
                Some(MatchRole::Family) => family = Some(canonical.to_string()),
                Some(MatchRole::Given) => given = Some(canonical.to_string()),
                Some(MatchRole::Dob) => dob = Some(canonical.to_string()),
                Some(MatchRole::Upn) => upn = Some(canonical.to_string()),
                None => {}
            }
            match f.generalise {
                Some(Generalise::Age) => {
                    let age = parse_ymd(&canonical)
                        .zip(parse_ymd(&event_date))
                        .and_then(|(d, e)| age_at(d, e));
                    if let Some(age) = age {
                        derived.insert("age".into(), json!(age));
                        derived.insert("age_band".into(), json!(age_band(age)));
                    }
                }
                Some(Generalise::Sector) => {
                    derived.insert(
                        format!("{}_sector", f.name),
                        json!(geography::postcode_sector(&canonical)),
                    );
                    if sector_borough.is_none() {
                        sector_borough =
                            geography::borough_for_postcode(&canonical).map(|b| b.name);
                    }
                }
                None => {}
            }
            if let Some(link) = &f.link {
                links.push(Link {
                    kind: link.clone(),
                    token: token.clone(),
                });
            }
            fields.insert(f.name.clone(), Value::String(token));
        }
        let mut match_keys = Vec::new();
        if let Some(n) = &nhs {
            match_keys.push(self.pseudo.mk_nhs(n));
        }
        if let (Some(f), Some(g), Some(d)) = (&family, &given, &dob) {
            match_keys.push(self.pseudo.mk_name_dob(f, g, d));
        }
        if let Some(u) = &upn {
            // Already canonical, so this cannot be rejected.
            if let Ok(k) = self.pseudo.mk_upn(u) {
                match_keys.push(k);
            }
        }
        let ref_token = fields
            .get(&self.record_ref)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let record_id = record_id(agency, &self.dataset.id, &ref_token);
        let supplied = self
            .borough
            .as_ref()
            .and_then(|b| row.value.get(b))
            .and_then(Value::as_str);
        let (borough, borough_source) = match (supplied, sector_borough) {
            (Some(b), _) => (Some(b.to_owned()), "supplied"),
            (None, Some(b)) => (Some(b.to_owned()), "postcode"),
            (None, None) => (None, "unknown"),
        };
        let mut body = Map::new();
        body.insert("record_id".into(), json!(record_id));
        body.insert("agency".into(), json!(agency));
        body.insert("dataset".into(), json!(self.dataset.id));
        body.insert("schema_version".into(), json!(self.dataset.version));
        body.insert("event_date".into(), json!(event_date));
        body.insert("borough".into(), json!(borough));
        body.insert("borough_source".into(), json!(borough_source));
        body.insert("fields".into(), Value::Object(fields));
        body.insert("derived".into(), Value::Object(derived));
        body.insert("match_keys".into(), json!(match_keys));
        body.insert("links".into(), json!(links));
        // The content hash covers what the agency said, not when it said it,
        // so re-sending the same row is recognised as unchanged.
        line.clear();
        // Serialising a map of JSON values cannot fail.
        let _ = serde_json::to_writer(&mut *line, &body);
        let content_hash = short_hash(&[line.as_slice()], 32);
        let provenance = json!({
            "upload_id": self.provenance.upload_id,
            "row": row.row,
            "key_id": self.pseudo.kid().as_str(),
            "scheme": self.pseudo.scheme(),
        });
        // Splice provenance in before the closing brace, as serialising the
        // full body again would give (provenance is the last key).
        line.pop();
        line.extend_from_slice(b",\"provenance\":");
        let _ = serde_json::to_writer(&mut *line, &provenance);
        line.extend_from_slice(b"}\n");
        body.insert("provenance".into(), provenance);
        Ok(StoredRecord {
            record_id,
            person_id: String::new(),
            agency: agency.to_owned(),
            dataset: self.dataset.id.clone(),
            event_date,
            upload_id: self.provenance.upload_id.clone(),
            row: row.row,
            content_hash,
            match_keys,
            links,
            body: Value::Object(body),
        })
    }
}
