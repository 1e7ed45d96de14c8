//! A tiny, self-contained PRNG (xoshiro256** seeded through SplitMix64) and a
//! stable string hash.
//!
//! The generator is our own code on purpose: synthetic extracts are test
//! fixtures, and a fixture that changes because a dependency changed its
//! algorithm in a minor release is a flaky test. These few lines never change.

/// One SplitMix64 step: advances `state` and returns a well-mixed word.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable 64-bit hash of `seed` and a label (FNV-1a, then SplitMix64 to
/// spread the bits). Used to give every dataset, purpose and field its own
/// independent stream from one user seed.
pub(crate) fn mix(seed: u64, label: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325 ^ seed.rotate_left(17);
    for &b in label.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    let mut s = h ^ seed;
    splitmix64(&mut s)
}

/// xoshiro256**: fast, small state, good statistical quality.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole output is fixed by `seed`.
    pub(crate) fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let mut s = [0u64; 4];
        for word in &mut s {
            *word = splitmix64(&mut sm);
        }
        // SplitMix64 never yields four zero words from one seed, but the
        // all-zero state is the one xoshiro cannot leave, so guard anyway.
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s }
    }

    /// A generator for one purpose (`label`) derived from a user seed.
    pub(crate) fn derive(seed: u64, label: &str) -> Rng {
        Rng::new(mix(seed, label))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (0 when `n` is 0). Multiply-shift: the bias is below
    /// 2^-40 for the small ranges used here, which no test can see.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform index into a collection of length `n` (0 when `n` is 0).
    pub(crate) fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in `lo..=hi` (`lo` when `hi < lo`).
    pub(crate) fn between(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of a non-empty slice; `None` for an empty one.
    pub(crate) fn pick<'a, T>(&mut self, xs: &'a [T]) -> Option<&'a T> {
        xs.get(self.index(xs.len()))
    }

    /// An index drawn with probability proportional to weights given as a
    /// running total (`cumulative[i]` = sum of weights `0..=i`).
    /// Returns `None` when the total weight is zero.
    pub(crate) fn weighted(&mut self, cumulative: &[u32]) -> Option<usize> {
        let total = *cumulative.last()?;
        if total == 0 {
            return None;
        }
        let x = self.below(u64::from(total)) as u32;
        // First position whose running total exceeds x.
        Some(cumulative.partition_point(|&c| c <= x))
    }

    /// Fisher-Yates shuffle.
    pub(crate) fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.index(i + 1);
            xs.swap(i, j);
        }
    }
}

/// Running totals of `weights`, for [`Rng::weighted`].
pub(crate) fn cumulative(weights: impl IntoIterator<Item = u32>) -> Vec<u32> {
    let mut total = 0u32;
    weights
        .into_iter()
        .map(|w| {
            total = total.saturating_add(w);
            total
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_fixed_forever() {
        // Pinned values (checked against an independent implementation of
        // SplitMix64 + xoshiro256**): if these change, every synthetic
        // fixture changes.
        let mut r = Rng::new(7);
        let first: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(
            first,
            [
                12_923_355_070_828_475_994,
                5_142_052_590_334_782_674,
                15_488_392_906_492_639_638
            ]
        );
        assert_ne!(mix(1, "a"), mix(1, "b"));
        assert_ne!(mix(1, "a"), mix(2, "a"));
    }

    #[test]
    fn weighted_respects_zero_weights() {
        let cum = cumulative([0, 5, 0, 5]);
        let mut r = Rng::new(1);
        for _ in 0..1000 {
            let i = r.weighted(&cum).expect("non-zero total");
            assert!(i == 1 || i == 3, "{i}");
        }
        assert_eq!(r.weighted(&cumulative([0, 0])), None);
    }
}
