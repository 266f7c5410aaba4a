"""Writes pillow_cases.json: small random RGB images run through Pillow (13.0)
ops that the Rust augmentations reproduce bit for bit. Only numpy and Pillow
are needed (python3 make_pillow_cases.py > pillow_cases.json)."""
import json

import numpy as np
import PIL
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

rng = np.random.default_rng(2024)
cases = []


def add(op, a, out, **p):
    cases.append(dict(op=op, w=a.shape[1], h=a.shape[0], input=a.ravel().tolist(),
                      ow=out.shape[1], oh=out.shape[0], output=out.ravel().tolist(), **p))


def image(w, h):
    return rng.integers(0, 256, size=(h, w, 3)).astype(np.uint8)


# Resizes chosen to hit both pass orders of Pillow 13 (vertical first iff
# crop_h - out_h > 0 and > 2 * (crop_w - out_w)), up- and downscaling, both filters.
for (cw, ch, ow, oh) in [(21, 8, 14, 1), (20, 16, 19, 3), (6, 18, 15, 7), (16, 9, 5, 4),
                         (7, 5, 19, 13), (18, 17, 9, 17), (12, 14, 12, 5)]:
    for name, f in (("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR)):
        a = image(cw + 3, ch + 2)
        box = (2, 1, 2 + cw, 1 + ch)
        out = np.asarray(Image.fromarray(a).crop(box).resize((ow, oh), f))
        add("resized_crop", a, out, left=2, top=1, width=cw, height=ch, filter=name)
for sigma in (0.3, 1.7, 4.0):
    a = image(13, 9)
    add("gaussian_blur", a, np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(sigma))), sigma=sigma)
for f in (-0.37, 0.21):
    a = image(9, 7)
    img = Image.fromarray(a)
    h, s, v = img.convert("HSV").split()
    nh = np.array(h, dtype=np.uint8)
    with np.errstate(over="ignore"):
        nh += np.array(f * 255).astype(np.uint8)
    out = Image.merge("HSV", (Image.fromarray(nh, "L"), s, v)).convert("RGB")
    add("hue", a, np.asarray(out), factor=f)
for op, E, f in (("brightness", ImageEnhance.Brightness, 0.63), ("contrast", ImageEnhance.Contrast, 1.37),
                 ("saturation", ImageEnhance.Color, 0.55), ("saturation", ImageEnhance.Color, 1.8)):
    a = image(8, 6)
    add(op, a, np.asarray(E(Image.fromarray(a)).enhance(f)), factor=f)
a = image(8, 6)
add("solarize", a, np.asarray(ImageOps.solarize(Image.fromarray(a), 77)), threshold=77)
print(json.dumps(dict(pillow=PIL.__version__, cases=cases), separators=(",", ":")))
