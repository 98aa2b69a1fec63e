#!/usr/bin/env bash
# Builds the HR training set of gaze's embedded super-resolution default from photographs in
# Debian packages with free licences (never a benchmark set):
#   plasma-workspace-wallpapers (GPL-2+), mate-backgrounds (GPL-2+), python3-skimage's sample
#   images (BSD-3-Clause).
# The packages are downloaded (not installed) with `apt-get download` and unpacked in a temporary
# folder. Wallpapers (2560×1600 JPEGs) are reduced ×2 with `gaze degrade` (MATLAB bicubic) so
# that JPEG blocking and softness shrink below a pixel; scikit-image's samples are kept as they
# are. Two images go to val/ for per-epoch validation.
#
# Usage: scripts/fetch-sr-train-images.sh OUT_DIR   (then: gaze train --task sr --data OUT_DIR)
# GAZE names the gaze binary (default: $CARGO_TARGET_DIR/release/gaze or target/release/gaze).
set -euo pipefail
OUT=${1:?usage: $0 OUT_DIR}
GAZE=${GAZE:-${CARGO_TARGET_DIR:-target}/release/gaze}
[ -x "$GAZE" ] || { echo "error: no gaze binary at $GAZE (cargo build --release, or set GAZE)" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && apt-get download -q plasma-workspace-wallpapers mate-backgrounds python3-skimage >/dev/null 2>&1) \
  || { echo "error: apt-get download failed (no Debian mirror?)" >&2; exit 1; }
for deb in "$WORK"/*.deb; do dpkg-deb -x "$deb" "$WORK/root"; done

PLASMA=$WORK/root/usr/share/wallpapers
MATE=$WORK/root/usr/share/backgrounds/mate/nature
SKIMAGE=$WORK/root/usr/lib/python3/dist-packages/skimage/data
mkdir -p "$WORK/wallpapers" "$OUT/train" "$OUT/val"

# The photographs among the wallpapers (the others are drawings or renders).
for name in BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite \
  OneStandsOut Path summer_1am; do
  cp "$PLASMA/$name/contents/images/2560x1600.jpg" "$WORK/wallpapers/plasma_$name.jpg"
done
for name in Aqua Blinds Dune FreshFlower Garden GreenMeadow LadyBird RainDrops Storm TwoWings \
  Wood YellowFlower; do
  cp "$MATE/$name.jpg" "$WORK/wallpapers/mate_$name.jpg"
done
"$GAZE" degrade --scale 2 "$WORK/wallpapers" -o "$WORK/half" 2>/dev/null
for f in "$WORK"/half/*x2.png; do
  base=$(basename "$f" x2.png)
  mv "$f" "$OUT/train/$base.png"
done
for name in astronaut camera brick grass gravel motorcycle_left rocket; do
  ext=png; [ -f "$SKIMAGE/$name.png" ] || ext=jpg
  cp "$SKIMAGE/$name.$ext" "$OUT/train/skimage_$name.$ext"
done
for name in coffee chelsea; do
  cp "$SKIMAGE/$name.png" "$OUT/val/skimage_$name.png"
done
echo "$(ls "$OUT/train" | wc -l) training and $(ls "$OUT/val" | wc -l) validation images in $OUT" >&2
echo "$OUT"
