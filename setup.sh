#!/usr/bin/env bash
# Sets up .venv/ at the repository root with everything Lucid3D needs (Debian/Ubuntu).
#   bash setup.sh            # system packages (when root or sudo works) + .venv + the project
# Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES="xvfb xauth libgl1 libegl1 libgl1-mesa-dri libegl-mesa0 libxkbcommon-x11-0 \
libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-randr0 libxcb-render-util0 \
libxcb-image0 libdbus-1-3 libfontconfig1 libglib2.0-0"

if command -v apt-get >/dev/null 2>&1; then
  missing=$(for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "installing system packages (Qt/VTK runtime, Xvfb)…"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $APT_PACKAGES >/dev/null
  fi
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: the CPU wheel these machines carry; an unpinned torch pulls CUDA builds
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
echo "ready: .venv/bin/python main.py demo"
