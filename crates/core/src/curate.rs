//! Curated records: a validated row with every identifier replaced by its
//! token, generalised fields derived (age, age band, postcode sector,
//! borough), match keys and network links computed, a deterministic
//! `record_id`, and provenance. Raw identifiers exist only in memory here.

use foldhash::HashMap;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::geography;
use crate::linkage::{Signature, signature};
use crate::ports::{Link, RecordBody, StoredRecord};
use crate::pseudo::generalise::{age_at, age_band, parse_ymd};
use crate::pseudo::{Pseudonymiser, Rejection, canonicalise};
use crate::read::Row;
use crate::schema::{Dataset, Field, Generalise, MatchRole};
use crate::validate::{RowError, RowValidator};

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

impl CurateError {
    /// The validation-report error for `row`, in the same shape as the
    /// validator's own `identifier` errors.
    pub fn row_error(&self, row: &Row) -> RowError {
        RowError::new(
            row,
            self.field.as_str(),
            format!("/{}", self.field),
            "identifier",
            self.to_string(),
        )
    }
}

/// Lower-case unpadded base32 of the first `n` bytes of SHA-256 over `parts`.
pub fn short_hash(parts: &[&[u8]], n: usize) -> String {
    let mut out = String::new();
    short_hash_into(parts, n, &mut out);
    out
}

/// [`short_hash`] appended to `out` (one allocation for a prefixed id).
fn short_hash_into(parts: &[&[u8]], n: usize, out: &mut String) {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    let digest = h.finalize();
    let at = out.len();
    data_encoding::BASE32_NOPAD.encode_append(&digest[..n.min(32)], out);
    out[at..].make_ascii_lowercase();
}

/// The record id for (agency, dataset, the token of the agency's record ref).
/// Built from the token, not the raw ref, so it reveals nothing without the key.
pub fn record_id(agency: &str, dataset: &str, record_ref_token: &str) -> String {
    let mut id = String::with_capacity(28);
    id.push_str("r_");
    short_hash_into(
        &[
            b"agencylink/v1/record|",
            agency.as_bytes(),
            b"|",
            dataset.as_bytes(),
            b"|",
            record_ref_token.as_bytes(),
        ],
        16,
        &mut id,
    );
    id
}

/// Turns validated rows of one dataset into curated records.
#[derive(Debug)]
pub struct Curator<'a> {
    dataset: &'a Dataset,
    pseudo: &'a Pseudonymiser,
    provenance: Provenance,
    /// Index of the record-ref field.
    record_ref: usize,
    event_date: Option<usize>,
    borough: Option<usize>,
    // The constant parts of every line, JSON-escaped once: `"name":` per
    // schema field, `"name_sector":` per sector field, the upload's own
    // values, and provenance around the row number.
    keys: Vec<Vec<u8>>,
    sector_keys: Vec<Vec<u8>>,
    upload_part: Vec<u8>,
    provenance_head: Vec<u8>,
    provenance_tail: Vec<u8>,
}

/// Buffers [`Curator::curate_with`] reuses from row to row.
#[derive(Debug, Default)]
pub struct CurateScratch {
    token: String,
    ref_token: String,
    derived: Vec<u8>,
    // The body being written: the record gets an exact-size copy, so the
    // rows in flight hold their bytes only, not a generous buffer each.
    body: Vec<u8>,
    // The signature cache's key for the row.
    signature_key: String,
    // Signatures by their canonical (family, given, dob), so a person who
    // fills many rows is encoded once. Raw values live here only in memory,
    // as they do in the row; the map is dropped with the scratch.
    signatures: HashMap<String, Arc<Signature>>,
}

/// Signatures kept per scratch before the cache starts again (bounds memory
/// for an upload of millions of different people).
const SIGNATURE_CACHE: usize = 1 << 16;

/// Append `v` as JSON. Writing to a `Vec` cannot fail, and a JSON value or
/// a string always serialises.
fn put_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let _ = serde_json::to_writer(&mut *out, v);
}

impl<'a> Curator<'a> {
    /// A curator for rows of `dataset` from one upload.
    pub fn new(dataset: &'a Dataset, pseudo: &'a Pseudonymiser, provenance: Provenance) -> Self {
        let index_of = |c: &str| {
            dataset
                .fields()
                .iter()
                .position(|f| f.concept.as_deref() == Some(c))
        };
        let key = |name: &str| {
            let mut k = Vec::with_capacity(name.len() + 3);
            put_json(&mut k, name);
            k.push(b':');
            k
        };
        let keys = dataset.fields().iter().map(|f| key(&f.name)).collect();
        let sector_keys = dataset
            .fields()
            .iter()
            .map(|f| key(&format!("{}_sector", f.name)))
            .collect();
        let mut upload_part = b",\"agency\":".to_vec();
        put_json(&mut upload_part, &provenance.agency);
        upload_part.extend_from_slice(b",\"dataset\":");
        put_json(&mut upload_part, &dataset.id);
        upload_part.extend_from_slice(b",\"schema_version\":");
        put_json(&mut upload_part, &dataset.version);
        let mut provenance_head = b",\"provenance\":{\"upload_id\":".to_vec();
        put_json(&mut provenance_head, &provenance.upload_id);
        provenance_head.extend_from_slice(b",\"row\":");
        let mut provenance_tail = b",\"key_id\":".to_vec();
        put_json(&mut provenance_tail, pseudo.kid().as_str());
        provenance_tail.extend_from_slice(b",\"scheme\":");
        put_json(&mut provenance_tail, pseudo.scheme());
        provenance_tail.extend_from_slice(b"}}");
        Curator {
            dataset,
            pseudo,
            provenance,
            // Dataset::parse guarantees the record ref and event date exist.
            record_ref: index_of("record_ref").unwrap_or(usize::MAX),
            event_date: index_of("event_date"),
            borough: index_of("borough"),
            keys,
            sector_keys,
            upload_part,
            provenance_head,
            provenance_tail,
        }
    }

