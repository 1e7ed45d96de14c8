//! Fellegi–Sunter scoring over comparison levels built on the encodings,
//! and unsupervised estimation of its parameters.
//!
//! Each of three comparisons (family name, given name, date of birth) puts a
//! pair of signatures at one ordered level, the first that holds (exact,
//! then closer to further, then "else"), or at no level when either side
//! lacks the field (a missing value is neither evidence for nor against).
//! A level has `m` = P(level | same person) and `u` = P(level | different
//! people); the pair's match weight is `log2(λ/(1−λ)) + Σ log2(m/u)` and its
//! match probability `2^w / (1 + 2^w)`.
//!
//! Estimation follows Splink's recipe without labels: `u` from random
//! pairs of signatures (almost all different people), `m` and the share of
//! matches among blocked pairs by expectation maximisation over the pairs
//! that blocking finds, and the prior `λ` for a random pair from the
//! expected number of matches over all pairs. Pairs are of *distinct*
//! signatures, so the pattern "exact on every field both have" is never
//! seen (such records share a signature); EM imputes that cell each
//! iteration ([`em_truncated`]) rather than underestimate exact agreement.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::encode::{COMPARE_SCHEME, NameCodes, Signature};

/// The three comparisons, in pattern order.
pub const COMPARISONS: [&str; 3] = ["family_name", "given_name", "dob"];

/// Family-name levels, first that holds.
pub const FAMILY_LEVELS: &[&str] = &[
    "exact",
    "one_edit",
    "shared_word",
    "phonetic",
    "swapped_with_given",
    "else",
];
/// Given-name levels, first that holds.
pub const GIVEN_LEVELS: &[&str] = &[
    "exact",
    "variant",
    "one_edit",
    "phonetic",
    "initial",
    "swapped_with_family",
    "else",
];
/// Date-of-birth levels, first that holds.
pub const DOB_LEVELS: &[&str] = &["exact", "day_month_swapped", "two_of_three", "else"];

/// The levels of comparison `c` (an index into [`COMPARISONS`]).
pub fn levels(c: usize) -> &'static [&'static str] {
    match c {
        0 => FAMILY_LEVELS,
        1 => GIVEN_LEVELS,
        _ => DOB_LEVELS,
    }
}

/// One pair's level in each comparison; `None` when a side lacks the field.
pub type Pattern = [Option<u8>; 3];

fn near(a: &NameCodes, b: &NameCodes) -> bool {
    a.d.contains(&b.x) || b.d.contains(&a.x) || a.d.iter().any(|c| b.d.binary_search(c).is_ok())
}

fn shared_word(a: &NameCodes, b: &NameCodes) -> bool {
    if a.w.is_empty() && b.w.is_empty() {
        return false;
    }
    let aw = |c: &String| c == &a.x || a.w.contains(c);
    aw(&b.x) || b.w.iter().any(aw)
}

fn level_of(list: &[&str], name: &str) -> Option<u8> {
    list.iter().position(|l| *l == name).map(|i| i as u8)
}

