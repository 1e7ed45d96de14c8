//! Test support for suites that run against moto server (or any endpoint in
//! `AWS_ENDPOINT_URL`): skip only when no endpoint is configured, fail when
//! one is configured but does not answer. Enabled by the `test-support` feature.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::{AgencyPolicy, AwsBackend, AwsSettings};

/// A reachable AWS-compatible endpoint and a runtime to talk to it.
#[derive(Debug)]
pub struct Moto {
    /// The endpoint URL.
    pub endpoint: String,
    /// The SDK configuration (from the standard variables).
    pub sdk: aws_config::SdkConfig,
}

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// The shared multi-threaded runtime the adapters block on in tests.
pub fn rt() -> &'static Runtime {
    runtime()
}

/// `None` (and a note on stderr) when `AWS_ENDPOINT_URL` is unset; panics
/// when it is set but nothing answers there.
pub fn moto() -> Option<Moto> {
    let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|e| !e.is_empty())
    else {
        eprintln!(
            "skipping: AWS_ENDPOINT_URL is not set (tests/run-all.sh starts moto and sets it)"
        );
        return None;
    };
    let authority = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(&endpoint)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let addr = authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("AWS_ENDPOINT_URL={endpoint} is not a host:port URL"));
    if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        panic!(
            "AWS_ENDPOINT_URL={endpoint} is set but unreachable ({e}): start moto_server or unset it"
        );
    }
    let sdk =
        runtime().block_on(aws_config::defaults(aws_config::BehaviorVersion::latest()).load());
    Some(Moto { endpoint, sdk })
}

/// A name no other test in this run uses (lowercase, bucket-safe).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

impl Moto {
    /// Settings with fresh bucket and table names (separate landing and
    /// audit buckets) and `agencies` as the upload policy.
    pub fn settings(&self, name: &str, agencies: AgencyPolicy) -> AwsSettings {
        let base = unique(name);
        AwsSettings {
            data_bucket: format!("{base}-data"),
            landing_bucket: format!("{base}-landing"),
            audit_bucket: Some(format!("{base}-audit")),
            audit_retention_days: 1,
            table: format!("{base}-table"),
            key_secret_id: Some(format!("{base}/key")),
            force_path_style: true,
            agencies,
            checkpoint_key_id: None,
        }
    }

    /// A new asymmetric KMS signing key (`ECC_NIST_P256`, as the template's
    /// `CheckpointKey`); returns its id, for `checkpoint_key_id`.
    pub fn create_checkpoint_key(&self) -> String {
        use aws_sdk_kms::types::{KeySpec, KeyUsageType};
        let client = aws_sdk_kms::Client::new(&self.sdk);
        runtime().block_on(async {
            client
                .create_key()
                .key_spec(KeySpec::EccNistP256)
                .key_usage(KeyUsageType::SignVerify)
                .description("agencylink test checkpoint key")
                .send()
                .await
                .expect("KMS CreateKey")
                .key_metadata()
                .map(|m| m.key_id().to_owned())
                .expect("a key id")
        })
    }

    /// A provisioned backend over fresh buckets and a fresh table.
    pub fn backend(&self, settings: AwsSettings) -> AwsBackend {
        let b = AwsBackend::from_sdk_config(settings, &self.sdk, runtime().handle().clone());
        runtime()
            .block_on(b.provision())
            .expect("provisioning on moto");
        b
    }

    /// Store `{"kid","key"}` as the backend's key secret.
    pub fn put_key_secret(&self, backend: &AwsBackend, kid: &str, key_b64: &str) {
        let id = backend
            .settings
            .key_secret_id
            .clone()
            .expect("a key secret id");
        let client = aws_sdk_secretsmanager::Client::new(&self.sdk);
        let value = format!("{{\"kid\":\"{kid}\",\"key\":\"{key_b64}\"}}");
        runtime().block_on(async {
            match client
                .create_secret()
                .name(&id)
                .secret_string(&value)
                .send()
                .await
            {
                Ok(_) => {}
                Err(_) => {
                    client
                        .put_secret_value()
                        .secret_id(&id)
                        .secret_string(&value)
                        .send()
                        .await
                        .expect("put secret");
                }
            }
        });
    }
}

/// The key of lineage event `seq` in the table (its `C#lineage#E`
/// partition, see crates/aws/README.md): what tests that tamper with the
/// table behind the chain's back write and delete.
pub fn lineage_key(
    seq: u64,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    use aws_sdk_dynamodb::types::AttributeValue;
    std::collections::HashMap::from([
        ("pk".to_owned(), AttributeValue::S("C#lineage#E".into())),
        ("sk".to_owned(), AttributeValue::S(format!("{seq:020}"))),
    ])
}
