//! End-to-end tests over the real `agencylink` binary, one module per user story.

mod ingest;
mod pseudonymise;
mod util;
mod validate;
