//! The DynamoDB record store and chained logs: one table, every access
//! pattern a `GetItem`, `BatchGetItem` or `Query` (never a `Scan`). The
//! design, item by item, is in `crates/aws/README.md`.
//!
//! `apply` cannot be one transaction (a batch is thousands of items), so it
//! writes in two phases, each idempotent: first the index items (person,
//! match-key and link pointers, key owners, aliases, the dataset list), then
//! the record items. A record item is the commit point: readers follow
//! pointers to records and drop pointers the record does not back, so a crash
//! between the phases leaves stale pointers that nobody sees, and replaying
//! the batch (Lambda retries) converges.
//!
//! The probabilistic-linkage index (`LinkageStore`) lives in the same table:
//! see the `linkage` module.

mod lease;
mod linkage;
mod rotation;

pub use lease::LEASE_SECONDS;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use agencylink_core::ports::{
    ChainLog, Link, LinkageStore, MergeMark, RecordBody, RecordStore, StoreError, StoreResult,
    StoredRecord, WriteBatch,
};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest,
};
use tokio::runtime::Handle;

use crate::block_on;
use crate::error::{Resource, conditional, store_error};

/// One DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// BatchWriteItem's limit: at most 25 put or delete requests per call.
pub const MAX_BATCH_WRITE: usize = 25;
/// BatchGetItem's limit: at most 100 keys per call.
pub const MAX_BATCH_GET: usize = 100;

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// The dataset index (GSI) name.
pub const GSI_DATASET: &str = "gsi1";
/// The dataset index's partition key attribute.
pub const GSI_PK: &str = "gsi1pk";
/// The dataset index's sort key attribute.
pub const GSI_SK: &str = "gsi1sk";

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn key(pk: String, sk: String) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The attribute a conditional put writes a random token of its own to.
/// When an attempt lands but its answer is lost (a 500 or a timeout after
/// DynamoDB applied it), the SDK's retry finds its condition false: the
/// token tells that retry's failure (the item is this put's own) from
/// another writer's win.
pub const WRITE_TOKEN: &str = "wt";

/// PutItem `item` if `condition` holds (with `names` and `values` for its
/// placeholders): `true` when this put wrote it, counting an earlier
/// attempt of the same put whose answer was lost; `false` when the
/// condition was false for another writer's item.
pub(crate) async fn put_if(
    client: &Client,
    table: &str,
    mut item: Item,
    condition: &str,
    names: &[(&str, &str)],
    values: &[(&str, AttributeValue)],
    action: &str,
) -> StoreResult<bool> {
    let token = format!("{:032x}", fastrand::u128(..));
    let item_key: Item = [PK, SK]
        .iter()
        .filter_map(|a| Some(((*a).to_owned(), item.get(*a)?.clone())))
        .collect();
    item.insert(WRITE_TOKEN.into(), s(token.clone()));
    let mut put = client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(condition);
    for (name, attr) in names {
        put = put.expression_attribute_names(*name, *attr);
    }
    for (name, value) in values {
        put = put.expression_attribute_values(*name, value.clone());
    }
    if conditional(put.send().await, Resource::Table(table), action)? {
        return Ok(true);
    }
    let found = client
        .get_item()
        .table_name(table)
        .set_key(Some(item_key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| store_error(Resource::Table(table), "dynamodb:GetItem", e))?;
    Ok(found.item().and_then(|i| text(i, WRITE_TOKEN)) == Some(token.as_str()))
}

/// The sort key that orders a record's pointers by event date then id.
fn date_sk(date: &str, record_id: &str) -> String {
    format!("{date}#{record_id}")
}

fn record_pk(record_id: &str) -> String {
    format!("R#{record_id}")
}
fn person_pk(person: &str) -> String {
    format!("P#{person}")
}
fn matchkey_pk(k: &str) -> String {
    format!("K#{k}")
}
fn link_pk(token: &str) -> String {
    format!("L#{token}")
}
fn alias_pk(person: &str) -> String {
    format!("A#{person}")
}
/// The reverse of an alias, `AR#<new_id> / <old_id>`, so a withdrawal can
/// find the ids merged into a person with a Query. An alias later pointed
/// elsewhere leaves its old reverse item behind: readers check the alias.
fn alias_reverse_pk(person: &str) -> String {
    format!("AR#{person}")
}
/// An upload's merge marks, `M#<upload id>` / `B#<batch, 10 digits>`.
fn merge_pk(upload: &str) -> String {
    format!("M#{upload}")
}
const DATASETS_PK: &str = "DATASETS";
const OWNER_SK: &str = "OWNER";

/// Attempts the SDK makes at one DynamoDB call before its error reaches the
/// store: throttling, a 500 and a timed-out attempt are retried with the
/// SDK's jittered exponential backoff. Five (the SDK's default is three)
/// because a burst of throttling on a busy table outlasts three quick
/// attempts, and a call that fails anyway fails the whole step (an ingest
/// then waits for its queue's redelivery).
pub const MAX_ATTEMPTS: u32 = 5;

/// The longest one attempt may take before it is abandoned and retried.
/// DynamoDB answers in milliseconds; without a limit a connection that
/// stops answering holds the call until the Lambda times out. Ten seconds
/// leaves a page of a large Query (1 MB) room on a slow network.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The DynamoDB client's configuration: `sdk`'s, with the retry and
/// timeout policy every store call relies on ([`MAX_ATTEMPTS`],
/// [`ATTEMPT_TIMEOUT`]). Writes are safe to retry: each call is written to
/// converge when an attempt it cannot see the answer of did land (a
/// conditional put that fails on its own earlier attempt is recognised as
/// done).
pub fn client_config(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::config::Builder {
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    let timeouts = sdk
        .timeout_config()
        .map_or_else(TimeoutConfig::builder, TimeoutConfig::to_builder)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build();
    aws_sdk_dynamodb::config::Builder::from(sdk)
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(timeouts)
}

/// Exponential backoff with full jitter for `UnprocessedItems` / `UnprocessedKeys`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first ceiling.
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
    /// Calls in a row that process none of their requests before giving up (`Unavailable`).
    pub max_rounds: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(50),
            cap: Duration::from_secs(5),
            max_rounds: 10,
        }
    }
}

