//! Dropout whose masks come from a seeded stream ([`vicreg_core::SeededRng`]);
//! candle's own random generator cannot be seeded on the CPU.

use std::sync::{Arc, Mutex};

use candle_core::Tensor;
use vicreg_core::SeededRng;

/// A random stream shared by all dropout layers of one model; masks are drawn
/// in call order, so a run is reproducible given the seed and the batches.
pub type DropoutRng = Arc<Mutex<SeededRng>>;

/// The dropout stream keyed by `seed` and a name (e.g. the model's variable prefix).
pub fn dropout_stream(seed: u64, name: &str) -> SeededRng {
    SeededRng::derive(
        seed,
        &[
            vicreg_core::hash_str("dropout"),
            vicreg_core::hash_str(name),
        ],
    )
}

/// A new shared stream, see [`dropout_stream`].
pub fn dropout_rng(seed: u64, name: &str) -> DropoutRng {
    Arc::new(Mutex::new(dropout_stream(seed, name)))
}

/// Inverted dropout: in train mode each element is zeroed with probability
/// `p` and the survivors are scaled by `1 / (1 - p)`; identity in eval mode.
#[derive(Clone, Debug)]
pub struct Dropout {
    p: f64,
    rng: DropoutRng,
}

impl Dropout {
    /// Dropout with probability `p` (in `[0, 1)`) drawing from `rng`.
    pub fn new(p: f64, rng: DropoutRng) -> Self {
        Self { p, rng }
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// Applies dropout when `train` is true and `p > 0`.
    pub fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        if !train || self.p <= 0.0 {
            return Ok(x.clone());
        }
        let n = x.elem_count();
        let keep = 1.0 - self.p;
        let scale = (1.0 / keep) as f32;
        let mask: Vec<f32> = {
            let mut rng = self
                .rng
                .lock()
                .map_err(|_| candle_core::Error::Msg("dropout rng lock poisoned".into()))?;
            (0..n)
                .map(|_| if rng.uniform() < keep { scale } else { 0.0 })
                .collect()
        };
        let mask = Tensor::from_vec(mask, x.shape(), &candle_core::Device::Cpu)?
            .to_dtype(x.dtype())?
            .to_device(x.device())?;
        x.mul(&mask)
    }
}
