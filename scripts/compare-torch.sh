#!/usr/bin/env bash
# Side-by-side timings of vicreg-bench (this repo) and the PyTorch reference
# shared/bench/torch_vicreg_bench.py, run alternately (ours, torch, ours,
# torch...) in the same minutes, then a markdown ratio table.
#
#   scripts/compare-torch.sh VENV
#
# VENV: a Python venv with shared/bench/torch-requirements.txt installed
# (python3 -m venv VENV && VENV/bin/pip install -r ../shared/bench/torch-requirements.txt).
# Skips itself (exit 0) when VENV is missing. Never run it in CI: it takes
# minutes and needs the 2.4 GB PyTorch install.
#
# Environment knobs (defaults in brackets):
#   ROUNDS [3]       alternating rounds per workload; each side's figure is the median over rounds
#   THREADS [2]      threads of the model workloads (augment always uses 1, one loader worker)
#   ITERS [10] WARMUP [2]   iterations per run of the loss/resnet workloads (as the script's defaults)
#   R50_ITERS [5]    iterations per resnet50 run (it is slow)
#   AUG_COUNT [64]   JPEGs of the augment workload
#   JPEG_DIR [target/augbench-<AUG_COUNT>]   cached make-jpegs output
#   TORCH_BENCH [../shared/bench/torch_vicreg_bench.py relative to the repo]
#   WORKLOADS ["loss8192 loss2048 resnet18 resnet50 augment audio1d text"]
set -euo pipefail

VENV="${1:-}"
if [[ -z "$VENV" || ! -x "$VENV/bin/python" ]]; then
    echo "compare-torch: skipped: no Python venv at '${VENV}' (usage: scripts/compare-torch.sh VENV; see the header for how to make one)"
    exit 0
fi
PY="$VENV/bin/python"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TORCH_BENCH="${TORCH_BENCH:-$REPO/../shared/bench/torch_vicreg_bench.py}"
if [[ ! -f "$TORCH_BENCH" ]]; then
    echo "compare-torch: skipped: PyTorch reference script not found at $TORCH_BENCH (set TORCH_BENCH)"
    exit 0
fi
if ! "$PY" -c "import torch, torchvision, PIL" 2>/dev/null; then
    echo "compare-torch: skipped: $PY cannot import torch, torchvision and PIL"
    exit 0
fi
ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-2}"
ITERS="${ITERS:-10}"
WARMUP="${WARMUP:-2}"
R50_ITERS="${R50_ITERS:-5}"
AUG_COUNT="${AUG_COUNT:-64}"
JPEG_DIR="${JPEG_DIR:-$REPO/target/augbench-$AUG_COUNT}"
WORKLOADS="${WORKLOADS:-loss8192 loss2048 resnet18 resnet50 augment audio1d text}"

cd "$REPO"
echo "compare-torch: building vicreg-bench (release)..." >&2
cargo build --release -q -p vicreg-bench
BENCH="$REPO/target/release/vicreg-bench"
LOG="$(mktemp -d)"
trap 'rm -rf "$LOG"' EXIT

if [[ ! -f "$JPEG_DIR/.sha256" ]]; then
    echo "compare-torch: writing $AUG_COUNT JPEGs to $JPEG_DIR (make-jpegs, seed 0)..." >&2
    "$PY" "$TORCH_BENCH" make-jpegs --out "$JPEG_DIR" --count "$AUG_COUNT" --seed 0 | tee "$LOG/mk" >&2
    sed -n 's/.*sha256=\([0-9a-f]*\).*/\1/p' "$LOG/mk" > "$JPEG_DIR/.sha256"
fi
WANT_SHA="$(cat "$JPEG_DIR/.sha256")"

