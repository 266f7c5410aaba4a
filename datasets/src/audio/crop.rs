//! Fixed-length windows of a waveform: a crop when the clip is longer, zero
//! padding around it when it is shorter.

use vicreg_core::SeededRng;

/// Crops a random window of `len` samples, or, when `wave` is shorter, places it at a random
/// offset inside `len` zeros.
pub fn random_crop_or_pad(wave: &[f32], len: usize, rng: &mut SeededRng) -> Vec<f32> {
    let n = wave.len();
    if n >= len {
        let start = rng.below(n - len + 1);
        wave[start..start + len].to_vec()
    } else {
        let off = rng.below(len - n + 1);
        let mut out = vec![0.0; len];
        out[off..off + n].copy_from_slice(wave);
        out
    }
}

/// Centred crop to `len` samples, or centred zero-padding when `wave` is shorter.
pub fn center_crop_or_pad(wave: &[f32], len: usize) -> Vec<f32> {
    let n = wave.len();
    if n >= len {
        let start = (n - len) / 2;
        wave[start..start + len].to_vec()
    } else {
        let off = (len - n) / 2;
        let mut out = vec![0.0; len];
        out[off..off + n].copy_from_slice(wave);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_and_pads_keep_the_samples_in_order() {
        let w = [1.0f32, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(center_crop_or_pad(&w, 3), vec![2.0, 3.0, 4.0]);
        assert_eq!(center_crop_or_pad(&w[..2], 4), vec![0.0, 1.0, 2.0, 0.0]);
        let mut rng = SeededRng::new(1);
        for _ in 0..20 {
            let c = random_crop_or_pad(&w, 2, &mut rng);
            assert!(c[1] == c[0] + 1.0 && c[0] >= 1.0 && c[1] <= 5.0, "{c:?}");
            let p = random_crop_or_pad(&w[..2], 4, &mut rng);
            assert_eq!(p.iter().sum::<f32>(), 3.0);
            let at = p.iter().position(|&v| v == 1.0).unwrap();
            assert_eq!(p[at + 1], 2.0);
        }
    }
}
