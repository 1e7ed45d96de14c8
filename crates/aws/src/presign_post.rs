//! Presigned S3 POST uploads (browser-based uploads, SigV4): the AWS SDK
//! for Rust presigns single requests (`GET`, `PUT`) but builds no POST
//! policies, and only a POST policy can limit an upload's size
//! (`content-length-range`), so the policy is built and signed here.
//!
//! The algorithm (S3 API reference, "Authenticating Requests in
//! Browser-Based Uploads Using POST (AWS Signature Version 4)"): the policy
//! is a JSON document of an expiration and conditions; its base64 is the
//! string to sign; the signature is the hex HMAC-SHA256 of that string under
//! the SigV4 signing key derived from the secret key, the date, the region
//! and `s3`. The form then carries every field the conditions name, the
//! policy and the signature, and the file last. S3 refuses a form whose
//! fields break any condition, so an exact `key`, SSE-KMS with one pinned
//! key id and a size range hold whatever the uploader sends.

use std::collections::BTreeMap;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;

/// The credentials a POST is signed with (the signer's own: S3 acts, and
/// calls KMS, as the principal that signed).
#[derive(Clone)]
pub struct SigningCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of temporary credentials (a Lambda role's).
    pub session_token: Option<String>,
}

impl std::fmt::Debug for SigningCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret or the token, not even in a debug log.
        f.debug_struct("SigningCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// What one upload may be.
#[derive(Debug, Clone)]
pub struct PostPolicy<'a> {
    /// The bucket URL the form is posted to (`https://bucket.s3.region.amazonaws.com/`).
    pub url: String,
    /// The bucket.
    pub bucket: &'a str,
    /// The one object key the upload may create.
    pub key: &'a str,
    /// The largest body in bytes (the smallest is 1: an empty extract is
    /// refused before it costs an ingest).
    pub max_bytes: u64,
    /// The KMS key every upload is encrypted with (`aws:kms`, pinned).
    pub kms_key_id: &'a str,
    /// The region of the bucket.
    pub region: &'a str,
    /// Now, seconds since the Unix epoch (the caller reads the clock).
    pub now: u64,
    /// How long the form stays valid, in seconds.
    pub expires_in: u64,
}

/// A signed form: POST `fields` (in this order) then the file as `file`,
/// as `multipart/form-data`, to `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresignedPost {
    /// Where to POST.
    pub url: String,
    /// The form fields, in order; the file goes after them.
    pub fields: Vec<(String, String)>,
    /// When the policy expires (RFC 3339).
    pub expires: String,
    /// The largest file accepted, in bytes.
    pub max_bytes: u64,
}

