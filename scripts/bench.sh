#!/usr/bin/env bash
# Benchmarks: builds the benchmarks for this machine (-march=native) and runs one of them.
#   scripts/bench.sh [casts] [args]   quantize / dequantize / fake_quantize and their roofs
#   scripts/bench.sh gemv [args]      gemv, matmul and the read and FMA roofs
# Extra arguments go to Google Benchmark, e.g. --benchmark_filter='mxfp4' or
# --benchmark_format=json (JSON on stdout, the summary on stderr). The table at the end gives
# every figure as a fraction of the roof measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps

which=casts
if [ $# -gt 0 ] && { [ "$1" = casts ] || [ "$1" = gemv ]; }; then
  which=$1
  shift
fi
build=${BLOCKCAST_BUILD_DIR:-build-bench}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBLOCKCAST_BUILD_TESTS=OFF \
  -DBLOCKCAST_BUILD_EXAMPLES=OFF >/dev/null
if [ "$which" = gemv ]; then
  cmake --build "$build" -j"$(nproc)" --target blockcast_bench_gemv
  exec "$build/bench/blockcast_bench_gemv" "$@"
fi
cmake --build "$build" -j"$(nproc)" --target blockcast_bench
filter='simd|roof'
[ $# -gt 0 ] && filter=''
if [ -n "$filter" ]; then
  exec "$build/bench/blockcast_bench" --benchmark_filter="$filter" --benchmark_min_time=0.5 "$@"
fi
exec "$build/bench/blockcast_bench" "$@"
