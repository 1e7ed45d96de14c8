//! The Secrets Manager key provider: a JSON secret `{"kid": "...", "key":
//! "<base64>"}` fetched on first use, kept for the life of the process (one
//! Lambda cold start), and never logged: `Debug` shows the secret id only.

use std::sync::Mutex;

use agencylink_core::ports::{KeyProvider, KeySourceError};
use agencylink_core::pseudo::Key;
use aws_sdk_secretsmanager::Client;
use tokio::runtime::Handle;
use zeroize::Zeroizing;

use crate::block_on;
use crate::error::{Resource, one_line};

/// The pseudonymisation key from Secrets Manager.
pub struct SecretsKeyProvider {
    client: Client,
    handle: Handle,
    secret_id: String,
    cached: Mutex<Option<Zeroizing<String>>>,
}

impl std::fmt::Debug for SecretsKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsKeyProvider")
            .field("secret_id", &self.secret_id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl SecretsKeyProvider {
    /// A provider for `secret_id` (name or ARN). Nothing is fetched yet.
    pub fn new(client: Client, handle: Handle, secret_id: &str) -> Self {
        SecretsKeyProvider {
            client,
            handle,
            secret_id: secret_id.to_owned(),
            cached: Mutex::new(None),
        }
    }

    fn fetch(&self) -> Result<Zeroizing<String>, KeySourceError> {
        let out = block_on(&self.handle, async {
            self.client
                .get_secret_value()
                .secret_id(&self.secret_id)
                .send()
                .await
        })
        .map_err(|e| {
            let resource = Resource::Secret(&self.secret_id);
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception())
            {
                KeySourceError::Missing(resource.missing())
            } else {
                // One line naming the secret, its variable and what to do.
                KeySourceError::Unavailable(one_line(resource, "secretsmanager:GetSecretValue", &e))
            }
        })?;
        out.secret_string()
            .map(|s| Zeroizing::new(s.to_owned()))
            .ok_or_else(|| {
                KeySourceError::Invalid(format!(
                    "{} has no string value (binary secrets are not supported)",
                    Resource::Secret(&self.secret_id)
                ))
            })
    }
}

impl KeyProvider for SecretsKeyProvider {
    fn key(&self) -> Result<Key, KeySourceError> {
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(text) = cached.as_ref() {
            return parse(&self.secret_id, text);
        }
        let text = self.fetch()?;
        let key = parse(&self.secret_id, &text)?;
        *cached = Some(text);
        Ok(key)
    }
}

fn parse(id: &str, text: &str) -> Result<Key, KeySourceError> {
    Key::from_secret_json(text)
        .map_err(|why| KeySourceError::Invalid(format!("{}: {why}", Resource::Secret(id))))
}
