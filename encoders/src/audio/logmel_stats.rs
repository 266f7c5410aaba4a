//! Log-mel statistics of a batch of clips: the hand-made features an audio
//! representation is compared with (a linear probe on them is the
//! `log-mel statistics` baseline).
//!
//! Per clip, the front end's log-mel decibels (before the network's
//! normalisation) over the whole clip; for each mel band the mean and the
//! standard deviation over the frames that hold sound (see
//! [`LogMelSpectrogram::statistics`]): `2 * n_mels` features per clip.

use candle_core::{Device, Tensor};

use super::logmel::LogMelSpectrogram;
use crate::Result;

/// `(n, 2 * n_mels)` log-mel statistics (on the CPU) of `(n, samples)`
/// waveforms `x`: band means then band standard deviations, over the frames
/// within `active_db` decibels of each clip's loudest frame.
pub fn logmel_statistics(front: &LogMelSpectrogram, x: &Tensor, active_db: f64) -> Result<Tensor> {
    let rows = x.to_vec2::<f32>()?;
    let n_mels = front.config().n_mels;
    let mut out = Vec::with_capacity(rows.len() * 2 * n_mels);
    for clip in &rows {
        out.extend(front.statistics(clip, active_db)?);
    }
    Ok(Tensor::from_vec(
        out,
        (rows.len(), 2 * n_mels),
        &Device::Cpu,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::LogMelConfig;

    #[test]
    fn statistics_see_only_the_sound_of_a_padded_clip() {
        let mel = LogMelConfig {
            sample_rate: 8000.0,
            n_fft: 256,
            hop_length: 64,
            win_length: 256,
            n_mels: 8,
            ..LogMelConfig::esc50()
        };
        let front = LogMelSpectrogram::new(&mel).unwrap();
        // A tone in the first fifth of the clip, then digital silence; and the tone alone.
        let tone: Vec<f32> = (0..1600).map(|i| (i as f32 * 0.3).sin() * 0.5).collect();
        let mut padded = tone.clone();
        padded.resize(8000, 0.0);
        let a = logmel_statistics(
            &front,
            &Tensor::from_vec(padded, (1, 8000), &Device::Cpu).unwrap(),
            -30.0,
        )
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
        let b = logmel_statistics(
            &front,
            &Tensor::from_vec(tone, (1, 1600), &Device::Cpu).unwrap(),
            -30.0,
        )
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
        assert_eq!((a.len(), a[0].len()), (1, 16));
        // Band means over the sound agree whether or not the silence is there.
        for m in 0..8 {
            assert!(
                (a[0][m] - b[0][m]).abs() < 3.0,
                "band {m}: {} vs {}",
                a[0][m],
                b[0][m]
            );
        }
    }
}
