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
    /// The schema text exactly as shipped.
    pub source: String,
    /// The parsed schema.
    pub schema: Value,
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
    /// Parse and compile one schema file.
    pub fn parse(file: &str, text: &str) -> Result<Dataset, SchemaError> {
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
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
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
            source: text.to_owned(),
            schema: schema.clone(),
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

    /// The compiled validator (formats checked).
    pub fn validator(&self) -> &jsonschema::Validator {
        &self.validator
    }

    /// `<id>.v<version>`, as recorded in lineage.
    pub fn versioned_id(&self) -> String {
        format!("{}.v{}", self.id, self.version)
    }
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
        Catalog::from_sources(embedded::EMBEDDED.iter().copied())
    }

    /// Build a catalog from `(file name, file text)` pairs, e.g. a `--schemas DIR`.
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Catalog, SchemaError> {
        let mut cat = Catalog::default();
        for (file, text) in sources {
            let ds = Dataset::parse(file, text)?;
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
}
