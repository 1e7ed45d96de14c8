//! The directory object store: `landing/`, `curated/`, `reports/` … under
//! the data directory. Writes go to a temporary file in the same directory
//! (see [`crate::fsafe`]) and are renamed into place, so a reader never sees
//! half an object.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use agencylink_core::memory::check_object_key;

use crate::fsafe::{TEMP_PREFIX, TempFile};
use agencylink_core::ports::{ObjectMeta, ObjectStore, PutMode, StoreError, StoreResult};

/// Objects as files under a root directory.
#[derive(Debug, Clone)]
pub struct DirObjectStore {
    root: PathBuf,
}

fn io_err(what: &str, e: io::Error) -> StoreError {
    StoreError::backend(what.to_owned(), e)
}

impl DirObjectStore {
    /// A store rooted at `root` (created when first written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirObjectStore { root: root.into() }
    }

    /// The directory it is rooted at.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> StoreResult<PathBuf> {
        check_object_key(key)?;
        Ok(self.root.join(key))
    }

    /// A scratch file for writing object `key`: in the object's own
    /// directory (so [`put_file`](Self::put_file) can rename it into place
    /// without a copy), with an unpredictable name that listings skip.
    pub fn scratch(&self, key: &str) -> StoreResult<TempFile> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(|e| io_err("creating the object directory", e))?;
        let hint = path
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        TempFile::create_in(dir, &hint).map_err(|e| io_err("creating a scratch file", e))
    }

    /// Publish a finished scratch file from [`scratch`](Self::scratch) as
    /// `key`: synced to disk, then renamed into place, so a reader never
    /// sees half an object. The scratch file is gone afterwards either way.
    pub fn put_file(&self, key: &str, scratch: TempFile, mode: PutMode) -> StoreResult<ObjectMeta> {
        let path = self.path(key)?;
        match scratch.persist(&path, mode == PutMode::Overwrite) {
            Ok(size) => Ok(ObjectMeta {
                key: key.to_owned(),
                size,
            }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(StoreError::AlreadyExists(key.to_owned()))
            }
            Err(e) => Err(io_err("placing the object", e)),
        }
    }

    fn walk(&self, dir: &Path, out: &mut Vec<ObjectMeta>) -> io::Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let ft = entry.file_type()?;
            let path = entry.path();
            if ft.is_dir() {
                self.walk(&path, out)?;
            } else if ft.is_file() && !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
            {
                let rel = path.strip_prefix(&self.root).unwrap_or(&path);
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(ObjectMeta {
                    key,
                    size: entry.metadata()?.len(),
                });
            }
        }
        Ok(())
    }
}

impl ObjectStore for DirObjectStore {
    fn put_from(&self, key: &str, data: &mut dyn Read, mode: PutMode) -> StoreResult<ObjectMeta> {
        if mode == PutMode::Create && self.path(key)?.exists() {
            return Err(StoreError::AlreadyExists(key.to_owned()));
        }
        let tmp = self.scratch(key)?;
        let written = tmp.handle().and_then(|mut f| {
            io::copy(data, &mut f)?;
            f.flush()
        });
        if let Err(e) = written {
            return Err(io_err("writing the object", e));
        }
        self.put_file(key, tmp, mode)
    }

    fn get(&self, key: &str) -> StoreResult<Box<dyn Read + Send>> {
        let path = self.path(key)?;
        // An object is never a symlink: one planted here is not followed.
        let opened = fs::OpenOptions::new()
            .read(true)
            .custom_flags(crate::fsafe::NOFOLLOW)
            .open(&path);
        match opened {
            Ok(f) => Ok(Box::new(io::BufReader::with_capacity(1 << 16, f))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(key.to_owned()))
            }
            Err(e) => Err(io_err("opening the object", e)),
        }
    }

    fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        let path = self.path(key)?;
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => Ok(ObjectMeta {
                key: key.to_owned(),
                size: m.len(),
            }),
            Ok(_) => Err(StoreError::NotFound(key.to_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(key.to_owned()))
            }
            Err(e) => Err(io_err("reading object metadata", e)),
        }
    }

    fn delete(&self, key: &str) -> StoreResult<()> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("deleting the object", e)),
        }
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        // Walk only the deepest directory the prefix names.
        let dir_part = prefix.rsplit_once('/').map_or("", |(d, _)| d);
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.path(dir_part)?
        };
        let mut out = Vec::new();
        self.walk(&start, &mut out)
            .map_err(|e| io_err("listing objects", e))?;
        out.retain(|m| m.key.starts_with(prefix));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn directory_store_conforms() {
        let dir = std::env::temp_dir().join(format!("agencylink-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        agencylink_core::conformance::object_store(&super::DirObjectStore::new(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
