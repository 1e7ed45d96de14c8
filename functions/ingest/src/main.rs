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
    let backend = AwsBackend::connect(settings).await;
    let ingestor = Arc::new(
        Ingestor::new(backend, Catalog::embedded()?)
            .with_max_bytes(agencylink_aws::upload_max_bytes_from_env()?),
    );
    run(service_fn(move |event| handle(ingestor.clone(), event))).await
}
