//! The S3 object store: `landing/…` keys live in the landing bucket, every
//! other key in the data bucket (the two may be the same bucket). Gets stream
//! (a `Read` that pulls body chunks as it is read); puts larger than one part
//! go up as a multipart upload, so readers never see a partial object and
//! memory stays at one part. `PutMode::Create` is `If-None-Match: *`.

use std::io::{self, Read};
use std::time::{Duration, SystemTime};

use agencylink_core::memory::check_object_key;
use agencylink_core::ports::{ObjectMeta, ObjectStore, PutMode, StoreError, StoreResult};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectLockMode,
};
use bytes_reader::ChunkReader;
use tokio::runtime::Handle;

use crate::block_on;
use crate::error::{
    AUDIT_BUCKET_VAR, BUCKET_VAR, LANDING_BUCKET_VAR, Resource, code_and_status, store_error,
};
use crate::kms::KmsCheckpointKey;
use agencylink_core::checkpoint::{Checkpoint, LOGS};

/// The default multipart part size (S3's minimum is 5 MiB).
pub const DEFAULT_PART_SIZE: usize = 8 << 20;

/// Objects in S3.
#[derive(Debug, Clone)]
pub struct S3ObjectStore {
    client: Client,
    handle: Handle,
    data_bucket: String,
    landing_bucket: String,
    part_size: usize,
    credentials: Option<aws_sdk_s3::config::SharedCredentialsProvider>,
}

const LANDING: &str = "landing/";

impl S3ObjectStore {
    /// A store over `data_bucket` (and `landing_bucket` for `landing/` keys).
    /// `handle` must belong to a multi-threaded runtime.
    pub fn new(client: Client, handle: Handle, data_bucket: &str, landing_bucket: &str) -> Self {
        S3ObjectStore {
            client,
            handle,
            data_bucket: data_bucket.to_owned(),
            landing_bucket: landing_bucket.to_owned(),
            part_size: DEFAULT_PART_SIZE,
            credentials: None,
        }
    }

    /// Sign presigned POST uploads with these credentials (the SDK
    /// configuration's: a built client no longer exposes its provider).
    pub fn with_credentials(
        mut self,
        credentials: Option<aws_sdk_s3::config::SharedCredentialsProvider>,
    ) -> Self {
        self.credentials = credentials;
        self
    }

