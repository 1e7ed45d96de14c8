//! The linkage index over SQLite, in the records' database.
//!
//! It shares the connection and the open upload with the records because
//! it describes them: a signature names the people and records that carry
//! it, and a review item names people. Kept elsewhere, a rolled-back or
//! killed upload would leave signatures pointing at records that were
//! never published, and those signatures would never be reported new
//! again, so their records would never be linked. In one transaction the
//! two cannot disagree. Outside an upload each write is a transaction of
//! its own, taken IMMEDIATE so a read-then-write (a model version check)
//! holds the write lock throughout.
//!
//! A signature is stored as JSON, read whole or not at all: nothing
//! queries its codes, only its blocking keys, which get a table of their
//! own. A pair already in the index implies its signature is (both are
//! written in the same transaction), so `put_signatures` encodes and
//! writes a signature only when one of its pairs is new: on re-ingest,
//! most entries cost one ignored insert.

use agencylink_core::linkage::{LinkModel, ReviewItem, Signature};
use agencylink_core::ports::{
    LinkageStore, SignatureEntry, StoreError, StoreResult, StoredSignature,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::records::{read_scope, sorted_order};
use super::{Db, SqliteStore, db_err, json, lock};

impl SqliteStore {
    /// Run `f`'s writes in the open upload's transaction, as its record
    /// writes are, or in a transaction of their own.
    ///
    /// Inside an upload a failed write fails the upload (it can then only
    /// be rolled back), as a failed record write does: what it wrote may be
    /// partial. A refusal made before writing (`AlreadyExists`) does not.
    pub(super) fn link_write<T>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut db = lock(&self.conn);
        let Db { conn, upload, .. } = &mut *db;
        match upload.as_mut() {
            Some(up) => {
                if up.failed {
                    return Err(StoreError::Invalid(
                        "a write of this upload already failed; end it and start again".into(),
                    ));
                }
                let out = f(conn);
                if matches!(&out, Err(e) if !matches!(e, StoreError::AlreadyExists(_))) {
                    up.failed = true;
                }
                out
            }
            None => {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(db_err("starting a linkage write"))?;
                let out = f(&tx)?;
                tx.commit().map_err(db_err("committing a linkage write"))?;
                Ok(out)
            }
        }
    }
}

/// A stored JSON value, or an error naming what is corrupt.
fn decode<T: serde::de::DeserializeOwned>(
    text: &str,
    what: impl FnOnce() -> String,
) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::backend(format!("{} is corrupt", what()), e))
}

fn signature_of(id: &str, codes: &str) -> StoreResult<Signature> {
    decode(codes, || format!("signature {id} in the linkage index"))
}

