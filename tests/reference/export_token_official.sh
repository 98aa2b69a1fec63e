#!/usr/bin/env bash
# Export the pinned official sources that crosscheck_token_official.py runs, and build the
# official NATTEN CPU extension.
#
#   tests/reference/export_token_official.sh [GIT_ROOT] [OUT_DIR]
#
# GIT_ROOT (default /work/.mirror, or $GAZE_MIRROR) holds one clone per repository, named
# <owner>+<repo>, as a bare git dir (<owner>+<repo>/repo), a work tree (<owner>+<repo>/repo/.git)
# or a plain clone (<owner>+<repo>/.git). To get them elsewhere:
#   git clone https://github.com/<owner>/<repo> GIT_ROOT/<owner>+<repo>
#
# Files are written exactly as stored at the pinned commit to OUT_DIR/<owner>+<repo>/<path>
# (default OUT_DIR /tmp/official, or $OFFICIAL_DIR), plus OUT_DIR/<owner>+<repo>/COMMIT.
#
# NATTEN: its neighborhood-attention ops are C++/CUDA only (no pure-PyTorch path in any
# release). natten 0.17.5 (tag v0.17.5, the last release with relative position biases) is built
# here from its PyPI sdist, CPU-only (no CUDA_HOME / GPU here), into OUT_DIR/natten-0.17.5, the
# sdist kept in OUT_DIR/natten-sdist (needs torch in $PYTHON, cmake (pip install cmake) and a
# C++ compiler; ~10 minutes on 2 busy cores). torch >= 2.10's headers need C++20 while NATTEN's
# CMakeLists.txt pins -std=c++17: the compiler is a wrapper that turns -std=c++17 into
# -std=c++20 (a build flag, not a source edit). crosscheck_token_official.py checks the sdist's
# sha256 and the git blob hashes of the Python files against the tag. natten 0.14.6 (whose
# module padded small maps) does not compile against current torch; its src/natten/natten2d.py
# is exported from the v0.14.6 tag instead and run on 0.17.5's ops.
#
# Keep the commits and paths in sync with PINS / NATTEN_BUILD in crosscheck_token_official.py.
set -euo pipefail

GIT_ROOT=${1:-${GAZE_MIRROR:-/work/.mirror}}
OUT_DIR=${2:-${OFFICIAL_DIR:-/tmp/official}}
PYTHON=${PYTHON:-/work/venv/bin/python}

# <owner>+<repo> <commit> <path>...
PINNED=(
  "SHI-Labs+Neighborhood-Attention-Transformer d334f5bb0bd73cad05e5aeaf7c14cce3876a9650 classification/nat.py"
  "rayleizhu+BiFormer 1697bbbeafb8680524898f1dcaac10defd0604be models/biformer.py models/_common.py ops/bra_legacy.py"
  "SHI-Labs+NATTEN 3b54c76185904f3cb59a49fff7bc044e4513d106 src/natten/natten2d.py"
)

# shellcheck source=export_pinned.sh
source "$(dirname "$0")/export_pinned.sh"
export_pinned

NATTEN_DIR=$OUT_DIR/natten-0.17.5
SDIST_DIR=$OUT_DIR/natten-sdist
SDIST=$SDIST_DIR/natten-0.17.5.tar.gz
if [ -e "$NATTEN_DIR/natten/__init__.py" ] && ls "$NATTEN_DIR"/natten/libnatten*.so >/dev/null 2>&1; then
  echo "natten 0.17.5 already built in $NATTEN_DIR"
  exit 0
fi
mkdir -p "$SDIST_DIR"
if [ ! -e "$SDIST" ]; then
  # (pip prepares the sdist's metadata, which imports torch: hence no build isolation)
  "$PYTHON" -m pip download --no-build-isolation --no-deps --no-binary :all: natten==0.17.5 -d "$SDIST_DIR"
fi
echo "adb23ad0905ce8e51ceb597df46383bc51bc1e1be54260ce4f85076d103ae3c5  $SDIST" | sha256sum -c -

WRAP=$(mktemp -d)
printf '%s\n' \
  '#!/usr/bin/env bash' \
  '# -std=c++17 (NATTEN CMakeLists.txt) -> -std=c++20 (required by torch >= 2.10 headers)' \
  'args=()' \
  'for a in "$@"; do' \
  '  case "$a" in' \
  '    -std=c++17) args+=("-std=c++20") ;;' \
  '    -std=gnu++17) args+=("-std=gnu++20") ;;' \
  '    *) args+=("$a") ;;' \
  '  esac' \
  'done' \
  'exec /usr/bin/c++ "${args[@]}"' >"$WRAP/c++"
chmod +x "$WRAP/c++"
rm -rf "$NATTEN_DIR"
# --no-build-isolation: build against the torch that will run it.
PATH="$(dirname "$PYTHON"):$PATH" CXX="$WRAP/c++" "$PYTHON" -m pip install --no-build-isolation --no-deps \
  --target "$NATTEN_DIR" "$SDIST"
rm -rf "$WRAP"
echo "built natten 0.17.5 (CPU) -> $NATTEN_DIR"
