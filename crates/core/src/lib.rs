//! agencylink core: the pipeline with no AWS, no SQLite and no CLI.
//!
//! Everything here is synchronous and does no I/O of its own beyond the
//! readers and writers it is handed; adapters implement the ports.

pub mod audit;
pub mod checkpoint;
pub mod conformance;
pub mod csv_safe;
pub mod curate;
pub mod events;
pub mod geography;
pub mod ingest;
pub mod language;
pub mod lineage;
pub mod link;
pub mod linkage;
pub mod memory;
pub mod network;
pub mod parallel;
pub mod policy;
pub mod ports;
pub mod profile;
pub mod pseudo;
pub mod query;
pub mod read;
pub mod reconcile;
pub mod report;
pub mod retention;
pub mod rotation;
pub mod schema;
pub mod validate;
pub mod withdraw;