impl PresignedPost {
    /// The fields as a JSON object (order kept: serde_json preserves it).
    pub fn fields_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        for (k, v) in &self.fields {
            map.insert(k.clone(), Value::String(v.clone()));
        }
        Value::Object(map)
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SigV4 signing key for `date` (`YYYYMMDD`), `region` and `service`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// `(YYYYMMDD, YYYYMMDDTHHMMSSZ, YYYY-MM-DDTHH:MM:SS.000Z)` for `secs`.
fn stamps(secs: u64) -> (String, String, String) {
    let rfc = agencylink_core::lineage::rfc3339_utc(secs); // YYYY-MM-DDTHH:MM:SSZ
    let date = rfc[..10].replace('-', "");
    let time = rfc[11..19].replace(':', "");
    (
        date.clone(),
        format!("{date}T{time}Z"),
        format!("{}.000Z", &rfc[..19]),
    )
}

/// Build and sign the policy for one upload.
pub fn presign_post(policy: &PostPolicy<'_>, creds: &SigningCredentials) -> PresignedPost {
    let (date, amz_date, _) = stamps(policy.now);
    let (_, _, expiration) = stamps(policy.now + policy.expires_in);
    let credential = format!(
        "{}/{date}/{}/s3/aws4_request",
        creds.access_key_id, policy.region
    );
    let mut fields: Vec<(String, String)> = vec![
        ("key".into(), policy.key.into()),
        ("x-amz-server-side-encryption".into(), "aws:kms".into()),
        (
            "x-amz-server-side-encryption-aws-kms-key-id".into(),
            policy.kms_key_id.into(),
        ),
        ("x-amz-algorithm".into(), "AWS4-HMAC-SHA256".into()),
        ("x-amz-credential".into(), credential),
        ("x-amz-date".into(), amz_date),
    ];
    if let Some(token) = &creds.session_token {
        // Temporary credentials: S3 needs the token, and the policy must
        // name it or the form is refused.
        fields.push(("x-amz-security-token".into(), token.clone()));
    }
    let mut conditions = vec![json!({ "bucket": policy.bucket })];
    // Exact matches only (`{"field": value}` is `eq`): no `starts-with`, so
    // the form opens one key with one encryption and nothing else.
    for (k, v) in &fields {
        conditions.push(json!({ k.as_str(): v }));
    }
    conditions.push(json!(["content-length-range", 1, policy.max_bytes]));
    let document = json!({ "expiration": expiration, "conditions": conditions });
    let encoded = base64::engine::general_purpose::STANDARD.encode(document.to_string());
    let key = signing_key(&creds.secret_access_key, &date, policy.region, "s3");
    let signature = hex(&hmac(&key, encoded.as_bytes()));
    fields.push(("policy".into(), encoded));
    fields.push(("x-amz-signature".into(), signature));
    PresignedPost {
        url: policy.url.clone(),
        fields,
        expires: agencylink_core::lineage::rfc3339_utc(policy.now + policy.expires_in),
        max_bytes: policy.max_bytes,
    }
}

/// The policy document inside a form (tests and debugging).
pub fn decode_policy(post: &PresignedPost) -> Option<Value> {
    let fields: BTreeMap<&str, &str> = post
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(fields.get("policy")?)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_key_matches_the_sigv4_documentation() {
        // "Examples of how to derive a signing key for Signature Version 4"
        // (AWS General Reference): this secret, 20120215, us-east-1, iam.
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex(&key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn the_policy_pins_key_encryption_size_and_token() {
        let creds = SigningCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: Some("tok".into()),
        };
        let post = presign_post(
            &PostPolicy {
                url: "https://b.s3.eu-west-2.amazonaws.com/".into(),
                bucket: "b",
                key: "landing/a/d/u.csv",
                max_bytes: 1000,
                kms_key_id: "arn:aws:kms:eu-west-2:1:key/k",
                region: "eu-west-2",
                now: 1_796_294_400, // 2026-12-03T10:40:00Z
                expires_in: 300,
            },
            &creds,
        );
        let doc = decode_policy(&post).expect("a policy");
        assert_eq!(doc["expiration"], "2026-12-03T10:45:00.000Z");
        let conds = doc["conditions"].as_array().expect("conditions");
        for want in [
            json!({"bucket": "b"}),
            json!({"key": "landing/a/d/u.csv"}),
            json!({"x-amz-server-side-encryption": "aws:kms"}),
            json!({"x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:eu-west-2:1:key/k"}),
            json!({"x-amz-security-token": "tok"}),
            json!({"x-amz-credential": "AKIDEXAMPLE/20261203/eu-west-2/s3/aws4_request"}),
            json!({"x-amz-date": "20261203T104000Z"}),
            json!(["content-length-range", 1, 1000]),
        ] {
            assert!(conds.contains(&want), "{want} missing from {doc}");
        }
        // The signature is over the base64 policy with the derived key.
        let f: BTreeMap<_, _> = post.fields.iter().cloned().collect();
        let key = signing_key("secret", "20261203", "eu-west-2", "s3");
        assert_eq!(
            f["x-amz-signature"],
            hex(&hmac(&key, f["policy"].as_bytes()))
        );
        assert_eq!(
            post.fields.last().map(|f| f.0.as_str()),
            Some("x-amz-signature")
        );
        assert!(!format!("{creds:?}").contains("secret"));
    }
}
