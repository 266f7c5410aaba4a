#!/usr/bin/env python3
"""Real-data image check sets, built from registry packages.

  emoji     ImageFolder of the emoji artwork of several vendors (npm packages
            emoji-datasource-<vendor>: 64 px RGBA PNGs), one class per emoji
            category (9: Smileys & Emotion, People & Body, Animals & Nature, Food &
            Drink, Travel & Places, Activities, Objects, Symbols, Flags). Split by
            emoji, not by file: every vendor's drawing of a val emoji is in val, so
            val holds only emoji never seen in training.
  captions  The same artwork as an image-text set in COCO format with a flat
            images/ folder: annotations/captions_{train,test}.json, each image
            captioned with the emoji's name and its short names
            ("grinning face with smiling eyes", "smile"); test = 400 emoji of one
            vendor never seen in training.
  fashion   Fashion-MNIST (Debian dataset-fashion-mnist, IDX .gz) as a grayscale
            28 px PNG ImageFolder subset (--train-per-class / --val-per-class).

  npm pack needs the npm registry (tarballs are cached in --cache);
  apt-get install -y dataset-fashion-mnist       # for `fashion`
  python3 -m pip install numpy
  python3 scripts/checksets/make_images.py emoji OUT [--vendors google,twitter]
  python3 scripts/checksets/make_images.py captions OUT [--vendors google,twitter]
  python3 scripts/checksets/make_images.py fashion OUT [--train-per-class 300 --val-per-class 100]

Deterministic for a given seed and package versions.
"""

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zlib
import struct

import numpy as np

EMOJI_VERSION = "16.0.0"


def emoji_package(vendor, cache):
    """Unpacks emoji-datasource-<vendor> into cache and returns its package folder."""
    os.makedirs(cache, exist_ok=True)
    tgz = os.path.join(cache, f"emoji-datasource-{vendor}-{EMOJI_VERSION}.tgz")
    if not os.path.isfile(tgz):
        if shutil.which("npm") is None:
            sys.exit("npm not found (apt-get install -y npm)")
        subprocess.run(["npm", "pack", f"emoji-datasource-{vendor}@{EMOJI_VERSION}"], cwd=cache,
                       check=True, stdout=subprocess.DEVNULL)
    out = os.path.join(cache, vendor)
    if not os.path.isdir(os.path.join(out, "package")):
        with tarfile.open(tgz) as t:
            t.extractall(out, filter="data")
    return os.path.join(out, "package")


def emoji_entries(pkgs):
    """(unified, category, name, short_names) of the emoji every vendor draws."""
    meta = json.load(open(os.path.join(next(iter(pkgs.values())), "emoji.json")))
    out = []
    for e in meta:
        if e["category"] == "Component":
            continue
        if all(e.get(f"has_img_{v}") for v in pkgs):
            out.append((e["image"], e["category"], e["name"], e["short_names"]))
    return out


def held_out(key, frac, seed):
    h = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < frac


def class_dir(cat):
    return cat.lower().replace(" & ", "-and-").replace(" ", "-")


def make_emoji(a):
    vendors = a.vendors.split(",")
    pkgs = {v: emoji_package(v, a.cache) for v in vendors}
    n = 0
    for img, cat, _, _ in emoji_entries(pkgs):
        split = "val" if held_out(img, a.val_frac, a.seed) else "train"
        d = os.path.join(a.out, split, class_dir(cat))
        os.makedirs(d, exist_ok=True)
        for v, p in pkgs.items():
            shutil.copyfile(os.path.join(p, "img", v, "64", img), os.path.join(d, f"{v}-{img}"))
            n += 1
    print(f"wrote {n} images ({', '.join(vendors)}) to {a.out}")


def caption_set(name, short_names):
    caps = [name.lower().replace("_", " ")]
    for s in short_names:
        c = s.replace("_", " ").replace("-", " ")
        if c not in caps:
            caps.append(c)
    return caps


def make_captions(a):
    vendors = a.vendors.split(",")
    pkgs = {v: emoji_package(v, a.cache) for v in vendors}
    entries = emoji_entries(pkgs)
    rng = np.random.default_rng(a.seed)
    order = rng.permutation(len(entries))
    test_ids = set(order[: a.test_images].tolist())
    os.makedirs(os.path.join(a.out, "images"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "annotations"), exist_ok=True)
    sets = {"train": {"images": [], "annotations": []}, "test": {"images": [], "annotations": []}}
    image_id = ann_id = 0
    for i, (img, _, name, shorts) in enumerate(entries):
        split = "test" if i in test_ids else "train"
        # Test: one drawing (the first vendor) per emoji, as COCO has one image per scene.
        use = vendors[:1] if split == "test" else vendors
        for v in use:
            fname = f"{v}-{img}"
            shutil.copyfile(os.path.join(pkgs[v], "img", v, "64", img), os.path.join(a.out, "images", fname))
            image_id += 1
            sets[split]["images"].append({"id": image_id, "file_name": fname, "width": 64, "height": 64})
            for c in caption_set(name, shorts):
                ann_id += 1
                sets[split]["annotations"].append({"id": ann_id, "image_id": image_id, "caption": c})
    for split, s in sets.items():
        with open(os.path.join(a.out, "annotations", f"captions_{split}.json"), "w") as f:
            json.dump(s, f)
    print(f"wrote {len(sets['train']['images'])} train / {len(sets['test']['images'])} test images to {a.out}")


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4: 4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def gray_png(path, img):
    h, w = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


FASHION = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def make_fashion(a):
    src = a.fashion_dir
    rng = np.random.default_rng(a.seed)
    for split, prefix, per in [("train", "train", a.train_per_class), ("val", "t10k", a.val_per_class)]:
        x = read_idx(os.path.join(src, f"{prefix}-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(src, f"{prefix}-labels-idx1-ubyte.gz"))
        for c, name in enumerate(FASHION):
            idx = np.flatnonzero(y == c)
            pick = rng.choice(idx, size=min(per, len(idx)), replace=False)
            d = os.path.join(a.out, split, name)
            os.makedirs(d, exist_ok=True)
            for i in sorted(pick):
                gray_png(os.path.join(d, f"{prefix}-{i:05d}.png"), x[i])
    print(f"wrote Fashion-MNIST {a.train_per_class}/{a.val_per_class} per class to {a.out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["emoji", "captions", "fashion"])
    ap.add_argument("out")
    ap.add_argument("--vendors", default="google,twitter")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/vicreg-checksets"))
    ap.add_argument("--val-frac", type=float, default=0.25)
    ap.add_argument("--test-images", type=int, default=400)
    ap.add_argument("--fashion-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--train-per-class", type=int, default=300)
    ap.add_argument("--val-per-class", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    {"emoji": make_emoji, "captions": make_captions, "fashion": make_fashion}[a.kind](a)


if __name__ == "__main__":
    main()
