#!/usr/bin/env bash
# The demo: installs what it needs, builds the two examples and runs them.
#   cnn  the Fashion-MNIST CNN quantized to every format with RTN, ED and GPTQ, evaluated on
#        the 10,000 test images; writes docs/fashion_mnist.svg and a calibration file for the
#        command-line tool (build-demo/fashion_mnist.calibration.safetensors)
#   lm   tiny_lm, a LLaMA-architecture language model: every linear layer of every block
#        quantized with RTN, ED and GPTQ, held-out perplexity; writes docs/tiny_lm.svg
# Usage: scripts/demo.sh [cnn|lm] [args]   (default: both). Args go to the demo named (--help
# lists them); to both, only the options both take: --formats, --methods, --threads.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps

which=both
if [ $# -gt 0 ] && { [ "$1" = cnn ] || [ "$1" = lm ]; }; then
  which=$1
  shift
fi
build=${BLOCKCAST_BUILD_DIR:-build-demo}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBLOCKCAST_BUILD_TESTS=OFF \
  -DBLOCKCAST_BUILD_BENCHMARKS=OFF >/dev/null
echo "== building the demos (about two minutes)" >&2
cmake --build "$build" -j"$(nproc)" --target blockcast_fashion_demo blockcast_tiny_lm >/dev/null
if [ "$which" != lm ]; then
  echo "== a Fashion-MNIST CNN" >&2
  "$build/examples/blockcast_fashion_demo" --svg docs/fashion_mnist.svg \
    --calibration-out "$build/fashion_mnist.calibration.safetensors" "$@"
fi
if [ "$which" != cnn ]; then
  echo "== tiny_lm, a LLaMA-architecture language model" >&2
  "$build/examples/blockcast_tiny_lm" --svg docs/tiny_lm.svg "$@"
fi
