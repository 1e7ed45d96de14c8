//! AWS adapters for agencylink: S3 ([`S3ObjectStore`], [`S3Archive`]),
//! DynamoDB ([`DynamoStore`], [`DynamoChainLog`]) and Secrets Manager
//! ([`SecretsKeyProvider`]), behind the core's synchronous ports.
//!
//! The ports are synchronous and the SDK is async: each adapter holds a
//! [`tokio::runtime::Handle`] of a **multi-threaded** runtime and blocks on
//! it. Call the adapters from a thread that is not a runtime worker (the
//! Lambda handlers run core work in `spawn_blocking`; the CLI calls from its
//! main thread); from inside a multi-threaded runtime they fall back to
//! `block_in_place`.
//!
//! Configuration is read once, in [`AwsSettings::from_env`]; the table design
//! is in this crate's README.

use std::future::Future;

use tokio::runtime::Handle;

pub mod audit;
mod config;
pub mod dynamo;
mod error;
pub mod key_rotation;
pub mod kms;
pub mod pipeline;
pub mod presign_post;
pub mod provision;
mod s3;
pub mod secrets;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod uploads;

pub use config::{
    AgencyPolicy, AwsSettings, ConfigError, DEFAULT_UPLOAD_MAX_BYTES, PolicyRefusal,
    upload_max_bytes_from_env, valid_agency,
};
pub use dynamo::{Backoff, DynamoChainLog, DynamoStore};
pub use error::{Resource, SdkDetail, is_sdk_detail};
pub use s3::{DEFAULT_PART_SIZE, S3Archive, S3ObjectStore};
pub use secrets::SecretsKeyProvider;

/// Re-exported SDK crates, so callers and tests build clients with the same versions.
pub mod sdk {
    pub use aws_config;
    pub use aws_sdk_dynamodb as dynamodb;
    pub use aws_sdk_kms as kms;
    pub use aws_sdk_s3 as s3;
    pub use aws_sdk_secretsmanager as secretsmanager;
}

/// Run `f` to completion on `handle` from synchronous code.
pub(crate) fn block_on<F: Future>(handle: &Handle, f: F) -> F::Output {
    if Handle::try_current().is_ok() {
        tokio::task::block_in_place(|| handle.block_on(f))
    } else {
        handle.block_on(f)
    }
}

/// Every AWS adapter of one deployment, built once from [`AwsSettings`].
#[derive(Debug)]
pub struct AwsBackend {
    /// The settings it was built from.
    pub settings: AwsSettings,
    /// Landing uploads, curated data, reports, exports.
    pub objects: S3ObjectStore,
    /// Records, people, indexes.
    pub records: DynamoStore,
    /// Lineage (indexed by upload).
    pub lineage: DynamoChainLog,
    /// The access log (indexed by analyst).
    pub access_log: DynamoChainLog,
    /// The WORM copy of lineage and the access log, when configured.
    pub archive: Option<S3Archive>,
    /// The key, when a secret is configured.
    pub keys: Option<SecretsKeyProvider>,
    /// The checkpoint signing key (KMS), when configured; also attached
    /// to `archive`, which then checkpoints every event it archives.
    pub checkpoint_key: Option<kms::KmsCheckpointKey>,
    handle: Handle,
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    secrets: aws_sdk_secretsmanager::Client,
}

impl AwsBackend {
    /// Build the clients (reads the standard AWS variables once) and adapters
    /// on the current (multi-threaded) runtime.
    pub async fn connect(settings: AwsSettings) -> Self {
        let sdk = settings.sdk_config().await;
        Self::from_sdk_config(settings, &sdk, Handle::current())
    }

