#!/usr/bin/env python3
"""Real-data audio check sets in the ESC-50 layout, built from Debian packages.

Each clip is 5 s, mono, 16-bit, 44.1 kHz (ESC-50's own format) and holds ONE
sound event of 0.4-2 s at a random offset. As in real ESC-50 recordings, about
half the clips are padded with digital silence (exact zeros) after a short
recorded segment (the event plus background noise); the rest carry background
noise for the whole 5 s. Background noise is coloured Gaussian noise at a
random level, so no two clips share it.

Sets (one class per folder of meaning, speakers/instruments split by fold):
  speech       10 spoken command words (yes no up down left right on off stop go),
               espeak-ng voices of many languages and accents speaking English;
               each voice belongs to exactly one fold (test folds hold unheard voices).
  instruments  10 General-MIDI instruments of the FluidR3 soundfont (real sampled
               instruments) playing random 1-4 note phrases; fluidsynth renders them.

  apt-get install -y espeak-ng sox fluidsynth fluid-soundfont-gm
  python3 -m pip install numpy
  python3 scripts/checksets/make_audio.py speech OUT_DIR [--per-class 40] [--seed 0]
  python3 scripts/checksets/make_audio.py instruments OUT_DIR [--per-class 40] [--seed 0]

The output is deterministic for a given seed and package versions.
"""

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import wave

import numpy as np

RATE = 44_100
CLIP_S = 5.0

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]

# espeak-ng voices: English accents plus voices of other languages reading the
# English words with their own phonology (40 speakers = 8 per fold).
VOICES = [
    "en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
    "en-029", "en-us-nyc", "de", "fr", "es", "it", "pt", "nl", "pl", "sv", "ru", "cs",
    "hu", "fi", "da", "nb", "ro", "tr", "el", "hi", "id", "vi", "sw", "af", "ca", "hr",
    "sk", "sl", "lv", "lt", "et", "is", "ga", "cy",
]
VARIANTS = ["m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4"]

# (name, General-MIDI program, lowest note, highest note)
INSTRUMENTS = [
    ("piano", 0, 48, 84),
    ("marimba", 12, 55, 84),
    ("church-organ", 19, 36, 72),
    ("nylon-guitar", 24, 45, 76),
    ("acoustic-bass", 32, 28, 52),
    ("violin", 40, 55, 88),
    ("trumpet", 56, 55, 82),
    ("alto-sax", 65, 49, 77),
    ("flute", 73, 60, 96),
    ("steel-drums", 114, 52, 84),
]


def need(tool, pkg):
    if shutil.which(tool) is None:
        sys.exit(f"{tool} not found (apt-get install -y {pkg})")


def read_wav(path):
    """Mono float32 samples and rate of a PCM wav (any width, any channels)."""
    with wave.open(path, "rb") as w:
        ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        raw = w.readframes(n)
    if width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 4:
        x = np.frombuffer(raw, dtype="<i4").astype(np.float32) / 2147483648.0
    elif width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    else:
        raise ValueError(f"{path}: {8 * width}-bit wav not handled")
    return x.reshape(-1, ch).mean(axis=1), rate


def resample(x, src, dst):
    if src == dst:
        return x
    n = int(round(len(x) * dst / src))
    t = np.arange(n) * (src / dst)
    return np.interp(t, np.arange(len(x)), x).astype(np.float32)


def write_wav(path, x):
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def trim(x, thresh=1e-3):
    idx = np.flatnonzero(np.abs(x) > thresh)
    return x[idx[0]: idx[-1] + 1] if len(idx) else x[:0]


def coloured_noise(n, rng):
    """Gaussian noise with a random spectral tilt (white .. brown-ish), unit RMS."""
    white = rng.standard_normal(n).astype(np.float32)
    spec = np.fft.rfft(white)
    f = np.maximum(np.arange(len(spec)), 1.0)
    spec /= f ** (rng.uniform(0.0, 1.0) / 2.0)
    y = np.fft.irfft(spec, n).astype(np.float32)
    return y / (np.sqrt(np.mean(y * y)) + 1e-12)


