//! Dataset schemas: loading, checking the agencylink annotations, and
//! compiling the JSON Schema validator once per dataset.
//!
//! A dataset is a schema file, not code. Everything the pipeline needs to know
//! about a field (its type for CSV coercion, whether it is an identifier, its
//! linkage role, what the profile should read from it) comes from the
//! annotations described in `schemas/README.md`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::pseudo::Kind;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_schemas.rs"));
}

/// A schema file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The file name does not follow `<agency-type>.<dataset>.v<N>.schema.json`.
    #[error("{file}: the file name must look like <agency-type>.<dataset>.v<N>.schema.json")]
    FileName {
        /// The offending file name.
        file: String,
    },
    /// The file is not JSON.
    #[error("{file}: not valid JSON: {source}")]
    Json {
        /// The schema file.
        file: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The JSON Schema itself is invalid.
    #[error("{file}: not a valid JSON Schema: {message}")]
    Invalid {
        /// The schema file.
        file: String,
        /// What the compiler said.
        message: String,
    },
    /// An agencylink annotation has a value we do not know.
    #[error("{file}: property `{field}`: {message}")]
    Annotation {
        /// The schema file.
        file: String,
        /// The property carrying the annotation.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A `pattern` (or `patternProperties` key) that the linear-time regex
    /// engine does not accept: backreferences and lookaround can take
    /// exponential time on a crafted cell, so no schema may use them.
    #[error(
        "{file}: dataset {dataset}, field `{field}`: rule `{rule}` must be a regular expression without backreferences or lookaround (matched in linear time): {reason}"
    )]
    Pattern {
        /// The schema file.
        file: String,
        /// The dataset id.
        dataset: String,
        /// The property whose sub-schema holds the pattern, or the JSON
        /// pointer to it when it is outside `properties`.
        field: String,
        /// `pattern` or `patternProperties`.
        rule: String,
        /// What the regex engine said.
        reason: String,
    },
    /// A schema read from a directory no longer pseudonymises a field that
    /// the embedded schema of the same dataset does.
    #[error(
        "{file}: dataset {dataset} v{version} would store identifiers unpseudonymised: {}",
        describe_changes(changes)
    )]
    IdentifiersRemoved {
        /// The schema file.
        file: String,
        /// The dataset id.
        dataset: String,
        /// The version.
        version: u32,
        /// Each field that lost its identifier treatment.
        changes: Vec<IdentifierChange>,
    },
    /// Two files define the same dataset and version.
    #[error("{file}: dataset {dataset} v{version} is defined twice")]
    Duplicate {
        /// The second file.
        file: String,
        /// The dataset id.
        dataset: String,
        /// The version.
        version: u32,
    },
}

fn describe_changes(changes: &[IdentifierChange]) -> String {
    changes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Where a dataset's schema came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaOrigin {
    /// Embedded in this build from `schemas/`.
    Embedded,
    /// Read at run time (`--schemas DIR`, or any text handed to
    /// [`Catalog::from_sources`] / [`Dataset::parse`]).
    Directory,
}

impl SchemaOrigin {
    /// `embedded` or `directory`, as recorded in lineage.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaOrigin::Embedded => "embedded",
            SchemaOrigin::Directory => "directory",
        }
    }
}

/// A field that the embedded schema of a dataset pseudonymises and a
/// directory schema of the same dataset does not (or not as the same kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifierChange {
    /// The field name.
    pub field: String,
    /// Its `x-identifier` in the embedded schema.
    pub embedded: Kind,
    /// What the directory schema says instead.
    pub now: FieldNow,
}

/// What a directory schema does with a field the embedded schema treats as
/// an identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldNow {
    /// The field is not in the schema.
    Missing,
    /// The field has no `x-identifier`: its values would be kept raw.
    NotIdentifier,
    /// A different identifier kind (other canonical form, other tokens).
    OtherKind(Kind),
}

impl std::fmt::Display for IdentifierChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (field, was) = (&self.field, self.embedded);
        match self.now {
            FieldNow::Missing => write!(
                f,
                "field `{field}` (x-identifier `{was}` in the embedded schema) is missing"
            ),
            FieldNow::NotIdentifier => write!(
                f,
                "field `{field}` has no x-identifier (`{was}` in the embedded schema)"
            ),
            FieldNow::OtherKind(k) => write!(
                f,
                "field `{field}` has x-identifier `{k}` (`{was}` in the embedded schema)"
            ),
        }
    }
}

