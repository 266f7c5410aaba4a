#!/usr/bin/env bash
# scripts/gpu-check.sh: the GPU check of vicreg-rs. It runs ON a lent GPU machine
# (NVIDIA driver, a CUDA 13 PyTorch, no Rust), over the binaries that
# scripts/gpu-build.sh built beforehand on a machine without a GPU:
#
#   scripts/gpu-build.sh                      # here
#   device tool: run(command="bash scripts/gpu-check.sh", carry=["target-cuda/gpu-carry"],
#                    timeout_s=540)           # there; the summary comes back from $OUT
#
# Steps (each bounded by `timeout`; a failing step is recorded and the next one runs;
# the whole script stops starting new steps after $VICREG_GPU_BUDGET_S, default 420 s):
#  1. unpack the binaries; put the CUDA 13 libraries of the machine's PyTorch
#     (cudart, cublas, cublasLt, curand, nvrtc, nccl) on LD_LIBRARY_PATH; ldd check;
#  2. golden tests on the GPU (VICREG_TEST_DEVICE=cuda:0): VICReg loss vs PyTorch
#     (f32 and f64), ResNet-18 vs torchvision (features, BN statistics, conv1 grad);
#  3. world-of-one NCCL all_reduce / all_gather / broadcast / barrier vs the CPU;
#  4. one ResNet-50 VICReg step (expander 8192-8192-8192, SGD) timed with vicreg-bench
#     and with PyTorch (scripts/torch_gpu_step.py, same shapes) at B=32 S=96 and
#     B=64 S=224.
# Output: $OUT/gpu-summary.txt (the summary) and $OUT/gpu-check.log (every command's
# output). Without $OUT (a dry run elsewhere) both go to ./gpu-check-out/.
# VICREG_TEST_DEVICE overrides the device (e.g. cpu, to try the script's plumbing
# on a machine without a GPU: the binaries then still need libcuda.so.1 to start),
# VICREG_GPU_SHAPES the timed shapes ("B S ITERS;B S ITERS", default "32 96 10;64 224 5").
set -uo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
carry="${VICREG_GPU_CARRY:-$repo/target-cuda/gpu-carry}"
out="${OUT:-$repo/gpu-check-out}"
mkdir -p "$out"
summary="$out/gpu-summary.txt"
log="$out/gpu-check.log"
: >"$summary"
: >"$log"
device="${VICREG_TEST_DEVICE:-cuda:0}"
budget="${VICREG_GPU_BUDGET_S:-420}"
t_start=$(date +%s)
work="$(mktemp -d /tmp/vicreg-gpu.XXXXXX)"
failures=0

note() { echo "$*" | tee -a "$summary" "$log"; }

# step NAME TIMEOUT_S CMD...: runs CMD under `timeout`, its output to the log (and
# to $work/NAME.out), and records PASS/FAIL/TIMEOUT with the seconds it took.
step() {
    local name="$1" limit="$2"
    shift 2
    local elapsed=$(($(date +%s) - t_start))
    if [ "$elapsed" -ge "$budget" ]; then
        note "SKIP    $name (the script's ${budget} s budget is spent)"
        return 1
    fi
    echo "===== $name: $* (limit ${limit} s)" >>"$log"
    local t0 rc
    t0=$(date +%s.%N)
    timeout --kill-after=10 "$limit" "$@" >"$work/$name.out" 2>&1
    rc=$?
    cat "$work/$name.out" >>"$log"
    local secs
    secs=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")
    if [ $rc -eq 0 ]; then
        note "PASS    $name (${secs} s)"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        note "TIMEOUT $name (limit ${limit} s)"
        failures=$((failures + 1))
    else
        note "FAIL    $name (status $rc, ${secs} s): $(grep -v '^\s*$' "$work/$name.out" | tail -n 3 | tr '\n' ' ' | cut -c1-400)"
        failures=$((failures + 1))
    fi
    return $rc
}

# The `median_ms=` value a step printed.
median_of() { sed -n 's/^median_ms=\([0-9.]*\).*/\1/p' "$work/$1.out" 2>/dev/null | tail -n 1; }

note "vicreg-rs GPU check, $(date -u +%FT%TZ), device $device"
if command -v nvidia-smi >/dev/null; then
    note "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 1)"
else
    note "gpu: nvidia-smi not found"
fi
[ -f "$carry/manifest.txt" ] && note "build: $(head -n 2 "$carry/manifest.txt" | tr '\n' ' ')"

# ---- 1. binaries and libraries --------------------------------------------------
if [ ! -f "$carry/bins.tar.xz" ]; then
    note "FAIL    unpack: $carry/bins.tar.xz missing (run scripts/gpu-build.sh, carry target-cuda/gpu-carry)"
    exit 1
fi
bin="$work/bin"
mkdir -p "$bin"
if ! tar -C "$bin" -xJf "$carry/bins.tar.xz" 2>>"$log"; then
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
        "$carry/bins.tar.xz" "$bin" || { note "FAIL    unpack"; exit 1; }
fi
chmod +x "$bin"/*

# Folders holding the CUDA 13 user-space libraries: PyTorch's pip packages first
# (site-packages/nvidia/**/lib), then the system CUDA toolkit.
libdirs="$(python3 - <<'EOF' 2>>"$log"
import glob, os, site, sys
roots = []
try:
    roots += site.getsitepackages()
except AttributeError:
    pass
roots += [p for p in sys.path if p.endswith("-packages")]
roots += ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu"]
want = ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libnvrtc.so.13", "libnccl.so.2"]
found = {}
for name in want:
    for root in roots:
        hits = sorted(glob.glob(os.path.join(root, "nvidia", "**", name), recursive=True)) + sorted(
            glob.glob(os.path.join(root, name))
        )
        if hits:
            found[name] = os.path.dirname(hits[0])
            break
