//! A key rotation's state and translations in the records' database.
//!
//! Written in the open upload's transaction when there is one (as the
//! linkage index is), so an ingest killed after recording translations but
//! before publishing keeps neither, and a migration that fails rolls back
//! with the records it was rewriting.

use std::collections::HashMap;

use agencylink_core::ports::{StoreResult, TranslationStore};
use rusqlite::{OptionalExtension, params};

use super::records::read_scope;
use super::{SqliteStore, db_err, lock};

/// The one row of `key_rotation`.
const STATE: &str = "rotation";

impl TranslationStore for SqliteStore {
    fn rotation_state(&self) -> StoreResult<Option<String>> {
        let db = lock(&self.conn);
        read_scope(&db.conn, |conn| {
            conn.prepare_cached("SELECT state FROM key_rotation WHERE name = ?1")
                .map_err(db_err("preparing a query"))?
                .query_row([STATE], |r| r.get(0))
                .optional()
                .map_err(db_err("reading the key rotation"))
        })
    }

    fn set_rotation_state(&self, state: Option<&str>) -> StoreResult<()> {
        self.link_write(|conn| {
            match state {
                Some(s) => conn.execute(
                    "INSERT OR REPLACE INTO key_rotation (name, state) VALUES (?1, ?2)",
                    params![STATE, s],
                ),
                None => conn.execute("DELETE FROM key_rotation WHERE name = ?1", [STATE]),
            }
            .map_err(db_err("writing the key rotation"))?;
            Ok(())
        })
    }

    fn put_translations(&self, pairs: &[(String, String)]) -> StoreResult<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        self.link_write(|conn| {
            let mut put = conn
                .prepare_cached("INSERT OR REPLACE INTO key_translation (old, new) VALUES (?1, ?2)")
                .map_err(db_err("preparing a write"))?;
            for (old, new) in pairs {
                put.execute(params![old, new])
                    .map_err(db_err("writing a key translation"))?;
            }
            Ok(())
        })
    }

    fn get_translations(&self, olds: &[String]) -> StoreResult<HashMap<String, String>> {
        let db = lock(&self.conn);
        read_scope(&db.conn, |conn| {
            let mut get = conn
                .prepare_cached("SELECT new FROM key_translation WHERE old = ?1")
                .map_err(db_err("preparing a query"))?;
            let mut out = HashMap::new();
            for old in olds {
                if let Some(new) = get
                    .query_row([old], |r| r.get::<_, String>(0))
                    .optional()
                    .map_err(db_err("reading a key translation"))?
                {
                    out.insert(old.clone(), new);
                }
            }
            Ok(out)
        })
    }

    fn clear_translations(&self) -> StoreResult<u64> {
        self.link_write(|conn| {
            let n = conn
                .execute("DELETE FROM key_translation", [])
                .map_err(db_err("clearing the key translations"))?;
            Ok(n as u64)
        })
    }

    fn scan_translations(&self, f: &mut dyn FnMut(&str, &str)) -> StoreResult<()> {
        let db = lock(&self.conn);
        read_scope(&db.conn, |conn| {
            let mut all = conn
                .prepare_cached("SELECT old, new FROM key_translation")
                .map_err(db_err("preparing a query"))?;
            let mut rows = all
                .query([])
                .map_err(db_err("reading the key translations"))?;
            while let Some(row) = rows.next().map_err(db_err("reading a key translation"))? {
                let old: String = row.get(0).map_err(db_err("reading a key translation"))?;
                let new: String = row.get(1).map_err(db_err("reading a key translation"))?;
                f(&old, &new);
            }
            Ok(())
        })
    }

    fn delete_translations(&self, olds: &[String]) -> StoreResult<u64> {
        if olds.is_empty() {
            return Ok(0);
        }
        self.link_write(|conn| {
            let mut delete = conn
                .prepare_cached("DELETE FROM key_translation WHERE old = ?1")
                .map_err(db_err("preparing a write"))?;
            let mut n = 0;
            for old in olds {
                n += delete
                    .execute([old])
                    .map_err(db_err("deleting a key translation"))? as u64;
            }
            Ok(n)
        })
    }
}
