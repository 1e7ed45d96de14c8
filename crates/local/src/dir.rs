//! The directory object store: `landing/`, `curated/`, `reports/` … under
//! the data directory. Writes go to a temporary file in the same directory
//! and are renamed into place, so a reader never sees half an object.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use agencylink_core::memory::check_object_key;
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

    fn path(&self, key: &str) -> StoreResult<PathBuf> {
        check_object_key(key)?;
        Ok(self.root.join(key))
    }

    /// A scratch file for writing object `key`: in the object's own
    /// directory (so [`put_file`](Self::put_file) can rename it into place
    /// without a copy) and named so listings skip it.
    pub fn scratch_path(&self, key: &str) -> StoreResult<PathBuf> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(|e| io_err("creating the object directory", e))?;
        Ok(dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        )))
    }

    /// Publish a finished scratch file from [`scratch_path`](Self::scratch_path)
    /// as `key`: synced to disk, then renamed into place, so a reader never
    /// sees half an object. The scratch file is gone afterwards either way.
    pub fn put_file(&self, key: &str, scratch: &Path, mode: PutMode) -> StoreResult<ObjectMeta> {
        let path = self.path(key)?;
        let synced = File::open(scratch).and_then(|f| {
            f.sync_all()?;
            f.metadata()
        });
        let size = match synced {
            Ok(meta) => meta.len(),
            Err(e) => {
                let _ = fs::remove_file(scratch);
                return Err(io_err("writing the object", e));
            }
        };
        if mode == PutMode::Create {
            // hard_link fails if the target exists: create-only without a race.
            let linked = fs::hard_link(scratch, &path);
            let _ = fs::remove_file(scratch);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(StoreError::AlreadyExists(key.to_owned()));
                }
                Err(e) => return Err(io_err("placing the object", e)),
            }
        } else if let Err(e) = fs::rename(scratch, &path) {
            let _ = fs::remove_file(scratch);
            return Err(io_err("placing the object", e));
        }
        Ok(ObjectMeta {
            key: key.to_owned(),
            size,
        })
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
            } else if ft.is_file() && !entry.file_name().to_string_lossy().starts_with(".tmp-") {
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
        let tmp = self.scratch_path(key)?;
        let written = (|| {
            let mut f = File::create(&tmp)?;
            io::copy(data, &mut f)?;
            f.flush()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("writing the object", e));
        }
        self.put_file(key, &tmp, mode)
    }

    fn get(&self, key: &str) -> StoreResult<Box<dyn Read + Send>> {
        let path = self.path(key)?;
        match File::open(&path) {
            Ok(f) => Ok(Box::new(io::BufReader::with_capacity(1 << 16, f))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(key.to_owned()))
            }
            Err(e) => Err(io_err("opening the object", e)),
        }
    }

    fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        let path = self.path(key)?;
        match fs::metadata(&path) {
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
