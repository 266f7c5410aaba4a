//! Seeded randomness. candle's CPU generator cannot be seeded, so every random
//! number in the project (initialisation, shuffling, augmentation) comes from here.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A deterministic random stream (ChaCha8) that can be derived from a seed and
/// any number of integer or string keys, e.g. `(seed, epoch, sample_index)`.
#[derive(Clone, Debug)]
pub struct SeededRng {
    inner: ChaCha8Rng,
}

/// 64-bit FNV-1a hash of bytes, used to turn names into stream keys.
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64 finaliser: mixes a 64-bit value so that nearby keys give unrelated streams.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SeededRng {
    /// A stream determined by `seed` alone.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: ChaCha8Rng::seed_from_u64(mix64(seed)),
        }
    }

    /// A stream determined by `seed` and a list of keys (order matters).
    pub fn derive(seed: u64, keys: &[u64]) -> Self {
        let mut h = mix64(seed);
        for k in keys {
            h = mix64(h ^ mix64(*k));
        }
        Self {
            inner: ChaCha8Rng::seed_from_u64(h),
        }
    }

    /// A stream determined by `seed` and a name (e.g. a parameter's name).
    pub fn for_name(seed: u64, name: &str) -> Self {
        Self::derive(seed, &[hash_str(name)])
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.inner.random::<f64>()
    }

    /// Uniform in [lo, hi).
    pub fn uniform_range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Integer uniform in [0, n). `n` must be > 0.
    pub fn below(&mut self, n: usize) -> usize {
        self.inner.random_range(0..n)
    }

    /// True with probability `p`.
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal sample (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        loop {
            let u1 = self.uniform();
            if u1 > f64::MIN_POSITIVE {
                let u2 = self.uniform();
                return (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            }
        }
    }

    /// Fisher-Yates shuffle of a slice.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }

    /// A random permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        self.shuffle(&mut v);
        v
    }

    /// Raw 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.random::<u64>()
    }

    /// The full generator state (seed + word position), for checkpoints.
    pub fn state(&self) -> RngState {
        RngState {
            seed: self.inner.get_seed(),
            word_pos: self.inner.get_word_pos(),
        }
    }

    /// Restores a state saved with [`SeededRng::state`].
    pub fn from_state(state: &RngState) -> Self {
        let mut inner = ChaCha8Rng::from_seed(state.seed);
        inner.set_word_pos(state.word_pos);
        Self { inner }
    }
}

/// Serializable state of a [`SeededRng`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RngState {
    /// The 32-byte ChaCha seed.
    pub seed: [u8; 32],
    /// Position in the stream, in 32-bit words.
    pub word_pos: u128,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_keys_same_stream_and_state_roundtrip() {
        let mut a = SeededRng::derive(7, &[1, 2]);
        let mut b = SeededRng::derive(7, &[1, 2]);
        let mut c = SeededRng::derive(7, &[2, 1]);
        let xa: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
        let st = a.state();
        let mut r = SeededRng::from_state(&st);
        assert_eq!(a.next_u64(), r.next_u64());
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut r = SeededRng::new(3);
        let n = 20000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let m = xs.iter().sum::<f64>() / n as f64;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
        assert!(m.abs() < 0.03, "mean {m}");
        assert!((v - 1.0).abs() < 0.05, "var {v}");
    }
}
