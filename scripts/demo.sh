#!/usr/bin/env bash
# The demo: installs what it needs, builds the examples and runs the main one.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps

build=${BLOCKCAST_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target blockcast_format_tour
"$build/examples/blockcast_format_tour" "$@"
