//! End-to-end tests over the real `agencylink` binary, one module per user story.

mod analyst;
mod hygiene;
mod ingest;
mod linkage;
mod profile;
mod pseudonymise;
mod raw;
mod synth_errors;
mod util;
mod validate;
