//! Files created safely under a directory that only its owner can reach:
//! the data directory's permission check, temporary files that another
//! local user cannot predict, redirect through a symlink or read, and the
//! sweep that removes what a killed process left behind.
//!
//! The threat is a second local account (or a careless umask): it must not
//! read pseudonymised data, and it must not plant a symlink where this
//! program is about to write, so that another file is overwritten or
//! receives the data. Refusing a directory that others can write closes the
//! planting; `O_NOFOLLOW` and `O_EXCL` close what was planted before.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The prefix of every temporary file this program creates; listings skip
/// such names and [`sweep`] removes the ones no live process holds.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Why a directory is not safe to write into.
#[derive(Debug, thiserror::Error)]
pub enum UnsafeDir {
    /// Another account owns it, so it can replace anything inside.
    #[error(
        "{path} is owned by another user (uid {owner}): refusing to keep data there; use a directory you own"
    )]
    OtherOwner { path: String, owner: u32 },
    /// Group or others may create files in it, so they can plant symlinks.
    #[error(
        "{path} can be written by other users (mode {mode:o}): refusing to keep data there; run `chmod 700 {path}` or choose another directory"
    )]
    WritableByOthers { path: String, mode: u32 },
    /// Not a directory at all.
    #[error("{path} is not a directory")]
    NotADirectory { path: String },
    /// The file system said no.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: io::Error,
    },
}

fn io_at<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> UnsafeDir + 'a {
    move |source| UnsafeDir::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// `open(2)` flags: never follow a symlink at the last component, and no
/// descriptor leaks into a child process.
pub(crate) const NOFOLLOW: i32 =
    (rustix::fs::OFlags::NOFOLLOW.bits() | rustix::fs::OFlags::CLOEXEC.bits()) as i32;

/// Check that `path` is a directory this user owns and nobody else can
/// write to. A directory set up by someone else is not ours to judge, so
/// this never changes permissions.
pub fn check_output_dir(path: &Path) -> Result<(), UnsafeDir> {
    let meta = fs::metadata(path).map_err(io_at("reading", path))?;
    check_meta(path, &meta)
}

fn check_meta(path: &Path, meta: &fs::Metadata) -> Result<(), UnsafeDir> {
    let shown = || path.display().to_string();
    if !meta.is_dir() {
        return Err(UnsafeDir::NotADirectory { path: shown() });
    }
    if meta.uid() != effective_uid() {
        return Err(UnsafeDir::OtherOwner {
            path: shown(),
            owner: meta.uid(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(UnsafeDir::WritableByOthers {
            path: shown(),
            mode,
        });
    }
    Ok(())
}

/// Make `path` the private data directory: created `0700` when missing;
/// refused when another user owns it or can write to it; and when others
/// can read it, or anything inside it (a store made by an older version,
/// or under a loose umask), tightened to owner-only. Returns what it
/// tightened, for a warning.
pub fn prepare_private_dir(path: &Path) -> Result<Vec<String>, UnsafeDir> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_at("creating", path))?;
    let meta = fs::metadata(path).map_err(io_at("reading", path))?;
    check_meta(path, &meta)?;
    let mut notes = Vec::new();
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .map_err(io_at("tightening", path))?;
        notes.push(format!(
            "{} was readable by other users (mode {:o}): now 0700",
            path.display(),
            meta.mode() & 0o777
        ));
    }
    let mut loose = 0usize;
    tighten_inside(path, &mut loose).map_err(io_at("tightening files in", path))?;
    if loose > 0 {
        notes.push(format!(
            "{loose} files or folders in {} were readable by other users: now private to you",
            path.display()
        ));
    }
    Ok(notes)
}

/// Owner-only permissions on everything under `dir`, symlinks not followed.
fn tighten_inside(dir: &Path, loose: &mut usize) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        if ft.is_symlink() {
            continue;
        }
        let path = entry.path();
        let meta = entry.metadata()?;
        // Only what this user owns is ours to change (a root-run command
        // over a user's store must not take it from the user).
        if meta.uid() == effective_uid() && meta.mode() & 0o077 != 0 {
            let mode = if ft.is_dir() { 0o700 } else { 0o600 };
            fs::set_permissions(
                &path,
                fs::Permissions::from_mode(meta.mode() & 0o700 | mode),
            )?;
            *loose += 1;
        }
        if ft.is_dir() {
            tighten_inside(&path, loose)?;
        }
    }
    Ok(())
}

