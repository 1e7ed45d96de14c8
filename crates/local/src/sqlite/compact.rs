//! Compaction: rewrite the body file with the live records' bodies only,
//! then VACUUM the database and truncate its WAL, so that what a corrected
//! re-upload superseded or a withdrawal removed leaves no byte on disk.
//!
//! The body file keeps its scheme: each row holds its body's offset,
//! length and CRC-32, `meta.bodies_end` holds the committed length. The
//! new file is written beside the old one under a fixed temporary name
//! (`agencylink.db-bodies.compact`), synced, and renamed over the old one;
//! the rows' new offsets and the new `bodies_end` are committed in one
//! SQLite transaction together with a mark, `meta.bodies_pending`, that
//! says "the new file is under the temporary name until renamed".
//!
//! Crash windows (a compaction killed at any point):
//!
//! 1. Before the commit: the database still points into the old file,
//!    which is untouched. The temporary file is a leftover; the next
//!    writer (or compaction), holding the write lock and seeing no mark,
//!    removes it. (Only under the write lock: a compaction in progress
//!    holds it from before it creates the file until it commits.)
//! 2. After the commit, before the rename: the database points into the
//!    new file, still under its temporary name. The next writer, under the
//!    write lock and before it touches the body file, sees the mark and
//!    finishes the rename ([`recover`]); a reader meanwhile finds a body
//!    its offsets do not match in the old file in the new one under the
//!    temporary name (see `Bodies::read`).
//! 3. After the rename, before the mark is cleared: the next writer sees
//!    the mark, no temporary file, and clears the mark.
//! 4. During the VACUUM or the WAL checkpoint: SQLite's own journal makes
//!    both atomic; run `compact` again to finish the job.
//!
//! A concurrent reader in another process keeps its snapshot: until it
//! ends its read transaction its offsets are the old ones, and its open
//! handle still reaches the old file, which the rename unlinks but does
//! not free while it is open. A reader whose snapshot is newer than its
//! handle swaps the handle for the file now at the name. A writer in
//! another process, which may have opened the body file before the rename,
//! swaps its handle under the write lock before it appends (appending to
//! or cutting back the replaced file would lose bodies).
//!
//! The checkpoint cannot copy pages a reader's snapshot still needs: the
//! result says whether the WAL was truncated (run `compact` again when no
//! command is reading).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use agencylink_core::ports::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension};

use super::bodies::{Bodies, compact_path};
use super::{Db, SqliteStore, bodies_end, body_at, db_err, lock, set_bodies_end};

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// Live records, whose bodies were kept.
    pub records: u64,
    /// Bytes in the body file before and after.
    pub bodies_before: u64,
    /// See `bodies_before`.
    pub bodies_after: u64,
    /// Bytes in the database file and its WAL before and after.
    pub database_before: u64,
    /// See `database_before`.
    pub database_after: u64,
    /// Whether the WAL was checkpointed whole and truncated to nothing;
    /// `false` when a reader's snapshot held pages back.
    pub wal_truncated: bool,
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> StoreError {
    move |e| StoreError::backend(format!("{what} (compacting the record bodies file)"), e)
}

fn pending(conn: &Connection) -> StoreResult<bool> {
    conn.prepare_cached("SELECT value FROM meta WHERE name = 'bodies_pending'")
        .map_err(db_err("preparing a query"))?
        .query_row([], |r| r.get::<_, i64>(0))
        .optional()
        .map(|v| v.is_some())
        .map_err(db_err("reading the compaction mark"))
}

/// Sync the directory holding `path`, so a rename in it is durable.
fn sync_dir(path: &Path) -> StoreResult<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing the data directory"))
}

/// Rename the new body file over the old one, unless someone finished
/// the compaction already.
fn rename_into_place(tmp: &Path, path: &Path) -> StoreResult<()> {
    match fs::symlink_metadata(tmp) {
        Ok(m) if !m.is_file() => Err(StoreError::Backend {
            message: format!(
                "{} is not a regular file (a symbolic link?): refusing to rename it over the record bodies file",
                tmp.display()
            ),
            source: None,
        }),
        Ok(_) => {
            fs::rename(tmp, path).map_err(io_err("renaming the new file into place"))?;
            sync_dir(path)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("looking for the new file")(e)),
    }
}

