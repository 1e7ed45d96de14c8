//! SDK errors into [`StoreError`]: throttling, 5xx, timeouts and dispatch
//! failures are `Unavailable` (retryable); everything else is `Backend`.

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

/// Convert an SDK error, keeping it as the source.
pub(crate) fn store_error<E>(what: impl Into<String>, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = format!("{}: {}", what.into(), DisplayErrorContext(&err));
    if is_transient(&err) {
        StoreError::Unavailable {
            message,
            source: Some(Box::new(err)),
        }
    } else {
        StoreError::Backend {
            message,
            source: Some(Box::new(err)),
        }
    }
}
