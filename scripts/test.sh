#!/usr/bin/env bash
# Builds layerwire and runs every test: installs missing Debian packages, configures,
# builds with all cores, runs ctest. Usage: scripts/test.sh [extra ctest args]
# Environment: BUILD_DIR (default build), LW_ENABLE_CUDA (default OFF here: CI has no GPU
# and the CUDA build is slow; set ON to compile the CUDA backend too).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
lw_install_deps

BUILD_DIR=${BUILD_DIR:-build}
JOBS=$(nproc)
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLW_ENABLE_CUDA="${LW_ENABLE_CUDA:-OFF}"
cmake --build "$BUILD_DIR" -j "$JOBS"
cd "$BUILD_DIR"
ctest --output-on-failure -j "$JOBS" "$@"
