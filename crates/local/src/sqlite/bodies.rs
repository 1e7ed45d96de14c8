//! Record bodies in an append-only file beside the database
//! (`agencylink.db-bodies`), so an upload writes each ~1.1 KB body once.
//! In SQLite a body was written to the WAL and then again into the database
//! at the checkpoint, and that double write was most of an ingest's I/O.
//!
//! The database stays the one source of truth. A record's row holds its
//! body's offset, length and CRC-32, and the `meta` table holds the file's
//! committed length, written in the same transaction as the rows. An upload
//! appends past that length and syncs the file before it commits. A rolled
//! back or killed upload leaves bytes only past the committed length, and
//! they are cut off before the next upload appends. Committed bytes never
//! change, so a reader in another process can read every body its snapshot
//! points at, and a copy of the database taken before a copy of this file
//! is a consistent backup.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use agencylink_core::ports::{StoreError, StoreResult};

/// Bytes gathered before they are written: large sequential writes, and a
/// bounded buffer whatever the upload's size.
const BUFFER: usize = 1 << 20;

/// The body file, or a buffer for an in-memory database.
#[derive(Debug)]
enum Backing {
    /// The open file and its name. The handle can be swapped for the file
    /// now at that name by a reader (through `&self`): compaction replaces
    /// the file by a rename (see [`super::compact`]).
    File {
        file: RwLock<File>,
        path: PathBuf,
    },
    Memory(Vec<u8>),
}

/// The name a compaction writes the new body file under before renaming
/// it over the body file (see [`super::compact`]).
pub(super) fn compact_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".compact");
    PathBuf::from(p)
}

/// Whether two handles or names are the same file.
#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
}

/// Where a body is: what a record's row keeps instead of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BodyAt {
    pub(super) offset: u64,
    pub(super) len: u32,
    pub(super) crc: u32,
}

impl BodyAt {
    /// Whether `body` is the one stored here, as far as length and CRC
    /// tell; a caller that must be sure compares the bytes as well.
    pub(super) fn may_hold(&self, body: &[u8]) -> bool {
        usize::try_from(self.len).is_ok_and(|n| n == body.len()) && self.crc == crc(body)
    }
}

/// One connection's view of the body file: appends for its open upload,
/// reads for everything.
#[derive(Debug)]
pub(super) struct Bodies {
    backing: Backing,
    /// Bytes in the backing store: the committed ones, then the open
    /// upload's written so far.
    written: u64,
    /// The open upload's bytes not yet written.
    pending: Vec<u8>,
}

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

fn io_err(what: &str) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |e| StoreError::backend(format!("{what} (the record bodies file)"), e)
}

impl Bodies {
    /// Open (creating if needed) the body file at `path`, readable by its
    /// owner only: the bodies are pseudonymised records.
    pub(super) fn open(path: &Path) -> StoreResult<Self> {
        // A symlink planted at this name would have every body appended to
        // (and truncated in) whatever file it points at.
        let file = crate::fsafe::open_nofollow(path, true).map_err(io_err("opening"))?;
        Ok(Bodies {
            backing: Backing::File {
                file: RwLock::new(file),
                path: path.to_owned(),
            },
            written: 0,
            pending: Vec::new(),
        })
    }

    /// Bodies for an in-memory database.
    pub(super) fn in_memory() -> Self {
        Bodies {
            backing: Backing::Memory(Vec::new()),
            written: 0,
            pending: Vec::new(),
        }
    }

    /// Whether the file holds nothing, committed or not.
    pub(super) fn is_empty(&self) -> StoreResult<bool> {
        Ok(self.len()? == 0)
    }

    pub(super) fn len(&self) -> StoreResult<u64> {
        match &self.backing {
            Backing::File { file, .. } => Ok(read_lock(file)
                .metadata()
                .map_err(io_err("reading the size of"))?
                .len()),
            Backing::Memory(v) => Ok(v.len() as u64),
        }
    }

    /// The body file's name; `None` in memory.
    pub(super) fn path(&self) -> Option<&Path> {
        match &self.backing {
            Backing::File { path, .. } => Some(path),
            Backing::Memory(_) => None,
        }
    }