    /// Build the adapters from an SDK configuration.
    pub fn from_sdk_config(
        settings: AwsSettings,
        sdk: &aws_config::SdkConfig,
        handle: Handle,
    ) -> Self {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(settings.force_path_style)
                .build(),
        );
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(dynamo::client_config(sdk).build());
        let secrets = aws_sdk_secretsmanager::Client::new(sdk);
        let kms = aws_sdk_kms::Client::new(sdk);
        let mut backend = Self::from_clients(settings, s3, dynamodb, secrets, handle).with_kms(kms);
        backend.objects = backend.objects.with_credentials(sdk.credentials_provider());
        backend
    }

    /// Sign checkpoints with the configured checkpoint key through `kms`
    /// (nothing changes when no key is configured).
    pub fn with_kms(mut self, kms: aws_sdk_kms::Client) -> Self {
        if let Some(id) = &self.settings.checkpoint_key_id {
            let key = kms::KmsCheckpointKey::new(kms, self.handle.clone(), id);
            self.archive = self.archive.map(|a| a.with_checkpoint_key(key.clone()));
            self.checkpoint_key = Some(key);
        }
        self
    }

    /// Build the adapters from clients (tests add interceptors this way).
    pub fn from_clients(
        settings: AwsSettings,
        s3: aws_sdk_s3::Client,
        dynamodb: aws_sdk_dynamodb::Client,
        secrets: aws_sdk_secretsmanager::Client,
        handle: Handle,
    ) -> Self {
        let objects = S3ObjectStore::new(
            s3.clone(),
            handle.clone(),
            &settings.data_bucket,
            &settings.landing_bucket,
        );
        let records = DynamoStore::new(dynamodb.clone(), handle.clone(), &settings.table);
        let archive = settings
            .audit_bucket
            .as_deref()
            .map(|b| S3Archive::new(s3.clone(), handle.clone(), b, settings.audit_retention_days));
        let keys = settings
            .key_secret_id
            .as_deref()
            .map(|id| SecretsKeyProvider::new(secrets.clone(), handle.clone(), id));
        AwsBackend {
            checkpoint_key: None,
            handle,
            lineage: records.lineage(),
            access_log: records.access_log(),
            objects,
            records,
            archive,
            keys,
            s3,
            dynamodb,
            secrets,
            settings,
        }
    }

    /// The API's upload tickets (in the table).
    pub fn uploads(&self) -> uploads::UploadTickets {
        uploads::UploadTickets::new(
            self.dynamodb.clone(),
            self.handle.clone(),
            &self.settings.table,
        )
    }

    /// The S3 client.
    pub fn s3(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }

    /// The DynamoDB client.
    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.dynamodb
    }

    /// Create the buckets and table if missing (emulators, scratch accounts).
    pub async fn provision(&self) -> agencylink_core::ports::StoreResult<()> {
        self.setup(false).await.map(|_| ())
    }

    /// Create whatever of the deployment is missing: the buckets, the table
    /// with its index, and (with `key_secret`) the key secret with a fresh
    /// key. What exists is left alone; the report says which was which.
    pub async fn setup(
        &self,
        key_secret: bool,
    ) -> agencylink_core::ports::StoreResult<Vec<SetupStep>> {
        use provision::{BucketRole, bucket_def};
        let st = &self.settings;
        let mut steps = Vec::new();
        let mut buckets = vec![(BucketRole::Data, st.data_bucket.as_str())];
        if st.landing_bucket != st.data_bucket {
            buckets.push((BucketRole::Landing, st.landing_bucket.as_str()));
        }
        if let Some(audit) = &st.audit_bucket {
            buckets.push((BucketRole::Audit, audit.as_str()));
        }
        for (role, name) in buckets {
            let def = bucket_def(role);
            let outcome = provision::ensure_bucket(&self.s3, name, def).await?;
            steps.push(SetupStep {
                resource: "bucket",
                name: name.to_owned(),
                variable: def.var,
                outcome,
                key_id: None,
            });
        }
        let outcome = provision::ensure_table(&self.dynamodb, &st.table).await?;
        steps.push(SetupStep {
            resource: "table",
            name: st.table.clone(),
            variable: error::TABLE_VAR,
            outcome,
            key_id: None,
        });
        for index in provision::TABLE.indexes {
            steps.push(SetupStep {
                resource: "index",
                name: format!("{}/{}", st.table, index.name),
                variable: error::TABLE_VAR,
                outcome,
                key_id: None,
            });
        }
        if let (true, Some(id)) = (key_secret, &st.key_secret_id) {
            let (outcome, key_id) = provision::ensure_key_secret(&self.secrets, id).await?;
            steps.push(SetupStep {
                resource: "secret",
                name: id.clone(),
                variable: error::KEY_SECRET_VAR,
                outcome,
                key_id,
            });
        }
        Ok(steps)
    }
}

/// One thing [`AwsBackend::setup`] created or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupStep {
    /// `bucket`, `table`, `index` or `secret`.
    pub resource: &'static str,
    /// Its name (`table/index` for an index).
    pub name: String,
    /// The variable that names it.
    pub variable: &'static str,
    /// Created now, or there already.
    pub outcome: provision::Outcome,
    /// The id of a key it generated (never the key).
    pub key_id: Option<String>,
}

/// RFC 3339 UTC time now, to the second (the core reads no clock).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    agencylink_core::lineage::rfc3339_utc(secs)
}
