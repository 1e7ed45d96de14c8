//! The Secrets Manager key provider: a JSON secret `{"kid": "...", "key":
//! "<base64>"}` fetched on first use, kept for the life of the process (one
//! Lambda cold start), and never logged: `Debug` shows the secret id only.
//!
//! A key rotation (`agencylink_core::rotation`) uses the secret's staging
//! labels, as Secrets Manager's own rotation does: the new key is a version
//! labelled `AWSPENDING` while the rotation is open; the migration moves
//! `AWSCURRENT` to it (the old version becomes `AWSPREVIOUS`, kept while
//! records are still under it); when none is, `AWSPREVIOUS` is taken off
//! and the unlabelled version is left for Secrets Manager to delete.
//!
//! The key custodian only writes versions and moves labels (they read no
//! key and no data): `key rotate` adds the `AWSPENDING` version, `key
//! migrate` puts the label [`MIGRATE`] (or [`FINISH`]) on it. The ingest
//! function, which holds the data, does the rest on its hourly rotation
//! task (`crate::key_rotation`).

use std::sync::Mutex;

use agencylink_core::ports::{KeyProvider, KeySourceError};
use agencylink_core::pseudo::{Key, KeyId, MasterKey};
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
        self.fetch_stage(CURRENT)?
            .ok_or_else(|| KeySourceError::Missing(Resource::Secret(&self.secret_id).missing()))
    }

    /// The version labelled `stage`, or `None` when no version is.
    fn fetch_stage(&self, stage: &str) -> Result<Option<Zeroizing<String>>, KeySourceError> {
        let out = block_on(&self.handle, async {
            self.client
                .get_secret_value()
                .secret_id(&self.secret_id)
                .version_stage(stage)
                .send()
                .await
        });
        let out = match out {
            // The secret is there but no version has the label.
            Err(e)
                if stage != CURRENT
                    && e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            other => other,
        }
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
            .map(|s| Some(Zeroizing::new(s.to_owned())))
            .ok_or_else(|| {
                KeySourceError::Invalid(format!(
                    "{} has no string value (binary secrets are not supported)",
                    Resource::Secret(&self.secret_id)
                ))
            })
    }

    /// The key labelled `stage` (`AWSPENDING`, `AWSPREVIOUS`), or `None`
    /// when no version is. Not cached: a rotation's keys are asked for
    /// once per ingest while it lasts.
    pub fn key_at(&self, stage: &str) -> Result<Option<Key>, KeySourceError> {
        self.fetch_stage(stage)?
            .map(|text| parse(&self.secret_id, &text))
            .transpose()
    }

    /// Drop the cached key, so the next [`KeyProvider::key`] reads the
    /// current version again (after a migration moved `AWSCURRENT`).
    pub fn forget(&self) {
        *self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Make a new key and store it as the `AWSPENDING` version (the key
    /// custodian's `key rotate`); its key id. The custodian reads no key,
    /// so a pending version is found from the labels (DescribeSecret), and
    /// one already there is refused rather than replaced.
    pub fn put_pending(&self) -> Result<KeyId, KeySourceError> {
        if self.stages()?.contains_key(PENDING) {
            return Err(KeySourceError::Invalid(format!(
                "{} already has an AWSPENDING version: a rotation is under way (`agencylink --backend aws key status`)",
                Resource::Secret(&self.secret_id)
            )));
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut())
            .map_err(|e| KeySourceError::Unavailable(format!("OS randomness: {e}")))?;
        let mut kid_bytes = [0u8; 5];
        getrandom::fill(&mut kid_bytes)
            .map_err(|e| KeySourceError::Unavailable(format!("OS randomness: {e}")))?;
        let kid: String = std::iter::once("k".to_owned())
            .chain(kid_bytes.iter().map(|b| format!("{b:02x}")))
            .collect();
        let master = MasterKey::generate_from(*bytes);
        let text = Zeroizing::new(
            serde_json::json!({"kid": kid, "key": master.expose_base64().as_str()}).to_string(),
        );
        block_on(&self.handle, async {
            self.client
                .put_secret_value()
                .secret_id(&self.secret_id)
                .secret_string(text.as_str())
                .version_stages(PENDING)
                .send()
                .await
        })
        .map_err(|e| {
            KeySourceError::Unavailable(one_line(
                Resource::Secret(&self.secret_id),
                "secretsmanager:PutSecretValue",
                &e,
            ))
        })?;
        KeyId::new(&kid).map_err(|e| KeySourceError::Invalid(e.to_string()))
    }

    /// Put the custodian's signal `label` ([`MIGRATE`] or [`FINISH`]) on
    /// the pending version, or on the current one when none is pending (a
    /// rotation already migrated and draining).
    pub fn signal(&self, label: &str) -> Result<(), KeySourceError> {
        let stages = self.stages()?;
        let Some(target) = stages.get(PENDING).or_else(|| stages.get(CURRENT)) else {
            return Err(KeySourceError::Missing(
                Resource::Secret(&self.secret_id).missing(),
            ));
        };
        let from = stages.get(label).filter(|v| *v != target);
        block_on(
            &self.handle,
            self.move_stage(label, Some(target), from.map(String::as_str)),
        )
    }

    /// Take `label` off whichever version carries it.
    pub fn clear_signal(&self, label: &str) -> Result<(), KeySourceError> {
        if let Some(v) = self.stages()?.get(label) {
            block_on(&self.handle, self.move_stage(label, None, Some(v)))?;
        }
        Ok(())
    }

    /// Each staging label → the version that carries it.
    pub fn stages(&self) -> Result<std::collections::HashMap<String, String>, KeySourceError> {
        let out = block_on(&self.handle, async {
            self.client
                .describe_secret()
                .secret_id(&self.secret_id)
                .send()
                .await
        })
        .map_err(|e| {
            KeySourceError::Unavailable(one_line(
                Resource::Secret(&self.secret_id),
                "secretsmanager:DescribeSecret",
                &e,
            ))
        })?;
        let mut by_stage = std::collections::HashMap::new();
        for (version, labels) in out.version_ids_to_stages().into_iter().flatten() {
            for l in labels {
                by_stage.insert(l.clone(), version.clone());
            }
        }
        Ok(by_stage)
    }

    async fn move_stage(
        &self,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), KeySourceError> {
        self.client
            .update_secret_version_stage()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .set_move_to_version_id(to.map(str::to_owned))
            .set_remove_from_version_id(from.map(str::to_owned))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                KeySourceError::Unavailable(one_line(
                    Resource::Secret(&self.secret_id),
                    "secretsmanager:UpdateSecretVersionStage",
                    &e,
                ))
            })
    }

    /// After a migration: `AWSCURRENT` moves to the pending version (the
    /// old one gets `AWSPREVIOUS`), and `AWSPENDING` comes off. Nothing to
    /// do when no version is pending (a migration already promoted it).
    pub fn promote_pending(&self) -> Result<(), KeySourceError> {
        let stages = self.stages()?;
        let Some(pending) = stages.get(PENDING) else {
            return Ok(());
        };
        let current = stages.get(CURRENT);
        block_on(&self.handle, async {
            if current != Some(pending) {
                self.move_stage(CURRENT, Some(pending), current.map(String::as_str))
                    .await?;
            }
            self.move_stage(PENDING, None, Some(pending)).await
        })?;
        self.forget();
        Ok(())
    }

    /// When the rotation is complete: `AWSPREVIOUS` comes off the old
    /// version, which Secrets Manager then deletes in its own time.
    pub fn retire_previous(&self) -> Result<(), KeySourceError> {
        let stages = self.stages()?;
        if let Some(previous) = stages.get(PREVIOUS) {
            block_on(
                &self.handle,
                self.move_stage(PREVIOUS, None, Some(previous)),
            )?;
        }
        Ok(())
    }
}

/// The version a deployment uses.
pub const CURRENT: &str = "AWSCURRENT";
/// A rotation's new key until the migration.
pub const PENDING: &str = "AWSPENDING";
/// The old key while records are still under it.
pub const PREVIOUS: &str = "AWSPREVIOUS";
/// The custodian's signal to migrate (`key migrate`).
pub const MIGRATE: &str = "AGENCYLINK_MIGRATE";
/// The custodian's signal to migrate and end the rotation (`key migrate
/// --finish`).
pub const FINISH: &str = "AGENCYLINK_FINISH";

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
