//! The SQLite store: records with their match-key and link indexes, key
//! ownership, person aliases, and the two hash-chained logs (lineage and the
//! access log), in one database file in WAL mode. Each batch is one
//! transaction, so a killed process leaves either all of a batch or none.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use agencylink_core::ports::{
    ChainLog, Link, RecordBody, RecordStore, StoreError, StoreResult, StoredRecord, WriteBatch,
};
use rusqlite::{Connection, OptionalExtension, params};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    record_id    TEXT PRIMARY KEY,
    person_id    TEXT NOT NULL,
    agency       TEXT NOT NULL,
    dataset      TEXT NOT NULL,
    event_date   TEXT NOT NULL,
    upload_id    TEXT NOT NULL,
    row          INTEGER NOT NULL,
    match_keys   TEXT NOT NULL,
    links        TEXT NOT NULL,
    body         TEXT NOT NULL
);
-- Narrow indexes (no record_id): every ingest inserts into them at random
-- places, and half the bytes means twice the entries per cached page. Reads
-- sort the few ties on record_id themselves.
DROP INDEX IF EXISTS records_by_person;
DROP INDEX IF EXISTS records_by_dataset;
CREATE INDEX IF NOT EXISTS records_person ON records (person_id);
CREATE INDEX IF NOT EXISTS records_dataset_date ON records (dataset, event_date);
-- Match-key and link-token indexes hold a 64-bit hash of the token and the
-- record's rowid (about 14 bytes an entry instead of about 80): readers
-- check each hit against the record's own keys or links, so a collision
-- only costs a row read and filtered out.
CREATE TABLE IF NOT EXISTS key_index (
    hash INTEGER NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (hash, rid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS link_index (
    hash INTEGER NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (hash, rid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS key_owner (key TEXT PRIMARY KEY, person_id TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aliases (old_id TEXT PRIMARY KEY, new_id TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lineage (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, entry TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS access_log (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, entry TEXT NOT NULL);
";

fn db_err(what: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable {
                message: format!("{what}: the database is busy"),
                source: Some(Box::new(e)),
            }
        }
        e => StoreError::backend(what.to_owned(), e),
    }
}

type Shared = Arc<Mutex<Connection>>;

fn lock(c: &Shared) -> MutexGuard<'_, Connection> {
    c.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Records, indexes and aliases in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Shared,
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let conn = Connection::open(path).map_err(db_err("opening the database"))?;
        Self::init(conn)
    }

    /// A private in-memory database (tests).
    pub fn open_in_memory() -> StoreResult<Self> {
        let conn = Connection::open_in_memory().map_err(db_err("opening the database"))?;
        Self::init(conn)
    }

    fn init(mut conn: Connection) -> StoreResult<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(db_err("setting the busy timeout"))?;
        // Only takes effect on a new database. Large pages cut the number of
        // page writes per commit (an ingest appends ~1.3 KB per record and
        // touches several token-keyed indexes): 64 KiB pages ingested 200,000
        // rows 2.3x as fast as 4 KiB pages in the ingest bench.
        conn.pragma_update(None, "page_size", 65536)
            .map_err(db_err("setting the page size"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err("enabling WAL"))?;
        // NORMAL in WAL mode loses at most the last commits on power loss, never consistency.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_err("setting synchronous"))?;
        // A page cache well above SQLite's 2 MiB default keeps the hot pages
        // of the token-keyed indexes in memory; 48 MiB keeps an ingest under
        // its 128 MiB budget.
        conn.pragma_update(None, "cache_size", -49152)
            .map_err(db_err("setting the cache size"))?;
        // Checkpoint every 4,000 pages (256 MiB of WAL: an index page
        // rewritten by several commits in between is copied back once; 9%
        // faster at 1,000,000 rows than every 1,000) and cut the WAL file
        // back to 64 MiB afterwards.
        conn.pragma_update(None, "wal_autocheckpoint", 4000)
            .map_err(db_err("setting the checkpoint interval"))?;
        conn.pragma_update(None, "journal_size_limit", 64i64 << 20)
            .map_err(db_err("setting the WAL size limit"))?;
        conn.execute_batch(SCHEMA)
            .map_err(db_err("creating tables"))?;
        // Databases written before records were compared by content kept a
        // content hash column; drop it so inserts fit the current columns.
        let has_hash: bool = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('records') WHERE name = 'content_hash'",
                [],
                |r| r.get(0),
            )
            .map_err(db_err("reading the table layout"))?;
        if has_hash {
            conn.execute_batch("ALTER TABLE records DROP COLUMN content_hash")
                .map_err(db_err("upgrading the records table"))?;
        }
        upgrade_token_indexes(&mut conn)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The lineage log in this database.
    pub fn lineage(&self) -> SqliteChainLog {
        SqliteChainLog {
            conn: self.conn.clone(),
            table: "lineage",
        }
    }

    /// The access log in this database.
    pub fn access_log(&self) -> SqliteChainLog {
        SqliteChainLog {
            conn: self.conn.clone(),
            table: "access_log",
        }
    }

    fn query_records(
        &self,
        sql: &str,
        arg: impl rusqlite::ToSql,
    ) -> StoreResult<Vec<StoredRecord>> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare_cached(sql)
            .map_err(db_err("preparing a query"))?;
        let rows = stmt
            .query_map([arg], row_to_record)
            .map_err(db_err("querying records"))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(db_err("reading a record"))??);
        }
        Ok(out)
    }
}

