//! Create what a deployment needs when it is missing: for emulators (moto)
//! and scratch accounts (`agencylink --backend aws setup`). Real deployments
//! use `infra/template.yaml`; the definitions here are data ([`TABLE`],
//! [`BUCKETS`]) so a test can check they agree with the template's.
//!
//! Nothing here replaces or changes what exists: an existing bucket, table
//! or secret is reported as found and left alone (a key secret above all:
//! replacing it would make every stored token unlinkable).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    VersioningConfiguration,
};
use zeroize::Zeroizing;

use agencylink_core::ports::{StoreError, StoreResult};
use agencylink_core::pseudo::MasterKey;

use crate::dynamo::{GSI_DATASET, GSI_PK, GSI_SK, PK, SK};
use crate::error::{
    AUDIT_BUCKET_VAR, BUCKET_VAR, LANDING_BUCKET_VAR, Resource, one_line, store_error,
};

/// A key: partition attribute and sort attribute (both strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDef {
    /// The HASH attribute.
    pub hash: &'static str,
    /// The RANGE attribute.
    pub range: &'static str,
}

/// A global secondary index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexDef {
    /// The index name.
    pub name: &'static str,
    /// Its key.
    pub key: KeyDef,
    /// Its projection type (`ALL`, `KEYS_ONLY`).
    pub projection: &'static str,
}

/// The single table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDef {
    /// `PAY_PER_REQUEST` or `PROVISIONED`.
    pub billing_mode: &'static str,
    /// Every key attribute, all of type `S`.
    pub string_attributes: &'static [&'static str],
    /// The table's key.
    pub key: KeyDef,
    /// Its global secondary indexes.
    pub indexes: &'static [IndexDef],
}

/// The table `setup` creates; the template's `Table` must match it.
pub const TABLE: TableDef = TableDef {
    billing_mode: "PAY_PER_REQUEST",
    string_attributes: &[PK, SK, GSI_PK, GSI_SK],
    key: KeyDef {
        hash: PK,
        range: SK,
    },
    indexes: &[IndexDef {
        name: GSI_DATASET,
        key: KeyDef {
            hash: GSI_PK,
            range: GSI_SK,
        },
        projection: "ALL",
    }],
};

/// Which of the deployment's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketRole {
    /// Agency uploads (`AGENCYLINK_LANDING_BUCKET`).
    Landing,
    /// Curated data, reports, exports (`AGENCYLINK_BUCKET`).
    Data,
    /// The WORM copy of lineage and the access log (`AGENCYLINK_AUDIT_BUCKET`).
    Audit,
}

/// A bucket as `setup` creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketDef {
    /// Which bucket.
    pub role: BucketRole,
    /// The template's logical id for it.
    pub template_resource: &'static str,
    /// The variable that names it.
    pub var: &'static str,
    /// Versioning on (the ingest deletes every version of a raw extract).
    pub versioned: bool,
    /// Object Lock (WORM) on.
    pub object_lock: bool,
}

/// The buckets `setup` creates; the template's must match.
pub const BUCKETS: [BucketDef; 3] = [
    BucketDef {
        role: BucketRole::Landing,
        template_resource: "LandingBucket",
        var: LANDING_BUCKET_VAR,
        versioned: true,
        object_lock: false,
    },
    BucketDef {
        role: BucketRole::Data,
        template_resource: "DataBucket",
        var: BUCKET_VAR,
        versioned: true,
        object_lock: false,
    },
    BucketDef {
        role: BucketRole::Audit,
        template_resource: "AuditBucket",
        var: AUDIT_BUCKET_VAR,
        versioned: true,
        object_lock: true,
    },
];

/// The definition of a bucket role.
pub fn bucket_def(role: BucketRole) -> BucketDef {
    // BUCKETS has one entry per role, so this always finds one.
    BUCKETS
        .into_iter()
        .find(|b| b.role == role)
        .unwrap_or(BUCKETS[1])
}

/// What `ensure_*` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It was missing and is now there.
    Created,
    /// It was already there and was left as it was.
    Existed,
}

/// Create `bucket` as `def` says unless it exists.
pub async fn ensure_bucket(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    def: BucketDef,
) -> StoreResult<Outcome> {
    let resource = Resource::Bucket {
        name: bucket,
        var: def.var,
    };
    let region = client
        .config()
        .region()
        .map(|r| r.as_ref().to_owned())
        .unwrap_or_else(|| "us-east-1".into());
    let mut req = client
        .create_bucket()
        .bucket(bucket)
        .object_lock_enabled_for_bucket(def.object_lock);
    if region != "us-east-1" {
        req = req.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    match req.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
            }) =>
        {
            return Ok(Outcome::Existed);
        }
        Err(e) => return Err(store_error(resource, "s3:CreateBucket", e)),
    }
    // Object Lock turns versioning on by itself; the others ask for it.
    if def.versioned && !def.object_lock {
        client
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| store_error(resource, "s3:PutBucketVersioning", e))?;
    }
    Ok(Outcome::Created)
}