/// Where a dataset's schema came from and how it compares with the build's,
/// recorded with every upload so that a schema that is not the embedded one
/// is visible in lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaProvenance {
    /// Embedded or read from a directory.
    pub origin: SchemaOrigin,
    /// SHA-256 (hex) of the schema file's bytes.
    pub sha256: String,
    /// For a directory schema: whether it differs (as JSON) from the
    /// embedded schema it was compared with; `None` when the dataset has no
    /// embedded schema or the schema is the embedded one.
    pub differs_from_embedded: Option<bool>,
    /// Identifier fields of the embedded schema that this one does not
    /// pseudonymise (only ever non-empty when that was explicitly allowed).
    pub identifiers_removed: Vec<IdentifierChange>,
}

impl SchemaProvenance {
    /// The `schema` object of a lineage event (defined in
    /// [`crate::events::SchemaUsed`]).
    pub fn to_lineage(&self, file: &str) -> Value {
        serde_json::to_value(crate::events::SchemaUsed::new(self, file)).unwrap_or_default()
    }
}

/// Hex SHA-256 of bytes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How a CSV cell is turned into a JSON value before validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Kept as text.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// true/false/yes/no/y/n/1/0 in any case.
    Boolean,
    /// `;`-separated items, each coerced as the inner type.
    Array(ScalarType),
}

/// The item type of an array field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarType {
    /// Text items.
    String,
    /// Whole-number items.
    Integer,
    /// Numeric items.
    Number,
    /// Boolean items.
    Boolean,
}

/// A field's role in linkage (`x-match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchRole {
    /// The NHS number.
    Nhs,
    /// Family name.
    Family,
    /// Given name.
    Given,
    /// Date of birth.
    Dob,
    /// Unique pupil number.
    Upn,
}

/// A generalised field derived from an identifier (`x-generalise`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generalise {
    /// Age in whole years at the event date, and its band.
    Age,
    /// Postcode sector, and the borough when none was supplied.
    Sector,
}

/// One property of a dataset schema with its agencylink annotations.
#[derive(Debug, Clone)]
pub struct Field {
    /// The property name (CSV column).
    pub name: String,
    /// How cells are coerced.
    pub ty: FieldType,
    /// Listed in the schema's `required`.
    pub required: bool,
    /// `x-identifier`: the field holds an identifier of this kind.
    pub identifier: Option<Kind>,
    /// `x-match`: the field's linkage role.
    pub match_role: Option<MatchRole>,
    /// `x-generalise`: what is derived from it.
    pub generalise: Option<Generalise>,
    /// `x-concept`: what the field means to the pipeline and the profile.
    pub concept: Option<String>,
    /// `x-link`: a shared value ties two people into a network.
    pub link: Option<String>,
    /// `enum`, when the field is a code list (items' enum for arrays).
    pub codes: Option<Vec<String>>,
    /// `x-codes`: code → meaning.
    pub meanings: BTreeMap<String, String>,
    /// `x-group`: code → broad group (ethnicity).
    pub groups: BTreeMap<String, String>,
    /// `format`, when set (`date`).
    pub format: Option<String>,
    /// The property's description.
    pub description: String,
}

impl Field {
    /// Whether the field's value must never be echoed.
    pub fn is_identifier(&self) -> bool {
        self.identifier.is_some()
    }
}

/// One dataset: its schema, field metadata and compiled validator.
pub struct Dataset {
    /// Dataset id, e.g. `police.cse_crime`.
    pub id: String,
    /// Schema version (`vN` in the file name).
    pub version: u32,
    /// The file name the schema came from.
    pub file: String,
    /// The schema's `title`.
    pub title: String,
    /// The schema's `description`.
    pub description: String,
    /// `x-agency-type`.
    pub agency_type: Option<String>,
    /// `x-retention-days`: how long the store keeps a record after its
    /// event date (`agencylink retention apply`); `None` keeps it until it
    /// is withdrawn.
    pub retention_days: Option<u32>,
    /// The schema text exactly as shipped.
    pub source: String,
    /// The parsed schema.
    pub schema: Value,
    /// Where the schema came from, its hash, and how it compares with the
    /// embedded one.
    pub provenance: SchemaProvenance,
    fields: Vec<Field>,
    // Looked up for every cell of every row; the keys are the schema's own
    // names, so a fast non-keyed hasher is safe here.
    by_name: HashMap<String, usize, foldhash::fast::FixedState>,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("fields", &self.fields.len())
            .finish_non_exhaustive()
    }
}

