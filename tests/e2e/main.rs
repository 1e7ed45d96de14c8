//! End-to-end tests over the real `agencylink` binary, one module per user story.

mod util;
mod validate;