    /// Swap the handle for the file now at the body file's name when that
    /// is another file (a compaction renamed a new one over it). Returns
    /// whether it did. A writer calls this with the write lock held before
    /// it appends: appending to (or cutting back) the replaced file would
    /// lose the bodies.
    pub(super) fn refresh(&self) -> StoreResult<bool> {
        let Backing::File { file, path } = &self.backing else {
            return Ok(false);
        };
        let at_name = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            // Nothing at the name: keep what we have (reads say what is wrong).
            Err(_) => return Ok(false),
        };
        let ours = read_lock(file)
            .metadata()
            .map_err(io_err("reading the size of"))?;
        if same_file(&ours, &at_name) {
            return Ok(false);
        }
        let fresh = crate::fsafe::open_nofollow(path, false).map_err(io_err("reopening"))?;
        *file
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(true)
    }

    /// Replace the memory backing's bytes (compaction of an in-memory store).
    pub(super) fn replace_memory(&mut self, bytes: Vec<u8>) {
        if let Backing::Memory(v) = &mut self.backing {
            *v = bytes;
            self.written = v.len() as u64;
            self.pending.clear();
        }
    }

    /// Start appending after the `committed` bytes, cutting off whatever a
    /// rolled back or killed upload left past them. Call with the write
    /// lock held.
    pub(super) fn begin(&mut self, committed: u64) -> StoreResult<()> {
        let len = self.len()?;
        if len < committed {
            return Err(StoreError::Backend {
                message: format!(
                    "the record bodies file holds {len} bytes but the database has committed {committed}: \
                     it is not the file this database was written with (restored from another backup?)"
                ),
                source: None,
            });
        }
        if len > committed {
            self.truncate(committed)?;
        }
        self.written = committed;
        self.pending.clear();
        Ok(())
    }

    fn truncate(&mut self, to: u64) -> StoreResult<()> {
        match &mut self.backing {
            Backing::File { file, .. } => {
                read_lock(file).set_len(to).map_err(io_err("cutting back"))
            }
            Backing::Memory(v) => {
                v.truncate(usize::try_from(to).unwrap_or(usize::MAX));
                Ok(())
            }
        }
    }

    /// Append a body for the open upload.
    pub(super) fn append(&mut self, body: &[u8]) -> StoreResult<BodyAt> {
        let len = u32::try_from(body.len()).map_err(|_| {
            StoreError::Invalid(format!(
                "a record body of {} bytes is too large",
                body.len()
            ))
        })?;
        let at = BodyAt {
            offset: self.end(),
            len,
            crc: crc(body),
        };
        self.pending.extend_from_slice(body);
        if self.pending.len() >= BUFFER {
            self.write_pending()?;
        }
        Ok(at)
    }

    /// The length the file has once the open upload is published.
    pub(super) fn end(&self) -> u64 {
        self.written + self.pending.len() as u64
    }

    fn write_pending(&mut self) -> StoreResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        match &mut self.backing {
            Backing::File { file, .. } => write_at(&read_lock(file), &self.pending, self.written)
                .map_err(io_err("writing"))?,
            Backing::Memory(v) => {
                v.truncate(usize::try_from(self.written).unwrap_or(usize::MAX));
                v.extend_from_slice(&self.pending);
            }
        }
        self.written += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Write everything appended, and return another handle on the file
    /// to sync it with (`None` in memory), for a sync on another thread.
    pub(super) fn write_out(&mut self) -> StoreResult<Option<File>> {
        self.write_pending()?;
        match &self.backing {
            Backing::File { file, .. } => read_lock(file)
                .try_clone()
                .map(Some)
                .map_err(io_err("opening another handle on")),
            Backing::Memory(_) => Ok(None),
        }
    }

    /// Write and sync everything appended, before the rows that point at it
    /// are committed; the new committed length.
    pub(super) fn sync(&mut self, committed: u64) -> StoreResult<u64> {
        let appended = self.end() > committed;
        self.write_pending()?;
        if appended && let Backing::File { file, .. } = &self.backing {
            read_lock(file).sync_data().map_err(io_err("syncing"))?;
        }
        Ok(self.written)
    }

    /// Drop the open upload's bytes, back to `committed`. Call before the
    /// write lock is given up: another writer may append next.
    pub(super) fn discard(&mut self, committed: u64) -> StoreResult<()> {
        self.pending.clear();
        self.written = committed;
        self.truncate(committed)
    }

    /// The body at `at`, checked against its length and CRC.
    ///
    /// A reader whose snapshot is newer than its handle (a compaction
    /// committed new offsets after this handle was opened) finds the body
    /// in the file now at the name, or, in the moment between the
    /// compaction's commit and its rename, in the new file under its
    /// temporary name.
    pub(super) fn read(&self, at: BodyAt) -> Result<String, BodyReadError> {
        match self.read_here(at) {
            Err(BodyReadError) if self.path().is_some() => {}
            done => return done,
        }
        if self.refresh().unwrap_or(false)
            && let Ok(body) = self.read_here(at)
        {
            return Ok(body);
        }
        let Some(path) = self.path() else {
            return Err(BodyReadError);
        };
        let tmp = std::fs::OpenOptions::new()
            .read(true)
            .open(compact_path(path))
            .map_err(|_| BodyReadError)?;
        let mut buf = vec![0; usize::try_from(at.len).map_err(|_| BodyReadError)?];
        read_at(&tmp, &mut buf, at.offset).map_err(|_| BodyReadError)?;
        checked(buf, at)
    }

    fn read_here(&self, at: BodyAt) -> Result<String, BodyReadError> {
        let len = usize::try_from(at.len).map_err(|_| BodyReadError)?;
        let mut buf = vec![0; len];
        let range = |from: u64| -> Result<std::ops::Range<usize>, BodyReadError> {
            let from = usize::try_from(from).map_err(|_| BodyReadError)?;
            Ok(from..from.checked_add(len).ok_or(BodyReadError)?)
        };
        if at.offset >= self.written && at.offset < self.end() {
            // The open upload's, not written yet.
            let slice = self
                .pending
                .get(range(at.offset - self.written)?)
                .ok_or(BodyReadError)?;
            buf.copy_from_slice(slice);
        } else {
            match &self.backing {
                Backing::File { file, .. } => {
                    read_at(&read_lock(file), &mut buf, at.offset).map_err(|_| BodyReadError)?
                }
                Backing::Memory(v) => {
                    buf.copy_from_slice(v.get(range(at.offset)?).ok_or(BodyReadError)?);
                }
            }
        }
        checked(buf, at)
    }
}