impl Backoff {
    /// The delay before retry `round` (0-based): uniform in `[0, min(cap, base·2^round)]`.
    pub fn delay(&self, round: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << round.min(20))
            .min(self.cap);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=ms))
    }
}

/// How a batch loop paces its resending of what DynamoDB handed back
/// unprocessed. A call that processed some of its requests made progress:
/// a short wait, and the count of fruitless calls starts again (a table
/// throttled into doing half of each call finishes a long phase rather
/// than giving up on it). A call that processed none waits longer each
/// time, and after [`Backoff::max_rounds`] such calls in a row the loop
/// gives up.
struct Pacing {
    backoff: Backoff,
    fruitless: u32,
}

impl Pacing {
    fn new(backoff: Backoff) -> Self {
        Pacing {
            backoff,
            fruitless: 0,
        }
    }

    /// A call processed everything it was sent.
    fn done(&mut self) {
        self.fruitless = 0;
    }

    /// A call sent `sent` requests and got `left` of them back: how long
    /// to wait before resending them, or `None` to give up.
    fn leftovers(&mut self, sent: usize, left: usize) -> Option<Duration> {
        if left < sent {
            self.fruitless = 0;
            return Some(self.backoff.delay(1));
        }
        if self.fruitless >= self.backoff.max_rounds {
            return None;
        }
        self.fruitless += 1;
        Some(self.backoff.delay(self.fruitless))
    }
}

/// Send `requests` in calls of at most [`MAX_BATCH_WRITE`], retrying what
/// `send` hands back as unprocessed after a backoff. `send` gets one chunk
/// and returns its unprocessed requests.
pub async fn write_chunked<F, Fut>(
    requests: Vec<WriteRequest>,
    backoff: Backoff,
    mut send: F,
) -> StoreResult<()>
where
    F: FnMut(Vec<WriteRequest>) -> Fut,
    Fut: Future<Output = StoreResult<Vec<WriteRequest>>>,
{
    let mut pending: std::collections::VecDeque<WriteRequest> = requests.into();
    let mut pacing = Pacing::new(backoff);
    while !pending.is_empty() {
        let n = pending.len().min(MAX_BATCH_WRITE);
        let chunk: Vec<WriteRequest> = pending.drain(..n).collect();
        let left = send(chunk).await?;
        if left.is_empty() {
            pacing.done();
            continue;
        }
        let Some(wait) = pacing.leftovers(n, left.len()) else {
            return Err(StoreError::Unavailable {
                message: format!(
                    "DynamoDB left {} writes unprocessed after {} calls in a row that processed none",
                    left.len(),
                    backoff.max_rounds
                ),
                source: None,
            });
        };
        tokio::time::sleep(wait).await;
        // Retry the leftovers first so the phase order holds as far as it can.
        for r in left.into_iter().rev() {
            pending.push_front(r);
        }
    }
    Ok(())
}

/// The order-preserving, last-wins set of writes for one phase (BatchWriteItem
/// refuses two requests for the same key in one call).
#[derive(Default)]
struct Writes {
    ops: BTreeMap<(String, String), (usize, Option<Item>)>,
    n: usize,
}

impl Writes {
    fn put(&mut self, item: Item) {
        let k = (
            text(&item, PK).unwrap_or_default().to_owned(),
            text(&item, SK).unwrap_or_default().to_owned(),
        );
        self.n += 1;
        self.ops.insert(k, (self.n, Some(item)));
    }
    fn delete(&mut self, pk: String, sk: String) {
        self.n += 1;
        self.ops.insert((pk, sk), (self.n, None));
    }
    fn into_requests(self) -> StoreResult<Vec<WriteRequest>> {
        let mut ops: Vec<_> = self.ops.into_iter().collect();
        ops.sort_by_key(|(_, (n, _))| *n);
        ops.into_iter()
            .map(|((pk, sk), (_, item))| {
                Ok(match item {
                    Some(item) => WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(item))
                                .build()
                                .map_err(|e| StoreError::backend("building a put", e))?,
                        )
                        .build(),
                    None => WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .set_key(Some(key(pk, sk)))
                                .build()
                                .map_err(|e| StoreError::backend("building a delete", e))?,
                        )
                        .build(),
                })
            })
            .collect()
    }
}

/// Records, their indexes, key owners and aliases in one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    handle: Handle,
    table: String,
    backoff: Backoff,
    /// The merge lease this store holds (shared by its clones).
    lease: std::sync::Arc<std::sync::Mutex<lease::Held>>,
    /// How long a session waits for the merge lease.
    lease_wait: Duration,
}

impl DynamoStore {
    /// A store over `table`. `handle` must belong to a multi-threaded runtime.
    pub fn new(client: Client, handle: Handle, table: &str) -> Self {
        DynamoStore {
            client,
            handle,
            table: table.to_owned(),
            backoff: Backoff::default(),
            lease: std::sync::Arc::default(),
            lease_wait: Duration::from_secs(300),
        }
    }

    /// Wait at most `wait` for the merge lease (see the `lease` module);
    /// five minutes unless told.
    pub fn with_lease_wait(mut self, wait: Duration) -> Self {
        self.lease_wait = wait;
        self
    }

    /// Use another backoff for leftovers.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The lineage log in this table.
    pub fn lineage(&self) -> DynamoChainLog {
        DynamoChainLog::new(self, "lineage", Some("upload_id"))
    }

    /// The access log in this table (indexed by `analyst`).
    pub fn access_log(&self) -> DynamoChainLog {
        DynamoChainLog::new(self, "access", Some("analyst"))
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn write_all(&self, writes: Writes) -> StoreResult<()> {
        self.write_requests(writes.into_requests()?).await
    }

    /// BatchWriteItem `requests`, in order, ≤25 a call, with leftovers retried.
    async fn write_requests(&self, requests: Vec<WriteRequest>) -> StoreResult<()> {
        write_chunked(requests, self.backoff, |chunk| async move {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, chunk)
                .send()
                .await
                .map_err(|e| {
                    store_error(Resource::Table(&self.table), "dynamodb:BatchWriteItem", e)
                })?;
            Ok(out
                .unprocessed_items()
                .and_then(|m| m.get(&self.table))
                .cloned()
                .unwrap_or_default())
        })
        .await
    }

