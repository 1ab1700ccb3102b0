#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds (tests as C++17 and C++20, examples,
# benchmarks, consumer projects) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps

build=${BLOCKCAST_BUILD_DIR:-build}
jobs=$(nproc)
echo "== configure ($build)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
echo "== build"
cmake --build "$build" -j"$jobs"
echo "== test"
ctest --test-dir "$build" --output-on-failure -j"$jobs"