    /// The borough of the first postcode field that places the row in one.
    fn borough_from_postcode(
        &self,
        slots: &[Option<&Value>],
        agency: &str,
    ) -> Option<&'static str> {
        self.dataset
            .fields()
            .iter()
            .zip(slots)
            .filter(|(f, _)| f.generalise == Some(Generalise::Sector))
            .find_map(|(f, v)| {
                let raw = (*v)?.as_str()?;
                let canonical = canonicalise(f.identifier?, raw, agency).ok()?;
                geography::borough_for_postcode(&canonical).map(|b| b.name)
            })
    }

    /// Curate one valid row.
    pub fn curate(&self, row: &Row) -> Result<StoredRecord, CurateError> {
        self.curate_with(row, &mut CurateScratch::default())
    }

    /// Validate one row and, when it is valid, curate it; otherwise append
    /// its errors to `errors` (exactly what [`RowValidator::check`] reports)
    /// and return `None`.
    ///
    /// A valid row's identifiers are canonicalised once, here, instead of
    /// once by the validator and again by curation; only a row that fails
    /// is checked field by field to name every bad identifier.
    pub fn check_and_curate(
        &self,
        validator: &RowValidator<'_>,
        row: &Row,
        errors: &mut Vec<RowError>,
        scratch: &mut CurateScratch,
    ) -> Option<StoredRecord> {
        let before = errors.len();
        if !validator.check_schema(row, errors) {
            if row.problem.is_none() {
                validator.check_identifiers(row, errors, before);
            }
            return None;
        }
        match self.curate_with(row, scratch) {
            Ok(rec) => Some(rec),
            Err(e) => {
                validator.check_identifiers(row, errors, before);
                if errors.len() == before {
                    errors.push(e.row_error(row));
                }
                None
            }
        }
    }

    /// Curate one valid row, reusing `scratch` between rows. The record's
    /// body is its curated NDJSON line (without the newline).
    ///
    /// The body is written straight from the row, field by field in schema
    /// order, rather than built as a JSON tree and serialised: this runs for
    /// every row of every upload. Its bytes are what `serde_json` writes for
    /// the same object.
    pub fn curate_with(
        &self,
        row: &Row,
        scratch: &mut CurateScratch,
    ) -> Result<StoredRecord, CurateError> {
        let agency = self.provenance.agency.as_str();
        let fields = self.dataset.fields();
        // One pass over the row's map puts each value in its field's slot:
        // a lookup per schema field would hash every name with SipHash.
        let mut on_stack = [None; 64];
        let mut on_heap = Vec::new();
        let slots: &mut [Option<&Value>] = if fields.len() <= on_stack.len() {
            &mut on_stack[..fields.len()]
        } else {
            on_heap.resize(fields.len(), None);
            &mut on_heap
        };
        if let Some(map) = row.value.as_object() {
            // The reader says which field each entry is; a name compare (no
            // hashing) confirms it, and a row shaped elsewhere is looked up.
            let hints = row.fields.iter().map(Some).chain(std::iter::repeat(None));
            for ((k, v), hint) in map.iter().zip(hints) {
                let i = match hint {
                    Some(&i) if fields.get(i).is_some_and(|f| f.name == *k) => Some(i),
                    _ => self.dataset.field_index(k),
                };
                if let Some(i) = i {
                    slots[i] = Some(v);
                }
            }
        }
        let slot = |i: Option<usize>| i.and_then(|i| slots[i]);
        let fail = |f: &Field| {
            let field = f.name.clone();
            move |reason| CurateError { field, reason }
        };
        let event_date = slot(self.event_date)
            .and_then(Value::as_str)
            .unwrap_or_default();

        // The head needs the record id and the borough, so both are found
        // first; the loop below then writes every field once, in order.
        let CurateScratch {
            token,
            ref_token,
            derived,
            body: out,
            signature_key,
            signatures,
        } = scratch;
        ref_token.clear();
        if let Some(f) = fields.get(self.record_ref)
            && let (Some(kind), Some(raw)) =
                (f.identifier, slots[self.record_ref].and_then(Value::as_str))
        {
            let canonical = canonicalise(kind, raw, agency).map_err(fail(f))?;
            self.pseudo.token_into(kind, &canonical, ref_token);
        }
        let record_id = record_id(agency, &self.dataset.id, ref_token);
        let supplied = slot(self.borough).and_then(Value::as_str);
        let (borough, borough_source) = match supplied {
            Some(b) => (Some(b), "supplied"),
            None => match self.borough_from_postcode(slots, agency) {
                Some(b) => (Some(b), "postcode"),
                None => (None, "unknown"),
            },
        };

        out.clear();
        out.extend_from_slice(b"{\"record_id\":\"");
        out.extend_from_slice(record_id.as_bytes());
        out.push(b'"');
        out.extend_from_slice(&self.upload_part);
        out.extend_from_slice(b",\"event_date\":");
        put_json(out, event_date);
        out.extend_from_slice(b",\"borough\":");
        put_json(out, &borough);
        out.extend_from_slice(b",\"borough_source\":\"");
        out.extend_from_slice(borough_source.as_bytes());
        out.extend_from_slice(b"\",\"fields\":{");
        derived.clear();
        derived.push(b'{');
        let (mut nhs, mut family, mut given, mut dob, mut upn) = (None, None, None, None, None);
        let mut links = Vec::new();
        let mut first = true;
        for (i, f) in fields.iter().enumerate() {
            let Some(v) = slots[i] else {
                continue;
            };
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            out.extend_from_slice(&self.keys[i]);
            let Some(kind) = f.identifier else {
                put_json(out, v);
                continue;
            };
            let raw = v.as_str().unwrap_or_default();
            let canonical = canonicalise(kind, raw, agency).map_err(fail(f))?;
            token.clear();
            if i == self.record_ref {
                token.push_str(ref_token);
            } else {
                self.pseudo.token_into(kind, &canonical, token);
            }
            // Tokens are `kind:kid:base32`, all characters JSON leaves alone.
            out.push(b'"');
            out.extend_from_slice(token.as_bytes());
            out.push(b'"');
            match f.generalise {
                Some(Generalise::Age) => {
                    let age = parse_ymd(&canonical)
                        .zip(parse_ymd(event_date))
                        .and_then(|(d, e)| age_at(d, e));
                    if let Some(age) = age {
                        if derived.len() > 1 {
                            derived.push(b',');
                        }
                        derived.extend_from_slice(b"\"age\":");
                        put_json(derived, &age);
                        derived.extend_from_slice(b",\"age_band\":");
                        put_json(derived, age_band(age));
                    }
                }
                Some(Generalise::Sector) => {
                    if derived.len() > 1 {
                        derived.push(b',');
                    }
                    derived.extend_from_slice(&self.sector_keys[i]);
                    put_json(derived, &geography::postcode_sector(&canonical));
                }
                None => {}
            }
            if let Some(link) = &f.link {
                links.push(Link {
                    kind: link.clone(),
                    token: token.clone(),
                });
            }
            // Last, so the canonical value moves rather than is copied.
            match f.match_role {
                Some(MatchRole::Nhs) => nhs = Some(canonical),
                Some(MatchRole::Family) => family = Some(canonical),
                Some(MatchRole::Given) => given = Some(canonical),
                Some(MatchRole::Dob) => dob = Some(canonical),
                Some(MatchRole::Upn) => upn = Some(canonical),
                None => {}
            }
        }
        out.push(b'}');
        derived.push(b'}');

        let signature = (family.is_some() || given.is_some() || dob.is_some())
            .then(|| {
                let key = signature_key;
                key.clear();
                for part in [&family, &given, &dob] {
                    // `\u{1}` cannot occur in a canonical name or date.
                    key.push('\u{1}');
                    key.push_str(part.as_deref().unwrap_or(""));
                }
                if let Some(s) = signatures.get(key.as_str()) {
                    return Some(s.clone());
                }
                let s = Arc::new(signature(
                    self.pseudo,
                    family.as_deref(),
                    given.as_deref(),
                    dob.as_deref(),
                )?);
                if signatures.len() >= SIGNATURE_CACHE {
                    signatures.clear();
                }
                signatures.insert(key.clone(), s.clone());
                Some(s)
            })
            .flatten();
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
        out.extend_from_slice(b",\"derived\":");
        out.extend_from_slice(derived);
        out.extend_from_slice(b",\"match_keys\":[");
        for (i, k) in match_keys.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(k.as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b"],\"links\":[");
        for (i, l) in links.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"kind\":");
            put_json(out, &l.kind);
            out.extend_from_slice(b",\"token\":\"");
            out.extend_from_slice(l.token.as_bytes());
            out.extend_from_slice(b"\"}");
        }
        out.push(b']');
        out.extend_from_slice(&self.provenance_head);
        put_json(out, &row.row);
        out.extend_from_slice(&self.provenance_tail);
        // Every piece above is JSON text, which is UTF-8.
        let body = String::from_utf8(out.clone()).unwrap_or_default();
        Ok(StoredRecord {
            record_id,
            person_id: String::new(),
            agency: agency.to_owned(),
            dataset: self.dataset.id.clone(),
            event_date: event_date.to_owned(),
            upload_id: self.provenance.upload_id.clone(),
            row: row.row,
            match_keys,
            links,
            body: RecordBody::from_curated(body),
            signature,
        })
    }
}