    /// Consistent BatchGetItem of `keys` (deduplicated, ≤100 per call).
    async fn get_many(&self, keys: Vec<Item>) -> StoreResult<Vec<Item>> {
        self.get_many_projected(keys, false).await
    }

    /// [`get_many`](Self::get_many), reading only the key attributes when
    /// `keys_only` (an existence check pays for key bytes, not the item).
    async fn get_many_projected(&self, keys: Vec<Item>, keys_only: bool) -> StoreResult<Vec<Item>> {
        let mut seen = HashSet::new();
        let mut pending: Vec<Item> = keys
            .into_iter()
            .filter(|k| {
                seen.insert((
                    text(k, PK).unwrap_or_default().to_owned(),
                    text(k, SK).unwrap_or_default().to_owned(),
                ))
            })
            .collect();
        let mut found = Vec::new();
        let mut pacing = Pacing::new(self.backoff);
        while !pending.is_empty() {
            let n = pending.len().min(MAX_BATCH_GET);
            let chunk: Vec<Item> = pending.drain(..n).collect();
            let mut ka = KeysAndAttributes::builder()
                .set_keys(Some(chunk))
                .consistent_read(true);
            if keys_only {
                ka = ka
                    .projection_expression("#pk, #sk")
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#sk", SK);
            }
            let ka = ka
                .build()
                .map_err(|e| StoreError::backend("building a batch get", e))?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, ka)
                .send()
                .await
                .map_err(|e| {
                    store_error(Resource::Table(&self.table), "dynamodb:BatchGetItem", e)
                })?;
            if let Some(items) = out.responses().and_then(|r| r.get(&self.table)) {
                found.extend(items.iter().cloned());
            }
            let left: Vec<Item> = out
                .unprocessed_keys()
                .and_then(|m| m.get(&self.table))
                .map(|ka| ka.keys().to_vec())
                .unwrap_or_default();
            if left.is_empty() {
                pacing.done();
            } else {
                let Some(wait) = pacing.leftovers(n, left.len()) else {
                    return Err(StoreError::Unavailable {
                        message: "DynamoDB left reads unprocessed".into(),
                        source: None,
                    });
                };
                tokio::time::sleep(wait).await;
                pending.extend(left);
            }
        }
        Ok(found)
    }

    /// A consistent Query of one partition (optionally by sort-key prefix),
    /// in sort-key order; `visit` returning false stops.
    async fn query_partition(
        &self,
        pk: &str,
        sk_prefix: Option<&str>,
        visit: &mut (dyn FnMut(Item) -> bool + Send),
    ) -> StoreResult<()> {
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start.take());
            q = match sk_prefix {
                Some(p) => q
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :p)")
                    .expression_attribute_names("#sk", SK)
                    .expression_attribute_values(":p", s(p)),
                None => q.key_condition_expression("#pk = :pk"),
            };
            let out = q
                .send()
                .await
                .map_err(|e| store_error(Resource::Table(&self.table), "dynamodb:Query", e))?;
            for item in out.items() {
                if !visit(item.clone()) {
                    return Ok(());
                }
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(()),
            }
        }
    }

    async fn records_by_ids(&self, ids: &[String]) -> StoreResult<HashMap<String, StoredRecord>> {
        let keys = ids
            .iter()
            .map(|id| key(record_pk(id), "R".into()))
            .collect();
        let mut out = HashMap::new();
        for item in self.get_many(keys).await? {
            let r = item_to_record(&item)?;
            out.insert(r.record_id.clone(), r);
        }
        Ok(out)
    }

    /// Follow the pointers of one partition to the records they name, keep
    /// the ones `backs` confirms, ordered by event date then id.
    async fn follow(
        &self,
        pk: &str,
        sk_prefix: Option<&str>,
        backs: impl Fn(&StoredRecord) -> bool,
    ) -> StoreResult<Vec<StoredRecord>> {
        let mut ids = Vec::new();
        self.query_partition(pk, sk_prefix, &mut |item| {
            if let Some(id) = text(&item, "record_id") {
                ids.push(id.to_owned());
            }
            true
        })
        .await?;
        let found = self.records_by_ids(&ids).await?;
        let mut out: Vec<StoredRecord> = found.into_values().filter(|r| backs(r)).collect();
        out.sort_by(|a, b| {
            (a.event_date.as_str(), a.record_id.as_str())
                .cmp(&(b.event_date.as_str(), b.record_id.as_str()))
        });
        Ok(out)
    }
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::backend("encoding JSON", e))
}

/// The largest body a record item may inflate to: far above any curated
/// row (a few KB), so a corrupt or hostile item cannot exhaust memory.
const MAX_BODY_BYTES: usize = 1 << 20;

/// A record item. Written items carry the curated body deflated (`z`,
/// binary) and one-letter attribute names, and leave out what the keys
/// already say (the record id is in `pk`, the dataset in `gsi1pk`, the
/// event date in `gsi1sk`): about 910 bytes on average instead of 1,540,
/// so most records cost one write unit, not two (`docs/scale.md`).
/// Items written before (`body` as text, long names) are still read.
fn record_to_item(r: &StoredRecord) -> StoreResult<Item> {
    let mut item = key(record_pk(&r.record_id), "R".into());
    item.insert("p".into(), s(&r.person_id));
    item.insert("a".into(), s(&r.agency));
    item.insert("u".into(), s(&r.upload_id));
    item.insert("n".into(), AttributeValue::N(r.row.to_string()));
    if !r.match_keys.is_empty() {
        item.insert("k".into(), s(json(&r.match_keys)?));
    }
    if !r.links.is_empty() {
        item.insert("l".into(), s(json(&r.links)?));
    }
    let deflated = miniz_oxide::deflate::compress_to_vec(r.body.as_str().as_bytes(), 6);
    item.insert("z".into(), AttributeValue::B(deflated.into()));
    item.insert(GSI_PK.into(), s(format!("D#{}", r.dataset)));
    item.insert(GSI_SK.into(), s(date_sk(&r.event_date, &r.record_id)));
    Ok(item)
}

