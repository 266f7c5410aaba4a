#!/usr/bin/env bash
# VICReg (multi-crop) vs VICRegL on the built-in data, same command lines but
# --loss: ConvNeXt-atto (10 epochs) and ResNet-18 (the laptop preset, 5 epochs),
# each evaluated with linear-eval, knn-eval and dense-eval. The table is in
# apps/imagenet/README.md ("VICRegL, multi-crop and ConvNeXt"). About 40
# minutes on 2 cores. Usage: scripts/vicregl-builtin.sh [OUT_DIR]
set -euo pipefail
OUT=${1:-runs/vicregl-builtin}
cargo build --release -p imagenet
BIN=target/release/imagenet
DATA=$OUT/data
mkdir -p "$OUT"
$BIN make-data --out "$DATA" --train-per-class 100 --val-per-class 50
for loss in vicreg vicregl; do
  $BIN pretrain --data-dir "$DATA" --exp-dir "$OUT/convnext-$loss" --arch convnext_atto --loss $loss \
    --multi-crop 2x64+2x32 --mlp 512-512-512 --maps-mlp 256-256-256 --batch-size 64 --epochs 10 \
    --optimizer adamw --base-lr 4e-3 --wd 0.05 --warmup-epochs 1 --image-size 64 --num-workers 1
  $BIN pretrain --preset laptop --data-dir "$DATA" --exp-dir "$OUT/resnet18-$loss" --loss $loss \
    --multi-crop 2x64+2x32 --maps-mlp 256-256-256 --epochs 5 --image-size 64 --num-workers 1
done
for run in "$OUT"/convnext-* "$OUT"/resnet18-*; do
  [ -d "$run" ] || continue
  echo "== $run"
  $BIN linear-eval --data-dir "$DATA" --pretrained "$run" --num-workers 1 | grep '^|'
  $BIN knn-eval --data-dir "$DATA" --pretrained "$run" --num-workers 1 --baselines false | grep 'NN top-1'
  $BIN dense-eval --pretrained "$run" --train-scenes 400 --val-scenes 200 | grep '^|'
done