    /// Use parts of `bytes` (at least 5 MiB) for multipart uploads.
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(5 << 20);
        self
    }

    /// A bucket of this store, named with the variable that configures it.
    fn resource<'a>(&self, bucket: &'a str) -> Resource<'a> {
        let var = if bucket == self.landing_bucket && bucket != self.data_bucket {
            LANDING_BUCKET_VAR
        } else {
            BUCKET_VAR
        };
        Resource::Bucket { name: bucket, var }
    }

    /// The bucket a key lives in.
    pub fn bucket_for(&self, key: &str) -> &str {
        if key.starts_with(LANDING) {
            &self.landing_bucket
        } else {
            &self.data_bucket
        }
    }

    /// A time-limited download link for `key` (signing needs no network).
    pub fn presign_get(&self, key: &str, expires: Duration) -> StoreResult<String> {
        check_object_key(key)?;
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires)
            .map_err(|e| StoreError::backend("building a presigned URL", e))?;
        let req = self
            .client
            .get_object()
            .bucket(self.bucket_for(key))
            .key(key);
        block_on(&self.handle, req.presigned(config))
            .map(|p| p.uri().to_owned())
            .map_err(|e| {
                store_error(
                    self.resource(self.bucket_for(key)),
                    format!("s3:GetObject (presigning) {}", shown(key)),
                    e,
                )
            })
    }

    /// A presigned POST form for one upload to `key` under `landing/`: at
    /// most `max_bytes`, SSE-KMS with `kms_key_id`, valid for `expires`,
    /// signed with this client's own credentials (the Lambda role's, session
    /// token included). The URL comes from presigning a `PutObject` of the
    /// same key, so the SDK's endpoint rules (a custom endpoint, path or
    /// virtual-host style) decide it, not a copy of them here.
    pub fn presign_landing_post(
        &self,
        key: &str,
        max_bytes: u64,
        kms_key_id: &str,
        expires: Duration,
    ) -> StoreResult<crate::presign_post::PresignedPost> {
        use aws_sdk_s3::config::ProvideCredentials;
        check_object_key(key)?;
        if !key.starts_with(LANDING) {
            return Err(StoreError::Invalid(
                "a presigned upload is only for landing/".into(),
            ));
        }
        let bucket = self.bucket_for(key).to_owned();
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires)
            .map_err(|e| StoreError::backend("building a presigned upload", e))?;
        let what = || format!("s3:PutObject (presigning) {}", shown(key));
        let (put_url, creds) = block_on(&self.handle, async {
            let put = self
                .client
                .put_object()
                .bucket(&bucket)
                .key(key)
                .presigned(config)
                .await
                .map_err(|e| store_error(self.resource(&bucket), what(), e))?;
            let provider = self.credentials.as_ref().ok_or_else(|| {
                StoreError::Invalid("no AWS credentials to sign an upload with".into())
            })?;
            let creds = provider
                .provide_credentials()
                .await
                .map_err(|e| StoreError::backend("reading the credentials to sign an upload", e))?;
            Ok::<_, StoreError>((put.uri().to_owned(), creds))
        })?;
        // `…/<key>?X-Amz-…` without the key and query: the bucket's URL.
        let path = put_url.split('?').next().unwrap_or_default();
        let url = path
            .strip_suffix(key)
            .ok_or_else(|| StoreError::Invalid("unexpected presigned URL shape".into()))?
            .to_owned();
        let region = self
            .client
            .config()
            .region()
            .map(|r| r.as_ref().to_owned())
            .ok_or_else(|| StoreError::Invalid("no AWS region to sign an upload for".into()))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(crate::presign_post::presign_post(
            &crate::presign_post::PostPolicy {
                url,
                bucket: &bucket,
                key,
                max_bytes,
                kms_key_id,
                region: &region,
                now,
                expires_in: expires.as_secs(),
            },
            &crate::presign_post::SigningCredentials {
                access_key_id: creds.access_key_id().to_owned(),
                secret_access_key: creds.secret_access_key().to_owned(),
                session_token: creds.session_token().map(str::to_owned),
            },
        ))
    }

    /// Delete every version of `key`, delete markers included, and return
    /// how many there were (what [`ObjectStore::delete`] does). In a versioned bucket (the landing bucket is
    /// one) a plain delete only puts a delete marker in front: the bytes stay
    /// as a noncurrent version until lifecycle expires it. A raw extract must
    /// not outlive its ingest, so each version is deleted by id. Needs
    /// `s3:ListBucketVersions` on the bucket and `s3:DeleteObjectVersion` on
    /// the key; in an unversioned bucket the one version is `null`.
    pub fn delete_all_versions(&self, key: &str) -> StoreResult<usize> {
        check_object_key(key)?;
        let bucket = self.bucket_for(key).to_owned();
        block_on(&self.handle, async {
            let mut versions: Vec<String> = Vec::new();
            let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
            loop {
                let page = self
                    .client
                    .list_object_versions()
                    .bucket(&bucket)
                    .prefix(key)
                    .set_key_marker(key_marker.take())
                    .set_version_id_marker(version_marker.take())
                    .send()
                    .await
                    .map_err(|e| {
                        store_error(
                            self.resource(&bucket),
                            format!("s3:ListBucketVersions {}", shown(key)),
                            e,
                        )
                    })?;
                // The prefix also matches longer keys: keep this key's only.
                let ours = page
                    .versions()
                    .iter()
                    .filter(|v| v.key() == Some(key))
                    .filter_map(|v| v.version_id())
                    .chain(
                        page.delete_markers()
                            .iter()
                            .filter(|d| d.key() == Some(key))
                            .filter_map(|d| d.version_id()),
                    );
                versions.extend(ours.map(str::to_owned));
                if page.is_truncated() != Some(true) {
                    break;
                }
                key_marker = page.next_key_marker().map(str::to_owned);
                version_marker = page.next_version_id_marker().map(str::to_owned);
                if key_marker.is_none() && version_marker.is_none() {
                    break;
                }
            }
            for v in &versions {
                self.client
                    .delete_object()
                    .bucket(&bucket)
                    .key(key)
                    .version_id(v)
                    .send()
                    .await
                    .map_err(|e| {
                        store_error(
                            self.resource(&bucket),
                            format!("s3:DeleteObjectVersion {}", shown(key)),
                            e,
                        )
                    })?;
            }
            Ok(versions.len())
        })
    }

    /// The S3 client (for presigning and tools).
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn put_single(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        mode: PutMode,
    ) -> StoreResult<()> {
        let mut req = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body));
        if mode == PutMode::Create {
            req = req.if_none_match("*");
        }
        req.send()
            .await
            .map(|_| ())
            .map_err(|e| put_error(self.resource(bucket), key, e))
    }

    async fn put_multipart(
        &self,
        bucket: &str,
        key: &str,
        first: Vec<u8>,
        data: &mut dyn Read,
        mode: PutMode,
    ) -> StoreResult<u64> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                store_error(
                    self.resource(bucket),
                    format!("s3:PutObject (multipart) {}", shown(key)),
                    e,
                )
            })?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| StoreError::Invalid("S3 returned no upload id".into()))?
            .to_owned();
        let result = async {
            let mut parts = Vec::new();
            let mut size = 0u64;
            let mut chunk = first;
            let mut number = 1i32;
            loop {
                size += chunk.len() as u64;
                let out = self
                    .client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(chunk))
                    .send()
                    .await
                    .map_err(|e| {
                        store_error(
                            self.resource(bucket),
                            format!("s3:PutObject (part {number}) {}", shown(key)),
                            e,
                        )
                    })?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag().map(str::to_owned))
                        .build(),
                );
                chunk = read_chunk(data, self.part_size)?;
                if chunk.is_empty() {
                    break;
                }
                number += 1;
            }
            let mut req = self
                .client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                );
            if mode == PutMode::Create {
                req = req.if_none_match("*");
            }
            req.send()
                .await
                .map_err(|e| put_error(self.resource(bucket), key, e))?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            // Best effort: a lifecycle rule aborts what this misses.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn list_bucket(
        &self,
        bucket: &str,
        prefix: &str,
        out: &mut Vec<ObjectMeta>,
    ) -> StoreResult<()> {
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    store_error(self.resource(bucket), format!("s3:ListBucket {prefix}"), e)
                })?;
            for o in page.contents() {
                if let Some(key) = o.key() {
                    out.push(ObjectMeta {
                        key: key.to_owned(),
                        size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    });
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => return Ok(()),
            }
        }
    }
}