fn item_to_record(item: &Item) -> StoreResult<StoredRecord> {
    let pk = text(item, PK).unwrap_or_default();
    let id = pk.strip_prefix("R#").unwrap_or("?").to_owned();
    let corrupt = |what: &str| StoreError::Backend {
        message: format!("record {id} is corrupt: {what}"),
        source: None,
    };
    // The attribute under its current name, else its name before.
    let get = |name: &str, old: &str| {
        text(item, name)
            .or_else(|| text(item, old))
            .map(str::to_owned)
            .ok_or_else(|| corrupt(old))
    };
    let listed = |name: &str, old: &str| match text(item, name).or_else(|| text(item, old)) {
        Some(json) => Some(json),
        None if item.contains_key("z") => None,
        None => Some(""),
    };
    let match_keys: Vec<String> = match listed("k", "match_keys") {
        None => Vec::new(),
        Some(json) => serde_json::from_str(json).map_err(|_| corrupt("match_keys"))?,
    };
    let links: Vec<Link> = match listed("l", "links") {
        None => Vec::new(),
        Some(json) => serde_json::from_str(json).map_err(|_| corrupt("links"))?,
    };
    let body = match item.get("z").and_then(|v| v.as_b().ok()) {
        Some(z) => {
            let bytes =
                miniz_oxide::inflate::decompress_to_vec_with_limit(z.as_ref(), MAX_BODY_BYTES)
                    .map_err(|_| corrupt("body"))?;
            let text = String::from_utf8(bytes).map_err(|_| corrupt("body"))?;
            RecordBody::from_text(text).map_err(|_| corrupt("body"))?
        }
        None => RecordBody::from_text(get("body", "body")?).map_err(|_| corrupt("body"))?,
    };
    // The dataset and event date from the index keys (older items also
    // carried them as attributes).
    let dataset = match text(item, GSI_PK).and_then(|d| d.strip_prefix("D#")) {
        Some(d) => d.to_owned(),
        None => get("dataset", "dataset")?,
    };
    let event_date = match text(item, GSI_SK).and_then(|k| k.split_once('#')) {
        Some((date, _)) => date.to_owned(),
        None => get("event_date", "event_date")?,
    };
    Ok(StoredRecord {
        record_id: id.clone(),
        person_id: get("p", "person_id")?,
        agency: get("a", "agency")?,
        dataset,
        event_date,
        upload_id: get("u", "upload_id")?,
        row: item
            .get("n")
            .or_else(|| item.get("row"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| corrupt("row"))?,
        match_keys,
        links,
        body,
        signature: None,
    })
}

fn pointer(pk: String, sk: String, record_id: &str) -> Item {
    let mut item = key(pk, sk);
    item.insert("record_id".into(), s(record_id));
    item
}

impl RecordStore for DynamoStore {
    fn get_records(&self, ids: &[String]) -> StoreResult<Vec<Option<StoredRecord>>> {
        let found = block_on(&self.handle, self.records_by_ids(ids))?;
        Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
    }

    fn key_owners(&self, keys: &[String]) -> StoreResult<HashMap<String, String>> {
        let ks = keys
            .iter()
            .map(|k| key(matchkey_pk(k), OWNER_SK.into()))
            .collect();
        let items = block_on(&self.handle, self.get_many(ks))?;
        Ok(items
            .iter()
            .filter_map(|i| {
                let k = text(i, PK)?.strip_prefix("K#")?;
                Some((k.to_owned(), text(i, "person_id")?.to_owned()))
            })
            .collect())
    }

    fn records_of_person(&self, person_id: &str) -> StoreResult<Vec<StoredRecord>> {
        block_on(
            &self.handle,
            self.follow(&person_pk(person_id), None, |r| r.person_id == person_id),
        )
    }

    fn records_with_key(&self, k: &str) -> StoreResult<Vec<StoredRecord>> {
        block_on(
            &self.handle,
            self.follow(&matchkey_pk(k), Some("R#"), |r| {
                r.match_keys.iter().any(|m| m == k)
            }),
        )
    }

    fn records_with_link(&self, token: &str) -> StoreResult<Vec<StoredRecord>> {
        block_on(
            &self.handle,
            self.follow(&link_pk(token), None, |r| {
                r.links.iter().any(|l| l.token == token)
            }),
        )
    }

    fn scan_dataset(
        &self,
        dataset: &str,
        from: Option<&str>,
        to: Option<&str>,
        visit: &mut dyn FnMut(StoredRecord) -> bool,
    ) -> StoreResult<()> {
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI_DATASET)
                .expression_attribute_names("#pk", GSI_PK)
                .expression_attribute_values(":pk", s(format!("D#{dataset}")))
                .set_exclusive_start_key(start.take());
            // Sort keys are `date#record_id`: `#` sorts below `$`, so
            // `to$` is above every key of that date.
            q = match (from, to) {
                (None, None) => q.key_condition_expression("#pk = :pk"),
                (Some(a), None) => q
                    .key_condition_expression("#pk = :pk AND #sk >= :a")
                    .expression_attribute_values(":a", s(a)),
                (None, Some(b)) => q
                    .key_condition_expression("#pk = :pk AND #sk <= :b")
                    .expression_attribute_values(":b", s(format!("{b}$"))),
                (Some(a), Some(b)) => q
                    .key_condition_expression("#pk = :pk AND #sk BETWEEN :a AND :b")
                    .expression_attribute_values(":a", s(a))
                    .expression_attribute_values(":b", s(format!("{b}$"))),
            };
            if from.is_some() || to.is_some() {
                q = q.expression_attribute_names("#sk", GSI_SK);
            }
            let out = block_on(&self.handle, q.send())
                .map_err(|e| store_error(Resource::Table(&self.table), "dynamodb:Query", e))?;
            for item in out.items() {
                if !visit(item_to_record(item)?) {
                    return Ok(());
                }
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(()),
            }
        }
    }

    fn datasets(&self) -> StoreResult<Vec<String>> {
        let mut out = Vec::new();
        block_on(
            &self.handle,
            self.query_partition(DATASETS_PK, None, &mut |item| {
                if let Some(d) = text(&item, SK) {
                    out.push(d.to_owned());
                }
                true
            }),
        )?;
        Ok(out)
    }

    fn alias(&self, person_id: &str) -> StoreResult<Option<String>> {
        let out = block_on(&self.handle, async {
            self.client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key(alias_pk(person_id), "A".into())))
                .consistent_read(true)
                .send()
                .await
        })
        .map_err(|e| store_error(Resource::Table(&self.table), "dynamodb:GetItem", e))?;
        Ok(out
            .item()
            .and_then(|i| text(i, "new_id"))
            .map(str::to_owned))
    }

    fn translations(&self) -> Option<&dyn agencylink_core::ports::TranslationStore> {
        Some(self)
    }

    /// A session holds the merge lease: one writer at a time, as SQLite's
    /// write lock gives the embedded store. Writes still go through as
    /// they are made (no rollback), each idempotent.
    fn begin_upload(&self) -> StoreResult<()> {
        self.take_lease()
    }

    fn end_upload(&self, keep: bool) -> StoreResult<()> {
        let _ = keep;
        self.give_lease()
    }

    fn linkage(&self) -> Option<&dyn LinkageStore> {
        Some(self)
    }

    /// Every batch is visible once written: an upload announces itself in
    /// lineage (`ingest_started`) before it merges.
    fn writes_through(&self) -> bool {
        true
    }

    /// Query `M#<upload>` (consistent): one item per batch, its mark as JSON.
    fn merge_marks(&self, upload: &str) -> StoreResult<Vec<MergeMark>> {
        let mut marks = Vec::new();
        block_on(
            &self.handle,
            self.query_partition(&merge_pk(upload), None, &mut |item| {
                // A mark that does not parse is not trusted: its batch is
                // merged again (idempotent), never skipped.
                if let Some(Ok(m)) = text(&item, "mark").map(serde_json::from_str::<MergeMark>) {
                    marks.push(m);
                }
                true
            }),
        )?;
        Ok(marks)
    }

    fn put_merge_mark(&self, upload: &str, mark: &MergeMark) -> StoreResult<()> {
        let json = serde_json::to_string(mark)
            .map_err(|e| StoreError::backend("encoding a merge mark", e))?;
        let mut item = key(merge_pk(upload), format!("B#{:010}", mark.batch));
        item.insert("mark".into(), s(json));
        block_on(&self.handle, self.put_one(item))
    }

    fn clear_merge_marks(&self, upload: &str) -> StoreResult<()> {
        let pk = merge_pk(upload);
        block_on(&self.handle, async {
            let mut doomed = Writes::default();
            self.query_partition(&pk, None, &mut |item| {
                if let Some(sk) = text(&item, SK) {
                    doomed.delete(pk.clone(), sk.to_owned());
                }
                true
            })
            .await?;
            self.write_all(doomed).await
        })
    }

    /// BatchGetItem the records, then BatchWriteItem deletes of each one's
    /// person, match-key and link pointers, then of the records. Idempotent:
    /// a withdrawal interrupted part-way is run again and finishes.
    fn remove_records(&self, ids: &[String]) -> StoreResult<u64> {
        block_on(&self.handle, async {
            let found = self.records_by_ids(ids).await?;
            let mut index = Writes::default();
            for r in found.values() {
                let sk = date_sk(&r.event_date, &r.record_id);
                index.delete(person_pk(&r.person_id), sk.clone());
                for k in &r.match_keys {
                    index.delete(matchkey_pk(k), format!("R#{sk}"));
                }
                for l in &r.links {
                    index.delete(link_pk(&l.token), sk.clone());
                }
            }
            self.write_lanes(index).await?;
            let mut records = Writes::default();
            for id in found.keys() {
                records.delete(record_pk(id), "R".into());
            }
            self.write_lanes(records).await?;
            Ok(found.len() as u64)
        })
    }

    /// Query `AR#person` (consistent), each checked against its alias.
    fn aliases_to(&self, person_id: &str) -> StoreResult<Vec<String>> {
        let mut olds = Vec::new();
        block_on(&self.handle, async {
            self.query_partition(&alias_reverse_pk(person_id), None, &mut |item| {
                if let Some(old) = text(&item, SK) {
                    olds.push(old.to_owned());
                }
                true
            })
            .await
        })?;
        let mut out = Vec::new();
        for old in olds {
            if self.alias(&old)?.as_deref() == Some(person_id) {
                out.push(old);
            }
        }
        Ok(out)
    }

    /// GetItem each alias, then delete it and its reverse item.
    fn remove_aliases(&self, old_ids: &[String]) -> StoreResult<()> {
        let mut writes = Writes::default();
        for old in old_ids {
            if let Some(new) = self.alias(old)? {
                writes.delete(alias_pk(old), "A".into());
                writes.delete(alias_reverse_pk(&new), old.clone());
            }
        }
        block_on(&self.handle, self.write_all(writes))
    }

    fn apply(&self, batch: &WriteBatch) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        block_on(&self.handle, async {
            // The last version of each record in the batch wins, as in SQLite.
            let mut records: Vec<&StoredRecord> = Vec::new();
            let mut at: HashMap<&str, usize> = HashMap::new();
            for r in &batch.records {
                match at.get(r.record_id.as_str()) {
                    Some(&i) => records[i] = r,
                    None => {
                        at.insert(&r.record_id, records.len());
                        records.push(r);
                    }
                }
            }
            let ids: Vec<String> = records.iter().map(|r| r.record_id.clone()).collect();
            let old = self.records_by_ids(&ids).await?;

            let mut index = Writes::default();
            for r in &records {
                let sk = date_sk(&r.event_date, &r.record_id);
                let prev = old.get(&r.record_id);
                if let Some(o) = prev {
                    let osk = date_sk(&o.event_date, &o.record_id);
                    if o.person_id != r.person_id || osk != sk {
                        index.delete(person_pk(&o.person_id), osk.clone());
                    }
                    for k in &o.match_keys {
                        if osk != sk || !r.match_keys.contains(k) {
                            index.delete(matchkey_pk(k), format!("R#{osk}"));
                        }
                    }
                    for l in &o.links {
                        if osk != sk || !r.links.iter().any(|n| n.token == l.token) {
                            index.delete(link_pk(&l.token), osk.clone());
                        }
                    }
                }
                index.put(pointer(person_pk(&r.person_id), sk.clone(), &r.record_id));
                for k in &r.match_keys {
                    index.put(pointer(matchkey_pk(k), format!("R#{sk}"), &r.record_id));
                }
                for l in &r.links {
                    let mut p = pointer(link_pk(&l.token), sk.clone(), &r.record_id);
                    p.insert("kind".into(), s(&l.kind));
                    index.put(p);
                }
                index.put(key(DATASETS_PK.into(), r.dataset.clone()));
            }
            for k in &batch.key_removals {
                index.delete(matchkey_pk(k), OWNER_SK.into());
            }
            for (k, p) in &batch.key_owners {
                let mut item = key(matchkey_pk(k), OWNER_SK.into());
                item.insert("person_id".into(), s(p));
                index.put(item);
            }
            for (old_id, new_id) in &batch.aliases {
                let mut item = key(alias_pk(old_id), "A".into());
                item.insert("new_id".into(), s(new_id));
                index.put(item);
                index.put(key(alias_reverse_pk(new_id), old_id.clone()));
            }
            // Each phase over concurrent lanes (its writes have no order
            // among themselves); the phases one after the other, so a
            // record is committed only once its pointers are in place.
            self.write_lanes(index).await?;

            let mut commit = Writes::default();
            for r in &records {
                commit.put(record_to_item(r)?);
            }
            self.write_lanes(commit).await
        })
    }
}

