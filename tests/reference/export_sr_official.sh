#!/usr/bin/env bash
# Export the pinned official super-resolution sources that the gen_<family>_fixtures.py scripts of
# the SR zoo import (IMDN, A2N, BSRN, VapSR, RCAN, HAN, HAT).
#
#   tests/reference/export_sr_official.sh [GIT_ROOT] [OUT_DIR]
#
# GIT_ROOT (default /work/.mirror, or $GAZE_MIRROR) holds one clone per repository, named
# <owner>+<repo> (see export_official.sh). Files are written exactly as stored at the pinned
# commit to OUT_DIR/<owner>+<repo>/<path> (default /tmp/official, or $OFFICIAL_DIR), plus a
# COMMIT stamp. One line per repository; keep in sync with the fixture scripts' pins.
set -euo pipefail

GIT_ROOT=${1:-${GAZE_MIRROR:-/work/.mirror}}
OUT_DIR=${2:-${OFFICIAL_DIR:-/tmp/official}}

# <owner>+<repo> <commit> <path>...
PINNED=(
  "Zheng222+IMDN 8f158e6a5ac9db6e5857d9159fd4a6c4214da574 model/architecture.py model/block.py"
  "zhoumumu+VapSR 404c584e21ed92b3c9ddc3da8272d366c978148f code/vapsr.py"
  "haoyuc+A2N 210b38cbe721f0283aa5ad20c98373c5822f917a code/model/aan.py code/model/common.py"
  "xiaom233+BSRN 2d63d5239c9fa9810b9c1aea93e98d42ece09efc basicsr/archs/BSRN_arch.py basicsr/archs/Upsamplers.py basicsr/archs/Blocks.py basicsr/archs/rfdnfinalB5_arch.py basicsr/utils/registry.py"
  "XPixelGroup+HAT 1638a9a822581657811867bf670717f8371fc3e5 hat/archs/hat_arch.py"
  "yulunzhang+RCAN f722e5d0e1eff45148bfaefd9bc85c6f0f26ce02 RCAN_TestCode/code/model/rcan.py RCAN_TestCode/code/model/common.py"
  "wwlCape+HAN 0595e23a992531f72c7e5559f8b519182b41cb9e src/model/han.py src/model/common.py"
)

# shellcheck source=export_pinned.sh
source "$(dirname "$0")/export_pinned.sh"
export_pinned
