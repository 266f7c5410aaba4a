# shellcheck shell=bash
# scripts/cuda-env.sh: the environment for building vicreg-rs with `--features cuda`
# (or `nccl`) on a machine WITHOUT a CUDA toolkit or GPU, from NVIDIA's pip wheels.
#
#   source scripts/cuda-env.sh
#   cargo build --release -p imagenet --features nccl      # lands in target-cuda/
#
# What it does (idempotent; the first run downloads ~1.5 GB of wheels):
# - a venv ($VICREG_CUDA_VENV, default /work/venv-cuda) with the CUDA 13.0 toolkit
#   wheels, pinned so the PTX matches driver 580 (CUDA 13.0), and NCCL 2.27.7 (the
#   oldest NCCL a CUDA 13 PyTorch ships: linking against it proves that the binary
#   uses no newer NCCL symbol);
# - a link folder ($VENV/cuda-links) with the unversioned .so names the linker wants
#   and a stub libcuda.so (SONAME libcuda.so.1, every cu* entry point returns an
#   error) for LINKING ONLY: at run time the GPU driver's libcuda.so.1 is used;
# - exports PATH (nvcc), CUDA_HOME/CUDA_PATH/CUDA_ROOT/CUDA_TOOLKIT_ROOT_DIR,
#   CUDA_COMPUTE_CAP (default 90 = H100/H200), CUDARC_CUDA_VERSION=13000,
#   RUSTFLAGS="-L native=<link folder>" and CARGO_TARGET_DIR (default
#   <repo>/target-cuda, so the CPU build in target/ is never rebuilt).
# CI never runs this (binaries built here need a driver to start).
# The recipe and its measurements: /work/shared/reference/gpu-notes.md.

_vicreg_cuda_env() {
    local repo venv site cu13 links nccl_lib cudarc stub_c
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    venv="${VICREG_CUDA_VENV:-/work/venv-cuda}"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" || return 1
    fi
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || return 1
    cu13="$site/nvidia/cu13"
    if [ ! -x "$cu13/bin/nvcc" ] || [ ! -e "$site/nvidia/nccl/lib/libnccl.so.2" ]; then
        "$venv/bin/pip" install -q \
            nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
            nvidia-cuda-cccl==13.0.85 nvidia-cuda-runtime==13.0.96 nvidia-cublas==13.0.2.14 \
            nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88 nvidia-nccl-cu13==2.27.7 ||
            return 1
    fi
    nccl_lib="$site/nvidia/nccl/lib"
    links="$venv/cuda-links"
    mkdir -p "$links"
    local name target
    for name in cublas cublasLt curand nvrtc cudart; do
        target="$(ls "$cu13/lib/lib$name.so."* 2>/dev/null | grep -v alt | head -n 1)"
        [ -n "$target" ] || { echo "cuda-env: no lib$name.so.* in $cu13/lib" >&2; return 1; }
        ln -sfn "$target" "$links/lib$name.so"
    done
    ln -sfn "$nccl_lib/libnccl.so.2" "$links/libnccl.so"
    if [ ! -e "$links/libcuda.so" ]; then
        # Every driver entry point cudarc declares, each returning CUDA_ERROR_UNKNOWN (999).
        cudarc="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* 2>/dev/null | tail -n 1)"
        [ -n "$cudarc" ] || { echo "cuda-env: cudarc 0.19 sources not found; run cargo fetch first" >&2; return 1; }
        stub_c="$links/libcuda-stub.c"
        grep -ho 'pub unsafe fn cu[A-Za-z0-9_]*' "$cudarc"/src/driver/sys/*.rs | sed 's/pub unsafe fn //' |
            sort -u | sed 's/.*/int &(void) { return 999; }/' >"$stub_c"
        gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$links/libcuda.so" "$stub_c" || return 1
    fi
    export PATH="$cu13/bin:$PATH"
    export CUDA_HOME="$cu13" CUDA_PATH="$cu13" CUDA_ROOT="$cu13" CUDA_TOOLKIT_ROOT_DIR="$cu13"
    export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
    export CUDARC_CUDA_VERSION=13000
    export RUSTFLAGS="-L native=$links"
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target-cuda}"
    export VICREG_CUDA_LINKS="$links"
}

_vicreg_cuda_env || echo "cuda-env: setup failed (see the messages above)" >&2
unset -f _vicreg_cuda_env