/// A hash-chained log in the table: one create-only item per entry, keyed
/// by its sequence number.
///
/// An append reads entry `seq - 1` and checks its hash is `expected_prev`
/// (entries never change once written, so the check cannot go stale), then
/// puts entry `seq` with `attribute_not_exists`: of two writers racing from
/// the same head exactly one succeeds, so the chain never forks. The head is
/// the last entry (a Query, descending, limit 1). Entries carrying the index
/// field (lineage: `upload_id`; access log: `analyst`) also get a pointer in
/// a per-value partition, written first and honoured only when the entry it
/// names exists with the same hash.
#[derive(Debug, Clone)]
pub struct DynamoChainLog {
    store: DynamoStore,
    name: String,
    index_field: Option<String>,
}

impl DynamoChainLog {
    fn new(store: &DynamoStore, name: &str, index_field: Option<&str>) -> Self {
        DynamoChainLog {
            store: store.clone(),
            name: name.to_owned(),
            index_field: index_field.map(str::to_owned),
        }
    }

    fn entries_pk(&self) -> String {
        format!("C#{}#E", self.name)
    }
    fn index_pk(&self, value: &str) -> String {
        format!("C#{}#X#{value}", self.name)
    }

    /// The entries whose index field (lineage: `upload_id`; access log:
    /// `analyst`) equals `value`, in order: a Query and a BatchGetItem.
    pub fn entries_by(&self, value: &str) -> StoreResult<Vec<serde_json::Value>> {
        let store = &self.store;
        block_on(&store.handle, async {
            let mut pointers: Vec<(String, String)> = Vec::new();
            store
                .query_partition(&self.index_pk(value), None, &mut |item| {
                    if let (Some(sk), Some(h)) = (text(&item, SK), text(&item, "hash")) {
                        pointers.push((sk.to_owned(), h.to_owned()));
                    }
                    true
                })
                .await?;
            let keys = pointers
                .iter()
                .map(|(sk, _)| key(self.entries_pk(), sk.clone()))
                .collect();
            let found: HashMap<String, Item> = store
                .get_many(keys)
                .await?
                .into_iter()
                .filter_map(|i| Some((text(&i, SK)?.to_owned(), i)))
                .collect();
            Ok(pointers
                .iter()
                .filter_map(|(sk, h)| {
                    let item = found.get(sk)?;
                    (text(item, "hash") == Some(h.as_str())).then(|| entry_value(item))
                })
                .collect())
        })
    }

