#!/usr/bin/env bash
# Export the pinned official source files that crosscheck_cnn_official.py runs.
#
#   tests/reference/export_official.sh [GIT_ROOT] [OUT_DIR]
#
# GIT_ROOT (default /work/.mirror, or $GAZE_MIRROR) holds one clone per repository, named
# <owner>+<repo>, as a bare git dir (<owner>+<repo>/repo), a work tree (<owner>+<repo>/repo/.git)
# or a plain clone (<owner>+<repo>/.git). To get them elsewhere:
#   git clone https://github.com/<owner>/<repo> GIT_ROOT/<owner>+<repo>
# (the pinned commit must be reachable; `git fetch origin <commit>` if it is not on a branch).
#
# For each repository the files are written, exactly as stored at the pinned commit, to
# OUT_DIR/<owner>+<repo>/<path> (default OUT_DIR /tmp/official), plus OUT_DIR/<owner>+<repo>/COMMIT
# holding the commit hash. crosscheck_cnn_official.py then checks the commit stamp and the
# git blob hash of every file it loads against its own pins.
#
# Keep the commits and paths in sync with PINS / FILES in crosscheck_cnn_official.py.
set -euo pipefail

GIT_ROOT=${1:-${GAZE_MIRROR:-/work/.mirror}}
OUT_DIR=${2:-${OFFICIAL_DIR:-/tmp/official}}

# <owner>+<repo> <commit> <path>...
PINNED=(
  "zhaohengyuan1+PAN 4d045d18592c5771cd3990da88f292812774e538 codes/models/__init__.py codes/models/archs/__init__.py codes/models/archs/PAN_arch.py codes/models/archs/arch_util.py"
  "yulunzhang+RCAN f722e5d0e1eff45148bfaefd9bc85c6f0f26ce02 RCAN_TrainCode/code/model/rcan.py RCAN_TrainCode/code/model/common.py"
  "wwlCape+HAN 0595e23a992531f72c7e5559f8b519182b41cb9e src/model/han.py src/model/common.py"
  "tengshaofeng+ResidualAttentionNetwork-pytorch 88ed90f1b59f4b20e152495d3a5b6a19a4aa4232 Residual-Attention-Network/model/basic_layers.py Residual-Attention-Network/model/attention_module.py Residual-Attention-Network/model/residual_attention_network.py"
  "ozan-oktay+Attention-Gated-Networks eee4881fdc31920efd873773e0b744df8dacbfb6 models/__init__.py models/layers/__init__.py models/layers/grid_attention_layer.py models/networks_other.py"
  "LeeJunHyun+Image_Segmentation 5e9da9395c52b119d55dfc6532c34ac0e88f446e network.py"
  "cfzd+FcaNet aa5fb63505575bb4e4e094613565379c3f6ada33 model/layer.py"
  "landskape-ai+triplet-attention 2cf02fb91196408ac6352f7984a0336aa4f7677a MODELS/triplet_attention.py triplet_attention.py"
  "DeLightCMU+PSA 20e307ad708ae6a39239aa50ffa32e0c36c92894 semantic-segmentation/network/PSA.py"
)

# shellcheck source=export_pinned.sh
source "$(dirname "$0")/export_pinned.sh"
export_pinned
