//! The probabilistic-linkage index ([`LinkageStore`]) in the record table.
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | signature (codes as JSON) | `SIG#<id>` | `SIG` |
//! | a person the signature belongs to | `SIG#<id>` | `P#<person_id>` |
//! | blocking key → signature | `BLK#<block>` | `<id>` |
//! | review item (JSON) | `REVIEW` | `<review id>` |
//! | linkage model (JSON) | `LINKMODEL` | `<version, 10 digits>` |
//!
//! Signature and person items also carry `gsi1pk = SIGS#<shard>` and
//! `gsi1sk = <id>#<sk>`, so training reads every signature with its people
//! by querying 16 index partitions instead of scanning the table.
//!
//! `put_signatures` writes in two idempotent phases: first the block
//! entries of signatures the index lacks, then the signature and person
//! items. A signature item is written only after its block entries, so a
//! signature item present means its blocks are too, and a replay that finds
//! it skips them.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use agencylink_core::linkage::{LinkModel, ReviewItem, Signature};
use agencylink_core::ports::{
    LinkageStore, SignatureEntry, StoreError, StoreResult, StoredSignature,
};
use sha2::{Digest, Sha256};

use super::{
    DynamoStore, GSI_DATASET, GSI_PK, GSI_SK, Item, MAX_BATCH_GET, MAX_BATCH_WRITE, PK, SK, Writes,
    json, key, put_if, s, text,
};
use crate::block_on;
use crate::error::{Resource, store_error};

/// Sort key of a signature's own item (`P#…` sorts below it).
const SIG_SK: &str = "SIG";
/// The review queue's partition.
const REVIEW_PK: &str = "REVIEW";
/// The model versions' partition.
const MODEL_PK: &str = "LINKMODEL";
/// Index partitions the signatures are spread over for training.
const SIG_SHARDS: u8 = 16;
/// Requests in flight at once for one linkage call.
const LANES: usize = 4;

fn sig_pk(id: &str) -> String {
    format!("SIG#{id}")
}
fn sig_person_sk(person: &str) -> String {
    format!("P#{person}")
}
fn block_pk(block: &str) -> String {
    format!("BLK#{block}")
}
fn model_sk(version: u32) -> String {
    format!("{version:010}")
}
/// The index partition of a signature: a stable hash of its id, so every
/// item of one signature lands in the same shard.
fn sig_shard_pk(id: &str) -> String {
    let h = Sha256::digest(id.as_bytes());
    format!("SIGS#{:02}", h[0] % SIG_SHARDS)
}
fn sig_shard_sk(id: &str, sk: &str) -> String {
    format!("{id}#{sk}")
}

fn corrupt(what: String) -> StoreError {
    StoreError::Backend {
        message: format!("linkage index item is corrupt: {what}"),
        source: None,
    }
}

fn from_json<T: serde::de::DeserializeOwned>(item: &Item, attr: &str) -> StoreResult<T> {
    let t = text(item, attr).ok_or_else(|| {
        corrupt(format!(
            "{} / {} has no `{attr}`",
            text(item, PK).unwrap_or("?"),
            text(item, SK).unwrap_or("?")
        ))
    })?;
    serde_json::from_str(t).map_err(|e| {
        corrupt(format!(
            "{} / {}: {e}",
            text(item, PK).unwrap_or("?"),
            text(item, SK).unwrap_or("?")
        ))
    })
}

fn signature_item(sig: &Signature) -> StoreResult<Item> {
    let mut item = key(sig_pk(&sig.id), SIG_SK.into());
    item.insert("signature".into(), s(json(sig)?));
    item.insert(GSI_PK.into(), s(sig_shard_pk(&sig.id)));
    item.insert(GSI_SK.into(), s(sig_shard_sk(&sig.id, SIG_SK)));
    Ok(item)
}

fn person_item(sig: &str, person: &str, record: &str) -> Item {
    let sk = sig_person_sk(person);
    let mut item = key(sig_pk(sig), sk.clone());
    item.insert("person_id".into(), s(person));
    item.insert("record_id".into(), s(record));
    item.insert(GSI_PK.into(), s(sig_shard_pk(sig)));
    item.insert(GSI_SK.into(), s(sig_shard_sk(sig, &sk)));
    item
}