    /// Up to `limit` entries of the log's partition past `bound` (`>` it
    /// going forward, `<` it going back), the way given: a Query of that
    /// many items, continued only when DynamoDB's page ended early.
    fn page_from(
        &self,
        bound: String,
        forward: bool,
        limit: usize,
    ) -> StoreResult<Vec<serde_json::Value>> {
        let store = &self.store;
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        block_on(&store.handle, async {
            let mut start: Option<Item> = None;
            loop {
                let want = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
                let page = store
                    .client
                    .query()
                    .table_name(&store.table)
                    .consistent_read(true)
                    .key_condition_expression(if forward {
                        "#pk = :pk AND #sk > :b"
                    } else {
                        "#pk = :pk AND #sk < :b"
                    })
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#sk", SK)
                    .expression_attribute_values(":pk", s(self.entries_pk()))
                    .expression_attribute_values(":b", s(bound.clone()))
                    .scan_index_forward(forward)
                    .limit(want)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| store_error(Resource::Table(&store.table), "dynamodb:Query", e))?;
                out.extend(page.items().iter().map(entry_value));
                match page.last_evaluated_key() {
                    Some(k) if !k.is_empty() && out.len() < limit => start = Some(k.clone()),
                    _ => return Ok::<(), StoreError>(()),
                }
            }
        })?;
        Ok(out)
    }

    async fn put_create(&self, item: Item) -> StoreResult<bool> {
        put_if(
            &self.store.client,
            &self.store.table,
            item,
            "attribute_not_exists(#pk)",
            &[("#pk", PK)],
            &[],
            "dynamodb:PutItem",
        )
        .await
    }
}