def place(event, rng):
    """A 5 s clip holding `event` at a random offset, with background noise and,
    for about half the clips, digital-silence padding after the recorded part."""
    n = int(CLIP_S * RATE)
    event = event[: int(2.0 * RATE)]
    peak = np.max(np.abs(event)) + 1e-9
    event = event / peak * 10 ** (rng.uniform(-20.0, -3.0) / 20.0)
    padded = rng.random() < 0.5
    noise = coloured_noise(n, rng) * 10 ** (rng.uniform(-62.0, -36.0) / 20.0)
    if padded:
        # Recorded segment = event + 0.1-1 s of noise around it, starting at 0 or later.
        seg = len(event) + int(rng.uniform(0.1, 1.0) * RATE)
        seg = min(seg, n)
        start_seg = int(rng.uniform(0.0, 1.0) * (n - seg)) if rng.random() < 0.3 else 0
        x = np.zeros(n, dtype=np.float32)
        x[start_seg: start_seg + seg] = noise[start_seg: start_seg + seg]
        off = start_seg + int(rng.uniform(0.0, 1.0) * (seg - len(event)))
    else:
        x = noise.copy()
        off = int(rng.uniform(0.0, 1.0) * (n - len(event)))
    x[off: off + len(event)] += event
    return x


def speech_events(tmp, per_class, rng):
    need("espeak-ng", "espeak-ng")
    speakers = 5 * max(1, per_class // 5)
    if speakers > len(VOICES) * len(VARIANTS):
        sys.exit("too many clips per class for the available voices")
    out = []
    for s in range(speakers):
        voice = VOICES[s % len(VOICES)] + "+" + VARIANTS[(s * 3 + s // len(VOICES)) % len(VARIANTS)]
        fold = s % 5 + 1
        for c, word in enumerate(WORDS):
            rate = int(rng.integers(120, 220))
            pitch = int(rng.integers(20, 80))
            raw = os.path.join(tmp, "w.wav")
            subprocess.run(
                ["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", raw, word],
                check=True,
            )
            x, r = read_wav(raw)
            x = trim(resample(x, r, RATE))
            out.append((fold, c, word, f"{100 + s}", x))
    return out


def midi_file(path, program, notes, tempo_us=500_000):
    """A format-0 MIDI file: program change, then (pitch, velocity, start_ticks, dur_ticks)."""
    events = []
    for p, v, t0, d in notes:
        events.append((t0, bytes([0x90, p, v])))
        events.append((t0 + d, bytes([0x80, p, 0])))
    events.sort(key=lambda e: e[0])

    def vlq(n):
        b = [n & 0x7F]
        n >>= 7
        while n:
            b.append((n & 0x7F) | 0x80)
            n >>= 7
        return bytes(reversed(b))

    trk = b"\x00\xff\x51\x03" + tempo_us.to_bytes(3, "big") + b"\x00" + bytes([0xC0, program])
    now = 0
    for t, e in events:
        trk += vlq(t - now) + e
        now = t
    trk += vlq(480) + b"\xff\x2f\x00"
    with open(path, "wb") as f:
        f.write(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480))
        f.write(b"MTrk" + struct.pack(">I", len(trk)) + trk)


def instrument_events(tmp, per_class, rng):
    need("fluidsynth", "fluidsynth fluid-soundfont-gm")
    sf2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
    if not os.path.isfile(sf2):
        sys.exit(f"{sf2} not found (apt-get install -y fluid-soundfont-gm)")
    out = []
    for c, (name, program, lo, hi) in enumerate(INSTRUMENTS):
        for k in range(per_class):
            fold = k % 5 + 1
            n_notes = int(rng.integers(1, 5))
            notes, t = [], 0
            for _ in range(n_notes):
                d = int(rng.integers(120, 720))
                notes.append((int(rng.integers(lo, hi + 1)), int(rng.integers(50, 127)), t, d))
                t += d if rng.random() < 0.8 else d // 2
            mid = os.path.join(tmp, "p.mid")
            wav = os.path.join(tmp, "p.wav")
            midi_file(mid, program, notes)
            subprocess.run(
                ["fluidsynth", "-ni", "-q", "-g", "0.8", "-r", str(RATE), "-F", wav, sf2, mid],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            x, r = read_wav(wav)
            x = trim(resample(x, r, RATE), 1e-3)
            out.append((fold, c, name, f"{200 + k}", x))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["speech", "instruments"])
    ap.add_argument("out")
    ap.add_argument("--per-class", type=int, default=40, help="clips per class (multiple of 5)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    os.makedirs(os.path.join(a.out, "audio"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "meta"), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        events = (speech_events if a.kind == "speech" else instrument_events)(tmp, a.per_class, rng)
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for i, (fold, target, cat, src, ev) in enumerate(events):
        if len(ev) == 0:
            sys.exit(f"empty event for {cat} (source {src})")
        name = f"{fold}-{src}-{chr(65 + i % 26)}-{target}.wav"
        write_wav(os.path.join(a.out, "audio", name), place(ev, rng))
        rows.append(f"{name},{fold},{target},{cat},False,{src},{chr(65 + i % 26)}")
    with open(os.path.join(a.out, "meta", "esc50.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    print(f"wrote {len(events)} clips ({a.kind}) to {a.out}")


if __name__ == "__main__":
    main()
