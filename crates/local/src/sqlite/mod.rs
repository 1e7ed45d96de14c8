//! The SQLite store: records with their id, person, date, match-key and
//! link indexes, key ownership, person aliases, and the two hash-chained
//! logs (lineage and the access log), in one database file in WAL mode,
//! with the records' bodies in an append-only file beside it (see
//! [`bodies`]).
//!
//! The probabilistic-linkage index lives in the same database (see
//! [`linkage`]), so an upload's signatures and review items commit or roll
//! back with its records.
//!
//! Records are appended to a plain rowid table; the indexes are tables this
//! adapter keeps itself. An upload is one transaction: its rows are appended
//! as they come, and their index entries are written once, when it is
//! published, each index in one sorted pass. Indexing row by row instead
//! inserts at random places in B-trees larger than any cache that fits the
//! memory budget, and rewrites most of their pages with every batch.

mod bodies;
mod compact;
mod linkage;
mod overlay;
mod records;
mod rotation;
mod writeback;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use agencylink_core::ports::{ChainLog, Link, RecordBody, StoreError, StoreResult, StoredRecord};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use bodies::{Bodies, BodyAt};
pub use compact::Compacted;
use overlay::{Overlay, RowEntries};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    record_id    TEXT NOT NULL,
    person_id    TEXT NOT NULL,
    agency       TEXT NOT NULL,
    dataset      TEXT NOT NULL,
    event_date   TEXT NOT NULL,
    upload_id    TEXT NOT NULL,
    row          INTEGER NOT NULL,
    match_keys   TEXT NOT NULL,
    links        TEXT NOT NULL,
    -- What the indexes are built from, computed as the row is written, so
    -- an upload's index build sorts integers and calls no function.
    id_hash      INTEGER NOT NULL,
    person_hash  INTEGER NOT NULL,
    date_key     INTEGER NOT NULL,
    key_hashes   TEXT NOT NULL,
    link_hashes  TEXT NOT NULL,
    -- Where the body is in the body file.
    body_at      INTEGER NOT NULL,
    body_len     INTEGER NOT NULL,
    body_crc     INTEGER NOT NULL
);
-- The body file's committed length (`bodies_end`).
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
-- The indexes hold a 64-bit hash of the record id, person id, match key or
-- link token and the record's rowid (about 14 bytes an entry instead of
-- 30 to 80): readers check each hit against the record itself, so a
-- collision costs one row read, filtered out.
CREATE TABLE IF NOT EXISTS id_index (
    hash INTEGER NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (hash, rid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS person_index (
    hash INTEGER NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (hash, rid)
) WITHOUT ROWID;
-- By dataset and date: see `date_key`.
CREATE TABLE IF NOT EXISTS date_index (
    date_key INTEGER NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (date_key, rid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS datasets (name TEXT PRIMARY KEY) WITHOUT ROWID;
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
-- Lineage by upload, for ingest's duplicate check (one upload's events, not
-- the log). Built on open for a database from before it.
CREATE INDEX IF NOT EXISTS lineage_upload ON lineage (json_extract(entry, '$.upload_id'))
    WHERE json_extract(entry, '$.upload_id') IS NOT NULL;
-- The linkage index (see `linkage`): a signature's codes as JSON, the
-- people whose records carry it (one record each), its blocking keys, the
-- clerical review queue and every linkage model by version.
CREATE TABLE IF NOT EXISTS link_signature (id TEXT PRIMARY KEY, codes TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS link_signature_person (
    sig TEXT NOT NULL, person_id TEXT NOT NULL, record_id TEXT NOT NULL, PRIMARY KEY (sig, person_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS link_block (block TEXT NOT NULL, sig TEXT NOT NULL, PRIMARY KEY (block, sig)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS link_review (id TEXT PRIMARY KEY, item TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS link_model (version INTEGER PRIMARY KEY, model TEXT NOT NULL);
-- A key rotation's state and translations (see `rotation`): empty but
-- while a rotation is open or draining.
CREATE TABLE IF NOT EXISTS key_rotation (name TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS key_translation (old TEXT PRIMARY KEY, new TEXT NOT NULL) WITHOUT ROWID;
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

/// The connection and, while an upload is open, what it has written.
#[derive(Debug)]
struct Db {
    conn: Connection,
    bodies: Bodies,
    upload: Option<Upload>,
    /// An upload's rows are indexed early once the overlay holds this many,
    /// so an upload of any size keeps the overlay under ~24 MB.
    overlay_rows: usize,
    /// Records a dataset scan reads at a time ([`records::SCAN_CHUNK`]).
    scan_chunk: usize,
}

/// The default for [`Db::overlay_rows`]: about 60 MB of overlay (ids, people
/// and every index entry of the rows held).
const OVERLAY_ROWS: usize = 1 << 20;

/// An open upload: one write transaction.
#[derive(Debug)]
struct Upload {
    /// Rows from this rowid on have no index entries yet.
    start: i64,
    /// Their record ids and people.
    rows: Overlay,
    /// Ids the last `get_records` found neither in the id index nor among
    /// the upload's rows; writing them need not look in the index again.
    unindexed: std::collections::HashSet<String>,
    /// The id index was empty when the upload began (the store's first
    /// upload, or an empty store) and nothing has been indexed since: the
    /// upload's overlay alone says which ids are stored, and a probe of
    /// the empty index per id, a statement step each, is skipped. The
    /// upload holds the write lock, so no other writer can index rows.
    index_empty: bool,
    /// Datasets already listed in `datasets`.
    datasets: std::collections::HashSet<String>,
    /// Opened by `apply` for one batch, not by `begin_upload`.
    implicit: bool,
    /// A write failed half-way: the upload can only be rolled back.
    failed: bool,
    /// The body file's committed length when the upload began.
    bodies_from: u64,
}

type Shared = Arc<Mutex<Db>>;

fn lock(c: &Shared) -> MutexGuard<'_, Db> {
    c.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Records, indexes and aliases in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Shared,
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`, and its body file
    /// beside it (`path` with `-bodies` added).
    pub fn open(path: &Path) -> StoreResult<Self> {
        // Not through a symlink: one planted at the database's name would
        // have SQLite write the store into another file.
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW,
        )
        .map_err(db_err("opening the database"))?;
        let mut bodies_path = path.as_os_str().to_owned();
        bodies_path.push("-bodies");
        Self::init(conn, Bodies::open(Path::new(&bodies_path))?)
    }

    /// A private in-memory database (tests).
    pub fn open_in_memory() -> StoreResult<Self> {
        let conn = Connection::open_in_memory().map_err(db_err("opening the database"))?;
        Self::init(conn, Bodies::in_memory())
    }

    fn init(mut conn: Connection, mut bodies: Bodies) -> StoreResult<Self> {
        // An upload holds the write lock until it is published (about ten
        // seconds for 1,000,000 rows); other writers, such as an analyst's
        // access-log entry, wait for it rather than fail.
        conn.busy_timeout(std::time::Duration::from_secs(120))
            .map_err(db_err("setting the busy timeout"))?;
        // Only takes effect on a new database. Large pages cut the number of
        // page writes per commit: an ingest appends ~400 bytes per record.
        conn.pragma_update(None, "page_size", 65536)
            .map_err(db_err("setting the page size"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err("enabling WAL"))?;
        // NORMAL in WAL mode loses at most the last commits on power loss, never consistency.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_err("setting synchronous"))?;
        // The page cache; building an upload's index entries takes at
        // most as much again (see `RUN`), and both fit the 128 MiB budget.
        conn.pragma_update(None, "cache_size", -16384)
            .map_err(db_err("setting the cache size"))?;
        // Checkpoint every 4,000 pages (256 MiB of WAL) and cut the WAL file
        // back to 64 MiB afterwards.
        conn.pragma_update(None, "wal_autocheckpoint", 4000)
            .map_err(db_err("setting the checkpoint interval"))?;
        conn.pragma_update(None, "journal_size_limit", 64i64 << 20)
            .map_err(db_err("setting the WAL size limit"))?;
        // Every statement the store runs stays prepared (rusqlite keeps 16).
        conn.set_prepared_statement_cache_capacity(64);
        // Plans must not depend on bound values: otherwise SQLite re-plans a
        // cached join each time its parameters are rebound, which cost more
        // than the lookups themselves.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .map_err(db_err("fixing query plans"))?;
        upgrade(&mut conn, &mut bodies)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(Db {
                conn,
                bodies,
                upload: None,
                overlay_rows: OVERLAY_ROWS,
                scan_chunk: records::SCAN_CHUNK,
            })),
        })
    }

    /// Index an upload's rows early once this many are held (tests).
    #[cfg(test)]
    fn set_overlay_rows(&self, rows: usize) {
        lock(&self.conn).overlay_rows = rows;
    }

    /// Read this many records at a time in a dataset scan (tests).
    #[cfg(test)]
    fn set_scan_chunk(&self, records: usize) {
        lock(&self.conn).scan_chunk = records;
    }

    /// Run `f` with every read of this store in one read transaction: what
    /// it reads is one moment's store, whatever other processes commit
    /// meanwhile (an auditor's verify reads lineage and then the records;
    /// an ingest committing in between would look like a mismatch). `f`
    /// must not write.
    pub fn in_snapshot<T>(&self, f: impl FnOnce() -> T) -> StoreResult<T> {
        let started = {
            let db = lock(&self.conn);
            let idle = db.conn.is_autocommit();
            if idle {
                db.conn
                    .execute_batch("BEGIN")
                    .map_err(db_err("starting a read"))?;
            }
            idle
        };
        let out = f();
        if started {
            lock(&self.conn)
                .conn
                .execute_batch("COMMIT")
                .map_err(db_err("ending a read"))?;
        }
        Ok(out)
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
}

/// A whole record from `records` as `r`, for [`row_to_record`].
const RECORD: &str = "SELECT r.record_id, r.person_id, r.agency, r.dataset, r.event_date, r.upload_id, r.row, r.match_keys, r.links, r.body_at, r.body_len, r.body_crc";

/// A body's place in the body file, from columns `i` to `i + 2`.
fn body_at(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<BodyAt> {
    Ok(BodyAt {
        offset: u64::try_from(row.get::<_, i64>(i)?).unwrap_or(u64::MAX),
        len: u32::try_from(row.get::<_, i64>(i + 1)?).unwrap_or(u32::MAX),
        crc: u32::try_from(row.get::<_, i64>(i + 2)?).unwrap_or(0),
    })
}

/// A record from a [`RECORD`] row, its body read from `bodies`.
fn row_to_record(
    row: &rusqlite::Row<'_>,
    bodies: &Bodies,
) -> rusqlite::Result<StoreResult<StoredRecord>> {
    let at = body_at(row, 9)?;
    Ok(row_parts(row)?.and_then(|parts| parts.read_body(bodies, at)))
}

/// A record but its body: the first nine columns of a [`RECORD`] row. A
/// scan holds a chunk of these, a third of the memory whole records take,
/// and reads each body only as it hands the record on.
struct Parts {
    record_id: String,
    person_id: String,
    agency: String,
    dataset: String,
    event_date: String,
    upload_id: String,
    row: u64,
    match_keys: Vec<String>,
    links: Vec<Link>,
}

impl Parts {
    fn dataset(&self) -> &str {
        &self.dataset
    }

    fn event_date(&self) -> &str {
        &self.event_date
    }

    fn record_id(&self) -> &str {
        &self.record_id
    }

    /// The record, with its body read from `bodies` at `at`.
    fn read_body(self, bodies: &Bodies, at: BodyAt) -> StoreResult<StoredRecord> {
        let Ok(text) = bodies.read(at) else {
            return Err(StoreError::Backend {
                message: format!(
                    "record {}'s body is missing from the record bodies file or damaged",
                    self.record_id
                ),
                source: None,
            });
        };
        // The body file's CRC matched (`Bodies::read`).
        match RecordBody::from_checked(text) {
            Ok(body) => Ok(self.with_body(body)),
            Err(e) => Err(corrupt(&self.record_id, e.into())),
        }
    }

    fn with_body(self, body: RecordBody) -> StoredRecord {
        StoredRecord {
            record_id: self.record_id,
            person_id: self.person_id,
            agency: self.agency,
            dataset: self.dataset,
            event_date: self.event_date,
            upload_id: self.upload_id,
            row: self.row,
            match_keys: self.match_keys,
            links: self.links,
            body,
            signature: None,
        }
    }
}

fn corrupt(record_id: &str, e: Box<dyn std::error::Error + Send + Sync>) -> StoreError {
    StoreError::Backend {
        message: format!("record {record_id} is corrupt"),
        source: Some(e),
    }
}

/// A record but its body from the first nine columns of a [`RECORD`] row.
fn row_parts(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<Parts>> {
    let keys: String = row.get(7)?;
    let links: String = row.get(8)?;
    let record_id: String = row.get(0)?;
    let parsed = serde_json::from_str(&keys).and_then(|k| Ok((k, serde_json::from_str(&links)?)));
    Ok(match parsed {
        Ok((match_keys, links)) => Ok(Parts {
            record_id,
            person_id: row.get(1)?,
            agency: row.get(2)?,
            dataset: row.get(3)?,
            event_date: row.get(4)?,
            upload_id: row.get(5)?,
            row: row.get::<_, i64>(6)?.try_into().unwrap_or(0),
            match_keys,
            links,
        }),
        Err(e) => Err(corrupt(&record_id, e.into())),
    })
}

/// Write every record's index entries from rowid `from` on, in each
/// index's order, so each index page is written once per upload rather
/// than once per batch (row-by-row indexing inserts at random places in
/// B-trees larger than any cache the memory budget allows).
///
/// The entries are sorted here rather than by SQLite's sorter (an
/// `INSERT … SELECT … ORDER BY`), which took about twice as long. At most
/// [`RUN`] entries are held: a larger upload's index is written in several
/// sorted runs, correct but with more page rewrites.
fn build_indexes(conn: &Connection, from: i64, rows: usize) -> StoreResult<()> {
    build_indexes_in_runs(conn, from, rows, RUN)
}

/// Index an upload's rows from the entries its overlay kept as they were
/// written (as [`build_indexes`] would from the rows), one index at a time,
/// freeing each index's part of the overlay as it goes.
///
/// The next index's entries are sorted on another thread while this one's
/// are inserted: sorting was a fifth of the build, and publishing an
/// upload otherwise leaves a core idle. That holds one index's entries
/// more at a time (16 bytes each; ~23 MB for the links of 1,000,000 rows).
fn build_indexes_from(conn: &Connection, from: i64, mut rows: Overlay) -> StoreResult<()> {
    let take = |rows: &mut Overlay, index: usize| {
        let mut entries = Vec::new();
        rows.take_entries(index, from, &mut entries);
        entries
    };
    let mut entries = take(&mut rows, 0);
    sort_entries(&mut entries);
    std::thread::scope(|s| {
        for (index, table) in overlay::INDEXES.iter().enumerate() {
            let sorting = (index + 1 < overlay::INDEXES.len()).then(|| {
                let mut next = take(&mut rows, index + 1);
                s.spawn(move || {
                    sort_entries(&mut next);
                    next
                })
            });
            let inserted = insert_entries(conn, table, &entries);
            // Freed before the next index's entries join them.
            entries = Vec::new();
            if let Some(sorting) = sorting {
                match sorting.join() {
                    Ok(next) => entries = next,
                    // Sorting integers does not panic; if it ever did,
                    // the upload fails rather than loses index entries.
                    Err(_) => {
                        return inserted.and(Err(StoreError::Backend {
                            message: "sorting index entries failed".into(),
                            source: None,
                        }));
                    }
                }
            }
            inserted?;
        }
        Ok(())
    })
}

/// [`build_indexes`] for `rows` rows, holding at most `run` entries.
fn build_indexes_in_runs(conn: &Connection, from: i64, rows: usize, run: usize) -> StoreResult<()> {
    // One allocation, sized for about two entries a row: growing by
    // doubling leaves every smaller buffer with the allocator too, which
    // cost 30 MB of peak memory.
    let mut entries: Vec<(i64, i64)> = Vec::with_capacity(rows.saturating_mul(2).min(run));
    for (table, source) in INDEX_SOURCES {
        let mut stmt = conn
            .prepare_cached(source)
            .map_err(db_err("preparing an index build"))?;
        let mut found = stmt
            .query([from])
            .map_err(db_err("reading index entries"))?;
        while let Some(row) = found.next().map_err(db_err("reading index entries"))? {
            if entries.len() >= run {
                insert_sorted(conn, table, &mut entries)?;
            }
            if entries.len() == entries.capacity() {
                // More entries than expected: straight to a whole run.
                entries.reserve_exact(run - entries.len());
            }
            entries.push((
                row.get(0).map_err(db_err("reading index entries"))?,
                row.get(1).map_err(db_err("reading index entries"))?,
            ));
        }
        insert_sorted(conn, table, &mut entries)?;
    }
    Ok(())
}

/// The most index entries held at once: 16 MiB. The busiest index of a
/// 1,000,000-row upload (links, 1.4 entries a row) takes two runs.
const RUN: usize = 1 << 20;

/// Index entries by index: each source yields (hash or date key, rowid)
/// for the rows from rowid `?1` on.
const INDEX_SOURCES: [(&str, &str); 5] = [
    (
        "id_index",
        "SELECT id_hash, rowid FROM records WHERE rowid >= ?1",
    ),
    (
        "person_index",
        "SELECT person_hash, rowid FROM records WHERE rowid >= ?1",
    ),
    (
        "date_index",
        "SELECT date_key, rowid FROM records WHERE rowid >= ?1",
    ),
    (
        "key_index",
        "SELECT k.value, r.rowid FROM records r, json_each(r.key_hashes) k WHERE r.rowid >= ?1",
    ),
    (
        "link_index",
        "SELECT l.value, r.rowid FROM records r, json_each(r.link_hashes) l WHERE r.rowid >= ?1",
    ),
];

/// Rows a single insert statement carries.
const INSERT_ROWS: usize = 256;

/// Sort `entries`, insert them (many rows a statement, so the
/// per-statement cost is paid once every few hundred entries), and clear
/// them. A record may list a key or token twice (a crime ref that is also
/// an intelligence ref): one entry is enough.
fn insert_sorted(conn: &Connection, table: &str, entries: &mut Vec<(i64, i64)>) -> StoreResult<()> {
    sort_entries(entries);
    insert_entries(conn, table, entries)?;
    entries.clear();
    Ok(())
}

/// Sort and dedup index entries for [`insert_entries`].
fn sort_entries(entries: &mut Vec<(i64, i64)>) {
    entries.sort_unstable();
    entries.dedup();
}

/// Insert sorted, deduplicated `entries` into index `table`.
fn insert_entries(conn: &Connection, table: &str, entries: &[(i64, i64)]) -> StoreResult<()> {
    let sql = |n: usize| {
        let values = vec!["(?, ?)"; n].join(", ");
        format!("INSERT OR IGNORE INTO {table} VALUES {values}")
    };
    let mut full = conn
        .prepare(&sql(INSERT_ROWS))
        .map_err(db_err("preparing an index build"))?;
    let mut chunks = entries.chunks_exact(INSERT_ROWS);
    for chunk in &mut chunks {
        bind_entries(&mut full, chunk)?;
        full.raw_execute()
            .map_err(db_err("writing index entries"))?;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = conn
            .prepare(&sql(rest.len()))
            .map_err(db_err("preparing an index build"))?;
        bind_entries(&mut last, rest)?;
        last.raw_execute()
            .map_err(db_err("writing index entries"))?;
    }
    Ok(())
}

fn bind_entries(stmt: &mut rusqlite::Statement<'_>, entries: &[(i64, i64)]) -> StoreResult<()> {
    for (i, (hash, rid)) in entries.iter().enumerate() {
        stmt.raw_bind_parameter(2 * i + 1, hash)
            .map_err(db_err("writing index entries"))?;
        stmt.raw_bind_parameter(2 * i + 2, rid)
            .map_err(db_err("writing index entries"))?;
    }
    Ok(())
}

/// Databases from before the record bodies file keep bodies in SQLite:
/// in a `bodies` table, or (older) in the records table, which was keyed by
/// `record_id` with SQLite indexes on it (and, older still, had a content
/// hash column and token tables keyed by the full token). Move the records
/// into the current table, keeping their rowids, their bodies into the body
/// file, and build every index from them, in one transaction.
/// The layout [`SCHEMA`] creates, kept in `PRAGMA user_version`: bump it
/// whenever [`SCHEMA`] changes, so every database is brought up to date once.
const SCHEMA_VERSION: i64 = 2;

fn upgrade(conn: &mut Connection, bodies: &mut Bodies) -> StoreResult<()> {
    // An up-to-date database is opened without a write: a reader (or a
    // second writer) opening the store while an ingest holds the write
    // lock must not need it. A read transaction asking for the write lock
    // meanwhile gets SQLITE_BUSY at once, whatever the busy timeout.
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err("reading the database layout version"))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    // IMMEDIATE: the write lock first (waiting for it as any writer does),
    // then the layout read and changed under it.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db_err("starting an upgrade"))?;
    let count = |sql: &str| -> StoreResult<i64> {
        tx.query_row(sql, [], |r| r.get(0))
            .map_err(db_err("reading the table layout"))
    };
    let table = |name: &str| {
        count(&format!(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '{name}'"
        ))
        .map(|n| n > 0)
    };
    let old = table("records")?
        && count("SELECT count(*) FROM pragma_table_info('records') WHERE name = 'body_at'")? == 0;
    let body_table = table("bodies")?;
    if old {
        tx.execute_batch("ALTER TABLE records RENAME TO records_old")
            .map_err(db_err("upgrading the records table"))?;
    }
    tx.execute_batch(SCHEMA)
        .map_err(db_err("creating tables"))?;
    if old {
        // The write lock is held from the rename on. A database from before
        // the body file has none of its own: one beside it belongs to
        // another database (a restore that mixed backups), and is kept.
        if !bodies.is_empty()? {
            return Err(StoreError::Backend {
                message: "this database predates the record bodies file, but one is beside it: \
                          it belongs to another database (restored from another backup?); \
                          move one of them aside"
                    .into(),
                source: None,
            });
        }
        let committed = bodies_end(&tx)?;
        bodies.begin(committed)?;
        {
            let sql = if body_table {
                "SELECT r.record_id, r.person_id, r.agency, r.dataset, r.event_date, r.upload_id, r.row, r.match_keys, r.links, b.body, r.rowid FROM records_old r JOIN bodies b ON b.rid = r.rowid ORDER BY r.rowid"
            } else {
                "SELECT record_id, person_id, agency, dataset, event_date, upload_id, row, match_keys, links, body, rowid FROM records_old ORDER BY rowid"
            };
            let mut read = tx
                .prepare(sql)
                .map_err(db_err("upgrading the records table"))?;
            let mut rows = read
                .query([])
                .map_err(db_err("upgrading the records table"))?;
            while let Some(row) = rows.next().map_err(db_err("upgrading the records table"))? {
                let body: String = row.get(9).map_err(db_err("upgrading the records table"))?;
                let parts = row_parts(row).map_err(db_err("upgrading the records table"))??;
                // From a table, not the body file: no checksum vouches for it.
                let rec = match RecordBody::from_text(body) {
                    Ok(body) => parts.with_body(body),
                    Err(e) => return Err(corrupt(&parts.record_id, e.into())),
                };
                let rid: i64 = row.get(10).map_err(db_err("upgrading the records table"))?;
                records::insert(&tx, bodies, Some(rid), &rec)?;
            }
        }
        tx.execute_batch(
            "DROP TABLE records_old;
             DROP TABLE IF EXISTS bodies;
             DROP TABLE IF EXISTS record_keys;
             DROP TABLE IF EXISTS record_links;
             DELETE FROM id_index; DELETE FROM person_index; DELETE FROM date_index;
             DELETE FROM key_index; DELETE FROM link_index;
             INSERT OR IGNORE INTO datasets (name) SELECT DISTINCT dataset FROM records;",
        )
        .map_err(db_err("upgrading the records table"))?;
        let rows: i64 = tx
            .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
            .map_err(db_err("upgrading the records table"))?;
        build_indexes(&tx, 0, usize::try_from(rows).unwrap_or(0))?;
        let end = bodies.sync(committed)?;
        set_bodies_end(&tx, end)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(db_err("recording the database layout version"))?;
    tx.commit().map_err(db_err("committing an upgrade"))
}

/// The body file's committed length.
fn bodies_end(conn: &Connection) -> StoreResult<u64> {
    let end: Option<i64> = conn
        .prepare_cached("SELECT value FROM meta WHERE name = 'bodies_end'")
        .map_err(db_err("preparing a query"))?
        .query_row([], |r| r.get(0))
        .optional()
        .map_err(db_err("reading the body file's length"))?;
    Ok(end.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

fn set_bodies_end(conn: &Connection, end: u64) -> StoreResult<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (name, value) VALUES ('bodies_end', ?1)")
        .map_err(db_err("preparing a write"))?
        .execute([i64::try_from(end).unwrap_or(i64::MAX)])
        .map_err(db_err("recording the body file's length"))?;
    Ok(())
}

/// The stored 64-bit hash of a record id, person id, match key or link
/// token: FNV-1a, fixed forever because it is on disk. Tokens are keyed
/// MACs nobody can aim at a collision, and a collision only makes a lookup
/// read a record it then filters out.
fn token_hash(token: &str) -> i64 {
    let h = token.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// A record's place in the date index: the top 32 bits of its dataset's
/// hash, then its date as the number YYYYMMDD, so one dataset's records
/// sort by date and a date range is a key range. Curated dates are always
/// `YYYY-MM-DD`; anything else would sort first, as date 0.
fn date_key(dataset: &str, date: &str) -> i64 {
    date_key_of(dataset, date_number(date).unwrap_or(0))
}

fn date_key_of(dataset: &str, date: u32) -> i64 {
    let top = u64::from_ne_bytes(token_hash(dataset).to_ne_bytes()) & 0xffff_ffff_0000_0000;
    i64::from_ne_bytes((top | u64::from(date)).to_ne_bytes())
}

/// `YYYY-MM-DD` as the number YYYYMMDD.
fn date_number(date: &str) -> Option<u32> {
    let b = date.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r)
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .map(|d| d.iter().fold(0_u32, |n, &c| n * 10 + u32::from(c - b'0')))
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    Some(digits(0..4)? * 10_000 + digits(5..7)? * 100 + digits(8..10)?)
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::backend("encoding JSON", e))
}

/// A hash-chained log stored as a SQLite table (`lineage` or `access_log`).
#[derive(Debug, Clone)]
pub struct SqliteChainLog {
    conn: Shared,
    table: &'static str,
}

impl SqliteChainLog {
    fn append_in(
        &self,
        tx: &Connection,
        seq: u64,
        hash: &str,
        entry: &serde_json::Value,
        expected_prev: Option<&str>,
    ) -> StoreResult<()> {
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
        Ok(())
    }
}

impl ChainLog for SqliteChainLog {
    fn head(&self) -> StoreResult<Option<(u64, String)>> {
        let db = lock(&self.conn);
        db.conn
            .query_row(
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
        let mut db = lock(&self.conn);
        let conn = &mut db.conn;
        if conn.is_autocommit() {
            // IMMEDIATE takes the write lock before reading the head: no other
            // process can append between our check and our insert.
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(db_err("starting a log append"))?;
            self.append_in(&tx, seq, hash, entry, expected_prev)?;
            tx.commit().map_err(db_err("committing the log append"))
        } else {
            // An upload is open on this connection and already holds the
            // write lock; the append is part of it.
            let sp = conn.savepoint().map_err(db_err("starting a log append"))?;
            self.append_in(&sp, seq, hash, entry, expected_prev)?;
            sp.commit().map_err(db_err("committing the log append"))
        }
    }

    fn entries(&self) -> StoreResult<Vec<serde_json::Value>> {
        self.select("ORDER BY seq", rusqlite::params![])
    }

    fn page(&self, after: u64, limit: usize) -> StoreResult<Vec<serde_json::Value>> {
        self.select(
            "WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            rusqlite::params![clamp(after), clamp(limit as u64)],
        )
    }

    fn page_back(&self, before: Option<u64>, limit: usize) -> StoreResult<Vec<serde_json::Value>> {
        self.select(
            "WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
            rusqlite::params![before.map_or(i64::MAX, clamp), clamp(limit as u64)],
        )
    }

    fn upload_entries(&self, upload_id: &str) -> StoreResult<Vec<serde_json::Value>> {
        // The expression is the index's, word for word, so SQLite uses it.
        self.select(
            "WHERE json_extract(entry, '$.upload_id') = ?1 ORDER BY seq",
            rusqlite::params![upload_id],
        )
    }
}

/// A count or seq as SQLite's integer (they never reach `i64::MAX`).
fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl SqliteChainLog {
    /// The entries `SELECT entry FROM <log> <tail>` finds.
    fn select(
        &self,
        tail: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> StoreResult<Vec<serde_json::Value>> {
        let db = lock(&self.conn);
        let mut stmt = db
            .conn
            .prepare_cached(&format!("SELECT entry FROM {} {tail}", self.table))
            .map_err(db_err("preparing a query"))?;
        let rows = stmt
            .query_map(params, |r| r.get::<_, String>(0))
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
    use agencylink_core::ports::{
        ChainLog, LinkageStore, RecordStore, RecordStoreExt, StoredRecord, WriteBatch,
    };

    #[test]
    fn lineage_is_looked_up_by_upload_through_its_index() {
        let store = SqliteStore::open_in_memory().expect("open");
        agencylink_core::conformance::lineage_log(&store.lineage());
        let db = super::lock(&store.conn);
        let plan: String = db
            .conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT entry FROM lineage WHERE json_extract(entry, '$.upload_id') = 'u_a' ORDER BY seq",
                [],
                |r| r.get(3),
            )
            .expect("plan");
        assert!(plan.contains("lineage_upload"), "{plan}");
    }

    #[test]
    fn sqlite_store_conforms() {
        let store = SqliteStore::open_in_memory().expect("open");
        agencylink_core::conformance::record_store(&store);
        agencylink_core::conformance::chain_log(&store.lineage());
        agencylink_core::conformance::chain_log(&store.access_log());
        let store = SqliteStore::open_in_memory().expect("open");
        agencylink_core::conformance::record_store_in_upload(&store);
        let store = SqliteStore::open_in_memory().expect("open");
        agencylink_core::conformance::linkage_store_conforms(
            store.linkage().expect("a linkage index"),
        );
    }

    #[test]
    fn the_linkage_index_conforms_inside_an_upload_and_is_published_with_it() {
        let store = SqliteStore::open_in_memory().expect("open");
        store.begin_upload().expect("begin");
        agencylink_core::conformance::linkage_store_conforms(&store);
        // The suite's refused model version did not fail the upload.
        store.end_upload(true).expect("publish");
        let mut n = 0;
        store
            .scan_signatures(&mut |_| {
                n += 1;
                true
            })
            .expect("scan");
        assert_eq!(n, 3, "published");
        assert_eq!(store.review_items().expect("reviews").len(), 2);
        assert_eq!(store.model().expect("model").map(|m| m.version), Some(3));
    }

    #[test]
    fn a_rolled_back_upload_leaves_no_linkage_writes() {
        use agencylink_core::conformance::{sample_entry, sample_review, sample_signature};
        let dir = scratch_dir("linkage-rollback");
        let path = dir.join("store.db");
        let writer = SqliteStore::open(&path).expect("open");
        let reader = SqliteStore::open(&path).expect("open a second connection");
        let kate = sample_signature("smith", "kate", "2010-03-07");
        let katie = sample_signature("smith", "katie", "2010-03-07");
        let before = writer
            .put_signatures(&[sample_entry(&kate, "p-1", "r-1")])
            .expect("before");
        assert_eq!(before, [true]);
        let model = |version| agencylink_core::linkage::LinkModel {
            version,
            ..agencylink_core::linkage::LinkModel::default_model()
        };
        writer.put_model(&model(1)).expect("model 1");

        writer.begin_upload().expect("begin");
        writer
            .apply(&batch(vec![rec("r-2", "p-2", &["k-2"])]))
            .expect("a record");
        let fresh = writer
            .put_signatures(&[
                sample_entry(&katie, "p-2", "r-2"),
                sample_entry(&kate, "p-2", "r-2"),
                sample_entry(&kate, "p-1", "r-1"),
            ])
            .expect("put");
        assert_eq!(fresh, [true, true, false]);
        let item = sample_review(&kate, &katie, 0.7);
        writer.put_review(&item).expect("review");
        writer.put_model(&model(2)).expect("model 2");
        assert!(
            matches!(
                writer.put_model(&model(2)),
                Err(agencylink_core::ports::StoreError::AlreadyExists(_))
            ),
            "refused inside the upload too"
        );
        // The writer sees its upload; another connection does not.
        let people = |s: &SqliteStore, id: &str| {
            s.get_signatures(&[id.to_owned()])
                .expect("get")
                .pop()
                .flatten()
                .map(|s| s.people.len())
        };
        assert_eq!(people(&writer, &kate.id), Some(2));
        assert_eq!(people(&writer, &katie.id), Some(1));
        assert_eq!(
            writer.get_review(&item.id).expect("get"),
            Some(item.clone())
        );
        assert_eq!(writer.model().expect("model").map(|m| m.version), Some(2));
        assert_eq!(people(&reader, &kate.id), Some(1), "not yet published");
        assert_eq!(people(&reader, &katie.id), None);
        assert!(reader.get_review(&item.id).expect("get").is_none());
        writer.end_upload(false).expect("roll back");

        for s in [&writer, &reader] {
            assert_eq!(people(s, &kate.id), Some(1), "rolled back");
            assert_eq!(people(s, &katie.id), None, "no signature left behind");
            for b in &katie.b {
                assert_eq!(
                    s.signatures_in_block(b, 10).expect("block"),
                    kate.b
                        .contains(b)
                        .then(|| kate.id.clone())
                        .into_iter()
                        .collect::<Vec<_>>(),
                    "no block entry left behind"
                );
            }
            assert!(
                s.review_items().expect("reviews").is_empty(),
                "no review item"
            );
            assert_eq!(s.model().expect("model").map(|m| m.version), Some(1));
            assert!(s.get_record("r-2").expect("get").is_none());
        }
        // What was rolled back is new again.
        let again = writer
            .put_signatures(&[sample_entry(&kate, "p-2", "r-2")])
            .expect("put again");
        assert_eq!(again, [true]);
        drop((writer, reader));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_upload_refuses_linkage_writes_until_it_is_ended() {
        use agencylink_core::conformance::{sample_entry, sample_signature};
        let store = SqliteStore::open_in_memory().expect("open");
        let kate = sample_signature("smith", "kate", "2010-03-07");
        store.begin_upload().expect("begin");
        super::lock(&store.conn)
            .upload
            .as_mut()
            .expect("open upload")
            .failed = true;
        assert!(
            store
                .put_signatures(&[sample_entry(&kate, "p-1", "r-1")])
                .is_err()
        );
        assert!(
            store.end_upload(true).is_err(),
            "a failed upload is not published"
        );
        assert_eq!(
            store
                .put_signatures(&[sample_entry(&kate, "p-1", "r-1")])
                .expect("a write of its own"),
            [true]
        );
    }

    #[test]
    fn the_linkage_index_survives_reopening_the_database() {
        use agencylink_core::conformance::{sample_entry, sample_review, sample_signature};
        let dir = scratch_dir("linkage-reopen");
        let path = dir.join("store.db");
        let kate = sample_signature("smith", "kate", "2010-03-07");
        let katie = sample_signature("smith", "katie", "2010-03-07");
        let item = sample_review(&kate, &katie, 0.6);
        let model = agencylink_core::linkage::LinkModel {
            version: 4,
            ..agencylink_core::linkage::LinkModel::default_model()
        };
        {
            let store = SqliteStore::open(&path).expect("open");
            store
                .put_signatures(&[sample_entry(&kate, "p-1", "r-1")])
                .expect("outside an upload");
            store.begin_upload().expect("begin");
            store
                .put_signatures(&[sample_entry(&katie, "p-2", "r-2")])
                .expect("inside an upload");
            store.put_review(&item).expect("review");
            store.put_model(&model).expect("model");
            store.end_upload(true).expect("publish");
        }
        let store = SqliteStore::open(&path).expect("reopen");
        let got = store
            .get_signatures(&[kate.id.clone(), katie.id.clone()])
            .expect("get");
        assert_eq!(
            got.iter()
                .map(|s| s.as_ref().map(|s| (s.signature.clone(), s.people.clone())))
                .collect::<Vec<_>>(),
            [
                Some(((*kate).clone(), vec![("p-1".to_owned(), "r-1".to_owned())])),
                Some(((*katie).clone(), vec![("p-2".to_owned(), "r-2".to_owned())])),
            ]
        );
        let shared = kate.b.iter().find(|b| katie.b.contains(b)).expect("shared");
        assert_eq!(
            store.signatures_in_block(shared, 10).expect("block").len(),
            2
        );
        assert_eq!(store.review_items().expect("reviews"), [item]);
        assert_eq!(store.model().expect("model"), Some(model));
        assert_eq!(
            store
                .put_signatures(&[sample_entry(&kate, "p-1", "r-3")])
                .expect("put"),
            [false],
            "known pairs stay known"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_database_from_before_the_linkage_index_gains_it() {
        let dir = scratch_dir("linkage-upgrade");
        let path = dir.join("store.db");
        {
            let store = SqliteStore::open(&path).expect("open");
            store
                .apply(&batch(vec![rec("r-1", "p-1", &["k-1"])]))
                .expect("a record");
        }
        {
            let conn = rusqlite::Connection::open(&path).expect("open");
            conn.execute_batch(
                "DROP TABLE link_signature; DROP TABLE link_signature_person; DROP TABLE link_block;
                 DROP TABLE link_review; DROP TABLE link_model; PRAGMA user_version = 0;",
            )
            .expect("the layout before the linkage index");
        }
        let store = SqliteStore::open(&path).expect("reopen");
        assert!(
            store.get_record("r-1").expect("get").is_some(),
            "records kept"
        );
        agencylink_core::conformance::linkage_store_conforms(&store);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_signature_scan_streams_in_key_order_without_sorting() {
        let store = SqliteStore::open_in_memory().expect("open");
        let db = super::lock(&store.conn);
        let plan: Vec<String> = db
            .conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT s.id, s.codes, p.person_id, p.record_id FROM link_signature s LEFT JOIN link_signature_person p ON p.sig = s.id ORDER BY s.id, p.person_id",
            )
            .expect("plan")
            .query_map([], |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("plan");
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }

    /// A fresh directory for a test's database files.
    fn scratch_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("agencylink-{name}-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    fn rec(id: &str, person: &str, keys: &[&str]) -> StoredRecord {
        agencylink_core::conformance::sample_record(
            id,
            person,
            "ds",
            "2025-01-01",
            keys,
            &[("phone", "t-1")],
        )
    }

    fn batch(records: Vec<StoredRecord>) -> WriteBatch {
        WriteBatch {
            records,
            ..WriteBatch::default()
        }
    }

    #[test]
    fn an_upload_is_invisible_until_published_and_a_rollback_leaves_nothing() {
        let dir = scratch_dir("upload");
        let path = dir.join("store.db");
        let writer = SqliteStore::open(&path).expect("open");
        let reader = SqliteStore::open(&path).expect("open a second connection");
        writer
            .apply(&batch(vec![rec("r-0", "p-0", &["k-0"])]))
            .expect("before");

        writer.begin_upload().expect("begin");
        assert!(writer.begin_upload().is_err(), "one upload at a time");
        writer
            .apply(&batch(vec![
                rec("r-1", "p-1", &["k-1"]),
                rec("r-1", "p-1", &["k-1", "k-2"]),
            ]))
            .expect("apply");
        // The writer reads its own upload, by id and by person, from the
        // overlay, and sees a record given twice once, as its last version.
        let got = writer.get_record("r-1").expect("get").expect("r-1");
        assert_eq!(got.match_keys, ["k-1", "k-2"]);
        assert_eq!(writer.records_of_person("p-1").expect("person").len(), 1);
        // Another connection sees only what was published.
        assert!(reader.get_record("r-1").expect("get").is_none());
        assert!(reader.records_with_link("t-1").expect("link").len() == 1);
        writer.end_upload(false).expect("roll back");
        assert!(
            writer.get_record("r-1").expect("get").is_none(),
            "rolled back"
        );
        assert!(writer.records_with_key("k-2").expect("key").is_empty());
        assert!(writer.end_upload(true).is_err(), "no upload is open");

        writer.begin_upload().expect("begin again");
        writer
            .apply(&batch(vec![rec("r-1", "p-1", &["k-1"])]))
            .expect("apply");
        // Moving a record indexed earlier to another person inside the upload.
        writer
            .apply(&batch(vec![rec("r-0", "p-1", &["k-0"])]))
            .expect("relabel");
        let people = |s: &SqliteStore, p: &str| {
            s.records_of_person(p)
                .expect("person")
                .into_iter()
                .map(|r| r.record_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(people(&writer, "p-1"), ["r-0", "r-1"]);
        assert!(people(&writer, "p-0").is_empty());
        assert_eq!(people(&reader, "p-0"), ["r-0"], "not yet published");
        writer.end_upload(true).expect("publish");
        assert_eq!(people(&reader, "p-1"), ["r-0", "r-1"]);
        assert!(people(&reader, "p-0").is_empty());
        assert_eq!(reader.records_with_key("k-1").expect("key").len(), 1);
        drop((writer, reader));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_record_written_again_after_its_upload_was_partly_indexed_is_replaced() {
        let store = SqliteStore::open_in_memory().expect("open");
        store.begin_upload().expect("begin");
        // Merge's pattern: read the batch (nothing found), then write it.
        assert_eq!(store.get_records(&["r-9".into()]).expect("get"), vec![None]);
        store
            .apply(&batch(vec![rec("r-9", "p-9", &["k-9"])]))
            .expect("insert");
        // A key query indexes the upload's rows so far.
        assert_eq!(store.records_with_key("k-9").expect("key").len(), 1);
        store
            .apply(&batch(vec![rec("r-9", "p-9", &["k-9", "k-10"])]))
            .expect("replace");
        store.end_upload(true).expect("publish");
        let mine = store.records_of_person("p-9").expect("person");
        assert_eq!(mine.len(), 1, "replaced, not written twice");
        assert_eq!(mine[0].match_keys, ["k-9", "k-10"]);
        assert_eq!(store.records_with_key("k-10").expect("key").len(), 1);
    }

    #[test]
    fn dataset_scans_follow_the_date_key_and_its_exact_bounds() {
        let store = SqliteStore::open_in_memory().expect("open");
        let at = |id: &str, ds: &str, date: &str| {
            agencylink_core::conformance::sample_record(id, "p", ds, date, &[], &[])
        };
        store
            .apply(&batch(vec![
                at("a", "ds.one", "2025-12-31"),
                at("b", "ds.one", "2026-01-01"),
                at("c", "ds.two", "2026-01-01"),
                at("d", "ds.one", "2024-02-29"),
            ]))
            .expect("apply");
        let scan = |ds: &str, from: Option<&str>, to: Option<&str>| {
            let mut seen = Vec::new();
            store
                .scan_dataset(ds, from, to, &mut |r| {
                    seen.push(r.record_id);
                    true
                })
                .expect("scan");
            seen
        };
        assert_eq!(scan("ds.one", None, None), ["d", "a", "b"]);
        assert_eq!(
            scan("ds.one", Some("2025-12-31"), Some("2025-12-31")),
            ["a"]
        );
        // Bounds that are not dates still bound by text, as before.
        assert_eq!(scan("ds.one", Some("2025"), Some("2025-12-31z")), ["a"]);
        assert_eq!(scan("ds.two", None, None), ["c"]);
        assert_eq!(store.datasets().expect("datasets"), ["ds.one", "ds.two"]);
        assert_eq!(super::date_number("2026-01-01"), Some(20_260_101));
        assert_eq!(super::date_number("2026-1-01"), None);
    }

    #[test]
    fn a_scan_in_chunks_keeps_date_then_id_order_across_chunk_ends() {
        let store = SqliteStore::open_in_memory().expect("open");
        // Written out of order, with many records a date (ties that a chunk
        // end must not split) and another dataset's records between.
        let mut recs = Vec::new();
        for i in (0..60).rev() {
            let date = format!("2025-03-{:02}", 1 + i % 7);
            recs.push(agencylink_core::conformance::sample_record(
                &format!("r-{:02}", (i * 37) % 60),
                "p",
                "ds.one",
                &date,
                &[],
                &[],
            ));
            recs.push(agencylink_core::conformance::sample_record(
                &format!("o-{i:02}"),
                "p",
                "ds.two",
                &date,
                &[],
                &[],
            ));
        }
        store.apply(&batch(recs)).expect("apply");
        let scan = |from: Option<&str>, to: Option<&str>, stop: usize| {
            let mut seen = Vec::new();
            store
                .scan_dataset("ds.one", from, to, &mut |r| {
                    seen.push((r.event_date.clone(), r.record_id));
                    seen.len() < stop
                })
                .expect("scan");
            seen
        };
        let whole = scan(None, None, usize::MAX);
        assert_eq!(whole.len(), 60);
        let mut sorted = whole.clone();
        sorted.sort();
        assert_eq!(whole, sorted, "by date, then by id");
        for chunk in [1, 4, 7, 59] {
            store.set_scan_chunk(chunk);
            assert_eq!(scan(None, None, usize::MAX), whole, "chunks of {chunk}");
            assert_eq!(
                scan(None, None, 13),
                whole[..13],
                "stopped, chunks of {chunk}"
            );
            let bounded = scan(Some("2025-03-02"), Some("2025-03-03"), usize::MAX);
            let expected: Vec<_> = whole
                .iter()
                .filter(|(d, _)| d.as_str() >= "2025-03-02" && d.as_str() <= "2025-03-03")
                .cloned()
                .collect();
            assert_eq!(bounded, expected, "bounded, chunks of {chunk}");
        }
    }

    #[test]
    fn a_large_upload_indexes_early_and_stays_correct() {
        let store = SqliteStore::open_in_memory().expect("open");
        store.set_overlay_rows(3);
        store.begin_upload().expect("begin");
        for i in 0..10 {
            let id = format!("r-{i}");
            assert_eq!(
                store.get_records(std::slice::from_ref(&id)).expect("get"),
                vec![None]
            );
            store
                .apply(&batch(vec![rec(&id, "p-1", &["k-1"])]))
                .expect("insert");
        }
        // Again, with another key: each is found, wherever it now is.
        for i in 0..10 {
            store
                .apply(&batch(vec![rec(&format!("r-{i}"), "p-1", &["k-2"])]))
                .expect("replace");
        }
        store.end_upload(true).expect("publish");
        assert_eq!(store.records_of_person("p-1").expect("person").len(), 10);
        assert!(store.records_with_key("k-1").expect("key").is_empty());
        assert_eq!(store.records_with_key("k-2").expect("key").len(), 10);
    }

    #[test]
    fn a_row_rewritten_before_publishing_is_indexed_as_last_written() {
        let store = SqliteStore::open_in_memory().expect("open");
        store.begin_upload().expect("begin");
        store
            .apply(&batch(vec![
                rec("r-1", "p-1", &["k-1"]),
                rec("r-2", "p-2", &["k-3"]),
            ]))
            .expect("insert");
        // Still in the overlay: its kept entries are the first version's.
        store
            .apply(&batch(vec![rec("r-1", "p-3", &["k-2"])]))
            .expect("replace");
        store.end_upload(true).expect("publish");
        let db = super::lock(&store.conn);
        let count = |sql: &str| -> i64 { db.conn.query_row(sql, [], |r| r.get(0)).expect("count") };
        // One entry a record in each index: none left from the first version.
        assert_eq!(count("SELECT count(*) FROM key_index"), 2);
        assert_eq!(count("SELECT count(*) FROM person_index"), 2);
        assert_eq!(count("SELECT count(*) FROM id_index"), 2);
        drop(db);
        assert_eq!(store.records_with_key("k-2").expect("key").len(), 1);
        assert_eq!(store.records_of_person("p-3").expect("person").len(), 1);
        assert!(store.records_of_person("p-1").expect("person").is_empty());
    }

    #[test]
    fn an_upload_indexes_early_part_way_through_a_batch() {
        let store = SqliteStore::open_in_memory().expect("open");
        store.set_overlay_rows(3);
        store.begin_upload().expect("begin");
        let records = |key: &str| -> Vec<StoredRecord> {
            (0..10)
                .map(|i| rec(&format!("r-{i}"), "p-1", &[key]))
                .collect()
        };
        store.apply(&batch(records("k-1"))).expect("insert");
        {
            let db = super::lock(&store.conn);
            let up = db.upload.as_ref().expect("open upload");
            // Indexed at 3, 6 and 9 rows, never holding more than its cap.
            assert_eq!(up.rows.len(), 1);
        }
        // Each record again in one batch: found whether it was indexed
        // before or during the batch, and replaced, not added.
        store.apply(&batch(records("k-2"))).expect("replace");
        store.end_upload(true).expect("publish");
        assert_eq!(store.records_of_person("p-1").expect("person").len(), 10);
        assert!(store.records_with_key("k-1").expect("key").is_empty());
        assert_eq!(store.records_with_key("k-2").expect("key").len(), 10);
    }

    #[test]
    fn the_chain_log_appends_inside_an_open_upload() {
        let store = SqliteStore::open_in_memory().expect("open");
        store.begin_upload().expect("begin");
        agencylink_core::conformance::chain_log(&store.lineage());
        store.end_upload(true).expect("publish");
        assert!(store.lineage().head().expect("head").is_some());
    }

    #[test]
    fn an_older_records_table_is_upgraded() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE records (record_id TEXT PRIMARY KEY, person_id TEXT NOT NULL, agency TEXT NOT NULL, dataset TEXT NOT NULL, event_date TEXT NOT NULL, upload_id TEXT NOT NULL, row INTEGER NOT NULL, content_hash TEXT NOT NULL, match_keys TEXT NOT NULL, links TEXT NOT NULL, body TEXT NOT NULL)",
        )
        .expect("old layout");
        let store = SqliteStore::init(conn, super::Bodies::in_memory()).expect("upgrades");
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
        let store = SqliteStore::init(conn, super::Bodies::in_memory()).expect("upgrades");
        let ids = |v: Vec<agencylink_core::ports::StoredRecord>| {
            v.into_iter().map(|r| r.record_id).collect::<Vec<_>>()
        };
        assert_eq!(ids(store.records_with_key("mk-1").expect("key")), ["r1"]);
        assert_eq!(ids(store.records_with_link("t-1").expect("link")), ["r1"]);
        assert!(store.records_with_key("mk-2").expect("key").is_empty());
    }

    #[test]
    fn bodies_kept_in_the_database_move_to_the_body_file() {
        use agencylink_core::ports::RecordStore;
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE records (record_id TEXT NOT NULL, person_id TEXT NOT NULL, agency TEXT NOT NULL, dataset TEXT NOT NULL, event_date TEXT NOT NULL, upload_id TEXT NOT NULL, row INTEGER NOT NULL, match_keys TEXT NOT NULL, links TEXT NOT NULL, id_hash INTEGER NOT NULL, person_hash INTEGER NOT NULL, date_key INTEGER NOT NULL, key_hashes TEXT NOT NULL, link_hashes TEXT NOT NULL);
             CREATE TABLE bodies (rid INTEGER PRIMARY KEY, body TEXT NOT NULL);
             CREATE TABLE id_index (hash INTEGER NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (hash, rid)) WITHOUT ROWID;
             INSERT INTO records (rowid, record_id, person_id, agency, dataset, event_date, upload_id, row, match_keys, links, id_hash, person_hash, date_key, key_hashes, link_hashes)
                 VALUES (7, 'r1', 'p1', 'a', 'ds', '2025-01-01', 'u1', 1, '[\"mk-1\"]', '[]', 0, 0, 0, '[]', '[]');
             INSERT INTO bodies VALUES (7, '{\"fields\":{\"x\":1},\"provenance\":{}}');
             INSERT INTO id_index VALUES (0, 7);",
        )
        .expect("the previous layout");
        let store = SqliteStore::init(conn, super::Bodies::in_memory()).expect("upgrades");
        let got = store.get_record("r1").expect("get").expect("r1");
        assert_eq!(
            got.body.as_str(),
            "{\"fields\":{\"x\":1},\"provenance\":{}}"
        );
        assert_eq!(got.person_id, "p1");
        let ids: Vec<_> = store
            .records_with_key("mk-1")
            .expect("key")
            .into_iter()
            .map(|r| r.record_id)
            .collect();
        assert_eq!(ids, ["r1"], "indexes rebuilt from the real hashes");
        let db = super::lock(&store.conn);
        let tables: i64 = db
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'bodies'",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(tables, 0, "the bodies table is gone");
    }

    #[test]
    fn an_older_database_beside_someone_elses_body_file_is_refused_not_upgraded() {
        let dir = scratch_dir("mixed");
        let path = dir.join("store.db");
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(
            "CREATE TABLE records (record_id TEXT PRIMARY KEY, person_id TEXT NOT NULL, agency TEXT NOT NULL, dataset TEXT NOT NULL, event_date TEXT NOT NULL, upload_id TEXT NOT NULL, row INTEGER NOT NULL, match_keys TEXT NOT NULL, links TEXT NOT NULL, body TEXT NOT NULL);",
        )
        .expect("old layout");
        drop(conn);
        std::fs::write(dir.join("store.db-bodies"), b"{}").expect("a body file");
        let err = SqliteStore::open(&path).expect_err("refused").to_string();
        assert!(err.contains("another backup"), "{err}");
        assert_eq!(
            std::fs::read(dir.join("store.db-bodies")).expect("kept"),
            b"{}",
            "the body file is left as it was"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_or_missing_body_file_is_an_error_naming_the_record() {
        let dir = scratch_dir("bodyfile");
        let path = dir.join("store.db");
        let bodies = dir.join("store.db-bodies");
        let store = SqliteStore::open(&path).expect("open");
        store
            .apply(&batch(vec![
                rec("r-1", "p-1", &["k-1"]),
                rec("r-2", "p-1", &["k-1"]),
            ]))
            .expect("apply");
        let len = std::fs::metadata(&bodies).expect("body file").len();
        assert!(len > 0);
        // A killed upload's tail is not read and is cut off by the next.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&bodies)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"half\":"))
            .expect("tail");
        assert_eq!(store.records_of_person("p-1").expect("person").len(), 2);
        store
            .apply(&batch(vec![rec("r-3", "p-3", &["k-3"])]))
            .expect("apply after a tail");
        assert_eq!(
            store
                .get_record("r-3")
                .expect("get")
                .expect("r-3")
                .record_id,
            "r-3"
        );

        // One changed byte in the first body.
        let mut bytes = std::fs::read(&bodies).expect("read");
        bytes[1] ^= 0x20;
        std::fs::write(&bodies, &bytes).expect("damage");
        let err = store.get_record("r-1").expect_err("damaged").to_string();
        assert!(err.contains("r-1") && err.contains("damaged"), "{err}");
        assert!(
            store
                .get_record("r-2")
                .expect("the others still read")
                .is_some()
        );

        // A body file shorter than the database says: reads fail, and
        // nothing is appended to it.
        std::fs::write(&bodies, b"").expect("truncate");
        assert!(store.get_record("r-2").is_err());
        let err = store
            .apply(&batch(vec![rec("r-4", "p-4", &["k-4"])]))
            .expect_err("not appended to")
            .to_string();
        assert!(err.contains("another backup"), "{err}");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_published_upload_is_indexed_as_reading_its_rows_back_would_index_it() {
        // A file-backed store: publishing syncs the body file and the WAL
        // on another thread while the index is built from the overlay,
        // each index's entries sorted on a third while the previous one's
        // are inserted.
        let dir = scratch_dir("indexed-as-read-back");
        let store = SqliteStore::open(&dir.join("store.db")).expect("open");
        store.begin_upload().expect("begin");
        for chunk in 0..4 {
            let records: Vec<StoredRecord> = (0..250)
                .map(|i| {
                    let n = chunk * 250 + i;
                    let mut r = agencylink_core::conformance::sample_record(
                        &format!("r-{n}"),
                        &format!("p-{}", n % 37),
                        ["ds-a", "ds-b"][n % 2],
                        &format!("2025-0{}-1{}", 1 + n % 9, n % 10),
                        &[&format!("k-{}", n % 101), &format!("k-{}", n % 13)],
                        &[("phone", &format!("t-{}", n % 17)), ("vrm", "t-v")],
                    );
                    r.row = n as u64;
                    r
                })
                .collect();
            store.apply(&batch(records)).expect("apply");
        }
        store.end_upload(true).expect("publish");
        let db = super::lock(&store.conn);
        let snapshot = || -> Vec<Vec<(i64, i64)>> {
            super::overlay::INDEXES
                .iter()
                .map(|table| {
                    let mut stmt = db
                        .conn
                        .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
                        .expect("prepare");
                    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                        .expect("query")
                        .collect::<Result<_, _>>()
                        .expect("rows")
                })
                .collect()
        };
        let published = snapshot();
        assert_eq!(published[0].len(), 1000, "one id entry a record");
        assert!(
            published[3].len() > 1000 && published[4].len() > 1000,
            "keys and links: several a record"
        );
        db.conn
            .execute_batch(
                "DELETE FROM id_index; DELETE FROM person_index; DELETE FROM date_index;
                 DELETE FROM key_index; DELETE FROM link_index;",
            )
            .expect("empty the indexes");
        super::build_indexes(&db.conn, 0, 1000).expect("read back");
        assert_eq!(snapshot(), published);
        drop(db);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_index_built_in_several_sorted_runs_is_complete() {
        let store = SqliteStore::open_in_memory().expect("open");
        let records: Vec<StoredRecord> = (0..20)
            .map(|i| rec(&format!("r-{i}"), &format!("p-{}", i % 3), &["k-1", "k-1"]))
            .collect();
        store.apply(&batch(records)).expect("apply");
        let db = super::lock(&store.conn);
        db.conn
            .execute_batch(
                "DELETE FROM id_index; DELETE FROM person_index; DELETE FROM date_index;
                 DELETE FROM key_index; DELETE FROM link_index;",
            )
            .expect("empty the indexes");
        super::build_indexes_in_runs(&db.conn, 0, 20, 3).expect("build in runs of 3");
        let count = |sql: &str| -> i64 { db.conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
        for index in ["id_index", "person_index", "date_index", "link_index"] {
            assert_eq!(
                count(&format!("SELECT count(*) FROM {index}")),
                20,
                "{index}"
            );
        }
        // The key listed twice on each record: one entry each.
        assert_eq!(count("SELECT count(*) FROM key_index"), 20);
        drop(db);
        assert_eq!(store.records_of_person("p-1").expect("person").len(), 7);
        assert_eq!(store.records_with_key("k-1").expect("key").len(), 20);
    }
}