slug() { printf '%s' "$1" | tr -c 'A-Za-z0-9._-' '_'; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# run NAME CMD...: runs CMD, records its median_ms and the peak RSS (KiB) of
# the process (getrusage of the child, the same measure for both sides).
run() {
    local name
    name="$(slug "$1")"
    shift
    "$PY" - "$LOG/$name.rss" "$@" > "$LOG/$name.out" 2> "$LOG/$name.err" <<'PYEOF' || {
import resource, subprocess, sys
r = subprocess.run(sys.argv[2:])
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(r.returncode)
PYEOF
        echo "compare-torch: '$*' failed:" >&2
        tail -5 "$LOG/$name.err" >&2
        return 1
    }
    sed -n 's/^median_ms=//p' "$LOG/$name.out" >> "$LOG/$name.ms"
    cat "$LOG/$name.rss" >> "$LOG/$name.rsslist"
    echo >> "$LOG/$name.rsslist"
    cat "$LOG/$name.err" >> "$LOG/$name.allerr"
}


# compare KEY TARGET OURS_ARGS -- TORCH_ARGS
declare -a ROWS=()
compare() {
    local key="$1" target="$2"
    shift 2
    local ours=() torch=()
    while [[ "$1" != "--" ]]; do ours+=("$1"); shift; done
    shift
    torch=("$@")
    echo "compare-torch: $key (${ROUNDS} rounds, load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    for _ in $(seq "$ROUNDS"); do
        run "ours-$key" "$BENCH" "${ours[@]}"
        run "torch-$key" "$PY" "$TORCH_BENCH" "${torch[@]}" -v
    done
    local o t
    o="$(median < "$LOG/$(slug "ours-$key").ms")"
    t="$(median < "$LOG/$(slug "torch-$key").ms")"
    ROWS+=("$(awk -v k="$key" -v o="$o" -v t="$t" -v g="$target" 'BEGIN {
        r = o / t; lim = substr(g, 3) + 0;
        printf "| %s | %.1f | %.1f | %.3f | %s | %s |", k, o, t, r, g, (r <= lim ? "met" : "missed")}')")
}

T=(--threads "$THREADS" --iters "$ITERS" --warmup "$WARMUP")
T50=(--threads "$THREADS" --iters "$R50_ITERS" --warmup 1)
START_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"
for w in $WORKLOADS; do
    case "$w" in
        loss8192) compare "loss B=256 D=8192" "<=0.1" loss --batch 256 --dim 8192 --cov gram "${T[@]}" -- loss --batch 256 --dim 8192 "${T[@]}" ;;
        loss2048) compare "loss B=256 D=2048" "<=0.5" loss --batch 256 --dim 2048 "${T[@]}" -- loss --batch 256 --dim 2048 "${T[@]}" ;;
        resnet18) compare "resnet18 B=32 S=96" "<=1.0" resnet18 --batch 32 --size 96 "${T[@]}" -- resnet18 --batch 32 --size 96 "${T[@]}" ;;
        resnet50) compare "resnet50 B=16 S=96" "<=1.0" resnet50 --batch 16 --size 96 "${T50[@]}" -- resnet50 --batch 16 --size 96 "${T50[@]}" ;;
        augment)
            compare "augment (ms/image, 1 thread)" "<=0.5" augment --images "$JPEG_DIR" --count "$AUG_COUNT" --threads 1 -- augment --images "$JPEG_DIR" --count "$AUG_COUNT" --threads 1
            got="$(sed -n 's/.*sha256=\([0-9a-f]*\).*/\1/p' "$LOG/$(slug "ours-augment (ms/image, 1 thread)").allerr" | head -1)"
            if [[ "$got" != "$WANT_SHA" ]]; then
                echo "compare-torch: WARNING: vicreg-bench read a JPEG set with sha256 $got, make-jpegs wrote $WANT_SHA" >&2
            fi
            ;;
        audio1d) run ours-audio1d "$BENCH" audio1d --batch 8 --seconds 1 --sample-rate 16000 --threads "$THREADS" --iters 3 --warmup 1 ;;
        text) run ours-text "$BENCH" text --batch 32 --tokens 32 "${T[@]}" ;;
        *) echo "compare-torch: unknown workload $w" >&2; exit 2 ;;
    esac
done

echo
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs visible; threads $THREADS (augment 1); load average at start $START_LOAD, at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "vicreg-bench $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?') vs PyTorch $("$PY" -c 'import torch; print(torch.__version__)'); medians over $ROUNDS alternating rounds"
echo
echo "| workload | ours ms | torch ms | ratio | target | |"
echo "|---|---|---|---|---|---|"
for r in "${ROWS[@]}"; do echo "$r"; done
if [[ -f "$LOG/$(slug "ours-resnet18 B=32 S=96").rsslist" ]]; then
    o="$(median < "$LOG/$(slug "ours-resnet18 B=32 S=96").rsslist")"
    t="$(median < "$LOG/$(slug "torch-resnet18 B=32 S=96").rsslist")"
    awk -v o="$o" -v t="$t" 'BEGIN { printf "| resnet18 peak RSS (MiB) | %.0f | %.0f | %.3f | <=1.0 | %s |\n", o/1024, t/1024, o/t, (o <= t ? "met" : "missed") }'
fi
for w in audio1d text; do
    if [[ -f "$LOG/ours-$w.ms" ]]; then
        echo "| $(grep -m1 -o "^\[$w[^]]*" "$LOG/ours-$w.allerr" | tr -d '[') (ours only) | $(median < "$LOG/ours-$w.ms") | - | - | - | |"
    fi
done
echo
echo "Achieved GFLOP/s (ours, last run of each):"
for f in "$LOG"/ours-*.allerr; do grep 'work=' "$f" | tail -1 || true; done
