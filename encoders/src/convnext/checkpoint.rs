//! Reading ConvNeXt weights: official ConvNeXt / VICRegL names as they are,
//! torchvision's `convnext_*` names translated, heads dropped.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;

use super::model::ConvNeXt;
use crate::resnet::read_checkpoint;
use crate::Result;

/// One torchvision name in official naming, `None` for tensors the encoder
/// does not have (the classification head `classifier.2`).
///
/// torchvision: `features.0.{0,1}` stem conv / norm, `features.{2s}.{0,1}`
/// (s = 1..3) downsampling norm / conv, `features.{2s+1}.{j}.block.{0,2,3,5}`
/// dwconv / norm / pwconv1 / pwconv2 and `.layer_scale` of stage `s`'s block
/// `j`, `classifier.0` the final norm.
fn torchvision_name(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix("classifier.0.") {
        return Some(format!("norm.{rest}"));
    }
    if name.starts_with("classifier.") {
        return None;
    }
    let rest = name.strip_prefix("features.")?;
    let (f, rest) = rest.split_once('.')?;
    let f: usize = f.parse().ok()?;
    if f.is_multiple_of(2) {
        // stem or a downsampling layer: same inner indices.
        return Some(format!("downsample_layers.{}.{rest}", f / 2));
    }
    let stage = (f - 1) / 2;
    let (j, rest) = rest.split_once('.')?;
    if rest == "layer_scale" {
        return Some(format!("stages.{stage}.{j}.gamma"));
    }
    let (idx, param) = rest.strip_prefix("block.")?.split_once('.')?;
    let part = match idx {
        "0" => "dwconv",
        "2" => "norm",
        "3" => "pwconv1",
        "5" => "pwconv2",
        _ => return None,
    };
    Some(format!("stages.{stage}.{j}.{part}.{param}"))
}

/// Turns a raw checkpoint into official ConvNeXt names: keeps only the
/// backbone of a training checkpoint (`module.backbone.` / `backbone.`,
/// else strips `module.`), translates torchvision names (`features.*`,
/// `classifier.0`; its `layer_scale (C, 1, 1)` becomes `gamma (C)`), and
/// drops classification heads (`head.*`, `classifier.2.*`, `fc.*`).
pub fn convnext_state_dict(raw: HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    let raw = crate::weights::backbone_state_dict(raw);
    let torchvision = raw.keys().any(|k| k.starts_with("features."));
    let mut out = HashMap::with_capacity(raw.len());
    for (key, t) in raw {
        if key.starts_with("head.") || key.starts_with("fc.") {
            continue;
        }
        if torchvision && (key.starts_with("features.") || key.starts_with("classifier.")) {
            let Some(name) = torchvision_name(&key) else {
                continue;
            };
            let t = if name.ends_with(".gamma") {
                t.flatten_all()?
            } else {
                t
            };
            out.insert(name, t);
        } else {
            out.insert(key, t);
        }
    }
    Ok(out)
}

impl ConvNeXt {
    /// Sets every tensor from `tensors` (official names, see
    /// [`ConvNeXt::named_tensors`]). All-or-nothing: any missing, misshapen
    /// or unexpected tensor leaves the network unchanged and the error
    /// (naming `source`) lists them. The network must have been built from a
    /// [`vicreg_core::ParamStore`].
    pub fn load_state_dict(&self, tensors: &HashMap<String, Tensor>, source: &Path) -> Result<()> {
        crate::weights::load_named(
            &self.config().name(),
            &self.named_tensors(),
            tensors,
            source,
            "downsample_layers.0.0.weight",
        )
    }

    /// Loads weights from a safetensors or `.pth` file (official ConvNeXt,
    /// VICRegL or torchvision checkpoints): [`read_checkpoint`], then
    /// [`convnext_state_dict`], then [`ConvNeXt::load_state_dict`].
    /// torchvision's ConvNeXts have layer scale: build the network with
    /// `layer_scale_init_value > 0` to load them. torchvision applies the
    /// final norm after pooling, this encoder (as VICRegL) before: the
    /// pooled features differ slightly from torchvision's.
    pub fn load_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let raw = read_checkpoint(path)?;
        self.load_state_dict(&convnext_state_dict(raw)?, path)
    }

    /// A snapshot (deep copy) of every tensor under its official name.
    pub fn state_dict(&self) -> Result<HashMap<String, Tensor>> {
        crate::weights::snapshot(self.named_tensors())
    }

    /// Saves [`ConvNeXt::state_dict`] as safetensors (atomically).
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::weights::save_snapshot(self.named_tensors(), path.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::torchvision_name;

    #[test]
    fn torchvision_names_translate() {
        let cases = [
            ("features.0.0.weight", Some("downsample_layers.0.0.weight")),
            ("features.0.1.bias", Some("downsample_layers.0.1.bias")),
            ("features.2.0.weight", Some("downsample_layers.1.0.weight")),
            ("features.6.1.bias", Some("downsample_layers.3.1.bias")),
            (
                "features.1.0.block.0.weight",
                Some("stages.0.0.dwconv.weight"),
            ),
            ("features.5.8.block.2.bias", Some("stages.2.8.norm.bias")),
            (
                "features.3.1.block.3.weight",
                Some("stages.1.1.pwconv1.weight"),
            ),
            ("features.7.2.block.5.bias", Some("stages.3.2.pwconv2.bias")),
            ("features.7.2.layer_scale", Some("stages.3.2.gamma")),
            ("classifier.0.weight", Some("norm.weight")),
            ("classifier.2.weight", None),
        ];
        for (tv, official) in cases {
            assert_eq!(torchvision_name(tv).as_deref(), official, "{tv}");
        }
    }
}