impl LinkageStore for SqliteStore {
    fn put_signatures(&self, entries: &[SignatureEntry]) -> StoreResult<Vec<bool>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.link_write(|conn| {
            // By signature, then person: neighbouring writes share B-tree
            // pages, and one signature's entries are together. The sort is
            // stable, so of a pair given twice the first is the new one and
            // its record the one kept, as in the order given.
            let mut order: Vec<usize> = (0..entries.len()).collect();
            order.sort_by(|&a, &b| {
                let (a, b) = (&entries[a], &entries[b]);
                (&a.signature.id, &a.person_id).cmp(&(&b.signature.id, &b.person_id))
            });
            let mut pair = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO link_signature_person (sig, person_id, record_id) VALUES (?1, ?2, ?3)",
                )
                .map_err(db_err("preparing a write"))?;
            let mut sig = conn
                .prepare_cached("INSERT OR IGNORE INTO link_signature (id, codes) VALUES (?1, ?2)")
                .map_err(db_err("preparing a write"))?;
            let mut fresh = vec![false; entries.len()];
            // The signature whose row is known to be there.
            let mut written: Option<&str> = None;
            let mut blocks: Vec<(&str, &str)> = Vec::new();
            for i in order {
                let e = &entries[i];
                let id = e.signature.id.as_str();
                let new = pair
                    .execute(params![id, e.person_id, e.record_id])
                    .map_err(db_err("writing a signature's person"))?
                    == 1;
                fresh[i] = new;
                if !new {
                    // A known pair: its signature is stored.
                    written = Some(id);
                } else if written != Some(id) {
                    written = Some(id);
                    let added = sig
                        .execute(params![id, json(&*e.signature)?])
                        .map_err(db_err("writing a signature"))?
                        == 1;
                    if added {
                        blocks.extend(e.signature.b.iter().map(|b| (b.as_str(), id)));
                    }
                }
            }
            // In the block index's order, each entry once.
            blocks.sort_unstable();
            blocks.dedup();
            let mut block = conn
                .prepare_cached("INSERT OR IGNORE INTO link_block (block, sig) VALUES (?1, ?2)")
                .map_err(db_err("preparing a write"))?;
            for (b, id) in blocks {
                block
                    .execute([b, id])
                    .map_err(db_err("writing a blocking key"))?;
            }
            Ok(fresh)
        })
    }

    fn get_signatures(&self, ids: &[String]) -> StoreResult<Vec<Option<StoredSignature>>> {
        let db = lock(&self.conn);
        read_scope(&db.conn, |conn| {
            let mut codes = conn
                .prepare_cached("SELECT codes FROM link_signature WHERE id = ?1")
                .map_err(db_err("preparing a query"))?;
            let mut people = conn
                .prepare_cached(
                    "SELECT person_id, record_id FROM link_signature_person WHERE sig = ?1 ORDER BY person_id",
                )
                .map_err(db_err("preparing a query"))?;
            let mut out = vec![None; ids.len()];
            // In key order, so neighbouring probes share pages.
            for i in sorted_order(ids) {
                let id = &ids[i];
                let Some(text) = codes
                    .query_row([id], |r| r.get::<_, String>(0))
                    .optional()
                    .map_err(db_err("reading a signature"))?
                else {
                    continue;
                };
                let signature = signature_of(id, &text)?;
                let found = people
                    .query_map([id], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(db_err("reading a signature's people"))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(db_err("reading a signature's people"))?;
                out[i] = Some(StoredSignature {
                    signature,
                    people: found,
                });
            }
            Ok(out)
        })
    }

    fn signatures_in_block(&self, block: &str, limit: usize) -> StoreResult<Vec<String>> {
        let db = lock(&self.conn);
        let mut stmt = db
            .conn
            .prepare_cached("SELECT sig FROM link_block WHERE block = ?1 ORDER BY sig LIMIT ?2")
            .map_err(db_err("preparing a query"))?;
        let rows = stmt
            .query_map(
                params![block, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| r.get::<_, String>(0),
            )
            .map_err(db_err("reading a block"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db_err("reading a block"))
    }

    fn scan_signatures(&self, visit: &mut dyn FnMut(StoredSignature) -> bool) -> StoreResult<()> {
        let db = lock(&self.conn);
        // One statement, so one snapshot; both tables are walked in key
        // order and a signature's people come together.
        let mut stmt = db
            .conn
            .prepare_cached(
                "SELECT s.id, s.codes, p.person_id, p.record_id FROM link_signature s LEFT JOIN link_signature_person p ON p.sig = s.id ORDER BY s.id, p.person_id",
            )
            .map_err(db_err("preparing a scan"))?;
        let mut rows = stmt.query([]).map_err(db_err("scanning signatures"))?;
        let mut current: Option<StoredSignature> = None;
        while let Some(row) = rows.next().map_err(db_err("scanning signatures"))? {
            let id: String = row.get(0).map_err(db_err("scanning signatures"))?;
            if current.as_ref().is_none_or(|c| c.signature.id != id) {
                if let Some(done) = current.take()
                    && !visit(done)
                {
                    return Ok(());
                }
                let codes: String = row.get(1).map_err(db_err("scanning signatures"))?;
                current = Some(StoredSignature {
                    signature: signature_of(&id, &codes)?,
                    people: Vec::new(),
                });
            }
            let person: Option<String> = row.get(2).map_err(db_err("scanning signatures"))?;
            let record: Option<String> = row.get(3).map_err(db_err("scanning signatures"))?;
            if let (Some(c), Some(person), Some(record)) = (current.as_mut(), person, record) {
                c.people.push((person, record));
            }
        }
        if let Some(done) = current {
            visit(done);
        }
        Ok(())
    }

    fn forget_records(&self, record_ids: &[String]) -> StoreResult<u64> {
        if record_ids.is_empty() {
            return Ok(0);
        }
        let gone: std::collections::HashSet<&str> = record_ids.iter().map(String::as_str).collect();
        self.link_write(|conn| {
            // Pairs are keyed by signature and person, not record: one
            // pass over them finds the removed records' pairs (a withdrawal
            // is rare; an index on record_id would cost every ingest).
            let mut pairs: Vec<(String, String)> = Vec::new();
            {
                let mut stmt = conn
                    .prepare("SELECT sig, person_id, record_id FROM link_signature_person")
                    .map_err(db_err("preparing a query"))?;
                let mut rows = stmt
                    .query([])
                    .map_err(db_err("reading the linkage index"))?;
                while let Some(row) = rows.next().map_err(db_err("reading the linkage index"))? {
                    let record: String = row.get(2).map_err(db_err("reading the linkage index"))?;
                    if gone.contains(record.as_str()) {
                        pairs.push((
                            row.get(0).map_err(db_err("reading the linkage index"))?,
                            row.get(1).map_err(db_err("reading the linkage index"))?,
                        ));
                    }
                }
            }
            let mut del = conn
                .prepare_cached(
                    "DELETE FROM link_signature_person WHERE sig = ?1 AND person_id = ?2",
                )
                .map_err(db_err("preparing a write"))?;
            for (sig, person) in &pairs {
                del.execute([sig, person])
                    .map_err(db_err("removing a signature's person"))?;
            }
            let sigs: std::collections::BTreeSet<&str> =
                pairs.iter().map(|(s, _)| s.as_str()).collect();
            let mut removed = 0;
            for sig in sigs {
                let left: bool = conn
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM link_signature_person WHERE sig = ?1)",
                    )
                    .map_err(db_err("preparing a query"))?
                    .query_row([sig], |r| r.get(0))
                    .map_err(db_err("reading the linkage index"))?;
                if left {
                    continue;
                }
                let codes: Option<String> = conn
                    .prepare_cached("SELECT codes FROM link_signature WHERE id = ?1")
                    .map_err(db_err("preparing a query"))?
                    .query_row([sig], |r| r.get(0))
                    .optional()
                    .map_err(db_err("reading a signature"))?;
                if let Some(codes) = codes {
                    for b in &signature_of(sig, &codes)?.b {
                        conn.prepare_cached("DELETE FROM link_block WHERE block = ?1 AND sig = ?2")
                            .map_err(db_err("preparing a write"))?
                            .execute([b.as_str(), sig])
                            .map_err(db_err("removing a blocking key"))?;
                    }
                }
                conn.prepare_cached("DELETE FROM link_signature WHERE id = ?1")
                    .map_err(db_err("preparing a write"))?
                    .execute([sig])
                    .map_err(db_err("removing a signature"))?;
                removed += 1;
            }
            Ok(removed)
        })
    }

    fn remove_review(&self, id: &str) -> StoreResult<()> {
        self.link_write(|conn| {
            conn.prepare_cached("DELETE FROM link_review WHERE id = ?1")
                .map_err(db_err("preparing a write"))?
                .execute([id])
                .map_err(db_err("removing a review item"))?;
            Ok(())
        })
    }

    fn put_review(&self, item: &ReviewItem) -> StoreResult<()> {
        let text = json(item)?;
        self.link_write(|conn| {
            conn.prepare_cached("INSERT OR REPLACE INTO link_review (id, item) VALUES (?1, ?2)")
                .map_err(db_err("preparing a write"))?
                .execute([&item.id, &text])
                .map_err(db_err("writing a review item"))?;
            Ok(())
        })
    }

    fn get_review(&self, id: &str) -> StoreResult<Option<ReviewItem>> {
        let db = lock(&self.conn);
        let text: Option<String> = db
            .conn
            .prepare_cached("SELECT item FROM link_review WHERE id = ?1")
            .map_err(db_err("preparing a query"))?
            .query_row([id], |r| r.get(0))
            .optional()
            .map_err(db_err("reading a review item"))?;
        text.map(|t| decode(&t, || format!("review item {id}")))
            .transpose()
    }

    fn review_items(&self) -> StoreResult<Vec<ReviewItem>> {
        let db = lock(&self.conn);
        let mut stmt = db
            .conn
            .prepare_cached("SELECT id, item FROM link_review ORDER BY id")
            .map_err(db_err("preparing a query"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(db_err("reading the review queue"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, text) = row.map_err(db_err("reading the review queue"))?;
            out.push(decode(&text, || format!("review item {id}"))?);
        }
        Ok(out)
    }

    fn put_model(&self, model: &LinkModel) -> StoreResult<()> {
        let text = json(model)?;
        let version = i64::from(model.version);
        self.link_write(|conn| {
            let there = conn
                .prepare_cached("SELECT 1 FROM link_model WHERE version = ?1")
                .map_err(db_err("preparing a query"))?
                .exists([version])
                .map_err(db_err("reading the linkage models"))?;
            if there {
                return Err(StoreError::AlreadyExists(format!(
                    "linkage model version {}",
                    model.version
                )));
            }
            conn.prepare_cached("INSERT INTO link_model (version, model) VALUES (?1, ?2)")
                .map_err(db_err("preparing a write"))?
                .execute(params![version, text])
                .map_err(db_err("writing a linkage model"))?;
            Ok(())
        })
    }

    fn model(&self) -> StoreResult<Option<LinkModel>> {
        let db = lock(&self.conn);
        let row: Option<(i64, String)> = db
            .conn
            .prepare_cached("SELECT version, model FROM link_model ORDER BY version DESC LIMIT 1")
            .map_err(db_err("preparing a query"))?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(db_err("reading the linkage model"))?;
        row.map(|(v, t)| decode(&t, || format!("linkage model version {v}")))
            .transpose()
    }
}
