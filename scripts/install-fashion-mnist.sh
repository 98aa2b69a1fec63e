#!/usr/bin/env bash
# Installs Fashion-MNIST (Debian package dataset-fashion-mnist: the IDX files, gzipped) and prints
# the folder `gaze train --data` takes.
set -euo pipefail
DIR=/usr/share/datasets/fashion-mnist
if [ ! -f "$DIR/train-images-idx3-ubyte.gz" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
echo "$DIR"
