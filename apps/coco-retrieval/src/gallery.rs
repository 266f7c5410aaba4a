//! `eval --gallery`: an HTML page of sample retrievals on the test set.

use std::path::{Path, PathBuf};

use anyhow::Result;
use datasets::media::thumbnail_uri;
use vicreg_core::insight::{
    cosine_similarities, top_k, write_gallery, Hit, Item, Media, Row, Section,
};
use vicreg_core::SeededRng;

use crate::evaluate::RetrievalIndex;

/// Results shown per query.
const TOP: usize = 5;
/// Thumbnail side, pixels.
const THUMB: u32 = 140;

/// Writes `<dir>/gallery.html`: for `n` captions drawn with `seed`, the
/// nearest test images; for `n` images, the nearest captions; the right
/// answers (the caption's image, the image's captions) marked. Returns its path.
pub fn write(index: &RetrievalIndex, dir: &Path, n: usize, seed: u64) -> Result<PathBuf> {
    let meta = &index.meta;
    let top = |scores: &[f32]| top_k(scores, TOP, None);
    let thumb =
        |i: usize| -> Result<Media> { Ok(Media::Image(thumbnail_uri(&meta.images[i], THUMB)?)) };
    let name = |i: usize| {
        meta.images[i].file_name().map_or_else(
            || meta.images[i].display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        )
    };
    let mut rng = SeededRng::for_name(seed, "gallery");
    let mut caption_rows = Vec::new();
    let mut picks = rng.permutation(meta.captions.len());
    picks.truncate(n);
    let sims = cosine_similarities(&index.captions, &picks, &index.images)?;
    for (&c, scores) in picks.iter().zip(&sims) {
        let hits = top(scores)
            .into_iter()
            .map(|(i, s)| {
                Ok(Hit {
                    item: Item {
                        text: name(i),
                        media: thumb(i)?,
                    },
                    score: s,
                    correct: meta.caption_image[c] == i,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        caption_rows.push(Row {
            query: Item {
                text: meta.captions[c].clone(),
                media: Media::None,
            },
            hits,
        });
    }
    let mut image_rows = Vec::new();
    let mut picks = rng.permutation(meta.images.len());
    picks.truncate(n);
    let sims = cosine_similarities(&index.images, &picks, &index.captions)?;
    for (&i, scores) in picks.iter().zip(&sims) {
        let hits = top(scores)
            .into_iter()
            .map(|(c, s)| Hit {
                item: Item {
                    text: meta.captions[c].clone(),
                    media: Media::None,
                },
                score: s,
                correct: meta.caption_image[c] == i,
            })
            .collect();
        image_rows.push(Row {
            query: Item {
                text: name(i),
                media: thumb(i)?,
            },
            hits,
        });
    }
    let path = dir.join("gallery.html");
    write_gallery(
        &path,
        "coco-retrieval: sample retrievals on the test set",
        &format!(
            "{} test images, {} captions; the {TOP} nearest by cosine similarity of the embeddings, the right answers in green.",
            meta.images.len(),
            meta.captions.len()
        ),
        &[
            Section {
                title: "caption -> images".into(),
                rows: caption_rows,
            },
            Section {
                title: "image -> captions".into(),
                rows: image_rows,
            },
        ],
    )?;
    Ok(path)
}
