//! Probabilistic linkage: finds the same person across records that do not
//! share an exact match key, because a name or a date of birth was written
//! differently (a typo, a nickname, a transliteration, a swapped day and
//! month, a missing value).
//!
//! Exact match keys stay the first, certain stage ([`crate::link`]). Then
//! each record's [`Signature`] (keyed comparison encodings of its family
//! name, given name and date of birth, `encode`) goes to the linkage index;
//! a signature new to the index is compared with the signatures that share
//! one of its blocking keys, scored by a Fellegi–Sunter model (`model`),
//! and the pair is linked (people merged, with an alias), queued for
//! clerical review (`review`), or left apart. An analyst's decision on a
//! pair overrides any score, now and after re-ingest or retraining.

mod encode;
mod model;
mod names;
mod review;
mod run;
mod train;

pub use encode::{
    COMPARE_SCHEME, DobCodes, NEAR_MAX_CHARS, NEAR_MIN_CHARS, NameCodes, Signature, deletions,
    nysiis, signature,
};
pub use model::{
    Agreement, COMPARISONS, DEFAULT_MATCH_THRESHOLD, DEFAULT_REVIEW_THRESHOLD, DOB_LEVELS,
    EmResult, FAMILY_LEVELS, GIVEN_LEVELS, LinkModel, Pattern, Training, compare, em, em_truncated,
    estimate_u, levels,
};
pub use names::variant_roots;
pub use review::{Decision, ReviewItem, ReviewStatus, review_detail, review_id};
pub use run::{LinkOutcome, MAX_BLOCK, current_model, decide, link_new};
pub(crate) use run::{QueueState, link_new_joined};
pub use train::{TrainOptions, train};
