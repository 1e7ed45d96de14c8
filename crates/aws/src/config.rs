//! Configuration, read once from the environment in [`AwsSettings::from_env`].
//!
//! Ours: `AGENCYLINK_BUCKET`, `AGENCYLINK_LANDING_BUCKET`, `AGENCYLINK_AUDIT_BUCKET`,
//! `AGENCYLINK_TABLE`, `AGENCYLINK_KEY_SECRET_ID`, `AGENCYLINK_S3_PATH_STYLE`,
//! `AGENCYLINK_AUDIT_RETENTION_DAYS`, `AGENCYLINK_AGENCIES`. The SDK's own
//! (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials, …) are read by `aws-config`
//! when [`AwsSettings::sdk_config`] is awaited, also once.

use std::collections::{BTreeMap, BTreeSet};

use aws_config::BehaviorVersion;

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
        })
    }

    /// Load the SDK's configuration (region, endpoint, credentials) from the
    /// standard AWS variables and files.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest()).load().await
    }
}

/// Which datasets each agency may upload: a JSON object
/// `{"rochdale-council": ["council.cin_referral", …], "gmp-police": ["*"]}`
/// (`"*"` allows every dataset). An agency that is not listed may upload nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgencyPolicy {
    allowed: BTreeMap<String, BTreeSet<String>>,
}

/// Why an upload is refused by the policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyRefusal {
    /// The agency is not one of the partnership's.
    #[error("agency `{0}` is not in the configured list of agencies")]
    UnknownAgency(String),
    /// The agency may not upload this dataset.
    #[error("agency `{agency}` may not upload dataset `{dataset}`")]
    DatasetNotAllowed {
        /// The agency.
        agency: String,
        /// The dataset.
        dataset: String,
    },
}

impl AgencyPolicy {
    /// Parse the JSON form.
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: BTreeMap<String, Vec<String>> = serde_json::from_str(text)
            .map_err(|e| format!("expected {{\"agency\": [\"dataset\", …]}}: {e}"))?;
        let mut allowed = BTreeMap::new();
        for (agency, datasets) in raw {
            if !valid_agency(&agency) {
                return Err(format!(
                    "agency id `{agency}` is not 1 to 64 characters of a-z, 0-9 and -"
                ));
            }
            allowed.insert(agency, datasets.into_iter().collect());
        }
        Ok(AgencyPolicy { allowed })
    }

    /// A policy from pairs (tests, tools).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [&'a str])>) -> Self {
        AgencyPolicy {
            allowed: pairs
                .into_iter()
                .map(|(a, ds)| (a.to_owned(), ds.iter().map(|d| (*d).to_owned()).collect()))
                .collect(),
        }
    }

    /// Whether `agency` may upload `dataset`.
    pub fn check(&self, agency: &str, dataset: &str) -> Result<(), PolicyRefusal> {
        let Some(datasets) = self.allowed.get(agency) else {
            return Err(PolicyRefusal::UnknownAgency(agency.to_owned()));
        };
        if datasets.contains("*") || datasets.contains(dataset) {
            Ok(())
        } else {
            Err(PolicyRefusal::DatasetNotAllowed {
                agency: agency.to_owned(),
                dataset: dataset.to_owned(),
            })
        }
    }

    /// Whether no agency is configured.
    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }
}

/// Agency ids are `[a-z0-9-]{1,64}`.
pub fn valid_agency(agency: &str) -> bool {
    !agency.is_empty()
        && agency.len() <= 64
        && agency
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_allows_listed_datasets_and_wildcards() {
        let p = AgencyPolicy::parse(
            r#"{"rochdale-council": ["council.cin_referral"], "gmp-police": ["*"]}"#,
        )
        .expect("parse");
        assert_eq!(p.check("rochdale-council", "council.cin_referral"), Ok(()));
        assert!(matches!(
            p.check("rochdale-council", "police.cse_crime"),
            Err(PolicyRefusal::DatasetNotAllowed { .. })
        ));
        assert_eq!(p.check("gmp-police", "police.cse_crime"), Ok(()));
        assert!(matches!(
            p.check("unknown", "x"),
            Err(PolicyRefusal::UnknownAgency(_))
        ));
        assert!(AgencyPolicy::parse(r#"{"Bad Agency": []}"#).is_err());
        assert!(AgencyPolicy::parse("[]").is_err());
    }
}