fn put_error<E>(
    resource: Resource<'_>,
    key: &str,
    err: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (code, status) = code_and_status(&err);
    if status == Some(412) || code.as_deref() == Some("PreconditionFailed") {
        StoreError::AlreadyExists(shown(key).into_owned())
    } else if status == Some(409) || code.as_deref() == Some("ConditionalRequestConflict") {
        StoreError::Precondition(format!("a concurrent write to {}", shown(key)))
    } else {
        store_error(resource, format!("s3:PutObject {}", shown(key)), err)
    }
}

/// An object key as errors name it. Landing keys end in the name the agency
/// gave its file, which often names a child: errors reach logs and, on the
/// ingest function, lineage, so they name the folder and withhold the file.
fn shown(key: &str) -> std::borrow::Cow<'_, str> {
    match key.strip_prefix("landing/") {
        Some(rest) => {
            let folder: Vec<&str> = rest.split('/').collect();
            let kept = folder.len().saturating_sub(1).min(2);
            let mut out = String::from("landing/");
            for part in &folder[..kept] {
                out.push_str(part);
                out.push('/');
            }
            out.push_str("(file name withheld)");
            out.into()
        }
        None => key.into(),
    }
}

/// Read up to `size` bytes (fewer only at the end of `data`).
fn read_chunk(data: &mut dyn Read, size: usize) -> StoreResult<Vec<u8>> {
    let mut buf = Vec::with_capacity(size.min(1 << 20));
    data.take(size as u64)
        .read_to_end(&mut buf)
        .map_err(|e| StoreError::backend("reading the data to store", e))?;
    Ok(buf)
}

