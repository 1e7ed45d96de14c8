//! A key rotation's state and translations ([`TranslationStore`]) in the
//! record table.
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | the open rotation (JSON) | `ROTATION` | `STATE` |
//! | old value → new value | `XL#<shard>` | `<old value>` |
//!
//! Translations are spread over 16 partitions by a hash of the old value,
//! so a rotation's writes do not pile onto one partition and deleting them
//! all is 16 Queries, never a Scan.

use std::collections::HashMap;

use agencylink_core::ports::{StoreResult, TranslationStore};
use sha2::{Digest, Sha256};

use super::{DynamoStore, Item, PK, SK, Writes, key, s, text};
use crate::block_on;
use crate::error::{Resource, store_error};

const STATE_PK: &str = "ROTATION";
const STATE_SK: &str = "STATE";
const SHARDS: u8 = 16;

fn shard_pk(old: &str) -> String {
    let h = Sha256::digest(old.as_bytes());
    format!("XL#{:02}", h[0] % SHARDS)
}

impl TranslationStore for DynamoStore {
    /// GetItem `ROTATION / STATE` (consistent).
    fn rotation_state(&self) -> StoreResult<Option<String>> {
        let item = block_on(
            &self.handle,
            self.get_one(STATE_PK.into(), STATE_SK.into(), "the key rotation"),
        )?;
        Ok(item.and_then(|i| text(&i, "state").map(str::to_owned)))
    }

    fn set_rotation_state(&self, state: Option<&str>) -> StoreResult<()> {
        let table = &self.table;
        block_on(&self.handle, async {
            match state {
                Some(text) => {
                    let mut item = key(STATE_PK.into(), STATE_SK.into());
                    item.insert("state".into(), s(text));
                    self.put_one(item).await
                }
                None => self
                    .client
                    .delete_item()
                    .table_name(table)
                    .set_key(Some(key(STATE_PK.into(), STATE_SK.into())))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| store_error(Resource::Table(table), "dynamodb:DeleteItem", e)),
            }
        })
    }

    fn put_translations(&self, pairs: &[(String, String)]) -> StoreResult<()> {
        let mut writes = Writes::default();
        for (old, new) in pairs {
            let mut item = key(shard_pk(old), old.clone());
            item.insert("new".into(), s(new.clone()));
            writes.put(item);
        }
        block_on(&self.handle, self.write_all(writes))
    }

    fn get_translations(&self, olds: &[String]) -> StoreResult<HashMap<String, String>> {
        let keys: Vec<Item> = olds.iter().map(|o| key(shard_pk(o), o.clone())).collect();
        let items = block_on(&self.handle, self.get_many(keys))?;
        Ok(items
            .iter()
            .filter_map(|i| Some((text(i, SK)?.to_owned(), text(i, "new")?.to_owned())))
            .collect())
    }

    fn clear_translations(&self) -> StoreResult<u64> {
        block_on(&self.handle, async {
            let mut writes = Writes::default();
            let mut n = 0;
            for shard in 0..SHARDS {
                let pk = format!("XL#{shard:02}");
                self.query_partition(&pk, None, &mut |item| {
                    if let (Some(p), Some(k)) = (text(&item, PK), text(&item, SK)) {
                        writes.delete(p.to_owned(), k.to_owned());
                        n += 1;
                    }
                    true
                })
                .await?;
            }
            self.write_all(writes).await?;
            Ok(n)
        })
    }

    /// Query `XL#00` … `XL#15`.
    fn scan_translations(&self, f: &mut dyn FnMut(&str, &str)) -> StoreResult<()> {
        for shard in 0..SHARDS {
            // One shard at a time in memory: `f` stays on this thread.
            let mut pairs: Vec<(String, String)> = Vec::new();
            block_on(&self.handle, async {
                let pk = format!("XL#{shard:02}");
                self.query_partition(&pk, None, &mut |item| {
                    if let (Some(old), Some(new)) = (text(&item, SK), text(&item, "new")) {
                        pairs.push((old.to_owned(), new.to_owned()));
                    }
                    true
                })
                .await
            })?;
            for (old, new) in &pairs {
                f(old, new);
            }
        }
        Ok(())
    }

    /// BatchWriteItem deletes of `XL#<shard> / old`. DynamoDB does not say
    /// whether a deleted item existed, so the count is of those asked for.
    fn delete_translations(&self, olds: &[String]) -> StoreResult<u64> {
        let mut writes = Writes::default();
        for old in olds {
            writes.delete(shard_pk(old), old.clone());
        }
        block_on(&self.handle, self.write_all(writes))?;
        Ok(olds.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_in_range() {
        let a = shard_pk("match:k1:abc");
        assert_eq!(a, shard_pk("match:k1:abc"));
        let n: u8 = a["XL#".len()..].parse().expect("number");
        assert!(n < SHARDS);
    }
}