/// Open an existing file for reading and writing (created `0600` when
/// `create`), refusing a symlink at `path`.
pub fn open_nofollow(path: &Path, create: bool) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .custom_flags(NOFOLLOW);
    opts.open(path).map_err(|e| {
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            io::Error::other(format!(
                "{} is a symbolic link: refusing to follow it",
                path.display()
            ))
        } else {
            e
        }
    })
}

/// A file in `dir` with no name at all (`O_TMPFILE`), `0600`: nothing can
/// open it, and the kernel frees it when the process ends however it ends,
/// SIGKILL and running out of memory included. For a copy of a raw
/// extract, which must not outlive the ingest. Where the file system cannot
/// do that, a private file that is unlinked as soon as it is created.
pub fn anonymous_file_in(dir: &Path) -> io::Result<File> {
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::TMPFILE.bits() as i32 | NOFOLLOW)
        .open(dir);
    match opened {
        Ok(f) => Ok(f),
        Err(e)
            if [
                rustix::io::Errno::OPNOTSUPP,
                rustix::io::Errno::ISDIR,
                rustix::io::Errno::INVAL,
            ]
            .iter()
            .any(|n| e.raw_os_error() == Some(n.raw_os_error())) =>
        {
            let temp = TempFile::create_in(dir, "anonymous")?;
            let file = temp.handle()?;
            drop(temp);
            Ok(file)
        }
        Err(e) => Err(e),
    }
}

/// Paths of the temporary files live in this process, so a signal handler
/// can remove them before the process exits.
static LIVE: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn live(f: impl FnOnce(&mut HashSet<PathBuf>)) {
    let mut guard = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(HashSet::new));
}

/// Remove every temporary file this process still has; for a handler of
/// SIGINT or SIGTERM just before it exits. Returns how many it removed.
pub fn remove_live_temp_files() -> usize {
    let mut removed = 0;
    live(|set| {
        for p in set.drain() {
            if fs::remove_file(&p).is_ok() {
                removed += 1;
            }
        }
    });
    removed
}

/// A temporary file with an unpredictable name, created only if nothing
/// (file or symlink) is at that name, `0600`, and locked for as long as it
/// is open so that [`sweep`] can tell it from one a killed process left.
/// Removed when dropped unless [`persist`](Self::persist)ed.
#[derive(Debug)]
pub struct TempFile {
    file: File,
    path: PathBuf,
    done: bool,
}

impl TempFile {
    /// A new temporary file in `dir`; `hint` (sanitised) ends its name so a
    /// person can tell what it was for.
    pub fn create_in(dir: &Path, hint: &str) -> io::Result<TempFile> {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random)
            .map_err(|e| io::Error::other(format!("OS randomness: {e}")))?;
        let hint: String = hint
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .take(48)
            .collect();
        let name = format!(
            "{TEMP_PREFIX}{}-{hint}",
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(NOFOLLOW)
            .open(&path)?;
        // Registered before anything can fail, so no exit path forgets it.
        live(|set| {
            set.insert(path.clone());
        });
        let temp = TempFile {
            file,
            path,
            done: false,
        };
        temp.file.try_lock().map_err(|e| match e {
            fs::TryLockError::Error(e) => e,
            fs::TryLockError::WouldBlock => io::Error::other("a new temporary file is locked"),
        })?;
        Ok(temp)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A second handle on the same open file (sharing the lock), to write
    /// through.
    pub fn handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Sync it and put it at `target`: replacing what is there, or (with
    /// `overwrite` false) failing with `AlreadyExists` if anything is.
    /// Returns its size.
    pub fn persist(mut self, target: &Path, overwrite: bool) -> io::Result<u64> {
        self.file.sync_all()?;
        let size = self.file.metadata()?.len();
        if overwrite {
            // rename replaces a symlink at the target; it never writes
            // through one.
            fs::rename(&self.path, target)?;
        } else {
            // hard_link fails if the target exists: create-only without a race.
            fs::hard_link(&self.path, target)?;
            let _ = fs::remove_file(&self.path);
        }
        self.done = true;
        live(|set| {
            set.remove(&self.path);
        });
        Ok(size)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
            live(|set| {
                set.remove(&self.path);
            });
        }
    }
}

/// What [`sweep`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Temporary files no live process held.
    pub temporary: usize,
    /// Raw extracts under `landing/` (left by a killed ingest of an older
    /// version, which kept a named copy there).
    pub landing: usize,
}

/// Remove what a killed process left under the data directory: temporary
/// files that no live process holds (their lock is free) and any raw copy
/// under `landing/`, which the embedded store no longer writes. Symlinks
/// are removed, never followed.
pub fn sweep(data_dir: &Path) -> io::Result<Swept> {
    let mut swept = Swept::default();
    sweep_dir(data_dir, false, &mut swept)?;
    let landing = data_dir.join("landing");
    if fs::symlink_metadata(&landing).is_ok_and(|m| m.is_dir()) {
        sweep_dir(&landing, true, &mut swept)?;
        remove_empty_dirs(&landing);
    }
    Ok(swept)
}

