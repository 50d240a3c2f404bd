//! The seeded pseudo-random generator of everything that must replay from a seed: the
//! simulator, the in-memory transport's faults, the nemesis, seeded incarnations. Splitmix64,
//! so a run is a pure function of its seed and actions on every machine and every Rust version
//! (no dependency can change it).

/// A small, fast, seedable generator (splitmix64). Not for cryptography.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    /// A generator from `seed`; equal seeds give equal streams.
    pub fn new(seed: u64) -> Self {
        SeededRng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for a simulator, and branch-free.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `low..=high` (`low` when the range is empty).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.below(high - low + 1)
    }

    /// `true` with probability `per_mille / 1000`. Always takes one number from the stream,
    /// whatever the probability (even 0), so that a fault switched off does not shift every
    /// later random choice: a shrunk case stays close to the run that failed.
    pub fn chance(&mut self, per_mille: u16) -> bool {
        let draw = self.below(1000);
        per_mille > 0 && draw < u64::from(per_mille)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_ranges_hold() {
        let mut a = SeededRng::new(42);
        let mut b = SeededRng::new(42);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let x = a.between(3, 9);
            assert_eq!(x, b.between(3, 9));
            assert!((3..=9).contains(&x));
        }
        assert_eq!(a.below(0), 0);
        assert!(!a.chance(0));
        assert!(a.chance(1000));
    }
}