const COLUMNS: &str =
    "record_id, person_id, agency, dataset, event_date, upload_id, row, match_keys, links, body";

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<StoredRecord>> {
    let keys: String = row.get(7)?;
    let links: String = row.get(8)?;
    let body: String = row.get(9)?;
    type Parsed = (Vec<String>, Vec<Link>, RecordBody);
    let parse = || -> Result<Parsed, Box<dyn std::error::Error + Send + Sync>> {
        Ok((
            serde_json::from_str(&keys)?,
            serde_json::from_str(&links)?,
            RecordBody::from_text(body)?,
        ))
    };
    let record_id: String = row.get(0)?;
    Ok(match parse() {
        Ok((match_keys, links, body)) => Ok(StoredRecord {
            record_id,
            person_id: row.get(1)?,
            agency: row.get(2)?,
            dataset: row.get(3)?,
            event_date: row.get(4)?,
            upload_id: row.get(5)?,
            row: row.get::<_, i64>(6)?.try_into().unwrap_or(0),
            match_keys,
            links,
            body,
        }),
        Err(e) => Err(StoreError::Backend {
            message: format!("record {record_id} is corrupt"),
            source: Some(e),
        }),
    })
}

/// Indexes of `items` in sorted order.
fn sorted_order(items: &[String]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_unstable_by(|&a, &b| items[a].cmp(&items[b]));
    order
}

/// Databases from before the hashed indexes kept `record_keys` and
/// `record_links` with the tokens in full: rebuild the hashed indexes from
/// the records, then drop the old tables, in one transaction.
fn upgrade_token_indexes(conn: &mut Connection) -> StoreResult<()> {
    let old: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'record_keys'",
            [],
            |r| r.get(0),
        )
        .map_err(db_err("reading the table layout"))?;
    if !old {
        return Ok(());
    }
    let tx = conn.transaction().map_err(db_err("starting an upgrade"))?;
    {
        let mut read = tx
            .prepare("SELECT rowid, match_keys, links FROM records")
            .map_err(db_err("preparing an upgrade"))?;
        let mut put_key = tx
            .prepare("INSERT OR IGNORE INTO key_index (hash, rid) VALUES (?1, ?2)")
            .map_err(db_err("preparing an upgrade"))?;
        let mut put_link = tx
            .prepare("INSERT OR IGNORE INTO link_index (hash, rid) VALUES (?1, ?2)")
            .map_err(db_err("preparing an upgrade"))?;
        let mut rows = read.query([]).map_err(db_err("upgrading indexes"))?;
        while let Some(row) = rows.next().map_err(db_err("upgrading indexes"))? {
            let rid: i64 = row.get(0).map_err(db_err("upgrading indexes"))?;
            let keys: String = row.get(1).map_err(db_err("upgrading indexes"))?;
            let links: String = row.get(2).map_err(db_err("upgrading indexes"))?;
            let keys: Vec<String> = serde_json::from_str(&keys)
                .map_err(|e| StoreError::backend("a stored record's keys are corrupt", e))?;
            let links: Vec<Link> = serde_json::from_str(&links)
                .map_err(|e| StoreError::backend("a stored record's links are corrupt", e))?;
            for k in &keys {
                put_key
                    .execute([token_hash(k), rid])
                    .map_err(db_err("upgrading indexes"))?;
            }
            for l in &links {
                put_link
                    .execute([token_hash(&l.token), rid])
                    .map_err(db_err("upgrading indexes"))?;
            }
        }
    }
    tx.execute_batch("DROP TABLE record_keys; DROP TABLE IF EXISTS record_links;")
        .map_err(db_err("upgrading indexes"))?;
    tx.commit().map_err(db_err("committing an upgrade"))
}

