//! Which text encoder a run uses (`transformer`, `gru`, or a pretrained
//! BERT-family checkpoint given as `pretrained:<model dir or HF hub id>`), and
//! where a pretrained one's files are.

use std::path::Path;
use std::str::FromStr;

use super::PretrainedFiles;
use crate::{Error, Result};

/// The `--text-encoder` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextEncoderChoice {
    /// A BERT-style pre-LN transformer trained from scratch.
    Transformer,
    /// A VSE++-style GRU trained from scratch.
    Gru,
    /// A pretrained BERT-style checkpoint: a model directory or an HF hub id (offline cache).
    Pretrained(String),
}

impl FromStr for TextEncoderChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "transformer" => return Ok(Self::Transformer),
            "gru" => return Ok(Self::Gru),
            _ => {}
        }
        match t.strip_prefix("pretrained:") {
            Some(rest) if !rest.trim().is_empty() => Ok(Self::Pretrained(rest.trim().to_string())),
            _ => Err(Error::Config(format!("unknown text encoder {s:?}: expected transformer, gru or pretrained:<model dir or HF hub id>"))),
        }
    }
}

/// The files of a pretrained text model: `spec` is a directory holding
/// `config.json`, `tokenizer.json` and `model.safetensors`, or a hub id
/// looked up (offline) in the HF cache.
pub fn pretrained_files(spec: &str) -> Result<PretrainedFiles> {
    let p = Path::new(spec);
    if p.is_dir() {
        return PretrainedFiles::from_dir(p)
            .map_err(|e| Error::Config(format!("pretrained text model {spec}: {e}")));
    }
    if p.is_absolute() || spec.starts_with('.') || spec.split('/').count() > 2 {
        return Err(Error::Config(format!("pretrained text model {spec}: no such directory (give a directory with config.json, tokenizer.json and model.safetensors, or an HF hub id such as sentence-transformers/all-MiniLM-L6-v2)")));
    }
    PretrainedFiles::from_hf_cache(None, spec).map_err(|e| {
        Error::Config(format!("pretrained text model {spec}: not a directory, and not in the HF hub cache (fetch e.g. with `bash .ci/fetch-minilm.sh` and pass the directory): {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(
            "Transformer".parse::<TextEncoderChoice>().unwrap(),
            TextEncoderChoice::Transformer
        );
        assert_eq!(
            " gru ".parse::<TextEncoderChoice>().unwrap(),
            TextEncoderChoice::Gru
        );
        assert_eq!(
            "pretrained: some/model"
                .parse::<TextEncoderChoice>()
                .unwrap(),
            TextEncoderChoice::Pretrained("some/model".into())
        );
        for bad in ["lstm", "pretrained:", "pretrained:  "] {
            let e = bad.parse::<TextEncoderChoice>().unwrap_err().to_string();
            assert!(
                e.contains("expected transformer, gru or pretrained:"),
                "{e}"
            );
        }
        let e = pretrained_files("/no/such/model/dir")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/no/such/model/dir") && e.contains("no such directory"),
            "{e}"
        );
    }
}