/// Create the single table as [`TABLE`] says unless it exists, and wait
/// until it is ACTIVE.
pub async fn ensure_table(client: &aws_sdk_dynamodb::Client, table: &str) -> StoreResult<Outcome> {
    let resource = Resource::Table(table);
    let def = TABLE;
    let build = |e| StoreError::backend("building the table definition", e);
    let key = |k: KeyDef| -> StoreResult<Vec<KeySchemaElement>> {
        Ok(vec![
            KeySchemaElement::builder()
                .attribute_name(k.hash)
                .key_type(KeyType::Hash)
                .build()
                .map_err(build)?,
            KeySchemaElement::builder()
                .attribute_name(k.range)
                .key_type(KeyType::Range)
                .build()
                .map_err(build)?,
        ])
    };
    let mut req = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::from(def.billing_mode))
        .set_key_schema(Some(key(def.key)?));
    for name in def.string_attributes {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(*name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)?,
        );
    }
    for index in def.indexes {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .set_key_schema(Some(key(index.key)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(index.projection))
                        .build(),
                )
                .build()
                .map_err(build)?,
        );
    }
    let outcome = match req.send().await {
        Ok(_) => Outcome::Created,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Outcome::Existed
        }
        Err(e) => return Err(store_error(resource, "dynamodb:CreateTable", e)),
    };
    for _ in 0..100 {
        let d = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| store_error(resource, "dynamodb:DescribeTable", e))?;
        let status = d
            .table()
            .and_then(|t| t.table_status())
            .map(|s| s.as_str().to_owned());
        if status.as_deref() == Some("ACTIVE") {
            // A table of that name made by hand may lack the index the
            // dataset queries need: say so now rather than at first query.
            let have: Vec<&str> = d
                .table()
                .map(|t| t.global_secondary_indexes())
                .unwrap_or_default()
                .iter()
                .filter_map(|i| i.index_name())
                .collect();
            if let Some(missing) = def.indexes.iter().find(|i| !have.contains(&i.name)) {
                return Err(StoreError::Backend {
                    message: format!(
                        "{resource} exists without the index \"{}\": it was not made by setup or infra/template.yaml; point {} at another table or add the index",
                        missing.name,
                        crate::error::TABLE_VAR
                    ),
                    source: None,
                });
            }
            return Ok(outcome);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(StoreError::Unavailable {
        message: format!("{resource} did not become ACTIVE within 20 s"),
        source: None,
    })
}