/// The stored 64-bit hash of a match key or link token: FNV-1a, fixed
/// forever because it is on disk. Tokens are keyed MACs nobody can aim at a
/// collision, and a collision only makes a lookup read a record it then
/// filters out.
fn token_hash(token: &str) -> i64 {
    let h = token.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    i64::from_ne_bytes(h.to_ne_bytes())
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::backend("encoding JSON", e))
}

impl RecordStore for SqliteStore {
    fn get_records(&self, ids: &[String]) -> StoreResult<Vec<Option<StoredRecord>>> {
        let mut conn = lock(&self.conn);
        // One read transaction for the whole batch (not a lock round trip
        // per id), probing in id order so neighbouring probes share pages.
        let tx = conn.transaction().map_err(db_err("starting a read"))?;
        let mut out = vec![None; ids.len()];
        {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM records WHERE record_id = ?1"
                ))
                .map_err(db_err("preparing a query"))?;
            for i in sorted_order(ids) {
                let rec = stmt
                    .query_row([&ids[i]], row_to_record)
                    .optional()
                    .map_err(db_err("reading a record"))?;
                out[i] = rec.transpose()?;
            }
        }
        tx.commit().map_err(db_err("ending a read"))?;
        Ok(out)
    }

    fn key_owners(&self, keys: &[String]) -> StoreResult<HashMap<String, String>> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction().map_err(db_err("starting a read"))?;
        let mut out = HashMap::new();
        {
            let mut stmt = tx
                .prepare_cached("SELECT person_id FROM key_owner WHERE key = ?1")
                .map_err(db_err("preparing a query"))?;
            for i in sorted_order(keys) {
                if let Some(p) = stmt
                    .query_row([&keys[i]], |r| r.get::<_, String>(0))
                    .optional()
                    .map_err(db_err("reading a key owner"))?
                {
                    out.insert(keys[i].clone(), p);
                }
            }
        }
        tx.commit().map_err(db_err("ending a read"))?;
        Ok(out)
    }

    fn records_of_person(&self, person_id: &str) -> StoreResult<Vec<StoredRecord>> {
        self.query_records(
            &format!(
                "SELECT {COLUMNS} FROM records WHERE person_id = ?1 ORDER BY event_date, record_id"
            ),
            person_id,
        )
    }

    fn records_with_key(&self, key: &str) -> StoreResult<Vec<StoredRecord>> {
        let mut found = self.query_records(
            &format!(
                "SELECT {} FROM key_index k JOIN records r ON r.rowid = k.rid WHERE k.hash = ?1 ORDER BY r.event_date, r.record_id",
                prefixed("r")
            ),
            token_hash(key),
        )?;
        found.retain(|r| r.match_keys.iter().any(|k| k == key));
        Ok(found)
    }

    fn records_with_link(&self, token: &str) -> StoreResult<Vec<StoredRecord>> {
        let mut found = self.query_records(
            &format!(
                "SELECT {} FROM link_index l JOIN records r ON r.rowid = l.rid WHERE l.hash = ?1 ORDER BY r.event_date, r.record_id",
                prefixed("r")
            ),
            token_hash(token),
        )?;
        found.retain(|r| r.links.iter().any(|l| l.token == token));
        Ok(found)
    }

    fn scan_dataset(
        &self,
        dataset: &str,
        from: Option<&str>,
        to: Option<&str>,
        visit: &mut dyn FnMut(StoredRecord) -> bool,
    ) -> StoreResult<()> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM records WHERE dataset = ?1 AND event_date >= ?2 AND event_date <= ?3 ORDER BY event_date, record_id"
            ))
            .map_err(db_err("preparing a scan"))?;
        let mut rows = stmt
            .query(params![
                dataset,
                from.unwrap_or(""),
                to.unwrap_or("\u{10ffff}")
            ])
            .map_err(db_err("scanning records"))?;
        while let Some(row) = rows.next().map_err(db_err("scanning records"))? {
            let rec = row_to_record(row).map_err(db_err("reading a record"))??;
            if !visit(rec) {
                break;
            }
        }
        Ok(())
    }

    fn datasets(&self) -> StoreResult<Vec<String>> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare_cached("SELECT DISTINCT dataset FROM records ORDER BY dataset")
            .map_err(db_err("preparing a query"))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(db_err("listing datasets"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db_err("listing datasets"))
    }

    fn alias(&self, person_id: &str) -> StoreResult<Option<String>> {
        let conn = lock(&self.conn);
        conn.prepare_cached("SELECT new_id FROM aliases WHERE old_id = ?1")
            .map_err(db_err("preparing a query"))?
            .query_row([person_id], |r| r.get(0))
            .optional()
            .map_err(db_err("reading an alias"))
    }

    fn apply(&self, batch: &WriteBatch) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut conn = lock(&self.conn);
        let tx = conn
            .transaction()
            .map_err(db_err("starting a transaction"))?;
        {
            // Insert first; only a record that already existed needs its old
            // key and link rows cleared, which saves two index probes per new record.
            let mut put = tx
                .prepare_cached(&format!(
                    "INSERT INTO records ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (record_id) DO NOTHING"
                ))
                .map_err(db_err("preparing a write"))?;
            let mut update = tx
                .prepare_cached(
                    "UPDATE records SET person_id = ?2, agency = ?3, dataset = ?4, event_date = ?5, upload_id = ?6, row = ?7, match_keys = ?8, links = ?9, body = ?10 WHERE record_id = ?1",
                )
                .map_err(db_err("preparing a write"))?;
            // Index rows of a replaced record are found from its old version,
            // so no by-record index has to be maintained on every insert.
            let mut old = tx
                .prepare_cached("SELECT rowid, match_keys, links FROM records WHERE record_id = ?1")
                .map_err(db_err("preparing a write"))?;
            let mut del_key = tx
                .prepare_cached("DELETE FROM key_index WHERE hash = ?1 AND rid = ?2")
                .map_err(db_err("preparing a write"))?;
            let mut del_link = tx
                .prepare_cached("DELETE FROM link_index WHERE hash = ?1 AND rid = ?2")
                .map_err(db_err("preparing a write"))?;
            let mut put_key = tx
                .prepare_cached("INSERT OR IGNORE INTO key_index (hash, rid) VALUES (?1, ?2)")
                .map_err(db_err("preparing a write"))?;
            let mut put_link = tx
                .prepare_cached("INSERT OR IGNORE INTO link_index (hash, rid) VALUES (?1, ?2)")
                .map_err(db_err("preparing a write"))?;
            // Each record's rowid, for its index rows.
            let mut rids: Vec<i64> = Vec::with_capacity(batch.records.len());
            // Records go in id order too, for the record-id index.
            let mut records: Vec<&StoredRecord> = batch.records.iter().collect();
            // Stable, so a record given twice still ends as its last version.
            records.sort_by(|a, b| a.record_id.cmp(&b.record_id));
            for r in &records {
                let (keys, links, body) = (json(&r.match_keys)?, json(&r.links)?, r.body.as_str());
                let row = i64::try_from(r.row).unwrap_or(i64::MAX);
                let values = params![
                    r.record_id,
                    r.person_id,
                    r.agency,
                    r.dataset,
                    r.event_date,
                    r.upload_id,
                    row,
                    keys,
                    links,
                    body,
                ];
                let inserted = put.execute(values).map_err(db_err("writing a record"))?;
                if inserted == 1 {
                    rids.push(tx.last_insert_rowid());
                } else {
                    let (rid, old_keys, old_links): (i64, String, String) = old
                        .query_row([&r.record_id], |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                        })
                        .map_err(db_err("reading a replaced record"))?;
                    rids.push(rid);
                    let old_keys: Vec<String> = serde_json::from_str(&old_keys).map_err(|e| {
                        StoreError::backend("a stored record's keys are corrupt", e)
                    })?;
                    let old_links: Vec<Link> = serde_json::from_str(&old_links).map_err(|e| {
                        StoreError::backend("a stored record's links are corrupt", e)
                    })?;
                    for k in &old_keys {
                        del_key
                            .execute([token_hash(k), rid])
                            .map_err(db_err("writing keys"))?;
                    }
                    for l in &old_links {
                        del_link
                            .execute([token_hash(&l.token), rid])
                            .map_err(db_err("writing links"))?;
                    }
                    update.execute(values).map_err(db_err("writing a record"))?;
                }
            }
            // Index rows go in hash order: consecutive inserts then land on
            // the same B-tree pages instead of scattering across the index.
            let mut keys: Vec<(i64, i64)> = records
                .iter()
                .zip(&rids)
                .flat_map(|(r, &rid)| r.match_keys.iter().map(move |k| (token_hash(k), rid)))
                .collect();
            keys.sort_unstable();
            for (h, rid) in keys {
                put_key.execute([h, rid]).map_err(db_err("writing keys"))?;
            }
            let mut links: Vec<(i64, i64)> = records
                .iter()
                .zip(&rids)
                .flat_map(|(r, &rid)| r.links.iter().map(move |l| (token_hash(&l.token), rid)))
                .collect();
            links.sort_unstable();
            for (h, rid) in links {
                put_link
                    .execute([h, rid])
                    .map_err(db_err("writing links"))?;
            }
            let mut rm_owner = tx
                .prepare_cached("DELETE FROM key_owner WHERE key = ?1")
                .map_err(db_err("preparing a write"))?;
            for k in &batch.key_removals {
                rm_owner.execute([k]).map_err(db_err("removing a key"))?;
            }
            let mut owner = tx
                .prepare_cached("INSERT OR REPLACE INTO key_owner (key, person_id) VALUES (?1, ?2)")
                .map_err(db_err("preparing a write"))?;
            let mut owners: Vec<&(String, String)> = batch.key_owners.iter().collect();
            // Stable by key: for a key given twice the last owner still wins.
            owners.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, p) in owners {
                owner
                    .execute([k, p])
                    .map_err(db_err("writing a key owner"))?;
            }
            let mut alias = tx
                .prepare_cached("INSERT OR REPLACE INTO aliases (old_id, new_id) VALUES (?1, ?2)")
                .map_err(db_err("preparing a write"))?;
            for (old, new) in &batch.aliases {
                alias
                    .execute([old, new])
                    .map_err(db_err("writing an alias"))?;
            }
        }
        tx.commit().map_err(db_err("committing a batch"))
    }
}

