//! The record store over SQLite: reads, batch writes, and the open upload
//! whose rows are appended now and indexed when it is published.

use std::collections::{HashMap, HashSet};

use agencylink_core::ports::{
    Link, LinkageStore, RecordStore, StoreError, StoreResult, StoredRecord, WriteBatch,
};
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Bodies, BodyAt, Db, Overlay, Parts, RECORD, RowEntries, SqliteStore, Upload, bodies_end,
    body_at, build_indexes, build_indexes_from, date_key, date_key_of, date_number, db_err, lock,
    row_parts, row_to_record, set_bodies_end, token_hash,
};

impl Db {
    /// Open an upload: one IMMEDIATE transaction, so no other writer can
    /// append rows between ours.
    fn begin(&mut self, implicit: bool) -> StoreResult<()> {
        if self.upload.is_some() {
            return Err(StoreError::Invalid(
                "an upload is already open on this store".into(),
            ));
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(db_err("starting an upload"))?;
        let start =
            self.conn
                .query_row("SELECT coalesce(max(rowid), 0) + 1 FROM records", [], |r| {
                    r.get(0)
                });
        let start = start
            .map_err(db_err("starting an upload"))
            .and_then(|start| {
                // With the write lock: finish a compaction a killed process
                // committed but did not rename, and make sure our handle is
                // the body file now at its name before appending to it.
                super::compact::recover(&self.conn, &mut self.bodies)?;
                let committed = bodies_end(&self.conn)?;
                self.bodies.begin(committed)?;
                let indexed: bool = self
                    .conn
                    .query_row("SELECT EXISTS (SELECT 1 FROM id_index)", [], |r| r.get(0))
                    .map_err(db_err("starting an upload"))?;
                Ok((start, committed, indexed))
            });
        match start {
            Ok((start, bodies_from, indexed)) => {
                self.upload = Some(Upload {
                    start,
                    rows: Overlay::default(),
                    datasets: HashSet::new(),
                    unindexed: HashSet::new(),
                    index_empty: !indexed,
                    implicit,
                    failed: false,
                    bodies_from,
                });
                Ok(())
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Write the index entries of the upload's rows so far, so that reads
    /// the overlay cannot answer (by key, link or date) see them.
    fn flush(&mut self) -> StoreResult<()> {
        match self.upload.as_mut() {
            Some(up) => flush_rows(&self.conn, up),
            None => Ok(()),
        }
    }

    /// Publish (`keep`) or roll back the open upload.
    fn end(&mut self, keep: bool) -> StoreResult<()> {
        let (failed, bodies_from) = match &self.upload {
            Some(up) => (up.failed, up.bodies_from),
            None => {
                return Err(StoreError::Invalid(
                    "no upload is open on this store".into(),
                ));
            }
        };
        let outcome = if !keep {
            Ok(())
        } else if failed {
            Err(StoreError::Backend {
                message: "a write of this upload failed, so none of it was kept".into(),
                source: None,
            })
        } else {
            self.publish(bodies_from)
        };
        if !self.conn.is_autocommit() {
            // While the write lock is still held: the next writer appends
            // from the committed length.
            let _ = self.bodies.discard(bodies_from);
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.upload = None;
        outcome
    }

    /// Index the open upload's rows, make its bodies durable and commit.
    fn publish(&mut self, bodies_from: u64) -> StoreResult<()> {
        // The bodies are on disk before the rows that point at them:
        // synced while the index is built (see `writeback`), and once more
        // (little left by then) after it.
        let handle = self.bodies.write_out()?;
        let db = self.conn.path().map(std::path::Path::new);
        let conn = &self.conn;
        let up = self.upload.as_mut();
        let (built, synced) = super::writeback::while_syncing(handle, db, || {
            up.map_or(Ok(()), |up| flush_rows(conn, up))
        });
        built?;
        synced.map_err(|e| StoreError::backend("syncing (the record bodies file)", e))?;
        let end = self.bodies.sync(bodies_from)?;
        set_bodies_end(&self.conn, end)?;
        self.conn
            .execute_batch("COMMIT")
            .map_err(db_err("publishing an upload"))
    }
}

/// Index the upload's rows so far and empty the overlay.
fn flush_rows(conn: &Connection, up: &mut Upload) -> StoreResult<()> {
    let n = up.rows.len();
    if n == 0 {
        return Ok(());
    }
    let from = up.start;
    up.start = from.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
    // The rows leave the overlay for the index: an id found nowhere
    // before may be in the index now.
    up.unindexed.clear();
    up.index_empty = false;
    let rows = std::mem::take(&mut up.rows);
    let built = if rows.is_stale() {
        // Free the overlay before the build takes its memory.
        drop(rows);
        build_indexes(conn, from, n)
    } else {
        build_indexes_from(conn, from, rows)
    };
    if built.is_err() {
        up.failed = true;
    }
    built
}

/// Run reads in one read transaction (one snapshot, one lock round trip)
/// unless a transaction is already open.
pub(super) fn read_scope<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    if !conn.is_autocommit() {
        return f(conn);
    }
    conn.execute_batch("BEGIN")
        .map_err(db_err("starting a read"))?;
    let out = f(conn);
    let end = conn.execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
    let out = out?;
    end.map_err(db_err("ending a read"))?;
    Ok(out)
}

/// Records a dataset scan looks up at a time, in table order, so that each
/// table page is read a handful of times rather than once per record (a
/// profile of the 1,000,000-row demo store took 18.5 s reading in date
/// order). A chunk holds its records without their bodies, about 20 MiB;
/// each body is read as its record is handed on. (Holding the bodies too,
/// chunks of 16,384 cost more time and no less memory than these.)
pub(super) const SCAN_CHUNK: usize = 32768;

/// The row at `rid`, if it is there.
fn row_at(conn: &Connection, bodies: &Bodies, rid: i64) -> StoreResult<Option<StoredRecord>> {
    conn.prepare_cached(&format!("{RECORD} FROM records r WHERE r.rowid = ?1"))
        .map_err(db_err("preparing a query"))?
        .query_row([rid], |row| row_to_record(row, bodies))
        .optional()
        .map_err(db_err("reading a record"))?
        .transpose()
}

/// The record at a rowid, but for its body: where that is.
fn parts_at(conn: &Connection, rid: i64) -> StoreResult<Option<(Parts, BodyAt)>> {
    conn.prepare_cached(&format!("{RECORD} FROM records r WHERE r.rowid = ?1"))
        .map_err(db_err("preparing a query"))?
        .query_row([rid], |row| {
            let at = body_at(row, 9)?;
            Ok(row_parts(row)?.map(|parts| (parts, at)))
        })
        .optional()
        .map_err(db_err("reading a record"))?
        .transpose()
}

/// Rowids that may hold record `id`: the open upload's rows with its hash,
/// then the id index's (not asked again when the last read found the id
/// nowhere). Callers check the id on the row: hashes collide.
fn candidate_rids(conn: &Connection, up: Option<&Upload>, id: &str) -> StoreResult<Vec<i64>> {
    let h = token_hash(id);
    let mut out = Vec::new();
    if let Some(up) = up {
        out.extend(
            up.rows
                .rows_with_id(h)
                .into_iter()
                .map(|offset| up.start + i64::try_from(offset).unwrap_or(i64::MAX)),
        );
        if up.index_empty || up.unindexed.contains(id) {
            return Ok(out);
        }
    }
    let mut stmt = conn
        .prepare_cached("SELECT rid FROM id_index WHERE hash = ?1")
        .map_err(db_err("preparing a query"))?;
    let rows = stmt
        .query_map([h], |r| r.get::<_, i64>(0))
        .map_err(db_err("reading the id index"))?;
    for rid in rows {
        out.push(rid.map_err(db_err("reading the id index"))?);
    }
    Ok(out)
}

/// The rowid of a record, if it is stored.
fn find_rid(conn: &Connection, up: Option<&Upload>, id: &str) -> StoreResult<Option<i64>> {
    let mut stmt = conn
        .prepare_cached("SELECT record_id FROM records WHERE rowid = ?1")
        .map_err(db_err("preparing a query"))?;
    for rid in candidate_rids(conn, up, id)? {
        let found: Option<String> = stmt
            .query_row([rid], |r| r.get(0))
            .optional()
            .map_err(db_err("reading a record"))?;
        if found.as_deref() == Some(id) {
            return Ok(Some(rid));
        }
    }
    Ok(None)
}

/// A record by id, if it is stored.
fn find_record(
    conn: &Connection,
    bodies: &Bodies,
    up: Option<&Upload>,
    id: &str,
) -> StoreResult<Option<StoredRecord>> {
    for rid in candidate_rids(conn, up, id)? {
        if let Some(r) = row_at(conn, bodies, rid)?.filter(|r| r.record_id == id) {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

fn query_records(
    conn: &Connection,
    bodies: &Bodies,
    sql: &str,
    args: impl rusqlite::Params,
) -> StoreResult<Vec<StoredRecord>> {
    let mut stmt = conn
        .prepare_cached(sql)
        .map_err(db_err("preparing a query"))?;
    let rows = stmt
        .query_map(args, |row| row_to_record(row, bodies))
        .map_err(db_err("querying records"))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r.map_err(db_err("reading a record"))??);
    }
    Ok(out)
}

/// Indexes of `items` in sorted order.
pub(super) fn sorted_order(items: &[String]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_unstable_by(|&a, &b| items[a].cmp(&items[b]));
    order
}

fn by_date(records: &mut [StoredRecord]) {
    records.sort_by(|a, b| {
        (a.event_date.as_str(), a.record_id.as_str())
            .cmp(&(b.event_date.as_str(), b.record_id.as_str()))
    });
}

/// Write one batch inside the open upload, indexing its rows early once
/// the overlay holds `overlay_rows`, even part-way through the batch, so
/// the overlay never grows past that.
fn write_batch(
    conn: &Connection,
    bodies: &mut Bodies,
    up: &mut Upload,
    batch: &WriteBatch,
    overlay_rows: usize,
) -> StoreResult<()> {
    // Prepared once for the batch: a cached statement is found by hashing
    // its whole SQL text, which cost as much as binding a record.
    let mut insert_stmt = conn
        .prepare_cached(INSERT)
        .map_err(db_err("preparing a write"))?;
    let mut scratch = BindScratch::default();
    for r in &batch.records {
        if !up.datasets.contains(&r.dataset) {
            conn.prepare_cached("INSERT OR IGNORE INTO datasets (name) VALUES (?1)")
                .map_err(db_err("preparing a write"))?
                .execute([&r.dataset])
                .map_err(db_err("writing a dataset"))?;
            up.datasets.insert(r.dataset.clone());
        }
        match find_rid(conn, Some(up), &r.record_id)? {
            None => {
                insert_with(&mut insert_stmt, bodies, None, r, &mut scratch)?;
                // The overlay addresses rows by offset from the upload's
                // first rowid; the write lock guarantees they are consecutive.
                let expected = up.start + i64::try_from(up.rows.len()).unwrap_or(i64::MAX);
                if conn.last_insert_rowid() != expected {
                    return Err(StoreError::Backend {
                        message: "records were not appended in rowid order".into(),
                        source: None,
                    });
                }
                up.rows.push(RowEntries {
                    id_hash: token_hash(&r.record_id),
                    person_hash: token_hash(&r.person_id),
                    date_key: date_key(&r.dataset, &r.event_date),
                    key_hashes: &scratch.key_hash_values,
                    link_hashes: &scratch.link_hash_values,
                });
                if up.rows.len() >= overlay_rows {
                    flush_rows(conn, up)?;
                }
            }
            Some(rid) => {
                // Only a row indexed before (not one of this upload's) has
                // index entries that may now be wrong.
                let old = if rid < up.start {
                    indexed_fields(conn, rid)?
                } else {
                    None
                };
                update(conn, bodies, rid, r)?;
                match old {
                    Some(old) => reindex(conn, rid, &old, r)?,
                    None => up.rows.set_person(
                        usize::try_from(rid - up.start).unwrap_or(usize::MAX),
                        token_hash(&r.person_id),
                    ),
                }
            }
        }
    }
    let mut rm_owner = conn
        .prepare_cached("DELETE FROM key_owner WHERE key = ?1")
        .map_err(db_err("preparing a write"))?;
    for k in &batch.key_removals {
        rm_owner.execute([k]).map_err(db_err("removing a key"))?;
    }
    let mut owner = conn
        .prepare_cached("INSERT OR REPLACE INTO key_owner (key, person_id) VALUES (?1, ?2)")
        .map_err(db_err("preparing a write"))?;
    let mut owners: Vec<&(String, String)> = batch.key_owners.iter().collect();
    // Stable by key: for a key given twice the last owner still wins, and
    // neighbouring writes share B-tree pages.
    owners.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, p) in owners {
        owner
            .execute([k, p])
            .map_err(db_err("writing a key owner"))?;
    }
    let mut alias = conn
        .prepare_cached("INSERT OR REPLACE INTO aliases (old_id, new_id) VALUES (?1, ?2)")
        .map_err(db_err("preparing a write"))?;
    for (old, new) in &batch.aliases {
        alias
            .execute([old, new])
            .map_err(db_err("writing an alias"))?;
    }
    Ok(())
}

/// Reused text buffers for a record's JSON columns: four a record,
/// allocated once per batch rather than once per record; and the hashes
/// of the last record bound, which the upload's overlay keeps too.
#[derive(Default)]
pub(super) struct BindScratch {
    keys: String,
    links: String,
    key_hashes: String,
    link_hashes: String,
    key_hash_values: Vec<i64>,
    link_hash_values: Vec<i64>,
}

/// `v` as JSON into `out` (cleared first).
fn json_into<T: serde::Serialize + ?Sized>(out: &mut String, v: &T) -> StoreResult<()> {
    let mut bytes = std::mem::take(out).into_bytes();
    bytes.clear();
    let written = serde_json::to_writer(&mut bytes, v);
    // serde_json writes UTF-8 only; the check is a scan of a short buffer.
    *out = String::from_utf8(bytes).unwrap_or_default();
    written.map_err(|e| StoreError::backend("encoding JSON", e))
}

/// Bind a record's columns but its body's place as `?1` to `?14`.
fn bind_record(
    stmt: &mut rusqlite::CachedStatement<'_>,
    r: &StoredRecord,
    scratch: &mut BindScratch,
) -> StoreResult<()> {
    let BindScratch {
        keys,
        links,
        key_hashes,
        link_hashes,
        key_hash_values,
        link_hash_values,
    } = scratch;
    json_into(keys, &r.match_keys)?;
    json_into(links, &r.links)?;
    key_hash_values.clear();
    key_hash_values.extend(r.match_keys.iter().map(|t| token_hash(t)));
    json_into(key_hashes, key_hash_values)?;
    link_hash_values.clear();
    link_hash_values.extend(r.links.iter().map(|l| token_hash(&l.token)));
    json_into(link_hashes, link_hash_values)?;
    let texts: [(usize, &str); 10] = [
        (1, &r.record_id),
        (2, &r.person_id),
        (3, &r.agency),
        (4, &r.dataset),
        (5, &r.event_date),
        (6, &r.upload_id),
        (8, keys),
        (9, links),
        (13, key_hashes),
        (14, link_hashes),
    ];
    for (i, v) in texts {
        stmt.raw_bind_parameter(i, v)
            .map_err(db_err("writing a record"))?;
    }
    let numbers: [(usize, i64); 4] = [
        (7, i64::try_from(r.row).unwrap_or(i64::MAX)),
        (10, token_hash(&r.record_id)),
        (11, token_hash(&r.person_id)),
        (12, date_key(&r.dataset, &r.event_date)),
    ];
    for (i, v) in numbers {
        stmt.raw_bind_parameter(i, v)
            .map_err(db_err("writing a record"))?;
    }
    Ok(())
}

/// Bind a body's place as `?15` to `?17`.
fn bind_body(stmt: &mut rusqlite::CachedStatement<'_>, at: BodyAt) -> StoreResult<()> {
    let numbers: [(usize, i64); 3] = [
        (15, i64::try_from(at.offset).unwrap_or(i64::MAX)),
        (16, i64::from(at.len)),
        (17, i64::from(at.crc)),
    ];
    for (i, v) in numbers {
        stmt.raw_bind_parameter(i, v)
            .map_err(db_err("writing a record"))?;
    }
    Ok(())
}

/// Append a record (at `rid` when given, for an upgrade keeping rowids),
/// its body to the body file; its rowid.
pub(super) fn insert(
    conn: &Connection,
    bodies: &mut Bodies,
    rid: Option<i64>,
    r: &StoredRecord,
) -> StoreResult<i64> {
    let mut stmt = conn
        .prepare_cached(INSERT)
        .map_err(db_err("preparing a write"))?;
    insert_with(&mut stmt, bodies, rid, r, &mut BindScratch::default())?;
    Ok(conn.last_insert_rowid())
}

/// [`insert`] with the statement already prepared (`INSERT`), for a loop.
fn insert_with(
    stmt: &mut rusqlite::CachedStatement<'_>,
    bodies: &mut Bodies,
    rid: Option<i64>,
    r: &StoredRecord,
    scratch: &mut BindScratch,
) -> StoreResult<()> {
    let at = bodies.append(r.body.as_str().as_bytes())?;
    bind_record(stmt, r, scratch)?;
    bind_body(stmt, at)?;
    stmt.raw_bind_parameter(18, rid)
        .map_err(db_err("writing a record"))?;
    stmt.raw_execute().map_err(db_err("writing a record"))?;
    Ok(())
}

/// Appends a record: its columns as `?1` to `?17`, its rowid as `?18`
/// (null for the next one).
const INSERT: &str = "INSERT INTO records (rowid, record_id, person_id, agency, dataset, event_date, upload_id, row, match_keys, links, id_hash, person_hash, date_key, key_hashes, link_hashes, body_at, body_len, body_crc) VALUES (?18, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

fn update(conn: &Connection, bodies: &mut Bodies, rid: i64, r: &StoredRecord) -> StoreResult<()> {
    let body = r.body.as_str().as_bytes();
    // A record moved to another person keeps its body: compare, don't
    // append it again.
    let stored = conn
        .prepare_cached("SELECT body_at, body_len, body_crc FROM records WHERE rowid = ?1")
        .map_err(db_err("preparing a query"))?
        .query_row([rid], |row| super::body_at(row, 0))
        .map_err(db_err("reading a record"))?;
    let same = stored.may_hold(body) && bodies.read(stored).is_ok_and(|old| old.as_bytes() == body);
    let at = if same { stored } else { bodies.append(body)? };
    let mut stmt = conn
        .prepare_cached(
            "UPDATE records SET record_id = ?1, person_id = ?2, agency = ?3, dataset = ?4, event_date = ?5, upload_id = ?6, row = ?7, match_keys = ?8, links = ?9, id_hash = ?10, person_hash = ?11, date_key = ?12, key_hashes = ?13, link_hashes = ?14, body_at = ?15, body_len = ?16, body_crc = ?17 WHERE rowid = ?18",
        )
        .map_err(db_err("preparing a write"))?;
    bind_record(&mut stmt, r, &mut BindScratch::default())?;
    bind_body(&mut stmt, at)?;
    stmt.raw_bind_parameter(18, rid)
        .map_err(db_err("writing a record"))?;
    stmt.raw_execute().map_err(db_err("writing a record"))?;
    Ok(())
}

/// What the indexes were built from, for an indexed record about to change.
fn indexed_fields(conn: &Connection, rid: i64) -> StoreResult<Option<Indexed>> {
    let row = conn
        .prepare_cached(
            "SELECT person_id, dataset, event_date, match_keys, links FROM records WHERE rowid = ?1",
        )
        .map_err(db_err("preparing a query"))?
        .query_row([rid], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .optional()
        .map_err(db_err("reading a record"))?;
    let Some((person_id, dataset, event_date, keys, links)) = row else {
        return Ok(None);
    };
    let corrupt = |e| StoreError::backend("a stored record's keys or links are corrupt", e);
    Ok(Some(Indexed {
        person_id,
        dataset,
        event_date,
        match_keys: serde_json::from_str(&keys).map_err(corrupt)?,
        links: serde_json::from_str(&links).map_err(corrupt)?,
    }))
}

/// The fields of a record its index entries come from.
struct Indexed {
    person_id: String,
    dataset: String,
    event_date: String,
    match_keys: Vec<String>,
    links: Vec<Link>,
}

/// Move an indexed record's entries from its old version to its new one.
fn reindex(conn: &Connection, rid: i64, old: &Indexed, new: &StoredRecord) -> StoreResult<()> {
    if old.person_id != new.person_id {
        move_entry(
            conn,
            "person_index",
            token_hash(&old.person_id),
            token_hash(&new.person_id),
            rid,
        )?;
    }
    if (&old.dataset, &old.event_date) != (&new.dataset, &new.event_date) {
        move_entry(
            conn,
            "date_index",
            date_key(&old.dataset, &old.event_date),
            date_key(&new.dataset, &new.event_date),
            rid,
        )?;
    }
    let hashes = |tokens: &mut dyn Iterator<Item = &String>| -> HashSet<i64> {
        tokens.map(|t| token_hash(t)).collect()
    };
    let (old_keys, new_keys) = (
        hashes(&mut old.match_keys.iter()),
        hashes(&mut new.match_keys.iter()),
    );
    sync_entries(conn, "key_index", &old_keys, &new_keys, rid)?;
    let (old_links, new_links) = (
        hashes(&mut old.links.iter().map(|l: &Link| &l.token)),
        hashes(&mut new.links.iter().map(|l: &Link| &l.token)),
    );
    sync_entries(conn, "link_index", &old_links, &new_links, rid)
}

fn move_entry(conn: &Connection, table: &str, from: i64, to: i64, rid: i64) -> StoreResult<()> {
    sync_entries(
        conn,
        table,
        &HashSet::from([from]),
        &HashSet::from([to]),
        rid,
    )
}

/// Delete the (hash, rid) entries only the old version had and add the ones
/// only the new version has.
fn sync_entries(
    conn: &Connection,
    table: &str,
    old: &HashSet<i64>,
    new: &HashSet<i64>,
    rid: i64,
) -> StoreResult<()> {
    // The date index calls its key `date_key`; the others, `hash`.
    let column = if table == "date_index" {
        "date_key"
    } else {
        "hash"
    };
    let mut del = conn
        .prepare_cached(&format!(
            "DELETE FROM {table} WHERE {column} = ?1 AND rid = ?2"
        ))
        .map_err(db_err("preparing a write"))?;
    for h in old.difference(new) {
        del.execute([*h, rid]).map_err(db_err("writing an index"))?;
    }
    let mut put = conn
        .prepare_cached(&format!(
            "INSERT OR IGNORE INTO {table} ({column}, rid) VALUES (?1, ?2)"
        ))
        .map_err(db_err("preparing a write"))?;
    for h in new.difference(old) {
        put.execute([*h, rid]).map_err(db_err("writing an index"))?;
    }
    Ok(())
}

/// Remove the row at `rid` (record `id`) and its index entries.
fn remove_row(conn: &Connection, rid: i64, id: &str) -> StoreResult<()> {
    if let Some(old) = indexed_fields(conn, rid)? {
        let none = HashSet::new();
        let one = |h: i64| HashSet::from([h]);
        sync_entries(conn, "id_index", &one(token_hash(id)), &none, rid)?;
        sync_entries(
            conn,
            "person_index",
            &one(token_hash(&old.person_id)),
            &none,
            rid,
        )?;
        sync_entries(
            conn,
            "date_index",
            &one(date_key(&old.dataset, &old.event_date)),
            &none,
            rid,
        )?;
        let keys: HashSet<i64> = old.match_keys.iter().map(|k| token_hash(k)).collect();
        sync_entries(conn, "key_index", &keys, &none, rid)?;
        let links: HashSet<i64> = old.links.iter().map(|l| token_hash(&l.token)).collect();
        sync_entries(conn, "link_index", &links, &none, rid)?;
    }
    conn.prepare_cached("DELETE FROM records WHERE rowid = ?1")
        .map_err(db_err("preparing a write"))?
        .execute([rid])
        .map_err(db_err("removing a record"))?;
    Ok(())
}

impl SqliteStore {
    /// Run `f`'s writes in the open upload's transaction, or in an
    /// IMMEDIATE transaction of their own. A failed write inside an upload
    /// fails the upload, as a failed record write does.
    fn record_write<T>(&self, f: impl FnOnce(&mut Db) -> StoreResult<T>) -> StoreResult<T> {
        let mut db = lock(&self.conn);
        if db.upload.as_ref().is_some_and(|up| up.failed) {
            return Err(StoreError::Invalid(
                "a write of this upload already failed; end it and start again".into(),
            ));
        }
        if db.upload.is_some() {
            let out = f(&mut db);
            if out.is_err()
                && let Some(up) = db.upload.as_mut()
            {
                up.failed = true;
            }
            return out;
        }
        db.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(db_err("starting a write"))?;
        let out = f(&mut db);
        let end = db
            .conn
            .execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
        let out = out?;
        end.map_err(db_err("committing a write"))?;
        Ok(out)
    }

    /// Records a hashed token index points at for `token` (the caller keeps
    /// those that really carry it), by date. The upload's pending rows are
    /// indexed first.
    fn records_in(&self, index: &str, token: &str) -> StoreResult<Vec<StoredRecord>> {
        let mut db = lock(&self.conn);
        db.flush()?;
        query_records(
            &db.conn,
            &db.bodies,
            &format!(
                "{RECORD} FROM {index} x JOIN records r ON r.rowid = x.rid WHERE x.hash = ?1 ORDER BY r.event_date, r.record_id"
            ),
            [token_hash(token)],
        )
    }
}

impl RecordStore for SqliteStore {
    fn get_records(&self, ids: &[String]) -> StoreResult<Vec<Option<StoredRecord>>> {
        let mut db = lock(&self.conn);
        let Db {
            conn,
            upload,
            bodies,
            ..
        } = &mut *db;
        let out = read_scope(conn, |conn| {
            let mut out = vec![None; ids.len()];
            // In the id index's order (by hash), so neighbouring probes
            // share its pages. (Each hash computed once, not once a comparison.)
            let mut order: Vec<(i64, usize)> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| (token_hash(id), i))
                .collect();
            order.sort_unstable();
            for (_, i) in order {
                out[i] = find_record(conn, bodies, upload.as_ref(), &ids[i])?;
            }
            Ok(out)
        })?;
        // While the index is empty nothing asks `unindexed` (the overlay
        // alone answers), so the set is not built.
        if let Some(up) = upload.as_mut().filter(|up| !up.index_empty) {
            // Only the upload's own writes can add ids before its end.
            up.unindexed.clear();
            up.unindexed.extend(
                ids.iter()
                    .zip(&out)
                    .filter(|(_, found)| found.is_none())
                    .map(|(id, _)| id.clone()),
            );
        }
        Ok(out)
    }

    fn key_owners(&self, keys: &[String]) -> StoreResult<HashMap<String, String>> {
        let db = lock(&self.conn);
        read_scope(&db.conn, |conn| {
            let mut out = HashMap::new();
            let mut stmt = conn
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
            Ok(out)
        })
    }

    fn records_of_person(&self, person_id: &str) -> StoreResult<Vec<StoredRecord>> {
        let db = lock(&self.conn);
        let h = token_hash(person_id);
        read_scope(&db.conn, |conn| {
            let mut found = query_records(
                conn,
                &db.bodies,
                &format!(
                    "{RECORD} FROM person_index x JOIN records r ON r.rowid = x.rid WHERE x.hash = ?1 AND r.person_id = ?2"
                ),
                params![h, person_id],
            )?;
            if let Some(up) = &db.upload {
                for offset in up.rows.rows_of_person(h) {
                    let rid = up.start + i64::try_from(offset).unwrap_or(i64::MAX);
                    if let Some(r) =
                        row_at(conn, &db.bodies, rid)?.filter(|r| r.person_id == person_id)
                    {
                        found.push(r);
                    }
                }
            }
            by_date(&mut found);
            Ok(found)
        })
    }

    fn records_with_key(&self, key: &str) -> StoreResult<Vec<StoredRecord>> {
        let mut found = self.records_in("key_index", key)?;
        found.retain(|r| r.match_keys.iter().any(|k| k == key));
        Ok(found)
    }

    fn records_with_link(&self, token: &str) -> StoreResult<Vec<StoredRecord>> {
        let mut found = self.records_in("link_index", token)?;
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
        let mut db = lock(&self.conn);
        db.flush()?;
        let db = &*db;
        // The key range holds every record of the dataset in the date range
        // (and, were two datasets' hashes to share their top half, some of
        // the other's): the exact bounds are checked on the record.
        let low = date_key_of(dataset, from.and_then(date_number).unwrap_or(0));
        let high = date_key_of(dataset, to.and_then(date_number).unwrap_or(u32::MAX));
        let (from, to) = (from.unwrap_or(""), to.unwrap_or("\u{10ffff}"));
        // One read transaction: the index entries and the records they
        // name are of the same moment.
        read_scope(&db.conn, |conn| {
            // The records in date order, as index entries only (16 bytes
            // each, so even a dataset of millions is a few MiB).
            let mut entries: Vec<(i64, i64)> = Vec::new();
            {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT date_key, rid FROM date_index WHERE date_key >= ?1 AND date_key <= ?2 ORDER BY date_key, rid",
                    )
                    .map_err(db_err("preparing a scan"))?;
                let mut rows = stmt
                    .query(params![low, high])
                    .map_err(db_err("scanning records"))?;
                while let Some(row) = rows.next().map_err(db_err("scanning records"))? {
                    entries.push((
                        row.get(0).map_err(db_err("scanning records"))?,
                        row.get(1).map_err(db_err("scanning records"))?,
                    ));
                }
            }
            // Each chunk's records are read in table order, then handed
            // over in date order. Read in date order, nearly every record
            // of a dataset larger than the page cache cost a 64 KiB page
            // read (a profile of 1,000,000 records spent half its time
            // copying pages); in table order a chunk reads each page once.
            let mut start = 0;
            while start < entries.len() {
                let mut end = (start + db.scan_chunk.max(1)).min(entries.len());
                // A chunk ends with a date, so one date's records sort
                // together by id, as the order promises.
                while end < entries.len() && entries[end].0 == entries[end - 1].0 {
                    end += 1;
                }
                let chunk = &entries[start..end];
                let mut by_rid: Vec<(i64, usize)> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, &(_, rid))| (rid, i))
                    .collect();
                by_rid.sort_unstable();
                let mut got: Vec<(i64, Parts, BodyAt)> = Vec::with_capacity(chunk.len());
                for (rid, i) in by_rid {
                    let Some((parts, at)) = parts_at(conn, rid)? else {
                        continue;
                    };
                    let date = parts.event_date();
                    if parts.dataset() == dataset && date >= from && date <= to {
                        got.push((chunk[i].0, parts, at));
                    }
                }
                got.sort_unstable_by(|a, b| {
                    a.0.cmp(&b.0)
                        .then_with(|| a.1.record_id().cmp(b.1.record_id()))
                });
                for (_, parts, at) in got {
                    if !visit(parts.read_body(&db.bodies, at)?) {
                        return Ok(());
                    }
                }
                start = end;
            }
            Ok(())
        })
    }

    fn datasets(&self) -> StoreResult<Vec<String>> {
        let db = lock(&self.conn);
        let mut stmt = db
            .conn
            .prepare_cached("SELECT name FROM datasets ORDER BY name")
            .map_err(db_err("preparing a query"))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(db_err("listing datasets"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db_err("listing datasets"))
    }

    fn record_counts(&self) -> StoreResult<agencylink_core::reconcile::RecordCounts> {
        // Counted from the records table itself, not an index: a row
        // deleted behind the store's back must show.
        let db = lock(&self.conn);
        read_scope(&db.conn, |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT upload_id, agency, dataset, count(*) FROM records GROUP BY upload_id, agency, dataset",
                )
                .map_err(db_err("preparing a query"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        agencylink_core::reconcile::RecordGroup {
                            upload_id: r.get(0)?,
                            agency: r.get(1)?,
                            dataset: r.get(2)?,
                        },
                        u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    ))
                })
                .map_err(db_err("counting records"))?;
            rows.collect::<Result<_, _>>()
                .map_err(db_err("counting records"))
        })
    }

    fn scan_upload(
        &self,
        upload_id: &str,
        visit: &mut dyn FnMut(StoredRecord) -> bool,
    ) -> StoreResult<()> {
        let mut db = lock(&self.conn);
        db.flush()?;
        // No index by upload: a withdrawal is rare, and an index would
        // cost every ingest a write a record.
        let mut stmt = db
            .conn
            .prepare(&format!("{RECORD} FROM records r WHERE r.upload_id = ?1"))
            .map_err(db_err("preparing a scan"))?;
        let mut rows = stmt
            .query([upload_id])
            .map_err(db_err("scanning records"))?;
        while let Some(row) = rows.next().map_err(db_err("scanning records"))? {
            let rec = row_to_record(row, &db.bodies).map_err(db_err("reading a record"))??;
            if !visit(rec) {
                break;
            }
        }
        Ok(())
    }

    fn remove_records(&self, ids: &[String]) -> StoreResult<u64> {
        self.record_write(|db| {
            db.flush()?;
            // Freed cells are overwritten with zeros as they are freed, so
            // the removed rows' bytes do not wait in free pages for a
            // VACUUM (which `compact` still runs: the WAL keeps the old
            // page images until a checkpoint).
            db.conn
                .pragma_update(None, "secure_delete", true)
                .map_err(db_err("enabling secure delete"))?;
            let mut removed = 0;
            for id in ids {
                if let Some(rid) = find_rid(&db.conn, db.upload.as_ref(), id)? {
                    remove_row(&db.conn, rid, id)?;
                    removed += 1;
                }
            }
            if let Some(up) = db.upload.as_mut() {
                // The overlay is empty (flushed): the upload's next row is
                // appended after the rows that are left.
                up.start = db
                    .conn
                    .query_row("SELECT coalesce(max(rowid), 0) + 1 FROM records", [], |r| {
                        r.get(0)
                    })
                    .map_err(db_err("removing records"))?;
                up.unindexed.clear();
            }
            Ok(removed)
        })
    }

    fn aliases_to(&self, person_id: &str) -> StoreResult<Vec<String>> {
        let db = lock(&self.conn);
        let mut stmt = db
            .conn
            .prepare_cached("SELECT old_id FROM aliases WHERE new_id = ?1 ORDER BY old_id")
            .map_err(db_err("preparing a query"))?;
        let rows = stmt
            .query_map([person_id], |r| r.get::<_, String>(0))
            .map_err(db_err("reading aliases"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db_err("reading aliases"))
    }

    fn remove_aliases(&self, old_ids: &[String]) -> StoreResult<()> {
        if old_ids.is_empty() {
            return Ok(());
        }
        self.record_write(|db| {
            let mut stmt = db
                .conn
                .prepare_cached("DELETE FROM aliases WHERE old_id = ?1")
                .map_err(db_err("preparing a write"))?;
            for old in old_ids {
                stmt.execute([old]).map_err(db_err("removing an alias"))?;
            }
            Ok(())
        })
    }

    fn alias(&self, person_id: &str) -> StoreResult<Option<String>> {
        let db = lock(&self.conn);
        db.conn
            .prepare_cached("SELECT new_id FROM aliases WHERE old_id = ?1")
            .map_err(db_err("preparing a query"))?
            .query_row([person_id], |r| r.get(0))
            .optional()
            .map_err(db_err("reading an alias"))
    }

    fn apply(&self, batch: &WriteBatch) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut db = lock(&self.conn);
        // Outside an upload, a batch is an upload of its own.
        if db.upload.is_none() {
            db.begin(true)?;
        }
        let Db {
            conn,
            bodies,
            upload,
            overlay_rows,
            ..
        } = &mut *db;
        let Some(up) = upload.as_mut() else {
            return Err(StoreError::Invalid(
                "no upload is open on this store".into(),
            ));
        };
        let written = if up.failed {
            Err(StoreError::Invalid(
                "a write of this upload already failed; end it and start again".into(),
            ))
        } else {
            write_batch(conn, bodies, up, batch, *overlay_rows)
        };
        // What the last read found absent is only good for the write that
        // follows it.
        up.unindexed.clear();
        if written.is_err() {
            up.failed = true;
        }
        if up.implicit {
            let ended = db.end(written.is_ok());
            written.and(ended)
        } else {
            written
        }
    }

    fn linkage(&self) -> Option<&dyn LinkageStore> {
        Some(self)
    }

    fn translations(&self) -> Option<&dyn agencylink_core::ports::TranslationStore> {
        Some(self)
    }

    fn begin_upload(&self) -> StoreResult<()> {
        lock(&self.conn).begin(false)
    }

    fn end_upload(&self, keep: bool) -> StoreResult<()> {
        lock(&self.conn).end(keep)
    }
}