fn seq_sk(seq: u64) -> String {
    format!("{seq:020}")
}

fn entry_value(item: &Item) -> serde_json::Value {
    let text = text(item, "entry").unwrap_or_default().to_owned();
    // A corrupt entry is kept as a string so verification can name it.
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

impl ChainLog for DynamoChainLog {
    fn head(&self) -> StoreResult<Option<(u64, String)>> {
        let store = &self.store;
        let out = block_on(&store.handle, async {
            store
                .client
                .query()
                .table_name(&store.table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(self.entries_pk()))
                .scan_index_forward(false)
                .limit(1)
                .send()
                .await
        })
        .map_err(|e| store_error(Resource::Table(&store.table), "dynamodb:Query", e))?;
        let Some(item) = out.items().first() else {
            return Ok(None);
        };
        let seq = text(item, SK).and_then(|n| n.parse().ok());
        match (seq, text(item, "hash")) {
            (Some(seq), Some(h)) => Ok(Some((seq, h.to_owned()))),
            _ => Err(StoreError::Backend {
                message: format!("the {} log's last entry is corrupt", self.name),
                source: None,
            }),
        }
    }

    fn append(
        &self,
        seq: u64,
        entry: &serde_json::Value,
        expected_prev: Option<&str>,
    ) -> StoreResult<()> {
        let hash = agencylink_core::ports::entry_hash(entry)?;
        let body = json(entry)?;
        let moved = || StoreError::Precondition(format!("the {} head moved", self.name));
        let store = &self.store;
        block_on(&store.handle, async {
            match expected_prev {
                None if seq != 1 => return Err(moved()),
                None => {}
                Some(prev) => {
                    if seq < 2 {
                        return Err(moved());
                    }
                    let before = store
                        .client
                        .get_item()
                        .table_name(&store.table)
                        .set_key(Some(key(self.entries_pk(), seq_sk(seq - 1))))
                        .consistent_read(true)
                        .send()
                        .await
                        .map_err(|e| {
                            store_error(Resource::Table(&store.table), "dynamodb:GetItem", e)
                        })?;
                    if before.item().and_then(|i| text(i, "hash")) != Some(prev) {
                        return Err(moved());
                    }
                }
            }
            let indexed = self
                .index_field
                .as_deref()
                .and_then(|f| entry.get(f))
                .and_then(serde_json::Value::as_str)
                .filter(|v| !v.is_empty());
            if let Some(value) = indexed {
                let mut pointer = key(self.index_pk(value), seq_sk(seq));
                pointer.insert("hash".into(), s(hash));
                store
                    .client
                    .put_item()
                    .table_name(&store.table)
                    .set_item(Some(pointer))
                    .send()
                    .await
                    .map_err(|e| {
                        store_error(Resource::Table(&store.table), "dynamodb:PutItem", e)
                    })?;
            }
            let mut item = key(self.entries_pk(), seq_sk(seq));
            item.insert("entry".into(), s(body));
            item.insert("hash".into(), s(hash));
            if self.put_create(item).await? {
                Ok(())
            } else {
                // The pointer written above names an entry someone else won;
                // readers ignore it (the hash differs).
                Err(moved())
            }
        })
    }

    fn entries(&self) -> StoreResult<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        block_on(
            &self.store.handle,
            self.store
                .query_partition(&self.entries_pk(), None, &mut |item| {
                    out.push(entry_value(&item));
                    true
                }),
        )?;
        Ok(out)
    }

    fn page(&self, after: u64, limit: usize) -> StoreResult<Vec<serde_json::Value>> {
        self.page_from(seq_sk(after), true, limit)
    }

    fn page_back(&self, before: Option<u64>, limit: usize) -> StoreResult<Vec<serde_json::Value>> {
        // Every seq sorts below "a": from the head.
        let bound = before.map_or_else(|| "a".to_owned(), seq_sk);
        self.page_from(bound, false, limit)
    }

    fn upload_entries(&self, upload_id: &str) -> StoreResult<Vec<serde_json::Value>> {
        if self.index_field.as_deref() == Some("upload_id") {
            return self.entries_by(upload_id);
        }
        // A log not indexed by upload (the access log) has no upload's events.
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn put(i: usize) -> WriteRequest {
        let mut item = key(format!("p{i}"), "s".into());
        item.insert("n".into(), AttributeValue::N(i.to_string()));
        WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .expect("put"),
            )
            .build()
    }

    fn quick() -> Backoff {
        Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(4),
            max_rounds: 5,
        }
    }

    #[tokio::test]
    async fn chunks_never_exceed_25_and_leftovers_are_retried() {
        let calls = AtomicUsize::new(0);
        let mut delivered = HashSet::new();
        let mut sizes = Vec::new();
        write_chunked((0..103).map(put).collect(), quick(), |chunk| {
            sizes.push(chunk.len());
            let n = calls.fetch_add(1, Ordering::SeqCst);
            // Every other call, DynamoDB "throttles" the last 7 items.
            let keep = if n.is_multiple_of(2) && chunk.len() > 7 {
                chunk.len() - 7
            } else {
                chunk.len()
            };
            let (done, left) = chunk.split_at(keep);
            for r in done {
                let item = r.put_request().expect("put").item();
                delivered.insert(text(item, PK).expect("pk").to_owned());
            }
            let left = left.to_vec();
            async move { Ok(left) }
        })
        .await
        .expect("written");
        assert!(sizes.iter().all(|&n| n <= MAX_BATCH_WRITE), "{sizes:?}");
        assert_eq!(delivered.len(), 103, "every item delivered once");
        assert!(
            sizes.len() > 103 / 25 + 1,
            "leftovers were resent: {sizes:?}"
        );
    }

    #[tokio::test]
    async fn a_table_that_does_half_of_each_call_still_gets_every_write() {
        // More fruitful rounds than `max_rounds`: progress resets the count.
        let mut delivered = HashSet::new();
        let mut calls = 0;
        write_chunked((0..200).map(put).collect(), quick(), |chunk| {
            calls += 1;
            let keep = chunk.len().div_ceil(2);
            let (done, left) = chunk.split_at(keep);
            for r in done {
                let item = r.put_request().expect("put").item();
                assert!(delivered.insert(text(item, PK).expect("pk").to_owned()));
            }
            let left = left.to_vec();
            async move { Ok(left) }
        })
        .await
        .expect("written");
        assert_eq!(delivered.len(), 200);
        assert!(calls > 5 * 2, "{calls} calls");
    }

    #[tokio::test]
    async fn persistent_leftovers_give_up_as_unavailable() {
        let err = write_chunked((0..3).map(put).collect(), quick(), |chunk| async move {
            Ok(chunk)
        })
        .await
        .expect_err("gives up");
        assert!(err.is_retryable(), "{err}");
    }

    #[test]
    fn backoff_is_jittered_and_capped() {
        let b = Backoff::default();
        for round in 0..30 {
            assert!(b.delay(round) <= b.cap);
        }
        assert!(b.delay(0) <= b.base);
    }

    #[test]
    fn records_round_trip_through_items() {
        let r = agencylink_core::conformance::sample_record(
            "r-1",
            "p-1",
            "ds",
            "2025-01-01",
            &["k"],
            &[("crime", "c")],
        );
        assert_eq!(
            item_to_record(&record_to_item(&r).expect("item")).expect("back"),
            r
        );
        let bare =
            agencylink_core::conformance::sample_record("r-2", "p-1", "ds", "2025-01-01", &[], &[]);
        let item = record_to_item(&bare).expect("item");
        assert!(
            !item.contains_key("k") && !item.contains_key("l"),
            "empty lists are left out"
        );
        assert_eq!(item_to_record(&item).expect("back"), bare);
    }

    /// The item format before bodies were deflated: tables written then
    /// are read as they are, with no migration.
    #[test]
    fn records_written_in_the_earlier_item_format_still_read() {
        let r = agencylink_core::conformance::sample_record(
            "r-1",
            "p-1",
            "ds.one",
            "2025-01-05",
            &["mk-1", "mk-2"],
            &[("crime", "c-1")],
        );
        let mut old = key(record_pk(&r.record_id), "R".into());
        for (name, value) in [
            ("record_id", r.record_id.clone()),
            ("person_id", r.person_id.clone()),
            ("agency", r.agency.clone()),
            ("dataset", r.dataset.clone()),
            ("event_date", r.event_date.clone()),
            ("upload_id", r.upload_id.clone()),
            (
                "match_keys",
                serde_json::to_string(&r.match_keys).expect("json"),
            ),
            ("links", serde_json::to_string(&r.links).expect("json")),
            ("body", r.body.as_str().to_owned()),
            (GSI_PK, format!("D#{}", r.dataset)),
            (GSI_SK, date_sk(&r.event_date, &r.record_id)),
        ] {
            old.insert(name.into(), s(value));
        }
        old.insert("row".into(), AttributeValue::N(r.row.to_string()));
        assert_eq!(item_to_record(&old).expect("an old item"), r);
    }

    /// DynamoDB bills an item by its attribute names and values.
    fn billed_bytes(item: &Item) -> usize {
        item.iter()
            .map(|(name, v)| {
                name.len()
                    + match v {
                        AttributeValue::S(t) | AttributeValue::N(t) => t.len(),
                        AttributeValue::B(b) => b.as_ref().len(),
                        _ => 0,
                    }
            })
            .sum()
    }

    #[test]
    fn a_typical_curated_record_fits_one_write_unit() {
        // A curated police.cse_crime body as `agencylink demo` writes it
        // (synthetic tokens), 1,125 bytes: the demo's average.
        let body = r#"{"record_id":"r_b3bexla2uvwtnlkedrkqlsdz4e","agency":"gmp-police","dataset":"police.cse_crime","schema_version":2,"event_date":"2025-08-15","borough":"Stockport","borough_source":"supplied","fields":{"record_ref":"local_ref:ka57cf11162:7xzwlcokjryzfk7rlmdkkgkfhshxeqas","crime_ref":"local_ref:ka57cf11162:wdyd6v3l5dom6fyvakwosnu52vci7xpb","event_date":"2025-08-15","borough":"Stockport","offence_code":"23","cse_flag":false,"person_role":"victim","family_name":"person_name:ka57cf11162:2lhq4rmrs3y42vy2dnevi3hz3qkr4ezo","given_name":"person_name:ka57cf11162:obcukzs2pie3ctq7kozwejl7nnicrws2","dob":"date:ka57cf11162:7rfp4e7mk7uc3pral2buzvw4wp2qztni","sex":"2","ethnicity":"A2","cse_model":"organised_network","premises_type":"park_open_space"},"derived":{"age":16,"age_band":"16-17"},"match_keys":["match:ka57cf11162:glfmsmtqzuqzdio6esxizg7dttyeat5b"],"links":[{"kind":"crime","token":"local_ref:ka57cf11162:wdyd6v3l5dom6fyvakwosnu52vci7xpb"}],"provenance":{"upload_id":"u_3rnmhghnvawkn2tg","row":1,"key_id":"ka57cf11162","scheme":"agencylink-pseudo-v1"}}"#;
        let mut r = agencylink_core::conformance::sample_record(
            "r_b3bexla2uvwtnlkedrkqlsdz4e",
            "p_2lhq4rmrs3y42vy2dnev",
            "police.cse_crime",
            "2025-08-15",
            &["match:ka57cf11162:glfmsmtqzuqzdio6esxizg7dttyeat5b"],
            &[(
                "crime",
                "local_ref:ka57cf11162:wdyd6v3l5dom6fyvakwosnu52vci7xpb",
            )],
        );
        r.body = RecordBody::from_text(body.to_owned()).expect("a body");
        let item = record_to_item(&r).expect("item");
        let bytes = billed_bytes(&item);
        assert!(bytes <= 1024, "{bytes} bytes: more than one write unit");
        assert_eq!(item_to_record(&item).expect("back"), r);
    }
}
