//! Configuration, read once from the environment in [`AwsSettings::from_env`].
//!
//! Ours: `AGENCYLINK_BUCKET`, `AGENCYLINK_LANDING_BUCKET`, `AGENCYLINK_AUDIT_BUCKET`,
//! `AGENCYLINK_TABLE`, `AGENCYLINK_KEY_SECRET_ID`, `AGENCYLINK_S3_PATH_STYLE`,
//! `AGENCYLINK_AUDIT_RETENTION_DAYS`, `AGENCYLINK_AGENCIES`,
//! `AGENCYLINK_CHECKPOINT_KEY_ID`. The SDK's own
//! (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials, …) are read by `aws-config`
//! when [`AwsSettings::sdk_config`] is awaited, also once.

use aws_config::BehaviorVersion;

/// The largest upload by default: 512 MiB, far above a year's extract of
/// any dataset here, far below S3's 5 GB POST limit. The API signs no
/// larger upload and the ingest function refuses a larger landing object.
pub const DEFAULT_UPLOAD_MAX_BYTES: u64 = 512 << 20;

/// `AGENCYLINK_UPLOAD_MAX_BYTES` (1 to 5,000,000,000), or
/// [`DEFAULT_UPLOAD_MAX_BYTES`] when it is unset or blank.
pub fn upload_max_bytes_from_env() -> Result<u64, ConfigError> {
    match std::env::var("AGENCYLINK_UPLOAD_MAX_BYTES") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=5_000_000_000).contains(n))
            .ok_or(ConfigError::Invalid {
                name: "AGENCYLINK_UPLOAD_MAX_BYTES",
                why: "expected 1 to 5000000000 bytes".into(),
            }),
        _ => Ok(DEFAULT_UPLOAD_MAX_BYTES),
    }
}

/// A setting that is missing or malformed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("{name}: {why}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong (never the value of a secret).
        why: String,
    },
}

/// Everything the AWS adapters and functions need to know about a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// Curated data, reports and exports (`AGENCYLINK_BUCKET`).
    pub data_bucket: String,
    /// Agency uploads under `landing/` (`AGENCYLINK_LANDING_BUCKET`, default the data bucket).
    pub landing_bucket: String,
    /// The Object Lock (WORM) bucket lineage events are copied to
    /// (`AGENCYLINK_AUDIT_BUCKET`, optional).
    pub audit_bucket: Option<String>,
    /// Days each archived lineage event is locked for
    /// (`AGENCYLINK_AUDIT_RETENTION_DAYS`, default 2557, seven years).
    pub audit_retention_days: u32,
    /// The single DynamoDB table (`AGENCYLINK_TABLE`).
    pub table: String,
    /// The Secrets Manager secret holding `{"kid","key"}` (`AGENCYLINK_KEY_SECRET_ID`).
    pub key_secret_id: Option<String>,
    /// Path-style S3 addressing (`AGENCYLINK_S3_PATH_STYLE`; default on when
    /// `AWS_ENDPOINT_URL` is set, as emulators need it).
    pub force_path_style: bool,
    /// Which datasets each agency may upload (`AGENCYLINK_AGENCIES`).
    pub agencies: AgencyPolicy,
    /// The asymmetric KMS key (`ECC_NIST_P256`, `SIGN_VERIFY`) that signs
    /// checkpoints of the lineage log and the access log
    /// (`AGENCYLINK_CHECKPOINT_KEY_ID`: key id, ARN or alias; optional).
    pub checkpoint_key_id: Option<String>,
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    var(name).ok_or(ConfigError::Missing(name))
}

impl AwsSettings {
    /// Read our variables. Call once at start.
    pub fn from_env() -> Result<Self, ConfigError> {
        let data_bucket = required("AGENCYLINK_BUCKET")?;
        let landing_bucket =
            var("AGENCYLINK_LANDING_BUCKET").unwrap_or_else(|| data_bucket.clone());
        let force_path_style = match var("AGENCYLINK_S3_PATH_STYLE").as_deref() {
            None => var("AWS_ENDPOINT_URL").is_some(),
            Some("1" | "true" | "yes") => true,
            Some("0" | "false" | "no") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "AGENCYLINK_S3_PATH_STYLE",
                    why: format!("expected true or false, got `{other}`"),
                });
            }
        };
        let audit_retention_days = match var("AGENCYLINK_AUDIT_RETENTION_DAYS") {
            None => 2557,
            Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                name: "AGENCYLINK_AUDIT_RETENTION_DAYS",
                why: format!("expected a number of days, got `{v}`"),
            })?,
        };
        let agencies = match var("AGENCYLINK_AGENCIES") {
            None => AgencyPolicy::default(),
            Some(text) => AgencyPolicy::parse(&text).map_err(|why| ConfigError::Invalid {
                name: "AGENCYLINK_AGENCIES",
                why,
            })?,
        };
        Ok(AwsSettings {
            data_bucket,
            landing_bucket,
            audit_bucket: var("AGENCYLINK_AUDIT_BUCKET"),
            audit_retention_days,
            table: required("AGENCYLINK_TABLE")?,
            key_secret_id: var("AGENCYLINK_KEY_SECRET_ID"),
            force_path_style,
            agencies,
            checkpoint_key_id: var("AGENCYLINK_CHECKPOINT_KEY_ID"),
        })
    }

    /// Load the SDK's configuration (region, endpoint, credentials) from the
    /// standard AWS variables and files.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest()).load().await
    }
}

// The policy is the core's, so the embedded store enforces the same one.
pub use agencylink_core::policy::{AgencyPolicy, PolicyRefusal, valid_agency};