impl ObjectStore for S3ObjectStore {
    fn put_from(&self, key: &str, data: &mut dyn Read, mode: PutMode) -> StoreResult<ObjectMeta> {
        check_object_key(key)?;
        let bucket = self.bucket_for(key).to_owned();
        let first = read_chunk(data, self.part_size)?;
        let size = if first.len() < self.part_size {
            let n = first.len() as u64;
            block_on(&self.handle, self.put_single(&bucket, key, first, mode))?;
            n
        } else {
            block_on(
                &self.handle,
                self.put_multipart(&bucket, key, first, data, mode),
            )?
        };
        Ok(ObjectMeta {
            key: key.to_owned(),
            size,
        })
    }

    fn get(&self, key: &str) -> StoreResult<Box<dyn Read + Send>> {
        check_object_key(key)?;
        let out = block_on(&self.handle, async {
            self.client
                .get_object()
                .bucket(self.bucket_for(key))
                .key(key)
                .send()
                .await
        })
        .map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                StoreError::NotFound(shown(key).into_owned())
            } else {
                store_error(
                    self.resource(self.bucket_for(key)),
                    format!("s3:GetObject {}", shown(key)),
                    e,
                )
            }
        })?;
        Ok(Box::new(ChunkReader::new(self.handle.clone(), out.body)))
    }

    fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        check_object_key(key)?;
        let out = block_on(&self.handle, async {
            self.client
                .head_object()
                .bucket(self.bucket_for(key))
                .key(key)
                .send()
                .await
        })
        .map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_not_found())
                || code_and_status(&e).1 == Some(404)
            {
                StoreError::NotFound(shown(key).into_owned())
            } else {
                store_error(
                    self.resource(self.bucket_for(key)),
                    format!("s3:GetObject {}", shown(key)),
                    e,
                )
            }
        })?;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: out
                .content_length()
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
        })
    }

    /// Every version goes (see [`S3ObjectStore::delete_all_versions`]): the
    /// buckets are versioned, and what the pipeline deletes (a raw extract,
    /// a withdrawn upload's curated data and reports) must be erased, not
    /// kept behind a delete marker as a noncurrent version.
    fn delete(&self, key: &str) -> StoreResult<()> {
        self.delete_all_versions(key).map(|_| ())
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        block_on(&self.handle, async {
            let landing_only = prefix.starts_with(LANDING);
            let may_hold_landing = landing_only || LANDING.starts_with(prefix);
            if landing_only {
                return self
                    .list_bucket(&self.landing_bucket, prefix, &mut out)
                    .await;
            }
            self.list_bucket(&self.data_bucket, prefix, &mut out)
                .await?;
            if may_hold_landing && self.landing_bucket != self.data_bucket {
                let mut landing = Vec::new();
                self.list_bucket(&self.landing_bucket, prefix, &mut landing)
                    .await?;
                out.extend(landing.into_iter().filter(|m| m.key.starts_with(LANDING)));
            }
            Ok(())
        })?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out.dedup_by(|a, b| a.key == b.key);
        Ok(out)
    }
}

/// Streams an S3 body as `Read`, pulling one chunk at a time.
mod bytes_reader {
    use super::*;

    pub(super) struct ChunkReader {
        handle: Handle,
        body: ByteStream,
        chunk: Vec<u8>,
        pos: usize,
        done: bool,
    }

