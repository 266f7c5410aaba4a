#!/usr/bin/env bash
# Spoken digits "zero".."nine" synthesized with espeak-ng, written in the ESC-50
# layout (meta/esc50.csv + audio/*.wav, 1 s, 16 kHz, mono, 16-bit) for
# `esc50-audio`. Speakers are espeak-ng voice + variant pairs; each speaker
# belongs to exactly one fold, so every test fold holds unseen voices.
#
#   apt-get install -y espeak-ng sox
#   apps/esc50-audio/scripts/make-spoken-digits.sh OUT_DIR [SPEAKERS_PER_FOLD (default 8)]
#
# Each speaker says every digit once, at a random rate (130-210 wpm) and pitch
# (25-75), seeded by the speaker index (the set is reproducible).
set -euo pipefail
out=${1:?usage: make-spoken-digits.sh OUT_DIR [SPEAKERS_PER_FOLD]}
per_fold=${2:-8}
command -v espeak-ng >/dev/null || { echo "espeak-ng not found (apt-get install -y espeak-ng sox)" >&2; exit 1; }
command -v sox >/dev/null || { echo "sox not found (apt-get install -y espeak-ng sox)" >&2; exit 1; }
voices=(en en-us en-gb-scotland en-gb-x-rp en-gb-x-gbclan en-gb-x-gbcwmd en-029)
variants=(m1 m2 m3 m4 m5 m6 m7 f1 f2 f3 f4 f5)
words=(zero one two three four five six seven eight nine)
n_speakers=$((5 * per_fold))
if (( n_speakers > ${#voices[@]} * ${#variants[@]} )); then
  echo "at most $(( ${#voices[@]} * ${#variants[@]} / 5 )) speakers per fold" >&2; exit 1
fi
mkdir -p "$out/meta" "$out/audio"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
csv="$out/meta/esc50.csv"
echo "filename,fold,target,category,esc10,src_file,take" > "$csv.tmp"
for ((s = 0; s < n_speakers; s++)); do
  # Spread voices and variants: speaker s uses voice s mod 7 and variant s mod 12.
  voice=${voices[$((s % ${#voices[@]}))]}+${variants[$((s % ${#variants[@]}))]}
  fold=$((s % 5 + 1))
  RANDOM=$((1000 + s))
  for ((d = 0; d < 10; d++)); do
    rate=$((130 + RANDOM % 81)); pitch=$((25 + RANDOM % 51))
    name="$fold-$((100 + s))-A-$d.wav"
    espeak-ng -v "$voice" -s "$rate" -p "$pitch" -w "$tmp/raw.wav" "${words[$d]}"
    # 16 kHz mono, leading silence trimmed, then padded / cut to exactly 1 s.
    sox -V1 "$tmp/raw.wav" -r 16000 -c 1 -b 16 "$out/audio/$name" silence 1 0.01 0.5% pad 0.1 pad 0 1 trim 0 1
    echo "$name,$fold,$d,${words[$d]},False,$((100 + s)),A" >> "$csv.tmp"
  done
done
mv "$csv.tmp" "$csv"
echo "wrote $((n_speakers * 10)) clips ($n_speakers speakers, $per_fold per fold) to $out"
