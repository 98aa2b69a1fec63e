#!/usr/bin/env bash
# Fuzz gaze's checkpoint readers (PyTorch legacy and zip pickles, safetensors, ONNX with external
# data) for a fixed budget: SECONDS per format (default 60), a fresh seed each run (or SEED).
# A panic fails the run and keeps the input under OUT_DIR; an abort or an allocation above 1 GiB
# ends the process with the input's name printed. The harness is tests/fuzz/main.rs.
#
#   scripts/fuzz-checkpoints.sh [SECONDS] [SEED] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
SEED=${2:-$(date +%s)}
OUT_DIR=${3:-${TMPDIR:-/tmp}/gaze-fuzz}
mkdir -p "$OUT_DIR"
echo "fuzzing every format for ${SECONDS_PER_TARGET} s, seed $SEED, failing inputs kept in $OUT_DIR"
# A hard cap on the address space as a second guard against unbounded allocations.
ulimit -v $((8 * 1024 * 1024))
GAZE_FUZZ_SECONDS=$SECONDS_PER_TARGET GAZE_FUZZ_SEED=$SEED GAZE_FUZZ_OUT=$OUT_DIR \
  cargo test --release --test fuzz -- --nocapture mutated_checkpoints_never_panic
