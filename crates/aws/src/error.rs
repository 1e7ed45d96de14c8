//! SDK errors into [`StoreError`]: throttling, 5xx, timeouts and dispatch
//! failures are `Unavailable` (retryable); everything else is `Backend`.
//!
//! The message is one line an operator can act on: which resource (and the
//! variable that names it) and what to do. The SDK's own error, whose
//! `Debug` is a multi-line dump of the raw response, stays behind as the
//! source, wrapped in [`SdkDetail`] so a caller printing the chain can stop
//! before it and a debug log can still show it.

use std::fmt;

use agencylink_core::ports::StoreError;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Error codes that mean "slow down and try again".
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionInProgressException",
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
];

/// Error codes that mean the resource is not there.
const NOT_FOUND: &[&str] = &["ResourceNotFoundException", "NoSuchBucket"];

/// Error codes that mean the credentials may not do this (or are not valid).
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AllAccessDisabled",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
];

/// The variables that name each resource (see `config.rs`).
pub(crate) const TABLE_VAR: &str = "AGENCYLINK_TABLE";
/// The data bucket's variable.
pub(crate) const BUCKET_VAR: &str = "AGENCYLINK_BUCKET";
/// The landing bucket's variable (defaults to the data bucket).
pub(crate) const LANDING_BUCKET_VAR: &str = "AGENCYLINK_LANDING_BUCKET";
/// The audit (WORM) bucket's variable.
pub(crate) const AUDIT_BUCKET_VAR: &str = "AGENCYLINK_AUDIT_BUCKET";
/// The key secret's variable.
pub(crate) const KEY_SECRET_VAR: &str = "AGENCYLINK_KEY_SECRET_ID";

/// What to do about a resource that does not exist.
const CREATE_IT: &str = "create it with `agencylink --backend aws setup` (emulators, scratch accounts) or deploy infra/template.yaml";

/// A resource of the deployment, named as an operator configures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// The DynamoDB table.
    Table(&'a str),
    /// An S3 bucket and the variable that names it.
    Bucket {
        /// The bucket's name.
        name: &'a str,
        /// The variable that configures it.
        var: &'static str,
    },
    /// The key secret in Secrets Manager.
    Secret(&'a str),
}

impl Resource<'_> {
    /// The advice for a resource that does not exist.
    pub(crate) fn missing(&self) -> String {
        match self {
            Resource::Secret(_) => format!(
                "{self} does not exist: create it with `agencylink --backend aws setup` (emulators, scratch accounts) or as infra/README.md describes"
            ),
            _ => format!("{self} does not exist: {CREATE_IT}"),
        }
    }
}

impl fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Table(name) => write!(f, "DynamoDB table \"{name}\" ({TABLE_VAR})"),
            Resource::Bucket { name, var } => write!(f, "S3 bucket \"{name}\" ({var})"),
            Resource::Secret(id) => {
                write!(f, "Secrets Manager secret \"{id}\" ({KEY_SECRET_VAR})")
            }
        }
    }
}

/// The SDK's error, kept as the source of a [`StoreError`] for debug logs.
/// `Display` is the SDK's full context (several lines when the raw
/// response is in it): a caller printing a chain for people stops before
/// this (see [`is_sdk_detail`]).
#[derive(Debug)]
pub struct SdkDetail(Box<dyn std::error::Error + Send + Sync>);

impl fmt::Display for SdkDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", DisplayErrorContext(&*self.0))
    }
}

