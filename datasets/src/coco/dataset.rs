//! COCO caption datasets implementing [`Dataset`]: image-caption pairs for pretraining
//! (one caption drawn per image per epoch from the sample RNG) and images with all their
//! captions for retrieval evaluation; plus collate functions.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use vicreg_core::SeededRng;

use crate::augment::{ChwImage, ViewTransform};
use crate::coco::captions::CocoCaptions;
use crate::image::datasets::stack_chw;
use crate::image::load_rgb;
use crate::text::{stack_tokenized, TextTokenizer, TokenizedText};
use crate::{Dataset, Error, Result};

/// Turns a caption into what the text branch consumes.
pub trait CaptionEncoder: Send + Sync {
    /// Encoded caption.
    type Out: Send + 'static;
    /// Encodes one caption.
    fn encode_caption(&self, caption: &str) -> Result<Self::Out>;
}

/// Captions as raw text.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawText;

impl CaptionEncoder for RawText {
    type Out = String;
    fn encode_caption(&self, caption: &str) -> Result<String> {
        Ok(caption.to_string())
    }
}

impl CaptionEncoder for TextTokenizer {
    type Out = TokenizedText;
    fn encode_caption(&self, caption: &str) -> Result<TokenizedText> {
        self.encode(caption)
    }
}

/// Image-text pretraining: `Item = (image view, encoded caption)` for image `index`.
/// The caption is drawn uniformly among the image's captions with the FIRST draw of the
/// sample RNG, then the view transform draws its own randomness.
pub struct CocoPretrain<E: CaptionEncoder = RawText> {
    captions: Arc<CocoCaptions>,
    transform: Box<dyn ViewTransform>,
    encoder: E,
}

impl<E: CaptionEncoder> CocoPretrain<E> {
    /// Pairs each image of `captions` (viewed through `transform`) with one caption.
    pub fn new(
        captions: Arc<CocoCaptions>,
        transform: impl ViewTransform + 'static,
        encoder: E,
    ) -> Self {
        Self {
            captions,
            transform: Box::new(transform),
            encoder,
        }
    }

    /// The underlying index.
    pub fn captions(&self) -> &CocoCaptions {
        &self.captions
    }
}

fn entry(c: &CocoCaptions, index: usize) -> Result<&crate::coco::CocoImageEntry> {
    c.entries()
        .get(index)
        .ok_or_else(|| Error::Config(format!("index {index} out of range for {} images", c.len())))
}

impl<E: CaptionEncoder> Dataset for CocoPretrain<E> {
    type Item = (ChwImage, E::Out);

    fn len(&self) -> usize {
        self.captions.len()
    }

    fn get(&self, index: usize, rng: &mut SeededRng) -> Result<Self::Item> {
        let e = entry(&self.captions, index)?;
        let k = rng.below(e.captions.len());
        let img = load_rgb(&e.path)?;
        let view = self.transform.apply(&img, rng)?;
        Ok((view, self.encoder.encode_caption(&e.captions[k])?))
    }

    fn sample_name(&self, index: usize) -> Option<String> {
        Some(
            entry(&self.captions, index)
                .ok()?
                .path
                .display()
                .to_string(),
        )
    }
}

/// Retrieval evaluation: `Item = (image, all captions of the image)`; use a deterministic
/// transform such as [`crate::augment::EvalTransform`].
pub struct CocoEval<E: CaptionEncoder = RawText> {
    captions: Arc<CocoCaptions>,
    transform: Box<dyn ViewTransform>,
    encoder: E,
}

impl<E: CaptionEncoder> CocoEval<E> {
    /// Every image of `captions` through `transform`, with all its captions encoded.
    pub fn new(
        captions: Arc<CocoCaptions>,
        transform: impl ViewTransform + 'static,
        encoder: E,
    ) -> Self {
        Self {
            captions,
            transform: Box::new(transform),
            encoder,
        }
    }

    /// The underlying index.
    pub fn captions(&self) -> &CocoCaptions {
        &self.captions
    }
}

impl<E: CaptionEncoder> Dataset for CocoEval<E> {
    type Item = (ChwImage, Vec<E::Out>);

    fn len(&self) -> usize {
        self.captions.len()
    }

    fn get(&self, index: usize, rng: &mut SeededRng) -> Result<Self::Item> {
        let e = entry(&self.captions, index)?;
        let img = load_rgb(&e.path)?;
        let view = self.transform.apply(&img, rng)?;
        let caps = e
            .captions
            .iter()
            .map(|c| self.encoder.encode_caption(c))
            .collect::<Result<_>>()?;
        Ok((view, caps))
    }

    fn sample_name(&self, index: usize) -> Option<String> {
        Some(
            entry(&self.captions, index)
                .ok()?
                .path
                .display()
                .to_string(),
        )
    }
}

/// Collate for `CocoPretrain<TextTokenizer>`: `(images (B, C, H, W) f32, ids (B, L) u32,
/// mask (B, L) u32)`.
pub fn collate_image_tokens(
    items: Vec<(ChwImage, TokenizedText)>,
    dev: &Device,
) -> Result<(Tensor, Tensor, Tensor)> {
    let images = stack_chw(items.iter().map(|x| &x.0), dev)?;
    let toks: Vec<TokenizedText> = items.into_iter().map(|x| x.1).collect();
    let (ids, mask) = stack_tokenized(&toks, dev)?;
    Ok((images, ids, mask))
}

/// Collate for `CocoEval<TextTokenizer>`: `(images (B, C, H, W), ids (N, L), mask (N, L),
/// owner (N,) u32)` where the N captions are flattened in item order and `owner[j]` is the
/// position in the batch of caption j's image.
pub fn collate_image_all_captions(
    items: Vec<(ChwImage, Vec<TokenizedText>)>,
    dev: &Device,
) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
    let images = stack_chw(items.iter().map(|x| &x.0), dev)?;
    let mut owner = Vec::new();
    let mut toks = Vec::new();
    for (i, (_, caps)) in items.into_iter().enumerate() {
        owner.extend(std::iter::repeat_n(i as u32, caps.len()));
        toks.extend(caps);
    }
    let (ids, mask) = stack_tokenized(&toks, dev)?;
    let n = owner.len();
    Ok((images, ids, mask, Tensor::from_vec(owner, n, dev)?))
}
