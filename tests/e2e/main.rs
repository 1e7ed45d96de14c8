//! End-to-end tests over the real `agencylink` binary, one module per user story.

mod analyst;
mod checkpoints;
mod concurrency;
mod crash;
mod graph_exports;
mod hygiene;
mod ingest;
mod investigations;
mod keys;
mod language;
mod lifecycle;
mod linkage;
mod pipes;
mod policy;
mod profile;
mod pseudonymise;
mod raw;
mod rotation;
mod schemas;
mod serve;
mod synth_errors;
mod util;
mod validate;
mod workbench;