/// `buf` as the body at `at`, if its CRC matches.
fn checked(buf: Vec<u8>, at: BodyAt) -> Result<String, BodyReadError> {
    if crc(&buf) != at.crc {
        return Err(BodyReadError);
    }
    String::from_utf8(buf).map_err(|_| BodyReadError)
}

/// The handle. Writes go through `&File` too (positioned writes), so only
/// [`Bodies::refresh`] takes the lock for writing, to swap it.
fn read_lock(f: &RwLock<File>) -> std::sync::RwLockReadGuard<'_, File> {
    f.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A body that is missing from the file or does not match its CRC.
#[derive(Debug)]
pub(super) struct BodyReadError;

#[cfg(unix)]
fn write_at(f: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, offset)
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, offset)
}

#[cfg(windows)]
fn write_at(f: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = f.seek_write(buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(windows)]
fn read_at(f: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = f.seek_read(buf, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Bodies;

    #[test]
    fn bodies_read_back_from_the_buffer_and_the_file_and_a_bad_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("agencylink-bodies-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("b");
        let mut b = Bodies::open(&path).expect("open");
        b.begin(0).expect("begin");
        let first = b.append(b"{\"a\":1}").expect("append");
        // Still in the buffer.
        assert_eq!(b.read(first).expect("read"), "{\"a\":1}");
        let big = vec![b'x'; super::BUFFER];
        let second = b.append(&big).expect("append");
        assert_eq!(b.read(second).expect("read").len(), big.len());
        let committed = b.sync(0).expect("sync");
        assert_eq!(committed, 7 + big.len() as u64);
        assert_eq!(b.read(first).expect("read from the file"), "{\"a\":1}");

        // An upload that is given up leaves nothing behind.
        b.begin(committed).expect("begin");
        b.append(b"{}").expect("append");
        b.sync(committed).expect("written out");
        b.discard(committed).expect("discard");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), committed);

        // A killed writer's tail is cut off by the next upload.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"garbage"))
            .expect("tail");
        b.begin(committed).expect("begin");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), committed);

        // Damage is caught by the CRC; a file shorter than the database
        // says is refused rather than appended to.
        let mut bad = first;
        bad.crc ^= 1;
        assert!(b.read(bad).is_err());
        let mut past = first;
        past.offset = committed + 10;
        assert!(b.read(past).is_err());
        assert!(b.begin(committed + 1).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn in_memory_bodies_behave_the_same() {
        let mut b = Bodies::in_memory();
        b.begin(0).expect("begin");
        let at = b.append(b"{}").expect("append");
        let committed = b.sync(0).expect("sync");
        assert_eq!(b.read(at).expect("read"), "{}");
        b.begin(committed).expect("begin");
        let lost = b.append(b"[1]").expect("append");
        b.discard(committed).expect("discard");
        assert!(b.read(lost).is_err());
        assert_eq!(b.read(at).expect("read"), "{}");
    }
}
