//! Embedded adapters: everything agencylink stores on one machine lives
//! under one data directory, as files (objects) and one SQLite database
//! (records, people, lineage, access log).

pub mod checkpoints;
mod dir;
pub mod fsafe;
mod keyfile;
mod sqlite;
pub mod users;

pub use dir::DirObjectStore;
pub use keyfile::{KEY_FILE, LocalKeyProvider};
pub use sqlite::{Compacted, SqliteChainLog, SqliteStore};