impl Dataset {
    /// Parse and compile one schema file read at run time
    /// ([`SchemaOrigin::Directory`]).
    pub fn parse(file: &str, text: &str) -> Result<Dataset, SchemaError> {
        Dataset::parse_from(file, text, SchemaOrigin::Directory)
    }

    fn parse_from(file: &str, text: &str, origin: SchemaOrigin) -> Result<Dataset, SchemaError> {
        let (id, version) = parse_file_name(file).ok_or_else(|| SchemaError::FileName {
            file: file.to_owned(),
        })?;
        let schema: Value = serde_json::from_str(text).map_err(|source| SchemaError::Json {
            file: file.to_owned(),
            source,
        })?;
        let invalid = |message: String| SchemaError::Invalid {
            file: file.to_owned(),
            message,
        };
        jsonschema::meta::validate(&schema).map_err(|e| invalid(e.to_string()))?;
        check_patterns(file, &id, &schema, "")?;
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            // The linear-time engine for every schema: a custom schema's
            // pattern must not be able to stall an ingest on a crafted cell.
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(&schema)
            .map_err(|e| invalid(e.to_string()))?;
        let props = schema
            .get("properties")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("a dataset schema needs `properties`".into()))?;
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut fields = Vec::with_capacity(props.len());
        for (name, prop) in props {
            fields.push(parse_field(
                file,
                name,
                prop,
                required.contains(&name.as_str()),
            )?);
        }
        let retention_days = match schema.get("x-retention-days") {
            None => None,
            Some(v) => match v.as_u64() {
                Some(d @ 1..=36_600) => Some(d as u32),
                _ => {
                    return Err(SchemaError::Annotation {
                        file: file.to_owned(),
                        field: "x-retention-days".into(),
                        message: "must be a whole number of days from 1 to 36600".into(),
                    });
                }
            },
        };
        let text_of = |k: &str| {
            schema
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let by_name = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        let dataset = Dataset {
            id,
            version,
            file: file.to_owned(),
            title: text_of("title"),
            description: text_of("description"),
            agency_type: schema
                .get("x-agency-type")
                .and_then(Value::as_str)
                .map(str::to_owned),
            retention_days,
            source: text.to_owned(),
            schema: schema.clone(),
            provenance: SchemaProvenance {
                origin,
                sha256: sha256_hex(text.as_bytes()),
                differs_from_embedded: None,
                identifiers_removed: Vec::new(),
            },
            fields,
            by_name,
            validator,
        };
        dataset.check_concepts()?;
        Ok(dataset)
    }

