//! Wiring only: settings, clients and the schema catalog once per cold
//! start, then the handler in `lib.rs` for every event.

use std::sync::Arc;

use agencylink_aws::{AwsBackend, AwsSettings};
use agencylink_core::schema::Catalog;
use agencylink_fn_ingest::{Ingestor, handle};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = AwsSettings::from_env()?;
    let sdk = settings.sdk_config().await;
    let backend = AwsBackend::from_sdk_config(settings, &sdk, tokio::runtime::Handle::current());
    let mut ingestor = Ingestor::new(backend, Catalog::embedded()?)
        .with_max_bytes(agencylink_aws::upload_max_bytes_from_env()?);
    // The queue this function reads: a paused upload's continuation goes
    // back to it (infra/template.yaml sets it).
    if let Ok(url) = std::env::var("AGENCYLINK_INGEST_QUEUE_URL") {
        ingestor = ingestor.with_resume(aws_sdk_sqs::Client::new(&sdk), url);
    }
    let ingestor = Arc::new(ingestor);
    run(service_fn(move |event| handle(ingestor.clone(), event))).await
}