/// Collects one signature partition's items (people first, `SIG` last).
#[derive(Default)]
struct Partition {
    signature: Option<Signature>,
    people: Vec<(String, String)>,
}

impl Partition {
    fn add(&mut self, item: &Item) -> StoreResult<()> {
        match text(item, SK) {
            Some(SIG_SK) => self.signature = Some(from_json(item, "signature")?),
            Some(sk) if sk.starts_with("P#") => {
                if let (Some(p), Some(r)) = (text(item, "person_id"), text(item, "record_id")) {
                    self.people.push((p.to_owned(), r.to_owned()));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The stored signature, when its item exists (person items written
    /// without it by an interrupted put are not shown).
    fn finish(self) -> Option<StoredSignature> {
        let mut people = self.people;
        people.sort();
        self.signature
            .map(|signature| StoredSignature { signature, people })
    }
}

/// `items` in [`LANES`] contiguous runs, each a multiple of `unit` long
/// where it can be (so no lane sends a part-filled batch it need not).
fn lanes<T>(items: Vec<T>, unit: usize) -> [Vec<T>; LANES] {
    let per = items.len().div_ceil(unit).div_ceil(LANES).max(1) * unit;
    let mut rest = items.into_iter();
    let mut out: [Vec<T>; LANES] = Default::default();
    for lane in &mut out {
        *lane = rest.by_ref().take(per).collect();
    }
    out
}

/// Run `f` on up to [`LANES`] runs of `items` at once (one task: the
/// futures are polled together, each lane's calls one after another).
async fn in_lanes<T, R, F, Fut>(items: Vec<T>, unit: usize, f: F) -> StoreResult<Vec<R>>
where
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = StoreResult<R>>,
{
    let [a, b, c, d] = lanes(items, unit);
    let (a, b, c, d) = tokio::try_join!(f(a), f(b), f(c), f(d))?;
    Ok(vec![a, b, c, d])
}

impl DynamoStore {
    /// BatchWriteItem `writes` over up to [`LANES`] concurrent lanes (the
    /// writes of one phase have no order among themselves).
    pub(super) async fn write_lanes(&self, writes: Writes) -> StoreResult<()> {
        let requests = writes.into_requests()?;
        in_lanes(requests, MAX_BATCH_WRITE, |lane| self.write_requests(lane)).await?;
        Ok(())
    }

    /// Which of `keys` exist: consistent BatchGetItem of their keys only,
    /// over up to [`LANES`] concurrent lanes.
    async fn existing(&self, keys: Vec<Item>) -> StoreResult<HashSet<(String, String)>> {
        let found = in_lanes(keys, MAX_BATCH_GET, |lane| {
            self.get_many_projected(lane, true)
        })
        .await?;
        Ok(found
            .into_iter()
            .flatten()
            .filter_map(|i| Some((text(&i, PK)?.to_owned(), text(&i, SK)?.to_owned())))
            .collect())
    }

    /// The ids under one blocking key, at most `limit`.
    async fn block_ids(&self, block: &str, limit: usize) -> StoreResult<Vec<String>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let pk = block_pk(block);
        let mut start: Option<Item> = None;
        loop {
            let left = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(pk.clone()))
                .limit(left)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store_error(Resource::Table(&self.table), "dynamodb:Query", e))?;
            out.extend(
                page.items()
                    .iter()
                    .filter_map(|i| text(i, SK))
                    .map(str::to_owned),
            );
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() && out.len() < limit => start = Some(k.clone()),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// One signature partition, consistently: the signature and its people.
    async fn signature_partition(&self, id: &str) -> StoreResult<Option<StoredSignature>> {
        let mut part = Partition::default();
        let mut failed = None;
        self.query_partition(&sig_pk(id), None, &mut |item| match part.add(&item) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        })
        .await?;
        match failed {
            Some(e) => Err(e),
            None => Ok(part.finish()),
        }
    }

    /// One item by key, consistently.
    pub(super) async fn get_one(
        &self,
        pk: String,
        sk: String,
        what: &str,
    ) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                store_error(
                    Resource::Table(&self.table),
                    format!("dynamodb:GetItem ({what})"),
                    e,
                )
            })?;
        Ok(out.item().cloned())
    }

