//! Wiring only: settings, clients and the schema catalog once per cold
//! start, then the router in `lib.rs` for every request.

use std::sync::Arc;

use agencylink_aws::{AwsBackend, AwsSettings};
use agencylink_core::schema::Catalog;
use agencylink_fn_api::{Api, UploadConfig, handle, sign_in_from};
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let settings = AwsSettings::from_env()?;
    let mut backend = AwsBackend::connect(settings).await;
    // A review decision takes the merge lease: wait for it well inside API
    // Gateway's 29 s, then answer 503 (try again) rather than time out.
    backend.records = backend
        .records
        .clone()
        .with_lease_wait(std::time::Duration::from_secs(20));
    let mut api = Api::new(backend, Catalog::embedded()?);
    // Only the upload function is given a key to sign uploads with.
    if let Some(uploads) = UploadConfig::from_env()? {
        api = api.with_uploads(uploads);
    }
    // A half-configured hosted UI stops the cold start: better no API than
    // a workbench whose sign-in fails for everyone in a way nobody sees.
    // With it, the page may fetch the data bucket's presigned links.
    api = api.with_sign_in(sign_in_from(|name| std::env::var(name).ok())?)?;
    let api = Arc::new(api);
    run(service_fn(move |req| handle(api.clone(), req))).await
}