impl std::error::Error for SdkDetail {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Whether `err` is the SDK detail behind one of this crate's one-line
/// messages (the CLI prints the chain up to it).
pub fn is_sdk_detail(err: &(dyn std::error::Error + 'static)) -> bool {
    err.downcast_ref::<SdkDetail>().is_some()
}

/// The error code and HTTP status of an SDK error, when it has them.
pub(crate) fn code_and_status<E: ProvideErrorMetadata>(
    err: &SdkError<E, HttpResponse>,
) -> (Option<String>, Option<u16>) {
    (
        err.code().map(str::to_owned),
        err.raw_response().map(|r| r.status().as_u16()),
    )
}

/// Whether an SDK error is worth retrying.
pub(crate) fn is_transient<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    if matches!(
        err,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) {
        return true;
    }
    let (code, status) = code_and_status(err);
    status.is_some_and(|s| s >= 500 || s == 429)
        || code.is_some_and(|c| THROTTLING.contains(&c.as_str()))
}

/// One line saying what went wrong doing `action` on `resource` and what to do.
pub(crate) fn one_line<E: ProvideErrorMetadata>(
    resource: Resource<'_>,
    action: &str,
    err: &SdkError<E, HttpResponse>,
) -> String {
    let (code, status) = code_and_status(err);
    let code = code.as_deref();
    if matches!(
        err,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
    ) {
        return format!(
            "cannot reach {resource} ({action}): check AWS_ENDPOINT_URL (unset: the region's public endpoint), AWS_REGION and the network"
        );
    }
    if code.is_some_and(|c| NOT_FOUND.contains(&c)) || (code.is_none() && status == Some(404)) {
        return resource.missing();
    }
    if code.is_some_and(|c| DENIED.contains(&c)) || (code.is_none() && status == Some(403)) {
        return format!(
            "access denied: {action} on {resource} ({}): check the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID) and that their role is allowed this action (infra/README.md lists each role's permissions)",
            code.unwrap_or("403")
        );
    }
    // Anything else: the service's code and message, flattened to one line.
    let detail = match (code, err.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_owned(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => match err {
            SdkError::ConstructionFailure(_) => "the request could not be built".to_owned(),
            SdkError::ResponseError(_) => "the response could not be read".to_owned(),
            _ => status.map_or_else(|| "request failed".to_owned(), |s| format!("HTTP {s}")),
        },
    };
    let detail = detail.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("{action} on {resource} failed: {detail}")
}

/// A conditional write's outcome: `Ok(true)` written, `Ok(false)` its
/// condition did not hold (`ConditionalCheckFailedException`), else the
/// write's error as [`store_error`] words it.
pub(crate) fn conditional<T, E>(
    sent: Result<T, SdkError<E, HttpResponse>>,
    resource: Resource<'_>,
    action: impl AsRef<str>,
) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match sent {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(store_error(resource, action, e)),
    }
}

/// Convert an SDK error from `action` on `resource`: a one-line message,
/// the SDK error kept as the source (in [`SdkDetail`]).
pub(crate) fn store_error<E>(
    resource: Resource<'_>,
    action: impl AsRef<str>,
    err: SdkError<E, HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = one_line(resource, action.as_ref(), &err);
    let transient = is_transient(&err);
    let source: Option<Box<dyn std::error::Error + Send + Sync>> =
        Some(Box::new(SdkDetail(Box::new(err))));
    if transient {
        StoreError::Unavailable { message, source }
    } else {
        StoreError::Backend { message, source }
    }
}

#[cfg(test)]
mod tests {
    //! The mapping of SDK errors moto cannot produce (it enforces no IAM by
    //! default): access denied, and a service message spread over lines.

    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::query::QueryError;
    use aws_sdk_s3::primitives::SdkBody;

    use super::*;

    fn service_error(status: u16, code: &str, message: &str) -> SdkError<QueryError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        let raw = HttpResponse::new(
            status.try_into().expect("an HTTP status"),
            SdkBody::from("{}"),
        );
        SdkError::service_error(QueryError::generic(meta), raw)
    }

    #[test]
    fn access_denied_names_the_action_the_resource_and_its_variable() {
        let err = store_error(
            Resource::Table("demo"),
            "dynamodb:Query",
            service_error(
                400,
                "AccessDeniedException",
                "User: arn:… is not authorized",
            ),
        );
        let text = err.to_string();
        assert_eq!(
            text,
            "storage backend error: access denied: dynamodb:Query on DynamoDB table \"demo\" (AGENCYLINK_TABLE) (AccessDeniedException): check the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID) and that their role is allowed this action (infra/README.md lists each role's permissions)"
        );
        assert!(!err.is_retryable());
        // The SDK error is still there for a debug log.
        let source = std::error::Error::source(&err).expect("the SDK error as source");
        assert!(is_sdk_detail(source));
        assert!(source.to_string().contains("not authorized"));
    }

    #[test]
    fn any_other_service_error_is_its_code_and_message_on_one_line() {
        let err = store_error(
            Resource::Bucket {
                name: "demo-landing",
                var: LANDING_BUCKET_VAR,
            },
            "s3:PutObject landing/a/b/x.csv",
            service_error(400, "InvalidArgument", "bad\n  header\r\nvalue"),
        );
        assert_eq!(
            err.to_string(),
            "storage backend error: s3:PutObject landing/a/b/x.csv on S3 bucket \"demo-landing\" (AGENCYLINK_LANDING_BUCKET) failed: InvalidArgument: bad header value"
        );
        let throttled = store_error(
            Resource::Table("demo"),
            "dynamodb:Query",
            service_error(400, "ThrottlingException", "slow down"),
        );
        assert!(throttled.is_retryable(), "throttling stays retryable");
    }
}