fn sweep_dir(dir: &Path, landing: bool, swept: &mut Swept) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let ft = entry.file_type()?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if ft.is_dir() {
            // landing/ is swept whole on its own pass.
            if landing || dir.join("landing") != path {
                sweep_dir(&path, landing, swept)?;
            }
            continue;
        }
        let stale_temp = name.starts_with(TEMP_PREFIX)
            || (name.starts_with(".export-") && name.ends_with(".partial"));
        if landing {
            if fs::remove_file(&path).is_ok() {
                if stale_temp {
                    swept.temporary += 1;
                } else {
                    swept.landing += 1;
                }
            }
        } else if stale_temp && (ft.is_symlink() || !held(&path)) && fs::remove_file(&path).is_ok()
        {
            swept.temporary += 1;
        }
    }
    Ok(())
}

/// Whether a live process holds the temporary file's lock.
fn held(path: &Path) -> bool {
    let Ok(f) = OpenOptions::new()
        .read(true)
        .custom_flags(NOFOLLOW | rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
    else {
        // Gone already, or not ours to open: leave it.
        return true;
    };
    matches!(f.try_lock(), Err(fs::TryLockError::WouldBlock))
}

fn remove_empty_dirs(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&entry.path());
                let _ = fs::remove_dir(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("agencylink-fsafe-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        dir
    }

    #[test]
    fn a_temp_file_is_private_unpredictable_and_gone_when_dropped() {
        let dir = scratch("temp");
        let a = TempFile::create_in(&dir, "curated.ndjson").unwrap();
        let b = TempFile::create_in(&dir, "curated.ndjson").unwrap();
        assert_ne!(a.path(), b.path());
        assert!(
            a.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(TEMP_PREFIX)
        );
        assert_eq!(fs::metadata(a.path()).unwrap().mode() & 0o777, 0o600);
        let p = a.path().to_owned();
        drop(a);
        assert!(!p.exists());
        let target = dir.join("out");
        b.persist(&target, false).unwrap();
        assert!(target.is_file());
        let c = TempFile::create_in(&dir, "x").unwrap();
        let err = c.persist(&target, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_sweep_removes_only_what_no_live_process_holds() {
        let dir = scratch("sweep");
        let live = TempFile::create_in(&dir, "live").unwrap();
        let dead = dir.join(format!("{TEMP_PREFIX}1234-dead"));
        fs::write(&dead, b"left by a killed process").unwrap();
        fs::create_dir_all(dir.join("landing/a/b")).unwrap();
        fs::write(dir.join("landing/a/b/0123456789.csv"), b"raw").unwrap();
        fs::write(dir.join("kept"), b"a real file").unwrap();
        let swept = sweep(&dir).unwrap();
        assert_eq!(
            swept,
            Swept {
                temporary: 1,
                landing: 1
            }
        );
        assert!(live.path().exists(), "a live temporary file is kept");
        assert!(!dead.exists());
        assert!(dir.join("kept").exists());
        assert!(!dir.join("landing/a").exists());
        drop(live);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_others_can_write_is_refused_and_one_they_can_read_is_tightened() {
        let dir = scratch("perm");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            prepare_private_dir(&dir),
            Err(UnsafeDir::WritableByOthers { .. })
        ));
        assert!(check_output_dir(&dir).is_err());
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.join("f"), b"x").unwrap();
        fs::set_permissions(dir.join("f"), fs::Permissions::from_mode(0o644)).unwrap();
        let notes = prepare_private_dir(&dir).unwrap();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(dir.join("f")).unwrap().mode() & 0o777, 0o600);
        assert!(prepare_private_dir(&dir).unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_anonymous_file_has_no_name() {
        use std::io::{Read, Seek, Write};
        let dir = scratch("anon");
        let mut f = anonymous_file_in(&dir).unwrap();
        f.write_all(b"raw extract").unwrap();
        f.rewind().unwrap();
        let mut back = String::new();
        f.read_to_string(&mut back).unwrap();
        assert_eq!(back, "raw extract");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            0,
            "nothing named in the directory"
        );
        drop(f);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlink_is_not_opened() {
        let dir = scratch("link");
        let victim = dir.join("victim");
        fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("db")).unwrap();
        assert!(open_nofollow(&dir.join("db"), true).is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        fs::remove_dir_all(&dir).unwrap();
    }
}
