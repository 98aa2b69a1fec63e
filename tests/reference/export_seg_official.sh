#!/usr/bin/env bash
# Export the pinned official segmentation sources that gen_swin_unet_fixtures.py runs
# (Swin-UNet and Att-SwinU-Net).
#
#   tests/reference/export_seg_official.sh [GIT_ROOT] [OUT_DIR]
#
# GIT_ROOT (default /work/.mirror, or $GAZE_MIRROR) holds one clone per repository, named
# <owner>+<repo> (see export_official.sh). Files are written exactly as stored at the pinned
# commit to OUT_DIR/<owner>+<repo>/<path> (default /tmp/official, or $OFFICIAL_DIR), plus a
# COMMIT stamp. Keep in sync with PINS / FILES in gen_swin_unet_fixtures.py.
set -euo pipefail

GIT_ROOT=${1:-${GAZE_MIRROR:-/work/.mirror}}
OUT_DIR=${2:-${OFFICIAL_DIR:-/tmp/official}}

# <owner>+<repo> <commit> <path>...
PINNED=(
  "HuCaoFighting+Swin-Unet f48f623e226e25b6e395c37207915c50aaa9c776 networks/swin_transformer_unet_skip_expand_decoder_sys.py networks/vision_transformer.py"
  "NITR098+AttSwinUNet 4b14f377066acea7ad255d9a8bb022245c3ff34d model/__init__.py model/attention.py model/attention_swin_unet.py model/decoder.py model/embedding.py model/encoder.py model/partitioning.py model/swin_block.py model/skipconnection/crossvit.py"
)

# shellcheck source=export_pinned.sh
source "$(dirname "$0")/export_pinned.sh"
export_pinned