/// Create the key secret with a fresh random key unless a secret of that id
/// exists (an existing one is never read, changed or replaced). Returns the
/// new key's id when it made one.
pub async fn ensure_key_secret(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> StoreResult<(Outcome, Option<String>)> {
    let resource = Resource::Secret(secret_id);
    let unavailable = |message: String| StoreError::Unavailable {
        message,
        source: None,
    };
    match client.describe_secret().secret_id(secret_id).send().await {
        Ok(_) => return Ok((Outcome::Existed, None)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) => {}
        Err(e) => {
            return Err(unavailable(one_line(
                resource,
                "secretsmanager:DescribeSecret",
                &e,
            )));
        }
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    let mut kid_bytes = [0u8; 5];
    getrandom::fill(bytes.as_mut())
        .and_then(|()| getrandom::fill(&mut kid_bytes))
        .map_err(|e| unavailable(format!("OS randomness for a new key: {e}")))?;
    // Same form as `agencylink key init`: "k" and ten hex digits.
    let kid: String = std::iter::once("k".to_owned())
        .chain(kid_bytes.iter().map(|b| format!("{b:02x}")))
        .collect();
    let master = MasterKey::generate_from(*bytes);
    let value = Zeroizing::new(format!(
        "{{\"kid\":\"{kid}\",\"key\":\"{}\"}}",
        master.expose_base64().as_str()
    ));
    match client
        .create_secret()
        .name(secret_id)
        .description("agencylink pseudonymisation key {kid, key}: never replace it")
        .secret_string(value.as_str())
        .send()
        .await
    {
        Ok(_) => Ok((Outcome::Created, Some(kid))),
        // Created between our look and our create: theirs stands.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_exists_exception()) =>
        {
            Ok((Outcome::Existed, None))
        }
        Err(e) => Err(unavailable(one_line(
            resource,
            "secretsmanager:CreateSecret",
            &e,
        ))),
    }
}

#[cfg(test)]
mod tests {
    //! `setup` and `infra/template.yaml` must build the same table and
    //! buckets: the table's keys, attributes, indexes and billing, and each
    //! bucket's versioning and Object Lock.

    use serde_yaml::Value;

    use super::*;

    fn template() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.yaml");
        let text = std::fs::read_to_string(path).expect("read infra/template.yaml");
        serde_yaml::from_str(&text).expect("infra/template.yaml is YAML")
    }

    fn resource<'a>(t: &'a Value, name: &str, kind: &str) -> &'a Value {
        let r = &t["Resources"][name];
        assert_eq!(r["Type"].as_str(), Some(kind), "template resource {name}");
        &r["Properties"]
    }

    /// A KeySchema list as (HASH attribute, RANGE attribute).
    fn key_of(schema: &Value) -> (String, String) {
        let attr = |kind: &str| {
            schema
                .as_sequence()
                .expect("a KeySchema list")
                .iter()
                .find(|k| k["KeyType"].as_str() == Some(kind))
                .and_then(|k| k["AttributeName"].as_str())
                .unwrap_or_else(|| panic!("no {kind} key in {schema:?}"))
                .to_owned()
        };
        (attr("HASH"), attr("RANGE"))
    }

    fn ours(k: KeyDef) -> (String, String) {
        (k.hash.to_owned(), k.range.to_owned())
    }

    #[test]
    fn the_table_setup_creates_is_the_templates() {
        let t = template();
        let p = resource(&t, "Table", "AWS::DynamoDB::Table");
        assert_eq!(p["BillingMode"].as_str(), Some(TABLE.billing_mode));
        assert_eq!(key_of(&p["KeySchema"]), ours(TABLE.key));
        let mut attrs: Vec<(&str, &str)> = p["AttributeDefinitions"]
            .as_sequence()
            .expect("AttributeDefinitions")
            .iter()
            .map(|a| {
                (
                    a["AttributeName"].as_str().expect("a name"),
                    a["AttributeType"].as_str().expect("a type"),
                )
            })
            .collect();
        attrs.sort_unstable();
        let mut defined: Vec<(&str, &str)> =
            TABLE.string_attributes.iter().map(|a| (*a, "S")).collect();
        defined.sort_unstable();
        assert_eq!(attrs, defined, "attribute definitions");
        let indexes = p["GlobalSecondaryIndexes"]
            .as_sequence()
            .expect("GlobalSecondaryIndexes");
        assert_eq!(indexes.len(), TABLE.indexes.len(), "number of indexes");
        for index in TABLE.indexes {
            let theirs = indexes
                .iter()
                .find(|i| i["IndexName"].as_str() == Some(index.name))
                .unwrap_or_else(|| panic!("the template has no index {}", index.name));
            assert_eq!(
                key_of(&theirs["KeySchema"]),
                ours(index.key),
                "index {}",
                index.name
            );
            assert_eq!(
                theirs["Projection"]["ProjectionType"].as_str(),
                Some(index.projection),
                "index {} projection",
                index.name
            );
        }
    }

    #[test]
    fn the_buckets_setup_creates_are_the_templates() {
        let t = template();
        for def in BUCKETS {
            let p = resource(&t, def.template_resource, "AWS::S3::Bucket");
            let versioned = p["VersioningConfiguration"]["Status"].as_str() == Some("Enabled");
            assert_eq!(
                versioned, def.versioned,
                "{} versioning",
                def.template_resource
            );
            let locked = p["ObjectLockEnabled"].as_bool() == Some(true);
            assert_eq!(
                locked, def.object_lock,
                "{} Object Lock",
                def.template_resource
            );
            // The function's variable for this bucket is set from this resource.
            let env = &t["Globals"]["Function"]["Environment"]["Variables"][def.var];
            let tagged = match env {
                Value::Tagged(tag) => tag,
                other => panic!("{} is not a !Ref in Globals: {other:?}", def.var),
            };
            assert_eq!(tagged.tag, "!Ref", "{}", def.var);
            assert_eq!(
                tagged.value.as_str(),
                Some(def.template_resource),
                "{} names {}",
                def.var,
                def.template_resource
            );
        }
        let env = &t["Globals"]["Function"]["Environment"]["Variables"][crate::error::TABLE_VAR];
        assert!(
            matches!(env, Value::Tagged(tag) if tag.value.as_str() == Some("Table")),
            "AGENCYLINK_TABLE names the Table resource: {env:?}"
        );
    }
}