fn prefixed(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A hash-chained log stored as a SQLite table (`lineage` or `access_log`).
#[derive(Debug, Clone)]
pub struct SqliteChainLog {
    conn: Shared,
    table: &'static str,
}

impl ChainLog for SqliteChainLog {
    fn head(&self) -> StoreResult<Option<(u64, String)>> {
        let conn = lock(&self.conn);
        conn.query_row(
            &format!(
                "SELECT seq, hash FROM {} ORDER BY seq DESC LIMIT 1",
                self.table
            ),
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()
        .map(|o| o.map(|(s, h)| (u64::try_from(s).unwrap_or(0), h)))
        .map_err(db_err("reading the log head"))
    }

    fn append(
        &self,
        seq: u64,
        entry: &serde_json::Value,
        expected_prev: Option<&str>,
    ) -> StoreResult<()> {
        let hash = agencylink_core::ports::entry_hash(entry)?;
        let mut conn = lock(&self.conn);
        // IMMEDIATE takes the write lock before reading the head: no other
        // process can append between our check and our insert.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_err("starting a log append"))?;
        let head: Option<(i64, String)> = tx
            .query_row(
                &format!(
                    "SELECT seq, hash FROM {} ORDER BY seq DESC LIMIT 1",
                    self.table
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db_err("reading the log head"))?;
        if head.as_ref().map(|(_, h)| h.as_str()) != expected_prev {
            return Err(StoreError::Precondition(format!(
                "the {} head moved",
                self.table
            )));
        }
        let next = head.map_or(1, |(s, _)| s + 1);
        if i64::try_from(seq).ok() != Some(next) {
            return Err(StoreError::Precondition(format!(
                "expected seq {next}, got {seq}"
            )));
        }
        tx.execute(
            &format!(
                "INSERT INTO {} (seq, hash, entry) VALUES (?1, ?2, ?3)",
                self.table
            ),
            params![next, hash, json(entry)?],
        )
        .map_err(db_err("appending to the log"))?;
        tx.commit().map_err(db_err("committing the log append"))
    }

    fn entries(&self) -> StoreResult<Vec<serde_json::Value>> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare(&format!("SELECT entry FROM {} ORDER BY seq", self.table))
            .map_err(db_err("preparing a query"))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(db_err("reading the log"))?;
        let mut out = Vec::new();
        for r in rows {
            let text = r.map_err(db_err("reading the log"))?;
            // A corrupt entry is kept as a string so verification can name it.
            out.push(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::SqliteStore;

    #[test]
    fn sqlite_store_conforms() {
        let store = SqliteStore::open_in_memory().expect("open");
        agencylink_core::conformance::record_store(&store);
        agencylink_core::conformance::chain_log(&store.lineage());
        agencylink_core::conformance::chain_log(&store.access_log());
    }

    #[test]
    fn an_older_records_table_is_upgraded() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE records (record_id TEXT PRIMARY KEY, person_id TEXT NOT NULL, agency TEXT NOT NULL, dataset TEXT NOT NULL, event_date TEXT NOT NULL, upload_id TEXT NOT NULL, row INTEGER NOT NULL, content_hash TEXT NOT NULL, match_keys TEXT NOT NULL, links TEXT NOT NULL, body TEXT NOT NULL)",
        )
        .expect("old layout");
        let store = SqliteStore::init(conn).expect("upgrades");
        agencylink_core::conformance::record_store(&store);
    }

    #[test]
    fn old_token_index_tables_are_rebuilt_as_hashes() {
        use agencylink_core::ports::RecordStore;
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE records (record_id TEXT PRIMARY KEY, person_id TEXT NOT NULL, agency TEXT NOT NULL, dataset TEXT NOT NULL, event_date TEXT NOT NULL, upload_id TEXT NOT NULL, row INTEGER NOT NULL, match_keys TEXT NOT NULL, links TEXT NOT NULL, body TEXT NOT NULL);
             CREATE TABLE record_keys (key TEXT NOT NULL, record_id TEXT NOT NULL, PRIMARY KEY (key, record_id)) WITHOUT ROWID;
             CREATE TABLE record_links (token TEXT NOT NULL, record_id TEXT NOT NULL, PRIMARY KEY (token, record_id)) WITHOUT ROWID;
             INSERT INTO records VALUES ('r1', 'p1', 'a', 'ds', '2025-01-01', 'u1', 1, '[\"mk-1\"]', '[{\"kind\":\"phone\",\"token\":\"t-1\"}]', '{}');
             INSERT INTO record_keys VALUES ('mk-1', 'r1');
             INSERT INTO record_links VALUES ('t-1', 'r1');",
        )
        .expect("old layout");
        let store = SqliteStore::init(conn).expect("upgrades");
        let ids = |v: Vec<agencylink_core::ports::StoredRecord>| {
            v.into_iter().map(|r| r.record_id).collect::<Vec<_>>()
        };
        assert_eq!(ids(store.records_with_key("mk-1").expect("key")), ["r1"]);
        assert_eq!(ids(store.records_with_link("t-1").expect("link")), ["r1"]);
        assert!(store.records_with_key("mk-2").expect("key").is_empty());
    }
}
