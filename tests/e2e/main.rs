//! End-to-end tests over the real `agencylink` binary, one module per user story.

mod analyst;
mod checkpoints;
mod graph_exports;
mod hygiene;
mod ingest;
mod investigations;
mod keys;
mod language;
mod lifecycle;
mod linkage;
mod policy;
mod profile;
mod pseudonymise;
mod raw;
mod schemas;
mod synth_errors;
mod util;
mod validate;