    impl ChunkReader {
        pub(super) fn new(handle: Handle, body: ByteStream) -> Self {
            ChunkReader {
                handle,
                body,
                chunk: Vec::new(),
                pos: 0,
                done: false,
            }
        }
    }

    impl Read for ChunkReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            while self.pos >= self.chunk.len() {
                if self.done {
                    return Ok(0);
                }
                match block_on(&self.handle, self.body.next()) {
                    Some(Ok(bytes)) => {
                        self.chunk.clear();
                        self.chunk.extend_from_slice(&bytes);
                        self.pos = 0;
                    }
                    Some(Err(e)) => return Err(io::Error::other(e)),
                    None => self.done = true,
                }
            }
            let n = buf.len().min(self.chunk.len() - self.pos);
            buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }
}

/// Write-once copies of chained log events in an S3 bucket with Object Lock.
///
/// Each event is `<prefix>/<seq, 12 digits>-<hash>.json`, stored create-only
/// with a COMPLIANCE retention of the configured days (the bucket's default
/// retention is the backstop). Archiving an event twice is not an error.
///
/// With a checkpoint key, archiving an event of the lineage log or the
/// access log also stores a signed checkpoint of that log at the event,
/// `checkpoints/<log>/<size, 12 digits>.json`, the same way: a table that
/// loses its last events then verifies shorter than the newest checkpoint.
#[derive(Debug, Clone)]
pub struct S3Archive {
    client: Client,
    handle: Handle,
    bucket: String,
    retention: Duration,
    checkpoint_key: Option<KmsCheckpointKey>,
}

/// Where a log's checkpoints are in the archive.
fn checkpoint_prefix(log: &str) -> String {
    format!("checkpoints/{log}/")
}

impl S3Archive {
    /// An archive in `bucket` (created with Object Lock enabled).
    pub fn new(client: Client, handle: Handle, bucket: &str, retention_days: u32) -> Self {
        S3Archive {
            client,
            handle,
            bucket: bucket.to_owned(),
            retention: Duration::from_secs(u64::from(retention_days) * 86_400),
            checkpoint_key: None,
        }
    }

    /// Also store a checkpoint, signed with `key`, with every event archived.
    pub fn with_checkpoint_key(mut self, key: KmsCheckpointKey) -> Self {
        self.checkpoint_key = Some(key);
        self
    }

    /// The checkpoint key, when configured.
    pub fn checkpoint_key(&self) -> Option<&KmsCheckpointKey> {
        self.checkpoint_key.as_ref()
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The bucket, as AWS errors name it.
    fn resource(&self) -> Resource<'_> {
        Resource::Bucket {
            name: &self.bucket,
            var: AUDIT_BUCKET_VAR,
        }
    }

