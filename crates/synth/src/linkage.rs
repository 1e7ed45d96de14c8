//! A two-agency linkage test set: the same children recorded by two
//! agencies, one clean and one with realistic linkage errors, with ground
//! truth saying who is who.
//!
//! [`write_pair`] picks `people` distinct children from a world sized to
//! hold exactly that many, and splits them three ways: in both files
//! ([`PairOptions::overlap`]), only in file A, only in file B, so that file
//! A holds [`PairOptions::share_a`] of them and file B
//! [`PairOptions::share_b`]. Each child appears **at most once per file**,
//! in a shuffled order. File A's rows are clean ([`ErrorModel::none`]);
//! file B's carry [`PairOptions::errors`] (the default model unless told
//! otherwise). Neither file has invalid rows.
//!
//! The two files are two agencies' extracts of one dataset: every row is
//! its own record (its own event date, place and codes), and the agencies'
//! ids differ: file B's record refs are numbered from 50,000,001 and its
//! child ids come from another numbering under an `S` prefix, so no record
//! ref or child id in A equals one in B. Only names and dates of birth can
//! link them (and NHS numbers or UPNs, in a dataset that has them).
//!
//! Each file's truth is the usual NDJSON (see the crate documentation):
//! one line per row with `person` (the same id for the same child in both
//! files) and `errors`, then a summary line. Everything is fixed by the
//! seed.

use std::io::Write;

use agencylink_core::schema::Dataset;

use crate::corrupt::ErrorModel;
use crate::emit::{Generator, Ids};
use crate::rng::{Rng, mix};
use crate::world::{Population, World};
use crate::{SynthError, SynthStats};

/// What [`write_pair`] makes.
#[derive(Debug, Clone, PartialEq)]
pub struct PairOptions {
    /// Fixes the people, the split and every row.
    pub seed: u64,
    /// Distinct children in the test set (in A, B or both); the world has
    /// exactly this many children.
    pub people: u32,
    /// Share of the people (0 to 1) in file A. Default 0.8.
    pub share_a: f64,
    /// Share of the people (0 to 1) in file B. Default 0.8.
    pub share_b: f64,
    /// Share of the people (0 to 1) in both files. At most the smaller of
    /// the two shares, and at least `share_a + share_b - 1`. Default 0.6,
    /// so with the default shares everyone is in at least one file: 60% in
    /// both, 20% only in A, 20% only in B.
    pub overlap: f64,
    /// The errors of file B's rows. Default [`ErrorModel::default`].
    pub errors: ErrorModel,
}

impl PairOptions {
    /// `people` children from `seed`, with the default shares and errors.
    pub fn new(seed: u64, people: u32) -> Self {
        PairOptions {
            seed,
            people,
            share_a: 0.8,
            share_b: 0.8,
            overlap: 0.6,
            errors: ErrorModel::default(),
        }
    }

    /// `(in both, only in A, only in B)`, rounded to whole people.
    pub fn split(&self) -> Result<(u32, u32, u32), SynthError> {
        let bad = |what: String| Err(SynthError::InvalidPair(what));
        for (name, v) in [
            ("share_a", self.share_a),
            ("share_b", self.share_b),
            ("overlap", self.overlap),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        let n = f64::from(self.people);
        let count = |share: f64| (share * n).round() as u32;
        let (a, b, both) = (
            count(self.share_a),
            count(self.share_b),
            count(self.overlap),
        );
        if both > a.min(b) {
            return bad(format!(
                "overlap {} is more than a file's share ({} / {})",
                self.overlap, self.share_a, self.share_b
            ));
        }
        if u64::from(a) + u64::from(b) - u64::from(both) > u64::from(self.people) {
            return bad(format!(
                "shares {} and {} with overlap {} need more than {} people",
                self.share_a, self.share_b, self.overlap, self.people
            ));
        }
        Ok((both, a - both, b - both))
    }
}

/// What [`write_pair`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairStats {
    /// Children in both files.
    pub in_both: u32,
    /// Children only in file A.
    pub only_a: u32,
    /// Children only in file B.
    pub only_b: u32,
    /// File A (clean).
    pub a: SynthStats,
    /// File B (with errors; [`SynthStats::error_rows`] counts its rows
    /// with at least one).
    pub b: SynthStats,
}

/// Write a two-agency linkage test set of `dataset` (one without a role
/// column, such as `council.missing_episode`): file A's CSV to `a`, file
/// B's to `b`, and their ground truth to `truth_a` and `truth_b` (see the
/// module documentation).
pub fn write_pair(
    dataset: &Dataset,
    opts: &PairOptions,
    a: &mut dyn Write,
    b: &mut dyn Write,
    truth_a: &mut dyn Write,
    truth_b: &mut dyn Write,
) -> Result<PairStats, SynthError> {
    let (both, only_a, only_b) = opts.split()?;
    if opts.people == 0 {
        return Err(SynthError::InvalidPair("people must be at least 1".into()));
    }
    let population = Population {
        children: opts.people,
        adults: (opts.people / 2).max(50),
    };
    let world = World::new(opts.seed, population)?;
    let seed_a = mix(opts.seed, "pair/a");
    let seed_b = mix(opts.seed, "pair/b");
    let mut gen_a = Generator::new(&world, dataset, seed_a, 0.0, ErrorModel::none())?;
    let mut gen_b = Generator::new(&world, dataset, seed_b, 0.0, opts.errors)?;

    let mut children: Vec<u32> = (0..opts.people).filter(|&i| gen_a.can_appear(i)).collect();
    let needed = both + only_a + only_b;
    if (children.len() as u64) < u64::from(needed) {
        return Err(SynthError::NoPeople);
    }
    let mut rng = Rng::derive(opts.seed, &format!("pair/split/{}", dataset.id));
    rng.shuffle(&mut children);
    let (shared, rest) = children.split_at(both as usize);
    let (a_only, rest) = rest.split_at(only_a as usize);
    let b_only = &rest[..only_b as usize];

    let mut list_a: Vec<u32> = shared.iter().chain(a_only).copied().collect();
    let mut list_b: Vec<u32> = shared.iter().chain(b_only).copied().collect();
    rng.shuffle(&mut list_a);
    rng.shuffle(&mut list_b);
    let (rows_a, rows_b) = (list_a.len() as u64, list_b.len() as u64);
    gen_a.listed(list_a, Ids::Own)?;
    gen_b.listed(list_b, Ids::Second)?;
    let stats_a = gen_a.run(rows_a, a, Some(truth_a))?;
    let stats_b = gen_b.run(rows_b, b, Some(truth_b))?;
    Ok(PairStats {
        in_both: both,
        only_a,
        only_b,
        a: stats_a,
        b: stats_b,
    })
}