/// Where a pair of signatures stands in each comparison.
pub fn compare(a: &Signature, b: &Signature) -> Pattern {
    let family = match (&a.f, &b.f) {
        (Some(x), Some(y)) => {
            let swapped = a.g.as_ref().is_some_and(|g| g.x == y.x)
                || b.g.as_ref().is_some_and(|g| g.x == x.x);
            let l = if x.x == y.x {
                "exact"
            } else if near(x, y) {
                "one_edit"
            } else if shared_word(x, y) {
                "shared_word"
            } else if x.p.is_some() && x.p == y.p {
                "phonetic"
            } else if swapped {
                "swapped_with_given"
            } else {
                "else"
            };
            level_of(FAMILY_LEVELS, l)
        }
        _ => None,
    };
    let given = match (&a.g, &b.g) {
        (Some(x), Some(y)) => {
            let swapped = a.f.as_ref().is_some_and(|f| f.x == y.x)
                || b.f.as_ref().is_some_and(|f| f.x == x.x);
            let l = if x.x == y.x {
                "exact"
            } else if x.r.iter().any(|r| y.r.contains(r)) {
                "variant"
            } else if near(x, y) {
                "one_edit"
            } else if x.p.is_some() && x.p == y.p {
                "phonetic"
            } else if x.i.is_some() && x.i == y.i {
                "initial"
            } else if swapped {
                "swapped_with_family"
            } else {
                "else"
            };
            level_of(GIVEN_LEVELS, l)
        }
        _ => None,
    };
    let dob = match (&a.d, &b.d) {
        (Some(x), Some(y)) => {
            let l = if x.x == y.x {
                "exact"
            } else if x.s.as_ref() == Some(&y.x) || y.s.as_ref() == Some(&x.x) {
                "day_month_swapped"
            } else if x.ym == y.ym || x.yd == y.yd || x.md == y.md {
                "two_of_three"
            } else {
                "else"
            };
            level_of(DOB_LEVELS, l)
        }
        _ => None,
    };
    [family, given, dob]
}

/// Probabilities below this are floored, so no single level can veto or
/// force a link on its own (weights stay within about ±20 bits).
const FLOOR: f64 = 1e-6;

/// How a model was estimated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// Distinct signatures in the store.
    pub signatures: u64,
    /// Candidate pairs blocking found (EM's input).
    pub blocked_pairs: u64,
    /// Random pairs drawn for `u`.
    pub random_pairs: u64,
    /// EM iterations run.
    pub iterations: u32,
    /// Whether EM converged before its iteration cap.
    pub converged: bool,
    /// The share of blocked pairs EM put in the match class.
    pub blocked_match_share: f64,
}

/// The linkage model: parameters, thresholds and where they came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkModel {
    /// 0 for the built-in defaults; each `link train` stores the next.
    pub version: u32,
    /// The encoding scheme the levels are defined over.
    pub scheme: String,
    /// Prior probability that two random signatures are the same person.
    pub lambda: f64,
    /// `m` per comparison per level.
    pub m: [Vec<f64>; 3],
    /// `u` per comparison per level.
    pub u: [Vec<f64>; 3],
    /// Pairs at or above this probability are linked.
    pub match_threshold: f64,
    /// Pairs at or above this (and below the match threshold) are queued
    /// for clerical review.
    pub review_threshold: f64,
    /// How the parameters were estimated; `None` for the defaults.
    #[serde(default)]
    pub training: Option<Training>,
}

/// The default match threshold (probability).
pub const DEFAULT_MATCH_THRESHOLD: f64 = 0.95;
/// The default review threshold (probability).
pub const DEFAULT_REVIEW_THRESHOLD: f64 = 0.5;

/// One comparison's contribution to a pair's score, for reviewers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// `family_name`, `given_name` or `dob`.
    pub comparison: String,
    /// The level name, or `missing`.
    pub level: String,
    /// `log2(m/u)`, 0 when missing.
    pub weight: f64,
}

impl LinkModel {
    /// The built-in parameters used until `link train` stores a model.
    /// They are set by hand, not estimated: `m` from the rates of the
    /// synthetic error model (`crates/synth/README.md`: about one row in
    /// five of a second agency's extract carries an error), `u` of the
    /// order that random pairs of a Greater Manchester-like population
    /// show, and `λ` for a store of about ten thousand signatures. The
    /// README gives the precision and recall they and a trained model reach
    /// on the linkage bench.
    pub fn default_model() -> Self {
        LinkModel {
            version: 0,
            scheme: COMPARE_SCHEME.to_owned(),
            lambda: 1e-4,
            m: [
                vec![0.86, 0.06, 0.03, 0.02, 0.01, 0.02],
                vec![0.80, 0.05, 0.05, 0.02, 0.04, 0.01, 0.03],
                vec![0.86, 0.03, 0.08, 0.03],
            ],
            u: [
                vec![0.004, 0.002, 0.0005, 0.006, 0.0001, 0.9874],
                vec![0.01, 0.004, 0.006, 0.01, 0.004, 0.0001, 0.9659],
                vec![0.0004, 0.0003, 0.012, 0.9873],
            ],
            match_threshold: DEFAULT_MATCH_THRESHOLD,
            review_threshold: DEFAULT_REVIEW_THRESHOLD,
            training: None,
        }
    }

