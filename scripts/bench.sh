#!/usr/bin/env bash
# Benchmarks: builds blockcast_bench for this machine (-march=native) and runs it. Extra
# arguments go to Google Benchmark, e.g. --benchmark_filter='mxfp4' or
# --benchmark_out=bench.json --benchmark_out_format=json. The table at the end gives every
# SIMD figure as a fraction of the bandwidth roof measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps

build=${BLOCKCAST_BUILD_DIR:-build-bench}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBLOCKCAST_BUILD_TESTS=OFF \
  -DBLOCKCAST_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target blockcast_bench
filter='simd|roof'
[ $# -gt 0 ] && filter=''
if [ -n "$filter" ]; then
  exec "$build/bench/blockcast_bench" --benchmark_filter="$filter" --benchmark_min_time=0.5 "$@"
fi
exec "$build/bench/blockcast_bench" "$@"
