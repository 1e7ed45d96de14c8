//! Wiring only: settings, clients and the schema catalog once per cold
//! start, then the router in `lib.rs` for every request.

use std::sync::Arc;

use agencylink_aws::{AwsBackend, AwsSettings};
use agencylink_core::schema::Catalog;
use agencylink_fn_api::{Api, handle};
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let settings = AwsSettings::from_env()?;
    let backend = AwsBackend::connect(settings).await;
    let api = Arc::new(Api::new(backend, Catalog::embedded()?));
    run(service_fn(move |req| handle(api.clone(), req))).await
}
