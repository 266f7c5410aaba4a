#!/usr/bin/env bash
# The README pictures (maps and gallery screenshots) from the built-in data:
# about 30 minutes on 2 cores. Needs a release build and chromium (for the
# screenshots). Usage: scripts/readme-pictures.sh [work dir]; the pictures go
# to docs/img/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -p imagenet -p esc50-audio -p coco-retrieval
B=target/release
P=${1:-runs/readme-pictures}
rm -rf "$P"; mkdir -p "$P" docs/img
export VICREG_CACHE=$P/cache
shot() { chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1150,"$3" --screenshot="$2" "file://$(realpath "$1")" 2>/dev/null; }

$B/imagenet make-data --out $P/img-data
$B/imagenet pretrain --preset laptop --data-dir $P/img-data --exp-dir $P/img-run --epochs 10 --quiet
$B/imagenet knn-eval --data-dir $P/img-data --pretrained $P/img-run --gallery 5 --baselines false
shot $P/img-run/knn_gallery.html docs/img/imagenet-knn-gallery.png 820
cp $P/img-run/val-map.svg docs/img/imagenet-val-map.svg

$B/esc50-audio demo --exp-dir $P/esc-demo --epochs 10 --supervised-epochs 1
$B/esc50-audio embed --exp-dir $P/esc-demo/vicreg --out $P/esc-emb/clips --gallery 5 --branch wave
shot $P/esc-emb/clips-gallery.html docs/img/esc50-clip-gallery.png 700
cp $P/esc-emb/clips-map.svg docs/img/esc50-clips-map.svg

$B/coco-retrieval demo --exp-dir $P/coco-demo
$B/coco-retrieval eval --exp-dir $P/coco-demo --gallery 4 --baselines false
$B/coco-retrieval embed --exp-dir $P/coco-demo --out $P/coco-emb/test
shot $P/coco-demo/gallery.html docs/img/coco-gallery.png 900
cp $P/coco-emb/test-map.svg docs/img/coco-test-map.svg
ls -la docs/img