    fn weight(&self, c: usize, level: u8) -> f64 {
        let l = level as usize;
        let m = self.m[c].get(l).copied().unwrap_or(FLOOR).max(FLOOR);
        let u = self.u[c].get(l).copied().unwrap_or(FLOOR).max(FLOOR);
        (m / u).log2()
    }

    /// The pair's match weight in bits, prior included.
    pub fn match_weight(&self, p: &Pattern) -> f64 {
        let lambda = self.lambda.clamp(FLOOR, 1.0 - FLOOR);
        let prior = (lambda / (1.0 - lambda)).log2();
        prior
            + p.iter()
                .enumerate()
                .filter_map(|(c, l)| l.map(|l| self.weight(c, l)))
                .sum::<f64>()
    }

    /// The pair's match probability.
    pub fn probability(&self, p: &Pattern) -> f64 {
        let w = self.match_weight(p);
        let odds = w.exp2();
        if odds.is_infinite() {
            1.0
        } else {
            odds / (1.0 + odds)
        }
    }

    /// Each comparison's level and weight, for a reviewer.
    pub fn explain(&self, p: &Pattern) -> Vec<Agreement> {
        p.iter()
            .enumerate()
            .map(|(c, l)| Agreement {
                comparison: COMPARISONS[c].to_owned(),
                level: l
                    .map(|l| levels(c)[l as usize].to_owned())
                    .unwrap_or_else(|| "missing".to_owned()),
                weight: l.map(|l| round3(self.weight(c, l))).unwrap_or(0.0),
            })
            .collect()
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `u` from the patterns of random pairs: each level's share among pairs
/// where both sides have the field, with one pseudo-pair per level so that
/// a level unseen in the sample is rare, not impossible.
pub fn estimate_u(random: &HashMap<Pattern, u64>) -> [Vec<f64>; 3] {
    std::array::from_fn(|c| {
        let n = levels(c).len();
        let mut counts = vec![1.0f64; n];
        for (p, &k) in random {
            if let Some(l) = p[c] {
                counts[l as usize] += k as f64;
            }
        }
        let total: f64 = counts.iter().sum();
        counts.iter().map(|k| k / total).collect()
    })
}

/// What EM found.
#[derive(Debug, Clone, PartialEq)]
pub struct EmResult {
    /// `m` per comparison per level.
    pub m: [Vec<f64>; 3],
    /// `u` per comparison per level among blocked pairs (not used for
    /// scoring: blocked non-matches agree more often than random ones).
    pub u_blocked: [Vec<f64>; 3],
    /// The share of blocked pairs that match (imputed pairs included).
    pub lambda_blocked: f64,
    /// The share of the observed pairs that match (imputed ones left out).
    pub observed_match_share: f64,
    /// Iterations run.
    pub iterations: u32,
    /// Whether the parameters stopped moving before the cap.
    pub converged: bool,
}

/// Expectation maximisation over blocked pairs' patterns (with counts):
/// a two-class mixture where each comparison's level is independent given
/// the class. Starts from `start`'s `m` and a flat `u`.
pub fn em(patterns: &HashMap<Pattern, u64>, start: &LinkModel, max_iter: u32) -> EmResult {
    em_inner(patterns, start, max_iter, false)
}

/// [`em`] over pairs of *distinct signatures*: two records that agree
/// exactly on every field they both have share one signature, so the
/// "all exact" pattern of each presence mask is never observed. Each
/// iteration imputes that unobserved cell for both classes (its expected
/// count given the class's mass on the mask's observed patterns), which is
/// EM for truncated data; without it `m` of the exact levels is
/// underestimated and fuzzy levels overweighted.
pub fn em_truncated(
    patterns: &HashMap<Pattern, u64>,
    start: &LinkModel,
    max_iter: u32,
) -> EmResult {
    em_inner(patterns, start, max_iter, true)
}

/// The pattern whose every present comparison is exact.
fn all_exact(mask: [bool; 3]) -> Pattern {
    std::array::from_fn(|c| mask[c].then_some(0))
}

fn em_inner(
    patterns: &HashMap<Pattern, u64>,
    start: &LinkModel,
    max_iter: u32,
    truncated: bool,
) -> EmResult {
    let mut m = start.m.clone();
    let mut u: [Vec<f64>; 3] = std::array::from_fn(|c| {
        let n = levels(c).len();
        // Different people mostly land on "else" (the last level).
        let mut v = vec![0.02 / (n - 1) as f64; n];
        v[n - 1] = 0.98;
        v
    });
    let mut lambda = 0.1f64;
    let mut observed_share = 0.0f64;
    let total: f64 = patterns.values().map(|&k| k as f64).sum();
    let mut iterations = 0;
    let mut converged = false;
    if total == 0.0 {
        return EmResult {
            m,
            u_blocked: u,
            lambda_blocked: lambda,
            observed_match_share: 0.0,
            iterations,
            converged: true,
        };
    }
    while iterations < max_iter {
        iterations += 1;
        let mut m_acc: [Vec<f64>; 3] = std::array::from_fn(|c| vec![0.0; levels(c).len()]);
        let mut u_acc: [Vec<f64>; 3] = std::array::from_fn(|c| vec![0.0; levels(c).len()]);
        let mut match_mass = 0.0;
        let mut observed_mass = 0.0;
        // Each class's mass per presence mask, for the imputed cells.
        let mut mask_mass: HashMap<[bool; 3], (f64, f64)> = HashMap::new();
        let mut grand = total;
        for (p, &k) in patterns {
            let k = k as f64;
            let mut pm = lambda;
            let mut pu = 1.0 - lambda;
            for (c, l) in p.iter().enumerate() {
                if let Some(l) = l {
                    pm *= m[c][*l as usize].max(FLOOR);
                    pu *= u[c][*l as usize].max(FLOOR);
                }
            }
            let post = if pm + pu > 0.0 { pm / (pm + pu) } else { 0.0 };
            match_mass += k * post;
            observed_mass += k * post;
            let e = mask_mass
                .entry(std::array::from_fn(|c| p[c].is_some()))
                .or_default();
            e.0 += k * post;
            e.1 += k * (1.0 - post);
            for (c, l) in p.iter().enumerate() {
                if let Some(l) = l {
                    m_acc[c][*l as usize] += k * post;
                    u_acc[c][*l as usize] += k * (1.0 - post);
                }
            }
        }
        if truncated {
            for (mask, (mass_m, mass_u)) in mask_mass {
                let cell = all_exact(mask);
                let prob = |params: &[Vec<f64>; 3]| -> f64 {
                    (0..3)
                        .filter(|&c| mask[c])
                        .map(|c| params[c][0])
                        .product::<f64>()
                        .min(0.999)
                };
                let (pm, pu) = (prob(&m), prob(&u));
                let (add_m, add_u) = (mass_m * pm / (1.0 - pm), mass_u * pu / (1.0 - pu));
                match_mass += add_m;
                grand += add_m + add_u;
                for (c, l) in cell.iter().enumerate() {
                    if let Some(l) = l {
                        m_acc[c][*l as usize] += add_m;
                        u_acc[c][*l as usize] += add_u;
                    }
                }
            }
        }
        let normalise = |acc: &[Vec<f64>; 3]| -> [Vec<f64>; 3] {
            std::array::from_fn(|c| {
                let s: f64 = acc[c].iter().sum();
                if s > 0.0 {
                    acc[c].iter().map(|x| x / s).collect()
                } else {
                    acc[c].clone()
                }
            })
        };
        let new_m = normalise(&m_acc);
        let new_u = normalise(&u_acc);
        let new_lambda = match_mass / grand;
        observed_share = observed_mass / total;
        let delta = new_m
            .iter()
            .zip(&m)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
            .fold((new_lambda - lambda).abs(), f64::max);
        m = new_m;
        u = new_u;
        lambda = new_lambda;
        if delta < 1e-6 {
            converged = true;
            break;
        }
    }
    EmResult {
        m,
        u_blocked: u,
        lambda_blocked: lambda,
        observed_match_share: observed_share,
        iterations,
        converged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linkage::encode::signature;
    use crate::pseudo::test_pseudonymiser;

    fn pattern(a: (&str, &str, &str), b: (&str, &str, &str)) -> Vec<String> {
        let p = test_pseudonymiser();
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let sa = signature(
            &p,
            opt(a.0).as_deref(),
            opt(a.1).as_deref(),
            opt(a.2).as_deref(),
        )
        .expect("a");
        let sb = signature(
            &p,
            opt(b.0).as_deref(),
            opt(b.1).as_deref(),
            opt(b.2).as_deref(),
        )
        .expect("b");
        compare(&sa, &sb)
            .iter()
            .enumerate()
            .map(|(c, l)| l.map_or("missing", |l| levels(c)[l as usize]).to_owned())
            .collect()
    }

    #[test]
    fn each_level_is_found_through_the_codes_alone() {
        let base = ("smith", "katherine", "2010-03-07");
        assert_eq!(pattern(base, base), ["exact", "exact", "exact"]);
        assert_eq!(
            pattern(base, ("smiht", "kate", "2010-07-03")),
            ["one_edit", "variant", "day_month_swapped"]
        );
        assert_eq!(
            pattern(base, ("smith jones", "katherin", "2011-03-07")),
            ["shared_word", "one_edit", "two_of_three"]
        );
        assert_eq!(
            pattern(base, ("smith", "k", "")),
            ["exact", "initial", "missing"]
        );
        assert_eq!(
            pattern(base, ("schmidt", "", "1999-12-25")),
            ["else", "missing", "else"]
        );
        assert_eq!(
            pattern(("khan", "mohammed", ""), ("kahn", "muhammad", "")),
            ["one_edit", "variant", "missing"]
        );
        assert_eq!(
            pattern(("katherine", "smith", ""), base),
            ["swapped_with_given", "swapped_with_family", "missing"]
        );
        assert_eq!(
            pattern(("stevens", "ann", ""), ("stephens", "ann", "")),
            ["phonetic", "exact", "missing"]
        );
    }

    #[test]
    fn scores_rise_with_agreement_and_missing_fields_are_neutral() {
        let model = LinkModel::default_model();
        let all = [Some(0), Some(0), Some(0)];
        let weaker = [Some(1), Some(1), Some(0)];
        let none = [Some(5), Some(6), Some(3)];
        assert!(model.probability(&all) > 0.999);
        assert!(model.probability(&all) > model.probability(&weaker));
        assert!(model.probability(&none) < 1e-6);
        let missing = [Some(0), Some(0), None];
        assert!(
            (model.match_weight(&missing) - model.match_weight(&all) + model.weight(2, 0)).abs()
                < 1e-9
        );
    }

    /// Pairs of distinct signatures never show the all-exact pattern; EM
    /// that imputes it still recovers the model, and plain EM does not.
    #[test]
    fn em_recovers_parameters_when_the_all_exact_cell_is_unobservable() {
        let m_true: [Vec<f64>; 3] = [
            vec![0.8, 0.1, 0.04, 0.03, 0.01, 0.02],
            vec![0.7, 0.1, 0.08, 0.04, 0.04, 0.01, 0.03],
            vec![0.85, 0.05, 0.07, 0.03],
        ];
        let u_true: [Vec<f64>; 3] = [
            vec![0.05, 0.02, 0.01, 0.06, 0.005, 0.855],
            vec![0.04, 0.02, 0.02, 0.05, 0.1, 0.005, 0.765],
            vec![0.01, 0.005, 0.1, 0.885],
        ];
        let lambda = 0.2;
        let n = 1_000_000.0;
        let mut patterns: HashMap<Pattern, u64> = HashMap::new();
        for f in 0..6 {
            for g in 0..7 {
                for d in 0..4 {
                    if (f, g, d) == (0, 0, 0) {
                        continue; // never observed
                    }
                    let pm = m_true[0][f] * m_true[1][g] * m_true[2][d];
                    let pu = u_true[0][f] * u_true[1][g] * u_true[2][d];
                    let k = (n * (lambda * pm + (1.0 - lambda) * pu)).round() as u64;
                    if k > 0 {
                        patterns.insert([Some(f as u8), Some(g as u8), Some(d as u8)], k);
                    }
                }
            }
        }
        let start = LinkModel::default_model();
        let fit = em_truncated(&patterns, &start, 1000);
        for (c, truth) in m_true.iter().enumerate() {
            for (l, want) in truth.iter().enumerate() {
                assert!((fit.m[c][l] - want).abs() < 0.02, "m[{c}][{l}] {fit:?}");
            }
        }
        assert!((fit.lambda_blocked - lambda).abs() < 0.01, "{fit:?}");
        let plain = em(&patterns, &start, 1000);
        assert!(
            plain.m[0][0] < m_true[0][0] - 0.1,
            "without imputation exact agreement is underestimated: {plain:?}"
        );
    }

    /// Draws pairs from a known two-class model and checks that EM
    /// recovers its `m`, `u` and match share.
    #[test]
    fn em_recovers_known_parameters() {
        let truth_m: [Vec<f64>; 3] = [
            vec![0.8, 0.1, 0.04, 0.03, 0.01, 0.02],
            vec![0.7, 0.1, 0.08, 0.04, 0.04, 0.01, 0.03],
            vec![0.85, 0.05, 0.07, 0.03],
        ];
        let truth_u: [Vec<f64>; 3] = [
            vec![0.05, 0.02, 0.01, 0.06, 0.005, 0.855],
            vec![0.04, 0.02, 0.02, 0.05, 0.1, 0.005, 0.765],
            vec![0.01, 0.005, 0.1, 0.885],
        ];
        let lambda = 0.2;
        // A small deterministic generator (SplitMix64).
        let mut state = 42u64;
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let draw = |probs: &[f64], r: f64| {
            let mut acc = 0.0;
            for (i, p) in probs.iter().enumerate() {
                acc += p;
                if r < acc {
                    return i as u8;
                }
            }
            (probs.len() - 1) as u8
        };
        let mut patterns: HashMap<Pattern, u64> = HashMap::new();
        for _ in 0..200_000 {
            let is_match = next() < lambda;
            let params = if is_match { &truth_m } else { &truth_u };
            let p: Pattern = std::array::from_fn(|c| Some(draw(&params[c], next())));
            *patterns.entry(p).or_default() += 1;
        }
        let got = em(&patterns, &LinkModel::default_model(), 500);
        assert!((got.lambda_blocked - lambda).abs() < 0.01, "{got:?}");
        for c in 0..3 {
            for (l, want) in truth_m[c].iter().enumerate() {
                assert!((got.m[c][l] - want).abs() < 0.02, "m[{c}][{l}] {got:?}");
            }
            for (l, want) in truth_u[c].iter().enumerate() {
                assert!(
                    (got.u_blocked[c][l] - want).abs() < 0.02,
                    "u[{c}][{l}] {got:?}"
                );
            }
        }
    }
}