    /// Store `body` at `key`, create-only, locked; an existing object is fine.
    fn put_locked(&self, key: &str, body: Vec<u8>) -> StoreResult<()> {
        let until = DateTime::from(SystemTime::now() + self.retention);
        let sent = block_on(&self.handle, async {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type("application/json")
                .body(ByteStream::from(body))
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .object_lock_mode(ObjectLockMode::Compliance)
                .object_lock_retain_until_date(until)
                .if_none_match("*")
                .send()
                .await
        });
        match sent.map_err(|e| put_error(self.resource(), key, e)) {
            Ok(_) | Err(StoreError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Store a signed checkpoint; returns its key.
    pub fn put_checkpoint(&self, checkpoint: &Checkpoint) -> StoreResult<String> {
        if !LOGS.contains(&checkpoint.log.as_str()) {
            return Err(StoreError::Invalid(format!(
                "no checkpoints for a log named {}",
                checkpoint.log
            )));
        }
        let key = format!(
            "{}{:012}.json",
            checkpoint_prefix(&checkpoint.log),
            checkpoint.size
        );
        let body =
            serde_json::to_vec(checkpoint).map_err(|e| StoreError::backend("encoding JSON", e))?;
        self.put_locked(&key, body)?;
        Ok(key)
    }

    /// Every key under `prefix`, in order.
    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        block_on(&self.handle, async {
            let mut keys = Vec::new();
            let mut token = None::<String>;
            loop {
                let page = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(prefix)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|e| {
                        store_error(self.resource(), format!("s3:ListBucket {prefix}"), e)
                    })?;
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key())
                        .map(str::to_owned),
                );
                match page.next_continuation_token() {
                    Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                    _ => break,
                }
            }
            keys.sort();
            Ok(keys)
        })
    }

    /// The newest (largest) checkpoint of `log` and its key.
    pub fn latest_checkpoint(&self, log: &str) -> StoreResult<Option<(String, Checkpoint)>> {
        let Some(key) = self.list(&checkpoint_prefix(log))?.pop() else {
            return Ok(None);
        };
        let out = block_on(&self.handle, async {
            let got = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| {
                    store_error(self.resource(), format!("s3:GetObject {}", shown(&key)), e)
                })?;
            got.body
                .collect()
                .await
                .map(|b| b.into_bytes())
                .map_err(|e| StoreError::backend(format!("reading {}", shown(&key)), e))
        })?;
        let cp = serde_json::from_slice(&out)
            .map_err(|e| StoreError::backend(format!("{key} is not a checkpoint"), e))?;
        Ok(Some((key, cp)))
    }

    /// `(seq, hash)` of every archived event of `log`, from the object
    /// names (the hash in the name is the one the event was stored with).
    pub fn archived_events(&self, log: &str) -> StoreResult<Vec<(u64, String)>> {
        let prefix = format!("{log}/");
        Ok(self
            .list(&prefix)?
            .iter()
            .filter_map(|k| {
                let name = k.strip_prefix(&prefix)?.strip_suffix(".json")?;
                let (seq, hash) = name.split_once('-')?;
                Some((seq.parse().ok()?, hash.to_owned()))
            })
            .collect())
    }

    /// The key an event is archived under.
    pub fn key_for(prefix: &str, entry: &serde_json::Value) -> StoreResult<String> {
        let seq = entry
            .get("seq")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| StoreError::Invalid("an archived event needs a `seq`".into()))?;
        let hash = entry
            .get("hash")
            .and_then(serde_json::Value::as_str)
            .filter(|h| h.bytes().all(|b| b.is_ascii_alphanumeric()))
            .ok_or_else(|| StoreError::Invalid("an archived event needs a `hash`".into()))?;
        Ok(format!("{prefix}/{seq:012}-{hash}.json"))
    }

    /// Archive one event under `prefix` (`lineage`, `access-log`).
    pub fn archive(&self, prefix: &str, entry: &serde_json::Value) -> StoreResult<String> {
        let key = Self::key_for(prefix, entry)?;
        let body =
            serde_json::to_vec(entry).map_err(|e| StoreError::backend("encoding JSON", e))?;
        self.put_locked(&key, body)?;
        if let Some(signer) = &self.checkpoint_key
            && LOGS.contains(&prefix)
        {
            // key_for checked both.
            let seq = entry
                .get("seq")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            let hash = entry
                .get("hash")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            let cp = Checkpoint::sign(prefix, seq, hash, &crate::now_rfc3339(), signer).map_err(
                |e| StoreError::Unavailable {
                    message: e.to_string(),
                    source: None,
                },
            )?;
            self.put_checkpoint(&cp)?;
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn errors_name_a_landing_folder_never_its_file() {
        assert_eq!(
            shown("landing/gmp-police/police.cse_crime/Jane Doe referral.csv"),
            "landing/gmp-police/police.cse_crime/(file name withheld)"
        );
        assert_eq!(
            shown("landing/Jane Doe.csv"),
            "landing/(file name withheld)"
        );
        assert_eq!(
            shown("curated/gmp-police/police.cse_crime/u_abc.ndjson"),
            "curated/gmp-police/police.cse_crime/u_abc.ndjson"
        );
    }
}
