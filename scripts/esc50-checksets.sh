#!/usr/bin/env bash
# The esc50-audio real-check-set table (apps/esc50-audio/README.md, "Real check
# sets"): for each set, the laptop recipe (pretrain on folds 1-4), the split
# evaluation with its baselines (random init, log-mel statistics, chance) and
# the supervised reference (the same encoder trained from scratch with the
# labels, same epochs). Build the sets first (docs/real-data.md):
#   python3 scripts/checksets/make_audio.py instruments DATA/instruments80 --per-class 80 --seed 1
#   python3 scripts/checksets/make_audio.py speech DATA/speech80 --per-class 80 --seed 1
# About 10 minutes per set on 2 cores.
# Usage: scripts/esc50-checksets.sh DATA [OUT_DIR] [extra pretrain flags...]
set -euo pipefail
DATA=${1:?usage: scripts/esc50-checksets.sh DATA [OUT_DIR] [extra pretrain flags...]}
OUT=${2:-runs/esc50-checksets}
shift $(( $# >= 2 ? 2 : 1 ))
cargo build --release -p esc50-audio
BIN=target/release/esc50-audio
mkdir -p "$OUT"
for S in instruments80 speech80; do
  [ -d "$DATA/$S" ] || { echo "missing $DATA/$S (see the header)"; exit 1; }
  $BIN pretrain --preset laptop --data-dir "$DATA/$S" --exp-dir "$OUT/$S" --test-fold 5 "$@"
  $BIN eval --exp-dir "$OUT/$S" --protocol split --branch spec | tee "$OUT/$S-eval.txt"
  $BIN supervised --config "$OUT/$S/config.toml" --exp-dir "$OUT/$S-sup" --branch spec \
    --epochs 40 --batch-size 32 | tee "$OUT/$S-sup.txt"
done
