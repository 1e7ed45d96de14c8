//! agencylink core: the pipeline with no AWS, no SQLite and no CLI.
//!
//! Everything here is synchronous and does no I/O of its own beyond the
//! readers and writers it is handed; adapters implement the ports.

pub mod pseudo;
