//! Parameter storage with seeded initialisation.
//!
//! [`ParamStore`] wraps a [`candle_nn::VarMap`] and acts as a `VarBuilder`
//! backend: every layer built through [`ParamStore::var_builder`] gets its
//! initial values from [`SeededRng`] streams derived from `(seed, tensor name)`,
//! so the same seed gives the same model whatever the construction order, and
//! the initialisation hints of candle layers (`Init::Kaiming`, `Init::Uniform`,
//! ...) keep their PyTorch meaning.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{FanInOut, NormalOrUniform};
use candle_nn::{Init, VarBuilder, VarMap};

use crate::rng::SeededRng;
use crate::{Error, Result};

/// Variables of a model, created on first use with seeded initial values.
#[derive(Clone)]
pub struct ParamStore {
    varmap: VarMap,
    seed: u64,
}

struct SeededBackend {
    varmap: VarMap,
    seed: u64,
}

/// Draws the initial values described by an `Init` hint from a seeded stream.
pub fn init_values(init: Init, shape: &Shape, rng: &mut SeededRng) -> Vec<f64> {
    let n = shape.elem_count();
    match init {
        Init::Const(c) => vec![c; n],
        Init::Randn { mean, stdev } => (0..n).map(|_| mean + stdev * rng.normal()).collect(),
        Init::Uniform { lo, up } => (0..n).map(|_| rng.uniform_range(lo, up)).collect(),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let fan = FanInOut::for_shape(&fan, shape).max(1);
            let std = non_linearity.gain() / (fan as f64).sqrt();
            match dist {
                NormalOrUniform::Normal => (0..n).map(|_| std * rng.normal()).collect(),
                NormalOrUniform::Uniform => {
                    let b = 3f64.sqrt() * std;
                    (0..n).map(|_| rng.uniform_range(-b, b)).collect()
                }
            }
        }
    }
}

impl candle_nn::var_builder::SimpleBackend for SeededBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self
            .varmap
            .data()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                candle_core::bail!(
                    "parameter {name}: shape {:?} requested but {:?} stored",
                    s,
                    v.shape()
                );
            }
            return Ok(v.as_tensor().clone());
        }
        let mut rng = SeededRng::for_name(self.seed, name);
        let vals = init_values(h, &s, &mut rng);
        let t = Tensor::from_vec(vals, s, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(dev)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let data = self
            .varmap
            .data()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match data.get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("parameter {name} does not exist"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(name)
    }
}

impl ParamStore {
    /// An empty store whose variables will be initialised from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            varmap: VarMap::new(),
            seed,
        }
    }

    /// The seed of the initialisation streams.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A `VarBuilder` that creates (or returns) variables in this store.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        let backend: Box<dyn candle_nn::var_builder::SimpleBackend> = Box::new(SeededBackend {
            varmap: self.varmap.clone(),
            seed: self.seed,
        });
        VarBuilder::from_backend(backend, dtype, device.clone())
    }

    /// The underlying candle `VarMap`.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// All variables, sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self
            .varmap
            .data()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Variables that an optimiser should update: everything except BatchNorm
    /// running statistics (names ending in `running_mean` / `running_var` /
    /// `num_batches_tracked`), sorted by name.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.named_vars()
            .into_iter()
            .filter(|(n, _)| !is_buffer_name(n))
            .collect()
    }

    /// Variables whose name starts with `prefix` (e.g. `"a.expander."`).
    pub fn vars_with_prefix(&self, prefix: &str) -> Vec<(String, Var)> {
        self.named_vars()
            .into_iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .collect()
    }

    /// Current values of all variables (deep copies: optimizers update variables in place).
    // A copy fails only when the device cannot allocate; not a data path.
    #[allow(clippy::expect_used)]
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().copy().expect("copy")))
            .collect()
    }

    /// Sets variables from a map of tensors. Every variable of the store must
    /// be present (unless `allow_missing`), shapes must agree, and names that
    /// match no variable are reported as unexpected.
    pub fn load_tensors(
        &self,
        tensors: &HashMap<String, Tensor>,
        allow_missing: bool,
        source: &Path,
    ) -> Result<()> {
        let vars = self.named_vars();
        let mut missing = Vec::new();
        let mut bad_shape = Vec::new();
        for (name, var) in &vars {
            match tensors.get(name) {
                None => missing.push(name.clone()),
                Some(t) if t.shape() != var.shape() => bad_shape.push(format!(
                    "{name}: file {:?}, model {:?}",
                    t.dims(),
                    var.dims()
                )),
                Some(_) => {}
            }
        }
        let known: std::collections::HashSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
        let mut unexpected: Vec<&String> = tensors
            .keys()
            .filter(|k| !known.contains(k.as_str()))
            .collect();
        unexpected.sort();
        if (!missing.is_empty() && !allow_missing)
            || !bad_shape.is_empty()
            || !unexpected.is_empty()
        {
            let mut msg = String::from("weights do not fit the model");
            if !missing.is_empty() && !allow_missing {
                msg += &format!(
                    "; missing {} tensors: {}",
                    missing.len(),
                    summarize(&missing)
                );
            }
            if !bad_shape.is_empty() {
                msg += &format!("; wrong shape: {}", summarize(&bad_shape));
            }
            if !unexpected.is_empty() {
                let u: Vec<String> = unexpected.into_iter().cloned().collect();
                msg += &format!("; unexpected {} tensors: {}", u.len(), summarize(&u));
            }
            return Err(Error::bad_file(source, msg));
        }
        for (name, var) in &vars {
            if let Some(t) = tensors.get(name) {
                let t = t.to_dtype(var.dtype())?.to_device(var.device())?;
                var.set(&t)?;
            }
        }
        Ok(())
    }

    /// Saves every variable to a safetensors file (atomically: temp file, fsync, rename).
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        crate::io::save_safetensors_atomic(&self.tensors(), path)
    }

    /// Loads every variable from a safetensors file written by [`ParamStore::save_safetensors`].
    pub fn load_safetensors(&self, path: &Path) -> Result<()> {
        let tensors = crate::io::load_safetensors(path)?;
        self.load_tensors(&tensors, false, path)
    }

    /// Shares this store's variables under a different seed handle (same variables).
    pub fn share(&self) -> Arc<Self> {
        Arc::new(self.clone())
    }
}

/// True for BatchNorm buffers that no optimiser should touch.
pub fn is_buffer_name(name: &str) -> bool {
    name.ends_with("running_mean")
        || name.ends_with("running_var")
        || name.ends_with("num_batches_tracked")
}

fn summarize(v: &[String]) -> String {
    const MAX: usize = 8;
    if v.len() <= MAX {
        v.join(", ")
    } else {
        format!("{}, ... ({} more)", v[..MAX].join(", "), v.len() - MAX)
    }
}
