#!/usr/bin/env bash
# The demo: installs what it needs, builds the Fashion-MNIST example and runs it: the
# committed CNN quantized to every format with RTN, ED and GPTQ, evaluated on the 10,000 test
# images. Prints the table, writes the chart (docs/fashion_mnist.svg) and a calibration file
# for the command-line tool (build-demo/fashion_mnist.calibration.safetensors). Extra arguments go
# to the demo (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps

build=${BLOCKCAST_BUILD_DIR:-build-demo}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBLOCKCAST_BUILD_TESTS=OFF \
  -DBLOCKCAST_BUILD_BENCHMARKS=OFF >/dev/null
echo "== building the demo (about a minute)" >&2
cmake --build "$build" -j"$(nproc)" --target blockcast_fashion_demo >/dev/null
"$build/examples/blockcast_fashion_demo" --svg docs/fashion_mnist.svg \
  --calibration-out "$build/fashion_mnist.calibration.safetensors" "$@"
