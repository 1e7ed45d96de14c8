//! Create the buckets and the table when they are missing: for emulators
//! (moto) and scratch accounts. Real deployments use `infra/template.yaml`,
//! which defines the same table (keys, index) and buckets.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};

use agencylink_core::ports::{StoreError, StoreResult};

use crate::dynamo::{GSI_DATASET, GSI_PK, GSI_SK, PK, SK};
use crate::error::store_error;

/// Create `bucket` unless it exists; `object_lock` enables Object Lock (WORM).
pub async fn ensure_bucket(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    object_lock: bool,
) -> StoreResult<()> {
    let region = client
        .config()
        .region()
        .map(|r| r.as_ref().to_owned())
        .unwrap_or_else(|| "us-east-1".into());
    let mut req = client
        .create_bucket()
        .bucket(bucket)
        .object_lock_enabled_for_bucket(object_lock);
    if region != "us-east-1" {
        req = req.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    match req.send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
            }) =>
        {
            Ok(())
        }
        Err(e) => Err(store_error(format!("creating bucket {bucket}"), e)),
    }
}

/// Create the single table (on-demand, with the dataset index) unless it exists.
pub async fn ensure_table(client: &aws_sdk_dynamodb::Client, table: &str) -> StoreResult<()> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| StoreError::backend("building a table definition", e))
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| StoreError::backend("building a table definition", e))
    };
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(GSI_DATASET)
        .key_schema(key(GSI_PK, KeyType::Hash)?)
        .key_schema(key(GSI_SK, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| StoreError::backend("building a table definition", e))?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(PK)?)
        .attribute_definitions(attr(SK)?)
        .attribute_definitions(attr(GSI_PK)?)
        .attribute_definitions(attr(GSI_SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(gsi)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(store_error(format!("creating table {table}"), e)),
    }
    for _ in 0..100 {
        let d = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| store_error(format!("describing table {table}"), e))?;
        let status = d
            .table()
            .and_then(|t| t.table_status())
            .map(|s| s.as_str().to_owned());
        if status.as_deref() == Some("ACTIVE") {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(StoreError::Unavailable {
        message: format!("table {table} did not become ACTIVE"),
        source: None,
    })
}
