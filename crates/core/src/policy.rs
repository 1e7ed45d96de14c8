//! Which agencies may upload which datasets: the partnership's upload
//! policy, enforced by the embedded store (`DATA_DIR/agencies.json`) and by
//! AWS (`AGENCYLINK_AGENCIES`) alike.

use std::collections::{BTreeMap, BTreeSet};

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

impl AgencyPolicy {
    /// The JSON form [`parse`](Self::parse) reads, pretty-printed.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.allowed).unwrap_or_else(|_| "{}".into());
        text.push('\n');
        text
    }
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