for name in want:
    print(f"# {name}: {found.get(name, 'NOT FOUND')}", file=sys.stderr)
dirs = []
for d in found.values():
    if d not in dirs:
        dirs.append(d)
print(":".join(dirs))
EOF
)"
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -e "$d/libcuda.so.1" ] && libdirs="$libdirs:$d"
done
export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
note "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
missing="$(for b in "$bin"/*; do ldd "$b" 2>&1 | grep 'not found' | sed "s|^|$(basename "$b"): |"; done | sort -u)"
if [ -n "$missing" ]; then
    note "FAIL    ldd: $(echo "$missing" | tr '\n' ';')"
    failures=$((failures + 1))
else
    note "PASS    ldd: every library of the 4 binaries resolves"
fi

# ---- golden data where the test binaries look for it ----------------------------
# The tests find shared/golden relative to the crate folders they were compiled in
# (build root recorded by gpu-build.sh): make those paths resolve here.
build_root="$(cat "$carry/build-root" 2>/dev/null || echo /work/main)"
shared="$(dirname "$build_root")/shared"
if [ ! -f "$shared/golden/loss_reference.json" ]; then
    mkdir -p "$build_root/tests" "$build_root/encoders" "$shared/golden" 2>>"$log"
    for f in "$carry"/golden/*; do ln -sf "$f" "$shared/golden/$(basename "$f")"; done
fi
if [ ! -f "$shared/golden/resnet18_torchvision.safetensors" ]; then
    # Rebuild the golden weights as shared/golden/README.md section 1 describes, and
    # check them on the CPU against the carried features before the Rust test uses them.
    step golden-weights 180 python3 - "$shared/golden" <<'EOF'
import sys, torch, torchvision
from safetensors.torch import load_file, save_file
out = sys.argv[1]
torch.manual_seed(0)
m = torchvision.models.resnet18(weights=None)
m.fc = torch.nn.Identity()
g = torch.Generator().manual_seed(5)
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            c = mod.num_features
            mod.weight.copy_(torch.rand(c, generator=g) + 0.5)
            mod.bias.copy_(torch.randn(c, generator=g) * 0.1)
            mod.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(c, generator=g) + 0.5)
sd = {k: v.contiguous() for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
io = load_file(f"{out}/resnet18_io.safetensors")
m.eval()
err = (m(io["input"]) - io["features_eval"]).abs().max().item()
print(f"rebuilt weights: {len(sd)} tensors, eval features max abs err vs golden {err:.2e}")
if err > 1e-4:
    sys.exit("the rebuilt weights do not reproduce the golden features")
save_file(sd, f"{out}/resnet18_torchvision.safetensors")
EOF
fi

# ---- 2. golden tests on the GPU ------------------------------------------------
export VICREG_TEST_DEVICE="$device"
step loss-golden 180 "$bin/loss_golden" --test-threads=1 --nocapture
step resnet18-golden 240 "$bin/resnet_golden" --test-threads=1 --nocapture
grep -h 'max abs err' "$work/resnet18-golden.out" 2>/dev/null | sed 's/^/        /' | tee -a "$summary" >/dev/null

# ---- 3. NCCL, world of one ------------------------------------------------------
step nccl-world1 180 "$bin/vicreg-core-lib" collective::nccl --test-threads=1 --nocapture
grep -h 'max |gpu - cpu|' "$work/nccl-world1.out" 2>/dev/null | sed 's/^/        /' | tee -a "$summary" >/dev/null
if grep -q 'NCCL GPU test skipped' "$work/nccl-world1.out" 2>/dev/null; then
    note "        (skipped inside: $device is not a CUDA device)"
fi

# ---- 4. ResNet-50 VICReg step: vicreg-bench (candle) vs PyTorch -------------------
torch_dev="$device"
case "$device" in cuda*) ;; *) torch_dev=cpu ;; esac
IFS=';' read -r -a shapes <<<"${VICREG_GPU_SHAPES:-32 96 10;64 224 5}"
for shape in "${shapes[@]}"; do
    # shellcheck disable=SC2086
    set -- $shape
    b=$1 s=$2 n=$3
    tag="resnet50-b$b-s$s"
    step "candle-$tag" 300 "$bin/vicreg-bench" resnet50 --device "$device" --batch "$b" --size "$s" \
        --iters "$n" --warmup 2
    step "torch-$tag" 200 python3 scripts/torch_gpu_step.py resnet50 --device "$torch_dev" \
        --batch "$b" --size "$s" --iters "$n" --warmup 2 --tf32 off
    c="$(median_of "candle-$tag")" t="$(median_of "torch-$tag")"
    if [ -n "$c" ] && [ -n "$t" ]; then
        note "        $tag step: candle ${c} ms, PyTorch (no TF32) ${t} ms, ratio $(python3 -c "print(f'{$c / $t:.2f}')")x"
    fi
    grep -h 'phases_ms\|^\[torch' "$work/candle-$tag.out" "$work/torch-$tag.out" 2>/dev/null |
        cut -c1-600 | sed 's/^/        /' | tee -a "$summary" >/dev/null
done
# shellcheck disable=SC2086
set -- ${shapes[0]}
tag="resnet50-b$1-s$2"
step "torch-$tag-tf32" 200 python3 scripts/torch_gpu_step.py resnet50 --device "$torch_dev" \
    --batch "$1" --size "$2" --iters "$3" --warmup 2 --tf32 default
t="$(median_of "torch-$tag-tf32")"
[ -n "$t" ] && note "        $tag step: PyTorch with its default TF32 convolutions ${t} ms"

note "done in $(($(date +%s) - t_start)) s, $failures failing step(s)"
[ "$failures" -eq 0 ]
