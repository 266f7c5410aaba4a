#!/usr/bin/env bash
# scripts/gpu-build.sh: builds, HERE (no GPU needed), everything scripts/gpu-check.sh
# runs on a lent GPU machine, which has the NVIDIA driver, nvcc and a CUDA 13 PyTorch
# but no Rust toolchain and no registry access.
#
#   scripts/gpu-build.sh            # ~15 min cold on 2 cores, a minute or two warm
#   then, through the device tool:  run(command="bash scripts/gpu-check.sh",
#                                       carry=["target-cuda/gpu-carry"], timeout_s=540)
#
# Output: target-cuda/gpu-carry/ (ignored by git, < 64 MiB so that it can be carried):
#   bins.tar.xz     stripped CUDA builds (compute capability $CUDA_COMPUTE_CAP, default 90):
#                   loss_golden, resnet_golden (the golden tests, which honour
#                   VICREG_TEST_DEVICE), vicreg-core-lib (its unit tests, with the
#                   world-of-one NCCL check), vicreg-bench (resnet50 --device cuda:0)
#   golden/         loss_reference.json, resnet18_io.safetensors and, when it fits,
#                   resnet18_torchvision.safetensors (else gpu-check.sh rebuilds those
#                   weights with the machine's torchvision and checks them first)
#   manifest.txt    what was built, from which commit, and the sizes
#   build-root      this checkout's path (the tests find shared/golden relative to it)
# Environment: scripts/cuda-env.sh (CUDA 13.0 wheels in a venv, target-cuda/).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
# shellcheck source=scripts/cuda-env.sh
source scripts/cuda-env.sh
[ -n "${VICREG_CUDA_LINKS:-}" ] || { echo "gpu-build: scripts/cuda-env.sh failed" >&2; exit 1; }

dest="$CARGO_TARGET_DIR/gpu-carry"
golden_src="${VICREG_GOLDEN_DIR:-$repo/../shared/golden}"
limit=$((62 * 1024 * 1024)) # the device tool carries 64 MiB with the working tree
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
start=$(date +%s)

# The executables a cargo invocation produced, one path per line.
executables() {
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])
'
}

# One feature set for every build (vicreg-core with nccl, encoders with cuda), so
# that candle, cudarc and the kernels are compiled once.
build() { # NAME CARGO-ARGS...: builds and stages the single executable as NAME
    local name="$1"
    shift
    echo "gpu-build: cargo $*" >&2
    local exe
    exe="$(cargo "$@" --release --message-format=json | executables | tail -n 1)"
    [ -n "$exe" ] && [ -x "$exe" ] || { echo "gpu-build: no executable from cargo $*" >&2; exit 1; }
    strip -o "$stage/$name" "$exe"
    echo "gpu-build: $name <- $exe ($(du -h "$stage/$name" | cut -f1) stripped)" >&2
}

build loss_golden test --no-run -p vicreg-tests --test loss_golden \
    --features vicreg-core/nccl,encoders/cuda
build resnet_golden test --no-run -p encoders --test resnet_golden \
    --features cuda,vicreg-core/nccl
build vicreg-core-lib test --no-run -p vicreg-core --lib --features nccl
build vicreg-bench build -p vicreg-bench --bin vicreg-bench \
    --features cuda,vicreg-core/nccl,encoders/cuda

rm -rf "$dest"
mkdir -p "$dest/golden"
# One xz stream with a 64 MiB dictionary (-9, one thread): the four binaries share
# the same ~33 MB of CUDA kernel images, which then compress once.
tar -C "$stage" -cf - loss_golden resnet_golden vicreg-core-lib vicreg-bench |
    xz -T1 -9 >"$dest/bins.tar.xz"
# The test binaries look for ../shared/golden from their crate folders under this root.
echo "$repo" >"$dest/build-root"
for f in loss_reference.json resnet18_io.safetensors; do
    cp "$golden_src/$f" "$dest/golden/"
done
used=$(du -sb "$dest" | cut -f1)
weights="$golden_src/resnet18_torchvision.safetensors"
if [ $((used + $(stat -c %s "$weights"))) -le $limit ]; then
    cp "$weights" "$dest/golden/"
    weights_note="carried"
else
    weights_note="not carried (too big together): gpu-check.sh rebuilds them with torchvision"
fi
{
    echo "built $(date -u +%FT%TZ) from $(git rev-parse --short HEAD)$(git diff --quiet || echo '+uncommitted changes')"
    echo "CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP CUDARC_CUDA_VERSION=$CUDARC_CUDA_VERSION nvcc: $(nvcc --version | tail -n 1)"
    echo "resnet18 weights: $weights_note"
    echo "build seconds: $(($(date +%s) - start))"
    (cd "$stage" && ls -l loss_golden resnet_golden vicreg-core-lib vicreg-bench)
    (cd "$dest" && du -ab .)
} >"$dest/manifest.txt"
cat "$dest/manifest.txt"
total=$(du -sb "$dest" | cut -f1)
if [ "$total" -gt "$limit" ]; then
    echo "gpu-build: $dest is $total bytes, over the $limit the device tool can carry" >&2
    exit 1
fi
echo "gpu-build: ready to carry: $dest ($total bytes)"