/// With the write lock held, in a write transaction: finish a compaction
/// that committed but was not renamed (crash windows 2 and 3), or remove a
/// killed compaction's temporary file (window 1); then make sure `bodies`
/// holds the file now at the body file's name.
pub(super) fn recover(conn: &Connection, bodies: &mut Bodies) -> StoreResult<()> {
    let Some(path) = bodies.path().map(Path::to_owned) else {
        return Ok(());
    };
    let tmp = compact_path(&path);
    if pending(conn)? {
        rename_into_place(&tmp, &path)?;
        conn.prepare_cached("DELETE FROM meta WHERE name = 'bodies_pending'")
            .map_err(db_err("preparing a write"))?
            .execute([])
            .map_err(db_err("clearing the compaction mark"))?;
    } else if fs::symlink_metadata(&tmp).is_ok() {
        fs::remove_file(&tmp).map_err(io_err("removing a killed compaction's file"))?;
    }
    bodies.refresh()?;
    Ok(())
}

/// Bytes in the database file and its WAL.
fn database_bytes(conn: &Connection) -> u64 {
    let Some(db) = conn.path().filter(|p| !p.is_empty()) else {
        return 0;
    };
    let size = |p: String| fs::metadata(p).map_or(0, |m| m.len());
    size(db.to_owned()) + size(format!("{db}-wal"))
}

/// Run `f` in an IMMEDIATE transaction: committed when it succeeds.
fn immediate<T>(conn: &Connection, f: impl FnOnce() -> StoreResult<T>) -> StoreResult<T> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(db_err("taking the write lock"))?;
    let out = f();
    let end = conn.execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
    let out = out?;
    end.map_err(db_err("committing the compaction"))?;
    Ok(out)
}

