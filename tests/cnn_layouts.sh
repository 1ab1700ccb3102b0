#!/usr/bin/env bash
# The demo's CNN through every engine layout: written by `blockcast quantize` as
# compressed-tensors (NVFP4, MXFP4), ModelOpt (NVFP4) and GGUF (MXFP4, NVFP4), read back by
# `blockcast dequantize` (F32, exact) and evaluated on the 10k test images. Engine layouts hold
# the 2-D Linear weights (fc1, fc2; the convolutions stay float, as in the engines), so the
# reference is the demo's in-process model with the same layers quantized (--layers '^fc'),
# calibrated as the CLI is (--calibrate-on-float). RTN and ED must give the same top-1 count.
# Usage: cnn_layouts.sh BLOCKCAST DEMO GGUF_F32_TOOL MODEL.safetensors
set -euo pipefail
bin=$1 demo=$2 tool=$3 model=$4
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$demo" --float-only --calibration-out "$dir/calib.safetensors" >/dev/null 2>&1
mkdir "$dir/cnn"
cp "$model" "$dir/cnn/model.safetensors"
printf '{\n  "architectures": ["FashionCNN"],\n  "model_type": "fashion-cnn"\n}\n' >"$dir/cnn/config.json"
"$tool" to-gguf "$model" "$dir/cnn.gguf"

correct() { { "$demo" --model "$1" --float-only 2>/dev/null || true; } | sed -n 's/.*(\([0-9]*\) \/ 10000 test images.*/\1/p'; }
failures=0
for method in rtn ed; do
  calib=()
  [ "$method" = rtn ] || calib=(--calibration "$dir/calib.safetensors")
  for target in compressed-tensors:nvfp4 compressed-tensors:mxfp4 modelopt:nvfp4 gguf:mxfp4 gguf:nvfp4; do
    layout=${target%%:*} format=${target##*:}
    out="$dir/$layout-$format-$method"
    if [ "$layout" = gguf ]; then
      "$bin" quantize "$dir/cnn.gguf" -o "$out.gguf" --format "$format" --method "$method" "${calib[@]}" >/dev/null
      "$bin" dequantize "$out.gguf" -o "$out.f32.gguf" --dtype f32 >/dev/null
      "$tool" to-safetensors "$out.f32.gguf" "$out.safetensors"
      decoded="$out.safetensors"
    else
      "$bin" quantize "$dir/cnn" -o "$out" --layout "$layout" --format "$format" --method "$method" "${calib[@]}" >/dev/null
      "$bin" dequantize "$out" -o "$out.f32" --dtype f32 >/dev/null
      decoded="$out.f32/model.safetensors"
    fi
    got=$(correct "$decoded")
    want=$("$demo" --formats "$format" --methods "$method" --layers '^fc' --calibrate-on-float 2>/dev/null |
      awk -v f="$format" -v m="$method" '$1 == f && $3 == m {sub("%", "", $4); printf "%d\n", $4 * 100 + 0.5}')
    echo "$layout $format $method: $got correct from the files, $want in the demo"
    if [ -z "$got" ] || [ "$got" != "$want" ]; then failures=$((failures + 1)); fi
  done
done
[ "$failures" -eq 0 ]
