//! `link train`: re-estimate the model from the store's own signatures,
//! without labels, and store it as the next version.

use std::collections::{HashMap, HashSet};

use super::model::{LinkModel, Pattern, Training, compare, em_truncated, estimate_u};
use super::run::{MAX_BLOCK, current_model};
use crate::linkage::encode::COMPARE_SCHEME;
use crate::ports::{LinkageStore, StoreResult};

/// How to train.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// Random pairs drawn for `u`.
    pub random_pairs: u64,
    /// EM's iteration cap.
    pub max_iterations: u32,
    /// Seed of the random pairs, so a training run can be repeated.
    pub seed: u64,
    /// Thresholds for the new model; `None` keeps the current model's.
    pub match_threshold: Option<f64>,
    /// See `match_threshold`.
    pub review_threshold: Option<f64>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            random_pairs: 1_000_000,
            max_iterations: 200,
            seed: 1,
            match_threshold: None,
            review_threshold: None,
        }
    }
}

/// SplitMix64: a tiny deterministic generator for sampling pairs.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Estimate a model from every signature in the index and store it as the
/// next version. Returns the stored model.
pub fn train(linkage: &dyn LinkageStore, opts: &TrainOptions) -> StoreResult<LinkModel> {
    let previous = current_model(linkage)?;
    let mut sigs = Vec::new();
    linkage.scan_signatures(&mut |s| {
        sigs.push(s.signature);
        true
    })?;
    sigs.sort_by(|a, b| a.id.cmp(&b.id));
    let n = sigs.len() as u64;

    // Candidate pairs: every pair that shares a (not oversized) block.
    let mut blocks: HashMap<&str, Vec<u32>> = HashMap::new();
    for (i, s) in sigs.iter().enumerate() {
        for b in &s.b {
            blocks.entry(b.as_str()).or_default().push(i as u32);
        }
    }
    let mut seen: HashSet<(u32, u32)> = HashSet::new();
    let mut blocked: HashMap<Pattern, u64> = HashMap::new();
    for members in blocks.values() {
        if members.len() > MAX_BLOCK {
            continue;
        }
        for (x, &i) in members.iter().enumerate() {
            for &j in &members[x + 1..] {
                if seen.insert((i.min(j), i.max(j))) {
                    let p = compare(&sigs[i as usize], &sigs[j as usize]);
                    *blocked.entry(p).or_default() += 1;
                }
            }
        }
    }
    let blocked_pairs = seen.len() as u64;
    drop(seen);

    // Random pairs for u.
    let all_pairs = n.saturating_mul(n.saturating_sub(1)) / 2;
    let draws = opts.random_pairs.min(all_pairs);
    let mut random: HashMap<Pattern, u64> = HashMap::new();
    let mut state = opts.seed;
    let mut drawn = 0;
    while drawn < draws {
        let i = (splitmix(&mut state) % n) as usize;
        let j = (splitmix(&mut state) % n) as usize;
        if i == j {
            continue;
        }
        *random.entry(compare(&sigs[i], &sigs[j])).or_default() += 1;
        drawn += 1;
    }

    // Pairs of distinct signatures never agree exactly on every field both
    // have (such records share one signature): EM imputes that cell.
    let fit = em_truncated(&blocked, &previous, opts.max_iterations);
    let u = if drawn > 0 {
        estimate_u(&random)
    } else {
        previous.u.clone()
    };
    // The prior for a random pair: the matches EM expects among blocked
    // pairs, over all pairs (blocking finds nearly all matches).
    let lambda = if all_pairs > 0 {
        (fit.observed_match_share * blocked_pairs as f64 / all_pairs as f64).clamp(1e-9, 0.5)
    } else {
        previous.lambda
    };
    let model = LinkModel {
        version: linkage.model()?.map_or(1, |m| m.version + 1),
        scheme: COMPARE_SCHEME.to_owned(),
        lambda,
        m: if blocked_pairs > 0 {
            fit.m.clone()
        } else {
            previous.m.clone()
        },
        u,
        match_threshold: opts.match_threshold.unwrap_or(previous.match_threshold),
        review_threshold: opts.review_threshold.unwrap_or(previous.review_threshold),
        training: Some(Training {
            signatures: n,
            blocked_pairs,
            random_pairs: drawn,
            iterations: fit.iterations,
            converged: fit.converged,
            blocked_match_share: fit.observed_match_share,
        }),
    };
    linkage.put_model(&model)?;
    Ok(model)
}