impl SqliteStore {
    /// Rewrite the body file with the live bodies only, VACUUM the
    /// database and truncate its WAL (see the module doc for the crash
    /// windows). Takes the write lock as an ingest does; refused while
    /// this handle has an upload open.
    pub fn compact(&self) -> StoreResult<Compacted> {
        let mut db = lock(&self.conn);
        if db.upload.is_some() {
            return Err(StoreError::Invalid(
                "an upload is open on this store: compact after it ends".into(),
            ));
        }
        let Db { conn, bodies, .. } = &mut *db;
        let database_before = database_bytes(conn);
        let (records, bodies_before, bodies_after) =
            immediate(conn, || rewrite_bodies(conn, bodies))?;

        // The commit made the new offsets and the mark durable (window 2
        // from here): rename, then clear the mark (window 3), under the
        // write lock again, as any writer would: one that got the lock
        // first has done both, and may since have begun a compaction of
        // its own, whose file must not be renamed unfinished.
        immediate(conn, || recover(conn, bodies))?;

        // The freed pages and the WAL's old page images: VACUUM rebuilds
        // the database (its temporary copy in memory, not in a system
        // directory where the records' bytes would outlive it), and a
        // TRUNCATE checkpoint copies the WAL back and cuts it to nothing.
        // Before and after: the VACUUM's own frames must not stay in the WAL.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(db_err("keeping VACUUM's copy in memory"))?;
        checkpoint(conn)?;
        conn.execute_batch("VACUUM")
            .map_err(db_err("vacuuming the database"))?;
        let wal_truncated = checkpoint(conn)?;
        Ok(Compacted {
            records,
            bodies_before,
            bodies_after,
            database_before,
            database_after: database_bytes(conn),
            wal_truncated,
        })
    }
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`: whether every frame was copied back
/// and the WAL truncated.
fn checkpoint(conn: &Connection) -> StoreResult<bool> {
    let (busy, log, done): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(db_err("checkpointing the WAL"))?;
    // An in-memory database has no WAL: -1, -1.
    Ok(busy == 0 && (log == done))
}

/// Inside the write transaction: write the live bodies to the temporary
/// file, sync it, and point the rows at it, with the mark. Returns the
/// records kept and the file's length before and after.
fn rewrite_bodies(conn: &Connection, bodies: &mut Bodies) -> StoreResult<(u64, u64, u64)> {
    recover(conn, bodies)?;
    let before = bodies.len()?;
    let committed = bodies_end(conn)?;
    // A killed upload's tail past the committed length goes too.
    bodies.begin(committed)?;
    let mut moved: Vec<(i64, u64)> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    let tmp = bodies.path().map(compact_path);
    let mut file = match &tmp {
        Some(tmp) => Some(BufWriter::with_capacity(
            1 << 20,
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode_private()
                .open(tmp)
                .map_err(io_err("creating the new file"))?,
        )),
        None => None,
    };
    let written = (|| -> StoreResult<u64> {
        // In file order, so the old file is read front to back.
        let mut stmt = conn
            .prepare("SELECT rowid, record_id, body_at, body_len, body_crc FROM records ORDER BY body_at")
            .map_err(db_err("preparing a scan"))?;
        let mut rows = stmt.query([]).map_err(db_err("scanning records"))?;
        let mut offset: u64 = 0;
        while let Some(row) = rows.next().map_err(db_err("scanning records"))? {
            let rid: i64 = row.get(0).map_err(db_err("scanning records"))?;
            let at = body_at(row, 2).map_err(db_err("scanning records"))?;
            let body = bodies.read(at).map_err(|_| StoreError::Backend {
                message: format!(
                    "record {}'s body is missing from the record bodies file or damaged: nothing was compacted",
                    row.get::<_, String>(1).unwrap_or_default()
                ),
                source: None,
            })?;
            match &mut file {
                Some(f) => f
                    .write_all(body.as_bytes())
                    .map_err(io_err("writing the new file"))?,
                None => out.extend_from_slice(body.as_bytes()),
            }
            moved.push((rid, offset));
            offset += body.len() as u64;
        }
        if let Some(f) = file.take() {
            let f = f
                .into_inner()
                .map_err(|e| io_err("writing the new file")(e.into_error()))?;
            // On disk before any row points into it.
            f.sync_all().map_err(io_err("syncing the new file"))?;
        }
        let mut update = conn
            .prepare("UPDATE records SET body_at = ?1 WHERE rowid = ?2")
            .map_err(db_err("preparing a write"))?;
        for (rid, at) in &moved {
            update
                .execute([i64::try_from(*at).unwrap_or(i64::MAX), *rid])
                .map_err(db_err("moving a body"))?;
        }
        set_bodies_end(conn, offset)?;
        if tmp.is_some() {
            conn.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES ('bodies_pending', 1)",
                [],
            )
            .map_err(db_err("marking the compaction"))?;
        }
        Ok(offset)
    })();
    match written {
        Ok(after) => {
            if tmp.is_none() {
                bodies.replace_memory(out);
            }
            Ok((moved.len() as u64, before, after))
        }
        Err(e) => {
            // The transaction rolls back: the old file and offsets stand.
            if let Some(tmp) = &tmp {
                let _ = fs::remove_file(tmp);
            }
            Err(e)
        }
    }
}

/// `0600` on Unix: the new file holds the same pseudonymised records.
trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for OpenOptions {
    #[cfg(unix)]
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        // Not through a symlink planted at the temporary name.
        self.mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
    }

    #[cfg(not(unix))]
    fn mode_private(&mut self) -> &mut Self {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::{immediate, rewrite_bodies};
    use crate::sqlite::{SqliteStore, lock};
    use agencylink_core::memory::MemoryObjectStore;
    use agencylink_core::ports::{
        RecordBody, RecordStore, RecordStoreExt, StoredRecord, WriteBatch,
    };

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("agencylink-compact-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    /// A record whose body carries `marker`, so its bytes can be looked for.
    fn rec(id: &str, marker: &str) -> StoredRecord {
        let mut r = agencylink_core::conformance::sample_record(
            id,
            &format!("p-{id}"),
            "ds",
            "2025-01-01",
            &[],
            &[],
        );
        r.body = RecordBody::from_value(&serde_json::json!({"fields": {"note": marker}}))
            .expect("an object");
        r
    }

    fn put(store: &SqliteStore, records: Vec<StoredRecord>) {
        store
            .apply(&WriteBatch {
                records,
                ..WriteBatch::default()
            })
            .expect("apply");
    }

    fn holds(path: &std::path::Path, needle: &str) -> bool {
        let bytes = std::fs::read(path).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    fn body(store: &SqliteStore, id: &str) -> String {
        store
            .get_record(id)
            .expect("read")
            .expect(id)
            .body
            .as_str()
            .to_owned()
    }

    #[test]
    fn sqlite_withdrawal_conforms_in_memory_and_on_disk() {
        let store = SqliteStore::open_in_memory().expect("open");
        agencylink_core::conformance::withdrawal(
            &store,
            &store.lineage(),
            &MemoryObjectStore::default(),
        );
        let dir = scratch("conform");
        let store = SqliteStore::open(&dir.join("store.db")).expect("open");
        agencylink_core::conformance::withdrawal(
            &store,
            &store.lineage(),
            &MemoryObjectStore::default(),
        );
        // After the withdrawal and a compaction, what is left still reads.
        let done = store.compact().expect("compact");
        assert_eq!(done.records, 2);
        assert!(done.bodies_after < done.bodies_before, "{done:?}");
        assert!(store.get_record("a").expect("a").is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn compaction_keeps_live_bodies_only_and_the_store_goes_on() {
        let dir = scratch("live");
        let path = dir.join("store.db");
        let bodies = dir.join("store.db-bodies");
        let store = SqliteStore::open(&path).expect("open");
        put(
            &store,
            vec![rec("r-1", "first-version"), rec("r-2", "kept-body")],
        );
        // A corrected version leaves the first as dead bytes.
        put(&store, vec![rec("r-1", "second-version")]);
        put(&store, vec![rec("r-3", "withdrawn-body")]);
        assert_eq!(
            store.remove_records(&["r-3".to_owned()]).expect("remove"),
            1
        );
        assert!(holds(&bodies, "first-version") && holds(&bodies, "withdrawn-body"));

        let done = store.compact().expect("compact");
        assert_eq!(done.records, 2);
        assert!(done.wal_truncated, "{done:?}");
        for gone in ["first-version", "withdrawn-body"] {
            assert!(!holds(&bodies, gone), "{gone} left in the body file");
            assert!(!holds(&path, gone), "{gone} left in the database");
            assert!(
                !holds(&dir.join("store.db-wal"), gone),
                "{gone} left in the WAL"
            );
        }
        assert_eq!(
            std::fs::metadata(dir.join("store.db-wal")).map_or(0, |m| m.len()),
            0,
            "the WAL is truncated"
        );
        assert!(!dir.join("store.db-bodies.compact").exists());
        assert!(body(&store, "r-1").contains("second-version"));
        assert!(body(&store, "r-2").contains("kept-body"));
        // Appends go on after the compacted bytes.
        put(&store, vec![rec("r-4", "after")]);
        assert!(body(&store, "r-4").contains("after"));
        assert!(body(&store, "r-2").contains("kept-body"));
        // A second compaction has nothing to drop.
        let again = store.compact().expect("again");
        assert_eq!(again.bodies_before, again.bodies_after);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_reader_opened_before_a_compaction_reads_after_it() {
        let dir = scratch("reader");
        let path = dir.join("store.db");
        let writer = SqliteStore::open(&path).expect("open");
        put(&writer, vec![rec("r-1", "one"), rec("r-2", "two")]);
        put(&writer, vec![rec("r-1", "one-corrected")]);
        // Another process's handle: its body file handle is the old file.
        let reader = SqliteStore::open(&path).expect("open a reader");
        assert!(body(&reader, "r-2").contains("two"));
        let late_writer = SqliteStore::open(&path).expect("open a writer");
        writer.compact().expect("compact");
        // Its next snapshot has the new offsets: it follows the rename.
        assert!(body(&reader, "r-2").contains("two"));
        assert!(body(&reader, "r-1").contains("one-corrected"));
        // And a writer that opened before the compaction (and has read
        // nothing since) appends to the new file, not the replaced one.
        put(&late_writer, vec![rec("r-3", "three")]);
        assert!(body(&writer, "r-3").contains("three"));
        assert!(body(&writer, "r-2").contains("two"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_compaction_killed_before_its_commit_changes_nothing() {
        let dir = scratch("killed-early");
        let path = dir.join("store.db");
        let store = SqliteStore::open(&path).expect("open");
        put(&store, vec![rec("r-1", "one"), rec("r-2", "two")]);
        put(&store, vec![rec("r-1", "one-corrected")]);
        let before = std::fs::read(dir.join("store.db-bodies")).expect("bodies");
        // Window 1: the new file half-written, nothing committed.
        std::fs::write(dir.join("store.db-bodies.compact"), b"{\"half").expect("leftover");
        let other = SqliteStore::open(&path).expect("open");
        assert!(body(&other, "r-1").contains("one-corrected"));
        assert_eq!(
            std::fs::read(dir.join("store.db-bodies")).expect("bodies"),
            before
        );
        // The next writer removes the leftover under the write lock.
        put(&other, vec![rec("r-3", "three")]);
        assert!(!dir.join("store.db-bodies.compact").exists());
        assert!(body(&store, "r-2").contains("two"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_compaction_killed_between_its_commit_and_its_rename_is_finished_by_the_next_writer() {
        let dir = scratch("killed-late");
        let path = dir.join("store.db");
        let bodies = dir.join("store.db-bodies");
        let store = SqliteStore::open(&path).expect("open");
        put(&store, vec![rec("r-1", "old-version"), rec("r-2", "two")]);
        put(&store, vec![rec("r-1", "new-version")]);
        // Window 2: new offsets and the mark committed, no rename yet.
        {
            let mut db = lock(&store.conn);
            let crate::sqlite::Db { conn, bodies, .. } = &mut *db;
            immediate(conn, || rewrite_bodies(conn, bodies)).expect("rewrite");
        }
        drop(store);
        assert!(
            holds(&bodies, "old-version"),
            "the old file is still in place"
        );
        // A reader finds the bodies in the new file under its temporary name.
        let reader = SqliteStore::open(&path).expect("open");
        assert!(body(&reader, "r-1").contains("new-version"));
        assert!(body(&reader, "r-2").contains("two"));
        // The next writer renames it into place before it appends (and
        // does not cut the old, longer file back to the new length).
        put(&reader, vec![rec("r-3", "three")]);
        assert!(!dir.join("store.db-bodies.compact").exists());
        assert!(!holds(&bodies, "old-version"));
        for (id, text) in [("r-1", "new-version"), ("r-2", "two"), ("r-3", "three")] {
            assert!(body(&reader, id).contains(text), "{id}");
        }
        let mark: Option<i64> = {
            let db = lock(&reader.conn);
            rusqlite::OptionalExtension::optional(db.conn.query_row(
                "SELECT value FROM meta WHERE name = 'bodies_pending'",
                [],
                |r| r.get(0),
            ))
            .expect("meta")
        };
        assert_eq!(mark, None, "the mark is cleared");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_in_memory_store_compacts_too() {
        let store = SqliteStore::open_in_memory().expect("open");
        put(&store, vec![rec("r-1", "a"), rec("r-2", "b")]);
        put(&store, vec![rec("r-1", "a-corrected")]);
        let done = store.compact().expect("compact");
        assert!(done.bodies_after < done.bodies_before);
        assert!(body(&store, "r-1").contains("a-corrected"));
        put(&store, vec![rec("r-3", "c")]);
        assert!(body(&store, "r-3").contains("\"c\""));
        assert!(body(&store, "r-2").contains("\"b\""));
    }
}