    /// Put one item (unconditionally).
    pub(super) async fn put_one(&self, item: Item) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(Resource::Table(&self.table), "dynamodb:PutItem", e))
    }
}

impl LinkageStore for DynamoStore {
    /// One consistent BatchGetItem of keys (≤100 a call: each distinct
    /// signature item and each distinct (signature, person) item), then at
    /// most two BatchWriteItem phases of what is missing. Two writers adding
    /// the same pair at once may both see it missing and both report it new;
    /// that costs one redundant comparison, never a wrong link, and both
    /// writes are the same item (last record id wins).
    fn put_signatures(&self, entries: &[SignatureEntry]) -> StoreResult<Vec<bool>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // Distinct signatures and pairs, in first-seen order.
        let mut sigs: Vec<&Signature> = Vec::new();
        let mut sig_seen = HashSet::new();
        let mut pairs: Vec<&SignatureEntry> = Vec::new();
        let mut pair_seen = HashSet::new();
        for e in entries {
            if sig_seen.insert(e.signature.id.as_str()) {
                sigs.push(&e.signature);
            }
            if pair_seen.insert((e.signature.id.as_str(), e.person_id.as_str())) {
                pairs.push(e);
            }
        }
        block_on(&self.handle, async {
            let keys: Vec<Item> = sigs
                .iter()
                .map(|g| key(sig_pk(&g.id), SIG_SK.into()))
                .chain(
                    pairs
                        .iter()
                        .map(|e| key(sig_pk(&e.signature.id), sig_person_sk(&e.person_id))),
                )
                .collect();
            let have = self.existing(keys).await?;
            let known = |pk: String, sk: String| have.contains(&(pk, sk));

            let new_sigs: Vec<&Signature> = sigs
                .into_iter()
                .filter(|g| !known(sig_pk(&g.id), SIG_SK.into()))
                .collect();
            let mut blocks = Writes::default();
            for g in &new_sigs {
                for b in &g.b {
                    blocks.put(key(block_pk(b), g.id.clone()));
                }
            }
            self.write_lanes(blocks).await?;

            let mut commit = Writes::default();
            for g in &new_sigs {
                commit.put(signature_item(g)?);
            }
            let mut fresh_pairs = HashSet::new();
            for e in pairs {
                let id = &e.signature.id;
                if !known(sig_pk(id), sig_person_sk(&e.person_id)) {
                    commit.put(person_item(id, &e.person_id, &e.record_id));
                    fresh_pairs.insert((id.as_str(), e.person_id.as_str()));
                }
            }
            self.write_lanes(commit).await?;

            // The first entry of a new pair is new; a repeat in the batch is not.
            Ok(entries
                .iter()
                .map(|e| fresh_pairs.remove(&(e.signature.id.as_str(), e.person_id.as_str())))
                .collect())
        })
    }

    /// One consistent Query of each signature's partition (its item and its
    /// people together), up to [`LANES`] at once.
    fn get_signatures(&self, ids: &[String]) -> StoreResult<Vec<Option<StoredSignature>>> {
        let mut distinct: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for id in ids {
            if seen.insert(id.as_str()) {
                distinct.push(id.clone());
            }
        }
        let found: HashMap<String, StoredSignature> = block_on(&self.handle, async {
            let lanes = in_lanes(distinct, 1, |lane| async move {
                let mut out = Vec::new();
                for id in lane {
                    if let Some(s) = self.signature_partition(&id).await? {
                        out.push((id, s));
                    }
                }
                Ok(out)
            })
            .await?;
            Ok::<_, StoreError>(lanes.into_iter().flatten().collect())
        })?;
        Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
    }

    /// A consistent Query of `BLK#block` with `Limit` (paged only if the
    /// 1 MB page limit cuts it first).
    fn signatures_in_block(&self, block: &str, limit: usize) -> StoreResult<Vec<String>> {
        block_on(&self.handle, self.block_ids(block, limit))
    }

    /// [`Self::signatures_in_block`] for many keys, up to [`LANES`] Queries
    /// at once: one upload batch asks for thousands.
    fn signatures_in_blocks(
        &self,
        blocks: &[String],
        limit: usize,
    ) -> StoreResult<Vec<Vec<String>>> {
        block_on(&self.handle, async {
            let lanes = in_lanes(blocks.to_vec(), 1, |lane| async move {
                let mut out = Vec::with_capacity(lane.len());
                for b in lane {
                    out.push(self.block_ids(&b, limit).await?);
                }
                Ok(out)
            })
            .await?;
            // Lanes are contiguous runs, so their concatenation keeps the order asked.
            Ok(lanes.into_iter().flatten().collect())
        })
    }

    /// Queries the [`SIG_SHARDS`] index partitions `gsi1pk = SIGS#<n>` in
    /// turn, paged. Within a shard the items sort by `<id>#<sk>`, so a
    /// signature's people arrive together, followed by its `SIG` item. The
    /// index is eventually consistent: a signature written in the last
    /// moments may be missed, which training (a sample) tolerates.
    fn scan_signatures(&self, visit: &mut dyn FnMut(StoredSignature) -> bool) -> StoreResult<()> {
        block_on(&self.handle, async {
            for shard in 0..SIG_SHARDS {
                let shard_pk = format!("SIGS#{shard:02}");
                let mut current: Option<(String, Partition)> = None;
                let mut start: Option<Item> = None;
                loop {
                    let page = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .index_name(GSI_DATASET)
                        .key_condition_expression("#pk = :pk")
                        .expression_attribute_names("#pk", GSI_PK)
                        .expression_attribute_values(":pk", s(shard_pk.clone()))
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(|e| {
                            store_error(Resource::Table(&self.table), "dynamodb:Query", e)
                        })?;
                    for item in page.items() {
                        let Some(id) = text(item, PK).and_then(|p| p.strip_prefix("SIG#")) else {
                            continue;
                        };
                        if current.as_ref().is_none_or(|(c, _)| c != id) {
                            // A group with no SIG item is an interrupted put: skip it.
                            current = Some((id.to_owned(), Partition::default()));
                        }
                        let Some((_, part)) = current.as_mut() else {
                            continue;
                        };
                        part.add(item)?;
                        if text(item, SK) == Some(SIG_SK) {
                            let (_, done) = current.take().unwrap_or_default();
                            if let Some(sig) = done.finish()
                                && !visit(sig)
                            {
                                return Ok(());
                            }
                        }
                    }
                    match page.last_evaluated_key() {
                        Some(k) if !k.is_empty() => start = Some(k.clone()),
                        _ => break,
                    }
                }
            }
            Ok(())
        })
    }

    /// The 16 index partitions (as `scan_signatures`) to find the removed
    /// records' (signature, person) items, then BatchWriteItem deletes of
    /// them and of each signature left with no person (its item and its
    /// block entries). The index is eventually consistent: a pair written
    /// in the moments before may be missed, and then stays, naming a
    /// record that no longer exists (linkage reads the record and finds
    /// none).
    fn forget_records(&self, record_ids: &[String]) -> StoreResult<u64> {
        let gone: HashSet<&str> = record_ids.iter().map(String::as_str).collect();
        let mut writes = Writes::default();
        let mut removed = 0;
        self.scan_signatures(&mut |sig| {
            let hit: Vec<&(String, String)> = sig
                .people
                .iter()
                .filter(|(_, r)| gone.contains(r.as_str()))
                .collect();
            if hit.is_empty() {
                return true;
            }
            let id = &sig.signature.id;
            for (person, _) in &hit {
                writes.delete(sig_pk(id), sig_person_sk(person));
            }
            if hit.len() == sig.people.len() {
                for b in &sig.signature.b {
                    writes.delete(block_pk(b), id.clone());
                }
                writes.delete(sig_pk(id), SIG_SK.into());
                removed += 1;
            }
            true
        })?;
        block_on(&self.handle, self.write_all(writes))?;
        Ok(removed)
    }

    /// DeleteItem `REVIEW / <id>`.
    fn remove_review(&self, id: &str) -> StoreResult<()> {
        let mut writes = Writes::default();
        writes.delete(REVIEW_PK.into(), id.to_owned());
        block_on(&self.handle, self.write_all(writes))
    }

    /// PutItem `REVIEW / <id>` (replaces).
    fn put_review(&self, item: &ReviewItem) -> StoreResult<()> {
        if item.id.is_empty() {
            return Err(StoreError::Invalid("a review item needs an id".into()));
        }
        let mut row = key(REVIEW_PK.into(), item.id.clone());
        row.insert("item".into(), s(json(item)?));
        block_on(&self.handle, async {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(row))
                .send()
                .await
        })
        .map_err(|e| store_error(Resource::Table(&self.table), "dynamodb:PutItem", e))?;
        Ok(())
    }

    /// GetItem `REVIEW / <id>` (consistent).
    fn get_review(&self, id: &str) -> StoreResult<Option<ReviewItem>> {
        if id.is_empty() {
            return Ok(None);
        }
        let item = block_on(
            &self.handle,
            self.get_one(REVIEW_PK.into(), id.to_owned(), "a review item"),
        )?;
        item.map(|i| from_json(&i, "item")).transpose()
    }

    /// Query `REVIEW` (consistent): the queue in id order.
    fn review_items(&self) -> StoreResult<Vec<ReviewItem>> {
        let mut out = Vec::new();
        let mut failed = None;
        block_on(
            &self.handle,
            self.query_partition(REVIEW_PK, None, &mut |item| {
                match from_json(&item, "item") {
                    Ok(r) => out.push(r),
                    Err(e) => failed = Some(e),
                }
                failed.is_none()
            }),
        )?;
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// PutItem `LINKMODEL / <version>` with `attribute_not_exists(pk)`: a
    /// version is written once, and a second writer of it is refused.
    fn put_model(&self, model: &LinkModel) -> StoreResult<()> {
        let mut row = key(MODEL_PK.into(), model_sk(model.version));
        row.insert("model".into(), s(json(model)?));
        let written = block_on(
            &self.handle,
            put_if(
                &self.client,
                &self.table,
                row,
                "attribute_not_exists(#pk)",
                &[("#pk", PK)],
                &[],
                "dynamodb:PutItem",
            ),
        )?;
        if written {
            Ok(())
        } else {
            Err(StoreError::AlreadyExists(format!(
                "linkage model version {}",
                model.version
            )))
        }
    }

    /// Query `LINKMODEL` (consistent), descending, `Limit 1`.
    fn model(&self) -> StoreResult<Option<LinkModel>> {
        let out = block_on(&self.handle, async {
            self.client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(MODEL_PK))
                .scan_index_forward(false)
                .limit(1)
                .send()
                .await
        })
        .map_err(|e| store_error(Resource::Table(&self.table), "dynamodb:Query", e))?;
        out.items()
            .first()
            .map(|i| from_json(i, "model"))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_keep_order_and_whole_batches() {
        for n in [0usize, 1, 24, 25, 26, 99, 100, 101, 250, 1000, 3001] {
            let ls = lanes((0..n).collect::<Vec<_>>(), 25);
            let flat: Vec<usize> = ls.iter().flatten().copied().collect();
            assert_eq!(flat, (0..n).collect::<Vec<_>>(), "n = {n}");
            let full = ls.iter().filter(|l| !l.is_empty()).count();
            assert!(full <= LANES);
            // No lane carries more than its share of whole batches.
            let share = n.div_ceil(25).div_ceil(LANES) * 25;
            assert!(ls.iter().all(|l| l.len() <= share), "n = {n}");
            // Every lane but the last non-empty one is whole batches.
            for l in ls.iter().filter(|l| !l.is_empty()).rev().skip(1) {
                assert_eq!(l.len() % 25, 0, "n = {n}");
            }
        }
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        let a = sig_shard_pk("s_abc");
        assert_eq!(a, sig_shard_pk("s_abc"));
        let n: u8 = a["SIGS#".len()..].parse().expect("number");
        assert!(n < SIG_SHARDS);
        let spread: HashSet<String> = (0..200).map(|i| sig_shard_pk(&format!("s_{i}"))).collect();
        assert_eq!(spread.len(), usize::from(SIG_SHARDS));
    }

    #[test]
    fn person_items_sort_before_the_signature_item() {
        let p = sig_shard_sk("s_x", &sig_person_sk("zzzz"));
        assert!(p < sig_shard_sk("s_x", SIG_SK));
        assert!(sig_shard_sk("s_x", SIG_SK) < sig_shard_sk("s_xa", &sig_person_sk("a")));
    }
}