    fn check_concepts(&self) -> Result<(), SchemaError> {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for f in &self.fields {
            if let Some(c) = f.concept.as_deref()
                && seen.insert(c, &f.name).is_some()
            {
                return Err(SchemaError::Annotation {
                    file: self.file.clone(),
                    field: f.name.clone(),
                    message: format!("x-concept `{c}` is used by more than one field"),
                });
            }
        }
        for needed in ["record_ref", "event_date"] {
            match self.field_for(needed) {
                Some(f) if f.required => {}
                _ => {
                    return Err(SchemaError::Annotation {
                        file: self.file.clone(),
                        field: needed.into(),
                        message: format!(
                            "a dataset needs a required field with x-concept `{needed}`"
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The fields in schema order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.by_name.get(name).map(|&i| &self.fields[i])
    }

    /// The index of a field by name.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The field that carries an `x-concept`.
    pub fn field_for(&self, concept: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.concept.as_deref() == Some(concept))
    }

    /// Whether a row is about a person. A dataset with the `case_ref`
    /// concept is about investigations (one crime covered by one
    /// operation), and one with the `disruption_activity` concept about
    /// activities at places: about no one, although ingest still gives
    /// each of their records an id of its own in the person column. (Not
    /// "has no `x-match` field": a dataset may hold people it cannot link.)
    pub fn is_about_people(&self) -> bool {
        self.field_for("case_ref").is_none() && self.field_for("disruption_activity").is_none()
    }

    /// The compiled validator (formats checked).
    pub fn validator(&self) -> &jsonschema::Validator {
        &self.validator
    }

    /// `<id>.v<version>`, as recorded in lineage.
    pub fn versioned_id(&self) -> String {
        format!("{}.v{}", self.id, self.version)
    }
}

/// Keywords whose values are data or annotations, not sub-schemas: a
/// `pattern` key inside them is not a regular expression.
fn is_data_keyword(key: &str) -> bool {
    matches!(key, "enum" | "const" | "examples" | "default") || key.starts_with("x-")
}

/// Refuse any `pattern` or `patternProperties` key that the linear-time
/// engine does not accept, naming the field it belongs to. Each is compiled
/// by jsonschema itself with the engine the validator uses, so this accepts
/// exactly what the validator will (ECMA-262 translation included).
fn check_patterns(
    file: &str,
    dataset: &str,
    node: &Value,
    pointer: &str,
) -> Result<(), SchemaError> {
    let Value::Object(map) = node else {
        if let Value::Array(items) = node {
            for (i, item) in items.iter().enumerate() {
                check_patterns(file, dataset, item, &format!("{pointer}/{i}"))?;
            }
        }
        return Ok(());
    };
    let refuse = |rule: &str, reason: String| {
        // `/properties/<field>/…` names the field; anything else (e.g. under
        // `$defs`) is named by its JSON pointer.
        let field = pointer
            .strip_prefix("/properties/")
            .map(|rest| {
                rest.split('/')
                    .next()
                    .unwrap_or(rest)
                    .replace("~1", "/")
                    .replace("~0", "~")
            })
            .unwrap_or_else(|| {
                if pointer.is_empty() {
                    "/".to_owned()
                } else {
                    pointer.to_owned()
                }
            });
        SchemaError::Pattern {
            file: file.to_owned(),
            dataset: dataset.to_owned(),
            field,
            rule: rule.to_owned(),
            reason,
        }
    };
    for (key, value) in map {
        if is_data_keyword(key) {
            continue;
        }
        match (key.as_str(), value) {
            ("pattern", Value::String(p)) => {
                linear_pattern(&serde_json::json!({ "pattern": p }))
                    .map_err(|reason| refuse("pattern", reason))?;
            }
            ("patternProperties", Value::Object(props)) => {
                for p in props.keys() {
                    linear_pattern(
                        &serde_json::json!({ "patternProperties": { p.as_str(): true } }),
                    )
                    .map_err(|reason| refuse("patternProperties", reason))?;
                }
            }
            _ => {}
        }
        let escaped = key.replace('~', "~0").replace('/', "~1");
        check_patterns(file, dataset, value, &format!("{pointer}/{escaped}"))?;
    }
    Ok(())
}

fn linear_pattern(schema: &Value) -> Result<(), String> {
    jsonschema::options()
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(schema)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// How a directory schema compares with the embedded schema of the same
/// dataset: whether it differs at all, and which embedded identifier fields
/// it no longer pseudonymises as the same kind.
fn compare_with_embedded(ds: &Dataset, embedded: &Dataset) -> (bool, Vec<IdentifierChange>) {
    let differs = ds.schema != embedded.schema;
    let changes = embedded
        .fields()
        .iter()
        .filter_map(|e| {
            let kind = e.identifier?;
            let now = match ds.field(&e.name) {
                None => FieldNow::Missing,
                Some(f) => match f.identifier {
                    None => FieldNow::NotIdentifier,
                    Some(k) if k != kind => FieldNow::OtherKind(k),
                    Some(_) => return None,
                },
            };
            Some(IdentifierChange {
                field: e.name.clone(),
                embedded: kind,
                now,
            })
        })
        .collect();
    (differs, changes)
}

fn parse_file_name(file: &str) -> Option<(String, u32)> {
    let stem = file.strip_suffix(".schema.json")?;
    let (id, v) = stem.rsplit_once(".v")?;
    let version: u32 = v.parse().ok()?;
    let ok_id = !id.is_empty()
        && id.contains('.')
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.' || b == b'-'
        });
    ok_id.then(|| (id.to_owned(), version))
}

fn scalar_type(file: &str, name: &str, t: Option<&str>) -> Result<ScalarType, SchemaError> {
    Ok(match t {
        Some("string") | None => ScalarType::String,
        Some("integer") => ScalarType::Integer,
        Some("number") => ScalarType::Number,
        Some("boolean") => ScalarType::Boolean,
        Some(other) => {
            return Err(SchemaError::Annotation {
                file: file.into(),
                field: name.into(),
                message: format!("type `{other}` cannot be read from a CSV cell"),
            });
        }
    })
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn parse_field(file: &str, name: &str, prop: &Value, required: bool) -> Result<Field, SchemaError> {
    let bad = |message: String| SchemaError::Annotation {
        file: file.into(),
        field: name.into(),
        message,
    };
    let get_str = |k: &str| prop.get(k).and_then(Value::as_str);
    let ty = match get_str("type") {
        Some("array") => {
            let items = prop.get("items");
            let inner = items.and_then(|i| i.get("type")).and_then(Value::as_str);
            FieldType::Array(scalar_type(file, name, inner)?)
        }
        other => match scalar_type(file, name, other)? {
            ScalarType::String => FieldType::String,
            ScalarType::Integer => FieldType::Integer,
            ScalarType::Number => FieldType::Number,
            ScalarType::Boolean => FieldType::Boolean,
        },
    };
    let identifier = match get_str("x-identifier") {
        Some(k) => {
            let kind: Kind = k
                .parse()
                .map_err(|e: crate::pseudo::UnknownKind| bad(e.to_string()))?;
            if kind == Kind::Match {
                return Err(bad("x-identifier `match` is reserved for match keys".into()));
            }
            if ty != FieldType::String {
                return Err(bad("an x-identifier field must be a string".into()));
            }
            Some(kind)
        }
        None => None,
    };
    let match_role = match get_str("x-match") {
        None => None,
        Some(m) => {
            let (role, kind) = match m {
                "nhs" => (MatchRole::Nhs, Kind::NhsNumber),
                "family" => (MatchRole::Family, Kind::PersonName),
                "given" => (MatchRole::Given, Kind::PersonName),
                "dob" => (MatchRole::Dob, Kind::Date),
                "upn" => (MatchRole::Upn, Kind::Upn),
                other => return Err(bad(format!("unknown x-match `{other}`"))),
            };
            if identifier != Some(kind) {
                return Err(bad(format!("x-match `{m}` needs x-identifier `{kind}`")));
            }
            Some(role)
        }
    };
    let generalise = match get_str("x-generalise") {
        None => None,
        Some("age") if identifier == Some(Kind::Date) => Some(Generalise::Age),
        Some("sector") if identifier == Some(Kind::Postcode) => Some(Generalise::Sector),
        Some(other) => {
            return Err(bad(format!(
                "x-generalise `{other}` is unknown or does not fit this field's x-identifier"
            )));
        }
    };
    let codes = match &ty {
        FieldType::Array(_) => prop.get("items").and_then(|i| i.get("enum")),
        _ => prop.get("enum"),
    }
    .and_then(Value::as_array)
    .map(|a| {
        a.iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect()
    });
    Ok(Field {
        name: name.to_owned(),
        ty,
        required,
        identifier,
        match_role,
        generalise,
        concept: get_str("x-concept").map(str::to_owned),
        link: get_str("x-link").map(str::to_owned),
        codes,
        meanings: string_map(prop.get("x-codes")),
        groups: string_map(prop.get("x-group")),
        format: get_str("format").map(str::to_owned),
        description: get_str("description").unwrap_or("").to_owned(),
    })
}

/// The datasets a deployment knows, newest version of each by default.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    versions: BTreeMap<String, BTreeMap<u32, Arc<Dataset>>>,
}

impl Catalog {
    /// The schemas embedded in this build (from `schemas/`).
    pub fn embedded() -> Result<Catalog, SchemaError> {
        Catalog::build(
            embedded::EMBEDDED.iter().copied(),
            SchemaOrigin::Embedded,
            Ok,
        )
    }

    /// Build a catalog from `(file name, file text)` pairs read at run time,
    /// without comparing them with the embedded schemas (tests, tools).
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Catalog, SchemaError> {
        Catalog::build(sources, SchemaOrigin::Directory, Ok)
    }

    /// Build a catalog from a schema directory's `(file name, file text)`
    /// pairs, guarded against the embedded catalog: each schema is compared
    /// with the embedded schema of the same dataset (the same version, or
    /// else the newest), and one that no longer pseudonymises a field the
    /// embedded schema does (the field missing, without `x-identifier`, or
    /// with another kind) is refused unless `allow_identifier_changes`.
    /// What was found is kept in each dataset's [`SchemaProvenance`].
    pub fn from_directory<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
        embedded: &Catalog,
        allow_identifier_changes: bool,
    ) -> Result<Catalog, SchemaError> {
        Catalog::build(sources, SchemaOrigin::Directory, |mut ds| {
            let base = embedded
                .get_version(&ds.id, ds.version)
                .or_else(|| embedded.get(&ds.id));
            if let Some(base) = base {
                let (differs, changes) = compare_with_embedded(&ds, base);
                if !changes.is_empty() && !allow_identifier_changes {
                    return Err(SchemaError::IdentifiersRemoved {
                        file: ds.file.clone(),
                        dataset: ds.id.clone(),
                        version: ds.version,
                        changes,
                    });
                }
                ds.provenance.differs_from_embedded = Some(differs);
                ds.provenance.identifiers_removed = changes;
            }
            Ok(ds)
        })
    }

    fn build<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
        origin: SchemaOrigin,
        check: impl Fn(Dataset) -> Result<Dataset, SchemaError>,
    ) -> Result<Catalog, SchemaError> {
        let mut cat = Catalog::default();
        for (file, text) in sources {
            let ds = check(Dataset::parse_from(file, text, origin)?)?;
            let versions = cat.versions.entry(ds.id.clone()).or_default();
            if versions.contains_key(&ds.version) {
                return Err(SchemaError::Duplicate {
                    file: file.to_owned(),
                    dataset: ds.id,
                    version: ds.version,
                });
            }
            versions.insert(ds.version, Arc::new(ds));
        }
        Ok(cat)
    }

    /// The newest version of a dataset.
    pub fn get(&self, id: &str) -> Option<&Arc<Dataset>> {
        self.versions.get(id).and_then(|v| v.values().next_back())
    }

    /// One version of a dataset.
    pub fn get_version(&self, id: &str, version: u32) -> Option<&Arc<Dataset>> {
        self.versions.get(id).and_then(|v| v.get(&version))
    }

    /// The newest version of every dataset, by id.
    pub fn latest(&self) -> impl Iterator<Item = &Arc<Dataset>> {
        self.versions
            .values()
            .filter_map(|v| v.values().next_back())
    }

    /// Every version of every dataset, by id then version.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Dataset>> {
        self.versions.values().flat_map(BTreeMap::values)
    }

    /// Whether the catalog is empty.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r#"{
      "$schema": "https://json-schema.org/draft/2020-12/schema",
      "type": "object", "additionalProperties": false,
      "required": ["record_ref", "event_date"],
      "properties": {
        "record_ref": {"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"},
        "event_date": {"type": "string", "format": "date", "x-concept": "event_date"},
        "dob": {"type": "string", "x-identifier": "date", "x-match": "dob", "x-generalise": "age"},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}
      }
    }"#;

    #[test]
    fn embedded_schemas_all_compile() {
        let cat = Catalog::embedded().expect("embedded schemas are valid");
        assert!(
            cat.latest().count() >= 6,
            "the six first datasets ship embedded"
        );
    }

    #[test]
    fn annotations_are_read() {
        let ds = Dataset::parse("test.mini.v2.schema.json", MINI).expect("valid");
        assert_eq!((ds.id.as_str(), ds.version), ("test.mini", 2));
        let dob = ds.field("dob").expect("dob");
        assert_eq!(dob.identifier, Some(Kind::Date));
        assert_eq!(dob.match_role, Some(MatchRole::Dob));
        assert_eq!(dob.generalise, Some(Generalise::Age));
        let tags = ds.field("tags").expect("tags");
        assert_eq!(tags.ty, FieldType::Array(ScalarType::String));
        assert_eq!(
            tags.codes.as_deref(),
            Some(&["a".to_owned(), "b".to_owned()][..])
        );
    }

    #[test]
    fn bad_annotations_are_refused() {
        let bad = MINI.replace("\"x-match\": \"dob\"", "\"x-match\": \"nhs\"");
        let err = Dataset::parse("test.mini.v1.schema.json", &bad).expect_err("mismatched");
        assert!(
            err.to_string()
                .contains("x-match `nhs` needs x-identifier `nhs_number`"),
            "{err}"
        );
        let err = Dataset::parse("mini.json", MINI).expect_err("bad name");
        assert!(matches!(err, SchemaError::FileName { .. }));
        let no_ref = MINI.replace("\"x-concept\": \"record_ref\"", "\"x-concept\": \"other\"");
        assert!(Dataset::parse("test.mini.v1.schema.json", &no_ref).is_err());
    }

    #[test]
    fn embedded_and_directory_schemas_carry_their_hash_and_origin() {
        let cat = Catalog::embedded().expect("embedded");
        let ds = cat.get("police.cse_crime").expect("crime");
        assert_eq!(ds.provenance.origin, SchemaOrigin::Embedded);
        assert_eq!(ds.provenance.sha256, sha256_hex(ds.source.as_bytes()));
        assert_eq!(ds.provenance.sha256.len(), 64);
        assert_eq!(
            ds.provenance.to_lineage(&ds.file),
            serde_json::json!({"origin": "embedded", "sha256": ds.provenance.sha256})
        );
        // A byte-identical copy read from a directory is still a directory
        // schema (and says so), but it differs in nothing.
        let copy = Catalog::from_directory([(ds.file.as_str(), ds.source.as_str())], &cat, false)
            .expect("copy");
        let c = copy.get("police.cse_crime").expect("crime");
        assert_eq!(c.provenance.origin, SchemaOrigin::Directory);
        assert_eq!(c.provenance.sha256, ds.provenance.sha256);
        assert_eq!(c.provenance.differs_from_embedded, Some(false));
    }

    /// The crime schema with every `x-identifier` (and what depends on it) removed.
    fn stripped(text: &str) -> String {
        let mut v: Value = serde_json::from_str(text).expect("json");
        for prop in v["properties"].as_object_mut().expect("props").values_mut() {
            if let Some(p) = prop.as_object_mut() {
                for k in ["x-identifier", "x-match", "x-generalise"] {
                    p.remove(k);
                }
            }
        }
        serde_json::to_string_pretty(&v).expect("json")
    }

    #[test]
    fn a_directory_schema_without_the_embedded_identifiers_is_refused_unless_allowed() {
        let cat = Catalog::embedded().expect("embedded");
        let ds = cat.get("police.cse_crime").expect("crime");
        let text = stripped(&ds.source);
        let err = Catalog::from_directory([(ds.file.as_str(), text.as_str())], &cat, false)
            .expect_err("refused");
        let msg = err.to_string();
        assert!(
            matches!(err, SchemaError::IdentifiersRemoved { .. }),
            "{msg}"
        );
        assert!(msg.contains("police.cse_crime"), "{msg}");
        let dob = ds
            .fields()
            .iter()
            .find(|f| f.match_role == Some(MatchRole::Dob))
            .expect("a dob field");
        assert!(
            msg.contains(&format!("field `{}` has no x-identifier (`date`", dob.name)),
            "{msg}"
        );
        let allowed = Catalog::from_directory([(ds.file.as_str(), text.as_str())], &cat, true)
            .expect("allowed");
        let a = allowed.get("police.cse_crime").expect("crime");
        assert_eq!(a.provenance.differs_from_embedded, Some(true));
        let removed = a.provenance.to_lineage(&a.file)["identifiers_removed"].clone();
        assert!(
            removed
                .as_array()
                .is_some_and(|r| r.contains(&Value::from(dob.name.clone()))),
            "{removed}"
        );
    }

    #[test]
    fn a_missing_or_rekinded_identifier_field_is_refused() {
        let cat = Catalog::embedded().expect("embedded");
        let ds = cat.get("police.cse_crime").expect("crime");
        let dob = ds
            .fields()
            .iter()
            .find(|f| f.match_role == Some(MatchRole::Dob))
            .expect("dob")
            .name
            .clone();
        let mut v = ds.schema.clone();
        let props = v["properties"].as_object_mut().expect("props");
        props.shift_remove(&dob);
        if let Some(req) = v["required"].as_array_mut() {
            req.retain(|r| r != &Value::from(dob.clone()));
        }
        let text = v.to_string();
        let err = Catalog::from_directory([(ds.file.as_str(), text.as_str())], &cat, false)
            .expect_err("missing refused");
        assert!(
            err.to_string().contains(&format!(
                "field `{dob}` (x-identifier `date` in the embedded schema) is missing"
            )),
            "{err}"
        );
        // Another kind changes the tokens: refused too.
        let record_ref = ds.field_for("record_ref").expect("ref").name.clone();
        let mut v = ds.schema.clone();
        v["properties"][&record_ref]["x-identifier"] = Value::from("email");
        let text = v.to_string();
        let err = Catalog::from_directory([(ds.file.as_str(), text.as_str())], &cat, false)
            .expect_err("other kind refused");
        assert!(err.to_string().contains("x-identifier `email`"), "{err}");
    }

    #[test]
    fn a_custom_dataset_is_allowed_and_marked_as_from_a_directory() {
        let cat = Catalog::embedded().expect("embedded");
        let custom = Catalog::from_directory([("test.mini.v2.schema.json", MINI)], &cat, false)
            .expect("a new dataset is a feature");
        let ds = custom.get("test.mini").expect("mini");
        assert_eq!(ds.provenance.differs_from_embedded, None);
        let l = ds.provenance.to_lineage(&ds.file);
        assert_eq!(l["origin"], "directory");
        assert_eq!(l["embedded_counterpart"], false);
        assert_eq!(l["file"], "test.mini.v2.schema.json");
        assert_eq!(l["sha256"], sha256_hex(MINI.as_bytes()));
    }

    #[test]
    fn patterns_must_suit_a_linear_time_engine() {
        let with = |pattern: &str| {
            MINI.replace(
                "\"tags\": {",
                &format!(
                    "\"code\": {{\"type\": \"string\", \"pattern\": {}}},\n        \"tags\": {{",
                    Value::from(pattern)
                ),
            )
        };
        let ok = Dataset::parse("test.mini.v1.schema.json", &with("^[A-Z]{2}[0-9]{6}$"))
            .expect("a plain pattern");
        assert!(ok.field("code").is_some());
        for bad in ["^(a+)\\1$", "^(?=a)a$", "^(?<!x)y$", "(?<n>a)\\k<n>"] {
            let err = Dataset::parse("test.mini.v1.schema.json", &with(bad))
                .expect_err("backreference or lookaround refused");
            let msg = err.to_string();
            assert!(
                matches!(&err, SchemaError::Pattern { dataset, field, rule, .. }
                    if dataset == "test.mini" && field == "code" && rule == "pattern"),
                "{bad}: {msg}"
            );
            assert!(
                msg.contains("field `code`") && msg.contains("rule `pattern`"),
                "{msg}"
            );
        }
        // patternProperties and patterns under $defs are checked as well.
        let pp = MINI.replace(
            "\"properties\": {",
            "\"patternProperties\": {\"^(x)\\\\1$\": true},\n      \"properties\": {",
        );
        let err = Dataset::parse("test.mini.v1.schema.json", &pp).expect_err("patternProperties");
        assert!(
            matches!(err, SchemaError::Pattern { ref rule, .. } if rule == "patternProperties"),
            "{err}"
        );
        // A code list entry or an annotation called `pattern` is data, not a regex.
        let data = MINI.replace(
            "\"tags\": {",
            "\"kind\": {\"type\": \"string\", \"enum\": [\"pattern\"], \"x-codes\": {\"pattern\": \"(a)\\\\1 a pattern of abuse\"}},\n        \"tags\": {",
        );
        Dataset::parse("test.mini.v1.schema.json", &data).expect("data is not a pattern");
    }

    #[test]
    fn embedded_patterns_still_validate_under_the_linear_engine() {
        let cat = Catalog::embedded().expect("embedded");
        let ds = cat.get("education.absence").expect("absence");
        let (name, _) = ds.schema["properties"]
            .as_object()
            .expect("props")
            .iter()
            .find(|(_, p)| p.get("pattern").is_some())
            .expect("a field with a pattern");
        let field = |v: &str| serde_json::json!({ name.as_str(): v });
        let sub = serde_json::json!({"properties": {name.as_str(): ds.schema["properties"][name]}});
        let v = jsonschema::options()
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(&sub)
            .expect("compiles");
        assert!(v.is_valid(&field("123456")));
        assert!(!v.is_valid(&field("12345a")));
    }
}
